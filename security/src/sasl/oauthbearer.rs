//! SASL/OAUTHBEARER (RFC 7628) with the semantics of Kafka's `OAuthBearerSaslServer`:
//! the client's one message is `n,[a=authzid],\x01auth=Bearer <token>\x01[key=value\x01]*\x01`.
//! A token that does not validate is answered with a JSON challenge
//! (`{"status":"invalid_token"}`); the client acknowledges it with `\x01` and the
//! exchange then fails with that JSON as its message.
//!
//! Two validators, as Kafka's two callback handlers:
//! - [`JwksValidator`]: a signed JWS checked against the keys of a JWKS *file*
//!   (`sasl.oauthbearer.jwks.endpoint.url=file:///...`), with `exp`, `iat`, `nbf`,
//!   `iss` and `aud` checked as Kafka's `ValidatorAccessTokenValidator` (jose4j) checks
//!   them. The file is re-read when it changes ([`JwksValidator::reload_if_changed`]).
//! - [`UnsecuredValidator`]: an unsigned JWS (`alg: none`), for development, checked as
//!   `OAuthBearerUnsecuredValidatorCallbackHandler` checks it, with its
//!   `unsecuredValidator*` JAAS options.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::plain::parse_jaas;
use super::{log_name, AuthError, Mechanism, Reason, SaslStep, MAX_TOKEN_BYTES};
use crate::poison::or_stop;
use crate::principal::KafkaPrincipal;

/// The login module an OAUTHBEARER JAAS configuration names.
pub const OAUTHBEARER_LOGIN_MODULE: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";

/// The largest JWKS file read (real ones are a few KiB).
const MAX_JWKS_BYTES: u64 = 1 << 20;

/// A token that validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    /// The principal claim (`sub` unless configured otherwise).
    pub principal_name: String,
    /// When the token expires, milliseconds since the epoch (Kafka's `lifetimeMs`).
    pub expires_at_ms: i64,
    pub scope: BTreeSet<String>,
}

/// Why a token was refused: the status the client is told (`invalid_token`, or
/// `insufficient_scope` with the scope wanted) and, for the broker's log only, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: &'static str,
    pub scope: Option<String>,
    pub why: String,
}

impl Refusal {
    fn invalid(why: impl Into<String>) -> Refusal {
        Refusal {
            status: "invalid_token",
            scope: None,
            why: why.into(),
        }
    }

    /// The challenge Kafka sends: `{"status":"..."}`, with `"scope"` where one was missing.
    pub fn json(&self) -> String {
        match &self.scope {
            None => format!("{{\"status\":\"{}\"}}", self.status),
            Some(scope) => format!(
                "{{\"status\":\"{}\", \"scope\":{}}}",
                self.status,
                Value::String(scope.clone())
            ),
        }
    }
}

/// Checks a bearer token.
pub trait TokenValidator: Send + Sync + fmt::Debug {
    fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, Refusal>;
}

// ---------------------------------------------------------------------------------------
// JWS pieces shared by both validators
// ---------------------------------------------------------------------------------------

fn b64url(part: &str) -> Option<Vec<u8>> {
    // Kafka's decoder accepts padding; JWS has none.
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()
}

fn json_object(part: &str, what: &str) -> Result<Map<String, Value>, Refusal> {
    let bytes =
        b64url(part).ok_or_else(|| Refusal::invalid(format!("the {what} is not base64url")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Refusal::invalid(format!("the {what} is not a JSON object"))),
    }
}

/// A NumericDate claim in milliseconds: absent, or a number (else refused).
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Refusal> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if s.is_finite() && s.abs() < 1e15 => Ok(Some((s * 1000.0).round() as i64)),
            _ => Err(Refusal::invalid(format!(
                "the {name} claim is out of range"
            ))),
        },
        Some(_) => Err(Refusal::invalid(format!(
            "the {name} claim is not a number"
        ))),
    }
}

/// The scope claim: a space-separated string or a list of strings.
fn scope_claim(claims: &Map<String, Value>, name: &str) -> Result<BTreeSet<String>, Refusal> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(BTreeSet::new()),
        Some(Value::String(s)) => Ok(s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err(Refusal::invalid(format!(
                    "the {name} claim has a value that is not a non-empty string"
                ))),
            })
            .collect(),
        Some(_) => Err(Refusal::invalid(format!(
            "the {name} claim is not a string or a list"
        ))),
    }
}

