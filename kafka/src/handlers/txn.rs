//! Transactions (KIP-98, KIP-664, KIP-890): InitProducerId with a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, WriteTxnMarkers (an admin's abort of a
//! hanging transaction), DescribeTransactions, ListTransactions and DescribeProducers,
//! and the verification of a transactional produce. The state machine is
//! `runnel_coordinator::txn`; these map requests onto it, with Kafka's ACL checks.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{self as m, ProducerId, TransactionalId};

use super::{str_bytes, topic_name};
use crate::context::{Operation, RequestContext, Resource};
use crate::kafka_broker::KafkaBroker;
use runnel_coordinator::group::OFFSETS_TOPIC;
use runnel_coordinator::txn::{TxnDescription, TxnListing};

/// InitProducerId with a transactional id (the idempotent case stays in admin.rs).
pub async fn init_producer_id(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: &m::InitProducerIdRequest,
    transactional_id: &str,
    version: i16,
) -> m::InitProducerIdResponse {
    let base = m::InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if !ctx.authorize(
        Operation::Write,
        Resource::TransactionalId(transactional_id),
    ) {
        return base.with_error_code(E::TransactionalIdAuthorizationFailed.code());
    }
    if transactional_id.is_empty() {
        return base.with_error_code(E::InvalidRequest.code());
    }
    if req.enable_2_pc || req.keep_prepared_txn {
        // KIP-939 (two-phase commit) is not offered.
        return base.with_error_code(E::UnsupportedVersion.code());
    }
    let coordinator = match broker.transactions.coordinator() {
        Ok(c) => c,
        Err(e) => return base.with_error_code(e.code()),
    };
    let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    match coordinator
        .init_producer_id(transactional_id, req.transaction_timeout_ms, expected)
        .await
    {
        Ok((id, epoch)) => base
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        // Clients before v4 do not know PRODUCER_FENCED (Kafka's mapping).
        Err(E::ProducerFenced) if version < 4 => {
            base.with_error_code(E::InvalidProducerEpoch.code())
        }
        Err(e) => base.with_error_code(e.code()),
    }
}

/// The partitions of a request, each with the error that stops it before the
/// coordinator sees it (authorization, existence); Kafka answers the others with
/// OPERATION_NOT_ATTEMPTED when any has one.
fn check_partitions(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    topics: &[m::add_partitions_to_txn_request::AddPartitionsToTxnTopic],
) -> Vec<(String, i32, Option<E>)> {
    let mut out = Vec::new();
    for t in topics {
        let name = t.name.0.to_string();
        let allowed = ctx.authorize(Operation::Write, Resource::Topic(&name));
        for &p in &t.partitions {
            let error = if !allowed {
                Some(E::TopicAuthorizationFailed)
            } else if broker.partition(&name, p).is_none() || name == OFFSETS_TOPIC {
                Some(E::UnknownTopicOrPartition)
            } else {
                None
            };
            out.push((name.clone(), p, error));
        }
    }
    out
}

fn topic_results(
    results: Vec<(String, i32, i16)>,
) -> Vec<m::add_partitions_to_txn_response::AddPartitionsToTxnTopicResult> {
    let mut by_topic: Vec<m::add_partitions_to_txn_response::AddPartitionsToTxnTopicResult> =
        Vec::new();
    for (topic, partition, code) in results {
        let r = m::add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(partition)
            .with_partition_error_code(code);
        match by_topic.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.results_by_partition.push(r),
            None => by_topic.push(
                m::add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                    .with_name(topic_name(&topic))
                    .with_results_by_partition(vec![r]),
            ),
        }
    }
    by_topic
}

