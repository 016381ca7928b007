//! The names of everything in a data directory and its partition directories (Kafka's
//! `LogFileUtils`). Every other module builds and parses these names here, so the
//! on-disk layout is written down once.
//!
//! ```text
//! <data dir>/
//!   .runnel-clean-shutdown              written on clean shutdown, removed on start
//!   runnel-topics.json                  the topic registry (broker)
//!   producer-id-block                   reserved producer ids (broker)
//!   <topic>-<partition>/                one partition's log
//!     00000000000000000042.log          segment: batches from offset 42
//!     00000000000000000042.index        offset index
//!     00000000000000000042.timeindex    time index
//!     00000000000000000042.txnindex     aborted transactions (only once there is one)
//!     00000000000000000042.snapshot     producer state as of offset 42 (broker)
//!     00000000000000000042.log.cleaned  cleaner output being written
//!     00000000000000000042.00000000000000000077.swap
//!                                       cleaner output for [42, 77), committed
//!     00000000000000000042.txnindex.tmp an out-of-order entry's rewrite
//!     00000000000000000042.txnindex.cleaned
//!                                       the cleaner's transaction index, being written
//!     00000000000000000042.00000000000000000077.txnindex.swap
//!                                       its transaction index, part of the swap once
//!                                       the `.swap` above exists
//!     <segment file>.deleted            waiting for file.delete.delay.ms
//!     recovery-point, log-start-offset, cleaner-checkpoint, cleaner-tombstone-horizon
//!     compact-now                       `runnel erase --now` marker
//!     <any of the above>.tmp            being written (write-temp, fsync, rename)
//!   <topic>-<partition>.<ms>-delete/    a partition directory being deleted
//! ```

use std::path::{Path, PathBuf};

/// Segment data: `BASE.log`.
pub const LOG_SUFFIX: &str = ".log";
/// Offset index: `BASE.index`.
pub const INDEX_SUFFIX: &str = ".index";
/// Time index: `BASE.timeindex`.
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Transaction index (aborted transactions): `BASE.txnindex`.
pub const TXN_INDEX_SUFFIX: &str = ".txnindex";
/// Producer-state snapshot: `BASE.snapshot`.
pub const PRODUCER_SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Cleaner output not yet committed, appended to the log file's name: `BASE.log.cleaned`.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Committed cleaner output: `BASE.END.swap`.
pub const SWAP_SUFFIX: &str = ".swap";
/// A segment file waiting for `file.delete.delay.ms`, appended to its name.
pub const DELETED_SUFFIX: &str = ".deleted";
/// A file being written, appended to the final name; renamed over it once fsynced.
pub const TMP_SUFFIX: &str = ".tmp";

/// Offsets below this are fsynced (one decimal offset).
pub const RECOVERY_POINT_FILE: &str = "recovery-point";
/// The log start offset after DeleteRecords or retention (one decimal offset).
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";
/// The first offset the cleaner has not cleaned (Kafka keeps this per data directory).
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-checkpoint";
/// A partition's leader epochs and the offset each began at (Kafka's name and format).
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// When the earliest kept tombstone passes `delete.retention.ms` (epoch ms).
pub const TOMBSTONE_HORIZON_FILE: &str = "cleaner-tombstone-horizon";
/// The marker `runnel erase --now` leaves in a partition directory: the cleaner compacts
/// the partition at its next pass, whatever its dirty ratio, and removes the marker.
pub const COMPACT_NOW_MARKER: &str = "compact-now";

/// In the data directory: written on clean shutdown, removed on start, so its absence
/// means a crash.
pub const CLEAN_SHUTDOWN_FILE: &str = ".runnel-clean-shutdown";
/// In the data directory: the broker's topic registry.
pub const TOPIC_REGISTRY_FILE: &str = "runnel-topics.json";
/// In the data directory: the security store (SCRAM credentials; later ACLs and
/// quotas).
pub const SECURITY_STORE_FILE: &str = "runnel-security.json";
/// In the data directory: the broker's reserved block of producer ids.
pub const PRODUCER_ID_BLOCK_FILE: &str = "producer-id-block";
/// Suffix of a partition directory being deleted (renamed first, removed after).
pub const DELETE_DIR_SUFFIX: &str = "-delete";

/// Digits of the base offset that names segment and snapshot files.
pub const OFFSET_DIGITS: usize = 20;

