//! Consumer groups: the classic protocol and KIP-848 through librdkafka, then describe,
//! list, offsets (fetch, delete) and delete through raw requests; the group error paths.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages as m;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use runnel_protocol::api::{ApiKey, ResponseBody};
use serde_json::{json, Value};

use super::{create_topic, produce};
use crate::harness::{err, gid, opt_str, s, tn, transport, Ctx, Scenario};

pub const CLASSIC_GROUP: Scenario = Scenario {
    name: "classic_group",
    about: "a librdkafka classic-protocol consumer (range) on a 2-partition topic commits \
            with metadata; DescribeGroups, ListGroups (all, by state, by type), OffsetFetch, \
            OffsetDelete and DeleteGroups while it is a member, after it left, after delete",
    run: classic_group,
};

pub const CONSUMER_GROUP: Scenario = Scenario {
    name: "consumer_group",
    about: "a librdkafka KIP-848 consumer (group.protocol=consumer); ConsumerGroupDescribe, \
            DescribeGroups, ListGroups, OffsetFetch and DeleteGroups while it is a member and \
            after it left",
    run: consumer_group,
};

pub const GROUP_ERRORS: Scenario = Scenario {
    name: "group_errors",
    about: "JoinGroup without a member id, with a bad session timeout, an empty group id; \
            Heartbeat, SyncGroup, LeaveGroup of unknown members; simple (generation -1) \
            commits, bad generations, unknown topics; FindCoordinator; ConsumerGroupHeartbeat \
            joins, bad epochs, an empty group id, a regex subscription, leaving",
    run: group_errors,
};

/// The shape of a member id: `CLIENT-<uuid>` (Kafka's classic form), `<uuid>`, or a length.
fn member_form(id: &str, client_id: &str) -> Value {
    let classify = |x: &str| -> String {
        if uuid::Uuid::parse_str(x).is_ok() {
            "<uuid>".into()
        } else if x.is_empty() {
            "".into()
        } else {
            format!("<{} chars>", x.len())
        }
    };
    match id.strip_prefix(&format!("{client_id}-")) {
        Some(rest) if !client_id.is_empty() => json!(format!("{client_id}-{}", classify(rest))),
        _ => json!(classify(id)),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn describe_groups(ctx: &Ctx, groups: &[&str]) -> Value {
    let req = m::DescribeGroupsRequest::default()
        .with_groups(groups.iter().map(|g| gid(g)).collect())
        .with_include_authorized_operations(true);
    match ctx.call::<m::DescribeGroupsResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => {
            let mut out = serde_json::Map::new();
            for g in &r.groups {
                out.insert(
                    g.group_id.0.to_string(),
                    json!({
                        "error": err(g.error_code),
                        "note_error_message": opt_str(&g.error_message),
                        "state": g.group_state.as_str(),
                        "protocol_type": g.protocol_type.as_str(),
                        "protocol": g.protocol_data.as_str(),
                        "authorized_operations": g.authorized_operations,
                        "members": g.members.iter().map(|mb| json!({
                            "member_id": member_form(&mb.member_id, &mb.client_id),
                            "group_instance_id": opt_str(&mb.group_instance_id),
                            "client_id": mb.client_id.as_str(),
                            "client_host": mb.client_host.as_str(),
                            "metadata": hex(&mb.member_metadata),
                            "assignment": hex(&mb.member_assignment),
                        })).collect::<Vec<_>>(),
                    }),
                );
            }
            Value::Object(out)
        }
    }
}

/// ListGroups, only the groups named.
fn list_groups(ctx: &Ctx, names: &[&str], states: &[&str], types: &[&str]) -> Value {
    let req = m::ListGroupsRequest::default()
        .with_states_filter(states.iter().map(|x| s(x)).collect())
        .with_types_filter(types.iter().map(|x| s(x)).collect());
    match ctx.call::<m::ListGroupsResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => {
            let mut groups = serde_json::Map::new();
            for g in &r.groups {
                if names.contains(&g.group_id.0.as_str()) {
                    groups.insert(
                        g.group_id.0.to_string(),
                        json!({
                            "protocol_type": g.protocol_type.as_str(),
                            "state": g.group_state.as_str(),
                            "type": g.group_type.as_str(),
                        }),
                    );
                }
            }
            json!({ "error": err(r.error_code), "groups": groups })
        }
    }
}

