//! How the client reaches a secured listener: `security.protocol`, TLS trust and client
//! certificates (PEM), and SASL credentials, read from a Java properties file as
//! Kafka's tools take it (`--command-config`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, Result};
pub use crate::sasl::{SaslCredentials, SaslMechanism};

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
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

/// TLS material as PEM.
#[derive(Clone, Default)]
pub struct TlsSettings {
    /// CA certificates to trust; `None` for the system's bundle.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and key, for listeners that require one.
    pub client_cert_chain_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    /// Check that the certificate names the host (Kafka's default,
    /// `ssl.endpoint.identification.algorithm=https`).
    pub verify_hostname: bool,
}

/// How connections are secured. `Default` is PLAINTEXT. `Debug` shows no secret.
#[derive(Clone, Default)]
pub struct SecurityConfig {
    protocol: SecurityProtocol,
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<SaslCredentials>,
}

impl fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("protocol", &self.protocol)
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl SecurityConfig {
    /// A configuration for `protocol`: TLS settings are required for SSL and SASL_SSL,
    /// credentials for SASL_PLAINTEXT and SASL_SSL.
    pub fn new(
        protocol: SecurityProtocol,
        tls: Option<TlsSettings>,
        sasl: Option<SaslCredentials>,
    ) -> Result<SecurityConfig> {
        let tls = if protocol.uses_tls() {
            Some(Arc::new(client_tls_config(&tls.unwrap_or(TlsSettings {
                verify_hostname: true,
                ..TlsSettings::default()
            }))?))
        } else {
            None
        };
        if protocol.uses_sasl() && sasl.is_none() {
            return Err(Error::Config(format!(
                "security.protocol={} needs sasl.mechanism and sasl.jaas.config with a username and password",
                protocol.name()
            )));
        }
        Ok(SecurityConfig {
            protocol,
            tls,
            sasl: if protocol.uses_sasl() { sasl } else { None },
        })
    }

    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    pub fn sasl(&self) -> Option<&SaslCredentials> {
        self.sasl.as_ref()
    }

    pub(crate) fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }

    /// Read a Java properties file (`--command-config`) and build the configuration.
    pub fn from_properties_file(path: &Path) -> Result<SecurityConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        SecurityConfig::from_properties(&parse_properties(&text)).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Build the configuration from Kafka client properties:
    /// `security.protocol`, `ssl.truststore.location` (`ssl.truststore.type=PEM`) or
    /// `ssl.truststore.certificates`, `ssl.ca.location`, `ssl.keystore.location` (PEM key
    /// and chain) or `ssl.certificate.location` with `ssl.key.location`,
    /// `ssl.endpoint.identification.algorithm`, `sasl.mechanism` and `sasl.jaas.config`
    /// (or librdkafka's `sasl.username` / `sasl.password`). Other properties are ignored,
    /// as the Java client ignores those it does not use.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<SecurityConfig> {
        let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let protocol = match get("security.protocol") {
            None => SecurityProtocol::Plaintext,
            Some(p) => SecurityProtocol::parse(p).ok_or_else(|| {
                Error::Config(format!(
                    "security.protocol={p} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                ))
            })?,
        };
        let tls = if protocol.uses_tls() {
            Some(tls_settings(props)?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            Some(sasl_credentials(props)?)
        } else {
            None
        };
        SecurityConfig::new(protocol, tls, sasl)
    }
}

fn read_pem(key: &str, path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Config(format!("{key}={path}: {e}")))
}

