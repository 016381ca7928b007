//! DescribeClientQuotas and AlterClientQuotas (KIP-546), answered as Kafka's
//! `ClientQuotasImage.describe` and `ClientQuotaControlManager` answer them: entity types
//! `user`, `client-id` and `ip` (a null name is the `<default>` entity), Kafka's keys
//! per entity type and its checks of values, with its error codes and messages. The
//! quotas are kept in the security store; an alteration's accepted entities are
//! written together and then enforced (`crate::quotas`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages as m;
use runnel_security::store::{QuotaAlteration, QuotaEntity};

use super::str_bytes;
use crate::context::{Operation, RequestContext, Resource};
use crate::kafka_broker::KafkaBroker;
use crate::quotas::{
    CLIENT_ID, CONNECTION_CREATION_RATE, CONSUMER_BYTE_RATE, CONTROLLER_MUTATION_RATE, IP,
    PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE, USER,
};

const MATCH_TYPE_EXACT: i8 = 0;
const MATCH_TYPE_DEFAULT: i8 = 1;
const MATCH_TYPE_SPECIFIED: i8 = 2;

/// The type of a quota key's value, as Kafka's `QuotaConfig` defines it.
#[derive(Clone, Copy)]
enum KeyType {
    Long,
    Double,
    Int,
}

/// The keys a user or client-id entity may have.
const USER_CLIENT_KEYS: &[(&str, KeyType)] = &[
    (PRODUCER_BYTE_RATE, KeyType::Long),
    (CONSUMER_BYTE_RATE, KeyType::Long),
    (REQUEST_PERCENTAGE, KeyType::Double),
    (CONTROLLER_MUTATION_RATE, KeyType::Double),
];

/// The keys an IP entity may have.
const IP_KEYS: &[(&str, KeyType)] = &[(CONNECTION_CREATION_RATE, KeyType::Int)];

type Refusal = (E, String);

/// Kafka's message for CLUSTER_AUTHORIZATION_FAILED (its exception's default text).
const CLUSTER_AUTHORIZATION_FAILED: &str = "Cluster authorization failed.";

fn invalid(message: impl Into<String>) -> Refusal {
    (E::InvalidRequest, message.into())
}

