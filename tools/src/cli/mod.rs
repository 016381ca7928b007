//! The operator CLI: `runnel topics ...`, `runnel groups ...`, `runnel lag`,
//! `runnel produce`, `runnel consume`, `runnel erase`, `runnel quotas`, `runnel acls` and
//! `runnel transactions`.

mod acls;
mod consume;
mod erase;
mod groups;
mod lag;
mod park;
mod produce;
mod quotas;
mod topics;
mod transactions;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use runnel_client::{Admin, Client, ClientConfig, SecurityConfig};

pub use consume::ConsumeArgs;
pub use groups::GroupsCommand;
pub use lag::LagArgs;
pub use produce::ProduceArgs;
pub use quotas::QuotasCommand;
pub use topics::TopicsCommand;

/// Options every CLI command shares.
#[derive(clap::Args, Clone)]
pub struct GlobalArgs {
    /// Broker(s) to bootstrap from, host:port[,host:port...].
    #[arg(
        long,
        global = true,
        env = "RUNNEL_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_server: String,
    /// A Kafka client properties file, as Kafka's tools take it: security.protocol,
    /// ssl.truststore.location (PEM) or ssl.ca.location, ssl.keystore.location,
    /// sasl.mechanism, sasl.jaas.config.
    #[arg(
        long,
        global = true,
        env = "RUNNEL_COMMAND_CONFIG",
        value_name = "FILE"
    )]
    pub command_config: Option<PathBuf>,
    /// Output format: aligned tables for people, JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

impl GlobalArgs {
    /// The client settings: the bootstrap servers and, from --command-config, how to
    /// reach a secured listener. A bad file is a usage error (exit 2).
    pub fn client_config(&self) -> CliResult<ClientConfig> {
        let mut config = ClientConfig::new(&self.bootstrap_server);
        if let Some(path) = &self.command_config {
            config.connection.security = SecurityConfig::from_properties_file(path)
                .map_err(|e| CliError::Usage(format!("--command-config: {e}")))?;
        }
        Ok(config)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// The CLI commands (everything but `serve`).
#[derive(Subcommand)]
pub enum CliCommand {
    /// Manage topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Inspect and operate consumer groups: offsets, lag, deletion, parking poison
    /// records.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Consumer lag of every group (or one), with a verdict per group.
    Lag(LagArgs),
    /// Write lines of stdin (or a file) to a topic, one record per line.
    Produce(ProduceArgs),
    /// Print records of a topic.
    Consume(ConsumeArgs),
    /// Erase a key from a compacted topic with a tombstone, and check that it is gone
    /// from disk (`erase status`).
    Erase(erase::EraseCommand),
    /// Client quotas (KIP-546) by user, client id or IP: alter and describe.
    #[command(subcommand)]
    Quotas(QuotasCommand),
    /// Add, list and remove ACLs, with kafka-acls.sh's options.
    #[command(subcommand)]
    Acls(acls::AclsCommand),
    /// Inspect transactions and abort hanging ones, with kafka-transactions.sh's
    /// commands: list, describe, describe-producers, find-hanging, abort.
    #[command(subcommand)]
    Transactions(transactions::TransactionsCommand),
}

/// Why a command failed; each kind has its own exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments (exit 2).
    Usage(String),
    /// The broker or the operation failed (exit 1).
    Broker(String),
    /// The topic, group, transactional id or transaction does not exist (exit 3).
    NotFound(String),
    /// Refused because of the state of what it acts on, e.g. a group with active
    /// members (exit 4).
    Refused(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Broker(_) => 1,
            CliError::Usage(_) => 2,
            CliError::NotFound(_) => 3,
            CliError::Refused(_) => 4,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m)
            | CliError::Broker(m)
            | CliError::NotFound(m)
            | CliError::Refused(m) => f.write_str(m),
        }
    }
}

