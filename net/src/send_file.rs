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
use runnel_storage::{syscall_bytes, FileSlice};

use crate::transport::OutPart;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Most bytes one `sendfile` call moves; the kernel caps it near 2 GiB anyway.
const SENDFILE_CHUNK: usize = 1 << 30;

/// Most bytes of a record set a [`crate::CopyWriter`] holds in memory at once.
pub const COPY_CHUNK: usize = 256 << 10;

/// Write `parts` in order. Encoded bytes directly followed by a record set are sent with
/// `MSG_MORE`, so a partition's header and its records leave in the same segments.
pub async fn write_parts(stream: &TcpStream, parts: &[OutPart]) -> io::Result<()> {
    for (i, part) in parts.iter().enumerate() {
        match part {
            OutPart::Bytes(bytes) => {
                let more = matches!(parts.get(i + 1), Some(OutPart::File(_)));
                send_bytes(stream, bytes, more).await?;
            }
            OutPart::File(slice) => send_file(stream, slice).await?,
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
            syscall_bytes(unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), flags) })
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
            syscall_bytes(unsafe { libc::sendfile(fd, file_fd, &mut offset, want) })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), server.unwrap().0)
    }

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, Arc<std::fs::File>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        let file = Arc::new(std::fs::File::open(f.path()).unwrap());
        (f, file)
    }

    /// Encoded parts and file slices arrive in order, byte for byte, including a slice
    /// larger than the socket buffers (so `sendfile` returns short and waits).
    #[tokio::test]
    async fn parts_arrive_in_order() {
        let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        let (_keep, file) = file_with(&data);
        let parts = vec![
            OutPart::Bytes(Bytes::from_static(b"head")),
            OutPart::File(FileSlice {
                file: file.clone(),
                position: 3,
                len: 10,
            }),
            OutPart::Bytes(Bytes::from_static(b"mid")),
            OutPart::File(FileSlice {
                file,
                position: 1000,
                len: (data.len() - 2000) as u64,
            }),
            OutPart::Bytes(Bytes::from_static(b"tail")),
        ];
        let (mut client, server) = socket_pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        write_parts(&server, &parts).await.unwrap();
        drop(server);
        let got = reader.await.unwrap();
        let mut want = b"head".to_vec();
        want.extend_from_slice(&data[3..13]);
        want.extend_from_slice(b"mid");
        want.extend_from_slice(&data[1000..data.len() - 1000]);
        want.extend_from_slice(b"tail");
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes differ");
    }

    /// A file shorter than its slice (truncated under us) is an error for the caller
    /// to close the connection on, never a hang or a panic.
    #[tokio::test]
    async fn a_file_shorter_than_its_slice_is_an_error() {
        let (_keep, file) = file_with(b"0123456789");
        let parts = vec![OutPart::File(FileSlice {
            file,
            position: 5,
            len: 100,
        })];
        let (_client, server) = socket_pair().await;
        let e = write_parts(&server, &parts).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
