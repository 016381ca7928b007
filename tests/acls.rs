//! ACLs with Kafka's StandardAuthorizer semantics, checked per API: for each one, what an
//! allowed principal gets, what a denied one gets, and what is hidden (a topic the
//! principal may not describe answers like one that does not exist). Principals log in
//! with SASL/PLAIN; records go through librdkafka (the `rdkafka` crate), exact answers
//! through raw requests. ACLs survive a restart.

use std::time::Duration;

use kafka_protocol::messages::{self as m, ApiKey, GroupId, TopicName};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::TopicPartitionList;
use runnel_protocol::api::{RequestBody, ResponseBody};
use runnel_suite::raw::{sb, RawClient};
use runnel_suite::{BrokerOptions, TestBroker};

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
    user_admin=\"admin-secret\" user_alice=\"alice-secret\" user_bob=\"bob-secret\";";

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

// AclOperation, ResourceType, PatternType and permission codes.
const READ: i8 = 3;
const WRITE: i8 = 4;
const DESCRIBE: i8 = 8;
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

fn broker() -> TestBroker {
    let settings = [
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.enabled.mechanisms", "PLAIN"),
        ("plain.sasl.jaas.config", JAAS),
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:admin"),
    ];
    let mut extra_args = Vec::new();
    for (k, v) in settings {
        extra_args.push("--set".to_string());
        extra_args.push(format!("{k}={v}"));
    }
    TestBroker::start_with(BrokerOptions {
        extra_args,
        ..Default::default()
    })
}

macro_rules! call {
    ($c:expr, $api:ident, $v:expr, $req:expr) => {
        match $c.call(ApiKey::$api, $v, RequestBody::$api($req)) {
            Some(ResponseBody::$api(r)) => r,
            other => panic!("{}: {other:?}", stringify!($api)),
        }
    };
}

fn login(broker: &TestBroker, user: &str) -> RawClient {
    RawClient::plain(broker.addr(), user, &format!("{user}-secret"))
}

fn rdkafka(broker: &TestBroker, user: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker.bootstrap())
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", format!("{user}-secret"))
        .set("socket.timeout.ms", "10000");
    c
}

/// Produce one record with librdkafka; the delivery error if any.
fn produce(broker: &TestBroker, user: &str, topic: &str, value: &str) -> Result<(), String> {
    let producer: FutureProducer = rdkafka(broker, user)
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(producer.send(
            FutureRecord::<(), _>::to(topic).payload(value),
            Duration::from_secs(15),
        ))
        .map(|_| ())
        .map_err(|(e, _)| format!("{e:?}"))
}

fn create_acl(
    c: &mut RawClient,
    resource_type: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    operation: i8,
    permission: i8,
) {
    let r = call!(
        c,
        CreateAcls,
        3,
        m::CreateAclsRequest::default().with_creations(vec![
            m::create_acls_request::AclCreation::default()
                .with_resource_type(resource_type)
                .with_resource_name(sb(name))
                .with_resource_pattern_type(pattern)
                .with_principal(sb(principal))
                .with_host(sb("*"))
                .with_operation(operation)
                .with_permission_type(permission)
        ])
    );
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
}

fn metadata(c: &mut RawClient, topics: Option<&[&str]>, auto_create: bool) -> m::MetadataResponse {
    let req = m::MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    m::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(sb(t))))
                })
                .collect()
        }))
        .with_allow_auto_topic_creation(auto_create)
        .with_include_topic_authorized_operations(true);
    call!(c, Metadata, 12, req)
}

fn topic_error(md: &m::MetadataResponse, name: &str) -> Option<i16> {
    md.topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
        .map(|t| t.error_code)
}

fn list_offsets(c: &mut RawClient, topic: &str) -> i16 {
    let req = m::ListOffsetsRequest::default()
        .with_replica_id(m::BrokerId(-1))
        .with_topics(vec![m::list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_partitions(vec![
                m::list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ])]);
    call!(c, ListOffsets, 7, req).topics[0].partitions[0].error_code
}

