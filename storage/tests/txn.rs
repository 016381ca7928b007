//! Transactions in storage: the `.txnindex` (format, durability, recovery, removal) and
//! the cleaner's handling of transactional data, with real files.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use runnel_records::record_batch::builder::{encode_batch, encode_records, ProducerFields, Record};
use runnel_records::record_batch::{BatchIter, Strictness};
use runnel_records::records::batch_records;
use runnel_storage::cleaner::{self, find_key};
use runnel_storage::fault::{self, Action, FaultPlan, Op, Rule};
use runnel_storage::layout::{self, FileKind};
use runnel_storage::{
    AbortedTxn, CleanerSettings, Log, LogConfig, OpenMode, SharedLog, StorageError, Throttle,
};

/// Fault plans are process-wide: every test here takes this first.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

struct Uninstall;
impl Drop for Uninstall {
    fn drop(&mut self) {
        fault::uninstall();
    }
}

const TS: i64 = 1_700_000_000_000;

fn config(segment_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
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
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 1000,
        dedupe_buffer_bytes: 16 << 20,
        force: true,
        upper_bound: u64::MAX,
    }
}

/// A data batch; transactional for producer `pid` when `pid >= 0`.
fn data(pid: i64, records: &[(&str, Option<&str>)]) -> Vec<u8> {
    let new: Vec<Record<'_>> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            timestamp_delta: i as i64,
            key: Some(k.as_bytes()),
            value: v.map(str::as_bytes),
            headers: vec![],
        })
        .collect();
    let n = records.len() as i32;
    let (attributes, producer) = if pid >= 0 {
        (
            0x10,
            ProducerFields {
                producer_id: pid,
                producer_epoch: 0,
                base_sequence: 0,
            },
        )
    } else {
        (0, ProducerFields::NONE)
    };
    encode_batch(
        0,
        attributes,
        n - 1,
        TS,
        TS + n as i64 - 1,
        producer,
        n,
        &encode_records(&new),
    )
}

/// A commit or abort marker of producer `pid`: a control batch of one record whose key
/// is version 0 and the type, and whose value is version 0 and the coordinator epoch.
fn marker(pid: i64, commit: bool) -> Vec<u8> {
    let key = [0u8, 0, 0, commit as u8];
    let value = [0u8, 0, 0, 0, 0, 5];
    let rec = Record {
        key: Some(&key),
        value: Some(&value),
        ..Record::default()
    };
    encode_batch(
        0,
        0x30,
        0,
        TS,
        TS,
        ProducerFields {
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: -1,
        },
        1,
        &encode_records(&[rec]),
    )
}

fn aborted(pid: i64, first: u64, last: u64, lso: u64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

/// Every batch of the log as (base offset, is control, records as (offset, key, value)).
type Batch = (u64, bool, Vec<(u64, String, Option<String>)>);

fn batches(log: &mut Log) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let r = log.read(offset, 1 << 20, u64::MAX).unwrap();
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_vec().unwrap();
        for item in BatchIter::new(&bytes, Strictness::Stored) {
            let (pos, h) = item.unwrap();
            let records = batch_records(&bytes[pos..pos + h.total_len()], 1 << 20).unwrap();
            let recs = records
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    (
                        records.offset(&r) as u64,
                        String::from_utf8_lossy(r.key.unwrap_or_default()).into_owned(),
                        r.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                    )
                })
                .collect();
            out.push((h.base_offset as u64, h.is_control(), recs));
            offset = h.last_offset() as u64 + 1;
        }
    }
    out
}

/// The data records left, as (offset, key, value).
fn data_records(log: &mut Log) -> Vec<(u64, String, Option<String>)> {
    batches(log)
        .into_iter()
        .filter(|b| !b.1)
        .flat_map(|b| b.2)
        .collect()
}

fn txn_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            matches!(
                layout::parse_base_offset(n),
                Some((
                    _,
                    FileKind::TxnIndex
                        | FileKind::CleanedTxnIndex
                        | FileKind::TxnIndexSwap { .. }
                        | FileKind::Deleted(layout::SegmentFile::TxnIndex)
                ))
            )
        })
        .collect();
    names.sort();
    names
}

fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
        }
    }
    to
}

