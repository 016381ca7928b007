//! Admin operations: topics, configs, partitions, offsets, records, groups, ACLs and
//! transactions.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages as m;
use kafka_protocol::ResponseError;
use runnel_protocol::api::StrBytes;

use crate::acl::{
    AccessControlEntry, AclBinding, AclBindingFilter, AclOperation, AclPermissionType, PatternType,
    ResourcePattern, ResourceType,
};
use crate::client::{topic_name, Client, PartitionMeta};
use crate::error::{check, Error, Result};
use crate::TopicPartition;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// UNKNOWN_MEMBER_ID, for a member the broker did not answer about.
const E_UNKNOWN_MEMBER_ID: i16 = 25;

fn group_id(g: &str) -> m::GroupId {
    m::GroupId(s(g))
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 for the broker default.
    pub partitions: i32,
    /// -1 for the broker default.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: Vec::new(),
        }
    }

    pub fn config(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((name.into(), value.into()));
        self
    }
}

/// A partition in a [`TopicDescription`].
pub type PartitionInfo = PartitionMeta;

/// What `describe_topics` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub topic_id: [u8; 16],
    pub internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

/// A resource whose configs are described or altered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    /// A broker by node id.
    Broker(i32),
}

impl ConfigResource {
    fn kind(&self) -> i8 {
        match self {
            ConfigResource::Topic(_) => 2,
            ConfigResource::Broker(_) => 4,
        }
    }
    fn name(&self) -> String {
        match self {
            ConfigResource::Topic(t) => t.clone(),
            ConfigResource::Broker(id) => id.to_string(),
        }
    }
}

/// One config entry as described by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub is_sensitive: bool,
    /// Kafka's config source: 1 dynamic topic, 4 static broker, 5 default, ...
    pub source: i8,
}

impl ConfigEntry {
    /// Whether the value is the default (not set on the resource).
    pub fn is_default(&self) -> bool {
        self.source == 5
    }
}

/// An incremental config operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpType {
    Set = 0,
    Delete = 1,
    Append = 2,
    Subtract = 3,
}

/// One change for `incremental_alter_configs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterConfigOp {
    pub name: String,
    pub op: OpType,
    pub value: Option<String>,
}

impl AlterConfigOp {
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        AlterConfigOp {
            name: name.into(),
            op: OpType::Set,
            value: Some(value.into()),
        }
    }
    pub fn delete(name: impl Into<String>) -> Self {
        AlterConfigOp {
            name: name.into(),
            op: OpType::Delete,
            value: None,
        }
    }
}

/// Which offset `list_offsets` looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark).
    Latest,
    /// The first offset whose timestamp is ≥ this (ms since the epoch); -1 (the log end)
    /// when there is none.
    Timestamp(i64),
}

impl OffsetSpec {
    pub(crate) fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// A `list_offsets` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: i64,
    pub timestamp: i64,
}

/// A group in `list_groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
}

/// A member in `describe_groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// What `describe_groups` returns per group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub error_code: i16,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

/// Admin operations on top of a [`Client`].
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
    timeout_ms: i32,
}

