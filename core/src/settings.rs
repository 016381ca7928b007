//! The catalog of broker settings: every name `runnel serve` accepts, once, with Kafka's
//! name, type, default, valid values and a line of documentation. [`Settings::parse`]
//! checks what was given against it, once, at start: an unknown name or an invalid
//! value refuses to start (Kafka logs unknown names and goes on; here a typo silently
//! falling back to a default is the failure being prevented). [`BrokerConfig`],
//! [`GroupConfig`], [`MaintenanceConfig`] and the broker-level topic defaults
//! ([`BrokerTopicDefaults`]) are read from the parsed values, and DescribeConfigs on the
//! broker lists the catalog.
//!
//! The broker-level defaults of topic configs (`log.retention.hours`, `log.segment.bytes`,
//! ...) are the topic config catalog's broker synonyms (`topic_config::CATALOG`), which
//! keeps their types, defaults and validation; they appear here with `synonym_of` naming
//! the topic config.
//!
//! [`BrokerConfig`]: crate::config::BrokerConfig
//! [`GroupConfig`]: crate::group::GroupConfig
//! [`MaintenanceConfig`]: crate::log_cleaner::MaintenanceConfig

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::OnceLock;

use crate::config::ConfigError;
use crate::topic_config::{self, BrokerTopicDefaults, ConfigType};

/// What a value must be, beyond parsing as its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Valid {
    Any,
    /// An integer in this closed range (within the type's own range).
    Range(i64, i64),
    /// A number greater than 0.
    Positive,
    /// Exactly this value, for this reason.
    Only(&'static str, &'static str),
    /// A non-empty string.
    NonEmpty,
    /// `[SCHEME://]ip:port`; with `optional`, empty too (turned off).
    Listener {
        optional: bool,
    },
    /// `[SCHEME://]host:port`, or empty.
    Advertised,
    /// `listeners`: a non-empty list of `[NAME://]host:port` (an empty host binds every
    /// interface).
    Listeners,
    /// `advertised.listeners`: a list of `[NAME://]host:port`, or empty.
    AdvertisedListeners,
    /// `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
    ProtocolMap,
    /// One of these strings (case-insensitive; kept as written here).
    OneOf(&'static [&'static str]),
    /// A list whose every item is one of these (case-insensitive; kept as written here).
    EachOneOf(&'static [&'static str]),
    /// A non-empty list of server-side assignors: `uniform`, `range`, or Kafka's class
    /// names for them.
    Assignors,
    /// A broker-level default of a topic config, checked by `topic_config`.
    TopicDefault,
}

/// Whether Runnel acts on a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Read,
    /// Accepted (and checked as Kafka checks it) but ignored: Kafka configs that tools
    /// and configs written for Kafka pass, which mean nothing on a single node. Reported
    /// by DescribeConfigs only when given.
    Ignored,
}

/// One broker setting.
#[derive(Debug, Clone)]
pub struct Setting {
    /// Kafka's name (or Runnel's, for its own settings).
    pub name: &'static str,
    pub config_type: ConfigType,
    /// The built-in default, canonical; `None` where the setting has none.
    pub default: Option<Cow<'static, str>>,
    pub valid: Valid,
    pub doc: &'static str,
    /// Runnel has no dynamic broker configs, so every setting is read-only (read at
    /// start); kept per setting for when some become dynamic.
    pub read_only: bool,
    /// The topic config this setting is the broker-level default of.
    pub synonym_of: Option<&'static str>,
    pub usage: Usage,
}

struct Def {
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    valid: Valid,
    usage: Usage,
    doc: &'static str,
}

const INT_MAX: i64 = i32::MAX as i64;

/// Kafka's OAUTHBEARER validator classes: signed (the current and the older name), and
/// unsecured.
pub const OAUTHBEARER_HANDLERS: &[&str] = &[
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler",
];

/// `oauthbearer.sasl.server.callback.handler.class`: empty (chosen by the JWKS URL) or a
/// handler.
const OAUTHBEARER_HANDLER_VALUES: &[&str] = &[
    "",
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler",
];

const fn read(
    name: &'static str,
    ty: ConfigType,
    default: &'static str,
    valid: Valid,
    doc: &'static str,
) -> Def {
    Def {
        name,
        ty,
        default: Some(default),
        valid,
        usage: Usage::Read,
        doc,
    }
}

const fn int(
    name: &'static str,
    default: &'static str,
    min: i64,
    max: i64,
    doc: &'static str,
) -> Def {
    read(name, ConfigType::Int, default, Valid::Range(min, max), doc)
}

const fn long(name: &'static str, default: &'static str, min: i64, doc: &'static str) -> Def {
    read(
        name,
        ConfigType::Long,
        default,
        Valid::Range(min, i64::MAX),
        doc,
    )
}

const fn boolean(name: &'static str, default: &'static str, doc: &'static str) -> Def {
    read(name, ConfigType::Boolean, default, Valid::Any, doc)
}

/// A password-type setting without a default: never logged, never described.
const fn secret(name: &'static str, doc: &'static str) -> Def {
    Def {
        name,
        ty: ConfigType::Password,
        default: None,
        valid: Valid::Any,
        usage: Usage::Read,
        doc,
    }
}

/// Accepted and ignored (see [`Usage::Ignored`]); checked as Kafka checks it.
const fn ignored(name: &'static str, ty: ConfigType, valid: Valid, doc: &'static str) -> Def {
    Def {
        name,
        ty,
        default: None,
        valid,
        usage: Usage::Ignored,
        doc,
    }
}

