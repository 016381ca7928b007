//! The consumer group protocol (KIP-848), sans-io: ConsumerGroupHeartbeat with
//! server-side assignment, member epochs and the reconciliation rule.
//!
//! - Any change of membership, subscription or subscribed topics' partition counts bumps
//!   the group epoch, and the target assignment is recomputed at once by the assignor
//!   (`assignor`): the assignment epoch follows the group epoch.
//! - A member's `assigned` set is what it was told to own. When its target no longer
//!   holds some of them, they move to `revoking` and the member keeps its epoch; they are
//!   released only when a later heartbeat reports owned partitions without them, or the
//!   member leaves (epoch -1), its session expires or it misses the rebalance timeout.
//! - With nothing left to revoke the member advances to the assignment epoch and gets
//!   the partitions of its target that no other member owns (assigned or revoking); the
//!   rest come on later heartbeats, once their previous owners released them.
//!
//! Time is passed in. Persistence: [`ConsumerGroup::records`] is the group's state as
//! Kafka's KIP-848 `__consumer_offsets` records (group epoch, members, target and
//! current assignments; see `records`), which the coordinator diffs against what it
//! wrote and appends; [`ConsumerGroup::restore`] rebuilds a group from them on start,
//! with every member's session (and pending revocation) timer restarted, as Kafka does.
//! Not persisted: `left_static` (a static member that left with epoch -2 comes back as
//! a plain member whose session restarts) and what was last sent to each member.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::error::ResponseError as E;
use tokio::time::{Duration, Instant};
use uuid::Uuid;

use super::assignor::{self, AssignorMember, Tp};
use super::records::{self, ConsumerMemberValue, CurrentAssignmentValue};

/// One member as read back from `__consumer_offsets`.
#[derive(Debug, Clone)]
pub struct LoadedMember {
    pub id: String,
    pub meta: ConsumerMemberValue,
    pub target: Vec<(Uuid, Vec<i32>)>,
    pub current: Option<CurrentAssignmentValue>,
}