fn tls_settings(props: &BTreeMap<String, String>) -> Result<TlsSettings> {
    let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    for key in ["ssl.truststore.type", "ssl.keystore.type"] {
        if let Some(t) = get(key) {
            if !t.eq_ignore_ascii_case("PEM") {
                return Err(Error::Config(format!(
                    "{key}={t}: Runnel's client reads PEM only (convert with keytool/openssl)"
                )));
            }
        }
    }
    let ca_pem = if let Some(path) = get("ssl.truststore.location") {
        Some(read_pem("ssl.truststore.location", path)?)
    } else if let Some(path) = get("ssl.ca.location") {
        Some(read_pem("ssl.ca.location", path)?)
    } else {
        get("ssl.truststore.certificates").map(|p| p.as_bytes().to_vec())
    };
    let (client_cert_chain_pem, client_key_pem) =
        if let Some(path) = get("ssl.keystore.location") {
            let pem = read_pem("ssl.keystore.location", path)?;
            (Some(pem.clone()), Some(pem))
        } else {
            match (
                get("ssl.certificate.location"),
                get("ssl.key.location"),
                get("ssl.keystore.certificate.chain"),
                get("ssl.keystore.key"),
            ) {
                (Some(c), Some(k), _, _) => (
                    Some(read_pem("ssl.certificate.location", c)?),
                    Some(read_pem("ssl.key.location", k)?),
                ),
                (None, None, Some(c), Some(k)) => {
                    (Some(c.as_bytes().to_vec()), Some(k.as_bytes().to_vec()))
                }
                (None, None, None, None) => (None, None),
                _ => return Err(Error::Config(
                    "a client certificate needs both ssl.certificate.location and ssl.key.location"
                        .into(),
                )),
            }
        };
    let verify_hostname = match props.get("ssl.endpoint.identification.algorithm") {
        None => true,
        Some(v) if v.trim().eq_ignore_ascii_case("https") => true,
        Some(v) if v.trim().is_empty() => false,
        Some(v) => {
            return Err(Error::Config(format!(
                "ssl.endpoint.identification.algorithm={v}: expected https or empty"
            )))
        }
    };
    Ok(TlsSettings {
        ca_pem,
        client_cert_chain_pem,
        client_key_pem,
        verify_hostname,
    })
}

fn sasl_credentials(props: &BTreeMap<String, String>) -> Result<SaslCredentials> {
    let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    // Kafka's default mechanism is GSSAPI, which Runnel does not speak: say so.
    let name = get("sasl.mechanism").unwrap_or("GSSAPI");
    let mechanism = SaslMechanism::parse(name).ok_or_else(|| {
        Error::Config(format!(
            "sasl.mechanism={name} is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
        ))
    })?;
    if let Some(jaas) = get("sasl.jaas.config") {
        let entry = parse_jaas(jaas)?;
        let expected = match mechanism {
            SaslMechanism::Plain => "org.apache.kafka.common.security.plain.PlainLoginModule",
            _ => "org.apache.kafka.common.security.scram.ScramLoginModule",
        };
        if entry.module != expected {
            return Err(Error::Config(format!(
                "sasl.jaas.config uses {} but sasl.mechanism={} needs {expected}",
                entry.module,
                mechanism.name()
            )));
        }
        let option = |k: &str| {
            entry
                .options
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        match (option("username"), option("password")) {
            (Some(username), Some(password)) => Ok(SaslCredentials {
                mechanism,
                username,
                password,
            }),
            _ => Err(Error::Config(
                "sasl.jaas.config needs username=\"...\" and password=\"...\"".into(),
            )),
        }
    } else {
        match (get("sasl.username"), get("sasl.password")) {
            (Some(u), Some(p)) => Ok(SaslCredentials {
                mechanism,
                username: u.to_string(),
                password: p.to_string(),
            }),
            _ => Err(Error::Config(
                "SASL needs sasl.jaas.config (or sasl.username and sasl.password)".into(),
            )),
        }
    }
}

/// One JAAS login module entry: `Module flag key=value ...;`.
#[derive(Clone, PartialEq, Eq)]
pub struct JaasEntry {
    pub module: String,
    pub flag: String,
    pub options: Vec<(String, String)>,
}

impl fmt::Debug for JaasEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("JaasEntry")
            .field("module", &self.module)
            .field("flag", &self.flag)
            .field("option_names", &keys)
            .finish()
    }
}

