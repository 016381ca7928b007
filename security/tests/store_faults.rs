//! A change the disk refused is not seen. Its own test binary: the fault plan is
//! process-wide.

use runnel_security::sasl::{ScramCredential, ScramMechanism};
use runnel_security::SecurityStore;
use runnel_storage::fault::{self, Action, FaultPlan, Op, Rule};

#[test]
fn a_change_that_fails_to_persist_is_not_visible() {
    let dir = tempfile::tempdir().unwrap();
    // Rules match a path component: the temporary directory's name is unique.
    let dir_name = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let m = ScramMechanism::Sha256;
    let store = SecurityStore::open(dir.path()).unwrap();
    let first = ScramCredential::generate(m, "one", 4096).unwrap();
    store.upsert_scram("alice", m, first.clone()).unwrap();

    // The temporary file's write, its fsync, the rename, the directory's fsync.
    for op in [Op::Write, Op::Fsync, Op::Rename, Op::DirSync] {
        let plan = fault::install(FaultPlan::new(vec![
            Rule::new(op, Action::Fail).path(dir_name.clone())
        ]));
        let second = ScramCredential::generate(m, "two", 4096).unwrap();
        let upserted = store.upsert_scram("alice", m, second);
        let added = store.upsert_scram("bob", m, first.clone());
        fault::uninstall();
        assert_eq!(plan.rules()[0].fired(), 1, "{op:?}: the fault fired");
        assert!(upserted.is_err(), "{op:?}: the failure is reported");
        assert_eq!(
            store.scram_credential("alice", m),
            Some(first.clone()),
            "{op:?}: the failed change is not visible"
        );
        // The next change, which the fault no longer hits, goes through.
        added.unwrap();
        assert!(store.scram_credential("bob", m).is_some());
        if op != Op::DirSync {
            // Before the rename, the file still holds the old state.
            let on_disk = SecurityStore::open(dir.path()).unwrap();
            assert_eq!(on_disk.scram_credential("alice", m), Some(first.clone()));
        }
        assert!(store.delete_scram("bob", m).unwrap());
    }

    let failed_delete = {
        let _plan = fault::install(FaultPlan::new(vec![
            Rule::new(Op::Rename, Action::Fail).path(dir_name.clone())
        ]));
        let r = store.delete_scram("alice", m);
        fault::uninstall();
        r
    };
    assert!(failed_delete.is_err());
    assert_eq!(store.scram_credential("alice", m), Some(first.clone()));
    let reopened = SecurityStore::open(dir.path()).unwrap();
    assert_eq!(reopened.scram_credential("alice", m), Some(first));
    assert_eq!(reopened.scram_credential("bob", m), None);
}
