//! The AMQP listener: a task per connection, one per session and one per link. The
//! connection does SASL and Open in fe2o3's acceptor; each Attach is inspected here
//! before it is accepted, so a link to an unknown entity, or one its claims do not
//! allow, is attached and at once detached with the Event Hubs error (AMQP §2.6.3).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerConnectionHandle,
    ListenerSessionHandle, SessionAcceptor, SupportedReceiverSettleModes,
};
use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp_types::definitions::{self, ErrorCondition, ReceiverSettleMode, Role};
use fe2o3_amqp_types::messaging::TargetArchetype;
use fe2o3_amqp_types::performatives::Attach;
use fe2o3_amqp_types::primitives::Symbol;
use runnel_net::tls::ServerTls;
use runnel_net::{Accepted, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use crate::address;
use crate::claims::Claims;
use crate::node::Replies;
use crate::sasl::{Login, RunnelSasl};
use crate::{EventHubs, IDLE_TIMEOUT_MS, MAX_FRAME_SIZE, MAX_MESSAGE_SIZE};

/// SASL and Open must finish within this, so a silent socket cannot hold a slot.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a refused link waits for the peer's Detach (and a session ended with an
/// error for its End).
const DETACH_TIMEOUT: Duration = Duration::from_secs(30);
/// Sessions per connection (channel-max + 1) and links per session (handle-max + 1).
const CHANNEL_MAX: u16 = 255;
const HANDLE_MAX: u32 = 255;

/// What every link of one connection shares.
pub struct Connection {
    pub hubs: EventHubs,
    pub claims: Claims,
    pub replies: Replies,
    pub peer: std::net::SocketAddr,
}

/// Serve AMQP (or AMQPS, with `tls`) on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: Listener,
    tls: Option<Arc<ServerTls>>,
    hubs: EventHubs,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Accepted::Open { stream, peer, slot } => {
                let hubs = hubs.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    match tls {
                        Some(tls) => match tls.accept(stream).await {
                            Ok(s) => connection(s.into_inner(), peer, hubs).await,
                            Err(e) => tracing::info!(%peer, error = %e, "AMQPS handshake failed"),
                        },
                        None => connection(stream, peer, hubs).await,
                    }
                });
            }
            Accepted::Refused { peer, limit } => {
                tracing::info!(%peer, ?limit, "AMQP connection refused: over the limit");
            }
        }
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

async fn connection<Io>(io: Io, peer: std::net::SocketAddr, hubs: EventHubs)
where
    Io: AsyncRead + AsyncWrite + std::fmt::Debug + Send + Unpin + 'static,
{
    let sasl = RunnelSasl::new(hubs.security.clone());
    let login = sasl.login.clone();
    let acceptor = ConnectionAcceptor::builder()
        .container_id(format!("runnel-{}", hubs.broker.node_id()))
        .max_frame_size(MAX_FRAME_SIZE)
        .channel_max(CHANNEL_MAX)
        .idle_time_out(IDLE_TIMEOUT_MS)
        // Python's client reads Open's last field (properties) by index, so a frame
        // that ends early, as AMQP allows, fails there: always send it.
        .properties(open_properties())
        .sasl_acceptor(sasl)
        .build();
    let io = FrameGuard::new(io);
    let mut conn = match tokio::time::timeout(OPEN_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "AMQP open failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "AMQP open did not finish in time");
            return;
        }
    };
    let login = login.get().cloned().unwrap_or(Login::Anonymous);
    let shared = Arc::new(Connection {
        hubs,
        claims: Claims::new(login),
        replies: Replies::default(),
        peer,
    });
    sessions(&mut conn, shared).await;
    let _ = conn.close().await;
}

/// fe2o3's frame decoders read a frame's 8-byte header without checking that the
/// frame holds one, so a size field of 4 to 7 panics the connection's task. This
/// watches the frame boundaries of what the peer sends and fails the read at such a
/// size instead (AMQP §2.3.1: a frame is at least its 8-byte header).
#[derive(Debug)]
struct FrameGuard<Io> {
    io: Io,
    at: Boundary,
}