/// Parse a `sasl.jaas.config` value: a login module class, a control flag (required,
/// requisite, sufficient, optional) and `name=value` options, where a value is a word or
/// a double-quoted string with backslash escapes, ended by `;`. Errors never quote
/// values (they may be passwords).
pub fn parse_jaas(text: &str) -> Result<JaasEntry> {
    let err = |m: &str| Error::Config(format!("sasl.jaas.config: {m}"));
    let mut chars = text.chars().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
    };
    let word = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        let mut w = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' || c == ';' || c == '"' {
                break;
            }
            w.push(c);
            chars.next();
        }
        w
    };
    skip_ws(&mut chars);
    let module = word(&mut chars);
    if module.is_empty() {
        return Err(err("no login module class"));
    }
    skip_ws(&mut chars);
    let flag = word(&mut chars);
    if !["required", "requisite", "sufficient", "optional"]
        .iter()
        .any(|f| f.eq_ignore_ascii_case(&flag))
    {
        return Err(err(
            "expected a control flag (required, requisite, sufficient, optional) after the module",
        ));
    }
    let mut options = Vec::new();
    loop {
        skip_ws(&mut chars);
        match chars.peek() {
            None => return Err(err("the entry must end with ';'")),
            Some(';') => {
                chars.next();
                break;
            }
            Some(_) => {}
        }
        let key = word(&mut chars);
        if key.is_empty() {
            return Err(err("expected an option name"));
        }
        skip_ws(&mut chars);
        if chars.next() != Some('=') {
            return Err(err(&format!("option {key} has no '=value'")));
        }
        skip_ws(&mut chars);
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next() {
                    None => return Err(err(&format!("the value of {key} has no closing quote"))),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        None => {
                            return Err(err(&format!("the value of {key} has no closing quote")))
                        }
                        Some('n') => v.push('\n'),
                        Some('t') => v.push('\t'),
                        Some('r') => v.push('\r'),
                        Some(c) => v.push(c),
                    },
                    Some(c) => v.push(c),
                }
            }
            v
        } else {
            let v = word(&mut chars);
            if v.is_empty() {
                return Err(err(&format!("option {key} has an empty value")));
            }
            v
        };
        options.push((key, value));
    }
    skip_ws(&mut chars);
    if chars.next().is_some() {
        return Err(err(
            "only one login module entry is supported (text after ';')",
        ));
    }
    Ok(JaasEntry {
        module,
        flag,
        options,
    })
}

/// Parse Java properties text: `key=value`, `key: value` or `key value`; `#` and `!`
/// comments; a trailing backslash continues a line; `\t \n \r \f \uXXXX` and `\x` for
/// any other x. Later keys win.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        // Join continuation lines: an odd number of trailing backslashes.
        let mut logical = trimmed.to_string();
        while logical.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1 {
            logical.pop();
            match lines.next() {
                Some(next) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let chars: Vec<char> = logical.chars().collect();
        let mut i = 0;
        let mut key = String::new();
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' {
                i += 1;
                if let Some((ch, used)) = unescape(&chars[i..]) {
                    key.push(ch);
                    i += used;
                }
                continue;
            }
            if c == '=' || c == ':' || c.is_whitespace() {
                break;
            }
            key.push(c);
            i += 1;
        }
        // Separator: whitespace, then at most one '=' or ':', then whitespace.
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i < chars.len() && (chars[i] == '=' || chars[i] == ':') {
            i += 1;
        }
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        while i < chars.len() {
            if chars[i] == '\\' {
                i += 1;
                if let Some((ch, used)) = unescape(&chars[i..]) {
                    value.push(ch);
                    i += used;
                }
                continue;
            }
            value.push(chars[i]);
            i += 1;
        }
        out.insert(key, value);
    }
    out
}

/// The character after a backslash, and how many chars it took.
fn unescape(rest: &[char]) -> Option<(char, usize)> {
    let c = *rest.first()?;
    Some(match c {
        't' => ('\t', 1),
        'n' => ('\n', 1),
        'r' => ('\r', 1),
        'f' => ('\u{c}', 1),
        'u' if rest.len() >= 5 => {
            let hex: String = rest[1..5].iter().collect();
            match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                Some(ch) => (ch, 5),
                None => ('u', 1),
            }
        }
        other => (other, 1),
    })
}

/// The system's CA bundle, for TLS without a configured trust store.
fn system_roots(roots: &mut RootCertStore) {
    let mut paths: Vec<String> = Vec::new();
    if let Ok(p) = std::env::var("SSL_CERT_FILE") {
        paths.push(p);
    }
    paths.extend(
        [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
        ]
        .map(String::from),
    );
    for p in paths {
        if let Ok(pem) = std::fs::read(&p) {
            let certs = CertificateDer::pem_slice_iter(&pem).filter_map(|c| c.ok());
            let (added, _) = roots.add_parsable_certificates(certs);
            if added > 0 {
                return;
            }
        }
    }
}

