//! ApiVersions, Metadata, DescribeCluster and InitProducerId.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kafka_protocol::messages as m;
use runnel_protocol::api::{ApiKey, SUPPORTED_APIS};
use serde_json::{json, Value};

use super::create_topic;
use crate::harness::{err, opt_str, s, tn, transport, Ctx, Scenario};

pub const API_VERSIONS: Scenario = Scenario {
    name: "api_versions",
    about: "ApiVersions v3 (APIs, version ranges, features), the versions runnel-client \
            negotiates, KIP-511's answer to a too-new ApiVersions, and what a request at \
            an unsupported version or an unknown api key gets",
    run: api_versions,
};

pub const METADATA: Scenario = Scenario {
    name: "metadata",
    about: "Metadata for all topics, a 3-partition topic, an unknown topic with and without \
            auto-creation, an invalid topic name; brokers, controller, authorized operations",
    run: metadata,
};

pub const DESCRIBE_CLUSTER: Scenario = Scenario {
    name: "describe_cluster",
    about: "DescribeCluster with authorized operations",
    run: describe_cluster,
};

pub const INIT_PRODUCER_ID: Scenario = Scenario {
    name: "init_producer_id",
    about: "InitProducerId for an idempotent producer and for a transactional id \
            (FindCoordinator for the transaction coordinator first)",
    run: init_producer_id,
};

fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(k) => format!("{k:?}"),
        Err(_) => format!("api key {key}"),
    }
}

fn api_versions(ctx: &Ctx) -> Value {
    let req = m::ApiVersionsRequest::default()
        .with_client_software_name(s("differential"))
        .with_client_software_version(s("1.0"));
    let table = match ctx.call_v::<m::ApiVersionsResponse>(req, 3) {
        Err(e) => transport(e),
        Ok(r) => {
            let apis: BTreeMap<String, Value> = r
                .api_keys
                .iter()
                .map(|k| {
                    (
                        api_name(k.api_key),
                        json!({"min": k.min_version, "max": k.max_version}),
                    )
                })
                .collect();
            let supported: BTreeMap<String, Value> = r
                .supported_features
                .iter()
                .map(|f| {
                    (
                        f.name.to_string(),
                        json!({"min": f.min_version, "max": f.max_version}),
                    )
                })
                .collect();
            let finalized: BTreeMap<String, Value> = r
                .finalized_features
                .iter()
                .map(|f| {
                    (
                        f.name.to_string(),
                        json!({"min": f.min_version_level, "max": f.max_version_level}),
                    )
                })
                .collect();
            json!({
                "error": err(r.error_code),
                "apis": apis,
                "supported_features": supported,
                "finalized_features": finalized,
                "finalized_features_epoch_set": r.finalized_features_epoch >= 0,
                "zk_migration_ready": r.zk_migration_ready,
            })
        }
    };
    // The version runnel-client (and so every other scenario) uses for each API.
    let negotiated: BTreeMap<String, Value> = SUPPORTED_APIS
        .iter()
        .map(|&(api, _, _)| (format!("{api:?}"), json!(ctx.version(api))))
        .collect();
    json!({
        "api_versions_v3": table,
        "negotiated": negotiated,
        "api_versions_v127": raw_api_versions_too_new(ctx),
        "metadata_v99": raw_outcome(ctx, 3, 99),
        "unknown_api_key_9999": raw_outcome(ctx, 9999, 0),
    })
}

fn raw_socket(ctx: &Ctx) -> TcpStream {
    let sock = TcpStream::connect(&ctx.bootstrap).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    sock
}

/// One response frame (correlation id stripped) or `None` when the broker closed.
fn read_frame(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    sock.read_exact(&mut len).ok()?;
    let n = i32::from_be_bytes(len);
    if !(4..=1 << 20).contains(&n) {
        return None;
    }
    let mut body = vec![0u8; n as usize];
    sock.read_exact(&mut body).ok()?;
    Some(body[4..].to_vec())
}

fn frame(api_key: i16, version: i16, flexible: bool, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&api_key.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&7i32.to_be_bytes());
    f.extend_from_slice(&4i16.to_be_bytes());
    f.extend_from_slice(b"diff");
    if flexible {
        f.push(0);
    }
    f.extend_from_slice(body);
    let mut out = (f.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&f);
    out
}

