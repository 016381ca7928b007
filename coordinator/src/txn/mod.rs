//! The transaction coordinator: transactional ids, their producer ids and epochs, and
//! the two-phase commit of their transactions, kept in `__transaction_state`. Sans-io:
//! the log, the marker writes, producer-id allocation, time and spawning are passed in.
//!
//! - [`records`]: the `__transaction_state` key/value formats, as Kafka writes them.
//! - [`TxnCoordinator`] (this file): Kafka's `TransactionCoordinator` and
//!   `TransactionStateManager` behind one mutex.
//!
//! Each transactional id has metadata (Kafka's `TransactionMetadata`) and at most one
//! pending transition. A transition is prepared under the lock (which sets the pending
//! state, so that concurrent requests get CONCURRENT_TRANSACTIONS), its record appended
//! under the lock (the log order is the state order), and applied to the metadata only
//! once the record is durable; then the request is answered. Ending a transaction
//! writes PrepareCommit/PrepareAbort, answers, and then (in a spawned task) writes the
//! markers through [`TxnMarkers`] and the CompleteCommit/CompleteAbort record. A
//! restart replays the topic ([`TxnCoordinator::replay_chunk`]) and
//! [`TxnCoordinator::finish_load`] resumes every Prepare* transaction.
//!
//! Transaction version 2 (KIP-890 part 2, finished in Kafka 4.0): every end bumps the
//! epoch (the markers carry the bumped epoch, the answer carries it; an exhausted epoch
//! rotates to `NextProducerId` once the markers are written), a retry with the previous
//! epoch is recognised, and an empty transaction may be aborted.
//!
//! Locking: one `std::sync::Mutex`, never held across an `.await`; a poisoned lock
//! stops the process (see `poison.rs`).
//!
//! For the broker: errors are Kafka 4's; KafkaApis maps PRODUCER_FENCED to
//! INVALID_PRODUCER_EPOCH for InitProducerId < v4 and EndTxn, AddPartitionsToTxn and
//! AddOffsetsToTxn < v2. AddOffsetsToTxn is [`TxnCoordinator::add_partitions`] of
//! (`__consumer_offsets`, the group's partition). A null transactional id's
//! InitProducerId is answered from [`ProducerIds`] directly (epoch 0).

pub mod records;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError as E;

pub use crate::log::{CoordinatorLog, DurableFuture, LogRecord};
use crate::runtime::{Clock, Spawn};
pub use records::TxnPartitions;
pub use records::TxnState;
use records::TxnValue;

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Writes transaction markers; the broker implements it over its partitions.
pub trait TxnMarkers: Send + Sync {
    /// Write a commit or abort marker for (producer_id, producer_epoch) to each partition
    /// and resolve once every one is durable. The broker retries storage errors itself
    /// and skips partitions that no longer exist, so an Err means "stop, the coordinator
    /// is going away"; the coordinator then leaves the transaction in Prepare* and
    /// finish_load resumes it at the next start.
    fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        partitions: Vec<(String, i32)>,
    ) -> DurableFuture;
}

/// Where producer ids come from (the broker's durable producer-id block).
pub trait ProducerIds: Send + Sync {
    fn next_producer_id(&self) -> Result<i64, E>;
}

