//! The client against the real broker binary.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use runnel_client::admin::{AlterConfigOp, ConfigResource, NewTopic, OffsetSpec};
use runnel_client::partitioner::partition_for_key;
use runnel_client::{
    Acks, Admin, Client, Compression, Connection, ConnectionConfig, Consumer, ConsumerConfig,
    ConsumerRecord, Error, OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use runnel_protocol::api::{ApiKey, StrBytes};
use support::Broker;

const TOPIC_ALREADY_EXISTS: i16 = 36;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

async fn setup() -> (Broker, Client, Admin) {
    let broker = Broker::start();
    let client = Client::bootstrap(&broker.addr).await.expect("connect");
    let admin = Admin::new(client.clone());
    (broker, client, admin)
}

async fn consume_all(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumed only {} of {n}",
            out.len()
        );
        out.extend(
            consumer
                .poll(Duration::from_millis(500))
                .await
                .expect("poll"),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_negotiates_pipelines_and_bounds_responses() {
    let broker = Broker::start();
    let conn = Arc::new(
        Connection::connect(&broker.addr, ConnectionConfig::default())
            .await
            .unwrap(),
    );
    let produce = conn.version(ApiKey::Produce).expect("produce negotiated");
    assert!((3..=12).contains(&produce), "{produce}");
    assert_eq!(
        conn.version(ApiKey::Fetch),
        Some(12),
        "capped at what the client fills in"
    );
    // 64 pipelined requests on one connection, answered in order.
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let r: kafka_protocol::messages::MetadataResponse = conn
                .call(kafka_protocol::messages::MetadataRequest::default().with_topics(None))
                .await
                .unwrap();
            r.brokers.len()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 1);
    }
    // A response larger than the cap closes the connection with an error, no panic.
    let tiny = ConnectionConfig {
        max_response_bytes: 16,
        ..ConnectionConfig::default()
    };
    let err = Connection::connect(&broker.addr, tiny).await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
    // Timeout: nothing listens on the accepted socket.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let _hold = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let slow = ConnectionConfig {
        request_timeout: Duration::from_millis(200),
        ..ConnectionConfig::default()
    };
    let err = Connection::connect(&addr, slow).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_topic_lifecycle_and_configs() {
    let (_broker, client, admin) = setup().await;
    admin
        .create_topics(&[NewTopic::new("orders", 3).config("retention.ms", "3600000")])
        .await
        .unwrap();
    let err = admin.create_topic("orders", 1).await.unwrap_err();
    assert_eq!(err.code(), Some(TOPIC_ALREADY_EXISTS), "{err}");
    assert!(admin
        .list_topics(false)
        .await
        .unwrap()
        .contains(&"orders".to_string()));

    let desc = admin.describe_topics(&["orders"]).await.unwrap();
    assert_eq!(desc[0].partitions.len(), 3);
    assert!(desc[0].partitions.iter().all(|p| p.leader >= 0));
    assert!(!client.brokers().is_empty());

    let resource = ConfigResource::Topic("orders".into());
    let configs = admin.describe_configs(&resource).await.unwrap();
    let get = |cs: &[runnel_client::ConfigEntry], name: &str| {
        cs.iter()
            .find(|c| c.name == name)
            .and_then(|c| c.value.clone())
    };
    assert_eq!(get(&configs, "retention.ms").as_deref(), Some("3600000"));
    admin
        .incremental_alter_configs(&resource, &[AlterConfigOp::set("retention.ms", "7200000")])
        .await
        .unwrap();
    let configs = admin.describe_configs(&resource).await.unwrap();
    assert_eq!(get(&configs, "retention.ms").as_deref(), Some("7200000"));
    admin
        .incremental_alter_configs(&resource, &[AlterConfigOp::delete("retention.ms")])
        .await
        .unwrap();
    let configs = admin.describe_configs(&resource).await.unwrap();
    assert_ne!(get(&configs, "retention.ms").as_deref(), Some("7200000"));

    admin.create_partitions("orders", 5).await.unwrap();
    let desc = admin.describe_topics(&["orders"]).await.unwrap();
    assert_eq!(desc[0].partitions.len(), 5);

    admin.delete_topics(&["orders"]).await.unwrap();
    assert!(!admin
        .list_topics(false)
        .await
        .unwrap()
        .contains(&"orders".to_string()));
    let err = admin.describe_topics(&["orders"]).await.unwrap_err();
    assert_eq!(err.code(), Some(UNKNOWN_TOPIC_OR_PARTITION), "{err}");
}

