//! The AMQP listener: a task per connection, one per session and one per link. The
//! connection does SASL and Open in fe2o3's acceptor; each Attach is inspected here
//! before it is accepted, so a link to an unknown entity, or one its claims do not
//! allow, is attached and at once detached with the Event Hubs error (AMQP §2.6.3).

use std::sync::Arc;
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
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::address;
use crate::claims::Claims;
use crate::node::Replies;
use crate::sasl::{Login, RunnelSasl};
use crate::{EventHubs, IDLE_TIMEOUT_MS, MAX_FRAME_SIZE, MAX_MESSAGE_SIZE};

/// SASL and Open must finish within this, so a silent socket cannot hold a slot.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
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
    while let Some(attach) = session.next_incoming_attach().await {
        attach_link(attach, &mut session, &shared, &mut tasks).await;
        while tasks.try_join_next().is_some() {}
    }
    // The links end with their session.
    tasks.abort_all();
    let _ = session.end().await;
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

fn target_address(attach: &Attach) -> Option<String> {
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
    match (plan, endpoint) {
        (Err(refusal), LinkEndpoint::Sender(l)) => {
            tracing::info!(peer = %shared.peer, link = %link_name, address = %address::printable(&address), condition = refusal.condition, reason = %refusal.description, "AMQP link refused");
            let _ = l
                .close_with_error(error(refusal.condition, refusal.description))
                .await;
        }
        (Err(refusal), LinkEndpoint::Receiver(l)) => {
            tracing::info!(peer = %shared.peer, link = %link_name, address = %address::printable(&address), condition = refusal.condition, reason = %refusal.description, "AMQP link refused");
            let _ = l
                .close_with_error(error(refusal.condition, refusal.description))
                .await;
        }
        (Ok(crate::plan::Plan::Request(node)), LinkEndpoint::Receiver(l)) => {
            tasks.spawn(crate::node::requests(l, node, shared));
        }
        (Ok(crate::plan::Plan::Reply { node, target }), LinkEndpoint::Sender(l)) => {
            tasks.spawn(crate::node::replies(l, node, target, shared));
        }
        (Ok(crate::plan::Plan::Publish(p)), LinkEndpoint::Receiver(l)) => {
            tasks.spawn(crate::publish::run(l, p, shared));
        }
        (Ok(crate::plan::Plan::Consume(c)), LinkEndpoint::Sender(l)) => {
            tasks.spawn(crate::consume::run(l, *c, shared));
        }
        (Ok(_), LinkEndpoint::Sender(l)) => {
            let _ = l
                .close_with_error(error(NOT_IMPLEMENTED, "no such link"))
                .await;
        }
        (Ok(_), LinkEndpoint::Receiver(l)) => {
            let _ = l
                .close_with_error(error(NOT_IMPLEMENTED, "no such link"))
                .await;
        }
    }
}
