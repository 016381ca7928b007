//! The log cleaner: compaction for `cleanup.policy=compact` (Kafka's `LogCleaner`).
//!
//! One pass over a log:
//! 1. Under the log lock, snapshot the cleanable segments: sealed, wholly below the high
//!    watermark, and older than `min.compaction.lag.ms`.
//! 2. Without the lock, build the offset map (key → latest offset) over the dirty part
//!    (from the cleaner checkpoint on), then rewrite each group of segments, keeping a
//!    record only if it is the latest for its key, and dropping tombstones older than
//!    `delete.retention.ms`. Offsets, timestamps and headers are kept; a compressed batch
//!    is re-compressed with its own codec.
//! 3. Under the lock, swap each cleaned group in (`Log::replace_with_cleaned`): the
//!    fsynced `.cleaned` file is renamed to `.swap` (the commit point), the old segments
//!    are deleted, and the swap file takes the first old segment's name. `Log::open`
//!    finishes an interrupted swap or discards an unfinished `.cleaned` file, so a crash
//!    leaves the old segments or the new one, never a mix.
//!
//! Transactions, as Kafka's cleaner handles them: nothing at or above the first
//! unstable offset is cleaned ([`clean_stable`]), so every transaction in the cleaned
//! range is decided. The batches of aborted transactions (per the `.txnindex`: that
//! producer's batches from the entry's first offset to its marker) are left out of the
//! offset map and dropped from the cleaned segment. Markers are kept; the cleaned
//! segment's transaction index holds the entries of the aborted transactions whose data
//! this pass dropped (the next pass, finding none, drops the entry as Kafka does; the
//! marker stays).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_records::compression;
use runnel_records::record_batch::builder::{encode_batch, ProducerFields};
use runnel_records::record_batch::{
    set_partition_leader_epoch, validate_batch, BatchHeader, Strictness, BATCH_HEADER_LEN,
};
use runnel_records::records::batch_records;
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::checkpoint;
use crate::layout::{self, CLEANER_CHECKPOINT_FILE, TOMBSTONE_HORIZON_FILE};
use crate::txn_index::{self, AbortedTxn};
use crate::{fault, Result, SharedLog, StorageError};

/// What the offset map spends per key: a 128-bit key hash, an offset, table overhead.
const MAP_ENTRY_BYTES: usize = 32;
/// Largest decompressed records section the cleaner will open.
const MAX_DECOMPRESSED: usize = 256 << 20;
/// Segment bytes read per system call.
const READ_CHUNK: usize = 1 << 20;

/// How one pass decides what to clean, from the topic's configs.
#[derive(Debug, Clone)]
pub struct CleanerSettings {
    pub now_ms: i64,
    /// `min.compaction.lag.ms`: segments with newer records are left alone.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: dirty records older than this are cleaned whatever the
    /// dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `delete.retention.ms`: how long a tombstone stays readable.
    pub delete_retention_ms: i64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the offset map.
    pub dedupe_buffer_bytes: usize,
    /// Clean now whatever the ratio (`runnel erase --now`).
    pub force: bool,
    /// Only offsets below this (the high watermark) may be cleaned.
    pub upper_bound: u64,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_read: usize,
    pub segments_written: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_kept: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    /// The cleaned range: `[log start, end_offset)`, with the map built from `first_dirty`.
    pub first_dirty: u64,
    pub end_offset: u64,
}

/// Limits the cleaner's I/O (`log.cleaner.io.max.bytes.per.second`) so that it does not
/// starve produce and fetch.
pub struct Throttle {
    bytes_per_second: f64,
    window_start: Instant,
    window_bytes: u64,
}

