//! Event Hubs' shared access policies: a name, the rights Send, Listen and Manage, two
//! keys (primary and secondary, so a key can be rotated without downtime), and a scope:
//! the namespace or one hub. A client proves it holds a key either with the key itself,
//! in a connection string (SASL PLAIN with username `$ConnectionString`, as Event Hubs'
//! Kafka endpoint takes it), or with a SAS token signed by it (the AMQP endpoint's CBS,
//! and `SharedAccessSignature=` in a connection string).
//!
//! A login becomes a [`SasGrant`]: the rights and the hub it is limited to, which the
//! authorizer applies instead of ACLs.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::acl::{AclOperation, ResourceType};

/// The SASL PLAIN username of an Event Hubs connection-string login.
pub const CONNECTION_STRING_USER: &str = "$ConnectionString";

/// A policy's rights. Manage includes Send and Listen, as in Event Hubs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Rights {
    pub send: bool,
    pub listen: bool,
    pub manage: bool,
}

impl Rights {
    /// `Send,Listen` or `Manage` (case-insensitive, comma-separated).
    pub fn parse(text: &str) -> Result<Rights, String> {
        let mut rights = Rights::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "send" => rights.send = true,
                "listen" => rights.listen = true,
                "manage" => rights.manage = true,
                _ => {
                    return Err(format!(
                        "unknown right {part:?}: the rights are Send, Listen and Manage"
                    ))
                }
            }
        }
        if rights == Rights::default() {
            return Err("a policy needs at least one right (Send, Listen, Manage)".into());
        }
        Ok(rights.normalized())
    }

    /// Manage carries Send and Listen.
    pub fn normalized(self) -> Rights {
        Rights {
            send: self.send || self.manage,
            listen: self.listen || self.manage,
            manage: self.manage,
        }
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.manage, "Manage"),
            (self.send, "Send"),
            (self.listen, "Listen"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        f.write_str(&names.join(","))
    }
}

/// A policy key: 32 random bytes in base64, as Event Hubs generates them. The text
/// itself (not its decoded bytes) is the HMAC key, as the SDKs use it. Never shown by
/// `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SasKey(String);

impl SasKey {
    pub fn generate() -> std::io::Result<SasKey> {
        let bytes = crate::sasl::scram::random_bytes::<32>()?;
        Ok(SasKey(STANDARD.encode(bytes)))
    }

    pub fn from_text(text: impl Into<String>) -> SasKey {
        SasKey(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn matches(&self, given: &str) -> bool {
        // Constant time in the contents; lengths of real keys are all 44.
        self.0.len() == given.len() && bool::from(self.0.as_bytes().ct_eq(given.as_bytes()))
    }

    fn sign(&self, text: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(text.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

impl fmt::Debug for SasKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SasKey(hidden)")
    }
}

/// A shared access policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedAccessPolicy {
    pub name: String,
    /// `None`: the namespace (every hub); `Some(hub)`: that hub only.
    pub hub: Option<String>,
    pub rights: Rights,
    pub primary_key: SasKey,
    pub secondary_key: SasKey,
}

impl SharedAccessPolicy {
    /// The key named by `which` matches `given` (either key when `which` is None).
    fn key_matches(&self, given: &str) -> bool {
        // Both compared, so the time does not say which one matched.
        let primary = self.primary_key.matches(given);
        let secondary = self.secondary_key.matches(given);
        primary | secondary
    }

    /// The connection string of this policy for `host` (`Endpoint=sb://host/;...`).
    pub fn connection_string(&self, host: &str, secondary: bool) -> String {
        let key = if secondary {
            &self.secondary_key
        } else {
            &self.primary_key
        };
        let mut s = format!(
            "Endpoint=sb://{host}/;SharedAccessKeyName={};SharedAccessKey={}",
            self.name,
            key.expose()
        );
        if let Some(hub) = &self.hub {
            s.push_str(";EntityPath=");
            s.push_str(hub);
        }
        s
    }
}

/// The parts of an Event Hubs connection string Runnel reads. Keys are matched
/// case-insensitively, as the SDKs do; unknown keys (such as
/// `UseDevelopmentEmulator`) are ignored.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    pub endpoint: Option<String>,
    pub key_name: Option<String>,
    pub key: Option<String>,
    pub signature: Option<String>,
    pub entity_path: Option<String>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("endpoint", &self.endpoint)
            .field("key_name", &self.key_name)
            .field("entity_path", &self.entity_path)
            .finish_non_exhaustive()
    }
}

