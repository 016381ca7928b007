//! Shared helpers for integration tests and benches.
//!
//! - [`TestBroker`] runs the real `runnel serve` binary as a child process on an ephemeral
//!   loopback port with a temp data dir, and can SIGKILL, SIGTERM and restart it.
//! - [`FaultProxy`] is a frame-aware TCP proxy that sits between a Kafka client and the
//!   broker and throws away Produce responses after the broker has handled the request,
//!   which forces real producer retries of batches the broker already wrote.
//!
//! The broker binary is `RUNNEL_BIN` if set, otherwise `<target>/<profile>/runnel` next to
//! the test executable, built once per test process with `cargo build -p runnel --bin
//! runnel` (a no-op when it is up to date). Set `RUNNEL_KEEP_TEST_DATA=1` to keep the temp
//! dirs (data and broker logs) of every broker; they are always printed on a failure.

pub mod raw;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The line `runnel serve` prints on stdout once it accepts connections.
pub const READY_PREFIX: &str = "runnel listening on ";
/// The line `runnel serve` prints right after the ready line when it serves metrics.
pub const METRICS_PREFIX: &str = "runnel metrics on ";
/// The line `runnel serve` prints after the ready line when it serves AMQP.
pub const AMQP_PREFIX: &str = "runnel amqp on ";
/// Then one line per listener: `runnel listener NAME on ADDR`.
pub const LISTENER_PREFIX: &str = "runnel listener ";

/// How long a start may take before the harness gives up (a debug build replaying a log
/// after a crash is slower than a clean start).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM may take to end the broker.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace root (the root package lives there).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(target dir, profile dir name)` of the running test executable: test binaries live in
/// `<target>/<profile>/deps/`, so this follows `CARGO_TARGET_DIR`, `--release` and
/// `--profile` without having to be told.
fn target_and_profile() -> (PathBuf, String) {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(deps) = exe.parent() {
            if deps.file_name().is_some_and(|n| n == "deps") {
                if let Some(profile_dir) = deps.parent() {
                    if let (Some(target), Some(profile)) =
                        (profile_dir.parent(), profile_dir.file_name())
                    {
                        return (target.to_path_buf(), profile.to_string_lossy().into_owned());
                    }
                }
            }
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    (target, "debug".to_string())
}

/// The `runnel` binary the tests run, built on first use (once per process).
pub fn runnel_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("RUNNEL_BIN") {
            let bin = PathBuf::from(bin);
            assert!(
                bin.is_file(),
                "RUNNEL_BIN={} is not a file",
                bin.display()
            );
            return bin;
        }
        let (target, profile) = target_and_profile();
        let bin = target.join(&profile).join("runnel");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("--manifest-path")
            .arg(workspace_root().join("Cargo.toml"))
            .args(["-p", "runnel", "--bin", "runnel"]);
        // The `debug` directory belongs to the dev and test profiles; any other directory
        // is named after its profile (release, bench → release).
        if profile != "debug" {
            cmd.args(["--profile", &profile]);
        }
        cmd.env("CARGO_TARGET_DIR", &target)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        eprintln!(
            "runnel-suite: making sure the broker is built: {:?} (target {})",
            cmd,
            target.display()
        );
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("could not run cargo to build the broker: {e}"));
        assert!(
            status.success(),
            "`cargo build -p runnel --bin runnel` failed ({status}); set RUNNEL_BIN to use a prebuilt broker"
        );
        assert!(
            bin.is_file(),
            "cargo built the broker but {} does not exist",
            bin.display()
        );
        bin
    })
}

/// How a [`TestBroker`] is started.
#[derive(Clone, Debug, Default)]
pub struct BrokerOptions {
    /// `--advertised-listener HOST:PORT` (e.g. a [`FaultProxy`] in front of the broker).
    pub advertised_listener: Option<String>,
    /// `--num-partitions N` (default partitions of auto-created topics).
    pub num_partitions: Option<u32>,
    /// Contents of a TOML file passed as `--config FILE`.
    pub config_toml: Option<String>,
    /// Further arguments after `serve ...`.
    pub extra_args: Vec<String>,
    /// Extra environment for the broker process.
    pub env: Vec<(String, String)>,
    /// The data directory (e.g. on a small filesystem); a fresh one under the test's
    /// temp dir when `None`. It must exist.
    pub data_dir: Option<PathBuf>,
}