/// The broker's own settings (the topic defaults come from `topic_config`), by name.
/// Ranges are Kafka's where it has one; Runnel's where noted in the text.
static BROKER: &[Def] = &[
    read(
        "advertised.listeners",
        ConfigType::String,
        "",
        Valid::AdvertisedListeners,
        "What clients are told to connect to, per listener (NAME://host:port,...); a \
         listener left out advertises its own address.",
    ),
    boolean(
        "allow.everyone.if.no.acl.found",
        "false",
        "With an authorizer: whether a resource no ACL names is open to every principal.",
    ),
    read(
        "authorizer.class.name",
        ConfigType::String,
        "",
        Valid::OneOf(&[
            "",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "kafka.security.authorizer.AclAuthorizer",
        ]),
        "The authorizer: empty (every principal may do everything, ACL APIs answer \
         SECURITY_DISABLED) or Kafka's StandardAuthorizer, which enforces ACLs.",
    ),
    boolean(
        "auto.create.topics.enable",
        "true",
        "Create a topic when a client asks for its metadata or produces to it.",
    ),
    read(
        "default.replication.factor",
        ConfigType::Int,
        "1",
        Valid::Only("1", "a single broker keeps one replica"),
        "The replication factor of auto-created topics; always 1 on one node.",
    ),
    boolean(
        "delete.topic.enable",
        "true",
        "Allow DeleteTopics; when false, deleting a topic is refused.",
    ),
    read(
        "eventhubs.amqp.listener",
        ConfigType::String,
        "127.0.0.1:5672",
        Valid::Listener { optional: true },
        "Runnel: where the Event Hubs AMQP 1.0 endpoint listens, without TLS (ip:port); empty turns it off.",
    ),
    read(
        "eventhubs.amqps.listener",
        ConfigType::String,
        "",
        Valid::Listener { optional: true },
        "Runnel: where the Event Hubs AMQP endpoint listens with TLS (ip:port; Event Hubs uses 5671), with the listener.name.amqps.ssl.* or the broker's ssl.* key; empty turns it off.",
    ),
    read(
        "eventhubs.blob.listener",
        ConfigType::String,
        "127.0.0.1:10000",
        Valid::Listener { optional: true },
        "Runnel: where the Blob Storage subset for the Event Hubs SDKs' checkpoint stores listens (ip:port), as Azurite's UseDevelopmentStorage=true expects; empty turns it off.",
    ),
    read(
        "eventhubs.config.file",
        ConfigType::String,
        "",
        Valid::Any,
        "Runnel: an Event Hubs emulator Config.json whose hubs and consumer groups are created at start (what --eventhubs-config sets).",
    ),
    read(
        "eventhubs.health.listener",
        ConfigType::String,
        "",
        Valid::Listener { optional: true },
        "Runnel: where GET /health answers as the Event Hubs emulator's does (ip:port; --eventhubs-config sets 127.0.0.1:5300); empty turns it off.",
    ),
    int(
        "fetch.max.bytes",
        "57671680",
        1024,
        INT_MAX,
        "The most record bytes one fetch response carries.",
    ),
    read(
        "group.consumer.assignors",
        ConfigType::List,
        "uniform,range",
        Valid::Assignors,
        "The server-side assignors of consumer groups (KIP-848), the first the default.",
    ),
    int(
        "group.consumer.heartbeat.interval.ms",
        "5000",
        1,
        INT_MAX,
        "How often consumer group members (KIP-848) heartbeat; below the session timeout.",
    ),
    int(
        "group.consumer.max.size",
        "2147483647",
        1,
        INT_MAX,
        "The most members a consumer group (KIP-848) may have.",
    ),
    int(
        "group.consumer.regex.refresh.interval.ms",
        "600000",
        1,
        INT_MAX,
        "How often a consumer group re-resolves its regex subscriptions at the latest.",
    ),
    int(
        "group.consumer.session.timeout.ms",
        "45000",
        1,
        INT_MAX,
        "How long a consumer group member (KIP-848) may go without a heartbeat.",
    ),
    int(
        "group.coordinator.max.groups",
        "100000",
        1,
        INT_MAX,
        "Runnel: the most groups the coordinator keeps; new ones are refused past it.",
    ),
    int(
        "group.initial.rebalance.delay.ms",
        "3000",
        0,
        INT_MAX,
        "How long a new classic group waits for more members before its first rebalance.",
    ),
    int(
        "group.max.session.timeout.ms",
        "1800000",
        1,
        INT_MAX,
        "The longest session timeout a classic group member may ask for.",
    ),
    int(
        "group.max.size",
        "1000",
        1,
        INT_MAX,
        "The most members a classic group may have (Runnel: 1000; Kafka: unlimited).",
    ),
    int(
        "group.min.session.timeout.ms",
        "6000",
        1,
        INT_MAX,
        "The shortest session timeout a classic group member may ask for.",
    ),
    int(
        "connection.failed.authentication.delay.ms",
        "100",
        0,
        INT_MAX,
        "How long a failed authentication waits before its connection closes (slows brute force).",
    ),
    read(
        "listener.security.protocol.map",
        ConfigType::String,
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        Valid::ProtocolMap,
        "The security protocol of each listener name (NAME:PROTOCOL,...).",
    ),
    read(
        "listeners",
        ConfigType::String,
        "PLAINTEXT://127.0.0.1:9092",
        Valid::Listeners,
        "The listeners, NAME://host:port,... (a bare host:port is PLAINTEXT; port 0 picks one).",
    ),
    boolean(
        "log.cleaner.enable",
        "true",
        "Run the log cleaner, which compacts topics with cleanup.policy=compact.",
    ),
    long(
        "log.cleaner.backoff.ms",
        "5000",
        1,
        "The cleaner's sleep between passes (Runnel: 5000; Kafka: 15000).",
    ),
    long(
        "log.cleaner.dedupe.buffer.size",
        "134217728",
        1024,
        "Memory for the cleaner's map of keys to their latest offsets.",
    ),
    read(
        "log.cleaner.io.max.bytes.per.second",
        ConfigType::Double,
        "104857600",
        Valid::Positive,
        "The cleaner's read and write rate limit (Runnel: 100 MiB/s; Kafka: unlimited).",
    ),
    read(
        "log.dirs",
        ConfigType::String,
        "./data",
        Valid::NonEmpty,
        "The data directory (the first, if several are listed).",
    ),
    long(
        "log.retention.check.interval.ms",
        "10000",
        1,
        "How often retention runs (Runnel: 10000; Kafka: 300000).",
    ),
    int(
        "max.connection.creation.rate",
        "2147483647",
        1,
        INT_MAX,
        "The most new connections per second across listeners; past it accepting waits (Runnel: at least 1; no per-listener value).",
    ),
    int(
        "max.connections",
        "20000",
        1,
        10_000_000,
        "The most client connections open at once; more are refused.",
    ),
    int(
        "max.connections.per.ip",
        "2147483647",
        0,
        INT_MAX,
        "The most connections open at once from one IP address; more are refused.",
    ),
    read(
        "max.connections.per.ip.overrides",
        ConfigType::String,
        "",
        Valid::Any,
        "Per-IP exceptions to max.connections.per.ip (ip:count,...).",
    ),
    int(
        "max.incremental.fetch.session.cache.slots",
        "1000",
        0,
        INT_MAX,
        "The most fetch sessions (KIP-227) the broker keeps; 0 turns them off.",
    ),
    read(
        "metrics.listener",
        ConfigType::String,
        "127.0.0.1:9644",
        Valid::Listener { optional: true },
        "Runnel: where Prometheus scrapes GET /metrics (ip:port); empty turns it off.",
    ),
    // KIP-227's name; Kafka hard-codes this value.
    long(
        "min.incremental.fetch.session.eviction.ms",
        "120000",
        0,
        "How long a fetch session must be unused before a new one may evict it.",
    ),
    int(
        "node.id",
        "1",
        0,
        INT_MAX,
        "The broker's id, as clients see it in metadata.",
    ),
    int(
        "num.partitions",
        "1",
        1,
        1_000_000,
        "The partition count of topics created without one.",
    ),
    int(
        "offset.metadata.max.bytes",
        "4096",
        0,
        INT_MAX,
        "The largest metadata string an offset commit may carry.",
    ),
    long(
        "offsets.retention.check.interval.ms",
        "600000",
        1,
        "How often expired committed offsets are removed.",
    ),
    int(
        "offsets.retention.minutes",
        "10080",
        1,
        INT_MAX,
        "How long the committed offsets of an empty group are kept.",
    ),
    int(
        "offsets.topic.num.partitions",
        "50",
        1,
        10_000,
        "The partition count of __consumer_offsets, fixed when it is created.",
    ),
    // Kafka's server.properties and test setups set it; one node keeps one replica.
    secret(
        "plain.sasl.jaas.config",
        "The PLAIN users (PlainLoginModule's user_NAME=\"password\" options); with a \
         listener.name.NAME. prefix, of one listener.",
    ),
    ignored(
        "offsets.topic.replication.factor",
        ConfigType::Short,
        Valid::Range(1, i16::MAX as i64),
        "The replication factor of __consumer_offsets. Accepted and ignored: one replica.",
    ),
    int(
        "producer.id.expiration.check.interval.ms",
        "600000",
        1,
        INT_MAX,
        "How often every partition is checked for expired producer ids.",
    ),
    int(
        "producer.id.expiration.ms",
        "86400000",
        1,
        INT_MAX,
        "How long a producer id may be idle in a partition before its state is dropped.",
    ),
    read(
        "queued.max.request.bytes",
        ConfigType::Long,
        "536870912",
        Valid::Range(1 << 20, u32::MAX as i64),
        "Bytes of requests held across connections before reads pause (Runnel: 512 MiB; \
         Kafka: unlimited).",
    ),
    int(
        "queued.max.requests.per.connection",
        "32",
        1,
        10_000,
        "Runnel: requests of one connection read ahead of their responses.",
    ),
    int(
        "quota.window.num",
        "11",
        1,
        INT_MAX,
        "The number of samples client quotas keep (the window is this many samples).",
    ),
    int(
        "quota.window.size.seconds",
        "1",
        1,
        INT_MAX,
        "The time span of each sample of client quotas, in seconds.",
    ),
    long(
        "connections.max.idle.ms",
        "600000",
        -1,
        "How long a connection may go without a byte read or a response written before \
         the broker closes it; -1 (or 0): never.",
    ),
    long(
        "connections.max.reauth.ms",
        "0",
        0,
        "How long a SASL session lasts before the client must re-authenticate on its \
         connection (KIP-368); 0: as long as the credential (an OAUTHBEARER token) lasts.",
    ),
    secret(
        "oauthbearer.sasl.jaas.config",
        "OAuthBearerLoginModule's options; without sasl.oauthbearer.jwks.endpoint.url it \
         turns on the unsecured (alg none) validator, for development, with its \
         unsecuredValidator* options.",
    ),
    read(
        "oauthbearer.sasl.server.callback.handler.class",
        ConfigType::Class,
        "",
        Valid::OneOf(OAUTHBEARER_HANDLER_VALUES),
        "Kafka's OAUTHBEARER validator class, if given: OAuthBearerValidatorCallbackHandler \
         needs sasl.oauthbearer.jwks.endpoint.url; the unsecured one must have none.",
    ),
    int(
        "sasl.oauthbearer.clock.skew.seconds",
        "30",
        0,
        INT_MAX,
        "The clock skew allowed when checking a signed token's exp, iat and nbf.",
    ),
    read(
        "sasl.oauthbearer.expected.audience",
        ConfigType::List,
        "",
        Valid::Any,
        "The audiences a signed token's aud must include one of; when empty, a token with \
         an aud is refused (as Kafka does).",
    ),
    read(
        "sasl.oauthbearer.expected.issuer",
        ConfigType::String,
        "",
        Valid::Any,
        "The issuer a signed token's iss must be; empty: not checked.",
    ),
    long(
        "sasl.oauthbearer.jwks.endpoint.refresh.ms",
        "3600000",
        1,
        "How often the JWKS file is checked for a change (and re-read when it changed).",
    ),
    read(
        "sasl.oauthbearer.jwks.endpoint.url",
        ConfigType::String,
        "",
        Valid::Any,
        "The JWKS that signed OAUTHBEARER tokens are checked against: a file:// URL \
         (Runnel makes no network calls, so http(s) is refused).",
    ),
    read(
        "sasl.oauthbearer.scope.claim.name",
        ConfigType::String,
        "scope",
        Valid::NonEmpty,
        "The claim of a signed token that holds its scope.",
    ),
    read(
        "sasl.oauthbearer.sub.claim.name",
        ConfigType::String,
        "sub",
        Valid::NonEmpty,
        "The claim of a signed token that names its principal (User:<claim>).",
    ),
    read(
        "sasl.enabled.mechanisms",
        ConfigType::List,
        "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        Valid::EachOneOf(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]),
        "The SASL mechanisms SASL listeners accept (Runnel has no GSSAPI, Kafka's default; \
         OAUTHBEARER only when listed).",
    ),
    int(
        "sasl.server.max.receive.size",
        "524288",
        1,
        INT_MAX,
        "The largest request read before SASL authentication succeeds; larger closes the connection.",
    ),
    ignored(
        "sasl.mechanism.inter.broker.protocol",
        ConfigType::String,
        Valid::Any,
        "The SASL mechanism between brokers. Accepted and ignored: one node.",
    ),
    secret(
        "scram-sha-256.sasl.jaas.config",
        "ScramLoginModule's options for SCRAM-SHA-256 (none are needed).",
    ),
    secret(
        "scram-sha-512.sasl.jaas.config",
        "ScramLoginModule's options for SCRAM-SHA-512 (none are needed).",
    ),
    secret(
        "scram.bootstrap.users",
        "Runnel: SCRAM users created at start when missing, in kafka-storage's --add-scram \
         syntax (SCRAM-SHA-256=[name=alice,password=secret];...).",
    ),
    read(
        "super.users",
        ConfigType::String,
        "",
        Valid::Any,
        "Principals the authorizer allows everything, separated by ';' (User:admin;User:ops).",
    ),
    int(
        "socket.request.max.bytes",
        "104857600",
        1024,
        INT_MAX,
        "The largest request the broker reads; a larger one closes the connection.",
    ),
    int(
        "socket.request.read.timeout.ms",
        "30000",
        1,
        INT_MAX,
        "Runnel: how long a request may take to arrive once its first byte has, plus a \
         second per 64 KiB received; a slower one closes the connection (slowloris).",
    ),
    read(
        "ssl.client.auth",
        ConfigType::String,
        "none",
        Valid::OneOf(&["required", "requested", "none"]),
        "Whether SSL listeners ask clients for a certificate: required, requested or none.",
    ),
    read(
        "ssl.enabled.protocols",
        ConfigType::List,
        "TLSv1.2,TLSv1.3",
        Valid::EachOneOf(&["TLSv1.2", "TLSv1.3"]),
        "The TLS versions SSL listeners accept.",
    ),
    secret(
        "ssl.keystore.certificate.chain",
        "The broker's certificate chain, PEM, inline (instead of ssl.keystore.location).",
    ),
    secret(
        "ssl.keystore.key",
        "The broker's private key, PEM, unencrypted, inline (instead of ssl.keystore.location).",
    ),
    read(
        "ssl.keystore.location",
        ConfigType::String,
        "",
        Valid::Any,
        "A PEM file holding the broker's private key and certificate chain.",
    ),
    read(
        "ssl.keystore.type",
        ConfigType::String,
        "PEM",
        Valid::Only("PEM", "Runnel reads PEM keystores; convert JKS or PKCS12 with openssl"),
        "The keystore format (Runnel: PEM only; Kafka's default is JKS).",
    ),
    read(
        "ssl.principal.mapping.rules",
        ConfigType::String,
        "DEFAULT",
        Valid::NonEmpty,
        "How a client certificate's subject becomes a principal (RULE:pattern/replacement/[LU],...,DEFAULT).",
    ),
    secret(
        "ssl.truststore.certificates",
        "The CA certificates client certificates are checked against, PEM, inline.",
    ),
    read(
        "ssl.truststore.location",
        ConfigType::String,
        "",
        Valid::Any,
        "A PEM file of the CA certificates client certificates are checked against.",
    ),
    read(
        "ssl.truststore.type",
        ConfigType::String,
        "PEM",
        Valid::Only("PEM", "Runnel reads PEM truststores; convert JKS or PKCS12 with openssl"),
        "The truststore format (Runnel: PEM only; Kafka's default is JKS).",
    ),
    // The transaction coordinator (KIP-98), with Kafka's names and defaults.
    int(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "10000",
        1,
        INT_MAX,
        "How often transactions past their timeout are looked for and aborted.",
    ),
    int(
        "transaction.max.timeout.ms",
        "900000",
        1,
        INT_MAX,
        "The largest transaction.timeout.ms a producer may ask for \
         (INVALID_TRANSACTION_TIMEOUT above it).",
    ),
    int(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        "3600000",
        1,
        INT_MAX,
        "How often transactional ids past transactional.id.expiration.ms are removed.",
    ),
    int(
        "transaction.state.log.num.partitions",
        "50",
        1,
        10_000,
        "The partition count of __transaction_state, fixed when it is created.",
    ),
    int(
        "transaction.state.log.segment.bytes",
        "104857600",
        1,
        INT_MAX,
        "The segment size of __transaction_state, set when it is created.",
    ),
    int(
        "transactional.id.expiration.ms",
        "604800000",
        1,
        INT_MAX,
        "How long a transactional id with no transaction in progress is kept after its \
         last use.",
    ),
    // As offsets.topic.replication.factor.
    ignored(
        "transaction.state.log.min.isr",
        ConfigType::Int,
        Valid::Range(1, INT_MAX),
        "The min ISR of __transaction_state. Accepted and ignored: one node.",
    ),
    ignored(
        "transaction.state.log.replication.factor",
        ConfigType::Short,
        Valid::Range(1, i16::MAX as i64),
        "The replication factor of __transaction_state. Accepted and ignored: one node.",
    ),
];

