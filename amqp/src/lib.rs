//! The Azure Event Hubs endpoint: AMQP 1.0 for the Azure SDKs, over the same partitions
//! Kafka clients read and write. The design is in docs/design/event-hubs-amqp.md.
//!
//! - [`server`]: the listener, one task per connection, session and link.
//! - [`sasl`]: MSSBCBS, ANONYMOUS and PLAIN (a policy name and key).
//! - [`address`]: link addresses and token audiences.
//! - [`claims`]: what a connection's CBS tokens allow, and until when.
//! - [`cbs`] and [`management`]: the `$cbs` and `$management` request nodes.
//! - [`publish`] and [`consume`]: sender and receiver links over `Partition`.
//! - [`message`]: AMQP messages to Kafka records and back.
//! - [`ownership`]: epoch receivers and the five-receiver limit.
//! - [`filter`]: the selector filters of a receiver's start position.
//! - [`partitioner`]: Event Hubs' partition-key hash.
//! - [`emulator_config`]: the emulator's Config.json.

pub mod address;
pub mod cbs;
pub mod claims;
pub mod consume;
pub mod dropin;
pub mod emulator_config;
pub mod filter;
pub mod management;
pub mod message;
pub mod node;
pub mod ownership;
pub mod partitioner;
pub mod plan;
pub mod publish;
pub mod sasl;
pub mod server;

use std::sync::Arc;

use runnel_core::Broker;
use runnel_security::store::SecurityStore;

pub use server::serve;

/// AMQP's limits, as Event Hubs sets them.
pub const MAX_FRAME_SIZE: u32 = 65_536;
pub const IDLE_TIMEOUT_MS: u32 = 240_000;
/// The largest event or batch a sender may send (`max-message-size` on attach).
pub const MAX_MESSAGE_SIZE: u64 = 1_048_576;

/// What the endpoint serves from: the core's partitions and the shared access policies.
#[derive(Clone)]
pub struct EventHubs {
    pub broker: Arc<Broker>,
    pub security: Arc<SecurityStore>,
    /// The namespace's host name, for the audiences of tokens (`sb://HOST/hub`); only
    /// the path after the host is compared.
    pub ownership: Arc<ownership::Ownership>,
    round_robin: Arc<std::sync::atomic::AtomicU32>,
}

impl EventHubs {
    pub fn new(broker: Arc<Broker>, security: Arc<SecurityStore>) -> EventHubs {
        EventHubs {
            broker,
            security,
            ownership: Arc::new(ownership::Ownership::default()),
            round_robin: Arc::new(std::sync::atomic::AtomicU32::new(0)),
        }
    }

    /// The next partition for an event with neither a partition nor a key.
    pub(crate) fn next_round_robin(&self, partitions: u32) -> u32 {
        let n = self
            .round_robin
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        n % partitions.max(1)
    }
}
