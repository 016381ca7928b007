//! Small durable files holding one offset, written write-temp, fsync, rename, fsync-dir
//! so that a crash leaves either the old value or the new one.

use std::io;
use std::path::Path;

use crate::{fault, layout};

pub fn write_u64(dir: &Path, name: &str, value: u64) -> io::Result<()> {
    write(dir, name, format!("{value}\n").as_bytes())
}

/// Replace `dir/name` with `bytes`, durably.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    write_with_mode(dir, name, bytes, 0o644)
}

/// [`write`] for a file holding secrets: readable by its owner only (mode 0600 on Unix),
/// from the moment it is created.
pub fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    write_with_mode(dir, name, bytes, 0o600)
}

fn write_with_mode(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    let path = dir.join(name);
    let tmp = layout::tmp_file(&path);
    let r = write_tmp_and_rename(dir, &path, &tmp, bytes, mode);
    if r.is_err() {
        // A full disk leaves no half-written temp file holding space.
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

fn write_tmp_and_rename(
    dir: &Path,
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
    mode: u32,
) -> io::Result<()> {
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let f = options.open(tmp)?;
        #[cfg(unix)]
        {
            // An existing temp file keeps its mode through open: set it.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        fault::write_all(&f, bytes, tmp)?;
        fault::sync_all(&f, || tmp)?;
    }
    fault::rename(tmp, path)?;
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
