//! `runnel acls add|list|remove` and `--command-config`, run as the real binary against a
//! real broker with SASL listeners and the StandardAuthorizer; what the ACLs allow is
//! checked with librdkafka (the `rdkafka` crate) logged in as the principal they name.
//! The last test runs the CLI over SASL_SSL with SCRAM-SHA-512 and a test CA.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use runnel_suite::{runnel_bin, BrokerOptions, TestBroker};
use serde_json::Value;

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
    user_admin=\"admin-secret\" user_alice=\"alice-secret\";";

fn start(settings: &[(&str, &str)]) -> TestBroker {
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

/// SASL_PLAINTEXT with PLAIN users admin (a super user) and alice, and ACLs enforced.
fn authorizer_broker() -> TestBroker {
    start(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.enabled.mechanisms", "PLAIN"),
        ("plain.sasl.jaas.config", JAAS),
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:admin"),
    ])
}

/// A `--command-config` file for a PLAIN login.
fn plain_properties(dir: &Path, user: &str, password: &str) -> PathBuf {
    let path = dir.join(format!("{user}.properties"));
    std::fs::write(
        &path,
        format!(
            "# as for kafka-acls.sh --command-config\n\
             security.protocol=SASL_PLAINTEXT\n\
             sasl.mechanism=PLAIN\n\
             sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n    \
             username=\"{user}\" password=\"{password}\";\n"
        ),
    )
    .unwrap();
    path
}