/// OffsetFetch of `group`: all topics (`None`) or the given partitions.
fn offset_fetch(ctx: &Ctx, group: &str, topics: Option<&[(&str, &[i32])]>) -> Value {
    let req = m::OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    m::offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(tn(t))
                        .with_partition_indexes(ps.to_vec())
                })
                .collect()
        }));
    match ctx.call::<m::OffsetFetchResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => {
            let mut parts = BTreeMap::new();
            for t in &r.topics {
                for p in &t.partitions {
                    parts.insert(
                        format!("{}/{}", t.name.0, p.partition_index),
                        json!({
                            "offset": p.committed_offset,
                            "leader_epoch": p.committed_leader_epoch,
                            "metadata": opt_str(&p.metadata),
                            "error": err(p.error_code),
                        }),
                    );
                }
            }
            json!({ "error": err(r.error_code), "partitions": parts })
        }
    }
}

fn offset_delete(ctx: &Ctx, group: &str, topic: &str, partitions: &[i32]) -> Value {
    let req = m::OffsetDeleteRequest::default()
        .with_group_id(gid(group))
        .with_topics(vec![
            m::offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(tn(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| {
                            m::offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(*p)
                        })
                        .collect(),
                ),
        ]);
    let v = ctx.version(ApiKey::OffsetDelete).unwrap_or(0);
    match ctx.send_v(req, v) {
        Err(e) => transport(e),
        Ok(ResponseBody::OffsetDelete(r)) => {
            // By topic and partition: the order of the answer carries no meaning.
            let parts: BTreeMap<String, Value> = r
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(move |p| {
                        (
                            format!("{}/{}", t.name.0, p.partition_index),
                            err(p.error_code),
                        )
                    })
                })
                .collect();
            json!({ "error": err(r.error_code), "partitions": parts })
        }
        Ok(_) => json!("unexpected response"),
    }
}

fn delete_groups(ctx: &Ctx, groups: &[&str]) -> Value {
    let req = m::DeleteGroupsRequest::default()
        .with_groups_names(groups.iter().map(|g| gid(g)).collect());
    match ctx.call::<m::DeleteGroupsResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => {
            let mut out = serde_json::Map::new();
            for g in &r.results {
                out.insert(g.group_id.0.to_string(), err(g.error_code));
            }
            Value::Object(out)
        }
    }
}

/// A subscribed librdkafka consumer that has read all `n` records of its assignment.
fn group_consumer(
    ctx: &Ctx,
    group: &str,
    topic: &str,
    protocol: &str,
    n: usize,
) -> (BaseConsumer, usize) {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &ctx.bootstrap)
        .set("group.id", group)
        .set("client.id", format!("diff-{protocol}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    if protocol == "consumer" {
        cfg.set("group.protocol", "consumer");
    } else {
        cfg.set("partition.assignment.strategy", "range")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "500");
    }
    let c: BaseConsumer = cfg.create().expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < n && Instant::now() < deadline {
        if let Some(Ok(_)) = c.poll(Duration::from_millis(200)) {
            got += 1;
        }
    }
    (c, got)
}

fn commit(c: &BaseConsumer, topic: &str, offsets: &[(i32, i64, &str)]) -> Value {
    let mut tpl = TopicPartitionList::new();
    for (p, o, meta) in offsets {
        let mut e = tpl.add_partition(topic, *p);
        e.set_offset(Offset::Offset(*o)).expect("offset");
        e.set_metadata(*meta);
        let _ = &mut e;
    }
    match c.commit(&tpl, CommitMode::Sync) {
        Ok(()) => json!("ok"),
        Err(e) => json!(format!("{e}")),
    }
}