impl Admin {
    pub fn new(client: Client) -> Admin {
        Admin {
            client,
            timeout_ms: 30_000,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Create topics. Fails with the first topic error (e.g. TOPIC_ALREADY_EXISTS).
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<()> {
        let request = m::CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        m::create_topics_request::CreatableTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        m::create_topics_request::CreatableTopicConfig::default()
                                            .with_name(s(k))
                                            .with_value(Some(s(v)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response: m::CreateTopicsResponse = self.client.call(request).await?;
        for t in &response.topics {
            self.client.invalidate(&t.name.0);
            check(t.error_code, t.error_message.as_ref(), || {
                format!("create topic {}", t.name.0)
            })?;
        }
        Ok(())
    }

    /// Create one topic with `partitions` partitions.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        self.create_topics(&[NewTopic::new(name, partitions)]).await
    }

    /// Delete topics by name.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<()> {
        let conn = self.client.any_connection().await?;
        let version = conn
            .version(m::ApiKey::DeleteTopics)
            .ok_or(Error::UnsupportedApi(m::ApiKey::DeleteTopics))?;
        let mut request = m::DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms);
        if version >= 6 {
            request.topics = names
                .iter()
                .map(|n| {
                    m::delete_topics_request::DeleteTopicState::default()
                        .with_name(Some(topic_name(n)))
                })
                .collect();
        } else {
            request.topic_names = names.iter().map(|n| topic_name(n)).collect();
        }
        let response: m::DeleteTopicsResponse = conn.call(request).await?;
        for r in &response.responses {
            let name = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            self.client.invalidate(&name);
            check(r.error_code, r.error_message.as_ref(), || {
                format!("delete topic {name}")
            })?;
        }
        Ok(())
    }

    /// Names of all topics, sorted; internal topics only if `include_internal`.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .client
            .refresh_metadata(&[])
            .await?
            .into_iter()
            .filter(|t| include_internal || !t.internal)
            .map(|t| t.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Describe topics; fails if one does not exist.
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<TopicDescription>> {
        let metas = self.client.refresh_metadata(names).await?;
        let mut out = Vec::new();
        for name in names {
            let t = metas
                .iter()
                .find(|t| t.name == *name)
                .ok_or_else(|| Error::Other(format!("no metadata for topic {name}")))?;
            check(t.error_code, None, || format!("describe topic {name}"))?;
            out.push(TopicDescription {
                name: t.name.clone(),
                topic_id: t.topic_id,
                internal: t.internal,
                partitions: t.partitions.clone(),
            });
        }
        Ok(out)
    }

    /// Describe the configs of a resource (all keys).
    pub async fn describe_configs(&self, resource: &ConfigResource) -> Result<Vec<ConfigEntry>> {
        let request = m::DescribeConfigsRequest::default().with_resources(vec![
            m::describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource.kind())
                .with_resource_name(s(&resource.name()))
                .with_configuration_keys(None),
        ]);
        let response: m::DescribeConfigsResponse = self.client.call(request).await?;
        let result = response
            .results
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol("empty DescribeConfigs response".into()))?;
        check(result.error_code, result.error_message.as_ref(), || {
            format!("describe configs of {resource:?}")
        })?;
        Ok(result
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                read_only: c.read_only,
                is_sensitive: c.is_sensitive,
                source: c.config_source,
            })
            .collect())
    }

    /// Apply incremental config changes to a resource.
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<()> {
        let request = m::IncrementalAlterConfigsRequest::default().with_resources(vec![
            m::incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(resource.kind())
                .with_resource_name(s(&resource.name()))
                .with_configs(
                    ops.iter()
                        .map(|o| {
                            m::incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(s(&o.name))
                                .with_config_operation(o.op as i8)
                                .with_value(o.value.as_deref().map(s))
                        })
                        .collect(),
                ),
        ]);
        let response: m::IncrementalAlterConfigsResponse = self.client.call(request).await?;
        for r in &response.responses {
            check(r.error_code, r.error_message.as_ref(), || {
                format!("alter configs of {resource:?}")
            })?;
        }
        Ok(())
    }

    /// Grow `topic` to `total` partitions.
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let request = m::CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms)
            .with_topics(vec![
                m::create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic_name(topic))
                    .with_count(total)
                    .with_assignments(None),
            ]);
        let response: m::CreatePartitionsResponse = self.client.call(request).await?;
        self.client.invalidate(topic);
        for r in &response.results {
            check(r.error_code, r.error_message.as_ref(), || {
                format!("create partitions of {topic}")
            })?;
        }
        Ok(())
    }

    /// Look up offsets (earliest, latest or by timestamp) of partitions.
    pub async fn list_offsets(
        &self,
        specs: &[(TopicPartition, OffsetSpec)],
    ) -> Result<BTreeMap<TopicPartition, ListedOffset>> {
        list_offsets(&self.client, specs, 0).await
    }

    /// Delete records before the given offsets (-1: the high watermark). Returns the new
    /// low watermark per partition.
    pub async fn delete_records(
        &self,
        before: &[(TopicPartition, i64)],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut by_topic: BTreeMap<&str, Vec<m::delete_records_request::DeleteRecordsPartition>> =
            BTreeMap::new();
        for (tp, offset) in before {
            by_topic.entry(&tp.topic).or_default().push(
                m::delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_offset(*offset),
            );
        }
        let request = m::DeleteRecordsRequest::default()
            .with_timeout_ms(self.timeout_ms)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        m::delete_records_request::DeleteRecordsTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let response: m::DeleteRecordsResponse = self.client.call(request).await?;
        let mut out = BTreeMap::new();
        for t in &response.topics {
            for p in &t.partitions {
                let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                check(p.error_code, None, || {
                    format!("delete records of {}-{}", tp.topic, tp.partition)
                })?;
                out.insert(tp, p.low_watermark);
            }
        }
        Ok(out)
    }

    /// All groups the broker knows.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let response: m::ListGroupsResponse =
            self.client.call(m::ListGroupsRequest::default()).await?;
        check(response.error_code, None, || "list groups".into())?;
        let mut out: Vec<GroupListing> = response
            .groups
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Describe classic groups.
    pub async fn describe_groups(&self, groups: &[&str]) -> Result<Vec<GroupDescription>> {
        let mut out = Vec::new();
        for g in groups {
            let conn = self.client.coordinator(g).await?;
            let response: m::DescribeGroupsResponse = conn
                .call(m::DescribeGroupsRequest::default().with_groups(vec![group_id(g)]))
                .await?;
            for d in response.groups {
                out.push(GroupDescription {
                    group_id: d.group_id.0.to_string(),
                    error_code: d.error_code,
                    state: d.group_state.to_string(),
                    protocol_type: d.protocol_type.to_string(),
                    protocol: d.protocol_data.to_string(),
                    members: d
                        .members
                        .into_iter()
                        .map(|mm| GroupMember {
                            member_id: mm.member_id.to_string(),
                            group_instance_id: mm.group_instance_id.map(|i| i.to_string()),
                            client_id: mm.client_id.to_string(),
                            client_host: mm.client_host.to_string(),
                            metadata: mm.member_metadata.to_vec(),
                            assignment: mm.member_assignment.to_vec(),
                        })
                        .collect(),
                });
            }
        }
        Ok(out)
    }

    /// Committed offsets of a group: of `partitions`, or of everything it committed if
    /// `None`. Partitions without a committed offset are left out.
    pub async fn fetch_group_offsets(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        fetch_group_offsets(&self.client, group, partitions).await
    }

    /// Commit offsets for a group as an admin (generation -1, no member id); the broker
    /// accepts this only while the group has no active members.
    pub async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        commit_offsets(&self.client, group, -1, "", offsets).await
    }

    /// Remove members from a classic group as an admin (LeaveGroup v3+ with member
    /// identities, as Kafka's `removeMembersFromConsumerGroup`). Each member is
    /// `(member_id, group_instance_id)`. The group rebalances without them, or becomes
    /// Empty when none are left; a removed consumer that is still running gets
    /// UNKNOWN_MEMBER_ID on its next heartbeat and rejoins. Returns each member's error
    /// code (0 for removed).
    pub async fn remove_group_members(
        &self,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>> {
        let conn = self.client.coordinator(group).await?;
        if conn.version(m::ApiKey::LeaveGroup).unwrap_or(0) < 3 {
            return Err(Error::UnsupportedApi(m::ApiKey::LeaveGroup));
        }
        let request = m::LeaveGroupRequest::default()
            .with_group_id(group_id(group))
            .with_members(
                members
                    .iter()
                    .map(|(id, instance)| {
                        m::leave_group_request::MemberIdentity::default()
                            .with_member_id(s(id))
                            .with_group_instance_id(instance.as_deref().map(s))
                    })
                    .collect(),
            );
        let response: m::LeaveGroupResponse = conn.call(request).await?;
        check(response.error_code, None, || {
            format!("remove members of group {group}")
        })?;
        // One answer per member, in request order.
        Ok((0..members.len())
            .map(|i| {
                response
                    .members
                    .get(i)
                    .map_or(E_UNKNOWN_MEMBER_ID, |r| r.error_code)
            })
            .collect())
    }

    /// Remove a member from a KIP-848 consumer group (`group.protocol=consumer`) as an
    /// admin: a ConsumerGroupHeartbeat with member epoch -1 on its behalf, the request the
    /// member itself sends to leave. The group reassigns its partitions; the member, if
    /// still running, gets UNKNOWN_MEMBER_ID on its next heartbeat and joins again.
    /// (LeaveGroup only removes members of classic groups.)
    pub async fn remove_consumer_group_member(&self, group: &str, member_id: &str) -> Result<()> {
        let conn = self.client.coordinator(group).await?;
        let request = m::ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group_id(group))
            .with_member_id(s(member_id))
            .with_member_epoch(-1);
        let response: m::ConsumerGroupHeartbeatResponse = conn.call(request).await?;
        check(response.error_code, response.error_message.as_ref(), || {
            format!("remove member {member_id} from group {group}")
        })
    }

    /// Delete groups (they must be empty).
    pub async fn delete_groups(&self, groups: &[&str]) -> Result<()> {
        for g in groups {
            let conn = self.client.coordinator(g).await?;
            let response: m::DeleteGroupsResponse = conn
                .call(m::DeleteGroupsRequest::default().with_groups_names(vec![group_id(g)]))
                .await?;
            for r in &response.results {
                check(r.error_code, None, || {
                    format!("delete group {}", r.group_id.0)
                })?;
            }
        }
        Ok(())
    }
}

