//! Prometheus metrics: counters updated on the request paths, gauges computed at scrape
//! time, and a small HTTP responder for `GET /metrics` (`metrics.listener`, default
//! `127.0.0.1:9644`; empty disables it).
//!
//! Hot-path cost: a request adds to three atomics of its API's slot (histogram bucket,
//! sum, and an error counter only on errors), found by indexing a table with the API key;
//! a produce or fetch adds to two atomics of the partition it already resolved
//! ([`PartitionMetrics`]). No lock and no map lookup per request. Everything else (topic
//! sizes, offsets, consumer lag) is read from the broker's state when scraped.
//!
//! The text encoder is ours rather than the `prometheus-client` crate: every family
//! whose labels come from broker state (topics, partitions, groups) is a gauge or counter
//! computed at scrape time, which that crate would have us re-register into a fresh
//! registry per scrape; the exposition format 0.0.4 itself is a few lines of `write!`
//! (`# HELP`, `# TYPE`, `name{label="value"} number`, label values escaped).
//!
//! The HTTP side is a tiny tokio responder instead of `hyper`: one route, no keep-alive,
//! no request body; a bounded head read with a timeout, then one response and close.
//! `hyper` would add a dependency tree for no feature we use.
//!
//! - the counters the request paths update live beside them: `runnel_core::counters`
//!   (partitions, fsyncs) and `runnel_kafka::request_metrics` (per API).
//! - [`exporter`]: what a scrape computes and how it is written.
//! - [`http`]: the listener.

mod exporter;
mod http;

pub use exporter::Exporter;
pub use http::{bind, serve};
