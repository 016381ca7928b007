//! Background log maintenance: the retention task (Kafka's `LogManager` retention check)
//! and the log cleaner thread (compaction), each on its own OS thread because both do
//! blocking file I/O for seconds at a time.
//!
//! Deadlines (README "Erasing personal data"): a record past `retention.ms` is gone from
//! disk within `log.retention.check.interval.ms` (+ `file.delete.delay.ms`); on a
//! compacted topic, a record superseded by a newer value or a tombstone is gone within
//! `max.compaction.lag.ms` + `log.cleaner.backoff.ms` (+ `file.delete.delay.ms`). Both
//! intervals default to short values here (Kafka's are 5 minutes and 15 s).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use runnel_storage::cleaner::{self, CleanerSettings, Throttle};

use crate::broker::Broker;
use crate::topic_config::TopicConfig;

/// Broker settings of the maintenance threads, by Kafka name.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceConfig {
    /// `log.retention.check.interval.ms` (Kafka: 300000; Runnel: 10000).
    pub retention_check_interval_ms: u64,
    /// `log.cleaner.enable`.
    pub cleaner_enable: bool,
    /// `log.cleaner.backoff.ms` (Kafka: 15000; Runnel: 5000): sleep between passes.
    pub cleaner_backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`.
    pub dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.max.bytes.per.second` (Kafka: unlimited; Runnel: 100 MiB/s, so that
    /// cleaning does not starve produce and fetch of disk bandwidth).
    pub io_max_bytes_per_second: f64,
}

impl MaintenanceConfig {
    pub fn from_settings(s: &BTreeMap<String, String>) -> MaintenanceConfig {
        fn get<T: std::str::FromStr>(s: &BTreeMap<String, String>, name: &str, default: T) -> T {
            match s.get(name) {
                None => default,
                Some(v) => v.trim().parse().unwrap_or_else(|_| {
                    tracing::warn!(name, value = %v, "ignoring an unparsable setting");
                    default
                }),
            }
        }
        MaintenanceConfig {
            retention_check_interval_ms: get(s, "log.retention.check.interval.ms", 10_000u64)
                .max(1),
            cleaner_enable: get(s, "log.cleaner.enable", true),
            cleaner_backoff_ms: get(s, "log.cleaner.backoff.ms", 5_000u64).max(1),
            dedupe_buffer_bytes: get(s, "log.cleaner.dedupe.buffer.size", 128usize << 20)
                .max(1 << 10),
            io_max_bytes_per_second: get(
                s,
                "log.cleaner.io.max.bytes.per.second",
                100.0 * 1024.0 * 1024.0,
            ),
        }
    }
}

struct Shared {
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    /// Sleep up to `ms`, returning true if asked to stop.
    fn sleep(&self, ms: u64) -> bool {
        let stop = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        if *stop {
            return true;
        }
        let (stop, _) = self
            .wake
            .wait_timeout(stop, Duration::from_millis(ms))
            .unwrap_or_else(|p| p.into_inner());
        *stop
    }
}

