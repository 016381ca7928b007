//! The storage I/O seam and its fault injection: every write, fsync (file and
//! directory), rename and resize (of an index) the log makes, and the batch header
//! reads of its lookups, go
//! through the functions here, so tests can make one of them fail, block, or write
//! short.
//!
//! With no plan installed each call costs one relaxed atomic load, then makes the plain
//! system call: no lock, no allocation.
//!
//! # From Rust
//!
//! ```no_run
//! use runnel_storage::fault::{self, Action, FaultPlan, Op, Rule};
//! let plan = fault::install(FaultPlan::new(vec![
//!     Rule::new(Op::Fsync, Action::Fail).nth(3).path("topicA-0"),
//! ]));
//! // ... the 3rd fsync of a file under a `topicA-0` directory fails with EIO ...
//! fault::uninstall();
//! ```
//!
//! A plan is process-wide: tests that install one must not run beside each other.
//!
//! # From the environment
//!
//! `RUNNEL_FAULTS` is read once, when the first [`crate::LogManager`] opens (so at
//! broker start), and the broker then logs `fault injection active: ...` at warn level.
//! A malformed value fails the start. The syntax is rules separated by `,`:
//!
//! ```text
//! RUNNEL_FAULTS = RULE ("," RULE)*
//! RULE          = OP ":" ACTION (":" KEY "=" VALUE)*
//! OP            = write | fsync | dirsync | rename | read | truncate
//! ACTION        = fail | hold | short
//! ```
//!
//! - `write`: a write of segment data, cleaner output or a checkpoint, or a block
//!   reservation (fallocate) under an index; `fsync`: an
//!   fsync or fdatasync of a file, or an msync of an index; `dirsync`: an fsync of a
//!   directory; `rename`: a rename (it matches if either path does); `read`: a read of
//!   a batch header in a segment file, as a fetch or a lookup by time makes;
//!   `truncate`: a resize of an index file (grown when it opens, trimmed to its entries
//!   when its segment rolls or the log closes).
//! - `fail`: the call fails with `errno` and does nothing. `hold`: the call blocks until
//!   released, then runs. `short`: a write puts the first half of its bytes on disk and
//!   then fails with `errno` (a disk filling up mid-write); for other operations it is
//!   `fail`.
//!
//! Keys:
//! - `nth=N`: the first affected call is the Nth that matches the rule (default 1).
//! - `times=N|all`: how many matching calls from the Nth on are affected (default 1).
//! - `path=NAME`: only calls on a path with a component equal to `NAME`, e.g. a
//!   partition directory `topicA-0` (the directory itself and its files) or a file name.
//! - `errno=EIO|ENOSPC|EDQUOT|EROFS|EACCES|<number>`: the error (default `EIO`;
//!   `ENOSPC` for `short`).
//! - `hold_ms=N`: a hold ends after N ms. `release=FILE`: a hold ends once FILE exists.
//!   With neither, a hold started from the environment lasts until the process ends.
//!
//! Examples: `fsync:fail:path=topicA-0` (the first fsync of a file of partition
//! topicA-0 fails), `fsync:hold:path=topicA-0:release=/tmp/go`, `write:short:nth=2`,
//! `rename:fail:path=00000000000000000000.log`.
//!
//! The wall clock has its own seam beside this one: `RUNNEL_CLOCK_OFFSET_FILE` (see
//! [`crate::clock`]) moves the broker's wall clock by the offset in a file, to test
//! clock jumps.
//!
//! The seam is always compiled in rather than behind a cargo feature: integration tests
//! run the ordinary `runnel` binary, and a feature would mean a second build of it and
//! of the workspace. The cost when unused is the single atomic load, and the variable is
//! loud (a warning at start) and strict (a typo refuses to start).

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The environment variable read by [`install_from_env`].
pub const ENV_VAR: &str = "RUNNEL_FAULTS";

/// An I/O operation the seam intercepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Write,
    Fsync,
    DirSync,
    Rename,
    Read,
    Truncate,
}

/// What an affected call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Fail,
    Hold,
    Short,
}

