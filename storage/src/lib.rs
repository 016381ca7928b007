//! Runnel's storage engine: a segmented, append-only log per partition that holds Kafka
//! v2 record batches byte for byte, in Kafka's on-disk layout.
//!
//! - [`Log`]: one partition's ordered set of segments. Append, read by offset or
//!   timestamp, advance the log start offset, recover after a crash.
//! - [`SharedLog`]: a `Log` behind a lock, plus group commit: many appenders waiting for
//!   durability share one fsync.
//! - [`LogManager`]: all partition logs under one data directory, the clean-shutdown
//!   marker and the recovery-point checkpoint.
//! - [`producer_state`]: idempotent producers' sequence checks and snapshots, kept
//!   beside the log as Kafka keeps them, and the producer-id block.
//! - [`txn_index`]: each segment's aborted transactions (`.txnindex`), for
//!   read_committed fetches and the cleaner.
//! - [`layout`]: the name of every file and directory, built and parsed in one place.
//! - [`fault`]: the seam every write, fsync and rename goes through, where tests inject
//!   failures, holds and short writes. After an I/O error on its write path a log is
//!   poisoned ([`StorageError::Poisoned`]) until reopened.
//! - [`space`]: a full log directory, which refuses appends ([`StorageError::NoSpace`])
//!   without taking the log out of service.
//!
//! The storage layer knows nothing about Kafka requests. All file I/O is blocking; the
//! broker calls it off its async worker threads.

pub mod checkpoint;
pub mod cleaner;
pub mod clock;
pub mod fault;
mod group_commit;
pub mod index;
pub mod layout;
pub mod leader_epoch;
mod log;
mod manager;
pub mod producer_state;
pub mod segment;
pub mod space;
pub mod txn_index;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

pub use cleaner::{CleanStats, CleanerSettings, KeyOccurrence, Throttle};
pub use group_commit::SharedLog;
pub use layout::TopicPartition;
pub use log::{
    AppendInfo, HeaderRewrite, Log, OpenMode, ReadResult, RecoveryReport, RetentionOutcome,
    TimestampHit,
};
pub use manager::LogManager;
pub use runnel_records::record_batch::BatchError;
pub use txn_index::AbortedTxn;

/// Per-log settings, named after Kafka's topic configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u32,
    /// `segment.ms`: roll when the active segment's first batch is this old.
    pub segment_ms: i64,
    /// `segment.index.bytes`: preallocated size of each index file.
    pub segment_index_bytes: u32,
    /// `index.interval.bytes`: bytes of log between offset index entries.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: largest record batch accepted.
    pub max_message_bytes: u32,
    /// Inactive segments that may keep their files open at once; others reopen on
    /// demand. Bounds file handles by partitions rather than by segments.
    pub max_open_inactive_segments: usize,
    /// `file.delete.delay.ms`: how long a deleted segment's files stay (renamed to
    /// `.deleted`) before removal. Runnel's default is 0: readers hold open file handles,
    /// so unlinking under them is safe, and erasure deadlines stay short.
    pub file_delete_delay_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            max_message_bytes: 1024 * 1024 + 12,
            max_open_inactive_segments: 2,
            file_delete_delay_ms: 0,
        }
    }
}

/// Hard ceiling on any single batch found on disk, whatever the config said when it was
/// written. Scanning a corrupt length never allocates more than this.
pub const MAX_BATCH_BYTES_ON_DISK: u64 = 1 << 30;

impl LogConfig {
    /// Check the limits Kafka enforces and those our file format needs (positions in
    /// the offset index are u32).
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 14 || self.segment_bytes > i32::MAX as u32 {
            return Err(format!(
                "segment.bytes {} must be in [14, {}]",
                self.segment_bytes,
                i32::MAX
            ));
        }
        if self.segment_ms < 1 {
            return Err("segment.ms must be at least 1".into());
        }
        if (self.segment_index_bytes as usize) < index::TimeIndex::ENTRY_SIZE * 4 {
            return Err("segment.index.bytes is too small".into());
        }
        if self.max_message_bytes as u64 > MAX_BATCH_BYTES_ON_DISK {
            return Err(format!(
                "max.message.bytes must be at most {MAX_BATCH_BYTES_ON_DISK}"
            ));
        }
        Ok(())
    }

    pub(crate) fn max_batch_bytes_on_disk(&self) -> u64 {
        MAX_BATCH_BYTES_ON_DISK.max(self.max_message_bytes as u64)
    }
}

/// The result of a syscall that returns a byte count: the count, or the OS error.
pub fn syscall_bytes(n: libc::ssize_t) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A zero-copy view of whole batches in a segment file: the broker sends it with
/// `sendfile`, or reads it into a buffer. Holding it keeps the file open even if the
/// segment is deleted meanwhile (POSIX unlink semantics), so a fetch never sees a hole.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
}

impl FileSlice {
    /// Read the slice into `buf` (resized to fit), reusing its allocation.
    pub fn read_into(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.resize(self.len as usize, 0);
        self.file.read_exact_at(buf, self.position)
    }

    /// Read the slice into a new buffer, without zero-filling it first: a fetch reads up
    /// to a megabyte per partition, and the memset cost as much as the copy.
    pub fn read_to_vec(&self) -> io::Result<Vec<u8>> {
        use std::os::unix::io::AsRawFd;
        let len = usize::try_from(self.len).map_err(io::Error::other)?;
        let mut buf: Vec<u8> = Vec::with_capacity(len);
        let fd = self.file.as_raw_fd();
        while buf.len() < len {
            let done = buf.len();
            let spare = buf.spare_capacity_mut();
            let offset =
                libc::off_t::try_from(self.position + done as u64).map_err(io::Error::other)?;
            // SAFETY: pread writes at most `len - done` bytes into the vector's spare
            // capacity, which is at least that long; only bytes it reports written are
            // then counted into the length.
            let n = match syscall_bytes(unsafe {
                libc::pread(fd, spare.as_mut_ptr().cast(), len - done, offset)
            }) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
            };
            // SAFETY: the first `done + n` bytes are initialised (see above).
            unsafe { buf.set_len(done + n) };
        }
        Ok(buf)
    }
}

/// Errors from the storage layer. Batch errors mean nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid record batch at byte {position} of the record set: {source}")]
    InvalidBatch { position: usize, source: BatchError },
    #[error("record set is empty")]
    EmptyRecordSet,
    #[error("record batch of {size} bytes exceeds max.message.bytes {limit}")]
    BatchTooLarge { size: usize, limit: u32 },
    #[error("record set of {size} bytes is larger than segment.bytes {limit}")]
    RecordSetTooLarge { size: usize, limit: u32 },
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: u64,
        log_start_offset: u64,
        log_end_offset: u64,
    },
    #[error("invalid log config: {0}")]
    InvalidConfig(String),
    #[error("log directory {0} is not a partition directory")]
    BadDirectory(String),
    #[error("an earlier fsync failed; the log refuses further writes: {0}")]
    Poisoned(String),
    /// The log directory is full: the write was rolled back (nothing of it is in the
    /// log) and the log stays writable; the next write tries again. See [`space`].
    #[error("no space in the log directory; nothing was written: {0}")]
    NoSpace(io::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Wall-clock milliseconds since the epoch: the broker's one wall clock, which
/// `RUNNEL_CLOCK_OFFSET_FILE` can move (see [`clock`]).
#[inline]
pub fn now_ms() -> i64 {
    clock::now_ms()
}

/// fsync a directory so that file creations, renames and deletions in it are durable.
pub fn sync_dir(path: &std::path::Path) -> io::Result<()> {
    fault::sync_dir(path)
}