/// Every broker setting, sorted by name.
pub fn catalog() -> &'static [Setting] {
    static CATALOG: OnceLock<Vec<Setting>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut all: Vec<Setting> = BROKER
            .iter()
            .map(|d| Setting {
                name: d.name,
                config_type: d.ty,
                default: d.default.map(Cow::Borrowed),
                valid: d.valid,
                doc: d.doc,
                read_only: true,
                synonym_of: None,
                usage: d.usage,
            })
            .collect();
        all.extend(
            topic_config::broker_default_settings()
                .into_iter()
                .map(|d| Setting {
                    name: d.name,
                    config_type: d.config_type,
                    default: d.default.map(Cow::Owned),
                    valid: Valid::TopicDefault,
                    doc: d.documentation,
                    read_only: true,
                    synonym_of: Some(d.topic_config),
                    usage: Usage::Read,
                }),
        );
        all.sort_by(|a, b| a.name.cmp(b.name));
        all
    })
}

pub fn lookup(name: &str) -> Option<&'static Setting> {
    let all = catalog();
    all.binary_search_by(|s| s.name.cmp(name))
        .ok()
        .map(|i| &all[i])
}

/// The known name closest to an unknown one, if it is close enough to be a typo.
pub fn closest(name: &str) -> Option<&'static str> {
    let (distance, best) = catalog()
        .iter()
        .map(|s| (edit_distance(name, s.name), s.name))
        .min()?;
    (distance <= 3 && distance * 4 <= name.len()).then_some(best)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    List(Vec<String>),
    /// A password-type value: kept out of `Debug`, logs and DescribeConfigs.
    Secret(Secret),
}

