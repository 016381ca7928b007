//! The broker as the Kafka front end sees it: the protocol-neutral core plus what only
//! Kafka has, the group coordinator over `__consumer_offsets` and KIP-227 fetch sessions.

use std::ops::Deref;
use std::sync::Arc;

use runnel_coordinator::group::{GroupConfig, GroupCoordinator, OFFSETS_TOPIC};
use runnel_core::Broker;
use runnel_security::authorizer::{Authorizer, AuthorizerConfig};
use runnel_security::store::{parse_add_scram, SecurityStore};

use crate::fetch_session::FetchSessionCache;
use crate::group_settings::group_config;
use crate::group_timers;
use crate::offsets_log::{self, PartitionLog, RegistryTopics};
use crate::quotas::QuotaManager;
use crate::transactions::Transactions;

pub struct KafkaBroker {
    pub core: Arc<Broker>,
    /// The group coordinator over `__consumer_offsets`.
    pub groups: Arc<GroupCoordinator>,
    /// KIP-227 fetch sessions.
    pub fetch_sessions: FetchSessionCache,
    /// SCRAM credentials, ACLs and shared access policies.
    pub security: Arc<SecurityStore>,
    /// Client quotas (KIP-546) as enforced: the security store's quotas and the rates.
    pub quotas: QuotaManager,
    /// The one authorization decision (`authorizer.class.name`, `super.users`,
    /// `allow.everyone.if.no.acl.found`, SAS rights).
    pub authorizer: Arc<Authorizer>,
    /// The transaction coordinator over `__transaction_state`, opened on first use.
    pub transactions: Transactions,
}

/// Handlers reach the core's topics and partitions as `broker.…`; what is Kafka's alone
/// (`groups`, `fetch_sessions`) is a field here.
impl Deref for KafkaBroker {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        &self.core
    }
}

impl KafkaBroker {
    /// Open the Kafka side over an opened core: create `__consumer_offsets` if missing
    /// (compacted, internal), replay it into the group coordinator and start the
    /// coordinator's timers (when a runtime is there).
    pub fn open(core: Arc<Broker>) -> std::io::Result<KafkaBroker> {
        let cfg = group_config(&core.config.settings).map_err(std::io::Error::other)?;
        let groups = open_group_coordinator(&core, cfg)?;
        let fetch_sessions = FetchSessionCache::new(
            core.config.max_incremental_fetch_session_cache_slots,
            core.config.min_incremental_fetch_session_eviction_ms,
        );
        let security = Arc::new(open_security_store(&core)?);
        let settings = &core.config.settings;
        let quotas = QuotaManager::new(
            settings
                .int("quota.window.num")
                .map_err(std::io::Error::other)?,
            settings
                .int("quota.window.size.seconds")
                .map_err(std::io::Error::other)?,
        )
        .with_max_connection_creation_rate(
            settings
                .int("max.connection.creation.rate")
                .map_err(std::io::Error::other)?,
        );
        quotas.load(&security.client_quotas());
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let setting = |e: runnel_core::config::ConfigError| invalid(e.to_string());
        let authorizer_config = AuthorizerConfig::new(
            settings.str("authorizer.class.name").map_err(setting)?,
            settings.str("super.users").map_err(setting)?,
            settings
                .bool("allow.everyone.if.no.acl.found")
                .map_err(setting)?,
        )
        .map_err(invalid)?;
        let authorizer = Arc::new(Authorizer::new(authorizer_config, security.clone()));
        let transactions = Transactions::new(core.clone(), groups.clone())?;
        Ok(KafkaBroker {
            transactions,
            core,
            groups,
            fetch_sessions,
            security,
            quotas,
            authorizer,
        })
    }
}

/// The security store, with `scram.bootstrap.users` added where a user has no
/// credential for that mechanism yet (a restart does not reset changed passwords).
fn open_security_store(core: &Broker) -> std::io::Result<SecurityStore> {
    let store = SecurityStore::open(&core.config.data_dir)?;
    if let Some(spec) = &core.config.scram_bootstrap_users {
        let upserts = parse_add_scram(spec.expose()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("scram.bootstrap.users: {e}"),
            )
        })?;
        for u in upserts {
            if store.scram_credential(&u.user, u.mechanism).is_none() {
                store.upsert_scram(&u.user, u.mechanism, u.credential)?;
                tracing::info!(user = %u.user, mechanism = u.mechanism.name(),
                    "added a SCRAM credential from scram.bootstrap.users");
            }
        }
    }
    Ok(store)
}

fn open_group_coordinator(
    core: &Broker,
    cfg: GroupConfig,
) -> std::io::Result<Arc<GroupCoordinator>> {
    // Kafka's overrides for the offsets topic (offsets.topic.segment.bytes is 100 MiB by
    // default), so its describe shows the same configs.
    let parts = core.open_internal_topic(
        OFFSETS_TOPIC,
        cfg.offsets_partitions,
        &[
            ("cleanup.policy", "compact"),
            ("compression.type", "producer"),
            ("segment.bytes", "104857600"),
        ],
    )?;
    let coordinator = GroupCoordinator::new(
        cfg,
        Arc::new(PartitionLog::new(parts.clone())),
        Arc::new(crate::group_timers::BrokerClock),
        group_timers::spawner(),
    );
    for p in &parts {
        offsets_log::replay(&coordinator, p).map_err(std::io::Error::other)?;
    }
    {
        let topics = core.topics();
        let topic_name = |id: &uuid::Uuid| topics.by_id(id).map(|m| m.name.clone());
        coordinator.finish_load(&topic_name, &RegistryTopics(&topics));
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        group_timers::start(&coordinator);
    }
    Ok(coordinator)
}