/// Settings of consumer groups, by Kafka's names.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `group.consumer.heartbeat.interval.ms`
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms`
    pub session_timeout_ms: i32,
    /// `group.consumer.assignors`; the first is the default.
    pub assignors: Vec<String>,
    /// `group.consumer.max.size`
    pub max_size: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            heartbeat_interval_ms: 5000,
            session_timeout_ms: 45000,
            assignors: vec![assignor::UNIFORM.to_string(), assignor::RANGE.to_string()],
            max_size: i32::MAX as usize,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    prev_epoch: i32,
    pub subscribed: Vec<String>,
    pub assignor: Option<String>,
    rebalance_timeout_ms: i32,
    /// Partitions the member was told to own.
    pub assigned: BTreeSet<Tp>,
    /// Partitions taken away whose release the member has not confirmed yet.
    pub revoking: BTreeSet<Tp>,
    session_deadline: Instant,
    revoke_deadline: Option<Instant>,
    last_sent: Option<(i32, BTreeSet<Tp>)>,
    /// Left with epoch -2 (a static member that will come back).
    left_static: bool,
}

/// A heartbeat, decoded; topic ids already resolved to names.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatIn {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Option<Vec<String>>,
    pub assignor: Option<String>,
    pub owned: Option<BTreeSet<Tp>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone)]
pub struct HeartbeatOut {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed (by topic name).
    pub assignment: Option<BTreeMap<String, Vec<i32>>>,
}

pub struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: HashMap<String, BTreeSet<Tp>>,
    /// Subscribed topics that exist: name → (id, partitions).
    pub topics: BTreeMap<String, (Uuid, i32)>,
    pub assignor: String,
    pub state_timestamp_ms: i64,
}

impl ConsumerGroup {
    pub fn new(id: &str, now_ms: i64, cfg: &ConsumerConfig) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: HashMap::new(),
            topics: BTreeMap::new(),
            assignor: cfg
                .assignors
                .first()
                .cloned()
                .unwrap_or_else(|| assignor::UNIFORM.to_string()),
            state_timestamp_ms: now_ms,
        }
    }

    /// Kafka's consumer group states: Empty, Reconciling, Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.members.values().all(|m| {
            m.epoch == self.assignment_epoch
                && m.revoking.is_empty()
                && self.target.get(&m.id).is_none_or(|t| *t == m.assigned)
        }) {
            "Stable"
        } else {
            "Reconciling"
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    /// The member a commit or fetch comes from, checked against its epoch.
    pub fn validate_member(&self, member_id: &str, epoch: i32) -> Result<(), E> {
        match self.members.get(member_id) {
            None => Err(E::UnknownMemberId),
            Some(m) if m.epoch != epoch => Err(E::StaleMemberEpoch),
            Some(_) => Ok(()),
        }
    }

    /// OffsetCommit: admin commits (no member, negative epoch) only while empty.
    pub fn validate_offset_commit(&self, member_id: &str, epoch: i32) -> Result<(), E> {
        if epoch < 0 && member_id.is_empty() && self.members.is_empty() {
            return Ok(());
        }
        self.validate_member(member_id, epoch)
    }

    fn bump(&mut self, cfg: &ConsumerConfig, now_ms: i64) {
        self.group_epoch += 1;
        self.state_timestamp_ms = now_ms;
        self.compute_target(cfg);
    }

    fn compute_target(&mut self, cfg: &ConsumerConfig) {
        self.assignor = self.preferred_assignor(cfg);
        let partitions: BTreeMap<String, i32> = self
            .topics
            .iter()
            .map(|(t, (_, n))| (t.clone(), *n))
            .collect();
        let members: Vec<AssignorMember<'_>> = self
            .members
            .values()
            .map(|m| AssignorMember {
                id: &m.id,
                subscribed: &m.subscribed,
                previous: self.target.get(&m.id),
            })
            .collect();
        let target = assignor::assign(&self.assignor, &members, &partitions);
        self.target = target;
        self.assignment_epoch = self.group_epoch;
    }

    fn preferred_assignor(&self, cfg: &ConsumerConfig) -> String {
        // The assignor most members prefer; ties and no preference: the default.
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let default = cfg
            .assignors
            .first()
            .map(String::as_str)
            .unwrap_or(assignor::UNIFORM);
        let best = votes
            .iter()
            .max_by_key(|(name, n)| (**n, **name == default))
            .map(|(name, _)| name.to_string())
            .unwrap_or_else(|| default.to_string());
        best
    }

    /// Re-read the subscribed topics' metadata; bump the epoch if it changed.
    fn refresh_topics(&mut self, resolve: &dyn Fn(&str) -> Option<(Uuid, i32)>) -> bool {
        let fresh: BTreeMap<String, (Uuid, i32)> = self
            .subscribed_topics()
            .into_iter()
            .filter_map(|t| resolve(&t).map(|v| (t, v)))
            .collect();
        if fresh != self.topics {
            self.topics = fresh;
            true
        } else {
            false
        }
    }

    fn remove_member(&mut self, id: &str, cfg: &ConsumerConfig, now_ms: i64) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.bump(cfg, now_ms);
        }
    }

    /// One ConsumerGroupHeartbeat.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatIn,
        cfg: &ConsumerConfig,
        now: Instant,
        now_ms: i64,
        resolve: &dyn Fn(&str) -> Option<(Uuid, i32)>,
    ) -> Result<HeartbeatOut, E> {
        let out = |id: &str, epoch: i32| HeartbeatOut {
            member_id: id.to_string(),
            member_epoch: epoch,
            heartbeat_interval_ms: cfg.heartbeat_interval_ms,
            assignment: None,
        };
        // Leaving.
        if req.member_epoch == -1 || req.member_epoch == -2 {
            let id = match self.members.get(&req.member_id) {
                Some(m) => m.id.clone(),
                None => return Err(E::UnknownMemberId),
            };
            let is_static = req.instance_id.is_some()
                || self
                    .members
                    .get(&id)
                    .is_some_and(|m| m.instance_id.is_some());
            if req.member_epoch == -2 && is_static {
                // A static member leaving for a while: keep its partitions until its
                // session expires or it comes back.
                if let Some(m) = self.members.get_mut(&id) {
                    m.left_static = true;
                    m.session_deadline =
                        now + Duration::from_millis(cfg.session_timeout_ms.max(0) as u64);
                }
                return Ok(out(&id, -2));
            }
            self.remove_member(&id, cfg, now_ms);
            let _ = self.refresh_topics(resolve);
            return Ok(out(&id, -1));
        }
        if req.member_epoch < -2 {
            return Err(E::InvalidRequest);
        }
        if let Some(a) = &req.assignor {
            if !cfg.assignors.iter().any(|x| x == a) {
                return Err(E::UnsupportedAssignor);
            }
        }
        let mut changed = false;
        let id;
        if req.member_epoch == 0 {
            if req.subscribed.is_none() {
                return Err(E::InvalidRequest);
            }
            let wanted = if req.member_id.is_empty() {
                Uuid::new_v4().to_string()
            } else {
                req.member_id.clone()
            };
            // A static member replacing its previous incarnation.
            let previous = req.instance_id.as_ref().and_then(|inst| {
                self.members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(inst) && m.id != wanted)
                    .map(|m| (m.id.clone(), m.left_static))
            });
            let mut took_over = false;
            match previous {
                Some((_, false)) => return Err(E::UnreleasedInstanceId),
                Some((old, true)) => {
                    took_over = true;
                    if let Some(mut m) = self.members.remove(&old) {
                        m.id = wanted.clone();
                        m.left_static = false;
                        m.last_sent = None;
                        self.members.insert(wanted.clone(), m);
                    }
                    if let Some(t) = self.target.remove(&old) {
                        self.target.insert(wanted.clone(), t);
                    }
                }
                None => {}
            }
            if let Some(m) = self.members.get_mut(&wanted) {
                // A rejoin (after fencing): the member owns nothing now. A static member
                // taking over keeps its predecessor's partitions and epoch.
                if !took_over {
                    m.assigned.clear();
                    m.revoking.clear();
                }
                m.left_static = false;
                m.last_sent = None;
            } else {
                if self.members.len() >= cfg.max_size {
                    return Err(E::GroupMaxSizeReached);
                }
                self.members.insert(
                    wanted.clone(),
                    ConsumerMember {
                        id: wanted.clone(),
                        instance_id: req.instance_id.clone(),
                        rack_id: None,
                        client_id: String::new(),
                        client_host: String::new(),
                        epoch: 0,
                        prev_epoch: 0,
                        subscribed: Vec::new(),
                        assignor: None,
                        rebalance_timeout_ms: 300_000,
                        assigned: BTreeSet::new(),
                        revoking: BTreeSet::new(),
                        session_deadline: now,
                        revoke_deadline: None,
                        last_sent: None,
                        left_static: false,
                    },
                );
                changed = true;
            }
            id = wanted;
        } else {
            let Some(m) = self.members.get(&req.member_id) else {
                return Err(E::UnknownMemberId);
            };
            if req.member_epoch != m.epoch && req.member_epoch != m.prev_epoch {
                return Err(E::FencedMemberEpoch);
            }
            id = req.member_id.clone();
        }
        {
            let m = self.members.get_mut(&id).expect("member exists");
            m.session_deadline = now + Duration::from_millis(cfg.session_timeout_ms.max(0) as u64);
            if let Some(mut subs) = req.subscribed.clone() {
                subs.sort();
                subs.dedup();
                if subs != m.subscribed {
                    m.subscribed = subs;
                    changed = true;
                }
            }
            if req.assignor.is_some() && req.assignor != m.assignor {
                m.assignor = req.assignor.clone();
                changed = true;
            }
            if req.rebalance_timeout_ms > 0 {
                m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            }
            if req.instance_id.is_some() {
                m.instance_id = req.instance_id.clone();
            }
            if req.rack_id.is_some() {
                m.rack_id = req.rack_id.clone();
            }
            if !req.client_id.is_empty() {
                m.client_id = req.client_id.clone();
            }
            if !req.client_host.is_empty() {
                m.client_host = req.client_host.clone();
            }
        }
        if self.refresh_topics(resolve) {
            changed = true;
        }
        if changed {
            self.bump(cfg, now_ms);
        }
        self.reconcile(&id, req.owned.as_ref(), req.member_epoch == 0, now, cfg);
        let m = &self.members[&id];
        let mut o = out(&id, m.epoch);
        let sent = (m.epoch, m.assigned.clone());
        // Also when the member is behind (it missed the answer that moved it, e.g. to a
        // broker that crashed right after persisting).
        if req.member_epoch == 0
            || req.member_epoch != m.epoch
            || m.last_sent.as_ref() != Some(&sent)
        {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (t, p) in &m.assigned {
                by_topic.entry(t.clone()).or_default().push(*p);
            }
            o.assignment = Some(by_topic);
            self.members.get_mut(&id).expect("member exists").last_sent = Some(sent);
        }
        Ok(o)
    }

    /// Apply the reconciliation rule to one member (see the module docs).
    fn reconcile(
        &mut self,
        id: &str,
        owned: Option<&BTreeSet<Tp>>,
        joining: bool,
        now: Instant,
        cfg: &ConsumerConfig,
    ) {
        let _ = cfg;
        let target = self.target.get(id).cloned().unwrap_or_default();
        // Partitions other members own (assigned or still revoking).
        let others: BTreeSet<Tp> = self
            .members
            .values()
            .filter(|m| m.id != id)
            .flat_map(|m| m.assigned.iter().chain(m.revoking.iter()).cloned())
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let m = self.members.get_mut(id).expect("member exists");
        if let Some(owned) = owned {
            m.revoking.retain(|tp| owned.contains(tp));
        } else if joining {
            m.revoking.clear();
        }
        let to_revoke: Vec<Tp> = m.assigned.difference(&target).cloned().collect();
        if !to_revoke.is_empty() {
            for tp in to_revoke {
                m.assigned.remove(&tp);
                m.revoking.insert(tp);
            }
            m.revoke_deadline =
                Some(now + Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64));
        }
        if m.revoking.is_empty() {
            m.revoke_deadline = None;
            if m.epoch != assignment_epoch {
                m.prev_epoch = m.epoch;
                m.epoch = assignment_epoch;
            }
            for tp in target {
                if !others.contains(&tp) {
                    m.assigned.insert(tp);
                }
            }
        }
    }

    /// Expire sessions and missed revocations; returns the next deadline.
    pub fn tick(&mut self, cfg: &ConsumerConfig, now: Instant, now_ms: i64) -> Option<Instant> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "consumer group member expired");
            self.remove_member(&id, cfg, now_ms);
        }
        self.members
            .values()
            .flat_map(|m| std::iter::once(m.session_deadline).chain(m.revoke_deadline))
            .min()
    }

    /// The group as `__consumer_offsets` records (key → value), Kafka's KIP-848 types.
    /// Partitions are written by topic id; those of topics the group no longer knows
    /// (unsubscribed or deleted) are left out.
    pub fn records(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let by_id = |set: &BTreeSet<Tp>| -> Vec<(Uuid, Vec<i32>)> {
            let mut by: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
            for (t, p) in set {
                if let Some((id, _)) = self.topics.get(t) {
                    by.entry(*id).or_default().push(*p);
                }
            }
            by.into_iter().collect()
        };
        let g = &self.id;
        let mut out = BTreeMap::new();
        out.insert(
            records::consumer_group_key(g),
            records::encode_epoch_value(self.group_epoch),
        );
        out.insert(
            records::consumer_target_metadata_key(g),
            records::encode_epoch_value(self.assignment_epoch),
        );
        for m in self.members.values() {
            out.insert(
                records::consumer_member_key(g, &m.id),
                records::encode_consumer_member_value(&ConsumerMemberValue {
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed.clone(),
                    subscribed_topic_regex: None,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    server_assignor: m.assignor.clone(),
                }),
            );
            let target = self.target.get(&m.id).cloned().unwrap_or_default();
            out.insert(
                records::consumer_target_member_key(g, &m.id),
                records::encode_target_member_value(&by_id(&target)),
            );
            // Kafka's MemberState: 0 stable, 1 unrevoked, 2 unreleased partitions.
            let state = if !m.revoking.is_empty() {
                1
            } else if target != m.assigned {
                2
            } else {
                0
            };
            out.insert(
                records::consumer_current_assignment_key(g, &m.id),
                records::encode_current_assignment_value(&CurrentAssignmentValue {
                    member_epoch: m.epoch,
                    previous_member_epoch: m.prev_epoch,
                    state,
                    assigned: by_id(&m.assigned),
                    pending_revocation: by_id(&m.revoking),
                }),
            );
        }
        out
    }

    /// Rebuild a group from its records (see [`records`](Self::records)). Sessions and
    /// pending revocations restart now; topic ids are turned back into names with
    /// `topic_name` (partitions of topics gone meanwhile are dropped).
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: &str,
        group_epoch: i32,
        assignment_epoch: i32,
        loaded: Vec<LoadedMember>,
        topic_name: &dyn Fn(&Uuid) -> Option<String>,
        resolve: &dyn Fn(&str) -> Option<(Uuid, i32)>,
        cfg: &ConsumerConfig,
        now: Instant,
        now_ms: i64,
    ) -> ConsumerGroup {
        let mut g = ConsumerGroup::new(id, now_ms, cfg);
        g.group_epoch = group_epoch;
        g.assignment_epoch = assignment_epoch;
        let names = |tps: &[(Uuid, Vec<i32>)]| -> BTreeSet<Tp> {
            let mut out = BTreeSet::new();
            for (tid, ps) in tps {
                if let Some(name) = topic_name(tid) {
                    out.extend(ps.iter().map(|p| (name.clone(), *p)));
                }
            }
            out
        };
        let session = Duration::from_millis(cfg.session_timeout_ms.max(0) as u64);
        for lm in loaded {
            let current = lm.current.unwrap_or_default();
            let assigned = names(&current.assigned);
            let revoking = names(&current.pending_revocation);
            let rebalance_timeout_ms = if lm.meta.rebalance_timeout_ms > 0 {
                lm.meta.rebalance_timeout_ms
            } else {
                300_000
            };
            let revoke_deadline = (!revoking.is_empty())
                .then(|| now + Duration::from_millis(rebalance_timeout_ms as u64));
            let mut subscribed = lm.meta.subscribed_topic_names;
            subscribed.sort();
            subscribed.dedup();
            g.target.insert(lm.id.clone(), names(&lm.target));
            g.members.insert(
                lm.id.clone(),
                ConsumerMember {
                    id: lm.id,
                    instance_id: lm.meta.instance_id,
                    rack_id: lm.meta.rack_id,
                    client_id: lm.meta.client_id,
                    client_host: lm.meta.client_host,
                    epoch: current.member_epoch,
                    prev_epoch: current.previous_member_epoch,
                    subscribed,
                    assignor: lm.meta.server_assignor,
                    rebalance_timeout_ms,
                    last_sent: Some((current.member_epoch, assigned.clone())),
                    assigned,
                    revoking,
                    session_deadline: now + session,
                    revoke_deadline,
                    left_static: false,
                },
            );
        }
        g.assignor = g.preferred_assignor(cfg);
        let _ = g.refresh_topics(resolve);
        g
    }

    /// A member's current and target assignment (ConsumerGroupDescribe).
    pub fn member_assignment(&self, id: &str) -> (BTreeSet<Tp>, BTreeSet<Tp>) {
        let m = &self.members[id];
        (
            m.assigned.clone(),
            self.target.get(id).cloned().unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(t: &str) -> Option<(Uuid, i32)> {
        (t == "t").then_some((Uuid::nil(), 4))
    }

    fn hb(id: &str, epoch: i32, owned: Option<&[i32]>) -> HeartbeatIn {
        HeartbeatIn {
            member_id: id.to_string(),
            member_epoch: epoch,
            subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
            owned: owned.map(|ps| ps.iter().map(|p| ("t".to_string(), *p)).collect()),
            ..Default::default()
        }
    }

    fn parts(o: &HeartbeatOut) -> Vec<i32> {
        o.assignment
            .as_ref()
            .and_then(|a| a.get("t").cloned())
            .unwrap_or_default()
    }

    #[test]
    fn partitions_move_only_after_revocation() {
        let cfg = ConsumerConfig::default();
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", 0, &cfg);
        let a = g
            .heartbeat(hb("a", 0, Some(&[])), &cfg, now, 0, &resolver)
            .unwrap();
        assert_eq!(parts(&a), [0, 1, 2, 3]);
        assert_eq!(a.member_epoch, 1);
        // b joins: it gets nothing until a revokes.
        let b = g
            .heartbeat(hb("b", 0, Some(&[])), &cfg, now, 0, &resolver)
            .unwrap();
        assert_eq!(b.member_epoch, 2);
        assert!(parts(&b).is_empty());
        // a still owns all: told to keep two, stays at epoch 1.
        let a = g
            .heartbeat(hb("a", 1, Some(&[0, 1, 2, 3])), &cfg, now, 0, &resolver)
            .unwrap();
        assert_eq!(a.member_epoch, 1);
        let kept = parts(&a);
        assert_eq!(kept.len(), 2);
        // b still waits.
        let b2 = g
            .heartbeat(hb("b", 2, None), &cfg, now, 0, &resolver)
            .unwrap();
        assert!(b2.assignment.is_none());
        assert_eq!(g.validate_member("a", 2), Err(E::StaleMemberEpoch));
        assert_eq!(g.validate_member("x", 2), Err(E::UnknownMemberId));
        // a acks the revocation: epoch 2; then b gets the rest.
        let a = g
            .heartbeat(hb("a", 1, Some(&kept)), &cfg, now, 0, &resolver)
            .unwrap();
        assert_eq!(a.member_epoch, 2);
        let b3 = g
            .heartbeat(hb("b", 2, None), &cfg, now, 0, &resolver)
            .unwrap();
        assert_eq!(parts(&b3).len(), 2);
        assert!(parts(&b3).iter().all(|p| !kept.contains(p)));
        assert_eq!(g.state(), "Stable");
        // a leaves: b gets everything.
        g.heartbeat(hb("a", -1, None), &cfg, now, 0, &resolver)
            .unwrap();
        let b4 = g
            .heartbeat(hb("b", 2, Some(&parts(&b3))), &cfg, now, 0, &resolver)
            .unwrap();
        assert_eq!(parts(&b4), [0, 1, 2, 3]);
        assert_eq!(b4.member_epoch, 3);
    }

    #[test]
    fn static_member_comes_back_with_its_partitions() {
        let cfg = ConsumerConfig::default();
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", 0, &cfg);
        let stat = |id: &str, epoch: i32| HeartbeatIn {
            instance_id: Some("i1".to_string()),
            ..hb(id, epoch, Some(&[]))
        };
        let a = g.heartbeat(stat("a1", 0), &cfg, now, 0, &resolver).unwrap();
        g.heartbeat(hb("b", 0, Some(&[])), &cfg, now, 0, &resolver)
            .unwrap();
        let a = g
            .heartbeat(stat("a1", a.member_epoch), &cfg, now, 0, &resolver)
            .unwrap();
        let kept = parts(&a);
        assert_eq!(kept.len(), 2);
        let a = g
            .heartbeat(
                HeartbeatIn {
                    owned: Some(kept.iter().map(|p| ("t".to_string(), *p)).collect()),
                    ..stat("a1", a.member_epoch)
                },
                &cfg,
                now,
                0,
                &resolver,
            )
            .unwrap();
        let epoch = a.member_epoch;
        // A second instance with the same id while a1 is active: refused.
        assert_eq!(
            g.heartbeat(stat("a2", 0), &cfg, now, 0, &resolver).err(),
            Some(E::UnreleasedInstanceId)
        );
        // a1 leaves temporarily (-2); a2 takes over the same partitions and epoch.
        let l = g
            .heartbeat(stat("a1", -2), &cfg, now, 0, &resolver)
            .unwrap();
        assert_eq!(l.member_epoch, -2);
        let group_epoch = g.group_epoch;
        let a2 = g.heartbeat(stat("a2", 0), &cfg, now, 0, &resolver).unwrap();
        assert_eq!(a2.member_epoch, epoch);
        assert_eq!(parts(&a2), kept);
        assert_eq!(g.group_epoch, group_epoch, "no rebalance");
        assert!(!g.members.contains_key("a1"));
    }

    #[test]
    fn session_expiry_releases_partitions() {
        let cfg = ConsumerConfig {
            session_timeout_ms: 1000,
            ..Default::default()
        };
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", 0, &cfg);
        g.heartbeat(hb("a", 0, Some(&[])), &cfg, now, 0, &resolver)
            .unwrap();
        let b = g
            .heartbeat(hb("b", 0, Some(&[])), &cfg, now, 0, &resolver)
            .unwrap();
        assert!(parts(&b).is_empty());
        let later = now + Duration::from_millis(800);
        g.heartbeat(hb("b", 2, None), &cfg, later, 0, &resolver)
            .unwrap();
        g.tick(&cfg, now + Duration::from_millis(1100), 0);
        assert!(!g.members.contains_key("a"));
        let b = g
            .heartbeat(
                hb("b", 2, None),
                &cfg,
                now + Duration::from_millis(1200),
                0,
                &resolver,
            )
            .unwrap();
        assert_eq!(parts(&b), [0, 1, 2, 3]);
        assert_eq!(
            g.heartbeat(hb("a", 1, None), &cfg, now, 0, &resolver).err(),
            Some(E::UnknownMemberId)
        );
    }
}
