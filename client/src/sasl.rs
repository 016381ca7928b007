//! The client side of SASL: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, 7677).
//!
//! Everything the server sends is untrusted: a malformed SCRAM message is an error,
//! never a panic, and the iteration count it asks for is bounded. Passwords never
//! appear in errors or in `Debug` output.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::error::{Error, Result};

/// A SASL mechanism this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    /// The IANA name, as `sasl.mechanism` and SaslHandshake spell it.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(s: &str) -> Option<SaslMechanism> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Some(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Some(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(SaslMechanism::ScramSha512),
            _ => None,
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A mechanism with a username and password. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"[hidden]")
            .finish()
    }
}

/// Bounds on the server's iteration count: RFC 7677's minimum (Kafka's too), and a
/// ceiling so a hostile server cannot make the client spin for minutes.
const MIN_ITERATIONS: u32 = 4096;
const MAX_ITERATIONS: u32 = 1_000_000;

/// One client exchange: the first token, then one step per server message.
pub(crate) enum Exchange {
    Plain,
    Scram(Scram),
    Done,
}

pub(crate) struct Scram {
    sha512: bool,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    /// Set once the client-final message is sent: the signature the server must prove.
    expected_server_signature: Option<Vec<u8>>,
}

impl Exchange {
    /// Start an exchange; returns it and the first token to send.
    pub(crate) fn start(creds: &SaslCredentials) -> Result<(Exchange, Vec<u8>)> {
        match creds.mechanism {
            SaslMechanism::Plain => {
                if creds.username.contains('\0') || creds.password.contains('\0') {
                    return Err(Error::Config(
                        "a SASL/PLAIN username or password cannot contain NUL".into(),
                    ));
                }
                let mut token = Vec::with_capacity(2 + creds.username.len() + creds.password.len());
                token.push(0);
                token.extend_from_slice(creds.username.as_bytes());
                token.push(0);
                token.extend_from_slice(creds.password.as_bytes());
                Ok((Exchange::Plain, token))
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let mut raw = [0u8; 24];
                getrandom::fill(&mut raw)
                    .map_err(|e| Error::Other(format!("no randomness for a SCRAM nonce: {e}")))?;
                let nonce = STANDARD.encode(raw);
                let (scram, token) = Scram::new(
                    creds.mechanism == SaslMechanism::ScramSha512,
                    &creds.username,
                    &creds.password,
                    nonce,
                );
                Ok((Exchange::Scram(scram), token))
            }
        }
    }

