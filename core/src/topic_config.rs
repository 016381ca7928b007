//! Topic-level configuration: Kafka's catalog of topic configs, their broker-level
//! defaults, validation, and the semantics of CreateTopics, DescribeConfigs, AlterConfigs
//! and IncrementalAlterConfigs for a topic resource.
//!
//! A topic's configuration is a map of *overrides* (topic config name → value string),
//! the only thing that is stored. Every other value comes from the broker's static
//! configuration ([`BrokerTopicDefaults`], built from the broker config file under Kafka's
//! broker-level names such as `log.retention.hours`), or failing that from the catalog
//! default ([`CATALOG`]). The catalog is the single source of truth for names, types,
//! defaults, validation, broker synonyms and documentation.
//!
//! Decisions worth knowing:
//! - The catalog is Kafka 4.0's. `message.format.version`, `message.downconversion.enable`
//!   and `message.timestamp.difference.max.ms` were removed in Kafka 4.0 (Runnel only
//!   speaks record-batch v2, so they could mean nothing here). They are *retired*: setting
//!   them is accepted and ignored, so tools written for 3.x keep working, and they are
//!   neither stored nor described.
//! - Defaults are Kafka 4.0's, including `message.timestamp.after.max.ms` = 1 hour.
//!   `segment.bytes` keeps the 3.x/4.0 minimum of 14 bytes (Kafka 4.1 raised it to 1 MiB).
//! - Runnel adds `write.caching` (broker synonym `write.caching.default`, default false):
//!   when false, acks=all is answered only after fsync; when true, after the write reaches
//!   the OS page cache, as Kafka does (the name and meaning follow Redpanda's property).
//! - Runnel has no tiered storage, so `remote.storage.enable=true` is rejected as Kafka
//!   rejects it when `remote.log.storage.system.enable` is off.
//! - `max.message.bytes` is capped at [`runnel_storage::MAX_BATCH_BYTES_ON_DISK`].
//! - APPEND/SUBTRACT start from the topic's *effective* value when it has no override
//!   (including a static broker setting), where Kafka's controller starts from the
//!   catalog default.

use std::collections::BTreeMap;
use std::fmt;

use runnel_records::record_batch::Compression;
use runnel_storage::LogConfig;

/// Names of the topic configs, for code that reads one.
pub mod names {
    pub const CLEANUP_POLICY: &str = "cleanup.policy";
    pub const COMPRESSION_GZIP_LEVEL: &str = "compression.gzip.level";
    pub const COMPRESSION_LZ4_LEVEL: &str = "compression.lz4.level";
    pub const COMPRESSION_TYPE: &str = "compression.type";
    pub const COMPRESSION_ZSTD_LEVEL: &str = "compression.zstd.level";
    pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
    pub const ERRORS_DEADLETTERQUEUE_GROUP_ENABLE: &str = "errors.deadletterqueue.group.enable";
    pub const EVENTHUBS_CONSUMER_GROUPS: &str = "eventhubs.consumer.groups";
    pub const FILE_DELETE_DELAY_MS: &str = "file.delete.delay.ms";
    pub const FLUSH_MESSAGES: &str = "flush.messages";
    pub const FLUSH_MS: &str = "flush.ms";
    pub const FOLLOWER_REPLICATION_THROTTLED_REPLICAS: &str =
        "follower.replication.throttled.replicas";
    pub const INDEX_INTERVAL_BYTES: &str = "index.interval.bytes";
    pub const LEADER_REPLICATION_THROTTLED_REPLICAS: &str = "leader.replication.throttled.replicas";
    pub const LOCAL_RETENTION_BYTES: &str = "local.retention.bytes";
    pub const LOCAL_RETENTION_MS: &str = "local.retention.ms";
    pub const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";
    pub const MAX_DECOMPRESSED_MESSAGE_BYTES: &str = "max.decompressed.message.bytes";
    pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
    pub const MESSAGE_TIMESTAMP_AFTER_MAX_MS: &str = "message.timestamp.after.max.ms";
    pub const MESSAGE_TIMESTAMP_BEFORE_MAX_MS: &str = "message.timestamp.before.max.ms";
    pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
    pub const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
    pub const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
    pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
    pub const PREALLOCATE: &str = "preallocate";
    pub const REMOTE_COPY_LAG_BYTES: &str = "remote.copy.lag.bytes";
    pub const REMOTE_COPY_LAG_MS: &str = "remote.copy.lag.ms";
    pub const REMOTE_LOG_COPY_DISABLE: &str = "remote.log.copy.disable";
    pub const REMOTE_LOG_DELETE_ON_DISABLE: &str = "remote.log.delete.on.disable";
    pub const REMOTE_STORAGE_ENABLE: &str = "remote.storage.enable";
    pub const RETENTION_BYTES: &str = "retention.bytes";
    pub const RETENTION_MS: &str = "retention.ms";
    pub const SEGMENT_BYTES: &str = "segment.bytes";
    pub const SEGMENT_INDEX_BYTES: &str = "segment.index.bytes";
    pub const SEGMENT_JITTER_MS: &str = "segment.jitter.ms";
    pub const SEGMENT_MS: &str = "segment.ms";
    pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";
    /// Runnel's own: see the module documentation.
    pub const WRITE_CACHING: &str = "write.caching";
}

/// Topic configs Kafka 4.0 removed. Setting one is accepted and ignored.
pub const RETIRED_CONFIGS: &[&str] = &[
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.difference.max.ms",
];

/// A config's type as DescribeConfigs v4+ reports it (KIP-569).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum ConfigType {
    Unknown = 0,
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

impl ConfigType {
    /// The wire code.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// Kafka's upper-case name, as used in its error messages.
    pub fn kafka_name(self) -> &'static str {
        match self {
            ConfigType::Unknown => "UNKNOWN",
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

/// Where a config value comes from, as DescribeConfigs v1+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum ConfigSource {
    Unknown = 0,
    /// A per-topic override (Kafka's TOPIC_CONFIG).
    DynamicTopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    /// Set in the broker's config file.
    StaticBrokerConfig = 4,
    /// The built-in default.
    DefaultConfig = 5,
    DynamicBrokerLoggerConfig = 6,
    ClientMetricsConfig = 7,
    GroupConfig = 8,
}

impl ConfigSource {
    /// The wire code.
    pub fn code(self) -> i8 {
        self as i8
    }
}

/// How a value is checked beyond parsing as its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    None,
    /// Integer at least this.
    AtLeast(i64),
    /// Integer in this closed range.
    Between(i64, i64),
    /// `compression.gzip.level`: 1..=9, or -1 for the codec's default.
    GzipLevel,
    /// Double in [0, 1].
    Ratio,
    /// One of these strings (case-sensitive, as Kafka).
    OneOf(&'static [&'static str]),
    /// A list whose every element is one of these.
    ListOf(&'static [&'static str]),
    /// `*`, or `partition:broker` pairs.
    ThrottledReplicas,
    /// At least 0 and at most what the storage engine accepts.
    MaxMessageBytes,
    /// Must be false: Runnel has no tiered storage.
    RemoteStorage,
}

/// How a broker-level synonym's value converts into the topic config's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Same type and unit as the topic config.
    Same,
    /// An INT number of minutes; the topic config is in milliseconds.
    Minutes,
    /// An INT number of hours; the topic config is in milliseconds.
    Hours,
}

impl Unit {
    fn millis(self) -> i64 {
        match self {
            Unit::Same => 1,
            Unit::Minutes => 60_000,
            Unit::Hours => 3_600_000,
        }
    }
}

/// A broker config that supplies a topic config's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerSynonym {
    /// The broker config name, e.g. `log.retention.hours`.
    pub name: &'static str,
    pub unit: Unit,
    /// Whether the broker config has a built-in default (reported as a DEFAULT_CONFIG
    /// synonym). It is the topic config's default converted to `unit`.
    pub has_default: bool,
}

/// One topic config in the catalog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    /// The built-in default, formatted as DescribeConfigs reports it.
    pub default: &'static str,
    pub validator: Validator,
    /// Broker configs that set the default for all topics, highest priority first.
    pub synonyms: &'static [BrokerSynonym],
    pub documentation: &'static str,
}

impl TopicConfigDef {
    /// The built-in default of a broker synonym, in the synonym's unit.
    fn synonym_default(&self, synonym: &BrokerSynonym) -> Option<String> {
        if !synonym.has_default {
            return None;
        }
        match synonym.unit {
            Unit::Same => Some(self.default.to_string()),
            unit => {
                let ms: i64 = self.default.parse().ok()?;
                Some((ms / unit.millis()).to_string())
            }
        }
    }
}

const fn same(name: &'static str) -> BrokerSynonym {
    BrokerSynonym {
        name,
        unit: Unit::Same,
        has_default: true,
    }
}

const fn unset(name: &'static str, unit: Unit) -> BrokerSynonym {
    BrokerSynonym {
        name,
        unit,
        has_default: false,
    }
}

const fn hours(name: &'static str) -> BrokerSynonym {
    BrokerSynonym {
        name,
        unit: Unit::Hours,
        has_default: true,
    }
}

const LONG_MAX: &str = "9223372036854775807";

const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

