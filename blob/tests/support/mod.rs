//! Shared by the blob integration tests: the service in-process on a free loopback port,
//! and the real clients as subprocesses.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use runnel_blob::{Accounts, BlobService};
use tokio::task::JoinHandle;

pub struct Server {
    pub port: u16,
    task: JoinHandle<()>,
}

impl Server {
    /// `http://127.0.0.1:<port>/devstoreaccount1`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/devstoreaccount1", self.port)
    }

    /// Stops serving (as a crash would: nothing is flushed at stop) and waits for it.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

pub async fn start(dir: &Path) -> Server {
    let service = BlobService::open(dir, Accounts::default()).expect("open the blob store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let port = listener.local_addr().expect("local addr").port();
    let task = tokio::spawn(service.serve(listener));
    Server { port, task }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("blob/ is in the workspace")
        .to_path_buf()
}

/// The interpreter with the checkpoint-store packages: $PYTHON, else the venv CI
/// makes ($CARGO_TARGET_DIR or target/, compat-venv), else python3. Panics, naming what
/// it tried, if none can import them: these tests never pass without the real clients.
pub fn python() -> PathBuf {
    static FOUND: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FOUND.get_or_init(find_python).clone()
}

fn find_python() -> PathBuf {
    let root = workspace_root();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("PYTHON") {
        candidates.push(p.into());
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        let t = if t.is_absolute() { t } else { root.join(t) };
        candidates.push(t.join("compat-venv/bin/python"));
    }
    candidates.push(root.join("target/compat-venv/bin/python"));
    candidates.push("python3".into());
    let mut tried = Vec::new();
    for c in candidates {
        let ok = Command::new(&c)
            .args([
                "-c",
                "import azure.eventhub.extensions.checkpointstoreblob, azure.storage.blob",
            ])
            .output()
            .map(|o| o.status.success());
        match ok {
            Ok(true) => return c,
            Ok(false) => tried.push(format!("{} (no azure packages)", c.display())),
            Err(e) => tried.push(format!("{} ({e})", c.display())),
        }
    }
    panic!(
        "no Python with azure-eventhub-checkpointstoreblob and azure-storage-blob: tried {}. \
         Install them with `python3 -m venv target/compat-venv && target/compat-venv/bin/pip install -r tests/compat/requirements.txt` \
         or set PYTHON.",
        tried.join(", ")
    );
}

/// Runs a command off the async threads (the server answers it meanwhile) and returns
/// its output, printing it so a failure shows what the client said.
pub async fn run(mut cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    println!("$ {shown}\n{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

pub async fn python_check(server: &Server, container: &str, mode: &str) -> Output {
    python_check_at(&server.endpoint(), container, mode).await
}

pub async fn python_check_at(endpoint: &str, container: &str, mode: &str) -> Output {
    let script = workspace_root().join("tests/compat/blob_checkpoint_store_check.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).arg(endpoint).arg(container).arg(mode);
    run(cmd).await
}