/// One fault: which calls it affects and what they do.
#[derive(Debug)]
pub struct Rule {
    op: Op,
    action: Action,
    nth: u64,
    times: Option<u64>,
    path: Option<String>,
    errno: Option<i32>,
    hold: Option<Duration>,
    release_file: Option<PathBuf>,
    seen: AtomicU64,
    fired: AtomicU64,
}

impl Rule {
    /// The first call matching `op` is affected, once.
    pub fn new(op: Op, action: Action) -> Rule {
        Rule {
            op,
            action,
            nth: 1,
            times: Some(1),
            path: None,
            errno: None,
            hold: None,
            release_file: None,
            seen: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        }
    }
    /// The first affected call is the `n`th matching one (1-based).
    pub fn nth(mut self, n: u64) -> Rule {
        self.nth = n.max(1);
        self
    }
    /// How many matching calls from the nth are affected; `None` for all.
    pub fn times(mut self, times: Option<u64>) -> Rule {
        self.times = times;
        self
    }
    /// Only calls on a path with a component equal to `name`.
    pub fn path(mut self, name: impl Into<String>) -> Rule {
        self.path = Some(name.into());
        self
    }
    pub fn errno(mut self, errno: i32) -> Rule {
        self.errno = Some(errno);
        self
    }
    /// A hold ends after `d` at the latest.
    pub fn hold_for(mut self, d: Duration) -> Rule {
        self.hold = Some(d);
        self
    }
    /// A hold ends once `file` exists.
    pub fn release_file(mut self, file: impl Into<PathBuf>) -> Rule {
        self.release_file = Some(file.into());
        self
    }

    /// Calls that matched the rule so far (affected or not).
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }
    /// Calls the rule affected so far.
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::SeqCst)
    }

    fn matches(&self, op: Op, paths: &[&Path]) -> bool {
        self.op == op
            && self.path.as_deref().is_none_or(|name| {
                paths
                    .iter()
                    .any(|p| p.components().any(|c| c.as_os_str() == name))
            })
    }

    fn error(&self) -> io::Error {
        let default = match self.action {
            Action::Short => libc::ENOSPC,
            _ => libc::EIO,
        };
        io::Error::from_raw_os_error(self.errno.unwrap_or(default))
    }
}

/// A set of rules, installed process-wide with [`install`].
#[derive(Debug)]
pub struct FaultPlan {
    rules: Vec<Rule>,
    holds: Mutex<HoldState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct HoldState {
    released: bool,
    holding: usize,
}

impl FaultPlan {
    pub fn new(rules: Vec<Rule>) -> FaultPlan {
        FaultPlan {
            rules,
            holds: Mutex::new(HoldState::default()),
            changed: Condvar::new(),
        }
    }

