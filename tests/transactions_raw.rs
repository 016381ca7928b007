//! Transaction protocol edges over the raw protocol, against the real broker: the
//! errors a client library would hide (INVALID_TRANSACTION_TIMEOUT, a transactional
//! write the coordinator never saw, a client's control batch, a stale epoch), and what
//! DescribeTransactions, ListTransactions and DescribeProducers show through a
//! transaction's life until its transactional id expires.

use std::time::{Duration, Instant};

use bytes::Bytes;
use runnel_protocol::api::messages as m;
use runnel_protocol::api::{ApiKey, ResponseBody};
use runnel_protocol::record_batch::builder::{
    control_batch, encode_batch, encode_records, ProducerFields, Record, TRANSACTIONAL,
};
use runnel_suite::raw::{sb, RawClient};
use runnel_suite::{BrokerOptions, TestBroker};

const INVALID_RECORD: i16 = 87;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const PRODUCER_FENCED: i16 = 90;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
const TRANSACTION_ABORTABLE: i16 = 120;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

const TOPIC: &str = "raw-txn";

fn broker() -> TestBroker {
    let settings = [
        "transactional.id.expiration.ms=3000",
        "transaction.remove.expired.transaction.cleanup.interval.ms=200",
        "transaction.max.timeout.ms=60000",
    ];
    TestBroker::start_with(BrokerOptions {
        extra_args: settings
            .iter()
            .flat_map(|s| ["--set".to_string(), s.to_string()])
            .collect(),
        ..Default::default()
    })
}

fn create_topic(c: &mut RawClient) {
    let req = m::CreateTopicsRequest::default()
        .with_topics(vec![m::create_topics_request::CreatableTopic::default()
            .with_name(m::TopicName(sb(TOPIC)))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000);
    let Some(ResponseBody::CreateTopics(r)) = c.call(ApiKey::CreateTopics, 5, req.into()) else {
        panic!("CreateTopics")
    };
    assert_eq!(r.topics[0].error_code, 0, "{r:?}");
}

fn find_coordinator(c: &mut RawClient, id: &str) {
    let req = m::FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![sb(id)]);
    let Some(ResponseBody::FindCoordinator(r)) = c.call(ApiKey::FindCoordinator, 4, req.into())
    else {
        panic!("FindCoordinator")
    };
    assert_eq!(r.coordinators[0].error_code, 0, "{r:?}");
}

