//! Transactional against non-transactional produce throughput, on librdkafka (the
//! `rdkafka` crate), in one run: an idempotent producer without transactions, and a
//! transactional producer committing every 1, 10 and 100 batches. The modes run
//! interleaved over several rounds (the order rotates each round); the summary gives
//! each mode's median, the spread across rounds, the ratio to the non-transactional
//! median, and the latency of `commit_transaction` (pooled over the rounds).
//!
//! ```sh
//! benches/transactions.sh          # builds, starts the release broker, runs this
//! cargo bench --bench transactions -- --brokers 127.0.0.1:9092 --rounds 5
//! ```
//!
//! What a batch is: `--batch-records` records (default 128) of `--record-size` bytes
//! (default 1024) to one partition. The producer runs with `batch.num.messages` equal
//! to the batch's record count and a `linger.ms` of 10 s, so librdkafka sends a record
//! batch when, and only when, it holds exactly that many records: one batch per
//! produce request, never split or merged. Batch `i` goes to partition
//! `i % --partitions` (default 1). With `--flush-each-batch` (the default) the driver
//! waits for each batch's delivery reports before it sends the next, so batches and
//! commits are strictly sequential; with `--pipeline` it waits only before a commit
//! (librdkafka's default of 5 requests in flight). Every mode sends `--batches`
//! batches per round (default 1000; a multiple of 100) with acks=all and idempotence.
//! Before the clock starts, each producer is warmed up with one batch (in its own
//! committed transaction for the transactional modes): metadata, connections and the
//! producer id are start-up, not throughput.
//!
//! Options: `--brokers`, `--topic-prefix` (default `txnbench`; each mode and round writes
//! its own topic, `{prefix}-{mode}-r{round}`, created with `--partitions`), `--rounds`
//! (default 5), `--modes` (default `idem,txn1,txn10,txn100`), `--json PATH` (every run's
//! figures), and `-X key=value` for any other librdkafka setting. MB/s is 10^6 bytes of
//! record values per second. Prints a Markdown table on stdout.
//!
//! Run with no arguments (as `cargo test --bench '*'` does) it prints its usage and
//! exits: it needs a broker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::{json, Value};

const USAGE: &str = "usage: transactions --brokers HOST:PORT [--rounds N] [--batches N] \
[--batch-records N] [--record-size B] [--partitions N] [--modes idem,txn1,txn10,txn100] \
[--flush-each-batch | --pipeline] [--topic-prefix P] [--json PATH] [-X key=value]...";

const T: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Idempotent, no transactions.
    Idem,
    /// Transactional, a commit every N batches.
    Txn(u64),
}

impl Mode {
    fn name(self) -> String {
        match self {
            Mode::Idem => "idem".into(),
            Mode::Txn(n) => format!("txn{n}"),
        }
    }

    fn label(self) -> String {
        match self {
            Mode::Idem => "idempotent, no transactions".into(),
            Mode::Txn(1) => "transactional, 1 batch per transaction".into(),
            Mode::Txn(n) => format!("transactional, {n} batches per transaction"),
        }
    }
}

struct Opts {
    brokers: String,
    rounds: usize,
    batches: u64,
    batch_records: usize,
    record_size: usize,
    partitions: i32,
    modes: Vec<Mode>,
    pipeline: bool,
    topic_prefix: String,
    json: Option<String>,
    extra: Vec<(String, String)>,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    if s == "idem" {
        return Ok(Mode::Idem);
    }
    match s.strip_prefix("txn").map(str::parse::<u64>) {
        Some(Ok(n)) if n > 0 => Ok(Mode::Txn(n)),
        _ => Err(format!("unknown mode {s} (idem, or txnN with N > 0)")),
    }
}

