//! Who a client is once authenticated (Kafka's `KafkaPrincipal`), and the mapping from a
//! TLS client certificate's distinguished name to a principal name
//! (`ssl.principal.mapping.rules`, Kafka's `SslPrincipalMapper`).

use std::fmt;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Kafka's principal type for users (`KafkaPrincipal.USER_TYPE`).
pub const USER_TYPE: &str = "User";

/// The principal of a connection that did not authenticate (a PLAINTEXT listener, or
/// TLS without client authentication): `User:ANONYMOUS`, as in Kafka.
pub static ANONYMOUS: LazyLock<KafkaPrincipal> =
    LazyLock::new(|| KafkaPrincipal::user("ANONYMOUS"));

/// An authenticated identity: a type (`User`) and a name. ACLs name principals as
/// `User:alice`, which is also the `Display` form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPrincipal {
    pub principal_type: String,
    pub name: String,
}

impl KafkaPrincipal {
    pub fn new(principal_type: impl Into<String>, name: impl Into<String>) -> KafkaPrincipal {
        KafkaPrincipal {
            principal_type: principal_type.into(),
            name: name.into(),
        }
    }

    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> KafkaPrincipal {
        KafkaPrincipal::new(USER_TYPE, name)
    }

    pub fn is_anonymous(&self) -> bool {
        *self == *ANONYMOUS
    }

    /// `type:name`, split at the first `:` (Kafka's `SecurityUtils.parseKafkaPrincipal`,
    /// with its message), as ACL bindings and the admin tools write principals.
    pub fn parse(text: &str) -> Result<KafkaPrincipal, String> {
        match text.split_once(':') {
            Some((principal_type, name)) => Ok(KafkaPrincipal::new(principal_type, name)),
            None => Err(format!(
                "expected a string in format principalType:principalName but got {text}"
            )),
        }
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// No rule of the mapper applied to a distinguished name (Kafka's `NoMatchingRule`):
/// the connection is refused, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("No rules apply to {distinguished_name}, rules {rules}")]
pub struct NoMatch {
    pub distinguished_name: String,
    rules: String,
}

/// Kafka's `ssl.principal.mapping.rules`: a comma-separated list of
/// `RULE:pattern/replacement/` (optionally followed by `L` or `U` to lower- or
/// upper-case the result) and `DEFAULT` (the distinguished name as it is). The first
/// rule whose pattern matches the whole distinguished name gives the name; if none
/// does, [`SslPrincipalMapper::name_for`] fails. Kafka's default is `DEFAULT`.
///
/// The rule list is split and parsed with Kafka's own expressions, so odd inputs
/// (spaces, empty rules, escaped `/` and `,`) split as they do in Kafka. Patterns are
/// compiled with the `regex` crate rather than `java.util.regex`: lookaround and
/// backreferences are refused when the rules are parsed, and `\w`, `\d`, `\s` and `\b`
/// are Unicode-aware (ASCII-only in Java). The replacement follows Java's
/// `Matcher.replaceAll` syntax (`$n`, `${name}`, `\` escapes) with Kafka's rule that a
/// `$n` naming a group the pattern does not have is literal text; a replacement that
/// names a group that cannot exist is refused when the rules are parsed (Kafka fails
/// each connection instead).
#[derive(Debug, Clone)]
pub struct SslPrincipalMapper {
    rules: Vec<Rule>,
}

impl Default for SslPrincipalMapper {
    /// The mapper for Kafka's default rules (`DEFAULT`).
    fn default() -> SslPrincipalMapper {
        SslPrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

/// Java's `\s` (ASCII whitespace) and `.` (anything but a line terminator), spelled out
/// because the `regex` crate's are wider.
const WS: &str = r"[ \t\n\x0B\x0C\r]";
const DOT: &str = r"[^\n\r\x{85}\x{2028}\x{2029}]";

/// Kafka's `RULE_PATTERN`, group for group: 1 `DEFAULT`, 2 the pattern, 4 the
/// replacement, 6 the case flag, 7 anything else (an empty rule, or an invalid one).
fn rule_pattern() -> String {
    format!(r"(DEFAULT)|RULE:((\\{DOT}|[^\\/])*)/((\\{DOT}|[^\\/])*)/([LU]?){DOT}*?|({DOT}*?)")
}

static RULE_SPLITTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"{WS}*({}){WS}*(,{WS}*|\z)", rule_pattern()))
        .expect("the rule splitter compiles")
});

