//! Request handlers: one function per API, from a decoded request to its response
//! body, over the shared [`KafkaBroker`]. They stay thin; the logic lives in `broker`,
//! `partition` and the storage layer.

mod admin;
pub(crate) mod fetch;
mod group;
pub(crate) mod produce;
mod quotas;
mod scram;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{self as m, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::api::messages::FetchResponse;
use runnel_protocol::api::{api_versions_response, Request, RequestBody, ResponseBody};
use runnel_protocol::response_parts::ExternalRecords;
use runnel_storage::{FileSlice, StorageError};
use uuid::Uuid;

use crate::context::RequestContext;
use crate::kafka_broker::KafkaBroker;
use runnel_core::broker::{BrokerError, ErrorKind};

/// What a handler gives the server.
pub enum Reply {
    /// The answer; `None` means no response is sent (acks=0 produce).
    Now(Option<ResponseBody>),
    /// A wait without side effects (a fetch's long poll, a produce's wait for its
    /// fsync), which may overlap the requests after it on the connection.
    Later(Pin<Box<dyn Future<Output = Answer> + Send>>),
    /// No valid answer exists (a handler panicked): close the connection.
    Close,
}

/// The answer of a [`Reply::Later`].
pub enum Answer {
    Body(ResponseBody),
    /// A fetch response whose record sets stay in the segment files.
    Fetch(FetchResponse, ExternalRecords<FileSlice>),
}

/// Handle one request: the one dispatch for every API. Side effects happen before this
/// returns, so they follow the order requests arrived on the connection.
pub async fn handle(broker: &Arc<KafkaBroker>, ctx: &RequestContext, request: Request) -> Reply {
    let version = request.header.api_version;
    let body = match request.body {
        RequestBody::Fetch(r) => {
            let broker = broker.clone();
            return Reply::Later(Box::pin(async move {
                let (body, records) = fetch::fetch_parts(&broker, r, version).await;
                Answer::Fetch(body, records)
            }));
        }
        RequestBody::Produce(r) => {
            // The appends are file writes (and, at a segment roll, file creation and
            // fsyncs): off the runtime's workers, awaited here so that they still
            // happen in request order.
            let appender = broker.clone();
            let appended =
                tokio::task::spawn_blocking(move || produce::append(&appender, r, version)).await;
            return match appended {
                Ok(None) => Reply::Now(None),
                Ok(Some(pending)) => Reply::Later(Box::pin(async move {
                    Answer::Body(pending.wait().await.into())
                })),
                Err(e) => {
                    tracing::error!(peer = %ctx.peer, error = %e, "a produce append failed");
                    Reply::Close
                }
            };
        }
        RequestBody::ApiVersions(_) => api_versions_response().into(),
        RequestBody::Metadata(r) => metadata(broker, ctx, r, version).await.into(),
        RequestBody::ListOffsets(r) => {
            let reader = broker.clone();
            match tokio::task::spawn_blocking(move || fetch::list_offsets(&reader, r, version))
                .await
            {
                Ok(response) => response.into(),
                Err(e) => {
                    tracing::error!(peer = %ctx.peer, error = %e, "ListOffsets failed");
                    return Reply::Close;
                }
            }
        }
        RequestBody::OffsetForLeaderEpoch(r) => fetch::offset_for_leader_epoch(broker, r).into(),
        RequestBody::DeleteRecords(r) => fetch::delete_records(broker, r).await.into(),
        RequestBody::CreateTopics(r) => admin::create_topics(broker, r, version).await.into(),
        RequestBody::DeleteTopics(r) => admin::delete_topics(broker, r, version).await.into(),
        RequestBody::CreatePartitions(r) => admin::create_partitions(broker, r).await.into(),
        RequestBody::DescribeConfigs(r) => admin::describe_configs(broker, r, version).into(),
        RequestBody::AlterConfigs(r) => admin::alter_configs(broker, r).await.into(),
        RequestBody::IncrementalAlterConfigs(r) => {
            admin::incremental_alter_configs(broker, r).await.into()
        }
        RequestBody::DescribeCluster(r) => describe_cluster(broker, ctx, &r).into(),
        RequestBody::DescribeLogDirs(r) => admin::describe_log_dirs(broker, r).into(),
        RequestBody::InitProducerId(r) => admin::init_producer_id(broker, r).into(),
        RequestBody::FindCoordinator(r) => group::find_coordinator(broker, ctx, r, version).await,
        RequestBody::JoinGroup(r) => {
            group::join_group(broker, r, version, &ctx.client_id, ctx.peer).await
        }
        RequestBody::SyncGroup(r) => group::sync_group(broker, r, version).await,
        RequestBody::Heartbeat(r) => group::heartbeat(broker, r),
        RequestBody::LeaveGroup(r) => group::leave_group(broker, r, version),
        RequestBody::OffsetCommit(r) => group::offset_commit(broker, r, version).await,
        RequestBody::OffsetFetch(r) => group::offset_fetch(broker, r, version),
        RequestBody::DescribeGroups(r) => group::describe_groups(broker, r, version),
        RequestBody::ListGroups(r) => group::list_groups(broker, r, version),
        RequestBody::DeleteGroups(r) => group::delete_groups(broker, r).await,
        RequestBody::OffsetDelete(r) => group::offset_delete(broker, r).await,
        RequestBody::ConsumerGroupHeartbeat(r) => {
            group::consumer_group_heartbeat(broker, r, &ctx.client_id, ctx.peer).await
        }
        RequestBody::ConsumerGroupDescribe(r) => group::consumer_group_describe(broker, r),
        RequestBody::DescribeTopicPartitions(r) => describe_topic_partitions(broker, r).into(),
        RequestBody::DescribeAcls(r) => admin::describe_acls(r).into(),
        RequestBody::CreateAcls(r) => admin::create_acls(r).into(),
        RequestBody::DeleteAcls(r) => admin::delete_acls(r).into(),
        RequestBody::DescribeUserScramCredentials(r) => {
            scram::describe_user_scram_credentials(broker, r).into()
        }
        RequestBody::AlterUserScramCredentials(r) => {
            scram::alter_user_scram_credentials(broker, r).await.into()
        }
        RequestBody::DescribeClientQuotas(r) => {
            quotas::describe_client_quotas(broker, ctx, r).into()
        }
        RequestBody::AlterClientQuotas(r) => {
            quotas::alter_client_quotas(broker, ctx, r).await.into()
        }
        // The connection answers these (authentication.rs); they never reach here.
        RequestBody::SaslHandshake(_) => m::SaslHandshakeResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .into(),
        RequestBody::SaslAuthenticate(_) => m::SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .into(),
    };
    Reply::Now(Some(body))
}

/// A Kafka error code with a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub error: ResponseError,
    pub message: String,
}

