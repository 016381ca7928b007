//! Counters the produce and fetch paths update, whatever the protocol: bytes and records
//! per partition, and the fsync latency histogram. Atomics only: no lock and no map
//! lookup per request. The metrics exporter reads them at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds (50 µs to 30 s, the longest
/// fetch long poll); the last bucket is +Inf.
pub const BOUNDS_MICROS: [u64; 18] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];
pub const BUCKETS: usize = BOUNDS_MICROS.len() + 1;

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
    pub fn snapshot(&self) -> ([u64; BUCKETS], f64) {
        let mut cumulative = [0u64; BUCKETS];
        let mut total = 0u64;
        for (c, b) in cumulative.iter_mut().zip(&self.buckets) {
            total += b.load(Ordering::Relaxed);
            *c = total;
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, sum)
    }

    pub fn count(&self) -> u64 {
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
    pub inbound: Traffic,
    pub outbound_bytes: BytesOut,
}

/// Bytes and records one way, on a cache line of their own: producers and fetchers of
/// a partition run on different threads, and neither should invalidate the line of
/// the partition's other hot fields.
#[derive(Default)]
#[repr(align(64))]
pub struct Traffic {
    pub bytes: AtomicU64,
    pub records: AtomicU64,
}

#[derive(Default)]
#[repr(align(64))]
pub struct BytesOut(pub AtomicU64);

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
}
