//! Produce and fetch (librdkafka with every codec, and raw requests), timestamps,
//! ListOffsets, OffsetForLeaderEpoch and DeleteRecords, with their error paths.

use std::time::{Duration, Instant};

use kafka_protocol::messages as m;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, Timestamp, TopicPartitionList};
use runnel_protocol::record_batch::builder::{simple_batch, Record};
use serde_json::{json, Value};

use super::{
    create_topic, log_append_time, now_ms, produce, produce_bytes, produce_request, produce_result,
    rel,
};
use crate::harness::{err, tn, transport, Ctx, Scenario, TIMEOUT};

pub const PRODUCE_CONSUME_CODECS: Scenario = Scenario {
    name: "produce_consume_codecs",
    about: "librdkafka produces batches of 5, 7 and 8 records with keys, null keys and \
            values, headers (null and repeated) and CreateTime timestamps, once per codec \
            (none, gzip, snappy, lz4, zstd), and consumes them: offsets, contents, \
            timestamps, headers, watermarks, and the batch headers a raw Fetch returns",
    run: produce_consume_codecs,
};

pub const LOG_APPEND_TIME: Scenario = Scenario {
    name: "log_append_time",
    about: "message.timestamp.type=LogAppendTime (librdkafka and raw Produce), the Produce \
            response's log_append_time, and message.timestamp.before.max.ms refusing an \
            old CreateTime",
    run: log_append_time_scenario,
};

pub const PRODUCE_ERRORS: Scenario = Scenario {
    name: "produce_errors",
    about: "raw Produce: a batch over max.message.bytes, an unknown partition, an unknown \
            topic (not auto-created), an invalid topic name, acks=2, a bad CRC, and the \
            accepted case",
    run: produce_errors,
};

pub const FETCH: Scenario = Scenario {
    name: "fetch",
    about: "raw Fetch: watermarks and log start, at the high watermark, past it, a negative \
            offset, an unknown partition and topic, read_committed, a fetch session request",
    run: fetch,
};

pub const OLD_TIMESTAMPS: Scenario = Scenario {
    name: "old_timestamps",
    about: "three batches whose CreateTime is 30 days old (older than segment.ms) on a topic \
            without retention: the segments they make, as a raw Fetch and ListOffsets see them",
    run: old_timestamps,
};

pub const LIST_OFFSETS: Scenario = Scenario {
    name: "list_offsets",
    about: "raw ListOffsets: earliest, latest, max timestamp, by timestamp (exact, between, \
            after the last), read_committed, an unknown partition and topic",
    run: list_offsets,
};

pub const OFFSET_FOR_LEADER_EPOCH: Scenario = Scenario {
    name: "offset_for_leader_epoch",
    about: "OffsetForLeaderEpoch for the current epoch, a later epoch, a fenced current \
            epoch, an unknown partition",
    run: offset_for_leader_epoch,
};

pub const DELETE_RECORDS: Scenario = Scenario {
    name: "delete_records",
    about: "DeleteRecords to an offset, to the high watermark (-1), past it, below the log \
            start; an unknown partition and topic; what ListOffsets and Fetch see after",
    run: delete_records,
};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

fn producer(
    ctx: &Ctx,
    extra: &[(&str, &str)],
) -> ThreadedProducer<rdkafka::producer::DefaultProducerContext> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &ctx.bootstrap)
        .set("linger.ms", "1000")
        .set("batch.num.messages", "1000")
        .set("enable.idempotence", "false")
        .set("acks", "all");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("producer")
}

