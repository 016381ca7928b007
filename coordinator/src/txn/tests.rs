//! The coordinator driven without a runtime: an in-memory `__transaction_state`, a
//! marker writer that records what it was asked, the test executor's task queue and a
//! manual clock.

use super::*;
use std::sync::atomic::AtomicI64;

use runnel_records::record_batch::builder::{ProducerFields, Record};
use runnel_records::record_batch::{set_base_offset, Compression};

use crate::runtime::testing::{block_on, ManualClock, Tasks};

/// Every append, in order, per partition.
#[derive(Default)]
struct MemLog {
    appends: Mutex<Vec<(i32, Vec<LogRecord>)>>,
    fail: AtomicBool,
}

impl CoordinatorLog for MemLog {
    fn partitions(&self) -> i32 {
        50
    }
    fn append(&self, partition: i32, records: &[LogRecord]) -> Result<(u64, u64), E> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(E::NotLeaderOrFollower);
        }
        let mut all = self.appends.lock().unwrap();
        let first: u64 = all
            .iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, r)| r.len() as u64)
            .sum();
        all.push((partition, records.to_vec()));
        Ok((first, first + records.len() as u64))
    }
    fn wait_durable(&self, _partition: i32, _end: u64) -> DurableFuture {
        Box::pin(async { Ok(()) })
    }
}

impl MemLog {
    fn count(&self) -> usize {
        self.appends.lock().unwrap().len()
    }
    /// The last record written for `id`.
    fn last(&self, id: &str) -> Option<Option<TxnValue>> {
        let key = records::encode_key(id);
        let all = self.appends.lock().unwrap();
        all.iter()
            .flat_map(|(_, r)| r.iter())
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref().map(|v| records::decode_value(v).unwrap()))
    }
    /// Partition `p` as stored batches, one per append.
    fn stored(&self, p: i32) -> Vec<u8> {
        let all = self.appends.lock().unwrap();
        let mut out = Vec::new();
        let mut base = 0i64;
        for (_, recs) in all.iter().filter(|(q, _)| *q == p) {
            let rs: Vec<Record<'_>> = recs
                .iter()
                .map(|(k, v)| Record {
                    timestamp_delta: 0,
                    key: Some(k),
                    value: v.as_deref(),
                    headers: vec![],
                })
                .collect();
            let mut b = runnel_records::records::build_batch(
                Compression::None,
                0,
                &rs,
                ProducerFields::NONE,
            )
            .unwrap();
            set_base_offset(&mut b, base);
            base += recs.len() as i64;
            out.extend_from_slice(&b);
        }
        out
    }
}

type MarkerCall = (i64, i16, bool, Vec<(String, i32)>);

#[derive(Default)]
struct Markers {
    calls: Mutex<Vec<MarkerCall>>,
    fail: AtomicBool,
}

impl TxnMarkers for Markers {
    fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        partitions: Vec<(String, i32)>,
    ) -> DurableFuture {
        let fail = self.fail.load(Ordering::SeqCst);
        if !fail {
            self.calls
                .lock()
                .unwrap()
                .push((producer_id, producer_epoch, commit, partitions));
        }
        Box::pin(async move {
            if fail {
                Err(E::CoordinatorNotAvailable)
            } else {
                Ok(())
            }
        })
    }
}

struct Ids(AtomicI64);

impl ProducerIds for Ids {
    fn next_producer_id(&self) -> Result<i64, E> {
        Ok(self.0.fetch_add(1, Ordering::SeqCst))
    }
}

struct Fx {
    cfg: TxnConfig,
    log: Arc<MemLog>,
    markers: Arc<Markers>,
    ids: Arc<Ids>,
    clock: Arc<ManualClock>,
    tasks: Arc<Tasks>,
    c: Arc<TxnCoordinator>,
}

impl Fx {
    fn new(cfg: TxnConfig) -> Fx {
        let f = Fx::unloaded(
            cfg,
            Arc::new(MemLog::default()),
            Arc::new(Ids(AtomicI64::new(1000))),
            Arc::new(ManualClock::new()),
        );
        f.c.finish_load();
        f
    }

    fn unloaded(cfg: TxnConfig, log: Arc<MemLog>, ids: Arc<Ids>, clock: Arc<ManualClock>) -> Fx {
        let markers = Arc::new(Markers::default());
        let tasks = Arc::new(Tasks::default());
        let c = TxnCoordinator::new(
            cfg.clone(),
            log.clone(),
            markers.clone(),
            ids.clone(),
            clock.clone(),
            tasks.clone(),
        );
        Fx {
            cfg,
            log,
            markers,
            ids,
            clock,
            tasks,
            c,
        }
    }

