//! The receiver link's selector filter (`apache.org:selector-filter:string`): where a
//! consumer starts reading.
//!
//! The Azure SDKs send one comparison on one annotation. What each prints (quoted in the
//! tests below from the SDKs themselves):
//!
//! - Python (azure-eventhub 5.15.1, `_utils.event_position_selector`), JS
//!   (@azure/event-hubs 6.0.4, `getEventPositionFilter`) and Java (azure-messaging-eventhubs
//!   5.21.5, `EventHubReactorSession.getExpression`):
//!   `amqp.annotation.x-opt-offset > '12345'`, with `>=` when inclusive (JS never sends
//!   `>=` for a time).
//! - Rust (azure_messaging_eventhubs): `amqp.annotation.x-opt-offset >'12345'`, no space.
//! - Earliest is offset `'-1'` and latest offset `'@latest'` in all of them.
//!
//! The parser takes the expression's string (the caller has unwrapped the described
//! value, whichever descriptor it came with). It is lenient where it costs nothing
//! (whitespace anywhere between tokens, case, the `amqp.annotation.` prefix, an unquoted
//! number) and strict about everything else. It never panics and looks at no more than
//! [`MAX_SELECTOR_LEN`] bytes.

use thiserror::Error;

/// Longest expression accepted. The SDKs' longest is under 70 bytes.
pub const MAX_SELECTOR_LEN: usize = 1024;

/// Longest piece of the input echoed back in an error message.
const MAX_ECHO_CHARS: usize = 64;

const PREFIX: &str = "amqp.annotation.";

/// Where a receiver starts. `inclusive` is `>=`; otherwise the event at `value` itself is
/// skipped. Values are as the client sent them: clamping to the log (a sequence number
/// below the log start, a time before the first record) is the consumer's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Offset `-1`: the first retained event.
    Earliest,
    /// Offset `@latest`: only events enqueued after the link attaches.
    Latest,
    /// `x-opt-offset`; Runnel's offsets are the Kafka offsets, so this is never negative.
    Offset { value: i64, inclusive: bool },
    /// `x-opt-sequence-number`; may be negative (Python sends `> '-1'` for an int -1).
    SequenceNumber { value: i64, inclusive: bool },
    /// `x-opt-enqueued-time`, in Unix milliseconds.
    EnqueuedTime { ms: i64, inclusive: bool },
}

/// Why a selector was refused. Each message names what was wrong and what was expected;
/// the endpoint can pass it to the client as the link error's description.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    #[error("selector filter is {len} bytes long; at most {MAX_SELECTOR_LEN} are accepted")]
    TooLong { len: usize },
    #[error("selector filter is empty; expected e.g. amqp.annotation.x-opt-offset > '-1'")]
    Empty,
    #[error(
        "selector filter names {name:?}; expected x-opt-offset, x-opt-sequence-number or \
         x-opt-enqueued-time (optionally prefixed with amqp.annotation.)"
    )]
    UnknownAnnotation { name: String },
    #[error("selector filter has {found:?} after {annotation}; expected the operator > or >=")]
    Operator {
        annotation: &'static str,
        found: String,
    },
    #[error("selector filter's value for {annotation} is missing")]
    MissingValue { annotation: &'static str },
    #[error("selector filter's value for {annotation} has no closing quote")]
    UnclosedQuote { annotation: &'static str },
    #[error("selector filter's value {value:?} for {annotation} is invalid: {reason}")]
    Value {
        annotation: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("selector filter has {found:?} after its value; expected the end of the expression")]
    Trailing { found: String },
}

#[derive(Clone, Copy)]
enum Annotation {
    Offset,
    SequenceNumber,
    EnqueuedTime,
}

impl Annotation {
    fn name(self) -> &'static str {
        match self {
            Annotation::Offset => "x-opt-offset",
            Annotation::SequenceNumber => "x-opt-sequence-number",
            Annotation::EnqueuedTime => "x-opt-enqueued-time",
        }
    }
}

