//! Hostile and broken clients against the Kafka listeners (issue 17), and random bytes
//! on every listener (Kafka PLAINTEXT, SSL and SASL_PLAINTEXT, AMQP, metrics).
//! tests/amqp_hostile.rs covers the AMQP protocol's own cases.
//!
//! One broker, one well-behaved librdkafka producer and consumer running throughout,
//! and the cases one after another (the slow ones run in the background meanwhile):
//!
//! - slowloris: requests trickling in a byte a second, some declaring a frame of
//!   `socket.request.max.bytes` (which reserves that much of `queued.max.request.bytes`):
//!   closed by `socket.request.read.timeout.ms`; idle connections by
//!   `connections.max.idle.ms`; half-open ones (a partial request, or a partial TLS
//!   handshake, and then silence) by the read timeout;
//! - frames over `socket.request.max.bytes`, negative and zero sizes, and truncated
//!   frames at the limit (their memory must come back);
//! - 3,000 connections opened and closed in a tight loop (FIN, RST, mid-request);
//! - random bytes on every listener;
//! - clients that pipeline Metadata and Fetch requests and never read: backpressure
//!   (the broker stops reading them), then closed by `connections.max.idle.ms`;
//! - 10,000 connections at once, and more over `max.connections` (refused).
//!
//! Throughout, the good client's every message is acknowledged and consumed (each
//! within a generous deadline), the broker's RSS stays bounded and nothing panics.
//! The figures are printed (`kafka_hostile:` lines) and recorded in
//! RELIABILITY.md ("Hostile and broken clients").

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use runnel_protocol::api::messages as m;
use runnel_protocol::api::{encode_request, ApiKey, RequestBody, RequestHeader, StrBytes};
use runnel_suite::{BrokerOptions, TestBroker};

/// `connections.max.idle.ms` for the test (Kafka's default is 600000).
const IDLE: Duration = Duration::from_secs(20);
/// `socket.request.read.timeout.ms` for the test (Runnel's default is 30000).
const READ_TIMEOUT: Duration = Duration::from_secs(4);
/// How long the broker gives a TLS handshake (net/src/tls.rs).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// The broker's default `socket.request.max.bytes` (100 MiB).
const MAX_REQUEST: i32 = 100 << 20;
/// The hostile connections opened at once.
const MANY: usize = 10_000;
/// `max.connections` for the test: the hostile ones, the good client's and a margin.
const MAX_CONNECTIONS: usize = MANY + 50;
/// How long any one of the good client's messages may take to be acknowledged, or to
/// be consumed after it was sent. Generous: it says "still served", not "fast".
const SERVED_WITHIN: Duration = Duration::from_secs(30);
/// How long a hostile connection may stay open past the limit that should close it.
const SLACK: Duration = Duration::from_secs(15);
const TOPIC: &str = "good-client";
const BULK_TOPIC: &str = "bulk";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn elapsed_since_start() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

fn assert_no_panic(broker: &TestBroker, after: &str) {
    eprintln!(
        "kafka_hostile: done: {after} ({:.1?})",
        elapsed_since_start()
    );
    let log = broker.stderr_log();
    assert!(
        !log.contains("panicked"),
        "the broker panicked after {after}:\n{}",
        broker.diagnostics()
    );
}

