//! The broker driven by a real Kafka client: librdkafka through the `rdkafka` crate.
//!
//! Every test starts its own `runnel serve` (see `tests/support`) on an ephemeral port
//! with a temp data dir, and uses its own topics.
//!
//! - `codec_*`: 100k messages over 8 partitions with each compression codec, with
//!   headers, null and empty keys and values and 1 MiB values, consumed back in order per
//!   partition and compared byte for byte (key, value, headers, timestamp, offset).
//! - `idempotent_*`: an idempotent producer whose Produce responses are lost after the
//!   broker handled them (a proxy drops them), or whose broker is killed with SIGKILL
//!   mid-stream and restarted: no duplicate, no gap, in order.
//! - `acks_all_*`: everything acknowledged with acks=all is there after kill -9.
//! - `bad_input_*`: garbage, oversized, truncated and unknown requests on raw sockets;
//!   the broker stays up and serves a fresh client.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, Timestamp, TopicPartitionList};
use runnel_suite::{BrokerOptions, FaultProxy, TestBroker};

// ---------------------------------------------------------------------------------------
// Client plumbing
// ---------------------------------------------------------------------------------------

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Keeps librdkafka's warnings and errors so a failing test can show them.
#[derive(Default)]
struct Ctx {
    log: Mutex<Vec<String>>,
    /// message id → (partition, offset) once acknowledged.
    acked: Mutex<BTreeMap<usize, (i32, i64)>>,
    /// message id → error for messages that failed.
    failed: Mutex<BTreeMap<usize, String>>,
    delivered: AtomicUsize,
}

impl Ctx {
    fn recent_log(&self) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(40)..].join("\n")
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            let mut log = self.log.lock().unwrap();
            if log.len() < 10_000 {
                log.push(format!("{level:?} {fac}: {msg}"));
            }
        }
    }
    fn error(&self, error: KafkaError, reason: &str) {
        let mut log = self.log.lock().unwrap();
        if log.len() < 10_000 {
            log.push(format!("ERROR {error}: {reason}"));
        }
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        match result {
            Ok(m) => {
                self.acked
                    .lock()
                    .unwrap()
                    .insert(id, (m.partition(), m.offset()));
            }
            Err((e, _)) => {
                self.failed.lock().unwrap().insert(id, e.to_string());
            }
        }
        self.delivered.fetch_add(1, Ordering::SeqCst);
    }
}

impl ConsumerContext for Ctx {}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = block_on(admin.create_topics([&topic], &opts))
        .unwrap_or_else(|e| panic!("CreateTopics({name}) failed: {e}"));
    assert_eq!(results.len(), 1, "one result per topic: {results:?}");
    match &results[0] {
        Ok(t) => assert_eq!(t, name),
        Err((t, code)) => panic!("CreateTopics({t}) returned {code:?}"),
    }
    // The topic is visible in metadata with the partitions asked for, each led by the
    // one broker.
    let md = admin
        .inner()
        .fetch_metadata(Some(name), Duration::from_secs(10))
        .expect("metadata after create");
    let t = &md.topics()[0];
    assert_eq!(t.name(), name);
    assert!(
        t.error().is_none(),
        "topic error in metadata: {:?}",
        t.error()
    );
    assert_eq!(t.partitions().len(), partitions as usize, "partition count");
    for p in t.partitions() {
        assert_eq!(
            p.leader(),
            md.brokers()[0].id(),
            "partition {} leader",
            p.id()
        );
    }
}

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> ThreadedProducer<Ctx> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "120000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create_with_context(Ctx::default())
        .expect("create producer")
}

fn consumer(bootstrap: &str) -> BaseConsumer<Ctx> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka needs a group id even for assign(); no group is joined and no
        // offset is committed.
        .set("group.id", "runnel-suite-assign-only")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("check.crcs", "true")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(Ctx::default())
        .expect("create consumer")
}

/// Send one record, waiting (and polling) while librdkafka's queue is full.
fn send(p: &ThreadedProducer<Ctx>, topic: &str, id: usize, partition: i32, m: &Msg) {
    let mut rec = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, id)
        .partition(partition)
        .timestamp(m.timestamp);
    if let Some(k) = &m.key {
        rec = rec.key(k.as_slice());
    }
    if let Some(v) = &m.value {
        rec = rec.payload(v.as_slice());
    }
    if !m.headers.is_empty() {
        let mut h = OwnedHeaders::new_with_capacity(m.headers.len());
        for (k, v) in &m.headers {
            h = h.insert(Header {
                key: k.as_str(),
                value: v.as_deref(),
            });
        }
        rec = rec.headers(h);
    }
    let mut rec = rec;
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => panic!("enqueue message {id}: {e}"),
        }
    }
}

