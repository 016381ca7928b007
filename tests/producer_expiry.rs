//! Producer id expiration (`producer.id.expiration.ms`) against the real broker, over the
//! raw protocol (kafka-protocol messages sent with runnel-client's `Connection`).
//!
//! Every InitProducerId hands out a new producer id, and each id that produces leaves
//! state in the partition. 10,000 one-batch producers fill the partition's producer
//! state and its snapshots; once they have been idle for `producer.id.expiration.ms`
//! the `runnel_partition_producers` gauge drops to the one producer that kept producing,
//! the newest snapshot holds only the live producers, the live producer still has its
//! deduplication state and an expired one does not. After a kill -9, producers whose
//! batches are replayed from the log with timestamps older than the expiration are not
//! brought back.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{self as m, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::{Admin, Client, Connection, ConnectionConfig, NewTopic};
use runnel_protocol::api::{RequestBody, ResponseBody};
use runnel_protocol::record_batch::builder::{ProducerFields, Record};
use runnel_protocol::record_batch::Compression;
use runnel_protocol::records::build_batch;
use runnel_suite::{BrokerOptions, TestBroker};
use std::sync::Arc;

const TOPIC: &str = "producer-expiry";
const PRODUCERS: usize = 10_000;
// Long enough that creating the 10,000 producers fits well inside it on a loaded machine.
const EXPIRATION_MS: u64 = 20_000;
const CHECK_INTERVAL_MS: u64 = 200;
/// Small segments, so that segment rolls write snapshots while the producers arrive.
const SEGMENT_BYTES: usize = 128 * 1024;
const CONNECTIONS: usize = 5;
const WORKERS_PER_CONNECTION: usize = 8;
/// How often the long-lived producer produces: well within the expiration.
const KEEPER_EVERY: Duration = Duration::from_millis(400);
const _: () = assert!(PRODUCERS.is_multiple_of(CONNECTIONS * WORKERS_PER_CONNECTION));

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn connect(bootstrap: &str) -> Connection {
    Connection::connect(bootstrap, ConnectionConfig::default())
        .await
        .expect("connect")
}

async fn init_producer_id(conn: &Connection) -> (i64, i16) {
    let req = m::InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1)
        .with_producer_id(m::ProducerId(-1))
        .with_producer_epoch(-1);
    let ResponseBody::InitProducerId(r) = conn
        .send_version(RequestBody::InitProducerId(req), 4)
        .await
        .expect("InitProducerId")
    else {
        panic!("not an InitProducerId response")
    };
    assert_eq!(r.error_code, 0, "InitProducerId: {r:?}");
    (r.producer_id.0, r.producer_epoch)
}

/// One idempotent batch of one record; returns the partition's (error code, base offset).
async fn produce(
    conn: &Connection,
    producer: (i64, i16),
    sequence: i32,
    timestamp: i64,
    value: &[u8],
    acks: i16,
) -> (i16, i64) {
    let batch = build_batch(
        Compression::None,
        timestamp,
        &[Record {
            value: Some(value),
            ..Default::default()
        }],
        ProducerFields {
            producer_id: producer.0,
            producer_epoch: producer.1,
            base_sequence: sequence,
        },
    )
    .expect("build batch");
    let req = m::ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![m::produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![
                m::produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch))),
            ])]);
    let ResponseBody::Produce(r) = conn
        .send_version(RequestBody::Produce(req), 9)
        .await
        .expect("Produce")
    else {
        panic!("not a Produce response")
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// `GET /metrics`: the value of the sample `name{topic=TOPIC,partition="0"}`.
fn partition_gauge(broker: &TestBroker, name: &str) -> u64 {
    use std::io::{Read, Write};
    let addr = broker.metrics_addr().expect("metrics listener");
    let mut s = std::net::TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let prefix = format!("{name}{{topic=\"{TOPIC}\",partition=\"0\"}} ");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
    line.trim().parse().expect("numeric sample")
}

/// The newest producer snapshot of the partition: (offset, size in bytes, producer ids).
fn newest_snapshot(broker: &TestBroker) -> (u64, u64, Vec<i64>) {
    let dir = broker.data_dir().join(format!("{TOPIC}-0"));
    let newest = std::fs::read_dir(&dir)
        .expect("partition directory")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let offset: u64 = name.strip_suffix(".snapshot")?.parse().ok()?;
            Some((offset, e.path()))
        })
        .max()
        .expect("a producer snapshot");
    let bytes = std::fs::read(&newest.1).expect("read snapshot");
    // Layout (storage/src/producer_state.rs, version 2): version i16, crc u32, offset
    // u64, count u32, then per producer its id i64, epoch i16, last timestamp i64,
    // coordinator epoch i32, open transaction's first offset i64, batch count u8 and 32
    // bytes per batch.
    assert_eq!(&bytes[..2], &[0, 2], "snapshot version 2");
    let be_u32 = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let count = be_u32(14) as usize;
    let mut ids = Vec::with_capacity(count);
    let mut at = 18;
    for _ in 0..count {
        ids.push(i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap()));
        let batches = bytes[at + 30] as usize;
        at += 31 + 32 * batches;
    }
    assert_eq!(at, bytes.len(), "snapshot parsed to its end");
    (newest.0, bytes.len() as u64, ids)
}

