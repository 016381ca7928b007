//! Protocol answers that Apache Kafka's command-line tools show as they are (checked
//! with the tools themselves by tests/compat/kafka_tools.sh): DescribeTopicPartitions
//! (kafka-topics --describe), the ACL APIs without an authorizer (kafka-acls), the
//! transaction coordinator lookup, missing and mistyped groups in
//! DescribeGroups v6 and ConsumerGroupDescribe (kafka-consumer-groups), Kafka's error
//! messages for topic and config administration, and the sources of broker configs
//! (kafka-configs --describe --entity-type brokers --all).

use kafka_protocol::messages::{self as m, BrokerId, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::{Connection, ConnectionConfig};
use runnel_protocol::api::{RequestBody, ResponseBody};
use runnel_suite::TestBroker;

const SECURITY_DISABLED: i16 = 54;
const GROUP_ID_NOT_FOUND: i16 = 69;
const INVALID_REQUEST: i16 = 42;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic(v: &str) -> TopicName {
    TopicName(s(v))
}

async fn connect(broker: &TestBroker) -> Connection {
    Connection::connect(&broker.bootstrap(), ConnectionConfig::default())
        .await
        .expect("connect")
}

async fn send(conn: &Connection, body: impl Into<RequestBody>, version: i16) -> ResponseBody {
    conn.send_version(body.into(), version)
        .await
        .expect("request")
}

/// Create a topic and return the CreateTopics result (error code, message).
async fn create_topic(conn: &Connection, name: &str, partitions: i32, rf: i16) -> (i16, String) {
    let req = m::CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![m::create_topics_request::CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)]);
    let ResponseBody::CreateTopics(r) = send(conn, req, 7).await else {
        panic!("not a CreateTopics response")
    };
    let t = &r.topics[0];
    (
        t.error_code,
        t.error_message.as_deref().unwrap_or("").to_string(),
    )
}

async fn describe_partitions(
    conn: &Connection,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> m::DescribeTopicPartitionsResponse {
    let req = m::DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    m::describe_topic_partitions_request::TopicRequest::default()
                        .with_name(topic(t))
                })
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            m::describe_topic_partitions_request::Cursor::default()
                .with_topic_name(topic(t))
                .with_partition_index(p)
        }));
    let ResponseBody::DescribeTopicPartitions(r) = send(conn, req, 0).await else {
        panic!("not a DescribeTopicPartitions response")
    };
    r
}

/// (topic, error code, partition indexes) of each topic in the answer, and the cursor.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn page(r: &m::DescribeTopicPartitionsResponse) -> Page {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.error_code,
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let cursor = r
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (topics, cursor)
}

