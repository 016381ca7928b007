//! SASL/SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), server side, with
//! Kafka's rules (`ScramSaslServer`, `ScramMessages`, `ScramFormatter`,
//! `ScramMechanism`), and the credential a server keeps: salt, stored key, server key
//! and iterations, never the password.
//!
//! The client-final nonce must end with the server's, as Kafka checks it (the RFC wants
//! equality, but old librdkafka repeats the client nonce). Where this is stricter than
//! Kafka, it follows the RFC: `c=` must be the client's gs2 header in
//! base64 (Kafka does not look), and the reserved `m=` attribute fails the exchange (as
//! RFC 5802 requires; Kafka ignores it). It is more lenient in two places the RFC
//! allows: the `y` channel-binding flag is accepted (the client supports channel binding
//! but thinks we do not, which is true; Kafka's pattern only admits `n`), and names may
//! be any UTF-8 (Kafka's pattern admits ASCII only). Neither Kafka nor this server
//! applies SASLprep to names or passwords.
//!
//! An unknown user gets a server-first message like a known one's, with a salt derived
//! from a per-process secret and the name (so it is stable across attempts, as a real
//! salt is) and the default iteration count, and fails at the client-final message, as
//! a wrong password does. Kafka fails an unknown user at once.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::{log_name, AuthError, Reason, SaslStep, MAX_TOKEN_BYTES};
use crate::principal::KafkaPrincipal;

/// The two SCRAM mechanisms, with Kafka's names and type ids.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];
    /// Kafka's bounds for both mechanisms (`ScramMechanism`): the server refuses a
    /// stored credential below the minimum, and AlterUserScramCredentials refuses
    /// counts outside them.
    pub const MIN_ITERATIONS: u32 = 4096;
    pub const MAX_ITERATIONS: u32 = 16384;
    /// What `kafka-storage format --add-scram` uses when no count is given.
    pub const DEFAULT_ITERATIONS: u32 = 4096;

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The mechanism byte of AlterUserScramCredentials and DescribeUserScramCredentials.
    pub fn type_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_type_id(id: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.type_id() == id)
    }

    /// Bytes of the hash, and so of keys, signatures and proofs.
    pub fn hash_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    /// The iteration count AlterUserScramCredentials accepts, with the controller's
    /// messages (UNACCEPTABLE_CREDENTIAL).
    pub fn check_iterations(self, iterations: u32) -> Result<(), &'static str> {
        if iterations < Self::MIN_ITERATIONS {
            Err("Too few iterations")
        } else if iterations > Self::MAX_ITERATIONS {
            Err("Too many iterations")
        } else {
            Ok(())
        }
    }

    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut mac =
                <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
            for p in parts {
                mac.update(p);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramMechanism::Sha256 => run::<Hmac<Sha256>>(key, parts),
            ScramMechanism::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// RFC 5802's `Hi(str, salt, i)`, which is PBKDF2 with this HMAC and one block of
    /// output; the `pbkdf2` crate computes it (one audited loop instead of our own).
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.hash_len()];
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out)
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut out)
            }
        }
        out
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a server keeps of a SCRAM password (Kafka's `ScramCredential`,
/// RFC 5802 section 5).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

/// Bytes of a salt we generate. Kafka's is the UTF-8 of a 130-bit random number in base
/// 36 (`ScramFormatter.secureRandomBytes`, about 26 bytes); clients treat the salt as
/// opaque bytes, so 32 random bytes serve.
pub const SALT_BYTES: usize = 32;

impl ScramCredential {
    /// A credential for `password` with a fresh random salt.
    pub fn generate(
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> io::Result<ScramCredential> {
        let salt = random_bytes::<SALT_BYTES>()?.to_vec();
        Ok(ScramCredential::with_salt(
            mechanism, password, salt, iterations,
        ))
    }

    pub fn with_salt(
        mechanism: ScramMechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let salted = mechanism.salted_password(password, &salt, iterations);
        ScramCredential::from_salted(mechanism, salt, &salted, iterations)
    }

    /// From a salt and `Hi(password, salt, iterations)`, which is what
    /// AlterUserScramCredentials and `--add-scram saltedpassword=` carry.
    pub fn from_salted(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, &[b"Client Key"]);
        ScramCredential {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, &[b"Server Key"]),
            iterations,
        }
    }
}

