//! Transactions over the raw protocol: the coordinator (FindCoordinator, InitProducerId,
//! AddPartitionsToTxn, EndTxn and their errors), the log (transactional Produce, Fetch
//! and ListOffsets at both isolation levels, the LSO, aborted transactions, markers),
//! transactional offsets, transaction version 2, and the admin APIs.
//!
//! Producer ids are shown as `pid#N` in order of first appearance; timestamps only as
//! whether they are set. Kafka writes markers asynchronously: after EndTxn the scenarios
//! poll (bounded) until the LSO reaches the high watermark and the coordinator says
//! Complete*, the same on both brokers.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages as m;
use runnel_protocol::api::{ApiKey, ResponseBody};
use runnel_protocol::record_batch::builder::{
    control_batch, encode_batch, encode_records, ProducerFields, Record, TRANSACTIONAL,
};
use serde_json::{json, Value};

use super::api::find_coordinator;
use super::records::{fetch_request, list_request};
use super::{create_topic, now_ms, produce, produce_bytes};
use crate::harness::{err, gid, opt_str, s, tn, transport, Ctx, Scenario};

pub const TXN_COORDINATOR: Scenario = Scenario {
    name: "txn_coordinator",
    about: "FindCoordinator key type 1; InitProducerId with a transactional id (new, \
            re-init, a timeout over transaction.max.timeout.ms, v3+ with the current, a \
            stale and an unknown producer id/epoch); AddPartitionsToTxn v3 (known and \
            unknown partitions, a wrong epoch); EndTxn v4 with no transaction, with a wrong \
            epoch, and abort; DescribeTransactions of an unknown id",
    run: txn_coordinator,
};

pub const TXN_COMMIT_ABORT: Scenario = Scenario {
    name: "txn_commit_abort",
    about: "a committed and an aborted transaction (AddPartitionsToTxn v3, Produce v11, \
            EndTxn v4) over two partitions: Fetch at isolation 0 and 1 and ListOffsets \
            latest while open and after, the LSO, aborted transactions, markers; \
            DescribeTransactions, ListTransactions, DescribeProducers; EndTxn again after \
            the end; a transactional Produce without AddPartitionsToTxn; a client's control \
            batch",
    run: txn_commit_abort,
};

pub const TXN_OFFSETS: Scenario = Scenario {
    name: "txn_offsets",
    about: "AddOffsetsToTxn and TxnOffsetCommit v3, then OffsetFetch with and without \
            require_stable before and after the commit, and after an abort; TxnOffsetCommit \
            without AddOffsetsToTxn",
    run: txn_offsets,
};

pub const TXN_TIMEOUT: Scenario = Scenario {
    name: "txn_timeout",
    about: "a transaction with transaction_timeout_ms=1000 left open: the coordinator aborts \
            it (polled up to 30 s; Kafka checks every 10 s), the marker's epoch, the state, \
            and what the producer's EndTxn, Produce and InitProducerId (KIP-360) get after",
    run: txn_timeout,
};

pub const TXN_V2: Scenario = Scenario {
    name: "txn_v2",
    about: "transaction version 2: Produce v12 without AddPartitionsToTxn, EndTxn v5 commit \
            and abort (the returned epoch), a late write at the old epoch, EndTxn v5 with no \
            transaction open",
    run: txn_v2,
};

/// Producer ids as labels in order of first appearance (the same order on both brokers).
#[derive(Default)]
struct Pids(RefCell<Vec<i64>>);

impl Pids {
    fn label(&self, pid: i64) -> Value {
        if pid < 0 {
            return json!(pid);
        }
        let mut v = self.0.borrow_mut();
        let i = match v.iter().position(|p| *p == pid) {
            Some(i) => i,
            None => {
                v.push(pid);
                v.len() - 1
            }
        };
        json!(format!("pid#{i}"))
    }
}

/// A transactional producer as the scenario drives it.
struct Producer {
    id: String,
    pid: i64,
    epoch: i16,
    /// Next sequence per partition at the current epoch.
    seq: BTreeMap<(String, i32), i32>,
}

impl Producer {
    fn txn_id(&self) -> m::TransactionalId {
        m::TransactionalId(s(&self.id))
    }
}

// Retriable coordinator errors, retried as clients retry them.
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const CONCURRENT_TRANSACTIONS: i16 = 51;

fn retriable(code: i16) -> bool {
    [
        COORDINATOR_LOAD_IN_PROGRESS,
        COORDINATOR_NOT_AVAILABLE,
        NOT_COORDINATOR,
        CONCURRENT_TRANSACTIONS,
    ]
    .contains(&code)
}

