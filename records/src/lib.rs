//! Kafka's v2 record batches as Runnel stores and serves them: a zero-copy view of the
//! batch header with its checks and rewrites ([`record_batch`]), the records inside
//! ([`records`]) and the four codecs ([`compression`]).
//!
//! No I/O and no Kafka message catalog: the storage engine and a second wire protocol
//! build on this without `kafka-protocol`.

pub mod compression;
pub mod record_batch;
pub mod records;
