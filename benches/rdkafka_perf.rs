//! An independent load driver on librdkafka (the `rdkafka` crate), so that figures from
//! `runnel perf` can be checked against a client we did not write. It measures the same
//! things the same way: records/s, MB/s (10^6 bytes of value per second), and latency
//! percentiles from an HDR histogram, with fixed-rate mode measuring from each record's
//! intended send time (coordinated omission corrected).
//!
//! ```sh
//! cargo bench --bench rdkafka_perf -- produce --brokers 127.0.0.1:9092 --topic t \
//!     --num-records 1000000 --record-size 1024 --acks 1 --partitions 8
//! cargo bench --bench rdkafka_perf -- consume --brokers 127.0.0.1:9092 --topic t
//! cargo bench --bench rdkafka_perf -- e2e --brokers 127.0.0.1:9092 --topic t2 \
//!     --rate 5000 --duration 10 --acks 1
//! ```
//!
//! Options: `--brokers`, `--topic`, `--partitions` (created if missing), `--record-size`,
//! `--num-records` or `--duration` (seconds), `--rate` (records/s, 0 = max), `--acks`
//! (0, 1, all), `--compression`, `--linger-ms`, `--batch-size`, and `-X key=value` for
//! any other librdkafka setting (e.g. `-X fetch.wait.max.ms=10`). Output is one JSON
//! object on stdout, the same shape as `runnel --output json perf ...`.
//!
//! `connections --brokers HOST:PORT --count N --hold S` is not a Kafka client run: it
//! opens N plain TCP connections, sends an ApiVersions v0 request on each and reads the
//! answer, prints `{"connections": N, ...}` once all are open, and keeps them idle for S
//! seconds (the idle-connection workload, W7).
//!
//! Run with no arguments (as `cargo test --bench '*'` does) it prints its usage and
//! exits: it needs a broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

const USAGE: &str = "usage: rdkafka_perf produce|consume|e2e --brokers HOST:PORT --topic T \
[--partitions N] [--record-size B] [--num-records N | --duration S] [--rate R] [--acks 0|1|all] \
[--compression none|gzip|snappy|lz4|zstd] [--linger-ms MS] [--batch-size B] [-X key=value]...
       rdkafka_perf connections --brokers HOST:PORT [--count N] [--hold S]";

