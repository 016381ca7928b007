//! SASL/OAUTHBEARER and re-authentication (KIP-368), driven by librdkafka (the `rdkafka`
//! crate) and by raw requests where a client would not misbehave on purpose.
//!
//! - `oauthbearer_*`: signed tokens (ES256, a key made by the test, its JWKS in a file)
//!   over SASL_PLAINTEXT and SASL_SSL through rdkafka's token callback; expired,
//!   wrong-audience, wrong-issuer, badly signed and unsigned tokens refused with Kafka's
//!   JSON error; the unsecured development mode with librdkafka's own unsecured JWTs;
//!   a rotated JWKS file picked up without a restart.
//! - `reauthentication_*`: `connections.max.reauth.ms` and a token's expiry bound the
//!   session (`session_lifetime_ms`); librdkafka re-authenticates on its connections and
//!   keeps producing and consuming; a client that does not is disconnected; a
//!   re-authentication may change neither the principal nor the mechanism.

use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use bytes::Bytes;
use kafka_protocol::messages::{self as m, ApiKey, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::TopicPartitionList;
use runnel_protocol::api::{
    decode_response, encode_request, RequestBody, RequestHeader, ResponseBody,
};
use runnel_suite::{BrokerOptions, TestBroker};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.runnel.test";
const AUDIENCE: &str = "runnel";

const PLAIN_JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
    user_alice=\"alice-secret\" user_bob=\"bob-secret\";";

const UNSECURED_JAAS: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
     unsecuredLoginStringClaim_sub=\"admin\";";

// ---------------------------------------------------------------------------------------
// Keys, tokens and brokers
// ---------------------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An identity provider: an EC P-256 key, its JWKS file, and tokens it signs.
struct Idp {
    dir: tempfile::TempDir,
    key: jsonwebtoken::EncodingKey,
    kid: String,
}

impl Idp {
    fn new(kid: &str) -> Idp {
        let dir = tempfile::tempdir().unwrap();
        let pair = rcgen::KeyPair::generate().unwrap();
        let raw = pair.public_key_raw();
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
            "kid": kid, "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}]});
        std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
        Idp {
            dir,
            key: jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der()),
            kid: kid.into(),
        }
    }

    fn jwks_path(&self) -> PathBuf {
        self.dir.path().join("jwks.json")
    }

    fn url(&self) -> String {
        format!("file://{}", self.jwks_path().display())
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// A good token for `sub`, valid for `secs`.
    fn token(&self, sub: &str, secs: i64) -> String {
        self.sign(&good_claims(sub, secs))
    }
}

fn good_claims(sub: &str, secs: i64) -> Value {
    let now = now_s();
    json!({"sub": sub, "iss": ISSUER, "aud": [AUDIENCE], "iat": now, "exp": now + secs,
        "scope": "kafka"})
}

/// A broker with PLAINTEXT, SASL_PLAINTEXT and SASL_SSL listeners checking signed tokens
/// against `idp`, and a DEV listener (SASL_PLAINTEXT) taking unsecured tokens.
fn oauth_broker(idp: &Idp, dir: &Path, extra: &[(&str, String)]) -> TestBroker {
    // The broker's TLS key: a self-signed certificate for 127.0.0.1.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let keystore = dir.join("broker.pem");
    std::fs::write(&keystore, format!("{}{}", key.serialize_pem(), cert.pem())).unwrap();
    std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
    let mut settings: Vec<(&str, String)> = vec![
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0,\
             DEV://127.0.0.1:0"
                .into(),
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,\
             DEV:SASL_PLAINTEXT"
                .into(),
        ),
        ("ssl.keystore.location", keystore.display().to_string()),
        ("sasl.enabled.mechanisms", "OAUTHBEARER,PLAIN".into()),
        ("plain.sasl.jaas.config", PLAIN_JAAS.into()),
        ("sasl.oauthbearer.jwks.endpoint.url", idp.url()),
        ("sasl.oauthbearer.expected.issuer", ISSUER.into()),
        ("sasl.oauthbearer.expected.audience", AUDIENCE.into()),
        // Checked often, for the rotation test.
        ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "200".into()),
        (
            "listener.name.dev.sasl.oauthbearer.jwks.endpoint.url",
            String::new(),
        ),
        (
            "listener.name.dev.oauthbearer.sasl.jaas.config",
            UNSECURED_JAAS.into(),
        ),
    ];
    settings.extend(extra.iter().cloned());
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

