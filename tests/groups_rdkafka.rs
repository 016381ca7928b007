//! Consumer groups driven by librdkafka (the `rdkafka` crate): the group coordinator's
//! "exactly one owner per partition" promise and durable offsets.
//!
//! Consumers that must be killed without a LeaveGroup run as child processes: this test
//! binary re-executed with `GROUPS_CHILD=1` runs [`child_consumer`], which consumes and
//! prints its rebalance callbacks (with wall-clock timestamps) and every message on
//! stdout; the parent SIGKILLs it to simulate a crash, or closes its stdin for a clean
//! shutdown (LeaveGroup, commits on revoke).
//!
//! Brokers run with `group.initial.rebalance.delay.ms=0`, `group.min.session.timeout.ms`
//! lowered and 5 `__consumer_offsets` partitions, so the suite runs in a few minutes.
//!
//! KIP-848 (`group.protocol=consumer`) runs against librdkafka 2.12 (bundled by the
//! rdkafka crate), and raw ConsumerGroupHeartbeat / OffsetCommit / OffsetFetch /
//! ConsumerGroupDescribe requests encoded with kafka-protocol cover the epoch rules
//! librdkafka does not let us provoke. Regex subscriptions (`^orders-.*`) are resolved by
//! the broker. Brokers also run with
//! `group.consumer.session.timeout.ms=6000` and `group.consumer.heartbeat.interval.ms=500`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use runnel_suite::{eventually, BrokerOptions, FaultProxy, TestBroker};

use std::net::TcpStream;

use bytes::Bytes;
use kafka_protocol::messages::{self as m, ApiKey, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::api::{
    decode_response, encode_request, RequestBody, RequestHeader, ResponseBody,
};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

fn group_broker_opts() -> BrokerOptions {
    BrokerOptions {
        extra_args: [
            "group.initial.rebalance.delay.ms=0",
            "group.min.session.timeout.ms=1000",
            "offsets.topic.num.partitions=5",
            "group.consumer.session.timeout.ms=6000",
            "group.consumer.heartbeat.interval.ms=500",
        ]
        .iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect(),
        ..Default::default()
    }
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let res = block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))
    .expect("create topics");
    for r in res {
        r.expect("topic created");
    }
}

/// Produces `value = id` messages (ids counting up) until stopped.
struct BackgroundProducer {
    stop: Arc<AtomicBool>,
    produced: Arc<AtomicUsize>,
    handle: Option<thread::JoinHandle<()>>,
}

impl BackgroundProducer {
    fn start(bootstrap: &str, topic: &str, per_second: u64) -> BackgroundProducer {
        let stop = Arc::new(AtomicBool::new(false));
        let produced = Arc::new(AtomicUsize::new(0));
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "5")
            .set("enable.idempotence", "true")
            .create()
            .expect("producer");
        let (s, p, topic) = (stop.clone(), produced.clone(), topic.to_string());
        let handle = thread::spawn(move || {
            let mut id = 0usize;
            let pause = Duration::from_micros(1_000_000 / per_second.max(1));
            while !s.load(Ordering::SeqCst) {
                let key = format!("k{id}");
                let value = id.to_string();
                loop {
                    match producer.send(BaseRecord::to(&topic).key(&key).payload(&value)) {
                        Ok(()) => break,
                        Err((_, _)) => thread::sleep(Duration::from_millis(10)),
                    }
                }
                id += 1;
                p.store(id, Ordering::SeqCst);
                thread::sleep(pause);
            }
            producer.flush(Duration::from_secs(30)).expect("flush");
        });
        BackgroundProducer {
            stop,
            produced,
            handle: Some(handle),
        }
    }

    /// Stop and flush; returns how many were produced (ids 0..n).
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().expect("producer thread");
        }
        self.produced.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------
// The child consumer
// ---------------------------------------------------------------------------------------

/// Prints librdkafka's log lines (for `GROUPS_DEBUG=cgrp,...`).
struct LogCtx;

impl ClientContext for LogCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!("rdkafka {level:?} {fac}: {log_message}");
    }
}

impl ConsumerContext for LogCtx {}

struct ChildCtx {
    /// partition → last consumed offset.
    consumed: Mutex<HashMap<i32, i64>>,
    topic: String,
}

impl ClientContext for ChildCtx {}

fn parts_of(tpl: &TopicPartitionList) -> String {
    let mut ps: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    ps.sort();
    ps.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl ChildCtx {
    fn commit(&self, c: &BaseConsumer<ChildCtx>, parts: Option<&TopicPartitionList>) {
        let consumed = self.consumed.lock().unwrap();
        let mut tpl = TopicPartitionList::new();
        for (p, o) in consumed.iter() {
            let wanted = parts.is_none_or(|l| l.elements().iter().any(|e| e.partition() == *p));
            if wanted {
                let _ = tpl.add_partition_offset(&self.topic, *p, Offset::Offset(o + 1));
            }
        }
        drop(consumed);
        if tpl.count() > 0 {
            match c.commit(&tpl, CommitMode::Sync) {
                Ok(()) => println!("@@ C {}", parts_of(&tpl)),
                Err(e) => println!("@@ E commit failed: {e}"),
            }
        }
    }
}

impl ConsumerContext for ChildCtx {
    fn pre_rebalance(&self, c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Commit what we consumed before giving the partitions up (clean handover).
            self.commit(c, Some(tpl));
            let mut consumed = self.consumed.lock().unwrap();
            for e in tpl.elements() {
                consumed.remove(&e.partition());
            }
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => println!("@@ A {} {}", now_ms(), parts_of(tpl)),
            Rebalance::Revoke(tpl) => println!("@@ R {} {}", now_ms(), parts_of(tpl)),
            Rebalance::Error(e) => println!("@@ E rebalance error {e}"),
        }
        let _ = std::io::stdout().flush();
    }
}

/// Not a test on its own: the body of a child consumer process (see the module docs).
#[test]
fn child_consumer() {
    if std::env::var_os("GROUPS_CHILD").is_none() {
        return;
    }
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let topic = env("GROUPS_TOPIC");
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", env("GROUPS_BOOTSTRAP"))
        .set("group.id", env("GROUPS_GROUP"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("client.id", env("GROUPS_NAME"));
    if env("GROUPS_PROTOCOL") == "consumer" {
        cfg.set("group.protocol", "consumer");
    } else {
        cfg.set("session.timeout.ms", env("GROUPS_SESSION_MS"))
            .set("heartbeat.interval.ms", "500")
            .set("partition.assignment.strategy", env("GROUPS_STRATEGY"));
    }
    if !env("GROUPS_INSTANCE").is_empty() {
        cfg.set("group.instance.id", env("GROUPS_INSTANCE"));
    }
    let consumer: BaseConsumer<ChildCtx> = cfg
        .create_with_context(ChildCtx {
            consumed: Mutex::new(HashMap::new()),
            topic: topic.clone(),
        })
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        s.store(true, Ordering::SeqCst);
    });
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let v = m
                    .payload()
                    .map(|b| String::from_utf8_lossy(b).to_string())
                    .unwrap_or_default();
                println!("@@ M {} {} {}", m.partition(), m.offset(), v);
                consumer
                    .context()
                    .consumed
                    .lock()
                    .unwrap()
                    .insert(m.partition(), m.offset());
            }
            Some(Err(e)) => println!("@@ E {e}"),
            None => {}
        }
        if last_commit.elapsed() > Duration::from_secs(2) {
            consumer.context().commit(&consumer, None);
            last_commit = Instant::now();
        }
    }
    consumer.context().commit(&consumer, None);
    drop(consumer); // close: revoke callbacks, LeaveGroup
    println!("@@ X {}", now_ms());
    let _ = std::io::stdout().flush();
}