/// Run `runnel ARGS... --command-config CONFIG` with `stdin` as its input.
fn runnel_in(broker: &TestBroker, config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(runnel_bin())
        .args(args)
        .arg("--command-config")
        .arg(config)
        .env("RUNNEL_BOOTSTRAP", broker.bootstrap())
        .env("RUST_LOG", "warn")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the runnel binary");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn runnel(broker: &TestBroker, config: &Path, args: &[&str]) -> Output {
    runnel_in(broker, config, args, None)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run and require exit code 0; returns stdout.
fn ok(broker: &TestBroker, config: &Path, args: &[&str]) -> String {
    let o = runnel(broker, config, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "runnel {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn json(broker: &TestBroker, config: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = ok(broker, config, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("runnel {args:?}: bad JSON ({e}):\n{out}"))
}

fn rdkafka(broker: &TestBroker, user: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker.bootstrap())
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", format!("{user}-secret"))
        .set("socket.timeout.ms", "10000");
    c
}

/// Produce one record as `user` with librdkafka; the delivery error if any.
fn produce(broker: &TestBroker, user: &str, topic: &str, value: &str) -> Result<(), String> {
    let producer: FutureProducer = rdkafka(broker, user)
        .set("message.timeout.ms", "8000")
        .create()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(producer.send(
            FutureRecord::<(), _>::to(topic).payload(value),
            Duration::from_secs(10),
        ))
        .map(|_| ())
        .map_err(|(e, _)| format!("{e:?}"))
}

/// Consume `topic` as `user` in `group` until `want` values arrived or an error.
fn consume(
    broker: &TestBroker,
    user: &str,
    topic: &str,
    group: &str,
    want: usize,
) -> Result<Vec<String>, String> {
    let consumer: BaseConsumer = rdkafka(broker, user)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < want {
        if Instant::now() > deadline {
            return Err(format!("timed out with {got:?}"));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => got.push(text(m.payload().unwrap_or_default())),
            Some(Err(e)) => return Err(format!("{e:?}")),
            None => {}
        }
    }
    Ok(got)
}

fn has_entry(out: &str, resource: &str, entry: &str) -> bool {
    // kafka-acls.sh's layout: the resource line, then tab-indented entries.
    let Some(start) = out.find(&format!("Current ACLs for resource `{resource}`:")) else {
        return false;
    };
    let block = &out[start..];
    let end = block[1..]
        .find("Current ACLs")
        .map_or(block.len(), |e| e + 1);
    block[..end].contains(&format!("\t{entry}"))
}

const ORDERS: &str = "ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)";
const BILLING: &str = "ResourcePattern(resourceType=GROUP, name=billing, patternType=LITERAL)";

#[test]
fn acls_added_listed_and_removed_change_what_librdkafka_may_do() {
    let broker = authorizer_broker();
    let dir = tempfile::tempdir().unwrap();
    let admin = plain_properties(dir.path(), "admin", "admin-secret");
    let alice = plain_properties(dir.path(), "alice", "alice-secret");

    ok(&broker, &admin, &["topics", "create", "orders"]);
    // No ACLs: alice may not write, and the list is empty.
    let err = produce(&broker, "alice", "orders", "r0").unwrap_err();
    assert!(err.contains("TopicAuthorizationFailed"), "{err}");
    assert_eq!(
        json(&broker, &admin, &["acls", "list"]),
        Value::Array(vec![])
    );

    // READ on the topic alone: DESCRIBE is implied, but the group is still missing.
    let out = ok(
        &broker,
        &admin,
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "orders",
        ],
    );
    assert!(
        out.contains(&format!("Adding ACLs for resource `{ORDERS}`:"))
            && out
                .contains("\t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)"),
        "{out}"
    );
    let err = produce(&broker, "alice", "orders", "r0").unwrap_err();
    assert!(err.contains("TopicAuthorizationFailed"), "{err}");

    // --producer: WRITE, DESCRIBE, CREATE on the topic.
    ok(
        &broker,
        &admin,
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--topic",
            "orders",
        ],
    );
    produce(&broker, "alice", "orders", "r1").unwrap();
    produce(&broker, "alice", "orders", "r2").unwrap();
    let err = consume(&broker, "alice", "orders", "billing", 2).unwrap_err();
    assert!(err.contains("GroupAuthorizationFailed"), "{err}");

    // --consumer: READ, DESCRIBE on the topic and READ on the group.
    ok(
        &broker,
        &admin,
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:alice",
            "--consumer",
            "--topic",
            "orders",
            "--group",
            "billing",
        ],
    );
    assert_eq!(
        consume(&broker, "alice", "orders", "billing", 2).unwrap(),
        ["r1", "r2"]
    );

    // The list, as kafka-acls.sh prints it and as JSON.
    let out = ok(&broker, &admin, &["acls", "list"]);
    for op in ["READ", "WRITE", "CREATE", "DESCRIBE"] {
        let entry = format!("(principal=User:alice, host=*, operation={op}, permissionType=ALLOW)");
        assert!(has_entry(&out, ORDERS, &entry), "{op}:\n{out}");
    }
    assert!(has_entry(
        &out,
        BILLING,
        "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)"
    ));
    let all = json(&broker, &admin, &["acls", "list"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 5, "{all:?}");
    assert!(all.iter().any(|a| a["resource_type"] == "GROUP"
        && a["resource_name"] == "billing"
        && a["pattern_type"] == "LITERAL"
        && a["principal"] == "User:alice"
        && a["host"] == "*"
        && a["operation"] == "READ"
        && a["permission_type"] == "ALLOW"));
    let groups = json(&broker, &admin, &["acls", "list", "--group", "billing"]);
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
    let nobody = json(
        &broker,
        &admin,
        &["acls", "list", "--principal", "User:bob"],
    );
    assert_eq!(nobody, Value::Array(vec![]));
    let matched = json(
        &broker,
        &admin,
        &[
            "acls",
            "list",
            "--topic",
            "orders",
            "--resource-pattern-type",
            "match",
        ],
    );
    assert_eq!(matched.as_array().unwrap().len(), 4, "{matched}");

    // A principal that is not a super user may not manage ACLs.
    let o = runnel(
        &broker,
        &alice,
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:alice",
            "--topic",
            "*",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("ClusterAuthorizationFailed"),
        "{}",
        text(&o.stderr)
    );

    // remove asks on a terminal; without one (no stdin, or a pipe, as kafka-acls.sh
    // reads the console) it refuses and names --force.
    let producer_acls = [
        "acls",
        "remove",
        "--allow-principal",
        "User:alice",
        "--producer",
        "--topic",
        "orders",
    ];
    for stdin in [None, Some("y\n")] {
        let o = runnel_in(&broker, &admin, &producer_acls, stdin);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("Are you sure"),
            "{}",
            text(&o.stderr)
        );
        assert!(text(&o.stderr).contains("--force"), "{}", text(&o.stderr));
    }
    assert_eq!(
        json(&broker, &admin, &["acls", "list"])
            .as_array()
            .unwrap()
            .len(),
        5
    );
    produce(&broker, "alice", "orders", "r3").unwrap();

    // --force removes exactly the producer's entries: WRITE and CREATE go (DESCRIBE too,
    // which the consumer's READ still implies), READ stays.
    let mut forced = producer_acls.to_vec();
    forced.push("--force");
    let removed = json(&broker, &admin, &forced);
    assert_eq!(removed["acls"].as_array().unwrap().len(), 3, "{removed}");
    let err = produce(&broker, "alice", "orders", "r4").unwrap_err();
    assert!(err.contains("TopicAuthorizationFailed"), "{err}");
    assert_eq!(
        consume(&broker, "alice", "orders", "billing", 3).unwrap(),
        ["r1", "r2", "r3"]
    );

    // Without a principal, every ACL on the resource goes.
    let out = ok(
        &broker,
        &admin,
        &["acls", "remove", "--topic", "orders", "--force"],
    );
    assert!(
        out.contains(&format!("Removed ACLs for resource `{ORDERS}`:")),
        "{out}"
    );
    let left = json(&broker, &admin, &["acls", "list"]);
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    let err = consume(&broker, "alice", "orders", "billing", 1).unwrap_err();
    assert!(err.contains("TopicAuthorizationFailed"), "{err}");
}