impl ApiError {
    pub fn new(error: ResponseError, message: impl Into<String>) -> ApiError {
        ApiError {
            error,
            message: message.into(),
        }
    }
    pub fn code(&self) -> i16 {
        self.error.code()
    }
}

/// Kafka's error for each way the broker refuses an operation.
pub(crate) fn kafka_error(kind: ErrorKind) -> ResponseError {
    match kind {
        ErrorKind::TopicAlreadyExists => ResponseError::TopicAlreadyExists,
        ErrorKind::InvalidTopic => ResponseError::InvalidTopicException,
        ErrorKind::InvalidPartitions => ResponseError::InvalidPartitions,
        ErrorKind::InvalidReplicationFactor => ResponseError::InvalidReplicationFactor,
        ErrorKind::TopicDeletionDisabled => ResponseError::TopicDeletionDisabled,
        ErrorKind::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        ErrorKind::InvalidRequest => ResponseError::InvalidRequest,
        ErrorKind::InvalidConfig => ResponseError::InvalidConfig,
        ErrorKind::Storage => ResponseError::KafkaStorageError,
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> ApiError {
        ApiError::new(kafka_error(e.kind), e.message)
    }
}

/// A topic config problem as Kafka answers it (INVALID_CONFIG or INVALID_REQUEST).
pub(crate) fn config_error(e: runnel_core::topic_config::ConfigError) -> ApiError {
    runnel_core::broker::config_error(e).into()
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// Kafka's code for a storage error.
pub(crate) fn storage_error_code(e: &StorageError) -> ResponseError {
    match e {
        StorageError::InvalidBatch { .. } | StorageError::EmptyRecordSet => {
            ResponseError::CorruptMessage
        }
        StorageError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::RecordSetTooLarge { .. } => ResponseError::RecordListTooLarge,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::InvalidConfig(_) => ResponseError::InvalidConfig,
        StorageError::BadDirectory(_) | StorageError::Poisoned(_) | StorageError::Io(_) => {
            ResponseError::KafkaStorageError
        }
    }
}

fn broker_entry(
    broker: &KafkaBroker,
    ctx: &RequestContext,
) -> m::metadata_response::MetadataResponseBroker {
    let (host, port) = ctx.advertised();
    m::metadata_response::MetadataResponseBroker::default()
        .with_node_id(BrokerId(broker.node_id()))
        .with_host(str_bytes(host))
        .with_port(port as i32)
}

fn partition_metadata(
    broker: &KafkaBroker,
    topic: &str,
    partitions: i32,
) -> Vec<m::metadata_response::MetadataResponsePartition> {
    partition_range_metadata(broker, topic, 0..partitions)
}

fn partition_range_metadata(
    broker: &KafkaBroker,
    topic: &str,
    range: std::ops::Range<i32>,
) -> Vec<m::metadata_response::MetadataResponsePartition> {
    let node = BrokerId(broker.node_id());
    range
        .map(|p| {
            let online = broker.partition(topic, p).is_some_and(|p| !p.is_offline());
            let partition = m::metadata_response::MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node]);
            if online {
                partition.with_leader_id(node)
            } else {
                // As Kafka's metadata shows a partition whose only replica's log
                // directory failed: no leader, the replica offline. Clients wait and
                // refresh instead of sending to it.
                partition
                    .with_error_code(ResponseError::LeaderNotAvailable.code())
                    .with_leader_id(BrokerId(-1))
                    .with_offline_replicas(vec![node])
            }
        })
        .collect()
}

