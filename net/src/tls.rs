//! TLS for a listener, with rustls: the server's key and chain, an optional trust store
//! for client certificates (`ssl.client.auth` = required or requested), the TLS versions
//! allowed, and the client certificate's subject as an RFC 2253 name, which Kafka turns
//! into the principal (`ssl.principal.mapping.rules`).
//!
//! Key material is passed in as PEM bytes: reading files (and noticing they changed) is
//! the caller's job. [`ServerTls::replace`] swaps the configuration under running
//! connections; new handshakes use the new one.

use std::io;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::transport::{CopyWriter, Transport};

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Ask for a certificate; a client without one is let in as the anonymous principal.
    Requested,
    Required,
}

/// What a TLS listener is made of, as PEM.
#[derive(Clone)]
pub struct TlsSettings {
    /// The certificate chain, leaf first.
    pub certificate_chain_pem: Vec<u8>,
    /// The private key (PKCS#8, PKCS#1 or SEC1), unencrypted.
    pub key_pem: Vec<u8>,
    /// CA certificates client certificates must chain to.
    pub truststore_pem: Option<Vec<u8>>,
    pub client_auth: ClientAuth,
    pub tls12: bool,
    pub tls13: bool,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("client_auth", &self.client_auth)
            .field("tls12", &self.tls12)
            .field("tls13", &self.tls13)
            .finish_non_exhaustive()
    }
}

/// How long a client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A listener's TLS configuration, replaceable while it serves.
pub struct ServerTls {
    config: RwLock<Arc<ServerConfig>>,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.into())
}

/// A rustls server configuration from PEM. Errors say what is wrong with which part,
/// never what the key is.
pub fn server_config(settings: &TlsSettings) -> io::Result<ServerConfig> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&settings.certificate_chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(format!("the certificate chain is not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(invalid("the keystore holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(&settings.key_pem).map_err(|e| {
        invalid(format!(
            "the keystore holds no unencrypted private key ({e}); an encrypted key must be \
             decrypted first (openssl pkey -in key.pem -out plain.pem)"
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if settings.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if settings.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() {
        return Err(invalid("no TLS version is enabled"));
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| invalid(format!("TLS versions: {e}")))?;
    let builder = match (settings.client_auth, &settings.truststore_pem) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err(invalid("client authentication needs a truststore")),
        (auth, Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| invalid(format!("the truststore is not PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("a truststore certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(invalid("the truststore holds no certificate"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| invalid(format!("client verifier: {e}")))?,
            )
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| invalid(format!("the key does not fit the certificate: {e}")))
}

impl ServerTls {
    pub fn new(settings: &TlsSettings) -> io::Result<ServerTls> {
        Ok(ServerTls {
            config: RwLock::new(Arc::new(server_config(settings)?)),
        })
    }

    /// Use `settings` for the handshakes that start from now on.
    pub fn replace(&self, settings: &TlsSettings) -> io::Result<()> {
        let config = Arc::new(server_config(settings)?);
        // A writer that panicked left a complete Arc behind; taking it over is safe.
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    /// The TLS handshake, bounded by [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, stream: TcpStream) -> io::Result<TlsTransport> {
        let config = self
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let acceptor = TlsAcceptor::from(config);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => Ok(TlsTransport(stream)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the TLS handshake did not finish in time",
            )),
        }
    }
}

/// A connection after its TLS handshake.
pub struct TlsTransport(TlsStream<TcpStream>);

impl TlsTransport {
    /// The stream itself, for a protocol engine that reads and writes it whole
    /// (the AMQP endpoint).
    pub fn into_inner(self) -> TlsStream<TcpStream> {
        self.0
    }

    /// The client certificate's subject in RFC 2253 form (what Java's
    /// `X500Principal.getName()` gives Kafka), if the client sent one.
    pub fn peer_subject(&self) -> Option<String> {
        let certs = self.0.get_ref().1.peer_certificates()?;
        let leaf = certs.first()?;
        match x509_parser::parse_x509_certificate(leaf.as_ref()) {
            Ok((_, cert)) => Some(rfc2253(cert.subject())),
            Err(e) => {
                // rustls verified it, so this is a parser limit; treat as no name.
                tracing::warn!(error = %e, "cannot read the client certificate's subject");
                None
            }
        }
    }
}

impl Transport for TlsTransport {
    type Reader = ReadHalf<TlsStream<TcpStream>>;
    type Writer = CopyWriter<WriteHalf<TlsStream<TcpStream>>>;
    fn into_split(self) -> (Self::Reader, Self::Writer) {
        let (r, w) = tokio::io::split(self.0);
        (r, CopyWriter::new(w))
    }
}

/// RFC 2253: the RDNs last to first, `,` between them, `+` inside one, values escaped.
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type();
                    let key = match oid.to_id_string().as_str() {
                        "2.5.4.3" => "CN".to_string(),
                        "2.5.4.6" => "C".to_string(),
                        "2.5.4.7" => "L".to_string(),
                        "2.5.4.8" => "ST".to_string(),
                        "2.5.4.9" => "STREET".to_string(),
                        "2.5.4.10" => "O".to_string(),
                        "2.5.4.11" => "OU".to_string(),
                        "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                        "0.9.2342.19200300.100.1.1" => "UID".to_string(),
                        other => other.to_string(),
                    };
                    match attr.as_str() {
                        Ok(value) => format!("{key}={}", escape(value)),
                        // Not a string type: RFC 2253's #hex of the DER value.
                        Err(_) => {
                            let hex: String = attr
                                .attr_value()
                                .data
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect();
                            format!("{key}=#{hex}")
                        }
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.reverse();
    rdns.join(",")
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(cn: &str) -> (Vec<u8>, Vec<u8>) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "NO");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Runnel, Test");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
    }

    #[test]
    fn subjects_are_rfc2253() {
        let (cert, _) = self_signed("alice");
        let der = CertificateDer::from_pem_slice(&cert).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        assert_eq!(rfc2253(parsed.subject()), "CN=alice,O=Runnel\\, Test,C=NO");
        assert_eq!(escape("#a+b "), "\\#a\\+b\\ ");
        assert_eq!(escape(" a"), "\\ a");
    }

    #[test]
    fn bad_material_is_an_error_not_a_panic() {
        let (cert, key) = self_signed("broker");
        let good = TlsSettings {
            certificate_chain_pem: cert.clone(),
            key_pem: key.clone(),
            truststore_pem: None,
            client_auth: ClientAuth::None,
            tls12: true,
            tls13: true,
        };
        assert!(server_config(&good).is_ok());
        let cases = [
            TlsSettings {
                certificate_chain_pem: b"garbage".to_vec(),
                ..good.clone()
            },
            TlsSettings {
                key_pem: cert.clone(),
                ..good.clone()
            },
            TlsSettings {
                key_pem: self_signed("other").1,
                ..good.clone()
            },
            TlsSettings {
                client_auth: ClientAuth::Required,
                ..good.clone()
            },
            TlsSettings {
                tls12: false,
                tls13: false,
                ..good.clone()
            },
        ];
        for case in cases {
            let Err(err) = server_config(&case) else {
                panic!("accepted {case:?}");
            };
            let text = err.to_string();
            assert!(!text.contains("PRIVATE KEY"), "{text}");
        }
    }
}
