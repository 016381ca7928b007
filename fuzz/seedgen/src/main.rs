//! Writes the committed seed corpus, `fuzz/seeds/<target>/`, by encoding real values
//! with the broker's own encoders (or, for AMQP frames, bytes laid out by the spec and
//! checked against the decoder). Every seed is checked to decode as intended before it
//! is written, so a format change that breaks a seed fails here.
//!
//!     cd fuzz && cargo run -p runnel-fuzz-seedgen -- seeds

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages as m;
use kafka_protocol::protocol::StrBytes;
use runnel_coordinator::group::records as g;
use runnel_coordinator::txn::records as t;
use runnel_protocol::api::{decode_request, encode_request, RequestBody, RequestHeader};
use runnel_protocol::frame::SIZE_PREFIX_LEN;
use runnel_records::compression::{compress, decompress};
use runnel_records::record_batch::builder::{ProducerFields, Record};
use runnel_records::record_batch::{validate_batch, BatchHeader, Compression, Strictness};
use runnel_records::records::{batch_records, build_batch};
use runnel_storage::producer_state::ProducerStateManager;
use runnel_storage::txn_index::AbortedTxn;
use tokio_util::codec::Decoder;
use uuid::Uuid;

struct Seeds {
    root: PathBuf,
    count: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("create the seed directory");
        fs::write(dir.join(name), bytes).expect("write a seed");
        self.count += 1;
    }
}

fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| "seeds".into());
    let mut seeds = Seeds {
        root: Path::new(&root).to_path_buf(),
        count: 0,
    };
    let batches = record_batches(&mut seeds);
    request_decode(&mut seeds, &batches);
    decompress_seeds(&mut seeds);
    coordinator_records(&mut seeds);
    storage_state(&mut seeds);
    sasl(&mut seeds);
    amqp_frame(&mut seeds);
    println!("wrote {} seeds under {root}", seeds.count);
}

const CODECS: [(Compression, &str); 5] = [
    (Compression::None, "none"),
    (Compression::Gzip, "gzip"),
    (Compression::Snappy, "snappy"),
    (Compression::Lz4, "lz4"),
    (Compression::Zstd, "zstd"),
];

/// Batches of every codec, plain, idempotent and transactional; all validate.
fn record_batches(seeds: &mut Seeds) -> Vec<Vec<u8>> {
    let records = [
        Record {
            timestamp_delta: 0,
            key: Some(b"key-1"),
            value: Some(b"value one"),
            headers: vec![("h", Some(b"v".as_slice())), ("null", None)],
        },
        Record {
            timestamp_delta: 5,
            key: None,
            value: Some(b"value two, a little longer than the first"),
            headers: vec![],
        },
        Record {
            timestamp_delta: 9,
            key: Some(b"tombstone"),
            value: None,
            headers: vec![],
        },
    ];
    let mut out = Vec::new();
    for (codec, name) in CODECS {
        for (kind, producer, transactional) in [
            ("plain", ProducerFields::NONE, false),
            (
                "idempotent",
                ProducerFields {
                    producer_id: 7,
                    producer_epoch: 0,
                    base_sequence: 0,
                },
                false,
            ),
            (
                "txn",
                ProducerFields {
                    producer_id: 8,
                    producer_epoch: 2,
                    base_sequence: 10,
                },
                true,
            ),
        ] {
            let mut batch =
                build_batch(codec, 1_700_000_000_000, &records, producer).expect("build");
            if transactional {
                set_transactional(&mut batch);
            }
            validate_batch(&batch, Strictness::Produce).expect("a valid batch");
            let decoded = batch_records(&batch, 1 << 20).expect("records");
            assert_eq!(decoded.records().count(), records.len());
            seeds.put("record_batch", &format!("{name}-{kind}"), &batch);
            out.push(batch);
        }
    }
    // Two batches back to back, as a fetch response or a segment holds them.
    let two = [out[0].clone(), out[4].clone()].concat();
    seeds.put("record_batch", "two-batches", &two);
    out
}

