//! Group commit: appenders that need durability wait for an fsync, and one fsync covers
//! every batch appended while the previous one ran.
//!
//! The log lock is held only to append or to capture what to sync; the fsync itself runs
//! with no lock held, so appends continue meanwhile. This is what makes concurrent
//! durable producers cheaper, not dearer, than one. The same fsync round runs the
//! fsyncs a segment roll left (the sealed segment, the directory) before it reports
//! anything past the roll durable.
//!
//! Reads take the lock only to pick a segment and take a reader of it (shared handles
//! and bounds); the batch header preads run without it, so a fetch's disk reads do not
//! hold up appends, nor an append a fetch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::log::{
    collect_aborted, search_timestamp, AppendInfo, HeaderRewrite, Log, ReadResult, TimestampHit,
};
use crate::{AbortedTxn, Result, StorageError};

struct SyncState {
    /// Offsets below this are durable.
    durable_offset: u64,
    /// A thread is running an fsync now.
    in_progress: bool,
    /// Set when an fsync failed (or the log was poisoned otherwise): after a failed
    /// fsync the page cache state is unknown (the "fsyncgate" lesson), so the durable
    /// offset never moves again and no fsync is retried. The log itself refuses
    /// appends (see [`Log::poisoned`]).
    failed: Option<String>,
}

/// A partition log shared between threads, with group commit.
pub struct SharedLog {
    log: Mutex<Log>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    fsyncs: AtomicU64,
    /// Set when the log goes out of service (poisoned, a failed fsync, a panic): the
    /// partition is offline until restart. Shared with the `Log`, which sets it too.
    offline: Arc<AtomicBool>,
}

impl SharedLog {
    pub fn new(log: Log) -> SharedLog {
        let durable_offset = log.recovery_point();
        let offline = log.offline_flag();
        SharedLog {
            log: Mutex::new(log),
            sync: Mutex::new(SyncState {
                durable_offset,
                in_progress: false,
                failed: None,
            }),
            synced: Condvar::new(),
            fsyncs: AtomicU64::new(0),
            offline,
        }
    }