/// A password-type value. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[hidden]")
    }
}

/// Settings that may also be given for one listener, as Kafka's
/// `listener.name.<listener>.<setting>` (the listener's name in lower case).
pub const LISTENER_SCOPED: &[&str] = &[
    "connection.failed.authentication.delay.ms",
    "connections.max.reauth.ms",
    "max.connections",
    "oauthbearer.sasl.jaas.config",
    "oauthbearer.sasl.server.callback.handler.class",
    "plain.sasl.jaas.config",
    "sasl.enabled.mechanisms",
    "sasl.oauthbearer.clock.skew.seconds",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.jwks.endpoint.refresh.ms",
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.scope.claim.name",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.server.max.receive.size",
    "scram-sha-256.sasl.jaas.config",
    "scram-sha-512.sasl.jaas.config",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.principal.mapping.rules",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.type",
];

/// Kafka's prefix of a listener's own settings.
const LISTENER_PREFIX: &str = "listener.name.";

/// The broker's settings, parsed and checked: every setting of the catalog that has a
/// value (given, or its default), the names given, and the topic defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<&'static str, Value>,
    /// Canonical strings by name, defaults included, as DescribeConfigs reports them.
    canonical: BTreeMap<&'static str, String>,
    given: BTreeSet<&'static str>,
    topic_defaults: BrokerTopicDefaults,
    /// `listener.name.<listener>.<setting>` values, by (listener in lower case, setting).
    listener_values: BTreeMap<(String, &'static str), Value>,
}