/// Parses a selector filter expression into a start position.
pub fn parse_selector(expr: &str) -> Result<StartAt, FilterError> {
    if expr.len() > MAX_SELECTOR_LEN {
        return Err(FilterError::TooLong { len: expr.len() });
    }
    let rest = expr.trim();
    if rest.is_empty() {
        return Err(FilterError::Empty);
    }

    // `get` rather than slicing: a multi-byte character may straddle the prefix length.
    let rest = match rest.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => &rest[PREFIX.len()..],
        _ => rest,
    };

    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let (name, rest) = rest.split_at(name_len);
    let annotation = [
        Annotation::Offset,
        Annotation::SequenceNumber,
        Annotation::EnqueuedTime,
    ]
    .into_iter()
    .find(|a| a.name().eq_ignore_ascii_case(name))
    .ok_or_else(|| FilterError::UnknownAnnotation { name: echo(name) })?;

    let rest = rest.trim_start();
    let (inclusive, rest) = if let Some(r) = rest.strip_prefix(">=") {
        (true, r)
    } else if let Some(r) = rest.strip_prefix('>') {
        (false, r)
    } else {
        let found = rest.split_whitespace().next().unwrap_or("");
        return Err(FilterError::Operator {
            annotation: annotation.name(),
            found: echo(found),
        });
    };

    let rest = rest.trim_start();
    let (value, rest) = if let Some(quoted) = rest.strip_prefix('\'') {
        let end = quoted.find('\'').ok_or(FilterError::UnclosedQuote {
            annotation: annotation.name(),
        })?;
        (quoted[..end].trim(), &quoted[end + 1..])
    } else {
        // No SDK sends an unquoted value; a hand-written `> 5` means the same.
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest.split_at(end)
    };
    if value.is_empty() {
        return Err(FilterError::MissingValue {
            annotation: annotation.name(),
        });
    }
    let rest = rest.trim();
    if !rest.is_empty() {
        return Err(FilterError::Trailing { found: echo(rest) });
    }

    let bad = |reason| FilterError::Value {
        annotation: annotation.name(),
        value: echo(value),
        reason,
    };
    match annotation {
        Annotation::Offset => {
            if value.eq_ignore_ascii_case("@latest") {
                return Ok(StartAt::Latest);
            }
            match value.parse::<i64>() {
                Ok(-1) => Ok(StartAt::Earliest),
                Ok(v) if v >= 0 => Ok(StartAt::Offset {
                    value: v,
                    inclusive,
                }),
                Ok(_) => Err(bad("an offset is -1, '@latest' or a non-negative integer")),
                Err(_) => Err(bad(
                    "expected a decimal integer offset, -1 (earliest) or '@latest'",
                )),
            }
        }
        Annotation::SequenceNumber => value
            .parse::<i64>()
            .map(|v| StartAt::SequenceNumber {
                value: v,
                inclusive,
            })
            .map_err(|_| bad("expected a decimal 64-bit integer sequence number")),
        Annotation::EnqueuedTime => value
            .parse::<i64>()
            .map(|ms| StartAt::EnqueuedTime { ms, inclusive })
            .map_err(|_| bad("expected Unix time in whole milliseconds")),
    }
}

