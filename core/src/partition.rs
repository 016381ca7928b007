//! A partition as the broker sees it: its log, the high watermark, the idempotent
//! producer state, the group-commit flusher and the fetchers waiting for data.
//!
//! Durability (BRIEF.md "Write path"): unless the topic sets `write.caching=true`,
//! the high watermark is the fsynced offset. Consumers never see a record that a crash
//! could take back, and acks=all is answered once the flusher has synced past the
//! batch. With write caching, the high watermark is the log end offset, as on a single
//! Kafka broker.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use runnel_records::record_batch::{validate_batch, BatchHeader, Compression, Strictness};
use runnel_records::records::DecodedRecords;
use runnel_storage::cleaner::{self, CleanStats, CleanerSettings, Throttle};
use runnel_storage::{
    AppendInfo, HeaderRewrite, LogConfig, ReadResult, RetentionOutcome, SharedLog, StorageError,
    TimestampHit, TopicPartition,
};
use tokio::sync::{watch, Notify};

use crate::poison::or_stop;
use runnel_records::records::control_record_type;
use runnel_storage::producer_state::{
    CompletedTxn, ProducerError, ProducerStateManager, Snapshot, Verdict,
};

/// Largest decompressed records section opened to check keys on a compacted topic.
const MAX_DECOMPRESSED: usize = 256 << 20;
/// Decompressed size allowed per byte of `max.message.bytes` for that check.
const MAX_COMPRESSION_RATIO: usize = 32;
/// Kafka's RecordBatch.NO_TIMESTAMP.
const NO_TIMESTAMP: i64 = -1;

/// The leader epoch stamped on every batch and recorded in the leader epoch cache.
pub const LEADER_EPOCH: i32 = 0;

/// What the flusher has made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    pub offset: u64,
    /// An fsync failed: the partition refuses writes until restart.
    pub failed: bool,
}

/// Why an append was refused, in terms the produce handler maps to error codes.
#[derive(Debug)]
pub enum AppendError {
    Storage(StorageError),
    Producer(ProducerError),
    /// A record set that is not whole v2 batches.
    Corrupt(String),
    /// More than one batch for a partition in one request.
    MultipleBatches(usize),
    /// A client sent a control batch (INVALID_RECORD): only the coordinator writes them.
    ControlFromClient(String),
    /// A transactional batch that opens a transaction here without the coordinator having
    /// verified the partition is in it (KIP-890): INVALID_TXN_STATE.
    NotInTransaction(String),
    /// Records Kafka's LogValidator refuses one by one (its RecordValidationException):
    /// each with its index in the batch, the batch otherwise whole and unwritten.
    RecordValidation(Vec<RejectedRecord>),
}

/// Why Kafka refuses a record: its error code for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFault {
    /// INVALID_RECORD: a keyless record on a compacted topic.
    InvalidRecord,
    /// INVALID_TIMESTAMP: a CreateTime out of `message.timestamp.before.max.ms` /
    /// `after.max.ms`, or a producer-set LogAppendTime.
    InvalidTimestamp,
}

/// One refused record, as Kafka's produce response `record_errors` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecord {
    pub batch_index: i32,
    pub fault: RecordFault,
    pub message: String,
}

/// A record as Kafka's `toString` prints it in a record error. Kafka reads a compressed
/// batch it keeps as sent (compression.type=producer) with PartialDefaultRecord, whose
/// sizes are -1 for null; an uncompressed one with DefaultRecord, 0 for null.
fn java_record_string(
    decoded: &DecodedRecords<'_>,
    r: &runnel_records::records::Record<'_>,
) -> String {
    let compressed = !matches!(decoded.header().compression(), Some(Compression::None));
    let (name, null_len) = if compressed {
        ("PartialDefaultRecord", -1)
    } else {
        ("DefaultRecord", 0)
    };
    let len = |b: Option<&[u8]>| b.map_or(null_len, |b| b.len() as i64);
    format!(
        "{name}(offset={}, timestamp={}, key={} bytes, value={} bytes)",
        decoded.offset(r),
        decoded.timestamp(r),
        len(r.key),
        len(r.value)
    )
}

/// A successful append, or a duplicate of an earlier one (idempotent retry).
#[derive(Debug, Clone)]
pub struct Appended {
    pub base_offset: u64,
    pub last_offset: u64,
    pub log_append_time: i64,
    pub duplicate: bool,
}

/// Who is appending: a client's produce, or the transaction coordinator's marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Client,
    Coordinator,
}

/// One producer's state in a partition, as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStateView {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    pub current_txn_start_offset: Option<u64>,
}

/// A partition's log offsets, read together under one lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start_offset: u64,
    pub log_end_offset: u64,
    pub size_bytes: u64,
}

