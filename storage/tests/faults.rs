//! The log under injected I/O faults (`runnel_storage::fault`): failed and held fsyncs,
//! failed renames in a roll and a cleaner swap, short writes. After each, the log must
//! refuse what it cannot vouch for, and reopen consistent with everything it reported
//! durable.
//!
//! A fault plan is process-wide, so the tests here take a lock and run one at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use runnel_records::record_batch::builder::{batch_of_values, ProducerFields, Record};
use runnel_records::record_batch::{BatchIter, Compression, Strictness};
use runnel_records::records::{batch_records, build_batch};
use runnel_storage::fault::{self, Action, FaultPlan, Op, Rule};
use runnel_storage::layout::{self, FileKind};
use runnel_storage::{
    cleaner, CleanerSettings, Log, LogConfig, LogManager, OpenMode, SharedLog, StorageError,
    Throttle, TopicPartition,
};

/// Holds the process-wide plan for one test; uninstalls it when dropped (also on panic).
struct Faults {
    plan: Arc<FaultPlan>,
}

impl Faults {
    fn install(rules: Vec<Rule>) -> Faults {
        Faults {
            plan: fault::install(FaultPlan::new(rules)),
        }
    }
    fn rule(&self, i: usize) -> &Rule {
        &self.plan.rules()[i]
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        fault::uninstall();
    }
}

/// Taken first by every test: a plan matches the I/O of any test running beside it.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A temp dir whose name is unique, for the rules' path filter.
fn temp() -> (tempfile::TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix("runnel-faults-")
        .tempdir()
        .unwrap();
    let name = dir
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    (dir, name)
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

fn batch(tag: u64) -> Vec<u8> {
    let mut value = vec![(tag % 251) as u8; 200];
    value[..8].copy_from_slice(&tag.to_be_bytes());
    batch_of_values(1_000 + tag as i64, 2, &value)
}

/// `(base offset, bytes after the base offset)` of every batch, read through the log:
/// every one must be whole and valid.
fn batches(log: &mut Log) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20, u64::MAX).unwrap();
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_vec().unwrap();
        for item in BatchIter::new(&bytes, Strictness::Stored) {
            let (pos, h) = item.expect("stored batches are whole and valid");
            out.push((
                h.base_offset as u64,
                bytes[pos + 8..pos + h.total_len()].to_vec(),
            ));
            offset = h.last_offset() as u64 + 1;
        }
    }
    out
}

/// [`batches`] through `SharedLog::read`, which preads without the log lock.
fn shared_batches(log: &SharedLog) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.lock().unwrap().log_start_offset();
    while offset < log.lock().unwrap().log_end_offset() {
        let r = log.read(offset, 1 << 20, u64::MAX).unwrap();
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_vec().unwrap();
        for item in BatchIter::new(&bytes, Strictness::Stored) {
            let (pos, h) = item.expect("stored batches are whole and valid");
            out.push((
                h.base_offset as u64,
                bytes[pos + 8..pos + h.total_len()].to_vec(),
            ));
            offset = h.last_offset() as u64 + 1;
        }
    }
    out
}

/// Sync everything appended (the log lock must not be held into `sync_to`).
fn sync_all(log: &SharedLog) {
    let leo = log.lock().unwrap().log_end_offset();
    log.sync_to(leo).unwrap();
}

fn is_poisoned<T: std::fmt::Debug>(r: Result<T, StorageError>) -> bool {
    matches!(r, Err(StorageError::Poisoned(_)))
}

