//! One connection to a broker (TCP, or TLS over TCP): ApiVersions negotiation, SASL
//! authentication on SASL listeners, correlation ids, pipelined requests whose
//! responses are matched in order, a request timeout and a cap on response size.
//!
//! Writes are serialised under an async mutex; before a request is written its
//! correlation id and a reply channel are queued, so the reader task, which owns the
//! read half, pairs each response frame with the oldest queued request and checks the
//! correlation id. Kafka brokers answer in request order on a connection. A timeout, a
//! correlation mismatch, an oversized frame or an I/O error poisons the connection:
//! every queued request fails and later calls get [`Error::Closed`], so the owner
//! reconnects.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages as m;
use runnel_protocol::api::{
    decode_response, encode_request, ApiKey, RequestBody, RequestHeader, ResponseBody, StrBytes,
    SUPPORTED_APIS, UNSUPPORTED_VERSION,
};
use runnel_protocol::frame::FrameDecoder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::sasl::{Exchange, SaslCredentials};
use crate::security::{server_name, SecurityConfig};

/// The transport's halves: a TCP stream's, or a TLS stream's over TCP.
type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub client_id: String,
    pub connect_timeout: Duration,
    /// How long a request may wait for its response before the connection is closed.
    pub request_timeout: Duration,
    /// Largest response frame accepted; a larger one closes the connection.
    pub max_response_bytes: usize,
    /// Requests in flight (written, unanswered) at once.
    pub max_in_flight: usize,
    /// PLAINTEXT, or TLS and SASL settings (`security.protocol` and friends).
    pub security: SecurityConfig,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: "runnel-client".into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 100 << 20,
            max_in_flight: 64,
            security: SecurityConfig::default(),
        }
    }
}

/// The highest version of each API this client's code knows how to fill in, below
/// what `runnel-protocol` can encode. Fetch 13+ needs topic ids and OffsetFetch 8+ the
/// batched group layout, which this client does not use.
fn client_max_version(api: ApiKey) -> Option<i16> {
    match api {
        ApiKey::Fetch => Some(12),
        ApiKey::OffsetFetch => Some(7),
        ApiKey::FindCoordinator => Some(3),
        _ => None,
    }
}

struct Pending {
    correlation_id: i32,
    reply: oneshot::Sender<Result<Bytes>>,
    _permit: OwnedSemaphorePermit,
}

struct Shared {
    queue: Mutex<VecDeque<Pending>>,
    closed: AtomicBool,
}

impl Shared {
    fn fail_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let drained: Vec<Pending> = self.queue.lock().expect("queue lock").drain(..).collect();
        for p in drained {
            let _ = p.reply.send(Err(Error::Closed));
        }
    }
}