fn parse_args(args: &[String]) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        brokers: String::new(),
        rounds: 5,
        batches: 1000,
        batch_records: 128,
        record_size: 1024,
        partitions: 1,
        modes: vec![Mode::Idem, Mode::Txn(1), Mode::Txn(10), Mode::Txn(100)],
        pipeline: false,
        topic_prefix: "txnbench".into(),
        json: None,
        extra: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        let num = |v: String| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{a}: not a whole number: {v}"))
        };
        match a.as_str() {
            "--bench" => {}
            "--brokers" => o.brokers = val()?,
            "--rounds" => o.rounds = num(val()?)? as usize,
            "--batches" => o.batches = num(val()?)?,
            "--batch-records" => o.batch_records = num(val()?)? as usize,
            "--record-size" => o.record_size = num(val()?)? as usize,
            "--partitions" => {
                o.partitions = i32::try_from(num(val()?)?).map_err(|_| "--partitions too large")?
            }
            "--modes" => {
                o.modes = val()?
                    .split(',')
                    .map(parse_mode)
                    .collect::<Result<_, _>>()?
            }
            "--flush-each-batch" => o.pipeline = false,
            "--pipeline" => o.pipeline = true,
            "--topic-prefix" => o.topic_prefix = val()?,
            "--json" => o.json = Some(val()?),
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
    if o.brokers.is_empty() {
        return Ok(None);
    }
    if o.rounds == 0 || o.batches == 0 || o.batch_records == 0 || o.partitions < 1 {
        return Err("--rounds, --batches, --batch-records and --partitions must be > 0".into());
    }
    for m in &o.modes {
        if let Mode::Txn(n) = m {
            if !o.batches.is_multiple_of(*n) {
                return Err(format!("--batches {} is not a multiple of {n}", o.batches));
            }
        }
    }
    // librdkafka caps a batch at message.max.bytes (1,000,000 by default); a larger one
    // would be split and a batch would no longer be one produce request.
    if o.batch_records * (o.record_size + 16) > 900_000 {
        return Err("a batch must stay under 900,000 bytes (batch-records × record-size)".into());
    }
    Ok(Some(o))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn create_topic(o: &Opts, topic: &str) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &o.brokers)
        .create()
        .map_err(|e| format!("admin client: {e}"))?;
    let t = NewTopic::new(topic, o.partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(T));
    let results =
        block_on(admin.create_topics([&t], &opts)).map_err(|e| format!("CreateTopics: {e}"))?;
    for r in results {
        if let Err((t, code)) = r {
            if code != RDKafkaErrorCode::TopicAlreadyExists {
                return Err(format!("creating {t}: {code:?}"));
            }
        }
    }
    Ok(())
}

/// Counts acknowledgements; a failed delivery is kept, not retried. `done` (acked or
/// failed) is what the driver waits on: rdkafka's `flush` polls in steps of up to
/// 100 ms, which would be most of a batch's time here, while the producer's own
/// polling thread runs this callback as soon as the report arrives.
struct Ctx {
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    done: Mutex<u64>,
    cv: Condvar,
}

impl Ctx {
    /// Wait until `n` records in all have a delivery report.
    fn wait_done(&self, n: u64) -> Result<(), String> {
        let deadline = Instant::now() + T;
        let mut done = self.done.lock().map_err(|_| "poisoned")?;
        while *done < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("{} of {n} records acknowledged after {T:?}", *done));
            }
            done = self.cv.wait_timeout(done, left).map_err(|_| "poisoned")?.0;
        }
        Ok(())
    }
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut f) = self.first_error.lock() {
                    f.get_or_insert_with(|| e.to_string());
                }
            }
        }
        if let Ok(mut d) = self.done.lock() {
            *d += 1;
            self.cv.notify_all();
        }
    }
}