/// Every topic config, sorted by name.
pub static CATALOG: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: names::CLEANUP_POLICY,
        config_type: ConfigType::List,
        default: "delete",
        validator: Validator::ListOf(CLEANUP_POLICIES),
        synonyms: &[same("log.cleanup.policy")],
        documentation: "What happens to old log segments: \"delete\" removes them once past \
            the retention time or size limit; \"compact\" keeps only the latest record for each \
            key; both may be given. An empty list keeps everything.",
    },
    TopicConfigDef {
        name: names::COMPRESSION_GZIP_LEVEL,
        config_type: ConfigType::Int,
        default: "-1",
        validator: Validator::GzipLevel,
        synonyms: &[same("compression.gzip.level")],
        documentation: "The gzip level used when compression.type is gzip (-1 for the \
            codec's default).",
    },
    TopicConfigDef {
        name: names::COMPRESSION_LZ4_LEVEL,
        config_type: ConfigType::Int,
        default: "9",
        validator: Validator::Between(1, 17),
        synonyms: &[same("compression.lz4.level")],
        documentation: "The lz4 level used when compression.type is lz4.",
    },
    TopicConfigDef {
        name: names::COMPRESSION_TYPE,
        config_type: ConfigType::String,
        default: "producer",
        validator: Validator::OneOf(COMPRESSION_TYPES),
        synonyms: &[same("compression.type")],
        documentation: "The codec of the topic's stored batches: uncompressed, gzip, snappy, \
            lz4 or zstd, or \"producer\" to keep whatever codec the producer used.",
    },
    TopicConfigDef {
        name: names::COMPRESSION_ZSTD_LEVEL,
        config_type: ConfigType::Int,
        default: "3",
        validator: Validator::Between(-131_072, 22),
        synonyms: &[same("compression.zstd.level")],
        documentation: "The zstd level used when compression.type is zstd.",
    },
    TopicConfigDef {
        name: names::DELETE_RETENTION_MS,
        config_type: ConfigType::Long,
        default: "86400000",
        validator: Validator::AtLeast(0),
        synonyms: &[same("log.cleaner.delete.retention.ms")],
        documentation: "How long tombstones are kept on a compacted topic, so that a \
            consumer reading from the start still sees the deletion.",
    },
    TopicConfigDef {
        name: names::ERRORS_DEADLETTERQUEUE_GROUP_ENABLE,
        config_type: ConfigType::Boolean,
        default: "false",
        validator: Validator::None,
        synonyms: &[],
        documentation: "Whether Kafka Streams groups may write to a dead letter queue \
            topic (KIP-1034). Accepted and reported; Runnel has no streams groups.",
    },
    TopicConfigDef {
        name: names::EVENTHUBS_CONSUMER_GROUPS,
        config_type: ConfigType::List,
        default: "",
        validator: Validator::None,
        synonyms: &[],
        documentation: "Runnel: the Event Hubs consumer groups of this topic (hub) besides \
            $Default, which always exists. AMQP receivers name one; Kafka consumer groups \
            are separate.",
    },
    TopicConfigDef {
        name: names::FILE_DELETE_DELAY_MS,
        config_type: ConfigType::Long,
        default: "0",
        validator: Validator::AtLeast(0),
        synonyms: &[same("log.segment.delete.delay.ms")],
        documentation: "How long to wait before removing a deleted segment's files from \
            the filesystem. Runnel's default is 0 (Kafka's 60000): readers hold open file \
            handles, so removal is safe at once, and erasure deadlines stay short.",
    },
    TopicConfigDef {
        name: names::FLUSH_MESSAGES,
        config_type: ConfigType::Long,
        default: LONG_MAX,
        validator: Validator::AtLeast(1),
        synonyms: &[same("log.flush.interval.messages")],
        documentation: "Force an fsync after this many messages. Runnel already fsyncs \
            before answering acks=all unless write.caching is on.",
    },
    TopicConfigDef {
        name: names::FLUSH_MS,
        config_type: ConfigType::Long,
        default: LONG_MAX,
        validator: Validator::AtLeast(0),
        synonyms: &[
            unset("log.flush.interval.ms", Unit::Same),
            same("log.flush.scheduler.interval.ms"),
        ],
        documentation: "Force an fsync when data has waited this long. Runnel already \
            fsyncs before answering acks=all unless write.caching is on.",
    },
    TopicConfigDef {
        name: names::FOLLOWER_REPLICATION_THROTTLED_REPLICAS,
        config_type: ConfigType::List,
        default: "",
        validator: Validator::ThrottledReplicas,
        synonyms: &[],
        documentation: "Replicas whose follower-side replication is throttled, as \
            partition:broker pairs or \"*\". Accepted for compatibility; a single node has \
            no followers.",
    },
    TopicConfigDef {
        name: names::INDEX_INTERVAL_BYTES,
        config_type: ConfigType::Int,
        default: "4096",
        validator: Validator::AtLeast(0),
        synonyms: &[same("log.index.interval.bytes")],
        documentation: "Bytes of log between entries of the offset index. Smaller means \
            more precise lookups and bigger indexes.",
    },
    TopicConfigDef {
        name: names::LEADER_REPLICATION_THROTTLED_REPLICAS,
        config_type: ConfigType::List,
        default: "",
        validator: Validator::ThrottledReplicas,
        synonyms: &[],
        documentation: "Replicas whose leader-side replication is throttled, as \
            partition:broker pairs or \"*\". Accepted for compatibility; a single node has \
            no followers.",
    },
    TopicConfigDef {
        name: names::LOCAL_RETENTION_BYTES,
        config_type: ConfigType::Long,
        default: "-2",
        validator: Validator::AtLeast(-2),
        synonyms: &[same("log.local.retention.bytes")],
        documentation: "With tiered storage, the local size limit before eligible segments \
            are deleted locally (-2: use retention.bytes). Runnel has no tiered storage.",
    },
    TopicConfigDef {
        name: names::LOCAL_RETENTION_MS,
        config_type: ConfigType::Long,
        default: "-2",
        validator: Validator::AtLeast(-2),
        synonyms: &[same("log.local.retention.ms")],
        documentation: "With tiered storage, how long segments stay local (-2: use \
            retention.ms). Runnel has no tiered storage.",
    },
    TopicConfigDef {
        name: names::MAX_COMPACTION_LAG_MS,
        config_type: ConfigType::Long,
        default: LONG_MAX,
        validator: Validator::AtLeast(1),
        synonyms: &[same("log.cleaner.max.compaction.lag.ms")],
        documentation: "The longest a record stays ineligible for compaction; the active \
            segment is rolled so that every record is compacted within this time.",
    },
    TopicConfigDef {
        name: names::MAX_DECOMPRESSED_MESSAGE_BYTES,
        config_type: ConfigType::Int,
        default: "2147483639",
        validator: Validator::AtLeast(1),
        synonyms: &[same("max.decompressed.message.bytes")],
        documentation: "The largest a record batch may be once decompressed. Accepted and \
            reported; Runnel bounds the batches it opens by max.message.bytes instead.",
    },
    TopicConfigDef {
        name: names::MAX_MESSAGE_BYTES,
        config_type: ConfigType::Int,
        default: "1048588",
        validator: Validator::MaxMessageBytes,
        synonyms: &[same("message.max.bytes")],
        documentation: "The largest record batch the topic accepts, after compression.",
    },
    TopicConfigDef {
        name: names::MESSAGE_TIMESTAMP_AFTER_MAX_MS,
        config_type: ConfigType::Long,
        default: "3600000",
        validator: Validator::AtLeast(0),
        synonyms: &[same("log.message.timestamp.after.max.ms")],
        documentation: "How far a record's timestamp may be ahead of the broker's clock \
            when message.timestamp.type is CreateTime.",
    },
    TopicConfigDef {
        name: names::MESSAGE_TIMESTAMP_BEFORE_MAX_MS,
        config_type: ConfigType::Long,
        default: LONG_MAX,
        validator: Validator::AtLeast(0),
        synonyms: &[same("log.message.timestamp.before.max.ms")],
        documentation: "How far a record's timestamp may be behind the broker's clock when \
            message.timestamp.type is CreateTime.",
    },
    TopicConfigDef {
        name: names::MESSAGE_TIMESTAMP_TYPE,
        config_type: ConfigType::String,
        default: "CreateTime",
        validator: Validator::OneOf(TIMESTAMP_TYPES),
        synonyms: &[same("log.message.timestamp.type")],
        documentation: "Whether record timestamps are the producer's (CreateTime) or the \
            time the broker appended them (LogAppendTime).",
    },
    TopicConfigDef {
        name: names::MIN_CLEANABLE_DIRTY_RATIO,
        config_type: ConfigType::Double,
        default: "0.5",
        validator: Validator::Ratio,
        synonyms: &[same("log.cleaner.min.cleanable.ratio")],
        documentation: "The share of the log not yet compacted above which the cleaner \
            compacts it (max.compaction.lag.ms can force it sooner).",
    },
    TopicConfigDef {
        name: names::MIN_COMPACTION_LAG_MS,
        config_type: ConfigType::Long,
        default: "0",
        validator: Validator::AtLeast(0),
        synonyms: &[same("log.cleaner.min.compaction.lag.ms")],
        documentation: "The least time a record stays uncompacted.",
    },
    TopicConfigDef {
        name: names::MIN_INSYNC_REPLICAS,
        config_type: ConfigType::Int,
        default: "1",
        validator: Validator::AtLeast(1),
        synonyms: &[same("min.insync.replicas")],
        documentation: "The in-sync replicas an acks=all write needs. A single node has one.",
    },
    TopicConfigDef {
        name: names::PREALLOCATE,
        config_type: ConfigType::Boolean,
        default: "false",
        validator: Validator::None,
        synonyms: &[same("log.preallocate")],
        documentation: "Preallocate a new segment's file at its full size.",
    },
    TopicConfigDef {
        name: names::REMOTE_COPY_LAG_BYTES,
        config_type: ConfigType::Long,
        default: "-1",
        validator: Validator::AtLeast(-1),
        synonyms: &[same("log.remote.copy.lag.bytes")],
        documentation: "With tiered storage, how many bytes a segment may wait before it \
            is copied to remote storage. Runnel has no tiered storage.",
    },
    TopicConfigDef {
        name: names::REMOTE_COPY_LAG_MS,
        config_type: ConfigType::Long,
        default: "0",
        validator: Validator::None,
        synonyms: &[same("log.remote.copy.lag.ms")],
        documentation: "With tiered storage, how long a segment may wait before it is \
            copied to remote storage. Runnel has no tiered storage.",
    },
    TopicConfigDef {
        name: names::REMOTE_LOG_COPY_DISABLE,
        config_type: ConfigType::Boolean,
        default: "false",
        validator: Validator::None,
        synonyms: &[],
        documentation: "With tiered storage, stop copying segments to remote storage. \
            Runnel has no tiered storage.",
    },
    TopicConfigDef {
        name: names::REMOTE_LOG_DELETE_ON_DISABLE,
        config_type: ConfigType::Boolean,
        default: "false",
        validator: Validator::None,
        synonyms: &[],
        documentation: "With tiered storage, delete remote data when it is disabled. \
            Runnel has no tiered storage.",
    },
    TopicConfigDef {
        name: names::REMOTE_STORAGE_ENABLE,
        config_type: ConfigType::Boolean,
        default: "false",
        validator: Validator::RemoteStorage,
        synonyms: &[],
        documentation: "Tiered storage for this topic. Runnel has none, so this must be \
            false.",
    },
    TopicConfigDef {
        name: names::RETENTION_BYTES,
        config_type: ConfigType::Long,
        default: "-1",
        validator: Validator::None,
        synonyms: &[same("log.retention.bytes")],
        documentation: "With the delete policy, the size a partition may grow to before \
            its oldest segments are deleted (negative: no limit).",
    },
    TopicConfigDef {
        name: names::RETENTION_MS,
        config_type: ConfigType::Long,
        default: "604800000",
        validator: Validator::AtLeast(-1),
        synonyms: &[
            unset("log.retention.ms", Unit::Same),
            unset("log.retention.minutes", Unit::Minutes),
            hours("log.retention.hours"),
        ],
        documentation: "With the delete policy, how long a segment is kept after its \
            newest record (-1: no limit).",
    },
    TopicConfigDef {
        name: names::SEGMENT_BYTES,
        config_type: ConfigType::Int,
        default: "1073741824",
        validator: Validator::AtLeast(14),
        synonyms: &[same("log.segment.bytes")],
        documentation: "The size at which the active segment is rolled.",
    },
    TopicConfigDef {
        name: names::SEGMENT_INDEX_BYTES,
        config_type: ConfigType::Int,
        default: "10485760",
        validator: Validator::AtLeast(4),
        synonyms: &[same("log.index.size.max.bytes")],
        documentation: "The size of each segment's offset and time index files; a full \
            index rolls the segment.",
    },
    TopicConfigDef {
        name: names::SEGMENT_JITTER_MS,
        config_type: ConfigType::Long,
        default: "0",
        validator: Validator::AtLeast(0),
        synonyms: &[
            unset("log.roll.jitter.ms", Unit::Same),
            hours("log.roll.jitter.hours"),
        ],
        documentation: "The most random time taken off segment.ms, so that partitions do \
            not all roll at once.",
    },
    TopicConfigDef {
        name: names::SEGMENT_MS,
        config_type: ConfigType::Long,
        default: "604800000",
        validator: Validator::AtLeast(1),
        synonyms: &[unset("log.roll.ms", Unit::Same), hours("log.roll.hours")],
        documentation: "The age at which the active segment is rolled even if not full, so \
            that retention and compaction can act on it.",
    },
    TopicConfigDef {
        name: names::UNCLEAN_LEADER_ELECTION_ENABLE,
        config_type: ConfigType::Boolean,
        default: "false",
        validator: Validator::None,
        synonyms: &[same("unclean.leader.election.enable")],
        documentation: "Allow an out-of-sync replica to become leader. A single node has \
            no other replicas.",
    },
    TopicConfigDef {
        name: names::WRITE_CACHING,
        config_type: ConfigType::Boolean,
        default: "false",
        validator: Validator::None,
        synonyms: &[same("write.caching.default")],
        documentation: "Runnel: when false, an acks=all produce is answered only after its \
            data is fsynced; when true, once the data is in the OS page cache, as Kafka does.",
    },
];