/// A log of three segments: an aborted transaction of producer 7 in the first (marker at
/// 3), a committed one of producer 8 spanning into the second, an aborted one of
/// producer 9 in the second (marker at 9), and one more abort of producer 7 in the
/// active third (marker at 12). Returns the log and its entries.
fn three_segments(dir: &Path) -> (SharedLog, Vec<AbortedTxn>) {
    let log = SharedLog::new(Log::open(dir, config(1 << 20), OpenMode::Recover).unwrap());
    let mut entries = Vec::new();
    let a = |b: &[u8]| log.append(b, TS).unwrap().first_offset;
    assert_eq!(a(&data(-1, &[("a", Some("a0"))])), 0);
    assert_eq!(
        a(&data(7, &[("a", Some("aborted-1")), ("b", Some("b1"))])),
        1
    );
    assert_eq!(a(&marker(7, false)), 3);
    entries.push(aborted(7, 1, 3, 4));
    log.append_aborted_txn(&entries[0]).unwrap();
    assert_eq!(a(&data(8, &[("c", Some("committed-c"))])), 4);
    log.lock().unwrap().roll().unwrap();
    assert_eq!(a(&data(9, &[("a", Some("aborted-2"))])), 5);
    assert_eq!(a(&data(8, &[("d", Some("committed-d"))])), 6);
    assert_eq!(a(&marker(8, true)), 7);
    assert_eq!(a(&data(9, &[("e", Some("aborted-e"))])), 8);
    assert_eq!(a(&marker(9, false)), 9);
    entries.push(aborted(9, 5, 9, 10));
    log.append_aborted_txn(&entries[1]).unwrap();
    log.lock().unwrap().roll().unwrap();
    assert_eq!(a(&data(7, &[("f", Some("aborted-3"))])), 10);
    assert_eq!(a(&data(-1, &[("g", Some("g0"))])), 11);
    assert_eq!(a(&marker(7, false)), 12);
    entries.push(aborted(7, 10, 12, 13));
    log.append_aborted_txn(&entries[2]).unwrap();
    log.sync_to(13).unwrap();
    (log, entries)
}

#[test]
fn entries_go_to_the_marker_segment_in_kafkas_format_and_reads_collect_the_overlap() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let (log, e) = three_segments(dir.path());
    assert_eq!(
        txn_files(dir.path()),
        [
            "00000000000000000000.txnindex",
            "00000000000000000005.txnindex",
            "00000000000000000010.txnindex",
        ]
    );
    // Kafka's bytes: version 0, pid, first, last, lso, big-endian.
    let bytes = std::fs::read(layout::txn_index_file(dir.path(), 0)).unwrap();
    let mut want = vec![0u8, 0];
    for x in [7i64, 1, 3, 4] {
        want.extend_from_slice(&x.to_be_bytes());
    }
    assert_eq!(bytes, want);

    assert_eq!(log.aborted_txns(0, 13).unwrap(), e);
    assert_eq!(log.aborted_txns(0, 1).unwrap(), []);
    assert_eq!(log.aborted_txns(0, 2).unwrap(), e[..1]);
    assert_eq!(log.aborted_txns(3, 5).unwrap(), e[..1]);
    assert_eq!(log.aborted_txns(4, 6).unwrap(), e[1..2]);
    assert_eq!(log.aborted_txns(9, 11).unwrap(), e[1..]);
    assert_eq!(log.aborted_txns(10, 11).unwrap(), e[2..]);
    assert_eq!(log.aborted_txns(13, 20).unwrap(), []);

    // Replayed markers add nothing.
    for t in &e {
        log.append_aborted_txn(t).unwrap();
    }
    assert_eq!(
        std::fs::metadata(layout::txn_index_file(dir.path(), 5))
            .unwrap()
            .len(),
        34
    );
    // A marker past the log end is refused, without poisoning.
    assert!(matches!(
        log.append_aborted_txn(&aborted(1, 13, 13, 13)),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // An entry that arrives out of order lands in order.
    let late = aborted(11, 0, 0, 0);
    log.append_aborted_txn(&late).unwrap();
    assert_eq!(log.aborted_txns(0, 2).unwrap(), [late, e[0]]);
    log.append_aborted_txn(&late).unwrap();
    assert_eq!(log.aborted_txns(0, 13).unwrap(), [late, e[0], e[1], e[2]]);

    // The same after a clean close and after a crash.
    let mut inner = log.into_inner().unwrap();
    inner.close().unwrap();
    drop(inner);
    for mode in [OpenMode::Clean, OpenMode::Recover] {
        let log = Log::open(dir.path(), config(1 << 20), mode).unwrap();
        assert_eq!(log.aborted_txns(0, 13).unwrap(), [late, e[0], e[1], e[2]]);
    }
}

#[test]
fn a_segment_without_aborts_has_no_file_and_a_missing_file_reads_empty() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = SharedLog::new(Log::open(dir.path(), config(1 << 20), OpenMode::Recover).unwrap());
    log.append(&data(8, &[("k", Some("v"))]), TS).unwrap();
    log.append(&marker(8, true), TS).unwrap();
    log.sync_to(2).unwrap();
    assert_eq!(txn_files(dir.path()), Vec::<String>::new());
    assert_eq!(log.aborted_txns(0, 2).unwrap(), []);
    log.append(&data(9, &[("k", Some("v"))]), TS).unwrap();
    log.append(&marker(9, false), TS).unwrap();
    log.append_aborted_txn(&aborted(9, 2, 3, 2)).unwrap();
    // Removed behind the log's back (an operator): reads as empty, no error.
    std::fs::remove_file(layout::txn_index_file(dir.path(), 0)).unwrap();
    assert_eq!(log.aborted_txns(0, 4).unwrap(), []);
}