fn client_tls_config(settings: &TlsSettings) -> Result<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    match &settings.ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| Error::Config(format!("the trust store is not PEM: {e}")))?;
                roots.add(cert).map_err(|e| {
                    Error::Config(format!("a trusted certificate is unusable: {e}"))
                })?;
            }
        }
        None => system_roots(&mut roots),
    }
    if roots.is_empty() {
        return Err(Error::Config(
            "TLS needs a CA to trust: set ssl.truststore.location (PEM) or ssl.ca.location".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    let roots = Arc::new(roots);
    let builder = if settings.verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
    };
    let config = match (&settings.client_cert_chain_pem, &settings.client_key_pem) {
        (Some(chain), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(chain)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Config(format!("the client certificate is not PEM: {e}")))?;
            if chain.is_empty() {
                return Err(Error::Config(
                    "the client certificate file holds no certificate".into(),
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
                Error::Config(format!(
                    "the client key is not an unencrypted PEM private key: {e}"
                ))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Config(format!("the client certificate or key: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// The server name to verify for `addr` ("host:port" or "[v6]:port").
pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h,
        None => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|_| Error::Config(format!("{host} is not a valid TLS server name")))
}

/// Chain and expiry checks without the name check
/// (`ssl.endpoint.identification.algorithm=` empty, as Kafka allows).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_as_java_reads_them() {
        let p = parse_properties(
            "# comment\n! also\nsecurity.protocol=SASL_SSL\n  sasl.mechanism : SCRAM-SHA-512\n\
             key\\ with\\ space value here\nlong=a\\\n    b\\\n c\nuni=\\u0041\\tx\nempty=\n",
        );
        assert_eq!(p["security.protocol"], "SASL_SSL");
        assert_eq!(p["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(p["key with space"], "value here");
        assert_eq!(p["long"], "abc");
        assert_eq!(p["uni"], "A\tx");
        assert_eq!(p["empty"], "");
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn jaas_lines() {
        let e = parse_jaas(
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="bob" password="p;a \"q\" = x";"#,
        )
        .unwrap();
        assert_eq!(
            e.module,
            "org.apache.kafka.common.security.scram.ScramLoginModule"
        );
        assert_eq!(
            e.options,
            vec![
                ("username".to_string(), "bob".to_string()),
                ("password".to_string(), r#"p;a "q" = x"#.to_string())
            ]
        );
        let e = parse_jaas("M required username=alice password=s3cret ;").unwrap();
        assert_eq!(e.options[1].1, "s3cret");
        assert!(!format!("{e:?}").contains("s3cret"));
        for bad in [
            "",
            "M",
            "M required username=\"a\"",
            "M maybe username=a;",
            "M required username=\"a;",
            "M required username;",
            "M required a=b; N required c=d;",
        ] {
            let err = parse_jaas(bad).unwrap_err().to_string();
            assert!(!err.contains("\"a"), "{err}");
        }
    }

    #[test]
    fn from_properties() {
        let props = |s: &str| parse_properties(s);
        let c = SecurityConfig::from_properties(&props(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=\
             org.apache.kafka.common.security.plain.PlainLoginModule required username=\"alice\" password=\"alice-secret\";\n",
        ))
        .unwrap();
        assert_eq!(c.protocol(), SecurityProtocol::SaslPlaintext);
        assert_eq!(c.sasl().unwrap().username, "alice");
        assert!(!format!("{c:?}").contains("alice-secret"));
        assert!(SecurityConfig::from_properties(&props(""))
            .unwrap()
            .tls()
            .is_none());
        for bad in [
            "security.protocol=KERBEROS",
            "security.protocol=SASL_PLAINTEXT",
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\nsasl.jaas.config=M required;",
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=\
             org.apache.kafka.common.security.scram.ScramLoginModule required username=a password=b;",
            "security.protocol=SSL\nssl.truststore.type=JKS\nssl.truststore.location=/x.jks",
            "security.protocol=SSL\nssl.truststore.location=/nonexistent/ca.pem",
        ] {
            assert!(SecurityConfig::from_properties(&props(bad)).is_err(), "{bad}");
        }
        assert_eq!(server_name("[::1]:9093").unwrap().to_str(), "::1");
        assert_eq!(server_name("localhost:9093").unwrap().to_str(), "localhost");
    }
}
