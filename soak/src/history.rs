//! The history of a soak run: every send, acknowledgement, poll, commit and
//! rebalance the clients saw, with its time, one JSON object a line.
//!
//! Times are microseconds since the run started, from one monotonic clock shared by
//! every client thread of the process, so events of different clients can be ordered.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Which records a reader may see.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
}

/// One thing a client did or saw.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A producer handed a record to its client. `seq` counts the producer's sends to
    /// this partition; `txn` is the transaction it belongs to, if any.
    Send {
        t: u64,
        producer: String,
        topic: String,
        partition: i32,
        seq: u64,
        value: String,
        txn: Option<u64>,
    },
    /// The broker acknowledged the record at `offset`.
    Ack {
        t: u64,
        topic: String,
        partition: i32,
        value: String,
        offset: i64,
    },
    /// The client gave up on the record: it may or may not be in the log.
    SendFailed {
        t: u64,
        topic: String,
        partition: i32,
        value: String,
        error: String,
    },
    /// A transaction's end was asked for; `acked` says whether the broker confirmed it.
    TxnEnd {
        t: u64,
        producer: String,
        txn: u64,
        commit: bool,
        acked: bool,
        error: Option<String>,
    },
    /// A reader got a record. `session` numbers the reader's assignments: within one,
    /// its offsets on a partition only go up.
    Poll {
        t: u64,
        reader: String,
        session: u64,
        isolation: Isolation,
        topic: String,
        partition: i32,
        offset: i64,
        value: String,
    },
    /// A group member asked to commit `offset` (the next offset to read) and the broker
    /// answered (`acked`) or did not.
    Commit {
        t: u64,
        group: String,
        member: String,
        topic: String,
        partition: i32,
        offset: i64,
        acked: bool,
    },
    /// The group's committed offset as read back (OffsetFetch).
    CommittedRead {
        t: u64,
        group: String,
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// A group member was given a partition.
    Assign {
        t: u64,
        group: String,
        member: String,
        session: u64,
        topic: String,
        partition: i32,
    },
    /// A group member gave a partition up, or learned it had lost it (`lost`: the
    /// group had already moved on without it, as after its session expired).
    Revoke {
        t: u64,
        group: String,
        member: String,
        topic: String,
        partition: i32,
        lost: bool,
    },
    /// A fault the driver injected.
    Fault {
        t: u64,
        kind: String,
        detail: String,
    },
    /// The final read of a partition ended: it reached `end` (the high watermark, or
    /// for read_committed the last stable offset) or gave up before.
    FinalEnd {
        t: u64,
        reader: String,
        isolation: Isolation,
        topic: String,
        partition: i32,
        end: i64,
        reached: bool,
    },
}

/// Appends events to a file from any thread.
pub struct Recorder {
    start: Instant,
    out: Mutex<BufWriter<File>>,
}

impl Recorder {
    pub fn create(path: &Path) -> io::Result<Recorder> {
        Ok(Recorder {
            start: Instant::now(),
            out: Mutex::new(BufWriter::new(File::create(path)?)),
        })
    }

    /// Microseconds since the recorder was created.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Write one event. A history that cannot be written makes the run worthless, so
    /// this panics rather than carry on with a hole in it.
    pub fn record(&self, event: &Event) {
        let line = serde_json::to_string(event).expect("an event serializes");
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(out, "{line}").expect("write the history");
    }

    pub fn flush(&self) -> io::Result<()> {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

/// Read a history file written by a [`Recorder`].
pub fn read(path: &Path) -> io::Result<Vec<Event>> {
    let mut events = Vec::new();
    for (n, line) in BufReader::new(File::open(path)?).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("line {}: {e}", n + 1))
        })?;
        events.push(event);
    }
    Ok(events)
}
