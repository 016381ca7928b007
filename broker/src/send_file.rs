//! Writing a response made of parts: encoded bytes, and record sets sent straight from
//! the segment files with `sendfile(2)`, as Kafka does (`FileRecords.writeTo`). The
//! record bytes go from the page cache to the socket without passing through our memory;
//! reading them into a buffer and copying that into the frame cost more than the rest of
//! a fetch together (see BENCHMARKS.md, W2).
//!
//! Hand-written on the raw descriptor because tokio has no `sendfile`; readiness still
//! comes from tokio (`writable` + `try_io`), so a slow client parks this task, not a
//! thread.

use std::io;
use std::os::unix::io::AsRawFd;

use bytes::Bytes;
use runnel_protocol::response_parts::ResponsePart;
use runnel_storage::FileSlice;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Most bytes one `sendfile` call moves; the kernel caps it near 2 GiB anyway.
const SENDFILE_CHUNK: usize = 1 << 30;

/// Write `parts` in order. Encoded bytes directly followed by a record set are sent with
/// `MSG_MORE`, so a partition's header and its records leave in the same segments.
pub async fn write_parts(stream: &TcpStream, parts: &[ResponsePart<FileSlice>]) -> io::Result<()> {
    for (i, part) in parts.iter().enumerate() {
        match part {
            ResponsePart::Encoded(bytes) => {
                let more = matches!(parts.get(i + 1), Some(ResponsePart::Records(_)));
                send_bytes(stream, bytes, more).await?;
            }
            ResponsePart::Records(slice) => send_file(stream, slice).await?,
        }
    }
    Ok(())
}

async fn send_bytes(stream: &TcpStream, bytes: &Bytes, more: bool) -> io::Result<()> {
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    let fd = stream.as_raw_fd();
    let mut done = 0usize;
    while done < bytes.len() {
        stream.writable().await?;
        let rest = &bytes[done..];
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: `rest` is a live slice of `rest.len()` bytes; send only reads it.
            let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), flags) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if retry(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn send_file(stream: &TcpStream, slice: &FileSlice) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let file_fd = slice.file.as_raw_fd();
    let end = slice
        .position
        .checked_add(slice.len)
        .ok_or_else(|| io::Error::other("file slice past the end of the address space"))?;
    let mut offset = libc::off_t::try_from(slice.position).map_err(io::Error::other)?;
    let end = libc::off_t::try_from(end).map_err(io::Error::other)?;
    while offset < end {
        stream.writable().await?;
        let want = ((end - offset) as usize).min(SENDFILE_CHUNK);
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the call (the slice holds its file,
            // `stream` its socket) and `offset` is a valid, exclusively borrowed off_t.
            let n = unsafe { libc::sendfile(fd, file_fd, &mut offset, want) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            // The file is shorter than the slice the log handed out: the frame's length
            // is already on the wire, so the connection cannot continue.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended inside a fetch's record set",
                ))
            }
            Ok(_) => {}
            Err(e) if retry(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `WouldBlock` (readiness was stale; `try_io` cleared it) and `Interrupted` are retried.
fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
