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
//! - Members subscribe by topic names, a regex (`SubscribedTopicRegex`) or both. The
//!   group resolves its members' regexes against the topics (whole names, internal
//!   topics excluded) when a member brings a regex new to the group, at the first
//!   heartbeat after a topic was created or deleted, and at least every
//!   `group.consumer.regex.refresh.interval.ms`; a member's subscription is its names
//!   plus what its regex resolved to. A changed resolution bumps the group epoch.
//!
//! Time is passed in. Persistence: [`ConsumerGroup::records`] is the group's state as
//! Kafka's KIP-848 `__consumer_offsets` records (group epoch, members, target and
//! current assignments, resolved regexes; see `records`), which the coordinator diffs against what it
//! wrote and appends; [`ConsumerGroup::restore`] rebuilds a group from them on start,
//! with every member's session (and pending revocation) timer restarted, as Kafka does.
//! Not persisted: `left_static` (a static member that left with epoch -2 comes back as
//! a plain member whose session restarts) and what was last sent to each member.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError as E;
use uuid::Uuid;

use super::assignor::{self, AssignorMember, Tp};
use super::records::{self, ConsumerMemberValue, CurrentAssignmentValue, RegexValue};
use super::topic_regex::TopicRegex;

/// The topics as consumer groups see them.
pub trait Topics {
    /// A topic's id and partition count, if it exists and may be assigned.
    fn resolve(&self, name: &str) -> Option<(Uuid, i32)>;
    /// A number that moves whenever a topic is created or deleted.
    fn names_version(&self) -> u64;
    /// Every topic a subscribed regex may match (those `resolve` knows).
    fn for_each_name(&self, f: &mut dyn FnMut(&str));
}

/// A bare resolver (as tests use): topics by name, none listed for regexes.
impl<F: Fn(&str) -> Option<(Uuid, i32)>> Topics for F {
    fn resolve(&self, name: &str) -> Option<(Uuid, i32)> {
        self(name)
    }
    fn names_version(&self) -> u64 {
        0
    }
    fn for_each_name(&self, _f: &mut dyn FnMut(&str)) {}
}

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
    /// `group.consumer.regex.refresh.interval.ms`
    pub regex_refresh_interval_ms: i64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            heartbeat_interval_ms: 5000,
            session_timeout_ms: 45000,
            assignors: vec![assignor::UNIFORM.to_string(), assignor::RANGE.to_string()],
            max_size: i32::MAX as usize,
            regex_refresh_interval_ms: 600_000,
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
    /// Subscribed topic names.
    pub subscribed: Vec<String>,
    /// Subscribed regex (never empty).
    pub regex: Option<String>,
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
    /// `Some("")` drops the member's regex.
    pub subscribed_regex: Option<String>,
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

/// What a subscribed regex resolved to (Kafka's `ResolvedRegularExpression`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRegex {
    pub topics: BTreeSet<String>,
    /// As written to the log: the topic registry's `names_version` in the process that
    /// resolved it (Kafka: the metadata offset).
    pub version: i64,
    pub timestamp_ms: i64,
}

