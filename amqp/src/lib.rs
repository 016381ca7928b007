//! The Azure Event Hubs endpoint: AMQP 1.0 for the Azure SDKs, over the same partitions
//! Kafka clients read and write. The design is in docs/design/event-hubs-amqp.md.

pub mod emulator_config;
pub mod filter;
pub mod partitioner;