impl Settings {
    /// Check `given` (Kafka names → values) against the catalog and fill in defaults.
    pub fn parse(given: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
        let mut settings = Settings {
            values: BTreeMap::new(),
            canonical: BTreeMap::new(),
            given: BTreeSet::new(),
            topic_defaults: BrokerTopicDefaults::default(),
            listener_values: BTreeMap::new(),
        };
        let mut topic_defaults = BTreeMap::new();
        for (name, raw) in given {
            if let Some((listener, setting)) = listener_scoped(name) {
                let value = parse_value(setting, raw).map_err(|e| renamed(e, name))?;
                settings
                    .listener_values
                    .insert((listener.to_ascii_lowercase(), setting.name), value);
                continue;
            }
            let setting = lookup(name).ok_or_else(|| ConfigError::Unknown {
                name: name.clone(),
                suggestion: closest(name).map(str::to_string),
                origin: None,
            })?;
            settings.given.insert(setting.name);
            if setting.valid == Valid::TopicDefault {
                let converted = topic_config::convert_broker_default(name, raw)
                    .and_then(Result::ok)
                    .ok_or_else(|| {
                        invalid(
                            name,
                            raw,
                            topic_config::broker_default_expectation(name).unwrap_or_default(),
                        )
                    })?;
                settings.canonical.insert(setting.name, converted.0.clone());
                topic_defaults.insert(name.clone(), converted);
                continue;
            }
            let value = parse_value(setting, raw)?;
            if !matches!(value, Value::Secret(_)) {
                settings.canonical.insert(setting.name, canonical(&value));
            }
            settings.values.insert(setting.name, value);
        }
        for setting in catalog() {
            if settings.given.contains(setting.name) {
                continue;
            }
            let Some(default) = &setting.default else {
                continue;
            };
            settings.canonical.insert(setting.name, default.to_string());
            if setting.valid != Valid::TopicDefault {
                settings
                    .values
                    .insert(setting.name, parse_value(setting, default)?);
            }
        }
        settings.topic_defaults = BrokerTopicDefaults::from_converted(&topic_defaults);
        Ok(settings)
    }

    /// Whether `name` was given (file, environment, command line) rather than defaulted.
    pub fn is_given(&self, name: &str) -> bool {
        self.given.contains(name)
    }

    /// The canonical value of `name`: given, or its default; `None` if it has neither.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.canonical.get(name).map(String::as_str)
    }

    pub fn topic_defaults(&self) -> &BrokerTopicDefaults {
        &self.topic_defaults
    }

    fn value(&self, name: &str) -> Result<&Value, ConfigError> {
        self.values
            .get(name)
            .ok_or_else(|| invalid(name, "", "(no value: not in the settings catalog)"))
    }

    pub fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        match self.value(name)? {
            Value::Bool(b) => Ok(*b),
            other => Err(mistyped(name, other)),
        }
    }

    /// An integer setting in the type the caller keeps it in; the catalog's range keeps
    /// it within that type.
    pub fn int<T: TryFrom<i64>>(&self, name: &str) -> Result<T, ConfigError> {
        match self.value(name)? {
            Value::Int(n) => {
                T::try_from(*n).map_err(|_| invalid(name, &n.to_string(), "(out of range)"))
            }
            other => Err(mistyped(name, other)),
        }
    }

    pub fn double(&self, name: &str) -> Result<f64, ConfigError> {
        match self.value(name)? {
            Value::Double(d) => Ok(*d),
            other => Err(mistyped(name, other)),
        }
    }

    pub fn str(&self, name: &str) -> Result<&str, ConfigError> {
        match self.value(name)? {
            Value::Str(s) => Ok(s),
            other => Err(mistyped(name, other)),
        }
    }

    pub fn list(&self, name: &str) -> Result<&[String], ConfigError> {
        match self.value(name)? {
            Value::List(items) => Ok(items),
            other => Err(mistyped(name, other)),
        }
    }

    /// A password-type setting, if given.
    pub fn secret(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Secret(s)) => Some(s.expose()),
            _ => None,
        }
    }

    /// The settings as one listener sees them: its `listener.name.<listener>.` values
    /// over the broker-wide ones.
    pub fn for_listener<'a>(&'a self, listener: &str) -> ListenerSettings<'a> {
        ListenerSettings {
            settings: self,
            listener: listener.to_ascii_lowercase(),
        }
    }

    /// The listeners (lower case) that `listener.name.` settings were given for.
    pub fn prefixed_listeners(&self) -> BTreeSet<&str> {
        self.listener_values
            .keys()
            .map(|(l, _)| l.as_str())
            .collect()
    }
}

