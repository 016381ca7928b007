//! CreateTopics, DeleteTopics and CreatePartitions, with their error paths.

use std::collections::BTreeMap;

use kafka_protocol::messages as m;
use m::create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig};
use runnel_protocol::api::ApiKey;
use serde_json::{json, Value};

use super::{create_topic, wait_for_leaders};
use crate::harness::{err, opt_str, s, tn, transport, Ctx, Scenario};

pub const CREATE_TOPICS: Scenario = Scenario {
    name: "create_topics",
    about: "CreateTopics: a topic with configs (the configs returned), validate_only, an \
            existing name, invalid names, replication factor 3, 0 and -1 partitions, \
            manual assignments, bad and unknown configs, a duplicate in one request",
    run: create_topics,
};

pub const DELETE_TOPICS: Scenario = Scenario {
    name: "delete_topics",
    about: "DeleteTopics: an existing topic, the same again, an unknown and an invalid name",
    run: delete_topics,
};

pub const CREATE_PARTITIONS: Scenario = Scenario {
    name: "create_partitions",
    about: "CreatePartitions: grow, validate_only, shrink, the same count, an unknown topic, \
            a duplicate in one request",
    run: create_partitions,
};

fn topic(name: &str, partitions: i32, rf: i16, configs: &[(&str, Option<&str>)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(tn(name))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(v.map(s))
                })
                .collect(),
        )
}

fn result(r: &m::create_topics_response::CreatableTopicResult) -> Value {
    let configs: Option<BTreeMap<String, Value>> = r.configs.as_ref().map(|cs| {
        cs.iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    json!({
                        "value": opt_str(&c.value),
                        "read_only": c.read_only,
                        "source": c.config_source,
                        "sensitive": c.is_sensitive,
                    }),
                )
            })
            .collect()
    });
    json!({
        "error": err(r.error_code),
        "note_error_message": opt_str(&r.error_message),
        "topic_id_set": !r.topic_id.is_nil(),
        "num_partitions": r.num_partitions,
        "replication_factor": r.replication_factor,
        "topic_config_error": err(r.topic_config_error_code),
        "configs": configs,
    })
}

fn create(ctx: &Ctx, topics: Vec<CreatableTopic>, validate_only: bool) -> Value {
    let req = m::CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only);
    match ctx.call::<m::CreateTopicsResponse>(req) {
        Err(e) => transport(e),
        Ok(r) if r.topics.len() == 1 => result(&r.topics[0]),
        Ok(r) => Value::Array(r.topics.iter().map(result).collect()),
    }
}

/// Whether Metadata (no auto-creation) knows `name`.
fn exists(ctx: &Ctx, name: &str) -> Value {
    let req = m::MetadataRequest::default()
        .with_topics(Some(vec![
            m::metadata_request::MetadataRequestTopic::default().with_name(Some(tn(name))),
        ]))
        .with_allow_auto_topic_creation(false);
    match ctx.call::<m::MetadataResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => json!({
            "error": r.topics.first().map(|t| err(t.error_code)),
            "partitions": r.topics.first().map(|t| t.partitions.len()),
        }),
    }
}

fn create_topics(ctx: &Ctx) -> Value {
    let mut o = serde_json::Map::new();
    let ok = ctx.name("ct-ok");
    o.insert(
        "with_configs".into(),
        create(
            ctx,
            vec![topic(
                &ok,
                2,
                1,
                &[
                    ("retention.ms", Some("3600000")),
                    ("cleanup.policy", Some("compact,delete")),
                ],
            )],
            false,
        ),
    );
    wait_for_leaders(ctx, &ok, 2);
    o.insert(
        "already_exists".into(),
        create(ctx, vec![topic(&ok, 2, 1, &[])], false),
    );
    let vo = ctx.name("ct-validate");
    o.insert(
        "validate_only".into(),
        create(ctx, vec![topic(&vo, 3, 1, &[])], true),
    );
    o.insert("validate_only_created".into(), exists(ctx, &vo));
    o.insert(
        "validate_only_existing".into(),
        create(ctx, vec![topic(&ok, 2, 1, &[])], true),
    );
    let long = "a".repeat(250);
    for (case, name) in [
        ("name_slash", "bad/name"),
        ("name_empty", ""),
        ("name_dot", "."),
        ("name_dotdot", ".."),
        ("name_space", "has space"),
        ("name_250_chars", long.as_str()),
    ] {
        o.insert(
            case.into(),
            create(ctx, vec![topic(name, 1, 1, &[])], false),
        );
    }
    let defaults = ctx.name("ct-defaults");
    o.insert(
        "defaults_minus_one".into(),
        create(ctx, vec![topic(&defaults, -1, -1, &[])], false),
    );
    let cases: Vec<(&str, CreatableTopic)> = vec![
        (
            "replication_factor_3",
            topic(&ctx.name("ct-rf3"), 1, 3, &[]),
        ),
        ("zero_partitions", topic(&ctx.name("ct-zero"), 0, 1, &[])),
        (
            "zero_replication_factor",
            topic(&ctx.name("ct-rf0"), 1, 0, &[]),
        ),
        (
            "bad_config_value",
            topic(
                &ctx.name("ct-badval"),
                1,
                1,
                &[("retention.ms", Some("soon"))],
            ),
        ),
        (
            "unknown_config",
            topic(
                &ctx.name("ct-unknown"),
                1,
                1,
                &[("no.such.config", Some("1"))],
            ),
        ),
        (
            "bad_cleanup_policy",
            topic(
                &ctx.name("ct-policy"),
                1,
                1,
                &[("cleanup.policy", Some("bogus"))],
            ),
        ),
        (
            "null_config_value",
            topic(&ctx.name("ct-nullval"), 1, 1, &[("retention.ms", None)]),
        ),
        (
            "min_insync_above_rf",
            topic(
                &ctx.name("ct-minisr"),
                1,
                1,
                &[("min.insync.replicas", Some("2"))],
            ),
        ),
        (
            "negative_segment_bytes",
            topic(&ctx.name("ct-seg"), 1, 1, &[("segment.bytes", Some("-1"))]),
        ),
        (
            "assignment_to_this_broker",
            topic(&ctx.name("ct-assign"), -1, -1, &[]).with_assignments(vec![
                CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![m::BrokerId(1)]),
                CreatableReplicaAssignment::default()
                    .with_partition_index(1)
                    .with_broker_ids(vec![m::BrokerId(1)]),
            ]),
        ),
        (
            "assignment_to_unknown_broker",
            topic(&ctx.name("ct-assign-bad"), -1, -1, &[]).with_assignments(vec![
                CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![m::BrokerId(7)]),
            ]),
        ),
        (
            "assignment_with_partition_count",
            topic(&ctx.name("ct-assign-both"), 2, -1, &[]).with_assignments(vec![
                CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![m::BrokerId(1)]),
            ]),
        ),
    ];
    for (case, t) in cases {
        o.insert(case.into(), create(ctx, vec![t], false));
    }
    let dup = ctx.name("ct-dup");
    o.insert(
        "duplicate_in_request".into(),
        create(
            ctx,
            vec![topic(&dup, 1, 1, &[]), topic(&dup, 1, 1, &[])],
            false,
        ),
    );
    o.insert("duplicate_created".into(), exists(ctx, &dup));
    Value::Object(o)
}