/// Hands librdkafka a token from `make` each time it asks, and keeps its errors.
struct Tokens {
    make: Box<dyn Fn() -> String + Send + Sync>,
    asked: Mutex<u32>,
    errors: Mutex<Vec<String>>,
}

impl Tokens {
    fn new(make: impl Fn() -> String + Send + Sync + 'static) -> Tokens {
        Tokens {
            make: Box::new(make),
            asked: Mutex::new(0),
            errors: Mutex::new(Vec::new()),
        }
    }

    fn text(&self) -> String {
        self.errors.lock().unwrap().join("\n")
    }
}

impl ClientContext for Tokens {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(&self, _: Option<&str>) -> Result<OAuthToken, Box<dyn Error>> {
        *self.asked.lock().unwrap() += 1;
        let token = (self.make)();
        // librdkafka wants the principal and expiry beside the token; take them from it.
        let claims_part = token.split('.').nth(1).ok_or("no claims")?;
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims_part)?,
        )?;
        Ok(OAuthToken {
            principal_name: claims["sub"].as_str().unwrap_or("unknown").to_string(),
            lifetime_ms: claims["exp"].as_i64().unwrap_or(0) * 1000,
            token,
        })
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            self.errors
                .lock()
                .unwrap()
                .push(format!("{fac}: {message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.errors
            .lock()
            .unwrap()
            .push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Tokens {}

impl ProducerContext for Tokens {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

fn client(bootstrap: SocketAddr, security: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap.to_string())
        .set("socket.timeout.ms", "10000")
        .set("sasl.mechanism", "OAUTHBEARER");
    for (k, v) in security {
        c.set(*k, *v);
    }
    c
}

/// Whether a consumer with these tokens reads the cluster's metadata; its errors if not.
fn metadata_with(
    bootstrap: SocketAddr,
    security: &[(&str, &str)],
    tokens: Tokens,
) -> Result<(), String> {
    let consumer: BaseConsumer<Tokens> = client(bootstrap, security)
        .set("group.id", "metadata-check")
        .create_with_context(tokens)
        .expect("client");
    // The token callback runs on poll.
    let _ = consumer.poll(Duration::from_millis(200));
    match consumer.fetch_metadata(None, Duration::from_secs(6)) {
        Ok(md) if !md.brokers().is_empty() => Ok(()),
        Ok(_) => Err("no brokers in metadata".to_string()),
        Err(e) => {
            for _ in 0..10 {
                let _ = consumer.poll(Duration::from_millis(100));
            }
            Err(format!("{e}\n{}", consumer.context().text()))
        }
    }
}

/// Produce `n` records to `topic` and read them back, each through its own client.
fn round_trip(
    bootstrap: SocketAddr,
    security: &[(&str, &str)],
    topic: &str,
    n: usize,
    make: impl Fn() -> String + Send + Sync + Clone + 'static,
) {
    let producer: ThreadedProducer<Tokens> = client(bootstrap, security)
        .create_with_context(Tokens::new(make.clone()))
        .expect("producer");
    for i in 0..n {
        producer
            .send(BaseRecord::<(), str>::to(topic).payload(&format!("record-{i}")))
            .map_err(|(e, _)| e)
            .expect("queue a record");
    }
    if let Err(e) = producer.flush(Duration::from_secs(30)) {
        panic!("flush: {e}\n{}", producer.context().text());
    }
    let got = consume(bootstrap, security, topic, n, Tokens::new(make));
    let want: Vec<String> = (0..n).map(|i| format!("record-{i}")).collect();
    assert_eq!(got, want);
}

fn consume(
    bootstrap: SocketAddr,
    security: &[(&str, &str)],
    topic: &str,
    n: usize,
    tokens: Tokens,
) -> Vec<String> {
    let consumer: BaseConsumer<Tokens> = client(bootstrap, security)
        .set("group.id", format!("{topic}-reader"))
        .create_with_context(tokens)
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while got.len() < n && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(300)) {
            Some(Ok(msg)) => {
                got.push(String::from_utf8_lossy(msg.payload().unwrap_or_default()).into())
            }
            Some(Err(e)) => panic!("consume: {e}\n{}", consumer.context().text()),
            None => {}
        }
    }
    assert_eq!(got.len(), n, "records back\n{}", consumer.context().text());
    got
}

// ---------------------------------------------------------------------------------------
// A raw client
// ---------------------------------------------------------------------------------------