/// A connection to one broker.
pub struct Connection {
    addr: String,
    config: ConnectionConfig,
    writer: tokio::sync::Mutex<WriteHalf>,
    shared: Arc<Shared>,
    next_correlation_id: AtomicI32,
    in_flight: Arc<Semaphore>,
    versions: HashMap<ApiKey, i16>,
    reader: JoinHandle<()>,
    /// When the SASL session the broker granted (`session_lifetime_ms`) is near its end:
    /// from then on the connection counts as closed, so its owner opens a new one
    /// instead of re-authenticating on this one (the broker would close it).
    session_deadline: Option<std::time::Instant>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    /// Connect to `addr` ("host:port"), with TLS if the security protocol says so,
    /// negotiate API versions and, on a SASL listener, authenticate before anything else.
    pub async fn connect(addr: &str, config: ConnectionConfig) -> Result<Connection> {
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Timeout(config.connect_timeout))??;
        stream.set_nodelay(true)?;
        let (read, write): (ReadHalf, WriteHalf) = match config.security.tls() {
            None => {
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w))
            }
            Some(tls) => {
                let name = server_name(addr)?;
                let connector = tokio_rustls::TlsConnector::from(tls.clone());
                let tls_stream =
                    tokio::time::timeout(config.connect_timeout, connector.connect(name, stream))
                        .await
                        .map_err(|_| Error::Timeout(config.connect_timeout))?
                        .map_err(|e| Error::Tls(format!("TLS handshake with {addr}: {e}")))?;
                let (r, w) = tokio::io::split(tls_stream);
                (Box::new(r), Box::new(w))
            }
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
        });
        let reader = tokio::spawn(read_loop(read, shared.clone(), config.max_response_bytes));
        let mut conn = Connection {
            addr: addr.to_string(),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            config,
            writer: tokio::sync::Mutex::new(write),
            shared,
            next_correlation_id: AtomicI32::new(0),
            versions: HashMap::new(),
            reader,
            session_deadline: None,
        };
        conn.versions = conn.negotiate().await?;
        if let Some(creds) = conn.config.security.sasl().cloned() {
            if let Some(lifetime) = conn.authenticate(&creds).await? {
                // Kafka's clients re-authenticate at 85-95% of the lifetime; retire
                // the connection at 85%.
                conn.session_deadline = Some(std::time::Instant::now() + lifetime.mul_f64(0.85));
            }
        }
        Ok(conn)
    }

    /// SaslHandshake v1 then SaslAuthenticate until the exchange completes, as the Java
    /// client does after ApiVersions. v0's unframed tokens are not supported. Returns
    /// the session lifetime the broker set, if any.
    async fn authenticate(&self, creds: &SaslCredentials) -> Result<Option<Duration>> {
        let mechanism = creds.mechanism.name();
        let context = || format!("SASL/{mechanism} authentication as {}", creds.username);
        let handshake = self
            .version(ApiKey::SaslHandshake)
            .filter(|v| *v >= 1)
            .ok_or(Error::UnsupportedApi(ApiKey::SaslHandshake))?;
        let request =
            m::SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let response = self
            .send_version(RequestBody::SaslHandshake(request), handshake)
            .await?;
        let ResponseBody::SaslHandshake(response) = response else {
            return Err(Error::Protocol("unexpected SaslHandshake body".into()));
        };
        if response.error_code != 0 {
            let enabled: Vec<String> = response.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(Error::Kafka {
                code: response.error_code,
                context: context(),
                message: Some(format!("the listener offers {}", enabled.join(", "))),
            });
        }
        let version = self
            .version(ApiKey::SaslAuthenticate)
            .ok_or(Error::UnsupportedApi(ApiKey::SaslAuthenticate))?;
        let (mut exchange, mut token) = Exchange::start(creds)?;
        // PLAIN takes one round trip, SCRAM two; a server that wants more is broken.
        for _ in 0..4 {
            let request = m::SaslAuthenticateRequest::default().with_auth_bytes(token.into());
            let response = self
                .send_version(RequestBody::SaslAuthenticate(request), version)
                .await?;
            let ResponseBody::SaslAuthenticate(response) = response else {
                return Err(Error::Protocol("unexpected SaslAuthenticate body".into()));
            };
            crate::error::check(
                response.error_code,
                response.error_message.as_ref(),
                context,
            )?;
            match exchange.step(&response.auth_bytes)? {
                Some(next) => token = next,
                None => {
                    let ms = response.session_lifetime_ms;
                    return Ok((ms > 0).then(|| Duration::from_millis(ms as u64)));
                }
            }
        }
        Err(Error::Protocol(format!("{}: too many rounds", context())))
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection has failed, or its SASL session is about to end, and it
    /// must be replaced.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
            || self
                .session_deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
    }

    /// The negotiated version of `api`, if both sides support one.
    pub fn version(&self, api: ApiKey) -> Option<i16> {
        self.versions.get(&api).copied()
    }

    async fn negotiate(&self) -> Result<HashMap<ApiKey, i16>> {
        let (_, our_max) =
            api_range(ApiKey::ApiVersions).ok_or(Error::UnsupportedApi(ApiKey::ApiVersions))?;
        let request = m::ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("runnel-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = our_max.min(3);
        let mut response = None;
        for _ in 0..2 {
            let body = RequestBody::ApiVersions(request.clone());
            let frame = self.round_trip(&body, version).await?;
            let header = self.header(ApiKey::ApiVersions, version, 0);
            // KIP-511: a broker that does not know our version answers with a v0 body.
            let decoded = match decode_response(&header, frame.clone()) {
                Ok((_, ResponseBody::ApiVersions(r))) => Some(r),
                _ => None,
            };
            let decoded = match decoded {
                Some(r) if r.error_code != UNSUPPORTED_VERSION => r,
                _ => match decode_response(&self.header(ApiKey::ApiVersions, 0, 0), frame) {
                    Ok((_, ResponseBody::ApiVersions(r))) => r,
                    Ok(_) => return Err(Error::Protocol("unexpected ApiVersions body".into())),
                    Err(e) => return Err(Error::Protocol(format!("ApiVersions response: {e}"))),
                },
            };
            if decoded.error_code == UNSUPPORTED_VERSION {
                let theirs = decoded
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map(|k| k.max_version)
                    .unwrap_or(0);
                version = theirs.min(version).max(0);
                continue;
            }
            crate::error::check(decoded.error_code, None, || "ApiVersions".into())?;
            response = Some(decoded);
            break;
        }
        let response =
            response.ok_or_else(|| Error::Protocol("ApiVersions negotiation failed".into()))?;
        let mut versions = HashMap::new();
        for &(api, min, max) in SUPPORTED_APIS {
            let max = client_max_version(api).map_or(max, |c| c.min(max));
            if let Some(theirs) = response.api_keys.iter().find(|k| k.api_key == api as i16) {
                let hi = max.min(theirs.max_version);
                let lo = min.max(theirs.min_version);
                if hi >= lo {
                    versions.insert(api, hi);
                }
            }
        }
        Ok(versions)
    }

    fn header(&self, api_key: ApiKey, api_version: i16, correlation_id: i32) -> RequestHeader {
        RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id: Some(StrBytes::from_string(self.config.client_id.clone())),
        }
    }

    /// Send `body` at the negotiated version and wait for the response.
    pub async fn send(&self, body: impl Into<RequestBody>) -> Result<ResponseBody> {
        let body = body.into();
        let api = body.api_key();
        let version = self.version(api).ok_or(Error::UnsupportedApi(api))?;
        self.send_version(body, version).await
    }

    /// Send `body` at `version` and wait for the response.
    pub async fn send_version(&self, body: RequestBody, version: i16) -> Result<ResponseBody> {
        let api = body.api_key();
        let frame = self.round_trip(&body, version).await?;
        let header = self.header(api, version, 0);
        let (_, response) = decode_response(&header, frame)
            .map_err(|e| Error::Protocol(format!("{api:?} v{version} response: {e}")))?;
        Ok(response)
    }

    /// Send a typed request and return the typed response.
    pub async fn call<Resp: FromResponse>(&self, body: impl Into<RequestBody>) -> Result<Resp> {
        let body = body.into();
        let api = body.api_key();
        let response = self.send(body).await?;
        Resp::from_response(response)
            .ok_or_else(|| Error::Protocol(format!("unexpected response body to {api:?}")))
    }

    /// Send a request that gets no response (Produce with acks=0).
    pub async fn send_no_response(&self, body: impl Into<RequestBody>) -> Result<()> {
        let body = body.into();
        let api = body.api_key();
        let version = self.version(api).ok_or(Error::UnsupportedApi(api))?;
        let mut writer = self.writer.lock().await;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let id = self.next_id();
        let frame = encode_request(&self.header(api, version, id), &body)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        self.write(&mut writer, &frame).await
    }

    fn next_id(&self) -> i32 {
        // Wraps at i32::MAX back to 0: ids need only be unique among requests in flight.
        self.next_correlation_id
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(if v == i32::MAX { 0 } else { v + 1 })
            })
            .unwrap_or(0)
    }

    async fn write(&self, writer: &mut WriteHalf, frame: &[u8]) -> Result<()> {
        let timeout = self.config.request_timeout;
        // TLS buffers records: flush so the request leaves now (a no-op on TCP).
        let io = async {
            writer.write_all(frame).await?;
            writer.flush().await
        };
        match tokio::time::timeout(timeout, io).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.shared.fail_all();
                Err(e.into())
            }
            Err(_) => {
                self.shared.fail_all();
                Err(Error::Timeout(timeout))
            }
        }
    }

    /// Write a request now and return a future of its response. Requests started one
    /// after another are on the wire in that order, whenever the returned futures are
    /// polled: a pipelining producer relies on it for its sequence numbers.
    pub async fn start_call<Resp: FromResponse + Send + 'static>(
        self: &Arc<Self>,
        body: impl Into<RequestBody>,
    ) -> Result<impl std::future::Future<Output = Result<Resp>> + Send + 'static> {
        let body = body.into();
        let api = body.api_key();
        let version = self.version(api).ok_or(Error::UnsupportedApi(api))?;
        let rx = self.write_request(&body, version).await?;
        let conn = self.clone();
        Ok(async move {
            let frame = conn.await_response(rx).await?;
            let header = conn.header(api, version, 0);
            let (_, response) = decode_response(&header, frame)
                .map_err(|e| Error::Protocol(format!("{api:?} v{version} response: {e}")))?;
            Resp::from_response(response)
                .ok_or_else(|| Error::Protocol(format!("unexpected response body to {api:?}")))
        })
    }

    /// Write the request and wait for its response frame (header + body).
    async fn round_trip(&self, body: &RequestBody, version: i16) -> Result<Bytes> {
        let rx = self.write_request(body, version).await?;
        self.await_response(rx).await
    }

    /// Queue the request's reply slot and write it.
    async fn write_request(
        &self,
        body: &RequestBody,
        version: i16,
    ) -> Result<oneshot::Receiver<Result<Bytes>>> {
        let api = body.api_key();
        let timeout = self.config.request_timeout;
        let permit = tokio::time::timeout(timeout, self.in_flight.clone().acquire_owned())
            .await
            .map_err(|_| Error::Timeout(timeout))?
            .map_err(|_| Error::Closed)?;
        let rx = {
            let mut writer = self.writer.lock().await;
            if self.is_closed() {
                return Err(Error::Closed);
            }
            let id = self.next_id();
            let frame = encode_request(&self.header(api, version, id), body)
                .map_err(|e| Error::Protocol(e.to_string()))?;
            let (tx, rx) = oneshot::channel();
            self.shared
                .queue
                .lock()
                .expect("queue lock")
                .push_back(Pending {
                    correlation_id: id,
                    reply: tx,
                    _permit: permit,
                });
            self.write(&mut writer, &frame).await?;
            rx
        };
        Ok(rx)
    }

    /// Wait for the response frame of a written request.
    async fn await_response(&self, rx: oneshot::Receiver<Result<Bytes>>) -> Result<Bytes> {
        let timeout = self.config.request_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => {
                // The stream is now out of step with our queue: give up on it, as the
                // Java client does.
                self.shared.fail_all();
                self.reader.abort();
                Err(Error::Timeout(timeout))
            }
        }
    }
}

