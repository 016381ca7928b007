//! SASL/PLAIN (RFC 4616) with Kafka's `PlainSaslServer` rules, and the users of Kafka's
//! `PlainLoginModule` JAAS configuration.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{log_name, AuthError, Mechanism, Reason, SaslStep, MAX_TOKEN_BYTES};
use crate::principal::KafkaPrincipal;
use crate::sas::SasGrant;

/// Checks a username and password. The principal it returns is the client's identity
/// (`User:<username>` for JAAS users; a connection-string verifier, whose username is
/// `$ConnectionString`, names the policy instead).
pub trait PlainVerifier: Send + Sync {
    fn verify(&self, username: &str, password: &str) -> Option<KafkaPrincipal>;

    /// [`PlainVerifier::verify`], with the rights of a shared-access-policy login.
    fn login(&self, username: &str, password: &str) -> Option<PlainLogin> {
        self.verify(username, password).map(|principal| PlainLogin {
            principal,
            sas: None,
        })
    }
}

/// A verified PLAIN login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainLogin {
    pub principal: KafkaPrincipal,
    /// An Event Hubs connection-string login's rights and hub.
    pub sas: Option<SasGrant>,
}

/// Users and passwords, as Kafka's JAAS `user_<name>="<password>"` options. Passwords
/// are kept as SHA-256 digests and compared in constant time, digest to digest, so
/// neither their bytes nor their length leak through timing; an unknown user costs the
/// same comparison.
#[derive(Clone, Default)]
pub struct PlainUsers {
    users: HashMap<String, [u8; 32]>,
}

impl PlainUsers {
    pub fn new() -> PlainUsers {
        PlainUsers::default()
    }

    /// Add or replace a user.
    pub fn insert(&mut self, username: impl Into<String>, password: &str) {
        self.users.insert(username.into(), digest(password));
    }

