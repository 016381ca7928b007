//! A full disk under the real broker, with real clients: the data directory on a small
//! tmpfs (we mount one when we can, i.e. as root), filled with a filler file so the test
//! is fast. Where mounting is not allowed, the `RUNNEL_FAULTS` seam makes the writes fail
//! with ENOSPC instead, and the test says so.
//!
//! Checked: produce is refused with KAFKA_STORAGE_ERROR (56) while the disk is full, and
//! nothing refused is acknowledged; reads (Fetch, ListOffsets, Metadata) and the group's
//! OffsetFetch keep working, and a commit either lands or gets a retriable error; the
//! broker logs the episode once and `runnel_log_dir_full` is 1; once space is freed the
//! next produce succeeds with no restart and the gauge is 0; after kill -9 every
//! acknowledged record is there exactly once, in order. The cleaner and retention running
//! out of space leave every record intact.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{self as m, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use runnel_client::{Connection, ConnectionConfig};
use runnel_protocol::api::{RequestBody, ResponseBody};
use runnel_protocol::record_batch::builder::batch_of_values;
use runnel_suite::{eventually, BrokerOptions, TestBroker};

const KAFKA_STORAGE_ERROR: i16 = 56;
const WAIT: Duration = Duration::from_secs(30);
const FULL_LINE: &str = "the log directory is full";
const SPACE_AGAIN_LINE: &str = "the log directory has space again";

/// A size-limited tmpfs mounted on a fresh directory; unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
    _root: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when mounting is not allowed (not root, no tmpfs).
    fn mount(size_mib: u64) -> Option<Tmpfs> {
        let root = tempfile::Builder::new()
            .prefix("runnel-diskfull-")
            .tempdir()
            .ok()?;
        let dir = root.path().join("mnt");
        std::fs::create_dir(&dir).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .ok()?;
        status.success().then_some(Tmpfs { dir, _root: root })
    }

    fn data_dir(&self) -> PathBuf {
        let d = self.dir.join("data");
        std::fs::create_dir_all(&d).expect("data dir on the tmpfs");
        d
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a broker that did not exit yet): detach it now, freed later.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn free_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("path");
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed struct for the kernel to fill.
    let r = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    assert_eq!(r, 0, "statvfs {}", dir.display());
    st.f_bavail as u64 * st.f_frsize as u64
}

/// Write a filler file on the filesystem of `dir` until at most `leave` bytes are free
/// (0: until the filesystem refuses more). Returns its path.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut f = File::create(&path).expect("create the filler");
    for chunk in [1 << 20, 64 << 10, 4 << 10] {
        let buf = vec![0xA5u8; chunk];
        while free_bytes(dir) >= leave + chunk as u64 || leave == 0 {
            if f.write_all(&buf).is_err() {
                break;
            }
        }
    }
    let _ = f.sync_all();
    path
}