/// Call until the error `code_of` picks is not retriable (10 s).
fn retry<R>(
    ctx: &Ctx,
    mut f: impl FnMut(&Ctx) -> Result<R, String>,
    code_of: impl Fn(&R) -> i16,
) -> Result<R, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = f(ctx)?;
        if !retriable(code_of(&r)) || Instant::now() > deadline {
            return Ok(r);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// FindCoordinator for the transactional id `key` once the coordinator is ready.
fn find_txn_coordinator(ctx: &Ctx, key: &str) -> Value {
    let r = retry(
        ctx,
        |ctx| ctx.call::<m::FindCoordinatorResponse>(find_coordinator(ctx, 1, &[key])),
        |r| match r.coordinators.first() {
            Some(c) => c.error_code,
            None => r.error_code,
        },
    );
    match r {
        Err(e) => transport(e),
        Ok(r) => match r.coordinators.first() {
            Some(c) => json!({
                "error": err(c.error_code),
                "node_id": c.node_id.0,
                "address": ctx.addr(&c.host, c.port),
            }),
            None => json!({
                "error": err(r.error_code),
                "node_id": r.node_id.0,
                "address": ctx.addr(&r.host, r.port),
            }),
        },
    }
}

fn init_request(id: &str, timeout_ms: i32, pid: i64, epoch: i16) -> m::InitProducerIdRequest {
    m::InitProducerIdRequest::default()
        .with_transactional_id(Some(m::TransactionalId(s(id))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(m::ProducerId(pid))
        .with_producer_epoch(epoch)
}

/// InitProducerId; the observation and the response.
fn init_raw(
    ctx: &Ctx,
    pids: &Pids,
    req: m::InitProducerIdRequest,
) -> (Value, Option<m::InitProducerIdResponse>) {
    match retry(
        ctx,
        |ctx| ctx.call::<m::InitProducerIdResponse>(req.clone()),
        |r| r.error_code,
    ) {
        Err(e) => (transport(e), None),
        Ok(r) => (
            json!({
                "error": err(r.error_code),
                "producer_id": pids.label(r.producer_id.0),
                "producer_epoch": r.producer_epoch,
            }),
            Some(r),
        ),
    }
}

/// A new transactional producer (panics if InitProducerId fails: a setup step).
fn new_producer(ctx: &Ctx, pids: &Pids, id: &str) -> (Value, Producer) {
    find_txn_coordinator(ctx, id);
    let (v, r) = init_raw(ctx, pids, init_request(id, 60_000, -1, -1));
    let r = r.unwrap_or_else(|| panic!("InitProducerId {id}: {v}"));
    assert_eq!(r.error_code, 0, "InitProducerId {id}: {v}");
    (
        v,
        Producer {
            id: id.to_string(),
            pid: r.producer_id.0,
            epoch: r.producer_epoch,
            seq: BTreeMap::new(),
        },
    )
}

/// AddPartitionsToTxn v3 (the client form) for `partitions` of `topic`, by partition.
fn add_partitions(ctx: &Ctx, p: &Producer, epoch: i16, topic: &str, partitions: &[i32]) -> Value {
    let req = m::AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(p.txn_id())
        .with_v3_and_below_producer_id(m::ProducerId(p.pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            m::add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(tn(topic))
                .with_partitions(partitions.to_vec()),
        ]);
    let r = retry(
        ctx,
        |ctx| match ctx.send_v(req.clone(), 3)? {
            ResponseBody::AddPartitionsToTxn(r) => Ok(r),
            _ => Err("unexpected response".into()),
        },
        |r| {
            r.results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| t.results_by_partition.iter())
                .map(|p| p.partition_error_code)
                .find(|c| retriable(*c))
                .unwrap_or(0)
        },
    );
    match r {
        Err(e) => transport(e),
        Ok(r) => {
            let mut parts = BTreeMap::new();
            for t in &r.results_by_topic_v3_and_below {
                for x in &t.results_by_partition {
                    parts.insert(
                        format!("{}/{}", t.name.0, x.partition_index),
                        err(x.partition_error_code),
                    );
                }
            }
            json!({ "error": err(r.error_code), "partitions": parts })
        }
    }
}

/// EndTxn at `version`; the observation and the response.
fn end_txn(
    ctx: &Ctx,
    pids: &Pids,
    p: &Producer,
    epoch: i16,
    commit: bool,
    version: i16,
) -> (Value, Option<m::EndTxnResponse>) {
    let req = m::EndTxnRequest::default()
        .with_transactional_id(p.txn_id())
        .with_producer_id(m::ProducerId(p.pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let r = retry(
        ctx,
        |ctx| match ctx.send_v(req.clone(), version)? {
            ResponseBody::EndTxn(r) => Ok(r),
            _ => Err("unexpected response".into()),
        },
        |r| r.error_code,
    );
    match r {
        Err(e) => (transport(e), None),
        Ok(r) => {
            let mut o = json!({ "error": err(r.error_code) });
            if version >= 5 {
                o["producer_id"] = pids.label(r.producer_id.0);
                o["producer_epoch"] = json!(r.producer_epoch);
            }
            (o, Some(r))
        }
    }
}

/// A batch of `values`; transactional unless `plain`.
fn batch(pid: i64, epoch: i16, seq: i32, values: &[&str], transactional: bool) -> Vec<u8> {
    let records: Vec<Record<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            timestamp_delta: i as i64,
            key: None,
            value: Some(v.as_bytes()),
            headers: vec![],
        })
        .collect();
    let ts = now_ms();
    encode_batch(
        0,
        if transactional { TRANSACTIONAL } else { 0 },
        values.len().saturating_sub(1) as i32,
        ts,
        ts + values.len() as i64,
        ProducerFields {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
        },
        values.len() as i32,
        &encode_records(&records),
    )
}

fn produce_obs(r: Result<m::ProduceResponse, String>) -> (Value, i16) {
    match r {
        Err(e) => (transport(e), -1),
        Ok(r) => match r
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
        {
            None => (json!("no partition in the response"), -1),
            Some(p) => (
                json!({
                    "error": err(p.error_code),
                    "note_error_message": opt_str(&p.error_message),
                    "base_offset": p.base_offset,
                }),
                p.error_code,
            ),
        },
    }
}

/// A transactional Produce of `values` at `version` and the producer's next sequence
/// (advanced on success), at `epoch`.
fn txn_produce(
    ctx: &Ctx,
    p: &mut Producer,
    epoch: i16,
    topic: &str,
    partition: i32,
    values: &[&str],
    version: i16,
) -> Value {
    let key = (topic.to_string(), partition);
    let seq = p.seq.get(&key).copied().unwrap_or(0);
    let req = produce_bytes(topic, partition, batch(p.pid, epoch, seq, values, true), -1)
        .with_transactional_id(Some(p.txn_id()));
    // NOT_LEADER_OR_FOLLOWER and UNKNOWN_TOPIC_OR_PARTITION are retried for 10 s, as
    // clients do: Kafka answers them for a moment after a topic was created.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (v, code) = loop {
        let (v, code) = produce_obs(ctx.call_v(req.clone(), version));
        if ![3, 6].contains(&code) || Instant::now() > deadline {
            break (v, code);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if code == 0 {
        p.seq.insert(key, seq + values.len() as i32);
    }
    v
}

fn varint(b: &[u8], at: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((v >> 1) as i64) ^ -((v & 1) as i64))
}

fn field<'a>(b: &'a [u8], at: &mut usize) -> Option<Option<&'a [u8]>> {
    let n = varint(b, at)?;
    if n < 0 {
        return Some(None);
    }
    let end = at.checked_add(usize::try_from(n).ok()?)?;
    let out = b.get(*at..end)?;
    *at = end;
    Some(Some(out))
}