static RULE_PARSER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"\A(?:{})", rule_pattern())).expect("the rule parser compiles")
});

impl SslPrincipalMapper {
    pub fn parse(rules: &str) -> Result<SslPrincipalMapper, String> {
        // `String.trim()`: every char up to U+0020 is trimmed.
        let trimmed = rules.trim_matches(|c: char| c <= ' ');
        let mut parsed = Vec::new();
        // An empty match right after a match, which Java reports and this iterator
        // skips, is an empty rule, which Kafka ignores too.
        for split in RULE_SPLITTER.captures_iter(trimmed) {
            let rule = split.get(1).map_or("", |m| m.as_str());
            if let Some(rule) = Rule::parse(rule)? {
                parsed.push(rule);
            }
        }
        Ok(SslPrincipalMapper { rules: parsed })
    }

    /// The principal name for a certificate's distinguished name (as the TLS layer
    /// formats it: RFC 2253, `CN=alice,OU=...`).
    pub fn name_for(&self, distinguished_name: &str) -> Result<String, NoMatch> {
        self.rules
            .iter()
            .find_map(|r| r.apply(distinguished_name))
            .ok_or_else(|| NoMatch {
                distinguished_name: distinguished_name.to_string(),
                rules: self.rule_list(),
            })
    }

    fn rule_list(&self) -> String {
        let rules: Vec<String> = self.rules.iter().map(|r| r.to_string()).collect();
        format!("[{}]", rules.join(", "))
    }
}

impl fmt::Display for SslPrincipalMapper {
    /// Kafka's `toString`, for the log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SslPrincipalMapper(rules = {})", self.rule_list())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        /// The pattern and replacement as written, for `Display`.
        pattern: String,
        replacement: String,
        /// The pattern anchored at both ends: Java's `Matcher.matches()`.
        whole: Regex,
        /// The pattern as written, for the replace-all.
        find: Regex,
        template: Vec<Piece>,
        case: Case,
    },
}

/// A parsed replacement: literal text and group references.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

impl Rule {
    /// One rule as the splitter found it; `None` for an empty rule.
    fn parse(rule: &str) -> Result<Option<Rule>, String> {
        let Some(m) = RULE_PARSER.captures(rule) else {
            return Err(format!("Invalid rule: {rule}"));
        };
        let end = m.get(0).map_or(0, |g| g.end());
        if end != rule.len() {
            return Err(format!(
                "Invalid rule: `{rule}`, unmatched substring: `{}`",
                &rule[end..]
            ));
        }
        if m.get(1).is_some() {
            return Ok(Some(Rule::Default));
        }
        let Some(pattern) = m.get(2) else {
            return Ok(None);
        };
        let pattern = pattern.as_str();
        let replacement = m.get(4).map_or("", |g| g.as_str());
        let case = match m.get(6).map(|g| g.as_str()) {
            Some("L") => Case::Lower,
            Some("U") => Case::Upper,
            _ => Case::Keep,
        };
        let invalid = |e: &dyn fmt::Display| format!("Invalid rule: `{rule}`: {e}");
        let find = Regex::new(pattern).map_err(|e| invalid(&e))?;
        let whole = Regex::new(&format!(r"\A(?:{pattern})\z")).map_err(|e| invalid(&e))?;
        let template = parse_replacement(replacement, &find).map_err(|e| invalid(&e))?;
        Ok(Some(Rule::Replace {
            pattern: pattern.to_string(),
            replacement: replacement.to_string(),
            whole,
            find,
            template,
            case,
        }))
    }

