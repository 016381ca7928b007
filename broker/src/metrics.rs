//! Prometheus metrics: counters updated on the request paths, gauges computed at scrape
//! time, and a small HTTP responder for `GET /metrics` (`metrics.listener`, default
//! `127.0.0.1:9644`; empty disables it).
//!
//! Hot-path cost: a request adds to three atomics of its API's slot (histogram bucket,
//! sum, and an error counter only on errors), found by indexing a table with the API key;
//! a produce or fetch adds to two atomics of the partition it already resolved
//! ([`PartitionMetrics`]). No lock and no map lookup per request. Everything else (topic
//! sizes, offsets, consumer lag) is read from the broker's state when scraped.
//!
//! The text encoder is ours rather than the `prometheus-client` crate: every family
//! whose labels come from broker state (topics, partitions, groups) is a gauge or counter
//! computed at scrape time, which that crate would have us re-register into a fresh
//! registry per scrape; the exposition format 0.0.4 itself is a few lines of `write!`
//! (`# HELP`, `# TYPE`, `name{label="value"} number`, label values escaped).
//!
//! The HTTP side is a tiny tokio responder instead of `hyper`: one route, no keep-alive,
//! no request body; a bounded head read with a timeout, then one response and close.
//! `hyper` would add a dependency tree for no feature we use.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runnel_protocol::api::{messages as m, ApiKey, ResponseBody, SUPPORTED_APIS};
use runnel_protocol::record_batch::{BatchHeader, BATCH_HEADER_LEN};
use runnel_protocol::records::batch_records;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::broker::Broker;
use crate::fetch_session::RequestKind;
use crate::partition::Partition;

// ---------------------------------------------------------------------------------------
// Histograms and counters
// ---------------------------------------------------------------------------------------

/// Upper bounds of the latency buckets, in microseconds (50 µs to 30 s, the longest
/// fetch long poll); the last bucket is +Inf.
const BOUNDS_MICROS: [u64; 18] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];
const BUCKETS: usize = BOUNDS_MICROS.len() + 1;

/// A latency histogram of atomics: per-bucket (not cumulative) counts and the sum in
/// microseconds. The count is the sum of the buckets, so an observation is two adds.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_MICROS.partition_point(|b| *b < micros);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// (cumulative bucket counts, sum in seconds); the last bucket is the count.
    fn snapshot(&self) -> ([u64; BUCKETS], f64) {
        let mut cumulative = [0u64; BUCKETS];
        let mut total = 0u64;
        for (c, b) in cumulative.iter_mut().zip(&self.buckets) {
            total += b.load(Ordering::Relaxed);
            *c = total;
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, sum)
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}

/// Group-commit fsync latency, process-wide: every partition's flusher (user topics and
/// `__consumer_offsets`) records here, so the series never goes down when a topic is
/// deleted.
pub static FSYNC_SECONDS: Histogram = Histogram::new();

/// Per-partition traffic counters, held in the [`Partition`] the produce and fetch
/// handlers resolve anyway; scrapes sum them per topic.
#[derive(Default)]
pub struct PartitionMetrics {
    inbound: Traffic,
    outbound_bytes: BytesOut,
}

/// Bytes and records one way, on a cache line of their own: producers and fetchers of
/// a partition run on different threads, and neither should invalidate the line of
/// the partition's other hot fields.
#[derive(Default)]
#[repr(align(64))]
struct Traffic {
    bytes: AtomicU64,
    records: AtomicU64,
}

#[derive(Default)]
#[repr(align(64))]
struct BytesOut(AtomicU64);

impl PartitionMetrics {
    /// A produced batch was appended (not a duplicate).
    pub fn record_in(&self, bytes: usize, records: u64) {
        self.inbound
            .bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.inbound.records.fetch_add(records, Ordering::Relaxed);
    }

