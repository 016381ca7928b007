//! TLS and SASL on the Kafka listeners, driven by librdkafka (the `rdkafka` crate) and
//! by raw requests where a client would not misbehave on purpose.
//!
//! - `tls_*`: an SSL listener beside PLAINTEXT, record sets larger than the copy buffer
//!   through TLS; mutual TLS with `ssl.client.auth=required`: no certificate, a
//!   certificate from another CA, and a subject the mapping rules do not match are all
//!   refused.
//! - `sasl_*`: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 over SASL_PLAINTEXT and SASL_SSL,
//!   right and wrong passwords, an unknown user.
//! - `before_authentication_*`, `malformed_sasl_*`, `handshake_v0_*`: what a SASL
//!   listener serves before authentication, garbage and oversized tokens, and Kafka's
//!   unframed v0 tokens.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{self as m, ApiKey, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::TopicPartitionList;
use runnel_protocol::api::{
    decode_response, encode_request, RequestBody, RequestHeader, ResponseBody,
};
use runnel_suite::{BrokerOptions, TestBroker};

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

/// A CA, the broker's certificate for 127.0.0.1 and localhost, and client certificates.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate, PEM (clients' `ssl.ca.location`, the broker's truststore).
    ca_pem: PathBuf,
    /// The broker's key and chain, one PEM file (`ssl.keystore.location`).
    keystore: PathBuf,
}

fn new_ca(cn: &str) -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (rcgen::Issuer::new(params, key), cert.pem())
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_pem) = new_ca("Runnel test CA");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca_pem).unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "broker");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let keystore = dir.path().join("broker.pem");
        std::fs::write(
            &keystore,
            format!("{}{}{}", key.serialize_pem(), cert.pem(), ca_pem),
        )
        .unwrap();
        Pki {
            dir,
            ca,
            ca_pem: ca_path,
            keystore,
        }
    }

    /// A client certificate with subject `CN=<cn>,O=Runnel` from `issuer` (the test CA
    /// when `None`): (certificate path, key path).
    fn client(
        &self,
        cn: &str,
        issuer: Option<&rcgen::Issuer<'static, rcgen::KeyPair>>,
    ) -> (PathBuf, PathBuf) {
        // Issuers write the RDNs most general first, so the RFC 2253 name (last first)
        // is `CN=...,O=Runnel`.
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Runnel");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer.unwrap_or(&self.ca)).unwrap();
        let cert_path = self.dir.path().join(format!("{cn}.crt"));
        let key_path = self.dir.path().join(format!("{cn}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

// ---------------------------------------------------------------------------------------
// Brokers and clients
// ---------------------------------------------------------------------------------------

const PLAIN_JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
    username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\" \
    user_alice=\"alice-secret\";";

const SCRAM_USERS: &str = "SCRAM-SHA-256=[name=bob,password=bob-secret];\
    SCRAM-SHA-512=[name=carol,password=carol-secret,iterations=8192]";

/// A broker with PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL listeners.
fn secured_broker(pki: &Pki, extra: &[(&str, &str)]) -> TestBroker {
    let mut settings = vec![
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0"
                .to_string(),
        ),
        ("ssl.keystore.location", path(&pki.keystore)),
        ("plain.sasl.jaas.config", PLAIN_JAAS.to_string()),
        ("scram.bootstrap.users", SCRAM_USERS.to_string()),
    ];
    for (k, v) in extra {
        settings.push((k, v.to_string()));
    }
    let mut extra_args = Vec::new();
    for (k, v) in settings {
        extra_args.push("--set".to_string());
        extra_args.push(format!("{k}={v}"));
    }
    TestBroker::start_with(BrokerOptions {
        extra_args,
        ..Default::default()
    })
}

/// Keeps librdkafka's errors, to tell an authentication failure from a timeout.
#[derive(Default)]
struct Errors(Mutex<Vec<String>>);

impl ClientContext for Errors {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            self.0.lock().unwrap().push(format!("{fac}: {log_message}"));
        }
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.lock().unwrap().push(format!("{error}: {reason}"));
    }
}
impl ConsumerContext for Errors {}

impl Errors {
    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

fn client_config(bootstrap: SocketAddr, security: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap.to_string())
        .set("socket.timeout.ms", "10000");
    for (k, v) in security {
        c.set(*k, *v);
    }
    c
}

