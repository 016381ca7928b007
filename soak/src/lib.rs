//! The fault harness (issue 17): real clients produce and consume through a real broker
//! while faults are injected ([`driver`]); every send, acknowledgement, poll, commit and
//! rebalance goes into a history ([`history`]); the checker ([`check`]) reads it.
//! RELIABILITY.md says what each fault does and how to reproduce a run.

pub mod broker;
pub mod check;
pub mod driver;
pub mod history;
pub mod workload;
