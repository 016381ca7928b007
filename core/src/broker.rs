//! The broker's shared state: configuration, the topic registry, the partition logs and
//! the producer id allocator. Protocol front ends call it; it knows none of them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use runnel_storage::{LogConfig, LogManager, TopicPartition};
use uuid::Uuid;

use crate::blocking::in_place as blocking;
use crate::config::BrokerConfig;
use crate::partition::Partition;
use crate::poison::or_stop;
use crate::topic_config::{self, BrokerTopicDefaults};
use crate::topics::{validate_topic_name, TopicMeta, TopicRegistry};
use runnel_storage::producer_state::ProducerIdManager;

/// Why the broker refused an operation, in words any protocol front end maps to its own
/// errors (the Kafka front end to Kafka's error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    TopicAlreadyExists,
    InvalidTopic,
    InvalidPartitions,
    InvalidReplicationFactor,
    TopicDeletionDisabled,
    UnknownTopicOrPartition,
    InvalidRequest,
    InvalidConfig,
    /// The data directory failed (I/O).
    Storage,
}

/// An [`ErrorKind`] with a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerError {
    pub kind: ErrorKind,
    pub message: String,
}

impl BrokerError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> BrokerError {
        BrokerError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

pub struct Broker {
    pub config: BrokerConfig,
    pub topic_defaults: BrokerTopicDefaults,
    pub logs: LogManager,
    topics: RwLock<TopicRegistry>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    producer_ids: Mutex<ProducerIdManager>,
    /// Serializes topic creation/deletion/alteration (rare, touches several structures).
    admin: tokio::sync::Mutex<()>,
}

/// The topics that hold coordinators' state: internal, as Kafka marks them, and never
/// deleted by a client.
pub const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// Whether a topic's partitions acknowledge before the fsync. Never the internal topics:
/// the coordinators answer a commit or a transaction decision only once its record is
/// durable, and with write caching that would wait for the next segment roll (the fault
/// harness found every commit and InitProducerId timing out).
fn write_caching(topic: &str, resolved: &topic_config::TopicConfig) -> bool {
    resolved.write_caching && !INTERNAL_TOPICS.contains(&topic)
}

/// A config problem: an invalid config, or a malformed request (as Kafka tells them apart).
pub fn config_error(e: topic_config::ConfigError) -> BrokerError {
    BrokerError::new(e.kind(), e.to_string())
}

fn err_io(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::new(ErrorKind::Storage, e.to_string())
}

impl Broker {
    /// Open the data directory: topic registry, partition logs (recovering them after a
    /// crash) and producer state.
    pub fn open(config: BrokerConfig) -> std::io::Result<Broker> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir)?;
        let topic_defaults = config.topic_defaults.clone();
        let topics = TopicRegistry::open(&data_dir)?;
        let log_configs: HashMap<String, LogConfig> = topics
            .all()
            .map(|t| {
                (
                    t.name.clone(),
                    topic_config::log_config(&t.configs, &topic_defaults),
                )
            })
            .collect();
        let default_log = topic_config::log_config(&BTreeMap::new(), &topic_defaults);
        let logs = LogManager::open(&data_dir, |tp| {
            log_configs
                .get(&tp.topic)
                .cloned()
                .unwrap_or_else(|| default_log.clone())
        })
        .map_err(std::io::Error::other)?;
        let producer_ids = ProducerIdManager::open(
            &data_dir.join(runnel_storage::layout::PRODUCER_ID_BLOCK_FILE),
        )?;
        let broker = Broker {
            topic_defaults,
            logs,
            topics: RwLock::new(topics),
            partitions: RwLock::new(HashMap::new()),
            producer_ids: Mutex::new(producer_ids),
            admin: tokio::sync::Mutex::new(()),
            config,
        };
        let metas: Vec<TopicMeta> = broker.topics().all().cloned().collect();
        for meta in &metas {
            for p in 0..meta.partitions {
                broker
                    .open_partition(meta, p)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
            }
        }
        // Logs of topics the registry does not know (deleted while a crash interrupted
        // the deletion) go.
        for tp in broker.logs.partitions() {
            let known = broker
                .topics()
                .get(&tp.topic)
                .is_some_and(|t| tp.partition < t.partitions);
            if !known {
                tracing::warn!(partition = %tp, "deleting a partition log of an unknown topic");
                broker.logs.delete(&tp).map_err(std::io::Error::other)?;
            }
        }
        Ok(broker)
    }

    /// The partitions of internal topic `name`, created with `partitions` partitions and
    /// `configs` (overrides of the broker defaults) if it does not exist yet. For the
    /// coordinators' state topics, which clients never create.
    pub fn open_internal_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> std::io::Result<Vec<Arc<Partition>>> {
        let meta = match self.topic_meta(name) {
            Some(meta) => meta,
            None => {
                let given: Vec<(String, Option<String>)> = configs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                    .collect();
                let configs = topic_config::validate_create(&given, &self.topic_defaults)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let meta = TopicMeta {
                    name: name.to_string(),
                    id: Uuid::new_v4(),
                    partitions,
                    configs,
                    internal: true,
                    created_ms: runnel_storage::now_ms(),
                };
                blocking(|| {
                    self.topics_mut().insert(meta.clone())?;
                    for p in 0..meta.partitions {
                        self.open_partition(&meta, p)
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                    }
                    Ok::<_, std::io::Error>(())
                })?;
                tracing::info!(partitions = meta.partitions, "created {name}");
                meta
            }
        };
        (0..meta.partitions)
            .map(|p| {
                self.partition(name, p)
                    .ok_or_else(|| std::io::Error::other(format!("{name}-{p} is not open")))
            })
            .collect()
    }

    pub fn topics(&self) -> std::sync::RwLockReadGuard<'_, TopicRegistry> {
        or_stop(self.topics.read(), "topic registry")
    }

    fn topics_mut(&self) -> std::sync::RwLockWriteGuard<'_, TopicRegistry> {
        or_stop(self.topics.write(), "topic registry")
    }

    pub fn cluster_id(&self) -> String {
        self.topics().cluster_id.clone()
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let tp = TopicPartition::new(topic, partition);
        or_stop(self.partitions.read(), "partition map")
            .get(&tp)
            .cloned()
    }

    /// Partitions the broker has, internal ones included: the most a fetch session
    /// may hold.
    pub fn partition_count(&self) -> usize {
        or_stop(self.partitions.read(), "partition map").len()
    }

    pub fn partitions_of(&self, topic: &str) -> Vec<Arc<Partition>> {
        let n = self.topics().get(topic).map_or(0, |t| t.partitions);
        (0..n).filter_map(|p| self.partition(topic, p)).collect()
    }

    pub fn next_producer_id(&self) -> Result<i64, BrokerError> {
        or_stop(self.producer_ids.lock(), "producer id")
            .next_id()
            .map_err(err_io)
    }

    fn open_partition(
        &self,
        meta: &TopicMeta,
        partition: i32,
    ) -> Result<Arc<Partition>, BrokerError> {
        let tp = TopicPartition::new(meta.name.clone(), partition);
        let resolved = topic_config::resolve(&meta.configs, &self.topic_defaults);
        let log = self
            .logs
            .get_or_create(&tp, resolved.log_config())
            .map_err(err_io)?;
        let p = Arc::new(
            Partition::open(
                tp.clone(),
                log,
                write_caching(&meta.name, &resolved),
                self.config.producer_id_expiration_ms,
            )
            .map_err(err_io)?,
        );
        p.set_log_append_time(resolved.log_append_time());
        p.set_timestamp_bounds(
            resolved.message_timestamp_before_max_ms,
            resolved.message_timestamp_after_max_ms,
        );
        p.set_compacted(resolved.cleanup_policy.compact);
        or_stop(self.partitions.write(), "partition map").insert(tp, p.clone());
        Ok(p)
    }

    /// Create a topic. `validate_only` checks everything and changes nothing.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<TopicMeta, BrokerError> {
        let _admin = self.admin.lock().await;
        validate_topic_name(name).map_err(|m| BrokerError::new(ErrorKind::InvalidTopic, m))?;
        if self.topics().get(name).is_some() {
            return Err(BrokerError::new(
                ErrorKind::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        if let Some(other) = self.topics().colliding(name) {
            return Err(BrokerError::new(
                ErrorKind::InvalidTopic,
                format!(
                    "Topic '{name}' collides with existing topic: {}",
                    other.name
                ),
            ));
        }
        let partitions = if partitions == -1 {
            self.config.num_partitions
        } else {
            partitions
        };
        if !(1..=100_000).contains(&partitions) {
            return Err(BrokerError::new(
                ErrorKind::InvalidPartitions,
                "Number of partitions must be larger than 0.",
            ));
        }
        // Kafka's controller messages, which its tools print as they are.
        if replication_factor == 0 || replication_factor < -1 {
            return Err(BrokerError::new(
                ErrorKind::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value.",
            ));
        }
        if replication_factor > 1 {
            return Err(BrokerError::new(
                ErrorKind::InvalidReplicationFactor,
                format!(
                    "Unable to replicate the partition {replication_factor} time(s): The target \
                     replication factor of {replication_factor} cannot be reached because only 1 \
                     broker(s) are registered or some brokers have all their log directories \
                     cordoned."
                ),
            ));
        }
        let configs =
            topic_config::validate_create(configs, &self.topic_defaults).map_err(config_error)?;
        if name.contains('.') || name.contains('_') {
            tracing::warn!(
                topic = name,
                "topic names with '.' or '_' can collide in metric names"
            );
        }
        let meta = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
            // Kafka marks only its own state topics internal.
            internal: INTERNAL_TOPICS.contains(&name),
            created_ms: runnel_storage::now_ms(),
        };
        if validate_only {
            return Ok(meta);
        }
        blocking(|| {
            self.topics_mut().insert(meta.clone()).map_err(err_io)?;
            for p in 0..partitions {
                self.open_partition(&meta, p)?;
            }
            Ok::<_, BrokerError>(())
        })?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(meta)
    }

    pub async fn delete_topic(&self, name: &str) -> Result<TopicMeta, BrokerError> {
        let _admin = self.admin.lock().await;
        if !self.config.delete_topic_enable {
            return Err(BrokerError::new(
                ErrorKind::TopicDeletionDisabled,
                "Topic deletion is disabled.",
            ));
        }
        let Some(meta) = self.topics().get(name).cloned() else {
            return Err(BrokerError::new(
                ErrorKind::UnknownTopicOrPartition,
                "This server does not host this topic-partition.",
            ));
        };
        if meta.internal {
            // The coordinator's own state lives there.
            return Err(BrokerError::new(
                ErrorKind::InvalidRequest,
                format!("internal topic {name} cannot be deleted"),
            ));
        }
        // Registry first: once it is gone, a crash finishes the log deletion on start.
        blocking(|| {
            self.topics_mut().remove(name).map_err(err_io)?;
            for p in 0..meta.partitions {
                let tp = TopicPartition::new(name, p);
                or_stop(self.partitions.write(), "partition map").remove(&tp);
                self.logs.delete(&tp).map_err(err_io)?;
            }
            Ok::<_, BrokerError>(())
        })?;
        tracing::info!(topic = name, "deleted topic");
        Ok(meta)
    }

    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin.lock().await;
        let Some(mut meta) = self.topics().get(name).cloned() else {
            return Err(BrokerError::new(
                ErrorKind::UnknownTopicOrPartition,
                format!("The topic '{name}' does not exist."),
            ));
        };
        if count == meta.partitions {
            return Err(BrokerError::new(
                ErrorKind::InvalidPartitions,
                format!("Topic already has {count} partition(s)."),
            ));
        }
        if count < meta.partitions {
            return Err(BrokerError::new(
                ErrorKind::InvalidPartitions,
                format!(
                    "The topic {name} currently has {} partition(s); {count} would not be an \
                     increase.",
                    meta.partitions
                ),
            ));
        }
        if count > 100_000 {
            return Err(BrokerError::new(
                ErrorKind::InvalidPartitions,
                "Too many partitions.",
            ));
        }
        if validate_only {
            return Ok(());
        }
        let old = meta.partitions;
        meta.partitions = count;
        blocking(|| {
            self.topics_mut().insert(meta.clone()).map_err(err_io)?;
            for p in old..count {
                self.open_partition(&meta, p)?;
            }
            Ok(())
        })
    }

    /// Replace a topic's config overrides and apply them to its partitions.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let _admin = self.admin.lock().await;
        let Some(mut meta) = self.topics().get(name).cloned() else {
            return Err(BrokerError::new(
                ErrorKind::UnknownTopicOrPartition,
                format!("The topic '{name}' does not exist."),
            ));
        };
        let configs =
            topic_config::validate_all(&configs, &self.topic_defaults).map_err(config_error)?;
        if validate_only {
            return Ok(());
        }
        meta.configs = configs;
        blocking(|| self.topics_mut().insert(meta.clone())).map_err(err_io)?;
        let resolved = topic_config::resolve(&meta.configs, &self.topic_defaults);
        for p in self.partitions_of(name) {
            p.set_log_config(resolved.log_config())
                .map_err(|e| BrokerError::new(ErrorKind::InvalidConfig, e.to_string()))?;
            p.set_write_caching(write_caching(name, &resolved));
            p.set_log_append_time(resolved.log_append_time());
            p.set_timestamp_bounds(
                resolved.message_timestamp_before_max_ms,
                resolved.message_timestamp_after_max_ms,
            );
            p.set_compacted(resolved.cleanup_policy.compact);
        }
        Ok(())
    }

    pub fn topic_meta(&self, name: &str) -> Option<TopicMeta> {
        self.topics().get(name).cloned()
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// Flush everything, snapshot producer state and mark the shutdown clean. The log
    /// maintenance threads must have stopped first.
    /// (total, available) bytes of the filesystem holding the data directory.
    pub fn disk_space(&self) -> Option<(i64, i64)> {
        disk_space(&self.config.data_dir)
    }

    pub fn shutdown(&self) -> std::io::Result<()> {
        let partitions: Vec<Arc<Partition>> = or_stop(self.partitions.read(), "partition map")
            .values()
            .cloned()
            .collect();
        for p in &partitions {
            if let Err(e) = p.write_producer_snapshot() {
                tracing::warn!(partition = %p.tp, error = %e, "writing the producer snapshot failed; replay covers it");
            }
        }
        self.logs.close().map_err(std::io::Error::other)?;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// (total, available) bytes of the filesystem holding `dir`.
fn disk_space(dir: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `st` a valid out pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as i64;
    Some((st.f_blocks as i64 * frsize, st.f_bavail as i64 * frsize))
}
