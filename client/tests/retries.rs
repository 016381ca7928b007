//! Idempotent retries keep order: a proxy between client and broker cuts connections
//! after the broker has appended but before the client got the response, so the
//! producer must resend the same batches and the broker must deduplicate them.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use runnel_client::{
    Acks, Admin, Client, Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use support::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forward connections to `upstream`; each time the bytes sent back to clients cross
/// another `every` bytes (up to `cuts` times), drop that connection mid-response.
async fn cutting_proxy(
    listener: TcpListener,
    upstream: String,
    every: usize,
    cuts: usize,
) -> Arc<AtomicUsize> {
    let done = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let done_out = done.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
            });
            let (done, total) = (done.clone(), total.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let before = total.fetch_add(n, Ordering::SeqCst);
                    let crossed = (before + n) / every > before / every;
                    if crossed && done.load(Ordering::SeqCst) < cuts {
                        done.fetch_add(1, Ordering::SeqCst);
                        // Forward part of the chunk, then drop both directions.
                        let _ = cw.write_all(&buf[..n / 2]).await;
                        return;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    done_out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_cut_connections_keep_order_without_duplicates() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap().to_string();
    let broker = Broker::start_with(&["--advertised-listener", &proxy_addr]);
    let cuts = cutting_proxy(listener, broker.addr.clone(), 4000, 4).await;

    let direct = Client::bootstrap(&broker.addr).await.unwrap();
    Admin::new(direct.clone())
        .create_topic("cut", 2)
        .await
        .unwrap();

    let via_proxy = Client::bootstrap(&proxy_addr).await.unwrap();
    let producer = Producer::new(
        via_proxy,
        ProducerConfig {
            acks: Acks::All,
            idempotence: true,
            batch_size: 512,
            linger: Duration::from_millis(1),
            retry_backoff: Duration::from_millis(20),
            ..ProducerConfig::default()
        },
    )
    .unwrap();
    const N: usize = 4000;
    let mut ds = Vec::new();
    for i in 0..N {
        let r = ProducerRecord::new("cut")
            .key(format!("k{}", i % 16))
            .value(format!("{i}"));
        ds.push(producer.send_record(r).await.unwrap());
    }
    producer.flush().await.unwrap();
    let mut by_offset = BTreeMap::new();
    for (i, d) in ds.into_iter().enumerate() {
        let (p, offset) = d.await.unwrap_or_else(|e| panic!("record {i}: {e}"));
        if offset >= 0 {
            assert!(by_offset.insert((p, offset), i).is_none());
        }
    }
    assert!(
        cuts.load(Ordering::SeqCst) >= 2,
        "the proxy cut connections"
    );

    let mut consumer = Consumer::new(
        direct,
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign([TopicPartition::new("cut", 0), TopicPartition::new("cut", 1)]);
    let mut got: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count < N {
        assert!(tokio::time::Instant::now() < deadline, "got {count} of {N}");
        for r in consumer.poll(Duration::from_millis(300)).await.unwrap() {
            let i: usize = std::str::from_utf8(r.value.as_deref().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            if let Some(&sent) = by_offset.get(&(r.partition, r.offset)) {
                assert_eq!(sent, i, "delivery report offset matches the log");
            }
            got.entry(r.partition).or_default().push(i);
            count += 1;
        }
    }
    assert!(
        consumer
            .poll(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty(),
        "duplicates"
    );
    let mut all: Vec<usize> = got.values().flatten().copied().collect();
    for (p, seq) in &got {
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "partition {p} out of send order"
        );
    }
    all.sort();
    assert_eq!(all, (0..N).collect::<Vec<_>>(), "every record exactly once");
}