/// Produce `values` to `topic` and read them back, each through its own client with
/// `security`.
fn round_trip(bootstrap: SocketAddr, security: &[(&str, &str)], topic: &str, values: &[Vec<u8>]) {
    let producer: ThreadedProducer<DefaultProducerContext> = client_config(bootstrap, security)
        .create()
        .expect("producer");
    for v in values {
        producer
            .send(BaseRecord::<(), [u8]>::to(topic).payload(v))
            .map_err(|(e, _)| e)
            .expect("queue a record");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    assert_eq!(producer.in_flight_count(), 0, "records left unsent");

    let consumer: BaseConsumer<Errors> = client_config(bootstrap, security)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.bytes", "52428800")
        .create_with_context(Errors::default())
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < values.len() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(msg)) => got.push(msg.payload().unwrap_or_default().to_vec()),
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    if got.len() != values.len() {
        panic!(
            "{} of {} records came back\n{}",
            got.len(),
            values.len(),
            consumer.context().text()
        );
    }
    assert!(got == values, "records differ after the round trip");
}

/// Whether a client with `security` can read the cluster's metadata, and its errors.
fn metadata_with(bootstrap: SocketAddr, security: &[(&str, &str)]) -> Result<(), String> {
    let consumer: BaseConsumer<Errors> = client_config(bootstrap, security)
        .create_with_context(Errors::default())
        .expect("client");
    match consumer.fetch_metadata(None, Duration::from_secs(8)) {
        Ok(md) if !md.brokers().is_empty() => Ok(()),
        Ok(_) => Err("no brokers in metadata".to_string()),
        Err(e) => {
            // librdkafka hands its errors over on poll.
            for _ in 0..10 {
                let _ = consumer.poll(Duration::from_millis(100));
            }
            Err(format!("{e}\n{}", consumer.context().text()))
        }
    }
}

// ---------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------

#[test]
fn tls_listener_serves_beside_plaintext() {
    let pki = Pki::new();
    let broker = secured_broker(&pki, &[]);
    let ssl = broker.listener_addr("SSL");
    let ca = path(&pki.ca_pem);
    let security = [
        ("security.protocol", "ssl"),
        ("ssl.ca.location", ca.as_str()),
    ];
    // Many small records, and some larger than the TLS writer's copy buffer (under the
    // topic's max.message.bytes).
    let mut values: Vec<Vec<u8>> = (0..2000u32)
        .map(|i| format!("record-{i}").into_bytes())
        .collect();
    for n in 0..4u32 {
        values.push((0..900_000u32).map(|i| ((i + n) % 251) as u8).collect());
    }
    round_trip(ssl, &security, "tls-topic", &values);
    // The PLAINTEXT listener goes on serving plain clients.
    round_trip(broker.addr(), &[], "plain-topic", &values[..10]);
    // Plain bytes on the TLS port are not a request.
    assert!(metadata_with(ssl, &[]).is_err());
    // A client that does not trust the broker's CA refuses it.
    let err = metadata_with(ssl, &[("security.protocol", "ssl")]).unwrap_err();
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("SSL"),
        "{err}"
    );
}

/// Key and certificate files are reloaded when they change: new connections get the new
/// certificate, without a restart.
#[test]
fn tls_certificates_reload_without_a_restart() {
    let pki = Pki::new();
    let broker = secured_broker(&pki, &[]);
    let ssl = broker.listener_addr("SSL");
    let old_ca = path(&pki.ca_pem);
    let trusting = |ca: &str| -> Result<(), String> {
        metadata_with(
            ssl,
            &[("security.protocol", "ssl"), ("ssl.ca.location", ca)],
        )
    };
    trusting(&old_ca).expect("the first certificate");

    // A broker certificate from a new CA, swapped in by a rename as a deploy would.
    let (new_ca, new_ca_pem) = new_ca("Runnel rotated CA");
    let new_ca_path = pki.dir.path().join("new-ca.pem");
    std::fs::write(&new_ca_path, &new_ca_pem).unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "broker-rotated");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &new_ca).unwrap();
    let staged = pki.dir.path().join("broker.pem.new");
    std::fs::write(
        &staged,
        format!("{}{}{}", key.serialize_pem(), cert.pem(), new_ca_pem),
    )
    .unwrap();
    std::fs::rename(&staged, &pki.keystore).unwrap();

    let new_ca_path = path(&new_ca_path);
    runnel_suite::eventually(
        Duration::from_secs(40),
        "the broker serves the new certificate",
        || trusting(&new_ca_path).ok(),
    );
    assert!(
        trusting(&old_ca).is_err(),
        "a client trusting only the old CA is refused once the certificate changed"
    );
    assert!(
        broker
            .stderr_log()
            .contains("reloaded the TLS key and certificates"),
        "the reload is logged"
    );
}

