//! Wall-clock jumps, forward and back, through the broker's injected clock
//! (`RUNNEL_CLOCK_OFFSET_FILE`), with the real broker and librdkafka clients.
//!
//! Each test checks a bound without timing anything: a "probe" (a segment, a
//! transaction, a partition) that the jump makes due proves that a check ran after the
//! jump, and what that same check kept shows that nothing went earlier than the jump
//! allows. The margins are minutes against a test that runs seconds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use runnel_suite::{eventually, BrokerOptions, TestBroker};

const WAIT: Duration = Duration::from_secs(60);
const T: Duration = Duration::from_secs(30);
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// A broker whose wall clock is the system's plus the offset in a file the test writes.
struct Jumpy {
    broker: TestBroker,
    offset_file: PathBuf,
    _dir: tempfile::TempDir,
    jumps_seen: usize,
}

impl Jumpy {
    fn start(settings: &[&str]) -> Jumpy {
        let dir = tempfile::tempdir().expect("temp dir");
        let offset_file = dir.path().join("clock-offset");
        let args: Vec<String> = [
            "log.retention.check.interval.ms=200",
            "log.cleaner.backoff.ms=200",
            "transaction.abort.timed.out.transaction.cleanup.interval.ms=200",
        ]
        .iter()
        .chain(settings)
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect();
        let broker = TestBroker::start_with(BrokerOptions {
            extra_args: args,
            env: vec![(
                "RUNNEL_CLOCK_OFFSET_FILE".to_string(),
                offset_file.display().to_string(),
            )],
            ..BrokerOptions::default()
        });
        assert!(
            broker.stderr_log().contains("the wall clock is injected"),
            "the broker says its clock is injected:\n{}",
            broker.stderr_log()
        );
        Jumpy {
            broker,
            offset_file,
            _dir: dir,
            jumps_seen: 0,
        }
    }

    fn bootstrap(&self) -> String {
        self.broker.bootstrap()
    }

    /// Set the broker's clock offset and wait until the broker has read it (it logs
    /// each change).
    fn set_offset(&mut self, offset_ms: i64) {
        let tmp = self.offset_file.with_extension("tmp");
        std::fs::write(&tmp, format!("{offset_ms}\n")).expect("write offset");
        std::fs::rename(&tmp, &self.offset_file).expect("rename offset");
        let want = self.jumps_seen + 1;
        eventually(WAIT, "the broker reads the new clock offset", || {
            let n = self
                .broker
                .stderr_log()
                .matches("the injected wall clock jumped")
                .count();
            (n >= want).then_some(())
        });
        self.jumps_seen = want;
        assert!(
            self.broker
                .stderr_log()
                .contains(&format!("offset_ms={offset_ms}")),
            "the broker logs the offset"
        );
    }

    fn log(&self) -> String {
        self.broker.stderr_log()
    }
}

impl Drop for Jumpy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("broker log:\n{}", self.broker.stderr_log());
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn create_topic(bootstrap: &str, name: &str, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(T));
    let res = block_on(admin.create_topics([&topic], &opts)).expect("CreateTopics");
    assert!(res[0].is_ok(), "CreateTopics {name}: {:?}", res[0]);
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

/// Send one record (its own batch) and wait for it; returns its offset.
fn send(p: &FutureProducer, topic: &str, key: &str, value: &[u8], ts: Option<i64>) -> i64 {
    let mut rec = FutureRecord::<str, [u8]>::to(topic)
        .partition(0)
        .key(key)
        .payload(value);
    if let Some(ts) = ts {
        rec = rec.timestamp(ts);
    }
    match block_on(p.send(rec, T)) {
        Ok(d) => d.offset,
        Err((e, _)) => panic!("produce to {topic}: {e}"),
    }
}

fn send_tombstone(p: &FutureProducer, topic: &str, key: &str) -> i64 {
    let rec = FutureRecord::<str, [u8]>::to(topic).partition(0).key(key);
    match block_on(p.send(rec, T)) {
        Ok(d) => d.offset,
        Err((e, _)) => panic!("produce a tombstone to {topic}: {e}"),
    }
}

fn plain_consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "clock-jumps-assign-only")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer")
}

fn log_start(c: &BaseConsumer, topic: &str) -> Option<i64> {
    c.fetch_watermarks(topic, 0, Duration::from_secs(5))
        .ok()
        .map(|(low, _)| low)
}