impl fmt::Debug for ScramCredential {
    /// The keys are secret-equivalent (offline guessing), so they stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt_len", &self.salt.len())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Where a SCRAM server finds a user's credential: the security store, or for tests a
/// map.
pub trait ScramCredentials: Send + Sync {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

impl ScramCredentials for HashMap<(String, ScramMechanism), ScramCredential> {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.get(&(user.to_string(), mechanism)).cloned()
    }
}

pub(crate) fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
    Ok(out)
}

/// The secret behind unknown users' fake credentials: random, once per process.
fn process_secret() -> io::Result<&'static [u8; 32]> {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    if let Some(s) = SECRET.get() {
        return Ok(s);
    }
    let fresh = random_bytes::<32>()?;
    Ok(SECRET.get_or_init(|| fresh))
}

/// A credential no password matches, stable for one (user, mechanism) in this process.
fn fake_credential(mechanism: ScramMechanism, user: &str) -> io::Result<ScramCredential> {
    let secret = process_secret()?;
    let derive = |label: &[u8], len: usize| {
        let mut out = Vec::with_capacity(len);
        let mut counter = 0u8;
        while out.len() < len {
            out.extend(ScramMechanism::Sha256.hmac(
                secret,
                &[
                    label,
                    mechanism.name().as_bytes(),
                    &[0, counter],
                    user.as_bytes(),
                ],
            ));
            counter += 1;
        }
        out.truncate(len);
        out
    };
    Ok(ScramCredential {
        salt: derive(b"salt", SALT_BYTES),
        stored_key: derive(b"stored-key", mechanism.hash_len()),
        server_key: derive(b"server-key", mechanism.hash_len()),
        iterations: ScramMechanism::DEFAULT_ITERATIONS,
    })
}