    /// A new coordinator over the same log (a restart): replayed, not yet loaded.
    fn restart_unloaded(&self) -> Fx {
        let f = Fx::unloaded(
            self.cfg.clone(),
            self.log.clone(),
            self.ids.clone(),
            self.clock.clone(),
        );
        for p in 0..50 {
            let buf = self.log.stored(p);
            let next = f.c.replay_chunk(p, 0, &buf);
            let n: usize = self
                .log
                .appends
                .lock()
                .unwrap()
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, r)| r.len())
                .sum();
            assert_eq!(next, n as u64);
        }
        f
    }

    fn restart(&self) -> Fx {
        let f = self.restart_unloaded();
        f.c.finish_load();
        f
    }

    fn init(&self, id: &str) -> Result<(i64, i16), E> {
        block_on(self.c.init_producer_id(id, 60_000, None))
    }
    fn add(&self, id: &str, pe: (i64, i16), parts: &[(&str, i32)], tv2: bool) -> Result<(), E> {
        let parts: Vec<(String, i32)> = parts.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        block_on(self.c.add_partitions(id, pe.0, pe.1, &parts, tv2))
    }
    fn end(&self, id: &str, pe: (i64, i16), commit: bool, tv2: bool) -> Result<(i64, i16), E> {
        block_on(self.c.end_txn(id, pe.0, pe.1, commit, tv2))
    }
    fn state(&self, id: &str) -> Option<TxnDescription> {
        self.c.describe(&[id.to_string()]).pop()?.1.ok()
    }
    fn markers(&self) -> Vec<MarkerCall> {
        self.markers.calls.lock().unwrap().clone()
    }
    /// Write a transaction record straight into the log (as an earlier broker did).
    fn seed(&self, id: &str, v: &TxnValue) {
        let p = self.c.partition_for(id);
        self.log
            .append(
                p,
                &[(records::encode_key(id), Some(records::encode_value(v)))],
            )
            .unwrap();
    }
}

fn fx() -> Fx {
    Fx::new(TxnConfig::default())
}

fn tp(t: &str, p: i32) -> (String, i32) {
    (t.to_string(), p)
}

fn seeded(state: TxnState, pid: i64, epoch: i16, tv: i16) -> TxnValue {
    TxnValue {
        producer_id: pid,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: epoch,
        timeout_ms: 60_000,
        state,
        partitions: TxnPartitions::new(),
        last_update_ms: 0,
        start_ms: -1,
        client_transaction_version: tv,
    }
}

#[test]
fn partition_for_is_javas_hash() {
    let f = fx();
    assert_eq!(f.c.partition_for("hello"), 99162322 % 50);
    assert_eq!(f.c.partition_for("polygenelubricants"), 0);
}

#[test]
fn init_new_id_then_bump_and_validation() {
    let f = fx();
    assert_eq!(f.init("tx"), Ok((1000, 0)));
    let v = f.log.last("tx").unwrap().unwrap();
    assert_eq!(
        (v.producer_id, v.producer_epoch, v.state),
        (1000, 0, TxnState::Empty)
    );
    assert_eq!(f.init("tx"), Ok((1000, 1)));
    assert_eq!(f.init("other"), Ok((1001, 0)));
    for t in [0, -1, 900_001] {
        assert_eq!(
            block_on(f.c.init_producer_id("tx", t, None)),
            Err(E::InvalidTransactionTimeout)
        );
    }
    assert_eq!(
        block_on(f.c.init_producer_id("tx", 900_000, None)),
        Ok((1000, 2))
    );
    assert_eq!(f.init(""), Err(E::InvalidRequest));
    let d = f.state("tx").unwrap();
    assert_eq!((d.state, d.timeout_ms, d.start_ms), ("Empty", 900_000, -1));
}

#[test]
fn kip360_expected_producer_id_and_epoch() {
    let f = fx();
    assert_eq!(f.init("tx"), Ok((1000, 0)));
    let init = |e| block_on(f.c.init_producer_id("tx", 60_000, Some(e)));
    assert_eq!(init((1000, 0)), Ok((1000, 1)));
    // A retry whose answer was lost: the same answer, no second bump.
    assert_eq!(init((1000, 0)), Ok((1000, 1)));
    assert_eq!(init((1000, 1)), Ok((1000, 2)));
    assert_eq!(init((1000, 7)), Err(E::ProducerFenced));
    assert_eq!(init((999, 2)), Err(E::ProducerFenced));
    // A new producer (no expected epoch) clears the last epoch: the old retry is fenced.
    assert_eq!(f.init("tx"), Ok((1000, 3)));
    assert_eq!(init((1000, 2)), Err(E::ProducerFenced));
}

