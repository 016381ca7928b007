//! Mutated requests (flipped, dropped, inserted and duplicated bytes of valid signed
//! requests) over raw TCP: no task of the server may panic, and it keeps serving.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hyper::header::HeaderValue;
use hyper::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// xorshift64*: deterministic, so a failure replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn signed(
    method: &str,
    path: &str,
    query: &str,
    extra: &[(&'static str, &str)],
    body: &str,
) -> Vec<u8> {
    let mut h = HeaderMap::new();
    h.insert(
        "x-ms-date",
        HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now())).unwrap(),
    );
    h.insert("x-ms-version", HeaderValue::from_static("2019-07-07"));
    for (n, v) in extra {
        h.insert(*n, HeaderValue::from_str(v).unwrap());
    }
    if !body.is_empty() {
        h.insert("content-length", HeaderValue::from(body.len()));
    }
    let q = (!query.is_empty()).then_some(query);
    let sts = runnel_blob::string_to_sign("devstoreaccount1", method, &h, path, q).unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(runnel_blob::DEV_ACCOUNT_KEY)
        .unwrap();
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
        "Authorization: SharedKey devstoreaccount1:{}\r\n\r\n{body}",
        runnel_blob::sign(&key, &sts)
    ));
    out.into_bytes()
}

async fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = s.write_all(bytes).await;
    // Half-close: the server sees the end of the request stream.
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_never_panic_the_server() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(dir.path()).await;
    let port = server.port;
    let create = signed(
        "PUT",
        "/devstoreaccount1/fuzz",
        "restype=container",
        &[],
        "",
    );
    assert!(exchange(port, &create).await.starts_with(b"HTTP/1.1 201"));
    let seeds = [
        signed(
            "PUT",
            "/devstoreaccount1/fuzz/ns%2Fhub%2F%24default%2Fownership%2F0",
            "",
            &[
                ("x-ms-blob-type", "BlockBlob"),
                ("x-ms-meta-ownerid", "o"),
                ("if-none-match", "*"),
            ],
            "",
        ),
        signed(
            "PUT",
            "/devstoreaccount1/fuzz/ns/hub/checkpoint/0",
            "comp=metadata",
            &[("x-ms-meta-offset", "12"), ("if-match", "\"0x1\"")],
            "",
        ),
        signed(
            "GET",
            "/devstoreaccount1/fuzz",
            "restype=container&comp=list&prefix=ns%2F&include=metadata&maxresults=2",
            &[],
            "",
        ),
        signed(
            "PUT",
            "/devstoreaccount1/fuzz/data",
            "",
            &[("x-ms-blob-type", "BlockBlob"), ("x-ms-range", "bytes=0-3")],
            "some content",
        ),
        signed(
            "GET",
            "/devstoreaccount1/fuzz/data",
            "",
            &[("x-ms-range", "bytes=2-")],
            "",
        ),
    ];
    for seed in &seeds {
        let r = exchange(port, seed).await;
        assert!(r.starts_with(b"HTTP/1.1 "), "seed got no answer");
    }
    let mut rng = Rng(0x5eed_b10b);
    for round in 0..300 {
        let mut req = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(req.len());
            match rng.below(5) {
                0 => req[at] ^= 1 << rng.below(8),
                1 => req[at] = rng.next() as u8,
                2 => {
                    req.remove(at);
                }
                3 => {
                    let junk = [b'%', b'\r', b'\n', b':', 0xff, b'0', b'"', b'*', b'/', b' '];
                    req.insert(at, junk[rng.below(junk.len())]);
                }
                _ => {
                    let end = (at + 1 + rng.below(64)).min(req.len());
                    let dup = req[at..end].to_vec();
                    req.splice(at..at, dup);
                }
            }
        }
        let r = exchange(port, &req).await;
        assert!(
            r.is_empty() || r.starts_with(b"HTTP/1.1 "),
            "round {round}: not an HTTP answer: {:?}",
            String::from_utf8_lossy(&r[..r.len().min(200)])
        );
        assert_eq!(PANICS.load(Ordering::SeqCst), 0, "round {round}: a panic");
    }
    // Signed, so they reach the handlers: random methods, paths, queries and headers.
    const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "DELETE", "POST"];
    const PATHS: [&str; 10] = [
        "/devstoreaccount1/fuzz",
        "/devstoreaccount1/fuzz/a",
        "/devstoreaccount1/fuzz/ns%2Fhub%2F%24default%2Fownership%2F0",
        "/devstoreaccount1/fuzz/%",
        "/devstoreaccount1/fuzz/%C3%28",
        "/devstoreaccount1/fuzz/a%00b",
        "/devstoreaccount1/other",
        "/devstoreaccount1",
        "/devstoreaccount1/fuzz/data",
        "/devstoreaccount1//x",
    ];
    const QUERIES: [&str; 10] = [
        "",
        "restype=container",
        "comp=metadata",
        "restype=container&comp=list",
        "restype=container&comp=list&maxresults=99999",
        "restype=container&comp=list&marker=%FF&prefix=",
        "restype=container&comp=list&delimiter=/",
        "comp=lease",
        "comp",
        "restype=container&comp=list&maxresults=-1&include=metadata,snapshots",
    ];
    const HEADERS: [(&str, &str); 16] = [
        ("x-ms-blob-type", "BlockBlob"),
        ("x-ms-blob-type", "PageBlob"),
        ("x-ms-meta-ownerid", "o"),
        ("x-ms-meta-9bad", "v"),
        ("x-ms-meta-a_b", ""),
        ("if-match", "*"),
        ("if-match", "\"0x1\", W/\"x\""),
        ("if-none-match", "*"),
        ("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("if-unmodified-since", "not a date"),
        ("x-ms-range", "bytes=5-2"),
        ("x-ms-range", "bytes=0-"),
        ("range", "bytes=99999999999999999999-"),
        ("x-ms-blob-content-type", "text/plain"),
        ("x-ms-version", "1999-01-01"),
        ("x-ms-client-request-id", "abc"),
    ];
    for round in 0..300 {
        let method = METHODS[rng.below(METHODS.len())];
        let path = PATHS[rng.below(PATHS.len())];
        let query = QUERIES[rng.below(QUERIES.len())];
        let mut extra = Vec::new();
        for _ in 0..rng.below(5) {
            let h = HEADERS[rng.below(HEADERS.len())];
            if !extra.iter().any(|(n, _): &(&str, &str)| *n == h.0) {
                extra.push(h);
            }
        }
        let body = if rng.below(3) == 0 { "xyz" } else { "" };
        let r = exchange(port, &signed(method, path, query, &extra, body)).await;
        assert!(
            r.starts_with(b"HTTP/1.1 "),
            "signed round {round}: {method} {path}?{query} {extra:?}: {:?}",
            String::from_utf8_lossy(&r[..r.len().min(200)])
        );
        let status = &r[9..12];
        assert!(
            status != b"500",
            "signed round {round}: {method} {path}?{query} {extra:?}: 500"
        );
        assert_eq!(
            PANICS.load(Ordering::SeqCst),
            0,
            "signed round {round}: a panic"
        );
    }
    // Still serving (the rounds may have deleted the container).
    let r = exchange(port, &create).await;
    assert!(r.starts_with(b"HTTP/1.1 201") || r.starts_with(b"HTTP/1.1 409"));
    let list = signed(
        "GET",
        "/devstoreaccount1/fuzz",
        "restype=container&comp=list",
        &[],
        "",
    );
    assert!(exchange(port, &list).await.starts_with(b"HTTP/1.1 200"));
    assert_eq!(PANICS.load(Ordering::SeqCst), 0);
    server.stop().await;
}
