//! All partition logs under one data directory (Kafka's `LogManager`): discovery on
//! start, the clean-shutdown marker, creation and deletion of partition directories.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::group_commit::SharedLog;
use crate::layout::{self, TopicPartition, CLEAN_SHUTDOWN_FILE};
use crate::log::{Log, OpenMode};
use crate::{fault, sync_dir, LogConfig, Result, StorageError};

pub struct LogManager {
    data_dir: PathBuf,
    logs: RwLock<HashMap<TopicPartition, Arc<SharedLog>>>,
    opened_clean: bool,
}

impl LogManager {
    /// Open every partition log under `data_dir`. After a crash (no clean-shutdown
    /// marker) each log is recovered from its recovery point.
    pub fn open(
        data_dir: &Path,
        config_for: impl Fn(&TopicPartition) -> LogConfig,
    ) -> Result<LogManager> {
        // Before any log I/O, so a plan sees all of it.
        fault::install_from_env().map_err(StorageError::InvalidConfig)?;
        fault::install_journal_from_env().map_err(StorageError::InvalidConfig)?;
        crate::clock::install_from_env().map_err(StorageError::InvalidConfig)?;
        std::fs::create_dir_all(data_dir)?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let mode = if clean {
            OpenMode::Clean
        } else {
            OpenMode::Recover
        };
        let mut logs = HashMap::new();
        for entry in std::fs::read_dir(data_dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if layout::is_deleting_dir_name(name) {
                // A deletion that a crash interrupted: finish it.
                std::fs::remove_dir_all(entry.path())?;
                continue;
            }
            let Some(tp) = layout::parse_partition_dir_name(name) else {
                tracing::debug!(
                    dir = name,
                    "skipping a directory that is not a partition log"
                );
                continue;
            };
            let log = Log::open(&entry.path(), config_for(&tp), mode)?;
            let report = log.recovery_report();
            if report.truncated_bytes > 0 {
                tracing::warn!(partition = %tp, ?report, "recovered the log after an unclean shutdown");
            }
            logs.insert(tp, Arc::new(SharedLog::new(log)));
        }
        if clean {
            // From here on a crash must lead to recovery.
            std::fs::remove_file(&marker)?;
            sync_dir(data_dir)?;
        }
        tracing::info!(dir = %data_dir.display(), partitions = logs.len(), clean, "opened the log directory");
        Ok(LogManager {
            data_dir: data_dir.to_path_buf(),
            logs: RwLock::new(logs),
            opened_clean: clean,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether the previous shutdown was clean.
    pub fn opened_clean(&self) -> bool {
        self.opened_clean
    }

    // The map is changed only by single insert and remove calls, after any file work
    // that could fail, so a panic elsewhere under the lock leaves it whole: a poisoned
    // lock is safe to take over here. Each log has its own lock (`SharedLog::lock`).
    fn logs_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TopicPartition, Arc<SharedLog>>> {
        self.logs.read().unwrap_or_else(|p| p.into_inner())
    }

    fn logs_write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<TopicPartition, Arc<SharedLog>>> {
        self.logs.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<SharedLog>> {
        self.logs_read().get(tp).cloned()
    }

    pub fn partitions(&self) -> Vec<TopicPartition> {
        let mut v: Vec<_> = self.logs_read().keys().cloned().collect();
        v.sort();
        v
    }

    /// Return the partition's log, creating an empty one if it does not exist.
    pub fn get_or_create(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<SharedLog>> {
        let mut logs = self.logs_write();
        if let Some(log) = logs.get(tp) {
            return Ok(log.clone());
        }
        if tp.topic.contains('/') || tp.topic.starts_with('.') || tp.topic.is_empty() {
            return Err(StorageError::BadDirectory(layout::partition_dir_name(tp)));
        }
        let log = Log::open(
            &self.data_dir.join(layout::partition_dir_name(tp)),
            config,
            OpenMode::Recover,
        )?;
        sync_dir(&self.data_dir)?;
        let log = Arc::new(SharedLog::new(log));
        logs.insert(tp.clone(), log.clone());
        Ok(log)
    }

    /// Remove a partition's log: rename its directory aside (atomic), then delete it.
    /// Readers holding open files keep working until they let go.
    pub fn delete(&self, tp: &TopicPartition) -> Result<bool> {
        let removed = self.logs_write().remove(tp);
        if removed.is_none() {
            return Ok(false);
        }
        let dir = self.data_dir.join(layout::partition_dir_name(tp));
        let aside = self
            .data_dir
            .join(layout::deleting_dir_name(tp, crate::now_ms()));
        fault::rename(&dir, &aside)?;
        sync_dir(&self.data_dir)?;
        std::fs::remove_dir_all(&aside)?;
        Ok(true)
    }

    /// Flush and close every log, then write the clean-shutdown marker, unless a log
    /// failed to close (a poisoned one always does): the next start then recovers all.
    pub fn close(&self) -> Result<()> {
        let logs = self.logs_read();
        let mut first_error = None;
        for (tp, log) in logs.iter() {
            if let Err(e) = log.lock().and_then(|mut log| log.close()) {
                tracing::error!(partition = %tp, error = %e, "closing a log failed; the next start recovers it");
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let marker = self.data_dir.join(CLEAN_SHUTDOWN_FILE);
        let file = std::fs::File::create(&marker)?;
        fault::sync_all(&file, || &marker)?;
        sync_dir(&self.data_dir)?;
        Ok(())
    }
}