pub fn describe_client_quotas(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::DescribeClientQuotasRequest,
) -> m::DescribeClientQuotasResponse {
    let refuse = |(code, message): Refusal| {
        m::DescribeClientQuotasResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
            .with_entries(None)
    };
    if !ctx.authorize(Operation::DescribeConfigs, Resource::Cluster) {
        return refuse((
            E::ClusterAuthorizationFailed,
            CLUSTER_AUTHORIZATION_FAILED.to_string(),
        ));
    }
    let (exact, specified) = match filter(&req) {
        Ok(f) => f,
        Err(why) => return refuse(why),
    };
    let entries = broker
        .security
        .client_quotas()
        .into_iter()
        .filter(|(entity, _)| matches(entity, &exact, &specified, req.strict))
        .map(|(entity, values)| {
            use m::describe_client_quotas_response::{EntityData, EntryData, ValueData};
            EntryData::default()
                .with_entity(
                    entity
                        .iter()
                        .map(|(t, n)| {
                            EntityData::default()
                                .with_entity_type(str_bytes(t))
                                .with_entity_name(n.as_deref().map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(str_bytes(k)).with_value(*v))
                        .collect(),
                )
        })
        .collect();
    m::DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

/// The filter's exact matches (a `None` name matches the default entity) and the entity
/// types that must merely be there; Kafka's refusals of a malformed filter.
fn filter(req: &m::DescribeClientQuotasRequest) -> Result<(QuotaEntity, Vec<String>), Refusal> {
    let mut exact = QuotaEntity::new();
    let mut specified: Vec<String> = Vec::new();
    for c in &req.components {
        let entity_type = c.entity_type.to_string();
        if entity_type.is_empty() {
            return Err(invalid("Invalid empty entity type."));
        }
        if exact.contains_key(&entity_type) || specified.contains(&entity_type) {
            return Err(invalid(format!(
                "Entity type {entity_type} cannot appear more than once in the filter."
            )));
        }
        if ![IP, USER, CLIENT_ID].contains(&entity_type.as_str()) {
            return Err((
                E::UnsupportedVersion,
                format!("Unsupported entity type {entity_type}"),
            ));
        }
        let name = c._match.as_ref().map(|s| s.to_string());
        match c.match_type {
            MATCH_TYPE_EXACT => {
                if name.is_none() {
                    return Err(invalid(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null.",
                    ));
                }
                exact.insert(entity_type, name);
            }
            MATCH_TYPE_DEFAULT => {
                if name.is_some() {
                    return Err(invalid(
                        "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
                    ));
                }
                exact.insert(entity_type, None);
            }
            MATCH_TYPE_SPECIFIED => {
                if name.is_some() {
                    return Err(invalid(
                        "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
                    ));
                }
                specified.push(entity_type);
            }
            other => return Err(invalid(format!("Unknown match type {other}"))),
        }
    }
    let named = |t: &str| exact.contains_key(t) || specified.iter().any(|s| s == t);
    if named(IP) && (named(USER) || named(CLIENT_ID)) {
        return Err(invalid(
            "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.",
        ));
    }
    Ok((exact, specified))
}

fn matches(entity: &QuotaEntity, exact: &QuotaEntity, specified: &[String], strict: bool) -> bool {
    if strict && entity.len() != exact.len() + specified.len() {
        return false;
    }
    exact.iter().all(|(t, n)| entity.get(t) == Some(n))
        && specified.iter().all(|t| entity.contains_key(t))
}

/// Kafka's `ClientQuotaEntity.toString`, for its messages.
fn entity_text(entity: &QuotaEntity) -> String {
    let parts: Vec<String> = entity
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("null")))
        .collect();
    format!("ClientQuotaEntity(entries={{{}}})", parts.join(", "))
}

/// Kafka's `validateEntity` and `configKeysForEntityType`: the keys the entity may have.
fn check_entity(entity: &QuotaEntity) -> Result<&'static [(&'static str, KeyType)], Refusal> {
    if entity.is_empty() {
        return Err(invalid("Invalid empty client quota entity"));
    }
    for (t, n) in entity {
        if ![USER, CLIENT_ID, IP].contains(&t.as_str()) {
            return Err(invalid(format!("Unhandled client quota entity type: {t}")));
        }
        if n.as_deref() == Some("") {
            return Err(invalid(format!("Empty {t} not supported")));
        }
    }
    match entity.get(IP) {
        Some(_) if entity.len() > 1 => Err(invalid(
            // Kafka's message, missing space included.
            "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId",
        )),
        Some(Some(ip)) if ip.parse::<IpAddr>().is_err() => Err(invalid(format!(
            "{ip} is not a valid IP or resolvable host."
        ))),
        Some(_) => Ok(IP_KEYS),
        None => Ok(USER_CLIENT_KEYS),
    }
}

/// Kafka's `validateQuotaKeyValue`.
fn check_value(keys: &[(&str, KeyType)], key: &str, value: f64) -> Result<(), Refusal> {
    let Some((_, ty)) = keys.iter().find(|(k, _)| *k == key) else {
        return Err(invalid(format!("Invalid configuration key {key}")));
    };
    // NaN passes Kafka's checks; it cannot be a rate, and JSON cannot hold it.
    if value <= 0.0 || value.is_nan() {
        return Err(invalid(format!("Quota {key} must be greater than 0")));
    }
    let (max, name) = match ty {
        KeyType::Double => {
            if value.is_infinite() {
                return Err(invalid(format!("Quota {key} must be a finite number")));
            }
            return Ok(());
        }
        KeyType::Int => (i32::MAX as f64, "an INT"),
        KeyType::Long => (i64::MAX as f64, "a LONG"),
    };
    if value > max {
        return Err(invalid(format!(
            "Proposed value for {key} is too large for {name}."
        )));
    }
    if (value % 1.0).abs() > 1e-6 {
        return Err(invalid(format!("{key} cannot be a fractional value.")));
    }
    Ok(())
}

