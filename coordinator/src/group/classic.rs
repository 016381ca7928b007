//! The classic group protocol's state machine (JoinGroup/SyncGroup/Heartbeat/
//! LeaveGroup), after Kafka's `ClassicGroup` and the classic half of
//! `GroupMetadataManager` (Kafka 4.x).
//!
//! It is sans-io: every method takes `now`, answers either at once or through a
//! oneshot channel that a later call completes, and asks the coordinator to persist
//! the group through [`Store`] requests. Timers are deadlines kept here and fired by
//! [`ClassicGroup::tick`].
//!
//! States: Empty → PreparingRebalance → CompletingRebalance → Stable, and Dead when
//! deleted. Joins during PreparingRebalance wait until every known member rejoined (or
//! the rebalance timeout; the first rebalance of an empty group waits
//! `group.initial.rebalance.delay.ms`, extended while new members keep arriving). Then
//! the generation is bumped, everyone gets a JoinGroup answer (the leader with all
//! members' metadata) and the group waits for the leader's SyncGroup, whose assignment
//! is written to `__consumer_offsets` before anyone gets it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::oneshot;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages as m;

use super::records::{GroupValue, MemberValue};
use super::sb;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl ClassicState {
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }
}

/// Group limits from the broker settings.
#[derive(Debug, Clone)]
pub struct ClassicLimits {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i32,
    pub max_size: usize,
    pub new_member_join_timeout_ms: i32,
}

impl Default for ClassicLimits {
    fn default() -> Self {
        ClassicLimits {
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3000,
            max_size: 1000,
            new_member_join_timeout_ms: 300_000,
        }
    }
}

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    awaiting_join: Option<oneshot::Sender<m::JoinGroupResponse>>,
    awaiting_sync: Option<oneshot::Sender<m::SyncGroupResponse>>,
    is_new: bool,
    heartbeat_deadline: Option<Instant>,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    }

    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Members waiting for a rebalance need no heartbeat; new members always do.
    fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }
}

enum JoinTimer {
    /// The first rebalance of an empty group (`group.initial.rebalance.delay.ms`).
    Initial {
        deadline: Instant,
        delay_ms: i64,
        remaining_ms: i64,
    },
    Regular {
        deadline: Instant,
    },
}

impl JoinTimer {
    fn deadline(&self) -> Instant {
        match self {
            JoinTimer::Initial { deadline, .. } | JoinTimer::Regular { deadline } => *deadline,
        }
    }
}

/// A write the coordinator must make for the group (under the same lock, so the log
/// order is the state order).
#[derive(Debug, Clone, PartialEq)]
pub enum Store {
    /// The group as it is now; nobody waits.
    Group,
    /// The leader's assignment for `generation`: write the group with it, then call
    /// [`ClassicGroup::sync_stored`].
    Sync {
        generation: i32,
        assignment: HashMap<String, Bytes>,
    },
    /// A static member took a new member id in a Stable group: write, then call
    /// [`ClassicGroup::static_join_stored`].
    StaticJoin {
        member_id: String,
        skip_assignment: bool,
        current_leader: Option<String>,
    },
}

/// An answer now or later.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// A JoinGroup request, as the state machine needs it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub require_known_member_id: bool,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v9+ supports `skip_assignment` (KIP-814).
    pub version: i16,
}

pub struct ClassicGroup {
    pub id: String,
    pub state: ClassicState,
    prev_state: ClassicState,
    pub state_timestamp_ms: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id → member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join or expire.
    pending_members: HashMap<String, Instant>,
    pending_sync: HashSet<String>,
    new_member_added: bool,
    initial_delay_ms: i64,
    join_timer: Option<JoinTimer>,
    sync_deadline: Option<(Instant, i32)>,
}

fn join_error(member_id: &str, error: E) -> m::JoinGroupResponse {
    m::JoinGroupResponse::default()
        .with_member_id(sb(member_id))
        .with_error_code(error.code())
        .with_generation_id(-1)
}

fn sync_error(error: E) -> m::SyncGroupResponse {
    m::SyncGroupResponse::default().with_error_code(error.code())
}

fn after(now: Instant, ms: i64) -> Instant {
    now + Duration::from_millis(ms.max(0) as u64)
}

impl ClassicGroup {
    pub fn new(id: &str, now_ms: i64, initial_delay_ms: i32) -> ClassicGroup {
        ClassicGroup {
            id: id.to_string(),
            state: ClassicState::Empty,
            prev_state: ClassicState::Empty,
            state_timestamp_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            new_member_added: false,
            initial_delay_ms: initial_delay_ms.max(0) as i64,
            join_timer: None,
            sync_deadline: None,
        }
    }

    /// A group rebuilt from its `GroupMetadataValue`: members come back (Kafka does the
    /// same), each with a fresh session timeout, so live consumers carry on across a
    /// broker restart and dead ones expire.
    pub fn from_value(
        id: &str,
        v: &GroupValue,
        now: Instant,
        initial_delay_ms: i32,
    ) -> ClassicGroup {
        let mut g = ClassicGroup::new(id, v.current_state_timestamp, initial_delay_ms);
        g.generation = v.generation;
        g.protocol_type = (!v.protocol_type.is_empty()).then(|| v.protocol_type.clone());
        g.protocol_name = v.protocol.clone();
        g.leader = v.leader.clone();
        for mv in &v.members {
            let protocol = v.protocol.clone().unwrap_or_default();
            let member = Member {
                id: mv.member_id.clone(),
                instance_id: mv.group_instance_id.clone(),
                client_id: mv.client_id.clone(),
                client_host: mv.client_host.clone(),
                rebalance_timeout_ms: mv.rebalance_timeout_ms,
                session_timeout_ms: mv.session_timeout_ms,
                protocol_type: v.protocol_type.clone(),
                protocols: vec![(protocol, mv.subscription.clone())],
                assignment: mv.assignment.clone(),
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                heartbeat_deadline: Some(after(now, mv.session_timeout_ms as i64)),
            };
            if let Some(i) = &member.instance_id {
                g.static_members.insert(i.clone(), member.id.clone());
            }
            g.members.insert(member.id.clone(), member);
        }
        if g.leader
            .as_ref()
            .is_some_and(|l| !g.members.contains_key(l))
        {
            g.leader = g.members.keys().next().cloned();
        }
        g.state = if g.members.is_empty() {
            ClassicState::Empty
        } else {
            ClassicState::Stable
        };
        g
    }