fn flush(p: &ThreadedProducer<Ctx>, within: Duration) {
    if let Err(e) = p.flush(within) {
        panic!(
            "producer flush did not finish in {within:?}: {e}\nlibrdkafka log:\n{}",
            p.context().recent_log()
        );
    }
}

/// Assert every one of `n` messages was acknowledged and none failed.
fn assert_all_acked(p: &ThreadedProducer<Ctx>, n: usize) {
    let ctx = p.context();
    let failed = ctx.failed.lock().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {n} messages failed, first: {:?}\nlibrdkafka log:\n{}",
        failed.len(),
        failed.iter().next(),
        ctx.recent_log()
    );
    assert_eq!(ctx.acked.lock().unwrap().len(), n, "acknowledged messages");
    if let Some((code, reason)) = p.client().fatal_error() {
        panic!("producer fatal error {code:?}: {reason}");
    }
}

fn watermarks(c: &BaseConsumer<Ctx>, topic: &str, partition: i32) -> (i64, i64) {
    c.fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("ListOffsets {topic}/{partition}: {e}"))
}

/// Consume partitions `0..counts.len()` of `topic` from the beginning until each has
/// given `counts[p]` messages, calling `check(partition, index_in_partition, message)`
/// for each. Fails on a consumer error, on a message past the expected count, or when
/// the messages stop coming.
fn consume_exact(
    bootstrap: &str,
    topic: &str,
    counts: &[usize],
    mut check: impl FnMut(i32, usize, &BorrowedMessage<'_>),
) {
    let c = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for p in 0..counts.len() as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut got = vec![0usize; counts.len()];
    let total: usize = counts.iter().sum();
    let mut seen = 0usize;
    let mut last_progress = Instant::now();
    while seen < total {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let p = m.partition();
                assert_eq!(m.topic(), topic);
                let i = got[p as usize];
                assert!(
                    i < counts[p as usize],
                    "partition {p}: message at offset {} beyond the {} expected",
                    m.offset(),
                    counts[p as usize]
                );
                check(p, i, &m);
                got[p as usize] += 1;
                seen += 1;
                last_progress = Instant::now();
            }
            Some(Err(e)) => panic!(
                "consumer error after {seen}/{total} messages: {e}\nlibrdkafka log:\n{}",
                c.context().recent_log()
            ),
            None => {}
        }
        assert!(
            last_progress.elapsed() < Duration::from_secs(30),
            "no message for 30 s after {seen} of {total}; per partition got {got:?}, want {counts:?}\nlibrdkafka log:\n{}",
            c.context().recent_log()
        );
    }
    // Nothing more than expected: the log end of each partition is exactly the count.
    for (p, &n) in counts.iter().enumerate() {
        let (low, high) = watermarks(&c, topic, p as i32);
        assert_eq!((low, high), (0, n as i64), "{topic}/{p} watermarks");
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---------------------------------------------------------------------------------------
// Deterministic messages
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
struct Msg {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

const MESSAGES: usize = 100_000;
const PARTITIONS: usize = 8;
const ONE_MIB: usize = 1 << 20;

/// Message `id` of a codec run: partition `id % 8`; about one in 7 keys null, one in 13
/// empty; one in 11 values null, one in 17 empty; headers (null, empty, repeated keys) on
/// one in 3; two messages per partition carry 1 MiB values; the rest are 0-600 bytes,
/// half text, half random.
fn codec_message(base_ts: i64, id: usize) -> Msg {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1).wrapping_mul(0xff51_afd7_ed55_8ccd));
    let key = if id.is_multiple_of(7) {
        None
    } else if id.is_multiple_of(13) {
        Some(Vec::new())
    } else {
        Some(format!("key-{id}").into_bytes())
    };
    let big = id / PARTITIONS == 1000 || id / PARTITIONS == MESSAGES / PARTITIONS - 1;
    let value = if big {
        let mut v = vec![0u8; ONE_MIB];
        let (text, random) = v.split_at_mut(ONE_MIB / 2);
        for (i, b) in text.iter_mut().enumerate() {
            *b = b"runnel keeps what it acknowledged "[(i + id) % 34];
        }
        rng.fill(random);
        Some(v)
    } else if id.is_multiple_of(11) {
        None
    } else if id.is_multiple_of(17) {
        Some(Vec::new())
    } else {
        let len = (rng.next() % 600) as usize;
        let mut v = format!("value {id} ").into_bytes();
        v.resize(len.max(v.len()), b'.');
        let half = v.len() / 2;
        rng.fill(&mut v[half..]);
        Some(v)
    };
    let headers = if id.is_multiple_of(3) {
        vec![
            ("id".to_string(), Some(id.to_string().into_bytes())),
            ("null".to_string(), None),
            ("empty".to_string(), Some(Vec::new())),
            ("dup".to_string(), Some(b"first".to_vec())),
            ("dup".to_string(), Some(vec![0, 255, 1, 254])),
        ]
    } else {
        Vec::new()
    };
    Msg {
        key,
        value,
        headers,
        timestamp: base_ts + id as i64,
    }
}