fn api_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, lo, hi)| (lo, hi))
}

async fn read_loop(mut read: ReadHalf, shared: Arc<Shared>, max_response_bytes: usize) {
    let decoder = FrameDecoder::new(max_response_bytes);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'outer: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if frame.len() < 4 {
                        tracing::warn!("response frame too short for a correlation id");
                        break 'outer;
                    }
                    let id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                    let pending = shared.queue.lock().expect("queue lock").pop_front();
                    match pending {
                        Some(p) if p.correlation_id == id => {
                            let _ = p.reply.send(Ok(frame));
                        }
                        Some(p) => {
                            tracing::warn!(
                                expected = p.correlation_id,
                                got = id,
                                "correlation id mismatch"
                            );
                            let _ = p.reply.send(Err(Error::Protocol(format!(
                                "correlation id {id} in response, expected {}",
                                p.correlation_id
                            ))));
                            break 'outer;
                        }
                        None => {
                            tracing::warn!(id, "response to no request");
                            break 'outer;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("bad response frame: {e}");
                    break 'outer;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    shared.fail_all();
}

/// Response bodies that can be taken out of a [`ResponseBody`].
pub trait FromResponse: Sized {
    fn from_response(body: ResponseBody) -> Option<Self>;
}

macro_rules! from_response {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl FromResponse for $ty {
            fn from_response(body: ResponseBody) -> Option<Self> {
                match body {
                    ResponseBody::$variant(b) => Some(b),
                    _ => None,
                }
            }
        })*
    };
}