/// A partition: the only owner of its log. Nothing outside this module locks the log;
/// handlers, the coordinator, maintenance and metrics go through the methods below.
pub struct Partition {
    pub tp: TopicPartition,
    /// The partition directory (fixed for the partition's life).
    dir: PathBuf,
    log: Arc<SharedLog>,
    producers: Mutex<ProducerStateManager>,
    /// Held while a producer snapshot is written (not the producers lock: appends go on).
    snapshot_writer: Mutex<()>,
    /// KIP-890's verification guard: producer id → the epoch the transaction coordinator
    /// confirmed this partition is part of. A transactional batch may open a transaction
    /// here only with it; the next marker clears it, so a late write from an ended
    /// transaction cannot open a new one. Taken after `producers`.
    verified: Mutex<std::collections::HashMap<i64, i16>>,
    high_watermark: AtomicU64,
    /// The oldest open transaction's first offset (`u64::MAX` for none), kept beside
    /// the producer state so that readers need no lock for the LSO.
    first_unstable_offset: AtomicU64,
    /// Transactions a marker ended whose marker is not below the high watermark yet:
    /// (first offset, marker offset). They still hold the LSO (Kafka's unreplicated
    /// transactions), so a read_committed reader never passes records whose marker it
    /// cannot see.
    undecided: Mutex<Vec<(u64, u64)>>,
    write_caching: AtomicBool,
    log_append_time: AtomicBool,
    /// `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms`.
    timestamp_before_max_ms: AtomicI64,
    timestamp_after_max_ms: AtomicI64,
    /// `cleanup.policy` includes `compact`: every record needs a key.
    compacted: AtomicBool,
    /// Fetchers parked until the high watermark moves.
    waiters: Mutex<Vec<Weak<Notify>>>,
    flush_wanted: Arc<Notify>,
    durable: watch::Sender<Durability>,
    flusher_started: AtomicBool,
    /// Bytes and records in and out, for the metrics endpoint.
    pub metrics: crate::counters::PartitionMetrics,
}

impl Partition {
    /// Take ownership of a recovered log: make everything recovery kept durable before
    /// it becomes visible, then rebuild the producer state. Blocking file work.
    pub fn open(
        tp: TopicPartition,
        log: Arc<SharedLog>,
        write_caching: bool,
        producer_id_expiration_ms: i64,
    ) -> Result<Partition, StorageError> {
        let (dir, leo) = {
            let mut log = log.lock()?;
            // One node: the partition's leader epoch is 0 for its whole life.
            log.assign_leader_epoch(LEADER_EPOCH)?;
            (log.dir().to_path_buf(), log.log_end_offset())
        };
        log.sync_to(leo)?;
        let producers = load_producer_state(&log, producer_id_expiration_ms)?;
        Ok(Partition::new(tp, dir, log, leo, producers, write_caching))
    }

    fn new(
        tp: TopicPartition,
        dir: PathBuf,
        log: Arc<SharedLog>,
        leo: u64,
        producers: ProducerStateManager,
        write_caching: bool,
    ) -> Partition {
        let durable_offset = log.durable_offset();
        // After recovery the whole log is what we have; the broker syncs it before
        // serving, so the high watermark starts at the log end.
        let hw = if write_caching {
            leo
        } else {
            durable_offset.min(leo)
        };
        Partition {
            tp,
            dir,
            log,
            first_unstable_offset: AtomicU64::new(
                producers.first_unstable_offset().unwrap_or(u64::MAX),
            ),
            producers: Mutex::new(producers),
            undecided: Mutex::new(Vec::new()),
            snapshot_writer: Mutex::new(()),
            verified: Mutex::new(std::collections::HashMap::new()),
            high_watermark: AtomicU64::new(hw),
            write_caching: AtomicBool::new(write_caching),
            log_append_time: AtomicBool::new(false),
            timestamp_before_max_ms: AtomicI64::new(i64::MAX),
            timestamp_after_max_ms: AtomicI64::new(i64::MAX),
            compacted: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            flush_wanted: Arc::new(Notify::new()),
            durable: watch::channel(Durability {
                offset: durable_offset,
                failed: false,
            })
            .0,
            flusher_started: AtomicBool::new(false),
            metrics: Default::default(),
        }
    }

    pub fn high_watermark(&self) -> u64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// The last stable offset: the high watermark, or the first offset of the oldest
    /// open transaction if that is lower. A read_committed consumer reads below it.
    pub fn last_stable_offset(&self) -> u64 {
        let hw = self.high_watermark();
        hw.min(self.first_unstable(hw))
    }

    /// The first offset no read_committed reader may pass yet, given the high watermark
    /// `hw`: the oldest open transaction's first offset or that of an ended one whose
    /// marker is not below `hw` (`u64::MAX` for none).
    fn first_unstable(&self, hw: u64) -> u64 {
        let open = self.first_unstable_offset.load(Ordering::Acquire);
        let mut undecided = or_stop(self.undecided.lock(), "undecided transactions");
        undecided.retain(|&(_, marker)| marker >= hw);
        undecided
            .iter()
            .map(|&(first, _)| first)
            .fold(open, u64::min)
    }

    /// The upper bound of a read: the high watermark, or the LSO for read_committed.
    pub fn read_bound(&self, read_committed: bool) -> u64 {
        if read_committed {
            self.last_stable_offset()
        } else {
            self.high_watermark()
        }
    }