pub struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: HashMap<String, BTreeSet<Tp>>,
    /// Subscribed topics that exist: name → (id, partitions).
    pub topics: BTreeMap<String, (Uuid, i32)>,
    /// The members' regexes, resolved.
    pub regexes: BTreeMap<String, ResolvedRegex>,
    /// The `names_version` the regexes were last resolved at in this process (`None`
    /// after a restore: they are resolved again at the next heartbeat).
    regexes_names_version: Option<u64>,
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
            regexes: BTreeMap::new(),
            regexes_names_version: None,
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

    /// Every topic some member subscribes to, by name or by regex.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| self.member_topics(m))
            .cloned()
            .collect()
    }

    /// A member's subscription: its topic names and what its regex resolved to.
    fn member_topics<'a>(&'a self, m: &'a ConsumerMember) -> impl Iterator<Item = &'a String> {
        let by_regex = m.regex.as_ref().and_then(|r| self.regexes.get(r));
        m.subscribed
            .iter()
            .chain(by_regex.into_iter().flat_map(|r| r.topics.iter()))
    }

    fn regex_in_use(&self, regex: &str) -> bool {
        self.members
            .values()
            .any(|m| m.regex.as_deref() == Some(regex))
    }

    /// Forget the resolutions of regexes no member subscribes to any more.
    fn prune_regexes(&mut self) {
        let used: BTreeSet<String> = self
            .members
            .values()
            .filter_map(|m| m.regex.clone())
            .collect();
        self.regexes.retain(|r, _| used.contains(r));
    }

    /// Resolve the members' regexes again when one is unresolved, a topic was created
    /// or deleted since the last resolution, or that is older than
    /// `group.consumer.regex.refresh.interval.ms`. True when a resolution changed.
    ///
    /// Kafka resolves asynchronously at a heartbeat, at most every 10 s per group;
    /// here it is synchronous and cheap (one linear-time match per topic and regex), at
    /// most once per topic creation or deletion, so a new topic is assigned at the next
    /// heartbeat.
    fn refresh_regexes(&mut self, topics: &dyn Topics, cfg: &ConsumerConfig, now_ms: i64) -> bool {
        let wanted: BTreeSet<String> = self
            .members
            .values()
            .filter_map(|m| m.regex.clone())
            .collect();
        if wanted.is_empty() {
            return false;
        }
        let version = topics.names_version();
        let due = self.regexes_names_version != Some(version)
            || wanted.iter().any(|r| {
                self.regexes.get(r).is_none_or(|res| {
                    now_ms.saturating_sub(res.timestamp_ms) > cfg.regex_refresh_interval_ms
                })
            });
        if !due {
            return false;
        }
        // A pattern that no longer compiles (they are checked on the way in) resolves
        // to nothing, as in Kafka.
        let compiled: Vec<(&String, TopicRegex)> = wanted
            .iter()
            .filter_map(|r| match TopicRegex::new(r) {
                Ok(c) => Some((r, c)),
                Err(e) => {
                    tracing::warn!(group = %self.id, regex = %r, error = %e, "ignoring a subscribed regex that does not compile");
                    None
                }
            })
            .collect();
        let mut found: BTreeMap<&String, BTreeSet<String>> =
            wanted.iter().map(|r| (r, BTreeSet::new())).collect();
        topics.for_each_name(&mut |name| {
            for (r, c) in &compiled {
                if c.matches(name) {
                    if let Some(set) = found.get_mut(*r) {
                        set.insert(name.to_string());
                    }
                }
            }
        });
        let mut changed = false;
        for (r, topics) in found {
            if self.regexes.get(r).map(|res| &res.topics) != Some(&topics) {
                changed = true;
            }
            self.regexes.insert(
                r.clone(),
                ResolvedRegex {
                    topics,
                    version: i64::try_from(version).unwrap_or(i64::MAX),
                    timestamp_ms: now_ms,
                },
            );
        }
        self.regexes_names_version = Some(version);
        changed
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

    /// TxnOffsetCommit (Kafka's `validateOffsetCommit` with `isTransactional`): anyone
    /// while the group has no members when the epoch is negative; else the member and
    /// its epoch, a stale epoch answering ILLEGAL_GENERATION as Kafka translates it.
    pub fn validate_txn_offset_commit(&self, member_id: &str, epoch: i32) -> Result<(), E> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        match self.validate_member(member_id, epoch) {
            Err(E::StaleMemberEpoch) => Err(E::IllegalGeneration),
            r => r,
        }
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
        let subscriptions: Vec<Vec<String>> = self
            .members
            .values()
            .map(|m| {
                let set: BTreeSet<&String> = self.member_topics(m).collect();
                set.into_iter().cloned().collect()
            })
            .collect();
        let members: Vec<AssignorMember<'_>> = self
            .members
            .values()
            .zip(&subscriptions)
            .map(|(m, subscribed)| AssignorMember {
                id: &m.id,
                subscribed,
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
    fn refresh_topics(&mut self, topics: &dyn Topics) -> bool {
        let fresh: BTreeMap<String, (Uuid, i32)> = self
            .subscribed_topics()
            .into_iter()
            .filter_map(|t| topics.resolve(&t).map(|v| (t, v)))
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
            self.prune_regexes();
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
        topics: &dyn Topics,
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
            let _ = self.refresh_topics(topics);
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
        // A regex new to the group must compile; checked before anything changes.
        let regex_invalid = req
            .subscribed_regex
            .as_deref()
            .filter(|r| !r.is_empty() && !self.regex_in_use(r))
            .is_some_and(|r| TopicRegex::new(r).is_err());
        let mut changed = false;
        let id;
        if req.member_epoch == 0 {
            if req.subscribed.is_none() && req.subscribed_regex.is_none() {
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
            if matches!(previous, Some((_, false))) {
                return Err(E::UnreleasedInstanceId);
            }
            if previous.is_none()
                && !self.members.contains_key(&wanted)
                && self.members.len() >= cfg.max_size
            {
                return Err(E::GroupMaxSizeReached);
            }
            if regex_invalid {
                return Err(E::InvalidRegularExpression);
            }
            let mut took_over = false;
            if let Some((old, true)) = previous {
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
                        regex: None,
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
            if regex_invalid {
                return Err(E::InvalidRegularExpression);
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
            if let Some(r) = &req.subscribed_regex {
                let r = (!r.is_empty()).then(|| r.clone());
                if r != m.regex {
                    m.regex = r;
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
        self.prune_regexes();
        if self.refresh_regexes(topics, cfg, now_ms) {
            changed = true;
        }
        if self.refresh_topics(topics) {
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
                    subscribed_topic_regex: m.regex.clone(),
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
        for (regex, r) in &self.regexes {
            out.insert(
                records::consumer_regex_key(g, regex),
                records::encode_regex_value(&RegexValue {
                    topics: r.topics.iter().cloned().collect(),
                    version: r.version,
                    timestamp_ms: r.timestamp_ms,
                }),
            );
        }
        out
    }

    /// Rebuild a group from its records (see [`records`](Self::records)). Sessions and
    /// pending revocations restart now; topic ids are turned back into names with
    /// `topic_name` (partitions of topics gone meanwhile are dropped). The regexes keep
    /// their loaded resolutions until the next heartbeat resolves them again.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: &str,
        group_epoch: i32,
        assignment_epoch: i32,
        loaded: Vec<LoadedMember>,
        regexes: Vec<(String, RegexValue)>,
        topic_name: &dyn Fn(&Uuid) -> Option<String>,
        topics: &dyn Topics,
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
            let regex = lm.meta.subscribed_topic_regex.filter(|r| !r.is_empty());
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
                    regex,
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
        g.regexes = regexes
            .into_iter()
            .map(|(regex, v)| {
                let resolved = ResolvedRegex {
                    topics: v.topics.into_iter().collect(),
                    version: v.version,
                    timestamp_ms: v.timestamp_ms,
                };
                (regex, resolved)
            })
            .collect();
        g.prune_regexes();
        g.assignor = g.preferred_assignor(cfg);
        let _ = g.refresh_topics(topics);
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

    /// Topics for regex tests: name → (partitions, internal), and a names version.
    #[derive(Default)]
    struct FakeTopics {
        topics: BTreeMap<String, (i32, bool)>,
        version: u64,
    }

    impl FakeTopics {
        fn with(list: &[(&str, i32)]) -> FakeTopics {
            let mut t = FakeTopics::default();
            for (name, n) in list {
                t.create(name, *n);
            }
            t.topics.insert("__consumer_offsets".into(), (3, true));
            t
        }
        fn create(&mut self, name: &str, partitions: i32) {
            self.topics.insert(name.to_string(), (partitions, false));
            self.version += 1;
        }
        fn delete(&mut self, name: &str) {
            self.topics.remove(name);
            self.version += 1;
        }
        fn id(name: &str) -> Uuid {
            Uuid::from_u128(u128::from(records::java_string_hash(name) as u32) + 1)
        }
    }

    impl Topics for FakeTopics {
        fn resolve(&self, name: &str) -> Option<(Uuid, i32)> {
            match self.topics.get(name) {
                Some((n, false)) => Some((FakeTopics::id(name), *n)),
                _ => None,
            }
        }
        fn names_version(&self) -> u64 {
            self.version
        }
        fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
            for (name, (_, internal)) in &self.topics {
                if !internal {
                    f(name);
                }
            }
        }
    }

    fn regex_hb(id: &str, epoch: i32, regex: Option<&str>, names: Option<&[&str]>) -> HeartbeatIn {
        HeartbeatIn {
            member_id: id.to_string(),
            member_epoch: epoch,
            subscribed: names.map(|ns| ns.iter().map(|n| n.to_string()).collect()),
            subscribed_regex: regex.map(str::to_string),
            ..Default::default()
        }
    }

    fn tps(o: &HeartbeatOut) -> BTreeSet<Tp> {
        o.assignment
            .iter()
            .flatten()
            .flat_map(|(t, ps)| ps.iter().map(|p| (t.clone(), *p)))
            .collect()
    }

    fn tp_set(list: &[(&str, i32)]) -> BTreeSet<Tp> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn regex_subscription_follows_topic_creation_and_deletion() {
        let cfg = ConsumerConfig::default();
        let now = Instant::now();
        let mut topics = FakeTopics::with(&[("orders-eu", 2), ("orders-us", 1), ("audit", 1)]);
        let mut g = ConsumerGroup::new("g", 0, &cfg);
        let a = g
            .heartbeat(
                regex_hb("a", 0, Some("orders-.*"), None),
                &cfg,
                now,
                0,
                &topics,
            )
            .unwrap();
        assert_eq!(a.member_epoch, 1);
        let owned = tp_set(&[("orders-eu", 0), ("orders-eu", 1), ("orders-us", 0)]);
        assert_eq!(tps(&a), owned);
        assert_eq!(
            g.subscribed_topics(),
            ["orders-eu", "orders-us"].map(String::from).into()
        );
        // Nothing changed: no new epoch, nothing resent.
        let a = g
            .heartbeat(regex_hb("a", 1, None, None), &cfg, now, 0, &topics)
            .unwrap();
        assert_eq!((a.member_epoch, a.assignment.is_some()), (1, false));

        // A matching topic is created: assigned at the next heartbeat; a topic that does
        // not match is not.
        topics.create("orders-asia", 1);
        topics.create("billing", 4);
        let a = g
            .heartbeat(regex_hb("a", 1, None, None), &cfg, now, 0, &topics)
            .unwrap();
        assert_eq!(a.member_epoch, 2);
        let mut owned = owned;
        owned.insert(("orders-asia".into(), 0));
        assert_eq!(tps(&a), owned);

        // A matching topic is deleted: it leaves the assignment.
        topics.delete("orders-us");
        owned.remove(&("orders-us".to_string(), 0));
        let a = g
            .heartbeat(
                HeartbeatIn {
                    owned: Some(owned.clone()),
                    ..regex_hb("a", 2, None, None)
                },
                &cfg,
                now,
                0,
                &topics,
            )
            .unwrap();
        // It was assigned orders-us-0: the member confirms it let it go, then moves on.
        assert_eq!(a.member_epoch, 2);
        let a = g
            .heartbeat(
                HeartbeatIn {
                    owned: Some(owned.clone()),
                    ..regex_hb("a", 2, None, None)
                },
                &cfg,
                now,
                0,
                &topics,
            )
            .unwrap();
        assert_eq!(a.member_epoch, 3);
        assert_eq!(tps(&a), owned);
        assert_eq!(
            g.regexes["orders-.*"].topics,
            ["orders-asia", "orders-eu"].map(String::from).into()
        );

        // `.*` matches every topic but the internal ones.
        let b = g
            .heartbeat(regex_hb("b", 0, Some(".*"), None), &cfg, now, 0, &topics)
            .unwrap();
        assert!(b.member_epoch > 3);
        assert!(g.subscribed_topics().contains("billing"));
        assert!(!g.subscribed_topics().contains("__consumer_offsets"));
        assert!(g
            .target
            .values()
            .flatten()
            .all(|(t, _)| t != "__consumer_offsets"));
    }

    #[test]
    fn members_mix_names_and_regexes_and_switch_between_them() {
        let cfg = ConsumerConfig::default();
        let now = Instant::now();
        let topics = FakeTopics::with(&[("orders-eu", 2), ("audit", 2)]);
        let mut g = ConsumerGroup::new("g", 0, &cfg);
        // librdkafka sends an empty regex with topic names: no regex.
        let a = g
            .heartbeat(
                regex_hb("a", 0, Some(""), Some(&["audit"])),
                &cfg,
                now,
                0,
                &topics,
            )
            .unwrap();
        assert_eq!(tps(&a), tp_set(&[("audit", 0), ("audit", 1)]));
        assert!(g.members["a"].regex.is_none() && g.regexes.is_empty());
        let b = g
            .heartbeat(
                regex_hb("b", 0, Some("orders-.*"), Some(&[])),
                &cfg,
                now,
                0,
                &topics,
            )
            .unwrap();
        assert_eq!(tps(&b), tp_set(&[("orders-eu", 0), ("orders-eu", 1)]));
        // The group's subscription is the union of names and resolved regexes.
        assert_eq!(
            g.subscribed_topics(),
            ["audit", "orders-eu"].map(String::from).into()
        );
        let epoch = g.group_epoch;

        // a switches to the same regex (already resolved): one new epoch, and the two
        // members now share orders-eu; a revokes audit, which nobody wants any more.
        let a = g
            .heartbeat(
                HeartbeatIn {
                    owned: Some(tp_set(&[("audit", 0), ("audit", 1)])),
                    ..regex_hb("a", 1, Some("orders-.*"), Some(&[]))
                },
                &cfg,
                now,
                0,
                &topics,
            )
            .unwrap();
        assert_eq!(g.group_epoch, epoch + 1);
        assert!(tps(&a).is_empty(), "a must first see b release: {a:?}");
        assert_eq!(
            g.subscribed_topics(),
            ["orders-eu"].map(String::from).into()
        );
        assert_eq!(g.regexes.len(), 1);
        let b = g
            .heartbeat(
                HeartbeatIn {
                    owned: Some(tps(&b)),
                    ..regex_hb("b", 2, None, None)
                },
                &cfg,
                now,
                0,
                &topics,
            )
            .unwrap();
        let kept = tps(&b);
        assert_eq!(kept.len(), 1, "b keeps one of the two: {b:?}");
        let b = g
            .heartbeat(
                HeartbeatIn {
                    owned: Some(kept.clone()),
                    ..regex_hb("b", b.member_epoch, None, None)
                },
                &cfg,
                now,
                0,
                &topics,
            )
            .unwrap();
        assert_eq!(b.member_epoch, g.group_epoch);
        // a reports audit released.
        let a = g
            .heartbeat(
                HeartbeatIn {
                    owned: Some(BTreeSet::new()),
                    ..regex_hb("a", a.member_epoch, None, None)
                },
                &cfg,
                now,
                0,
                &topics,
            )
            .unwrap();
        let a_parts = tps(&a);
        assert_eq!(a_parts.len(), 1);
        assert!(a_parts.is_disjoint(&kept), "one owner per partition");
        assert_eq!(g.state(), "Stable");

        // b switches back to names (regex ""): the regex stays resolved for a.
        g.heartbeat(
            HeartbeatIn {
                owned: Some(kept),
                ..regex_hb("b", g.members["b"].epoch, Some(""), Some(&["audit"]))
            },
            &cfg,
            now,
            0,
            &topics,
        )
        .unwrap();
        assert!(g.members["b"].regex.is_none());
        assert_eq!(
            g.subscribed_topics(),
            ["audit", "orders-eu"].map(String::from).into()
        );
        // a leaves: nobody subscribes to the regex, its resolution is dropped.
        g.heartbeat(regex_hb("a", -1, None, None), &cfg, now, 0, &topics)
            .unwrap();
        assert!(g.regexes.is_empty());
        assert!(
            !g.records().keys().any(|k| k[..2] == [0, 16]),
            "no regex record once unused"
        );
    }

    #[test]
    fn invalid_regex_is_refused_before_anything_changes() {
        let cfg = ConsumerConfig::default();
        let now = Instant::now();
        let topics = FakeTopics::with(&[("orders-eu", 2)]);
        let mut g = ConsumerGroup::new("g", 0, &cfg);
        assert_eq!(
            g.heartbeat(
                regex_hb("a", 0, Some("orders-["), None),
                &cfg,
                now,
                0,
                &topics
            )
            .err(),
            Some(E::InvalidRegularExpression)
        );
        assert!(g.members.is_empty() && g.group_epoch == 0);
        // A first heartbeat needs names or a regex.
        assert_eq!(
            g.heartbeat(regex_hb("a", 0, None, None), &cfg, now, 0, &topics)
                .err(),
            Some(E::InvalidRequest)
        );
        let a = g
            .heartbeat(
                regex_hb("a", 0, Some("orders-.*"), None),
                &cfg,
                now,
                0,
                &topics,
            )
            .unwrap();
        let epoch = g.group_epoch;
        assert_eq!(
            g.heartbeat(
                regex_hb("a", a.member_epoch, Some("(a"), None),
                &cfg,
                now,
                0,
                &topics
            )
            .err(),
            Some(E::InvalidRegularExpression)
        );
        assert_eq!(g.members["a"].regex.as_deref(), Some("orders-.*"));
        assert_eq!(g.group_epoch, epoch);
        // An unknown member gets the member error first.
        assert_eq!(
            g.heartbeat(regex_hb("x", 3, Some("(a"), None), &cfg, now, 0, &topics)
                .err(),
            Some(E::UnknownMemberId)
        );
    }

    #[test]
    fn regexes_are_resolved_again_after_the_refresh_interval() {
        let cfg = ConsumerConfig::default();
        let now = Instant::now();
        let topics = FakeTopics::with(&[("orders-eu", 1)]);
        let mut g = ConsumerGroup::new("g", 0, &cfg);
        g.heartbeat(
            regex_hb("a", 0, Some("orders-.*"), None),
            &cfg,
            now,
            1_000,
            &topics,
        )
        .unwrap();
        assert_eq!(g.regexes["orders-.*"].timestamp_ms, 1_000);
        g.heartbeat(regex_hb("a", 1, None, None), &cfg, now, 2_000, &topics)
            .unwrap();
        assert_eq!(g.regexes["orders-.*"].timestamp_ms, 1_000, "nothing to do");
        let later = 1_000 + cfg.regex_refresh_interval_ms + 1;
        g.heartbeat(regex_hb("a", 1, None, None), &cfg, now, later, &topics)
            .unwrap();
        assert_eq!(g.regexes["orders-.*"].timestamp_ms, later);
        assert_eq!(g.group_epoch, 1, "same topics: no rebalance");
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