/// The real broker, running as a child process of the test.
pub struct TestBroker {
    child: Option<Child>,
    addr: Option<SocketAddr>,
    opts: BrokerOptions,
    root: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    starts: u32,
    stderr_logs: Vec<PathBuf>,
    /// The broker's stdout lines after the ready line (until read).
    stdout: Mutex<Option<mpsc::Receiver<String>>>,
    /// The stdout lines read so far after the ready line, this start.
    stdout_seen: Mutex<Vec<String>>,
    metrics_addr: Mutex<Option<SocketAddr>>,
}

impl TestBroker {
    /// Start a broker with default options on `127.0.0.1:0` and a fresh data dir.
    pub fn start() -> TestBroker {
        TestBroker::start_with(BrokerOptions::default())
    }

    /// Start a broker with the given options on `127.0.0.1:0` and a fresh data dir.
    pub fn start_with(opts: BrokerOptions) -> TestBroker {
        let root = tempfile::Builder::new()
            .prefix("runnel-test-")
            .tempdir()
            .expect("create temp dir for the broker");
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| root.path().join("data"));
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        let mut broker = TestBroker {
            child: None,
            addr: None,
            opts,
            root: Some(root),
            data_dir,
            starts: 0,
            stderr_logs: Vec::new(),
            stdout: Mutex::new(None),
            stdout_seen: Mutex::new(Vec::new()),
            metrics_addr: Mutex::new(None),
        };
        broker.spawn();
        broker
    }

    fn root(&self) -> &Path {
        self.root.as_ref().expect("temp dir").path()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        self.starts += 1;
        let stderr_path = self
            .root()
            .join(format!("broker-start-{}.stderr.log", self.starts));
        let stderr = File::create(&stderr_path).expect("create broker stderr log");
        self.stderr_logs.push(stderr_path.clone());

        let mut cmd = Command::new(runnel_bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", "127.0.0.1:0"]);
        if let Some(adv) = &self.opts.advertised_listener {
            cmd.args(["--advertised-listener", adv]);
        }
        if let Some(n) = self.opts.num_partitions {
            cmd.args(["--num-partitions", &n.to_string()]);
        }
        // Metrics on a free port, so brokers of parallel tests do not compete for the
        // default one; `extra_args` may override it (a later `--set` wins).
        cmd.args(["--set", "metrics.listener=127.0.0.1:0"]);
        cmd.args(["--set", "eventhubs.amqp.listener=127.0.0.1:0"]);
        cmd.args(["--set", "eventhubs.blob.listener=127.0.0.1:0"]);
        if let Some(toml) = &self.opts.config_toml {
            let path = self.root().join("runnel.toml");
            std::fs::write(&path, toml).expect("write broker config");
            cmd.arg("--config").arg(path);
        }
        cmd.args(&self.opts.extra_args);
        // The broker reads RUNNEL_* variables as settings; the test's own (RUNNEL_BIN,
        // RUNNEL_KEEP_TEST_DATA, ...) are not meant for it.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RUNNEL_") {
                cmd.env_remove(k);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        // Plain text logs in the stderr files.
        cmd.env("NO_COLOR", "1");
        cmd.envs(self.opts.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));

        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", runnel_bin().display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        // Keep draining stdout for the life of the process so the broker never blocks on
        // (or dies of) a full or closed pipe.
        thread::Builder::new()
            .name("runnel-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            })
            .expect("spawn stdout reader");
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        let line = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => break line,
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().unwrap().wait().ok();
                    self.child = None;
                    self.fail(&format!(
                        "broker exited before printing its ready line (status {status:?})"
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                        self.child = None;
                        self.fail(&format!(
                            "broker exited before printing its ready line ({status})"
                        ));
                    }
                    if Instant::now() > deadline {
                        self.kill9();
                        self.fail(&format!(
                            "broker printed no ready line within {START_TIMEOUT:?}"
                        ));
                    }
                }
            }
        };
        let addr = line
            .strip_prefix(READY_PREFIX)
            .and_then(|a| a.trim().parse::<SocketAddr>().ok());
        *self.metrics_addr.lock().unwrap() = None;
        *self.stdout.lock().unwrap() = Some(rx);
        self.stdout_seen.lock().unwrap().clear();
        match addr {
            Some(addr) if addr.port() != 0 => self.addr = Some(addr),
            _ => {
                self.kill9();
                self.fail(&format!(
                    "the first stdout line is not `{READY_PREFIX}127.0.0.1:PORT`: {line:?}"
                ));
            }
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\ncommand: {} serve --data-dir {} --listen 127.0.0.1:0 {:?}\n{}",
            runnel_bin().display(),
            self.data_dir.display(),
            self.opts,
            self.diagnostics()
        );
    }

    /// `host:port` the broker listens on, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr().to_string()
    }

    /// The socket address the broker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("broker is not running")
    }

    /// Where the running broker serves `GET /metrics` (from the `runnel metrics on ADDR`
    /// line it prints after the ready line); `None` if it printed none within 10 s
    /// (metrics disabled).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let mut cached = self.metrics_addr.lock().unwrap();
        if cached.is_none() {
            *cached = self
                .stdout_line(METRICS_PREFIX)
                .and_then(|a| a.trim().parse().ok());
        }
        *cached
    }

    /// Where the running broker serves the Event Hubs AMQP endpoint (from its `runnel
    /// amqp on ADDR` line).
    pub fn amqp_addr(&self) -> SocketAddr {
        self.stdout_line(AMQP_PREFIX)
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| self.fail("the broker printed no `runnel amqp on ADDR` line"))
    }

    /// The address of the listener named `name` (from its `runnel listener NAME on
    /// ADDR` line), for a broker started with several `listeners`.
    pub fn listener_addr(&self, name: &str) -> SocketAddr {
        let prefix = format!("{LISTENER_PREFIX}{name} on ");
        self.stdout_line(&prefix)
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| self.fail(&format!("the broker printed no `{prefix}ADDR` line")))
    }

    /// The rest of the first stdout line after the ready line that starts with
    /// `prefix`, waiting up to 10 s for it.
    fn stdout_line(&self, prefix: &str) -> Option<String> {
        let mut seen = self.stdout_seen.lock().unwrap();
        if let Some(line) = seen.iter().find(|l| l.starts_with(prefix)) {
            return Some(line[prefix.len()..].to_string());
        }
        let stdout = self.stdout.lock().unwrap();
        let rx = stdout.as_ref()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = rx.recv_timeout(left) else {
                break;
            };
            let found = line.strip_prefix(prefix).map(str::to_string);
            seen.push(line);
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// The broker's data directory (kept across restarts).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id of the running broker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    /// True while the broker process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Everything the broker wrote to stderr, over all its starts.
    pub fn stderr_log(&self) -> String {
        let mut out = String::new();
        for (i, path) in self.stderr_logs.iter().enumerate() {
            out.push_str(&format!(
                "----- start {} ({}) -----\n",
                i + 1,
                path.display()
            ));
            out.push_str(&String::from_utf8_lossy(
                &std::fs::read(path).unwrap_or_default(),
            ));
        }
        out
    }

    /// The last lines of the broker's stderr, and where the full logs and data are.
    pub fn diagnostics(&self) -> String {
        let log = self.stderr_log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        format!(
            "broker temp dir: {} (set RUNNEL_KEEP_TEST_DATA=1 to keep it)\n\
             last lines of the broker's stderr:\n{tail}",
            self.root().display()
        )
    }

    /// SIGKILL the broker and reap it: a crash, with no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.addr = None;
    }

    /// SIGTERM the broker and wait for it to exit (a clean shutdown). Panics if it does
    /// not exit within 30 s (it is then killed).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("broker is not running");
        self.addr = None;
        // SAFETY: plain kill(2) on our own child's pid, which we have not reaped yet.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM): {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for broker") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.fail(&format!(
                    "broker did not exit within {STOP_TIMEOUT:?} of SIGTERM"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Replace the extra environment for the next start (e.g. drop a crash trigger).
    pub fn set_env(&mut self, env: Vec<(String, String)>) {
        self.opts.env = env;
    }

    /// Start the broker again on the same data dir (after [`kill9`](Self::kill9) or
    /// [`stop`](Self::stop)); it gets a new ephemeral port, so call
    /// [`bootstrap`](Self::bootstrap) again.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let was_running = self.is_running();
        self.kill9();
        if thread::panicking() {
            eprintln!(
                "runnel-suite: broker (running at failure: {was_running})\n{}",
                self.diagnostics()
            );
        }
        if std::env::var_os("RUNNEL_KEEP_TEST_DATA").is_some_and(|v| !v.is_empty())
            || thread::panicking()
        {
            if let Some(root) = self.root.take() {
                let path = root.keep();
                eprintln!("runnel-suite: kept broker dir {}", path.display());
            }
        }
    }
}