#[test]
fn a_failed_fsync_poisons_the_log_and_nothing_is_retried() {
    let _serial = serial();
    let (root, _) = temp();
    let data = root.path().join("data");
    let (t, u) = (TopicPartition::new("t", 0), TopicPartition::new("u", 0));
    let mgr = LogManager::open(&data, |_| small_config()).unwrap();
    let log = mgr.get_or_create(&t, small_config()).unwrap();
    let other = mgr.get_or_create(&u, small_config()).unwrap();
    for i in 0..3 {
        log.append(&batch(i), 0).unwrap();
        other.append(&batch(i), 0).unwrap();
    }
    let durable = log.lock().unwrap().log_end_offset();
    log.sync_to(durable).unwrap();
    assert_eq!(log.durable_offset(), durable);
    let before: Vec<_> = batches(&mut log.lock().unwrap());

    let faults = Faults::install(vec![Rule::new(Op::Fsync, Action::Fail).path("t-0")]);
    log.append(&batch(3), 0).unwrap();
    let leo = log.lock().unwrap().log_end_offset();
    assert!(is_poisoned(log.sync_to(leo)));
    assert_eq!(faults.rule(0).fired(), 1);
    // Never durable past what was fsynced before, whatever is asked again.
    assert_eq!(log.durable_offset(), durable);
    assert!(is_poisoned(log.sync_to(leo)));
    assert!(is_poisoned(log.append(&batch(4), 0)));
    assert!(is_poisoned(log.lock().unwrap().flush()));
    assert!(is_poisoned(log.lock().unwrap().roll()));
    assert!(log
        .lock()
        .unwrap()
        .poisoned()
        .is_some_and(|w| w.contains("fsync")));
    assert_eq!(log.durable_offset(), durable);
    // No second fsync was attempted: one that succeeded would prove nothing (the failed
    // one may have dropped the dirty pages).
    assert_eq!(faults.rule(0).seen(), 1);
    // Reads of what is there still work; the broker decides about serving them.
    assert_eq!(batches(&mut log.lock().unwrap()).len(), 4);
    // The other log is untouched.
    other.append(&batch(9), 0).unwrap();
    sync_all(&other);

    // A clean shutdown is refused, so the next start recovers; the other log still
    // closes.
    assert!(is_poisoned(mgr.close()));
    assert_eq!(faults.rule(0).seen(), 1);
    assert!(!data.join(layout::CLEAN_SHUTDOWN_FILE).exists());
    assert!(data.join("u-0").join(layout::RECOVERY_POINT_FILE).exists());
    assert!(!data.join("t-0").join(layout::RECOVERY_POINT_FILE).exists());
    drop(faults);
    drop((log, other, mgr));

    // A crash after the failed fsync may lose any part of what it covered: cut the
    // file in the middle of the last batch.
    let seg = layout::log_file(&data.join("t-0"), 0);
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 100).unwrap();
    drop(f);

    let mgr = LogManager::open(&data, |_| small_config()).unwrap();
    assert!(!mgr.opened_clean());
    let log = mgr.get(&t).unwrap();
    assert!(log.lock().unwrap().recovery_report().truncated_bytes > 0);
    // Whole batches only, and everything reported durable is there.
    assert_eq!(batches(&mut log.lock().unwrap()), before);
    assert_eq!(log.lock().unwrap().log_end_offset(), durable);
    let info = log.append(&batch(5), 0).unwrap();
    assert_eq!(info.first_offset, durable);
    log.sync_to(info.last_offset + 1).unwrap();
    assert_eq!(mgr.get(&u).unwrap().lock().unwrap().log_end_offset(), 8);
}

#[test]
fn a_held_fsync_does_not_block_other_logs() {
    let _serial = serial();
    let (root, _) = temp();
    let open = |p: &str| {
        Arc::new(SharedLog::new(
            Log::open(&root.path().join(p), small_config(), OpenMode::Recover).unwrap(),
        ))
    };
    let (held, free) = (open("t-0"), open("u-0"));
    let faults = Faults::install(vec![Rule::new(Op::Fsync, Action::Hold).path("t-0")]);
    held.append(&batch(0), 0).unwrap();
    let target = held.lock().unwrap().log_end_offset();
    let h = held.clone();
    let syncing = std::thread::spawn(move || h.sync_to(target));
    assert!(faults.plan.wait_holding(1, Duration::from_secs(10)));

    // The other log appends, reads and syncs meanwhile.
    for i in 0..5 {
        free.append(&batch(i), 0).unwrap();
    }
    let end = free.lock().unwrap().log_end_offset();
    free.sync_to(end).unwrap();
    assert_eq!(free.durable_offset(), end);
    assert_eq!(batches(&mut free.lock().unwrap()).len(), 5);
    // The held log itself still takes appends and reads: the fsync runs without its lock.
    held.append(&batch(1), 0).unwrap();
    assert_eq!(batches(&mut held.lock().unwrap()).len(), 2);
    assert_eq!(held.durable_offset(), 0);
    assert!(!syncing.is_finished());

    faults.plan.release_holds();
    syncing.join().unwrap().unwrap();
    assert!(held.durable_offset() >= target);
    sync_all(&held);
}

/// Append `n` batches and sync them; returns the log's batches.
fn fill(log: &SharedLog, n: u64) -> Vec<(u64, Vec<u8>)> {
    for tag in 0..n {
        log.append(&batch(tag), 0).unwrap();
    }
    sync_all(log);
    batches(&mut log.lock().unwrap())
}

#[test]
fn a_failed_roll_leaves_a_log_that_reopens_whole() {
    let _serial = serial();
    // The roll's directory fsync, its index trim, and the rename of the recovery-point
    // checkpoint that the flush after a roll writes.
    let cases: [(&str, Rule); 3] = [
        ("dirsync", Rule::new(Op::DirSync, Action::Fail)),
        (
            "index fsync",
            Rule::new(Op::Fsync, Action::Fail).path("00000000000000000000.index"),
        ),
        (
            "checkpoint rename",
            Rule::new(Op::Rename, Action::Fail).path("recovery-point.tmp"),
        ),
    ];
    for (what, rule) in cases {
        let (root, name) = temp();
        let dir = root.path().join("t-0");
        let log = SharedLog::new(Log::open(&dir, small_config(), OpenMode::Recover).unwrap());
        log.append(&batch(0), 0).unwrap();
        sync_all(&log);
        let rule = match rule.times(None) {
            r if what == "dirsync" => r.path(name.as_str()),
            r => r,
        };
        let faults = Faults::install(vec![rule]);
        // Append (and sync) until the fault hits.
        let mut acked = batches(&mut log.lock().unwrap());
        let mut tag = 1;
        loop {
            assert!(tag < 100, "{what}: the fault never fired");
            match log.append(&batch(tag), 0) {
                Ok(info) => match log.sync_to(info.last_offset + 1) {
                    Ok(()) => acked = batches(&mut log.lock().unwrap()),
                    Err(e) => {
                        assert!(matches!(e, StorageError::Poisoned(_)), "{what}: {e}");
                        break;
                    }
                },
                Err(e) => {
                    assert!(matches!(e, StorageError::Io(_)), "{what}: {e}");
                    break;
                }
            }
            tag += 1;
        }
        assert!(faults.rule(0).fired() >= 1, "{what}");
        assert!(is_poisoned(log.append(&batch(tag), 0)), "{what}");
        assert!(is_poisoned(log.sync_to(u64::MAX)), "{what}");
        drop(faults);
        drop(log);

        let mut log = Log::open(&dir, small_config(), OpenMode::Recover).unwrap();
        let now = batches(&mut log);
        assert!(now.starts_with(&acked), "{what}: lost acknowledged batches");
        let info = log.append(&batch(999), 0).unwrap();
        assert_eq!(info.first_offset, now.len() as u64 * 2, "{what}");
        log.flush().unwrap();
    }
}