// ---------------------------------------------------------------------------------------
// The parent's view of its children
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
#[allow(dead_code)] // fields are read through Debug in failure dumps
enum Ev {
    Assign(i64, Vec<i32>),
    Revoke(i64, Vec<i32>),
    Msg(i32, i64, usize),
    Killed(i64),
    Exited,
    Other(String),
}

#[derive(Default)]
struct Journal {
    events: Mutex<Vec<(String, Ev)>>,
}

impl Journal {
    fn snapshot(&self) -> Vec<(String, Ev)> {
        self.events.lock().unwrap().clone()
    }

    fn push(&self, who: &str, ev: Ev) {
        self.events.lock().unwrap().push((who.to_string(), ev));
    }

    /// Partitions `who` owns now, from its callbacks.
    fn owned(&self, who: &str) -> BTreeSet<i32> {
        let mut owned = BTreeSet::new();
        for (w, ev) in self.events.lock().unwrap().iter() {
            if w != who {
                continue;
            }
            match ev {
                Ev::Assign(_, ps) => owned.extend(ps.iter().copied()),
                Ev::Revoke(_, ps) => ps.iter().for_each(|p| {
                    owned.remove(p);
                }),
                Ev::Killed(_) => owned.clear(),
                _ => {}
            }
        }
        owned
    }

