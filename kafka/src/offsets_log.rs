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
            Err(e) => {
                tracing::error!(partition, error = ?e, "append to __consumer_offsets failed");
                Err(E::CoordinatorNotAvailable)
            }
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
                    tracing::error!(partition, producer_id, error = ?e, "transactional append to __consumer_offsets failed");
                    sequences.remove(&key);
                    return Err(E::CoordinatorNotAvailable);
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