#[test]
fn a_failed_index_trim_leaves_the_segment_readable() {
    let _serial = serial();
    for file in [
        "00000000000000000000.index",
        "00000000000000000000.timeindex",
    ] {
        let (root, _) = temp();
        let dir = root.path().join("t-0");
        let log = SharedLog::new(Log::open(&dir, small_config(), OpenMode::Recover).unwrap());
        // The segment's indexes are open (grown) already: the next resize is the trim
        // the roll makes.
        let faults = Faults::install(vec![Rule::new(Op::Truncate, Action::Fail).path(file)]);
        let mut tag = 0;
        loop {
            assert!(tag < 100, "{file}: the trim never failed");
            match log.append(&batch(tag), 0) {
                Ok(info) => assert!(!info.rolled, "{file}"),
                Err(e) => {
                    assert!(matches!(e, StorageError::Io(_)), "{file}: {e}");
                    break;
                }
            }
            tag += 1;
        }
        assert_eq!(faults.rule(0).fired(), 1, "{file}");
        drop(faults);
        assert!(is_poisoned(log.append(&batch(tag), 0)), "{file}");

        // The log refuses writes, but the segment whose trim failed still reads, by
        // offset (through its offset index) and by time (through its time index).
        let read = shared_batches(&log);
        let bases: Vec<u64> = read.iter().map(|(b, _)| *b).collect();
        assert_eq!(bases, (0..tag).map(|t| 2 * t).collect::<Vec<_>>(), "{file}");
        for t in 0..tag {
            let hit = log.find_timestamp(1_000 + t as i64).unwrap();
            assert_eq!(
                hit.map(|h| h.batch.base_offset),
                Some(2 * t as i64),
                "{file}"
            );
        }
        drop(log);

        let mut log = Log::open(&dir, small_config(), OpenMode::Recover).unwrap();
        assert_eq!(batches(&mut log), read, "{file}");
        log.append(&batch(999), 0).unwrap();
        log.flush().unwrap();
    }
}

/// Append batches until one rolls a new segment; returns that batch's offset (the new
/// segment's base).
fn append_until_roll(log: &SharedLog, tag: &mut u64) -> u64 {
    let first = *tag;
    loop {
        assert!(*tag - first < 1_000, "no roll");
        let info = log.append(&batch(*tag), 0).unwrap();
        *tag += 1;
        if info.rolled {
            return info.first_offset;
        }
    }
}

/// Run `f` on a thread; its result if it finishes within 10 s (the thread is left
/// behind otherwise, to end once the test releases what it waits for).
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
}

#[test]
fn reads_and_appends_do_not_wait_for_a_rolls_fsyncs() {
    let _serial = serial();
    // The fsyncs a roll needs: the directory's (the new file's entry) and the sealed
    // segment's index files.
    let cases = [
        ("dirsync", Op::DirSync, None),
        ("index fsync", Op::Fsync, Some("00000000000000000000.index")),
        (
            "time index fsync",
            Op::Fsync,
            Some("00000000000000000000.timeindex"),
        ),
    ];
    for (what, op, file) in cases {
        let (root, name) = temp();
        let log = Arc::new(SharedLog::new(
            Log::open(&root.path().join("t-0"), small_config(), OpenMode::Recover).unwrap(),
        ));
        let mut tag = 0;
        log.append(&batch(tag), 0).unwrap();
        tag += 1;
        sync_all(&log);
        let rule = Rule::new(op, Action::Hold).times(None);
        let faults = Faults::install(vec![rule.path(file.unwrap_or(name.as_str()))]);

        // A producer appends until a roll and waits for its batch to be durable.
        let l = log.clone();
        let producer = std::thread::spawn(move || {
            let base = append_until_roll(&l, &mut tag);
            let leo = l.lock().unwrap().log_end_offset();
            (base, tag, l.sync_to(leo))
        });
        assert!(
            faults.plan.wait_holding(1, Duration::from_secs(10)),
            "{what}: the roll's fsync was never reached"
        );

        // While that fsync is held, the partition is read and appended to.
        let l = log.clone();
        let read = within_10s(move || shared_batches(&l).len());
        assert!(
            read.is_some_and(|n| n >= 2),
            "{what}: a read waited for the roll's fsync"
        );
        let l = log.clone();
        let appended = within_10s(move || l.append(&batch(500), 0).map(|i| i.first_offset));
        assert!(
            matches!(appended, Some(Ok(_))),
            "{what}: an append waited for the roll's fsync"
        );
        assert!(
            faults.plan.wait_holding(1, Duration::ZERO),
            "{what}: released early"
        );
        assert!(!producer.is_finished(), "{what}");

        faults.plan.release_holds();
        let (base, _, synced) = producer.join().unwrap();
        synced.unwrap();
        assert!(log.durable_offset() > base, "{what}");
        sync_all(&log);
    }
}