    fn count(&self, who: &str, f: impl Fn(&Ev) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, e)| w == who && f(e))
            .count()
    }

    fn seen_ids(&self) -> HashMap<usize, usize> {
        let mut seen = HashMap::new();
        for (_, ev) in self.events.lock().unwrap().iter() {
            if let Ev::Msg(_, _, id) = ev {
                *seen.entry(*id).or_insert(0) += 1;
            }
        }
        seen
    }

    fn dump(&self) -> String {
        self.snapshot()
            .iter()
            .filter(|(_, e)| !matches!(e, Ev::Msg(..)))
            .map(|(w, e)| format!("{w}: {e:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

struct ChildConsumer {
    name: String,
    child: Option<Child>,
    reader: Option<thread::JoinHandle<()>>,
    journal: Arc<Journal>,
}

struct ChildSpec<'a> {
    bootstrap: &'a str,
    group: &'a str,
    topic: &'a str,
    name: &'a str,
    instance: Option<&'a str>,
    strategy: &'a str,
    protocol: &'a str,
    session_ms: u32,
}

impl ChildConsumer {
    fn spawn(spec: ChildSpec<'_>, journal: Arc<Journal>) -> ChildConsumer {
        let exe = std::env::current_exe().expect("test exe");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "child_consumer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("GROUPS_CHILD", "1")
            .env("GROUPS_BOOTSTRAP", spec.bootstrap)
            .env("GROUPS_GROUP", spec.group)
            .env("GROUPS_TOPIC", spec.topic)
            .env("GROUPS_NAME", spec.name)
            .env("GROUPS_INSTANCE", spec.instance.unwrap_or(""))
            .env("GROUPS_STRATEGY", spec.strategy)
            .env("GROUPS_PROTOCOL", spec.protocol)
            .env("GROUPS_SESSION_MS", spec.session_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child consumer");
        let stdout = child.stdout.take().expect("stdout");
        let (j, name) = (journal.clone(), spec.name.to_string());
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest prints "test child_consumer ... " without a newline first.
                let Some(at) = line.find("@@ ") else {
                    continue;
                };
                let rest = &line[at + 3..];
                let mut it = rest.splitn(3, ' ');
                let kind = it.next().unwrap_or("");
                let a = it.next().unwrap_or("");
                let b = it.next().unwrap_or("");
                let parts = |s: &str| -> Vec<i32> {
                    s.split(',')
                        .filter(|x| !x.is_empty())
                        .filter_map(|x| x.parse().ok())
                        .collect()
                };
                let ev = match kind {
                    "A" => Ev::Assign(a.parse().unwrap_or(0), parts(b)),
                    "R" => Ev::Revoke(a.parse().unwrap_or(0), parts(b)),
                    "M" => {
                        let mut f = b.splitn(2, ' ');
                        let off = f.next().and_then(|x| x.parse().ok()).unwrap_or(-1);
                        let id = f.next().and_then(|x| x.parse().ok()).unwrap_or(usize::MAX);
                        Ev::Msg(a.parse().unwrap_or(-1), off, id)
                    }
                    "X" => Ev::Exited,
                    "C" => continue,
                    _ => Ev::Other(rest.to_string()),
                };
                j.push(&name, ev);
            }
        });
        ChildConsumer {
            name: spec.name.to_string(),
            child: Some(child),
            reader: Some(reader),
            journal,
        }
    }

    /// SIGKILL: no LeaveGroup, no commit.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.journal.push(&self.name, Ev::Killed(now_ms()));
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// Close stdin: the child closes its consumer cleanly and exits.
    fn close(&mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for ChildConsumer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Per partition, the ownership intervals [assign, revoke-or-kill) of every member must
/// not overlap. Returns a description of the first overlap.
fn check_no_overlap(journal: &Journal, end_ms: i64) -> Result<(), String> {
    let mut intervals: BTreeMap<i32, Vec<(i64, i64, String)>> = BTreeMap::new();
    let mut open: HashMap<(String, i32), i64> = HashMap::new();
    for (who, ev) in journal.snapshot() {
        match ev {
            Ev::Assign(t, ps) => {
                for p in ps {
                    open.insert((who.clone(), p), t);
                }
            }
            Ev::Revoke(t, ps) => {
                for p in ps {
                    if let Some(s) = open.remove(&(who.clone(), p)) {
                        intervals.entry(p).or_default().push((s, t, who.clone()));
                    }
                }
            }
            Ev::Killed(t) => {
                let mine: Vec<(String, i32)> =
                    open.keys().filter(|(w, _)| *w == who).cloned().collect();
                for k in mine {
                    if let Some(s) = open.remove(&k) {
                        intervals.entry(k.1).or_default().push((s, t, who.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    for ((who, p), s) in open {
        intervals.entry(p).or_default().push((s, end_ms, who));
    }
    for (p, mut iv) in intervals {
        iv.sort();
        for w in iv.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(format!(
                    "partition {p}: {} owned it over [{}, {}) and {} over [{}, {})",
                    w[0].2, w[0].0, w[0].1, w[1].2, w[1].0, w[1].1
                ));
            }
        }
    }
    Ok(())
}

fn wait_for_assignment(journal: &Journal, members: &[&str], partitions: usize, what: &str) {
    eventually(Duration::from_secs(60), what, || {
        let owned: Vec<BTreeSet<i32>> = members.iter().map(|m| journal.owned(m)).collect();
        let total: usize = owned.iter().map(|o| o.len()).sum();
        let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
        (total == partitions && union.len() == partitions && owned.iter().all(|o| !o.is_empty()))
            .then_some(())
    });
}

/// The "must show", with the protocol of `protocol`: 3 consumers on 12 partitions, one
/// killed, one added, ownership never overlapping, every message consumed.
fn ownership_scenario(protocol: &str) {
    let broker = TestBroker::start_with(group_broker_opts());
    let bootstrap = broker.bootstrap();
    let topic = format!("own-{protocol}");
    let group = format!("g-own-{protocol}");
    create_topic(&bootstrap, &topic, 12);
    let journal = Arc::new(Journal::default());
    let producer = BackgroundProducer::start(&bootstrap, &topic, 300);
    let spec = |name: &'static str| ChildSpec {
        bootstrap: "",
        group: "",
        topic: "",
        name,
        instance: None,
        strategy: "cooperative-sticky",
        protocol,
        session_ms: 6000,
    };
    let spawn = |name: &'static str| {
        ChildConsumer::spawn(
            ChildSpec {
                bootstrap: &bootstrap,
                group: &group,
                topic: &topic,
                ..spec(name)
            },
            journal.clone(),
        )
    };
    let mut c1 = spawn("c1");
    let mut c2 = spawn("c2");
    let mut c3 = spawn("c3");
    wait_for_assignment(
        &journal,
        &["c1", "c2", "c3"],
        12,
        "3 consumers share 12 partitions",
    );
    if protocol == "consumer" {
        // The clients really run the KIP-848 protocol: a "consumer" group of 3.
        let mut raw = Raw::connect(&broker);
        let d = match raw.call(
            ApiKey::ConsumerGroupDescribe,
            0,
            m::ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![GroupId(sb(&group))])
                .into(),
        ) {
            ResponseBody::ConsumerGroupDescribe(r) => r,
            other => panic!("unexpected {other:?}"),
        };
        let g = &d.groups[0];
        assert_eq!(g.error_code, 0, "{g:?}");
        assert_eq!(g.members.len(), 3, "{g:?}");
        assert!(g.members.iter().all(|mb| mb.member_epoch > 0), "{g:?}");
    }
    thread::sleep(Duration::from_secs(2));
    let before_kill: HashMap<&str, BTreeSet<i32>> = ["c1", "c2", "c3"]
        .iter()
        .map(|m| (*m, journal.owned(m)))
        .collect();
    eprintln!("before kill: {before_kill:?}");
    let revokes_before = |m: &str| journal.count(m, |e| matches!(e, Ev::Revoke(..)));
    let (r1, r2) = (revokes_before("c1"), revokes_before("c2"));

    // Kill c3 without a LeaveGroup: its partitions move after the session timeout.
    let killed_at = Instant::now();
    c3.kill9();
    wait_for_assignment(
        &journal,
        &["c1", "c2"],
        12,
        "c3's partitions move to c1 and c2",
    );
    let moved_after = killed_at.elapsed();
    eprintln!("c3's partitions moved after {moved_after:?}");
    assert!(
        moved_after >= Duration::from_millis(3000),
        "partitions moved before the session timeout ({moved_after:?})\n{}",
        journal.dump()
    );
    if protocol == "classic" {
        // Cooperative: the survivors kept what they had.
        assert_eq!(
            revokes_before("c1"),
            r1,
            "c1 revoked on c3's death\n{}",
            journal.dump()
        );
        assert_eq!(
            revokes_before("c2"),
            r2,
            "c2 revoked on c3's death\n{}",
            journal.dump()
        );
    }
    for m in ["c1", "c2"] {
        assert!(
            journal.owned(m).is_superset(&before_kill[m]),
            "{m} lost partitions\n{}",
            journal.dump()
        );
    }
    thread::sleep(Duration::from_secs(2));

    // Add c4: only what it needs moves.
    let owned_before_add: HashMap<&str, BTreeSet<i32>> = ["c1", "c2"]
        .iter()
        .map(|m| (*m, journal.owned(m)))
        .collect();
    let mut c4 = spawn("c4");
    wait_for_assignment(
        &journal,
        &["c1", "c2", "c4"],
        12,
        "c4 joins and gets partitions",
    );
    thread::sleep(Duration::from_secs(3));
    let c4_owned = journal.owned("c4");
    let lost: usize = ["c1", "c2"]
        .iter()
        .map(|m| owned_before_add[m].difference(&journal.owned(m)).count())
        .sum();
    eprintln!("c4 owns {c4_owned:?}; c1/c2 gave up {lost}");
    assert_eq!(
        lost,
        c4_owned.len(),
        "more moved than c4 took\n{}",
        journal.dump()
    );
    assert!(
        (3..=5).contains(&c4_owned.len()),
        "c4 owns {c4_owned:?}\n{}",
        journal.dump()
    );

    // Drain: every message consumed at least once.
    let produced = producer.stop();
    eventually(
        Duration::from_secs(60),
        "every produced message is consumed",
        || {
            let seen = journal.seen_ids();
            (0..produced).all(|id| seen.contains_key(&id)).then_some(())
        },
    );
    c1.close();
    c2.close();
    c4.close();
    let end = now_ms();
    if let Err(e) = check_no_overlap(&journal, end) {
        panic!("two owners at once: {e}\n{}", journal.dump());
    }
    // Duplicates only on partitions c3 owned when it was killed (it never committed
    // on revoke); clean handovers commit on revoke and lose nothing twice.
    let c3_parts = &before_kill["c3"];
    let mut dup_by_partition: BTreeMap<i32, usize> = BTreeMap::new();
    let mut part_of_id: HashMap<usize, i32> = HashMap::new();
    for (_, ev) in journal.snapshot() {
        if let Ev::Msg(p, _, id) = ev {
            if part_of_id.insert(id, p).is_some() {
                *dup_by_partition.entry(p).or_insert(0) += 1;
            }
        }
    }
    eprintln!("produced {produced}; duplicates by partition: {dup_by_partition:?}");
    for p in dup_by_partition.keys() {
        assert!(
            c3_parts.contains(p),
            "duplicates on partition {p}, which only moved in clean handovers: {dup_by_partition:?}\n{}",
            journal.dump()
        );
    }
}

#[test]
fn classic_cooperative_ownership_kill_and_add() {
    ownership_scenario("classic");
}

#[test]
fn static_member_restart_keeps_partitions_without_rebalance() {
    let broker = TestBroker::start_with(group_broker_opts());
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("static-t", "g-static");
    create_topic(&bootstrap, topic, 6);
    let journal = Arc::new(Journal::default());
    let spawn = |name: &'static str, instance: &'static str| {
        ChildConsumer::spawn(
            ChildSpec {
                bootstrap: &bootstrap,
                group,
                topic,
                name,
                instance: Some(instance),
                strategy: "range",
                protocol: "classic",
                session_ms: 15000,
            },
            journal.clone(),
        )
    };
    let mut a = spawn("a", "inst-a");
    let mut b = spawn("b", "inst-b");
    wait_for_assignment(
        &journal,
        &["a", "b"],
        6,
        "two static members share 6 partitions",
    );
    thread::sleep(Duration::from_secs(2));
    let a_parts = journal.owned("a");
    let b_events = journal.count("b", |e| matches!(e, Ev::Assign(..) | Ev::Revoke(..)));
    a.kill9();
    thread::sleep(Duration::from_secs(1));
    let mut a2 = spawn("a2", "inst-a");
    eventually(
        Duration::from_secs(30),
        "the restarted static member gets its partitions",
        || (!journal.owned("a2").is_empty()).then_some(()),
    );
    thread::sleep(Duration::from_secs(3));
    assert_eq!(
        journal.owned("a2"),
        a_parts,
        "static member came back to other partitions\n{}",
        journal.dump()
    );
    assert_eq!(
        journal.count("b", |e| matches!(e, Ev::Assign(..) | Ev::Revoke(..))),
        b_events,
        "the other member went through a rebalance\n{}",
        journal.dump()
    );
    a2.close();
    b.close();
}

#[test]
fn committed_offsets_and_membership_survive_kill9() {
    let proxy = FaultProxy::start();
    let mut opts = group_broker_opts();
    opts.advertised_listener = Some(proxy.addr().to_string());
    let mut broker = TestBroker::start_with(opts);
    proxy.set_upstream(broker.addr());
    let bootstrap = proxy.addr().to_string();
    let (topic, group) = ("durable-t", "g-durable");
    create_topic(&bootstrap, topic, 3);
    let producer = BackgroundProducer::start(&bootstrap, topic, 500);
    thread::sleep(Duration::from_secs(1));

    // A committer: commits offsets with metadata on partition 0..3.
    let mut cfg = ClientConfig::new();
    if let Ok(d) = std::env::var("GROUPS_DEBUG") {
        cfg.set("debug", d);
        cfg.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    let consumer: BaseConsumer<LogCtx> = cfg
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "20000")
        .set("heartbeat.interval.ms", "500")
        .create_with_context(LogCtx)
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut last: HashMap<i32, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while last.len() < 3 || last.values().any(|o| *o < 50) {
        assert!(Instant::now() < deadline, "consumed too little: {last:?}");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            last.insert(m.partition(), m.offset());
        }
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in &last {
        tpl.add_partition_offset(topic, *p, Offset::Offset(o + 1))
            .unwrap();
        tpl.find_partition(topic, *p)
            .unwrap()
            .set_metadata(format!("meta-{p}"));
    }
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
    let assignment_before = consumer.assignment().expect("assignment");
    let generation_before = consumer.group_metadata().map(|_| ());
    assert!(generation_before.is_some());

    // Crash the broker; restart it behind the same proxy address.
    broker.kill9();
    proxy.sever_all();
    broker.restart();
    proxy.set_upstream(broker.addr());

    // The live consumer carries on: no new assignment, it keeps consuming.
    let resumed_from = last.clone();
    let mut consumed_after = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumed_after < 100 {
        assert!(
            Instant::now() < deadline,
            "the consumer did not resume after the restart"
        );
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            consumed_after += 1;
        }
    }
    assert_eq!(
        consumer.assignment().expect("assignment"),
        assignment_before
    );

    // The committed offsets (and metadata) came back from __consumer_offsets.
    let committed = consumer
        .committed_offsets(tpl.clone(), Duration::from_secs(10))
        .expect("committed offsets");
    for e in committed.elements() {
        let want = resumed_from[&e.partition()] + 1;
        assert_eq!(
            e.offset(),
            Offset::Offset(want),
            "partition {}",
            e.partition()
        );
        assert_eq!(e.metadata(), format!("meta-{}", e.partition()));
    }
    // Close in the background: after a broker restart behind the proxy, librdkafka's
    // close (rd_kafka_consumer_close_queue) has been seen to leave the group and then
    // never report itself closed; that is client-side and not what this test checks.
    thread::spawn(move || drop(consumer));
    producer.stop();

    // A new consumer in the group starts at the committed offsets.
    let fresh: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "g-durable-2")
        .create()
        .expect("consumer");
    let committed = fresh
        .committed_offsets(tpl.clone(), Duration::from_secs(10))
        .expect("committed offsets of another group");
    for e in committed.elements() {
        assert_eq!(e.offset(), Offset::Invalid, "other group has no offsets");
    }
}

#[test]
fn kip848_ownership_kill_and_add() {
    let v = rdkafka::util::get_rdkafka_version();
    eprintln!("librdkafka {}", v.1);
    ownership_scenario("consumer");
}

// ---------------------------------------------------------------------------------------
// Raw requests
// ---------------------------------------------------------------------------------------

struct Raw {
    s: TcpStream,
    correlation: i32,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Raw {
    fn connect(broker: &TestBroker) -> Raw {
        let s = TcpStream::connect(broker.addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        Raw { s, correlation: 0 }
    }

    fn call(&mut self, api_key: ApiKey, version: i16, body: RequestBody) -> ResponseBody {
        self.correlation += 1;
        let header = RequestHeader {
            api_key,
            api_version: version,
            correlation_id: self.correlation,
            client_id: Some(sb("raw-kip848")),
        };
        let frame = encode_request(&header, &body).expect("encode");
        self.s.write_all(&frame).expect("write");
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).expect("read size");
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut buf).expect("read body");
        let (cid, body) = decode_response(&header, Bytes::from(buf)).expect("decode");
        assert_eq!(cid, self.correlation);
        body
    }

    #[allow(clippy::too_many_arguments)]
    fn heartbeat(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        topic: Option<&str>,
        owned: Option<(uuid::Uuid, Vec<i32>)>,
    ) -> m::ConsumerGroupHeartbeatResponse {
        let req = m::ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_member_id(sb(member))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(topic.map(|t| vec![TopicName(sb(t))]))
            .with_topic_partitions(owned.map(|(id, ps)| {
                vec![
                    m::consumer_group_heartbeat_request::TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(ps),
                ]
            }));
        match self.call(ApiKey::ConsumerGroupHeartbeat, 1, req.into()) {
            ResponseBody::ConsumerGroupHeartbeat(r) => r,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn commit(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        topic: &str,
        p: i32,
        offset: i64,
    ) -> i16 {
        let req = m::OffsetCommitRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_member_id(sb(member))
            .with_generation_id_or_member_epoch(epoch)
            .with_topics(vec![
                m::offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![
                        m::offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(-1),
                    ]),
            ]);
        match self.call(ApiKey::OffsetCommit, 9, req.into()) {
            ResponseBody::OffsetCommit(r) => r.topics[0].partitions[0].error_code,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// (group error, committed offset of `p`).
    fn fetch(
        &mut self,
        group: &str,
        member: Option<(&str, i32)>,
        topic: &str,
        p: i32,
    ) -> (i16, i64) {
        let g = m::offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb(group)))
            .with_member_id(member.map(|(id, _)| sb(id)))
            .with_member_epoch(member.map_or(-1, |(_, e)| e))
            .with_topics(Some(vec![
                m::offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partition_indexes(vec![p]),
            ]));
        let req = m::OffsetFetchRequest::default().with_groups(vec![g]);
        match self.call(ApiKey::OffsetFetch, 9, req.into()) {
            ResponseBody::OffsetFetch(r) => {
                let g = &r.groups[0];
                let off = g
                    .topics
                    .first()
                    .and_then(|t| t.partitions.first())
                    .map_or(-1, |p| p.committed_offset);
                (g.error_code, off)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    /// Every committed offset of a group (OffsetFetch without topics): (topic, partition)
    /// → offset.
    fn fetch_all(&mut self, group: &str) -> BTreeMap<(String, i32), i64> {
        let g = m::offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb(group)))
            .with_member_epoch(-1)
            .with_topics(None);
        let req = m::OffsetFetchRequest::default().with_groups(vec![g]);
        match self.call(ApiKey::OffsetFetch, 9, req.into()) {
            ResponseBody::OffsetFetch(r) => {
                let g = &r.groups[0];
                assert_eq!(g.error_code, 0, "OffsetFetch of {group}");
                g.topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(move |p| {
                            (
                                (t.name.0.to_string(), p.partition_index),
                                p.committed_offset,
                            )
                        })
                    })
                    .collect()
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn assigned(r: &m::ConsumerGroupHeartbeatResponse) -> Option<Vec<i32>> {
    r.assignment.as_ref().map(|a| {
        let mut ps: Vec<i32> = a
            .topic_partitions
            .iter()
            .flat_map(|t| t.partitions.clone())
            .collect();
        ps.sort();
        ps
    })
}

const UNKNOWN_MEMBER_ID: i16 = 25;
const FENCED_MEMBER_EPOCH: i16 = 110;
const STALE_MEMBER_EPOCH: i16 = 113;

/// Member epochs, the reconciliation rule, epoch checks of OffsetCommit/OffsetFetch,
/// ConsumerGroupDescribe/ListGroups/DescribeGroups, and committed offsets across a
/// restart, over raw requests.
#[test]
fn kip848_epochs_reconciliation_and_offsets_over_raw_requests() {
    let mut broker = TestBroker::start_with(group_broker_opts());
    let (topic, group) = ("raw848", "g-raw848");
    create_topic(&broker.bootstrap(), topic, 4);
    let mut c = Raw::connect(&broker);

    // a joins alone: epoch 1, all four partitions.
    let a = c.heartbeat(
        group,
        "member-a",
        0,
        Some(topic),
        Some((uuid::Uuid::nil(), vec![])),
    );
    assert_eq!(a.error_code, 0, "{a:?}");
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.heartbeat_interval_ms, 500);
    assert_eq!(assigned(&a), Some(vec![0, 1, 2, 3]));
    let topic_id = a.assignment.as_ref().unwrap().topic_partitions[0].topic_id;
    assert!(!topic_id.is_nil());

    // Commits are checked against the member epoch.
    assert_eq!(c.commit(group, "member-a", 1, topic, 0, 10), 0);
    assert_eq!(
        c.commit(group, "member-a", 0, topic, 0, 11),
        STALE_MEMBER_EPOCH
    );
    assert_eq!(
        c.commit(group, "member-a", 7, topic, 0, 11),
        STALE_MEMBER_EPOCH
    );
    assert_eq!(
        c.commit(group, "nobody", 1, topic, 0, 11),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(c.fetch(group, Some(("member-a", 1)), topic, 0), (0, 10));
    assert_eq!(
        c.fetch(group, Some(("member-a", 3)), topic, 0).0,
        STALE_MEMBER_EPOCH
    );
    assert_eq!(
        c.fetch(group, Some(("nobody", 1)), topic, 0).0,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(c.fetch(group, None, topic, 0), (0, 10));

    // b joins: group epoch 2, but nothing for b until a revoked.
    let b = c.heartbeat(group, "member-b", 0, Some(topic), Some((topic_id, vec![])));
    assert_eq!(b.member_epoch, 2);
    assert_eq!(assigned(&b), Some(vec![]));
    let a = c.heartbeat(
        group,
        "member-a",
        1,
        None,
        Some((topic_id, vec![0, 1, 2, 3])),
    );
    assert_eq!(a.member_epoch, 1, "a keeps its epoch while it revokes");
    let kept = assigned(&a).expect("a is told what to keep");
    assert_eq!(kept.len(), 2);
    let b = c.heartbeat(group, "member-b", 2, None, None);
    assert_eq!(assigned(&b), None, "b gets nothing a still owns: {b:?}");
    // a can still commit at epoch 1 while revoking.
    assert_eq!(c.commit(group, "member-a", 1, topic, 1, 20), 0);
    // A wrong epoch on a heartbeat is fenced.
    assert_eq!(
        c.heartbeat(group, "member-b", 5, None, None).error_code,
        FENCED_MEMBER_EPOCH
    );
    assert_eq!(
        c.heartbeat(group, "nobody", 3, None, None).error_code,
        UNKNOWN_MEMBER_ID
    );
    // a acks: epoch 2; then b gets the other two.
    let a = c.heartbeat(group, "member-a", 1, None, Some((topic_id, kept.clone())));
    assert_eq!(a.member_epoch, 2);
    assert_eq!(
        c.commit(group, "member-a", 1, topic, 1, 21),
        STALE_MEMBER_EPOCH
    );
    let b = c.heartbeat(group, "member-b", 2, None, None);
    let b_parts = assigned(&b).expect("b's assignment");
    assert_eq!(b_parts.len(), 2);
    assert!(
        b_parts.iter().all(|p| !kept.contains(p)),
        "{kept:?} {b_parts:?}"
    );

    // ConsumerGroupDescribe, ListGroups, DescribeGroups.
    let d = match c.call(
        ApiKey::ConsumerGroupDescribe,
        0,
        m::ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(sb(group))])
            .into(),
    ) {
        ResponseBody::ConsumerGroupDescribe(r) => r,
        other => panic!("unexpected {other:?}"),
    };
    let g = &d.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.group_epoch, 2);
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 2);
    assert_eq!(g.group_state.as_str(), "Stable", "{g:?}");
    for mb in &g.members {
        let ps: usize = mb
            .assignment
            .topic_partitions
            .iter()
            .map(|t| t.partitions.len())
            .sum();
        assert_eq!(ps, 2, "{mb:?}");
        assert_eq!(
            mb.assignment.topic_partitions[0].topic_name.0.as_str(),
            topic
        );
        assert_eq!(mb.member_epoch, 2);
    }
    let l = match c.call(
        ApiKey::ListGroups,
        5,
        m::ListGroupsRequest::default().into(),
    ) {
        ResponseBody::ListGroups(r) => r,
        other => panic!("unexpected {other:?}"),
    };
    let listed = l
        .groups
        .iter()
        .find(|x| x.group_id.0.as_str() == group)
        .expect("listed");
    assert_eq!(listed.group_type.as_str(), "consumer");
    assert_eq!(listed.protocol_type.as_str(), "consumer");
    let dg = match c.call(
        ApiKey::DescribeGroups,
        5,
        m::DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(sb(group))])
            .into(),
    ) {
        ResponseBody::DescribeGroups(r) => r,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(dg.groups[0].protocol_type.as_str(), "consumer");
    assert_eq!(dg.groups[0].members.len(), 2);

    // a leaves (epoch -1): b gets everything at a new epoch.
    let l = c.heartbeat(group, "member-a", -1, None, None);
    assert_eq!((l.error_code, l.member_epoch), (0, -1));
    let b = c.heartbeat(group, "member-b", 2, None, Some((topic_id, b_parts)));
    assert_eq!(b.member_epoch, 3);
    assert_eq!(assigned(&b), Some(vec![0, 1, 2, 3]));

    // Committed offsets and the group's members, epochs and assignments survive a
    // kill -9: b carries on at epoch 3 with its partitions; a, which left, is unknown.
    let epoch_before = group_epoch(&broker, group);
    broker.kill9();
    broker.restart();
    let mut c = Raw::connect(&broker);
    assert_eq!(c.fetch(group, None, topic, 0), (0, 10));
    assert_eq!(c.fetch(group, None, topic, 1), (0, 20));
    assert_eq!(group_epoch(&broker, group), epoch_before);
    let b = c.heartbeat(
        group,
        "member-b",
        3,
        None,
        Some((topic_id, vec![0, 1, 2, 3])),
    );
    assert_eq!((b.error_code, b.member_epoch), (0, 3), "{b:?}");
    assert_eq!(assigned(&b), None, "assignment unchanged: not resent");
    assert_eq!(c.fetch(group, Some(("member-b", 3)), topic, 0), (0, 10));
    assert_eq!(
        c.heartbeat(group, "member-a", 2, None, None).error_code,
        UNKNOWN_MEMBER_ID
    );
    let described = match c.call(
        ApiKey::ConsumerGroupDescribe,
        0,
        m::ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(sb(group))])
            .into(),
    ) {
        ResponseBody::ConsumerGroupDescribe(r) => r,
        other => panic!("unexpected {other:?}"),
    };
    let g = &described.groups[0];
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.members[0].member_id.as_str(), "member-b");
    assert_eq!(g.members[0].member_epoch, 3);
    // Rejoining with epoch 0 still works.
    let b = c.heartbeat(group, "member-b", 0, Some(topic), Some((topic_id, vec![])));
    assert_eq!(b.error_code, 0, "{b:?}");
    assert_eq!(assigned(&b), Some(vec![0, 1, 2, 3]));
}