    pub fn contains(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

fn digest(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

impl fmt::Debug for PlainUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.users.keys().collect();
        names.sort();
        f.debug_struct("PlainUsers").field("users", &names).finish()
    }
}

impl PlainVerifier for PlainUsers {
    fn verify(&self, username: &str, password: &str) -> Option<KafkaPrincipal> {
        let given = digest(password);
        match self.users.get(username) {
            Some(expected) if bool::from(given.ct_eq(expected)) => {
                Some(KafkaPrincipal::user(username))
            }
            Some(_) => None,
            None => {
                // The same work as for a known user.
                let _ = given.ct_eq(&[0u8; 32]);
                None
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    Complete,
    Failed,
}

/// One connection's PLAIN exchange: a single token, then complete or failed.
pub struct PlainServer {
    verifier: Arc<dyn PlainVerifier>,
    state: State,
    sas: Option<SasGrant>,
}

impl fmt::Debug for PlainServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainServer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl PlainServer {
    pub fn new(verifier: Arc<dyn PlainVerifier>) -> PlainServer {
        PlainServer {
            verifier,
            state: State::Ready,
            sas: None,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.state == State::Complete
    }

    /// A completed connection-string login's grant (once).
    pub fn take_sas_grant(&mut self) -> Option<SasGrant> {
        self.sas.take()
    }

    pub fn evaluate(&mut self, token: &[u8]) -> Result<SaslStep, AuthError> {
        let result = match self.state {
            State::Ready => {
                let result = self.authenticate(token);
                self.state = if result.is_ok() {
                    State::Complete
                } else {
                    State::Failed
                };
                result
            }
            State::Complete => Err(Reason::UnexpectedToken("completed")),
            State::Failed => Err(Reason::UnexpectedToken("failed")),
        };
        result.map_err(|reason| AuthError::new(Mechanism::Plain, reason))
    }

    /// `[authzid] NUL authcid NUL passwd`, checked in `PlainSaslServer`'s order.
    fn authenticate(&mut self, token: &[u8]) -> Result<SaslStep, Reason> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Reason::TooLarge(token.len()));
        }
        let text = std::str::from_utf8(token).map_err(|_| Reason::Malformed("not UTF-8"))?;
        let fields: Vec<&str> = text.split('\0').collect();
        let [authzid, username, password] = fields[..] else {
            // Kafka reads at most four tokens before counting.
            return Err(Reason::PlainTokenCount(fields.len().min(4)));
        };
        if username.is_empty() {
            return Err(Reason::MissingUsername);
        }
        if password.is_empty() {
            return Err(Reason::MissingPassword);
        }
        let Some(PlainLogin { principal, sas }) = self.verifier.login(username, password) else {
            return Err(Reason::InvalidCredentials {
                user: log_name(username),
            });
        };
        if !authzid.is_empty() && authzid != username {
            return Err(Reason::AuthorizationIdMismatch {
                user: log_name(username),
            });
        }
        self.sas = sas;
        Ok(SaslStep::Complete {
            principal,
            final_token: Vec::new(),
        })
    }
}

/// The one login module a PLAIN listener's JAAS configuration may name.
pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

/// The users of a Kafka `sasl.jaas.config` for PLAIN:
/// `org.apache.kafka.common.security.plain.PlainLoginModule required username="admin"
/// password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";`.
/// It is tokenized as Kafka's `JaasConfig` does (Java's `StreamTokenizer`: words,
/// single- or double-quoted strings with backslash escapes, `//` and `/* */`
/// comments), must hold exactly one entry, of `PlainLoginModule`, and each
/// `user_<name>` option is a user. `username` and `password` are the broker's own
/// login as a client, which a single node does not use; other options are ignored, as
/// in Kafka. Error messages never include a value.
pub fn parse_plain_jaas(jaas: &str) -> Result<PlainUsers, String> {
    let entries = parse_jaas(jaas)?;
    let entry = match entries.as_slice() {
        [] => return Err("Login module not specified in JAAS config".into()),
        [one] => one,
        more => {
            return Err(format!(
                "JAAS config property contains {} login modules, should be 1 module",
                more.len()
            ))
        }
    };
    if entry.login_module != PLAIN_LOGIN_MODULE {
        return Err(format!(
            "login module {} is not supported for SASL/PLAIN; use {PLAIN_LOGIN_MODULE}",
            entry.login_module
        ));
    }
    let mut users = PlainUsers::new();
    for (key, value) in &entry.options {
        if let Some(user) = key.strip_prefix("user_") {
            users.insert(user, value);
        }
    }
    Ok(users)
}

/// One `<loginModuleClass> <controlFlag> (<name>=<value>)*;` entry.
#[derive(Debug)]
pub(crate) struct JaasEntry {
    pub(crate) login_module: String,
    /// In order; a later duplicate wins, as Java's map keeps the last.
    pub(crate) options: Vec<(String, String)>,
}

pub(crate) fn parse_jaas(jaas: &str) -> Result<Vec<JaasEntry>, String> {
    let mut tokens = Tokenizer::new(jaas);
    let mut entries = Vec::new();
    loop {
        let login_module = match tokens.next() {
            Token::Eof => break,
            Token::Word(w) => w,
            _ => return Err("Login module not specified in JAAS config".into()),
        };
        let flag = match tokens.next() {
            Token::Eof => {
                return Err("Login module control flag not specified in JAAS config".into())
            }
            Token::Word(w) => w,
            _ => {
                return Err("Login module control flag is not available in the JAAS config".into())
            }
        };
        if !matches!(
            flag.to_uppercase().as_str(),
            "REQUIRED" | "REQUISITE" | "SUFFICIENT" | "OPTIONAL"
        ) {
            return Err(format!(
                "Invalid login module control flag '{flag}' in JAAS config"
            ));
        }
        let mut options: Vec<(String, String)> = Vec::new();
        loop {
            let key = match tokens.next() {
                Token::Eof => return Err("JAAS config entry not terminated by semi-colon".into()),
                Token::Char(';') => break,
                Token::Word(w) => w,
                Token::Char(c) => c.to_string(),
                Token::Number => "null".into(),
            };
            let value = match (tokens.next(), tokens.next()) {
                (Token::Char('='), Token::Word(value)) => value,
                _ => {
                    return Err(format!(
                        "Value not specified for key '{key}' in JAAS config"
                    ))
                }
            };
            options.retain(|(k, _)| *k != key);
            options.push((key, value));
        }
        entries.push(JaasEntry {
            login_module,
            options,
        });
    }
    Ok(entries)
}

/// A token of Java's `StreamTokenizer` as `JaasConfig` sets it up. Quoted strings come
/// back as words (both have a string value); numbers have none.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Number,
    Char(char),
    Eof,
}

struct Tokenizer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl<'a> Tokenizer<'a> {
    fn new(text: &'a str) -> Tokenizer<'a> {
        Tokenizer {
            chars: text.chars().peekable(),
        }
    }

    /// Letters, `_`, `-`, `$`, U+00A0 and above (Java's defaults plus `JaasConfig`'s
    /// additions); digits and `.` continue a word but start a number.
    fn is_word_char(c: char) -> bool {
        c.is_ascii_alphabetic() || matches!(c, '_' | '-' | '$') || c >= '\u{a0}'
    }

    fn is_number_char(c: char) -> bool {
        c.is_ascii_digit() || c == '.' || c == '-'
    }

    fn next(&mut self) -> Token {
        loop {
            let Some(c) = self.chars.next() else {
                return Token::Eof;
            };
            match c {
                c if c <= ' ' => continue,
                '/' => {
                    if self.chars.peek() == Some(&'*') {
                        self.chars.next();
                        let mut prev = '\0';
                        for c in self.chars.by_ref() {
                            if prev == '*' && c == '/' {
                                break;
                            }
                            prev = c;
                        }
                    } else {
                        // `//`, and (Java's default comment character) a lone `/`.
                        for c in self.chars.by_ref() {
                            if c == '\n' || c == '\r' {
                                break;
                            }
                        }
                    }
                }
                '"' | '\'' => return Token::Word(self.quoted(c)),
                '-' => {
                    // Java reads `-` as the start of a number first.
                    match self.chars.peek() {
                        Some(&d) if d.is_ascii_digit() || d == '.' => {
                            self.skip_number();
                            return Token::Number;
                        }
                        _ => return Token::Char('-'),
                    }
                }
                c if c.is_ascii_digit() || c == '.' => {
                    self.skip_number();
                    return Token::Number;
                }
                c if Self::is_word_char(c) => {
                    let mut word = String::from(c);
                    while let Some(&c) = self.chars.peek() {
                        if !(Self::is_word_char(c) || Self::is_number_char(c)) {
                            break;
                        }
                        word.push(c);
                        self.chars.next();
                    }
                    return Token::Word(word);
                }
                c => return Token::Char(c),
            }
        }
    }

    fn skip_number(&mut self) {
        while self
            .chars
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || *c == '.')
        {
            self.chars.next();
        }
    }