impl Throttle {
    pub fn new(bytes_per_second: f64) -> Throttle {
        Throttle {
            bytes_per_second,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    pub fn unlimited() -> Throttle {
        Throttle::new(f64::INFINITY)
    }

    /// Account for `bytes` of I/O, sleeping if the rate is over the limit.
    pub fn spend(&mut self, bytes: u64) {
        if !self.bytes_per_second.is_finite() || self.bytes_per_second <= 0.0 {
            return;
        }
        self.window_bytes += bytes;
        let elapsed = self.window_start.elapsed().as_secs_f64();
        let due = self.window_bytes as f64 / self.bytes_per_second;
        if due > elapsed {
            std::thread::sleep(Duration::from_secs_f64((due - elapsed).min(10.0)));
        }
        // Forget old history so a quiet period does not become a burst allowance.
        if elapsed > 1.0 {
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
    }
}

/// A sealed segment captured under the log lock; the cleaner reads it without the lock.
#[derive(Debug, Clone)]
pub(crate) struct SegmentSnapshot {
    pub base: u64,
    pub next_offset: u64,
    pub size: u64,
    pub file: Arc<File>,
    pub first_append_ms: Option<i64>,
}

/// The first offset not yet cleaned, as the last pass left it.
pub fn first_dirty_offset(dir: &Path) -> u64 {
    checkpoint::read_u64(dir, CLEANER_CHECKPOINT_FILE).unwrap_or(0)
}

/// What a pass works on: the segments captured under the log lock, the checkpoint read
/// after it.
struct Candidates {
    dir: PathBuf,
    config: crate::LogConfig,
    segments: Vec<SegmentSnapshot>,
    /// The cleaner checkpoint, clamped to the cleanable range.
    first_dirty: u64,
}

fn candidates(log: &SharedLog, s: &CleanerSettings) -> Result<Candidates> {
    let (segments, dir, config, log_start) = {
        let mut guard = log.lock()?;
        let segments =
            guard.cleanable_segments(s.upper_bound, s.now_ms, s.min_compaction_lag_ms)?;
        let dir = guard.dir().to_path_buf();
        (
            segments,
            dir,
            guard.config().clone(),
            guard.log_start_offset(),
        )
    };
    // The checkpoint file is read after the lock is released: appends need not wait on it.
    let end = segments.last().map_or(0, |g| g.next_offset);
    let first_dirty = first_dirty_offset(&dir).clamp(log_start.min(end), end);
    Ok(Candidates {
        config,
        dir,
        segments,
        first_dirty,
    })
}

/// Whether a pass over `log` would clean something now, and why.
pub fn needs_cleaning(log: &SharedLog, s: &CleanerSettings) -> Result<Option<&'static str>> {
    let c = candidates(log, s)?;
    Ok(reason_to_clean(&c, s))
}

fn reason_to_clean(c: &Candidates, s: &CleanerSettings) -> Option<&'static str> {
    let (segments, first_dirty) = (&c.segments, c.first_dirty);
    let end = segments.last()?.next_offset;
    let horizon = checkpoint::read_u64(&c.dir, TOMBSTONE_HORIZON_FILE);
    if horizon.is_some_and(|h| h as i64 <= s.now_ms) {
        return Some("tombstones past delete.retention.ms");
    }
    if first_dirty >= end {
        return None;
    }
    if s.force {
        return Some("requested");
    }
    let dirty = segments.iter().filter(|g| g.next_offset > first_dirty);
    let overdue = dirty.clone().any(|g| match g.first_append_ms {
        Some(t) => t.saturating_add(s.max_compaction_lag_ms) <= s.now_ms,
        // Appended before a restart: assume the deadline has come.
        None => s.max_compaction_lag_ms < i64::MAX,
    });
    if overdue {
        return Some("max.compaction.lag.ms");
    }
    let total: u64 = segments.iter().map(|g| g.size).sum();
    let dirty_bytes: u64 = dirty.map(|g| g.size).sum();
    if total > 0 && dirty_bytes as f64 / total as f64 >= s.min_cleanable_dirty_ratio {
        return Some("min.cleanable.dirty.ratio");
    }
    None
}

/// Clean `log` if its configs call for it. Returns what was done, or `None` if nothing
/// was due. For a log that may hold transactions use [`clean_stable`]: this is it with
/// no first unstable offset.
pub fn clean(
    log: &SharedLog,
    s: &CleanerSettings,
    throttle: &mut Throttle,
) -> Result<Option<CleanStats>> {
    clean_stable(log, s, None, throttle)
}

/// [`clean`], never cleaning at or above `first_unstable_offset` (the first offset of
/// the earliest undecided transaction; `None` when there is none): only segments wholly
/// below it and below `s.upper_bound` are cleaned.
pub fn clean_stable(
    log: &SharedLog,
    s: &CleanerSettings,
    first_unstable_offset: Option<u64>,
    throttle: &mut Throttle,
) -> Result<Option<CleanStats>> {
    let bounded;
    let s = match first_unstable_offset {
        Some(fuo) if fuo < s.upper_bound => {
            bounded = CleanerSettings {
                upper_bound: fuo,
                ..s.clone()
            };
            &bounded
        }
        _ => s,
    };
    let c = candidates(log, s)?;
    if reason_to_clean(&c, s).is_none() {
        return Ok(None);
    }
    let Candidates {
        dir,
        config,
        segments,
        first_dirty,
    } = c;
    let end = segments.last().map_or(0, |g| g.next_offset);
    let max_batch = config.max_batch_bytes_on_disk();
    let first_base = segments.first().map_or(0, |g| g.base);
    // Read once the segments are fixed: an entry appended later (its marker replayed)
    // changes the generation, and the swap then refuses.
    let (aborted, txn_generation) = log.aborted_txns_with_generation(first_base, end)?;

    // The offset map over the dirty segments, as many as fit in the dedupe buffer.
    let capacity = (s.dedupe_buffer_bytes / MAP_ENTRY_BYTES).max(1);
    let hasher = KeyHasher::new();
    let mut map: HashMap<u128, u64> = HashMap::new();
    let mut mapped_end = first_dirty;
    let mut stats = CleanStats {
        first_dirty,
        ..CleanStats::default()
    };
    let mut txns = TxnTracker::new(
        aborted
            .iter()
            .filter(|t| t.last_offset >= first_dirty)
            .copied(),
    );
    for seg in segments.iter().filter(|g| g.next_offset > first_dirty) {
        let before = map.len();
        let mut reader = BatchReader::new(&seg.file, seg.size, max_batch);
        while let Some(batch) = reader.next_batch()? {
            throttle.spend(batch.len() as u64);
            let header = checked(batch, seg)?;
            if header.is_control() {
                txns.on_control(&header, batch, seg)?;
                continue;
            }
            // Aborted records never shadow older ones: they are not in the map.
            if txns.on_batch(&header) || (header.last_offset() as u64) < first_dirty {
                continue;
            }
            let records = batch_records(batch, MAX_DECOMPRESSED).map_err(|e| corrupt(seg, e))?;
            for r in records.records() {
                let r = r.map_err(|e| corrupt(seg, e))?;
                let offset = records.offset(&r) as u64;
                if let (Some(key), true) = (r.key, offset >= first_dirty) {
                    map.insert(hasher.hash(key), offset);
                }
            }
        }
        if map.len() > capacity {
            if before == 0 {
                return Err(StorageError::Io(io::Error::other(format!(
                    "segment {} of {} has more keys than log.cleaner.dedupe.buffer.size holds",
                    seg.base,
                    dir.display()
                ))));
            }
            // This segment's keys do not all fit: stop before it. Its keys stay in the
            // map, which only makes the cleaning of earlier segments more thorough for
            // keys that are newer anyway (they are all at offsets >= mapped_end).
            break;
        }
        mapped_end = seg.next_offset;
    }
    if first_dirty >= end {
        // Nothing dirty: the pass is due to expired tombstones, and rewrites the cleaned
        // part with an empty map.
        mapped_end = end;
    } else if mapped_end <= first_dirty {
        return Ok(None);
    }
    // Entries at or past `mapped_end` (from a segment that did not fit) are kept: they
    // name records that stay in the log, so older records of those keys may go.
    stats.end_offset = mapped_end;

    let to_clean: Vec<&SegmentSnapshot> = segments
        .iter()
        .filter(|g| g.next_offset <= mapped_end)
        .collect();
    let mut min_tombstone_expiry = i64::MAX;
    // One tracker for the whole pass: a transaction's batches may lie in one group and
    // its marker in a later one.
    let mut txns = TxnTracker::new(aborted.iter().copied());
    for group in group_segments(&to_clean, &config) {
        let mut out = GroupOutput {
            stats: &mut stats,
            min_tombstone_expiry: &mut min_tombstone_expiry,
            txns: &mut txns,
        };
        let cleaned = write_group(
            &dir, &group, &map, &hasher, s, max_batch, throttle, &mut out,
        )?;
        let cleaned_txn = match write_txn_index(&dir, group[0].base, &mut txns) {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_file(&cleaned);
                return Err(e);
            }
        };
        let bases: Vec<u64> = group.iter().map(|g| g.base).collect();
        let group_end = group.last().map_or(0, |g| g.next_offset);
        let swapped = log.lock()?.replace_with_cleaned(
            &bases,
            &cleaned,
            cleaned_txn.as_deref(),
            txn_generation,
            group_end,
        )?;
        if !swapped {
            // Retention or DeleteRecords removed part of the group meanwhile, or a
            // transaction index changed: the rest is cleaned on the next pass.
            stats.end_offset = stats.end_offset.min(group[0].base);
            break;
        }
        stats.segments_read += group.len();
        stats.segments_written += 1;
    }
    // A full disk here leaves an older checkpoint: the next pass cleans again.
    let checkpoint_error = |e: io::Error| no_space(e.into(), "cleaner checkpoint", &dir);
    if stats.end_offset > first_dirty {
        checkpoint::write_u64(&dir, CLEANER_CHECKPOINT_FILE, stats.end_offset)
            .map_err(checkpoint_error)?;
    }
    if min_tombstone_expiry < i64::MAX {
        checkpoint::write_u64(
            &dir,
            TOMBSTONE_HORIZON_FILE,
            min_tombstone_expiry.max(0) as u64,
        )
        .map_err(checkpoint_error)?;
    } else {
        match std::fs::remove_file(dir.join(TOMBSTONE_HORIZON_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(stats))
}

/// Consecutive segments whose cleaned result fits in one segment (Kafka's
/// `groupSegmentsBySize`): total size within `segment.bytes`, offsets within an i32 of
/// the base, and index entries within `segment.index.bytes`.
fn group_segments<'a>(
    segments: &[&'a SegmentSnapshot],
    config: &crate::LogConfig,
) -> Vec<Vec<&'a SegmentSnapshot>> {
    let max_index_entries = (config.segment_index_bytes as u64 / 12).max(1);
    let max_bytes = (config.segment_bytes as u64)
        .min(max_index_entries.saturating_mul(config.index_interval_bytes.max(1) as u64));
    let mut groups: Vec<Vec<&SegmentSnapshot>> = Vec::new();
    for &seg in segments {
        if let Some(last) = groups.last_mut() {
            let size: u64 = last.iter().map(|g| g.size).sum::<u64>() + seg.size;
            let span = seg.next_offset - last[0].base;
            if size <= max_bytes && span <= i32::MAX as u64 {
                last.push(seg);
                continue;
            }
        }
        groups.push(vec![seg]);
    }
    groups
}

/// What writing a group updates beyond its file.
struct GroupOutput<'a> {
    stats: &'a mut CleanStats,
    min_tombstone_expiry: &'a mut i64,
    txns: &'a mut TxnTracker,
}