/// A static member (`group.instance.id`) that closes (leaving with epoch -2) and comes
/// back within the session timeout gets its partitions back; the other member sees no
/// rebalance.
#[test]
fn kip848_static_member_restart_keeps_partitions() {
    let broker = TestBroker::start_with(group_broker_opts());
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("static848", "g-static848");
    create_topic(&bootstrap, topic, 6);
    let journal = Arc::new(Journal::default());
    let spawn = |name: &'static str, instance: &'static str| {
        ChildConsumer::spawn(
            ChildSpec {
                bootstrap: &bootstrap,
                group,
                topic,
                name,
                instance: Some(instance),
                strategy: "",
                protocol: "consumer",
                session_ms: 0,
            },
            journal.clone(),
        )
    };
    let mut a = spawn("a", "inst-a");
    let mut b = spawn("b", "inst-b");
    wait_for_assignment(
        &journal,
        &["a", "b"],
        6,
        "two static members share 6 partitions",
    );
    thread::sleep(Duration::from_secs(2));
    let a_parts = journal.owned("a");
    let b_events = journal.count("b", |e| matches!(e, Ev::Assign(..) | Ev::Revoke(..)));
    let epoch_before = group_epoch(&broker, group);
    a.close();
    let mut a2 = spawn("a2", "inst-a");
    eventually(
        Duration::from_secs(30),
        "the restarted static member gets its partitions",
        || (!journal.owned("a2").is_empty()).then_some(()),
    );
    thread::sleep(Duration::from_secs(3));
    assert_eq!(
        journal.owned("a2"),
        a_parts,
        "static member came back to other partitions\n{}",
        journal.dump()
    );
    assert_eq!(
        journal.count("b", |e| matches!(e, Ev::Assign(..) | Ev::Revoke(..))),
        b_events,
        "the other member went through a rebalance\n{}",
        journal.dump()
    );
    assert_eq!(
        group_epoch(&broker, group),
        epoch_before,
        "the group epoch moved (a rebalance)"
    );
    a2.close();
    b.close();
    if let Err(e) = check_no_overlap(&journal, now_ms()) {
        panic!("two owners at once: {e}\n{}", journal.dump());
    }
}