/// The catalog entry for a topic config name.
pub fn lookup(name: &str) -> Option<&'static TopicConfigDef> {
    CATALOG
        .binary_search_by(|def| def.name.cmp(name))
        .ok()
        .map(|i| &CATALOG[i])
}

/// Whether a name is one of the configs Kafka 4.0 removed (accepted and ignored).
pub fn is_retired(name: &str) -> bool {
    RETIRED_CONFIGS.contains(&name)
}

/// An IncrementalAlterConfigs operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum AlterOp {
    Set = 0,
    Delete = 1,
    Append = 2,
    Subtract = 3,
}

impl AlterOp {
    /// From the wire code; `None` for an unknown operation (Kafka: INVALID_REQUEST).
    pub fn from_code(code: i8) -> Option<AlterOp> {
        match code {
            0 => Some(AlterOp::Set),
            1 => Some(AlterOp::Delete),
            2 => Some(AlterOp::Append),
            3 => Some(AlterOp::Subtract),
            _ => None,
        }
    }

    pub fn code(self) -> i8 {
        self as i8
    }
}

impl fmt::Display for AlterOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AlterOp::Set => "SET",
            AlterOp::Delete => "DELETE",
            AlterOp::Append => "APPEND",
            AlterOp::Subtract => "SUBTRACT",
        })
    }
}

/// Why a config change was refused. Messages follow Kafka's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("Unknown topic config name: {0}")]
    UnknownConfig(String),
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
    /// A null value in CreateTopics (names joined by commas).
    #[error("Null value not supported for topic configs: {0}")]
    NullInCreate(String),
    /// A null value with SET/APPEND/SUBTRACT or in AlterConfigs (names joined by ", ").
    #[error("Null value not supported for : {0}")]
    NullInAlter(String),
    #[error("Can't {op} to key {name} because its type is not LIST.")]
    NotAList { op: AlterOp, name: String },
    /// The same config named twice in one alter request.
    #[error("Error due to duplicate config keys")]
    DuplicateKey(String),
    /// Values that are valid alone but not together.
    #[error("{0}")]
    Conflict(String),
    #[error(
        "Tiered Storage functionality is disabled in the broker. Topic cannot be configured \
         with remote log storage."
    )]
    RemoteStorageDisabled,
}

impl ConfigError {
    /// A malformed request, or an invalid config (Kafka's INVALID_REQUEST and
    /// INVALID_CONFIG).
    pub fn kind(&self) -> crate::broker::ErrorKind {
        match self {
            ConfigError::NullInAlter(_) | ConfigError::DuplicateKey(_) => {
                crate::broker::ErrorKind::InvalidRequest
            }
            _ => crate::broker::ErrorKind::InvalidConfig,
        }
    }
}

/// A parsed config value.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    List(Vec<String>),
}

impl Value {
    /// The canonical string form, which is what gets stored and described.
    fn canonical(&self, trimmed: &str) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Int(n) => n.to_string(),
            Value::Double(_) => trimmed.to_string(),
            Value::Str(s) => s.clone(),
            Value::List(items) => items.join(","),
        }
    }
}

fn invalid(name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Parse `raw` as `ty`, as Kafka's ConfigDef does (values are trimmed first).
fn parse_type(ty: ConfigType, label: &str, raw: &str) -> Result<Value, ConfigError> {
    let trimmed = raw.trim();
    let not_a_number = || {
        invalid(
            label,
            raw,
            format!("Not a number of type {}", ty.kafka_name()),
        )
    };
    match ty {
        ConfigType::Boolean => {
            if trimmed.eq_ignore_ascii_case("true") {
                Ok(Value::Bool(true))
            } else if trimmed.eq_ignore_ascii_case("false") {
                Ok(Value::Bool(false))
            } else {
                Err(invalid(
                    label,
                    raw,
                    "Expected value to be either true or false",
                ))
            }
        }
        ConfigType::Short => trimmed
            .parse::<i16>()
            .map(|n| Value::Int(n.into()))
            .map_err(|_| not_a_number()),
        ConfigType::Int => trimmed
            .parse::<i32>()
            .map(|n| Value::Int(n.into()))
            .map_err(|_| not_a_number()),
        ConfigType::Long => trimmed
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| not_a_number()),
        ConfigType::Double => match trimmed.parse::<f64>() {
            Ok(d) if d.is_finite() => Ok(Value::Double(d)),
            _ => Err(not_a_number()),
        },
        ConfigType::List => Ok(Value::List(if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split(',').map(|s| s.trim().to_string()).collect()
        })),
        ConfigType::String | ConfigType::Class | ConfigType::Password | ConfigType::Unknown => {
            Ok(Value::Str(trimmed.to_string()))
        }
    }
}

/// Check a parsed value against its validator.
fn check(validator: Validator, label: &str, raw: &str, value: &Value) -> Result<(), ConfigError> {
    let at_least = |n: i64, min: i64| {
        if n < min {
            Err(invalid(label, raw, format!("Value must be at least {min}")))
        } else {
            Ok(())
        }
    };
    let no_more_than = |n: i64, max: i64| {
        if n > max {
            Err(invalid(
                label,
                raw,
                format!("Value must be no more than {max}"),
            ))
        } else {
            Ok(())
        }
    };
    match (validator, value) {
        (Validator::None, _) => Ok(()),
        (Validator::AtLeast(min), Value::Int(n)) => at_least(*n, min),
        (Validator::Between(min, max), Value::Int(n)) => {
            at_least(*n, min)?;
            no_more_than(*n, max)
        }
        (Validator::GzipLevel, Value::Int(n)) => {
            if *n == -1 || (1..=9).contains(n) {
                Ok(())
            } else {
                Err(invalid(label, raw, "Value must be between 1 and 9, or -1"))
            }
        }
        (Validator::Ratio, Value::Double(d)) => {
            if *d < 0.0 {
                Err(invalid(label, raw, "Value must be at least 0.0"))
            } else if *d > 1.0 {
                Err(invalid(label, raw, "Value must be no more than 1.0"))
            } else {
                Ok(())
            }
        }
        (Validator::OneOf(allowed), Value::Str(s)) => {
            if allowed.contains(&s.as_str()) {
                Ok(())
            } else {
                Err(invalid(
                    label,
                    raw,
                    format!("String must be one of: {}", allowed.join(", ")),
                ))
            }
        }
        (Validator::ListOf(allowed), Value::List(items)) => {
            match items.iter().find(|item| !allowed.contains(&item.as_str())) {
                None => Ok(()),
                Some(bad) => Err(invalid(
                    label,
                    bad,
                    format!("String must be one of: {}", allowed.join(", ")),
                )),
            }
        }
        (Validator::ThrottledReplicas, Value::List(items)) => {
            let pair = |s: &str| match s.split_once(':') {
                Some((p, b)) => {
                    !p.is_empty()
                        && !b.is_empty()
                        && p.bytes().all(|c| c.is_ascii_digit())
                        && b.bytes().all(|c| c.is_ascii_digit())
                }
                None => s.is_empty(),
            };
            if items.iter().all(|s| pair(s)) || items.concat().trim() == "*" {
                Ok(())
            } else {
                Err(invalid(
                    label,
                    raw,
                    format!(
                        "{label} must be the literal '*' or a list of replicas in the following \
                         format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."
                    ),
                ))
            }
        }
        (Validator::MaxMessageBytes, Value::Int(n)) => {
            at_least(*n, 0)?;
            no_more_than(*n, runnel_storage::MAX_BATCH_BYTES_ON_DISK as i64)
        }
        (Validator::RemoteStorage, Value::Bool(enabled)) => {
            if *enabled {
                Err(ConfigError::RemoteStorageDisabled)
            } else {
                Ok(())
            }
        }
        // A validator that does not fit the type is a catalog bug, caught by the tests.
        _ => {
            debug_assert!(false, "validator {validator:?} does not fit {value:?}");
            Ok(())
        }
    }
}

/// Parse and validate a topic-level value; returns it with its canonical string.
fn validate_value(def: &TopicConfigDef, raw: &str) -> Result<(Value, String), ConfigError> {
    let value = parse_type(def.config_type, def.name, raw)?;
    check(def.validator, def.name, raw, &value)?;
    let canonical = value.canonical(raw.trim());
    Ok((value, canonical))
}

/// Check one topic config value, returning the form to store.
pub fn validate(name: &str, value: &str) -> Result<String, ConfigError> {
    let def = lookup(name).ok_or_else(|| ConfigError::UnknownConfig(name.to_string()))?;
    validate_value(def, value).map(|(_, canonical)| canonical)
}

/// The broker-wide defaults of topic configs, from the broker's static configuration
/// under Kafka's broker-level names (`log.segment.bytes`, `log.retention.hours`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerTopicDefaults {
    /// The broker-level settings given, by broker config name, in canonical form.
    map: BTreeMap<String, String>,
    /// Topic config name → (value in the topic config's unit, broker name it came from).
    resolved: BTreeMap<&'static str, (String, &'static str)>,
}

impl BrokerTopicDefaults {
    /// Kafka's defaults (and Runnel's for `write.caching`): nothing set by the broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take the topic defaults from a broker configuration. Keys that are not broker
    /// synonyms of a topic config are ignored; those that are must hold a valid value.
    pub fn from_broker_settings(config: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut converted = BTreeMap::new();
        for (name, raw) in config {
            if let Some(result) = convert_broker_default(name, raw) {
                converted.insert(name.clone(), result?);
            }
        }
        Ok(Self::from_converted(&converted))
    }

    /// Assemble the defaults from broker synonyms already converted by
    /// [`convert_broker_default`] (broker name → (canonical, topic config value)).
    pub fn from_converted(converted: &BTreeMap<String, (String, String)>) -> Self {
        let mut defaults = BrokerTopicDefaults::default();
        for def in CATALOG {
            for synonym in def.synonyms {
                let Some((canonical, topic_value)) = converted.get(synonym.name) else {
                    continue;
                };
                defaults
                    .map
                    .insert(synonym.name.to_string(), canonical.clone());
                // The first synonym set, in priority order, supplies the value.
                defaults
                    .resolved
                    .entry(def.name)
                    .or_insert((topic_value.clone(), synonym.name));
            }
        }
        defaults
    }

    /// Whether a broker config name sets a topic config's default.
    pub fn is_topic_default_key(broker_config_name: &str) -> bool {
        CATALOG
            .iter()
            .any(|def| def.synonyms.iter().any(|s| s.name == broker_config_name))
    }

    /// The broker-level settings given, by broker config name.
    pub fn static_configs(&self) -> &BTreeMap<String, String> {
        &self.map
    }

    /// The value a topic without an override gets, or `None` for an unknown name.
    pub fn default_for(&self, name: &str) -> Option<String> {
        let def = lookup(name)?;
        Some(match self.resolved.get(def.name) {
            Some((value, _)) => value.clone(),
            None => def.default.to_string(),
        })
    }

    /// A topic's effective value of `name` given its overrides, or `None` for an unknown
    /// name.
    pub fn effective(&self, overrides: &BTreeMap<String, String>, name: &str) -> Option<String> {
        let def = lookup(name)?;
        Some(match overrides.get(def.name) {
            Some(value) => value.clone(),
            None => self.default_for(def.name)?,
        })
    }

    /// Whether topics cache writes by default (`write.caching.default`).
    pub fn write_caching_default(&self) -> bool {
        self.typed_default(names::WRITE_CACHING)
            .map(|v| matches!(v, Value::Bool(true)))
            .unwrap_or(false)
    }