/// How long ListOffsets is retried through retriable errors, such as a new topic's
/// partitions that have no leader yet (the Java Admin's `default.api.timeout.ms` is 60 s).
const LIST_OFFSETS_RETRY_FOR: Duration = Duration::from_secs(30);

pub(crate) async fn list_offsets(
    client: &Client,
    specs: &[(TopicPartition, OffsetSpec)],
    isolation_level: i8,
) -> Result<BTreeMap<TopicPartition, ListedOffset>> {
    let deadline = tokio::time::Instant::now() + LIST_OFFSETS_RETRY_FOR;
    let mut backoff = Duration::from_millis(50);
    loop {
        match list_offsets_once(client, specs, isolation_level).await {
            // A missing topic is answered at once rather than waited for.
            Err(e)
                if e.is_retriable()
                    && e.code() != Some(ResponseError::UnknownTopicOrPartition.code())
                    && tokio::time::Instant::now() + backoff < deadline =>
            {
                // The leader may have moved or not be known yet: look it up again.
                for (tp, _) in specs {
                    client.invalidate(&tp.topic);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            answer => return answer,
        }
    }
}

async fn list_offsets_once(
    client: &Client,
    specs: &[(TopicPartition, OffsetSpec)],
    isolation_level: i8,
) -> Result<BTreeMap<TopicPartition, ListedOffset>> {
    // Group by leader, then by topic.
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<(i32, i64)>>> = BTreeMap::new();
    for (tp, spec) in specs {
        let leader = client.leader(&tp.topic, tp.partition).await?;
        by_leader
            .entry(leader)
            .or_default()
            .entry(tp.topic.clone())
            .or_default()
            .push((tp.partition, spec.timestamp()));
    }
    let mut out = BTreeMap::new();
    for (leader, topics) in by_leader {
        let conn = client.node_connection(leader).await?;
        let request = m::ListOffsetsRequest::default()
            .with_replica_id(m::BrokerId(-1))
            .with_isolation_level(isolation_level)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        m::list_offsets_request::ListOffsetsTopic::default()
                            .with_name(topic_name(&t))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|(p, ts)| {
                                        m::list_offsets_request::ListOffsetsPartition::default()
                                            .with_partition_index(p)
                                            .with_timestamp(ts)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response: m::ListOffsetsResponse = conn.call(request).await?;
        for t in &response.topics {
            for p in &t.partitions {
                let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                check(p.error_code, None, || {
                    format!("list offsets of {}-{}", tp.topic, tp.partition)
                })?;
                out.insert(
                    tp,
                    ListedOffset {
                        offset: p.offset,
                        timestamp: p.timestamp,
                    },
                );
            }
        }
    }
    Ok(out)
}

pub(crate) async fn fetch_group_offsets(
    client: &Client,
    group: &str,
    partitions: Option<&[TopicPartition]>,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let conn = client.coordinator(group).await?;
    let topics = partitions.map(|ps| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in ps {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                m::offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partition_indexes(ps)
            })
            .collect()
    });
    let request = m::OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(topics);
    let response: m::OffsetFetchResponse = conn.call(request).await?;
    check(response.error_code, None, || {
        format!("fetch offsets of group {group}")
    })?;
    let mut out = BTreeMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
            check(p.error_code, None, || {
                format!(
                    "fetch offset of group {group} for {}-{}",
                    tp.topic, tp.partition
                )
            })?;
            if p.committed_offset >= 0 {
                out.insert(tp, p.committed_offset);
            }
        }
    }
    Ok(out)
}

