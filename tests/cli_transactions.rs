//! `runnel transactions list|describe|describe-producers|find-hanging|abort`, run as the
//! real binary against the real broker, with librdkafka transactional producers (the
//! `rdkafka` crate) making the transactions and a read_committed consumer checking that
//! an abort lets it past a hanging one.
//!
//! A hanging transaction is one that is open on a partition while its coordinator no
//! longer knows it, so nothing will ever write its marker. A working coordinator leaves
//! none behind, so the test makes them the way they happen in the field: the
//! coordinator's state is lost (`__transaction_state` is deleted while the broker is
//! down), while the partitions keep the open transactions in their logs.
//!
//! The second test runs the commands with `--command-config` against a SASL listener
//! with ACLs enforced: what a principal may see and that an abort needs ClusterAction.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use runnel_suite::{runnel_bin, BrokerOptions, TestBroker};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);
const TOPIC: &str = "txn-cli";

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

/// Run and require exit code 0; returns stdout (also printed: `--nocapture` shows each
/// command's output).
fn ok(broker: &TestBroker, args: &[&str]) -> String {
    let o = runnel(broker, args);
    println!("$ runnel {}\n{}", args.join(" "), stdout(&o));
    assert_eq!(
        o.status.code(),
        Some(0),
        "runnel {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Run and require exit code `code`; returns stderr.
fn fails(broker: &TestBroker, code: i32, args: &[&str]) -> String {
    let o = runnel(broker, args);
    println!(
        "$ runnel {}\n{}(exit {:?})\n",
        args.join(" "),
        stderr(&o),
        o.status.code()
    );
    assert_eq!(
        o.status.code(),
        Some(code),
        "runnel {args:?}: expected exit {code}\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    stderr(&o)
}

/// Run with `--output json` and parse stdout.
fn json(broker: &TestBroker, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = ok(broker, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("runnel {args:?}: bad JSON ({e}):\n{out}"))
}

/// The table's rows (after the header), split on whitespace.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

fn txn_producer(bootstrap: &str, id: &str) -> TxnProducer {
    txn_producer_with(ClientConfig::new().set("bootstrap.servers", bootstrap), id)
}

fn txn_producer_with(config: &mut ClientConfig, id: &str) -> TxnProducer {
    let p: TxnProducer = config
        .set("transactional.id", id)
        // Longer than the test: only the test ends these transactions.
        .set("transaction.timeout.ms", "600000")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("create transactional producer");
    p.init_transactions(T).expect("init_transactions");
    p
}

fn send(p: &TxnProducer, partition: i32, value: &str) {
    p.send(
        BaseRecord::<str, str>::to(TOPIC)
            .partition(partition)
            .key(value)
            .payload(value),
    )
    .unwrap_or_else(|(e, _)| panic!("enqueue {value}: {e}"));
}

fn consumer(bootstrap: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "txn-cli-reader")
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("create consumer")
}

/// The high watermark as `isolation` sees it (ListOffsets latest: the LSO for
/// read_committed).
fn end_offset(bootstrap: &str, isolation: &str, partition: i32) -> i64 {
    consumer(bootstrap, isolation)
        .fetch_watermarks(TOPIC, partition, T)
        .expect("watermarks")
        .1
}

/// The values of `partition` an `isolation` consumer reads from the start, until it has
/// at least `want` and nothing new came for a second.
fn read(bootstrap: &str, isolation: &str, partition: i32, want: usize) -> Vec<String> {
    let c = consumer(bootstrap, isolation);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, partition, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let started = Instant::now();
    let mut last = Instant::now();
    loop {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
                last = Instant::now();
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
        if out.len() >= want && last.elapsed() >= Duration::from_secs(1) {
            return out;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "read {} of {want} values of {TOPIC}-{partition} ({isolation}) in 60 s: {out:?}",
            out.len()
        );
    }
}

/// Remove the transaction coordinator's log (`__transaction_state-*`) from a stopped
/// broker's data directory: it forgets every transactional id.
fn lose_transaction_state(data_dir: &Path) {
    let mut removed = 0;
    for entry in std::fs::read_dir(data_dir).expect("read the data dir") {
        let entry = entry.expect("dir entry");
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("__transaction_state-")
        {
            std::fs::remove_dir_all(entry.path()).expect("remove a __transaction_state partition");
            removed += 1;
        }
    }
    assert!(
        removed > 0,
        "no __transaction_state partitions in {data_dir:?}"
    );
}

/// The producers DescribeProducers reports on `partition`, as JSON.
fn producers(broker: &TestBroker, partition: i32) -> Vec<Value> {
    let p = partition.to_string();
    let d = json(
        broker,
        &[
            "transactions",
            "describe-producers",
            "--topic",
            TOPIC,
            "--partition",
            &p,
        ],
    );
    assert_eq!(d["topic"], TOPIC, "{d}");
    assert_eq!(d["partition"], partition, "{d}");
    d["producers"].as_array().expect("producers").clone()
}

/// The producer with an open transaction on `partition` starting at `offset`.
fn open_producer(broker: &TestBroker, partition: i32, offset: i64) -> Value {
    let all = producers(broker, partition);
    let open: Vec<&Value> = all
        .iter()
        .filter(|p| p["current_txn_start_offset"] == offset)
        .collect();
    assert_eq!(open.len(), 1, "one producer open at {offset}: {all:?}");
    open[0].clone()
}

#[test]
fn list_describe_find_hanging_and_abort() {
    let mut broker = TestBroker::start();
    ok(&broker, &["topics", "create", TOPIC, "--partitions", "2"]);

    // Two transactions left open, one per partition, by producers that then go away
    // with the coordinator's memory of them.
    let bs = broker.bootstrap();
    let lost_a = txn_producer(&bs, "txn-cli-lost-a");
    lost_a.begin_transaction().expect("begin");
    for i in 0..3 {
        send(&lost_a, 0, &format!("lost-a-{i}"));
    }
    lost_a.flush(T).expect("flush");
    let lost_b = txn_producer(&bs, "txn-cli-lost-b");
    lost_b.begin_transaction().expect("begin");
    for i in 0..2 {
        send(&lost_b, 1, &format!("lost-b-{i}"));
    }
    lost_b.flush(T).expect("flush");
    broker.stop();
    drop(lost_a);
    drop(lost_b);
    lose_transaction_state(broker.data_dir());
    broker.restart();
    let bs = broker.bootstrap();

    // Now a committed transaction over both partitions, and one that stays open.
    let committed = txn_producer(&bs, "txn-cli-committed");
    committed.begin_transaction().expect("begin");
    for i in 0..4 {
        send(&committed, 0, &format!("committed-0-{i}"));
    }
    for i in 0..2 {
        send(&committed, 1, &format!("committed-1-{i}"));
    }
    committed.commit_transaction(T).expect("commit");
    let open = txn_producer(&bs, "txn-cli-open");
    open.begin_transaction().expect("begin");
    for i in 0..2 {
        send(&open, 1, &format!("open-{i}"));
    }
    open.flush(T).expect("flush");

    // list: the coordinator knows the two ids made since the restart.
    let table = ok(
        &broker,
        &["--bootstrap-server", &bs, "transactions", "list"],
    );
    assert_eq!(
        header(&table),
        [
            "TransactionalId",
            "Coordinator",
            "ProducerId",
            "TransactionState"
        ],
        "{table}"
    );
    let listed = rows(&table);
    assert_eq!(listed.len(), 2, "{table}");
    assert_eq!(listed[0][0], "txn-cli-committed", "{table}");
    assert_eq!(listed[0][3], "CompleteCommit", "{table}");
    assert_eq!(listed[1][0], "txn-cli-open", "{table}");
    assert_eq!(listed[1][3], "Ongoing", "{table}");
    let list = json(&broker, &["transactions", "list"]);
    let open_pid = list
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["transactional_id"] == "txn-cli-open")
        .unwrap_or_else(|| panic!("txn-cli-open not listed: {list}"))["producer_id"]
        .as_i64()
        .expect("producer id");
    assert_eq!(listed[1][2], open_pid.to_string(), "{table}");
    // KIP-994's duration filter: the open transaction is younger than an hour.
    let young = json(
        &broker,
        &["transactions", "list", "--duration-filter", "3600000"],
    );
    assert!(
        !young
            .as_array()
            .expect("list")
            .iter()
            .any(|t| t["transactional_id"] == "txn-cli-open"),
        "{young}"
    );
    std::thread::sleep(Duration::from_millis(20));
    let old = json(&broker, &["transactions", "list", "--duration-filter", "1"]);
    assert!(
        old.as_array()
            .expect("list")
            .iter()
            .any(|t| t["transactional_id"] == "txn-cli-open"),
        "{old}"
    );

    // describe: the open one's producer, state and partition.
    let table = ok(
        &broker,
        &[
            "transactions",
            "describe",
            "--transactional-id",
            "txn-cli-open",
        ],
    );
    assert_eq!(header(&table)[0], "CoordinatorId", "{table}");
    assert_eq!(header(&table)[8], "TopicPartitions", "{table}");
    let row = &rows(&table)[0];
    assert_eq!(row[1], "txn-cli-open", "{table}");
    assert_eq!(row[2], open_pid.to_string(), "{table}");
    assert_eq!(row[4], "Ongoing", "{table}");
    assert_eq!(row[5], "600000", "{table}");
    assert_eq!(row[8], format!("{TOPIC}-1"), "{table}");
    let d = json(
        &broker,
        &[
            "transactions",
            "describe",
            "--transactional-id",
            "txn-cli-open",
        ],
    );
    assert_eq!(d["state"], "Ongoing", "{d}");
    assert_eq!(d["producer_id"], open_pid, "{d}");
    assert!(d["start_time_ms"].as_i64().is_some(), "{d}");
    assert!(d["duration_ms"].as_i64().is_some_and(|ms| ms >= 0), "{d}");
    assert_eq!(
        d["partitions"],
        serde_json::json!([{ "topic": TOPIC, "partition": 1 }]),
        "{d}"
    );
    let d = json(
        &broker,
        &[
            "transactions",
            "describe",
            "--transactional-id",
            "txn-cli-committed",
        ],
    );
    assert_eq!(d["state"], "CompleteCommit", "{d}");
    assert_eq!(d["partitions"], serde_json::json!([]), "{d}");
    // The lost ids are gone; a near name is suggested.
    let err = fails(
        &broker,
        3,
        &[
            "transactions",
            "describe",
            "--transactional-id",
            "txn-cli-lost-a",
        ],
    );
    assert!(
        err.contains("transactional id txn-cli-lost-a does not exist"),
        "{err}"
    );
    let err = fails(
        &broker,
        3,
        &[
            "transactions",
            "describe",
            "--transactional-id",
            "txn-cli-opem",
        ],
    );
    assert!(err.contains("did you mean txn-cli-open?"), "{err}");

    // describe-producers: on partition 0 the lost producer's transaction is open at
    // offset 0; the committed producer has none open.
    let table = ok(
        &broker,
        &[
            "transactions",
            "describe-producers",
            "--topic",
            TOPIC,
            "--partition",
            "0",
        ],
    );
    assert_eq!(
        header(&table),
        [
            "ProducerId",
            "ProducerEpoch",
            "LatestCoordinatorEpoch",
            "LastSequence",
            "LastTimestamp",
            "CurrentTransactionStartOffset"
        ],
        "{table}"
    );
    let on_0 = rows(&table);
    assert_eq!(on_0.len(), 2, "{table}");
    assert_eq!(
        on_0.iter().filter(|r| r[5] == "0").count(),
        1,
        "one transaction open at 0: {table}"
    );
    assert_eq!(on_0.iter().filter(|r| r[5] == "None").count(), 1, "{table}");
    let lost_a_state = open_producer(&broker, 0, 0);
    let lost_a_pid = lost_a_state["producer_id"].as_i64().expect("pid");
    assert_eq!(lost_a_state["last_sequence"], 2, "{lost_a_state}");
    let lost_b_state = open_producer(&broker, 1, 0);
    let lost_b_pid = lost_b_state["producer_id"].as_i64().expect("pid");
    // The open producer's transaction on partition 1 starts after the lost one's two
    // records, the committed one's two and its marker.
    let open_state = open_producer(&broker, 1, 5);
    assert_eq!(open_state["producer_id"], open_pid, "{open_state}");
    let err = fails(
        &broker,
        3,
        &[
            "transactions",
            "describe-producers",
            "--topic",
            TOPIC,
            "--partition",
            "7",
        ],
    );
    assert!(
        err.contains("partition 7 of topic txn-cli does not exist"),
        "{err}"
    );

    // The hanging transactions hold back the last stable offset: read_committed sees
    // nothing of partition 0, though its committed records are there.
    assert_eq!(end_offset(&bs, "read_uncommitted", 0), 8);
    assert_eq!(end_offset(&bs, "read_committed", 0), 0);

    // find-hanging: the two lost transactions; not the open one, which its
    // coordinator still has on partition 1.
    std::thread::sleep(Duration::from_millis(20));
    let table = ok(
        &broker,
        &[
            "transactions",
            "find-hanging",
            "--topic",
            TOPIC,
            "--max-transaction-timeout",
            "0",
        ],
    );
    assert_eq!(
        header(&table),
        [
            "Topic",
            "Partition",
            "ProducerId",
            "ProducerEpoch",
            "CoordinatorEpoch",
            "StartOffset",
            "LastTimestamp",
            "Duration(min)"
        ],
        "{table}"
    );
    let hanging = rows(&table);
    assert_eq!(hanging.len(), 2, "{table}");
    assert_eq!(
        hanging[0][..3],
        [TOPIC, "0", &lost_a_pid.to_string()],
        "{table}"
    );
    assert_eq!(hanging[0][5], "0", "{table}");
    assert_eq!(
        hanging[1][..3],
        [TOPIC, "1", &lost_b_pid.to_string()],
        "{table}"
    );
    assert_eq!(hanging[1][5], "0", "{table}");
    let found = json(
        &broker,
        &[
            "transactions",
            "find-hanging",
            "--topic",
            TOPIC,
            "--partition",
            "1",
            "--max-transaction-timeout",
            "0",
        ],
    );
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["producer_id"], lost_b_pid, "{found}");
    assert_eq!(found[0]["start_offset"], 0, "{found}");
    assert_eq!(found[0]["transactional_id"], Value::Null, "{found}");
    // Younger than the default 15 minutes: not yet suspects.
    let table = ok(&broker, &["transactions", "find-hanging", "--topic", TOPIC]);
    assert!(rows(&table).is_empty(), "{table}");
    // Searching a broker's partitions finds them too.
    let by_broker = json(
        &broker,
        &[
            "transactions",
            "find-hanging",
            "--broker-id",
            "1",
            "--max-transaction-timeout",
            "0",
        ],
    );
    assert_eq!(by_broker.as_array().map(Vec::len), Some(2), "{by_broker}");
    let err = fails(
        &broker,
        3,
        &["transactions", "find-hanging", "--broker-id", "9"],
    );
    assert!(err.contains("broker 9 does not exist"), "{err}");
    let err = fails(&broker, 2, &["transactions", "find-hanging"]);
    assert!(err.contains("--topic or --broker-id"), "{err}");
    fails(
        &broker,
        2,
        &["transactions", "find-hanging", "--partition", "0"],
    );

    // abort by start offset: no transaction starts at 3; the lost one starts at 0.
    let err = fails(
        &broker,
        3,
        &[
            "transactions",
            "abort",
            "--topic",
            TOPIC,
            "--partition",
            "0",
            "--start-offset",
            "3",
        ],
    );
    assert!(
        err.contains("could not find any open transaction starting at offset 3"),
        "{err}"
    );
    let err = fails(
        &broker,
        2,
        &[
            "transactions",
            "abort",
            "--topic",
            TOPIC,
            "--partition",
            "0",
        ],
    );
    assert!(err.contains("--start-offset"), "{err}");
    let out = ok(
        &broker,
        &[
            "transactions",
            "abort",
            "--topic",
            TOPIC,
            "--partition",
            "0",
            "--start-offset",
            "0",
        ],
    );
    assert!(
        out.contains(&format!("aborted the transaction of producer {lost_a_pid}")),
        "{out}"
    );

    // Partition 0 is stable again: read_committed reaches the high watermark (one more
    // for the abort marker) and reads the committed records past the aborted ones.
    assert_eq!(end_offset(&bs, "read_uncommitted", 0), 9);
    assert_eq!(end_offset(&bs, "read_committed", 0), 9);
    let mut got = read(&bs, "read_committed", 0, 4);
    got.sort();
    assert_eq!(
        got,
        (0..4)
            .map(|i| format!("committed-0-{i}"))
            .collect::<Vec<_>>()
    );
    let all = read(&bs, "read_uncommitted", 0, 7);
    assert_eq!(
        all.iter().filter(|v| v.starts_with("lost-a-")).count(),
        3,
        "{all:?}"
    );
    let a_after = producers(&broker, 0);
    assert!(
        a_after
            .iter()
            .all(|p| p["current_txn_start_offset"].is_null()),
        "{a_after:?}"
    );

    // abort by producer id, epoch and coordinator epoch (-1, never had a marker, as
    // describe-producers shows it): the lost transaction on partition 1.
    let epoch = lost_b_state["producer_epoch"].to_string();
    let coordinator_epoch = lost_b_state["coordinator_epoch"]
        .as_i64()
        .unwrap_or(-1)
        .to_string();
    let pid = lost_b_pid.to_string();
    let aborted = json(
        &broker,
        &[
            "transactions",
            "abort",
            "--topic",
            TOPIC,
            "--partition",
            "1",
            "--producer-id",
            &pid,
            "--producer-epoch",
            &epoch,
            "--coordinator-epoch",
            &coordinator_epoch,
        ],
    );
    assert_eq!(aborted["result"], "aborted", "{aborted}");
    assert_eq!(aborted["producer_id"], lost_b_pid, "{aborted}");
    assert_eq!(aborted["coordinator_epoch"], 0, "{aborted}");
    // Partition 1's LSO moves up to the open transaction, which is not hanging.
    assert_eq!(end_offset(&bs, "read_committed", 1), 5);
    let got = read(&bs, "read_committed", 1, 2);
    assert_eq!(got, ["committed-1-0", "committed-1-1"]);
    let table = ok(
        &broker,
        &[
            "transactions",
            "find-hanging",
            "--topic",
            TOPIC,
            "--max-transaction-timeout",
            "0",
        ],
    );
    assert!(
        rows(&table).is_empty(),
        "nothing hangs after the aborts: {table}"
    );

    // The open transaction commits as usual, and read_committed reads it.
    open.commit_transaction(T).expect("commit");
    let mut got = read(&bs, "read_committed", 1, 4);
    got.sort();
    assert_eq!(got, ["committed-1-0", "committed-1-1", "open-0", "open-1"]);
    let d = json(
        &broker,
        &[
            "transactions",
            "describe",
            "--transactional-id",
            "txn-cli-open",
        ],
    );
    assert_eq!(d["state"], "CompleteCommit", "{d}");

    // An abort at an epoch the partition has moved past is refused (exit 4): a new
    // instance of txn-cli-committed bumps its epoch and writes to partition 0.
    let committed_pid = list
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["transactional_id"] == "txn-cli-committed")
        .unwrap_or_else(|| panic!("txn-cli-committed not listed: {list}"))["producer_id"]
        .as_i64()
        .expect("producer id");
    drop(committed);
    let again = txn_producer(&bs, "txn-cli-committed");
    again.begin_transaction().expect("begin");
    send(&again, 0, "again-0");
    again.commit_transaction(T).expect("commit");
    let now = producers(&broker, 0);
    let entry = now
        .iter()
        .find(|p| p["producer_id"] == committed_pid)
        .unwrap_or_else(|| panic!("producer {committed_pid} on partition 0: {now:?}"));
    assert!(entry["producer_epoch"].as_i64() > Some(0), "{entry}");
    let pid = committed_pid.to_string();
    let err = fails(
        &broker,
        4,
        &[
            "transactions",
            "abort",
            "--topic",
            TOPIC,
            "--partition",
            "0",
            "--producer-id",
            &pid,
            "--producer-epoch",
            "0",
            "--coordinator-epoch",
            "0",
        ],
    );
    assert!(err.contains("InvalidProducerEpoch"), "{err}");
}

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
    user_admin=\"admin-secret\" user_alice=\"alice-secret\";";