/// A field of /proc/PID/status in KiB (VmRSS: now; VmHWM: the peak).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The sockets the broker process has open (listeners included).
fn open_sockets(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// xorshift: arbitrary but repeatable bytes.
fn random_bytes(seed: u32, n: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn request_frame(api_key: ApiKey, version: i16, correlation_id: i32, body: RequestBody) -> Vec<u8> {
    let header = RequestHeader {
        api_key,
        api_version: version,
        correlation_id,
        client_id: Some(StrBytes::from_string("hostile".to_string())),
    };
    encode_request(&header, &body).expect("encode").to_vec()
}

fn metadata_frame(correlation_id: i32) -> Vec<u8> {
    request_frame(
        ApiKey::Metadata,
        12,
        correlation_id,
        m::MetadataRequest::default().with_topics(None).into(),
    )
}

fn fetch_frame(correlation_id: i32, topic: &str) -> Vec<u8> {
    let partition = m::fetch_request::FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(0)
        .with_current_leader_epoch(-1)
        .with_log_start_offset(-1)
        .with_partition_max_bytes(1 << 20);
    let topic = m::fetch_request::FetchTopic::default()
        .with_topic(m::TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![partition]);
    request_frame(
        ApiKey::Fetch,
        12,
        correlation_id,
        m::FetchRequest::default()
            .with_replica_id(m::BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![topic])
            .into(),
    )
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let _ = s.set_nodelay(true);
    s
}

/// Whether the broker has closed `s` (EOF or reset), reading and discarding whatever
/// it sent, without blocking.
fn is_closed(s: &mut TcpStream) -> bool {
    let _ = s.set_nonblocking(true);
    let mut chunk = [0u8; 16 * 1024];
    let closed = loop {
        match s.read(&mut chunk) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break true,
        }
    };
    let _ = s.set_nonblocking(false);
    closed
}

/// Wait up to `timeout` for the broker to close `s`; how long it took, or `None`.
fn closed_within(s: &mut TcpStream, timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut chunk = [0u8; 16 * 1024];
    while let Some(left) = timeout.checked_sub(started.elapsed()) {
        let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match s.read(&mut chunk) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// Connections kept open in the background, each trickling the rest of `bytes` a
/// byte a second; records when the broker closed each one.
struct Tricklers {
    what: &'static str,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Option<Duration>>>>,
}

impl Tricklers {
    /// `first` bytes go at once, then one byte a second (`trickle` false: nothing more).
    fn start(
        what: &'static str,
        conns: Vec<(TcpStream, Vec<u8>)>,
        first: usize,
        trickle: bool,
    ) -> Tricklers {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = thread::spawn(move || {
            let opened = Instant::now();
            let mut conns: Vec<(TcpStream, Vec<u8>, usize, Option<Duration>)> = conns
                .into_iter()
                .map(|(mut s, bytes)| {
                    let n = first.min(bytes.len());
                    let _ = s.write_all(&bytes[..n]);
                    (s, bytes, n, None)
                })
                .collect();
            while !stop2.load(Ordering::SeqCst) && conns.iter().any(|c| c.3.is_none()) {
                for (s, bytes, sent, closed) in conns.iter_mut() {
                    if closed.is_some() {
                        continue;
                    }
                    if is_closed(s) {
                        *closed = Some(opened.elapsed());
                        continue;
                    }
                    if trickle && *sent < bytes.len() {
                        let _ = s.write_all(&bytes[*sent..*sent + 1]);
                        *sent += 1;
                    }
                }
                thread::sleep(Duration::from_secs(1));
            }
            conns.into_iter().map(|c| c.3).collect()
        });
        Tricklers {
            what,
            stop,
            handle: Some(handle),
        }
    }

    /// Wait until every connection is closed or `timeout` has passed since the start;
    /// returns the close times (`None`: still open).
    fn finish(mut self, timeout: Duration, started: Instant) -> Vec<Option<Duration>> {
        let handle = self.handle.take().expect("joined once");
        while !handle.is_finished() && started.elapsed() < timeout {
            thread::sleep(Duration::from_millis(100));
        }
        self.stop.store(true, Ordering::SeqCst);
        handle.join().expect("trickler thread")
    }
}

fn summary(times: &[Option<Duration>]) -> (usize, Option<Duration>, Option<Duration>) {
    let closed: Vec<Duration> = times.iter().flatten().copied().collect();
    (
        closed.len(),
        closed.iter().min().copied(),
        closed.iter().max().copied(),
    )
}

/// A self-signed certificate for 127.0.0.1 in one PEM file (key, then certificate).
fn keystore(dir: &std::path::Path) -> std::path::PathBuf {
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("certificate params");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    let path = dir.join("broker.pem");
    std::fs::write(&path, format!("{}{}", key.serialize_pem(), cert.pem())).expect("keystore");
    path
}

// ---------------------------------------------------------------------------------------
// The well-behaved client
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct GoodStats {
    sent: AtomicU64,
    acked: AtomicU64,
    consumed: AtomicU64,
    /// The slowest acknowledgement and the slowest send-to-consume, in ms.
    max_ack_ms: AtomicU64,
    max_e2e_ms: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// An acks=all producer sending a message every 100 ms and waiting for each one, and
/// a consumer (assigned, no group) reading them back.
struct GoodClient {
    stats: Arc<GoodStats>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl GoodClient {
    fn start(bootstrap: &str) -> GoodClient {
        let stats = Arc::new(GoodStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", "120000")
            .create()
            .expect("producer");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "unused-assign-only")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
            .expect("partition");
        consumer.assign(&tpl).expect("assign");

        let (s, st) = (stats.clone(), stop.clone());
        let produce = thread::spawn(move || {
            let mut i: u64 = 0;
            while !st.load(Ordering::SeqCst) {
                let sent_ms = epoch.elapsed().as_millis() as u64;
                let payload = format!("{i} {sent_ms}");
                let sent = Instant::now();
                if let Err((e, _)) = producer.send(BaseRecord::<(), _>::to(TOPIC).payload(&payload))
                {
                    s.failures.lock().unwrap().push(format!("send {i}: {e}"));
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
                s.sent.fetch_add(1, Ordering::SeqCst);
                // Wait for this message's acknowledgement (it is the only one in flight).
                while producer.in_flight_count() > 0 && sent.elapsed() < SERVED_WITHIN * 4 {
                    producer.poll(Duration::from_millis(20));
                }
                let took = sent.elapsed();
                if producer.in_flight_count() > 0 {
                    s.failures
                        .lock()
                        .unwrap()
                        .push(format!("message {i} not acknowledged within {took:?}"));
                    break;
                }
                s.acked.fetch_add(1, Ordering::SeqCst);
                s.max_ack_ms
                    .fetch_max(took.as_millis() as u64, Ordering::SeqCst);
                if took > SERVED_WITHIN {
                    s.failures
                        .lock()
                        .unwrap()
                        .push(format!("message {i} acknowledged after {took:?}"));
                }
                i += 1;
                thread::sleep(Duration::from_millis(100));
            }
            let _ = producer.flush(Duration::from_secs(30));
        });
        let (s, st) = (stats.clone(), stop.clone());
        let consume = thread::spawn(move || {
            let mut next: u64 = 0;
            // Runs until told to stop and everything acknowledged is read.
            while !st.load(Ordering::SeqCst) || next < s.acked.load(Ordering::SeqCst) {
                if st.load(Ordering::SeqCst) && epoch.elapsed() > Duration::from_secs(600) {
                    break;
                }
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Err(e)) => {
                        // Transient errors are fine (a reconnect); they are kept for a
                        // failure's report.
                        let _ = e;
                    }
                    Some(Ok(msg)) => {
                        let text = msg
                            .payload()
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .unwrap_or_default();
                        let mut parts = text.split(' ');
                        let (Some(Ok(id)), Some(Ok(sent_ms))) = (
                            parts.next().map(str::parse::<u64>),
                            parts.next().map(str::parse::<u64>),
                        ) else {
                            s.failures
                                .lock()
                                .unwrap()
                                .push(format!("bad payload {text:?}"));
                            continue;
                        };
                        if id != next {
                            s.failures
                                .lock()
                                .unwrap()
                                .push(format!("consumed message {id}, expected {next}"));
                        }
                        next = id + 1;
                        s.consumed.fetch_add(1, Ordering::SeqCst);
                        let e2e = (epoch.elapsed().as_millis() as u64).saturating_sub(sent_ms);
                        s.max_e2e_ms.fetch_max(e2e, Ordering::SeqCst);
                        if e2e > SERVED_WITHIN.as_millis() as u64 {
                            s.failures
                                .lock()
                                .unwrap()
                                .push(format!("message {id} consumed {e2e} ms after its send"));
                        }
                    }
                }
            }
        });
        GoodClient {
            stats,
            stop,
            threads: vec![produce, consume],
        }
    }

    /// Panics unless a few more messages are acknowledged and consumed within
    /// [`SERVED_WITHIN`] (the client is still being served), or if any failed.
    fn assert_served(&self, during: &str) {
        let s = &self.stats;
        let (acked, consumed) = (
            s.acked.load(Ordering::SeqCst),
            s.consumed.load(Ordering::SeqCst),
        );
        let deadline = Instant::now() + SERVED_WITHIN;
        while s.acked.load(Ordering::SeqCst) < acked + 3
            || s.consumed.load(Ordering::SeqCst) < consumed + 3
        {
            assert!(
                Instant::now() < deadline,
                "the good client was not served {during}: acknowledged {} -> {}, consumed {} -> {} in {SERVED_WITHIN:?}; failures {:?}",
                acked,
                s.acked.load(Ordering::SeqCst),
                consumed,
                s.consumed.load(Ordering::SeqCst),
                s.failures.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(50));
        }
        let failures = s.failures.lock().unwrap();
        assert!(
            failures.is_empty(),
            "the good client {during}: {failures:?}"
        );
    }

    fn finish(mut self) -> Arc<GoodStats> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().expect("good client thread");
        }
        self.stats.clone()
    }
}

/// Put `n` records of `size` bytes in `topic` (for the fetches that are never read).
fn fill_topic(bootstrap: &str, topic: &str, n: usize, size: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "1")
        .create()
        .expect("bulk producer");
    let value = vec![b'x'; size];
    for _ in 0..n {
        loop {
            match producer.send(BaseRecord::<(), _>::to(topic).payload(&value)) {
                Ok(()) => break,
                Err(_) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("bulk records acknowledged");
}

// ---------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------

/// Frames whose size alone is wrong, and frames cut short at the limit.
fn bad_sizes(addr: SocketAddr) {
    for (what, size) in [
        ("socket.request.max.bytes + 1", MAX_REQUEST + 1),
        ("2 GiB", i32::MAX),
        ("-1", -1),
        ("i32::MIN", i32::MIN),
        ("0", 0),
    ] {
        let mut s = connect(addr);
        let _ = s.write_all(&size.to_be_bytes());
        let _ = s.write_all(&[0u8; 64]);
        assert!(
            closed_within(&mut s, SLACK).is_some(),
            "a frame of size {what} did not close the connection"
        );
    }
    // Truncated at the limit: each takes socket.request.max.bytes of the 512 MiB
    // budget while it lasts; 50 of them would exhaust it many times over if the
    // memory did not come back at EOF.
    for i in 0..50 {
        let mut s = connect(addr);
        let _ = s.write_all(&MAX_REQUEST.to_be_bytes());
        let _ = s.write_all(&metadata_frame(i)[4..]);
        let _ = s.write_all(&[0u8; 4096]);
        let _ = s.shutdown(Shutdown::Write);
        assert!(
            closed_within(&mut s, SLACK).is_some(),
            "truncated frame {i} (a size prefix, then EOF mid-frame) did not close"
        );
    }
    // A whole header-only frame whose size field is short of its body: a frame that
    // decodes as garbage. And a truncated frame with the socket left open (half-open
    // from the broker's view): left to the read timeout, checked with the tricklers.
}

/// Connections opened and closed as fast as possible: a FIN, an RST (SO_LINGER 0), or
/// a close in the middle of a request.
fn churn(addr: SocketAddr, n: usize) {
    let frame = metadata_frame(1);
    for i in 0..n {
        let Ok(mut s) = TcpStream::connect(addr) else {
            continue;
        };
        match i % 4 {
            0 => {}
            1 => {
                let _ = s.write_all(&frame[..frame.len() / 2]);
            }
            2 => {
                let _ = s.write_all(&frame);
            }
            _ => {
                // SO_LINGER 0: close sends an RST instead of a FIN.
                use std::os::fd::AsRawFd;
                let linger = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                // SAFETY: a valid socket and a struct linger of the right size.
                unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        (&linger as *const libc::linger).cast(),
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    );
                }
                let _ = s.write_all(&frame[..7]);
            }
        }
        drop(s);
    }
}

/// 20 connections of random bytes to `addr`; each must be closed (or, for HTTP,
/// answered and closed).
fn random_bytes_to(name: &str, addr: SocketAddr, seed: u32) {
    let mut conns = Vec::new();
    for i in 0..20u32 {
        let mut s = connect(addr);
        let _ = s.write_all(&random_bytes(
            seed.wrapping_mul(7919).wrapping_add(i),
            16 * 1024,
        ));
        conns.push(s);
    }
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for (i, s) in conns.iter_mut().enumerate() {
        let left = (READ_TIMEOUT + SLACK).saturating_sub(started.elapsed());
        match closed_within(s, left.max(Duration::from_millis(10))) {
            Some(_) => slowest = slowest.max(started.elapsed()),
            None => panic!(
                "random bytes on {name}: connection {i} still open after {:?}",
                started.elapsed()
            ),
        }
    }
    eprintln!("kafka_hostile: random bytes on {name}: 20 connections closed within {slowest:.1?}");
}

/// Connections that pipeline requests and never read a response (so nothing here may
/// read to see whether the broker closed them: a write error says so). Returns, for
/// each, the bytes of requests it managed to send, and how long after its last
/// successful write the broker closed it (`None`: not within the time allowed).
fn never_read(
    addr: SocketAddr,
    conns: usize,
    frame: impl Fn(i32) -> Vec<u8>,
) -> Vec<(u64, Option<Duration>)> {
    let mut handles = Vec::new();
    for _ in 0..conns {
        let s = connect(addr);
        let frames: Vec<u8> = (0..64).flat_map(&frame).collect();
        handles.push(thread::spawn(move || {
            let mut s = s;
            // Writes block once the broker stops reading: its socket buffers fill up.
            let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
            let mut written: u64 = 0;
            let mut last_progress = Instant::now();
            // Bounded: the idle limit and then some, or 64 MiB of requests.
            while written < 64 << 20 && last_progress.elapsed() < IDLE + SLACK {
                match s.write(&frames) {
                    Ok(n) => {
                        written += n as u64;
                        last_progress = Instant::now();
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    // EPIPE or ECONNRESET: the broker closed the connection.
                    Err(_) => return (written, Some(last_progress.elapsed())),
                }
            }
            (written, None)
        }));
    }
    handles
        .into_iter()
        .map(|h| h.join().expect("never-read thread"))
        .collect()
}

#[test]
fn hostile_kafka_clients_do_not_stop_the_broker_serving_a_good_one() {
    let certs = tempfile::tempdir().expect("temp dir");
    let keystore = keystore(certs.path());
    let settings = [
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".to_string(),
        ),
        ("ssl.keystore.location", keystore.display().to_string()),
        (
            "plain.sasl.jaas.config",
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             user_admin=\"admin-secret\";"
                .to_string(),
        ),
        ("connections.max.idle.ms", IDLE.as_millis().to_string()),
        (
            "socket.request.read.timeout.ms",
            READ_TIMEOUT.as_millis().to_string(),
        ),
        ("max.connections", MAX_CONNECTIONS.to_string()),
    ];
    let mut extra_args = Vec::new();
    for (k, v) in settings {
        extra_args.push("--set".to_string());
        extra_args.push(format!("{k}={v}"));
    }
    let broker = TestBroker::start_with(BrokerOptions {
        extra_args,
        num_partitions: Some(1),
        ..Default::default()
    });
    let plain = broker.listener_addr("PLAINTEXT");
    let ssl = broker.listener_addr("SSL");
    let sasl = broker.listener_addr("SASL_PLAINTEXT");
    let amqp = broker.amqp_addr();
    let metrics = broker.metrics_addr().expect("metrics address");
    let pid = broker.pid();
    let bootstrap = plain.to_string();
    assert_no_panic(&broker, "the start");

    fill_topic(&bootstrap, BULK_TOPIC, 64, 100 * 1024);
    let good = GoodClient::start(&bootstrap);
    good.assert_served("at the start");
    let rss_start = rss_kib(pid);
    let sockets_start = open_sockets(pid);
    eprintln!("kafka_hostile: broker RSS {rss_start} KiB and {sockets_start} sockets with the good client");

    // 1. The slow ones, in the background while the other cases run.
    let slow_started = Instant::now();
    // A Metadata request a byte a second, from the first byte of its size.
    let headers = Tricklers::start(
        "Metadata requests trickling a byte a second",
        (0..40)
            .map(|i| (connect(plain), metadata_frame(i)))
            .collect(),
        0,
        true,
    );
    // A frame of socket.request.max.bytes, then a byte a second: each holds 100 MiB of
    // the 512 MiB queued.max.request.bytes while it lasts; eight of them hold all of it.
    let hogs = Tricklers::start(
        "100 MiB frames trickling a byte a second",
        (0..8)
            .map(|i| {
                let mut bytes = MAX_REQUEST.to_be_bytes().to_vec();
                bytes.extend_from_slice(&metadata_frame(i)[4..]);
                (connect(plain), bytes)
            })
            .collect(),
        4,
        true,
    );
    // Half-open from the broker's view: part of a request, then silence, the socket
    // left open (on loopback the kernel answers for a vanished peer, so silence is what
    // a peer gone without a FIN looks like until keepalive finds it).
    let half_open = Tricklers::start(
        "half a request, then silence",
        (0..10)
            .map(|i| (connect(plain), metadata_frame(i)))
            .chain((0..10).map(|i| (connect(sasl), metadata_frame(i))))
            .collect(),
        20,
        false,
    );
    // Half a TLS ClientHello, or nothing at all, on the SSL listener.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03,
    ];
    hello.extend_from_slice(&[0x42; 32]);
    let tls_half_open = Tricklers::start(
        "a partial TLS handshake, then silence",
        (0..10)
            .map(|i| {
                (
                    connect(ssl),
                    if i % 2 == 0 {
                        hello.clone()
                    } else {
                        Vec::new()
                    },
                )
            })
            .collect(),
        usize::MAX,
        false,
    );
    // Connected, nothing sent.
    let idle = Tricklers::start(
        "idle connections",
        (0..20).map(|_| (connect(plain), Vec::new())).collect(),
        0,
        false,
    );

    // 2. Bad frame sizes.
    bad_sizes(plain);
    good.assert_served("after bad frame sizes");
    assert_no_panic(&broker, "bad frame sizes");

    // 3 and 4. Churn, and random bytes on every listener, all at once.
    let churn = thread::spawn(move || {
        let started = Instant::now();
        churn(plain, 3000);
        started.elapsed()
    });
    let random: Vec<JoinHandle<()>> = [
        ("Kafka PLAINTEXT", plain),
        ("Kafka SSL", ssl),
        ("Kafka SASL_PLAINTEXT", sasl),
        ("AMQP", amqp),
        ("metrics HTTP", metrics),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (name, addr))| {
        thread::spawn(move || random_bytes_to(name, addr, 0x9e37_79b9 ^ i as u32))
    })
    .collect();
    for r in random {
        r.join().expect("random bytes");
    }
    assert_no_panic(&broker, "random bytes on every listener");
    let churn_took = churn.join().expect("churn");
    eprintln!("kafka_hostile: 3000 connections opened and closed in {churn_took:.1?}");
    good.assert_served("after connection churn and random bytes on every listener");
    assert_no_panic(&broker, "connection churn");

    // 6 and 7. Clients that pipeline Metadata and Fetch requests and never read, and
    // meanwhile 10,000 connections at once, then more than max.connections.
    let never_started = Instant::now();
    let m = thread::spawn(move || never_read(plain, 5, metadata_frame));
    let f = thread::spawn(move || never_read(plain, 5, |c| fetch_frame(c, BULK_TOPIC)));
    let many_started = Instant::now();
    let mut many: Vec<TcpStream> = Vec::with_capacity(MANY);
    for i in 0..MANY {
        match TcpStream::connect(plain) {
            Ok(s) => many.push(s),
            Err(e) => panic!("connection {i} of {MANY}: {e}"),
        }
    }
    let opened_in = many_started.elapsed();
    eprintln!(
        "kafka_hostile: {MANY} connections opened in {opened_in:.1?}; the broker has {} sockets",
        open_sockets(pid)
    );
    let peak_sockets = runnel_suite::eventually(
        IDLE.saturating_sub(opened_in),
        "the broker to hold the 10,000 connections",
        || {
            let n = open_sockets(pid);
            (n >= sockets_start + MANY).then_some(n)
        },
    );
    let rss_many = rss_kib(pid);
    // Over max.connections: closed at once. (Checked first, before any of the 10,000
    // can reach the idle limit and free its slot.)
    let mut over: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(plain).ok())
        .collect();
    let refused = over
        .iter_mut()
        .map(|s| closed_within(s, Duration::from_secs(3)))
        .filter(Option::is_some)
        .count();
    eprintln!(
        "kafka_hostile: {MANY} connections opened in {opened_in:.1?}; the broker held {peak_sockets} sockets, RSS {rss_many} KiB; of 100 more over max.connections={MAX_CONNECTIONS}, {refused} were closed at once"
    );
    assert!(
        refused >= 100 - (MAX_CONNECTIONS - MANY),
        "only {refused} of 100 connections over max.connections were closed"
    );
    drop(over);
    good.assert_served("with 10,000 more connections open and 10 clients not reading");
    // 5. The slow ones (started at 1.) are closed by now, each by its own limit.
    let mut slow_report = Vec::new();
    for (set, limit) in [
        (headers, READ_TIMEOUT),
        (hogs, READ_TIMEOUT),
        (half_open, READ_TIMEOUT),
        // net/src/tls.rs: HANDSHAKE_TIMEOUT.
        (tls_half_open, TLS_HANDSHAKE_TIMEOUT),
        (idle, IDLE),
    ] {
        let what = set.what;
        let times = set.finish(limit + SLACK + Duration::from_secs(5), slow_started);
        let (closed, first, last) = summary(&times);
        slow_report.push(format!(
            "kafka_hostile: {what}: {closed}/{} closed by the broker, after {first:.1?} to {last:.1?}",
            times.len()
        ));
        eprintln!("{}", slow_report.last().unwrap());
        assert_eq!(
            closed,
            times.len(),
            "{what}: {} of {} still open {:?} after they started (limit {limit:?})",
            times.len() - closed,
            times.len(),
            slow_started.elapsed()
        );
        if limit == IDLE {
            // Idle ones go by connections.max.idle.ms, not sooner.
            assert!(
                first.is_some_and(|f| f + Duration::from_secs(2) >= IDLE),
                "{what}: closed after {first:?}, before connections.max.idle.ms ({IDLE:?})"
            );
        }
    }
    good.assert_served("after the slow connections");
    assert_no_panic(&broker, "slowloris, half-open and idle connections");

    // They are idle: connections.max.idle.ms closes them all.
    let all_closed = runnel_suite::eventually(
        IDLE + Duration::from_secs(60),
        "the broker to close the 10,000 idle connections",
        || (open_sockets(pid) <= sockets_start + 10).then(|| many_started.elapsed()),
    );
    let closed_many = many.iter_mut().map(is_closed).filter(|c| *c).count();
    eprintln!(
        "kafka_hostile: the 10,000 idle connections: {closed_many} seen closed, the broker's sockets back to its start {all_closed:.1?} after they opened"
    );
    assert_eq!(closed_many, MANY, "idle connections left open");
    drop(many);
    assert_no_panic(&broker, "10,000 connections");

    let rss_pipes = rss_kib(pid);
    let mut pipes = m.join().expect("metadata pipes");
    pipes.extend(f.join().expect("fetch pipes"));
    for (i, (written, closed)) in pipes.iter().enumerate() {
        let kind = if i < 5 { "Metadata" } else { "Fetch" };
        eprintln!(
            "kafka_hostile: never-read {kind} client {i}: sent {written} bytes of requests before the broker stopped reading; closed {closed:.1?} after its last write"
        );
        assert!(
            *written < 64 << 20,
            "{kind} client {i}: the broker read {written} bytes of requests it could not answer (no backpressure)"
        );
        assert!(
            closed.is_some(),
            "{kind} client {i}: still open {:?} after it started (connections.max.idle.ms is {IDLE:?})",
            never_started.elapsed()
        );
    }
    eprintln!("kafka_hostile: RSS after 10 clients pipelined without reading: {rss_pipes} KiB");
    good.assert_served("after the clients that never read");
    assert_no_panic(&broker, "clients that never read");

    // 8. The end: the good client's every message acknowledged and read back, the
    // memory bounded, no panic.
    good.assert_served("at the end");
    let stats = good.finish();
    let (sent, acked, consumed) = (
        stats.sent.load(Ordering::SeqCst),
        stats.acked.load(Ordering::SeqCst),
        stats.consumed.load(Ordering::SeqCst),
    );
    let rss_end = rss_kib(pid);
    let rss_peak = status_kib(pid, "VmHWM:");
    eprintln!(
        "kafka_hostile: good client: {sent} sent, {acked} acknowledged, {consumed} consumed; slowest acknowledgement {} ms, slowest send-to-consume {} ms",
        stats.max_ack_ms.load(Ordering::SeqCst),
        stats.max_e2e_ms.load(Ordering::SeqCst)
    );
    eprintln!(
        "kafka_hostile: broker RSS {rss_start} KiB at the start, {rss_end} KiB at the end, peak {rss_peak} KiB; {:.1?} in all",
        elapsed_since_start()
    );
    let failures = stats.failures.lock().unwrap();
    assert!(failures.is_empty(), "the good client: {failures:?}");
    assert_eq!(acked, sent, "every message sent is acknowledged");
    assert_eq!(consumed, acked, "every message acknowledged is consumed");
    // A safety bound against unbounded growth, not a measure of efficiency.
    assert!(
        rss_peak < rss_start + 300 * 1024,
        "the broker's RSS peaked at {rss_peak} KiB from {rss_start} KiB"
    );
    let mut broker = broker;
    assert!(broker.is_running(), "the broker exited");
    assert_no_panic(&broker, "every case");
}