async fn metadata(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::MetadataRequest,
    version: i16,
) -> m::MetadataResponse {
    let topic_ops = version >= 8 && req.include_topic_authorized_operations;
    let mut topics = Vec::new();
    match req.topics {
        // v0: an empty list means all topics; v1+: null means all.
        None => topics.extend(all_topics(broker)),
        Some(list) if list.is_empty() && version == 0 => topics.extend(all_topics(broker)),
        Some(list) => {
            for t in list {
                // A topic id wins over the name, as in Kafka: the Java client asks by id
                // with the name left at its default, "".
                let name = match (&t.name, t.topic_id) {
                    (_, id) if !id.is_nil() => match broker.topics().by_id(&id) {
                        Some(meta) => meta.name.clone(),
                        None => {
                            topics.push(
                                m::metadata_response::MetadataResponseTopic::default()
                                    .with_error_code(ResponseError::UnknownTopicId.code())
                                    .with_topic_id(id),
                            );
                            continue;
                        }
                    },
                    (Some(n), _) => n.0.to_string(),
                    _ => {
                        topics.push(
                            m::metadata_response::MetadataResponseTopic::default()
                                .with_error_code(ResponseError::InvalidRequest.code()),
                        );
                        continue;
                    }
                };
                topics.push(
                    topic_metadata(
                        broker,
                        &name,
                        req.allow_auto_topic_creation || version < 4,
                        version,
                    )
                    .await,
                );
            }
        }
    }
    // Kafka reports the topic operations for every topic asked about, even one it
    // does not have.
    for t in &mut topics {
        t.topic_authorized_operations = authorized_operations(topic_ops, TOPIC_OPERATIONS);
    }
    let mut resp = m::MetadataResponse::default()
        .with_brokers(vec![broker_entry(broker, ctx)])
        .with_controller_id(BrokerId(broker.node_id()))
        .with_topics(topics);
    if version >= 2 {
        resp = resp.with_cluster_id(Some(str_bytes(broker.cluster_id())));
    }
    resp
}

