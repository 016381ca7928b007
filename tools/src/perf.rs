//! `runnel perf produce | consume | e2e`: a load generator in the spirit of Kafka's
//! `kafka-producer-perf-test` / `kafka-consumer-perf-test` and the OpenMessaging
//! Benchmark, built on the Rust client (`runnel-client`).
//!
//! - `produce` sends `--num-records` (or for `--duration`) records of `--record-size`
//!   bytes from `--producers` producers (one connection each), at full speed or at a fixed
//!   total `--rate`. Delivery latency runs from the send (full speed) or from the record's
//!   intended send time (fixed rate: a producer that falls behind does not hide the wait,
//!   which corrects for coordinated omission) to the acknowledgement.
//! - `consume` reads a topic from its start to the end offsets seen when it starts (or
//!   `--num-records`) with `--consumers` consumers, each owning every n-th partition.
//! - `e2e` runs both at a fixed rate: consumers start at the log end, producers stamp
//!   each record with its intended send time, and the end-to-end latency runs from that
//!   time to the moment a consumer has the record.
//!
//! Latencies go into HDR histograms (`hdrhistogram`, 3 significant digits, in
//! microseconds). Output is a table, or JSON with `--output json`. MB/s is 10^6 bytes of
//! record payload (key + value) per second.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use runnel_client::{
    Acks, Admin, Client, Compression, Consumer, ConsumerConfig, Delivery, Error, OffsetReset,
    OffsetSpec, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::cli::{print_table, GlobalArgs, Output};

/// `runnel perf ...`
#[derive(Subcommand)]
pub enum PerfCommand {
    /// Produce records as fast as possible or at a fixed rate; report throughput and
    /// delivery latency.
    Produce(ProduceArgs),
    /// Consume a topic from the start; report throughput.
    Consume(ConsumeArgs),
    /// Produce at a fixed rate while consuming; report delivery and end-to-end latency.
    E2e(E2eArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AcksArg {
    #[value(name = "0")]
    Zero,
    #[value(name = "1")]
    One,
    #[value(name = "all", alias = "-1")]
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
}

/// Settings shared by the producing commands.
#[derive(Args, Clone)]
pub struct ProducerArgs {
    /// Topic to write; created with `--partitions` if it does not exist.
    #[arg(long, default_value = "perf")]
    pub topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Bytes of value per record.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Records to send in total (across producers).
    #[arg(long, conflicts_with = "duration")]
    pub num_records: Option<u64>,
    /// Send for this long instead (e.g. 10s, 500ms, 2m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Records per second in total; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    #[arg(long, value_enum, default_value_t = AcksArg::One)]
    pub acks: AcksArg,
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    /// linger.ms
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// batch.size in bytes.
    #[arg(long, default_value_t = 16384)]
    pub batch_size: usize,
    /// max.in.flight.requests.per.connection
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
    /// Idempotent producers (needs --acks all); default: on with acks=all.
    #[arg(long)]
    pub idempotence: Option<bool>,
    /// Producers, each with its own connection.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
}

#[derive(Args, Clone)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub producer: ProducerArgs,
}

#[derive(Args, Clone)]
pub struct ConsumeArgs {
    #[arg(long, default_value = "perf")]
    pub topic: String,
    /// Stop after this many records (default: everything up to the end offsets at start).
    #[arg(long)]
    pub num_records: Option<u64>,
    /// Give up after this long.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
    /// Consumers; consumer i reads partitions p with p % consumers == i.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// fetch.max.wait.ms (client default 500).
    #[arg(long, default_value_t = 500)]
    pub fetch_max_wait_ms: u64,
    /// fetch.min.bytes (client default 1).
    #[arg(long, default_value_t = 1)]
    pub fetch_min_bytes: i32,
    /// max.partition.fetch.bytes (client default 1 MiB).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_partition_fetch_bytes: i32,
}

#[derive(Args, Clone)]
pub struct E2eArgs {
    #[command(flatten)]
    pub producer: ProducerArgs,
    /// Consumers; consumer i reads partitions p with p % consumers == i.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// fetch.max.wait.ms of the consumers.
    #[arg(long, default_value_t = 500)]
    pub fetch_max_wait_ms: u64,
}

/// "10s", "250ms", "2m", "1h" or plain seconds ("1.5").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?} (try 10s, 500ms, 2m)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Duration::try_from_secs_f64(v * scale).map_err(|_| format!("bad duration {s:?}"))
}

