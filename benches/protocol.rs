//! Protocol hot paths: decoding a 1 MiB Produce request (and validating its batches
//! the way the broker does, without decompressing), and encoding a Fetch response that
//! carries 1 MiB of record batches.
//!
//! `cargo bench --bench protocol`; CI runs it once with `cargo test --bench protocol`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages as m;
use runnel_protocol::api::{
    decode_request, encode_request, encode_response_into, ApiKey, RequestBody, RequestHeader,
    ResponseBody, StrBytes,
};
use runnel_protocol::record_batch::builder::batch_of_values;
use runnel_protocol::record_batch::{validate_batch, Strictness};
use runnel_protocol::response_parts::{encode_fetch_response_parts, ExternalRecords};

const PARTITIONS: i32 = 8;
/// Records of 1000 bytes; 16 KiB batches as a producer with default batch.size sends.
const RECORDS_PER_BATCH: usize = 16;

/// One partition's records: `batches` 16 KiB batches back to back.
fn record_set(batches: usize) -> Bytes {
    let value = vec![b'x'; 1000];
    let mut out = Vec::new();
    for i in 0..batches {
        let mut b = batch_of_values(1_700_000_000_000 + i as i64, RECORDS_PER_BATCH, &value);
        // Distinct base offsets, as in a fetch response.
        b[..8].copy_from_slice(&((i * RECORDS_PER_BATCH) as i64).to_be_bytes());
        out.extend_from_slice(&b);
    }
    Bytes::from(out)
}

/// A Produce v9 request of ~1 MiB: 8 partitions with one 128 KiB batch each (one batch
/// per partition, as Produce v3+ requires).
fn produce_request_frame() -> (Bytes, usize) {
    let value = vec![b'x'; 1000];
    let batch = Bytes::from(batch_of_values(1_700_000_000_000, 128, &value));
    let partitions = (0..PARTITIONS)
        .map(|p| {
            m::produce_request::PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(batch.clone()))
        })
        .collect();
    let body = m::ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![m::produce_request::TopicProduceData::default()
            .with_name(m::TopicName(StrBytes::from_static_str("bench")))
            .with_partition_data(partitions)]);
    let header = RequestHeader {
        api_key: ApiKey::Produce,
        api_version: 9,
        correlation_id: 7,
        client_id: Some(StrBytes::from_static_str("bench")),
    };
    let frame = encode_request(&header, &RequestBody::Produce(body)).expect("encode request");
    let records = batch.len() * PARTITIONS as usize;
    // The broker decodes the frame without its 4-byte size prefix.
    (frame.slice(4..), records)
}

fn produce_decode(c: &mut Criterion) {
    let (frame, _) = produce_request_frame();
    let mut g = c.benchmark_group("produce_request");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("decode_1MiB", |b| {
        b.iter(|| {
            let request = decode_request(frame.clone()).expect("decode");
            std::hint::black_box(request);
        })
    });
    g.bench_function("decode_and_validate_1MiB", |b| {
        b.iter(|| {
            let request = decode_request(frame.clone()).expect("decode");
            let RequestBody::Produce(p) = request.body else {
                panic!("not a produce request");
            };
            let mut n = 0;
            for t in &p.topic_data {
                for part in &t.partition_data {
                    let records = part.records.as_ref().expect("records");
                    let h = validate_batch(records, Strictness::Produce).expect("valid batch");
                    n += h.record_count;
                }
            }
            std::hint::black_box(n);
        })
    });
    g.finish();
}

/// A Fetch v12 response with 8 partitions × 128 KiB of stored batches (1 MiB), encoded
/// into a reused buffer, as the broker's writer does.
fn fetch_encode(c: &mut Criterion) {
    let records = record_set(8);
    let partition = |p: i32, records: Option<Bytes>| {
        m::fetch_response::PartitionData::default()
            .with_partition_index(p)
            .with_high_watermark(1 << 20)
            .with_last_stable_offset(1 << 20)
            .with_log_start_offset(0)
            .with_records(records)
    };
    let partitions: Vec<m::fetch_response::PartitionData> = (0..PARTITIONS)
        .map(|p| partition(p, Some(records.clone())))
        .collect();
    let body = ResponseBody::Fetch(m::FetchResponse::default().with_responses(
        vec![m::fetch_response::FetchableTopicResponse::default()
            .with_topic(m::TopicName(StrBytes::from_static_str("bench")))
            .with_partitions(partitions)],
    ));
    let total = records.len() as u64 * PARTITIONS as u64;
    let mut g = c.benchmark_group("fetch_response");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes(total));
    for version in [4i16, 12] {
        let header = RequestHeader {
            api_key: ApiKey::Fetch,
            api_version: version,
            correlation_id: 7,
            client_id: None,
        };
        let mut buf = BytesMut::with_capacity(total as usize + 4096);
        g.bench_function(format!("encode_1MiB_v{version}"), |b| {
            b.iter(|| {
                buf.clear();
                encode_response_into(&header, &body, &mut buf).expect("encode");
                std::hint::black_box(buf.len());
            })
        });
        // What the broker does: record sets stay where they are (stand-ins here; the
        // server sends the segment files with sendfile), only the rest is encoded.
        g.bench_function(format!("encode_parts_1MiB_v{version}"), |b| {
            b.iter(|| {
                let mut external = ExternalRecords::new();
                let partitions = (0..PARTITIONS)
                    .map(|p| partition(p, external.stand_in(records.clone(), records.len())))
                    .collect();
                let body = m::FetchResponse::default().with_responses(vec![
                    m::fetch_response::FetchableTopicResponse::default()
                        .with_topic(m::TopicName(StrBytes::from_static_str("bench")))
                        .with_partitions(partitions),
                ]);
                let parts = encode_fetch_response_parts(&header, &body, external).expect("encode");
                std::hint::black_box(parts.len());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, produce_decode, fetch_encode);
criterion_main!(benches);
