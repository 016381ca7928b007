//! Append/read/recover tests of the partition log, including torn writes and corruption.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use runnel_records::record_batch::builder::batch_of_values;
use runnel_records::record_batch::{validate_batch, BatchHeader, BatchIter, Strictness};
use runnel_storage::layout;
use runnel_storage::{
    HeaderRewrite, Log, LogConfig, LogManager, OpenMode, SharedLog, StorageError, TopicPartition,
};

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

/// A batch of `count` records whose values encode `tag`, stamped `ts`.
fn batch(tag: u64, count: usize, value_len: usize, ts: i64) -> Vec<u8> {
    let mut value = vec![(tag % 251) as u8; value_len];
    value[..8.min(value_len)].copy_from_slice(&tag.to_be_bytes()[..8.min(value_len)]);
    batch_of_values(ts, count, &value)
}

/// Every batch of the log, in order, read back through `read`.
fn read_all(log: &mut Log) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let r = log.read(offset, 1 << 20, u64::MAX).expect("read");
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_vec().unwrap();
        for item in BatchIter::new(&bytes, Strictness::Stored) {
            let (pos, h) = item.expect("stored batches are valid");
            out.push((h, bytes[pos..pos + h.total_len()].to_vec()));
            offset = h.last_offset() as u64 + 1;
        }
    }
    out
}

fn same_except_base_offset(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a[8..] == b[8..]
}

#[test]
fn append_assigns_offsets_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
    let mut sent = Vec::new();
    let mut next = 0u64;
    for i in 0..50u64 {
        let b = batch(i, 1 + (i as usize % 4), 100, 1_000 + i as i64);
        let info = log.append(&b, 0).unwrap();
        assert_eq!(info.first_offset, next);
        next = info.last_offset + 1;
        sent.push((b, info.first_offset));
    }
    assert!(log.segment_count() > 1, "small segment.bytes must roll");
    let got = read_all(&mut log);
    assert_eq!(got.len(), sent.len());
    for ((h, bytes), (orig, first)) in got.iter().zip(&sent) {
        assert!(same_except_base_offset(bytes, orig));
        assert!(validate_batch(bytes, Strictness::Produce).is_ok());
        assert_eq!(h.base_offset, *first as i64);
        assert_eq!(
            i64::from_be_bytes(bytes[..8].try_into().unwrap()),
            *first as i64
        );
    }
}

/// The header rewrites land on disk with a valid CRC, and leave the record bytes as sent.
#[test]
fn append_rewriting_sets_epoch_and_log_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
    log.append(&batch(0, 2, 50, 1_000), 0).unwrap();
    let b = batch(1, 3, 50, 1_000);
    let rewrite = HeaderRewrite {
        partition_leader_epoch: Some(9),
        log_append_time: Some(77_000),
    };
    let info = log.append_rewriting(&b, rewrite, 88_000).unwrap();
    assert_eq!(info.first_offset, 2);
    assert_eq!(info.max_timestamp, 77_000);
    let got = read_all(&mut log);
    let (h, bytes) = &got[1];
    let checked = validate_batch(bytes, Strictness::Produce).expect("CRC valid after rewrite");
    assert_eq!(checked.partition_leader_epoch, 9);
    assert!(checked.is_log_append_time());
    assert_eq!(checked.max_timestamp, 77_000);
    assert_eq!(h.base_offset, 2);
    assert_eq!(&bytes[61..], &b[61..], "records as sent");
}

#[test]
fn read_from_middle_of_batch_returns_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
    log.append(&batch(0, 10, 20, 1), 0).unwrap(); // offsets 0..=9
    log.append(&batch(1, 10, 20, 2), 0).unwrap(); // offsets 10..=19
    let r = log.read(15, 1, u64::MAX).unwrap();
    assert_eq!(r.first_batch_offset, Some(10));
    let bytes = r.slice.unwrap().read_to_vec().unwrap();
    let h = validate_batch(&bytes, Strictness::Produce).unwrap();
    assert_eq!((h.base_offset, h.last_offset()), (10, 19));
    assert_eq!(
        h.total_len(),
        bytes.len(),
        "max_bytes=1 still returns exactly one whole batch"
    );
}