fn group_epoch(broker: &TestBroker, group: &str) -> i32 {
    let mut raw = Raw::connect(broker);
    match raw.call(
        ApiKey::ConsumerGroupDescribe,
        0,
        m::ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(sb(group))])
            .into(),
    ) {
        ResponseBody::ConsumerGroupDescribe(r) => r.groups[0].group_epoch,
        other => panic!("unexpected {other:?}"),
    }
}

/// (member id, member epoch) of every member of a consumer group, sorted.
fn consumer_members(broker: &TestBroker, group: &str) -> Vec<(String, i32)> {
    let mut raw = Raw::connect(broker);
    match raw.call(
        ApiKey::ConsumerGroupDescribe,
        0,
        m::ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(sb(group))])
            .into(),
    ) {
        ResponseBody::ConsumerGroupDescribe(r) => {
            let mut out: Vec<(String, i32)> = r.groups[0]
                .members
                .iter()
                .map(|mb| (mb.member_id.to_string(), mb.member_epoch))
                .collect();
            out.sort();
            out
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// KIP-848 membership survives a broker kill -9: librdkafka consumers with
/// `group.protocol=consumer` keep their member ids, epochs and partitions across the
/// crash and restart, with no assign/revoke callback, and nobody is expired after the
/// session timeout.
#[test]
fn kip848_membership_survives_kill9() {
    let proxy = FaultProxy::start();
    let mut opts = group_broker_opts();
    opts.advertised_listener = Some(proxy.addr().to_string());
    let mut broker = TestBroker::start_with(opts);
    proxy.set_upstream(broker.addr());
    let bootstrap = proxy.addr().to_string();
    let (topic, group) = ("kill848", "g-kill848");
    create_topic(&bootstrap, topic, 6);
    let journal = Arc::new(Journal::default());
    let spawn = |name: &'static str| {
        ChildConsumer::spawn(
            ChildSpec {
                bootstrap: &bootstrap,
                group,
                topic,
                name,
                instance: None,
                strategy: "",
                protocol: "consumer",
                session_ms: 0,
            },
            journal.clone(),
        )
    };
    let mut a = spawn("a");
    let mut b = spawn("b");
    wait_for_assignment(&journal, &["a", "b"], 6, "two members share 6 partitions");
    thread::sleep(Duration::from_secs(3));
    let owned_before = (journal.owned("a"), journal.owned("b"));
    let callbacks =
        |who: &str| journal.count(who, |e| matches!(e, Ev::Assign(..) | Ev::Revoke(..)));
    let callbacks_before = (callbacks("a"), callbacks("b"));
    let members_before = consumer_members(&broker, group);
    let epoch_before = group_epoch(&broker, group);
    assert_eq!(members_before.len(), 2, "{members_before:?}");

    broker.kill9();
    proxy.sever_all();
    broker.restart();
    proxy.set_upstream(broker.addr());
    assert_eq!(
        consumer_members(&broker, group),
        members_before,
        "members and epochs came back from __consumer_offsets"
    );
    // Past the session timeout (6 s): a member that had not come back would expire.
    thread::sleep(Duration::from_secs(10));
    assert_eq!(consumer_members(&broker, group), members_before);
    assert_eq!(
        group_epoch(&broker, group),
        epoch_before,
        "a rebalance happened"
    );
    assert_eq!(
        (journal.owned("a"), journal.owned("b")),
        owned_before,
        "{}",
        journal.dump()
    );
    assert_eq!(
        (callbacks("a"), callbacks("b")),
        callbacks_before,
        "a member was assigned or revoked partitions across the restart\n{}",
        journal.dump()
    );
    a.close();
    b.close();
    if let Err(e) = check_no_overlap(&journal, now_ms()) {
        panic!("two owners at once: {e}\n{}", journal.dump());
    }
}

// ---------------------------------------------------------------------------------------
// Regex subscriptions (KIP-848, resolved by the broker)
// ---------------------------------------------------------------------------------------

/// KIP-848 consumers in this process, polled in turn; what each consumed, by topic.
struct RegexMembers {
    consumers: Vec<BaseConsumer>,
    consumed: Vec<BTreeMap<String, usize>>,
    errors: Vec<String>,
}

impl RegexMembers {
    fn new() -> RegexMembers {
        RegexMembers {
            consumers: Vec::new(),
            consumed: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn join(&mut self, bootstrap: &str, group: &str, subscription: &str) {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("group.protocol", "consumer")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        // librdkafka takes a subscription starting with `^` as a regex.
        c.subscribe(&[subscription]).expect("subscribe");
        self.consumers.push(c);
        self.consumed.push(BTreeMap::new());
    }

    /// Poll every member for `d`.
    fn pump(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            for (i, c) in self.consumers.iter().enumerate() {
                match c.poll(Duration::from_millis(20)) {
                    Some(Ok(m)) => {
                        *self.consumed[i].entry(m.topic().to_string()).or_default() += 1;
                    }
                    Some(Err(e)) => self.errors.push(format!("member {i}: {e}")),
                    None => {}
                }
            }
        }
    }

    fn assignment(&self, i: usize) -> BTreeSet<(String, i32)> {
        self.consumers[i]
            .assignment()
            .expect("assignment")
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect()
    }

    /// Pump until the members' assignments are disjoint, none empty, and together
    /// exactly `want`.
    fn wait_for(&mut self, want: &BTreeSet<(String, i32)>, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.pump(Duration::from_millis(200));
            let each: Vec<BTreeSet<(String, i32)>> = (0..self.consumers.len())
                .map(|i| self.assignment(i))
                .collect();
            let total: usize = each.iter().map(BTreeSet::len).sum();
            let union: BTreeSet<(String, i32)> = each.iter().flatten().cloned().collect();
            if total == union.len() && &union == want && each.iter().all(|a| !a.is_empty()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: assignments {each:?}, wanted {want:?}; errors {:?}",
                self.errors
            );
        }
    }
}

fn tps(list: &[(&str, i32)]) -> BTreeSet<(String, i32)> {
    list.iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| (t.to_string(), p)))
        .collect()
}