from_response! {
    ApiVersions(m::ApiVersionsResponse),
    Metadata(m::MetadataResponse),
    Produce(m::ProduceResponse),
    Fetch(m::FetchResponse),
    ListOffsets(m::ListOffsetsResponse),
    CreateTopics(m::CreateTopicsResponse),
    DeleteTopics(m::DeleteTopicsResponse),
    CreatePartitions(m::CreatePartitionsResponse),
    DescribeConfigs(m::DescribeConfigsResponse),
    IncrementalAlterConfigs(m::IncrementalAlterConfigsResponse),
    DeleteRecords(m::DeleteRecordsResponse),
    InitProducerId(m::InitProducerIdResponse),
    FindCoordinator(m::FindCoordinatorResponse),
    JoinGroup(m::JoinGroupResponse),
    SyncGroup(m::SyncGroupResponse),
    Heartbeat(m::HeartbeatResponse),
    LeaveGroup(m::LeaveGroupResponse),
    OffsetCommit(m::OffsetCommitResponse),
    OffsetFetch(m::OffsetFetchResponse),
    DescribeGroups(m::DescribeGroupsResponse),
    ListGroups(m::ListGroupsResponse),
    DeleteGroups(m::DeleteGroupsResponse),
    ConsumerGroupHeartbeat(m::ConsumerGroupHeartbeatResponse),
    SaslHandshake(m::SaslHandshakeResponse),
    SaslAuthenticate(m::SaslAuthenticateResponse),
    CreateAcls(m::CreateAclsResponse),
    DescribeAcls(m::DescribeAclsResponse),
    DeleteAcls(m::DeleteAclsResponse),
    DescribeTransactions(m::DescribeTransactionsResponse),
    ListTransactions(m::ListTransactionsResponse),
    DescribeProducers(m::DescribeProducersResponse),
    WriteTxnMarkers(m::WriteTxnMarkersResponse),
}
