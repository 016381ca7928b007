//! The network server: accept connections on every listener, run TLS and SASL where
//! the listener asks for them, read frames, dispatch requests, write responses in
//! request order.
//!
//! Each connection has a reader (this task) and a writer task. The reader decodes a
//! frame, spawns its handler, and queues the handler's join handle on a bounded channel
//! (`queued.max.requests.per.connection`); the writer awaits the handles in order. So a
//! client may pipeline requests, they run concurrently, and responses still go out in
//! the order the requests came, as Kafka requires.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use runnel_net::{
    Accepted, ConnectionLimits, FramePermit, Listener, OutPart, RequestMemory, ResponseWriter,
    Transport,
};
use runnel_protocol::api::messages::FetchResponse;
use runnel_protocol::api::{
    decode_request, encode_response, ApiKey, RequestError, RequestHeader, ResponseBody,
};
use runnel_protocol::frame::FrameDecoder;
use runnel_protocol::response_parts::{encode_fetch_response_parts, ExternalRecords, ResponsePart};
use runnel_storage::FileSlice;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::authentication::{Gate, ListenerSecurity, Outcome, Session, TLS_RELOAD_CHECK};
use crate::context::{ListenerInfo, RequestContext, ANONYMOUS};
use crate::handlers::{self, Answer, Reply};
use crate::kafka_broker::KafkaBroker;
use crate::quotas::{self, Mute, QuotaType, Throttle, Usage};
use crate::request_metrics::{fetch_has_error, response_has_error, ApiSlot, ServerMetrics};

/// A request that is still arriving gets `socket.request.read.timeout.ms` plus a second
/// for every this many bytes of it received, so a large request on a slow link arrives
/// while a trickle (slowloris) is cut off.
const REQUEST_READ_RATE: usize = 64 * 1024;

/// How often the security store file is checked for another process's change.
const SECURITY_STORE_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Server {
    listeners: Vec<BoundListener>,
    broker: Arc<KafkaBroker>,
    /// Bytes of requests read but not yet answered, across all connections
    /// (`queued.max.request.bytes`).
    request_memory: RequestMemory,
    metrics: Arc<ServerMetrics>,
    limits: Arc<ConnectionLimits>,
}

/// A bound listener and what its connections need to know about it.
struct BoundListener {
    listener: Listener,
    security: Arc<ListenerSecurity>,
}

impl Server {
    /// Bind every listener and set each one's advertised address (the bound port when
    /// the configured one is 0). A listener whose TLS or SASL settings do not load
    /// stops the start, naming the listener.
    pub async fn bind(broker: Arc<KafkaBroker>) -> std::io::Result<Server> {
        let config = &broker.config;
        let limits = ConnectionLimits::new(
            config.max_connections,
            config.max_connections_per_ip,
            config.max_connections_per_ip_overrides.clone(),
        );
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let info = Arc::new(ListenerInfo::new(l.name.clone(), l.security_protocol));
            let security = Arc::new(ListenerSecurity::new(l, info.clone(), &broker.security)?);
            let listener = Listener::bind(&l.bind, limits.clone(), l.max_connections)
                .await
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("binding listener {} ({}): {e}", l.name, l.bind),
                    )
                })?;
            let local = listener.local_addr()?;
            let (host, port) = match &l.advertised {
                Some((h, p)) => (h.clone(), *p),
                None => (advertised_host(local), local.port()),
            };
            info.set_advertised(host, port);
            listeners.push(BoundListener { listener, security });
        }
        if listeners.is_empty() {
            return Err(std::io::Error::other("no listeners are configured"));
        }
        let request_memory = RequestMemory::new(config.queued_max_request_bytes);
        Ok(Server {
            metrics: Arc::new(ServerMetrics::new(limits.open_connections())),
            listeners,
            broker,
            request_memory,
            limits,
        })
    }

    /// The first listener's address (what `--listen` sets).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listeners[0].listener.local_addr()
    }

    /// Every listener's name and bound address, in `listeners` order.
    pub fn listener_addrs(&self) -> std::io::Result<Vec<(String, SocketAddr)>> {
        self.listeners
            .iter()
            .map(|l| Ok((l.security.info.name.clone(), l.listener.local_addr()?)))
            .collect()
    }

    pub fn active_connections(&self) -> Arc<AtomicUsize> {
        self.limits.open_connections()
    }

    /// Request and connection counters, for the metrics endpoint.
    pub fn metrics(&self) -> Arc<ServerMetrics> {
        self.metrics.clone()
    }

    /// Serve every listener until `shutdown` turns true.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let mut tasks = vec![tokio::spawn(watch_security_store(
            self.broker.clone(),
            shutdown.clone(),
        ))];
        for bound in self.listeners {
            if bound.security.tls.is_some() {
                tasks.push(tokio::spawn(watch_tls_files(
                    bound.security.clone(),
                    shutdown.clone(),
                )));
            }
            if let Some((jwks, every)) = bound.security.sasl.as_ref().and_then(|s| s.jwks.clone()) {
                tasks.push(tokio::spawn(watch_jwks_file(
                    bound.security.info.name.clone(),
                    jwks,
                    every,
                    shutdown.clone(),
                )));
            }
            tasks.push(tokio::spawn(serve_listener(
                bound,
                self.broker.clone(),
                self.request_memory.clone(),
                self.metrics.clone(),
                shutdown.clone(),
            )));
        }
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a listener task failed");
            }
        }
    }
}

