//! The real Python clients (azure-eventhub-checkpointstoreblob and azure-storage-blob,
//! pinned in tests/compat/requirements.txt) against the blob store.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_checkpoint_store_claims_lists_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(dir.path()).await;
    let out = support::python_check(&server, "checkpoints", "full").await;
    assert!(
        out.status.success(),
        "the Python checkpoint store check failed"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(full): passed"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_aio_checkpoint_store_claims_lists_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(dir.path()).await;
    let out = support::python_check(&server, "aiocheckpoints", "aio").await;
    assert!(
        out.status.success(),
        "the Python aio checkpoint store check failed"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(dir.path()).await;
    let out = support::python_check(&server, "race", "race").await;
    assert!(out.status.success(), "the race check failed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_account_key_gets_403_from_azure_storage_blob() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(dir.path()).await;
    let out = support::python_check(&server, "wrongkey", "wrong-key").await;
    assert!(out.status.success(), "the wrong-key check failed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_survives_a_server_stop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(dir.path()).await;
    let out = support::python_check(&server, "durable", "write").await;
    assert!(out.status.success(), "writing the checkpoint failed");
    // Aborted, not shut down: whatever was acknowledged must already be on disk.
    server.stop().await;
    let server = support::start(dir.path()).await;
    let out = support::python_check(&server, "durable", "read").await;
    assert!(
        out.status.success(),
        "the checkpoint did not survive the restart"
    );
    server.stop().await;
}

/// Run by the next test in a child process (this test binary again): serves the store
/// in `RUNNEL_BLOB_CHILD_DIR` and prints its port, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of a_checkpoint_survives_kill_9"]
async fn kill_9_child_server() {
    let dir = std::env::var_os("RUNNEL_BLOB_CHILD_DIR").expect("RUNNEL_BLOB_CHILD_DIR");
    let server = support::start(std::path::Path::new(&dir)).await;
    println!("BLOB_PORT={}", server.port);
    tokio::time::sleep(std::time::Duration::from_secs(300)).await;
    panic!("the parent test did not kill this server within 300 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "kill_9_child_server", "--nocapture"])
        .env("RUNNEL_BLOB_CHILD_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child server");
    let stdout = child.stdout.take().unwrap();
    let port = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("BLOB_PORT=").map(str::to_string))
    })
    .await
    .unwrap()
    .expect("the child server printed no port");
    let endpoint = format!("http://127.0.0.1:{port}/devstoreaccount1");
    let out = support::python_check_at(&endpoint, "killed", "write").await;
    let written = out.status.success();
    // SIGKILL: no destructor, no flush; only what was on disk at the acknowledgement.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(written, "writing the checkpoint failed");
    let server = support::start(dir.path()).await;
    let out = support::python_check(&server, "killed", "read").await;
    assert!(
        out.status.success(),
        "the checkpoint did not survive kill -9"
    );
    server.stop().await;
}