#[test]
fn exhausted_epoch_rotates_the_producer_id() {
    let f = Fx::new(TxnConfig::default());
    f.seed("tx", &seeded(TxnState::CompleteCommit, 7, i16::MAX - 1, 0));
    let f = f.restart();
    let init = |e| block_on(f.c.init_producer_id("tx", 60_000, Some(e)));
    assert_eq!(init((7, i16::MAX - 1)), Ok((1000, 0)));
    // The retry names the previous producer id at the exhausted epoch.
    assert_eq!(init((7, i16::MAX - 1)), Ok((1000, 0)));
    assert_eq!(f.init("tx"), Ok((1000, 1)));
}

#[test]
fn commit_then_retries_tv1() {
    let f = fx();
    let pe = f.init("tx").unwrap();
    assert_eq!(f.end("tx", pe, true, false), Err(E::InvalidTxnState));
    f.add("tx", pe, &[("t", 0), ("t", 1)], false).unwrap();
    let d = f.state("tx").unwrap();
    assert_eq!(d.state, "Ongoing");
    assert!(d.start_ms > 0);
    assert_eq!(d.topics, vec![("t".to_string(), vec![0, 1])]);
    let v = f.log.last("tx").unwrap().unwrap();
    assert_eq!(v.state, TxnState::Ongoing);
    assert_eq!(v.partitions["t"], BTreeSet::from([0, 1]));
    // Already in the transaction: no write.
    let n = f.log.count();
    f.add("tx", pe, &[("t", 1)], false).unwrap();
    assert_eq!(f.log.count(), n);
    f.add("tx", pe, &[("u", 0)], false).unwrap();
    assert_eq!(f.log.count(), n + 1);

    assert_eq!(f.end("tx", pe, true, false), Ok(pe));
    assert_eq!(
        f.log.last("tx").unwrap().unwrap().state,
        TxnState::PrepareCommit
    );
    assert_eq!(f.state("tx").unwrap().state, "PrepareCommit");
    assert!(f.markers().is_empty());
    assert_eq!(f.tasks.run(), 1);
    assert_eq!(
        f.markers(),
        vec![(pe.0, pe.1, true, vec![tp("t", 0), tp("t", 1), tp("u", 0)])]
    );
    let v = f.log.last("tx").unwrap().unwrap();
    assert_eq!(v.state, TxnState::CompleteCommit);
    assert!(v.partitions.is_empty());
    let d = f.state("tx").unwrap();
    assert_eq!(d.state, "CompleteCommit");
    assert!(d.topics.is_empty());
    assert_eq!(f.end("tx", pe, true, false), Ok(pe));
    assert_eq!(f.end("tx", pe, false, false), Err(E::InvalidTxnState));
    // The next transaction starts from CompleteCommit.
    f.add("tx", pe, &[("t", 2)], false).unwrap();
    assert_eq!(f.end("tx", pe, false, false), Ok(pe));
    f.tasks.run();
    assert_eq!(f.markers()[1], (pe.0, pe.1, false, vec![tp("t", 2)]));
    assert_eq!(f.state("tx").unwrap().state, "CompleteAbort");
    assert_eq!(f.end("tx", pe, false, false), Ok(pe));
    assert_eq!(f.end("tx", pe, true, false), Err(E::InvalidTxnState));
}

#[test]
fn wrong_ids_and_epochs() {
    let f = fx();
    let (pid, epoch) = f.init("tx").unwrap();
    assert_eq!(
        f.add("nope", (pid, epoch), &[("t", 0)], false),
        Err(E::InvalidProducerIdMapping)
    );
    assert_eq!(
        f.add("tx", (pid + 1, epoch), &[("t", 0)], false),
        Err(E::InvalidProducerIdMapping)
    );
    assert_eq!(
        f.add("tx", (pid, epoch + 1), &[("t", 0)], false),
        Err(E::ProducerFenced)
    );
    assert_eq!(
        f.add("", (pid, epoch), &[("t", 0)], false),
        Err(E::InvalidRequest)
    );
    f.add("tx", (pid, epoch), &[("t", 0)], false).unwrap();
    assert_eq!(
        f.end("tx", (pid + 1, epoch), true, false),
        Err(E::InvalidProducerIdMapping)
    );
    assert_eq!(
        f.end("tx", (pid, epoch + 1), true, false),
        Err(E::ProducerFenced)
    );
    assert_eq!(
        f.end("nope", (pid, epoch), true, false),
        Err(E::InvalidProducerIdMapping)
    );
}