/// What the server remembers between its first and final message.
struct Pending {
    user: String,
    known: bool,
    credential: ScramCredential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

enum State {
    First,
    Final(Box<Pending>),
    Complete,
    Failed,
}

/// One connection's SCRAM exchange: client-first, server-first, client-final,
/// server-final.
pub struct ScramServer {
    mechanism: ScramMechanism,
    credentials: Arc<dyn ScramCredentials>,
    state: State,
    /// Set by tests to replay RFC 7677's example; otherwise random per exchange.
    fixed_nonce: Option<String>,
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::First => "first",
            State::Final(_) => "final",
            State::Complete => "complete",
            State::Failed => "failed",
        };
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism, credentials: Arc<dyn ScramCredentials>) -> ScramServer {
        ScramServer {
            mechanism,
            credentials,
            state: State::First,
            fixed_nonce: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_server_nonce(
        mechanism: ScramMechanism,
        credentials: Arc<dyn ScramCredentials>,
        nonce: &str,
    ) -> ScramServer {
        ScramServer {
            fixed_nonce: Some(nonce.to_string()),
            ..ScramServer::new(mechanism, credentials)
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    pub fn evaluate(&mut self, token: &[u8]) -> Result<SaslStep, AuthError> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        let result = if token.len() > MAX_TOKEN_BYTES {
            Err(Reason::TooLarge(token.len()))
        } else {
            match state {
                State::First => self.client_first(token).map(|(pending, step)| {
                    self.state = State::Final(pending);
                    step
                }),
                State::Final(pending) => self.client_final(&pending, token).inspect(|_| {
                    self.state = State::Complete;
                }),
                State::Complete => {
                    self.state = State::Complete;
                    Err(Reason::UnexpectedToken("completed"))
                }
                State::Failed => Err(Reason::UnexpectedToken("failed")),
            }
        };
        result.map_err(|reason| AuthError::new(self.mechanism.into(), reason))
    }

    fn client_first(&self, token: &[u8]) -> Result<(Box<Pending>, SaslStep), Reason> {
        let first = ClientFirst::parse(token)?;
        if first.authzid.as_ref().is_some_and(|a| *a != first.user) {
            return Err(Reason::AuthorizationIdMismatch {
                user: log_name(&first.user),
            });
        }
        let found = self
            .credentials
            .scram_credential(&first.user, self.mechanism);
        let known = found.is_some();
        let credential = match found {
            Some(c) if c.iterations < ScramMechanism::MIN_ITERATIONS => {
                return Err(Reason::TooFewIterations {
                    user: log_name(&first.user),
                    iterations: c.iterations,
                })
            }
            Some(c) => c,
            None => fake_credential(self.mechanism, &first.user)
                .map_err(|e| Reason::NoRandomness(e.to_string()))?,
        };
        let server_nonce = match &self.fixed_nonce {
            Some(n) => n.clone(),
            None => URL_SAFE_NO_PAD
                .encode(random_bytes::<24>().map_err(|e| Reason::NoRandomness(e.to_string()))?),
        };
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        let step = SaslStep::Challenge(server_first.clone().into_bytes());
        let pending = Pending {
            user: first.user,
            known,
            credential,
            gs2_header: first.gs2_header.to_string(),
            client_first_bare: first.bare.to_string(),
            server_first,
            nonce,
        };
        Ok((Box::new(pending), step))
    }

    fn client_final(&self, p: &Pending, token: &[u8]) -> Result<SaslStep, Reason> {
        let text = std::str::from_utf8(token).map_err(|_| Reason::Malformed("not UTF-8"))?;
        // client-final-message-without-proof "," proof, the proof last.
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(Reason::Malformed("no proof attribute"))?;
        let mut attrs = without_proof.split(',');
        let channel = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(Reason::Malformed("the first attribute is not c="))?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(Reason::Malformed("the second attribute is not r="))?;
        check_nonce(nonce)?;
        for ext in attrs {
            check_extension(ext)?;
        }
        let channel = STANDARD
            .decode(channel)
            .map_err(|_| Reason::Malformed("c= is not base64"))?;
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| Reason::Malformed("p= is not base64"))?;
        // Kafka's rule (the nonce ends with the server's), not the RFC's equality:
        // librdkafka before 2.1 (the one Debian 12's kcat links) sends the client nonce
        // twice, and Kafka accepts it.
        if !nonce.ends_with(p.nonce.as_str()) {
            return Err(Reason::NonceMismatch);
        }
        if channel != p.gs2_header.as_bytes() {
            return Err(Reason::ChannelBindingMismatch);
        }
        let m = self.mechanism;
        if proof.len() != m.hash_len() {
            return Err(Reason::Malformed("the proof has the wrong length"));
        }
        let auth_message = [
            p.client_first_bare.as_bytes(),
            b",",
            p.server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_signature = m.hmac(&p.credential.stored_key, &auth_message);
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let matches = bool::from(m.hash(&client_key).ct_eq(&p.credential.stored_key));
        if !p.known {
            return Err(Reason::UnknownUser {
                user: log_name(&p.user),
            });
        }
        if !matches {
            return Err(Reason::WrongProof {
                user: log_name(&p.user),
            });
        }
        let server_signature = m.hmac(&p.credential.server_key, &auth_message);
        Ok(SaslStep::Complete {
            principal: KafkaPrincipal::user(p.user.clone()),
            final_token: format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
        })
    }
}

/// A parsed client-first message.
#[derive(Debug)]
struct ClientFirst<'a> {
    gs2_header: &'a str,
    authzid: Option<String>,
    bare: &'a str,
    user: String,
    nonce: &'a str,
}

impl<'a> ClientFirst<'a> {
    /// `gs2-header [reserved-mext ","] username "," nonce ["," extensions]`, where
    /// `gs2-header = ("n" / "y" / "p=" cb-name) "," [authzid] ","`.
    fn parse(token: &'a [u8]) -> Result<ClientFirst<'a>, Reason> {
        let text = std::str::from_utf8(token).map_err(|_| Reason::Malformed("not UTF-8"))?;
        let after_flag = if text.starts_with("p=") {
            return Err(Reason::ChannelBindingRequested);
        } else if let Some(rest) = text.strip_prefix("n,").or_else(|| text.strip_prefix("y,")) {
            rest
        } else {
            return Err(Reason::Malformed("the gs2 header's flag is not n or y"));
        };
        let (authzid, bare) = after_flag
            .split_once(',')
            .ok_or(Reason::Malformed("the gs2 header is not terminated"))?;
        let authzid = match authzid {
            "" => None,
            a => Some(decode_saslname(a.strip_prefix("a=").ok_or(
                Reason::Malformed("the gs2 header has an attribute other than a="),
            )?)?),
        };
        let gs2_header = &text[..text.len() - bare.len()];
        let mut attrs = bare.split(',');
        let user = match attrs.next() {
            Some(a) if a.starts_with("m=") => {
                return Err(Reason::Malformed("a mandatory extension (m=)"))
            }
            Some(a) => decode_saslname(
                a.strip_prefix("n=")
                    .ok_or(Reason::Malformed("the first attribute is not n="))?,
            )?,
            None => return Err(Reason::Malformed("no username")),
        };
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(Reason::Malformed("the second attribute is not r="))?;
        check_nonce(nonce)?;
        for ext in attrs {
            let (name, value) = check_extension(ext)?;
            // Kafka's `tokenauth` asks for delegation-token authentication.
            if name == "tokenauth" && value.eq_ignore_ascii_case("true") {
                return Err(Reason::DelegationTokenRequested);
            }
            tracing::debug!(extension = name, "ignoring an unsupported SCRAM extension");
        }
        Ok(ClientFirst {
            gs2_header,
            authzid,
            bare,
            user,
            nonce,
        })
    }
}

/// `saslname`: UTF-8 without NUL, `,` and `=`, which are sent as `=2C` and `=3D`.
fn decode_saslname(name: &str) -> Result<String, Reason> {
    if name.is_empty() {
        return Err(Reason::Malformed("an empty name"));
    }
    if name.contains('\0') {
        return Err(Reason::Malformed("a NUL in a name"));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = &rest[i..];
        if code.starts_with("=2C") {
            out.push(',');
        } else if code.starts_with("=3D") {
            out.push('=');
        } else {
            return Err(Reason::Malformed("an = in a name that is not =2C or =3D"));
        }
        rest = &code[3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A nonce: printable ASCII except `,`, at least one character.
fn check_nonce(nonce: &str) -> Result<(), Reason> {
    if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Reason::Malformed("the nonce is not printable ASCII"));
    }
    Ok(())
}

/// `name=value` with Kafka's extension syntax: letters, then ASCII without `,`.
fn check_extension(ext: &str) -> Result<(&str, &str), Reason> {
    let malformed = Reason::Malformed("an extension is not name=value");
    let (name, value) = ext.split_once('=').ok_or(malformed.clone())?;
    if name.is_empty()
        || !name.bytes().all(|b| b.is_ascii_alphabetic())
        || value.is_empty()
        || !value.bytes().all(|b| (0x01..=0x7f).contains(&b))
    {
        return Err(malformed);
    }
    Ok((name, value))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sasl::Mechanism;

    pub(crate) fn store_of(
        entries: &[(&str, ScramMechanism, &str)],
    ) -> Arc<HashMap<(String, ScramMechanism), ScramCredential>> {
        let mut map = HashMap::new();
        for (user, m, password) in entries {
            map.insert(
                (user.to_string(), *m),
                ScramCredential::generate(*m, password, 4096).unwrap(),
            );
        }
        Arc::new(map)
    }

    /// The client's side of RFC 5802, to drive the server as a client would.
    pub(crate) struct TestClient {
        pub mechanism: ScramMechanism,
        pub user: String,
        pub password: String,
        pub nonce: String,
        pub gs2: String,
    }

    impl TestClient {
        pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> TestClient {
            TestClient {
                mechanism,
                user: user.into(),
                password: password.into(),
                nonce: "fyko+d2lbbFgONRv9qkxdawL".into(),
                gs2: "n,,".into(),
            }
        }

        pub fn bare(&self) -> String {
            let name = self.user.replace('=', "=3D").replace(',', "=2C");
            format!("n={name},r={}", self.nonce)
        }

        pub fn first(&self) -> Vec<u8> {
            format!("{}{}", self.gs2, self.bare()).into_bytes()
        }

        /// The client-final message for `server_first`, and the server signature the
        /// client expects.
        pub fn finish(&self, server_first: &[u8]) -> (Vec<u8>, String) {
            let server_first = std::str::from_utf8(server_first).unwrap();
            let mut nonce = "";
            let mut salt = Vec::new();
            let mut iterations = 0;
            for attr in server_first.split(',') {
                let (k, v) = attr.split_once('=').unwrap();
                match k {
                    "r" => nonce = v,
                    "s" => salt = STANDARD.decode(v).unwrap(),
                    "i" => iterations = v.parse().unwrap(),
                    _ => {}
                }
            }
            let m = self.mechanism;
            let salted = m.salted_password(&self.password, &salt, iterations);
            let client_key = m.hmac(&salted, &[b"Client Key"]);
            let stored_key = m.hash(&client_key);
            let without_proof = format!("c={},r={nonce}", STANDARD.encode(&self.gs2));
            let auth = format!("{},{server_first},{without_proof}", self.bare());
            let signature = m.hmac(&stored_key, &[auth.as_bytes()]);
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&signature)
                .map(|(a, b)| a ^ b)
                .collect();
            let server_key = m.hmac(&salted, &[b"Server Key"]);
            let server_signature = m.hmac(&server_key, &[auth.as_bytes()]);
            (
                format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes(),
                format!("v={}", STANDARD.encode(server_signature)),
            )
        }
    }

    fn challenge(step: SaslStep) -> Vec<u8> {
        match step {
            SaslStep::Challenge(c) => c,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    fn exchange(
        server: &mut ScramServer,
        client: &TestClient,
    ) -> Result<(KafkaPrincipal, Vec<u8>, String), AuthError> {
        let server_first = challenge(server.evaluate(&client.first())?);
        let (client_final, expected) = client.finish(&server_first);
        match server.evaluate(&client_final)? {
            SaslStep::Complete {
                principal,
                final_token,
            } => Ok((principal, final_token, expected)),
            other => panic!("expected completion, got {other:?}"),
        }
    }

    #[test]
    fn rfc_7677_example() {
        // RFC 7677 section 3: user "user", password "pencil", and these nonces and salt.
        let m = ScramMechanism::Sha256;
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let mut map = HashMap::new();
        map.insert(
            ("user".to_string(), m),
            ScramCredential::with_salt(m, "pencil", salt, 4096),
        );
        let mut server =
            ScramServer::with_server_nonce(m, Arc::new(map), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        let first = server
            .evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
            .unwrap();
        assert_eq!(
            challenge(first),
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let last = server
            .evaluate(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(
            last,
            SaslStep::Complete {
                principal: KafkaPrincipal::user("user"),
                final_token: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
            }
        );
        assert!(server.is_complete());
    }

    #[test]
    fn rfc_7677_proof_with_a_wrong_password_fails() {
        let m = ScramMechanism::Sha256;
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let mut map = HashMap::new();
        map.insert(
            ("user".to_string(), m),
            ScramCredential::with_salt(m, "pencil2", salt, 4096),
        );
        let mut server =
            ScramServer::with_server_nonce(m, Arc::new(map), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        server
            .evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
            .unwrap();
        let err = server
            .evaluate(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap_err();
        assert_eq!(
            err.reason,
            Reason::WrongProof {
                user: "\"user\"".into()
            }
        );
    }

    #[test]
    fn full_exchanges_for_both_mechanisms() {
        for m in ScramMechanism::ALL {
            let store = store_of(&[("alice", m, "alice-secret")]);
            let mut server = ScramServer::new(m, store);
            let client = TestClient::new(m, "alice", "alice-secret");
            let (principal, final_token, expected) = exchange(&mut server, &client).unwrap();
            assert_eq!(principal, KafkaPrincipal::user("alice"));
            assert_eq!(String::from_utf8(final_token).unwrap(), expected);
            assert_eq!(expected.len(), 2 + m.hash_len().div_ceil(3) * 4);
            assert!(server.is_complete());
            let again = server.evaluate(b"c=biws").unwrap_err();
            assert_eq!(again.reason, Reason::UnexpectedToken("completed"));
        }
    }

    #[test]
    fn names_with_comma_and_equals_and_the_y_flag() {
        let m = ScramMechanism::Sha512;
        let store = store_of(&[("a,b=c", m, "pw")]);
        let mut client = TestClient::new(m, "a,b=c", "pw");
        client.gs2 = "y,a=a=2Cb=3Dc,".into();
        let (principal, _, _) = exchange(&mut ScramServer::new(m, store), &client).unwrap();
        assert_eq!(principal.name, "a,b=c");
    }

    #[test]
    fn a_credential_for_the_other_mechanism_does_not_count() {
        let store = store_of(&[("alice", ScramMechanism::Sha512, "pw")]);
        let client = TestClient::new(ScramMechanism::Sha256, "alice", "pw");
        let err = exchange(
            &mut ScramServer::new(ScramMechanism::Sha256, store),
            &client,
        )
        .unwrap_err();
        assert!(matches!(err.reason, Reason::UnknownUser { .. }), "{err}");
    }

    #[test]
    fn wrong_password_and_unknown_user_look_the_same_to_the_client() {
        let m = ScramMechanism::Sha256;
        let store = store_of(&[("alice", m, "alice-secret")]);
        let attempt = |user: &str, password: &str| {
            let mut server = ScramServer::with_server_nonce(m, store.clone(), "server-nonce");
            let client = TestClient::new(m, user, password);
            let server_first =
                String::from_utf8(challenge(server.evaluate(&client.first()).unwrap())).unwrap();
            let (client_final, _) = client.finish(server_first.as_bytes());
            let err = server.evaluate(&client_final).unwrap_err();
            (server_first, err)
        };
        let (wrong_first, wrong) = attempt("alice", "guess");
        let (unknown_first, unknown) = attempt("mallory", "guess");
        assert_eq!(wrong.client_message(), unknown.client_message());
        assert_eq!(
            wrong.client_message(),
            "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
        );
        // The log knows which.
        assert!(matches!(wrong.reason, Reason::WrongProof { .. }), "{wrong}");
        assert!(
            matches!(unknown.reason, Reason::UnknownUser { .. }),
            "{unknown}"
        );
        // The server-first messages have the same shape: salt length and iterations.
        let shape = |s: &str| {
            let salt = s.split(',').nth(1).unwrap().len();
            (salt, s.rsplit(',').next().unwrap().to_string())
        };
        assert_eq!(shape(&wrong_first), shape(&unknown_first));
        // An unknown user's salt is stable, as a real one is, and differs per user.
        let (again, _) = attempt("mallory", "other");
        assert_eq!(unknown_first, again);
        let (other_user, _) = attempt("trudy", "guess");
        assert_ne!(
            unknown_first.split(',').nth(1),
            other_user.split(',').nth(1)
        );
    }

    #[test]
    fn authorization_id_must_be_the_user() {
        let m = ScramMechanism::Sha256;
        let store = store_of(&[("alice", m, "pw")]);
        let mut server = ScramServer::new(m, store.clone());
        let err = server.evaluate(b"n,a=bob,n=alice,r=abc").unwrap_err();
        assert!(matches!(err.reason, Reason::AuthorizationIdMismatch { .. }));
        assert_eq!(
            err.client_message(),
            "Authentication failed: Client requested an authorization id that is different from username"
        );
        let mut client = TestClient::new(m, "alice", "pw");
        client.gs2 = "n,a=alice,".into();
        exchange(&mut ScramServer::new(m, store), &client).unwrap();
    }

    fn first_error(token: &[u8]) -> Reason {
        let store = store_of(&[("alice", ScramMechanism::Sha256, "pw")]);
        ScramServer::new(ScramMechanism::Sha256, store)
            .evaluate(token)
            .unwrap_err()
            .reason
    }

    #[test]
    fn malformed_client_first_messages() {
        assert_eq!(
            first_error(b"p=tls-unique,,n=alice,r=abc"),
            Reason::ChannelBindingRequested
        );
        assert_eq!(
            first_error(b"n,,n=alice,r=abc,tokenauth=true"),
            Reason::DelegationTokenRequested
        );
        for token in [
            &b""[..],
            b"n",
            b"n,",
            b"x,,n=alice,r=abc",
            b"n,x=something,n=alice,r=abc",
            b"n,,m=ext,n=alice,r=abc",
            b"n,,n=alice",
            b"n,,n=,r=abc",
            b"n,,r=abc,n=alice",
            b"n,,n=alice,r=",
            b"n,,n=alice,r=a b",
            b"n,,n=al=ice,r=abc",
            b"n,,n=al\0ice,r=abc",
            b"n,,n=alice,r=abc,",
            b"n,,n=alice,r=abc,1=2",
            b"n,,n=alice,r=abc,x=",
            b"n,,n=\xff,r=abc",
        ] {
            assert!(
                matches!(first_error(token), Reason::Malformed(_)),
                "{:?} should be malformed",
                String::from_utf8_lossy(token)
            );
        }
        // Extensions other than tokenauth=true are ignored, as in Kafka.
        let store = store_of(&[("alice", ScramMechanism::Sha256, "pw")]);
        ScramServer::new(ScramMechanism::Sha256, store)
            .evaluate(b"n,,n=alice,r=abc,tokenauth=false,foo=bar")
            .unwrap();
    }

    #[test]
    fn malformed_and_wrong_client_final_messages() {
        let m = ScramMechanism::Sha256;
        let store = store_of(&[("alice", m, "pw")]);
        let client = TestClient::new(m, "alice", "pw");
        let final_error = |edit: &dyn Fn(String) -> String| {
            let mut server = ScramServer::new(m, store.clone());
            let server_first = challenge(server.evaluate(&client.first()).unwrap());
            let (good, _) = client.finish(&server_first);
            let bad = edit(String::from_utf8(good).unwrap());
            let err = server.evaluate(bad.as_bytes()).unwrap_err();
            // A failed exchange stays failed.
            assert_eq!(
                server.evaluate(b"c=biws").unwrap_err().reason,
                Reason::UnexpectedToken("failed")
            );
            err.reason
        };
        assert_eq!(
            final_error(&|s| s.replacen("r=fyko", "r=fykX", 1)),
            Reason::NonceMismatch
        );
        // As Kafka, a nonce that ends with the server's passes the nonce check (old
        // librdkafka repeats the client nonce); the proof then covers what was sent.
        assert_ne!(
            final_error(&|s| s.replacen("r=", "r=x", 1)),
            Reason::NonceMismatch
        );
        assert_eq!(
            final_error(&|s| s.replacen("c=biws", "c=eSws", 1)),
            Reason::ChannelBindingMismatch
        );
        for edit in [
            &(|s: String| s.replacen(",p=", ",q=", 1)) as &dyn Fn(String) -> String,
            &|s: String| s.replacen("c=", "x=", 1),
            &|s: String| s.replacen("c=biws", "c=biws!", 1),
            &|s: String| format!("{s}AAAA"),
            &|s: String| s[..s.len() - 4].to_string(),
            &|s: String| s.replacen(",r=", ",m=x,r=", 1),
            &|_| String::new(),
        ] {
            assert!(
                matches!(final_error(edit), Reason::Malformed(_)),
                "should be malformed"
            );
        }
        // A correct message with a flipped proof bit.
        assert!(matches!(
            final_error(&|s| {
                let (head, proof) = s.rsplit_once(",p=").unwrap();
                let mut bytes = STANDARD.decode(proof).unwrap();
                bytes[0] ^= 1;
                format!("{head},p={}", STANDARD.encode(bytes))
            }),
            Reason::WrongProof { .. }
        ));
    }

    #[test]
    fn log_lines_hold_no_proof_or_key() {
        let m = ScramMechanism::Sha256;
        let store = store_of(&[("alice", m, "pw")]);
        let mut server = ScramServer::new(m, store.clone());
        let client = TestClient::new(m, "alice", "hunter2");
        let server_first = challenge(server.evaluate(&client.first()).unwrap());
        let (client_final, _) = client.finish(&server_first);
        let err = server.evaluate(&client_final).unwrap_err();
        let proof = std::str::from_utf8(&client_final)
            .unwrap()
            .rsplit_once(",p=")
            .unwrap()
            .1
            .to_string();
        for shown in [err.to_string(), format!("{err:?}"), format!("{server:?}")] {
            assert!(!shown.contains(&proof), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        let credential = store.scram_credential("alice", m).unwrap();
        let debug = format!("{credential:?}");
        assert!(!debug.contains(&format!("{:?}", credential.stored_key)));
        assert_eq!(err.mechanism, Mechanism::ScramSha256);
    }

    #[test]
    fn a_stored_credential_below_the_minimum_is_refused() {
        let m = ScramMechanism::Sha256;
        let mut map = HashMap::new();
        map.insert(
            ("alice".to_string(), m),
            ScramCredential::generate(m, "pw", 1000).unwrap(),
        );
        let err = ScramServer::new(m, Arc::new(map))
            .evaluate(b"n,,n=alice,r=abc")
            .unwrap_err();
        assert!(matches!(
            err.reason,
            Reason::TooFewIterations {
                iterations: 1000,
                ..
            }
        ));
    }

    #[test]
    fn salted_credentials_match_password_credentials() {
        for m in ScramMechanism::ALL {
            let salt = b"fixed salt".to_vec();
            let salted = m.salted_password("pw", &salt, 4096);
            assert_eq!(
                ScramCredential::from_salted(m, salt.clone(), &salted, 4096),
                ScramCredential::with_salt(m, "pw", salt, 4096)
            );
            let generated = ScramCredential::generate(m, "pw", 4096).unwrap();
            assert_eq!(generated.salt.len(), SALT_BYTES);
            assert_eq!(generated.stored_key.len(), m.hash_len());
            assert_eq!(generated.server_key.len(), m.hash_len());
            assert_ne!(
                generated.salt,
                ScramCredential::generate(m, "pw", 4096).unwrap().salt
            );
        }
    }

    #[test]
    fn mechanism_ids_and_iteration_bounds_are_kafkas() {
        assert_eq!(
            ScramMechanism::from_type_id(1),
            Some(ScramMechanism::Sha256)
        );
        assert_eq!(
            ScramMechanism::from_type_id(2),
            Some(ScramMechanism::Sha512)
        );
        assert_eq!(ScramMechanism::from_type_id(0), None);
        assert_eq!(
            ScramMechanism::from_name("SCRAM-SHA-512"),
            Some(ScramMechanism::Sha512)
        );
        let m = ScramMechanism::Sha256;
        assert_eq!(m.check_iterations(4095), Err("Too few iterations"));
        assert_eq!(m.check_iterations(16385), Err("Too many iterations"));
        assert_eq!(m.check_iterations(4096), Ok(()));
        assert_eq!(m.check_iterations(16384), Ok(()));
    }
}
