//! The server side of a SASL exchange, one per connection and mechanism: the front end
//! hands each token the client sent (SaslAuthenticate's `auth_bytes`) to
//! [`SaslServer::evaluate`] and sends back what it returns, until the exchange
//! completes with a principal or fails with an [`AuthError`].

pub mod oauthbearer;
pub mod plain;
pub mod scram;

use std::fmt;
use std::sync::Arc;

use crate::principal::KafkaPrincipal;

pub use oauthbearer::{
    parse_oauthbearer_jaas, JwksSettings, JwksValidator, OAuthBearerServer, TokenValidator,
    UnsecuredValidator,
};
pub use plain::{parse_plain_jaas, PlainLogin, PlainServer, PlainUsers, PlainVerifier};
pub use scram::{ScramCredential, ScramCredentials, ScramMechanism, ScramServer};

/// The SASL mechanisms, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl Mechanism {
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
        Mechanism::OAuthBearer,
    ];

    /// The name SaslHandshake carries and `sasl.enabled.mechanisms` lists.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => ScramMechanism::Sha256.name(),
            Mechanism::ScramSha512 => ScramMechanism::Sha512.name(),
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The mechanism with this exact name (Kafka compares names case-sensitively).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn scram(self) -> Option<ScramMechanism> {
        match self {
            Mechanism::Plain | Mechanism::OAuthBearer => None,
            Mechanism::ScramSha256 => Some(ScramMechanism::Sha256),
            Mechanism::ScramSha512 => Some(ScramMechanism::Sha512),
        }
    }
}