/// Set the transactional attribute and fix the CRC.
fn set_transactional(batch: &mut [u8]) {
    const ATTRIBUTES: usize = 21;
    batch[ATTRIBUTES + 1] |= 0x10;
    let crc = runnel_records::record_batch::compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn request_decode(seeds: &mut Seeds, batches: &[Vec<u8>]) {
    let topic = m::TopicName(sb("orders"));
    let bodies: Vec<(&str, i16, RequestBody)> = vec![
        (
            "api-versions",
            3,
            m::ApiVersionsRequest::default()
                .with_client_software_name(sb("librdkafka"))
                .with_client_software_version(sb("2.3.0"))
                .into(),
        ),
        (
            "api-versions-v0",
            0,
            m::ApiVersionsRequest::default().into(),
        ),
        (
            "metadata",
            12,
            m::MetadataRequest::default()
                .with_topics(Some(vec![
                    m::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(topic.clone())),
                ]))
                .into(),
        ),
        (
            "produce",
            9,
            m::ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![m::produce_request::TopicProduceData::default()
                    .with_name(topic.clone())
                    .with_partition_data(vec![
                        m::produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from(batches[4].clone()))),
                    ])])
                .into(),
        ),
        (
            "produce-v3",
            3,
            m::ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![m::produce_request::TopicProduceData::default()
                    .with_name(topic.clone())
                    .with_partition_data(vec![
                        m::produce_request::PartitionProduceData::default()
                            .with_index(1)
                            .with_records(Some(Bytes::from(batches[0].clone()))),
                    ])])
                .into(),
        ),
        (
            "fetch",
            12,
            m::FetchRequest::default()
                .with_max_wait_ms(500)
                .with_max_bytes(1 << 20)
                .with_topics(vec![m::fetch_request::FetchTopic::default()
                    .with_topic(topic.clone())
                    .with_partitions(vec![m::fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(42)
                        .with_partition_max_bytes(1 << 20)])])
                .into(),
        ),
        (
            "find-coordinator",
            4,
            m::FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![sb("txn-1")])
                .into(),
        ),
        (
            "join-group",
            9,
            m::JoinGroupRequest::default()
                .with_group_id(m::GroupId(sb("group-1")))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(30_000)
                .with_protocol_type(sb("consumer"))
                .with_protocols(vec![
                    m::join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(sb("range"))
                        .with_metadata(Bytes::from_static(
                            b"\x00\x01\x00\x00\x00\x01\x00\x06orders\xff\xff\xff\xff",
                        )),
                ])
                .into(),
        ),
        (
            "sasl-handshake",
            1,
            m::SaslHandshakeRequest::default()
                .with_mechanism(sb("SCRAM-SHA-256"))
                .into(),
        ),
        (
            "sasl-authenticate",
            2,
            m::SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"))
                .into(),
        ),
        (
            "init-producer-id",
            5,
            m::InitProducerIdRequest::default()
                .with_transactional_id(Some(m::TransactionalId(sb("txn-1"))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(m::ProducerId(-1))
                .with_producer_epoch(-1)
                .into(),
        ),
        (
            "offset-commit",
            9,
            m::OffsetCommitRequest::default()
                .with_group_id(m::GroupId(sb("group-1")))
                .with_generation_id_or_member_epoch(3)
                .with_member_id(sb("member-1"))
                .with_topics(vec![
                    m::offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic.clone())
                        .with_partitions(vec![
                            m::offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(100),
                        ]),
                ])
                .into(),
        ),
        (
            "consumer-group-heartbeat",
            0,
            m::ConsumerGroupHeartbeatRequest::default()
                .with_group_id(m::GroupId(sb("group-2")))
                .with_member_id(sb("m"))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![topic.clone()]))
                .into(),
        ),
    ];
    for (i, (name, version, body)) in bodies.into_iter().enumerate() {
        let header = RequestHeader {
            api_key: body.api_key(),
            api_version: version,
            correlation_id: i as i32 + 1,
            client_id: Some(sb("seed-client")),
        };
        let framed = encode_request(&header, &body).expect("encode a request");
        let request = decode_request(framed.slice(SIZE_PREFIX_LEN..)).expect("decode a request");
        assert_eq!(request.body, body, "{name}");
        // The fuzz target takes the input both as a stream of frames and as one body.
        seeds.put("request_decode", name, &framed);
    }
}