    /// A quoted string up to its closing quote or the end of the line, with
    /// `StreamTokenizer`'s escapes.
    fn quoted(&mut self, quote: char) -> String {
        let mut out = String::new();
        while let Some(c) = self.chars.next() {
            match c {
                c if c == quote => break,
                '\n' | '\r' => break,
                '\\' => {
                    let Some(e) = self.chars.next() else { break };
                    let escaped = match e {
                        'a' => '\u{7}',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'v' => '\u{b}',
                        '0'..='7' => {
                            let mut value = e as u32 - '0' as u32;
                            let max_digits = if e <= '3' { 2 } else { 1 };
                            for _ in 0..max_digits {
                                match self.chars.peek().and_then(|c| c.to_digit(8)) {
                                    Some(d) => {
                                        value = value * 8 + d;
                                        self.chars.next();
                                    }
                                    None => break,
                                }
                            }
                            char::from_u32(value).unwrap_or('\u{fffd}')
                        }
                        other => other,
                    };
                    out.push(escaped);
                }
                c => out.push(c),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Arc<dyn PlainVerifier> {
        let mut u = PlainUsers::new();
        u.insert("alice", "alice-secret");
        u.insert("bob", "bob-secret");
        Arc::new(u)
    }

    fn run(token: &[u8]) -> Result<SaslStep, AuthError> {
        PlainServer::new(users()).evaluate(token)
    }

    fn client_message(token: &[u8]) -> String {
        run(token).unwrap_err().client_message()
    }

    #[test]
    fn a_valid_token_completes_with_the_user() {
        for token in [&b"\0alice\0alice-secret"[..], b"alice\0alice\0alice-secret"] {
            let step = run(token).unwrap();
            assert_eq!(
                step,
                SaslStep::Complete {
                    principal: KafkaPrincipal::user("alice"),
                    final_token: vec![]
                }
            );
        }
    }

    #[test]
    fn failures_carry_kafkas_messages() {
        assert_eq!(
            client_message(b"\0alice\0wrong"),
            "Authentication failed: Invalid username or password"
        );
        assert_eq!(
            client_message(b"\0carol\0alice-secret"),
            "Authentication failed: Invalid username or password"
        );
        assert_eq!(
            client_message(b"bob\0alice\0alice-secret"),
            "Authentication failed: Client requested an authorization id that is different from username"
        );
        // Kafka authenticates before it looks at the authorization id.
        assert_eq!(
            client_message(b"bob\0alice\0wrong"),
            "Authentication failed: Invalid username or password"
        );
        assert_eq!(
            client_message(b"\0\0alice-secret"),
            "Authentication failed: username not specified"
        );
        assert_eq!(
            client_message(b"\0alice\0"),
            "Authentication failed: password not specified"
        );
        assert_eq!(
            client_message(b"alice-secret"),
            "Invalid SASL/PLAIN response: expected 3 tokens, got 1"
        );
        assert_eq!(
            client_message(b"\0a\0b\0c\0d\0e"),
            "Invalid SASL/PLAIN response: expected 3 tokens, got 4"
        );
        assert_eq!(
            client_message(b"\0alice\0\xff"),
            "Authentication failed during authentication due to invalid credentials with SASL mechanism PLAIN"
        );
        let huge = vec![b'a'; MAX_TOKEN_BYTES + 1];
        assert_eq!(
            run(&huge).unwrap_err().reason,
            Reason::TooLarge(MAX_TOKEN_BYTES + 1)
        );
    }

    #[test]
    fn the_log_line_never_shows_the_password() {
        let err = run(b"\0alice\0hunter2-wrong").unwrap_err();
        let line = err.to_string();
        assert!(line.contains("alice"), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
        assert!(!format!("{err:?}").contains("hunter2"));
    }

    #[test]
    fn one_token_only() {
        let mut server = PlainServer::new(users());
        server.evaluate(b"\0alice\0alice-secret").unwrap();
        assert!(server.is_complete());
        let again = server.evaluate(b"\0alice\0alice-secret").unwrap_err();
        assert_eq!(again.reason, Reason::UnexpectedToken("completed"));
        assert!(
            server.is_complete(),
            "a stray token does not undo the completion"
        );
        let mut failed = PlainServer::new(users());
        failed.evaluate(b"\0alice\0wrong").unwrap_err();
        assert_eq!(
            failed
                .evaluate(b"\0alice\0alice-secret")
                .unwrap_err()
                .reason,
            Reason::UnexpectedToken("failed")
        );
        assert!(!failed.is_complete());
    }

    #[test]
    fn parses_kafkas_jaas_config() {
        let users = parse_plain_jaas(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#,
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.verify("alice", "alice-secret").is_some());
        assert!(users.verify("admin", "admin-secret").is_some());
        assert!(users.verify("alice", "admin-secret").is_none());
        // The broker's own login is not a user.
        assert!(!users.contains("username"));
        let debug = format!("{users:?}");
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn jaas_tokenizing_follows_stream_tokenizer() {
        let users = parse_plain_jaas(
            "/* brokers */ org.apache.kafka.common.security.plain.PlainLoginModule REQUIRED\n\
             // the users\n\
             user_bob=bob-pw user_carol='it\\'s \\\"q\\\"' user_dave=\"a\\tb\" user_x$y=\"z\"\n\
             user_bob=\"second\";",
        )
        .unwrap();
        assert!(
            users.verify("bob", "second").is_some(),
            "a later duplicate wins"
        );
        assert!(users.verify("carol", "it's \"q\"").is_some());
        assert!(users.verify("dave", "a\tb").is_some());
        assert!(users.verify("x$y", "z").is_some());
    }

    #[test]
    fn jaas_errors() {
        let err = |jaas: &str| parse_plain_jaas(jaas).unwrap_err();
        assert_eq!(err(""), "Login module not specified in JAAS config");
        assert_eq!(
            err("org.apache.kafka.common.security.plain.PlainLoginModule"),
            "Login module control flag not specified in JAAS config"
        );
        assert_eq!(
            err("org.apache.kafka.common.security.plain.PlainLoginModule needed;"),
            "Invalid login module control flag 'needed' in JAAS config"
        );
        assert_eq!(
            err(r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_a="x""#),
            "JAAS config entry not terminated by semi-colon"
        );
        assert_eq!(
            err("org.apache.kafka.common.security.plain.PlainLoginModule required user_a=;"),
            "Value not specified for key 'user_a' in JAAS config"
        );
        // An unquoted value starting with a digit is a number, which has no string.
        assert_eq!(
            err("org.apache.kafka.common.security.plain.PlainLoginModule required user_a=123;"),
            "Value not specified for key 'user_a' in JAAS config"
        );
        assert_eq!(
            err(
                "org.apache.kafka.common.security.plain.PlainLoginModule required; \
                 org.apache.kafka.common.security.plain.PlainLoginModule required;"
            ),
            "JAAS config property contains 2 login modules, should be 1 module"
        );
        let other = err(
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="a" password="secret-b";"#,
        );
        assert!(
            other.starts_with(
                "login module org.apache.kafka.common.security.scram.ScramLoginModule is not supported"
            ),
            "{other}"
        );
        assert!(!other.contains("secret-b"));
    }
}