/// One record on every partition of `topic`.
fn produce_each_partition(bootstrap: &str, topic: &str, partitions: i32) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    for p in 0..partitions {
        producer
            .send(BaseRecord::to(topic).partition(p).key("k").payload("v"))
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
}

fn describe_members(
    broker: &TestBroker,
    group: &str,
) -> Vec<m::consumer_group_describe_response::Member> {
    let mut raw = Raw::connect(broker);
    match raw.call(
        ApiKey::ConsumerGroupDescribe,
        0,
        m::ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(sb(group))])
            .into(),
    ) {
        ResponseBody::ConsumerGroupDescribe(r) => r.groups[0].members.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

/// librdkafka subscribes `^orders-.*` with `group.protocol=consumer`; it sends the regex
/// (as `(^orders-.*)`) in ConsumerGroupHeartbeat and the broker resolves it: existing
/// matching topics are assigned, a new matching topic joins the assignment and a deleted
/// one leaves it, a topic that does not match never does, two members share the
/// partitions with one owner each, and all of it survives a broker kill -9.
#[test]
fn kip848_regex_subscription() {
    let proxy = FaultProxy::start();
    let mut opts = group_broker_opts();
    opts.advertised_listener = Some(proxy.addr().to_string());
    let mut broker = TestBroker::start_with(opts);
    proxy.set_upstream(broker.addr());
    let bootstrap = proxy.addr().to_string();
    let group = "g-regex848";
    for (t, n) in [("orders-eu", 3), ("orders-us", 2), ("billing", 2)] {
        create_topic(&bootstrap, t, n);
        produce_each_partition(&bootstrap, t, n);
    }
    let mut members = RegexMembers::new();
    members.join(&bootstrap, group, "^orders-.*");
    members.wait_for(
        &tps(&[("orders-eu", 3), ("orders-us", 2)]),
        "the existing matching topics are assigned",
    );
    let described = describe_members(&broker, group);
    assert_eq!(described.len(), 1);
    assert_eq!(
        described[0].subscribed_topic_regex.as_deref(),
        Some("(^orders-.*)"),
        "librdkafka combines its regexes as (^a)|(^b): {:?}",
        described[0]
    );

    // The Java client learns a regex member's topics by id, sending an empty name.
    let topic_id = match Raw::connect(&broker).call(
        ApiKey::Metadata,
        12,
        m::MetadataRequest::default()
            .with_topics(Some(vec![
                m::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(sb("orders-eu")))),
            ]))
            .into(),
    ) {
        ResponseBody::Metadata(r) => r.topics[0].topic_id,
        other => panic!("unexpected {other:?}"),
    };
    match Raw::connect(&broker).call(
        ApiKey::Metadata,
        12,
        m::MetadataRequest::default()
            .with_topics(Some(vec![
                m::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(sb(""))))
                    .with_topic_id(topic_id),
            ]))
            .into(),
    ) {
        ResponseBody::Metadata(r) => {
            assert_eq!(r.topics[0].error_code, 0, "{r:?}");
            assert_eq!(
                r.topics[0].name.as_ref().map(|n| n.0.as_str()),
                Some("orders-eu")
            );
            assert_eq!(r.topics[0].partitions.len(), 3);
        }
        other => panic!("unexpected {other:?}"),
    }

    // A second member: the partitions are shared, one owner each.
    members.join(&bootstrap, group, "^orders-.*");
    members.wait_for(
        &tps(&[("orders-eu", 3), ("orders-us", 2)]),
        "two members share the matching partitions",
    );

    // A new matching topic is assigned (and consumed); a new non-matching one is not.
    create_topic(&bootstrap, "orders-asia", 2);
    create_topic(&bootstrap, "orders_x", 1);
    produce_each_partition(&bootstrap, "orders-asia", 2);
    produce_each_partition(&bootstrap, "orders_x", 1);
    let created = Instant::now();
    let mut want = tps(&[("orders-eu", 3), ("orders-us", 2), ("orders-asia", 2)]);
    members.wait_for(&want, "a new matching topic is assigned");
    eprintln!(
        "orders-asia assigned {:?} after its creation",
        created.elapsed()
    );
    members.pump(Duration::from_secs(2));
    let consumed = |members: &RegexMembers, t: &str| -> usize {
        members.consumed.iter().filter_map(|c| c.get(t)).sum()
    };
    // Nothing is committed, so a partition that moved is read again by its new owner.
    for (t, n) in [("orders-eu", 3), ("orders-us", 2), ("orders-asia", 2)] {
        assert!(
            consumed(&members, t) >= n,
            "records of {t}: {:?}",
            members.consumed
        );
    }
    assert_eq!(consumed(&members, "billing"), 0);
    assert_eq!(consumed(&members, "orders_x"), 0);

    // A deleted matching topic leaves the assignment.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    for r in
        block_on(admin.delete_topics(&["orders-us"], &AdminOptions::new())).expect("delete topics")
    {
        r.expect("topic deleted");
    }
    want = tps(&[("orders-eu", 3), ("orders-asia", 2)]);
    members.wait_for(&want, "a deleted topic leaves the assignment");

    // kill -9: the members keep their ids, epochs and partitions, and the regex is
    // still resolved for topics created after the restart.
    members.pump(Duration::from_secs(2));
    let before: Vec<_> = (0..2).map(|i| members.assignment(i)).collect();
    let members_before = consumer_members(&broker, group);
    let epoch_before = group_epoch(&broker, group);
    broker.kill9();
    proxy.sever_all();
    broker.restart();
    proxy.set_upstream(broker.addr());
    assert_eq!(consumer_members(&broker, group), members_before);
    assert_eq!(group_epoch(&broker, group), epoch_before);
    members.pump(Duration::from_secs(8));
    assert_eq!(
        (0..2).map(|i| members.assignment(i)).collect::<Vec<_>>(),
        before,
        "assignments moved across the restart"
    );
    assert_eq!(
        group_epoch(&broker, group),
        epoch_before,
        "a rebalance happened"
    );
    let described = describe_members(&broker, group);
    assert!(described
        .iter()
        .all(|mb| mb.subscribed_topic_regex.as_deref() == Some("(^orders-.*)")));
    create_topic(&bootstrap, "orders-latam", 1);
    want.insert(("orders-latam".to_string(), 0));
    members.wait_for(&want, "a topic created after the restart is assigned");
}