fn received(m: &BorrowedMessage<'_>) -> Msg {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    let timestamp = match m.timestamp() {
        Timestamp::CreateTime(t) => t,
        other => panic!("expected CreateTime, got {other:?}"),
    };
    Msg {
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
        timestamp,
    }
}

fn describe_mismatch(want: &Msg, got: &Msg) -> String {
    let short = |v: &Option<Vec<u8>>| match v {
        None => "null".to_string(),
        Some(v) if v.len() > 64 => format!("{} bytes {:?}…", v.len(), &v[..32]),
        Some(v) => format!("{v:?}"),
    };
    let mut out = Vec::new();
    if want.key != got.key {
        out.push(format!(
            "key: want {} got {}",
            short(&want.key),
            short(&got.key)
        ));
    }
    if want.value != got.value {
        let at = match (&want.value, &got.value) {
            (Some(a), Some(b)) => a.iter().zip(b).position(|(x, y)| x != y),
            _ => None,
        };
        out.push(format!(
            "value: want {} got {} (first differing byte {at:?})",
            short(&want.value),
            short(&got.value)
        ));
    }
    if want.headers != got.headers {
        out.push(format!(
            "headers: want {:?} got {:?}",
            want.headers, got.headers
        ));
    }
    if want.timestamp != got.timestamp {
        out.push(format!(
            "timestamp: want {} got {}",
            want.timestamp, got.timestamp
        ));
    }
    out.join("; ")
}

// ---------------------------------------------------------------------------------------
// 100k messages × each codec
// ---------------------------------------------------------------------------------------

fn codec_round_trip(codec: &str) {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = format!("codec-{codec}");
    // 1 MiB values need more than Kafka's default max.message.bytes (1 MB).
    create_topic(
        &bootstrap,
        &topic,
        PARTITIONS as i32,
        &[("max.message.bytes", "4194304")],
    );
    let base_ts = now_ms() - MESSAGES as i64 - 60_000;

    let started = Instant::now();
    let p = producer(
        &bootstrap,
        &[
            ("compression.type", codec),
            // No retries: every record is sent once, so per-partition order is the send
            // order, and any error fails the test instead of being papered over.
            ("message.send.max.retries", "0"),
            ("enable.idempotence", "false"),
            ("message.max.bytes", "4194304"),
        ],
    );
    for id in 0..MESSAGES {
        send(
            &p,
            &topic,
            id,
            (id % PARTITIONS) as i32,
            &codec_message(base_ts, id),
        );
    }
    flush(&p, Duration::from_secs(180));
    assert_all_acked(&p, MESSAGES);
    // Offsets are assigned densely in send order within each partition.
    for (&id, &(partition, offset)) in p.context().acked.lock().unwrap().iter() {
        assert_eq!(
            partition as usize,
            id % PARTITIONS,
            "message {id} partition"
        );
        let want = (id / PARTITIONS) as i64;
        assert!(
            offset == want,
            "message {id}, the {want}th sent to partition {partition}, was acknowledged at \
             offset {offset}: with no retries, a partition's records must be appended in the \
             order one connection sent them (Kafka handles a connection's requests in order)"
        );
    }
    let produced = started.elapsed();

    let counts = vec![MESSAGES / PARTITIONS; PARTITIONS];
    consume_exact(&bootstrap, &topic, &counts, |partition, i, m| {
        let id = i * PARTITIONS + partition as usize;
        assert_eq!(
            m.offset(),
            i as i64,
            "{topic}/{partition} offset of message {id}"
        );
        let want = codec_message(base_ts, id);
        let got = received(m);
        assert!(
            want == got,
            "{topic}/{partition} offset {}: message {id} differs: {}",
            m.offset(),
            describe_mismatch(&want, &got)
        );
    });
    eprintln!(
        "{codec}: {MESSAGES} messages produced in {produced:?}, all consumed back in {:?}",
        started.elapsed()
    );
}

#[test]
fn codec_none_100k_messages_round_trip() {
    codec_round_trip("none");
}