#[test]
fn a_read_holds_no_lock_while_it_preads() {
    let _serial = serial();
    let (root, name) = temp();
    let dir = root.path().join("t-0");
    let log = Arc::new(SharedLog::new(
        Log::open(&dir, small_config(), OpenMode::Recover).unwrap(),
    ));
    let mut tag = 0;
    append_until_roll(&log, &mut tag);
    sync_all(&log);
    let second = log.lock().unwrap().segment_base_offsets()[1];
    let expected = log.lock().unwrap().read(0, 1 << 20, u64::MAX).unwrap();
    let expected_bytes = expected.slice.as_ref().unwrap().read_to_vec().unwrap();
    let leo = log.lock().unwrap().log_end_offset();

    // The read's first batch header pread is held.
    let faults = Faults::install(vec![Rule::new(Op::Read, Action::Hold).path(name.as_str())]);
    let l = log.clone();
    let reader = std::thread::spawn(move || {
        let r = l.read(0, 1 << 20, u64::MAX)?;
        let bytes = r.slice.as_ref().map(|s| s.read_to_vec()).transpose()?;
        Ok::<_, StorageError>((r, bytes))
    });
    assert!(faults.plan.wait_holding(1, Duration::from_secs(10)));

    // Meanwhile the log takes appends (rolling), fsyncs, and deletes the very segment
    // being read.
    let l = log.clone();
    let changed = within_10s(move || {
        let mut t = 1_000;
        append_until_roll(&l, &mut t);
        sync_all(&l);
        l.lock().unwrap().advance_log_start_offset(second)
    });
    assert!(
        matches!(changed, Some(Ok(1))),
        "the log waited for a read's pread: {changed:?}"
    );
    assert!(!layout::log_file(&dir, 0).exists());
    assert!(!reader.is_finished());

    faults.plan.release_holds();
    let (r, bytes) = reader.join().unwrap().unwrap();
    // The deleted segment read whole from its open file, as it was.
    assert_eq!(r.first_batch_offset, Some(0));
    assert_eq!(r.log_end_offset, leo);
    assert_eq!(bytes.as_deref(), Some(&expected_bytes[..]));
    assert_eq!(faults.rule(0).fired(), 1);
}

#[test]
fn a_read_racing_appends_returns_only_what_was_there_when_it_began() {
    let _serial = serial();
    let (root, name) = temp();
    let log = Arc::new(SharedLog::new(
        Log::open(&root.path().join("t-0"), small_config(), OpenMode::Recover).unwrap(),
    ));
    for tag in 0..2 {
        log.append(&batch(tag), 0).unwrap();
    }
    let leo = log.lock().unwrap().log_end_offset();
    let faults = Faults::install(vec![Rule::new(Op::Read, Action::Hold).path(name.as_str())]);
    let l = log.clone();
    let reader = std::thread::spawn(move || l.read(1, 1 << 20, u64::MAX));
    assert!(faults.plan.wait_holding(1, Duration::from_secs(10)));
    // Appends to the same (active) segment while the read is held.
    let l = log.clone();
    let appended = within_10s(move || {
        (2..4)
            .map(|tag| l.append(&batch(tag), 0).map(|i| i.rolled))
            .collect::<Result<Vec<_>, _>>()
    });
    assert_eq!(appended.map(|r| r.unwrap()), Some(vec![false, false]));
    faults.plan.release_holds();

    let r = reader.join().unwrap().unwrap();
    assert_eq!(r.log_end_offset, leo);
    let bytes = r.slice.unwrap().read_to_vec().unwrap();
    let last = BatchIter::new(&bytes, Strictness::Stored)
        .map(|item| item.unwrap().1.last_offset() as u64)
        .last();
    assert_eq!(
        last,
        Some(leo - 1),
        "a read returned bytes appended after it began"
    );
    // A new read sees them all.
    assert_eq!(shared_batches(&log).len(), 4);
}

