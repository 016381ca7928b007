//! A scrape: the counters, plus sizes, offsets and consumer lag read from the broker's
//! state, written in the Prometheus text format 0.0.4.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use runnel_records::record_batch::{BatchHeader, BATCH_HEADER_LEN};
use runnel_records::records::batch_records;

use runnel_core::counters::{BOUNDS_MICROS, BUCKETS, FSYNC_SECONDS};
use runnel_core::partition::Partition;
use runnel_kafka::fetch_session::RequestKind;
use runnel_kafka::request_metrics::{ApiStats, ServerMetrics};
use runnel_kafka::KafkaBroker;

/// What a scrape reads: the broker, the server's counters, and the consumer-lag
/// timestamp cache.
pub struct Exporter {
    broker: Arc<KafkaBroker>,
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
    offsets: Vec<PartitionSnapshot>,
}

/// One partition's offsets and producer state, read once per scrape.
struct PartitionSnapshot {
    index: i32,
    log_start: u64,
    log_end: u64,
    high_watermark: u64,
    last_stable: u64,
    producers: u64,
    ongoing_transactions: u64,
}

impl Exporter {
    pub fn new(broker: Arc<KafkaBroker>, server: Arc<ServerMetrics>) -> Exporter {
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
        self.render_quotas(&mut out);
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
        render_log_dir(&mut out);
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
            "Client connections closed at once for going over a connection limit.",
            "counter",
        );
        sample(
            out,
            "runnel_connections_refused_total",
            &[],
            s.connections_refused.load(Ordering::Relaxed),
        );
        family(
            out,
            "runnel_authentication_failures_total",
            "Failed TLS handshakes and SASL exchanges (Kafka's failed-authentication-total).",
            "counter",
        );
        sample(
            out,
            "runnel_authentication_failures_total",
            &[],
            s.authentication_failures.load(Ordering::Relaxed),
        );
    }

    /// Client quota throttling, by quota type only (no user or client-id labels: their
    /// number is the clients').
    fn render_quotas(&self, out: &mut String) {
        use runnel_kafka::quotas::QuotaType;
        family(
            out,
            "runnel_throttled_responses_total",
            "Responses throttled by a client quota (and connections held by connection_creation_rate).",
            "counter",
        );
        for t in QuotaType::ALL {
            let n = self
                .broker
                .quotas
                .stats_of(t)
                .throttled
                .load(Ordering::Relaxed);
            sample(
                out,
                "runnel_throttled_responses_total",
                &[("quota_type", t.label())],
                n,
            );
        }
        family(
            out,
            "runnel_throttle_time_ms_total",
            "Throttle time given to clients by client quotas, in ms (Kafka's throttle-time).",
            "counter",
        );
        for t in QuotaType::ALL {
            let n = self
                .broker
                .quotas
                .stats_of(t)
                .throttle_time_ms
                .load(Ordering::Relaxed);
            sample(
                out,
                "runnel_throttle_time_ms_total",
                &[("quota_type", t.label())],
                n,
            );
        }
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
                let high_watermark = p.high_watermark();
                t.offsets.push(PartitionSnapshot {
                    index: i,
                    log_start: start,
                    log_end: end,
                    high_watermark,
                    last_stable: p.last_stable_offset().min(high_watermark),
                    producers: p.producer_count() as u64,
                    ongoing_transactions: p.ongoing_transactions() as u64,
                });
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
    type GetOffset = fn(&PartitionSnapshot) -> u64;
    let per_partition: [(&str, &str, GetOffset); 7] = [
        (
            "runnel_partition_log_start_offset",
            "First offset in the partition's log.",
            |o| o.log_start,
        ),
        (
            "runnel_partition_log_end_offset",
            "Offset the next appended record gets.",
            |o| o.log_end,
        ),
        (
            "runnel_partition_high_watermark",
            "Offset up to which records are visible to consumers (fsynced unless write.caching).",
            |o| o.high_watermark,
        ),
        (
            "runnel_partition_last_stable_offset",
            "Offset up to which read_committed consumers read (the first open transaction's first offset, or the high watermark).",
            |o| o.last_stable,
        ),
        (
            "runnel_partition_lso_lag",
            "High watermark minus last stable offset: records read_committed consumers wait for while transactions are open.",
            |o| o.high_watermark.saturating_sub(o.last_stable),
        ),
        (
            "runnel_partition_ongoing_transactions",
            "Transactions open in the partition (no commit or abort marker yet).",
            |o| o.ongoing_transactions,
        ),
        (
            "runnel_partition_producers",
            "Idempotent producer ids with state in the partition (forgotten after producer.id.expiration.ms idle).",
            |o| o.producers,
        ),
    ];
    for (name, help, get) in per_partition {
        family(out, name, help, "gauge");
        for t in topics {
            for o in &t.offsets {
                let p = o.index.to_string();
                sample(out, name, &[("topic", &t.name), ("partition", &p)], get(o));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Text format 0.0.4
// ---------------------------------------------------------------------------------------

/// The full-disk state of the log directory (`runnel_storage::space`).
fn render_log_dir(out: &mut String) {
    use runnel_storage::space;
    if space::is_full() {
        space::end_if_room();
    }
    family(
        out,
        "runnel_log_dir_full",
        "1 while the log directory is full: the last write that ran out of space (ENOSPC, EDQUOT) was not yet followed by one that fit.",
        "gauge",
    );
    sample(out, "runnel_log_dir_full", &[], u64::from(space::is_full()));
    family(
        out,
        "runnel_log_dir_full_episodes_total",
        "Times the log directory became full.",
        "counter",
    );
    sample(
        out,
        "runnel_log_dir_full_episodes_total",
        &[],
        space::episodes(),
    );
    family(
        out,
        "runnel_log_dir_refused_appends_total",
        "Appends refused (KAFKA_STORAGE_ERROR, rolled back) because the log directory was full.",
        "counter",
    );
    sample(
        out,
        "runnel_log_dir_refused_appends_total",
        &[],
        space::refused_appends(),
    );
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "x", &[("group", "a\"b\\c\nd")], 1);
        assert_eq!(out, "x{group=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
}