/// Poll `f` (an observation) until `done` holds, at most 30 s; the last observation.
fn until(mut f: impl FnMut() -> Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = f();
        if done(&v) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn classic_group(ctx: &Ctx) -> Value {
    let t = ctx.name("cg-topic");
    let g = ctx.name("cg");
    let unknown = ctx.name("cg-unknown");
    create_topic(ctx, &t, 2, &[]);
    for p in 0..2 {
        produce(ctx, &t, p, super::now_ms(), &["a", "b", "c", "d"]);
    }
    let mut o = serde_json::Map::new();
    let (c, got) = group_consumer(ctx, &g, &t, "classic", 8);
    o.insert("consumed".into(), json!(got));
    o.insert("commit".into(), commit(&c, &t, &[(0, 4, "m0"), (1, 3, "")]));
    let stable = until(
        || describe_groups(ctx, &[&g]),
        |v| v[&g]["state"] == "Stable",
    );
    o.insert("describe_member".into(), stable);
    o.insert("describe_unknown".into(), describe_groups(ctx, &[&unknown]));
    o.insert("list_all".into(), list_groups(ctx, &[&g], &[], &[]));
    o.insert(
        "list_stable".into(),
        list_groups(ctx, &[&g], &["Stable"], &[]),
    );
    o.insert(
        "list_empty_state".into(),
        list_groups(ctx, &[&g], &["Empty"], &[]),
    );
    o.insert(
        "list_classic_type".into(),
        list_groups(ctx, &[&g], &[], &["classic"]),
    );
    o.insert(
        "list_consumer_type".into(),
        list_groups(ctx, &[&g], &[], &["consumer"]),
    );
    o.insert("offsets_all".into(), offset_fetch(ctx, &g, None));
    o.insert(
        "offsets_named".into(),
        offset_fetch(
            ctx,
            &g,
            Some(&[(&t, &[0, 1, 9]), (&ctx.name("cg-no-topic"), &[0])]),
        ),
    );
    o.insert(
        "offsets_unknown_group".into(),
        offset_fetch(ctx, &unknown, None),
    );
    o.insert(
        "offset_delete_subscribed".into(),
        offset_delete(ctx, &g, &t, &[0]),
    );
    o.insert("delete_while_member".into(), delete_groups(ctx, &[&g]));
    drop(c);
    let empty = until(
        || describe_groups(ctx, &[&g]),
        |v| v[&g]["state"] == "Empty",
    );
    o.insert("describe_after_leave".into(), empty);
    o.insert("list_after_leave".into(), list_groups(ctx, &[&g], &[], &[]));
    o.insert(
        "offset_delete_after_leave".into(),
        offset_delete(ctx, &g, &t, &[0, 5]),
    );
    o.insert(
        "offsets_after_offset_delete".into(),
        offset_fetch(ctx, &g, None),
    );
    o.insert("delete".into(), delete_groups(ctx, &[&g, &unknown]));
    o.insert("describe_after_delete".into(), describe_groups(ctx, &[&g]));
    o.insert("offsets_after_delete".into(), offset_fetch(ctx, &g, None));
    o.insert("delete_again".into(), delete_groups(ctx, &[&g]));
    Value::Object(o)
}

fn assignment(a: &m::consumer_group_describe_response::Assignment) -> Value {
    let mut parts: Vec<Value> = a
        .topic_partitions
        .iter()
        .map(|tp| {
            let mut ps = tp.partitions.clone();
            ps.sort();
            json!({
                "topic": tp.topic_name.0.as_str(),
                "topic_id_set": !tp.topic_id.is_nil(),
                "partitions": ps,
            })
        })
        .collect();
    parts.sort_by_key(|v| v["topic"].as_str().unwrap_or("").to_string());
    Value::Array(parts)
}

fn consumer_group_describe(ctx: &Ctx, groups: &[&str]) -> Value {
    let req = m::ConsumerGroupDescribeRequest::default()
        .with_group_ids(groups.iter().map(|g| gid(g)).collect())
        .with_include_authorized_operations(true);
    let v = ctx.version(ApiKey::ConsumerGroupDescribe).unwrap_or(0);
    match ctx.send_v(req, v) {
        Err(e) => transport(e),
        Ok(ResponseBody::ConsumerGroupDescribe(r)) => {
            let mut out = serde_json::Map::new();
            for g in &r.groups {
                out.insert(
                    g.group_id.0.to_string(),
                    json!({
                        "error": err(g.error_code),
                        "note_error_message": opt_str(&g.error_message),
                        "state": g.group_state.as_str(),
                        "group_epoch": g.group_epoch,
                        "assignment_epoch": g.assignment_epoch,
                        "assignor": g.assignor_name.as_str(),
                        "authorized_operations": g.authorized_operations,
                        "members": g.members.iter().map(|mb| json!({
                            "member_id": member_form(&mb.member_id, &mb.client_id),
                            "instance_id": opt_str(&mb.instance_id),
                            "rack_id": opt_str(&mb.rack_id),
                            "member_epoch": mb.member_epoch,
                            "client_id": mb.client_id.as_str(),
                            "client_host": mb.client_host.as_str(),
                            "subscribed_topic_names": mb.subscribed_topic_names.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
                            "subscribed_topic_regex": opt_str(&mb.subscribed_topic_regex),
                            "assignment": assignment(&mb.assignment),
                            "target_assignment": assignment(&mb.target_assignment),
                            "member_type": mb.member_type,
                        })).collect::<Vec<_>>(),
                    }),
                );
            }
            Value::Object(out)
        }
        Ok(_) => json!("unexpected response"),
    }
}

fn consumer_group(ctx: &Ctx) -> Value {
    let t = ctx.name("kg-topic");
    let g = ctx.name("kg");
    let unknown = ctx.name("kg-unknown");
    create_topic(ctx, &t, 2, &[]);
    for p in 0..2 {
        produce(ctx, &t, p, super::now_ms(), &["a", "b", "c", "d"]);
    }
    let mut o = serde_json::Map::new();
    let (c, got) = group_consumer(ctx, &g, &t, "consumer", 8);
    o.insert("consumed".into(), json!(got));
    o.insert(
        "commit".into(),
        commit(&c, &t, &[(0, 4, "m0"), (1, 2, "m1")]),
    );
    let stable = until(
        || consumer_group_describe(ctx, &[&g]),
        |v| {
            v[&g]["state"] == "Stable"
                && v[&g]["members"][0]["assignment"][0]["partitions"] == json!([0, 1])
        },
    );
    o.insert("describe_member".into(), stable);
    o.insert(
        "describe_unknown".into(),
        consumer_group_describe(ctx, &[&unknown]),
    );
    o.insert("classic_describe".into(), describe_groups(ctx, &[&g]));
    o.insert("list_all".into(), list_groups(ctx, &[&g], &[], &[]));
    o.insert(
        "list_consumer_type".into(),
        list_groups(ctx, &[&g], &[], &["consumer"]),
    );
    o.insert(
        "list_classic_type".into(),
        list_groups(ctx, &[&g], &[], &["classic"]),
    );
    o.insert("offsets_all".into(), offset_fetch(ctx, &g, None));
    o.insert(
        "offset_delete_subscribed".into(),
        offset_delete(ctx, &g, &t, &[1]),
    );
    o.insert("delete_while_member".into(), delete_groups(ctx, &[&g]));
    drop(c);
    let empty = until(
        || consumer_group_describe(ctx, &[&g]),
        |v| v[&g]["state"] == "Empty",
    );
    o.insert("describe_after_leave".into(), empty);
    o.insert("list_after_leave".into(), list_groups(ctx, &[&g], &[], &[]));
    o.insert(
        "offset_delete_after_leave".into(),
        offset_delete(ctx, &g, &t, &[1]),
    );
    o.insert(
        "offsets_after_offset_delete".into(),
        offset_fetch(ctx, &g, None),
    );
    o.insert("delete".into(), delete_groups(ctx, &[&g]));
    o.insert(
        "describe_after_delete".into(),
        consumer_group_describe(ctx, &[&g]),
    );
    Value::Object(o)
}

fn join(ctx: &Ctx, group: &str, member: &str, session_ms: i32) -> Value {
    let req = m::JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            m::join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                // ConsumerProtocolSubscription v0 with no topics: Kafka parses it.
                .with_metadata(bytes::Bytes::from_static(&[
                    0, 0, 0, 0, 0, 0, 255, 255, 255, 255,
                ])),
        ]);
    match ctx.call::<m::JoinGroupResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => json!({
            "error": err(r.error_code),
            "generation_id": r.generation_id,
            "member_id": member_form(&r.member_id, "differential"),
            "protocol_name": opt_str(&r.protocol_name),
            "leader_set": !r.leader.is_empty(),
            "members": r.members.len(),
        }),
    }
}

