//! Idempotent-producer state (KIP-98, with KIP-360's epoch-bump rules): per-partition
//! sequence checking and deduplication, its snapshots, and durable producer-id allocation.
//!
//! The checks follow Kafka 3.x (`UnifiedLog.analyzeAndValidateProducerState`,
//! `ProducerAppendInfo.checkProducerEpoch`/`checkSequence`, `ProducerStateEntry`):
//! - A batch without a producer id (-1) skips every check and leaves no state.
//! - A batch whose producer epoch equals the producer's current epoch and whose sequence
//!   range equals exactly one of the producer's last 5 appended batches is a duplicate:
//!   the broker answers with the original offsets and writes nothing. This check comes
//!   first, as in Kafka.
//! - An epoch older than the current one is fenced: INVALID_PRODUCER_EPOCH (47).
//! - A newer epoch (a KIP-360 bump) must start at sequence 0, unless the producer is
//!   unknown. Otherwise OUT_OF_ORDER_SEQUENCE_NUMBER (45).
//! - With the current epoch, the first sequence must follow the last one appended
//!   (`i32::MAX` wraps to 0); otherwise OUT_OF_ORDER_SEQUENCE_NUMBER (45). That includes
//!   a retry of a batch older than the 5 that are kept.
//! - An unknown producer (never seen, or expired) is accepted at any sequence. Kafka 3.x
//!   stopped returning UNKNOWN_PRODUCER_ID (59) from Produce with KIP-360, and brokers
//!   have not returned DUPLICATE_SEQUENCE_NUMBER (46) since Kafka 1.0 (duplicates are
//!   acknowledged instead), so neither code appears here.
//!
//! Transactions (KIP-98, `ProducerAppendInfo.appendDataBatch`/`appendEndTxnMarker`):
//! - A producer's first transactional batch opens its transaction at that batch's base
//!   offset; the partition's first unstable offset is the oldest such open offset, and
//!   the last stable offset (LSO) is bounded by it.
//! - A non-transactional batch from a producer with an open transaction is refused with
//!   INVALID_TXN_STATE (48).
//! - A control batch (commit or abort marker) must not carry an older epoch; it moves the
//!   epoch forward (transaction version 2 bumps it at every end), closes the open
//!   transaction and reports it as a [`CompletedTxn`], which the caller records in the
//!   transaction index when it aborted.
//! - A producer with an open transaction never expires.
//!
//! Deliberate differences from Kafka:
//! - A batch that has a producer id but no sequence (-1) is never treated as a duplicate,
//!   so distinct data can never be acknowledged without being written.
//! - [`ProducerStateManager::update`] stamps the producer's last activity, used for
//!   expiry, with the broker's clock, not the batch's (client-chosen) max timestamp, so a
//!   producer that sends old CreateTime timestamps does not lose its deduplication state
//!   at once. [`ProducerStateManager::replay`] has no clock and uses the batch's max
//!   timestamp, as Kafka does for both.
//! - [`ProducerStateManager::load_latest`] deletes (with a warning) the snapshots it
//!   cannot use: unreadable ones, and ones past the log end, which describe a log that
//!   recovery truncated away and would be wrong once the log grows back past them.
//!
//! A produce request carries one batch per partition (Kafka rejects more from v3 on), so
//! checking every batch before updating with any is equivalent to Kafka's accumulating
//! `ProducerAppendInfo`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use runnel_records::record_batch::BatchHeader;
use runnel_records::records::ControlRecordType;

use crate::layout::{self, FileKind};

/// How many of a producer's most recent batches are remembered for deduplication; also
/// the most in-flight requests per connection an idempotent producer may have.
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
/// Kafka's `producer.id.expiration.ms` default: one day.
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;
/// How many producer ids [`ProducerIdManager`] reserves on disk at a time.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Suffix of producer-state snapshot files, named by their 20-digit offset.
pub use crate::layout::PRODUCER_SNAPSHOT_SUFFIX as SNAPSHOT_SUFFIX;
/// How many snapshots are kept per partition.
pub const SNAPSHOTS_TO_KEEP: usize = 2;

const NO_PRODUCER_EPOCH: i16 = -1;
const NO_SEQUENCE: i32 = -1;
/// Version 2 adds each producer's coordinator epoch and open transaction; version 1
/// (without them) is still read.
const SNAPSHOT_VERSION: i16 = 2;
const SNAPSHOT_VERSION_1: i16 = 1;

/// What to do with a batch that passed the producer checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New and in order: append it.
    Append,
    /// A retry of a batch already in the log: acknowledge with its original offsets and
    /// write nothing. The batch's timestamp is in [`ProducerStateManager::find_duplicate`].
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// A batch the producer state rejects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error(
        "Out of order sequence number for producer {producer_id}: {sequence} (incoming seq. \
         number), {last_sequence} (current end sequence number)"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        sequence: i32,
        last_sequence: i32,
    },
    #[error(
        "Invalid sequence number for new epoch of producer {producer_id}: {epoch} (request \
         epoch), {sequence} (seq. number), {current_epoch} (current producer epoch)"
    )]
    InvalidSequenceForNewEpoch {
        producer_id: i64,
        epoch: i16,
        sequence: i32,
        current_epoch: i16,
    },
    #[error(
        "Epoch of producer {producer_id} is {epoch}, which is smaller than the last seen \
         epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error(
        "Expected transactional write from producer {producer_id} at offset {first_offset} \
         while its transaction is ongoing"
    )]
    NonTransactionalInTransaction { producer_id: i64, first_offset: u64 },
}

impl ProducerError {
    /// The Kafka error code for the produce response: OUT_OF_ORDER_SEQUENCE_NUMBER (45)
    /// or INVALID_PRODUCER_EPOCH (47).
    pub fn code(&self) -> i16 {
        match self {
            ProducerError::OutOfOrderSequence { .. }
            | ProducerError::InvalidSequenceForNewEpoch { .. } => 45,
            ProducerError::InvalidProducerEpoch { .. } => 47,
            ProducerError::NonTransactionalInTransaction { .. } => 48,
        }
    }
}

/// One appended batch, as remembered for deduplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp (the append time on LogAppendTime topics).
    pub timestamp: i64,
}