fn all_topics(broker: &KafkaBroker) -> Vec<m::metadata_response::MetadataResponseTopic> {
    let metas: Vec<_> = broker.topics().all().cloned().collect();
    metas
        .iter()
        .map(|meta| {
            m::metadata_response::MetadataResponseTopic::default()
                .with_name(Some(topic_name(&meta.name)))
                .with_topic_id(meta.id)
                .with_is_internal(meta.internal)
                .with_partitions(partition_metadata(broker, &meta.name, meta.partitions))
        })
        .collect()
}

async fn topic_metadata(
    broker: &KafkaBroker,
    name: &str,
    allow_auto_create: bool,
    _version: i16,
) -> m::metadata_response::MetadataResponseTopic {
    let base =
        m::metadata_response::MetadataResponseTopic::default().with_name(Some(topic_name(name)));
    let meta = match broker.topic_meta(name) {
        Some(meta) => meta,
        None => {
            if let Err(why) = runnel_core::topics::validate_topic_name(name) {
                tracing::debug!(topic = name, %why, "metadata for an invalid topic name");
                return base.with_error_code(ResponseError::InvalidTopicException.code());
            }
            if !(allow_auto_create && broker.config.auto_create_topics) {
                return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
            }
            match broker.create_topic(name, -1, -1, &[], false).await {
                Ok(meta) => meta,
                // Lost a race with another creator: describe what exists.
                Err(e) if e.kind == ErrorKind::TopicAlreadyExists => {
                    match broker.topic_meta(name) {
                        Some(meta) => meta,
                        None => {
                            return base.with_error_code(ResponseError::LeaderNotAvailable.code())
                        }
                    }
                }
                Err(e) => return base.with_error_code(kafka_error(e.kind).code()),
            }
        }
    };
    base.with_topic_id(meta.id)
        .with_is_internal(meta.internal)
        .with_partitions(partition_metadata(broker, name, meta.partitions))
}

/// Authorized operations (KIP-430) as Kafka reports them without an authorizer: every
/// operation the resource type has, as a bit per `AclOperation` code. Runnel has no ACLs.
/// Cluster: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE.
pub(crate) const CLUSTER_OPERATIONS: i32 =
    1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;
/// Topic: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub(crate) const TOPIC_OPERATIONS: i32 =
    1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;
/// Group: READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub(crate) const GROUP_OPERATIONS: i32 = 1 << 3 | 1 << 6 | 1 << 8 | 1 << 10 | 1 << 11;

/// The authorized operations field: the set when asked for, else "not provided".
pub(crate) fn authorized_operations(asked: bool, all: i32) -> i32 {
    if asked {
        all
    } else {
        i32::MIN
    }
}

/// Kafka's `max.request.partition.size.limit` default: the most partitions one
/// DescribeTopicPartitions answer holds.
const MAX_DESCRIBED_PARTITIONS: i32 = 2000;