/// Check a TLS listener's key and trust files now and then, and reload them when they
/// change (new connections get the new certificate; open ones keep theirs).
async fn watch_tls_files(security: Arc<ListenerSecurity>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TLS_RELOAD_CHECK) => {}
            _ = shutdown.changed() => return,
        }
        let security = security.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(tls) = &security.tls {
                tls.reload_if_changed(&security.info.name);
            }
        })
        .await;
    }
}

/// Pick up changes another process made to the security store (`runnel sas policy`
/// on this host), so new logins see them.
async fn watch_security_store(broker: Arc<KafkaBroker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SECURITY_STORE_CHECK) => {}
            _ = shutdown.changed() => return,
        }
        let store = broker.security.clone();
        match tokio::task::spawn_blocking(move || store.refresh()).await {
            Ok(Ok(true)) => {
                tracing::info!("reloaded the security store");
                // Its client quotas too, should another process have changed them.
                broker.quotas.load(&broker.security.client_quotas());
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::error!(error = %e,
                "the security store changed but does not load; keeping the previous one"),
            Err(e) => tracing::error!(error = %e, "reloading the security store failed"),
        }
    }
}

/// Re-read an OAUTHBEARER listener's JWKS file when it changes
/// (`sasl.oauthbearer.jwks.endpoint.refresh.ms`), as Kafka refreshes its JWKS: keys
/// rotate without a restart.
async fn watch_jwks_file(
    listener: String,
    jwks: Arc<runnel_security::sasl::JwksValidator>,
    every: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let jwks = jwks.clone();
        let result = tokio::task::spawn_blocking(move || jwks.reload_if_changed()).await;
        match result {
            Ok(Ok(true)) => tracing::info!(listener, "reloaded the OAUTHBEARER JWKS file"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::error!(listener, error = %e,
                "the JWKS file changed but does not load; keeping the previous keys"),
            Err(e) => tracing::error!(listener, error = %e, "checking the JWKS file failed"),
        }
    }
}

