//! The security store is broker-wide state: a panic while its lock was held may have
//! left it half-updated, and serving from it could let the wrong client in. The process
//! stops instead, and a restart reloads the store from its file, as after kill -9 (the
//! core's `poison.rs` has the same rule for its own state).

use std::sync::LockResult;

/// The guard, or stop the process if a panic poisoned the lock.
pub(crate) fn or_stop<G>(result: LockResult<G>, what: &'static str) -> G {
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
