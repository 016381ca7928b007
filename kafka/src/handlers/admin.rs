//! Topic administration and configs: CreateTopics, DeleteTopics, CreatePartitions,
//! DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, DescribeLogDirs,
//! InitProducerId.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages as m;

use super::{config_error, ApiError};
use super::{str_bytes, topic_name};
use crate::context::{Operation, RequestContext, Resource};
use crate::kafka_broker::KafkaBroker;
use runnel_core::settings::Usage;
use runnel_core::topic_config::{self, AlterOp};
use runnel_security::acl::ResourceType;

/// DescribeConfigs/AlterConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

pub async fn create_topics(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::CreateTopicsRequest,
    version: i16,
) -> m::CreateTopicsResponse {
    // CREATE on the cluster covers every topic; else each needs CREATE on itself.
    let cluster_create = ctx.authorize(Operation::Create, Resource::Cluster);
    let mut results = Vec::with_capacity(req.topics.len());
    // Kafka refuses every topic named twice in one request, with one result per name.
    let duplicates = duplicate_names(req.topics.iter().map(|t| t.name.0.as_str()));
    for name in &duplicates {
        results.push(
            m::create_topics_response::CreatableTopicResult::default()
                .with_name(topic_name(name))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes("Duplicate topic name."))),
        );
    }
    for t in &req.topics {
        let name = t.name.0.to_string();
        if duplicates.contains(&name) {
            continue;
        }
        let mut result = m::create_topics_response::CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_error_message(None);
        if !cluster_create && !ctx.authorize(Operation::Create, Resource::Topic(&name)) {
            result = result
                .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                .with_error_message(Some(str_bytes("Authorization failed.")));
            if !ctx.authorize(Operation::DescribeConfigs, Resource::Topic(&name)) {
                result.topic_config_error_code = ResponseError::TopicAuthorizationFailed.code();
            }
            results.push(result);
            continue;
        }
        // The created topic's configs are shown only to who may describe them.
        let show_configs = ctx.authorize(Operation::DescribeConfigs, Resource::Topic(&name));
        let configs: Vec<(String, Option<String>)> = t
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let outcome = if !t.assignments.is_empty()
            && (t.num_partitions != -1 || t.replication_factor != -1)
        {
            // Kafka's ReplicationControlManager: an assignment replaces both counts.
            Err(ApiError::new(
                ResponseError::InvalidRequest,
                if t.num_partitions != -1 {
                    "A manual partition assignment was specified, but numPartitions was not set to -1."
                } else {
                    "A manual partition assignment was specified, but replicationFactor was not set to -1."
                },
            ))
        } else if !t.assignments.is_empty() {
            // Manual replica assignment: only our own node can hold a replica.
            let bad = t
                .assignments
                .iter()
                .any(|a| a.broker_ids.len() != 1 || a.broker_ids[0].0 != broker.node_id());
            if bad {
                Err(ApiError::new(
                    ResponseError::InvalidReplicaAssignment,
                    "replicas must be exactly this broker",
                ))
            } else {
                broker
                    .create_topic(
                        &name,
                        t.assignments.len() as i32,
                        -1,
                        &configs,
                        req.validate_only,
                    )
                    .await
                    .map_err(ApiError::from)
            }
        } else {
            broker
                .create_topic(
                    &name,
                    t.num_partitions,
                    t.replication_factor,
                    &configs,
                    req.validate_only,
                )
                .await
                .map_err(ApiError::from)
        };
        match outcome {
            Ok(meta) => {
                result = result
                    .with_topic_id(meta.id)
                    .with_num_partitions(meta.partitions)
                    .with_replication_factor(1);
                if version >= 5 && !show_configs {
                    result.topic_config_error_code = ResponseError::TopicAuthorizationFailed.code();
                } else if version >= 5 {
                    let entries =
                        topic_config::describe(&meta.configs, &broker.topic_defaults, None, false);
                    result = result.with_configs(Some(
                        entries
                            .into_iter()
                            .map(|e| {
                                m::create_topics_response::CreatableTopicConfigs::default()
                                    .with_name(str_bytes(e.name))
                                    .with_value(e.value.map(str_bytes))
                                    .with_read_only(e.read_only)
                                    .with_config_source(e.source.code())
                                    .with_is_sensitive(e.is_sensitive)
                            })
                            .collect(),
                    ));
                }
            }
            Err(e) => {
                result = result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.message)));
            }
        }
        results.push(result);
    }
    m::CreateTopicsResponse::default().with_topics(results)
}

/// Names that occur more than once, each once, in first-seen order.
fn duplicate_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut dups = Vec::new();
    for n in names {
        if !seen.insert(n) && !dups.iter().any(|d: &String| d == n) {
            dups.push(n.to_string());
        }
    }
    dups
}

