//! Storage faults injected into the real broker through `RUNNEL_FAULTS` (see
//! `runnel_storage::fault`): the variable reaches the child process and its plan hits
//! only the partition it names.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use runnel_suite::{BrokerOptions, TestBroker};

async fn create_topics(bootstrap: &str, names: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &opts)
        .await
        .expect("CreateTopics");
    for r in results {
        r.unwrap_or_else(|(t, code)| panic!("CreateTopics({t}) returned {code:?}"));
    }
}

/// What the broker answers about `faulty-0` once its log is out of service, next to the
/// healthy `healthy-0`: Metadata shows it without a leader and its replica offline, as
/// Kafka shows a partition of a failed log directory; reads get KAFKA_STORAGE_ERROR.
async fn offline_partition_answers(broker: &TestBroker) {
    use kafka_protocol::messages::{self as m, BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use runnel_client::{Connection, ConnectionConfig};
    use runnel_protocol::api::ResponseBody;
    const LEADER_NOT_AVAILABLE: i16 = 5;
    const KAFKA_STORAGE_ERROR: i16 = 56;
    let name = |s: &str| TopicName(StrBytes::from_string(s.to_string()));
    let conn = Connection::connect(&broker.bootstrap(), ConnectionConfig::default())
        .await
        .expect("connect");
    let req = m::MetadataRequest::default().with_topics(Some(
        ["faulty", "healthy"]
            .iter()
            .map(|t| m::metadata_request::MetadataRequestTopic::default().with_name(Some(name(t))))
            .collect(),
    ));
    let ResponseBody::Metadata(md) = conn.send_version(req.into(), 12).await.expect("Metadata")
    else {
        panic!("not a Metadata response")
    };
    let partition = |topic: &str| {
        let t = md
            .topics
            .iter()
            .find(|t| t.name.as_deref().map(|n| n.as_str()) == Some(topic))
            .unwrap_or_else(|| panic!("{topic} missing from {md:?}"));
        t.partitions[0].clone()
    };
    let node = md.brokers[0].node_id;
    let faulty = partition("faulty");
    assert_eq!(
        (
            faulty.error_code,
            faulty.leader_id,
            faulty.offline_replicas.clone()
        ),
        (LEADER_NOT_AVAILABLE, BrokerId(-1), vec![node]),
        "faulty-0 in Metadata: {faulty:?}"
    );
    let healthy = partition("healthy");
    assert_eq!(
        (
            healthy.error_code,
            healthy.leader_id,
            healthy.offline_replicas.len()
        ),
        (0, node, 0),
        "healthy-0 in Metadata: {healthy:?}"
    );

    let list = |topic: &str| {
        m::ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![m::list_offsets_request::ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    m::list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ])])
    };
    for (topic, want) in [("faulty", KAFKA_STORAGE_ERROR), ("healthy", 0)] {
        let ResponseBody::ListOffsets(r) = conn
            .send_version(list(topic).into(), 7)
            .await
            .expect("ListOffsets")
        else {
            panic!("not a ListOffsets response")
        };
        assert_eq!(
            r.topics[0].partitions[0].error_code, want,
            "ListOffsets {topic}-0: {r:?}"
        );
    }

    let fetch = m::FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(
            ["faulty", "healthy"]
                .iter()
                .map(|t| {
                    m::fetch_request::FetchTopic::default()
                        .with_topic(name(t))
                        .with_partitions(vec![m::fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20)])
                })
                .collect(),
        );
    let ResponseBody::Fetch(r) = conn.send_version(fetch.into(), 12).await.expect("Fetch") else {
        panic!("not a Fetch response")
    };
    let code = |topic: &str| {
        r.responses
            .iter()
            .find(|t| t.topic.as_str() == topic)
            .map(|t| t.partitions[0].error_code)
    };
    assert_eq!(
        (code("faulty"), code("healthy")),
        (Some(KAFKA_STORAGE_ERROR), Some(0)),
        "Fetch: {r:?}"
    );
}

