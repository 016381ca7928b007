//! `runnel-soak`: the fault harness. `run` drives real clients through a real broker
//! while it injects faults, then checks the history; `check` checks a history file.
//! RELIABILITY.md has the commands and the figures.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use runnel_soak::check;
use runnel_soak::driver::{self, Fault, Options};
use runnel_soak::history;
use runnel_soak::workload::GroupProtocol;

#[derive(Parser)]
#[command(
    name = "runnel-soak",
    about = "Real clients under broker faults, and a checker of what they saw"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a broker, load it, inject faults for N cycles, read back and check.
    Run {
        /// The runnel binary.
        #[arg(long, default_value = "target/debug/runnel")]
        runnel: PathBuf,
        /// Where the data, the broker logs, the history and the report go.
        #[arg(long, default_value = "target/soak")]
        dir: PathBuf,
        #[arg(long, default_value_t = 10)]
        cycles: u32,
        /// Faults, taken in turn: kill, stop, storage.
        #[arg(long, value_delimiter = ',', default_value = "kill")]
        faults: Vec<Fault>,
        /// Seeds the fault times and choices (default: the clock).
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Idempotent producers (acks=all).
        #[arg(long, default_value_t = 2)]
        producers: u32,
        /// Records a second per idempotent producer.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long, default_value_t = 1)]
        txn_producers: u32,
        /// Members of the committing consumer group.
        #[arg(long, default_value_t = 3)]
        members: u32,
        /// The members' group protocol: classic, or consumer (KIP-848).
        #[arg(long, default_value = "classic", value_parser = parse_protocol)]
        group_protocol: GroupProtocol,
        #[arg(long, default_value_t = 6000)]
        session_timeout_ms: u32,
        /// A broker setting, NAME=VALUE (repeatable). `write.caching.default=true` is the
        /// control run: acks no longer wait for fsync, and the power fault must find losses.
        #[arg(long = "broker-set")]
        broker_set: Vec<String>,
        /// Load between faults: a random time between these (ms).
        #[arg(long, default_value = "1000..4000", value_parser = parse_range)]
        cycle_ms: (u64, u64),
    },
    /// Check a history file written by `run`.
    Check { history: PathBuf },
}

fn parse_protocol(s: &str) -> Result<GroupProtocol, String> {
    match s {
        "classic" => Ok(GroupProtocol::Classic),
        "consumer" => Ok(GroupProtocol::Consumer),
        _ => Err("classic or consumer".into()),
    }
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once("..").ok_or("expected MIN..MAX")?;
    let (a, b) = (
        a.parse::<u64>().map_err(|e| e.to_string())?,
        b.parse::<u64>().map_err(|e| e.to_string())?,
    );
    if a > b {
        return Err("MIN is above MAX".into());
    }
    Ok((a, b))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let report = match cli.command {
        Command::Run {
            runnel,
            dir,
            cycles,
            faults,
            seed,
            partitions,
            producers,
            rate,
            txn_producers,
            members,
            group_protocol,
            session_timeout_ms,
            cycle_ms,
            broker_set,
        } => {
            // A previous run's data would be read back as this run's.
            if dir.exists() {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    eprintln!("soak: clear {}: {e}", dir.display());
                    return ExitCode::from(2);
                }
            }
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
            let opts = Options {
                runnel,
                dir: dir.clone(),
                cycles,
                faults,
                seed,
                partitions,
                producers,
                rate,
                txn_producers,
                members,
                group_protocol,
                session_timeout_ms,
                cycle_ms,
                broker_settings: broker_set,
            };
            if opts.faults.is_empty() || opts.partitions < 1 {
                eprintln!("soak: give at least one fault and one partition");
                return ExitCode::from(2);
            }
            let started = std::time::Instant::now();
            match driver::run(&opts) {
                Ok(report) => {
                    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
                    let _ = std::fs::write(dir.join("report.json"), json);
                    println!(
                        "soak: {} cycles in {:.0} s, seed {seed}",
                        cycles,
                        started.elapsed().as_secs_f64()
                    );
                    report
                }
                Err(e) => {
                    eprintln!(
                        "soak: the run failed: {e}\n(data and broker logs in {})",
                        dir.display()
                    );
                    return ExitCode::from(2);
                }
            }
        }
        Command::Check { history } => match history::read(&history) {
            Ok(events) => check::check(&events),
            Err(e) => {
                eprintln!("soak: {}: {e}", history.display());
                return ExitCode::from(2);
            }
        },
    };
    print!("{}", report.summary());
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
