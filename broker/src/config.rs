//! Broker configuration, named as Kafka names it (`num.partitions`, `log.dirs`, ...).
//!
//! Sources, later ones winning: built-in defaults, a TOML file, `RUNNEL_*` environment
//! variables, then command-line settings. In TOML, Kafka's dotted names may be written
//! bare (`log.retention.hours = 168`): nested tables are flattened back into dotted
//! names. An environment variable is the name upper-cased with dots as underscores
//! (`RUNNEL_NUM_PARTITIONS=3`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Broker settings Runnel reads itself. Topic-level defaults (`log.retention.ms`, ...)
/// are kept in [`BrokerConfig::settings`] and resolved by `topic_config`.
pub const BROKER_SETTINGS: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("listeners", "127.0.0.1:9092"),
    ("advertised.listeners", ""),
    ("log.dirs", "./data"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("auto.create.topics.enable", "true"),
    ("delete.topic.enable", "true"),
    ("socket.request.max.bytes", "104857600"),
    ("max.connections", "20000"),
    ("queued.max.requests.per.connection", "32"),
    ("queued.max.request.bytes", "536870912"),
    ("fetch.max.bytes", "57671680"),
    ("metrics.listener", "127.0.0.1:9644"),
    ("max.incremental.fetch.session.cache.slots", "1000"),
    // KIP-227's name; Kafka hard-codes this value (120000).
    ("min.incremental.fetch.session.eviction.ms", "120000"),
    ("producer.id.expiration.ms", "86400000"),
    ("producer.id.expiration.check.interval.ms", "600000"),
];

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Every setting by its Kafka name, defaults included.
    pub settings: BTreeMap<String, String>,
    /// The settings given (file, environment, command line) rather than defaulted:
    /// DescribeConfigs reports these as STATIC_BROKER_CONFIG.
    pub explicit: BTreeSet<String>,
    pub node_id: i32,
    pub listener: String,
    /// `host:port` clients are told to connect to; empty means the bound address.
    pub advertised_listener: Option<(String, u16)>,
    pub data_dir: PathBuf,
    pub num_partitions: i32,
    pub auto_create_topics: bool,
    pub delete_topic_enable: bool,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    pub max_in_flight_per_connection: usize,
    /// Bytes of requests buffered across all connections before reads pause.
    pub queued_max_request_bytes: usize,
    pub fetch_max_bytes: usize,
    /// Fetch sessions (KIP-227) the broker keeps at most; 0 turns them off.
    pub max_incremental_fetch_session_cache_slots: usize,
    /// How long a fetch session must be unused (or, to be pushed out by a larger one,
    /// have existed) before it can be evicted.
    pub min_incremental_fetch_session_eviction_ms: u64,
    /// How long a producer id must be idle in a partition before its state there is
    /// forgotten (`producer.id.expiration.ms`).
    pub producer_id_expiration_ms: i64,
    /// How often every partition is checked for expired producer ids
    /// (`producer.id.expiration.check.interval.ms`).
    pub producer_id_expiration_check_interval_ms: u64,
    /// Where Prometheus scrapes `GET /metrics` (`metrics.listener`); `None` when the
    /// setting is empty (disabled).
    pub metrics_listener: Option<SocketAddr>,
    /// `metrics.listener` was set (not the built-in default): failing to bind it stops
    /// the start, while a taken default only costs the metrics (logged).
    pub metrics_listener_configured: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid value {value:?} for {name}: {why}")]
    Invalid {
        name: String,
        value: String,
        why: String,
    },
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig::from_settings(BTreeMap::new()).expect("built-in defaults are valid")
    }
}