    /// Parse the [`ENV_VAR`] syntax (see the module docs).
    pub fn parse(spec: &str) -> Result<FaultPlan, String> {
        let rules = spec
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(parse_rule)
            .collect::<Result<Vec<_>, _>>()?;
        if rules.is_empty() {
            return Err("no rules".into());
        }
        Ok(FaultPlan::new(rules))
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// End every hold, now and from now on.
    pub fn release_holds(&self) {
        self.lock_holds().released = true;
        self.changed.notify_all();
    }

    /// Wait until at least `n` calls are being held; false on timeout.
    pub fn wait_holding(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock_holds();
        while state.holding < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    fn lock_holds(&self) -> std::sync::MutexGuard<'_, HoldState> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply the rules to a call about to be made: `Err` to fail it, `Ok(Some(e))` to
    /// write short and then fail with `e`, `Ok(None)` to go ahead (after any hold).
    fn before(&self, op: Op, paths: &[&Path]) -> io::Result<Option<io::Error>> {
        for rule in &self.rules {
            if !rule.matches(op, paths) {
                continue;
            }
            let n = rule.seen.fetch_add(1, Ordering::SeqCst) + 1;
            let fires = n >= rule.nth && rule.times.is_none_or(|t| n - rule.nth < t);
            if !fires {
                continue;
            }
            rule.fired.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(?op, action = ?rule.action, path = %paths[0].display(), "fault injection");
            match rule.action {
                Action::Fail => return Err(rule.error()),
                Action::Short if op == Op::Write => return Ok(Some(rule.error())),
                Action::Short => return Err(rule.error()),
                Action::Hold => self.hold(rule),
            }
        }
        Ok(None)
    }

    fn hold(&self, rule: &Rule) {
        let deadline = rule.hold.map(|d| Instant::now() + d);
        let mut state = self.lock_holds();
        state.holding += 1;
        self.changed.notify_all();
        loop {
            let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
            let file_there = rule.release_file.as_deref().is_some_and(Path::exists);
            if state.released || timed_out || file_there {
                break;
            }
            // Poll: a release file has no wake-up of its own.
            let mut wait = Duration::from_millis(10);
            if let Some(d) = deadline {
                wait = wait.min(d.saturating_duration_since(Instant::now()));
            }
            state = self
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        state.holding -= 1;
        self.changed.notify_all();
    }
}

fn parse_rule(text: &str) -> Result<Rule, String> {
    let mut parts = text.split(':');
    let op = match parts.next().unwrap_or_default() {
        "write" => Op::Write,
        "fsync" => Op::Fsync,
        "dirsync" => Op::DirSync,
        "rename" => Op::Rename,
        "read" => Op::Read,
        "truncate" => Op::Truncate,
        other => return Err(format!("{text}: unknown operation {other:?}")),
    };
    let action = match parts.next() {
        Some("fail") => Action::Fail,
        Some("hold") => Action::Hold,
        Some("short") => Action::Short,
        other => return Err(format!("{text}: unknown action {other:?}")),
    };
    let mut rule = Rule::new(op, action);
    for kv in parts {
        let (key, value) = kv
            .split_once('=')
            .ok_or_else(|| format!("{text}: {kv:?} is not KEY=VALUE"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{text}: {key}={value:?} is not a number"))
        };
        match key {
            "nth" if number()? >= 1 => rule.nth = number()?,
            "nth" => return Err(format!("{text}: nth counts from 1")),
            "times" if value == "all" => rule.times = None,
            "times" => rule.times = Some(number()?),
            "path" if !value.is_empty() => rule.path = Some(value.to_string()),
            "errno" => {
                rule.errno = Some(
                    parse_errno(value).ok_or_else(|| format!("{text}: unknown errno {value:?}"))?,
                )
            }
            "hold_ms" => rule.hold = Some(Duration::from_millis(number()?)),
            "release" if !value.is_empty() => rule.release_file = Some(PathBuf::from(value)),
            _ => return Err(format!("{text}: unknown or empty key {key:?}")),
        }
    }
    Ok(rule)
}

fn parse_errno(name: &str) -> Option<i32> {
    Some(match name {
        "EIO" => libc::EIO,
        "ENOSPC" => libc::ENOSPC,
        "EDQUOT" => libc::EDQUOT,
        "EROFS" => libc::EROFS,
        "EACCES" => libc::EACCES,
        _ => return name.parse().ok().filter(|n| *n > 0),
    })
}

static ACTIVE: AtomicBool = AtomicBool::new(false);
static PLAN: Mutex<Option<Arc<FaultPlan>>> = Mutex::new(None);

/// Install `plan` process-wide, replacing any other. Returns it, to release holds and
/// read counters.
pub fn install(plan: FaultPlan) -> Arc<FaultPlan> {
    let plan = Arc::new(plan);
    *PLAN.lock().unwrap_or_else(|p| p.into_inner()) = Some(plan.clone());
    ACTIVE.store(true, Ordering::SeqCst);
    plan
}

/// Remove the installed plan, releasing its holds.
pub fn uninstall() {
    ACTIVE.store(false, Ordering::SeqCst);
    if let Some(plan) = PLAN.lock().unwrap_or_else(|p| p.into_inner()).take() {
        plan.release_holds();
    }
}

/// Install the plan in [`ENV_VAR`], if it is set; only the first call reads it.
pub fn install_from_env() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let Some(spec) = std::env::var_os(ENV_VAR) else {
            return Ok(());
        };
        let spec = spec
            .into_string()
            .map_err(|_| format!("{ENV_VAR} is not UTF-8"))?;
        let plan = FaultPlan::parse(&spec).map_err(|e| format!("{ENV_VAR}: {e}"))?;
        tracing::warn!(spec = %spec, "fault injection active: {ENV_VAR}={spec}");
        install(plan);
        Ok(())
    })
    .clone()
}

/// The installed plan. Inlined so that the common case is the one load.
#[inline]
fn plan() -> Option<Arc<FaultPlan>> {
    if !ACTIVE.load(Ordering::Relaxed) {
        return None;
    }
    installed()
}

#[cold]
fn installed() -> Option<Arc<FaultPlan>> {
    PLAN.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

#[inline]
fn check<P: AsRef<Path>>(op: Op, path: impl FnOnce() -> P) -> io::Result<Option<io::Error>> {
    match plan() {
        None => Ok(None),
        Some(plan) => plan.before(op, &[path().as_ref()]),
    }
}

/// `fdatasync(file)`. `path` (evaluated only under a plan or a sync journal) names it.
#[inline]
pub fn sync_data<P: AsRef<Path>>(file: &File, path: impl FnOnce() -> P) -> io::Result<()> {
    if !JOURNAL_ON.load(Ordering::Relaxed) {
        check(Op::Fsync, path)?;
        return file.sync_data();
    }
    journaled_sync(file, path().as_ref(), |f| f.sync_data())
}

/// `fsync(file)`.
#[inline]
pub fn sync_all<P: AsRef<Path>>(file: &File, path: impl FnOnce() -> P) -> io::Result<()> {
    if !JOURNAL_ON.load(Ordering::Relaxed) {
        check(Op::Fsync, path)?;
        return file.sync_all();
    }
    journaled_sync(file, path().as_ref(), |f| f.sync_all())
}

/// `msync` of a memory map (an index), counted as an fsync.
pub fn flush_map(map: &memmap2::MmapRaw, path: &Path) -> io::Result<()> {
    check(Op::Fsync, || path)?;
    // The map covers the whole file, so its length is the file's.
    let len = JOURNAL_ON.load(Ordering::Relaxed).then(|| map.len() as u64);
    map.flush()?;
    if let Some(len) = len {
        journal(format_args!("sync {len} {}", path.display()));
    }
    Ok(())
}

/// The environment variable naming the sync journal (see [`install_journal_from_env`]).
pub const JOURNAL_VAR: &str = "RUNNEL_SYNC_JOURNAL";

static JOURNAL_ON: AtomicBool = AtomicBool::new(false);
static JOURNAL: Mutex<Option<File>> = Mutex::new(None);

/// With `RUNNEL_SYNC_JOURNAL=FILE`, each fsync that succeeds appends `sync LEN PATH` to
/// FILE, LEN being the file's length before the call (those bytes are durable), and each
/// rename `rename FROM\tTO`. After a SIGKILL a harness can then cut every file back to
/// what was durable, as a power loss would (runnel-soak's `power` fault): a crash alone
/// loses nothing that reached the page cache, so it cannot show a missing fsync.
/// Directory entries are not modelled: a file that exists is taken to survive.
pub fn install_journal_from_env() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let Some(path) = std::env::var_os(JOURNAL_VAR) else {
            return Ok(());
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{JOURNAL_VAR}={}: {e}", Path::new(&path).display()))?;
        tracing::warn!(path = %Path::new(&path).display(), "sync journal active: {JOURNAL_VAR}");
        *JOURNAL.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
        JOURNAL_ON.store(true, Ordering::SeqCst);
        Ok(())
    })
    .clone()
}

#[cold]
fn journaled_sync(
    file: &File,
    path: &Path,
    sync: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    check(Op::Fsync, || path)?;
    let len = file.metadata()?.len();
    sync(file)?;
    journal(format_args!("sync {len} {}", path.display()));
    Ok(())
}

/// One line, whole: an O_APPEND write of a single buffer.
#[cold]
fn journal(line: std::fmt::Arguments<'_>) {
    let line = format!("{line}\n");
    if let Some(mut f) = JOURNAL.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::error!(error = %e, "the sync journal could not be written");
        }
    }
}