fn consumer(ctx: &Ctx) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", &ctx.bootstrap)
        .set("group.id", ctx.name("differential-assign-only"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

fn headers_of(h: Option<&rdkafka::message::BorrowedHeaders>) -> Value {
    match h {
        None => json!([]),
        Some(h) => Value::Array(
            h.iter()
                .map(|Header { key, value }| {
                    json!([key, value.map(|v| String::from_utf8_lossy(v).into_owned())])
                })
                .collect(),
        ),
    }
}

/// Read `n` records of `topic`/0 from the beginning, as observations.
fn consume(ctx: &Ctx, topic: &str, n: usize, base: i64, window: Option<(i64, i64)>) -> Value {
    let c = consumer(ctx);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while out.len() < n && Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => out.push(json!({ "consumer_error": format!("{e}") })),
            Some(Ok(msg)) => {
                let ts = match msg.timestamp() {
                    Timestamp::NotAvailable => json!("not available"),
                    Timestamp::CreateTime(t) => json!({ "create_time": rel(t, base) }),
                    Timestamp::LogAppendTime(t) => match window {
                        Some(w) => json!({ "log_append_time": log_append_time(t, w) }),
                        None => json!({ "log_append_time": t }),
                    },
                };
                out.push(json!({
                    "offset": msg.offset(),
                    "key": msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    "value": msg.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
                    "headers": headers_of(msg.headers()),
                    "timestamp": ts,
                }));
            }
        }
    }
    let wm = c
        .fetch_watermarks(topic, 0, TIMEOUT)
        .map(|(lo, hi)| json!([lo, hi]))
        .unwrap_or_else(|e| json!(format!("{e}")));
    json!({ "records": out, "watermarks": wm })
}

/// The batch headers in a fetched record set; timestamps relative to `base`.
fn batches(records: &[u8], base: i64) -> Value {
    let mut out = Vec::new();
    let mut at = 0usize;
    while records.len() >= at + 61 {
        let b = &records[at..];
        let len = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        if len < 49 {
            break;
        }
        let i64_at = |o: usize| i64::from_be_bytes(b[o..o + 8].try_into().unwrap());
        let i32_at = |o: usize| i32::from_be_bytes(b[o..o + 4].try_into().unwrap());
        let i16_at = |o: usize| i16::from_be_bytes(b[o..o + 2].try_into().unwrap());
        out.push(json!({
            "base_offset": i64_at(0),
            "partition_leader_epoch": i32_at(12),
            "magic": b[16],
            "attributes": i16_at(21),
            "last_offset_delta": i32_at(23),
            "base_timestamp": rel(i64_at(27), base),
            "max_timestamp": rel(i64_at(35), base),
            "producer_id": i64_at(43),
            "producer_epoch": i16_at(51),
            "base_sequence": i32_at(53),
            "records": i32_at(57),
            "complete": records.len() >= at + 12 + len as usize,
        }));
        at += 12 + len as usize;
    }
    Value::Array(out)
}

pub(super) fn fetch_request(topic: &str, partition: i32, offset: i64) -> m::FetchRequest {
    m::FetchRequest::default()
        .with_replica_id(m::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![m::fetch_request::FetchTopic::default()
            .with_topic(tn(topic))
            .with_partitions(vec![m::fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])])
}

fn fetch_result(r: Result<m::FetchResponse, String>, base: i64) -> Value {
    match r {
        Err(e) => transport(e),
        Ok(r) => {
            let parts: Vec<Value> = r
                .responses
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| {
                    json!({
                        "partition": p.partition_index,
                        "error": err(p.error_code),
                        "high_watermark": p.high_watermark,
                        "last_stable_offset": p.last_stable_offset,
                        "log_start_offset": p.log_start_offset,
                        "aborted_transactions": p.aborted_transactions.as_ref().map(|a| a.len()),
                        "preferred_read_replica": p.preferred_read_replica.0,
                        "batches": p.records.as_ref().map(|b| batches(b, base)),
                    })
                })
                .collect();
            json!({
                "error": err(r.error_code),
                "session_id_set": r.session_id != 0,
                "topics": r.responses.len(),
                "partitions": parts,
            })
        }
    }
}

