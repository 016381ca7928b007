//! KIP-227 fetch sessions over the wire: raw Fetch requests (kafka-protocol messages sent
//! with runnel-client's `Connection`) against the real broker.
//!
//! - [`transcript`] is one scenario written as Kafka behaves: session creation,
//!   incremental fetches that carry only changed partitions, forgotten topics, a stale
//!   epoch, an unknown session id, a request version that does not match the session's
//!   topic naming, unknown topic ids, a deleted and a recreated topic, an added
//!   partition, closing with epoch -1, a full fetch replacing a session, a session
//!   emptied by forgetting; by topic id (v16) and by name (v12). Each step is a line of
//!   the response's error, session id (none, the same, a new one) and partitions.
//!   `the_broker_answers_like_kafka` checks Runnel's lines; the ignored
//!   `kafka_answers_the_same` checks Apache Kafka's, so the expectation itself is
//!   checked against the reference (`FETCH_SESSIONS_KAFKA=127.0.0.1:PORT` with a broker
//!   from `tests/kafka/kafka.sh start`).
//! - long polls on a session: woken by data on one partition, answered with only it;
//!   idle ones wait their `max_wait_ms`, also when the session holds an unknown topic.
//! - the cache under `max.incremental.fetch.session.cache.slots`: Kafka's eviction order
//!   (idle sessions first, then smaller sessions by larger ones) and the session metrics.
//! - a session cannot hold more partitions than the broker has.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{self as m, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::{
    Admin, Client, Connection, ConnectionConfig, NewTopic, Producer, ProducerConfig, ProducerRecord,
};
use runnel_protocol::api::{RequestBody, ResponseBody};
use runnel_protocol::record_batch::BatchHeader;
use runnel_suite::{BrokerOptions, TestBroker};
use uuid::Uuid;

/// Fetch with topic ids (the newest Runnel speaks).
const V_IDS: i16 = 16;
/// Fetch with topic names.
const V_NAMES: i16 = 12;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Names unique per run, so the scenario can run again against the same Kafka.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        _ if code == 0 => "none".to_string(),
        Some(e) => format!("{e:?}"),
        None => format!("code {code}"),
    }
}

/// A partition in a request: (topic, partition, fetch offset).
type Part<'a> = (&'a Topic, i32, i64);

#[derive(Debug, Clone)]
struct Topic {
    label: &'static str,
    name: String,
    id: Uuid,
}

/// One fetcher: a connection, the request version, and how to label what comes back.
struct Fetcher {
    conn: Connection,
    version: i16,
    /// The session the fetcher last got, to tell "same" from "new" in a response.
    session: i32,
    labels: HashMap<String, &'static str>,
}

impl Fetcher {
    async fn connect(bootstrap: &str, version: i16, topics: &[&Topic]) -> Fetcher {
        let conn = Connection::connect(bootstrap, ConnectionConfig::default())
            .await
            .expect("connect");
        let mut labels = HashMap::new();
        for t in topics {
            labels.insert(t.name.clone(), t.label);
            labels.insert(t.id.to_string(), t.label);
        }
        Fetcher {
            conn,
            version,
            session: 0,
            labels,
        }
    }