#[test]
fn a_wrong_password_or_a_bad_command_config_fails_without_echoing_secrets() {
    let broker = authorizer_broker();
    let dir = tempfile::tempdir().unwrap();
    let wrong = plain_properties(dir.path(), "alice", "not-alices-password");
    let o = runnel(&broker, &wrong, &["topics", "list"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("SaslAuthenticationFailed"), "{err}");
    assert!(err.contains("cannot log in to the broker at"), "{err}");
    assert!(!err.contains("not-alices-password"), "{err}");

    // PLAINTEXT against a SASL listener: the broker closes the connection.
    let plaintext = dir.path().join("plaintext.properties");
    std::fs::write(&plaintext, "security.protocol=PLAINTEXT\n").unwrap();
    let o = runnel(&broker, &plaintext, &["topics", "list"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));

    // Files the client cannot use are usage errors (exit 2) that name the problem.
    for (body, says) in [
        ("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\n", "GSSAPI"),
        (
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
             sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"a\" password=\"s3cret\"\n",
            "must end with ';'",
        ),
        ("security.protocol=SSL\nssl.truststore.type=JKS\nssl.truststore.location=x.jks\n", "PEM"),
        ("security.protocol=TLS\n", "security.protocol"),
    ] {
        let path = dir.path().join("bad.properties");
        std::fs::write(&path, body).unwrap();
        let o = runnel(&broker, &path, &["topics", "list"]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(says), "{body}: {err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}

/// A test CA and a broker certificate for 127.0.0.1 and localhost: (CA PEM path,
/// broker key and chain PEM path).
fn pki(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let (ca, keystore, _) = pki_with_client(dir, cn);
    (ca, keystore)
}

/// [`pki`] plus a client certificate with subject `CN=cli,O=Runnel`: its key and chain
/// in one PEM file (a PEM `ssl.keystore.location`).
fn pki_with_client(dir: &Path, cn: &str) -> (PathBuf, PathBuf, PathBuf) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = params.self_signed(&ca_key).unwrap();
    let ca = rcgen::Issuer::new(params, ca_key);
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "broker");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let ca_path = dir.join(format!("{cn}.pem"));
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let keystore = dir.join(format!("{cn}-broker.pem"));
    std::fs::write(
        &keystore,
        format!("{}{}{}", key.serialize_pem(), cert.pem(), ca_cert.pem()),
    )
    .unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Runnel");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cli");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let client = dir.join(format!("{cn}-client.pem"));
    std::fs::write(&client, format!("{}{}", key.serialize_pem(), cert.pem())).unwrap();
    (ca_path, keystore, client)
}

#[test]
fn the_cli_works_over_sasl_ssl_with_scram_sha_512() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, keystore) = pki(dir.path(), "ca");
    let (other_ca, _) = pki(dir.path(), "other-ca");
    let broker = start(&[
        ("listeners", "SASL_SSL://127.0.0.1:0"),
        ("ssl.keystore.location", &keystore.display().to_string()),
        ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
        (
            "scram.bootstrap.users",
            "SCRAM-SHA-512=[name=carol,password=carol-secret]",
        ),
    ]);
    let properties = |name: &str, trust: &Path, password: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "security.protocol=SASL_SSL\n\
                 ssl.truststore.type=PEM\n\
                 ssl.truststore.location={}\n\
                 sasl.mechanism=SCRAM-SHA-512\n\
                 sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"carol\" password=\"{password}\";\n",
                trust.display()
            ),
        )
        .unwrap();
        path
    };
    let good = properties("scram-ssl.properties", &ca, "carol-secret");
    ok(
        &broker,
        &good,
        &["topics", "create", "payments", "--partitions", "2"],
    );
    let out = ok(&broker, &good, &["topics", "list"]);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["payments", "2"]),
        "{out}"
    );
    // Records through TLS both ways: more than one TLS record's worth.
    let lines: String = (0..2000)
        .map(|i| format!("k{i}:value-{i:0>40}\n"))
        .collect();
    let o = runnel_in(
        &broker,
        &good,
        &["produce", "payments", "--key-separator", ":"],
        Some(&lines),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = ok(
        &broker,
        &good,
        &["consume", "payments", "--key-separator", ":"],
    );
    assert_eq!(out.lines().count(), 2000, "{}", &out[..out.len().min(500)]);
    assert!(out.contains("k1999:value-"));

    // The ssl.ca.location spelling works too.
    let ca_location = dir.path().join("ca-location.properties");
    std::fs::write(
        &ca_location,
        std::fs::read_to_string(&good)
            .unwrap()
            .replace("ssl.truststore.location", "ssl.ca.location"),
    )
    .unwrap();
    ok(&broker, &ca_location, &["topics", "list"]);

    // A CA that did not sign the broker's certificate, and a wrong password.
    let untrusted = properties("untrusted.properties", &other_ca, "carol-secret");
    let o = runnel(&broker, &untrusted, &["topics", "list"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("TLS handshake"),
        "{}",
        text(&o.stderr)
    );
    let wrong = properties("wrong.properties", &ca, "carol-guess");
    let o = runnel(&broker, &wrong, &["topics", "list"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("SaslAuthenticationFailed"), "{err}");
    assert!(!err.contains("carol-guess"), "{err}");
}

#[test]
fn the_cli_presents_a_client_certificate_to_a_mutual_tls_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, keystore, client) = pki_with_client(dir.path(), "ca");
    let ca_text = ca.display().to_string();
    let broker = start(&[
        ("listeners", "SSL://127.0.0.1:0"),
        ("ssl.keystore.location", &keystore.display().to_string()),
        ("ssl.client.auth", "required"),
        ("ssl.truststore.location", &ca_text),
    ]);
    let write = |name: &str, body: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path
    };
    let with_cert = write(
        "mtls.properties",
        format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca_text}\n\
             ssl.keystore.type=PEM\nssl.keystore.location={}\n",
            client.display()
        ),
    );
    ok(&broker, &with_cert, &["topics", "create", "audit"]);
    assert!(ok(&broker, &with_cert, &["topics", "list"]).contains("audit"));
    let without = write(
        "no-cert.properties",
        format!("security.protocol=SSL\nssl.truststore.location={ca_text}\n"),
    );
    let o = runnel(&broker, &without, &["topics", "list"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
}

/// `runnel ARGS...` on a terminal (util-linux `script` gives it a pty), typing `answer`.
fn on_a_terminal(broker: &TestBroker, config: &Path, args: &[&str], answer: &str) -> Output {
    let mut line = format!(
        "{} --bootstrap-server {} --command-config {}",
        runnel_bin().display(),
        broker.bootstrap(),
        config.display()
    );
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script(1)");
    let mut stdin = child.stdin.take().unwrap();
    // Type once the question is up, as a person would.
    std::thread::sleep(Duration::from_secs(1));
    stdin.write_all(answer.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    out
}

#[test]
fn remove_asks_on_a_terminal_and_only_y_removes() {
    if Command::new("script").arg("--version").output().is_err() {
        panic!("util-linux script(1) is needed to give the CLI a terminal");
    }
    let broker = authorizer_broker();
    let dir = tempfile::tempdir().unwrap();
    let admin = plain_properties(dir.path(), "admin", "admin-secret");
    ok(
        &broker,
        &admin,
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:alice",
            "--topic",
            "t1",
        ],
    );
    let remove = ["acls", "remove", "--topic", "t1"];
    let o = on_a_terminal(&broker, &admin, &remove, "n\n");
    let all = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{all}");
    assert!(all.contains("Are you sure you want to delete all ACLs for resource filter `ResourcePattern(resourceType=TOPIC, name=t1, patternType=LITERAL)`? (y/n)"), "{all}");
    assert!(all.contains("no ACLs removed"), "{all}");
    assert_eq!(
        json(&broker, &admin, &["acls", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let o = on_a_terminal(&broker, &admin, &remove, "y\n");
    let all = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{all}");
    assert!(all.contains("Removed ACLs for resource"), "{all}");
    assert_eq!(
        json(&broker, &admin, &["acls", "list"]),
        Value::Array(vec![])
    );
}

/// With `connections.max.reauth.ms` the broker ends each SASL session; the client does
/// not re-authenticate on a connection, so it must open a new one before the session
/// ends, or its next request is refused with a closed connection.
#[test]
fn the_client_replaces_connections_before_their_sasl_session_ends() {
    use runnel_client::{
        Admin, Client, ClientConfig, NewTopic, SaslCredentials, SaslMechanism, SecurityConfig,
        SecurityProtocol,
    };
    let broker = start(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.enabled.mechanisms", "PLAIN"),
        ("plain.sasl.jaas.config", JAAS),
        ("connections.max.reauth.ms", "1500"),
    ]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut config = ClientConfig::new(broker.bootstrap());
        config.connection.security = SecurityConfig::new(
            SecurityProtocol::SaslPlaintext,
            None,
            Some(SaslCredentials {
                mechanism: SaslMechanism::Plain,
                username: "admin".into(),
                password: "admin-secret".into(),
            }),
        )
        .unwrap();
        let client = Client::connect(config).await.unwrap();
        let admin = Admin::new(client.clone());
        admin
            .create_topics(&[NewTopic::new("sessions", 1)])
            .await
            .unwrap();
        for round in 0..3 {
            tokio::time::sleep(Duration::from_millis(1600)).await;
            let topics = admin
                .list_topics(false)
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(topics.iter().any(|t| t == "sessions"), "{topics:?}");
        }
    });
}
