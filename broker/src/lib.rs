//! The Runnel broker: a Kafka-wire-compatible server over the `runnel-storage` log.
//!
//! - [`config`]: broker settings (Kafka names) from defaults, TOML, env and CLI.
//! - [`broker`]: shared state (topics, partitions, producer ids).
//! - [`partition`]: a partition's log, high watermark, flusher and fetch waiters.
//! - [`fetch_session`]: KIP-227 incremental fetch sessions and their bounded cache.
//! - [`server`]: connections, framing, in-order responses.
//! - [`context`]: who sent a request (principal, listener, client id, peer); the
//!   authorizer hook.
//! - [`group`]: the group coordinator and committed offsets (`__consumer_offsets`).
//! - [`log_cleaner`]: the retention task and the log cleaner (compaction) threads.
//! - [`metrics`]: Prometheus counters and the `GET /metrics` listener.
//! - `handlers`: one function per API.
//! - [`topic_config`], [`topics`]: the pieces handlers lean on.

mod blocking;
pub mod broker;
pub mod config;
pub mod context;
pub mod fetch_session;
/// The group coordinator lives in `runnel-coordinator`; this keeps its old path.
pub use runnel_coordinator::group;
mod group_timers;
mod handlers;
pub mod log_cleaner;
pub mod metrics;
mod offsets_log;
pub mod partition;
mod poison;
pub use runnel_storage::producer_state;
pub mod server;
pub mod settings;
pub mod topic_config;
pub mod topics;

use std::net::SocketAddr;
use std::sync::Arc;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use server::Server;

/// Where a started broker listens.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// The Kafka listener.
    pub addr: SocketAddr,
    /// The metrics listener (`GET /metrics`), unless disabled or its default address
    /// was taken.
    pub metrics: Option<SocketAddr>,
}

/// Open the data directory, bind the listener and serve until `shutdown` flips to true;
/// then flush and close cleanly. `on_ready` gets the bound address.
pub async fn run(
    config: BrokerConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
    on_ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    run_with(config, shutdown, |l| on_ready(l.addr)).await
}

/// [`run`], also serving metrics on `metrics.listener`; `on_ready` gets both addresses.
pub async fn run_with(
    config: BrokerConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
    on_ready: impl FnOnce(Listening),
) -> std::io::Result<()> {
    // Bound first: a configured address that is taken stops the start before the data
    // directory is opened.
    let metrics_listener = metrics::bind(&config).await?;
    let broker = Arc::new(tokio::task::block_in_place(|| Broker::open(config))?);
    let server = Server::bind(broker.clone()).await?;
    // Maintenance holds the broker, not the other way round; it stops before the logs
    // close.
    let maintenance = log_cleaner::LogMaintenance::start(broker.clone())?;
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let metrics_task = metrics_listener.map(|listener| {
        let exporter = Arc::new(metrics::Exporter::new(broker.clone(), server.metrics()));
        tokio::spawn(metrics::serve(listener, exporter, shutdown.clone()))
    });
    on_ready(Listening {
        addr: server.local_addr()?,
        metrics: metrics_addr,
    });
    server.run(shutdown).await;
    if let Some(task) = metrics_task {
        task.abort();
    }
    tokio::task::block_in_place(|| {
        maintenance.stop();
        broker.shutdown()
    })
}
