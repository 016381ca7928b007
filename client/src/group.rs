//! Classic consumer-group membership: JoinGroup / SyncGroup / Heartbeat / LeaveGroup
//! with the "consumer" protocol and the range assignor, as Kafka's Java client does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages as m;
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;
use runnel_protocol::api::{ApiKey, StrBytes};

use crate::client::{topic_name, Client};
use crate::connection::Connection;
use crate::error::{check, Error, Result};
use crate::TopicPartition;

/// Group settings for [`crate::Consumer::subscribe`].
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub group_id: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
}

impl GroupConfig {
    pub fn new(group_id: impl Into<String>) -> Self {
        GroupConfig {
            group_id: group_id.into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
        }
    }
}

const PROTOCOL_TYPE: &str = "consumer";
const RANGE: &str = "range";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn ms(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

/// Encode a consumer-protocol subscription (version 0).
pub fn encode_subscription(topics: &[String]) -> Result<Bytes> {
    let sub = m::ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| s(t)).collect());
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    sub.encode(&mut buf, 0)
        .map_err(|e| Error::Protocol(format!("subscription: {e:#}")))?;
    Ok(buf.freeze())
}

/// Decode a subscription of any version this crate knows.
pub fn decode_subscription(mut data: Bytes) -> Result<Vec<String>> {
    if data.len() < 2 {
        return Err(Error::Protocol("subscription too short".into()));
    }
    let version = data.get_i16().clamp(0, 3);
    let sub = m::ConsumerProtocolSubscription::decode(&mut data, version)
        .map_err(|e| Error::Protocol(format!("subscription: {e:#}")))?;
    Ok(sub.topics.iter().map(|t| t.to_string()).collect())
}

/// Encode an assignment (version 0).
pub fn encode_assignment(partitions: &[TopicPartition]) -> Result<Bytes> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let assignment = m::ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                m::consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(topic_name(t))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    assignment
        .encode(&mut buf, 0)
        .map_err(|e| Error::Protocol(format!("assignment: {e:#}")))?;
    Ok(buf.freeze())
}

/// Decode an assignment of any version this crate knows; empty bytes is no partitions.
pub fn decode_assignment(mut data: Bytes) -> Result<Vec<TopicPartition>> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    if data.len() < 2 {
        return Err(Error::Protocol("assignment too short".into()));
    }
    let version = data.get_i16().clamp(0, 3);
    let a = m::ConsumerProtocolAssignment::decode(&mut data, version)
        .map_err(|e| Error::Protocol(format!("assignment: {e:#}")))?;
    Ok(a.assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
        })
        .collect())
}

/// Kafka's RangeAssignor: per topic, the members subscribed to it in member-id order
/// each get a contiguous range; the first `partitions % members` get one extra.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> = subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    let topics: BTreeSet<&String> = subscriptions.values().flatten().collect();
    for topic in topics {
        let Some(&count) = partition_counts.get(topic) else {
            continue;
        };
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() || count <= 0 {
            continue;
        }
        let n = members.len() as i32;
        let (per, extra) = (count / n, count % n);
        for (i, member) in members.into_iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            let entry = out.entry(member.clone()).or_default();
            entry.extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
        }
    }
    out
}

/// The state of one member in a classic group.
#[derive(Debug)]
pub(crate) struct Membership {
    pub config: GroupConfig,
    pub topics: Vec<String>,
    pub member_id: String,
    pub generation: i32,
    pub needs_join: bool,
    last_heartbeat: Instant,
    conn: Option<Arc<Connection>>,
}

impl Membership {
    pub fn new(config: GroupConfig, topics: Vec<String>) -> Self {
        Membership {
            config,
            topics,
            member_id: String::new(),
            generation: -1,
            needs_join: true,
            last_heartbeat: Instant::now(),
            conn: None,
        }
    }

    /// This member's own connection to the coordinator.
    async fn conn(&mut self, client: &Client) -> Result<Arc<Connection>> {
        if let Some(c) = &self.conn {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let c = Arc::new(client.dedicated_coordinator(&self.config.group_id).await?);
        self.conn = Some(c.clone());
        Ok(c)
    }

    fn group_id(&self) -> m::GroupId {
        m::GroupId(s(&self.config.group_id))
    }

    /// Join (or rejoin) the group and return this member's assignment.
    pub async fn join(&mut self, client: &Client) -> Result<Vec<TopicPartition>> {
        let metadata = encode_subscription(&self.topics)?;
        for _ in 0..10 {
            let conn = self.conn(client).await?;
            let request = m::JoinGroupRequest::default()
                .with_group_id(self.group_id())
                .with_session_timeout_ms(ms(self.config.session_timeout))
                .with_rebalance_timeout_ms(ms(self.config.rebalance_timeout))
                .with_member_id(s(&self.member_id))
                .with_protocol_type(s(PROTOCOL_TYPE))
                .with_protocols(vec![
                    m::join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(s(RANGE))
                        .with_metadata(metadata.clone()),
                ]);
            let response: m::JoinGroupResponse = conn.call(request).await?;
            match ResponseError::try_from_code(response.error_code) {
                None => {}
                Some(ResponseError::MemberIdRequired) => {
                    self.member_id = response.member_id.to_string();
                    continue;
                }
                Some(ResponseError::UnknownMemberId) => {
                    self.member_id.clear();
                    continue;
                }
                Some(e) if e.is_retriable() || e == ResponseError::RebalanceInProgress => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Some(_) => {
                    check(response.error_code, None, || {
                        format!("join group {}", self.config.group_id)
                    })?;
                }
            }
            self.member_id = response.member_id.to_string();
            self.generation = response.generation_id;
            let assignments = if response.leader == response.member_id {
                self.leader_assign(client, &response.members).await?
            } else {
                Vec::new()
            };
            let request = m::SyncGroupRequest::default()
                .with_group_id(self.group_id())
                .with_generation_id(self.generation)
                .with_member_id(s(&self.member_id))
                .with_assignments(assignments);
            let mut request = request;
            if conn.version(ApiKey::SyncGroup).unwrap_or(0) >= 5 {
                request.protocol_type = Some(s(PROTOCOL_TYPE));
                request.protocol_name = Some(s(RANGE));
            }
            let sync: m::SyncGroupResponse = conn.call(request).await?;
            match ResponseError::try_from_code(sync.error_code) {
                None => {}
                Some(ResponseError::RebalanceInProgress) => continue,
                Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                    self.member_id.clear();
                    continue;
                }
                Some(_) => check(sync.error_code, None, || {
                    format!("sync group {}", self.config.group_id)
                })?,
            }
            self.needs_join = false;
            self.last_heartbeat = Instant::now();
            return decode_assignment(sync.assignment);
        }
        Err(Error::Other(format!(
            "could not join group {} after 10 attempts",
            self.config.group_id
        )))
    }

