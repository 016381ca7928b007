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
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static FULL: AtomicBool = AtomicBool::new(false);
static REFUSED_APPENDS: AtomicU64 = AtomicU64::new(0);
static EPISODES: AtomicU64 = AtomicU64::new(0);

/// Whether `e` says the filesystem (or the user's quota) has no room.
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// A write under `path` found no room. The first one of an episode logs a warning;
/// later ones only count.
pub fn note_full(what: &str, path: &Path, e: &io::Error) {
    if !FULL.swap(true, Ordering::AcqRel) {
        EPISODES.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(path = %path.display(), error = %e, what,
            "the log directory is full: appends are refused with KAFKA_STORAGE_ERROR until \
             space is freed; reads go on (logged once until a write fits again)");
    } else {
        tracing::debug!(path = %path.display(), error = %e, what, "no space in the log directory");
    }
}

/// An append was refused for want of space.
pub(crate) fn note_refused_append() {
    REFUSED_APPENDS.fetch_add(1, Ordering::Relaxed);
}

/// A write fitted: ends an episode if one is running. One relaxed load otherwise.
#[inline]
pub fn note_write_ok() {
    if FULL.load(Ordering::Relaxed) && FULL.swap(false, Ordering::AcqRel) {
        tracing::info!(
            refused_appends = REFUSED_APPENDS.load(Ordering::Relaxed),
            "the log directory has space again: appends are accepted"
        );
    }
}

/// Whether the last write that ran out of space has not yet been followed by one that fit.
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