#[test]
fn reopening_after_a_cut_at_every_byte_of_the_last_entry_keeps_the_whole_ones() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let (log, e) = three_segments(dir.path());
    // Two entries in the active segment.
    log.append(&data(7, &[("h", Some("h"))]), TS).unwrap();
    log.append(&marker(7, false), TS).unwrap();
    let last = aborted(7, 13, 14, 15);
    log.append_aborted_txn(&last).unwrap();
    log.sync_to(15).unwrap();
    drop(log);
    let path = layout::txn_index_file(dir.path(), 10);
    let full = std::fs::read(&path).unwrap();
    assert_eq!(full.len(), 68);
    for cut in 34..68 {
        let copy = copy_dir(dir.path());
        let p = layout::txn_index_file(copy.path(), 10);
        std::fs::write(&p, &full[..cut]).unwrap();
        let log = Log::open(copy.path(), config(1 << 20), OpenMode::Recover).unwrap();
        assert_eq!(log.aborted_txns(0, 15).unwrap(), e, "cut at {cut}");
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 34, "cut at {cut}");
        // And the next entry goes after the whole ones.
        let log = SharedLog::new(log);
        log.append_aborted_txn(&last).unwrap();
        assert_eq!(log.aborted_txns(14, 15).unwrap(), [last]);
    }
    // A corrupt entry (version 1) ends the index there.
    let copy = copy_dir(dir.path());
    let p = layout::txn_index_file(copy.path(), 10);
    let mut bad = full.clone();
    bad[1] = 1;
    std::fs::write(&p, &bad).unwrap();
    let log = Log::open(copy.path(), config(1 << 20), OpenMode::Clean).unwrap();
    assert_eq!(log.aborted_txns(0, 15).unwrap(), e[..2]);
}

#[test]
fn entries_whose_markers_recovery_cuts_go_with_them() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let (log, e) = three_segments(dir.path());
    drop(log);
    // The last marker (offset 12) is the active segment's last batch.
    let seg = layout::log_file(dir.path(), 10);
    let bytes = std::fs::read(&seg).unwrap();
    let marker_len = marker(7, false).len();
    let start = bytes.len() - marker_len;
    for cut in start..bytes.len() {
        let copy = copy_dir(dir.path());
        std::fs::write(layout::log_file(copy.path(), 10), &bytes[..cut]).unwrap();
        let log = Log::open(copy.path(), config(1 << 20), OpenMode::Recover).unwrap();
        assert_eq!(log.log_end_offset(), 12, "cut at {cut}");
        assert_eq!(log.aborted_txns(0, 13).unwrap(), e[..2], "cut at {cut}");
        assert_eq!(
            std::fs::metadata(layout::txn_index_file(copy.path(), 10))
                .unwrap()
                .len(),
            0
        );
    }
    // A cut in the second segment drops the third segment and its index too.
    let copy = copy_dir(dir.path());
    let second = layout::log_file(copy.path(), 5);
    let len = std::fs::metadata(&second).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&second)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    std::fs::remove_file(copy.path().join(layout::RECOVERY_POINT_FILE)).unwrap();
    let log = Log::open(copy.path(), config(1 << 20), OpenMode::Recover).unwrap();
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(log.aborted_txns(0, 13).unwrap(), e[..1]);
    // The cut segment's index is empty; the removed segment's is gone.
    assert_eq!(
        txn_files(copy.path()),
        [
            "00000000000000000000.txnindex",
            "00000000000000000005.txnindex"
        ]
    );
    assert_eq!(
        std::fs::metadata(layout::txn_index_file(copy.path(), 5))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn an_unreadable_or_huge_garbage_index_never_panics() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let (log, e) = three_segments(dir.path());
    drop(log);
    // A directory where the file should be: unreadable.
    let copy = copy_dir(dir.path());
    let p = layout::txn_index_file(copy.path(), 5);
    std::fs::remove_file(&p).unwrap();
    std::fs::create_dir(&p).unwrap();
    let log = Log::open(copy.path(), config(1 << 20), OpenMode::Recover).unwrap();
    assert_eq!(log.aborted_txns(0, 13).unwrap(), [e[0], e[2]]);
    // A sparse 16 GiB file of zeros: read in bounded chunks and cut.
    let copy = copy_dir(dir.path());
    let p = layout::txn_index_file(copy.path(), 5);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(16 << 30)
        .unwrap();
    let log = Log::open(copy.path(), config(1 << 20), OpenMode::Clean).unwrap();
    assert_eq!(log.aborted_txns(0, 13).unwrap(), e);
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 34);
}