pub async fn delete_topics(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::DeleteTopicsRequest,
    version: i16,
) -> m::DeleteTopicsResponse {
    // v0-5 name topics in `topic_names`; v6 in `topics` by name or id.
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    targets.extend(
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved = match (&name, id.is_nil()) {
            (Some(n), _) => Some(n.clone()),
            (None, false) => broker.topics().by_id(&id).map(|t| t.name.clone()),
            (None, true) => None,
        };
        let mut r = m::delete_topics_response::DeletableTopicResult::default()
            .with_name(name.as_deref().map(topic_name))
            .with_topic_id(id);
        match resolved {
            None => {
                let code = if id.is_nil() {
                    ResponseError::InvalidRequest
                } else {
                    ResponseError::UnknownTopicId
                };
                r = r.with_error_code(code.code());
            }
            // Named by id without DESCRIBE: the name is not revealed (the id is not
            // secret). DELETE is checked before existence, so nothing leaks.
            Some(_)
                if name.is_none()
                    && !ctx.authorize(
                        Operation::Describe,
                        Resource::Topic(resolved.as_deref().unwrap_or_default()),
                    ) =>
            {
                r = r
                    .with_name(None)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code());
            }
            Some(n) if !ctx.authorize(Operation::Delete, Resource::Topic(&n)) => {
                r = r.with_error_code(ResponseError::TopicAuthorizationFailed.code());
                if version >= 5 {
                    r = r.with_error_message(Some(str_bytes("Authorization failed.")));
                }
            }
            Some(n) => match broker.delete_topic(&n).await.map_err(ApiError::from) {
                Ok(meta) => {
                    // Committed offsets of the topic go with it, durably.
                    broker.groups.on_topic_deleted(&n).await;
                    if version >= 6 {
                        r = r
                            .with_name(Some(topic_name(&meta.name)))
                            .with_topic_id(meta.id);
                    }
                }
                Err(e) => {
                    r = r.with_error_code(e.code());
                    if version >= 5 {
                        r = r.with_error_message(Some(str_bytes(e.message)));
                    }
                }
            },
        }
        responses.push(r);
    }
    m::DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::CreatePartitionsRequest,
) -> m::CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    let duplicates = duplicate_names(req.topics.iter().map(|t| t.name.0.as_str()));
    for name in &duplicates {
        results.push(
            m::create_partitions_response::CreatePartitionsTopicResult::default()
                .with_name(topic_name(name))
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes("Duplicate topic name."))),
        );
    }
    for t in &req.topics {
        if duplicates.iter().any(|d| d == t.name.0.as_str()) {
            continue;
        }
        let mut r = m::create_partitions_response::CreatePartitionsTopicResult::default()
            .with_name(t.name.clone());
        let bad_assignment = t.assignments.as_ref().is_some_and(|a| {
            a.iter()
                .any(|x| x.broker_ids.len() != 1 || x.broker_ids[0].0 != broker.node_id())
        });
        let outcome = if !ctx.authorize(Operation::Alter, Resource::Topic(&t.name.0)) {
            Err(ApiError::new(
                ResponseError::TopicAuthorizationFailed,
                "The topic authorization is failed.",
            ))
        } else if bad_assignment {
            Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                "replicas must be exactly this broker",
            ))
        } else {
            broker
                .create_partitions(&t.name.0, t.count, req.validate_only)
                .await
                .map_err(ApiError::from)
        };
        if let Err(e) = outcome {
            r = r
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(e.message)));
        }
        results.push(r);
    }
    m::CreatePartitionsResponse::default().with_results(results)
}

