//! An async Kafka client on top of `runnel-protocol`: a pipelined [`Connection`] with
//! ApiVersions negotiation, a [`Client`] with bootstrap and a metadata cache, an
//! [`Admin`] API, a batching idempotent [`Producer`] and an assign/seek [`Consumer`].
//!
//! Everything the broker sends is untrusted: frames are capped at
//! `max_response_bytes`, decompression at `max_decompressed_bytes`, and malformed input
//! is an error, never a panic.
//!
//! ```no_run
//! use std::time::Duration;
//! use runnel_client::{Admin, Client, Consumer, ConsumerConfig, OffsetReset, Producer,
//!     ProducerConfig, TopicPartition};
//!
//! # async fn demo() -> runnel_client::Result<()> {
//! let client = Client::bootstrap("127.0.0.1:9092").await?;
//! Admin::new(client.clone()).create_topic("events", 3).await?;
//!
//! // Idempotent, acks=all by default; batches by linger/batch_size.
//! let producer = Producer::new(client.clone(), ProducerConfig::default())?;
//! let delivery = producer.send("events", Some(b"key"), Some(b"value"), &[("h", None)]).await?;
//! producer.flush().await?;
//! let (partition, offset) = delivery.await?;
//!
//! let mut consumer = Consumer::new(client, ConsumerConfig {
//!     auto_offset_reset: OffsetReset::Earliest,
//!     ..ConsumerConfig::default()
//! });
//! consumer.assign([TopicPartition::new("events", partition)]);
//! consumer.seek(&TopicPartition::new("events", partition), offset)?;
//! let records = consumer.poll(Duration::from_secs(1)).await?;
//! # let _ = records;
//! # Ok(())
//! # }
//! ```

pub mod acl;
pub mod admin;
pub mod client;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod group;
pub mod partitioner;
pub mod producer;
mod sasl;
pub mod security;

pub use admin::{
    AbortTransactionSpec, AlterConfigOp, ConfigEntry, ConfigResource, GroupDescription,
    GroupListing, GroupMember, ListTransactionsOptions, ListedOffset, NewTopic, OffsetSpec, OpType,
    PartitionInfo, ProducerState, TopicDescription, TransactionDescription, TransactionListing,
};
pub use client::{Client, ClientConfig};
pub use connection::{Connection, ConnectionConfig};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
pub use error::{Error, Result};
pub use group::GroupConfig;
pub use producer::{Acks, Delivery, Producer, ProducerConfig, ProducerRecord};
pub use runnel_protocol::record_batch::Compression;
pub use security::{SaslCredentials, SaslMechanism, SecurityConfig, SecurityProtocol, TlsSettings};

/// A topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

pub use admin::Admin;