#[test]
fn retention_and_log_start_offset_remove_the_index_with_its_segment() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let (log, e) = three_segments(dir.path());
    let mut inner = log.into_inner().unwrap();
    inner.advance_log_start_offset(5).unwrap();
    assert_eq!(
        txn_files(dir.path()),
        [
            "00000000000000000005.txnindex",
            "00000000000000000010.txnindex",
        ]
    );
    assert_eq!(inner.aborted_txns(5, 13).unwrap(), e[1..]);
    let outcome = inner.apply_retention(0, -1, TS + 10_000, 10).unwrap();
    assert_eq!(outcome.segments_deleted, 1);
    assert_eq!(txn_files(dir.path()), ["00000000000000000010.txnindex"]);
    drop(inner);

    // With file.delete.delay.ms: renamed first, then removed.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = three_segments(dir.path());
    let mut inner = log.into_inner().unwrap();
    let delayed = LogConfig {
        file_delete_delay_ms: 60_000,
        ..config(1 << 20)
    };
    inner.set_config(delayed).unwrap();
    inner.advance_log_start_offset(5).unwrap();
    assert_eq!(
        txn_files(dir.path()),
        [
            "00000000000000000000.txnindex.deleted",
            "00000000000000000005.txnindex",
            "00000000000000000010.txnindex",
        ]
    );
    inner.purge_deleted(i64::MAX).unwrap();
    assert_eq!(txn_files(dir.path()).len(), 2);
}

#[test]
fn the_cleaner_drops_aborted_data_keeps_markers_and_the_committed_latest() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let (log, e) = three_segments(dir.path());
    // Make the third segment cleanable too.
    log.lock().unwrap().roll().unwrap();
    log.append(&data(-1, &[("z", Some("z"))]), TS).unwrap();
    log.sync_to(14).unwrap();
    let stats = cleaner::clean(&log, &settings(TS + 10), &mut Throttle::unlimited())
        .unwrap()
        .expect("cleaned");
    assert_eq!(stats.end_offset, 13);
    let mut inner = log.lock().unwrap();
    // The aborted "a" values did not shadow a0; every aborted record is gone.
    assert_eq!(
        data_records(&mut inner),
        [
            (0, "a".into(), Some("a0".into())),
            (4, "c".into(), Some("committed-c".into())),
            (6, "d".into(), Some("committed-d".into())),
            (11, "g".into(), Some("g0".into())),
            (13, "z".into(), Some("z".into())),
        ]
    );
    let markers: Vec<u64> = batches(&mut inner)
        .iter()
        .filter(|b| b.1)
        .map(|b| b.0)
        .collect();
    assert_eq!(markers, [3, 7, 9, 12]);
    drop(inner);
    for gone in ["aborted-1", "aborted-2", "aborted-3", "aborted-e"] {
        assert!(!dir_contains(dir.path(), gone.as_bytes()), "{gone}");
    }
    // The entries stay while their data was dropped in this very pass: one file for
    // the one cleaned segment.
    assert_eq!(log.aborted_txns(0, 14).unwrap(), e);
    assert_eq!(txn_files(dir.path()), ["00000000000000000000.txnindex"]);
    // The next pass finds no data of them and drops the entries; the markers stay.
    log.append(&data(-1, &[("z", Some("z2"))]), TS).unwrap();
    log.lock().unwrap().roll().unwrap();
    log.sync_to(15).unwrap();
    cleaner::clean(&log, &settings(TS + 10), &mut Throttle::unlimited())
        .unwrap()
        .expect("cleaned");
    assert_eq!(log.aborted_txns(0, 15).unwrap(), []);
    assert_eq!(txn_files(dir.path()), Vec::<String>::new());
    let mut inner = log.into_inner().unwrap();
    let markers = batches(&mut inner).iter().filter(|b| b.1).count();
    assert_eq!(markers, 4);
    inner.close().unwrap();
    let mut reopened = Log::open(dir.path(), config(1 << 20), OpenMode::Recover).unwrap();
    assert_eq!(reopened.aborted_txns(0, 15).unwrap(), []);
    assert_eq!(data_records(&mut reopened).len(), 5);
}

