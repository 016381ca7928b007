//! Group APIs: FindCoordinator and the classic group protocol, offsets, and group
//! admin. Thin: decode the request's shape per version, call the coordinator
//! (`runnel_coordinator::group`), and shape the answer for the version.

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{self as m, BrokerId, GroupId};
use runnel_protocol::api::ResponseBody;

use super::{str_bytes, topic_name};
use crate::kafka_broker::KafkaBroker;
use runnel_coordinator::group::classic::{JoinRequest, Reply};
use runnel_coordinator::group::topic_regex::{self, TopicRegex};
use runnel_coordinator::group::{CommitItem, TxnCommitter, OFFSETS_TOPIC};

use crate::context::{Operation, RequestContext, Resource};

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

pub async fn find_coordinator(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::FindCoordinatorRequest,
    version: i16,
) -> ResponseBody {
    let (host, port) = ctx.advertised();
    let node = broker.node_id();
    let answer = |key: &str, key_type: i8| -> (i16, i32, String, i32) {
        match key_type {
            GROUP if !ctx.authorize(Operation::Describe, Resource::Group(key)) => {
                (E::GroupAuthorizationFailed.code(), -1, String::new(), -1)
            }
            GROUP if !key.is_empty() => (0, node, host.clone(), port as i32),
            GROUP => (E::InvalidRequest.code(), -1, String::new(), -1),
            TRANSACTION if !ctx.authorize(Operation::Describe, Resource::TransactionalId(key)) => (
                E::TransactionalIdAuthorizationFailed.code(),
                -1,
                String::new(),
                -1,
            ),
            // The first one creates __transaction_state, as in Kafka.
            TRANSACTION => match broker.transactions.coordinator() {
                Ok(_) => (0, node, host.clone(), port as i32),
                Err(e) => (e.code(), -1, String::new(), -1),
            },
            _ => (E::InvalidRequest.code(), -1, String::new(), -1),
        }
    };
    if version >= 4 {
        let coordinators = r
            .coordinator_keys
            .iter()
            .map(|k| {
                let (code, node, host, port) = answer(k, r.key_type);
                m::find_coordinator_response::Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_error_code(code)
            })
            .collect();
        return m::FindCoordinatorResponse::default()
            .with_coordinators(coordinators)
            .into();
    }
    let key_type = if version == 0 { GROUP } else { r.key_type };
    let (code, node, host, port) = answer(&r.key, key_type);
    m::FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(BrokerId(node))
        .with_host(str_bytes(host))
        .with_port(port)
        .into()
}

fn shape_join(mut resp: m::JoinGroupResponse, version: i16) -> m::JoinGroupResponse {
    // Kafka leaves the protocol name null in an error answer (v7+ can say so).
    if resp.error_code != 0 && resp.protocol_name.as_deref().is_some_and(|p| p.is_empty()) {
        resp.protocol_name = None;
    }
    if version < 7 && resp.protocol_name.is_none() {
        resp.protocol_name = Some(str_bytes(""));
    }
    if version < 9 {
        resp.skip_assignment = false;
    }
    resp
}

pub async fn join_group(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::JoinGroupRequest,
    version: i16,
) -> ResponseBody {
    if !ctx.authorize(Operation::Read, Resource::Group(&r.group_id)) {
        let denied = m::JoinGroupResponse::default()
            .with_error_code(E::GroupAuthorizationFailed.code())
            .with_generation_id(-1)
            .with_member_id(r.member_id.clone());
        return shape_join(denied, version).into();
    }
    let req = JoinRequest {
        member_id: r.member_id.to_string(),
        instance_id: r.group_instance_id.as_ref().map(|s| s.to_string()),
        require_known_member_id: version >= 4,
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version == 0 {
            r.session_timeout_ms
        } else {
            r.rebalance_timeout_ms
        },
        session_timeout_ms: r.session_timeout_ms,
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        version,
    };
    let member_id = req.member_id.clone();
    let resp = match broker.groups.join(&r.group_id, req) {
        Reply::Now(resp) => resp,
        Reply::Later(rx) => rx.await.unwrap_or_else(|_| {
            m::JoinGroupResponse::default()
                .with_error_code(E::UnknownMemberId.code())
                .with_generation_id(-1)
                .with_member_id(str_bytes(member_id))
        }),
    };
    shape_join(resp, version).into()
}