/// Run a perf command on a multi-threaded runtime.
pub fn run(global: GlobalArgs, command: PerfCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let output = global.output;
    let result = runtime.block_on(async move {
        match command {
            PerfCommand::Produce(a) => produce(&global, a).await,
            PerfCommand::Consume(a) => consume(&global, a).await,
            PerfCommand::E2e(a) => e2e(&global, a).await,
        }
    });
    match result {
        Ok(report) => {
            report.print(output);
            if report.errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if matches!(e, PerfError::Usage(_)) {
                2
            } else {
                1
            })
        }
    }
}

#[derive(Debug)]
enum PerfError {
    Usage(String),
    Broker(String),
}

impl std::fmt::Display for PerfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PerfError::Usage(m) | PerfError::Broker(m) => f.write_str(m),
        }
    }
}

impl From<Error> for PerfError {
    fn from(e: Error) -> Self {
        PerfError::Broker(e.to_string())
    }
}

type PerfResult<T> = Result<T, PerfError>;

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 1 hour at 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
    })
}

/// What a run measured.
struct Report {
    mode: &'static str,
    records: u64,
    bytes: u64,
    errors: u64,
    seconds: f64,
    settings: Value,
    /// (name, histogram in µs)
    latencies: Vec<(&'static str, Histogram<u64>)>,
}

impl Report {
    fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }
    fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }

    fn latency_json(h: &Histogram<u64>) -> Value {
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

    fn to_json(&self) -> Value {
        let mut v = json!({
            "mode": self.mode,
            "records": self.records,
            "bytes": self.bytes,
            "errors": self.errors,
            "seconds": self.seconds,
            "records_per_sec": self.records_per_sec(),
            "mb_per_sec": self.mb_per_sec(),
            "settings": self.settings,
        });
        for (name, h) in &self.latencies {
            v[*name] = if h.is_empty() {
                Value::Null
            } else {
                Report::latency_json(h)
            };
        }
        v
    }

    fn print(&self, output: Output) {
        match output {
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(&self.to_json()).unwrap_or_default()
            ),
            Output::Table => {
                print_table(
                    &["mode", "records", "errors", "seconds", "records/s", "MB/s"],
                    &[vec![
                        self.mode.to_string(),
                        self.records.to_string(),
                        self.errors.to_string(),
                        format!("{:.2}", self.seconds),
                        format!("{:.0}", self.records_per_sec()),
                        format!("{:.1}", self.mb_per_sec()),
                    ]],
                );
                if !self.latencies.is_empty() {
                    println!();
                    let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
                    let rows: Vec<Vec<String>> = self
                        .latencies
                        .iter()
                        .filter(|(_, h)| !h.is_empty())
                        .map(|(name, h)| {
                            vec![
                                name.to_string(),
                                h.len().to_string(),
                                ms(h.value_at_quantile(0.50)),
                                ms(h.value_at_quantile(0.99)),
                                ms(h.value_at_quantile(0.999)),
                                ms(h.max()),
                            ]
                        })
                        .collect();
                    print_table(
                        &["latency", "count", "p50 ms", "p99 ms", "p99.9 ms", "max ms"],
                        &rows,
                    );
                }
            }
        }
    }
}

async fn connect(global: &GlobalArgs) -> PerfResult<Client> {
    // --command-config reaches secured listeners, as for the other commands.
    let config = global
        .client_config()
        .map_err(|e| PerfError::Usage(e.to_string()))?;
    Client::connect(config).await.map_err(|e| {
        PerfError::Broker(format!(
            "cannot reach the broker at {}: {e}",
            global.bootstrap_server
        ))
    })
}

