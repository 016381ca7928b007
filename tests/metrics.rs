//! The Prometheus endpoint of the real broker (`metrics.listener`), scraped with the real
//! `curl`, and the JSON log format of `runnel serve`.
//!
//! - traffic from rdkafka (acks=all produce, fetch, commits that leave a known lag) shows
//!   up in every family with the values it must have;
//! - other paths get 404, other methods 405, garbage 400, an oversized head 431, and
//!   none of it hurts the broker;
//! - an empty `metrics.listener` means no listener at all;
//! - `--log-format json` gives one JSON object per stderr line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use runnel_suite::{eventually, BrokerOptions, TestBroker};

const TOPIC: &str = "metrics-orders";
const GROUP: &str = "metrics-group";
const PARTITIONS: i32 = 3;
/// Records per partition.
const PER_PARTITION: i64 = 40;
const VALUE_SIZE: usize = 300;
/// Partition 0's committed offset leaves this many records unconsumed.
const LAG: i64 = 7;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

// ---------------------------------------------------------------------------------------
// Scraping and parsing
// ---------------------------------------------------------------------------------------

/// `curl` the URL: (status, body).
fn curl(args: &[&str], url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl (install it: apt-get install curl)");
    let text = String::from_utf8(out.stdout).expect("utf-8 from curl");
    let (body, code) = text.rsplit_once('\n').expect("status line from curl -w");
    let code = code.trim().parse().unwrap_or_else(|_| {
        panic!(
            "curl {url}: no status ({text:?}, stderr {:?})",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, body.to_string())
}

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Scrape {
    text: String,
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut s = Scrape {
            text: text.to_string(),
            ..Scrape::default()
        };
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                assert!(
                    s.types.insert(name.to_string(), kind.to_string()).is_none(),
                    "family {name} declared twice"
                );
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample: series value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("labels end with }");
                    (name.to_string(), parse_labels(body))
                }
            };
            assert!(
                name.starts_with("runnel_"),
                "metric without the runnel_ prefix: {line}"
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suf| {
                    name.strip_suffix(suf)
                        .filter(|f| s.types.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(&name)
                .to_string();
            assert!(
                s.types.contains_key(&family),
                "sample {name} before/without its # TYPE line"
            );
            s.samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        s
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one sample with exactly these labels (besides `le`).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self
            .find(name, labels)
            .into_iter()
            .filter(|s| s.labels.len() == labels.len())
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one {name}{labels:?}, found {found:?}\n{}",
            self.text
        );
        found[0].value
    }

    fn kind(&self, family: &str) -> &str {
        self.types
            .get(family)
            .unwrap_or_else(|| panic!("family {family} missing\n{}", self.text))
    }

    /// Check a histogram's series: buckets cumulative with increasing `le`, ending in
    /// +Inf equal to `_count`, a sane `_sum`. Returns the count.
    fn histogram(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        assert_eq!(self.kind(family), "histogram");
        let mut buckets: Vec<(f64, f64)> = self
            .find(&format!("{family}_bucket"), labels)
            .into_iter()
            .filter(|s| s.labels.len() == labels.len() + 1)
            .map(|s| {
                let le = s.labels.get("le").expect("le label");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("numeric le")
                };
                (le, s.value)
            })
            .collect();
        assert!(buckets.len() > 2, "{family}{labels:?} has no buckets");
        let order: Vec<f64> = buckets.iter().map(|b| b.0).collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(
            order,
            buckets.iter().map(|b| b.0).collect::<Vec<_>>(),
            "buckets in le order"
        );
        assert!(buckets.last().unwrap().0.is_infinite(), "last bucket +Inf");
        for w in buckets.windows(2) {
            assert!(
                w[0].1 <= w[1].1,
                "{family}{labels:?} buckets not cumulative: {buckets:?}"
            );
        }
        let count = self.value(&format!("{family}_count"), labels);
        assert_eq!(buckets.last().unwrap().1, count, "+Inf bucket == _count");
        let sum = self.value(&format!("{family}_sum"), labels);
        assert!(sum >= 0.0 && sum.is_finite(), "{family}_sum {sum}");
        count
    }
}