fn principal_claim(claims: &Map<String, Value>, name: &str) -> Result<String, Refusal> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::String(_)) => Err(Refusal::invalid(format!("the {name} claim is empty"))),
        None | Some(Value::Null) => {
            Err(Refusal::invalid(format!("required claim missing: {name}")))
        }
        Some(_) => Err(Refusal::invalid(format!(
            "the {name} claim is not a string"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Unsecured JWS (development)
// ---------------------------------------------------------------------------------------

/// `OAuthBearerUnsecuredValidatorCallbackHandler`: an `alg: none` JWS whose principal
/// claim is a string, with `exp` (and `iat` if present) checked against the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredValidator {
    /// `unsecuredValidatorPrincipalClaimName` (default `sub`).
    pub principal_claim: String,
    /// `unsecuredValidatorScopeClaimName` (default `scope`).
    pub scope_claim: String,
    /// `unsecuredValidatorRequiredScope`, space-separated.
    pub required_scope: Vec<String>,
    /// `unsecuredValidatorAllowableClockSkewMs` (default 0).
    pub clock_skew_ms: i64,
}

impl Default for UnsecuredValidator {
    fn default() -> Self {
        UnsecuredValidator {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scope: Vec::new(),
            clock_skew_ms: 0,
        }
    }
}

/// The `unsecuredValidator*` options of an `OAuthBearerLoginModule` JAAS configuration
/// (`org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required
/// unsecuredLoginStringClaim_sub="admin";`). Other options (the broker's own login as a
/// client) are accepted and unused. Errors never include a value.
pub fn parse_oauthbearer_jaas(jaas: &str) -> Result<UnsecuredValidator, String> {
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
    if entry.login_module != OAUTHBEARER_LOGIN_MODULE {
        return Err(format!(
            "login module {} is not supported for SASL/OAUTHBEARER; use {OAUTHBEARER_LOGIN_MODULE}",
            entry.login_module
        ));
    }
    let mut v = UnsecuredValidator::default();
    for (key, value) in &entry.options {
        let value = value.trim();
        match key.as_str() {
            "unsecuredValidatorPrincipalClaimName" if !value.is_empty() => {
                v.principal_claim = value.to_string()
            }
            "unsecuredValidatorScopeClaimName" if !value.is_empty() => {
                v.scope_claim = value.to_string()
            }
            "unsecuredValidatorRequiredScope" => {
                v.required_scope = value
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "unsecuredValidatorAllowableClockSkewMs" if !value.is_empty() => {
                v.clock_skew_ms =
                    match value.parse::<i32>() {
                        Ok(n) if n >= 0 => n.into(),
                        _ => return Err(
                            "unsecuredValidatorAllowableClockSkewMs must be a non-negative integer"
                                .into(),
                        ),
                    }
            }
            _ => {}
        }
    }
    Ok(v)
}

impl TokenValidator for UnsecuredValidator {
    fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, Refusal> {
        let mut parts: Vec<&str> = token.split('.').collect();
        // `header.claims.` and `header.claims` both have an empty signature.
        if parts.len() == 2 {
            parts.push("");
        }
        let [header, claims, signature] = parts[..] else {
            return Err(Refusal::invalid(
                "not a compact JWS (three dot-separated parts)",
            ));
        };
        let header = json_object(header, "JOSE header")?;
        if header.get("alg").and_then(Value::as_str) != Some("none") {
            return Err(Refusal::invalid(
                "an unsecured JWS must have 'none' for an algorithm",
            ));
        }
        if !signature.is_empty() {
            return Err(Refusal::invalid(
                "an unsecured JWS must have an empty signature",
            ));
        }
        let claims = json_object(claims, "claims set")?;
        let principal_name = principal_claim(&claims, &self.principal_claim)?;
        let iat = time_claim(&claims, "iat")?;
        let exp = time_claim(&claims, "exp")?
            .ok_or_else(|| Refusal::invalid("required claim missing: exp"))?;
        if let Some(iat) = iat {
            if iat > now_ms.saturating_add(self.clock_skew_ms) {
                return Err(Refusal::invalid("the token was issued in the future (iat)"));
            }
        }
        if now_ms.saturating_sub(self.clock_skew_ms) >= exp {
            return Err(Refusal::invalid("the token has expired (exp)"));
        }
        if iat.is_some_and(|iat| exp <= iat) {
            return Err(Refusal::invalid(
                "the expiration time is not after the issued-at time",
            ));
        }
        let scope = scope_claim(&claims, &self.scope_claim)?;
        if let Some(missing) = self.required_scope.iter().find(|s| !scope.contains(*s)) {
            return Err(Refusal {
                status: "insufficient_scope",
                scope: Some(format!("[{}]", self.required_scope.join(", "))),
                why: format!("the token's scope lacks {}", log_name(missing)),
            });
        }
        Ok(ValidToken {
            principal_name,
            expires_at_ms: exp,
            scope,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Signed JWS against a JWKS file
// ---------------------------------------------------------------------------------------

/// The `sasl.oauthbearer.*` settings of a listener that validates signed tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    /// `sasl.oauthbearer.jwks.endpoint.url`: a `file:` URL (no network).
    pub jwks_url: String,
    /// `sasl.oauthbearer.expected.issuer`; empty: not checked.
    pub expected_issuer: String,
    /// `sasl.oauthbearer.expected.audience`; empty: a token with `aud` is refused, as
    /// jose4j refuses an audience nobody expects.
    pub expected_audience: Vec<String>,
    /// `sasl.oauthbearer.sub.claim.name`.
    pub sub_claim: String,
    /// `sasl.oauthbearer.scope.claim.name`.
    pub scope_claim: String,
    /// `sasl.oauthbearer.clock.skew.seconds`.
    pub clock_skew_seconds: i64,
}

/// The path of a `file:` URL; anything else is refused, since Runnel fetches nothing.
pub fn jwks_file_path(url: &str) -> Result<PathBuf, String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Err(format!(
            "sasl.oauthbearer.jwks.endpoint.url is {url}: Runnel makes no network calls, so it \
             reads the JWKS from a file; download it and give file:///path/to/jwks.json"
        ));
    }
    let Some(rest) = lower.strip_prefix("file:").map(|_| &url[5..]) else {
        return Err(format!(
            "sasl.oauthbearer.jwks.endpoint.url is {url}, not a file: URL (file:///path/to/jwks.json)"
        ));
    };
    // file:///p, file://localhost/p and file:/p.
    let path = if let Some(after) = rest.strip_prefix("//") {
        let slash = after.find('/').unwrap_or(after.len());
        let host = &after[..slash];
        if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
            return Err(format!(
                "sasl.oauthbearer.jwks.endpoint.url is {url}: a file: URL with a remote host"
            ));
        }
        &after[slash..]
    } else {
        rest
    };
    if path.is_empty() {
        return Err("sasl.oauthbearer.jwks.endpoint.url names no file".into());
    }
    Ok(PathBuf::from(percent_decode(path)))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One usable key of the JWKS.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    alg: Option<String>,
    key: DecodingKey,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

#[derive(Debug)]
struct Loaded {
    keys: Vec<Key>,
    modified: Option<SystemTime>,
}

/// `OAuthBearerValidatorCallbackHandler` with a JWKS file.
#[derive(Debug)]
pub struct JwksValidator {
    settings: JwksSettings,
    path: PathBuf,
    loaded: RwLock<Arc<Loaded>>,
}

/// The asymmetric algorithms accepted; `none` and the HMAC ones never are (a JWKS holds
/// public keys).
const ALGORITHMS: &[(&str, Algorithm)] = &[
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// Read and parse a JWKS file. Keys that are not public signature keys of a supported
/// type are skipped; a file without any usable key is an error.
fn load_jwks(path: &Path) -> Result<Loaded, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("reading the JWKS {shown}: {e}"))?;
    if meta.len() > MAX_JWKS_BYTES {
        return Err(format!("the JWKS {shown} is over {MAX_JWKS_BYTES} bytes"));
    }
    let text = std::fs::read(path).map_err(|e| format!("reading the JWKS {shown}: {e}"))?;
    let value: Value =
        serde_json::from_slice(&text).map_err(|e| format!("the JWKS {shown} is not JSON: {e}"))?;
    let Some(Value::Array(entries)) = value.get("keys") else {
        return Err(format!("the JWKS {shown} has no \"keys\" list"));
    };
    let mut keys = Vec::new();
    for entry in entries {
        // Encryption keys and private material are not for verifying.
        if entry
            .get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        if matches!(
            jwk.algorithm,
            jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
        ) {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            alg: entry.get("alg").and_then(Value::as_str).map(String::from),
            key,
        });
    }
    if keys.is_empty() {
        return Err(format!(
            "the JWKS {shown} has no usable signature key (RSA, EC P-256/P-384 or Ed25519)"
        ));
    }
    Ok(Loaded {
        keys,
        modified: meta.modified().ok(),
    })
}

impl JwksValidator {
    /// Load the JWKS now; a missing or unusable file refuses to start.
    pub fn new(settings: JwksSettings) -> Result<JwksValidator, String> {
        let path = jwks_file_path(&settings.jwks_url)?;
        let loaded = load_jwks(&path)?;
        Ok(JwksValidator {
            settings,
            path,
            loaded: RwLock::new(Arc::new(loaded)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-read the JWKS if its modification time changed. A file that no longer loads
    /// keeps the previous keys (and is not tried again until it changes once more).
    /// Blocking: reads the file. `Ok(true)` when new keys were loaded.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let current = self.current();
        if now == current.modified {
            return Ok(false);
        }
        let (loaded, result) = match load_jwks(&self.path) {
            Ok(loaded) => (loaded, Ok(true)),
            Err(e) => (
                Loaded {
                    keys: current.keys.clone(),
                    modified: now,
                },
                Err(e),
            ),
        };
        *or_stop(self.loaded.write(), "JWKS keys") = Arc::new(loaded);
        result
    }

    fn current(&self) -> Arc<Loaded> {
        or_stop(self.loaded.read(), "JWKS keys").clone()
    }

    fn verify(&self, token: &str) -> Result<Map<String, Value>, Refusal> {
        let header = token.split('.').next().unwrap_or_default();
        if json_object(header, "JOSE header")?
            .get("alg")
            .and_then(Value::as_str)
            == Some("none")
        {
            return Err(Refusal::invalid(
                "an unsigned token (algorithm none) where signatures are checked",
            ));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Refusal::invalid("the token is not a JWS with a readable header"))?;
        let alg = ALGORITHMS
            .iter()
            .find(|(_, a)| *a == header.alg)
            .map(|(name, _)| *name)
            .ok_or_else(|| {
                Refusal::invalid(format!("algorithm {:?} is not accepted", header.alg))
            })?;
        let mut validation = Validation::new(header.alg);
        // The claims are checked below, as Kafka checks them.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let loaded = self.current();
        let candidates = loaded.keys.iter().filter(|k| {
            let kid_ok = match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            };
            kid_ok && k.alg.as_deref().is_none_or(|a| a == alg)
        });
        let mut any = false;
        for key in candidates {
            any = true;
            if let Ok(data) =
                jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            {
                return Ok(data.claims);
            }
        }
        Err(Refusal::invalid(if any {
            "the signature does not verify"
        } else {
            "no key of the JWKS matches the token's kid and algorithm"
        }))
    }
}

impl TokenValidator for JwksValidator {
    fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, Refusal> {
        let claims = self.verify(token)?;
        let s = &self.settings;
        let skew_ms = s.clock_skew_seconds.saturating_mul(1000);
        let exp = time_claim(&claims, "exp")?
            .ok_or_else(|| Refusal::invalid("no expiration time (exp) claim"))?;
        let iat = time_claim(&claims, "iat")?
            .ok_or_else(|| Refusal::invalid("no issued-at (iat) claim"))?;
        if now_ms.saturating_sub(skew_ms) >= exp {
            return Err(Refusal::invalid("the token has expired (exp)"));
        }
        if iat > now_ms.saturating_add(skew_ms) {
            return Err(Refusal::invalid("the token was issued in the future (iat)"));
        }
        if iat < 0 || exp < 0 {
            return Err(Refusal::invalid("a negative exp or iat claim"));
        }
        if let Some(nbf) = time_claim(&claims, "nbf")? {
            if now_ms.saturating_add(skew_ms) < nbf {
                return Err(Refusal::invalid("the token is not valid yet (nbf)"));
            }
        }
        if !s.expected_issuer.is_empty() {
            match claims.get("iss").and_then(Value::as_str) {
                Some(iss) if iss == s.expected_issuer => {}
                Some(iss) => {
                    return Err(Refusal::invalid(format!(
                        "the issuer {} is not the expected one",
                        log_name(iss)
                    )))
                }
                None => return Err(Refusal::invalid("no issuer (iss) claim")),
            }
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Err(Refusal::invalid("the aud claim is not a string or a list")),
        };
        if s.expected_audience.is_empty() {
            if !audiences.is_empty() {
                return Err(Refusal::invalid(
                    "the token has an audience (aud) but sasl.oauthbearer.expected.audience is not set",
                ));
            }
        } else if audiences.is_empty() {
            return Err(Refusal::invalid("no audience (aud) claim"));
        } else if !audiences
            .iter()
            .any(|a| s.expected_audience.iter().any(|e| e == a))
        {
            return Err(Refusal::invalid(
                "the audience (aud) is not an expected one",
            ));
        }
        let principal_name = principal_claim(&claims, &s.sub_claim)?;
        let scope = scope_claim(&claims, &s.scope_claim)?;
        Ok(ValidToken {
            principal_name,
            expires_at_ms: exp,
            scope,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The exchange
// ---------------------------------------------------------------------------------------

/// What the client's message carries.
#[derive(Debug, PartialEq, Eq)]
struct ClientResponse<'a> {
    authorization_id: &'a str,
    token: &'a str,
}

fn is_key(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic())
}

fn is_value(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b))
}

fn is_token(t: &str) -> bool {
    // b64token: [-_~+/.a-zA-Z0-9]+ then '='*.
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_~+/.".contains(&b))
}

/// Parse `n,[a=authzid],\x01(key=value\x01)*\x01` as Kafka's
/// `OAuthBearerClientInitialResponse` does.
fn parse_client_response(text: &str) -> Result<ClientResponse<'_>, &'static str> {
    let rest = text.strip_prefix("n,").ok_or("no GS2 header n,")?;
    let (authz, rest) = rest.split_once(',').ok_or("an unterminated GS2 header")?;
    let authorization_id = if authz.is_empty() {
        ""
    } else {
        let id = authz.strip_prefix("a=").ok_or("a bad authorization id")?;
        if id.is_empty() || id.bytes().any(|b| b == 0 || b >= 0x80) {
            return Err("a bad authorization id");
        }
        id
    };
    let body = rest
        .strip_prefix('\x01')
        .ok_or("no separator after the GS2 header")?;
    let pairs = body
        .strip_suffix('\x01')
        .ok_or("the message does not end with \\x01")?;
    let mut auth = None;
    for pair in pairs.split_terminator('\x01') {
        let (key, value) = pair.split_once('=').ok_or("a key without a value")?;
        if !is_key(key) || !is_value(value) {
            return Err("a malformed key=value pair");
        }
        if key == "auth" {
            auth = Some(value);
        }
    }
    if !pairs.is_empty() && !pairs.ends_with('\x01') {
        return Err("a key=value pair without its \\x01");
    }
    let auth = auth.ok_or("'auth' not specified")?;
    let (scheme, token) = auth.split_once(' ').ok_or("invalid 'auth' format")?;
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("the auth scheme is not Bearer");
    }
    if !is_token(token) {
        return Err("invalid 'auth' format");
    }
    Ok(ClientResponse {
        authorization_id,
        token,
    })
}

#[derive(Debug)]
enum State {
    Ready,
    /// The token was refused and the JSON error sent; waiting for the client's `\x01`.
    ErrorSent(Refusal),
    Complete,
    Failed,
}

/// One connection's OAUTHBEARER exchange.
pub struct OAuthBearerServer {
    validator: Arc<dyn TokenValidator>,
    clock: fn() -> i64,
    state: State,
    expires_at_ms: Option<i64>,
}

impl fmt::Debug for OAuthBearerServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthBearerServer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the epoch: the broker's wall clock, which an injected clock
/// jump (`RUNNEL_CLOCK_OFFSET_FILE`) moves, so token expiry moves with it.
pub fn system_clock() -> i64 {
    runnel_storage::now_ms()
}

impl OAuthBearerServer {
    pub fn new(validator: Arc<dyn TokenValidator>) -> OAuthBearerServer {
        OAuthBearerServer::with_clock(validator, system_clock)
    }

    pub fn with_clock(validator: Arc<dyn TokenValidator>, clock: fn() -> i64) -> OAuthBearerServer {
        OAuthBearerServer {
            validator,
            clock,
            state: State::Ready,
            expires_at_ms: None,
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// When the token expires (ms since the epoch), once the exchange completed: the
    /// session may not outlive it (KIP-368).
    pub fn credential_expires_at_ms(&self) -> Option<i64> {
        self.expires_at_ms
    }

    pub fn evaluate(&mut self, token: &[u8]) -> Result<SaslStep, AuthError> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        let result = match state {
            State::ErrorSent(refusal) if token == [0x01] => Err(Reason::TokenRefused {
                status_json: refusal.json(),
                why: refusal.why,
            }),
            // Kafka takes anything else after its error as a new first message.
            State::Ready | State::ErrorSent(_) => self.first(token),
            State::Complete => Err(Reason::UnexpectedToken("completed")),
            State::Failed => Err(Reason::UnexpectedToken("failed")),
        };
        result.map_err(|reason| AuthError::new(Mechanism::OAuthBearer, reason))
    }

    fn first(&mut self, token: &[u8]) -> Result<SaslStep, Reason> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Reason::TooLarge(token.len()));
        }
        let text = std::str::from_utf8(token).map_err(|_| Reason::Malformed("not UTF-8"))?;
        let response = parse_client_response(text).map_err(Reason::Malformed)?;
        match self.validator.validate(response.token, (self.clock)()) {
            Err(refusal) => {
                let json = refusal.json();
                self.state = State::ErrorSent(refusal);
                Ok(SaslStep::Challenge(json.into_bytes()))
            }
            Ok(valid) => {
                if !response.authorization_id.is_empty()
                    && response.authorization_id != valid.principal_name
                {
                    return Err(Reason::AuthorizationIdMismatch {
                        user: log_name(&valid.principal_name),
                    });
                }
                self.expires_at_ms = Some(valid.expires_at_ms);
                self.state = State::Complete;
                Ok(SaslStep::Complete {
                    principal: KafkaPrincipal::user(valid.principal_name),
                    final_token: Vec::new(),
                })
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn clock() -> i64 {
        NOW
    }

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    pub(crate) fn unsecured_jwt(claims: Value) -> String {
        format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none"})),
            b64(&claims)
        )
    }

    fn message(token: &str) -> Vec<u8> {
        format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
    }

    fn server(v: UnsecuredValidator) -> OAuthBearerServer {
        OAuthBearerServer::with_clock(Arc::new(v), clock)
    }

    fn claims(exp_s: i64) -> Value {
        serde_json::json!({"sub": "alice", "iat": NOW / 1000 - 10, "exp": exp_s})
    }

    #[test]
    fn a_valid_unsecured_token_completes_with_its_subject() {
        let mut s = server(UnsecuredValidator::default());
        let step = s
            .evaluate(&message(&unsecured_jwt(claims(NOW / 1000 + 60))))
            .unwrap();
        assert_eq!(
            step,
            SaslStep::Complete {
                principal: KafkaPrincipal::user("alice"),
                final_token: Vec::new()
            }
        );
        assert_eq!(s.credential_expires_at_ms(), Some(NOW + 60_000));
        assert!(s.is_complete());
        assert!(s.evaluate(b"x").is_err());
    }

    #[test]
    fn a_refused_token_sends_the_json_error_then_fails_on_the_acknowledgement() {
        let mut s = server(UnsecuredValidator::default());
        let step = s
            .evaluate(&message(&unsecured_jwt(claims(NOW / 1000 - 60))))
            .unwrap();
        assert_eq!(
            step,
            SaslStep::Challenge(br#"{"status":"invalid_token"}"#.to_vec())
        );
        let err = s.evaluate(b"\x01").unwrap_err();
        assert_eq!(err.client_message(), r#"{"status":"invalid_token"}"#);
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn unsecured_checks_follow_kafka() {
        let v = UnsecuredValidator {
            required_scope: vec!["kafka".into()],
            clock_skew_ms: 1000,
            ..Default::default()
        };
        let check = |c: Value| v.validate(&unsecured_jwt(c), NOW);
        let exp = NOW / 1000 + 60;
        assert!(check(serde_json::json!({"sub": "a", "exp": exp, "scope": "x kafka"})).is_ok());
        assert!(check(serde_json::json!({"sub": "a", "exp": exp, "scope": ["kafka"]})).is_ok());
        let scope = check(serde_json::json!({"sub": "a", "exp": exp})).unwrap_err();
        assert_eq!(
            scope.json(),
            r#"{"status":"insufficient_scope", "scope":"[kafka]"}"#
        );
        for bad in [
            serde_json::json!({"exp": exp, "scope": "kafka"}),
            serde_json::json!({"sub": 7, "exp": exp, "scope": "kafka"}),
            serde_json::json!({"sub": "a", "scope": "kafka"}),
            serde_json::json!({"sub": "a", "exp": "soon", "scope": "kafka"}),
            serde_json::json!({"sub": "a", "exp": exp, "iat": exp + 1, "scope": "kafka"}),
            serde_json::json!({"sub": "a", "exp": exp, "iat": NOW / 1000 + 5, "scope": "kafka"}),
            // Within the skew of 1 s: still expired at exactly now - skew.
            serde_json::json!({"sub": "a", "exp": NOW / 1000 - 1, "scope": "kafka"}),
        ] {
            assert_eq!(
                check(bad.clone()).unwrap_err().status,
                "invalid_token",
                "{bad}"
            );
        }
        // A signed header is not an unsecured JWS.
        let signed = format!(
            "{}.{}.sig",
            b64(&serde_json::json!({"alg": "RS256"})),
            b64(&serde_json::json!({"sub": "a", "exp": exp}))
        );
        assert!(v.validate(&signed, NOW).is_err());
    }

    #[test]
    fn client_messages_parse_as_kafka_parses_them() {
        fn ok(m: &str) -> ClientResponse<'_> {
            parse_client_response(m).unwrap()
        }
        assert_eq!(ok("n,,\x01auth=Bearer abc.def.\x01\x01").token, "abc.def.");
        let with = ok("n,a=alice,\x01auth=bearer t0k=\x01ext=v a l\x01\x01");
        assert_eq!((with.authorization_id, with.token), ("alice", "t0k="));
        for bad in [
            "",
            "y,,\x01auth=Bearer t\x01\x01",
            "n,,auth=Bearer t\x01\x01",
            "n,,\x01auth=Bearer t\x01",
            "n,,\x01\x01",
            "n,,\x01auth=Basic t\x01\x01",
            "n,,\x01auth=Bearer\x01\x01",
            "n,,\x01auth=Bearer t t\x01\x01",
            "n,,\x01a1=x\x01auth=Bearer t\x01\x01",
            "n,b=x,\x01auth=Bearer t\x01\x01",
        ] {
            assert!(parse_client_response(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_authorization_id_must_be_the_principal() {
        let mut s = server(UnsecuredValidator::default());
        let token = unsecured_jwt(claims(NOW / 1000 + 60));
        let m = format!("n,a=bob,\x01auth=Bearer {token}\x01\x01");
        let err = s.evaluate(m.as_bytes()).unwrap_err();
        assert!(matches!(err.reason, Reason::AuthorizationIdMismatch { .. }));
    }

    #[test]
    fn jaas_options() {
        let v = parse_oauthbearer_jaas(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             unsecuredLoginStringClaim_sub=\"admin\" unsecuredValidatorRequiredScope=\"a b\" \
             unsecuredValidatorPrincipalClaimName=\"user\" unsecuredValidatorAllowableClockSkewMs=\"500\";",
        )
        .unwrap();
        assert_eq!(v.required_scope, vec!["a", "b"]);
        assert_eq!(v.principal_claim, "user");
        assert_eq!(v.clock_skew_ms, 500);
        assert!(parse_oauthbearer_jaas(
            "org.apache.kafka.common.security.plain.PlainLoginModule required;"
        )
        .is_err());
        assert!(parse_oauthbearer_jaas(&format!(
            "{OAUTHBEARER_LOGIN_MODULE} required unsecuredValidatorAllowableClockSkewMs=\"-1\";"
        ))
        .is_err());
    }

    #[test]
    fn jwks_urls_are_files_only() {
        assert_eq!(
            jwks_file_path("file:///etc/jwks.json").unwrap(),
            PathBuf::from("/etc/jwks.json")
        );
        assert_eq!(
            jwks_file_path("file://localhost/a%20b.json").unwrap(),
            PathBuf::from("/a b.json")
        );
        assert_eq!(
            jwks_file_path("file:/x.json").unwrap(),
            PathBuf::from("/x.json")
        );
        let http = jwks_file_path("https://idp.example/jwks").unwrap_err();
        assert!(http.contains("no network calls"), "{http}");
        assert!(jwks_file_path("file://idp.example/jwks").is_err());
        assert!(jwks_file_path("/etc/jwks.json").is_err());
    }

    #[test]
    fn jwks_files_without_usable_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("jwks.json");
        for text in [
            "",
            "[]",
            r#"{"keys": []}"#,
            r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
        ] {
            std::fs::write(&p, text).unwrap();
            assert!(load_jwks(&p).is_err(), "{text}");
        }
    }

    /// An EC P-256 key (rcgen's default), as a JWKS file and a signer.
    pub(crate) struct Signer {
        pub(crate) dir: tempfile::TempDir,
        key: jsonwebtoken::EncodingKey,
        kid: String,
    }

    pub(crate) fn jwk_of(key: &rcgen::KeyPair, kid: &str) -> Value {
        let raw = key.public_key_raw();
        let b = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        serde_json::json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
            "kid": kid, "x": b(&raw[1..33]), "y": b(&raw[33..65])})
    }

    impl Signer {
        pub(crate) fn new(kid: &str) -> Signer {
            let dir = tempfile::tempdir().unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let jwks = serde_json::json!({"keys": [jwk_of(&key, kid)]});
            std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
            Signer {
                dir,
                key: jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der()),
                kid: kid.into(),
            }
        }

        pub(crate) fn url(&self) -> String {
            format!("file://{}", self.dir.path().join("jwks.json").display())
        }

        pub(crate) fn sign(&self, claims: &Value) -> String {
            let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
            header.kid = Some(self.kid.clone());
            jsonwebtoken::encode(&header, claims, &self.key).unwrap()
        }
    }

    fn jwks_settings(url: String) -> JwksSettings {
        JwksSettings {
            jwks_url: url,
            expected_issuer: "https://idp.test".into(),
            expected_audience: vec!["runnel".into()],
            sub_claim: "sub".into(),
            scope_claim: "scope".into(),
            clock_skew_seconds: 30,
        }
    }

    #[test]
    fn signed_tokens_are_checked_as_kafka_checks_them() {
        let signer = Signer::new("k1");
        let v = JwksValidator::new(jwks_settings(signer.url())).unwrap();
        let now_s = NOW / 1000;
        let good = serde_json::json!({"sub": "alice", "iss": "https://idp.test", "aud": ["x", "runnel"],
            "iat": now_s, "exp": now_s + 300, "scope": "a b"});
        let ok = v.validate(&signer.sign(&good), NOW).unwrap();
        assert_eq!(ok.principal_name, "alice");
        assert_eq!(ok.expires_at_ms, (now_s + 300) * 1000);
        let with = |k: &str, val: Value| {
            let mut c = good.clone();
            c[k] = val;
            signer.sign(&c)
        };
        let without = |k: &str| {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove(k);
            signer.sign(&c)
        };
        let refused = |t: String| v.validate(&t, NOW).unwrap_err().why;
        // Within the 30 s skew an expired token still passes; beyond it, not.
        assert!(v.validate(&with("exp", (now_s - 10).into()), NOW).is_ok());
        assert!(refused(with("exp", (now_s - 31).into())).contains("expired"));
        assert!(refused(without("exp")).contains("exp"));
        assert!(refused(without("iat")).contains("iat"));
        assert!(refused(with("nbf", (now_s + 60).into())).contains("nbf"));
        assert!(refused(with("iss", "https://other".into())).contains("issuer"));
        assert!(refused(without("iss")).contains("iss"));
        assert!(refused(with("aud", "other".into())).contains("aud"));
        assert!(refused(without("aud")).contains("aud"));
        assert!(refused(without("sub")).contains("sub"));
        // Another key, the same kid: the signature does not verify.
        let impostor = Signer::new("k1");
        assert!(refused(impostor.sign(&good)).contains("signature"));
        let other_kid = Signer::new("k2");
        assert!(refused(other_kid.sign(&good)).contains("kid"));
        // alg none is never a signed token.
        assert!(v.validate(&unsecured_jwt(good.clone()), NOW).is_err());
        // A tampered payload.
        let token = signer.sign(&good);
        let mut parts: Vec<&str> = token.split('.').collect();
        let evil = b64(
            &serde_json::json!({"sub": "admin", "iss": "https://idp.test",
            "aud": "runnel", "iat": now_s, "exp": now_s + 300}),
        );
        parts[1] = &evil;
        assert!(refused(parts.join(".")).contains("signature"));
    }

    #[test]
    fn an_audience_nobody_expects_is_refused() {
        let signer = Signer::new("k1");
        let mut s = jwks_settings(signer.url());
        s.expected_audience.clear();
        s.expected_issuer.clear();
        let v = JwksValidator::new(s).unwrap();
        let now_s = NOW / 1000;
        let c = serde_json::json!({"sub": "alice", "iat": now_s, "exp": now_s + 60});
        assert!(v.validate(&signer.sign(&c), NOW).is_ok());
        let mut with_aud = c.clone();
        with_aud["aud"] = "runnel".into();
        assert!(v.validate(&signer.sign(&with_aud), NOW).is_err());
    }

    #[test]
    fn a_changed_jwks_file_is_reloaded_and_a_broken_one_keeps_the_keys() {
        let signer = Signer::new("k1");
        let v = JwksValidator::new(jwks_settings(signer.url())).unwrap();
        let now_s = NOW / 1000;
        let c = serde_json::json!({"sub": "alice", "iss": "https://idp.test", "aud": "runnel",
            "iat": now_s, "exp": now_s + 60});
        let token = signer.sign(&c);
        assert!(v.validate(&token, NOW).is_ok());
        let path = signer.dir.path().join("jwks.json");
        let set_mtime = |secs: u64| {
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .unwrap();
        };
        std::fs::write(&path, "not json").unwrap();
        set_mtime(1_000);
        assert!(v.reload_if_changed().is_err());
        assert!(v.validate(&token, NOW).is_ok(), "the old keys stay");
        assert_eq!(
            v.reload_if_changed(),
            Ok(false),
            "not retried until it changes"
        );
        let rotated = Signer::new("k2");
        std::fs::copy(rotated.dir.path().join("jwks.json"), &path).unwrap();
        set_mtime(2_000);
        assert_eq!(v.reload_if_changed(), Ok(true));
        assert!(v.validate(&token, NOW).is_err());
        assert!(v.validate(&rotated.sign(&c), NOW).is_ok());
    }

    #[test]
    fn a_server_with_signed_tokens_reports_the_expiry() {
        let signer = Signer::new("k1");
        let v = Arc::new(JwksValidator::new(jwks_settings(signer.url())).unwrap());
        let mut s = OAuthBearerServer::with_clock(v, clock);
        let now_s = NOW / 1000;
        let c = serde_json::json!({"sub": "alice", "iss": "https://idp.test", "aud": "runnel",
            "iat": now_s, "exp": now_s + 60});
        assert!(matches!(
            s.evaluate(&message(&signer.sign(&c))),
            Ok(SaslStep::Complete { .. })
        ));
        assert_eq!(s.credential_expires_at_ms(), Some((now_s + 60) * 1000));
    }

    /// An RS256 token made once with Python's `cryptography` (the private key was thrown
    /// away): sub alice, iss https://idp.test, aud runnel, iat NOW, exp NOW + 300 s.
    const RS256_JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"rsa-1","use":"sig","alg":"RS256","n":"xmtjt1XjtHgAgIt01DgwxKspb6SDp11elmAXgfodSmQnVYp9j-c9vLVtpP6mP1JvuHj1jSf_GwJctWgWHIKPLXtLiIwbHw2NgHOlShhd5e8Ox3M9mLkefme1ddPsLO7OBs4FA6aajbt8bP630o25y1oPPLEokbvwk8sOzbX23Z-P3H9xiCgZo3tlBvicZrCWxbhnfRaz3avAzkjX01gUuqHWk64VZZ94a-1NTUSJrEjKNnxh-q05FtNQ5yZIHuGQ8IwqTWnhIOTCt8jwkIUTh7D8XOUkAMmiNpDeNBmyncpncB5NPLfg7r28AjJyxeiVw6gzxKFRLYgZd44JS-qfAQ","e":"AQAB"}]}"#;
    const RS256_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYS0xIn0.eyJzdWIiOiJhbGljZSIsImlzcyI6Imh0dHBzOi8vaWRwLnRlc3QiLCJhdWQiOiJydW5uZWwiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDMwMH0.Fs8v4GExcZ2Zkx5SICEjz1JuzdeVbvIsQFUa3VJi78wlveZaUD_IZVFN30hssr3OtzrSu9xV2KjOubZPHMbERGAnm7P97ww_Ye1eo7r31StT0d6FX1vtmN9XuBH7DsNff5IUNRjGfpwH9SkSYobzaj8HeEj0Zc4Uv5MBKW3od1_weqlvuc6DUMBGYLyLwS22PSwRQe4KQ98b4X1YTrLmz-d8sGN8ltaYx-ABf2r6Wn1YEAL9TMZ0U3kIwYDnqBP9XNxys5ANs9NCz-TW-x-CQMPcch4rE10LqmNyKpqP-UVjfoFU--hvhisEh1nu4dHlozYbsUivbKGga08LcQcUWg";

    #[test]
    fn rs256_tokens_verify_and_a_changed_byte_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, RS256_JWKS).unwrap();
        let v = JwksValidator::new(jwks_settings(format!("file://{}", path.display()))).unwrap();
        let ok = v.validate(RS256_TOKEN, NOW).unwrap();
        assert_eq!(ok.principal_name, "alice");
        assert_eq!(ok.expires_at_ms, NOW + 300_000);
        // Later than exp plus the skew: expired.
        assert!(v
            .validate(RS256_TOKEN, NOW + 331_000)
            .unwrap_err()
            .why
            .contains("expired"));
        let mut sig = RS256_TOKEN.as_bytes().to_vec();
        let last = sig.len() - 5;
        sig[last] = if sig[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(sig).unwrap();
        assert!(v
            .validate(&tampered, NOW)
            .unwrap_err()
            .why
            .contains("signature"));
    }
}