#[test]
fn read_respects_max_bytes_and_upper_bound() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        index_interval_bytes: 300,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg, OpenMode::Recover).unwrap();
    let len = batch(0, 1, 100, 0).len() as u64;
    for i in 0..100 {
        log.append(&batch(i, 1, 100, 0), 0).unwrap();
    }
    for max in [len, len + 1, 3 * len - 1, 3 * len, 10 * len + 5] {
        let s = log.read(7, max, u64::MAX).unwrap().slice.unwrap();
        assert_eq!(s.len, (max / len).max(1) * len, "max_bytes {max}");
    }
    let s = log.read(7, u64::MAX, 20).unwrap().slice.unwrap();
    assert_eq!(s.len, 13 * len, "stops before the upper bound");
    assert!(log.read(20, u64::MAX, 20).unwrap().slice.is_none());
    assert!(log.read(100, u64::MAX, u64::MAX).unwrap().slice.is_none());
    assert!(matches!(
        log.read(101, 10, u64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn invalid_batches_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        max_message_bytes: 1000,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), cfg, OpenMode::Recover).unwrap();
    log.append(&batch(0, 1, 10, 0), 0).unwrap();
    let size = log.size_bytes();

    let mut bad_crc = batch(1, 2, 10, 0);
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 1;
    assert!(matches!(
        log.append(&bad_crc, 0),
        Err(StorageError::InvalidBatch { .. })
    ));

    let too_big = batch(2, 1, 2000, 0);
    assert!(matches!(
        log.append(&too_big, 0),
        Err(StorageError::BatchTooLarge { .. })
    ));

    // A good batch followed by a torn one: the whole record set is refused.
    let mut set = batch(3, 1, 10, 0);
    let second = batch(4, 1, 10, 0);
    set.extend_from_slice(&second[..second.len() - 3]);
    assert!(matches!(
        log.append(&set, 0),
        Err(StorageError::InvalidBatch { .. })
    ));
    assert!(matches!(
        log.append(&Vec::new(), 0),
        Err(StorageError::EmptyRecordSet)
    ));

    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.size_bytes(), size);
}

#[test]
fn rolls_on_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg, OpenMode::Recover).unwrap();
    log.append(&batch(0, 1, 10, 10_000), 10_000).unwrap();
    log.append(&batch(1, 1, 10, 10_500), 10_500).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&batch(2, 1, 10, 11_000), 11_000).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    // Segment files are named by their 20-digit base offset.
    assert!(dir.path().join("00000000000000000002.log").exists());
    assert!(dir.path().join("00000000000000000002.index").exists());
    assert!(dir.path().join("00000000000000000002.timeindex").exists());
}

#[test]
fn segment_ms_counts_record_time_not_wall_clock() {
    // Kafka's timeWaitedForRoll: from the first batch's timestamp to the incoming one's.
    // Records far older than segment.ms (a replay) share a segment.
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg, OpenMode::Recover).unwrap();
    let now = 1_000_000_000;
    log.append(&batch(0, 1, 10, 10_000), now).unwrap();
    log.append(&batch(1, 1, 10, 10_500), now + 1).unwrap();
    assert_eq!(log.segment_count(), 1, "old records, 500 ms apart");
    log.append(&batch(2, 1, 10, 11_000), now + 2).unwrap();
    assert_eq!(
        log.segment_base_offsets(),
        vec![0, 2],
        "1000 ms of record time"
    );
}