/// KIP-511: ApiVersions v127 is answered in the v0 format with UNSUPPORTED_VERSION.
fn raw_api_versions_too_new(ctx: &Ctx) -> Value {
    let mut sock = raw_socket(ctx);
    let body = [5, b't', b'e', b's', b't', 4, b'1', b'.', b'0', 0];
    if sock.write_all(&frame(18, 127, true, &body)).is_err() {
        return json!("write failed");
    }
    let Some(b) = read_frame(&mut sock) else {
        return json!("closed");
    };
    if b.len() < 6 {
        return json!({ "short_response": b.len() });
    }
    let n = i32::from_be_bytes([b[2], b[3], b[4], b[5]]).max(0) as usize;
    let api_versions = b[6..]
        .chunks_exact(6)
        .take(n)
        .find(|e| i16::from_be_bytes([e[0], e[1]]) == 18)
        .map(|e| json!({"min": i16::from_be_bytes([e[2], e[3]]), "max": i16::from_be_bytes([e[4], e[5]])}));
    json!({
        "error": err(i16::from_be_bytes([b[0], b[1]])),
        "lists_api_versions": api_versions,
    })
}

/// What the broker does with a request it cannot answer: closes the connection, or not.
fn raw_outcome(ctx: &Ctx, api_key: i16, version: i16) -> Value {
    let mut sock = raw_socket(ctx);
    if sock
        .write_all(&frame(api_key, version, false, &[0, 0, 0, 0]))
        .is_err()
    {
        return json!("write failed");
    }
    match read_frame(&mut sock) {
        None => json!("connection closed"),
        Some(b) => json!({ "answered_bytes": b.len() }),
    }
}

fn md_request(ctx: &Ctx, topics: Option<&[&str]>, auto_create: bool) -> m::MetadataRequest {
    // Cluster authorized operations left Metadata in v11 (DescribeCluster has them).
    let v = ctx.version(ApiKey::Metadata).unwrap_or(0);
    m::MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    m::metadata_request::MetadataRequestTopic::default().with_name(Some(tn(t)))
                })
                .collect()
        }))
        .with_allow_auto_topic_creation(auto_create)
        .with_include_topic_authorized_operations(true)
        .with_include_cluster_authorized_operations((8..=10).contains(&v))
}

