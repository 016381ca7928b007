//! A consumer's link (our sender): events from a start position, as the client gives
//! credit. Reads run on a blocking thread; a caught-up link parks on the partition's
//! high watermark. The link ends when its claim expires, when a later epoch receiver
//! takes the partition (`amqp:link:stolen`), or when the client detaches.

use std::sync::Arc;

use fe2o3_amqp::link::Sender;
use runnel_core::partition::Partition;
use runnel_records::record_batch::{BatchIter, Strictness};
use runnel_records::records::batch_records;
use tokio::sync::Notify;

use crate::claims::Right;
use crate::filter::StartAt;
use crate::message::{self, AmqpMessage};
use crate::plan::Consume;
use crate::publish::sleep_until_secs;
use crate::sasl::now_secs;
use crate::server::{error, Connection, INTERNAL_ERROR, LINK_STOLEN, UNAUTHORIZED};

/// Receivers read as a Kafka read_committed consumer does: below the last stable
/// offset, without the records of aborted transactions (Event Hubs has no transactions;
/// Kafka producers writing to a hub may use them).
const READ_COMMITTED: bool = true;
/// Bytes read from the log per round.
const READ_BYTES: u64 = 256 * 1024;
/// Decompressed bytes per batch, at most.
const MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;

/// Where a start position falls, clamped into [log start, last stable offset].
fn resolve(p: &Partition, start: &StartAt) -> Result<u64, String> {
    let log_start = p.log_start_offset().map_err(|e| e.to_string())?;
    let hwm = p.read_bound(READ_COMMITTED);
    let at = match *start {
        StartAt::Earliest => log_start,
        StartAt::Latest => hwm,
        StartAt::Offset { value, inclusive } | StartAt::SequenceNumber { value, inclusive } => {
            if value < 0 {
                log_start
            } else {
                let v = value as u64;
                if inclusive {
                    v
                } else {
                    v.saturating_add(1)
                }
            }
        }
        StartAt::EnqueuedTime { ms, inclusive } => {
            let t = if inclusive { ms } else { ms.saturating_add(1) };
            first_at_or_after(p, t)?.unwrap_or(hwm)
        }
    };
    Ok(at.clamp(log_start, hwm))
}

/// The first record with a timestamp at or after `t`.
fn first_at_or_after(p: &Partition, t: i64) -> Result<Option<u64>, String> {
    let Some(hit) = p.find_timestamp(t).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let bytes = hit.slice.read_to_vec().map_err(|e| e.to_string())?;
    let records = batch_records(&bytes, MAX_DECOMPRESSED).map_err(|e| e.to_string())?;
    for r in records.records() {
        let r = r.map_err(|e| e.to_string())?;
        if records.timestamp(&r) >= t {
            return Ok(Some(records.offset(&r) as u64));
        }
    }
    Ok(Some((hit.batch.last_offset() as u64).saturating_add(1)))
}

/// The last record's enqueued time (for `$management`).
pub fn last_enqueued_time(p: &Partition) -> Option<i64> {
    let hwm = p.high_watermark();
    let last = hwm.checked_sub(1)?;
    let read = p.read(last, 1, hwm).ok()?;
    let bytes = read.slice?.read_to_vec().ok()?;
    let mut time = None;
    for batch in BatchIter::new(&bytes, Strictness::Stored) {
        let (pos, _) = batch.ok()?;
        let records = batch_records(&bytes[pos..], MAX_DECOMPRESSED).ok()?;
        for r in records.records().flatten() {
            if records.offset(&r) as u64 == last {
                time = Some(records.timestamp(&r));
            }
        }
    }
    time
}

