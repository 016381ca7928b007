//! The Kafka wire format for Runnel: framing, request/response headers, the message
//! catalog (from the `kafka-protocol` crate) and our zero-copy record batch view.
//!
//! This crate does no I/O: bytes in, typed values out, and back.

pub mod api;
pub mod compression;
pub mod frame;
pub mod record_batch;
pub mod records;
pub mod response_parts;