impl BrokerConfig {
    /// Build from explicit settings (Kafka names), filling in defaults.
    pub fn from_settings(overrides: BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        let mut settings: BTreeMap<String, String> = BROKER_SETTINGS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let metrics_listener_configured = overrides.contains_key("metrics.listener");
        let explicit = overrides.keys().cloned().collect();
        settings.extend(overrides);
        let get = |name: &str| settings.get(name).cloned().unwrap_or_default();
        let listener = strip_scheme(&get("listeners")).to_string();
        listener
            .parse::<SocketAddr>()
            .map_err(|e| invalid("listeners", &listener, &e.to_string()))?;
        let advertised = get("advertised.listeners");
        let advertised_listener = if advertised.is_empty() {
            None
        } else {
            let a = strip_scheme(&advertised);
            let (host, port) = a
                .rsplit_once(':')
                .ok_or_else(|| invalid("advertised.listeners", a, "expected host:port"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| invalid("advertised.listeners", a, "bad port"))?;
            Some((
                host.trim_matches(|c| c == '[' || c == ']').to_string(),
                port,
            ))
        };
        let metrics = strip_scheme(&get("metrics.listener")).to_string();
        let metrics_listener = if metrics.is_empty() {
            None
        } else {
            Some(
                metrics
                    .parse::<SocketAddr>()
                    .map_err(|e| invalid("metrics.listener", &metrics, &e.to_string()))?,
            )
        };
        let data_dir = PathBuf::from(get("log.dirs").split(',').next().unwrap_or("./data").trim());
        let cfg = BrokerConfig {
            node_id: parse(&settings, "node.id")?,
            listener,
            advertised_listener,
            data_dir,
            num_partitions: parse_range(&settings, "num.partitions", 1, 1_000_000)?,
            auto_create_topics: parse(&settings, "auto.create.topics.enable")?,
            delete_topic_enable: parse(&settings, "delete.topic.enable")?,
            socket_request_max_bytes: parse_range(
                &settings,
                "socket.request.max.bytes",
                1024,
                i32::MAX as usize,
            )?,
            max_connections: parse_range(&settings, "max.connections", 1, 10_000_000)?,
            max_in_flight_per_connection: parse_range(
                &settings,
                "queued.max.requests.per.connection",
                1,
                10_000,
            )?,
            queued_max_request_bytes: parse_range(
                &settings,
                "queued.max.request.bytes",
                1024 * 1024,
                u32::MAX as usize,
            )?,
            fetch_max_bytes: parse_range(&settings, "fetch.max.bytes", 1024, i32::MAX as usize)?,
            max_incremental_fetch_session_cache_slots: parse_range(
                &settings,
                "max.incremental.fetch.session.cache.slots",
                0,
                i32::MAX as usize,
            )?,
            min_incremental_fetch_session_eviction_ms: parse_range(
                &settings,
                "min.incremental.fetch.session.eviction.ms",
                0,
                i64::MAX as u64,
            )?,
            // Kafka: INT, at least 1, for both.
            producer_id_expiration_ms: parse_range(
                &settings,
                "producer.id.expiration.ms",
                1,
                i32::MAX as i64,
            )?,
            producer_id_expiration_check_interval_ms: parse_range(
                &settings,
                "producer.id.expiration.check.interval.ms",
                1,
                i32::MAX as u64,
            )?,
            metrics_listener,
            metrics_listener_configured,
            settings,
            explicit,
        };
        let rf: i32 = parse(&cfg.settings, "default.replication.factor")?;
        if rf != 1 {
            return Err(invalid(
                "default.replication.factor",
                &rf.to_string(),
                "a single broker keeps one replica",
            ));
        }
        Ok(cfg)
    }

    /// Load: defaults, then `file` (if any), then `RUNNEL_*` env vars, then `cli`.
    pub fn load(
        file: Option<&Path>,
        cli: BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut settings = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            settings.extend(parse_toml(&text).map_err(|message| ConfigError::Parse {
                path: path.display().to_string(),
                message,
            })?);
        }
        for (key, value) in std::env::vars() {
            let Some(rest) = key.strip_prefix("RUNNEL_") else {
                continue;
            };
            if matches!(rest, "BOOTSTRAP" | "LOG" | "BIN") {
                continue;
            }
            settings.insert(rest.to_ascii_lowercase().replace('_', "."), value);
        }
        settings.extend(cli);
        BrokerConfig::from_settings(settings)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }
}

fn strip_scheme(s: &str) -> &str {
    let s = s.split(',').next().unwrap_or(s).trim();
    s.rsplit_once("://").map_or(s, |(_, rest)| rest)
}

fn invalid(name: &str, value: &str, why: &str) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        value: value.into(),
        why: why.into(),
    }
}

fn parse<T: std::str::FromStr>(
    settings: &BTreeMap<String, String>,
    name: &str,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let v = settings.get(name).map(String::as_str).unwrap_or_default();
    v.trim()
        .parse()
        .map_err(|e: T::Err| invalid(name, v, &e.to_string()))
}