/// Where in the peer's byte stream the guard is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    /// Inside a protocol header: this many of its bytes are still to come.
    Header(u8),
    /// At a frame: the first `have` bytes of its size field (or of a new header,
    /// `AMQP`, which no frame within max-frame-size starts with).
    Size { field: [u8; 4], have: u8 },
    /// Inside a frame: this many of its bytes are still to come.
    Body(u32),
    /// A frame was too short: every read fails from here.
    Failed(u32),
}

impl Boundary {
    const START: Boundary = Boundary::Header(8);

    /// Move past `bytes`; `Err(size)` at a frame shorter than its header.
    fn scan(&mut self, mut bytes: &[u8]) -> Result<(), u32> {
        while let Some((&first, rest)) = bytes.split_first() {
            match self {
                Boundary::Failed(size) => return Err(*size),
                Boundary::Header(left) => {
                    let n = bytes.len().min(usize::from(*left));
                    bytes = &bytes[n..];
                    *left -= n as u8;
                    if *left == 0 {
                        *self = Boundary::Size {
                            field: [0; 4],
                            have: 0,
                        };
                    }
                }
                Boundary::Body(left) => {
                    let n = bytes.len().min(*left as usize);
                    bytes = &bytes[n..];
                    *left -= n as u32;
                    if *left == 0 {
                        *self = Boundary::Size {
                            field: [0; 4],
                            have: 0,
                        };
                    }
                }
                Boundary::Size { field, have } => {
                    field[usize::from(*have)] = first;
                    *have += 1;
                    bytes = rest;
                    if *have == 4 {
                        let size = u32::from_be_bytes(*field);
                        *self = match &*field {
                            b"AMQP" => Boundary::Header(4),
                            _ if size < 8 => Boundary::Failed(size),
                            _ => Boundary::Body(size - 4),
                        };
                    }
                }
            }
        }
        match self {
            Boundary::Failed(size) => Err(*size),
            _ => Ok(()),
        }
    }
}

