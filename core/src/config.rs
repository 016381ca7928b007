//! Broker configuration, named as Kafka names it (`num.partitions`, `log.dirs`, ...).
//!
//! Sources, later ones winning: built-in defaults, a TOML file, `RUNNEL_*` environment
//! variables, then command-line settings. In TOML, Kafka's dotted names may be written
//! bare (`log.retention.hours = 168`): nested tables are flattened back into dotted
//! names. An environment variable is the name upper-cased with dots as underscores
//! (`RUNNEL_NUM_PARTITIONS=3`). Every name and value is checked against the settings
//! catalog (`settings.rs`) once, here; an unknown name or a bad value is an error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::listeners::{self, ListenerConfig};
use crate::log_cleaner::MaintenanceConfig;
use crate::settings::{self, Settings};
use crate::topic_config::BrokerTopicDefaults;

/// `RUNNEL_*` variables of Runnel's tools and tests that are not broker settings.
const NOT_SETTINGS: &[&str] = &[
    "BENCH_DIR",
    "BIN",
    "BOOTSTRAP",
    "CLEANER_CRASH_AT",
    // The injected wall clock's offset file (runnel_storage::clock).
    "CLOCK_OFFSET_FILE",
    "DATA_DIR",
    // The storage fault seam's plan (runnel_storage::fault), read by the storage layer.
    "FAULTS",
    "KAFKA_CACHE",
    "KEEP_TEST_DATA",
    "LOG",
    "LOG_FORMAT",
    "PORT",
    // The storage seam's sync journal (runnel_storage::fault), for power-loss tests.
    "SYNC_JOURNAL",
];

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Every setting, checked, by its Kafka name: given ones and defaults.
    pub settings: Settings,
    pub node_id: i32,
    /// `listeners`, each with its protocol, advertised address and security settings.
    pub listeners: Vec<ListenerConfig>,
    /// `max.connections.per.ip`.
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`: per-IP exceptions.
    pub max_connections_per_ip_overrides: BTreeMap<std::net::IpAddr, usize>,
    /// `scram.bootstrap.users`, unparsed (the security store reads it).
    pub scram_bootstrap_users: Option<settings::Secret>,
    pub data_dir: PathBuf,
    pub num_partitions: i32,
    pub auto_create_topics: bool,
    pub delete_topic_enable: bool,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    pub max_in_flight_per_connection: usize,
    /// `connections.max.idle.ms`: a connection with no byte read and no response
    /// written for this long is closed; `None` (-1 or 0): never.
    pub connections_max_idle: Option<std::time::Duration>,
    /// `socket.request.read.timeout.ms`: how long a started request may take to arrive
    /// (plus a second per 64 KiB of it received).
    pub request_read_timeout: std::time::Duration,
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
    /// The Event Hubs AMQP endpoint (`eventhubs.amqp.listener`); `None` when off.
    pub amqp_listener: Option<SocketAddr>,
    /// `eventhubs.amqp.listener` was set: failing to bind it stops the start.
    pub amqp_listener_configured: bool,
    /// The AMQP endpoint with TLS (`eventhubs.amqps.listener`) and its TLS settings.
    pub amqps_listener: Option<SocketAddr>,
    pub amqps_ssl: Option<listeners::SslConfig>,
    /// The checkpoint stores' blob endpoint (`eventhubs.blob.listener`); `None` when off.
    pub blob_listener: Option<SocketAddr>,
    pub blob_listener_configured: bool,
    /// `GET /health` (`eventhubs.health.listener`); `None` when off.
    pub health_listener: Option<SocketAddr>,
    /// An Event Hubs emulator Config.json to apply at start (`eventhubs.config.file`).
    pub eventhubs_config_file: Option<PathBuf>,
    /// Retention, cleaner and producer-expiry threads' settings.
    pub maintenance: MaintenanceConfig,
    /// The broker-level defaults of topic configs (`log.retention.hours`, ...).
    pub topic_defaults: BrokerTopicDefaults,
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
    /// A name that is not in the settings catalog.
    #[error("unknown setting {name:?}{}{}", from(origin), did_you_mean(suggestion))]
    Unknown {
        name: String,
        suggestion: Option<String>,
        /// Where it came from, when not the command line.
        origin: Option<String>,
    },
    #[error(
        "invalid value {value:?} for {name}{}: expected {expected}",
        from(origin)
    )]
    Invalid {
        name: String,
        value: String,
        expected: String,
        origin: Option<String>,
    },
    /// Values that are valid alone but not together.
    #[error("{0}")]
    Conflict(String),
}

fn from(origin: &Option<String>) -> String {
    origin
        .as_ref()
        .map_or_else(String::new, |o| format!(" ({o})"))
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map_or_else(String::new, |s| format!("; did you mean {s:?}?"))
}

impl ConfigError {
    /// Say where the offending setting came from (a file, an environment variable).
    fn with_origin(mut self, origins: &BTreeMap<String, String>) -> Self {
        if let ConfigError::Unknown { name, origin, .. }
        | ConfigError::Invalid { name, origin, .. } = &mut self
        {
            *origin = origins.get(name.as_str()).cloned();
        }
        self
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig::from_settings(BTreeMap::new()).expect("built-in defaults are valid")
    }
}

impl BrokerConfig {
    /// Build from explicit settings (Kafka names), filling in defaults.
    pub fn from_settings(given: BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        let s = Settings::parse(&given)?;
        // Kafka's rule, so that a consumer group member heartbeats before its session
        // lapses.
        if s.int::<i64>("group.consumer.heartbeat.interval.ms")?
            >= s.int::<i64>("group.consumer.session.timeout.ms")?
        {
            return Err(ConfigError::Conflict(
                "group.consumer.heartbeat.interval.ms must be less than \
                 group.consumer.session.timeout.ms"
                    .to_string(),
            ));
        }
        let address = |name: &str, value: &str| {
            settings::listener_addr(value).map_err(|e| ConfigError::Invalid {
                name: name.to_string(),
                value: value.to_string(),
                expected: e,
                origin: None,
            })
        };
        let listeners = listeners::from_settings(&s)?;
        let overrides = s.str("max.connections.per.ip.overrides")?;
        let max_connections_per_ip_overrides =
            per_ip_overrides(overrides).map_err(|e| ConfigError::Invalid {
                name: "max.connections.per.ip.overrides".to_string(),
                value: overrides.to_string(),
                expected: e,
                origin: None,
            })?;
        let metrics = s.str("metrics.listener")?;
        let metrics_listener = if metrics.is_empty() {
            None
        } else {
            Some(address("metrics.listener", metrics)?)
        };
        let amqp = s.str("eventhubs.amqp.listener")?;
        let amqp_listener = if amqp.is_empty() {
            None
        } else {
            Some(address("eventhubs.amqp.listener", amqp)?)
        };
        let optional_address = |name: &str| -> Result<Option<SocketAddr>, ConfigError> {
            let v = s.str(name)?;
            if v.is_empty() {
                Ok(None)
            } else {
                Ok(Some(address(name, v)?))
            }
        };
        let blob_listener = optional_address("eventhubs.blob.listener")?;
        let amqps_listener = optional_address("eventhubs.amqps.listener")?;
        let amqps_ssl = crate::listeners::amqps_ssl(&s)?;
        let health_listener = optional_address("eventhubs.health.listener")?;
        let eventhubs_config_file = Some(s.str("eventhubs.config.file")?)
            .filter(|f| !f.is_empty())
            .map(PathBuf::from);
        let log_dirs = s.str("log.dirs")?;
        let data_dir = PathBuf::from(log_dirs.split(',').next().unwrap_or(log_dirs).trim());
        Ok(BrokerConfig {
            node_id: s.int("node.id")?,
            listeners,
            max_connections_per_ip: s.int("max.connections.per.ip")?,
            max_connections_per_ip_overrides,
            scram_bootstrap_users: s.secret("scram.bootstrap.users").map(settings::Secret::new),
            data_dir,
            num_partitions: s.int("num.partitions")?,
            auto_create_topics: s.bool("auto.create.topics.enable")?,
            delete_topic_enable: s.bool("delete.topic.enable")?,
            socket_request_max_bytes: s.int("socket.request.max.bytes")?,
            max_connections: s.int("max.connections")?,
            max_in_flight_per_connection: s.int("queued.max.requests.per.connection")?,
            connections_max_idle: u64::try_from(s.int::<i64>("connections.max.idle.ms")?)
                .ok()
                .filter(|ms| *ms > 0)
                .map(std::time::Duration::from_millis),
            request_read_timeout: std::time::Duration::from_millis(
                s.int("socket.request.read.timeout.ms")?,
            ),
            queued_max_request_bytes: s.int("queued.max.request.bytes")?,
            fetch_max_bytes: s.int("fetch.max.bytes")?,
            max_incremental_fetch_session_cache_slots: s
                .int("max.incremental.fetch.session.cache.slots")?,
            min_incremental_fetch_session_eviction_ms: s
                .int("min.incremental.fetch.session.eviction.ms")?,
            producer_id_expiration_ms: s.int("producer.id.expiration.ms")?,
            producer_id_expiration_check_interval_ms: s
                .int("producer.id.expiration.check.interval.ms")?,
            metrics_listener,
            metrics_listener_configured: s.is_given("metrics.listener"),
            amqp_listener,
            amqp_listener_configured: s.is_given("eventhubs.amqp.listener"),
            amqps_listener,
            amqps_ssl,
            blob_listener,
            blob_listener_configured: s.is_given("eventhubs.blob.listener"),
            health_listener,
            eventhubs_config_file,
            maintenance: MaintenanceConfig::from_settings(&s)?,
            topic_defaults: s.topic_defaults().clone(),
            settings: s,
        })
    }

    /// Load: defaults, then `file` (if any), then `RUNNEL_*` env vars, then `cli`.
    pub fn load(
        file: Option<&Path>,
        cli: BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::load_from(file, std::env::vars(), cli)
    }

    fn load_from(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
        cli: BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut settings = BTreeMap::new();
        // Where each setting came from, for errors; the command line is implied.
        let mut origins = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let parsed = parse_toml(&text).map_err(|message| ConfigError::Parse {
                path: path.display().to_string(),
                message,
            })?;
            for (name, value) in parsed {
                origins.insert(name.clone(), format!("in {}", path.display()));
                settings.insert(name, value);
            }
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("RUNNEL_") else {
                continue;
            };
            if NOT_SETTINGS.contains(&rest) {
                continue;
            }
            let name = rest.to_ascii_lowercase().replace('_', ".");
            origins.insert(name.clone(), format!("from {key}"));
            settings.insert(name, value);
        }
        for (name, value) in cli {
            origins.remove(&name);
            settings.insert(name, value);
        }
        BrokerConfig::from_settings(settings).map_err(|e| e.with_origin(&origins))
    }

    /// The canonical value of a setting, given or defaulted.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.settings.get(name)
    }
}

/// `ip:count,...` (Kafka also takes host names here; Runnel takes addresses).
fn per_ip_overrides(s: &str) -> Result<BTreeMap<std::net::IpAddr, usize>, String> {
    let mut out = BTreeMap::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (ip, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| format!("{entry:?} is not ip:count"))?;
        let ip: std::net::IpAddr = ip
            .trim_matches(|c| c == '[' || c == ']')
            .parse()
            .map_err(|_| format!("{ip:?} is not an IP address"))?;
        let count: usize = count
            .parse()
            .map_err(|_| format!("{count:?} is not a count"))?;
        out.insert(ip, count);
    }
    Ok(out)
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

    /// Kafka's rule, checked with the other settings, so the start is refused before the
    /// data directory is opened.
    #[test]
    fn a_heartbeat_not_below_the_session_timeout_refuses() {
        let given = [
            ("group.consumer.heartbeat.interval.ms", "6000"),
            ("group.consumer.session.timeout.ms", "6000"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let err = BrokerConfig::from_settings(given).unwrap_err().to_string();
        assert!(
            err.contains("group.consumer.heartbeat.interval.ms must be less than"),
            "{err}"
        );
    }

    #[test]
    fn defaults_need_no_config() {
        let c = BrokerConfig::default();
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].name, "PLAINTEXT");
        assert_eq!(c.listeners[0].bind, "127.0.0.1:9092");
        assert_eq!(
            c.listeners[0].security_protocol,
            crate::listeners::SecurityProtocol::Plaintext
        );
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.num_partitions, 1);
        assert!(c.auto_create_topics);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.get("num.partitions"), Some("1"));
        assert!(!c.settings.is_given("num.partitions"));
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
        assert_eq!(c.listeners[0].bind, "127.0.0.1:9999");
    }

    fn config(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_settings(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn several_listeners_with_their_own_settings() {
        use crate::listeners::{ClientAuth, KeyStore, SecurityProtocol};
        let c = config(&[
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,SASL_SSL://:9093,internal://127.0.0.1:9094",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,INTERNAL:SASL_PLAINTEXT",
            ),
            ("advertised.listeners", "SASL_SSL://broker.example:9093"),
            ("ssl.keystore.location", "/etc/runnel/broker.pem"),
            ("listener.name.sasl_ssl.ssl.client.auth", "REQUIRED"),
            (
                "listener.name.sasl_ssl.ssl.truststore.location",
                "/etc/runnel/ca.pem",
            ),
            (
                "listener.name.sasl_ssl.sasl.enabled.mechanisms",
                "SCRAM-SHA-512",
            ),
            (
                "listener.name.internal.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"b\";",
            ),
        ])
        .unwrap();
        let [plain, sasl_ssl, internal] = &c.listeners[..] else {
            panic!("{:?}", c.listeners)
        };
        assert_eq!(plain.security_protocol, SecurityProtocol::Plaintext);
        assert!(plain.ssl.is_none() && plain.sasl.is_none());
        assert_eq!(sasl_ssl.bind, "0.0.0.0:9093");
        assert_eq!(
            sasl_ssl.advertised,
            Some(("broker.example".to_string(), 9093))
        );
        let ssl = sasl_ssl.ssl.as_ref().unwrap();
        assert_eq!(ssl.client_auth, ClientAuth::Required);
        assert_eq!(
            ssl.keystore,
            KeyStore::File("/etc/runnel/broker.pem".into())
        );
        assert_eq!(
            sasl_ssl.sasl.as_ref().unwrap().enabled_mechanisms,
            ["SCRAM-SHA-512"]
        );
        assert_eq!(internal.name, "INTERNAL");
        assert_eq!(internal.security_protocol, SecurityProtocol::SaslPlaintext);
        let sasl = internal.sasl.as_ref().unwrap();
        assert_eq!(
            sasl.enabled_mechanisms,
            ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        );
        assert!(sasl.plain_jaas.as_ref().unwrap().contains("user_a"));
        // Secrets stay out of Debug output.
        assert!(!format!("{c:?}").contains("user_a"), "{c:?}");
    }

    #[test]
    fn listener_mistakes_refuse_to_start() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("listeners", "FOO://127.0.0.1:1")],
                "listener FOO has no security protocol",
            ),
            (
                &[("listeners", "PLAINTEXT://127.0.0.1:1,SSL://127.0.0.1:1")],
                "two listeners on port 1",
            ),
            (
                &[("listeners", "SSL://127.0.0.1:1")],
                "uses TLS but has no key",
            ),
            (
                &[("advertised.listeners", "SSL://h:1")],
                "names SSL, which is not in listeners",
            ),
            (
                &[("listener.name.ssl.ssl.client.auth", "required")],
                "listeners has no SSL listener",
            ),
            (
                &[
                    ("listeners", "SSL://127.0.0.1:1"),
                    ("ssl.keystore.location", "/k.pem"),
                    ("ssl.client.auth", "required"),
                ],
                "no truststore",
            ),
            (
                &[("sasl.enabled.mechanisms", "GSSAPI")],
                "invalid value \"GSSAPI\" for sasl.enabled.mechanisms",
            ),
            (
                &[("listener.name.plaintext.ssl.client.auth", "sometimes")],
                "for listener.name.plaintext.ssl.client.auth",
            ),
        ];
        for (given, want) in cases {
            let err = config(given).unwrap_err().to_string();
            assert!(err.contains(want), "{given:?}: {err}");
        }
    }

    #[test]
    fn a_bare_advertised_address_is_the_first_listeners() {
        let c = config(&[("advertised.listeners", "proxy:1234")]).unwrap();
        assert_eq!(c.listeners[0].advertised, Some(("proxy".to_string(), 1234)));
    }

    #[test]
    fn secrets_are_not_shown_in_errors_or_debug() {
        let c = config(&[(
            "scram.bootstrap.users",
            "SCRAM-SHA-256=[name=a,password=hunter2]",
        )])
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.get("scram.bootstrap.users"), None);
        assert!(c
            .scram_bootstrap_users
            .unwrap()
            .expose()
            .contains("hunter2"));
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

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn environment_variables_are_settings_but_for_runnels_own() {
        let c = BrokerConfig::load_from(
            None,
            env(&[
                ("RUNNEL_NUM_PARTITIONS", "3"),
                ("RUNNEL_LOG_RETENTION_HOURS", "24"),
                ("RUNNEL_BIN", "/x/runnel"),
                ("RUNNEL_LOG_FORMAT", "json"),
                ("RUNNEL_CLEANER_CRASH_AT", "swap-committed"),
                ("HOME", "/root"),
            ]),
            BTreeMap::from([("num.partitions".to_string(), "4".to_string())]),
        )
        .unwrap();
        // The command line wins over the environment.
        assert_eq!(c.num_partitions, 4);
        assert_eq!(
            c.topic_defaults.default_for("retention.ms").unwrap(),
            "86400000"
        );
        let err =
            BrokerConfig::load_from(None, env(&[("RUNNEL_NUM_PARTITION", "3")]), BTreeMap::new())
                .unwrap_err()
                .to_string();
        assert_eq!(
            err,
            "unknown setting \"num.partition\" (from RUNNEL_NUM_PARTITION); did you mean \
             \"num.partitions\"?"
        );
        let err = BrokerConfig::load_from(
            None,
            env(&[("RUNNEL_MAX_CONNECTIONS", "many")]),
            BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "invalid value \"many\" for max.connections (from RUNNEL_MAX_CONNECTIONS): \
             expected an integer in [1, 10000000]"
        );
    }

    #[test]
    fn a_bad_setting_in_the_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runnel.toml");
        std::fs::write(&path, "[group.min.session]\ntimeout.ms = \"soon\"\n").unwrap();
        let err = BrokerConfig::load_from(Some(&path), env(&[]), BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "invalid value \"soon\" for group.min.session.timeout.ms (in {}): expected an \
                 integer in [1, 2147483647]",
                path.display()
            )
        );
        std::fs::write(&path, "log.retention.hour = 24\n").unwrap();
        let err = BrokerConfig::load_from(Some(&path), env(&[]), BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("unknown setting \"log.retention.hour\" (in "),
            "{err}"
        );
        assert!(
            err.ends_with("did you mean \"log.retention.hours\"?"),
            "{err}"
        );
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