pub(crate) async fn commit_offsets(
    client: &Client,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &[(TopicPartition, i64)],
) -> Result<()> {
    let conn = client.coordinator(group).await?;
    let mut by_topic: BTreeMap<&str, Vec<m::offset_commit_request::OffsetCommitRequestPartition>> =
        BTreeMap::new();
    for (tp, offset) in offsets {
        by_topic.entry(&tp.topic).or_default().push(
            m::offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(*offset),
        );
    }
    let request = m::OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    m::offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let response: m::OffsetCommitResponse = conn.call(request).await?;
    for t in &response.topics {
        for p in &t.partitions {
            check(p.error_code, None, || {
                format!(
                    "commit offset of group {group} for {}-{}",
                    t.name.0, p.partition_index
                )
            })?;
        }
    }
    Ok(())
}

fn decode_code<T>(code: i8, what: &str, from: fn(i8) -> Option<T>) -> Result<T> {
    from(code).ok_or_else(|| Error::Protocol(format!("unknown {what} code {code} in an ACL")))
}

fn opt_s(v: &Option<String>) -> Option<StrBytes> {
    v.as_deref().map(s)
}

/// The ACL APIs (KIP-140): sent to any broker, as the Java Admin does.
impl Admin {
    /// Create ACLs (CreateAcls). Fails with the first binding the broker refused.
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<()> {
        if bindings.is_empty() {
            return Ok(());
        }
        let creations = bindings
            .iter()
            .map(|b| {
                m::create_acls_request::AclCreation::default()
                    .with_resource_type(b.pattern.resource_type.code())
                    .with_resource_name(s(&b.pattern.name))
                    .with_resource_pattern_type(b.pattern.pattern_type.code())
                    .with_principal(s(&b.entry.principal))
                    .with_host(s(&b.entry.host))
                    .with_operation(b.entry.operation.code())
                    .with_permission_type(b.entry.permission.code())
            })
            .collect();
        let response: m::CreateAclsResponse = self
            .client
            .call(m::CreateAclsRequest::default().with_creations(creations))
            .await?;
        if response.results.len() != bindings.len() {
            return Err(Error::Protocol(format!(
                "CreateAcls: {} results for {} ACLs",
                response.results.len(),
                bindings.len()
            )));
        }
        for (r, b) in response.results.iter().zip(bindings) {
            check(r.error_code, r.error_message.as_ref(), || {
                format!("create ACL {} {}", b.pattern, b.entry)
            })?;
        }
        Ok(())
    }

