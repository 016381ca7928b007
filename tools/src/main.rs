//! `runnel`: the broker (`runnel serve`) and the operator CLI (`runnel topics`, `runnel groups`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use runnel_broker::BrokerConfig;

mod cli;
mod perf;
mod sas;
mod self_signed;

#[derive(Parser)]
#[command(
    name = "runnel",
    version,
    about = "An event log broker that speaks the Kafka protocol"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "RUNNEL_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(flatten)]
    global: cli::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker. With no options: data under ./data, listening on 127.0.0.1:9092.
    Serve(ServeArgs),
    #[command(flatten)]
    Cli(cli::CliCommand),
    /// Load generator: produce, consume and end-to-end throughput and latency.
    #[command(subcommand)]
    Perf(perf::PerfCommand),
    /// Event Hubs shared access policies (connection strings), in the data directory.
    #[command(subcommand)]
    Sas(sas::SasCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML file of broker settings, by Kafka name (`num.partitions = 3`).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Data directory (`log.dirs`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on (`listeners`); port 0 picks a free port.
    #[arg(long)]
    listen: Option<String>,
    /// host:port clients should connect to (`advertised.listeners`).
    #[arg(long)]
    advertised_listener: Option<String>,
    /// Default partition count for new topics (`num.partitions`).
    #[arg(long)]
    num_partitions: Option<u32>,
    /// Any other setting, as NAME=VALUE with Kafka's name (unknown names are refused).
    /// Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    settings: Vec<String>,
    /// For trying TLS: add an SSL listener on 127.0.0.1:9093 (unless `listeners` has
    /// one) with a development CA and certificate made under the data directory.
    /// Clients trust DATA_DIR/tls-self-signed/ca.pem.
    #[arg(long)]
    tls_self_signed: bool,
    /// Drop-in for the Azure Event Hubs emulator: read its Config.json (namespace,
    /// hubs, partition counts, consumer groups) and serve as it does: AMQP on 5672, Kafka
    /// with SASL PLAIN (`$ConnectionString`) on 9092, GET /health on 5300, and its
    /// documented connection string (key SAS_KEY_VALUE). --listen and --set win.
    #[arg(long, value_name = "CONFIG_JSON")]
    eventhubs_config: Option<PathBuf>,
}

fn init_logging(format: LogFormat, default_level: &str) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // fe2o3-amqp logs every client disconnect as a warning or an error; the AMQP
    // endpoint logs what an operator needs itself. RUST_LOG=fe2o3_amqp=debug shows it.
    if !std::env::var("RUST_LOG")
        .unwrap_or_default()
        .contains("fe2o3")
    {
        if let Ok(quiet) = "fe2o3_amqp=off".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The broker logs what it does; the CLI keeps stderr for errors.
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        Command::Cli(_) | Command::Perf(_) | Command::Sas(_) => "warn",
    };
    init_logging(cli.log_format, default_level);
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Cli(c) => cli::run(cli.global, c),
        Command::Perf(c) => perf::run(cli.global, c),
        Command::Sas(c) => sas::run(c),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let mut cli = BTreeMap::new();
    if let Some(d) = &args.data_dir {
        cli.insert("log.dirs".to_string(), d.display().to_string());
    }
    if let Some(l) = &args.listen {
        cli.insert("listeners".to_string(), l.clone());
    }
    if let Some(a) = &args.advertised_listener {
        cli.insert("advertised.listeners".to_string(), a.clone());
    }
    if let Some(n) = args.num_partitions {
        cli.insert("num.partitions".to_string(), n.to_string());
    }
    if let Some(path) = &args.eventhubs_config {
        cli.insert(
            "eventhubs.config.file".to_string(),
            path.display().to_string(),
        );
        for (k, v) in [
            ("listeners", "SASL_PLAINTEXT://127.0.0.1:9092"),
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("eventhubs.health.listener", "127.0.0.1:5300"),
        ] {
            cli.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    for s in &args.settings {
        let Some((k, v)) = s.split_once('=') else {
            eprintln!("error: --set expects NAME=VALUE, got {s:?}");
            return ExitCode::from(2);
        };
        cli.insert(k.trim().to_string(), v.trim().to_string());
    }
    let loaded = match BrokerConfig::load(args.config.as_deref(), cli.clone()) {
        // An SSL listener named in `listeners` has no key until --tls-self-signed makes
        // one: learn the data directory without it, make the key, then load again.
        Err(_) if args.tls_self_signed => self_signed_keystore(args.config.as_deref(), &mut cli)
            .and_then(|()| {
                BrokerConfig::load(args.config.as_deref(), cli.clone()).map_err(|e| e.to_string())
            }),
        other => other.map_err(|e| e.to_string()),
    };
    let mut config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.tls_self_signed {
        match with_self_signed_tls(&config, args.config.as_deref(), cli) {
            Ok(c) => config = c,
            Err(e) => {
                eprintln!("error: --tls-self-signed: {e}");
                return ExitCode::from(2);
            }
        }
    }
    raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            let _ = tx.send(true);
        });
        let data_dir = config.data_dir.clone();
        runnel_broker::run_with(config, rx, |listening| {
            let addr = listening.addr;
            tracing::info!(%addr, data_dir = %data_dir.display(), "runnel is ready");
            // Scripts and tests wait for this line; it stays the first one.
            let mut out = std::io::stdout();
            let _ = writeln!(out, "runnel listening on {addr}");
            for (name, addr) in &listening.listeners {
                tracing::info!(listener = %name, %addr, "listening");
                let _ = writeln!(out, "runnel listener {name} on {addr}");
            }
            if let Some(metrics) = listening.metrics {
                tracing::info!(addr = %metrics, "serving metrics at /metrics");
                let _ = writeln!(out, "runnel metrics on {metrics}");
            }
            if let Some(amqp) = listening.amqp {
                tracing::info!(addr = %amqp, "serving the Event Hubs AMQP endpoint");
                let _ = writeln!(out, "runnel amqp on {amqp}");
            }
            if let Some(amqps) = listening.amqps {
                tracing::info!(addr = %amqps, "serving the Event Hubs AMQP endpoint with TLS");
                let _ = writeln!(out, "runnel amqps on {amqps}");
            }
            if let Some(blob) = listening.blob {
                tracing::info!(addr = %blob, "serving blobs for the Event Hubs checkpoint stores");
                let _ = writeln!(out, "runnel blob on {blob}");
            }
            if let Some(health) = listening.health {
                tracing::info!(addr = %health, "serving GET /health");
                let _ = writeln!(out, "runnel health on {health}");
            }
            let _ = out.flush();
        })
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the broker stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// The configuration again, with an SSL listener that uses the development certificate.
/// For `--tls-self-signed` with an SSL listener already in `listeners`: make the
/// development key under the data directory (found from the settings with a plaintext
/// listener in place of the configured ones) and give it to every TLS listener.
fn self_signed_keystore(
    file: Option<&std::path::Path>,
    cli: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    let mut probe = cli.clone();
    probe.insert("listeners".into(), "PLAINTEXT://127.0.0.1:0".into());
    probe.insert("advertised.listeners".into(), String::new());
    let probed = BrokerConfig::load(file, probe).map_err(|e| e.to_string())?;
    let made = self_signed::ensure(&probed.data_dir).map_err(|e| e.to_string())?;
    cli.insert(
        "ssl.keystore.location".into(),
        made.keystore.display().to_string(),
    );
    Ok(())
}

fn with_self_signed_tls(
    config: &BrokerConfig,
    file: Option<&std::path::Path>,
    mut cli: BTreeMap<String, String>,
) -> Result<BrokerConfig, String> {
    let made = self_signed::ensure(&config.data_dir).map_err(|e| e.to_string())?;
    let ssl = match config
        .listeners
        .iter()
        .find(|l| l.security_protocol.uses_tls())
    {
        Some(l) => l.name.clone(),
        None => {
            let listeners = config.get("listeners").unwrap_or_default();
            cli.insert(
                "listeners".to_string(),
                format!("{listeners},SSL://127.0.0.1:9093"),
            );
            "SSL".to_string()
        }
    };
    cli.insert(
        format!(
            "listener.name.{}.ssl.keystore.location",
            ssl.to_ascii_lowercase()
        ),
        made.keystore.display().to_string(),
    );
    eprintln!(
        "runnel: listener {ssl} uses a development certificate; clients trust {}",
        made.ca.display()
    );
    BrokerConfig::load(file, cli).map_err(|e| e.to_string())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Each partition keeps its active segment open; lift the soft file limit to the hard
/// one so thousands of partitions fit.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
