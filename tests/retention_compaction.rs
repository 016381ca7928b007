//! Retention, compaction and PII erasure, driven by a real client (librdkafka through
//! the `rdkafka` crate) and the `runnel` CLI against the real broker.
//!
//! The broker runs with short check intervals (`log.retention.check.interval.ms`,
//! `log.cleaner.backoff.ms`) so that each test waits seconds, not minutes. No test
//! asserts on time: they wait (bounded) for the state they check.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer,
    ProducerContext,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use runnel_storage::layout::{self, FileKind};
use runnel_suite::{eventually, runnel_bin, BrokerOptions, TestBroker};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn broker_with(env: Vec<(String, String)>) -> TestBroker {
    TestBroker::start_with(BrokerOptions {
        extra_args: [
            "log.retention.check.interval.ms=200",
            "log.cleaner.backoff.ms=200",
        ]
        .iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect(),
        env,
        ..BrokerOptions::default()
    })
}

fn broker() -> TestBroker {
    broker_with(Vec::new())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let res = block_on(admin.create_topics([&topic], &AdminOptions::new())).expect("CreateTopics");
    assert!(res[0].is_ok(), "CreateTopics {name}: {:?}", res[0]);
}

/// Counts failed deliveries so that `send_all` can insist on none.
#[derive(Default)]
struct Failures(std::sync::Mutex<Vec<String>>);

impl ClientContext for Failures {}

impl ProducerContext for Failures {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.0.lock().unwrap().push(e.to_string());
        }
    }
}

type TestProducer = BaseProducer<Failures>;

/// A record's key and value, either possibly null.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// An acks=all producer; `batch_bytes` keeps batches below small `segment.bytes`.
fn producer(bootstrap: &str, compression: &str, batch_bytes: usize) -> TestProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", batch_bytes.to_string())
        .set("compression.type", compression)
        .set("message.timeout.ms", "60000")
        .create_with_context(Failures::default())
        .expect("producer")
}

/// Send one record with a future producer and wait for its delivery report.
fn send_one(
    bootstrap: &str,
    topic: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<i64, KafkaError> {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("future producer");
    let mut rec = FutureRecord::<[u8], [u8]>::to(topic).partition(0);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    if let Some(v) = value {
        rec = rec.payload(v);
    }
    block_on(p.send(rec, Duration::from_secs(30)))
        .map(|d| d.offset)
        .map_err(|(e, _)| e)
}

/// Send many records and wait for all of them. Panics on any failure.
fn send_all(
    p: &TestProducer,
    topic: &str,
    partition: i32,
    records: &[KeyValue],
    timestamp: Option<i64>,
) {
    for (k, v) in records {
        let mut rec = BaseRecord::<[u8], [u8], ()>::to(topic).partition(partition);
        if let Some(k) = k {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = v {
            rec = rec.payload(v.as_slice());
        }
        if let Some(t) = timestamp {
            rec = rec.timestamp(t);
        }
        let mut rec = rec;
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("enqueue: {e}"),
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    let failed = p.context().0.lock().unwrap();
    assert!(
        failed.is_empty(),
        "{} deliveries failed: {:?}",
        failed.len(),
        failed.first()
    );
}

fn consumer(bootstrap: &str, reset: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "runnel-suite-assign-only")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", reset)
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer")
}

/// A record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// Read `topic`/`partition` from the beginning to the high watermark.
fn read_all(bootstrap: &str, topic: &str, partition: i32) -> Vec<Got> {
    let c = consumer(bootstrap, "earliest");
    let (_, high) = c
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while out.last().map_or(0, |g: &Got| g.offset + 1) < high {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} stalled at {out:?}"
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(Got {
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
            }),
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            None => {}
        }
    }
    out
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(layout::LOG_SUFFIX))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every byte of every file under `dir`, searched for `needle`. Returns the files that
/// hold it.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(path.display().to_string());
                }
            }
        }
    }
    hits
}