pub async fn sync_group(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::SyncGroupRequest,
    version: i16,
) -> ResponseBody {
    if !ctx.authorize(Operation::Read, Resource::Group(&r.group_id)) {
        return m::SyncGroupResponse::default()
            .with_error_code(E::GroupAuthorizationFailed.code())
            .into();
    }
    let assignments = r
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let reply = broker.groups.sync(
        &r.group_id,
        &r.member_id,
        r.group_instance_id.as_deref(),
        r.generation_id,
        r.protocol_type.as_deref(),
        r.protocol_name.as_deref(),
        assignments,
    );
    let mut resp = match reply {
        Reply::Now(resp) => resp,
        Reply::Later(rx) => rx.await.unwrap_or_else(|_| {
            m::SyncGroupResponse::default().with_error_code(E::RebalanceInProgress.code())
        }),
    };
    if version < 5 {
        resp.protocol_type = None;
        resp.protocol_name = None;
    }
    resp.into()
}

pub fn heartbeat(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::HeartbeatRequest,
) -> ResponseBody {
    if !ctx.authorize(Operation::Read, Resource::Group(&r.group_id)) {
        return m::HeartbeatResponse::default()
            .with_error_code(E::GroupAuthorizationFailed.code())
            .into();
    }
    let code = broker.groups.heartbeat(
        &r.group_id,
        &r.member_id,
        r.group_instance_id.as_deref(),
        r.generation_id,
    );
    m::HeartbeatResponse::default().with_error_code(code).into()
}

