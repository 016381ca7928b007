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
    let broker = TestBroker::start_with(BrokerOptions {
        env: vec![(
            "RUNNEL_FAULTS".to_string(),
            "fsync:fail:path=faulty-0".to_string(),
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

    for attempt in 0..2 {
        // The first fails its fsync; the second finds the log poisoned: no fsync is
        // retried into an acknowledgement.
        match produce(&producer, "faulty").await {
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError)) => {}
            other => panic!(
                "produce {attempt} to faulty-0: {other:?}, wanted KAFKA_STORAGE_ERROR\n{}",
                broker.diagnostics()
            ),
        }
    }
    let (partition, offset) = produce(&producer, "healthy")
        .await
        .unwrap_or_else(|e| panic!("produce to healthy-0: {e}\n{}", broker.diagnostics()));
    assert_eq!((partition, offset), (0, 0));
    let log = broker.stderr_log();
    assert!(
        log.contains("fault injection") && log.contains("faulty-0"),
        "no injected fault in the broker log:\n{log}"
    );
}