async fn serve_listener(
    bound: BoundListener,
    broker: Arc<KafkaBroker>,
    memory: RequestMemory,
    metrics: Arc<ServerMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // Reap finished connection tasks so the set stays small.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = bound.listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
        let (stream, peer, slot) = match accepted {
            Accepted::Open { stream, peer, slot } => (stream, peer, slot),
            Accepted::Refused { peer, limit } => {
                metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, listener = %bound.security.info.name, ?limit,
                    "refusing a connection over a connection limit");
                continue;
            }
        };
        let wait_ms = broker.quotas.record_broker_connection();
        if wait_ms > 0 {
            // Over max.connection.creation.rate: as Kafka's acceptor, wait before serving
            // this connection and accepting the next.
            broker
                .quotas
                .note_throttle(QuotaType::ConnectionCreation, wait_ms);
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(wait_ms)) => {}
                _ = shutdown.changed() => break,
            }
        }
        let throttle_ms = broker.quotas.record_connection(peer.ip());
        if throttle_ms > 0 {
            // Over the IP's connection_creation_rate: as Kafka's ConnectionQuotas, hold
            // the connection unserved (and uncounted) for the throttle time, then close.
            drop(slot);
            broker
                .quotas
                .note_throttle(QuotaType::ConnectionCreation, throttle_ms);
            tracing::debug!(%peer, throttle_ms, "connection_creation_rate exceeded; closing the connection later");
            connections.spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(throttle_ms)).await;
                drop(stream);
            });
            continue;
        }
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        let memory = memory.clone();
        let metrics = metrics.clone();
        let security = bound.security.clone();
        connections.spawn(async move {
            let _slot = slot;
            let result = match &security.tls {
                None => {
                    let session = Session::new(security.clone(), ANONYMOUS.to_string());
                    serve_connection(broker, stream, peer, session, memory, metrics, shutdown)
                        .await
                }
                Some(tls) => match tls.server.accept(stream).await {
                    Ok(stream) => {
                        let subject = stream.peer_subject();
                        match tls.principal(subject.as_deref()) {
                            Ok(principal) => {
                                let session = Session::new(security.clone(), principal);
                                serve_connection(
                                    broker, stream, peer, session, memory, metrics, shutdown,
                                )
                                .await
                            }
                            Err(e) => {
                                metrics.authentication_failed();
                                tracing::warn!(%peer, listener = %security.info.name, error = %e,
                                    "no principal for the client certificate; closing the connection");
                                Ok(())
                            }
                        }
                    }
                    Err(e) => {
                        metrics.authentication_failed();
                        tracing::info!(%peer, listener = %security.info.name, error = %e,
                            "TLS handshake failed");
                        Ok(())
                    }
                },
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
        });
    }
    // Let connections finish the requests they are handling (they stop reading at
    // the shutdown signal), so no append races the logs' close. Bounded: a request
    // parked on a long wait is dropped.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "connections still busy at shutdown; aborting them"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

fn advertised_host(local: SocketAddr) -> String {
    if local.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        local.ip().to_string()
    }
}

/// A response: `Ok(None)` for acks=0 produce requests, `Err` when no valid response
/// exists and the connection must close.
type Response = Result<Option<Outgoing>, ()>;

/// An encoded response frame.
enum Outgoing {
    Frame(Bytes),
    /// A fetch response whose record sets are sent from the segment files.
    Parts(Vec<OutPart>),
}

/// A response in the connection's queue: already made, or still being made (with the
/// request's API, to count a handler that failed).
enum Pending {
    Ready(Response),
    Task(JoinHandle<Response>, ApiSlot),
}

/// Encode a handler's response and record the request's latency and outcome.
fn finish(
    metrics: &ServerMetrics,
    slot: ApiSlot,
    started: Instant,
    header: &RequestHeader,
    body: Option<ResponseBody>,
    peer: SocketAddr,
) -> Response {
    let error = body.as_ref().is_some_and(response_has_error);
    record_outcome(metrics, slot, started, error, encode(header, body, peer))
}

/// [`finish`] for a fetch response whose record sets stay in the segment files.
fn finish_fetch(
    metrics: &ServerMetrics,
    slot: ApiSlot,
    started: Instant,
    header: &RequestHeader,
    body: FetchResponse,
    records: ExternalRecords<FileSlice>,
    peer: SocketAddr,
) -> Response {
    let error = fetch_has_error(&body);
    let response = match encode_fetch_response_parts(header, &body, records) {
        Ok(parts) => Ok(Some(Outgoing::Parts(
            parts
                .into_iter()
                .map(|part| match part {
                    ResponsePart::Encoded(b) => OutPart::Bytes(b),
                    ResponsePart::Records(slice) => OutPart::File(slice),
                })
                .collect(),
        ))),
        Err(e) => {
            tracing::error!(%peer, error = %e, "encoding a fetch response failed; closing the connection");
            Err(())
        }
    };
    record_outcome(metrics, slot, started, error, response)
}

/// Count a request as completed (with its latency) or as a closed connection.
fn record_outcome(
    metrics: &ServerMetrics,
    slot: ApiSlot,
    started: Instant,
    error: bool,
    response: Response,
) -> Response {
    match response {
        Ok(_) => metrics.completed(slot, started, error),
        Err(()) => metrics.closed_connection(Some(slot)),
    }
    response
}

fn encode(header: &RequestHeader, body: Option<ResponseBody>, peer: SocketAddr) -> Response {
    let Some(body) = body else { return Ok(None) };
    match encode_response(header, &body) {
        Ok(bytes) => Ok(Some(Outgoing::Frame(bytes))),
        Err(e) => {
            // A bug on our side; the client must not wait forever.
            tracing::error!(%peer, api = ?header.api_key, error = %e, "encoding a response failed; closing the connection");
            Err(())
        }
    }
}

