//! `__consumer_offsets` as the group coordinator sees it: the [`CoordinatorLog`] over the
//! broker's partitions of the topic, and the replay of a partition at start. The
//! coordinator (`group/`) knows only the trait, not partitions or files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use runnel_storage::now_ms;

use kafka_protocol::error::ResponseError as E;

use runnel_coordinator::group::consumer::Topics;
use runnel_coordinator::group::{CoordinatorLog, DurableFuture, GroupCoordinator, LogRecord};
use runnel_core::partition::{AppendError, Partition};
use runnel_core::topics::TopicRegistry;
use runnel_protocol::record_batch::builder::{
    encode_batch, encode_records, ProducerFields, Record,
};
use runnel_storage::producer_state::ProducerError;

/// Kafka's transactional batch attribute (bit 4).
const TRANSACTIONAL: i16 = 0x10;
const NO_SEQUENCE: i32 = -1;
/// How many producers' next sequences are remembered (see `append_transactional`).
const MAX_TRACKED_PRODUCERS: usize = 10_000;

/// The coordinator's answer to a failed append to `__consumer_offsets`. A storage error
/// (a full disk, an offline log) is NOT_COORDINATOR, as Kafka's coordinator runtime maps
/// KAFKA_STORAGE_ERROR (`CoordinatorOperationExceptionHelper`): retriable, the client
/// looks the coordinator up again. A full disk is logged once per episode by the log.
fn append_error(partition: i32, e: &AppendError) -> E {
    match e {
        AppendError::Storage(runnel_storage::StorageError::NoSpace(_)) => E::NotCoordinator,
        AppendError::Storage(s) => {
            tracing::error!(partition, error = %s, "append to __consumer_offsets failed");
            E::NotCoordinator
        }
        other => {
            tracing::error!(partition, error = ?other, "append to __consumer_offsets failed");
            E::CoordinatorNotAvailable
        }
    }
}

/// [`CoordinatorLog`] over the broker's `__consumer_offsets` partitions.
pub struct PartitionLog {
    partitions: Vec<Arc<Partition>>,
    /// The next base sequence of each producer's transactional batches per partition:
    /// (partition, producer id) → (epoch, sequence).
    sequences: Mutex<HashMap<(i32, i64), (i16, i32)>>,
}

/// Kafka's `incrementSequence`: sequences wrap from `i32::MAX` to 0.
fn next_sequence(base: i32, count: usize) -> i32 {
    ((base as i64 + count as i64) % (i32::MAX as i64 + 1)) as i32
}

impl PartitionLog {
    pub fn new(partitions: Vec<Arc<Partition>>) -> PartitionLog {
        PartitionLog {
            partitions,
            sequences: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, p: i32) -> Result<&Arc<Partition>, E> {
        usize::try_from(p)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .ok_or(E::CoordinatorNotAvailable)
    }
}

impl CoordinatorLog for PartitionLog {
    fn partitions(&self) -> i32 {
        self.partitions.len() as i32
    }

    fn append(&self, partition: i32, recs: &[LogRecord]) -> Result<(u64, u64), E> {
        use runnel_protocol::record_batch::builder::{simple_batch, Record};
        let part = self.get(partition)?;
        if recs.is_empty() {
            let end = part
                .log_end_offset()
                .map_err(|_| E::CoordinatorNotAvailable)?;
            return Ok((end, end));
        }
        let records: Vec<Record<'_>> = recs
            .iter()
            .map(|(k, v)| Record {
                key: Some(k.as_slice()),
                value: v.as_deref(),
                ..Default::default()
            })
            .collect();
        let now = now_ms();
        let batch = simple_batch(now, &records);
        match runnel_core::blocking::in_place(|| part.append(&batch, now)) {
            Ok(a) => Ok((a.base_offset, a.last_offset + 1)),
            Err(e) => Err(append_error(partition, &e)),
        }
    }

