//! Transactions with librdkafka (through the `rdkafka` crate) against the real broker:
//! commit and abort seen through read_committed and read_uncommitted consumers, the
//! last stable offset, zombie fencing, abort on timeout, consume-transform-produce
//! with `send_offsets_to_transaction`, and kill -9 in the middle of a transaction and
//! between the commit decision and its markers.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use runnel_suite::{BrokerOptions, TestBroker};

const T: Duration = Duration::from_secs(30);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

fn broker_with(settings: &[&str]) -> TestBroker {
    let extra_args = settings
        .iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect();
    TestBroker::start_with(BrokerOptions {
        extra_args,
        ..Default::default()
    })
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    create_topic_with(bootstrap, name, partitions, &[]);
}

fn create_topic_with(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(T));
    let results = block_on(admin.create_topics([&topic], &opts)).expect("CreateTopics");
    results[0]
        .as_ref()
        .unwrap_or_else(|(t, c)| panic!("CreateTopics({t}): {c:?}"));
}

fn txn_producer(
    bootstrap: &str,
    id: &str,
    extra: &[(&str, &str)],
) -> ThreadedProducer<rdkafka::producer::DefaultProducerContext> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let p: ThreadedProducer<_> = cfg.create().expect("create transactional producer");
    p.init_transactions(T).expect("init_transactions");
    p
}

fn send(
    p: &ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    partition: i32,
    value: &str,
) {
    p.send(
        BaseRecord::<str, str>::to(topic)
            .partition(partition)
            .key(value)
            .payload(value),
    )
    .unwrap_or_else(|(e, _)| panic!("enqueue {value}: {e}"));
}

fn consumer(bootstrap: &str, isolation: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("create consumer")
}

/// Every value readable in `topic`'s partitions `0..partitions` from the start, read
/// until nothing new arrives for `quiet` (and at least `want` values came).
fn read_all(
    bootstrap: &str,
    isolation: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    quiet: Duration,
) -> Vec<(i32, i64, String)> {
    let c = consumer(bootstrap, isolation, "runnel-txn-reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut last = Instant::now();
    let started = Instant::now();
    loop {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                out.push((m.partition(), m.offset(), v));
                last = Instant::now();
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
        if out.len() >= want && last.elapsed() >= quiet {
            return out;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "read {} of {want} values from {topic} ({isolation}) in 60 s: {out:?}",
            out.len()
        );
    }
}

fn values(read: &[(i32, i64, String)]) -> Vec<String> {
    let mut v: Vec<String> = read.iter().map(|(_, _, v)| v.clone()).collect();
    v.sort();
    v
}

fn strings(prefix: &str, n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:03}")).collect();
    v.sort();
    v
}

/// (low, high) watermarks as the given isolation level sees them (ListOffsets latest:
/// the LSO for read_committed).
fn end_offset(bootstrap: &str, isolation: &str, topic: &str, partition: i32) -> i64 {
    let c = consumer(bootstrap, isolation, "runnel-txn-offsets");
    c.fetch_watermarks(topic, partition, T)
        .expect("watermarks")
        .1
}

