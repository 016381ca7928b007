//! What a partition reads back from its own files at startup, which a torn write, a bad
//! disk or a hand-edited data directory can leave in any state: the producer state
//! snapshot (`<offset>.snapshot`) and the transaction index (`<base>.txnindex`). The
//! first byte picks the file (even: snapshot, odd: transaction index).
//!
//! Must never panic; a snapshot that decodes must encode to bytes that decode to the
//! same state; a scan of the transaction index reads a prefix of valid entries and says
//! where it stopped.
#![no_main]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use runnel_storage::producer_state::ProducerStateManager;
use runnel_storage::txn_index::{self, AbortedTxn, ENTRY_SIZE};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, b)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        snapshot(b);
    } else {
        txnindex(b);
    }
});

/// Byte offsets in a snapshot: version i16, CRC-32C u32 of what follows, offset u64.
const CRC_AT: usize = 2;
const BODY_AT: usize = 6;

fn snapshot(b: &[u8]) {
    // The offset the file's name gives: the one inside, so that the fuzzer reaches the
    // producers (and a different one now and then).
    let offset = b
        .get(BODY_AT..BODY_AT + 8)
        .map_or(0, |o| u64::from_be_bytes(o.try_into().unwrap()));
    check_snapshot(b, offset);
    // Random bytes almost never carry the right CRC: fix it up, as record_batch does.
    if b.len() >= BODY_AT {
        let mut fixed = b.to_vec();
        let crc = crc32c::crc32c(&fixed[BODY_AT..]);
        fixed[CRC_AT..BODY_AT].copy_from_slice(&crc.to_be_bytes());
        check_snapshot(&fixed, offset);
        check_snapshot(&fixed, offset.wrapping_add(1));
    }
}

fn check_snapshot(b: &[u8], offset: u64) {
    let Ok(state) = ProducerStateManager::decode_snapshot(b, offset) else {
        return;
    };
    let again = state.encode_snapshot(offset);
    let back = ProducerStateManager::decode_snapshot(&again, offset)
        .expect("a re-encoded snapshot decodes");
    // Not byte for byte: producers may be in any order in a file, we write them sorted.
    assert_eq!(back, state);
}

fn txnindex(b: &[u8]) {
    // Each whole entry on its own.
    for chunk in b.chunks_exact(ENTRY_SIZE) {
        if let Ok(txn) = AbortedTxn::decode(chunk.try_into().unwrap()) {
            assert!(txn.is_encodable());
            assert_eq!(txn.encode(), chunk);
        }
    }
    // The whole file as a segment's index, through the real file read. One scratch file
    // for the process, rewritten for each input (creating one each time is slow).
    let Some(file) = scratch() else {
        return;
    };
    let file = file.lock().unwrap();
    if file.set_len(0).is_err() || file.write_all_at(b, 0).is_err() {
        return;
    }
    let file = &*file;
    let len = b.len() as u64;
    let max_entries = txn_index::max_entries_for(len.saturating_mul(8));
    let mut seen = 0u64;
    let result = txn_index::scan(file, len, 0, u64::MAX / 2, max_entries, |_| {
        seen += 1;
        true
    });
    assert_eq!(result.valid_len, seen * ENTRY_SIZE as u64);
    assert!(result.valid_len <= len);
    if result.valid_len < len {
        let stopped = result.stopped.expect("a short scan says why");
        assert_eq!(stopped.position, result.valid_len);
    } else {
        assert!(result.stopped.is_none());
    }
}

/// An unnamed file in the temp directory (run.sh points TMPDIR at its own), opened once.
fn scratch() -> Option<&'static Mutex<File>> {
    static FILE: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    FILE.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("runnel-fuzz-txnindex-{}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .ok()?;
        std::fs::remove_file(&path).ok()?;
        Some(Mutex::new(file))
    })
    .as_ref()
}
