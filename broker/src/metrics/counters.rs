//! The counters updated on the request paths: latency histograms and error counts per
//! API slot, bytes and records per partition, and the fsync latency histogram. Atomics
//! only: no lock and no map lookup per request.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_protocol::api::{messages as m, ApiKey, ResponseBody, SUPPORTED_APIS};

/// Upper bounds of the latency buckets, in microseconds (50 µs to 30 s, the longest
/// fetch long poll); the last bucket is +Inf.
pub(super) const BOUNDS_MICROS: [u64; 18] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];
pub(super) const BUCKETS: usize = BOUNDS_MICROS.len() + 1;

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
    pub(super) fn snapshot(&self) -> ([u64; BUCKETS], f64) {
        let mut cumulative = [0u64; BUCKETS];
        let mut total = 0u64;
        for (c, b) in cumulative.iter_mut().zip(&self.buckets) {
            total += b.load(Ordering::Relaxed);
            *c = total;
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, sum)
    }

    pub(super) fn count(&self) -> u64 {
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
    pub(super) inbound: Traffic,
    pub(super) outbound_bytes: BytesOut,
}

/// Bytes and records one way, on a cache line of their own: producers and fetchers of
/// a partition run on different threads, and neither should invalidate the line of
/// the partition's other hot fields.
#[derive(Default)]
#[repr(align(64))]
pub(super) struct Traffic {
    pub(super) bytes: AtomicU64,
    pub(super) records: AtomicU64,
}

#[derive(Default)]
#[repr(align(64))]
pub(super) struct BytesOut(pub(super) AtomicU64);

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
pub(super) struct ApiStats {
    pub(super) name: String,
    /// Completed requests whose response carries a nonzero error code.
    pub(super) error_responses: AtomicU64,
    /// Requests that ended the connection instead of getting a response (undecodable,
    /// unsupported version, encoding failure, handler panic), and bad frames.
    pub(super) closed: AtomicU64,
    /// Time from decoding the request to its response being ready.
    pub(super) latency: Histogram,
}

/// The server's request and connection metrics. Slot `SUPPORTED_APIS.len()` is for
/// requests whose API is unknown or unsupported.
pub struct ServerMetrics {
    pub(super) apis: Vec<ApiStats>,
    /// API key → slot.
    slot_of: [u8; 128],
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub(super) active: Arc<AtomicUsize>,
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