#[test]
fn concurrent_transactions_while_completing() {
    let f = fx();
    let pe = f.init("tx").unwrap();
    f.add("tx", pe, &[("t", 0)], false).unwrap();
    f.end("tx", pe, true, false).unwrap();
    // The markers are not written yet.
    assert_eq!(f.init("tx"), Err(E::ConcurrentTransactions));
    assert_eq!(
        f.add("tx", pe, &[("t", 1)], false),
        Err(E::ConcurrentTransactions)
    );
    assert_eq!(f.end("tx", pe, true, false), Err(E::ConcurrentTransactions));
    assert_eq!(
        f.end("tx", pe, false, false),
        Err(E::ConcurrentTransactions)
    );
    let v = f.c.verify_partitions("tx", pe.0, pe.1, &[tp("t", 0)]);
    assert_eq!(v, vec![(tp("t", 0), Err(E::ConcurrentTransactions))]);
    f.tasks.run();
    assert_eq!(f.init("tx"), Ok((pe.0, pe.1 + 1)));
}

#[test]
fn verify_partitions_kip890_part1() {
    let f = fx();
    let pe = f.init("tx").unwrap();
    f.add("tx", pe, &[("t", 0)], false).unwrap();
    let v =
        f.c.verify_partitions("tx", pe.0, pe.1, &[tp("t", 0), tp("t", 1)]);
    assert_eq!(
        v,
        vec![
            (tp("t", 0), Ok(())),
            (tp("t", 1), Err(E::TransactionAbortable))
        ]
    );
    let v = f.c.verify_partitions("tx", pe.0, pe.1 + 1, &[tp("t", 0)]);
    assert_eq!(v, vec![(tp("t", 0), Err(E::ProducerFenced))]);
    let v = f.c.verify_partitions("tx", pe.0 + 1, pe.1, &[tp("t", 0)]);
    assert_eq!(v, vec![(tp("t", 0), Err(E::InvalidProducerIdMapping))]);
    let v = f.c.verify_partitions("nope", pe.0, pe.1, &[tp("t", 0)]);
    assert_eq!(v, vec![(tp("t", 0), Err(E::InvalidProducerIdMapping))]);
    // Verification writes nothing.
    let n = f.log.count();
    f.c.verify_partitions("tx", pe.0, pe.1, &[tp("t", 9)]);
    assert_eq!(f.log.count(), n);
}

#[test]
fn tv2_bumps_the_epoch_at_every_end() {
    let f = fx();
    let (pid, e0) = f.init("tx").unwrap();
    f.add("tx", (pid, e0), &[("t", 0)], true).unwrap();
    assert_eq!(f.end("tx", (pid, e0), true, true), Ok((pid, e0 + 1)));
    let v = f.log.last("tx").unwrap().unwrap();
    assert_eq!(
        (v.state, v.producer_epoch, v.client_transaction_version),
        (TxnState::PrepareCommit, e0 + 1, 2)
    );
    // A retry while the markers are written.
    assert_eq!(
        f.end("tx", (pid, e0), true, true),
        Err(E::ConcurrentTransactions)
    );
    // (the pending completion answers before the state does, as in Kafka)
    assert_eq!(
        f.end("tx", (pid, e0), false, true),
        Err(E::ConcurrentTransactions)
    );
    f.tasks.run();
    // The markers carry the bumped epoch.
    assert_eq!(f.markers(), vec![(pid, e0 + 1, true, vec![tp("t", 0)])]);
    let d = f.state("tx").unwrap();
    assert_eq!((d.state, d.producer_epoch), ("CompleteCommit", e0 + 1));
    // A retry with the previous epoch is recognised; the other outcome is not.
    assert_eq!(f.end("tx", (pid, e0), true, true), Ok((pid, e0 + 1)));
    assert_eq!(f.end("tx", (pid, e0), false, true), Err(E::InvalidTxnState));
    // Committing nothing at the current epoch is not a retry.
    assert_eq!(
        f.end("tx", (pid, e0 + 1), true, true),
        Err(E::InvalidTxnState)
    );
    // The old epoch is fenced for a new transaction.
    assert_eq!(
        f.add("tx", (pid, e0), &[("t", 1)], true),
        Err(E::ProducerFenced)
    );
    f.add("tx", (pid, e0 + 1), &[("t", 1)], true).unwrap();
    assert_eq!(f.end("tx", (pid, e0), false, true), Err(E::ProducerFenced));
    assert_eq!(f.end("tx", (pid, e0 + 1), false, true), Ok((pid, e0 + 2)));
    f.tasks.run();
    assert_eq!(f.markers()[1], (pid, e0 + 2, false, vec![tp("t", 1)]));
    assert_eq!(f.end("tx", (pid, e0 + 1), false, true), Ok((pid, e0 + 2)));
    // An empty transaction may be aborted: the epoch moves, no markers.
    assert_eq!(f.end("tx", (pid, e0 + 2), false, true), Ok((pid, e0 + 3)));
    f.tasks.run();
    assert_eq!(f.markers().len(), 2);
    assert_eq!(f.state("tx").unwrap().state, "CompleteAbort");
    assert_eq!(f.end("tx", (pid, e0 + 2), false, true), Ok((pid, e0 + 3)));
}