impl From<runnel_client::Error> for CliError {
    fn from(e: runnel_client::Error) -> Self {
        CliError::Broker(e.to_string())
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// Run a CLI command to completion and map the outcome to an exit code.
pub fn run(global: GlobalArgs, command: CliCommand) -> ExitCode {
    // Like other Unix tools, end quietly when stdout's reader goes away
    // (`runnel consume ... | head`) instead of panicking in println!.
    // SAFETY: setting a signal disposition to the default; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        let config = global.client_config()?;
        let client = Client::connect(config).await.map_err(|e| {
            // The broker answered but refused the login: say so, not "cannot reach".
            let what = match e {
                runnel_client::Error::Kafka { .. } => "cannot log in to",
                _ => "cannot reach",
            };
            CliError::Broker(format!(
                "{what} the broker at {}: {e}",
                global.bootstrap_server
            ))
        })?;
        let ctx = Ctx {
            admin: Admin::new(client.clone()),
            client,
            output: global.output,
        };
        match command {
            CliCommand::Topics(c) => topics::run(&ctx, c).await,
            CliCommand::Groups(c) => groups::run(&ctx, c).await,
            CliCommand::Lag(a) => lag::run(&ctx, a).await,
            CliCommand::Produce(a) => produce::run(&ctx, a).await,
            CliCommand::Consume(a) => consume::run(&ctx, a).await,
            CliCommand::Erase(c) => erase::run(&ctx, c).await,
            CliCommand::Quotas(c) => quotas::run(&ctx, c).await,
            CliCommand::Acls(c) => acls::run(&ctx, c).await,
            CliCommand::Transactions(c) => transactions::run(&ctx, c).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// What every command gets.
pub(crate) struct Ctx {
    pub client: Client,
    pub admin: Admin,
    pub output: Output,
}

impl Ctx {
    /// Print a JSON value (pretty) on stdout.
    pub fn print_json(&self, value: &serde_json::Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        );
    }
}

/// Print rows under headers with columns padded to the widest cell.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Levenshtein distance between two strings (by chars).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a plausible typo.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 2).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// "KIND X does not exist" plus a "did you mean" hint when a near name exists.
pub(crate) fn not_found<'a>(
    kind: &str,
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> CliError {
    match closest(name, candidates) {
        Some(c) => CliError::NotFound(format!("{kind} {name} does not exist; did you mean {c}?")),
        None => CliError::NotFound(format!("{kind} {name} does not exist")),
    }
}

/// Split `k=v`.
pub(crate) fn parse_kv(s: &str) -> CliResult<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(CliError::Usage(format!("expected NAME=VALUE, got {s:?}"))),
    }
}

pub(crate) use runnel_storage::now_ms;

/// A point in time: RFC 3339 (`2026-11-23T21:00:00Z`, `2026-11-23T22:00:00+01:00`) or
/// milliseconds since the epoch.
pub(crate) fn parse_time(s: &str) -> CliResult<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        if ms < 0 {
            return Err(CliError::Usage(format!("a time cannot be negative: {s}")));
        }
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            CliError::Usage(format!(
                "{s:?} is neither RFC 3339 (2026-01-31T12:00:00Z) nor epoch milliseconds: {e}"
            ))
        })
}

/// A timestamp in ms as RFC 3339 UTC with milliseconds; the number itself if out of range.
pub(crate) fn format_time(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) if ms >= 0 => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        _ => ms.to_string(),
    }
}

/// Bytes as JSON: a string when they are UTF-8, else `{"base64": "..."}`; null for
/// none.
pub(crate) fn bytes_json(b: Option<&[u8]>) -> serde_json::Value {
    use base64::Engine;
    match b {
        None => serde_json::Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => serde_json::Value::String(s.to_string()),
            Err(_) => serde_json::json!({
                "base64": base64::engine::general_purpose::STANDARD.encode(b)
            }),
        },
    }
}

/// Lower-case hex.
pub(crate) fn hex(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() * 2);
    for byte in b {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The partitions of `topic` (all, or the listed ones), checking that they exist.
pub(crate) async fn topic_partitions(
    ctx: &Ctx,
    topic: &str,
    only: &[i32],
) -> CliResult<Vec<runnel_client::TopicPartition>> {
    topics::ensure_exists(ctx, topic).await?;
    let desc = ctx
        .admin
        .describe_topics(&[topic])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Broker(format!("no metadata for topic {topic}")))?;
    let mut all: Vec<i32> = desc.partitions.iter().map(|p| p.partition).collect();
    all.sort_unstable();
    if only.is_empty() {
        return Ok(all
            .into_iter()
            .map(|p| runnel_client::TopicPartition::new(topic, p))
            .collect());
    }
    let mut out = Vec::new();
    for p in only {
        if !all.contains(p) {
            return Err(CliError::NotFound(format!(
                "partition {p} of topic {topic} does not exist ({topic} has {} partitions: 0..{})",
                all.len(),
                all.len().saturating_sub(1)
            )));
        }
        let tp = runnel_client::TopicPartition::new(topic, *p);
        if !out.contains(&tp) {
            out.push(tp);
        }
    }
    Ok(out)
}

/// `TOPIC` or `TOPIC:P[,P...]`.
pub(crate) fn parse_topic_spec(s: &str) -> CliResult<(String, Vec<i32>)> {
    match s.rsplit_once(':') {
        None => Ok((s.to_string(), Vec::new())),
        Some((t, ps)) => {
            if t.is_empty() {
                return Err(CliError::Usage(format!("no topic name in {s:?}")));
            }
            let parts = ps
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .ok()
                        .filter(|p| *p >= 0)
                        .ok_or_else(|| {
                            CliError::Usage(format!(
                                "bad partition {p:?} in {s:?}; expected TOPIC or TOPIC:P[,P...]"
                            ))
                        })
                })
                .collect::<CliResult<Vec<i32>>>()?;
            Ok((t.to_string(), parts))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_closest() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("ordrs", ["orders", "payments"]), Some("orders"));
        assert_eq!(closest("zzzzzz", ["orders", "payments"]), None);
    }

    #[test]
    fn times_and_specs() {
        assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00").unwrap(),
            1_700_000_000_500
        );
        assert!(parse_time("yesterday").is_err());
        assert_eq!(format_time(1_700_000_000_500), "2023-11-14T22:13:20.500Z");
        assert_eq!(parse_topic_spec("t").unwrap(), ("t".to_string(), vec![]));
        assert_eq!(
            parse_topic_spec("a.b:0,2").unwrap(),
            ("a.b".to_string(), vec![0, 2])
        );
        assert!(parse_topic_spec("t:x").is_err());
        assert_eq!(bytes_json(Some(b"hi")), serde_json::json!("hi"));
        assert_eq!(
            bytes_json(Some(&[0xff, 0x00])),
            serde_json::json!({"base64": "/wA="})
        );
        assert_eq!(hex(&[0xde, 0xad, 0x01]), "dead01");
    }
}