fn parse_range<T>(
    settings: &BTreeMap<String, String>,
    name: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    T::Err: std::fmt::Display,
{
    let v: T = parse(settings, name)?;
    if v < min || v > max {
        return Err(invalid(
            name,
            &v.to_string(),
            &format!("must be in [{min}, {max}]"),
        ));
    }
    Ok(v)
}

/// Flatten a TOML document into dotted Kafka names.
pub fn parse_toml(text: &str) -> Result<BTreeMap<String, String>, String> {
    let value: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut out = BTreeMap::new();
    flatten("", &toml::Value::Table(value), &mut out);
    Ok(out)
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        toml::Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            out.insert(prefix.to_string(), parts.join(","));
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_config() {
        let c = BrokerConfig::default();
        assert_eq!(c.listener, "127.0.0.1:9092");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.num_partitions, 1);
        assert!(c.auto_create_topics);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.metrics_listener, Some("127.0.0.1:9644".parse().unwrap()));
        assert!(!c.metrics_listener_configured);
        assert_eq!(c.max_incremental_fetch_session_cache_slots, 1000);
        assert_eq!(c.min_incremental_fetch_session_eviction_ms, 120_000);
        assert_eq!(c.producer_id_expiration_ms, 86_400_000);
        assert_eq!(c.producer_id_expiration_check_interval_ms, 600_000);
    }

    #[test]
    fn metrics_listener_can_be_moved_or_disabled() {
        let m = BTreeMap::from([("metrics.listener".to_string(), "0.0.0.0:9999".to_string())]);
        let c = BrokerConfig::from_settings(m).unwrap();
        assert_eq!(c.metrics_listener, Some("0.0.0.0:9999".parse().unwrap()));
        assert!(c.metrics_listener_configured);
        let m = BTreeMap::from([("metrics.listener".to_string(), String::new())]);
        assert_eq!(
            BrokerConfig::from_settings(m).unwrap().metrics_listener,
            None
        );
        let m = BTreeMap::from([("metrics.listener".to_string(), "nope".to_string())]);
        assert!(BrokerConfig::from_settings(m).is_err());
    }

    #[test]
    fn toml_dotted_names_flatten() {
        let m = parse_toml("num.partitions = 3\nlog.retention.hours = 24\n\"auto.create.topics.enable\" = false\nlisteners = \"PLAINTEXT://127.0.0.1:9999\"\n").unwrap();
        assert_eq!(m["num.partitions"], "3");
        assert_eq!(m["log.retention.hours"], "24");
        let c = BrokerConfig::from_settings(m).unwrap();
        assert_eq!(c.num_partitions, 3);
        assert!(!c.auto_create_topics);
        assert_eq!(c.listener, "127.0.0.1:9999");
    }

    #[test]
    fn rejects_bad_values() {
        let m = BTreeMap::from([("num.partitions".to_string(), "0".to_string())]);
        assert!(BrokerConfig::from_settings(m).is_err());
        let m = BTreeMap::from([("advertised.listeners".to_string(), "nohostport".to_string())]);
        assert!(BrokerConfig::from_settings(m).is_err());
        let m = BTreeMap::from([(
            "max.incremental.fetch.session.cache.slots".to_string(),
            "-1".to_string(),
        )]);
        assert!(BrokerConfig::from_settings(m).is_err());
    }

    #[test]
    fn producer_id_expiration_settings() {
        let m = BTreeMap::from([
            ("producer.id.expiration.ms".to_string(), "5000".to_string()),
            (
                "producer.id.expiration.check.interval.ms".to_string(),
                "100".to_string(),
            ),
        ]);
        let c = BrokerConfig::from_settings(m).unwrap();
        assert_eq!(c.producer_id_expiration_ms, 5000);
        assert_eq!(c.producer_id_expiration_check_interval_ms, 100);
        for name in [
            "producer.id.expiration.ms",
            "producer.id.expiration.check.interval.ms",
        ] {
            for bad in ["0", "-1", "2147483648", "1h"] {
                let m = BTreeMap::from([(name.to_string(), bad.to_string())]);
                let err = BrokerConfig::from_settings(m).unwrap_err().to_string();
                assert!(err.contains(name), "{name}={bad}: {err}");
            }
        }
    }
}
