//! What an incoming Attach asks for, decided before it is accepted: the node, the
//! Kafka topic and partition behind it, the claim that allows it, and for a consumer
//! its start position and epoch.

use fe2o3_amqp_types::performatives::Attach;
use fe2o3_amqp_types::primitives::{OrderedMap, Symbol, Value};
use runnel_core::topics::TopicMeta;

use crate::address::Node;
use crate::claims::Right;
use crate::filter::{self, StartAt};
use crate::ownership::{Hold, Refused};
use crate::sasl::now_secs;
use crate::server::{
    Connection, ARGUMENT_ERROR, LINK_STOLEN, NOT_FOUND, RESOURCE_LIMIT, UNAUTHORIZED,
};

pub const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";
pub const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;
pub const EPOCH: &str = "com.microsoft:epoch";
/// The consumer groups of a hub besides `$Default` (a topic config).
pub const CONSUMER_GROUPS_CONFIG: &str = "eventhubs.consumer.groups";
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestNode {
    Cbs,
    Management,
}

pub struct Publish {
    pub topic: String,
    pub partitions: u32,
    /// A partition sender's partition.
    pub partition: Option<i32>,
    pub entity: String,
    pub until: u64,
}

pub struct Consume {
    pub topic: String,
    pub partition: i32,
    pub start: StartAt,
    pub entity: String,
    pub until: u64,
    pub hold: Hold,
}

pub enum Plan {
    Request(RequestNode),
    Reply {
        node: RequestNode,
        target: Option<String>,
    },
    Publish(Publish),
    Consume(Box<Consume>),
}

pub struct Refusal {
    pub condition: &'static str,
    pub description: String,
}

fn refuse(condition: &'static str, description: impl Into<String>) -> Refusal {
    Refusal {
        condition,
        description: description.into(),
    }
}

/// The hub a name means: the topic of that name, or else the one that matches it
/// ignoring case (Event Hubs' names are case-insensitive, Kafka's are not).
pub fn find_hub(shared: &Connection, name: &str) -> Option<TopicMeta> {
    let topics = shared.hubs.broker.topics();
    if let Some(t) = topics.get(name) {
        return (!t.internal).then(|| t.clone());
    }
    let found = topics
        .all()
        .find(|t| !t.internal && t.name.eq_ignore_ascii_case(name))
        .cloned();
    found
}

/// Whether `meta` has consumer group `cg`.
pub fn has_consumer_group(meta: &TopicMeta, cg: &str) -> bool {
    cg.eq_ignore_ascii_case(DEFAULT_CONSUMER_GROUP)
        || meta
            .configs
            .get(CONSUMER_GROUPS_CONFIG)
            .is_some_and(|list| list.split(',').any(|g| g.trim().eq_ignore_ascii_case(cg)))
}

fn allowed(shared: &Connection, entity: &str, hub: &str, right: Right) -> Result<u64, Refusal> {
    shared
        .claims
        .allowed_until(entity, hub, right, now_secs())
        .ok_or_else(|| {
            refuse(
                UNAUTHORIZED,
                format!("no valid token with the {right:?} claim for {entity}"),
            )
        })
}

pub fn plan(
    attach: &Attach,
    node: Option<Node>,
    address: &str,
    shared: &Connection,
) -> Result<Plan, Refusal> {
    let client_sends = attach.role == fe2o3_amqp_types::definitions::Role::Sender;
    let Some(node) = node else {
        return Err(refuse(
            NOT_FOUND,
            format!("no entity at '{}'", crate::address::printable(address)),
        ));
    };
    match (node.clone(), client_sends) {
        (Node::Cbs, true) => Ok(Plan::Request(RequestNode::Cbs)),
        (Node::Management, true) => Ok(Plan::Request(RequestNode::Management)),
        (Node::Cbs, false) | (Node::Management, false) => {
            let node = if matches!(node, Node::Cbs) {
                RequestNode::Cbs
            } else {
                RequestNode::Management
            };
            Ok(Plan::Reply {
                node,
                target: reply_address(attach),
            })
        }
        (Node::Hub(hub), true) | (Node::Partition { hub, .. }, true) => {
            let partition = match node {
                Node::Partition { partition, .. } => Some(partition),
                _ => None,
            };
            let meta = find_hub(shared, &hub).ok_or_else(|| {
                refuse(
                    NOT_FOUND,
                    format!("The messaging entity '{hub}' could not be found"),
                )
            })?;
            if let Some(p) = partition {
                if p < 0 || p >= meta.partitions {
                    return Err(refuse(
                        crate::server::ARGUMENT_OUT_OF_RANGE,
                        format!("partition {p} is not in 0..{} of {hub}", meta.partitions),
                    ));
                }
            }
            let until = allowed(shared, address, &meta.name, Right::Send)?;
            Ok(Plan::Publish(Publish {
                partitions: meta.partitions.max(1) as u32,
                topic: meta.name,
                partition,
                entity: address.to_string(),
                until,
            }))
        }
        (
            Node::ConsumerPartition {
                hub,
                consumer_group,
                partition,
            },
            false,
        ) => {
            let meta = find_hub(shared, &hub).ok_or_else(|| {
                refuse(
                    NOT_FOUND,
                    format!("The messaging entity '{hub}' could not be found"),
                )
            })?;
            if !has_consumer_group(&meta, &consumer_group) {
                return Err(refuse(
                    NOT_FOUND,
                    format!("The messaging entity '{hub}/ConsumerGroups/{consumer_group}' could not be found"),
                ));
            }
            if partition < 0 || partition >= meta.partitions {
                return Err(refuse(
                    crate::server::ARGUMENT_OUT_OF_RANGE,
                    format!(
                        "partition {partition} is not in 0..{} of {hub}",
                        meta.partitions
                    ),
                ));
            }
            let until = allowed(shared, address, &meta.name, Right::Listen)?;
            let start = start_position(attach)?;
            let epoch = epoch(attach)?;
            let hold = shared
                .hubs
                .ownership
                .acquire(&meta.name, &consumer_group, partition, epoch)
                .map_err(|r| match r {
                    Refused::Epoch(m) => refuse(LINK_STOLEN, m),
                    Refused::TooManyReceivers => refuse(
                        RESOURCE_LIMIT,
                        format!(
                            "at most {} receivers per partition and consumer group",
                            crate::ownership::MAX_RECEIVERS
                        ),
                    ),
                })?;
            Ok(Plan::Consume(Box::new(Consume {
                topic: meta.name,
                partition,
                start,
                entity: address.to_string(),
                until,
                hold,
            })))
        }
        (_, true) => Err(refuse(NOT_FOUND, "cannot send to this address")),
        (_, false) => Err(refuse(NOT_FOUND, "cannot receive from this address")),
    }
}

