//! One partition's log: an ordered set of segments (Kafka's `UnifiedLog`/`LocalLog`).
//!
//! Invariants (checked with debug assertions):
//! - offsets only grow: every batch's base offset >= the previous batch's last + 1;
//! - `log_start_offset <= recovery_point <= log_end_offset` is not required (the start may
//!   pass the recovery point after DeleteRecords), but `log_start_offset <= log_end_offset`
//!   always holds;
//! - exactly one segment, the last, is active (writable); the map is never empty.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel_records::record_batch::{
    set_base_offset, set_log_append_time_split, set_partition_leader_epoch, BatchHeader, BatchIter,
    Strictness, BATCH_HEADER_LEN,
};

use runnel_records::records::{control_record_type, ControlRecordType};

use crate::checkpoint;
use crate::cleaner::SegmentSnapshot;
use crate::layout::{self, FileKind, SegmentFile, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::leader_epoch::LeaderEpochCache;
use crate::segment::{Segment, SegmentReader};
use crate::txn_index::{self, AbortedTxn};
use crate::{fault, space, sync_dir, FileSlice, LogConfig, Result, StorageError};

/// How to open a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The log was closed cleanly: trust segments, check indexes, validate only the
    /// tail of the active segment.
    Clean,
    /// After a crash: validate every batch from the segment holding the recovery point
    /// (read from the partition directory) onwards, truncating at the first bad byte.
    Recover,
}

/// What recovery found and cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments_scanned: usize,
    pub truncated_bytes: u64,
    pub segments_deleted: usize,
    /// Where the first invalid batch was found and why.
    pub first_error: Option<(u64, u64, String)>,
}

/// Header fields [`Log::append_rewriting`] sets in every appended batch, besides the
/// base offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderRewrite {
    /// The partition leader epoch (outside the CRC).
    pub partition_leader_epoch: Option<i32>,
    /// Stamp LogAppendTime at this time: attribute bit and max timestamp, CRC recomputed.
    pub log_append_time: Option<i64>,
}

/// Offsets assigned to an appended record set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: u64,
    pub last_offset: u64,
    pub max_timestamp: i64,
    pub record_count: u64,
    pub bytes: u64,
    /// Headers of the appended batches, with their assigned base offsets.
    pub batches: Vec<BatchHeader>,
    /// A new segment was rolled for this append.
    pub rolled: bool,
}

/// The result of a read by offset.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches, the first one holding the requested offset; `None` when there is
    /// nothing at or after the offset (below the upper bound).
    pub slice: Option<FileSlice>,
    /// Base offset of the first batch in `slice`.
    pub first_batch_offset: Option<u64>,
    pub log_start_offset: u64,
    pub log_end_offset: u64,
}

/// The first batch whose max timestamp is at or after a target timestamp.
#[derive(Debug, Clone)]
pub struct TimestampHit {
    pub batch: BatchHeader,
    pub slice: FileSlice,
}

/// Rolls a log takes with no flush between them before the roll flushes itself, under
/// the lock. Each leaves its sealed `.log` (dirty, so kept open) and two index handles
/// for the next flush: a log whose appends need no fsync (write caching) is flushed
/// after each roll by its owner (Kafka's flush of the rolled segment), and this bounds
/// the files held and the recovery point's lag when the owner does not.
const MAX_UNFLUSHED_ROLLS: usize = 4;
/// The largest control batch whose record is read for its type while replaying.
const MAX_CONTROL_BATCH: usize = 4096;

/// What a flush must sync, captured under the log lock and run outside it.
pub(crate) struct FlushJob {
    /// Segment files with their base offsets (which name them for the fault seam).
    files: Vec<(Arc<File>, u64)>,
    /// Index files of segments sealed by a roll since the last flush.
    sealed: Vec<(File, PathBuf)>,
    /// Transaction index files appended to since the last flush.
    txn_files: Vec<(Arc<File>, PathBuf)>,
    /// A roll created a segment file since the last flush: fsync the directory.
    sync_dir: bool,
    dir: Arc<Path>,
    /// Offsets below this become durable once all of the above are synced.
    pub(crate) upto: u64,
    /// Persist a new recovery point (a segment rolled since the last one).
    checkpoint: bool,
}