    fn typed_default(&self, name: &str) -> Option<Value> {
        let def = lookup(name)?;
        if let Some((value, broker_name)) = self.resolved.get(def.name) {
            match validate_value(def, value) {
                Ok((v, _)) => return Some(v),
                // Validated on construction; unreachable unless the catalog changed.
                Err(error) => tracing::warn!(%error, broker_name, "bad broker topic default"),
            }
        }
        validate_value(def, def.default).ok().map(|(v, _)| v)
    }
}

/// Parse a broker synonym's value: returns its canonical form and its value in the
/// topic config's unit.
fn convert_broker_value(
    def: &TopicConfigDef,
    synonym: &BrokerSynonym,
    raw: &str,
) -> Result<(String, String), ConfigError> {
    let value = parse_type(synonym_type(def, synonym), synonym.name, raw)?;
    let canonical = value.canonical(raw.trim());
    let topic_value = match value {
        Value::Int(n) => {
            let mut ms = n.saturating_mul(synonym.unit.millis());
            // Kafka: any negative broker retention time means "no limit".
            if def.name == names::RETENTION_MS && ms < 0 {
                ms = -1;
            }
            Value::Int(ms)
        }
        other => other,
    };
    check(def.validator, synonym.name, raw, &topic_value)?;
    let topic_string = topic_value.canonical(raw.trim());
    Ok((canonical, topic_string))
}

/// The broker synonym named `name`, with the topic config it sets the default of.
fn find_synonym(name: &str) -> Option<(&'static TopicConfigDef, &'static BrokerSynonym)> {
    CATALOG.iter().find_map(|def| {
        def.synonyms
            .iter()
            .find(|s| s.name == name)
            .map(|s| (def, s))
    })
}

/// Parse the value of the broker synonym `name`: `None` if `name` is not one, else its
/// canonical form and its value in the topic config's unit.
pub fn convert_broker_default(
    name: &str,
    raw: &str,
) -> Option<Result<(String, String), ConfigError>> {
    let (def, synonym) = find_synonym(name)?;
    Some(convert_broker_value(def, synonym, raw))
}

/// What a broker synonym accepts, in words, for the error that refuses a bad value.
pub fn broker_default_expectation(name: &str) -> Option<String> {
    let (def, synonym) = find_synonym(name)?;
    let ty = synonym_type(def, synonym);
    let type_max = match ty {
        ConfigType::Short => i16::MAX as i64,
        ConfigType::Int => i32::MAX as i64,
        _ => i64::MAX,
    };
    let integers = |min: i64, max: i64| format!("an integer in [{min}, {max}]");
    // A minimum in milliseconds, in the synonym's unit (rounded up).
    let in_unit = |min: i64| {
        let unit = synonym.unit.millis();
        if min > 0 {
            (min + unit - 1) / unit
        } else {
            min / unit
        }
    };
    Some(match def.validator {
        // Kafka: any negative broker retention time means "no limit".
        _ if def.name == names::RETENTION_MS => integers(-type_max - 1, type_max),
        Validator::None => match ty {
            ConfigType::Boolean => "true or false".to_string(),
            ConfigType::Short | ConfigType::Int | ConfigType::Long => {
                integers(-type_max - 1, type_max)
            }
            ConfigType::Double => "a number".to_string(),
            _ => "a string".to_string(),
        },
        Validator::AtLeast(min) => integers(in_unit(min), type_max),
        Validator::Between(min, max) => integers(in_unit(min), in_unit(max)),
        Validator::GzipLevel => "-1 or an integer in [1, 9]".to_string(),
        Validator::Ratio => "a number in [0, 1]".to_string(),
        Validator::OneOf(allowed) => format!("one of {}", allowed.join(", ")),
        Validator::ListOf(allowed) => format!("a comma-separated list of {}", allowed.join(", ")),
        Validator::ThrottledReplicas => "\"*\" or a list of partitionId:brokerId pairs".to_string(),
        Validator::MaxMessageBytes => integers(0, runnel_storage::MAX_BATCH_BYTES_ON_DISK as i64),
        Validator::RemoteStorage => "false (Runnel has no tiered storage)".to_string(),
    })
}

fn synonym_type(def: &TopicConfigDef, synonym: &BrokerSynonym) -> ConfigType {
    match synonym.unit {
        Unit::Same => def.config_type,
        Unit::Minutes | Unit::Hours => ConfigType::Int,
    }
}

/// A synonym in a DescribeConfigs answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One topic config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` only for sensitive configs (there are none among topic configs).
    pub value: Option<String>,
    pub source: ConfigSource,
    pub is_default: bool,
    pub read_only: bool,
    pub is_sensitive: bool,
    pub config_type: ConfigType,
    pub documentation: Option<&'static str>,
    /// Empty unless synonyms were asked for.
    pub synonyms: Vec<ConfigSynonym>,
}

/// A broker setting that supplies a topic config's default, for the broker settings
/// catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerDefaultSetting {
    /// The broker setting, e.g. `log.retention.hours`.
    pub name: &'static str,
    /// The topic config it is the default of, e.g. `retention.ms`.
    pub topic_config: &'static str,
    /// Its built-in default in its own unit (`None` where it has none, e.g.
    /// `log.retention.ms`).
    pub default: Option<String>,
    pub config_type: ConfigType,
    pub documentation: &'static str,
}

/// The broker synonyms of every topic config.
pub fn broker_default_settings() -> Vec<BrokerDefaultSetting> {
    CATALOG
        .iter()
        .flat_map(|def| {
            def.synonyms.iter().map(move |s| BrokerDefaultSetting {
                name: s.name,
                topic_config: def.name,
                default: def.synonym_default(s),
                config_type: synonym_type(def, s),
                documentation: def.documentation,
            })
        })
        .collect()
}

impl ConfigEntry {
    /// A broker setting for DescribeConfigs on a broker. `value` is the effective value
    /// (`None`: unset, no default), `given` whether it was set (STATIC_BROKER_CONFIG)
    /// rather than defaulted (DEFAULT_CONFIG), `default` the built-in default. Synonyms
    /// as Kafka lists them: the static setting, then the default.
    pub fn broker(
        name: &str,
        value: Option<&str>,
        given: bool,
        default: Option<&str>,
        config_type: ConfigType,
        documentation: &'static str,
        read_only: bool,
    ) -> ConfigEntry {
        let mut synonyms = Vec::new();
        if given {
            synonyms.push(ConfigSynonym {
                name: name.to_string(),
                value: value.map(str::to_string),
                source: ConfigSource::StaticBrokerConfig,
            });
        }
        if let Some(d) = default {
            synonyms.push(ConfigSynonym {
                name: name.to_string(),
                value: Some(d.to_string()),
                source: ConfigSource::DefaultConfig,
            });
        }
        ConfigEntry {
            name: name.to_string(),
            value: value.map(str::to_string),
            source: if given {
                ConfigSource::StaticBrokerConfig
            } else {
                ConfigSource::DefaultConfig
            },
            is_default: !given,
            read_only,
            is_sensitive: false,
            config_type,
            documentation: Some(documentation),
            synonyms,
        }
    }

    /// A broker resource's setting from its config file, for DescribeConfigs on a
    /// broker: read-only (Runnel has no dynamic broker configs). The type is known for
    /// the broker synonyms of topic configs, UNKNOWN otherwise.
    pub fn static_broker(name: &str, value: &str) -> ConfigEntry {
        let found = CATALOG.iter().find_map(|def| {
            def.synonyms
                .iter()
                .find(|s| s.name == name)
                .map(|s| (def, s))
        });
        let config_type = match found {
            Some((def, synonym)) if synonym.unit == Unit::Same => def.config_type,
            Some(_) => ConfigType::Int,
            None => ConfigType::Unknown,
        };
        ConfigEntry {
            name: name.to_string(),
            value: Some(value.to_string()),
            source: ConfigSource::StaticBrokerConfig,
            is_default: false,
            read_only: true,
            is_sensitive: false,
            config_type,
            documentation: found.map(|(def, _)| def.documentation),
            synonyms: vec![ConfigSynonym {
                name: name.to_string(),
                value: Some(value.to_string()),
                source: ConfigSource::StaticBrokerConfig,
            }],
        }
    }
}

/// DescribeConfigs for a topic: every topic config sorted by name, or only those named
/// in `keys` (unknown names are left out, as Kafka does).
pub fn describe(
    overrides: &BTreeMap<String, String>,
    defaults: &BrokerTopicDefaults,
    keys: Option<&[String]>,
    include_synonyms: bool,
) -> Vec<ConfigEntry> {
    CATALOG
        .iter()
        .filter(|def| keys.is_none_or(|keys| keys.iter().any(|k| k == def.name)))
        .map(|def| describe_def(def, overrides, defaults, include_synonyms))
        .collect()
}

/// DescribeConfigs for one topic config; `None` for an unknown name (Kafka leaves it
/// out of the answer).
pub fn describe_config(
    name: &str,
    overrides: &BTreeMap<String, String>,
    defaults: &BrokerTopicDefaults,
    include_synonyms: bool,
) -> Option<ConfigEntry> {
    lookup(name).map(|def| describe_def(def, overrides, defaults, include_synonyms))
}

fn describe_def(
    def: &'static TopicConfigDef,
    overrides: &BTreeMap<String, String>,
    defaults: &BrokerTopicDefaults,
    include_synonyms: bool,
) -> ConfigEntry {
    // Kafka lists every source in priority order: the topic override, then for each
    // broker synonym its static setting and its built-in default.
    let mut synonyms = Vec::new();
    if let Some(value) = overrides.get(def.name) {
        synonyms.push(ConfigSynonym {
            name: def.name.to_string(),
            value: Some(value.clone()),
            source: ConfigSource::DynamicTopicConfig,
        });
    }
    // Kafka's ConfigHelper lists the static settings of the broker synonyms, then their
    // defaults, and drops the leading ones until the first named as the primary
    // synonym: with only `log.retention.hours` set or defaulted, `retention.ms` shows
    // no broker synonym at all.
    let mut broker_synonyms = Vec::new();
    for synonym in def.synonyms {
        if let Some(value) = defaults.map.get(synonym.name) {
            broker_synonyms.push(ConfigSynonym {
                name: synonym.name.to_string(),
                value: Some(value.clone()),
                source: ConfigSource::StaticBrokerConfig,
            });
        }
    }
    for synonym in def.synonyms {
        if let Some(value) = def.synonym_default(synonym) {
            broker_synonyms.push(ConfigSynonym {
                name: synonym.name.to_string(),
                value: Some(value),
                source: ConfigSource::DefaultConfig,
            });
        }
    }
    if let Some(primary) = def.synonyms.first() {
        synonyms.extend(
            broker_synonyms
                .into_iter()
                .skip_while(|s| s.name != primary.name),
        );
    }
    let value = if let Some(value) = overrides.get(def.name) {
        value.clone()
    } else if let Some((value, _)) = defaults.resolved.get(def.name) {
        value.clone()
    } else {
        def.default.to_string()
    };
    // Kafka takes the source from the first synonym listed, DEFAULT_CONFIG if none is
    // (so a value from `log.retention.hours` alone is reported as a default).
    let source = synonyms
        .first()
        .map_or(ConfigSource::DefaultConfig, |s| s.source);
    if !include_synonyms {
        synonyms.clear();
    }
    ConfigEntry {
        name: def.name.to_string(),
        value: Some(value),
        source,
        is_default: source == ConfigSource::DefaultConfig,
        read_only: false,
        is_sensitive: false,
        config_type: def.config_type,
        documentation: Some(def.documentation),
        synonyms,
    }
}

