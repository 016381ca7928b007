//! Per-record produce errors (KIP-467) as Kafka's LogValidator reports them: a batch
//! with refused records is refused whole, each refused record is named in the
//! response's `record_errors` by its index in the batch, and `error_message` says why.
//!
//! - [`raw_produce`] sends raw ProduceRequests (kafka-protocol messages over
//!   runnel-client's `Connection`): keyless records on a compacted topic (uncompressed,
//!   gzip, more than three of them), a keyless record next to an out-of-range
//!   timestamp, a producer-set LogAppendTime, a corrupt batch, and Produce v7 (before
//!   record errors). The expectations are Kafka 4.4's: `kafka_answers_the_same` runs
//!   them against Apache Kafka (`RECORD_ERRORS_KAFKA=127.0.0.1:PORT` with a broker from
//!   `tests/kafka/kafka.sh start`).
//! - [`librdkafka_reports`]: what librdkafka's delivery reports say for such a batch.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{self as m, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use runnel_client::{Admin, Client, Connection, ConnectionConfig, NewTopic};
use runnel_protocol::api::{RequestBody, ResponseBody};
use runnel_protocol::compression::compress;
use runnel_protocol::record_batch::builder::{
    encode_batch, encode_records, simple_batch, ProducerFields, Record,
};
use runnel_protocol::record_batch::Compression;
use runnel_suite::TestBroker;

const INVALID_RECORD: i16 = 87;
const INVALID_TIMESTAMP: i16 = 32;
const CORRUPT_MESSAGE: i16 = 2;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Names unique per run, so the checks can run again against the same Kafka.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn create_topic(bootstrap: &str, prefix: &str, configs: &[(&str, &str)]) -> String {
    let name = unique(prefix);
    let client = Client::bootstrap(bootstrap).await.expect("client");
    Admin::new(client)
        .create_topics(&[NewTopic {
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..NewTopic::new(name.clone(), 1)
        }])
        .await
        .expect("create topic");
    name
}

fn produce_request(topic: &str, batch: Vec<u8>) -> m::ProduceRequest {
    m::ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![m::produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![
                m::produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.into())),
            ])])
}

/// Produce `batch` to partition 0 at `version`. A topic Kafka has only just created
/// answers UNKNOWN_TOPIC_OR_PARTITION / NOT_LEADER_OR_FOLLOWER for a moment: retried.
async fn produce(
    conn: &Connection,
    topic: &str,
    batch: &[u8],
    version: i16,
) -> m::produce_response::PartitionProduceResponse {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = RequestBody::Produce(produce_request(topic, batch.to_vec()));
        let resp = match conn.send_version(body, version).await.expect("Produce") {
            ResponseBody::Produce(r) => r,
            other => panic!("not a Produce response: {other:?}"),
        };
        let p = resp.responses[0].partition_responses[0].clone();
        if [3, 6].contains(&p.error_code) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        return p;
    }
}

/// The partition's log end offset (ListOffsets latest).
async fn log_end(conn: &Connection, topic: &str) -> i64 {
    let req = m::ListOffsetsRequest::default()
        .with_replica_id(m::BrokerId(-1))
        .with_topics(vec![m::list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![
                m::list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ])]);
    let r: m::ListOffsetsResponse = conn.call(req).await.expect("ListOffsets");
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets {topic}");
    p.offset
}