/// A producer that keeps producing: its id and epoch, next sequence, and its last
/// batch (sequence, timestamp, base offset) for a retry.
struct Keeper {
    id: (i64, i16),
    next_seq: i32,
    last: (i32, i64, i64),
    sent_at: Instant,
}

impl Keeper {
    async fn produce(&mut self, conn: &Connection, value: &[u8]) -> i64 {
        let ts = now_ms();
        let (err, base) = produce(conn, self.id, self.next_seq, ts, value, 1).await;
        assert_eq!(err, 0, "keeper produce");
        self.last = (self.next_seq, ts, base);
        self.next_seq += 1;
        self.sent_at = Instant::now();
        base
    }

    async fn keep_alive(&mut self, conn: &Connection) {
        if self.sent_at.elapsed() >= KEEPER_EVERY {
            self.produce(conn, b"keeper").await;
        }
    }

    /// Resend the last batch: a duplicate is answered with its original offset.
    async fn retry_last(&self, conn: &Connection) -> (i16, i64) {
        let (seq, ts, _) = self.last;
        produce(conn, self.id, seq, ts, b"keeper", 1).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_producers_expire_from_memory_and_snapshots() {
    let mut broker = TestBroker::start_with(BrokerOptions {
        extra_args: vec![
            "--set".into(),
            format!("producer.id.expiration.ms={EXPIRATION_MS}"),
        ],
        // From the environment, so that a restart can stretch it (see the end).
        env: vec![(
            "RUNNEL_PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS".into(),
            CHECK_INTERVAL_MS.to_string(),
        )],
        ..Default::default()
    });
    let bootstrap = broker.bootstrap();
    let client = Client::bootstrap(&bootstrap).await.expect("client");
    Admin::new(client.clone())
        .create_topics(
            &[NewTopic::new(TOPIC, 1).config("segment.bytes", SEGMENT_BYTES.to_string())],
        )
        .await
        .expect("create topic");
    let conn = connect(&bootstrap).await;
    let id = init_producer_id(&conn).await;
    let mut keeper = Keeper {
        id,
        next_seq: 0,
        last: (0, 0, 0),
        sent_at: Instant::now(),
    };
    keeper.produce(&conn, b"keeper").await;

    // 10,000 producers, one batch each, from concurrent workers.
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let c = Arc::new(connect(&bootstrap).await);
        for _ in 0..WORKERS_PER_CONNECTION {
            let c = c.clone();
            workers.spawn(async move {
                let mut first = None;
                for _ in 0..PRODUCERS / (CONNECTIONS * WORKERS_PER_CONNECTION) {
                    let p = init_producer_id(&c).await;
                    let (err, base) = produce(&c, p, 0, now_ms(), b"one-shot", 1).await;
                    assert_eq!(err, 0, "produce for producer {p:?}");
                    first.get_or_insert((p, base));
                }
                first
            });
        }
    }
    let mut one_shot = None;
    while !workers.is_empty() {
        tokio::select! {
            done = workers.join_next() => {
                let first = done.expect("a worker").expect("worker panicked");
                one_shot = one_shot.or(first);
            }
            _ = tokio::time::sleep(KEEPER_EVERY) => {}
        }
        keeper.keep_alive(&conn).await;
    }
    let (one_shot, one_shot_offset) = one_shot.expect("a one-shot producer");
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(EXPIRATION_MS - 2_000),
        "{PRODUCERS} producers took {took:?}: too slow for an expiration of {EXPIRATION_MS} ms"
    );
    // Nothing has been idle long enough yet: all are there, and segment rolls wrote
    // snapshots holding thousands of them.
    assert_eq!(
        partition_gauge(&broker, "runnel_partition_producers"),
        PRODUCERS as u64 + 1
    );
    let (_, big_size, big_ids) = newest_snapshot(&broker);
    assert!(
        big_ids.len() > PRODUCERS / 2,
        "newest snapshot before expiry holds {} producers",
        big_ids.len()
    );