/// DescribeTopicPartitions (KIP-966), as Kafka's handler answers it: the named topics (or
/// all), sorted by name, from the cursor on, at most `response_partition_limit` (capped at
/// 2000) partitions, with a cursor to the first partition left out. A single node has no
/// eligible leader replicas, so those lists are empty.
fn describe_topic_partitions(
    broker: &KafkaBroker,
    req: m::DescribeTopicPartitionsRequest,
) -> m::DescribeTopicPartitionsResponse {
    use m::describe_topic_partitions_response::{
        Cursor, DescribeTopicPartitionsResponsePartition as Partition,
        DescribeTopicPartitionsResponseTopic as Topic,
    };
    let cursor = req
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let cursor_topic = cursor.as_ref().map_or("", |(t, _)| t.as_str());
    let fetch_all = req.topics.is_empty();
    let names: std::collections::BTreeSet<String> = if fetch_all {
        broker.topics().all().map(|t| t.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| n.as_str() >= cursor_topic)
        .collect();
    if !fetch_all && cursor.is_some() && !names.iter().any(|n| n == cursor_topic) {
        // Kafka refuses the request; its error answer marks every named topic.
        let topics = req
            .topics
            .iter()
            .map(|t| {
                Topic::default()
                    .with_name(Some(t.name.clone()))
                    .with_error_code(ResponseError::InvalidRequest.code())
            })
            .collect();
        return m::DescribeTopicPartitionsResponse::default().with_topics(topics);
    }
    let mut remaining = req.response_partition_limit.min(MAX_DESCRIBED_PARTITIONS);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if remaining == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name(&name))
                    .with_partition_index(0),
            );
            break;
        }
        if remaining < 0 {
            continue;
        }
        let Some(meta) = broker.topic_meta(&name) else {
            if !fetch_all {
                let code = if runnel_core::topics::validate_topic_name(&name).is_err() {
                    ResponseError::InvalidTopicException
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                topics.push(
                    Topic::default()
                        .with_name(Some(topic_name(&name)))
                        .with_error_code(code.code())
                        .with_is_internal(name == runnel_coordinator::group::OFFSETS_TOPIC),
                );
            }
            continue;
        };
        let start = match &cursor {
            Some((t, p)) if *t == name => (*p).max(0),
            _ => 0,
        };
        let upper = meta.partitions.min(start.saturating_add(remaining));
        let partitions: Vec<Partition> = partition_range_metadata(broker, &name, start..upper)
            .into_iter()
            .map(|p| {
                Partition::default()
                    .with_error_code(p.error_code)
                    .with_partition_index(p.partition_index)
                    .with_leader_id(p.leader_id)
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replica_nodes)
                    .with_isr_nodes(p.isr_nodes)
                    .with_offline_replicas(p.offline_replicas)
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
            })
            .collect();
        remaining -= partitions.len() as i32;
        topics.push(
            Topic::default()
                .with_name(Some(topic_name(&name)))
                .with_topic_id(meta.id)
                .with_is_internal(meta.internal)
                .with_partitions(partitions),
        );
        if upper < meta.partitions {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name(&name))
                    .with_partition_index(upper),
            );
            break;
        }
    }
    m::DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn describe_cluster(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: &m::DescribeClusterRequest,
) -> m::DescribeClusterResponse {
    let (host, port) = ctx.advertised();
    m::DescribeClusterResponse::default()
        .with_cluster_authorized_operations(authorized_operations(
            req.include_cluster_authorized_operations,
            CLUSTER_OPERATIONS,
        ))
        .with_cluster_id(str_bytes(broker.cluster_id()))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_brokers(vec![
            m::describe_cluster_response::DescribeClusterBroker::default()
                .with_broker_id(BrokerId(broker.node_id()))
                .with_host(str_bytes(host))
                .with_port(port as i32),
        ])
}

/// Resolve a topic named in a request by name, or by id where the version uses ids.
pub(crate) fn resolve_topic(
    broker: &KafkaBroker,
    name: &TopicName,
    id: Uuid,
) -> Option<runnel_core::topics::TopicMeta> {
    if !id.is_nil() {
        broker.topics().by_id(&id).cloned()
    } else {
        broker.topic_meta(&name.0)
    }
}
