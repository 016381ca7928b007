//! `__consumer_offsets` as the group coordinator sees it: the [`CoordinatorLog`] over the
//! broker's partitions of the topic, and the replay of a partition at start. The
//! coordinator (`group/`) knows only the trait, not partitions or files.

use std::sync::Arc;

use runnel_storage::now_ms;

use kafka_protocol::error::ResponseError as E;

use runnel_coordinator::group::consumer::Topics;
use runnel_coordinator::group::{CoordinatorLog, DurableFuture, GroupCoordinator, LogRecord};
use runnel_core::partition::Partition;
use runnel_core::topics::TopicRegistry;

/// [`CoordinatorLog`] over the broker's `__consumer_offsets` partitions.
pub struct PartitionLog {
    partitions: Vec<Arc<Partition>>,
}

impl PartitionLog {
    pub fn new(partitions: Vec<Arc<Partition>>) -> PartitionLog {
        PartitionLog { partitions }
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
    partition
        .for_each_batch_chunk(0, 8 << 20, |offset, buf| {
            Some(coordinator.replay_chunk(offset, buf))
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