fn produce_consume_codecs(ctx: &Ctx) -> Value {
    let mut o = serde_json::Map::new();
    // Recent timestamps: retention (7 days) must not take the records.
    let base_ts = now_ms() - 60_000;
    for codec in CODECS {
        let topic = ctx.name(&format!("codec-{codec}"));
        create_topic(ctx, &topic, 1, &[]);
        let p = producer(ctx, &[("compression.type", codec)]);
        let mut i = 0i64;
        for batch in [5, 7, 8] {
            for _ in 0..batch {
                let key = format!("key-{}", i % 3);
                let value = format!("{codec} value {i} {}", "x".repeat(i as usize * 7));
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "n",
                        value: Some(&i.to_string()),
                    })
                    .insert(Header {
                        key: "empty",
                        value: None::<&[u8]>,
                    })
                    .insert(Header {
                        key: "n",
                        value: Some("again"),
                    });
                let mut rec = BaseRecord::<String, String>::to(&topic)
                    .partition(0)
                    .timestamp(base_ts + 1000 * i);
                if i % 4 != 1 {
                    rec = rec.key(&key);
                }
                if i % 5 != 2 {
                    rec = rec.payload(&value);
                }
                if i % 2 == 0 {
                    rec = rec.headers(headers);
                }
                // The record borrows key and value; send before they drop.
                let sent = p.send(rec).map_err(|(e, _)| e.to_string());
                if let Err(e) = sent {
                    o.insert(format!("{codec}_send_error"), json!(e));
                }
                i += 1;
            }
            p.flush(TIMEOUT).expect("flush");
        }
        let consumed = consume(ctx, &topic, 20, base_ts, None);
        let raw = fetch_result(ctx.call(fetch_request(&topic, 0, 0)), base_ts);
        o.insert(
            codec.into(),
            json!({ "consumed": consumed, "raw_fetch": raw }),
        );
    }
    Value::Object(o)
}

