//! The log cleaner (compaction), retention and their crash safety.

use std::collections::HashMap;
use std::path::Path;

use runnel_records::record_batch::builder::{ProducerFields, Record as NewRecord};
use runnel_records::record_batch::{BatchIter, Compression, Strictness};
use runnel_records::records::{batch_records, build_batch};
use runnel_storage::cleaner::{self, find_key};
use runnel_storage::layout::{self, FileKind, SegmentFile};
use runnel_storage::{CleanerSettings, Log, LogConfig, OpenMode, SharedLog, Throttle};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// A record as read back: offset, timestamp, key, value, headers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 256,
        segment_index_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

fn settings(now_ms: i64) -> CleanerSettings {
    CleanerSettings {
        now_ms,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        min_cleanable_dirty_ratio: 0.5,
        delete_retention_ms: 86_400_000,
        dedupe_buffer_bytes: 64 << 20,
        force: true,
        upper_bound: u64::MAX,
    }
}

/// Append one batch of `records` (key, value) stamped from `ts`, each with a header
/// naming its position. Returns the records as they should read back.
fn append(
    log: &SharedLog,
    codec: Compression,
    ts: i64,
    records: &[(Option<&str>, Option<String>)],
) -> Vec<Rec> {
    let headers: Vec<String> = (0..records.len()).map(|i| format!("h{i}")).collect();
    let new: Vec<NewRecord<'_>> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| NewRecord {
            timestamp_delta: i as i64,
            key: k.map(str::as_bytes),
            value: v.as_deref().map(str::as_bytes),
            headers: vec![("origin", Some(headers[i].as_bytes()))],
        })
        .collect();
    let batch = build_batch(codec, ts, &new, ProducerFields::NONE).unwrap();
    let info = log.append(&batch, ts).unwrap();
    records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Rec {
            offset: info.first_offset + i as u64,
            timestamp: ts + i as i64,
            key: k.map(|k| k.as_bytes().to_vec()),
            value: v.as_ref().map(|v| v.as_bytes().to_vec()),
            headers: vec![(b"origin".to_vec(), Some(headers[i].as_bytes().to_vec()))],
        })
        .collect()
}

/// Every record of the log from its start, decoded, checking batch validity.
fn read_records(log: &mut Log) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let r = log.read(offset, 1 << 20, u64::MAX).expect("read");
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_vec().unwrap();
        for item in BatchIter::new(&bytes, Strictness::Stored) {
            let (pos, h) = item.expect("stored batches are valid");
            let batch = &bytes[pos..pos + h.total_len()];
            let records = batch_records(batch, 64 << 20).unwrap();
            for r in records.records() {
                let r = r.unwrap();
                let o = records.offset(&r) as u64;
                if o < offset {
                    continue;
                }
                out.push(Rec {
                    offset: o,
                    timestamp: records.timestamp(&r),
                    key: r.key.map(<[u8]>::to_vec),
                    value: r.value.map(<[u8]>::to_vec),
                    headers: r
                        .headers()
                        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                        .collect(),
                });
            }
            offset = h.last_offset() as u64 + 1;
        }
    }
    out
}

/// What compaction of everything below `cleanable_end` must leave: the latest record of
/// each key there (tombstones included), and every record from `cleanable_end` on.
fn expected_after_clean(all: &[Rec], cleanable_end: u64) -> Vec<Rec> {
    let mut latest: HashMap<&[u8], u64> = HashMap::new();
    for r in all.iter().filter(|r| r.offset < cleanable_end) {
        if let Some(k) = &r.key {
            latest.insert(k, r.offset);
        }
    }
    all.iter()
        .filter(|r| {
            r.offset >= cleanable_end
                || r.key
                    .as_deref()
                    .is_some_and(|k| latest.get(k) == Some(&r.offset))
        })
        .cloned()
        .collect()
}

/// Write 40 batches of 5 records over 12 keys, rolling every 8 batches; key k3 gets a
/// tombstone in the last batch. Returns everything written.
fn fill(log: &SharedLog, codec: Compression, ts0: i64) -> Vec<Rec> {
    fill_rolling(log, codec, ts0, 8)
}

