//! The producer: per-partition batching with `linger` and `batch_size`, the Java
//! client's key partitioner, compression, acks and idempotence.
//!
//! `send` picks the partition and hands the record to a background task that owns the
//! accumulator. A batch closes when it reaches `batch_size` bytes, when its first
//! record has waited `linger`, or on `flush`. Closing a batch assigns its producer
//! sequence numbers (when idempotent) and encodes it once with `records::build_batch`;
//! a retry resends the same bytes.
//!
//! The task keeps up to `max_in_flight` produce requests in flight (Kafka's
//! `max.in.flight.requests.per.connection`, default 5). Requests to one broker share
//! one connection, and the task writes each request before it makes the next
//! (`Connection::start_call`), so they reach the broker in the order they were made;
//! only the waits for responses overlap.
//! A batch that fails with a retriable error goes back into its partition's queue in
//! the order it was closed, and the partition is muted (nothing more of it is sent)
//! until all its batches in flight have come back; later batches of that partition
//! that the broker refused as out of sequence are requeued too. The partition is then
//! resent in order, so with idempotence the broker's sequence checks keep the records
//! of a partition in the order they were sent. Without idempotence a retry may
//! reorder records when `max_in_flight > 1`, as with Kafka; set it to 1 to prevent it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages as m;
use kafka_protocol::ResponseError;
use runnel_protocol::record_batch::builder::{ProducerFields, Record as NewRecord};
use runnel_protocol::record_batch::{compute_crc, Compression, BATCH_HEADER_LEN, LOG_OVERHEAD};
use runnel_protocol::records::build_batch;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::client::{topic_name, Client};
use crate::error::{Error, Result};
use crate::partitioner::partition_for_key;
use crate::TopicPartition;

/// How many acknowledgements a produce request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// No response at all; offsets are reported as -1.
    None,
    /// The leader wrote the batch.
    Leader,
    /// All in-sync replicas have it (on Runnel: fsynced).
    All,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub acks: Acks,
    /// How long a batch waits for more records before it is sent.
    pub linger: Duration,
    /// A batch is sent once it holds this many bytes (estimated, uncompressed).
    pub batch_size: usize,
    pub compression: Compression,
    /// KIP-98 idempotence: needs `acks = All`.
    pub idempotence: bool,
    /// Attempts after the first for a batch that failed with a retriable error.
    pub retries: u32,
    pub retry_backoff: Duration,
    /// The produce request's `timeout_ms`.
    pub request_timeout: Duration,
    /// Upper bound for one produce request's record bytes (at least one batch is sent).
    pub max_request_size: usize,
    /// Records queued towards the background task before `send` waits.
    pub queue_capacity: usize,
    /// Produce requests in flight at once (`max.in.flight.requests.per.connection`).
    pub max_in_flight: usize,
    /// Ask the broker to create a missing topic (it decides, by its
    /// `auto.create.topics.enable`), as Java's producer always does.
    pub allow_auto_create_topics: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16 * 1024,
            compression: Compression::None,
            idempotence: true,
            retries: 10,
            retry_backoff: Duration::from_millis(100),
            request_timeout: Duration::from_secs(30),
            max_request_size: 1 << 20,
            queue_capacity: 10_000,
            max_in_flight: 5,
            allow_auto_create_topics: true,
        }
    }
}

/// A record to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    /// Explicit partition; otherwise chosen by key (murmur2) or sticky for keyless.
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    /// The value; a `Bytes`, so a caller sending one buffer many times shares it
    /// instead of copying it per record.
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// CreateTime in ms; now if `None`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            ..Default::default()
        }
    }
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }
    pub fn header(mut self, key: impl Into<String>, value: Option<Vec<u8>>) -> Self {
        self.headers.push((key.into(), value));
        self
    }
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

type Ack = oneshot::Sender<Result<(i32, i64)>>;

/// Commands the background task takes from its queue per wake-up.
const RECV_BURST: usize = 256;

/// Resolves to `(partition, offset)` once the record is acknowledged.
#[derive(Debug)]
#[must_use = "a Delivery reports whether the record was written"]
pub struct Delivery {
    rx: oneshot::Receiver<Result<(i32, i64)>>,
}

impl Future for Delivery {
    type Output = Result<(i32, i64)>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

impl Rec {
    fn size(&self) -> usize {
        21 + self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 4)
                .sum::<usize>()
    }
}