/// Poll `f` until it returns `Some`, or panic after `timeout` naming `what`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Kafka's Produce API key.
const PRODUCE: i16 = 0;
/// The proxy's own limit on a frame, so a bad peer cannot make it allocate much.
const PROXY_MAX_FRAME: usize = 256 << 20;

#[derive(Default)]
struct ProxyShared {
    upstream: Mutex<Option<SocketAddr>>,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
    /// Drop every Nth Produce response (0 = forward everything).
    drop_every_nth_produce_response: AtomicU64,
    produce_responses: AtomicU64,
    produce_responses_dropped: AtomicU64,
    connections: AtomicU64,
}

/// A TCP proxy for Kafka connections that can lose Produce responses.
///
/// Start the broker with `--advertised-listener` set to the proxy's address so that the
/// client's every connection goes through it. When a Produce response is dropped the
/// proxy closes both sides of that connection: the broker has already handled (and, for
/// acks=all, fsynced) the batch, the client sees a broken connection with the request in
/// flight and must send it again.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listen on an ephemeral loopback port. Set the upstream before clients connect.
    pub fn start() -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(ProxyShared::default());
        let s = shared.clone();
        let accept = thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = conn else { continue };
                    s.connections.fetch_add(1, Ordering::SeqCst);
                    let s = s.clone();
                    let _ = thread::Builder::new()
                        .name("fault-proxy-conn".into())
                        .spawn(move || proxy_connection(s, client));
                }
            })
            .expect("spawn proxy accept thread");
        FaultProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// The proxy's address, to advertise and to bootstrap from.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where new connections go (e.g. the broker's new port after a restart).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().unwrap() = Some(upstream);
    }

    /// Drop every `n`th Produce response from now on (0 turns it off).
    pub fn drop_every_nth_produce_response(&self, n: u64) {
        self.shared
            .drop_every_nth_produce_response
            .store(n, Ordering::SeqCst);
    }

    /// Produce responses that went through the proxy (forwarded or dropped).
    pub fn produce_responses(&self) -> u64 {
        self.shared.produce_responses.load(Ordering::SeqCst)
    }

    /// Produce responses the proxy threw away (each one forces a retry).
    pub fn produce_responses_dropped(&self) -> u64 {
        self.shared.produce_responses_dropped.load(Ordering::SeqCst)
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Cut every open connection.
    pub fn sever_all(&self) {
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        self.sever_all();
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn read_frame(r: &mut impl Read) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).ok()?;
    let n = i32::from_be_bytes(len);
    if n < 0 || n as usize > PROXY_MAX_FRAME {
        return None;
    }
    let mut frame = vec![0u8; 4 + n as usize];
    frame[..4].copy_from_slice(&len);
    r.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}

