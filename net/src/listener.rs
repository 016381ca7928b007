//! A TCP listener that counts open connections and refuses those over
//! `max.connections`, as Kafka's acceptor does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// How long to wait after a failed accept (EMFILE and friends) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Holds one of the listener's connection slots; released on drop.
#[derive(Debug)]
pub struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
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
    /// A connection over `max.connections`, already closed.
    Refused { peer: SocketAddr, limit: usize },
}

pub struct Listener {
    inner: TcpListener,
    open: Arc<AtomicUsize>,
    max_connections: usize,
}

impl Listener {
    pub async fn bind(addr: &str, max_connections: usize) -> std::io::Result<Listener> {
        Ok(Listener {
            inner: TcpListener::bind(addr).await?,
            open: Arc::new(AtomicUsize::new(0)),
            max_connections,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The number of open connections, live (for metrics).
    pub fn open_connections(&self) -> Arc<AtomicUsize> {
        self.open.clone()
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
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = ConnectionSlot(self.open.clone());
        if open > self.max_connections {
            drop(stream);
            drop(slot);
            return Accepted::Refused {
                peer,
                limit: self.max_connections,
            };
        }
        // Responses are whole frames written at once; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        Accepted::Open { stream, peer, slot }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_over_the_limit_are_refused_and_slots_come_back() {
        let listener = Listener::bind("127.0.0.1:0", 1).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _first = TcpStream::connect(addr).await.unwrap();
        let kept = match listener.accept().await {
            Accepted::Open { slot, .. } => slot,
            other => panic!("first connection: {other:?}"),
        };
        let _second = TcpStream::connect(addr).await.unwrap();
        match listener.accept().await {
            Accepted::Refused { limit, .. } => assert_eq!(limit, 1),
            other => panic!("second connection: {other:?}"),
        }
        assert_eq!(listener.open_connections().load(Ordering::Acquire), 1);
        drop(kept);
        assert_eq!(listener.open_connections().load(Ordering::Acquire), 0);
        let _third = TcpStream::connect(addr).await.unwrap();
        assert!(matches!(listener.accept().await, Accepted::Open { .. }));
    }
}