fn fetch(c: &mut RawClient, topic: &str) -> (i16, usize) {
    let req = m::FetchRequest::default()
        .with_replica_id(m::BrokerId(-1))
        .with_max_wait_ms(100)
        .with_max_bytes(1 << 20)
        .with_topics(vec![m::fetch_request::FetchTopic::default()
            .with_topic(TopicName(sb(topic)))
            .with_partitions(vec![m::fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let r = call!(c, Fetch, 12, req);
    let p = &r.responses[0].partitions[0];
    (p.error_code, p.records.as_ref().map_or(0, |b| b.len()))
}

fn offset_commit(c: &mut RawClient, group: &str, topic: &str) -> i16 {
    let req = m::OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(sb(""))
        .with_topics(vec![
            m::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partitions(vec![
                    m::offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1),
                ]),
        ]);
    call!(c, OffsetCommit, 8, req).topics[0].partitions[0].error_code
}

fn offset_fetch(c: &mut RawClient, group: &str) -> m::OffsetFetchResponse {
    let req = m::OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(None);
    call!(c, OffsetFetch, 7, req)
}

fn group_request_errors(c: &mut RawClient, group: &str) -> [i16; 3] {
    let find = call!(
        c,
        FindCoordinator,
        3,
        m::FindCoordinatorRequest::default().with_key(sb(group))
    );
    let join = call!(
        c,
        JoinGroup,
        7,
        m::JoinGroupRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_session_timeout_ms(10000)
            .with_rebalance_timeout_ms(10000)
            .with_member_id(sb(""))
            .with_protocol_type(sb("consumer"))
            .with_protocols(vec![
                m::join_group_request::JoinGroupRequestProtocol::default().with_name(sb("range"))
            ])
    );
    let describe = call!(
        c,
        DescribeGroups,
        5,
        m::DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))])
    );
    [
        find.error_code,
        join.error_code,
        describe.groups[0].error_code,
    ]
}

fn list_groups(c: &mut RawClient) -> Vec<String> {
    let r = call!(c, ListGroups, 4, m::ListGroupsRequest::default());
    r.groups.iter().map(|g| g.group_id.to_string()).collect()
}

fn create_topic(c: &mut RawClient, name: &str) -> i16 {
    let r = call!(
        c,
        CreateTopics,
        7,
        m::CreateTopicsRequest::default()
            .with_timeout_ms(10000)
            .with_topics(vec![m::create_topics_request::CreatableTopic::default()
                .with_name(TopicName(sb(name)))
                .with_num_partitions(1)
                .with_replication_factor(1)])
    );
    r.topics[0].error_code
}

fn delete_topic(c: &mut RawClient, name: &str) -> i16 {
    let r = call!(
        c,
        DeleteTopics,
        5,
        m::DeleteTopicsRequest::default()
            .with_timeout_ms(10000)
            .with_topic_names(vec![TopicName(sb(name))])
    );
    r.responses[0].error_code
}

fn describe_configs(c: &mut RawClient, resource_type: i8, name: &str) -> i16 {
    let r = call!(
        c,
        DescribeConfigs,
        4,
        m::DescribeConfigsRequest::default().with_resources(vec![
            m::describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(sb(name))
        ])
    );
    r.results[0].error_code
}

fn describe_acls(c: &mut RawClient) -> m::DescribeAclsResponse {
    call!(
        c,
        DescribeAcls,
        3,
        m::DescribeAclsRequest::default()
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1)
    )
}

fn init_producer_id(c: &mut RawClient) -> i16 {
    call!(
        c,
        InitProducerId,
        4,
        m::InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60000)
            .with_producer_id(m::ProducerId(-1))
            .with_producer_epoch(-1)
    )
    .error_code
}

fn cluster_operations(c: &mut RawClient) -> i32 {
    call!(
        c,
        DescribeCluster,
        1,
        m::DescribeClusterRequest::default().with_include_cluster_authorized_operations(true)
    )
    .cluster_authorized_operations
}

fn bits(ops: &[i8]) -> i32 {
    ops.iter().fold(0, |b, op| b | 1 << op)
}