#[test]
fn tls_client_authentication_required() {
    let pki = Pki::new();
    let broker = secured_broker(
        &pki,
        &[
            ("listener.name.ssl.ssl.client.auth", "required"),
            (
                "listener.name.ssl.ssl.truststore.location",
                &path(&pki.ca_pem),
            ),
            (
                "listener.name.ssl.ssl.principal.mapping.rules",
                "RULE:^CN=([a-z]+),O=Runnel$/$1/L",
            ),
        ],
    );
    let ssl = broker.listener_addr("SSL");
    let ca = path(&pki.ca_pem);
    let (cert, key) = pki.client("alice", None);
    let (cert, key) = (path(&cert), path(&key));
    let with_cert = [
        ("security.protocol", "ssl"),
        ("ssl.ca.location", ca.as_str()),
        ("ssl.certificate.location", cert.as_str()),
        ("ssl.key.location", key.as_str()),
    ];
    round_trip(ssl, &with_cert, "mtls-topic", &[b"hello".to_vec()]);

    // No certificate.
    assert!(metadata_with(ssl, &with_cert[..2]).is_err());
    // A certificate from a CA the broker does not trust.
    let (other_ca, _) = new_ca("Another CA");
    let (cert, key) = pki.client("mallory", Some(&other_ca));
    let (cert, key) = (path(&cert), path(&key));
    let foreign = [
        ("security.protocol", "ssl"),
        ("ssl.ca.location", ca.as_str()),
        ("ssl.certificate.location", cert.as_str()),
        ("ssl.key.location", key.as_str()),
    ];
    assert!(metadata_with(ssl, &foreign).is_err());
    // A trusted certificate whose subject no mapping rule matches (upper case CN).
    let (cert, key) = pki.client("ALICE", None);
    let (cert, key) = (path(&cert), path(&key));
    let unmapped = [
        ("security.protocol", "ssl"),
        ("ssl.ca.location", ca.as_str()),
        ("ssl.certificate.location", cert.as_str()),
        ("ssl.key.location", key.as_str()),
    ];
    assert!(metadata_with(ssl, &unmapped).is_err());
    let log = broker.stderr_log();
    assert!(
        log.contains("no principal for the client certificate"),
        "the unmapped subject is logged: {log}"
    );
}

// ---------------------------------------------------------------------------------------
// SASL
// ---------------------------------------------------------------------------------------

fn sasl<'a>(
    protocol: &'a str,
    mechanism: &'a str,
    user: &'a str,
    password: &'a str,
    ca: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut c = vec![
        ("security.protocol", protocol),
        ("sasl.mechanism", mechanism),
        ("sasl.username", user),
        ("sasl.password", password),
    ];
    if protocol == "sasl_ssl" {
        c.push(("ssl.ca.location", ca));
    }
    c
}

#[test]
fn sasl_mechanisms_over_plaintext_and_tls() {
    let pki = Pki::new();
    let broker = secured_broker(&pki, &[]);
    let ca = path(&pki.ca_pem);
    for (protocol, listener) in [
        ("sasl_plaintext", "SASL_PLAINTEXT"),
        ("sasl_ssl", "SASL_SSL"),
    ] {
        let addr = broker.listener_addr(listener);
        for (mechanism, user, password) in [
            ("PLAIN", "alice", "alice-secret"),
            ("SCRAM-SHA-256", "bob", "bob-secret"),
            ("SCRAM-SHA-512", "carol", "carol-secret"),
        ] {
            let topic = format!("{listener}-{mechanism}").to_lowercase();
            let security = sasl(protocol, mechanism, user, password, &ca);
            round_trip(addr, &security, &topic, &[b"one".to_vec(), b"two".to_vec()]);
        }
    }
}

#[test]
fn sasl_wrong_credentials_are_refused() {
    let pki = Pki::new();
    let broker = secured_broker(&pki, &[]);
    let addr = broker.listener_addr("SASL_PLAINTEXT");
    let ca = path(&pki.ca_pem);
    for (mechanism, user, password) in [
        ("PLAIN", "alice", "wrong"),
        ("PLAIN", "nobody", "alice-secret"),
        ("SCRAM-SHA-256", "bob", "wrong"),
        ("SCRAM-SHA-256", "nobody", "bob-secret"),
        // bob has no SCRAM-SHA-512 credential.
        ("SCRAM-SHA-512", "bob", "bob-secret"),
        // PLAIN users are not SCRAM users.
        ("SCRAM-SHA-256", "alice", "alice-secret"),
    ] {
        let err = metadata_with(
            addr,
            &sasl("sasl_plaintext", mechanism, user, password, &ca),
        )
        .expect_err("wrong credentials must be refused");
        assert!(
            err.contains("Authentication failed") || err.contains("authentication"),
            "{mechanism} {user}: {err}"
        );
    }
    let log = broker.stderr_log();
    assert!(
        !log.contains("alice-secret") && !log.contains("bob-secret"),
        "a password in the log"
    );
}

