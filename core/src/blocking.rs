//! Blocking file work from async code.

/// Run file work (the topic registry's fsyncs, creating or deleting partition
/// directories, an append to `__consumer_offsets`) on this thread, after the runtime
/// has moved its other tasks to another worker, so a slow disk stalls only this request.
pub fn in_place<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
