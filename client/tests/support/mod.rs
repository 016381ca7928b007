//! Starts the real `runnel serve` binary on an ephemeral port in a temp dir and kills
//! it on drop. The binary is `RUNNEL_BIN` if set, else `<target>/debug/runnel`, built
//! once per test process with `cargo build -p runnel --bin runnel`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

const READY_PREFIX: &str = "runnel listening on ";

fn runnel_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("RUNNEL_BIN") {
            return PathBuf::from(bin);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        // Test executables live in <target>/debug/deps.
        let target = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
            .unwrap_or_else(|| root.join("target"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .arg("build")
            .arg("--manifest-path")
            .arg(root.join("Cargo.toml"))
            .args(["-p", "runnel", "--bin", "runnel"])
            .env("CARGO_TARGET_DIR", &target)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("run cargo build -p runnel");
        assert!(status.success(), "cargo build -p runnel failed");
        target.join("debug").join("runnel")
    })
}

/// A running broker.
pub struct Broker {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Broker {
    #[allow(dead_code)] // not every test file uses it
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Start with extra `runnel serve` arguments.
    pub fn start_with(extra: &[&str]) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(runnel_bin());
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RUNNEL_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().expect("spawn runnel");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix(READY_PREFIX) {
                        break addr.trim().to_string();
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!("broker did not print its ready line: {e}");
                }
            }
        };
        Broker {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