    fn request(
        &self,
        version: i16,
        session_id: i32,
        epoch: i32,
        parts: &[Part<'_>],
        forgotten: &[(&Topic, i32)],
        max_wait_ms: i32,
    ) -> m::FetchRequest {
        let by_id = version >= 13;
        let mut topics: Vec<m::fetch_request::FetchTopic> = Vec::new();
        for (t, p, offset) in parts {
            let fp = m::fetch_request::FetchPartition::default()
                .with_partition(*p)
                .with_fetch_offset(*offset)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20);
            let same = topics.last().is_some_and(|last| {
                if by_id {
                    last.topic_id == t.id
                } else {
                    last.topic.0.as_str() == t.name
                }
            });
            if !same {
                let ft = m::fetch_request::FetchTopic::default();
                topics.push(if by_id {
                    ft.with_topic_id(t.id)
                } else {
                    ft.with_topic(TopicName(StrBytes::from_string(t.name.clone())))
                });
            }
            if let Some(last) = topics.last_mut() {
                last.partitions.push(fp);
            }
        }
        let forgotten = forgotten
            .iter()
            .map(|(t, p)| {
                let ft = m::fetch_request::ForgottenTopic::default().with_partitions(vec![*p]);
                if by_id {
                    ft.with_topic_id(t.id)
                } else {
                    ft.with_topic(TopicName(StrBytes::from_string(t.name.clone())))
                }
            })
            .collect();
        m::FetchRequest::default()
            .with_replica_id(m::BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_session_id(session_id)
            .with_session_epoch(epoch)
            .with_topics(topics)
            .with_forgotten_topics_data(forgotten)
    }

    async fn fetch_version(
        &self,
        version: i16,
        session_id: i32,
        epoch: i32,
        parts: &[Part<'_>],
        forgotten: &[(&Topic, i32)],
        max_wait_ms: i32,
    ) -> m::FetchResponse {
        let req = self.request(version, session_id, epoch, parts, forgotten, max_wait_ms);
        match self
            .conn
            .send_version(RequestBody::Fetch(req), version)
            .await
            .expect("fetch")
        {
            ResponseBody::Fetch(r) => r,
            other => panic!("not a fetch response: {other:?}"),
        }
    }

    /// Fetch and describe the response as one line.
    async fn step(
        &mut self,
        session_id: i32,
        epoch: i32,
        parts: &[Part<'_>],
        forgotten: &[(&Topic, i32)],
        max_wait_ms: i32,
    ) -> String {
        let version = self.version;
        self.step_version(version, session_id, epoch, parts, forgotten, max_wait_ms)
            .await
    }

    async fn step_version(
        &mut self,
        version: i16,
        session_id: i32,
        epoch: i32,
        parts: &[Part<'_>],
        forgotten: &[(&Topic, i32)],
        max_wait_ms: i32,
    ) -> String {
        let r = self
            .fetch_version(version, session_id, epoch, parts, forgotten, max_wait_ms)
            .await;
        self.describe(&r)
    }

    fn describe(&mut self, r: &m::FetchResponse) -> String {
        let session = if r.session_id == 0 {
            "none"
        } else if r.session_id == self.session {
            "same"
        } else {
            "new"
        };
        if r.session_id != 0 {
            self.session = r.session_id;
        }
        let mut parts = Vec::new();
        for t in &r.responses {
            let key = if self.version >= 13 {
                t.topic_id.to_string()
            } else {
                t.topic.0.to_string()
            };
            let label = self.labels.get(&key).copied().unwrap_or("?");
            for p in &t.partitions {
                let mut s = format!("{label}-{}", p.partition_index);
                if p.error_code != 0 {
                    s.push_str(&format!(" {}", error_name(p.error_code)));
                } else {
                    s.push_str(&format!(" hw={}", p.high_watermark));
                }
                if let Some((first, last)) = p.records.as_deref().and_then(offsets) {
                    s.push_str(&format!(" records={first}..{last}"));
                }
                parts.push(s);
            }
        }
        parts.sort();
        format!(
            "error={} session={session} [{}]",
            error_name(r.error_code),
            parts.join(", ")
        )
    }
}

/// First and last offset of the batches in a record set.
fn offsets(records: &[u8]) -> Option<(i64, i64)> {
    let mut pos = 0;
    let mut range = None;
    while pos < records.len() {
        let h = BatchHeader::parse(&records[pos..]).ok()?;
        let first = range.map_or(h.base_offset, |(f, _)| f);
        range = Some((first, h.last_offset()));
        pos += h.total_len();
    }
    range
}

async fn produce(client: &Client, topic: &Topic, partition: i32, count: usize) {
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(topic.name.clone())
            .partition(partition)
            .value(Bytes::from(format!("{}-{partition}-{i}", topic.label)));
        deliveries.push(producer.send_record(record).await.expect("send"));
    }
    producer.flush().await.expect("flush");
    for d in deliveries {
        d.await.expect("delivered");
    }
    producer.close().await.expect("close producer");
}

/// Wait until metadata shows `name` with `partitions` partitions (0: gone); its id.
async fn await_topic(conn: &Connection, name: &str, partitions: usize) -> Uuid {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = m::MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(vec![
                m::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(name.to_string())))),
            ]));
        let resp = match conn.send(req).await.expect("metadata") {
            ResponseBody::Metadata(r) => r,
            other => panic!("not a metadata response: {other:?}"),
        };
        let t = &resp.topics[0];
        let ready = if partitions == 0 {
            t.error_code == ResponseError::UnknownTopicOrPartition.code()
        } else {
            t.error_code == 0
                && t.partitions.len() == partitions
                && t.partitions.iter().all(|p| p.error_code == 0)
        };
        if ready {
            return t.topic_id;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never had {partitions} partitions: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_topic(client: &Client, conn: &Connection, label: &'static str, n: i32) -> Topic {
    let name = unique(&format!("fs-{}", label.to_lowercase()));
    Admin::new(client.clone())
        .create_topics(&[NewTopic::new(name.clone(), n)])
        .await
        .expect("create topic");
    let id = await_topic(conn, &name, n as usize).await;
    Topic { label, name, id }
}

/// The scenario; one line per fetch.
async fn transcript(bootstrap: &str) -> Vec<String> {
    let client = Client::bootstrap(bootstrap).await.expect("client");
    let admin = Admin::new(client.clone());
    let meta = Connection::connect(bootstrap, ConnectionConfig::default())
        .await
        .expect("connect");
    let a = create_topic(&client, &meta, "A", 3).await;
    let b = create_topic(&client, &meta, "B", 2).await;
    let mut c = create_topic(&client, &meta, "C", 1).await;
    let x = Topic {
        label: "X",
        name: "fs-no-such-topic".to_string(),
        id: Uuid::new_v4(),
    };
    produce(&client, &a, 0, 5).await;
    produce(&client, &b, 1, 3).await;

    let mut out = Vec::new();
    let mut f = Fetcher::connect(bootstrap, V_IDS, &[&a, &b, &c, &x]).await;
    let mut log = |what: &str, line: String| out.push(format!("{what}: {line}"));

    let all = [
        (&a, 0, 0),
        (&a, 1, 0),
        (&a, 2, 0),
        (&b, 0, 0),
        (&b, 1, 0),
        (&c, 0, 0),
    ];
    log("full", f.step(0, 0, &all, &[], 0).await);
    let sid = f.session;
    log(
        "caught up",
        f.step(sid, 1, &[(&a, 0, 5), (&b, 1, 3)], &[], 100).await,
    );
    produce(&client, &a, 1, 2).await;
    log("new data", f.step(sid, 2, &[], &[], 2000).await);
    log("offset not moved", f.step(sid, 3, &[], &[], 100).await);
    log(
        "forget B",
        f.step(sid, 4, &[(&a, 1, 2)], &[(&b, 0), (&b, 1)], 100)
            .await,
    );
    produce(&client, &b, 1, 1).await;
    produce(&client, &a, 2, 1).await;
    log("data on forgotten", f.step(sid, 5, &[], &[], 2000).await);
    log("stale epoch", f.step(sid, 5, &[], &[], 100).await);
    let other = sid.wrapping_add(1).max(1);
    log("unknown session", f.step(other, 6, &[], &[], 100).await);
    log(
        "names on an id session",
        f.step_version(V_NAMES, sid, 6, &[], &[], 100).await,
    );
    log(
        "unknown topic id",
        f.step(sid, 6, &[(&a, 2, 1), (&x, 0, 0)], &[], 100).await,
    );
    log("errors repeat", f.step(sid, 7, &[], &[], 100).await);
    log("forget unknown", f.step(sid, 8, &[], &[(&x, 0)], 100).await);

    admin.delete_topics(&[&c.name]).await.expect("delete C");
    await_topic(&meta, &c.name, 0).await;
    log("deleted topic", f.step(sid, 9, &[], &[], 100).await);
    // Created again under its name, with a new id; the session keeps the old one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = admin
        .create_topics(&[NewTopic::new(c.name.clone(), 1)])
        .await
    {
        assert!(Instant::now() < deadline, "recreating C: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let new_id = await_topic(&meta, &c.name, 1).await;
    assert_ne!(new_id, c.id, "a recreated topic has a new id");
    log("recreated topic", f.step(sid, 10, &[], &[], 100).await);
    log("forget C", f.step(sid, 11, &[], &[(&c, 0)], 100).await);
    c.id = new_id;

    admin.create_partitions(&a.name, 4).await.expect("add A-3");
    await_topic(&meta, &a.name, 4).await;
    produce(&client, &a, 3, 2).await;
    log(
        "added partition",
        f.step(sid, 12, &[(&a, 3, 0)], &[], 2000).await,
    );
    log(
        "close with epoch -1",
        f.step(sid, -1, &[(&a, 0, 5)], &[], 0).await,
    );
    log("closed", f.step(sid, 13, &[], &[], 100).await);

    log(
        "new session",
        f.step(0, 0, &[(&a, 0, 0), (&a, 1, 2)], &[], 0).await,
    );
    let second = f.session;
    log(
        "full fetch replaces it",
        f.step(second, 0, &[(&a, 1, 2)], &[], 0).await,
    );
    let third = f.session;
    log("replaced", f.step(second, 1, &[], &[], 100).await);
    log("forget all", f.step(third, 1, &[], &[(&a, 1)], 100).await);
    log("emptied", f.step(third, 2, &[], &[], 100).await);

    // By name (v12).
    let z = Topic {
        label: "Z",
        name: "fs-no-such-topic".to_string(),
        id: Uuid::nil(),
    };
    let mut f = Fetcher::connect(bootstrap, V_NAMES, &[&a, &b, &z]).await;
    let mut log = |what: &str, line: String| out.push(format!("v12 {what}: {line}"));
    log(
        "full",
        f.step(0, 0, &[(&a, 0, 5), (&b, 1, 0)], &[], 0).await,
    );
    let sid = f.session;
    log("caught up", f.step(sid, 1, &[(&b, 1, 4)], &[], 100).await);
    produce(&client, &a, 0, 1).await;
    log("new data", f.step(sid, 2, &[], &[], 2000).await);
    log(
        "forget B",
        f.step(sid, 3, &[(&a, 0, 6)], &[(&b, 1)], 100).await,
    );
    log(
        "ids on a name session",
        f.step_version(V_IDS, sid, 4, &[], &[], 100).await,
    );
    log(
        "unknown topic",
        f.step(sid, 4, &[(&z, 0, 0)], &[], 100).await,
    );
    log("close", f.step(sid, -1, &[], &[], 0).await);
    out
}

/// What Kafka 4.4 answers (checked with `kafka_answers_the_same`).
const EXPECTED: &[&str] = &[
    "full: error=none session=new [A-0 hw=5 records=0..4, A-1 hw=0, A-2 hw=0, B-0 hw=0, B-1 hw=3 records=0..2, C-0 hw=0]",
    "caught up: error=none session=same []",
    "new data: error=none session=same [A-1 hw=2 records=0..1]",
    "offset not moved: error=none session=same [A-1 hw=2 records=0..1]",
    "forget B: error=none session=same []",
    "data on forgotten: error=none session=same [A-2 hw=1 records=0..0]",
    "stale epoch: error=InvalidFetchSessionEpoch session=none []",
    "unknown session: error=FetchSessionIdNotFound session=none []",
    "names on an id session: error=FetchSessionTopicIdError session=none []",
    "unknown topic id: error=none session=same [X-0 UnknownTopicId]",
    "errors repeat: error=none session=same [X-0 UnknownTopicId]",
    "forget unknown: error=none session=same []",
    "deleted topic: error=none session=same [C-0 UnknownTopicOrPartition]",
    "recreated topic: error=none session=same [C-0 InconsistentTopicId]",
    "forget C: error=none session=same []",
    "added partition: error=none session=same [A-3 hw=2 records=0..1]",
    "close with epoch -1: error=none session=none [A-0 hw=5]",
    "closed: error=FetchSessionIdNotFound session=none []",
    "new session: error=none session=new [A-0 hw=5 records=0..4, A-1 hw=2]",
    "full fetch replaces it: error=none session=new [A-1 hw=2]",
    "replaced: error=FetchSessionIdNotFound session=none []",
    "forget all: error=none session=none []",
    "emptied: error=FetchSessionIdNotFound session=none []",
    "v12 full: error=none session=new [A-0 hw=5, B-1 hw=4 records=0..3]",
    "v12 caught up: error=none session=same []",
    "v12 new data: error=none session=same [A-0 hw=6 records=5..5]",
    "v12 forget B: error=none session=same []",
    "v12 ids on a name session: error=FetchSessionTopicIdError session=none []",
    "v12 unknown topic: error=none session=same [Z-0 UnknownTopicOrPartition]",
    "v12 close: error=none session=none []",
];

fn check_transcript(got: &[String]) {
    let got: Vec<&str> = got.iter().map(String::as_str).collect();
    for (i, (g, e)) in got.iter().zip(EXPECTED).enumerate() {
        assert_eq!(
            g,
            e,
            "step {i} differs; whole transcript:\n{}",
            got.join("\n")
        );
    }
    assert_eq!(got.len(), EXPECTED.len(), "{}", got.join("\n"));
}

#[test]
fn the_broker_answers_like_kafka() {
    let broker = TestBroker::start();
    let got = block_on(transcript(&broker.bootstrap()));
    println!("{}", got.join("\n"));
    check_transcript(&got);
}

/// The same scenario, and the long polls, against Apache Kafka:
/// `tests/kafka/kafka.sh start DIR` then
/// `FETCH_SESSIONS_KAFKA=127.0.0.1:PORT cargo test --test fetch_sessions -- --ignored`.
#[test]
#[ignore = "needs a Kafka broker: set FETCH_SESSIONS_KAFKA=host:port"]
fn kafka_answers_the_same() {
    let bootstrap = std::env::var("FETCH_SESSIONS_KAFKA")
        .expect("FETCH_SESSIONS_KAFKA=host:port of a Kafka broker (tests/kafka/kafka.sh start)");
    let got = block_on(transcript(&bootstrap));
    println!("{}", got.join("\n"));
    check_transcript(&got);
    block_on(long_polls(&bootstrap));
}

#[test]
fn long_polls_on_a_session() {
    let broker = TestBroker::start();
    block_on(long_polls(&broker.bootstrap()));
}

async fn long_polls(bootstrap: &str) {
    let client = Client::bootstrap(bootstrap).await.expect("client");
    let meta = Connection::connect(bootstrap, ConnectionConfig::default())
        .await
        .expect("connect");
    let t = create_topic(&client, &meta, "L", 3).await;
    let x = Topic {
        label: "X",
        name: String::new(),
        id: Uuid::new_v4(),
    };
    let mut f = Fetcher::connect(bootstrap, V_IDS, &[&t, &x]).await;
    let parts = [(&t, 0, 0), (&t, 1, 0), (&t, 2, 0)];
    let line = f.step(0, 0, &parts, &[], 0).await;
    assert_eq!(
        line,
        "error=none session=new [L-0 hw=0, L-1 hw=0, L-2 hw=0]"
    );
    let sid = f.session;

    // Nothing arrives: the fetch waits its max_wait_ms and carries nothing.
    let started = Instant::now();
    let line = f.step(sid, 1, &[], &[], 400).await;
    let waited = started.elapsed();
    assert_eq!(line, "error=none session=same []");
    assert!(
        waited >= Duration::from_millis(380),
        "answered after {waited:?}"
    );

    // Data on one partition wakes the poll; only that partition comes back.
    let producer = {
        let client = client.clone();
        let t = t.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            produce(&client, &t, 1, 3).await;
        })
    };
    let started = Instant::now();
    let line = f.step(sid, 2, &[], &[], 10_000).await;
    let waited = started.elapsed();
    producer.await.expect("producer task");
    assert_eq!(line, "error=none session=same [L-1 hw=3 records=0..2]");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(8),
        "answered after {waited:?}"
    );

    // A partition of an unknown topic id is answered with its error, but does not
    // cut the long poll short (it would make a client spin), as in Kafka.
    let started = Instant::now();
    let line = f.step(sid, 3, &[(&t, 1, 3), (&x, 0, 0)], &[], 400).await;
    let waited = started.elapsed();
    assert_eq!(line, "error=none session=same [X-0 UnknownTopicId]");
    assert!(
        waited >= Duration::from_millis(380),
        "answered after {waited:?}"
    );

    // Two fetches of one session at once, from two connections: the second moves
    // the epoch during the first's long poll, so the first is refused (Kafka's
    // duplicate-request check).
    let g = Fetcher::connect(bootstrap, V_IDS, &[&t, &x]).await;
    let forget_x = [(&x, 0)];
    let first = f.fetch_version(V_IDS, sid, 4, &[], &forget_x, 2000);
    let second = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        g.fetch_version(V_IDS, sid, 5, &[], &[], 100).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(
        first.error_code,
        ResponseError::InvalidFetchSessionEpoch.code()
    );
    assert_eq!(first.session_id, sid);
    assert_eq!((second.error_code, second.session_id), (0, sid));
}

