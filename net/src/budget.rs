//! The request-memory budget (`queued.max.request.bytes`): bytes of requests read but not
//! yet answered, across all connections. A connection takes its share as soon as a
//! frame's size is known, so together they never buffer more than the budget (plus one
//! read each).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Memory held for one frame; returned to the budget on drop.
pub type FramePermit = OwnedSemaphorePermit;

#[derive(Clone)]
pub struct RequestMemory {
    bytes: Arc<Semaphore>,
    budget: usize,
}

impl RequestMemory {
    pub fn new(budget: usize) -> RequestMemory {
        RequestMemory {
            bytes: Arc::new(Semaphore::new(budget)),
            budget,
        }
    }

    /// Wait for memory for a frame of `size` bytes. A frame larger than the whole budget
    /// takes all of it (so it can still be served, alone). `None` once the budget is
    /// closed.
    pub async fn acquire(&self, size: usize) -> Option<FramePermit> {
        let want = size.min(self.budget).max(1);
        let want = u32::try_from(want).unwrap_or(u32::MAX);
        self.bytes.clone().acquire_many_owned(want).await.ok()
    }

    /// Bytes free right now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_share_the_budget_and_give_it_back() {
        let memory = RequestMemory::new(100);
        let a = memory.acquire(60).await.unwrap();
        assert_eq!(memory.available(), 40);
        // Larger than the budget: waits for all of it.
        let waiting = {
            let memory = memory.clone();
            tokio::spawn(async move { memory.acquire(1000).await.map(|p| p.num_permits()) })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        assert_eq!(waiting.await.unwrap(), Some(100));
        assert_eq!(memory.available(), 100);
    }
}