fn proxy_connection(s: Arc<ProxyShared>, client: TcpStream) {
    let upstream = *s.upstream.lock().unwrap();
    let Some(upstream) = upstream else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
        // The broker is down (e.g. between a kill -9 and its restart): the client sees a
        // closed connection and tries again.
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    s.conns.lock().unwrap().extend([c3, s3]);
    // correlation id → api key of the requests in flight on this connection.
    let inflight: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();

    let inflight_req = inflight.clone();
    let requests = thread::spawn(move || {
        let (mut client, mut server) = (client, server);
        while let Some(frame) = read_frame(&mut client) {
            if frame.len() >= 12 {
                let api_key = i16::from_be_bytes([frame[4], frame[5]]);
                let correlation = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
                inflight_req.lock().unwrap().insert(correlation, api_key);
            }
            if server.write_all(&frame).is_err() {
                break;
            }
        }
        let _ = server.shutdown(Shutdown::Write);
    });

    let (mut server, mut client) = (s2, c2);
    while let Some(frame) = read_frame(&mut server) {
        let api_key = if frame.len() >= 8 {
            let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            inflight.lock().unwrap().remove(&correlation)
        } else {
            None
        };
        if api_key == Some(PRODUCE) {
            let n = s.produce_responses.fetch_add(1, Ordering::SeqCst) + 1;
            let every = s.drop_every_nth_produce_response.load(Ordering::SeqCst);
            if every > 0 && n.is_multiple_of(every) {
                s.produce_responses_dropped.fetch_add(1, Ordering::SeqCst);
                break;
            }
        }
        if client.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = requests.join();
}