#[test]
fn nothing_past_a_roll_is_durable_until_the_rolls_fsyncs_succeed() {
    let _serial = serial();
    // The directory fsync the roll needs, the sealed segment's index and data fsyncs.
    let cases = [
        ("dirsync", Op::DirSync, None),
        ("index fsync", Op::Fsync, Some("00000000000000000000.index")),
        (
            "time index fsync",
            Op::Fsync,
            Some("00000000000000000000.timeindex"),
        ),
        (
            "sealed log fsync",
            Op::Fsync,
            Some("00000000000000000000.log"),
        ),
    ];
    for (what, op, file) in cases {
        let (root, name) = temp();
        let dir = root.path().join("t-0");
        let log = SharedLog::new(Log::open(&dir, small_config(), OpenMode::Recover).unwrap());
        let mut tag = 0;
        log.append(&batch(tag), 0).unwrap();
        tag += 1;
        sync_all(&log);
        let durable = log.durable_offset();
        let acked = batches(&mut log.lock().unwrap());
        let rule = Rule::new(op, Action::Fail).times(None);
        let faults = Faults::install(vec![rule.path(file.unwrap_or(name.as_str()))]);

        // The roll itself succeeds: its fsyncs are the next flush's.
        let base = append_until_roll(&log, &mut tag);
        for _ in 0..2 {
            log.append(&batch(tag), 0).unwrap();
            tag += 1;
        }
        let leo = log.lock().unwrap().log_end_offset();
        assert!(is_poisoned(log.sync_to(leo)), "{what}");
        assert_eq!(faults.rule(0).fired(), 1, "{what}");
        // No offset past what was durable before, let alone in the new segment.
        assert_eq!(log.durable_offset(), durable, "{what}");
        assert!(log.durable_offset() <= base, "{what}");
        assert!(is_poisoned(log.sync_to(leo)), "{what}");
        assert_eq!(log.durable_offset(), durable, "{what}");
        assert!(is_poisoned(log.append(&batch(tag), 0)), "{what}");
        assert!(is_poisoned(log.lock().unwrap().flush()), "{what}");
        assert_eq!(faults.rule(0).fired(), 1, "{what}: an fsync was retried");
        let checkpoint = std::fs::read_to_string(dir.join(layout::RECOVERY_POINT_FILE))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        assert!(
            checkpoint.is_none_or(|c| c <= durable),
            "{what}: {checkpoint:?}"
        );
        drop(faults);
        drop(log);

        let mut log = Log::open(&dir, small_config(), OpenMode::Recover).unwrap();
        assert!(log.log_end_offset() >= durable, "{what}");
        assert!(batches(&mut log).starts_with(&acked), "{what}");
        log.append(&batch(999), 0).unwrap();
        log.flush().unwrap();
    }
}

#[test]
fn a_short_write_fails_the_append_and_leaves_no_torn_batch() {
    let _serial = serial();
    // EIO mid-write: the files' state is not trusted, the log goes out of service.
    let (root, name) = temp();
    let dir = root.path().join("t-0");
    let log = SharedLog::new(Log::open(&dir, small_config(), OpenMode::Recover).unwrap());
    let before = fill(&log, 3);
    let seg = layout::log_file(&dir, 0);
    let size = std::fs::metadata(&seg).unwrap().len();

    let faults = Faults::install(vec![Rule::new(Op::Write, Action::Short)
        .errno(libc::EIO)
        .path(name.as_str())]);
    let err = log.append(&batch(50), 0).unwrap_err();
    assert!(
        matches!(&err, StorageError::Io(e) if e.raw_os_error() == Some(libc::EIO)),
        "{err}"
    );
    assert_eq!(faults.rule(0).fired(), 1);
    // The half batch that reached the file is cut again.
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), size);
    // Nothing of it is offered, and nothing more is taken or made durable.
    assert_eq!(batches(&mut log.lock().unwrap()), before);
    assert!(is_poisoned(log.append(&batch(51), 0)));
    assert!(is_poisoned(log.sync_to(u64::MAX)));
    drop(faults);
    drop(log);

    let mut log = Log::open(&dir, small_config(), OpenMode::Recover).unwrap();
    assert_eq!(batches(&mut log), before);
    log.append(&batch(52), 0).unwrap();
    log.flush().unwrap();
}

#[test]
fn a_full_disk_refuses_appends_without_taking_the_log_offline() {
    let _serial = serial();
    for errno in [libc::ENOSPC, libc::EDQUOT] {
        let (root, name) = temp();
        let dir = root.path().join("t-0");
        let log = SharedLog::new(Log::open(&dir, small_config(), OpenMode::Recover).unwrap());
        let before = fill(&log, 3);
        let seg = layout::log_file(&dir, 0);
        let size = std::fs::metadata(&seg).unwrap().len();
        let refused = runnel_storage::space::refused_appends();

        // Every write fails, short, while the disk is full.
        let faults = Faults::install(vec![Rule::new(Op::Write, Action::Short)
            .errno(errno)
            .times(None)
            .path(name.as_str())]);
        for tag in 50..53 {
            let err = log.append(&batch(tag), 0).unwrap_err();
            assert!(
                matches!(&err, StorageError::NoSpace(e) if e.raw_os_error() == Some(errno)),
                "{err}"
            );
        }
        assert!(runnel_storage::space::is_full());
        assert!(runnel_storage::space::refused_appends() >= refused + 3);
        // Each half batch is cut again; the log still reads and syncs.
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), size);
        assert_eq!(batches(&mut log.lock().unwrap()), before);
        assert!(!log.is_offline());
        sync_all(&log);
        drop(faults);

        // Space again: the next append goes in where the refused ones would have.
        let info = log.append(&batch(60), 0).unwrap();
        assert_eq!(info.first_offset, before.len() as u64 * 2);
        assert!(!runnel_storage::space::is_full());
        sync_all(&log);
        let after = batches(&mut log.lock().unwrap());
        assert_eq!(&after[..before.len()], &before[..]);
        assert_eq!(after.len(), before.len() + 1);
        drop(log);
        let mut log = Log::open(&dir, small_config(), OpenMode::Recover).unwrap();
        assert_eq!(batches(&mut log), after);
    }
}

