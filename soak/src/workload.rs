//! The clients of a soak run, all librdkafka: idempotent producers, transactional
//! producers, a committing consumer group and a read_committed reader. Each records
//! what it does and sees into the shared history, and stops when `stop` is set.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::Semaphore;

use crate::history::{Event, Isolation, Recorder};

/// Records a producer may have in flight: bounds the client's memory and the history's
/// unanswered tail.
const IN_FLIGHT: u32 = 200;
/// librdkafka's own delivery timeout: long enough to ride out a restart of the broker,
/// short enough that a partition left offline by a storage fault gives up in the run.
const MESSAGE_TIMEOUT_MS: &str = "30000";

pub struct Shared {
    pub bootstrap: String,
    pub rec: Arc<Recorder>,
    pub stop: Arc<AtomicBool>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        // Reconnect quickly after a restart.
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("log_level", "3");
    c
}

/// An idempotent producer (acks=all) writing `producer-partition-seq` values to every
/// partition in turn, at about `rate` records a second.
pub async fn idempotent_producer(
    sh: Arc<Shared>,
    name: String,
    topic: String,
    partitions: i32,
    rate: u32,
) -> Result<(), String> {
    let producer: FutureProducer = client_config(&sh.bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS)
        .create()
        .map_err(|e| format!("{name}: {e}"))?;
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT as usize));
    let mut seqs = vec![0u64; partitions as usize];
    let pause = Duration::from_micros(1_000_000 / u64::from(rate.max(1)));
    let mut p = 0;
    while !sh.stopped() {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let seq = seqs[p as usize];
        seqs[p as usize] += 1;
        let value = format!("{name}-{p}-{seq}");
        sh.rec.record(&Event::Send {
            t: sh.rec.now(),
            producer: name.clone(),
            topic: topic.clone(),
            partition: p,
            seq,
            value: value.clone(),
            txn: None,
        });
        let (producer, sh2, topic2) = (producer.clone(), sh.clone(), topic.clone());
        let key = name.clone();
        tokio::spawn(async move {
            let record = FutureRecord::to(&topic2)
                .partition(p)
                .key(&key)
                .payload(&value);
            let result = producer.send(record, Timeout::Never).await;
            record_delivery(
                &sh2,
                &topic2,
                p,
                value.clone(),
                result.map(|d| d.offset).map_err(|(e, _)| e),
            );
            drop(permit);
        });
        p = (p + 1) % partitions;
        tokio::time::sleep(pause).await;
    }
    // Wait for every record's answer (librdkafka gives up at its message timeout).
    let _ = in_flight.acquire_many(IN_FLIGHT).await;
    Ok(())
}

fn record_delivery(
    sh: &Shared,
    topic: &str,
    partition: i32,
    value: String,
    result: Result<i64, KafkaError>,
) {
    let t = sh.rec.now();
    match result {
        Ok(offset) => sh.rec.record(&Event::Ack {
            t,
            topic: topic.into(),
            partition,
            value,
            offset,
        }),
        Err(e) => sh.rec.record(&Event::SendFailed {
            t,
            topic: topic.into(),
            partition,
            value,
            error: e.to_string(),
        }),
    }
}

