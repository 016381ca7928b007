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
    /// Append `records` as one transactional batch of (`producer_id`, `producer_epoch`)
    /// (KIP-98: TxnOffsetCommit); returns what [`Self::append`] does. The records count
    /// only once the transaction's commit marker follows them. A log whose coordinator
    /// writes no transactions keeps the default, which refuses.
    fn append_transactional(
        &self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        records: &[LogRecord],
    ) -> Result<(u64, u64), E> {
        let _ = (partition, producer_id, producer_epoch, records);
        Err(E::CoordinatorNotAvailable)
    }
    /// Resolves once everything below `end` in `partition` is fsynced.
    fn wait_durable(&self, partition: i32, end: u64) -> DurableFuture;
}

/// Control record types (the key is i16 version, i16 type).
const CONTROL_ABORT: i16 = 0;
const CONTROL_COMMIT: i16 = 1;

/// One item of a replay, in log order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed<'a> {
    /// A keyed record. `producer_id` is the batch's producer for a transactional batch
    /// (the record counts once that producer's commit marker follows), `None` for a
    /// plain one.
    Record {
        key: &'a [u8],
        value: Option<&'a [u8]>,
        offset: u64,
        producer_id: Option<i64>,
    },
    /// A transaction marker (control batch) of `producer_id`: commit or abort.
    Marker {
        producer_id: i64,
        commit: bool,
        offset: u64,
    },
}

/// Replay a chunk of whole stored batches of an internal topic's partition, read from
/// `offset`: `record(key, value, offset)` for each keyed record at or after `offset`, in
/// log order. Returns the offset after the last batch (where the next chunk starts).
/// Control batches are skipped; an unreadable batch is skipped with a warning.
/// Transactional records are handed over like any other (see [`replay_chunk_txn`] for
/// a coordinator that tells them apart).
pub fn replay_chunk(
    offset: u64,
    buf: &[u8],
    mut record: impl FnMut(&[u8], Option<&[u8]>, u64),
) -> u64 {
    replay_chunk_txn(offset, buf, |item| {
        if let Replayed::Record {
            key, value, offset, ..
        } = item
        {
            record(key, value, offset)
        }
    })
}

/// [`replay_chunk`] that also sees transactions: each record says whether its batch is
/// transactional (and whose), and each transaction marker at or after `offset` is
/// handed over. A control batch whose record is not a readable commit or abort marker
/// is skipped with a warning.
pub fn replay_chunk_txn(offset: u64, buf: &[u8], mut item: impl FnMut(Replayed<'_>)) -> u64 {
    let mut next = offset;
    for batch in BatchIter::new(buf, Strictness::Stored) {
        let Ok((pos, h)) = batch else { break };
        next = h.last_offset() as u64 + 1;
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
        if h.is_control() {
            // One record: key i16 version, i16 type (0 abort, 1 commit).
            let Some(Ok(rec)) = decoded.records().next() else {
                tracing::warn!(
                    offset = h.base_offset,
                    "skipping a control batch without a record"
                );
                continue;
            };
            let at = decoded.offset(&rec);
            if (at as u64) < offset {
                continue;
            }
            let kind = rec
                .key
                .and_then(|k| k.get(2..4))
                .map(|t| i16::from_be_bytes([t[0], t[1]]));
            let commit = match kind {
                Some(CONTROL_COMMIT) => true,
                Some(CONTROL_ABORT) => false,
                other => {
                    tracing::warn!(offset = at, kind = ?other, "skipping an unknown control record");
                    continue;
                }
            };
            if h.producer_id < 0 {
                tracing::warn!(
                    offset = at,
                    "skipping a transaction marker without a producer id"
                );
                continue;
            }
            item(Replayed::Marker {
                producer_id: h.producer_id,
                commit,
                offset: at as u64,
            });
            continue;
        }
        let producer_id = (h.is_transactional() && h.producer_id >= 0).then_some(h.producer_id);
        for rec in decoded.records() {
            let Ok(rec) = rec else { break };
            let at = decoded.offset(&rec);
            if (at as u64) < offset {
                continue;
            }
            if let Some(key) = rec.key {
                item(Replayed::Record {
                    key,
                    value: rec.value,
                    offset: at as u64,
                    producer_id,
                });
            }
        }
    }
    next
}