    /// The group as `GroupMetadataValue`, with `assignment` instead of the members'
    /// current assignments when given (the leader's, about to be stored).
    pub fn to_value(&self, assignment: Option<&HashMap<String, Bytes>>) -> GroupValue {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|mb| MemberValue {
                    member_id: mb.id.clone(),
                    group_instance_id: mb.instance_id.clone(),
                    client_id: mb.client_id.clone(),
                    client_host: mb.client_host.clone(),
                    rebalance_timeout_ms: mb.rebalance_timeout_ms,
                    session_timeout_ms: mb.session_timeout_ms,
                    subscription: mb.metadata(&protocol),
                    assignment: match assignment {
                        Some(a) => a.get(&mb.id).cloned().unwrap_or_default(),
                        None => mb.assignment.clone(),
                    },
                })
                .collect(),
        }
    }

    pub fn is_empty_of_members(&self) -> bool {
        self.members.is_empty() && self.pending_members.is_empty()
    }

    fn transition(&mut self, to: ClassicState, now_ms: i64) {
        self.prev_state = self.state;
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    /// Mark the group deleted: waiters are told to find the coordinator again.
    pub fn mark_dead(&mut self, now_ms: i64) {
        for mb in self.members.values_mut() {
            if let Some(tx) = mb.awaiting_join.take() {
                let _ = tx.send(join_error(&mb.id, E::CoordinatorNotAvailable));
            }
            if let Some(tx) = mb.awaiting_sync.take() {
                let _ = tx.send(sync_error(E::CoordinatorNotAvailable));
            }
        }
        self.transition(ClassicState::Dead, now_ms);
        self.join_timer = None;
        self.sync_deadline = None;
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|mb| mb.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|mb| mb.awaiting_join.is_some())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            ClassicState::Stable | ClassicState::CompletingRebalance | ClassicState::Empty
        )
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    pub fn subscribed_protocols_supported(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        if self.state == ClassicState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|mb| mb.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member
    /// votes for its most preferred; the most votes win (ties: the leader's order).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|mb| mb.protocols.iter().any(|(x, _)| x == *n))
            })
            .collect();
        let mut votes: Vec<(&String, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for mb in self.members.values() {
            if let Some((name, _)) = mb.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| *c == name) {
                    v.1 += 1;
                }
            }
        }
        let max = votes.iter().map(|(_, v)| *v).max()?;
        votes
            .into_iter()
            .find(|(_, v)| *v == max)
            .map(|(c, _)| c.clone())
    }

    /// Kafka's `validateMember`.
    fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), E> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                None => return Err(E::UnknownMemberId),
                Some(existing) if existing != member_id => return Err(E::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(E::UnknownMemberId);
        }
        Ok(())
    }

    fn reschedule_heartbeat(&mut self, member_id: &str, now: Instant, timeout_ms: Option<i64>) {
        if let Some(mb) = self.members.get_mut(member_id) {
            let t = timeout_ms.unwrap_or(mb.session_timeout_ms as i64);
            mb.heartbeat_deadline = Some(after(now, t));
        }
    }

    fn add_member(&mut self, mut member: Member, now: Instant) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        if let Some(i) = &member.instance_id {
            self.static_members.insert(i.clone(), member.id.clone());
        }
        self.pending_members.remove(&member.id);
        member.heartbeat_deadline = Some(after(now, member.session_timeout_ms as i64));
        self.members.insert(member.id.clone(), member);
    }

    /// Remove a member (or a pending member id) from the group's books.
    fn remove(&mut self, member_id: &str) -> Option<Member> {
        self.pending_members.remove(member_id);
        let mb = self.members.remove(member_id)?;
        if let Some(i) = &mb.instance_id {
            if self.static_members.get(i).is_some_and(|id| id == member_id) {
                self.static_members.remove(i);
            }
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        Some(mb)
    }

    // ----- JoinGroup -----

    pub fn join(
        &mut self,
        req: JoinRequest,
        limits: &ClassicLimits,
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) -> Reply<m::JoinGroupResponse> {
        let is_unknown = req.member_id.is_empty();
        // Kafka's acceptJoiningMember.
        let accept = match self.state {
            ClassicState::Empty | ClassicState::Dead => true,
            ClassicState::PreparingRebalance => {
                self.members
                    .get(&req.member_id)
                    .is_some_and(|mb| mb.awaiting_join.is_some())
                    || self.num_awaiting_join() < limits.max_size
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.members.contains_key(&req.member_id) || self.members.len() < limits.max_size
            }
        };
        if !accept {
            if !is_unknown {
                if let Some(mut mb) = self.remove(&req.member_id) {
                    if let Some(tx) = mb.awaiting_join.take() {
                        let _ = tx.send(join_error("", E::UnknownMemberId));
                    }
                    self.after_member_removed(now, now_ms, stores);
                }
            }
            return Reply::Now(join_error("", E::GroupMaxSizeReached));
        }
        if is_unknown {
            self.join_new_member(req, limits, now, now_ms, stores)
        } else {
            self.join_existing_member(req, limits, now, now_ms, stores)
        }
    }

    fn join_new_member(
        &mut self,
        req: JoinRequest,
        limits: &ClassicLimits,
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) -> Reply<m::JoinGroupResponse> {
        if self.state == ClassicState::Dead {
            return Reply::Now(join_error("", E::CoordinatorNotAvailable));
        }
        if !self.subscribed_protocols_supported(&req.protocol_type, &req.protocols) {
            return Reply::Now(join_error("", E::InconsistentGroupProtocol));
        }
        let prefix = req.instance_id.as_deref().unwrap_or(&req.client_id);
        let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(instance) = req.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self
                    .update_static_member(req, &instance, &old_id, &new_id, now, now_ms, stores);
            }
            return self.add_member_and_rebalance(req, new_id, limits, now, now_ms, stores);
        }
        if req.require_known_member_id {
            self.pending_members
                .insert(new_id.clone(), after(now, req.session_timeout_ms as i64));
            return Reply::Now(join_error(&new_id, E::MemberIdRequired));
        }
        self.add_member_and_rebalance(req, new_id, limits, now, now_ms, stores)
    }

    fn join_existing_member(
        &mut self,
        req: JoinRequest,
        limits: &ClassicLimits,
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) -> Reply<m::JoinGroupResponse> {
        let member_id = req.member_id.clone();
        if self.state == ClassicState::Dead {
            return Reply::Now(join_error(&member_id, E::CoordinatorNotAvailable));
        }
        if !self.subscribed_protocols_supported(&req.protocol_type, &req.protocols) {
            return Reply::Now(join_error(&member_id, E::InconsistentGroupProtocol));
        }
        if self.pending_members.contains_key(&member_id) {
            if req.instance_id.is_some() {
                return Reply::Now(join_error(&member_id, E::UnknownMemberId));
            }
            return self.add_member_and_rebalance(req, member_id, limits, now, now_ms, stores);
        }
        if let Err(e) = self.validate_member(&member_id, req.instance_id.as_deref()) {
            return Reply::Now(join_error(&member_id, e));
        }
        let (matches, is_leader) = match self.members.get(&member_id) {
            Some(mb) => (mb.matches(&req.protocols), self.is_leader(&member_id)),
            None => return Reply::Now(join_error(&member_id, E::UnknownMemberId)),
        };
        match self.state {
            ClassicState::PreparingRebalance => {
                self.update_member_and_rebalance(req, now, now_ms, stores)
            }
            ClassicState::CompletingRebalance if matches => {
                Reply::Now(self.join_response(&member_id, is_leader, false))
            }
            ClassicState::CompletingRebalance => {
                self.update_member_and_rebalance(req, now, now_ms, stores)
            }
            ClassicState::Stable if is_leader || !matches => {
                self.update_member_and_rebalance(req, now, now_ms, stores)
            }
            ClassicState::Stable => Reply::Now(self.join_response(&member_id, false, false)),
            ClassicState::Empty | ClassicState::Dead => {
                Reply::Now(join_error(&member_id, E::UnknownMemberId))
            }
        }
    }

    fn current_members(&self) -> Vec<m::join_group_response::JoinGroupResponseMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|mb| {
                m::join_group_response::JoinGroupResponseMember::default()
                    .with_member_id(sb(&mb.id))
                    .with_group_instance_id(mb.instance_id.as_deref().map(sb))
                    .with_metadata(mb.metadata(&protocol))
            })
            .collect()
    }

    fn join_response(
        &self,
        member_id: &str,
        with_members: bool,
        skip: bool,
    ) -> m::JoinGroupResponse {
        m::JoinGroupResponse::default()
            .with_members(if with_members {
                self.current_members()
            } else {
                Vec::new()
            })
            .with_member_id(sb(member_id))
            .with_generation_id(self.generation)
            .with_protocol_name(self.protocol_name.as_deref().map(sb))
            .with_protocol_type(self.protocol_type.as_deref().map(sb))
            .with_leader(sb(self.leader.as_deref().unwrap_or("")))
            .with_skip_assignment(skip)
    }

    fn add_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        member_id: String,
        limits: &ClassicLimits,
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) -> Reply<m::JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        let member = Member {
            id: member_id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(tx),
            awaiting_sync: None,
            is_new: true,
            heartbeat_deadline: None,
        };
        if self.state == ClassicState::PreparingRebalance && self.prev_state == ClassicState::Empty
        {
            self.new_member_added = true;
        }
        self.add_member(member, now);
        // New members cannot heartbeat until they know their id; a JoinGroup that is never
        // answered (client gone) expires after the new-member join timeout.
        self.reschedule_heartbeat(
            &member_id,
            now,
            Some(limits.new_member_join_timeout_ms as i64),
        );
        self.maybe_prepare_rebalance_or_complete_join(now, now_ms, stores);
        Reply::Later(rx)
    }

    fn update_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) -> Reply<m::JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        if let Some(mb) = self.members.get_mut(&req.member_id) {
            mb.protocols = req.protocols;
            mb.rebalance_timeout_ms = req.rebalance_timeout_ms;
            mb.session_timeout_ms = req.session_timeout_ms;
            mb.client_id = req.client_id;
            mb.client_host = req.client_host;
            if let Some(old) = mb.awaiting_join.replace(tx) {
                let _ = old.send(join_error(&req.member_id, E::UnknownMemberId));
            }
        }
        self.maybe_prepare_rebalance_or_complete_join(now, now_ms, stores);
        Reply::Later(rx)
    }

    #[allow(clippy::too_many_arguments)]
    fn update_static_member(
        &mut self,
        req: JoinRequest,
        instance: &str,
        old_id: &str,
        new_id: &str,
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) -> Reply<m::JoinGroupResponse> {
        let current_leader = self.leader.clone();
        let Some(mut member) = self.members.remove(old_id) else {
            self.static_members.remove(instance);
            return Reply::Now(join_error("", E::UnknownMemberId));
        };
        // The old member's parked requests are fenced.
        if let Some(tx) = member.awaiting_join.take() {
            let _ = tx.send(join_error(old_id, E::FencedInstanceId));
        }
        if let Some(tx) = member.awaiting_sync.take() {
            let _ = tx.send(sync_error(E::FencedInstanceId));
        }
        let was_pending_sync = self.pending_sync.remove(old_id);
        member.id = new_id.to_string();
        member.protocols = req.protocols;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.heartbeat_deadline = Some(after(now, member.session_timeout_ms as i64));
        let (tx, rx) = oneshot::channel();
        member.awaiting_join = Some(tx);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_string());
        }
        if was_pending_sync {
            self.pending_sync.insert(new_id.to_string());
        }
        self.static_members
            .insert(instance.to_string(), new_id.to_string());
        self.members.insert(new_id.to_string(), member);

        match self.state {
            ClassicState::Stable => {
                if self.protocol_name.is_some() && self.select_protocol() == self.protocol_name {
                    let is_leader = self.is_leader(new_id);
                    stores.push(Store::StaticJoin {
                        member_id: new_id.to_string(),
                        skip_assignment: req.version >= 9 && is_leader,
                        current_leader,
                    });
                } else {
                    self.maybe_prepare_rebalance_or_complete_join(now, now_ms, stores);
                }
            }
            ClassicState::CompletingRebalance => self.prepare_rebalance(now, now_ms, stores),
            _ => self.maybe_complete_join_phase(now, now_ms, stores),
        }
        Reply::Later(rx)
    }

    /// The write of a static member's new id finished (or failed).
    pub fn static_join_stored(
        &mut self,
        member_id: &str,
        skip_assignment: bool,
        current_leader: Option<String>,
        result: Result<(), E>,
    ) {
        let resp = match result {
            Ok(()) if skip_assignment => self.join_response(member_id, true, true),
            Ok(()) => {
                let mut r = self.join_response(member_id, false, false);
                r.leader = sb(current_leader.as_deref().unwrap_or(""));
                r
            }
            Err(e) => join_error("", e),
        };
        if let Some(mb) = self.members.get_mut(member_id) {
            if let Some(tx) = mb.awaiting_join.take() {
                let _ = tx.send(resp);
            }
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) {
        if self.can_rebalance() {
            self.prepare_rebalance(now, now_ms, stores);
        } else {
            self.maybe_complete_join_phase(now, now_ms, stores);
        }
    }

    fn maybe_complete_join_phase(&mut self, now: Instant, now_ms: i64, stores: &mut Vec<Store>) {
        if self.state == ClassicState::PreparingRebalance
            && self.has_all_members_joined()
            && self.prev_state != ClassicState::Empty
        {
            self.complete_join(now, now_ms, stores);
        }
    }

    /// Start a rebalance: members awaiting sync are told to rejoin.
    pub fn prepare_rebalance(&mut self, now: Instant, now_ms: i64, stores: &mut Vec<Store>) {
        if self.state == ClassicState::CompletingRebalance {
            self.reset_and_propagate_assignment(E::RebalanceInProgress, now);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let initial = self.state == ClassicState::Empty;
        if initial {
            let delay = self.initial_delay_ms;
            let remaining = (self.rebalance_timeout_ms() - delay).max(0);
            self.join_timer = Some(JoinTimer::Initial {
                deadline: after(now, delay),
                delay_ms: delay,
                remaining_ms: remaining,
            });
        }
        self.transition(ClassicState::PreparingRebalance, now_ms);
        tracing::info!(group = %self.id, generation = self.generation, "preparing to rebalance");
        if !initial {
            if self.has_all_members_joined() {
                self.complete_join(now, now_ms, stores);
            } else {
                self.join_timer = Some(JoinTimer::Regular {
                    deadline: after(now, self.rebalance_timeout_ms()),
                });
            }
        }
    }

    fn complete_join(&mut self, now: Instant, now_ms: i64, stores: &mut Vec<Store>) {
        self.join_timer = None;
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|mb| mb.awaiting_join.is_none() && mb.instance_id.is_none())
            .map(|mb| mb.id.clone())
            .collect();
        for id in &gone {
            self.remove(id);
        }
        if !gone.is_empty() {
            tracing::info!(group = %self.id, members = ?gone, "removed members who did not rejoin");
        }
        if self.state == ClassicState::Dead {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            tracing::warn!(group = %self.id, "no member rejoined; waiting another rebalance timeout");
            self.join_timer = Some(JoinTimer::Regular {
                deadline: after(now, self.rebalance_timeout_ms()),
            });
            return;
        }
        // initNextGeneration
        self.generation += 1;
        self.pending_sync.clear();
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(ClassicState::Empty, now_ms);
            tracing::info!(group = %self.id, generation = self.generation, "group is now empty");
            stores.push(Store::Group);
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(ClassicState::CompletingRebalance, now_ms);
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(), "stabilized group");
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.is_leader(&id);
            let resp = self.join_response(&id, is_leader, false);
            if let Some(mb) = self.members.get_mut(&id) {
                if let Some(tx) = mb.awaiting_join.take() {
                    let _ = tx.send(resp);
                }
                mb.is_new = false;
                mb.heartbeat_deadline = Some(after(now, mb.session_timeout_ms as i64));
            }
            self.pending_sync.insert(id);
        }
        self.sync_deadline = Some((after(now, self.rebalance_timeout_ms()), self.generation));
    }

    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else {
            return false;
        };
        if self
            .members
            .get(&leader)
            .is_some_and(|mb| mb.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.values().find(|mb| mb.awaiting_join.is_some()) {
            Some(mb) => {
                self.leader = Some(mb.id.clone());
                true
            }
            None => false,
        }
    }

    fn reset_and_propagate_assignment(&mut self, error: E, now: Instant) {
        for mb in self.members.values_mut() {
            mb.assignment = Bytes::new();
        }
        self.propagate_assignment(Some(error), now);
    }

    /// Answer every parked SyncGroup: with its assignment, or with `error`.
    fn propagate_assignment(&mut self, error: Option<E>, now: Instant) {
        let (ptype, pname) = if error.is_none() {
            (self.protocol_type.clone(), self.protocol_name.clone())
        } else {
            (None, None)
        };
        for mb in self.members.values_mut() {
            if let Some(tx) = mb.awaiting_sync.take() {
                let _ = tx.send(
                    m::SyncGroupResponse::default()
                        .with_protocol_type(ptype.as_deref().map(sb))
                        .with_protocol_name(pname.as_deref().map(sb))
                        .with_assignment(mb.assignment.clone())
                        .with_error_code(error.map_or(0, |e| e.code())),
                );
                mb.heartbeat_deadline = Some(after(now, mb.session_timeout_ms as i64));
            }
        }
    }

    // ----- SyncGroup -----

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
        stores: &mut Vec<Store>,
    ) -> Reply<m::SyncGroupResponse> {
        if self.state == ClassicState::Dead {
            return Reply::Now(sync_error(E::CoordinatorNotAvailable));
        }
        if let Err(e) = self.validate_member(member_id, instance_id) {
            return Reply::Now(sync_error(e));
        }
        if generation != self.generation {
            return Reply::Now(sync_error(E::IllegalGeneration));
        }
        if protocol_type.is_some_and(|t| self.protocol_type.as_deref() != Some(t))
            || protocol_name.is_some_and(|n| self.protocol_name.as_deref() != Some(n))
        {
            return Reply::Now(sync_error(E::InconsistentGroupProtocol));
        }
        match self.state {
            ClassicState::Empty | ClassicState::Dead => Reply::Now(sync_error(E::UnknownMemberId)),
            ClassicState::PreparingRebalance => Reply::Now(sync_error(E::RebalanceInProgress)),
            ClassicState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(mb) = self.members.get_mut(member_id) {
                    mb.awaiting_sync = Some(tx);
                }
                self.pending_sync.remove(member_id);
                if self.is_leader(member_id) {
                    let mut assignment: HashMap<String, Bytes> = HashMap::new();
                    for (id, a) in assignments {
                        if self.members.contains_key(&id) {
                            assignment.insert(id, a);
                        }
                    }
                    for id in self.members.keys() {
                        assignment.entry(id.clone()).or_default();
                    }
                    stores.push(Store::Sync {
                        generation: self.generation,
                        assignment,
                    });
                }
                Reply::Later(rx)
            }
            ClassicState::Stable => {
                self.pending_sync.remove(member_id);
                self.reschedule_heartbeat(member_id, now, None);
                let assignment = self
                    .members
                    .get(member_id)
                    .map(|mb| mb.assignment.clone())
                    .unwrap_or_default();
                Reply::Now(
                    m::SyncGroupResponse::default()
                        .with_protocol_type(self.protocol_type.as_deref().map(sb))
                        .with_protocol_name(self.protocol_name.as_deref().map(sb))
                        .with_assignment(assignment),
                )
            }
        }
    }

    /// The leader's assignment is durable (or could not be written).
    pub fn sync_stored(
        &mut self,
        generation: i32,
        assignment: HashMap<String, Bytes>,
        result: Result<(), E>,
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) {
        if self.state != ClassicState::CompletingRebalance || generation != self.generation {
            return;
        }
        match result {
            Err(e) => {
                self.reset_and_propagate_assignment(e, now);
                self.maybe_prepare_rebalance_or_complete_join(now, now_ms, stores);
            }
            Ok(()) => {
                for mb in self.members.values_mut() {
                    mb.assignment = assignment.get(&mb.id).cloned().unwrap_or_default();
                }
                self.propagate_assignment(None, now);
                self.transition(ClassicState::Stable, now_ms);
            }
        }
    }

    // ----- Heartbeat -----

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if self.state == ClassicState::Dead {
            return E::CoordinatorNotAvailable.code();
        }
        if let Err(e) = self.validate_member(member_id, instance_id) {
            return e.code();
        }
        if generation != self.generation {
            return E::IllegalGeneration.code();
        }
        match self.state {
            ClassicState::Empty | ClassicState::Dead => E::UnknownMemberId.code(),
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.reschedule_heartbeat(member_id, now, None);
                0
            }
            ClassicState::PreparingRebalance => {
                self.reschedule_heartbeat(member_id, now, None);
                E::RebalanceInProgress.code()
            }
        }
    }

    // ----- LeaveGroup -----

    /// Members leave by member id, or by group.instance.id alone (administrative
    /// removal). Returns each member's error code.
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) -> Result<Vec<i16>, E> {
        if self.state == ClassicState::Dead {
            return Err(E::CoordinatorNotAvailable);
        }
        let mut out = Vec::with_capacity(leaving.len());
        for (member_id, instance_id) in leaving {
            let code = if member_id.is_empty() {
                match instance_id
                    .as_ref()
                    .and_then(|i| self.static_members.get(i))
                    .cloned()
                {
                    Some(id) => {
                        self.remove_member_and_update(&id, now, now_ms, stores);
                        0
                    }
                    None => E::UnknownMemberId.code(),
                }
            } else if self.pending_members.contains_key(member_id) {
                self.pending_members.remove(member_id);
                self.maybe_complete_after_pending_removal(now, now_ms, stores);
                0
            } else {
                match self.validate_member(member_id, instance_id.as_deref()) {
                    Err(e) => e.code(),
                    Ok(()) => {
                        self.remove_member_and_update(member_id, now, now_ms, stores);
                        0
                    }
                }
            };
            out.push(code);
        }
        Ok(out)
    }

    fn maybe_complete_after_pending_removal(
        &mut self,
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) {
        if self.state == ClassicState::PreparingRebalance && self.has_all_members_joined() {
            self.complete_join(now, now_ms, stores);
        }
    }

    /// Kafka's `removeMemberAndUpdateClassicGroup`.
    fn remove_member_and_update(
        &mut self,
        member_id: &str,
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) {
        if let Some(mut mb) = self.remove(member_id) {
            if let Some(tx) = mb.awaiting_join.take() {
                let _ = tx.send(join_error("", E::UnknownMemberId));
            }
            if let Some(tx) = mb.awaiting_sync.take() {
                let _ = tx.send(sync_error(E::UnknownMemberId));
            }
        }
        self.after_member_removed(now, now_ms, stores);
    }

    fn after_member_removed(&mut self, now: Instant, now_ms: i64, stores: &mut Vec<Store>) {
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(now, now_ms, stores)
            }
            ClassicState::PreparingRebalance if self.has_all_members_joined() => {
                self.complete_join(now, now_ms, stores)
            }
            _ => {}
        }
    }

    /// Kafka's offset-commit validation for classic groups. `Ok(true)` when a member
    /// committed (its session is extended).
    pub fn validate_offset_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), E> {
        // The checks a transactional commit makes, then what only a plain one adds.
        self.validate_txn_offset_commit(member_id, instance_id, generation)?;
        if generation < 0 && self.state == ClassicState::Empty {
            return Ok(());
        }
        if generation < 0 && member_id.is_empty() && instance_id.is_none() {
            // No member named, and the group is not empty.
            return Err(E::UnknownMemberId);
        }
        if self.state == ClassicState::CompletingRebalance {
            return Err(E::RebalanceInProgress);
        }
        self.reschedule_heartbeat(member_id, now, None);
        Ok(())
    }

    /// TxnOffsetCommit (Kafka's `validateOffsetCommit` with `isTransactional`): as an
    /// OffsetCommit, except that a request without member and generation (v0-v2) passes
    /// in any state, the group's state is not enforced (no REBALANCE_IN_PROGRESS), and
    /// no heartbeat is counted.
    pub fn validate_txn_offset_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), E> {
        if self.state == ClassicState::Dead {
            return Err(E::CoordinatorNotAvailable);
        }
        if generation < 0 && self.state == ClassicState::Empty {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(E::IllegalGeneration);
            }
        }
        Ok(())
    }

    // ----- timers -----

    /// Fire due deadlines. Returns the next deadline, if any.
    pub fn tick(
        &mut self,
        limits: &ClassicLimits,
        now: Instant,
        now_ms: i64,
        stores: &mut Vec<Store>,
    ) -> Option<Instant> {
        if self.state == ClassicState::Dead {
            return None;
        }
        // Rebalance (join) timer.
        if let Some(t) = &self.join_timer {
            if t.deadline() <= now {
                match *t {
                    JoinTimer::Initial {
                        delay_ms,
                        remaining_ms,
                        ..
                    } if self.new_member_added && remaining_ms != 0 => {
                        self.new_member_added = false;
                        let new_delay =
                            (limits.initial_rebalance_delay_ms as i64).min(remaining_ms);
                        let new_remaining = (remaining_ms - delay_ms).max(0);
                        self.join_timer = Some(JoinTimer::Initial {
                            deadline: after(now, new_delay),
                            delay_ms: new_delay,
                            remaining_ms: new_remaining,
                        });
                    }
                    _ => self.complete_join(now, now_ms, stores),
                }
            }
        }
        // Pending sync.
        if let Some((deadline, generation)) = self.sync_deadline {
            if deadline <= now {
                self.sync_deadline = None;
                if generation == self.generation
                    && matches!(
                        self.state,
                        ClassicState::CompletingRebalance | ClassicState::Stable
                    )
                    && !self.pending_sync.is_empty()
                {
                    let gone: Vec<String> = self.pending_sync.drain().collect();
                    tracing::info!(group = %self.id, members = ?gone, "removing members that did not sync");
                    for id in &gone {
                        if let Some(mut mb) = self.remove(id) {
                            if let Some(tx) = mb.awaiting_sync.take() {
                                let _ = tx.send(sync_error(E::UnknownMemberId));
                            }
                        }
                    }
                    self.prepare_rebalance(now, now_ms, stores);
                }
            }
        }
        // Pending member ids that never came back.
        let expired: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.pending_members.remove(&id);
            self.maybe_complete_after_pending_removal(now, now_ms, stores);
        }
        // Sessions.
        let due: Vec<String> = self
            .members
            .values()
            .filter(|mb| mb.heartbeat_deadline.is_some_and(|d| d <= now))
            .map(|mb| mb.id.clone())
            .collect();
        for id in due {
            let Some(mb) = self.members.get_mut(&id) else {
                continue;
            };
            mb.heartbeat_deadline = None;
            if !mb.has_satisfied_heartbeat() {
                tracing::info!(group = %self.id, member = %id, "member session expired; removing it");
                self.remove_member_and_update(&id, now, now_ms, stores);
            }
        }
        self.next_deadline()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |d: Instant| {
            next = Some(next.map_or(d, |n: Instant| n.min(d)));
        };
        if let Some(t) = &self.join_timer {
            consider(t.deadline());
        }
        if let Some((d, _)) = self.sync_deadline {
            consider(d);
        }
        for d in self.pending_members.values() {
            consider(*d);
        }
        for mb in self.members.values() {
            if let Some(d) = mb.heartbeat_deadline {
                consider(d);
            }
        }
        next
    }

    // ----- describe -----

    pub fn describe(&self) -> m::describe_groups_response::DescribedGroup {
        let stable = self.state == ClassicState::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = self
            .members
            .values()
            .map(|mb| {
                let d = m::describe_groups_response::DescribedGroupMember::default()
                    .with_member_id(sb(&mb.id))
                    .with_group_instance_id(mb.instance_id.as_deref().map(sb))
                    .with_client_id(sb(&mb.client_id))
                    .with_client_host(sb(&mb.client_host));
                if stable {
                    d.with_member_metadata(mb.metadata(&protocol))
                        .with_member_assignment(mb.assignment.clone())
                } else {
                    d
                }
            })
            .collect();
        m::describe_groups_response::DescribedGroup::default()
            .with_group_id(kafka_protocol::messages::GroupId(sb(&self.id)))
            .with_group_state(sb(self.state.name()))
            .with_protocol_type(sb(self.protocol_type.as_deref().unwrap_or("")))
            .with_protocol_data(sb(if stable { protocol.as_str() } else { "" }))
            .with_members(members)
    }

    /// Topics the members subscribe to, when every member's metadata is a consumer
    /// protocol subscription; `None` when it cannot be known.
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.clone()?;
        let mut topics = HashSet::new();
        for mb in self.members.values() {
            let meta = mb.metadata(&protocol);
            for t in super::decode_subscription(&meta)? {
                topics.insert(t);
            }
        }
        Some(topics)
    }

    pub fn member_ids(&self) -> impl Iterator<Item = &String> {
        self.members.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ClassicLimits {
        ClassicLimits {
            min_session_timeout_ms: 1000,
            max_session_timeout_ms: 60_000,
            initial_rebalance_delay_ms: 100,
            max_size: 3,
            new_member_join_timeout_ms: 300_000,
        }
    }

    fn req(member: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            member_id: member.to_string(),
            instance_id: instance.map(str::to_string),
            require_known_member_id: true,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 5000,
            session_timeout_ms: 3000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            version: 9,
        }
    }

    /// The parked request's answer, if it was given.
    fn answer<T>(rx: &mut oneshot::Receiver<T>) -> Option<T> {
        rx.try_recv().ok().flatten()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    struct Fixture {
        g: ClassicGroup,
        l: ClassicLimits,
        t0: Instant,
        stores: Vec<Store>,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                g: ClassicGroup::new("g", 0, 100),
                l: limits(),
                t0: Instant::now(),
                stores: Vec::new(),
            }
        }
        fn join(&mut self, at: u64, r: JoinRequest) -> Reply<m::JoinGroupResponse> {
            self.g
                .join(r, &self.l, self.t0 + ms(at), at as i64, &mut self.stores)
        }
        fn tick(&mut self, at: u64) {
            self.g
                .tick(&self.l, self.t0 + ms(at), at as i64, &mut self.stores);
        }
        /// MEMBER_ID_REQUIRED, then join with the id: a parked join.
        fn join_new(&mut self, at: u64) -> (String, oneshot::Receiver<m::JoinGroupResponse>) {
            let Reply::Now(r) = self.join(at, req("", None)) else {
                panic!("expected MEMBER_ID_REQUIRED at once")
            };
            assert_eq!(r.error_code, E::MemberIdRequired.code());
            let id = r.member_id.to_string();
            let Reply::Later(rx) = self.join(at, req(&id, None)) else {
                panic!("expected a parked join")
            };
            (id, rx)
        }
        fn sync(
            &mut self,
            at: u64,
            member: &str,
            generation: i32,
            assignments: Vec<(String, Bytes)>,
        ) -> Reply<m::SyncGroupResponse> {
            self.g.sync(
                member,
                None,
                generation,
                Some("consumer"),
                Some("range"),
                assignments,
                self.t0 + ms(at),
                &mut self.stores,
            )
        }
        /// Complete a pending leader-sync store as the coordinator would.
        fn finish_store(&mut self, at: u64) {
            for s in std::mem::take(&mut self.stores) {
                if let Store::Sync {
                    generation,
                    assignment,
                } = s
                {
                    let mut more = Vec::new();
                    self.g.sync_stored(
                        generation,
                        assignment,
                        Ok(()),
                        self.t0 + ms(at),
                        at as i64,
                        &mut more,
                    );
                    self.stores.extend(more);
                }
            }
        }
    }

    /// Two members form a group: the initial delay, the leader getting everyone's
    /// metadata, the assignment made durable before anyone gets it, then Stable.
    fn stable_pair(f: &mut Fixture) -> (String, String, i32) {
        let (a, mut rx_a) = f.join_new(0);
        let (b, mut rx_b) = f.join_new(50);
        assert_eq!(f.g.state, ClassicState::PreparingRebalance);
        f.tick(99);
        assert!(
            answer(&mut rx_a).is_none(),
            "answered before the initial delay"
        );
        f.tick(150); // b joined during the delay: extended once
        f.tick(300);
        let ra = answer(&mut rx_a).expect("join answer");
        let rb = answer(&mut rx_b).expect("join answer");
        assert_eq!(f.g.state, ClassicState::CompletingRebalance);
        assert_eq!(ra.generation_id, 1);
        assert_eq!(ra.leader.to_string(), a);
        assert_eq!(
            ra.members.len(),
            2,
            "the leader gets every member's metadata"
        );
        assert!(rb.members.is_empty());
        let Reply::Later(mut sb_rx) = f.sync(310, &b, 1, vec![]) else {
            panic!()
        };
        let Reply::Later(mut sa_rx) = f.sync(
            320,
            &a,
            1,
            vec![
                (a.clone(), Bytes::from_static(b"A")),
                (b.clone(), Bytes::from_static(b"B")),
            ],
        ) else {
            panic!()
        };
        assert!(
            answer(&mut sa_rx).is_none(),
            "nobody gets the assignment before it is durable"
        );
        f.finish_store(330);
        assert_eq!(f.g.state, ClassicState::Stable);
        assert_eq!(
            answer(&mut sa_rx).unwrap().assignment,
            Bytes::from_static(b"A")
        );
        assert_eq!(
            answer(&mut sb_rx).unwrap().assignment,
            Bytes::from_static(b"B")
        );
        (a, b, 1)
    }

    #[test]
    fn join_sync_heartbeat() {
        let mut f = Fixture::new();
        let (a, b, generation) = stable_pair(&mut f);
        let now = f.t0 + ms(400);
        assert_eq!(f.g.heartbeat(&a, None, generation, now), 0);
        assert_eq!(
            f.g.heartbeat(&b, None, generation + 1, now),
            E::IllegalGeneration.code()
        );
        assert_eq!(
            f.g.heartbeat("nobody", None, generation, now),
            E::UnknownMemberId.code()
        );
        // A follower rejoining with the same metadata in Stable just gets the generation.
        let Reply::Now(r) = f.join(410, req(&b, None)) else {
            panic!()
        };
        assert_eq!((r.error_code, r.generation_id), (0, 1));
        assert_eq!(f.g.state, ClassicState::Stable);
        // Offset commits: ok from members of the generation, fenced otherwise.
        assert!(f.g.validate_offset_commit(&a, None, 1, now).is_ok());
        assert_eq!(
            f.g.validate_offset_commit(&a, None, 0, now),
            Err(E::IllegalGeneration)
        );
        assert_eq!(
            f.g.validate_offset_commit("x", None, 1, now),
            Err(E::UnknownMemberId)
        );
        assert_eq!(
            f.g.validate_offset_commit("", None, -1, now),
            Err(E::UnknownMemberId)
        );
    }

    #[test]
    fn session_expiry_triggers_a_rebalance_without_the_dead_member() {
        let mut f = Fixture::new();
        let (a, b, _) = stable_pair(&mut f);
        // a heartbeats, b goes silent.
        for t in (1000..=3000).step_by(500) {
            assert_eq!(f.g.heartbeat(&a, None, 1, f.t0 + ms(t)), 0);
            f.tick(t);
        }
        assert!(
            f.g.members.contains_key(&b),
            "expired before the session timeout"
        );
        f.tick(3400); // b's last heartbeat was at 330 + 3000
        assert!(!f.g.members.contains_key(&b));
        assert_eq!(f.g.state, ClassicState::PreparingRebalance);
        assert_eq!(
            f.g.heartbeat(&a, None, 1, f.t0 + ms(3500)),
            E::RebalanceInProgress.code()
        );
        let Reply::Later(mut rx) = f.join(3600, req(&a, None)) else {
            panic!()
        };
        let r = answer(&mut rx).expect("all remaining members joined: completes at once");
        assert_eq!((r.generation_id, r.members.len()), (2, 1));
    }

    #[test]
    fn leave_and_empty() {
        let mut f = Fixture::new();
        let (a, b, _) = stable_pair(&mut f);
        let now = f.t0 + ms(500);
        let codes =
            f.g.leave(
                &[(b.clone(), None), ("ghost".into(), None)],
                now,
                500,
                &mut f.stores,
            )
            .unwrap();
        assert_eq!(codes, vec![0, E::UnknownMemberId.code()]);
        assert_eq!(f.g.state, ClassicState::PreparingRebalance);
        f.g.leave(&[(a, None)], now, 500, &mut f.stores).unwrap();
        assert_eq!(f.g.state, ClassicState::Empty);
        assert!(
            f.stores.contains(&Store::Group),
            "the empty group is written"
        );
    }

    #[test]
    fn static_member_restart_keeps_generation_and_fences_the_old_id() {
        let mut f = Fixture::new();
        let Reply::Later(mut rx) = f.join(0, req("", Some("i1"))) else {
            panic!()
        };
        f.tick(100);
        let r = answer(&mut rx).expect("joined");
        let old = r.member_id.to_string();
        let Reply::Later(mut srx) =
            f.sync(10, &old, 1, vec![(old.clone(), Bytes::from_static(b"A"))])
        else {
            panic!()
        };
        f.finish_store(20);
        assert_eq!(
            answer(&mut srx).unwrap().assignment,
            Bytes::from_static(b"A")
        );
        // The instance restarts with an empty member id.
        let Reply::Later(mut rx2) = f.join(30, req("", Some("i1"))) else {
            panic!()
        };
        let store = f.stores.pop().expect("the new member id is written first");
        let Store::StaticJoin {
            member_id,
            skip_assignment,
            current_leader,
        } = store
        else {
            panic!("{store:?}")
        };
        assert!(skip_assignment, "v9 leader skips the assignment");
        f.g.static_join_stored(&member_id, skip_assignment, current_leader, Ok(()));
        let r2 = answer(&mut rx2).unwrap();
        assert_eq!(r2.generation_id, 1, "no rebalance");
        assert_ne!(r2.member_id.to_string(), old);
        assert_eq!(f.g.state, ClassicState::Stable);
        let now = f.t0 + ms(40);
        assert_eq!(
            f.g.heartbeat(&old, Some("i1"), 1, now),
            E::FencedInstanceId.code()
        );
        let Reply::Now(s) = f.g.sync(
            &member_id,
            Some("i1"),
            1,
            None,
            None,
            vec![],
            now,
            &mut f.stores,
        ) else {
            panic!()
        };
        assert_eq!(
            s.assignment,
            Bytes::from_static(b"A"),
            "same partitions back"
        );
    }

    #[test]
    fn txn_offset_commit_checks_member_and_generation_but_not_the_state() {
        let mut f = Fixture::new();
        // While the first members wait in CompletingRebalance, a transactional commit
        // with the right generation passes where a plain one is told to wait.
        let (a, mut rx_a) = f.join_new(0);
        f.tick(300);
        answer(&mut rx_a).expect("join answer");
        assert_eq!(f.g.state, ClassicState::CompletingRebalance);
        let now = f.t0 + ms(310);
        assert_eq!(f.g.validate_txn_offset_commit(&a, None, 1), Ok(()));
        assert_eq!(
            f.g.validate_offset_commit(&a, None, 1, now),
            Err(E::RebalanceInProgress)
        );
        assert_eq!(
            f.g.validate_txn_offset_commit(&a, None, 2),
            Err(E::IllegalGeneration)
        );
        assert_eq!(
            f.g.validate_txn_offset_commit("nobody", None, 1),
            Err(E::UnknownMemberId)
        );
        // v0-v2 carry no member: accepted in a non-empty group (a plain commit is not).
        assert_eq!(f.g.validate_txn_offset_commit("", None, -1), Ok(()));
        assert_eq!(
            f.g.validate_offset_commit("", None, -1, now),
            Err(E::UnknownMemberId)
        );
        // A member id without a generation is still checked.
        assert_eq!(
            f.g.validate_txn_offset_commit(&a, None, -1),
            Err(E::IllegalGeneration)
        );
        f.g.mark_dead(400);
        assert_eq!(
            f.g.validate_txn_offset_commit(&a, None, 1),
            Err(E::CoordinatorNotAvailable)
        );
    }

    #[test]
    fn txn_offset_commit_fences_an_old_static_member() {
        let mut f = Fixture::new();
        let Reply::Later(mut rx) = f.join(0, req("", Some("i1"))) else {
            panic!()
        };
        f.tick(100);
        let id = answer(&mut rx).expect("joined").member_id.to_string();
        assert_eq!(f.g.validate_txn_offset_commit(&id, Some("i1"), 1), Ok(()));
        assert_eq!(
            f.g.validate_txn_offset_commit("old-id", Some("i1"), 1),
            Err(E::FencedInstanceId)
        );
        assert_eq!(
            f.g.validate_txn_offset_commit(&id, Some("i2"), 1),
            Err(E::UnknownMemberId)
        );
    }

    #[test]
    fn max_size_and_bad_sync() {
        let mut f = Fixture::new();
        for _ in 0..3 {
            let _ = f.join_new(0);
        }
        f.tick(100);
        assert_eq!(f.g.members.len(), 3);
        let Reply::Now(r) = f.join(200, req("", None)) else {
            panic!()
        };
        // MEMBER_ID_REQUIRED is handed out, the join with the id is refused.
        let Reply::Now(r2) = f.join(200, req(&r.member_id, None)) else {
            panic!()
        };
        assert_eq!(r2.error_code, E::GroupMaxSizeReached.code());
        let any = f.g.members.keys().next().unwrap().clone();
        let Reply::Now(s) = f.sync(200, &any, 7, vec![]) else {
            panic!()
        };
        assert_eq!(s.error_code, E::IllegalGeneration.code());
        let Reply::Now(s) = f.sync(200, "nobody", 1, vec![]) else {
            panic!()
        };
        assert_eq!(s.error_code, E::UnknownMemberId.code());
    }

    #[test]
    fn value_round_trip_restores_members() {
        let mut f = Fixture::new();
        let (a, b, _) = stable_pair(&mut f);
        let v = f.g.to_value(None);
        let g2 = ClassicGroup::from_value("g", &v, f.t0, 100);
        assert_eq!(g2.state, ClassicState::Stable);
        assert_eq!(g2.generation, 1);
        assert_eq!(g2.leader.as_deref(), Some(a.as_str()));
        assert_eq!(g2.members[&b].assignment, Bytes::from_static(b"B"));
    }
}
