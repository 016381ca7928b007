//! Fetch (with long polling and KIP-227 sessions), ListOffsets, OffsetForLeaderEpoch and DeleteRecords.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages as m;
use runnel_protocol::records::batch_records;
use runnel_protocol::response_parts::ExternalRecords;
use runnel_storage::{FileSlice, StorageError};
use tokio::sync::Notify;

use super::{storage_error_code, topic_name};
use crate::context::{Operation, RequestContext, Resource};
use crate::fetch_session::{
    Answered, FetchContext, FetchParams, PartitionKey, TopicKey, Wanted, INVALID_SESSION_ID,
};
use crate::kafka_broker::KafkaBroker;
use runnel_core::partition::Partition;

/// Longest long poll we honour, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);
/// Largest decompressed batch ListOffsets will decode to find a record by timestamp.
const MAX_DECOMPRESSED_BATCH: usize = 64 * 1024 * 1024;

struct Slot {
    /// Index in the context's partitions.
    index: usize,
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
/// Fetch with each record set left in its segment file: the response holds stand-ins,
/// and the returned [`ExternalRecords`] the slices to send in their place.
pub async fn fetch_parts(
    broker: &KafkaBroker,
    asker: &RequestContext,
    req: m::FetchRequest,
    version: i16,
) -> (m::FetchResponse, ExternalRecords<FileSlice>) {
    let FetchSlices {
        mut response,
        slices,
    } = fetch_slices(broker, asker, req, version).await;
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

async fn fetch_slices(
    broker: &KafkaBroker,
    asker: &RequestContext,
    req: m::FetchRequest,
    version: i16,
) -> FetchSlices {
    let uses_topic_ids = version >= 13;
    let sessions = &broker.fetch_sessions;
    let (requested, forgotten) = request_partitions(broker, &req, uses_topic_ids);
    let ctx = sessions.new_context(
        uses_topic_ids,
        req.session_id,
        req.session_epoch,
        requested,
        forgotten,
        |id| {
            broker
                .topics()
                .by_id(id)
                .map(|m| Arc::from(m.name.as_str()))
        },
        broker.partition_count(),
        sessions.now_ms(),
    );
    if let FetchContext::SessionError(e) = &ctx {
        return FetchSlices {
            response: m::FetchResponse::default()
                .with_error_code(e.code())
                .with_session_id(INVALID_SESSION_ID),
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

    // Resolve partitions once. Unknown ones get their error in every round but, as in
    // Kafka, do not end the long poll; errors found reading a partition do.
    let wanted = ctx.wanted();
    let read_committed = req.isolation_level == 1;
    let mut answers: Vec<m::fetch_response::PartitionData> = Vec::with_capacity(wanted.len());
    let mut slots = Vec::new();
    let mut has_errors = false;
    let mut topic_ids = TopicIds::default();
    let mut readable = Readable::default();
    for (index, w) in wanted.iter().enumerate() {
        // Kafka lists aborted transactions only for read_committed (an empty list: there
        // are no transactions), null otherwise.
        let mut pd = m::fetch_response::PartitionData::default()
            .with_partition_index(w.key.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_aborted_transactions((req.isolation_level == 1).then(Vec::new))
            .with_records(Some(Bytes::new()));
        match resolve_partition(broker, asker, w, &mut topic_ids, &mut readable) {
            Ok(p) => slots.push(Slot {
                index,
                p,
                fetch_offset: w.params.fetch_offset,
                max_bytes: w.params.max_bytes,
            }),
            Err((code, ends_wait)) => {
                pd.error_code = code.code();
                has_errors |= ends_wait;
                // For a partition it does not have, Kafka lists no aborted transactions
                // (empty, not null) whatever the isolation level.
                if matches!(
                    code,
                    ResponseError::UnknownTopicOrPartition | ResponseError::UnknownTopicId
                ) {
                    pd.aborted_transactions = Some(Vec::new());
                }
            }
        }
        answers.push(pd);
    }

    // The slice each partition's last round found.
    let mut found: Vec<Option<FileSlice>> = vec![None; wanted.len()];
    let mut expired = false;
    loop {
        let waiter = Arc::new(Notify::new());
        // Register before reading so an append between the read and the wait wakes us.
        for s in &slots {
            s.p.add_waiter(&waiter);
        }
        let mut total = 0usize;
        let mut errors = has_errors;
        let (returned, reads) = read_round(slots, max_bytes, read_committed).await;
        slots = returned;
        for (s, read) in slots.iter().zip(reads) {
            let pd = &mut answers[s.index];
            pd.high_watermark = read.high_watermark;
            pd.last_stable_offset = read.last_stable_offset;
            pd.log_start_offset = read.log_start_offset;
            if read_committed {
                pd.aborted_transactions = Some(read.aborted);
            }
            match read.result {
                Ok(slice) => {
                    total += slice.as_ref().map_or(0, |s| s.len as usize);
                    // (read_round gave each partition what was left of max_bytes.)
                    pd.error_code = 0;
                    found[s.index] = slice;
                }
                Err(code) => {
                    // Kafka reports no offsets with a read error.
                    errors = true;
                    pd.error_code = code.code();
                    pd.high_watermark = -1;
                    pd.last_stable_offset = -1;
                    pd.log_start_offset = -1;
                    found[s.index] = None;
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

    // The session decides which partitions the response carries.
    let answered: Vec<Answered> = answers
        .iter()
        .zip(&found)
        .map(|(pd, slice)| Answered {
            records_len: slice.as_ref().map_or(0, |s| s.len as usize),
            high_watermark: pd.high_watermark,
            last_stable_offset: pd.last_stable_offset,
            log_start_offset: pd.log_start_offset,
            error: pd.error_code,
        })
        .collect();
    let outcome = sessions.finish(&ctx, &answered, sessions.now_ms());
    for s in &slots {
        if let (true, Some(slice)) = (outcome.include[s.index], &found[s.index]) {
            s.p.metrics.bytes_out(slice.len);
        }
    }
    // Consecutive partitions of a topic share its entry, as in Kafka's FetchResponse.of.
    let mut topics: Vec<m::fetch_response::FetchableTopicResponse> = Vec::new();
    let mut slices = Vec::new();
    let mut current: Option<&TopicKey> = None;
    for (index, (pd, w)) in answers.into_iter().zip(wanted).enumerate() {
        if !outcome.include[index] {
            continue;
        }
        if current != Some(&w.key.topic) {
            current = Some(&w.key.topic);
            let tr = m::fetch_response::FetchableTopicResponse::default();
            topics.push(match &w.key.topic {
                TopicKey::Id(id) => tr.with_topic_id(*id),
                TopicKey::Name(name) => tr.with_topic(topic_name(name)),
            });
        }
        let t = topics.len() - 1;
        if let Some(slice) = found[index].take() {
            slices.push((t, topics[t].partitions.len(), slice));
        }
        topics[t].partitions.push(pd);
    }
    FetchSlices {
        response: m::FetchResponse::default()
            .with_error_code(outcome.error)
            .with_session_id(outcome.session_id)
            .with_responses(topics),
        slices,
    }
}

/// The partitions a request names in `topics` and in `forgotten_topics_data`: by topic
/// id from v13, by name before.
fn request_partitions(
    broker: &KafkaBroker,
    req: &m::FetchRequest,
    uses_topic_ids: bool,
) -> (Vec<Wanted>, Vec<PartitionKey>) {
    let topic = |name: &m::TopicName, id: &uuid::Uuid| -> (TopicKey, Option<Arc<str>>) {
        if uses_topic_ids {
            let name = broker
                .topics()
                .by_id(id)
                .map(|m| Arc::from(m.name.as_str()));
            (TopicKey::Id(*id), name)
        } else {
            let name: Arc<str> = Arc::from(name.0.as_str());
            (TopicKey::Name(name.clone()), Some(name))
        }
    };
    let mut requested = Vec::with_capacity(req.topics.iter().map(|t| t.partitions.len()).sum());
    for t in &req.topics {
        let (key, name) = topic(&t.topic, &t.topic_id);
        for fp in &t.partitions {
            requested.push(Wanted {
                key: PartitionKey {
                    topic: key.clone(),
                    partition: fp.partition,
                },
                name: name.clone(),
                params: FetchParams {
                    fetch_offset: fp.fetch_offset,
                    log_start_offset: fp.log_start_offset,
                    max_bytes: fp.partition_max_bytes,
                    current_leader_epoch: fp.current_leader_epoch,
                },
            });
        }
    }
    let mut forgotten = Vec::new();
    for t in &req.forgotten_topics_data {
        let key = if uses_topic_ids {
            TopicKey::Id(t.topic_id)
        } else {
            TopicKey::Name(Arc::from(t.topic.0.as_str()))
        };
        for &partition in &t.partitions {
            forgotten.push(PartitionKey {
                topic: key.clone(),
                partition,
            });
        }
    }
    (requested, forgotten)
}

/// The current id of the last topic looked up, so a session's partitions of one topic
/// look the registry up once.
#[derive(Default)]
struct TopicIds {
    last: Option<(Arc<str>, Option<uuid::Uuid>)>,
}

impl TopicIds {
    fn get(&mut self, broker: &KafkaBroker, name: &Arc<str>) -> Option<uuid::Uuid> {
        match &self.last {
            Some((n, id)) if n == name => *id,
            _ => {
                let id = broker.topics().get(name).map(|m| m.id);
                self.last = Some((name.clone(), id));
                id
            }
        }
    }
}

/// The partition to read, or its error and whether that error ends a long poll (Kafka
/// answers at once for errors found reading, not for partitions it does not know).
/// Whether the last topic asked about may be read, so a fetch's partitions of one topic
/// are authorized once.
#[derive(Default)]
struct Readable {
    last: Option<(Arc<str>, bool)>,
}

impl Readable {
    fn get(&mut self, asker: &RequestContext, name: &Arc<str>) -> bool {
        match &self.last {
            Some((n, ok)) if n == name => *ok,
            _ => {
                let ok = asker.authorize(Operation::Read, Resource::Topic(name));
                self.last = Some((name.clone(), ok));
                ok
            }
        }
    }
}

fn resolve_partition(
    broker: &KafkaBroker,
    asker: &RequestContext,
    w: &Wanted,
    topic_ids: &mut TopicIds,
    readable: &mut Readable,
) -> Result<Arc<Partition>, (ResponseError, bool)> {
    let Some(name) = &w.name else {
        return Err((ResponseError::UnknownTopicId, false));
    };
    // Before existence, so a denied client learns nothing about the topic.
    if !readable.get(asker, name) {
        return Err((ResponseError::TopicAuthorizationFailed, false));
    }
    let Some(p) = broker.partition(name, w.key.partition) else {
        return Err((ResponseError::UnknownTopicOrPartition, false));
    };
    if p.is_offline() {
        return Err((ResponseError::KafkaStorageError, false));
    }
    if let TopicKey::Id(id) = &w.key.topic {
        // A session's topic deleted and created again under its name.
        if topic_ids.get(broker, name) != Some(*id) {
            return Err((ResponseError::InconsistentTopicId, true));
        }
    }
    // The leader epoch is always 0: a client that knows a later one is ahead of us
    // (Kafka: UNKNOWN_LEADER_EPOCH; FENCED_LEADER_EPOCH is for an older one).
    if w.params.current_leader_epoch > 0 {
        return Err((ResponseError::UnknownLeaderEpoch, true));
    }
    Ok(p)
}

/// One round of a fetch: read every partition in order, each limited by its own
/// `max_bytes` and by what is left of the request's. Finding batches preads their
/// headers, so a round with data to find runs off the runtime's workers; a round where
/// every partition is at its high watermark (a long poll's first look) touches no file
/// and runs here.
async fn read_round(
    slots: Vec<Slot>,
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<Slot>, Vec<PartitionRead>) {
    let read_all = move |slots: Vec<Slot>| {
        let mut total = 0usize;
        let reads: Vec<PartitionRead> = slots
            .iter()
            .map(|s| {
                let remaining = max_bytes.saturating_sub(total);
                let limit = (s.max_bytes.max(0) as usize).min(remaining);
                let read = read_partition(&s.p, s.fetch_offset, limit, total == 0, read_committed);
                if let Ok(Some(slice)) = &read.result {
                    total += slice.len as usize;
                }
                read
            })
            .collect();
        (slots, reads)
    };
    let touches_files = slots
        .iter()
        .any(|s| s.fetch_offset >= 0 && (s.fetch_offset as u64) < s.p.high_watermark());
    if !touches_files {
        return read_all(slots);
    }
    match tokio::task::spawn_blocking(move || read_all(slots)).await {
        Ok(done) => done,
        // The closure only reads; a panic there is a bug that must not hang the fetch:
        // it ends this fetch's task, and the connection closes. (A blocking task is
        // cancelled only at runtime shutdown.)
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("a fetch read was cancelled: {e}"),
        },
    }
}

/// What one partition's read found, with the offsets the response reports either way.
struct PartitionRead {
    result: Result<Option<FileSlice>, ResponseError>,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// For read_committed: the aborted transactions overlapping what was read.
    aborted: Vec<m::fetch_response::AbortedTransaction>,
}

/// Find whole batches at `offset` below the high watermark, or for read_committed
/// below the last stable offset (not read yet: the server sends them from the file).
/// `min_one`: return the first batch even if it is larger than `limit` (KIP-74), as for
/// the first partition with data.
fn read_partition(
    p: &Partition,
    offset: i64,
    limit: usize,
    min_one: bool,
    read_committed: bool,
) -> PartitionRead {
    let hw = p.high_watermark();
    let lso = p.last_stable_offset().min(hw);
    let log_start = match p.log_start_offset() {
        Ok(start) => start as i64,
        Err(e) => {
            return PartitionRead {
                result: Err(storage_error_code(&e)),
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                aborted: Vec::new(),
            }
        }
    };
    let answer = |result| PartitionRead {
        result,
        high_watermark: hw as i64,
        last_stable_offset: lso as i64,
        log_start_offset: log_start,
        aborted: Vec::new(),
    };
    let bound = if read_committed { lso } else { hw };
    if offset < 0 {
        return answer(Err(ResponseError::OffsetOutOfRange));
    }
    if !min_one && limit == 0 {
        return answer(Ok(None));
    }
    let read = match p.read(offset as u64, limit as u64, bound) {
        Ok(r) => r,
        Err(e @ StorageError::OffsetOutOfRange { .. }) => {
            return answer(Err(storage_error_code(&e)))
        }
        Err(e) => {
            tracing::error!(partition = %p.tp, error = %e, "fetch read failed");
            return answer(Err(storage_error_code(&e)));
        }
    };
    match read.slice {
        Some(slice) if !min_one && slice.len as usize > limit => answer(Ok(None)),
        None => answer(Ok(None)),
        Some(slice) if !read_committed => answer(Ok(Some(slice))),
        Some(slice) => {
            // The consumer drops the records of these; the list may reach past what
            // this response holds (up to the LSO), which it ignores.
            match p.aborted_transactions(offset as u64, lso) {
                Ok(list) => PartitionRead {
                    aborted: list
                        .iter()
                        .map(|t| {
                            m::fetch_response::AbortedTransaction::default()
                                .with_producer_id(m::ProducerId(t.producer_id))
                                .with_first_offset(t.first_offset as i64)
                        })
                        .collect(),
                    ..answer(Ok(Some(slice)))
                },
                Err(e) => {
                    tracing::error!(partition = %p.tp, error = %e, "reading the transaction index failed");
                    answer(Err(storage_error_code(&e)))
                }
            }
        }
    }
}

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// ListOffsets. A lookup by timestamp reads index and segment files: blocking.
pub fn list_offsets(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::ListOffsetsRequest,
    version: i16,
) -> m::ListOffsetsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let allowed = ctx.authorize(Operation::Describe, Resource::Topic(&t.name.0));
            let partitions = t
                .partitions
                .iter()
                .map(|lp| {
                    let base = m::list_offsets_response::ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    if !allowed {
                        return base
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(p) = broker.partition(&t.name.0, lp.partition_index) else {
                        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if p.is_offline() {
                        return base.with_error_code(ResponseError::KafkaStorageError.code());
                    }
                    if lp.current_leader_epoch > 0 {
                        return base.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                    }
                    match list_offset(&p, lp.timestamp, req.isolation_level == 1) {
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

/// (offset, timestamp) for a ListOffsets query, bounded by the high watermark (the last
/// stable offset for read_committed).
fn list_offset(
    p: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), ResponseError> {
    let hw = p.read_bound(read_committed) as i64;
    let log_start = p.log_start_offset().map_err(|e| storage_error_code(&e))? as i64;
    let hit = match timestamp {
        EARLIEST | EARLIEST_LOCAL => return Ok((log_start, -1)),
        LATEST => return Ok((hw, -1)),
        MAX_TIMESTAMP => p.max_timestamp(),
        t if t >= 0 => p.find_timestamp(t),
        _ => return Err(ResponseError::UnsupportedVersion),
    }
    .map_err(|e| storage_error_code(&e))?;
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
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::OffsetForLeaderEpochRequest,
) -> m::OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let allowed = ctx.authorize(Operation::Describe, Resource::Topic(&t.topic.0));
            let partitions = t
                .partitions
                .iter()
                .map(|op| {
                    let base = m::offset_for_leader_epoch_response::EpochEndOffset::default()
                        .with_partition(op.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if !allowed {
                        return base
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(p) = broker.partition(&t.topic.0, op.partition) else {
                        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if p.is_offline() {
                        return base.with_error_code(ResponseError::KafkaStorageError.code());
                    }
                    if op.current_leader_epoch > 0 {
                        return base.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                    }
                    match p.end_offset_for_epoch(op.leader_epoch) {
                        Ok((epoch, end)) => base.with_leader_epoch(epoch).with_end_offset(end),
                        Err(e) => base.with_error_code(storage_error_code(&e).code()),
                    }
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
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::DeleteRecordsRequest,
) -> m::DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let allowed = ctx.authorize(Operation::Delete, Resource::Topic(&t.name.0));
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for dp in &t.partitions {
            let base = m::delete_records_response::DeleteRecordsPartitionResult::default()
                .with_partition_index(dp.partition_index)
                .with_low_watermark(-1);
            if !allowed {
                partitions
                    .push(base.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                continue;
            }
            let Some(p) = broker.partition(&t.name.0, dp.partition_index) else {
                partitions
                    .push(base.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            if p.is_offline() {
                partitions.push(base.with_error_code(ResponseError::KafkaStorageError.code()));
                continue;
            }
            let hw = p.high_watermark() as i64;
            let target = if dp.offset == -1 { hw } else { dp.offset };
            if target < 0 || target > hw {
                partitions.push(base.with_error_code(ResponseError::OffsetOutOfRange.code()));
                continue;
            }
            let result =
                tokio::task::spawn_blocking(move || p.delete_records_before(target as u64)).await;
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
