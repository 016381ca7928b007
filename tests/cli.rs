//! The `runnel` operator CLI, run as the real binary against a real broker.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use runnel_client::{
    Admin, Client, Consumer, ConsumerConfig, ConsumerRecord, GroupConfig, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};
use runnel_suite::{eventually, runnel_bin, BrokerOptions, TestBroker};
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
    use runnel_client::ClientConfig;

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

// ----- reset-offsets, delete, lag, produce/consume, park (issue 5) -----

/// A broker whose groups form without the initial rebalance delay.
fn group_broker() -> TestBroker {
    TestBroker::start_with(BrokerOptions {
        extra_args: ["group.initial.rebalance.delay.ms=0"]
            .iter()
            .flat_map(|s| ["--set".to_string(), s.to_string()])
            .collect(),
        ..Default::default()
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Produce `records` with the Rust client; returns (partition, offset) of each.
fn produce(broker: &TestBroker, records: Vec<ProducerRecord>) -> Vec<(i32, i64)> {
    block_on(async {
        let client = Client::bootstrap(&broker.bootstrap()).await.unwrap();
        let producer = Producer::new(client, ProducerConfig::default()).unwrap();
        let mut deliveries = Vec::new();
        for r in records {
            deliveries.push(producer.send_record(r).await.unwrap());
        }
        producer.flush().await.unwrap();
        let mut out = Vec::new();
        for d in deliveries {
            out.push(d.await.unwrap());
        }
        out
    })
}

fn create_topic(broker: &TestBroker, topic: &str, partitions: i32) {
    block_on(async {
        let client = Client::bootstrap(&broker.bootstrap()).await.unwrap();
        Admin::new(client)
            .create_topic(topic, partitions)
            .await
            .unwrap();
    })
}

fn commit(broker: &TestBroker, group: &str, offsets: &[(&str, i32, i64)]) {
    block_on(async {
        let client = Client::bootstrap(&broker.bootstrap()).await.unwrap();
        let offsets: Vec<(TopicPartition, i64)> = offsets
            .iter()
            .map(|(t, p, o)| (TopicPartition::new(*t, *p), *o))
            .collect();
        Admin::new(client)
            .commit_group_offsets(group, &offsets)
            .await
            .unwrap();
    })
}

/// The group's committed offsets as (topic, partition) → offset.
fn committed(broker: &TestBroker, group: &str) -> BTreeMap<(String, i32), i64> {
    block_on(async {
        let client = Client::bootstrap(&broker.bootstrap()).await.unwrap();
        Admin::new(client)
            .fetch_group_offsets(group, None)
            .await
            .unwrap()
            .into_iter()
            .map(|(tp, o)| ((tp.topic, tp.partition), o))
            .collect()
    })
}

/// Every record of `topic` (all partitions), read with the Rust client.
fn read_all(broker: &TestBroker, topic: &str) -> Vec<ConsumerRecord> {
    block_on(async {
        let client = Client::bootstrap(&broker.bootstrap()).await.unwrap();
        let admin = Admin::new(client.clone());
        let desc = admin.describe_topics(&[topic]).await.unwrap();
        let tps: Vec<TopicPartition> = desc[0]
            .partitions
            .iter()
            .map(|p| TopicPartition::new(topic, p.partition))
            .collect();
        let ends = admin
            .list_offsets(
                &tps.iter()
                    .map(|tp| (tp.clone(), runnel_client::OffsetSpec::Latest))
                    .collect::<Vec<_>>(),
            )
            .await
            .unwrap();
        let total: i64 = ends.values().map(|o| o.offset).sum();
        let mut consumer = Consumer::new(
            client,
            ConsumerConfig {
                auto_offset_reset: OffsetReset::Earliest,
                ..ConsumerConfig::default()
            },
        );
        consumer.assign(tps);
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (out.len() as i64) < total {
            assert!(
                Instant::now() < deadline,
                "read only {} of {total}",
                out.len()
            );
            out.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
        }
        out.sort_by_key(|r| (r.partition, r.offset));
        out
    })
}

/// Run `runnel ARGS...` with `input` on stdin.
fn runnel_stdin(broker: &TestBroker, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(runnel_bin())
        .args(args)
        .env("RUNNEL_BOOTSTRAP", broker.bootstrap())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the runnel binary");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// JSON lines of a `consume --format json|hex` run.
fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line ({e}): {l}")))
        .collect()
}

/// A group member that keeps polling (and so heartbeating) on its own thread, never
/// committing, until dropped (then it leaves the group). Records it receives are sent
/// on `records`.
struct ActiveMember {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
    member_id: String,
    records: mpsc::Receiver<ConsumerRecord>,
}

impl ActiveMember {
    fn join(broker: &TestBroker, group: &str, topic: &str) -> ActiveMember {
        let stop = Arc::new(AtomicBool::new(false));
        let (id_tx, id_rx) = mpsc::channel();
        let (rec_tx, rec_rx) = mpsc::channel();
        let (bootstrap, group, topic) = (broker.bootstrap(), group.to_string(), topic.to_string());
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            block_on(async move {
                let client = Client::bootstrap(&bootstrap).await.unwrap();
                let mut consumer = Consumer::new(
                    client,
                    ConsumerConfig {
                        auto_offset_reset: OffsetReset::Earliest,
                        ..ConsumerConfig::default()
                    },
                );
                consumer.subscribe(GroupConfig::new(group), &[&topic]);
                let mut told = false;
                while !stopping.load(Ordering::SeqCst) {
                    // Rejoining after a removal may fail a poll or two; keep going.
                    if let Ok(records) = consumer.poll(Duration::from_millis(100)).await {
                        for r in records {
                            let _ = rec_tx.send(r);
                        }
                    }
                    if !told {
                        if let Some((id, _)) = consumer.group_member() {
                            if !consumer.assignment().is_empty() {
                                let _ = id_tx.send(id);
                                told = true;
                            }
                        }
                    }
                }
                let _ = consumer.close().await;
            })
        });
        let member_id = id_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the member joined the group");
        ActiveMember {
            stop,
            thread: Some(thread),
            member_id,
            records: rec_rx,
        }
    }
}

impl Drop for ActiveMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn group_state(broker: &TestBroker, group: &str) -> String {
    let d = json(broker, &["groups", "describe", group]);
    d["state"].as_str().unwrap_or_default().to_string()
}

#[test]
fn reset_offsets_every_mode_dry_run_and_refusal() {
    let broker = group_broker();
    let (topic, group) = ("resets", "resetters");
    create_topic(&broker, topic, 2);
    // 10 records per partition, record i written at base + i seconds.
    let base = 1_700_000_000_000i64;
    let mut records = Vec::new();
    for p in 0..2 {
        for i in 0..10 {
            records.push(
                ProducerRecord::new(topic)
                    .partition(p)
                    .value(format!("v{i}"))
                    .timestamp(base + i * 1000),
            );
        }
    }
    produce(&broker, records);
    commit(&broker, group, &[(topic, 0, 5), (topic, 1, 5)]);
    let at = |c: &BTreeMap<(String, i32), i64>, p: i32| c[&(topic.to_string(), p)];

    // Without --execute: the plan, and nothing changes.
    let plan = json(
        &broker,
        &[
            "groups",
            "reset-offsets",
            group,
            "--all-topics",
            "--to-earliest",
        ],
    );
    assert_eq!(plan["executed"], false, "{plan}");
    let parts = plan["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{plan}");
    for p in parts {
        assert_eq!(p["current_offset"], 5, "{plan}");
        assert_eq!(p["new_offset"], 0, "{plan}");
    }
    let o = runnel(
        &broker,
        &[
            "groups",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-latest",
            "--dry-run",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("NEW-OFFSET"), "{}", stdout(&o));
    assert!(stderr(&o).contains("dry run"), "{}", stderr(&o));
    let c = committed(&broker, group);
    assert_eq!(
        (at(&c, 0), at(&c, 1)),
        (5, 5),
        "dry runs changed offsets: {c:?}"
    );

    let exec = |args: &[&str]| {
        let mut all = vec!["groups", "reset-offsets", group];
        all.extend_from_slice(args);
        all.push("--execute");
        let v = json(&broker, &all);
        assert_eq!(v["executed"], true, "{v}");
        let c = committed(&broker, group);
        (at(&c, 0), at(&c, 1))
    };
    assert_eq!(exec(&["--all-topics", "--to-earliest"]), (0, 0));
    assert_eq!(exec(&["--topic", topic, "--to-latest"]), (10, 10));
    assert_eq!(exec(&["--all-topics", "--shift-by", "-3"]), (7, 7));
    // Clamped to the log end.
    assert_eq!(exec(&["--all-topics", "--shift-by", "100"]), (10, 10));
    // Only partition 1.
    assert_eq!(
        exec(&["--topic", &format!("{topic}:1"), "--to-offset", "4"]),
        (10, 4)
    );
    assert_eq!(exec(&["--topic", topic, "--to-offset", "999"]), (10, 10));
    // By time: epoch ms and RFC 3339 (base + 2 s = 2023-11-14T22:13:22Z).
    assert_eq!(
        exec(&[
            "--topic",
            topic,
            "--to-datetime",
            &(base + 3500).to_string()
        ]),
        (4, 4)
    );
    assert_eq!(
        exec(&["--topic", topic, "--to-datetime", "2023-11-14T22:13:22Z"]),
        (2, 2)
    );
    // After every record: the log end.
    assert_eq!(
        exec(&[
            "--topic",
            topic,
            "--to-datetime",
            &(base + 60_000).to_string()
        ]),
        (10, 10)
    );
    // Clamped to the log start after records were deleted.
    block_on(async {
        let client = Client::bootstrap(&broker.bootstrap()).await.unwrap();
        Admin::new(client)
            .delete_records(&[(TopicPartition::new(topic, 0), 3)])
            .await
            .unwrap();
    });
    assert_eq!(
        exec(&["--topic", &format!("{topic}:0"), "--to-offset", "1"]),
        (3, 10)
    );

    // Usage errors (exit 2), an unknown topic (exit 3).
    let o = runnel(
        &broker,
        &[
            "groups",
            "reset-offsets",
            group,
            "--all-topics",
            "--to-latest",
            "--to-earliest",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = runnel(&broker, &["groups", "reset-offsets", group, "--to-latest"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = runnel(
        &broker,
        &[
            "groups",
            "reset-offsets",
            group,
            "--topic",
            "rsets",
            "--to-latest",
            "--execute",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("did you mean resets?"),
        "{}",
        stderr(&o)
    );

    // An active member: --execute is refused (exit 4) and nothing moves.
    let member = ActiveMember::join(&broker, group, topic);
    let o = runnel(
        &broker,
        &[
            "groups",
            "reset-offsets",
            group,
            "--all-topics",
            "--to-earliest",
            "--execute",
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("active"), "{}", stderr(&o));
    let c = committed(&broker, group);
    assert_eq!((at(&c, 0), at(&c, 1)), (3, 10), "{c:?}");
    drop(member);
}

#[test]
fn groups_delete_removes_empty_groups_and_refuses_active_ones() {
    let broker = group_broker();
    let topic = "deletions";
    create_topic(&broker, topic, 1);
    produce(&broker, vec![ProducerRecord::new(topic).value("x")]);
    commit(&broker, "old-a", &[(topic, 0, 1)]);
    commit(&broker, "old-b", &[(topic, 0, 0)]);

    let out = ok(&broker, &["groups", "delete", "old-a"]);
    assert!(out.contains("group old-a deleted"), "{out}");
    let v = json(&broker, &["groups", "delete", "old-b"]);
    assert_eq!(v[0]["group"], "old-b", "{v}");
    assert_eq!(v[0]["result"], "deleted", "{v}");
    let list = json(&broker, &["groups", "list"]);
    for g in ["old-a", "old-b"] {
        assert!(
            !list.as_array().unwrap().iter().any(|x| x["group"] == g),
            "{g} still listed: {list}"
        );
        assert!(committed(&broker, g).is_empty(), "{g} kept its offsets");
    }
    // Gone: exit 3.
    let o = runnel(&broker, &["groups", "delete", "old-a"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    // With a member: NON_EMPTY_GROUP, refused (exit 4), and the group stays.
    let member = ActiveMember::join(&broker, "live", topic);
    let o = runnel(&broker, &["groups", "delete", "live"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("NON_EMPTY_GROUP"), "{}", stderr(&o));
    assert!(stderr(&o).contains("stop its consumers"), "{}", stderr(&o));
    assert_eq!(group_state(&broker, "live"), "Stable");
    drop(member);
}

#[test]
fn lag_verdicts() {
    let broker = group_broker();
    let topic = "lagging";
    create_topic(&broker, topic, 2);
    let records = (0..2)
        .flat_map(|p| {
            (0..6).map(move |i| {
                ProducerRecord::new(topic)
                    .partition(p)
                    .value(format!("{i}"))
            })
        })
        .collect();
    produce(&broker, records);
    // Stopped: no members, lag 4 + 1.
    commit(&broker, "stopped", &[(topic, 0, 2), (topic, 1, 5)]);
    // Caught up.
    commit(&broker, "caught-up", &[(topic, 0, 6), (topic, 1, 6)]);
    // Stalled: a member that never commits, the group's offsets fixed, lag > 0.
    commit(&broker, "stalled", &[(topic, 0, 1), (topic, 1, 1)]);
    let member = ActiveMember::join(&broker, "stalled", topic);

    let v = json(&broker, &["lag", "--samples", "2", "--interval", "0.5"]);
    let groups = v["groups"].as_array().unwrap();
    let find = |g: &str| {
        groups
            .iter()
            .find(|x| x["group"] == g)
            .unwrap_or_else(|| panic!("{g} not in {v}"))
    };
    let stopped = find("stopped");
    assert_eq!(stopped["verdict"], "STOPPED", "{v}");
    assert_eq!(stopped["total_lag"], 5, "{v}");
    assert_eq!(stopped["members"], 0, "{v}");
    let parts = stopped["partitions"].as_array().unwrap();
    assert_eq!(parts[0]["lag"], 4, "{v}");
    assert_eq!(parts[0]["verdict"], "STOPPED", "{v}");
    assert_eq!(parts[1]["lag"], 1, "{v}");
    let caught = find("caught-up");
    assert_eq!(caught["verdict"], "OK", "{v}");
    assert_eq!(caught["total_lag"], 0, "{v}");
    let stalled = find("stalled");
    assert_eq!(stalled["verdict"], "STALLED", "{v}");
    assert_eq!(stalled["total_lag"], 10, "{v}");
    assert_eq!(stalled["members"], 1, "{v}");

    // One group, as a table.
    let table = ok(
        &broker,
        &[
            "lag",
            "--group",
            "stopped",
            "--samples",
            "2",
            "--interval",
            "0.2",
        ],
    );
    assert!(table.contains("VERDICT"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("stopped") && l.contains("Empty"))
        .unwrap_or_else(|| panic!("no summary row:\n{table}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["stopped", "Empty", "0", "5", "STOPPED"]
    );
    assert!(!table.contains("caught-up"), "{table}");
    let o = runnel(
        &broker,
        &[
            "lag",
            "--group",
            "stoped",
            "--samples",
            "2",
            "--interval",
            "0.1",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("did you mean stopped?"),
        "{}",
        stderr(&o)
    );
    let o = runnel(&broker, &["lag", "--samples", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // --watch with JSON: one document per line, over a sliding window.
    let mut child = Command::new(runnel_bin())
        .args([
            "--output",
            "json",
            "lag",
            "--watch",
            "--group",
            "stopped",
            "--samples",
            "2",
            "--interval",
            "0.2",
        ])
        .env("RUNNEL_BOOTSTRAP", broker.bootstrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut lines, &mut line).unwrap();
        let doc: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("bad --watch line ({e}): {line}"));
        assert_eq!(doc["samples"], 2, "{doc}");
        assert_eq!(doc["groups"][0]["group"], "stopped", "{doc}");
        assert_eq!(doc["groups"][0]["verdict"], "STOPPED", "{doc}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(member);
}

#[test]
fn produce_and_consume_round_trip() {
    let broker = group_broker();
    let topic = "lines";
    create_topic(&broker, topic, 2);

    // Keys, values and headers from stdin, all to partition 1.
    let o = runnel_stdin(
        &broker,
        &[
            "--output",
            "json",
            "produce",
            topic,
            "--key-separator",
            ":",
            "--header",
            "source=cli",
            "--header",
            "trace=a=b",
            "--partition",
            "1",
            "--compression",
            "zstd",
        ],
        b"k1:hello\nk2:wor:ld\r\nk3:\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["records"], 3, "{summary}");
    assert_eq!(summary["acknowledged"], 3, "{summary}");
    assert_eq!(summary["partitions"][0]["partition"], 1, "{summary}");
    assert_eq!(summary["partitions"][0]["first_offset"], 0, "{summary}");
    assert_eq!(summary["partitions"][0]["last_offset"], 2, "{summary}");

    // What the Rust client reads is what went in.
    let got = read_all(&broker, topic);
    assert_eq!(got.len(), 3);
    let hdrs = vec![
        ("source".to_string(), Some(b"cli".to_vec())),
        ("trace".to_string(), Some(b"a=b".to_vec())),
    ];
    for (r, (k, v)) in got
        .iter()
        .zip([("k1", "hello"), ("k2", "wor:ld"), ("k3", "")])
    {
        assert_eq!(r.partition, 1);
        assert_eq!(r.key.as_deref(), Some(k.as_bytes()));
        assert_eq!(r.value.as_deref(), Some(v.as_bytes()));
        assert_eq!(r.headers, hdrs);
    }

    // From a file, plain lines, to partition 0 (table summary).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.txt");
    std::fs::write(&file, "one\ntwo\n").unwrap();
    let out = ok(
        &broker,
        &[
            "produce",
            topic,
            "--file",
            file.to_str().unwrap(),
            "--partition",
            "0",
            "--acks",
            "1",
        ],
    );
    assert!(out.contains("produced 2 records"), "{out}");
    // A binary record with the Rust client.
    let ts = 1_650_000_000_123i64;
    produce(
        &broker,
        vec![ProducerRecord::new(topic)
            .partition(0)
            .key(vec![0xff, 0x00])
            .value(vec![0xc3, 0x28, 0x01])
            .header("bin", Some(vec![0x80]))
            .timestamp(ts)],
    );

    // json: one object per line, binary as base64.
    let out = ok(&broker, &["consume", topic, "--format", "json"]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 6, "{out}");
    let p1: Vec<&Value> = lines.iter().filter(|l| l["partition"] == 1).collect();
    assert_eq!(p1.len(), 3, "{out}");
    assert_eq!(p1[1]["key"], "k2");
    assert_eq!(p1[1]["value"], "wor:ld");
    assert_eq!(p1[1]["offset"], 1);
    assert_eq!(p1[1]["topic"], topic);
    assert_eq!(
        p1[1]["headers"],
        serde_json::json!([{"key": "source", "value": "cli"}, {"key": "trace", "value": "a=b"}])
    );
    assert!(p1[1]["timestamp"].as_i64().unwrap() > 0);
    let bin = lines
        .iter()
        .find(|l| l["partition"] == 0 && l["offset"] == 2)
        .unwrap_or_else(|| panic!("no binary record:\n{out}"));
    assert_eq!(bin["key"], serde_json::json!({"base64": "/wA="}), "{bin}");
    assert_eq!(bin["value"], serde_json::json!({"base64": "wygB"}), "{bin}");
    assert_eq!(
        bin["headers"][0]["value"],
        serde_json::json!({"base64": "gA=="}),
        "{bin}"
    );
    assert_eq!(bin["timestamp"], ts, "{bin}");
    let p0: Vec<&Value> = lines.iter().filter(|l| l["partition"] == 0).collect();
    assert_eq!(p0[0]["value"], "one");
    assert!(p0[0]["key"].is_null());

    // hex: every key, value and header value as hex; one partition, from an offset.
    let out = ok(
        &broker,
        &[
            "consume",
            topic,
            "--format",
            "hex",
            "--partition",
            "0",
            "--from",
            "2",
        ],
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["key"], "ff00");
    assert_eq!(lines[0]["value"], "c32801");
    assert_eq!(lines[0]["headers"][0]["value"], "80");

    // text with keys; --count stops early.
    let out = ok(
        &broker,
        &[
            "consume",
            topic,
            "--partition",
            "1",
            "--key-separator",
            "=",
            "--count",
            "2",
        ],
    );
    assert_eq!(out, "k1=hello\nk2=wor:ld\n");
    // By timestamp (epoch ms or RFC 3339): from the first record at or after it.
    create_topic(&broker, "timed", 1);
    let base = 1_700_000_000_000i64;
    produce(
        &broker,
        (0..3)
            .map(|i| {
                ProducerRecord::new("timed")
                    .value(format!("t{i}"))
                    .timestamp(base + i * 1000)
            })
            .collect(),
    );
    for from in [
        format!("@{}", base + 500),
        "@2023-11-14T22:13:21Z".to_string(),
    ] {
        let out = ok(
            &broker,
            &["consume", "timed", "--from", &from, "--format", "json"],
        );
        let offsets: Vec<i64> = json_lines(&out)
            .iter()
            .map(|l| l["offset"].as_i64().unwrap())
            .collect();
        assert_eq!(offsets, vec![1, 2], "--from {from}:\n{out}");
    }
    // latest: nothing, and it exits.
    let out = ok(&broker, &["consume", topic, "--from", "latest"]);
    assert_eq!(out, "");

    // With a group: it commits what it printed.
    let out = ok(
        &broker,
        &[
            "consume", topic, "--group", "readers", "--count", "4", "--format", "json",
        ],
    );
    assert_eq!(json_lines(&out).len(), 4, "{out}");
    let c = committed(&broker, "readers");
    assert_eq!(c.values().sum::<i64>(), 4, "{c:?}");
    // The rest, then caught up.
    let out = ok(
        &broker,
        &["consume", topic, "--group", "readers", "--format", "json"],
    );
    assert_eq!(json_lines(&out).len(), 2, "{out}");
    let c = committed(&broker, "readers");
    assert_eq!(c.values().sum::<i64>(), 6, "{c:?}");

    // A line without the separator is an error.
    let o = runnel_stdin(
        &broker,
        &["produce", topic, "--key-separator", ":"],
        b"a:b\nnokey\n",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
    // Unknown topic: exit 3 for consume (like librdkafka's consumers, it does not ask
    // for auto-creation; produce does, see produce_to_a_missing_topic_...).
    let o = runnel(&broker, &["consume", "lnes"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn park_a_poison_record() {
    let broker = group_broker();
    let (topic, group) = ("payments", "billing");
    create_topic(&broker, topic, 1);
    let records: Vec<ProducerRecord> = (0..6)
        .map(|i| {
            ProducerRecord::new(topic)
                .partition(0)
                .key(format!("key-{i}"))
                .value(if i == 2 {
                    vec![0xde, 0xad, 0xbe, 0xef]
                } else {
                    format!("ok-{i}").into_bytes()
                })
                .header("content-type", Some(b"application/json".to_vec()))
                .header("empty", None)
                .timestamp(1_600_000_000_000 + i)
        })
        .collect();
    produce(&broker, records);
    // The group is stuck at the poison record, offset 2.
    commit(&broker, group, &[(topic, 0, 2)]);

    // While a member owns the partition: refused, nothing parked, nothing moved.
    let member = ActiveMember::join(&broker, group, topic);
    let o = runnel(
        &broker,
        &[
            "groups",
            "park",
            "--group",
            group,
            "--topic",
            topic,
            "--partition",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains(&member.member_id), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(committed(&broker, group)[&(topic.to_string(), 0)], 2);
    let topics = json(&broker, &["topics", "list"]);
    assert!(
        !topics
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "payments.parked"),
        "{topics}"
    );
    drop(member);
    eventually(Duration::from_secs(30), "the group empties", || {
        (group_state(&broker, group) == "Empty").then_some(())
    });

    // Park it.
    let v = json(
        &broker,
        &[
            "groups",
            "park",
            "--group",
            group,
            "--topic",
            topic,
            "--partition",
            "0",
            "--reason",
            "not json",
        ],
    );
    assert_eq!(v["parking_topic"], "payments.parked", "{v}");
    assert_eq!(v["previous_offset"], 2, "{v}");
    assert_eq!(v["committed_offset"], 3, "{v}");
    assert_eq!(v["records"][0]["offset"], 2, "{v}");
    assert_eq!(committed(&broker, group)[&(topic.to_string(), 0)], 3);

    // The copy is the original plus origin headers.
    let original = read_all(&broker, topic).remove(2);
    let parked = read_all(&broker, "payments.parked");
    assert_eq!(parked.len(), 1);
    let copy = &parked[0];
    assert_eq!(copy.key, original.key);
    assert_eq!(copy.value, original.value);
    assert_eq!(copy.value.as_deref(), Some(&[0xde, 0xad, 0xbe, 0xef][..]));
    assert_eq!(copy.timestamp, original.timestamp);
    let n = original.headers.len();
    assert_eq!(n, 2);
    assert_eq!(copy.headers[..n], original.headers[..]);
    let added: BTreeMap<&str, String> = copy.headers[n..]
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8(v.clone().unwrap()).unwrap()))
        .collect();
    assert_eq!(added["runnel.parked.topic"], topic);
    assert_eq!(added["runnel.parked.partition"], "0");
    assert_eq!(added["runnel.parked.offset"], "2");
    assert_eq!(added["runnel.parked.group"], group);
    assert_eq!(
        added["runnel.parked.timestamp"],
        original.timestamp.to_string()
    );
    assert_eq!(added["runnel.parked.reason"], "not json");
    let at: i64 = added["runnel.parked.at"].parse().unwrap();
    assert!(at > original.timestamp);
    assert_eq!(copy.headers.len(), n + 7);

    // `groups parked` lists it.
    let list = json(&broker, &["groups", "parked"]);
    let entries = list.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{list}");
    assert_eq!(entries[0]["origin"]["topic"], topic, "{list}");
    assert_eq!(entries[0]["origin"]["offset"], 2, "{list}");
    assert_eq!(entries[0]["origin"]["group"], group, "{list}");
    assert_eq!(
        entries[0]["value"],
        serde_json::json!({"base64": "3q2+7w=="}),
        "{list}"
    );
    assert_eq!(entries[0]["reason"], "not json", "{list}");
    let table = ok(&broker, &["groups", "parked", "--topic", topic]);
    assert!(table.contains("payments-0@2"), "{table}");
    assert!(table.contains("payments.parked-0@0"), "{table}");

    // A consumer of the group proceeds from the next record.
    let member = ActiveMember::join(&broker, group, topic);
    let first = member
        .records
        .recv_timeout(Duration::from_secs(30))
        .expect("the group consumes again");
    assert_eq!(first.offset, 3);
    assert_eq!(first.value.as_deref(), Some(&b"ok-3"[..]));

    // --force: the member (it never commits, so the group is at 3) is removed, record 3
    // parked, the group committed at 4, and the member, rejoining, resumes at 4.
    // Let it read to the end, so whatever it receives next is a re-delivery.
    eventually(
        Duration::from_secs(30),
        "the member reads to the end",
        || {
            member
                .records
                .recv_timeout(Duration::from_millis(100))
                .ok()
                .filter(|r| r.offset == 5)
        },
    );
    let v = json(
        &broker,
        &[
            "groups",
            "park",
            "--group",
            group,
            "--topic",
            topic,
            "--partition",
            "0",
            "--force",
        ],
    );
    assert_eq!(v["members_removed"][0], member.member_id.as_str(), "{v}");
    assert_eq!(v["committed_offset"], 4, "{v}");
    assert_eq!(committed(&broker, group)[&(topic.to_string(), 0)], 4);
    let again = member
        .records
        .recv_timeout(Duration::from_secs(30))
        .expect("the removed member rejoins and consumes");
    assert_eq!(
        again.offset, 4,
        "the rejoined member starts after the parked record"
    );
    drop(member);
    assert_eq!(read_all(&broker, "payments.parked").len(), 2);

    // Nothing to park past the end; an explicit offset ahead of the group is refused.
    let o = runnel(
        &broker,
        &[
            "groups",
            "park",
            "--group",
            group,
            "--topic",
            topic,
            "--partition",
            "0",
            "--offset",
            "5",
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("skip"), "{}", stderr(&o));
    assert_eq!(committed(&broker, group)[&(topic.to_string(), 0)], 4);
}

#[test]
fn park_force_removes_kip848_members() {
    use rdkafka::config::ClientConfig as KafkaConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::Message as _;

    let broker = TestBroker::start_with(BrokerOptions {
        extra_args: [
            "group.initial.rebalance.delay.ms=0",
            "group.consumer.session.timeout.ms=6000",
            "group.consumer.heartbeat.interval.ms=500",
        ]
        .iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect(),
        ..Default::default()
    });
    let (topic, group) = ("modern", "kip848");
    create_topic(&broker, topic, 1);
    produce(
        &broker,
        (0..4)
            .map(|i| ProducerRecord::new(topic).value(format!("m{i}")))
            .collect(),
    );

    // A KIP-848 member (librdkafka, group.protocol=consumer) that never commits and
    // reports every offset it reads.
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, offsets) = mpsc::channel::<i64>();
    let stopping = stop.clone();
    let bootstrap = broker.bootstrap();
    let member = thread::spawn(move || {
        let consumer: BaseConsumer = KafkaConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", group)
            .set("group.protocol", "consumer")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        while !stopping.load(Ordering::SeqCst) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let _ = tx.send(m.offset());
            }
        }
        consumer.unsubscribe();
    });
    eventually(
        Duration::from_secs(30),
        "the member reads to the end",
        || {
            offsets
                .recv_timeout(Duration::from_millis(100))
                .ok()
                .filter(|o| *o == 3)
        },
    );
    let d = json(&broker, &["groups", "describe", group]);
    assert_eq!(d["members"], 1, "{d}");
    let member_id = d["partitions"][0]["member_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no owning member in {d}"))
        .to_string();

    // Without --force: refused, nothing committed.
    let args = [
        "groups",
        "park",
        "--group",
        group,
        "--topic",
        topic,
        "--partition",
        "0",
        "--offset",
        "0",
    ];
    let o = runnel(&broker, &args);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(committed(&broker, group).is_empty());

    // --force: the member is removed with an epoch -1 heartbeat, offset 0 parked, the
    // group committed at 1, and the member, rejoining, reads from 1 again.
    let mut forced = args.to_vec();
    forced.push("--force");
    let v = json(&broker, &forced);
    assert_eq!(v["committed_offset"], 1, "{v}");
    let removed = v["members_removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{v}");
    assert_eq!(removed[0], member_id.as_str(), "{v}");
    assert_eq!(committed(&broker, group)[&(topic.to_string(), 0)], 1);
    let parked = read_all(&broker, "modern.parked");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].value.as_deref(), Some(&b"m0"[..]));
    let again = offsets
        .recv_timeout(Duration::from_secs(30))
        .expect("the removed member rejoins and reads again");
    assert_eq!(
        again, 1,
        "the rejoined member starts after the parked record"
    );

    stop.store(true, Ordering::SeqCst);
    member.join().unwrap();
}

#[test]
fn produce_to_a_missing_topic_creates_it_when_the_broker_allows() {
    // The default broker auto-creates, as kcat and kafka-console-producer find it.
    let broker = TestBroker::start_with(BrokerOptions {
        num_partitions: Some(3),
        ..Default::default()
    });
    let o = runnel_stdin(
        &broker,
        &["--output", "json", "produce", "fresh"],
        b"a\nb\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["acknowledged"], 2, "{summary}");
    let d = json(&broker, &["topics", "describe", "fresh"]);
    assert_eq!(d["partitions"].as_array().unwrap().len(), 3, "{d}");
    let got = read_all(&broker, "fresh");
    let mut values: Vec<_> = got.iter().map(|r| r.value.clone().unwrap()).collect();
    values.sort();
    assert_eq!(values, vec![b"a".to_vec(), b"b".to_vec()]);

    // With auto.create.topics.enable=false the topic is refused and not created.
    let broker = TestBroker::start_with(BrokerOptions {
        extra_args: vec!["--set".into(), "auto.create.topics.enable=false".into()],
        ..Default::default()
    });
    create_topic(&broker, "orders", 1);
    let o = runnel_stdin(&broker, &["produce", "ordrs"], b"a\n");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("topic ordrs does not exist; did you mean orders?"),
        "{}",
        stderr(&o)
    );
    let list = json(&broker, &["topics", "list"]);
    assert!(!list.to_string().contains("ordrs"), "{list}");
}

/// Run `runnel serve ARGS...` with only `env` among RUNNEL_* variables; it must exit
/// within 30 s (a broker that starts is killed and fails the test).
fn serve_exits(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(runnel_bin());
    cmd.arg("serve").args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("RUNNEL_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the runnel binary");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait for runnel").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("runnel output");
            panic!("runnel serve {args:?} started:\n{}", stdout(&out));
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("runnel output")
}

#[test]
fn serve_refuses_unknown_and_invalid_settings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 temp path");
    let base = ["--data-dir", data_arg, "--listen", "127.0.0.1:0"];
    let refused = |extra: &[&str], env: &[(&str, &str)], message: &str| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let o = serve_exits(&args, env);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(message),
            "{args:?} {env:?}: expected {message:?} in:\n{}",
            stderr(&o)
        );
        // Refused before anything is written.
        assert!(!data.exists(), "{args:?} created {}", data.display());
    };
    refused(
        &["--set", "group.min.sesion.timeout.ms=6000"],
        &[],
        "error: unknown setting \"group.min.sesion.timeout.ms\"; did you mean \
         \"group.min.session.timeout.ms\"?",
    );
    refused(
        &["--set", "group.min.session.timeout.ms=abc"],
        &[],
        "error: invalid value \"abc\" for group.min.session.timeout.ms: expected an integer \
         in [1, 2147483647]",
    );
    // A broker-level topic default, checked as the topic config is.
    refused(
        &["--set", "log.segment.bytes=13"],
        &[],
        "error: invalid value \"13\" for log.segment.bytes: expected an integer in [14, ",
    );
    refused(
        &[],
        &[("RUNNEL_LOG_CLEANER_BACKOFF_MS", "soon")],
        "error: invalid value \"soon\" for log.cleaner.backoff.ms (from \
         RUNNEL_LOG_CLEANER_BACKOFF_MS): expected an integer in [1, ",
    );
    let toml = dir.path().join("runnel.toml");
    std::fs::write(&toml, "[group.consumer]\nassignors = [\"roundrobin\"]\n").expect("write");
    let toml_arg = toml.to_str().expect("utf-8 temp path");
    refused(
        &["--config", toml_arg],
        &[],
        &format!(
            "error: invalid value \"roundrobin\" for group.consumer.assignors (in {toml_arg}): \
             expected a comma-separated list of uniform, range"
        ),
    );
}