impl FlushJob {
    /// The fsyncs a roll left (sealed indexes, the new file's directory entry), then
    /// the data: all of them before `upto` counts as durable. Returns whether the
    /// recovery point was checkpointed: a full disk skips that (the data is durable all
    /// the same; the older checkpoint only makes the next recovery scan further).
    pub(crate) fn run(&self) -> io::Result<bool> {
        for (f, path) in &self.sealed {
            fault::sync_all(f, || path)?;
        }
        for (f, path) in &self.txn_files {
            fault::sync_data(f, || path)?;
        }
        if self.sync_dir {
            sync_dir(&self.dir)?;
        }
        for (f, base) in &self.files {
            fault::sync_data(f, || layout::log_file(&self.dir, *base))?;
        }
        if self.checkpoint {
            match checkpoint::write_u64(&self.dir, RECOVERY_POINT_FILE, self.upto) {
                Ok(()) => {}
                Err(e) if space::is_no_space(&e) => {
                    space::note_full("recovery-point checkpoint", &self.dir, 4096, &e);
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(self.checkpoint)
    }
}

pub struct Log {
    dir: Arc<Path>,
    config: LogConfig,
    segments: BTreeMap<u64, Segment>,
    log_start_offset: u64,
    /// The log end offset: the offset the next appended record gets.
    next_offset: u64,
    /// Offsets below this are fsynced.
    recovery_point: u64,
    /// Base offset of the segment named in the recovery-point file.
    checkpointed_segment: u64,
    /// Index files of segments sealed by a roll, not yet fsynced; the next flush syncs
    /// them (with the segments' `.log` files, still dirty) before it reports anything
    /// past them durable. Open handles, so a segment deleted meanwhile is no error.
    unsynced_seals: Vec<(File, PathBuf)>,
    /// A roll created a segment file whose directory entry is not yet fsynced.
    dir_unsynced: bool,
    /// Rolls since the last flush was prepared.
    unflushed_rolls: usize,
    /// A flush job is prepared and not yet completed (it runs outside the lock).
    flush_in_flight: bool,
    /// The offset the flush in flight, if any, will report durable below.
    flush_in_flight_upto: u64,
    /// Transaction index files appended to and not yet fsynced; the next flush syncs
    /// them before it reports anything past their entries durable.
    unsynced_txn: Vec<(Arc<File>, PathBuf)>,
    /// Counts changes to the transaction index of a sealed segment (a late entry), so
    /// that the cleaner can tell whether the entries it read are still all there is
    /// when it swaps. The active segment's, which the cleaner never rewrites, do not
    /// count: they change all the time under transactional load.
    txn_generation: u64,
    read_clock: u64,
    recovery: RecoveryReport,
    /// Files renamed to `.deleted`, with the time they are due for removal.
    pending_deletes: Vec<(i64, PathBuf)>,
    /// Why the log refuses writes: an I/O error on its write path or a failed fsync.
    /// After either the files' state is unknown (a failed fsync may have dropped dirty
    /// pages, so a retry could "succeed" without the data: the fsyncgate lesson), so
    /// nothing more is written or reported durable until the log is reopened, which
    /// recovers it from what is on disk.
    poisoned: Option<String>,
    /// Whether `poisoned` is set, readable without the log's lock.
    offline: Arc<std::sync::atomic::AtomicBool>,
    leader_epochs: LeaderEpochCache,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: u64,
}

impl Log {
    /// Open (or create) the log in `dir`.
    pub fn open(dir: &Path, config: LogConfig, mode: OpenMode) -> Result<Log> {
        config.validate().map_err(StorageError::InvalidConfig)?;
        std::fs::create_dir_all(dir)?;
        finish_interrupted_cleaning(dir)?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            match layout::parse_base_offset(name) {
                Some((base, FileKind::Log)) => bases.push(base),
                Some(_) => {}
                None if name.ends_with(layout::LOG_SUFFIX) => tracing::warn!(
                    file = name,
                    "ignoring a .log file that is not named by a base offset"
                ),
                None => {}
            }
        }
        bases.sort_unstable();
        let mut log = Log {
            dir: Arc::from(dir),
            config,
            segments: BTreeMap::new(),
            log_start_offset: 0,
            next_offset: 0,
            recovery_point: 0,
            checkpointed_segment: 0,
            unsynced_seals: Vec::new(),
            dir_unsynced: false,
            unflushed_rolls: 0,
            flush_in_flight: false,
            flush_in_flight_upto: 0,
            unsynced_txn: Vec::new(),
            txn_generation: 0,
            read_clock: 0,
            recovery: RecoveryReport::default(),
            pending_deletes: Vec::new(),
            poisoned: None,
            offline: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            leader_epochs: LeaderEpochCache::open(dir),
        };
        if bases.is_empty() {
            let seg = Segment::create(dir, 0, &log.config)?;
            log.segments.insert(0, seg);
            sync_dir(dir)?;
            log.trim_leader_epochs();
            return Ok(log);
        }
        let recovery_point = match mode {
            OpenMode::Clean => u64::MAX,
            OpenMode::Recover => checkpoint::read_u64(dir, RECOVERY_POINT_FILE).unwrap_or(0),
        };
        // Segments wholly below the recovery point are trusted; the one holding it
        // and all later ones are validated batch by batch.
        let first_recovered = bases
            .iter()
            .rposition(|&b| b <= recovery_point)
            .unwrap_or(0);
        let last = bases.len() - 1;
        let mut cut_after: Option<usize> = None;
        for (i, &base) in bases.iter().enumerate() {
            let mut seg = Segment::closed(dir, base);
            let is_last = i == last;
            let recover = mode == OpenMode::Recover && i >= first_recovered;
            if !recover && !is_last {
                // Trusted: only the indexes are checked (and rebuilt if they fail).
                seg.load_inactive(&log.config, bases[i + 1])?;
                seg.load_txn_index(bases[i + 1]);
                log.segments.insert(base, seg);
                continue;
            }
            // Writable while loading so that rebuilt indexes have room.
            seg.active = true;
            let outcome = if recover {
                log.recovery.segments_scanned += 1;
                seg.recover(&log.config)?
            } else {
                seg.load(&log.config)?
            };
            let file_len = seg.file()?.metadata()?.len();
            if let Some((pos, why)) = &outcome.stopped_by {
                tracing::warn!(segment = %seg.path(SegmentFile::Log).display(), position = pos, %why,
                    cut_bytes = file_len - outcome.valid_end, "truncating the log at the first invalid batch");
                log.recovery
                    .first_error
                    .get_or_insert((base, *pos, why.clone()));
                log.recovery.truncated_bytes += file_len - outcome.valid_end;
                seg.truncate_to(&log.config, outcome.valid_end)?;
                cut_after = Some(i);
            }
            log.next_offset = outcome.next_offset.max(log.next_offset);
            if recover {
                // What recovery validated may have been in the page cache only (a crash
                // keeps it, a power loss does not): sync it before anything calls it
                // durable. A retry of one of its batches is then answered without a new
                // fsync. (The fault harness's power loss lost such a retry's record.)
                let path = seg.path(SegmentFile::Log);
                let file = seg.file()?;
                fault::sync_data(&file, || &path)?;
            }
            // Entries whose markers recovery cut (or that never had one) go.
            seg.load_txn_index(outcome.next_offset);
            if recover {
                // Its aborted transactions too: the replay re-adds only the entries of
                // markers after the producer snapshot, so an entry lost to a power cut
                // would let read_committed show an aborted transaction.
                let path = seg.path(SegmentFile::TxnIndex);
                match File::open(&path) {
                    Ok(f) => fault::sync_data(&f, || &path)?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if !is_last && cut_after.is_none() {
                seg.seal(&log.config)?;
                seg.release_handles();
            }
            log.segments.insert(base, seg);
            if cut_after.is_some() {
                break;
            }
        }
        if let Some(i) = cut_after {
            // Everything after the first invalid batch goes, later segments included;
            // the truncated segment stays open as the active one.
            for &base in &bases[i + 1..] {
                let path = layout::log_file(dir, base);
                log.recovery.truncated_bytes +=
                    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                log.recovery.segments_deleted += 1;
                Segment::closed(dir, base).delete_files()?;
            }
            sync_dir(dir)?;
        }
        // After a clean open everything is durable, and recovery synced what it validated.
        log.recovery_point = log.next_offset;
        log.checkpointed_segment = log.active().base_offset;
        let first_base = *log.segments.keys().next().expect("non-empty");
        let stored_start = checkpoint::read_u64(dir, LOG_START_OFFSET_FILE).unwrap_or(0);
        log.log_start_offset = stored_start.max(first_base).min(log.next_offset);
        log.trim_leader_epochs();
        Ok(log)
    }

    /// Fit the leader epoch cache to the log recovery left: no epoch begins past the end
    /// or below the start. A failure to rewrite the checkpoint is logged, not fatal:
    /// the cache in memory is right and the next change rewrites it.
    fn trim_leader_epochs(&mut self) {
        let (start, end) = (self.log_start_offset, self.next_offset);
        let trimmed = self
            .leader_epochs
            .truncate_from_end(end)
            .and_then(|()| self.leader_epochs.truncate_from_start(start));
        if let Err(e) = trimmed {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot rewrite the leader epoch checkpoint");
        }
    }

    /// Make `epoch` the partition's current leader epoch: it begins at the log end, or,
    /// when the cache is empty (a new partition, or a log from before the cache), at the
    /// log start, since every batch then carries it.
    pub fn assign_leader_epoch(&mut self, epoch: i32) -> Result<()> {
        if self.leader_epochs.latest_epoch() == Some(epoch) {
            return Ok(());
        }
        let start = if self.leader_epochs.entries().is_empty() {
            self.log_start_offset
        } else {
            self.next_offset
        };
        self.leader_epochs.assign(epoch, start)?;
        Ok(())
    }

    /// OffsetForLeaderEpoch for `requested`: (epoch, end offset), Kafka's rules.
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        self.leader_epochs
            .end_offset_for(requested, self.next_offset)
    }

    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.leader_epochs
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    pub fn log_start_offset(&self) -> u64 {
        self.log_start_offset
    }
    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> u64 {
        self.next_offset
    }
    /// Offsets below this are known to be fsynced.
    pub fn recovery_point(&self) -> u64 {
        self.recovery_point
    }
    /// Base offset of the active segment: every offset below it was sealed by a roll.
    pub fn active_base_offset(&self) -> u64 {
        self.active().base_offset
    }
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }
    /// Why the log refuses writes, if it does (see [`StorageError::Poisoned`]).
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    fn check_writable(&self) -> Result<()> {
        match &self.poisoned {
            None => Ok(()),
            Some(why) => Err(StorageError::Poisoned(why.clone())),
        }
    }

    /// Refuse writes from now on; the first reason is kept.
    pub(crate) fn poison(&mut self, why: impl std::fmt::Display) {
        if self.poisoned.is_none() {
            tracing::error!(dir = %self.dir.display(), error = %why,
                "I/O error on the log's write path; it refuses writes until reopened");
            self.poisoned = Some(why.to_string());
            self.offline
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Set once the log is poisoned; shared so that asking needs no lock.
    pub(crate) fn offline_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.offline.clone()
    }

    /// Poison the log if `r` is an I/O error: the files may now differ from what the
    /// log holds in memory. Validation errors change nothing and pass through.
    fn poison_on_io<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(StorageError::Io(e)) = &r {
            self.poison(e);
        }
        r
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }
    /// Bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    /// Change settings at runtime; they apply from the next append or roll.
    pub fn set_config(&mut self, config: LogConfig) -> Result<()> {
        config.validate().map_err(StorageError::InvalidConfig)?;
        self.config = config;
        Ok(())
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }
    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    /// Validate a record set (one or more whole batches), assign offsets and append it.
    /// On any validation error nothing is written.
    pub fn append(&mut self, records: &[u8], now_ms: i64) -> Result<AppendInfo> {
        self.append_rewriting(records, HeaderRewrite::default(), now_ms)
    }

    /// [`Log::append`], also rewriting the header fields in `rewrite`. The record set is
    /// not modified: each batch's header is rewritten in a copy and written with the
    /// rest of the batch in one vectored write, so a produced batch reaches the page
    /// cache straight from the request's buffer (copying it first cost the broker 4-10%
    /// of its CPU at 1 MiB batches).
    pub fn append_rewriting(
        &mut self,
        records: &[u8],
        rewrite: HeaderRewrite,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.check_writable()?;
        let mut batches = Vec::with_capacity(1);
        for item in BatchIter::new(records, Strictness::Produce) {
            let (_, header) =
                item.map_err(|(position, source)| StorageError::InvalidBatch { position, source })?;
            if header.total_len() > self.config.max_message_bytes as usize {
                return Err(StorageError::BatchTooLarge {
                    size: header.total_len(),
                    limit: self.config.max_message_bytes,
                });
            }
            batches.push(header);
        }
        if batches.is_empty() {
            return Err(StorageError::EmptyRecordSet);
        }
        if records.len() > self.config.segment_bytes as usize {
            return Err(StorageError::RecordSetTooLarge {
                size: records.len(),
                limit: self.config.segment_bytes,
            });
        }
        let span: u64 = batches.iter().map(|h| h.last_offset_delta as u64 + 1).sum();
        let incoming_max_ts = match rewrite.log_append_time {
            Some(t) => t,
            None => batches.iter().map(|h| h.max_timestamp).max().unwrap_or(-1),
        };
        let segments_before = self.segments.len();
        let r = self.maybe_roll(records.len() as u64, span, now_ms, incoming_max_ts);
        if let Err(StorageError::NoSpace(e)) = r {
            space::note_refused_append();
            return Err(StorageError::NoSpace(e));
        }
        self.poison_on_io(r)?;
        let rolled = self.segments.len() != segments_before;

        let first_offset = self.next_offset;
        let mut offset = first_offset;
        let mut pos = 0usize;
        let mut max_timestamp = -1;
        let mut record_count = 0u64;
        let mut headers: Vec<[u8; BATCH_HEADER_LEN]> = Vec::with_capacity(batches.len());
        for h in batches.iter_mut() {
            // Validated above: the batch is whole and at least a header long.
            let batch = &records[pos..pos + h.total_len()];
            let mut header = [0u8; BATCH_HEADER_LEN];
            header.copy_from_slice(&batch[..BATCH_HEADER_LEN]);
            set_base_offset(&mut header, offset as i64);
            if let Some(epoch) = rewrite.partition_leader_epoch {
                set_partition_leader_epoch(&mut header, epoch);
            }
            if let Some(at) = rewrite.log_append_time {
                set_log_append_time_split(&mut header, &batch[BATCH_HEADER_LEN..], at);
            }
            *h =
                BatchHeader::parse_fixed(&header).map_err(|source| StorageError::InvalidBatch {
                    position: pos,
                    source,
                })?;
            headers.push(header);
            offset += h.last_offset_delta as u64 + 1;
            pos += h.total_len();
            max_timestamp = max_timestamp.max(h.max_timestamp);
            record_count += h.record_count as u64;
        }
        let config = self.config.clone();
        let seg = self.active_mut();
        let start = seg.size;
        if let Err(e) = seg.append(&config, records, &headers, &batches, now_ms) {
            // Leave no partial batch behind (and if this fails too, recovery cuts it).
            let cut = seg.truncate_to(&config, start);
            if space::is_no_space(&e) && cut.is_ok() {
                // Back where it was: the log stays writable and the next append retries.
                space::note_full("append", &self.dir, records.len() as u64, &e);
                space::note_refused_append();
                return Err(StorageError::NoSpace(e));
            }
            return self.poison_on_io(Err(e.into()));
        }
        space::note_write_ok();
        debug_assert!(offset > self.next_offset, "offsets only grow");
        self.next_offset = offset;
        Ok(AppendInfo {
            first_offset,
            last_offset: offset - 1,
            max_timestamp,
            record_count,
            bytes: records.len() as u64,
            batches,
            rolled,
        })
    }

    fn maybe_roll(
        &mut self,
        incoming_bytes: u64,
        offset_span: u64,
        now_ms: i64,
        incoming_max_ts: i64,
    ) -> Result<()> {
        let config = self.config.clone();
        let next_offset = self.next_offset;
        let seg = self.active_mut();
        if seg.size == 0 {
            return Ok(());
        }
        let full = seg.size + incoming_bytes > config.segment_bytes as u64;
        // Kafka's LogSegment.timeWaitedForRoll: segment.ms counts from the first batch's
        // timestamp to the incoming batch's (so old records, e.g. a replay, do not make
        // a segment per batch), or in wall-clock time when the first batch had none.
        let aged = match seg.rolling_timestamp {
            Some(t) if !seg.rolling_by_wall_clock && t >= 0 => {
                incoming_max_ts.saturating_sub(t) >= config.segment_ms
            }
            Some(t) => now_ms.saturating_sub(t) >= config.segment_ms,
            None => false,
        };
        let index_full = seg.index_is_full(&config)?;
        let offsets_overflow = next_offset + offset_span - seg.base_offset > i32::MAX as u64;
        if full || aged || index_full || offsets_overflow {
            self.roll()?;
        }
        Ok(())
    }

    /// Seal the active segment and start a new one at the log end offset. No-op when
    /// the active segment is empty.
    pub fn roll(&mut self) -> Result<()> {
        self.check_writable()?;
        let r = self.roll_inner();
        self.poison_on_io(r)
    }

    fn roll_inner(&mut self) -> Result<()> {
        let config = self.config.clone();
        let base = self.next_offset;
        if self.active().size == 0 {
            return Ok(());
        }
        // The new file first: if the disk is full, creating it fails (and leaves no
        // file) before anything of the old segment changed, so the log stays as it was.
        let new = match Segment::create(&self.dir, base, &config) {
            Ok(seg) => seg,
            Err(e) if space::is_no_space(&e) => {
                space::note_full("segment roll", &self.dir, 4096, &e);
                return Err(StorageError::NoSpace(e));
            }
            Err(e) => return Err(e.into()),
        };
        // No fsync here, under the log lock: the next flush syncs the sealed segment and
        // the directory (the new file's entry) before it reports any offset past the
        // roll durable (Kafka's roll, then flushUptoOffsetExclusive).
        let sealed = match self.active_mut().seal_unsynced(&config) {
            Ok(sealed) => sealed,
            Err(e) => {
                // The log is poisoned by the caller; the unused new file goes.
                let _ = new.delete_files();
                return Err(e.into());
            }
        };
        self.unsynced_seals.extend(sealed);
        self.dir_unsynced = true;
        self.unflushed_rolls += 1;
        self.segments.insert(base, new);
        tracing::debug!(dir = %self.dir.display(), base, "rolled a new segment");
        if self.unflushed_rolls > MAX_UNFLUSHED_ROLLS && !self.flush_in_flight {
            // Nobody flushes this log: a backstop, under the lock (see the constant). A
            // flush in flight is left to finish first, as its owner is flushing.
            tracing::debug!(dir = %self.dir.display(), rolls = self.unflushed_rolls,
                "flushing the rolled segments under the log lock");
            self.flush_below(base)?;
        }
        self.release_idle_handles();
        Ok(())
    }

    /// Read whole batches starting with the one that holds `offset`, up to `max_bytes`
    /// (but always at least one batch), and never reaching `upper_bound` (exclusive;
    /// the high watermark for consumers). [`SharedLog::read`] does the same with the
    /// log lock held only to pick segments.
    pub fn read(&mut self, offset: u64, max_bytes: u64, upper_bound: u64) -> Result<ReadResult> {
        let mut cursor = self.begin_read(offset, max_bytes, upper_bound)?;
        while let Some(seg) = self.read_segment(&cursor)? {
            cursor.search(&seg)?;
        }
        Ok(cursor.result)
    }

    /// Start a read: check the offset and fix its bounds. In memory only.
    pub(crate) fn begin_read(
        &self,
        offset: u64,
        max_bytes: u64,
        upper_bound: u64,
    ) -> Result<ReadCursor> {
        if offset < self.log_start_offset || offset > self.next_offset {
            return Err(self.out_of_range(offset));
        }
        let upper = upper_bound.min(self.next_offset);
        Ok(ReadCursor {
            offset,
            max_bytes,
            upper,
            resume: offset,
            done: offset >= upper,
            result: ReadResult {
                slice: None,
                first_batch_offset: None,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.next_offset,
            },
        })
    }

    /// The segment a read searches next (the one holding its resume offset), as a
    /// reader to search without the lock; `None` when the read is done. Opens the
    /// segment's files if they are closed, and keeps the open-handle budget.
    pub(crate) fn read_segment(&mut self, cursor: &ReadCursor) -> Result<Option<SegmentReader>> {
        if cursor.done {
            return Ok(None);
        }
        // A later step may find the log start moved past the offset meanwhile.
        if cursor.offset < self.log_start_offset {
            return Err(self.out_of_range(cursor.offset));
        }
        let base = self
            .segments
            .range(..=cursor.resume)
            .next_back()
            .or_else(|| self.segments.iter().next())
            .map(|(b, _)| *b);
        let Some(base) = base.filter(|b| *b < cursor.upper) else {
            return Ok(None);
        };
        self.read_clock += 1;
        let seg = self.segments.get_mut(&base).expect("base from the map");
        seg.last_used = self.read_clock;
        let reader = seg.reader(&self.config)?;
        self.release_idle_handles();
        Ok(Some(reader))
    }

    /// Call `f` with the header of every batch from the one holding `from` to the end,
    /// reading headers only (no record bytes), except that a control batch's record is
    /// read for its type. For rebuilding producer state.
    pub fn for_each_batch_header(
        &mut self,
        from: u64,
        mut f: impl FnMut(&BatchHeader, Option<ControlRecordType>),
    ) -> Result<()> {
        let bases: Vec<u64> = self
            .segments
            .range(..=from)
            .next_back()
            .map(|(b, _)| *b)
            .into_iter()
            .chain(self.segments.range(from + 1..).map(|(b, _)| *b))
            .collect();
        for base in bases {
            let seg = self.segments.get_mut(&base).expect("base from the map");
            let reader = seg.reader(&self.config)?;
            let Some(first) = reader.find_batch(from)? else {
                continue;
            };
            let mut pos = first.position as u64;
            while let Some(h) = reader.read_header(pos)? {
                // A marker is one small record; anything larger is not one we wrote.
                let control = if h.is_control() && h.total_len() <= MAX_CONTROL_BATCH {
                    let bytes = reader.slice(pos, h.total_len() as u64).read_to_vec()?;
                    control_record_type(&bytes)
                } else {
                    None
                };
                f(&h, control);
                pos += h.total_len() as u64;
            }
        }
        self.release_idle_handles();
        Ok(())
    }

    /// Find the first batch whose max timestamp >= `timestamp` (ListOffsets by time).
    /// [`SharedLog::find_timestamp`] does the same with the lock held only to pick
    /// segments.
    pub fn find_timestamp(&mut self, timestamp: i64) -> Result<Option<TimestampHit>> {
        let mut resume = 0;
        while let Some(seg) = self.timestamp_segment(timestamp, resume)? {
            if let Some(hit) = search_timestamp(&seg, timestamp)? {
                return Ok(Some(hit));
            }
            resume = seg.next_offset;
        }
        Ok(None)
    }

    /// The first segment from the one holding `resume` that may hold a batch at or
    /// after `timestamp` and is not wholly below the log start, as a reader.
    pub(crate) fn timestamp_segment(
        &mut self,
        timestamp: i64,
        resume: u64,
    ) -> Result<Option<SegmentReader>> {
        let log_start = self.log_start_offset;
        let first = self
            .segments
            .range(..=resume)
            .next_back()
            .map_or(0, |(b, _)| *b);
        self.read_clock += 1;
        let mut found = None;
        for seg in self.segments.range_mut(first..).map(|(_, s)| s) {
            // `resume` is where the previous segment searched ended.
            if seg.next_offset <= log_start
                || seg.next_offset <= resume
                || seg.max_timestamp < timestamp
            {
                continue;
            }
            seg.last_used = self.read_clock;
            found = Some(seg.reader(&self.config));
            break;
        }
        self.release_idle_handles();
        Ok(found.transpose()?)
    }

    /// The largest timestamp of the segments not wholly below the log start, -1 if none.
    pub(crate) fn largest_timestamp(&self) -> i64 {
        self.segments
            .values()
            .filter(|s| s.next_offset > self.log_start_offset)
            .map(|s| s.max_timestamp)
            .max()
            .unwrap_or(-1)
    }

    /// The largest timestamp in the log and the batch that holds it.
    pub fn max_timestamp(&mut self) -> Result<Option<TimestampHit>> {
        let max = self.largest_timestamp();
        if max < 0 {
            return Ok(None);
        }
        self.find_timestamp(max)
    }

    /// Record an aborted transaction in the `.txnindex` of the segment that holds
    /// `txn.last_offset` (its abort marker). Idempotent: an entry with the same marker
    /// offset is not added twice (markers replayed at start come again). An entry for a
    /// marker below the first segment is dropped: its data is gone. The entry is durable
    /// once the marker is: the next flush syncs it, or, if a flush may already have
    /// reported the marker durable, it is synced now.
    pub fn append_aborted_txn(&mut self, txn: &AbortedTxn) -> Result<()> {
        self.check_writable()?;
        if !txn.is_encodable() {
            return Err(StorageError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("aborted transaction {txn:?} cannot be indexed"),
            )));
        }
        if txn.last_offset >= self.next_offset {
            return Err(self.out_of_range(txn.last_offset));
        }
        let Some((&base, _)) = self.segments.range(..=txn.last_offset).next_back() else {
            return Ok(());
        };
        let r = self.append_aborted_txn_inner(base, txn);
        self.poison_on_io(r)
    }

