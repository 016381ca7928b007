//! Who a connection is: TLS client certificates and the SASL exchange, per listener.
//!
//! A [`ListenerSecurity`] is built once per listener from its settings: the TLS
//! configuration (reloaded when its files change), how a certificate subject becomes a
//! principal, and the SASL mechanisms with their credentials. A [`Session`] is one
//! connection's state. On a SASL listener nothing but ApiVersions, SaslHandshake and
//! SaslAuthenticate is served until the exchange succeeds, as Kafka's
//! `SaslServerAuthenticator` does; anything else closes the connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages as m;
use kafka_protocol::protocol::StrBytes;
use runnel_core::listeners::{self as cfg, KeyStore, ListenerConfig, OAuthBearerConfig, Pem};
use runnel_net::tls::{self, ServerTls, TlsSettings};
use runnel_protocol::api::{ApiKey, Request, RequestBody, ResponseBody};
use runnel_security::principal::{KafkaPrincipal, SslPrincipalMapper};
use runnel_security::sas::{self, SasGrant, CONNECTION_STRING_USER};
use runnel_security::sasl::oauthbearer::system_clock;
use runnel_security::sasl::{
    parse_oauthbearer_jaas, parse_plain_jaas, AuthError, JwksSettings, JwksValidator, Mechanism,
    PlainLogin, PlainUsers, PlainVerifier, SaslServer, SaslStep, ScramCredentials, ScramMechanism,
    TokenValidator,
};
use runnel_security::store::SecurityStore;

use runnel_core::poison::or_stop;

use crate::context::{ListenerInfo, ANONYMOUS};

/// How often TLS key and trust files are checked for a change.
pub const TLS_RELOAD_CHECK: Duration = Duration::from_secs(10);

/// A listener's TLS: the live configuration and where it came from.
pub struct TlsEndpoint {
    pub server: ServerTls,
    config: cfg::SslConfig,
    /// The files' modification times when last loaded.
    loaded: std::sync::Mutex<Vec<Option<SystemTime>>>,
    mapper: SslPrincipalMapper,
}

/// A SASL listener's mechanisms and where their credentials live.
pub struct SaslEndpoint {
    pub mechanisms: Vec<Mechanism>,
    plain: Arc<dyn PlainVerifier>,
    store: Arc<SecurityStore>,
    /// How OAUTHBEARER tokens are checked, when it is enabled.
    oauthbearer: Option<Arc<dyn TokenValidator>>,
    /// The JWKS file behind signed tokens, and how often to check it for a change.
    pub jwks: Option<JwksWatch>,
    /// `connections.max.reauth.ms`, when above 0 (KIP-368).
    max_reauth: Option<Duration>,
}

/// A JWKS file behind signed tokens, and how often to check it for a change.
pub type JwksWatch = (Arc<JwksValidator>, Duration);

/// The OAUTHBEARER validator of a listener: a JWKS file, or unsecured tokens.
fn oauthbearer_validator(
    listener: &str,
    config: &OAuthBearerConfig,
) -> std::io::Result<(Arc<dyn TokenValidator>, Option<JwksWatch>)> {
    match config {
        OAuthBearerConfig::Jwks {
            jwks_url,
            refresh_ms,
            expected_issuer,
            expected_audience,
            sub_claim,
            scope_claim,
            clock_skew_seconds,
        } => {
            let jwks = Arc::new(
                JwksValidator::new(JwksSettings {
                    jwks_url: jwks_url.clone(),
                    expected_issuer: expected_issuer.clone(),
                    expected_audience: expected_audience.clone(),
                    sub_claim: sub_claim.clone(),
                    scope_claim: scope_claim.clone(),
                    clock_skew_seconds: (*clock_skew_seconds).into(),
                })
                .map_err(|e| invalid(listener, e))?,
            );
            tracing::info!(listener, jwks = %jwks.path().display(),
                "OAUTHBEARER validates signed tokens against a JWKS file");
            let validator: Arc<dyn TokenValidator> = jwks.clone();
            Ok((validator, Some((jwks, Duration::from_millis(*refresh_ms)))))
        }
        OAuthBearerConfig::Unsecured { jaas } => {
            let unsecured = parse_oauthbearer_jaas(jaas)
                .map_err(|e| invalid(listener, format!("oauthbearer.sasl.jaas.config: {e}")))?;
            tracing::warn!(
                listener,
                "OAUTHBEARER accepts unsecured (unsigned) tokens: for development only; set \
                 sasl.oauthbearer.jwks.endpoint.url to check signed ones"
            );
            Ok((Arc::new(unsecured), None))
        }
    }
}