struct Raw {
    s: TcpStream,
    correlation: i32,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

const SASL_AUTHENTICATION_FAILED: i16 = 58;
const ILLEGAL_SASL_STATE: i16 = 34;

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        Raw { s, correlation: 0 }
    }

    fn call(&mut self, api_key: ApiKey, version: i16, body: RequestBody) -> Option<ResponseBody> {
        self.correlation += 1;
        let header = RequestHeader {
            api_key,
            api_version: version,
            correlation_id: self.correlation,
            client_id: Some(sb("raw-oauth")),
        };
        let frame = encode_request(&header, &body).expect("encode");
        self.s.write_all(&frame).ok()?;
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut buf).ok()?;
        let (cid, body) = decode_response(&header, Bytes::from(buf)).expect("decode");
        assert_eq!(cid, header.correlation_id);
        Some(body)
    }

    fn handshake(&mut self, mechanism: &str) -> Option<m::SaslHandshakeResponse> {
        let req = m::SaslHandshakeRequest::default().with_mechanism(sb(mechanism));
        match self.call(ApiKey::SaslHandshake, 1, req.into())? {
            ResponseBody::SaslHandshake(r) => Some(r),
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

    /// Handshake and authenticate; the response of the last step.
    fn login(&mut self, mechanism: &str, token: &[u8]) -> m::SaslAuthenticateResponse {
        let hs = self.handshake(mechanism).expect("handshake answered");
        assert_eq!(hs.error_code, 0, "handshake {mechanism}");
        self.authenticate(token).expect("authenticate answered")
    }

    fn metadata(&mut self) -> Option<m::MetadataResponse> {
        let req = m::MetadataRequest::default().with_topics(Some(vec![
            m::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(sb("raw-oauth-topic")))),
        ]));
        match self.call(ApiKey::Metadata, 9, req.into())? {
            ResponseBody::Metadata(r) => Some(r),
            other => panic!("Metadata: {other:?}"),
        }
    }
}

fn bearer(token: &str) -> Vec<u8> {
    format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
}