/// `GET /metrics` from the broker: the value of each sample line.
fn scrape(broker: &TestBroker) -> HashMap<String, f64> {
    let addr = broker.metrics_addr().expect("metrics listener");
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// A full fetch of partitions 0..n of `t`: the new session's id (0 for none).
async fn open(f: &Fetcher, t: &Topic, n: i32) -> i32 {
    let parts: Vec<Part<'_>> = (0..n).map(|p| (t, p, 0)).collect();
    let r = f.fetch_version(V_IDS, 0, 0, &parts, &[], 0).await;
    assert_eq!(r.error_code, 0);
    r.session_id
}

#[test]
fn the_cache_evicts_as_kafka_does() {
    const EVICTION_MS: u64 = 3000;
    let broker = TestBroker::start_with(BrokerOptions {
        extra_args: [
            "max.incremental.fetch.session.cache.slots=2".to_string(),
            format!("min.incremental.fetch.session.eviction.ms={EVICTION_MS}"),
        ]
        .iter()
        .flat_map(|s| ["--set".to_string(), s.clone()])
        .collect(),
        ..Default::default()
    });
    let bootstrap = broker.bootstrap();
    let metric = |name: &str| scrape(&broker).get(name).copied().unwrap_or(-1.0);
    block_on(async {
        let client = Client::bootstrap(&bootstrap).await.expect("client");
        let meta = Connection::connect(&bootstrap, ConnectionConfig::default())
            .await
            .expect("connect");
        let t = create_topic(&client, &meta, "E", 4).await;
        let f = Fetcher::connect(&bootstrap, V_IDS, &[&t]).await;
        let small = open(&f, &t, 1).await;
        let big = open(&f, &t, 3).await;
        assert!(small != 0 && big != 0 && small != big);
        // The cache is full and both sessions are young: no session for a newcomer.
        assert_eq!(open(&f, &t, 4).await, 0);
        assert_eq!(metric("runnel_incremental_fetch_sessions"), 2.0);
        assert_eq!(metric("runnel_incremental_fetch_partitions_cached"), 4.0);

        // Used once they are older than the eviction time: they become evictable by
        // larger sessions, the smallest first.
        tokio::time::sleep(Duration::from_millis(EVICTION_MS + 300)).await;
        for id in [small, big] {
            let r = f.fetch_version(V_IDS, id, 1, &[], &[], 0).await;
            assert_eq!((r.error_code, r.session_id), (0, id));
        }
        assert_eq!(
            open(&f, &t, 1).await,
            0,
            "a session of equal size evicts nothing"
        );
        let mid = open(&f, &t, 2).await;
        assert_ne!(mid, 0, "a larger session evicts the smallest");
        let r = f.fetch_version(V_IDS, small, 2, &[], &[], 0).await;
        assert_eq!(r.error_code, ResponseError::FetchSessionIdNotFound.code());
        assert_eq!(
            open(&f, &t, 2).await,
            0,
            "the young session is not evictable and the old one is larger"
        );
        assert_eq!(
            metric("runnel_incremental_fetch_session_evictions_total"),
            1.0
        );

        // Idle past the eviction time: the least recently used goes, however large.
        tokio::time::sleep(Duration::from_millis(EVICTION_MS + 300)).await;
        let r = f.fetch_version(V_IDS, mid, 1, &[], &[], 0).await;
        assert_eq!((r.error_code, r.session_id), (0, mid));
        let newest = open(&f, &t, 1).await;
        assert_ne!(newest, 0);
        let r = f.fetch_version(V_IDS, big, 2, &[], &[], 0).await;
        assert_eq!(r.error_code, ResponseError::FetchSessionIdNotFound.code());
        let r = f.fetch_version(V_IDS, mid, 2, &[], &[], 0).await;
        assert_eq!((r.error_code, r.session_id), (0, mid));
    });
    assert_eq!(metric("runnel_incremental_fetch_sessions"), 2.0);
    assert_eq!(metric("runnel_incremental_fetch_partitions_cached"), 3.0);
    assert_eq!(
        metric("runnel_incremental_fetch_session_evictions_total"),
        2.0
    );
    assert_eq!(
        metric("runnel_fetch_requests_total{session=\"incremental\"}"),
        4.0
    );
    assert_eq!(
        metric("runnel_fetch_requests_total{session=\"session_error\"}"),
        2.0
    );
    assert_eq!(metric("runnel_fetch_requests_total{session=\"full\"}"), 7.0);
}

#[test]
fn a_session_holds_no_more_partitions_than_exist() {
    let broker = TestBroker::start_with(BrokerOptions {
        extra_args: vec![
            "--set".to_string(),
            "offsets.topic.num.partitions=1".to_string(),
        ],
        ..Default::default()
    });
    let bootstrap = broker.bootstrap();
    block_on(async {
        let client = Client::bootstrap(&bootstrap).await.expect("client");
        let meta = Connection::connect(&bootstrap, ConnectionConfig::default())
            .await
            .expect("connect");
        // With __consumer_offsets the broker has 3 partitions.
        let t = create_topic(&client, &meta, "M", 2).await;
        let x = Topic {
            label: "X",
            name: String::new(),
            id: Uuid::new_v4(),
        };
        let f = Fetcher::connect(&bootstrap, V_IDS, &[&t, &x]).await;
        let unknown: Vec<Part<'_>> = (0..4).map(|p| (&x, p, 0)).collect();
        let r = f.fetch_version(V_IDS, 0, 0, &unknown, &[], 0).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.session_id, 0, "4 partitions where 3 exist get no session");
        assert_eq!(r.responses[0].partitions.len(), 4);

        let r = f
            .fetch_version(V_IDS, 0, 0, &[(&t, 0, 0), (&x, 0, 0)], &[], 0)
            .await;
        let sid = r.session_id;
        assert_ne!(sid, 0);
        let r = f.fetch_version(V_IDS, sid, 1, &[(&t, 1, 0)], &[], 0).await;
        assert_eq!((r.error_code, r.session_id), (0, sid));
        // A fourth partition: the session is closed and the client starts over.
        let r = f.fetch_version(V_IDS, sid, 2, &[(&x, 1, 0)], &[], 0).await;
        assert_eq!(r.error_code, ResponseError::FetchSessionIdNotFound.code());
        let r = f.fetch_version(V_IDS, sid, 2, &[], &[], 0).await;
        assert_eq!(r.error_code, ResponseError::FetchSessionIdNotFound.code());
    });
    let m = scrape(&broker);
    assert_eq!(m.get("runnel_incremental_fetch_sessions"), Some(&0.0));
    assert_eq!(
        m.get("runnel_incremental_fetch_partitions_cached"),
        Some(&0.0)
    );
}
