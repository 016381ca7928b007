//! DescribeConfigs (values, sources, synonyms, types), IncrementalAlterConfigs and
//! AlterConfigs.

use std::collections::BTreeMap;

use kafka_protocol::messages as m;
use serde_json::{json, Value};

use super::create_topic;
use crate::harness::{err, opt_str, s, transport, Ctx, Scenario};

pub const DESCRIBE_TOPIC_CONFIGS: Scenario = Scenario {
    name: "describe_topic_configs",
    about: "DescribeConfigs with synonyms of a topic with overrides and of one without, \
            named keys (one unknown), an unknown topic and an invalid name",
    run: describe_topic_configs,
};

pub const DESCRIBE_BROKER_CONFIGS: Scenario = Scenario {
    name: "describe_broker_configs",
    about: "DescribeConfigs with synonyms of the broker, for the broker configs behind \
            topic defaults and the group and request settings; an unknown broker id",
    run: describe_broker_configs,
};

pub const ALTER_CONFIGS: Scenario = Scenario {
    name: "alter_configs",
    about: "IncrementalAlterConfigs SET/DELETE/APPEND/SUBTRACT, validate_only, bad values, \
            unknown names, an unknown topic; legacy AlterConfigs (replaces every override)",
    run: alter_configs,
};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Broker configs a client or operator reads: the defaults behind topic configs and the
/// settings Runnel shares with Kafka.
const BROKER_CONFIGS: &[&str] = &[
    "auto.create.topics.enable",
    "broker.id",
    "compression.type",
    "default.replication.factor",
    "delete.topic.enable",
    "fetch.max.bytes",
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.session.timeout.ms",
    "group.initial.rebalance.delay.ms",
    "group.max.session.timeout.ms",
    "group.min.session.timeout.ms",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleanup.policy",
    "log.index.interval.bytes",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.type",
    "log.retention.bytes",
    "log.retention.hours",
    "log.retention.minutes",
    "log.retention.ms",
    "log.roll.hours",
    "log.roll.ms",
    "log.segment.bytes",
    "message.max.bytes",
    "min.insync.replicas",
    "node.id",
    "num.partitions",
    "offsets.topic.num.partitions",
    "offsets.retention.minutes",
    "queued.max.request.bytes",
    "socket.request.max.bytes",
];

fn describe(ctx: &Ctx, resource_type: i8, name: &str, keys: Option<&[&str]>) -> Value {
    let req = m::DescribeConfigsRequest::default()
        .with_resources(vec![
            m::describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configuration_keys(keys.map(|ks| ks.iter().map(|k| s(k)).collect())),
        ])
        .with_include_synonyms(true)
        .with_include_documentation(false);
    match ctx.call::<m::DescribeConfigsResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => {
            let Some(res) = r.results.first() else {
                return json!("no result");
            };
            let configs: BTreeMap<String, Value> = res
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        json!({
                            "value": opt_str(&c.value),
                            "read_only": c.read_only,
                            "source": c.config_source,
                            "sensitive": c.is_sensitive,
                            "type": c.config_type,
                            "synonyms": c.synonyms.iter().map(|y| json!({
                                "name": y.name.as_str(),
                                "value": opt_str(&y.value),
                                "source": y.source,
                            })).collect::<Vec<_>>(),
                        }),
                    )
                })
                .collect();
            json!({
                "error": err(res.error_code),
                "note_error_message": opt_str(&res.error_message),
                "resource_type": res.resource_type,
                "resource_name": res.resource_name.as_str(),
                "configs": configs,
            })
        }
    }
}

/// Only the overrides (source 1, DYNAMIC_TOPIC_CONFIG) of a topic, name → value.
fn overrides(ctx: &Ctx, topic: &str) -> Value {
    let v = describe(ctx, TOPIC, topic, None);
    let mut out = serde_json::Map::new();
    if let Some(cs) = v.get("configs").and_then(Value::as_object) {
        for (k, c) in cs {
            if c["source"] == json!(1) {
                out.insert(k.clone(), c["value"].clone());
            }
        }
    }
    Value::Object(out)
}

fn describe_topic_configs(ctx: &Ctx) -> Value {
    let with = ctx.name("dc-overrides");
    let plain = ctx.name("dc-plain");
    create_topic(
        ctx,
        &with,
        1,
        &[
            ("retention.ms", "3600000"),
            ("cleanup.policy", "compact"),
            ("max.message.bytes", "2000000"),
            ("message.timestamp.type", "LogAppendTime"),
            ("min.cleanable.dirty.ratio", "0.2"),
        ],
    );
    create_topic(ctx, &plain, 1, &[]);
    json!({
        "overrides": describe(ctx, TOPIC, &with, None),
        "defaults": describe(ctx, TOPIC, &plain, None),
        "named_keys": describe(ctx, TOPIC, &with, Some(&["retention.ms", "segment.bytes", "no.such.config"])),
        "unknown_topic": describe(ctx, TOPIC, &ctx.name("dc-unknown"), None),
        "invalid_name": describe(ctx, TOPIC, "bad/name", None),
    })
}