/// The messages at and after `next`, below `hwm` (the last stable offset), up to about
/// READ_BYTES, leaving out the records of aborted transactions.
fn read(p: &Partition, next: u64, hwm: u64) -> Result<(Vec<AmqpMessage>, u64), String> {
    let read = p.read(next, READ_BYTES, hwm).map_err(|e| e.to_string())?;
    let Some(slice) = read.slice else {
        return Ok((Vec::new(), next.max(read.log_start_offset)));
    };
    let bytes = slice.read_to_vec().map_err(|e| e.to_string())?;
    let aborted = p
        .aborted_transactions(next, hwm)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut after = next;
    for batch in BatchIter::new(&bytes, Strictness::Stored) {
        let (pos, header) = batch.map_err(|(_, e)| e.to_string())?;
        let end = (header.last_offset() as u64).saturating_add(1);
        let base = header.base_offset.max(0) as u64;
        let in_aborted = header.is_transactional()
            && aborted.iter().any(|t| {
                t.producer_id == header.producer_id
                    && t.first_offset <= base
                    && base <= t.last_offset
            });
        if header.is_control() || in_aborted {
            after = after.max(end.min(hwm));
            continue;
        }
        let records = batch_records(&bytes[pos..], MAX_DECOMPRESSED).map_err(|e| e.to_string())?;
        for r in records.records() {
            let r = r.map_err(|e| e.to_string())?;
            let offset = records.offset(&r);
            if (offset as u64) < next || offset as u64 >= hwm {
                continue;
            }
            let headers: Vec<(&[u8], Option<&[u8]>)> = r.headers().collect();
            out.push(message::from_record(
                r.key,
                r.value,
                &headers,
                offset,
                records.timestamp(&r),
            ));
        }
        after = after.max(end.min(hwm));
    }
    Ok((out, after))
}

pub async fn run(mut link: Sender, plan: Consume, shared: Arc<Connection>) {
    let Consume {
        topic,
        partition,
        start,
        entity,
        mut until,
        mut hold,
    } = plan;
    let stolen = &mut hold.stolen;
    let Some(p) = shared.hubs.broker.partition(&topic, partition) else {
        let _ = link
            .close_with_error(error(INTERNAL_ERROR, "the partition is gone"))
            .await;
        return;
    };
    let mut next = match tokio::task::block_in_place(|| resolve(&p, &start)) {
        Ok(n) => n,
        Err(e) => {
            let _ = link.close_with_error(error(INTERNAL_ERROR, e)).await;
            return;
        }
    };
    let waiter = Arc::new(Notify::new());
    let ending = loop {
        if now_secs() >= until {
            match shared
                .claims
                .allowed_until(&entity, &topic, Right::Listen, now_secs())
            {
                Some(u) => until = u,
                None => break Some(error(UNAUTHORIZED, "the token expired")),
            }
        }
        p.add_waiter(&waiter);
        let hwm = p.read_bound(READ_COMMITTED);
        if next < hwm {
            let part = p.clone();
            let from = next;
            let got = tokio::task::spawn_blocking(move || read(&part, from, hwm)).await;
            let (messages, after) = match got {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => break Some(error(INTERNAL_ERROR, e)),
                Err(e) => break Some(error(INTERNAL_ERROR, e.to_string())),
            };
            let mut failed = None;
            for m in messages {
                tokio::select! {
                    sent = link.send_batchable(m) => {
                        if let Err(e) = sent {
                            tracing::debug!(peer = %shared.peer, error = %e, "AMQP consumer link ended");
                            failed = Some(None);
                            break;
                        }
                    }
                    _ = &mut *stolen => {
                        failed = Some(Some(error(LINK_STOLEN, "a receiver with a higher or equal epoch took the partition")));
                        break;
                    }
                }
            }
            if let Some(f) = failed {
                break f;
            }
            // Never go back; skip what retention removed.
            next = after.max(next);
            continue;
        }
        tokio::select! {
            _ = waiter.notified() => {}
            _ = &mut *stolen => break Some(error(LINK_STOLEN, "a receiver with a higher or equal epoch took the partition")),
            _ = link.on_detach() => break None,
            _ = sleep_until_secs(until) => {
                match shared.claims.allowed_until(&entity, &topic, Right::Listen, now_secs()) {
                    Some(u) => until = u,
                    None => break Some(error(UNAUTHORIZED, "the token expired")),
                }
            }
        }
    };
    match ending {
        Some(e) => {
            let _ = link.close_with_error(e).await;
        }
        None => {
            let _ = link.close().await;
        }
    }
}