impl From<ScramMechanism> for Mechanism {
    fn from(m: ScramMechanism) -> Mechanism {
        match m {
            ScramMechanism::Sha256 => Mechanism::ScramSha256,
            ScramMechanism::Sha512 => Mechanism::ScramSha512,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to do after a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send these bytes to the client and wait for its next token.
    Challenge(Vec<u8>),
    /// The client is `principal`; send `final_token` (SCRAM's server-final message,
    /// empty for PLAIN) in the last SaslAuthenticate response.
    Complete {
        principal: KafkaPrincipal,
        final_token: Vec<u8>,
    },
}

/// The largest token either mechanism accepts. Real PLAIN and SCRAM tokens are a few
/// hundred bytes; the cap bounds the memory and hashing work one connection can ask for.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// A failed exchange. `Display` (for the broker's log) says why without any password,
/// proof or key; [`AuthError::client_message`] is what Kafka tells the client, which
/// never says whether the user exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SASL/{mechanism} authentication failed: {reason}")]
pub struct AuthError {
    pub mechanism: Mechanism,
    pub reason: Reason,
}

/// Why an exchange failed, for the log. Names in it are shortened and escaped
/// ([`log_name`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("malformed client message: {0}")]
    Malformed(&'static str),
    #[error("a token of {0} bytes, over the limit of {MAX_TOKEN_BYTES}")]
    TooLarge(usize),
    #[error("the PLAIN response has {0} NUL-separated tokens, not 3")]
    PlainTokenCount(usize),
    #[error("username not specified")]
    MissingUsername,
    #[error("password not specified")]
    MissingPassword,
    #[error("invalid username or password (user {user})")]
    InvalidCredentials { user: String },
    #[error("unknown user {user}")]
    UnknownUser { user: String },
    #[error("wrong client proof for user {user}")]
    WrongProof { user: String },
    #[error("the authorization id differs from the username {user}")]
    AuthorizationIdMismatch { user: String },
    #[error("the client asked for channel binding, which is not supported")]
    ChannelBindingRequested,
    #[error("the channel binding attribute does not match the gs2 header")]
    ChannelBindingMismatch,
    #[error("delegation token authentication requested, and there are no delegation tokens")]
    DelegationTokenRequested,
    #[error("the client final message's nonce is not the server's")]
    NonceMismatch,
    #[error("the stored credential of user {user} has {iterations} iterations, below the minimum")]
    TooFewIterations { user: String, iterations: u32 },
    #[error("a token arrived after the exchange had {0}")]
    UnexpectedToken(&'static str),
    #[error("no randomness for a nonce: {0}")]
    NoRandomness(String),
    /// OAUTHBEARER: the token was refused (`why`), the client acknowledged the error.
    #[error("the token was refused: {why}")]
    TokenRefused { status_json: String, why: String },
}

impl AuthError {
    pub(crate) fn new(mechanism: Mechanism, reason: Reason) -> AuthError {
        AuthError { mechanism, reason }
    }

    /// The SaslAuthenticate `error_message` Kafka sends for this failure (with error
    /// code SASL_AUTHENTICATION_FAILED): PLAIN's own messages, the authorization-id
    /// message, and otherwise the generic one, which says nothing about the user.
    pub fn client_message(&self) -> String {
        let plain = self.mechanism == Mechanism::Plain;
        match &self.reason {
            Reason::MissingUsername if plain => {
                "Authentication failed: username not specified".into()
            }
            Reason::MissingPassword if plain => {
                "Authentication failed: password not specified".into()
            }
            Reason::InvalidCredentials { .. } if plain => {
                "Authentication failed: Invalid username or password".into()
            }
            Reason::PlainTokenCount(n) if plain => {
                format!("Invalid SASL/PLAIN response: expected 3 tokens, got {n}")
            }
            // Kafka's OAuthBearerSaslServer fails with the JSON error it sent.
            Reason::TokenRefused { status_json, .. } => status_json.clone(),
            Reason::AuthorizationIdMismatch { .. } if self.mechanism == Mechanism::OAuthBearer => {
                "Authentication failed: Client requested an authorization id that is different from the token's principal name".into()
            }
            Reason::AuthorizationIdMismatch { .. } => {
                "Authentication failed: Client requested an authorization id that is different from username".into()
            }
            _ => format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                self.mechanism
            ),
        }
    }
}

/// A username as the log shows it: at most 128 characters, escaped, so a client cannot
/// flood the log or forge lines with it.
pub fn log_name(name: &str) -> String {
    const MAX: usize = 128;
    let mut shown: String = name
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().nth(MAX).is_some() {
        shown.push_str("...");
    }
    format!("\"{shown}\"")
}

/// One connection's exchange for one mechanism.
#[derive(Debug)]
pub enum SaslServer {
    Plain(PlainServer),
    Scram(ScramServer),
    OAuthBearer(OAuthBearerServer),
}

impl SaslServer {
    pub fn plain(verifier: Arc<dyn PlainVerifier>) -> SaslServer {
        SaslServer::Plain(PlainServer::new(verifier))
    }

    pub fn scram(mechanism: ScramMechanism, credentials: Arc<dyn ScramCredentials>) -> SaslServer {
        SaslServer::Scram(ScramServer::new(mechanism, credentials))
    }

    pub fn oauthbearer(validator: Arc<dyn TokenValidator>) -> SaslServer {
        SaslServer::OAuthBearer(OAuthBearerServer::new(validator))
    }

    pub fn mechanism(&self) -> Mechanism {
        match self {
            SaslServer::Plain(_) => Mechanism::Plain,
            SaslServer::Scram(s) => s.mechanism().into(),
            SaslServer::OAuthBearer(_) => Mechanism::OAuthBearer,
        }
    }

    /// When the credential expires (ms since the epoch), for a completed exchange whose
    /// credential has a lifetime (an OAUTHBEARER token): Kafka's
    /// `CREDENTIAL_LIFETIME_MS` negotiated property, which bounds the session (KIP-368).
    pub fn credential_expires_at_ms(&self) -> Option<i64> {
        match self {
            SaslServer::OAuthBearer(s) => s.credential_expires_at_ms(),
            _ => None,
        }
    }

    /// The next step for the client's token. After an error or completion, every
    /// further token is an error.
    pub fn evaluate(&mut self, client_token: &[u8]) -> Result<SaslStep, AuthError> {
        match self {
            SaslServer::Plain(s) => s.evaluate(client_token),
            SaslServer::Scram(s) => s.evaluate(client_token),
            SaslServer::OAuthBearer(s) => s.evaluate(client_token),
        }
    }

    pub fn is_complete(&self) -> bool {
        match self {
            SaslServer::Plain(s) => s.is_complete(),
            SaslServer::Scram(s) => s.is_complete(),
            SaslServer::OAuthBearer(s) => s.is_complete(),
        }
    }

    /// After completion: an Event Hubs connection-string login's grant.
    pub fn take_sas_grant(&mut self) -> Option<crate::sas::SasGrant> {
        match self {
            SaslServer::Plain(s) => s.take_sas_grant(),
            SaslServer::Scram(_) | SaslServer::OAuthBearer(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use scram::tests::{store_of, TestClient};

    type Store = Arc<std::collections::HashMap<(String, ScramMechanism), ScramCredential>>;

    /// Made once: PBKDF2's 4096 rounds per case would make the properties slow.
    fn store() -> Store {
        static STORE: std::sync::LazyLock<Store> = std::sync::LazyLock::new(|| {
            store_of(&[
                ("alice", ScramMechanism::Sha256, "pw"),
                ("alice", ScramMechanism::Sha512, "pw"),
            ])
        });
        STORE.clone()
    }

    fn servers() -> Vec<SaslServer> {
        let mut users = PlainUsers::new();
        users.insert("alice", "alice-secret");
        vec![
            SaslServer::plain(Arc::new(users)),
            SaslServer::scram(ScramMechanism::Sha256, store()),
            SaslServer::scram(ScramMechanism::Sha512, store()),
            SaslServer::oauthbearer(Arc::new(UnsecuredValidator::default())),
        ]
    }

    const SERVER_NONCE: &str = "3rfcNHYJY1ZVvWVs7j";

    /// A valid client-final message for a server with [`SERVER_NONCE`].
    fn valid_final() -> &'static [u8] {
        static FINAL: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
            let m = ScramMechanism::Sha256;
            let mut server = ScramServer::with_server_nonce(m, store(), SERVER_NONCE);
            let client = TestClient::new(m, "alice", "pw");
            let Ok(SaslStep::Challenge(first)) = server.evaluate(&client.first()) else {
                panic!("no challenge");
            };
            let (last, _) = client.finish(&first);
            assert!(server.evaluate(&last).is_ok());
            last
        });
        &FINAL
    }

    /// Bytes, or text from SCRAM's and PLAIN's alphabet so that parsing gets deep.
    fn token() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            "[nyp=acrmsiv,0-9A-Za-z+/\\x00\\x01 .-]{0,120}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn random_tokens_at_every_step_never_panic(
            tokens in proptest::collection::vec(token(), 1..5),
        ) {
            for mut server in servers() {
                for t in &tokens {
                    let _ = server.evaluate(t);
                }
            }
        }

        #[test]
        fn random_tokens_after_a_valid_first_message_never_panic(
            tokens in proptest::collection::vec(token(), 1..4),
        ) {
            for m in ScramMechanism::ALL {
                let mut server = SaslServer::scram(m, store());
                let client = TestClient::new(m, "alice", "pw");
                prop_assert!(server.evaluate(&client.first()).is_ok());
                // No random token is a valid proof; after the first, all are refused.
                for t in &tokens {
                    prop_assert!(server.evaluate(t).is_err());
                }
            }
        }

        #[test]
        fn a_mutated_client_final_message_never_panics_or_passes(
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let m = ScramMechanism::Sha256;
            let mut server = ScramServer::with_server_nonce(m, store(), SERVER_NONCE);
            let client = TestClient::new(m, "alice", "pw");
            prop_assert!(server.evaluate(&client.first()).is_ok());
            let mut last = valid_final().to_vec();
            let i = at.index(last.len());
            prop_assume!(last[i] != byte);
            last[i] = byte;
            // Any change to the signed message or the proof fails the exchange.
            prop_assert!(server.evaluate(&last).is_err());
        }
    }