fn parse_labels(body: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "label value starts with a quote");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("dangling escape"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').to_string(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

fn scrape(addr: SocketAddr) -> Scrape {
    let (code, body) = curl(&[], &format!("http://{addr}/metrics"));
    assert_eq!(code, 200, "GET /metrics: {body}");
    Scrape::parse(&body)
}

/// TCP ports the process listens on (from /proc: its socket inodes in LISTEN state).
fn listening_ports(pid: u32) -> Vec<u16> {
    let mut inodes = HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read the broker's fds") {
        let Ok(fd) = fd else { continue };
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(inode.to_string());
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit_once(':').map(|(_, p)| p).unwrap_or("0");
                ports.push(u16::from_str_radix(port, 16).expect("hex port"));
            }
        }
    }
    ports.sort_unstable();
    ports
}

// ---------------------------------------------------------------------------------------
// Traffic
// ---------------------------------------------------------------------------------------

fn create_topic(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = block_on(admin.create_topics([&topic], &opts)).expect("CreateTopics");
    assert!(results[0].is_ok(), "CreateTopics: {results:?}");
}

/// PER_PARTITION records of VALUE_SIZE bytes to each partition, acks=all, uncompressed.
fn produce(bootstrap: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("compression.type", "none")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let value = vec![b'v'; VALUE_SIZE];
    let mut pending = Vec::new();
    for i in 0..PER_PARTITION * PARTITIONS as i64 {
        let key = format!("k{i}");
        let record = FutureRecord::to(TOPIC)
            .partition((i % PARTITIONS as i64) as i32)
            .key(&key)
            .payload(&value);
        match producer.send_result(record) {
            Ok(f) => pending.push(f),
            Err((e, _)) => panic!("enqueue: {e}"),
        }
    }
    block_on(async {
        for f in pending {
            match f.await {
                Ok(Ok(_)) => {}
                other => panic!("delivery failed: {other:?}"),
            }
        }
    });
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Consume everything with a group member's consumer (assigned, not subscribed), then
/// commit partition 0 at LAG before its end and partition 1 at its end; partition 2
/// gets no commit. The consumer stays open (a connection for the gauge).
fn consume_and_commit(bootstrap: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign");
    let total = (PER_PARTITION * PARTITIONS as i64) as usize;
    let mut seen = HashSet::new();
    eventually(Duration::from_secs(60), "consume every record", || {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            assert_eq!(m.payload().map(<[u8]>::len), Some(VALUE_SIZE));
            seen.insert((m.partition(), m.offset()));
        }
        (seen.len() == total).then_some(())
    });
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(TOPIC, 0, Offset::Offset(PER_PARTITION - LAG))
        .expect("add");
    commit
        .add_partition_offset(TOPIC, 1, Offset::Offset(PER_PARTITION))
        .expect("add");
    consumer
        .commit(&commit, CommitMode::Sync)
        .expect("commit offsets");
    consumer
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn metrics_report_traffic_lag_and_fsyncs() {
    let broker = TestBroker::start();
    let maddr = broker
        .metrics_addr()
        .expect("the broker prints `runnel metrics on ADDR`");
    assert_ne!(maddr.port(), 0);
    // Two listeners: Kafka and metrics.
    let ports = listening_ports(broker.pid());
    assert!(
        ports.contains(&broker.addr().port()) && ports.contains(&maddr.port()),
        "listening ports {ports:?}"
    );

    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap);
    produce(&bootstrap);
    let consumer = consume_and_commit(&bootstrap);
    // A frame too short to be a request closes its connection: an error of no API.
    {
        let mut s = TcpStream::connect(broker.addr()).expect("connect");
        s.write_all(&[0, 0, 0, 2, 0xff, 0xff]).expect("write");
        let mut buf = [0u8; 16];
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Closed: end of stream or a reset. A read timeout would mean it stayed open.
        let read = s.read(&mut buf);
        assert!(
            match &read {
                Ok(n) => *n == 0,
                Err(e) => !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            },
            "the connection stayed open: {read:?}"
        );
    }

    let m = scrape(maddr);
    let t = [("topic", TOPIC)];
    let n = (PER_PARTITION * PARTITIONS as i64) as f64;

    // Bytes and records in, bytes out per topic (no records out: fetch sends file bytes
    // without reading them, as in Kafka).
    assert_eq!(m.kind("runnel_topic_bytes_in_total"), "counter");
    assert_eq!(m.kind("runnel_topic_records_in_total"), "counter");
    assert_eq!(m.kind("runnel_topic_bytes_out_total"), "counter");
    assert!(!m.types.contains_key("runnel_topic_records_out_total"));
    let bytes_in = m.value("runnel_topic_bytes_in_total", &t);
    assert!(bytes_in >= n * VALUE_SIZE as f64, "bytes in {bytes_in}");
    assert_eq!(m.value("runnel_topic_records_in_total", &t), n);
    assert!(m.value("runnel_topic_bytes_out_total", &t) >= n * VALUE_SIZE as f64);

    // Requests per API, with errors and latency.
    assert_eq!(m.kind("runnel_requests_total"), "counter");
    assert_eq!(m.kind("runnel_request_errors_total"), "counter");
    for api in ["Produce", "Fetch", "Metadata", "OffsetCommit"] {
        let requests = m.value("runnel_requests_total", &[("api", api)]);
        assert!(requests > 0.0, "{api} requests {requests}");
        let errors = m.value("runnel_request_errors_total", &[("api", api)]);
        assert!(errors <= requests);
        let count = m.histogram("runnel_request_duration_seconds", &[("api", api)]);
        assert!(
            count > 0.0 && count <= requests,
            "{api}: {count} of {requests}"
        );
    }
    assert_eq!(
        m.value("runnel_request_errors_total", &[("api", "Produce")]),
        0.0
    );
    assert!(m.value("runnel_request_errors_total", &[("api", "Unknown")]) >= 1.0);

    // Connections.
    assert_eq!(m.kind("runnel_connections_active"), "gauge");
    let active = m.value("runnel_connections_active", &[]);
    assert!(active >= 1.0, "active connections {active}");
    assert!(m.value("runnel_connections_accepted_total", &[]) >= active);

    // Partitions, log size and offsets.
    assert_eq!(m.value("runnel_topic_partitions", &t), PARTITIONS as f64);
    assert!(
        m.value(
            "runnel_topic_partitions",
            &[("topic", "__consumer_offsets")]
        ) >= 1.0
    );
    let size = m.value("runnel_topic_log_size_bytes", &t);
    assert!(size >= bytes_in, "log size {size} < bytes in {bytes_in}");
    for p in 0..PARTITIONS {
        let tp = [("topic", TOPIC), ("partition", &p.to_string())];
        assert_eq!(m.value("runnel_partition_log_start_offset", &tp), 0.0);
        assert_eq!(
            m.value("runnel_partition_log_end_offset", &tp),
            PER_PARTITION as f64
        );
        assert_eq!(
            m.value("runnel_partition_high_watermark", &tp),
            PER_PARTITION as f64
        );
    }

    // Consumer lag, in messages and in seconds.
    assert_eq!(m.kind("runnel_consumer_group_lag_messages"), "gauge");
    assert_eq!(m.kind("runnel_consumer_group_lag_seconds"), "gauge");
    let gp = |p: &'static str| [("group", GROUP), ("topic", TOPIC), ("partition", p)];
    assert_eq!(
        m.value("runnel_consumer_group_lag_messages", &gp("0")),
        LAG as f64
    );
    assert_eq!(m.value("runnel_consumer_group_lag_messages", &gp("1")), 0.0);
    assert!(
        m.find("runnel_consumer_group_lag_messages", &gp("2"))
            .is_empty(),
        "no commit, no lag series"
    );
    let lag_secs = m.value("runnel_consumer_group_lag_seconds", &gp("0"));
    assert!(
        (0.0..3600.0).contains(&lag_secs),
        "lag of records produced in this test: {lag_secs} s"
    );
    assert_eq!(m.value("runnel_consumer_group_lag_seconds", &gp("1")), 0.0);

    // acks=all produce and the commits were fsynced.
    let fsyncs = m.histogram("runnel_fsync_duration_seconds", &[]);
    assert!(fsyncs > 0.0, "fsync count {fsyncs}");

    // A second scrape: the lag timestamp comes from the cache, counters only grow.
    let again = scrape(maddr);
    assert_eq!(
        again.value("runnel_consumer_group_lag_messages", &gp("0")),
        LAG as f64
    );
    assert!(again.value("runnel_consumer_group_lag_seconds", &gp("0")) >= lag_secs);
    assert!(
        again.value("runnel_topic_bytes_out_total", &t)
            >= m.value("runnel_topic_bytes_out_total", &t)
    );
    drop(consumer);
}

