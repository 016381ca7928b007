//! The Runnel broker, assembled: the core (`runnel-core`), the Kafka front end
//! (`runnel-kafka`) on its listener, maintenance, and the metrics exporter on its own
//! listener. [`run`] is what `runnel serve` runs.
//!
//! - [`metrics`]: what a scrape computes from the core's and the front end's counters,
//!   and the `GET /metrics` listener.

pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use runnel_core::log_cleaner::LogMaintenance;
use runnel_core::Broker;
use runnel_kafka::{KafkaBroker, Server};

pub use runnel_core::BrokerConfig;

/// Where a started broker listens.
#[derive(Debug, Clone)]
pub struct Listening {
    /// The first Kafka listener.
    pub addr: SocketAddr,
    /// Every Kafka listener by name, in `listeners` order.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The metrics listener (`GET /metrics`), unless disabled or its default address
    /// was taken.
    pub metrics: Option<SocketAddr>,
    /// The Event Hubs AMQP listener, unless disabled or its default address was taken.
    pub amqp: Option<SocketAddr>,
    /// The AMQP endpoint with TLS, if configured.
    pub amqps: Option<SocketAddr>,
    /// The checkpoint stores' blob endpoint, likewise.
    pub blob: Option<SocketAddr>,
    /// `GET /health`, if configured.
    pub health: Option<SocketAddr>,
}

/// Open the data directory, bind the listener and serve until `shutdown` flips to true;
/// then flush and close cleanly. `on_ready` gets the bound address.
pub async fn run(
    config: BrokerConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
    on_ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    run_with(config, shutdown, |l| on_ready(l.addr)).await
}

/// [`run`], also serving metrics on `metrics.listener`; `on_ready` gets both addresses.
pub async fn run_with(
    config: BrokerConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
    on_ready: impl FnOnce(Listening),
) -> std::io::Result<()> {
    // Bound first: a configured address that is taken stops the start before the data
    // directory is opened.
    let metrics_listener = metrics::bind(&config).await?;
    // One connection budget for both AMQP listeners.
    let amqp_limits = runnel_net::ConnectionLimits::new(
        config.max_connections,
        config.max_connections_per_ip,
        config.max_connections_per_ip_overrides.clone(),
    );
    let amqp_listener = bind_amqp(
        "eventhubs.amqp.listener",
        config.amqp_listener,
        config.amqp_listener_configured,
        &amqp_limits,
    )
    .await?;
    let amqps_listener = bind_amqp(
        "eventhubs.amqps.listener",
        config.amqps_listener,
        true,
        &amqp_limits,
    )
    .await?;
    let blob_listener = bind_default(
        "eventhubs.blob.listener",
        config.blob_listener,
        config.blob_listener_configured,
    )
    .await?;
    let health_listener =
        bind_default("eventhubs.health.listener", config.health_listener, true).await?;
    let broker = Arc::new(tokio::task::block_in_place(|| Broker::open(config))?);
    let kafka = Arc::new(tokio::task::block_in_place(|| {
        KafkaBroker::open(broker.clone())
    })?);
    let server = Server::bind(kafka.clone()).await?;
    if let Some(path) = &broker.config.eventhubs_config_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))
        })?;
        let parsed = runnel_amqp::emulator_config::parse_emulator_config(&text)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        runnel_amqp::dropin::apply(&broker, &kafka.security, &parsed).await?;
        tracing::info!(file = %path.display(), hubs = parsed.hubs.len(), namespace = %parsed.namespace, "applied the Event Hubs config");
    }
    // Maintenance holds the broker, not the other way round; it stops before the logs
    // close.
    let maintenance = LogMaintenance::start(broker.clone())?;
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let exporter = Arc::new(metrics::Exporter::new(kafka.clone(), server.metrics()));
    let metrics_task = metrics_listener
        .map(|listener| tokio::spawn(metrics::serve(listener, exporter.clone(), shutdown.clone())));
    let health_addr = match &health_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let health_task = health_listener
        .map(|listener| tokio::spawn(metrics::serve(listener, exporter.clone(), shutdown.clone())));
    let blob_addr = match &blob_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let blob_task = match blob_listener {
        Some(listener) => {
            let dir = broker.data_dir().join("blobs");
            // The broker's one wall clock, which RUNNEL_CLOCK_OFFSET_FILE moves.
            runnel_blob::set_clock(|| {
                let ms = runnel_storage::now_ms().max(0) as u64;
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
            });
            let service = tokio::task::block_in_place(|| {
                runnel_blob::BlobService::open(&dir, runnel_blob::Accounts::default())
            })?;
            Some(tokio::spawn(service.serve(listener)))
        }
        None => None,
    };
    let amqp_addr = match &amqp_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let amqp_task = amqp_listener.map(|listener| {
        let hubs = runnel_amqp::EventHubs::new(broker.clone(), kafka.security.clone());
        tokio::spawn(runnel_amqp::serve(listener, None, hubs, shutdown.clone()))
    });
    let amqps = match (amqps_listener, &broker.config.amqps_ssl) {
        (Some(listener), Some(ssl)) => {
            let settings = runnel_kafka::authentication::tls_settings("AMQPS", ssl)?;
            let tls = Arc::new(runnel_net::tls::ServerTls::new(&settings)?);
            let local = listener.local_addr()?;
            let hubs = runnel_amqp::EventHubs::new(broker.clone(), kafka.security.clone());
            let task = runnel_amqp::serve(listener, Some(tls), hubs, shutdown.clone());
            Some((local, tokio::spawn(task)))
        }
        _ => None,
    };
    let amqps_addr = amqps.as_ref().map(|(a, _)| *a);
    let amqps_task = amqps.map(|(_, t)| t);
    on_ready(Listening {
        addr: server.local_addr()?,
        listeners: server.listener_addrs()?,
        metrics: metrics_addr,
        amqp: amqp_addr,
        amqps: amqps_addr,
        blob: blob_addr,
        health: health_addr,
    });
    server.run(shutdown).await;
    if let Some(task) = metrics_task {
        task.abort();
    }
    for task in [amqp_task, amqps_task, blob_task, health_task]
        .into_iter()
        .flatten()
    {
        task.abort();
    }
    tokio::task::block_in_place(|| {
        maintenance.stop();
        broker.shutdown()
    })
}