    // The one-shot producers expire; the keeper, producing all along, does not.
    let deadline = Instant::now() + Duration::from_millis(EXPIRATION_MS * 2);
    loop {
        keeper.keep_alive(&conn).await;
        let n = partition_gauge(&broker, "runnel_partition_producers");
        if n == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} producers left after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Expiry rewrote the snapshot: only the keeper is in it.
    let (expiry_offset, size, ids) = newest_snapshot(&broker);
    assert_eq!(ids, vec![keeper.id.0]);
    assert!(size < 256, "snapshot of one producer is {size} bytes");
    assert!(big_size > 100 * size, "{big_size} vs {size}");

    // The keeper's retry is still recognized; the expired producer's is written again.
    let leo = partition_gauge(&broker, "runnel_partition_log_end_offset");
    assert_eq!(keeper.retry_last(&conn).await, (0, keeper.last.2));
    let (err, base) = produce(&conn, one_shot, 0, now_ms(), b"one-shot", 1).await;
    assert_eq!(err, 0);
    assert!(base as u64 >= leo, "expired producer's retry answered as a duplicate at {base} (first written at {one_shot_offset})");
    assert_eq!(partition_gauge(&broker, "runnel_partition_producers"), 2);

    // The next roll's snapshot holds only the live producers.
    let big = vec![b'x'; SEGMENT_BYTES / 3];
    let roll_offset = loop {
        keeper.produce(&conn, &big).await;
        let (offset, size, mut ids) = newest_snapshot(&broker);
        if offset > expiry_offset {
            ids.sort_unstable();
            let mut want = vec![keeper.id.0, one_shot.0];
            want.sort_unstable();
            assert_eq!(ids, want);
            assert!(size < 512, "{size}");
            break offset;
        }
    };

    // Producers whose only batches, after the newest snapshot, carry timestamps older
    // than the expiration: acknowledged after fsync, then the broker is killed. The
    // replay on restart stamps them with those timestamps, so they stay expired. The
    // check interval is stretched so that only the load can have removed them.
    let old = now_ms() - 10 * EXPIRATION_MS as i64;
    for _ in 0..100 {
        let p = init_producer_id(&conn).await;
        assert_eq!(produce(&conn, p, 0, old, b"old", -1).await.0, 0);
    }
    keeper.produce(&conn, b"keeper").await;
    assert_eq!(partition_gauge(&broker, "runnel_partition_producers"), 102);
    assert_eq!(
        newest_snapshot(&broker).0,
        roll_offset,
        "no snapshot covers them"
    );
    drop(conn);
    let killed = Instant::now();
    broker.kill9();
    broker.set_env(vec![(
        "RUNNEL_PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS".into(),
        "600000".into(),
    )]);
    broker.restart();
    let conn = connect(&broker.bootstrap()).await;
    // The premise of what follows: the keeper's last batch is still within the
    // expiration when the restarted broker loads it.
    assert!(
        killed.elapsed() < Duration::from_millis(EXPIRATION_MS / 2),
        "the restart took {:?}",
        killed.elapsed()
    );
    assert_eq!(partition_gauge(&broker, "runnel_partition_producers"), 2);
    // The keeper's state came back from the snapshot and the replay.
    assert_eq!(keeper.retry_last(&conn).await, (0, keeper.last.2));
}