/// The running maintenance threads. `stop` joins them; the broker must not close its
/// logs before.
pub struct LogMaintenance {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl LogMaintenance {
    pub fn start(broker: Arc<Broker>) -> std::io::Result<LogMaintenance> {
        let cfg = MaintenanceConfig::from_settings(&broker.config.settings);
        let shared = Arc::new(Shared {
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let mut threads = Vec::new();
        {
            let (broker, shared, cfg) = (broker.clone(), shared.clone(), cfg.clone());
            threads.push(std::thread::Builder::new().name("retention".into()).spawn(
                move || {
                    while !shared.sleep(cfg.retention_check_interval_ms) {
                        retention_pass(&broker);
                    }
                },
            )?);
        }
        if cfg.cleaner_enable {
            let shared2 = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("log-cleaner".into())
                    .spawn(move || {
                        let mut throttle = Throttle::new(cfg.io_max_bytes_per_second);
                        while !shared2.sleep(cfg.cleaner_backoff_ms) {
                            cleaner_pass(&broker, &cfg, &shared2, &mut throttle);
                        }
                    })?,
            );
        }
        Ok(LogMaintenance { shared, threads })
    }

    /// Stop the threads and wait for them (a pass in progress finishes first).
    pub fn stop(self) {
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Delete segments past `retention.ms` / `retention.bytes` on every topic whose
/// `cleanup.policy` includes `delete`, and remove `.deleted` files that are due.
fn retention_pass(broker: &Broker) {
    let now = runnel_storage::now_ms();
    let topics: Vec<_> = broker.topics().all().cloned().collect();
    for meta in topics {
        let cfg = TopicConfig::resolve(&meta.configs, &broker.topic_defaults);
        let (ms, bytes) = if cfg.cleanup_policy.delete {
            (cfg.retention_ms, cfg.retention_bytes)
        } else {
            (-1, -1)
        };
        for p in broker.partitions_of(&meta.name) {
            let hw = p.high_watermark();
            let result = p.log.lock().apply_retention(ms, bytes, now, hw);
            match result {
                Ok(out) if out.segments_deleted > 0 => tracing::info!(
                    partition = %p.tp, segments = out.segments_deleted, bytes = out.bytes_deleted,
                    log_start_offset = out.log_start_offset, "retention deleted old segments"),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(partition = %p.tp, error = %e, "retention failed")
                }
            }
        }
    }
}

/// One pass of the cleaner over every compacted partition: roll active segments that
/// hold records older than `max.compaction.lag.ms`, then clean what is due.
fn cleaner_pass(
    broker: &Broker,
    cfg: &MaintenanceConfig,
    shared: &Shared,
    throttle: &mut Throttle,
) {
    let topics: Vec<_> = broker.topics().all().cloned().collect();
    for meta in topics {
        let tc = TopicConfig::resolve(&meta.configs, &broker.topic_defaults);
        if !tc.cleanup_policy.compact {
            continue;
        }
        for p in broker.partitions_of(&meta.name) {
            if *shared.stop.lock().unwrap_or_else(|e| e.into_inner()) {
                return;
            }
            let now = runnel_storage::now_ms();
            let marker = p
                .log
                .lock()
                .dir()
                .join(runnel_storage::layout::COMPACT_NOW_MARKER);
            let marked = marker.exists();
            let force = marked;
            let max_lag = if force { 0 } else { tc.max_compaction_lag_ms };
            let rolled = p.log.lock().roll_if_older_than(now, max_lag);
            match rolled {
                Ok(true) => {
                    // The rolled segment is cleanable once it is durable.
                    if !p.write_caching() {
                        let _ = p.log.sync_to(p.log.lock().log_end_offset());
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(partition = %p.tp, error = %e, "rolling for compaction failed")
                }
            }
            let settings = CleanerSettings {
                now_ms: now,
                min_compaction_lag_ms: if force { 0 } else { tc.min_compaction_lag_ms },
                max_compaction_lag_ms: tc.max_compaction_lag_ms,
                min_cleanable_dirty_ratio: tc.min_cleanable_dirty_ratio,
                delete_retention_ms: tc.delete_retention_ms,
                dedupe_buffer_bytes: cfg.dedupe_buffer_bytes,
                force,
                // What is fsynced is cleanable even before the flusher moves the high
                // watermark (a roll above has just been synced).
                upper_bound: p.high_watermark().max(p.log.durable_offset()),
            };
            let started = std::time::Instant::now();
            match cleaner::clean(&p.log, &settings, throttle) {
                Ok(Some(stats)) => tracing::info!(
                    partition = %p.tp,
                    segments = stats.segments_read,
                    read_bytes = stats.bytes_read,
                    written_bytes = stats.bytes_written,
                    records_removed = stats.records_removed,
                    tombstones_removed = stats.tombstones_removed,
                    end_offset = stats.end_offset,
                    seconds = started.elapsed().as_secs_f64(),
                    "cleaned"
                ),
                Ok(None) => {}
                Err(e) => tracing::error!(partition = %p.tp, error = %e, "cleaning failed"),
            }
            if marked {
                if let Err(e) = std::fs::remove_file(&marker) {
                    tracing::warn!(partition = %p.tp, error = %e, "removing the compact-now marker failed");
                }
            }
            if let Err(e) = p.log.lock().purge_deleted(now) {
                tracing::error!(partition = %p.tp, error = %e, "removing deleted files failed");
            }
        }
    }
}
