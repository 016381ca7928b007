//! The listeners, as Kafka configures them: `listeners` names each one and its address,
//! `listener.security.protocol.map` gives its security protocol, `advertised.listeners`
//! what clients are told, and `listener.name.<listener>.<setting>` its own SSL and SASL
//! settings over the broker-wide ones. Checked once, at start, with the other settings:
//! a listener without a protocol, two listeners on one port, or an SSL listener without
//! a key refuses to start and says which.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::settings::{self, ListenerSettings, Settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    fn from_name(name: &str) -> Option<SecurityProtocol> {
        Some(match name {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// Where a PEM value comes from: a file (`*.location`) or the setting itself (inline).
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pem::File(p) => write!(f, "File({})", p.display()),
            Pem::Inline(_) => f.write_str("Inline([hidden])"),
        }
    }
}

/// The key store: one PEM file with the key and the chain, or both inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStore {
    /// `ssl.keystore.location`.
    File(PathBuf),
    /// `ssl.keystore.certificate.chain` and `ssl.keystore.key`.
    Inline { certificate_chain: Pem, key: Pem },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslConfig {
    pub keystore: KeyStore,
    /// CA certificates client certificates are checked against.
    pub truststore: Option<Pem>,
    pub client_auth: ClientAuth,
    /// `TLSv1.2`, `TLSv1.3`.
    pub enabled_protocols: Vec<String>,
    pub principal_mapping_rules: String,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SaslConfig {
    /// `sasl.enabled.mechanisms`, Kafka's names.
    pub enabled_mechanisms: Vec<String>,
    /// `plain.sasl.jaas.config`: PlainLoginModule's options (the users).
    pub plain_jaas: Option<String>,
    /// `connections.max.reauth.ms` (KIP-368); 0: sessions last as long as their credential.
    pub connections_max_reauth_ms: u64,
    /// When OAUTHBEARER is enabled: how its tokens are validated.
    pub oauthbearer: Option<OAuthBearerConfig>,
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("enabled_mechanisms", &self.enabled_mechanisms)
            .field("plain_jaas", &self.plain_jaas.as_ref().map(|_| "[hidden]"))
            .field("connections_max_reauth_ms", &self.connections_max_reauth_ms)
            .field("oauthbearer", &self.oauthbearer)
            .finish()
    }
}

/// How a listener validates OAUTHBEARER tokens, as Kafka picks its validator callback
/// handler: signed tokens against the JWKS at `sasl.oauthbearer.jwks.endpoint.url`, or,
/// without one, unsigned tokens with the `unsecuredValidator*` options of
/// `oauthbearer.sasl.jaas.config` (development only).
#[derive(Clone, PartialEq, Eq)]
pub enum OAuthBearerConfig {
    Jwks {
        /// `sasl.oauthbearer.jwks.endpoint.url` (a `file:` URL, checked when loaded).
        jwks_url: String,
        /// `sasl.oauthbearer.jwks.endpoint.refresh.ms`: how often the file is checked.
        refresh_ms: u64,
        expected_issuer: String,
        expected_audience: Vec<String>,
        sub_claim: String,
        scope_claim: String,
        clock_skew_seconds: u32,
    },
    /// `oauthbearer.sasl.jaas.config`.
    Unsecured { jaas: String },
}

impl std::fmt::Debug for OAuthBearerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OAuthBearerConfig::Jwks { jwks_url, .. } => f
                .debug_struct("Jwks")
                .field("jwks_url", jwks_url)
                .finish_non_exhaustive(),
            OAuthBearerConfig::Unsecured { .. } => f.write_str("Unsecured([hidden])"),
        }
    }
}

const SECURED_HANDLERS: [&str; 2] = [
    settings::OAUTHBEARER_HANDLERS[0],
    settings::OAUTHBEARER_HANDLERS[1],
];

