//! Sparse, memory-mapped segment indexes, as Kafka's `OffsetIndex` and `TimeIndex`.
//!
//! Both files are preallocated to `segment.index.bytes` while their segment is active
//! (so appends never grow a mapping) and trimmed to their entries when the segment
//! rolls or the log closes. Entries are big-endian, as in Kafka:
//! - offset index: `relative offset u32, position u32` (8 bytes)
//! - time index: `timestamp i64, relative offset u32` (12 bytes)
//!
//! Index content is never trusted blindly: [`OffsetIndex::sanity_check`] runs on open
//! and a failing index is rebuilt from the log, never fatal.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

/// Entries of an index as they were when taken: a shared mapping and how many of its
/// entries were valid. Readers use it without the log lock; the mapping stays valid
/// while they hold it, even after the segment is trimmed, deleted or closed.
#[derive(Clone)]
struct Entries {
    map: Option<Arc<MmapRaw>>,
    entry_size: usize,
    /// Number of valid entries.
    entries: usize,
}

impl Entries {
    /// Entry `i`, or an error (never a panic) if the mapping does not hold it: an index
    /// is never left claiming entries it cannot map, but a lookup must not bring the
    /// broker down if one were.
    fn entry(&self, i: usize) -> io::Result<&[u8]> {
        let at = i * self.entry_size;
        let m = match &self.map {
            Some(m) if i < self.entries && at + self.entry_size <= m.len() => m,
            _ => {
                return Err(io::Error::other(format!(
                    "index entry {i} of {} is not mapped",
                    self.entries
                )))
            }
        };
        // SAFETY: the bytes lie inside the mapping (checked above), and the file under
        // it is never shrunk below the entries of a view handed out (`MappedEntries::
        // trim` refuses). No writer touches them while the slice lives: these entries
        // are below `shared`, and `MappedEntries::push` never writes a slot below it.
        Ok(unsafe { std::slice::from_raw_parts(m.as_ptr().add(at), self.entry_size) })
    }

    /// Binary search for the last entry whose key (read by `key`) is <= `target`.
    fn floor<K: Ord>(&self, target: K, key: impl Fn(&[u8]) -> K) -> io::Result<Option<usize>> {
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(self.entry(mid)?) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo.checked_sub(1))
    }
}

/// A shared mapping of the first `bytes` of `file` (none for an empty index).
fn map_file(file: &File, bytes: usize) -> io::Result<Option<Arc<MmapRaw>>> {
    if bytes == 0 {
        return Ok(None);
    }
    // A raw mapping: readers hold it (behind an Arc) while the writer appends to slots
    // past theirs. The file is ours alone (one Log per directory, guarded by the
    // broker).
    Ok(Some(Arc::new(MmapOptions::new().len(bytes).map_raw(file)?)))
}

/// A fixed-size-entry file mapped into memory, shared by both index kinds.
struct MappedEntries {
    path: PathBuf,
    view: Entries,
    /// Capacity in entries of the current mapping.
    capacity: usize,
    /// The most entries handed out to readers, of this mapping or an earlier one of
    /// the same file: slots below it are never rewritten, and the file never shrinks
    /// below it, so after a truncation below it the index takes no more entries.
    shared: usize,
    /// Reserve disk blocks under slots before they are written: a writable index on a
    /// filesystem that can.
    reserve: bool,
    /// Bytes from the start with blocks reserved (this mapping's lifetime).
    reserved: usize,
}

/// Bytes of index reserved at a time: 2048 offset entries, some 8 MiB of log at the
/// default `index.interval.bytes`.
const RESERVE_CHUNK: usize = 16 * 1024;