/// fsync a directory so that file creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    check(Op::DirSync, || dir)?;
    File::open(dir)?.sync_all()
}

/// `pread` of all of `buf` at `offset`.
#[inline]
pub fn read_exact_at<P: AsRef<Path>>(
    file: &File,
    buf: &mut [u8],
    offset: u64,
    path: impl FnOnce() -> P,
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    check(Op::Read, path)?;
    file.read_exact_at(buf, offset)
}

/// `ftruncate(file, len)`: an index file's resize.
pub fn set_len(file: &File, len: u64, path: &Path) -> io::Result<()> {
    check(Op::Truncate, || path)?;
    file.set_len(len)
}

/// `fallocate(file, 0, offset, len)`: reserve disk blocks under a range (of an index
/// file, before its mapping is written). Counted as a write, so a `write` rule with
/// `errno=ENOSPC` makes it fail as a full disk would.
pub fn allocate(file: &File, offset: u64, len: u64, path: &Path) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    if let Some(short) = check(Op::Write, || path)? {
        return Err(short);
    }
    let at = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    let len = libc::off_t::try_from(len).map_err(io::Error::other)?;
    loop {
        // SAFETY: a plain system call on an open descriptor; no memory is passed.
        let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, at, len) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `rename(from, to)`.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(plan) = plan() {
        plan.before(Op::Rename, &[from, to])?;
    }
    std::fs::rename(from, to)?;
    if JOURNAL_ON.load(Ordering::Relaxed) {
        journal(format_args!("rename {}\t{}", from.display(), to.display()));
    }
    Ok(())
}