    fn append_aborted_txn_inner(&mut self, base: u64, txn: &AbortedTxn) -> Result<()> {
        let seg = self.segments.get_mut(&base).expect("base from the map");
        let generation = self.txn_generation + u64::from(!seg.active);
        match seg.txn.last() {
            Some(last) if last.last_offset == txn.last_offset => {
                if last != *txn {
                    tracing::warn!(dir = %self.dir.display(), indexed = ?last, given = ?txn,
                        "an aborted transaction with the same marker is indexed already");
                }
                return Ok(());
            }
            Some(last) if last.last_offset > txn.last_offset => {
                // Out of order: rare (an entry lost in a crash and replayed). Keep the
                // file in marker order, rewriting it.
                let mut entries = seg.txn.entries(seg.next_offset.max(txn.last_offset + 1))?;
                if entries.iter().any(|e| e.last_offset == txn.last_offset) {
                    return Ok(());
                }
                let at = entries.partition_point(|e| e.last_offset < txn.last_offset);
                entries.insert(at, *txn);
                seg.txn.rewrite(&entries)?;
                self.txn_generation = generation;
                return Ok(());
            }
            _ => {}
        }
        let appended = seg.txn.append(txn)?;
        let path = seg.txn.path().to_path_buf();
        self.txn_generation = generation;
        if appended.created {
            self.dir_unsynced = true;
        }
        // A flush prepared before this entry may report its marker durable: sync now.
        let reported = self.recovery_point.max(if self.flush_in_flight {
            self.flush_in_flight_upto
        } else {
            0
        });
        if txn.last_offset < reported {
            fault::sync_data(&appended.file, || &path)?;
            if appended.created {
                sync_dir(&self.dir)?;
            }
            return Ok(());
        }
        if !self.unsynced_txn.iter().any(|(_, p)| *p == path) {
            self.unsynced_txn.push((appended.file, path));
        }
        Ok(())
    }