/// Write the cleaned segment's transaction index, if it has entries, to
/// `<base>.txnindex.cleaned`, fsynced.
fn write_txn_index(dir: &Path, base: u64, txns: &mut TxnTracker) -> Result<Option<PathBuf>> {
    let kept = std::mem::take(&mut txns.kept);
    if kept.is_empty() {
        return Ok(None);
    }
    let path = layout::cleaned_txn_index_file(dir, base);
    if let Err(e) = txn_index::write_file(&path, &kept) {
        let _ = std::fs::remove_file(&path);
        return Err(no_space(e.into(), "cleaner transaction index", dir));
    }
    Ok(Some(path))
}

/// Write the records of `group` that survive into `<first base>.log.cleaned`, fsynced.
#[allow(clippy::too_many_arguments)]
fn write_group(
    dir: &Path,
    group: &[&SegmentSnapshot],
    map: &HashMap<u128, u64>,
    hasher: &KeyHasher,
    s: &CleanerSettings,
    max_batch: u64,
    throttle: &mut Throttle,
    out_state: &mut GroupOutput<'_>,
) -> Result<PathBuf> {
    let path = layout::cleaned_file(dir, group[0].base);
    let r = write_group_file(&path, group, map, hasher, s, max_batch, throttle, out_state);
    if r.is_err() {
        // The old segments are untouched: the swap comes only after this file is whole.
        let _ = std::fs::remove_file(&path);
    }
    r.map(|()| path)
        .map_err(|e| no_space(e, "cleaner output", dir))
}