/// What a file named by a base offset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Log,
    OffsetIndex,
    TimeIndex,
    TxnIndex,
    ProducerSnapshot,
    /// A producer snapshot being written (`BASE.snapshot.tmp`).
    ProducerSnapshotTmp,
    /// Cleaner output being written (`BASE.log.cleaned`).
    Cleaned,
    /// Committed cleaner output replacing the segments in `[BASE, end)`.
    Swap {
        end: u64,
    },
    /// The transaction index of cleaner output, being written (`BASE.txnindex.cleaned`).
    CleanedTxnIndex,
    /// A transaction index being rewritten (`BASE.txnindex.tmp`), for an entry that
    /// arrived out of order.
    TxnIndexTmp,
    /// The transaction index of the cleaner output for `[BASE, end)`: part of the swap
    /// when the `.swap` file exists, an unfinished leftover otherwise.
    TxnIndexSwap {
        end: u64,
    },
    /// A segment file renamed for deletion (`BASE.log.deleted`, ...).
    Deleted(SegmentFile),
}

/// The files of a segment. The transaction index exists only once the segment holds
/// an aborted transaction's marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentFile {
    Log,
    OffsetIndex,
    TimeIndex,
    TxnIndex,
}

impl SegmentFile {
    pub const ALL: [SegmentFile; 4] = [
        SegmentFile::Log,
        SegmentFile::OffsetIndex,
        SegmentFile::TimeIndex,
        SegmentFile::TxnIndex,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            SegmentFile::Log => LOG_SUFFIX,
            SegmentFile::OffsetIndex => INDEX_SUFFIX,
            SegmentFile::TimeIndex => TIME_INDEX_SUFFIX,
            SegmentFile::TxnIndex => TXN_INDEX_SUFFIX,
        }
    }
}

impl FileKind {
    /// Whether the file holds record batches (what `runnel erase status` scans).
    pub fn holds_batches(self) -> bool {
        matches!(
            self,
            FileKind::Log
                | FileKind::Cleaned
                | FileKind::Swap { .. }
                | FileKind::Deleted(SegmentFile::Log)
        )
    }
}

/// `BASE` as 20 zero-padded digits, as Kafka names its files.
pub fn offset_file_name(base: u64, suffix: &str) -> String {
    format!("{base:020}{suffix}")
}

/// `<dir>/BASE<suffix>` for one of a segment's files.
pub fn segment_file(dir: &Path, base: u64, file: SegmentFile) -> PathBuf {
    dir.join(offset_file_name(base, file.suffix()))
}

/// `<dir>/BASE.log`
pub fn log_file(dir: &Path, base: u64) -> PathBuf {
    segment_file(dir, base, SegmentFile::Log)
}

/// `<dir>/BASE.index`
pub fn offset_index_file(dir: &Path, base: u64) -> PathBuf {
    segment_file(dir, base, SegmentFile::OffsetIndex)
}

/// `<dir>/BASE.timeindex`
pub fn time_index_file(dir: &Path, base: u64) -> PathBuf {
    segment_file(dir, base, SegmentFile::TimeIndex)
}

/// `<dir>/BASE.txnindex`
pub fn txn_index_file(dir: &Path, base: u64) -> PathBuf {
    segment_file(dir, base, SegmentFile::TxnIndex)
}

/// `<dir>/BASE.txnindex.cleaned`
pub fn cleaned_txn_index_file(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{TXN_INDEX_SUFFIX}{CLEANED_SUFFIX}"))
}

/// `<dir>/BASE.END.txnindex.swap`
pub fn txn_index_swap_file(dir: &Path, base: u64, end: u64) -> PathBuf {
    dir.join(format!(
        "{base:020}.{end:020}{TXN_INDEX_SUFFIX}{SWAP_SUFFIX}"
    ))
}

/// `<dir>/BASE.snapshot`
pub fn producer_snapshot_file(dir: &Path, offset: u64) -> PathBuf {
    dir.join(offset_file_name(offset, PRODUCER_SNAPSHOT_SUFFIX))
}

/// `<dir>/BASE.log.cleaned`
pub fn cleaned_file(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{LOG_SUFFIX}{CLEANED_SUFFIX}"))
}

/// `<dir>/BASE.END.swap`
pub fn swap_file(dir: &Path, base: u64, end: u64) -> PathBuf {
    dir.join(format!("{base:020}.{end:020}{SWAP_SUFFIX}"))
}

/// `path` with [`DELETED_SUFFIX`] appended.
pub fn deleted_file(path: &Path) -> PathBuf {
    with_suffix(path, DELETED_SUFFIX)
}

