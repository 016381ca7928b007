//! The transaction index (`BASE.txnindex`, Kafka's `TransactionIndex`): the aborted
//! transactions whose abort marker lies in a segment, in marker order, so that a
//! read_committed fetch can tell which batches to skip and the cleaner which to drop.
//!
//! Kafka's format: 34-byte entries, big-endian, no header:
//! `version i16 (0) | producer id i64 | first offset i64 | last offset i64 |
//! last stable offset i64`. The file is created with its first entry; a segment without
//! one has none, which reads as empty.
//!
//! An entry is valid only if its version is 0, its offsets are non-negative with
//! `first <= last`, its last offset (the marker) lies in the segment and grows from
//! entry to entry. Reading stops at the first entry that is not (a torn or corrupt
//! tail), so what is read is always a prefix; opening a log cuts the file there.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fault;

/// Bytes of one entry.
pub const ENTRY_SIZE: usize = 34;
/// The only entry version Kafka writes.
pub const CURRENT_VERSION: i16 = 0;
/// Entries read per system call, so a large (or corrupt, huge) file never needs a
/// buffer of its size.
const READ_ENTRIES: usize = 1024;

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    /// The offset of the abort marker.
    pub last_offset: u64,
    /// The LSO when the marker was written (Kafka's AbortedTxn.lastStableOffset).
    pub last_stable_offset: u64,
}

impl AbortedTxn {
    pub fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut b = [0u8; ENTRY_SIZE];
        b[0..2].copy_from_slice(&CURRENT_VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&(self.first_offset as i64).to_be_bytes());
        b[18..26].copy_from_slice(&(self.last_offset as i64).to_be_bytes());
        b[26..34].copy_from_slice(&(self.last_stable_offset as i64).to_be_bytes());
        b
    }

    /// Parse one entry, checking what a single entry can be checked for.
    pub fn decode(b: &[u8; ENTRY_SIZE]) -> Result<AbortedTxn, String> {
        let i64_at = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(x)
        };
        let version = i16::from_be_bytes([b[0], b[1]]);
        if version != CURRENT_VERSION {
            return Err(format!("entry version {version}"));
        }
        let (pid, first, last, lso) = (i64_at(2), i64_at(10), i64_at(18), i64_at(26));
        if pid < 0 || first < 0 || last < 0 || lso < 0 || first > last {
            return Err(format!(
                "bad entry: producer {pid}, offsets {first}..={last}, lso {lso}"
            ));
        }
        Ok(AbortedTxn {
            producer_id: pid,
            first_offset: first as u64,
            last_offset: last as u64,
            last_stable_offset: lso as u64,
        })
    }

    /// Whether the entry can be written: every offset fits Kafka's i64.
    pub fn is_encodable(&self) -> bool {
        let max = i64::MAX as u64;
        self.producer_id >= 0
            && self.first_offset <= self.last_offset
            && self.last_offset <= max
            && self.last_stable_offset <= max
    }
}

/// Why a read of a transaction index stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// File position of the first entry not read.
    pub position: u64,
    pub why: String,
}

/// What [`scan`] found.
#[derive(Debug, Clone, Default)]
pub struct ScanResult {
    /// Bytes of valid entries from the start.
    pub valid_len: u64,
    pub last: Option<AbortedTxn>,
    /// Set when the file holds more than `valid_len` bytes.
    pub stopped: Option<Stopped>,
}