#[test]
fn nothing_at_or_above_the_first_unstable_offset_is_cleaned() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = SharedLog::new(Log::open(dir.path(), config(1 << 20), OpenMode::Recover).unwrap());
    let a = |b: &[u8]| {
        let o = log.append(b, TS).unwrap().first_offset;
        log.lock().unwrap().roll().unwrap();
        o
    };
    a(&data(-1, &[("k", Some("old"))]));
    a(&data(-1, &[("k", Some("newer"))]));
    // An undecided transaction from offset 2: its "k" must not shadow anything yet.
    let fuo = a(&data(5, &[("k", Some("undecided"))]));
    a(&data(-1, &[("k", Some("after"))]));
    log.sync_to(4).unwrap();
    cleaner::clean_stable(
        &log,
        &settings(TS + 10),
        Some(fuo),
        &mut Throttle::unlimited(),
    )
    .unwrap()
    .expect("cleaned");
    assert_eq!(
        data_records(&mut log.lock().unwrap()),
        [
            (1, "k".into(), Some("newer".into())),
            (2, "k".into(), Some("undecided".into())),
            (3, "k".into(), Some("after".into())),
        ]
    );
    // The transaction aborts: the cleaner may now go past it, and drops it.
    let m = log.append(&marker(5, false), TS).unwrap().first_offset;
    log.append_aborted_txn(&aborted(5, 2, m, 2)).unwrap();
    log.lock().unwrap().roll().unwrap();
    log.sync_to(m + 1).unwrap();
    cleaner::clean_stable(&log, &settings(TS + 10), None, &mut Throttle::unlimited())
        .unwrap()
        .expect("cleaned");
    assert_eq!(
        data_records(&mut log.lock().unwrap()),
        [(3, "k".into(), Some("after".into()))]
    );
    assert!(!dir_contains(dir.path(), b"undecided"));
}

#[test]
fn a_tombstone_erases_a_key_written_in_a_committed_transaction() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = SharedLog::new(Log::open(dir.path(), config(1 << 20), OpenMode::Recover).unwrap());
    log.append(
        &data(4, &[("pii", Some("secret-value")), ("x", Some("1"))]),
        TS,
    )
    .unwrap();
    log.append(&marker(4, true), TS).unwrap();
    log.append(&data(-1, &[("pii", None)]), TS).unwrap();
    log.lock().unwrap().roll().unwrap();
    log.sync_to(4).unwrap();
    let s = settings(TS + 10);
    cleaner::clean(&log, &s, &mut Throttle::unlimited())
        .unwrap()
        .expect("cleaned");
    assert!(!dir_contains(dir.path(), b"secret-value"));
    // Past delete.retention.ms the tombstone goes too.
    let later = settings(TS + 10 + s.delete_retention_ms + 1);
    cleaner::clean(&log, &later, &mut Throttle::unlimited())
        .unwrap()
        .expect("cleaned");
    assert_eq!(find_key(&log, b"pii").unwrap(), []);
    assert_eq!(
        data_records(&mut log.lock().unwrap()),
        [(1, "x".into(), Some("1".into()))]
    );
}

