//! The broker under test: the real `runnel serve` as a child process, on one fixed port
//! across restarts so the clients' bootstrap stays valid, with its data directory kept
//! from start to start.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// What `runnel serve` prints once it accepts connections.
const READY_PREFIX: &str = "runnel listening on ";
/// A debug build replaying a long log after a crash is slow to start.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// What a simulated power loss took away.
#[derive(Debug, Default)]
pub struct PowerCut {
    /// Segment files (`.log`) cut, and their bytes.
    pub segments: u64,
    pub segment_bytes: u64,
    /// Other files cut (mostly indexes, which recovery rebuilds).
    pub other_files: u64,
}

pub struct Broker {
    bin: PathBuf,
    data_dir: PathBuf,
    log_dir: PathBuf,
    port: u16,
    settings: Vec<String>,
    /// `RUNNEL_SYNC_JOURNAL`, for the power-loss fault.
    sync_journal: Option<PathBuf>,
    /// `RUNNEL_CLOCK_OFFSET_FILE`, for the clock-jump fault.
    clock_file: Option<PathBuf>,
    child: Option<Child>,
    starts: u32,
}

impl Broker {
    /// A broker that will listen on a free loopback port. Nothing runs until
    /// [`start`](Self::start).
    pub fn new(bin: &Path, dir: &Path, settings: Vec<String>) -> Result<Broker, String> {
        let data_dir = dir.join("data");
        let log_dir = dir.join("logs");
        for d in [&data_dir, &log_dir] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("pick a port: {e}"))?
            .port();
        Ok(Broker {
            bin: bin.to_path_buf(),
            data_dir,
            log_dir,
            port,
            settings,
            sync_journal: None,
            clock_file: None,
            child: None,
            starts: 0,
        })
    }

    /// Have every start read its wall clock's offset from `path` (see
    /// [`jump_clock`](Self::jump_clock)).
    pub fn inject_clock(&mut self, path: PathBuf) {
        self.clock_file = Some(path);
    }

    /// Set the broker's wall clock `offset_ms` from the system's (0: the system's time).
    /// The broker reads it within 100 ms.
    pub fn jump_clock(&self, offset_ms: i64) -> Result<(), String> {
        let Some(path) = &self.clock_file else {
            return Err("a clock jump needs the injected clock".into());
        };
        // Written whole and renamed, so the broker never reads half a number.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{offset_ms}\n"))
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Have every start append its fsyncs and renames to `path` (see
    /// [`power_loss`](Self::power_loss)).
    pub fn journal_syncs(&mut self, path: PathBuf) {
        self.sync_journal = Some(path);
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Start it and wait for its ready line. `faults` is a `RUNNEL_FAULTS` plan.
    pub fn start(&mut self, faults: Option<&str>) -> Result<(), String> {
        if self.child.is_some() {
            return Err("the broker is already running".into());
        }
        self.starts += 1;
        let log_path = self.log_dir.join(format!("broker-{:03}.log", self.starts));
        let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", &self.bootstrap()])
            .args(["--set", "metrics.listener=127.0.0.1:0"])
            .args(["--set", "eventhubs.amqp.listener=127.0.0.1:0"])
            .args(["--set", "eventhubs.blob.listener=127.0.0.1:0"]);
        for s in &self.settings {
            cmd.args(["--set", s]);
        }
        // The broker reads RUNNEL_* variables as settings: only the fault plan goes in.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RUNNEL_") {
                cmd.env_remove(k);
            }
        }
        if let Some(plan) = faults {
            cmd.env("RUNNEL_FAULTS", plan);
        }
        if let Some(journal) = &self.sync_journal {
            cmd.env("RUNNEL_SYNC_JOURNAL", journal);
        }
        if let Some(clock) = &self.clock_file {
            cmd.env("RUNNEL_CLOCK_OFFSET_FILE", clock);
        }
        cmd.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        let Some(stdout) = child.stdout.take() else {
            return Err("no stdout pipe".into());
        };
        let (tx, rx) = mpsc::channel();
        // Drain stdout for the life of the process, so the broker never blocks on it.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.starts_with(READY_PREFIX) => return Ok(()),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.reap();
                    return Err(format!(
                        "the broker exited before it was ready; see {}",
                        log_path.display()
                    ));
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => {
                    self.kill9();
                    return Err(format!(
                        "the broker was not ready within {START_TIMEOUT:?}; see {}",
                        log_path.display()
                    ));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Start, retrying while the port is still held by the previous process's sockets.
    pub fn start_retrying(&mut self, faults: Option<&str>) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..10 {
            match self.start(faults) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            thread::sleep(Duration::from_millis(500));
        }
        Err(last)
    }

    /// SIGKILL: a crash, with no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait up to 30 s, then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(child) = self.child.as_mut() {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return;
            }
            if Instant::now() > deadline {
                self.kill9();
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then cut every file of the data directory back to what its last fsync
    /// covered, as a power loss would leave it (a crash alone keeps the page cache). The
    /// broker's sync journal says what was durable; a file it never synced is emptied.
    pub fn power_loss(&mut self) -> Result<PowerCut, String> {
        self.kill9();
        let Some(journal) = &self.sync_journal else {
            return Err("power loss needs the sync journal".into());
        };
        let text =
            std::fs::read_to_string(journal).map_err(|e| format!("{}: {e}", journal.display()))?;
        let mut durable: std::collections::HashMap<PathBuf, u64> = std::collections::HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("sync ") {
                let Some((len, path)) = rest.split_once(' ') else {
                    continue;
                };
                if let Ok(len) = len.parse::<u64>() {
                    let e = durable.entry(PathBuf::from(path)).or_insert(0);
                    *e = (*e).max(len);
                }
            } else if let Some(rest) = line.strip_prefix("rename ") {
                let Some((from, to)) = rest.split_once('\t') else {
                    continue;
                };
                if let Some(len) = durable.remove(Path::new(from)) {
                    durable.insert(PathBuf::from(to), len);
                }
            }
        }
        let mut cut = PowerCut::default();
        let mut stack = vec![self.data_dir.clone()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                let keep = durable.get(&path).copied().unwrap_or(0);
                if meta.len() > keep {
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    f.set_len(keep)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    if path.extension().is_some_and(|e| e == "log") {
                        cut.segments += 1;
                        cut.segment_bytes += meta.len() - keep;
                    } else {
                        cut.other_files += 1;
                    }
                }
            }
        }
        Ok(cut)
    }

    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGSTOP);
        }
    }

    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGCONT);
        }
    }

    /// Whether it is still running (a storage fault may make it stop on its own).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// The log of the current (or last) start.
    pub fn current_log(&self) -> String {
        let path = self.log_dir.join(format!("broker-{:03}.log", self.starts));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Lines of every start's log that mention a panic.
    pub fn panics(&self) -> Vec<String> {
        let mut found = Vec::new();
        for n in 1..=self.starts {
            let path = self.log_dir.join(format!("broker-{n:03}.log"));
            if let Ok(text) = std::fs::read_to_string(&path) {
                for line in text.lines().filter(|l| l.contains("panicked")) {
                    found.push(format!("{}: {line}", path.display()));
                }
            }
        }
        found
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.resume();
        self.kill9();
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child, which has not been reaped (we hold its Child).
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}