/// Write all of `bytes` to `file` (at its cursor).
pub fn write_all(mut file: &File, bytes: &[u8], path: &Path) -> io::Result<()> {
    if let Some(short) = check(Op::Write, || path)? {
        file.write_all(&bytes[..bytes.len() / 2])?;
        return Err(short);
    }
    file.write_all(bytes)
}

/// A file whose writes go through the seam, for a `BufWriter`: each flushed chunk is one
/// write.
pub struct Writer {
    file: File,
    path: PathBuf,
}

impl Writer {
    pub fn new(file: File, path: PathBuf) -> Writer {
        Writer { file, path }
    }
    pub fn into_file(self) -> File {
        self.file
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(short) = check(Op::Write, || &self.path)? {
            self.file.write_all(&buf[..buf.len() / 2])?;
            return Err(short);
        }
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// `pwritev` until every byte of `parts` is written at `offset`: one write for the
/// rules, however many system calls it takes. The standard library has no positional
/// vectored write.
#[inline]
pub fn write_all_vectored_at<P: AsRef<Path>>(
    file: &File,
    parts: &mut [IoSlice<'_>],
    offset: u64,
    path: impl FnOnce() -> P,
) -> io::Result<()> {
    if let Some(short) = check(Op::Write, path)? {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut left = total / 2;
        let mut prefix = Vec::new();
        for p in parts.iter() {
            if left == 0 {
                break;
            }
            let n = p.len().min(left);
            prefix.push(IoSlice::new(&p[..n]));
            left -= n;
        }
        pwritev_all(file, &mut prefix, offset)?;
        return Err(short);
    }
    pwritev_all(file, parts, offset)
}

fn pwritev_all(file: &File, mut parts: &mut [IoSlice<'_>], offset: u64) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let mut offset = offset;
    while !parts.is_empty() {
        let count = parts.len().min(IOV_MAX);
        let at = libc::off_t::try_from(offset).map_err(io::Error::other)?;
        // SAFETY: IoSlice is ABI-compatible with iovec, and the first `count` entries
        // point at live, borrowed buffers that pwritev only reads.
        let n = match crate::syscall_bytes(unsafe {
            libc::pwritev(file.as_raw_fd(), parts.as_ptr().cast(), count as i32, at)
        }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
        };
        offset += n as u64;
        IoSlice::advance_slices(&mut parts, n);
    }
    Ok(())
}

/// Entries one `pwritev` takes (Linux's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_syntax() {
        let plan = FaultPlan::parse(
            "fsync:fail:nth=3:path=topicA-0, fsync:hold:path=topicA-0:hold_ms=50:release=/tmp/r,\
             write:short:errno=EDQUOT:times=all,rename:fail:errno=5:times=2,dirsync:hold,\
             read:hold:path=t-0,truncate:fail:path=00000000000000000000.index",
        )
        .unwrap();
        let r = plan.rules();
        assert_eq!(r.len(), 7);
        assert_eq!((r[5].op, r[5].action), (Op::Read, Action::Hold));
        assert_eq!((r[6].op, r[6].action), (Op::Truncate, Action::Fail));
        assert_eq!(
            (r[0].op, r[0].action, r[0].nth),
            (Op::Fsync, Action::Fail, 3)
        );
        assert_eq!(r[0].path.as_deref(), Some("topicA-0"));
        assert_eq!(r[1].hold, Some(Duration::from_millis(50)));
        assert_eq!(r[1].release_file.as_deref(), Some(Path::new("/tmp/r")));
        assert_eq!((r[2].errno, r[2].times), (Some(libc::EDQUOT), None));
        assert_eq!((r[3].errno, r[3].times), (Some(libc::EIO), Some(2)));
        assert_eq!((r[4].op, r[4].action), (Op::DirSync, Action::Hold));
    }

    #[test]
    fn rejects_typos() {
        for bad in [
            "",
            "fsnyc:fail",
            "fsync",
            "fsync:crash",
            "fsync:fail:nth=0",
            "fsync:fail:nth=x",
            "fsync:fail:path=",
            "fsync:fail:errno=EWHAT",
            "fsync:fail:pth=a",
            "fsync:fail:nth",
        ] {
            assert!(FaultPlan::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_matching_calls_only() {
        let plan = FaultPlan::new(vec![Rule::new(Op::Fsync, Action::Fail)
            .nth(2)
            .times(Some(2))
            .path("t-0")]);
        let hit = Path::new("/d/t-0/00000000000000000000.log");
        let other = Path::new("/d/t-01/00000000000000000000.log");
        let outcome = |op, p: &Path| plan.before(op, &[p]).is_err();
        assert!(!outcome(Op::Fsync, other));
        assert!(!outcome(Op::Write, hit));
        assert!(!outcome(Op::Fsync, hit)); // 1st
        assert!(outcome(Op::Fsync, hit)); // 2nd
        assert!(outcome(Op::Fsync, Path::new("/d/t-0"))); // 3rd: the directory
        assert!(!outcome(Op::Fsync, hit)); // 4th
        assert_eq!((plan.rules()[0].seen(), plan.rules()[0].fired()), (4, 2));
    }

    #[test]
    fn a_hold_ends_on_release_timeout_or_file() {
        let plan = Arc::new(FaultPlan::new(vec![Rule::new(Op::Fsync, Action::Hold)]));
        let p = plan.clone();
        let held = std::thread::spawn(move || p.before(Op::Fsync, &[Path::new("/a")]).is_ok());
        assert!(plan.wait_holding(1, Duration::from_secs(5)));
        assert!(!held.is_finished());
        plan.release_holds();
        assert!(held.join().unwrap());

        let plan = FaultPlan::new(vec![
            Rule::new(Op::Fsync, Action::Hold).hold_for(Duration::from_millis(30))
        ]);
        let started = Instant::now();
        assert!(plan
            .before(Op::Fsync, &[Path::new("/b")])
            .unwrap()
            .is_none());
        assert!(started.elapsed() >= Duration::from_millis(30));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("go");
        let plan = Arc::new(FaultPlan::new(vec![
            Rule::new(Op::Fsync, Action::Hold).release_file(&file)
        ]));
        let p = plan.clone();
        let held = std::thread::spawn(move || p.before(Op::Fsync, &[Path::new("/c")]).is_ok());
        assert!(plan.wait_holding(1, Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!held.is_finished());
        std::fs::write(&file, b"").unwrap();
        assert!(held.join().unwrap());
    }

    #[test]
    fn short_applies_to_writes() {
        let plan = FaultPlan::new(vec![
            Rule::new(Op::Write, Action::Short),
            Rule::new(Op::Rename, Action::Short),
        ]);
        let p = Path::new("/x");
        let short = plan.before(Op::Write, &[p]).unwrap().unwrap();
        assert_eq!(short.raw_os_error(), Some(libc::ENOSPC));
        assert!(plan.before(Op::Rename, &[p]).is_err());
    }
}