/// CreateTopics: check the requested configs and return the overrides to store. A name
/// given twice keeps its last value.
pub fn validate_create(
    configs: &[(String, Option<String>)],
    defaults: &BrokerTopicDefaults,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let nulls: Vec<&str> = configs
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(ConfigError::NullInCreate(nulls.join(",")));
    }
    let mut overrides = BTreeMap::new();
    for (name, value) in configs {
        set(&mut overrides, name, value.as_deref().unwrap_or_default())?;
    }
    validate_combined(&overrides, defaults)?;
    Ok(overrides)
}

/// Check a complete set of overrides (e.g. read back from disk, or built by a caller)
/// and return it in canonical form, without retired configs.
pub fn validate_all(
    overrides: &BTreeMap<String, String>,
    defaults: &BrokerTopicDefaults,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut canonical = BTreeMap::new();
    for (name, value) in overrides {
        set(&mut canonical, name, value)?;
    }
    validate_combined(&canonical, defaults)?;
    Ok(canonical)
}

/// Shorthand for [`TopicConfig::resolve`].
pub fn resolve(
    overrides: &BTreeMap<String, String>,
    defaults: &BrokerTopicDefaults,
) -> TopicConfig {
    TopicConfig::resolve(overrides, defaults)
}

/// AlterConfigs (the legacy API): the given configs replace all of the topic's
/// overrides. Returns the new overrides.
pub fn replace_all(
    configs: &[(String, Option<String>)],
    defaults: &BrokerTopicDefaults,
) -> Result<BTreeMap<String, String>, ConfigError> {
    reject_duplicates(configs.iter().map(|(n, _)| n.as_str()))?;
    let nulls: Vec<&str> = configs
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(ConfigError::NullInAlter(nulls.join(", ")));
    }
    let mut overrides = BTreeMap::new();
    for (name, value) in configs {
        set(&mut overrides, name, value.as_deref().unwrap_or_default())?;
    }
    validate_combined(&overrides, defaults)?;
    Ok(overrides)
}

/// IncrementalAlterConfigs: apply `ops` in order to the topic's current overrides and
/// return the new overrides. Nothing changes unless every operation is valid.
///
/// APPEND and SUBTRACT work only on LIST configs (such as `cleanup.policy`); without an
/// override they start from the topic's effective value. APPEND adds the values not
/// already present; SUBTRACT removes every occurrence of each value.
pub fn incremental_alter(
    current: &BTreeMap<String, String>,
    ops: &[(String, AlterOp, Option<String>)],
    defaults: &BrokerTopicDefaults,
) -> Result<BTreeMap<String, String>, ConfigError> {
    reject_duplicates(ops.iter().map(|(n, _, _)| n.as_str()))?;
    let nulls: Vec<&str> = ops
        .iter()
        .filter(|(_, op, v)| *op != AlterOp::Delete && v.is_none())
        .map(|(n, _, _)| n.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(ConfigError::NullInAlter(nulls.join(", ")));
    }
    let mut overrides = current.clone();
    for (name, op, value) in ops {
        if is_retired(name) {
            tracing::debug!(config = %name, "ignoring a config Kafka 4.0 removed");
            continue;
        }
        let Some(def) = lookup(name) else {
            // Kafka validates the resulting configs, so deleting a name it does not know
            // (nothing can be set under it) succeeds and changes nothing.
            if *op == AlterOp::Delete {
                continue;
            }
            return Err(ConfigError::UnknownConfig(name.clone()));
        };
        let value = value.as_deref().unwrap_or_default();
        match op {
            AlterOp::Set => set(&mut overrides, name, value)?,
            AlterOp::Delete => {
                overrides.remove(def.name);
            }
            AlterOp::Append | AlterOp::Subtract => {
                if def.config_type != ConfigType::List {
                    return Err(ConfigError::NotAList {
                        op: *op,
                        name: name.clone(),
                    });
                }
                let base = match overrides.get(def.name) {
                    Some(v) => v.clone(),
                    None => defaults.default_for(def.name).unwrap_or_default(),
                };
                let mut items = split_list(&base);
                for item in split_list(value) {
                    if *op == AlterOp::Append {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    } else {
                        items.retain(|existing| *existing != item);
                    }
                }
                set(&mut overrides, name, &items.join(","))?;
            }
        }
    }
    validate_combined(&overrides, defaults)?;
    Ok(overrides)
}

fn split_list(value: &str) -> Vec<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split(',').map(|s| s.trim().to_string()).collect()
    }
}

fn reject_duplicates<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), ConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(ConfigError::DuplicateKey(name.to_string()));
        }
    }
    Ok(())
}

/// Validate and store one override (retired names are dropped).
fn set(
    overrides: &mut BTreeMap<String, String>,
    name: &str,
    value: &str,
) -> Result<(), ConfigError> {
    if is_retired(name) {
        tracing::debug!(config = %name, "ignoring a config Kafka 4.0 removed");
        return Ok(());
    }
    let canonical = validate(name, value)?;
    overrides.insert(name.to_string(), canonical);
    Ok(())
}

/// Checks across configs, on the topic's effective values.
fn validate_combined(
    overrides: &BTreeMap<String, String>,
    defaults: &BrokerTopicDefaults,
) -> Result<(), ConfigError> {
    let config = TopicConfig::resolve(overrides, defaults);
    if config.min_compaction_lag_ms > config.max_compaction_lag_ms {
        return Err(ConfigError::Conflict(format!(
            "conflict topic config setting {} ({}) > {} ({})",
            names::MIN_COMPACTION_LAG_MS,
            config.min_compaction_lag_ms,
            names::MAX_COMPACTION_LAG_MS,
            config.max_compaction_lag_ms
        )));
    }
    Ok(())
}

/// `cleanup.policy`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

/// `compression.type`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// Keep the producer's codec.
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    pub fn from_name(name: &str) -> Option<CompressionType> {
        Some(match name {
            "producer" => CompressionType::Producer,
            "uncompressed" => CompressionType::Uncompressed,
            "gzip" => CompressionType::Gzip,
            "snappy" => CompressionType::Snappy,
            "lz4" => CompressionType::Lz4,
            "zstd" => CompressionType::Zstd,
            _ => return None,
        })
    }

    /// The codec to store batches with; `None` means keep the producer's.
    pub fn codec(self) -> Option<Compression> {
        match self {
            CompressionType::Producer => None,
            CompressionType::Uncompressed => Some(Compression::None),
            CompressionType::Gzip => Some(Compression::Gzip),
            CompressionType::Snappy => Some(Compression::Snappy),
            CompressionType::Lz4 => Some(Compression::Lz4),
            CompressionType::Zstd => Some(Compression::Zstd),
        }
    }
}

/// `message.timestamp.type`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// A topic's effective configuration, typed. Build it with [`TopicConfig::resolve`]
/// whenever the overrides or the broker defaults change, and keep it with the topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub cleanup_policy: CleanupPolicy,
    pub compression_type: CompressionType,
    pub compression_gzip_level: i32,
    pub compression_lz4_level: i32,
    pub compression_zstd_level: i32,
    pub delete_retention_ms: i64,
    pub file_delete_delay_ms: i64,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub index_interval_bytes: i32,
    pub local_retention_bytes: i64,
    pub local_retention_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub max_message_bytes: i32,
    pub message_timestamp_after_max_ms: i64,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_type: TimestampType,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub min_insync_replicas: i32,
    pub preallocate: bool,
    pub retention_bytes: i64,
    pub retention_ms: i64,
    pub segment_bytes: i32,
    pub segment_index_bytes: i32,
    pub segment_jitter_ms: i64,
    pub segment_ms: i64,
    pub unclean_leader_election_enable: bool,
    pub write_caching: bool,
}

impl Default for TopicConfig {
    /// The configuration of a topic with no overrides on a broker with no settings.
    fn default() -> Self {
        TopicConfig::resolve(&BTreeMap::new(), &BrokerTopicDefaults::default())
    }
}

impl TopicConfig {
    /// The effective configuration from a topic's overrides and the broker defaults. A
    /// stored override that no longer validates is logged and ignored.
    pub fn resolve(overrides: &BTreeMap<String, String>, defaults: &BrokerTopicDefaults) -> Self {
        let get = |name: &str| -> Value {
            if let (Some(def), Some(raw)) = (lookup(name), overrides.get(name)) {
                match validate_value(def, raw) {
                    Ok((value, _)) => return value,
                    Err(error) => {
                        tracing::warn!(%error, "ignoring an invalid stored topic config")
                    }
                }
            }
            defaults.typed_default(name).unwrap_or_else(|| {
                debug_assert!(false, "{name} has no valid default");
                Value::Int(0)
            })
        };
        let long = |name: &str| match get(name) {
            Value::Int(n) => n,
            _ => 0,
        };
        let int = |name: &str| i32::try_from(long(name)).unwrap_or(0);
        let boolean = |name: &str| matches!(get(name), Value::Bool(true));
        let string = |name: &str| match get(name) {
            Value::Str(s) => s,
            _ => String::new(),
        };
        let policies = match get(names::CLEANUP_POLICY) {
            Value::List(items) => items,
            _ => Vec::new(),
        };
        TopicConfig {
            cleanup_policy: CleanupPolicy {
                delete: policies.iter().any(|p| p == "delete"),
                compact: policies.iter().any(|p| p == "compact"),
            },
            compression_type: CompressionType::from_name(&string(names::COMPRESSION_TYPE))
                .unwrap_or(CompressionType::Producer),
            compression_gzip_level: int(names::COMPRESSION_GZIP_LEVEL),
            compression_lz4_level: int(names::COMPRESSION_LZ4_LEVEL),
            compression_zstd_level: int(names::COMPRESSION_ZSTD_LEVEL),
            delete_retention_ms: long(names::DELETE_RETENTION_MS),
            file_delete_delay_ms: long(names::FILE_DELETE_DELAY_MS),
            flush_messages: long(names::FLUSH_MESSAGES),
            flush_ms: long(names::FLUSH_MS),
            index_interval_bytes: int(names::INDEX_INTERVAL_BYTES),
            local_retention_bytes: long(names::LOCAL_RETENTION_BYTES),
            local_retention_ms: long(names::LOCAL_RETENTION_MS),
            max_compaction_lag_ms: long(names::MAX_COMPACTION_LAG_MS),
            max_message_bytes: int(names::MAX_MESSAGE_BYTES),
            message_timestamp_after_max_ms: long(names::MESSAGE_TIMESTAMP_AFTER_MAX_MS),
            message_timestamp_before_max_ms: long(names::MESSAGE_TIMESTAMP_BEFORE_MAX_MS),
            message_timestamp_type: if string(names::MESSAGE_TIMESTAMP_TYPE) == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            min_cleanable_dirty_ratio: match get(names::MIN_CLEANABLE_DIRTY_RATIO) {
                Value::Double(d) => d,
                _ => 0.5,
            },
            min_compaction_lag_ms: long(names::MIN_COMPACTION_LAG_MS),
            min_insync_replicas: int(names::MIN_INSYNC_REPLICAS),
            preallocate: boolean(names::PREALLOCATE),
            retention_bytes: long(names::RETENTION_BYTES),
            retention_ms: long(names::RETENTION_MS),
            segment_bytes: int(names::SEGMENT_BYTES),
            segment_index_bytes: int(names::SEGMENT_INDEX_BYTES),
            segment_jitter_ms: long(names::SEGMENT_JITTER_MS),
            segment_ms: long(names::SEGMENT_MS),
            unclean_leader_election_enable: boolean(names::UNCLEAN_LEADER_ELECTION_ENABLE),
            write_caching: boolean(names::WRITE_CACHING),
        }
    }

