//! The internal topic as a coordinator sees it: where it appends its records, how it
//! waits for them to be durable, and how it reads them back at start. The broker
//! implements [`CoordinatorLog`] over the topic's partitions; a coordinator knows no
//! partitions or files.

use std::future::Future;
use std::pin::Pin;

use kafka_protocol::error::ResponseError as E;
use runnel_records::record_batch::{BatchIter, Strictness};

/// A record to write: key and value (`None` is a tombstone).
pub type LogRecord = (Vec<u8>, Option<Vec<u8>>);

/// Resolves once an append is durable (fsynced), or with the error that stopped it.
pub type DurableFuture = Pin<Box<dyn Future<Output = Result<(), E>> + Send>>;

/// Where a coordinator writes: the partitions of its internal topic.
pub trait CoordinatorLog: Send + Sync {
    fn partitions(&self) -> i32;
    /// Append `records` as one batch to `partition` (a page-cache write). Returns the
    /// offset of the first record and the offset after the last.
    fn append(&self, partition: i32, records: &[LogRecord]) -> Result<(u64, u64), E>;
    /// Resolves once everything below `end` in `partition` is fsynced.
    fn wait_durable(&self, partition: i32, end: u64) -> DurableFuture;
}

/// Replay a chunk of whole stored batches of an internal topic's partition, read from
/// `offset`: `record(key, value, offset)` for each keyed record at or after `offset`, in
/// log order. Returns the offset after the last batch (where the next chunk starts).
/// Control batches are skipped; an unreadable batch is skipped with a warning.
pub fn replay_chunk(
    offset: u64,
    buf: &[u8],
    mut record: impl FnMut(&[u8], Option<&[u8]>, u64),
) -> u64 {
    let mut next = offset;
    for item in BatchIter::new(buf, Strictness::Stored) {
        let Ok((pos, h)) = item else { break };
        next = h.last_offset() as u64 + 1;
        if h.is_control() {
            continue;
        }
        let Some(batch) = buf.get(pos..pos + h.total_len()) else {
            break;
        };
        let decoded = match runnel_records::records::batch_records(batch, 64 << 20) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, offset = h.base_offset, "skipping an unreadable internal topic batch");
                continue;
            }
        };
        for rec in decoded.records() {
            let Ok(rec) = rec else { break };
            let at = decoded.offset(&rec);
            if (at as u64) < offset {
                continue;
            }
            if let Some(key) = rec.key {
                record(key, rec.value, at as u64);
            }
        }
    }
    next
}