/// Every record of `topic` from `from`: (offset, timestamp, value).
fn read_from(bootstrap: &str, topic: &str, from: i64) -> Vec<(i64, Timestamp, Vec<u8>)> {
    let c = plain_consumer(bootstrap);
    let (_, high) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(from))
        .expect("assign");
    c.assign(&tpl).expect("assign");
    let mut out: Vec<(i64, Timestamp, Vec<u8>)> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while out.last().map_or(from, |r| r.0 + 1) < high {
        assert!(Instant::now() < deadline, "reading {topic} stalled");
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((
                m.offset(),
                m.timestamp(),
                m.payload().unwrap_or_default().to_vec(),
            )),
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// ListOffsets by timestamp: the offset answered, or None for "no such record" (-1).
fn offset_for_time(c: &BaseConsumer, topic: &str, ts: i64) -> Option<i64> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(ts))
        .expect("tpl");
    let got = c.offsets_for_times(tpl, T).expect("offsets_for_times");
    match got.elements()[0].offset() {
        Offset::Offset(o) => Some(o),
        Offset::End => None,
        other => panic!("offsets_for_times answered {other:?}"),
    }
}

fn create_time(ts: Timestamp) -> i64 {
    match ts {
        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
        Timestamp::NotAvailable => panic!("a record without a timestamp"),
    }
}

/// A forward jump of J moves retention earlier by exactly J: a segment goes when its
/// newest timestamp is older than now + J - retention.ms, and not before. Records
/// written after the jump stay, and LogAppendTime stamps follow the jump.
#[test]
fn a_forward_jump_makes_retention_early_by_the_jump_and_no_more() {
    let mut b = Jumpy::start(&[]);
    let bs = b.bootstrap();
    // One record per segment, so that retention's decisions show record by record.
    create_topic(
        &bs,
        "fwd",
        &[
            ("segment.bytes", "1024"),
            ("retention.ms", &HOUR.to_string()),
        ],
    );
    create_topic(
        &bs,
        "fwd-lat",
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let p = producer(&bs);
    let value = vec![b'x'; 700];
    let t0 = now_ms();
    // Offset 0 is past retention already; 1 is 35 minutes old (kept, but due after a
    // jump of 30); 2 is 25 minutes old (kept even after the jump); 3 is new.
    for (i, age) in [61 * MIN, 35 * MIN, 25 * MIN, 0].iter().enumerate() {
        assert_eq!(
            send(&p, "fwd", &format!("k{i}"), &value, Some(t0 - age)),
            i as i64
        );
    }
    let c = plain_consumer(&bs);
    eventually(WAIT, "retention removes the hour-old segment", || {
        (log_start(&c, "fwd")? >= 1).then_some(())
    });
    assert_eq!(
        log_start(&c, "fwd"),
        Some(1),
        "only the record past retention.ms goes before the jump"
    );

    b.set_offset(30 * MIN);
    eventually(WAIT, "retention after the jump", || {
        (log_start(&c, "fwd")? >= 2).then_some(())
    });
    // The pass that removed offset 1 (35 min old, + 30 min jump > 60) kept offset 2
    // (25 + 30 < 60): early by the jump, not more.
    assert_eq!(log_start(&c, "fwd"), Some(2));

    // Written after the jump: kept, readable, offsets continue.
    assert_eq!(send(&p, "fwd", "after", b"after", None), 4);
    let got = read_from(&bs, "fwd", 2);
    let offsets: Vec<i64> = got.iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![2, 3, 4]);
    assert_eq!(got[2].2, b"after".to_vec());

    // LogAppendTime: the broker's (jumped) clock stamps the record.
    let before = now_ms();
    send(&p, "fwd-lat", "k", b"v", Some(1));
    let after = now_ms();
    let got = read_from(&bs, "fwd-lat", 0);
    let Timestamp::LogAppendTime(ts) = got[0].1 else {
        panic!("expected a LogAppendTime stamp: {:?}", got[0].1)
    };
    assert!(
        ts >= before + 30 * MIN && ts <= after + 30 * MIN,
        "stamp {ts} follows the jump ({before}..{after} + 30 min)"
    );
    assert!(!b.log().contains("panicked"), "{}", b.log());
}