    /// The age at which to roll the active segment: `segment.ms`, or
    /// `max.compaction.lag.ms` if that is shorter on a compacted topic, so that no record
    /// escapes compaction past its deadline (as Kafka's `LogConfig.maxSegmentMs`).
    pub fn max_segment_ms(&self) -> i64 {
        if self.cleanup_policy.compact && self.max_compaction_lag_ms > 0 {
            self.max_compaction_lag_ms.min(self.segment_ms)
        } else {
            self.segment_ms
        }
    }

    /// Whether the broker stamps records with its own time (LogAppendTime).
    pub fn log_append_time(&self) -> bool {
        self.message_timestamp_type == TimestampType::LogAppendTime
    }

    /// The time limit for delete retention: `Some(ms)` if the delete policy is on and
    /// `retention.ms` is not -1.
    pub fn retention_time_limit_ms(&self) -> Option<i64> {
        (self.cleanup_policy.delete && self.retention_ms >= 0).then_some(self.retention_ms)
    }

    /// The size limit for delete retention: `Some(bytes)` if the delete policy is on and
    /// `retention.bytes` is not negative.
    pub fn retention_size_limit_bytes(&self) -> Option<u64> {
        if self.cleanup_policy.delete {
            u64::try_from(self.retention_bytes).ok()
        } else {
            None
        }
    }

    /// The storage engine's settings for this topic's partitions. `segment.ms` becomes
    /// [`TopicConfig::max_segment_ms`]; `segment.index.bytes` is raised to the smallest
    /// index the storage engine accepts. The result always passes `LogConfig::validate`.
    pub fn log_config(&self) -> LogConfig {
        let min_index_bytes = (runnel_storage::index::TimeIndex::ENTRY_SIZE * 4) as u32;
        let defaults = LogConfig::default();
        LogConfig {
            segment_bytes: u32::try_from(self.segment_bytes).unwrap_or(defaults.segment_bytes),
            segment_ms: self.max_segment_ms().max(1),
            segment_index_bytes: u32::try_from(self.segment_index_bytes)
                .unwrap_or(defaults.segment_index_bytes)
                .max(min_index_bytes),
            index_interval_bytes: u32::try_from(self.index_interval_bytes)
                .unwrap_or(defaults.index_interval_bytes),
            max_message_bytes: u32::try_from(self.max_message_bytes)
                .unwrap_or(defaults.max_message_bytes)
                .min(runnel_storage::MAX_BATCH_BYTES_ON_DISK as u32),
            file_delete_delay_ms: u64::try_from(self.file_delete_delay_ms).unwrap_or(0),
            ..defaults
        }
    }
}

