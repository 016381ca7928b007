//! The blobs on disk. Layout under the store's directory:
//!
//! ```text
//! <dir>/<account>/<container>/container.json     the container's properties
//! <dir>/<account>/<container>/<sha256(name)>.blob one JSON line of properties and
//!                                                 metadata, then the content
//! ```
//!
//! Every write goes to a `.tmp` file that is fsynced, renamed over the old one and then
//! the directory fsynced, so an acknowledged write survives a crash and a torn one is
//! never seen. All blob properties live in memory too; contents are read from disk.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const CONTAINER_FILE: &str = "container.json";
const BLOB_SUFFIX: &str = ".blob";
const TMP_SUFFIX: &str = ".tmp";
/// A properties line longer than this is not one this store wrote.
const MAX_META_LINE: u64 = 1 << 20;

/// A blob's or container's properties, as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Props {
    /// Quoted, as in the ETag header: `"0x..."`.
    pub etag: String,
    pub created_ms: u64,
    pub modified_ms: u64,
    /// Lowercase names (metadata names are case-insensitive).
    pub metadata: BTreeMap<String, String>,
}

/// A blob's properties, as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobMeta {
    pub name: String,
    #[serde(flatten)]
    pub props: Props,
    pub content_length: u64,
    pub content_type: String,
    #[serde(default)]
    pub content_encoding: Option<String>,
    #[serde(default)]
    pub content_language: Option<String>,
    #[serde(default)]
    pub content_md5: Option<String>,
    #[serde(default)]
    pub cache_control: Option<String>,
    #[serde(default)]
    pub content_disposition: Option<String>,
}

struct Container {
    dir: PathBuf,
    props: Props,
    blobs: BTreeMap<String, BlobMeta>,
}