    /// The partition's producer state checks sequences of every batch with a producer
    /// id (Kafka skips them for the coordinator's own appends), so the batches of a
    /// producer here carry consecutive sequences from 0 per epoch. Only this writes
    /// batches of that producer in `__consumer_offsets` (its markers carry none), so
    /// the next sequence is known but for the first batch after a restart: that one
    /// goes without a sequence, which the state never takes for a duplicate, and its
    /// refusal names the sequence to follow (or, for a new epoch, 0).
    fn append_transactional(
        &self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        recs: &[LogRecord],
    ) -> Result<(u64, u64), E> {
        let part = self.get(partition)?;
        if recs.is_empty() {
            return self.append(partition, recs);
        }
        let records: Vec<Record<'_>> = recs
            .iter()
            .map(|(k, v)| Record {
                key: Some(k.as_slice()),
                value: v.as_deref(),
                ..Default::default()
            })
            .collect();
        let section = encode_records(&records);
        let key = (partition, producer_id);
        let mut sequences =
            runnel_core::poison::or_stop(self.sequences.lock(), "offsets log sequences");
        let mut sequence = match sequences.get(&key) {
            Some(&(epoch, seq)) if epoch == producer_epoch => seq,
            _ => NO_SEQUENCE,
        };
        // At most: the probe, then the sequence it names.
        for _ in 0..3 {
            let now = now_ms();
            let batch = encode_batch(
                0,
                TRANSACTIONAL,
                records.len() as i32 - 1,
                now,
                now,
                ProducerFields {
                    producer_id,
                    producer_epoch,
                    base_sequence: sequence,
                },
                records.len() as i32,
                &section,
            );
            match runnel_core::blocking::in_place(|| part.append_internal(&batch, now)) {
                Ok(a) if !a.duplicate => {
                    let next = if sequence == NO_SEQUENCE {
                        0
                    } else {
                        next_sequence(sequence, records.len())
                    };
                    if sequences.len() >= MAX_TRACKED_PRODUCERS {
                        // Bounded: a forgotten producer costs one probe next time.
                        sequences.clear();
                    }
                    sequences.insert(key, (producer_epoch, next));
                    return Ok((a.base_offset, a.last_offset + 1));
                }
                // Never expected (sequences only go forward); not written, so retry
                // with a probe.
                Ok(_) => sequence = NO_SEQUENCE,
                Err(AppendError::Producer(ProducerError::OutOfOrderSequence {
                    last_sequence,
                    ..
                })) => {
                    // After a batch without a sequence (-1) the next is 0.
                    sequence = next_sequence(last_sequence, 1);
                }
                Err(AppendError::Producer(ProducerError::InvalidSequenceForNewEpoch {
                    ..
                })) if sequence != 0 => sequence = 0,
                Err(AppendError::Producer(ProducerError::InvalidProducerEpoch { .. })) => {
                    return Err(E::InvalidProducerEpoch);
                }
                Err(e) => {
                    sequences.remove(&key);
                    return Err(append_error(partition, &e));
                }
            }
        }
        sequences.remove(&key);
        tracing::error!(
            partition,
            producer_id,
            "transactional append to __consumer_offsets: no sequence accepted"
        );
        Err(E::CoordinatorNotAvailable)
    }

    fn wait_durable(&self, partition: i32, end: u64) -> DurableFuture {
        let part = self.get(partition).cloned();
        Box::pin(async move {
            let part = part?;
            part.wait_durable(end)
                .await
                .map_err(|()| E::CoordinatorNotAvailable)
        })
    }
}

/// Replay one `__consumer_offsets` partition into the coordinator, start to end.
pub fn replay(coordinator: &GroupCoordinator, partition: &Partition) -> Result<(), String> {
    let index = partition.tp.partition;
    partition
        .for_each_batch_chunk(0, 8 << 20, |offset, buf| {
            Some(coordinator.replay_chunk(index, offset, buf))
        })
        .map_err(|e| e.to_string())?;
    tracing::debug!(partition = %partition.tp, "replayed a __consumer_offsets partition");
    Ok(())
}

/// The topic registry as consumer groups see it: what they may be assigned and match
/// regexes against is every topic but the internal ones (`__consumer_offsets`).
pub struct RegistryTopics<'a>(pub &'a TopicRegistry);

