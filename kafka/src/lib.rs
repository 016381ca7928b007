//! Runnel's Kafka front end: the Kafka wire protocol over the core.
//!
//! - [`server`]: the connection loop over a `runnel-net` transport: frames in, one
//!   dispatch, responses out in request order.
//! - `handlers`: the one dispatch and a function per API.
//! - [`authentication`]: TLS client certificates and the SASL exchange, per listener
//!   and per connection.
//! - [`context`]: who sent a request (principal, listener, client id, peer); the
//!   authorizer hook.
//! - [`kafka_broker`]: the core plus what only Kafka has (the group coordinator, fetch
//!   sessions).
//! - [`fetch_session`]: KIP-227 incremental fetch sessions and their bounded cache.
//! - [`offsets_log`], [`group_timers`], [`group_settings`]: the group coordinator's
//!   log, runtime and settings.
//! - [`transactions`]: the transaction coordinator over `__transaction_state`, its
//!   markers and timers.
//! - [`quotas`]: client quota enforcement (rates, throttle times).
//! - [`request_metrics`]: per-API request counters.

pub mod authentication;
pub mod context;
pub mod fetch_session;
pub mod group_settings;
pub mod group_timers;
mod handlers;
pub mod kafka_broker;
pub mod offsets_log;
pub mod quotas;
pub mod request_metrics;
pub mod server;
pub mod transactions;

pub use kafka_broker::KafkaBroker;
pub use server::Server;