fn oauthbearer_config(
    listener: &str,
    own: &ListenerSettings<'_>,
) -> Result<OAuthBearerConfig, ConfigError> {
    let url = own
        .str("sasl.oauthbearer.jwks.endpoint.url")?
        .trim()
        .to_string();
    let handler = own
        .str("oauthbearer.sasl.server.callback.handler.class")
        .unwrap_or("");
    let jaas = own.secret("oauthbearer.sasl.jaas.config");
    let secured_handler = SECURED_HANDLERS.contains(&handler);
    if !url.is_empty() {
        if !handler.is_empty() && !secured_handler {
            return Err(ConfigError::Conflict(format!(
                "listener {listener}: oauthbearer.sasl.server.callback.handler.class is the \
                 unsecured validator, but sasl.oauthbearer.jwks.endpoint.url is set"
            )));
        }
        return Ok(OAuthBearerConfig::Jwks {
            jwks_url: url,
            refresh_ms: own.int("sasl.oauthbearer.jwks.endpoint.refresh.ms")?,
            expected_issuer: own
                .str("sasl.oauthbearer.expected.issuer")?
                .trim()
                .to_string(),
            expected_audience: own.list("sasl.oauthbearer.expected.audience")?.to_vec(),
            sub_claim: own
                .str("sasl.oauthbearer.sub.claim.name")?
                .trim()
                .to_string(),
            scope_claim: own
                .str("sasl.oauthbearer.scope.claim.name")?
                .trim()
                .to_string(),
            clock_skew_seconds: own.int("sasl.oauthbearer.clock.skew.seconds")?,
        });
    }
    if secured_handler {
        return Err(ConfigError::Conflict(format!(
            "listener {listener}: oauthbearer.sasl.server.callback.handler.class validates \
             signed tokens, which needs sasl.oauthbearer.jwks.endpoint.url (file:///path/to/jwks.json)"
        )));
    }
    match jaas {
        Some(jaas) => Ok(OAuthBearerConfig::Unsecured {
            jaas: jaas.to_string(),
        }),
        None => Err(ConfigError::Conflict(format!(
            "listener {listener} enables OAUTHBEARER but says neither how to check signed tokens \
             (sasl.oauthbearer.jwks.endpoint.url=file:///path/to/jwks.json) nor that unsigned \
             development tokens are accepted (oauthbearer.sasl.jaas.config with \
             OAuthBearerLoginModule)"
        ))),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// The listener's name, upper case (`PLAINTEXT`, `SASL_SSL`, `INTERNAL`).
    pub name: String,
    pub security_protocol: SecurityProtocol,
    /// What to bind: `host:port` (an empty host is every interface).
    pub bind: String,
    /// What clients are told; `None` for the bound address.
    pub advertised: Option<(String, u16)>,
    /// `max.connections` of this listener, when set for it.
    pub max_connections: Option<usize>,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_authentication_delay_ms: u64,
    /// `sasl.server.max.receive.size`: the largest frame before authentication.
    pub sasl_max_receive_size: usize,
    /// For SSL and SASL_SSL.
    pub ssl: Option<SslConfig>,
    /// For SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<SaslConfig>,
}

fn invalid(name: &str, value: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        expected: expected.into(),
        origin: None,
    }
}

/// The listeners, in the order `listeners` names them (the first is the one the ready
/// line and `--listen` refer to).
pub fn from_settings(s: &Settings) -> Result<Vec<ListenerConfig>, ConfigError> {
    let raw = s.str("listeners")?;
    let map = settings::parse_protocol_map(s.str("listener.security.protocol.map")?)
        .map_err(|e| invalid("listener.security.protocol.map", "", e))?;
    let mut advertised = BTreeMap::new();
    let raw_advertised = s.str("advertised.listeners")?;
    let entries: Vec<&str> = raw_advertised
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let mut listeners = Vec::new();
    let mut names = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, host, port) =
            settings::parse_listener(entry).map_err(|e| invalid("listeners", raw, e))?;
        if !names.insert(name.clone()) {
            return Err(ConfigError::Conflict(format!(
                "listeners names {name} twice"
            )));
        }
        if port != 0 && !ports.insert(port) {
            return Err(ConfigError::Conflict(format!(
                "listeners puts two listeners on port {port}"
            )));
        }
        let protocol = map
            .get(&name)
            .and_then(|p| SecurityProtocol::from_name(p))
            .ok_or_else(|| {
                ConfigError::Conflict(format!(
                    "listener {name} has no security protocol in listener.security.protocol.map"
                ))
            })?;
        listeners.push((name, host, port, protocol));
    }
    for entry in &entries {
        let (name, host, port) = match settings::parse_advertised(entry) {
            // A bare host:port advertises the first listener, as `--advertised-listener`
            // always did.
            Ok(parsed) if !entry.contains("://") => match listeners.first() {
                Some((first, ..)) => (first.clone(), parsed.1, parsed.2),
                None => parsed,
            },
            Ok(parsed) => parsed,
            Err(e) => return Err(invalid("advertised.listeners", raw_advertised, e)),
        };
        if !names.contains(&name) {
            return Err(ConfigError::Conflict(format!(
                "advertised.listeners names {name}, which is not in listeners"
            )));
        }
        advertised.insert(name, (host, port));
    }
    for prefixed in s.prefixed_listeners() {
        if !names.contains(&prefixed.to_ascii_uppercase()) {
            return Err(ConfigError::Conflict(format!(
                "listener.name.{prefixed}. settings are given, but listeners has no {} listener",
                prefixed.to_ascii_uppercase()
            )));
        }
    }
    listeners
        .into_iter()
        .map(|(name, host, port, protocol)| {
            let own = s.for_listener(&name);
            let max_connections = if own.is_own("max.connections") {
                Some(own.int("max.connections")?)
            } else {
                None
            };
            Ok(ListenerConfig {
                ssl: if protocol.uses_tls() {
                    Some(ssl_config(&name, &own)?)
                } else {
                    None
                },
                sasl: if protocol.uses_sasl() {
                    let enabled_mechanisms = own.list("sasl.enabled.mechanisms")?.to_vec();
                    let oauthbearer = if enabled_mechanisms.iter().any(|m| m == "OAUTHBEARER") {
                        Some(oauthbearer_config(&name, &own)?)
                    } else {
                        None
                    };
                    Some(SaslConfig {
                        enabled_mechanisms,
                        plain_jaas: own.secret("plain.sasl.jaas.config").map(str::to_string),
                        connections_max_reauth_ms: own.int("connections.max.reauth.ms")?,
                        oauthbearer,
                    })
                } else {
                    None
                },
                advertised: advertised.remove(&name),
                bind: format!("{}:{port}", bind_host(&host)),
                name,
                security_protocol: protocol,
                max_connections,
                failed_authentication_delay_ms: own
                    .int("connection.failed.authentication.delay.ms")?,
                sasl_max_receive_size: own.int("sasl.server.max.receive.size")?,
            })
        })
        .collect()
}