#[test]
fn tv2_abort_of_an_empty_transaction_after_init() {
    let f = fx();
    let (pid, e) = f.init("tx").unwrap();
    assert_eq!(f.end("tx", (pid, e), false, false), Err(E::InvalidTxnState));
    assert_eq!(f.end("tx", (pid, e), true, true), Err(E::InvalidTxnState));
    assert_eq!(f.end("tx", (pid, e), false, true), Ok((pid, e + 1)));
    f.tasks.run();
    assert!(f.markers().is_empty());
    let d = f.state("tx").unwrap();
    assert_eq!((d.state, d.producer_epoch), ("CompleteAbort", e + 1));
}

#[test]
fn tv2_epoch_overflow_moves_to_the_next_producer_id() {
    let f = fx();
    f.seed("tx", &seeded(TxnState::CompleteCommit, 7, i16::MAX - 2, 2));
    let f = f.restart();
    let e = i16::MAX - 2;
    f.add("tx", (7, e), &[("t", 0)], true).unwrap();
    assert_eq!(f.end("tx", (7, e), true, true), Ok((7, e + 1)));
    f.tasks.run();
    let e = e + 1; // exhausted now
    f.add("tx", (7, e), &[("t", 0)], true).unwrap();
    assert_eq!(f.end("tx", (7, e), true, true), Ok((1000, 0)));
    let v = f.log.last("tx").unwrap().unwrap();
    assert_eq!((v.producer_epoch, v.next_producer_id), (i16::MAX, 1000));
    f.tasks.run();
    assert_eq!(f.markers()[1], (7, i16::MAX, true, vec![tp("t", 0)]));
    let v = f.log.last("tx").unwrap().unwrap();
    assert_eq!(
        (
            v.state,
            v.producer_id,
            v.producer_epoch,
            v.previous_producer_id,
            v.next_producer_id
        ),
        (TxnState::CompleteCommit, 1000, 0, 7, -1)
    );
    // The retry names the old producer id and epoch.
    assert_eq!(f.end("tx", (7, e), true, true), Ok((1000, 0)));
    f.add("tx", (1000, 0), &[("t", 0)], true).unwrap();
    assert_eq!(f.end("tx", (1000, 0), true, true), Ok((1000, 1)));
}

#[test]
fn a_new_producer_fences_the_ongoing_transaction() {
    for tv in [2i16, 1] {
        let f = Fx::new(TxnConfig {
            transaction_version: tv,
            ..TxnConfig::default()
        });
        let (pid, e) = f.init("tx").unwrap();
        f.add("tx", (pid, e), &[("t", 0)], false).unwrap();
        assert_eq!(f.init("tx"), Err(E::ConcurrentTransactions));
        assert_eq!(
            f.log.last("tx").unwrap().unwrap().state,
            TxnState::PrepareAbort
        );
        assert_eq!(f.init("tx"), Err(E::ConcurrentTransactions));
        f.tasks.run();
        // TV1 bumps at the fence, TV2 at the abort: once either way.
        let fenced = e + 1;
        assert_eq!(f.markers(), vec![(pid, fenced, false, vec![tp("t", 0)])]);
        assert_eq!(f.state("tx").unwrap().state, "CompleteAbort");
        // The old producer is fenced.
        assert_eq!(f.end("tx", (pid, e), true, false), Err(E::ProducerFenced));
        assert_eq!(
            f.add("tx", (pid, e), &[("t", 1)], false),
            Err(E::ProducerFenced)
        );
        assert_eq!(f.init("tx"), Ok((pid, fenced + 1)));
    }
}