/// Read what the server answers to `request` (written in full or until it stops
/// reading), tolerating a reset once it has answered.
fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn metrics_http_refuses_what_it_does_not_serve() {
    let mut broker = TestBroker::start();
    let maddr = broker.metrics_addr().expect("metrics address");
    let base = format!("http://{maddr}");

    assert_eq!(curl(&[], &format!("{base}/")).0, 404);
    assert_eq!(curl(&[], &format!("{base}/metricsx")).0, 404);
    assert_eq!(curl(&[], &format!("{base}/other/path")).0, 404);
    assert_eq!(curl(&["-X", "POST"], &format!("{base}/metrics")).0, 405);
    let (code, body) = curl(&["-I"], &format!("{base}/metrics?x=1"));
    assert_eq!(code, 200);
    assert!(
        body.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "HEAD headers: {body}"
    );

    // Idle connections do not block a scrape.
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(maddr).expect("idle connect"))
        .collect();
    // Garbage, binary junk, and a head far over the limit.
    let garbage = raw_http(maddr, b"this is not http\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "garbage: {garbage:?}");
    let junk = raw_http(maddr, &[0x16, 0x03, 0x01, 0x00, 0xff, 0xfe, b'\n', b'\n']);
    assert!(junk.starts_with("HTTP/1.1 400"), "junk: {junk:?}");
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    let oversized = raw_http(maddr, &huge);
    assert!(
        oversized.is_empty() || oversized.starts_with("HTTP/1.1 431"),
        "oversized: {:?}",
        &oversized[..oversized.len().min(200)]
    );
    // Half a request, then the client goes away.
    drop(TcpStream::connect(maddr).and_then(|mut s| s.write_all(b"GET /met")));

    // The broker is fine: metrics and Kafka both answer.
    let m = scrape(maddr);
    assert!(m.value("runnel_connections_accepted_total", &[]) >= 0.0);
    assert!(broker.is_running());
    create_topic(&broker.bootstrap());
    let after = scrape(maddr);
    assert_eq!(
        after.value("runnel_topic_partitions", &[("topic", TOPIC)]),
        PARTITIONS as f64
    );
    drop(idle);
    assert!(broker.stop().success(), "clean shutdown with metrics on");
}

