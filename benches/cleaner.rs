//! Log cleaner throughput: MB/s of log cleaned (bytes of segment files read by a pass),
//! uncompressed and lz4, 1 KiB values over 10k keys each written several times.
//!
//! `cargo bench --bench cleaner`; set RUNNEL_BENCH_DIR to put the logs on a given
//! filesystem (default: a temp dir under ./target).

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use runnel_protocol::record_batch::builder::{ProducerFields, Record};
use runnel_protocol::record_batch::Compression;
use runnel_protocol::records::build_batch;
use runnel_storage::cleaner;
use runnel_storage::{CleanerSettings, Log, LogConfig, OpenMode, SharedLog, Throttle};

/// Bytes of log to clean per pass in `cargo bench` (the `--test` run uses less).
const LOG_BYTES: usize = 64 << 20;
const KEYS: usize = 10_000;

fn bench_root() -> PathBuf {
    let root = std::env::var_os("RUNNEL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data"));
    std::fs::create_dir_all(&root).expect("bench dir");
    root
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 << 20,
        ..LogConfig::default()
    }
}

/// A log of about `bytes` in 16-record batches of ~1 KiB values over `KEYS` keys,
/// rolled so that everything but an empty active segment is cleanable.
fn build_template(dir: &Path, codec: Compression, bytes: usize, keys: usize) -> u64 {
    let log = SharedLog::new(Log::open(dir, config(), OpenMode::Recover).unwrap());
    // Hex text from a simple generator: compresses about 2:1, like typical JSON events.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let value: Vec<u8> = (0..1000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b"0123456789abcdef"[(seed & 15) as usize]
        })
        .collect();
    let mut n = 0usize;
    let mut written = 0usize;
    while written < bytes {
        let names: Vec<String> = (0..16).map(|i| format!("key-{}", (n + i) % keys)).collect();
        let records: Vec<Record<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, k)| Record {
                timestamp_delta: i as i64,
                key: Some(k.as_bytes()),
                value: Some(&value),
                headers: vec![],
            })
            .collect();
        let batch = build_batch(codec, 1_700_000_000_000, &records, ProducerFields::NONE).unwrap();
        log.append(&batch, 0).unwrap();
        n += 16;
        written += batch.len();
    }
    let mut guard = log.lock().unwrap();
    guard.roll().unwrap();
    guard.close().unwrap();
    guard.size_bytes()
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn settings() -> CleanerSettings {
    CleanerSettings {
        now_ms: 1_700_000_100_000,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        min_cleanable_dirty_ratio: 0.5,
        delete_retention_ms: 86_400_000,
        dedupe_buffer_bytes: 128 << 20,
        force: true,
        upper_bound: u64::MAX,
    }
}

fn clean(c: &mut Criterion) {
    // Outside `cargo bench` (CI's `cargo test --bench`, or `-- --test`) criterion runs
    // each routine once: keep the log small there. `cargo bench` passes `--bench`.
    let test_mode =
        !std::env::args().any(|a| a == "--bench") || std::env::args().any(|a| a == "--test");
    let (bytes, keys) = if test_mode {
        (1 << 20, 100)
    } else {
        (LOG_BYTES, KEYS)
    };
    let mut g = c.benchmark_group("cleaner");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for (name, codec) in [("none", Compression::None), ("lz4", Compression::Lz4)] {
        let template = tempfile::tempdir_in(bench_root()).unwrap();
        let size = build_template(template.path(), codec, bytes, keys);
        g.throughput(Throughput::Bytes(size));
        g.bench_function(format!("clean_{name}_10k_keys"), |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir_in(bench_root()).unwrap();
                    copy_dir(template.path(), dir.path());
                    let log =
                        SharedLog::new(Log::open(dir.path(), config(), OpenMode::Clean).unwrap());
                    (dir, log)
                },
                |(dir, log)| {
                    let stats = cleaner::clean(&log, &settings(), &mut Throttle::unlimited())
                        .unwrap()
                        .expect("a forced pass cleans");
                    assert!(stats.records_removed > 0);
                    (dir, log)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, clean);
criterion_main!(benches);