/// Free bytes after which a cleaning that ran out of space counts as having room again.
const CLEANER_ROOM: u64 = 1 << 20;

/// A cleaner write that found the disk full, as [`StorageError::NoSpace`]: the pass
/// stops with nothing swapped, and is retried on the next one.
fn no_space(e: StorageError, what: &str, dir: &Path) -> StorageError {
    match e {
        StorageError::Io(e) if crate::space::is_no_space(&e) => {
            crate::space::note_full(what, dir, CLEANER_ROOM, &e);
            StorageError::NoSpace(e)
        }
        e => e,
    }
}

#[allow(clippy::too_many_arguments)]
fn write_group_file(
    path: &Path,
    group: &[&SegmentSnapshot],
    map: &HashMap<u128, u64>,
    hasher: &KeyHasher,
    s: &CleanerSettings,
    max_batch: u64,
    throttle: &mut Throttle,
    out_state: &mut GroupOutput<'_>,
) -> Result<()> {
    let stats = &mut *out_state.stats;
    let min_tombstone_expiry = &mut *out_state.min_tombstone_expiry;
    let txns = &mut *out_state.txns;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let mut out = BufWriter::with_capacity(READ_CHUNK, fault::Writer::new(file, path.into()));
    let mut kept_raw: Vec<u8> = Vec::new();
    for seg in group {
        let mut reader = BatchReader::new(&seg.file, seg.size, max_batch);
        while let Some(batch) = reader.next_batch()? {
            throttle.spend(batch.len() as u64);
            stats.bytes_read += batch.len() as u64;
            let header = checked(batch, seg)?;
            if header.is_control() {
                // Markers stay (Kafka removes them past delete.retention.ms once no
                // data of their transaction remains; not done here).
                txns.on_control(&header, batch, seg)?;
                out.write_all(batch)?;
                stats.bytes_written += batch.len() as u64;
                continue;
            }
            if txns.on_batch(&header) {
                // An aborted transaction's batch: no reader may see it, so it goes whole.
                stats.records_removed += header.record_count.max(0) as u64;
                continue;
            }
            let records = batch_records(batch, MAX_DECOMPRESSED).map_err(|e| corrupt(seg, e))?;
            let tombstone_expiry = header.max_timestamp.saturating_add(s.delete_retention_ms);
            kept_raw.clear();
            let (mut kept, mut total, mut max_ts) = (0i32, 0u64, i64::MIN);
            let mut batch_min_expiry = i64::MAX;
            for r in records.records() {
                let r = r.map_err(|e| corrupt(seg, e))?;
                total += 1;
                let offset = records.offset(&r) as u64;
                let Some(key) = r.key else {
                    // Kafka's cleaner drops keyless records: they cannot be compacted.
                    continue;
                };
                if map.get(&hasher.hash(key)).is_some_and(|&o| offset < o) {
                    continue;
                }
                if r.value.is_none() {
                    if header.max_timestamp >= 0 && tombstone_expiry <= s.now_ms {
                        stats.tombstones_removed += 1;
                        continue;
                    }
                    batch_min_expiry = batch_min_expiry.min(if header.max_timestamp >= 0 {
                        tombstone_expiry
                    } else {
                        s.now_ms.saturating_add(s.delete_retention_ms)
                    });
                }
                kept += 1;
                max_ts = max_ts.max(records.timestamp(&r));
                kept_raw.extend_from_slice(r.raw());
            }
            stats.records_kept += kept as u64;
            stats.records_removed += total - kept as u64;
            if kept == 0 {
                continue;
            }
            *min_tombstone_expiry = (*min_tombstone_expiry).min(batch_min_expiry);
            if kept as u64 == total {
                out.write_all(batch)?;
                stats.bytes_written += batch.len() as u64;
                continue;
            }
            let codec = header.compression().ok_or_else(|| {
                corrupt(
                    seg,
                    format!("unknown compression in batch {}", header.base_offset),
                )
            })?;
            let section = compression::compress(codec, &kept_raw)
                .map_err(|e| StorageError::Io(io::Error::other(e.to_string())))?;
            let max_timestamp = if header.is_log_append_time() {
                header.max_timestamp
            } else {
                max_ts
            };
            let mut rebuilt = encode_batch(
                header.base_offset,
                header.attributes,
                // The batch keeps its offset span, as Kafka's cleaner does, so that the
                // producer state read back from it is unchanged.
                header.last_offset_delta,
                header.base_timestamp,
                max_timestamp,
                ProducerFields {
                    producer_id: header.producer_id,
                    producer_epoch: header.producer_epoch,
                    base_sequence: header.base_sequence,
                },
                kept,
                &section,
            );
            set_partition_leader_epoch(&mut rebuilt, header.partition_leader_epoch);
            out.write_all(&rebuilt)?;
            stats.bytes_written += rebuilt.len() as u64;
            throttle.spend(rebuilt.len() as u64);
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?.into_file();
    fault::sync_all(&file, || path)?;
    crash_point("cleaned-written");
    Ok(())
}

/// Control record types (the key's second i16).
const CONTROL_ABORT: i16 = 0;
const CONTROL_COMMIT: i16 = 1;

/// The transactions a pass walks through (Kafka's `CleanedTransactionMetadata`):
/// which producers are inside an aborted transaction at the current batch, and which
/// aborted transactions' entries the cleaned segment keeps.
struct TxnTracker {
    /// Aborted transactions not yet reached, by first offset.
    pending: VecDeque<AbortedTxn>,
    /// Producers inside an aborted transaction, with whether any of its batches was seen.
    aborted: HashMap<i64, (AbortedTxn, bool)>,
    /// Producers inside a committed transaction whose batches were seen.
    committed: HashSet<i64>,
    /// Entries for the cleaned segment: aborted transactions whose marker it holds and
    /// whose batches this pass dropped.
    kept: Vec<AbortedTxn>,
}

impl TxnTracker {
    fn new(aborted: impl Iterator<Item = AbortedTxn>) -> TxnTracker {
        let mut pending: Vec<AbortedTxn> = aborted.collect();
        pending.sort_by_key(|t| (t.first_offset, t.last_offset));
        pending.dedup();
        TxnTracker {
            pending: pending.into(),
            aborted: HashMap::new(),
            committed: HashSet::new(),
            kept: Vec::new(),
        }
    }

    fn reach(&mut self, offset: u64) {
        while self
            .pending
            .front()
            .is_some_and(|t| t.first_offset <= offset)
        {
            let t = self.pending.pop_front().expect("checked above");
            let slot = self.aborted.entry(t.producer_id).or_insert((t, false));
            // An earlier transaction of the producer whose marker was never read as
            // one is over all the same: its range ended before this one began.
            if slot.0.last_offset < t.first_offset {
                *slot = (t, false);
            }
        }
    }

    /// A data batch: whether it belongs to an aborted transaction, that is, it is its
    /// producer's and lies in the entry's `[first_offset, last_offset]`.
    fn on_batch(&mut self, h: &BatchHeader) -> bool {
        self.reach(h.last_offset().max(0) as u64);
        if !h.is_transactional() {
            return false;
        }
        if let Some((txn, seen)) = self.aborted.get_mut(&h.producer_id) {
            if (h.base_offset.max(0) as u64) <= txn.last_offset {
                *seen = true;
                return true;
            }
            self.aborted.remove(&h.producer_id);
        }
        self.committed.insert(h.producer_id);
        false
    }

    /// A control batch (a marker): it ends its producer's transaction.
    fn on_control(&mut self, h: &BatchHeader, batch: &[u8], seg: &SegmentSnapshot) -> Result<()> {
        self.reach(h.last_offset().max(0) as u64);
        let records = batch_records(batch, MAX_DECOMPRESSED).map_err(|e| corrupt(seg, e))?;
        let Some(first) = records.records().next() else {
            return Ok(());
        };
        let record = first.map_err(|e| corrupt(seg, e))?;
        let kind = match record.key {
            Some(k) if k.len() >= 4 => i16::from_be_bytes([k[2], k[3]]),
            _ => return Ok(()),
        };
        match kind {
            CONTROL_ABORT => {
                if let Some((txn, true)) = self.aborted.remove(&h.producer_id) {
                    self.kept.push(txn);
                }
            }
            CONTROL_COMMIT => {
                self.committed.remove(&h.producer_id);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Crash tests: `RUNNEL_CLEANER_CRASH_AT=<point>` aborts the process at that point of a
/// cleaning pass (`cleaned-written`, `swap-committed`, `old-deleted`), like a power cut.
pub(crate) fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("RUNNEL_CLEANER_CRASH_AT").ok());
    if at.as_deref() == Some(point) {
        tracing::error!(point, "RUNNEL_CLEANER_CRASH_AT: aborting");
        std::process::abort();
    }
}

fn checked(batch: &[u8], seg: &SegmentSnapshot) -> Result<BatchHeader> {
    // Rewriting a batch computes a new CRC: check the old one first so that disk
    // corruption is reported, not laundered into a valid-looking batch.
    validate_batch(batch, Strictness::Stored).map_err(|e| corrupt(seg, e))
}

fn corrupt(seg: &SegmentSnapshot, why: impl std::fmt::Display) -> StorageError {
    StorageError::Io(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("segment {}: {why}; not cleaning this log", seg.base),
    ))
}

/// Keyed 128-bit hashes of record keys. The key is random per pass, so no producer can
/// craft two keys that collide (a collision would drop the older key's latest record).
struct KeyHasher {
    k0: u64,
    k1: u64,
}

impl KeyHasher {
    fn new() -> KeyHasher {
        let seed = RandomState::new();
        let mut a = seed.build_hasher();
        a.write_u8(0);
        let mut b = seed.build_hasher();
        b.write_u8(1);
        KeyHasher {
            k0: a.finish(),
            k1: b.finish(),
        }
    }

    fn hash(&self, key: &[u8]) -> u128 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(key);
        h.finish128().as_u128()
    }
}

/// Reads whole batches from a sealed segment in large chunks.
pub(crate) struct BatchReader<'a> {
    file: &'a File,
    size: u64,
    max_batch: u64,
    /// File position of `buf[0]`.
    buf_pos: u64,
    buf: Vec<u8>,
    /// Offset in `buf` of the next batch.
    at: usize,
}

impl<'a> BatchReader<'a> {
    pub(crate) fn new(file: &'a File, size: u64, max_batch: u64) -> BatchReader<'a> {
        BatchReader {
            file,
            size,
            max_batch,
            buf_pos: 0,
            buf: Vec::new(),
            at: 0,
        }
    }

    /// The next whole batch, or `None` at the end. A batch that runs past the segment
    /// size or declares a silly length is an error: sealed segments hold whole batches.
    pub(crate) fn next_batch(&mut self) -> Result<Option<&[u8]>> {
        let pos = self.buf_pos + self.at as u64;
        if pos >= self.size {
            return Ok(None);
        }
        self.fill(pos, BATCH_HEADER_LEN as u64)?;
        let header = BatchHeader::parse_fixed(&self.buf[self.at..]).map_err(|e| {
            StorageError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad batch header at position {pos}: {e}"),
            ))
        })?;
        let len = header.total_len() as u64;
        if len > self.max_batch || pos + len > self.size {
            return Err(StorageError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("batch of {len} bytes at position {pos} does not fit the segment"),
            )));
        }
        self.fill(pos, len)?;
        let start = self.at;
        self.at += len as usize;
        Ok(Some(&self.buf[start..start + len as usize]))
    }

    /// Make sure `buf` holds `len` bytes from file position `pos`.
    fn fill(&mut self, pos: u64, len: u64) -> Result<()> {
        let have = (self.buf_pos + self.buf.len() as u64).saturating_sub(pos);
        if pos >= self.buf_pos && have >= len {
            return Ok(());
        }
        let want = len.max(READ_CHUNK as u64).min(self.size - pos) as usize;
        self.buf.resize(want, 0);
        self.file.read_exact_at(&mut self.buf, pos)?;
        self.buf_pos = pos;
        self.at = 0;
        Ok(())
    }
}