/// [`Settings::for_listener`].
pub struct ListenerSettings<'a> {
    settings: &'a Settings,
    listener: String,
}

impl ListenerSettings<'_> {
    fn value(&self, name: &'static str) -> Result<&Value, ConfigError> {
        match self
            .settings
            .listener_values
            .get(&(self.listener.clone(), name))
        {
            Some(v) => Ok(v),
            None => self.settings.value(name),
        }
    }

    pub fn str(&self, name: &'static str) -> Result<&str, ConfigError> {
        match self.value(name)? {
            Value::Str(s) => Ok(s),
            other => Err(mistyped(name, other)),
        }
    }

    pub fn list(&self, name: &'static str) -> Result<&[String], ConfigError> {
        match self.value(name)? {
            Value::List(items) => Ok(items),
            other => Err(mistyped(name, other)),
        }
    }

    pub fn int<T: TryFrom<i64>>(&self, name: &'static str) -> Result<T, ConfigError> {
        match self.value(name)? {
            Value::Int(n) => {
                T::try_from(*n).map_err(|_| invalid(name, &n.to_string(), "(out of range)"))
            }
            other => Err(mistyped(name, other)),
        }
    }

    /// A password-type setting, if given for this listener or broker-wide.
    pub fn secret(&self, name: &'static str) -> Option<&str> {
        match self.value(name) {
            Ok(Value::Secret(s)) => Some(s.expose()),
            _ => None,
        }
    }

    /// Whether `name` was given for this listener (`listener.name.<listener>.<name>`).
    pub fn is_own(&self, name: &'static str) -> bool {
        self.settings
            .listener_values
            .contains_key(&(self.listener.clone(), name))
    }

    /// Whether a (non-secret) string setting has a non-empty value.
    pub fn has(&self, name: &'static str) -> bool {
        match self.value(name) {
            Ok(Value::Str(s)) => !s.is_empty(),
            Ok(Value::Secret(_)) => true,
            _ => false,
        }
    }
}

/// `listener.name.<listener>.<setting>` for a listener-scoped setting.
fn listener_scoped(name: &str) -> Option<(&str, &'static Setting)> {
    let rest = name.strip_prefix(LISTENER_PREFIX)?;
    let (listener, setting) = rest.split_once('.')?;
    if listener.is_empty() || !LISTENER_SCOPED.contains(&setting) {
        return None;
    }
    Some((listener, lookup(setting)?))
}

/// An error about a setting, named as it was given (with its listener prefix).
fn renamed(e: ConfigError, given: &str) -> ConfigError {
    match e {
        ConfigError::Invalid {
            value,
            expected,
            origin,
            ..
        } => ConfigError::Invalid {
            name: given.to_string(),
            value,
            expected,
            origin,
        },
        other => other,
    }
}

fn invalid(name: &str, value: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        expected: expected.into(),
        origin: None,
    }
}

/// A catalog entry read as the wrong type: a bug, caught by the tests.
fn mistyped(name: &str, value: &Value) -> ConfigError {
    invalid(name, &format!("{value:?}"), "(read as another type)")
}

fn canonical(value: &Value) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Str(s) => s.clone(),
        Value::List(items) => items.join(","),
        Value::Secret(_) => "[hidden]".to_string(),
    }
}

/// What a setting accepts, in words.
pub fn expectation(setting: &Setting) -> String {
    let type_range = match setting.config_type {
        ConfigType::Short => (i16::MIN as i64, i16::MAX as i64),
        ConfigType::Int => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    };
    match setting.valid {
        Valid::TopicDefault => {
            topic_config::broker_default_expectation(setting.name).unwrap_or_default()
        }
        Valid::Range(min, max) => format!("an integer in [{min}, {max}]"),
        Valid::Positive => "a number greater than 0".to_string(),
        Valid::Only(value, why) => format!("{value} ({why})"),
        Valid::NonEmpty => "a non-empty string".to_string(),
        Valid::Listener { optional: false } => "ip:port, e.g. 127.0.0.1:9092".to_string(),
        Valid::Listener { optional: true } => {
            "ip:port, e.g. 127.0.0.1:9644, or empty to turn it off".to_string()
        }
        Valid::Advertised => "host:port, or empty for the listener's address".to_string(),
        Valid::Listeners => {
            "a list of NAME://host:port, e.g. PLAINTEXT://127.0.0.1:9092".to_string()
        }
        Valid::AdvertisedListeners => {
            "a list of NAME://host:port, or empty for the listeners' own addresses".to_string()
        }
        Valid::ProtocolMap => {
            "a list of NAME:PROTOCOL, PROTOCOL one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                .to_string()
        }
        Valid::OneOf(values) => format!("one of {}", values.join(", ")),
        Valid::EachOneOf(values) => format!("a list of {}", values.join(", ")),
        Valid::Assignors => "a comma-separated list of uniform, range".to_string(),
        Valid::Any => match setting.config_type {
            ConfigType::Boolean => "true or false".to_string(),
            ConfigType::Short | ConfigType::Int | ConfigType::Long => {
                format!("an integer in [{}, {}]", type_range.0, type_range.1)
            }
            ConfigType::Double => "a number".to_string(),
            _ => "a string".to_string(),
        },
    }
}