impl<Io> FrameGuard<Io> {
    fn new(io: Io) -> FrameGuard<Io> {
        FrameGuard {
            io,
            at: Boundary::START,
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for FrameGuard<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Boundary::Failed(size) = this.at {
            return Poll::Ready(Err(too_short(size)));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        Poll::Ready(this.at.scan(&buf.filled()[before..]).map_err(too_short))
    }
}

fn too_short(size: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("an AMQP frame of {size} bytes is shorter than its header"),
    )
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for FrameGuard<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

fn open_properties() -> definitions::Fields {
    let mut f = definitions::Fields::new();
    f.insert(
        Symbol::from("product"),
        fe2o3_amqp_types::primitives::Value::String("runnel".into()),
    );
    f.insert(
        Symbol::from("version"),
        fe2o3_amqp_types::primitives::Value::String(env!("CARGO_PKG_VERSION").into()),
    );
    f
}

async fn sessions(conn: &mut ListenerConnectionHandle, shared: Arc<Connection>) {
    let acceptor = SessionAcceptor::builder()
        .handle_max(HANDLE_MAX)
        .incoming_window(2048)
        .outgoing_window(2048)
        .build();
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(incoming) = conn.next_incoming_session().await {
        match acceptor.accept_incoming_session(incoming, conn).await {
            Ok(session) => {
                tasks.spawn(links(session, shared.clone()));
            }
            Err(e) => {
                tracing::info!(peer = %shared.peer, error = %e, "AMQP begin failed");
                break;
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    tasks.abort_all();
}

async fn links(mut session: ListenerSessionHandle, shared: Arc<Connection>) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut over_handle_max = None;
    while let Some(attach) = session.next_incoming_attach().await {
        // fe2o3 does not hold the peer to the handle-max it was sent, so without this
        // one session could attach links without end.
        if attach.handle.0 > HANDLE_MAX {
            over_handle_max = Some(attach.handle.0);
            break;
        }
        attach_link(attach, &mut session, &shared, &mut tasks).await;
        while tasks.try_join_next().is_some() {}
    }
    // The links end with their session.
    tasks.abort_all();
    match over_handle_max {
        Some(handle) => {
            tracing::info!(peer = %shared.peer, handle, "AMQP attach beyond handle-max: session ended");
            // AMQP §2.7.2 makes this a framing error; the peer may never answer the End.
            let end = session.end_with_error(error(
                FRAMING_ERROR,
                format!("handle {handle} is over handle-max {HANDLE_MAX}"),
            ));
            let _ = tokio::time::timeout(DETACH_TIMEOUT, end).await;
        }
        None => {
            let _ = session.end().await;
        }
    }
}

/// An AMQP error for a detach or a disposition.
pub fn error(condition: &str, description: impl Into<String>) -> definitions::Error {
    definitions::Error::new(
        ErrorCondition::Custom(Symbol::from(condition)),
        Some(description.into()),
        None,
    )
}

pub const UNAUTHORIZED: &str = "amqp:unauthorized-access";
pub const NOT_FOUND: &str = "amqp:not-found";
pub const LINK_STOLEN: &str = "amqp:link:stolen";
pub const RESOURCE_LIMIT: &str = "amqp:resource-limit-exceeded";
pub const ARGUMENT_ERROR: &str = "com.microsoft:argument-error";
pub const ARGUMENT_OUT_OF_RANGE: &str = "com.microsoft:argument-out-of-range";
pub const INTERNAL_ERROR: &str = "amqp:internal-error";
pub const NOT_IMPLEMENTED: &str = "amqp:not-implemented";
pub const FRAMING_ERROR: &str = "amqp:connection:framing-error";

pub(crate) fn target_address(attach: &Attach) -> Option<String> {
    match attach.target.as_deref() {
        Some(TargetArchetype::Target(t)) => t.address.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn source_address(attach: &Attach) -> Option<String> {
    attach.source.as_ref().and_then(|s| s.address.clone())
}

async fn attach_link(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    shared: &Arc<Connection>,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    // The client's role: a sender sends to our target, a receiver reads our source.
    let client_sends = attach.role == Role::Sender;
    let address = if client_sends {
        target_address(&attach)
    } else {
        source_address(&attach)
    }
    .unwrap_or_default();
    let node = address::parse(&address);
    let link_name = address::printable(&attach.name);
    let plan = crate::plan::plan(&attach, node, &address, shared);
    // Event Hubs settles on its first disposition: a sender that asked for mode
    // `second` gets `first` back, or Python waits for a settlement that never comes.
    // A sender that will be refused gets no credit: the JavaScript SDK takes credit
    // as a successful attach and reports the detach that follows as "busy".
    let credit = match plan {
        Ok(_) => CreditMode::Auto(200),
        Err(_) => CreditMode::Manual,
    };
    let acceptor = LinkAcceptor::builder()
        .max_message_size(MAX_MESSAGE_SIZE)
        .supported_receiver_settle_modes(SupportedReceiverSettleModes::First)
        .fallback_receiver_settle_mode(ReceiverSettleMode::First)
        .receiver_credit_mode(credit)
        .build();
    let endpoint = match acceptor.accept_incoming_attach(attach, session).await {
        Ok(e) => e,
        Err(e) => {
            tracing::info!(peer = %shared.peer, link = %link_name, error = %e, "AMQP attach failed");
            return;
        }
    };
    let shared = shared.clone();
    let refusal = match (plan, endpoint) {
        (Err(refusal), endpoint) => {
            tracing::info!(peer = %shared.peer, link = %link_name, address = %address::printable(&address), condition = refusal.condition, reason = %refusal.description, "AMQP link refused");
            (endpoint, error(refusal.condition, refusal.description))
        }
        (Ok(crate::plan::Plan::Request(node)), LinkEndpoint::Receiver(l)) => {
            tasks.spawn(crate::node::requests(l, node, shared));
            return;
        }
        (Ok(crate::plan::Plan::Reply { node, target }), LinkEndpoint::Sender(l)) => {
            tasks.spawn(crate::node::replies(l, node, target, shared));
            return;
        }
        (Ok(crate::plan::Plan::Publish(p)), LinkEndpoint::Receiver(l)) => {
            tasks.spawn(crate::publish::run(l, p, shared));
            return;
        }
        (Ok(crate::plan::Plan::Consume(c)), LinkEndpoint::Sender(l)) => {
            tasks.spawn(crate::consume::run(l, *c, shared));
            return;
        }
        (Ok(_), endpoint) => (endpoint, error(NOT_IMPLEMENTED, "no such link")),
    };
    refuse(refusal.0, refusal.1, tasks);
}

/// Detach a refused link with `error`. fe2o3 then waits for the peer's Detach, which
/// a peer may never send: that wait runs beside the session's attach loop, so it
/// cannot stall the session's other attaches, and gives up after a while.
fn refuse(endpoint: LinkEndpoint, error: definitions::Error, tasks: &mut tokio::task::JoinSet<()>) {
    tasks.spawn(async move {
        let detach = async move {
            let _ = match endpoint {
                LinkEndpoint::Sender(l) => l.close_with_error(error).await,
                LinkEndpoint::Receiver(l) => l.close_with_error(error).await,
            };
        };
        let _ = tokio::time::timeout(DETACH_TIMEOUT, detach).await;
    });
}

#[cfg(test)]
mod tests {
    use super::Boundary;

    fn scan(chunks: &[&[u8]]) -> Result<(), u32> {
        let mut at = Boundary::START;
        chunks.iter().try_for_each(|c| at.scan(c))
    }

    /// fuzz/ amqp_frame's find: a performative's list32 count of 2^32 - 1 overflowed
    /// serde_amqp's field counter (a panic in a debug build). What the FrameGuard lets
    /// through reaches this decoder; vendor/serde_amqp.patch makes it an error.
    #[test]
    fn a_performative_with_an_overflowing_field_count_is_an_error() {
        use fe2o3_amqp_types::performatives::{Begin, Performative};
        let begin = [0x00, 0x53, 0x11, 0xd0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff];
        assert!(serde_amqp::from_slice::<Performative>(&begin).is_err());
        assert!(serde_amqp::from_slice::<Begin>(&begin).is_err());
    }

    #[test]
    fn frames_and_headers_pass() {
        let mut stream = b"AMQP\x03\x01\x00\x00".to_vec();
        stream.extend_from_slice(&[0, 0, 0, 10, 2, 1, 0, 0, 0x45, 0x40]);
        stream.extend_from_slice(b"AMQP\x00\x01\x00\x00");
        // A heartbeat: a frame of just its header.
        stream.extend_from_slice(&[0, 0, 0, 8, 2, 0, 0, 0]);
        assert_eq!(scan(&[&stream]), Ok(()));
        // The same, a byte at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(scan(&bytes), Ok(()));
    }

    #[test]
    fn a_frame_shorter_than_its_header_fails() {
        for size in 0u8..8 {
            let stream = [b"AMQP\x03\x01\x00\x00".as_slice(), &[0, 0, 0, size, 2, 1]];
            assert_eq!(scan(&stream), Err(u32::from(size)));
        }
        // And keeps failing.
        let mut at = Boundary::START;
        assert!(at.scan(b"AMQP\x00\x01\x00\x00\x00\x00\x00\x05").is_err());
        assert!(at.scan(b"more").is_err());
    }
}