    /// `bytes` of whole batches went out in a fetch response. Only bytes, as in
    /// Kafka (BytesOutPerSec): the server sends them from the file without reading
    /// them, so it does not know how many records they hold.
    pub fn bytes_out(&self, bytes: u64) {
        self.outbound_bytes.0.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Request metrics of one API. Aligned to a cache line so that connections busy with
/// different APIs do not share one.
#[repr(align(64))]
struct ApiStats {
    name: String,
    /// Completed requests whose response carries a nonzero error code.
    error_responses: AtomicU64,
    /// Requests that ended the connection instead of getting a response (undecodable,
    /// unsupported version, encoding failure, handler panic), and bad frames.
    closed: AtomicU64,
    /// Time from decoding the request to its response being ready.
    latency: Histogram,
}

/// The server's request and connection metrics. Slot `SUPPORTED_APIS.len()` is for
/// requests whose API is unknown or unsupported.
pub struct ServerMetrics {
    apis: Vec<ApiStats>,
    /// API key → slot.
    slot_of: [u8; 128],
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    active: Arc<AtomicUsize>,
}

/// A request's API slot, looked up once when it is decoded.
#[derive(Clone, Copy, Debug)]
pub struct ApiSlot(usize);

impl ServerMetrics {
    pub fn new(active_connections: Arc<AtomicUsize>) -> ServerMetrics {
        let unknown = SUPPORTED_APIS.len();
        let mut slot_of = [unknown as u8; 128];
        let mut apis = Vec::with_capacity(unknown + 1);
        for (i, (key, _, _)) in SUPPORTED_APIS.iter().enumerate() {
            if let Some(s) = slot_of.get_mut(*key as i16 as usize) {
                *s = i as u8;
            }
            apis.push(ApiStats::new(format!("{key:?}")));
        }
        apis.push(ApiStats::new("Unknown".to_string()));
        ServerMetrics {
            apis,
            slot_of,
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            active: active_connections,
        }
    }

    pub fn slot(&self, key: ApiKey) -> ApiSlot {
        self.slot_raw(key as i16)
    }

    pub fn slot_raw(&self, key: i16) -> ApiSlot {
        let unknown = self.apis.len() - 1;
        ApiSlot(
            usize::try_from(key)
                .ok()
                .and_then(|k| self.slot_of.get(k))
                .map_or(unknown, |s| *s as usize),
        )
    }

    /// A request finished: `error` if its response carries a nonzero error code (or
    /// could not be encoded).
    pub fn completed(&self, slot: ApiSlot, started: Instant, error: bool) {
        if let Some(s) = self.apis.get(slot.0) {
            s.latency.observe(started.elapsed());
            if error {
                s.error_responses.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A request (or a frame that was not one) closed the connection.
    pub fn closed_connection(&self, slot: Option<ApiSlot>) {
        let i = slot.map_or(self.apis.len() - 1, |s| s.0);
        if let Some(s) = self.apis.get(i) {
            s.closed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl ApiStats {
    fn new(name: String) -> ApiStats {
        ApiStats {
            name,
            error_responses: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            latency: Histogram::new(),
        }
    }
}

/// Whether a fetch response carries an error, top-level or for a partition.
pub fn fetch_has_error(r: &m::FetchResponse) -> bool {
    r.error_code != 0
        || r.responses
            .iter()
            .any(|t| t.partitions.iter().any(|p| p.error_code != 0))
}

/// Whether a response carries a nonzero error code anywhere (top level, per topic, per
/// partition, per group or member).
pub fn response_has_error(body: &ResponseBody) -> bool {
    fn any<T>(items: &[T], f: impl Fn(&T) -> bool) -> bool {
        items.iter().any(f)
    }
    match body {
        ResponseBody::ApiVersions(r) => r.error_code != 0,
        ResponseBody::Metadata(r) => any(&r.topics, |t| {
            t.error_code != 0 || any(&t.partitions, |p| p.error_code != 0)
        }),
        ResponseBody::Produce(r) => any(&r.responses, |t| {
            any(&t.partition_responses, |p| p.error_code != 0)
        }),
        ResponseBody::Fetch(r) => fetch_has_error(r),
        ResponseBody::ListOffsets(r) => {
            any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseBody::OffsetForLeaderEpoch(r) => {
            any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseBody::CreateTopics(r) => any(&r.topics, |t| t.error_code != 0),
        ResponseBody::DeleteTopics(r) => any(&r.responses, |t| t.error_code != 0),
        ResponseBody::CreatePartitions(r) => any(&r.results, |t| t.error_code != 0),
        ResponseBody::DescribeConfigs(r) => any(&r.results, |t| t.error_code != 0),
        ResponseBody::AlterConfigs(r) => any(&r.responses, |t| t.error_code != 0),
        ResponseBody::IncrementalAlterConfigs(r) => any(&r.responses, |t| t.error_code != 0),
        ResponseBody::DeleteRecords(r) => {
            any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseBody::DescribeCluster(r) => r.error_code != 0,
        ResponseBody::DescribeLogDirs(r) => {
            r.error_code != 0 || any(&r.results, |d| d.error_code != 0)
        }
        ResponseBody::InitProducerId(r) => r.error_code != 0,
        ResponseBody::FindCoordinator(r) => {
            r.error_code != 0 || any(&r.coordinators, |c| c.error_code != 0)
        }
        ResponseBody::JoinGroup(r) => r.error_code != 0,
        ResponseBody::SyncGroup(r) => r.error_code != 0,
        ResponseBody::Heartbeat(r) => r.error_code != 0,
        ResponseBody::LeaveGroup(r) => r.error_code != 0 || any(&r.members, |m| m.error_code != 0),
        ResponseBody::OffsetCommit(r) => {
            any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseBody::OffsetFetch(r) => {
            r.error_code != 0
                || any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
                || any(&r.groups, |g| {
                    g.error_code != 0
                        || any(&g.topics, |t| any(&t.partitions, |p| p.error_code != 0))
                })
        }
        ResponseBody::DescribeGroups(r) => any(&r.groups, |g| g.error_code != 0),
        ResponseBody::ListGroups(r) => r.error_code != 0,
        ResponseBody::DeleteGroups(r) => any(&r.results, |g| g.error_code != 0),
        ResponseBody::OffsetDelete(r) => {
            r.error_code != 0 || any(&r.topics, |t| any(&t.partitions, |p| p.error_code != 0))
        }
        ResponseBody::ConsumerGroupHeartbeat(r) => r.error_code != 0,
        ResponseBody::ConsumerGroupDescribe(r) => any(&r.groups, |g| g.error_code != 0),
        ResponseBody::DescribeTopicPartitions(r) => any(&r.topics, |t| {
            t.error_code != 0 || any(&t.partitions, |p| p.error_code != 0)
        }),
        ResponseBody::DescribeAcls(r) => r.error_code != 0,
        ResponseBody::CreateAcls(r) => any(&r.results, |c| c.error_code != 0),
        ResponseBody::DeleteAcls(r) => any(&r.filter_results, |f| f.error_code != 0),
    }
}

// ---------------------------------------------------------------------------------------
// Scrape
// ---------------------------------------------------------------------------------------

/// What a scrape reads: the broker, the server's counters, and the consumer-lag
/// timestamp cache.
pub struct Exporter {
    broker: Arc<Broker>,
    server: Arc<ServerMetrics>,
    /// (topic, partition, offset) → timestamp (ms) of the record at that offset. Kept
    /// from one scrape to the next for the offsets still committed, so a scrape reads
    /// the log only for offsets that moved.
    lag_cache: Mutex<HashMap<(String, i32, u64), i64>>,
}

/// Largest batch read to find the exact timestamp of a record in its middle; past it,
/// the batch's first timestamp stands in (an upper bound on the lag).
const MAX_LAG_BATCH_READ: u64 = 1 << 20;
const MAX_LAG_DECOMPRESSED: usize = 8 << 20;

/// The partitions a scrape saw, by (topic, index), with their log start offsets.
type PartitionsSeen = HashMap<(String, i32), (Arc<Partition>, u64)>;

struct TopicSnapshot {
    name: String,
    partitions: i32,
    size_bytes: u64,
    bytes_in: u64,
    records_in: u64,
    bytes_out: u64,
    /// (index, log start, log end, high watermark, producers with state)
    offsets: Vec<(i32, u64, u64, u64, u64)>,
}

impl Exporter {
    pub fn new(broker: Arc<Broker>, server: Arc<ServerMetrics>) -> Exporter {
        Exporter {
            broker,
            server,
            lag_cache: Mutex::new(HashMap::new()),
        }
    }

    /// The exposition text (format 0.0.4). Blocking: it locks partition logs and may
    /// read a batch header from disk for consumer lag; run it off the async workers.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_requests(&mut out);
        self.render_fetch_sessions(&mut out);
        let (topics, partitions) = self.snapshot_topics();
        render_topics(&mut out, &topics);
        self.render_lag(&mut out, &partitions);
        let (buckets, sum) = FSYNC_SECONDS.snapshot();
        family(
            &mut out,
            "runnel_fsync_duration_seconds",
            "Duration of group-commit fsyncs of partition logs.",
            "histogram",
        );
        histogram(
            &mut out,
            "runnel_fsync_duration_seconds",
            &[],
            &buckets,
            sum,
        );
        out
    }

    fn render_requests(&self, out: &mut String) {
        let s = &self.server;
        let used: Vec<&ApiStats> = s
            .apis
            .iter()
            .filter(|a| a.latency.count() > 0 || a.closed.load(Ordering::Relaxed) > 0)
            .collect();
        family(
            out,
            "runnel_requests_total",
            "Requests received, by API (including those that closed the connection).",
            "counter",
        );
        for a in &used {
            let n = a.latency.count() + a.closed.load(Ordering::Relaxed);
            sample(out, "runnel_requests_total", &[("api", &a.name)], n);
        }
        family(
            out,
            "runnel_request_errors_total",
            "Requests answered with a nonzero error code, or that closed the connection.",
            "counter",
        );
        for a in &used {
            let n = a.error_responses.load(Ordering::Relaxed) + a.closed.load(Ordering::Relaxed);
            sample(out, "runnel_request_errors_total", &[("api", &a.name)], n);
        }
        family(
            out,
            "runnel_request_duration_seconds",
            "Time from a request being decoded to its response being ready.",
            "histogram",
        );
        for a in &used {
            let (buckets, sum) = a.latency.snapshot();
            histogram(
                out,
                "runnel_request_duration_seconds",
                &[("api", &a.name)],
                &buckets,
                sum,
            );
        }
        family(
            out,
            "runnel_connections_active",
            "Open client connections.",
            "gauge",
        );
        sample(
            out,
            "runnel_connections_active",
            &[],
            s.active.load(Ordering::Relaxed) as u64,
        );
        family(
            out,
            "runnel_connections_accepted_total",
            "Client connections accepted.",
            "counter",
        );
        sample(
            out,
            "runnel_connections_accepted_total",
            &[],
            s.connections_accepted.load(Ordering::Relaxed),
        );
        family(
            out,
            "runnel_connections_refused_total",
            "Client connections closed at once for going over max.connections.",
            "counter",
        );
        sample(
            out,
            "runnel_connections_refused_total",
            &[],
            s.connections_refused.load(Ordering::Relaxed),
        );
    }

    /// The fetch session cache, with Kafka's `FetchSessionCache` metrics under our names.
    fn render_fetch_sessions(&self, out: &mut String) {
        let cache = &self.broker.fetch_sessions;
        family(
            out,
            "runnel_incremental_fetch_sessions",
            "Fetch sessions in the cache (Kafka's NumIncrementalFetchSessions).",
            "gauge",
        );
        sample(
            out,
            "runnel_incremental_fetch_sessions",
            &[],
            cache.len() as u64,
        );
        family(
            out,
            "runnel_incremental_fetch_partitions_cached",
            "Partitions held by all fetch sessions (Kafka's NumIncrementalFetchPartitionsCached).",
            "gauge",
        );
        sample(
            out,
            "runnel_incremental_fetch_partitions_cached",
            &[],
            cache.partitions_cached() as u64,
        );
        family(
            out,
            "runnel_incremental_fetch_session_evictions_total",
            "Fetch sessions evicted to make room for new ones (Kafka's IncrementalFetchSessionEvictionsPerSec).",
            "counter",
        );
        sample(
            out,
            "runnel_incremental_fetch_session_evictions_total",
            &[],
            cache.evictions(),
        );
        family(
            out,
            "runnel_fetch_requests_total",
            "Fetch requests by session kind: sessionless (epoch -1), full (epoch 0), incremental, or refused with a session error.",
            "counter",
        );
        for (kind, name) in [
            (RequestKind::Sessionless, "sessionless"),
            (RequestKind::Full, "full"),
            (RequestKind::Incremental, "incremental"),
            (RequestKind::Error, "session_error"),
        ] {
            sample(
                out,
                "runnel_fetch_requests_total",
                &[("session", name)],
                cache.requests(kind),
            );
        }
    }

    /// Per topic: counters summed over partitions, sizes and offsets. Locks each
    /// partition's log briefly, one at a time.
    fn snapshot_topics(&self) -> (Vec<TopicSnapshot>, PartitionsSeen) {
        let metas: Vec<(String, i32)> = self
            .broker
            .topics()
            .all()
            .map(|m| (m.name.clone(), m.partitions))
            .collect();
        let mut topics = Vec::with_capacity(metas.len());
        let mut parts = HashMap::new();
        for (name, n) in metas {
            let mut t = TopicSnapshot {
                name: name.clone(),
                partitions: n,
                size_bytes: 0,
                bytes_in: 0,
                records_in: 0,
                bytes_out: 0,
                offsets: Vec::with_capacity(n.max(0) as usize),
            };
            for i in 0..n {
                let Some(p) = self.broker.partition(&name, i) else {
                    continue;
                };
                let m = &p.metrics;
                t.bytes_in += m.inbound.bytes.load(Ordering::Relaxed);
                t.records_in += m.inbound.records.load(Ordering::Relaxed);
                t.bytes_out += m.outbound_bytes.0.load(Ordering::Relaxed);
                // An offline partition has no offsets to report.
                let Ok(o) = p.offsets() else { continue };
                let (start, end, size) = (o.log_start_offset, o.log_end_offset, o.size_bytes);
                t.size_bytes += size;
                let producers = p.producer_count() as u64;
                t.offsets
                    .push((i, start, end, p.high_watermark(), producers));
                parts.insert((name.clone(), i), (p, start));
            }
            topics.push(t);
        }
        (topics, parts)
    }

    fn render_lag(&self, out: &mut String, parts: &PartitionsSeen) {
        let committed = self.broker.groups.committed_offsets();
        let now = runnel_storage::now_ms();
        // A cache: after a panic it is cleared and refilled.
        let mut cache = self.lag_cache.lock().unwrap_or_else(|p| {
            let mut cache = p.into_inner();
            cache.clear();
            cache
        });
        let mut next_cache = HashMap::with_capacity(cache.len());
        // (group, topic, partition, lag messages, lag seconds)
        let mut rows: Vec<(&str, &str, i32, u64, Option<f64>)> = Vec::new();
        for (group, topic, partition, offset) in &committed {
            let Some((p, log_start)) = parts.get(&(topic.clone(), *partition)) else {
                continue;
            };
            if *offset < 0 {
                continue;
            }
            let offset = *offset as u64;
            let hw = p.high_watermark();
            let lag = hw.saturating_sub(offset);
            let seconds = if lag == 0 {
                Some(0.0)
            } else {
                // Records below the log start are gone: the oldest unconsumed one left
                // is the first in the log.
                let offset = offset.max(*log_start);
                let key = (topic.clone(), *partition, offset);
                let ts = match cache.remove(&key).or_else(|| next_cache.get(&key).copied()) {
                    Some(ts) => Some(ts),
                    None => record_timestamp(p, offset),
                };
                if let Some(ts) = ts {
                    next_cache.insert(key, ts);
                }
                ts.map(|ts| (now.saturating_sub(ts)).max(0) as f64 / 1000.0)
            };
            rows.push((group, topic, *partition, lag, seconds));
        }
        *cache = next_cache;
        drop(cache);
        family(
            out,
            "runnel_consumer_group_lag_messages",
            "High watermark minus the group's committed offset.",
            "gauge",
        );
        for (g, t, p, lag, _) in &rows {
            let p = p.to_string();
            sample(
                out,
                "runnel_consumer_group_lag_messages",
                &[("group", g), ("topic", t), ("partition", &p)],
                *lag,
            );
        }
        family(
            out,
            "runnel_consumer_group_lag_seconds",
            "Age of the oldest unconsumed record: now minus the timestamp of the record at the committed offset (0 without lag).",
            "gauge",
        );
        for (g, t, p, _, secs) in &rows {
            let Some(secs) = secs else { continue };
            let p = p.to_string();
            sample_f64(
                out,
                "runnel_consumer_group_lag_seconds",
                &[("group", g), ("topic", t), ("partition", &p)],
                *secs,
            );
        }
    }
}

/// The timestamp of the record at `offset` (or of the first record after it, if it is
/// gone): from the batch header alone when the offset starts its batch or the batch uses
/// LogAppendTime, otherwise by decoding the batch (bounded in size).
fn record_timestamp(p: &Partition, offset: u64) -> Option<i64> {
    let hw = p.high_watermark();
    let slice = p
        .read(offset.max(p.log_start_offset().ok()?), 1, hw)
        .ok()?
        .slice?;
    if slice.len < BATCH_HEADER_LEN as u64 {
        return None;
    }
    let mut head = [0u8; BATCH_HEADER_LEN];
    slice.file.read_exact_at(&mut head, slice.position).ok()?;
    let h = BatchHeader::parse_fixed(&head).ok()?;
    if h.is_log_append_time() {
        return Some(h.max_timestamp);
    }
    let len = (h.total_len() as u64).min(slice.len);
    if offset <= h.base_offset.max(0) as u64 || len > MAX_LAG_BATCH_READ {
        return Some(h.base_timestamp);
    }
    let mut buf = vec![0u8; len as usize];
    if slice.file.read_exact_at(&mut buf, slice.position).is_err() {
        return Some(h.base_timestamp);
    }
    let Ok(decoded) = batch_records(&buf, MAX_LAG_DECOMPRESSED) else {
        return Some(h.base_timestamp);
    };
    for r in decoded.records() {
        let Ok(r) = r else { break };
        if decoded.offset(&r) >= offset as i64 {
            return Some(decoded.timestamp(&r));
        }
    }
    Some(h.base_timestamp)
}

fn render_topics(out: &mut String, topics: &[TopicSnapshot]) {
    type Get = fn(&TopicSnapshot) -> u64;
    let per_topic: [(&str, &str, &str, Get); 5] = [
        (
            "runnel_topic_partitions",
            "Partitions of the topic.",
            "gauge",
            |t| t.partitions.max(0) as u64,
        ),
        (
            "runnel_topic_log_size_bytes",
            "Bytes of the topic's segment files on disk.",
            "gauge",
            |t| t.size_bytes,
        ),
        (
            "runnel_topic_bytes_in_total",
            "Bytes of record batches produced and appended.",
            "counter",
            |t| t.bytes_in,
        ),
        (
            "runnel_topic_records_in_total",
            "Records produced and appended.",
            "counter",
            |t| t.records_in,
        ),
        (
            "runnel_topic_bytes_out_total",
            "Bytes of record batches sent in fetch responses.",
            "counter",
            |t| t.bytes_out,
        ),
    ];
    for (name, help, kind, get) in per_topic {
        family(out, name, help, kind);
        for t in topics {
            sample(out, name, &[("topic", &t.name)], get(t));
        }
    }
    type GetOffset = fn(&(i32, u64, u64, u64, u64)) -> u64;
    let per_partition: [(&str, &str, GetOffset); 4] = [
        (
            "runnel_partition_log_start_offset",
            "First offset in the partition's log.",
            |o| o.1,
        ),
        (
            "runnel_partition_log_end_offset",
            "Offset the next appended record gets.",
            |o| o.2,
        ),
        (
            "runnel_partition_high_watermark",
            "Offset up to which records are visible to consumers (fsynced unless write.caching).",
            |o| o.3,
        ),
        (
            "runnel_partition_producers",
            "Idempotent producer ids with state in the partition (forgotten after producer.id.expiration.ms idle).",
            |o| o.4,
        ),
    ];
    for (name, help, get) in per_partition {
        family(out, name, help, "gauge");
        for t in topics {
            for o in &t.offsets {
                let p = o.0.to_string();
                sample(out, name, &[("topic", &t.name), ("partition", &p)], get(o));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Text format 0.0.4
// ---------------------------------------------------------------------------------------

fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn labels(out: &mut String, labels: &[(&str, &str)], extra: Option<(&str, &str)>) {
    if labels.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(extra) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn sample(out: &mut String, name: &str, l: &[(&str, &str)], value: u64) {
    out.push_str(name);
    labels(out, l, None);
    let _ = writeln!(out, " {value}");
}

fn sample_f64(out: &mut String, name: &str, l: &[(&str, &str)], value: f64) {
    out.push_str(name);
    labels(out, l, None);
    let _ = writeln!(out, " {value}");
}

fn histogram(out: &mut String, name: &str, l: &[(&str, &str)], buckets: &[u64; BUCKETS], sum: f64) {
    for (i, count) in buckets.iter().enumerate() {
        let le = match BOUNDS_MICROS.get(i) {
            Some(b) => (*b as f64 / 1e6).to_string(),
            None => "+Inf".to_string(),
        };
        let _ = write!(out, "{name}_bucket");
        labels(out, l, Some(("le", &le)));
        let _ = writeln!(out, " {count}");
    }
    let _ = write!(out, "{name}_sum");
    labels(out, l, None);
    let _ = writeln!(out, " {sum}");
    let _ = write!(out, "{name}_count");
    labels(out, l, None);
    let _ = writeln!(out, " {}", buckets[BUCKETS - 1]);
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

/// Largest request head we read; more is answered 431 and the connection closed.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client has to send its request head, and we to send the response.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrape connections served at once; more are closed at once.
const MAX_HTTP_CONNECTIONS: usize = 16;

/// Bind `metrics.listener`. `Ok(None)` when disabled, or when the default address is
/// taken (logged: another broker on this host has it; the broker runs without metrics).
/// A configured address that cannot be bound is an error, as for `listeners`.
pub async fn bind(config: &crate::BrokerConfig) -> std::io::Result<Option<TcpListener>> {
    let Some(addr) = config.metrics_listener else {
        tracing::info!("metrics are disabled (metrics.listener is empty)");
        return Ok(None);
    };
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if !config.metrics_listener_configured => {
            tracing::error!(%addr, error = %e, "cannot bind the default metrics.listener; running without metrics (set metrics.listener to another address, or empty to disable)");
            Ok(None)
        }
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("binding metrics.listener {addr}: {e}"),
        )),
    }
}

/// Serve `GET /metrics` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    exporter: Arc<Exporter>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many metrics connections; closing");
            continue;
        };
        let exporter = exporter.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let outcome =
                tokio::time::timeout(HTTP_TIMEOUT, http_connection(stream, exporter)).await;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "metrics connection failed"),
                Err(_) => tracing::debug!(%peer, "metrics connection timed out"),
            }
        });
    }
}

enum Head {
    Complete(usize),
    TooLarge,
    Closed,
}

async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Head> {
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_head_end(buf) {
            return Ok(Head::Complete(end));
        }
        if buf.len() >= MAX_REQUEST_HEAD {
            return Ok(Head::TooLarge);
        }
        let want = (MAX_REQUEST_HEAD - buf.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some(i);
    }
    buf.windows(2).position(|w| w == b"\n\n")
}

async fn http_connection(mut stream: TcpStream, exporter: Arc<Exporter>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head = match read_head(&mut stream, &mut buf).await? {
        Head::Complete(end) => &buf[..end],
        Head::TooLarge => {
            return respond(
                &mut stream,
                431,
                "Request Header Fields Too Large",
                "text/plain",
                b"request head too large\n",
                true,
            )
            .await;
        }
        Head::Closed => return Ok(()),
    };
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if v.starts_with("HTTP/1.") => (m, t),
        _ => {
            return respond(
                &mut stream,
                400,
                "Bad Request",
                "text/plain",
                b"bad request\n",
                true,
            )
            .await
        }
    };
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return respond(
            &mut stream,
            404,
            "Not Found",
            "text/plain",
            b"not found; try /metrics\n",
            true,
        )
        .await;
    }
    let with_body = match method {
        "GET" => true,
        "HEAD" => false,
        _ => {
            return respond(
                &mut stream,
                405,
                "Method Not Allowed",
                "text/plain",
                b"only GET and HEAD\n",
                true,
            )
            .await;
        }
    };
    let text = tokio::task::spawn_blocking(move || exporter.render())
        .await
        .map_err(std::io::Error::other)?;
    respond(
        &mut stream,
        200,
        "OK",
        "text/plain; version=0.0.4; charset=utf-8",
        text.as_bytes(),
        with_body,
    )
    .await
}

async fn respond(
    stream: &mut TcpStream,
    code: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        body.len(),
        if code == 405 { "Allow: GET, HEAD\r\n" } else { "" },
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(body).await?;
    }
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(51));
        h.observe(Duration::from_secs(100));
        let (b, sum) = h.snapshot();
        assert_eq!(b[0], 2, "le=0.00005 holds 10 µs and 50 µs");
        assert_eq!(b[1], 3);
        assert_eq!(b[BUCKETS - 2], 3);
        assert_eq!(b[BUCKETS - 1], 4);
        assert!((sum - 100.000111).abs() < 1e-9);
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "x", &[("group", "a\"b\\c\nd")], 1);
        assert_eq!(out, "x{group=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn api_slots() {
        let m = ServerMetrics::new(Arc::new(AtomicUsize::new(0)));
        let produce = m.slot(ApiKey::Produce);
        assert_eq!(m.apis[produce.0].name, "Produce");
        assert_eq!(m.slot_raw(-1).0, m.apis.len() - 1);
        assert_eq!(m.slot_raw(1000).0, m.apis.len() - 1);
    }

    #[test]
    fn errors_anywhere_in_a_response_count() {
        use kafka_protocol::messages as km;
        let ok = km::ProduceResponse::default().with_responses(vec![
            km::produce_response::TopicProduceResponse::default().with_partition_responses(vec![
                km::produce_response::PartitionProduceResponse::default(),
            ]),
        ]);
        assert!(!response_has_error(&ok.clone().into()));
        let mut bad = ok;
        bad.responses[0].partition_responses[0].error_code = 3;
        assert!(response_has_error(&bad.into()));
        let hb = km::HeartbeatResponse::default().with_error_code(27);
        assert!(response_has_error(&hb.into()));
    }
}
