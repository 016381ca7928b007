//! The group coordinator on tokio: its background tasks spawn on the runtime, and one
//! task runs its timers (sessions, rebalances, offset retention), sleeping until the
//! deadline `tick` returned or until the coordinator says a deadline moved earlier.
//! The coordinator itself (`runnel-coordinator`) knows no runtime.

use std::sync::{Arc, Weak};
use std::time::Duration;

use runnel_coordinator::runtime::{Clock, Spawn, Task};
use tokio::sync::Notify;

use runnel_coordinator::group::GroupCoordinator;

/// The coordinators' clock: monotonic time for deadlines, and the broker's one wall
/// clock ([`runnel_storage::now_ms`], which `RUNNEL_CLOCK_OFFSET_FILE` moves) for the
/// timestamps they write and the timeouts Kafka keeps in wall-clock time (transaction
/// timeouts, offsets retention, transactional id expiry).
#[derive(Debug, Default, Clone, Copy)]
pub struct BrokerClock;

impl Clock for BrokerClock {
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
    fn now_ms(&self) -> i64 {
        runnel_storage::now_ms()
    }
}

/// [`Spawn`] on the current tokio runtime.
pub fn spawner() -> Arc<dyn Spawn> {
    Arc::new(|task: Task| {
        tokio::spawn(task);
    })
}

/// Run the coordinator's timers until it is dropped. Needs a tokio runtime.
pub fn start(coordinator: &Arc<GroupCoordinator>) {
    let wake = Arc::new(Notify::new());
    let w = wake.clone();
    if coordinator
        .set_waker(Box::new(move || w.notify_one()))
        .is_err()
    {
        tracing::warn!("the group coordinator's timers are already running");
        return;
    }
    let weak: Weak<GroupCoordinator> = Arc::downgrade(coordinator);
    tokio::spawn(async move {
        loop {
            let notified = wake.notified();
            let next = match weak.upgrade() {
                Some(c) => c
                    .tick()
                    .unwrap_or_else(|| c.clock().now() + Duration::from_secs(1)),
                None => return,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {}
                _ = notified => {}
            }
        }
    });
}