const AMQP_MAX_SEGMENT: u32 = 16_384;

/// Bind an AMQP listener (`name`); as [`bind_default`] for a taken default.
async fn bind_amqp(
    name: &str,
    addr: Option<SocketAddr>,
    configured: bool,
    limits: &Arc<runnel_net::ConnectionLimits>,
) -> std::io::Result<Option<runnel_net::Listener>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    // Python's azure-eventhub reads each TCP option of a new socket and sets it back;
    // Linux refuses a TCP_MAXSEG above 32767, which loopback can negotiate, and the
    // client then fails to connect. A smaller MSS only matters on loopback.
    let bound =
        runnel_net::Listener::bind_with_max_segment(addr, limits.clone(), None, AMQP_MAX_SEGMENT)
            .await;
    taken_default(name, addr, configured, bound)
}

/// Bind an optional listener. A built-in default that is taken only turns the service
/// off; a configured address that is taken stops the start.
async fn bind_default(
    name: &str,
    addr: Option<SocketAddr>,
    configured: bool,
) -> std::io::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    taken_default(
        name,
        addr,
        configured,
        tokio::net::TcpListener::bind(addr).await,
    )
}

fn taken_default<L>(
    name: &str,
    addr: SocketAddr,
    configured: bool,
    bound: std::io::Result<L>,
) -> std::io::Result<Option<L>> {
    match bound {
        Ok(l) => Ok(Some(l)),
        Err(e) if !configured => {
            tracing::error!(%addr, error = %e, "cannot bind the default {name}; running without it (set it to another address, or empty to turn it off)");
            Ok(None)
        }
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("binding {name} {addr}: {e}"),
        )),
    }
}
