//! Topic administration and offset APIs through librdkafka's admin client and consumer:
//! CreateTopics (configs, validate-only, bad input), DescribeConfigs (values, sources,
//! defaults), AlterConfigs, IncrementalAlterConfigs, CreatePartitions, DeleteRecords,
//! ListOffsets (earliest, latest, by timestamp), DeleteTopics.

use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use runnel_suite::TestBroker;

const TIMEOUT: Duration = Duration::from_secs(30);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn opts() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(TIMEOUT))
        .request_timeout(Some(TIMEOUT))
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "admin-suite-assign-only")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// (value, source as librdkafka names it, is_default) of `name` in the topic's DescribeConfigs result.
fn topic_config(
    a: &AdminClient<DefaultClientContext>,
    topic: &str,
    name: &str,
) -> (Option<String>, String, bool) {
    let res = block_on(a.describe_configs([&ResourceSpecifier::Topic(topic)], &opts()))
        .expect("DescribeConfigs");
    let resource = res
        .into_iter()
        .next()
        .expect("one result")
        .expect("no resource error");
    let entry = resource
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from DescribeConfigs of {topic}"));
    (
        entry.value.clone(),
        format!("{:?}", entry.source),
        entry.is_default,
    )
}

#[test]
fn create_describe_alter_and_delete_topics() {
    let broker = TestBroker::start();
    let a = admin(&broker.bootstrap());

    // validate_only creates nothing.
    let t = NewTopic::new("adm-validate", 2, TopicReplication::Fixed(1));
    let r = block_on(a.create_topics([&t], &opts().validate_only(true))).expect("CreateTopics");
    assert!(r[0].is_ok(), "validate-only create: {r:?}");
    // (Metadata for the name itself could auto-create it, so list all topics.)
    let md = a.inner().fetch_metadata(None, TIMEOUT).expect("metadata");
    assert!(
        md.topics().iter().all(|t| t.name() != "adm-validate"),
        "validate-only must not create the topic"
    );

    // Bad input gets Kafka's codes.
    let bad = [
        (
            NewTopic::new("bad/name", 1, TopicReplication::Fixed(1)),
            RDKafkaErrorCode::InvalidTopic,
        ),
        (
            NewTopic::new("adm-rf3", 1, TopicReplication::Fixed(3)),
            RDKafkaErrorCode::InvalidReplicationFactor,
        ),
        (
            NewTopic::new("adm-zero", 0, TopicReplication::Fixed(1)),
            RDKafkaErrorCode::InvalidPartitions,
        ),
        (
            NewTopic::new("adm-badcfg", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon"),
            RDKafkaErrorCode::InvalidConfig,
        ),
        (
            NewTopic::new("adm-unknowncfg", 1, TopicReplication::Fixed(1))
                .set("no.such.config", "1"),
            RDKafkaErrorCode::InvalidConfig,
        ),
    ];
    for (topic, want) in &bad {
        let r = block_on(a.create_topics([topic], &opts())).expect("CreateTopics");
        match &r[0] {
            Err((_, code)) => assert_eq!(code, want, "creating {}", topic.name),
            Ok(t) => panic!("{t} should have been refused with {want:?}"),
        }
    }

    let topic = NewTopic::new("adm-orders", 3, TopicReplication::Fixed(1))
        .set("retention.ms", "3600000")
        .set("cleanup.policy", "delete");
    let r = block_on(a.create_topics([&topic], &opts())).expect("CreateTopics");
    assert!(r[0].is_ok(), "{r:?}");
    let again = block_on(a.create_topics([&topic], &opts())).expect("CreateTopics");
    assert!(
        matches!(&again[0], Err((_, RDKafkaErrorCode::TopicAlreadyExists))),
        "{again:?}"
    );

    // DescribeConfigs: the override is a topic config, the rest are defaults.
    assert_eq!(
        topic_config(&a, "adm-orders", "retention.ms"),
        (Some("3600000".into()), "DynamicTopic".to_string(), false)
    );
    let (seg, source, is_default) = topic_config(&a, "adm-orders", "segment.bytes");
    assert_eq!(seg.as_deref(), Some("1073741824"));
    assert_eq!(source, "Default");
    assert!(is_default);
    let (v, source, _) = topic_config(&a, "adm-orders", "write.caching");
    assert_eq!(
        (v.as_deref(), source.as_str()),
        (Some("false"), "Default"),
        "Runnel's durability default"
    );

    // librdkafka's alter_configs is the legacy AlterConfigs API, which replaces every
    // override of the resource.
    let alter =
        AlterConfig::new(ResourceSpecifier::Topic("adm-orders")).set("segment.bytes", "1048576");
    let r = block_on(a.alter_configs([&alter], &opts())).expect("AlterConfigs");
    assert!(r[0].is_ok(), "{r:?}");
    assert_eq!(
        topic_config(&a, "adm-orders", "segment.bytes").0.as_deref(),
        Some("1048576")
    );
    let (_, source, is_default) = topic_config(&a, "adm-orders", "retention.ms");
    assert_eq!(
        (source.as_str(), is_default),
        ("Default", true),
        "legacy AlterConfigs replaces all overrides"
    );
    // An invalid value changes nothing. (rust-rdkafka 0.39 does not surface the
    // per-resource error of legacy AlterConfigs; confluent-kafka, on the same
    // librdkafka, reports INVALID_CONFIG, and the compat suite checks that.)
    let bad_alter =
        AlterConfig::new(ResourceSpecifier::Topic("adm-orders")).set("segment.bytes", "-5");
    block_on(a.alter_configs([&bad_alter], &opts())).expect("AlterConfigs");
    assert_eq!(
        topic_config(&a, "adm-orders", "segment.bytes").0.as_deref(),
        Some("1048576")
    );

    // CreatePartitions: grow only.
    let r = block_on(a.create_partitions([&NewPartitions::new("adm-orders", 5)], &opts()))
        .expect("CreatePartitions");
    assert!(r[0].is_ok(), "{r:?}");
    let md = a
        .inner()
        .fetch_metadata(Some("adm-orders"), TIMEOUT)
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 5);
    let r = block_on(a.create_partitions([&NewPartitions::new("adm-orders", 2)], &opts()))
        .expect("CreatePartitions");
    assert!(
        matches!(&r[0], Err((_, RDKafkaErrorCode::InvalidPartitions))),
        "{r:?}"
    );

    // DeleteTopics.
    let r = block_on(a.delete_topics(&["adm-orders"], &opts())).expect("DeleteTopics");
    assert!(r[0].is_ok(), "{r:?}");
    let r = block_on(a.delete_topics(&["adm-orders"], &opts())).expect("DeleteTopics");
    assert!(
        matches!(&r[0], Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))),
        "{r:?}"
    );
    assert!(
        !broker.data_dir().join("adm-orders-0").exists(),
        "partition directories removed"
    );
}

