//! The Runnel broker: a Kafka-wire-compatible server over the `runnel-storage` log.
//!
//! - [`config`]: broker settings (Kafka names) from defaults, TOML, env and CLI.
//! - [`broker`]: shared state (topics, partitions, producer ids).
//! - [`partition`]: a partition's log, high watermark, flusher and fetch waiters.
//! - [`server`]: connections, framing, in-order responses.
//! - [`group`]: the group coordinator and committed offsets (`__consumer_offsets`).
//! - `handlers`: one function per API.
//! - [`topic_config`], [`producer_state`], [`topics`]: the pieces handlers lean on.

pub mod broker;
pub mod config;
pub mod group;
mod handlers;
pub mod partition;
pub mod producer_state;
pub mod server;
pub mod topic_config;
pub mod topics;

use std::net::SocketAddr;
use std::sync::Arc;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use server::Server;

/// Open the data directory, bind the listener and serve until `shutdown` flips to true;
/// then flush and close cleanly. `on_ready` gets the bound address.
pub async fn run(
    config: BrokerConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
    on_ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let broker = Arc::new(tokio::task::block_in_place(|| Broker::open(config))?);
    let server = Server::bind(broker.clone()).await?;
    on_ready(server.local_addr()?);
    server.run(shutdown).await;
    tokio::task::block_in_place(|| broker.shutdown())
}