    /// The ACLs a filter selects (DescribeAcls).
    pub async fn describe_acls(&self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        let request = m::DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(opt_s(&filter.name))
            .with_pattern_type_filter(filter.pattern_type.code())
            .with_principal_filter(opt_s(&filter.principal))
            .with_host_filter(opt_s(&filter.host))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let response: m::DescribeAclsResponse = self.client.call(request).await?;
        check(response.error_code, response.error_message.as_ref(), || {
            "describe ACLs".into()
        })?;
        let mut out = Vec::new();
        for r in &response.resources {
            let pattern = ResourcePattern {
                resource_type: decode_code(
                    r.resource_type,
                    "resource type",
                    ResourceType::from_code,
                )?,
                name: r.resource_name.to_string(),
                pattern_type: decode_code(r.pattern_type, "pattern type", PatternType::from_code)?,
            };
            for a in &r.acls {
                out.push(AclBinding {
                    pattern: pattern.clone(),
                    entry: AccessControlEntry {
                        principal: a.principal.to_string(),
                        host: a.host.to_string(),
                        operation: decode_code(a.operation, "operation", AclOperation::from_code)?,
                        permission: decode_code(
                            a.permission_type,
                            "permission",
                            AclPermissionType::from_code,
                        )?,
                    },
                });
            }
        }
        Ok(out)
    }