/// The records of an uncompressed batch: values, or a marker's type for a control batch.
fn records_of(section: &[u8], count: i32, control: bool) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for _ in 0..count.clamp(0, 10_000) {
        let len = usize::try_from(varint(section, &mut at)?).ok()?;
        let end = at.checked_add(len)?;
        at += 1; // attributes
        varint(section, &mut at)?; // timestamp delta
        let offset_delta = varint(section, &mut at)?;
        let key = field(section, &mut at)?;
        let value = field(section, &mut at)?;
        if control {
            let kind = match key {
                Some([_, _, 0, 0]) => "abort",
                Some([_, _, 0, 1]) => "commit",
                _ => "other",
            };
            out.push(json!({ "offset_delta": offset_delta, "marker": kind }));
        } else {
            out.push(json!({
                "offset_delta": offset_delta,
                "value": value.map(|v| String::from_utf8_lossy(v).into_owned()),
            }));
        }
        at = end;
    }
    Some(out)
}

/// The batches of a fetched record set.
fn batches(pids: &Pids, records: &[u8]) -> Value {
    let mut out = Vec::new();
    let mut at = 0usize;
    while records.len() >= at + 61 {
        let b = &records[at..];
        let i64_at = |o: usize| i64::from_be_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let i32_at = |o: usize| i32::from_be_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
        let i16_at = |o: usize| i16::from_be_bytes(b[o..o + 2].try_into().unwrap_or([0; 2]));
        let len = i32_at(8);
        if len < 49 || records.len() < at + 12 + len as usize {
            break;
        }
        let attributes = i16_at(21);
        let count = i32_at(57);
        let control = attributes & 0x20 != 0;
        let section = &b[61..12 + len as usize];
        let recs = if attributes & 0x07 == 0 {
            records_of(section, count, control)
                .map(Value::from)
                .unwrap_or_else(|| json!("unparsable"))
        } else {
            json!("compressed")
        };
        out.push(json!({
            "base_offset": i64_at(0),
            "last_offset_delta": i32_at(23),
            "transactional": attributes & 0x10 != 0,
            "control": control,
            "producer_id": pids.label(i64_at(43)),
            "producer_epoch": i16_at(51),
            "base_sequence": i32_at(53),
            "records": recs,
        }));
        at += 12 + len as usize;
    }
    Value::Array(out)
}

/// Fetch of `topic`/`partition` from 0 at `isolation`; the observation and the partition's
/// (high watermark, last stable offset).
fn fetch(ctx: &Ctx, pids: &Pids, topic: &str, partition: i32, isolation: i8) -> (Value, i64, i64) {
    let mut req = fetch_request(topic, partition, 0);
    req.isolation_level = isolation;
    match ctx.call::<m::FetchResponse>(req) {
        Err(e) => (transport(e), -1, -1),
        Ok(r) => match r.responses.first().and_then(|t| t.partitions.first()) {
            None => (json!("no partition in the response"), -1, -1),
            Some(p) => (
                json!({
                    "error": err(p.error_code),
                    "high_watermark": p.high_watermark,
                    "last_stable_offset": p.last_stable_offset,
                    "log_start_offset": p.log_start_offset,
                    "aborted_transactions": p.aborted_transactions.as_ref().map(|a| a
                        .iter()
                        .map(|t| json!({
                            "producer_id": pids.label(t.producer_id.0),
                            "first_offset": t.first_offset,
                        }))
                        .collect::<Vec<_>>()),
                    "batches": p.records.as_ref().map(|b| batches(pids, b)),
                }),
                p.high_watermark,
                p.last_stable_offset,
            ),
        },
    }
}

/// Both isolation levels of a partition.
fn fetch_both(ctx: &Ctx, pids: &Pids, topic: &str, partition: i32) -> Value {
    json!({
        "read_uncommitted": fetch(ctx, pids, topic, partition, 0).0,
        "read_committed": fetch(ctx, pids, topic, partition, 1).0,
    })
}

/// Poll (10 s) until the partition's LSO reaches its high watermark: the markers are in.
fn wait_stable(ctx: &Ctx, pids: &Pids, topic: &str, partition: i32) -> Value {
    wait_stable_for(ctx, pids, topic, partition, 10)
}