pub fn describe_configs(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::DescribeConfigsRequest,
    version: i16,
) -> m::DescribeConfigsResponse {
    let results = req
        .resources
        .iter()
        .map(|res| {
            let base = m::describe_configs_response::DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let keys: Option<Vec<String>> = res
                .configuration_keys
                .as_ref()
                .map(|k| k.iter().map(|s| s.to_string()).collect());
            if let Some(denied) = configs_denied(ctx, res.resource_type, &res.resource_name, false)
            {
                return base.with_error_code(denied.code());
            }
            let entries = match res.resource_type {
                RESOURCE_TOPIC => match broker.topic_meta(&res.resource_name) {
                    None if runnel_core::topics::validate_topic_name(&res.resource_name)
                        .is_err() =>
                    {
                        let why = runnel_core::topics::validate_topic_name(&res.resource_name)
                            .err()
                            .unwrap_or_default();
                        return base
                            .with_error_code(ResponseError::InvalidTopicException.code())
                            .with_error_message(Some(str_bytes(format!(
                                "Topic name is invalid: {why}"
                            ))));
                    }
                    Some(meta) => topic_config::describe(
                        &meta.configs,
                        &broker.topic_defaults,
                        keys.as_deref(),
                        req.include_synonyms,
                    ),
                    None => {
                        return base
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes(format!(
                                "Topic {} does not exist",
                                &*res.resource_name
                            ))));
                    }
                },
                RESOURCE_BROKER => {
                    if !res.resource_name.is_empty()
                        && res.resource_name.parse::<i32>().ok() != Some(broker.node_id())
                    {
                        return base
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(str_bytes("unknown broker id")));
                    }
                    broker_config_entries(broker, keys.as_deref())
                }
                _ => {
                    return base
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(format!(
                            "unsupported resource type {}",
                            res.resource_type
                        ))));
                }
            };
            let configs = entries
                .into_iter()
                .map(|e| {
                    let mut c =
                        m::describe_configs_response::DescribeConfigsResourceResult::default()
                            .with_name(str_bytes(e.name))
                            .with_value(e.value.map(str_bytes))
                            .with_read_only(e.read_only)
                            .with_config_source(e.source.code())
                            .with_is_sensitive(e.is_sensitive);
                    if version >= 1 && req.include_synonyms {
                        c = c.with_synonyms(
                            e.synonyms
                                .into_iter()
                                .map(|s| {
                                    m::describe_configs_response::DescribeConfigsSynonym::default()
                                        .with_name(str_bytes(s.name))
                                        .with_value(s.value.map(str_bytes))
                                        .with_source(s.source.code())
                                })
                                .collect(),
                        );
                    }
                    if version >= 3 {
                        c = c.with_config_type(e.config_type.code());
                        if req.include_documentation {
                            c = c.with_documentation(e.documentation.map(str_bytes));
                        }
                    }
                    c
                })
                .collect();
            base.with_configs(configs)
        })
        .collect();
    m::DescribeConfigsResponse::default().with_results(results)
}

/// The broker's settings, from the settings catalog: given ones are
/// STATIC_BROKER_CONFIG, the rest DEFAULT_CONFIG, as Kafka reports them. Settings
/// accepted and ignored appear only when given.
fn broker_config_entries(
    broker: &KafkaBroker,
    keys: Option<&[String]>,
) -> Vec<topic_config::ConfigEntry> {
    let settings = &broker.config.settings;
    runnel_core::settings::catalog()
        .iter()
        .filter(|s| s.usage == Usage::Read || settings.is_given(s.name))
        .filter(|s| keys.is_none_or(|keys| keys.iter().any(|k| k == s.name)))
        .map(|s| {
            topic_config::ConfigEntry::broker(
                s.name,
                settings.get(s.name),
                settings.is_given(s.name),
                s.default.as_deref(),
                s.config_type,
                s.doc,
                s.read_only,
            )
        })
        .collect()
}

/// The same response shape exists in AlterConfigs and IncrementalAlterConfigs.
macro_rules! alter_result {
    ($ty:ty, $res:expr, $outcome:expr) => {{
        let r = <$ty>::default()
            .with_resource_type($res.resource_type)
            .with_resource_name($res.resource_name.clone());
        match $outcome {
            Ok(()) => r,
            // An authorization failure carries no message, as in Kafka.
            Err(e) => {
                let code = e.code();
                let message = (!e.message.is_empty()).then(|| str_bytes(e.message));
                r.with_error_code(code).with_error_message(message)
            }
        }
    }};
}

/// The authorization error for describing (or altering) a topic's or the broker's
/// configs: DESCRIBE_CONFIGS or ALTER_CONFIGS on the topic or the cluster.
fn configs_denied(
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    alter: bool,
) -> Option<ResponseError> {
    let op = if alter {
        Operation::AlterConfigs
    } else {
        Operation::DescribeConfigs
    };
    match resource_type {
        RESOURCE_TOPIC if !ctx.authorize(op, Resource::Topic(name)) => {
            Some(ResponseError::TopicAuthorizationFailed)
        }
        RESOURCE_BROKER if !ctx.authorize(op, Resource::Cluster) => {
            Some(ResponseError::ClusterAuthorizationFailed)
        }
        _ => None,
    }
}