async fn serve_connection<T: Transport>(
    broker: Arc<KafkaBroker>,
    stream: T,
    peer: SocketAddr,
    mut session: Session,
    memory: RequestMemory,
    metrics: Arc<ServerMetrics>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (mut reader, mut writer) = stream.into_split();
    let writer_metrics = metrics.clone();
    let mute = Arc::new(Mute::default());
    let (tx, mut rx) = mpsc::channel::<Pending>(broker.config.max_in_flight_per_connection);
    let idle = broker.config.connections_max_idle;
    let read_timeout = broker.config.request_read_timeout;
    let activity = Arc::new(Activity::new());
    let writer_activity = activity.clone();

    let mut write_task = tokio::spawn(async move {
        while let Some(pending) = rx.recv().await {
            let response = match pending {
                Pending::Ready(r) => r,
                Pending::Task(task, slot) => match task.await {
                    Ok(r) => r,
                    Err(e) => {
                        writer_metrics.closed_connection(Some(slot));
                        // A handler panicked: the response stream is broken; close.
                        tracing::error!(%peer, error = %e, "request handler failed; closing the connection");
                        return Err(std::io::Error::other("handler failed"));
                    }
                },
            };
            match response {
                Ok(Some(Outgoing::Frame(bytes))) => writer.write_bytes(&bytes).await?,
                Ok(Some(Outgoing::Parts(parts))) => {
                    if let Err(e) = writer.write_parts(&parts).await {
                        tracing::warn!(%peer, error = %e, "sending a fetch response failed; closing the connection");
                        return Err(e);
                    }
                }
                Ok(None) => {}
                Err(()) => return Err(std::io::Error::other("no response could be encoded")),
            }
            writer_activity.touch();
        }
        writer.shutdown().await
    });

    let decoder = FrameDecoder::new(broker.config.socket_request_max_bytes);
    // Empty until the first read, which is small: a connection that never sends a
    // request holds no 64 KiB block (reused, hence resident, memory once the broker
    // has been busy: 10,000 such connections would pin 640 MiB).
    let mut buf = BytesMut::new();
    // Memory for the frame being read, taken as soon as its size is known, so that all
    // connections together never buffer more than the budget (plus one read each).
    let mut frame_permit: Option<FramePermit> = None;
    // Time spent waiting for the client to send the rest of the frame in `buf` (only
    // the waits on the socket: not the broker's own waits for memory or the writer).
    let mut frame_wait = Duration::ZERO;
    // A response goes to the writer, unless the client has stopped reading them: with
    // the queue full and nothing written for connections.max.idle.ms, close.
    macro_rules! queue {
        ($item:expr) => {
            tokio::select! {
                r = tx.send($item) => r.is_ok(),
                _ = idle_expired(&activity, idle) => {
                    tracing::info!(%peer, "the client has read no response for connections.max.idle.ms; closing the connection");
                    false
                }
            }
        };
    }
    let result: std::io::Result<()> = 'read: loop {
        loop {
            if frame_permit.is_none() && buf.len() >= 4 {
                let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if let Some(limit) = session.unauthenticated_frame_limit() {
                    if size as usize > limit {
                        metrics.closed_connection(None);
                        metrics.authentication_failed();
                        tracing::warn!(%peer, size, limit,
                            "a frame over sasl.server.max.receive.size before authentication; closing the connection");
                        break 'read Ok(());
                    }
                }
                if size > 0 && size as usize <= decoder.max_frame_bytes {
                    let permit = tokio::select! {
                        p = memory.acquire(size as usize) => p,
                        _ = shutdown.changed() => break 'read Ok(()),
                    };
                    match permit {
                        Some(p) => frame_permit = Some(p),
                        None => break 'read Ok(()),
                    }
                }
            }
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    // Whatever follows in `buf` is the next frame, whose clock starts now.
                    frame_wait = Duration::ZERO;
                    frame
                }
                Ok(None) => break,
                Err(e) => {
                    metrics.closed_connection(None);
                    tracing::warn!(%peer, error = %e, "bad frame; closing the connection");
                    break 'read Ok(());
                }
            };
            let started = Instant::now();
            if session.expects_raw_token() {
                // After SaslHandshake v0 the frame is a bare SASL token.
                frame_permit = None;
                match session.raw_token(&frame) {
                    Some(reply) => {
                        if !queue!(Pending::Ready(Ok(Some(Outgoing::Frame(reply))))) {
                            break 'read Ok(());
                        }
                        continue;
                    }
                    None => {
                        metrics.authentication_failed();
                        tokio::time::sleep(session.failed_authentication_delay()).await;
                        break 'read Ok(());
                    }
                }
            }
            let frame_len = frame.len();
            let request = match decode_request(frame) {
                Ok(r) => r,
                Err(e) => match e.response() {
                    Some(resp) => {
                        frame_permit = None;
                        // The KIP-511 fallback: an UNSUPPORTED_VERSION answer.
                        metrics.completed(metrics.slot(ApiKey::ApiVersions), started, true);
                        tracing::debug!(%peer, error = %e, "answering an undecodable request");
                        if !queue!(Pending::Ready(Ok(Some(Outgoing::Frame(resp))))) {
                            break 'read Ok(());
                        }
                        continue;
                    }
                    None => {
                        metrics.closed_connection(Some(request_error_slot(&metrics, &e)));
                        log_bad_request(peer, &e);
                        break 'read Ok(());
                    }
                },
            };
            let permit = frame_permit.take();
            let header = request.header.clone();
            let slot = metrics.slot(header.api_key);
            match session.gate(header.api_key) {
                Gate::Serve => {}
                Gate::Close(why) => {
                    metrics.closed_connection(Some(slot));
                    tracing::info!(%peer, api = ?header.api_key, listener = %session.listener().name,
                        "{why}; closing the connection");
                    break 'read Ok(());
                }
                Gate::Sasl => {
                    drop(permit);
                    let (body, outcome) = session.answer(&request);
                    let failed = matches!(outcome, Outcome::Failed);
                    if failed {
                        metrics.authentication_failed();
                        // Slows down guessing: the answer and the close come later.
                        tokio::time::sleep(session.failed_authentication_delay()).await;
                    }
                    let item =
                        Pending::Ready(finish(&metrics, slot, started, &header, Some(body), peer));
                    if !queue!(item) || failed {
                        break 'read Ok(());
                    }
                    continue;
                }
            }
            // Requests take effect in the order they arrived, as Kafka handles one
            // request per connection at a time: a producer that pipelines relies on its
            // batches being appended in send order, a consumer on its commits landing in
            // order. Only a handler's waits without side effects (`Reply::Later`: a
            // fetch, a produce's wait for its fsync) overlap later requests.
            let ctx = RequestContext {
                principal: session.principal().clone(),
                listener: session.listener().clone(),
                client_id: header.client_id.as_deref().unwrap_or("").to_string(),
                peer,
                sas: session.sas().cloned(),
                authorizer: broker.authorizer.clone(),
            };
            // KIP-219: a throttled client's next request waits for its throttle time.
            if let Some(until) = mute.until() {
                tokio::select! {
                    _ = tokio::time::sleep_until(until.into()) => {}
                    _ = shutdown.changed() => break 'read Ok(()),
                }
            }
            let mut request = request;
            let usage = Usage::of(&request, frame_len);
            quotas::cap_fetch_bytes(&broker.quotas, &ctx, &mut request);
            let handling = Instant::now();
            let reply = handlers::handle(&broker, &ctx, request).await;
            let throttle =
                quotas::throttle_after_handling(&broker.quotas, &ctx, &usage, handling.elapsed());
            drop(permit);
            if !usage.is_fetch() {
                throttled(&broker, &mute, throttle);
            }
            let item = match reply {
                Reply::Now(mut body) => {
                    if let Some(body) = &mut body {
                        quotas::set_throttle_time(body, throttle.ms_i32());
                    }
                    Pending::Ready(finish(&metrics, slot, started, &header, body, peer))
                }
                Reply::Close => {
                    metrics.closed_connection(Some(slot));
                    Pending::Ready(Err(()))
                }
                Reply::Later(answer) => {
                    let metrics = metrics.clone();
                    let broker = broker.clone();
                    let mute = mute.clone();
                    Pending::Task(
                        tokio::spawn(async move {
                            match answer.await {
                                Answer::Body(mut body) => {
                                    quotas::set_throttle_time(&mut body, throttle.ms_i32());
                                    finish(&metrics, slot, started, &header, Some(body), peer)
                                }
                                Answer::Fetch(body, records) => {
                                    let (body, records, throttle) = quotas::throttle_fetch(
                                        &broker.quotas,
                                        &ctx,
                                        throttle,
                                        header.api_version,
                                        body,
                                        records,
                                    );
                                    throttled(&broker, &mute, throttle);
                                    finish_fetch(
                                        &metrics, slot, started, &header, body, records, peer,
                                    )
                                }
                            }
                        }),
                        slot,
                    )
                }
            };
            if !queue!(item) {
                break 'read Ok(());
            }
        }
        // Keep reading only while the buffer is bounded: one frame at most, plus a
        // read's worth. Between requests a small read will do (most requests are
        // small); inside a frame, 64 KiB at a time.
        let (low, grow) = if buf.is_empty() {
            (512, 4 * 1024)
        } else {
            (16 * 1024, 64 * 1024)
        };
        if buf.capacity() - buf.len() < low {
            buf.reserve(grow);
        }
        // A started frame (bytes in `buf`) must arrive whole in time: it may hold its
        // share of `queued.max.request.bytes`, and a client trickling a byte at a time
        // (slowloris) would otherwise keep that, and the connection, forever. A timeout
        // per read would not do: every byte would restart it.
        let allowance = (!buf.is_empty()).then(|| {
            let earned = Duration::from_secs((buf.len() / REQUEST_READ_RATE) as u64);
            (read_timeout + earned).saturating_sub(frame_wait)
        });
        let waiting = Instant::now();
        let n = tokio::select! {
            n = reader.read_buf(&mut buf) => n,
            _ = tokio::time::sleep(allowance.unwrap_or_default()), if allowance.is_some() => {
                tracing::warn!(%peer, received = buf.len(), waited = ?frame_wait + waiting.elapsed(),
                    "a request did not arrive within socket.request.read.timeout.ms; closing the connection");
                break Ok(());
            }
            // Between requests: Kafka's connections.max.idle.ms.
            _ = idle_expired(&activity, idle), if buf.is_empty() => {
                tracing::debug!(%peer, "idle for connections.max.idle.ms; closing the connection");
                break Ok(());
            }
            _ = shutdown.changed() => break Ok(()),
        };
        frame_wait += waiting.elapsed();
        match n {
            Ok(0) => break Ok(()),
            Ok(_) => activity.touch(),
            Err(e) => break Err(e),
        }
    };
    drop(tx);
    // The writer ends once it has sent what is queued. A client that never reads would
    // keep it blocked, and the connection open, forever: it gets the idle time too.
    let written = tokio::select! {
        r = &mut write_task => Some(r),
        _ = idle_expired(&activity, idle) => None,
    };
    match written {
        Some(Ok(Ok(()))) | Some(Ok(Err(_))) => {}
        Some(Err(e)) => tracing::error!(%peer, error = %e, "writer task failed"),
        None => {
            tracing::info!(%peer, "the client has read no response for connections.max.idle.ms; closing the connection");
            write_task.abort();
        }
    }
    result
}