    fn apply(&self, dn: &str) -> Option<String> {
        let Rule::Replace {
            whole,
            find,
            template,
            case,
            ..
        } = self
        else {
            return Some(dn.to_string());
        };
        if !whole.is_match(dn) {
            return None;
        }
        let name = java_replace_all(find, dn, template);
        Some(match case {
            Case::Keep => name,
            Case::Lower => name.to_lowercase(),
            Case::Upper => name.to_uppercase(),
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Default => f.write_str("DEFAULT"),
            Rule::Replace {
                pattern,
                replacement,
                case,
                ..
            } => {
                write!(f, "RULE:{pattern}/{replacement}")?;
                match case {
                    Case::Keep => Ok(()),
                    Case::Lower => f.write_str("/L"),
                    Case::Upper => f.write_str("/U"),
                }
            }
        }
    }
}

/// Java's replacement syntax (`Matcher.appendReplacement`) against `re`'s groups, with
/// Kafka's `escapeLiteralBackReferences`: when the pattern has groups, a `$` whose first
/// digit is above the group count is literal text.
fn parse_replacement(replacement: &str, re: &Regex) -> Result<Vec<Piece>, String> {
    let groups = re.captures_len() - 1;
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => text.push(escaped),
                None => return Err("character to be escaped is missing".into()),
            },
            '$' => {
                let group = match chars.peek().copied() {
                    None => return Err("Illegal group reference: group index is missing".into()),
                    Some('{') => {
                        chars.next();
                        let mut name = String::new();
                        while let Some(&c) = chars.peek() {
                            if !c.is_ascii_alphanumeric() {
                                break;
                            }
                            name.push(c);
                            chars.next();
                        }
                        if name.is_empty() {
                            return Err("named capturing group has 0 length name".into());
                        }
                        if chars.next() != Some('}') {
                            return Err("named capturing group is missing trailing '}'".into());
                        }
                        if name.starts_with(|c: char| c.is_ascii_digit()) {
                            return Err(format!(
                                "capturing group name {{{name}}} starts with digit character"
                            ));
                        }
                        re.capture_names()
                            .position(|n| n == Some(name.as_str()))
                            .ok_or_else(|| format!("No group with name {{{name}}}"))?
                    }
                    Some(d) if d.is_ascii_digit() => {
                        let first = d as usize - '0' as usize;
                        if groups > 0 && first > groups {
                            // Kafka escapes it: the `$` and the digits are text.
                            text.push('$');
                            continue;
                        }
                        if first > groups {
                            return Err(format!("No group {first}"));
                        }
                        chars.next();
                        // The longest number that is still a group, as Java reads it.
                        let mut group = first;
                        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                            let longer = group * 10 + d as usize;
                            if longer > groups {
                                break;
                            }
                            group = longer;
                            chars.next();
                        }
                        group
                    }
                    Some(_) => return Err("Illegal group reference".into()),
                };
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Group(group));
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// Java's `String.replaceAll`: every match from left to right, where an empty match may
/// follow a non-empty one directly (the `regex` crate's iterator skips that one, so this
/// is done by hand), and after an empty match the search moves on by one character.
fn java_replace_all(re: &Regex, haystack: &str, template: &[Piece]) -> String {
    let mut out = String::with_capacity(haystack.len());
    let mut copied = 0;
    let mut from = 0;
    while from <= haystack.len() {
        let Some(caps) = re.captures_at(haystack, from) else {
            break;
        };
        let Some(m) = caps.get(0) else { break };
        out.push_str(&haystack[copied..m.start()]);
        expand(&caps, template, &mut out);
        copied = m.end();
        from = if m.is_empty() {
            match haystack[m.end()..].chars().next() {
                Some(c) => m.end() + c.len_utf8(),
                None => break,
            }
        } else {
            m.end()
        };
    }
    out.push_str(&haystack[copied..]);
    out
}