#[test]
fn committed_is_visible_aborted_is_not_and_the_lso_waits_for_an_open_transaction() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, "txn-basic", 2);
    let p = txn_producer(&bs, "txn-basic-producer", &[]);

    // A committed transaction over both partitions.
    p.begin_transaction().expect("begin");
    for i in 0..20 {
        send(&p, "txn-basic", i % 2, &format!("committed-{i:03}"));
    }
    p.commit_transaction(T).expect("commit");

    // An aborted one.
    p.begin_transaction().expect("begin");
    for i in 0..10 {
        send(&p, "txn-basic", i % 2, &format!("aborted-{i:03}"));
    }
    p.flush(T).expect("flush");
    p.abort_transaction(T).expect("abort");

    // Another committed one after it.
    p.begin_transaction().expect("begin");
    for i in 0..6 {
        send(&p, "txn-basic", i % 2, &format!("later-{i:03}"));
    }
    p.commit_transaction(T).expect("commit");

    let committed = read_all(
        &bs,
        "read_committed",
        "txn-basic",
        2,
        26,
        Duration::from_secs(2),
    );
    let mut want = strings("committed", 20);
    want.extend(strings("later", 6));
    want.sort();
    assert_eq!(
        values(&committed),
        want,
        "read_committed sees only committed data"
    );
    let uncommitted = read_all(
        &bs,
        "read_uncommitted",
        "txn-basic",
        2,
        36,
        Duration::from_secs(2),
    );
    let mut want_all = want.clone();
    want_all.extend(strings("aborted", 10));
    want_all.sort();
    assert_eq!(
        values(&uncommitted),
        want_all,
        "read_uncommitted sees aborted data too"
    );

    // An open transaction holds the LSO at its first offset; the high watermark moves on.
    let before = end_offset(&bs, "read_committed", "txn-basic", 0);
    p.begin_transaction().expect("begin");
    send(&p, "txn-basic", 0, "open-000");
    send(&p, "txn-basic", 0, "open-001");
    p.flush(T).expect("flush");
    let hw = end_offset(&bs, "read_uncommitted", "txn-basic", 0);
    assert!(
        hw >= before + 2,
        "high watermark {hw} after the open writes (was {before})"
    );
    assert_eq!(
        end_offset(&bs, "read_committed", "txn-basic", 0),
        before,
        "the LSO stays at the open transaction's first offset"
    );
    // The metrics show the open transaction and how far read_committed lags.
    let maddr = broker.metrics_addr().expect("metrics address");
    assert_eq!(
        gauge(
            maddr,
            "runnel_partition_ongoing_transactions",
            "txn-basic",
            0
        ),
        1
    );
    assert_eq!(
        gauge(maddr, "runnel_partition_lso_lag", "txn-basic", 0),
        (hw - before) as u64
    );
    p.commit_transaction(T).expect("commit");
    // Once the marker is below the high watermark the LSO passes it; until then it
    // stays at the transaction's first offset (never in between), as in Kafka.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lso = end_offset(&bs, "read_committed", "txn-basic", 0);
        if lso == hw + 1 {
            break;
        }
        assert_eq!(lso, before, "LSO before the marker is visible");
        assert!(Instant::now() < deadline, "the LSO never passed the marker");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        gauge(
            maddr,
            "runnel_partition_ongoing_transactions",
            "txn-basic",
            0
        ),
        0
    );
    assert_eq!(gauge(maddr, "runnel_partition_lso_lag", "txn-basic", 0), 0);
}

/// One partition gauge from the broker's /metrics.
fn gauge(addr: std::net::SocketAddr, name: &str, topic: &str, partition: i32) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to /metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("request /metrics");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read /metrics");
    let series = format!("{name}{{topic=\"{topic}\",partition=\"{partition}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

#[test]
fn a_second_producer_with_the_same_transactional_id_fences_the_first() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, "txn-fence", 1);
    let zombie = txn_producer(&bs, "txn-fence-id", &[]);
    zombie.begin_transaction().expect("begin");
    send(&zombie, "txn-fence", 0, "zombie-000");
    zombie.flush(T).expect("flush");

    // The new instance's InitProducerId bumps the epoch and aborts the zombie's
    // transaction.
    let fresh = txn_producer(&bs, "txn-fence-id", &[]);
    fresh.begin_transaction().expect("begin");
    send(&fresh, "txn-fence", 0, "fresh-000");
    fresh.commit_transaction(T).expect("commit");

    // The zombie can no longer commit: fenced.
    send(&zombie, "txn-fence", 0, "zombie-001");
    let err = zombie
        .commit_transaction(T)
        .expect_err("the fenced producer's commit must fail");
    let fatal = zombie.client().fatal_error();
    assert!(
        fatal.is_some() || matches!(err, KafkaError::Transaction(_)),
        "fenced: {err:?} / fatal {fatal:?}"
    );
    let read = read_all(
        &bs,
        "read_committed",
        "txn-fence",
        1,
        1,
        Duration::from_secs(2),
    );
    assert_eq!(values(&read), vec!["fresh-000".to_string()]);
}