/// A producer's state in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateEntry {
    epoch: i16,
    /// Oldest first; at most [`NUM_BATCHES_TO_RETAIN`], all of `epoch`.
    batches: VecDeque<BatchMetadata>,
    /// Last activity, for expiry.
    last_timestamp: i64,
    /// The coordinator epoch of the last marker (always 0 on one node).
    coordinator_epoch: i32,
    /// The base offset of the producer's open transaction here.
    current_txn_first_offset: Option<u64>,
}

/// A transaction that a marker just closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    /// The marker's offset.
    pub last_offset: u64,
    pub aborted: bool,
}

impl ProducerStateEntry {
    fn empty() -> ProducerStateEntry {
        ProducerStateEntry {
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            last_timestamp: -1,
            coordinator_epoch: -1,
            current_txn_first_offset: None,
        }
    }

    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    /// The first offset of the producer's open transaction in this partition.
    pub fn current_txn_first_offset(&self) -> Option<u64> {
        self.current_txn_first_offset
    }

    pub fn epoch(&self) -> i16 {
        self.epoch
    }

    /// The remembered batches, oldest first.
    pub fn batches(&self) -> impl Iterator<Item = &BatchMetadata> {
        self.batches.iter()
    }

    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    pub fn last_timestamp(&self) -> i64 {
        self.last_timestamp
    }

    /// Kafka's `maybeUpdateProducerEpoch`: a new epoch forgets the old epoch's batches.
    fn set_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
    }

    fn add_batch(&mut self, epoch: i16, batch: BatchMetadata) {
        self.set_epoch(epoch);
        if self.batches.len() == NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq as i64 == last_seq as i64 + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

fn last_sequence(h: &BatchHeader) -> i32 {
    if h.base_sequence == NO_SEQUENCE {
        NO_SEQUENCE
    } else {
        increment_sequence(h.base_sequence, h.last_offset_delta)
    }
}

/// The idempotent-producer state of one partition: producer id → epoch and last batches.
/// Callers serialize access (the partition's append lock).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerStateEntry>,
    /// Open transactions: first offset → producer id.
    ongoing: BTreeMap<u64, i64>,
}

impl ProducerStateManager {
    pub fn new() -> ProducerStateManager {
        ProducerStateManager::default()
    }

    /// Number of producers with state here.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn entry(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer with state here (DescribeProducers).
    pub fn entries(&self) -> impl Iterator<Item = (i64, &ProducerStateEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// The offset of the oldest open transaction's first batch: nothing at or after it
    /// is stable.
    pub fn first_unstable_offset(&self) -> Option<u64> {
        self.ongoing.keys().next().copied()
    }

    /// Number of open transactions.
    pub fn ongoing_count(&self) -> usize {
        self.ongoing.len()
    }

    /// The LSO recorded with `completed` in the transaction index (Kafka's
    /// `lastStableOffset(completedTxn)`): the oldest other open transaction's first
    /// offset, else the offset after the marker.
    pub fn last_stable_offset(&self, completed: &CompletedTxn) -> u64 {
        self.ongoing
            .iter()
            .find(|(_, pid)| **pid != completed.producer_id)
            .map_or(completed.last_offset + 1, |(first, _)| *first)
    }

    /// The remembered batch that `header` retries, if any: same producer, same epoch and
    /// exactly the same sequence range (Kafka's `findDuplicateBatch`).
    pub fn find_duplicate(&self, header: &BatchHeader) -> Option<&BatchMetadata> {
        if !header.has_producer_id() || header.is_control() || header.base_sequence == NO_SEQUENCE {
            return None;
        }
        let entry = self.producers.get(&header.producer_id)?;
        if entry.epoch != header.producer_epoch {
            return None;
        }
        let last_seq = last_sequence(header);
        entry
            .batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last_seq)
    }