fn fill_rolling(log: &SharedLog, codec: Compression, ts0: i64, roll_every: u64) -> Vec<Rec> {
    let mut all = Vec::new();
    for b in 0..40u64 {
        let keys: Vec<String> = (0..5).map(|i| format!("k{}", (b * 5 + i) % 12)).collect();
        let records: Vec<(Option<&str>, Option<String>)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let value = if b == 39 && k == "k3" {
                    None
                } else {
                    Some(format!("value-{b}-{i}-{}", "x".repeat(40)))
                };
                (Some(k.as_str()), value)
            })
            .collect();
        all.extend(append(log, codec, ts0 + b as i64 * 10, &records));
        if b % roll_every == roll_every - 1 {
            log.lock().unwrap().roll().unwrap();
        }
    }
    all
}

#[test]
fn compaction_keeps_the_latest_record_per_key_with_offsets_for_every_codec() {
    for codec in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let log = SharedLog::new(Log::open(dir.path(), config(), OpenMode::Recover).unwrap());
        let ts0 = 1_700_000_000_000;
        let all = fill(&log, codec, ts0);
        let cleanable_end = *log.lock().unwrap().segment_base_offsets().last().unwrap();
        let before = log.lock().unwrap().size_bytes();

        let stats = cleaner::clean(&log, &settings(ts0 + 1000), &mut Throttle::unlimited())
            .unwrap()
            .expect("a forced pass cleans");
        let expected = expected_after_clean(&all, cleanable_end);
        let got = read_records(&mut log.lock().unwrap());
        assert_eq!(got, expected, "{codec:?}");
        assert_eq!(stats.end_offset, cleanable_end);
        assert_eq!(
            stats.records_removed,
            (all.len() - expected.len()) as u64,
            "{codec:?}"
        );
        assert!(
            log.lock().unwrap().size_bytes() < before,
            "{codec:?}: nothing shrank"
        );
        // The tombstone survives: delete.retention.ms has not passed.
        assert!(got
            .iter()
            .any(|r| r.key.as_deref() == Some(b"k3") && r.value.is_none()));

        // A read inside a gap left by compaction returns the next record kept.
        let gap = (0..cleanable_end)
            .find(|o| !expected.iter().any(|r| r.offset == *o))
            .expect("compaction left a gap");
        let r = log.lock().unwrap().read(gap, 1, u64::MAX).unwrap();
        let slice = r.slice.expect("data after the gap");
        let bytes = slice.read_to_vec().unwrap();
        let (_, h) = BatchIter::new(&bytes, Strictness::Stored)
            .next()
            .unwrap()
            .unwrap();
        assert!(h.last_offset() as u64 >= gap);

        // Nothing dirty: a second unforced pass does nothing.
        let mut again = settings(ts0 + 1000);
        again.force = false;
        assert_eq!(
            cleaner::clean(&log, &again, &mut Throttle::unlimited()).unwrap(),
            None
        );

        // The cleaned log reopens (clean and after a crash) with the same content.
        log.lock().unwrap().close().unwrap();
        drop(log);
        for mode in [OpenMode::Clean, OpenMode::Recover] {
            let mut reopened = Log::open(dir.path(), config(), mode).unwrap();
            assert_eq!(read_records(&mut reopened), expected, "{codec:?} {mode:?}");
            assert_eq!(reopened.recovery_report().truncated_bytes, 0);
        }
    }
}

#[test]
fn tombstones_go_after_delete_retention_and_the_key_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let log = SharedLog::new(Log::open(dir.path(), config(), OpenMode::Recover).unwrap());
    let ts = 1_700_000_000_000;
    append(
        &log,
        Compression::Zstd,
        ts,
        &[
            (Some("alice"), Some("alice@example.com".into())),
            (Some("bob"), Some("bob@example.com".into())),
        ],
    );
    append(&log, Compression::Zstd, ts + 10, &[(Some("alice"), None)]);
    log.lock().unwrap().roll().unwrap();
    let mut s = settings(ts + 100);
    s.delete_retention_ms = 1000;
    cleaner::clean(&log, &s, &mut Throttle::unlimited())
        .unwrap()
        .unwrap();
    let found = find_key(&log, b"alice").unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].tombstone);

    // Before delete.retention.ms nothing is due; after it the tombstone goes.
    s.force = false;
    s.now_ms = ts + 500;
    assert_eq!(
        cleaner::needs_cleaning(&log, &s).unwrap(),
        None,
        "nothing dirty and the tombstone is young"
    );
    s.now_ms = ts + 10 + 1000;
    assert!(cleaner::needs_cleaning(&log, &s).unwrap().is_some());
    let stats = cleaner::clean(&log, &s, &mut Throttle::unlimited())
        .unwrap()
        .unwrap();
    assert_eq!(stats.tombstones_removed, 1);
    assert!(find_key(&log, b"alice").unwrap().is_empty());
    assert_eq!(find_key(&log, b"bob").unwrap().len(), 1);
    // And no byte of the value is left in any file of the directory.
    assert!(!dir_contains(dir.path(), b"alice@example.com"));
    assert!(dir_contains(dir.path(), b"bob@example.com"));
}

fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn a_small_dedupe_buffer_cleans_in_several_passes_to_the_same_result() {
    let ts0 = 1_700_000_000_000;
    let big = tempfile::tempdir().unwrap();
    let small = tempfile::tempdir().unwrap();
    let a = SharedLog::new(Log::open(big.path(), config(), OpenMode::Recover).unwrap());
    let b = SharedLog::new(Log::open(small.path(), config(), OpenMode::Recover).unwrap());
    // Segments of two batches: at most ten keys each.
    let all = fill_rolling(&a, Compression::Lz4, ts0, 2);
    fill_rolling(&b, Compression::Lz4, ts0, 2);
    let end = *a.lock().unwrap().segment_base_offsets().last().unwrap();
    cleaner::clean(&a, &settings(ts0), &mut Throttle::unlimited())
        .unwrap()
        .unwrap();
    // Room for ten keys: one segment's worth per pass.
    let mut s = settings(ts0);
    s.dedupe_buffer_bytes = 32 * 10;
    let mut passes = 0;
    while let Some(st) = cleaner::clean(&b, &s, &mut Throttle::unlimited()).unwrap() {
        assert!(st.end_offset > st.first_dirty, "no progress: {st:?}");
        passes += 1;
        assert!(passes <= 40, "does not converge");
    }
    assert!(passes > 1, "expected several passes, got {passes}");
    assert_eq!(cleaner::first_dirty_offset(small.path()), end);
    let want = expected_after_clean(&all, end);
    assert_eq!(read_records(&mut a.lock().unwrap()), want);
    assert_eq!(read_records(&mut b.lock().unwrap()), want);
}

/// Copy every regular file of `from` into a fresh directory.
fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}

#[test]
fn a_crash_at_any_point_of_the_swap_leaves_the_old_log_or_the_new_one() {
    let ts0 = 1_700_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let log = SharedLog::new(Log::open(dir.path(), config(), OpenMode::Recover).unwrap());
    let all = fill(&log, Compression::Snappy, ts0);
    let bases = log.lock().unwrap().segment_base_offsets();
    let end = *bases.last().unwrap();
    log.lock().unwrap().flush().unwrap();
    let original = copy_dir(dir.path());

    cleaner::clean(&log, &settings(ts0), &mut Throttle::unlimited())
        .unwrap()
        .unwrap();
    // With 1 MiB segments the whole cleanable range is one group, cleaned into the
    // first segment.
    assert_eq!(
        log.lock().unwrap().segment_base_offsets(),
        vec![bases[0], end]
    );
    let cleaned = std::fs::read(layout::log_file(dir.path(), bases[0])).unwrap();
    let want_new = expected_after_clean(&all, end);
    let want_old = all.clone();

    let check = |name: &str, setup: &dyn Fn(&Path), want: &[Rec]| {
        let d = copy_dir(original.path());
        setup(d.path());
        for mode in [OpenMode::Recover, OpenMode::Clean] {
            let d2 = copy_dir(d.path());
            let mut log = Log::open(d2.path(), config(), mode).unwrap();
            assert_eq!(read_records(&mut log), want, "{name} {mode:?}");
            let left: Vec<String> = std::fs::read_dir(d2.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    matches!(
                        layout::parse_base_offset(n),
                        Some((_, FileKind::Swap { .. } | FileKind::Cleaned))
                    )
                })
                .collect();
            assert!(left.is_empty(), "{name}: leftovers {left:?}");
        }
    };
    let swap = |d: &Path| layout::swap_file(d, bases[0], end);
    // Killed while writing the cleaned file, or after it but before the commit point.
    check(
        "partial .cleaned",
        &|d| {
            std::fs::write(
                layout::cleaned_file(d, bases[0]),
                &cleaned[..cleaned.len() / 2],
            )
            .unwrap()
        },
        &want_old,
    );
    check(
        "whole .cleaned",
        &|d| std::fs::write(layout::cleaned_file(d, bases[0]), &cleaned).unwrap(),
        &want_old,
    );
    // Killed after the commit point, before any old segment was deleted.
    check(
        "swap committed",
        &|d| std::fs::write(swap(d), &cleaned).unwrap(),
        &want_new,
    );
    // Killed after deleting some of the old segments.
    check(
        "half deleted",
        &|d| {
            std::fs::write(swap(d), &cleaned).unwrap();
            for b in &bases[..bases.len() / 2] {
                for f in SegmentFile::ALL {
                    let _ = std::fs::remove_file(layout::segment_file(d, *b, f));
                }
            }
        },
        &want_new,
    );
}

