//! The Kafka wire format for Runnel: framing, request/response headers, the message
//! catalog (from the `kafka-protocol` crate) and fetch responses encoded as parts.
//!
//! This crate does no I/O: bytes in, typed values out, and back. Record batches live in
//! `runnel-records`, re-exported here for the Kafka front end's convenience.

pub mod api;
pub mod frame;
pub mod response_parts;

pub use runnel_records::{compression, record_batch, records};