/// An invalid regex gets INVALID_REGULAR_EXPRESSION with Kafka's message and leaves the
/// group unchanged: from a raw heartbeat, and from librdkafka, whose member then never
/// joins until it subscribes a valid regex.
#[test]
fn kip848_invalid_regex_is_refused() {
    const INVALID_REGULAR_EXPRESSION: i16 = 128;
    let broker = TestBroker::start_with(group_broker_opts());
    let bootstrap = broker.bootstrap();
    let group = "g-badregex848";
    create_topic(&bootstrap, "orders-eu", 1);
    let mut c = Raw::connect(&broker);
    let req = m::ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![]))
        .with_subscribed_topic_regex(Some(sb("orders-[")))
        .with_topic_partitions(Some(vec![]));
    let r = match c.call(ApiKey::ConsumerGroupHeartbeat, 1, req.into()) {
        ResponseBody::ConsumerGroupHeartbeat(r) => r,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(r.error_code, INVALID_REGULAR_EXPRESSION, "{r:?}");
    assert_eq!(
        r.error_message.as_deref(),
        Some("SubscribedTopicRegex `orders-[` is not a valid regular expression: unclosed character class.")
    );
    assert!(consumer_members(&broker, group).is_empty());

    // librdkafka compiles a regex itself (POSIX) before sending it, so `^orders-[`
    // fails in subscribe(). A backreference passes that check but not RE2's: librdkafka
    // sends it, the broker refuses every heartbeat and the member never joins.
    // (librdkafka 2.12 does not know error 128: it retries and reports nothing.)
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .create()
        .expect("consumer");
    assert!(consumer.subscribe(&["^orders-["]).is_err());
    consumer.subscribe(&["^(orders)-\\1"]).expect("subscribe");
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    assert_eq!(consumer.assignment().expect("assignment").count(), 0);
    assert!(consumer_members(&broker, group).is_empty());
    // The same broker takes a valid regex from the same client.
    consumer.subscribe(&["^orders-.*"]).expect("subscribe");
    eventually(Duration::from_secs(20), "a valid regex joins", || {
        let _ = consumer.poll(Duration::from_millis(100));
        (consumer.assignment().expect("assignment").count() == 1).then_some(())
    });
    assert_eq!(consumer_members(&broker, group).len(), 1);
}