#[test]
fn codec_gzip_100k_messages_round_trip() {
    codec_round_trip("gzip");
}

#[test]
fn codec_snappy_100k_messages_round_trip() {
    codec_round_trip("snappy");
}

#[test]
fn codec_lz4_100k_messages_round_trip() {
    codec_round_trip("lz4");
}

#[test]
fn codec_zstd_100k_messages_round_trip() {
    codec_round_trip("zstd");
}

// ---------------------------------------------------------------------------------------
// Idempotent producer under real retries
// ---------------------------------------------------------------------------------------

const IDEMPOTENT_MESSAGES: usize = 20_000;
const IDEMPOTENT_PARTITIONS: usize = 4;

fn idempotent_payload(id: usize) -> Vec<u8> {
    format!("idempotent-{id:08}").into_bytes()
}

fn idempotent_producer(bootstrap: &str) -> ThreadedProducer<Ctx> {
    producer(
        bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            // Small batches: many Produce requests, so many chances to lose a response.
            ("batch.num.messages", "200"),
            ("retry.backoff.ms", "20"),
            ("reconnect.backoff.ms", "20"),
            ("reconnect.backoff.max.ms", "200"),
        ],
    )
}

fn send_idempotent(p: &ThreadedProducer<Ctx>, topic: &str, id: usize) {
    let m = Msg {
        key: Some(id.to_string().into_bytes()),
        value: Some(idempotent_payload(id)),
        headers: Vec::new(),
        timestamp: now_ms(),
    };
    send(p, topic, id, (id % IDEMPOTENT_PARTITIONS) as i32, &m);
}

/// Every partition holds exactly its messages, once each, in send order.
fn assert_exactly_once_in_order(bootstrap: &str, topic: &str) {
    let counts = vec![IDEMPOTENT_MESSAGES / IDEMPOTENT_PARTITIONS; IDEMPOTENT_PARTITIONS];
    consume_exact(bootstrap, topic, &counts, |partition, i, m| {
        let want = i * IDEMPOTENT_PARTITIONS + partition as usize;
        let payload = m.payload().unwrap_or_default();
        assert!(
            payload == idempotent_payload(want).as_slice(),
            "{topic}/{partition} offset {}: want message {want}, got {:?} \
             (a duplicate or a gap: a retried batch was written twice or lost)",
            m.offset(),
            String::from_utf8_lossy(payload)
        );
        assert_eq!(m.offset(), i as i64);
    });
}

#[test]
fn idempotent_producer_with_lost_produce_responses_writes_each_message_once() {
    let proxy = FaultProxy::start();
    let broker = TestBroker::start_with(BrokerOptions {
        advertised_listener: Some(proxy.addr().to_string()),
        ..Default::default()
    });
    proxy.set_upstream(broker.addr());
    let bootstrap = proxy.addr().to_string();
    let topic = "idempotent-lost-responses";
    create_topic(&bootstrap, topic, IDEMPOTENT_PARTITIONS as i32, &[]);

    // Every 5th Produce response is thrown away after the broker wrote (and fsynced)
    // the batch; the connection is cut, so librdkafka must resend the same batch with the
    // same producer id, epoch and sequence, and the broker must not append it again.
    proxy.drop_every_nth_produce_response(5);
    let p = idempotent_producer(&bootstrap);
    for id in 0..IDEMPOTENT_MESSAGES {
        send_idempotent(&p, topic, id);
    }
    flush(&p, Duration::from_secs(180));
    assert_all_acked(&p, IDEMPOTENT_MESSAGES);
    let dropped = proxy.produce_responses_dropped();
    assert!(
        dropped >= 3,
        "only {dropped} Produce responses were dropped of {}: no retries were forced",
        proxy.produce_responses()
    );
    proxy.drop_every_nth_produce_response(0);
    eprintln!(
        "{dropped} of {} Produce responses dropped; {} connections",
        proxy.produce_responses(),
        proxy.connections()
    );
    assert_exactly_once_in_order(&bootstrap, topic);
}