fn describe_broker_configs(ctx: &Ctx) -> Value {
    json!({
        "broker": describe(ctx, BROKER, "1", Some(BROKER_CONFIGS)),
        "unknown_broker": describe(ctx, BROKER, "99", Some(&["num.partitions"])),
        "non_numeric_broker": describe(ctx, BROKER, "one", Some(&["num.partitions"])),
    })
}

/// (name, op, value): op 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT.
fn incremental(
    ctx: &Ctx,
    topic: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> Value {
    let req = m::IncrementalAlterConfigsRequest::default()
        .with_resources(vec![
            m::incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(s(topic))
                .with_configs(
                    ops.iter()
                        .map(|(n, op, v)| {
                            m::incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(s(n))
                                .with_config_operation(*op)
                                .with_value(v.map(s))
                        })
                        .collect(),
                ),
        ])
        .with_validate_only(validate_only);
    match ctx.call::<m::IncrementalAlterConfigsResponse>(req) {
        Err(e) => transport(e),
        Ok(r) => match r.responses.first() {
            None => json!("no result"),
            Some(x) => json!({
                "error": err(x.error_code),
                "note_error_message": opt_str(&x.error_message),
            }),
        },
    }
}

fn legacy(ctx: &Ctx, topic: &str, configs: &[(&str, &str)]) -> Value {
    let req = m::AlterConfigsRequest::default().with_resources(vec![
        m::alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(s(topic))
            .with_configs(
                configs
                    .iter()
                    .map(|(n, v)| {
                        m::alter_configs_request::AlterableConfig::default()
                            .with_name(s(n))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            ),
    ]);
    let v = ctx
        .version(runnel_protocol::api::ApiKey::AlterConfigs)
        .unwrap_or(0);
    match ctx.send_v(req, v) {
        Err(e) => transport(e),
        Ok(runnel_protocol::api::ResponseBody::AlterConfigs(r)) => match r.responses.first() {
            None => json!("no result"),
            Some(x) => json!({
                "error": err(x.error_code),
                "note_error_message": opt_str(&x.error_message),
            }),
        },
        Ok(_) => json!("unexpected response"),
    }
}

/// The alter_configs steps that change the topic's overrides (on both brokers).
const CHANGING_STEPS: &[&str] = &[
    "set_and_delete",
    "append_list",
    "subtract_list",
    "legacy_replaces_all",
];

fn alter_configs(ctx: &Ctx) -> Value {
    let t = ctx.name("ac");
    create_topic(ctx, &t, 1, &[("retention.ms", "3600000")]);
    let mut o = serde_json::Map::new();
    // Kafka's brokers apply a config change from the metadata log a moment after the
    // controller answered: after a step that changes the overrides, wait (at most 5 s)
    // until DescribeConfigs shows a change.
    let mut last = overrides(ctx, &t);
    let mut step = |name: &str, result: Value, o: &mut serde_json::Map<String, Value>| {
        let changes = CHANGING_STEPS.contains(&name);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let after = loop {
            let now = overrides(ctx, &t);
            if !changes || now != last || std::time::Instant::now() > deadline {
                break now;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        last = after.clone();
        o.insert(
            name.into(),
            json!({ "result": result, "overrides_after": after }),
        );
    };
    step(
        "set_and_delete",
        incremental(
            ctx,
            &t,
            &[
                ("segment.bytes", 0, Some("1048576")),
                ("retention.ms", 1, None),
            ],
            false,
        ),
        &mut o,
    );
    step(
        "append_list",
        incremental(ctx, &t, &[("cleanup.policy", 2, Some("compact"))], false),
        &mut o,
    );
    step(
        "subtract_list",
        incremental(ctx, &t, &[("cleanup.policy", 3, Some("delete"))], false),
        &mut o,
    );
    step(
        "append_non_list",
        incremental(ctx, &t, &[("retention.ms", 2, Some("5"))], false),
        &mut o,
    );
    step(
        "validate_only",
        incremental(ctx, &t, &[("retention.ms", 0, Some("1000"))], true),
        &mut o,
    );
    step(
        "bad_value",
        incremental(ctx, &t, &[("segment.bytes", 0, Some("-5"))], false),
        &mut o,
    );
    step(
        "unknown_name",
        incremental(ctx, &t, &[("no.such.config", 0, Some("1"))], false),
        &mut o,
    );
    step(
        "delete_unset",
        incremental(ctx, &t, &[("retention.bytes", 1, None)], false),
        &mut o,
    );
    step(
        "bad_operation",
        incremental(ctx, &t, &[("retention.ms", 9, Some("1"))], false),
        &mut o,
    );
    step(
        "same_name_twice",
        incremental(
            ctx,
            &t,
            &[
                ("retention.ms", 0, Some("1")),
                ("retention.ms", 0, Some("2")),
            ],
            false,
        ),
        &mut o,
    );
    o.insert(
        "unknown_topic".into(),
        incremental(
            ctx,
            &ctx.name("ac-unknown"),
            &[("retention.ms", 0, Some("1"))],
            false,
        ),
    );
    step(
        "legacy_replaces_all",
        legacy(ctx, &t, &[("max.message.bytes", "12345")]),
        &mut o,
    );
    step(
        "legacy_bad_value",
        legacy(ctx, &t, &[("max.message.bytes", "many")]),
        &mut o,
    );
    Value::Object(o)
}