/// A back jump: offsets continue, LogAppendTime stamps go back with the clock, the time
/// index stays monotonic (a lookup by time answers the first offset whose timestamp is
/// at or after it, as Kafka does), and retention is delayed by the jump and no more.
#[test]
fn a_back_jump_keeps_offsets_and_lookups_sane_and_delays_retention_by_the_jump() {
    let mut b = Jumpy::start(&[]);
    let bs = b.bootstrap();
    create_topic(
        &bs,
        "back-lat",
        &[
            ("message.timestamp.type", "LogAppendTime"),
            ("segment.bytes", "1024"),
        ],
    );
    create_topic(
        &bs,
        "back-ret",
        &[
            ("segment.bytes", "1024"),
            ("retention.ms", &HOUR.to_string()),
        ],
    );
    let p = producer(&bs);
    let value = vec![b'y'; 700];
    let t0 = now_ms();
    for i in 0..3 {
        assert_eq!(send(&p, "back-lat", "k", &value, None), i);
    }
    b.set_offset(-HOUR);
    for i in 3..6 {
        assert_eq!(
            send(&p, "back-lat", "k", &value, None),
            i,
            "offsets continue"
        );
    }
    let t1 = now_ms();
    let got = read_from(&bs, "back-lat", 0);
    let stamps: Vec<i64> = got.iter().map(|r| create_time(r.1)).collect();
    for (i, ts) in stamps.iter().enumerate() {
        let (lo, hi) = if i < 3 {
            (t0, t1)
        } else {
            (t0 - HOUR, t1 - HOUR)
        };
        assert!(
            (lo..=hi).contains(ts),
            "offset {i}: stamp {ts} in {lo}..{hi}"
        );
    }
    // Lookups by time: the first record with a timestamp at or after the target. The
    // records before the jump carry the later stamps, so a target between the two
    // ranges answers offset 0, and one after both answers none.
    let c = plain_consumer(&bs);
    assert_eq!(offset_for_time(&c, "back-lat", t0 - 2 * HOUR), Some(0));
    assert_eq!(offset_for_time(&c, "back-lat", t0 - 30 * MIN), Some(0));
    assert_eq!(offset_for_time(&c, "back-lat", stamps[2]), Some(2));
    assert_eq!(offset_for_time(&c, "back-lat", t1 + MIN), None);

    // The same lookups after a crash and recovery, which rebuilds the indexes.
    b.broker.kill9();
    b.broker.restart();
    let c = plain_consumer(&b.bootstrap());
    let p = producer(&b.bootstrap());
    assert_eq!(offset_for_time(&c, "back-lat", t0 - 30 * MIN), Some(0));
    assert_eq!(offset_for_time(&c, "back-lat", stamps[2]), Some(2));
    assert_eq!(offset_for_time(&c, "back-lat", t1 + MIN), None);
    assert_eq!(
        send(&p, "back-lat", "k", &value, None),
        6,
        "offsets continue"
    );

    // CreateTime is checked against the broker's clock: with the broker an hour behind,
    // a client's correct time is at the edge of message.timestamp.after.max.ms (1 h by
    // default), and two minutes past it is refused, as Kafka refuses it.
    let ahead = FutureRecord::<str, [u8]>::to("back-ret")
        .partition(0)
        .key("ahead")
        .payload(b"ahead")
        .timestamp(now_ms() + 2 * MIN);
    match block_on(p.send(ahead, T)) {
        Err((e, _)) => assert_eq!(
            e.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::InvalidTimestamp),
            "{e}"
        ),
        Ok(d) => panic!(
            "a record an hour ahead of the broker was appended at {}",
            d.offset
        ),
    }

    // Retention in the broker's clock, now an hour behind: offset 0 is 2 h 1 min old in
    // real time (1 min past retention in the broker's), offset 1 is 65 min old (past
    // retention in real time, not in the broker's), 2 is new.
    let t2 = now_ms();
    for (i, age) in [121 * MIN, 65 * MIN, 0].iter().enumerate() {
        assert_eq!(
            send(&p, "back-ret", &format!("k{i}"), &value, Some(t2 - age)),
            i as i64
        );
    }
    eventually(WAIT, "retention in the broker's clock", || {
        (log_start(&c, "back-ret")? >= 1).then_some(())
    });
    assert_eq!(
        log_start(&c, "back-ret"),
        Some(1),
        "the pass that removed offset 0 kept offset 1: delayed by the jump"
    );
    // Back to the real time: offset 1 goes.
    b.set_offset(0);
    eventually(WAIT, "retention once the clock is back", || {
        (log_start(&c, "back-ret")? >= 2).then_some(())
    });
    assert_eq!(log_start(&c, "back-ret"), Some(2));
    assert!(!b.log().contains("panicked"), "{}", b.log());
}

type TxnProducer = ThreadedProducer<rdkafka::producer::DefaultProducerContext>;