#[test]
fn metrics_listener_can_be_disabled() {
    let broker = TestBroker::start_with(BrokerOptions {
        // The Event Hubs endpoints off too, so the Kafka listener is the only one.
        extra_args: [
            "metrics.listener=",
            "eventhubs.amqp.listener=",
            "eventhubs.blob.listener=",
        ]
        .iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect(),
        ..BrokerOptions::default()
    });
    assert_eq!(
        listening_ports(broker.pid()),
        vec![broker.addr().port()],
        "only the Kafka listener"
    );
    assert_eq!(broker.metrics_addr(), None, "no metrics line on stdout");
    assert!(
        broker.stderr_log().contains("metrics are disabled"),
        "{}",
        broker.diagnostics()
    );
    // Still a working broker.
    create_topic(&broker.bootstrap());
}

#[test]
fn serve_logs_json_lines_on_stderr() {
    let mut broker = TestBroker::start_with(BrokerOptions {
        extra_args: vec!["--log-format".into(), "json".into()],
        ..BrokerOptions::default()
    });
    create_topic(&broker.bootstrap());
    assert!(broker.stop().success());
    let log = broker.stderr_log();
    let mut messages = Vec::new();
    for line in log.lines().filter(|l| !l.starts_with("----- start")) {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string(), "timestamp in {line}");
        assert!(v["level"].is_string(), "level in {line}");
        let msg = v["fields"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("fields.message in {line}"));
        messages.push((
            v["level"].as_str().unwrap_or("").to_string(),
            msg.to_string(),
            v,
        ));
    }
    let ready = messages
        .iter()
        .find(|(_, m, _)| m == "runnel is ready")
        .unwrap_or_else(|| panic!("no ready message in {log}"));
    assert_eq!(ready.0, "INFO");
    let addr = ready.2["fields"]["addr"].as_str().unwrap_or_default();
    assert!(
        addr.parse::<SocketAddr>().is_ok(),
        "the ready event carries the address as a field: {addr:?}"
    );
    assert!(
        messages
            .iter()
            .any(|(_, m, _)| m == "serving metrics at /metrics"),
        "metrics address logged: {log}"
    );
    assert!(messages.iter().any(|(_, m, _)| m == "shutting down"));
}