#[test]
fn the_index_fsync_is_part_of_every_flush_that_covers_its_marker() {
    let _s = serial();
    let _u = Uninstall;
    let dir = tempfile::tempdir().unwrap();
    let log = SharedLog::new(Log::open(dir.path(), config(1 << 20), OpenMode::Recover).unwrap());
    log.append(&data(3, &[("k", Some("v"))]), TS).unwrap();
    log.append(&marker(3, false), TS).unwrap();
    log.append_aborted_txn(&aborted(3, 0, 1, 0)).unwrap();
    let plan = fault::install(FaultPlan::new(vec![
        Rule::new(Op::Fsync, Action::Fail).path("00000000000000000000.txnindex")
    ]));
    assert!(matches!(log.sync_to(2), Err(StorageError::Poisoned(_))));
    assert_eq!(plan.rules()[0].fired(), 1);
    assert_eq!(log.durable_offset(), 0);
    fault::uninstall();

    // An entry appended after a flush already covered its marker is synced at once.
    let dir = tempfile::tempdir().unwrap();
    let log = SharedLog::new(Log::open(dir.path(), config(1 << 20), OpenMode::Recover).unwrap());
    log.append(&data(3, &[("k", Some("v"))]), TS).unwrap();
    log.append(&marker(3, false), TS).unwrap();
    log.sync_to(2).unwrap();
    let plan = fault::install(FaultPlan::new(vec![
        Rule::new(Op::Fsync, Action::Fail).path("00000000000000000000.txnindex")
    ]));
    assert!(log.append_aborted_txn(&aborted(3, 0, 1, 0)).is_err());
    assert_eq!(plan.rules()[0].fired(), 1);
    assert!(log.is_offline());
}

#[test]
fn a_failed_or_short_index_write_poisons_the_log_and_reopens_whole() {
    let _s = serial();
    let _u = Uninstall;
    for action in [Action::Fail, Action::Short] {
        let dir = tempfile::tempdir().unwrap();
        let (log, e) = three_segments(dir.path());
        log.append(&data(7, &[("h", Some("h"))]), TS).unwrap();
        log.append(&marker(7, false), TS).unwrap();
        let plan = fault::install(FaultPlan::new(vec![
            Rule::new(Op::Write, action).path("00000000000000000010.txnindex")
        ]));
        let r = log.append_aborted_txn(&aborted(7, 13, 14, 15));
        assert!(matches!(r, Err(StorageError::Io(_))), "{action:?}: {r:?}");
        assert_eq!(plan.rules()[0].fired(), 1);
        fault::uninstall();
        assert!(log.is_offline());
        assert!(matches!(
            log.append_aborted_txn(&aborted(7, 13, 14, 15)),
            Err(StorageError::Poisoned(_))
        ));
        // No torn entry: cut back at once.
        assert_eq!(
            std::fs::metadata(layout::txn_index_file(dir.path(), 10))
                .unwrap()
                .len(),
            34
        );
        drop(log);
        let log =
            SharedLog::new(Log::open(dir.path(), config(1 << 20), OpenMode::Recover).unwrap());
        assert_eq!(log.aborted_txns(0, 15).unwrap(), e);
        // The replayed marker adds it.
        log.append_aborted_txn(&aborted(7, 13, 14, 15)).unwrap();
        assert_eq!(log.aborted_txns(13, 15).unwrap(), [aborted(7, 13, 14, 15)]);
    }
}

/// Leftovers a cleaning pass must not leave.
fn cleaner_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            matches!(
                layout::parse_base_offset(n),
                Some((
                    _,
                    FileKind::Cleaned
                        | FileKind::Swap { .. }
                        | FileKind::CleanedTxnIndex
                        | FileKind::TxnIndexSwap { .. }
                ))
            )
        })
        .collect()
}