    /// Check a batch before it is appended. Changes nothing; call [`Self::update`] with
    /// the appended batch's header afterwards.
    pub fn check(&self, header: &BatchHeader) -> Result<Verdict, ProducerError> {
        if !header.has_producer_id() {
            return Ok(Verdict::Append);
        }
        if let Some(dup) = self.find_duplicate(header) {
            return Ok(Verdict::Duplicate {
                base_offset: dup.first_offset,
                last_offset: dup.last_offset,
            });
        }
        let producer_id = header.producer_id;
        let epoch = header.producer_epoch;
        let entry = self.producers.get(&producer_id);
        let current_epoch = entry.map_or(NO_PRODUCER_EPOCH, |e| e.epoch);
        if epoch < current_epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current_epoch,
            });
        }
        if header.is_control() {
            return Ok(Verdict::Append);
        }
        if let Some(first_offset) = entry.and_then(|e| e.current_txn_first_offset) {
            if !header.is_transactional() {
                return Err(ProducerError::NonTransactionalInTransaction {
                    producer_id,
                    first_offset,
                });
            }
        }
        let sequence = header.base_sequence;
        if epoch != current_epoch {
            // A bump (KIP-360) starts over at 0; an unknown producer may start anywhere.
            if sequence != 0 && current_epoch != NO_PRODUCER_EPOCH {
                return Err(ProducerError::InvalidSequenceForNewEpoch {
                    producer_id,
                    epoch,
                    sequence,
                    current_epoch,
                });
            }
        } else {
            let last_sequence = entry.map_or(NO_SEQUENCE, |e| e.last_seq());
            // No current epoch: the producer's records may have been deleted (retention,
            // DeleteRecords); accept any sequence.
            if current_epoch != NO_PRODUCER_EPOCH && !in_sequence(last_sequence, sequence) {
                return Err(ProducerError::OutOfOrderSequence {
                    producer_id,
                    epoch,
                    sequence,
                    last_sequence,
                });
            }
        }
        Ok(Verdict::Append)
    }

    /// Record a batch just appended (its header with the assigned base offset; for a
    /// control batch, its record's type). `now_ms` is the producer's last activity, for
    /// expiry. Returns the transaction a marker closed.
    pub fn update(
        &mut self,
        header: &BatchHeader,
        control: Option<ControlRecordType>,
        now_ms: i64,
    ) -> Option<CompletedTxn> {
        self.apply(header, control, now_ms)
    }

    /// Record a batch read back from the log while recovering: [`Self::update`] without
    /// the clock (the batch's max timestamp stands in) and without any check.
    pub fn replay(
        &mut self,
        header: &BatchHeader,
        control: Option<ControlRecordType>,
    ) -> Option<CompletedTxn> {
        self.apply(header, control, header.max_timestamp)
    }

    fn apply(
        &mut self,
        header: &BatchHeader,
        control: Option<ControlRecordType>,
        activity_ms: i64,
    ) -> Option<CompletedTxn> {
        if !header.has_producer_id() {
            return None;
        }
        let producer_id = header.producer_id;
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(ProducerStateEntry::empty);
        let mut completed = None;
        if header.is_control() {
            // A transaction marker carries the producer's epoch but no sequence.
            entry.set_epoch(header.producer_epoch);
            entry.coordinator_epoch = 0;
            let aborted = match control {
                Some(ControlRecordType::Abort) => Some(true),
                Some(ControlRecordType::Commit) => Some(false),
                // Kafka ignores control records it does not know.
                _ => None,
            };
            if let Some(aborted) = aborted {
                if let Some(first_offset) = entry.current_txn_first_offset.take() {
                    self.ongoing.remove(&first_offset);
                    completed = Some(CompletedTxn {
                        producer_id,
                        first_offset,
                        last_offset: header.base_offset.max(0) as u64,
                        aborted,
                    });
                }
            }
        } else {
            if header.is_transactional() && entry.current_txn_first_offset.is_none() {
                let first = header.base_offset.max(0) as u64;
                entry.current_txn_first_offset = Some(first);
                self.ongoing.insert(first, producer_id);
            }
            entry.add_batch(
                header.producer_epoch,
                BatchMetadata {
                    first_seq: header.base_sequence,
                    last_seq: last_sequence(header),
                    first_offset: header.base_offset,
                    last_offset: header.last_offset(),
                    timestamp: header.max_timestamp,
                },
            );
        }
        entry.last_timestamp = entry.last_timestamp.max(activity_ms);
        completed
    }

    /// Forget producers idle for at least `expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`, default [`DEFAULT_PRODUCER_ID_EXPIRATION_MS`];
    /// `isProducerExpired`). Returns how many were removed. A producer with an open
    /// transaction is kept however long it is idle, as in Kafka.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        // A map keeps its capacity: give memory back after a burst of producers.
        if self.producers.capacity() > 64 && self.producers.len() < self.producers.capacity() / 4 {
            self.producers.shrink_to_fit();
        }
        before - self.producers.len()
    }

    // ---- snapshots ----
    //
    // Layout (big-endian): version i16, crc u32 (CRC-32C of everything after it),
    // offset u64, producer count u32, then per producer: id i64, epoch i16,
    // last timestamp i64, (version 2:) coordinator epoch i32, open transaction's first
    // offset i64 (-1 for none), then batch count u8, then per batch: first seq i32,
    // last seq i32, first offset i64, last offset i64, timestamp i64.

    #[doc(hidden)]
    pub fn encode_snapshot(&self, offset: u64) -> Vec<u8> {
        let mut ids: Vec<i64> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        let mut body = Vec::with_capacity(12 + ids.len() * (31 + 32 * NUM_BATCHES_TO_RETAIN));
        body.extend_from_slice(&offset.to_be_bytes());
        body.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in ids {
            let e = &self.producers[&id];
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            let txn = e.current_txn_first_offset.map_or(-1, |o| o as i64);
            body.extend_from_slice(&txn.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(6 + body.len());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Parse a snapshot file's bytes, as [`ProducerStateManager::load_latest`] does; for
    /// the fuzz targets.
    #[doc(hidden)]
    pub fn decode_snapshot(
        buf: &[u8],
        expected_offset: u64,
    ) -> Result<ProducerStateManager, String> {
        let mut r = Reader(buf);
        let version = r.i16()?;
        if version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_1 {
            return Err(format!("unsupported version {version}"));
        }
        let crc = r.u32()?;
        let actual = crc32c::crc32c(r.0);
        if crc != actual {
            return Err(format!(
                "CRC mismatch: stored {crc:#010x}, computed {actual:#010x}"
            ));
        }
        let offset = r.u64()?;
        if offset != expected_offset {
            return Err(format!(
                "holds offset {offset}, but its name says {expected_offset}"
            ));
        }
        let count = r.u32()?;
        // Sized by what the bytes can hold (a producer takes at least 19), so a corrupt
        // count in a short file does not reserve 64 Ki entries.
        let mut producers = HashMap::with_capacity((count as usize).min(r.0.len() / 19));
        let mut ongoing = BTreeMap::new();
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let last_timestamp = r.i64()?;
            let (coordinator_epoch, txn) = if version >= SNAPSHOT_VERSION {
                (r.i32()?, r.i64()?)
            } else {
                (-1, -1)
            };
            let current_txn_first_offset = match txn {
                -1 => None,
                t if t >= 0 => Some(t as u64),
                t => return Err(format!("producer {id} has transaction offset {t}")),
            };
            if let Some(first) = current_txn_first_offset {
                if ongoing.insert(first, id).is_some() {
                    return Err(format!("two transactions start at offset {first}"));
                }
            }
            let n = r.u8()? as usize;
            if n > NUM_BATCHES_TO_RETAIN {
                return Err(format!("producer {id} has {n} batches"));
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            if id < 0
                || producers
                    .insert(
                        id,
                        ProducerStateEntry {
                            epoch,
                            batches,
                            last_timestamp,
                            coordinator_epoch,
                            current_txn_first_offset,
                        },
                    )
                    .is_some()
            {
                return Err(format!("bad or repeated producer id {id}"));
            }
        }
        if !r.0.is_empty() {
            return Err(format!("{} trailing bytes", r.0.len()));
        }
        Ok(ProducerStateManager { producers, ongoing })
    }

    /// Durably write the state as of `offset` (the next offset to replay from) to
    /// `<dir>/<20-digit offset>.snapshot`: temp file, fsync, rename, fsync of `dir`. Then
    /// delete all but the newest [`SNAPSHOTS_TO_KEEP`] snapshots.
    pub fn write_snapshot(&self, dir: &Path, offset: u64) -> io::Result<PathBuf> {
        self.snapshot(offset).write(dir)
    }

    /// The state at `offset`, encoded: cheap, so it is taken under the producers lock,
    /// and written (with its fsyncs) after the lock is released.
    pub fn snapshot(&self, offset: u64) -> Snapshot {
        Snapshot {
            offset,
            bytes: self.encode_snapshot(offset),
        }
    }

    /// The newest usable snapshot in `dir` and its offset; replay the log from that offset
    /// to finish recovery. Snapshots past `log_end_offset` or unreadable (bad CRC,
    /// truncated, unknown version) are deleted with a warning and the next older one is
    /// tried; all but the newest [`SNAPSHOTS_TO_KEEP`] are deleted. Leftover temp files
    /// are removed. `None` when there is no usable snapshot (replay the whole log).
    pub fn load_latest(dir: &Path, log_end_offset: u64) -> Option<(ProducerStateManager, u64)> {
        let mut offsets = match list_snapshots(dir) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list producer snapshots");
                return None;
            }
        };
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        let mut kept = Vec::new();
        let mut loaded = None;
        for offset in offsets {
            if offset > log_end_offset {
                tracing::warn!(
                    dir = %dir.display(), offset, log_end_offset,
                    "producer snapshot is past the log end; deleting it"
                );
                remove_snapshot(dir, offset, "future");
                continue;
            }
            if loaded.is_none() {
                let path = snapshot_path(dir, offset);
                let result = fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|buf| ProducerStateManager::decode_snapshot(&buf, offset));
                match result {
                    Ok(state) => loaded = Some((state, offset)),
                    Err(why) => {
                        tracing::warn!(
                            path = %path.display(), error = %why,
                            "ignoring unreadable producer snapshot; deleting it"
                        );
                        remove_snapshot(dir, offset, "corrupt");
                        continue;
                    }
                }
            }
            kept.push(offset);
        }
        for old in kept.iter().skip(SNAPSHOTS_TO_KEEP) {
            remove_snapshot(dir, *old, "old");
        }
        loaded
    }
}