fn delete(ctx: &Ctx, names: &[&str]) -> Value {
    let v = ctx.version(ApiKey::DeleteTopics).unwrap_or(0);
    let mut req = m::DeleteTopicsRequest::default().with_timeout_ms(30_000);
    if v >= 6 {
        req = req.with_topics(
            names
                .iter()
                .map(|n| {
                    m::delete_topics_request::DeleteTopicState::default().with_name(Some(tn(n)))
                })
                .collect(),
        );
    } else {
        req = req.with_topic_names(names.iter().map(|n| tn(n)).collect());
    }
    match ctx.call::<m::DeleteTopicsResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => Value::Array(
            r.responses
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name.as_ref().map(|n| n.0.to_string()),
                        "topic_id_set": !t.topic_id.is_nil(),
                        "error": err(t.error_code),
                        "note_error_message": opt_str(&t.error_message),
                    })
                })
                .collect(),
        ),
    }
}

fn delete_topics(ctx: &Ctx) -> Value {
    let t = ctx.name("dt");
    create_topic(ctx, &t, 2, &[]);
    let unknown = ctx.name("dt-unknown");
    let first = delete(ctx, &[&t]);
    let again = delete(ctx, &[&t]);
    let unknown_r = delete(ctx, &[&unknown]);
    let invalid = delete(ctx, &["bad/name"]);
    // A deleted topic can be created again at once.
    let recreate = m::CreateTopicsRequest::default()
        .with_topics(vec![m::create_topics_request::CreatableTopic::default()
            .with_name(tn(&t))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let recreated = loop {
        match ctx.call::<m::CreateTopicsResponse>(recreate.clone()) {
            Err(e) => break transport(e),
            // Kafka may answer TOPIC_ALREADY_EXISTS while the deletion completes.
            Ok(r) if r.topics[0].error_code == 36 && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Ok(r) => break json!({ "error": err(r.topics[0].error_code) }),
        }
    };
    json!({
        "delete": first,
        "delete_again": again,
        "delete_unknown": unknown_r,
        "delete_invalid_name": invalid,
        "recreate": recreated,
    })
}

fn grow(ctx: &Ctx, topics: &[(&str, i32)], validate_only: bool) -> Value {
    let req = m::CreatePartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|(n, c)| {
                    m::create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(tn(n))
                        .with_count(*c)
                        .with_assignments(None)
                })
                .collect(),
        )
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only);
    match ctx.call::<m::CreatePartitionsResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => Value::Array(
            r.results
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name.0.to_string(),
                        "error": err(t.error_code),
                        "note_error_message": opt_str(&t.error_message),
                    })
                })
                .collect(),
        ),
    }
}

fn partitions(ctx: &Ctx, name: &str) -> Value {
    let req = m::MetadataRequest::default()
        .with_topics(Some(vec![
            m::metadata_request::MetadataRequestTopic::default().with_name(Some(tn(name))),
        ]))
        .with_allow_auto_topic_creation(false);
    match ctx.call::<m::MetadataResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => json!(r.topics.first().map(|t| t.partitions.len())),
    }
}

fn create_partitions(ctx: &Ctx) -> Value {
    let t = ctx.name("cp");
    create_topic(ctx, &t, 2, &[]);
    let unknown = ctx.name("cp-unknown");
    let grown = grow(ctx, &[(&t, 4)], false);
    // Kafka's metadata shows new partitions a moment after it answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let after_grow = loop {
        let n = partitions(ctx, &t);
        if n == json!(4) || std::time::Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let validate = grow(ctx, &[(&t, 6)], true);
    let after_validate = partitions(ctx, &t);
    json!({
        "grow_2_to_4": grown,
        "after_grow": after_grow,
        "validate_only_to_6": validate,
        "after_validate_only": after_validate,
        "shrink_to_2": grow(ctx, &[(&t, 2)], false),
        "same_count": grow(ctx, &[(&t, 4)], false),
        "unknown_topic": grow(ctx, &[(&unknown, 3)], false),
        "duplicate_in_request": grow(ctx, &[(&t, 5), (&t, 5)], false),
        "after_all": partitions(ctx, &t),
    })
}
