//! The `GET /metrics` listener.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::exporter::Exporter;

/// Largest request head we read; more is answered 431 and the connection closed.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client has to send its request head, and we to send the response.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrape connections served at once; more are closed at once.
const MAX_HTTP_CONNECTIONS: usize = 16;

/// Bind `metrics.listener`. `Ok(None)` when disabled, or when the default address is
/// taken (logged: another broker on this host has it; the broker runs without metrics).
/// A configured address that cannot be bound is an error, as for `listeners`.
pub async fn bind(config: &crate::BrokerConfig) -> std::io::Result<Option<TcpListener>> {
    let Some(addr) = config.metrics_listener else {
        tracing::info!("metrics are disabled (metrics.listener is empty)");
        return Ok(None);
    };
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if !config.metrics_listener_configured => {
            tracing::error!(%addr, error = %e, "cannot bind the default metrics.listener; running without metrics (set metrics.listener to another address, or empty to disable)");
            Ok(None)
        }
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("binding metrics.listener {addr}: {e}"),
        )),
    }
}

/// Serve `GET /metrics` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    exporter: Arc<Exporter>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many metrics connections; closing");
            continue;
        };
        let exporter = exporter.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let outcome =
                tokio::time::timeout(HTTP_TIMEOUT, http_connection(stream, exporter)).await;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "metrics connection failed"),
                Err(_) => tracing::debug!(%peer, "metrics connection timed out"),
            }
        });
    }
}

enum Head {
    Complete(usize),
    TooLarge,
    Closed,
}

async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Head> {
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_head_end(buf) {
            return Ok(Head::Complete(end));
        }
        if buf.len() >= MAX_REQUEST_HEAD {
            return Ok(Head::TooLarge);
        }
        let want = (MAX_REQUEST_HEAD - buf.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some(i);
    }
    buf.windows(2).position(|w| w == b"\n\n")
}

async fn http_connection(mut stream: TcpStream, exporter: Arc<Exporter>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head = match read_head(&mut stream, &mut buf).await? {
        Head::Complete(end) => &buf[..end],
        Head::TooLarge => {
            return respond(
                &mut stream,
                431,
                "Request Header Fields Too Large",
                "text/plain",
                b"request head too large\n",
                true,
            )
            .await;
        }
        Head::Closed => return Ok(()),
    };
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if v.starts_with("HTTP/1.") => (m, t),
        _ => {
            return respond(
                &mut stream,
                400,
                "Bad Request",
                "text/plain",
                b"bad request\n",
                true,
            )
            .await
        }
    };
    let path = target.split('?').next().unwrap_or_default();
    if path == "/health" {
        // The Event Hubs emulator's health check (its HealthCheckApiSchema).
        return respond(
            &mut stream,
            200,
            "OK",
            "application/json",
            br#"{"status":"healthy","message":"Service is healthy."}"#,
            method != "HEAD",
        )
        .await;
    }
    if path != "/metrics" {
        return respond(
            &mut stream,
            404,
            "Not Found",
            "text/plain",
            b"not found; try /metrics\n",
            true,
        )
        .await;
    }
    let with_body = match method {
        "GET" => true,
        "HEAD" => false,
        _ => {
            return respond(
                &mut stream,
                405,
                "Method Not Allowed",
                "text/plain",
                b"only GET and HEAD\n",
                true,
            )
            .await;
        }
    };
    let text = tokio::task::spawn_blocking(move || exporter.render())
        .await
        .map_err(std::io::Error::other)?;
    respond(
        &mut stream,
        200,
        "OK",
        "text/plain; version=0.0.4; charset=utf-8",
        text.as_bytes(),
        with_body,
    )
    .await
}

async fn respond(
    stream: &mut TcpStream,
    code: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        body.len(),
        if code == 405 { "Allow: GET, HEAD\r\n" } else { "" },
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(body).await?;
    }
    stream.shutdown().await
}
