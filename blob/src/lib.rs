//! Runnel's blob store: the subset of the Azure Blob Storage REST API that the Event Hubs
//! SDKs' blob checkpoint stores use, kept durably on local disk, so the unmodified
//! checkpoint-store packages work without an Azure account or Azurite.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use runnel_blob::{Accounts, BlobService};
//! let service = BlobService::open("/var/lib/runnel/blobs".as_ref(), Accounts::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:10000").await?;
//! service.serve(listener).await; // until the future is dropped
//! # Ok(()) }
//! ```
//!
//! URLs are path-style, `http://host:port/<account>/<container>/<blob>`, as
//! `UseDevelopmentStorage=true` (account `devstoreaccount1`) gives them. Requests are
//! authenticated with Shared Key. See README.md in this crate for the operations served
//! and what is not.

mod auth;
mod server;
mod store;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use auth::{sign, string_to_sign, Accounts, DEV_ACCOUNT, DEV_ACCOUNT_KEY};

/// The clock the server stamps Last-Modified, ETags and Date with and checks request
/// dates against: the system's, unless the embedding process sets its own (the broker
/// passes its one wall clock, so that an injected clock jump moves this too).
static CLOCK: std::sync::OnceLock<fn() -> std::time::SystemTime> = std::sync::OnceLock::new();

/// Set the process's clock for the blob service; only the first call counts.
pub fn set_clock(now: fn() -> std::time::SystemTime) {
    let _ = CLOCK.set(now);
}

pub(crate) fn now() -> std::time::SystemTime {
    CLOCK.get().map_or_else(std::time::SystemTime::now, |f| f())
}

/// Bounds on what one client can make the server hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Larger request bodies get 413 RequestBodyTooLarge (checkpoint blobs are empty).
    pub max_body_bytes: usize,
    /// Connections past this are closed as they arrive.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 << 20,
            max_connections: 256,
        }
    }
}

/// The blob service over one directory.
pub struct BlobService {
    shared: Arc<server::Shared>,
}

impl BlobService {
    /// Opens (creating if needed) the store in `dir`, its own directory (for example
    /// `<data dir>/blobs`), and loads every container's and blob's properties. Only one
    /// service may have a directory open at a time.
    pub fn open(dir: &Path, accounts: Accounts) -> io::Result<BlobService> {
        Self::open_with_limits(dir, accounts, Limits::default())
    }

    pub fn open_with_limits(
        dir: &Path,
        accounts: Accounts,
        limits: Limits,
    ) -> io::Result<BlobService> {
        let store = store::Store::open(dir)?;
        Ok(BlobService {
            shared: Arc::new(server::Shared {
                store: Mutex::new(store),
                accounts,
                limits,
            }),
        })
    }

    /// Serves HTTP/1.1 on `listener` until this future is dropped (or its task aborted),
    /// which also ends every open connection. Every acknowledged write is already on disk.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        server::serve(self.shared, listener).await
    }
}
