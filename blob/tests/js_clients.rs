//! The real JavaScript clients (@azure/eventhubs-checkpointstore-blob over
//! @azure/storage-blob, pinned in tests/compat/js-blob/package-lock.json) against the
//! blob store. Needs `npm ci` in tests/compat/js-blob, so it is ignored in a plain
//! `cargo test`; tests/compat/js-blob/run.sh installs the packages and runs it (the
//! compat suite's `js-blob` group).

mod support;

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs npm ci in tests/compat/js-blob: run tests/compat/js-blob/run.sh"]
async fn the_js_checkpoint_store_claims_lists_and_checkpoints() {
    let here = support::workspace_root().join("tests/compat/js-blob");
    assert!(
        here.join("node_modules/@azure/eventhubs-checkpointstore-blob")
            .is_dir(),
        "no node_modules in {}: run tests/compat/js-blob/run.sh (npm ci)",
        here.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(dir.path()).await;
    let mut cmd = Command::new(std::env::var_os("NODE").unwrap_or_else(|| "node".into()));
    cmd.current_dir(&here)
        .arg("blob_checkpoint_store_check.js")
        .arg(server.endpoint())
        .arg("jscheckpoints");
    let out = support::run(cmd).await;
    assert!(out.status.success(), "the JS checkpoint store check failed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("checkpoint store: passed"));
    server.stop().await;
}