// ---------------------------------------------------------------------------------------
// Raw requests on a SASL listener
// ---------------------------------------------------------------------------------------

struct Raw {
    s: TcpStream,
    correlation: i32,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        Raw { s, correlation: 0 }
    }

    fn send(&mut self, api_key: ApiKey, version: i16, body: RequestBody) -> RequestHeader {
        self.correlation += 1;
        let header = RequestHeader {
            api_key,
            api_version: version,
            correlation_id: self.correlation,
            client_id: Some(sb("raw-sasl")),
        };
        let frame = encode_request(&header, &body).expect("encode");
        self.s.write_all(&frame).expect("write");
        header
    }

    /// The next frame, or `None` when the broker closed the connection.
    fn frame(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut buf).ok()?;
        Some(buf)
    }

    fn call(&mut self, api_key: ApiKey, version: i16, body: RequestBody) -> Option<ResponseBody> {
        let header = self.send(api_key, version, body);
        let frame = self.frame()?;
        let (cid, body) = decode_response(&header, Bytes::from(frame)).expect("decode");
        assert_eq!(cid, header.correlation_id);
        Some(body)
    }

    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.s.read(&mut b), Ok(0) | Err(_))
    }

    fn handshake(&mut self, version: i16, mechanism: &str) -> m::SaslHandshakeResponse {
        let req = m::SaslHandshakeRequest::default().with_mechanism(sb(mechanism));
        match self.call(ApiKey::SaslHandshake, version, req.into()) {
            Some(ResponseBody::SaslHandshake(r)) => r,
            other => panic!("SaslHandshake: {other:?}"),
        }
    }

    fn authenticate(&mut self, token: &[u8]) -> Option<m::SaslAuthenticateResponse> {
        let req =
            m::SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
        match self.call(ApiKey::SaslAuthenticate, 2, req.into())? {
            ResponseBody::SaslAuthenticate(r) => Some(r),
            other => panic!("SaslAuthenticate: {other:?}"),
        }
    }

    fn metadata(&mut self) -> Option<m::MetadataResponse> {
        let req = m::MetadataRequest::default().with_topics(Some(vec![
            m::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(sb("raw-topic")))),
        ]));
        match self.call(ApiKey::Metadata, 9, req.into())? {
            ResponseBody::Metadata(r) => Some(r),
            other => panic!("Metadata: {other:?}"),
        }
    }
}

const SASL_AUTHENTICATION_FAILED: i16 = 58;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;

