//! Storage engine throughput: page-cache append, durable append with group commit, and
//! sequential read. Compare with `benches/disk-baseline.sh` run on the same filesystem
//! (see BENCHMARKS.md); absolute figures on shared VMs mean little on their own.
//!
//! `cargo bench --bench storage`; set RUNNEL_BENCH_DIR to put the logs on a given
//! filesystem (default: a temp dir under ./target).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runnel_protocol::record_batch::builder::batch_of_values;
use runnel_storage::{Log, LogConfig, OpenMode, SharedLog};

const BATCH_BYTES: usize = 16 * 1024;

fn bench_root() -> PathBuf {
    let root = std::env::var_os("RUNNEL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data"));
    std::fs::create_dir_all(&root).expect("bench dir");
    root
}

/// A 16 KiB batch: 16 records of ~1 KiB, as a producer with 1 KiB records would send.
fn sixteen_kib_batch() -> Vec<u8> {
    let value = vec![0x5au8; 1000];
    let b = batch_of_values(0, 16, &value);
    assert!(b.len() <= BATCH_BYTES + 512);
    b
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 * 1024 * 1024,
        ..LogConfig::default()
    }
}

fn append(c: &mut Criterion) {
    let batch = sixteen_kib_batch();
    let per_iter = 64 * 1024 * 1024 / batch.len();
    let mut g = c.benchmark_group("append");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Bytes((per_iter * batch.len()) as u64));
    g.bench_function("page_cache_16KiB_batches", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir_in(bench_root()).unwrap();
                let mut log = Log::open(dir.path(), config(), OpenMode::Recover).unwrap();
                let buf = batch.clone();
                let start = Instant::now();
                for _ in 0..per_iter {
                    log.append(&buf, 0).unwrap();
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

/// Run `appenders` threads that each append `in_flight` copies of `batch`, then wait for
/// them to be durable (`SharedLog::sync_to`), until `batches` are written in all; one fresh
/// log per iteration. Returns the time spent.
fn timed_durable_appends(
    batch: &[u8],
    batches: usize,
    appenders: usize,
    in_flight: usize,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = tempfile::tempdir_in(bench_root()).unwrap();
        let log = Arc::new(SharedLog::new(
            Log::open(dir.path(), config(), OpenMode::Recover).unwrap(),
        ));
        let start = Instant::now();
        let threads: Vec<_> = (0..appenders)
            .map(|_| {
                let log = log.clone();
                let buf = batch.to_vec();
                std::thread::spawn(move || {
                    for _ in 0..batches / appenders / in_flight {
                        let mut last = 0;
                        for _ in 0..in_flight {
                            last = log.append(&buf, 0).unwrap().last_offset;
                        }
                        log.sync_to(last + 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        total += start.elapsed();
    }
    total
}

fn durable_append(c: &mut Criterion) {
    let batch = sixteen_kib_batch();
    let per_iter = 16 * 1024 * 1024 / batch.len();
    let mut g = c.benchmark_group("durable_append");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Bytes((per_iter * batch.len()) as u64));
    // (appenders, batches each appender writes before waiting for durability). One in
    // flight is a strictly synchronous appender; eight is a producer that pipelines
    // (max.in.flight plus linger), which is how real producers drive acks=all.
    for (appenders, in_flight) in [(1usize, 1usize), (4, 1), (16, 1), (1, 8), (4, 8)] {
        g.bench_function(
            format!("{appenders}_appenders_{in_flight}_in_flight"),
            |b| {
                b.iter_custom(|iters| {
                    timed_durable_appends(&batch, per_iter, appenders, in_flight, iters)
                })
            },
        );
    }
    g.finish();
}

/// Durable append with the batches librdkafka builds by default (`batch.size` is 1 MB):
/// what a pipelining acks=all producer hands the broker under load.
fn durable_append_1mib(c: &mut Criterion) {
    let value = vec![0x5au8; 1000];
    let batch = batch_of_values(0, 1024, &value);
    assert!(batch.len() <= config().max_message_bytes as usize);
    let per_iter = 256 * 1024 * 1024 / batch.len();
    let mut g = c.benchmark_group("durable_append");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes((per_iter * batch.len()) as u64));
    for (appenders, in_flight) in [(1usize, 1usize), (4, 1), (4, 2)] {
        g.bench_function(
            format!("{appenders}_appenders_1MiB_batches_{in_flight}_in_flight"),
            |b| {
                b.iter_custom(|iters| {
                    timed_durable_appends(&batch, per_iter, appenders, in_flight, iters)
                })
            },
        );
    }
    g.finish();
}

fn sequential_read(c: &mut Criterion) {
    let batch = sixteen_kib_batch();
    let dir = tempfile::tempdir_in(bench_root()).unwrap();
    let mut log = Log::open(dir.path(), config(), OpenMode::Recover).unwrap();
    let batches = 512 * 1024 * 1024 / batch.len();
    let buf = batch.clone();
    for _ in 0..batches {
        log.append(&buf, 0).unwrap();
    }
    let end = log.log_end_offset();
    let total_bytes = log.size_bytes();
    let mut g = c.benchmark_group("read");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Bytes(total_bytes));
    g.bench_function("sequential_1MiB_fetches_page_cache", |b| {
        let mut out = Vec::with_capacity(2 << 20);
        b.iter(|| {
            let mut offset = 0;
            let mut read = 0u64;
            while offset < end {
                let r = log.read(offset, 1 << 20, u64::MAX).unwrap();
                let slice = r.slice.unwrap();
                slice.read_into(&mut out).unwrap();
                read += slice.len;
                // The next fetch starts after the last whole batch returned.
                offset = r.first_batch_offset.unwrap() + 16 * (slice.len / batch.len() as u64);
            }
            assert_eq!(read, total_bytes);
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    append,
    durable_append,
    durable_append_1mib,
    sequential_read
);
criterion_main!(benches);