/// Coordinator settings, by Kafka's names.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`: what the broker creates the topic with
    /// (the coordinator itself asks the log how many partitions it has).
    pub num_partitions: i32,
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub abort_timed_out_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`
    pub remove_expired_interval_ms: i64,
    /// The finalized `transaction.version` feature level: the aborts the coordinator
    /// starts itself (timeouts, fencing) follow it, as Kafka's do (with 2 they are
    /// written as TV2 records and may rotate an exhausted epoch's producer id).
    pub transaction_version: i16,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            num_partitions: 50,
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            abort_timed_out_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
            transaction_version: 2,
        }
    }
}

const NO_PRODUCER_ID: i64 = -1;
const NO_EPOCH: i16 = -1;

/// Is (topic, partition) among `partitions`?
fn has(partitions: &TxnPartitions, (topic, p): &(String, i32)) -> bool {
    partitions.get(topic).is_some_and(|ps| ps.contains(p))
}

/// Kafka's `isEpochExhausted`: epoch `i16::MAX` stays free so that a producer at the
/// last usable epoch can still be fenced.
fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// A transactional id's metadata (Kafka's `TransactionMetadata`); also a prepared
/// transition (Kafka's `TxnTransitMetadata`), where `prev_producer_id` is the producer
/// id before the transition, as Kafka writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    producer_id: i64,
    prev_producer_id: i64,
    next_producer_id: i64,
    epoch: i16,
    last_epoch: i16,
    timeout_ms: i32,
    state: TxnState,
    partitions: TxnPartitions,
    start_ms: i64,
    last_update_ms: i64,
    client_version: i16,
}

impl Meta {
    fn tv2(&self) -> bool {
        self.client_version >= 2
    }

    fn to_value(&self) -> TxnValue {
        TxnValue {
            producer_id: self.producer_id,
            previous_producer_id: self.prev_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: if self.state == TxnState::Empty {
                TxnPartitions::new()
            } else {
                self.partitions.clone()
            },
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
            client_transaction_version: self.client_version,
        }
    }

    fn from_value(v: TxnValue) -> Meta {
        Meta {
            producer_id: v.producer_id,
            prev_producer_id: v.previous_producer_id,
            next_producer_id: v.next_producer_id,
            epoch: v.producer_epoch,
            // Not in the log: a retry across a restart is fenced (as in Kafka).
            last_epoch: NO_EPOCH,
            timeout_ms: v.timeout_ms,
            state: v.state,
            partitions: v.partitions,
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
            client_version: v.client_transaction_version,
        }
    }

    /// A transition to `state`: a copy with the producer id before it recorded.
    fn transit(&self, state: TxnState, now_ms: i64) -> Meta {
        Meta {
            prev_producer_id: self.producer_id,
            next_producer_id: NO_PRODUCER_ID,
            state,
            last_update_ms: now_ms,
            ..self.clone()
        }
    }

    /// Kafka's `prepareAbortOrCommit`.
    fn prepare_end(
        &self,
        state: TxnState,
        tv2: bool,
        next_producer_id: i64,
        now_ms: i64,
        no_partition_added: bool,
    ) -> Meta {
        let mut t = self.transit(state, now_ms);
        if tv2 {
            // An abort at i16::MAX (a fence of the last epoch) keeps it rather than wrap.
            if self.epoch < i16::MAX {
                t.epoch = self.epoch + 1;
            }
            t.last_epoch = self.epoch;
        }
        if no_partition_added {
            t.start_ms = now_ms;
        }
        t.next_producer_id = next_producer_id;
        t.client_version = if tv2 { 2 } else { 0 };
        t
    }

    /// Kafka's `prepareComplete`: after the markers. With TV2 an exhausted epoch moves
    /// to the next producer id at epoch 0.
    fn prepare_complete(&self, now_ms: i64) -> Meta {
        let state = if self.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        let mut t = self.transit(state, now_ms);
        if self.tv2() && self.next_producer_id != NO_PRODUCER_ID {
            t.producer_id = self.next_producer_id;
            t.epoch = 0;
            t.last_epoch = NO_EPOCH;
        }
        // Otherwise the previous epoch stays what the end set (Kafka keeps
        // lastProducerEpoch here), so KIP-360's InitProducerId with the epoch a timeout
        // or fence abort bumped past is recognised as a retry.
        t.partitions.clear();
        t
    }

    /// Kafka's `completeTransitionTo`: apply a durable transition.
    fn complete(&mut self, t: &Meta) {
        match t.state {
            TxnState::Empty => {
                self.timeout_ms = t.timeout_ms;
                self.epoch = t.epoch;
                self.last_epoch = t.last_epoch;
                self.producer_id = t.producer_id;
                self.prev_producer_id = t.prev_producer_id;
                self.partitions.clear();
                self.start_ms = -1;
            }
            TxnState::Ongoing => {
                self.start_ms = t.start_ms;
                for (topic, ps) in &t.partitions {
                    match self.partitions.get_mut(topic) {
                        Some(have) => have.extend(ps),
                        None => {
                            self.partitions.insert(topic.clone(), ps.clone());
                        }
                    }
                }
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                self.start_ms = t.start_ms;
                if t.tv2() {
                    self.epoch = t.epoch;
                    self.last_epoch = t.last_epoch;
                    self.next_producer_id = t.next_producer_id;
                }
            }
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                self.start_ms = t.start_ms;
                self.partitions.clear();
                if t.tv2() {
                    self.epoch = t.epoch;
                    self.last_epoch = t.last_epoch;
                    self.prev_producer_id = t.prev_producer_id;
                    self.producer_id = t.producer_id;
                    self.next_producer_id = t.next_producer_id;
                }
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {}
        }
        self.client_version = t.client_version;
        self.last_update_ms = t.last_update_ms;
        self.state = t.state;
    }
}

struct Entry {
    meta: Meta,
    /// The state a prepared transition is going to (Kafka's `pendingState`).
    pending: Option<TxnState>,
    /// A fence's write failed: the bumped epoch was never handed out, so the next
    /// fence does not bump again (Kafka's `hasFailedEpochFence`).
    failed_fence: bool,
}

impl Entry {
    fn new(meta: Meta) -> Entry {
        Entry {
            meta,
            pending: None,
            failed_fence: false,
        }
    }
}

#[derive(Default)]
struct State {
    txns: HashMap<String, Entry>,
    next_abort_check: Option<Instant>,
    next_expire_check: Option<Instant>,
}

/// What an end-of-transaction decision came to.
enum EndPlan {
    /// A retry of an end that completed: answer with these.
    Done(i64, i16),
    /// Write this PrepareCommit/PrepareAbort transition.
    Write { transit: Meta, fence: bool },
}

/// A transaction as DescribeTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    /// Kafka's spelling: "Empty", "Ongoing", "PrepareCommit", ...
    pub state: &'static str,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// -1 when no transaction started.
    pub start_ms: i64,
    /// Topics in order, with their partitions.
    pub topics: Vec<(String, Vec<i32>)>,
}

/// A transaction as ListTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTxn {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: &'static str,
}

/// ListTransactions' answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnListing {
    /// State filters that name no state (Kafka returns them and lists as if absent).
    pub unknown_state_filters: Vec<String>,
    pub transactions: Vec<ListedTxn>,
}

pub struct TxnCoordinator {
    pub cfg: TxnConfig,
    log: Arc<dyn CoordinatorLog>,
    markers: Arc<dyn TxnMarkers>,
    ids: Arc<dyn ProducerIds>,
    clock: Arc<dyn Clock>,
    spawn: Arc<dyn Spawn>,
    state: Mutex<State>,
    /// Set by finish_load; until then requests get COORDINATOR_LOAD_IN_PROGRESS.
    loaded: AtomicBool,
}

/// Transactional ids longer than a record's string can hold are refused.
const MAX_ID_BYTES: usize = i16::MAX as usize;

impl TxnCoordinator {
    /// `log` is `__transaction_state`; `spawn` runs the marker writes and the
    /// completion records after an end has been answered.
    pub fn new(
        cfg: TxnConfig,
        log: Arc<dyn CoordinatorLog>,
        markers: Arc<dyn TxnMarkers>,
        ids: Arc<dyn ProducerIds>,
        clock: Arc<dyn Clock>,
        spawn: Arc<dyn Spawn>,
    ) -> Arc<TxnCoordinator> {
        Arc::new(TxnCoordinator {
            cfg,
            log,
            markers,
            ids,
            clock,
            spawn,
            state: Mutex::new(State::default()),
            loaded: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::poison::or_stop(self.state.lock(), "transaction coordinator")
    }

    /// The `__transaction_state` partition of `transactional_id`:
    /// `Utils.abs(transactionalId.hashCode) % partitions`.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        crate::group::records::partition_for(transactional_id, self.log.partitions())
    }

    fn check_loaded(&self) -> Result<(), E> {
        if self.loaded.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(E::CoordinatorLoadInProgress)
        }
    }

    // ----- start: replay and resuming -----

    /// Feed one record of `__transaction_state` (replay on start), in log order.
    pub fn load_record(&self, key: &[u8], value: Option<&[u8]>, offset: u64) {
        let id = match records::decode_key(key) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, offset, "skipping an unreadable __transaction_state key");
                return;
            }
        };
        let mut st = self.lock();
        match value {
            None => {
                st.txns.remove(&id);
            }
            Some(v) => match records::decode_value(v) {
                Ok(v) => {
                    st.txns.insert(id, Entry::new(Meta::from_value(v)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, offset, transactional_id = %id, "skipping an unreadable transaction record")
                }
            },
        }
    }

    /// Replay a chunk of whole stored batches of `__transaction_state` partition
    /// `partition`, read from `offset`; returns the offset after the last batch (where
    /// the next chunk starts).
    pub fn replay_chunk(&self, partition: i32, offset: u64, buf: &[u8]) -> u64 {
        crate::log::replay_chunk(offset, buf, |key, value, at| {
            if let Ok(id) = records::decode_key(key) {
                if self.partition_for(&id) != partition {
                    tracing::warn!(transactional_id = %id, partition, "a transaction record in the wrong partition");
                }
            }
            self.load_record(key, value, at)
        })
    }

    /// After replay: resume every PrepareCommit/PrepareAbort (write the markers, then the
    /// Complete* record) and start answering requests. A PrepareEpochFence (Kafka never
    /// writes one) is treated as the abort it was about to become.
    pub fn finish_load(self: &Arc<Self>) {
        let now_ms = self.clock.now_ms();
        let mut st = self.lock();
        let mut resumed = 0;
        let ids: Vec<String> = st.txns.keys().cloned().collect();
        for id in ids {
            let Some(e) = st.txns.get_mut(&id) else {
                continue;
            };
            if e.meta.state == TxnState::PrepareEpochFence {
                e.meta.state = TxnState::PrepareAbort;
            }
            if matches!(
                e.meta.state,
                TxnState::PrepareCommit | TxnState::PrepareAbort
            ) {
                self.start_completion(e, &id, now_ms);
                resumed += 1;
            }
        }
        let n = st.txns.len();
        drop(st);
        self.loaded.store(true, Ordering::Release);
        tracing::info!(
            transactional_ids = n,
            resumed,
            "loaded transaction coordinator state"
        );
    }

    // ----- writes -----

    /// Append `transit` for `id` (under the lock); returns the wait for durability.
    fn append(&self, id: &str, transit: &Meta) -> Result<DurableFuture, E> {
        let p = self.partition_for(id);
        let rec = (
            records::encode_key(id),
            Some(records::encode_value(&transit.to_value())),
        );
        let (_, end) = self.log.append(p, &[rec])?;
        Ok(self.log.wait_durable(p, end))
    }

    /// Set `e`'s pending state to `transit`'s and append it. On an append error the
    /// pending state is cleared.
    fn begin_write(&self, e: &mut Entry, id: &str, transit: &Meta) -> Result<DurableFuture, E> {
        match self.append(id, transit) {
            Ok(f) => {
                e.pending = Some(transit.state);
                Ok(f)
            }
            Err(err) => {
                tracing::warn!(transactional_id = id, error = ?err, "writing transaction state failed");
                e.pending = None;
                Err(E::CoordinatorNotAvailable)
            }
        }
    }

    /// Wait for a write begun by [`begin_write`](Self::begin_write) and apply it, or
    /// clear the pending state if it failed.
    async fn finish_write(
        &self,
        id: &str,
        transit: &Meta,
        durable: DurableFuture,
    ) -> Result<(), E> {
        let result = durable.await;
        let mut st = self.lock();
        let Some(e) = st.txns.get_mut(id) else {
            return Err(E::CoordinatorNotAvailable);
        };
        if e.pending != Some(transit.state) {
            return Err(E::ConcurrentTransactions);
        }
        e.pending = None;
        match result {
            Ok(()) => {
                e.meta.complete(transit);
                Ok(())
            }
            Err(err) => {
                tracing::warn!(transactional_id = id, error = ?err, "transaction state did not become durable");
                Err(E::CoordinatorNotAvailable)
            }
        }
    }

    /// After a Prepare* is durable (or found at load): set the pending Complete* and
    /// spawn the marker writes and the completion record.
    fn start_completion(self: &Arc<Self>, e: &mut Entry, id: &str, now_ms: i64) {
        let transit = e.meta.prepare_complete(now_ms);
        e.pending = Some(transit.state);
        let commit = e.meta.state == TxnState::PrepareCommit;
        let (pid, epoch) = (e.meta.producer_id, e.meta.epoch);
        let partitions: Vec<(String, i32)> = e
            .meta
            .partitions
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect();
        let me = self.clone();
        let id = id.to_string();
        self.spawn.spawn(Box::pin(async move {
            if !partitions.is_empty() {
                if let Err(err) = me.markers.write_markers(pid, epoch, commit, partitions).await {
                    tracing::warn!(transactional_id = %id, error = ?err, "writing transaction markers stopped; the transaction stays prepared until the next start");
                    let mut st = me.lock();
                    if let Some(e) = st.txns.get_mut(&id) {
                        if e.pending == Some(transit.state) {
                            e.pending = None;
                        }
                    }
                    return;
                }
            }
            let durable = {
                let mut st = me.lock();
                let Some(e) = st.txns.get_mut(&id) else {
                    return;
                };
                match me.append(&id, &transit) {
                    Ok(f) => f,
                    Err(err) => {
                        tracing::warn!(transactional_id = %id, error = ?err, "writing the transaction completion failed");
                        e.pending = None;
                        return;
                    }
                }
            };
            if let Err(err) = me.finish_write(&id, &transit, durable).await {
                tracing::warn!(transactional_id = %id, error = ?err, "completing the transaction failed");
            }
        }));
    }

    /// Wait for a Prepare* write, apply it and start the completion. Returns the
    /// producer id and epoch to answer with.
    async fn finish_prepare(
        self: &Arc<Self>,
        id: &str,
        transit: Meta,
        fence: bool,
        durable: DurableFuture,
    ) -> Result<(i64, i16), E> {
        let result = durable.await;
        let now_ms = self.clock.now_ms();
        let mut st = self.lock();
        let Some(e) = st.txns.get_mut(id) else {
            return Err(E::CoordinatorNotAvailable);
        };
        if e.pending != Some(transit.state) {
            return Err(E::ConcurrentTransactions);
        }
        e.pending = None;
        if let Err(err) = result {
            tracing::warn!(transactional_id = id, error = ?err, "the end of a transaction did not become durable");
            if fence {
                e.failed_fence = true;
            }
            return Err(E::CoordinatorNotAvailable);
        }
        e.meta.complete(&transit);
        // With TV2 an exhausted epoch has moved on to the next producer id.
        let answer = if e.meta.tv2() && e.meta.next_producer_id != NO_PRODUCER_ID {
            (e.meta.next_producer_id, 0)
        } else {
            (e.meta.producer_id, e.meta.epoch)
        };
        self.start_completion(e, id, now_ms);
        Ok(answer)
    }

    /// Kafka's `endTransaction` up to the Prepare* transition, under the lock.
    /// `from_client` is false for the aborts the coordinator starts (timeouts, fencing),
    /// which come with the entry's pending state set to PrepareEpochFence.
    #[allow(clippy::too_many_arguments)]
    fn plan_end(
        &self,
        e: &mut Entry,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        tv2: bool,
        from_client: bool,
        now_ms: i64,
    ) -> Result<EndPlan, E> {
        let fencing = e.pending == Some(TxnState::PrepareEpochFence);
        let m = &e.meta;
        // TV2 (Kafka 4's endTransaction): a retry comes with the epoch before the bump,
        // or with the old producer id at the exhausted epoch after a rotation.
        let retry_on_overflow = tv2
            && !fencing
            && m.prev_producer_id == producer_id
            && epoch == i16::MAX - 1
            && m.epoch == 0;
        let retry_on_bump = tv2 && !fencing && i32::from(m.epoch) == i32::from(epoch) + 1;
        let valid_epoch = if tv2 && !fencing {
            match m.state {
                TxnState::Ongoing
                | TxnState::Empty
                | TxnState::Dead
                | TxnState::PrepareEpochFence => epoch == m.epoch,
                TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
                TxnState::CompleteCommit | TxnState::CompleteAbort => {
                    retry_on_bump || retry_on_overflow || epoch == m.epoch
                }
            }
        } else {
            (!from_client || epoch == m.epoch) && epoch >= m.epoch
        };
        let concurrent = e.pending.is_some() && !fencing;
        // Kafka 4's TV2 path checks a pending transition first, its TV1 path last.
        if tv2 && concurrent {
            return Err(E::ConcurrentTransactions);
        }
        if m.producer_id != producer_id && !retry_on_overflow {
            return Err(E::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return Err(E::ProducerFenced);
        }
        if concurrent {
            return Err(E::ConcurrentTransactions);
        }
        let is_retry = retry_on_bump || retry_on_overflow;
        let invalid = || {
            tracing::debug!(
                transactional_id = id,
                state = m.state.name(),
                commit,
                "an end of transaction in an invalid state"
            );
            Err(E::InvalidTxnState)
        };
        let abort_empty = tv2 && !commit;
        let no_partitions = match (m.state, commit) {
            (TxnState::Ongoing, _) => false,
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if !tv2 => {
                return Ok(EndPlan::Done(m.producer_id, m.epoch))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if is_retry => {
                return Ok(EndPlan::Done(m.producer_id, m.epoch))
            }
            (TxnState::CompleteCommit, false) if tv2 && !is_retry => true,
            (TxnState::CompleteAbort, false) => true,
            (TxnState::Empty, false) if abort_empty => true,
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                return Err(E::ConcurrentTransactions)
            }
            _ => return invalid(),
        };
        let next_state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        // (Kafka 4 rotates an exhausted epoch at a fence's abort too.)
        let next_producer_id = if tv2 && epoch_exhausted(m.epoch) {
            self.ids.next_producer_id()?
        } else {
            NO_PRODUCER_ID
        };
        let fence = fencing && !commit;
        if fence {
            e.pending = None;
            if !tv2 {
                // TV1: the fenced epoch goes into the metadata itself (kept even if the
                // write fails, then `failed_fence`); TV2's abort bumps it instead. Either
                // way the abort's epoch is one above the fenced producer's.
                e.meta.epoch = epoch;
                e.meta.last_epoch = NO_EPOCH;
            }
        }
        let transit = e
            .meta
            .prepare_end(next_state, tv2, next_producer_id, now_ms, no_partitions);
        Ok(EndPlan::Write { transit, fence })
    }

    /// Start the abort of `e`'s ongoing transaction by the coordinator (timeout or a new
    /// producer): Kafka's `prepareFenceProducerEpoch` and an abort with the server's
    /// transaction version. Returns the write to wait for.
    fn begin_fence(
        &self,
        e: &mut Entry,
        id: &str,
        now_ms: i64,
    ) -> Result<(Meta, DurableFuture), E> {
        let m = &e.meta;
        let fenced = if e.failed_fence || m.epoch == i16::MAX {
            m.epoch
        } else {
            m.epoch + 1
        };
        let pid = m.producer_id;
        e.pending = Some(TxnState::PrepareEpochFence);
        let tv2 = self.cfg.transaction_version >= 2;
        let plan = self.plan_end(e, id, pid, fenced, false, tv2, false, now_ms);
        match plan {
            Ok(EndPlan::Write { transit, .. }) => match self.begin_write(e, id, &transit) {
                Ok(durable) => Ok((transit, durable)),
                Err(err) => {
                    e.failed_fence = true;
                    Err(err)
                }
            },
            Ok(EndPlan::Done(..)) => {
                e.pending = None;
                Err(E::InvalidTxnState)
            }
            Err(err) => {
                e.pending = None;
                Err(err)
            }
        }
    }

    // ----- requests -----

    /// InitProducerId for a transactional id (the broker answers a null transactional
    /// id from [`ProducerIds`] itself). `expected` is KIP-360's producer id and epoch.
    /// Returns the producer id and epoch; CONCURRENT_TRANSACTIONS while an ongoing
    /// transaction is being aborted to fence its producer (the client retries).
    /// PRODUCER_FENCED is the answer to a stale `expected` (the broker maps it to
    /// INVALID_PRODUCER_EPOCH for InitProducerId versions before 4, as Kafka does).
    pub async fn init_producer_id(
        self: &Arc<Self>,
        transactional_id: &str,
        transaction_timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), E> {
        self.check_loaded()?;
        let id = transactional_id;
        if id.is_empty() || id.len() > MAX_ID_BYTES {
            return Err(E::InvalidRequest);
        }
        if transaction_timeout_ms <= 0 || transaction_timeout_ms > self.cfg.max_timeout_ms {
            return Err(E::InvalidTransactionTimeout);
        }
        let now_ms = self.clock.now_ms();
        let (transit, fencing, durable) = 'step: {
            let mut st = self.lock();
            if !st.txns.contains_key(id) {
                let pid = self.ids.next_producer_id()?;
                st.txns.insert(
                    id.to_string(),
                    Entry::new(Meta {
                        producer_id: pid,
                        prev_producer_id: NO_PRODUCER_ID,
                        next_producer_id: NO_PRODUCER_ID,
                        epoch: NO_EPOCH,
                        last_epoch: NO_EPOCH,
                        timeout_ms: transaction_timeout_ms,
                        state: TxnState::Empty,
                        partitions: TxnPartitions::new(),
                        start_ms: -1,
                        last_update_ms: now_ms,
                        client_version: 0,
                    }),
                );
            }
            let Some(e) = st.txns.get_mut(id) else {
                return Err(E::CoordinatorNotAvailable);
            };
            if e.pending.is_some() {
                return Err(E::ConcurrentTransactions);
            }
            let m = &e.meta;
            if let Some((xpid, xepoch)) = expected {
                let valid = m.epoch == NO_EPOCH
                    || xpid == m.producer_id
                    || (xpid == m.prev_producer_id && epoch_exhausted(xepoch));
                if !valid {
                    return Err(E::ProducerFenced);
                }
            }
            match m.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    return Err(E::ConcurrentTransactions)
                }
                TxnState::Ongoing => {
                    let (transit, durable) = self.begin_fence(e, id, now_ms)?;
                    break 'step (transit, true, durable);
                }
                TxnState::Dead | TxnState::PrepareEpochFence => {
                    return Err(E::ConcurrentTransactions)
                }
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {}
            }
            let mut t = m.transit(TxnState::Empty, now_ms);
            t.timeout_ms = transaction_timeout_ms;
            t.partitions.clear();
            t.start_ms = -1;
            if epoch_exhausted(m.epoch) && expected.is_none_or(|(_, x)| x == m.epoch) {
                // Kafka's prepareProducerIdRotation.
                t.producer_id = self.ids.next_producer_id()?;
                t.epoch = 0;
                t.last_epoch = if expected.is_some() {
                    m.epoch
                } else {
                    NO_EPOCH
                };
            } else {
                match expected {
                    None => {
                        t.epoch = m.epoch.saturating_add(1);
                        t.last_epoch = NO_EPOCH;
                    }
                    Some((_, x))
                        if (m.epoch == NO_EPOCH || x == m.epoch) && !epoch_exhausted(m.epoch) =>
                    {
                        t.epoch = m.epoch + 1;
                        t.last_epoch = m.epoch;
                    }
                    // A retry of a bump whose answer was lost: the same answer again.
                    Some((_, x)) if x == m.last_epoch => {}
                    Some((_, x)) => {
                        tracing::info!(
                            transactional_id = id,
                            expected = x,
                            epoch = m.epoch,
                            last_epoch = m.last_epoch,
                            "fencing an InitProducerId with a stale epoch"
                        );
                        return Err(E::ProducerFenced);
                    }
                }
            }
            let durable = self.begin_write(e, id, &t)?;
            (t, false, durable)
        };
        if fencing {
            // The ongoing transaction is being aborted: the client retries until it is.
            self.finish_prepare(id, transit, true, durable).await?;
            return Err(E::ConcurrentTransactions);
        }
        self.finish_write(id, &transit, durable).await?;
        tracing::info!(
            transactional_id = id,
            producer_id = transit.producer_id,
            epoch = transit.epoch,
            "initialized a transactional producer"
        );
        Ok((transit.producer_id, transit.epoch))
    }

    /// Add partitions to the transaction: AddPartitionsToTxn (v0-v3, and v4 without
    /// verification) with `transaction_version_2` false, and the implicit add of a TV2
    /// produce or TxnOffsetCommit with it true. Answers once the new partition set is
    /// durable (at once when nothing is new).
    pub async fn add_partitions(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        transaction_version_2: bool,
    ) -> Result<(), E> {
        self.check_loaded()?;
        let id = transactional_id;
        if id.is_empty() {
            return Err(E::InvalidRequest);
        }
        let now_ms = self.clock.now_ms();
        let (transit, durable) = {
            let mut st = self.lock();
            let Some(e) = st.txns.get_mut(id) else {
                return Err(E::InvalidProducerIdMapping);
            };
            // Kafka 4's order: a pending transition first.
            if e.pending.is_some() {
                return Err(E::ConcurrentTransactions);
            }
            let m = &e.meta;
            if m.producer_id != producer_id {
                return Err(E::InvalidProducerIdMapping);
            }
            if m.epoch != epoch {
                return Err(E::ProducerFenced);
            }
            match m.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    return Err(E::ConcurrentTransactions)
                }
                TxnState::Ongoing if partitions.iter().all(|p| has(&m.partitions, p)) => {
                    return Ok(())
                }
                TxnState::Dead | TxnState::PrepareEpochFence => return Err(E::InvalidTxnState),
                _ => {}
            }
            let mut t = m.transit(TxnState::Ongoing, now_ms);
            if matches!(
                m.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            ) {
                t.start_ms = now_ms;
            }
            for (topic, p) in partitions {
                match t.partitions.get_mut(topic) {
                    Some(ps) => {
                        ps.insert(*p);
                    }
                    None => {
                        t.partitions.insert(topic.clone(), BTreeSet::from([*p]));
                    }
                }
            }
            t.client_version = if transaction_version_2 { 2 } else { 0 };
            let durable = self.begin_write(e, id, &t)?;
            (t, durable)
        };
        self.finish_write(id, &transit, durable).await
    }

    /// Verify-only AddPartitionsToTxn (KIP-890 part 1, from a partition leader): each
    /// partition is Ok if it is in the ongoing transaction, else TRANSACTION_ABORTABLE
    /// (Kafka 4's answer; the broker maps it for older produce versions). Whole-request
    /// errors are given for every partition.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Vec<((String, i32), Result<(), E>)> {
        let all = |err: E| partitions.iter().map(|p| (p.clone(), Err(err))).collect();
        if let Err(err) = self.check_loaded() {
            return all(err);
        }
        if transactional_id.is_empty() {
            return all(E::InvalidRequest);
        }
        let st = self.lock();
        let Some(e) = st.txns.get(transactional_id) else {
            return all(E::InvalidProducerIdMapping);
        };
        let m = &e.meta;
        if m.producer_id != producer_id {
            return all(E::InvalidProducerIdMapping);
        }
        if m.epoch != epoch {
            return all(E::ProducerFenced);
        }
        if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return all(E::ConcurrentTransactions);
        }
        partitions
            .iter()
            .map(|p| {
                let r = if has(&m.partitions, p) {
                    Ok(())
                } else {
                    Err(E::TransactionAbortable)
                };
                (p.clone(), r)
            })
            .collect()
    }

    /// EndTxn: commit or abort. Answers once PrepareCommit/PrepareAbort is durable; the
    /// markers and the Complete* record follow in a spawned task. Returns the producer
    /// id and epoch (with TV2 the bumped epoch, or the next producer id at epoch 0 when
    /// the epoch was exhausted). A retry of a completed end succeeds; the other outcome
    /// is INVALID_TXN_STATE.
    pub async fn end_txn(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        transaction_version_2: bool,
    ) -> Result<(i64, i16), E> {
        self.check_loaded()?;
        let id = transactional_id;
        if id.is_empty() {
            return Err(E::InvalidRequest);
        }
        let now_ms = self.clock.now_ms();
        let (transit, fence, durable) = {
            let mut st = self.lock();
            let Some(e) = st.txns.get_mut(id) else {
                return Err(E::InvalidProducerIdMapping);
            };
            match self.plan_end(
                e,
                id,
                producer_id,
                epoch,
                commit,
                transaction_version_2,
                true,
                now_ms,
            )? {
                EndPlan::Done(pid, epoch) => return Ok((pid, epoch)),
                EndPlan::Write { transit, fence } => {
                    let durable = self.begin_write(e, id, &transit)?;
                    (transit, fence, durable)
                }
            }
        };
        self.finish_prepare(id, transit, fence, durable).await
    }

    // ----- timers -----

    /// Abort transactions past their timeout (bumping the epoch, which fences their
    /// producer) every `transaction.abort.timed.out.transaction.cleanup.interval.ms`, and
    /// expire transactional ids idle past `transactional.id.expiration.ms` (tombstones)
    /// every `transaction.remove.expired.transaction.cleanup.interval.ms`. Returns the
    /// next deadline.
    pub fn tick(self: &Arc<Self>) -> Option<Instant> {
        let now = self.clock.now();
        let now_ms = self.clock.now_ms();
        let abort_every = Duration::from_millis(self.cfg.abort_timed_out_interval_ms.max(1) as u64);
        let expire_every = Duration::from_millis(self.cfg.remove_expired_interval_ms.max(1) as u64);
        let mut st = self.lock();
        let loaded = self.loaded.load(Ordering::Acquire);
        let abort_at = *st.next_abort_check.get_or_insert(now + abort_every);
        if loaded && abort_at <= now {
            st.next_abort_check = Some(now + abort_every);
            self.abort_timed_out(&mut st, now_ms);
        }
        let expire_at = *st.next_expire_check.get_or_insert(now + expire_every);
        if loaded && expire_at <= now {
            st.next_expire_check = Some(now + expire_every);
            self.expire_ids(&mut st, now_ms);
        }
        let a = st.next_abort_check.unwrap_or(now + abort_every);
        let x = st.next_expire_check.unwrap_or(now + expire_every);
        Some(a.min(x))
    }

    fn abort_timed_out(self: &Arc<Self>, st: &mut State, now_ms: i64) {
        let due: Vec<String> = st
            .txns
            .iter()
            .filter(|(_, e)| {
                e.pending.is_none()
                    && e.meta.state == TxnState::Ongoing
                    && e.meta.start_ms.saturating_add(i64::from(e.meta.timeout_ms)) < now_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let Some(e) = st.txns.get_mut(&id) else {
                continue;
            };
            match self.begin_fence(e, &id, now_ms) {
                Ok((transit, durable)) => {
                    tracing::info!(transactional_id = %id, producer_id = transit.producer_id, epoch = transit.epoch, "aborting a timed-out transaction");
                    let me = self.clone();
                    self.spawn.spawn(Box::pin(async move {
                        if let Err(err) = me.finish_prepare(&id, transit, true, durable).await {
                            tracing::warn!(transactional_id = %id, error = ?err, "aborting a timed-out transaction failed");
                        }
                    }));
                }
                Err(err) => {
                    tracing::warn!(transactional_id = %id, error = ?err, "could not abort a timed-out transaction")
                }
            }
        }
    }

    fn expire_ids(self: &Arc<Self>, st: &mut State, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(self.cfg.id_expiration_ms);
        let mut by_partition: BTreeMap<i32, Vec<(String, i16)>> = BTreeMap::new();
        for (id, e) in st.txns.iter_mut() {
            if e.pending.is_none()
                && e.meta.state.expiration_allowed()
                && e.meta.last_update_ms <= cutoff
            {
                by_partition
                    .entry(self.partition_for(id))
                    .or_default()
                    .push((id.clone(), e.meta.epoch));
            }
        }
        for (p, ids) in by_partition {
            let recs: Vec<LogRecord> = ids
                .iter()
                .map(|(id, _)| (records::encode_key(id), None))
                .collect();
            let durable = match self.log.append(p, &recs) {
                Ok((_, end)) => self.log.wait_durable(p, end),
                Err(err) => {
                    tracing::warn!(partition = p, error = ?err, "writing expired transactional ids failed");
                    continue;
                }
            };
            for (id, _) in &ids {
                if let Some(e) = st.txns.get_mut(id) {
                    e.pending = Some(TxnState::Dead);
                }
            }
            let me = self.clone();
            self.spawn.spawn(Box::pin(async move {
                let result = durable.await;
                let mut st = me.lock();
                for (id, epoch) in ids {
                    let Some(e) = st.txns.get_mut(&id) else {
                        continue;
                    };
                    if e.pending != Some(TxnState::Dead) {
                        continue;
                    }
                    if result.is_ok() && e.meta.epoch == epoch {
                        st.txns.remove(&id);
                        tracing::info!(transactional_id = %id, "expired an idle transactional id");
                    } else {
                        e.pending = None;
                    }
                }
            }));
        }
    }

    // ----- admin -----

    /// DescribeTransactions: per id, its transaction or the error (INVALID_REQUEST for
    /// an empty id, TRANSACTIONAL_ID_NOT_FOUND for an unknown or expiring one).
    pub fn describe(&self, ids: &[String]) -> Vec<(String, Result<TxnDescription, E>)> {
        let loaded = self.check_loaded();
        let st = self.lock();
        ids.iter()
            .map(|id| {
                let r = loaded.and_then(|()| {
                    if id.is_empty() {
                        return Err(E::InvalidRequest);
                    }
                    let e = st.txns.get(id).ok_or(E::TransactionalIdNotFound)?;
                    let m = &e.meta;
                    if m.state == TxnState::Dead {
                        return Err(E::TransactionalIdNotFound);
                    }
                    let topics: Vec<(String, Vec<i32>)> = m
                        .partitions
                        .iter()
                        .filter(|(_, ps)| !ps.is_empty())
                        .map(|(t, ps)| (t.clone(), ps.iter().copied().collect()))
                        .collect();
                    Ok(TxnDescription {
                        state: m.state.name(),
                        producer_id: m.producer_id,
                        producer_epoch: m.epoch,
                        timeout_ms: m.timeout_ms,
                        start_ms: m.start_ms,
                        topics,
                    })
                });
                (id.clone(), r)
            })
            .collect()
    }

    /// ListTransactions (KIP-664, with KIP-994's duration filter and KIP-1152's
    /// transactional id pattern): empty filters match everything; a non-negative
    /// `duration_filter_ms` keeps transactions running longer than it; a non-empty `id_pattern` is an
    /// RE2 regex the whole transactional id must match (INVALID_REGULAR_EXPRESSION if it
    /// does not compile; Kafka's message is "Transaction ID pattern `{pattern}` is not a
    /// valid regular expression: {why}."). Sorted by transactional id.
    pub fn list(
        &self,
        state_filters: &[String],
        producer_id_filters: &[i64],
        duration_filter_ms: i64,
        id_pattern: Option<&str>,
    ) -> Result<TxnListing, E> {
        self.check_loaded()?;
        let pattern = match id_pattern.filter(|p| !p.is_empty()) {
            Some(p) => Some(
                crate::group::topic_regex::TopicRegex::new(p)
                    .map_err(|_| E::InvalidRegularExpression)?,
            ),
            None => None,
        };
        let mut out = TxnListing::default();
        let mut states = Vec::new();
        for name in state_filters {
            match TxnState::from_name(name) {
                Some(s) => states.push(s),
                None => out.unknown_state_filters.push(name.clone()),
            }
        }
        let now_ms = self.clock.now_ms();
        let st = self.lock();
        for (id, e) in &st.txns {
            let m = &e.meta;
            if m.state == TxnState::Dead
                || (!producer_id_filters.is_empty()
                    && !producer_id_filters.contains(&m.producer_id))
                || (!state_filters.is_empty() && !states.contains(&m.state))
                || (duration_filter_ms >= 0 && now_ms - m.start_ms <= duration_filter_ms)
                || pattern.as_ref().is_some_and(|p| !p.matches(id))
            {
                continue;
            }
            out.transactions.push(ListedTxn {
                transactional_id: id.clone(),
                producer_id: m.producer_id,
                state: m.state.name(),
            });
        }
        out.transactions
            .sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