struct Opts {
    mode: String,
    brokers: String,
    topic: String,
    partitions: i32,
    record_size: usize,
    num_records: Option<u64>,
    duration: Option<Duration>,
    rate: f64,
    acks: String,
    compression: String,
    linger_ms: u64,
    batch_size: usize,
    extra: Vec<(String, String)>,
    count: usize,
    hold: Duration,
}

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        mode: String::new(),
        brokers: "127.0.0.1:9092".into(),
        topic: "perf".into(),
        partitions: 8,
        record_size: 1024,
        num_records: None,
        duration: None,
        rate: 0.0,
        acks: "1".into(),
        compression: "none".into(),
        linger_ms: 5,
        batch_size: 16384,
        extra: Vec::new(),
        count: 10_000,
        hold: Duration::from_secs(10),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        let num = |v: String| -> Result<f64, String> {
            v.parse::<f64>()
                .map_err(|_| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--bench" => {}
            "produce" | "consume" | "e2e" | "connections" => o.mode = a.clone(),
            "--count" => o.count = num(val()?)? as usize,
            "--hold" => o.hold = Duration::from_secs_f64(num(val()?)?),
            "--brokers" => o.brokers = val()?,
            "--topic" => o.topic = val()?,
            "--partitions" => o.partitions = num(val()?)? as i32,
            "--record-size" => o.record_size = num(val()?)? as usize,
            "--num-records" => o.num_records = Some(num(val()?)? as u64),
            "--duration" => o.duration = Some(Duration::from_secs_f64(num(val()?)?)),
            "--rate" => o.rate = num(val()?)?,
            "--acks" => o.acks = val()?,
            "--compression" => o.compression = val()?,
            "--linger-ms" => o.linger_ms = num(val()?)? as u64,
            "--batch-size" => o.batch_size = num(val()?)? as usize,
            "-X" => {
                let kv = val()?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or(format!("-X {kv}: need key=value"))?;
                o.extra.push((k.to_string(), v.to_string()));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    json!({
        "count": h.len(),
        "mean_ms": h.mean() / 1000.0,
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn base_config(o: &Opts) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &o.brokers);
    // The admin client needs the connection's security settings too (-X
    // security.protocol=ssl ...); the rest of -X is for the producer or consumer.
    for (k, v) in &o.extra {
        if ["security.", "ssl.", "sasl."]
            .iter()
            .any(|p| k.starts_with(p))
        {
            c.set(k, v);
        }
    }
    c
}

fn ensure_topic(o: &Opts) {
    let admin: AdminClient<DefaultClientContext> = base_config(o).create().expect("admin client");
    let topic = NewTopic::new(&o.topic, o.partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    match block_on(admin.create_topics([&topic], &opts)) {
        Ok(results) => {
            for r in results {
                if let Err((t, code)) = r {
                    if code != RDKafkaErrorCode::TopicAlreadyExists {
                        eprintln!("warning: creating {t}: {code:?}");
                    }
                }
            }
        }
        Err(e) => eprintln!("warning: CreateTopics: {e}"),
    }
}

/// Producer context: records delivery latency from the intended send time carried as
/// the opaque.
struct Ctx {
    hist: Mutex<Histogram<u64>>,
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, result: &DeliveryResult<'_>, from: Box<Instant>) {
        match result {
            Ok(_) => {
                let us = from.elapsed().as_micros() as u64;
                if let Ok(mut h) = self.hist.lock() {
                    h.saturating_record(us.max(1));
                }
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut f) = self.first_error.lock() {
                    f.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The e2e stamp of the warm-up record, which is not measured.
const WARMUP_STAMP: u64 = 0;

/// Produce as configured; with `stamp`, the first 8 bytes of each value carry the
/// intended send time (ns since the Unix epoch). Returns (acked, failed, seconds,
/// delivery histogram).
fn run_producer(o: &Opts, stamp: bool) -> (u64, u64, f64, Histogram<u64>) {
    let mut cfg = base_config(o);
    let acks = if o.acks == "all" {
        "-1"
    } else {
        o.acks.as_str()
    };
    cfg.set("acks", acks)
        .set("linger.ms", o.linger_ms.to_string())
        .set("batch.size", o.batch_size.to_string())
        .set("compression.codec", &o.compression)
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "300000")
        .set(
            "enable.idempotence",
            if acks == "-1" { "true" } else { "false" },
        );
    for (k, v) in &o.extra {
        cfg.set(k, v);
    }
    let ctx = Ctx {
        hist: Mutex::new(histogram()),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
    };
    let producer: ThreadedProducer<Ctx> = cfg.create_with_context(ctx).expect("producer");
    let mut value = vec![b'A'; o.record_size];
    for (i, b) in value.iter_mut().enumerate() {
        *b = b'A' + ((i * 7 + i / 26) % 26) as u8;
    }
    // Warm up (metadata, connections, the idempotent producer id) before the clock
    // starts: one record, not counted. Its stamp is 0, so the e2e consumer skips it:
    // librdkafka holds it until the producer id arrives (about 500 ms with
    // idempotence), which is start-up, not end-to-end latency.
    if stamp && value.len() >= 8 {
        value[..8].copy_from_slice(&WARMUP_STAMP.to_be_bytes());
    }
    let warmup =
        BaseRecord::<[u8], [u8], Box<Instant>>::with_opaque_to(&o.topic, Box::new(Instant::now()))
            .payload(&value[..]);
    if producer.send(warmup).is_ok() {
        let _ = producer.flush(Duration::from_secs(30));
    }
    {
        let ctx = producer.context();
        if let Ok(mut h) = ctx.hist.lock() {
            h.reset();
        }
        ctx.acked.store(0, Ordering::Relaxed);
        ctx.failed.store(0, Ordering::Relaxed);
    }
    let begin = Instant::now();
    let epoch_offset = now_ns();
    let mut sent = 0u64;
    loop {
        if o.num_records.is_some_and(|n| sent >= n) {
            break;
        }
        if o.duration.is_some_and(|d| begin.elapsed() >= d) {
            break;
        }
        let from = if o.rate > 0.0 {
            let intended = begin + Duration::from_secs_f64(sent as f64 / o.rate);
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            intended
        } else {
            Instant::now()
        };
        if stamp && value.len() >= 8 {
            let ns = epoch_offset + from.duration_since(begin).as_nanos() as u64;
            value[..8].copy_from_slice(&ns.to_be_bytes());
        }
        let mut record =
            BaseRecord::<[u8], [u8], Box<Instant>>::with_opaque_to(&o.topic, Box::new(from))
                .payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => {
                    eprintln!("send failed: {e}");
                    producer.context().failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        sent += 1;
    }
    let _ = producer.flush(Duration::from_secs(300));
    let seconds = begin.elapsed().as_secs_f64();
    let ctx = producer.context();
    if let Ok(f) = ctx.first_error.lock() {
        if let Some(e) = f.as_ref() {
            eprintln!("warning: first delivery error: {e}");
        }
    }
    let h = ctx
        .hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    (
        ctx.acked.load(Ordering::Relaxed),
        ctx.failed.load(Ordering::Relaxed),
        seconds,
        h,
    )
}

fn consumer(o: &Opts) -> BaseConsumer {
    let mut cfg = base_config(o);
    cfg.set("group.id", "rdkafka-perf")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    for (k, v) in &o.extra {
        cfg.set(k, v);
    }
    cfg.create().expect("consumer")
}

fn partitions(c: &BaseConsumer, topic: &str) -> Vec<i32> {
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    md.topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default()
}

fn settings(o: &Opts) -> Value {
    json!({
        "client": "librdkafka",
        "brokers": o.brokers,
        "topic": o.topic,
        "partitions": o.partitions,
        "record_size": o.record_size,
        "num_records": o.num_records,
        "duration_s": o.duration.map(|d| d.as_secs_f64()),
        "rate": o.rate,
        "acks": o.acks,
        "compression": o.compression,
        "linger_ms": o.linger_ms,
        "batch_size": o.batch_size,
        "extra": o.extra.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
    })
}

fn produce(o: &Opts) -> Value {
    ensure_topic(o);
    let (acked, failed, seconds, h) = run_producer(o, false);
    json!({
        "mode": "produce",
        "records": acked,
        "bytes": acked * o.record_size as u64,
        "errors": failed,
        "seconds": seconds,
        "records_per_sec": acked as f64 / seconds,
        "mb_per_sec": (acked * o.record_size as u64) as f64 / 1e6 / seconds,
        "delivery": latency_json(&h),
        "settings": settings(o),
    })
}

fn consume(o: &Opts) -> Value {
    let c = consumer(o);
    let parts = partitions(&c, &o.topic);
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut target = 0u64;
    for p in &parts {
        let (lo, hi) = c
            .fetch_watermarks(&o.topic, *p, Duration::from_secs(10))
            .expect("watermarks");
        ends.insert(*p, hi);
        target += (hi - lo).max(0) as u64;
        tpl.add_partition_offset(&o.topic, *p, Offset::Offset(lo))
            .expect("assign offset");
    }
    let target = o.num_records.unwrap_or(target);
    c.assign(&tpl).expect("assign");
    let begin = Instant::now();
    let (mut records, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let deadline = o.duration.unwrap_or(Duration::from_secs(600));
    while records < target && begin.elapsed() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if ends.get(&m.partition()).is_some_and(|e| m.offset() >= *e)
                    && o.num_records.is_none()
                {
                    continue;
                }
                records += 1;
                bytes += (m.payload_len() + m.key().map_or(0, <[u8]>::len)) as u64;
            }
            Some(Err(e)) => {
                errors += 1;
                if errors < 5 {
                    eprintln!("consume error: {e}");
                }
            }
            None => {}
        }
    }
    let seconds = begin.elapsed().as_secs_f64();
    json!({
        "mode": "consume",
        "records": records,
        "bytes": bytes,
        "errors": errors,
        "seconds": seconds,
        "records_per_sec": records as f64 / seconds,
        "mb_per_sec": bytes as f64 / 1e6 / seconds,
        "settings": settings(o),
    })
}

fn e2e(o: &Opts) -> Value {
    assert!(o.rate > 0.0, "e2e needs --rate");
    ensure_topic(o);
    let c = consumer(o);
    let parts = partitions(&c, &o.topic);
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition_offset(&o.topic, *p, Offset::End)
            .expect("assign offset");
    }
    c.assign(&tpl).expect("assign");
    // Let the consumer resolve its offsets before producing.
    let _ = c.poll(Duration::from_millis(500));
    let stop = Arc::new(AtomicBool::new(false));
    let consumed = Arc::new(AtomicU64::new(0));
    let consumer_thread = {
        let stop = stop.clone();
        let consumed = consumed.clone();
        std::thread::spawn(move || {
            let mut h = histogram();
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                    if let Some(v) = m.payload().and_then(|v| v.get(..8)) {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(v);
                        let sent = u64::from_be_bytes(b);
                        if sent != WARMUP_STAMP {
                            let us = now_ns().saturating_sub(sent) / 1000;
                            h.saturating_record(us.max(1));
                        }
                    }
                    consumed.fetch_add(1, Ordering::Relaxed);
                }
            }
            h
        })
    };
    let (acked, failed, seconds, delivery) = run_producer(o, true);
    let deadline = Instant::now() + Duration::from_secs(30);
    // The warm-up record is consumed too.
    while consumed.load(Ordering::Relaxed) < acked + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let e2e = consumer_thread.join().unwrap_or_else(|_| histogram());
    let mut s = settings(o);
    s["consumed"] = json!(consumed.load(Ordering::Relaxed).saturating_sub(1));
    json!({
        "mode": "e2e",
        "records": acked,
        "bytes": acked * o.record_size as u64,
        "errors": failed,
        "seconds": seconds,
        "records_per_sec": acked as f64 / seconds,
        "mb_per_sec": (acked * o.record_size as u64) as f64 / 1e6 / seconds,
        "delivery": latency_json(&delivery),
        "end_to_end": latency_json(&e2e),
        "settings": s,
    })
}

/// Open `o.count` idle connections that each completed one ApiVersions v0 exchange.
fn connections(o: &Opts) -> Value {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let mut request = Vec::new();
    let client_id = b"w7-idle";
    let body_len = 2 + 2 + 4 + 2 + client_id.len();
    request.extend_from_slice(&(body_len as i32).to_be_bytes());
    request.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    request.extend_from_slice(&0i16.to_be_bytes()); // v0
    request.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    request.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    request.extend_from_slice(client_id);
    let begin = Instant::now();
    let mut conns = Vec::with_capacity(o.count);
    let mut failed = 0u64;
    for _ in 0..o.count {
        let exchange = || -> std::io::Result<TcpStream> {
            let mut s = TcpStream::connect(&o.brokers)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(&request)?;
            let mut len = [0u8; 4];
            s.read_exact(&mut len)?;
            let mut body = vec![0u8; i32::from_be_bytes(len).clamp(0, 1 << 20) as usize];
            s.read_exact(&mut body)?;
            Ok(s)
        };
        match exchange() {
            Ok(s) => conns.push(s),
            Err(e) => {
                failed += 1;
                if failed < 5 {
                    eprintln!("connection failed: {e}");
                }
            }
        }
    }
    let out = json!({
        "mode": "connections",
        "connections": conns.len(),
        "errors": failed,
        "seconds": begin.elapsed().as_secs_f64(),
    });
    println!("{}", out);
    let _ = std::io::stdout().flush();
    std::thread::sleep(o.hold);
    drop(conns);
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if o.mode.is_empty() {
        // `cargo test --bench '*'` runs this with no arguments: nothing to do.
        println!("{USAGE}");
        return;
    }
    if o.mode == "connections" {
        connections(&o);
        return;
    }
    if o.num_records.is_none() && o.duration.is_none() && o.mode != "consume" {
        eprintln!("give --num-records or --duration\n{USAGE}");
        std::process::exit(2);
    }
    let out = match o.mode.as_str() {
        "produce" => produce(&o),
        "consume" => consume(&o),
        _ => e2e(&o),
    };
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
}