/// Deleting a topic deletes the groups' committed offsets of it (tombstones in
/// `__consumer_offsets`, so they stay gone after a restart); other topics' offsets stay.
#[test]
fn offsets_of_a_deleted_topic_are_removed_durably() {
    let mut broker = TestBroker::start_with(group_broker_opts());
    let bootstrap = broker.bootstrap();
    let (gone, kept, group) = ("offsets-gone-t", "offsets-kept-t", "g-topic-delete");
    create_topic(&bootstrap, gone, 2);
    create_topic(&bootstrap, kept, 2);

    // Commit (as a simple consumer: assign, no subscription) on both topics.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for (t, base) in [(gone, 100), (kept, 200)] {
        for p in 0..2 {
            tpl.add_partition_offset(t, p, Offset::Offset(base + i64::from(p)))
                .unwrap();
        }
    }
    consumer.assign(&tpl).expect("assign");
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
    let mut kept_tpl = TopicPartitionList::new();
    kept_tpl.add_partition(kept, 0);
    kept_tpl.add_partition(kept, 1);
    let want_kept: BTreeMap<(String, i32), i64> =
        [((kept.to_string(), 0), 200), ((kept.to_string(), 1), 201)].into();
    let mut want_all = want_kept.clone();
    want_all.insert((gone.to_string(), 0), 100);
    want_all.insert((gone.to_string(), 1), 101);
    assert_eq!(Raw::connect(&broker).fetch_all(group), want_all);
    drop(consumer);

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let res = block_on(admin.delete_topics(
        &[gone],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))
    .expect("delete topics");
    for r in res {
        r.expect("topic deleted");
    }
    drop(admin);

    let check = |broker: &TestBroker, when: &str| {
        let mut raw = Raw::connect(broker);
        assert_eq!(
            raw.fetch_all(group),
            want_kept,
            "committed offsets of {group} {when}"
        );
        for p in 0..2 {
            assert_eq!(
                raw.fetch(group, None, gone, p),
                (0, -1),
                "offset of {gone}-{p} {when}"
            );
        }
        // The same through librdkafka, for the topic that is still there.
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("group.id", group)
            .create()
            .expect("consumer");
        let committed = c
            .committed_offsets(kept_tpl.clone(), Duration::from_secs(10))
            .expect("committed offsets");
        for e in committed.elements() {
            assert_eq!(
                e.offset(),
                Offset::Offset(200 + i64::from(e.partition())),
                "{kept}-{} {when}",
                e.partition()
            );
        }
    };
    check(&broker, "after the topic was deleted");
    // The tombstones are in __consumer_offsets: a replay does not bring the offsets back.
    broker.restart();
    check(&broker, "after a restart");
    broker.kill9();
    broker.restart();
    check(&broker, "after a kill -9 and restart");
}
