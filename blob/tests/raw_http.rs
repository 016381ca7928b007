//! Malformed HTTP, oversized requests and bad headers over raw TCP: each gets an error
//! status or a closed connection, and the server keeps serving.

mod support;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hyper::header::{HeaderName, HeaderValue};
use hyper::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` (ignoring a write cut short by the server closing), then reads until
/// the server closes or goes quiet; returns what came back.
async fn exchange(port: u16, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(resp: &str) -> Option<u16> {
    resp.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A request head signed with the dev account's key, as the SDKs sign one.
fn signed(method: &str, path: &str, query: &str, extra: &[(&str, &str)]) -> String {
    let mut h = HeaderMap::new();
    let date = httpdate::fmt_http_date(SystemTime::now());
    h.insert("x-ms-date", HeaderValue::from_str(&date).unwrap());
    h.insert("x-ms-version", HeaderValue::from_static("2021-12-02"));
    for (n, v) in extra {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let q = (!query.is_empty()).then_some(query);
    let sts = runnel_blob::string_to_sign("devstoreaccount1", method, &h, path, q).unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(runnel_blob::DEV_ACCOUNT_KEY)
        .unwrap();
    let sig = runnel_blob::sign(&key, &sts);
    let target = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (n, v) in &h {
        out.push_str(&format!("{n}: {}\r\n", v.to_str().unwrap()));
    }
    out.push_str(&format!(
        "Authorization: SharedKey devstoreaccount1:{sig}\r\nConnection: close\r\n\r\n"
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(dir.path()).await;
    let port = server.port;

    // Not HTTP at all.
    let r = exchange(port, b"\x00\x01garbage\xff\r\n\r\n").await;
    assert!(r.is_empty() || status(&r) == Some(400), "garbage: {r:?}");
    let r = exchange(port, b"GET /devstoreaccount1 HTTP/9.9\r\n\r\n").await;
    assert!(
        r.is_empty() || status(&r).is_some_and(|s| s >= 400),
        "bad version: {r:?}"
    );

    // A 1 MiB header, and 500 headers.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let r = exchange(port, big.as_bytes()).await;
    assert!(
        r.is_empty() || status(&r).is_some_and(|s| s == 431 || s == 400),
        "big header: {r:?}"
    );
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let r = exchange(port, many.as_bytes()).await;
    assert!(
        r.is_empty() || status(&r).is_some_and(|s| s == 431 || s == 400),
        "many headers: {r:?}"
    );

    // Header values that are not ASCII, an unparsable Content-Length.
    let r = exchange(
        port,
        b"PUT /devstoreaccount1/cont1?restype=container HTTP/1.1\r\nHost: x\r\nAuthorization: SharedKey devstoreaccount1:\xff\xfe\r\nx-ms-date: \xc3\x28\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), Some(403), "non-ASCII auth: {r:?}");
    assert!(r.contains("x-ms-error-code: AuthenticationFailed"), "{r}");
    let r = exchange(port, b"PUT /devstoreaccount1/cont1?restype=container HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n").await;
    assert!(
        r.is_empty() || status(&r) == Some(400),
        "bad content-length: {r:?}"
    );

    // No Authorization: 401 with Azure's XML error.
    let r = exchange(port, b"GET /devstoreaccount1/cont1?restype=container HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status(&r), Some(401), "{r}");
    assert!(
        r.contains("x-ms-error-code: NoAuthenticationInformation"),
        "{r}"
    );
    assert!(
        r.contains("<Error><Code>NoAuthenticationInformation</Code><Message>"),
        "{r}"
    );
    assert!(r.contains("x-ms-request-id: "), "{r}");

    // A bad path and a bad blob name.
    let r = exchange(port, b"GET /devstoreaccount1/Bad_Container?restype=container HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status(&r), Some(400), "{r}");
    let r = exchange(
        port,
        b"GET /devstoreaccount1/cont1/%FF%FE HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), Some(400), "{r}");

    // Signed requests: a container, then bodies over the limit.
    let r = exchange(
        port,
        signed("PUT", "/devstoreaccount1/cont1", "restype=container", &[]).as_bytes(),
    )
    .await;
    assert_eq!(status(&r), Some(201), "create container: {r}");
    assert!(
        r.contains("etag: \"0x") && r.contains("last-modified: "),
        "{r}"
    );
    let head = signed(
        "PUT",
        "/devstoreaccount1/cont1/big",
        "",
        &[
            ("x-ms-blob-type", "BlockBlob"),
            ("content-length", "104857600"),
        ],
    );
    let r = exchange(port, head.as_bytes()).await;
    assert_eq!(status(&r), Some(413), "100 MiB content-length: {r}");
    assert!(r.contains("RequestBodyTooLarge"), "{r}");
    // Chunked, past 4 MiB with no length announced.
    let mut req = signed(
        "PUT",
        "/devstoreaccount1/cont1/big",
        "",
        &[
            ("x-ms-blob-type", "BlockBlob"),
            ("transfer-encoding", "chunked"),
        ],
    )
    .into_bytes();
    let chunk = vec![b'z'; 1 << 20];
    for _ in 0..5 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = exchange(port, &req).await;
    assert_eq!(
        status(&r),
        Some(413),
        "5 MiB chunked: {}",
        &r[..r.len().min(400)]
    );
    // A malformed chunked body.
    let mut req = signed(
        "PUT",
        "/devstoreaccount1/cont1/bad",
        "",
        &[
            ("x-ms-blob-type", "BlockBlob"),
            ("transfer-encoding", "chunked"),
        ],
    );
    req.push_str("zz\r\nnot a chunk\r\n");
    let r = exchange(port, req.as_bytes()).await;
    assert!(r.is_empty() || status(&r) == Some(400), "bad chunk: {r:?}");

    // Bad metadata, a missing blob type, an unknown operation.
    let r = exchange(
        port,
        signed(
            "PUT",
            "/devstoreaccount1/cont1/m",
            "",
            &[("x-ms-blob-type", "BlockBlob"), ("x-ms-meta-1bad", "v")],
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&r), Some(400), "{r}");
    assert!(r.contains("InvalidMetadata"), "{r}");
    let r = exchange(
        port,
        signed("PUT", "/devstoreaccount1/cont1/m", "", &[]).as_bytes(),
    )
    .await;
    assert_eq!(status(&r), Some(400), "{r}");
    assert!(r.contains("MissingRequiredHeader"), "{r}");
    let r = exchange(
        port,
        signed("PUT", "/devstoreaccount1/cont1/m", "comp=lease", &[]).as_bytes(),
    )
    .await;
    assert_eq!(status(&r), Some(501), "{r}");
    let r = exchange(
        port,
        signed(
            "GET",
            "/devstoreaccount1/cont1",
            "restype=container&comp=list&maxresults=0",
            &[],
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&r), Some(400), "{r}");

    // Still serving: a blob written and listed.
    let r = exchange(
        port,
        signed(
            "PUT",
            "/devstoreaccount1/cont1/ok",
            "",
            &[("x-ms-blob-type", "BlockBlob"), ("x-ms-meta-ownerid", "o1")],
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&r), Some(201), "{r}");
    let r = exchange(
        port,
        signed(
            "GET",
            "/devstoreaccount1/cont1",
            "restype=container&comp=list&include=metadata",
            &[],
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&r), Some(200), "{r}");
    assert!(
        r.contains("<Name>ok</Name>")
            && r.contains("<ownerid>o1</ownerid>")
            && r.contains("<Etag>0x"),
        "{r}"
    );
    assert!(
        !r.contains("<Name>big</Name>") && !r.contains("<Name>m</Name>"),
        "{r}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_reports_the_size_and_get_serves_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(dir.path()).await;
    let port = server.port;
    let r = exchange(
        port,
        signed("PUT", "/devstoreaccount1/sizes", "restype=container", &[]).as_bytes(),
    )
    .await;
    assert_eq!(status(&r), Some(201), "{r}");
    let mut put = signed(
        "PUT",
        "/devstoreaccount1/sizes/five",
        "",
        &[("x-ms-blob-type", "BlockBlob"), ("content-length", "5")],
    );
    put.push_str("hello");
    let r = exchange(port, put.as_bytes()).await;
    assert_eq!(status(&r), Some(201), "{r}");
    let r = exchange(
        port,
        signed("HEAD", "/devstoreaccount1/sizes/five", "", &[]).as_bytes(),
    )
    .await;
    assert_eq!(status(&r), Some(200), "{r}");
    assert!(
        r.contains("content-length: 5\r\n") && r.ends_with("\r\n\r\n"),
        "{r:?}"
    );
    assert!(r.contains("x-ms-blob-type: BlockBlob"), "{r}");
    let r = exchange(
        port,
        signed(
            "GET",
            "/devstoreaccount1/sizes/five",
            "",
            &[("x-ms-range", "bytes=1-3")],
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&r), Some(206), "{r}");
    assert!(
        r.contains("content-range: bytes 1-3/5") && r.ends_with("\r\n\r\nell"),
        "{r:?}"
    );
    let r = exchange(
        port,
        signed(
            "GET",
            "/devstoreaccount1/sizes/five",
            "",
            &[("x-ms-range", "bytes=5-")],
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&r), Some(416), "{r}");
    // A HEAD error has no body but says its code.
    let r = exchange(
        port,
        signed("HEAD", "/devstoreaccount1/sizes/none", "", &[]).as_bytes(),
    )
    .await;
    assert_eq!(status(&r), Some(404), "{r}");
    assert!(
        r.contains("x-ms-error-code: BlobNotFound") && r.ends_with("\r\n\r\n"),
        "{r:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_signature_is_403_with_the_string_to_sign() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(dir.path()).await;
    let req = signed("PUT", "/devstoreaccount1/cont2", "restype=container", &[]);
    // Sign one thing, send another.
    let req = req.replacen(
        "PUT /devstoreaccount1/cont2",
        "PUT /devstoreaccount1/cont3",
        1,
    );
    let r = exchange(server.port, req.as_bytes()).await;
    assert_eq!(status(&r), Some(403), "{r}");
    assert!(r.contains("<Code>AuthenticationFailed</Code>"), "{r}");
    assert!(r.contains("<AuthenticationErrorDetail>"), "{r}");
    server.stop().await;
}