fn init(c: &mut RawClient, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    let req = m::InitProducerIdRequest::default()
        .with_transactional_id(Some(m::TransactionalId(sb(id))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(m::ProducerId(-1))
        .with_producer_epoch(-1);
    let Some(ResponseBody::InitProducerId(r)) = c.call(ApiKey::InitProducerId, 4, req.into())
    else {
        panic!("InitProducerId")
    };
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

fn add_partition(c: &mut RawClient, id: &str, pid: i64, epoch: i16) -> i16 {
    let req = m::AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(m::TransactionalId(sb(id)))
        .with_v3_and_below_producer_id(m::ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            m::add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(m::TopicName(sb(TOPIC)))
                .with_partitions(vec![0]),
        ]);
    let Some(ResponseBody::AddPartitionsToTxn(r)) =
        c.call(ApiKey::AddPartitionsToTxn, 3, req.into())
    else {
        panic!("AddPartitionsToTxn")
    };
    r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

/// AddPartitionsToTxn v4, the broker-to-coordinator form (KIP-890): one transaction,
/// `verify_only` or not, for partitions 0..n of the topic.
fn add_v4(
    c: &mut RawClient,
    id: &str,
    pid: i64,
    epoch: i16,
    verify_only: bool,
    n: i32,
) -> Vec<i16> {
    let req = m::AddPartitionsToTxnRequest::default().with_transactions(vec![
        m::add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
            .with_transactional_id(m::TransactionalId(sb(id)))
            .with_producer_id(m::ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(verify_only)
            .with_topics(vec![
                m::add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(m::TopicName(sb(TOPIC)))
                    .with_partitions((0..n).collect()),
            ]),
    ]);
    let Some(ResponseBody::AddPartitionsToTxn(r)) =
        c.call(ApiKey::AddPartitionsToTxn, 4, req.into())
    else {
        panic!("AddPartitionsToTxn v4")
    };
    assert_eq!(r.error_code, 0, "{r:?}");
    r.results_by_transaction[0].topic_results[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

fn txn_batch(pid: i64, epoch: i16, sequence: i32, value: &[u8]) -> Vec<u8> {
    let section = encode_records(&[Record {
        value: Some(value),
        ..Default::default()
    }]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    encode_batch(
        0,
        TRANSACTIONAL,
        0,
        now,
        now,
        ProducerFields {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: sequence,
        },
        1,
        &section,
    )
}

fn produce(c: &mut RawClient, id: Option<&str>, records: Vec<u8>) -> i16 {
    produce_v(c, id, records, 11)
}

fn produce_v(c: &mut RawClient, id: Option<&str>, records: Vec<u8>, version: i16) -> i16 {
    let req = m::ProduceRequest::default()
        .with_transactional_id(id.map(|i| m::TransactionalId(sb(i))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![m::produce_request::TopicProduceData::default()
            .with_name(m::TopicName(sb(TOPIC)))
            .with_partition_data(vec![
                m::produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(records))),
            ])]);
    let Some(ResponseBody::Produce(r)) = c.call(ApiKey::Produce, version, req.into()) else {
        panic!("Produce")
    };
    r.responses[0].partition_responses[0].error_code
}

fn end(c: &mut RawClient, id: &str, pid: i64, epoch: i16, commit: bool, version: i16) -> i16 {
    let req = m::EndTxnRequest::default()
        .with_transactional_id(m::TransactionalId(sb(id)))
        .with_producer_id(m::ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let Some(ResponseBody::EndTxn(r)) = c.call(ApiKey::EndTxn, version, req.into()) else {
        panic!("EndTxn")
    };
    r.error_code
}

fn describe(c: &mut RawClient, id: &str) -> m::describe_transactions_response::TransactionState {
    let req = m::DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![m::TransactionalId(sb(id))]);
    let Some(ResponseBody::DescribeTransactions(mut r)) =
        c.call(ApiKey::DescribeTransactions, 0, req.into())
    else {
        panic!("DescribeTransactions")
    };
    r.transaction_states.remove(0)
}

fn list(c: &mut RawClient, states: &[&str]) -> Vec<(String, String)> {
    let req = m::ListTransactionsRequest::default()
        .with_state_filters(states.iter().map(|s| sb(s)).collect())
        .with_duration_filter(-1);
    let Some(ResponseBody::ListTransactions(r)) = c.call(ApiKey::ListTransactions, 1, req.into())
    else {
        panic!("ListTransactions")
    };
    assert_eq!(r.error_code, 0);
    r.transaction_states
        .iter()
        .map(|t| {
            (
                t.transactional_id.to_string(),
                t.transaction_state.to_string(),
            )
        })
        .collect()
}

fn producers(c: &mut RawClient) -> Vec<m::describe_producers_response::ProducerState> {
    let req = m::DescribeProducersRequest::default().with_topics(vec![
        m::describe_producers_request::TopicRequest::default()
            .with_name(m::TopicName(sb(TOPIC)))
            .with_partition_indexes(vec![0]),
    ]);
    let Some(ResponseBody::DescribeProducers(mut r)) =
        c.call(ApiKey::DescribeProducers, 0, req.into())
    else {
        panic!("DescribeProducers")
    };
    let mut p = r.topics.remove(0).partitions.remove(0);
    assert_eq!(p.error_code, 0);
    std::mem::take(&mut p.active_producers)
}

#[test]
fn transaction_protocol_edges_and_the_admin_views() {
    let broker = broker();
    let mut c = RawClient::connect(broker.addr());
    create_topic(&mut c);
    let id = "raw-txn-id";
    find_coordinator(&mut c, id);

    // A timeout above transaction.max.timeout.ms.
    assert_eq!(init(&mut c, id, 60_001).0, INVALID_TRANSACTION_TIMEOUT);
    let (code, pid, epoch) = init(&mut c, id, 30_000);
    assert_eq!(code, 0);
    assert_eq!(describe(&mut c, id).transaction_state.as_str(), "Empty");

    // A transactional write to a partition the coordinator never added: refused
    // (KIP-890 verification) and nothing written; TRANSACTION_ABORTABLE from Produce
    // v11 on, INVALID_TXN_STATE before, as Kafka answers.
    assert_eq!(
        produce(&mut c, Some(id), txn_batch(pid, epoch, 0, b"unverified")),
        TRANSACTION_ABORTABLE
    );
    assert_eq!(
        produce_v(
            &mut c,
            Some(id),
            txn_batch(pid, epoch, 0, b"unverified"),
            10
        ),
        INVALID_TXN_STATE
    );
    // Transactional records without a transactional id are refused first; a client's
    // marker outside a transaction fails verification.
    assert_eq!(
        produce(&mut c, None, control_batch(pid, epoch, true, 0, 1)),
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    assert_eq!(
        produce(&mut c, Some(id), control_batch(pid, epoch, true, 0, 1)),
        TRANSACTION_ABORTABLE
    );

    // The v4 verify-only form (what a partition leader asks): not in the transaction.
    assert_eq!(
        add_v4(&mut c, id, pid, epoch, true, 1),
        vec![TRANSACTION_ABORTABLE]
    );
    assert_eq!(add_partition(&mut c, id, pid, epoch), 0);
    assert_eq!(add_v4(&mut c, id, pid, epoch, true, 1), vec![0]);
    // An unknown partition in the batch is refused, the known one not attempted.
    assert_eq!(
        add_v4(&mut c, id, pid, epoch, false, 2),
        vec![OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC_OR_PARTITION]
    );
    assert_eq!(
        produce(&mut c, Some(id), txn_batch(pid, epoch, 0, b"one")),
        0
    );
    // Inside a transaction a client's marker is INVALID_RECORD: only the coordinator
    // writes them.
    assert_eq!(
        produce(&mut c, Some(id), control_batch(pid, epoch, true, 0, 1)),
        INVALID_RECORD
    );
    let open = describe(&mut c, id);
    assert_eq!(open.transaction_state.as_str(), "Ongoing");
    assert_eq!(open.producer_id.0, pid);
    assert_eq!(open.topics[0].topic.as_str(), TOPIC);
    assert_eq!(open.topics[0].partitions, vec![0]);
    assert!(open.transaction_start_time_ms > 0);
    assert_eq!(
        list(&mut c, &["Ongoing"]),
        vec![(id.to_string(), "Ongoing".to_string())]
    );
    let ps = producers(&mut c);
    assert_eq!(ps.len(), 1);
    assert_eq!(
        (ps[0].producer_id.0, ps[0].current_txn_start_offset),
        (pid, 0)
    );

    // A stale epoch is fenced (INVALID_PRODUCER_EPOCH for EndTxn before v2, as Kafka).
    assert_eq!(
        end(&mut c, id, pid, epoch - 1, true, 1),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(end(&mut c, id, pid, epoch - 1, true, 3), PRODUCER_FENCED);
    assert_eq!(end(&mut c, id, pid, epoch, true, 3), 0);
    // Aborting what was just committed is INVALID_TXN_STATE; a retried commit succeeds.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let code = end(&mut c, id, pid, epoch, true, 3);
        if code == 0 {
            break;
        }
        // CONCURRENT_TRANSACTIONS (51) while the markers are being written.
        assert_eq!(code, 51, "a retried commit");
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(end(&mut c, id, pid, epoch, false, 3), INVALID_TXN_STATE);
    assert_eq!(
        describe(&mut c, id).transaction_state.as_str(),
        "CompleteCommit"
    );
    let ps = producers(&mut c);
    assert_eq!(ps[0].current_txn_start_offset, -1, "no open transaction");
    assert!(list(&mut c, &["Ongoing"]).is_empty());

    // transactional.id.expiration.ms (3 s here) later, the id is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = describe(&mut c, id);
        if d.error_code == TRANSACTIONAL_ID_NOT_FOUND {
            break;
        }
        assert_eq!(d.error_code, 0);
        assert!(Instant::now() < deadline, "the id did not expire: {d:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(list(&mut c, &[]).is_empty());
    // A new InitProducerId starts it over.
    assert_eq!(init(&mut c, id, 30_000).0, 0);
}