fn decompress_seeds(seeds: &mut Seeds) {
    let text = b"the quick brown fox jumps over the lazy dog; ".repeat(40);
    let zeros = vec![0u8; 1 << 20];
    for (i, (codec, name)) in CODECS.iter().skip(1).enumerate() {
        for (kind, data) in [
            ("empty", &[][..]),
            ("text", &text[..]),
            // Past the fuzz target's cap: a small decompression bomb.
            ("zeros-1mib", &zeros[..]),
        ] {
            let compressed = compress(*codec, data).expect("compress");
            let cap = if data.len() > 256 * 1024 {
                2 << 20
            } else {
                1 << 20
            };
            assert_eq!(decompress(*codec, &compressed, cap).as_deref(), Ok(data));
            let mut seed = vec![i as u8];
            seed.extend_from_slice(&compressed);
            seeds.put("decompress", &format!("{name}-{kind}"), &seed);
        }
    }
    // Raw snappy, as librdkafka writes it.
    let raw = snap::raw::Encoder::new()
        .compress_vec(&text)
        .expect("snappy");
    assert_eq!(
        decompress(Compression::Snappy, &raw, 1 << 20).as_deref(),
        Ok(&text[..])
    );
    seeds.put(
        "decompress",
        "snappy-raw-text",
        &[&[1u8][..], &raw].concat(),
    );
    // Two gzip members and two zstd frames, concatenated.
    for (i, codec, name) in [
        (0u8, Compression::Gzip, "gzip"),
        (3, Compression::Zstd, "zstd"),
    ] {
        let two = [
            compress(codec, b"first ").unwrap(),
            compress(codec, b"second").unwrap(),
        ]
        .concat();
        assert_eq!(
            decompress(codec, &two, 1024).as_deref(),
            Ok(&b"first second"[..])
        );
        seeds.put(
            "decompress",
            &format!("{name}-concatenated"),
            &[&[i][..], &two].concat(),
        );
    }
}

