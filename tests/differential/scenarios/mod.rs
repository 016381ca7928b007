//! The scenarios, and setup steps they share. A setup step (creating a topic, producing
//! the records a scenario reads) panics on failure: the scenario's observation is then
//! `{"panic": ...}` and differs from the other broker's.

pub mod api;
mod configs;
mod groups;
mod records;
mod topics;
mod transactions;

use std::time::{Duration, Instant};

use kafka_protocol::messages as m;
use runnel_protocol::record_batch::builder::{simple_batch, Record};
use serde_json::{json, Value};

use crate::harness::{err, s, tn, Ctx, Scenario};

pub const ALL: &[Scenario] = &[
    api::API_VERSIONS,
    api::METADATA,
    api::DESCRIBE_CLUSTER,
    api::INIT_PRODUCER_ID,
    topics::CREATE_TOPICS,
    topics::DELETE_TOPICS,
    topics::CREATE_PARTITIONS,
    configs::DESCRIBE_TOPIC_CONFIGS,
    configs::DESCRIBE_BROKER_CONFIGS,
    configs::ALTER_CONFIGS,
    records::PRODUCE_CONSUME_CODECS,
    records::LOG_APPEND_TIME,
    records::PRODUCE_ERRORS,
    records::FETCH,
    records::OLD_TIMESTAMPS,
    records::LIST_OFFSETS,
    records::OFFSET_FOR_LEADER_EPOCH,
    records::DELETE_RECORDS,
    groups::CLASSIC_GROUP,
    groups::CONSUMER_GROUP,
    groups::GROUP_ERRORS,
    transactions::TXN_COORDINATOR,
    transactions::TXN_COMMIT_ABORT,
    transactions::TXN_OFFSETS,
    transactions::TXN_V2,
    transactions::TXN_TIMEOUT,
];

/// Create `name` (replication factor 1) or panic.
pub fn create_topic(ctx: &Ctx, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let topic = m::create_topics_request::CreatableTopic::default()
        .with_name(tn(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    m::create_topics_request::CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        );
    let r: m::CreateTopicsResponse = ctx
        .call(
            m::CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(30_000),
        )
        .expect("CreateTopics");
    let code = r.topics[0].error_code;
    assert_eq!(code, 0, "create {name}: {:?}", err(code));
    wait_for_leaders(ctx, name, partitions);
}

/// Wait until Metadata shows `partitions` partitions of `topic`, each with a leader
/// (Kafka answers CreateTopics before its metadata cache has the topic).
pub fn wait_for_leaders(ctx: &Ctx, topic: &str, partitions: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r: m::MetadataResponse = ctx
            .call(
                m::MetadataRequest::default()
                    .with_topics(Some(vec![
                        m::metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(tn(topic))),
                    ]))
                    .with_allow_auto_topic_creation(false),
            )
            .expect("Metadata");
        let t = &r.topics[0];
        if t.error_code == 0
            && t.partitions.len() == partitions as usize
            && t.partitions
                .iter()
                .all(|p| p.error_code == 0 && p.leader_id.0 >= 0)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} has no leaders after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Produce request of one uncompressed batch of `values` (keys `k0`, `k1`, ...) at
/// timestamps `base_ts + 10 * i`, acks=all.
pub fn produce_request(
    topic: &str,
    partition: i32,
    base_ts: i64,
    values: &[&str],
) -> m::ProduceRequest {
    let keys: Vec<String> = (0..values.len()).map(|i| format!("k{i}")).collect();
    let records: Vec<Record<'_>> = values
        .iter()
        .zip(&keys)
        .enumerate()
        .map(|(i, (v, k))| Record {
            timestamp_delta: 10 * i as i64,
            key: Some(k.as_bytes()),
            value: Some(v.as_bytes()),
            headers: vec![],
        })
        .collect();
    produce_bytes(topic, partition, simple_batch(base_ts, &records), -1)
}

pub fn produce_bytes(topic: &str, partition: i32, batch: Vec<u8>, acks: i16) -> m::ProduceRequest {
    m::ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![m::produce_request::TopicProduceData::default()
            .with_name(tn(topic))
            .with_partition_data(vec![
                m::produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch.into())),
            ])])
}

/// Produce one batch or panic; returns its base offset. NOT_LEADER_OR_FOLLOWER and
/// UNKNOWN_TOPIC_OR_PARTITION are retried for 10 s: Kafka answers them for a moment
/// after a topic was created, and clients retry them.
pub fn produce(ctx: &Ctx, topic: &str, partition: i32, base_ts: i64, values: &[&str]) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r: m::ProduceResponse = ctx
            .call(produce_request(topic, partition, base_ts, values))
            .expect("Produce");
        let p = &r.responses[0].partition_responses[0];
        if [3, 6].contains(&p.error_code) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        assert_eq!(
            p.error_code,
            0,
            "produce to {topic}: {:?}",
            err(p.error_code)
        );
        return p.base_offset;
    }
}

/// A timestamp relative to `base` (negative values are sentinels and kept).
pub fn rel(ts: i64, base: i64) -> Value {
    if ts < 0 {
        json!(ts)
    } else {
        json!(format!("base{:+}", ts - base))
    }
}

/// The one partition result of a Produce response, as an observation.
pub fn produce_result(r: Result<m::ProduceResponse, String>, window: (i64, i64)) -> Value {
    match r {
        Err(e) => crate::harness::transport(e),
        Ok(r) => {
            let Some(p) = r
                .responses
                .first()
                .and_then(|t| t.partition_responses.first())
            else {
                return json!({ "responses": r.responses.len() });
            };
            json!({
                "error": err(p.error_code),
                "note_error_message": crate::harness::opt_str(&p.error_message),
                "base_offset": p.base_offset,
                "log_append_time": log_append_time(p.log_append_time_ms, window),
                "log_start_offset": p.log_start_offset,
                "record_errors": p.record_errors.iter().map(|e| json!({
                    "batch_index": e.batch_index,
                    "note_message": crate::harness::opt_str(&e.batch_index_error_message),
                })).collect::<Vec<_>>(),
            })
        }
    }
}

/// A LogAppendTime as "-1" or whether it falls in the window around the request.
pub fn log_append_time(ts: i64, (lo, hi): (i64, i64)) -> Value {
    if ts == -1 {
        json!(-1)
    } else if (lo..=hi).contains(&ts) {
        json!("within the request's time window")
    } else {
        json!(format!("outside the request's time window: {ts}"))
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