fn log_append_time_scenario(ctx: &Ctx) -> Value {
    let lat = ctx.name("lat");
    let ct = ctx.name("lat-create");
    let old = ctx.name("lat-old");
    create_topic(ctx, &lat, 1, &[("message.timestamp.type", "LogAppendTime")]);
    create_topic(ctx, &ct, 1, &[]);
    create_topic(
        ctx,
        &old,
        1,
        &[("message.timestamp.before.max.ms", "3600000")],
    );
    let t0 = now_ms();
    let p = producer(ctx, &[]);
    for i in 0..3 {
        let v = format!("v{i}");
        p.send(
            BaseRecord::<(), String>::to(&lat)
                .partition(0)
                .payload(&v)
                .timestamp(1_000_000 + i),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue");
    }
    p.flush(TIMEOUT).expect("flush");
    let raw_lat = produce_result(
        ctx.call(produce_request(&lat, 0, 2_000_000, &["raw"])),
        (t0, now_ms()),
    );
    let window = (t0, now_ms());
    let consumed = consume(ctx, &lat, 4, 0, Some(window));
    let fetched = fetch_result(ctx.call(fetch_request(&lat, 0, 0)), 0);
    let t1 = now_ms();
    let raw_ct = produce_result(
        ctx.call(produce_request(&ct, 0, t1, &["a", "b"])),
        (t1, now_ms()),
    );
    let t2 = now_ms();
    let too_old = produce_result(
        ctx.call(produce_request(&old, 0, t2 - 7_200_000, &["old"])),
        (t2, now_ms()),
    );
    let too_new = produce_result(
        ctx.call(produce_request(&old, 0, t2 + 365 * 86_400_000, &["future"])),
        (t2, now_ms()),
    );
    // Batch timestamps depend on LogAppendTime: keep what compares.
    let fetched_shape = match &fetched["partitions"][0]["batches"] {
        Value::Array(bs) => Value::Array(
            bs.iter()
                .map(|b| {
                    json!({
                        "attributes": b["attributes"],
                        "records": b["records"],
                        "base_offset": b["base_offset"],
                        "max_timestamp": log_append_time(
                            b["max_timestamp"]
                                .as_str()
                                .and_then(|s| s.strip_prefix("base"))
                                .and_then(|s| s.parse().ok())
                                .unwrap_or(0),
                            window,
                        ),
                    })
                })
                .collect(),
        ),
        other => other.clone(),
    };
    json!({
        "consumed": consumed,
        "raw_produce_log_append_time_topic": raw_lat,
        "raw_produce_create_time_topic": raw_ct,
        "fetched_batches": fetched_shape,
        "create_time_older_than_before_max": too_old,
        "create_time_a_year_ahead": too_new,
    })
}

fn corrupt_batch() -> Vec<u8> {
    let mut b = simple_batch(
        now_ms(),
        &[Record {
            timestamp_delta: 0,
            key: None,
            value: Some(b"crc"),
            headers: vec![],
        }],
    );
    let last = b.len() - 1;
    b[last] ^= 0xff;
    b
}

fn produce_errors(ctx: &Ctx) -> Value {
    let t = ctx.name("pe");
    create_topic(ctx, &t, 1, &[("max.message.bytes", "1000")]);
    let big = "x".repeat(2000);
    let w = |ctx: &Ctx, req: m::ProduceRequest| {
        let t0 = now_ms();
        let r = ctx.call(req);
        produce_result(r, (t0, now_ms()))
    };
    let unknown = ctx.name("pe-unknown");
    let mut acks2 = produce_request(&t, 0, now_ms(), &["acks"]);
    acks2.acks = 2;
    let unknown_result = w(ctx, produce_request(&unknown, 0, now_ms(), &["u"]));
    let unknown_exists = match ctx.call::<m::MetadataResponse>(
        m::MetadataRequest::default()
            .with_topics(Some(vec![
                m::metadata_request::MetadataRequestTopic::default().with_name(Some(tn(&unknown))),
            ]))
            .with_allow_auto_topic_creation(false),
    ) {
        Err(e) => transport(e),
        Ok(r) => json!(r.topics.first().map(|t| err(t.error_code))),
    };
    json!({
        "accepted": w(ctx, produce_request(&t, 0, now_ms(), &["a", "b", "c"])),
        "too_large": w(ctx, produce_request(&t, 0, now_ms(), &[&big])),
        "unknown_partition": w(ctx, produce_request(&t, 3, now_ms(), &["p"])),
        "unknown_topic": unknown_result,
        "unknown_topic_after": unknown_exists,
        "invalid_topic_name": w(ctx, produce_request("bad/name", 0, now_ms(), &["n"])),
        "acks_2": w(ctx, acks2),
        "bad_crc": w(ctx, produce_bytes(&t, 0, corrupt_batch(), -1)),
        "accepted_after_errors": w(ctx, produce_request(&t, 0, now_ms(), &["d"])),
    })
}

fn fetch(ctx: &Ctx) -> Value {
    let t = ctx.name("fe");
    create_topic(ctx, &t, 2, &[]);
    let base = now_ms() - 60_000;
    produce(ctx, &t, 0, base, &["a", "b", "c"]);
    produce(ctx, &t, 0, base + 100, &["d", "e"]);
    let mut committed = fetch_request(&t, 0, 0);
    committed.isolation_level = 1;
    let mut session = fetch_request(&t, 0, 0);
    session.session_epoch = 0;
    let mut waiting = fetch_request(&t, 0, 5);
    waiting.max_wait_ms = 300;
    waiting.min_bytes = 1 << 20;
    let unknown = ctx.name("fe-unknown");
    json!({
        "from_0": fetch_result(ctx.call(fetch_request(&t, 0, 0)), base),
        "from_3": fetch_result(ctx.call(fetch_request(&t, 0, 3)), base),
        "at_high_watermark": fetch_result(ctx.call(fetch_request(&t, 0, 5)), base),
        "past_high_watermark": fetch_result(ctx.call(fetch_request(&t, 0, 6)), base),
        "negative_offset": fetch_result(ctx.call(fetch_request(&t, 0, -1)), base),
        "empty_partition": fetch_result(ctx.call(fetch_request(&t, 1, 0)), base),
        "unknown_partition": fetch_result(ctx.call(fetch_request(&t, 7, 0)), base),
        "unknown_topic": fetch_result(ctx.call(fetch_request(&unknown, 0, 0)), base),
        "read_committed": fetch_result(ctx.call(committed), base),
        "min_bytes_wait_at_end": fetch_result(ctx.call(waiting), base),
        "new_session_request": fetch_result(ctx.call(session), base),
    })
}

fn old_timestamps(ctx: &Ctx) -> Value {
    let t = ctx.name("old-ts");
    create_topic(ctx, &t, 1, &[("retention.ms", "-1")]);
    let base = now_ms() - 30 * 86_400_000;
    produce(ctx, &t, 0, base, &["a", "b"]);
    produce(ctx, &t, 0, base + 1000, &["c", "d"]);
    produce(ctx, &t, 0, base + 2000, &["e"]);
    json!({
        "fetch_from_0": fetch_result(ctx.call(fetch_request(&t, 0, 0)), base),
        "fetch_from_2": fetch_result(ctx.call(fetch_request(&t, 0, 2)), base),
        "earliest": list_result(ctx.call(list_request(&t, 0, -2, 0)), base),
        "by_time": list_result(ctx.call(list_request(&t, 0, base + 1500, 0)), base),
    })
}

pub(super) fn list_request(
    topic: &str,
    partition: i32,
    timestamp: i64,
    isolation: i8,
) -> m::ListOffsetsRequest {
    m::ListOffsetsRequest::default()
        .with_replica_id(m::BrokerId(-1))
        .with_isolation_level(isolation)
        .with_timeout_ms(30_000)
        .with_topics(vec![m::list_offsets_request::ListOffsetsTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![
                m::list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp),
            ])])
}

