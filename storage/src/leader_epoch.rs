//! The leader epoch cache (Kafka's `LeaderEpochFileCache`): each leader epoch of a
//! partition and the offset its first batch got, persisted as Kafka's
//! `leader-epoch-checkpoint` so that OffsetForLeaderEpoch answers from it, and so that a
//! follower can later find where its log diverges from the leader's.
//!
//! The file is Kafka's text format: a version line (`0`), an entry count, then one
//! `EPOCH START_OFFSET` line per entry, oldest first. It is rewritten whole
//! (write-temp, fsync, rename, fsync-dir) whenever the entries change, which happens at
//! a new epoch and when the log is truncated at either end: rarely.
//!
//! On one node the epoch is 0 for a partition's whole life, so the cache holds one
//! entry; the rules below are Kafka's, for when replication brings more.

use std::io;
use std::path::{Path, PathBuf};

use crate::{checkpoint, layout};

const VERSION: u32 = 0;
/// More entries than any real partition has; a larger count is a corrupt file.
const MAX_ENTRIES: usize = 1 << 20;

/// Kafka's "no epoch" (`UNDEFINED_EPOCH`) and "no offset" (`UNDEFINED_EPOCH_OFFSET`).
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: u64,
}

#[derive(Debug)]
pub struct LeaderEpochCache {
    dir: PathBuf,
    /// Epochs and start offsets, both strictly increasing.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Load the partition's checkpoint. A missing file is an empty cache; an unreadable
    /// one is logged and treated as empty (the broker assigns the current epoch again).
    pub fn open(dir: &Path) -> LeaderEpochCache {
        let path = dir.join(layout::LEADER_EPOCH_CHECKPOINT_FILE);
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text).unwrap_or_else(|why| {
                tracing::warn!(file = %path.display(), why, "ignoring an unreadable leader epoch checkpoint");
                Vec::new()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read the leader epoch checkpoint");
                Vec::new()
            }
        };
        LeaderEpochCache {
            dir: dir.to_path_buf(),
            entries,
        }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Record that `epoch` begins at `start_offset` (a new leader's first offset). An
    /// epoch not newer than the latest is ignored, as Kafka ignores it; entries starting
    /// at or after `start_offset` are replaced.
    pub fn assign(&mut self, epoch: i32, start_offset: u64) -> io::Result<()> {
        if epoch < 0 || self.latest_epoch().is_some_and(|l| l >= epoch) {
            return Ok(());
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.flush()
    }

    /// The log start moved up to `start_offset` (retention, DeleteRecords): entries that
    /// began below it go, except that the last of them now begins at `start_offset`.
    pub fn truncate_from_start(&mut self, start_offset: u64) -> io::Result<()> {
        let below = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        if below == 0 || (below == 1 && self.entries[0].start_offset == start_offset) {
            return Ok(());
        }
        let mut kept = self.entries.split_off(below - 1);
        kept[0].start_offset = start_offset;
        self.entries = kept;
        self.flush()
    }

    /// The log was truncated to end at `end_offset` (recovery cut a torn tail): epochs
    /// that began at or after it go.
    pub fn truncate_from_end(&mut self, end_offset: u64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() == before {
            return Ok(());
        }
        self.flush()
    }

    /// OffsetForLeaderEpoch: the largest epoch ≤ `requested` and the offset where the
    /// epoch after it began (the log end offset for the latest epoch), by Kafka's rules
    /// (`LeaderEpochFileCache.endOffsetFor`).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: u64) -> (i32, i64) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return undefined;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset as i64);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return undefined;
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            // Older than any epoch kept: its data is gone; answer where the log resumes.
            None => (requested, higher.start_offset as i64),
            Some(floor) => (floor.epoch, higher.start_offset as i64),
        }
    }

    fn flush(&self) -> io::Result<()> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        checkpoint::write(
            &self.dir,
            layout::LEADER_EPOCH_CHECKPOINT_FILE,
            text.as_bytes(),
        )
    }
}

/// Kafka's checkpoint text, strictly: the version, a count that matches, and entries
/// whose epochs and offsets increase.
fn parse(text: &str) -> Result<Vec<EpochEntry>, &'static str> {
    let mut lines = text.lines();
    let version: u32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("no version line")?;
    if version != VERSION {
        return Err("unknown version");
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("no entry count")?;
    if count > MAX_ENTRIES {
        return Err("too many entries");
    }
    // Not sized from the count: a corrupt file must not choose the allocation.
    let mut entries: Vec<EpochEntry> = Vec::new();
    for line in lines.by_ref().take(count) {
        let mut fields = line.split_whitespace();
        let epoch: i32 = fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or("bad epoch")?;
        let start_offset: u64 = fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or("bad offset")?;
        if fields.next().is_some() || epoch < 0 {
            return Err("bad entry");
        }
        if entries
            .last()
            .is_some_and(|p| p.epoch >= epoch || p.start_offset > start_offset)
        {
            return Err("entries out of order");
        }
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    if entries.len() != count || lines.any(|l| !l.trim().is_empty()) {
        return Err("the entry count does not match");
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, u64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::open(dir.path());
        for &(epoch, start) in entries {
            c.assign(epoch, start).unwrap();
        }
        (dir, c)
    }

    #[test]
    fn round_trips_in_kafkas_format() {
        let (dir, c) = cache(&[(0, 0), (3, 100), (5, 250)]);
        let text =
            std::fs::read_to_string(dir.path().join(layout::LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n3\n0 0\n3 100\n5 250\n");
        assert_eq!(LeaderEpochCache::open(dir.path()).entries(), c.entries());
    }

    #[test]
    fn end_offsets_follow_kafkas_rules() {
        let (_dir, c) = cache(&[(1, 10), (3, 100), (5, 250)]);
        assert_eq!(c.end_offset_for(5, 300), (5, 300), "latest: the log end");
        assert_eq!(c.end_offset_for(3, 300), (3, 250));
        assert_eq!(
            c.end_offset_for(4, 300),
            (3, 250),
            "between: the floor epoch"
        );
        assert_eq!(c.end_offset_for(0, 300), (0, 10), "older than all kept");
        assert_eq!(c.end_offset_for(9, 300), (-1, -1), "newer than the latest");
        assert_eq!(c.end_offset_for(-1, 300), (-1, -1));
        let (_dir, empty) = cache(&[]);
        assert_eq!(empty.end_offset_for(0, 7), (-1, -1));
    }

    #[test]
    fn older_epochs_are_ignored_and_truncation_rewrites_the_file() {
        let (dir, mut c) = cache(&[(0, 0), (2, 50)]);
        c.assign(1, 60).unwrap();
        assert_eq!(c.latest_epoch(), Some(2));
        c.truncate_from_start(70).unwrap();
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 2,
                start_offset: 70
            }]
        );
        c.assign(4, 90).unwrap();
        c.truncate_from_end(90).unwrap();
        assert_eq!(c.latest_epoch(), Some(2));
        let reopened = LeaderEpochCache::open(dir.path());
        assert_eq!(reopened.entries(), c.entries());
    }

    #[test]
    fn corrupt_files_are_empty_caches() {
        for text in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0 0 0\n",
            "0\n2\n3 10\n2 20\n",
            "0\n1\n-5 0\n",
            "0\n99999999999\n",
            "0\n1\n0 0\ntrailing\n",
        ] {
            assert!(parse(text).is_err(), "{text:?} parsed");
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(layout::LEADER_EPOCH_CHECKPOINT_FILE), text).unwrap();
            assert!(LeaderEpochCache::open(dir.path()).entries().is_empty());
        }
    }
}
