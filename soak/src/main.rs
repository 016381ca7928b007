//! `runnel-soak`: the fault harness. `run` drives real clients through a real broker
//! while it injects faults, then checks the history; `check` checks a history file.
//! RELIABILITY.md has the commands and the figures.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use runnel_soak::check;
use runnel_soak::driver::{self, Options};
use runnel_soak::history;

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
    Run(Options),
    /// Check a history file written by `run`.
    Check { history: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let report = match cli.command {
        Command::Run(opts) => {
            // A previous run's data would be read back as this run's.
            if opts.dir.exists() {
                if let Err(e) = std::fs::remove_dir_all(&opts.dir) {
                    eprintln!("soak: clear {}: {e}", opts.dir.display());
                    return ExitCode::from(2);
                }
            }
            if opts.faults.is_empty() || opts.partitions < 1 {
                eprintln!("soak: give at least one fault and one partition");
                return ExitCode::from(2);
            }
            let started = std::time::Instant::now();
            match driver::run(&opts) {
                Ok(report) => {
                    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
                    let _ = std::fs::write(opts.dir.join("report.json"), json);
                    println!(
                        "soak: {} cycles in {:.0} s, seed {}",
                        opts.cycles,
                        started.elapsed().as_secs_f64(),
                        opts.seed
                    );
                    report
                }
                Err(e) => {
                    eprintln!(
                        "soak: the run failed: {e}\n(data and broker logs in {})",
                        opts.dir.display()
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