fn plain(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

// ---------------------------------------------------------------------------------------
// OAUTHBEARER
// ---------------------------------------------------------------------------------------

#[test]
fn oauthbearer_signed_tokens_over_sasl_plaintext_and_sasl_ssl() {
    let idp = std::sync::Arc::new(Idp::new("key-1"));
    let dir = tempfile::tempdir().unwrap();
    let broker = oauth_broker(&idp, dir.path(), &[]);
    let ca = dir.path().join("ca.pem").display().to_string();
    let make = {
        let idp = idp.clone();
        move || idp.token("alice", 600)
    };
    round_trip(
        broker.listener_addr("SASL_PLAINTEXT"),
        &[("security.protocol", "sasl_plaintext")],
        "oauth-plaintext",
        50,
        make.clone(),
    );
    round_trip(
        broker.listener_addr("SASL_SSL"),
        &[
            ("security.protocol", "sasl_ssl"),
            ("ssl.ca.location", ca.as_str()),
        ],
        "oauth-ssl",
        50,
        make,
    );
}

#[test]
fn oauthbearer_bad_tokens_are_refused_with_kafkas_json_error() {
    let idp = Idp::new("key-1");
    let dir = tempfile::tempdir().unwrap();
    let broker = oauth_broker(&idp, dir.path(), &[]);
    let addr = broker.listener_addr("SASL_PLAINTEXT");
    let impostor = Idp::new("key-1");
    let with = |k: &str, v: Value| {
        let mut c = good_claims("alice", 600);
        c[k] = v;
        idp.sign(&c)
    };
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(good_claims("alice", 600).to_string().as_bytes())
    );
    let cases = [
        ("expired", with("exp", (now_s() - 120).into())),
        ("wrong audience", with("aud", "someone-else".into())),
        ("wrong issuer", with("iss", "https://evil.test".into())),
        ("not yet valid", with("nbf", (now_s() + 600).into())),
        ("another key", impostor.token("alice", 600)),
        ("unsigned", unsigned),
    ];
    for (what, token) in &cases {
        // The exchange as Kafka runs it: a JSON challenge, the client's \x01, then the
        // failure carrying the same JSON.
        let mut raw = Raw::connect(addr);
        let first = raw.login("OAUTHBEARER", &bearer(token));
        assert_eq!(first.error_code, 0, "{what}");
        assert_eq!(
            &first.auth_bytes[..],
            br#"{"status":"invalid_token"}"#,
            "{what}"
        );
        let last = raw.authenticate(b"\x01").expect("answered");
        assert_eq!(last.error_code, SASL_AUTHENTICATION_FAILED, "{what}");
        assert_eq!(
            last.error_message.as_deref(),
            Some(r#"{"status":"invalid_token"}"#),
            "{what}"
        );
        assert!(raw.metadata().is_none(), "{what}: the connection closes");

        // And librdkafka gives up with an authentication error.
        let token = token.clone();
        let err = metadata_with(
            addr,
            &[("security.protocol", "sasl_plaintext")],
            Tokens::new(move || token.clone()),
        )
        .unwrap_err();
        assert!(
            err.contains("invalid_token") || err.contains("Authentication"),
            "{what}: {err}"
        );
    }
    // The log says why, and never shows a token.
    let log = broker.stderr_log();
    for why in [
        "expired",
        "audience",
        "issuer",
        "nbf",
        "signature",
        "algorithm",
    ] {
        assert!(log.contains(why), "the log lacks {why}");
    }
    for (_, token) in &cases {
        assert!(!log.contains(token.as_str()), "a token in the log");
    }
    // A good token still gets in.
    let mut raw = Raw::connect(addr);
    let ok = raw.login("OAUTHBEARER", &bearer(&idp.token("alice", 600)));
    assert_eq!(ok.error_code, 0);
    assert!(raw.metadata().is_some());
}

#[test]
fn oauthbearer_garbage_fails_cleanly() {
    let idp = Idp::new("key-1");
    let dir = tempfile::tempdir().unwrap();
    let broker = oauth_broker(&idp, dir.path(), &[]);
    let mut huge = b"n,,\x01auth=Bearer ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 70_000));
    huge.extend_from_slice(b"\x01\x01");
    let immediate: [&[u8]; 6] = [
        b"",
        b"\xff\xfe\x00",
        b"\x01",
        b"n,,\x01auth=Bearer \x01\x01",
        b"n,,\x01auth=Basic abc\x01\x01",
        &huge,
    ];
    for (addr, listener) in [
        (broker.listener_addr("SASL_PLAINTEXT"), "signed"),
        (broker.listener_addr("DEV"), "unsecured"),
    ] {
        for token in immediate {
            let mut raw = Raw::connect(addr);
            let r = raw.login("OAUTHBEARER", token);
            assert_eq!(
                r.error_code, SASL_AUTHENTICATION_FAILED,
                "{listener}: {token:?}"
            );
            assert!(
                raw.metadata().is_none(),
                "{listener}: closed after {token:?}"
            );
        }
        // Well-formed framing around a token that is no JWS: the JSON error first.
        for token in ["a.b.c", "e30.e30.", "x", "e30"] {
            let mut raw = Raw::connect(addr);
            let r = raw.login("OAUTHBEARER", &bearer(token));
            assert_eq!(
                &r.auth_bytes[..],
                br#"{"status":"invalid_token"}"#,
                "{listener}: {token}"
            );
            let last = raw.authenticate(b"\x01").expect("answered");
            assert_eq!(last.error_code, SASL_AUTHENTICATION_FAILED);
        }
    }
    assert!(!broker.stderr_log().contains("panicked"));
}

#[test]
fn oauthbearer_unsecured_tokens_on_the_development_listener_only() {
    let idp = Idp::new("key-1");
    let dir = tempfile::tempdir().unwrap();
    let broker = oauth_broker(&idp, dir.path(), &[]);
    // librdkafka's own unsecured JWTs (alg none), as Kafka's quickstarts use them.
    let unsecured = [
        ("security.protocol", "sasl_plaintext"),
        ("enable.sasl.oauthbearer.unsecure.jwt", "true"),
        ("sasl.oauthbearer.config", "principal=dev-user scope=kafka"),
    ];
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> =
        client(broker.listener_addr("DEV"), &unsecured)
            .create()
            .expect("producer");
    for i in 0..10 {
        producer
            .send(BaseRecord::<(), str>::to("oauth-dev").payload(&format!("record-{i}")))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("flush over the DEV listener");
    // The signed listener refuses them.
    let consumer: BaseConsumer = client(broker.listener_addr("SASL_PLAINTEXT"), &unsecured)
        .set("group.id", "unsecured-on-signed")
        .create()
        .unwrap();
    assert!(consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .is_err());
    // The principal is the subject: a token whose authorization id differs is refused.
    let token = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(json!({"sub": "dev-user", "exp": now_s() + 60})
            .to_string()
            .as_bytes())
    );
    let mut raw = Raw::connect(broker.listener_addr("DEV"));
    let ok = raw.login("OAUTHBEARER", &bearer(&token));
    assert_eq!(ok.error_code, 0);
    let mut raw = Raw::connect(broker.listener_addr("DEV"));
    let m = format!("n,a=admin,\x01auth=Bearer {token}\x01\x01");
    let refused = raw.login("OAUTHBEARER", m.as_bytes());
    assert_eq!(refused.error_code, SASL_AUTHENTICATION_FAILED);
}

#[test]
fn oauthbearer_keys_rotate_without_a_restart() {
    let idp = Idp::new("key-1");
    let dir = tempfile::tempdir().unwrap();
    let broker = oauth_broker(&idp, dir.path(), &[]);
    let addr = broker.listener_addr("SASL_PLAINTEXT");
    let next = Idp::new("key-2");
    let login = |token: &str| {
        let mut raw = Raw::connect(addr);
        raw.login("OAUTHBEARER", &bearer(token))
            .auth_bytes
            .is_empty()
    };
    assert!(login(&idp.token("alice", 600)));
    assert!(!login(&next.token("alice", 600)));
    // The operator installs the new JWKS (write-then-rename, as tools do).
    let tmp = idp.dir.path().join("jwks.json.tmp");
    std::fs::copy(next.jwks_path(), &tmp).unwrap();
    std::fs::rename(&tmp, idp.jwks_path()).unwrap();
    runnel_suite::eventually(Duration::from_secs(10), "the new JWKS is used", || {
        login(&next.token("alice", 600)).then_some(())
    });
    assert!(!login(&idp.token("alice", 600)), "the old key is gone");
}

#[test]
fn oauthbearer_must_be_configured_and_refuses_network_jwks() {
    for (settings, expect) in [
        (
            vec![
                ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
                ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            ],
            "sasl.oauthbearer.jwks.endpoint.url",
        ),
        (
            vec![
                ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
                ("sasl.enabled.mechanisms", "OAUTHBEARER"),
                (
                    "sasl.oauthbearer.jwks.endpoint.url",
                    "https://idp.example/jwks",
                ),
            ],
            "no network calls",
        ),
    ] {
        let mut cmd = std::process::Command::new(runnel_suite::runnel_bin());
        let data = tempfile::tempdir().unwrap();
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data.path())
            .args(["--set", "metrics.listener="]);
        for (k, v) in &settings {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        let out = cmd
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run the broker");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {settings:?}");
        assert!(stderr.contains(expect), "{settings:?}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------
// Re-authentication (KIP-368)
// ---------------------------------------------------------------------------------------

fn lifetime_of(r: &m::SaslAuthenticateResponse) -> i64 {
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    r.session_lifetime_ms
}

#[test]
fn reauthentication_session_lifetime_and_expiry() {
    let idp = Idp::new("key-1");
    let dir = tempfile::tempdir().unwrap();
    let broker = oauth_broker(
        &idp,
        dir.path(),
        &[(
            "listener.name.sasl_plaintext.connections.max.reauth.ms",
            "1500".into(),
        )],
    );
    let addr = broker.listener_addr("SASL_PLAINTEXT");

    // Without connections.max.reauth.ms a PLAIN session is unbounded...
    let mut raw = Raw::connect(broker.listener_addr("DEV"));
    assert_eq!(
        lifetime_of(&raw.login("PLAIN", &plain("alice", "alice-secret"))),
        0
    );
    // ...and an OAUTHBEARER one lasts as long as its token.
    let token = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(json!({"sub": "dev", "exp": now_s() + 30})
            .to_string()
            .as_bytes())
    );
    let mut raw = Raw::connect(broker.listener_addr("DEV"));
    let lifetime = lifetime_of(&raw.login("OAUTHBEARER", &bearer(&token)));
    assert!((25_000..=30_000).contains(&lifetime), "{lifetime}");

    // With it, the least of the two.
    let mut raw = Raw::connect(addr);
    assert_eq!(
        lifetime_of(&raw.login("OAUTHBEARER", &bearer(&idp.token("alice", 600)))),
        1500
    );

    // A client that does not re-authenticate is served until the lifetime ends, then
    // its next request closes the connection.
    let mut lazy = Raw::connect(addr);
    assert_eq!(
        lifetime_of(&lazy.login("PLAIN", &plain("alice", "alice-secret"))),
        1500
    );
    assert!(lazy.metadata().is_some());
    std::thread::sleep(Duration::from_millis(1700));
    assert!(lazy.metadata().is_none(), "an expired session is closed");

    // One that does keeps its connection, past several lifetimes.
    let mut eager = Raw::connect(addr);
    assert_eq!(
        lifetime_of(&eager.login("PLAIN", &plain("alice", "alice-secret"))),
        1500
    );
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            lifetime_of(&eager.login("PLAIN", &plain("alice", "alice-secret"))),
            1500
        );
        assert!(eager.metadata().is_some());
    }
    // Even after expiry, SaslHandshake starts a re-authentication (Kafka checks it first).
    std::thread::sleep(Duration::from_millis(1700));
    assert_eq!(
        lifetime_of(&eager.login("PLAIN", &plain("alice", "alice-secret"))),
        1500
    );
    assert!(eager.metadata().is_some());

    // Not more than once a second: the handshake is refused as on any open session.
    let hs = eager.handshake("PLAIN").expect("answered");
    assert_eq!(hs.error_code, ILLEGAL_SASL_STATE);
    assert!(eager.metadata().is_some());

    // The principal may not change.
    std::thread::sleep(Duration::from_millis(1100));
    let other = eager.login("PLAIN", &plain("bob", "bob-secret"));
    assert_eq!(other.error_code, SASL_AUTHENTICATION_FAILED);
    assert_eq!(
        other.error_message.as_deref(),
        Some("Cannot change principals during re-authentication from User.alice: User.bob")
    );
    assert!(eager.metadata().is_none());

    // Nor the mechanism.
    let mut raw = Raw::connect(addr);
    assert_eq!(
        lifetime_of(&raw.login("PLAIN", &plain("alice", "alice-secret"))),
        1500
    );
    std::thread::sleep(Duration::from_millis(1100));
    let switched = raw.login("OAUTHBEARER", &bearer(&idp.token("alice", 600)));
    assert_eq!(switched.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(switched
        .error_message
        .as_deref()
        .unwrap_or_default()
        .contains("not supported for re-authentication of mechanism 'PLAIN'"));

    let log = broker.stderr_log();
    assert!(log.matches("re-authenticated").count() >= 4, "{log}");
    assert!(log.contains("outlived its lifetime"));
}

#[test]
fn reauthentication_librdkafka_keeps_its_connections() {
    let idp = std::sync::Arc::new(Idp::new("key-1"));
    let dir = tempfile::tempdir().unwrap();
    let broker = oauth_broker(
        &idp,
        dir.path(),
        &[("connections.max.reauth.ms", "2000".into())],
    );
    for (mechanism, listener) in [("OAUTHBEARER", "SASL_PLAINTEXT"), ("PLAIN", "DEV")] {
        let addr = broker.listener_addr(listener);
        let before = broker.stderr_log().matches("re-authenticated").count();
        let topic = format!("reauth-{}", mechanism.to_lowercase());
        let mut security = vec![
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", mechanism),
        ];
        if mechanism == "PLAIN" {
            security.push(("sasl.username", "alice"));
            security.push(("sasl.password", "alice-secret"));
        }
        let make = {
            let idp = idp.clone();
            move || idp.token("alice", 600)
        };
        let producer: ThreadedProducer<Tokens> = client(addr, &security)
            .set("linger.ms", "0")
            .create_with_context(Tokens::new(make.clone()))
            .expect("producer");
        // Keep producing across several session lifetimes on the same connections.
        let n = 35;
        for i in 0..n {
            producer
                .send(BaseRecord::<(), str>::to(&topic).payload(&format!("record-{i}")))
                .map_err(|(e, _)| e)
                .unwrap();
            producer.flush(Duration::from_secs(10)).unwrap_or_else(|e| {
                panic!(
                    "{mechanism}: record {i}: {e}\n{}",
                    producer.context().text()
                )
            });
            std::thread::sleep(Duration::from_millis(200));
        }
        let got = consume(addr, &security, &topic, n, Tokens::new(make));
        assert_eq!(got.len(), n);
        let log = broker.stderr_log();
        let reauths = log.matches("re-authenticated").count() - before;
        // 7 s of producing at a 2 s lifetime: the producer's connection re-authenticated
        // more than once, and no connection was closed for outliving its session.
        assert!(
            reauths >= 2,
            "{mechanism}: {reauths} re-authentications\n{log}"
        );
        assert!(!log.contains("outlived its lifetime"), "{mechanism}: {log}");
        let errors = producer.context().text();
        assert!(!errors.contains("Disconnected"), "{mechanism}: {errors}");
    }
}
