//! Event Hubs connection strings on the Kafka endpoint: librdkafka (the `rdkafka` crate)
//! configured as Microsoft's quickstarts configure Kafka clients for Event Hubs (SASL
//! PLAIN, username `$ConnectionString`, the connection string as the password), against
//! shared access policies made with `runnel sas policy` while the broker runs. Each right
//! is enforced, EntityPath limits a login to its hub, a wrong key is refused, and keys
//! rotate with the secondary key still working.

use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::TopicPartitionList;
use runnel_suite::{eventually, runnel_bin, BrokerOptions, TestBroker};

fn broker() -> TestBroker {
    let mut extra_args = Vec::new();
    for (k, v) in [
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.enabled.mechanisms", "PLAIN"),
    ] {
        extra_args.push("--set".to_string());
        extra_args.push(format!("{k}={v}"));
    }
    TestBroker::start_with(BrokerOptions {
        extra_args,
        ..Default::default()
    })
}

/// `runnel sas policy ...` on the broker's data directory; its stdout.
fn sas(broker: &TestBroker, args: &[&str]) -> String {
    let out = Command::new(runnel_bin())
        .args(["sas", "policy"])
        .args(args)
        .arg("--data-dir")
        .arg(broker.data_dir())
        .output()
        .expect("run runnel sas");
    assert!(
        out.status.success(),
        "runnel sas policy {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The primary and secondary connection strings `add`/`renew` print.
fn strings(out: &str) -> (String, String) {
    let line = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line in {out}"))
            .trim()
            .to_string()
    };
    (line("primary:"), line("secondary:"))
}

fn config(broker: &TestBroker, connection_string: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker.bootstrap())
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", "$ConnectionString")
        .set("sasl.password", connection_string)
        .set("socket.timeout.ms", "10000")
        .set("message.timeout.ms", "10000");
    c
}

fn produce(broker: &TestBroker, cs: &str, topic: &str, value: &str) -> Result<(), String> {
    let producer: FutureProducer = config(broker, cs).create().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(producer.send(
            FutureRecord::<(), _>::to(topic).payload(value),
            Duration::from_secs(15),
        ))
        .map(|_| ())
        .map_err(|(e, _)| format!("{e:?}"))
}

/// Read partition 0 of `topic` from the start through group `group`: the values, or the
/// first error librdkafka reports.
fn consume(broker: &TestBroker, cs: &str, topic: &str, want: usize) -> Result<Vec<String>, String> {
    let consumer: BaseConsumer = config(broker, cs)
        .set("group.id", "$Default")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while values.len() < want && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(300)) {
            Some(Ok(m)) => values.push(String::from_utf8_lossy(m.payload().unwrap_or(&[])).into()),
            Some(Err(e)) => return Err(format!("{e:?}")),
            None => {}
        }
    }
    Ok(values)
}

fn create_topic(broker: &TestBroker, cs: &str, topic: &str) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = config(broker, cs).create().unwrap();
    let results = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .map_err(|e| format!("{e:?}"))?;
    results[0]
        .clone()
        .map(|_| ())
        .map_err(|(_, e)| format!("{e:?}"))
}

/// Whether a login with `cs` is accepted at all (metadata through it).
fn logs_in(broker: &TestBroker, cs: &str) -> bool {
    let consumer: BaseConsumer = config(broker, cs).create().unwrap();
    consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .is_ok()
}