fn coordinator_records(seeds: &mut Seeds) {
    let id = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    let put = |seeds: &mut Seeds, name: &str, selector: u8, bytes: Vec<u8>| {
        seeds.put(
            "coordinator_records",
            name,
            &[&[selector][..], &bytes].concat(),
        );
    };
    for (name, key) in [
        ("key-offset", g::offset_key("group-1", "orders", 3)),
        ("key-group", g::group_key("group-1")),
        ("key-consumer-group", g::consumer_group_key("group-2")),
        ("key-member", g::consumer_member_key("group-2", "member-a")),
        (
            "key-target-meta",
            g::consumer_target_metadata_key("group-2"),
        ),
        (
            "key-target-member",
            g::consumer_target_member_key("group-2", "member-a"),
        ),
        (
            "key-current",
            g::consumer_current_assignment_key("group-2", "member-a"),
        ),
        ("key-regex", g::consumer_regex_key("group-2", "orders-.*")),
    ] {
        assert!(g::decode_key(&key).is_ok());
        put(seeds, name, 0, key);
    }
    let offset = g::OffsetValue {
        offset: 100,
        leader_epoch: 4,
        metadata: "meta".into(),
        commit_timestamp: 1_700_000_000_000,
        expire_timestamp: -1,
    };
    let v = g::encode_offset_value(&offset);
    assert_eq!(g::decode_offset_value(&v), Ok(offset));
    put(seeds, "offset-value", 1, v);
    let group = g::GroupValue {
        protocol_type: "consumer".into(),
        generation: 5,
        protocol: Some("range".into()),
        leader: Some("member-a".into()),
        current_state_timestamp: 1_700_000_000_000,
        members: vec![g::MemberValue {
            member_id: "member-a".into(),
            group_instance_id: Some("instance-1".into()),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 30_000,
            session_timeout_ms: 10_000,
            subscription: Bytes::from_static(b"\x00\x01\x00\x00\x00\x01\x00\x06orders"),
            assignment: Bytes::from_static(
                b"\x00\x01\x00\x00\x00\x01\x00\x06orders\x00\x00\x00\x01\x00\x00\x00\x00",
            ),
        }],
    };
    let v = g::encode_group_value(&group);
    assert_eq!(g::decode_group_value(&v), Ok(group));
    put(seeds, "group-value", 2, v);
    put(seeds, "epoch-value", 3, g::encode_epoch_value(7));
    let member = g::ConsumerMemberValue {
        instance_id: None,
        rack_id: Some("rack-1".into()),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        subscribed_topic_names: vec!["orders".into(), "payments".into()],
        subscribed_topic_regex: Some("orders-.*".into()),
        rebalance_timeout_ms: 30_000,
        server_assignor: Some("uniform".into()),
    };
    let v = g::encode_consumer_member_value(&member);
    assert_eq!(g::decode_consumer_member_value(&v), Ok(member));
    put(seeds, "member-value", 4, v);
    let tps = vec![(id, vec![0, 1, 2])];
    put(
        seeds,
        "target-member-value",
        5,
        g::encode_target_member_value(&tps),
    );
    let current = g::CurrentAssignmentValue {
        member_epoch: 3,
        previous_member_epoch: 2,
        state: 1,
        assigned: tps.clone(),
        pending_revocation: vec![(Uuid::nil(), vec![5])],
    };
    let v = g::encode_current_assignment_value(&current);
    assert_eq!(g::decode_current_assignment_value(&v), Ok(current));
    put(seeds, "current-assignment-value", 6, v);
    let regex = g::RegexValue {
        topics: vec!["orders-eu".into(), "orders-us".into()],
        version: 12,
        timestamp_ms: 1_700_000_000_000,
    };
    put(seeds, "regex-value", 7, g::encode_regex_value(&regex));
    put(
        seeds,
        "subscription",
        8,
        b"\x00\x01\x00\x00\x00\x02\x00\x06orders\x00\x08payments\xff\xff\xff\xff".to_vec(),
    );
    put(seeds, "txn-key", 9, t::encode_key("txn-1"));
    let mut partitions = t::TxnPartitions::new();
    partitions.insert("orders".into(), BTreeSet::from([0, 3]));
    partitions.insert("payments".into(), BTreeSet::from([1]));
    let value = t::TxnValue {
        producer_id: 1000,
        previous_producer_id: 999,
        next_producer_id: -1,
        producer_epoch: 3,
        timeout_ms: 60_000,
        state: t::TxnState::Ongoing,
        partitions,
        last_update_ms: 1_700_000_000_100,
        start_ms: 1_700_000_000_000,
        client_transaction_version: 2,
    };
    let v1 = t::encode_value(&value);
    assert_eq!(t::decode_value(&v1).as_ref(), Ok(&value));
    put(seeds, "txn-value-v1", 10, v1);
    let v0 = t::encode_value_v0(&value);
    assert!(t::decode_value(&v0).is_ok());
    put(seeds, "txn-value-v0", 10, v0);
}

fn storage_state(seeds: &mut Seeds) {
    // A state built the way the log builds it: by replaying batch headers.
    let mut state = ProducerStateManager::new();
    let mut offset = 0i64;
    for (pid, epoch, seqs, transactional) in [
        (7i64, 0i16, 0..6, false),
        (8, 2, 0..2, true),
        (9, 0, 0..1, false),
    ] {
        for seq in seqs {
            let records = [Record {
                value: Some(b"v"),
                ..Default::default()
            }];
            let producer = ProducerFields {
                producer_id: pid,
                producer_epoch: epoch,
                base_sequence: seq,
            };
            let mut batch =
                build_batch(Compression::None, 1_700_000_000_000, &records, producer).unwrap();
            if transactional {
                set_transactional(&mut batch);
            }
            batch[..8].copy_from_slice(&offset.to_be_bytes());
            let header = BatchHeader::parse(&batch).unwrap();
            state.replay(&header, None);
            offset += 1;
        }
    }
    let bytes = state.encode_snapshot(offset as u64);
    assert_eq!(
        ProducerStateManager::decode_snapshot(&bytes, offset as u64).as_ref(),
        Ok(&state)
    );
    seeds.put(
        "storage_state",
        "snapshot-three-producers",
        &[&[0u8][..], &bytes].concat(),
    );
    let empty = ProducerStateManager::new().encode_snapshot(0);
    seeds.put(
        "storage_state",
        "snapshot-empty",
        &[&[0u8][..], &empty].concat(),
    );
    let mut index = vec![1u8];
    for (pid, first, last) in [(8i64, 10u64, 14u64), (9, 12, 20), (8, 21, 30)] {
        let entry = AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: first,
        };
        assert_eq!(AbortedTxn::decode(&entry.encode()), Ok(entry));
        index.extend_from_slice(&entry.encode());
    }
    seeds.put("storage_state", "txnindex-three", &index);
    // A torn tail.
    index.extend_from_slice(&[0, 0, 0, 0, 0]);
    seeds.put("storage_state", "txnindex-torn", &index);
}