fn producer(o: &Opts, txn_id: Option<&str>) -> Result<ThreadedProducer<Ctx>, String> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &o.brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // A batch leaves when it holds batch.num.messages records, never on a timer.
        .set("batch.num.messages", o.batch_records.to_string())
        .set("batch.size", "100000000")
        .set("linger.ms", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.codec", "none")
        .set("message.timeout.ms", "120000");
    if let Some(id) = txn_id {
        cfg.set("transactional.id", id)
            .set("transaction.timeout.ms", "120000");
    }
    for (k, v) in &o.extra {
        cfg.set(k, v);
    }
    let ctx = Ctx {
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
        done: Mutex::new(0),
        cv: Condvar::new(),
    };
    cfg.create_with_context(ctx)
        .map_err(|e| format!("producer: {e}"))
}

/// Queue one batch's records for `partition`; librdkafka sends them as one batch.
fn send_batch(
    p: &ThreadedProducer<Ctx>,
    topic: &str,
    partition: i32,
    value: &[u8],
    n: usize,
) -> Result<(), String> {
    for _ in 0..n {
        let mut record = BaseRecord::<[u8], [u8], ()>::to(topic)
            .partition(partition)
            .payload(value);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => return Err(format!("send: {e}")),
            }
        }
    }
    Ok(())
}

struct RunResult {
    mode: Mode,
    round: usize,
    topic: String,
    records: u64,
    errors: u64,
    seconds: f64,
    /// Microseconds of each `commit_transaction` in the timed part.
    commits_us: Vec<u64>,
    /// Microseconds from the first record queued to the last acknowledged, for the first
    /// batch of each transaction and for the others (only when each batch is awaited).
    first_batch_us: Vec<u64>,
    other_batch_us: Vec<u64>,
    /// Microseconds of each `begin_transaction`.
    begins_us: Vec<u64>,
}

impl RunResult {
    fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.seconds
    }
    fn mb_per_sec(&self, record_size: usize) -> f64 {
        (self.records * record_size as u64) as f64 / 1e6 / self.seconds
    }
}