fn commit_raw(
    ctx: &Ctx,
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offset: i64,
) -> Value {
    let req = m::OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_retention_time_ms(-1)
        .with_topics(vec![
            m::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(tn(topic))
                .with_partitions(vec![
                    m::offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(s("meta"))),
                ]),
        ]);
    match ctx.call::<m::OffsetCommitResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => json!(r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| err(p.error_code)))
            .collect::<Vec<_>>()),
    }
}

fn cg_heartbeat(ctx: &Ctx, req: m::ConsumerGroupHeartbeatRequest) -> Value {
    match ctx.call::<m::ConsumerGroupHeartbeatResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => json!({
            "error": err(r.error_code),
            "note_error_message": opt_str(&r.error_message),
            "member_id": r.member_id.as_ref().map(|m| member_form(m, "")),
            "member_epoch": r.member_epoch,
            "heartbeat_interval_ms": r.heartbeat_interval_ms,
            "assignment": r.assignment.as_ref().map(|a| a.topic_partitions.iter().map(|tp| {
                let mut ps = tp.partitions.clone();
                ps.sort();
                json!({ "topic_id_set": !tp.topic_id.is_nil(), "partitions": ps })
            }).collect::<Vec<_>>()),
        }),
    }
}

fn group_errors(ctx: &Ctx) -> Value {
    let t = ctx.name("ge-topic");
    create_topic(ctx, &t, 1, &[]);
    produce(ctx, &t, 0, super::now_ms(), &["a", "b", "c", "d", "e"]);
    let g = ctx.name("ge");
    let simple = ctx.name("ge-simple");
    let unknown = ctx.name("ge-unknown");
    let mut o = serde_json::Map::new();
    o.insert("join_without_member_id".into(), join(ctx, &g, "", 10_000));
    o.insert(
        "join_session_timeout_too_small".into(),
        join(ctx, &ctx.name("ge-session"), "", 1),
    );
    o.insert(
        "join_session_timeout_too_large".into(),
        join(ctx, &ctx.name("ge-session2"), "", 100_000_000),
    );
    o.insert("join_empty_group_id".into(), join(ctx, "", "", 10_000));
    o.insert(
        "heartbeat_unknown_group".into(),
        match ctx.call::<m::HeartbeatResponse>(
            m::HeartbeatRequest::default()
                .with_group_id(gid(&unknown))
                .with_generation_id(1)
                .with_member_id(s("nobody")),
        ) {
            Err(e) => transport(e),
            Ok(r) => err(r.error_code),
        },
    );
    o.insert(
        "sync_unknown_member".into(),
        match ctx.call::<m::SyncGroupResponse>(
            m::SyncGroupRequest::default()
                .with_group_id(gid(&unknown))
                .with_generation_id(1)
                .with_member_id(s("nobody"))
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range"))),
        ) {
            Err(e) => transport(e),
            Ok(r) => err(r.error_code),
        },
    );
    o.insert(
        "leave_unknown_member".into(),
        match ctx.call::<m::LeaveGroupResponse>(
            m::LeaveGroupRequest::default()
                .with_group_id(gid(&unknown))
                .with_members(vec![
                    m::leave_group_request::MemberIdentity::default().with_member_id(s("nobody"))
                ]),
        ) {
            Err(e) => transport(e),
            Ok(r) => json!({
                "error": err(r.error_code),
                "members": r.members.iter().map(|mb| err(mb.error_code)).collect::<Vec<_>>(),
            }),
        },
    );
    o.insert(
        "simple_commit".into(),
        commit_raw(ctx, &simple, -1, "", &t, 3),
    );
    o.insert("simple_offsets".into(), offset_fetch(ctx, &simple, None));
    o.insert(
        "simple_commit_unknown_topic".into(),
        commit_raw(ctx, &simple, -1, "", &ctx.name("ge-none"), 1),
    );
    o.insert(
        "simple_commit_bad_generation".into(),
        commit_raw(ctx, &simple, 5, "someone", &t, 4),
    );
    o.insert(
        "simple_commit_past_end".into(),
        commit_raw(ctx, &simple, -1, "", &t, 100),
    );
    o.insert(
        "simple_offsets_after".into(),
        offset_fetch(ctx, &simple, None),
    );
    o.insert("simple_describe".into(), describe_groups(ctx, &[&simple]));
    o.insert("simple_list".into(), list_groups(ctx, &[&simple], &[], &[]));
    o.insert(
        "find_coordinator".into(),
        match ctx.call::<m::FindCoordinatorResponse>(super::api::find_coordinator(ctx, 0, &[&g])) {
            Err(e) => transport(e),
            Ok(r) => json!({
                "error": err(r.error_code),
                "node_id": r.node_id.0,
                "address": ctx.addr(&r.host, r.port),
                "coordinators": r.coordinators.iter().map(|c| json!({
                    "key": c.key.as_str(),
                    "node_id": c.node_id.0,
                    "address": ctx.addr(&c.host, c.port),
                    "error": err(c.error_code),
                    "note_error_message": opt_str(&c.error_message),
                })).collect::<Vec<_>>(),
            }),
        },
    );
    let kg = ctx.name("ge-kip848");
    let member = uuid::Uuid::new_v4().to_string();
    let hb = |member: &str, epoch: i32, group: &str| {
        m::ConsumerGroupHeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_member_id(s(member))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(10_000)
            .with_subscribed_topic_names(Some(vec![tn(&t)]))
            .with_topic_partitions(Some(vec![]))
    };
    o.insert(
        "cg_heartbeat_empty_group_id".into(),
        cg_heartbeat(ctx, hb(&member, 0, "")),
    );
    o.insert(
        "cg_heartbeat_unknown_member_epoch_5".into(),
        cg_heartbeat(ctx, hb(&member, 5, &kg)),
    );
    o.insert(
        "cg_heartbeat_join".into(),
        cg_heartbeat(ctx, hb(&member, 0, &kg)),
    );
    o.insert(
        "cg_heartbeat_fenced_epoch".into(),
        cg_heartbeat(ctx, hb(&member, 7, &kg)),
    );
    o.insert(
        "cg_heartbeat_unknown_assignor".into(),
        cg_heartbeat(
            ctx,
            hb(&uuid::Uuid::new_v4().to_string(), 0, &kg).with_server_assignor(Some(s("nope"))),
        ),
    );
    o.insert(
        "cg_heartbeat_regex".into(),
        cg_heartbeat(
            ctx,
            hb(&uuid::Uuid::new_v4().to_string(), 0, &ctx.name("ge-regex"))
                .with_subscribed_topic_names(None)
                .with_subscribed_topic_regex(Some(s("ge-topic.*"))),
        ),
    );
    o.insert(
        "cg_heartbeat_leave".into(),
        cg_heartbeat(ctx, hb(&member, -1, &kg)),
    );
    o.insert(
        "delete".into(),
        delete_groups(ctx, &[&simple, &unknown, &kg]),
    );
    Value::Object(o)
}