#[test]
fn sealed_indexes_are_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
    for i in 0..40 {
        log.append(&batch(i, 1, 200, i as i64), 0).unwrap();
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 2);
    let first = layout::offset_index_file(dir.path(), bases[0]);
    let len = std::fs::metadata(&first).unwrap().len();
    assert!(
        len > 0 && len < 4096 && len.is_multiple_of(8),
        "sealed index trimmed to its entries, got {len}"
    );
    let active = layout::offset_index_file(dir.path(), bases[bases.len() - 1]);
    assert_eq!(
        std::fs::metadata(active).unwrap().len(),
        4096,
        "active index preallocated"
    );
}

#[test]
fn find_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
    for i in 0..60 {
        log.append(&batch(i, 2, 100, 1_000 + 10 * i as i64), 0)
            .unwrap();
    }
    assert!(log.segment_count() > 2);
    for target in [0, 1_000, 1_001, 1_005, 1_010, 1_300, 1_590] {
        let hit = log
            .find_timestamp(target)
            .unwrap()
            .expect("a batch at or after the target");
        let expect_batch = ((target - 1_000).max(0) + 9) / 10;
        assert_eq!(hit.batch.base_offset, expect_batch * 2, "target {target}");
        assert!(hit.batch.max_timestamp >= target);
    }
    assert!(log.find_timestamp(1_591).unwrap().is_none());
    let max = log.max_timestamp().unwrap().unwrap();
    assert_eq!(max.batch.max_timestamp, 1_590);
    assert_eq!(max.batch.base_offset, 118);
}

#[test]
fn a_segment_whose_time_index_filled_keeps_its_max_timestamp_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // Room for 4 time index entries and 6 offset index entries: the time index fills
    // first. One record set of 8 batches (an entry each after the first) overfills it.
    let config = LogConfig {
        segment_index_bytes: 48,
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let ts = |i: u64| 1_000 + 1_000 * i as i64;
    let mut log = Log::open(dir.path(), config.clone(), OpenMode::Recover).unwrap();
    let set: Vec<u8> = (0..8).flat_map(|i| batch(i, 1, 50, ts(i))).collect();
    log.append(&set, 0).unwrap();
    // The time index is full: this rolls, and the roll records the max timestamp.
    assert!(log.append(&batch(8, 1, 50, ts(8)), 0).unwrap().rolled);
    log.close().unwrap();
    drop(log);

    let mut log = Log::open(dir.path(), config, OpenMode::Clean).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 8]);
    // Found in the first segment, not skipped for a max timestamp below it.
    let hit = log.find_timestamp(ts(7)).unwrap().unwrap();
    assert_eq!(hit.batch.base_offset, 7);
    // Time retention counts from the segment's newest record.
    let kept = log.apply_retention(1_500, -1, ts(7) + 1_000, u64::MAX);
    assert_eq!(kept.unwrap().segments_deleted, 0);
    assert_eq!(log.log_start_offset(), 0);
}

#[test]
fn advancing_log_start_deletes_whole_segments_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
    for i in 0..40 {
        log.append(&batch(i, 1, 200, 0), 0).unwrap();
    }
    let bases = log.segment_base_offsets();
    let cut = bases[2] + 1;
    let deleted = log.advance_log_start_offset(cut).unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(log.log_start_offset(), cut);
    assert_eq!(log.segment_base_offsets()[0], bases[2]);
    assert!(!layout::log_file(dir.path(), bases[0]).exists());
    assert!(matches!(
        log.read(cut - 1, 100, u64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    log.close().unwrap();
    drop(log);
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Clean).unwrap();
    assert_eq!(
        log.log_start_offset(),
        cut,
        "log start offset survives restart"
    );
    assert_eq!(log.log_end_offset(), 40);
    // Moving the start to the end deletes everything and keeps appending.
    log.advance_log_start_offset(40).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.append(&batch(0, 1, 1, 0), 0).unwrap().first_offset, 40);
}