fn runnel(broker: &TestBroker, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(runnel_bin())
        .args(args)
        .env("RUNNEL_BOOTSTRAP", broker.bootstrap())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run runnel");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn retention_deletes_old_segments_and_consumers_below_the_log_start_reset() {
    let broker = broker();
    let bs = broker.bootstrap();
    // Small segments, no retention yet.
    create_topic(
        &bs,
        "events",
        1,
        &[("segment.bytes", "8192"), ("retention.ms", "-1")],
    );
    let p = producer(&bs, "none", 1000);
    let old: Vec<_> = (0..300)
        .map(|i| (Some(format!("k{i}").into_bytes()), Some(vec![b'o'; 100])))
        .collect();
    send_all(&p, "events", 0, &old, Some(now_ms() - 3_600_000));
    let fresh: Vec<_> = (0..50)
        .map(|i| (Some(format!("n{i}").into_bytes()), Some(vec![b'n'; 100])))
        .collect();
    send_all(&p, "events", 0, &fresh, None);
    let dir = broker.data_dir().join("events-0");
    let before = segment_files(&dir);
    assert!(before.len() > 3, "expected several segments: {before:?}");

    // retention.ms, set at runtime through the CLI: the hour-old records are past it.
    let (code, out, errs) = runnel(
        &broker,
        &[
            "topics",
            "alter-config",
            "events",
            "--set",
            "retention.ms=600000",
        ],
    );
    assert_eq!(code, 0, "{out}{errs}");
    let c = consumer(&bs, "earliest");
    let start = eventually(WAIT, "retention moves the log start offset", || {
        let (low, _) = c
            .fetch_watermarks("events", 0, Duration::from_secs(5))
            .ok()?;
        (low > 0).then_some(low)
    });
    assert!(start <= 300, "no fresh record may go: log start {start}");
    // The old segments' files are gone from disk; the first one left starts at the log
    // start offset.
    let after = segment_files(&dir);
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    assert_eq!(
        after[0],
        layout::offset_file_name(start as u64, layout::LOG_SUFFIX)
    );
    // Everything from the log start on is still readable, the fresh records included.
    let got = read_all(&bs, "events", 0);
    assert_eq!(got.first().map(|g| g.offset), Some(start));
    assert_eq!(got.len() as i64, 350 - start);
    assert!(got
        .iter()
        .rev()
        .take(50)
        .all(|g| g.value.as_deref() == Some(&[b'n'; 100][..])));

    // A consumer positioned below the log start follows auto.offset.reset.
    for (reset, want) in [("earliest", Some(start)), ("latest", None)] {
        let c = consumer(&bs, reset);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("events", 0, Offset::Offset(0))
            .unwrap();
        c.assign(&tpl).unwrap();
        if let Some(want) = want {
            let m = eventually(WAIT, "first record after reset", || {
                match c.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => Some(m.offset()),
                    _ => None,
                }
            });
            assert_eq!(m, want, "auto.offset.reset={reset}");
        } else {
            // Reset to the end: the first record seen is one produced after the reset,
            // never an old one. (Records keep coming until the consumer sees one.)
            let mut n = 0;
            let (offset, value) = eventually(WAIT, "a record after the reset", || {
                send_all(
                    &p,
                    "events",
                    0,
                    &[(Some(b"z".to_vec()), Some(format!("late-{n}").into_bytes()))],
                    None,
                );
                n += 1;
                match c.poll(Duration::from_millis(300)) {
                    Some(Ok(m)) => Some((m.offset(), m.payload().map(<[u8]>::to_vec))),
                    _ => None,
                }
            });
            assert!(
                offset >= 350,
                "auto.offset.reset=latest read old offset {offset}"
            );
            assert!(value.is_some_and(|v| v.starts_with(b"late-")));
        }
    }
    // auto.offset.reset=error surfaces OFFSET_OUT_OF_RANGE to the application.
    let c = consumer(&bs, "error");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("events", 0, Offset::Offset(0))
        .unwrap();
    c.assign(&tpl).unwrap();
    let err = eventually(WAIT, "an out-of-range error", || {
        match c.poll(Duration::from_millis(200)) {
            Some(Err(e)) => Some(e),
            Some(Ok(m)) => panic!("read offset {} below the log start", m.offset()),
            None => None,
        }
    });
    // librdkafka turns the broker's OFFSET_OUT_OF_RANGE into this when it may not reset.
    assert_eq!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::AutoOffsetReset),
        "{err}"
    );

    // retention.bytes, changed at runtime through the CLI: the log shrinks to about that.
    let (code, out, errs) = runnel(
        &broker,
        &[
            "topics",
            "alter-config",
            "events",
            "--set",
            "retention.bytes=9000",
        ],
    );
    assert_eq!(code, 0, "{out}{errs}");
    eventually(WAIT, "retention.bytes applied", || {
        let size: u64 = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(layout::LOG_SUFFIX)
            })
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum();
        (size <= 9000 + 8192).then_some(())
    });
}