impl Topics for RegistryTopics<'_> {
    fn resolve(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        self.0
            .get(name)
            .filter(|m| !m.internal)
            .map(|m| (m.id, m.partitions))
    }
    fn names_version(&self) -> u64 {
        self.0.names_version()
    }
    fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
        for m in self.0.all().filter(|m| !m.internal) {
            f(&m.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use runnel_coordinator::log::{replay_chunk_txn, Replayed};
    use runnel_core::broker::Broker;
    use runnel_core::config::BrokerConfig;

    fn open(root: &std::path::Path) -> (Broker, Vec<Arc<Partition>>) {
        let config = BrokerConfig::from_settings(BTreeMap::from([
            ("log.dirs".to_string(), root.display().to_string()),
            ("metrics.listener".to_string(), String::new()),
        ]))
        .unwrap();
        let broker = tokio::task::block_in_place(|| Broker::open(config)).unwrap();
        let parts = broker
            .open_internal_topic("__consumer_offsets", 1, &[("cleanup.policy", "compact")])
            .unwrap();
        (broker, parts)
    }

    fn recs(n: u8) -> Vec<LogRecord> {
        (0..n)
            .map(|i| (vec![b'k', i], Some(vec![b'v', i])))
            .collect()
    }

    /// Every record of the partition: (offset, producer id of a transactional batch).
    fn read_back(part: &Partition) -> Vec<(u64, Option<i64>)> {
        let mut out = Vec::new();
        part.for_each_batch_chunk(0, 1 << 20, |offset, buf| {
            Some(replay_chunk_txn(offset, buf, |item| {
                if let Replayed::Record {
                    offset,
                    producer_id,
                    ..
                } = item
                {
                    out.push((offset, producer_id));
                }
            }))
        })
        .unwrap();
        out
    }

    /// The partition's producer state checks the sequences of a producer's batches;
    /// the log keeps them in order, also for the first batch after a restart and for a
    /// bumped epoch, and refuses an old epoch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transactional_appends_pass_the_producer_checks_across_a_restart() {
        let root = tempfile::tempdir().unwrap();
        let (broker, parts) = open(root.path());
        let log = PartitionLog::new(parts.clone());
        assert_eq!(log.append_transactional(0, 42, 0, &recs(2)), Ok((0, 2)));
        assert_eq!(log.append(0, &recs(1)), Ok((2, 3)));
        assert_eq!(log.append_transactional(0, 42, 0, &recs(3)), Ok((3, 6)));
        assert_eq!(log.append_transactional(0, 43, 0, &recs(1)), Ok((6, 7)));
        assert_eq!(log.append_transactional(0, 42, 0, &recs(1)), Ok((7, 8)));
        drop((log, parts, broker));

        let (_broker, parts) = open(root.path());
        let log = PartitionLog::new(parts.clone());
        // Unknown to the new log: probed, then in sequence.
        assert_eq!(log.append_transactional(0, 42, 0, &recs(2)), Ok((8, 10)));
        assert_eq!(log.append_transactional(0, 42, 0, &recs(1)), Ok((10, 11)));
        // A bumped epoch starts at 0; the old one is fenced.
        assert_eq!(log.append_transactional(0, 42, 1, &recs(1)), Ok((11, 12)));
        assert_eq!(
            log.append_transactional(0, 42, 0, &recs(1)),
            Err(E::InvalidProducerEpoch)
        );
        assert_eq!(log.append_transactional(0, 43, 0, &recs(1)), Ok((12, 13)));
        assert_eq!(
            log.append_transactional(1, 42, 1, &recs(1)),
            Err(E::CoordinatorNotAvailable),
            "no such partition"
        );
        let got = read_back(&parts[0]);
        let txn = |pid| Some(pid);
        let want: Vec<(u64, Option<i64>)> = vec![
            (0, txn(42)),
            (1, txn(42)),
            (2, None),
            (3, txn(42)),
            (4, txn(42)),
            (5, txn(42)),
            (6, txn(43)),
            (7, txn(42)),
            (8, txn(42)),
            (9, txn(42)),
            (10, txn(42)),
            (11, txn(42)),
            (12, txn(43)),
        ];
        assert_eq!(got, want);
    }

    /// A TxnOffsetCommit through the broker's partitions, its commit marker appended
    /// as the transaction coordinator's would be, and a restart: the offset is
    /// committed after the replay; a second transaction left open stays pending.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_committed_transaction_survives_a_restart() {
        use runnel_coordinator::group::{CommitItem, GroupConfig, TxnCommitter};
        use runnel_coordinator::runtime::SystemClock;

        let root = tempfile::tempdir().unwrap();
        let cfg = || GroupConfig {
            offsets_partitions: 1,
            ..GroupConfig::default()
        };
        let start = |parts: &[Arc<Partition>]| {
            let c = GroupCoordinator::new(
                cfg(),
                Arc::new(PartitionLog::new(parts.to_vec())),
                Arc::new(SystemClock),
                crate::group_timers::spawner(),
            );
            for p in parts {
                replay(&c, p).unwrap();
            }
            c.finish_load(&|_| None, &NoTopics);
            c
        };
        let (broker, parts) = open(root.path());
        let c = start(&parts);
        let who = |pid| TxnCommitter {
            transactional_id: "tx".to_string(),
            producer_id: pid,
            producer_epoch: 0,
            generation: -1,
            member_id: String::new(),
            instance_id: None,
        };
        let item = |offset| CommitItem {
            topic: "t".to_string(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: String::new(),
        };
        assert_eq!(c.txn_offset_commit("g", &who(42), vec![item(5)]).await, [0]);
        // The commit marker, as the transaction coordinator writes it.
        let now = now_ms();
        tokio::task::block_in_place(|| parts[0].append_marker(42, 0, true, now)).unwrap();
        c.complete_txn(0, 42, true);
        // The same producer's next transaction, aborted: its sequences follow the
        // marker.
        assert_eq!(c.txn_offset_commit("g", &who(42), vec![item(6)]).await, [0]);
        tokio::task::block_in_place(|| parts[0].append_marker(42, 0, false, now)).unwrap();
        c.complete_txn(0, 42, false);
        assert_eq!(c.txn_offset_commit("g", &who(43), vec![item(9)]).await, [0]);
        let live = c.fetch_offsets("g", None);
        drop((c, parts, broker));

        let (_broker, parts) = open(root.path());
        let r = start(&parts);
        assert_eq!(
            format!("{:?}", r.fetch_offsets("g", None)),
            format!("{live:?}")
        );
        assert_eq!(
            r.fetch_offsets("g", None)[0].1[0]
                .1
                .as_ref()
                .map(|v| v.offset),
            Some(5)
        );
        assert!(
            r.has_pending_offsets("g", "t", 0),
            "producer 43 is still open"
        );
    }

    struct NoTopics;
    impl runnel_coordinator::group::consumer::Topics for NoTopics {
        fn resolve(&self, _: &str) -> Option<(uuid::Uuid, i32)> {
            None
        }
        fn names_version(&self) -> u64 {
            0
        }
        fn for_each_name(&self, _: &mut dyn FnMut(&str)) {}
    }
}