/// Add (or, v4+ `verify_only`, check) partitions; one error for all when the
/// transaction itself refuses.
async fn add_or_verify(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: &[m::add_partitions_to_txn_request::AddPartitionsToTxnTopic],
) -> Vec<(String, i32, i16)> {
    let checked = check_partitions(broker, ctx, topics);
    let all = |code: i16| -> Vec<(String, i32, i16)> {
        checked
            .iter()
            .map(|(t, p, _)| (t.clone(), *p, code))
            .collect()
    };
    if !ctx.authorize(
        Operation::Write,
        Resource::TransactionalId(transactional_id),
    ) {
        return all(E::TransactionalIdAuthorizationFailed.code());
    }
    if checked.iter().any(|(_, _, e)| e.is_some()) {
        return checked
            .iter()
            .map(|(t, p, e)| {
                let code = e.map_or(E::OperationNotAttempted.code(), |e| e.code());
                (t.clone(), *p, code)
            })
            .collect();
    }
    let coordinator = match broker.transactions.coordinator() {
        Ok(c) => c,
        Err(e) => return all(e.code()),
    };
    let partitions: Vec<(String, i32)> = checked.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    if verify_only {
        return coordinator
            .verify_partitions(transactional_id, producer_id, producer_epoch, &partitions)
            .into_iter()
            .map(|((t, p), r)| (t, p, r.err().map_or(0, |e| e.code())))
            .collect();
    }
    match coordinator
        .add_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            &partitions,
            false,
        )
        .await
    {
        Ok(()) => all(0),
        Err(e) => all(e.code()),
    }
}

/// Clients of AddPartitionsToTxn, AddOffsetsToTxn and EndTxn before v2 do not know
/// PRODUCER_FENCED: Kafka answers them INVALID_PRODUCER_EPOCH.
fn fenced_for(version: i16, e: E) -> E {
    if version < 2 && e == E::ProducerFenced {
        E::InvalidProducerEpoch
    } else {
        e
    }
}

pub async fn add_partitions_to_txn(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::AddPartitionsToTxnRequest,
    version: i16,
) -> m::AddPartitionsToTxnResponse {
    if version <= 3 {
        let fenced = E::ProducerFenced.code();
        let mut results = add_or_verify(
            broker,
            ctx,
            &req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            false,
            &req.v3_and_below_topics,
        )
        .await;
        for r in &mut results {
            if r.2 == fenced {
                r.2 = fenced_for(version, E::ProducerFenced).code();
            }
        }
        return m::AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(topic_results(results));
    }
    // v4+ is what brokers send the coordinator (KIP-890): CLUSTER_ACTION only.
    if !ctx.authorize(Operation::ClusterAction, Resource::Cluster) {
        return m::AddPartitionsToTxnResponse::default()
            .with_error_code(E::ClusterAuthorizationFailed.code());
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let r = add_or_verify(
            broker,
            ctx,
            &t.transactional_id,
            t.producer_id.0,
            t.producer_epoch,
            t.verify_only,
            &t.topics,
        )
        .await;
        results.push(
            m::add_partitions_to_txn_response::AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topic_results(r)),
        );
    }
    m::AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

pub async fn add_offsets_to_txn(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::AddOffsetsToTxnRequest,
    version: i16,
) -> m::AddOffsetsToTxnResponse {
    let fail =
        |e: E| m::AddOffsetsToTxnResponse::default().with_error_code(fenced_for(version, e).code());
    if !ctx.authorize(
        Operation::Write,
        Resource::TransactionalId(&req.transactional_id),
    ) {
        return fail(E::TransactionalIdAuthorizationFailed);
    }
    if !ctx.authorize(Operation::Read, Resource::Group(&req.group_id)) {
        return fail(E::GroupAuthorizationFailed);
    }
    let coordinator = match broker.transactions.coordinator() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let partition = broker.groups.partition_for(&req.group_id);
    match coordinator
        .add_partitions(
            &req.transactional_id,
            req.producer_id.0,
            req.producer_epoch,
            &[(OFFSETS_TOPIC.to_string(), partition)],
            false,
        )
        .await
    {
        Ok(()) => m::AddOffsetsToTxnResponse::default(),
        Err(e) => fail(e),
    }
}