/// The TLS of the Event Hubs AMQPS listener (`eventhubs.amqps.listener`): the
/// `listener.name.amqps.ssl.*` settings, or the broker-wide `ssl.*` ones.
pub fn amqps_ssl(s: &Settings) -> Result<Option<SslConfig>, ConfigError> {
    if s.str("eventhubs.amqps.listener")?.is_empty() {
        return Ok(None);
    }
    ssl_config("AMQPS", &s.for_listener("AMQPS")).map(Some)
}

fn bind_host(host: &str) -> String {
    if host.is_empty() {
        "0.0.0.0".to_string()
    } else if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn ssl_config(listener: &str, own: &ListenerSettings<'_>) -> Result<SslConfig, ConfigError> {
    let location = own.str("ssl.keystore.location")?;
    let chain = own.secret("ssl.keystore.certificate.chain");
    let key = own.secret("ssl.keystore.key");
    let keystore = match (location.is_empty(), chain, key) {
        (false, None, None) => KeyStore::File(PathBuf::from(location)),
        (true, Some(chain), Some(key)) => KeyStore::Inline {
            certificate_chain: Pem::Inline(chain.to_string()),
            key: Pem::Inline(key.to_string()),
        },
        (true, None, None) => {
            return Err(ConfigError::Conflict(format!(
                "listener {listener} uses TLS but has no key: set ssl.keystore.location (a PEM \
                 file with the key and the certificate chain), or ssl.keystore.certificate.chain \
                 and ssl.keystore.key (or run `runnel serve --tls-self-signed`)"
            )))
        }
        _ => {
            return Err(ConfigError::Conflict(format!(
                "listener {listener}: set either ssl.keystore.location or both \
                 ssl.keystore.certificate.chain and ssl.keystore.key"
            )))
        }
    };
    let trust_location = own.str("ssl.truststore.location")?;
    let truststore = match (
        trust_location.is_empty(),
        own.secret("ssl.truststore.certificates"),
    ) {
        (true, None) => None,
        (false, None) => Some(Pem::File(PathBuf::from(trust_location))),
        (true, Some(certs)) => Some(Pem::Inline(certs.to_string())),
        (false, Some(_)) => {
            return Err(ConfigError::Conflict(format!(
                "listener {listener}: set ssl.truststore.location or ssl.truststore.certificates, \
                 not both"
            )))
        }
    };
    let client_auth = match own.str("ssl.client.auth")? {
        "required" => ClientAuth::Required,
        "requested" => ClientAuth::Requested,
        _ => ClientAuth::None,
    };
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(ConfigError::Conflict(format!(
            "listener {listener}: ssl.client.auth is {} but there is no truststore to check \
             client certificates against (ssl.truststore.location)",
            own.str("ssl.client.auth")?
        )));
    }
    let enabled_protocols = own.list("ssl.enabled.protocols")?.to_vec();
    if enabled_protocols.is_empty() {
        return Err(invalid(
            "ssl.enabled.protocols",
            "",
            "at least one of TLSv1.2, TLSv1.3",
        ));
    }
    Ok(SslConfig {
        keystore,
        truststore,
        client_auth,
        enabled_protocols,
        principal_mapping_rules: own.str("ssl.principal.mapping.rules")?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(given: &[(&str, &str)]) -> Result<Vec<ListenerConfig>, ConfigError> {
        let mut all = vec![(
            "listeners",
            "SASL_PLAINTEXT://127.0.0.1:0,DEV://127.0.0.1:0",
        )];
        all.push((
            "listener.security.protocol.map",
            "SASL_PLAINTEXT:SASL_PLAINTEXT,DEV:SASL_PLAINTEXT",
        ));
        all.extend_from_slice(given);
        let map = all
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_settings(&Settings::parse(&map)?)
    }

    const JAAS: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule \
                        required unsecuredLoginStringClaim_sub=\"admin\";";

    #[test]
    fn oauthbearer_is_signed_with_a_jwks_url_and_unsecured_with_only_the_jaas_line() {
        let l = listeners(&[
            ("sasl.enabled.mechanisms", "PLAIN,OAUTHBEARER"),
            (
                "sasl.oauthbearer.jwks.endpoint.url",
                "file:///etc/jwks.json",
            ),
            ("sasl.oauthbearer.expected.audience", "a, b"),
            ("connections.max.reauth.ms", "60000"),
            ("listener.name.dev.sasl.oauthbearer.jwks.endpoint.url", ""),
            ("listener.name.dev.oauthbearer.sasl.jaas.config", JAAS),
            ("listener.name.dev.connections.max.reauth.ms", "0"),
        ])
        .unwrap();
        let sasl = l[0].sasl.as_ref().unwrap();
        assert_eq!(sasl.connections_max_reauth_ms, 60000);
        match sasl.oauthbearer.as_ref().unwrap() {
            OAuthBearerConfig::Jwks {
                jwks_url,
                expected_audience,
                sub_claim,
                clock_skew_seconds,
                ..
            } => {
                assert_eq!(jwks_url, "file:///etc/jwks.json");
                assert_eq!(expected_audience, &["a", "b"]);
                assert_eq!(sub_claim, "sub");
                assert_eq!(*clock_skew_seconds, 30);
            }
            other => panic!("{other:?}"),
        }
        let dev = l[1].sasl.as_ref().unwrap();
        assert_eq!(dev.connections_max_reauth_ms, 0);
        assert!(matches!(
            dev.oauthbearer,
            Some(OAuthBearerConfig::Unsecured { .. })
        ));
        // The JAAS line never shows.
        assert!(!format!("{dev:?}").contains("unsecuredLoginStringClaim"));
        // Not enabled: not configured, whatever else is set.
        let off = listeners(&[("sasl.oauthbearer.jwks.endpoint.url", "file:///x")]).unwrap();
        assert!(off[0].sasl.as_ref().unwrap().oauthbearer.is_none());
    }

    #[test]
    fn oauthbearer_without_a_validator_or_with_a_contradicting_one_refuses_to_start() {
        let err = listeners(&[("sasl.enabled.mechanisms", "OAUTHBEARER")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("sasl.oauthbearer.jwks.endpoint.url"),
            "{err}"
        );
        let secured =
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler";
        let unsecured = "org.apache.kafka.common.security.oauthbearer.internals.unsecured.\
                         OAuthBearerUnsecuredValidatorCallbackHandler";
        let err = listeners(&[
            ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            ("oauthbearer.sasl.jaas.config", JAAS),
            ("oauthbearer.sasl.server.callback.handler.class", secured),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("needs sasl.oauthbearer.jwks.endpoint.url"),
            "{err}"
        );
        let err = listeners(&[
            ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            ("sasl.oauthbearer.jwks.endpoint.url", "file:///x"),
            ("oauthbearer.sasl.server.callback.handler.class", unsecured),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("unsecured"), "{err}");
        assert!(listeners(&[
            ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            ("sasl.oauthbearer.jwks.endpoint.url", "file:///x"),
            ("oauthbearer.sasl.server.callback.handler.class", secured),
        ])
        .is_ok());
    }
}