#[test]
fn before_authentication_only_the_sasl_exchange_is_served() {
    let pki = Pki::new();
    let broker = secured_broker(&pki, &[]);
    let addr = broker.listener_addr("SASL_PLAINTEXT");

    // ApiVersions is answered; anything else closes the connection.
    let mut raw = Raw::connect(addr);
    let versions = raw.call(
        ApiKey::ApiVersions,
        3,
        m::ApiVersionsRequest::default()
            .with_client_software_name(sb("raw"))
            .with_client_software_version(sb("1"))
            .into(),
    );
    assert!(matches!(versions, Some(ResponseBody::ApiVersions(r)) if r.error_code == 0));
    assert!(raw.metadata().is_none(), "Metadata before authentication");
    assert!(raw.closed());

    // In the middle of the exchange too.
    let mut raw = Raw::connect(addr);
    assert_eq!(raw.handshake(1, "SCRAM-SHA-256").error_code, 0);
    assert!(raw.metadata().is_none(), "Metadata during authentication");

    // A mechanism that is not enabled: the error lists the enabled ones, then the
    // connection closes.
    let mut raw = Raw::connect(addr);
    let r = raw.handshake(1, "GSSAPI");
    assert_eq!(r.error_code, UNSUPPORTED_SASL_MECHANISM);
    let listed: Vec<String> = r.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(listed, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    assert!(raw.closed());

    // A good PLAIN exchange, then requests are served, and a second handshake is an
    // illegal state.
    let mut raw = Raw::connect(addr);
    assert_eq!(raw.handshake(1, "PLAIN").error_code, 0);
    let r = raw.authenticate(b"\0alice\0alice-secret").expect("answer");
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert!(raw.metadata().is_some());
    assert_eq!(raw.handshake(1, "PLAIN").error_code, ILLEGAL_SASL_STATE);

    // On a listener without SASL, SASL requests are an illegal state and nothing more.
    let mut raw = Raw::connect(broker.addr());
    assert_eq!(raw.handshake(1, "PLAIN").error_code, ILLEGAL_SASL_STATE);
    assert!(raw.metadata().is_some());
}

#[test]
fn malformed_sasl_tokens_fail_cleanly() {
    let pki = Pki::new();
    let broker = secured_broker(
        &pki,
        &[("connection.failed.authentication.delay.ms", "300")],
    );
    let addr = broker.listener_addr("SASL_PLAINTEXT");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    let tokens: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\0".to_vec(),
        b"\0\0\0\0".to_vec(),
        b"alice".to_vec(),
        random(17),
        random(4096),
        vec![0xff; 300],
        b"n,,n=bob,r=".to_vec(),
        b"n,,n=,r=abc".to_vec(),
        b"p=tls-unique,,n=bob,r=abc".to_vec(),
        b"c=biws,r=abc,p=AAAA".to_vec(),
    ];
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        for token in &tokens {
            let mut raw = Raw::connect(addr);
            assert_eq!(raw.handshake(1, mechanism).error_code, 0);
            let started = Instant::now();
            match raw.authenticate(token) {
                // SCRAM's first message may be well-formed enough for a challenge;
                // then the final one is garbage.
                Some(r) if r.error_code == 0 => {
                    assert!(
                        mechanism.starts_with("SCRAM"),
                        "{mechanism} accepted {token:?}"
                    );
                    let r = raw.authenticate(&random(64)).expect("an answer");
                    assert_eq!(r.error_code, SASL_AUTHENTICATION_FAILED);
                }
                Some(r) => {
                    assert_eq!(r.error_code, SASL_AUTHENTICATION_FAILED, "{mechanism}");
                    // The failure waits connection.failed.authentication.delay.ms.
                    assert!(started.elapsed() >= Duration::from_millis(290));
                }
                None => panic!("{mechanism}: no answer to a bad token"),
            }
            assert!(
                raw.closed(),
                "{mechanism}: the connection stays open after a failure"
            );
        }
    }
    // A frame over sasl.server.max.receive.size (512 KiB) before authentication closes
    // the connection unread.
    let mut raw = Raw::connect(addr);
    assert_eq!(raw.handshake(1, "PLAIN").error_code, 0);
    let _ = raw.s.write_all(&(1u32 << 20).to_be_bytes());
    assert!(raw.closed());
    // A truncated SaslAuthenticate frame: the broker waits for the rest, then gives up;
    // other clients are served meanwhile.
    let mut raw = Raw::connect(addr);
    assert_eq!(raw.handshake(1, "PLAIN").error_code, 0);
    raw.s.write_all(&[0, 0, 0, 100, 0, 36, 0, 2]).unwrap();
    let mut good = Raw::connect(addr);
    assert_eq!(good.handshake(1, "PLAIN").error_code, 0);
    assert_eq!(
        good.authenticate(b"\0alice\0alice-secret")
            .unwrap()
            .error_code,
        0
    );
    assert!(good.metadata().is_some());
    assert!(broker.stderr_log().matches("panicked").count() == 0);
}

#[test]
fn handshake_v0_sends_tokens_unframed() {
    let pki = Pki::new();
    let broker = secured_broker(&pki, &[]);
    let addr = broker.listener_addr("SASL_PLAINTEXT");
    let mut raw = Raw::connect(addr);
    assert_eq!(raw.handshake(0, "PLAIN").error_code, 0);
    let token = b"\0alice\0alice-secret";
    let mut frame = (token.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(token);
    raw.s.write_all(&frame).unwrap();
    // PLAIN's answer is empty.
    assert_eq!(raw.frame().expect("the token's answer"), Vec::<u8>::new());
    assert!(raw.metadata().is_some());

    // A wrong password over v0: no way to say why, so the connection closes.
    let mut raw = Raw::connect(addr);
    assert_eq!(raw.handshake(0, "PLAIN").error_code, 0);
    let token = b"\0alice\0nope";
    let mut frame = (token.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(token);
    raw.s.write_all(&frame).unwrap();
    assert!(raw.frame().is_none());
}