pub async fn end_txn(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::EndTxnRequest,
    version: i16,
) -> m::EndTxnResponse {
    let fail = |e: E| {
        m::EndTxnResponse::default()
            .with_error_code(fenced_for(version, e).code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if !ctx.authorize(
        Operation::Write,
        Resource::TransactionalId(&req.transactional_id),
    ) {
        return fail(E::TransactionalIdAuthorizationFailed);
    }
    let coordinator = match broker.transactions.coordinator() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    // EndTxn v5+ is transaction version 2: the epoch is bumped and returned.
    let tv2 = version >= 5;
    match coordinator
        .end_txn(
            &req.transactional_id,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
            tv2,
        )
        .await
    {
        Ok((id, epoch)) if tv2 => m::EndTxnResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Ok(_) => m::EndTxnResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
        Err(e) => fail(e),
    }
}

/// A verification failure as the client sees it (Kafka's AddPartitionsToTxnManager):
/// PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH, which producers expect here, and
/// TRANSACTION_ABORTABLE (KIP-1050) reaches only clients that know it (`knows_abortable`:
/// Produce v11+, TxnOffsetCommit v4+); older ones get INVALID_TXN_STATE.
pub(crate) fn verification_error(e: E, knows_abortable: bool) -> E {
    match e {
        E::ProducerFenced => E::InvalidProducerEpoch,
        E::TransactionAbortable if !knows_abortable => E::InvalidTxnState,
        e => e,
    }
}

/// Verify a transactional produce before its appends (KIP-890): with Produce v12+
/// (transaction version 2) the partitions join the transaction here; before that they
/// must already be in it. Returns the refused partitions with their error; a partition
/// it accepts is marked verified, so its append may open the transaction.
pub async fn verify_produce(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: &m::ProduceRequest,
    version: i16,
) -> HashMap<(String, i32), E> {
    let mut refused = HashMap::new();
    let Some(transactional_id) = req.transactional_id.as_deref() else {
        return refused;
    };
    // Which partitions open a transaction here: (topic, partition, producer id, epoch).
    let mut opening: Vec<(String, i32, i64, i16)> = Vec::new();
    for t in &req.topic_data {
        for pd in &t.partition_data {
            let Some(records) = &pd.records else { continue };
            let Ok(h) = runnel_records::record_batch::BatchHeader::parse(records) else {
                continue; // the append refuses it
            };
            // Control batches too, as Kafka verifies before it validates records: one
            // outside a transaction is TRANSACTION_ABORTABLE, inside INVALID_RECORD.
            if !h.is_transactional() {
                continue;
            }
            let Some(p) = broker.partition(&t.name.0, pd.index) else {
                continue;
            };
            if !p.has_open_txn(h.producer_id, h.producer_epoch) {
                opening.push((
                    t.name.0.to_string(),
                    pd.index,
                    h.producer_id,
                    h.producer_epoch,
                ));
            }
        }
    }
    if opening.is_empty() {
        return refused;
    }
    let refuse_all = |refused: &mut HashMap<(String, i32), E>, e: E| {
        for (t, p, _, _) in &opening {
            refused.insert((t.clone(), *p), e);
        }
    };
    if !ctx.authorize(
        Operation::Write,
        Resource::TransactionalId(transactional_id),
    ) {
        refuse_all(&mut refused, E::TransactionalIdAuthorizationFailed);
        return refused;
    }
    let coordinator = match broker.transactions.coordinator() {
        Ok(c) => c,
        Err(e) => {
            refuse_all(&mut refused, e);
            return refused;
        }
    };
    // One producer per request in practice; group by (id, epoch) all the same.
    let mut by_producer: HashMap<(i64, i16), Vec<(String, i32)>> = HashMap::new();
    for (t, p, id, epoch) in &opening {
        by_producer
            .entry((*id, *epoch))
            .or_default()
            .push((t.clone(), *p));
    }
    for ((id, epoch), partitions) in by_producer {
        let results: Vec<((String, i32), Result<(), E>)> = if version >= 12 {
            let r = coordinator
                .add_partitions(transactional_id, id, epoch, &partitions, true)
                .await;
            partitions.into_iter().map(|tp| (tp, r)).collect()
        } else {
            coordinator.verify_partitions(transactional_id, id, epoch, &partitions)
        };
        for ((t, p), r) in results {
            match r {
                Ok(()) => {
                    if let Some(part) = broker.partition(&t, p) {
                        part.mark_txn_verified(id, epoch);
                    }
                }
                Err(e) => {
                    refused.insert((t, p), verification_error(e, version > 10));
                }
            }
        }
    }
    refused
}

/// WriteTxnMarkers: what Admin.abortTransaction sends the partition leader for a
/// hanging transaction (KIP-664). CLUSTER_ACTION only, as in Kafka.
pub async fn write_txn_markers(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::WriteTxnMarkersRequest,
) -> m::WriteTxnMarkersResponse {
    let allowed = ctx.authorize(Operation::ClusterAction, Resource::Cluster);
    let mut markers = Vec::with_capacity(req.markers.len());
    for marker in &req.markers {
        let mut topics = Vec::with_capacity(marker.topics.len());
        for t in &marker.topics {
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for &index in &t.partition_indexes {
                let code = if !allowed {
                    E::ClusterAuthorizationFailed.code()
                } else {
                    write_marker(broker, &t.name.0, index, marker).await
                };
                partitions.push(
                    m::write_txn_markers_response::WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code),
                );
            }
            topics.push(
                m::write_txn_markers_response::WritableTxnMarkerTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        markers.push(
            m::write_txn_markers_response::WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    m::WriteTxnMarkersResponse::default().with_markers(markers)
}

async fn write_marker(
    broker: &KafkaBroker,
    topic: &str,
    index: i32,
    marker: &m::write_txn_markers_request::WritableTxnMarker,
) -> i16 {
    let Some(p) = broker.partition(topic, index) else {
        return E::UnknownTopicOrPartition.code();
    };
    let (id, epoch, commit) = (
        marker.producer_id.0,
        marker.producer_epoch,
        marker.transaction_result,
    );
    let part = p.clone();
    let appended = tokio::task::spawn_blocking(move || {
        part.append_marker(id, epoch, commit, runnel_storage::now_ms())
    })
    .await;
    match appended {
        Ok(Ok(a)) => match p.wait_durable(a.last_offset + 1).await {
            Ok(()) => {
                if topic == OFFSETS_TOPIC {
                    broker.groups.complete_txn(index, id, commit);
                }
                0
            }
            Err(()) => E::KafkaStorageError.code(),
        },
        Ok(Err(runnel_core::partition::AppendError::Producer(e))) => e.code(),
        Ok(Err(_)) | Err(_) => E::KafkaStorageError.code(),
    }
}

pub fn describe_transactions(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::DescribeTransactionsRequest,
) -> m::DescribeTransactionsResponse {
    let coordinator = broker.transactions.if_open();
    let ids: Vec<String> = req
        .transactional_ids
        .iter()
        .map(|i| i.to_string())
        .collect();
    let mut found: HashMap<String, Result<TxnDescription, E>> = coordinator
        .map(|c| c.describe(&ids).into_iter().collect())
        .unwrap_or_default();
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            // An error answer leaves the other fields at their defaults, as Kafka's does.
            let base = m::describe_transactions_response::TransactionState::default()
                .with_transactional_id(id.clone());
            if !ctx.authorize(Operation::Describe, Resource::TransactionalId(id)) {
                return base.with_error_code(E::TransactionalIdAuthorizationFailed.code());
            }
            let txn = match found.remove(id.as_str()) {
                Some(Ok(txn)) => txn,
                Some(Err(e)) => return base.with_error_code(e.code()),
                None => return base.with_error_code(E::TransactionalIdNotFound.code()),
            };
            // Kafka leaves out the partitions of topics the principal may not describe.
            let mut topics: Vec<m::describe_transactions_response::TopicData> = Vec::new();
            for (topic, partitions) in &txn.topics {
                if !ctx.authorize(Operation::Describe, Resource::Topic(topic)) {
                    continue;
                }
                topics.push(
                    m::describe_transactions_response::TopicData::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions.clone()),
                );
            }
            base.with_producer_id(ProducerId(txn.producer_id))
                .with_producer_epoch(txn.producer_epoch)
                .with_transaction_state(str_bytes(txn.state))
                .with_transaction_timeout_ms(txn.timeout_ms)
                .with_transaction_start_time_ms(txn.start_ms)
                .with_topics(topics)
        })
        .collect();
    m::DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn list_transactions(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::ListTransactionsRequest,
) -> m::ListTransactionsResponse {
    const STATES: &[&str] = &[
        "Empty",
        "Ongoing",
        "PrepareCommit",
        "PrepareAbort",
        "CompleteCommit",
        "CompleteAbort",
        "Dead",
        "PrepareEpochFence",
    ];
    let states: Vec<String> = req.state_filters.iter().map(|s| s.to_string()).collect();
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let listing = match broker.transactions.if_open() {
        None => TxnListing {
            unknown_state_filters: states
                .iter()
                .filter(|s| !STATES.contains(&s.as_str()))
                .cloned()
                .collect(),
            transactions: Vec::new(),
        },
        Some(c) => match c.list(
            &states,
            &pids,
            req.duration_filter,
            req.transactional_id_pattern.as_deref(),
        ) {
            Ok(l) => l,
            Err(e) => return m::ListTransactionsResponse::default().with_error_code(e.code()),
        },
    };
    let unknown = listing
        .unknown_state_filters
        .into_iter()
        .map(str_bytes)
        .collect();
    let transaction_states = listing
        .transactions
        .into_iter()
        .filter(|t| {
            ctx.authorize(
                Operation::Describe,
                Resource::TransactionalId(&t.transactional_id),
            )
        })
        .map(|t| {
            m::list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(t.transactional_id)))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(str_bytes(t.state))
        })
        .collect();
    m::ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(transaction_states)
}

pub fn describe_producers(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::DescribeProducersRequest,
) -> m::DescribeProducersResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let allowed = ctx.authorize(Operation::Read, Resource::Topic(&t.name.0));
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let base = m::describe_producers_response::PartitionResponse::default()
                        .with_partition_index(index);
                    if !allowed {
                        return base.with_error_code(E::TopicAuthorizationFailed.code());
                    }
                    let Some(p) = broker.partition(&t.name.0, index) else {
                        return base.with_error_code(E::UnknownTopicOrPartition.code());
                    };
                    match p.producer_states() {
                        Ok(states) => base.with_active_producers(
                            states
                                .into_iter()
                                .map(|s| {
                                    m::describe_producers_response::ProducerState::default()
                                        .with_producer_id(ProducerId(s.producer_id))
                                        .with_producer_epoch(s.producer_epoch as i32)
                                        .with_last_sequence(s.last_sequence)
                                        .with_last_timestamp(s.last_timestamp)
                                        .with_coordinator_epoch(s.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            s.current_txn_start_offset.map_or(-1, |o| o as i64),
                                        )
                                })
                                .collect(),
                        ),
                        Err(e) => base
                            .with_error_code(super::storage_error_code(&e).code())
                            .with_error_message(Some(str_bytes(e.to_string()))),
                    }
                })
                .collect();
            m::describe_producers_response::TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    m::DescribeProducersResponse::default().with_topics(topics)
}