#[test]
fn compaction_keeps_the_latest_value_per_key_at_its_offset_and_drops_tombstones_later() {
    let broker = broker();
    let bs = broker.bootstrap();
    create_topic(
        &bs,
        "profiles",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "4096"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("max.compaction.lag.ms", "1000"),
            ("delete.retention.ms", "3000"),
        ],
    );
    let p = producer(&bs, "lz4", 1000);
    // 20 keys, 25 versions each; key k7 ends with a tombstone.
    let mut latest: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = BTreeMap::new();
    let mut offset = 0i64;
    let mut batch = Vec::new();
    for v in 0..25 {
        for k in 0..20 {
            let key = format!("k{k}").into_bytes();
            let value = if v == 24 && k == 7 {
                None
            } else {
                Some(format!("value-{k}-{v}-{}", "p".repeat(30)).into_bytes())
            };
            latest.insert(key.clone(), (offset, value.clone()));
            batch.push((Some(key), value));
            offset += 1;
        }
    }
    send_all(&p, "profiles", 0, &batch, None);

    // Compaction: exactly the latest record of each key, at the offset it was written
    // at (the tombstone for k7 included while delete.retention.ms runs).
    let want: Vec<Got> = latest
        .iter()
        .map(|(k, (o, v))| Got {
            offset: *o,
            key: Some(k.clone()),
            value: v.clone(),
        })
        .collect::<Vec<_>>();
    let mut want_sorted = want.clone();
    want_sorted.sort_by_key(|g| g.offset);
    let without_tombstone: Vec<Got> = want_sorted
        .iter()
        .filter(|g| g.value.is_some())
        .cloned()
        .collect();
    let got = eventually(WAIT, "compaction to the latest value per key", || {
        let got = read_all(&bs, "profiles", 0);
        (got == want_sorted || got == without_tombstone).then_some(got)
    });
    if got == want_sorted {
        // The tombstone went through a clean; it goes after delete.retention.ms.
        eventually(WAIT, "the tombstone to be removed", || {
            (read_all(&bs, "profiles", 0) == without_tombstone).then_some(())
        });
    }
    // The high watermark did not move: compaction leaves gaps, not new offsets.
    let c = consumer(&bs, "earliest");
    let (_, high) = c
        .fetch_watermarks("profiles", 0, Duration::from_secs(5))
        .unwrap();
    assert_eq!(high, 500);

    // A keyless record on a compacted topic is refused with INVALID_RECORD, as Kafka.
    let err =
        send_one(&bs, "profiles", None, Some(b"no key")).expect_err("keyless record accepted");
    assert_eq!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::InvalidRecord),
        "{err}"
    );
    assert!(send_one(&bs, "profiles", Some(b"k1"), Some(b"keyed")).is_ok());
}

/// The PII guarantee, for one codec: after a tombstone for K and max.compaction.lag.ms,
/// no byte of K's value is left in any file of the partition's directory.
fn pii_is_gone_from_disk(codec: &str) {
    let broker = broker();
    let bs = broker.bootstrap();
    let topic = format!("customers-{codec}");
    create_topic(
        &bs,
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("max.compaction.lag.ms", "2000"),
        ],
    );
    let p = producer(&bs, codec, 1 << 20);
    let pii = format!("PII:{codec}:jane.doe@example.com:+44-20-7946-0958");
    let other = format!("KEEP:{codec}:john.roe@example.com");
    // K's value among other keys, several versions of it, all in the active segment.
    let mut records = Vec::new();
    for i in 0..200 {
        records.push((
            Some(format!("user-{i}").into_bytes()),
            Some(format!("profile {i}").into_bytes()),
        ));
        if i % 50 == 0 {
            records.push((Some(b"user-42".to_vec()), Some(pii.clone().into_bytes())));
        }
    }
    records.push((Some(b"user-7".to_vec()), Some(other.clone().into_bytes())));
    send_all(&p, &topic, 0, &records, None);
    let dir = broker.data_dir().join(format!("{topic}-0"));
    if codec == "none" {
        // Uncompressed, the bytes are on disk as they are.
        assert!(!files_containing(&dir, pii.as_bytes()).is_empty());
    }

    // The tombstone, with the operator's command.
    let data_dir = broker.data_dir().display().to_string();
    let (code, out, errs) = runnel(
        &broker,
        &[
            "--output",
            "json",
            "erase",
            "--topic",
            &topic,
            "--key",
            "user-42",
            "--data-dir",
            &data_dir,
        ],
    );
    assert_eq!(code, 0, "erase: {out}{errs}");
    let v: Value = serde_json::from_str(&out).expect("erase JSON");
    assert_eq!(v[0]["partition"], 0, "{v}");
    assert!(v[0]["erased_by"].as_i64().is_some(), "a deadline: {v}");

    let status = |broker: &TestBroker| -> Value {
        let (code, out, errs) = runnel(
            broker,
            &[
                "--output",
                "json",
                "erase",
                "status",
                "--topic",
                &topic,
                "--key",
                "user-42",
                "--data-dir",
                &data_dir,
            ],
        );
        assert_eq!(code, 0, "erase status: {out}{errs}");
        serde_json::from_str(&out).expect("status JSON")
    };
    let first = status(&broker);
    assert_eq!(
        first["state"], "pending",
        "right after the tombstone: {first}"
    );
    assert!(!first["remaining"].as_array().unwrap().is_empty());

    eventually(WAIT, "erase status: erased", || {
        (status(&broker)["state"] == "erased").then_some(())
    });
    // Every byte of the partition directory: no trace of the value; the other key's
    // value is still there (so the scan can see values in this codec's files).
    let hits = files_containing(&dir, pii.as_bytes());
    assert!(hits.is_empty(), "{codec}: PII still on disk in {hits:?}");
    let data = read_all(&bs, &topic, 0);
    assert!(data
        .iter()
        .any(|g| g.value.as_deref() == Some(other.as_bytes())));
    assert!(data
        .iter()
        .filter(|g| g.key.as_deref() == Some(b"user-42"))
        .all(|g| g.value.is_none()));
    if codec == "none" {
        assert!(!files_containing(&dir, other.as_bytes()).is_empty());
    }
    // And across the whole data directory (producer snapshots, checkpoints, the offsets
    // topic): nothing.
    assert!(files_containing(broker.data_dir(), pii.as_bytes()).is_empty());
}