/// `GET /metrics`: the value of each sample line.
fn scrape(broker: &TestBroker) -> HashMap<String, f64> {
    let addr = broker.metrics_addr().expect("metrics listener");
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn metric(broker: &TestBroker, name: &str) -> f64 {
    scrape(broker)
        .get(name)
        .copied()
        .unwrap_or_else(|| panic!("no {name} in the scrape"))
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

async fn create_topic(bootstrap: &str, name: &str, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let res = admin
        .create_topics([&topic], &opts)
        .await
        .expect("CreateTopics");
    assert!(res[0].is_ok(), "CreateTopics {name}: {:?}", res[0]);
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("retry.backoff.ms", "100")
        // KAFKA_STORAGE_ERROR is retriable: the client retries until this runs out.
        .set("message.timeout.ms", "4000")
        .create()
        .expect("producer")
}

fn value(run: &str, i: usize, len: usize) -> String {
    let mut v = format!("{run}-{i:06}-");
    while v.len() < len {
        v.push('x');
    }
    v
}

/// Produce `value(run, i)` for i from `from`, `window` at a time, until one fails or
/// `limit` are acknowledged. Returns the acknowledged (offset, value) in order, and the
/// first error.
async fn produce_until_refused(
    p: &FutureProducer,
    topic: &str,
    run: &str,
    len: usize,
    limit: usize,
) -> (Vec<(i64, String)>, Option<KafkaError>) {
    let window = 8;
    let mut acked = Vec::new();
    let mut i = 0;
    while acked.len() < limit {
        let values: Vec<String> = (i..i + window).map(|j| value(run, j, len)).collect();
        i += window;
        // Enqueued at once (one batch, as a producer under load sends), awaited after.
        let sends: Vec<_> = values
            .iter()
            .map(|v| {
                p.send_result(FutureRecord::<(), str>::to(topic).partition(0).payload(v))
                    .map_err(|(e, _)| e)
                    .expect("enqueue")
            })
            .collect();
        let mut first_error = None;
        for (v, r) in values.iter().zip(futures_join(sends).await) {
            match r.expect("delivery report") {
                Ok(d) => acked.push((d.offset, v.clone())),
                Err((e, _)) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_some() {
            acked.sort();
            return (acked, first_error);
        }
    }
    (acked, None)
}

async fn futures_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::with_capacity(fs.len());
    for f in fs {
        out.push(f.await);
    }
    out
}

/// Every record of partition 0 of `topic`, from the log start to the high watermark, as
/// (offset, value).
fn read_all(bootstrap: &str, topic: &str) -> Vec<(i64, String)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "disk-full-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", "1048576")
        .create()
        .expect("consumer");
    let (low, high) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("ListOffsets");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(low))
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut next = low;
    while next < high {
        let m = eventually(WAIT, "fetch the next record", || {
            c.poll(Duration::from_millis(200))
        })
        .expect("Fetch");
        let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
        out.push((m.offset(), v));
        next = m.offset() + 1;
    }
    out
}

/// A raw Produce of one large batch to partition 0: its error code.
async fn raw_produce(bootstrap: &str, topic: &str, len: usize) -> i16 {
    let conn = Connection::connect(bootstrap, ConnectionConfig::default())
        .await
        .expect("connect");
    let batch = batch_of_values(runnel_storage::now_ms(), 1, &vec![b'r'; len]);
    let req = m::ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![m::produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![
                m::produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch))),
            ])]);
    let ResponseBody::Produce(r) = conn
        .send_version(RequestBody::Produce(req), 9)
        .await
        .expect("Produce")
    else {
        panic!("not a Produce response")
    };
    r.responses[0].partition_responses[0].error_code
}

fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("group consumer")
}

fn commit(c: &BaseConsumer, topic: &str, offset: i64) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("tpl");
    c.commit(&tpl, CommitMode::Sync)
}

fn committed(c: &BaseConsumer, topic: &str) -> Option<i64> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("OffsetFetch");
    match got.find_partition(topic, 0).map(|e| e.offset()) {
        Some(Offset::Offset(o)) => Some(o),
        _ => None,
    }
}

