//! Kafka's v2 record batches as Runnel stores and serves them: a zero-copy view of the
//! batch header with its checks and rewrites ([`record_batch`]), the records inside
//! ([`records`]), the four codecs ([`compression`]) and [`TopicPartition`].
//!
//! No I/O and no Kafka message catalog: the storage engine and a second wire protocol
//! build on this without `kafka-protocol`.

pub mod compression;
pub mod record_batch;
pub mod records;
pub mod topic_partition;

pub use topic_partition::TopicPartition;