fn list_result(r: Result<m::ListOffsetsResponse, String>, base: i64) -> Value {
    match r {
        Err(e) => transport(e),
        Ok(r) => match r.topics.first().and_then(|t| t.partitions.first()) {
            None => json!("no partition in the response"),
            Some(p) => json!({
                "error": err(p.error_code),
                "offset": p.offset,
                "timestamp": rel(p.timestamp, base),
                "leader_epoch": p.leader_epoch,
            }),
        },
    }
}

fn list_offsets(ctx: &Ctx) -> Value {
    let t = ctx.name("lo");
    create_topic(ctx, &t, 1, &[]);
    let base = now_ms() - 60_000;
    // Offsets 0-4 at base + 0..40, offsets 5-9 at base + 1000..1040.
    produce(ctx, &t, 0, base, &["a", "b", "c", "d", "e"]);
    produce(ctx, &t, 0, base + 1000, &["f", "g", "h", "i", "j"]);
    let q = |ts: i64| list_result(ctx.call(list_request(&t, 0, ts, 0)), base);
    json!({
        "earliest": q(-2),
        "latest": q(-1),
        "max_timestamp": q(-3),
        "earliest_local": q(-4),
        "at_first_timestamp": q(base),
        "between_records": q(base + 15),
        "between_batches": q(base + 500),
        "exact_in_second_batch": q(base + 1020),
        "after_last": q(base + 5000),
        "before_first": q(base - 5000),
        "latest_read_committed": list_result(ctx.call(list_request(&t, 0, -1, 1)), base),
        "unknown_partition": list_result(ctx.call(list_request(&t, 4, -1, 0)), base),
        "unknown_topic": list_result(ctx.call(list_request(&ctx.name("lo-unknown"), 0, -1, 0)), base),
    })
}

fn epoch_request(
    topic: &str,
    partition: i32,
    current: i32,
    epoch: i32,
) -> m::OffsetForLeaderEpochRequest {
    m::OffsetForLeaderEpochRequest::default()
        .with_replica_id(m::BrokerId(-1))
        .with_topics(vec![
            m::offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(tn(topic))
                .with_partitions(vec![
                    m::offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(epoch),
                ]),
        ])
}