/// The header of the first batch of a partition, fetched raw.
async fn first_batch(
    client: &Client,
    topic: &str,
    partition: i32,
) -> runnel_protocol::record_batch::BatchHeader {
    use kafka_protocol::messages as m;
    let conn = client.leader_connection(topic, partition).await.unwrap();
    let request = m::FetchRequest::default()
        .with_replica_id(m::BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![m::fetch_request::FetchTopic::default()
            .with_topic(m::TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![m::fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: m::FetchResponse = conn.call(request).await.unwrap();
    let records = response.responses[0].partitions[0].records.clone().unwrap();
    runnel_protocol::record_batch::BatchHeader::parse(&records).unwrap()
}

fn value_for(i: usize) -> Vec<u8> {
    // Compressible but not trivial, of varying length.
    let len = 20 + (i * 7919) % 200;
    (0..len)
        .map(|j| ((i * 31 + j * (j % 5)) % 251) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_every_codec_idempotent_acks_all() {
    let (_broker, client, admin) = setup().await;
    const N: usize = 10_000;
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = format!("codec-{}", runnel_protocol::compression::codec_name(codec));
        admin.create_topic(&topic, 3).await.unwrap();
        let producer = Producer::new(
            client.clone(),
            ProducerConfig {
                acks: Acks::All,
                idempotence: true,
                compression: codec,
                linger: Duration::from_millis(5),
                ..ProducerConfig::default()
            },
        )
        .unwrap();
        let mut deliveries = Vec::with_capacity(N);
        for i in 0..N {
            let key = format!("key-{i}");
            let value = value_for(i);
            let mut record = ProducerRecord::new(&topic).key(key.clone()).value(value);
            if i % 3 == 0 {
                record = record
                    .header("i", Some(i.to_string().into_bytes()))
                    .header("null", None);
            }
            deliveries.push(producer.send_record(record).await.unwrap());
        }
        producer.flush().await.unwrap();
        let mut expected: BTreeMap<(i32, i64), usize> = BTreeMap::new();
        for (i, d) in deliveries.into_iter().enumerate() {
            let (partition, offset) = d.await.unwrap();
            assert_eq!(
                partition,
                partition_for_key(format!("key-{i}").as_bytes(), 3)
            );
            assert!(
                expected.insert((partition, offset), i).is_none(),
                "offset reused"
            );
        }
        // Per partition, offsets are 0..n in send order.
        for p in 0..3 {
            let sent: Vec<usize> = expected
                .range((p, 0)..(p, i64::MAX))
                .map(|(_, i)| *i)
                .collect();
            assert!(
                sent.windows(2).all(|w| w[0] < w[1]),
                "partition {p} out of order"
            );
            let offsets: Vec<i64> = expected
                .range((p, 0)..(p, i64::MAX))
                .map(|((_, o), _)| *o)
                .collect();
            assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
        }
        producer.close().await.unwrap();
        // The stored batches carry the producer id, sequences and the codec.
        let first = first_batch(&client, &topic, 0).await;
        assert!(first.producer_id >= 0, "{codec:?}: not idempotent");
        assert_eq!(first.base_sequence, 0);
        assert_eq!(first.compression(), Some(codec));

        let mut consumer = Consumer::new(
            client.clone(),
            ConsumerConfig {
                auto_offset_reset: OffsetReset::Earliest,
                ..ConsumerConfig::default()
            },
        );
        consumer.assign_topic(&topic).await.unwrap();
        let records = consume_all(&mut consumer, N).await;
        assert_eq!(records.len(), N, "{codec:?}");
        for r in &records {
            let i = expected[&(r.partition, r.offset)];
            assert_eq!(r.key.as_deref(), Some(format!("key-{i}").as_bytes()));
            assert_eq!(
                r.value.as_deref(),
                Some(&value_for(i)[..]),
                "{codec:?} record {i}"
            );
            if i % 3 == 0 {
                assert_eq!(
                    r.headers,
                    vec![
                        ("i".to_string(), Some(i.to_string().into_bytes())),
                        ("null".to_string(), None)
                    ]
                );
            } else {
                assert!(r.headers.is_empty());
            }
        }
        // Nothing more.
        assert!(consumer
            .poll(Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_and_one_and_keyless_sticky() {
    let (_broker, client, admin) = setup().await;
    admin.create_topic("plain", 2).await.unwrap();
    for acks in [Acks::Leader, Acks::None] {
        let producer = Producer::new(
            client.clone(),
            ProducerConfig {
                acks,
                idempotence: false,
                batch_size: 1024,
                ..ProducerConfig::default()
            },
        )
        .unwrap();
        let mut ds = Vec::new();
        for i in 0..500 {
            ds.push(
                producer
                    .send("plain", None, Some(format!("v{i}").as_bytes()), &[])
                    .await
                    .unwrap(),
            );
        }
        producer.flush().await.unwrap();
        let mut partitions = std::collections::BTreeSet::new();
        for d in ds {
            let (p, offset) = d.await.unwrap();
            partitions.insert(p);
            if acks == Acks::None {
                assert_eq!(offset, -1);
            } else {
                assert!(offset >= 0);
            }
        }
        assert_eq!(
            partitions.len(),
            2,
            "sticky partitioner moves on after a batch"
        );
    }
    let mut consumer = Consumer::new(
        client.clone(),
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign_topic("plain").await.unwrap();
    assert_eq!(consume_all(&mut consumer, 1000).await.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp_and_seek() {
    let (_broker, client, admin) = setup().await;
    admin.create_topic("times", 1).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default()).unwrap();
    let base = 1_700_000_000_000i64;
    let mut ds = Vec::new();
    for i in 0..20i64 {
        let r = ProducerRecord::new("times")
            .partition(0)
            .value(format!("at-{i}"))
            .timestamp(base + i * 1000);
        ds.push(producer.send_record(r).await.unwrap());
        if i % 5 == 4 {
            producer.flush().await.unwrap(); // several batches
        }
    }
    for (i, d) in ds.into_iter().enumerate() {
        assert_eq!(d.await.unwrap(), (0, i as i64));
    }
    let tp = TopicPartition::new("times", 0);
    let found = admin
        .list_offsets(&[(tp.clone(), OffsetSpec::Timestamp(base + 7500))])
        .await
        .unwrap();
    assert_eq!(found[&tp].offset, 8);
    assert_eq!(found[&tp].timestamp, base + 8000);
    let found = admin
        .list_offsets(&[(tp.clone(), OffsetSpec::Earliest)])
        .await
        .unwrap();
    assert_eq!(found[&tp].offset, 0);
    let found = admin
        .list_offsets(&[(tp.clone(), OffsetSpec::Latest)])
        .await
        .unwrap();
    assert_eq!(found[&tp].offset, 20);
    let found = admin
        .list_offsets(&[(tp.clone(), OffsetSpec::Timestamp(base + 1_000_000))])
        .await
        .unwrap();
    assert_eq!(found[&tp].offset, -1);

    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    consumer.assign([tp.clone()]);
    consumer.seek_to_timestamp(&tp, base + 12_000).unwrap();
    let records = consume_all(&mut consumer, 8).await;
    assert_eq!(records[0].offset, 12);
    assert_eq!(records[0].timestamp, base + 12_000);
    assert_eq!(records[0].value.as_deref(), Some(&b"at-12"[..]));
    // Seeking into the middle of a batch skips the records before the offset.
    consumer.seek(&tp, 3).unwrap();
    let records = consume_all(&mut consumer, 17).await;
    assert_eq!(records.first().unwrap().offset, 3);
    assert_eq!(records.len(), 17);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_and_offset_out_of_range_reset() {
    let (_broker, client, admin) = setup().await;
    admin.create_topic("trim", 1).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default()).unwrap();
    for i in 0..100 {
        drop(
            producer
                .send_record(
                    ProducerRecord::new("trim")
                        .partition(0)
                        .value(format!("{i}")),
                )
                .await
                .unwrap(),
        );
        if i % 10 == 9 {
            producer.flush().await.unwrap();
        }
    }
    producer.flush().await.unwrap();
    let tp = TopicPartition::new("trim", 0);
    let low = admin.delete_records(&[(tp.clone(), 40)]).await.unwrap();
    assert_eq!(low[&tp], 40);
    let found = admin
        .list_offsets(&[(tp.clone(), OffsetSpec::Earliest)])
        .await
        .unwrap();
    assert_eq!(found[&tp].offset, 40);

    // Fetching below the log start is OFFSET_OUT_OF_RANGE: reset to earliest.
    let mut consumer = Consumer::new(
        client.clone(),
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign([tp.clone()]);
    consumer.seek(&tp, 5).unwrap();
    let records = consume_all(&mut consumer, 60).await;
    assert_eq!(records[0].offset, 40);
    assert_eq!(records[0].value.as_deref(), Some(&b"40"[..]));
    assert_eq!(records.len(), 60);

    // Without a reset policy it is an error.
    let mut strict = Consumer::new(
        client.clone(),
        ConsumerConfig {
            auto_offset_reset: OffsetReset::None,
            ..ConsumerConfig::default()
        },
    );
    strict.assign([tp.clone()]);
    strict.seek(&tp, 5).unwrap();
    let err = strict.poll(Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(err.code(), Some(1), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_admin() {
    let (_broker, client, admin) = setup().await;
    admin.create_topic("g-topic", 2).await.unwrap();
    let tp0 = TopicPartition::new("g-topic", 0);
    let tp1 = TopicPartition::new("g-topic", 1);
    admin
        .commit_group_offsets("grp", &[(tp0.clone(), 0), (tp1.clone(), 0)])
        .await
        .unwrap();
    let offsets = admin.fetch_group_offsets("grp", None).await.unwrap();
    assert_eq!(offsets.get(&tp0), Some(&0));
    let offsets = admin
        .fetch_group_offsets("grp", Some(std::slice::from_ref(&tp1)))
        .await
        .unwrap();
    assert_eq!(offsets.get(&tp1), Some(&0));
    assert!(admin
        .list_groups()
        .await
        .unwrap()
        .iter()
        .any(|g| g.group_id == "grp"));
    let desc = admin.describe_groups(&["grp"]).await.unwrap();
    assert_eq!(desc[0].group_id, "grp");
    assert!(desc[0].members.is_empty());

    // A consumer resumes from the committed offset and commits its position.
    let producer = Producer::new(client.clone(), ProducerConfig::default()).unwrap();
    for i in 0..10 {
        drop(
            producer
                .send_record(
                    ProducerRecord::new("g-topic")
                        .partition(0)
                        .value(format!("{i}")),
                )
                .await
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    admin
        .commit_group_offsets("grp", &[(tp0.clone(), 4)])
        .await
        .unwrap();
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    consumer.assign([tp0.clone()]);
    consumer.seek_to_committed("grp").await.unwrap();
    let records = consume_all(&mut consumer, 6).await;
    assert_eq!(records[0].offset, 4);
    consumer.commit("grp").await.unwrap();
    let offsets = admin
        .fetch_group_offsets("grp", Some(std::slice::from_ref(&tp0)))
        .await
        .unwrap();
    assert_eq!(offsets[&tp0], 10);

    admin.delete_groups(&["grp"]).await.unwrap();
    assert!(admin
        .fetch_group_offsets("grp", None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_membership_range_assignment_and_rebalance() {
    let (_broker, client, admin) = setup().await;
    admin.create_topic("grouped", 4).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default()).unwrap();
    let produce_round = |round: usize| {
        let producer = &producer;
        async move {
            let mut ds = Vec::new();
            for p in 0..4 {
                for i in 0..10 {
                    let r = ProducerRecord::new("grouped")
                        .partition(p)
                        .value(format!("r{round}-p{p}-{i}"));
                    ds.push(producer.send_record(r).await.unwrap());
                }
            }
            producer.flush().await.unwrap();
            for d in ds {
                d.await.unwrap();
            }
        }
    };
    produce_round(0).await;

    let config = ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    };
    let group = runnel_client::GroupConfig::new("cg");
    let mut a = Consumer::new(client.clone(), config.clone());
    a.subscribe(group.clone(), &["grouped"]);
    let records = consume_all(&mut a, 40).await;
    assert_eq!(records.len(), 40);
    assert_eq!(
        a.assignment().len(),
        4,
        "a lone member gets every partition"
    );
    let (member, generation) = a.group_member().unwrap();
    assert!(!member.is_empty() && generation >= 0);
    a.commit_group().await.unwrap();
    let desc = admin.describe_groups(&["cg"]).await.unwrap();
    assert_eq!(desc[0].state, "Stable");
    assert_eq!(desc[0].members.len(), 1);

    // A second member joins: a keeps polling (and heartbeating) in its own task.
    let a_task = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        while a.assignment().len() != 2 {
            assert!(tokio::time::Instant::now() < deadline, "a never rebalanced");
            a.poll(Duration::from_millis(200)).await.unwrap();
        }
        a
    });
    let mut b = Consumer::new(client.clone(), config);
    b.subscribe(group, &["grouped"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while b.assignment().len() != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never got partitions"
        );
        assert!(b.poll(Duration::from_millis(200)).await.unwrap().is_empty());
    }
    let mut a = a_task.await.unwrap();
    let mut all: Vec<TopicPartition> = a.assignment();
    all.extend(b.assignment());
    all.sort();
    assert_eq!(
        all,
        (0..4)
            .map(|p| TopicPartition::new("grouped", p))
            .collect::<Vec<_>>(),
        "range assignment splits 2/2 with no overlap"
    );

    // Both resume from the committed offsets: only the new round is delivered.
    produce_round(1).await;
    for consumer in [&mut a, &mut b] {
        let records = consume_all(consumer, 20).await;
        assert!(
            records.iter().all(|r| r.offset >= 10),
            "re-read committed records"
        );
        assert!(records
            .iter()
            .all(|r| r.value.as_deref().unwrap().starts_with(b"r1-")));
    }
    a.close().await.unwrap();
    b.close().await.unwrap();
    let desc = admin.describe_groups(&["cg"]).await.unwrap();
    assert!(desc[0].members.is_empty(), "{:?}", desc[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_by_topic_id_and_transaction_coordinator() {
    use kafka_protocol::messages as m;
    let (broker, _client, admin) = setup().await;
    admin.create_topic("by-id", 2).await.unwrap();
    let id = admin.describe_topics(&["by-id"]).await.unwrap()[0].topic_id;
    let conn = Connection::connect(&broker.addr, ConnectionConfig::default())
        .await
        .unwrap();
    // The Java Admin's describeTopics(TopicCollection.ofTopicIds(..)) sends the id with
    // the name left at "": the id decides, as in Kafka.
    for name in [Some(""), None] {
        let req = m::MetadataRequest::default().with_topics(Some(vec![
            m::metadata_request::MetadataRequestTopic::default()
                .with_topic_id(uuid::Uuid::from_bytes(id))
                .with_name(name.map(|n| StrBytes::from_static_str(n).into())),
        ]));
        let r: m::MetadataResponse = conn.call(req).await.unwrap();
        assert_eq!(r.topics.len(), 1, "{name:?}");
        let t = &r.topics[0];
        assert_eq!(t.error_code, 0, "{name:?}");
        assert_eq!(t.name.as_ref().map(|n| n.0.as_str()), Some("by-id"));
        assert_eq!(t.partitions.len(), 2);
    }
    // The transaction coordinator is this node.
    let req = m::FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_key(StrBytes::from_static_str("tx-1"));
    let r: m::FindCoordinatorResponse = conn.call(req).await.unwrap();
    assert_eq!(r.error_code, 0);
    assert!(r.node_id.0 >= 0, "{r:?}");
}