#[test]
fn a_fault_in_the_cleaners_index_write_leaves_the_old_log() {
    let _s = serial();
    let _u = Uninstall;
    let cleaned = "00000000000000000000.txnindex.cleaned";
    let rules = [
        ("write", Op::Write, Action::Fail),
        ("short write", Op::Write, Action::Short),
        ("fsync", Op::Fsync, Action::Fail),
        ("rename", Op::Rename, Action::Fail),
    ];
    for (what, op, action) in rules {
        let dir = tempfile::tempdir().unwrap();
        let (log, e) = three_segments(dir.path());
        log.lock().unwrap().roll().unwrap();
        log.append(&data(-1, &[("z", Some("z"))]), TS).unwrap();
        log.sync_to(14).unwrap();
        let before = data_records(&mut log.lock().unwrap());
        let plan = fault::install(FaultPlan::new(vec![Rule::new(op, action).path(cleaned)]));
        let r = cleaner::clean(&log, &settings(TS + 10), &mut Throttle::unlimited());
        assert!(r.is_err(), "{what}: {r:?}");
        assert_eq!(plan.rules()[0].fired(), 1, "{what}");
        fault::uninstall();
        // Not committed: the log is as it was, and serves.
        assert!(!log.is_offline(), "{what}");
        assert_eq!(data_records(&mut log.lock().unwrap()), before, "{what}");
        assert_eq!(log.aborted_txns(0, 14).unwrap(), e, "{what}");
        assert_eq!(
            cleaner_leftovers(dir.path()),
            Vec::<String>::new(),
            "{what}"
        );
        drop(log);
        let mut reopened = Log::open(dir.path(), config(1 << 20), OpenMode::Recover).unwrap();
        assert_eq!(data_records(&mut reopened), before, "{what}");
        assert_eq!(reopened.aborted_txns(0, 14).unwrap(), e, "{what}");
        // And a clean afterwards succeeds.
        let log = SharedLog::new(reopened);
        cleaner::clean(&log, &settings(TS + 10), &mut Throttle::unlimited())
            .unwrap()
            .expect("cleaned");
        assert_eq!(log.aborted_txns(0, 14).unwrap(), e, "{what}");
    }
}

/// Build a directory as a crash mid-swap leaves it: the segments of `src`, plus a swap
/// of the first segment by a copy of itself and, if `txn`, its index swap holding `txn`.
fn crashed_swap(src: &Path, commit: bool, txn: &[AbortedTxn]) -> (tempfile::TempDir, u64) {
    let copy = copy_dir(src);
    let d = copy.path();
    let end = 5;
    let txn_swap = layout::txn_index_swap_file(d, 0, end);
    let mut bytes = Vec::new();
    for t in txn {
        bytes.extend_from_slice(&t.encode());
    }
    std::fs::write(&txn_swap, bytes).unwrap();
    if commit {
        std::fs::copy(layout::log_file(d, 0), layout::swap_file(d, 0, end)).unwrap();
    } else {
        std::fs::write(layout::cleaned_file(d, 0), b"partial").unwrap();
        std::fs::write(layout::cleaned_txn_index_file(d, 0), b"partial").unwrap();
    }
    (copy, end)
}

#[test]
fn a_crash_mid_swap_keeps_the_old_index_or_installs_the_new_one() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let (log, e) = three_segments(dir.path());
    drop(log);
    let new_entry = aborted(7, 2, 3, 4);
    // Not committed: the old index stays, the leftovers go.
    let (copy, _) = crashed_swap(dir.path(), false, &[new_entry]);
    // And an out-of-order entry's rewrite, interrupted.
    let tmp = layout::tmp_file(&layout::txn_index_file(copy.path(), 5));
    std::fs::write(&tmp, b"partial").unwrap();
    let log = Log::open(copy.path(), config(1 << 20), OpenMode::Recover).unwrap();
    assert_eq!(log.aborted_txns(0, 13).unwrap(), e);
    assert_eq!(cleaner_leftovers(copy.path()), Vec::<String>::new());
    assert!(!tmp.exists());
    // Committed: the swap's index replaces the old one.
    let (copy, _) = crashed_swap(dir.path(), true, &[new_entry]);
    let log = Log::open(copy.path(), config(1 << 20), OpenMode::Recover).unwrap();
    assert_eq!(log.aborted_txns(0, 13).unwrap(), [new_entry, e[1], e[2]]);
    assert_eq!(cleaner_leftovers(copy.path()), Vec::<String>::new());
    // Committed with no index: the old segment's index goes with it.
    let copy = copy_dir(dir.path());
    std::fs::copy(
        layout::log_file(copy.path(), 0),
        layout::swap_file(copy.path(), 0, 5),
    )
    .unwrap();
    let log = Log::open(copy.path(), config(1 << 20), OpenMode::Recover).unwrap();
    assert_eq!(log.aborted_txns(0, 13).unwrap(), e[1..]);
}