/// A `--command-config` file for a PLAIN login as `user`.
fn plain_properties(dir: &Path, user: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{user}.properties"));
    std::fs::write(
        &path,
        format!(
            "security.protocol=SASL_PLAINTEXT\n\
             sasl.mechanism=PLAIN\n\
             sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"{user}\" password=\"{user}-secret\";\n"
        ),
    )
    .expect("write the properties file");
    path
}

/// `runnel --command-config FILE ARGS...`: exit code, stdout, stderr.
fn runnel_as(broker: &TestBroker, config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(runnel_bin())
        .arg("--command-config")
        .arg(config)
        .args(args)
        .env("RUNNEL_BOOTSTRAP", broker.bootstrap())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the runnel binary");
    println!("$ runnel {}\n{}{}", args.join(" "), stdout(&o), stderr(&o));
    (o.status.code(), stdout(&o), stderr(&o))
}

fn ok_as(broker: &TestBroker, config: &Path, args: &[&str]) -> String {
    let (code, out, err) = runnel_as(broker, config, args);
    assert_eq!(
        code,
        Some(0),
        "runnel {args:?}\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}

fn listed_ids(broker: &TestBroker, config: &Path) -> Vec<String> {
    let out = ok_as(
        broker,
        config,
        &["--output", "json", "transactions", "list"],
    );
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array()
        .expect("list")
        .iter()
        .map(|t| {
            t["transactional_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn a_secured_cluster_shows_only_described_ids_and_abort_needs_cluster_action() {
    let broker = TestBroker::start_with(BrokerOptions {
        extra_args: [
            "listeners=SASL_PLAINTEXT://127.0.0.1:0",
            "sasl.enabled.mechanisms=PLAIN",
            &format!("plain.sasl.jaas.config={JAAS}"),
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:admin",
        ]
        .iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect(),
        ..Default::default()
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = plain_properties(dir.path(), "admin");
    let alice = plain_properties(dir.path(), "alice");
    ok_as(
        &broker,
        &admin,
        &["topics", "create", TOPIC, "--partitions", "1"],
    );
    // alice produces transactionally as alice-txn, and may read the topic.
    ok_as(
        &broker,
        &admin,
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--topic",
            TOPIC,
            "--transactional-id",
            "alice-txn",
        ],
    );
    ok_as(
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
            TOPIC,
        ],
    );
    let sasl = |user: &str| {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", broker.bootstrap())
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "PLAIN")
            .set("sasl.username", user)
            .set("sasl.password", format!("{user}-secret"));
        c
    };
    let alices = txn_producer_with(&mut sasl("alice"), "alice-txn");
    alices.begin_transaction().expect("begin");
    send(&alices, 0, "alice-0");
    alices.flush(T).expect("flush");
    let admins = txn_producer_with(&mut sasl("admin"), "admin-txn");
    admins.begin_transaction().expect("begin");
    send(&admins, 0, "admin-0");
    admins.flush(T).expect("flush");

    // ListTransactions shows a principal the ids it may describe.
    assert_eq!(listed_ids(&broker, &admin), ["admin-txn", "alice-txn"]);
    assert_eq!(listed_ids(&broker, &alice), ["alice-txn"]);
    let (code, _, err) = runnel_as(
        &broker,
        &alice,
        &[
            "transactions",
            "describe",
            "--transactional-id",
            "admin-txn",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("TransactionalIdAuthorizationFailed"), "{err}");
    let out = ok_as(
        &broker,
        &alice,
        &[
            "transactions",
            "describe",
            "--transactional-id",
            "alice-txn",
        ],
    );
    assert!(out.contains("Ongoing"), "{out}");

    // alice may see the producers (Read on the topic) but not abort: WriteTxnMarkers
    // needs ClusterAction on the cluster.
    let out = ok_as(
        &broker,
        &alice,
        &[
            "transactions",
            "describe-producers",
            "--topic",
            TOPIC,
            "--partition",
            "0",
        ],
    );
    assert_eq!(rows(&out).len(), 2, "{out}");
    let abort = [
        "transactions",
        "abort",
        "--topic",
        TOPIC,
        "--partition",
        "0",
        "--start-offset",
        "0",
    ];
    let (code, _, err) = runnel_as(&broker, &alice, &abort);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("ClusterAuthorizationFailed"), "{err}");
    let out = ok_as(&broker, &admin, &abort);
    assert!(out.contains("aborted the transaction of producer"), "{out}");
    let out = ok_as(
        &broker,
        &admin,
        &[
            "--output",
            "json",
            "transactions",
            "describe-producers",
            "--topic",
            TOPIC,
            "--partition",
            "0",
        ],
    );
    let d: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let open: Vec<i64> = d["producers"]
        .as_array()
        .expect("producers")
        .iter()
        .filter_map(|p| p["current_txn_start_offset"].as_i64())
        .collect();
    assert_eq!(open, [1], "only admin-txn's transaction is left open: {d}");
}