    /// Delete the ACLs the filters select (DeleteAcls); returns, per filter, the ACLs it
    /// deleted.
    pub async fn delete_acls(&self, filters: &[AclBindingFilter]) -> Result<Vec<Vec<AclBinding>>> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let request = m::DeleteAclsRequest::default().with_filters(
            filters
                .iter()
                .map(|f| {
                    m::delete_acls_request::DeleteAclsFilter::default()
                        .with_resource_type_filter(f.resource_type.code())
                        .with_resource_name_filter(opt_s(&f.name))
                        .with_pattern_type_filter(f.pattern_type.code())
                        .with_principal_filter(opt_s(&f.principal))
                        .with_host_filter(opt_s(&f.host))
                        .with_operation(f.operation.code())
                        .with_permission_type(f.permission.code())
                })
                .collect(),
        );
        let response: m::DeleteAclsResponse = self.client.call(request).await?;
        if response.filter_results.len() != filters.len() {
            return Err(Error::Protocol(format!(
                "DeleteAcls: {} results for {} filters",
                response.filter_results.len(),
                filters.len()
            )));
        }
        let mut out = Vec::new();
        for (r, f) in response.filter_results.iter().zip(filters) {
            check(r.error_code, r.error_message.as_ref(), || {
                format!("delete ACLs matching {}", f.pattern_string())
            })?;
            let mut deleted = Vec::new();
            for a in &r.matching_acls {
                check(a.error_code, a.error_message.as_ref(), || {
                    format!("delete ACL on {}", a.resource_name.as_str())
                })?;
                deleted.push(AclBinding {
                    pattern: ResourcePattern {
                        resource_type: decode_code(
                            a.resource_type,
                            "resource type",
                            ResourceType::from_code,
                        )?,
                        name: a.resource_name.to_string(),
                        pattern_type: decode_code(
                            a.pattern_type,
                            "pattern type",
                            PatternType::from_code,
                        )?,
                    },
                    entry: AccessControlEntry {
                        principal: a.principal.to_string(),
                        host: a.host.to_string(),
                        operation: decode_code(a.operation, "operation", AclOperation::from_code)?,
                        permission: decode_code(
                            a.permission_type,
                            "permission",
                            AclPermissionType::from_code,
                        )?,
                    },
                });
            }
            out.push(deleted);
        }
        Ok(out)
    }
}

/// A transaction in `list_transactions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    /// Kafka's state name: Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
    /// CompleteAbort, Dead, PrepareEpochFence.
    pub state: String,
    /// The broker (transaction coordinator) that listed it.
    pub coordinator_id: i32,
}

/// Filters of `list_transactions`; the default lists every transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListTransactionsOptions {
    /// Only these states (empty: all).
    pub states: Vec<String>,
    /// Only these producer ids (empty: all).
    pub producer_ids: Vec<i64>,
    /// KIP-994: only transactions running longer than this many ms; negative for all.
    /// Needs ListTransactions v1.
    pub duration_filter_ms: i64,
}

impl Default for ListTransactionsOptions {
    fn default() -> Self {
        ListTransactionsOptions {
            states: Vec::new(),
            producer_ids: Vec::new(),
            duration_filter_ms: -1,
        }
    }
}

/// What `describe_transactions` returns per transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    /// The broker (transaction coordinator) that answered.
    pub coordinator_id: i32,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// When the current transaction started (ms); `None` when none is open.
    pub start_time_ms: Option<i64>,
    /// The partitions of the current transaction (and, while it completes, those
    /// still waiting for their marker), sorted.
    pub partitions: Vec<TopicPartition>,
}

/// A producer with state on a partition (`describe_producers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    pub producer_id: i64,
    pub producer_epoch: i32,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// The coordinator epoch of its last transaction marker; `None` before any.
    pub coordinator_epoch: Option<i32>,
    /// The first offset of its open transaction; `None` when none is open.
    pub current_txn_start_offset: Option<i64>,
}

/// The transaction to abort on one partition (Kafka's `AbortTransactionSpec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortTransactionSpec<'a> {
    pub partition: &'a TopicPartition,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
}