async fn produce(producer: &FutureProducer, topic: &str) -> Result<(i32, i64), KafkaError> {
    let record = FutureRecord::to(topic)
        .partition(0)
        .key("k")
        .payload("durable?");
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map(|d| (d.partition, d.offset))
        .map_err(|(e, _)| e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_fails_acks_all_produce_to_its_partition_only() {
    let mut broker = TestBroker::start_with(BrokerOptions {
        env: vec![(
            "RUNNEL_FAULTS".to_string(),
            // The first fsync in faulty-0 is its leader epoch checkpoint, written when the
            // topic is created; the second is the first produce's.
            "fsync:fail:nth=2:path=faulty-0".to_string(),
        )],
        ..BrokerOptions::default()
    });
    assert!(
        broker.stderr_log().contains("fault injection active"),
        "the broker did not announce its fault plan:\n{}",
        broker.diagnostics()
    );
    let bootstrap = broker.bootstrap();
    create_topics(&bootstrap, &["faulty", "healthy"]).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        // Report the broker's answer instead of retrying it until the timeout.
        .set("retries", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");

    // The first fails its fsync.
    match produce(&producer, "faulty").await {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError)) => {}
        other => panic!(
            "produce to faulty-0: {other:?}, wanted KAFKA_STORAGE_ERROR\n{}",
            broker.diagnostics()
        ),
    }
    // The partition is offline now: no fsync is retried into an acknowledgement. The
    // client learns from Metadata that it has no leader and keeps the record until it
    // times out, or sends it and gets KAFKA_STORAGE_ERROR.
    match produce(&producer, "faulty").await {
        Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::KafkaStorageError | RDKafkaErrorCode::MessageTimedOut,
        )) => {}
        other => panic!(
            "the second produce to faulty-0: {other:?}, wanted no acknowledgement\n{}",
            broker.diagnostics()
        ),
    }
    offline_partition_answers(&broker).await;
    let (partition, offset) = produce(&producer, "healthy")
        .await
        .unwrap_or_else(|e| panic!("produce to healthy-0: {e}\n{}", broker.diagnostics()));
    assert_eq!((partition, offset), (0, 0));
    let log = broker.stderr_log();
    assert!(
        log.contains("fault injection") && log.contains("faulty-0"),
        "no injected fault in the broker log:\n{log}"
    );
    drop(producer);

    // A poisoned log refuses a clean close, so the restart (without the fault) recovers
    // it: the partition takes writes again and what was acknowledged is all there.
    broker.stop();
    broker.set_env(Vec::new());
    broker.restart();
    let bootstrap = broker.bootstrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer");
    let (_, faulty_offset) = produce(&producer, "faulty").await.unwrap_or_else(|e| {
        panic!(
            "produce to faulty-0 after the restart: {e}\n{}",
            broker.diagnostics()
        )
    });
    let (_, healthy_offset) = produce(&producer, "healthy")
        .await
        .expect("produce to healthy-0 after the restart");
    assert_eq!(healthy_offset, 1, "healthy-0 kept its acknowledged record");
    let read = |topic: &'static str, upto: i64| {
        let bootstrap = bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            use rdkafka::message::Message;
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", "after-restart")
                .set("enable.auto.commit", "false")
                .create()
                .expect("consumer");
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
                .expect("assign");
            c.assign(&tpl).expect("assign");
            let mut offsets = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while offsets.last().is_none_or(|&o| o < upto) && std::time::Instant::now() < deadline {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                    assert_eq!(m.payload(), Some(&b"durable?"[..]));
                    offsets.push(m.offset());
                }
            }
            offsets
        })
    };
    assert_eq!(
        read("healthy", 1).await.expect("read healthy-0"),
        vec![0, 1]
    );
    let faulty = read("faulty", faulty_offset).await.expect("read faulty-0");
    assert_eq!(
        faulty.last(),
        Some(&faulty_offset),
        "the record acknowledged after the restart is readable: {faulty:?}"
    );
}