/// A transactional producer with one open transaction holding one record.
fn open_txn(bootstrap: &str, id: &str, timeout_ms: i64) -> TxnProducer {
    let p: TxnProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set("message.timeout.ms", timeout_ms.min(30_000).to_string())
        .set("linger.ms", "0")
        .create()
        .expect("transactional producer");
    p.init_transactions(T).expect("init_transactions");
    p.begin_transaction().expect("begin");
    p.send(
        rdkafka::producer::BaseRecord::<str, str>::to("txns")
            .partition(0)
            .key(id)
            .payload(id),
    )
    .map_err(|(e, _)| e)
    .expect("send");
    p.flush(T).expect("flush");
    p
}

fn timed_out(log: &str, id: &str) -> bool {
    log.lines().any(|l| {
        l.contains("aborting a timed-out transaction")
            && l.contains(&format!("transactional_id={id} "))
    })
}

/// Transaction timeouts are in wall-clock time, as Kafka's (txnStartTimestamp): a
/// forward jump J aborts a transaction early by at most J, a back jump delays its abort
/// by at most J, and the abort still comes once the clock catches up.
#[test]
fn transaction_timeouts_move_with_the_jump_and_no_more() {
    let mut b = Jumpy::start(&[]);
    let bs = b.bootstrap();
    create_topic(&bs, "txns", &[]);

    // Forward 5 minutes: the 1-minute transaction is past its timeout, the 10-minute one
    // is not.
    let short = open_txn(&bs, "fwd-1min", MIN);
    let long = open_txn(&bs, "fwd-10min", 10 * MIN);
    b.set_offset(5 * MIN);
    eventually(WAIT, "the 1-minute transaction is aborted", || {
        timed_out(&b.log(), "fwd-1min").then_some(())
    });
    assert!(
        !timed_out(&b.log(), "fwd-10min"),
        "the check that aborted the 1-minute transaction kept the 10-minute one"
    );
    assert!(short.commit_transaction(T).is_err(), "it was aborted");
    long.commit_transaction(T)
        .expect("the 10-minute transaction commits after a 5-minute jump");

    // Back an hour: a transaction opened before the jump is not aborted when its 3 s
    // are up in real time; one opened after it is (the checks still run).
    let before = open_txn(&bs, "back-before", 3_000);
    let opened = Instant::now();
    b.set_offset(5 * MIN - HOUR);
    let after = open_txn(&bs, "back-after", 1_000);
    eventually(
        WAIT,
        "a transaction opened after the jump times out",
        || {
            (timed_out(&b.log(), "back-after") && opened.elapsed() > Duration::from_secs(4))
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !timed_out(&b.log(), "back-before"),
        "the transaction opened before the back jump waits for the clock"
    );
    // The clock returns: it is aborted then (at most the jump later).
    b.set_offset(5 * MIN);
    eventually(
        WAIT,
        "the transaction opened before the jump times out",
        || timed_out(&b.log(), "back-before").then_some(()),
    );
    assert!(before.commit_transaction(T).is_err());
    assert!(after.commit_transaction(T).is_err());
    assert!(!b.log().contains("panicked"), "{}", b.log());
}

/// Counts rebalances (assignments and revocations).
#[derive(Default, Clone)]
struct Rebalances(Arc<AtomicUsize>);

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if !matches!(r, Rebalance::Error(_)) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Group sessions count on the monotonic clock: a jump of an hour forward, then back,
/// expires no live member. The consumer stays assigned with no rebalance, and the
/// group's state stays Stable.
#[test]
fn group_sessions_do_not_move_with_the_wall_clock() {
    let mut b = Jumpy::start(&[]);
    let bs = b.bootstrap();
    create_topic(&bs, "grouped", &[]);
    let ctx = Rebalances::default();
    let c: BaseConsumer<Rebalances> = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", "clock-group")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .create_with_context(ctx.clone())
        .expect("group consumer");
    c.subscribe(&["grouped"]).expect("subscribe");
    eventually(WAIT, "the consumer is assigned", || {
        c.poll(Duration::from_millis(100));
        (c.assignment().ok()?.count() == 1).then_some(())
    });
    let settled = ctx.0.load(Ordering::SeqCst);
    let p = producer(&bs);
    for (n, offset) in [(1, HOUR), (2, -HOUR)] {
        b.set_offset(offset);
        // Past a session timeout of polling, and a record through the group.
        let sent = send(&p, "grouped", "k", format!("r{n}").as_bytes(), None);
        let until = Instant::now() + Duration::from_secs(7);
        let mut seen = false;
        while Instant::now() < until {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                seen |= m.offset() == sent;
            }
        }
        assert!(seen, "the member reads offset {sent} after the jump");
        assert_eq!(
            c.assignment().expect("assignment").count(),
            1,
            "still assigned"
        );
        assert_eq!(
            ctx.0.load(Ordering::SeqCst),
            settled,
            "no rebalance after a jump of {offset} ms"
        );
    }
    assert!(
        !b.log().contains("session expired"),
        "no member expired:\n{}",
        b.log()
    );
}