#[test]
fn timed_out_transactions_are_aborted() {
    let f = fx();
    f.c.tick();
    let pe = block_on(f.c.init_producer_id("tx", 1000, None)).unwrap();
    f.add("tx", pe, &[("t", 0)], false).unwrap();
    let idle = f.init("idle").unwrap();
    f.clock.advance(Duration::from_millis(1500));
    // Not checked before the cleanup interval.
    let next = f.c.tick().unwrap();
    assert!(next > f.clock.now());
    assert_eq!(f.state("tx").unwrap().state, "Ongoing");
    f.clock.advance(Duration::from_secs(10));
    f.c.tick();
    f.tasks.run();
    assert_eq!(f.markers(), vec![(pe.0, pe.1 + 1, false, vec![tp("t", 0)])]);
    assert_eq!(f.state("tx").unwrap().state, "CompleteAbort");
    assert_eq!(f.state("idle").unwrap().producer_epoch, idle.1);
    assert_eq!(f.end("tx", pe, true, false), Err(E::ProducerFenced));
}

#[test]
fn idle_transactional_ids_expire() {
    let f = fx();
    f.c.tick();
    let pe = f.init("done").unwrap();
    f.init("empty").unwrap();
    f.add("done", pe, &[("t", 0)], false).unwrap();
    f.end("done", pe, true, false).unwrap();
    f.tasks.run();
    let stuck = f.init("stuck").unwrap();
    f.add("stuck", stuck, &[("t", 1)], false).unwrap();
    f.markers.fail.store(true, Ordering::SeqCst);
    f.end("stuck", stuck, true, false).unwrap();
    f.tasks.run();
    assert_eq!(f.state("stuck").unwrap().state, "PrepareCommit");
    f.clock
        .advance(Duration::from_millis(604_800_000 + 3_600_000));
    f.c.tick();
    assert_eq!(f.log.last("done"), Some(None));
    assert_eq!(f.log.last("empty"), Some(None));
    f.tasks.run();
    let d =
        f.c.describe(&["done".into(), "empty".into(), "stuck".into()]);
    assert_eq!(d[0].1, Err(E::TransactionalIdNotFound));
    assert_eq!(d[1].1, Err(E::TransactionalIdNotFound));
    assert_eq!(d[2].1.as_ref().unwrap().state, "PrepareCommit");
    // The tombstones hold across a restart; an expired id starts afresh.
    let g = f.restart();
    assert_eq!(
        g.c.describe(&["done".into()])[0].1,
        Err(E::TransactionalIdNotFound)
    );
    assert!(g.state("stuck").is_some());
    assert_eq!(g.init("done").unwrap().1, 0);
}

#[test]
fn restart_completes_a_prepared_commit() {
    let f = fx();
    let pe = f.init("tx").unwrap();
    f.add("tx", pe, &[("t", 0), ("u", 3)], false).unwrap();
    f.end("tx", pe, true, false).unwrap();
    // Crash before the markers: the tasks never run.
    let g = f.restart_unloaded();
    assert_eq!(g.init("tx"), Err(E::CoordinatorLoadInProgress));
    assert_eq!(
        g.c.verify_partitions("tx", pe.0, pe.1, &[tp("t", 0)]),
        vec![(tp("t", 0), Err(E::CoordinatorLoadInProgress))]
    );
    g.c.finish_load();
    assert_eq!(g.state("tx").unwrap().state, "PrepareCommit");
    assert_eq!(g.tasks.run(), 1);
    assert_eq!(
        g.markers(),
        vec![(pe.0, pe.1, true, vec![tp("t", 0), tp("u", 3)])]
    );
    assert_eq!(g.state("tx").unwrap().state, "CompleteCommit");
    assert_eq!(g.end("tx", pe, true, false), Ok(pe));
    // And again: nothing left to resume.
    let h = g.restart();
    assert_eq!(h.tasks.run(), 0);
    assert_eq!(h.init("tx"), Ok((pe.0, pe.1 + 1)));
}

#[test]
fn restart_resumes_a_tv2_abort_and_times_out_an_ongoing_one() {
    let f = fx();
    let a = f.init("a").unwrap();
    f.add("a", a, &[("t", 0)], true).unwrap();
    f.end("a", a, false, true).unwrap();
    let b = block_on(f.c.init_producer_id("b", 1000, None)).unwrap();
    f.add("b", b, &[("t", 1)], false).unwrap();
    let g = f.restart();
    g.c.tick();
    g.tasks.run();
    assert_eq!(g.markers(), vec![(a.0, a.1 + 1, false, vec![tp("t", 0)])]);
    assert_eq!(g.state("a").unwrap().state, "CompleteAbort");
    assert_eq!(g.state("b").unwrap().state, "Ongoing");
    g.clock.advance(Duration::from_secs(11));
    g.c.tick();
    g.tasks.run();
    assert_eq!(g.markers()[1], (b.0, b.1 + 1, false, vec![tp("t", 1)]));
    assert_eq!(g.state("b").unwrap().state, "CompleteAbort");
}

