//! What a coordinator needs from the runtime it runs in, passed in rather than reached
//! for, so that the crate depends on no async runtime and tests can drive time:
//! - [`Clock`]: the time (monotonic for deadlines, wall-clock for timestamps written to
//!   the log); [`SystemClock`] is the real one.
//! - [`Spawn`]: run a task in the background (to finish a request once its write is
//!   durable); the broker spawns on tokio.
//! - [`Wake`]: how a coordinator tells its timer driver that the next deadline may have
//!   moved earlier, so that the driver calls its `tick` again before sleeping on.

use std::future::Future;
use std::pin::Pin;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A coordinator's source of time.
pub trait Clock: Send + Sync {
    /// Monotonic time, for deadlines (sessions, rebalances, retention checks).
    fn now(&self) -> Instant;
    /// Wall-clock milliseconds since the Unix epoch, for timestamps kept in records.
    fn now_ms(&self) -> i64;
}

/// The system's clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A background task.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs tasks in the background. A closure `Fn(Task)` is one.
pub trait Spawn: Send + Sync {
    fn spawn(&self, task: Task);
}

impl<F: Fn(Task) + Send + Sync> Spawn for F {
    fn spawn(&self, task: Task) {
        self(task)
    }
}

/// Called (without the coordinator's lock held) when a deadline may have moved earlier.
pub type Wake = Box<dyn Fn() + Send + Sync>;

/// A minimal executor for the crate's tests: no runtime dependency.
#[cfg(test)]
pub(crate) mod testing {
    use std::future::Future;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::Thread;
    use std::time::{Duration, Instant};

    use super::{Clock, Spawn, SystemClock, Task};

    /// A clock that moves only when told to.
    pub struct ManualClock {
        start: Instant,
        start_ms: i64,
        elapsed: Mutex<Duration>,
    }

    impl ManualClock {
        pub fn new() -> ManualClock {
            ManualClock {
                start: Instant::now(),
                start_ms: SystemClock.now_ms(),
                elapsed: Mutex::new(Duration::ZERO),
            }
        }
        pub fn advance(&self, by: Duration) {
            *self.elapsed.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            self.start + *self.elapsed.lock().unwrap()
        }
        fn now_ms(&self) -> i64 {
            self.start_ms + self.elapsed.lock().unwrap().as_millis() as i64
        }
    }

    struct Unpark(Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// Run `f` to completion on this thread.
    pub fn block_on<F: Future>(f: F) -> F::Output {
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            match f.as_mut().poll(&mut cx) {
                Poll::Ready(v) => return v,
                Poll::Pending => std::thread::park(),
            }
        }
    }

    /// A [`Spawn`] that keeps tasks until [`Tasks::run`], so a test sees the state
    /// before and after them.
    #[derive(Default)]
    pub struct Tasks(Mutex<Vec<Task>>);

    impl Spawn for Tasks {
        fn spawn(&self, task: Task) {
            self.0.lock().unwrap().push(task);
        }
    }

    impl Tasks {
        /// Run the queued tasks (and those they spawn) to completion; how many ran.
        pub fn run(&self) -> usize {
            let mut ran = 0;
            loop {
                let next = self.0.lock().unwrap().pop();
                match next {
                    Some(t) => {
                        block_on(t);
                        ran += 1;
                    }
                    None => return ran,
                }
            }
        }
    }
}