#[test]
fn pii_is_gone_from_disk_none() {
    pii_is_gone_from_disk("none");
}

#[test]
fn pii_is_gone_from_disk_gzip() {
    pii_is_gone_from_disk("gzip");
}

#[test]
fn pii_is_gone_from_disk_snappy() {
    pii_is_gone_from_disk("snappy");
}

#[test]
fn pii_is_gone_from_disk_lz4() {
    pii_is_gone_from_disk("lz4");
}

#[test]
fn pii_is_gone_from_disk_zstd() {
    pii_is_gone_from_disk("zstd");
}

/// Kill the broker (abort, like a power cut) at each point of a cleaning pass, restart
/// it, and check the log: every key's latest value is there at its offset, nothing that
/// was not written appears, and the next pass finishes the compaction.
#[test]
fn a_crash_during_compaction_leaves_a_complete_log() {
    for point in ["cleaned-written", "swap-committed", "old-deleted"] {
        let mut broker = broker_with(vec![(
            "RUNNEL_CLEANER_CRASH_AT".to_string(),
            point.to_string(),
        )]);
        let bs = broker.bootstrap();
        create_topic(
            &bs,
            "ledger",
            1,
            &[
                ("cleanup.policy", "compact"),
                ("segment.bytes", "2048"),
                ("min.cleanable.dirty.ratio", "0.01"),
                // No cleaning until everything is written (see below).
                ("min.compaction.lag.ms", "3600000"),
            ],
        );
        let p = producer(&bs, "zstd", 1000);
        let mut written: BTreeMap<i64, (Vec<u8>, Vec<u8>)> = BTreeMap::new();
        let mut latest: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        let mut records = Vec::new();
        for i in 0..400i64 {
            let key = format!("acct-{}", i % 30).into_bytes();
            let value = format!("balance-{i}-{}", "b".repeat(20)).into_bytes();
            written.insert(i, (key.clone(), value.clone()));
            latest.insert(key.clone(), i);
            records.push((Some(key), Some(value)));
        }
        send_all(&p, "ledger", 0, &records, None);
        drop(p);
        // Now make the cleaner due: everything becomes dirty enough, and old enough.
        let (code, out, errs) = runnel(
            &broker,
            &[
                "topics",
                "alter-config",
                "ledger",
                "--set",
                "min.compaction.lag.ms=0",
                "--set",
                "max.compaction.lag.ms=1000",
            ],
        );
        assert_eq!(code, 0, "{out}{errs}");
        // The cleaner's first pass aborts the process at `point`.
        eventually(WAIT, "the broker to crash in the cleaner", || {
            (!broker.is_running()).then_some(())
        });
        assert!(
            broker.stderr_log().contains("RUNNEL_CLEANER_CRASH_AT"),
            "{point}: the broker died elsewhere:\n{}",
            broker.stderr_log()
        );
        broker.kill9();
        broker.set_env(Vec::new());
        broker.restart();
        let bs = broker.bootstrap();
        let check = |got: &[Got]| {
            let mut prev = -1;
            for g in got {
                assert!(
                    g.offset > prev,
                    "{point}: offsets out of order at {}",
                    g.offset
                );
                prev = g.offset;
                let (k, v) = written
                    .get(&g.offset)
                    .unwrap_or_else(|| panic!("{point}: offset {} was never written", g.offset));
                assert_eq!(
                    (g.key.as_ref(), g.value.as_ref()),
                    (Some(k), Some(v)),
                    "{point}: offset {}",
                    g.offset
                );
            }
            for (k, o) in &latest {
                assert!(
                    got.iter().any(|g| g.offset == *o),
                    "{point}: the latest value of {} (offset {o}) is missing",
                    String::from_utf8_lossy(k)
                );
            }
        };
        check(&read_all(&bs, "ledger", 0));
        // The cleaner (no crash now) completes, the active segment rolled by
        // max.compaction.lag.ms: one record per key.
        let compacted = eventually(WAIT, "compaction after the restart", || {
            let got = read_all(&bs, "ledger", 0);
            (got.len() == latest.len()).then_some(got)
        });
        check(&compacted);
        let leftovers: Vec<String> = std::fs::read_dir(broker.data_dir().join("ledger-0"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                matches!(
                    layout::parse_base_offset(n),
                    Some((_, FileKind::Swap { .. } | FileKind::Cleaned))
                )
            })
            .collect();
        assert!(leftovers.is_empty(), "{point}: {leftovers:?}");
    }
}