    /// Where the aborted transactions overlapping reads from `from` may be indexed: the
    /// transaction index of the segment holding `from` and of every later one that has
    /// entries, with how much of each to read (the active one's, which may be growing),
    /// and the indexes' generation. In memory only.
    pub(crate) fn txn_index_sources(&self, from: u64) -> (Vec<TxnSource>, u64) {
        let first = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(0, |(b, _)| *b);
        let sources = self
            .segments
            .range(first..)
            .map(|(_, s)| s)
            .filter(|s| !s.txn.is_empty())
            .map(|s| TxnSource {
                path: s.txn.path().to_path_buf(),
                base: s.base_offset,
                len: s.active.then(|| s.txn.len_bytes()),
            })
            .collect();
        (sources, self.txn_generation)
    }

    /// Kafka's collectAbortedTransactions: the aborted transactions that overlap
    /// `[from, upper)` (`last_offset >= from` and `first_offset < upper`), read from the
    /// transaction index of the segment holding `from` and every later one, in marker
    /// order. [`SharedLog::aborted_txns`] reads the files without the lock.
    pub fn aborted_txns(&self, from: u64, upper: u64) -> Result<Vec<AbortedTxn>> {
        collect_aborted(&self.txn_index_sources(from).0, from, upper)
    }

    /// Move the log start offset forward (retention, DeleteRecords) and delete every
    /// segment that lies wholly below it. Returns the number of segments deleted.
    pub fn advance_log_start_offset(&mut self, new_start: u64) -> Result<usize> {
        self.advance_log_start_offset_at(new_start, crate::now_ms())
    }