/// A transactional producer: transactions of 1 to 4 records over random partitions, a
/// third of them aborted on purpose. A fatal error (fenced, or its state lost in a
/// crash) makes a new producer with the same transactional id, as an application would.
pub fn transactional_producer(
    sh: Arc<Shared>,
    name: String,
    topic: String,
    partitions: i32,
    seed: u64,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut seqs = vec![0u64; partitions as usize];
    let mut txn = 0u64;
    let timeout = Duration::from_secs(30);
    'producer: while !sh.stopped() {
        let producer: FutureProducer = client_config(&sh.bootstrap)
            .set("transactional.id", &name)
            .set("transaction.timeout.ms", "10000")
            .set("message.timeout.ms", "10000")
            .set("linger.ms", "2")
            .create()
            .map_err(|e| format!("{name}: {e}"))?;
        if let Err(e) = producer.init_transactions(timeout) {
            eprintln!("soak: {name}: init_transactions: {e}");
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        while !sh.stopped() {
            if let Err(e) = producer.begin_transaction() {
                eprintln!("soak: {name}: begin_transaction: {e}");
                continue 'producer;
            }
            let n = rng.usize(1..=4);
            let mut deliveries = Vec::new();
            for i in 0..n {
                let p = rng.i32(0..partitions);
                let seq = seqs[p as usize];
                seqs[p as usize] += 1;
                let value = format!("{name}-t{txn}-{i}-p{p}");
                sh.rec.record(&Event::Send {
                    t: sh.rec.now(),
                    producer: name.clone(),
                    topic: topic.clone(),
                    partition: p,
                    seq,
                    value: value.clone(),
                    txn: Some(txn),
                });
                let record = FutureRecord::to(&topic)
                    .partition(p)
                    .key(&name)
                    .payload(&value);
                match producer.send_result(record) {
                    Ok(future) => deliveries.push((p, value, Some(future))),
                    Err((e, _)) => {
                        record_delivery(&sh, &topic, p, value.clone(), Err(e));
                        deliveries.push((p, value, None));
                    }
                }
            }
            let mut all_ok = true;
            for (p, value, future) in deliveries {
                let Some(future) = future else {
                    all_ok = false;
                    continue;
                };
                let result = match rt.block_on(future) {
                    Ok(Ok(d)) => Ok(d.offset),
                    Ok(Err((e, _))) => Err(e),
                    Err(_) => Err(KafkaError::Canceled),
                };
                all_ok &= result.is_ok();
                record_delivery(&sh, &topic, p, value, result);
            }
            let commit = all_ok && rng.u8(0..3) != 0;
            let fatal = end_transaction(&sh, &producer, &name, txn, commit, timeout);
            txn += 1;
            if fatal {
                continue 'producer;
            }
        }
    }
    Ok(())
}

/// Commit or abort, retrying what librdkafka says may be retried; every attempt goes
/// into the history (the last confirmed one decides). True if the producer is done for.
fn end_transaction(
    sh: &Shared,
    producer: &FutureProducer,
    name: &str,
    txn: u64,
    mut commit: bool,
    timeout: Duration,
) -> bool {
    for _ in 0..5 {
        let result = if commit {
            producer.commit_transaction(timeout)
        } else {
            producer.abort_transaction(timeout)
        };
        sh.rec.record(&Event::TxnEnd {
            t: sh.rec.now(),
            producer: name.into(),
            txn,
            commit,
            acked: result.is_ok(),
            error: result.as_ref().err().map(|e| e.to_string()),
        });
        let Err(e) = result else {
            return false;
        };
        let KafkaError::Transaction(rd) = &e else {
            eprintln!("soak: {name}: end of transaction {txn}: {e}");
            return true;
        };
        if rd.is_fatal() {
            return true;
        }
        if rd.txn_requires_abort() {
            commit = false;
        } else if !rd.is_retriable() {
            return true;
        }
    }
    true
}

/// A group member's view of its assignment, shared with its rebalance callbacks.
struct MemberContext {
    sh: Arc<Shared>,
    group: String,
    name: String,
    session: AtomicU64,
    /// Per assigned partition, the next offset to commit (last polled + 1).
    positions: Mutex<HashMap<(String, i32), i64>>,
    assigned: Mutex<BTreeSet<(String, i32)>>,
}

impl MemberContext {
    /// Commit the positions of the given (or all assigned) partitions, synchronously.
    fn commit(
        &self,
        consumer: &BaseConsumer<MemberContext>,
        only: Option<&BTreeSet<(String, i32)>>,
    ) {
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let assigned = self
            .assigned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut tpl = TopicPartitionList::new();
        let mut list = Vec::new();
        for (tp, offset) in positions {
            if !assigned.contains(&tp) || only.is_some_and(|o| !o.contains(&tp)) {
                continue;
            }
            if tpl
                .add_partition_offset(&tp.0, tp.1, Offset::Offset(offset))
                .is_ok()
            {
                list.push((tp, offset));
            }
        }
        if list.is_empty() {
            return;
        }
        let result = consumer.commit(&tpl, CommitMode::Sync);
        let t = self.sh.rec.now();
        for ((topic, partition), offset) in list {
            self.sh.rec.record(&Event::Commit {
                t,
                group: self.group.clone(),
                member: self.name.clone(),
                topic,
                partition,
                offset,
                acked: result.is_ok(),
            });
        }
    }
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let lost = consumer.assignment_lost();
        let revoked: BTreeSet<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        // A clean handover commits what was consumed; a lost assignment cannot.
        if !lost {
            self.commit(consumer, Some(&revoked));
        }
        let t = self.sh.rec.now();
        let mut assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
        let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        for tp in revoked {
            if assigned.remove(&tp) {
                self.sh.rec.record(&Event::Revoke {
                    t,
                    group: self.group.clone(),
                    member: self.name.clone(),
                    topic: tp.0.clone(),
                    partition: tp.1,
                    lost,
                });
            }
            positions.remove(&tp);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else {
            return;
        };
        let session = self.session.fetch_add(1, Ordering::SeqCst) + 1;
        let t = self.sh.rec.now();
        let mut assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
        for e in tpl.elements() {
            assigned.insert((e.topic().to_string(), e.partition()));
            self.sh.rec.record(&Event::Assign {
                t,
                group: self.group.clone(),
                member: self.name.clone(),
                session,
                topic: e.topic().into(),
                partition: e.partition(),
            });
        }
    }
}