#[test]
fn clean_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
    for i in 0..30 {
        log.append(&batch(i, 3, 150, i as i64), 0).unwrap();
    }
    let before = read_all(&mut log);
    log.close().unwrap();
    drop(log);
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Clean).unwrap();
    assert_eq!(log.log_end_offset(), 90);
    assert_eq!(read_all(&mut log), before);
    assert_eq!(log.append(&batch(99, 1, 1, 0), 0).unwrap().first_offset, 90);
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
    for i in 0..40 {
        log.append(&batch(i, 2, 150, i as i64), 0).unwrap();
    }
    let before = read_all(&mut log);
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    drop(log);
    std::fs::remove_file(layout::offset_index_file(dir.path(), bases[0])).unwrap();
    std::fs::write(layout::offset_index_file(dir.path(), bases[1]), [0xff; 24]).unwrap();
    std::fs::write(layout::time_index_file(dir.path(), bases[2]), [0x7f; 7]).unwrap();
    let last = bases[bases.len() - 1];
    std::fs::write(layout::offset_index_file(dir.path(), last), [0x01; 16]).unwrap();
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Clean).unwrap();
    assert_eq!(read_all(&mut log), before);
    for offset in [0, 5, 33, 79] {
        let r = log.read(offset, 1, u64::MAX).unwrap();
        let b = r.slice.unwrap().read_to_vec().unwrap();
        let h = validate_batch(&b, Strictness::Stored).unwrap();
        assert!(h.base_offset as u64 <= offset && offset <= h.last_offset() as u64);
    }
    let first_index = layout::offset_index_file(dir.path(), bases[0]);
    assert!(
        std::fs::metadata(first_index).unwrap().len() > 0,
        "rebuilt index written"
    );
}

/// Build a log of `n` batches and drop it without a clean close (as a crash would).
fn crashed_log(dir: &Path, n: u64) -> Vec<Vec<u8>> {
    let mut log = Log::open(dir, small_config(), OpenMode::Recover).unwrap();
    let mut sent = Vec::new();
    for i in 0..n {
        let b = batch(i, 1 + i as usize % 3, 90, i as i64);
        log.append(&b, 0).unwrap();
        sent.push(b);
    }
    log.flush().unwrap();
    sent
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn torn_write_at_every_byte_of_the_last_batch() {
    let pristine = tempfile::tempdir().unwrap();
    let sent = crashed_log(pristine.path(), 25);
    let last_segment = {
        let log = Log::open(pristine.path(), small_config(), OpenMode::Recover).unwrap();
        *log.segment_base_offsets().last().unwrap()
    };
    let seg_name = layout::offset_file_name(last_segment, layout::LOG_SUFFIX);
    let full_len = std::fs::metadata(pristine.path().join(&seg_name))
        .unwrap()
        .len();
    let last_len = sent.last().unwrap().len() as u64;
    let complete: u64 = sent[..sent.len() - 1]
        .iter()
        .map(|b| {
            validate_batch(b, Strictness::Produce)
                .unwrap()
                .last_offset_delta as u64
                + 1
        })
        .sum();
    for cut in (full_len - last_len)..full_len {
        let work = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), work.path());
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(work.path().join(&seg_name))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let mut log = Log::open(work.path(), small_config(), OpenMode::Recover).unwrap();
        assert_eq!(log.log_end_offset(), complete, "cut at {cut}");
        let got = read_all(&mut log);
        assert_eq!(
            got.len(),
            sent.len() - 1,
            "exactly the complete batches remain (cut at {cut})"
        );
        for ((_, bytes), orig) in got.iter().zip(&sent) {
            assert!(same_except_base_offset(bytes, orig));
        }
        if cut > full_len - last_len {
            assert_eq!(
                log.recovery_report().truncated_bytes,
                cut - (full_len - last_len)
            );
        }
        let info = log.append(&batch(1000, 2, 5, 0), 0).unwrap();
        assert_eq!(
            info.first_offset, complete,
            "appends continue at the right offset"
        );
        assert_eq!(read_all(&mut log).len(), sent.len());
    }
}