/// When a connection last read a byte or wrote a response (`connections.max.idle.ms`).
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Resolves once the connection has been idle for `idle` (never, without a limit).
async fn idle_expired(activity: &Activity, idle: Option<Duration>) {
    let Some(idle) = idle else {
        return std::future::pending().await;
    };
    loop {
        let idle_for = activity.idle_for();
        if idle_for >= idle {
            return;
        }
        tokio::time::sleep(idle - idle_for).await;
    }
}

/// Mute the connection for a throttle and count it.
fn throttled(broker: &KafkaBroker, mute: &Mute, throttle: Throttle) {
    if let Some(quota) = throttle.quota {
        mute.mute_for(throttle.ms);
        broker.quotas.note_throttle(quota, throttle.ms);
    }
}

/// The API of a request that could not be decoded, where the header named one we know.
fn request_error_slot(metrics: &ServerMetrics, e: &RequestError) -> ApiSlot {
    match e {
        RequestError::TooShort { .. } => metrics.slot_raw(-1),
        RequestError::UnknownApiKey { api_key, .. } => metrics.slot_raw(*api_key),
        RequestError::UnsupportedVersion { api_key, .. }
        | RequestError::MalformedHeader { api_key, .. }
        | RequestError::MalformedBody { api_key, .. } => metrics.slot(*api_key),
    }
}

fn log_bad_request(peer: SocketAddr, e: &RequestError) {
    tracing::warn!(%peer, error = %e, "closing the connection after an undecodable request");
}