/// Which group protocol the members speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup, eager rebalances.
    Classic,
    /// KIP-848 ConsumerGroupHeartbeat, incremental assignments.
    Consumer,
}

/// A member of a consumer group that commits what it polled every `commit_every`, and
/// on every revocation.
pub fn group_member(
    sh: Arc<Shared>,
    group: String,
    name: String,
    topic: String,
    protocol: GroupProtocol,
    session_timeout_ms: u32,
    commit_every: Duration,
) -> Result<(), String> {
    let ctx = MemberContext {
        sh: sh.clone(),
        group: group.clone(),
        name: name.clone(),
        session: AtomicU64::new(0),
        positions: Mutex::new(HashMap::new()),
        assigned: Mutex::new(BTreeSet::new()),
    };
    let mut config = client_config(&sh.bootstrap);
    config
        .set("group.id", &group)
        .set("client.id", &name)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    match protocol {
        GroupProtocol::Classic => config
            .set("session.timeout.ms", session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", "500"),
        // The broker sets the session and heartbeat of a KIP-848 group.
        GroupProtocol::Consumer => config.set("group.protocol", "consumer"),
    };
    let consumer: BaseConsumer<MemberContext> = config
        .create_with_context(ctx)
        .map_err(|e| format!("{name}: {e}"))?;
    consumer
        .subscribe(&[topic.as_str()])
        .map_err(|e| format!("{name}: subscribe: {e}"))?;
    let mut last_commit = Instant::now();
    while !sh.stopped() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let ctx = consumer.context();
                let tp = (m.topic().to_string(), m.partition());
                sh.rec.record(&Event::Poll {
                    t: sh.rec.now(),
                    reader: name.clone(),
                    session: ctx.session.load(Ordering::SeqCst),
                    isolation: Isolation::ReadCommitted,
                    topic: tp.0.clone(),
                    partition: tp.1,
                    offset: m.offset(),
                    value: payload(&m),
                });
                ctx.positions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(tp, m.offset() + 1);
            }
            Some(Err(e)) => quiet_poll_error(&name, &e),
            None => {}
        }
        if last_commit.elapsed() >= commit_every {
            consumer.context().commit(&consumer, None);
            last_commit = Instant::now();
        }
    }
    consumer.context().commit(&consumer, None);
    // Leave the group: the revocation (and its commit) runs in a poll.
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && !consumer
            .context()
            .assigned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    // Whatever was not revoked in time is given up now, as the member leaves.
    let ctx = consumer.context();
    let t = sh.rec.now();
    for (topic, partition) in
        std::mem::take(&mut *ctx.assigned.lock().unwrap_or_else(|p| p.into_inner()))
    {
        sh.rec.record(&Event::Revoke {
            t,
            group: group.clone(),
            member: name.clone(),
            topic,
            partition,
            lost: false,
        });
    }
    Ok(())
}

/// The broker's restarts make every poll in the gap fail: say only what is unexpected.
fn quiet_poll_error(name: &str, e: &KafkaError) {
    use rdkafka::types::RDKafkaErrorCode::{AllBrokersDown, BrokerTransportFailure};
    match e.rdkafka_error_code() {
        Some(BrokerTransportFailure | AllBrokersDown) => {}
        _ => eprintln!("soak: {name}: poll: {e}"),
    }
}

fn payload<M: Message>(m: &M) -> String {
    m.payload()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default()
}

struct Quiet;
impl ClientContext for Quiet {}
impl ConsumerContext for Quiet {}