    /// Lock the log for appends and reads. Never hold this across a network wait.
    ///
    /// A panic while the log was locked may have left it half-updated (an index entry
    /// without its batch, a segment map out of step with the files), so a poisoned lock
    /// takes the log out of service: this and every later call fail with
    /// [`StorageError::Poisoned`], and nothing more is acknowledged. A restart recovers
    /// the log from its files.
    pub fn lock(&self) -> Result<MutexGuard<'_, Log>> {
        match self.log.lock() {
            Ok(guard) => Ok(guard),
            Err(_) => {
                let why = "a panic interrupted an operation on this log";
                let mut state = self.lock_sync();
                if state.failed.is_none() {
                    tracing::error!("{why}; the log is out of service until restart");
                    state.failed = Some(why.to_string());
                }
                self.offline.store(true, Ordering::Release);
                Err(StorageError::Poisoned(why.to_string()))
            }
        }
    }

    /// The sync state's critical sections are plain assignments that cannot panic, so a
    /// poisoned lock still holds consistent values; it is marked failed all the same.
    fn lock_sync(&self) -> MutexGuard<'_, SyncState> {
        self.sync.lock().unwrap_or_else(|p| {
            self.offline.store(true, Ordering::Release);
            failed_after_panic(p)
        })
    }

    /// Whether the log is out of service until restart (poisoned, a failed fsync, a
    /// panic). Takes no lock, so asking never waits for an append or a read.
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    pub fn append(&self, records: &[u8], now_ms: i64) -> Result<AppendInfo> {
        self.append_rewriting(records, HeaderRewrite::default(), now_ms)
    }

    /// See [`Log::append_rewriting`].
    pub fn append_rewriting(
        &self,
        records: &[u8],
        rewrite: HeaderRewrite,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        // A failed fsync poisons the log under this same lock, so the append is refused.
        self.lock()?.append_rewriting(records, rewrite, now_ms)
    }

    /// [`Log::read`], with the log lock held only for the in-memory steps: the preads of
    /// batch headers run without it.
    pub fn read(&self, offset: u64, max_bytes: u64, upper_bound: u64) -> Result<ReadResult> {
        let (mut cursor, mut seg) = {
            let mut log = self.lock()?;
            let cursor = log.begin_read(offset, max_bytes, upper_bound)?;
            let seg = log.read_segment(&cursor)?;
            (cursor, seg)
        };
        while let Some(s) = seg {
            cursor.search(&s)?;
            seg = if cursor.done() {
                None
            } else {
                self.lock()?.read_segment(&cursor)?
            };
        }
        Ok(cursor.into_result())
    }

    /// [`Log::find_timestamp`], with the lock held only to pick segments.
    pub fn find_timestamp(&self, timestamp: i64) -> Result<Option<TimestampHit>> {
        let mut resume = 0;
        loop {
            // A statement of its own, so that the guard is dropped before the search.
            let seg = self.lock()?.timestamp_segment(timestamp, resume)?;
            let Some(seg) = seg else { return Ok(None) };
            if let Some(hit) = search_timestamp(&seg, timestamp)? {
                return Ok(Some(hit));
            }
            resume = seg.next_offset;
        }
    }

    /// [`Log::max_timestamp`], with the lock held only to pick segments.
    pub fn max_timestamp(&self) -> Result<Option<TimestampHit>> {
        let max = self.lock()?.largest_timestamp();
        if max < 0 {
            return Ok(None);
        }
        self.find_timestamp(max)
    }

    /// Record an aborted transaction in the `.txnindex` of the segment that holds
    /// `txn.last_offset` (the active one when called right after the marker append).
    /// Idempotent: an entry with the same producer id and last offset is not added
    /// twice. Durable with the marker: a [`SharedLog::sync_to`] covering the marker
    /// covers the entry. See [`Log::append_aborted_txn`].
    pub fn append_aborted_txn(&self, txn: &AbortedTxn) -> Result<()> {
        self.lock()?.append_aborted_txn(txn)
    }

    /// Kafka's collectAbortedTransactions: the aborted transactions that overlap
    /// `[from, upper)`: `last_offset >= from` and `first_offset < upper`, read from the
    /// `.txnindex` of the segment holding `from` and every later one, in offset order.
    /// The lock is held only to list the files; they are read without it.
    pub fn aborted_txns(&self, from: u64, upper: u64) -> Result<Vec<AbortedTxn>> {
        let (sources, _) = self.lock()?.txn_index_sources(from);
        collect_aborted(&sources, from, upper)
    }

    /// [`SharedLog::aborted_txns`] over the whole log, with the indexes' generation
    /// (for the cleaner's swap check).
    pub(crate) fn aborted_txns_with_generation(
        &self,
        from: u64,
        upper: u64,
    ) -> Result<(Vec<AbortedTxn>, u64)> {
        let (sources, generation) = self.lock()?.txn_index_sources(from);
        Ok((collect_aborted(&sources, from, upper)?, generation))
    }

    /// How many group-commit fsync rounds have run (each may cover many appends).
    pub fn fsync_rounds(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Offsets below this are durable.
    pub fn durable_offset(&self) -> u64 {
        self.lock_sync().durable_offset
    }

    /// Block until every offset below `offset` is fsynced. If no fsync is running, this
    /// thread runs one covering everything appended so far; otherwise it waits for the
    /// running one and, if that did not cover `offset`, for (or runs) the next.
    pub fn sync_to(&self, offset: u64) -> Result<()> {
        let mut state = self.lock_sync();
        loop {
            if let Some(why) = &state.failed {
                return Err(StorageError::Poisoned(why.clone()));
            }
            if state.durable_offset >= offset {
                return Ok(());
            }
            if state.in_progress {
                state = self.synced.wait(state).unwrap_or_else(failed_after_panic);
                continue;
            }
            state.in_progress = true;
            drop(state);

            let outcome = self
                .lock()
                .and_then(|mut log| log.prepare_flush(offset))
                .and_then(|job| {
                    let run = job.run();
                    self.fsyncs.fetch_add(1, Ordering::Relaxed);
                    let mut log = self.lock()?;
                    match run {
                        Ok(checkpointed) => {
                            log.complete_flush(&job, checkpointed);
                            Ok(job.upto)
                        }
                        Err(e) => {
                            log.flush_failed(&e);
                            Err(StorageError::Poisoned(format!("fsync failed: {e}")))
                        }
                    }
                });

            state = self.lock_sync();
            state.in_progress = false;
            match outcome {
                Ok(upto) => state.durable_offset = state.durable_offset.max(upto),
                Err(e) => {
                    tracing::error!(error = %e, "fsync failed; the log refuses further writes");
                    self.offline.store(true, Ordering::Release);
                    state.failed = Some(match e {
                        StorageError::Poisoned(why) => why,
                        other => other.to_string(),
                    });
                }
            }
            self.synced.notify_all();
        }
    }

    /// Make what rolls sealed durable (every offset below the active segment), leaving
    /// the active segment's data alone: Kafka's flush after a roll, for a log whose
    /// appends need no fsync. It closes the rolled files and moves the recovery point.
    pub fn sync_rolled(&self) -> Result<()> {
        let base = self.lock()?.active_base_offset();
        self.sync_to(base)
    }

    /// Take the log back (e.g. to close it); not if a panic poisoned it.
    pub fn into_inner(self) -> Result<Log> {
        self.log.into_inner().map_err(|_| {
            StorageError::Poisoned("a panic interrupted an operation on this log".into())
        })
    }
}

/// Take over a sync state poisoned by a panic, marked failed: its values are whole (see
/// `SharedLog::lock_sync`), but nothing more is made durable after a panic.
fn failed_after_panic(p: PoisonError<MutexGuard<'_, SyncState>>) -> MutexGuard<'_, SyncState> {
    let mut state = p.into_inner();
    state
        .failed
        .get_or_insert_with(|| "a panic interrupted a group commit".to_string());
    state
}