    /// Whether `producer_id` at `epoch` has a transaction open here: its writes need no
    /// new verification.
    pub fn has_open_txn(&self, producer_id: i64, epoch: i16) -> bool {
        self.producers().is_ok_and(|p| {
            p.entry(producer_id)
                .is_some_and(|e| e.epoch() == epoch && e.current_txn_first_offset().is_some())
        })
    }

    /// The transaction coordinator confirmed that this partition is in the transaction
    /// of (`producer_id`, `epoch`): its next transactional batch may open it here.
    pub fn mark_txn_verified(&self, producer_id: i64, epoch: i16) {
        or_stop(self.verified.lock(), "transaction verification").insert(producer_id, epoch);
    }

    /// Open transactions in this partition (for the metrics; none while offline).
    pub fn ongoing_transactions(&self) -> usize {
        self.producers().map_or(0, |p| p.ongoing_count())
    }

    /// The producers with state here, for DescribeProducers: (id, epoch, last sequence,
    /// last timestamp, coordinator epoch, open transaction's first offset).
    pub fn producer_states(&self) -> Result<Vec<ProducerStateView>, StorageError> {
        let producers = self.producers()?;
        let mut out: Vec<ProducerStateView> = producers
            .entries()
            .map(|(id, e)| ProducerStateView {
                producer_id: id,
                producer_epoch: e.epoch(),
                last_sequence: e.last_seq(),
                last_timestamp: e.last_timestamp(),
                coordinator_epoch: e.coordinator_epoch(),
                current_txn_start_offset: e.current_txn_first_offset(),
            })
            .collect();
        out.sort_unstable_by_key(|v| v.producer_id);
        Ok(out)
    }

    /// The aborted transactions overlapping [from, upper), for a read_committed fetch.
    pub fn aborted_transactions(
        &self,
        from: u64,
        upper: u64,
    ) -> Result<Vec<runnel_storage::AbortedTxn>, StorageError> {
        self.log.aborted_txns(from, upper)
    }

    /// Whether acks=all is answered before fsync (topic `write.caching=true`).
    pub fn write_caching(&self) -> bool {
        self.write_caching.load(Ordering::Acquire)
    }

    pub fn set_write_caching(&self, on: bool) {
        self.write_caching.store(on, Ordering::Release);
        if on {
            if let Ok(leo) = self.log_end_offset() {
                self.advance_high_watermark(leo);
            }
        }
    }

    pub fn set_compacted(&self, on: bool) {
        self.compacted.store(on, Ordering::Release);
    }

    pub fn set_log_append_time(&self, on: bool) {
        self.log_append_time.store(on, Ordering::Release);
    }

    /// How far a CreateTime record may be behind and ahead of the broker's clock.
    pub fn set_timestamp_bounds(&self, before_max_ms: i64, after_max_ms: i64) {
        self.timestamp_before_max_ms
            .store(before_max_ms, Ordering::Release);
        self.timestamp_after_max_ms
            .store(after_max_ms, Ordering::Release);
    }

