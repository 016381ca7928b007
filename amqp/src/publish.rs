//! A sender's link (our receiver): each delivery, an event or a batch of them, becomes
//! one Kafka batch on one partition, and is accepted once it is durable, as acks=all.

use std::sync::Arc;

use fe2o3_amqp::link::Receiver;
use fe2o3_amqp_types::messaging::Body;
use fe2o3_amqp_types::primitives::Value;
use runnel_core::partition::AppendError;
use runnel_records::record_batch::builder::{ProducerFields, Record};
use runnel_records::record_batch::Compression;

use crate::claims::Right;
use crate::message::{self, Event};
use crate::plan::Publish;
use crate::sasl::now_secs;
use crate::server::{error, Connection, ARGUMENT_ERROR, INTERNAL_ERROR, UNAUTHORIZED};

/// Sleep until `until` (Unix seconds), or for a long time when it is far away.
pub(crate) async fn sleep_until_secs(until: u64) {
    let now = now_secs();
    let secs = until.saturating_sub(now).min(24 * 3600);
    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
}

pub async fn run(mut link: Receiver, plan: Publish, shared: Arc<Connection>) {
    let mut until = plan.until;
    loop {
        let delivery = tokio::select! {
            d = link.recv::<Body<Value>>() => d,
            _ = sleep_until_secs(until) => {
                match shared.claims.allowed_until(&plan.entity, &plan.topic, Right::Send, now_secs()) {
                    Some(u) => { until = u; continue; }
                    None => {
                        let _ = link.close_with_error(error(UNAUTHORIZED, "the token expired")).await;
                        return;
                    }
                }
            }
        };
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(peer = %shared.peer, error = %e, "AMQP sender link ended");
                break;
            }
        };
        let format = *delivery.message_format();
        let (info, msg) = delivery.into_parts();
        let outcome = match message::events(msg, format) {
            Ok(events) if events.is_empty() => Err(error(ARGUMENT_ERROR, "an empty batch")),
            Ok(events) => append(&plan, &shared, events).await,
            Err(e) => Err(error(ARGUMENT_ERROR, e)),
        };
        let disposed = match outcome {
            Ok(()) => link.accept(info).await,
            Err(e) => link.reject(info, e).await,
        };
        if disposed.is_err() {
            break;
        }
    }
    let _ = link.close().await;
}

async fn append(
    plan: &Publish,
    shared: &Connection,
    events: Vec<Event>,
) -> Result<(), fe2o3_amqp_types::definitions::Error> {
    let partition = match (plan.partition, &events[0].partition_key) {
        (Some(p), _) => p,
        (None, Some(key)) => crate::partitioner::partition_for_key(key, plan.partitions) as i32,
        (None, None) => shared.hubs.next_round_robin(plan.partitions) as i32,
    };
    let Some(p) = shared.hubs.broker.partition(&plan.topic, partition) else {
        return Err(error(INTERNAL_ERROR, "the partition is gone"));
    };
    let now = runnel_storage::now_ms();
    let records: Vec<Record<'_>> = events
        .iter()
        .map(|e| Record {
            timestamp_delta: 0,
            key: None,
            value: Some(&e.value),
            headers: e
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
                .collect(),
        })
        .collect();
    let batch = runnel_records::records::build_batch(
        Compression::None,
        now,
        &records,
        ProducerFields::NONE,
    )
    .map_err(|e| error(ARGUMENT_ERROR, e.to_string()))?;
    let size = batch.len();
    let part = p.clone();
    let appended = tokio::task::spawn_blocking(move || part.append(&batch, now))
        .await
        .map_err(|e| error(INTERNAL_ERROR, format!("the append failed: {e}")))?;
    let a = appended.map_err(|e| match e {
        AppendError::RecordValidation(_) | AppendError::Corrupt(_) => {
            error(ARGUMENT_ERROR, format!("{e:?}"))
        }
        other => error(INTERNAL_ERROR, format!("{other:?}")),
    })?;
    p.metrics.record_in(size, a.last_offset + 1 - a.base_offset);
    if !p.write_caching() && p.wait_durable(a.last_offset + 1).await.is_err() {
        return Err(error(INTERNAL_ERROR, "the write was not made durable"));
    }
    Ok(())
}
