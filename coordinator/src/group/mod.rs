//! The group coordinator: consumer groups and their committed offsets.
//!
//! - [`classic`]: the classic protocol's state machine (JoinGroup/SyncGroup/Heartbeat/
//!   LeaveGroup), sans-io.
//! - [`consumer`]: the consumer group protocol (KIP-848: ConsumerGroupHeartbeat, member
//!   epochs, reconciliation), sans-io; [`assignor`]: its server-side assignors.
//!   Consumer groups are persisted as Kafka's KIP-848 records (group epoch, member
//!   metadata, target and current assignments, resolved regexes; keys 3, 5-8, 16) and
//!   rebuilt on start with their members, epochs and assignments; members' sessions
//!   restart on load. [`topic_regex`]: subscribed regexes, compiled and bounded.
//! - [`records`]: the `__consumer_offsets` key/value formats, as Kafka writes them.
//! - [`GroupCoordinator`] (this file): the groups and offsets behind one mutex, the
//!   writes to `__consumer_offsets` (through [`CoordinatorLog`]), the replay on start and
//!   the timer driver.
//!
//! Durability: a commit is appended to the group's `__consumer_offsets` partition under
//! the coordinator lock (so the log order is the state order), acknowledged only after
//! that partition's flusher fsynced past it, and only then visible to OffsetFetch. The
//! leader's assignment is made durable before any member gets it (Kafka's `storeGroup`).
//! A consumer group's records are diffed against what was last written (only changes and
//! tombstones are appended) under the lock after each heartbeat, and the heartbeat is
//! answered once they are durable; expiries found by the timer and conversions to a
//! classic group are written without anyone waiting. The diff re-encodes the group's
//! records on every heartbeat (linear in its members).
//!
//! Transactions (KIP-98, KIP-447): a TxnOffsetCommit is one transactional batch of the
//! producer in the group's partition. Its offsets are pending per (producer, group)
//! from the append on: invisible to OffsetFetch (with `require_stable` the partition
//! answers UNSTABLE_OFFSET_COMMIT), committed or dropped when the transaction's marker
//! is written ([`GroupCoordinator::complete_txn`]) or replayed. A committed one replaces
//! the current offset only if its record is later in the log (Kafka's rule), so a
//! plain commit written after it wins. Markers are per partition: each applies to the
//! groups of its partition only.
//!
//! Locking: one `std::sync::Mutex` over all groups, never held across an `.await`.
//! Parked JoinGroup/SyncGroup requests wait on oneshot channels outside it.
//!
//! Limits: `group.max.size` members per group (also bounds pending member ids, which
//! expire after the session timeout), `group.coordinator.max.groups` groups,
//! `offset.metadata.max.bytes` per commit metadata string.

pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod records;
pub mod topic_regex;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages as m;
use kafka_protocol::protocol::{Decodable, StrBytes};

use classic::{ClassicGroup, ClassicLimits, ClassicState, JoinRequest, Reply, Store};
use consumer::{ConsumerConfig, ConsumerGroup, HeartbeatIn, HeartbeatOut, Topics};
use records::{GroupValue, OffsetValue, RecordKey};

// The generic pieces, also under this module's path for the broker's convenience.
pub use crate::log::{CoordinatorLog, DurableFuture, LogRecord, Replayed};
use crate::runtime::{Clock, Spawn, Wake};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The topics of a consumer-protocol subscription (`ConsumerProtocolSubscription`).
pub fn decode_subscription(meta: &[u8]) -> Option<Vec<String>> {
    if meta.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([meta[0], meta[1]]).clamp(0, 3);
    let mut buf = Bytes::copy_from_slice(&meta[2..]);
    let s = m::ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
    Some(s.topics.iter().map(|t| t.to_string()).collect())
}

/// Coordinator settings, by Kafka's names.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub classic: ClassicLimits,
    pub consumer: ConsumerConfig,
    pub max_groups: usize,
    pub offsets_partitions: i32,
    pub offset_metadata_max_bytes: usize,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            classic: ClassicLimits::default(),
            consumer: ConsumerConfig::default(),
            max_groups: 100_000,
            offsets_partitions: 50,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 10080 * 60_000,
            offsets_retention_check_interval_ms: 600_000,
        }
    }
}

pub enum Group {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

impl Group {
    fn tick(
        &mut self,
        cfg: &GroupConfig,
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) -> Option<Instant> {
        match self {
            Group::Classic(g) => g.tick(&cfg.classic, now, now_ms, stores),
            Group::Consumer(g) => g.tick(&cfg.consumer, now, now_ms),
        }
    }
}

#[derive(Debug, Clone)]
struct Committed {
    value: OffsetValue,
    /// Where the record is in `__consumer_offsets`: a later write wins.
    record_offset: u64,
}

/// A group's offsets by (topic, partition).
type GroupOffsets = BTreeMap<(String, i32), Committed>;

#[derive(Default)]
struct State {
    groups: HashMap<String, Group>,
    offsets: HashMap<String, BTreeMap<(String, i32), Committed>>,
    /// Replay state: the newest group record per group.
    loaded_groups: HashMap<String, Option<(GroupValue, u64)>>,
    /// Replay state: the live KIP-848 records per consumer group (key → value).
    loaded_consumer: HashMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
    /// The KIP-848 records last written per consumer group (key → value), to write
    /// only what changed and tombstone what went away.
    consumer_written: HashMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
    next_retention_check: Option<Instant>,
    /// Transactional offsets (TxnOffsetCommit) waiting for their transaction's marker:
    /// producer id → group → partition. Not visible to OffsetFetch.
    pending: HashMap<i64, HashMap<String, GroupOffsets>>,
    /// The producers with pending offsets, per group (Kafka's `openTransactionsByGroup`).
    open_txns: HashMap<String, HashSet<i64>>,
}

impl State {
    fn add_pending(&mut self, producer_id: i64, group: &str, tp: (String, i32), c: Committed) {
        self.pending
            .entry(producer_id)
            .or_default()
            .entry(group.to_string())
            .or_default()
            .insert(tp, c);
        self.open_txns
            .entry(group.to_string())
            .or_default()
            .insert(producer_id);
    }

    /// Is a transactional offset of any open transaction pending for the partition?
    fn has_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        let Some(producers) = self.open_txns.get(group) else {
            return false;
        };
        let tp = (topic.to_string(), partition);
        producers.iter().any(|pid| {
            self.pending
                .get(pid)
                .and_then(|g| g.get(group))
                .is_some_and(|o| o.contains_key(&tp))
        })
    }

    /// The partitions of a group with pending offsets (any producer).
    fn pending_partitions(&self, group: &str) -> HashSet<(String, i32)> {
        let mut out = HashSet::new();
        for pid in self.open_txns.get(group).into_iter().flatten() {
            if let Some(o) = self.pending.get(pid).and_then(|g| g.get(group)) {
                out.extend(o.keys().cloned());
            }
        }
        out
    }

    /// An offset tombstone also drops the partition's pending offsets (Kafka's replay).
    fn drop_pending_partition(&mut self, group: &str, tp: &(String, i32)) {
        for pid in self.open_txns.get(group).into_iter().flatten() {
            if let Some(o) = self.pending.get_mut(pid).and_then(|g| g.get_mut(group)) {
                o.remove(tp);
            }
        }
    }

    /// Forget the producer's entry for a group once nothing of it is pending there.
    fn tidy_pending(&mut self, producer_id: i64, group: &str) {
        let Some(groups) = self.pending.get_mut(&producer_id) else {
            return;
        };
        if groups.get(group).is_some_and(|o| o.is_empty()) {
            groups.remove(group);
            if groups.is_empty() {
                self.pending.remove(&producer_id);
            }
            if let Some(open) = self.open_txns.get_mut(group) {
                open.remove(&producer_id);
                if open.is_empty() {
                    self.open_txns.remove(group);
                }
            }
        }
    }

    /// Forget every pending offset of a group (the group is deleted).
    fn drop_pending_group(&mut self, group: &str) {
        for pid in self.open_txns.remove(group).into_iter().flatten() {
            if let Some(groups) = self.pending.get_mut(&pid) {
                groups.remove(group);
                if groups.is_empty() {
                    self.pending.remove(&pid);
                }
            }
        }
    }

    /// The marker of `producer_id`'s transaction is in `partition` (for the groups
    /// `on_partition` says live there): move its pending offsets there to the committed
    /// ones (commit) or drop them (abort). A committed offset replaces the current one
    /// only if its record is later in the log (Kafka's `replayEndTransactionMarker`):
    /// an OffsetCommit written after the transactional one wins.
    fn end_txn(&mut self, producer_id: i64, commit: bool, on_partition: impl Fn(&str) -> bool) {
        let Some(mut groups) = self.pending.remove(&producer_id) else {
            return;
        };
        let done: Vec<String> = groups.keys().filter(|g| on_partition(g)).cloned().collect();
        for group in done {
            let Some(offsets) = groups.remove(&group) else {
                continue;
            };
            if let Some(open) = self.open_txns.get_mut(&group) {
                open.remove(&producer_id);
                if open.is_empty() {
                    self.open_txns.remove(&group);
                }
            }
            if !commit {
                continue;
            }
            let committed = self.offsets.entry(group).or_default();
            for (tp, c) in offsets {
                match committed.get(&tp) {
                    Some(e) if e.record_offset >= c.record_offset => {}
                    _ => {
                        committed.insert(tp, c);
                    }
                }
            }
        }
        if !groups.is_empty() {
            self.pending.insert(producer_id, groups);
        }
    }
}

/// One item of an OffsetCommit that passed the per-partition checks.
#[derive(Debug, Clone)]
pub struct CommitItem {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// Who sends a TxnOffsetCommit (v0-v5): the transaction and, from v3, the group member.
/// Before v3 the member fields are their defaults (`""`, -1, `None`).
#[derive(Debug, Clone)]
pub struct TxnCommitter {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
}

/// The committed offsets of a group's partitions as OffsetFetch answers them: per
/// topic, per partition the offset (`None`: none committed) or the partition's error.
/// The `__consumer_offsets` records of a commit of `offsets` by `group_id`.
fn offset_records(group_id: &str, offsets: &[((String, i32), OffsetValue)]) -> Vec<LogRecord> {
    offsets
        .iter()
        .map(|((t, p), v)| {
            (
                records::offset_key(group_id, t, *p),
                Some(records::encode_offset_value(v)),
            )
        })
        .collect()
}

pub type FetchedOffsets = Vec<(String, Vec<(i32, Result<Option<OffsetValue>, E>)>)>;

pub struct GroupCoordinator {
    pub cfg: GroupConfig,
    log: Arc<dyn CoordinatorLog>,
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    spawn: Arc<dyn Spawn>,
    /// The timer driver's wake-up, once it registered (see [`GroupCoordinator::set_waker`]).
    wake: OnceLock<Wake>,
}

fn classic_mut<'a>(st: &'a mut State, group: &str) -> Option<&'a mut ClassicGroup> {
    match st.groups.get_mut(group) {
        Some(Group::Classic(g)) => Some(g),
        _ => None,
    }
}

impl GroupCoordinator {
    /// `clock` is the time every request and [`tick`](Self::tick) uses; `spawn` runs
    /// the tasks that answer a SyncGroup (or a static member's JoinGroup) once the group
    /// metadata it waits for is durable.
    pub fn new(
        cfg: GroupConfig,
        log: Arc<dyn CoordinatorLog>,
        clock: Arc<dyn Clock>,
        spawn: Arc<dyn Spawn>,
    ) -> Arc<GroupCoordinator> {
        Arc::new(GroupCoordinator {
            cfg,
            log,
            state: Mutex::new(State::default()),
            clock,
            spawn,
            wake: OnceLock::new(),
        })
    }