#[test]
fn connection_strings_carry_their_policy_s_rights() {
    let broker = broker();
    let (manage, _) = strings(&sas(
        &broker,
        &["add", "RootManageSharedAccessKey", "--rights", "Manage"],
    ));
    let (send, _) = strings(&sas(
        &broker,
        &["add", "send-orders", "--rights", "Send", "--hub", "orders"],
    ));
    let (listen, _) = strings(&sas(&broker, &["add", "listen", "--rights", "Listen"]));
    assert!(send.ends_with(";EntityPath=orders"), "{send}");
    // The running broker picks the policies up.
    eventually(
        Duration::from_secs(20),
        "the broker loads new policies",
        || logs_in(&broker, &manage).then_some(()),
    );

    // Manage: admin, produce, consume.
    create_topic(&broker, &manage, "orders").unwrap();
    create_topic(&broker, &manage, "payments").unwrap();
    produce(&broker, &manage, "orders", "by-manage").unwrap();
    produce(&broker, &manage, "payments", "p-1").unwrap();

    // Send, limited to hub orders: produce there, nothing else.
    produce(&broker, &send, "orders", "by-send").unwrap();
    let e = produce(&broker, &send, "payments", "x").unwrap_err();
    assert!(e.contains("TopicAuthorization"), "{e}");
    let e = consume(&broker, &send, "orders", 1).unwrap_err();
    assert!(e.contains("Authorization"), "{e}");
    let e = create_topic(&broker, &send, "sent-topic").unwrap_err();
    assert!(e.contains("Authorization"), "{e}");

    // Listen: consume any hub with $Default, never produce or create.
    assert_eq!(
        consume(&broker, &listen, "orders", 2).unwrap(),
        vec!["by-manage", "by-send"]
    );
    assert_eq!(
        consume(&broker, &listen, "payments", 1).unwrap(),
        vec!["p-1"]
    );
    let e = produce(&broker, &listen, "orders", "x").unwrap_err();
    assert!(e.contains("TopicAuthorization"), "{e}");
    assert!(create_topic(&broker, &listen, "listened").is_err());

    // EntityPath on a namespace policy limits it to that hub.
    let manage_orders = format!("{manage};EntityPath=orders");
    produce(&broker, &manage_orders, "orders", "scoped").unwrap();
    let e = produce(&broker, &manage_orders, "payments", "x").unwrap_err();
    assert!(e.contains("TopicAuthorization"), "{e}");
    // The hub-level policy with another hub's EntityPath finds no policy.
    assert!(!logs_in(
        &broker,
        &send.replace(";EntityPath=orders", ";EntityPath=payments")
    ));

    // A wrong key, an unknown policy and a malformed string are refused.
    let key = manage
        .split(";SharedAccessKey=")
        .nth(1)
        .and_then(|k| k.split(';').next())
        .unwrap()
        .to_string();
    assert!(!logs_in(
        &broker,
        &manage.replace(&key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    ));
    assert!(!logs_in(
        &broker,
        &manage.replace("RootManageSharedAccessKey", "nobody")
    ));
    assert!(!logs_in(&broker, "not a connection string"));
    assert!(
        broker
            .stderr_log()
            .contains("an Event Hubs connection string was refused"),
        "the refusals are logged"
    );
    assert!(
        !broker.stderr_log().contains(&key),
        "a key never reaches the log"
    );
}

#[test]
fn keys_rotate_and_removed_policies_stop_working() {
    let broker = broker();
    let (primary, secondary) = strings(&sas(&broker, &["add", "app", "--rights", "Send,Listen"]));
    eventually(
        Duration::from_secs(20),
        "the broker loads the policy",
        || logs_in(&broker, &primary).then_some(()),
    );
    assert!(logs_in(&broker, &secondary));
    // Renew the primary: the old primary stops, the secondary keeps working.
    let (new_primary, same_secondary) =
        strings(&sas(&broker, &["renew", "app", "--key", "primary"]));
    assert_eq!(same_secondary, secondary);
    eventually(
        Duration::from_secs(20),
        "the old primary key is refused",
        || (!logs_in(&broker, &primary)).then_some(()),
    );
    assert!(logs_in(&broker, &new_primary));
    assert!(logs_in(&broker, &secondary));
    let listed = sas(&broker, &["list"]);
    assert!(listed.contains("app\tnamespace\tSend,Listen"), "{listed}");
    assert!(
        !listed.contains(&secondary[secondary.len() - 10..]),
        "list shows no keys"
    );
    sas(&broker, &["remove", "app"]);
    eventually(
        Duration::from_secs(20),
        "a removed policy is refused",
        || (!logs_in(&broker, &secondary)).then_some(()),
    );
}