fn offset_for_leader_epoch(ctx: &Ctx) -> Value {
    let t = ctx.name("ofle");
    create_topic(ctx, &t, 1, &[]);
    produce(ctx, &t, 0, now_ms(), &["a", "b", "c", "d", "e"]);
    let v = ctx
        .version(runnel_protocol::api::ApiKey::OffsetForLeaderEpoch)
        .unwrap_or(4);
    let q = |partition: i32, current: i32, epoch: i32| -> Value {
        match ctx.send_v(epoch_request(&t, partition, current, epoch), v) {
            Err(e) => transport(e),
            Ok(runnel_protocol::api::ResponseBody::OffsetForLeaderEpoch(r)) => {
                match r.topics.first().and_then(|t| t.partitions.first()) {
                    None => json!("no partition in the response"),
                    Some(p) => json!({
                        "error": err(p.error_code),
                        "leader_epoch": p.leader_epoch,
                        "end_offset": p.end_offset,
                    }),
                }
            }
            Ok(_) => json!("unexpected response"),
        }
    };
    json!({
        "epoch_0": q(0, -1, 0),
        "epoch_0_current_0": q(0, 0, 0),
        "later_epoch": q(0, -1, 5),
        "current_epoch_ahead": q(0, 3, 0),
        "unknown_partition": q(2, -1, 0),
    })
}

fn delete_request(topic: &str, partition: i32, offset: i64) -> m::DeleteRecordsRequest {
    m::DeleteRecordsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            m::delete_records_request::DeleteRecordsTopic::default()
                .with_name(tn(topic))
                .with_partitions(vec![
                    m::delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset),
                ]),
        ])
}

fn delete_records(ctx: &Ctx) -> Value {
    let t = ctx.name("dr");
    create_topic(ctx, &t, 1, &[]);
    let base = now_ms();
    produce(ctx, &t, 0, base, &["a", "b", "c", "d", "e"]);
    produce(ctx, &t, 0, base + 100, &["f", "g", "h", "i", "j"]);
    let del = |partition: i32, offset: i64| -> Value {
        match ctx.call::<m::DeleteRecordsResponse>(delete_request(&t, partition, offset)) {
            Err(e) => transport(e),
            Ok(r) => match r.topics.first().and_then(|t| t.partitions.first()) {
                None => json!("no partition in the response"),
                Some(p) => json!({ "error": err(p.error_code), "low_watermark": p.low_watermark }),
            },
        }
    };
    let mut o = serde_json::Map::new();
    o.insert("to_3".into(), del(0, 3));
    o.insert(
        "earliest_after_3".into(),
        list_result(ctx.call(list_request(&t, 0, -2, 0)), base),
    );
    o.insert(
        "fetch_below_log_start".into(),
        fetch_result(ctx.call(fetch_request(&t, 0, 1)), base),
    );
    o.insert(
        "fetch_at_log_start".into(),
        fetch_result(ctx.call(fetch_request(&t, 0, 3)), base),
    );
    o.insert("below_log_start".into(), del(0, 1));
    o.insert("mid_batch_7".into(), del(0, 7));
    o.insert(
        "fetch_mid_batch".into(),
        fetch_result(ctx.call(fetch_request(&t, 0, 7)), base),
    );
    o.insert("past_high_watermark".into(), del(0, 20));
    o.insert("to_high_watermark".into(), del(0, -1));
    o.insert(
        "earliest_after_all".into(),
        list_result(ctx.call(list_request(&t, 0, -2, 0)), base),
    );
    o.insert(
        "latest_after_all".into(),
        list_result(ctx.call(list_request(&t, 0, -1, 0)), base),
    );
    o.insert(
        "max_timestamp_after_all".into(),
        list_result(ctx.call(list_request(&t, 0, -3, 0)), base),
    );
    o.insert("unknown_partition".into(), del(3, 1));
    let unknown = ctx.name("dr-unknown");
    o.insert(
        "unknown_topic".into(),
        match ctx.call::<m::DeleteRecordsResponse>(delete_request(&unknown, 0, 1)) {
            Err(e) => transport(e),
            Ok(r) => json!(r
                .topics
                .first()
                .and_then(|t| t.partitions.first())
                .map(|p| err(p.error_code))),
        },
    );
    // Producing after everything was deleted continues at the high watermark.
    o.insert(
        "produce_after".into(),
        produce_result(ctx.call(produce_request(&t, 0, now_ms(), &["k"])), (0, 0)),
    );
    Value::Object(o)
}