/// The transaction APIs of KIP-664, routed as the Java Admin routes them:
/// ListTransactions to every broker, DescribeTransactions to each id's coordinator,
/// DescribeProducers and WriteTxnMarkers to the partition leader.
impl Admin {
    /// The transactional ids every broker coordinates, sorted by id (ListTransactions).
    pub async fn list_transactions(
        &self,
        options: &ListTransactionsOptions,
    ) -> Result<Vec<TransactionListing>> {
        self.client.refresh_metadata(&[]).await?;
        let mut nodes: Vec<i32> = self.client.brokers().iter().map(|b| b.node_id).collect();
        if nodes.is_empty() {
            return Err(Error::Other("the metadata lists no brokers".into()));
        }
        nodes.sort_unstable();
        let mut out = Vec::new();
        for node in nodes {
            let conn = self.client.node_connection(node).await?;
            let version = conn
                .version(m::ApiKey::ListTransactions)
                .ok_or(Error::UnsupportedApi(m::ApiKey::ListTransactions))?;
            // v0 has no duration filter: asking a v0 broker for one would list everything.
            if options.duration_filter_ms >= 0 && version < 1 {
                return Err(Error::Other(format!(
                    "broker {node} does not support filtering transactions by duration \
                     (ListTransactions v1, KIP-994)"
                )));
            }
            let request = m::ListTransactionsRequest::default()
                .with_state_filters(options.states.iter().map(|v| s(v)).collect())
                .with_producer_id_filters(
                    options
                        .producer_ids
                        .iter()
                        .map(|p| m::ProducerId(*p))
                        .collect(),
                )
                .with_duration_filter(options.duration_filter_ms);
            let response: m::ListTransactionsResponse = conn.call(request).await?;
            check(response.error_code, None, || {
                format!("list transactions on broker {node}")
            })?;
            out.extend(
                response
                    .transaction_states
                    .into_iter()
                    .map(|t| TransactionListing {
                        transactional_id: t.transactional_id.0.to_string(),
                        producer_id: t.producer_id.0,
                        state: t.transaction_state.to_string(),
                        coordinator_id: node,
                    }),
            );
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// Describe transactional ids, each at its coordinator (DescribeTransactions): per
    /// id its description or its error (TRANSACTIONAL_ID_NOT_FOUND for an id the
    /// coordinator does not know).
    pub async fn describe_transactions(
        &self,
        ids: &[&str],
    ) -> Result<BTreeMap<String, Result<TransactionDescription>>> {
        // Ids by coordinator, so each coordinator gets one request.
        let mut by_node: BTreeMap<i32, (std::sync::Arc<crate::Connection>, Vec<&str>)> =
            BTreeMap::new();
        let distinct: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
        for id in distinct {
            let (node, conn) = self.client.transaction_coordinator(id).await?;
            by_node.entry(node).or_insert((conn, Vec::new())).1.push(id);
        }
        let mut answers: BTreeMap<String, Result<TransactionDescription>> = BTreeMap::new();
        for (node, (conn, batch)) in by_node {
            let request = m::DescribeTransactionsRequest::default()
                .with_transactional_ids(batch.iter().map(|id| m::TransactionalId(s(id))).collect());
            let response: m::DescribeTransactionsResponse = conn.call(request).await?;
            for t in response.transaction_states {
                let id = t.transactional_id.0.to_string();
                let answer = check(t.error_code, None, || {
                    format!("describe transactional id {id}")
                })
                .map(|()| {
                    let mut partitions: Vec<TopicPartition> = t
                        .topics
                        .iter()
                        .flat_map(|td| {
                            td.partitions
                                .iter()
                                .map(|p| TopicPartition::new(td.topic.0.to_string(), *p))
                        })
                        .collect();
                    partitions.sort();
                    TransactionDescription {
                        transactional_id: id.clone(),
                        coordinator_id: node,
                        state: t.transaction_state.to_string(),
                        producer_id: t.producer_id.0,
                        producer_epoch: t.producer_epoch,
                        timeout_ms: t.transaction_timeout_ms,
                        start_time_ms: (t.transaction_start_time_ms >= 0)
                            .then_some(t.transaction_start_time_ms),
                        partitions,
                    }
                });
                if batch.contains(&id.as_str()) {
                    answers.insert(id, answer);
                }
            }
        }
        for id in ids {
            if !answers.contains_key(*id) {
                answers.insert(
                    id.to_string(),
                    Err(Error::Protocol(format!(
                        "DescribeTransactions: no answer for transactional id {id}"
                    ))),
                );
            }
        }
        Ok(answers)
    }

    /// The producers with state on each partition (DescribeProducers), asked of the
    /// partition's leader or, with `broker`, of that broker's replica. Fails with the
    /// first partition error.
    pub async fn describe_producers(
        &self,
        partitions: &[TopicPartition],
        broker: Option<i32>,
    ) -> Result<BTreeMap<TopicPartition, Vec<ProducerState>>> {
        let mut by_node: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        for tp in partitions {
            let node = match broker {
                Some(b) => b,
                None => self.client.leader(&tp.topic, tp.partition).await?,
            };
            if node < 0 {
                return Err(Error::Kafka {
                    code: ResponseError::LeaderNotAvailable.code(),
                    context: format!("describe producers of {}-{}", tp.topic, tp.partition),
                    message: None,
                });
            }
            by_node
                .entry(node)
                .or_default()
                .entry(&tp.topic)
                .or_default()
                .push(tp.partition);
        }
        let mut out = BTreeMap::new();
        for (node, topics) in by_node {
            let conn = self.client.node_connection(node).await?;
            let request = m::DescribeProducersRequest::default().with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        m::describe_producers_request::TopicRequest::default()
                            .with_name(topic_name(t))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            );
            let response: m::DescribeProducersResponse = conn.call(request).await?;
            for t in response.topics {
                for p in t.partitions {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    check(p.error_code, p.error_message.as_ref(), || {
                        format!("describe producers of {}-{}", tp.topic, tp.partition)
                    })?;
                    let states = p
                        .active_producers
                        .into_iter()
                        .map(|a| ProducerState {
                            producer_id: a.producer_id.0,
                            producer_epoch: a.producer_epoch,
                            last_sequence: a.last_sequence,
                            last_timestamp: a.last_timestamp,
                            coordinator_epoch: (a.coordinator_epoch >= 0)
                                .then_some(a.coordinator_epoch),
                            current_txn_start_offset: (a.current_txn_start_offset >= 0)
                                .then_some(a.current_txn_start_offset),
                        })
                        .collect();
                    out.insert(tp, states);
                }
            }
        }
        for tp in partitions {
            if !out.contains_key(tp) {
                return Err(Error::Protocol(format!(
                    "DescribeProducers: no answer for {}-{}",
                    tp.topic, tp.partition
                )));
            }
        }
        Ok(out)
    }

    /// Abort a hanging transaction on one partition (KIP-664): an abort marker for the
    /// producer, written by the partition leader (WriteTxnMarkers; CLUSTER_ACTION).
    pub async fn abort_transaction(&self, spec: &AbortTransactionSpec<'_>) -> Result<()> {
        let tp = spec.partition;
        let conn = self
            .client
            .leader_connection(&tp.topic, tp.partition)
            .await?;
        let request = m::WriteTxnMarkersRequest::default().with_markers(vec![
            m::write_txn_markers_request::WritableTxnMarker::default()
                .with_producer_id(m::ProducerId(spec.producer_id))
                .with_producer_epoch(spec.producer_epoch)
                .with_transaction_result(false)
                .with_coordinator_epoch(spec.coordinator_epoch)
                .with_topics(vec![
                    m::write_txn_markers_request::WritableTxnMarkerTopic::default()
                        .with_name(topic_name(&tp.topic))
                        .with_partition_indexes(vec![tp.partition]),
                ]),
        ]);
        let response: m::WriteTxnMarkersResponse = conn.call(request).await?;
        let context = || {
            format!(
                "abort the transaction of producer {} (epoch {}) on {}-{}",
                spec.producer_id, spec.producer_epoch, tp.topic, tp.partition
            )
        };
        // Exactly our one marker, topic and partition back, as the Java Admin checks.
        let result = response
            .markers
            .iter()
            .find(|mk| mk.producer_id.0 == spec.producer_id)
            .and_then(|mk| mk.topics.iter().find(|t| t.name.0.as_str() == tp.topic))
            .and_then(|t| {
                t.partitions
                    .iter()
                    .find(|p| p.partition_index == tp.partition)
            })
            .ok_or_else(|| Error::Protocol(format!("{}: no answer for it", context())))?;
        check(result.error_code, None, context)
    }
}
