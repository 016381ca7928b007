//! The `runnel` operator CLI, run as the real binary against a real broker.

use std::process::{Command, Output};

use runnel_client::{Admin, Client, Producer, ProducerConfig, ProducerRecord, TopicPartition};
use runnel_suite::{runnel_bin, TestBroker};
use serde_json::Value;

/// Run `runnel ARGS...` against `broker`.
fn runnel(broker: &TestBroker, args: &[&str]) -> Output {
    Command::new(runnel_bin())
        .args(args)
        .env("RUNNEL_BOOTSTRAP", broker.bootstrap())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the runnel binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run and require exit code 0; returns stdout.
fn ok(broker: &TestBroker, args: &[&str]) -> String {
    let o = runnel(broker, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "runnel {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Run with `--output json` and parse stdout.
fn json(broker: &TestBroker, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = ok(broker, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("runnel {args:?}: bad JSON ({e}):\n{out}"))
}

#[test]
fn topic_lifecycle() {
    let broker = TestBroker::start();

    let out = ok(
        &broker,
        &[
            "topics",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
        ],
    );
    assert!(out.contains("orders"), "{out}");

    // The table lists it, and so does JSON.
    let out = ok(&broker, &["topics", "list"]);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["orders", "3"]),
        "{out}"
    );
    let list = json(&broker, &["topics", "list"]);
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders")
        .unwrap_or_else(|| panic!("orders not in {list}"));
    assert_eq!(entry["partitions"], 3);

    // Describe: partitions, leader, offsets and the overridden config.
    let d = json(&broker, &["topics", "describe", "orders"]);
    let parts = d["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["partition"], i as i64);
        assert!(p["leader"].as_i64().unwrap() >= 0, "{d}");
        assert_eq!(p["log_start_offset"], 0);
        assert_eq!(p["log_end_offset"], 0);
    }
    assert_eq!(d["configs"]["retention.ms"], "3600000", "{d}");
    let table = ok(&broker, &["topics", "describe", "orders"]);
    assert!(table.contains("LOG-END-OFFSET"), "{table}");
    assert!(table.contains("retention.ms"), "{table}");

    // alter-config: set one, delete another.
    ok(
        &broker,
        &[
            "topics",
            "alter-config",
            "orders",
            "--set",
            "cleanup.policy=compact",
            "--delete",
            "retention.ms",
        ],
    );
    let d = json(&broker, &["topics", "describe", "orders"]);
    assert_eq!(d["configs"]["cleanup.policy"], "compact", "{d}");
    assert!(d["configs"].get("retention.ms").is_none(), "{d}");

    // add-partitions.
    ok(
        &broker,
        &["topics", "add-partitions", "orders", "--total", "5"],
    );
    let d = json(&broker, &["topics", "describe", "orders"]);
    assert_eq!(d["partitions"].as_array().unwrap().len(), 5, "{d}");

    // A typo: exit code 3 and a hint.
    let o = runnel(&broker, &["topics", "describe", "ordrs"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("topic ordrs does not exist; did you mean orders?"),
        "{}",
        stderr(&o)
    );

    // Usage errors: exit code 2.
    let o = runnel(&broker, &["topics", "create", "x", "--config", "novalue"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = runnel(&broker, &["topics", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // Delete, and it is gone.
    ok(&broker, &["topics", "delete", "orders"]);
    let list = json(&broker, &["topics", "list"]);
    assert!(
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "orders"),
        "{list}"
    );
    let o = runnel(&broker, &["topics", "delete", "orders"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    // An unreachable broker is an operation error: exit code 1.
    let o = Command::new(runnel_bin())
        .args(["--bootstrap-server", "127.0.0.1:1", "topics", "list"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn groups_describe_reports_exact_lag() {
    let broker = TestBroker::start();
    let topic = "lagged";
    let group = "billing";
    // Records produced per partition, and the offsets the group commits.
    let produced = [10i64, 7, 4];
    let committed = [3i64, 7, 0];

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::bootstrap(&broker.bootstrap()).await.unwrap();
        let admin = Admin::new(client.clone());
        admin
            .create_topic(topic, produced.len() as i32)
            .await
            .unwrap();
        let producer = Producer::new(client.clone(), ProducerConfig::default()).unwrap();
        let mut deliveries = Vec::new();
        for (p, n) in produced.iter().enumerate() {
            for i in 0..*n {
                let record = ProducerRecord::new(topic)
                    .partition(p as i32)
                    .key(format!("k{i}"))
                    .value(format!("v{p}-{i}"));
                deliveries.push(producer.send_record(record).await.unwrap());
            }
        }
        producer.flush().await.unwrap();
        for d in deliveries {
            d.await.unwrap();
        }
        let offsets: Vec<(TopicPartition, i64)> = committed
            .iter()
            .enumerate()
            .map(|(p, o)| (TopicPartition::new(topic, p as i32), *o))
            .collect();
        admin.commit_group_offsets(group, &offsets).await.unwrap();
    });
    drop(rt);

    let list = json(&broker, &["groups", "list"]);
    assert!(
        list.as_array().unwrap().iter().any(|g| g["group"] == group),
        "{list}"
    );

    let d = json(&broker, &["groups", "describe", group]);
    assert_eq!(d["group"], group);
    assert!(d["state"].is_string(), "{d}");
    let parts = d["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), produced.len(), "{d}");
    let mut total = 0;
    for (p, part) in parts.iter().enumerate() {
        let lag = produced[p] - committed[p];
        total += lag;
        assert_eq!(part["topic"], topic);
        assert_eq!(part["partition"], p as i64);
        assert_eq!(part["committed_offset"], committed[p], "{d}");
        assert_eq!(part["log_end_offset"], produced[p], "{d}");
        assert_eq!(part["lag"], lag, "{d}");
        // The oldest unconsumed record was written moments ago.
        let lag_ms = part["lag_ms"]
            .as_i64()
            .unwrap_or_else(|| panic!("no lag_ms in {d}"));
        if lag == 0 {
            assert_eq!(lag_ms, 0, "{d}");
        } else {
            assert!((0..120_000).contains(&lag_ms), "{d}");
        }
        // No members: nobody owns it.
        assert!(part["member_id"].is_null(), "{d}");
    }
    assert_eq!(d["total_lag"], total, "{d}");

    // The table has the same numbers.
    let table = ok(&broker, &["groups", "describe", group]);
    assert!(table.contains("LAG-TIME"), "{table}");
    for (p, (n, c)) in produced.iter().zip(committed).enumerate() {
        let row = table
            .lines()
            .find(|l| l.starts_with(topic) && l.split_whitespace().nth(1) == Some(&p.to_string()))
            .unwrap_or_else(|| panic!("no row for partition {p}:\n{table}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[2], c.to_string(), "{row}");
        assert_eq!(cells[3], n.to_string(), "{row}");
        assert_eq!(cells[4], (n - c).to_string(), "{row}");
    }

    // An unknown group: exit code 3 with a hint.
    let o = runnel(&broker, &["groups", "describe", "biling"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("did you mean billing?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn groups_describe_shows_owning_members() {
    use std::time::{Duration, Instant};

    use runnel_client::{ClientConfig, Consumer, ConsumerConfig, GroupConfig, OffsetReset};

    let broker = TestBroker::start();
    let topic = "owned";
    let group = "owners";
    let produced = [5i64, 6];
    let committed = [2i64, 6];

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (consumer, member_id) = rt.block_on(async {
        let client = Client::bootstrap(&broker.bootstrap()).await.unwrap();
        let admin = Admin::new(client.clone());
        admin
            .create_topic(topic, produced.len() as i32)
            .await
            .unwrap();
        let producer = Producer::new(client.clone(), ProducerConfig::default()).unwrap();
        let mut deliveries = Vec::new();
        for (p, n) in produced.iter().enumerate() {
            for i in 0..*n {
                let record = ProducerRecord::new(topic)
                    .partition(p as i32)
                    .value(format!("v{i}"));
                deliveries.push(producer.send_record(record).await.unwrap());
            }
        }
        producer.flush().await.unwrap();
        for d in deliveries {
            d.await.unwrap();
        }
        let offsets: Vec<(TopicPartition, i64)> = committed
            .iter()
            .enumerate()
            .map(|(p, o)| (TopicPartition::new(topic, p as i32), *o))
            .collect();
        admin.commit_group_offsets(group, &offsets).await.unwrap();

        // A member joins (and reads, but never commits).
        let mut config = ClientConfig::new(broker.bootstrap());
        config.connection.client_id = "lag-test-client".into();
        let member_client = Client::connect(config).await.unwrap();
        let mut consumer = Consumer::new(
            member_client,
            ConsumerConfig {
                auto_offset_reset: OffsetReset::Earliest,
                ..ConsumerConfig::default()
            },
        );
        consumer.subscribe(GroupConfig::new(group), &[topic]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            consumer.poll(Duration::from_millis(200)).await.unwrap();
            if let Some((member, _)) = consumer.group_member() {
                break (consumer, member);
            }
            assert!(Instant::now() < deadline, "the consumer never joined");
        }
    });

    let d = json(&broker, &["groups", "describe", group]);
    assert_eq!(d["state"], "Stable", "{d}");
    assert_eq!(d["protocol_type"], "consumer", "{d}");
    assert_eq!(d["protocol"], "range", "{d}");
    assert_eq!(d["members"], 1, "{d}");
    let parts = d["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), produced.len(), "{d}");
    for (p, part) in parts.iter().enumerate() {
        assert_eq!(part["committed_offset"], committed[p], "{d}");
        assert_eq!(part["lag"], produced[p] - committed[p], "{d}");
        assert_eq!(part["member_id"], member_id.as_str(), "{d}");
        assert_eq!(part["client_id"], "lag-test-client", "{d}");
        assert!(!part["host"].as_str().unwrap_or_default().is_empty(), "{d}");
    }
    let table = ok(&broker, &["groups", "describe", group]);
    assert!(table.contains("lag-test-client"), "{table}");
    assert!(table.contains("Stable"), "{table}");

    rt.block_on(consumer.close()).unwrap();
}