#[test]
fn idempotent_producer_across_broker_kill9_writes_each_message_once() {
    let proxy = FaultProxy::start();
    let mut broker = TestBroker::start_with(BrokerOptions {
        advertised_listener: Some(proxy.addr().to_string()),
        ..Default::default()
    });
    proxy.set_upstream(broker.addr());
    let bootstrap = proxy.addr().to_string();
    let topic = "idempotent-kill9";
    create_topic(&bootstrap, topic, IDEMPOTENT_PARTITIONS as i32, &[]);

    let p = idempotent_producer(&bootstrap);
    let half = IDEMPOTENT_MESSAGES / 2;
    for id in 0..half {
        send_idempotent(&p, topic, id);
    }
    // Kill the broker while the first half is still streaming: batches are in flight,
    // some written and fsynced without their response having reached the producer.
    let ctx = p.context();
    wait_for_acks(|| ctx.delivered.load(Ordering::SeqCst) >= half / 3);
    broker.kill9();
    let acked_before_kill = ctx.acked.lock().unwrap().len();
    for id in half..IDEMPOTENT_MESSAGES {
        send_idempotent(&p, topic, id);
    }
    broker.restart();
    proxy.set_upstream(broker.addr());
    proxy.sever_all();
    flush(&p, Duration::from_secs(180));
    assert_all_acked(&p, IDEMPOTENT_MESSAGES);
    eprintln!(
        "{acked_before_kill} of {IDEMPOTENT_MESSAGES} acked before kill -9, the rest after restart"
    );
    assert!(
        acked_before_kill < IDEMPOTENT_MESSAGES,
        "the broker was killed after everything was acknowledged"
    );
    assert_exactly_once_in_order(&bootstrap, topic);
}

// ---------------------------------------------------------------------------------------
// acks=all survives kill -9
// ---------------------------------------------------------------------------------------

/// Wait (polling every millisecond, so the kill that follows lands mid-stream) until
/// `done()`; fail after 60 s.
fn wait_for_acks(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "the producer made no progress in 60 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn acked_payload(id: usize) -> Vec<u8> {
    format!("acked-{id:08}-{}", "x".repeat(id % 200)).into_bytes()
}

#[test]
fn acks_all_records_survive_kill9() {
    let mut broker = TestBroker::start();
    let topic = "acks-all-kill9";
    let partitions = 8usize;
    create_topic(&broker.bootstrap(), topic, partitions as i32, &[]);

    let n = 50_000usize;
    let p = producer(
        &broker.bootstrap(),
        &[
            ("message.send.max.retries", "0"),
            ("enable.idempotence", "false"),
            ("linger.ms", "1"),
            ("batch.num.messages", "100"),
            ("message.timeout.ms", "10000"),
        ],
    );
    for id in 0..n {
        let m = Msg {
            key: None,
            value: Some(acked_payload(id)),
            headers: Vec::new(),
            timestamp: now_ms(),
        };
        send(&p, topic, id, (id % partitions) as i32, &m);
    }
    let ctx = p.context();
    wait_for_acks(|| ctx.acked.lock().unwrap().len() >= n / 4);
    broker.kill9();
    // Whatever was not acknowledged by now fails; only the acknowledged ones count.
    p.purge(PurgeConfig::default().queue().inflight());
    let _ = p.flush(Duration::from_secs(30));
    let acked: BTreeMap<usize, (i32, i64)> = ctx.acked.lock().unwrap().clone();
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the kill"
    );
    assert!(
        acked.len() < n,
        "all {n} messages were acknowledged before kill -9: the test proves nothing"
    );
    drop(p);
    eprintln!(
        "{} of {n} messages acknowledged before kill -9",
        acked.len()
    );

    broker.restart();
    let bootstrap = broker.bootstrap();
    // Per partition: offset → id of what was acknowledged.
    let mut want: Vec<BTreeMap<i64, usize>> = vec![BTreeMap::new(); partitions];
    for (&id, &(partition, offset)) in &acked {
        want[partition as usize].insert(offset, id);
    }
    let c = consumer(&bootstrap);
    let mut counts = Vec::new();
    for (partition, w) in want.iter().enumerate() {
        let (low, high) = watermarks(&c, topic, partition as i32);
        assert_eq!(low, 0, "{topic}/{partition} log start offset after restart");
        let needed = w.keys().next_back().map_or(0, |o| o + 1);
        assert!(
            high >= needed,
            "{topic}/{partition}: high watermark {high} after kill -9, but offset {} was acknowledged with acks=all",
            needed - 1
        );
        counts.push(high as usize);
    }
    drop(c);
    let mut seen_ids = std::collections::HashSet::new();
    consume_exact(&bootstrap, topic, &counts, |partition, i, m| {
        let payload = m.payload().unwrap_or_default().to_vec();
        let text = String::from_utf8_lossy(&payload).to_string();
        let id: usize = text
            .strip_prefix("acked-")
            .and_then(|s| s.get(..8))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{topic}/{partition} offset {i}: foreign payload {text:?}"));
        assert_eq!(payload, acked_payload(id), "payload of {id}");
        assert_eq!(
            id % partitions,
            partition as usize,
            "message {id} in the wrong partition"
        );
        assert!(seen_ids.insert(id), "message {id} stored twice");
        if let Some(&want_id) = want[partition as usize].get(&m.offset()) {
            assert_eq!(
                id,
                want_id,
                "{topic}/{partition} offset {}: acknowledged message {want_id} replaced by {id}",
                m.offset()
            );
        }
    });
    for &id in acked.keys() {
        assert!(
            seen_ids.contains(&id),
            "acknowledged message {id} lost after kill -9"
        );
    }

    // The log continues after the recovered end, never overwriting it.
    let p = producer(&bootstrap, &[]);
    let m = Msg {
        key: None,
        value: Some(b"after-restart".to_vec()),
        headers: Vec::new(),
        timestamp: now_ms(),
    };
    send(&p, topic, usize::MAX, 0, &m);
    flush(&p, Duration::from_secs(30));
    let (_, offset) = p.context().acked.lock().unwrap()[&usize::MAX];
    assert_eq!(
        offset, counts[0] as i64,
        "first offset after restart on partition 0"
    );
}