    fn advance_log_start_offset_at(&mut self, new_start: u64, now_ms: i64) -> Result<usize> {
        self.check_writable()?;
        let r = self.advance_log_start_offset_inner(new_start, now_ms);
        self.poison_on_io(r)
    }

    fn advance_log_start_offset_inner(&mut self, new_start: u64, now_ms: i64) -> Result<usize> {
        if new_start > self.next_offset {
            return Err(self.out_of_range(new_start));
        }
        if new_start <= self.log_start_offset {
            return Ok(0);
        }
        if new_start == self.next_offset {
            // Everything goes: roll so the old active segment can be deleted too.
            self.roll()?;
        }
        // A start on a segment boundary (retention's always is) is kept by the deletion
        // itself: the next open takes the first segment's base. So a full disk, which
        // is when retention matters most, need not stop it; the checkpoint is written
        // after the deletion freed space. A start inside a segment needs the file first.
        let on_boundary = self.segments.contains_key(&new_start);
        let mut checkpoint_after = false;
        if new_start > *self.segments.keys().next().expect("non-empty") {
            match checkpoint::write_u64(&self.dir, LOG_START_OFFSET_FILE, new_start) {
                Ok(()) => {}
                Err(e) if space::is_no_space(&e) => {
                    space::note_full("log-start checkpoint", &self.dir, 4096, &e);
                    if !on_boundary {
                        return Err(StorageError::NoSpace(e));
                    }
                    checkpoint_after = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.log_start_offset = new_start;
        match self.leader_epochs.truncate_from_start(new_start) {
            Ok(()) => {}
            // The cache in memory is right; the next open trims the file again.
            Err(e) if space::is_no_space(&e) => {
                space::note_full("leader-epoch checkpoint", &self.dir, 4096, &e)
            }
            Err(e) => return Err(e.into()),
        }
        let mut deleted = 0;
        loop {
            let mut keys = self.segments.keys();
            let (Some(&first), Some(&second)) = (keys.next(), keys.next()) else {
                break;
            };
            if second > new_start {
                break;
            }
            let seg = self.segments.remove(&first).expect("key from the map");
            self.discard_segment(seg, now_ms)?;
            deleted += 1;
        }
        if deleted > 0 {
            sync_dir(&self.dir)?;
        }
        if checkpoint_after {
            if let Err(e) = checkpoint::write_u64(&self.dir, LOG_START_OFFSET_FILE, new_start) {
                // Not needed: the first segment's base says the same.
                tracing::debug!(dir = %self.dir.display(), error = %e, "log-start checkpoint after retention");
            }
        }
        debug_assert!(self.log_start_offset <= self.next_offset);
        Ok(deleted)
    }

    /// Delete the oldest segments that are past `retention.ms` (their newest record is
    /// older) or beyond `retention.bytes` (the log is larger than that without them),
    /// Kafka's `deleteOldSegments`. Only segments wholly below `upper_bound` (the high
    /// watermark) go; when all of them do, the active segment is rolled first. A negative
    /// limit means none.
    pub fn apply_retention(
        &mut self,
        retention_ms: i64,
        retention_bytes: i64,
        now_ms: i64,
        upper_bound: u64,
    ) -> Result<RetentionOutcome> {
        let total: u64 = self.segments.values().map(|s| s.size).sum();
        let mut excess = if retention_bytes >= 0 {
            total.saturating_sub(retention_bytes as u64)
        } else {
            0
        };
        let mut new_start = None;
        let mut bytes = 0;
        for seg in self.segments.values() {
            if seg.size == 0 || seg.next_offset > upper_bound {
                break;
            }
            let by_time =
                retention_ms >= 0 && now_ms.saturating_sub(seg.max_timestamp) > retention_ms;
            let by_size = retention_bytes >= 0 && excess >= seg.size;
            if !by_time && !by_size {
                break;
            }
            excess = excess.saturating_sub(seg.size);
            bytes += seg.size;
            new_start = Some(seg.next_offset);
        }
        let mut outcome = RetentionOutcome {
            log_start_offset: self.log_start_offset,
            ..RetentionOutcome::default()
        };
        if let Some(start) = new_start.filter(|s| *s > self.log_start_offset) {
            outcome.segments_deleted = self.advance_log_start_offset_at(start, now_ms)?;
            outcome.bytes_deleted = bytes;
            outcome.log_start_offset = self.log_start_offset;
        }
        self.purge_deleted(now_ms)?;
        Ok(outcome)
    }

    /// Remove a segment that left the log: now, or after `file.delete.delay.ms`.
    fn discard_segment(&mut self, seg: Segment, now_ms: i64) -> Result<()> {
        let delay = self.config.file_delete_delay_ms;
        if delay == 0 {
            seg.delete_files()?;
            return Ok(());
        }
        let due = now_ms.saturating_add(delay.min(i64::MAX as u64) as i64);
        for path in seg.rename_for_deletion()? {
            self.pending_deletes.push((due, path));
        }
        Ok(())
    }

    /// Remove `.deleted` files whose delay has passed. Returns how many were removed.
    pub fn purge_deleted(&mut self, now_ms: i64) -> Result<usize> {
        let mut removed = 0;
        let mut keep = Vec::new();
        for (due, path) in std::mem::take(&mut self.pending_deletes) {
            if due > now_ms {
                keep.push((due, path));
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    keep.push((due, path));
                    self.pending_deletes.extend(keep);
                    return Err(e.into());
                }
            }
        }
        self.pending_deletes = keep;
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// The earliest time a pending `.deleted` file is due, if any.
    pub fn next_deletion_due(&self) -> Option<i64> {
        self.pending_deletes.iter().map(|(due, _)| *due).min()
    }

    /// Snapshot the sealed segments the cleaner may rewrite: a prefix of the log, each
    /// wholly below `upper_bound` and with no record newer than `min_lag_ms`.
    pub(crate) fn cleanable_segments(
        &mut self,
        upper_bound: u64,
        now_ms: i64,
        min_lag_ms: i64,
    ) -> Result<Vec<SegmentSnapshot>> {
        let cutoff = now_ms.saturating_sub(min_lag_ms);
        let mut out = Vec::new();
        for seg in self.segments.values_mut() {
            if seg.active || seg.next_offset > upper_bound {
                break;
            }
            if min_lag_ms > 0 && seg.max_timestamp > cutoff {
                break;
            }
            out.push(snapshot(seg)?);
        }
        self.release_idle_handles();
        Ok(out)
    }

    /// Every segment, the active one included, for a scan without the lock.
    pub(crate) fn all_segments(&mut self) -> Result<Vec<SegmentSnapshot>> {
        let out = self
            .segments
            .values_mut()
            .map(snapshot)
            .collect::<Result<Vec<_>>>()?;
        self.release_idle_handles();
        Ok(out)
    }

    /// Roll the active segment if its first record was appended `max_lag_ms` ago or
    /// more (or before a restart), so that `max.compaction.lag.ms` can be met without
    /// waiting for the next append.
    pub fn roll_if_older_than(&mut self, now_ms: i64, max_lag_ms: i64) -> Result<bool> {
        if max_lag_ms == i64::MAX {
            return Ok(false);
        }
        let seg = self.active();
        if seg.size == 0 {
            return Ok(false);
        }
        let due = seg
            .first_append_ms
            .is_none_or(|t| t.saturating_add(max_lag_ms) <= now_ms);
        if due {
            self.roll()?;
        }
        Ok(due)
    }

    /// Swap the cleaner's output for the segments `bases` (consecutive, ending at `end`).
    /// Returns false, changing nothing, if any of them left the log meanwhile.
    /// `cleaned_txn` is the cleaned segment's fsynced transaction index, if it has
    /// entries; they were read when the transaction indexes stood at `txn_generation`,
    /// and if one has changed since (a late entry), nothing is swapped either.
    pub(crate) fn replace_with_cleaned(
        &mut self,
        bases: &[u64],
        cleaned: &Path,
        cleaned_txn: Option<&Path>,
        txn_generation: u64,
        end: u64,
    ) -> Result<bool> {
        let discard = |cleaned_txn: Option<&Path>| {
            let _ = std::fs::remove_file(cleaned);
            if let Some(t) = cleaned_txn {
                let _ = std::fs::remove_file(t);
            }
        };
        if let Err(e) = self.check_writable() {
            discard(cleaned_txn);
            return Err(e);
        }
        let Some(&base) = bases.first() else {
            discard(cleaned_txn);
            return Ok(false);
        };
        let intact = bases
            .iter()
            .all(|b| self.segments.get(b).is_some_and(|s| !s.active))
            && self.segments.range(base..end).count() == bases.len()
            && self.txn_generation == txn_generation;
        if !intact {
            discard(cleaned_txn);
            return Ok(false);
        }
        // The transaction index goes first, under the swap's name: it is part of the
        // swap once the log's swap file exists, and a leftover (removed on open) before.
        let txn_swap = layout::txn_index_swap_file(&self.dir, base, end);
        if let Some(t) = cleaned_txn {
            let renamed = fault::rename(t, &txn_swap).and_then(|()| sync_dir(&self.dir));
            if let Err(e) = renamed {
                discard(Some(t));
                let _ = std::fs::remove_file(&txn_swap);
                return Err(e.into());
            }
        }
        // The commit point: from here a crash completes the swap on the next open.
        let swap = layout::swap_file(&self.dir, base, end);
        if let Err(e) = fault::rename(cleaned, &swap) {
            // Not committed: the old segments stay, in the log and on disk.
            discard(None);
            let _ = std::fs::remove_file(&txn_swap);
            return Err(e.into());
        }
        // Committed on disk (once the directory is synced) but not yet in memory: any
        // failure from here leaves the two apart, so it poisons the log, and the next
        // open completes the swap.
        let txn_swap = cleaned_txn.map(|_| txn_swap);
        let r = self.finish_swap(bases, &swap, txn_swap.as_deref(), end);
        self.poison_on_io(r).map(|()| true)
    }

    fn finish_swap(
        &mut self,
        bases: &[u64],
        swap: &Path,
        txn_swap: Option<&Path>,
        end: u64,
    ) -> Result<()> {
        let base = bases[0];
        sync_dir(&self.dir)?;
        crate::cleaner::crash_point("swap-committed");
        let now = crate::now_ms();
        for (i, b) in bases.iter().enumerate() {
            if let Some(seg) = self.segments.remove(b) {
                self.discard_segment(seg, now)?;
            }
            if i + 1 == bases.len().div_ceil(2) {
                crate::cleaner::crash_point("old-deleted");
            }
        }
        // The index first: once the swap file is gone, a crash no longer finds it.
        if let Some(t) = txn_swap {
            fault::rename(t, &layout::txn_index_file(&self.dir, base))?;
        }
        fault::rename(swap, &layout::log_file(&self.dir, base))?;
        sync_dir(&self.dir)?;
        let mut seg = Segment::closed(&self.dir, base);
        seg.load_rebuilt(&self.config, end)?;
        seg.load_txn_index(end);
        self.segments.insert(base, seg);
        Ok(())
    }

    /// Capture what a flush must sync so that every offset below `limit` is durable
    /// (all of a segment that holds one; none of a later one, so a flush of what rolls
    /// sealed leaves the active segment's data alone). Called under the log lock; the
    /// job runs outside. A poisoned log has nothing it may report durable.
    pub(crate) fn prepare_flush(&mut self, limit: u64) -> Result<FlushJob> {
        self.check_writable()?;
        let mut files = Vec::new();
        let mut upto = self.next_offset;
        for seg in self.segments.values_mut() {
            if seg.base_offset >= limit && seg.base_offset < self.next_offset {
                upto = seg.base_offset;
                break;
            }
            if seg.dirty {
                // A dirty segment's file is open: it was written through it.
                match seg.file() {
                    Ok(f) => files.push((f, seg.base_offset)),
                    Err(e) => {
                        let e = StorageError::from(e);
                        return self.poison_on_io(Err(e));
                    }
                }
                seg.dirty = false;
            }
        }
        let active_base = self.active().base_offset;
        // Every seal and the directory go too, later rolls' included: syncing them
        // early is harmless, and a seal must not wait for a flush that covers it.
        self.unflushed_rolls = 0;
        self.flush_in_flight = true;
        self.flush_in_flight_upto = upto;
        Ok(FlushJob {
            files,
            sealed: std::mem::take(&mut self.unsynced_seals),
            txn_files: std::mem::take(&mut self.unsynced_txn),
            sync_dir: std::mem::take(&mut self.dir_unsynced),
            dir: self.dir.clone(),
            upto,
            checkpoint: active_base > self.checkpointed_segment,
        })
    }

    /// `checkpointed`: what [`FlushJob::run`] returned.
    pub(crate) fn complete_flush(&mut self, job: &FlushJob, checkpointed: bool) {
        self.flush_in_flight = false;
        if checkpointed {
            self.checkpointed_segment = self
                .segments
                .range(..=job.upto)
                .next_back()
                .map_or(self.checkpointed_segment, |(b, _)| *b);
        }
        self.recovery_point = self.recovery_point.max(job.upto);
        if !job.sealed.is_empty() {
            // The rolled segments are clean now: their handles may close.
            self.release_idle_handles();
        }
    }

    /// After a failed flush: never retry it (a second fsync can succeed without the
    /// data), refuse everything from now on.
    pub(crate) fn flush_failed(&mut self, why: &io::Error) {
        self.flush_in_flight = false;
        self.poison(format_args!("fsync failed: {why}"));
    }

    /// fsync everything appended so far.
    pub fn flush(&mut self) -> Result<u64> {
        self.flush_below(u64::MAX)?;
        Ok(self.recovery_point)
    }

    /// fsync what holds offsets below `limit`, under the lock.
    fn flush_below(&mut self, limit: u64) -> Result<()> {
        let job = self.prepare_flush(limit)?;
        match job.run() {
            Ok(checkpointed) => self.complete_flush(&job, checkpointed),
            Err(e) => {
                self.flush_failed(&e);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Flush, trim the active segment's indexes and record the recovery point, so the
    /// next open can be `OpenMode::Clean`. The log must not be appended to afterwards.
    /// A poisoned log writes nothing and fails, so the next open recovers it.
    pub fn close(&mut self) -> Result<()> {
        self.flush()?;
        let r = self.close_inner();
        self.poison_on_io(r)
    }

    fn close_inner(&mut self) -> Result<()> {
        let config = self.config.clone();
        let seg = self.active_mut();
        seg.flush_indexes()?;
        seg.seal(&config)?;
        checkpoint::write_u64(&self.dir, RECOVERY_POINT_FILE, self.next_offset)?;
        Ok(())
    }

    fn out_of_range(&self, offset: u64) -> StorageError {
        StorageError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.next_offset,
        }
    }

    /// Keep at most `max_open_inactive_segments` inactive segments open, closing the
    /// least recently read.
    fn release_idle_handles(&mut self) {
        let limit = self.config.max_open_inactive_segments;
        let mut open: Vec<(u64, u64)> = self
            .segments
            .values()
            .filter(|s| !s.active && s.is_open() && !s.dirty)
            .map(|s| (s.last_used, s.base_offset))
            .collect();
        if open.len() <= limit {
            return;
        }
        open.sort_unstable();
        for (_, base) in &open[..open.len() - limit] {
            if let Some(seg) = self.segments.get_mut(base) {
                seg.release_handles();
            }
        }
    }

    /// Number of inactive segments holding open files (for tests of the handle budget).
    pub fn open_inactive_segments(&self) -> usize {
        self.segments
            .values()
            .filter(|s| !s.active && s.is_open())
            .count()
    }
}

/// One transaction index to read for [`Log::aborted_txns`].
pub(crate) struct TxnSource {
    path: PathBuf,
    base: u64,
    /// Bytes to read at most; `None` for the whole file (a sealed segment's).
    len: Option<u64>,
}

/// Read the aborted transactions overlapping `[from, upper)` from `sources`, without
/// the log lock.
pub(crate) fn collect_aborted(
    sources: &[TxnSource],
    from: u64,
    upper: u64,
) -> Result<Vec<AbortedTxn>> {
    let mut out = Vec::new();
    for s in sources {
        if txn_index::collect(&s.path, s.len, s.base, from, upper, &mut out)? {
            break;
        }
    }
    Ok(out)
}

/// A read in progress. Its steps under the log lock ([`Log::read_segment`]) pick a
/// segment and take a reader of it; its searches ([`ReadCursor::search`]) pread batch
/// headers with no lock held.
pub(crate) struct ReadCursor {
    offset: u64,
    max_bytes: u64,
    /// The caller's bound, capped at the log end offset when the read began: bytes
    /// appended since are never returned.
    upper: u64,
    /// Search the segment holding this offset next.
    resume: u64,
    done: bool,
    result: ReadResult,
}

impl ReadCursor {
    pub(crate) fn done(&self) -> bool {
        self.done
    }

    pub(crate) fn into_result(self) -> ReadResult {
        self.result
    }

    /// Look for the read's batches in `seg`, without the lock.
    pub(crate) fn search(&mut self, seg: &SegmentReader) -> Result<()> {
        let Some(loc) = seg.find_batch(self.offset)? else {
            // Compaction may leave a segment without the offset: the next one serves.
            // Resuming by offset rather than by segment also finds records a
            // compaction swap merged into this segment's base meanwhile.
            if seg.next_offset <= self.resume || seg.next_offset >= self.upper {
                self.done = true;
            }
            self.resume = seg.next_offset;
            return Ok(());
        };
        self.done = true;
        if loc.header.base_offset as u64 >= self.upper {
            return Ok(());
        }
        let start = loc.position as u64;
        let end_limit = seg.position_of_boundary(self.upper)?;
        let first_end = loc.end();
        let wanted = start.saturating_add(self.max_bytes);
        let end = if end_limit <= wanted {
            end_limit
        } else {
            seg.last_batch_end_within(start, wanted)?
                .unwrap_or(first_end)
                .max(first_end)
        };
        debug_assert!(end >= first_end && end <= seg.size);
        self.result.slice = Some(seg.slice(start, end - start));
        self.result.first_batch_offset = Some(loc.header.base_offset as u64);
        Ok(())
    }
}

/// The first batch in `seg` whose max timestamp >= `timestamp`, without the lock.
pub(crate) fn search_timestamp(
    seg: &SegmentReader,
    timestamp: i64,
) -> Result<Option<TimestampHit>> {
    Ok(seg.find_timestamp(timestamp)?.map(|loc| TimestampHit {
        batch: loc.header,
        slice: seg.slice(loc.position as u64, loc.header.total_len() as u64),
    }))
}

fn snapshot(seg: &mut Segment) -> Result<SegmentSnapshot> {
    Ok(SegmentSnapshot {
        base: seg.base_offset,
        next_offset: seg.next_offset,
        size: seg.size,
        file: seg.file()?,
        first_append_ms: seg.first_append_ms,
    })
}

/// Complete what a crash interrupted: remove unfinished cleaner output (`.cleaned`) and
/// files waiting for deletion (`.deleted`), and finish committed swaps (`.swap`): the
/// segments they replace are deleted and the swap file takes the first one's name.
fn finish_interrupted_cleaning(dir: &Path) -> io::Result<()> {
    let mut swaps = Vec::new();
    let mut txn_swaps = Vec::new();
    let mut logs = Vec::new();
    let mut changed = false;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        match layout::parse_base_offset(name) {
            Some((
                _,
                FileKind::Cleaned
                | FileKind::CleanedTxnIndex
                | FileKind::TxnIndexTmp
                | FileKind::Deleted(_),
            )) => {
                std::fs::remove_file(entry.path())?;
                changed = true;
            }
            Some((base, FileKind::Swap { end })) => swaps.push((base, end, entry.path())),
            Some((base, FileKind::TxnIndexSwap { end })) => {
                txn_swaps.push((base, end, entry.path()))
            }
            Some((base, FileKind::Log)) => logs.push(base),
            None if name.ends_with(layout::SWAP_SUFFIX) => {
                tracing::warn!(file = name, "ignoring a .swap file with a bad name")
            }
            _ => {}
        }
    }
    for (base, end, path) in swaps {
        tracing::warn!(dir = %dir.display(), base, end, "completing a compaction swap interrupted by a crash");
        for &b in logs.iter().filter(|b| (base..end).contains(*b)) {
            Segment::closed(dir, b).delete_files()?;
        }
        // The swap's transaction index, if it had one, replaces the old ones (which went
        // with their segments above, or before the crash).
        if let Some(i) = txn_swaps.iter().position(|t| t.0 == base && t.1 == end) {
            let (_, _, txn) = txn_swaps.swap_remove(i);
            fault::rename(&txn, &layout::txn_index_file(dir, base))?;
        }
        fault::rename(&path, &layout::log_file(dir, base))?;
        changed = true;
    }
    // A transaction index whose log swap was never committed is a leftover.
    for (_, _, txn) in txn_swaps {
        std::fs::remove_file(txn)?;
        changed = true;
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}