/// A record of a given key found in a segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOccurrence {
    /// Base offset of the segment file that holds it.
    pub segment: u64,
    pub offset: u64,
    pub timestamp: i64,
    /// The record is a tombstone (null value).
    pub tombstone: bool,
}

/// Every record with `key` in any segment file of the log, below the log start offset
/// included: what is physically on disk, for `runnel erase status`.
pub fn find_key(log: &SharedLog, key: &[u8]) -> Result<Vec<KeyOccurrence>> {
    let (segments, max_batch) = {
        let mut guard = log.lock()?;
        (
            guard.all_segments()?,
            guard.config().max_batch_bytes_on_disk(),
        )
    };
    let mut found = Vec::new();
    for seg in &segments {
        let mut reader = BatchReader::new(&seg.file, seg.size, max_batch);
        while let Some(batch) = reader.next_batch()? {
            let header = checked(batch, seg)?;
            if header.is_control() {
                continue;
            }
            let records = batch_records(batch, MAX_DECOMPRESSED).map_err(|e| corrupt(seg, e))?;
            for r in records.records() {
                let r = r.map_err(|e| corrupt(seg, e))?;
                if r.key == Some(key) {
                    found.push(KeyOccurrence {
                        segment: seg.base,
                        offset: records.offset(&r) as u64,
                        timestamp: records.timestamp(&r),
                        tombstone: r.value.is_none(),
                    });
                }
            }
        }
    }
    Ok(found)
}