#[test]
fn a_full_disk_at_a_roll_changes_nothing_and_the_next_append_rolls() {
    let _serial = serial();
    let (root, _) = temp();
    let dir = root.path().join("t-0");
    let log = SharedLog::new(Log::open(&dir, small_config(), OpenMode::Recover).unwrap());
    // Fill the first segment up to the roll.
    let mut tag = 0;
    loop {
        let info = log.append(&batch(tag), 0).unwrap();
        tag += 1;
        assert!(!info.rolled);
        if log.lock().unwrap().size_bytes() + batch(tag).len() as u64 > 4096 {
            break;
        }
    }
    sync_all(&log);
    let before = batches(&mut log.lock().unwrap());
    // The new segment's index cannot get blocks, as on a full disk: every index
    // reservation fails, and so does the recovery-point checkpoint of the next flush.
    let faults = Faults::install(vec![Rule::new(Op::Write, Action::Fail)
        .errno(libc::ENOSPC)
        .times(None)]);
    let err = log.append(&batch(tag), 0);
    // The data write fails after the roll (an empty new segment is a valid log).
    assert!(matches!(err, Err(StorageError::NoSpace(_))), "{err:?}");
    assert!(!log.is_offline());
    sync_all(&log);
    drop(faults);
    let info = log.append(&batch(tag), 0).unwrap();
    assert_eq!(info.first_offset, before.len() as u64 * 2);
    sync_all(&log);
    let after = batches(&mut log.lock().unwrap());
    assert_eq!(after.len(), before.len() + 1);
    drop(log);
    let mut log = Log::open(&dir, small_config(), OpenMode::Recover).unwrap();
    assert_eq!(batches(&mut log), after);
}

#[test]
fn a_short_write_without_the_cut_is_recovered_on_reopen() {
    let _serial = serial();
    // The process dies right after the short write, before it can cut the half batch:
    // written here as the seam would have left it.
    let (root, _) = temp();
    let dir = root.path().join("t-0");
    let log = SharedLog::new(Log::open(&dir, small_config(), OpenMode::Recover).unwrap());
    let before = fill(&log, 3);
    drop(log);
    let b = batch(50);
    let seg = layout::log_file(&dir, 0);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&b[..b.len() / 2]);
    std::fs::write(&seg, bytes).unwrap();

    let mut log = Log::open(&dir, small_config(), OpenMode::Recover).unwrap();
    assert_eq!(log.recovery_report().truncated_bytes, b.len() as u64 / 2);
    assert_eq!(batches(&mut log), before);
}

// ---- the cleaner's swap ----

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    key: Vec<u8>,
    value: Vec<u8>,
}

fn compact_config(file_delete_delay_ms: u64) -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        file_delete_delay_ms,
        ..LogConfig::default()
    }
}

fn records(log: &mut Log) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20, u64::MAX).unwrap();
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_vec().unwrap();
        for item in BatchIter::new(&bytes, Strictness::Stored) {
            let (pos, h) = item.expect("stored batches are whole and valid");
            let recs = batch_records(&bytes[pos..pos + h.total_len()], 1 << 20).unwrap();
            for r in recs.records() {
                let r = r.unwrap();
                out.push(Rec {
                    offset: recs.offset(&r) as u64,
                    key: r.key.unwrap_or_default().to_vec(),
                    value: r.value.unwrap_or_default().to_vec(),
                });
            }
            offset = h.last_offset() as u64 + 1;
        }
    }
    out
}

/// Ten keys written over and over, in small segments that the cleaner then rewrites as
/// one group (`segment.bytes` is raised after they are written).
fn compacted_log(dir: &Path, config: LogConfig) -> SharedLog {
    let log = SharedLog::new(Log::open(dir, config.clone(), OpenMode::Recover).unwrap());
    for i in 0..200u64 {
        let key = format!("k{}", i % 10);
        let value = format!("v{i}-{}", "x".repeat(40));
        let rec = Record {
            timestamp_delta: 0,
            key: Some(key.as_bytes()),
            value: Some(value.as_bytes()),
            headers: vec![],
        };
        let b = build_batch(Compression::None, 1_000, &[rec], ProducerFields::NONE).unwrap();
        log.append(&b, 1_000).unwrap();
    }
    sync_all(&log);
    let one_group = LogConfig {
        segment_bytes: 1 << 20,
        ..config
    };
    log.lock().unwrap().set_config(one_group).unwrap();
    log
}