#[test]
fn list_offsets_by_time_and_delete_records() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let a = admin(&bootstrap);
    let t = NewTopic::new("adm-times", 1, TopicReplication::Fixed(1));
    assert!(block_on(a.create_topics([&t], &opts())).expect("CreateTopics")[0].is_ok());

    // 100 records at timestamps 1_000_000 + 10 * i, in batches of varying size.
    let p: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "2")
        .set("batch.num.messages", "7")
        .create()
        .expect("producer");
    let base = 1_700_000_000_000i64;
    for i in 0..100i64 {
        let value = format!("v{i}");
        p.send(
            BaseRecord::<(), _>::to("adm-times")
                .partition(0)
                .payload(&value)
                .timestamp(base + 10 * i),
        )
        .expect("enqueue");
    }
    p.flush(TIMEOUT).expect("flush");

    let c = consumer(&bootstrap);
    assert_eq!(
        c.fetch_watermarks("adm-times", 0, TIMEOUT)
            .expect("watermarks"),
        (0, 100)
    );
    for (ts, want) in [
        (base, 0),
        (base + 1, 1),
        (base + 10 * 57, 57),
        (base + 10 * 57 - 3, 57),
        (base + 990, 99),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("adm-times", 0, Offset::Offset(ts))
            .expect("tpl");
        let found = c
            .offsets_for_times(tpl, TIMEOUT)
            .expect("ListOffsets by time");
        let got = found
            .find_partition("adm-times", 0)
            .expect("partition")
            .offset();
        assert_eq!(
            got,
            Offset::Offset(want),
            "first offset with timestamp >= {ts}"
        );
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("adm-times", 0, Offset::Offset(base + 5000))
        .expect("tpl");
    let found = c
        .offsets_for_times(tpl, TIMEOUT)
        .expect("ListOffsets by time");
    assert_eq!(
        found.find_partition("adm-times", 0).unwrap().offset(),
        Offset::End,
        "no record that late"
    );

    // DeleteRecords moves the log start offset; reads below it are out of range.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("adm-times", 0, Offset::Offset(40))
        .expect("tpl");
    let r = block_on(a.delete_records(&tpl, &opts())).expect("DeleteRecords");
    assert_eq!(
        r.find_partition("adm-times", 0).unwrap().offset(),
        Offset::Offset(40)
    );
    assert_eq!(
        c.fetch_watermarks("adm-times", 0, TIMEOUT)
            .expect("watermarks"),
        (40, 100)
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("adm-times", 0, Offset::Offset(200))
        .expect("tpl");
    let r = block_on(a.delete_records(&tpl, &opts())).expect("DeleteRecords");
    assert!(
        r.find_partition("adm-times", 0).unwrap().error().is_err(),
        "beyond the high watermark is refused"
    );

    // The log start offset survives a restart.
    let mut broker = broker;
    broker.restart();
    let c = consumer(&broker.bootstrap());
    assert_eq!(
        c.fetch_watermarks("adm-times", 0, TIMEOUT)
            .expect("watermarks"),
        (40, 100)
    );
}