impl ConnectionString {
    pub fn parse(text: &str) -> Result<ConnectionString, &'static str> {
        let mut cs = ConnectionString {
            endpoint: None,
            key_name: None,
            key: None,
            signature: None,
            entity_path: None,
        };
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            // Keys end with '=': split at the first one.
            let (key, value) = part
                .split_once('=')
                .ok_or("a connection string part without '='")?;
            let value = value.trim().to_string();
            match key.trim().to_ascii_lowercase().as_str() {
                "endpoint" => cs.endpoint = Some(value),
                "sharedaccesskeyname" => cs.key_name = Some(value),
                "sharedaccesskey" => cs.key = Some(value),
                "sharedaccesssignature" => cs.signature = Some(value),
                "entitypath" => cs.entity_path = Some(value),
                _ => {}
            }
        }
        if cs.endpoint.is_none() {
            return Err("the connection string has no Endpoint");
        }
        if cs.signature.is_none() && (cs.key_name.is_none() || cs.key.is_none()) {
            return Err("the connection string needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature");
        }
        Ok(cs)
    }
}

/// What a verified login may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasGrant {
    /// The policy's name, and its hub for a hub-level policy.
    pub policy: String,
    pub policy_hub: Option<String>,
    pub rights: Rights,
    /// The one hub (Kafka topic) the login is limited to: the policy's hub, or the
    /// connection string's EntityPath, or the token's resource.
    pub hub: Option<String>,
}

impl SasGrant {
    /// The name the broker's logs and its Kafka principal use for this login:
    /// `<policy>` or `<hub>/<policy>` for a hub-level policy.
    pub fn principal_name(&self) -> String {
        match &self.policy_hub {
            Some(hub) => format!("{hub}/{}", self.policy),
            None => self.policy.clone(),
        }
    }

    /// Whether this login may do a Kafka operation. Send: produce and idempotent or
    /// transactional producer ids. Listen: fetch, offsets and consumer groups. Manage:
    /// everything, including admin. DESCRIBE of a topic or the cluster comes with any
    /// right (clients need metadata to produce or consume). A login limited to a hub
    /// sees and touches no other topic, and cannot act on the cluster as a whole
    /// beyond describing it and writing idempotently.
    pub fn allows(&self, operation: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        use AclOperation::*;
        let r = self.rights;
        match resource_type {
            ResourceType::Topic => {
                if self.hub.as_deref().is_some_and(|hub| hub != name) {
                    return false;
                }
                match operation {
                    Describe => true,
                    Write => r.send,
                    Read => r.listen,
                    _ => r.manage,
                }
            }
            ResourceType::Group => match operation {
                Read | Describe => r.listen,
                _ => r.manage,
            },
            ResourceType::TransactionalId => match operation {
                Write | Describe => r.send,
                _ => r.manage,
            },
            ResourceType::Cluster => match operation {
                Describe => true,
                IdempotentWrite => r.send,
                _ => r.manage && self.hub.is_none(),
            },
            ResourceType::DelegationToken | ResourceType::User => r.manage && self.hub.is_none(),
        }
    }
}