fn t(name: &str, code: i16, parts: &[i32]) -> (String, i16, Vec<i32>) {
    (name.to_string(), code, parts.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_topic_partitions_pages_and_sorts_like_kafka() {
    let broker = TestBroker::start();
    let conn = connect(&broker).await;
    assert_eq!(conn.version(m::ApiKey::DescribeTopicPartitions), Some(0));
    assert_eq!(create_topic(&conn, "dtp-b", 2, -1).await.0, 0);
    assert_eq!(create_topic(&conn, "dtp-a", 3, 1).await.0, 0);

    // Named topics come back sorted, unknown and invalid names with their errors.
    let r = describe_partitions(&conn, &["nosuch", "dtp-b", "bad/name", "dtp-a"], 2000, None).await;
    assert_eq!(
        page(&r),
        (
            vec![
                t("bad/name", INVALID_TOPIC_EXCEPTION, &[]),
                t("dtp-a", 0, &[0, 1, 2]),
                t("dtp-b", 0, &[0, 1]),
                t("nosuch", UNKNOWN_TOPIC_OR_PARTITION, &[]),
            ],
            None
        )
    );
    let a = &r.topics[1];
    assert!(!a.topic_id.is_nil());
    assert!(!a.is_internal);
    for p in &a.partitions {
        assert_eq!(p.error_code, 0);
        assert_eq!(p.leader_id, BrokerId(1));
        assert_eq!(p.leader_epoch, 0);
        assert_eq!(p.replica_nodes, vec![BrokerId(1)]);
        assert_eq!(p.isr_nodes, vec![BrokerId(1)]);
        // Empty, not null: kafka-topics prints "Elr: " (null prints "Elr: N/A").
        assert_eq!(p.eligible_leader_replicas, Some(vec![]));
        assert_eq!(p.last_known_elr, Some(vec![]));
        assert!(p.offline_replicas.is_empty());
    }
    assert!(r.topics[3].topic_id.is_nil());

    // Pages of at most `limit` partitions, each with a cursor to the first one left out.
    let both = ["dtp-b", "dtp-a"];
    let r = describe_partitions(&conn, &both, 2, None).await;
    assert_eq!(
        page(&r),
        (vec![t("dtp-a", 0, &[0, 1])], Some(("dtp-a".into(), 2)))
    );
    let r = describe_partitions(&conn, &both, 2, Some(("dtp-a", 2))).await;
    assert_eq!(
        page(&r),
        (
            vec![t("dtp-a", 0, &[2]), t("dtp-b", 0, &[0])],
            Some(("dtp-b".into(), 1))
        )
    );
    let r = describe_partitions(&conn, &both, 2, Some(("dtp-b", 1))).await;
    assert_eq!(page(&r), (vec![t("dtp-b", 0, &[1])], None));
    // A page that ends with a topic points at the next topic's first partition.
    let r = describe_partitions(&conn, &both, 3, None).await;
    assert_eq!(
        page(&r),
        (vec![t("dtp-a", 0, &[0, 1, 2])], Some(("dtp-b".into(), 0)))
    );
    // The cursor's topic must be one of the named topics.
    let r = describe_partitions(&conn, &["dtp-a"], 10, Some(("dtp-b", 0))).await;
    assert_eq!(page(&r), (vec![t("dtp-a", INVALID_REQUEST, &[])], None));

    // No names: every topic, internal ones marked, no errors for names nobody asked for.
    let r = describe_partitions(&conn, &[], 2000, None).await;
    let names: Vec<_> = page(&r)
        .0
        .into_iter()
        .map(|(n, code, _)| (n, code))
        .collect();
    assert_eq!(
        names,
        vec![
            ("__consumer_offsets".to_string(), 0),
            ("dtp-a".to_string(), 0),
            ("dtp-b".to_string(), 0)
        ]
    );
    assert!(r.topics[0].is_internal);
    assert_eq!(r.topics[0].partitions.len(), 50);
    // From a cursor, topics before it are left out.
    let r = describe_partitions(&conn, &[], 2000, Some(("dtp-a", 1))).await;
    assert_eq!(
        page(&r),
        (vec![t("dtp-a", 0, &[1, 2]), t("dtp-b", 0, &[0, 1])], None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_apis_answer_security_disabled() {
    let broker = TestBroker::start();
    let conn = connect(&broker).await;
    for v in 1..=3 {
        let ResponseBody::DescribeAcls(r) = send(&conn, m::DescribeAclsRequest::default(), v).await
        else {
            panic!("not a DescribeAcls response")
        };
        assert_eq!(r.error_code, SECURITY_DISABLED);
        assert_eq!(
            r.error_message.as_deref(),
            Some("No Authorizer is configured on the broker")
        );
        assert!(r.resources.is_empty());
    }
    let creation = m::create_acls_request::AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(s("t"))
        .with_resource_pattern_type(3)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(3)
        .with_permission_type(3);
    let req = m::CreateAclsRequest::default().with_creations(vec![creation.clone(), creation]);
    let ResponseBody::CreateAcls(r) = send(&conn, req, 3).await else {
        panic!("not a CreateAcls response")
    };
    assert_eq!(r.results.len(), 2);
    for res in &r.results {
        assert_eq!(res.error_code, SECURITY_DISABLED);
        assert_eq!(
            res.error_message.as_deref(),
            Some("No Authorizer is configured on the broker")
        );
    }
    let req = m::DeleteAclsRequest::default()
        .with_filters(vec![m::delete_acls_request::DeleteAclsFilter::default()]);
    let ResponseBody::DeleteAcls(r) = send(&conn, req, 3).await else {
        panic!("not a DeleteAcls response")
    };
    assert_eq!(r.filter_results.len(), 1);
    assert_eq!(r.filter_results[0].error_code, SECURITY_DISABLED);
    assert_eq!(
        r.filter_results[0].error_message.as_deref(),
        Some("No Authorizer is configured.")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_coordinator_lookup() {
    let broker = TestBroker::start();
    let conn = connect(&broker).await;
    // The first lookup creates __transaction_state (as Kafka does) and names this node.
    let req = m::FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![s("tx-1"), s("")]);
    let ResponseBody::FindCoordinator(r) = send(&conn, req, 4).await else {
        panic!("not a FindCoordinator response")
    };
    assert_eq!(r.coordinators.len(), 2);
    // Kafka looks up any key, the empty one too.
    for c in &r.coordinators {
        assert_eq!((c.error_code, c.node_id), (0, BrokerId(1)), "{r:?}");
    }
    let req = m::FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_key(s("tx-1"));
    let ResponseBody::FindCoordinator(r) = send(&conn, req, 3).await else {
        panic!("not a FindCoordinator response")
    };
    assert_eq!((r.error_code, r.node_id), (0, BrokerId(1)));
    assert!(
        broker.data_dir().join("__transaction_state-0").is_dir(),
        "__transaction_state was created"
    );
    // Group coordinators are unaffected.
    let req = m::FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![s("g")]);
    let ResponseBody::FindCoordinator(r) = send(&conn, req, 4).await else {
        panic!("not a FindCoordinator response")
    };
    assert_eq!(r.coordinators[0].error_code, 0);
    assert_eq!(r.coordinators[0].node_id, BrokerId(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_classic_groups_are_reported_as_kafka_does() {
    let broker = TestBroker::start();
    let conn = connect(&broker).await;
    assert_eq!(create_topic(&conn, "grp-t", 1, 1).await.0, 0);
    // A commit outside any generation makes an empty classic group.
    let commit = m::OffsetCommitRequest::default()
        .with_group_id(GroupId(s("classic-g")))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            m::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic("grp-t"))
                .with_partitions(vec![
                    m::offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(0),
                ]),
        ]);
    let ResponseBody::OffsetCommit(r) = send(&conn, commit, 8).await else {
        panic!("not an OffsetCommit response")
    };
    assert_eq!(r.topics[0].partitions[0].error_code, 0);

    let groups = vec![GroupId(s("nope")), GroupId(s("classic-g"))];
    let req = m::DescribeGroupsRequest::default().with_groups(groups.clone());
    let ResponseBody::DescribeGroups(r) = send(&conn, req.clone(), 6).await else {
        panic!("not a DescribeGroups response")
    };
    assert_eq!(r.groups[0].error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(
        r.groups[0].error_message.as_deref(),
        Some("Group nope not found.")
    );
    assert_eq!(&*r.groups[0].group_state, "Dead");
    assert_eq!(r.groups[1].error_code, 0);
    assert_eq!(&*r.groups[1].group_state, "Empty");
    // Before v6 a missing group is a Dead one, without an error.
    let ResponseBody::DescribeGroups(r) = send(&conn, req, 5).await else {
        panic!("not a DescribeGroups response")
    };
    assert_eq!(r.groups[0].error_code, 0);
    assert_eq!(&*r.groups[0].group_state, "Dead");

    let req = m::ConsumerGroupDescribeRequest::default().with_group_ids(groups);
    let ResponseBody::ConsumerGroupDescribe(r) = send(&conn, req, 0).await else {
        panic!("not a ConsumerGroupDescribe response")
    };
    assert_eq!(r.groups[0].error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(
        r.groups[0].error_message.as_deref(),
        Some("Group nope not found.")
    );
    assert_eq!(r.groups[1].error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(
        r.groups[1].error_message.as_deref(),
        Some("Group classic-g is not a consumer group.")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_and_config_errors_carry_kafkas_messages() {
    let broker = TestBroker::start();
    let conn = connect(&broker).await;
    assert_eq!(
        create_topic(&conn, "bad/name", 1, -1).await,
        (
            INVALID_TOPIC_EXCEPTION,
            "Topic name is invalid: 'bad/name' contains one or more characters other than \
             ASCII alphanumerics, '.', '_' and '-'"
                .to_string()
        )
    );
    assert_eq!(
        create_topic(&conn, "rf", 1, 2).await,
        (
            INVALID_REPLICATION_FACTOR,
            "Unable to replicate the partition 2 time(s): The target replication factor of 2 \
             cannot be reached because only 1 broker(s) are registered or some brokers have \
             all their log directories cordoned."
                .to_string()
        )
    );
    assert_eq!(
        create_topic(&conn, "rf", 1, 0).await,
        (
            INVALID_REPLICATION_FACTOR,
            "Replication factor must be larger than 0, or -1 to use the default value.".to_string()
        )
    );
    assert_eq!(create_topic(&conn, "parts", 3, 1).await.0, 0);

    let grow = |count: i32| {
        m::CreatePartitionsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                m::create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic("parts"))
                    .with_count(count),
            ])
    };
    for (count, want) in [
        (3, "Topic already has 3 partition(s)."),
        (
            2,
            "The topic parts currently has 3 partition(s); 2 would not be an increase.",
        ),
    ] {
        let ResponseBody::CreatePartitions(r) = send(&conn, grow(count), 3).await else {
            panic!("not a CreatePartitions response")
        };
        assert_eq!(r.results[0].error_code, INVALID_PARTITIONS);
        assert_eq!(r.results[0].error_message.as_deref(), Some(want));
    }

    let alter = |name: &str, op: i8, config: &str, value: Option<&str>| {
        m::IncrementalAlterConfigsRequest::default().with_resources(vec![
            m::incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(name))
                .with_configs(vec![
                    m::incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s(config))
                        .with_config_operation(op)
                        .with_value(value.map(s)),
                ]),
        ])
    };
    let ResponseBody::IncrementalAlterConfigs(r) =
        send(&conn, alter("nosuch", 0, "retention.ms", Some("1")), 1).await
    else {
        panic!("not an IncrementalAlterConfigs response")
    };
    assert_eq!(r.responses[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(
        r.responses[0].error_message.as_deref(),
        Some("The topic 'nosuch' does not exist.")
    );
    // Deleting a config Kafka does not know changes nothing and succeeds, as in Kafka;
    // setting one still fails.
    let ResponseBody::IncrementalAlterConfigs(r) =
        send(&conn, alter("parts", 1, "no.such.config", None), 1).await
    else {
        panic!("not an IncrementalAlterConfigs response")
    };
    assert_eq!(r.responses[0].error_code, 0);
    let ResponseBody::IncrementalAlterConfigs(r) =
        send(&conn, alter("parts", 0, "no.such.config", Some("1")), 1).await
    else {
        panic!("not an IncrementalAlterConfigs response")
    };
    assert_eq!(r.responses[0].error_code, 40);

    // The offsets topic carries Kafka's overrides.
    let req = m::DescribeConfigsRequest::default().with_resources(vec![
        m::describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("__consumer_offsets"))
            .with_configuration_keys(None),
    ]);
    let ResponseBody::DescribeConfigs(r) = send(&conn, req, 4).await else {
        panic!("not a DescribeConfigs response")
    };
    let mut overrides: Vec<(String, String)> = r.results[0]
        .configs
        .iter()
        .filter(|c| c.config_source == 1)
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_deref().unwrap_or("").to_string(),
            )
        })
        .collect();
    overrides.sort();
    assert_eq!(
        overrides,
        vec![
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("compression.type".to_string(), "producer".to_string()),
            ("segment.bytes".to_string(), "104857600".to_string()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_configs_tell_settings_from_defaults() {
    let broker = TestBroker::start_with(runnel_suite::BrokerOptions {
        extra_args: [
            "max.connections=500",
            // Accepted and ignored (one node keeps one replica), as Kafka setups pass it.
            "offsets.topic.replication.factor=1",
        ]
        .iter()
        .flat_map(|kv| ["--set".to_string(), kv.to_string()])
        .collect(),
        ..Default::default()
    });
    let conn = connect(&broker).await;
    let req = m::DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![
            m::describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(s("1"))
                .with_configuration_keys(Some(vec![
                    s("max.connections"),
                    s("fetch.max.bytes"),
                    s("offsets.topic.replication.factor"),
                    s("transaction.state.log.replication.factor"),
                ])),
        ]);
    let ResponseBody::DescribeConfigs(r) = send(&conn, req, 4).await else {
        panic!("not a DescribeConfigs response")
    };
    let entry = |name: &str| {
        let c = r.results[0]
            .configs
            .iter()
            .find(|c| &*c.name == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", r.results[0].configs));
        let synonyms: Vec<(String, String, i8)> = c
            .synonyms
            .iter()
            .map(|y| {
                (
                    y.name.to_string(),
                    y.value.as_deref().unwrap_or("").to_string(),
                    y.source,
                )
            })
            .collect();
        (
            c.value.as_deref().unwrap_or("").to_string(),
            c.config_source,
            synonyms,
        )
    };
    // Set: STATIC_BROKER_CONFIG (4), then the built-in default (DEFAULT_CONFIG, 5).
    assert_eq!(
        entry("max.connections"),
        (
            "500".to_string(),
            4,
            vec![
                ("max.connections".to_string(), "500".to_string(), 4),
                ("max.connections".to_string(), "20000".to_string(), 5),
            ]
        )
    );
    // Not set: the default, as a default.
    assert_eq!(
        entry("fetch.max.bytes"),
        (
            "57671680".to_string(),
            5,
            vec![("fetch.max.bytes".to_string(), "57671680".to_string(), 5)]
        )
    );
    // An ignored setting is reported as given; one not given is not reported at all.
    assert_eq!(
        entry("offsets.topic.replication.factor"),
        (
            "1".to_string(),
            4,
            vec![(
                "offsets.topic.replication.factor".to_string(),
                "1".to_string(),
                4
            )]
        )
    );
    assert_eq!(r.results[0].configs.len(), 3, "{:?}", r.results[0].configs);
}
