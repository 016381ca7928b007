//! The broker's wall clock: every wall-clock read of the broker (timestamps it writes,
//! retention, compaction lags, transaction and producer-id expiry, offsets retention)
//! goes through [`now_ms`], so that tests can move it.
//!
//! Deadlines that count elapsed time (group sessions, rebalance and join timeouts,
//! fetch sessions, quotas, the maintenance threads' intervals) use the monotonic clock
//! (`Instant`) and are not moved by it, as a wall-clock jump does not move them.
//!
//! # Injecting a clock jump
//!
//! `RUNNEL_CLOCK_OFFSET_FILE=/path` makes [`now_ms`] return the system time plus the
//! integer number of milliseconds (it may be negative) written in that file. The file
//! is re-read at most every 100 ms, so a test jumps the broker's clock by rewriting it
//! (`echo 3600000 > /path` jumps an hour forward, `echo -3600000` an hour back). A
//! missing file is an offset of 0; a file that does not hold an integer fails the start
//! (as a malformed `RUNNEL_FAULTS` does, see [`crate::fault`]) and, later, keeps the
//! previous offset. The broker logs a warning at start when the variable is set, and
//! one each time the offset changes.
//!
//! Without the variable, [`now_ms`] costs one atomic load more than
//! `SystemTime::now()`; with it, a check of a deadline on the monotonic clock (no system
//! call) and a file read every 100 ms at most.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The environment variable read by [`install_from_env`].
pub const ENV_VAR: &str = "RUNNEL_CLOCK_OFFSET_FILE";

/// How long a read offset is used before the file is read again.
const REREAD_MS: u64 = 100;

struct Injected {
    path: PathBuf,
    start: Instant,
    /// Milliseconds after `start` from which the file is due to be read again.
    next_read_ms: AtomicU64,
    offset_ms: AtomicI64,
    /// Held by the one thread re-reading the file; the last error, so that a broken
    /// file is logged once rather than every 100 ms.
    refresh: Mutex<Option<String>>,
}

static STATE: OnceLock<Result<Option<Injected>, String>> = OnceLock::new();

/// Wall-clock milliseconds since the epoch, plus the injected offset if there is one.
#[inline]
pub fn now_ms() -> i64 {
    let system = system_ms();
    match STATE.get_or_init(load) {
        Ok(Some(injected)) => system.saturating_add(injected.offset()),
        _ => system,
    }
}

/// The injected offset in milliseconds, if [`ENV_VAR`] is set (for reports that want
/// to say the clock is not the system's).
pub fn injected_offset_ms() -> Option<i64> {
    match STATE.get_or_init(load) {
        Ok(Some(injected)) => Some(injected.offset()),
        _ => None,
    }
}

/// Read [`ENV_VAR`] (only the first call does): an error if the file it names holds
/// something other than an integer. Called at broker start, beside the fault plan.
pub fn install_from_env() -> Result<(), String> {
    STATE
        .get_or_init(load)
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn load() -> Result<Option<Injected>, String> {
    let Some(path) = std::env::var_os(ENV_VAR) else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    let offset = read_offset(&path).map_err(|e| format!("{ENV_VAR}: {e}"))?;
    tracing::warn!(path = %path.display(), offset_ms = offset,
        "the wall clock is injected: {ENV_VAR}={} (offset {offset} ms)", path.display());
    Ok(Some(Injected {
        path,
        start: Instant::now(),
        next_read_ms: AtomicU64::new(REREAD_MS),
        offset_ms: AtomicI64::new(offset),
        refresh: Mutex::new(None),
    }))
}

/// The offset in `path`: 0 if there is no such file.
fn read_offset(path: &Path) -> Result<i64, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => s.trim().parse::<i64>().map_err(|_| {
            format!(
                "{} does not hold an integer: {:?}",
                path.display(),
                s.trim()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

impl Injected {
    #[inline]
    fn offset(&self) -> i64 {
        let elapsed = self.start.elapsed().as_millis() as u64;
        if elapsed >= self.next_read_ms.load(Ordering::Relaxed) {
            self.reread(elapsed);
        }
        self.offset_ms.load(Ordering::Relaxed)
    }

    #[cold]
    fn reread(&self, elapsed: u64) {
        // Another thread is reading the file: use the offset as it is.
        let Ok(mut last_error) = self.refresh.try_lock() else {
            return;
        };
        if elapsed < self.next_read_ms.load(Ordering::Relaxed) {
            return;
        }
        match read_offset(&self.path) {
            Ok(offset) => {
                *last_error = None;
                let old = self.offset_ms.swap(offset, Ordering::Relaxed);
                if old != offset {
                    tracing::warn!(
                        old_offset_ms = old,
                        offset_ms = offset,
                        jump_ms = offset.saturating_sub(old),
                        "the injected wall clock jumped by {} ms",
                        offset.saturating_sub(old)
                    );
                }
            }
            Err(e) => {
                if last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(error = %e, "the injected clock offset could not be read; keeping the last one");
                    *last_error = Some(e);
                }
            }
        }
        self.next_read_ms
            .store(elapsed.saturating_add(REREAD_MS), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_file_is_read_again_after_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offset");
        std::fs::write(&path, "-5000\n").unwrap();
        assert_eq!(read_offset(&path), Ok(-5000));
        let injected = Injected {
            path: path.clone(),
            start: Instant::now(),
            next_read_ms: AtomicU64::new(0),
            offset_ms: AtomicI64::new(0),
            refresh: Mutex::new(None),
        };
        assert_eq!(injected.offset(), -5000);
        // Within the interval the file is not read again.
        std::fs::write(&path, "7000").unwrap();
        injected.next_read_ms.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(injected.offset(), -5000);
        injected.next_read_ms.store(0, Ordering::Relaxed);
        assert_eq!(injected.offset(), 7000);
        // A broken file keeps the last offset; a missing one is 0.
        std::fs::write(&path, "soon").unwrap();
        injected.next_read_ms.store(0, Ordering::Relaxed);
        assert_eq!(injected.offset(), 7000);
        std::fs::remove_file(&path).unwrap();
        injected.next_read_ms.store(0, Ordering::Relaxed);
        assert_eq!(injected.offset(), 0);
    }
}
