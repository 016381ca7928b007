//! Fetch (with long polling), ListOffsets, OffsetForLeaderEpoch and DeleteRecords.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages as m;
use runnel_protocol::records::batch_records;
use runnel_protocol::response_parts::ExternalRecords;
use runnel_storage::{FileSlice, StorageError};
use tokio::sync::Notify;

use super::{resolve_topic, storage_error_code};
use crate::broker::Broker;
use crate::partition::Partition;

/// Longest long poll we honour, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);
/// Largest decompressed batch ListOffsets will decode to find a record by timestamp.
const MAX_DECOMPRESSED_BATCH: usize = 64 * 1024 * 1024;

struct Slot {
    topic: usize,
    partition: usize,
    p: Arc<Partition>,
    fetch_offset: i64,
    max_bytes: i32,
}

/// A fetch's answer before its record sets are read: the response, with empty `records`
/// where the slices go, and the slices of segment files to send.
struct FetchSlices {
    response: m::FetchResponse,
    /// (topic index, partition index in that topic, whole batches).
    slices: Vec<(usize, usize, FileSlice)>,
}

/// Fetch with the record sets read into the response (for callers that need a plain
/// message; the server sends them from the files, see [`fetch_parts`]).
pub async fn fetch(broker: &Broker, req: m::FetchRequest, version: i16) -> m::FetchResponse {
    let FetchSlices {
        mut response,
        slices,
    } = fetch_slices(broker, req, version).await;
    for (t, p, slice) in slices {
        set_records_read(&mut response.responses[t].partitions[p], &slice);
    }
    response
}

/// Fetch with each record set left in its segment file: the response holds stand-ins,
/// and the returned [`ExternalRecords`] the slices to send in their place.
pub async fn fetch_parts(
    broker: &Broker,
    req: m::FetchRequest,
    version: i16,
) -> (m::FetchResponse, ExternalRecords<FileSlice>) {
    let FetchSlices {
        mut response,
        slices,
    } = fetch_slices(broker, req, version).await;
    let mut external = ExternalRecords::new();
    for (t, p, slice) in slices {
        let pd = &mut response.responses[t].partitions[p];
        let len = slice.len as usize;
        match external.stand_in(slice.clone(), len) {
            Some(stand_in) => pd.records = Some(stand_in),
            None => set_records_read(pd, &slice),
        }
    }
    (response, external)
}

/// Put the slice's bytes in the partition's records, or a storage error if they cannot
/// be read.
fn set_records_read(pd: &mut m::fetch_response::PartitionData, slice: &FileSlice) {
    match slice.read_to_vec() {
        Ok(v) => pd.records = Some(Bytes::from(v)),
        Err(e) => {
            tracing::error!(error = %e, "reading a segment failed");
            pd.error_code = ResponseError::KafkaStorageError.code();
            pd.records = Some(Bytes::new());
        }
    }
}

