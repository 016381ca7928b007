//! Small durable files holding one offset, written write-temp, fsync, rename, fsync-dir
//! so that a crash leaves either the old value or the new one.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::{fault, layout};

pub fn write_u64(dir: &Path, name: &str, value: u64) -> io::Result<()> {
    write(dir, name, format!("{value}\n").as_bytes())
}

/// Replace `dir/name` with `bytes`, durably.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let path = dir.join(name);
    let tmp = layout::tmp_file(&path);
    {
        let f = File::create(&tmp)?;
        fault::write_all(&f, bytes, &tmp)?;
        fault::sync_all(&f, || &tmp)?;
    }
    fault::rename(&tmp, &path)?;
    fault::sync_dir(dir)
}

/// The stored value, or `None` if the file is missing or unreadable (callers then fall
/// back to the safe choice: scan everything).
pub fn read_u64(dir: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    match text.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::warn!(file = %dir.join(name).display(), "ignoring an unreadable checkpoint");
            None
        }
    }
}