pub struct ListenerSecurity {
    pub info: Arc<ListenerInfo>,
    pub tls: Option<TlsEndpoint>,
    pub sasl: Option<SaslEndpoint>,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_authentication_delay: Duration,
    /// `sasl.server.max.receive.size`.
    pub sasl_max_receive_size: usize,
}

fn invalid(listener: &str, what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("listener {listener}: {what}"),
    )
}

fn read_pem(listener: &str, pem: &Pem) -> std::io::Result<Vec<u8>> {
    match pem {
        Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        Pem::File(path) => std::fs::read(path)
            .map_err(|e| invalid(listener, format!("reading {}: {e}", path.display()))),
    }
}

fn files(config: &cfg::SslConfig) -> Vec<PathBuf> {
    let mut out = Vec::new();
    match &config.keystore {
        KeyStore::File(p) => out.push(p.clone()),
        KeyStore::Inline {
            certificate_chain,
            key,
        } => {
            for pem in [certificate_chain, key] {
                if let Pem::File(p) = pem {
                    out.push(p.clone());
                }
            }
        }
    }
    if let Some(Pem::File(p)) = &config.truststore {
        out.push(p.clone());
    }
    out
}

fn modified(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// A listener's TLS settings read from its PEM files (the AMQPS listener uses it too).
pub fn tls_settings(listener: &str, config: &cfg::SslConfig) -> std::io::Result<TlsSettings> {
    let (chain, key) = match &config.keystore {
        // Kafka's PEM keystore file holds the key and the chain together.
        KeyStore::File(path) => {
            let both = read_pem(listener, &Pem::File(path.clone()))?;
            (both.clone(), both)
        }
        KeyStore::Inline {
            certificate_chain,
            key,
        } => (
            read_pem(listener, certificate_chain)?,
            read_pem(listener, key)?,
        ),
    };
    Ok(TlsSettings {
        certificate_chain_pem: chain,
        key_pem: key,
        truststore_pem: match &config.truststore {
            Some(pem) => Some(read_pem(listener, pem)?),
            None => None,
        },
        client_auth: match config.client_auth {
            cfg::ClientAuth::None => tls::ClientAuth::None,
            cfg::ClientAuth::Requested => tls::ClientAuth::Requested,
            cfg::ClientAuth::Required => tls::ClientAuth::Required,
        },
        tls12: config.enabled_protocols.iter().any(|p| p == "TLSv1.2"),
        tls13: config.enabled_protocols.iter().any(|p| p == "TLSv1.3"),
    })
}

impl TlsEndpoint {
    fn new(listener: &str, config: &cfg::SslConfig) -> std::io::Result<TlsEndpoint> {
        let paths = files(config);
        let loaded = modified(&paths);
        let server =
            ServerTls::new(&tls_settings(listener, config)?).map_err(|e| invalid(listener, e))?;
        let mapper = SslPrincipalMapper::parse(&config.principal_mapping_rules)
            .map_err(|e| invalid(listener, format!("ssl.principal.mapping.rules: {e}")))?;
        Ok(TlsEndpoint {
            server,
            config: config.clone(),
            loaded: std::sync::Mutex::new(loaded),
            mapper,
        })
    }

    /// Reload the key, chain and trust store if one of their files changed. A change
    /// that does not load keeps the old configuration (and is logged). Blocking: reads
    /// files.
    pub fn reload_if_changed(&self, listener: &str) {
        let paths = files(&self.config);
        if paths.is_empty() {
            return;
        }
        let now = modified(&paths);
        let mut loaded = or_stop(self.loaded.lock(), "TLS file times");
        if *loaded == now {
            return;
        }
        let result = tls_settings(listener, &self.config).and_then(|s| self.server.replace(&s));
        match result {
            Ok(()) => tracing::info!(listener, "reloaded the TLS key and certificates"),
            Err(e) => tracing::error!(listener, error = %e,
                "the TLS files changed but do not load; keeping the previous ones"),
        }
        *loaded = now;
    }

    /// The principal of a TLS connection: the certificate subject through
    /// `ssl.principal.mapping.rules`, or ANONYMOUS without a certificate (Kafka's
    /// `DefaultKafkaPrincipalBuilder`).
    pub fn principal(&self, subject: Option<&str>) -> Result<String, String> {
        match subject {
            None => Ok(ANONYMOUS.to_string()),
            Some(dn) => self
                .mapper
                .name_for(dn)
                .map(|name| KafkaPrincipal::user(name).to_string())
                .map_err(|e| format!("{e}")),
        }
    }
}

impl ListenerSecurity {
    pub fn new(
        config: &ListenerConfig,
        info: Arc<ListenerInfo>,
        store: &Arc<SecurityStore>,
    ) -> std::io::Result<ListenerSecurity> {
        let tls = match &config.ssl {
            Some(ssl) => Some(TlsEndpoint::new(&config.name, ssl)?),
            None => None,
        };
        let sasl = match &config.sasl {
            Some(sasl) => {
                let mechanisms = sasl
                    .enabled_mechanisms
                    .iter()
                    .map(|name| {
                        Mechanism::from_name(name).ok_or_else(|| {
                            invalid(&config.name, format!("unknown SASL mechanism {name}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let plain: Arc<dyn PlainVerifier> = match &sasl.plain_jaas {
                    Some(jaas) => Arc::new(parse_plain_jaas(jaas).map_err(|e| {
                        invalid(&config.name, format!("plain.sasl.jaas.config: {e}"))
                    })?),
                    None => Arc::new(PlainUsers::new()),
                };
                let plain = Arc::new(ConnectionStringLogins {
                    users: plain,
                    store: store.clone(),
                });
                let (oauthbearer, jwks) = match &sasl.oauthbearer {
                    Some(o) if mechanisms.contains(&Mechanism::OAuthBearer) => {
                        let (v, jwks) = oauthbearer_validator(&config.name, o)?;
                        (Some(v), jwks)
                    }
                    None if mechanisms.contains(&Mechanism::OAuthBearer) => {
                        return Err(invalid(&config.name, "OAUTHBEARER has no token validator"))
                    }
                    _ => (None, None),
                };
                Some(SaslEndpoint {
                    mechanisms,
                    plain,
                    store: store.clone(),
                    oauthbearer,
                    jwks,
                    max_reauth: (sasl.connections_max_reauth_ms > 0)
                        .then(|| Duration::from_millis(sasl.connections_max_reauth_ms)),
                })
            }
            None => None,
        };
        Ok(ListenerSecurity {
            info,
            tls,
            sasl,
            failed_authentication_delay: Duration::from_millis(
                config.failed_authentication_delay_ms,
            ),
            sasl_max_receive_size: config.sasl_max_receive_size,
        })
    }
}

/// PLAIN logins: Event Hubs connection strings (username `$ConnectionString`, the
/// connection string as the password) against the store's shared access policies, and
/// the JAAS users otherwise.
struct ConnectionStringLogins {
    users: Arc<dyn PlainVerifier>,
    store: Arc<SecurityStore>,
}

impl PlainVerifier for ConnectionStringLogins {
    fn verify(&self, username: &str, password: &str) -> Option<KafkaPrincipal> {
        self.login(username, password).map(|l| l.principal)
    }

    fn login(&self, username: &str, password: &str) -> Option<PlainLogin> {
        if username != CONNECTION_STRING_USER {
            return self.users.login(username, password);
        }
        // The broker's wall clock, so that an injected clock jump moves SAS expiry too.
        let now = (runnel_storage::now_ms().max(0) / 1000) as u64;
        match self
            .store
            .with_policies(|policies| sas::verify_connection_string(policies, password, now))
        {
            Ok(grant) => Some(PlainLogin {
                principal: KafkaPrincipal::new(SAS_PRINCIPAL_TYPE, grant.principal_name()),
                sas: Some(grant),
            }),
            Err(e) => {
                // The reason never holds a key or signature.
                tracing::info!(error = %e, "an Event Hubs connection string was refused");
                None
            }
        }
    }
}

/// The principal type of a shared-access-policy login (`SharedAccessKey:<policy>`):
/// not `User`, so no ACL written for users applies to it.
pub const SAS_PRINCIPAL_TYPE: &str = "SharedAccessKey";

/// What the connection loop does with a request, given the session's state.
pub enum Gate {
    /// Dispatch it as usual.
    Serve,
    /// A SASL request: the session answers it ([`Session::handshake`],
    /// [`Session::authenticate`]).
    Sasl,
    /// Not allowed now: close the connection.
    Close(&'static str),
}

/// Whether the exchange went on, finished or failed.
pub enum Outcome {
    /// Send the response and keep going.
    Continue,
    /// Send the response after `connection.failed.authentication.delay.ms`, then close.
    Failed,
}

enum State {
    /// Not a SASL listener, or authenticated.
    Open,
    /// A SASL listener before SaslHandshake.
    AwaitingHandshake,
    /// After SaslHandshake v1: SaslAuthenticate requests carry the tokens.
    Authenticating(Box<SaslServer>, Mechanism),
    /// After SaslHandshake v0: the next frames are bare tokens.
    AuthenticatingRaw(Box<SaslServer>, Mechanism),
    /// Re-authentication asked for another mechanism than the session's: the next
    /// SaslAuthenticate fails with this message (Kafka's REAUTH_BAD_MECHANISM).
    ReauthBadMechanism(String),
}

/// A session's lifetime (KIP-368): when it ends unless the client re-authenticates on
/// the same connection, as Kafka's `SaslServerAuthenticator` and `KafkaChannel` keep it.
#[derive(Default)]
struct Lifetime {
    /// The mechanism the session authenticated with; re-authentication must use it.
    mechanism: Option<Mechanism>,
    /// When the session ends; `None`: never (no `connections.max.reauth.ms`, and a
    /// credential without expiry).
    expires: Option<Instant>,
    /// While re-authenticating: the principal, which must not change.
    previous_principal: Option<Arc<str>>,
    /// Kafka refuses to start re-authenticating more than once a second.
    last_reauth_start: Option<Instant>,
}

/// Kafka's `MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS`.
const MIN_REAUTH_INTERVAL: Duration = Duration::from_secs(1);

/// One connection's identity.
pub struct Session {
    security: Arc<ListenerSecurity>,
    principal: Arc<str>,
    /// A connection-string login's rights.
    sas: Option<Arc<SasGrant>>,
    state: State,
    lifetime: Lifetime,
}

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

impl Session {
    /// A new connection; `principal` is what TLS established (ANONYMOUS otherwise).
    pub fn new(security: Arc<ListenerSecurity>, principal: String) -> Session {
        let state = if security.sasl.is_some() {
            State::AwaitingHandshake
        } else {
            State::Open
        };
        Session {
            security,
            principal: principal.into(),
            sas: None,
            state,
            lifetime: Lifetime::default(),
        }
    }

    /// Whether the session outlived its lifetime without re-authenticating.
    fn expired(&self) -> bool {
        self.lifetime.expires.is_some_and(|e| Instant::now() > e)
    }

    pub fn principal(&self) -> &Arc<str> {
        &self.principal
    }

    pub fn sas(&self) -> Option<&Arc<SasGrant>> {
        self.sas.as_ref()
    }

    pub fn listener(&self) -> &Arc<ListenerInfo> {
        &self.security.info
    }

    pub fn failed_authentication_delay(&self) -> Duration {
        self.security.failed_authentication_delay
    }

    /// The largest frame read before authentication succeeds
    /// (`sasl.server.max.receive.size`); `None` once it has, or without SASL.
    pub fn unauthenticated_frame_limit(&self) -> Option<usize> {
        match self.state {
            State::Open => None,
            _ => Some(self.security.sasl_max_receive_size),
        }
    }

    /// Whether the next frame is a bare SASL token (after SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::AuthenticatingRaw(..))
    }

    pub fn gate(&self, api: ApiKey) -> Gate {
        let sasl_api = matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
        match &self.state {
            // SaslHandshake may start a re-authentication, even after expiry.
            State::Open if api == ApiKey::SaslHandshake => Gate::Sasl,
            // Kafka closes an expired session at its next request (KIP-368).
            State::Open if self.expired() => Gate::Close(
                "the session outlived its lifetime (connections.max.reauth.ms or the \
                 credential's expiry) without re-authenticating",
            ),
            State::Open if sasl_api => Gate::Sasl,
            State::Open => Gate::Serve,
            State::ReauthBadMechanism(_) => match api {
                ApiKey::SaslAuthenticate => Gate::Sasl,
                _ => Gate::Close("a request in the middle of SASL re-authentication"),
            },
            State::AwaitingHandshake => match api {
                ApiKey::ApiVersions => Gate::Serve,
                ApiKey::SaslHandshake => Gate::Sasl,
                _ => Gate::Close("a request before SASL authentication"),
            },
            State::Authenticating(..) => match api {
                ApiKey::SaslAuthenticate => Gate::Sasl,
                _ => Gate::Close("a request in the middle of SASL authentication"),
            },
            State::AuthenticatingRaw(..) => Gate::Close("a request instead of a SASL token"),
        }
    }

    /// Answer a request the gate gave [`Gate::Sasl`].
    pub fn answer(&mut self, request: &Request) -> (ResponseBody, Outcome) {
        match &request.body {
            RequestBody::SaslHandshake(r) => self.handshake(r, request.header.api_version),
            RequestBody::SaslAuthenticate(r) => self.authenticate(r),
            // The gate says Sasl only for the two APIs above.
            _ => (
                ResponseBody::SaslAuthenticate(
                    m::SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::IllegalSaslState.code()),
                ),
                Outcome::Failed,
            ),
        }
    }

    /// SaslHandshake: pick the mechanism.
    fn handshake(
        &mut self,
        req: &m::SaslHandshakeRequest,
        version: i16,
    ) -> (ResponseBody, Outcome) {
        let enabled: Vec<StrBytes> = self
            .security
            .sasl
            .as_ref()
            .map(|s| s.mechanisms.iter().map(|m| str_bytes(m.name())).collect())
            .unwrap_or_default();
        let response = |code: i16| {
            ResponseBody::SaslHandshake(
                m::SaslHandshakeResponse::default()
                    .with_error_code(code)
                    .with_mechanisms(enabled.clone()),
            )
        };
        let Some(sasl) = self.security.sasl.as_ref() else {
            // Kafka answers this on a listener without SASL and carries on.
            return (
                response(ResponseError::IllegalSaslState.code()),
                Outcome::Continue,
            );
        };
        if matches!(self.state, State::Open) && self.lifetime.expires.is_some() {
            // A session with a lifetime: SaslHandshake starts a re-authentication, at
            // most once a second (`KafkaChannel.maybeBeginServerReauthentication`).
            let now = Instant::now();
            let too_soon = self
                .lifetime
                .last_reauth_start
                .is_some_and(|last| now.duration_since(last) < MIN_REAUTH_INTERVAL);
            if !too_soon {
                self.lifetime.last_reauth_start = Some(now);
                self.lifetime.previous_principal = Some(self.principal.clone());
                self.state = State::AwaitingHandshake;
            }
        }
        if !matches!(self.state, State::AwaitingHandshake) {
            return (
                response(ResponseError::IllegalSaslState.code()),
                Outcome::Continue,
            );
        }
        let wanted = req.mechanism.as_str();
        let Some(mechanism) = sasl.mechanisms.iter().copied().find(|m| m.name() == wanted) else {
            tracing::info!(listener = %self.security.info.name, mechanism = %wanted,
                "refusing a SASL mechanism that is not enabled");
            return (
                response(ResponseError::UnsupportedSaslMechanism.code()),
                Outcome::Failed,
            );
        };
        if let (Some(_), Some(previous)) =
            (&self.lifetime.previous_principal, self.lifetime.mechanism)
        {
            if previous != mechanism {
                // Kafka answers the handshake and fails the SaslAuthenticate after it.
                self.state = State::ReauthBadMechanism(format!(
                    "SASL mechanism '{mechanism}' requested by client is not supported for \
                     re-authentication of mechanism '{previous}'"
                ));
                return (response(0), Outcome::Continue);
            }
        }
        let scram = || -> Arc<dyn ScramCredentials> { sasl.store.clone() };
        let server = Box::new(match (mechanism, &sasl.oauthbearer) {
            (Mechanism::Plain, _) => SaslServer::plain(sasl.plain.clone()),
            (Mechanism::ScramSha256, _) => SaslServer::scram(ScramMechanism::Sha256, scram()),
            (Mechanism::ScramSha512, _) => SaslServer::scram(ScramMechanism::Sha512, scram()),
            (Mechanism::OAuthBearer, Some(validator)) => SaslServer::oauthbearer(validator.clone()),
            // ListenerSecurity::new refuses OAUTHBEARER without a validator; never PLAIN.
            (Mechanism::OAuthBearer, None) => {
                return (
                    response(ResponseError::UnsupportedSaslMechanism.code()),
                    Outcome::Failed,
                );
            }
        });
        self.state = if version == 0 {
            State::AuthenticatingRaw(server, mechanism)
        } else {
            State::Authenticating(server, mechanism)
        };
        (response(0), Outcome::Continue)
    }

    /// SaslAuthenticate: one step of the exchange.
    fn authenticate(&mut self, req: &m::SaslAuthenticateRequest) -> (ResponseBody, Outcome) {
        let failed = |code: ResponseError, message: &str| {
            ResponseBody::SaslAuthenticate(
                m::SaslAuthenticateResponse::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            )
        };
        if let State::ReauthBadMechanism(message) = &self.state {
            tracing::info!(listener = %self.security.info.name, error = %message,
                "SASL re-authentication failed");
            return (
                failed(ResponseError::SaslAuthenticationFailed, message),
                Outcome::Failed,
            );
        }
        let State::Authenticating(server, mechanism) = &mut self.state else {
            let message = match self.state {
                State::Open => "SaslAuthenticate request received after successful authentication",
                _ => "Unexpected SaslAuthenticate request",
            };
            // Without SASL or after it, Kafka answers and keeps the connection.
            let outcome = if matches!(self.state, State::Open) {
                Outcome::Continue
            } else {
                Outcome::Failed
            };
            return (failed(ResponseError::IllegalSaslState, message), outcome);
        };
        let mechanism = *mechanism;
        match server.evaluate(&req.auth_bytes) {
            Ok(SaslStep::Challenge(token)) => (
                ResponseBody::SaslAuthenticate(
                    m::SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(token)),
                ),
                Outcome::Continue,
            ),
            Ok(SaslStep::Complete {
                principal,
                final_token,
            }) => {
                let credential_expiry = server.credential_expires_at_ms();
                let sas = server.take_sas_grant();
                if let Err(message) = self.check_reauth_principal(&principal) {
                    return (
                        failed(ResponseError::SaslAuthenticationFailed, &message),
                        Outcome::Failed,
                    );
                }
                self.complete(mechanism, principal, sas);
                let session_lifetime_ms = self.start_lifetime(mechanism, credential_expiry);
                (
                    ResponseBody::SaslAuthenticate(
                        m::SaslAuthenticateResponse::default()
                            .with_auth_bytes(Bytes::from(final_token))
                            .with_session_lifetime_ms(session_lifetime_ms),
                    ),
                    Outcome::Continue,
                )
            }
            Err(e) => {
                self.log_failure(mechanism, &e);
                (
                    failed(ResponseError::SaslAuthenticationFailed, &e.client_message()),
                    Outcome::Failed,
                )
            }
        }
    }

    /// A bare token after SaslHandshake v0: the answer frame (size-prefixed), or
    /// `None` when the exchange failed (v0 has no way to say why: the connection
    /// closes).
    pub fn raw_token(&mut self, token: &[u8]) -> Option<Bytes> {
        let State::AuthenticatingRaw(server, mechanism) = &mut self.state else {
            return None;
        };
        let mechanism = *mechanism;
        let reply = match server.evaluate(token) {
            Ok(SaslStep::Challenge(reply)) => reply,
            Ok(SaslStep::Complete {
                principal,
                final_token,
            }) => {
                let credential_expiry = server.credential_expires_at_ms();
                let sas = server.take_sas_grant();
                if self.check_reauth_principal(&principal).is_err() {
                    return None;
                }
                self.complete(mechanism, principal, sas);
                self.start_lifetime(mechanism, credential_expiry);
                final_token
            }
            Err(e) => {
                self.log_failure(mechanism, &e);
                return None;
            }
        };
        let mut frame = BytesMut::with_capacity(4 + reply.len());
        frame.put_u32(reply.len() as u32);
        frame.put_slice(&reply);
        Some(frame.freeze())
    }

    fn complete(&mut self, mechanism: Mechanism, principal: KafkaPrincipal, sas: Option<SasGrant>) {
        let principal = principal.to_string();
        tracing::debug!(listener = %self.security.info.name, mechanism = mechanism.name(),
            %principal, "authenticated");
        self.principal = principal.into();
        self.sas = sas.map(Arc::new);
        self.state = State::Open;
    }

    /// Re-authentication may not change the principal: Kafka fails it with this message.
    fn check_reauth_principal(&self, principal: &KafkaPrincipal) -> Result<(), String> {
        let Some(previous) = &self.lifetime.previous_principal else {
            return Ok(());
        };
        let now = principal.to_string();
        if **previous == *now {
            return Ok(());
        }
        let dotted = |p: &str| p.replacen(':', ".", 1);
        let message = format!(
            "Cannot change principals during re-authentication from {}: {}",
            dotted(previous),
            dotted(&now)
        );
        tracing::info!(listener = %self.security.info.name, error = %message,
            "SASL re-authentication failed");
        Err(message)
    }

    /// The session's lifetime from now, as Kafka's `calcCompletionTimesAndReturnSessionLifetimeMs`
    /// computes it: the least of `connections.max.reauth.ms` and the time left on the
    /// credential (an OAUTHBEARER token's `exp`); 0 when neither bounds it.
    fn start_lifetime(&mut self, mechanism: Mechanism, credential_expiry_ms: Option<i64>) -> i64 {
        let reauthenticated = self.lifetime.previous_principal.take().is_some();
        self.lifetime.mechanism = Some(mechanism);
        let max_reauth = self
            .security
            .sasl
            .as_ref()
            .and_then(|s| s.max_reauth)
            .map(|d| d.as_millis().min(i64::MAX as u128) as i64);
        let left = credential_expiry_ms.map(|e| e.saturating_sub(system_clock()).max(0));
        let lifetime_ms = match (max_reauth, left) {
            (None, None) => None,
            (Some(m), None) => Some(m),
            (None, Some(l)) => Some(l),
            (Some(m), Some(l)) => Some(m.min(l)),
        };
        self.lifetime.expires =
            lifetime_ms.map(|ms| Instant::now() + Duration::from_millis(ms as u64));
        if reauthenticated {
            tracing::info!(listener = %self.security.info.name, mechanism = mechanism.name(),
                principal = %self.principal, session_lifetime_ms = lifetime_ms.unwrap_or(0),
                "re-authenticated");
        }
        lifetime_ms.unwrap_or(0)
    }

    fn log_failure(&self, mechanism: Mechanism, e: &AuthError) {
        tracing::info!(listener = %self.security.info.name, mechanism = mechanism.name(),
            error = %e, "SASL authentication failed");
    }
}
