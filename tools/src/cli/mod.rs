//! The operator CLI: `runnel topics ...` and `runnel groups ...`.

mod groups;
mod topics;

use std::fmt;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use runnel_client::{Admin, Client};

pub use groups::GroupsCommand;
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
    /// Output format: aligned tables for people, JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
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
    /// Inspect consumer groups.
    #[command(subcommand)]
    Groups(GroupsCommand),
}

/// Why a command failed; each kind has its own exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments (exit 2).
    Usage(String),
    /// The broker or the operation failed (exit 1).
    Broker(String),
    /// The topic or group does not exist (exit 3).
    NotFound(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Broker(_) => 1,
            CliError::Usage(_) => 2,
            CliError::NotFound(_) => 3,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Broker(m) | CliError::NotFound(m) => f.write_str(m),
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
        let client = Client::bootstrap(&global.bootstrap_server)
            .await
            .map_err(|e| {
                CliError::Broker(format!(
                    "cannot reach the broker at {}: {e}",
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
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
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
}