fn expand(caps: &Captures<'_>, template: &[Piece], out: &mut String) {
    for piece in template {
        match piece {
            Piece::Text(t) => out.push_str(t),
            // A group that did not take part in the match adds nothing, as in Java.
            Piece::Group(g) => out.push_str(caps.get(*g).map_or("", |m| m.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_display_and_parse_as_kafka_writes_them() {
        assert_eq!(KafkaPrincipal::user("alice").to_string(), "User:alice");
        assert_eq!(ANONYMOUS.to_string(), "User:ANONYMOUS");
        assert!(ANONYMOUS.is_anonymous());
        assert!(!KafkaPrincipal::user("alice").is_anonymous());
        assert_eq!(
            KafkaPrincipal::parse("User:CN=a:b").unwrap(),
            KafkaPrincipal::user("CN=a:b")
        );
        assert_eq!(
            KafkaPrincipal::parse("alice").unwrap_err(),
            "expected a string in format principalType:principalName but got alice"
        );
    }

    // Kafka's SslPrincipalMapperTest, case for case.

    #[test]
    fn valid_rules() {
        for rules in [
            "DEFAULT",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
            "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
            "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
            "RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
        ] {
            SslPrincipalMapper::parse(rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
        }
    }

    #[test]
    fn invalid_rules() {
        for rules in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
        ] {
            assert!(
                SslPrincipalMapper::parse(rules).is_err(),
                "{rules} should be refused"
            );
        }
        assert_eq!(
            SslPrincipalMapper::parse("DEFAULT/L").unwrap_err(),
            "Invalid rule: `DEFAULT/L`, unmatched substring: `/L`"
        );
    }

    #[test]
    fn maps_names_as_kafka() {
        let rules = [
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
            "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
            "DEFAULT",
        ]
        .join(", ");
        let mapper = SslPrincipalMapper::parse(&rules).unwrap();
        let name = |dn: &str| mapper.name_for(dn).unwrap();
        assert_eq!(name("CN=Duke,OU=ServiceUsers,O=Org,C=US"), "duke");
        assert_eq!(
            name("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US"),
            "duke@sme"
        );
        assert_eq!(name("cn=duke,ou=sme,dc=mycp,dc=com"), "DUKE@SME");
        assert_eq!(name("cN=duke,OU=JavaSoft,O=Sun Microsystems"), "DUKE");
        assert_eq!(
            name("OU=JavaSoft,O=Sun Microsystems,C=US"),
            "OU=JavaSoft,O=Sun Microsystems,C=US"
        );
    }

    fn splits(expected: &str, rules: &str) {
        let mapper = SslPrincipalMapper::parse(rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
        assert_eq!(
            mapper.to_string(),
            format!("SslPrincipalMapper(rules = {expected})"),
            "rules {rules:?}"
        );
    }

    #[test]
    fn rules_split_as_kafka_splits_them() {
        splits("[]", "");
        splits("[DEFAULT]", "DEFAULT");
        splits("[RULE:/]", "RULE://");
        splits("[RULE:/.*]", "RULE:/.*/");
        splits("[RULE:/.*/L]", "RULE:/.*/L");
        splits("[RULE:/, DEFAULT]", "RULE://,DEFAULT");
        splits("[RULE:/, DEFAULT]", "  RULE:// ,  DEFAULT  ");
        splits(
            "[RULE:   /     , DEFAULT]",
            "  RULE:   /     / ,  DEFAULT  ",
        );
        splits(
            "[RULE:  /     /U, DEFAULT]",
            "  RULE:  /     /U   ,DEFAULT  ",
        );
        splits(
            "[RULE:([A-Z]*)/$1/U, RULE:([a-z]+)/$1, DEFAULT]",
            "  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  ",
        );

        // Empty rules are ignored.
        splits("[]", ",   , , ,      , , ,   ");
        splits("[RULE:/, DEFAULT]", ",,RULE://,,,DEFAULT,,");
        splits(
            "[RULE: /   , DEFAULT]",
            ",  , RULE: /   /    ,,,   DEFAULT, ,   ",
        );
        splits(
            "[RULE:   /  /U, DEFAULT]",
            "     ,  , RULE:   /  /U    ,,  ,DEFAULT, ,",
        );

        // Escape sequences.
        splits(r"[RULE:\/\\\(\)\n\t/\/\/]", r"RULE:\/\\\(\)\n\t/\/\//");
        splits(
            r"[RULE:\**\/+/*/L, RULE:\/*\**/**]",
            r"RULE:\**\/+/*/L,RULE:\/*\**/**/",
        );

        // Rules rule.
        splits(
            r"[RULE:,RULE:,/,RULE:,\//U, RULE:,/RULE:,, RULE:,RULE:,/L,RULE:,/L, RULE:, DEFAULT, /DEFAULT, DEFAULT]",
            r"RULE:,RULE:,/,RULE:,\//U,RULE:,/RULE:,/,RULE:,RULE:,/L,RULE:,/L,RULE:, DEFAULT, /DEFAULT/,DEFAULT",
        );
    }

    #[test]
    fn comma_with_whitespace() {
        let mapper =
            SslPrincipalMapper::parse(r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT").unwrap();
        assert_eq!(
            mapper
                .name_for(r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz")
                .unwrap(),
            r"Tkac\, Adam"
        );
    }

    #[test]
    fn no_matching_rule_is_an_error_naming_the_rules() {
        let mapper = SslPrincipalMapper::parse("RULE:^CN=(.*)$/$1/").unwrap();
        let err = mapper.name_for("OU=x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "No rules apply to OU=x, rules [RULE:^CN=(.*)$/$1]"
        );
        let none = SslPrincipalMapper::parse("").unwrap();
        assert!(none.name_for("CN=a").is_err());
        assert_eq!(
            SslPrincipalMapper::default().name_for("CN=a").unwrap(),
            "CN=a"
        );
    }

    #[test]
    fn replacements_follow_java_and_kafka() {
        let name = |rules: &str, dn: &str| {
            SslPrincipalMapper::parse(rules)
                .unwrap_or_else(|e| panic!("{rules}: {e}"))
                .name_for(dn)
                .unwrap()
        };
        // A group beyond the pattern's is literal (Kafka's escapeLiteralBackReferences).
        assert_eq!(name("RULE:^CN=(.*)$/$1@$4/", "CN=a"), "a@$4");
        // $12 with one group is group 1 then "2", as Java reads it.
        assert_eq!(name("RULE:^CN=(.*)$/$12/", "CN=a"), "a2");
        // Named groups and escapes.
        assert_eq!(name(r"RULE:^CN=(?<user>\w+)$/${user}\$/", "CN=bob"), "bob$");
        // replaceAll without anchors: Java also replaces the empty match at the end.
        assert_eq!(name("RULE:(.*)/x$1/", "abc"), "xabcx");
        // Case folding.
        assert_eq!(name("RULE:^(.*)$/$1/U", "straße"), "STRASSE");
        // A pattern with no groups cannot name one.
        assert!(SslPrincipalMapper::parse("RULE:^CN=.*$/$1/").is_err());
        assert_eq!(name("RULE:^CN=.*$/$0/", "CN=x"), "CN=x");
        // Syntax the regex crate lacks is refused when the rules are parsed.
        assert!(SslPrincipalMapper::parse("RULE:^(?=CN).*$/x/").is_err());
        assert!(SslPrincipalMapper::parse("RULE:^CN=.*$/$/").is_err());
    }
}
