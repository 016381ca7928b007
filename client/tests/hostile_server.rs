//! The connection against servers that misbehave: no broker needed.

use std::time::Duration;

use runnel_client::{Connection, ConnectionConfig, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that reads one request frame and answers with `reply(correlation_id)`.
async fn serve_once(reply: fn(i32) -> Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let size = s.read_i32().await.unwrap();
        let mut body = vec![0u8; size as usize];
        s.read_exact(&mut body).await.unwrap();
        let correlation_id = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        s.write_all(&reply(correlation_id)).await.unwrap();
        // Longer than the request timeout: only refusing the size itself gives Closed.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    addr
}

fn config() -> ConnectionConfig {
    ConnectionConfig {
        request_timeout: Duration::from_secs(5),
        ..ConnectionConfig::default()
    }
}

#[tokio::test]
async fn huge_frame_size_is_refused_without_allocating() {
    let addr = serve_once(|_| i32::MAX.to_be_bytes().to_vec()).await;
    let err = Connection::connect(&addr, config()).await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
}

#[tokio::test]
async fn negative_frame_size_closes() {
    let addr = serve_once(|_| (-5i32).to_be_bytes().to_vec()).await;
    let err = Connection::connect(&addr, config()).await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
}

#[tokio::test]
async fn wrong_correlation_id_is_an_error() {
    let addr = serve_once(|id| {
        let mut f = 6i32.to_be_bytes().to_vec();
        f.extend_from_slice(&(id + 1).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f
    })
    .await;
    let err = Connection::connect(&addr, config()).await.unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err}");
}

#[tokio::test]
async fn garbage_body_is_an_error_not_a_panic() {
    // Correlation id right, then an ApiVersions body claiming 2^31-1 api keys.
    let addr = serve_once(|id| {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0]); // error code
        body.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f]); // compact array count (varint)
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        f
    })
    .await;
    let err = Connection::connect(&addr, config()).await.unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err}");
}

#[tokio::test]
async fn connection_refused_is_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = Connection::connect(&addr, config()).await.unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err}");
}