enum Cmd {
    Record(TopicPartition, Rec, Ack),
    Flush(oneshot::Sender<Result<()>>),
}

/// An asynchronous, batching producer.
pub struct Producer {
    client: Client,
    config: ProducerConfig,
    tx: Option<mpsc::Sender<Cmd>>,
    sticky: Mutex<HashMap<String, (i32, usize)>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.config)
            .finish()
    }
}

impl Producer {
    pub fn new(client: Client, config: ProducerConfig) -> Result<Producer> {
        if config.idempotence && config.acks != Acks::All {
            return Err(Error::Config("idempotence requires acks=all".into()));
        }
        if config.batch_size == 0 || config.queue_capacity == 0 || config.max_in_flight == 0 {
            return Err(Error::Config(
                "batch_size, queue_capacity and max_in_flight must be positive".into(),
            ));
        }
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let sender = SenderTask {
            client: client.clone(),
            config: config.clone(),
            open: HashMap::new(),
            ready: HashMap::new(),
            order: VecDeque::new(),
            next_seq: HashMap::new(),
            producer: None,
            init_error: None,
            leader_failures: 0,
            next_serial: 0,
            in_flight_batches: HashMap::new(),
            muted: HashSet::new(),
        };
        let task = tokio::spawn(sender.run(rx));
        Ok(Producer {
            client,
            config,
            tx: Some(tx),
            sticky: Mutex::new(HashMap::new()),
            task: Some(task),
        })
    }

