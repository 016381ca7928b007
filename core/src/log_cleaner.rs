//! Background log maintenance: the retention task (Kafka's `LogManager` retention check),
//! the log cleaner thread (compaction) and the producer id expiration check (Kafka's
//! `PeriodicProducerExpirationCheck`), each on its own OS thread because all do blocking
//! file I/O (the cleaner for seconds at a time).
//!
//! Deadlines (README "Erasing personal data"): a record past `retention.ms` is gone from
//! disk within `log.retention.check.interval.ms` (+ `file.delete.delay.ms`); on a
//! compacted topic, a record superseded by a newer value or a tombstone is gone within
//! `max.compaction.lag.ms` + `log.cleaner.backoff.ms` (+ `file.delete.delay.ms`). Both
//! intervals default to short values here (Kafka's are 5 minutes and 15 s).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use runnel_storage::cleaner::{CleanerSettings, Throttle};

use crate::broker::Broker;
use crate::config::ConfigError;
use crate::poison::or_stop;
use crate::settings::Settings;
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
    /// Read from the checked broker settings.
    pub fn from_settings(s: &Settings) -> Result<MaintenanceConfig, ConfigError> {
        Ok(MaintenanceConfig {
            retention_check_interval_ms: s.int("log.retention.check.interval.ms")?,
            cleaner_enable: s.bool("log.cleaner.enable")?,
            cleaner_backoff_ms: s.int("log.cleaner.backoff.ms")?,
            dedupe_buffer_bytes: s.int("log.cleaner.dedupe.buffer.size")?,
            io_max_bytes_per_second: s.double("log.cleaner.io.max.bytes.per.second")?,
        })
    }
}

struct Shared {
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    /// Sleep up to `ms`, returning true if asked to stop.
    fn sleep(&self, ms: u64) -> bool {
        let stop = or_stop(self.stop.lock(), "maintenance");
        if *stop {
            return true;
        }
        let (stop, _) = or_stop(
            self.wake.wait_timeout(stop, Duration::from_millis(ms)),
            "maintenance",
        );
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
        let cfg = broker.config.maintenance.clone();
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
        {
            let (broker, shared) = (broker.clone(), shared.clone());
            let interval_ms = broker.config.producer_id_expiration_check_interval_ms;
            threads.push(
                std::thread::Builder::new()
                    .name("producer-expiry".into())
                    .spawn(move || {
                        while !shared.sleep(interval_ms) {
                            producer_expiry_pass(&broker, &shared);
                        }
                    })?,
            );
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
        *or_stop(self.shared.stop.lock(), "maintenance") = true;
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
            let result = p.apply_retention(ms, bytes, now);
            match result {
                Ok(out) if out.segments_deleted > 0 => tracing::info!(
                    partition = %p.tp, segments = out.segments_deleted, bytes = out.bytes_deleted,
                    log_start_offset = out.log_start_offset, "retention deleted old segments"),
                Ok(_) => {}
                // Logged once per episode where the disk filled (runnel_storage::space).
                Err(runnel_storage::StorageError::NoSpace(e)) => {
                    tracing::debug!(partition = %p.tp, error = %e, "retention: no space")
                }
                Err(e) => {
                    tracing::error!(partition = %p.tp, error = %e, "retention failed")
                }
            }
        }
    }
}

/// Forget, in every partition, the producers idle past `producer.id.expiration.ms`.
/// Where some were forgotten, a snapshot at the log end is written too, so the newest
/// snapshot (and the two kept) shrink with memory instead of holding them until the next
/// segment roll.
fn producer_expiry_pass(broker: &Broker, shared: &Shared) {
    let expiration_ms = broker.config.producer_id_expiration_ms;
    let topics: Vec<String> = broker.topics().all().map(|m| m.name.clone()).collect();
    for topic in topics {
        for p in broker.partitions_of(&topic) {
            if *or_stop(shared.stop.lock(), "maintenance") {
                return;
            }
            match p.expire_producers(runnel_storage::now_ms(), expiration_ms) {
                Ok((0, _)) => {}
                Ok((removed, left)) => {
                    tracing::debug!(partition = %p.tp, removed, left, "expired producer ids")
                }
                // An offline partition: logged when it went offline.
                Err(_) => {}
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
            if *or_stop(shared.stop.lock(), "maintenance") {
                return;
            }
            let now = runnel_storage::now_ms();
            let marker = p.compact_now_marker();
            let marked = marker.exists();
            let force = marked;
            let max_lag = if force { 0 } else { tc.max_compaction_lag_ms };
            match p.roll_for_compaction(now, max_lag) {
                Ok(_) | Err(runnel_storage::StorageError::NoSpace(_)) => {}
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
                // Set by the partition: its high watermark or durable offset.
                upper_bound: 0,
            };
            let started = std::time::Instant::now();
            match p.clean(settings, throttle) {
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
                // Nothing was swapped (the old segments stand) and the next pass
                // retries; the full disk is logged once per episode.
                Err(runnel_storage::StorageError::NoSpace(e)) => {
                    tracing::debug!(partition = %p.tp, error = %e, "cleaning stopped: no space")
                }
                Err(e) => tracing::error!(partition = %p.tp, error = %e, "cleaning failed"),
            }
            if marked {
                if let Err(e) = std::fs::remove_file(&marker) {
                    tracing::warn!(partition = %p.tp, error = %e, "removing the compact-now marker failed");
                }
            }
            if let Err(e) = p.purge_deleted(now) {
                tracing::error!(partition = %p.tp, error = %e, "removing deleted files failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maintenance(pairs: &[(&str, &str)]) -> Result<MaintenanceConfig, ConfigError> {
        let given = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        MaintenanceConfig::from_settings(&Settings::parse(&given)?)
    }

    #[test]
    fn defaults_are_runnels_short_intervals() {
        assert_eq!(
            maintenance(&[]).unwrap(),
            MaintenanceConfig {
                retention_check_interval_ms: 10_000,
                cleaner_enable: true,
                cleaner_backoff_ms: 5_000,
                dedupe_buffer_bytes: 128 << 20,
                io_max_bytes_per_second: 100.0 * 1024.0 * 1024.0,
            }
        );
        let c = maintenance(&[
            ("log.retention.check.interval.ms", "200"),
            ("log.cleaner.enable", "false"),
            ("log.cleaner.io.max.bytes.per.second", "1.5e6"),
        ])
        .unwrap();
        assert_eq!(c.retention_check_interval_ms, 200);
        assert!(!c.cleaner_enable);
        assert_eq!(c.io_max_bytes_per_second, 1.5e6);
    }

    /// Each of these used to fall back to the default (or be clamped) with a log line;
    /// now the broker refuses to start, naming the setting.
    #[test]
    fn bad_maintenance_settings_refuse_naming_the_setting() {
        for (name, bad) in [
            ("log.retention.check.interval.ms", "10s"),
            ("log.retention.check.interval.ms", "0"),
            ("log.cleaner.enable", "yes"),
            ("log.cleaner.backoff.ms", "0"),
            ("log.cleaner.backoff.ms", "-5"),
            ("log.cleaner.dedupe.buffer.size", "128M"),
            ("log.cleaner.dedupe.buffer.size", "512"),
            ("log.cleaner.io.max.bytes.per.second", "fast"),
            ("log.cleaner.io.max.bytes.per.second", "0"),
        ] {
            let err = maintenance(&[(name, bad)]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid value {bad:?} for {name}: expected ")),
                "{name}={bad}: {err}"
            );
        }
    }
}
