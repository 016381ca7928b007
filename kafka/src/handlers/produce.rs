//! Produce: append each partition's record set, then acknowledge per `acks`:
//! 0 → no response; 1 → once written to the OS; all (-1) → once fsynced (group commit),
//! unless the topic has `write.caching=true`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages as m;

use super::storage_error_code;
use crate::context::{Operation, RequestContext, Resource};
use crate::kafka_broker::KafkaBroker;
use runnel_core::partition::{AppendError, Appended, Partition, RecordFault, RejectedRecord};

/// Everything the durability wait needs once the appends are done.
pub struct PendingAcks {
    response: m::ProduceResponse,
    /// (topic index, partition index, partition, offset that must be durable)
    waits: Vec<(usize, usize, Arc<Partition>, u64)>,
    deadline: tokio::time::Instant,
}

/// The append phase. It must run in request order on a connection (a producer
/// pipelines requests and relies on them being appended in the order sent); the wait
/// that follows may overlap later requests, so one fsync can cover several of them.
/// `None` for acks=0.
pub fn append(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::ProduceRequest,
    _version: i16,
    txn_refused: &HashMap<(String, i32), ResponseError>,
) -> Option<PendingAcks> {
    let acks = req.acks;
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let now = runnel_storage::now_ms();
    let valid_acks = (-1..=1).contains(&acks);
    // Transactional records (data or control) need a transactional id the producer may
    // WRITE; otherwise the whole request is TRANSACTIONAL_ID_AUTHORIZATION_FAILED, checked
    // before anything else, as in Kafka's handleProduceRequest.
    let has_txn_records = req.topic_data.iter().any(|t| {
        t.partition_data.iter().any(|pd| {
            pd.records.as_deref().is_some_and(|r| {
                runnel_records::record_batch::BatchHeader::parse(r)
                    .is_ok_and(|h| h.is_transactional())
            })
        })
    });
    let txn_allowed = match req.transactional_id.as_deref() {
        Some(id) => ctx.authorize(Operation::Write, Resource::TransactionalId(id)),
        None => !has_txn_records,
    };
    // (topic index, partition response, offset that must be durable before answering)
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut waits = Vec::new();
    for topic in &req.topic_data {
        // Checked before the topic's existence, so a denied producer learns nothing.
        let allowed = ctx.authorize(Operation::Write, Resource::Topic(&topic.name.0));
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for pd in &topic.partition_data {
            let mut resp = m::produce_response::PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1);
            let outcome = if !txn_allowed {
                Err((
                    ResponseError::TransactionalIdAuthorizationFailed,
                    None,
                    vec![],
                ))
            } else if !valid_acks {
                Err((ResponseError::InvalidRequiredAcks, None, vec![]))
            } else if !allowed {
                Err((ResponseError::TopicAuthorizationFailed, None, vec![]))
            } else if let Some(e) = txn_refused.get(&(topic.name.0.to_string(), pd.index)) {
                Err((*e, None, vec![]))
            } else {
                match broker.partition(&topic.name.0, pd.index) {
                    None => Err((ResponseError::UnknownTopicOrPartition, None, vec![])),
                    Some(p) => match &pd.records {
                        None => Err((
                            ResponseError::CorruptMessage,
                            Some("no records".to_string()),
                            vec![],
                        )),
                        Some(records) => match p.append(records, now).map_err(|e| {
                            // Kafka's record validation errors (RecordValidationException)
                            // carry the log start offset; the others do not.
                            let start = matches!(e, AppendError::RecordValidation(_))
                                .then(|| p.log_start_offset().map_or(-1, |o| o as i64));
                            (e, start)
                        }) {
                            Ok(a) => {
                                if !a.duplicate {
                                    p.metrics.record_in(
                                        records.len(),
                                        a.last_offset + 1 - a.base_offset,
                                    );
                                }
                                Ok((p, a))
                            }
                            Err((e, start)) => {
                                if let Some(start) = start {
                                    resp = resp.with_log_start_offset(start);
                                }
                                Err(append_error(&e))
                            }
                        },
                    },
                }
            };
            match outcome {
                Ok((
                    p,
                    Appended {
                        base_offset,
                        last_offset,
                        log_append_time,
                        duplicate,
                    },
                )) => {
                    resp = resp
                        .with_base_offset(base_offset as i64)
                        .with_log_append_time_ms(log_append_time)
                        .with_log_start_offset(p.log_start_offset().map_or(-1, |o| o as i64));
                    // acks=all waits for the fsync that covers the batch; so does a retry
                    // whose original is not durable yet.
                    let durable = duplicate && p.durable_offset() > last_offset;
                    if acks == -1 && !p.write_caching() && !durable {
                        waits.push((responses.len(), partitions.len(), p, last_offset + 1));
                    }
                }
                Err((code, message, record_errors)) => {
                    resp = resp
                        .with_error_code(code.code())
                        .with_error_message(message.map(super::str_bytes))
                        .with_record_errors(record_errors);
                }
            }
            partitions.push(resp);
        }
        responses.push(
            m::produce_response::TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return None;
    }
    Some(PendingAcks {
        response: m::ProduceResponse::default().with_responses(responses),
        waits,
        deadline: tokio::time::Instant::now() + timeout,
    })
}