async fn fetch_slices(broker: &Broker, req: m::FetchRequest, version: i16) -> FetchSlices {
    // KIP-227 fetch sessions are declined: we always answer with session id 0, so
    // clients send full fetch requests. An incremental request (a session id we never
    // gave out) gets FETCH_SESSION_ID_NOT_FOUND, and the client starts over.
    if req.session_id != 0 {
        return FetchSlices {
            response: m::FetchResponse::default()
                .with_error_code(ResponseError::FetchSessionIdNotFound.code()),
            slices: Vec::new(),
        };
    }
    let max_bytes = if req.max_bytes <= 0 {
        broker.config.fetch_max_bytes
    } else {
        (req.max_bytes as usize).min(broker.config.fetch_max_bytes)
    };
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = tokio::time::Instant::now() + max_wait;

    // Resolve partitions once; unknown ones get their error in every round.
    let mut topics: Vec<m::fetch_response::FetchableTopicResponse> =
        Vec::with_capacity(req.topics.len());
    let mut slots = Vec::new();
    for t in &req.topics {
        let meta = resolve_topic(
            broker,
            &t.topic,
            if version >= 13 {
                t.topic_id
            } else {
                uuid::Uuid::nil()
            },
        );
        let mut tr = m::fetch_response::FetchableTopicResponse::default()
            .with_topic(t.topic.clone())
            .with_topic_id(t.topic_id);
        for fp in &t.partitions {
            // Kafka lists aborted transactions only for read_committed (an empty list:
            // there are no transactions), null otherwise.
            let mut pd = m::fetch_response::PartitionData::default()
                .with_partition_index(fp.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_aborted_transactions((req.isolation_level == 1).then(Vec::new));
            let p = meta
                .as_ref()
                .and_then(|meta| broker.partition(&meta.name, fp.partition));
            match p {
                Some(p) if fp.current_leader_epoch > 0 => {
                    // The leader epoch is always 0: a client that knows a later one is
                    // ahead of us (Kafka: UNKNOWN_LEADER_EPOCH; FENCED is for older).
                    drop(p);
                    pd = pd.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                }
                Some(p) => slots.push(Slot {
                    topic: topics.len(),
                    partition: tr.partitions.len(),
                    p,
                    fetch_offset: fp.fetch_offset,
                    max_bytes: fp.partition_max_bytes,
                }),
                None => {
                    let code = if version >= 13 && meta.is_none() {
                        ResponseError::UnknownTopicId
                    } else {
                        ResponseError::UnknownTopicOrPartition
                    };
                    // Kafka's answer for a partition it does not have lists no aborted
                    // transactions (empty, not null) whatever the isolation level.
                    pd = pd
                        .with_error_code(code.code())
                        .with_aborted_transactions(Some(Vec::new()));
                }
            }
            tr.partitions.push(pd.with_records(Some(Bytes::new())));
        }
        topics.push(tr);
    }
    let has_errors = topics
        .iter()
        .any(|t| t.partitions.iter().any(|p| p.error_code != 0));

    // The slice each partition's last round found.
    let mut found: Vec<Option<FileSlice>> = vec![None; slots.len()];
    let mut expired = false;
    loop {
        let waiter = Arc::new(Notify::new());
        // Register before reading so an append between the read and the wait wakes us.
        for s in &slots {
            s.p.add_waiter(&waiter);
        }
        let mut total = 0usize;
        let mut errors = has_errors;
        for (s, found) in slots.iter().zip(found.iter_mut()) {
            let pd = &mut topics[s.topic].partitions[s.partition];
            let remaining = max_bytes.saturating_sub(total);
            let limit = (s.max_bytes.max(0) as usize).min(remaining);
            let read = read_partition(&s.p, s.fetch_offset, limit, total == 0);
            pd.high_watermark = read.high_watermark;
            pd.last_stable_offset = read.high_watermark;
            pd.log_start_offset = read.log_start_offset;
            match read.result {
                Ok(slice) => {
                    total += slice.as_ref().map_or(0, |s| s.len as usize);
                    pd.error_code = 0;
                    *found = slice;
                }
                Err(code) => {
                    // Kafka reports no offsets with a read error (UNKNOWN_OFFSET).
                    errors = true;
                    pd.error_code = code.code();
                    pd.high_watermark = -1;
                    pd.last_stable_offset = -1;
                    pd.log_start_offset = -1;
                    *found = None;
                }
            }
        }
        if expired && total >= min_bytes.max(1) {
            // Enough data arrived without waking us: a high watermark move that was
            // missed (or one racing the deadline).
            tracing::debug!(
                total,
                min_bytes,
                "long poll expired although enough data had arrived"
            );
        }
        if total >= min_bytes.max(1)
            || errors
            || expired
            || tokio::time::Instant::now() >= deadline
            || slots.is_empty()
        {
            break;
        }
        // Woken by a high watermark move: read again. At the deadline, read once more
        // and answer with what is there, as Kafka's DelayedFetch does when it expires.
        if tokio::time::timeout_at(deadline, waiter.notified())
            .await
            .is_err()
        {
            expired = true;
        }
    }
    let mut slices = Vec::new();
    for (s, found) in slots.iter().zip(found) {
        if let Some(slice) = found {
            s.p.metrics.bytes_out(slice.len);
            slices.push((s.topic, s.partition, slice));
        }
    }
    FetchSlices {
        response: m::FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        slices,
    }
}

/// What one partition's read found, with the offsets the response reports either way.
struct PartitionRead {
    result: Result<Option<FileSlice>, ResponseError>,
    high_watermark: i64,
    log_start_offset: i64,
}

/// Find whole batches at `offset` below the high watermark (not read yet: the server
/// sends them from the file). `min_one`: return the first batch even if it is larger
/// than `limit` (KIP-74), as for the first partition with data.
fn read_partition(p: &Partition, offset: i64, limit: usize, min_one: bool) -> PartitionRead {
    let hw = p.high_watermark();
    let mut log = p.log.lock();
    let log_start = log.log_start_offset() as i64;
    let answer = |result| PartitionRead {
        result,
        high_watermark: hw as i64,
        log_start_offset: log_start,
    };
    if offset < 0 {
        return answer(Err(ResponseError::OffsetOutOfRange));
    }
    if !min_one && limit == 0 {
        return answer(Ok(None));
    }
    let read = match log.read(offset as u64, limit as u64, hw) {
        Ok(r) => r,
        Err(e @ StorageError::OffsetOutOfRange { .. }) => {
            return answer(Err(storage_error_code(&e)))
        }
        Err(e) => {
            tracing::error!(partition = %p.tp, error = %e, "fetch read failed");
            return answer(Err(storage_error_code(&e)));
        }
    };
    drop(log);
    match read.slice {
        Some(slice) if !min_one && slice.len as usize > limit => answer(Ok(None)),
        slice => answer(Ok(slice)),
    }
}

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub async fn list_offsets(
    broker: &Broker,
    req: m::ListOffsetsRequest,
    version: i16,
) -> m::ListOffsetsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|lp| {
                    let base = m::list_offsets_response::ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let Some(p) = broker.partition(&t.name.0, lp.partition_index) else {
                        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if lp.current_leader_epoch > 0 {
                        return base.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                    }
                    match list_offset(&p, lp.timestamp) {
                        Ok((offset, ts)) => {
                            // leader_epoch exists from v4; setting it earlier fails encoding.
                            // No offset found: no epoch either (-1), as Kafka.
                            let base = base.with_offset(offset).with_timestamp(ts);
                            if version >= 4 && offset >= 0 {
                                base.with_leader_epoch(0)
                            } else {
                                base
                            }
                        }
                        Err(code) => base.with_error_code(code.code()),
                    }
                })
                .collect();
            m::list_offsets_response::ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    m::ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for a ListOffsets query, bounded by the high watermark.
fn list_offset(p: &Partition, timestamp: i64) -> Result<(i64, i64), ResponseError> {
    let hw = p.high_watermark() as i64;
    let mut log = p.log.lock();
    let log_start = log.log_start_offset() as i64;
    let hit = match timestamp {
        EARLIEST | EARLIEST_LOCAL => return Ok((log_start, -1)),
        LATEST => return Ok((hw, -1)),
        MAX_TIMESTAMP => log.max_timestamp(),
        t if t >= 0 => log.find_timestamp(t),
        _ => return Err(ResponseError::UnsupportedVersion),
    }
    .map_err(|e| storage_error_code(&e))?;
    drop(log);
    let Some(hit) = hit else { return Ok((-1, -1)) };
    let target = if timestamp == MAX_TIMESTAMP {
        hit.batch.max_timestamp
    } else {
        timestamp
    };
    let bytes = hit
        .slice
        .read_to_vec()
        .map_err(|_| ResponseError::KafkaStorageError)?;
    let decoded = batch_records(&bytes, MAX_DECOMPRESSED_BATCH).map_err(|e| {
        tracing::warn!(partition = %p.tp, error = %e, "undecodable batch in ListOffsets");
        ResponseError::CorruptMessage
    })?;
    for record in decoded.records() {
        let Ok(record) = record else { break };
        let ts = decoded.timestamp(&record);
        if ts >= target {
            let offset = decoded.offset(&record);
            if offset >= hw || offset < log_start {
                return Ok((-1, -1));
            }
            return Ok((offset, ts));
        }
    }
    Ok((-1, -1))
}

pub fn offset_for_leader_epoch(
    broker: &Broker,
    req: m::OffsetForLeaderEpochRequest,
) -> m::OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|op| {
                    let base = m::offset_for_leader_epoch_response::EpochEndOffset::default()
                        .with_partition(op.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(p) = broker.partition(&t.topic.0, op.partition) else {
                        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if op.current_leader_epoch > 0 {
                        return base.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                    }
                    // One leader epoch (0) for the partition's whole life.
                    if op.leader_epoch != 0 {
                        return base;
                    }
                    let leo = p.log.lock().log_end_offset() as i64;
                    base.with_leader_epoch(0).with_end_offset(leo)
                })
                .collect();
            m::offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    m::OffsetForLeaderEpochResponse::default().with_topics(topics)
}

pub async fn delete_records(
    broker: &Broker,
    req: m::DeleteRecordsRequest,
) -> m::DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for dp in &t.partitions {
            let base = m::delete_records_response::DeleteRecordsPartitionResult::default()
                .with_partition_index(dp.partition_index)
                .with_low_watermark(-1);
            let Some(p) = broker.partition(&t.name.0, dp.partition_index) else {
                partitions
                    .push(base.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            let hw = p.high_watermark() as i64;
            let target = if dp.offset == -1 { hw } else { dp.offset };
            if target < 0 || target > hw {
                partitions.push(base.with_error_code(ResponseError::OffsetOutOfRange.code()));
                continue;
            }
            let log = p.log.clone();
            let result = tokio::task::spawn_blocking(move || {
                let mut log = log.lock();
                log.advance_log_start_offset(target as u64)
                    .map(|_| log.log_start_offset())
            })
            .await;
            partitions.push(match result {
                Ok(Ok(start)) => base.with_low_watermark(start as i64),
                Ok(Err(e)) => base.with_error_code(storage_error_code(&e).code()),
                Err(_) => base.with_error_code(ResponseError::UnknownServerError.code()),
            });
        }
        topics.push(
            m::delete_records_response::DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    m::DeleteRecordsResponse::default().with_topics(topics)
}