/// Create `topic` with `partitions` unless it exists.
async fn ensure_topic(client: &Client, topic: &str, partitions: i32) -> PerfResult<()> {
    let admin = Admin::new(client.clone());
    match admin.create_topic(topic, partitions).await {
        Ok(()) => {}
        Err(e) if e.code() == Some(36) => {} // TOPIC_ALREADY_EXISTS
        Err(e) => return Err(e.into()),
    }
    // Wait until the metadata shows the partitions.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        client.invalidate(topic);
        match client.partition_count(topic).await {
            Ok(n) if n > 0 => return Ok(()),
            Ok(_) => {}
            Err(e) if !e.is_retriable() && e.code() != Some(3) => return Err(e.into()),
            Err(_) => {}
        }
        if Instant::now() > deadline {
            return Err(PerfError::Broker(format!(
                "topic {topic} has no partitions"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn partitions_of(client: &Client, topic: &str) -> PerfResult<Vec<TopicPartition>> {
    let meta = client.topic(topic).await?;
    let mut tps: Vec<TopicPartition> = meta
        .partitions
        .iter()
        .map(|p| TopicPartition::new(topic, p.partition))
        .collect();
    tps.sort();
    Ok(tps)
}

fn producer_config(a: &ProducerArgs) -> PerfResult<ProducerConfig> {
    let acks = match a.acks {
        AcksArg::Zero => Acks::None,
        AcksArg::One => Acks::Leader,
        AcksArg::All => Acks::All,
    };
    let idempotence = a.idempotence.unwrap_or(acks == Acks::All);
    if idempotence && acks != Acks::All {
        return Err(PerfError::Usage("--idempotence needs --acks all".into()));
    }
    Ok(ProducerConfig {
        acks,
        linger: Duration::from_millis(a.linger_ms),
        batch_size: a.batch_size.max(1),
        compression: a.compression.into(),
        idempotence,
        max_in_flight: a.max_in_flight.max(1),
        max_request_size: (1 << 20).max(a.batch_size.saturating_mul(2)),
        ..ProducerConfig::default()
    })
}

fn check_producer_args(a: &ProducerArgs, fixed_rate: bool) -> PerfResult<()> {
    if a.producers == 0 {
        return Err(PerfError::Usage("--producers must be at least 1".into()));
    }
    if a.partitions <= 0 {
        return Err(PerfError::Usage("--partitions must be at least 1".into()));
    }
    if a.num_records.is_none() && a.duration.is_none() {
        return Err(PerfError::Usage("give --num-records or --duration".into()));
    }
    if !(a.rate.is_finite() && a.rate >= 0.0) {
        return Err(PerfError::Usage("--rate must be ≥ 0".into()));
    }
    if fixed_rate && a.rate <= 0.0 {
        return Err(PerfError::Usage("e2e needs a fixed --rate".into()));
    }
    if fixed_rate && a.record_size < 8 {
        return Err(PerfError::Usage(
            "e2e needs --record-size ≥ 8 (the send time is stamped in the value)".into(),
        ));
    }
    Ok(())
}

fn producer_settings(a: &ProducerArgs) -> Value {
    json!({
        "topic": a.topic,
        "partitions": a.partitions,
        "record_size": a.record_size,
        "num_records": a.num_records,
        "duration_s": a.duration.map(|d| d.as_secs_f64()),
        "rate": a.rate,
        "acks": match a.acks { AcksArg::Zero => "0", AcksArg::One => "1", AcksArg::All => "all" },
        "compression": format!("{:?}", Compression::from(a.compression)).to_lowercase(),
        "linger_ms": a.linger_ms,
        "batch_size": a.batch_size,
        "max_in_flight": a.max_in_flight,
        "producers": a.producers,
    })
}

/// A payload of `size` bytes that compresses like text (letters), as Kafka's perf tool
/// uses.
fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect()
}

/// The outcome of the producing side.
struct ProduceOutcome {
    acked: u64,
    errors: u64,
    seconds: f64,
    delivery: Histogram<u64>,
}

/// One producer's send schedule: which record goes next and when it should be sent.
struct Pacer {
    topic: String,
    /// One payload for every record (shared, not copied), unless `stamp` needs each
    /// record's own first 8 bytes.
    value: Bytes,
    epoch: Instant,
    stamp: bool,
    /// Records per second; 0 = as fast as possible.
    rate: f64,
    count: Option<u64>,
    duration: Option<Duration>,
    begin: Instant,
    sent: u64,
    send_errors: u64,
    first_error: Arc<std::sync::Mutex<Option<String>>>,
}

impl Pacer {
    /// The intended send time of the next record (now at full speed), or `None` when
    /// the run is over.
    fn next_send_time(&self) -> Option<Instant> {
        if self.count.is_some_and(|c| self.sent >= c)
            || self.duration.is_some_and(|d| self.begin.elapsed() >= d)
        {
            return None;
        }
        Some(if self.rate > 0.0 {
            // A rate so low that the next send is beyond any Duration: never.
            match Duration::try_from_secs_f64(self.sent as f64 / self.rate) {
                Ok(after) => self.begin.checked_add(after)?,
                Err(_) => return None,
            }
        } else {
            Instant::now()
        })
    }

    /// The next record, stamped with `from` when stamping.
    fn record(&mut self, from: Instant) -> ProducerRecord {
        self.sent += 1;
        let value = if self.stamp {
            let ns = from.saturating_duration_since(self.epoch).as_nanos() as u64;
            let mut stamped = self.value.to_vec();
            stamped[..8].copy_from_slice(&ns.to_be_bytes());
            Bytes::from(stamped)
        } else {
            self.value.clone()
        };
        ProducerRecord::new(self.topic.clone()).value(value)
    }

    fn failed(&mut self, e: Error) {
        self.send_errors += 1;
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| e.to_string());
    }
}

/// Run `a.producers` producers; each stamps the first 8 bytes of a record with its
/// intended send time (ns since `epoch`) when `stamp` is set.
async fn run_producers(
    global: &GlobalArgs,
    a: &ProducerArgs,
    epoch: Instant,
    stamp: bool,
) -> PerfResult<ProduceOutcome> {
    let config = producer_config(a)?;
    let n = a.producers as u64;
    let mut tasks = Vec::new();
    let start = Instant::now();
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    for i in 0..n {
        let client = connect(global).await?;
        let producer = Producer::new(client, config.clone())?;
        // Split the total count and rate evenly.
        let count = a
            .num_records
            .map(|total| total / n + u64::from(i < total % n));
        let rate = a.rate / n as f64;
        let duration = a.duration;
        let topic = a.topic.clone();
        let mut value = payload(a.record_size, i + 1);
        let first_error = first_error.clone();
        tasks.push(tokio::spawn(async move {
            let (tx, mut rx) = mpsc::channel::<(Instant, Delivery)>(1 << 16);
            let delivery_error = first_error.clone();
            let collector = tokio::spawn(async move {
                let mut h = new_histogram();
                let (mut ok, mut failed) = (0u64, 0u64);
                while let Some((from, delivery)) = rx.recv().await {
                    match delivery.await {
                        Ok(_) => {
                            ok += 1;
                            let us = from.elapsed().as_micros().min(u64::MAX as u128) as u64;
                            h.saturating_record(us.max(1));
                        }
                        Err(e) => {
                            failed += 1;
                            let mut first =
                                delivery_error.lock().unwrap_or_else(|p| p.into_inner());
                            first.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                (ok, failed, h)
            });
            // Initialise the producer (metadata, producer id) before the clock starts.
            let _ = producer.flush().await;
            let mut pacer = Pacer {
                topic,
                value: Bytes::from(std::mem::take(&mut value)),
                epoch,
                stamp,
                rate,
                count,
                duration,
                begin: Instant::now(),
                sent: 0,
                send_errors: 0,
                first_error,
            };
            let (producer, pacer) = if rate > 0.0 {
                // Fixed rate: pace on a plain thread, whose sleeps are precise to tens of
                // microseconds (tokio's timer wheel has millisecond granularity, which
                // would add up to a millisecond of lateness to every intended send time).
                let handle = tokio::runtime::Handle::current();
                let joined = tokio::task::spawn_blocking(move || {
                    while let Some(from) = pacer.next_send_time() {
                        if from > Instant::now() {
                            std::thread::sleep(from - Instant::now());
                        }
                        let record = pacer.record(from);
                        let sent = handle.block_on(async {
                            match producer.send_record(record).await {
                                Ok(d) => tx.send((from, d)).await.is_ok(),
                                Err(e) => {
                                    pacer.failed(e);
                                    true
                                }
                            }
                        });
                        if !sent || pacer.send_errors > 100 {
                            break;
                        }
                    }
                    drop(tx);
                    (producer, pacer)
                })
                .await;
                match joined {
                    Ok(x) => x,
                    Err(e) => {
                        collector.abort();
                        let h = new_histogram();
                        eprintln!("error: the pacing thread failed: {e}");
                        return (0, 1, h);
                    }
                }
            } else {
                while let Some(from) = pacer.next_send_time() {
                    let record = pacer.record(from);
                    match producer.send_record(record).await {
                        Ok(d) => {
                            if tx.send((from, d)).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            pacer.failed(e);
                            if pacer.send_errors > 100 {
                                break;
                            }
                        }
                    }
                }
                drop(tx);
                (producer, pacer)
            };
            let (sent, send_errors, first_error) =
                (pacer.sent, pacer.send_errors, pacer.first_error);
            let flushed = producer.close().await;
            let (ok, failed, h) = collector.await.unwrap_or((0, sent, new_histogram()));
            if let Err(e) = flushed {
                let mut first = first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
            (ok, failed + send_errors, h)
        }));
    }
    let mut outcome = ProduceOutcome {
        acked: 0,
        errors: 0,
        seconds: 0.0,
        delivery: new_histogram(),
    };
    for t in tasks {
        match t.await {
            Ok((ok, failed, h)) => {
                outcome.acked += ok;
                outcome.errors += failed;
                let _ = outcome.delivery.add(&h);
            }
            Err(e) => return Err(PerfError::Broker(format!("producer task failed: {e}"))),
        }
    }
    outcome.seconds = start.elapsed().as_secs_f64();
    if let Some(e) = first_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        eprintln!(
            "warning: {} records failed; first error: {e}",
            outcome.errors
        );
    }
    Ok(outcome)
}

async fn produce(global: &GlobalArgs, a: ProduceArgs) -> PerfResult<Report> {
    let a = a.producer;
    check_producer_args(&a, false)?;
    let client = connect(global).await?;
    ensure_topic(&client, &a.topic, a.partitions).await?;
    let outcome = run_producers(global, &a, Instant::now(), false).await?;
    Ok(Report {
        mode: "produce",
        records: outcome.acked,
        bytes: outcome.acked * a.record_size as u64,
        errors: outcome.errors,
        seconds: outcome.seconds,
        settings: producer_settings(&a),
        latencies: vec![("delivery", outcome.delivery)],
    })
}

/// Per-consumer target: read each partition from `from` up to `to` (exclusive), or
/// until `stop` is set.
struct ConsumerPlan {
    partitions: Vec<(TopicPartition, i64, Option<i64>)>,
}

struct ConsumeOutcome {
    records: u64,
    bytes: u64,
    e2e: Histogram<u64>,
}

fn consumer_config(fetch_min_bytes: i32, max_partition_fetch_bytes: i32) -> ConsumerConfig {
    ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        fetch_min_bytes,
        max_partition_fetch_bytes,
        ..ConsumerConfig::default()
    }
}

/// Split `tps` over `n` consumers: consumer i gets partitions p with p % n == i.
fn split(tps: &[(TopicPartition, i64, Option<i64>)], n: usize) -> Vec<ConsumerPlan> {
    (0..n)
        .map(|i| ConsumerPlan {
            partitions: tps
                .iter()
                .filter(|(tp, _, _)| tp.partition as usize % n == i)
                .cloned()
                .collect(),
        })
        .collect()
}

/// Poll until every partition of the plan reached its end offset, `limit` records were
/// consumed in total, or `stop` is set. With `epoch`, the first 8 bytes of each value
/// are an intended send time (ns since `epoch`) and feed the end-to-end histogram.
#[allow(clippy::too_many_arguments)]
async fn run_consumer(
    client: Client,
    config: ConsumerConfig,
    plan: ConsumerPlan,
    wait: Duration,
    total: Arc<AtomicU64>,
    limit: Option<u64>,
    stop: Arc<AtomicBool>,
    epoch: Option<Instant>,
    mut ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<ConsumeOutcome, Error> {
    let mut consumer = Consumer::new(client, config);
    consumer.assign(plan.partitions.iter().map(|(tp, _, _)| tp.clone()));
    let mut ends: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for (tp, from, to) in &plan.partitions {
        consumer.seek(tp, *from)?;
        if let Some(to) = to {
            ends.insert(tp.clone(), *to);
        }
    }
    let mut out = ConsumeOutcome {
        records: 0,
        bytes: 0,
        e2e: new_histogram(),
    };
    let bounded = !ends.is_empty() && ends.len() == plan.partitions.len();
    // The same ends by partition number (a run reads one topic), for the per-record
    // check without building a TopicPartition per record.
    let end_of: BTreeMap<i32, i64> = ends.iter().map(|(tp, e)| (tp.partition, *e)).collect();
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if limit.is_some_and(|l| total.load(Ordering::Relaxed) >= l) {
            break;
        }
        if bounded
            && ends
                .iter()
                .all(|(tp, end)| consumer.position(tp).is_some_and(|p| p >= *end))
        {
            break;
        }
        if plan.partitions.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        // Until `ready` is signalled, poll without waiting: the first poll looks up the
        // leaders and positions the consumer, and only then may e2e start producing.
        let records = consumer
            .poll(if ready.is_some() {
                Duration::ZERO
            } else {
                wait
            })
            .await?;
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        let now = Instant::now();
        let mut n = 0u64;
        for r in &records {
            if let Some(end) = end_of.get(&r.partition) {
                if r.offset >= *end {
                    continue;
                }
            }
            n += 1;
            out.bytes +=
                (r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len)) as u64;
            if let (Some(epoch), Some(v)) = (epoch, &r.value) {
                if let Some(stamp) = v.get(..8) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(stamp);
                    let sent = epoch + Duration::from_nanos(u64::from_be_bytes(b));
                    let us = now.saturating_duration_since(sent).as_micros() as u64;
                    out.e2e.saturating_record(us.max(1));
                }
            }
        }
        out.records += n;
        total.fetch_add(n, Ordering::Relaxed);
    }
    Ok(out)
}

async fn consume(global: &GlobalArgs, a: ConsumeArgs) -> PerfResult<Report> {
    if a.consumers == 0 {
        return Err(PerfError::Usage("--consumers must be at least 1".into()));
    }
    let client = connect(global).await?;
    let tps = partitions_of(&client, &a.topic).await?;
    let admin = Admin::new(client.clone());
    let starts = admin
        .list_offsets(
            &tps.iter()
                .map(|tp| (tp.clone(), OffsetSpec::Earliest))
                .collect::<Vec<_>>(),
        )
        .await?;
    let ends = if a.num_records.is_none() {
        Some(
            admin
                .list_offsets(
                    &tps.iter()
                        .map(|tp| (tp.clone(), OffsetSpec::Latest))
                        .collect::<Vec<_>>(),
                )
                .await?,
        )
    } else {
        None
    };
    let plan: Vec<(TopicPartition, i64, Option<i64>)> = tps
        .iter()
        .map(|tp| {
            let from = starts.get(tp).map_or(0, |o| o.offset.max(0));
            let to = ends
                .as_ref()
                .map(|e| e.get(tp).map_or(from, |o| o.offset.max(from)));
            (tp.clone(), from, to)
        })
        .collect();
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let wait = Duration::from_millis(a.fetch_max_wait_ms);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in split(&plan, a.consumers) {
        let client = connect(global).await?;
        tasks.push(tokio::spawn(run_consumer(
            client,
            consumer_config(a.fetch_min_bytes, a.max_partition_fetch_bytes),
            p,
            wait,
            total.clone(),
            a.num_records,
            stop.clone(),
            None,
            None,
        )));
    }
    let timer = {
        let stop = stop.clone();
        let timeout = a.timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let mut records = 0;
    let mut bytes = 0;
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(o)) => {
                records += o.records;
                bytes += o.bytes;
            }
            Ok(Err(e)) => {
                eprintln!("warning: a consumer failed: {e}");
                errors += 1;
            }
            Err(e) => return Err(PerfError::Broker(format!("consumer task failed: {e}"))),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    timer.abort();
    if stop.load(Ordering::Relaxed) {
        eprintln!("warning: stopped by --timeout");
        errors += 1;
    }
    Ok(Report {
        mode: "consume",
        records,
        bytes,
        errors,
        seconds,
        settings: json!({
            "topic": a.topic,
            "consumers": a.consumers,
            "num_records": a.num_records,
            "fetch_max_wait_ms": a.fetch_max_wait_ms,
            "fetch_min_bytes": a.fetch_min_bytes,
            "max_partition_fetch_bytes": a.max_partition_fetch_bytes,
        }),
        latencies: Vec::new(),
    })
}

async fn e2e(global: &GlobalArgs, a: E2eArgs) -> PerfResult<Report> {
    let pa = a.producer.clone();
    check_producer_args(&pa, true)?;
    if a.consumers == 0 {
        return Err(PerfError::Usage("--consumers must be at least 1".into()));
    }
    let client = connect(global).await?;
    ensure_topic(&client, &pa.topic, pa.partitions).await?;
    let tps = partitions_of(&client, &pa.topic).await?;
    let ends = Admin::new(client.clone())
        .list_offsets(
            &tps.iter()
                .map(|tp| (tp.clone(), OffsetSpec::Latest))
                .collect::<Vec<_>>(),
        )
        .await?;
    let plan: Vec<(TopicPartition, i64, Option<i64>)> = tps
        .iter()
        .map(|tp| {
            (
                tp.clone(),
                ends.get(tp).map_or(0, |o| o.offset.max(0)),
                None,
            )
        })
        .collect();
    let epoch = Instant::now();
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let wait = Duration::from_millis(a.fetch_max_wait_ms);
    let mut consumers = Vec::new();
    let mut ready = Vec::new();
    for p in split(&plan, a.consumers) {
        let client = connect(global).await?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        ready.push(ready_rx);
        consumers.push(tokio::spawn(run_consumer(
            client,
            consumer_config(1, 1 << 20),
            p,
            wait,
            total.clone(),
            None,
            stop.clone(),
            Some(epoch),
            Some(ready_tx),
        )));
    }
    // Produce only once every consumer has fetched: records sent while a consumer is
    // still looking up leaders would measure its start-up, not end-to-end latency.
    for r in ready {
        let _ = r.await;
    }
    let outcome = run_producers(global, &pa, epoch, true).await?;
    // Wait for the consumers to see everything that was acknowledged (bounded).
    let deadline = Instant::now() + Duration::from_secs(30).max(wait * 4);
    while total.load(Ordering::Relaxed) < outcome.acked
        && Instant::now() < deadline
        && consumers.iter().any(|c| !c.is_finished())
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut e2e = new_histogram();
    let mut consumed = 0;
    let mut errors = outcome.errors;
    for c in consumers {
        match c.await {
            Ok(Ok(o)) => {
                consumed += o.records;
                let _ = e2e.add(&o.e2e);
            }
            Ok(Err(e)) => {
                eprintln!("warning: a consumer failed: {e}");
                errors += 1;
            }
            Err(e) => return Err(PerfError::Broker(format!("consumer task failed: {e}"))),
        }
    }
    if consumed < outcome.acked {
        eprintln!(
            "warning: consumed {consumed} of {} acknowledged records",
            outcome.acked
        );
        errors += 1;
    }
    let mut settings = producer_settings(&pa);
    settings["consumers"] = json!(a.consumers);
    settings["fetch_max_wait_ms"] = json!(a.fetch_max_wait_ms);
    settings["consumed"] = json!(consumed);
    Ok(Report {
        mode: "e2e",
        records: outcome.acked,
        bytes: outcome.acked * pa.record_size as u64,
        errors,
        seconds: outcome.seconds,
        settings,
        latencies: vec![("delivery", outcome.delivery), ("end_to_end", e2e)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn split_round_robin() {
        let tps: Vec<_> = (0..5)
            .map(|p| (TopicPartition::new("t", p), 0, None))
            .collect();
        let plans = split(&tps, 2);
        let parts = |i: usize| -> Vec<i32> {
            plans[i]
                .partitions
                .iter()
                .map(|(tp, _, _)| tp.partition)
                .collect()
        };
        assert_eq!(parts(0), vec![0, 2, 4]);
        assert_eq!(parts(1), vec![1, 3]);
    }

    #[test]
    fn payload_is_letters() {
        let p = payload(100, 1);
        assert_eq!(p.len(), 100);
        assert!(p.iter().all(u8::is_ascii_uppercase));
    }
}
