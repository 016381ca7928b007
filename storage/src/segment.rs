//! One log segment: a `.log` file of record batches plus its offset and time indexes
//! and, once it holds an abort marker, its transaction index, named by the 20-digit
//! base offset as in Kafka (`00000000000000000042.log`).

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel_records::record_batch::{validate_batch, BatchHeader, Strictness, BATCH_HEADER_LEN};

use crate::index::{OffsetIndex, OffsetIndexReader, TimeIndex, TimeIndexReader};
use crate::layout::{self, SegmentFile};
use crate::txn_index::TxnIndex;
use crate::{fault, FileSlice, LogConfig};

/// The header of one batch found in a segment, with its file position.
#[derive(Debug, Clone, Copy)]
pub struct BatchLocation {
    pub position: u32,
    pub header: BatchHeader,
}

impl BatchLocation {
    pub fn end(&self) -> u64 {
        self.position as u64 + self.header.total_len() as u64
    }
    pub fn next_offset(&self) -> u64 {
        self.header.last_offset() as u64 + 1
    }
}

/// What scanning a segment from a position found.
#[derive(Debug, Clone)]
pub struct ScanOutcome {
    /// File position just past the last valid batch.
    pub valid_end: u64,
    /// Offset after the last valid batch; where the scan started if none was valid.
    pub next_offset: u64,
    pub max_timestamp: i64,
    /// Why scanning stopped before the end of the file, if it did.
    pub stopped_by: Option<(u64, String)>,
}

pub struct Segment {
    pub base_offset: u64,
    dir: Arc<Path>,
    /// Open while the segment is active or recently read; see `Log`'s handle budget.
    file: Option<Arc<File>>,
    offset_index: Option<OffsetIndex>,
    time_index: Option<TimeIndex>,
    /// Entries of the offset and time index files handed to readers, kept while the
    /// indexes are closed: readers may still hold views of them.
    index_shared: (usize, usize),
    /// Bytes of whole batches in the `.log` file.
    pub size: u64,
    /// Offset after the last batch (the base offset when empty).
    pub next_offset: u64,
    pub max_timestamp: i64,
    /// Timestamp that `segment.ms` counts from: the first batch's max timestamp, or the
    /// wall-clock time of the first append when that timestamp is unset.
    pub rolling_timestamp: Option<i64>,
    /// `rolling_timestamp` is the wall-clock time (the first batch had no timestamp).
    pub rolling_by_wall_clock: bool,
    /// Wall-clock time of the first append since this process opened the segment.
    /// `None` after a restart: the cleaner then treats the segment's compaction
    /// deadline as already due, which is the safe side.
    pub first_append_ms: Option<i64>,
    bytes_since_index_entry: u64,
    /// Base offset of the last batch, once appended or scanned since the segment opened.
    last_batch_base: Option<u64>,
    /// Data written since the last fsync of this segment's log file.
    pub dirty: bool,
    pub active: bool,
    /// Logical clock of the last read, for closing idle handles.
    pub last_used: u64,
    /// The aborted transactions whose markers lie in this segment.
    pub txn: TxnIndex,
}