/// Every acknowledged record in `log` exactly once, at its offset, in order; no value
/// twice in the log at all (idempotence).
fn check_acked(log: &[(i64, String)], acked: &[(i64, String)], what: &str) {
    let by_offset: HashMap<i64, &String> = log.iter().map(|(o, v)| (*o, v)).collect();
    let mut seen = HashSet::new();
    for (o, v) in log {
        assert!(
            seen.insert(v.as_str()),
            "{what}: {} appears twice (again at {o})",
            &v[..v.len().min(20)]
        );
    }
    let mut last = -1;
    for (o, v) in acked {
        assert!(
            *o > last,
            "{what}: acknowledged offsets out of order at {o}"
        );
        last = *o;
        assert_eq!(
            by_offset.get(o).map(|s| s.as_str()),
            Some(v.as_str()),
            "{what}: the record acknowledged at offset {o} is missing or different"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_produce_keeps_reads_and_resumes_without_a_restart() {
    const TOPIC: &str = "dfull";
    const GROUP: &str = "dfull-group";
    const LEN: usize = 4000;
    let tmpfs = Tmpfs::mount(48);
    let mut opts = BrokerOptions::default();
    match &tmpfs {
        Some(t) => opts.data_dir = Some(t.data_dir()),
        None => {
            eprintln!(
                "disk_full: cannot mount a tmpfs (not root?); falling back to the RUNNEL_FAULTS \
                 ENOSPC seam: writes of {TOPIC}-0 fail with ENOSPC from the 60th, 150 times"
            );
            opts.env.push((
                "RUNNEL_FAULTS".into(),
                format!("write:short:errno=ENOSPC:path={TOPIC}-0:nth=60:times=150"),
            ));
        }
    }
    let mut broker = TestBroker::start_with(opts);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, TOPIC, &[]).await;
    let group = group_consumer(&bootstrap, GROUP);

    // Before the disk fills: some records and a commit.
    let p = producer(&bootstrap);
    let (mut acked, err) = produce_until_refused(&p, TOPIC, "a", LEN, 16).await;
    assert!(err.is_none(), "produce before the disk filled: {err:?}");
    commit(&group, TOPIC, 5).expect("commit before the disk filled");
    assert_eq!(metric(&broker, "runnel_log_dir_full"), 0.0);

    let filler = tmpfs.as_ref().map(|t| {
        let f = fill(&t.dir, 1 << 20);
        eprintln!(
            "disk_full: filler of {} bytes, {} bytes left",
            std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0),
            free_bytes(&t.dir)
        );
        f
    });

    // Produce until refused.
    let (more, err) = produce_until_refused(&p, TOPIC, "b", LEN, 100_000).await;
    let refused_after = more.len();
    acked.extend(more);
    let err = err.expect("a produce is refused once the disk is full");
    assert!(
        matches!(
            err,
            KafkaError::MessageProduction(
                RDKafkaErrorCode::KafkaStorageError | RDKafkaErrorCode::MessageTimedOut
            )
        ),
        "the refused produce: {err:?}\n{}",
        broker.diagnostics()
    );
    eprintln!(
        "disk_full: {} records acknowledged in all, refused after {refused_after} more ({err})",
        acked.len()
    );
    drop(p);
    if tmpfs.is_some() {
        // What the client retried was KAFKA_STORAGE_ERROR on the wire.
        assert_eq!(
            raw_produce(&bootstrap, TOPIC, 512 << 10).await,
            KAFKA_STORAGE_ERROR
        );
        assert_eq!(metric(&broker, "runnel_log_dir_full"), 1.0);
    }
    let refused = metric(&broker, "runnel_log_dir_refused_appends_total");
    assert!(refused >= 1.0, "refused appends: {refused}");

    // Reads go on: Metadata, ListOffsets, Fetch.
    let log = read_all(&bootstrap, TOPIC);
    check_acked(&log, &acked, "while full");
    // The group: OffsetFetch answers; a commit lands or is refused retriably.
    assert_eq!(committed(&group, TOPIC), Some(5));
    let commit_while_full = commit(&group, TOPIC, 10);
    match &commit_while_full {
        Ok(()) => assert_eq!(committed(&group, TOPIC), Some(10)),
        Err(KafkaError::ConsumerCommit(
            RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::KafkaStorageError
            | RDKafkaErrorCode::RequestTimedOut,
        )) => assert_eq!(committed(&group, TOPIC), Some(5)),
        Err(e) => panic!("commit on a full disk: {e:?}"),
    }
    eprintln!("disk_full: the commit while full: {commit_while_full:?}");
    let stderr = broker.stderr_log();
    assert_eq!(
        count(&stderr, FULL_LINE),
        1,
        "the episode is logged once:\n{stderr}"
    );
    assert_eq!(count(&stderr, SPACE_AGAIN_LINE), 0, "{stderr}");
    assert!(
        !stderr.contains("refuses writes until reopened"),
        "{stderr}"
    );

    // Space again: the next produce succeeds, with no restart.
    if let Some(f) = &filler {
        std::fs::remove_file(f).expect("remove the filler");
    }
    let p = producer(&bootstrap);
    let (after, _) = eventually(WAIT, "a produce succeeds once space is freed", || {
        let r = futures_block(produce_until_refused(&p, TOPIC, "c", LEN, 16));
        r.1.is_none().then_some(r)
    });
    acked.extend(after);
    assert_eq!(metric(&broker, "runnel_log_dir_full"), 0.0);
    commit(&group, TOPIC, 12).expect("commit once space is freed");
    let stderr = broker.stderr_log();
    assert_eq!(count(&stderr, FULL_LINE), 1, "{stderr}");
    assert_eq!(count(&stderr, SPACE_AGAIN_LINE), 1, "{stderr}");
    drop(p);
    drop(group);

    // kill -9 and back: every acknowledged record once, in order; the last commit kept.
    broker.kill9();
    broker.restart();
    let bootstrap = broker.bootstrap();
    let log = read_all(&bootstrap, TOPIC);
    check_acked(&log, &acked, "after kill -9");
    let group = group_consumer(&bootstrap, GROUP);
    assert_eq!(committed(&group, TOPIC), Some(12));
    eprintln!(
        "disk_full: after kill -9 the log holds {} records, {} acknowledged, 0 lost; {} appends were refused",
        log.len(),
        acked.len(),
        refused
    );
    drop(group);
    broker.kill9();
}

/// Run a future to completion from inside the test's runtime (in `eventually`).
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleaner_and_retention_run_out_of_space_without_harm() {
    const COMPACTED: &str = "dcompact";
    const RETAINED: &str = "dretain";
    const LEN: usize = 2000;
    const RETENTION_MS: i64 = 60_000;
    let tmpfs = Tmpfs::mount(32);
    let mut opts = BrokerOptions {
        extra_args: [
            "log.retention.check.interval.ms=200",
            "log.cleaner.backoff.ms=200",
        ]
        .iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect(),
        // Each write that finds no room, past the episode's first, at debug.
        env: vec![(
            "RUST_LOG".to_string(),
            "info,runnel_storage::space=debug".to_string(),
        )],
        ..BrokerOptions::default()
    };
    match &tmpfs {
        Some(t) => opts.data_dir = Some(t.data_dir()),
        None => {
            eprintln!(
                "disk_full: cannot mount a tmpfs (not root?); falling back to the RUNNEL_FAULTS \
                 ENOSPC seam: every write of the cleaner's output fails"
            );
            opts.env.push((
                "RUNNEL_FAULTS".into(),
                "write:short:errno=ENOSPC:path=00000000000000000000.log.cleaned:times=all".into(),
            ));
        }
    }
    let mut broker = TestBroker::start_with(opts);
    let bootstrap = broker.bootstrap();
    // Not cleaned until asked (the compact-now marker): the pass then needs space.
    create_topic(
        &bootstrap,
        COMPACTED,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "65536"),
            ("min.compaction.lag.ms", "3600000"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    let retention = RETENTION_MS.to_string();
    create_topic(
        &bootstrap,
        RETAINED,
        &[("segment.bytes", "65536"), ("retention.ms", &retention)],
    )
    .await;

    // First a segment of keys written once, which all survive a cleaning: the first
    // group's output is as large as its input, more than a roll's index trims free (so
    // the cleaning cannot make its own room); then 20 keys written 30 times.
    let p = producer(&bootstrap);
    let mut compacted_sent = Vec::new();
    for round in 0..31 {
        let mut sends = Vec::new();
        for key in 0..(if round == 0 { 32 } else { 20 }) {
            let k = if round == 0 {
                format!("u{key:02}")
            } else {
                format!("k{key:02}")
            };
            let v = value(&format!("{k}-r{round:02}"), 0, LEN);
            sends.push(
                p.send_result(FutureRecord::to(COMPACTED).partition(0).key(&k).payload(&v))
                    .map_err(|(e, _)| e)
                    .expect("enqueue"),
            );
            compacted_sent.push((k, v));
        }
        for r in futures_join(sends).await {
            r.expect("delivery report")
                .map_err(|(e, _)| e)
                .expect("produce to the compacted topic");
        }
    }
    // 150 records that expire 8 s from now (retention then runs on the full disk), then
    // 50 that do not.
    let now = runnel_storage::now_ms();
    let mut retained_acked = Vec::new();
    for i in 0..200 {
        let v = value("ret", i, LEN);
        let ts = if i < 150 {
            now - RETENTION_MS + 8_000
        } else {
            now
        };
        let d = p
            .send(
                FutureRecord::<(), str>::to(RETAINED)
                    .partition(0)
                    .payload(&v)
                    .timestamp(ts),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce to the retained topic");
        retained_acked.push((d.offset, v));
    }
    let produced_at = std::time::Instant::now();
    let compacted_before = read_all(&bootstrap, COMPACTED);
    assert_eq!(compacted_before.len(), compacted_sent.len());

    // Fill the disk to the last page, then ask for a cleaning.
    let filler = tmpfs.as_ref().map(|t| fill(&t.dir, 0));
    eprintln!(
        "disk_full: disk filled at {} ms, {:?} after the retained records were produced ({} bytes free)",
        runnel_storage::now_ms(),
        produced_at.elapsed(),
        tmpfs.as_ref().map_or(0, |t| free_bytes(&t.dir))
    );
    let dir = broker.data_dir().join(format!("{COMPACTED}-0"));
    std::fs::write(dir.join("compact-now"), b"").expect("the compact-now marker");
    if tmpfs.is_some() {
        eventually(WAIT, "the cleaner runs out of space", || {
            (metric(&broker, "runnel_log_dir_full") == 1.0).then_some(())
        });
    }
    eventually(WAIT, "the cleaning pass ends", || {
        (!dir.join("compact-now").exists()).then_some(())
    });
    // Nothing was swapped: every record is still there; no cleaner output is left.
    assert_eq!(read_all(&bootstrap, COMPACTED), compacted_before);
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .expect("partition dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect();
    assert!(leftovers.is_empty(), "cleaner leftovers: {leftovers:?}");
    // The failed pass gave back what it had written: fill that too, for retention.
    let filler2 = tmpfs.as_ref().map(|t| {
        let path = t.dir.join("filler2");
        let mut f = File::create(&path).expect("create the second filler");
        for chunk in [64 << 10, 4 << 10] {
            let buf = vec![0x5Au8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        path
    });

    // Retention on the full disk: it can still delete (its checkpoint waits for the
    // space it freed), and the partition stays online.
    eventually(WAIT, "retention deletes the expired segments", || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .ok()?;
        let (low, _) = c
            .fetch_watermarks(RETAINED, 0, Duration::from_secs(5))
            .ok()?;
        (low > 0).then_some(())
    });
    let stderr = broker.stderr_log();
    assert!(
        !stderr.contains("refuses writes until reopened"),
        "{stderr}"
    );
    assert!(!stderr.contains("retention failed"), "{stderr}");
    assert!(!stderr.contains("cleaning failed"), "{stderr}");
    if tmpfs.is_some() {
        assert_eq!(count(&stderr, FULL_LINE), 1, "{stderr}");
        assert!(
            stderr.contains("what=\"cleaner output\""),
            "the cleaner hit the full disk first:\n{stderr}"
        );
        assert!(
            stderr.contains("what=\"log-start checkpoint\""),
            "retention found the disk full:\n{stderr}"
        );
    }
    let retained_log = read_all(&bootstrap, RETAINED);
    let retained_start = retained_log.first().map_or(i64::MAX, |r| r.0);
    // What retention kept is what was produced there.
    let acked_tail: Vec<(i64, String)> = retained_acked
        .iter()
        .filter(|r| r.0 >= retained_start)
        .cloned()
        .collect();
    assert_eq!(retained_log, acked_tail);
    assert!(retained_log.len() >= 50, "retention took unexpired records");

    // kill -9 on the full disk, restart with space: everything reads back intact.
    broker.kill9();
    for f in filler.iter().chain(&filler2) {
        std::fs::remove_file(f).expect("remove the filler");
    }
    broker.set_env(Vec::new());
    broker.restart();
    let bootstrap = broker.bootstrap();
    assert_eq!(read_all(&bootstrap, COMPACTED), compacted_before);
    let after = read_all(&bootstrap, RETAINED);
    assert_eq!(after.first().map(|r| r.0), Some(retained_start));
    assert_eq!(after, retained_log);

    // With space, the same cleaning succeeds: the latest value of every key is kept.
    let dir = broker.data_dir().join(format!("{COMPACTED}-0"));
    std::fs::write(dir.join("compact-now"), b"").expect("the compact-now marker");
    eventually(WAIT, "the cleaning pass ends", || {
        (!dir.join("compact-now").exists()).then_some(())
    });
    let cleaned = read_all(&bootstrap, COMPACTED);
    let mut latest: HashMap<String, String> = HashMap::new();
    for (k, v) in &compacted_sent {
        latest.insert(k.clone(), v.clone());
    }
    for v in latest.values() {
        assert!(
            cleaned.iter().any(|(_, c)| c == v),
            "the latest value {} is gone after cleaning",
            &v[..12]
        );
    }
    eprintln!(
        "disk_full: compacted topic {} records before, {} after the cleaning with space; retention kept {} of 200 from offset {retained_start}",
        compacted_before.len(),
        cleaned.len(),
        retained_log.len()
    );
    broker.kill9();
}

/// Kafka's `Utils.abs(groupId.hashCode) % partitions`.
fn offsets_partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    (if h == i32::MIN { 0 } else { h.abs() }) % partitions
}

/// The group's `__consumer_offsets` partition has no room (the seam: deterministic, no
/// slack in a file's last page to let a small commit through): OffsetCommit gets a
/// retriable error, the commit is not applied (OffsetFetch does not show it), other
/// partitions are unaffected; with room again (a restart without the fault) it lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_finds_no_space_is_refused_retriably_and_not_applied() {
    const TOPIC: &str = "dcommit";
    const GROUP: &str = "dcommit-group";
    let partition = offsets_partition_for(GROUP, 50);
    let mut broker = TestBroker::start_with(BrokerOptions {
        env: vec![(
            "RUNNEL_FAULTS".into(),
            // The first write there is the leader epoch checkpoint of its creation.
            format!("write:short:errno=ENOSPC:path=__consumer_offsets-{partition}:nth=2:times=all"),
        )],
        ..BrokerOptions::default()
    });
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, TOPIC, &[]).await;
    let p = producer(&bootstrap);
    let (acked, err) = produce_until_refused(&p, TOPIC, "d", 100, 8).await;
    assert!(err.is_none(), "{err:?}");
    let group = group_consumer(&bootstrap, GROUP);
    let r = commit(&group, TOPIC, 3);
    assert!(
        matches!(
            r,
            Err(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::NotCoordinator
                    | RDKafkaErrorCode::CoordinatorNotAvailable
                    | RDKafkaErrorCode::RequestTimedOut
            ))
        ),
        "a commit with no space: {r:?}\n{}",
        broker.diagnostics()
    );
    eprintln!("disk_full: the commit with no space: {r:?}");
    assert_eq!(
        committed(&group, TOPIC),
        None,
        "a refused commit is not applied"
    );
    // The user topic takes writes and reads still.
    let (more, err) = produce_until_refused(&p, TOPIC, "e", 100, 8).await;
    assert!(err.is_none(), "{err:?}");
    let log = read_all(&bootstrap, TOPIC);
    check_acked(
        &log,
        &[acked, more].concat(),
        "beside a full offsets partition",
    );
    let stderr = broker.stderr_log();
    assert_eq!(count(&stderr, FULL_LINE), 1, "{stderr}");
    assert!(
        !stderr.contains("refuses writes until reopened"),
        "{stderr}"
    );
    drop((p, group));

    broker.set_env(Vec::new());
    broker.kill9();
    broker.restart();
    let group = group_consumer(&broker.bootstrap(), GROUP);
    assert_eq!(committed(&group, TOPIC), None);
    commit(&group, TOPIC, 3).expect("a commit with room");
    assert_eq!(committed(&group, TOPIC), Some(3));
    drop(group);
    broker.kill9();
}