/// Every record with `key` in any log file of a partition directory: segments, and
/// files a cleaner or a deletion left behind (`.cleaned`, `.swap`, `.deleted`). Reads
/// the files as they are, without opening the log, so it is safe to run beside a live
/// broker; a batch still being written at the end of the active segment is skipped.
/// Returns `(file name, occurrence)` pairs; the occurrence's `segment` is the file's
/// base offset.
pub fn scan_dir_for_key(dir: &Path, key: &[u8]) -> Result<Vec<(String, KeyOccurrence)>> {
    let mut files: Vec<(String, u64)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match layout::parse_base_offset(&name) {
            Some((base, kind)) if kind.holds_batches() => files.push((name, base)),
            _ => {}
        }
    }
    files.sort();
    let mut found = Vec::new();
    for (name, base) in files {
        let file = match File::open(dir.join(&name)) {
            Ok(f) => f,
            // Removed meanwhile (a swap or a deletion finished): nothing left to find.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata()?.len();
        let seg = SegmentSnapshot {
            base,
            next_offset: base,
            size,
            file: Arc::new(file),
            first_append_ms: None,
        };
        let mut reader = BatchReader::new(&seg.file, size, crate::MAX_BATCH_BYTES_ON_DISK);
        // A torn or in-progress tail ends the scan of this file.
        while let Ok(Some(batch)) = reader.next_batch() {
            let Ok(header) = validate_batch(batch, Strictness::Stored) else {
                break;
            };
            if header.is_control() {
                continue;
            }
            let records = batch_records(batch, MAX_DECOMPRESSED).map_err(|e| corrupt(&seg, e))?;
            for r in records.records() {
                let r = r.map_err(|e| corrupt(&seg, e))?;
                if r.key == Some(key) {
                    found.push((
                        name.clone(),
                        KeyOccurrence {
                            segment: base,
                            offset: records.offset(&r) as u64,
                            timestamp: records.timestamp(&r),
                            tombstone: r.value.is_none(),
                        },
                    ));
                }
            }
        }
    }
    Ok(found)
}