impl MappedEntries {
    /// Open (creating if needed) with `entries` taken from the file length, then grow
    /// the file to `max_bytes` so appends can proceed.
    fn open(path: &Path, entry_size: usize, max_bytes: usize, writable: bool) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len() as usize;
        let entries = len / entry_size;
        let capacity = if writable {
            (max_bytes / entry_size).max(entries)
        } else {
            entries
        };
        let bytes = capacity * entry_size;
        crate::fault::set_len(&file, bytes as u64, path)?;
        let map = map_file(&file, bytes)?;
        Ok(MappedEntries {
            path: path.to_path_buf(),
            view: Entries {
                map,
                entry_size,
                entries,
            },
            capacity,
            shared: 0,
            reserve: writable,
            reserved: 0,
        })
    }

    /// Make sure the slots up to byte `end` have disk blocks behind them. The file is
    /// grown with `set_len`, which leaves a hole: a store through the mapping into a hole
    /// on a full filesystem is a SIGBUS, so blocks are reserved (fallocate) a chunk at a
    /// time before slots in it are written. False if they cannot be (a full disk): the
    /// entry is then skipped, which only makes lookups scan a little further.
    fn reserve(&mut self, end: usize) -> bool {
        if end <= self.reserved {
            return true;
        }
        if !self.reserve {
            return true;
        }
        let mapped = self.view.map.as_ref().map_or(0, |m| m.len());
        if end > mapped {
            // Past the mapping: `push` refuses the slot. fallocate would grow the file.
            return true;
        }
        let from = self.reserved.max((end - 1) / RESERVE_CHUNK * RESERVE_CHUNK);
        let to = end
            .div_ceil(RESERVE_CHUNK)
            .saturating_mul(RESERVE_CHUNK)
            .min(mapped);
        // Opened for the call (once a chunk) rather than held: a descriptor per index of
        // every partition would count against the process's limit.
        let reserved = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .and_then(|f| crate::fault::allocate(&f, from as u64, (to - from) as u64, &self.path));
        match reserved {
            Ok(()) => {
                self.reserved = to;
                true
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
                ) =>
            {
                // Nothing to reserve with: stores go into the hole as they always did.
                self.reserve = false;
                true
            }
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "cannot reserve index space; skipping an entry");
                false
            }
        }
    }

    /// The entries as they are now, for a reader without the lock.
    fn share(&mut self) -> Entries {
        self.shared = self.shared.max(self.view.entries);
        self.view.clone()
    }

    fn entries(&self) -> usize {
        self.view.entries
    }

    /// Carry `shared` over from an earlier mapping of the same file (closed by
    /// `Segment::release_handles`), whose views readers may still hold.
    fn keep_shared(&mut self, shared: usize) {
        self.shared = self.shared.max(shared);
    }

    fn is_full(&self) -> bool {
        self.view.entries >= self.capacity || self.view.entries < self.shared
    }

    fn push(&mut self, entry: &[u8]) -> bool {
        // A slot below `shared` may be under a reader's slice: never write it.
        if self.is_full() {
            return false;
        }
        let at = self.view.entries * self.view.entry_size;
        if !self.reserve(at + entry.len()) {
            return false;
        }
        let m = match &self.view.map {
            Some(m) if entry.len() == self.view.entry_size && at + entry.len() <= m.len() => m,
            _ => return false,
        };
        // SAFETY: the slot lies inside the mapping (checked above). No reader's slice
        // covers it: views handed out hold at most `shared` entries, and `is_full`
        // refuses a slot below `shared`. The only writer is this `&mut self`.
        unsafe {
            std::ptr::copy_nonoverlapping(entry.as_ptr(), m.as_mut_ptr().add(at), entry.len())
        };
        self.view.entries += 1;
        true
    }

    fn truncate_entries(&mut self, entries: usize) {
        self.view.entries = self.view.entries.min(entries);
    }

    /// Shrink the file to its entries (on roll / close). The index stays readable, and
    /// readers keep the old mapping, whose entries the shorter file still covers.
    /// Returns the file for the caller to fsync: a roll defers that to the next flush,
    /// outside the log lock. An fsync of the file also writes back what was written
    /// through its mappings (Linux keeps one page cache per file), so no msync is needed
    /// first.
    ///
    /// The new mapping is made before the file shrinks (it is still longer), and both
    /// before anything changes here: on an error the index keeps its mapping and
    /// capacity, whole and readable.
    fn trim(&mut self) -> io::Result<File> {
        let entries = self.view.entries;
        debug_assert!(
            entries >= self.shared,
            "trim below entries handed to readers"
        );
        if entries < self.shared {
            // Readers' mappings reach past the new end: touching it would be SIGBUS.
            return Err(io::Error::other(format!(
                "{}: cannot trim to {entries} entries, {} were handed to readers",
                self.path.display(),
                self.shared
            )));
        }
        let file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        let bytes = entries * self.view.entry_size;
        let map = map_file(&file, bytes)?;
        crate::fault::set_len(&file, bytes as u64, &self.path)?;
        self.view.map = map;
        self.capacity = entries;
        Ok(file)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn flush(&self) -> io::Result<()> {
        match &self.view.map {
            Some(m) => crate::fault::flush_map(m, &self.path),
            None => Ok(()),
        }
    }

    fn floor<K: Ord>(&self, target: K, key: impl Fn(&[u8]) -> K) -> io::Result<Option<usize>> {
        self.view.floor(target, key)
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// Relative offset → file position. One entry per `index.interval.bytes` of log.
pub struct OffsetIndex {
    base_offset: u64,
    inner: MappedEntries,
}

/// One offset index entry, with the offset made absolute again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: u64,
    pub position: u32,
}

impl OffsetIndex {
    pub const ENTRY_SIZE: usize = 8;

    pub fn open(
        path: &Path,
        base_offset: u64,
        max_bytes: usize,
        writable: bool,
    ) -> io::Result<Self> {
        Ok(OffsetIndex {
            base_offset,
            inner: MappedEntries::open(path, Self::ENTRY_SIZE, max_bytes, writable)?,
        })
    }

    pub fn len(&self) -> usize {
        self.inner.entries()
    }
    pub fn is_empty(&self) -> bool {
        self.inner.entries() == 0
    }
    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    pub fn entry(&self, i: usize) -> io::Result<OffsetPosition> {
        offset_entry(&self.inner.view, self.base_offset, i)
    }

    /// The most entries handed to readers (see [`Self::keep_shared`]).
    pub fn shared(&self) -> usize {
        self.inner.shared
    }

    /// Reopened after its handles were released: readers may still hold views of up
    /// to `shared` entries of the file, which are then never rewritten nor trimmed away.
    pub fn keep_shared(&mut self, shared: usize) {
        self.inner.keep_shared(shared);
    }

    /// The index as it is now, for lookups without the log lock.
    pub fn reader(&mut self) -> OffsetIndexReader {
        OffsetIndexReader {
            base_offset: self.base_offset,
            entries: self.inner.share(),
        }
    }

    pub fn last(&self) -> io::Result<Option<OffsetPosition>> {
        self.len().checked_sub(1).map(|i| self.entry(i)).transpose()
    }

    /// Append an entry; the caller keeps offsets and positions increasing. Returns false
    /// when the index is full (the segment must roll).
    pub fn append(&mut self, offset: u64, position: u32) -> bool {
        debug_assert!(offset >= self.base_offset && offset - self.base_offset <= u32::MAX as u64);
        debug_assert!(self
            .last()
            .ok()
            .flatten()
            .is_none_or(|l| l.offset < offset && l.position < position));
        let mut e = [0u8; 8];
        e[0..4].copy_from_slice(&((offset - self.base_offset) as u32).to_be_bytes());
        e[4..8].copy_from_slice(&position.to_be_bytes());
        self.inner.push(&e)
    }

    /// The last entry with offset <= `target`, or the segment start.
    pub fn lookup(&self, target: u64) -> io::Result<OffsetPosition> {
        offset_lookup(&self.inner.view, self.base_offset, target)
    }

    /// The last entry with position <= `position`, or the segment start.
    pub fn lookup_position(&self, position: u32) -> io::Result<OffsetPosition> {
        offset_lookup_position(&self.inner.view, self.base_offset, position)
    }

    /// Drop entries at or past `position` (used when the log is truncated).
    pub fn truncate_to_position(&mut self, position: u32) -> io::Result<()> {
        let keep = match self.inner.floor(position, |e| be_u32(&e[4..8]))? {
            Some(i) if self.entry(i)?.position < position => i + 1,
            Some(i) => i,
            None => 0,
        };
        self.inner.truncate_entries(keep);
        Ok(())
    }

    pub fn clear(&mut self) {
        self.inner.truncate_entries(0);
    }

    /// Checks the index against its segment: offsets and positions strictly increase
    /// and every position lies inside the log file.
    pub fn sanity_check(&self, log_size: u64) -> Result<(), String> {
        let mut prev: Option<OffsetPosition> = None;
        for i in 0..self.len() {
            let e = self.entry(i).map_err(|e| e.to_string())?;
            if e.position as u64 >= log_size.max(1) {
                return Err(format!(
                    "entry {i} points at {} past the log size {log_size}",
                    e.position
                ));
            }
            if let Some(p) = prev {
                if e.offset <= p.offset || e.position <= p.position {
                    return Err(format!("entry {i} does not increase"));
                }
            }
            prev = Some(e);
        }
        Ok(())
    }

    /// See `MappedEntries::trim`: the caller fsyncs the returned file.
    pub fn trim(&mut self) -> io::Result<File> {
        self.inner.trim()
    }
    pub fn path(&self) -> &Path {
        self.inner.path()
    }
    pub fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An offset index as it was when taken: lookups without the log lock.
#[derive(Clone)]
pub struct OffsetIndexReader {
    base_offset: u64,
    entries: Entries,
}

impl OffsetIndexReader {
    pub fn len(&self) -> usize {
        self.entries.entries
    }
    pub fn is_empty(&self) -> bool {
        self.entries.entries == 0
    }
    /// See [`OffsetIndex::lookup`].
    pub fn lookup(&self, target: u64) -> io::Result<OffsetPosition> {
        offset_lookup(&self.entries, self.base_offset, target)
    }
    /// See [`OffsetIndex::lookup_position`].
    pub fn lookup_position(&self, position: u32) -> io::Result<OffsetPosition> {
        offset_lookup_position(&self.entries, self.base_offset, position)
    }
}

fn offset_entry(e: &Entries, base_offset: u64, i: usize) -> io::Result<OffsetPosition> {
    let e = e.entry(i)?;
    Ok(OffsetPosition {
        offset: base_offset + be_u32(&e[0..4]) as u64,
        position: be_u32(&e[4..8]),
    })
}

fn offset_lookup(e: &Entries, base_offset: u64, target: u64) -> io::Result<OffsetPosition> {
    let rel = target.saturating_sub(base_offset);
    match e.floor(rel, |e| be_u32(&e[0..4]) as u64)? {
        Some(i) => offset_entry(e, base_offset, i),
        None => Ok(OffsetPosition {
            offset: base_offset,
            position: 0,
        }),
    }
}

fn offset_lookup_position(
    e: &Entries,
    base_offset: u64,
    position: u32,
) -> io::Result<OffsetPosition> {
    match e.floor(position, |e| be_u32(&e[4..8]))? {
        Some(i) => offset_entry(e, base_offset, i),
        None => Ok(OffsetPosition {
            offset: base_offset,
            position: 0,
        }),
    }
}

/// Timestamp → relative offset, holding the maximum timestamp seen so far, so that
/// entries increase in both fields.
pub struct TimeIndex {
    base_offset: u64,
    inner: MappedEntries,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: u64,
}

impl TimeIndex {
    pub const ENTRY_SIZE: usize = 12;

    pub fn open(
        path: &Path,
        base_offset: u64,
        max_bytes: usize,
        writable: bool,
    ) -> io::Result<Self> {
        Ok(TimeIndex {
            base_offset,
            inner: MappedEntries::open(path, Self::ENTRY_SIZE, max_bytes, writable)?,
        })
    }

    pub fn len(&self) -> usize {
        self.inner.entries()
    }
    pub fn is_empty(&self) -> bool {
        self.inner.entries() == 0
    }
    /// Kafka's `TimeIndex.isFull`: the last slot is kept for the entry a roll appends
    /// (the segment's max timestamp), so the segment rolls while it is free.
    pub fn is_full(&self) -> bool {
        self.inner.is_full() || self.inner.entries() + 1 >= self.inner.capacity
    }

    pub fn entry(&self, i: usize) -> io::Result<TimestampOffset> {
        time_entry(&self.inner.view, self.base_offset, i)
    }

    /// The most entries handed to readers (see [`Self::keep_shared`]).
    pub fn shared(&self) -> usize {
        self.inner.shared
    }

    /// Reopened after its handles were released: readers may still hold views of up
    /// to `shared` entries of the file, which are then never rewritten nor trimmed away.
    pub fn keep_shared(&mut self, shared: usize) {
        self.inner.keep_shared(shared);
    }

    /// The index as it is now, for lookups without the log lock.
    pub fn reader(&mut self) -> TimeIndexReader {
        TimeIndexReader {
            base_offset: self.base_offset,
            entries: self.inner.share(),
        }
    }

    pub fn last(&self) -> io::Result<Option<TimestampOffset>> {
        self.len().checked_sub(1).map(|i| self.entry(i)).transpose()
    }

    /// Append if `timestamp` is larger than the last entry's (Kafka's `maybeAppend`).
    /// Returns false when the index is full (see [`Self::is_full`]).
    pub fn maybe_append(&mut self, timestamp: i64, offset: u64) -> bool {
        self.append_if_larger(timestamp, offset, false)
    }

    /// [`Self::maybe_append`] for the entry a roll appends, which may take the slot
    /// kept for it (Kafka's `maybeAppend` with `skipFullCheck`).
    pub fn append_final(&mut self, timestamp: i64, offset: u64) -> bool {
        self.append_if_larger(timestamp, offset, true)
    }

    fn append_if_larger(&mut self, timestamp: i64, offset: u64, last_slot: bool) -> bool {
        if let Ok(Some(last)) = self.last() {
            if timestamp <= last.timestamp || offset < last.offset {
                return true;
            }
        }
        if !last_slot && self.is_full() {
            return false;
        }
        let mut e = [0u8; 12];
        e[0..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..12].copy_from_slice(&((offset - self.base_offset) as u32).to_be_bytes());
        self.inner.push(&e)
    }

    /// The last entry whose timestamp is < `target`: every record up to and including
    /// the batch at that entry's offset is older than `target`, so a search for the
    /// first record at or after `target` may start from there.
    pub fn lookup_before(&self, target: i64) -> io::Result<Option<TimestampOffset>> {
        time_lookup_before(&self.inner.view, self.base_offset, target)
    }

    pub fn truncate_to_offset(&mut self, offset: u64) -> io::Result<()> {
        let rel = offset.saturating_sub(self.base_offset);
        let keep = match self.inner.floor(rel, |e| be_u32(&e[8..12]) as u64)? {
            Some(i) if self.entry(i)?.offset < offset => i + 1,
            Some(i) => i,
            None => 0,
        };
        self.inner.truncate_entries(keep);
        Ok(())
    }

    pub fn clear(&mut self) {
        self.inner.truncate_entries(0);
    }

    pub fn sanity_check(&self, next_offset: u64) -> Result<(), String> {
        let mut prev: Option<TimestampOffset> = None;
        for i in 0..self.len() {
            let e = self.entry(i).map_err(|e| e.to_string())?;
            if e.offset >= next_offset.max(self.base_offset + 1) {
                return Err(format!(
                    "entry {i} points at offset {} past the segment",
                    e.offset
                ));
            }
            if let Some(p) = prev {
                if e.timestamp <= p.timestamp || e.offset < p.offset {
                    return Err(format!("entry {i} does not increase"));
                }
            }
            prev = Some(e);
        }
        Ok(())
    }

    /// See `MappedEntries::trim`: the caller fsyncs the returned file.
    pub fn trim(&mut self) -> io::Result<File> {
        self.inner.trim()
    }
    pub fn path(&self) -> &Path {
        self.inner.path()
    }
    pub fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A time index as it was when taken: lookups without the log lock.
#[derive(Clone)]
pub struct TimeIndexReader {
    base_offset: u64,
    entries: Entries,
}

impl TimeIndexReader {
    /// See [`TimeIndex::lookup_before`].
    pub fn lookup_before(&self, target: i64) -> io::Result<Option<TimestampOffset>> {
        time_lookup_before(&self.entries, self.base_offset, target)
    }
}

fn time_entry(e: &Entries, base_offset: u64, i: usize) -> io::Result<TimestampOffset> {
    let e = e.entry(i)?;
    Ok(TimestampOffset {
        timestamp: be_i64(&e[0..8]),
        offset: base_offset + be_u32(&e[8..12]) as u64,
    })
}

fn time_lookup_before(
    e: &Entries,
    base_offset: u64,
    target: i64,
) -> io::Result<Option<TimestampOffset>> {
    match e.floor(target.saturating_sub(1), |e| be_i64(&e[0..8]))? {
        Some(i) => time_entry(e, base_offset, i).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_and_trim() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.index");
        let mut idx = OffsetIndex::open(&p, 100, 80, true).unwrap();
        assert_eq!(
            idx.lookup(150).unwrap(),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        for i in 1..=5u64 {
            assert!(idx.append(100 + i * 10, i as u32 * 1000));
        }
        assert_eq!(idx.lookup(135).unwrap().offset, 130);
        assert_eq!(idx.lookup(130).unwrap().position, 3000);
        assert_eq!(idx.lookup(99).unwrap().position, 0);
        assert_eq!(idx.lookup_position(2500).unwrap().offset, 120);
        idx.trim().unwrap().sync_all().unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 40);
        let idx = OffsetIndex::open(&p, 100, 80, false).unwrap();
        assert_eq!(idx.len(), 5);
        assert!(idx.sanity_check(10_000).is_ok());
        assert!(idx.sanity_check(4_000).is_err());
    }

    #[test]
    fn offset_index_fills_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open(&dir.path().join("x.index"), 0, 16, true).unwrap();
        assert!(idx.append(1, 10));
        assert!(idx.append(2, 20));
        assert!(idx.is_full());
        assert!(!idx.append(3, 30));
    }

    #[test]
    fn time_index_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::open(&dir.path().join("x.timeindex"), 0, 120, true).unwrap();
        idx.maybe_append(1000, 0);
        idx.maybe_append(900, 5); // not larger: skipped
        idx.maybe_append(2000, 10);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup_before(1000).unwrap(), None);
        assert_eq!(idx.lookup_before(1001).unwrap().map(|e| e.offset), Some(0));
        assert_eq!(idx.lookup_before(5000).unwrap().map(|e| e.offset), Some(10));
        idx.truncate_to_offset(10).unwrap();
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn slots_handed_to_readers_are_never_rewritten_even_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.index");
        let mut idx = OffsetIndex::open(&p, 0, 80, true).unwrap();
        for i in 1..=3u64 {
            assert!(idx.append(i, i as u32 * 10));
        }
        let reader = idx.reader();
        let shared = idx.shared();
        assert_eq!(shared, 3);
        idx.trim().unwrap();
        drop(idx);
        // Reopened (as after `Segment::release_handles`) and cut below what was shared.
        let mut idx = OffsetIndex::open(&p, 0, 80, true).unwrap();
        idx.keep_shared(shared);
        idx.truncate_to_position(15).unwrap();
        assert_eq!(idx.len(), 1);
        assert!(idx.is_full());
        assert!(!idx.append(2, 12), "rewrote a slot a reader holds");
        assert_eq!(reader.lookup(2).unwrap().position, 20);
    }

    /// A trim below the entries handed out would cut the file under a reader's mapping.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "trim below entries handed to readers")]
    fn a_trim_below_shared_entries_is_a_bug() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open(&dir.path().join("x.index"), 0, 80, true).unwrap();
        assert!(idx.append(1, 10));
        let _reader = idx.reader();
        idx.clear();
        let _ = idx.trim();
    }

    #[test]
    fn the_time_index_keeps_its_last_slot_for_the_rolls_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::open(&dir.path().join("x.timeindex"), 0, 48, true).unwrap();
        for i in 0..3 {
            assert!(!idx.is_full());
            assert!(idx.maybe_append(1_000 + i, i as u64));
        }
        assert!(idx.is_full());
        assert!(!idx.maybe_append(2_000, 5));
        assert!(idx.append_final(3_000, 7));
        assert!(!idx.append_final(4_000, 8));
        assert_eq!(idx.last().unwrap().map(|e| e.timestamp), Some(3_000));
    }

    #[test]
    fn entries_without_a_mapping_are_an_error_not_a_panic() {
        let unmapped = Entries {
            map: None,
            entry_size: OffsetIndex::ENTRY_SIZE,
            entries: 3,
        };
        assert!(offset_lookup(&unmapped, 0, 5).is_err());
        assert!(offset_lookup_position(&unmapped, 0, 5).is_err());
        assert!(time_lookup_before(&unmapped, 0, 5).is_err());
    }
}