/// Read the valid entries of `file` (its first `len` bytes at most), calling `visit`
/// with each until it returns false. Entries must have last offsets in
/// `[base, limit)`, growing, and there are at most `max_entries` of them; the first
/// that breaks a rule ends the scan. I/O errors end it too, reported as a stop: the
/// caller decides whether an unreadable file is empty or an error.
pub fn scan(
    file: &File,
    len: u64,
    base: u64,
    limit: u64,
    max_entries: u64,
    mut visit: impl FnMut(&AbortedTxn) -> bool,
) -> ScanResult {
    let mut out = ScanResult::default();
    let whole = len - len % ENTRY_SIZE as u64;
    let mut buf = vec![0u8; ENTRY_SIZE * READ_ENTRIES];
    let mut pos = 0u64;
    let mut count = 0u64;
    let stop = |out: &mut ScanResult, position: u64, why: String| {
        out.stopped = Some(Stopped { position, why });
    };
    while pos < whole {
        let n = ((whole - pos) as usize).min(buf.len());
        if let Err(e) = file.read_exact_at(&mut buf[..n], pos) {
            stop(&mut out, pos, format!("read failed: {e}"));
            return out;
        }
        for chunk in buf[..n].chunks_exact(ENTRY_SIZE) {
            let entry: &[u8; ENTRY_SIZE] = chunk.try_into().expect("chunks of ENTRY_SIZE");
            let txn = match AbortedTxn::decode(entry) {
                Ok(t) => t,
                Err(why) => {
                    stop(&mut out, pos, why);
                    return out;
                }
            };
            if txn.last_offset < base || txn.last_offset >= limit {
                stop(
                    &mut out,
                    pos,
                    format!(
                        "marker offset {} outside the segment [{base}, {limit})",
                        txn.last_offset
                    ),
                );
                return out;
            }
            if out.last.is_some_and(|l| l.last_offset >= txn.last_offset) {
                stop(
                    &mut out,
                    pos,
                    format!("marker offset {} out of order", txn.last_offset),
                );
                return out;
            }
            if count >= max_entries {
                stop(
                    &mut out,
                    pos,
                    "more entries than the segment has batches".into(),
                );
                return out;
            }
            count += 1;
            pos += ENTRY_SIZE as u64;
            out.valid_len = pos;
            out.last = Some(txn);
            if !visit(&txn) {
                return out;
            }
        }
    }
    if len > whole {
        stop(
            &mut out,
            whole,
            format!("torn entry of {} bytes", len - whole),
        );
    }
    out
}

/// The most entries a segment of `size` bytes can have: each marker is a batch.
pub fn max_entries_for(size: u64) -> u64 {
    size / runnel_records::record_batch::BATCH_HEADER_LEN as u64 + 1
}

/// One segment's transaction index, as the log keeps it: how much of the file is valid,
/// its last entry, and a handle once written.
pub struct TxnIndex {
    path: PathBuf,
    base_offset: u64,
    /// Bytes of valid entries (a multiple of [`ENTRY_SIZE`]).
    len: u64,
    last: Option<AbortedTxn>,
    file: Option<Arc<File>>,
}

/// What [`TxnIndex::append`] did, for the log's durability bookkeeping.
pub(crate) struct Appended {
    pub file: Arc<File>,
    /// The file was created by this append: its directory entry needs an fsync.
    pub created: bool,
}

impl TxnIndex {
    /// An empty index; a file at `path`, if any, is disregarded (and cut on the first
    /// append).
    pub fn empty(path: PathBuf, base_offset: u64) -> TxnIndex {
        TxnIndex {
            path,
            base_offset,
            len: 0,
            last: None,
            file: None,
        }
    }

