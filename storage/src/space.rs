//! A full log directory (ENOSPC, EDQUOT) as a handled condition rather than a failure.
//!
//! Kafka takes a log directory offline on any `IOException`, a full disk included, and
//! the broker must be restarted once space is freed. Runnel refuses only the writes that
//! do not fit: an append that runs out of space is cut back to the last whole batch (the
//! log knows where that is), answered KAFKA_STORAGE_ERROR, and the partition stays online
//! for reads; the next append simply tries again, so writes resume as soon as space is
//! freed, with no restart and no polling. A failed fsync is not this: it still takes the
//! log out of service (see [`crate::StorageError::Poisoned`]).
//!
//! The state here is process-wide (one data directory per broker), like the fsync
//! histogram: an operator is told once per episode, a warning when the first write runs
//! out of space and an info line when a write fits again, and a scrape reads
//! [`is_full`] and [`refused_appends`].

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

static FULL: AtomicBool = AtomicBool::new(false);
static REFUSED_APPENDS: AtomicU64 = AtomicU64::new(0);
static EPISODES: AtomicU64 = AtomicU64::new(0);
/// The largest write refused in this episode, and where: the episode ends once that
/// filesystem has that much free, so a small write that fits in the slack of a file's
/// last block (a commit) does not end it while larger batches are still refused (which
/// would log the episode's start and end over and over). 0 for a quota (EDQUOT), whose
/// room statvfs does not show: then any write that fits ends it.
static EPISODE: Mutex<(u64, Option<PathBuf>)> = Mutex::new((0, None));

/// Whether `e` says the filesystem (or the user's quota) has no room.
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// A poisoned lock is taken over: the state is two plain values, each set in one
/// statement, and at worst an episode's log line comes once more or once less.
fn episode() -> std::sync::MutexGuard<'static, (u64, Option<PathBuf>)> {
    EPISODE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A write of `bytes` under `path` found no room. The first one of an episode logs a
/// warning; later ones only count.
pub fn note_full(what: &str, path: &Path, bytes: u64, e: &io::Error) {
    {
        let mut ep = episode();
        let needed = if e.raw_os_error() == Some(libc::EDQUOT) {
            0
        } else {
            bytes.max(ep.0)
        };
        *ep = (needed, Some(path.to_path_buf()));
    }
    if !FULL.swap(true, Ordering::AcqRel) {
        EPISODES.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(path = %path.display(), error = %e, what, bytes,
            "the log directory is full: appends are refused with KAFKA_STORAGE_ERROR until \
             space is freed; reads go on (logged once until there is room again)");
    } else {
        tracing::debug!(path = %path.display(), error = %e, what, bytes, "no space in the log directory");
    }
}

/// An append was refused for want of space.
pub(crate) fn note_refused_append() {
    REFUSED_APPENDS.fetch_add(1, Ordering::Relaxed);
}

/// A write fitted. During an episode, ends it if the largest refused write would now
/// fit too; otherwise one relaxed load.
#[inline]
pub fn note_write_ok() {
    if FULL.load(Ordering::Relaxed) {
        end_if_room();
    }
}

/// End the episode if there is room for the largest refused write (a scrape asks too,
/// so the gauge falls once space is freed even if no append comes).
#[cold]
pub fn end_if_room() {
    let room = {
        let ep = episode();
        match &ep.1 {
            _ if ep.0 == 0 => true,
            Some(path) => free_bytes(path).is_some_and(|free| free >= ep.0),
            None => true,
        }
    };
    if room && FULL.swap(false, Ordering::AcqRel) {
        tracing::info!(
            refused_appends = REFUSED_APPENDS.load(Ordering::Relaxed),
            "the log directory has space again: appends are accepted"
        );
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding `path` (or the
/// nearest existing parent).
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let existing = path.ancestors().find(|p| p.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Whether the log directory is full: a write ran out of space and there has not been
/// room for it since.
pub fn is_full() -> bool {
    FULL.load(Ordering::Acquire)
}

/// Appends refused for want of space since the process started.
pub fn refused_appends() -> u64 {
    REFUSED_APPENDS.load(Ordering::Relaxed)
}

/// Episodes of a full log directory since the process started.
pub fn episodes() -> u64 {
    EPISODES.load(Ordering::Relaxed)
}
