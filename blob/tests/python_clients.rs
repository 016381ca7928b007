//! The real Python clients (azure-eventhub-checkpointstoreblob and azure-storage-blob,
//! pinned in tests/compat/requirements.txt) against the blob store.

mod support;

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