/// One partition whose fsyncs hang (a dying disk) must not stall the broker: its
/// appends block at a segment roll, off the runtime's workers, while Metadata, produce
/// and fetch on another partition go on. Once released, the held writes complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_fsync_on_one_partition_does_not_stall_metadata_or_other_partitions() {
    use rdkafka::admin::NewTopic;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::TopicPartitionList;

    let release = tempfile::tempdir().expect("tempdir");
    let release_file = release.path().join("release");
    let broker = TestBroker::start_with(BrokerOptions {
        env: vec![(
            "RUNNEL_FAULTS".to_string(),
            format!(
                // From the second fsync in slow-0 on: the first is its leader epoch
                // checkpoint, written when the topic is created.
                "fsync:hold:nth=2:path=slow-0:times=all:release={}",
                release_file.display()
            ),
        )],
        ..BrokerOptions::default()
    });
    let bootstrap = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let topics = [
        // Tiny segments: every few batches roll, and a roll fsyncs the sealed segment.
        NewTopic::new("slow", 1, TopicReplication::Fixed(1)).set("segment.bytes", "1024"),
        NewTopic::new("fast", 1, TopicReplication::Fixed(1)),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in admin
        .create_topics(&topics, &opts)
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, code)| panic!("CreateTopics({t}) returned {code:?}"));
    }

    // More producers (connections) than the broker has runtime workers, each appending
    // to the held partition with acks=all, so each waits for the held fsync.
    let mut held_sends = Vec::new();
    for i in 0..4 {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", "120000")
            .create()
            .expect("producer");
        held_sends.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for n in 0..20 {
                let value = format!("{i}-{n}-{}", "x".repeat(200));
                let record = FutureRecord::to("slow")
                    .partition(0)
                    .key("k")
                    .payload(&value);
                offsets.push(
                    producer
                        .send(record, Duration::from_secs(120))
                        .await
                        .map(|d| d.offset)
                        .map_err(|(e, _)| e.to_string()),
                );
            }
            offsets
        }));
    }
    // Let the appends pass a few rolls and wait for the held fsync.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        held_sends.iter().any(|h| !h.is_finished()),
        "no append to slow-0 is held: the fault did not engage\n{}",
        broker.diagnostics()
    );

    // Meanwhile the rest of the broker answers.
    let quick = Duration::from_secs(10);
    let bootstrap2 = bootstrap.clone();
    let metadata = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap2)
            .create()
            .expect("consumer");
        c.fetch_metadata(None, quick).map(|m| m.topics().len())
    });
    let topics_seen = tokio::time::timeout(quick, metadata)
        .await
        .expect("Metadata stalled behind the held partition")
        .expect("metadata task")
        .expect("Metadata");
    assert!(topics_seen >= 2, "Metadata listed {topics_seen} topics");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    let (_, offset) = tokio::time::timeout(quick, produce(&producer, "fast"))
        .await
        .expect("a produce to fast-0 stalled behind the held partition")
        .expect("produce to fast-0");
    assert_eq!(offset, 0);
    // The held partition itself still takes appends: a roll's fsyncs run in the flush,
    // without the log lock.
    let producer1: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "1")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    tokio::time::timeout(quick, produce(&producer1, "slow"))
        .await
        .expect("an acks=1 produce to slow-0 stalled behind its held fsync")
        .expect("produce to slow-0");

    let bootstrap3 = bootstrap.clone();
    let fetched = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap3)
            .set("group.id", "held-fsync-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("fast", 0, rdkafka::Offset::Beginning)
            .expect("assign");
        c.assign(&tpl).expect("assign");
        let deadline = std::time::Instant::now() + quick;
        while std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                return Some(m.payload().map(|p| p.to_vec()));
            }
        }
        None
    });
    let record = fetched.await.expect("fetch task");
    assert_eq!(
        record,
        Some(Some(b"durable?".to_vec())),
        "no fetch from fast-0 while slow-0 was held\n{}",
        broker.diagnostics()
    );
    assert!(
        held_sends.iter().any(|h| !h.is_finished()),
        "the held appends finished before the release"
    );

    // Released, every held append completes and is acknowledged.
    std::fs::write(&release_file, b"go").expect("release");
    let mut acknowledged = 0;
    for h in held_sends {
        for r in h.await.expect("producer task") {
            r.unwrap_or_else(|e| panic!("a held send failed after the release: {e}"));
            acknowledged += 1;
        }
    }
    assert_eq!(acknowledged, 80);
}