fn sasl(seeds: &mut Seeds) {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let sep = [0xFFu8];
    let mut put = |name: &str, selector: u8, tokens: &[&[u8]]| {
        let mut seed = vec![selector];
        for (i, t) in tokens.iter().enumerate() {
            if i > 0 {
                seed.extend_from_slice(&sep);
            }
            seed.extend_from_slice(t);
        }
        seeds.put("sasl", name, &seed);
    };
    put("plain", 0, &[b"\0alice\0alice-secret"]);
    put("plain-authzid", 0, &[b"alice\0alice\0wrong"]);
    put(
        "plain-connection-string",
        0,
        &[b"\0$ConnectionString\0Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=cHJpbWFyeQ==;EntityPath=orders"],
    );
    put(
        "plain-sas-token",
        0,
        &[b"\0$ConnectionString\0Endpoint=sb://ns.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=sb%3a%2f%2fns.servicebus.windows.net%2forders&sig=abc%3d&se=1800000000&skn=RootManageSharedAccessKey"],
    );
    let proof = STANDARD.encode([7u8; 32]);
    let proof512 = STANDARD.encode([7u8; 64]);
    let final256 = format!("c=biws,r=@,p={proof}");
    let final512 = format!("c=biws,r=@,p={proof512}");
    put(
        "scram-256",
        1,
        &[b"n,,n=alice,r=rOprNGfwEbeRWgbNEkqO", final256.as_bytes()],
    );
    put(
        "scram-512-authzid",
        2,
        &[
            b"n,a=alice,n=alice,r=rOprNGfwEbeRWgbNEkqO,ext=1",
            final512.as_bytes(),
        ],
    );
    put(
        "scram-unknown-user",
        1,
        &[b"y,,n=bob=2Cx=3D,r=abc", b"c=eSws,r=@,p=AAAA"],
    );
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let claims = URL_SAFE_NO_PAD
        .encode(br#"{"sub":"alice","exp":4102444800,"iat":1700000000,"scope":"a b"}"#);
    let token = format!("n,,\x01auth=Bearer {header}.{claims}.\x01\x01");
    let refused = format!("n,a=bob,\x01host=x\x01auth=Bearer {header}.e30.\x01\x01");
    put("oauthbearer", 3, &[token.as_bytes()]);
    put("oauthbearer-refused-ack", 3, &[refused.as_bytes(), b"\x01"]);
}

/// AMQP frames as the spec lays them out (performatives are described lists), each
/// checked against fe2o3-amqp's decoder.
fn amqp_frame(seeds: &mut Seeds) {
    fn frame(kind: u8, channel: u16, body: &[u8]) -> Vec<u8> {
        let mut out = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&[2, kind]);
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(body);
        out
    }
    /// A described list (descriptor ulong `code`) of already encoded fields.
    fn performative(code: u8, fields: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = fields.concat();
        let mut out = vec![
            0x00,
            0x53,
            code,
            0xc0,
            (body.len() + 1) as u8,
            fields.len() as u8,
        ];
        out.extend_from_slice(&body);
        out
    }
    fn str8(s: &str) -> Vec<u8> {
        [&[0xa1, s.len() as u8][..], s.as_bytes()].concat()
    }
    fn sym8(s: &str) -> Vec<u8> {
        [&[0xa3, s.len() as u8][..], s.as_bytes()].concat()
    }
    fn bin8(b: &[u8]) -> Vec<u8> {
        [&[0xa0, b.len() as u8][..], b].concat()
    }
    const NULL: &[u8] = &[0x40];
    const UINT0: &[u8] = &[0x43];
    const WINDOW: &[u8] = &[0x70, 0, 0, 0x08, 0];
    let header = b"AMQP\x00\x01\x00\x00";
    let open = frame(
        0,
        0,
        &performative(
            0x10,
            &[&str8("client-1"), &str8("ns.example"), &[0x70, 0, 1, 0, 0]],
        ),
    );
    let begin = frame(0, 0, &performative(0x11, &[NULL, UINT0, WINDOW, WINDOW]));
    let target = performative(0x29, &[&str8("orders")]);
    let source = performative(
        0x28,
        &[&str8("orders/ConsumerGroups/$Default/Partitions/0")],
    );
    let attach_sender = frame(
        0,
        0,
        &performative(
            0x12,
            &[&str8("link-1"), UINT0, &[0x42], NULL, NULL, NULL, &target],
        ),
    );
    let attach_receiver = frame(
        0,
        0,
        &performative(
            0x12,
            &[
                &str8("link-2"),
                &[0x52, 1],
                &[0x41],
                NULL,
                NULL,
                &source,
                NULL,
            ],
        ),
    );
    let flow = frame(
        0,
        0,
        &performative(
            0x13,
            &[
                UINT0,
                WINDOW,
                UINT0,
                WINDOW,
                UINT0,
                UINT0,
                &[0x70, 0, 0, 0, 100],
            ],
        ),
    );
    let message = [&[0x00, 0x53, 0x75][..], &bin8(b"hello")].concat();
    let transfer = frame(
        0,
        0,
        &[
            performative(0x14, &[UINT0, UINT0, &bin8(&[0]), UINT0]),
            message,
        ]
        .concat(),
    );
    let disposition = frame(
        0,
        0,
        &performative(
            0x15,
            &[&[0x41], UINT0, UINT0, &[0x41], &[0x00, 0x53, 0x24, 0x45]],
        ),
    );
    let detach = frame(0, 0, &performative(0x16, &[UINT0, &[0x41]]));
    let end = frame(0, 0, &[0x00, 0x53, 0x17, 0x45]);
    let close = frame(0, 0, &[0x00, 0x53, 0x18, 0x45]);
    let empty = frame(0, 0, &[]);
    let sasl_init = frame(
        1,
        0,
        &performative(0x41, &[&sym8("PLAIN"), &bin8(b"\0alice\0alice-secret")]),
    );
    let sasl_init_anon = frame(1, 0, &performative(0x41, &[&sym8("ANONYMOUS")]));
    let frames: Vec<(&str, Vec<u8>, u8)> = vec![
        ("open", open, 0),
        ("begin", begin, 0),
        ("attach-sender", attach_sender, 0),
        ("attach-receiver", attach_receiver, 0),
        ("flow", flow, 0),
        ("transfer", transfer, 0),
        ("disposition", disposition, 0),
        ("detach", detach, 0),
        ("end", end, 0),
        ("close", close, 0),
        ("empty", empty, 0),
        ("sasl-init-plain", sasl_init, 1),
        ("sasl-init-anonymous", sasl_init_anon, 1),
    ];
    let mut session = header.to_vec();
    for (name, bytes, kind) in &frames {
        let mut body = BytesMut::from(&bytes[4..]);
        let ok = if *kind == 0 {
            matches!(
                (fe2o3_amqp::frames::amqp::FrameDecoder {}).decode(&mut body),
                Ok(Some(_))
            )
        } else {
            matches!(
                (fe2o3_amqp::frames::sasl::FrameCodec {}).decode(&mut body),
                Ok(Some(_))
            )
        };
        assert!(ok, "the {name} seed frame does not decode");
        seeds.put("amqp_frame", name, &[&header[..], bytes].concat());
        if *kind == 0 {
            session.extend_from_slice(bytes);
        }
    }
    seeds.put("amqp_frame", "session", &session);
}