/// The storage engine's settings for a topic with these overrides.
pub fn log_config(
    overrides: &BTreeMap<String, String>,
    defaults: &BrokerTopicDefaults,
) -> LogConfig {
    TopicConfig::resolve(overrides, defaults).log_config()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn configs(pairs: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    fn op(name: &str, op: AlterOp, value: Option<&str>) -> (String, AlterOp, Option<String>) {
        (name.to_string(), op, value.map(str::to_string))
    }

    fn no_defaults() -> BrokerTopicDefaults {
        BrokerTopicDefaults::default()
    }

    #[test]
    fn catalog_is_sorted_unique_and_complete() {
        for pair in CATALOG.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} / {}",
                pair[0].name,
                pair[1].name
            );
        }
        let required = [
            "cleanup.policy",
            "compression.type",
            "delete.retention.ms",
            "file.delete.delay.ms",
            "flush.messages",
            "flush.ms",
            "follower.replication.throttled.replicas",
            "index.interval.bytes",
            "leader.replication.throttled.replicas",
            "local.retention.bytes",
            "local.retention.ms",
            "max.compaction.lag.ms",
            "max.message.bytes",
            "message.timestamp.after.max.ms",
            "message.timestamp.before.max.ms",
            "message.timestamp.type",
            "min.cleanable.dirty.ratio",
            "min.compaction.lag.ms",
            "min.insync.replicas",
            "preallocate",
            "remote.storage.enable",
            "retention.bytes",
            "retention.ms",
            "segment.bytes",
            "segment.index.bytes",
            "segment.jitter.ms",
            "segment.ms",
            "unclean.leader.election.enable",
            "write.caching",
        ];
        for name in required {
            assert!(lookup(name).is_some(), "{name} missing");
        }
        for name in RETIRED_CONFIGS {
            assert!(lookup(name).is_none(), "{name} is retired");
        }
        assert!(lookup("no.such.config").is_none());
    }

    #[test]
    fn every_default_is_valid_and_canonical() {
        for def in CATALOG {
            let canonical = validate(def.name, def.default)
                .unwrap_or_else(|e| panic!("{}: default invalid: {e}", def.name));
            assert_eq!(
                canonical, def.default,
                "{} default is not canonical",
                def.name
            );
            assert!(!def.documentation.is_empty());
            for synonym in def.synonyms {
                if let Some(value) = def.synonym_default(synonym) {
                    let broker = map(&[(synonym.name, value.as_str())]);
                    let defaults = BrokerTopicDefaults::from_broker_settings(&broker)
                        .unwrap_or_else(|e| panic!("{}: {e}", synonym.name));
                    assert_eq!(defaults.default_for(def.name).unwrap(), def.default);
                }
            }
        }
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = TopicConfig::default();
        assert_eq!(
            c.cleanup_policy,
            CleanupPolicy {
                delete: true,
                compact: false
            }
        );
        assert_eq!(c.compression_type, CompressionType::Producer);
        assert_eq!(c.compression_type.codec(), None);
        assert_eq!(c.compression_gzip_level, -1);
        assert_eq!(c.compression_lz4_level, 9);
        assert_eq!(c.compression_zstd_level, 3);
        assert_eq!(c.delete_retention_ms, 86_400_000);
        // Runnel deviates: segment files go at once (README "Differences from Kafka").
        assert_eq!(c.file_delete_delay_ms, 0);
        assert_eq!(c.flush_messages, i64::MAX);
        assert_eq!(c.flush_ms, i64::MAX);
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.local_retention_bytes, -2);
        assert_eq!(c.local_retention_ms, -2);
        assert_eq!(c.max_compaction_lag_ms, i64::MAX);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.message_timestamp_after_max_ms, 3_600_000);
        assert_eq!(c.message_timestamp_before_max_ms, i64::MAX);
        assert_eq!(c.message_timestamp_type, TimestampType::CreateTime);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(c.min_compaction_lag_ms, 0);
        assert_eq!(c.min_insync_replicas, 1);
        assert!(!c.preallocate);
        assert_eq!(c.retention_bytes, -1);
        assert_eq!(c.retention_ms, 604_800_000);
        assert_eq!(c.segment_bytes, 1_073_741_824);
        assert_eq!(c.segment_index_bytes, 10_485_760);
        assert_eq!(c.segment_jitter_ms, 0);
        assert_eq!(c.segment_ms, 604_800_000);
        assert!(!c.unclean_leader_election_enable);
        assert!(!c.write_caching);
        assert_eq!(c.retention_time_limit_ms(), Some(604_800_000));
        assert_eq!(c.retention_size_limit_bytes(), None);
        // The storage engine's defaults are the same numbers.
        assert_eq!(c.log_config(), LogConfig::default());
        assert!(!no_defaults().write_caching_default());
    }

    #[test]
    fn describe_without_overrides_reports_defaults() {
        let entries = describe(&BTreeMap::new(), &no_defaults(), None, true);
        assert_eq!(entries.len(), CATALOG.len());
        for entry in &entries {
            assert_eq!(entry.source, ConfigSource::DefaultConfig, "{}", entry.name);
            assert!(entry.is_default);
            assert!(!entry.read_only);
            assert!(!entry.is_sensitive);
            assert!(entry
                .synonyms
                .iter()
                .all(|s| s.source == ConfigSource::DefaultConfig));
        }
        let seg = describe_config("segment.bytes", &BTreeMap::new(), &no_defaults(), true).unwrap();
        assert_eq!(seg.value.as_deref(), Some("1073741824"));
        assert_eq!(seg.config_type, ConfigType::Int);
        assert_eq!(seg.config_type.code(), 3);
        assert_eq!(
            seg.synonyms,
            vec![ConfigSynonym {
                name: "log.segment.bytes".into(),
                value: Some("1073741824".into()),
                source: ConfigSource::DefaultConfig,
            }]
        );
        // Kafka drops the synonyms before the primary one (log.retention.ms, which has
        // no default): the log.retention.hours default is not listed.
        let retention =
            describe_config("retention.ms", &BTreeMap::new(), &no_defaults(), true).unwrap();
        assert_eq!(retention.config_type, ConfigType::Long);
        assert_eq!(retention.synonyms, vec![]);
        let remote = describe_config(
            "remote.storage.enable",
            &BTreeMap::new(),
            &no_defaults(),
            true,
        )
        .unwrap();
        assert_eq!(remote.value.as_deref(), Some("false"));
        assert_eq!(remote.config_type, ConfigType::Boolean);
        assert!(remote.synonyms.is_empty());
        assert_eq!(remote.source, ConfigSource::DefaultConfig);
        let policy =
            describe_config("cleanup.policy", &BTreeMap::new(), &no_defaults(), true).unwrap();
        assert_eq!(policy.config_type, ConfigType::List);
        assert_eq!(policy.config_type.code(), 7);
        let ratio = describe_config(
            "min.cleanable.dirty.ratio",
            &BTreeMap::new(),
            &no_defaults(),
            false,
        )
        .unwrap();
        assert_eq!(ratio.config_type, ConfigType::Double);
        assert_eq!(ratio.value.as_deref(), Some("0.5"));
        assert!(describe_config("nope", &BTreeMap::new(), &no_defaults(), true).is_none());
    }

    #[test]
    fn describe_reports_sources_in_priority_order() {
        let broker = map(&[
            ("log.retention.hours", "1"),
            ("log.segment.bytes", "1048576"),
            ("write.caching.default", "TRUE"),
            ("listeners", "PLAINTEXT://:9092"),
        ]);
        let defaults = BrokerTopicDefaults::from_broker_settings(&broker).unwrap();
        assert!(defaults.write_caching_default());
        assert_eq!(defaults.static_configs().len(), 3);
        let overrides = map(&[("segment.bytes", "4096")]);

        // The value comes from log.retention.hours, but Kafka lists synonyms only from
        // the primary one (log.retention.ms) on, so none, and the source is DEFAULT.
        let retention = describe_config("retention.ms", &overrides, &defaults, true).unwrap();
        assert_eq!(retention.value.as_deref(), Some("3600000"));
        assert_eq!(retention.source, ConfigSource::DefaultConfig);
        assert_eq!(retention.synonyms, vec![]);
        let with_ms = BrokerTopicDefaults::from_broker_settings(&map(&[
            ("log.retention.ms", "60000"),
            ("log.retention.hours", "1"),
        ]))
        .unwrap();
        let retention = describe_config("retention.ms", &BTreeMap::new(), &with_ms, true).unwrap();
        assert_eq!(retention.value.as_deref(), Some("60000"));
        assert_eq!(retention.source, ConfigSource::StaticBrokerConfig);
        assert_eq!(retention.source.code(), 4);
        assert!(!retention.is_default);
        assert_eq!(
            retention.synonyms,
            vec![
                ConfigSynonym {
                    name: "log.retention.ms".into(),
                    value: Some("60000".into()),
                    source: ConfigSource::StaticBrokerConfig,
                },
                ConfigSynonym {
                    name: "log.retention.hours".into(),
                    value: Some("1".into()),
                    source: ConfigSource::StaticBrokerConfig,
                },
                ConfigSynonym {
                    name: "log.retention.hours".into(),
                    value: Some("168".into()),
                    source: ConfigSource::DefaultConfig,
                },
            ]
        );

        let seg = describe_config("segment.bytes", &overrides, &defaults, true).unwrap();
        assert_eq!(seg.value.as_deref(), Some("4096"));
        assert_eq!(seg.source, ConfigSource::DynamicTopicConfig);
        assert_eq!(seg.source.code(), 1);
        assert!(!seg.is_default);
        let sources: Vec<_> = seg
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
            .collect();
        assert_eq!(
            sources,
            vec![
                (
                    "segment.bytes",
                    Some("4096"),
                    ConfigSource::DynamicTopicConfig
                ),
                (
                    "log.segment.bytes",
                    Some("1048576"),
                    ConfigSource::StaticBrokerConfig
                ),
                (
                    "log.segment.bytes",
                    Some("1073741824"),
                    ConfigSource::DefaultConfig
                ),
            ]
        );

        let caching = describe_config("write.caching", &overrides, &defaults, true).unwrap();
        assert_eq!(caching.value.as_deref(), Some("true"));
        assert_eq!(caching.source, ConfigSource::StaticBrokerConfig);
        assert_eq!(caching.synonyms[0].name, "write.caching.default");
        assert_eq!(caching.synonyms[0].value.as_deref(), Some("true"));

        // Without synonyms requested, none are listed; the source is unchanged.
        let seg = describe_config("segment.bytes", &overrides, &defaults, false).unwrap();
        assert!(seg.synonyms.is_empty());
        assert_eq!(seg.source, ConfigSource::DynamicTopicConfig);

        // Resolution matches.
        let config = TopicConfig::resolve(&overrides, &defaults);
        assert_eq!(config.retention_ms, 3_600_000);
        assert_eq!(config.segment_bytes, 4096);
        assert!(config.write_caching);
        assert_eq!(
            defaults.effective(&overrides, "segment.bytes").as_deref(),
            Some("4096")
        );
        assert_eq!(
            defaults.effective(&overrides, "retention.ms").as_deref(),
            Some("3600000")
        );
        assert_eq!(
            defaults.effective(&overrides, "flush.ms").as_deref(),
            Some(LONG_MAX)
        );
        assert_eq!(defaults.effective(&overrides, "bogus"), None);
    }

    #[test]
    fn broker_synonyms_follow_kafkas_priority_and_units() {
        let d = BrokerTopicDefaults::from_broker_settings(&map(&[
            ("log.retention.minutes", "2"),
            ("log.retention.hours", "5"),
        ]))
        .unwrap();
        assert_eq!(d.default_for("retention.ms").as_deref(), Some("120000"));
        let entry = describe_config("retention.ms", &BTreeMap::new(), &d, true).unwrap();
        let names: Vec<_> = entry
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.source))
            .collect();
        // Kafka lists nothing before the primary synonym, log.retention.ms (unset).
        assert_eq!(names, vec![]);

        let d = BrokerTopicDefaults::from_broker_settings(&map(&[
            ("log.retention.ms", "1000"),
            ("log.retention.hours", "5"),
        ]))
        .unwrap();
        assert_eq!(d.default_for("retention.ms").as_deref(), Some("1000"));

        // Any negative broker retention means no limit.
        let d = BrokerTopicDefaults::from_broker_settings(&map(&[("log.retention.hours", "-1")]))
            .unwrap();
        assert_eq!(d.default_for("retention.ms").as_deref(), Some("-1"));
        assert_eq!(
            TopicConfig::resolve(&BTreeMap::new(), &d).retention_time_limit_ms(),
            None
        );

        let d = BrokerTopicDefaults::from_broker_settings(&map(&[
            ("log.roll.hours", "2"),
            ("log.roll.jitter.hours", "1"),
            ("log.flush.scheduler.interval.ms", "500"),
            ("log.cleanup.policy", "compact, delete"),
            ("log.cleaner.min.cleanable.ratio", "0.25"),
            ("message.max.bytes", "2000"),
        ]))
        .unwrap();
        let c = TopicConfig::resolve(&BTreeMap::new(), &d);
        assert_eq!(c.segment_ms, 7_200_000);
        assert_eq!(c.segment_jitter_ms, 3_600_000);
        assert_eq!(c.flush_ms, 500);
        assert!(c.cleanup_policy.compact && c.cleanup_policy.delete);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.25);
        assert_eq!(c.max_message_bytes, 2000);
        assert_eq!(d.static_configs()["log.cleanup.policy"], "compact,delete");

        assert!(BrokerTopicDefaults::is_topic_default_key(
            "log.retention.hours"
        ));
        assert!(BrokerTopicDefaults::is_topic_default_key(
            "write.caching.default"
        ));
        assert!(!BrokerTopicDefaults::is_topic_default_key("retention.ms"));
        assert!(!BrokerTopicDefaults::is_topic_default_key("listeners"));
    }

    #[test]
    fn invalid_broker_values_name_the_broker_key() {
        for (key, value) in [
            ("log.retention.hours", "x"),
            ("log.retention.hours", "99999999999"),
            ("log.roll.hours", "0"),
            ("log.segment.bytes", "13"),
            ("log.cleanup.policy", "forever"),
            ("log.cleaner.min.cleanable.ratio", "2"),
            ("write.caching.default", "sometimes"),
        ] {
            let err = BrokerTopicDefaults::from_broker_settings(&map(&[(key, value)])).unwrap_err();
            match &err {
                ConfigError::InvalidValue { name, .. } => assert_eq!(name, key),
                other => panic!("{key}={value}: {other:?}"),
            }
            assert_eq!(err.kind(), crate::broker::ErrorKind::InvalidConfig);
        }
    }

    fn expect_invalid(name: &str, value: &str, reason: &str) {
        let err = validate_create(&configs(&[(name, value)]), &no_defaults()).unwrap_err();
        assert_eq!(
            err.kind(),
            crate::broker::ErrorKind::InvalidConfig,
            "{name}={value}"
        );
        let message = err.to_string();
        assert!(
            message.contains(reason) && message.contains(name),
            "{name}={value}: {message}"
        );
    }

    #[test]
    fn validation_rejects_bad_values_with_kafkas_messages() {
        expect_invalid("segment.bytes", "abc", "Not a number of type INT");
        expect_invalid("segment.bytes", "2147483648", "Not a number of type INT");
        expect_invalid("segment.bytes", "13", "Value must be at least 14");
        expect_invalid("segment.ms", "0", "Value must be at least 1");
        expect_invalid("retention.ms", "-2", "Value must be at least -1");
        expect_invalid("retention.ms", "1.5", "Not a number of type LONG");
        expect_invalid(
            "retention.ms",
            "9223372036854775808",
            "Not a number of type LONG",
        );
        expect_invalid("segment.index.bytes", "3", "Value must be at least 4");
        expect_invalid("index.interval.bytes", "-1", "Value must be at least 0");
        expect_invalid("min.insync.replicas", "0", "Value must be at least 1");
        expect_invalid("max.compaction.lag.ms", "0", "Value must be at least 1");
        expect_invalid("local.retention.ms", "-3", "Value must be at least -2");
        expect_invalid("max.message.bytes", "-1", "Value must be at least 0");
        expect_invalid(
            "max.message.bytes",
            "1073741825",
            "Value must be no more than 1073741824",
        );
        expect_invalid(
            "preallocate",
            "yes",
            "Expected value to be either true or false",
        );
        expect_invalid(
            "write.caching",
            "1",
            "Expected value to be either true or false",
        );
        expect_invalid(
            "min.cleanable.dirty.ratio",
            "1.5",
            "Value must be no more than 1.0",
        );
        expect_invalid(
            "min.cleanable.dirty.ratio",
            "-0.1",
            "Value must be at least 0.0",
        );
        expect_invalid(
            "min.cleanable.dirty.ratio",
            "NaN",
            "Not a number of type DOUBLE",
        );
        expect_invalid(
            "min.cleanable.dirty.ratio",
            "half",
            "Not a number of type DOUBLE",
        );
        expect_invalid(
            "cleanup.policy",
            "delete,forever",
            "String must be one of: compact, delete",
        );
        expect_invalid(
            "cleanup.policy",
            "Compact",
            "String must be one of: compact, delete",
        );
        expect_invalid(
            "compression.type",
            "brotli",
            "String must be one of: uncompressed, zstd",
        );
        expect_invalid(
            "message.timestamp.type",
            "createtime",
            "CreateTime, LogAppendTime",
        );
        expect_invalid("compression.gzip.level", "0", "between 1 and 9");
        expect_invalid(
            "compression.lz4.level",
            "18",
            "Value must be no more than 17",
        );
        expect_invalid(
            "compression.zstd.level",
            "23",
            "Value must be no more than 22",
        );
        expect_invalid(
            "leader.replication.throttled.replicas",
            "0:x",
            "literal '*'",
        );
        expect_invalid(
            "follower.replication.throttled.replicas",
            "*,0:1",
            "literal '*'",
        );

        let err =
            validate_create(&configs(&[("no.such.config", "1")]), &no_defaults()).unwrap_err();
        assert_eq!(err, ConfigError::UnknownConfig("no.such.config".into()));
        assert_eq!(err.to_string(), "Unknown topic config name: no.such.config");
        assert_eq!(err.kind(), crate::broker::ErrorKind::InvalidConfig);

        let err = validate_create(
            &configs(&[("remote.storage.enable", "true")]),
            &no_defaults(),
        )
        .unwrap_err();
        assert_eq!(err, ConfigError::RemoteStorageDisabled);
        assert_eq!(err.kind(), crate::broker::ErrorKind::InvalidConfig);

        let err = validate_create(
            &[("retention.ms".into(), None), ("segment.ms".into(), None)],
            &no_defaults(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Null value not supported for topic configs: retention.ms,segment.ms"
        );
        assert_eq!(err.kind(), crate::broker::ErrorKind::InvalidConfig);

        let err = validate_create(
            &configs(&[
                ("min.compaction.lag.ms", "1000"),
                ("max.compaction.lag.ms", "999"),
            ]),
            &no_defaults(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Conflict(_)), "{err:?}");
        assert_eq!(err.kind(), crate::broker::ErrorKind::InvalidConfig);
    }

    #[test]
    fn validation_accepts_and_normalises() {
        let overrides = validate_create(
            &configs(&[
                ("cleanup.policy", " compact , delete "),
                ("preallocate", " TRUE "),
                ("retention.ms", "+5000"),
                ("segment.bytes", "14"),
                ("min.cleanable.dirty.ratio", "0.10"),
                ("compression.type", "zstd"),
                ("compression.gzip.level", "-1"),
                ("message.timestamp.type", "LogAppendTime"),
                ("leader.replication.throttled.replicas", "0:1,1:1"),
                ("follower.replication.throttled.replicas", "*"),
                ("retention.bytes", "-7"),
                ("message.format.version", "3.0-IV1"),
                ("message.downconversion.enable", "true"),
                ("message.timestamp.difference.max.ms", "1000"),
                ("retention.ms", "6000"),
            ]),
            &no_defaults(),
        )
        .unwrap();
        assert_eq!(overrides["cleanup.policy"], "compact,delete");
        assert_eq!(overrides["preallocate"], "true");
        assert_eq!(overrides["retention.ms"], "6000", "last value wins");
        assert_eq!(overrides["segment.bytes"], "14");
        assert_eq!(overrides["min.cleanable.dirty.ratio"], "0.10");
        assert!(
            !overrides.keys().any(|k| is_retired(k)),
            "retired configs are dropped"
        );
        let c = TopicConfig::resolve(&overrides, &no_defaults());
        assert!(c.cleanup_policy.compact && c.cleanup_policy.delete);
        assert_eq!(c.compression_type.codec(), Some(Compression::Zstd));
        assert_eq!(c.message_timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.1);
        assert_eq!(c.retention_size_limit_bytes(), None);
        assert_eq!(validate("retention.ms", "+5000").unwrap(), "5000");
        assert_eq!(validate("cleanup.policy", "").unwrap(), "");
    }

    #[test]
    fn incremental_set_and_delete() {
        let current = map(&[("retention.ms", "1000"), ("segment.bytes", "2048")]);
        let new = incremental_alter(
            &current,
            &[
                op("retention.ms", AlterOp::Set, Some("2000")),
                op("segment.bytes", AlterOp::Delete, None),
                op("segment.ms", AlterOp::Delete, Some("ignored")),
                op("message.format.version", AlterOp::Set, Some("2.8")),
            ],
            &no_defaults(),
        )
        .unwrap();
        assert_eq!(new, map(&[("retention.ms", "2000")]));
    }

    #[test]
    fn incremental_append_and_subtract_on_cleanup_policy() {
        let d = no_defaults();
        // No override: APPEND starts from the effective value ("delete").
        let new = incremental_alter(
            &BTreeMap::new(),
            &[op("cleanup.policy", AlterOp::Append, Some("compact"))],
            &d,
        )
        .unwrap();
        assert_eq!(new["cleanup.policy"], "delete,compact");
        // Appending what is there changes nothing.
        let again = incremental_alter(
            &new,
            &[op("cleanup.policy", AlterOp::Append, Some("delete"))],
            &d,
        )
        .unwrap();
        assert_eq!(again["cleanup.policy"], "delete,compact");
        let sub = incremental_alter(
            &again,
            &[op("cleanup.policy", AlterOp::Subtract, Some("delete"))],
            &d,
        )
        .unwrap();
        assert_eq!(sub["cleanup.policy"], "compact");
        let c = TopicConfig::resolve(&sub, &d);
        assert!(c.cleanup_policy.compact && !c.cleanup_policy.delete);
        // Subtracting everything leaves an empty list: keep everything.
        let empty = incremental_alter(
            &sub,
            &[op("cleanup.policy", AlterOp::Subtract, Some("compact"))],
            &d,
        )
        .unwrap();
        assert_eq!(empty["cleanup.policy"], "");
        let c = TopicConfig::resolve(&empty, &d);
        assert!(!c.cleanup_policy.compact && !c.cleanup_policy.delete);
        assert_eq!(c.retention_time_limit_ms(), None);
        // Appending an invalid element is refused.
        let err = incremental_alter(
            &sub,
            &[op("cleanup.policy", AlterOp::Append, Some("archive"))],
            &d,
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::broker::ErrorKind::InvalidConfig);
        // The base is the broker's default when it sets one.
        let d =
            BrokerTopicDefaults::from_broker_settings(&map(&[("log.cleanup.policy", "compact")]))
                .unwrap();
        let new = incremental_alter(
            &BTreeMap::new(),
            &[op("cleanup.policy", AlterOp::Append, Some("delete"))],
            &d,
        )
        .unwrap();
        assert_eq!(new["cleanup.policy"], "compact,delete");
        // Throttled replica lists are LIST too.
        let new = incremental_alter(
            &BTreeMap::new(),
            &[op(
                "leader.replication.throttled.replicas",
                AlterOp::Append,
                Some("0:1"),
            )],
            &no_defaults(),
        )
        .unwrap();
        assert_eq!(new["leader.replication.throttled.replicas"], "0:1");
    }

    #[test]
    fn incremental_errors() {
        let current = map(&[("retention.ms", "1000")]);
        let d = no_defaults();
        for alter_op in [AlterOp::Append, AlterOp::Subtract] {
            let err = incremental_alter(&current, &[op("retention.ms", alter_op, Some("5"))], &d)
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("Can't {alter_op} to key retention.ms because its type is not LIST.")
            );
            assert_eq!(err.kind(), crate::broker::ErrorKind::InvalidConfig);
        }
        let err =
            incremental_alter(&current, &[op("bogus", AlterOp::Set, Some("1"))], &d).unwrap_err();
        assert_eq!(err, ConfigError::UnknownConfig("bogus".into()));
        // Deleting an unknown name is a no-op, as in Kafka.
        let same = incremental_alter(&current, &[op("bogus", AlterOp::Delete, None)], &d).unwrap();
        assert_eq!(same, current);
        let err =
            incremental_alter(&current, &[op("retention.ms", AlterOp::Set, None)], &d).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Null value not supported for : retention.ms"
        );
        assert_eq!(err.kind(), crate::broker::ErrorKind::InvalidRequest);
        let err = incremental_alter(
            &current,
            &[
                op("retention.ms", AlterOp::Set, Some("1")),
                op("retention.ms", AlterOp::Delete, None),
            ],
            &d,
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::broker::ErrorKind::InvalidRequest);
        assert_eq!(err.to_string(), "Error due to duplicate config keys");
        let err = incremental_alter(
            &current,
            &[op("retention.ms", AlterOp::Set, Some("-5"))],
            &d,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid value -5 for configuration retention.ms: Value must be at least -1"
        );
        // Cross-config check on the result, including what was already set.
        let current = map(&[("max.compaction.lag.ms", "100")]);
        let err = incremental_alter(
            &current,
            &[op("min.compaction.lag.ms", AlterOp::Set, Some("200"))],
            &d,
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Conflict(_)));
        assert_eq!(AlterOp::from_code(3), Some(AlterOp::Subtract));
        assert_eq!(AlterOp::from_code(4), None);
        assert_eq!(AlterOp::Append.code(), 2);
    }

    #[test]
    fn replace_all_replaces_every_override() {
        let d = no_defaults();
        let new = replace_all(
            &configs(&[("segment.ms", "1000"), ("preallocate", "false")]),
            &d,
        )
        .unwrap();
        assert_eq!(
            new,
            map(&[("preallocate", "false"), ("segment.ms", "1000")])
        );
        assert!(replace_all(&[], &d).unwrap().is_empty());
        let err = replace_all(&[("segment.ms".into(), None)], &d).unwrap_err();
        assert_eq!(err.kind(), crate::broker::ErrorKind::InvalidRequest);
        let err =
            replace_all(&configs(&[("segment.ms", "1"), ("segment.ms", "2")]), &d).unwrap_err();
        assert_eq!(err.kind(), crate::broker::ErrorKind::InvalidRequest);
        let err = replace_all(&configs(&[("segment.ms", "x")]), &d).unwrap_err();
        assert_eq!(err.kind(), crate::broker::ErrorKind::InvalidConfig);
    }

    #[test]
    fn log_config_mapping() {
        let d = no_defaults();
        let lc = log_config(
            &map(&[
                ("segment.bytes", "1024"),
                ("segment.ms", "1000"),
                ("segment.index.bytes", "4096"),
                ("index.interval.bytes", "0"),
                ("max.message.bytes", "100"),
            ]),
            &d,
        );
        assert_eq!(
            lc,
            LogConfig {
                segment_bytes: 1024,
                segment_ms: 1000,
                segment_index_bytes: 4096,
                index_interval_bytes: 0,
                max_message_bytes: 100,
                ..LogConfig::default()
            }
        );
        assert_eq!(
            lc.max_open_inactive_segments,
            LogConfig::default().max_open_inactive_segments
        );
        lc.validate().unwrap();

        // Kafka's smallest legal values still give a config the storage engine accepts.
        let lc = log_config(
            &map(&[
                ("segment.bytes", "14"),
                ("segment.ms", "1"),
                ("segment.index.bytes", "4"),
                ("max.message.bytes", "1073741824"),
            ]),
            &d,
        );
        lc.validate().unwrap();
        assert_eq!(
            lc.segment_index_bytes as usize,
            runnel_storage::index::TimeIndex::ENTRY_SIZE * 4
        );

        // A compacted topic rolls by max.compaction.lag.ms when that is sooner.
        let overrides = map(&[
            ("cleanup.policy", "compact"),
            ("max.compaction.lag.ms", "500"),
        ]);
        assert_eq!(log_config(&overrides, &d).segment_ms, 500);
        let overrides = map(&[
            ("cleanup.policy", "delete"),
            ("max.compaction.lag.ms", "500"),
        ]);
        assert_eq!(log_config(&overrides, &d).segment_ms, 604_800_000);

        // Broker defaults flow through.
        let d =
            BrokerTopicDefaults::from_broker_settings(&map(&[("log.segment.bytes", "1048576")]))
                .unwrap();
        assert_eq!(log_config(&BTreeMap::new(), &d).segment_bytes, 1_048_576);
    }

    #[test]
    fn invalid_stored_override_falls_back() {
        let d = BrokerTopicDefaults::from_broker_settings(&map(&[("log.segment.bytes", "2048")]))
            .unwrap();
        let c = TopicConfig::resolve(
            &map(&[("segment.bytes", "garbage"), ("unknown.key", "1")]),
            &d,
        );
        assert_eq!(c.segment_bytes, 2048);
    }

    #[test]
    fn describe_filters_by_key() {
        let keys = vec![
            "retention.ms".to_string(),
            "nope".to_string(),
            "cleanup.policy".to_string(),
        ];
        let entries = describe(&BTreeMap::new(), &no_defaults(), Some(&keys), false);
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, vec!["cleanup.policy", "retention.ms"]);
        assert!(entries.iter().all(|e| e.synonyms.is_empty()));
        assert!(entries.iter().all(|e| e.documentation.is_some()));
        assert!(describe(&BTreeMap::new(), &no_defaults(), Some(&[]), true).is_empty());
    }

    #[test]
    fn static_broker_entries() {
        let e = ConfigEntry::static_broker("log.retention.hours", "24");
        assert_eq!(e.config_type, ConfigType::Int);
        assert_eq!(e.source, ConfigSource::StaticBrokerConfig);
        assert!(e.read_only && !e.is_default);
        assert!(e.documentation.is_some());
        let e = ConfigEntry::static_broker("log.cleanup.policy", "compact");
        assert_eq!(e.config_type, ConfigType::List);
        let e = ConfigEntry::static_broker("listeners", "127.0.0.1:9092");
        assert_eq!(e.config_type, ConfigType::Unknown);
        assert_eq!(e.documentation, None);
        assert_eq!(e.value.as_deref(), Some("127.0.0.1:9092"));
    }

    #[test]
    fn validate_all_canonicalises_a_whole_map() {
        let d = no_defaults();
        let got = validate_all(
            &map(&[
                ("preallocate", "TRUE"),
                ("message.format.version", "3.0"),
                ("message.timestamp.type", "LogAppendTime"),
            ]),
            &d,
        )
        .unwrap();
        assert_eq!(
            got,
            map(&[
                ("message.timestamp.type", "LogAppendTime"),
                ("preallocate", "true")
            ])
        );
        assert!(resolve(&got, &d).log_append_time());
        assert!(!resolve(&BTreeMap::new(), &d).log_append_time());
        assert!(validate_all(&map(&[("bogus", "1")]), &d).is_err());
        let strict = BrokerTopicDefaults::from_broker_settings(&map(&[(
            "log.cleaner.max.compaction.lag.ms",
            "100",
        )]))
        .unwrap();
        let err = validate_all(&map(&[("min.compaction.lag.ms", "200")]), &strict).unwrap_err();
        assert!(matches!(err, ConfigError::Conflict(_)), "{err:?}");
    }

    #[test]
    fn config_error_codes_match_kafka() {
        assert_eq!(ConfigType::Boolean.code(), 1);
        assert_eq!(ConfigType::Password.code(), 9);
        assert_eq!(ConfigSource::DefaultConfig.code(), 5);
        assert_eq!(ConfigSource::StaticBrokerConfig.code(), 4);
        assert_eq!(ConfigSource::DynamicTopicConfig.code(), 1);
    }
}