    /// Take the server's answer to the last token: the next token to send, or `None`
    /// when the exchange is complete.
    pub(crate) fn step(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>> {
        match std::mem::replace(self, Exchange::Done) {
            Exchange::Plain => Ok(None),
            Exchange::Scram(mut scram) => {
                let text = std::str::from_utf8(server)
                    .map_err(|_| scram_error("the server's message is not UTF-8"))?;
                if scram.expected_server_signature.is_none() {
                    let token = scram.client_final(text)?;
                    *self = Exchange::Scram(scram);
                    Ok(Some(token))
                } else {
                    scram.verify_server_final(text)?;
                    Ok(None)
                }
            }
            Exchange::Done => Err(scram_error("the server sent more after the exchange ended")),
        }
    }
}

fn scram_error(what: &str) -> Error {
    Error::Protocol(format!("SASL/SCRAM: {what}"))
}

/// RFC 5802 `saslname`: `=` and `,` are escaped.
fn sasl_name(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

impl Scram {
    fn new(sha512: bool, user: &str, password: &str, client_nonce: String) -> (Scram, Vec<u8>) {
        let client_first_bare = format!("n={},r={client_nonce}", sasl_name(user));
        let token = format!("n,,{client_first_bare}").into_bytes();
        (
            Scram {
                sha512,
                password: password.to_string(),
                client_nonce,
                client_first_bare,
                expected_server_signature: None,
            },
            token,
        )
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            // HMAC accepts keys of any length; the error arm is unreachable in practice.
            match <M as KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        if self.sha512 {
            run::<Hmac<Sha512>>(key, data)
        } else {
            run::<Hmac<Sha256>>(key, data)
        }
    }

    fn hash(&self, data: &[u8]) -> Vec<u8> {
        if self.sha512 {
            Sha512::digest(data).to_vec()
        } else {
            Sha256::digest(data).to_vec()
        }
    }

    fn salted_password(&self, salt: &[u8], iterations: u32) -> Vec<u8> {
        let pw = self.password.as_bytes();
        if self.sha512 {
            let mut out = vec![0u8; 64];
            pbkdf2::pbkdf2_hmac::<Sha512>(pw, salt, iterations, &mut out);
            out
        } else {
            let mut out = vec![0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(pw, salt, iterations, &mut out);
            out
        }
    }

    /// Read server-first (`r=...,s=...,i=...`) and build client-final.
    fn client_final(&mut self, server_first: &str) -> Result<Vec<u8>> {
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                Some(("e", v)) => {
                    return Err(scram_error(&format!(
                        "the server refused: {}",
                        printable(v)
                    )))
                }
                Some(("m", _)) => return Err(scram_error("unsupported mandatory extension")),
                // Other extensions are optional (RFC 5802 §5.1): skip them.
                Some((k, _)) if k.len() == 1 => {}
                _ => return Err(scram_error("malformed server-first message")),
            }
        }
        let nonce = nonce.ok_or_else(|| scram_error("server-first has no nonce"))?;
        if nonce.len() <= self.client_nonce.len() || !nonce.starts_with(&self.client_nonce) {
            return Err(scram_error(
                "the server's nonce does not extend the client's",
            ));
        }
        if !nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
        {
            return Err(scram_error("the server's nonce is not printable"));
        }
        let salt = STANDARD
            .decode(salt.ok_or_else(|| scram_error("server-first has no salt"))?)
            .map_err(|_| scram_error("the salt is not base64"))?;
        let iterations: u32 = iterations
            .ok_or_else(|| scram_error("server-first has no iteration count"))?
            .parse()
            .map_err(|_| scram_error("the iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(scram_error(&format!(
                "iteration count {iterations} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            )));
        }
        let salted = self.salted_password(&salt, iterations);
        let client_key = self.hmac(&salted, b"Client Key");
        let stored_key = self.hash(&client_key);
        // c=biws is base64("n,,"): no channel binding, no authzid.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = self.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = self.hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(self.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Read server-final (`v=...` or `e=...`) and check the server's signature.
    fn verify_server_final(&self, server_final: &str) -> Result<()> {
        let first = server_final.split(',').next().unwrap_or_default();
        if let Some(e) = first.strip_prefix("e=") {
            return Err(scram_error(&format!(
                "the server refused: {}",
                printable(e)
            )));
        }
        let v = first
            .strip_prefix("v=")
            .ok_or_else(|| scram_error("malformed server-final message"))?;
        let got = STANDARD
            .decode(v)
            .map_err(|_| scram_error("the server signature is not base64"))?;
        if Some(&got) != self.expected_server_signature.as_ref() {
            return Err(scram_error(
                "the server's signature is wrong: it does not know this user's credential",
            ));
        }
        Ok(())
    }
}

/// A server-chosen string for an error message: printable ASCII, at most 200 chars.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3's example exchange for SCRAM-SHA-256.
    #[test]
    fn rfc7677_example() {
        let (mut scram, first) = Scram::new(false, "user", "pencil", "rOprNGfwEbeRWgbNEkqO".into());
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let final_msg = scram
            .client_final(
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(final_msg).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        scram
            .verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(scram
            .verify_server_final("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .is_err());
    }

    #[test]
    fn malformed_server_messages_are_errors() {
        let bad = [
            "",
            "garbage",
            "r=other,s=c2FsdA==,i=4096",
            "r=abcX,s=***,i=4096",
            "r=abcX,s=c2FsdA==,i=lots",
            "r=abcX,s=c2FsdA==,i=1",
            "r=abcX,s=c2FsdA==,i=4294967295",
            "r=abcX,s=c2FsdA==",
            "r=abc,s=c2FsdA==,i=4096",
            "m=ext,r=abcX,s=c2FsdA==,i=4096",
            "e=unknown-user",
            "r=abc\u{1}X,s=c2FsdA==,i=4096",
        ];
        for msg in bad {
            let (mut scram, _) = Scram::new(true, "u", "p", "abc".into());
            assert!(scram.client_final(msg).is_err(), "{msg:?}");
        }
        let (mut scram, _) = Scram::new(true, "u", "p", "abc".into());
        scram.client_final("r=abcX,s=c2FsdA==,i=4096").unwrap();
        for msg in ["", "v=", "v=!!", "e=invalid-proof", "x=1"] {
            assert!(scram.verify_server_final(msg).is_err(), "{msg:?}");
        }
        let mut ex = Exchange::Scram(Scram::new(false, "u", "p", "abc".into()).0);
        assert!(ex.step(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn names_are_escaped_and_passwords_hidden() {
        assert_eq!(sasl_name("a=b,c"), "a=3Db=2Cc");
        let creds = SaslCredentials {
            mechanism: SaslMechanism::Plain,
            username: "alice".into(),
            password: "alice-secret".into(),
        };
        assert!(!format!("{creds:?}").contains("alice-secret"));
        let (_, token) = Exchange::start(&creds).unwrap();
        assert_eq!(token, b"\0alice\0alice-secret");
    }
}
