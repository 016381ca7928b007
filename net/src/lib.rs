//! Runnel's network edge, below any wire protocol: a listener that counts and caps
//! connections, a [`Transport`] a protocol's connection loop reads frames from and writes
//! responses to, the request-memory budget shared by all connections, and the writer
//! that sends record sets from segment files (`sendfile` on plain TCP, a bounded copy on
//! anything else, such as TLS).
//!
//! [`tls`] wraps a listener's connections in TLS (rustls) and reads a client
//! certificate's subject.
//!
//! Framing, requests and responses belong to the protocol crates (`kafka/`, later AMQP).

mod budget;
mod listener;
mod send_file;
pub mod tls;
mod transport;

pub use budget::{FramePermit, RequestMemory};
pub use listener::{Accepted, ConnectionLimits, ConnectionSlot, Limit, Listener};
pub use send_file::COPY_CHUNK;
pub use transport::{CopyWriter, OutPart, ResponseWriter, TcpWriter, Transport};