#[test]
fn marker_failure_leaves_the_transaction_prepared_until_restart() {
    let f = fx();
    let pe = f.init("tx").unwrap();
    f.add("tx", pe, &[("t", 0)], false).unwrap();
    f.markers.fail.store(true, Ordering::SeqCst);
    f.end("tx", pe, false, false).unwrap();
    f.tasks.run();
    assert_eq!(f.state("tx").unwrap().state, "PrepareAbort");
    assert_eq!(f.init("tx"), Err(E::ConcurrentTransactions));
    assert_eq!(
        f.end("tx", pe, false, false),
        Err(E::ConcurrentTransactions)
    );
    let g = f.restart();
    g.tasks.run();
    assert_eq!(g.markers(), vec![(pe.0, pe.1, false, vec![tp("t", 0)])]);
    assert_eq!(g.state("tx").unwrap().state, "CompleteAbort");
}

#[test]
fn a_failed_write_changes_nothing() {
    let f = fx();
    let pe = f.init("tx").unwrap();
    f.add("tx", pe, &[("t", 0)], false).unwrap();
    f.log.fail.store(true, Ordering::SeqCst);
    assert_eq!(
        f.end("tx", pe, true, false),
        Err(E::CoordinatorNotAvailable)
    );
    assert_eq!(
        f.add("tx", pe, &[("t", 1)], false),
        Err(E::CoordinatorNotAvailable)
    );
    assert_eq!(f.init("tx"), Err(E::CoordinatorNotAvailable));
    f.log.fail.store(false, Ordering::SeqCst);
    let d = f.state("tx").unwrap();
    assert_eq!((d.state, d.producer_epoch), ("Ongoing", pe.1));
    assert_eq!(d.topics, vec![("t".to_string(), vec![0])]);
    assert_eq!(f.log.last("tx").unwrap().unwrap().state, TxnState::Ongoing);
    assert_eq!(f.init("tx"), Err(E::ConcurrentTransactions));
    f.tasks.run();
    assert_eq!(f.markers(), vec![(pe.0, pe.1 + 1, false, vec![tp("t", 0)])]);
}

#[test]
fn a_failed_tv1_fence_is_not_bumped_twice() {
    let f = Fx::new(TxnConfig {
        transaction_version: 1,
        ..TxnConfig::default()
    });
    let pe = f.init("tx").unwrap();
    f.add("tx", pe, &[("t", 0)], false).unwrap();
    f.log.fail.store(true, Ordering::SeqCst);
    assert_eq!(f.init("tx"), Err(E::CoordinatorNotAvailable));
    f.log.fail.store(false, Ordering::SeqCst);
    // Only the failed fence's epoch is kept in memory (as Kafka does): it fences the
    // producer, and was never handed out, so the next fence does not bump again.
    let d = f.state("tx").unwrap();
    assert_eq!((d.state, d.producer_epoch), ("Ongoing", pe.1 + 1));
    assert_eq!(f.add("tx", pe, &[("t", 1)], false), Err(E::ProducerFenced));
    assert_eq!(f.init("tx"), Err(E::ConcurrentTransactions));
    f.tasks.run();
    assert_eq!(f.markers(), vec![(pe.0, pe.1 + 1, false, vec![tp("t", 0)])]);
    assert_eq!(f.init("tx"), Ok((pe.0, pe.1 + 2)));
}