#[test]
fn clean_shutdown_keeps_topics_configs_and_data() {
    let mut broker = TestBroker::start();
    let topic = "clean-restart";
    create_topic(
        &broker.bootstrap(),
        topic,
        3,
        &[("max.message.bytes", "2000000")],
    );
    let p = producer(&broker.bootstrap(), &[]);
    for id in 0..300 {
        let m = Msg {
            key: Some(format!("k{id}").into_bytes()),
            value: Some(format!("v{id}").into_bytes()),
            headers: Vec::new(),
            timestamp: 1_000_000 + id as i64,
        };
        send(&p, topic, id, (id % 3) as i32, &m);
    }
    flush(&p, Duration::from_secs(30));
    assert_all_acked(&p, 300);
    drop(p);

    let status = broker.stop();
    assert!(status.success(), "SIGTERM shutdown exited with {status}");
    broker.restart();
    let bootstrap = broker.bootstrap();

    // The topic, its partition count and its config came back.
    let admin = admin(&bootstrap);
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 3);
    let resource = rdkafka::admin::ResourceSpecifier::Topic(topic);
    let configs = block_on(admin.describe_configs([&resource], &AdminOptions::new()))
        .expect("DescribeConfigs");
    let config = configs[0].as_ref().expect("DescribeConfigs result");
    let entry = config
        .get("max.message.bytes")
        .expect("max.message.bytes described");
    assert_eq!(entry.value.as_deref(), Some("2000000"));
    assert!(!entry.is_default, "max.message.bytes was set on the topic");
    assert_eq!(entry.source, rdkafka::admin::ConfigSource::DynamicTopic);

    consume_exact(&bootstrap, topic, &[100, 100, 100], |partition, i, m| {
        let id = i * 3 + partition as usize;
        assert_eq!(m.payload(), Some(format!("v{id}").as_bytes()));
        assert_eq!(m.key(), Some(format!("k{id}").as_bytes()));
        assert_eq!(m.timestamp(), Timestamp::CreateTime(1_000_000 + id as i64));
    });
}

#[test]
fn batch_over_max_message_bytes_gets_message_too_large() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = "small-messages";
    create_topic(&bootstrap, topic, 1, &[("max.message.bytes", "100000")]);
    // The client would allow it; the broker must refuse it, and write nothing.
    let p = producer(
        &bootstrap,
        &[
            ("message.max.bytes", "4000000"),
            ("message.send.max.retries", "0"),
        ],
    );
    let big = Msg {
        key: None,
        value: Some(vec![7u8; 200_000]),
        headers: Vec::new(),
        timestamp: now_ms(),
    };
    send(&p, topic, 0, 0, &big);
    flush(&p, Duration::from_secs(30));
    let failed = p.context().failed.lock().unwrap().clone();
    assert!(
        failed.get(&0).is_some_and(|e| e.contains("too large")),
        "a 200 kB message in a topic with max.message.bytes=100000: want MESSAGE_TOO_LARGE, \
         got {:?} (acked: {:?})",
        failed.get(&0),
        p.context().acked.lock().unwrap().get(&0)
    );
    let small = Msg {
        value: Some(vec![7u8; 1000]),
        ..big
    };
    send(&p, topic, 1, 0, &small);
    flush(&p, Duration::from_secs(30));
    assert_eq!(
        p.context().acked.lock().unwrap().get(&1),
        Some(&(0, 0)),
        "the next (small) message is at offset 0: nothing of the refused batch was written"
    );
}