    /// Load the index of a segment whose offsets end before `limit` (the log end for
    /// the active segment: entries at or past it are dropped) and whose log has `size`
    /// bytes. A missing file is empty; a torn, corrupt or unreadable tail is cut, with a
    /// warning. Never fails: a cut that fails is logged, and the first append cuts.
    pub fn load(path: PathBuf, base_offset: u64, limit: u64, size: u64) -> TxnIndex {
        let mut index = TxnIndex::empty(path, base_offset);
        let file = match OpenOptions::new().read(true).write(true).open(&index.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return index,
            Err(e) => {
                tracing::warn!(file = %index.path.display(), error = %e,
                    "cannot open the transaction index; treating it as empty");
                return index;
            }
        };
        let file_len = match file.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                tracing::warn!(file = %index.path.display(), error = %e,
                    "cannot stat the transaction index; treating it as empty");
                return index;
            }
        };
        let found = scan(
            &file,
            file_len,
            base_offset,
            limit,
            max_entries_for(size),
            |_| true,
        );
        index.len = found.valid_len;
        index.last = found.last;
        if let Some(stopped) = found.stopped {
            tracing::warn!(file = %index.path.display(), position = stopped.position,
                why = %stopped.why, cut_bytes = file_len - found.valid_len,
                "cutting the transaction index at its first invalid entry");
            let cut = fault::set_len(&file, found.valid_len, &index.path)
                .and_then(|()| fault::sync_all(&file, || &index.path));
            if let Err(e) = cut {
                tracing::warn!(file = %index.path.display(), error = %e,
                    "cannot cut the transaction index; the next append will");
            }
        }
        index
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of valid entries.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry with the highest marker offset.
    pub fn last(&self) -> Option<AbortedTxn> {
        self.last
    }

    /// Close the write handle (it reopens on the next append).
    pub fn release(&mut self) {
        self.file = None;
    }

    /// The write handle, creating the file if need be, cut to the valid entries.
    fn writable(&mut self) -> io::Result<(Arc<File>, bool)> {
        if let Some(f) = &self.file {
            return Ok((f.clone(), false));
        }
        let (file, created) = match OpenOptions::new().read(true).write(true).open(&self.path) {
            Ok(f) => (f, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&self.path)?,
                true,
            ),
            Err(e) => return Err(e),
        };
        // Whatever lies past the valid entries (a cut that failed, a stale file) goes.
        if file.metadata()?.len() != self.len {
            fault::set_len(&file, self.len, &self.path)?;
        }
        let file = Arc::new(file);
        self.file = Some(file.clone());
        Ok((file, created))
    }

    /// Append `txn`, whose marker must come after the last entry's. Not fsynced.
    pub(crate) fn append(&mut self, txn: &AbortedTxn) -> io::Result<Appended> {
        debug_assert!(self.last.is_none_or(|l| l.last_offset < txn.last_offset));
        let (file, created) = self.writable()?;
        let bytes = txn.encode();
        let at = self.len;
        if let Err(e) =
            fault::write_all_vectored_at(&file, &mut [IoSlice::new(&bytes)], at, || &self.path)
        {
            // Leave no torn entry behind if we can (and if not, the next open cuts it).
            let _ = file.set_len(at);
            return Err(e);
        }
        self.len += ENTRY_SIZE as u64;
        self.last = Some(*txn);
        Ok(Appended { file, created })
    }

    /// Every valid entry, read from the file.
    pub fn entries(&self, limit: u64) -> io::Result<Vec<AbortedTxn>> {
        if self.len == 0 {
            return Ok(Vec::new());
        }
        let file = File::open(&self.path)?;
        let mut out = Vec::new();
        let found = scan(&file, self.len, self.base_offset, limit, u64::MAX, |t| {
            out.push(*t);
            true
        });
        match found.stopped {
            Some(s) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {} at {}", self.path.display(), s.why, s.position),
            )),
            None => Ok(out),
        }
    }

    /// Replace the file by one holding `entries` (in marker order), durably: written
    /// beside it, fsynced, renamed over it, the directory fsynced. For the rare entry
    /// that arrives out of order.
    pub(crate) fn rewrite(&mut self, entries: &[AbortedTxn]) -> io::Result<()> {
        self.file = None;
        let tmp = crate::layout::tmp_file(&self.path);
        write_file(&tmp, entries)?;
        fault::rename(&tmp, &self.path)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fault::sync_dir(dir)?;
        self.len = (entries.len() * ENTRY_SIZE) as u64;
        self.last = entries.last().copied();
        Ok(())
    }
}

/// Write `entries` to a new file at `path` and fsync it, through the fault seam.
pub fn write_file(path: &Path, entries: &[AbortedTxn]) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY_SIZE);
    for e in entries {
        bytes.extend_from_slice(&e.encode());
    }
    fault::write_all(&file, &bytes, path)?;
    fault::sync_all(&file, || path)
}