/// Bytes of `.log` files in every partition directory of `topic`.
fn topic_log_bytes(data_dir: &Path, topic: &str) -> u64 {
    std::fs::read_dir(data_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .rsplit_once('-')
                .is_some_and(|(t, _)| t == topic)
        })
        .flat_map(|e| std::fs::read_dir(e.path()).unwrap().filter_map(|f| f.ok()))
        .filter(|f| {
            f.file_name()
                .to_string_lossy()
                .ends_with(layout::LOG_SUFFIX)
        })
        .map(|f| f.metadata().map_or(0, |m| m.len()))
        .sum()
}

/// `__consumer_offsets` is compacted by the same cleaner: many commits of one group
/// shrink to about one record per partition, and the group's offsets survive a restart
/// (replayed from the compacted log).
#[test]
fn the_offsets_topic_is_compacted_and_replays_after_a_restart() {
    let mut broker = broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "orders", 2, &[]);
    // Small segments on the internal topic, through the CLI.
    let (code, out, errs) = runnel(
        &broker,
        &[
            "topics",
            "alter-config",
            "__consumer_offsets",
            "--set",
            "segment.bytes=4096",
            "--set",
            "min.cleanable.dirty.ratio=0.01",
            // Nothing is cleaned while the commits are written (see below).
            "--set",
            "min.compaction.lag.ms=3600000",
        ],
    );
    assert_eq!(code, 0, "{out}{errs}");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", "billing")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    for i in 1..=600i64 {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("orders", 0, Offset::Offset(i))
            .unwrap();
        tpl.add_partition_offset("orders", 1, Offset::Offset(2 * i))
            .unwrap();
        c.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
            .expect("commit");
    }
    let grown = topic_log_bytes(broker.data_dir(), "__consumer_offsets");
    assert!(grown > 20_000, "600 commits wrote only {grown} bytes");
    let (code, out, errs) = runnel(
        &broker,
        &[
            "topics",
            "alter-config",
            "__consumer_offsets",
            "--set",
            "min.compaction.lag.ms=0",
            "--set",
            "max.compaction.lag.ms=500",
        ],
    );
    assert_eq!(code, 0, "{out}{errs}");
    let shrunk = eventually(WAIT, "the offsets topic to be compacted", || {
        let now = topic_log_bytes(broker.data_dir(), "__consumer_offsets");
        (now < grown / 10).then_some(now)
    });
    assert!(shrunk > 0);
    drop(c);
    broker.restart();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "billing")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("orders", 0);
    tpl.add_partition("orders", 1);
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("OffsetFetch");
    let got: Vec<Offset> = committed.elements().iter().map(|e| e.offset()).collect();
    assert_eq!(got, vec![Offset::Offset(600), Offset::Offset(1200)]);
}