// ---------------------------------------------------------------------------------------
// Bad input on raw sockets
// ---------------------------------------------------------------------------------------

const READ_TIMEOUT: Duration = Duration::from_secs(15);

fn raw(broker: &TestBroker) -> TcpStream {
    let s = TcpStream::connect(broker.addr()).expect("connect");
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s
}

/// What the broker did with a connection after we sent something bad.
#[derive(Debug, PartialEq)]
enum Outcome {
    Closed,
    /// A response frame with this correlation id.
    Response(i32, Vec<u8>),
}

/// Read one response frame or the end of the connection. Panics if the broker does
/// neither within the timeout (a hung connection).
fn outcome(s: &mut TcpStream, what: &str) -> Outcome {
    let mut len = [0u8; 4];
    let mut got = 0;
    let started = Instant::now();
    while got < 4 {
        match s.read(&mut len[got..]) {
            Ok(0) => return Outcome::Closed,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Outcome::Closed,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "{what}: the broker neither answered nor closed the connection within {:?}",
                    started.elapsed()
                )
            }
            Err(e) => panic!("{what}: read error {e}"),
        }
    }
    let n = i32::from_be_bytes(len);
    assert!(
        (4..=1 << 20).contains(&n),
        "{what}: response frame size {n}"
    );
    let mut body = vec![0u8; n as usize];
    s.read_exact(&mut body)
        .unwrap_or_else(|e| panic!("{what}: truncated response: {e}"));
    let correlation = i32::from_be_bytes(body[..4].try_into().unwrap());
    Outcome::Response(correlation, body[4..].to_vec())
}

/// A request frame: size, api key, api version, correlation id, client id, body.
fn request(api_key: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&api_key.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&correlation.to_be_bytes());
    f.extend_from_slice(&4i16.to_be_bytes());
    f.extend_from_slice(b"test");
    f.extend_from_slice(body);
    let mut out = (f.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&f);
    out
}

/// The broker still serves a real client: create a topic, produce, consume.
fn assert_broker_serves(broker: &TestBroker, topic: &str) {
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, topic, 1, &[]);
    let p = producer(&bootstrap, &[]);
    let m = Msg {
        key: Some(b"k".to_vec()),
        value: Some(b"still serving".to_vec()),
        headers: Vec::new(),
        timestamp: now_ms(),
    };
    send(&p, topic, 0, 0, &m);
    flush(&p, Duration::from_secs(30));
    assert_all_acked(&p, 1);
    consume_exact(&bootstrap, topic, &[1], |_, _, m| {
        assert_eq!(m.payload(), Some(&b"still serving"[..]));
    });
}