/// `path` with [`TMP_SUFFIX`] appended: where a file is written before the rename.
pub fn tmp_file(path: &Path) -> PathBuf {
    with_suffix(path, TMP_SUFFIX)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Parse a 20-digit decimal offset.
fn parse_offset(digits: &str) -> Option<u64> {
    if digits.len() != OFFSET_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The base offset and kind of a file named by a base offset; `None` for any other
/// name (checkpoints, markers, strays).
pub fn parse_base_offset(file_name: &str) -> Option<(u64, FileKind)> {
    let base = parse_offset(file_name.get(..OFFSET_DIGITS)?)?;
    let rest = &file_name[OFFSET_DIGITS..];
    let kind = match rest {
        LOG_SUFFIX => FileKind::Log,
        INDEX_SUFFIX => FileKind::OffsetIndex,
        TIME_INDEX_SUFFIX => FileKind::TimeIndex,
        TXN_INDEX_SUFFIX => FileKind::TxnIndex,
        PRODUCER_SNAPSHOT_SUFFIX => FileKind::ProducerSnapshot,
        _ => {
            if rest.strip_suffix(TMP_SUFFIX) == Some(PRODUCER_SNAPSHOT_SUFFIX) {
                FileKind::ProducerSnapshotTmp
            } else if rest.strip_suffix(TMP_SUFFIX) == Some(TXN_INDEX_SUFFIX) {
                FileKind::TxnIndexTmp
            } else if rest.strip_suffix(CLEANED_SUFFIX) == Some(LOG_SUFFIX) {
                FileKind::Cleaned
            } else if rest.strip_suffix(CLEANED_SUFFIX) == Some(TXN_INDEX_SUFFIX) {
                FileKind::CleanedTxnIndex
            } else if let Some(inner) = rest.strip_suffix(DELETED_SUFFIX) {
                let file = SegmentFile::ALL.into_iter().find(|f| f.suffix() == inner)?;
                FileKind::Deleted(file)
            } else {
                let end = rest.strip_prefix('.')?.strip_suffix(SWAP_SUFFIX)?;
                let (end, txn) = match end.strip_suffix(TXN_INDEX_SUFFIX) {
                    Some(end) => (end, true),
                    None => (end, false),
                };
                let end = parse_offset(end)?;
                if end <= base {
                    return None;
                }
                if txn {
                    FileKind::TxnIndexSwap { end }
                } else {
                    FileKind::Swap { end }
                }
            }
        }
    };
    Some((base, kind))
}

pub use runnel_records::TopicPartition;

/// `<topic>-<partition>`
pub fn partition_dir_name(tp: &TopicPartition) -> String {
    tp.to_string()
}

/// The partition a directory named `<topic>-<partition>` holds. The partition must be
/// written as [`partition_dir_name`] writes it (no sign, no leading zeros), so a name
/// parses only if it is the one directory of its partition.
pub fn parse_partition_dir_name(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    let canonical = !partition.is_empty()
        && partition.bytes().all(|b| b.is_ascii_digit())
        && (partition == "0" || !partition.starts_with('0'));
    if topic.is_empty() || !canonical {
        return None;
    }
    let partition: i32 = partition.parse().ok()?;
    Some(TopicPartition::new(topic, partition))
}

/// `<topic>-<partition>.<now_ms>-delete`: where a partition directory is renamed before
/// it is removed.
pub fn deleting_dir_name(tp: &TopicPartition, now_ms: i64) -> String {
    format!("{tp}.{now_ms}{DELETE_DIR_SUFFIX}")
}

/// Whether a data-directory entry is a partition directory being deleted.
pub fn is_deleting_dir_name(name: &str) -> bool {
    name.ends_with(DELETE_DIR_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The names are pinned here as literals: they are Kafka's, and operators' tools
    // read them.
    #[test]
    fn segment_and_snapshot_names() {
        let d = Path::new("/data/t-0");
        assert_eq!(log_file(d, 42), d.join("00000000000000000042.log"));
        assert_eq!(
            offset_index_file(d, 42),
            d.join("00000000000000000042.index")
        );
        assert_eq!(
            time_index_file(d, 42),
            d.join("00000000000000000042.timeindex")
        );
        assert_eq!(
            producer_snapshot_file(d, u64::MAX),
            d.join("18446744073709551615.snapshot")
        );
        assert_eq!(
            txn_index_file(d, 42),
            d.join("00000000000000000042.txnindex")
        );
        assert_eq!(
            cleaned_txn_index_file(d, 7),
            d.join("00000000000000000007.txnindex.cleaned")
        );
        assert_eq!(
            txn_index_swap_file(d, 7, 90),
            d.join("00000000000000000007.00000000000000000090.txnindex.swap")
        );
        assert_eq!(
            cleaned_file(d, 7),
            d.join("00000000000000000007.log.cleaned")
        );
        assert_eq!(
            swap_file(d, 7, 90),
            d.join("00000000000000000007.00000000000000000090.swap")
        );
        assert_eq!(
            deleted_file(&log_file(d, 7)),
            d.join("00000000000000000007.log.deleted")
        );
        assert_eq!(
            tmp_file(&producer_snapshot_file(d, 7)),
            d.join("00000000000000000007.snapshot.tmp")
        );
        assert_eq!(
            tmp_file(&d.join(RECOVERY_POINT_FILE)),
            d.join("recovery-point.tmp")
        );
    }

    #[test]
    fn parse_round_trips() {
        let d = Path::new("d");
        let name = |p: PathBuf| p.file_name().unwrap().to_str().unwrap().to_string();
        let cases = [
            (log_file(d, 5), FileKind::Log),
            (offset_index_file(d, 5), FileKind::OffsetIndex),
            (time_index_file(d, 5), FileKind::TimeIndex),
            (txn_index_file(d, 5), FileKind::TxnIndex),
            (cleaned_txn_index_file(d, 5), FileKind::CleanedTxnIndex),
            (tmp_file(&txn_index_file(d, 5)), FileKind::TxnIndexTmp),
            (
                txn_index_swap_file(d, 5, 9),
                FileKind::TxnIndexSwap { end: 9 },
            ),
            (producer_snapshot_file(d, 5), FileKind::ProducerSnapshot),
            (
                tmp_file(&producer_snapshot_file(d, 5)),
                FileKind::ProducerSnapshotTmp,
            ),
            (cleaned_file(d, 5), FileKind::Cleaned),
            (swap_file(d, 5, 9), FileKind::Swap { end: 9 }),
        ];
        for (path, kind) in cases {
            assert_eq!(parse_base_offset(&name(path)), Some((5, kind)));
        }
        for f in SegmentFile::ALL {
            let deleted = deleted_file(&segment_file(d, 5, f));
            assert_eq!(
                parse_base_offset(&name(deleted)),
                Some((5, FileKind::Deleted(f)))
            );
        }
    }

    #[test]
    fn parse_rejects_other_names() {
        for bad in [
            "recovery-point",
            "compact-now",
            "42.log",
            "0000000000000000042.log",
            "000000000000000000042.log",
            "0000000000000000004x.log",
            "+0000000000000000042.log",
            "00000000000000000042.log.tmp",
            "00000000000000000042.snapshot.deleted",
            "00000000000000000042.logs",
            "00000000000000000042",
            "00000000000000000009.00000000000000000009.swap",
            "00000000000000000009.00000000000000000003.swap",
            "00000000000000000009.swap",
            "00000000000000000009.00000000000000000009.txnindex.swap",
            "00000000000000000009.txnindex.swap",
            "00000000000000000009.index.cleaned",
            "99999999999999999999.log",
            "0000000000000000004é.log",
        ] {
            assert_eq!(parse_base_offset(bad), None, "{bad}");
        }
    }

    #[test]
    fn batch_files() {
        let kinds = |n: &str| parse_base_offset(n).map(|(_, k)| k.holds_batches());
        assert_eq!(kinds("00000000000000000001.log"), Some(true));
        assert_eq!(kinds("00000000000000000001.log.deleted"), Some(true));
        assert_eq!(kinds("00000000000000000001.log.cleaned"), Some(true));
        assert_eq!(
            kinds("00000000000000000001.00000000000000000002.swap"),
            Some(true)
        );
        assert_eq!(kinds("00000000000000000001.index.deleted"), Some(false));
        assert_eq!(kinds("00000000000000000001.snapshot"), Some(false));
        assert_eq!(kinds("00000000000000000001.txnindex"), Some(false));
        assert_eq!(kinds("00000000000000000001.txnindex.deleted"), Some(false));
    }

    #[test]
    fn partition_dirs() {
        let tp = TopicPartition::new("my-topic.v2", 13);
        assert_eq!(partition_dir_name(&tp), "my-topic.v2-13");
        assert_eq!(parse_partition_dir_name("my-topic.v2-13"), Some(tp.clone()));
        assert_eq!(parse_partition_dir_name(&partition_dir_name(&tp)), Some(tp));
        assert_eq!(
            parse_partition_dir_name("t-0"),
            Some(TopicPartition::new("t", 0))
        );
        for bad in [
            "t",
            "-0",
            "t-",
            "t-01",
            "t-+1",
            "t-1x",
            "t-2147483648",
            "t-0.17-delete",
        ] {
            assert_eq!(parse_partition_dir_name(bad), None, "{bad}");
        }
        // A topic name may end in a dash: the last dash separates the partition.
        assert_eq!(
            parse_partition_dir_name("t--1"),
            Some(TopicPartition::new("t-", 1))
        );
    }

    #[test]
    fn deleting_dirs() {
        let tp = TopicPartition::new("t", 3);
        let name = deleting_dir_name(&tp, 1700);
        assert_eq!(name, "t-3.1700-delete");
        assert!(is_deleting_dir_name(&name));
        assert_eq!(parse_partition_dir_name(&name), None);
        assert!(!is_deleting_dir_name("t-3"));
    }
}