/// An encoded producer-state snapshot, not yet on disk.
pub struct Snapshot {
    offset: u64,
    bytes: Vec<u8>,
}

impl Snapshot {
    /// The offset the replay starts from after loading this snapshot.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// `<dir>/<20-digit offset>.snapshot`: temp file, fsync, rename, fsync of `dir`. Then
    /// delete all but the newest [`SNAPSHOTS_TO_KEEP`] snapshots. Writers of one
    /// partition must not run at once (they could share a temp file).
    pub fn write(&self, dir: &Path) -> io::Result<PathBuf> {
        let path = snapshot_path(dir, self.offset);
        write_durably(&path, &self.bytes)?;
        let mut offsets = list_snapshots(dir)?;
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        for old in offsets.iter().skip(SNAPSHOTS_TO_KEEP) {
            remove_snapshot(dir, *old, "old");
        }
        Ok(path)
    }
}

/// `<dir>/<20-digit offset>.snapshot`.
pub fn snapshot_path(dir: &Path, offset: u64) -> PathBuf {
    layout::producer_snapshot_file(dir, offset)
}

/// Offsets of the snapshot files in `dir`, unordered. Removes leftover temp files.
pub fn list_snapshots(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        match layout::parse_base_offset(name) {
            Some((_, FileKind::ProducerSnapshotTmp)) => {
                let _ = fs::remove_file(item.path());
            }
            Some((offset, FileKind::ProducerSnapshot)) => out.push(offset),
            _ => {}
        }
    }
    Ok(out)
}

fn remove_snapshot(dir: &Path, offset: u64, why: &str) {
    let path = snapshot_path(dir, offset);
    match fs::remove_file(&path) {
        Ok(()) => tracing::debug!(path = %path.display(), why, "deleted producer snapshot"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete producer snapshot")
        }
    }
}

/// Write `bytes` to `path` so that after a crash it holds either the old or the new
/// contents (a checkpoint: write-temp, fsync, rename, fsync-dir, all through the seam).
fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(io::Error::other(format!(
            "not a file path: {}",
            path.display()
        )));
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let result = crate::checkpoint::write(dir, name, bytes);
    if result.is_err() {
        let _ = fs::remove_file(layout::tmp_file(path));
    }
    result
}

/// A bounds-checked big-endian reader.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.0.len() < N {
            return Err("truncated".to_string());
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        let mut a = [0u8; N];
        a.copy_from_slice(head);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take()?))
    }
}

/// Hands out producer ids that are never reused, even after a crash: the end of the
/// current block of [`PRODUCER_ID_BLOCK_SIZE`] ids is made durable before any id of the
/// block is handed out, and a restart continues from that boundary (skipping whatever
/// was left of the block).
///
/// File layout (big-endian): version i16, next block start i64, CRC-32C u32 of the
/// preceding bytes. A missing file means a fresh broker (ids from 0); an unreadable one
/// is an error, since guessing could reuse ids.
#[derive(Debug)]
pub struct ProducerIdManager {
    path: PathBuf,
    next: i64,
    block_end: i64,
}

const ID_BLOCK_VERSION: i16 = 1;
const ID_BLOCK_FILE_LEN: usize = 14;