fn wait_stable_for(ctx: &Ctx, pids: &Pids, topic: &str, partition: i32, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, hw, lso) = fetch(ctx, pids, topic, partition, 1);
        if hw >= 0 && hw == lso {
            return json!(true);
        }
        if Instant::now() > deadline {
            return json!(format!(
                "LSO {lso} still below the high watermark {hw} after 10 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn latest(ctx: &Ctx, topic: &str, partition: i32) -> Value {
    let q = |isolation: i8| match ctx
        .call::<m::ListOffsetsResponse>(list_request(topic, partition, -1, isolation))
    {
        Err(e) => transport(e),
        Ok(r) => match r.topics.first().and_then(|t| t.partitions.first()) {
            None => json!("no partition in the response"),
            Some(p) => json!({ "error": err(p.error_code), "offset": p.offset }),
        },
    };
    json!({ "read_uncommitted": q(0), "read_committed": q(1) })
}

/// DescribeTransactions of `ids`; the observation and the first id's state.
fn describe_txns(ctx: &Ctx, pids: &Pids, ids: &[&str]) -> (Value, String) {
    let req = m::DescribeTransactionsRequest::default()
        .with_transactional_ids(ids.iter().map(|i| m::TransactionalId(s(i))).collect());
    let v = ctx.version(ApiKey::DescribeTransactions).unwrap_or(0);
    match ctx.send_v(req, v) {
        Err(e) => (transport(e), String::new()),
        Ok(ResponseBody::DescribeTransactions(r)) => {
            let first = r
                .transaction_states
                .first()
                .map(|t| t.transaction_state.to_string())
                .unwrap_or_default();
            let states: Vec<Value> = r
                .transaction_states
                .iter()
                .map(|t| {
                    if t.error_code != 0 {
                        // Nothing is described: the raw fields, not labels.
                        return json!({
                            "error": err(t.error_code),
                            "transactional_id": t.transactional_id.0.as_str(),
                            "state": t.transaction_state.as_str(),
                            "timeout_ms": t.transaction_timeout_ms,
                            "start_time_ms": t.transaction_start_time_ms,
                            "producer_id": t.producer_id.0,
                            "producer_epoch": t.producer_epoch,
                            "topics": t.topics.len(),
                        });
                    }
                    let mut topics: Vec<Value> = t
                        .topics
                        .iter()
                        .map(|x| {
                            let mut ps = x.partitions.clone();
                            ps.sort();
                            json!({ "topic": x.topic.0.as_str(), "partitions": ps })
                        })
                        .collect();
                    topics.sort_by_key(|x| x.to_string());
                    json!({
                        "error": err(t.error_code),
                        "transactional_id": t.transactional_id.0.as_str(),
                        "state": t.transaction_state.as_str(),
                        "timeout_ms": t.transaction_timeout_ms,
                        "start_time_set": t.transaction_start_time_ms >= 0,
                        "producer_id": pids.label(t.producer_id.0),
                        "producer_epoch": t.producer_epoch,
                        "topics": topics,
                    })
                })
                .collect();
            (Value::Array(states), first)
        }
        Ok(_) => (json!("unexpected response"), String::new()),
    }
}

/// Poll (10 s) until the coordinator has completed `id`'s transaction.
fn wait_complete(ctx: &Ctx, pids: &Pids, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, state) = describe_txns(ctx, pids, &[id]);
        if !state.starts_with("Prepare") {
            return json!(true);
        }
        if Instant::now() > deadline {
            return json!(format!("still {state} after 10 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// ListTransactions (this run's ids only), by id.
fn list_txns(ctx: &Ctx, pids: &Pids, ids: &[&str], states: &[&str]) -> Value {
    list_txns_filtered(ctx, pids, ids, states, &[])
}

fn list_txns_filtered(
    ctx: &Ctx,
    pids: &Pids,
    ids: &[&str],
    states: &[&str],
    producers: &[i64],
) -> Value {
    let req = m::ListTransactionsRequest::default()
        .with_state_filters(states.iter().map(|x| s(x)).collect())
        .with_producer_id_filters(producers.iter().map(|p| m::ProducerId(*p)).collect())
        .with_duration_filter(-1);
    let v = ctx.version(ApiKey::ListTransactions).unwrap_or(0);
    match ctx.send_v(req, v) {
        Err(e) => transport(e),
        Ok(ResponseBody::ListTransactions(r)) => {
            let mut found = BTreeMap::new();
            for t in &r.transaction_states {
                if ids.contains(&t.transactional_id.0.as_str()) {
                    found.insert(
                        t.transactional_id.0.to_string(),
                        json!({
                            "producer_id": pids.label(t.producer_id.0),
                            "state": t.transaction_state.as_str(),
                        }),
                    );
                }
            }
            json!({
                "error": err(r.error_code),
                "unknown_state_filters": r.unknown_state_filters.iter().map(|x| x.as_str()).collect::<Vec<_>>(),
                "transactions": found,
            })
        }
        Ok(_) => json!("unexpected response"),
    }
}

fn describe_producers(ctx: &Ctx, pids: &Pids, topic: &str, partitions: &[i32]) -> Value {
    let req = m::DescribeProducersRequest::default().with_topics(vec![
        m::describe_producers_request::TopicRequest::default()
            .with_name(tn(topic))
            .with_partition_indexes(partitions.to_vec()),
    ]);
    match ctx.send_v(req, 0) {
        Err(e) => transport(e),
        Ok(ResponseBody::DescribeProducers(r)) => {
            let mut parts = BTreeMap::new();
            for t in &r.topics {
                for p in &t.partitions {
                    let mut producers: Vec<Value> = p
                        .active_producers
                        .iter()
                        .map(|x| {
                            json!({
                                "producer_id": pids.label(x.producer_id.0),
                                "producer_epoch": x.producer_epoch,
                                "last_sequence": x.last_sequence,
                                "last_timestamp_set": x.last_timestamp >= 0,
                                "coordinator_epoch": x.coordinator_epoch,
                                "current_txn_start_offset": x.current_txn_start_offset,
                            })
                        })
                        .collect();
                    producers.sort_by_key(|x| x["producer_id"].to_string());
                    parts.insert(
                        format!("{}/{}", t.name.0, p.partition_index),
                        json!({ "error": err(p.error_code), "producers": producers }),
                    );
                }
            }
            Value::from(serde_json::Map::from_iter(parts))
        }
        Ok(_) => json!("unexpected response"),
    }
}

fn txn_coordinator(ctx: &Ctx) -> Value {
    let pids = Pids::default();
    let id = ctx.name("txc");
    let t = ctx.name("txc-topic");
    create_topic(ctx, &t, 2, &[]);
    let mut o = serde_json::Map::new();
    o.insert("find_coordinator".into(), find_txn_coordinator(ctx, &id));
    let (first, mut p) = new_producer(ctx, &pids, &id);
    o.insert("init_new".into(), first);
    // Re-init without the producer id (a restarted client): the epoch is bumped.
    let (again, r) = init_raw(ctx, &pids, init_request(&id, 60_000, -1, -1));
    o.insert("init_again".into(), again);
    if let Some(r) = r {
        p.epoch = r.producer_epoch;
    }
    o.insert(
        "init_timeout_over_max".into(),
        init_raw(ctx, &pids, init_request(&id, 900_001, -1, -1)).0,
    );
    o.insert(
        "init_timeout_zero".into(),
        init_raw(ctx, &pids, init_request(&ctx.name("txc-zero"), 0, -1, -1)).0,
    );
    // KIP-360 (v3+): the current id and epoch bump the epoch.
    let (cur, r) = init_raw(ctx, &pids, init_request(&id, 60_000, p.pid, p.epoch));
    o.insert("init_with_current_epoch".into(), cur);
    let old = p.epoch;
    if let Some(r) = r {
        p.epoch = r.producer_epoch;
    }
    o.insert(
        "init_with_stale_epoch".into(),
        init_raw(ctx, &pids, init_request(&id, 60_000, p.pid, old - 1)).0,
    );
    o.insert(
        "init_with_unknown_producer_id".into(),
        init_raw(ctx, &pids, init_request(&id, 60_000, p.pid + 1000, p.epoch)).0,
    );
    // No transaction open.
    o.insert(
        "end_commit_no_transaction".into(),
        end_txn(ctx, &pids, &p, p.epoch, true, 4).0,
    );
    o.insert(
        "end_abort_no_transaction".into(),
        end_txn(ctx, &pids, &p, p.epoch, false, 4).0,
    );
    o.insert("describe_empty".into(), describe_txns(ctx, &pids, &[&id]).0);
    // One unknown partition: it gets the error, the others are not attempted.
    o.insert(
        "add_known_and_unknown_partitions".into(),
        add_partitions(ctx, &p, p.epoch, &t, &[0, 1, 7]),
    );
    o.insert(
        "add_unknown_topic".into(),
        add_partitions(ctx, &p, p.epoch, &ctx.name("txc-unknown"), &[0]),
    );
    o.insert(
        "add_wrong_epoch".into(),
        add_partitions(ctx, &p, p.epoch - 1, &t, &[0]),
    );
    o.insert(
        "describe_after_failed_adds".into(),
        describe_txns(ctx, &pids, &[&id]).0,
    );
    o.insert(
        "add_known".into(),
        add_partitions(ctx, &p, p.epoch, &t, &[0, 1]),
    );
    o.insert(
        "add_known_again".into(),
        add_partitions(ctx, &p, p.epoch, &t, &[1]),
    );
    o.insert(
        "describe_ongoing".into(),
        describe_txns(ctx, &pids, &[&id]).0,
    );
    o.insert(
        "end_wrong_epoch_low".into(),
        end_txn(ctx, &pids, &p, p.epoch - 1, true, 4).0,
    );
    o.insert(
        "end_wrong_epoch_high".into(),
        end_txn(ctx, &pids, &p, p.epoch + 1, true, 4).0,
    );
    o.insert("init_while_ongoing".into(), {
        // A re-init aborts the open transaction and bumps the epoch.
        let (v, r) = init_raw(ctx, &pids, init_request(&id, 60_000, -1, -1));
        if let Some(r) = r {
            if r.error_code == 0 {
                p.epoch = r.producer_epoch;
            }
        }
        v
    });
    o.insert("wait_complete".into(), wait_complete(ctx, &pids, &id));
    o.insert(
        "describe_after_init_while_ongoing".into(),
        describe_txns(ctx, &pids, &[&id]).0,
    );
    o.insert(
        "add_after_reinit".into(),
        add_partitions(ctx, &p, p.epoch, &t, &[0]),
    );
    o.insert(
        "end_abort".into(),
        end_txn(ctx, &pids, &p, p.epoch, false, 4).0,
    );
    o.insert("wait_complete_abort".into(), wait_complete(ctx, &pids, &id));
    o.insert(
        "describe_after_abort".into(),
        describe_txns(ctx, &pids, &[&id]).0,
    );
    // An id the coordinator has never seen.
    let never = Producer {
        id: ctx.name("txc-never"),
        pid: p.pid,
        epoch: 0,
        seq: BTreeMap::new(),
    };
    o.insert(
        "add_unknown_transactional_id".into(),
        add_partitions(ctx, &never, 0, &t, &[0]),
    );
    o.insert(
        "end_unknown_transactional_id".into(),
        end_txn(ctx, &pids, &never, 0, true, 4).0,
    );
    // An empty transactional id is an idempotent producer's InitProducerId in Kafka.
    o.insert(
        "init_empty_transactional_id".into(),
        init_raw(ctx, &pids, init_request("", 60_000, -1, -1)).0,
    );
    o.insert("find_coordinator_empty_key".into(), {
        match ctx.call::<m::FindCoordinatorResponse>(find_coordinator(ctx, 1, &[""])) {
            Err(e) => transport(e),
            Ok(r) => json!(err(r
                .coordinators
                .first()
                .map_or(r.error_code, |c| c.error_code))),
        }
    });
    o.insert(
        "describe_unknown".into(),
        describe_txns(ctx, &pids, &[&ctx.name("txc-never")]).0,
    );
    Value::Object(o)
}

fn txn_commit_abort(ctx: &Ctx) -> Value {
    let pids = Pids::default();
    let id = ctx.name("txca");
    let t = ctx.name("txca-topic");
    create_topic(ctx, &t, 2, &[]);
    let mut o = serde_json::Map::new();
    // A plain record first: the transaction starts at offset 1 of partition 0.
    produce(ctx, &t, 0, now_ms(), &["plain"]);
    let (init, mut p) = new_producer(ctx, &pids, &id);
    o.insert("init".into(), init);
    o.insert("add".into(), add_partitions(ctx, &p, p.epoch, &t, &[0, 1]));
    let e = p.epoch;
    o.insert(
        "produce_0".into(),
        txn_produce(ctx, &mut p, e, &t, 0, &["c1", "c2"], 11),
    );
    o.insert(
        "produce_1".into(),
        txn_produce(ctx, &mut p, e, &t, 1, &["c3"], 11),
    );
    // A plain record after the open transaction's: above the LSO.
    produce(ctx, &t, 0, now_ms(), &["plain-after"]);
    o.insert("open_fetch_0".into(), fetch_both(ctx, &pids, &t, 0));
    o.insert("open_fetch_1".into(), fetch_both(ctx, &pids, &t, 1));
    o.insert("open_latest_0".into(), latest(ctx, &t, 0));
    o.insert(
        "open_describe_producers".into(),
        describe_producers(ctx, &pids, &t, &[0, 1]),
    );
    o.insert("open_describe".into(), describe_txns(ctx, &pids, &[&id]).0);
    o.insert("open_list".into(), list_txns(ctx, &pids, &[&id], &[]));
    o.insert(
        "open_list_ongoing".into(),
        list_txns(ctx, &pids, &[&id], &["Ongoing", "NoSuchState"]),
    );
    o.insert("commit".into(), end_txn(ctx, &pids, &p, p.epoch, true, 4).0);
    o.insert("commit_stable_0".into(), wait_stable(ctx, &pids, &t, 0));
    o.insert("commit_stable_1".into(), wait_stable(ctx, &pids, &t, 1));
    o.insert("commit_complete".into(), wait_complete(ctx, &pids, &id));
    o.insert("committed_fetch_0".into(), fetch_both(ctx, &pids, &t, 0));
    o.insert("committed_fetch_1".into(), fetch_both(ctx, &pids, &t, 1));
    o.insert("committed_latest_0".into(), latest(ctx, &t, 0));
    o.insert(
        "committed_describe".into(),
        describe_txns(ctx, &pids, &[&id]).0,
    );
    o.insert(
        "committed_describe_producers".into(),
        describe_producers(ctx, &pids, &t, &[0, 1]),
    );
    o.insert(
        "commit_again".into(),
        end_txn(ctx, &pids, &p, p.epoch, true, 4).0,
    );
    o.insert(
        "abort_after_commit".into(),
        end_txn(ctx, &pids, &p, p.epoch, false, 4).0,
    );
    // Without AddPartitionsToTxn: the broker verifies with the coordinator.
    let e = p.epoch;
    o.insert(
        "produce_without_add".into(),
        txn_produce(ctx, &mut p, e, &t, 0, &["unadded"], 11),
    );
    // Before v11 (no TRANSACTION_ABORTABLE).
    o.insert(
        "produce_without_add_v10".into(),
        txn_produce(ctx, &mut p, e, &t, 0, &["unadded-v10"], 10),
    );
    o.insert(
        "describe_after_produce_without_add".into(),
        describe_txns(ctx, &pids, &[&id]).0,
    );
    // The aborted transaction.
    o.insert(
        "add_for_abort".into(),
        add_partitions(ctx, &p, p.epoch, &t, &[0, 1]),
    );
    o.insert(
        "produce_abort_0".into(),
        txn_produce(ctx, &mut p, e, &t, 0, &["a1", "a2", "a3"], 11),
    );
    o.insert(
        "produce_abort_future_epoch".into(),
        txn_produce(ctx, &mut p, e + 1, &t, 0, &["future"], 11),
    );
    // A control batch from a client, in the open transaction.
    let control = produce_bytes(&t, 1, control_batch(p.pid, p.epoch, true, 0, now_ms()), -1)
        .with_transactional_id(Some(p.txn_id()));
    o.insert(
        "client_control_batch_in_transaction".into(),
        produce_obs(ctx.call_v(control, 11)).0,
    );
    o.insert("abort".into(), end_txn(ctx, &pids, &p, p.epoch, false, 4).0);
    o.insert("abort_stable_0".into(), wait_stable(ctx, &pids, &t, 0));
    o.insert("abort_complete".into(), wait_complete(ctx, &pids, &id));
    o.insert("aborted_fetch_0".into(), fetch_both(ctx, &pids, &t, 0));
    o.insert("aborted_latest_0".into(), latest(ctx, &t, 0));
    // The aborted list names only transactions that overlap the fetched range.
    for from in [6, 9] {
        let mut req = fetch_request(&t, 0, from);
        req.isolation_level = 1;
        let v = match ctx.call::<m::FetchResponse>(req) {
            Err(e) => transport(e),
            Ok(r) => json!(r
                .responses
                .first()
                .and_then(|x| x.partitions.first())
                .map(|x| json!({
                    "error": err(x.error_code),
                    "aborted_transactions": x.aborted_transactions.as_ref().map(|a| a
                        .iter()
                        .map(|t| json!([pids.label(t.producer_id.0), t.first_offset]))
                        .collect::<Vec<_>>()),
                    "batches": x.records.as_ref().map(|b| batches(&pids, b)),
                }))),
        };
        o.insert(format!("aborted_fetch_0_from_{from}"), v);
    }
    o.insert(
        "list_complete_abort_by_producer".into(),
        list_txns_filtered(ctx, &pids, &[&id], &["CompleteAbort"], &[p.pid]),
    );
    o.insert(
        "list_by_other_producer".into(),
        list_txns_filtered(ctx, &pids, &[&id], &[], &[p.pid + 1000]),
    );
    o.insert(
        "aborted_describe".into(),
        describe_txns(ctx, &pids, &[&id]).0,
    );
    o.insert("aborted_list".into(), list_txns(ctx, &pids, &[&id], &[]));
    o.insert(
        "commit_after_abort".into(),
        end_txn(ctx, &pids, &p, p.epoch, true, 4).0,
    );
    o.insert(
        "abort_again".into(),
        end_txn(ctx, &pids, &p, p.epoch, false, 4).0,
    );
    // A plain record after the abort is readable at once.
    produce(ctx, &t, 0, now_ms(), &["plain-last"]);
    o.insert("final_fetch_0".into(), fetch_both(ctx, &pids, &t, 0));
    // A control batch from a client, outside a transaction.
    let control = produce_bytes(&t, 1, control_batch(p.pid, p.epoch, true, 0, now_ms()), -1)
        .with_transactional_id(Some(p.txn_id()));
    o.insert(
        "client_control_batch".into(),
        produce_obs(ctx.call_v(control, 11)).0,
    );
    let plain_control = produce_bytes(&t, 1, control_batch(-1, -1, true, 0, now_ms()), -1);
    o.insert(
        "client_control_batch_no_producer".into(),
        produce_obs(ctx.call_v(plain_control, 11)).0,
    );
    // A transactional batch (the next sequence) without a transactional id in the request.
    let seq = p.seq.get(&(t.clone(), 1)).copied().unwrap_or(0);
    let anonymous = produce_bytes(&t, 1, batch(p.pid, p.epoch, seq, &["anon"], true), -1);
    o.insert(
        "transactional_batch_without_transactional_id".into(),
        produce_obs(ctx.call_v(anonymous, 11)).0,
    );
    o.insert("final_fetch_1".into(), fetch_both(ctx, &pids, &t, 1));
    Value::Object(o)
}

fn offset_fetch(ctx: &Ctx, group: &str, topic: &str, stable: bool) -> Value {
    let req = m::OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(Some(vec![
            m::offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(tn(topic))
                .with_partition_indexes(vec![0, 1]),
        ]))
        .with_require_stable(stable);
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

/// Poll (10 s) until a require_stable OffsetFetch is no longer UNSTABLE_OFFSET_COMMIT.
fn wait_offsets_stable(ctx: &Ctx, group: &str, topic: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = offset_fetch(ctx, group, topic, true);
        if !v.to_string().contains("UNSTABLE_OFFSET_COMMIT")
            && !v.to_string().contains("UnstableOffsetCommit")
        {
            return json!(true);
        }
        if Instant::now() > deadline {
            return json!("still unstable after 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn add_offsets(ctx: &Ctx, p: &Producer, group: &str) -> Value {
    let req = m::AddOffsetsToTxnRequest::default()
        .with_transactional_id(p.txn_id())
        .with_producer_id(m::ProducerId(p.pid))
        .with_producer_epoch(p.epoch)
        .with_group_id(gid(group));
    let v = ctx.version(ApiKey::AddOffsetsToTxn).unwrap_or(0);
    match retry(
        ctx,
        |ctx| match ctx.send_v(req.clone(), v)? {
            ResponseBody::AddOffsetsToTxn(r) => Ok(r),
            _ => Err("unexpected response".into()),
        },
        |r| r.error_code,
    ) {
        Err(e) => transport(e),
        Ok(r) => json!({ "error": err(r.error_code) }),
    }
}

fn txn_offset_commit(
    ctx: &Ctx,
    p: &Producer,
    group: &str,
    topic: &str,
    offset: i64,
    version: i16,
) -> Value {
    let req = m::TxnOffsetCommitRequest::default()
        .with_transactional_id(p.txn_id())
        .with_group_id(gid(group))
        .with_producer_id(m::ProducerId(p.pid))
        .with_producer_epoch(p.epoch)
        .with_generation_id(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            m::txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(tn(topic))
                .with_partitions(vec![
                    m::txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(s(&format!("at {offset}")))),
                ]),
        ]);
    match retry(
        ctx,
        |ctx| match ctx.send_v(req.clone(), version)? {
            ResponseBody::TxnOffsetCommit(r) => Ok(r),
            _ => Err("unexpected response".into()),
        },
        |r| {
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| p.error_code)
                .find(|c| retriable(*c))
                .unwrap_or(0)
        },
    ) {
        Err(e) => transport(e),
        Ok(r) => {
            let mut parts = BTreeMap::new();
            for t in &r.topics {
                for x in &t.partitions {
                    parts.insert(
                        format!("{}/{}", t.name.0, x.partition_index),
                        err(x.error_code),
                    );
                }
            }
            Value::from(serde_json::Map::from_iter(parts))
        }
    }
}

fn txn_offsets(ctx: &Ctx) -> Value {
    let pids = Pids::default();
    let id = ctx.name("txo");
    let t = ctx.name("txo-topic");
    let group = ctx.name("txo-group");
    create_topic(ctx, &t, 2, &[]);
    // The group coordinator: Kafka answers COORDINATOR_NOT_AVAILABLE until it is ready.
    let _ = retry(
        ctx,
        |ctx| ctx.call::<m::FindCoordinatorResponse>(find_coordinator(ctx, 0, &[&group])),
        |r| match r.coordinators.first() {
            Some(c) => c.error_code,
            None => r.error_code,
        },
    );
    let mut o = serde_json::Map::new();
    let (init, p) = new_producer(ctx, &pids, &id);
    o.insert("init".into(), init);
    o.insert(
        "commit_without_add_offsets".into(),
        txn_offset_commit(ctx, &p, &group, &t, 3, 3),
    );
    o.insert(
        "commit_without_add_offsets_v4".into(),
        txn_offset_commit(ctx, &p, &group, &t, 3, 4),
    );
    o.insert("add_offsets".into(), add_offsets(ctx, &p, &group));
    o.insert(
        "describe_after_add_offsets".into(),
        describe_txns(ctx, &pids, &[&id]).0,
    );
    o.insert(
        "txn_offset_commit".into(),
        txn_offset_commit(ctx, &p, &group, &t, 5, 3),
    );
    o.insert(
        "pending_fetch_stable".into(),
        offset_fetch(ctx, &group, &t, true),
    );
    o.insert("pending_fetch".into(), offset_fetch(ctx, &group, &t, false));
    o.insert("commit".into(), end_txn(ctx, &pids, &p, p.epoch, true, 4).0);
    o.insert("commit_stable".into(), wait_offsets_stable(ctx, &group, &t));
    o.insert("commit_complete".into(), wait_complete(ctx, &pids, &id));
    o.insert(
        "committed_fetch_stable".into(),
        offset_fetch(ctx, &group, &t, true),
    );
    // An aborted offset commit leaves the committed offset.
    o.insert("add_offsets_2".into(), add_offsets(ctx, &p, &group));
    o.insert(
        "txn_offset_commit_2".into(),
        txn_offset_commit(ctx, &p, &group, &t, 9, 3),
    );
    o.insert(
        "pending_2_fetch_stable".into(),
        offset_fetch(ctx, &group, &t, true),
    );
    o.insert(
        "pending_2_fetch".into(),
        offset_fetch(ctx, &group, &t, false),
    );
    o.insert("abort".into(), end_txn(ctx, &pids, &p, p.epoch, false, 4).0);
    o.insert("abort_stable".into(), wait_offsets_stable(ctx, &group, &t));
    o.insert("abort_complete".into(), wait_complete(ctx, &pids, &id));
    o.insert(
        "aborted_fetch_stable".into(),
        offset_fetch(ctx, &group, &t, true),
    );
    Value::Object(o)
}

fn txn_v2(ctx: &Ctx) -> Value {
    let pids = Pids::default();
    let id = ctx.name("txv2");
    let t = ctx.name("txv2-topic");
    create_topic(ctx, &t, 1, &[]);
    let mut o = serde_json::Map::new();
    let (init, mut p) = new_producer(ctx, &pids, &id);
    o.insert("init".into(), init);
    o.insert("end_abort_no_transaction_v5".into(), {
        let (v, r) = end_txn(ctx, &pids, &p, p.epoch, false, 5);
        if let Some(r) = r {
            if r.error_code == 0 && r.producer_id.0 == p.pid && r.producer_epoch != p.epoch {
                p.epoch = r.producer_epoch;
                p.seq.clear();
            }
        }
        v
    });
    o.insert(
        "end_commit_no_transaction_v5".into(),
        end_txn(ctx, &pids, &p, p.epoch, true, 5).0,
    );
    // Produce v12 adds the partition itself.
    let e = p.epoch;
    o.insert(
        "produce_v12".into(),
        txn_produce(ctx, &mut p, e, &t, 0, &["v2-c1", "v2-c2"], 12),
    );
    o.insert("open_describe".into(), describe_txns(ctx, &pids, &[&id]).0);
    o.insert("open_fetch".into(), fetch_both(ctx, &pids, &t, 0));
    let (commit, r) = end_txn(ctx, &pids, &p, p.epoch, true, 5);
    o.insert("commit_v5".into(), commit);
    let old = p.epoch;
    if let Some(r) = r {
        if r.error_code == 0 {
            p.pid = r.producer_id.0;
            p.epoch = r.producer_epoch;
            p.seq.clear();
        }
    }
    o.insert("commit_stable".into(), wait_stable(ctx, &pids, &t, 0));
    o.insert("commit_complete".into(), wait_complete(ctx, &pids, &id));
    o.insert(
        "committed_describe".into(),
        describe_txns(ctx, &pids, &[&id]).0,
    );
    // A late write of the committed transaction, at its epoch.
    o.insert("late_write_old_epoch".into(), {
        let mut late = Producer {
            id: p.id.clone(),
            pid: p.pid,
            epoch: old,
            seq: BTreeMap::from([((t.clone(), 0), 2)]),
        };
        txn_produce(ctx, &mut late, old, &t, 0, &["late"], 12)
    });
    o.insert("commit_again_old_epoch_v5".into(), {
        let stale = Producer {
            id: p.id.clone(),
            pid: p.pid,
            epoch: old,
            seq: BTreeMap::new(),
        };
        end_txn(ctx, &pids, &stale, old, true, 5).0
    });
    let e = p.epoch;
    o.insert(
        "produce_v12_next".into(),
        txn_produce(ctx, &mut p, e, &t, 0, &["v2-a1"], 12),
    );
    let (abort, r) = end_txn(ctx, &pids, &p, p.epoch, false, 5);
    o.insert("abort_v5".into(), abort);
    if let Some(r) = r {
        if r.error_code == 0 {
            p.pid = r.producer_id.0;
            p.epoch = r.producer_epoch;
            p.seq.clear();
        }
    }
    o.insert("abort_stable".into(), wait_stable(ctx, &pids, &t, 0));
    o.insert("abort_complete".into(), wait_complete(ctx, &pids, &id));
    o.insert("final_fetch".into(), fetch_both(ctx, &pids, &t, 0));
    o.insert(
        "final_describe_producers".into(),
        describe_producers(ctx, &pids, &t, &[0]),
    );
    o.insert(
        "end_v4_after_v2".into(),
        end_txn(ctx, &pids, &p, p.epoch, true, 4).0,
    );
    Value::Object(o)
}

fn txn_timeout(ctx: &Ctx) -> Value {
    let pids = Pids::default();
    let id = ctx.name("txto");
    let t = ctx.name("txto-topic");
    create_topic(ctx, &t, 1, &[]);
    let mut o = serde_json::Map::new();
    find_txn_coordinator(ctx, &id);
    let (init, r) = init_raw(ctx, &pids, init_request(&id, 1000, -1, -1));
    o.insert("init".into(), init);
    let r = r.unwrap_or_else(|| panic!("InitProducerId {id}"));
    assert_eq!(
        r.error_code,
        0,
        "InitProducerId {id}: {}",
        err(r.error_code)
    );
    let mut p = Producer {
        id: id.clone(),
        pid: r.producer_id.0,
        epoch: r.producer_epoch,
        seq: BTreeMap::new(),
    };
    o.insert("add".into(), add_partitions(ctx, &p, p.epoch, &t, &[0]));
    let e = p.epoch;
    o.insert(
        "produce".into(),
        txn_produce(ctx, &mut p, e, &t, 0, &["expires"], 11),
    );
    o.insert("open_fetch".into(), fetch_both(ctx, &pids, &t, 0));
    o.insert(
        "aborted_by_timeout".into(),
        wait_stable_for(ctx, &pids, &t, 0, 30),
    );
    o.insert("complete".into(), wait_complete(ctx, &pids, &id));
    o.insert("fetch_after".into(), fetch_both(ctx, &pids, &t, 0));
    o.insert("describe_after".into(), describe_txns(ctx, &pids, &[&id]).0);
    o.insert(
        "describe_producers_after".into(),
        describe_producers(ctx, &pids, &t, &[0, 5]),
    );
    o.insert(
        "produce_old_epoch".into(),
        txn_produce(ctx, &mut p, e, &t, 0, &["late"], 11),
    );
    o.insert(
        "end_commit_old_epoch".into(),
        end_txn(ctx, &pids, &p, e, true, 4).0,
    );
    o.insert(
        "end_abort_old_epoch".into(),
        end_txn(ctx, &pids, &p, e, false, 4).0,
    );
    o.insert("add_old_epoch".into(), add_partitions(ctx, &p, e, &t, &[0]));
    // Versions before PRODUCER_FENCED existed.
    o.insert(
        "end_commit_old_epoch_v1".into(),
        end_txn(ctx, &pids, &p, e, true, 1).0,
    );
    o.insert(
        "produce_old_epoch_v8".into(),
        txn_produce(ctx, &mut p, e, &t, 0, &["late-v8"], 8),
    );
    // KIP-360: the producer recovers with its id and old epoch.
    o.insert(
        "init_recover".into(),
        init_raw(ctx, &pids, init_request(&id, 1000, p.pid, e)).0,
    );
    Value::Object(o)
}