/// The address replies on this link answer: its target, or its name when it has no
/// target address (JavaScript's `$cbs` receiver sets `reply-to` to the link name).
fn reply_address(attach: &Attach) -> Option<String> {
    crate::server::target_address(attach).or_else(|| Some(attach.name.clone()))
}

/// The selector filter's expression: its descriptor is the symbol (Python, Java, Rust)
/// or the ulong code (JavaScript).
fn start_position(attach: &Attach) -> Result<StartAt, Refusal> {
    let Some(filters) = attach.source.as_ref().and_then(|s| s.filter.as_ref()) else {
        return Ok(StartAt::Latest);
    };
    let Some(value) = selector(filters) else {
        return Ok(StartAt::Latest);
    };
    let expr = match value {
        Value::Described(d) => match &d.value {
            Value::String(s) => s.clone(),
            _ => {
                return Err(refuse(
                    ARGUMENT_ERROR,
                    "the selector filter is not a string",
                ))
            }
        },
        Value::String(s) => s.clone(),
        _ => {
            return Err(refuse(
                ARGUMENT_ERROR,
                "the selector filter is not a string",
            ))
        }
    };
    filter::parse_selector(&expr).map_err(|e| refuse(ARGUMENT_ERROR, e.to_string()))
}

fn selector(filters: &OrderedMap<Symbol, Value>) -> Option<&Value> {
    filters
        .iter()
        .find(|(k, v)| {
            k.as_str() == SELECTOR_FILTER
                || matches!(v, Value::Described(d) if matches!(&d.descriptor,
                    serde_amqp::descriptor::Descriptor::Code(c) if *c == SELECTOR_FILTER_CODE))
        })
        .map(|(_, v)| v)
}

fn epoch(attach: &Attach) -> Result<Option<i64>, Refusal> {
    let Some(props) = &attach.properties else {
        return Ok(None);
    };
    match props.get(&Symbol::from(EPOCH)) {
        None => Ok(None),
        Some(Value::Long(e)) => Ok(Some(*e)),
        Some(Value::Int(e)) => Ok(Some(i64::from(*e))),
        Some(_) => Err(refuse(ARGUMENT_ERROR, "com.microsoft:epoch must be a long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp_types::definitions::Role;
    use fe2o3_amqp_types::messaging::{Source, Target, TargetArchetype};

    fn reply_link(name: &str, target: Option<&str>) -> Attach {
        Attach {
            name: name.to_string(),
            handle: 1.into(),
            role: Role::Receiver,
            snd_settle_mode: Default::default(),
            rcv_settle_mode: Default::default(),
            source: Some(Box::new(Source::builder().address("$cbs").build())),
            target: Some(Box::new(TargetArchetype::Target(Target {
                address: target.map(str::to_string),
                ..Default::default()
            }))),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: None,
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }
    }

    #[test]
    fn replies_go_to_the_target_or_else_the_link_name() {
        // JavaScript's $cbs receiver: no target address, reply-to is the link name.
        let js_cbs = reply_link("cbs-492abc18", None);
        assert_eq!(reply_address(&js_cbs).as_deref(), Some("cbs-492abc18"));
        // JavaScript's $management receiver and Python's: the target address.
        let js_mgmt = reply_link("mgmt-1", Some("mgmt-1-reply"));
        assert_eq!(reply_address(&js_mgmt).as_deref(), Some("mgmt-1-reply"));
        let py = reply_link("py-cbs", Some("$cbs"));
        assert_eq!(reply_address(&py).as_deref(), Some("$cbs"));
    }
}