#[test]
fn corrupt_byte_in_old_batch_is_reported_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let sent = crashed_log(dir.path(), 30);
    // Flip a byte inside the value of batch 3 (in the first segment).
    let first_seg = layout::log_file(dir.path(), 0);
    let mut bytes = std::fs::read(&first_seg).unwrap();
    let pos3: usize = sent[..3].iter().map(|b| b.len()).sum();
    let target = pos3 + sent[3].len() - 10;
    bytes[target] ^= 0x20;
    std::fs::write(&first_seg, &bytes).unwrap();
    // The flush checkpointed a recovery point in a later segment; without it, recovery
    // validates every segment (as after a crash before the first checkpoint).
    let _ = std::fs::remove_file(dir.path().join(layout::RECOVERY_POINT_FILE));
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
    let report = log.recovery_report().clone();
    let (seg, pos, why) = report.first_error.expect("corruption reported");
    assert_eq!((seg, pos), (0, pos3 as u64));
    assert!(why.contains("CRC"), "{why}");
    assert!(report.segments_deleted > 0, "later segments are cut");
    let expected_end: u64 = sent[..3]
        .iter()
        .map(|b| {
            validate_batch(b, Strictness::Produce)
                .unwrap()
                .last_offset_delta as u64
                + 1
        })
        .sum();
    assert_eq!(log.log_end_offset(), expected_end);
    assert_eq!(read_all(&mut log).len(), 3);
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn recovery_scans_from_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let sent = crashed_log(dir.path(), 40);
    // The flush persisted a recovery point in a later segment: only the segments from
    // the one holding it onwards are validated batch by batch.
    let log = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
    assert!(log.recovery_report().segments_scanned < log.segment_count());
    assert_eq!(
        log.log_end_offset(),
        sent.iter()
            .map(|b| validate_batch(b, Strictness::Produce)
                .unwrap()
                .last_offset_delta as u64
                + 1)
            .sum::<u64>()
    );
}

#[test]
fn inactive_segment_handles_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        max_open_inactive_segments: 2,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), cfg, OpenMode::Recover).unwrap();
    for i in 0..100 {
        log.append(&batch(i, 1, 300, 0), 0).unwrap();
    }
    log.flush().unwrap();
    assert!(log.segment_count() > 8);
    for offset in 0..100 {
        log.read(offset, 1, u64::MAX).unwrap();
        assert!(log.open_inactive_segments() <= 2);
    }
}

/// Files under `dir` this process holds open (deleted ones too).
fn open_files_in(dir: &Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(&dir))
        .count()
}

fn checkpointed_recovery_point(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join(layout::RECOVERY_POINT_FILE))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

#[test]
fn a_log_nobody_flushes_keeps_its_rolls_files_bounded_and_its_recovery_point_moving() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
    let mut rolls = 0;
    for i in 0..400u64 {
        if log
            .append(&batch(i, 2, 200, 1_000 + i as i64), 0)
            .unwrap()
            .rolled
        {
            rolls += 1;
        }
        let open = open_files_in(dir.path());
        assert!(open <= 16, "{open} files open after {rolls} rolls");
        assert!(log.open_inactive_segments() <= 8, "after {rolls} rolls");
    }
    assert!(rolls >= 30, "{rolls}");
    // Within a few rolls of the end, though nothing called flush.
    let bases = log.segment_base_offsets();
    let lag_bound = bases[bases.len() - 6];
    assert!(
        log.recovery_point() >= lag_bound,
        "{}",
        log.recovery_point()
    );
    assert!(checkpointed_recovery_point(dir.path()).is_some_and(|c| c >= lag_bound));
}

#[test]
fn sync_rolled_makes_the_rolled_segments_durable_and_leaves_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = SharedLog::new(Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap());
    let mut rolls = 0;
    for i in 0..200u64 {
        let info = log.append(&batch(i, 2, 200, 1_000 + i as i64), 0).unwrap();
        if info.rolled {
            rolls += 1;
            log.sync_rolled().unwrap();
            assert_eq!(log.durable_offset(), info.first_offset);
            assert_eq!(
                checkpointed_recovery_point(dir.path()),
                Some(info.first_offset)
            );
            // The active segment and the inactive ones the handle budget keeps.
            let open = open_files_in(dir.path());
            assert!(open <= 3, "{open} files open after {rolls} rolls");
        }
    }
    assert!(rolls >= 10, "{rolls}");
}