fn assigned_reader(
    bootstrap: &str,
    name: &str,
    topic: &str,
    partitions: i32,
    isolation: Isolation,
) -> Result<BaseConsumer<Quiet>, String> {
    let consumer: BaseConsumer<Quiet> = client_config(bootstrap)
        .set("group.id", format!("soak-{name}"))
        .set("enable.auto.commit", "false")
        .set(
            "isolation.level",
            match isolation {
                Isolation::ReadCommitted => "read_committed",
                Isolation::ReadUncommitted => "read_uncommitted",
            },
        )
        .create_with_context(Quiet)
        .map_err(|e| format!("{name}: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| format!("{name}: assign: {e}"))?;
    Ok(consumer)
}

/// A reader of every partition of `topic` from the start (no group), recording polls.
pub fn reader(
    sh: Arc<Shared>,
    name: String,
    topic: String,
    partitions: i32,
    isolation: Isolation,
) -> Result<(), String> {
    let consumer = assigned_reader(&sh.bootstrap, &name, &topic, partitions, isolation)?;
    while !sh.stopped() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => sh.rec.record(&Event::Poll {
                t: sh.rec.now(),
                reader: name.clone(),
                session: 0,
                isolation,
                topic: topic.clone(),
                partition: m.partition(),
                offset: m.offset(),
                value: payload(&m),
            }),
            Some(Err(e)) => quiet_poll_error(&name, &e),
            None => {}
        }
    }
    Ok(())
}

/// The final read: every partition from offset 0 to its end (the high watermark, or for
/// read_committed the last stable offset), recorded as reader `name`.
pub fn final_read(
    sh: &Shared,
    name: &str,
    topic: &str,
    partitions: i32,
    isolation: Isolation,
    timeout: Duration,
) -> Result<(), String> {
    let consumer = assigned_reader(&sh.bootstrap, name, topic, partitions, isolation)?;
    let deadline = Instant::now() + timeout;
    let mut ends = Vec::new();
    // The high watermark, to know when read_committed's answer (the LSO) has caught up.
    let uncommitted = match isolation {
        Isolation::ReadCommitted => Some(assigned_reader(
            &sh.bootstrap,
            &format!("{name}-hw"),
            topic,
            partitions,
            Isolation::ReadUncommitted,
        )?),
        Isolation::ReadUncommitted => None,
    };
    let watermark = |c: &BaseConsumer<Quiet>, p: i32| {
        c.fetch_watermarks(topic, p, Duration::from_secs(10))
            .map(|(_, high)| high)
            .map_err(|e| format!("{name}: watermarks of {topic}-{p}: {e}"))
    };
    for p in 0..partitions {
        // With read_committed, ListOffsets answers the last stable offset: wait for
        // open transactions to end, so the read covers every decided one.
        loop {
            let high = watermark(&consumer, p)?;
            let hw = match &uncommitted {
                Some(c) => watermark(c, p)?,
                None => high,
            };
            if high >= hw || Instant::now() > deadline {
                ends.push(high);
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let mut next = vec![0i64; partitions as usize];
    let done = |next: &[i64], consumer: &BaseConsumer<Quiet>| -> Vec<bool> {
        let position = consumer.position().ok();
        (0..partitions as usize)
            .map(|p| {
                let at = position
                    .as_ref()
                    .and_then(|tpl| tpl.find_partition(topic, p as i32))
                    .and_then(|e| e.offset().to_raw())
                    .unwrap_or(0);
                next[p].max(at) >= ends[p]
            })
            .collect()
    };
    while Instant::now() < deadline && !done(&next, &consumer).iter().all(|d| *d) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                next[m.partition() as usize] = m.offset() + 1;
                sh.rec.record(&Event::Poll {
                    t: sh.rec.now(),
                    reader: name.into(),
                    session: 0,
                    isolation,
                    topic: topic.into(),
                    partition: m.partition(),
                    offset: m.offset(),
                    value: payload(&m),
                });
            }
            Some(Err(e)) => quiet_poll_error(name, &e),
            None => {}
        }
    }
    let reached = done(&next, &consumer);
    for p in 0..partitions {
        sh.rec.record(&Event::FinalEnd {
            t: sh.rec.now(),
            reader: name.into(),
            isolation,
            topic: topic.into(),
            partition: p,
            end: ends[p as usize],
            reached: reached[p as usize],
        });
    }
    Ok(())
}

/// The group's committed offsets, read back.
pub fn read_committed_offsets(
    sh: &Shared,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Result<(), String> {
    let consumer: BaseConsumer<Quiet> = client_config(&sh.bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create_with_context(Quiet)
        .map_err(|e| format!("committed offsets: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(15))
        .map_err(|e| format!("committed offsets of {group}: {e}"))?;
    for e in committed.elements() {
        if let Some(offset) = e.offset().to_raw().filter(|o| *o >= 0) {
            sh.rec.record(&Event::CommittedRead {
                t: sh.rec.now(),
                group: group.into(),
                topic: e.topic().into(),
                partition: e.partition(),
                offset,
            });
        }
    }
    Ok(())
}