/// Parse and check one value of a setting that is not a topic default.
fn parse_value(setting: &Setting, raw: &str) -> Result<Value, ConfigError> {
    if setting.config_type == ConfigType::Password {
        return Ok(Value::Secret(Secret(raw.trim().to_string())));
    }
    let refuse = || invalid(setting.name, raw, expectation(setting));
    let trimmed = raw.trim();
    let value = match setting.config_type {
        ConfigType::Boolean => {
            if trimmed.eq_ignore_ascii_case("true") {
                Value::Bool(true)
            } else if trimmed.eq_ignore_ascii_case("false") {
                Value::Bool(false)
            } else {
                return Err(refuse());
            }
        }
        ConfigType::Short => Value::Int(trimmed.parse::<i16>().map_err(|_| refuse())?.into()),
        ConfigType::Int => Value::Int(trimmed.parse::<i32>().map_err(|_| refuse())?.into()),
        ConfigType::Long => Value::Int(trimmed.parse::<i64>().map_err(|_| refuse())?),
        ConfigType::Double => match trimmed.parse::<f64>() {
            Ok(d) if d.is_finite() => Value::Double(d),
            _ => return Err(refuse()),
        },
        ConfigType::List => Value::List(
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        _ => Value::Str(trimmed.to_string()),
    };
    let ok = match (&setting.valid, &value) {
        (Valid::Any | Valid::TopicDefault, _) => true,
        (Valid::Range(min, max), Value::Int(n)) => (*min..=*max).contains(n),
        (Valid::Positive, Value::Double(d)) => *d > 0.0,
        (Valid::Only(only, _), v) => canonical(v) == *only,
        (Valid::NonEmpty, Value::Str(s)) => !s.is_empty(),
        (Valid::Listener { optional }, Value::Str(s)) => {
            (*optional && s.is_empty()) || listener_addr(s).is_ok()
        }
        (Valid::Advertised, Value::Str(s)) => s.is_empty() || host_port(s).is_ok(),
        (Valid::Listeners, Value::Str(s)) => {
            !s.is_empty() && s.split(',').all(|l| parse_listener(l).is_ok())
        }
        (Valid::AdvertisedListeners, Value::Str(s)) => {
            s.is_empty() || s.split(',').all(|l| parse_advertised(l).is_ok())
        }
        (Valid::ProtocolMap, Value::Str(s)) => parse_protocol_map(s).is_ok(),
        (Valid::OneOf(values), Value::Str(s)) => {
            return match values.iter().find(|v| v.eq_ignore_ascii_case(s)) {
                Some(v) => Ok(Value::Str(v.to_string())),
                None => Err(refuse()),
            };
        }
        (Valid::EachOneOf(values), Value::List(items)) => {
            let found: Option<Vec<String>> = items
                .iter()
                .map(|i| {
                    values
                        .iter()
                        .find(|v| v.eq_ignore_ascii_case(i))
                        .map(|v| v.to_string())
                })
                .collect();
            return match found {
                Some(found) => Ok(Value::List(found)),
                None => Err(refuse()),
            };
        }
        (Valid::Assignors, Value::List(items)) => {
            let names: Option<Vec<String>> = items.iter().map(|a| assignor_name(a)).collect();
            return match names {
                Some(names) if !names.is_empty() => Ok(Value::List(names)),
                _ => Err(refuse()),
            };
        }
        // A validator that does not fit the type: a catalog bug, caught by the tests.
        _ => false,
    };
    if ok {
        Ok(value)
    } else {
        Err(refuse())
    }
}

/// The server-side assignors Runnel has (the group coordinator's names for them).
pub const ASSIGNORS: [&str; 2] = [UNIFORM, RANGE];
const UNIFORM: &str = "uniform";
const RANGE: &str = "range";

/// `uniform`/`range`, or Kafka's class name for either, as Runnel's short name.
fn assignor_name(name: &str) -> Option<String> {
    let short = name.rsplit('.').next().unwrap_or(name);
    let short = short.strip_suffix("Assignor").unwrap_or(short);
    let short = short.to_ascii_lowercase();
    (short == UNIFORM || short == RANGE).then_some(short)
}

/// One entry of `listeners`: (name, host, port). A bare `host:port` is `PLAINTEXT`, an
/// empty host every interface; the name is upper-cased, as Kafka compares them.
pub fn parse_listener(s: &str) -> Result<(String, String, u16), String> {
    let s = s.trim();
    let (name, addr) = match s.split_once("://") {
        Some((name, addr)) => (name.to_ascii_uppercase(), addr),
        None => ("PLAINTEXT".to_string(), s),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad listener name {name:?}"));
    }
    let (host, port) = addr.rsplit_once(':').ok_or("expected host:port")?;
    let port: u16 = port.parse().map_err(|_| "bad port")?;
    let host = host.trim_matches(|c| c == '[' || c == ']');
    Ok((name, host.to_string(), port))
}

/// One entry of `advertised.listeners`: as [`parse_listener`], but the host is needed.
pub fn parse_advertised(s: &str) -> Result<(String, String, u16), String> {
    let (name, host, port) = parse_listener(s)?;
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok((name, host, port))
}

/// `listener.security.protocol.map`: listener name (upper case) to security protocol.
pub fn parse_protocol_map(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| format!("{entry:?} is not NAME:PROTOCOL"))?;
        let protocol = protocol.trim().to_ascii_uppercase();
        if !SECURITY_PROTOCOLS.contains(&protocol.as_str()) {
            return Err(format!("unknown security protocol {protocol:?}"));
        }
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    if map.is_empty() {
        return Err("empty".into());
    }
    Ok(map)
}

/// Kafka's security protocols.
pub const SECURITY_PROTOCOLS: [&str; 4] = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// The first listener of a `listeners`-style value, without its `SCHEME://`.
pub fn strip_scheme(s: &str) -> &str {
    let s = s.split(',').next().unwrap_or(s).trim();
    s.rsplit_once("://").map_or(s, |(_, rest)| rest)
}

/// `[SCHEME://]ip:port` as a socket address.
pub fn listener_addr(s: &str) -> Result<SocketAddr, String> {
    strip_scheme(s).parse().map_err(|e| format!("{e}"))
}

