//! The real Java client (azure-messaging-eventhubs-checkpointstore-blob 1.21.5 from Maven
//! Central, tests/compat/java-blob/pom.xml) against the blob store. It needs the Maven
//! build, so it is ignored in a plain `cargo test`: tests/compat/java-blob/run.sh builds
//! the check and runs this with JAVA_BLOB_CLASSPATH set (the compat suite's `java-blob`
//! group).

mod support;

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Maven build: run tests/compat/java-blob/run.sh"]
async fn the_java_checkpoint_store_claims_lists_and_checkpoints() {
    let classpath = std::env::var("JAVA_BLOB_CLASSPATH")
        .expect("JAVA_BLOB_CLASSPATH is not set: run tests/compat/java-blob/run.sh");
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(dir.path()).await;
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(classpath)
        .arg("runnel.compat.BlobCheckpointStoreCheck")
        .arg(server.endpoint())
        .arg("javacheckpoints");
    let out = support::run(cmd).await;
    assert!(
        out.status.success(),
        "the Java checkpoint store check failed"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("checkpoint store: passed"));
    server.stop().await;
}