    #[test]
    fn mechanisms_have_kafkas_names() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(Mechanism::Plain.name(), "PLAIN");
        assert_eq!(Mechanism::ScramSha256.name(), "SCRAM-SHA-256");
        assert_eq!(Mechanism::ScramSha512.name(), "SCRAM-SHA-512");
        assert_eq!(Mechanism::OAuthBearer.name(), "OAUTHBEARER");
        assert_eq!(Mechanism::from_name("plain"), None);
        assert_eq!(Mechanism::from_name("GSSAPI"), None);
    }

    #[test]
    fn client_messages_are_kafkas() {
        let scram = AuthError::new(
            Mechanism::ScramSha256,
            Reason::UnknownUser { user: "x".into() },
        );
        assert_eq!(
            scram.client_message(),
            "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
        );
        let wrong = AuthError::new(
            Mechanism::ScramSha256,
            Reason::WrongProof { user: "x".into() },
        );
        assert_eq!(wrong.client_message(), scram.client_message());
        let plain = AuthError::new(
            Mechanism::Plain,
            Reason::InvalidCredentials { user: "x".into() },
        );
        assert_eq!(
            plain.client_message(),
            "Authentication failed: Invalid username or password"
        );
    }

    #[test]
    fn log_names_are_bounded_and_escaped() {
        assert_eq!(log_name("alice"), "\"alice\"");
        assert_eq!(log_name("a\nb\""), "\"a\\nb\\\"\"");
        let long = "x".repeat(1000);
        assert_eq!(log_name(&long).len(), 128 + 2 + 3);
    }
}