    /// Kafka's record checks (LogValidator.validateRecord) on v2 batches: a compacted
    /// topic refuses keyless records; a CreateTime topic refuses timestamps outside
    /// [now - before.max.ms, now + after.max.ms] (-1, no timestamp, passes); a batch
    /// the producer flagged LogAppendTime is refused (on a CreateTime topic only if its
    /// max timestamp, which its records take, is -1 or out of bounds). Every record is
    /// checked and each refused one named (a keyless record's timestamp is not looked
    /// at). A batch is opened only when the topic is compacted or its header fails the
    /// timestamp window (the first and max timestamps decide; a record below the window
    /// behind an in-window first record, which only a negative timestamp delta can
    /// make, is not looked for).
    fn check_records(
        &self,
        batches: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<(), AppendError> {
        let compacted = self.compacted.load(Ordering::Acquire);
        let before = self.timestamp_before_max_ms.load(Ordering::Acquire);
        let after = self.timestamp_after_max_ms.load(Ordering::Acquire);
        let (lo, hi) = (now_ms.saturating_sub(before), now_ms.saturating_add(after));
        let mut pos = 0;
        for h in headers {
            let at = pos;
            let batch = &batches[pos..pos + h.total_len()];
            pos += h.total_len();
            let times_suspect = if log_append_time {
                h.is_log_append_time()
            } else {
                h.base_timestamp < lo
                    || h.max_timestamp > hi
                    || (h.is_log_append_time() && h.max_timestamp == NO_TIMESTAMP)
            };
            if h.is_control() || !(compacted || times_suspect) {
                continue;
            }
            // Kafka refuses an oversized batch before it looks inside (and so do we,
            // before decompressing it).
            let limit = self.max_message_bytes().map_err(AppendError::Storage)?;
            if h.total_len() > limit as usize {
                return Err(AppendError::Storage(StorageError::BatchTooLarge {
                    size: h.total_len(),
                    limit,
                }));
            }
            // Room for well-compressed batches, not for decompression bombs.
            let max_decompressed = (limit as usize)
                .saturating_mul(MAX_COMPRESSION_RATIO)
                .min(MAX_DECOMPRESSED);
            let decoded = runnel_records::records::batch_records(batch, max_decompressed)
                .map_err(|e| AppendError::Corrupt(e.to_string()))?;
            let mut rejected = Vec::new();
            for (i, r) in decoded.records().enumerate() {
                let r = r.map_err(|e| AppendError::Corrupt(e.to_string()))?;
                let (fault, message) = if compacted && r.key.is_none() {
                    (
                        RecordFault::InvalidRecord,
                        format!(
                            "Compacted topic cannot accept message without key in topic partition {}",
                            self.tp
                        ),
                    )
                } else if !times_suspect {
                    continue;
                } else {
                    let ts = decoded.timestamp(&r);
                    if !log_append_time && ts != NO_TIMESTAMP {
                        if ts >= lo && ts <= hi {
                            continue;
                        }
                        // Kafka prints now ± the bounds in Java's long arithmetic: an
                        // after.max.ms of Long.MAX_VALUE (the default before Kafka 4)
                        // wraps negative.
                        (
                            RecordFault::InvalidTimestamp,
                            format!(
                                "Timestamp {ts} of message with offset {} is out of range. \
                                 The timestamp should be within [{}, {}]",
                                decoded.offset(&r),
                                now_ms.wrapping_sub(before),
                                now_ms.wrapping_add(after)
                            ),
                        )
                    } else if h.is_log_append_time() {
                        (
                            RecordFault::InvalidTimestamp,
                            format!(
                                "Invalid timestamp type in message {}. Producer should not set \
                                 timestamp type to LogAppendTime.",
                                java_record_string(&decoded, &r)
                            ),
                        )
                    } else {
                        continue;
                    }
                };
                rejected.push(RejectedRecord {
                    batch_index: i as i32,
                    fault,
                    message,
                });
            }
            if !rejected.is_empty() {
                // Kafka checks the CRC before the records: a corrupt batch is
                // CORRUPT_MESSAGE, whatever its records look like. Only a refused batch
                // pays for this; the log checks the others as it writes them.
                validate_batch(batch, Strictness::Produce).map_err(|source| {
                    AppendError::Storage(StorageError::InvalidBatch {
                        position: at,
                        source,
                    })
                })?;
                // Kafka stops at the first batch with refused records.
                return Err(AppendError::RecordValidation(rejected));
            }
        }
        Ok(())
    }

    pub fn log_start_offset(&self) -> Result<u64, StorageError> {
        Ok(self.log.lock()?.log_start_offset())
    }

    pub fn log_end_offset(&self) -> Result<u64, StorageError> {
        Ok(self.log.lock()?.log_end_offset())
    }

    /// Start, end and size in one lock.
    pub fn offsets(&self) -> Result<LogOffsets, StorageError> {
        let log = self.log.lock()?;
        Ok(LogOffsets {
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            size_bytes: log.size_bytes(),
        })
    }

    /// Whether the partition is offline: its log went out of service (a storage error or
    /// a panic) and serves nothing until a restart recovers it, as Kafka takes a failed
    /// log directory's partitions offline. Takes no lock.
    pub fn is_offline(&self) -> bool {
        self.log.is_offline()
    }

    pub fn size_bytes(&self) -> Result<u64, StorageError> {
        Ok(self.log.lock()?.size_bytes())
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at least one), below
    /// `upper_bound`. Finds file positions only (preading batch headers without the log
    /// lock): the bytes are read or sent later.
    pub fn read(
        &self,
        offset: u64,
        max_bytes: u64,
        upper_bound: u64,
    ) -> Result<ReadResult, StorageError> {
        self.log.read(offset, max_bytes, upper_bound)
    }

    /// OffsetForLeaderEpoch: the largest epoch ≤ `requested` and where the next began
    /// (the log end for the current epoch), from the leader epoch cache.
    pub fn end_offset_for_epoch(&self, requested: i32) -> Result<(i32, i64), StorageError> {
        Ok(self.log.lock()?.end_offset_for_epoch(requested))
    }

    /// The first batch whose max timestamp is at or after `timestamp`.
    pub fn find_timestamp(&self, timestamp: i64) -> Result<Option<TimestampHit>, StorageError> {
        self.log.find_timestamp(timestamp)
    }

    /// The batch holding the largest timestamp.
    pub fn max_timestamp(&self) -> Result<Option<TimestampHit>, StorageError> {
        self.log.max_timestamp()
    }

    /// Every stored batch from the one holding `from` to the log end, read in chunks of at
    /// most `chunk` bytes with the lock held only to find each chunk. For replaying an
    /// internal topic.
    pub fn for_each_batch_chunk(
        &self,
        from: u64,
        chunk: u64,
        mut f: impl FnMut(u64, &[u8]) -> Option<u64>,
    ) -> Result<(), StorageError> {
        let (mut offset, leo) = {
            let log = self.log.lock()?;
            (from.max(log.log_start_offset()), log.log_end_offset())
        };
        let mut buf = Vec::new();
        while offset < leo {
            let Some(slice) = self.read(offset, chunk, leo)?.slice else {
                break;
            };
            slice.read_into(&mut buf)?;
            match f(offset, &buf) {
                Some(next) if next > offset => offset = next,
                _ => break,
            }
        }
        Ok(())
    }

    /// DeleteRecords: move the log start offset up to `offset`. Returns the new start.
    /// Blocking (may delete segment files).
    pub fn delete_records_before(&self, offset: u64) -> Result<u64, StorageError> {
        let mut log = self.log.lock()?;
        log.advance_log_start_offset(offset)?;
        Ok(log.log_start_offset())
    }

    pub fn set_log_config(&self, config: LogConfig) -> Result<(), StorageError> {
        self.log.lock()?.set_config(config)
    }

    pub fn max_message_bytes(&self) -> Result<u32, StorageError> {
        Ok(self.log.lock()?.config().max_message_bytes)
    }

    /// Delete whole segments past `retention.ms` / `retention.bytes`, never at or above
    /// the high watermark. Blocking.
    pub fn apply_retention(
        &self,
        retention_ms: i64,
        retention_bytes: i64,
        now_ms: i64,
    ) -> Result<RetentionOutcome, StorageError> {
        let hw = self.high_watermark();
        self.log
            .lock()?
            .apply_retention(retention_ms, retention_bytes, now_ms, hw)
    }

    /// Remove `.deleted` files that are due. Blocking.
    pub fn purge_deleted(&self, now_ms: i64) -> Result<usize, StorageError> {
        self.log.lock()?.purge_deleted(now_ms)
    }

    /// `runnel erase --now` left a marker asking for a compaction pass regardless of lags.
    pub fn compact_now_marker(&self) -> PathBuf {
        self.dir.join(runnel_storage::layout::COMPACT_NOW_MARKER)
    }

    /// Roll the active segment if its first record is older than `max_lag_ms`, and make
    /// the roll durable so the cleaner may take the sealed segment (with write caching
    /// too, as every roll is: see `append`). Blocking.
    pub fn roll_for_compaction(&self, now_ms: i64, max_lag_ms: i64) -> Result<bool, StorageError> {
        let rolled = self.log.lock()?.roll_if_older_than(now_ms, max_lag_ms)?;
        if rolled {
            self.log.sync_rolled()?;
        }
        Ok(rolled)
    }

    /// One cleaner pass. What is fsynced is cleanable even before the flusher moves the
    /// high watermark. Blocking.
    pub fn clean(
        &self,
        mut settings: CleanerSettings,
        throttle: &mut Throttle,
    ) -> Result<Option<CleanStats>, StorageError> {
        // Never at or past an open transaction: its records may still be aborted.
        let hw = self.high_watermark();
        settings.upper_bound = hw
            .max(self.log.durable_offset())
            .min(self.first_unstable(hw));
        cleaner::clean(&self.log, &settings, throttle)
    }

    /// fsync everything appended so far. Blocking.
    pub fn sync_all(&self) -> Result<(), StorageError> {
        let leo = self.log_end_offset()?;
        self.log.sync_to(leo)
    }

    /// Snapshot the producer state at the log end (at shutdown). Blocking.
    pub fn write_producer_snapshot(&self) -> Result<(), StorageError> {
        // Producers, then log: the order append takes them in. The state is that of the
        // whole log up to its end while both are held.
        let snapshot = {
            let producers = self.producers()?;
            let leo = self.log.lock()?.log_end_offset();
            producers.snapshot(leo)
        };
        self.write_snapshot(&snapshot)?;
        Ok(())
    }

    /// Forget the producers idle past `expiration_ms`; where some were forgotten, write a
    /// snapshot at the log end too, so the snapshots shrink with memory. Returns (removed,
    /// left). Blocking.
    pub fn expire_producers(
        &self,
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<(usize, usize), StorageError> {
        let (removed, left, snapshot) = {
            let mut producers = self.producers()?;
            let removed = producers.remove_expired(now_ms, expiration_ms);
            let snapshot = if removed > 0 {
                let leo = self.log.lock()?.log_end_offset();
                Some(producers.snapshot(leo))
            } else {
                None
            };
            (removed, producers.len(), snapshot)
        };
        if let Some(snapshot) = snapshot {
            if let Err(e) = self.write_snapshot(&snapshot) {
                tracing::warn!(partition = %self.tp, error = %e, "producer snapshot after expiry failed; the next one covers it");
            }
        }
        Ok((removed, left))
    }

    /// Write a snapshot taken under the producers lock, with that lock released (so
    /// appends go on during its fsyncs), one writer at a time.
    /// The log (with its transaction index entries) is synced up to the snapshot first:
    /// a replay starts at the snapshot, so an abort marker before it whose index entry a
    /// power cut lost would never get the entry back.
    fn write_snapshot(&self, snapshot: &Snapshot) -> std::io::Result<()> {
        let _writer = or_stop(self.snapshot_writer.lock(), "producer snapshot writer");
        self.log
            .sync_to(snapshot.offset())
            .map_err(std::io::Error::other)?;
        snapshot.write(&self.dir).map(|_| ())
    }

    /// Idempotent producers the partition remembers (none while it is offline).
    pub fn producer_count(&self) -> usize {
        self.producers().map_or(0, |p| p.len())
    }

    /// A panic during an append may have left the producer state out of step with the
    /// log, so a poisoned lock refuses every later write (KAFKA_STORAGE_ERROR) until a
    /// restart rebuilds the state from the snapshot and the log.
    fn producers(&self) -> Result<MutexGuard<'_, ProducerStateManager>, StorageError> {
        self.producers.lock().map_err(|_| {
            StorageError::Poisoned("a panic interrupted an append to this partition".into())
        })
    }

    fn advance_high_watermark(&self, to: u64) {
        let prev = self.high_watermark.fetch_max(to, Ordering::AcqRel);
        if to > prev {
            let waiters = std::mem::take(&mut *or_stop(self.waiters.lock(), "fetch waiters"));
            for w in waiters.iter().filter_map(Weak::upgrade) {
                w.notify_one();
            }
        }
    }

    /// Park `waiter` until the high watermark moves (or it is dropped).
    pub fn add_waiter(&self, waiter: &Arc<Notify>) {
        let mut w = or_stop(self.waiters.lock(), "fetch waiters");
        w.retain(|x| x.strong_count() > 0);
        w.push(Arc::downgrade(waiter));
    }

    /// Write a transaction marker (commit or abort) for `producer_id` at `producer_epoch`,
    /// as the transaction coordinator does (Kafka's WriteTxnMarkers). An older epoch is
    /// refused (INVALID_PRODUCER_EPOCH). A page-cache write; wait with `wait_durable`.
    pub fn append_marker(
        self: &Arc<Self>,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let batch = runnel_records::record_batch::builder::control_batch(
            producer_id,
            producer_epoch,
            commit,
            0,
            now_ms,
        );
        self.append_from(&batch, now_ms, Origin::Coordinator)
    }

    /// Append a coordinator's own batch (its state records, its transactional offset
    /// commits): the client-only checks (verification, control batches) do not apply.
    pub fn append_internal(
        self: &Arc<Self>,
        records: &[u8],
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        self.append_from(records, now_ms, Origin::Coordinator)
    }

    /// Validate, check producer sequences, assign offsets and write `records` from a
    /// client (control batches are refused). Runs on the caller's thread: a page-cache
    /// write, no fsync.
    pub fn append(self: &Arc<Self>, records: &[u8], now_ms: i64) -> Result<Appended, AppendError> {
        self.append_from(records, now_ms, Origin::Client)
    }

    fn append_from(
        self: &Arc<Self>,
        records: &[u8],
        now_ms: i64,
        origin: Origin,
    ) -> Result<Appended, AppendError> {
        let log_append_time = self.log_append_time.load(Ordering::Acquire);
        // Headers only (no CRC yet) for the sequence check; the log validates fully and
        // rewrites the headers (base offset, leader epoch, LogAppendTime) as it writes.
        let mut headers: Vec<BatchHeader> = Vec::with_capacity(1);
        let mut pos = 0;
        while pos < records.len() {
            let h = BatchHeader::parse(&records[pos..])
                .map_err(|e| AppendError::Corrupt(e.to_string()))?;
            pos += h.total_len();
            headers.push(h);
        }
        if headers.len() > 1 {
            // Kafka accepts exactly one v2 batch per partition per produce request; the
            // producer sequence checks rely on it.
            return Err(AppendError::MultipleBatches(headers.len()));
        }
        let control = match headers.first() {
            Some(h) if h.is_control() => {
                if origin == Origin::Client {
                    // Kafka's LogValidator: only the coordinator writes markers.
                    return Err(AppendError::ControlFromClient(format!(
                        "Clients are not allowed to write control records in topic partition {}",
                        self.tp
                    )));
                }
                control_record_type(records)
            }
            _ => None,
        };
        self.check_records(records, &headers, now_ms, log_append_time)?;
        let mut producers = self.producers().map_err(AppendError::Storage)?;
        let mut verified = or_stop(self.verified.lock(), "transaction verification");
        let mut clears_guard = None;
        if let Some(h) = headers.first() {
            let opens_txn = h.is_transactional()
                && !h.is_control()
                && !producers.entry(h.producer_id).is_some_and(|e| {
                    e.epoch() == h.producer_epoch && e.current_txn_first_offset().is_some()
                });
            // Kafka's batchMissingRequiredVerification (a retry of an appended batch is
            // answered as a duplicate below and needs none).
            if origin == Origin::Client
                && opens_txn
                && verified.get(&h.producer_id) != Some(&h.producer_epoch)
                && producers.find_duplicate(h).is_none()
            {
                return Err(AppendError::NotInTransaction(format!(
                    "Record was not part of an ongoing transaction (producer {} epoch {} in {})",
                    h.producer_id, h.producer_epoch, self.tp
                )));
            }
            if h.is_control() || opens_txn {
                // A marker ends the verified transaction; an opened one needs no guard.
                clears_guard = Some(h.producer_id);
            }
        }
        // Kafka checks every batch of the request; a duplicate is answered with the
        // offsets of the original append.
        for h in &headers {
            if let Verdict::Duplicate {
                base_offset,
                last_offset,
            } = producers.check(h).map_err(AppendError::Producer)?
            {
                return Ok(Appended {
                    base_offset: base_offset as u64,
                    last_offset: last_offset as u64,
                    log_append_time: -1,
                    duplicate: true,
                });
            }
        }
        let info: AppendInfo = self
            .log
            .append_rewriting(
                records,
                HeaderRewrite {
                    partition_leader_epoch: Some(LEADER_EPOCH),
                    log_append_time: log_append_time.then_some(now_ms),
                },
                now_ms,
            )
            .map_err(AppendError::Storage)?;
        if let Some(producer_id) = clears_guard {
            verified.remove(&producer_id);
        }
        drop(verified);
        // A snapshot per roll, as Kafka takes, bounds the replay after a crash to the
        // active segment: the state before this append, at the new segment's base (the
        // rolled segments are the ones synced before it is written).
        let snapshot = info.rolled.then(|| producers.snapshot(info.first_offset));
        let mut completed: Option<CompletedTxn> = None;
        for h in &info.batches {
            if let Some(done) = producers.update(h, control, now_ms) {
                completed = Some(done);
            }
        }
        if let Some(done) = completed {
            if done.aborted {
                self.record_aborted(&producers, &done);
            }
            or_stop(self.undecided.lock(), "undecided transactions")
                .push((done.first_offset, done.last_offset));
        }
        self.first_unstable_offset.store(
            producers.first_unstable_offset().unwrap_or(u64::MAX),
            Ordering::Release,
        );
        drop(producers);
        if let Some(snapshot) = snapshot {
            match self.write_snapshot(&snapshot) {
                Ok(()) => {}
                // A full disk is logged once per episode (runnel_storage::space).
                Err(e) if runnel_storage::space::is_no_space(&e) => {
                    runnel_storage::space::note_full("producer snapshot", &self.dir, 4096, &e);
                }
                Err(e) => {
                    tracing::warn!(partition = %self.tp, error = %e, "producer snapshot failed; replay covers it")
                }
            }
        }
        if self.write_caching() {
            // Kafka's page-cache behaviour: visible and acknowledged once written.
            self.advance_high_watermark(info.last_offset + 1);
            if info.rolled {
                // But a roll is flushed in the background, as Kafka's is: it closes the
                // sealed segment's files and moves the recovery point.
                self.request_flush();
            }
        } else {
            self.request_flush();
        }
        Ok(Appended {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            log_append_time: if log_append_time { now_ms } else { -1 },
            duplicate: false,
        })
    }

    /// Record an aborted transaction in the transaction index. A failure is logged, not
    /// returned: the marker is written, and the replay at the next start adds the entry.
    fn record_aborted(&self, producers: &ProducerStateManager, done: &CompletedTxn) {
        let txn = runnel_storage::AbortedTxn {
            producer_id: done.producer_id,
            first_offset: done.first_offset,
            last_offset: done.last_offset,
            last_stable_offset: producers.last_stable_offset(done),
        };
        if let Err(e) = self.log.append_aborted_txn(&txn) {
            tracing::error!(partition = %self.tp, error = %e, "cannot record an aborted transaction in the transaction index");
        }
    }

    /// Ask the flusher to sync everything appended so far (with write caching, what
    /// rolls sealed).
    pub fn request_flush(self: &Arc<Self>) {
        if !self.flusher_started.swap(true, Ordering::AcqRel) {
            let me = Arc::downgrade(self);
            let wanted = self.flush_wanted.clone();
            tokio::spawn(flusher(me, wanted));
        }
        self.flush_wanted.notify_one();
    }

    /// Wait until offsets below `offset` are fsynced (acks=all).
    pub async fn wait_durable(&self, offset: u64) -> Result<(), ()> {
        let mut rx = self.durable.subscribe();
        let state = rx
            .wait_for(|d| d.failed || d.offset >= offset)
            .await
            .map_err(|_| ())?;
        if state.failed {
            Err(())
        } else {
            Ok(())
        }
    }

    pub fn durable_offset(&self) -> u64 {
        self.durable.borrow().offset
    }
}

/// Producer state: the newest snapshot, then every batch header after it. Producers
/// expired by now are dropped from the snapshot before the replay and again after it,
/// which stamps replayed producers with their batches' max timestamps (Kafka's
/// `loadFromSnapshot` and the expiry check that follows), so a restart does not bring
/// expired producers back.
fn load_producer_state(
    log: &SharedLog,
    expiration_ms: i64,
) -> Result<ProducerStateManager, StorageError> {
    let shared = log;
    let mut aborted = Vec::new();
    let mut log = shared.lock()?;
    let dir = log.dir().to_path_buf();
    let leo = log.log_end_offset();
    let (mut state, from) = match ProducerStateManager::load_latest(&dir, leo) {
        Some((state, offset)) => (state, offset),
        None => (ProducerStateManager::new(), log.log_start_offset()),
    };
    state.remove_expired(runnel_storage::now_ms(), expiration_ms);
    let from = from.max(log.log_start_offset());
    if from < leo {
        log.for_each_batch_header(from, |h, control| {
            if h.last_offset() as u64 >= from {
                if let Some(done) = state.replay(h, control).filter(|d| d.aborted) {
                    aborted.push(runnel_storage::AbortedTxn {
                        producer_id: done.producer_id,
                        first_offset: done.first_offset,
                        last_offset: done.last_offset,
                        last_stable_offset: state.last_stable_offset(&done),
                    });
                }
            }
        })?;
        state.remove_expired(runnel_storage::now_ms(), expiration_ms);
    }
    drop(log);
    // The transaction index entries of the replayed aborts: a crash between a marker and
    // its entry leaves the marker only (the call skips entries already there).
    for txn in &aborted {
        shared.append_aborted_txn(txn)?;
    }
    Ok(state)
}

/// The partition's group-commit loop: one fsync covers every append made while the
/// previous one ran. Ends when the partition is dropped (topic deleted).
async fn flusher(partition: Weak<Partition>, wanted: Arc<Notify>) {
    loop {
        wanted.notified().await;
        let Some(p) = partition.upgrade() else { return };
        let log = p.log.clone();
        let rolled_only = p.write_caching();
        let outcome = tokio::task::spawn_blocking(move || {
            let target = {
                let log = log.lock()?;
                if rolled_only {
                    log.active_base_offset()
                } else {
                    log.log_end_offset()
                }
            };
            let (rounds, started) = (log.fsync_rounds(), std::time::Instant::now());
            let synced = log.sync_to(target);
            if log.fsync_rounds() != rounds {
                crate::counters::FSYNC_SECONDS.observe(started.elapsed());
            }
            synced.map(|()| log.durable_offset())
        })
        .await;
        match outcome {
            Ok(Ok(durable)) => {
                p.durable.send_modify(|d| d.offset = d.offset.max(durable));
                if !p.write_caching.load(Ordering::Acquire) {
                    p.advance_high_watermark(durable);
                }
            }
            Ok(Err(e)) => {
                tracing::error!(partition = %p.tp, error = %e, "fsync failed; the partition refuses writes");
                p.durable.send_modify(|d| d.failed = true);
                return;
            }
            Err(e) => {
                tracing::error!(partition = %p.tp, error = %e, "flusher task failed");
                p.durable.send_modify(|d| d.failed = true);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use runnel_records::record_batch::builder::{simple_batch, Record};
    use runnel_storage::layout;

    use crate::broker::Broker;
    use crate::config::BrokerConfig;

    /// The base offsets of the partition directory's segments, oldest first.
    fn segment_bases(dir: &std::path::Path) -> Vec<u64> {
        let mut bases: Vec<u64> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(layout::LOG_SUFFIX)?.parse().ok()
            })
            .collect();
        bases.sort_unstable();
        bases
    }

    /// With write.caching, appends are visible (and acknowledged) before any fsync, but
    /// what a roll seals is flushed in the background, as Kafka flushes after a roll:
    /// the durable offset reaches the active segment's base and stops there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_caching_partition_flushes_its_rolls_in_the_background() {
        let root = tempfile::tempdir().unwrap();
        let config = BrokerConfig::from_settings(BTreeMap::from([
            ("log.dirs".to_string(), root.path().display().to_string()),
            ("metrics.listener".to_string(), String::new()),
        ]))
        .unwrap();
        let broker = tokio::task::block_in_place(|| Broker::open(config)).unwrap();
        let configs = [
            ("write.caching".to_string(), Some("true".to_string())),
            ("segment.bytes".to_string(), Some("1048576".to_string())),
        ];
        broker
            .create_topic("wc", 1, 1, &configs, false)
            .await
            .unwrap();
        let p = broker.partition("wc", 0).unwrap();
        assert!(p.write_caching());
        let value = vec![7u8; 100_000];
        let batch = simple_batch(
            1_700_000_000_000,
            &[Record {
                timestamp_delta: 0,
                key: None,
                value: Some(&value),
                headers: Vec::new(),
            }],
        );
        // 45 batches of 100 KB over 1 MiB segments: four rolls, and records in the
        // active segment.
        for _ in 0..45 {
            let p = p.clone();
            let batch = batch.clone();
            tokio::task::spawn_blocking(move || p.append(&batch, 1_700_000_000_000))
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(p.high_watermark(), 45, "write caching: visible at once");
        let bases = segment_bases(p.dir.as_path());
        assert!(bases.len() >= 4, "expected rolls: {bases:?}");
        let active = *bases.last().unwrap();
        assert!(active < 45);
        let deadline = Instant::now() + Duration::from_secs(30);
        while p.durable_offset() < active && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            p.durable_offset(),
            active,
            "the rolled segments are flushed, the active one is not"
        );
        tokio::task::block_in_place(|| broker.shutdown()).unwrap();
    }
}