#[test]
fn a_transaction_past_its_timeout_is_aborted() {
    let broker = broker_with(&["transaction.abort.timed.out.transaction.cleanup.interval.ms=200"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "txn-timeout", 1);
    let p = txn_producer(
        &bs,
        "txn-timeout-id",
        &[
            ("transaction.timeout.ms", "2000"),
            ("message.timeout.ms", "2000"),
        ],
    );
    p.begin_transaction().expect("begin");
    send(&p, "txn-timeout", 0, "late-000");
    p.flush(T).expect("flush");
    let hw = end_offset(&bs, "read_uncommitted", "txn-timeout", 0);
    assert_eq!(end_offset(&bs, "read_committed", "txn-timeout", 0), 0);
    // The coordinator aborts it: the abort marker lets the LSO pass.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lso = end_offset(&bs, "read_committed", "txn-timeout", 0);
        if lso > hw {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the LSO stayed at {lso} (hw {hw})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        p.commit_transaction(T).is_err(),
        "committing a transaction the coordinator aborted must fail"
    );
    let read = read_all(
        &bs,
        "read_committed",
        "txn-timeout",
        1,
        0,
        Duration::from_secs(2),
    );
    assert!(
        read.is_empty(),
        "the aborted record is not visible: {read:?}"
    );
}

/// Consume-transform-produce: each input record is copied to the output inside a
/// transaction with the input offsets (`send_offsets_to_transaction`); every third
/// transaction is aborted and redone from the committed offsets. The output holds each
/// input exactly once, and the group's committed offset is the input's end.
#[test]
fn consume_transform_produce_is_exactly_once_across_aborts() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap();
    create_topic(&bs, "ctp-in", 1);
    create_topic(&bs, "ctp-out", 1);
    let input: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("enable.idempotence", "true")
        .create()
        .expect("input producer");
    for i in 0..60 {
        send(&input, "ctp-in", 0, &format!("in-{i:03}"));
    }
    input.flush(T).expect("flush input");

    let group = "ctp-group";
    let p = txn_producer(&bs, "ctp-producer", &[]);
    let mut round = 0;
    let mut done = 0usize;
    while done < 60 {
        round += 1;
        // A fresh consumer each round starts at the group's committed offset, as a
        // restarted worker would.
        let c = consumer(&bs, "read_committed", group);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("ctp-in", 0);
        let committed = c.committed_offsets(tpl, T).expect("committed offsets");
        let start = match committed.elements()[0].offset() {
            Offset::Offset(o) => o,
            _ => 0,
        };
        assert_eq!(
            start as usize, done,
            "round {round} starts at the committed offset"
        );
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("ctp-in", 0, Offset::Offset(start))
            .expect("tpl");
        c.assign(&tpl).expect("assign");
        p.begin_transaction().expect("begin");
        let mut next = start;
        let started = Instant::now();
        while next < start + 10 && next < 60 {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.expect("consume");
                let v =
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).replace("in-", "out-");
                send(&p, "ctp-out", 0, &v);
                next = m.offset() + 1;
            }
            assert!(started.elapsed() < T, "input stopped at {next}");
        }
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("ctp-in", 0, Offset::Offset(next))
            .expect("offsets");
        let cgm = c.group_metadata().expect("group metadata");
        p.send_offsets_to_transaction(&offsets, &cgm, T)
            .expect("send_offsets_to_transaction");
        if round % 3 == 0 {
            p.abort_transaction(T).expect("abort");
        } else {
            p.commit_transaction(T).expect("commit");
            done = next as usize;
        }
    }
    let out = read_all(
        &bs,
        "read_committed",
        "ctp-out",
        1,
        60,
        Duration::from_secs(2),
    );
    assert_eq!(values(&out), strings("out", 60), "each input exactly once");
    // The group's offset is the input's end; an aborted round's offsets never applied.
    let c = consumer(&bs, "read_committed", group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("ctp-in", 0);
    let committed = c.committed_offsets(tpl, T).expect("committed");
    assert_eq!(committed.elements()[0].offset(), Offset::Offset(60));
}