/// At most [`MAX_ECHO_CHARS`] characters of `s`, cut on a character boundary.
fn echo(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StartAt::*;

    fn ok(expr: &str) -> StartAt {
        match parse_selector(expr) {
            Ok(at) => at,
            Err(e) => panic!("{expr:?} was refused: {e}"),
        }
    }

    fn err(expr: &str) -> FilterError {
        match parse_selector(expr) {
            Ok(at) => panic!("{expr:?} was accepted as {at:?}"),
            Err(e) => e,
        }
    }

    /// Printed by azure-eventhub 5.15.1's `event_position_selector(value, inclusive)`:
    /// "-1", "@latest", "12345" (str: offset), 5 (int: sequence number) and datetimes.
    #[test]
    fn python_sdk_forms() {
        assert_eq!(ok("amqp.annotation.x-opt-offset > '-1'"), Earliest);
        assert_eq!(ok("amqp.annotation.x-opt-offset > '@latest'"), Latest);
        assert_eq!(
            ok("amqp.annotation.x-opt-offset > '12345'"),
            Offset {
                value: 12345,
                inclusive: false
            }
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-offset >= '12345'"),
            Offset {
                value: 12345,
                inclusive: true
            }
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-sequence-number > '5'"),
            SequenceNumber {
                value: 5,
                inclusive: false
            }
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-sequence-number >= '5'"),
            SequenceNumber {
                value: 5,
                inclusive: true
            }
        );
        // datetime 1700000000.123 UTC: the SDK keeps whole milliseconds.
        assert_eq!(
            ok("amqp.annotation.x-opt-enqueued-time > '1700000000123'"),
            EnqueuedTime {
                ms: 1_700_000_000_123,
                inclusive: false
            }
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-enqueued-time >= '1700000000000'"),
            EnqueuedTime {
                ms: 1_700_000_000_000,
                inclusive: true
            }
        );
    }

    /// Printed by @azure/event-hubs 6.0.4's `getEventPositionFilter` for
    /// `earliestEventPosition`, `latestEventPosition`, `{offset}`, `{sequenceNumber}` and
    /// `{enqueuedOn}`; with `isInclusive: true` a time still gets `>`.
    #[test]
    fn js_sdk_forms() {
        assert_eq!(ok("amqp.annotation.x-opt-offset > '-1'"), Earliest);
        assert_eq!(ok("amqp.annotation.x-opt-offset > '@latest'"), Latest);
        assert_eq!(
            ok("amqp.annotation.x-opt-offset >= '12345'"),
            Offset {
                value: 12345,
                inclusive: true
            }
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-sequence-number >= '5'"),
            SequenceNumber {
                value: 5,
                inclusive: true
            }
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-enqueued-time > '1700000000000'"),
            EnqueuedTime {
                ms: 1_700_000_000_000,
                inclusive: false
            }
        );
    }

    /// Printed by azure-messaging-eventhubs 5.21.5's `getExpression` (format
    /// `amqp.annotation.%s >%s '%s'`) for `EventPosition.earliest()`, `latest()`,
    /// `fromOffsetString("12345")`, `fromSequenceNumber(5, true)` and
    /// `fromEnqueuedTime(...)`.
    #[test]
    fn java_sdk_forms() {
        assert_eq!(ok("amqp.annotation.x-opt-offset > '-1'"), Earliest);
        assert_eq!(ok("amqp.annotation.x-opt-offset > '@latest'"), Latest);
        assert_eq!(
            ok("amqp.annotation.x-opt-offset > '12345'"),
            Offset {
                value: 12345,
                inclusive: false
            }
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-sequence-number >= '5'"),
            SequenceNumber {
                value: 5,
                inclusive: true
            }
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-enqueued-time > '1700000000000'"),
            EnqueuedTime {
                ms: 1_700_000_000_000,
                inclusive: false
            }
        );
    }

    /// azure_messaging_eventhubs (Rust) writes no space after the operator; the design
    /// brief also lists the form without the prefix.
    #[test]
    fn rust_sdk_forms() {
        assert_eq!(
            ok("amqp.annotation.x-opt-offset >'12345'"),
            Offset {
                value: 12345,
                inclusive: false
            }
        );
        assert_eq!(
            ok("amqp.annotation.x-opt-offset >='12345'"),
            Offset {
                value: 12345,
                inclusive: true
            }
        );
        assert_eq!(
            ok("x-opt-offset >'12345'"),
            Offset {
                value: 12345,
                inclusive: false
            }
        );
    }

    #[test]
    fn whitespace_case_and_quotes_are_tolerated() {
        assert_eq!(
            ok("  \tAMQP.Annotation.X-Opt-Sequence-Number>=' 7 '\r\n"),
            SequenceNumber {
                value: 7,
                inclusive: true
            }
        );
        assert_eq!(ok("x-opt-offset>'@LATEST'"), Latest);
        assert_eq!(ok("x-opt-offset >= '-1'"), Earliest);
        assert_eq!(
            ok("x-opt-offset > 42"),
            Offset {
                value: 42,
                inclusive: false
            }
        );
        assert_eq!(
            ok("x-opt-enqueued-time > '-5'"),
            EnqueuedTime {
                ms: -5,
                inclusive: false
            }
        );
        assert_eq!(
            ok("x-opt-sequence-number > '-1'"),
            SequenceNumber {
                value: -1,
                inclusive: false
            }
        );
        assert_eq!(
            ok("x-opt-sequence-number > '9223372036854775807'"),
            SequenceNumber {
                value: i64::MAX,
                inclusive: false
            }
        );
    }

    #[test]
    fn refusals_say_what_was_wrong() {
        assert_eq!(err(""), FilterError::Empty);
        assert_eq!(err("   "), FilterError::Empty);
        assert!(matches!(
            err("amqp.annotation.x-opt-partition-key > 'a'"),
            FilterError::UnknownAnnotation { name } if name == "x-opt-partition-key"
        ));
        let e = err("x-opt-offset < '5'");
        assert!(matches!(&e, FilterError::Operator { found, .. } if found == "<"));
        assert!(
            e.to_string().contains("expected the operator > or >="),
            "{e}"
        );
        assert!(matches!(
            err("x-opt-offset = '5'"),
            FilterError::Operator { .. }
        ));
        assert!(matches!(err("x-opt-offset"), FilterError::Operator { .. }));
        assert!(matches!(
            err("x-opt-offset >"),
            FilterError::MissingValue { .. }
        ));
        assert!(matches!(
            err("x-opt-offset > ''"),
            FilterError::MissingValue { .. }
        ));
        assert!(matches!(
            err("x-opt-offset > '5"),
            FilterError::UnclosedQuote { .. }
        ));
        assert!(matches!(
            err("x-opt-offset > '5' AND x-opt-offset < '9'"),
            FilterError::Trailing { .. }
        ));
        assert!(matches!(
            err("x-opt-offset > '-2'"),
            FilterError::Value { reason, .. } if reason.contains("non-negative")
        ));
        assert!(matches!(
            err("x-opt-offset > 'abc'"),
            FilterError::Value { .. }
        ));
        assert!(matches!(
            err("x-opt-sequence-number > '@latest'"),
            FilterError::Value { .. }
        ));
        assert!(matches!(
            err("x-opt-enqueued-time > '1700000000000.5'"),
            FilterError::Value { .. }
        ));
        assert!(matches!(
            err("x-opt-sequence-number > '9223372036854775808'"),
            FilterError::Value { .. }
        ));
        let e = err("x-opt-offset > 'nope'");
        assert_eq!(
            e.to_string(),
            "selector filter's value \"nope\" for x-opt-offset is invalid: expected a decimal \
             integer offset, -1 (earliest) or '@latest'"
        );
    }

    #[test]
    fn length_is_bounded_and_echoes_are_short() {
        let long = format!("x-opt-offset > '{}'", "1".repeat(MAX_SELECTOR_LEN));
        assert_eq!(err(&long), FilterError::TooLong { len: long.len() });
        let e = err(&format!("x-opt-offset > '{}'", "9".repeat(900)));
        assert!(e.to_string().len() < 200, "{e}");
        // A multi-byte character straddling the prefix length, and in echoes.
        assert!(matches!(
            err("amqp.annotationé.x-opt-offset > '1'"),
            FilterError::UnknownAnnotation { .. }
        ));
        assert!(matches!(
            err(&"é".repeat(300)),
            FilterError::UnknownAnnotation { .. }
        ));
        assert!(
            matches!(err(&format!("x-opt-offset > '{}'", "é".repeat(100))), FilterError::Value { value, .. } if value.chars().count() == MAX_ECHO_CHARS + 1)
        );
    }

    proptest::proptest! {
        #[test]
        fn random_strings_never_panic(s in "\\PC{0,200}") {
            let _ = parse_selector(&s);
        }

        #[test]
        fn near_misses_never_panic(
            name in "(amqp\\.annotation\\.)?x-opt-(offset|sequence-number|enqueued-time|[a-z]{0,5})",
            op in "[<>=! ]{0,3}",
            value in "'?[-@0-9a-z' ]{0,22}'?",
            tail in "[ a-z']{0,4}",
        ) {
            let _ = parse_selector(&format!("{name}{op}{value}{tail}"));
        }

        #[test]
        fn generated_expressions_round_trip(v in 0i64.., inclusive: bool, space: bool) {
            let op = if inclusive { ">=" } else { ">" };
            let sp = if space { " " } else { "" };
            proptest::prop_assert_eq!(
                parse_selector(&format!("amqp.annotation.x-opt-sequence-number {op}{sp}'{v}'")),
                Ok(SequenceNumber { value: v, inclusive })
            );
            let expected = Offset { value: v, inclusive };
            proptest::prop_assert_eq!(parse_selector(&format!("x-opt-offset{sp}{op}'{v}'")), Ok(expected));
        }
    }
}