#[test]
fn describe_and_list() {
    let f = fx();
    let a = f.init("a").unwrap();
    f.add("a", a, &[("t", 1), ("s", 0), ("t", 0)], false)
        .unwrap();
    let b = f.init("b").unwrap();
    f.clock.advance(Duration::from_secs(5));
    let d = f.c.describe(&["a".into(), "".into(), "zzz".into()]);
    let da = d[0].1.as_ref().unwrap();
    assert_eq!(
        (da.state, da.producer_id, da.producer_epoch, da.timeout_ms),
        ("Ongoing", a.0, a.1, 60_000)
    );
    assert_eq!(
        da.topics,
        vec![("s".to_string(), vec![0]), ("t".to_string(), vec![0, 1])]
    );
    assert_eq!(d[1].1, Err(E::InvalidRequest));
    assert_eq!(d[2].1, Err(E::TransactionalIdNotFound));

    let ids = |l: &TxnListing| {
        l.transactions
            .iter()
            .map(|t| t.transactional_id.clone())
            .collect::<Vec<_>>()
    };
    let all = f.c.list(&[], &[], -1, None).unwrap();
    assert_eq!(ids(&all), vec!["a", "b"]);
    assert_eq!(
        all.transactions[1],
        ListedTxn {
            transactional_id: "b".into(),
            producer_id: b.0,
            state: "Empty"
        }
    );
    let l =
        f.c.list(&["Ongoing".into(), "Bogus".into()], &[], -1, None)
            .unwrap();
    assert_eq!(ids(&l), vec!["a"]);
    assert_eq!(l.unknown_state_filters, vec!["Bogus".to_string()]);
    assert_eq!(ids(&f.c.list(&[], &[b.0], -1, None).unwrap()), vec!["b"]);
    // Running for 5 s: longer than 1 s, not than 10 s (an Empty one has no start, as
    // in Kafka it passes every duration filter).
    assert_eq!(
        ids(&f.c.list(&["Ongoing".into()], &[], 1000, None).unwrap()),
        vec!["a"]
    );
    assert!(f
        .c
        .list(&["Ongoing".into()], &[], 10_000, None)
        .unwrap()
        .transactions
        .is_empty());
}

#[test]
fn replay_of_garbage_does_not_panic() {
    let f = fx();
    let g = Fx::unloaded(
        TxnConfig::default(),
        f.log.clone(),
        f.ids.clone(),
        f.clock.clone(),
    );
    let mut seed = 0x1234_5678u32;
    for len in [0usize, 1, 7, 61, 200, 4096] {
        let buf: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        g.c.replay_chunk(0, 0, &buf);
    }
    // Readable batches with unreadable keys and values are skipped record by record.
    let good = records::encode_value(&seeded(TxnState::Ongoing, 5, 0, 0));
    let p = g.c.partition_for("x");
    f.log
        .append(p, &[(vec![0, 9, 1], Some(vec![1, 2]))])
        .unwrap();
    f.log
        .append(p, &[(records::encode_key("x"), Some(vec![0, 1, 2]))])
        .unwrap();
    f.log
        .append(
            p,
            &[(
                records::encode_key("y"),
                Some(good[..good.len() - 3].to_vec()),
            )],
        )
        .unwrap();
    f.log
        .append(p, &[(records::encode_key("z"), Some(good.clone()))])
        .unwrap();
    let buf = f.log.stored(p);
    assert_eq!(g.c.replay_chunk(p, 0, &buf), 4);
    g.c.finish_load();
    assert!(g.state("x").is_none());
    assert!(g.state("y").is_none());
    assert_eq!(g.state("z").unwrap().state, "Ongoing");
}

#[test]
fn request_futures_are_send() {
    fn send<T: Send>(_: T) {}
    let f = fx();
    send(f.c.init_producer_id("tx", 1000, None));
    send(f.c.add_partitions("tx", 1, 0, &[], true));
    send(f.c.end_txn("tx", 1, 0, true, true));
}

#[test]
fn fencing_the_last_epoch_rotates_the_producer_id() {
    let f = fx();
    let mut v = seeded(TxnState::Ongoing, 7, i16::MAX - 1, 2);
    v.partitions.insert("t".to_string(), BTreeSet::from([0]));
    v.start_ms = f.clock.now_ms();
    f.seed("tx", &v);
    let f = f.restart();
    assert_eq!(f.init("tx"), Err(E::ConcurrentTransactions));
    f.tasks.run();
    assert_eq!(f.markers(), vec![(7, i16::MAX, false, vec![tp("t", 0)])]);
    let d = f.state("tx").unwrap();
    assert_eq!(
        (d.state, d.producer_id, d.producer_epoch),
        ("CompleteAbort", 1000, 0)
    );
    assert_eq!(f.init("tx"), Ok((1000, 1)));
}

#[test]
fn list_by_transactional_id_pattern() {
    let f = fx();
    for id in ["app-1", "app-22", "other"] {
        f.init(id).unwrap();
    }
    let ids = |p| {
        f.c.list(&[], &[], -1, Some(p))
            .unwrap()
            .transactions
            .into_iter()
            .map(|t| t.transactional_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("app-.*"), vec!["app-1", "app-22"]);
    // The whole id must match.
    assert_eq!(ids("app-\\d"), vec!["app-1"]);
    assert_eq!(ids("").len(), 3);
    assert_eq!(
        f.c.list(&[], &[], -1, Some("a)|(b")),
        Err(E::InvalidRegularExpression)
    );
}