impl Segment {
    /// Create an empty active segment. On an error no file of it is left behind (a
    /// roll that finds the disk full changes nothing).
    pub fn create(dir: &Path, base_offset: u64, config: &LogConfig) -> io::Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(layout::log_file(dir, base_offset))?;
        let mut seg = Segment::closed(dir, base_offset);
        let r = seg.init_created(file, config);
        if let Err(e) = r {
            seg.file = None;
            seg.offset_index = None;
            seg.time_index = None;
            for f in [
                SegmentFile::Log,
                SegmentFile::OffsetIndex,
                SegmentFile::TimeIndex,
            ] {
                let _ = std::fs::remove_file(seg.path(f));
            }
            return Err(e);
        }
        Ok(seg)
    }

    fn init_created(&mut self, file: File, config: &LogConfig) -> io::Result<()> {
        // A transaction index left from an earlier segment of this base (one cut by
        // recovery) holds nothing of this one.
        match std::fs::remove_file(self.path(SegmentFile::TxnIndex)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.file = Some(Arc::new(file));
        self.active = true;
        self.open_indexes(config, true)?;
        if let Some(i) = self.offset_index.as_mut() {
            i.clear();
        }
        if let Some(i) = self.time_index.as_mut() {
            i.clear();
        }
        Ok(())
    }

    /// A segment whose files exist but are not open yet.
    pub fn closed(dir: &Path, base_offset: u64) -> Segment {
        Segment {
            base_offset,
            dir: Arc::from(dir),
            file: None,
            offset_index: None,
            time_index: None,
            index_shared: (0, 0),
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            rolling_timestamp: None,
            rolling_by_wall_clock: false,
            first_append_ms: None,
            bytes_since_index_entry: 0,
            last_batch_base: None,
            dirty: false,
            active: false,
            last_used: 0,
            txn: TxnIndex::empty(layout::txn_index_file(dir, base_offset), base_offset),
        }
    }

    /// Load the transaction index, keeping entries whose markers lie below `limit` (the
    /// log end, for the segment recovery left active). See [`TxnIndex::load`].
    pub fn load_txn_index(&mut self, limit: u64) {
        self.txn = TxnIndex::load(
            self.path(SegmentFile::TxnIndex),
            self.base_offset,
            limit,
            self.size,
        );
    }

    pub fn path(&self, file: SegmentFile) -> PathBuf {
        layout::segment_file(&self.dir, self.base_offset, file)
    }

    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    pub fn file(&mut self) -> io::Result<Arc<File>> {
        if let Some(f) = &self.file {
            return Ok(f.clone());
        }
        let f = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(self.active)
                .open(self.path(SegmentFile::Log))?,
        );
        self.file = Some(f.clone());
        Ok(f)
    }

    pub fn open_indexes(&mut self, config: &LogConfig, writable: bool) -> io::Result<()> {
        let max = config.segment_index_bytes as usize;
        if self.offset_index.is_none() {
            let mut index = OffsetIndex::open(
                &self.path(SegmentFile::OffsetIndex),
                self.base_offset,
                max,
                writable,
            )?;
            index.keep_shared(self.index_shared.0);
            self.offset_index = Some(index);
        }
        if self.time_index.is_none() {
            let mut index = TimeIndex::open(
                &self.path(SegmentFile::TimeIndex),
                self.base_offset,
                max,
                writable,
            )?;
            index.keep_shared(self.index_shared.1);
            self.time_index = Some(index);
        }
        Ok(())
    }

    /// Close file handles and mappings of an inactive segment; they reopen on demand.
    pub fn release_handles(&mut self) {
        debug_assert!(!self.active);
        self.file = None;
        self.txn.release();
        if let Some(i) = self.offset_index.take() {
            self.index_shared.0 = self.index_shared.0.max(i.shared());
        }
        if let Some(i) = self.time_index.take() {
            self.index_shared.1 = self.index_shared.1.max(i.shared());
        }
    }

    /// Drop the indexes to rebuild them in new files: readers of the old ones keep
    /// their mappings of the old files, so nothing of the new ones is shared yet.
    fn discard_indexes(&mut self) -> io::Result<()> {
        self.offset_index = None;
        self.time_index = None;
        self.index_shared = (0, 0);
        for f in [SegmentFile::OffsetIndex, SegmentFile::TimeIndex] {
            match std::fs::remove_file(self.path(f)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn offset_index(&mut self, config: &LogConfig) -> io::Result<&mut OffsetIndex> {
        self.open_indexes(config, self.active)?;
        Ok(self.offset_index.as_mut().expect("opened above"))
    }

    fn time_index(&mut self, config: &LogConfig) -> io::Result<&mut TimeIndex> {
        self.open_indexes(config, self.active)?;
        Ok(self.time_index.as_mut().expect("opened above"))
    }

    pub fn index_is_full(&mut self, config: &LogConfig) -> io::Result<bool> {
        Ok(self.offset_index(config)?.is_full() || self.time_index(config)?.is_full())
    }

    /// Append `records`, whose batches are described by `batches`, with each batch's
    /// first [`BATCH_HEADER_LEN`] bytes replaced by the matching entry of `headers`.
    pub fn append(
        &mut self,
        config: &LogConfig,
        records: &[u8],
        headers: &[[u8; BATCH_HEADER_LEN]],
        batches: &[BatchHeader],
        now_ms: i64,
    ) -> io::Result<()> {
        debug_assert!(self.active);
        debug_assert_eq!(headers.len(), batches.len());
        let start = self.size;
        let mut parts: Vec<IoSlice<'_>> = Vec::with_capacity(2 * batches.len());
        let mut pos = 0usize;
        for (header, h) in headers.iter().zip(batches) {
            let end = pos + h.total_len();
            let body = records
                .get(pos + BATCH_HEADER_LEN..end)
                .ok_or_else(|| io::Error::other("batch extends past its record set"))?;
            parts.push(IoSlice::new(header));
            parts.push(IoSlice::new(body));
            pos = end;
        }
        let file = self.file()?;
        fault::write_all_vectored_at(&file, &mut parts, start, || self.path(SegmentFile::Log))?;
        if self.first_append_ms.is_none() {
            self.first_append_ms = Some(now_ms);
        }
        let mut position = start;
        for h in batches {
            if self.rolling_timestamp.is_none() {
                self.rolling_by_wall_clock = h.max_timestamp < 0;
                self.rolling_timestamp = Some(if h.max_timestamp >= 0 {
                    h.max_timestamp
                } else {
                    now_ms
                });
            }
            self.index_batch(config, position, h)?;
            position += h.total_len() as u64;
        }
        self.size = position;
        self.dirty = true;
        Ok(())
    }

    /// Update indexes and in-memory state for a batch at `position` (append or rebuild).
    fn index_batch(
        &mut self,
        config: &LogConfig,
        position: u64,
        h: &BatchHeader,
    ) -> io::Result<()> {
        let base = h.base_offset as u64;
        if self.size == 0 && position == 0 {
            self.bytes_since_index_entry = 0;
        }
        if self.bytes_since_index_entry >= config.index_interval_bytes as u64 {
            // Position fits in u32: segment.bytes is capped at i32::MAX.
            self.offset_index(config)?.append(base, position as u32);
            let ts = self.max_timestamp.max(h.max_timestamp);
            self.time_index(config)?.maybe_append(ts, base);
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += h.total_len() as u64;
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
        self.next_offset = h.last_offset() as u64 + 1;
        self.last_batch_base = Some(base);
        Ok(())
    }

    /// Validate batches from `position` to the end of the file, rebuilding the indexes
    /// for that range. Used on recovery and to load the tail of a cleanly closed
    /// active segment.
    pub fn scan_from(
        &mut self,
        config: &LogConfig,
        position: u64,
        next_offset: u64,
        max_timestamp: i64,
        file_len: u64,
    ) -> io::Result<ScanOutcome> {
        let file = self.file()?;
        let mut pos = position;
        self.size = position;
        self.next_offset = next_offset;
        self.last_batch_base = None;
        self.max_timestamp = max_timestamp;
        let mut stopped_by = None;
        let mut buf = Vec::new();
        // Always index the first batch examined, so a rebuilt index has an anchor.
        self.bytes_since_index_entry = if position == 0 {
            0
        } else {
            config.index_interval_bytes as u64
        };
        while pos < file_len {
            let mut header_buf = [0u8; BATCH_HEADER_LEN];
            let avail = (file_len - pos).min(BATCH_HEADER_LEN as u64) as usize;
            file.read_exact_at(&mut header_buf[..avail], pos)?;
            let header = match BatchHeader::parse_fixed(&header_buf[..avail]) {
                Ok(h) => h,
                Err(e) => {
                    stopped_by = Some((pos, e.to_string()));
                    break;
                }
            };
            let total = header.total_len() as u64;
            if total > config.max_batch_bytes_on_disk() || pos + total > file_len {
                stopped_by = Some((
                    pos,
                    format!("batch of {total} bytes runs past the end of the file ({file_len})"),
                ));
                break;
            }
            buf.resize(total as usize, 0);
            file.read_exact_at(&mut buf, pos)?;
            let header = match validate_batch(&buf, Strictness::Stored) {
                Ok(h) => h,
                Err(e) => {
                    stopped_by = Some((pos, e.to_string()));
                    break;
                }
            };
            // Offsets only grow, and stay addressable from this segment's base.
            if header.base_offset < 0
                || (header.base_offset as u64) < self.next_offset
                || header.last_offset() as u64 - self.base_offset > u32::MAX as u64
            {
                stopped_by = Some((
                    pos,
                    format!("batch base offset {} out of order", header.base_offset),
                ));
                break;
            }
            if self.rolling_timestamp.is_none() {
                self.rolling_timestamp = Some(header.max_timestamp);
            }
            // A full index (written with a larger segment.index.bytes) only makes
            // lookups scan further; the data stays.
            self.index_batch(config, pos, &header)?;
            pos += total;
            self.size = pos;
        }
        Ok(ScanOutcome {
            valid_end: pos,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            stopped_by,
        })
    }

    /// Load a segment from disk, trusting its data (it lies before the recovery point
    /// or the log was closed cleanly). Indexes that fail their sanity check are rebuilt;
    /// the batches after the last index entry are scanned and validated.
    pub fn load(&mut self, config: &LogConfig) -> io::Result<ScanOutcome> {
        let file_len = self.file()?.metadata()?.len();
        let offsets_ok = self.offset_index(config)?.sanity_check(file_len);
        let times_ok = self.time_index(config)?.sanity_check(u64::MAX);
        let checked = offsets_ok.and(times_ok);
        let (from_pos, from_offset, from_ts) = match checked {
            Ok(()) => {
                let last = self.offset_index(config)?.last()?;
                let last_ts = self.time_index(config)?.last()?.map_or(-1, |e| e.timestamp);
                match last {
                    Some(e) => (e.position as u64, e.offset, last_ts),
                    None => (0, self.base_offset, -1),
                }
            }
            Err(why) => {
                tracing::warn!(segment = %self.path(SegmentFile::Log).display(), %why,
                    "index failed its sanity check; rebuilding it");
                (0, self.base_offset, -1)
            }
        };
        if from_pos > 0 {
            // The scan re-adds the entry it starts from.
            self.offset_index(config)?
                .truncate_to_position(from_pos as u32)?;
            self.time_index(config)?.truncate_to_offset(from_offset)?;
            if let Some(h) = self.read_header_at_start(file_len)? {
                self.rolling_timestamp = Some(h.max_timestamp);
            }
        } else {
            self.offset_index(config)?.clear();
            self.time_index(config)?.clear();
        }
        self.scan_from(config, from_pos, from_offset, from_ts, file_len)
    }

    /// Load an inactive segment that lies below the recovery point: size from the file,
    /// `next_offset` from the next segment, max timestamp from the time index. Indexes
    /// are sanity-checked read-only and rebuilt (by a full scan) only if they fail.
    pub fn load_inactive(&mut self, config: &LogConfig, next_base: u64) -> io::Result<()> {
        self.active = false;
        self.size = self.file()?.metadata()?.len();
        self.next_offset = next_base;
        let missing = !self.path(SegmentFile::OffsetIndex).exists()
            || !self.path(SegmentFile::TimeIndex).exists();
        let checked = if missing && self.size > 0 {
            Err("index file missing".to_string())
        } else {
            let size = self.size;
            let offsets_ok = self.offset_index(config)?.sanity_check(size);
            let times_ok = self.time_index(config)?.sanity_check(next_base);
            offsets_ok.and(times_ok)
        };
        match checked {
            Ok(()) => {
                self.max_timestamp = self.time_index(config)?.last()?.map_or(-1, |e| e.timestamp);
            }
            Err(why) => {
                tracing::warn!(segment = %self.path(SegmentFile::Log).display(), %why,
                    "index failed its sanity check; rebuilding it");
                // A removal that fails leaves the old file, which the rebuild clears.
                let _ = self.discard_indexes();
                self.active = true;
                self.file = None;
                let outcome = self.recover(config)?;
                if let Some((pos, why)) = outcome.stopped_by {
                    // Trusted data failing validation is reported, not cut: the caller
                    // decides (a full recovery truncates it).
                    tracing::error!(segment = %self.path(SegmentFile::Log).display(), position = pos, %why,
                        "invalid batch in a segment below the recovery point");
                }
                self.size = self.file()?.metadata()?.len();
                self.next_offset = next_base;
                self.seal(config)?;
            }
        }
        self.release_handles();
        Ok(())
    }

    /// Load a segment the cleaner has just written: build its indexes by a full scan.
    /// Every batch must be valid; the cleaner wrote and fsynced them.
    pub fn load_rebuilt(&mut self, config: &LogConfig, next_base: u64) -> io::Result<()> {
        self.discard_indexes()?;
        self.active = true;
        self.file = None;
        let outcome = self.recover(config)?;
        if let Some((pos, why)) = outcome.stopped_by {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "cleaned segment {} is invalid at {pos}: {why}",
                    self.base_offset
                ),
            ));
        }
        self.size = self.file()?.metadata()?.len();
        self.next_offset = next_base;
        self.seal(config)?;
        self.release_handles();
        Ok(())
    }

    /// Rename the segment's files to `NAME.deleted`, for removal after
    /// `file.delete.delay.ms`. Returns the new paths.
    pub fn rename_for_deletion(mut self) -> io::Result<Vec<PathBuf>> {
        self.file = None;
        self.offset_index = None;
        self.time_index = None;
        self.txn.release();
        let mut renamed = Vec::new();
        for f in SegmentFile::ALL {
            let from = self.path(f);
            let to = layout::deleted_file(&from);
            match fault::rename(&from, &to) {
                Ok(()) => renamed.push(to),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(renamed)
    }

    /// Rebuild both indexes and the segment state by validating every batch.
    pub fn recover(&mut self, config: &LogConfig) -> io::Result<ScanOutcome> {
        let file_len = self.file()?.metadata()?.len();
        self.offset_index(config)?.clear();
        self.time_index(config)?.clear();
        self.rolling_timestamp = None;
        self.scan_from(config, 0, self.base_offset, -1, file_len)
    }

    fn read_header_at_start(&mut self, file_len: u64) -> io::Result<Option<BatchHeader>> {
        let file = self.file()?;
        read_header_at(&file, 0, file_len, || self.path(SegmentFile::Log))
    }

    /// The segment as it is now, for reading without the log lock. Opens its files if
    /// they are closed (an idle inactive segment).
    pub fn reader(&mut self, config: &LogConfig) -> io::Result<SegmentReader> {
        let file = self.file()?;
        self.open_indexes(config, self.active)?;
        let offsets = self.offset_index.as_mut().expect("opened above").reader();
        let times = self.time_index.as_mut().expect("opened above").reader();
        Ok(SegmentReader {
            base_offset: self.base_offset,
            size: self.size,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            dir: self.dir.clone(),
            file,
            offsets,
            times,
        })
    }

    /// Cut the file (and indexes) at `position`.
    pub fn truncate_to(&mut self, config: &LogConfig, position: u64) -> io::Result<()> {
        self.file()?.set_len(position)?;
        self.size = position;
        self.last_batch_base = None;
        self.offset_index(config)?
            .truncate_to_position(position as u32)
    }

    /// Make the segment read-only: trim its indexes and fsync them.
    pub fn seal(&mut self, config: &LogConfig) -> io::Result<()> {
        for (file, path) in self.seal_unsynced(config)? {
            fault::sync_all(&file, || &path)?;
        }
        Ok(())
    }

    /// [`Segment::seal`] without the fsyncs: returns the index files, which the caller
    /// must fsync (with the `.log` file, which stays dirty) before any offset past this
    /// segment is reported durable. A roll does this under the log lock and leaves the
    /// fsyncs to the next flush.
    pub fn seal_unsynced(&mut self, config: &LogConfig) -> io::Result<Vec<(File, PathBuf)>> {
        // A final time index entry holds the segment's max timestamp, as Kafka does on
        // roll, so a timestamp search can skip the segment from the index alone.
        let max_ts = self.max_timestamp;
        if let Some(last) = self.last_batch_base(config)? {
            // It may take the slot the index keeps for it.
            let _ = self.time_index(config)?.append_final(max_ts, last);
        }
        let offsets = self.offset_index(config)?;
        let offsets = (offsets.trim()?, offsets.path().to_path_buf());
        let times = self.time_index(config)?;
        let times = (times.trim()?, times.path().to_path_buf());
        self.active = false;
        Ok(vec![offsets, times])
    }

    /// Base offset of the last batch: known in memory for a segment appended to or
    /// scanned since it was opened, else found from the index.
    fn last_batch_base(&mut self, config: &LogConfig) -> io::Result<Option<u64>> {
        let next = self.next_offset;
        if next == self.base_offset {
            return Ok(None);
        }
        if let Some(base) = self.last_batch_base {
            return Ok(Some(base));
        }
        Ok(self
            .reader(config)?
            .find_batch(next - 1)?
            .map(|l| l.header.base_offset as u64))
    }

    pub fn flush_indexes(&self) -> io::Result<()> {
        if let Some(i) = &self.offset_index {
            i.flush()?;
        }
        if let Some(i) = &self.time_index {
            i.flush()?;
        }
        Ok(())
    }

    /// Remove the segment's files.
    pub fn delete_files(mut self) -> io::Result<()> {
        self.file = None;
        self.offset_index = None;
        self.time_index = None;
        self.txn.release();
        for f in SegmentFile::ALL {
            match std::fs::remove_file(self.path(f)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A segment as it was when taken under the log lock, read without it: its open file,
/// its indexes' entries then and its bounds then. Bytes at or past `size` (an append
/// racing the read) are never read. A segment deleted or compacted away meanwhile has
/// its files unlinked, but this open file and these mappings stay, so the reader still
/// sees the segment whole, as it was.
#[derive(Clone)]
pub struct SegmentReader {
    pub base_offset: u64,
    /// Bytes of whole batches.
    pub size: u64,
    /// Offset after the last batch.
    pub next_offset: u64,
    pub max_timestamp: i64,
    dir: Arc<Path>,
    file: Arc<File>,
    offsets: OffsetIndexReader,
    times: TimeIndexReader,
}

impl SegmentReader {
    /// Read and parse the batch header at `position` (no CRC check).
    pub fn read_header(&self, position: u64) -> io::Result<Option<BatchHeader>> {
        read_header_at(&self.file, position, self.size, || {
            layout::log_file(&self.dir, self.base_offset)
        })
    }

    /// Find the first batch whose last offset >= `offset`, scanning from the index.
    pub fn find_batch(&self, offset: u64) -> io::Result<Option<BatchLocation>> {
        let start = self.offsets.lookup(offset)?;
        let mut pos = start.position as u64;
        while let Some(header) = self.read_header(pos)? {
            if header.last_offset() as u64 >= offset {
                return Ok(Some(BatchLocation {
                    position: pos as u32,
                    header,
                }));
            }
            pos += header.total_len() as u64;
        }
        Ok(None)
    }

    /// The file position where batches with offsets >= `offset` begin (the segment size
    /// if there are none). `offset` must lie on a batch boundary or past the end.
    pub fn position_of_boundary(&self, offset: u64) -> io::Result<u64> {
        if offset >= self.next_offset {
            return Ok(self.size);
        }
        Ok(match self.find_batch(offset)? {
            Some(loc) => loc.position as u64,
            None => self.size,
        })
    }

    /// The end of the last whole batch that starts at or after `from` and ends at or
    /// before `limit`, or `None` if even the first batch at `from` ends past `limit`.
    pub fn last_batch_end_within(&self, from: u64, limit: u64) -> io::Result<Option<u64>> {
        if limit >= self.size {
            return Ok(Some(self.size));
        }
        // Start from the index entry at or before `limit`, but never before `from`.
        let anchor = self.offsets.lookup_position(limit as u32)?.position as u64;
        let mut pos = anchor.max(from);
        let mut end = None;
        while let Some(h) = self.read_header(pos)? {
            let next = pos + h.total_len() as u64;
            if next > limit {
                break;
            }
            end = Some(next);
            pos = next;
        }
        if end.is_none() && pos > from {
            // The anchor itself is a batch boundary at or before the limit.
            end = Some(pos);
        }
        Ok(end)
    }

    /// Find the first batch whose max timestamp >= `timestamp`.
    pub fn find_timestamp(&self, timestamp: i64) -> io::Result<Option<BatchLocation>> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let from_offset = match self.times.lookup_before(timestamp)? {
            Some(e) => e.offset,
            None => self.base_offset,
        };
        let mut pos = self.offsets.lookup(from_offset)?.position as u64;
        while let Some(h) = self.read_header(pos)? {
            if h.max_timestamp >= timestamp {
                return Ok(Some(BatchLocation {
                    position: pos as u32,
                    header: h,
                }));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    pub fn slice(&self, position: u64, len: u64) -> FileSlice {
        debug_assert!(position + len <= self.size);
        FileSlice {
            file: self.file.clone(),
            position,
            len,
        }
    }
}

/// The batch header at `position` of a file whose whole batches end at `size`, or
/// `None` if no whole batch starts there.
fn read_header_at<P: AsRef<Path>>(
    file: &File,
    position: u64,
    size: u64,
    path: impl FnOnce() -> P,
) -> io::Result<Option<BatchHeader>> {
    if position + BATCH_HEADER_LEN as u64 > size {
        return Ok(None);
    }
    let mut buf = [0u8; BATCH_HEADER_LEN];
    fault::read_exact_at(file, &mut buf, position, path)?;
    let header = match BatchHeader::parse_fixed(&buf) {
        Ok(h) => h,
        Err(_) => return Ok(None),
    };
    if position + header.total_len() as u64 > size {
        return Ok(None);
    }
    Ok(Some(header))
}