fn settings() -> CleanerSettings {
    CleanerSettings {
        now_ms: 2_000,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        min_cleanable_dirty_ratio: 0.5,
        delete_retention_ms: 86_400_000,
        dedupe_buffer_bytes: 1 << 20,
        force: true,
        upper_bound: u64::MAX,
    }
}

/// The latest record of each key below `end`, and everything from `end` on.
fn compacted(all: &[Rec], end: u64) -> Vec<Rec> {
    let mut latest: HashMap<&[u8], u64> = HashMap::new();
    for r in all.iter().filter(|r| r.offset < end) {
        latest.insert(&r.key, r.offset);
    }
    all.iter()
        .filter(|r| r.offset >= end || latest.get(r.key.as_slice()) == Some(&r.offset))
        .cloned()
        .collect()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            matches!(
                layout::parse_base_offset(n),
                Some((
                    _,
                    FileKind::Cleaned | FileKind::Swap { .. } | FileKind::Deleted(_)
                ))
            )
        })
        .collect()
}

#[test]
fn a_failed_rename_in_a_cleaner_swap_reopens_consistently() {
    let _serial = serial();
    // (file.delete.delay.ms, the failing rename, whether the swap was committed)
    // Renames of a swap: the .cleaned file to .swap (the commit point), the old
    // segments' files to .deleted when deletion is delayed, the .swap to BASE.log.
    let cases = [
        (0, 1, false),
        (0, 2, true),
        (60_000, 1, false),
        (60_000, 2, true),
        (60_000, 5, true),
    ];
    for (delay, nth, committed) in cases {
        let what = format!("delay {delay}, rename {nth}");
        let (root, name) = temp();
        let dir: PathBuf = root.path().join("t-0");
        let log = compacted_log(&dir, compact_config(delay));
        let all = records(&mut log.lock().unwrap());
        let bases = log.lock().unwrap().segment_base_offsets();
        assert!(bases.len() >= 4, "{what}: {bases:?}");
        let end = *bases.last().unwrap();
        let faults = Faults::install(vec![Rule::new(Op::Rename, Action::Fail)
            .nth(nth)
            .path(name.as_str())]);
        let outcome = cleaner::clean(&log, &settings(), &mut Throttle::unlimited());
        assert!(outcome.is_err(), "{what}: {outcome:?}");
        assert_eq!(faults.rule(0).fired(), 1, "{what}");
        drop(faults);
        if committed {
            // Memory and disk disagree until the log is reopened.
            assert!(is_poisoned(log.append(&batch(0), 0)), "{what}");
        } else {
            // Nothing changed: the log goes on, the cleaner output is gone.
            assert_eq!(records(&mut log.lock().unwrap()), all, "{what}");
            assert!(leftovers(&dir).is_empty(), "{what}: {:?}", leftovers(&dir));
            log.append(&batch(0), 0).unwrap();
            sync_all(&log);
        }
        drop(log);

        let mut reopened = Log::open(&dir, compact_config(delay), OpenMode::Recover).unwrap();
        assert!(leftovers(&dir).is_empty(), "{what}: {:?}", leftovers(&dir));
        let now = records(&mut reopened);
        if committed {
            assert_eq!(now, compacted(&all, end), "{what}");
        } else {
            assert_eq!(now[..all.len()], all[..], "{what}");
        }
        // Either way a cleaning pass now runs through.
        let log = SharedLog::new(reopened);
        cleaner::clean(&log, &settings(), &mut Throttle::unlimited()).unwrap();
        let cleaned = records(&mut log.lock().unwrap());
        let latest = |rs: &[Rec]| -> HashMap<Vec<u8>, Vec<u8>> {
            rs.iter()
                .map(|r| (r.key.clone(), r.value.clone()))
                .collect()
        };
        assert_eq!(latest(&cleaned), latest(&now), "{what}");
    }
}

#[test]
fn retention_on_a_full_disk_deletes_and_a_start_inside_a_segment_waits() {
    let _serial = serial();
    let (root, name) = temp();
    let dir = root.path().join("t-0");
    let log = SharedLog::new(Log::open(&dir, small_config(), OpenMode::Recover).unwrap());
    fill(&log, 60);
    let bases = log.lock().unwrap().segment_base_offsets();
    assert!(bases.len() >= 4, "{bases:?}");
    let before = batches(&mut log.lock().unwrap());

    // No checkpoint can be written: a full disk.
    let faults = Faults::install(vec![Rule::new(Op::Write, Action::Fail)
        .errno(libc::ENOSPC)
        .times(None)
        .path(name.as_str())]);
    // Inside a segment the start needs its checkpoint first: refused, nothing changed.
    let inside = bases[1] + 1;
    let r = log.lock().unwrap().advance_log_start_offset(inside);
    assert!(matches!(r, Err(StorageError::NoSpace(_))), "{r:?}");
    assert_eq!(log.lock().unwrap().log_start_offset(), 0);
    // On a segment boundary (as retention's always is) the deletion itself keeps it.
    let deleted = log
        .lock()
        .unwrap()
        .advance_log_start_offset(bases[2])
        .unwrap();
    assert_eq!(deleted, 2);
    assert!(faults.rule(0).fired() >= 2);
    assert!(!log.is_offline());
    drop(faults);
    let kept: Vec<_> = before
        .iter()
        .filter(|(o, _)| *o >= bases[2])
        .cloned()
        .collect();
    assert_eq!(batches(&mut log.lock().unwrap()), kept);
    log.append(&batch(100), 0).unwrap();
    sync_all(&log);
    drop(log);

    let mut log = Log::open(&dir, small_config(), OpenMode::Recover).unwrap();
    assert_eq!(log.log_start_offset(), bases[2]);
    assert_eq!(&batches(&mut log)[..kept.len()], &kept[..]);
}