    /// Send `value` with `key` and `headers` to `topic`; the partition comes from the
    /// key (murmur2) or, without a key, the sticky partitioner. Waits only while the
    /// queue is full; await the returned [`Delivery`] for `(partition, offset)`.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Result<Delivery> {
        self.send_record(ProducerRecord {
            topic: topic.to_string(),
            partition: None,
            key: key.map(<[u8]>::to_vec),
            value: value.map(Bytes::copy_from_slice),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
            timestamp: None,
        })
        .await
    }

    /// Send a [`ProducerRecord`].
    pub async fn send_record(&self, record: ProducerRecord) -> Result<Delivery> {
        let tx = self.tx.as_ref().ok_or(Error::Closed)?;
        let rec = Rec {
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp: record.timestamp.unwrap_or_else(now_ms),
        };
        let partition = match record.partition {
            Some(p) => {
                // Only to have a missing topic created; the leader lookup checks `p`.
                if self.config.allow_auto_create_topics {
                    self.partition_count(&record.topic).await?;
                }
                p
            }
            None => {
                let count = self.partition_count(&record.topic).await?;
                if count == 0 {
                    return Err(Error::Other(format!(
                        "topic {} has no partitions",
                        record.topic
                    )));
                }
                match &rec.key {
                    Some(k) => partition_for_key(k, count),
                    None => self.sticky_partition(&record.topic, count, rec.size()),
                }
            }
        };
        let (ack, rx) = oneshot::channel();
        tx.send(Cmd::Record(
            TopicPartition::new(record.topic, partition),
            rec,
            ack,
        ))
        .await
        .map_err(|_| Error::Closed)?;
        Ok(Delivery { rx })
    }

    /// The partition count of `topic` from the cache, or from the broker, which may
    /// auto-create it.
    async fn partition_count(&self, topic: &str) -> Result<i32> {
        match self.client.partition_count(topic).await {
            Err(e)
                if self.config.allow_auto_create_topics
                    && e.code() == Some(ResponseError::UnknownTopicOrPartition.code()) =>
            {
                Ok(self.client.auto_create_topic(topic).await?.partitions.len() as i32)
            }
            other => Ok(other? as i32),
        }
    }

    /// Kafka's sticky partitioning for keyless records: stay on one partition until
    /// about a batch worth of bytes went there, then move to the next.
    fn sticky_partition(&self, topic: &str, count: i32, size: usize) -> i32 {
        let mut sticky = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
        if !sticky.contains_key(topic) {
            let seed = sticky.len() as i32;
            sticky.insert(topic.to_string(), (seed % count, 0));
        }
        let Some(entry) = sticky.get_mut(topic) else {
            return 0;
        };
        if entry.1 >= self.config.batch_size {
            entry.0 = (entry.0 + 1) % count;
            entry.1 = 0;
        }
        entry.0 %= count;
        entry.1 += size;
        entry.0
    }

    /// Send everything queued and wait until all of it is acknowledged (or failed).
    pub async fn flush(&self) -> Result<()> {
        let tx = self.tx.as_ref().ok_or(Error::Closed)?;
        let (done, rx) = oneshot::channel();
        tx.send(Cmd::Flush(done)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Flush and stop the background task.
    pub async fn close(mut self) -> Result<()> {
        let result = self.flush().await;
        self.tx = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        result
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Dropping the sender lets the task send what is queued and exit.
        self.tx = None;
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Open {
    records: Vec<(Rec, Ack)>,
    bytes: usize,
    created: Instant,
}

struct Built {
    tp: TopicPartition,
    bytes: Bytes,
    acks: Vec<Ack>,
    attempts: u32,
    /// Order in which batches were closed (the same order as their sequences).
    serial: u64,
}

struct SenderTask {
    client: Client,
    config: ProducerConfig,
    open: HashMap<TopicPartition, Open>,
    /// Closed batches per partition, in sequence order.
    ready: HashMap<TopicPartition, VecDeque<Built>>,
    /// Partitions with ready batches, in the order they became ready (fairness).
    order: VecDeque<TopicPartition>,
    next_seq: HashMap<TopicPartition, i32>,
    producer: Option<(i64, i16)>,
    init_error: Option<String>,
    /// Consecutive failures to find a leader (bounded by `retries`).
    leader_failures: u32,
    next_serial: u64,
    /// Batches in flight per partition.
    in_flight_batches: HashMap<TopicPartition, usize>,
    /// Partitions with a batch waiting for a retry while others are still in flight:
    /// nothing of theirs is sent until those come back.
    muted: HashSet<TopicPartition>,
}

type Sent = (Vec<Built>, Result<Option<m::ProduceResponse>>);
type SentFuture = Pin<Box<dyn Future<Output = Sent> + Send>>;

/// Produce requests in flight, polled oldest first so that each one's write is queued on
/// the connection behind the previous one's.
#[derive(Default)]
struct InFlight {
    pending: VecDeque<SentFuture>,
    done: VecDeque<Sent>,
}

impl InFlight {
    fn len(&self) -> usize {
        self.pending.len() + self.done.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add a request and poll it once right away, so its write is queued before any
    /// request made after it.
    async fn push(&mut self, mut fut: SentFuture) {
        let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        match polled {
            Poll::Ready(sent) => self.done.push_back(sent),
            Poll::Pending => self.pending.push_back(fut),
        }
    }

    /// The next finished request (pending forever when there is none).
    fn next(&mut self) -> impl Future<Output = Sent> + '_ {
        std::future::poll_fn(move |cx| {
            if let Some(sent) = self.done.pop_front() {
                return Poll::Ready(sent);
            }
            let mut i = 0;
            while i < self.pending.len() {
                if let Poll::Ready(sent) = self.pending[i].as_mut().poll(cx) {
                    drop(self.pending.remove(i));
                    self.done.push_back(sent);
                } else {
                    i += 1;
                }
            }
            match self.done.pop_front() {
                Some(sent) => Poll::Ready(sent),
                None => Poll::Pending,
            }
        })
    }
}

impl SenderTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut inflight = InFlight::default();
        let mut flush_waiters: Vec<oneshot::Sender<Result<()>>> = Vec::new();
        let mut input_closed = false;
        let mut retry_after: Option<Instant> = None;
        if self.config.idempotence {
            let mut attempt = 0;
            loop {
                match self.ensure_producer_id().await {
                    Ok(()) => break,
                    Err(e) if e.is_retriable() && attempt < self.config.retries => {
                        attempt += 1;
                        tokio::time::sleep(self.config.retry_backoff).await;
                    }
                    Err(e) => {
                        tracing::warn!("InitProducerId failed: {e}");
                        self.init_error = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        loop {
            let linger_deadline = self
                .open
                .values()
                .map(|o| o.created + self.config.linger)
                .min();
            let wake = match (linger_deadline, retry_after) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                cmd = rx.recv(), if !input_closed => {
                    // Take what else is queued too, so the loop (and its timer) runs once
                    // per burst rather than once per record.
                    let mut next = cmd;
                    for taken in 1.. {
                        match next {
                            None => {
                                input_closed = true;
                                break;
                            }
                            Some(Cmd::Record(tp, rec, ack)) => self.add(tp, rec, ack),
                            Some(Cmd::Flush(done)) => flush_waiters.push(done),
                        }
                        if taken == RECV_BURST {
                            break;
                        }
                        next = match rx.try_recv() {
                            Ok(cmd) => Some(cmd),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => None,
                        };
                    }
                }
                _ = sleep_until(wake), if wake.is_some() => {}
                (batches, result) = inflight.next(), if !inflight.is_empty() => {
                    if self.complete(batches, result) {
                        retry_after = Some(Instant::now() + self.config.retry_backoff);
                    }
                }
            }
            let force = input_closed || !flush_waiters.is_empty();
            self.close_due(force);
            if retry_after.is_some_and(|t| t <= Instant::now()) {
                retry_after = None;
            }
            while inflight.len() < self.config.max_in_flight
                && retry_after.is_none()
                && self.order.iter().any(|tp| !self.muted.contains(tp))
            {
                match self.start_request().await {
                    Ok(Some(request)) => inflight.push(request).await,
                    Ok(None) => break,
                    Err(()) => retry_after = Some(Instant::now() + self.config.retry_backoff),
                }
            }
            let idle = inflight.is_empty() && self.open.is_empty() && self.order.is_empty();
            if idle {
                for w in flush_waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
                if input_closed {
                    break;
                }
            }
        }
    }

    fn add(&mut self, tp: TopicPartition, rec: Rec, ack: Ack) {
        let size = rec.size();
        if let Some(open) = self.open.get(&tp) {
            if open.bytes + size > self.config.batch_size && !open.records.is_empty() {
                self.close(&tp);
            }
        }
        let full = match self.open.get_mut(&tp) {
            Some(open) => {
                open.bytes += size;
                open.records.push((rec, ack));
                open.bytes >= self.config.batch_size
            }
            None => {
                let full = size >= self.config.batch_size;
                self.open.insert(
                    tp.clone(),
                    Open {
                        records: vec![(rec, ack)],
                        bytes: size,
                        created: Instant::now(),
                    },
                );
                full
            }
        };
        if full {
            self.close(&tp);
        }
    }

    fn close_due(&mut self, force: bool) {
        let now = Instant::now();
        let due: Vec<TopicPartition> = self
            .open
            .iter()
            .filter(|(_, o)| force || o.created + self.config.linger <= now)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in due {
            self.close(&tp);
        }
    }

    /// Encode the open batch of `tp` and queue it.
    fn close(&mut self, tp: &TopicPartition) {
        let Some(open) = self.open.remove(tp) else {
            return;
        };
        let (recs, acks): (Vec<Rec>, Vec<Ack>) = open.records.into_iter().unzip();
        if let Some(e) = &self.init_error {
            fail(acks, &Error::Other(format!("no producer id: {e}")));
            return;
        }
        let base_ts = recs.iter().map(|r| r.timestamp).min().unwrap_or(0);
        let count = recs.len() as i32;
        let fields = match self.producer {
            Some((id, epoch)) if self.config.idempotence => {
                let seq = self.next_seq.entry(tp.clone()).or_insert(0);
                let base_sequence = *seq;
                *seq = seq.wrapping_add(count) & i32::MAX;
                ProducerFields {
                    producer_id: id,
                    producer_epoch: epoch,
                    base_sequence,
                }
            }
            _ => ProducerFields::NONE,
        };
        if self.config.compression == Compression::None {
            let bytes = encode_uncompressed(base_ts, &recs, fields);
            self.queue_built(tp, bytes, acks);
            return;
        }
        let new_records: Vec<NewRecord<'_>> = recs
            .iter()
            .map(|r| NewRecord {
                timestamp_delta: r.timestamp - base_ts,
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_deref()))
                    .collect(),
            })
            .collect();
        match build_batch(self.config.compression, base_ts, &new_records, fields) {
            Ok(bytes) => self.queue_built(tp, bytes, acks),
            Err(e) => {
                for a in acks {
                    let _ = a.send(Err(Error::Other(format!("building batch: {e}"))));
                }
            }
        }
    }

    fn queue_built(&mut self, tp: &TopicPartition, bytes: Vec<u8>, acks: Vec<Ack>) {
        let queue = self.ready.entry(tp.clone()).or_default();
        if queue.is_empty() {
            self.order.push_back(tp.clone());
        }
        queue.push_back(Built {
            tp: tp.clone(),
            bytes: Bytes::from(bytes),
            acks,
            attempts: 0,
            serial: self.next_serial,
        });
        self.next_serial += 1;
    }

    async fn ensure_producer_id(&mut self) -> Result<()> {
        if !self.config.idempotence || self.producer.is_some() {
            return Ok(());
        }
        let response: m::InitProducerIdResponse = self
            .client
            .call(
                m::InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id(m::ProducerId(-1))
                    .with_producer_epoch(-1),
            )
            .await?;
        crate::error::check(response.error_code, None, || "InitProducerId".into())?;
        self.producer = Some((response.producer_id.0, response.producer_epoch));
        Ok(())
    }

    /// Take the head batch of each ready partition led by the same broker and send them
    /// in one request.
    /// `Err(())`: try again after the retry backoff (metadata unavailable).
    async fn start_request(&mut self) -> Result<Option<SentFuture>, ()> {
        let Some(first) = self
            .order
            .iter()
            .find(|tp| !self.muted.contains(*tp))
            .cloned()
        else {
            return Ok(None);
        };
        let leader = match self.client.leader(&first.topic, first.partition).await {
            Ok(l) => l,
            Err(e) if e.is_retriable() && self.leader_failures < self.config.retries => {
                tracing::debug!("no leader for {first:?} yet: {e}");
                self.leader_failures += 1;
                return Err(());
            }
            Err(e) => {
                self.leader_failures = 0;
                self.fail_partition(&first, &e);
                return Ok(None);
            }
        };
        self.leader_failures = 0;
        let mut batches = Vec::new();
        let mut total = 0usize;
        let mut rotate = Vec::new();
        while let Some(tp) = self.order.pop_front() {
            if self.muted.contains(&tp) {
                rotate.push(tp);
                continue;
            }
            let same_leader = tp == first
                || self.client.leader(&tp.topic, tp.partition).await.ok() == Some(leader);
            if !same_leader
                || (total > 0 && total + self.head_len(&tp) > self.config.max_request_size)
            {
                rotate.push(tp);
                continue;
            }
            let Some(queue) = self.ready.get_mut(&tp) else {
                continue;
            };
            let Some(batch) = queue.pop_front() else {
                self.ready.remove(&tp);
                continue;
            };
            total += batch.bytes.len();
            if queue.is_empty() {
                self.ready.remove(&tp);
            } else {
                rotate.push(tp.clone());
            }
            *self.in_flight_batches.entry(tp).or_insert(0) += 1;
            batches.push(batch);
        }
        self.order.extend(rotate);
        if batches.is_empty() {
            return Ok(None);
        }
        let mut by_topic: HashMap<String, Vec<m::produce_request::PartitionProduceData>> =
            HashMap::new();
        for b in &batches {
            by_topic.entry(b.tp.topic.clone()).or_default().push(
                m::produce_request::PartitionProduceData::default()
                    .with_index(b.tp.partition)
                    .with_records(Some(b.bytes.clone())),
            );
        }
        let request = m::ProduceRequest::default()
            .with_transactional_id(None)
            .with_acks(self.config.acks.wire())
            .with_timeout_ms(
                self.config
                    .request_timeout
                    .as_millis()
                    .min(i32::MAX as u128) as i32,
            )
            .with_topic_data(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        m::produce_request::TopicProduceData::default()
                            .with_name(topic_name(&t))
                            .with_partition_data(ps)
                    })
                    .collect(),
            );
        // Write the request here, before the next one is made: a partition's batches
        // must reach the broker in sequence order.
        let started = match self.client.node_connection(leader).await {
            Err(e) => Err(e),
            Ok(conn) if self.config.acks == Acks::None => {
                conn.send_no_response(request).await.map(|()| None)
            }
            Ok(conn) => conn
                .start_call::<m::ProduceResponse>(request)
                .await
                .map(Some),
        };
        Ok(Some(Box::pin(async move {
            let result = match started {
                Err(e) => Err(e),
                Ok(None) => Ok(None),
                Ok(Some(response)) => response.await.map(Some),
            };
            (batches, result)
        })))
    }

    fn head_len(&self, tp: &TopicPartition) -> usize {
        self.ready
            .get(tp)
            .and_then(|q| q.front())
            .map_or(0, |b| b.bytes.len())
    }

    fn fail_partition(&mut self, tp: &TopicPartition, e: &Error) {
        self.order.retain(|t| t != tp);
        if let Some(queue) = self.ready.remove(tp) {
            for b in queue {
                fail(b.acks, e);
            }
        }
    }

    /// Put a batch back into its partition's queue, in the order batches were closed,
    /// and mute the partition while others of its batches are in flight.
    fn requeue(&mut self, mut batch: Built, count_attempt: bool) {
        if count_attempt {
            batch.attempts += 1;
        }
        let tp = batch.tp.clone();
        if self.in_flight_batches.contains_key(&tp) {
            self.muted.insert(tp.clone());
        }
        let queue = self.ready.entry(tp.clone()).or_default();
        if queue.is_empty() {
            self.order.retain(|t| *t != tp);
            self.order.push_front(tp);
        }
        let at = queue.partition_point(|b| b.serial < batch.serial);
        queue.insert(at, batch);
    }

    /// A batch came back: count it out of flight, and unmute its partition once none
    /// of its batches are in flight.
    fn returned(&mut self, tp: &TopicPartition) {
        if let Some(n) = self.in_flight_batches.get_mut(tp) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight_batches.remove(tp);
                self.muted.remove(tp);
            }
        }
    }

    /// Whether an earlier batch of `batch`'s partition is waiting for a retry (then an
    /// out-of-sequence refusal of `batch` is expected and it is resent after it).
    fn behind_retry(&self, batch: &Built) -> bool {
        self.ready
            .get(&batch.tp)
            .and_then(|q| q.front())
            .is_some_and(|b| b.serial < batch.serial)
    }

    /// Handle a finished request. Returns whether something must be retried.
    fn complete(
        &mut self,
        batches: Vec<Built>,
        result: Result<Option<m::ProduceResponse>>,
    ) -> bool {
        let mut retry = false;
        for b in &batches {
            self.returned(&b.tp);
        }
        match result {
            Ok(None) => {
                for b in batches {
                    let p = b.tp.partition;
                    for a in b.acks {
                        let _ = a.send(Ok((p, -1)));
                    }
                }
            }
            Err(e) => {
                // Requeue in reverse so each partition's head stays the oldest batch.
                for b in batches.into_iter().rev() {
                    if e.is_retriable() && b.attempts < self.config.retries {
                        retry = true;
                        self.requeue(b, true);
                    } else {
                        fail(b.acks, &e);
                    }
                }
            }
            Ok(Some(response)) => {
                for b in batches.into_iter().rev() {
                    let found = response
                        .responses
                        .iter()
                        .filter(|t| t.name.0.as_str() == b.tp.topic)
                        .flat_map(|t| t.partition_responses.iter())
                        .find(|p| p.index == b.tp.partition);
                    let Some(p) = found else {
                        fail(
                            b.acks,
                            &Error::Protocol(format!("no produce response for {:?}", b.tp)),
                        );
                        continue;
                    };
                    let code = p.error_code;
                    if code == 0 || code == ResponseError::DuplicateSequenceNumber.code() {
                        let partition = b.tp.partition;
                        for (i, a) in b.acks.into_iter().enumerate() {
                            let offset = if code == 0 {
                                p.base_offset + i as i64
                            } else {
                                -1
                            };
                            let _ = a.send(Ok((partition, offset)));
                        }
                        continue;
                    }
                    if code == ResponseError::OutOfOrderSequenceNumber.code()
                        && self.behind_retry(&b)
                    {
                        // An earlier batch failed and is queued again: resend after it.
                        retry = true;
                        self.requeue(b, false);
                        continue;
                    }
                    let e = Error::Kafka {
                        code,
                        context: format!("produce to {}-{}", b.tp.topic, b.tp.partition),
                        message: p.error_message.as_ref().map(|m| m.to_string()),
                    };
                    if matches!(
                        e.kafka_error(),
                        Some(
                            ResponseError::NotLeaderOrFollower
                                | ResponseError::UnknownTopicOrPartition
                        )
                    ) {
                        self.client.invalidate(&b.tp.topic);
                    }
                    if e.is_retriable() && b.attempts < self.config.retries {
                        retry = true;
                        self.requeue(b, true);
                    } else {
                        fail(b.acks, &e);
                    }
                }
            }
        }
        retry
    }
}