    async fn leader_assign(
        &self,
        client: &Client,
        members: &[m::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<m::sync_group_request::SyncGroupRequestAssignment>> {
        let mut subscriptions = BTreeMap::new();
        for member in members {
            let topics = decode_subscription(member.metadata.clone())?;
            subscriptions.insert(member.member_id.to_string(), topics);
        }
        let mut counts = BTreeMap::new();
        for topic in subscriptions.values().flatten() {
            if counts.contains_key(topic) {
                continue;
            }
            if let Ok(meta) = client.topic(topic).await {
                counts.insert(topic.clone(), meta.partitions.len() as i32);
            }
        }
        range_assign(&subscriptions, &counts)
            .into_iter()
            .map(|(member, tps)| {
                Ok(m::sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(encode_assignment(&tps)?))
            })
            .collect()
    }

    /// Heartbeat if one is due. Sets `needs_join` when the group is rebalancing or
    /// this member was fenced.
    pub async fn maybe_heartbeat(&mut self, client: &Client) -> Result<()> {
        if self.needs_join || self.last_heartbeat.elapsed() < self.config.heartbeat_interval {
            return Ok(());
        }
        let conn = self.conn(client).await?;
        let response: m::HeartbeatResponse = conn
            .call(
                m::HeartbeatRequest::default()
                    .with_group_id(self.group_id())
                    .with_generation_id(self.generation)
                    .with_member_id(s(&self.member_id)),
            )
            .await?;
        self.last_heartbeat = Instant::now();
        match ResponseError::try_from_code(response.error_code) {
            None => Ok(()),
            Some(ResponseError::RebalanceInProgress) => {
                self.needs_join = true;
                Ok(())
            }
            Some(
                ResponseError::UnknownMemberId
                | ResponseError::IllegalGeneration
                | ResponseError::FencedInstanceId,
            ) => {
                self.member_id.clear();
                self.generation = -1;
                self.needs_join = true;
                Ok(())
            }
            Some(_) => check(response.error_code, None, || {
                format!("heartbeat in group {}", self.config.group_id)
            }),
        }
    }

    /// Leave the group.
    pub async fn leave(&mut self, client: &Client) -> Result<()> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        let conn = self.conn(client).await?;
        let mut request = m::LeaveGroupRequest::default().with_group_id(self.group_id());
        if conn.version(ApiKey::LeaveGroup).unwrap_or(0) >= 3 {
            request.members = vec![m::leave_group_request::MemberIdentity::default()
                .with_member_id(s(&self.member_id))];
        } else {
            request.member_id = s(&self.member_id);
        }
        let response: m::LeaveGroupResponse = conn.call(request).await?;
        self.member_id.clear();
        self.generation = -1;
        self.needs_join = true;
        check(response.error_code, None, || {
            format!("leave group {}", self.config.group_id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignor_matches_kafka() {
        // Two members, topic t0 with 3 partitions, t1 with 3: each topic split 2/1.
        let subs: BTreeMap<String, Vec<String>> = [
            ("m1".to_string(), vec!["t0".to_string(), "t1".to_string()]),
            ("m2".to_string(), vec!["t0".to_string(), "t1".to_string()]),
        ]
        .into();
        let counts: BTreeMap<String, i32> = [("t0".to_string(), 3), ("t1".to_string(), 3)].into();
        let a = range_assign(&subs, &counts);
        let tp = TopicPartition::new;
        assert_eq!(
            a["m1"],
            vec![tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]
        );
        assert_eq!(a["m2"], vec![tp("t0", 2), tp("t1", 2)]);
        // More members than partitions: the last gets nothing.
        let subs: BTreeMap<String, Vec<String>> = ["a", "b", "c"]
            .iter()
            .map(|m| (m.to_string(), vec!["t".to_string()]))
            .collect();
        let a = range_assign(&subs, &[("t".to_string(), 2)].into());
        assert_eq!(a["a"], vec![tp("t", 0)]);
        assert_eq!(a["b"], vec![tp("t", 1)]);
        assert!(a["c"].is_empty());
    }

    #[test]
    fn subscription_and_assignment_round_trip() {
        let topics = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            decode_subscription(encode_subscription(&topics).unwrap()).unwrap(),
            topics
        );
        let tps = vec![
            TopicPartition::new("a", 0),
            TopicPartition::new("a", 2),
            TopicPartition::new("b", 1),
        ];
        assert_eq!(
            decode_assignment(encode_assignment(&tps).unwrap()).unwrap(),
            tps
        );
        assert!(decode_assignment(Bytes::new()).unwrap().is_empty());
        assert!(decode_assignment(Bytes::from_static(&[0, 0, 0xff, 0xff, 0xff])).is_err());
    }
}