pub async fn alter_configs(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::AlterConfigsRequest,
) -> m::AlterConfigsResponse {
    let mut responses = Vec::new();
    for res in &req.resources {
        let outcome = if let Some(denied) =
            configs_denied(ctx, res.resource_type, &res.resource_name, true)
        {
            Err(ApiError::new(denied, ""))
        } else if res.resource_type != RESOURCE_TOPIC {
            Err(ApiError::new(
                ResponseError::InvalidRequest,
                "only topic configs can be altered",
            ))
        } else {
            // Legacy AlterConfigs replaces the whole set of overrides.
            let configs: Vec<(String, Option<String>)> = res
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            match topic_config::replace_all(&configs, &broker.topic_defaults) {
                Ok(configs) => broker
                    .set_topic_configs(&res.resource_name, configs, req.validate_only)
                    .await
                    .map_err(ApiError::from),
                Err(e) => Err(config_error(e)),
            }
        };
        responses.push(alter_result!(
            m::alter_configs_response::AlterConfigsResourceResponse,
            res,
            outcome
        ));
    }
    m::AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::IncrementalAlterConfigsRequest,
) -> m::IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for res in &req.resources {
        let outcome = if let Some(denied) =
            configs_denied(ctx, res.resource_type, &res.resource_name, true)
        {
            Err(ApiError::new(denied, ""))
        } else if res.resource_type != RESOURCE_TOPIC {
            Err(ApiError::new(
                ResponseError::InvalidRequest,
                "only topic configs can be altered",
            ))
        } else {
            match broker.topic_meta(&res.resource_name) {
                None => Err(ApiError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("The topic '{}' does not exist.", &*res.resource_name),
                )),
                Some(meta) => {
                    let ops: Result<Vec<_>, ApiError> = res
                        .configs
                        .iter()
                        .map(|c| {
                            let op = AlterOp::from_code(c.config_operation).ok_or_else(|| {
                                ApiError::new(
                                    ResponseError::InvalidRequest,
                                    format!("unknown config operation {}", c.config_operation),
                                )
                            })?;
                            Ok((
                                c.name.to_string(),
                                op,
                                c.value.as_ref().map(|v| v.to_string()),
                            ))
                        })
                        .collect();
                    match ops.and_then(|ops| {
                        topic_config::incremental_alter(&meta.configs, &ops, &broker.topic_defaults)
                            .map_err(config_error)
                    }) {
                        Ok(configs) => broker
                            .set_topic_configs(&res.resource_name, configs, req.validate_only)
                            .await
                            .map_err(ApiError::from),
                        Err(e) => Err(e),
                    }
                }
            }
        };
        responses.push(alter_result!(
            m::incremental_alter_configs_response::AlterConfigsResourceResponse,
            res,
            outcome
        ));
    }
    m::IncrementalAlterConfigsResponse::default().with_responses(responses)
}

pub fn describe_log_dirs(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::DescribeLogDirsRequest,
) -> m::DescribeLogDirsResponse {
    if !ctx.authorize(Operation::Describe, Resource::Cluster) {
        return m::DescribeLogDirsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect()
    });
    let metas: Vec<_> = broker.topics().all().cloned().collect();
    let mut topics = Vec::new();
    for meta in metas {
        let parts: Vec<i32> = match &wanted {
            None => (0..meta.partitions).collect(),
            Some(w) => match w.get(&meta.name) {
                Some(ps) => ps
                    .iter()
                    .copied()
                    .filter(|p| *p < meta.partitions)
                    .collect(),
                None => continue,
            },
        };
        let partitions = parts
            .into_iter()
            .filter_map(|p| broker.partition(&meta.name, p))
            // An offline partition is left out, as Kafka leaves out what a failed log
            // directory held.
            .filter_map(|p| {
                let size = p.size_bytes().ok()? as i64;
                Some(
                    m::describe_log_dirs_response::DescribeLogDirsPartition::default()
                        .with_partition_index(p.tp.partition)
                        .with_partition_size(size),
                )
            })
            .collect();
        topics.push(
            m::describe_log_dirs_response::DescribeLogDirsTopic::default()
                .with_name(topic_name(&meta.name))
                .with_partitions(partitions),
        );
    }
    let dir = std::fs::canonicalize(broker.data_dir())
        .unwrap_or_else(|_| broker.data_dir().to_path_buf());
    let (total, usable) = broker.disk_space().unwrap_or((-1, -1));
    m::DescribeLogDirsResponse::default().with_results(vec![
        m::describe_log_dirs_response::DescribeLogDirsResult::default()
            .with_log_dir(str_bytes(dir.display().to_string()))
            .with_topics(topics)
            .with_total_bytes(total)
            .with_usable_bytes(usable),
    ])
}

pub fn init_producer_id(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::InitProducerIdRequest,
) -> m::InitProducerIdResponse {
    let base = m::InitProducerIdResponse::default()
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    // An idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on some
    // topic (KIP-679); a transactional one WRITE on its transactional id.
    if req.transactional_id.is_none()
        && !ctx.authorize(Operation::IdempotentWrite, Resource::Cluster)
        && !ctx.authorize_any(Operation::Write, ResourceType::Topic)
    {
        return base.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    // Without a transactional id Kafka always hands out a fresh producer id, even when
    // the request names the producer's current id and epoch (KIP-360 bump).
    match broker.next_producer_id() {
        Ok(id) => base
            .with_producer_id(kafka_protocol::messages::ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => base.with_error_code(super::kafka_error(e.kind).code()),
    }
}
