//! The emulator's drop-in mode: its Config.json's hubs and consumer groups become
//! topics, and its documented connection string (policy `RootManageSharedAccessKey`,
//! key `SAS_KEY_VALUE`) works, for AMQP and for Kafka's `$ConnectionString`.

use std::collections::BTreeMap;

use runnel_core::Broker;
use runnel_security::sas::{Rights, SasKey};
use runnel_security::SecurityStore;

use crate::emulator_config::EmulatorConfig;
use crate::plan::CONSUMER_GROUPS_CONFIG;

pub const EMULATOR_POLICY: &str = "RootManageSharedAccessKey";
pub const EMULATOR_KEY: &str = "SAS_KEY_VALUE";

/// Create the hubs that do not exist, grow those with fewer partitions, set every
/// hub's consumer groups, and make the emulator's policy.
pub async fn apply(
    broker: &Broker,
    security: &SecurityStore,
    config: &EmulatorConfig,
) -> std::io::Result<()> {
    for w in &config.warnings {
        tracing::warn!(warning = %w, "Event Hubs config");
    }
    for hub in &config.hubs {
        let groups: Vec<&str> = hub
            .consumer_groups
            .iter()
            .map(String::as_str)
            .filter(|g| !g.eq_ignore_ascii_case(crate::plan::DEFAULT_CONSUMER_GROUP))
            .collect();
        let groups = groups.join(",");
        let partitions = i32::try_from(hub.partition_count).map_err(std::io::Error::other)?;
        let fail = |e: runnel_core::broker::BrokerError| {
            std::io::Error::other(format!(
                "Event Hubs config: hub {}: {}",
                hub.name, e.message
            ))
        };
        match broker.topic_meta(&hub.name) {
            None => {
                // Enqueued time is broker time, as Event Hubs' is, whoever produces.
                let configs = vec![
                    (
                        "message.timestamp.type".to_string(),
                        Some("LogAppendTime".to_string()),
                    ),
                    (CONSUMER_GROUPS_CONFIG.to_string(), Some(groups)),
                ];
                broker
                    .create_topic(&hub.name, partitions, 1, &configs, false)
                    .await
                    .map_err(fail)?;
                tracing::info!(hub = %hub.name, partitions, "created Event Hub from the config");
            }
            Some(meta) => {
                if meta.partitions < partitions {
                    broker
                        .create_partitions(&hub.name, partitions, false)
                        .await
                        .map_err(fail)?;
                }
                if meta.configs.get(CONSUMER_GROUPS_CONFIG).map(String::as_str)
                    != Some(groups.as_str())
                {
                    let mut configs: BTreeMap<String, String> = meta.configs.clone();
                    configs.insert(CONSUMER_GROUPS_CONFIG.to_string(), groups);
                    broker
                        .set_topic_configs(&hub.name, configs, false)
                        .await
                        .map_err(fail)?;
                }
            }
        }
    }
    let manage = Rights {
        send: true,
        listen: true,
        manage: true,
    };
    security.ensure_policy(
        EMULATOR_POLICY,
        None,
        manage,
        SasKey::from_text(EMULATOR_KEY),
    )
}