#[test]
fn retention_by_time_and_size_removes_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), OpenMode::Recover).unwrap();
    let ts0 = 1_700_000_000_000;
    for seg in 0..5i64 {
        for i in 0..10 {
            let b = runnel_records::record_batch::builder::batch_of_values(
                ts0 + seg * 1000 + i,
                4,
                &[7u8; 100],
            );
            log.append(&b, ts0).unwrap();
        }
        log.roll().unwrap();
    }
    let bases = log.segment_base_offsets();
    assert_eq!(bases.len(), 6, "five full segments and an empty active one");
    // Segments 0 and 1 are older than 1.5 s at ts0 + 3000.
    let out = log.apply_retention(1500, -1, ts0 + 3000, u64::MAX).unwrap();
    assert_eq!(out.segments_deleted, 2);
    assert_eq!(log.log_start_offset(), bases[2]);
    assert!(!layout::log_file(dir.path(), bases[0]).exists());
    // Nothing is deleted above the high watermark.
    let out = log.apply_retention(0, -1, ts0 + 100_000, bases[3]).unwrap();
    assert_eq!(out.segments_deleted, 1);
    assert_eq!(log.log_start_offset(), bases[3]);
    // By size: keep at most one segment's bytes.
    let one = log.size_bytes() / 2;
    let out = log.apply_retention(-1, one as i64, ts0, u64::MAX).unwrap();
    assert_eq!(out.segments_deleted, 1);
    assert_eq!(log.log_start_offset(), bases[4]);
    // Everything, the active segment rolled first; appends go on at the end.
    let end = log.log_end_offset();
    log.apply_retention(0, -1, ts0 + 100_000, u64::MAX).unwrap();
    assert_eq!(log.log_start_offset(), end);
    let b = runnel_records::record_batch::builder::batch_of_values(ts0, 1, b"x");
    assert_eq!(log.append(&b, ts0).unwrap().first_offset, end);
}

#[test]
fn file_delete_delay_keeps_deleted_files_until_due_and_a_restart_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        file_delete_delay_ms: 60_000,
        ..config()
    };
    let mut log = Log::open(dir.path(), cfg.clone(), OpenMode::Recover).unwrap();
    let ts0 = 1_700_000_000_000;
    let b = runnel_records::record_batch::builder::batch_of_values(ts0, 3, b"old");
    log.append(&b, ts0).unwrap();
    log.roll().unwrap();
    let out = log.apply_retention(10, -1, ts0 + 1000, u64::MAX).unwrap();
    assert_eq!(out.segments_deleted, 1);
    let deleted = layout::deleted_file(&layout::log_file(dir.path(), 0));
    assert!(deleted.exists());
    assert_eq!(log.next_deletion_due(), Some(ts0 + 1000 + 60_000));
    assert_eq!(log.purge_deleted(ts0 + 2000).unwrap(), 0);
    assert!(deleted.exists());
    assert!(log.purge_deleted(ts0 + 61_000).unwrap() >= 1);
    assert!(!deleted.exists());

    // A .deleted file left by a crash goes on the next open.
    std::fs::write(layout::deleted_file(&layout::log_file(dir.path(), 1)), b"x").unwrap();
    drop(log);
    let _log = Log::open(dir.path(), cfg, OpenMode::Recover).unwrap();
    assert!(!layout::deleted_file(&layout::log_file(dir.path(), 1)).exists());
}