#[test]
fn interleaved_transactions_across_many_groups_clean_to_the_committed_records() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    // Small segments: every segment is a cleaner group of its own, and transactions
    // span them.
    let log = SharedLog::new(Log::open(dir.path(), config(300), OpenMode::Recover).unwrap());
    let a = |b: &[u8]| log.append(b, TS).unwrap().first_offset;
    a(&data(-1, &[("shared", Some("base"))]));
    let mut entries = Vec::new();
    let mut committed = Vec::new();
    for i in 0..8i64 {
        let (ab, co) = (100 + 2 * i, 101 + 2 * i);
        let first = a(&data(ab, &[("shared", Some(&format!("ABORTED-{i}-0")))]));
        let c0 = a(&data(co, &[(&format!("c{i}-0"), Some("COMMITTED"))]));
        a(&data(
            ab,
            &[(&format!("x{i}"), Some(&format!("ABORTED-{i}-1")))],
        ));
        let c1 = a(&data(co, &[(&format!("c{i}-1"), Some("COMMITTED"))]));
        let m = a(&marker(ab, false));
        let t = aborted(ab, first, m, first);
        log.append_aborted_txn(&t).unwrap();
        entries.push(t);
        a(&marker(co, true));
        committed.push((c0, format!("c{i}-0")));
        committed.push((c1, format!("c{i}-1")));
    }
    let end = log.lock().unwrap().log_end_offset();
    log.lock().unwrap().roll().unwrap();
    log.sync_to(end).unwrap();
    assert!(log.lock().unwrap().segment_count() > 8);
    assert_eq!(log.aborted_txns(0, end).unwrap(), entries);

    let stats = cleaner::clean(&log, &settings(TS + 10), &mut Throttle::unlimited())
        .unwrap()
        .expect("cleaned");
    assert_eq!(stats.end_offset, end);
    assert!(stats.segments_written > 2, "{stats:?}");
    let want: Vec<(u64, String, Option<String>)> =
        std::iter::once((0, "shared".into(), Some("base".into())))
            .chain(
                committed
                    .iter()
                    .map(|(o, k)| (*o, k.clone(), Some("COMMITTED".into()))),
            )
            .collect();
    assert_eq!(data_records(&mut log.lock().unwrap()), want);
    assert!(!dir_contains(dir.path(), b"ABORTED-"));
    let markers = batches(&mut log.lock().unwrap())
        .iter()
        .filter(|b| b.1)
        .count();
    assert_eq!(markers, 16);
    assert_eq!(log.aborted_txns(0, end).unwrap(), entries);

    // Reopened after a crash: the same.
    drop(log);
    let log = SharedLog::new(Log::open(dir.path(), config(300), OpenMode::Recover).unwrap());
    assert_eq!(log.aborted_txns(0, end).unwrap(), entries);
    assert_eq!(data_records(&mut log.lock().unwrap()), want);
    // The next pass drops the entries, not the markers.
    a_more(&log);
    cleaner::clean(&log, &settings(TS + 10), &mut Throttle::unlimited())
        .unwrap()
        .expect("cleaned");
    assert_eq!(log.aborted_txns(0, end).unwrap(), []);
    assert_eq!(txn_files(dir.path()), Vec::<String>::new());
    let markers = batches(&mut log.lock().unwrap())
        .iter()
        .filter(|b| b.1)
        .count();
    assert_eq!(markers, 16);
    assert_eq!(data_records(&mut log.lock().unwrap())[..want.len()], want);
}

fn a_more(log: &SharedLog) {
    let o = log.append(&data(-1, &[("more", Some("m"))]), TS).unwrap();
    log.lock().unwrap().roll().unwrap();
    log.sync_to(o.last_offset + 1).unwrap();
}

#[test]
fn reads_racing_appends_see_a_prefix_of_whole_entries() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(SharedLog::new(
        Log::open(dir.path(), config(1 << 20), OpenMode::Recover).unwrap(),
    ));
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut want = Vec::new();
            for pid in 0..300i64 {
                let first = log.append(&data(pid, &[("k", Some("v"))]), TS).unwrap();
                let m = log.append(&marker(pid, false), TS).unwrap();
                let t = aborted(pid, first.first_offset, m.first_offset, first.first_offset);
                log.append_aborted_txn(&t).unwrap();
                want.push(t);
            }
            want
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        let got = log.aborted_txns(0, u64::MAX).unwrap();
        for (i, t) in got.iter().enumerate() {
            assert_eq!(t.producer_id, i as i64);
            assert_eq!(t.last_offset, 2 * i as u64 + 1);
        }
        reads += 1;
    }
    let want = writer.join().unwrap();
    assert!(reads > 0);
    assert_eq!(log.aborted_txns(0, u64::MAX).unwrap(), want);
}
