//! The transaction coordinator on this broker: `__transaction_state` over the core's
//! partitions, markers written straight to the partitions (Kafka's WriteTxnMarkers,
//! internal on one node), producer ids from the broker's durable block, and its timers
//! on tokio. The coordinator itself (`runnel_coordinator::txn`) is sans-io.
//!
//! `__transaction_state` is created on first use, as Kafka creates it on the first
//! FindCoordinator for a transactional id, so a broker that never sees a transaction
//! carries no 50 empty partitions.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use kafka_protocol::error::ResponseError as E;
use runnel_coordinator::group::{GroupCoordinator, OFFSETS_TOPIC};
use runnel_coordinator::txn::{
    ProducerIds, TxnConfig, TxnCoordinator, TxnMarkers, TRANSACTION_STATE_TOPIC,
};
use runnel_coordinator::DurableFuture;
use runnel_core::partition::{AppendError, Partition};
use runnel_core::settings::Settings;
use runnel_core::Broker;

use crate::group_timers;
use crate::offsets_log::PartitionLog;

/// How long a marker write that failed waits before it is tried again.
const MARKER_RETRY: Duration = Duration::from_millis(500);

/// The transaction coordinator, opened on first use.
pub struct Transactions {
    core: Arc<Broker>,
    groups: Arc<GroupCoordinator>,
    config: TxnConfig,
    segment_bytes: i32,
    cell: OnceLock<Arc<TxnCoordinator>>,
    opening: Mutex<()>,
}

impl Transactions {
    /// Read the settings; open the coordinator now if `__transaction_state` exists (a
    /// restart must finish the transactions it left).
    pub fn new(core: Arc<Broker>, groups: Arc<GroupCoordinator>) -> std::io::Result<Transactions> {
        let s = &core.config.settings;
        let (config, segment_bytes) = txn_config(s).map_err(std::io::Error::other)?;
        let t = Transactions {
            core,
            groups,
            config,
            segment_bytes,
            cell: OnceLock::new(),
            opening: Mutex::new(()),
        };
        if t.core.topic_meta(TRANSACTION_STATE_TOPIC).is_some() {
            t.open()?;
        }
        Ok(t)
    }

    /// The coordinator if it is open (DescribeTransactions and ListTransactions do not
    /// create the topic).
    pub fn if_open(&self) -> Option<&Arc<TxnCoordinator>> {
        self.cell.get()
    }

    /// The coordinator, creating `__transaction_state` first if needed. Blocking file
    /// work the first time.
    pub fn coordinator(&self) -> Result<&Arc<TxnCoordinator>, E> {
        if let Some(c) = self.cell.get() {
            return Ok(c);
        }
        runnel_core::blocking::in_place(|| self.open()).map_err(|e| {
            tracing::error!(error = %e, "cannot open {TRANSACTION_STATE_TOPIC}");
            E::CoordinatorNotAvailable
        })
    }