impl ProducerIdManager {
    pub fn open(path: &Path) -> io::Result<ProducerIdManager> {
        let start = match fs::read(path) {
            Ok(buf) => decode_id_block(&buf).map_err(|why| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("producer id block file {}: {why}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIdManager {
            path: path.to_path_buf(),
            next: start,
            block_end: start,
        })
    }

    /// The next unused producer id.
    pub fn next_id(&mut self) -> io::Result<i64> {
        if self.next >= self.block_end {
            let end = self
                .next
                .checked_add(PRODUCER_ID_BLOCK_SIZE)
                .ok_or_else(|| io::Error::other("producer ids exhausted"))?;
            let mut buf = Vec::with_capacity(ID_BLOCK_FILE_LEN);
            buf.extend_from_slice(&ID_BLOCK_VERSION.to_be_bytes());
            buf.extend_from_slice(&end.to_be_bytes());
            let crc = crc32c::crc32c(&buf);
            buf.extend_from_slice(&crc.to_be_bytes());
            write_durably(&self.path, &buf)?;
            self.block_end = end;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

fn decode_id_block(buf: &[u8]) -> Result<i64, String> {
    if buf.len() != ID_BLOCK_FILE_LEN {
        return Err(format!("{} bytes, expected {ID_BLOCK_FILE_LEN}", buf.len()));
    }
    let (data, crc) = buf.split_at(ID_BLOCK_FILE_LEN - 4);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if stored != crc32c::crc32c(data) {
        return Err("CRC mismatch".to_string());
    }
    let mut r = Reader(data);
    let version = r.i16()?;
    if version != ID_BLOCK_VERSION {
        return Err(format!("unsupported version {version}"));
    }
    let next = r.i64()?;
    if next < 0 {
        return Err(format!("negative block start {next}"));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    const PID: i64 = 1000;

    fn batch(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 1_000,
            max_timestamp: 1_000 + base_offset,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    /// Check then update, as the partition does; returns the verdict.
    fn append(s: &mut ProducerStateManager, h: BatchHeader) -> Result<Verdict, ProducerError> {
        let v = s.check(&h)?;
        if v == Verdict::Append {
            s.update(&h, None, 5_000);
        }
        Ok(v)
    }

    fn code(r: Result<Verdict, ProducerError>) -> i16 {
        r.unwrap_err().code()
    }

    #[test]
    fn in_order_appends() {
        let mut s = ProducerStateManager::new();
        assert_eq!(append(&mut s, batch(PID, 0, 0, 5, 0)), Ok(Verdict::Append));
        assert_eq!(append(&mut s, batch(PID, 0, 5, 3, 5)), Ok(Verdict::Append));
        assert_eq!(append(&mut s, batch(PID, 0, 8, 1, 8)), Ok(Verdict::Append));
        let e = s.entry(PID).unwrap();
        assert_eq!(e.epoch(), 0);
        assert_eq!(e.last_seq(), 8);
        assert_eq!(e.batches().count(), 3);
        // Another producer is independent.
        assert_eq!(append(&mut s, batch(7, 0, 0, 1, 9)), Ok(Verdict::Append));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn each_of_last_five_batches_is_a_duplicate_but_not_the_sixth() {
        let mut s = ProducerStateManager::new();
        let mut offset = 100;
        let mut sent = Vec::new();
        for i in 0..6 {
            let h = batch(PID, 3, i * 2, 2, offset);
            assert_eq!(append(&mut s, h), Ok(Verdict::Append));
            sent.push(h);
            offset += 2;
        }
        for h in &sent[1..] {
            // A retry arrives without assigned offsets.
            let retry = BatchHeader {
                base_offset: 0,
                ..*h
            };
            assert_eq!(
                s.check(&retry),
                Ok(Verdict::Duplicate {
                    base_offset: h.base_offset,
                    last_offset: h.base_offset + 1
                })
            );
            assert_eq!(s.find_duplicate(&retry).unwrap().timestamp, h.max_timestamp);
        }
        // The 6th-oldest has been forgotten: it is now out of order.
        let oldest = BatchHeader {
            base_offset: 0,
            ..sent[0]
        };
        assert_eq!(code(s.check(&oldest)), 45);
        // Same first sequence but a different range is not a duplicate either.
        assert_eq!(code(s.check(&batch(PID, 3, 10, 1, 0))), 45);
        // Nor is the same range under another epoch (that one is fenced).
        assert_eq!(code(s.check(&batch(PID, 2, 10, 2, 0))), 47);
    }

    #[test]
    fn gaps_and_overlaps_are_out_of_order() {
        let mut s = ProducerStateManager::new();
        append(&mut s, batch(PID, 0, 0, 5, 0)).unwrap();
        let gap = s.check(&batch(PID, 0, 6, 1, 0));
        assert_eq!(
            gap,
            Err(ProducerError::OutOfOrderSequence {
                producer_id: PID,
                epoch: 0,
                sequence: 6,
                last_sequence: 4
            })
        );
        assert_eq!(gap.unwrap_err().code(), 45);
        assert_eq!(code(s.check(&batch(PID, 0, 4, 2, 0))), 45);
        assert_eq!(code(s.check(&batch(PID, 0, 0, 1, 0))), 45);
        // Nothing changed: the right sequence still goes in.
        assert_eq!(append(&mut s, batch(PID, 0, 5, 1, 5)), Ok(Verdict::Append));
    }

    #[test]
    fn older_epoch_is_fenced() {
        let mut s = ProducerStateManager::new();
        append(&mut s, batch(PID, 2, 0, 1, 0)).unwrap();
        let r = s.check(&batch(PID, 1, 1, 1, 0));
        assert_eq!(
            r,
            Err(ProducerError::InvalidProducerEpoch {
                producer_id: PID,
                epoch: 1,
                current_epoch: 2
            })
        );
        assert_eq!(r.unwrap_err().code(), 47);
        // Even with sequence 0.
        assert_eq!(code(s.check(&batch(PID, 0, 0, 1, 0))), 47);
    }

    #[test]
    fn epoch_bump_requires_sequence_zero() {
        let mut s = ProducerStateManager::new();
        let first = batch(PID, 0, 0, 3, 0);
        append(&mut s, first).unwrap();
        append(&mut s, batch(PID, 0, 3, 3, 3)).unwrap();
        assert_eq!(
            s.check(&batch(PID, 1, 6, 1, 0)),
            Err(ProducerError::InvalidSequenceForNewEpoch {
                producer_id: PID,
                epoch: 1,
                sequence: 6,
                current_epoch: 0
            })
        );
        assert_eq!(code(s.check(&batch(PID, 1, 6, 1, 0))), 45);
        assert_eq!(append(&mut s, batch(PID, 1, 0, 2, 6)), Ok(Verdict::Append));
        let e = s.entry(PID).unwrap();
        assert_eq!((e.epoch(), e.batches().count(), e.last_seq()), (1, 1, 1));
        // The old epoch's batches are gone, and the old epoch is fenced.
        assert_eq!(code(s.check(&first)), 47);
        assert_eq!(append(&mut s, batch(PID, 1, 2, 1, 8)), Ok(Verdict::Append));
    }

    #[test]
    fn unknown_producer_accepts_any_sequence() {
        let s = ProducerStateManager::new();
        assert_eq!(s.check(&batch(PID, 0, 42, 1, 0)), Ok(Verdict::Append));
        assert_eq!(s.check(&batch(PID, 5, 42, 1, 0)), Ok(Verdict::Append));
    }

    #[test]
    fn no_producer_id_skips_everything() {
        let mut s = ProducerStateManager::new();
        let h = batch(-1, -1, -1, 10, 0);
        assert_eq!(append(&mut s, h), Ok(Verdict::Append));
        assert_eq!(append(&mut s, h), Ok(Verdict::Append));
        s.replay(&h, None);
        assert!(s.is_empty());
    }

    #[test]
    fn sequence_wraps_to_zero() {
        let mut s = ProducerStateManager::new();
        // Ends exactly at i32::MAX.
        append(&mut s, batch(PID, 0, i32::MAX - 2, 3, 0)).unwrap();
        assert_eq!(s.entry(PID).unwrap().last_seq(), i32::MAX);
        assert_eq!(code(s.check(&batch(PID, 0, i32::MAX, 1, 0))), 45);
        assert_eq!(append(&mut s, batch(PID, 0, 0, 2, 3)), Ok(Verdict::Append));

        // A batch straddling the wrap: MAX-1, MAX, 0, 1.
        let mut s = ProducerStateManager::new();
        let straddle = batch(PID, 0, i32::MAX - 1, 4, 10);
        append(&mut s, straddle).unwrap();
        assert_eq!(s.entry(PID).unwrap().last_seq(), 1);
        assert_eq!(
            s.check(&BatchHeader {
                base_offset: 0,
                ..straddle
            }),
            Ok(Verdict::Duplicate {
                base_offset: 10,
                last_offset: 13
            })
        );
        assert_eq!(code(s.check(&batch(PID, 0, 0, 1, 0))), 45);
        assert_eq!(append(&mut s, batch(PID, 0, 2, 1, 14)), Ok(Verdict::Append));
    }

    #[test]
    fn control_batches_move_the_epoch_only() {
        let mut s = ProducerStateManager::new();
        append(&mut s, batch(PID, 0, 0, 1, 0)).unwrap();
        let marker = BatchHeader {
            attributes: 0x20 | 0x10,
            ..batch(PID, 1, -1, 1, 1)
        };
        assert_eq!(append(&mut s, marker), Ok(Verdict::Append));
        let e = s.entry(PID).unwrap();
        assert_eq!((e.epoch(), e.batches().count()), (1, 0));
        // Transactional data batches are accepted like idempotent ones.
        let txn = BatchHeader {
            attributes: 0x10,
            ..batch(PID, 1, 0, 2, 2)
        };
        assert_eq!(append(&mut s, txn), Ok(Verdict::Append));
        assert_eq!(
            code(s.check(&BatchHeader {
                attributes: 0x20,
                ..batch(PID, 0, -1, 1, 0)
            })),
            47
        );
    }

    #[test]
    fn replay_skips_checks_and_matches_update() {
        let headers = [
            batch(PID, 0, 0, 2, 0),
            batch(PID, 0, 2, 2, 2),
            batch(9, 4, 17, 1, 4),
            batch(PID, 1, 0, 1, 5),
        ];
        let mut a = ProducerStateManager::new();
        let mut b = ProducerStateManager::new();
        for h in &headers {
            append(&mut a, *h).unwrap();
            b.replay(h, None);
        }
        for id in [PID, 9] {
            let (ea, eb) = (a.entry(id).unwrap(), b.entry(id).unwrap());
            assert_eq!(ea.epoch(), eb.epoch());
            assert!(ea.batches().eq(eb.batches()));
        }
        // Replay accepts what check would refuse.
        b.replay(&batch(PID, 0, 99, 1, 6), None);
        assert_eq!(b.entry(PID).unwrap().epoch(), 0);
    }

    #[test]
    fn expiry() {
        let mut s = ProducerStateManager::new();
        s.update(&batch(1, 0, 0, 1, 0), None, 1_000);
        s.update(&batch(2, 0, 0, 1, 1), None, 50_000);
        assert_eq!(
            s.remove_expired(
                1_000 + DEFAULT_PRODUCER_ID_EXPIRATION_MS - 1,
                DEFAULT_PRODUCER_ID_EXPIRATION_MS
            ),
            0
        );
        assert_eq!(
            s.remove_expired(
                1_000 + DEFAULT_PRODUCER_ID_EXPIRATION_MS,
                DEFAULT_PRODUCER_ID_EXPIRATION_MS
            ),
            1
        );
        assert!(s.entry(1).is_none());
        assert!(s.entry(2).is_some());
        // An expired producer is unknown again: any sequence is accepted.
        assert_eq!(s.check(&batch(1, 0, 77, 1, 0)), Ok(Verdict::Append));
    }

    #[test]
    fn expired_producers_are_not_in_the_next_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let exp = 10_000;
        let mut s = ProducerStateManager::new();
        // A burst of one-batch producers (one InitProducerId each), then one that lives on.
        for pid in 0..10_000 {
            s.update(&batch(pid, 0, 0, 1, pid), None, 1_000);
        }
        let keeper = 50_000;
        s.update(&batch(keeper, 0, 0, 1, 10_000), None, 1_000);
        s.update(&batch(keeper, 0, 1, 1, 10_001), None, 9_000);
        let big = fs::metadata(s.write_snapshot(dir.path(), 10_002).unwrap())
            .unwrap()
            .len();
        assert_eq!(s.remove_expired(1_000 + exp, exp), 10_000);
        assert_eq!(s.len(), 1);
        // The map gave its memory back.
        assert!(s.producers.capacity() < 64, "{}", s.producers.capacity());
        let path = s.write_snapshot(dir.path(), 10_002).unwrap();
        let small = fs::metadata(&path).unwrap().len();
        // Header, count, then the keeper: 31 bytes and 32 per remembered batch.
        assert_eq!(small, 6 + 12 + 31 + 2 * 32);
        assert!(big > 100 * small, "{big} vs {small}");
        let (loaded, offset) = ProducerStateManager::load_latest(dir.path(), 10_002).unwrap();
        assert_eq!((offset, &loaded), (10_002, &s));
        assert!(loaded.entry(0).is_none() && loaded.entry(9_999).is_none());
        assert_eq!(loaded.entry(keeper).unwrap().last_seq(), 1);
        // The keeper still deduplicates after the round trip.
        assert_eq!(
            loaded.check(&batch(keeper, 0, 1, 1, 0)),
            Ok(Verdict::Duplicate {
                base_offset: 10_001,
                last_offset: 10_001
            })
        );
    }

    #[test]
    fn expiry_on_load_covers_the_snapshot_and_the_replay() {
        // What the broker does on open: load, expire, replay, expire again.
        let dir = tempfile::tempdir().unwrap();
        let exp = 10_000;
        let mut s = ProducerStateManager::new();
        s.update(&batch(1, 0, 0, 1, 0), None, 1_000); // idle since 1 000
        s.update(&batch(2, 0, 0, 1, 1), None, 20_000); // recent
        s.write_snapshot(dir.path(), 2).unwrap();
        let now = 25_000;
        let (mut loaded, _) = ProducerStateManager::load_latest(dir.path(), 4).unwrap();
        assert_eq!(loaded.remove_expired(now, exp), 1);
        // Replay stamps producers with their batches' max timestamps: producer 3's batch
        // is old, producer 4's recent.
        loaded.replay(
            &BatchHeader {
                max_timestamp: 2_000,
                ..batch(3, 0, 0, 1, 2)
            },
            None,
        );
        loaded.replay(
            &BatchHeader {
                max_timestamp: 24_000,
                ..batch(4, 0, 0, 1, 3)
            },
            None,
        );
        assert_eq!(loaded.remove_expired(now, exp), 1);
        let mut ids: Vec<i64> = loaded.producers.keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![2, 4]);
    }

    fn sample_state() -> ProducerStateManager {
        let mut s = ProducerStateManager::new();
        for i in 0..7 {
            append(&mut s, batch(PID, 2, i * 3, 3, i as i64 * 3)).unwrap();
        }
        append(&mut s, batch(5, 0, i32::MAX, 2, 30)).unwrap();
        s.update(
            &BatchHeader {
                attributes: 0x30,
                ..batch(6, 9, -1, 1, 40)
            },
            None,
            123,
        );
        s
    }

    #[test]
    fn snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ProducerStateManager::load_latest(dir.path(), 100).is_none());
        let s = sample_state();
        let path = s.write_snapshot(dir.path(), 41).unwrap();
        assert_eq!(path, dir.path().join("00000000000000000041.snapshot"));
        let (loaded, offset) = ProducerStateManager::load_latest(dir.path(), 41).unwrap();
        assert_eq!(offset, 41);
        assert_eq!(loaded, s);
        // Duplicates are still recognized after a reload.
        assert_eq!(
            loaded.check(&batch(PID, 2, 18, 3, 0)),
            Ok(Verdict::Duplicate {
                base_offset: 18,
                last_offset: 20
            })
        );
        // An empty state round-trips too.
        ProducerStateManager::new()
            .write_snapshot(dir.path(), 50)
            .unwrap();
        let (empty, offset) = ProducerStateManager::load_latest(dir.path(), 60).unwrap();
        assert_eq!((empty.len(), offset), (0, 50));
    }

    #[test]
    fn corrupt_and_future_snapshots_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample_state();
        s.write_snapshot(dir.path(), 10).unwrap();
        let mut newer = s.clone();
        newer.update(&batch(77, 0, 0, 1, 41), None, 1);
        newer.write_snapshot(dir.path(), 20).unwrap();
        // Flip one byte of the newest.
        let p20 = snapshot_path(dir.path(), 20);
        let mut bytes = fs::read(&p20).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        fs::write(&p20, &bytes).unwrap();
        let (loaded, offset) = ProducerStateManager::load_latest(dir.path(), 100).unwrap();
        assert_eq!((offset, &loaded), (10, &s));
        assert!(!p20.exists());

        // A truncated one and one past the log end are skipped as well. (Written directly:
        // write_snapshot's own retention would delete the one at 10.)
        fs::write(snapshot_path(dir.path(), 30), newer.encode_snapshot(30)).unwrap();
        let p30 = snapshot_path(dir.path(), 30);
        let len = fs::metadata(&p30).unwrap().len();
        File::options()
            .write(true)
            .open(&p30)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        fs::write(snapshot_path(dir.path(), 500), newer.encode_snapshot(500)).unwrap();
        let (loaded, offset) = ProducerStateManager::load_latest(dir.path(), 100).unwrap();
        assert_eq!((offset, &loaded), (10, &s));
        assert!(!snapshot_path(dir.path(), 500).exists());

        // A snapshot renamed to another offset is refused.
        fs::rename(snapshot_path(dir.path(), 10), snapshot_path(dir.path(), 11)).unwrap();
        assert!(ProducerStateManager::load_latest(dir.path(), 100).is_none());

        // Garbage and stray files.
        fs::write(snapshot_path(dir.path(), 12), b"nope").unwrap();
        fs::write(dir.path().join("00000000000000000000.log"), b"").unwrap();
        fs::write(dir.path().join("00000000000000000013.snapshot.tmp"), b"x").unwrap();
        assert!(ProducerStateManager::load_latest(dir.path(), 100).is_none());
        assert!(!dir
            .path()
            .join("00000000000000000013.snapshot.tmp")
            .exists());
        assert!(dir.path().join("00000000000000000000.log").exists());
    }

    #[test]
    fn only_the_newest_two_snapshots_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample_state();
        for offset in [1, 2, 3, 4] {
            fs::write(snapshot_path(dir.path(), offset), s.encode_snapshot(offset)).unwrap();
        }
        let (_, offset) = ProducerStateManager::load_latest(dir.path(), 10).unwrap();
        assert_eq!(offset, 4);
        let mut left = list_snapshots(dir.path()).unwrap();
        left.sort_unstable();
        assert_eq!(left, vec![3, 4]);
        s.write_snapshot(dir.path(), 5).unwrap();
        let mut left = list_snapshots(dir.path()).unwrap();
        left.sort_unstable();
        assert_eq!(left, vec![4, 5]);
    }

    #[test]
    fn producer_ids_are_never_reused_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("producer-id-block");
        let mut seen = std::collections::HashSet::new();
        let mut m = ProducerIdManager::open(&path).unwrap();
        for _ in 0..1500 {
            assert!(seen.insert(m.next_id().unwrap()));
        }
        // "Crash": drop without any shutdown step, several times, at various points.
        for take in [0, 1, 999, 1000, 1001] {
            drop(m);
            m = ProducerIdManager::open(&path).unwrap();
            for _ in 0..take {
                assert!(seen.insert(m.next_id().unwrap()));
            }
        }
        let max_before = *seen.iter().max().unwrap();
        drop(m);
        let mut m = ProducerIdManager::open(&path).unwrap();
        assert!(m.next_id().unwrap() > max_before);
        assert_eq!(*seen.iter().min().unwrap(), 0);
        assert!(!dir.path().join("producer-id-block.tmp").exists());
    }