pub fn leave_group(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::LeaveGroupRequest,
    version: i16,
) -> ResponseBody {
    if !ctx.authorize(Operation::Read, Resource::Group(&r.group_id)) {
        return m::LeaveGroupResponse::default()
            .with_error_code(E::GroupAuthorizationFailed.code())
            .into();
    }
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        r.members
            .iter()
            .map(|mi| {
                (
                    mi.member_id.to_string(),
                    mi.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(r.member_id.to_string(), None)]
    };
    match broker.groups.leave(&r.group_id, &leaving) {
        Err(e) => m::LeaveGroupResponse::default()
            .with_error_code(e.code())
            .into(),
        Ok(codes) if version < 3 => m::LeaveGroupResponse::default()
            .with_error_code(codes.first().copied().unwrap_or(0))
            .into(),
        Ok(codes) => {
            let members = r
                .members
                .iter()
                .zip(codes)
                .map(|(mi, code)| {
                    m::leave_group_response::MemberResponse::default()
                        .with_member_id(mi.member_id.clone())
                        .with_group_instance_id(mi.group_instance_id.clone())
                        .with_error_code(code)
                })
                .collect();
            m::LeaveGroupResponse::default()
                .with_members(members)
                .into()
        }
    }
}

/// A topic of an OffsetCommit: name, id, and per partition Ok or an error code.
type CommitShape = (m::TopicName, uuid::Uuid, Vec<(i32, Result<(), i16>)>);

pub async fn offset_commit(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::OffsetCommitRequest,
    version: i16,
) -> ResponseBody {
    let max_meta = broker.groups.cfg.offset_metadata_max_bytes;
    // READ on the group, else every partition says GROUP_AUTHORIZATION_FAILED.
    let group_denied = !ctx.authorize(Operation::Read, Resource::Group(&r.group_id));
    // Per partition: Ok(index into items) or an error code.
    let mut items = Vec::new();
    let mut shape: Vec<CommitShape> = Vec::new();
    for t in &r.topics {
        let meta = super::resolve_topic(broker, &t.name, t.topic_id);
        let name = meta.as_ref().map_or(t.name.0.as_str(), |m| m.name.as_str());
        let topic_denied = !ctx.authorize(Operation::Read, Resource::Topic(name));
        let mut parts = Vec::new();
        for p in &t.partitions {
            let res = match &meta {
                _ if group_denied => Err(E::GroupAuthorizationFailed.code()),
                _ if topic_denied => Err(E::TopicAuthorizationFailed.code()),
                None => Err(if t.topic_id.is_nil() {
                    E::UnknownTopicOrPartition.code()
                } else {
                    E::UnknownTopicId.code()
                }),
                Some(meta) if p.partition_index < 0 || p.partition_index >= meta.partitions => {
                    Err(E::UnknownTopicOrPartition.code())
                }
                Some(_)
                    if p.committed_metadata
                        .as_ref()
                        .is_some_and(|s| s.len() > max_meta) =>
                {
                    Err(E::OffsetMetadataTooLarge.code())
                }
                Some(meta) => {
                    items.push(CommitItem {
                        topic: meta.name.clone(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map(|s| s.to_string())
                            .unwrap_or_default(),
                    });
                    Ok(())
                }
            };
            parts.push((p.partition_index, res));
        }
        shape.push((t.name.clone(), t.topic_id, parts));
    }
    let result = if group_denied {
        Ok(())
    } else if r.group_id.is_empty() && version >= 9 {
        Err(E::InvalidGroupId)
    } else {
        broker
            .groups
            .commit_offsets(
                &r.group_id,
                &r.member_id,
                r.group_instance_id.as_deref(),
                r.generation_id_or_member_epoch,
                version,
                items,
            )
            .await
    };
    let group_error = result.err().map(|e| e.code());
    let topics = shape
        .into_iter()
        .map(|(name, id, parts)| {
            m::offset_commit_response::OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_topic_id(id)
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, res)| {
                            let code = match res {
                                Err(c) => c,
                                Ok(()) => group_error.unwrap_or(0),
                            };
                            m::offset_commit_response::OffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    m::OffsetCommitResponse::default()
        .with_topics(topics)
        .into()
}

/// TxnOffsetCommit v0-v5 (KIP-98, KIP-447), as Kafka's `handleTxnOffsetCommitRequest`:
/// WRITE on the transactional id, else every partition says
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED; READ on the group, else
/// GROUP_AUTHORIZATION_FAILED; per topic READ (TOPIC_AUTHORIZATION_FAILED) and an
/// existing topic and partition (UNKNOWN_TOPIC_OR_PARTITION); the rest goes to the
/// coordinator, which answers once the offsets are durable (pending until the
/// transaction's marker).
pub(crate) async fn txn_offset_commit(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::TxnOffsetCommitRequest,
    version: i16,
) -> m::TxnOffsetCommitResponse {
    use m::txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition as Part, TxnOffsetCommitResponseTopic as Topic,
    };
    let whole = if !ctx.authorize(
        Operation::Write,
        Resource::TransactionalId(&r.transactional_id),
    ) {
        Some(E::TransactionalIdAuthorizationFailed)
    } else if !ctx.authorize(Operation::Read, Resource::Group(&r.group_id)) {
        Some(E::GroupAuthorizationFailed)
    } else {
        None
    };
    // Per topic, per partition: Ok(index into items) or an error code.
    type Shape = (m::TopicName, Vec<(i32, Result<usize, i16>)>);
    let mut items = Vec::new();
    let mut shape: Vec<Shape> = Vec::new();
    for t in &r.topics {
        let meta = broker.topic_meta(&t.name.0);
        let topic_denied =
            whole.is_none() && !ctx.authorize(Operation::Read, Resource::Topic(&t.name.0));
        let mut parts = Vec::new();
        for p in &t.partitions {
            let res = match (&whole, &meta) {
                (Some(e), _) => Err(e.code()),
                _ if topic_denied => Err(E::TopicAuthorizationFailed.code()),
                (None, Some(meta))
                    if p.partition_index >= 0 && p.partition_index < meta.partitions =>
                {
                    items.push(CommitItem {
                        topic: meta.name.clone(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map(|s| s.to_string())
                            .unwrap_or_default(),
                    });
                    Ok(items.len() - 1)
                }
                _ => Err(E::UnknownTopicOrPartition.code()),
            };
            parts.push((p.partition_index, res));
        }
        shape.push((t.name.clone(), parts));
    }
    let codes = if items.is_empty() {
        Vec::new()
    } else {
        // KIP-890: with transaction version 2 (v5+) the group's partition of
        // __consumer_offsets joins the transaction here; before, AddOffsetsToTxn added
        // it, and the coordinator checks that it did.
        let offsets_partition = (
            OFFSETS_TOPIC.to_string(),
            broker.groups.partition_for(&r.group_id),
        );
        let checked = match broker.transactions.coordinator() {
            Err(e) => Err(e),
            Ok(c) if version >= 5 => {
                c.add_partitions(
                    &r.transactional_id,
                    r.producer_id.0,
                    r.producer_epoch,
                    std::slice::from_ref(&offsets_partition),
                    true,
                )
                .await
            }
            Ok(c) => c
                .verify_partitions(
                    &r.transactional_id,
                    r.producer_id.0,
                    r.producer_epoch,
                    std::slice::from_ref(&offsets_partition),
                )
                .into_iter()
                .map(|(_, r)| r)
                .find(|r| r.is_err())
                .unwrap_or(Ok(())),
        };
        if let Err(e) = checked {
            let e = super::txn::verification_error(e, version >= 4);
            vec![e.code(); items.len()]
        } else {
            let who = TxnCommitter {
                transactional_id: r.transactional_id.to_string(),
                producer_id: r.producer_id.0,
                producer_epoch: r.producer_epoch,
                generation: r.generation_id,
                member_id: r.member_id.to_string(),
                instance_id: r.group_instance_id.as_ref().map(|s| s.to_string()),
            };
            broker
                .groups
                .txn_offset_commit(&r.group_id, &who, items)
                .await
        }
    };
    let topics = shape
        .into_iter()
        .map(|(name, parts)| {
            let parts = parts
                .into_iter()
                .map(|(p, res)| {
                    let mut code = match res {
                        Err(c) => c,
                        Ok(i) => codes
                            .get(i)
                            .copied()
                            .unwrap_or(E::UnknownServerError.code()),
                    };
                    // Producers before 2.0 (v0-v1) may crash on a loading error
                    // (KAFKA-7296), so they get the older retriable one.
                    if version < 2 && code == E::CoordinatorLoadInProgress.code() {
                        code = E::CoordinatorNotAvailable.code();
                    }
                    Part::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                })
                .collect();
            Topic::default().with_name(name).with_partitions(parts)
        })
        .collect();
    m::TxnOffsetCommitResponse::default().with_topics(topics)
}

type FetchedTopics = Vec<(
    String,
    Vec<(i32, Option<runnel_coordinator::group::records::OffsetValue>)>,
)>;

fn fetch_group(
    broker: &KafkaBroker,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> FetchedTopics {
    broker.groups.fetch_offsets(group, topics)
}

/// The offsets of a group the principal may see: topics it may not describe are left
/// out of "all topics", and answered TOPIC_AUTHORIZATION_FAILED when named.
fn fetch_authorized(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> (FetchedTopics, Vec<(String, Vec<i32>)>) {
    let visible = |t: &str| ctx.authorize(Operation::Describe, Resource::Topic(t));
    match topics {
        None => {
            let mut all = fetch_group(broker, group, None);
            all.retain(|(t, _)| visible(t));
            (all, Vec::new())
        }
        Some(named) => {
            let (allowed, denied): (Vec<_>, Vec<_>) =
                named.into_iter().partition(|(t, _)| visible(t));
            (fetch_group(broker, group, Some(allowed)), denied)
        }
    }
}

pub fn offset_fetch(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::OffsetFetchRequest,
    version: i16,
) -> ResponseBody {
    if version >= 8 {
        let groups = r
            .groups
            .iter()
            .map(|g| {
                if !ctx.authorize(Operation::Describe, Resource::Group(&g.group_id)) {
                    return m::offset_fetch_response::OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(E::GroupAuthorizationFailed.code());
                }
                if let Err(e) = broker.groups.validate_offset_fetch(
                    &g.group_id,
                    g.member_id.as_deref(),
                    g.member_epoch,
                ) {
                    return m::offset_fetch_response::OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(e.code());
                }
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let (fetched, denied) = fetch_authorized(broker, ctx, &g.group_id, topics);
                let topics = fetched
                    .into_iter()
                    .chain(denied.into_iter().map(|(t, ps)| {
                        (t, ps.into_iter().map(|p| (p, None)).collect())
                    }))
                    .map(|(t, parts)| {
                        let code = if ctx.authorize(Operation::Describe, Resource::Topic(&t)) {
                            0
                        } else {
                            E::TopicAuthorizationFailed.code()
                        };
                        m::offset_fetch_response::OffsetFetchResponseTopics::default()
                            .with_name(topic_name(&t))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, v)| {
                                        let unstable = code == 0
                                            && r.require_stable
                                            && broker.groups.has_pending_offsets(&g.group_id, &t, p);
                                        let (o, e, md) = offset_fields(if unstable { None } else { v });
                                        m::offset_fetch_response::OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(o)
                                            .with_committed_leader_epoch(e)
                                            .with_metadata(Some(str_bytes(md)))
                                            .with_error_code(if unstable {
                                                E::UnstableOffsetCommit.code()
                                            } else {
                                                code
                                            })
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                m::offset_fetch_response::OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_topics(topics)
            })
            .collect();
        return m::OffsetFetchResponse::default().with_groups(groups).into();
    }
    if !ctx.authorize(Operation::Describe, Resource::Group(&r.group_id)) {
        return m::OffsetFetchResponse::default()
            .with_error_code(E::GroupAuthorizationFailed.code())
            .into();
    }
    let topics = r.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let (fetched, denied) = fetch_authorized(broker, ctx, &r.group_id, topics);
    let topics = fetched
        .into_iter()
        .chain(
            denied
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None)).collect())),
        )
        .map(|(t, parts)| {
            let code = if ctx.authorize(Operation::Describe, Resource::Topic(&t)) {
                0
            } else {
                E::TopicAuthorizationFailed.code()
            };
            m::offset_fetch_response::OffsetFetchResponseTopic::default()
                .with_name(topic_name(&t))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, v)| {
                            // require_stable (v7+): pending transactional offsets are
                            // UNSTABLE_OFFSET_COMMIT until their marker.
                            let unstable = code == 0
                                && version >= 7
                                && r.require_stable
                                && broker.groups.has_pending_offsets(&r.group_id, &t, p);
                            let (o, e, md) = offset_fields(if unstable { None } else { v });
                            m::offset_fetch_response::OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(if version >= 5 { e } else { -1 })
                                .with_metadata(Some(str_bytes(md)))
                                .with_error_code(if unstable {
                                    E::UnstableOffsetCommit.code()
                                } else {
                                    code
                                })
                        })
                        .collect(),
                )
        })
        .collect();
    m::OffsetFetchResponse::default().with_topics(topics).into()
}

fn offset_fields(v: Option<runnel_coordinator::group::records::OffsetValue>) -> (i64, i32, String) {
    match v {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    }
}

pub fn describe_groups(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::DescribeGroupsRequest,
    version: i16,
) -> ResponseBody {
    let groups = r
        .groups
        .iter()
        .map(|id| {
            if !ctx.authorize(Operation::Describe, Resource::Group(id)) {
                return m::describe_groups_response::DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(E::GroupAuthorizationFailed.code());
            }
            describe_group(broker, ctx, &r, id, version)
        })
        .collect();
    m::DescribeGroupsResponse::default()
        .with_groups(groups)
        .into()
}

fn describe_group(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: &m::DescribeGroupsRequest,
    id: &GroupId,
    version: i16,
) -> m::describe_groups_response::DescribedGroup {
    {
        match broker.groups.describe(id) {
            Some(mut d) => {
                if version < 4 {
                    for mb in &mut d.members {
                        mb.group_instance_id = None;
                    }
                }
                // A deleted group has no operations to report (Kafka leaves the field unset).
                let live = &*d.group_state != "Dead";
                d.with_authorized_operations(super::authorized_operations(
                    ctx,
                    r.include_authorized_operations && live,
                    Resource::Group(id),
                ))
            }
            None => {
                let dead = m::describe_groups_response::DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_group_state(str_bytes("Dead"));
                // v6 (KIP-1043) says so with an error, as Kafka does.
                if version >= 6 {
                    dead.with_error_code(E::GroupIdNotFound.code())
                        .with_error_message(Some(str_bytes(format!("Group {} not found.", &**id))))
                } else {
                    dead
                }
            }
        }
    }
}

pub fn list_groups(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::ListGroupsRequest,
    version: i16,
) -> ResponseBody {
    // DESCRIBE on the cluster lists every group; else those the principal may describe.
    let all = ctx.authorize(Operation::Describe, Resource::Cluster);
    let states: Vec<String> = r.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = r.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut groups: Vec<_> = broker
        .groups
        .list()
        .into_iter()
        .filter(|(_, _, state, _)| states.is_empty() || states.contains(&state.to_lowercase()))
        .filter(|(_, _, _, ty)| types.is_empty() || types.contains(&ty.to_string()))
        .filter(|(id, _, _, _)| all || ctx.authorize(Operation::Describe, Resource::Group(id)))
        .map(|(id, ptype, state, ty)| {
            let g = m::list_groups_response::ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(ptype));
            let g = if version >= 4 {
                g.with_group_state(str_bytes(state))
            } else {
                g
            };
            if version >= 5 {
                g.with_group_type(str_bytes(ty))
            } else {
                g
            }
        })
        .collect();
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    m::ListGroupsResponse::default().with_groups(groups).into()
}

