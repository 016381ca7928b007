//! Runnel's coordinators: state machines kept in an internal topic, sans-io.
//!
//! The generic pieces, for every coordinator (groups and transactions now; a schema
//! registry later):
//! - [`log`]: the internal topic as a coordinator sees it ([`CoordinatorLog`]: append a
//!   batch of [`LogRecord`]s, wait until it is durable as a [`DurableFuture`]) and the
//!   replay of a chunk of stored batches at start.
//! - [`runtime`]: what a coordinator is given instead of reaching for a runtime: a
//!   [`Clock`], a [`Spawn`]er for background tasks and a [`Wake`] callback for its
//!   timer driver.
//! - `poison`: a poisoned coordinator lock stops the process.
//!
//! The coordinators:
//! - [`group`]: consumer groups (classic and KIP-848) and their committed offsets in
//!   `__consumer_offsets`.
//! - [`txn`]: transactional ids, producer epochs and two-phase commits (with KIP-890's
//!   transaction version 2) in `__transaction_state`; markers are written through the
//!   broker's [`txn::TxnMarkers`].
//!
//! Nothing here does I/O or depends on an async runtime (no tokio): the log is a trait
//! the broker implements over its partitions, time and spawning are passed in, and the
//! timer loop that calls a coordinator's `tick` is the broker's.

pub mod group;
pub mod log;
mod poison;
pub mod runtime;
pub mod txn;

pub use log::{CoordinatorLog, DurableFuture, LogRecord};
pub use runtime::{Clock, Spawn, SystemClock, Task, Wake};