#[test]
fn a_cleaning_that_runs_out_of_space_leaves_the_old_segments() {
    let _serial = serial();
    let (root, _) = temp();
    let dir: PathBuf = root.path().join("t-0");
    let log = compacted_log(&dir, compact_config(0));
    let all = records(&mut log.lock().unwrap());
    // The disk fills halfway through the cleaner's output.
    let faults = Faults::install(vec![Rule::new(Op::Write, Action::Short)
        .errno(libc::ENOSPC)
        .times(None)
        .path("00000000000000000000.log.cleaned")]);
    let outcome = cleaner::clean(&log, &settings(), &mut Throttle::unlimited());
    assert!(
        matches!(outcome, Err(StorageError::NoSpace(_))),
        "{outcome:?}"
    );
    assert!(faults.rule(0).fired() >= 1);
    drop(faults);
    // Nothing was swapped, the partial output is gone, and the log stays writable.
    assert_eq!(records(&mut log.lock().unwrap()), all);
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    assert!(!log.is_offline());
    log.append(&batch(0), 0).unwrap();
    sync_all(&log);
    drop(log);
    let mut reopened = Log::open(&dir, compact_config(0), OpenMode::Recover).unwrap();
    assert_eq!(records(&mut reopened)[..all.len()], all[..]);
    // With space the same pass runs through.
    let log = SharedLog::new(reopened);
    cleaner::clean(&log, &settings(), &mut Throttle::unlimited())
        .unwrap()
        .expect("a cleaning");
}

#[test]
fn recovery_syncs_what_it_validated_before_calling_it_durable() {
    let _serial = serial();
    let (root, name) = temp();
    let dir = root.path().join(format!("{name}-0"));
    // Three segments appended and never synced: after a crash they are in the page
    // cache only, and a power loss would take them.
    let log = SharedLog::new(Log::open(&dir, small_config(), OpenMode::Recover).unwrap());
    let mut tag = 0;
    append_until_roll(&log, &mut tag);
    append_until_roll(&log, &mut tag);
    let end = log.append(&batch(tag), 0).unwrap().last_offset + 1;
    assert_eq!(log.durable_offset(), 0, "nothing was synced");
    drop(log);

    // Reopened as after a crash: every recovered segment is fsynced before the log
    // reports it durable (a retried batch found in it is acknowledged at once).
    let faults = Faults::install(vec![Rule::new(Op::Fsync, Action::Fail)
        .nth(u64::MAX)
        .path(format!("{name}-0"))]);
    let log = SharedLog::new(Log::open(&dir, small_config(), OpenMode::Recover).unwrap());
    assert!(
        log.durable_offset() >= end,
        "durable {} of {end}",
        log.durable_offset()
    );
    let segments = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count() as u64;
    assert_eq!(segments, 3);
    assert!(
        faults.rule(0).seen() >= segments,
        "{} fsyncs for {segments} recovered segments",
        faults.rule(0).seen()
    );
}

#[test]
fn recovery_syncs_the_transaction_index_it_kept() {
    let _serial = serial();
    let (root, name) = temp();
    let dir = root.path().join(format!("{name}-0"));
    // An aborted transaction's entry, written and never synced: a crash keeps it in the
    // page cache, a power loss would not.
    let log = SharedLog::new(Log::open(&dir, small_config(), OpenMode::Recover).unwrap());
    let mut tag = 0;
    for _ in 0..3 {
        log.append(&batch(tag), 0).unwrap();
        tag += 1;
    }
    log.append_aborted_txn(&runnel_storage::AbortedTxn {
        producer_id: 7,
        first_offset: 0,
        last_offset: 3,
        last_stable_offset: 0,
    })
    .unwrap();
    let end = log.append(&batch(tag), 0).unwrap().last_offset + 1;
    drop(log);

    let index = layout::txn_index_file(&dir, 0);
    let index_name = index.file_name().unwrap().to_str().unwrap().to_string();
    let faults = Faults::install(vec![Rule::new(Op::Fsync, Action::Fail)
        .nth(u64::MAX)
        .path(index_name)]);
    let log = SharedLog::new(Log::open(&dir, small_config(), OpenMode::Recover).unwrap());
    assert!(log.durable_offset() >= end);
    assert_eq!(
        log.aborted_txns(0, end).unwrap().len(),
        1,
        "the entry was kept"
    );
    assert!(
        faults.rule(0).seen() >= 1,
        "recovery kept the transaction index of {} without syncing it",
        index.display()
    );
}