fn fail(acks: Vec<Ack>, e: &Error) {
    for a in acks {
        let _ = a.send(Err(clone_error(e)));
    }
}

fn clone_error(e: &Error) -> Error {
    match e {
        Error::Kafka {
            code,
            context,
            message,
        } => Error::Kafka {
            code: *code,
            context: context.clone(),
            message: message.clone(),
        },
        Error::Timeout(d) => Error::Timeout(*d),
        Error::Closed => Error::Closed,
        other => Error::Other(other.to_string()),
    }
}

fn varint_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z & !0x7f != 0 {
        z >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    // Zigzag, as Kafka's ByteUtils.writeVarlong.
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z & !0x7f != 0 {
        out.push(((z & 0x7f) | 0x80) as u8);
        z >>= 7;
    }
    out.push(z as u8);
}

fn bytes_len(b: Option<&[u8]>) -> usize {
    b.map_or(1, |b| varint_len(b.len() as i64) + b.len())
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Encode an uncompressed v2 batch in one pass into one allocation: the same bytes as
/// `records::build_batch(Compression::None, ..)`, without its intermediate buffers.
/// `recs` is not empty.
fn encode_uncompressed(base_ts: i64, recs: &[Rec], producer: ProducerFields) -> Vec<u8> {
    let body_len = |i: usize, r: &Rec| -> usize {
        1 + varint_len(r.timestamp - base_ts)
            + varint_len(i as i64)
            + bytes_len(r.key.as_deref())
            + bytes_len(r.value.as_deref())
            + varint_len(r.headers.len() as i64)
            + r.headers
                .iter()
                .map(|(k, v)| bytes_len(Some(k.as_bytes())) + bytes_len(v.as_deref()))
                .sum::<usize>()
    };
    let section: usize = recs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let n = body_len(i, r);
            varint_len(n as i64) + n
        })
        .sum();
    let total = BATCH_HEADER_LEN + section;
    let count = recs.len() as i32;
    let max_ts = recs.iter().map(|r| r.timestamp).max().unwrap_or(base_ts);
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset: the broker assigns it
    b.extend_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // CRC, filled in below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes: no compression, CreateTime
    b.extend_from_slice(&(count - 1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&producer.producer_id.to_be_bytes());
    b.extend_from_slice(&producer.producer_epoch.to_be_bytes());
    b.extend_from_slice(&producer.base_sequence.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    for (i, r) in recs.iter().enumerate() {
        put_varint(&mut b, body_len(i, r) as i64);
        b.push(0); // record attributes
        put_varint(&mut b, r.timestamp - base_ts);
        put_varint(&mut b, i as i64);
        put_bytes(&mut b, r.key.as_deref());
        put_bytes(&mut b, r.value.as_deref());
        put_varint(&mut b, r.headers.len() as i64);
        for (k, v) in &r.headers {
            put_bytes(&mut b, Some(k.as_bytes()));
            put_bytes(&mut b, v.as_deref());
        }
    }
    debug_assert_eq!(b.len(), total);
    let crc = compute_crc(&b);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Offset of the CRC in a v2 batch header.
const CRC_AT: usize = 17;

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        ts: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Rec {
        Rec {
            key: key.map(<[u8]>::to_vec),
            value: value.map(Bytes::copy_from_slice),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
            timestamp: ts,
        }
    }

    /// The one-pass encoder writes exactly what `build_batch` writes.
    #[test]
    fn uncompressed_batch_matches_build_batch() {
        let big = vec![7u8; 300];
        let recs = vec![
            rec(1_000, Some(b"k"), Some(b"v"), &[]),
            rec(900, None, Some(&big), &[("h", Some(b"x")), ("n", None)]),
            rec(1_000_000, Some(b""), None, &[]),
        ];
        for fields in [
            ProducerFields::NONE,
            ProducerFields {
                producer_id: 42,
                producer_epoch: 3,
                base_sequence: 1000,
            },
        ] {
            let base = 900;
            let ours = encode_uncompressed(base, &recs, fields);
            let new: Vec<NewRecord<'_>> = recs
                .iter()
                .map(|r| NewRecord {
                    timestamp_delta: r.timestamp - base,
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                    headers: r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_deref()))
                        .collect(),
                })
                .collect();
            let theirs = build_batch(Compression::None, base, &new, fields).unwrap();
            assert_eq!(ours, theirs);
        }
    }
}
