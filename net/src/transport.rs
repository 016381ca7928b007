//! What a protocol's connection loop reads requests from and writes responses to.
//!
//! Plain TCP is the only transport today; TLS comes next and cannot carry `sendfile`
//! (the kernel would send the file's bytes unencrypted), so a transport's writer says
//! how record sets leave: [`TcpWriter`] sends them from the page cache, [`CopyWriter`]
//! copies them through a bounded buffer into any byte stream.

use std::future::Future;
use std::io;

use bytes::Bytes;
use runnel_storage::FileSlice;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::send_file::{self, COPY_CHUNK};

/// One piece of a response on the wire: encoded bytes, or a record set in a segment file.
#[derive(Debug, Clone)]
pub enum OutPart {
    Bytes(Bytes),
    File(FileSlice),
}

/// A connection's byte stream, split so that reading requests and writing responses run
/// in separate tasks.
pub trait Transport: Send + 'static {
    type Reader: AsyncRead + Unpin + Send + 'static;
    type Writer: ResponseWriter;
    fn into_split(self) -> (Self::Reader, Self::Writer);
}

/// The write side of a [`Transport`].
pub trait ResponseWriter: Send + 'static {
    fn write_bytes(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// Write `parts` in order, each record set read from its file.
    fn write_parts(&mut self, parts: &[OutPart]) -> impl Future<Output = io::Result<()>> + Send;
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

impl Transport for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = TcpWriter;
    fn into_split(self) -> (OwnedReadHalf, TcpWriter) {
        let (r, w) = TcpStream::into_split(self);
        (r, TcpWriter(w))
    }
}

/// Plain TCP: record sets go with `sendfile(2)`.
pub struct TcpWriter(OwnedWriteHalf);

impl ResponseWriter for TcpWriter {
    async fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes).await
    }
    async fn write_parts(&mut self, parts: &[OutPart]) -> io::Result<()> {
        send_file::write_parts(self.0.as_ref(), parts).await
    }
    async fn shutdown(&mut self) -> io::Result<()> {
        self.0.shutdown().await
    }
}

/// Any byte stream (TLS next): record sets are read off the runtime, [`COPY_CHUNK`] bytes
/// at a time, and written through.
pub struct CopyWriter<W> {
    inner: W,
}

impl<W> CopyWriter<W> {
    pub fn new(inner: W) -> CopyWriter<W> {
        CopyWriter { inner }
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> ResponseWriter for CopyWriter<W> {
    async fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes).await
    }
    async fn write_parts(&mut self, parts: &[OutPart]) -> io::Result<()> {
        for part in parts {
            match part {
                OutPart::Bytes(b) => self.inner.write_all(b).await?,
                OutPart::File(slice) => {
                    let mut done = 0u64;
                    while done < slice.len {
                        let len = (slice.len - done).min(COPY_CHUNK as u64);
                        let chunk = FileSlice {
                            file: slice.file.clone(),
                            position: slice.position + done,
                            len,
                        };
                        // A pread may wait for the disk: not on a runtime worker.
                        let buf = tokio::task::spawn_blocking(move || chunk.read_to_vec())
                            .await
                            .map_err(io::Error::other)??;
                        self.inner.write_all(&buf).await?;
                        done += len;
                    }
                }
            }
        }
        self.inner.flush().await
    }
    async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    /// Through a plain byte stream (as over TLS), record sets larger than the copy
    /// buffer arrive whole and in order between the encoded parts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn copy_writer_sends_parts_in_order() {
        let data: Vec<u8> = (0..(3 * COPY_CHUNK as u32 + 17))
            .map(|i| (i % 253) as u8)
            .collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        let file = Arc::new(std::fs::File::open(f.path()).unwrap());
        let parts = vec![
            OutPart::Bytes(Bytes::from_static(b"head")),
            OutPart::File(FileSlice {
                file,
                position: 5,
                len: (data.len() - 10) as u64,
            }),
            OutPart::Bytes(Bytes::from_static(b"tail")),
        ];
        let (client, mut server) = tokio::io::duplex(64 << 10);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut writer = CopyWriter::new(client);
        writer.write_parts(&parts).await.unwrap();
        writer.shutdown().await.unwrap();
        drop(writer);
        let got = reader.await.unwrap();
        let mut want = b"head".to_vec();
        want.extend_from_slice(&data[5..data.len() - 5]);
        want.extend_from_slice(b"tail");
        assert!(got == want, "bytes differ: {} vs {}", got.len(), want.len());
    }
}