    /// The clock the coordinator was given.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::poison::or_stop(self.state.lock(), "group coordinator")
    }

    pub fn partition_for(&self, group: &str) -> i32 {
        records::partition_for(group, self.log.partitions())
    }

    // ----- start: replay and the timer driver -----

    /// Feed one record of `__consumer_offsets` (replay on start), in log order.
    pub fn load_record(&self, key: &[u8], value: Option<&[u8]>, offset: u64) {
        self.load_record_from(key, value, offset, None)
    }

    /// [`Self::load_record`] for a record of a transactional batch of `producer_id`
    /// (`None`: a plain batch). A transactional offset commit stays pending until its
    /// marker is replayed ([`Self::load_marker`]).
    pub fn load_record_from(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        offset: u64,
        producer_id: Option<i64>,
    ) {
        let mut st = self.lock();
        let raw_key = key;
        let key = match records::decode_key(key) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, offset, "skipping an unreadable __consumer_offsets key");
                return;
            }
        };
        match key {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => match value {
                None => {
                    let tp = (topic, partition);
                    if let Some(o) = st.offsets.get_mut(&group) {
                        o.remove(&tp);
                    }
                    st.drop_pending_partition(&group, &tp);
                }
                Some(v) => match records::decode_offset_value(v) {
                    Ok(value) => {
                        let c = Committed {
                            value,
                            record_offset: offset,
                        };
                        match producer_id {
                            Some(pid) => st.add_pending(pid, &group, (topic, partition), c),
                            None => {
                                st.offsets
                                    .entry(group)
                                    .or_default()
                                    .insert((topic, partition), c);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %group, "skipping an unreadable offset commit")
                    }
                },
            },
            RecordKey::ConsumerPartitionMetadata { .. } => {}
            RecordKey::ConsumerGroup { group }
            | RecordKey::ConsumerMember { group, .. }
            | RecordKey::ConsumerTargetMetadata { group }
            | RecordKey::ConsumerTargetMember { group, .. }
            | RecordKey::ConsumerCurrentAssignment { group, .. }
            | RecordKey::ConsumerRegex { group, .. } => {
                let recs = st.loaded_consumer.entry(group).or_default();
                match value {
                    None => {
                        recs.remove(raw_key);
                    }
                    Some(v) => {
                        recs.insert(raw_key.to_vec(), v.to_vec());
                    }
                }
            }
            RecordKey::Group { group } => match value {
                None => {
                    st.loaded_groups.insert(group.clone(), None);
                }
                Some(v) => match records::decode_group_value(v) {
                    Ok(g) => {
                        st.loaded_groups.insert(group, Some((g, offset)));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %group, "skipping unreadable group metadata")
                    }
                },
            },
        }
    }

    /// After replay: build the groups. Groups with offsets but no metadata become empty
    /// classic groups, as in Kafka. `topic_name` maps a topic id back to its name and
    /// `topics` gives a topic's id and partition count (for consumer groups).
    pub fn finish_load(
        &self,
        topic_name: &dyn Fn(&uuid::Uuid) -> Option<String>,
        topics: &dyn Topics,
    ) {
        let now = self.clock.now();
        let mut st = self.lock();
        let loaded = std::mem::take(&mut st.loaded_groups);
        let delay = self.cfg.classic.initial_rebalance_delay_ms;
        for (id, v) in loaded {
            if let Some((v, _)) = v {
                st.groups.insert(
                    id.clone(),
                    Group::Classic(ClassicGroup::from_value(&id, &v, now, delay)),
                );
            }
        }
        let loaded = std::mem::take(&mut st.loaded_consumer);
        for (id, recs) in loaded {
            if recs.is_empty() {
                continue;
            }
            if let Some(g) = self.restore_consumer_group(
                &id,
                &recs,
                topic_name,
                topics,
                now,
                self.clock.now_ms(),
            ) {
                let members = g.members.len();
                tracing::info!(group = %id, members, epoch = g.group_epoch, "restored a consumer group");
                st.groups.insert(id.clone(), Group::Consumer(g));
            }
            // What is in the log, so that later writes tombstone what goes away.
            st.consumer_written.insert(id, recs);
        }
        st.offsets.retain(|_, o| !o.is_empty());
        // A transaction still open at the end of the log stays pending: its marker is
        // written later. Its group exists meanwhile, as in Kafka.
        let ids: Vec<String> = st
            .offsets
            .keys()
            .chain(st.open_txns.keys())
            .cloned()
            .collect();
        for id in ids {
            st.groups.entry(id.clone()).or_insert_with(|| {
                Group::Classic(ClassicGroup::new(&id, self.clock.now_ms(), delay))
            });
        }
        let (groups, offsets, open_txns) = (
            st.groups.len(),
            st.offsets.values().map(|o| o.len()).sum::<usize>(),
            st.pending.len(),
        );
        tracing::info!(
            groups,
            offsets,
            open_txns,
            "loaded groups and committed offsets"
        );
    }

    fn restore_consumer_group(
        &self,
        id: &str,
        recs: &BTreeMap<Vec<u8>, Vec<u8>>,
        topic_name: &dyn Fn(&uuid::Uuid) -> Option<String>,
        topics: &dyn Topics,
        now: Instant,
        now_ms: i64,
    ) -> Option<ConsumerGroup> {
        let mut group_epoch = None;
        let mut assignment_epoch = 0;
        let mut members: BTreeMap<String, consumer::LoadedMember> = BTreeMap::new();
        let mut targets: HashMap<String, Vec<(uuid::Uuid, Vec<i32>)>> = HashMap::new();
        let mut currents: HashMap<String, records::CurrentAssignmentValue> = HashMap::new();
        let mut regexes = Vec::new();
        for (k, v) in recs {
            let parsed = match records::decode_key(k) {
                Ok(RecordKey::ConsumerGroup { .. }) => {
                    records::decode_epoch_value(v).map(|e| group_epoch = Some(e))
                }
                Ok(RecordKey::ConsumerTargetMetadata { .. }) => {
                    records::decode_epoch_value(v).map(|e| assignment_epoch = e)
                }
                Ok(RecordKey::ConsumerMember { member, .. }) => {
                    records::decode_consumer_member_value(v).map(|meta| {
                        members.insert(
                            member.clone(),
                            consumer::LoadedMember {
                                id: member,
                                meta,
                                target: Vec::new(),
                                current: None,
                            },
                        );
                    })
                }
                Ok(RecordKey::ConsumerTargetMember { member, .. }) => {
                    records::decode_target_member_value(v).map(|t| {
                        targets.insert(member, t);
                    })
                }
                Ok(RecordKey::ConsumerCurrentAssignment { member, .. }) => {
                    records::decode_current_assignment_value(v).map(|c| {
                        currents.insert(member, c);
                    })
                }
                Ok(RecordKey::ConsumerRegex { regex, .. }) => {
                    records::decode_regex_value(v).map(|r| regexes.push((regex, r)))
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = parsed {
                tracing::warn!(group = id, error = %e, "skipping an unreadable consumer group record");
            }
        }
        let group_epoch = group_epoch?;
        let loaded = members
            .into_values()
            .map(|mut m| {
                m.target = targets.remove(&m.id).unwrap_or_default();
                m.current = currents.remove(&m.id);
                m
            })
            .collect();
        Some(ConsumerGroup::restore(
            id,
            group_epoch,
            assignment_epoch,
            loaded,
            regexes,
            topic_name,
            topics,
            &self.cfg.consumer,
            now,
            now_ms,
        ))
    }

    /// The KIP-848 records to append for `group_id` (what changed since the last write,
    /// tombstones for what went away; everything goes away when the group is no longer
    /// a consumer group), and the new written state to keep once they are appended.
    fn consumer_diff(st: &State, group_id: &str) -> (Vec<LogRecord>, BTreeMap<Vec<u8>, Vec<u8>>) {
        let new = match st.groups.get(group_id) {
            Some(Group::Consumer(g)) => g.records(),
            _ => BTreeMap::new(),
        };
        let mut recs = Vec::new();
        if let Some(old) = st.consumer_written.get(group_id) {
            for k in old.keys() {
                if !new.contains_key(k) {
                    recs.push((k.clone(), None));
                }
            }
            for (k, v) in &new {
                if old.get(k) != Some(v) {
                    recs.push((k.clone(), Some(v.clone())));
                }
            }
        } else {
            recs.extend(new.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
        }
        (recs, new)
    }

    fn set_consumer_written(st: &mut State, group_id: &str, new: BTreeMap<Vec<u8>, Vec<u8>>) {
        if new.is_empty() {
            st.consumer_written.remove(group_id);
        } else {
            st.consumer_written.insert(group_id.to_string(), new);
        }
    }

    /// Append what changed in a consumer group (under the lock, so the log order is the
    /// state order, with `extra` records first); returns the wait for durability.
    fn persist_consumer(
        &self,
        st: &mut State,
        group_id: &str,
        extra: Vec<LogRecord>,
    ) -> Result<Option<DurableFuture>, E> {
        let (recs, new) = Self::consumer_diff(st, group_id);
        let mut all = extra;
        all.extend(recs);
        if all.is_empty() {
            return Ok(None);
        }
        let p = self.partition_for(group_id);
        let (_, end) = self.log.append(p, &all)?;
        Self::set_consumer_written(st, group_id, new);
        Ok(Some(self.log.wait_durable(p, end)))
    }

    /// Register the timer driver's wake-up: called whenever a deadline may have moved
    /// earlier than what [`tick`](Self::tick) last returned. The driver calls `tick` at
    /// (or before) the deadline it returned, and again after each wake-up. Only one
    /// driver: a second registration is refused and handed back.
    pub fn set_waker(&self, wake: Wake) -> Result<(), Wake> {
        self.wake.set(wake)
    }

    /// Fire due timers (sessions, rebalances, offset retention); returns the next
    /// deadline.
    pub fn tick(self: &Arc<Self>) -> Option<Instant> {
        let now = self.clock.now();
        let now_ms = self.clock.now_ms();
        let mut st = self.lock();
        let mut next: Option<Instant> = None;
        let ids: Vec<String> = st.groups.keys().cloned().collect();
        for id in ids {
            let mut stores = Vec::new();
            let mut consumer_epoch = None;
            let n = match st.groups.get_mut(&id) {
                Some(g) => {
                    if let Group::Consumer(c) = g {
                        consumer_epoch = Some(c.group_epoch);
                    }
                    g.tick(&self.cfg, now, now_ms, &mut stores)
                }
                None => None,
            };
            self.apply_stores(&mut st, &id, stores);
            let changed = match (consumer_epoch, st.groups.get(&id)) {
                (Some(before), Some(Group::Consumer(c))) => c.group_epoch != before,
                _ => false,
            };
            if changed {
                // Expired members: their tombstones need not be waited for.
                if let Err(e) = self.persist_consumer(&mut st, &id, Vec::new()) {
                    tracing::warn!(group = %id, error = ?e, "writing consumer group state failed");
                }
            }
            if let Some(n) = n {
                next = Some(next.map_or(n, |x: Instant| x.min(n)));
            }
        }
        let check = *st.next_retention_check.get_or_insert_with(|| {
            now + Duration::from_millis(self.cfg.offsets_retention_check_interval_ms as u64)
        });
        if check <= now {
            st.next_retention_check = Some(
                now + Duration::from_millis(self.cfg.offsets_retention_check_interval_ms as u64),
            );
            self.expire_offsets(&mut st, now_ms);
        }
        let check = st.next_retention_check.unwrap_or(now);
        Some(next.map_or(check, |n| n.min(check)))
    }

    fn poke(&self) {
        if let Some(wake) = self.wake.get() {
            wake();
        }
    }

    // ----- writes -----

    /// Write what the state machine asked for (under the lock), and finish the waits
    /// of `Sync`/`StaticJoin` in a task once the write is durable.
    fn apply_stores(self: &Arc<Self>, st: &mut State, group_id: &str, stores: Vec<Store>) {
        for store in stores {
            let Some(g) = classic_mut(st, group_id) else {
                return;
            };
            let value = match &store {
                Store::Sync { assignment, .. } => g.to_value(Some(assignment)),
                _ => g.to_value(None),
            };
            let rec = (
                records::group_key(group_id),
                Some(records::encode_group_value(&value)),
            );
            let p = self.partition_for(group_id);
            let written = self.log.append(p, &[rec]);
            let durable = match written {
                Ok((_, end)) => Some(self.log.wait_durable(p, end)),
                Err(e) => {
                    tracing::warn!(group = group_id, error = ?e, "writing group metadata failed");
                    None
                }
            };
            if matches!(store, Store::Group) {
                continue;
            }
            let me = self.clone();
            let group_id = group_id.to_string();
            self.spawn.spawn(Box::pin(async move {
                let result = match durable {
                    Some(f) => f.await,
                    None => Err(E::CoordinatorNotAvailable),
                };
                let result = result.map_err(|_| E::CoordinatorNotAvailable);
                let (now, now_ms) = (me.clock.now(), me.clock.now_ms());
                let mut st = me.lock();
                let mut more = Vec::new();
                if let Some(g) = classic_mut(&mut st, &group_id) {
                    match store {
                        Store::Sync {
                            generation,
                            assignment,
                        } => g.sync_stored(generation, assignment, result, now, now_ms, &mut more),
                        Store::StaticJoin {
                            member_id,
                            skip_assignment,
                            current_leader,
                        } => g.static_join_stored(
                            &member_id,
                            skip_assignment,
                            current_leader,
                            result,
                        ),
                        Store::Group => {}
                    }
                }
                me.apply_stores(&mut st, &group_id, more);
                drop(st);
                me.poke();
            }));
        }
    }

    /// Append records for several groups, grouped per partition; returns the waits.
    fn append_records(
        &self,
        by_group: Vec<(String, Vec<LogRecord>)>,
    ) -> Result<Vec<(i32, u64, u64)>, E> {
        let mut per_partition: BTreeMap<i32, Vec<LogRecord>> = BTreeMap::new();
        for (g, recs) in by_group {
            per_partition
                .entry(self.partition_for(&g))
                .or_default()
                .extend(recs);
        }
        let mut out = Vec::new();
        for (p, recs) in per_partition {
            if recs.is_empty() {
                continue;
            }
            let (first, end) = self.log.append(p, &recs)?;
            out.push((p, first, end));
        }
        Ok(out)
    }

    async fn wait_all(&self, waits: &[(i32, u64, u64)]) -> Result<(), E> {
        for (p, _, end) in waits {
            self.log.wait_durable(*p, *end).await?;
        }
        Ok(())
    }

    // ----- classic protocol -----

    pub fn join(self: &Arc<Self>, group_id: &str, req: JoinRequest) -> Reply<m::JoinGroupResponse> {
        let err = |e: E| {
            Reply::Now(
                m::JoinGroupResponse::default()
                    .with_error_code(e.code())
                    .with_generation_id(-1)
                    .with_member_id(sb(&req.member_id)),
            )
        };
        if group_id.is_empty() {
            return err(E::InvalidGroupId);
        }
        let l = &self.cfg.classic;
        if req.session_timeout_ms < l.min_session_timeout_ms
            || req.session_timeout_ms > l.max_session_timeout_ms
        {
            return err(E::InvalidSessionTimeout);
        }
        let (now, now_ms) = (self.clock.now(), self.clock.now_ms());
        let mut st = self.lock();
        if !st.groups.contains_key(group_id) {
            if !req.member_id.is_empty() {
                return err(E::UnknownMemberId);
            }
            if st.groups.len() >= self.cfg.max_groups {
                tracing::warn!(
                    group = group_id,
                    limit = self.cfg.max_groups,
                    "refusing a new group over group.coordinator.max.groups"
                );
                return err(E::CoordinatorNotAvailable);
            }
            st.groups.insert(
                group_id.to_string(),
                Group::Classic(ClassicGroup::new(
                    group_id,
                    now_ms,
                    l.initial_rebalance_delay_ms,
                )),
            );
        }
        if let Some(Group::Consumer(g)) = st.groups.get(group_id) {
            if !g.is_empty() {
                return err(E::InconsistentGroupProtocol);
            }
            st.groups.insert(
                group_id.to_string(),
                Group::Classic(ClassicGroup::new(
                    group_id,
                    now_ms,
                    l.initial_rebalance_delay_ms,
                )),
            );
            // Tombstone the consumer group's records (not waited for: the classic
            // group's own metadata write follows them in the same partition).
            if let Err(e) = self.persist_consumer(&mut st, group_id, Vec::new()) {
                tracing::warn!(group = group_id, error = ?e, "writing consumer group tombstones failed");
            }
        }
        let mut stores = Vec::new();
        let reply = match st.groups.get_mut(group_id) {
            Some(Group::Classic(g)) => g.join(req, l, now, now_ms, &mut stores),
            _ => return err(E::UnknownMemberId),
        };
        self.apply_stores(&mut st, group_id, stores);
        drop(st);
        self.poke();
        reply
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        self: &Arc<Self>,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Reply<m::SyncGroupResponse> {
        let err = |e: E| Reply::Now(m::SyncGroupResponse::default().with_error_code(e.code()));
        if group_id.is_empty() {
            return err(E::InvalidGroupId);
        }
        let now = self.clock.now();
        let mut st = self.lock();
        let mut stores = Vec::new();
        let reply = match classic_mut(&mut st, group_id) {
            Some(g) => g.sync(
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol_name,
                assignments,
                now,
                &mut stores,
            ),
            None => return err(E::UnknownMemberId),
        };
        self.apply_stores(&mut st, group_id, stores);
        drop(st);
        self.poke();
        reply
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if group_id.is_empty() {
            return E::InvalidGroupId.code();
        }
        let mut st = self.lock();
        let code = match classic_mut(&mut st, group_id) {
            Some(g) => g.heartbeat(member_id, instance_id, generation, self.clock.now()),
            None => E::UnknownMemberId.code(),
        };
        drop(st);
        self.poke();
        code
    }

    /// LeaveGroup: `Err` for the whole request, else each member's error code.
    pub fn leave(
        self: &Arc<Self>,
        group_id: &str,
        leaving: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, E> {
        if group_id.is_empty() {
            return Err(E::InvalidGroupId);
        }
        let (now, now_ms) = (self.clock.now(), self.clock.now_ms());
        let mut st = self.lock();
        let mut stores = Vec::new();
        let out = match classic_mut(&mut st, group_id) {
            Some(g) => g.leave(leaving, now, now_ms, &mut stores),
            None => Ok(vec![E::UnknownMemberId.code(); leaving.len()]),
        };
        self.apply_stores(&mut st, group_id, stores);
        drop(st);
        self.poke();
        out
    }

    // ----- offsets -----

    /// Commit offsets (already checked per partition by the caller). Answers once the
    /// commit is durable. `Err` is for the whole request.
    pub async fn commit_offsets(
        self: &Arc<Self>,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        version: i16,
        items: Vec<CommitItem>,
    ) -> Result<(), E> {
        let now_ms = self.clock.now_ms();
        let waits;
        let staged: Vec<((String, i32), OffsetValue)>;
        {
            let mut st = self.lock();
            match st.groups.get_mut(group_id) {
                None => {
                    if generation >= 0 {
                        return Err(if version >= 9 {
                            E::GroupIdNotFound
                        } else {
                            E::IllegalGeneration
                        });
                    }
                    if st.groups.len() >= self.cfg.max_groups {
                        return Err(E::CoordinatorNotAvailable);
                    }
                    st.groups.insert(
                        group_id.to_string(),
                        Group::Classic(ClassicGroup::new(
                            group_id,
                            now_ms,
                            self.cfg.classic.initial_rebalance_delay_ms,
                        )),
                    );
                }
                Some(Group::Classic(g)) => {
                    g.validate_offset_commit(member_id, instance_id, generation, self.clock.now())?;
                }
                Some(Group::Consumer(g)) => {
                    if version < 9 && !g.is_empty() {
                        return Err(E::UnsupportedVersion);
                    }
                    g.validate_offset_commit(member_id, generation)?;
                }
            }
            if items.is_empty() {
                return Ok(());
            }
            staged = items
                .into_iter()
                .map(|i| {
                    (
                        (i.topic, i.partition),
                        OffsetValue {
                            offset: i.offset,
                            leader_epoch: i.leader_epoch,
                            metadata: i.metadata,
                            commit_timestamp: now_ms,
                            expire_timestamp: -1,
                        },
                    )
                })
                .collect();
            let recs = offset_records(group_id, &staged);
            waits = self.append_records(vec![(group_id.to_string(), recs)])?;
        }
        self.wait_all(&waits)
            .await
            .map_err(|_| E::CoordinatorNotAvailable)?;
        let first = waits.first().map_or(0, |w| w.1);
        let mut st = self.lock();
        let offsets = st.offsets.entry(group_id.to_string()).or_default();
        for (i, (tp, value)) in staged.into_iter().enumerate() {
            let record_offset = first + i as u64;
            match offsets.get(&tp) {
                Some(c) if c.record_offset > record_offset => {}
                _ => {
                    offsets.insert(
                        tp,
                        Committed {
                            value,
                            record_offset,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// TxnOffsetCommit (KIP-98, KIP-447): write `items` as one transactional batch of
    /// the producer to the group's partition and hold them as the producer's pending
    /// offsets until [`Self::complete_txn`]; answers once the batch is durable. Returns
    /// an error code per item, in order: the group's error for all of them (Kafka's
    /// validation), else OFFSET_METADATA_TOO_LARGE for an item whose metadata is over
    /// `offset.metadata.max.bytes` and 0 for the rest. The caller checks ACLs, topics,
    /// partitions, and the transaction with the transaction coordinator.
    pub async fn txn_offset_commit(
        self: &Arc<Self>,
        group_id: &str,
        who: &TxnCommitter,
        items: Vec<CommitItem>,
    ) -> Vec<i16> {
        let n = items.len();
        let all = |e: E| vec![e.code(); n];
        if group_id.is_empty() {
            return all(E::InvalidGroupId);
        }
        if who.producer_id < 0 || who.producer_epoch < 0 {
            // Kafka's record builder refuses a transactional batch without a producer
            // (an unknown server error there); a replay would take it for a plain one.
            return all(E::InvalidProducerIdMapping);
        }
        let now_ms = self.clock.now_ms();
        let partition = self.partition_for(group_id);
        let mut codes = vec![0i16; n];
        let (first, end, staged);
        {
            let mut st = self.lock();
            let checked = match st.groups.get(group_id) {
                None if who.generation < 0 => {
                    if st.groups.len() >= self.cfg.max_groups {
                        Err(E::CoordinatorNotAvailable)
                    } else {
                        // A "simple" group, as for a manual OffsetCommit.
                        st.groups.insert(
                            group_id.to_string(),
                            Group::Classic(ClassicGroup::new(
                                group_id,
                                now_ms,
                                self.cfg.classic.initial_rebalance_delay_ms,
                            )),
                        );
                        Ok(())
                    }
                }
                None => Err(E::IllegalGeneration),
                Some(Group::Classic(g)) => g.validate_txn_offset_commit(
                    &who.member_id,
                    who.instance_id.as_deref(),
                    who.generation,
                ),
                Some(Group::Consumer(g)) => {
                    g.validate_txn_offset_commit(&who.member_id, who.generation)
                }
            };
            if let Err(e) = checked {
                return all(e);
            }
            let max_meta = self.cfg.offset_metadata_max_bytes;
            let mut kept = Vec::with_capacity(n);
            for (i, item) in items.into_iter().enumerate() {
                if item.metadata.len() > max_meta {
                    codes[i] = E::OffsetMetadataTooLarge.code();
                    continue;
                }
                kept.push((
                    (item.topic, item.partition),
                    OffsetValue {
                        offset: item.offset,
                        leader_epoch: item.leader_epoch,
                        metadata: item.metadata,
                        commit_timestamp: now_ms,
                        expire_timestamp: -1,
                    },
                ));
            }
            if kept.is_empty() {
                return codes;
            }
            let recs = offset_records(group_id, &kept);
            match self.log.append_transactional(
                partition,
                who.producer_id,
                who.producer_epoch,
                &recs,
            ) {
                Ok((f, e)) => (first, end) = (f, e),
                Err(e) => return all(e),
            }
            // Pending from the append on, under the lock, so that the marker (which
            // the log orders after this batch) finds them even if it comes before the
            // wait below ends.
            staged = kept
                .into_iter()
                .enumerate()
                .map(|(i, (tp, value))| (tp, first + i as u64, value))
                .collect::<Vec<_>>();
            for (tp, record_offset, value) in &staged {
                st.add_pending(
                    who.producer_id,
                    group_id,
                    tp.clone(),
                    Committed {
                        value: value.clone(),
                        record_offset: *record_offset,
                    },
                );
            }
        }
        if let Err(e) = self.log.wait_durable(partition, end).await {
            tracing::warn!(group = group_id, error = ?e, "a transactional offset commit is not durable");
            // Not acknowledged: forget what is still pending of it.
            let mut st = self.lock();
            if let Some(o) = st
                .pending
                .get_mut(&who.producer_id)
                .and_then(|g| g.get_mut(group_id))
            {
                for (tp, record_offset, _) in &staged {
                    if o.get(tp).is_some_and(|c| c.record_offset == *record_offset) {
                        o.remove(tp);
                    }
                }
            }
            st.tidy_pending(who.producer_id, group_id);
            return all(E::CoordinatorNotAvailable);
        }
        codes
    }

    /// The marker of `producer_id`'s transaction is durable in `__consumer_offsets`
    /// partition `offsets_partition`: apply (`commit`) or drop its pending offsets for
    /// every group of that partition.
    pub fn complete_txn(&self, offsets_partition: i32, producer_id: i64, commit: bool) {
        self.load_marker(offsets_partition, producer_id, commit);
    }

    /// Does the partition of the group have transactional offsets waiting for their
    /// transaction (OffsetFetch's `require_stable`)?
    pub fn has_pending_offsets(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.lock().has_pending(group_id, topic, partition)
    }

    /// OffsetFetch: [`Self::fetch_offsets`] where, with `require_stable` (v7+), a
    /// partition with pending transactional offsets answers UNSTABLE_OFFSET_COMMIT
    /// (Kafka's `fetchOffsets`/`fetchAllOffsets`). Without it the last committed
    /// offset is answered.
    pub fn fetch_offsets_stable(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> FetchedOffsets {
        let fetched = self.fetch_offsets(group_id, topics);
        let unstable = if require_stable {
            self.lock().pending_partitions(group_id)
        } else {
            HashSet::new()
        };
        fetched
            .into_iter()
            .map(|(t, parts)| {
                let parts = parts
                    .into_iter()
                    .map(|(p, v)| {
                        if unstable.contains(&(t.clone(), p)) {
                            (p, Err(E::UnstableOffsetCommit))
                        } else {
                            (p, Ok(v))
                        }
                    })
                    .collect();
                (t, parts)
            })
            .collect()
    }

    /// Committed offsets of a group: for the requested partitions (`None` for
    /// every committed one). Unknown partitions come back as `None`.
    #[allow(clippy::type_complexity)]
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, Vec<(i32, Option<OffsetValue>)>)> {
        let st = self.lock();
        let offsets = st.offsets.get(group_id);
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(t, parts)| {
                    let ps = parts
                        .into_iter()
                        .map(|p| {
                            let v = offsets
                                .and_then(|o| o.get(&(t.clone(), p)))
                                .map(|c| c.value.clone());
                            (p, v)
                        })
                        .collect();
                    (t, ps)
                })
                .collect(),
            None => {
                let mut out: Vec<(String, Vec<(i32, Option<OffsetValue>)>)> = Vec::new();
                if let Some(o) = offsets {
                    for ((t, p), c) in o {
                        match out.last_mut() {
                            Some((lt, ps)) if lt == t => ps.push((*p, Some(c.value.clone()))),
                            _ => out.push((t.clone(), vec![(*p, Some(c.value.clone()))])),
                        }
                    }
                }
                out
            }
        }
    }

    /// Every committed offset as (group, topic, partition, offset), for the metrics
    /// endpoint's consumer lag. Read-only; copies out under the lock.
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let st = self.lock();
        let mut out = Vec::with_capacity(st.offsets.values().map(BTreeMap::len).sum());
        for (group, offsets) in &st.offsets {
            for ((topic, partition), c) in offsets {
                out.push((group.clone(), topic.clone(), *partition, c.value.offset));
            }
        }
        out
    }

    /// Does the group exist (DescribeGroups/OffsetFetch)?
    pub fn group_exists(&self, group_id: &str) -> bool {
        self.lock().groups.contains_key(group_id)
    }

    /// DeleteGroups: per group, an error code. Answers once the tombstones are durable.
    pub async fn delete_groups(self: &Arc<Self>, ids: &[String]) -> Vec<i16> {
        let mut codes = vec![0i16; ids.len()];
        let appended = {
            let mut st = self.lock();
            let now_ms = self.clock.now_ms();
            let mut writes = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let ok = match st.groups.get(id) {
                    None => Err(E::GroupIdNotFound),
                    Some(Group::Classic(g)) if g.state == ClassicState::Dead => {
                        Err(E::GroupIdNotFound)
                    }
                    Some(Group::Classic(g))
                        if g.state != ClassicState::Empty || !g.is_empty_of_members() =>
                    {
                        Err(E::NonEmptyGroup)
                    }
                    Some(Group::Consumer(g)) if !g.is_empty() => Err(E::NonEmptyGroup),
                    Some(_) => Ok(()),
                };
                if let Err(e) = ok {
                    codes[i] = e.code();
                    continue;
                }
                let committed = st.offsets.remove(id).unwrap_or_default();
                // Pending transactional offsets go too (Kafka's `deleteAllOffsets`):
                // one tombstone per partition, which a replay also applies to them.
                let mut parts: BTreeMap<(String, i32), ()> =
                    committed.into_keys().map(|tp| (tp, ())).collect();
                parts.extend(st.pending_partitions(id).into_iter().map(|tp| (tp, ())));
                st.drop_pending_group(id);
                let mut recs: Vec<LogRecord> = parts
                    .keys()
                    .map(|(t, p)| (records::offset_key(id, t, *p), None))
                    .collect();
                recs.push((records::group_key(id), None));
                if let Some(Group::Classic(mut g)) = st.groups.remove(id) {
                    g.mark_dead(now_ms);
                }
                let (more, new) = Self::consumer_diff(&st, id);
                recs.extend(more);
                Self::set_consumer_written(&mut st, id, new);
                writes.push((id.clone(), recs));
            }
            self.append_records(writes)
        };
        let durable = match appended {
            Ok(w) => self.wait_all(&w).await,
            Err(e) => Err(e),
        };
        if let Err(e) = durable {
            tracing::warn!(error = ?e, "group tombstones are not durable");
            for c in codes.iter_mut().filter(|c| **c == 0) {
                *c = E::CoordinatorNotAvailable.code();
            }
        }
        codes
    }

    /// OffsetDelete: `Err` for the group, else per (topic, partition) an error code.
    pub async fn delete_offsets(
        self: &Arc<Self>,
        group_id: &str,
        parts: &[(String, i32)],
    ) -> Result<Vec<i16>, E> {
        let waits;
        let mut codes = vec![0i16; parts.len()];
        {
            let mut st = self.lock();
            let subscribed = match st.groups.get(group_id) {
                None => return Err(E::GroupIdNotFound),
                Some(Group::Consumer(g)) => {
                    if g.is_empty() {
                        HashSet::new()
                    } else {
                        g.subscribed_topics().into_iter().collect()
                    }
                }
                Some(Group::Classic(g)) => {
                    if g.state == ClassicState::Dead {
                        return Err(E::GroupIdNotFound);
                    }
                    if g.state == ClassicState::Empty {
                        HashSet::new()
                    } else if g.protocol_type.as_deref() != Some("consumer") {
                        return Err(E::NonEmptyGroup);
                    } else {
                        match g.subscribed_topics() {
                            Some(t) => t,
                            None => return Err(E::NonEmptyGroup),
                        }
                    }
                }
            };
            let mut recs = Vec::new();
            for (i, (t, p)) in parts.iter().enumerate() {
                if subscribed.contains(t) {
                    codes[i] = E::GroupSubscribedToTopic.code();
                    continue;
                }
                let tp = (t.clone(), *p);
                // A tombstone if committed or pending (Kafka's `deleteOffsets`).
                let pending = st.has_pending(group_id, t, *p);
                st.drop_pending_partition(group_id, &tp);
                let committed = st
                    .offsets
                    .get_mut(group_id)
                    .and_then(|o| o.remove(&tp))
                    .is_some();
                if committed || pending {
                    recs.push((records::offset_key(group_id, t, *p), None));
                }
            }
            waits = self.append_records(vec![(group_id.to_string(), recs)])?;
        }
        self.wait_all(&waits)
            .await
            .map_err(|_| E::CoordinatorNotAvailable)?;
        Ok(codes)
    }

    /// A topic was deleted: drop every group's offsets for it (with tombstones).
    pub async fn on_topic_deleted(self: &Arc<Self>, topic: &str) {
        let waits = {
            let mut st = self.lock();
            let mut gone: BTreeMap<String, BTreeMap<(String, i32), ()>> = BTreeMap::new();
            for (g, o) in &st.offsets {
                for tp in o.keys().filter(|(t, _)| t == topic) {
                    gone.entry(g.clone()).or_default().insert(tp.clone(), ());
                }
            }
            // Pending transactional offsets of the topic go too (Kafka's
            // `onPartitionsDeleted`).
            for groups in st.pending.values() {
                for (g, o) in groups {
                    for tp in o.keys().filter(|(t, _)| t == topic) {
                        gone.entry(g.clone()).or_default().insert(tp.clone(), ());
                    }
                }
            }
            let mut writes = Vec::new();
            for (g, tps) in gone {
                let recs = tps
                    .into_keys()
                    .map(|tp| {
                        if let Some(o) = st.offsets.get_mut(&g) {
                            o.remove(&tp);
                        }
                        st.drop_pending_partition(&g, &tp);
                        (records::offset_key(&g, &tp.0, tp.1), None)
                    })
                    .collect();
                writes.push((g, recs));
            }
            self.append_records(writes)
        };
        match waits {
            Ok(w) => {
                if let Err(e) = self.wait_all(&w).await {
                    tracing::warn!(topic, error = ?e, "offset tombstones of a deleted topic are not durable");
                }
            }
            Err(e) => {
                tracing::warn!(topic, error = ?e, "writing offset tombstones of a deleted topic failed")
            }
        }
    }

    /// `offsets.retention.minutes`: offsets of empty groups expire that long after the
    /// group became empty (or, for groups without a protocol, after the commit). An
    /// empty group left without offsets is deleted.
    fn expire_offsets(&self, st: &mut State, now_ms: i64) {
        let retention = self.cfg.offsets_retention_ms;
        let mut writes = Vec::new();
        let ids: Vec<String> = st.groups.keys().cloned().collect();
        for id in ids {
            let (empty, since) = match st.groups.get(&id) {
                Some(Group::Classic(g)) => (
                    g.state == ClassicState::Empty && g.is_empty_of_members(),
                    g.protocol_type.as_ref().map(|_| g.state_timestamp_ms),
                ),
                Some(Group::Consumer(g)) => (g.is_empty(), Some(g.state_timestamp_ms)),
                None => continue,
            };
            if !empty {
                continue;
            }
            let mut recs: Vec<LogRecord> = Vec::new();
            // An offset with a transactional one pending does not expire yet, and a
            // group with an open transaction stays (Kafka's `cleanupExpiredOffsets`).
            let pending = st.pending_partitions(&id);
            let open_txn = st.open_txns.contains_key(&id);
            if let Some(o) = st.offsets.get_mut(&id) {
                o.retain(|(t, p), c| {
                    let base = since.unwrap_or(c.value.commit_timestamp);
                    let expired = if c.value.expire_timestamp > 0 {
                        now_ms >= c.value.expire_timestamp
                    } else {
                        now_ms >= base.saturating_add(retention)
                    };
                    let expired = expired && !pending.contains(&(t.clone(), *p));
                    if expired {
                        recs.push((records::offset_key(&id, t, *p), None));
                    }
                    !expired
                });
            }
            let no_offsets = st.offsets.get(&id).is_none_or(|o| o.is_empty());
            if no_offsets && !open_txn {
                st.offsets.remove(&id);
                if let Some(Group::Classic(mut g)) = st.groups.remove(&id) {
                    g.mark_dead(now_ms);
                }
                recs.push((records::group_key(&id), None));
                let (more, new) = Self::consumer_diff(st, &id);
                recs.extend(more);
                Self::set_consumer_written(st, &id, new);
                tracing::info!(group = %id, "removed an empty group whose offsets expired");
            }
            if !recs.is_empty() {
                writes.push((id, recs));
            }
        }
        if let Err(e) = self.append_records(writes) {
            tracing::warn!(error = ?e, "writing expired-offset tombstones failed");
        }
    }

    // ----- describe / list -----

    pub fn describe(&self, group_id: &str) -> Option<m::describe_groups_response::DescribedGroup> {
        let st = self.lock();
        match st.groups.get(group_id)? {
            Group::Classic(g) => Some(g.describe()),
            Group::Consumer(g) => Some(describe_consumer_group(g)),
        }
    }

    /// (group id, protocol type, state, group type) of every group.
    pub fn list(&self) -> Vec<(String, String, String, &'static str)> {
        let st = self.lock();
        st.groups
            .iter()
            .map(|(id, g)| match g {
                Group::Classic(g) => (
                    id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name().to_string(),
                    "classic",
                ),
                Group::Consumer(g) => (
                    id.clone(),
                    "consumer".to_string(),
                    g.state().to_string(),
                    "consumer",
                ),
            })
            .collect()
    }
}

/// DescribeGroups' view of a consumer group: members with their assignment encoded as
/// a `ConsumerProtocolAssignment` (v0), as Kafka answers for consumer groups.
fn describe_consumer_group(g: &ConsumerGroup) -> m::describe_groups_response::DescribedGroup {
    use kafka_protocol::protocol::Encodable;
    let members = g
        .members
        .values()
        .map(|mb| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &mb.assigned {
                by_topic.entry(t.as_str()).or_default().push(*p);
            }
            let assignment = m::ConsumerProtocolAssignment::default().with_assigned_partitions(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        m::consumer_protocol_assignment::TopicPartition::default()
                            .with_topic(m::TopicName(sb(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
            let mut buf = bytes::BytesMut::new();
            buf.extend_from_slice(&0i16.to_be_bytes());
            if assignment.encode(&mut buf, 0).is_err() {
                buf.truncate(0);
            }
            m::describe_groups_response::DescribedGroupMember::default()
                .with_member_id(sb(&mb.id))
                .with_group_instance_id(mb.instance_id.as_deref().map(sb))
                .with_client_id(sb(&mb.client_id))
                .with_client_host(sb(&mb.client_host))
                .with_member_assignment(buf.freeze())
        })
        .collect();
    m::describe_groups_response::DescribedGroup::default()
        .with_group_id(m::GroupId(sb(&g.id)))
        .with_group_state(sb(g.state()))
        .with_protocol_type(sb("consumer"))
        .with_protocol_data(sb(&g.assignor))
        .with_members(members)
}

impl GroupCoordinator {
    // ----- the consumer group protocol (KIP-848) -----

    /// ConsumerGroupHeartbeat. `topics` gives the topics' ids and partition counts, and
    /// the names subscribed regexes are matched against.
    ///
    /// What the heartbeat changed is appended to `__consumer_offsets` under the lock;
    /// the returned future resolves once it is durable, and the caller answers only
    /// then (a failed write answers COORDINATOR_NOT_AVAILABLE; the member retries).
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        req: HeartbeatIn,
        topics: &dyn Topics,
    ) -> Result<(HeartbeatOut, Option<DurableFuture>), E> {
        // Kafka: an empty group id is an invalid request; a member that is not joining
        // (epoch != 0) of a group that does not exist gets GROUP_ID_NOT_FOUND.
        if group_id.is_empty() {
            return Err(E::InvalidRequest);
        }
        let (now, now_ms) = (self.clock.now(), self.clock.now_ms());
        let mut st = self.lock();
        match st.groups.get(group_id) {
            None => {
                if req.member_epoch != 0 {
                    return Err(E::GroupIdNotFound);
                }
                if st.groups.len() >= self.cfg.max_groups {
                    return Err(E::CoordinatorNotAvailable);
                }
            }
            Some(Group::Classic(g)) => {
                if g.state != ClassicState::Empty || !g.is_empty_of_members() {
                    return Err(E::GroupIdNotFound);
                }
                if req.member_epoch != 0 {
                    return Err(E::UnknownMemberId);
                }
            }
            Some(Group::Consumer(_)) => {}
        }
        // A classic group turning into a consumer group: tombstone its metadata.
        let mut extra = Vec::new();
        if matches!(st.groups.get(group_id), Some(Group::Classic(_))) {
            extra.push((records::group_key(group_id), None));
        }
        let g = match st.groups.entry(group_id.to_string()).or_insert_with(|| {
            Group::Consumer(ConsumerGroup::new(group_id, now_ms, &self.cfg.consumer))
        }) {
            Group::Consumer(g) => g,
            slot @ Group::Classic(_) => {
                *slot = Group::Consumer(ConsumerGroup::new(group_id, now_ms, &self.cfg.consumer));
                match slot {
                    Group::Consumer(g) => g,
                    Group::Classic(_) => return Err(E::CoordinatorNotAvailable),
                }
            }
        };
        let out = g.heartbeat(req, &self.cfg.consumer, now, now_ms, topics);
        let written = self.persist_consumer(&mut st, group_id, extra);
        drop(st);
        self.poke();
        let out = out?;
        match written {
            Ok(durable) => Ok((out, durable)),
            Err(e) => {
                tracing::warn!(group = group_id, error = ?e, "writing consumer group state failed");
                Err(E::CoordinatorNotAvailable)
            }
        }
    }

    /// ConsumerGroupDescribe of one group.
    pub fn consumer_describe(
        &self,
        group_id: &str,
    ) -> m::consumer_group_describe_response::DescribedGroup {
        use m::consumer_group_describe_response as d;
        let base = d::DescribedGroup::default().with_group_id(m::GroupId(sb(group_id)));
        let st = self.lock();
        let g = match st.groups.get(group_id) {
            Some(Group::Consumer(g)) => g,
            // Kafka's messages; admin clients show them as they are.
            Some(Group::Classic(_)) => {
                return base
                    .with_error_code(E::GroupIdNotFound.code())
                    .with_error_message(Some(sb(&format!(
                        "Group {group_id} is not a consumer group."
                    ))))
            }
            // Kafka: an unknown group has no state (empty), not Dead.
            None => {
                return base
                    .with_error_code(E::GroupIdNotFound.code())
                    .with_error_message(Some(sb(&format!("Group {group_id} not found."))))
            }
        };
        let assignment = |parts: &std::collections::BTreeSet<(String, i32)>| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in parts {
                by_topic.entry(t.as_str()).or_default().push(*p);
            }
            d::Assignment::default().with_topic_partitions(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        d::TopicPartitions::default()
                            .with_topic_id(g.topics.get(t).map(|x| x.0).unwrap_or_default())
                            .with_topic_name(m::TopicName(sb(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            )
        };
        let members = g
            .members
            .values()
            .map(|mb| {
                let (current, target) = g.member_assignment(&mb.id);
                d::Member::default()
                    .with_member_id(sb(&mb.id))
                    .with_instance_id(mb.instance_id.as_deref().map(sb))
                    .with_rack_id(mb.rack_id.as_deref().map(sb))
                    .with_member_epoch(mb.epoch)
                    .with_client_id(sb(&mb.client_id))
                    .with_client_host(sb(&mb.client_host))
                    .with_subscribed_topic_names(
                        mb.subscribed.iter().map(|t| m::TopicName(sb(t))).collect(),
                    )
                    // Kafka reports "" for a member without a regex, not null.
                    .with_subscribed_topic_regex(Some(sb(mb.regex.as_deref().unwrap_or(""))))
                    .with_assignment(assignment(&current))
                    .with_target_assignment(assignment(&target))
                    .with_member_type(1)
            })
            .collect();
        base.with_group_state(sb(g.state()))
            .with_group_epoch(g.group_epoch)
            .with_assignment_epoch(g.assignment_epoch)
            .with_assignor_name(sb(&g.assignor))
            .with_members(members)
            .with_authorized_operations(i32::MIN)
    }

    /// OffsetFetch v9+ from a member of a consumer group: check its epoch.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Result<(), E> {
        let Some(member_id) = member_id else {
            return Ok(());
        };
        let st = self.lock();
        match st.groups.get(group_id) {
            Some(Group::Consumer(g)) => g.validate_member(member_id, epoch),
            _ => Ok(()),
        }
    }
}

impl GroupCoordinator {
    /// Replay a chunk of whole stored batches of `__consumer_offsets` partition
    /// `partition`, read from `offset`; returns the offset after the last batch (where
    /// the next chunk starts). Transactional offset commits are held until their
    /// transaction's marker, which applies or drops them.
    pub fn replay_chunk(&self, partition: i32, offset: u64, buf: &[u8]) -> u64 {
        crate::log::replay_chunk_txn(offset, buf, |item| match item {
            Replayed::Record {
                key,
                value,
                offset,
                producer_id,
            } => self.load_record_from(key, value, offset, producer_id),
            Replayed::Marker {
                producer_id,
                commit,
                ..
            } => self.load_marker(partition, producer_id, commit),
        })
    }

    /// Feed one transaction marker of `__consumer_offsets` partition `partition`
    /// (replay on start), in log order.
    pub fn load_marker(&self, partition: i32, producer_id: i64, commit: bool) {
        let n = self.log.partitions();
        self.lock().end_txn(producer_id, commit, |g| {
            records::partition_for(g, n) == partition
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::runtime::testing::{block_on, ManualClock, Tasks};
    use crate::runtime::SystemClock;

    /// A coordinator on the system clock whose background tasks are dropped unless a
    /// test runs them (these tests wait on none).
    fn coordinator(cfg: GroupConfig, log: Arc<dyn CoordinatorLog>) -> Arc<GroupCoordinator> {
        GroupCoordinator::new(cfg, log, Arc::new(SystemClock), Arc::new(Tasks::default()))
    }

    /// An in-memory `__consumer_offsets`: every append, in order.
    #[derive(Default)]
    struct MemLog {
        recs: Mutex<Vec<(i32, LogRecord)>>,
    }

    impl CoordinatorLog for MemLog {
        fn partitions(&self) -> i32 {
            50
        }
        fn append(&self, partition: i32, records: &[LogRecord]) -> Result<(u64, u64), E> {
            let mut all = self.recs.lock().unwrap();
            let first = all.len() as u64;
            all.extend(records.iter().map(|r| (partition, r.clone())));
            Ok((first, all.len() as u64))
        }
        fn wait_durable(&self, _partition: i32, _end: u64) -> DurableFuture {
            Box::pin(async { Ok(()) })
        }
    }

    const T: uuid::Uuid = uuid::Uuid::from_u128(7);

    fn resolve(t: &str) -> Option<(uuid::Uuid, i32)> {
        (t == "t").then_some((T, 4))
    }

    fn topic_name(id: &uuid::Uuid) -> Option<String> {
        (*id == T).then(|| "t".to_string())
    }

    fn hb(id: &str, epoch: i32, owned: Option<&[i32]>) -> HeartbeatIn {
        HeartbeatIn {
            member_id: id.to_string(),
            member_epoch: epoch,
            subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
            owned: owned.map(|ps| ps.iter().map(|p| ("t".to_string(), *p)).collect()),
            client_id: format!("client-{id}"),
            ..Default::default()
        }
    }

    fn reload(log: &MemLog) -> Arc<GroupCoordinator> {
        let c = coordinator(GroupConfig::default(), Arc::new(MemLog::default()));
        for (i, (_, (k, v))) in log.recs.lock().unwrap().iter().enumerate() {
            c.load_record(k, v.as_deref(), i as u64);
        }
        c.finish_load(&topic_name, &resolve);
        c
    }

    /// (member id, epoch, assigned, revoking).
    type MemberView = (String, i32, Vec<(String, i32)>, Vec<(String, i32)>);

    fn members(c: &GroupCoordinator) -> Vec<MemberView> {
        let st = c.lock();
        match st.groups.get("g") {
            Some(Group::Consumer(g)) => g
                .members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.epoch,
                        m.assigned.iter().cloned().collect(),
                        m.revoking.iter().cloned().collect(),
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn consumer_group_survives_a_restart() {
        let log = Arc::new(MemLog::default());
        let c = coordinator(GroupConfig::default(), log.clone());
        let (a, _) = c
            .consumer_heartbeat("g", hb("a", 0, Some(&[])), &resolve)
            .unwrap();
        assert_eq!(a.member_epoch, 1);
        let (b, _) = c
            .consumer_heartbeat("g", hb("b", 0, Some(&[])), &resolve)
            .unwrap();
        assert_eq!(b.member_epoch, 2);
        // a is told to revoke two partitions: it is mid-revocation when the broker dies.
        let (a, _) = c
            .consumer_heartbeat("g", hb("a", 1, Some(&[0, 1, 2, 3])), &resolve)
            .unwrap();
        assert_eq!(a.member_epoch, 1);
        let before = members(&c);
        assert_eq!(before.len(), 2);
        assert_eq!(before[0].3.len(), 2, "a has partitions pending revocation");

        let r = reload(&log);
        assert_eq!(members(&r), before);
        {
            let st = r.lock();
            let Some(Group::Consumer(g)) = st.groups.get("g") else {
                panic!("not a consumer group")
            };
            assert_eq!((g.group_epoch, g.assignment_epoch), (2, 2));
            assert_eq!(g.members["a"].client_id, "client-a");
            assert_eq!(g.topics.get("t"), Some(&(T, 4)));
        }
        // The members carry on with their epochs: no rejoin.
        let kept: Vec<i32> = before[0].2.iter().map(|(_, p)| *p).collect();
        let (a, _) = r
            .consumer_heartbeat("g", hb("a", 1, Some(&kept)), &resolve)
            .unwrap();
        assert_eq!(a.member_epoch, 2);
        let (b, _) = r
            .consumer_heartbeat("g", hb("b", 2, None), &resolve)
            .unwrap();
        assert_eq!(b.assignment.map(|x| x["t"].len()), Some(2));

        // a leaves: its records are tombstoned and it does not come back.
        let log2 = Arc::new(MemLog::default());
        let c = coordinator(GroupConfig::default(), log2.clone());
        c.consumer_heartbeat("g", hb("a", 0, Some(&[])), &resolve)
            .unwrap();
        c.consumer_heartbeat("g", hb("a", -1, None), &resolve)
            .unwrap();
        let r = reload(&log2);
        assert!(members(&r).is_empty());
        assert_eq!(r.list()[0].3, "consumer");
        let tombstones = log2
            .recs
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, (_, v))| v.is_none())
            .count();
        assert_eq!(
            tombstones, 3,
            "member metadata, target and current assignment"
        );
    }

    /// Topics "orders-1" and "orders-2" (ids 11, 12; 2 partitions each) and "t".
    struct RegexTopics;

    impl Topics for RegexTopics {
        fn resolve(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
            match name {
                "orders-1" => Some((uuid::Uuid::from_u128(11), 2)),
                "orders-2" => Some((uuid::Uuid::from_u128(12), 2)),
                _ => resolve(name),
            }
        }
        fn names_version(&self) -> u64 {
            1
        }
        fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
            for n in ["orders-1", "orders-2", "t"] {
                f(n);
            }
        }
    }

    #[test]
    fn regex_subscription_survives_a_restart() {
        let topic_name = |id: &uuid::Uuid| match id.as_u128() {
            11 => Some("orders-1".to_string()),
            12 => Some("orders-2".to_string()),
            _ => topic_name(id),
        };
        let log = Arc::new(MemLog::default());
        let c = coordinator(GroupConfig::default(), log.clone());
        let join = HeartbeatIn {
            subscribed: None,
            subscribed_regex: Some("orders-.*".to_string()),
            ..hb("a", 0, Some(&[]))
        };
        let (a, _) = c.consumer_heartbeat("g", join, &RegexTopics).unwrap();
        assert_eq!(a.assignment.as_ref().map(|x| x.len()), Some(2));
        let regex_key = records::consumer_regex_key("g", "orders-.*");
        let written = |log: &MemLog| -> Vec<Option<Vec<u8>>> {
            let recs = log.recs.lock().unwrap();
            recs.iter()
                .filter(|(_, (k, _))| *k == regex_key)
                .map(|(_, (_, v))| v.clone())
                .collect()
        };
        let v = written(&log);
        assert_eq!(v.len(), 1);
        let value = records::decode_regex_value(v[0].as_deref().unwrap()).unwrap();
        assert_eq!(value.topics, ["orders-1", "orders-2"]);

        // Replayed: the member keeps its regex and partitions, the group its resolution.
        let before = members(&c);
        let r = coordinator(GroupConfig::default(), Arc::new(MemLog::default()));
        for (i, (_, (k, v))) in log.recs.lock().unwrap().iter().enumerate() {
            r.load_record(k, v.as_deref(), i as u64);
        }
        r.finish_load(&topic_name, &RegexTopics);
        assert_eq!(members(&r), before);
        {
            let st = r.lock();
            let Some(Group::Consumer(g)) = st.groups.get("g") else {
                panic!("not a consumer group")
            };
            assert_eq!(g.members["a"].regex.as_deref(), Some("orders-.*"));
            assert_eq!(g.regexes["orders-.*"].topics.len(), 2);
            assert_eq!(g.subscribed_topics().len(), 2);
            let d = describe_consumer_group(g);
            assert_eq!(d.members.len(), 1);
        }
        let d = r.consumer_describe("g");
        assert_eq!(
            d.members[0].subscribed_topic_regex.as_deref(),
            Some("orders-.*")
        );
        // It carries on at its epoch; resolving again finds the same topics: no rebalance.
        let (a2, _) = r
            .consumer_heartbeat("g", hb("a", a.member_epoch, None), &RegexTopics)
            .unwrap();
        assert_eq!(a2.member_epoch, a.member_epoch);
        assert!(a2.assignment.is_none());

        // Leaving tombstones the resolution too.
        c.consumer_heartbeat("g", hb("a", -1, None), &RegexTopics)
            .unwrap();
        assert_eq!(written(&log).last(), Some(&None));
    }

    #[test]
    fn the_given_clock_expires_a_consumer_member_and_the_waker_hears_of_it() {
        let log = Arc::new(MemLog::default());
        let clock = Arc::new(ManualClock::new());
        let c = GroupCoordinator::new(
            GroupConfig::default(),
            log.clone(),
            clock.clone(),
            Arc::new(Tasks::default()),
        );
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        assert!(c
            .set_waker(Box::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            }))
            .is_ok());
        assert!(c.set_waker(Box::new(|| {})).is_err(), "one driver only");
        c.consumer_heartbeat("g", hb("a", 0, Some(&[])), &resolve)
            .unwrap();
        assert_eq!(
            woken.load(Ordering::SeqCst),
            1,
            "a heartbeat moves deadlines"
        );
        let session =
            Duration::from_millis(GroupConfig::default().consumer.session_timeout_ms as u64);

        // Deadlines are on the given clock: just before the session lapses the member
        // stays, however much real time passed.
        clock.advance(session - Duration::from_millis(1));
        let next = c.tick().expect("a deadline");
        assert!(next > clock.now() && next <= clock.now() + Duration::from_millis(1));
        assert_eq!(members(&c).len(), 1);
        let before = log.recs.lock().unwrap().len();

        clock.advance(Duration::from_millis(1));
        c.tick();
        assert!(
            members(&c).is_empty(),
            "the session expired on the given clock"
        );
        let recs = log.recs.lock().unwrap();
        assert!(
            recs[before..].iter().any(|(_, (_, v))| v.is_none()),
            "the expired member's records are tombstoned"
        );
    }

    #[test]
    fn a_leaders_sync_is_answered_by_a_spawned_task_once_the_assignment_is_written() {
        let log = Arc::new(MemLog::default());
        let clock = Arc::new(ManualClock::new());
        let tasks = Arc::new(Tasks::default());
        let c = GroupCoordinator::new(
            GroupConfig::default(),
            log.clone(),
            clock.clone(),
            tasks.clone(),
        );
        let join = |member: &str| JoinRequest {
            member_id: member.to_string(),
            instance_id: None,
            require_known_member_id: true,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 10_000,
            session_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            version: 9,
        };
        let Reply::Now(r) = c.join("g", join("")) else {
            panic!("MEMBER_ID_REQUIRED comes at once")
        };
        let id = r.member_id.to_string();
        let Reply::Later(mut joined) = c.join("g", join(&id)) else {
            panic!("the first join waits for the initial rebalance delay")
        };
        let delay = GroupConfig::default().classic.initial_rebalance_delay_ms as u64;
        clock.advance(Duration::from_millis(delay));
        c.tick();
        let r = joined
            .try_recv()
            .ok()
            .flatten()
            .expect("joined after the delay");
        assert_eq!((r.generation_id, r.leader.as_str()), (1, id.as_str()));

        let written = log.recs.lock().unwrap().len();
        let Reply::Later(mut synced) = c.sync(
            "g",
            &id,
            None,
            1,
            Some("consumer"),
            Some("range"),
            vec![(id.clone(), Bytes::from_static(b"A"))],
        ) else {
            panic!("the leader's sync waits for its assignment to be written")
        };
        assert_eq!(
            log.recs.lock().unwrap()[written..]
                .iter()
                .map(|(_, (k, _))| k.clone())
                .collect::<Vec<_>>(),
            [records::group_key("g")],
            "the group metadata with the assignment is appended at once"
        );
        assert!(
            synced.try_recv().ok().flatten().is_none(),
            "not before the task ran"
        );
        assert_eq!(tasks.run(), 1);
        let r = synced
            .try_recv()
            .ok()
            .flatten()
            .expect("answered by the task");
        assert_eq!((r.error_code, r.assignment), (0, Bytes::from_static(b"A")));
    }

    #[test]
    fn deleted_consumer_group_stays_deleted() {
        let log = Arc::new(MemLog::default());
        let c = coordinator(GroupConfig::default(), log.clone());
        c.consumer_heartbeat("g", hb("a", 0, Some(&[])), &resolve)
            .unwrap();
        c.consumer_heartbeat("g", hb("a", -1, None), &resolve)
            .unwrap();
        let codes = block_on(c.delete_groups(&["g".to_string()]));
        assert_eq!(codes, [0]);
        let r = reload(&log);
        assert!(!r.group_exists("g"));
    }
    /// Offsets of every group, as fetch_offsets shows them: (group, topic, partition, offset).
    fn all_offsets(c: &GroupCoordinator, groups: &[&str]) -> Vec<(String, String, i32, i64)> {
        let mut out = Vec::new();
        for g in groups {
            for (t, ps) in c.fetch_offsets(g, None) {
                for (p, v) in ps {
                    out.push((g.to_string(), t.clone(), p, v.map_or(-1, |v| v.offset)));
                }
            }
        }
        out
    }

    #[test]
    fn offsets_of_empty_groups_expire_after_the_retention() {
        const MIN: i64 = 60_000;
        let cfg = GroupConfig {
            offsets_retention_ms: MIN,
            ..GroupConfig::default()
        };
        let log = Arc::new(MemLog::default());
        // Time is driven explicitly: `t0` is about when the live group commits, `now` is
        // when retention runs.
        let t0 = SystemClock.now_ms();
        let now = t0 + 10 * MIN;
        let commit = |g: &str, p: i32, offset: i64, ts: i64| -> LogRecord {
            (
                records::offset_key(g, "t", p),
                Some(records::encode_offset_value(&OffsetValue {
                    offset,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp: ts,
                    expire_timestamp: -1,
                })),
            )
        };
        // Already in the log: group "old" (no members, no protocol) with a stale commit
        // on t-0 and a fresh one on t-1; group "fresh" with a fresh commit only.
        log.append(
            0,
            &[
                commit("old", 0, 10, t0 - MIN),
                commit("old", 1, 11, now - MIN / 2),
                commit("fresh", 0, 12, now - MIN / 2),
            ],
        )
        .unwrap();
        let open = |log: &Arc<MemLog>| {
            let c = coordinator(cfg.clone(), log.clone());
            let recs = log.recs.lock().unwrap().clone();
            for (i, (_, (k, v))) in recs.iter().enumerate() {
                c.load_record(k, v.as_deref(), i as u64);
            }
            c.finish_load(&topic_name, &resolve);
            c
        };
        let c = open(&log);
        // Group "live": a consumer group with a member, whose commit is stale by `now`.
        let (a, _) = c
            .consumer_heartbeat("live", hb("a", 0, Some(&[])), &resolve)
            .unwrap();
        let item = CommitItem {
            topic: "t".to_string(),
            partition: 0,
            offset: 13,
            leader_epoch: -1,
            metadata: String::new(),
        };
        block_on(c.commit_offsets("live", "a", None, a.member_epoch, 9, vec![item])).unwrap();
        let groups = ["old", "fresh", "live"];
        let everything = vec![
            ("old".to_string(), "t".to_string(), 0, 10),
            ("old".to_string(), "t".to_string(), 1, 11),
            ("fresh".to_string(), "t".to_string(), 0, 12),
            ("live".to_string(), "t".to_string(), 0, 13),
        ];
        assert_eq!(all_offsets(&c, &groups), everything);
        let tombstones = |log: &MemLog| -> Vec<Vec<u8>> {
            let recs = log.recs.lock().unwrap();
            recs.iter()
                .filter(|(_, (_, v))| v.is_none())
                .map(|(_, (k, _))| k.clone())
                .collect()
        };

        // Just before the stale commit is `retention` old: nothing expires.
        c.expire_offsets(&mut c.lock(), t0 - 1);
        assert_eq!(all_offsets(&c, &groups), everything);
        assert!(tombstones(&log).is_empty());

        // At `now`: the stale offset of the empty group goes (tombstoned); its fresh
        // offset, the fresh group and the group with a live member stay.
        c.expire_offsets(&mut c.lock(), now);
        let kept = vec![
            ("old".to_string(), "t".to_string(), 1, 11),
            ("fresh".to_string(), "t".to_string(), 0, 12),
            ("live".to_string(), "t".to_string(), 0, 13),
        ];
        assert_eq!(all_offsets(&c, &groups), kept);
        assert_eq!(tombstones(&log), vec![records::offset_key("old", "t", 0)]);
        assert!(c.group_exists("old"), "the group still has an offset");
        // A replay of the log does not bring the expired offset back.
        let r = open(&log);
        assert_eq!(all_offsets(&r, &groups), kept);

        // A retention later the empty groups' offsets are all gone, and so are the
        // groups; the live group keeps its offset however old it is.
        c.expire_offsets(&mut c.lock(), now + MIN);
        let live = vec![("live".to_string(), "t".to_string(), 0, 13)];
        assert_eq!(all_offsets(&c, &groups), live);
        assert!(!c.group_exists("old") && !c.group_exists("fresh"));
        assert!(c.group_exists("live"));
        let mut ts = tombstones(&log);
        ts.sort();
        let mut want = vec![
            records::offset_key("old", "t", 0),
            records::offset_key("old", "t", 1),
            records::offset_key("fresh", "t", 0),
            records::group_key("old"),
            records::group_key("fresh"),
        ];
        want.sort();
        assert_eq!(ts, want);
        let r = open(&log);
        assert_eq!(all_offsets(&r, &groups), live);
        assert!(!r.group_exists("old") && !r.group_exists("fresh"));
        assert!(r.group_exists("live"));
    }

    // ----- transactional offset commits -----

    use runnel_records::record_batch::builder::{
        encode_batch, encode_records, ProducerFields, Record,
    };
    use runnel_records::record_batch::set_base_offset;

    const TXN: i16 = 0x10;
    const CONTROL: i16 = 0x20;

    /// A `__consumer_offsets` of real stored batches, one byte buffer per partition, so
    /// that a reload goes through the replay of transactional and control batches.
    #[derive(Default)]
    struct BatchLog {
        parts: Mutex<HashMap<i32, (Vec<u8>, u64)>>,
        /// Fail every wait for durability.
        fail_durable: std::sync::atomic::AtomicBool,
    }

    impl BatchLog {
        fn push(
            &self,
            partition: i32,
            attributes: i16,
            producer_id: i64,
            recs: &[LogRecord],
        ) -> (u64, u64) {
            let records: Vec<Record<'_>> = recs
                .iter()
                .map(|(k, v)| Record {
                    key: Some(k.as_slice()),
                    value: v.as_deref(),
                    ..Default::default()
                })
                .collect();
            let n = records.len().max(1);
            let section = encode_records(&records);
            let mut b = encode_batch(
                0,
                attributes,
                n as i32 - 1,
                0,
                0,
                ProducerFields {
                    producer_id,
                    producer_epoch: if producer_id < 0 { -1 } else { 0 },
                    base_sequence: -1,
                },
                records.len() as i32,
                &section,
            );
            let mut parts = self.parts.lock().unwrap();
            let (buf, next) = parts.entry(partition).or_default();
            set_base_offset(&mut b, *next as i64);
            buf.extend_from_slice(&b);
            let first = *next;
            *next += n as u64;
            (first, *next)
        }

        /// A transaction marker: key i16 version, i16 type; value i16 version, i32
        /// coordinator epoch.
        fn marker(&self, partition: i32, producer_id: i64, commit: bool) {
            let key = vec![0, 0, 0, commit as u8];
            let value = vec![0; 6];
            self.push(partition, TXN | CONTROL, producer_id, &[(key, Some(value))]);
        }

        fn raw(&self, partition: i32, bytes: &[u8]) {
            let mut parts = self.parts.lock().unwrap();
            parts
                .entry(partition)
                .or_default()
                .0
                .extend_from_slice(bytes);
        }

        /// A coordinator started on this log: every partition replayed.
        fn reload(self: &Arc<Self>) -> Arc<GroupCoordinator> {
            let c = coordinator(GroupConfig::default(), self.clone());
            let parts: Vec<(i32, Vec<u8>)> = self
                .parts
                .lock()
                .unwrap()
                .iter()
                .map(|(p, (buf, _))| (*p, buf.clone()))
                .collect();
            for (p, buf) in parts {
                c.replay_chunk(p, 0, &buf);
            }
            c.finish_load(&topic_name, &resolve);
            c
        }
    }

    impl CoordinatorLog for BatchLog {
        fn partitions(&self) -> i32 {
            50
        }
        fn append(&self, partition: i32, records: &[LogRecord]) -> Result<(u64, u64), E> {
            Ok(self.push(partition, 0, -1, records))
        }
        fn append_transactional(
            &self,
            partition: i32,
            producer_id: i64,
            _producer_epoch: i16,
            records: &[LogRecord],
        ) -> Result<(u64, u64), E> {
            Ok(self.push(partition, TXN, producer_id, records))
        }
        fn wait_durable(&self, _partition: i32, _end: u64) -> DurableFuture {
            let fail = self.fail_durable.load(Ordering::Relaxed);
            Box::pin(async move {
                if fail {
                    Err(E::KafkaStorageError)
                } else {
                    Ok(())
                }
            })
        }
    }

    fn item(partition: i32, offset: i64) -> CommitItem {
        CommitItem {
            topic: "t".to_string(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: String::new(),
        }
    }

    /// A producer outside any group membership (v0-v2, or a simple group).
    fn producer(producer_id: i64) -> TxnCommitter {
        TxnCommitter {
            transactional_id: format!("txn-{producer_id}"),
            producer_id,
            producer_epoch: 0,
            generation: -1,
            member_id: String::new(),
            instance_id: None,
        }
    }

    fn txn_commit(c: &Arc<GroupCoordinator>, g: &str, pid: i64, items: &[(i32, i64)]) -> Vec<i16> {
        let items = items.iter().map(|(p, o)| item(*p, *o)).collect();
        block_on(c.txn_offset_commit(g, &producer(pid), items))
    }

    fn plain_commit(c: &Arc<GroupCoordinator>, g: &str, p: i32, offset: i64) {
        block_on(c.commit_offsets(g, "", None, -1, 8, vec![item(p, offset)])).unwrap();
    }

    /// (partition, offset or -1, unstable) of topic "t" partitions 0-2, as OffsetFetch
    /// answers with `require_stable`.
    fn stable(c: &GroupCoordinator, g: &str) -> Vec<(i32, i64, bool)> {
        let fetched = c.fetch_offsets_stable(g, Some(vec![("t".to_string(), vec![0, 1, 2])]), true);
        fetched
            .into_iter()
            .flat_map(|(_, ps)| ps)
            .map(|(p, r)| match r {
                Ok(v) => (p, v.map_or(-1, |v| v.offset), false),
                Err(e) => {
                    assert_eq!(e, E::UnstableOffsetCommit);
                    (p, -1, true)
                }
            })
            .collect()
    }

    fn committed(c: &GroupCoordinator, g: &str) -> Vec<(i32, i64)> {
        all_offsets(c, &[g])
            .into_iter()
            .map(|(_, _, p, o)| (p, o))
            .collect()
    }

    #[test]
    fn txn_offsets_are_pending_until_committed_and_dropped_on_abort() {
        let log = Arc::new(BatchLog::default());
        let c = coordinator(GroupConfig::default(), log.clone());
        let p = c.partition_for("g");
        plain_commit(&c, "g", 0, 1);
        assert_eq!(txn_commit(&c, "g", 7, &[(0, 5), (1, 6)]), [0, 0]);
        // Invisible to OffsetFetch; unstable with require_stable.
        assert_eq!(committed(&c, "g"), [(0, 1)]);
        assert_eq!(
            stable(&c, "g"),
            [(0, -1, true), (1, -1, true), (2, -1, false)]
        );
        // Without require_stable: the last committed offset.
        let plain =
            c.fetch_offsets_stable("g", Some(vec![("t".to_string(), vec![0, 1, 2])]), false);
        let plain: Vec<_> = plain[0]
            .1
            .iter()
            .map(|(p, r)| (*p, r.clone().map(|v| v.map(|v| v.offset))))
            .collect();
        assert_eq!(plain, [(0, Ok(Some(1))), (1, Ok(None)), (2, Ok(None))]);
        assert!(c.has_pending_offsets("g", "t", 0) && !c.has_pending_offsets("g", "t", 2));

        // A marker on another partition is not this group's.
        c.complete_txn((p + 1) % 50, 7, true);
        assert_eq!(committed(&c, "g"), [(0, 1)]);
        c.complete_txn(p, 7, true);
        assert_eq!(committed(&c, "g"), [(0, 5), (1, 6)]);
        assert_eq!(
            stable(&c, "g"),
            [(0, 5, false), (1, 6, false), (2, -1, false)]
        );

        // Aborted: dropped, the committed offset stays.
        assert_eq!(txn_commit(&c, "g", 8, &[(0, 9)]), [0]);
        assert_eq!(stable(&c, "g")[0], (0, -1, true));
        c.complete_txn(p, 8, false);
        assert_eq!(committed(&c, "g"), [(0, 5), (1, 6)]);
        assert_eq!(stable(&c, "g")[0], (0, 5, false));
        // A marker without pending offsets changes nothing.
        c.complete_txn(p, 8, true);
        assert_eq!(committed(&c, "g"), [(0, 5), (1, 6)]);

        // The log says the same once the markers are in it.
        log.marker(p, 7, true);
        log.marker(p, 8, false);
        let r = log.reload();
        assert_eq!(committed(&r, "g"), [(0, 5), (1, 6)]);
        assert_eq!(
            stable(&r, "g"),
            [(0, 5, false), (1, 6, false), (2, -1, false)]
        );
    }

    #[test]
    fn replay_keeps_committed_drops_aborted_and_holds_open_transactions() {
        let log = Arc::new(BatchLog::default());
        let p = records::partition_for("g", 50);
        let commit = |t: i32, offset: i64| -> LogRecord {
            (
                records::offset_key("g", "t", t),
                Some(records::encode_offset_value(&OffsetValue {
                    offset,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp: 0,
                    expire_timestamp: -1,
                })),
            )
        };
        log.push(p, 0, -1, &[commit(0, 1)]);
        log.push(p, TXN, 1, &[commit(0, 2), commit(1, 2)]);
        log.push(p, TXN, 2, &[commit(1, 3)]);
        log.push(p, TXN, 3, &[commit(2, 4)]);
        log.marker(p, 1, true);
        log.marker(p, 2, false);
        // Producer 3's marker on another partition (a group there) is not for "g".
        log.marker((p + 1) % 50, 3, true);
        let r = log.reload();
        assert!(r.group_exists("g"));
        assert_eq!(committed(&r, "g"), [(0, 2), (1, 2)]);
        assert_eq!(
            stable(&r, "g"),
            [(0, 2, false), (1, 2, false), (2, -1, true)]
        );
        // The open transaction's marker comes later (from the transaction coordinator).
        r.complete_txn(p, 3, true);
        assert_eq!(committed(&r, "g"), [(0, 2), (1, 2), (2, 4)]);

        // A group with nothing but an open transaction exists after the load.
        let log = Arc::new(BatchLog::default());
        let q = records::partition_for("h", 50);
        log.push(
            q,
            TXN,
            9,
            &[(records::offset_key("h", "t", 0), commit(0, 1).1)],
        );
        let r = log.reload();
        assert!(r.group_exists("h"));
        assert!(committed(&r, "h").is_empty());
        assert_eq!(stable(&r, "h")[0], (0, -1, true));
    }

    #[test]
    fn a_later_plain_commit_wins_over_an_older_transactional_one() {
        let log = Arc::new(BatchLog::default());
        let c = coordinator(GroupConfig::default(), log.clone());
        let p = c.partition_for("g");
        // Transactional first, plain after it: the plain one is newer in the log.
        txn_commit(&c, "g", 1, &[(0, 5)]);
        plain_commit(&c, "g", 0, 7);
        assert_eq!(committed(&c, "g"), [(0, 7)]);
        // Plain first, transactional after it: the transactional one wins at commit.
        plain_commit(&c, "g", 1, 7);
        txn_commit(&c, "g", 2, &[(1, 5)]);
        c.complete_txn(p, 1, true);
        c.complete_txn(p, 2, true);
        assert_eq!(committed(&c, "g"), [(0, 7), (1, 5)]);
        log.marker(p, 1, true);
        log.marker(p, 2, true);
        let r = log.reload();
        assert_eq!(committed(&r, "g"), [(0, 7), (1, 5)]);
    }

    #[test]
    fn garbage_control_records_are_skipped_without_panic() {
        let log = Arc::new(BatchLog::default());
        let c = coordinator(GroupConfig::default(), log.clone());
        let p = c.partition_for("g");
        txn_commit(&c, "g", 5, &[(0, 3)]);
        // Control batches that are no markers: no key, a short key, an unknown type,
        // no producer id, no record at all.
        log.push(p, TXN | CONTROL, 5, &[(Vec::new(), None)]);
        log.push(p, TXN | CONTROL, 5, &[(vec![0], Some(vec![0; 6]))]);
        log.push(p, TXN | CONTROL, 5, &[(vec![0, 0, 0, 7], Some(vec![0; 6]))]);
        log.push(
            p,
            TXN | CONTROL,
            -1,
            &[(vec![0, 0, 0, 1], Some(vec![0; 6]))],
        );
        log.push(p, TXN | CONTROL, 5, &[]);
        let r = log.reload();
        assert_eq!(stable(&r, "g")[0], (0, -1, true), "still pending");
        log.marker(p, 5, true);
        plain_commit(&c, "g", 1, 8);
        // Trailing garbage: the replay stops there.
        log.raw(p, &[0xff; 100]);
        log.raw(p, &[0x00; 70]);
        let r = log.reload();
        assert_eq!(committed(&r, "g"), [(0, 3), (1, 8)]);
        assert_eq!(
            stable(&r, "g"),
            [(0, 3, false), (1, 8, false), (2, -1, false)]
        );
        // Garbage straight into the replay.
        let junk: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        r.replay_chunk(p, 0, &junk);
        r.replay_chunk(p, 0, &[]);
    }

    #[test]
    fn txn_offset_commit_checks_the_group_like_kafka() {
        let cfg = GroupConfig {
            offset_metadata_max_bytes: 4,
            ..GroupConfig::default()
        };
        let log = Arc::new(BatchLog::default());
        let c = coordinator(cfg, log.clone());
        let two = || vec![item(0, 1), item(1, 1)];
        let ill = E::IllegalGeneration.code();
        assert_eq!(
            block_on(c.txn_offset_commit("", &producer(1), two())),
            [E::InvalidGroupId.code(); 2]
        );
        // An unknown group: with a generation, ILLEGAL_GENERATION; without, created.
        let mut member = producer(1);
        member.generation = 1;
        member.member_id = "a".to_string();
        assert_eq!(
            block_on(c.txn_offset_commit("new", &member, two())),
            [ill; 2]
        );
        assert!(!c.group_exists("new"));
        assert_eq!(
            block_on(c.txn_offset_commit("new", &producer(1), two())),
            [0, 0]
        );
        assert!(c.group_exists("new"));

        // A consumer group with member "a" at epoch 1.
        let (a, _) = c
            .consumer_heartbeat("g", hb("a", 0, Some(&[])), &resolve)
            .unwrap();
        member.generation = a.member_epoch;
        assert_eq!(block_on(c.txn_offset_commit("g", &member, two())), [0, 0]);
        let mut stale = member.clone();
        stale.generation += 5;
        assert_eq!(block_on(c.txn_offset_commit("g", &stale, two())), [ill; 2]);
        let mut stranger = member.clone();
        stranger.member_id = "x".to_string();
        assert_eq!(
            block_on(c.txn_offset_commit("g", &stranger, two())),
            [E::UnknownMemberId.code(); 2]
        );
        assert_eq!(
            block_on(c.txn_offset_commit("new", &producer(-1), two())),
            [E::InvalidProducerIdMapping.code(); 2]
        );
        // Without member fields a non-empty consumer group refuses (Kafka).
        assert_eq!(
            block_on(c.txn_offset_commit("g", &producer(1), two())),
            [E::UnknownMemberId.code(); 2]
        );

        // Metadata over the limit: that partition refused, the others written.
        let mut big = item(2, 1);
        big.metadata = "12345".to_string();
        let codes = block_on(c.txn_offset_commit("h", &producer(2), vec![item(0, 1), big]));
        assert_eq!(codes, [0, E::OffsetMetadataTooLarge.code()]);
        assert_eq!(
            stable(&c, "h"),
            [(0, -1, true), (1, -1, false), (2, -1, false)]
        );
    }

    #[test]
    fn an_undurable_txn_commit_is_not_left_pending() {
        let log = Arc::new(BatchLog::default());
        let c = coordinator(GroupConfig::default(), log.clone());
        log.fail_durable.store(true, Ordering::Relaxed);
        assert_eq!(
            txn_commit(&c, "g", 1, &[(0, 1)]),
            [E::CoordinatorNotAvailable.code()]
        );
        assert!(!c.has_pending_offsets("g", "t", 0));
        // Nothing open is left behind: the empty group expires.
        c.expire_offsets(&mut c.lock(), SystemClock.now_ms());
        assert!(!c.group_exists("g"));
    }

    #[test]
    fn deleting_a_group_or_its_offsets_drops_pending_offsets() {
        let log = Arc::new(BatchLog::default());
        let c = coordinator(GroupConfig::default(), log.clone());
        let p = c.partition_for("g");
        txn_commit(&c, "g", 1, &[(0, 5)]);
        assert_eq!(block_on(c.delete_groups(&["g".to_string()])), [0]);
        assert!(!c.group_exists("g"));
        c.complete_txn(p, 1, true);
        assert!(committed(&c, "g").is_empty());
        log.marker(p, 1, true);
        let r = log.reload();
        assert!(
            !r.group_exists("g"),
            "the tombstones drop the pending offsets"
        );
        assert!(committed(&r, "g").is_empty());

        // OffsetDelete: committed or pending, both go.
        let q = c.partition_for("h");
        plain_commit(&c, "h", 0, 1);
        txn_commit(&c, "h", 2, &[(0, 2), (1, 3), (2, 4)]);
        let codes = block_on(c.delete_offsets("h", &[("t".to_string(), 0), ("t".to_string(), 1)]));
        assert_eq!(codes, Ok(vec![0, 0]));
        assert_eq!(
            stable(&c, "h"),
            [(0, -1, false), (1, -1, false), (2, -1, true)]
        );
        c.complete_txn(q, 2, true);
        assert_eq!(committed(&c, "h"), [(2, 4)]);
        log.marker(q, 2, true);
        let r = log.reload();
        assert_eq!(committed(&r, "h"), [(2, 4)]);
    }

    #[test]
    fn pending_offsets_keep_their_partition_and_group_from_expiring() {
        const MIN: i64 = 60_000;
        let cfg = GroupConfig {
            offsets_retention_ms: MIN,
            ..GroupConfig::default()
        };
        let log = Arc::new(BatchLog::default());
        let c = coordinator(cfg, log.clone());
        let p = c.partition_for("g");
        plain_commit(&c, "g", 0, 1);
        plain_commit(&c, "g", 1, 1);
        txn_commit(&c, "g", 1, &[(0, 2)]);
        let later = SystemClock.now_ms() + 10 * MIN;
        c.expire_offsets(&mut c.lock(), later);
        // t-1 expired; t-0 has a pending transactional offset and stays, so does g.
        assert_eq!(committed(&c, "g"), [(0, 1)]);
        c.complete_txn(p, 1, false);
        c.expire_offsets(&mut c.lock(), later);
        assert!(committed(&c, "g").is_empty());
        assert!(!c.group_exists("g"));
        // Only an open transaction left: the group stays.
        txn_commit(&c, "k", 3, &[(0, 2)]);
        c.expire_offsets(&mut c.lock(), later);
        assert!(c.group_exists("k"));
    }
}