    fn open(&self) -> std::io::Result<&Arc<TxnCoordinator>> {
        let _one =
            runnel_core::poison::or_stop(self.opening.lock(), "transaction coordinator opening");
        if let Some(c) = self.cell.get() {
            return Ok(c);
        }
        let segment_bytes = self.segment_bytes.to_string();
        let parts = self.core.open_internal_topic(
            TRANSACTION_STATE_TOPIC,
            self.config.num_partitions,
            &[
                ("cleanup.policy", "compact"),
                ("compression.type", "uncompressed"),
                ("segment.bytes", &segment_bytes),
            ],
        )?;
        let coordinator = TxnCoordinator::new(
            self.config.clone(),
            Arc::new(PartitionLog::new(parts.clone())),
            Arc::new(PartitionMarkers {
                core: Arc::downgrade(&self.core),
                groups: Arc::downgrade(&self.groups),
            }),
            Arc::new(BrokerProducerIds(Arc::downgrade(&self.core))),
            Arc::new(crate::group_timers::BrokerClock),
            group_timers::spawner(),
        );
        for (i, p) in parts.iter().enumerate() {
            p.for_each_batch_chunk(0, 8 << 20, |offset, buf| {
                Some(coordinator.replay_chunk(i as i32, offset, buf))
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        coordinator.finish_load();
        if tokio::runtime::Handle::try_current().is_ok() {
            start_timers(&coordinator);
        }
        let _ = self.cell.set(coordinator);
        tracing::info!(partitions = parts.len(), "opened {TRANSACTION_STATE_TOPIC}");
        Ok(self.cell.get().expect("set above"))
    }
}

/// The coordinator's settings, with Kafka's names; and the topic's segment size.
fn txn_config(s: &Settings) -> Result<(TxnConfig, i32), runnel_core::config::ConfigError> {
    Ok((
        TxnConfig {
            num_partitions: s.int("transaction.state.log.num.partitions")?,
            max_timeout_ms: s.int("transaction.max.timeout.ms")?,
            id_expiration_ms: s.int::<i64>("transactional.id.expiration.ms")?,
            abort_timed_out_interval_ms: s
                .int::<i64>("transaction.abort.timed.out.transaction.cleanup.interval.ms")?,
            remove_expired_interval_ms: s
                .int::<i64>("transaction.remove.expired.transaction.cleanup.interval.ms")?,
            transaction_version: runnel_protocol::api::TRANSACTION_VERSION,
        },
        s.int("transaction.state.log.segment.bytes")?,
    ))
}

/// Run the coordinator's timers (timeouts, id expiry) until it is dropped.
fn start_timers(coordinator: &Arc<TxnCoordinator>) {
    let weak = Arc::downgrade(coordinator);
    tokio::spawn(async move {
        loop {
            let next = match weak.upgrade() {
                Some(c) => c
                    .tick()
                    .unwrap_or_else(|| std::time::Instant::now() + Duration::from_secs(1)),
                None => return,
            };
            tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        }
    });
}

struct BrokerProducerIds(Weak<Broker>);

impl ProducerIds for BrokerProducerIds {
    fn next_producer_id(&self) -> Result<i64, E> {
        let core = self.0.upgrade().ok_or(E::CoordinatorNotAvailable)?;
        runnel_core::blocking::in_place(|| core.next_producer_id()).map_err(|e| {
            tracing::error!(error = %e.message, "cannot allocate a producer id");
            E::CoordinatorNotAvailable
        })
    }
}

/// Markers written to the partitions, as the partition leaders do for Kafka's
/// WriteTxnMarkers. Each marker is appended, then all are waited durable. A marker
/// on `__consumer_offsets` applies or drops the transaction's offsets once durable.
struct PartitionMarkers {
    core: Weak<Broker>,
    groups: Weak<GroupCoordinator>,
}

impl TxnMarkers for PartitionMarkers {
    fn write_markers(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        partitions: Vec<(String, i32)>,
    ) -> DurableFuture {
        let core = self.core.clone();
        let groups = self.groups.clone();
        Box::pin(async move {
            // Append every marker first, so the partitions' fsyncs run together.
            let mut written = Vec::with_capacity(partitions.len());
            for (topic, index) in &partitions {
                if let Some(w) =
                    append_marker(&core, producer_id, producer_epoch, commit, topic, *index).await?
                {
                    written.push((topic, *index, w));
                }
            }
            for (topic, index, (p, end)) in written {
                let mut warned = false;
                while p.wait_durable(end).await.is_err() {
                    // A failed fsync refuses writes until a restart, which resumes the
                    // transaction; until then the coordinator stays in Prepare*.
                    if !warned {
                        tracing::error!(
                            topic,
                            partition = index,
                            producer_id,
                            "a transaction marker is not durable: the partition's fsync failed"
                        );
                        warned = true;
                    }
                    if core.strong_count() == 0 {
                        return Err(E::CoordinatorNotAvailable);
                    }
                    tokio::time::sleep(MARKER_RETRY).await;
                }
                if topic == OFFSETS_TOPIC {
                    if let Some(g) = groups.upgrade() {
                        g.complete_txn(index, producer_id, commit);
                    }
                }
            }
            Ok(())
        })
    }
}

/// Append one marker, retrying storage errors. `None` when there is nothing to wait
/// for: the partition no longer exists (skipped, as Kafka's marker channel does), or a
/// newer epoch already wrote there (Kafka's INVALID_PRODUCER_EPOCH from
/// WriteTxnMarkers: the marker is stale).
async fn append_marker(
    core: &Weak<Broker>,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    topic: &str,
    index: i32,
) -> Result<Option<(Arc<Partition>, u64)>, E> {
    let mut warned = false;
    loop {
        let broker = core.upgrade().ok_or(E::CoordinatorNotAvailable)?;
        let Some(p) = broker.partition(topic, index) else {
            tracing::info!(
                topic,
                partition = index,
                producer_id,
                "skipping the marker of a partition that no longer exists"
            );
            return Ok(None);
        };
        drop(broker);
        let part = p.clone();
        let appended = tokio::task::spawn_blocking(move || {
            part.append_marker(
                producer_id,
                producer_epoch,
                commit,
                runnel_storage::now_ms(),
            )
        })
        .await
        .map_err(|_| E::CoordinatorNotAvailable)?;
        let error = match appended {
            Ok(a) => return Ok(Some((p, a.last_offset + 1))),
            Err(AppendError::Producer(e)) => {
                tracing::warn!(topic, partition = index, producer_id, error = %e, "a transaction marker was refused");
                return Ok(None);
            }
            Err(e) => format!("{e:?}"),
        };
        if !warned {
            tracing::warn!(
                topic,
                partition = index,
                producer_id,
                error,
                "a transaction marker write failed; retrying"
            );
            warned = true;
        }
        tokio::time::sleep(MARKER_RETRY).await;
    }
}