fn erase_status(broker: &TestBroker, topic: &str, key: &str) -> serde_json::Value {
    let data_dir = broker.data_dir().display().to_string();
    let o = std::process::Command::new(runnel_suite::runnel_bin())
        .args([
            "--output", "json", "erase", "status", "--topic", topic, "--key", key,
        ])
        .args(["--data-dir", &data_dir])
        .env("RUNNEL_BOOTSTRAP", broker.bootstrap())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run runnel erase status");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "erase status: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&out).expect("erase status JSON")
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(bytes) = std::fs::read(e.path()) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(e.path().display().to_string());
            }
        }
    }
    hits
}

/// Compaction deadlines are in the broker's wall clock: after a back jump of J,
/// `max.compaction.lag.ms` (the erasure deadline) and `delete.retention.ms` (when a
/// tombstone goes) come J later, and come once the clock catches up.
#[test]
fn a_back_jump_delays_compaction_deadlines_by_the_jump() {
    let mut b = Jumpy::start(&[]);
    let bs = b.bootstrap();
    let compacted = [
        ("cleanup.policy", "compact"),
        ("max.compaction.lag.ms", "1000"),
        ("min.cleanable.dirty.ratio", "0.99"),
        ("delete.retention.ms", "1000"),
    ];
    create_topic(&bs, "erase-before", &compacted);
    create_topic(&bs, "erase-after", &compacted);
    let p = producer(&bs);
    let data = b.broker.data_dir().to_path_buf();
    let dir = |t: &str| data.join(format!("{t}-0"));

    // Written before the jump: a value and its erasing tombstone.
    send(&p, "erase-before", "user-1", b"SECRET-BEFORE", None);
    send_tombstone(&p, "erase-before", "user-1");
    b.set_offset(-HOUR);
    // Written after it: the same, as a probe that the cleaner runs.
    send(&p, "erase-after", "user-2", b"SECRET-AFTER", None);
    send_tombstone(&p, "erase-after", "user-2");
    let after_dir = dir("erase-after");
    eventually(WAIT, "the value written after the jump is erased", || {
        files_containing(&after_dir, b"SECRET-AFTER")
            .is_empty()
            .then_some(())
    });
    // Its cleaner pass saw the partition written before the jump, whose deadline (in
    // the broker's clock) is an hour away: still on disk. The probe's tombstone is a
    // second past delete.retention.ms in real time, an hour short in the broker's: kept.
    std::thread::sleep(Duration::from_millis(1500));
    let before_dir = dir("erase-before");
    assert!(
        !files_containing(&before_dir, b"SECRET-BEFORE").is_empty(),
        "the erasure deadline of a record written before a back jump moves by the jump"
    );
    assert!(
        !files_containing(&after_dir, b"user-2").is_empty(),
        "a tombstone's delete.retention.ms moves by the jump"
    );
    // `runnel erase status` (on the broker's host, with the system's clock) computes the
    // deadline from the tombstone's timestamp (+ the cleaner's backoff): once that has
    // passed with the value still on disk, it says so.
    let status = eventually(WAIT, "erase status reports an overdue erasure", || {
        let status = erase_status(&b.broker, "erase-before", "user-1");
        (status["remaining"][0]["overdue"] == true).then_some(status)
    });
    assert_eq!(status["state"], "pending", "{status}");
    assert!(
        !files_containing(&before_dir, b"SECRET-BEFORE").is_empty(),
        "still on disk while the broker's clock is back"
    );
    // The clock returns: both deadlines have passed.
    b.set_offset(0);
    eventually(WAIT, "the value written before the jump is erased", || {
        files_containing(&before_dir, b"SECRET-BEFORE")
            .is_empty()
            .then_some(())
    });
    assert_eq!(
        erase_status(&b.broker, "erase-before", "user-1")["state"],
        "erased"
    );
    eventually(WAIT, "the tombstone goes once the clock is back", || {
        files_containing(&after_dir, b"user-2")
            .is_empty()
            .then_some(())
    });
    assert!(!b.log().contains("panicked"), "{}", b.log());
}