/// `[SCHEME://]host:port` as (host without brackets, port).
pub fn host_port(s: &str) -> Result<(String, u16), String> {
    let a = strip_scheme(s);
    let (host, port) = a.rsplit_once(':').ok_or("expected host:port")?;
    let port: u16 = port.parse().map_err(|_| "bad port")?;
    let host = host.trim_matches(|c| c == '[' || c == ']');
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_are_unique_and_sorted() {
        let names: Vec<&str> = catalog().iter().map(|s| s.name).collect();
        for pair in names.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        for s in catalog() {
            assert!(std::ptr::eq(lookup(s.name).unwrap(), s));
            assert!(!s.doc.is_empty(), "{} has no documentation", s.name);
        }
    }

    #[test]
    fn every_default_parses_and_satisfies_its_own_check() {
        for s in catalog() {
            let Some(default) = &s.default else {
                assert!(
                    s.usage == Usage::Ignored
                        || s.valid == Valid::TopicDefault
                        || s.config_type == ConfigType::Password,
                    "{} is read but has no default",
                    s.name
                );
                continue;
            };
            // Given explicitly, the default is accepted and stays as it is.
            let parsed = Settings::parse(&given(&[(s.name, default)]))
                .unwrap_or_else(|e| panic!("{}: default {default:?} refused: {e}", s.name));
            assert_eq!(parsed.get(s.name), Some(default.as_ref()), "{}", s.name);
            assert!(parsed.is_given(s.name));
        }
        let defaults = Settings::parse(&BTreeMap::new()).unwrap();
        assert!(defaults.given.is_empty());
    }

    #[test]
    fn every_setting_refuses_a_value_of_the_wrong_type() {
        for s in catalog() {
            let bad = match s.config_type {
                ConfigType::String | ConfigType::List if s.valid == Valid::TopicDefault => continue,
                // Secrets are checked where they are read (a JAAS line, a PEM key).
                ConfigType::Password => continue,
                ConfigType::String => match s.valid {
                    Valid::NonEmpty => "",
                    Valid::Listener { .. }
                    | Valid::Advertised
                    | Valid::Listeners
                    | Valid::AdvertisedListeners
                    | Valid::ProtocolMap => "nohostport",
                    Valid::OneOf(_) => "sometimes",
                    _ => continue,
                },
                // Free lists (audiences) take any item.
                ConfigType::List if s.valid == Valid::Any => continue,
                ConfigType::List => "roundrobin",
                _ => "abc",
            };
            let err = Settings::parse(&given(&[(s.name, bad)])).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("invalid value {bad:?} for {}: expected ", s.name)),
                "{}: {message}",
                s.name
            );
        }
    }

    #[test]
    fn out_of_range_names_the_setting_and_the_range() {
        let err = Settings::parse(&given(&[("group.min.session.timeout.ms", "abc")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid value \"abc\" for group.min.session.timeout.ms: expected an integer in \
             [1, 2147483647]"
        );
        let err = Settings::parse(&given(&[("offsets.topic.num.partitions", "0")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid value \"0\" for offsets.topic.num.partitions: expected an integer in \
             [1, 10000]"
        );
        let err = Settings::parse(&given(&[("log.segment.bytes", "13")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid value \"13\" for log.segment.bytes: expected an integer in [14, 2147483647]"
        );
        let err = Settings::parse(&given(&[("log.roll.hours", "0")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("log.roll.hours: expected an integer in [1, "),
            "{err}"
        );
        let err = Settings::parse(&given(&[("log.cleanup.policy", "forever")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("a comma-separated list of compact, delete"),
            "{err}"
        );
        let err = Settings::parse(&given(&[("default.replication.factor", "3")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected 1 (a single broker keeps one replica)"),
            "{err}"
        );
    }

    #[test]
    fn unknown_names_refuse_with_the_closest_known_name() {
        let err = Settings::parse(&given(&[("group.min.sesion.timeout.ms", "6000")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown setting \"group.min.sesion.timeout.ms\"; did you mean \
             \"group.min.session.timeout.ms\"?"
        );
        let err = Settings::parse(&given(&[("colour", "blue")]))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "unknown setting \"colour\"");
        // Runnel's invented aliases of the classic group settings are gone.
        assert!(Settings::parse(&given(&[("group.classic.max.size", "5")])).is_err());
    }

    #[test]
    fn ignored_settings_are_accepted_but_checked() {
        let s = Settings::parse(&given(&[("offsets.topic.replication.factor", "3")])).unwrap();
        assert_eq!(s.get("offsets.topic.replication.factor"), Some("3"));
        assert!(Settings::parse(&given(&[("offsets.topic.replication.factor", "0")])).is_err());
        // Not given: no value, and not reported.
        let s = Settings::parse(&BTreeMap::new()).unwrap();
        assert_eq!(s.get("offsets.topic.replication.factor"), None);
    }

    #[test]
    fn topic_defaults_come_from_their_broker_synonyms() {
        let s = Settings::parse(&given(&[
            ("log.retention.hours", "24"),
            ("log.segment.bytes", " 1048576 "),
            ("num.partitions", "3"),
        ]))
        .unwrap();
        let d = s.topic_defaults();
        assert_eq!(d.default_for("retention.ms").unwrap(), "86400000");
        assert_eq!(d.default_for("segment.bytes").unwrap(), "1048576");
        assert_eq!(s.get("log.segment.bytes"), Some("1048576"));
        assert_eq!(s.get("log.retention.ms"), None);
        assert_eq!(s.get("log.retention.hours"), Some("24"));
        assert_eq!(
            lookup("log.retention.hours").unwrap().synonym_of,
            Some("retention.ms")
        );
    }

    #[test]
    fn values_are_canonical() {
        let s = Settings::parse(&given(&[
            ("auto.create.topics.enable", "FALSE"),
            ("max.connections", " 500 "),
            (
                "group.consumer.assignors",
                "org.apache.kafka.coordinator.group.assignor.RangeAssignor, Uniform",
            ),
        ]))
        .unwrap();
        assert_eq!(s.get("auto.create.topics.enable"), Some("false"));
        assert!(!s.bool("auto.create.topics.enable").unwrap());
        assert_eq!(s.int::<usize>("max.connections").unwrap(), 500);
        assert_eq!(s.get("group.consumer.assignors"), Some("range,uniform"));
    }

    /// README's table of broker settings lists every one of them.
    #[test]
    fn readme_lists_every_broker_setting() {
        let readme = include_str!("../../README.md");
        for s in catalog().iter().filter(|s| s.synonym_of.is_none()) {
            assert!(
                readme.contains(&format!("| `{}` |", s.name)),
                "README's settings table lacks {}",
                s.name
            );
        }
    }

    #[test]
    fn typos_are_suggested_only_when_close() {
        assert_eq!(closest("log.retention.hour"), Some("log.retention.hours"));
        assert_eq!(closest("num.partition"), Some("num.partitions"));
        assert_eq!(closest("xyz"), None);
    }
}
