//! A TCP listener that counts open connections and refuses those over the limits, as
//! Kafka's acceptor does: `max.connections` across the broker, the listener's own
//! `listener.name.<l>.max.connections`, and `max.connections.per.ip` (with its
//! overrides) across the broker.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// Connections the kernel completes before the broker accepts them. std's and tokio's
/// 128 overflow in a burst (10,000 clients connecting, a reconnect storm), and each
/// SYN dropped costs its client a retransmit: 1 s, then 3, 7... The kernel caps it at
/// net.core.somaxconn.
const LISTEN_BACKLOG: u32 = 1024;

/// How long to wait after a failed accept (EMFILE and friends) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The broker-wide connection limits, shared by every listener.
#[derive(Debug)]
pub struct ConnectionLimits {
    open: Arc<AtomicUsize>,
    max_connections: usize,
    max_per_ip: usize,
    per_ip_overrides: BTreeMap<IpAddr, usize>,
    /// Open connections by client address (only addresses with one open).
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionLimits {
    pub fn new(
        max_connections: usize,
        max_per_ip: usize,
        per_ip_overrides: BTreeMap<IpAddr, usize>,
    ) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            open: Arc::new(AtomicUsize::new(0)),
            max_connections,
            max_per_ip,
            per_ip_overrides,
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// The number of open connections across listeners, live (for metrics).
    pub fn open_connections(&self) -> Arc<AtomicUsize> {
        self.open.clone()
    }

    fn per_ip_counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // The map holds plain counts updated in one statement; a panic elsewhere
        // cannot leave it half-changed.
        self.per_ip.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Holds one of the listener's connection slots; released on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    listener_open: Arc<AtomicUsize>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
        self.listener_open.fetch_sub(1, Ordering::AcqRel);
        let mut per_ip = self.limits.per_ip_counts();
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max.connections`.
    Broker(usize),
    /// The listener's own `max.connections`.
    Listener(usize),
    /// `max.connections.per.ip` or its override for this address.
    PerIp(usize),
}

/// What [`Listener::accept`] got.
#[derive(Debug)]
pub enum Accepted {
    /// A connection within the limit; keep the slot for as long as it is open.
    Open {
        stream: TcpStream,
        peer: SocketAddr,
        slot: ConnectionSlot,
    },
    /// A connection over a limit, already closed.
    Refused { peer: SocketAddr, limit: Limit },
}

pub struct Listener {
    inner: TcpListener,
    limits: Arc<ConnectionLimits>,
    /// This listener's open connections.
    open: Arc<AtomicUsize>,
    max_connections: Option<usize>,
}

impl Listener {
    /// Bind `addr`; `max_connections` is the listener's own limit, if it has one.
    pub async fn bind(
        addr: &str,
        limits: Arc<ConnectionLimits>,
        max_connections: Option<usize>,
    ) -> std::io::Result<Listener> {
        Ok(Listener {
            inner: bind_with_backlog(addr).await?,
            limits,
            open: Arc::new(AtomicUsize::new(0)),
            max_connections,
        })
    }

    /// [`bind`](Listener::bind), with the TCP maximum segment size its connections
    /// advertise capped at `max_segment`.
    pub async fn bind_with_max_segment(
        addr: SocketAddr,
        limits: Arc<ConnectionLimits>,
        max_connections: Option<usize>,
        max_segment: u32,
    ) -> std::io::Result<Listener> {
        use std::os::fd::AsRawFd;
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        let mss = max_segment as libc::c_int;
        // SAFETY: a valid socket descriptor and a c_int option of the right size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_MAXSEG,
                (&mss as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        socket.bind(addr)?;
        Ok(Listener {
            inner: socket.listen(1024)?,
            limits,
            open: Arc::new(AtomicUsize::new(0)),
            max_connections,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The next connection. A failed accept is logged and retried after a pause, so a
    /// process out of descriptors slows down instead of spinning.
    pub async fn accept(&self) -> Accepted {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => return self.admit(stream, peer),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    fn admit(&self, stream: TcpStream, peer: SocketAddr) -> Accepted {
        let limits = &self.limits;
        let total = limits.open.fetch_add(1, Ordering::AcqRel) + 1;
        let here = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        let from_ip = {
            let mut per_ip = limits.per_ip_counts();
            let n = per_ip.entry(peer.ip()).or_insert(0);
            *n += 1;
            *n
        };
        let slot = ConnectionSlot {
            limits: limits.clone(),
            listener_open: self.open.clone(),
            ip: peer.ip(),
        };
        let ip_limit = limits
            .per_ip_overrides
            .get(&peer.ip())
            .copied()
            .unwrap_or(limits.max_per_ip);
        let refused = if from_ip > ip_limit {
            Some(Limit::PerIp(ip_limit))
        } else if self.max_connections.is_some_and(|max| here > max) {
            self.max_connections.map(Limit::Listener)
        } else if total > limits.max_connections {
            Some(Limit::Broker(limits.max_connections))
        } else {
            None
        };
        if let Some(limit) = refused {
            drop(stream);
            drop(slot);
            return Accepted::Refused { peer, limit };
        }
        // Responses are whole frames written at once; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        // As Kafka's acceptor: a peer that vanished without a FIN or RST (a pulled
        // cable, a dead NAT entry) is found by the kernel's keepalive probes.
        set_keepalive(&stream);
        Accepted::Open { stream, peer, slot }
    }
}

/// `TcpListener::bind` (each address `addr` resolves to, in turn), with
/// [`LISTEN_BACKLOG`].
async fn bind_with_backlog(addr: &str) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        if let Err(e) = socket.bind(addr) {
            last_error = Some(e);
            continue;
        }
        match socket.listen(LISTEN_BACKLOG) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

fn set_keepalive(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "SO_KEEPALIVE");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_over_the_limit_are_refused_and_slots_come_back() {
        let limits = ConnectionLimits::new(1, usize::MAX, BTreeMap::new());
        let listener = Listener::bind("127.0.0.1:0", limits.clone(), None)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let _first = TcpStream::connect(addr).await.unwrap();
        let kept = match listener.accept().await {
            Accepted::Open { slot, .. } => slot,
            other => panic!("first connection: {other:?}"),
        };
        let _second = TcpStream::connect(addr).await.unwrap();
        match listener.accept().await {
            Accepted::Refused { limit, .. } => assert_eq!(limit, Limit::Broker(1)),
            other => panic!("second connection: {other:?}"),
        }
        assert_eq!(limits.open_connections().load(Ordering::Acquire), 1);
        drop(kept);
        assert_eq!(limits.open_connections().load(Ordering::Acquire), 0);
        let _third = TcpStream::connect(addr).await.unwrap();
        assert!(matches!(listener.accept().await, Accepted::Open { .. }));
    }

    /// `max.connections.per.ip` and its overrides count across listeners; the
    /// listener's own limit counts its connections only.
    #[tokio::test]
    async fn per_ip_and_per_listener_limits() {
        let localhost: IpAddr = "127.0.0.1".parse().unwrap();
        let limits = ConnectionLimits::new(100, 1, BTreeMap::from([(localhost, 2)]));
        let a = Listener::bind("127.0.0.1:0", limits.clone(), None)
            .await
            .unwrap();
        let b = Listener::bind("127.0.0.1:0", limits.clone(), Some(1))
            .await
            .unwrap();
        let mut clients = Vec::new();
        let mut kept = Vec::new();
        for listener in [&a, &b] {
            clients.push(
                TcpStream::connect(listener.local_addr().unwrap())
                    .await
                    .unwrap(),
            );
            match listener.accept().await {
                Accepted::Open { slot, .. } => kept.push(slot),
                other => panic!("{other:?}"),
            }
        }
        clients.push(TcpStream::connect(a.local_addr().unwrap()).await.unwrap());
        match a.accept().await {
            Accepted::Refused { limit, .. } => assert_eq!(limit, Limit::PerIp(2)),
            other => panic!("a third from 127.0.0.1: {other:?}"),
        }
        drop(kept.pop());
        clients.push(TcpStream::connect(b.local_addr().unwrap()).await.unwrap());
        assert!(matches!(b.accept().await, Accepted::Open { .. }));
        assert!(limits.per_ip_counts().len() <= 1);
    }
}