    #[test]
    fn corrupt_producer_id_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("producer-id-block");
        ProducerIdManager::open(&path).unwrap().next_id().unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[5] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let err = ProducerIdManager::open(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        fs::write(&path, b"").unwrap();
        assert!(ProducerIdManager::open(&path).is_err());
    }

    fn txn(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            attributes: 0x10,
            ..batch(pid, epoch, seq, count, base_offset)
        }
    }

    fn marker(pid: i64, epoch: i16, base_offset: i64) -> BatchHeader {
        BatchHeader {
            attributes: 0x30,
            ..batch(pid, epoch, -1, 1, base_offset)
        }
    }

    #[test]
    fn transactions_open_at_their_first_batch_and_close_at_the_marker() {
        let mut s = ProducerStateManager::new();
        assert_eq!(s.first_unstable_offset(), None);
        append(&mut s, txn(1, 0, 0, 2, 10)).unwrap();
        append(&mut s, txn(2, 0, 0, 1, 12)).unwrap();
        append(&mut s, txn(1, 0, 2, 1, 13)).unwrap();
        assert_eq!(s.first_unstable_offset(), Some(10));
        assert_eq!(s.ongoing_count(), 2);
        assert_eq!(s.entry(1).unwrap().current_txn_first_offset(), Some(10));
        // A plain batch from a producer inside a transaction is INVALID_TXN_STATE.
        assert_eq!(code(append(&mut s, batch(1, 0, 3, 1, 14))), 48);
        // Producer 1 aborts: producer 2's transaction still bounds the LSO.
        assert_eq!(s.check(&marker(1, 0, 14)), Ok(Verdict::Append));
        let done = s
            .update(&marker(1, 0, 14), Some(ControlRecordType::Abort), 1)
            .unwrap();
        assert_eq!(
            done,
            CompletedTxn {
                producer_id: 1,
                first_offset: 10,
                last_offset: 14,
                aborted: true
            }
        );
        assert_eq!(s.last_stable_offset(&done), 12);
        assert_eq!(s.first_unstable_offset(), Some(12));
        // Producer 2 commits: nothing is open.
        let done = s
            .update(&marker(2, 0, 15), Some(ControlRecordType::Commit), 1)
            .unwrap();
        assert!(!done.aborted);
        assert_eq!(s.last_stable_offset(&done), 16);
        assert_eq!(s.first_unstable_offset(), None);
        // A marker with no open transaction completes nothing; an unknown control type
        // closes nothing.
        assert_eq!(
            s.update(&marker(2, 0, 16), Some(ControlRecordType::Commit), 1),
            None
        );
        append(&mut s, txn(1, 0, 3, 1, 17)).unwrap();
        assert_eq!(
            s.update(&marker(1, 0, 18), Some(ControlRecordType::Unknown(9)), 1),
            None
        );
        assert_eq!(s.first_unstable_offset(), Some(17));
    }

    #[test]
    fn markers_fence_older_epochs_and_a_bumped_epoch_restarts_sequences() {
        let mut s = ProducerStateManager::new();
        append(&mut s, txn(1, 3, 0, 2, 0)).unwrap();
        assert_eq!(code(s.check(&marker(1, 2, 2)).map(|_| Verdict::Append)), 47);
        // Transaction version 2: the marker carries the next epoch.
        s.update(&marker(1, 4, 2), Some(ControlRecordType::Commit), 1)
            .unwrap();
        assert_eq!(s.entry(1).unwrap().epoch(), 4);
        // The old epoch is fenced; the new one starts at 0.
        assert_eq!(code(append(&mut s, txn(1, 3, 2, 1, 3))), 47);
        append(&mut s, txn(1, 4, 0, 1, 3)).unwrap();
    }

    #[test]
    fn open_transactions_survive_snapshots_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::new();
        append(&mut s, txn(1, 0, 0, 2, 10)).unwrap();
        append(&mut s, batch(2, 0, 0, 1, 12)).unwrap();
        s.write_snapshot(dir.path(), 13).unwrap();
        let (mut loaded, _) = ProducerStateManager::load_latest(dir.path(), 13).unwrap();
        assert_eq!(loaded, s);
        assert_eq!(loaded.first_unstable_offset(), Some(10));
        // Idle far past the expiry: the open transaction keeps producer 1.
        assert_eq!(loaded.remove_expired(i64::MAX / 2, 1_000), 1);
        assert!(loaded.entry(1).is_some() && loaded.entry(2).is_none());
        // Replaying the marker closes it.
        let done = loaded.replay(&marker(1, 0, 13), Some(ControlRecordType::Abort));
        assert_eq!(
            done.map(|d| (d.first_offset, d.last_offset)),
            Some((10, 13))
        );
    }

    #[test]
    fn version_1_snapshots_still_load() {
        let dir = tempfile::tempdir().unwrap();
        // Version 1: one producer (id 5, epoch 1, last timestamp 7) with one batch.
        let mut body = Vec::new();
        body.extend_from_slice(&3u64.to_be_bytes());
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&5i64.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&7i64.to_be_bytes());
        body.push(1);
        for v in [0i32, 2] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        for v in [0i64, 2, 7] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        let mut file = 1i16.to_be_bytes().to_vec();
        file.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        file.extend_from_slice(&body);
        fs::write(snapshot_path(dir.path(), 3), file).unwrap();
        let (loaded, _) = ProducerStateManager::load_latest(dir.path(), 3).unwrap();
        let e = loaded.entry(5).unwrap();
        assert_eq!(
            (e.epoch(), e.last_seq(), e.current_txn_first_offset()),
            (1, 2, None)
        );
    }
}