fn md_topic(t: &m::metadata_response::MetadataResponseTopic) -> Value {
    json!({
        "error": err(t.error_code),
        "topic_id_set": !t.topic_id.is_nil(),
        "is_internal": t.is_internal,
        "authorized_operations": t.topic_authorized_operations,
        "partitions": t.partitions.iter().map(|p| json!({
            "partition": p.partition_index,
            "error": err(p.error_code),
            "leader": p.leader_id.0,
            "leader_epoch": p.leader_epoch,
            "replicas": p.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
            "isr": p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
            "offline": p.offline_replicas.iter().map(|b| b.0).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The topics of a Metadata response (only `names`), keyed by name.
fn md_topics(r: &m::MetadataResponse, names: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for t in &r.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        if names.contains(&name.as_str()) {
            out.insert(name, md_topic(t));
        }
    }
    Value::Object(out)
}

fn metadata(ctx: &Ctx) -> Value {
    let topic = ctx.name("md-three");
    let unknown = ctx.name("md-unknown");
    let auto = ctx.name("md-auto");
    create_topic(ctx, &topic, 3, &[]);

    let all = match ctx.call::<m::MetadataResponse>(md_request(ctx, None, false)) {
        Err(e) => transport(e),
        Ok(r) => json!({
            "error": err(r.error_code),
            "brokers": r.brokers.iter().map(|b| json!({
                "node_id": b.node_id.0,
                "address": ctx.addr(&b.host, b.port),
                "rack": opt_str(&b.rack),
            })).collect::<Vec<_>>(),
            "cluster_id_set": r.cluster_id.as_ref().is_some_and(|c| !c.is_empty()),
            "controller_id": r.controller_id.0,
            "topics": md_topics(&r, &[&topic]),
        }),
    };
    let named =
        match ctx.call::<m::MetadataResponse>(md_request(ctx, Some(&[&topic, &unknown]), false)) {
            Err(e) => transport(e),
            Ok(r) => md_topics(&r, &[&topic, &unknown]),
        };
    let invalid = match ctx.call::<m::MetadataResponse>(md_request(ctx, Some(&["bad/name"]), true))
    {
        Err(e) => transport(e),
        Ok(r) => md_topics(&r, &["bad/name"]),
    };
    // Auto-creation: the first answer, then the topic once it has leaders.
    let first = match ctx.call::<m::MetadataResponse>(md_request(ctx, Some(&[&auto]), true)) {
        Err(e) => transport(e),
        Ok(r) => json!({ "error": r.topics.first().map(|t| err(t.error_code)) }),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let created = loop {
        match ctx.call::<m::MetadataResponse>(md_request(ctx, Some(&[&auto]), false)) {
            Err(e) => break transport(e),
            Ok(r) => {
                let t = &r.topics[0];
                let ready = t.error_code == 0
                    && !t.partitions.is_empty()
                    && t.partitions.iter().all(|p| p.leader_id.0 >= 0);
                if ready || Instant::now() > deadline {
                    break md_topics(&r, &[&auto]);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    json!({
        "all_topics": all,
        "named_with_unknown": named,
        "invalid_name_with_auto_create": invalid,
        "auto_create_first_answer": first,
        "auto_created": created,
    })
}

fn describe_cluster(ctx: &Ctx) -> Value {
    let req = m::DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let v = ctx.version(ApiKey::DescribeCluster).unwrap_or(0);
    match ctx.send_v(req, v) {
        Err(e) => transport(e),
        Ok(runnel_protocol::api::ResponseBody::DescribeCluster(r)) => json!({
            "error": err(r.error_code),
            "note_error_message": opt_str(&r.error_message),
            "endpoint_type": r.endpoint_type,
            "cluster_id_set": !r.cluster_id.is_empty(),
            "controller_id": r.controller_id.0,
            "cluster_authorized_operations": r.cluster_authorized_operations,
            "brokers": r.brokers.iter().map(|b| json!({
                "broker_id": b.broker_id.0,
                "address": ctx.addr(&b.host, b.port),
                "rack": opt_str(&b.rack),
                "is_fenced": b.is_fenced,
            })).collect::<Vec<_>>(),
        }),
        Ok(_) => json!("unexpected response"),
    }
}

fn init_producer_id(ctx: &Ctx) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    let idempotent = loop {
        let r = ctx.call::<m::InitProducerIdResponse>(
            m::InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(m::ProducerId(-1))
                .with_producer_epoch(-1),
        );
        match r {
            Err(e) => break transport(e),
            // Kafka answers COORDINATOR_LOAD_IN_PROGRESS while its producer id block loads.
            Ok(r) if r.error_code == 14 && Instant::now() < deadline => {}
            Ok(r) => {
                break json!({
                    "error": err(r.error_code),
                    "producer_id_assigned": r.producer_id.0 >= 0,
                    "producer_epoch": r.producer_epoch,
                })
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The transaction coordinator: Kafka creates __transaction_state on first use and
    // answers COORDINATOR_NOT_AVAILABLE until it is ready.
    let txn_id = ctx.name("txn");
    let deadline = Instant::now() + Duration::from_secs(15);
    let find = loop {
        let r = ctx.call::<m::FindCoordinatorResponse>(find_coordinator(ctx, 1, &[&txn_id]));
        match r {
            Err(e) => break transport(e),
            Ok(r) => {
                let (code, node) = match r.coordinators.first() {
                    Some(c) => (c.error_code, c.node_id.0),
                    None => (r.error_code, r.node_id.0),
                };
                if code != 15 || Instant::now() > deadline {
                    break json!({ "error": err(code), "node_id": node });
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let transactional = loop {
        let r = ctx.call::<m::InitProducerIdResponse>(
            m::InitProducerIdRequest::default()
                .with_transactional_id(Some(m::TransactionalId(s(&txn_id))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(m::ProducerId(-1))
                .with_producer_epoch(-1),
        );
        match r {
            Err(e) => break transport(e),
            Ok(r) => {
                // COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR
                // are retried, as clients do.
                if ![14, 15, 16].contains(&r.error_code) || Instant::now() > deadline {
                    break json!({
                        "error": err(r.error_code),
                        "producer_id_assigned": r.producer_id.0 >= 0,
                        "producer_epoch": r.producer_epoch,
                    });
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    json!({
        "idempotent": idempotent,
        "find_transaction_coordinator": find,
        "transactional": transactional,
    })
}

/// FindCoordinator for `keys` in the layout of the negotiated version (v4+ batches keys).
pub fn find_coordinator(ctx: &Ctx, key_type: i8, keys: &[&str]) -> m::FindCoordinatorRequest {
    let req = m::FindCoordinatorRequest::default().with_key_type(key_type);
    if ctx.version(ApiKey::FindCoordinator).unwrap_or(0) >= 4 {
        req.with_coordinator_keys(keys.iter().map(|k| s(k)).collect())
    } else {
        req.with_key(s(keys[0]))
    }
}