#[test]
fn bad_input_gets_closed_or_answered_and_broker_keeps_serving() {
    let mut broker = TestBroker::start();

    // A connection that has sent half a frame and then idles: it must not stop anyone else.
    let mut idle = raw(&broker);
    idle.write_all(&100i32.to_be_bytes()).unwrap();
    idle.write_all(&[0u8; 10]).unwrap();

    // Plain garbage (an HTTP request: "GET " read as a frame size is 1.2 GB).
    let mut s = raw(&broker);
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(outcome(&mut s, "HTTP request"), Outcome::Closed);

    // Random bytes behind a plausible frame size.
    let mut s = raw(&broker);
    let mut junk = 64i32.to_be_bytes().to_vec();
    let mut rng = Rng(42);
    let mut body = [0u8; 64];
    rng.fill(&mut body);
    body[0..2].copy_from_slice(&18i16.to_be_bytes()); // ApiVersions…
    body[2..4].copy_from_slice(&3i16.to_be_bytes()); // …v3, then a random body
    junk.extend_from_slice(&body);
    s.write_all(&junk).unwrap();
    match outcome(&mut s, "random request body") {
        Outcome::Closed | Outcome::Response(..) => {}
    }

    // Oversized frame: the size alone must make the broker close, without waiting for
    // (or allocating) 2 GB.
    let mut s = raw(&broker);
    s.write_all(&i32::MAX.to_be_bytes()).unwrap();
    s.write_all(&[0u8; 16]).unwrap();
    assert_eq!(outcome(&mut s, "2 GiB frame size"), Outcome::Closed);

    // Just above the default socket.request.max.bytes (100 MiB).
    let mut s = raw(&broker);
    s.write_all(&((100 << 20) + 1i32).to_be_bytes()).unwrap();
    assert_eq!(outcome(&mut s, "100 MiB + 1 frame size"), Outcome::Closed);

    // A negative frame size.
    let mut s = raw(&broker);
    s.write_all(&(-1i32).to_be_bytes()).unwrap();
    assert_eq!(outcome(&mut s, "negative frame size"), Outcome::Closed);

    // A truncated frame followed by end of stream.
    let mut s = raw(&broker);
    s.write_all(&100i32.to_be_bytes()).unwrap();
    s.write_all(&request(3, 1, 1, &[])[4..]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(outcome(&mut s, "truncated frame then EOF"), Outcome::Closed);

    // A whole frame whose request is cut short: a Metadata v1 header with no body.
    let mut s = raw(&broker);
    s.write_all(&request(3, 1, 7, &[])).unwrap();
    match outcome(&mut s, "Metadata v1 with no body") {
        Outcome::Closed => {}
        Outcome::Response(c, _) => assert_eq!(c, 7, "correlation id of the error response"),
    }

    // A frame shorter than a request header.
    let mut s = raw(&broker);
    s.write_all(&[0, 0, 0, 3, 0, 18, 0]).unwrap();
    assert_eq!(outcome(&mut s, "3-byte frame"), Outcome::Closed);

    // An API key Kafka does not have (Kafka closes the connection).
    let mut s = raw(&broker);
    s.write_all(&request(12_345, 0, 9, &[])).unwrap();
    match outcome(&mut s, "unknown api key 12345") {
        Outcome::Closed => {}
        Outcome::Response(c, _) => assert_eq!(c, 9, "correlation id of the error response"),
    }

    // After all that, a well-formed ApiVersions v0 on a fresh socket is answered.
    let mut s = raw(&broker);
    s.write_all(&request(18, 0, 11, &[])).unwrap();
    match outcome(&mut s, "ApiVersions v0") {
        Outcome::Response(11, body) => {
            assert_eq!(&body[..2], &[0, 0], "ApiVersions v0 error code");
        }
        other => panic!("ApiVersions v0: {other:?}"),
    }

    // The half-frame connection is still open and the broker still works for a client.
    assert_broker_serves(&broker, "after-bad-input");
    assert!(broker.is_running(), "the broker died");
    drop(idle);
    let log = broker.stderr_log();
    assert!(
        !log.contains("panicked"),
        "the broker panicked:\n{}",
        broker.diagnostics()
    );
    let status = broker.stop();
    assert!(
        status.success(),
        "shutdown after bad input exited with {status}"
    );
}

#[test]
fn api_versions_too_new_gets_v0_fallback() {
    // KIP-511: a client newer than the broker sends ApiVersions at a version the broker
    // does not know; the broker answers in the v0 format with UNSUPPORTED_VERSION (35)
    // and (at least) its ApiVersions range, so the client can retry at a version both
    // know. The request uses the flexible header (v2), as ApiVersions v3+ does.
    let broker = TestBroker::start();
    let mut s = raw(&broker);
    let mut f = Vec::new();
    f.extend_from_slice(&18i16.to_be_bytes());
    f.extend_from_slice(&127i16.to_be_bytes());
    f.extend_from_slice(&21i32.to_be_bytes());
    f.extend_from_slice(&4i16.to_be_bytes());
    f.extend_from_slice(b"test");
    f.push(0); // header tagged fields
    f.extend_from_slice(&[5, b't', b'e', b's', b't', 4, b'1', b'.', b'0', 0]); // v3 body
    let mut frame = (f.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&f);
    s.write_all(&frame).unwrap();
    let Outcome::Response(21, body) = outcome(&mut s, "ApiVersions v127") else {
        panic!("ApiVersions v127 was not answered with correlation id 21")
    };
    assert_eq!(
        i16::from_be_bytes([body[0], body[1]]),
        35,
        "UNSUPPORTED_VERSION"
    );
    let n = i32::from_be_bytes(body[2..6].try_into().unwrap());
    assert!(n > 0, "the fallback lists ApiVersions' supported range");
    assert!(
        body.len() >= 6 + 6 * n as usize,
        "{n} entries in {} bytes",
        body.len()
    );
    let entries: Vec<(i16, i16, i16)> = body[6..6 + 6 * n as usize]
        .chunks(6)
        .map(|e| {
            (
                i16::from_be_bytes([e[0], e[1]]),
                i16::from_be_bytes([e[2], e[3]]),
                i16::from_be_bytes([e[4], e[5]]),
            )
        })
        .collect();
    let &(_, min, max) = entries
        .iter()
        .find(|e| e.0 == 18)
        .unwrap_or_else(|| panic!("ApiVersions is not in the fallback: {entries:?}"));
    assert!(
        min == 0 && (3..127).contains(&max),
        "ApiVersions range {min}..={max}"
    );
}