/// Why a connection-string or token login failed (for the log: no key or signature in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    #[error("malformed connection string: {0}")]
    Malformed(&'static str),
    #[error("malformed shared access signature: {0}")]
    MalformedToken(&'static str),
    #[error("no shared access policy {0}")]
    UnknownPolicy(String),
    #[error("wrong key for shared access policy {0}")]
    WrongKey(String),
    #[error("the shared access signature has expired")]
    Expired,
    #[error("EntityPath {entity} is outside the policy's hub {hub}")]
    OutsideHub { entity: String, hub: String },
}

/// The policy a login names: a hub-level policy of the entity when one is given, else
/// the namespace-level one.
fn find<'a>(
    policies: &'a [SharedAccessPolicy],
    name: &str,
    entity: Option<&str>,
) -> Option<&'a SharedAccessPolicy> {
    entity
        .and_then(|hub| {
            policies
                .iter()
                .find(|p| p.name == name && p.hub.as_deref() == Some(hub))
        })
        .or_else(|| policies.iter().find(|p| p.name == name && p.hub.is_none()))
}

fn grant(policy: &SharedAccessPolicy, entity: Option<&str>) -> Result<SasGrant, SasError> {
    let hub = match (&policy.hub, entity) {
        (Some(hub), Some(e)) if hub != e => {
            return Err(SasError::OutsideHub {
                entity: e.to_string(),
                hub: hub.clone(),
            })
        }
        (Some(hub), _) => Some(hub.clone()),
        (None, e) => e.map(str::to_string),
    };
    Ok(SasGrant {
        policy: policy.name.clone(),
        policy_hub: policy.hub.clone(),
        rights: policy.rights.normalized(),
        hub,
    })
}

/// Verify a connection string given as a SASL PLAIN password at `now_secs` (Unix time,
/// for a `SharedAccessSignature=` inside it).
pub fn verify_connection_string(
    policies: &[SharedAccessPolicy],
    text: &str,
    now_secs: u64,
) -> Result<SasGrant, SasError> {
    let cs = ConnectionString::parse(text).map_err(SasError::Malformed)?;
    let entity = cs.entity_path.as_deref().filter(|e| !e.is_empty());
    if let Some(token) = &cs.signature {
        return verify_token(policies, token, now_secs, entity);
    }
    let (Some(name), Some(key)) = (&cs.key_name, &cs.key) else {
        return Err(SasError::Malformed("no key"));
    };
    verify_key(policies, name, key, entity)
}

/// Verify a policy's name and one of its keys, as AMQP's SASL PLAIN carries them,
/// limited to `entity` if given.
pub fn verify_key(
    policies: &[SharedAccessPolicy],
    name: &str,
    key: &str,
    entity: Option<&str>,
) -> Result<SasGrant, SasError> {
    let Some(policy) = find(policies, name, entity) else {
        return Err(SasError::UnknownPolicy(crate::sasl::log_name(name)));
    };
    if !policy.key_matches(key) {
        return Err(SasError::WrongKey(crate::sasl::log_name(name)));
    }
    grant(policy, entity)
}

/// A token's resource (`sr`, decoded) and expiry (`se`, Unix seconds), read without
/// verifying them: for a token that [`verify_token`] accepted.
pub fn token_scope(token: &str) -> Option<(String, u64)> {
    let fields = token.strip_prefix("SharedAccessSignature ")?;
    let field = |name: &str| {
        fields
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    };
    let resource = percent_decode(field("sr")?).ok()?;
    let expiry = field("se")?.parse().ok()?;
    Some((resource, expiry))
}

/// Percent-decoding for the token's fields (`sr` is URL-encoded; `sig` is base64 that
/// was URL-encoded).
fn percent_decode(text: &str) -> Result<String, SasError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(SasError::MalformedToken("bad percent-encoding"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| SasError::MalformedToken("not UTF-8"))
}

