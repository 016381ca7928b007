//! Subscribed topic regexes of consumer groups (KIP-848 `SubscribedTopicRegex`).
//!
//! Kafka compiles them with RE2/J and matches whole topic names (`Matcher.matches()`).
//! The `regex` crate speaks the same RE2 syntax (it adds a few extensions, such as class
//! set operations, and lacks `\Q...\E`) and matches in linear time, so no pattern can
//! make the broker backtrack for long. Pattern length and compiled size are bounded.

/// Longest pattern accepted, in bytes. It is written into record keys, whose strings
/// are at most `i16::MAX` bytes.
pub const MAX_PATTERN_LEN: usize = 16 * 1024;
/// Bounds on one compiled pattern and on its lazy DFA's cache, in bytes.
const COMPILED_SIZE_LIMIT: usize = 1 << 20;
const DFA_SIZE_LIMIT: usize = 1 << 20;
/// Deepest nesting of groups and repetitions.
const NEST_LIMIT: u32 = 64;

/// A subscribed regex, compiled to match whole topic names.
#[derive(Debug, Clone)]
pub struct TopicRegex(regex::Regex);

impl TopicRegex {
    /// Compile `pattern`; the error says why it is not valid.
    pub fn new(pattern: &str) -> Result<TopicRegex, String> {
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(format!("longer than {MAX_PATTERN_LEN} bytes"));
        }
        let build = |p: &str| {
            regex::RegexBuilder::new(p)
                .size_limit(COMPILED_SIZE_LIMIT)
                .dfa_size_limit(DFA_SIZE_LIMIT)
                .nest_limit(NEST_LIMIT)
                .build()
                .map_err(|e| describe(&e))
        };
        // Checked alone first: an invalid pattern such as `a)|(b` parses once wrapped.
        build(pattern)?;
        build(&format!("^(?:{pattern})$")).map(TopicRegex)
    }

    /// Does the whole of `topic` match?
    pub fn matches(&self, topic: &str) -> bool {
        self.0.is_match(topic)
    }
}

/// Kafka's message for an invalid `SubscribedTopicRegex`.
pub fn invalid_message(pattern: &str, why: &str) -> String {
    if pattern.len() > MAX_PATTERN_LEN {
        return format!("SubscribedTopicRegex is not a valid regular expression: {why}.");
    }
    format!("SubscribedTopicRegex `{pattern}` is not a valid regular expression: {why}.")
}

/// The last line of a syntax error (`error: ...`) without the pattern and caret above it.
fn describe(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or(s)
            .to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_whole_names_only() {
        let r = TopicRegex::new("orders-.*").unwrap();
        assert!(r.matches("orders-eu"));
        assert!(r.matches("orders-"));
        assert!(!r.matches("old-orders-eu"), "anchored at the start");
        let r = TopicRegex::new("orders|orders-eu").unwrap();
        assert!(
            r.matches("orders-eu"),
            "any alternative may match the whole name"
        );
        assert!(!r.matches("orders-us"));
        // librdkafka sends `(^a)|(^b)`; anchors inside are fine.
        let r = TopicRegex::new("(^orders-.*)|(^audit)").unwrap();
        assert!(r.matches("audit") && r.matches("orders-1") && !r.matches("audit-1"));
        // A pattern's own flags stay inside it; `$` still means the end of the name.
        let r = TopicRegex::new("(?m)ORDERS(?i)-x").unwrap();
        assert!(r.matches("ORDERS-X") && !r.matches("orders-x"));
    }

    #[test]
    fn invalid_and_hostile_patterns_are_refused() {
        for p in ["orders-[", "a)|(b", "(", "*", "a{2,1}", "\\"] {
            let e = TopicRegex::new(p).expect_err(p);
            assert!(!e.contains('\n'), "{e:?}");
        }
        assert_eq!(
            TopicRegex::new("orders-[").unwrap_err(),
            "unclosed character class"
        );
        assert!(TopicRegex::new(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
        // Too big once compiled, or nested too deep.
        assert!(TopicRegex::new("(\\w{100}){100}").is_err());
        assert!(TopicRegex::new(&format!("{}a{}", "(".repeat(200), ")".repeat(200))).is_err());
        // Linear time: what backtracks catastrophically elsewhere is quick here.
        let r = TopicRegex::new("(a+)+b").unwrap();
        let name = "a".repeat(249);
        let t = std::time::Instant::now();
        assert!(!r.matches(&name));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(
            invalid_message("orders-[", "unclosed character class"),
            "SubscribedTopicRegex `orders-[` is not a valid regular expression: unclosed character class."
        );
    }
}