/// kill -9 with a transaction open, and again with one committed: after the restart
/// the open one is aborted (on its timeout) and the committed one stays whole.
#[test]
fn kill_9_in_the_middle_of_a_transaction() {
    let mut broker =
        broker_with(&["transaction.abort.timed.out.transaction.cleanup.interval.ms=200"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "txn-crash", 2);
    let p = txn_producer(
        &bs,
        "txn-crash-id",
        &[
            ("transaction.timeout.ms", "3000"),
            ("message.timeout.ms", "3000"),
        ],
    );
    p.begin_transaction().expect("begin");
    for i in 0..10 {
        send(&p, "txn-crash", i % 2, &format!("kept-{i:03}"));
    }
    p.commit_transaction(T).expect("commit");
    p.begin_transaction().expect("begin");
    for i in 0..10 {
        send(&p, "txn-crash", i % 2, &format!("open-{i:03}"));
    }
    p.flush(T).expect("flush");
    drop(p);
    broker.kill9();
    broker.restart();
    let bs = broker.bootstrap();
    // The open transaction times out and is aborted; both partitions become stable.
    let deadline = Instant::now() + Duration::from_secs(30);
    for part in 0..2 {
        loop {
            let hw = end_offset(&bs, "read_uncommitted", "txn-crash", part);
            let lso = end_offset(&bs, "read_committed", "txn-crash", part);
            if lso == hw && hw > 10 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "partition {part}: LSO {lso}, HW {hw}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let read = read_all(
        &bs,
        "read_committed",
        "txn-crash",
        2,
        10,
        Duration::from_secs(2),
    );
    assert_eq!(values(&read), strings("kept", 10));
    // A new producer with the same id works on.
    let p = txn_producer(&bs, "txn-crash-id", &[]);
    p.begin_transaction().expect("begin");
    send(&p, "txn-crash", 0, "after-000");
    p.commit_transaction(T).expect("commit");
    let read = read_all(
        &bs,
        "read_committed",
        "txn-crash",
        2,
        11,
        Duration::from_secs(2),
    );
    let mut want = strings("kept", 10);
    want.push("after-000".into());
    want.sort();
    assert_eq!(values(&read), want);
}

/// kill -9 after the commit was decided (EndTxn answered: PrepareCommit is durable) but
/// before its markers are all written. The marker writes are held through the storage
/// fault seam: with `segment.bytes=100` every batch (each well over 50 bytes) starts a segment, so a marker's
/// segment file name is its offset, and `write:hold:path=<that file>` holds exactly the
/// marker. `held` names the file; `second_partition_records` places partition 1's
/// marker. After the restart (without faults) the coordinator resumes the commit:
/// every record is visible to read_committed and both partitions are stable.
fn kill_9_between_commit_and_markers(topic: &str, held: &str, second_partition_records: usize) {
    let mut broker = TestBroker::start_with(BrokerOptions {
        env: vec![(
            "RUNNEL_FAULTS".to_string(),
            format!("write:hold:path={held}:times=all"),
        )],
        ..Default::default()
    });
    let bs = broker.bootstrap();
    create_topic_with(&bs, topic, 2, &[("segment.bytes", "100")]);
    let p = txn_producer(&bs, &format!("{topic}-id"), &[]);
    p.begin_transaction().expect("begin");
    send(&p, topic, 0, "p0-000");
    p.flush(T).expect("flush");
    for i in 0..second_partition_records {
        // One produce request each: one batch, one segment.
        send(&p, topic, 1, &format!("p1-{i:03}"));
        p.flush(T).expect("flush");
    }
    p.commit_transaction(T)
        .expect("commit (decided once PrepareCommit is durable)");
    // The held marker never lands, and it holds its partition's log (a write hangs
    // under the log lock, as a stuck disk would), so only the other partition is asked:
    // with partition 0's marker held, partition 1's (written after it) is missing too;
    // with partition 1's held, partition 0's landed.
    std::thread::sleep(Duration::from_millis(500));
    if held.ends_with("1.log") {
        assert_eq!(
            end_offset(&bs, "read_committed", topic, 1),
            0,
            "no marker was written: partition 1 is unstable"
        );
    } else {
        assert_eq!(
            end_offset(&bs, "read_committed", topic, 0),
            2,
            "partition 0's marker landed"
        );
    }
    drop(p);
    broker.kill9();
    broker.set_env(Vec::new());
    broker.restart();
    let bs = broker.bootstrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for part in 0..2 {
        loop {
            let hw = end_offset(&bs, "read_uncommitted", topic, part);
            let lso = end_offset(&bs, "read_committed", topic, part);
            if lso == hw && hw > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "partition {part}: LSO {lso}, HW {hw} after the restart"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let read = read_all(
        &bs,
        "read_committed",
        topic,
        2,
        1 + second_partition_records,
        Duration::from_secs(2),
    );
    let mut want = vec!["p0-000".to_string()];
    want.extend((0..second_partition_records).map(|i| format!("p1-{i:03}")));
    want.sort();
    assert_eq!(
        values(&read),
        want,
        "the committed transaction is whole after the restart"
    );
}

#[test]
fn kill_9_after_the_commit_decision_before_any_marker() {
    // Both partitions hold one record at offset 0; both markers go to offset 1, and
    // the first one (partition 0) is held, so none is written.
    kill_9_between_commit_and_markers("txn-nomarkers", "00000000000000000001.log", 1);
}

#[test]
fn kill_9_after_some_of_the_markers() {
    // Partition 0's marker (offset 1) is written; partition 1 holds two records, and
    // its marker at offset 2 is held.
    kill_9_between_commit_and_markers("txn-somemarkers", "00000000000000000002.log", 2);
}

/// With `write.caching.default=true` user topics acknowledge before the fsync, but the
/// coordinators' internal topics do not: offset commits and transactions still work
/// (the fault harness found every commit and InitProducerId timing out when they did).
#[test]
fn write_caching_leaves_commits_and_transactions_working() {
    let broker = broker_with(&["write.caching.default=true"]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "cached", 1);

    let p = txn_producer(&bootstrap, "cached-txn", &[]);
    p.begin_transaction().expect("begin");
    send(&p, "cached", 0, "c-000");
    send(&p, "cached", 0, "c-001");
    p.commit_transaction(T)
        .expect("commit_transaction with write caching");
    let read = read_all(
        &bootstrap,
        "read_committed",
        "cached",
        1,
        2,
        Duration::from_millis(500),
    );
    assert_eq!(values(&read), strings("c", 2));

    let c = consumer(&bootstrap, "read_committed", "cached-group");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("cached", 0, Offset::Offset(2))
        .expect("tpl");
    c.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .expect("offset commit with write caching");
    let mut ask = TopicPartitionList::new();
    ask.add_partition("cached", 0);
    let committed = c.committed_offsets(ask, T).expect("committed offsets");
    assert_eq!(
        committed.find_partition("cached", 0).map(|e| e.offset()),
        Some(Offset::Offset(2))
    );
}