#[test]
fn each_api_checks_what_kafka_checks() {
    let mut broker = broker();
    let mut admin = login(&broker, "admin");
    for t in ["orders", "secret-ledger"] {
        assert_eq!(create_topic(&mut admin, t), 0, "{t}");
    }
    produce(&broker, "admin", "orders", "o-1").unwrap();
    produce(&broker, "admin", "secret-ledger", "s-1").unwrap();

    // alice: READ and WRITE on orders, READ on groups g-*, READ on secret-ledger that a
    // prefixed DENY overrides. bob: nothing.
    create_acl(
        &mut admin,
        TOPIC,
        "orders",
        LITERAL,
        "User:alice",
        READ,
        ALLOW,
    );
    create_acl(
        &mut admin,
        TOPIC,
        "orders",
        LITERAL,
        "User:alice",
        WRITE,
        ALLOW,
    );
    create_acl(&mut admin, GROUP, "g-", PREFIXED, "User:alice", READ, ALLOW);
    create_acl(
        &mut admin,
        TOPIC,
        "secret-ledger",
        LITERAL,
        "User:alice",
        READ,
        ALLOW,
    );
    create_acl(&mut admin, TOPIC, "secret", PREFIXED, "User:*", READ, DENY);
    let mut alice = login(&broker, "alice");
    let mut bob = login(&broker, "bob");

    // Metadata: "all topics" shows only what the principal may describe.
    let names = |md: &m::MetadataResponse| -> Vec<String> {
        md.topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
            .collect()
    };
    let all = names(&metadata(&mut admin, None, false));
    assert!(all.contains(&"orders".to_string()) && all.contains(&"secret-ledger".to_string()));
    // READ on secret-ledger implies DESCRIBE (the DENY is for READ only).
    let mut seen = names(&metadata(&mut alice, None, false));
    seen.sort();
    assert_eq!(seen, vec!["orders", "secret-ledger"]);
    assert!(names(&metadata(&mut bob, None, false)).is_empty());
    // Named: bob gets the same error for a topic that exists and one that does not.
    let md = metadata(&mut bob, Some(&["orders", "no-such-topic"]), false);
    assert_eq!(topic_error(&md, "orders"), Some(TOPIC_AUTHORIZATION_FAILED));
    assert_eq!(
        topic_error(&md, "no-such-topic"),
        Some(TOPIC_AUTHORIZATION_FAILED)
    );
    assert!(md
        .topics
        .iter()
        .all(|t| t.partitions.is_empty() && t.topic_id.is_nil()));
    // Authorized operations of a topic: alice has READ, WRITE and DESCRIBE on orders.
    let md = metadata(&mut alice, Some(&["orders"]), false);
    assert_eq!(md.topics[0].error_code, 0);
    assert_eq!(
        md.topics[0].topic_authorized_operations,
        bits(&[READ, WRITE, DESCRIBE])
    );
    // Auto-creation needs CREATE: alice may describe "g-new"? No ACL names it, so she may
    // not even describe it.
    create_acl(
        &mut admin,
        TOPIC,
        "auto-",
        PREFIXED,
        "User:alice",
        WRITE,
        ALLOW,
    );
    let md = metadata(&mut alice, Some(&["auto-made"]), true);
    assert_eq!(
        topic_error(&md, "auto-made"),
        Some(TOPIC_AUTHORIZATION_FAILED)
    );
    assert_eq!(
        topic_error(
            &metadata(&mut admin, Some(&["auto-made"]), false),
            "auto-made"
        ),
        Some(3),
        "the topic was not created"
    );

    // Produce: librdkafka as alice to orders works; as bob it is refused.
    produce(&broker, "alice", "orders", "o-2").unwrap();
    let refused = produce(&broker, "bob", "orders", "o-3").unwrap_err();
    assert!(refused.contains("TopicAuthorization"), "{refused}");

    // Fetch and ListOffsets: READ and DESCRIBE; the DENY wins over alice's ALLOW.
    let (code, bytes) = fetch(&mut alice, "orders");
    assert_eq!(code, 0);
    assert!(bytes > 0);
    assert_eq!(
        fetch(&mut alice, "secret-ledger"),
        (TOPIC_AUTHORIZATION_FAILED, 0)
    );
    assert_eq!(fetch(&mut bob, "orders"), (TOPIC_AUTHORIZATION_FAILED, 0));
    assert_eq!(
        fetch(&mut bob, "no-such-topic"),
        (TOPIC_AUTHORIZATION_FAILED, 0)
    );
    assert_eq!(list_offsets(&mut alice, "orders"), 0);
    assert_eq!(list_offsets(&mut bob, "orders"), TOPIC_AUTHORIZATION_FAILED);

    // A librdkafka consumer as alice reads orders through group g-alice.
    let consumer: BaseConsumer = rdkafka(&broker, "alice")
        .set("group.id", "g-alice")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while values.len() < 2 && std::time::Instant::now() < deadline {
        if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(500)) {
            values.push(String::from_utf8_lossy(msg.payload().unwrap_or(&[])).to_string());
        }
    }
    assert_eq!(values, vec!["o-1", "o-2"]);
    consumer
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .unwrap();

    // Groups: READ on the group for commits and membership, DESCRIBE to look.
    assert_eq!(offset_commit(&mut alice, "g-alice", "orders"), 0);
    assert_eq!(
        offset_commit(&mut alice, "g-alice", "secret-ledger"),
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(
        offset_commit(&mut bob, "g-alice", "orders"),
        GROUP_AUTHORIZATION_FAILED
    );
    let fetched = offset_fetch(&mut alice, "g-alice");
    assert_eq!(fetched.error_code, 0);
    assert_eq!(fetched.topics.len(), 1);
    assert_eq!(
        offset_fetch(&mut bob, "g-alice").error_code,
        GROUP_AUTHORIZATION_FAILED
    );
    assert_eq!(group_request_errors(&mut alice, "g-other")[0], 0);
    assert_eq!(
        group_request_errors(&mut bob, "g-alice"),
        [GROUP_AUTHORIZATION_FAILED; 3]
    );
    assert!(list_groups(&mut admin).contains(&"g-alice".to_string()));
    assert!(list_groups(&mut alice).contains(&"g-alice".to_string()));
    assert!(list_groups(&mut bob).is_empty());

    // Admin APIs: topics, configs and ACLs need what Kafka asks for.
    assert_eq!(
        create_topic(&mut alice, "alices-own"),
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(
        delete_topic(&mut alice, "orders"),
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(
        delete_topic(&mut bob, "no-such-topic"),
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(
        describe_configs(&mut alice, 2, "orders"),
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(describe_configs(&mut admin, 2, "orders"), 0);
    assert_eq!(
        describe_configs(&mut alice, 4, "0"),
        CLUSTER_AUTHORIZATION_FAILED
    );
    assert_eq!(
        describe_acls(&mut alice).error_code,
        CLUSTER_AUTHORIZATION_FAILED
    );
    let denied = call!(
        alice,
        CreateAcls,
        3,
        m::CreateAclsRequest::default().with_creations(vec![
            m::create_acls_request::AclCreation::default()
                .with_resource_type(TOPIC)
                .with_resource_name(sb("orders"))
                .with_resource_pattern_type(LITERAL)
                .with_principal(sb("User:alice"))
                .with_host(sb("*"))
                .with_operation(2)
                .with_permission_type(ALLOW)
        ])
    );
    assert_eq!(denied.results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    // An idempotent producer id needs WRITE on some topic (or IDEMPOTENT_WRITE).
    assert_eq!(init_producer_id(&mut alice), 0);
    assert_eq!(init_producer_id(&mut bob), CLUSTER_AUTHORIZATION_FAILED);
    // Cluster operations: none for alice, all seven for the super user.
    assert_eq!(cluster_operations(&mut alice), 0);
    assert_eq!(
        cluster_operations(&mut admin),
        bits(&[5, 7, 8, 9, 10, 11, 12])
    );

    // DescribeAcls lists the six ACLs; a bad binding is refused with Kafka's message.
    let acls = describe_acls(&mut admin);
    assert_eq!(acls.error_code, 0);
    let count: usize = acls.resources.iter().map(|r| r.acls.len()).sum();
    assert_eq!(count, 6, "{acls:?}");
    let bad = call!(
        admin,
        CreateAcls,
        3,
        m::CreateAclsRequest::default().with_creations(vec![
            m::create_acls_request::AclCreation::default()
                .with_resource_type(4)
                .with_resource_name(sb("not-the-cluster"))
                .with_resource_pattern_type(LITERAL)
                .with_principal(sb("User:alice"))
                .with_host(sb("*"))
                .with_operation(7)
                .with_permission_type(ALLOW)
        ])
    );
    assert_eq!(bad.results[0].error_code, 42, "INVALID_REQUEST");

    // DeleteAcls takes alice's WRITE away: her next produce is refused.
    let deleted = call!(
        admin,
        DeleteAcls,
        3,
        m::DeleteAclsRequest::default().with_filters(vec![
            m::delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(TOPIC)
                .with_resource_name_filter(Some(sb("orders")))
                .with_pattern_type_filter(LITERAL)
                .with_principal_filter(Some(sb("User:alice")))
                .with_host_filter(None)
                .with_operation(WRITE)
                .with_permission_type(1)
        ])
    );
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    let refused = produce(&broker, "alice", "orders", "o-4").unwrap_err();
    assert!(refused.contains("TopicAuthorization"), "{refused}");

    // ACLs are durable.
    broker.restart();
    let mut admin = login(&broker, "admin");
    let acls = describe_acls(&mut admin);
    let count: usize = acls.resources.iter().map(|r| r.acls.len()).sum();
    assert_eq!(count, 5);
    let mut alice = login(&broker, "alice");
    assert_eq!(fetch(&mut alice, "orders").0, 0);
    assert_eq!(
        fetch(&mut alice, "secret-ledger").0,
        TOPIC_AUTHORIZATION_FAILED
    );
}

#[test]
fn without_an_authorizer_everything_is_allowed_and_acl_apis_are_disabled() {
    let broker = TestBroker::start();
    let mut anyone = RawClient::connect(broker.addr());
    let r = describe_acls(&mut anyone);
    assert_eq!(r.error_code, 54, "SECURITY_DISABLED");
    assert_eq!(create_topic(&mut anyone, "open"), 0);
    assert_eq!(init_producer_id(&mut anyone), 0);
    assert_eq!(
        cluster_operations(&mut anyone),
        bits(&[5, 7, 8, 9, 10, 11, 12])
    );
}

/// The APIs the first test does not reach: group membership and deletion, records and
/// partitions, configs, log dirs, KIP-848 groups, DescribeTopicPartitions and the SCRAM
/// APIs. alice has READ on topic orders and on groups g-*; bob has nothing.
#[test]
fn the_other_apis_check_what_kafka_checks() {
    let broker = broker();
    let mut admin = login(&broker, "admin");
    assert_eq!(create_topic(&mut admin, "orders"), 0);
    produce(&broker, "admin", "orders", "o-1").unwrap();
    create_acl(
        &mut admin,
        TOPIC,
        "orders",
        LITERAL,
        "User:alice",
        READ,
        ALLOW,
    );
    create_acl(&mut admin, GROUP, "g-", PREFIXED, "User:alice", READ, ALLOW);
    let mut alice = login(&broker, "alice");
    let mut bob = login(&broker, "bob");
    let group = || GroupId(sb("g-alice"));

    // Classic membership: READ on the group. alice gets past the authorizer to the
    // coordinator's own answers (the member is unknown); bob does not.
    let membership = |c: &mut RawClient| -> [i16; 3] {
        let sync = call!(
            c,
            SyncGroup,
            5,
            m::SyncGroupRequest::default()
                .with_group_id(group())
                .with_member_id(sb("m"))
                .with_generation_id(1)
        );
        let heartbeat = call!(
            c,
            Heartbeat,
            4,
            m::HeartbeatRequest::default()
                .with_group_id(group())
                .with_member_id(sb("m"))
                .with_generation_id(1)
        );
        let leave = call!(
            c,
            LeaveGroup,
            4,
            m::LeaveGroupRequest::default()
                .with_group_id(group())
                .with_members(vec![
                    m::leave_group_request::MemberIdentity::default().with_member_id(sb("m"))
                ])
        );
        [sync.error_code, heartbeat.error_code, leave.error_code]
    };
    assert_eq!(membership(&mut bob), [GROUP_AUTHORIZATION_FAILED; 3]);
    let alices = membership(&mut alice);
    assert!(
        alices.iter().all(|c| *c != GROUP_AUTHORIZATION_FAILED),
        "{alices:?}"
    );

    // KIP-848: READ to heartbeat, DESCRIBE to describe (with the operations).
    let cg = |c: &mut RawClient| {
        call!(
            c,
            ConsumerGroupHeartbeat,
            0,
            m::ConsumerGroupHeartbeatRequest::default()
                .with_group_id(group())
                .with_member_id(sb("member-1"))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(10000)
                .with_subscribed_topic_names(Some(vec![TopicName(sb("orders"))]))
                .with_topic_partitions(Some(vec![]))
        )
        .error_code
    };
    assert_eq!(cg(&mut alice), 0);
    assert_eq!(cg(&mut bob), GROUP_AUTHORIZATION_FAILED);
    let describe = |c: &mut RawClient| {
        call!(
            c,
            ConsumerGroupDescribe,
            0,
            m::ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![group()])
                .with_include_authorized_operations(true)
        )
        .groups
        .remove(0)
    };
    let d = describe(&mut alice);
    assert_eq!(d.error_code, 0);
    assert_eq!(d.authorized_operations, bits(&[READ, DESCRIBE]));
    assert_eq!(describe(&mut bob).error_code, GROUP_AUTHORIZATION_FAILED);
    let classic = call!(
        alice,
        DescribeGroups,
        5,
        m::DescribeGroupsRequest::default()
            .with_groups(vec![group()])
            .with_include_authorized_operations(true)
    );
    assert_eq!(classic.groups[0].error_code, 0);

    // Deleting a group or its offsets needs DELETE on it.
    let delete_groups = |c: &mut RawClient| {
        call!(
            c,
            DeleteGroups,
            2,
            m::DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb("g-other"))])
        )
        .results[0]
            .error_code
    };
    assert_eq!(delete_groups(&mut alice), GROUP_AUTHORIZATION_FAILED);
    assert_ne!(delete_groups(&mut admin), GROUP_AUTHORIZATION_FAILED);
    let offset_delete = call!(
        alice,
        OffsetDelete,
        0,
        m::OffsetDeleteRequest::default()
            .with_group_id(group())
            .with_topics(vec![
                m::offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(sb("orders")))
                    .with_partitions(vec![
                        m::offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0)
                    ])
            ])
    );
    assert_eq!(offset_delete.error_code, GROUP_AUTHORIZATION_FAILED);

    // Records and partitions: DELETE and ALTER on the topic; OffsetForLeaderEpoch DESCRIBE.
    let delete_records = |c: &mut RawClient| {
        call!(
            c,
            DeleteRecords,
            2,
            m::DeleteRecordsRequest::default()
                .with_timeout_ms(10000)
                .with_topics(vec![
                    m::delete_records_request::DeleteRecordsTopic::default()
                        .with_name(TopicName(sb("orders")))
                        .with_partitions(vec![
                            m::delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(0)
                        ])
                ])
        )
        .topics[0]
            .partitions[0]
            .error_code
    };
    assert_eq!(delete_records(&mut alice), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(delete_records(&mut admin), 0);
    let create_partitions = |c: &mut RawClient| {
        call!(
            c,
            CreatePartitions,
            3,
            m::CreatePartitionsRequest::default()
                .with_timeout_ms(10000)
                .with_topics(vec![
                    m::create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(TopicName(sb("orders")))
                        .with_count(2)
                        .with_assignments(None)
                ])
        )
        .results[0]
            .error_code
    };
    assert_eq!(create_partitions(&mut alice), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(create_partitions(&mut admin), 0);
    let epoch = |c: &mut RawClient, topic: &str| {
        call!(
            c,
            OffsetForLeaderEpoch,
            4,
            m::OffsetForLeaderEpochRequest::default()
                .with_replica_id(m::BrokerId(-1))
                .with_topics(vec![
                    m::offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                        .with_topic(TopicName(sb(topic)))
                        .with_partitions(vec![
                            m::offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                                .with_partition(0)
                                .with_current_leader_epoch(-1)
                                .with_leader_epoch(0)
                        ])
                ])
        )
        .topics[0]
            .partitions[0]
            .error_code
    };
    assert_eq!(epoch(&mut alice, "orders"), 0);
    assert_eq!(epoch(&mut bob, "orders"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(epoch(&mut bob, "no-such-topic"), TOPIC_AUTHORIZATION_FAILED);

    // Configs: ALTER_CONFIGS on the topic or the cluster.
    let alter = |c: &mut RawClient, resource_type: i8, name: &str| {
        call!(
            c,
            IncrementalAlterConfigs,
            1,
            m::IncrementalAlterConfigsRequest::default().with_resources(vec![
                m::incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(sb(name))
                    .with_configs(vec![
                        m::incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(sb("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(sb("3600000")))
                    ])
            ])
        )
        .responses[0]
            .error_code
    };
    assert_eq!(alter(&mut alice, 2, "orders"), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(alter(&mut alice, 4, "0"), CLUSTER_AUTHORIZATION_FAILED);
    assert_eq!(alter(&mut admin, 2, "orders"), 0);
    let legacy = call!(
        alice,
        AlterConfigs,
        2,
        m::AlterConfigsRequest::default().with_resources(vec![
            m::alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(sb("orders"))
        ])
    );
    assert_eq!(legacy.responses[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(
        legacy.responses[0].error_message, None,
        "no message, as Kafka"
    );

    // Cluster-wide reads and writes.
    let log_dirs = |c: &mut RawClient| {
        call!(
            c,
            DescribeLogDirs,
            4,
            m::DescribeLogDirsRequest::default().with_topics(None)
        )
    };
    let denied = log_dirs(&mut alice);
    assert_eq!(denied.error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(
        denied.results.is_empty(),
        "nothing about the disks is revealed"
    );
    assert_eq!(log_dirs(&mut admin).error_code, 0);
    let scram = call!(
        alice,
        DescribeUserScramCredentials,
        0,
        m::DescribeUserScramCredentialsRequest::default().with_users(None)
    );
    assert_eq!(scram.error_code, CLUSTER_AUTHORIZATION_FAILED);
    let alter_scram = call!(
        alice,
        AlterUserScramCredentials,
        0,
        m::AlterUserScramCredentialsRequest::default().with_deletions(vec![
            m::alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                .with_name(sb("carol"))
                .with_mechanism(1)
        ])
    );
    assert_eq!(
        alter_scram.results[0].error_code,
        CLUSTER_AUTHORIZATION_FAILED
    );

    // DescribeTopicPartitions: hidden from "all", refused when named.
    let dtp = |c: &mut RawClient, topics: &[&str]| {
        call!(
            c,
            DescribeTopicPartitions,
            0,
            m::DescribeTopicPartitionsRequest::default()
                .with_response_partition_limit(100)
                .with_topics(
                    topics
                        .iter()
                        .map(|t| {
                            m::describe_topic_partitions_request::TopicRequest::default()
                                .with_name(TopicName(sb(t)))
                        })
                        .collect()
                )
        )
        .topics
    };
    assert!(dtp(&mut bob, &[]).is_empty());
    assert_eq!(dtp(&mut alice, &[]).len(), 1);
    let named = dtp(&mut bob, &["orders", "no-such-topic"]);
    assert!(
        named
            .iter()
            .all(|t| t.error_code == TOPIC_AUTHORIZATION_FAILED && t.partitions.is_empty()),
        "{named:?}"
    );
    let alices = dtp(&mut alice, &["orders"]);
    assert_eq!(
        alices[0].topic_authorized_operations,
        bits(&[READ, DESCRIBE])
    );
}