pub async fn alter_client_quotas(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::AlterClientQuotasRequest,
) -> m::AlterClientQuotasResponse {
    use m::alter_client_quotas_response::{EntityData, EntryData};
    let entity_data = |entity: &[m::alter_client_quotas_request::EntityData]| {
        entity
            .iter()
            .map(|e| {
                EntityData::default()
                    .with_entity_type(e.entity_type.clone())
                    .with_entity_name(e.entity_name.clone())
            })
            .collect::<Vec<_>>()
    };
    if !ctx.authorize(Operation::AlterConfigs, Resource::Cluster) {
        // Kafka's error response: every entry as it was sent, refused.
        let entries = req
            .entries
            .iter()
            .map(|e| {
                EntryData::default()
                    .with_entity(entity_data(&e.entity))
                    .with_error_code(E::ClusterAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes(CLUSTER_AUTHORIZATION_FAILED.to_string())))
            })
            .collect();
        return m::AlterClientQuotasResponse::default().with_entries(entries);
    }
    // Per distinct entity, in the order first seen: its outcome.
    let mut order: Vec<QuotaEntity> = Vec::new();
    let mut outcome: BTreeMap<QuotaEntity, Result<(), Refusal>> = BTreeMap::new();
    let mut accepted: Vec<QuotaAlteration> = Vec::new();
    let current = broker.security.client_quotas();
    for entry in &req.entries {
        // A type named twice: the last name wins, as Kafka's request reads it.
        let entity: QuotaEntity = entry
            .entity
            .iter()
            .map(|e| {
                (
                    e.entity_type.to_string(),
                    e.entity_name.as_ref().map(|n| n.to_string()),
                )
            })
            .collect();
        let mut ops: BTreeMap<String, Option<f64>> = BTreeMap::new();
        let mut duplicate_key = None;
        for op in &entry.ops {
            let key = op.key.to_string();
            if ops.contains_key(&key) {
                duplicate_key = Some(key);
                continue;
            }
            ops.insert(key, (!op.remove).then_some(op.value));
        }
        if outcome.contains_key(&entity) || duplicate_key.is_some() {
            if !outcome.contains_key(&entity) {
                order.push(entity.clone());
            }
            // Kafka reports a repeated key as the entity being ignored too.
            outcome.insert(
                entity.clone(),
                Err(invalid(format!(
                    "Ignoring duplicate entity {}",
                    entity_text(&entity)
                ))),
            );
            continue;
        }
        order.push(entity.clone());
        let checked = check_entity(&entity).and_then(|keys| {
            for op in &entry.ops {
                if !op.remove {
                    check_value(keys, &op.key, op.value)?;
                }
            }
            Ok(())
        });
        if checked.is_ok() {
            // Removals of keys the entity does not have change nothing.
            let have = current.get(&entity);
            let ops: BTreeMap<String, Option<f64>> = ops
                .into_iter()
                .filter(|(k, v)| v.is_some() || have.is_some_and(|h| h.contains_key(k)))
                .collect();
            if !ops.is_empty() {
                accepted.push((entity.clone(), ops));
            }
        }
        outcome.insert(entity, checked);
    }
    if !req.validate_only && !accepted.is_empty() {
        let store = broker.security.clone();
        let changed: Vec<QuotaEntity> = accepted.iter().map(|(e, _)| e.clone()).collect();
        let written =
            match tokio::task::spawn_blocking(move || store.alter_client_quotas(accepted)).await {
                Ok(r) => r,
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
        match written {
            Ok(()) => broker.quotas.load(&broker.security.client_quotas()),
            Err(e) => {
                tracing::error!(error = %e, "writing client quotas failed");
                for entity in changed {
                    outcome.insert(
                        entity,
                        Err((
                            E::UnknownServerError,
                            "The client quotas could not be stored".to_string(),
                        )),
                    );
                }
            }
        }
    }
    let entries = order
        .iter()
        .map(|entity| {
            let data = entity
                .iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(str_bytes(t))
                        .with_entity_name(n.as_deref().map(str_bytes))
                })
                .collect();
            let e = EntryData::default().with_entity(data);
            match outcome.get(entity) {
                Some(Err((code, message))) => e
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
                _ => e,
            }
        })
        .collect();
    m::AlterClientQuotasResponse::default().with_entries(entries)
}
