//! The durable topic registry: names, ids, partition counts and per-topic config
//! overrides. Kept in one JSON file under the data directory, rewritten whole with
//! write-temp, fsync, rename, fsync-dir on every change, so a crash leaves the old
//! registry or the new one. Topic changes are rare; a log would be overkill here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use runnel_storage::layout::TOPIC_REGISTRY_FILE as REGISTRY_FILE;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level config overrides (Kafka names).
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
    pub created_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct RegistryFile {
    version: u32,
    cluster_id: String,
    topics: Vec<TopicMeta>,
}

pub struct TopicRegistry {
    path: PathBuf,
    pub cluster_id: String,
    topics: BTreeMap<String, TopicMeta>,
    /// Counts creations and deletions since the process started (consumer groups
    /// resolve their subscribed regexes again when it moves).
    names_version: u64,
}

/// Kafka's limit on topic name length (a partition directory name must fit in 255).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Kafka's topic name rules: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`. The
/// messages are Kafka's (`Topic.validate`), which its tools print as they are.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "the empty string is not allowed".to_string()
    } else if name == "." || name == ".." {
        format!("'{name}' is not allowed")
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        format!("the length of '{name}' is longer than the max allowed length {MAX_TOPIC_NAME_LEN}")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        format!("'{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'")
    } else {
        return Ok(());
    };
    Err(format!("Topic name is invalid: {why}"))
}

/// Names that differ only by '.' versus '_' collide in metric names, so Kafka refuses
/// the second one.
pub fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

impl TopicRegistry {
    pub fn open(data_dir: &Path) -> std::io::Result<TopicRegistry> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(REGISTRY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: RegistryFile = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                if file.version != FORMAT_VERSION {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{}: unknown format version {}",
                            path.display(),
                            file.version
                        ),
                    ));
                }
                let topics = file
                    .topics
                    .into_iter()
                    .map(|t| (t.name.clone(), t))
                    .collect();
                Ok(TopicRegistry {
                    path,
                    cluster_id: file.cluster_id,
                    topics,
                    names_version: 0,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let reg = TopicRegistry {
                    path,
                    cluster_id: new_cluster_id(),
                    topics: BTreeMap::new(),
                    names_version: 0,
                };
                reg.save()?;
                Ok(reg)
            }
            Err(e) => Err(e),
        }
    }

    fn save(&self) -> std::io::Result<()> {
        let file = RegistryFile {
            version: FORMAT_VERSION,
            cluster_id: self.cluster_id.clone(),
            topics: self.topics.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        // Through the storage I/O seam, so its faults and sync journal see the registry.
        runnel_storage::checkpoint::write(dir, REGISTRY_FILE, &bytes)
    }

    pub fn get(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    pub fn by_id(&self, id: &Uuid) -> Option<&TopicMeta> {
        self.topics.values().find(|t| &t.id == id)
    }

    pub fn all(&self) -> impl Iterator<Item = &TopicMeta> {
        self.topics.values()
    }

    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Moves whenever a topic is created or deleted.
    pub fn names_version(&self) -> u64 {
        self.names_version
    }

    /// The existing topic whose name collides with `name` ('.' vs '_'), if any.
    pub fn colliding(&self, name: &str) -> Option<&TopicMeta> {
        let key = collision_key(name);
        self.topics
            .values()
            .find(|t| t.name != name && collision_key(&t.name) == key)
    }

    pub fn insert(&mut self, meta: TopicMeta) -> std::io::Result<()> {
        let old = self.topics.insert(meta.name.clone(), meta.clone());
        if let Err(e) = self.save() {
            // Keep memory equal to disk.
            match old {
                Some(o) => self.topics.insert(o.name.clone(), o),
                None => self.topics.remove(&meta.name),
            };
            return Err(e);
        }
        if old.is_none() {
            self.names_version += 1;
        }
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> std::io::Result<Option<TopicMeta>> {
        let Some(old) = self.topics.remove(name) else {
            return Ok(None);
        };
        if let Err(e) = self.save() {
            self.topics.insert(old.name.clone(), old);
            return Err(e);
        }
        self.names_version += 1;
        Ok(Some(old))
    }
}

/// A cluster id as Kafka makes them: 16 random bytes, URL-safe base64 without padding.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert_eq!(
            validate_topic_name("a/b").unwrap_err(),
            "Topic name is invalid: 'a/b' contains one or more characters other than ASCII \
             alphanumerics, '.', '_' and '-'"
        );
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }

    #[test]
    fn registry_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = TopicRegistry::open(dir.path()).unwrap();
        let id = Uuid::new_v4();
        r.insert(TopicMeta {
            name: "a.b".into(),
            id,
            partitions: 3,
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            internal: false,
            created_ms: 1,
        })
        .unwrap();
        assert!(r.colliding("a_b").is_some());
        let cluster = r.cluster_id.clone();
        assert_eq!(cluster.len(), 22);
        drop(r);
        let r = TopicRegistry::open(dir.path()).unwrap();
        assert_eq!(r.cluster_id, cluster);
        assert_eq!(r.get("a.b").unwrap().id, id);
        assert_eq!(r.by_id(&id).unwrap().partitions, 3);
    }
}
