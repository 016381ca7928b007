//! Request handlers: one function per API, from a decoded request to its response
//! body, over the shared [`KafkaBroker`]. They stay thin; the logic lives in `broker`,
//! `partition` and the storage layer.

mod acls;
mod admin;
pub(crate) mod fetch;
mod group;
pub(crate) mod produce;
mod quotas;
mod scram;
mod txn;

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

use crate::context::{Operation, RequestContext, Resource};
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
            let ctx = ctx.clone();
            return Reply::Later(Box::pin(async move {
                let (body, records) = fetch::fetch_parts(&broker, &ctx, r, version).await;
                Answer::Fetch(body, records)
            }));
        }
        RequestBody::Produce(r) => {
            // The appends are file writes (and, at a segment roll, file creation and
            // fsyncs): off the runtime's workers, awaited here so that they still
            // happen in request order.
            // A transactional produce is first verified with the transaction
            // coordinator (KIP-890), which may wait for its durable write.
            let txn_refused = txn::verify_produce(broker, ctx, &r, version).await;
            let appender = broker.clone();
            let producer = ctx.clone();
            let appended = tokio::task::spawn_blocking(move || {
                produce::append(&appender, &producer, r, version, &txn_refused)
            })
            .await;
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
        // Features are tagged fields of v3+.
        RequestBody::ApiVersions(_) if version >= 3 => {
            runnel_protocol::api::with_features(api_versions_response()).into()
        }
        RequestBody::ApiVersions(_) => api_versions_response().into(),
        RequestBody::Metadata(r) => metadata(broker, ctx, r, version).await.into(),
        RequestBody::ListOffsets(r) => {
            let reader = broker.clone();
            let asker = ctx.clone();
            match tokio::task::spawn_blocking(move || {
                fetch::list_offsets(&reader, &asker, r, version)
            })
            .await
            {
                Ok(response) => response.into(),
                Err(e) => {
                    tracing::error!(peer = %ctx.peer, error = %e, "ListOffsets failed");
                    return Reply::Close;
                }
            }
        }
        RequestBody::OffsetForLeaderEpoch(r) => {
            fetch::offset_for_leader_epoch(broker, ctx, r).into()
        }
        RequestBody::DeleteRecords(r) => fetch::delete_records(broker, ctx, r).await.into(),
        RequestBody::CreateTopics(r) => admin::create_topics(broker, ctx, r, version).await.into(),
        RequestBody::DeleteTopics(r) => admin::delete_topics(broker, ctx, r, version).await.into(),
        RequestBody::CreatePartitions(r) => admin::create_partitions(broker, ctx, r).await.into(),
        RequestBody::DescribeConfigs(r) => admin::describe_configs(broker, ctx, r, version).into(),
        RequestBody::AlterConfigs(r) => admin::alter_configs(broker, ctx, r).await.into(),
        RequestBody::IncrementalAlterConfigs(r) => admin::incremental_alter_configs(broker, ctx, r)
            .await
            .into(),
        RequestBody::DescribeCluster(r) => describe_cluster(broker, ctx, &r).into(),
        RequestBody::DescribeLogDirs(r) => admin::describe_log_dirs(broker, ctx, r).into(),
        RequestBody::InitProducerId(r) => match r.transactional_id.as_deref() {
            Some(id) => txn::init_producer_id(broker, ctx, &r, id, version)
                .await
                .into(),
            None => admin::init_producer_id(broker, ctx, r).into(),
        },
        RequestBody::AddPartitionsToTxn(r) => txn::add_partitions_to_txn(broker, ctx, r, version)
            .await
            .into(),
        RequestBody::AddOffsetsToTxn(r) => txn::add_offsets_to_txn(broker, ctx, r, version)
            .await
            .into(),
        RequestBody::EndTxn(r) => txn::end_txn(broker, ctx, r, version).await.into(),
        RequestBody::TxnOffsetCommit(r) => group::txn_offset_commit(broker, ctx, r, version)
            .await
            .into(),
        RequestBody::WriteTxnMarkers(r) => txn::write_txn_markers(broker, ctx, r).await.into(),
        RequestBody::DescribeTransactions(r) => txn::describe_transactions(broker, ctx, r).into(),
        RequestBody::ListTransactions(r) => txn::list_transactions(broker, ctx, r).into(),
        RequestBody::DescribeProducers(r) => txn::describe_producers(broker, ctx, r).into(),
        RequestBody::FindCoordinator(r) => group::find_coordinator(broker, ctx, r, version).await,
        RequestBody::JoinGroup(r) => group::join_group(broker, ctx, r, version).await,
        RequestBody::SyncGroup(r) => group::sync_group(broker, ctx, r, version).await,
        RequestBody::Heartbeat(r) => group::heartbeat(broker, ctx, r),
        RequestBody::LeaveGroup(r) => group::leave_group(broker, ctx, r, version),
        RequestBody::OffsetCommit(r) => group::offset_commit(broker, ctx, r, version).await,
        RequestBody::OffsetFetch(r) => group::offset_fetch(broker, ctx, r, version),
        RequestBody::DescribeGroups(r) => group::describe_groups(broker, ctx, r, version),
        RequestBody::ListGroups(r) => group::list_groups(broker, ctx, r, version),
        RequestBody::DeleteGroups(r) => group::delete_groups(broker, ctx, r).await,
        RequestBody::OffsetDelete(r) => group::offset_delete(broker, ctx, r).await,
        RequestBody::ConsumerGroupHeartbeat(r) => {
            group::consumer_group_heartbeat(broker, ctx, r).await
        }
        RequestBody::ConsumerGroupDescribe(r) => group::consumer_group_describe(broker, ctx, r),
        RequestBody::DescribeTopicPartitions(r) => describe_topic_partitions(broker, ctx, r).into(),
        RequestBody::DescribeAcls(r) => acls::describe_acls(broker, ctx, r).into(),
        RequestBody::CreateAcls(r) => acls::create_acls(broker, ctx, r).await.into(),
        RequestBody::DeleteAcls(r) => acls::delete_acls(broker, ctx, r).await.into(),
        RequestBody::DescribeUserScramCredentials(r) => {
            scram::describe_user_scram_credentials(broker, ctx, r).into()
        }
        RequestBody::AlterUserScramCredentials(r) => {
            scram::alter_user_scram_credentials(broker, ctx, r)
                .await
                .into()
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
        StorageError::BadDirectory(_)
        | StorageError::Poisoned(_)
        | StorageError::NoSpace(_)
        | StorageError::Io(_) => ResponseError::KafkaStorageError,
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
        // v0: an empty list means all topics; v1+: null means all. Topics the principal
        // may not describe are left out, without a word.
        None => topics.extend(all_topics(broker, ctx)),
        Some(list) if list.is_empty() && version == 0 => topics.extend(all_topics(broker, ctx)),
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
                // Kafka does not say whether a topic the principal may not describe
                // exists: the name (or id, which is not secret) comes back with
                // TOPIC_AUTHORIZATION_FAILED and nothing else.
                if !ctx.authorize(Operation::Describe, Resource::Topic(&name)) {
                    let by_id = !t.topic_id.is_nil();
                    topics.push(
                        m::metadata_response::MetadataResponseTopic::default()
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                            .with_name((!by_id).then(|| topic_name(&name)))
                            .with_topic_id(t.topic_id),
                    );
                    continue;
                }
                // Auto-creation needs CREATE on the cluster or on the topic.
                let may_create = || {
                    ctx.authorize(Operation::Create, Resource::Cluster)
                        || ctx.authorize(Operation::Create, Resource::Topic(&name))
                };
                let auto_create = req.allow_auto_topic_creation || version < 4;
                if auto_create
                    && broker.config.auto_create_topics
                    && broker.topic_meta(&name).is_none()
                    && runnel_core::topics::validate_topic_name(&name).is_ok()
                    && !may_create()
                {
                    topics.push(
                        m::metadata_response::MetadataResponseTopic::default()
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                            .with_name(Some(topic_name(&name))),
                    );
                    continue;
                }
                topics.push(topic_metadata(broker, &name, auto_create, version).await);
            }
        }
    }
    // Kafka reports the topic operations for every topic it answers about, even one it
    // does not have.
    for t in &mut topics {
        let denied = t.error_code == ResponseError::TopicAuthorizationFailed.code();
        t.topic_authorized_operations = match &t.name {
            Some(name) if topic_ops && !denied => ctx.authorized_operations(Resource::Topic(name)),
            Some(_) if topic_ops => 0,
            _ => i32::MIN,
        };
    }
    let mut resp = m::MetadataResponse::default()
        .with_brokers(vec![broker_entry(broker, ctx)])
        .with_controller_id(BrokerId(broker.node_id()))
        .with_topics(topics);
    if (8..=10).contains(&version) && req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = cluster_operations(ctx);
    }
    if version >= 2 {
        resp = resp.with_cluster_id(Some(str_bytes(broker.cluster_id())));
    }
    resp
}