pub async fn delete_groups(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::DeleteGroupsRequest,
) -> ResponseBody {
    let (allowed, denied): (Vec<&GroupId>, Vec<&GroupId>) = r
        .groups_names
        .iter()
        .partition(|g| ctx.authorize(Operation::Delete, Resource::Group(g)));
    let ids: Vec<String> = allowed.iter().map(|g| g.to_string()).collect();
    let codes = broker.groups.delete_groups(&ids).await;
    let denied_code = E::GroupAuthorizationFailed.code();
    let results = allowed
        .into_iter()
        .zip(codes)
        .chain(denied.into_iter().map(|g| (g, denied_code)))
        .map(|(g, code)| {
            m::delete_groups_response::DeletableGroupResult::default()
                .with_group_id(g.clone())
                .with_error_code(code)
        })
        .collect();
    m::DeleteGroupsResponse::default()
        .with_results(results)
        .into()
}

pub async fn offset_delete(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::OffsetDeleteRequest,
) -> ResponseBody {
    if !ctx.authorize(Operation::Delete, Resource::Group(&r.group_id)) {
        return m::OffsetDeleteResponse::default()
            .with_error_code(E::GroupAuthorizationFailed.code())
            .into();
    }
    let readable = |t: &str| ctx.authorize(Operation::Read, Resource::Topic(t));
    let mut parts = Vec::new();
    for t in &r.topics {
        if !readable(&t.name) {
            continue;
        }
        for p in &t.partitions {
            parts.push((t.name.to_string(), p.partition_index));
        }
    }
    match broker.groups.delete_offsets(&r.group_id, &parts).await {
        Err(e) => m::OffsetDeleteResponse::default()
            .with_error_code(e.code())
            .into(),
        Ok(codes) => {
            let mut codes = codes.into_iter();
            let topics = r
                .topics
                .iter()
                .map(|t| {
                    let denied = !readable(&t.name);
                    let partitions = broker.topic_meta(&t.name).map_or(0, |m| m.partitions);
                    m::offset_delete_response::OffsetDeleteResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    // Kafka: a partition the topic does not have is
                                    // unknown, like a topic that does not exist.
                                    if denied {
                                        return m::offset_delete_response::OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(E::TopicAuthorizationFailed.code());
                                    }
                                    let code = codes.next().unwrap_or(0);
                                    let exists = (0..partitions).contains(&p.partition_index);
                                    let code = if exists || code != 0 {
                                        code
                                    } else {
                                        E::UnknownTopicOrPartition.code()
                                    };
                                    m::offset_delete_response::OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            m::OffsetDeleteResponse::default()
                .with_topics(topics)
                .into()
        }
    }
}

/// ConsumerGroupHeartbeat (KIP-848): topic ids resolved here, the rest in
/// `runnel_coordinator::group::consumer`.
pub async fn consumer_group_heartbeat(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::ConsumerGroupHeartbeatRequest,
) -> ResponseBody {
    use runnel_coordinator::group::consumer::HeartbeatIn;
    // Kafka's error answer carries only the code and message (no member id, epoch 0).
    let err = |e: E, msg: Option<&str>| -> ResponseBody {
        m::ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(msg.map(str_bytes))
            .with_member_id(None)
            .with_member_epoch(0)
            .into()
    };
    if !ctx.authorize(Operation::Read, Resource::Group(&r.group_id)) {
        return err(E::GroupAuthorizationFailed, None);
    }
    let regex = r.subscribed_topic_regex.as_ref().map(|s| s.to_string());
    let result = {
        // One read of the registry for the whole heartbeat (no await while held).
        let topics = broker.topics();
        let owned = r.topic_partitions.as_ref().map(|tps| {
            let mut set = std::collections::BTreeSet::new();
            for tp in tps {
                // Partitions of topics that no longer exist are owned by nobody.
                if let Some(meta) = topics.by_id(&tp.topic_id) {
                    for p in &tp.partitions {
                        set.insert((meta.name.clone(), *p));
                    }
                }
            }
            set
        });
        let req = HeartbeatIn {
            member_id: r.member_id.to_string(),
            member_epoch: r.member_epoch,
            instance_id: r.instance_id.as_ref().map(|s| s.to_string()),
            rack_id: r.rack_id.as_ref().map(|s| s.to_string()),
            rebalance_timeout_ms: r.rebalance_timeout_ms,
            subscribed: r
                .subscribed_topic_names
                .as_ref()
                .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
            subscribed_regex: regex.clone(),
            assignor: r.server_assignor.as_ref().map(|s| s.to_string()),
            owned,
            client_id: ctx.client_id.clone(),
            client_host: format!("/{}", ctx.peer.ip()),
        };
        broker.groups.consumer_heartbeat(
            &r.group_id,
            req,
            &crate::offsets_log::RegistryTopics(&topics),
        )
    };
    // Answer only once what the heartbeat changed is durable.
    let result = match result {
        Ok((out, Some(durable))) => match durable.await {
            Ok(()) => Ok(out),
            Err(_) => Err(E::CoordinatorNotAvailable),
        },
        Ok((out, None)) => Ok(out),
        Err(e) => Err(e),
    };
    match result {
        Err(E::InvalidRegularExpression) => {
            let pattern = regex.unwrap_or_default();
            let why = TopicRegex::new(&pattern).err().unwrap_or_default();
            err(
                E::InvalidRegularExpression,
                Some(&topic_regex::invalid_message(&pattern, &why)),
            )
        }
        Err(e) => err(e, None),
        Ok(out) => {
            let assignment = out.assignment.map(|by_topic| {
                m::consumer_group_heartbeat_response::Assignment::default().with_topic_partitions(
                    by_topic
                        .into_iter()
                        .filter_map(|(t, ps)| {
                            let meta = broker.topic_meta(&t)?;
                            Some(
                                m::consumer_group_heartbeat_response::TopicPartitions::default()
                                    .with_topic_id(meta.id)
                                    .with_partitions(ps),
                            )
                        })
                        .collect(),
                )
            });
            m::ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(str_bytes(out.member_id)))
                .with_member_epoch(out.member_epoch)
                // A member that left (epoch -1, or -2 for a static one) has no interval.
                .with_heartbeat_interval_ms(if out.member_epoch < 0 {
                    0
                } else {
                    out.heartbeat_interval_ms
                })
                .with_assignment(assignment)
                .into()
        }
    }
}

pub fn consumer_group_describe(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    r: m::ConsumerGroupDescribeRequest,
) -> ResponseBody {
    let groups = r
        .group_ids
        .iter()
        .map(|g| {
            if !ctx.authorize(Operation::Describe, Resource::Group(g)) {
                return m::consumer_group_describe_response::DescribedGroup::default()
                    .with_group_id(g.clone())
                    .with_error_code(E::GroupAuthorizationFailed.code());
            }
            // A group that is not found has no operations to report.
            let d = broker.groups.consumer_describe(g);
            let ops = super::authorized_operations(
                ctx,
                r.include_authorized_operations && d.error_code == 0,
                Resource::Group(g),
            );
            d.with_authorized_operations(ops)
        })
        .collect();
    m::ConsumerGroupDescribeResponse::default()
        .with_groups(groups)
        .into()
}
