//! What a poisoned lock means. A panic while a lock was held may have left the state it
//! guards half-updated, and serving from it could acknowledge or hand out wrong data.
//! - A partition's log and producer state: the partition goes offline
//!   (KAFKA_STORAGE_ERROR) and the rest of the broker keeps serving (`partition.rs`,
//!   `runnel_storage::SharedLog::lock`).
//! - Broker-wide state (the topic registry, the partition map, the group coordinator,
//!   fetch sessions, the maintenance threads' flags): the process stops, and a restart
//!   recovers from the files, as after kill -9.
//! - Caches (the metrics endpoint's lag timestamps) are cleared and rebuilt.

use std::sync::LockResult;

/// The guard, or stop the process if a panic poisoned the lock.
pub fn or_stop<G>(result: LockResult<G>, what: &'static str) -> G {
    match result {
        Ok(guard) => guard,
        Err(_) => {
            tracing::error!(
                lock = what,
                "a panic interrupted an update of broker-wide state; stopping so that a restart recovers it"
            );
            eprintln!("runnel: the {what} lock was poisoned by a panic; aborting");
            std::process::abort();
        }
    }
}