fn opt_str(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// `(batch index, message)` of each record error.
fn record_errors(p: &m::produce_response::PartitionProduceResponse) -> Vec<(i32, Option<String>)> {
    p.record_errors
        .iter()
        .map(|e| (e.batch_index, opt_str(&e.batch_index_error_message)))
        .collect()
}

/// `values.len()` records with keys `k<i>`, except at the indexes in `keyless`.
fn records<'a>(keys: &'a [String], values: &'a [String], keyless: &[usize]) -> Vec<Record<'a>> {
    (0..values.len())
        .map(|i| Record {
            timestamp_delta: i as i64,
            key: (!keyless.contains(&i)).then(|| keys[i].as_bytes()),
            value: Some(values[i].as_bytes()),
            headers: vec![],
        })
        .collect()
}

fn keys_values(n: usize) -> (Vec<String>, Vec<String>) {
    (
        (0..n).map(|i| format!("k{i}")).collect(),
        (0..n).map(|i| format!("v{i}")).collect(),
    )
}

/// Kafka's message for a keyless record on a compacted topic.
fn no_key(topic: &str) -> String {
    format!("Compacted topic cannot accept message without key in topic partition {topic}-0")
}

/// Kafka's `error_message` for INVALID_RECORD record errors (Java's `List.toString` of
/// the first three `RecordError`s).
fn invalid_record_message(total: usize, shown: &[(i32, &str)]) -> String {
    let shown: Vec<String> = shown
        .iter()
        .map(|(i, m)| format!("RecordError(batchIndex={i}, message='{m}')"))
        .collect();
    format!(
        "One or more records have been rejected due to {total} record errors in total, and \
         only showing the first three errors at most: [{}]",
        shown.join(", ")
    )
}

async fn raw_produce(bootstrap: &str) {
    let conn = Connection::connect(bootstrap, ConnectionConfig::default())
        .await
        .expect("connect");
    let compacted = create_topic(bootstrap, "re-compacted", &[("cleanup.policy", "compact")]).await;
    let (keys, values) = keys_values(5);
    let now = now_ms();

    // Records 1 and 3 of 5 have no key: both named, the batch refused whole.
    let batch = simple_batch(now, &records(&keys, &values, &[1, 3]));
    let p = produce(&conn, &compacted, &batch, 11).await;
    let msg = no_key(&compacted);
    assert_eq!(p.error_code, INVALID_RECORD, "{p:?}");
    assert_eq!(
        record_errors(&p),
        vec![(1, Some(msg.clone())), (3, Some(msg.clone()))]
    );
    assert_eq!(
        opt_str(&p.error_message),
        Some(invalid_record_message(2, &[(1, &msg), (3, &msg)]))
    );
    assert_eq!(p.base_offset, -1);
    // Kafka answers a RecordValidationException with the log start offset.
    assert_eq!(p.log_start_offset, 0);
    assert_eq!(
        log_end(&conn, &compacted).await,
        0,
        "a refused batch was written"
    );

    // Five keyless records: every one is named, the message shows the first three.
    let batch = simple_batch(now, &records(&keys, &values, &[0, 1, 2, 3, 4]));
    let p = produce(&conn, &compacted, &batch, 11).await;
    assert_eq!(p.error_code, INVALID_RECORD, "{p:?}");
    assert_eq!(
        record_errors(&p),
        (0..5).map(|i| (i, Some(msg.clone()))).collect::<Vec<_>>()
    );
    assert_eq!(
        opt_str(&p.error_message),
        Some(invalid_record_message(
            5,
            &[(0, &msg), (1, &msg), (2, &msg)]
        ))
    );

    // The same check inside a compressed batch.
    let section = encode_records(&records(&keys, &values, &[2]));
    let gz = compress(Compression::Gzip, &section).expect("gzip");
    let batch = encode_batch(
        0,
        Compression::Gzip.attribute_bits(),
        4,
        now,
        now + 4,
        ProducerFields::NONE,
        5,
        &gz,
    );
    let p = produce(&conn, &compacted, &batch, 11).await;
    assert_eq!(p.error_code, INVALID_RECORD, "{p:?}");
    assert_eq!(record_errors(&p), vec![(2, Some(msg.clone()))]);
    assert_eq!(
        opt_str(&p.error_message),
        Some(invalid_record_message(1, &[(2, &msg)]))
    );

    // A corrupt batch is CORRUPT_MESSAGE (the CRC is checked before the records), with
    // no record errors.
    let mut batch = simple_batch(now, &records(&keys, &values, &[1]));
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    let p = produce(&conn, &compacted, &batch, 11).await;
    assert_eq!(p.error_code, CORRUPT_MESSAGE, "{p:?}");
    assert!(p.record_errors.is_empty(), "{p:?}");

    // Produce v7 has neither record_errors nor error_message; the error is the same.
    let batch = simple_batch(now, &records(&keys, &values, &[1, 3]));
    let p = produce(&conn, &compacted, &batch, 7).await;
    assert_eq!(p.error_code, INVALID_RECORD, "{p:?}");
    assert!(
        p.record_errors.is_empty() && p.error_message.is_none(),
        "{p:?}"
    );

    assert_eq!(
        log_end(&conn, &compacted).await,
        0,
        "a refused batch was written"
    );
    let ok = simple_batch(now, &records(&keys, &values, &[]));
    let p = produce(&conn, &compacted, &ok, 11).await;
    assert_eq!((p.error_code, p.base_offset), (0, 0), "{p:?}");
    assert!(
        p.record_errors.is_empty() && p.error_message.is_none(),
        "{p:?}"
    );

    // A keyless record and records too old: INVALID_TIMESTAMP for the request once any
    // record's timestamp is refused, with every refused record named (a keyless one
    // for its key, its timestamp unchecked).
    let old = create_topic(
        bootstrap,
        "re-old",
        &[
            ("cleanup.policy", "compact"),
            ("message.timestamp.before.max.ms", "3600000"),
        ],
    )
    .await;
    let t_old = now_ms() - 7_200_000;
    let mut recs = records(&keys, &values, &[1]);
    recs.truncate(3);
    for r in &mut recs {
        r.timestamp_delta = 0;
    }
    // Record 2 is in the window.
    recs[2].timestamp_delta = 7_200_000;
    let batch = simple_batch(t_old, &recs);
    let before = now_ms();
    let p = produce(&conn, &old, &batch, 11).await;
    let after = now_ms();
    assert_eq!(p.error_code, INVALID_TIMESTAMP, "{p:?}");
    assert_eq!(
        opt_str(&p.error_message).as_deref(),
        Some("One or more records have been rejected due to invalid timestamp")
    );
    let errs = record_errors(&p);
    assert_eq!(errs.len(), 2, "{p:?}");
    assert_eq!(errs[1], (1, Some(no_key(&old))));
    let (index, ts_msg) = (errs[0].0, errs[0].1.clone().unwrap_or_default());
    assert_eq!(index, 0);
    // "... within [now - before.max.ms, now + after.max.ms]".
    let prefix = format!(
        "Timestamp {t_old} of message with offset 0 is out of range. The timestamp should \
         be within ["
    );
    let window = ts_msg
        .strip_prefix(&prefix)
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or_else(|| panic!("timestamp message: {ts_msg}"));
    let (lo, hi) = window.split_once(", ").expect("two bounds");
    let (lo, hi): (i64, i64) = (lo.parse().expect("lo"), hi.parse().expect("hi"));
    assert!(
        (before - 3_600_000..=after - 3_600_000).contains(&lo),
        "{ts_msg}"
    );
    // after.max.ms defaults to one hour (Kafka 4).
    assert_eq!(hi, lo + 2 * 3_600_000, "{ts_msg}");
    assert_eq!(p.log_start_offset, 0);
    assert_eq!(log_end(&conn, &old).await, 0, "a refused batch was written");

    // A producer may not set LogAppendTime (attribute bit 3): every record is refused,
    // whatever the topic's timestamp type. Its records' timestamps are the batch's max
    // timestamp.
    let lat = create_topic(
        bootstrap,
        "re-lat",
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let section = encode_records(&records(&keys, &values, &[1])[..2]);
    let batch = encode_batch(0, 0x08, 1, now, now + 7, ProducerFields::NONE, 2, &section);
    let p = produce(&conn, &lat, &batch, 11).await;
    assert_eq!(p.error_code, INVALID_TIMESTAMP, "{p:?}");
    let lat_msg = |offset: i64, key: usize| {
        format!(
            "Invalid timestamp type in message DefaultRecord(offset={offset}, timestamp={}, \
             key={key} bytes, value=2 bytes). Producer should not set timestamp type to \
             LogAppendTime.",
            now + 7
        )
    };
    assert_eq!(
        record_errors(&p),
        vec![(0, Some(lat_msg(0, 2))), (1, Some(lat_msg(1, 0)))]
    );
    assert_eq!(log_end(&conn, &lat).await, 0, "a refused batch was written");
}

#[test]
fn raw_produce_names_each_refused_record() {
    let broker = TestBroker::start();
    block_on(raw_produce(&broker.bootstrap()));
}

/// The expectations above, checked against Apache Kafka.
#[test]
#[ignore = "needs RECORD_ERRORS_KAFKA=host:port of an Apache Kafka broker"]
fn kafka_answers_the_same() {
    let bootstrap = std::env::var("RECORD_ERRORS_KAFKA").expect("RECORD_ERRORS_KAFKA");
    block_on(raw_produce(&bootstrap));
    librdkafka_reports(&bootstrap);
}

/// Collects each message's delivery result, by the message's index.
#[derive(Default)]
struct Reports(std::sync::Mutex<Vec<(usize, Result<i64, KafkaError>)>>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<usize>;
    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<usize>) {
        let r = result
            .as_ref()
            .map(rdkafka::Message::offset)
            .map_err(|(e, _)| e.clone());
        if let Ok(mut v) = self.0.lock() {
            v.push((*index, r));
        }
    }
}

/// Produce `keys` (None: no key) to partition 0 of `topic` in one batch; the delivery
/// result (offset or error) of each, in order.
fn deliver(bootstrap: &str, topic: &str, keys: &[Option<&str>]) -> Vec<Result<i64, KafkaError>> {
    let p: BaseProducer<Reports> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        // One batch: everything is queued long before linger.ms runs out.
        .set("linger.ms", "1000")
        .set("message.timeout.ms", "30000")
        .create_with_context(Reports::default())
        .expect("producer");
    for (i, k) in keys.iter().enumerate() {
        let value = format!("v{i}");
        let mut rec = BaseRecord::with_opaque_to(topic, Box::new(i))
            .partition(0)
            .payload(&value);
        if let Some(k) = k {
            rec = rec.key(*k);
        }
        p.send(rec).map_err(|(e, _)| e).expect("enqueue");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let mut got = p.context().0.lock().map(|v| v.clone()).unwrap_or_default();
    got.sort_by_key(|(i, _)| *i);
    assert_eq!(got.len(), keys.len(), "delivery reports: {got:?}");
    got.into_iter().map(|(_, r)| r).collect()
}

fn code(r: &Result<i64, KafkaError>) -> Option<RDKafkaErrorCode> {
    r.as_ref().err().and_then(|e| e.rdkafka_error_code())
}

/// librdkafka (2.12) fails every message of the refused batch. With two or more record
/// errors it tells the messages apart: each indexed one gets INVALID_RECORD (and the
/// record error's message as its error string), the others _INVALID_DIFFERENT_RECORD
/// ("part of a batch which had one more more invalid records"). With a single record
/// error it overwrites every message's error with the partition's (its
/// rd_kafka_dr_msgq0 forces the batch error unless there is more than one record
/// error), so all of them report INVALID_RECORD.
fn librdkafka_reports(bootstrap: &str) {
    let topic = block_on(create_topic(
        bootstrap,
        "re-rdkafka",
        &[("cleanup.policy", "compact")],
    ));
    // Let the topic settle before the batch (Kafka elects a leader first).
    let warm = deliver(bootstrap, &topic, &[Some("warm")]);
    assert_eq!(warm[0].as_ref().ok(), Some(&0), "{warm:?}");

    use RDKafkaErrorCode::{InvalidDifferentRecord, InvalidRecord};
    // One keyless message among keyed ones: one record error.
    let got = deliver(
        bootstrap,
        &topic,
        &[Some("a"), None, Some("b"), Some("c"), Some("d")],
    );
    let codes: Vec<_> = got.iter().map(code).collect();
    assert_eq!(codes, vec![Some(InvalidRecord); 5], "{got:?}");

    // Two: the keyless ones are told apart from the rest.
    let got = deliver(bootstrap, &topic, &[Some("a"), None, Some("b"), None]);
    let codes: Vec<_> = got.iter().map(code).collect();
    assert_eq!(
        codes,
        vec![
            Some(InvalidDifferentRecord),
            Some(InvalidRecord),
            Some(InvalidDifferentRecord),
            Some(InvalidRecord),
        ],
        "{got:?}"
    );

    // Nothing of the refused batches was written: the next record follows "warm".
    let got = deliver(bootstrap, &topic, &[Some("after")]);
    assert_eq!(got[0].as_ref().ok(), Some(&1), "{got:?}");
}

#[test]
fn librdkafka_fails_the_batch_and_names_the_keyless_messages() {
    let broker = TestBroker::start();
    librdkafka_reports(&broker.bootstrap());
}