/// Kafka's collectAbortedTransactions over one segment's index file: the entries that
/// overlap `[from, upper)` are pushed to `out`; returns true once an entry's last stable
/// offset reaches `upper`, when no later entry can overlap. `len` bounds the read (the
/// active segment's entries being written past it); `None` reads the whole file.
pub(crate) fn collect(
    path: &Path,
    len: Option<u64>,
    base: u64,
    from: u64,
    upper: u64,
    out: &mut Vec<AbortedTxn>,
) -> io::Result<bool> {
    let file = match File::open(path) {
        Ok(f) => f,
        // Deleted meanwhile (retention, a cleaner swap): nothing left to skip there.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let file_len = file.metadata()?.len();
    let len = len.map_or(file_len, |l| l.min(file_len));
    let mut complete = false;
    let found = scan(&file, len, base, u64::MAX, u64::MAX, |t| {
        if t.last_offset >= from && t.first_offset < upper {
            out.push(*t);
        }
        if t.last_stable_offset >= upper {
            complete = true;
            return false;
        }
        true
    });
    if let Some(s) = found.stopped {
        if s.why.starts_with("read failed") {
            return Err(io::Error::other(format!(
                "{}: {} at {}",
                path.display(),
                s.why,
                s.position
            )));
        }
        tracing::warn!(file = %path.display(), position = s.position, why = %s.why,
            "transaction index is invalid past this point; ignoring the rest");
    }
    Ok(complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: u64, last: u64, lso: u64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn encoding_is_kafkas() {
        let t = txn(0x0102030405060708, 9, 0x10, 0x11);
        let b = t.encode();
        assert_eq!(&b[0..2], &[0, 0]);
        assert_eq!(&b[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[10..18], &9i64.to_be_bytes());
        assert_eq!(&b[18..26], &16i64.to_be_bytes());
        assert_eq!(&b[26..34], &17i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&b), Ok(t));
        let mut v1 = b;
        v1[1] = 1;
        assert!(AbortedTxn::decode(&v1).is_err());
        let mut neg = b;
        neg[10] = 0x80;
        assert!(AbortedTxn::decode(&neg).is_err());
        assert!(AbortedTxn::decode(&txn(1, 5, 4, 0).encode()).is_err());
    }

    #[test]
    fn scan_stops_at_the_first_bad_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        let good = [txn(1, 10, 12, 10), txn(2, 11, 15, 11)];
        let mut bytes = Vec::new();
        for t in &good {
            bytes.extend_from_slice(&t.encode());
        }
        // Out of order, then a torn tail.
        bytes.extend_from_slice(&txn(3, 1, 14, 1).encode());
        bytes.extend_from_slice(&[0; 5]);
        std::fs::write(&path, &bytes).unwrap();
        let f = File::open(&path).unwrap();
        let mut seen = Vec::new();
        let r = scan(&f, bytes.len() as u64, 10, 100, u64::MAX, |t| {
            seen.push(*t);
            true
        });
        assert_eq!(seen, good);
        assert_eq!(r.valid_len, 68);
        assert_eq!(r.stopped.unwrap().position, 68);
        // Outside the segment.
        let r = scan(&f, 68, 13, 100, u64::MAX, |_| true);
        assert_eq!(r.valid_len, 0);
        let r = scan(&f, 68, 10, 15, u64::MAX, |_| true);
        assert_eq!(r.valid_len, 34);
        // The entry bound.
        let r = scan(&f, 68, 10, 100, 1, |_| true);
        assert_eq!(r.valid_len, 34);
    }

    #[test]
    fn a_huge_garbage_file_is_read_in_bounded_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        let f = File::create(&path).unwrap();
        // Sparse: 64 GiB claimed, nothing allocated on disk or in memory.
        f.set_len(64 << 30).unwrap();
        let f = File::open(&path).unwrap();
        let r = scan(&f, 64 << 30, 0, u64::MAX, u64::MAX, |_| true);
        // An all-zero entry is version 0, offsets 0..=0: valid once, then out of order.
        assert_eq!(r.valid_len, 34);
        let loaded = TxnIndex::load(path.clone(), 5, 100, 1000);
        assert!(loaded.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "cut on load");
    }
}