fn run(o: &Opts, mode: Mode, round: usize, value: &[u8]) -> Result<RunResult, String> {
    let topic = format!("{}-{}-r{round}", o.topic_prefix, mode.name());
    create_topic(o, &topic)?;
    let txn_id = match mode {
        Mode::Idem => None,
        Mode::Txn(_) => Some(format!("{topic}-{}", std::process::id())),
    };
    let p = producer(o, txn_id.as_deref())?;
    let fail = |what: &str, e: KafkaError| format!("{}: {what}: {e}", mode.name());
    // Warm-up, not timed: one batch (committed, for the transactional modes).
    if txn_id.is_some() {
        p.init_transactions(T)
            .map_err(|e| fail("init_transactions", e))?;
        p.begin_transaction()
            .map_err(|e| fail("begin_transaction", e))?;
    }
    send_batch(&p, &topic, 0, value, o.batch_records)?;
    p.flush(T).map_err(|e| fail("flush", e))?;
    if txn_id.is_some() {
        p.commit_transaction(T)
            .map_err(|e| fail("commit_transaction", e))?;
    }
    p.context().acked.store(0, Ordering::Relaxed);
    // Records sent so far, the warm-up's included (`done` counts those too).
    let mut sent = o.batch_records as u64;

    let mut commits_us = Vec::new();
    // Send to acknowledged, per batch: the first of a transaction waits for
    // AddPartitionsToTxn too.
    let (mut first_batch_us, mut other_batch_us) = (Vec::new(), Vec::new());
    let mut begins_us = Vec::new();
    let begin = Instant::now();
    for b in 0..o.batches {
        if let Mode::Txn(n) = mode {
            if b % n == 0 {
                let t = Instant::now();
                p.begin_transaction()
                    .map_err(|e| fail("begin_transaction", e))?;
                begins_us.push(t.elapsed().as_micros() as u64);
            }
        }
        let partition = (b % o.partitions as u64) as i32;
        let t_batch = Instant::now();
        send_batch(&p, &topic, partition, value, o.batch_records)?;
        sent += o.batch_records as u64;
        let commit = matches!(mode, Mode::Txn(n) if (b + 1) % n == 0);
        if !o.pipeline || commit || b + 1 == o.batches {
            p.context().wait_done(sent)?;
            // The report callback runs before librdkafka drops its event, and until then
            // the event counts as outstanding: commit_transaction's flush would see it
            // and fall into rdkafka's 100 ms poll. Wait the few microseconds instead.
            let deadline = Instant::now() + T;
            while p.in_flight_count() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        if !o.pipeline {
            let us = t_batch.elapsed().as_micros() as u64;
            match mode {
                Mode::Txn(n) if b % n == 0 => first_batch_us.push(us),
                _ => other_batch_us.push(us),
            }
        }
        if commit {
            // Timed once the batches are acknowledged: the commit alone (EndTxn and
            // the markers), not the last batch's produce.
            let t = Instant::now();
            p.commit_transaction(T)
                .map_err(|e| fail("commit_transaction", e))?;
            commits_us.push(t.elapsed().as_micros() as u64);
        }
    }
    let seconds = begin.elapsed().as_secs_f64();
    let ctx = p.context();
    if let Ok(f) = ctx.first_error.lock() {
        if let Some(e) = f.as_ref() {
            eprintln!("warning: {}: first delivery error: {e}", mode.name());
        }
    }
    Ok(RunResult {
        mode,
        round,
        topic,
        records: ctx.acked.load(Ordering::Relaxed),
        errors: ctx.failed.load(Ordering::Relaxed),
        seconds,
        commits_us,
        first_batch_us,
        other_batch_us,
        begins_us,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse_args(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            // `cargo test --bench '*'` runs this with no arguments: nothing to do.
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let value: Vec<u8> = (0..o.record_size)
        .map(|i| b'A' + ((i * 7 + i / 26) % 26) as u8)
        .collect();
    let mut results = Vec::new();
    for round in 1..=o.rounds {
        // Rotate the order so no mode always runs first (or on a warmer machine).
        let k = (round - 1) % o.modes.len();
        let order: Vec<Mode> = o.modes[k..].iter().chain(&o.modes[..k]).copied().collect();
        for mode in order {
            match run(&o, mode, round, &value) {
                Ok(r) => {
                    eprintln!(
                        "round {round} {}: {} records, {} errors, {:.0} records/s, {:.1} MB/s",
                        mode.name(),
                        r.records,
                        r.errors,
                        r.records_per_sec(),
                        r.mb_per_sec(o.record_size)
                    );
                    results.push(r);
                }
                Err(e) => {
                    eprintln!("round {round}: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    report(&o, &results);
}

fn report(o: &Opts, results: &[RunResult]) {
    let of = |m: Mode| results.iter().filter(move |r| r.mode == m);
    let idem_rps = median(of(Mode::Idem).map(|r| r.records_per_sec()).collect());
    println!(
        "| mode | records/s (median) | MB/s (median) | MB/s across rounds | / non-transactional | \
         transactions per round | commit_transaction p50 / p99 / max (ms) | \
         batch send to ack p50, first of a transaction / others (ms) | begin_transaction p50 (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    for &m in &o.modes {
        let rps: Vec<f64> = of(m).map(|r| r.records_per_sec()).collect();
        let mbs: Vec<f64> = of(m).map(|r| r.mb_per_sec(o.record_size)).collect();
        let (lo, hi) = min_max(&mbs);
        let (rps_med, mbs_med) = (median(rps), median(mbs));
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        for r in of(m) {
            for us in &r.commits_us {
                h.saturating_record((*us).max(1));
            }
        }
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let commits = if h.is_empty() {
            "–".to_string()
        } else {
            format!(
                "{:.2} / {:.2} / {:.2} ({} commits)",
                ms(0.5),
                ms(0.99),
                h.max() as f64 / 1000.0,
                h.len()
            )
        };
        let med_ms = |f: &dyn Fn(&RunResult) -> &Vec<u64>| {
            let v: Vec<f64> = of(m)
                .flat_map(|r| f(r).iter().map(|u| *u as f64 / 1000.0))
                .collect();
            if v.is_empty() {
                "–".to_string()
            } else {
                format!("{:.2}", median(v))
            }
        };
        let batch = format!(
            "{} / {}",
            med_ms(&|r| &r.first_batch_us),
            med_ms(&|r| &r.other_batch_us)
        );
        let begin = med_ms(&|r| &r.begins_us);
        let per_round = match m {
            Mode::Idem => "–".to_string(),
            Mode::Txn(n) => (o.batches / n).to_string(),
        };
        let ratio = if m == Mode::Idem {
            "1.00x".to_string()
        } else {
            format!("{:.2}x", rps_med / idem_rps)
        };
        println!(
            "| {} | {:.0} | {:.1} | {:.1}-{:.1} | {ratio} | {per_round} | {commits} | {batch} | {begin} |",
            m.label(),
            rps_med,
            mbs_med,
            lo,
            hi
        );
        summary.push(json!({
            "mode": m.name(),
            "records_per_sec_median": rps_med,
            "mb_per_sec_median": mbs_med,
            "mb_per_sec_min": lo,
            "mb_per_sec_max": hi,
            "ratio_to_idem": rps_med / idem_rps,
            "commit_p50_ms": (!h.is_empty()).then(|| ms(0.5)),
            "commit_p99_ms": (!h.is_empty()).then(|| ms(0.99)),
            "commit_max_ms": (!h.is_empty()).then(|| h.max() as f64 / 1000.0),
            "commits": h.len(),
        }));
    }
    println!();
    println!(
        "| round | {} |",
        o.modes
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(" MB/s | ")
            + " MB/s"
    );
    println!("|---|{}", "---|".repeat(o.modes.len()));
    for round in 1..=o.rounds {
        let cells: Vec<String> = o
            .modes
            .iter()
            .map(|&m| {
                results
                    .iter()
                    .find(|r| r.round == round && r.mode == m)
                    .map_or("–".into(), |r| {
                        format!("{:.1}", r.mb_per_sec(o.record_size))
                    })
            })
            .collect();
        println!("| {round} | {} |", cells.join(" | "));
    }
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    let expected = o.batches * o.batch_records as u64;
    let short: Vec<&str> = results
        .iter()
        .filter(|r| r.records != expected)
        .map(|r| r.topic.as_str())
        .collect();
    println!();
    println!(
        "Delivery errors: {errors}; runs with fewer than {expected} records acknowledged: {}.",
        if short.is_empty() {
            "none".to_string()
        } else {
            short.join(", ")
        }
    );
    if let Some(path) = &o.json {
        let runs: Vec<Value> = results
            .iter()
            .map(|r| {
                json!({
                    "mode": r.mode.name(),
                    "round": r.round,
                    "topic": r.topic,
                    "records": r.records,
                    "errors": r.errors,
                    "seconds": r.seconds,
                    "records_per_sec": r.records_per_sec(),
                    "mb_per_sec": r.mb_per_sec(o.record_size),
                    "commits_us": r.commits_us,
                    "first_batch_us": r.first_batch_us,
                    "other_batch_us": r.other_batch_us,
                    "begins_us": r.begins_us,
                })
            })
            .collect();
        let out = json!({
            "settings": {
                "brokers": o.brokers,
                "rounds": o.rounds,
                "batches": o.batches,
                "batch_records": o.batch_records,
                "record_size": o.record_size,
                "partitions": o.partitions,
                "pipeline": o.pipeline,
                "extra": o.extra.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            },
            "summary": summary,
            "runs": runs,
        });
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&out).unwrap_or_default())
        {
            eprintln!("warning: writing {path}: {e}");
        }
    }
}
