//! `runnel sas policy add|list|remove|renew`: Event Hubs shared access policies in the
//! broker's security store. It edits the store in the data directory (run it on the
//! broker's host); a running broker picks the change up within a few seconds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use runnel_security::sas::{Rights, SharedAccessPolicy};
use runnel_security::SecurityStore;

#[derive(Subcommand)]
pub enum SasCommand {
    /// Shared access policies (Send, Listen, Manage), for the namespace or one hub.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(clap::Args)]
pub struct Scope {
    /// The broker's data directory (`log.dirs`).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// A hub-level policy of this hub (topic); without it, a namespace-level policy.
    #[arg(long)]
    hub: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Key {
    Primary,
    Secondary,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Add a policy with fresh keys (or change an existing one's rights) and print its
    /// connection strings.
    Add {
        name: String,
        /// Send, Listen and/or Manage, comma-separated (Manage includes both others).
        #[arg(long)]
        rights: String,
        #[command(flatten)]
        scope: Scope,
        /// The host the connection string names (`Endpoint=sb://HOST/`); Runnel does not
        /// check it.
        #[arg(long, default_value = "127.0.0.1")]
        endpoint_host: String,
    },
    /// List the policies (without their keys).
    List {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Remove a policy: its keys stop working for new logins.
    Remove {
        name: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// Replace the primary or the secondary key (the other keeps working) and print the
    /// new connection string.
    Renew {
        name: String,
        #[arg(long, value_enum)]
        key: Key,
        #[command(flatten)]
        scope: Scope,
        #[arg(long, default_value = "127.0.0.1")]
        endpoint_host: String,
    },
}

fn open(data_dir: &std::path::Path) -> Result<SecurityStore, String> {
    if !data_dir.is_dir() {
        return Err(format!(
            "{} is not a directory; pass the broker's --data-dir",
            data_dir.display()
        ));
    }
    SecurityStore::open(data_dir).map_err(|e| e.to_string())
}

fn scope_name(p: &SharedAccessPolicy) -> String {
    match &p.hub {
        Some(hub) => format!("hub {hub}"),
        None => "namespace".to_string(),
    }
}

fn print_strings(p: &SharedAccessPolicy, host: &str) {
    println!("policy {} ({}): {}", p.name, scope_name(p), p.rights);
    println!("primary:   {}", p.connection_string(host, false));
    println!("secondary: {}", p.connection_string(host, true));
}

pub fn run(command: SasCommand) -> ExitCode {
    let SasCommand::Policy(command) = command;
    let result =
        match command {
            PolicyCommand::Add {
                name,
                rights,
                scope,
                endpoint_host,
            } => Rights::parse(&rights).and_then(|rights| {
                let store = open(&scope.data_dir)?;
                let p = store
                    .put_policy(&name, scope.hub.as_deref(), rights)
                    .map_err(|e| e.to_string())?;
                print_strings(&p, &endpoint_host);
                Ok(())
            }),
            PolicyCommand::List { data_dir } => open(&data_dir).map(|store| {
                let policies = store.shared_access_policies();
                if policies.is_empty() {
                    println!("no shared access policies");
                }
                for p in policies {
                    println!("{}\t{}\t{}", p.name, scope_name(&p), p.rights);
                }
            }),
            PolicyCommand::Remove { name, scope } => open(&scope.data_dir).and_then(|store| {
                match store.remove_policy(&name, scope.hub.as_deref()) {
                    Ok(true) => {
                        println!("removed policy {name}");
                        Ok(())
                    }
                    Ok(false) => Err(format!("no policy {name} in that scope")),
                    Err(e) => Err(e.to_string()),
                }
            }),
            PolicyCommand::Renew {
                name,
                key,
                scope,
                endpoint_host,
            } => open(&scope.data_dir).and_then(|store| {
                let secondary = matches!(key, Key::Secondary);
                match store.renew_policy_key(&name, scope.hub.as_deref(), secondary) {
                    Ok(Some(p)) => {
                        print_strings(&p, &endpoint_host);
                        Ok(())
                    }
                    Ok(None) => Err(format!("no policy {name} in that scope")),
                    Err(e) => Err(e.to_string()),
                }
            }),
        };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