impl PendingAcks {
    /// Wait until every acks=all batch is fsynced, or the request times out.
    pub async fn wait(mut self) -> m::ProduceResponse {
        for (t, pi, partition, offset) in self.waits {
            let durable =
                tokio::time::timeout_at(self.deadline, partition.wait_durable(offset)).await;
            let code = match durable {
                Ok(Ok(())) => continue,
                Ok(Err(())) => ResponseError::KafkaStorageError,
                Err(_) => ResponseError::RequestTimedOut,
            };
            self.response.responses[t].partition_responses[pi].error_code = code.code();
        }
        self.response
    }
}

type RecordErrors = Vec<m::produce_response::BatchIndexAndErrorMessage>;

fn append_error(e: &AppendError) -> (ResponseError, Option<String>, RecordErrors) {
    let plain = |code, message: String| (code, Some(message), Vec::new());
    match e {
        AppendError::Storage(s) => plain(storage_error_code(s), s.to_string()),
        AppendError::Producer(p) => plain(
            ResponseError::try_from_code(p.code()).unwrap_or(ResponseError::UnknownServerError),
            p.to_string(),
        ),
        AppendError::Corrupt(why) => plain(ResponseError::CorruptMessage, why.clone()),
        AppendError::ControlFromClient(why) => plain(ResponseError::InvalidRecord, why.clone()),
        AppendError::NotInTransaction(why) => plain(ResponseError::InvalidTxnState, why.clone()),
        AppendError::MultipleBatches(n) => plain(
            ResponseError::InvalidRecord,
            format!("{n} record batches for one partition; exactly one is allowed"),
        ),
        AppendError::RecordValidation(records) => record_validation_error(records),
    }
}

/// Kafka's answer to a RecordValidationException (LogValidator.processRecordErrors): one
/// record error per refused record; INVALID_TIMESTAMP if any record had a bad
/// timestamp, else INVALID_RECORD naming the first three, in Kafka's wording (Java's
/// `List.toString` of `RecordError`s).
fn record_validation_error(
    records: &[RejectedRecord],
) -> (ResponseError, Option<String>, RecordErrors) {
    let (code, message) = if records
        .iter()
        .any(|r| r.fault == RecordFault::InvalidTimestamp)
    {
        (
            ResponseError::InvalidTimestamp,
            "One or more records have been rejected due to invalid timestamp".to_string(),
        )
    } else {
        let first: Vec<String> = records
            .iter()
            .take(3)
            .map(|r| {
                format!(
                    "RecordError(batchIndex={}, message='{}')",
                    r.batch_index, r.message
                )
            })
            .collect();
        (
            ResponseError::InvalidRecord,
            format!(
                "One or more records have been rejected due to {} record errors in total, \
                 and only showing the first three errors at most: [{}]",
                records.len(),
                first.join(", ")
            ),
        )
    };
    let errors = records
        .iter()
        .map(|r| {
            m::produce_response::BatchIndexAndErrorMessage::default()
                .with_batch_index(r.batch_index)
                .with_batch_index_error_message(Some(super::str_bytes(r.message.clone())))
        })
        .collect();
    (code, Some(message), errors)
}
