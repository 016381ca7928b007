//! The broker as the Kafka front end sees it: the protocol-neutral core plus what only
//! Kafka has, the group coordinator over `__consumer_offsets` and KIP-227 fetch sessions.

use std::ops::Deref;
use std::sync::Arc;

use runnel_coordinator::group::{GroupConfig, GroupCoordinator, OFFSETS_TOPIC};
use runnel_coordinator::SystemClock;
use runnel_core::Broker;

use crate::fetch_session::FetchSessionCache;
use crate::group_settings::group_config;
use crate::group_timers;
use crate::offsets_log::{self, PartitionLog, RegistryTopics};

pub struct KafkaBroker {
    pub core: Arc<Broker>,
    /// The group coordinator over `__consumer_offsets`.
    pub groups: Arc<GroupCoordinator>,
    /// KIP-227 fetch sessions.
    pub fetch_sessions: FetchSessionCache,
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
        Ok(KafkaBroker {
            core,
            groups,
            fetch_sessions,
        })
    }
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
        Arc::new(SystemClock),
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