fn all_topics(
    broker: &KafkaBroker,
    ctx: &RequestContext,
) -> Vec<m::metadata_response::MetadataResponseTopic> {
    let metas: Vec<_> = broker.topics().all().cloned().collect();
    metas
        .iter()
        .filter(|meta| ctx.authorize(Operation::Describe, Resource::Topic(&meta.name)))
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

/// The authorized operations field (KIP-430): a bit per `AclOperation` code the
/// principal may do on the resource when asked for, else "not provided" (i32::MIN).
pub(crate) fn authorized_operations(
    ctx: &RequestContext,
    asked: bool,
    resource: Resource<'_>,
) -> i32 {
    if asked {
        ctx.authorized_operations(resource)
    } else {
        i32::MIN
    }
}

/// The cluster's authorized operations, as Kafka's Metadata and DescribeCluster give
/// them: none unless the principal may describe the cluster.
fn cluster_operations(ctx: &RequestContext) -> i32 {
    if ctx.authorize(Operation::Describe, Resource::Cluster) {
        ctx.authorized_operations(Resource::Cluster)
    } else {
        0
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
    ctx: &RequestContext,
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
        // As Metadata: a topic the principal may not describe is left out of "all" and
        // answered TOPIC_AUTHORIZATION_FAILED when named, whether it exists or not.
        if !ctx.authorize(Operation::Describe, Resource::Topic(&name)) {
            if !fetch_all {
                topics.push(
                    Topic::default()
                        .with_name(Some(topic_name(&name)))
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
                );
            }
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
                .with_partitions(partitions)
                .with_topic_authorized_operations(
                    ctx.authorized_operations(Resource::Topic(&name)),
                ),
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
    // Anyone may describe the cluster; only the operations depend on DESCRIBE (Kafka).
    let (host, port) = ctx.advertised();
    let ops = if req.include_cluster_authorized_operations {
        cluster_operations(ctx)
    } else {
        i32::MIN
    };
    m::DescribeClusterResponse::default()
        .with_cluster_authorized_operations(ops)
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
