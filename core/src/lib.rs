//! Runnel's core, below any wire protocol: the broker's topics and partitions over the
//! storage engine, and what runs beside them.
//!
//! - [`broker`]: shared state (topics, partitions, producer ids) and its
//!   protocol-neutral errors ([`broker::ErrorKind`]).
//! - [`partition`]: a partition's log (private), high watermark, flusher and fetch
//!   waiters; the only code that touches a shared log.
//! - [`topics`], [`topic_config`]: the topic registry and topic configs, with Kafka's
//!   names and rules.
//! - [`config`], [`settings`]: the broker's settings (Kafka names) from defaults, TOML,
//!   env and CLI, checked against one catalog.
//! - [`log_cleaner`]: retention, the log cleaner (compaction) and producer expiry.
//! - [`counters`]: per-partition traffic and fsync latency, for the metrics exporter.
//!
//! Protocol front ends (`runnel-kafka`, later AMQP) translate requests into calls here
//! and [`broker::ErrorKind`]s into their own error codes.

pub mod blocking;
pub mod broker;
pub mod config;
pub mod counters;
pub mod listeners;
pub mod log_cleaner;
pub mod partition;
pub mod poison;
pub mod settings;
pub mod topic_config;
pub mod topics;

pub use broker::Broker;
pub use config::BrokerConfig;