#[test]
fn group_commit_shares_fsyncs_between_appenders() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SharedLog::new(
        Log::open(dir.path(), LogConfig::default(), OpenMode::Recover).unwrap(),
    ));
    let per_thread = 200;
    // All four append before any syncs, so one round can cover the four appends.
    let appended = Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            let appended = appended.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let b = batch(t * 1000 + i, 1, 512, 0);
                    let info = log.append(&b, 0).unwrap();
                    appended.wait();
                    log.sync_to(info.last_offset + 1).unwrap();
                    assert!(log.durable_offset() > info.last_offset);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(log.lock().unwrap().log_end_offset(), 4 * per_thread);
    let rounds = log.fsync_rounds();
    // Unshared, every durable append would be a round of its own (4 x per_thread).
    assert!(rounds < 2 * per_thread, "rounds {rounds}");
    println!("4 appenders x {per_thread} durable appends took {rounds} fsync rounds");
}

#[test]
fn manager_clean_and_unclean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("orders-v1", 3);
    {
        let m = LogManager::open(dir.path(), |_| small_config()).unwrap();
        let log = m.get_or_create(&tp, small_config()).unwrap();
        for i in 0..10 {
            log.append(&batch(i, 1, 10, 0), 0).unwrap();
        }
        m.close().unwrap();
    }
    assert!(dir
        .path()
        .join("orders-v1-3")
        .join("00000000000000000000.log")
        .exists());
    {
        let m = LogManager::open(dir.path(), |_| small_config()).unwrap();
        assert!(m.opened_clean());
        let log = m.get(&tp).unwrap();
        assert_eq!(log.lock().unwrap().log_end_offset(), 10);
        log.append(&batch(10, 1, 10, 0), 0).unwrap();
        // dropped without close: a crash
    }
    let m = LogManager::open(dir.path(), |_| small_config()).unwrap();
    assert!(!m.opened_clean());
    assert_eq!(m.get(&tp).unwrap().lock().unwrap().log_end_offset(), 11);
    assert!(m.delete(&tp).unwrap());
    assert!(!dir.path().join("orders-v1-3").exists());
    assert_eq!(m.partitions(), vec![]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    // Random batch sizes and counts, small segments and index intervals: every offset
    // reads back the batch holding it, and a full scan returns the exact bytes.
    #[test]
    fn append_read_round_trip(
        shapes in proptest::collection::vec((1usize..6, 0usize..700), 1..60),
        segment_bytes in 4000u32..10000,
        interval in 1u32..2000,
        reopen in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig { segment_bytes, index_interval_bytes: interval, segment_index_bytes: 1024, ..LogConfig::default() };
        let mut log = Log::open(dir.path(), cfg.clone(), OpenMode::Recover).unwrap();
        let mut sent = Vec::new();
        for (i, (count, len)) in shapes.iter().enumerate() {
            let b = batch(i as u64, *count, *len, i as i64);
            log.append(&b, 0).unwrap();
            sent.push(b);
        }
        if reopen {
            log.close().unwrap();
            drop(log);
            log = Log::open(dir.path(), cfg, OpenMode::Clean).unwrap();
        }
        let got = read_all(&mut log);
        prop_assert_eq!(got.len(), sent.len());
        for ((_, bytes), orig) in got.iter().zip(&sent) {
            prop_assert!(same_except_base_offset(bytes, orig));
        }
        for offset in 0..log.log_end_offset() {
            let r = log.read(offset, 0, u64::MAX).unwrap();
            let b = r.slice.unwrap().read_to_vec().unwrap();
            let h = validate_batch(&b, Strictness::Produce).unwrap();
            prop_assert!(h.base_offset as u64 <= offset && offset <= h.last_offset() as u64);
            prop_assert_eq!(h.total_len(), b.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // Whatever happens to the files — bytes overwritten in the log or the indexes,
    // files cut short — opening and reading the log returns results, never panics, and
    // what it serves is whole valid batches.
    #[test]
    fn any_disk_damage_is_survived(
        damage in proptest::collection::vec((0usize..3, any::<u64>(), any::<u8>(), any::<bool>()), 1..6),
        clean in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = small_config();
        let mut log = Log::open(dir.path(), cfg.clone(), OpenMode::Recover).unwrap();
        for i in 0..30 {
            log.append(&batch(i, 1 + i as usize % 3, 120, i as i64), 0).unwrap();
        }
        log.close().unwrap();
        drop(log);
        let mut files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for (kind, at, byte, truncate) in damage {
            let suffix = ["log", "index", "timeindex"][kind];
            let candidates: Vec<_> = files.iter().filter(|p| p.extension().is_some_and(|e| e == suffix)).collect();
            let path = candidates[(at as usize) % candidates.len()];
            let mut bytes = std::fs::read(path).unwrap();
            if bytes.is_empty() {
                continue;
            }
            let pos = (at as usize / 7) % bytes.len();
            if truncate {
                bytes.truncate(pos);
            } else {
                bytes[pos] = byte;
            }
            std::fs::write(path, &bytes).unwrap();
        }
        let mode = if clean { OpenMode::Clean } else { OpenMode::Recover };
        let mut log = match Log::open(dir.path(), cfg, mode) {
            Ok(log) => log,
            Err(_) => return Ok(()), // an error is an acceptable answer; a panic is not
        };
        let end = log.log_end_offset();
        let mut offset = log.log_start_offset();
        while offset < end {
            let Ok(r) = log.read(offset, 4096, u64::MAX) else { break };
            let Some(slice) = r.slice else { break };
            let Ok(bytes) = slice.read_to_vec() else { break };
            let mut next = offset;
            for item in BatchIter::new(&bytes, Strictness::Stored) {
                let Ok((_, h)) = item else { break };
                next = next.max(h.last_offset() as u64 + 1);
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        let _ = log.find_timestamp(5);
        let _ = log.append(&batch(99, 1, 10, 0), 0);
    }
}

/// A panic while the log is locked (a bug in the middle of an append) takes the log out
/// of service: every later lock, append and sync fails with `Poisoned`, nothing more
/// becomes durable, and reopening the directory recovers what was written.
#[test]
fn a_panic_under_the_log_lock_takes_the_log_out_of_service() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SharedLog::new(
        Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap(),
    ));
    log.append(&batch(1, 3, 10, 1_000), 1_000).unwrap();
    log.sync_to(3).unwrap();
    log.append(&batch(2, 2, 10, 1_000), 1_000).unwrap();
    let poisoner = log.clone();
    let panicked = std::thread::spawn(move || {
        let _guard = poisoner.lock().unwrap();
        panic!("a bug while the log is locked");
    })
    .join();
    assert!(panicked.is_err());

    assert!(matches!(log.lock(), Err(StorageError::Poisoned(_))));
    assert!(matches!(
        log.append(&batch(3, 1, 10, 1_000), 1_000),
        Err(StorageError::Poisoned(_))
    ));
    assert!(matches!(log.sync_to(5), Err(StorageError::Poisoned(_))));
    assert_eq!(log.durable_offset(), 3, "nothing more is reported durable");

    drop(log);
    let mut reopened = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
    let end = reopened.log_end_offset();
    assert!(end >= 3, "the durable batch survives: end {end}");
    assert!(read_all(&mut reopened)
        .iter()
        .all(|(h, _)| h.base_offset < 5));
}

/// The leader epoch cache follows the log: Kafka's checkpoint file, its start moving with
/// DeleteRecords, and OffsetForLeaderEpoch answered from it after a reopen.
#[test]
fn the_leader_epoch_checkpoint_follows_the_log_start_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir
        .path()
        .join(runnel_storage::layout::LEADER_EPOCH_CHECKPOINT_FILE);
    {
        let mut log = Log::open(dir.path(), small_config(), OpenMode::Recover).unwrap();
        log.assign_leader_epoch(0).unwrap();
        for tag in 0..40 {
            log.append(&batch(tag, 5, 100, 1_000), 1_000).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n1\n0 0\n");
        assert_eq!(log.end_offset_for_epoch(0), (0, 200));
        assert_eq!(log.end_offset_for_epoch(1), (-1, -1));
        log.advance_log_start_offset(120).unwrap();
        assert_eq!(
            std::fs::read_to_string(&checkpoint).unwrap(),
            "0\n1\n0 120\n"
        );
        log.close().unwrap();
    }
    let mut log = Log::open(dir.path(), small_config(), OpenMode::Clean).unwrap();
    log.assign_leader_epoch(0).unwrap();
    assert_eq!(log.leader_epochs().entries().len(), 1);
    assert_eq!(log.end_offset_for_epoch(0), (0, 200));
}

#[test]
fn reads_without_the_lock_race_appends_rolls_fsyncs_and_retention() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 128,
        max_open_inactive_segments: 1,
        ..small_config()
    };
    let log = Arc::new(SharedLog::new(
        Log::open(dir.path(), config, OpenMode::Recover).unwrap(),
    ));
    // One record per batch, so a batch's base offset is its tag.
    let sent = |tag: u64| batch(tag, 1, 100, 1_000 + tag as i64);
    const N: u64 = 600;
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, done) = (log.clone(), done.clone());
        std::thread::spawn(move || {
            for tag in 0..N {
                assert_eq!(log.append(&sent(tag), 0).unwrap().first_offset, tag);
                if tag % 7 == 0 {
                    log.sync_to(tag + 1).unwrap();
                }
                if tag % 50 == 49 {
                    let start = tag.saturating_sub(100);
                    log.lock().unwrap().advance_log_start_offset(start).unwrap();
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let readers: Vec<_> = (0..2u64)
        .map(|r| {
            let (log, done) = (log.clone(), done.clone());
            std::thread::spawn(move || {
                let mut checked = 0u64;
                while !done.load(Ordering::SeqCst) {
                    let (start, end) = {
                        let l = log.lock().unwrap();
                        (l.log_start_offset(), l.log_end_offset())
                    };
                    for offset in (start + r..end).step_by(5) {
                        let res = match log.read(offset, 700, end) {
                            Ok(res) => res,
                            // Retention moved the start past it meanwhile.
                            Err(StorageError::OffsetOutOfRange { .. }) => continue,
                            Err(e) => panic!("read at {offset}: {e}"),
                        };
                        let slice = res.slice.expect("batches below the bound");
                        let bytes = slice.read_to_vec().unwrap();
                        let mut expect = offset;
                        for item in BatchIter::new(&bytes, Strictness::Stored) {
                            let (pos, h) = item.expect("whole, valid batches");
                            let base = h.base_offset as u64;
                            assert_eq!(base, expect, "read at {offset}");
                            assert!(base < end, "read at {offset} passed its bound");
                            let b = &bytes[pos..pos + h.total_len()];
                            assert!(same_except_base_offset(b, &sent(base)), "at {base}");
                            expect = base + 1;
                            checked += 1;
                        }
                        assert!(expect > offset, "read at {offset} returned nothing");
                        let target = 1_000 + offset as i64;
                        if let Some(hit) = log.find_timestamp(target).unwrap() {
                            assert!(hit.batch.max_timestamp >= target);
                            let b = hit.slice.read_to_vec().unwrap();
                            let base = hit.batch.base_offset as u64;
                            assert!(same_except_base_offset(&b, &sent(base)), "at {base}");
                        }
                    }
                }
                checked
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let mut log = Arc::try_unwrap(log).ok().unwrap().into_inner().unwrap();
    log.close().unwrap();
    assert!(log.segment_count() > 1);
}