/// What Put Blob sets besides the content.
#[derive(Clone, Debug, Default)]
pub struct NewBlob {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_md5: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

pub struct Store {
    root: PathBuf,
    containers: HashMap<(String, String), Container>,
    /// The last ETag value handed out; ETags only grow.
    last_etag: u64,
}

impl Store {
    /// Loads every container and blob's properties under `root` (created if missing).
    /// Leftover `.tmp` files from an interrupted write are removed.
    pub fn open(root: &Path) -> io::Result<Store> {
        if !root.is_dir() {
            fs::create_dir_all(root)?;
            // So the new directory itself survives a crash.
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let mut store = Store {
            root: root.to_path_buf(),
            containers: HashMap::new(),
            last_etag: 0,
        };
        for account in fs::read_dir(root)? {
            let account = account?;
            if !account.file_type()?.is_dir() {
                continue;
            }
            let account_name = account.file_name().to_string_lossy().into_owned();
            for container in fs::read_dir(account.path())? {
                let container = container?;
                if !container.file_type()?.is_dir() {
                    continue;
                }
                let name = container.file_name().to_string_lossy().into_owned();
                if let Some(c) = store.load_container(&container.path())? {
                    store.containers.insert((account_name.clone(), name), c);
                }
            }
        }
        Ok(store)
    }

    fn load_container(&mut self, dir: &Path) -> io::Result<Option<Container>> {
        let props_path = dir.join(CONTAINER_FILE);
        // A directory without its properties file is a Create Container that crashed
        // before it was acknowledged.
        let props: Props = match fs::read(&props_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(&props_path, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        self.seen_etag(&props.etag);
        let mut blobs = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.ends_with(TMP_SUFFIX) {
                fs::remove_file(&path)?;
            } else if file_name.ends_with(BLOB_SUFFIX) {
                let mut reader = BufReader::new(File::open(&path)?);
                let meta = read_meta(&mut reader).map_err(|e| corrupt(&path, e))?;
                self.seen_etag(&meta.props.etag);
                blobs.insert(meta.name.clone(), meta);
            }
        }
        Ok(Some(Container {
            dir: dir.to_path_buf(),
            props,
            blobs,
        }))
    }

    fn seen_etag(&mut self, etag: &str) {
        let hex = etag.trim_matches('"').trim_start_matches("0x");
        if let Ok(v) = u64::from_str_radix(hex, 16) {
            self.last_etag = self.last_etag.max(v);
        }
    }

    /// A fresh ETag: 100 ns ticks of the clock, bumped so it never repeats.
    fn next_etag(&mut self, now: SystemTime) -> String {
        let ticks = now
            .duration_since(UNIX_EPOCH)
            .map(|d| (d.as_nanos() / 100) as u64)
            .unwrap_or(0);
        self.last_etag = ticks.max(self.last_etag.saturating_add(1));
        format!("\"0x{:X}\"", self.last_etag)
    }

    pub fn container(&self, account: &str, container: &str) -> Option<&Props> {
        self.containers
            .get(&(account.to_string(), container.to_string()))
            .map(|c| &c.props)
    }

    /// Creates a container; `Ok(None)` when it already exists.
    pub fn create_container(
        &mut self,
        account: &str,
        container: &str,
        metadata: BTreeMap<String, String>,
        now: SystemTime,
    ) -> io::Result<Option<Props>> {
        let key = (account.to_string(), container.to_string());
        if self.containers.contains_key(&key) {
            return Ok(None);
        }
        let account_dir = self.root.join(account);
        let dir = account_dir.join(container);
        if !account_dir.exists() {
            fs::create_dir(&account_dir)?;
            sync_dir(&self.root)?;
        }
        if !dir.exists() {
            fs::create_dir(&dir)?;
            sync_dir(&account_dir)?;
        }
        let ms = millis(now);
        let props = Props {
            etag: self.next_etag(now),
            created_ms: ms,
            modified_ms: ms,
            metadata,
        };
        let json = serde_json::to_vec(&props).map_err(io::Error::other)?;
        write_atomic(&dir, CONTAINER_FILE, &[&json])?;
        self.containers.insert(
            key,
            Container {
                dir,
                props: props.clone(),
                blobs: BTreeMap::new(),
            },
        );
        Ok(Some(props))
    }

    /// Deletes a container and its blobs; false when there was none.
    pub fn delete_container(&mut self, account: &str, container: &str) -> io::Result<bool> {
        let key = (account.to_string(), container.to_string());
        let Some(c) = self.containers.get(&key) else {
            return Ok(false);
        };
        // The properties file goes first: from then on the container is gone, whatever
        // is left of it after a crash.
        fs::remove_file(c.dir.join(CONTAINER_FILE))?;
        sync_dir(&c.dir)?;
        fs::remove_dir_all(&c.dir)?;
        if let Some(parent) = c.dir.parent() {
            sync_dir(parent)?;
        }
        self.containers.remove(&key);
        Ok(true)
    }

    pub fn blob(&self, account: &str, container: &str, name: &str) -> Option<&BlobMeta> {
        self.containers
            .get(&(account.to_string(), container.to_string()))
            .and_then(|c| c.blobs.get(name))
    }

    /// Blobs of a container whose names start with `prefix`, from `marker` on, at most
    /// `max`; and the name to continue from, if there are more.
    pub fn list(
        &self,
        account: &str,
        container: &str,
        prefix: &str,
        marker: Option<&str>,
        max: usize,
    ) -> Option<(Vec<&BlobMeta>, Option<String>)> {
        let c = self
            .containers
            .get(&(account.to_string(), container.to_string()))?;
        let start = match marker {
            Some(m) if m > prefix => m,
            _ => prefix,
        };
        let mut out = Vec::new();
        let mut next = None;
        for (name, meta) in c.blobs.range(start.to_string()..) {
            if !name.starts_with(prefix) {
                break;
            }
            if out.len() == max {
                next = Some(name.clone());
                break;
            }
            out.push(meta);
        }
        Some((out, next))
    }

    /// Writes a whole blob (Put Blob). The container must exist.
    pub fn put_blob(
        &mut self,
        account: &str,
        container: &str,
        name: &str,
        new: NewBlob,
        content: &[u8],
        now: SystemTime,
    ) -> io::Result<BlobMeta> {
        let etag = self.next_etag(now);
        let c = self
            .containers
            .get_mut(&(account.to_string(), container.to_string()))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such container"))?;
        let ms = millis(now);
        let created_ms = c.blobs.get(name).map_or(ms, |b| b.props.created_ms);
        let meta = BlobMeta {
            name: name.to_string(),
            props: Props {
                etag,
                created_ms,
                modified_ms: ms,
                metadata: new.metadata,
            },
            content_length: content.len() as u64,
            content_type: new
                .content_type
                .unwrap_or_else(|| "application/octet-stream".to_string()),
            content_encoding: new.content_encoding,
            content_language: new.content_language,
            content_md5: new.content_md5,
            cache_control: new.cache_control,
            content_disposition: new.content_disposition,
        };
        write_blob(&c.dir, &meta, content)?;
        c.blobs.insert(name.to_string(), meta.clone());
        Ok(meta)
    }

    /// Replaces a blob's metadata (Set Blob Metadata); the content is kept.
    pub fn set_metadata(
        &mut self,
        account: &str,
        container: &str,
        name: &str,
        metadata: BTreeMap<String, String>,
        now: SystemTime,
    ) -> io::Result<BlobMeta> {
        let etag = self.next_etag(now);
        let c = self
            .containers
            .get_mut(&(account.to_string(), container.to_string()))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such container"))?;
        let old = c
            .blobs
            .get(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such blob"))?;
        let content = read_content(&c.dir, old)?;
        let mut meta = old.clone();
        meta.props.etag = etag;
        meta.props.modified_ms = millis(now);
        meta.props.metadata = metadata;
        write_blob(&c.dir, &meta, &content)?;
        c.blobs.insert(name.to_string(), meta.clone());
        Ok(meta)
    }

    pub fn read_blob(&self, account: &str, container: &str, name: &str) -> io::Result<Vec<u8>> {
        let c = self
            .containers
            .get(&(account.to_string(), container.to_string()))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such container"))?;
        let meta = c
            .blobs
            .get(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such blob"))?;
        read_content(&c.dir, meta)
    }

    /// Deletes a blob; false when there was none.
    pub fn delete_blob(&mut self, account: &str, container: &str, name: &str) -> io::Result<bool> {
        let Some(c) = self
            .containers
            .get_mut(&(account.to_string(), container.to_string()))
        else {
            return Ok(false);
        };
        if !c.blobs.contains_key(name) {
            return Ok(false);
        }
        fs::remove_file(c.dir.join(blob_file(name)))?;
        sync_dir(&c.dir)?;
        c.blobs.remove(name);
        Ok(true)
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: not a blob store file: {e}", path.display()),
    )
}

/// Names can be up to 1024 characters of anything: the file is named by their hash.
fn blob_file(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let mut s = String::with_capacity(64 + BLOB_SUFFIX.len());
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s.push_str(BLOB_SUFFIX);
    s
}

fn write_blob(dir: &Path, meta: &BlobMeta, content: &[u8]) -> io::Result<()> {
    let mut line = serde_json::to_vec(meta).map_err(io::Error::other)?;
    line.push(b'\n');
    write_atomic(dir, &blob_file(&meta.name), &[&line, content])
}

fn read_meta(reader: &mut impl BufRead) -> io::Result<BlobMeta> {
    let mut line = Vec::new();
    reader.take(MAX_META_LINE).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no properties line",
        ));
    }
    serde_json::from_slice(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn read_content(dir: &Path, meta: &BlobMeta) -> io::Result<Vec<u8>> {
    let path = dir.join(blob_file(&meta.name));
    let mut reader = BufReader::new(File::open(&path)?);
    read_meta(&mut reader).map_err(|e| corrupt(&path, e))?;
    let mut content = Vec::with_capacity(meta.content_length.min(64 << 20) as usize);
    reader.take(meta.content_length).read_to_end(&mut content)?;
    if content.len() as u64 != meta.content_length {
        return Err(corrupt(&path, "the content is shorter than recorded"));
    }
    Ok(content)
}

/// Write to a temporary file, fsync it, rename it into place, fsync the directory.
fn write_atomic(dir: &Path, name: &str, parts: &[&[u8]]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        for p in parts {
            f.write_all(p)?;
        }
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_survive_reopen_and_etags_keep_growing() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let mut s = Store::open(dir.path()).unwrap();
        s.create_container("acct", "c1", BTreeMap::new(), now)
            .unwrap()
            .unwrap();
        assert!(s
            .create_container("acct", "c1", BTreeMap::new(), now)
            .unwrap()
            .is_none());
        let mut new = NewBlob::default();
        new.metadata.insert("offset".into(), "12".into());
        let a = s
            .put_blob("acct", "c1", "ns/hub/cg/checkpoint/0", new, b"body", now)
            .unwrap();
        let mut md = BTreeMap::new();
        md.insert("offset".into(), "13".into());
        let b = s
            .set_metadata("acct", "c1", "ns/hub/cg/checkpoint/0", md, now)
            .unwrap();
        assert_ne!(a.props.etag, b.props.etag);
        drop(s);
        let mut s = Store::open(dir.path()).unwrap();
        let got = s.blob("acct", "c1", "ns/hub/cg/checkpoint/0").unwrap();
        assert_eq!(got, &b);
        assert_eq!(
            s.read_blob("acct", "c1", "ns/hub/cg/checkpoint/0").unwrap(),
            b"body"
        );
        let c = s
            .set_metadata("acct", "c1", "ns/hub/cg/checkpoint/0", BTreeMap::new(), now)
            .unwrap();
        assert!(
            c.props.etag > b.props.etag,
            "{} then {}",
            b.props.etag,
            c.props.etag
        );
    }

    #[test]
    fn listing_pages_by_prefix_and_marker() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let mut s = Store::open(dir.path()).unwrap();
        s.create_container("acct", "c", BTreeMap::new(), now)
            .unwrap();
        for n in ["a/1", "a/2", "a/3", "b/1"] {
            s.put_blob("acct", "c", n, NewBlob::default(), b"", now)
                .unwrap();
        }
        let (page, next) = s.list("acct", "c", "a/", None, 2).unwrap();
        let names: Vec<_> = page.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["a/1", "a/2"]);
        assert_eq!(next.as_deref(), Some("a/3"));
        let (page, next) = s.list("acct", "c", "a/", next.as_deref(), 2).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(next, None);
    }

    #[test]
    fn a_leftover_temporary_file_is_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let mut s = Store::open(dir.path()).unwrap();
        s.create_container("acct", "c", BTreeMap::new(), now)
            .unwrap();
        drop(s);
        let tmp = dir.path().join("acct/c/deadbeef.blob.tmp");
        fs::write(&tmp, b"{\"torn").unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert!(s.container("acct", "c").is_some());
        assert!(!tmp.exists());
    }
}
