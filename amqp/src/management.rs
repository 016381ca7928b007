//! `$management` READ of a hub (`com.microsoft:eventhub`) or one of its partitions
//! (`com.microsoft:partition`), with the AMQP types the strictest SDK decoders expect
//! (docs/design/event-hubs-amqp.md, §2).

use fe2o3_amqp_types::primitives::{Array, OrderedMap, Timestamp, Value};
use runnel_security::sas;

use crate::claims::Right;
use crate::node::{property, reply, AmqpMessage};
use crate::plan::find_hub;
use crate::sasl::now_secs;
use crate::server::Connection;

pub const HUB_TYPE: &str = "com.microsoft:eventhub";
pub const PARTITION_TYPE: &str = "com.microsoft:partition";

fn entry(map: &mut OrderedMap<Value, Value>, key: &str, value: Value) {
    map.insert(Value::String(key.to_string()), value);
}

/// Whether the request may read `hub`: its own `security_token`, or the connection's
/// claims.
fn may_read(request: &AmqpMessage, shared: &Connection, hub: &str) -> bool {
    let now = now_secs();
    if let Some(token) = property(request, "security_token") {
        let verified = shared
            .hubs
            .security
            .with_policies(|p| sas::verify_token(p, token, now, None));
        if let (Ok(grant), Some((resource, _))) = (verified, sas::token_scope(token)) {
            if crate::address::covers(&resource, hub)
                && grant
                    .hub
                    .as_deref()
                    .is_none_or(|h| h.eq_ignore_ascii_case(hub))
            {
                return true;
            }
        }
    }
    // Any right on the hub lets a client read its properties.
    [Right::Listen, Right::Send, Right::Manage]
        .into_iter()
        .any(|r| shared.claims.allowed_until(hub, hub, r, now).is_some())
}

pub fn read(request: &AmqpMessage, shared: &Connection) -> AmqpMessage {
    if property(request, "operation") != Some("READ") {
        return reply(request, 400, "the operation must be READ", Value::Null);
    }
    let Some(name) = property(request, "name") else {
        return reply(request, 400, "the request has no name", Value::Null);
    };
    let Some(meta) = find_hub(shared, name) else {
        if !may_read(request, shared, name) {
            return reply(request, 401, "Unauthorized", Value::Null);
        }
        return reply(
            request,
            404,
            &format!(
                "The messaging entity '{}' could not be found",
                crate::address::printable(name)
            ),
            Value::Null,
        );
    };
    if !may_read(request, shared, &meta.name) {
        return reply(request, 401, "Unauthorized", Value::Null);
    }
    let mut map = OrderedMap::new();
    match property(request, "type") {
        Some(HUB_TYPE) => {
            entry(&mut map, "name", Value::String(meta.name.clone()));
            entry(&mut map, "type", Value::String(HUB_TYPE.to_string()));
            entry(
                &mut map,
                "created_at",
                Value::Timestamp(Timestamp::from_milliseconds(meta.created_ms)),
            );
            entry(&mut map, "partition_count", Value::Int(meta.partitions));
            let ids: Vec<Value> = (0..meta.partitions)
                .map(|p| Value::String(p.to_string()))
                .collect();
            entry(&mut map, "partition_ids", Value::Array(Array::from(ids)));
            entry(&mut map, "georeplication_factor", Value::Int(1));
        }
        Some(PARTITION_TYPE) => {
            let Some(id) = property(request, "partition") else {
                return reply(request, 400, "the request has no partition", Value::Null);
            };
            let partition = match id.parse::<i32>() {
                Ok(p) if (0..meta.partitions).contains(&p) => p,
                _ => {
                    return reply(
                        request,
                        404,
                        &format!(
                            "partition '{}' is not in {}",
                            crate::address::printable(id),
                            meta.name
                        ),
                        Value::Null,
                    )
                }
            };
            let Some(p) = shared.hubs.broker.partition(&meta.name, partition) else {
                return reply(request, 404, "no such partition", Value::Null);
            };
            let (start, hwm) = match p.log_start_offset() {
                Ok(s) => (s, p.high_watermark()),
                Err(e) => {
                    return reply(
                        request,
                        500,
                        &format!("partition offline: {e}"),
                        Value::Null,
                    )
                }
            };
            let empty = start >= hwm;
            let last = if empty { -1 } else { hwm as i64 - 1 };
            let last_time = if empty {
                0
            } else {
                crate::consume::last_enqueued_time(&p).unwrap_or(0)
            };
            entry(&mut map, "name", Value::String(meta.name.clone()));
            entry(&mut map, "type", Value::String(PARTITION_TYPE.to_string()));
            entry(&mut map, "partition", Value::String(partition.to_string()));
            entry(&mut map, "begin_sequence_number", Value::Long(start as i64));
            entry(&mut map, "last_enqueued_sequence_number", Value::Long(last));
            entry(
                &mut map,
                "last_enqueued_offset",
                Value::String(last.to_string()),
            );
            entry(
                &mut map,
                "last_enqueued_time_utc",
                Value::Timestamp(Timestamp::from_milliseconds(last_time)),
            );
            entry(&mut map, "is_partition_empty", Value::Bool(empty));
            entry(
                &mut map,
                "last_enqueued_sequence_number_epoch",
                Value::Int(0),
            );
        }
        _ => return reply(request, 400, "unknown entity type", Value::Null),
    }
    reply(request, 200, "OK", Value::Map(map))
}