/// The hub a token's resource URI names: its first path segment
/// (`sb://ns.example/hub/...` gives `hub`), or none for the namespace.
fn resource_hub(resource: &str) -> Option<String> {
    let rest = resource
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(resource);
    let path = rest.split_once('/').map(|(_, p)| p)?;
    path.split('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_ascii_lowercase())
}

/// Verify `SharedAccessSignature sr=<uri>&sig=<signature>&se=<expiry>&skn=<policy>`:
/// the signature is HMAC-SHA256 with the policy's primary or secondary key over the
/// URL-encoded resource (as the token carries it), a newline and the expiry. The grant
/// is limited to the hub the resource names, if it names one.
pub fn verify_token(
    policies: &[SharedAccessPolicy],
    token: &str,
    now_secs: u64,
    entity: Option<&str>,
) -> Result<SasGrant, SasError> {
    const PREFIX: &str = "SharedAccessSignature ";
    if token.len() > 4096 {
        return Err(SasError::MalformedToken("too long"));
    }
    let fields = token
        .strip_prefix(PREFIX)
        .ok_or(SasError::MalformedToken("no SharedAccessSignature prefix"))?;
    let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
    for pair in fields.split('&') {
        let (k, v) = pair
            .split_once('=')
            .ok_or(SasError::MalformedToken("a field without '='"))?;
        match k {
            "sr" => sr = Some(v),
            "sig" => sig = Some(v),
            "se" => se = Some(v),
            "skn" => skn = Some(v),
            _ => {}
        }
    }
    let (Some(sr), Some(sig), Some(se), Some(skn)) = (sr, sig, se, skn) else {
        return Err(SasError::MalformedToken("sr, sig, se and skn are required"));
    };
    let expiry: u64 = se
        .parse()
        .map_err(|_| SasError::MalformedToken("se is not a number"))?;
    let name = percent_decode(skn)?;
    let resource = percent_decode(sr)?;
    let token_hub = resource_hub(&resource);
    let entity = entity.map(str::to_string).or(token_hub.clone());
    let Some(policy) = find(policies, &name, entity.as_deref()) else {
        return Err(SasError::UnknownPolicy(crate::sasl::log_name(&name)));
    };
    let given = STANDARD
        .decode(percent_decode(sig)?)
        .map_err(|_| SasError::MalformedToken("sig is not base64"))?;
    let signed = format!("{sr}\n{se}");
    let primary = policy.primary_key.sign(&signed);
    let secondary = policy.secondary_key.sign(&signed);
    let ok = bool::from(primary.ct_eq(&given)) | bool::from(secondary.ct_eq(&given));
    if !ok {
        return Err(SasError::WrongKey(crate::sasl::log_name(&name)));
    }
    if expiry <= now_secs {
        return Err(SasError::Expired);
    }
    if let (Some(token_hub), Some(e)) = (&token_hub, &entity) {
        if !token_hub.eq_ignore_ascii_case(e) {
            return Err(SasError::OutsideHub {
                entity: e.clone(),
                hub: token_hub.clone(),
            });
        }
    }
    grant(policy, entity.as_deref())
}

/// A SAS token for `resource` signed with `key`, valid until `expiry_secs`: what the
/// SDKs build from a connection string (for tests and `runnel sas token`).
pub fn sign_token(resource: &str, policy: &str, key: &SasKey, expiry_secs: u64) -> String {
    let sr = percent_encode(resource);
    let sig = STANDARD.encode(key.sign(&format!("{sr}\n{expiry_secs}")));
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry_secs}&skn={}",
        percent_encode(&sig),
        percent_encode(policy)
    )
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, hub: Option<&str>, rights: &str) -> SharedAccessPolicy {
        SharedAccessPolicy {
            name: name.into(),
            hub: hub.map(str::to_string),
            rights: Rights::parse(rights).unwrap(),
            primary_key: SasKey::generate().unwrap(),
            secondary_key: SasKey::generate().unwrap(),
        }
    }

    #[test]
    fn connection_strings_log_in_with_either_key_and_are_limited_by_entity_path() {
        let root = policy("RootManageSharedAccessKey", None, "Manage");
        let send = policy("send", Some("orders"), "Send");
        let policies = vec![root.clone(), send.clone()];
        let cs = root.connection_string("localhost", false);
        let g = verify_connection_string(&policies, &cs, 0).unwrap();
        assert!(g.rights.manage && g.rights.send && g.rights.listen && g.hub.is_none());
        assert!(g.allows(AclOperation::Create, ResourceType::Cluster, "kafka-cluster"));

        let cs2 = format!("{};EntityPath=orders", root.connection_string("h", true));
        let g = verify_connection_string(&policies, &cs2, 0).unwrap();
        assert_eq!(g.hub.as_deref(), Some("orders"));
        assert!(!g.allows(AclOperation::Read, ResourceType::Topic, "other"));
        assert!(!g.allows(AclOperation::Create, ResourceType::Cluster, "kafka-cluster"));
        assert!(g.allows(AclOperation::Create, ResourceType::Topic, "orders"));

        let g =
            verify_connection_string(&policies, &send.connection_string("h", false), 0).unwrap();
        assert!(g.allows(AclOperation::Write, ResourceType::Topic, "orders"));
        assert!(!g.allows(AclOperation::Read, ResourceType::Topic, "orders"));
        assert!(!g.allows(AclOperation::Read, ResourceType::Group, "g"));
        assert!(g.allows(
            AclOperation::IdempotentWrite,
            ResourceType::Cluster,
            "kafka-cluster"
        ));

        let wrong = cs.replace(root.primary_key.expose(), &"A".repeat(43));
        assert!(matches!(
            verify_connection_string(&policies, &wrong, 0),
            Err(SasError::WrongKey(_))
        ));
        let outside = format!("{};EntityPath=x", send.connection_string("h", false));
        // "send" exists only for hub orders: EntityPath=x finds no policy.
        assert!(verify_connection_string(&policies, &outside, 0).is_err());
        assert!(verify_connection_string(&policies, "garbage", 0).is_err());
        assert!(verify_connection_string(&policies, "Endpoint=sb://h/;", 0).is_err());
    }

    #[test]
    fn tokens_verify_expire_and_name_their_hub() {
        let listen = policy("listen", None, "Listen");
        let policies = vec![listen.clone()];
        let token = sign_token(
            "sb://localhost/orders",
            "listen",
            &listen.secondary_key,
            100,
        );
        let g = verify_token(&policies, &token, 50, None).unwrap();
        assert_eq!(g.hub.as_deref(), Some("orders"));
        assert!(g.allows(AclOperation::Read, ResourceType::Topic, "orders"));
        assert!(!g.allows(AclOperation::Write, ResourceType::Topic, "orders"));
        assert_eq!(
            verify_token(&policies, &token, 100, None),
            Err(SasError::Expired)
        );
        let tampered = token.replace("orders", "secret");
        assert!(verify_token(&policies, &tampered, 50, None).is_err());
        let cs = format!("Endpoint=sb://localhost/;SharedAccessSignature={token}");
        assert!(verify_connection_string(&policies, &cs, 50).is_ok());
        for bad in [
            "",
            "SharedAccessSignature ",
            "SharedAccessSignature sr=%zz&sig=a&se=1&skn=x",
        ] {
            assert!(verify_token(&policies, bad, 0, None).is_err());
        }
    }

    #[test]
    fn rights_parse_and_print() {
        assert_eq!(
            Rights::parse("Manage").unwrap().to_string(),
            "Manage,Send,Listen"
        );
        assert_eq!(
            Rights::parse("send, LISTEN").unwrap().to_string(),
            "Send,Listen"
        );
        assert!(Rights::parse("").is_err());
        assert!(Rights::parse("Write").is_err());
        assert_eq!(
            format!("{:?}", SasKey::from_text("secret")),
            "SasKey(hidden)"
        );
    }
}
