//! `runnel erase`: erase a key from a compacted topic by a deadline, and prove it.
//!
//! `erase` produces a tombstone (acks=all) for the key to each partition that holds it;
//! the cleaner then removes every older record of the key within `max.compaction.lag.ms`
//! plus its check interval. `erase status` reads the partition's files on disk (like
//! `kafka-dump-log.sh`, so it runs on the broker's host) and reports "erased" only when
//! no byte of any older record of the key is left in any file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use runnel_client::admin::ConfigResource;
use runnel_client::partitioner::partition_for_key;
use runnel_client::{Acks, Producer, ProducerConfig, ProducerRecord};
use runnel_storage::cleaner::{scan_dir_for_key, KeyOccurrence};
use runnel_storage::layout::{parse_partition_dir_name, COMPACT_NOW_MARKER};
use serde_json::json;

use super::topics::ensure_exists;
use super::{format_time, now_ms, print_table, CliError, CliResult, Ctx, Output};

/// The cleaner's default check interval (`log.cleaner.backoff.ms`), when the broker does
/// not report its own.
const DEFAULT_CLEANER_BACKOFF_MS: i64 = 5_000;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EraseCommand {
    #[command(subcommand)]
    status: Option<EraseSub>,
    #[command(flatten)]
    target: EraseTarget,
    /// Also have the cleaner compact the partition(s) at its next pass (within
    /// log.cleaner.backoff.ms), whatever the dirty ratio. Needs --data-dir.
    #[arg(long)]
    now: bool,
    /// Produce the tombstone to this partition instead of the ones that hold the key.
    #[arg(long)]
    partition: Option<i32>,
}

#[derive(Subcommand)]
enum EraseSub {
    /// Report "erased" (nothing of the key but its tombstone left in any file) or
    /// "pending" (which files still hold it, and the deadline for the cleaner).
    Status(EraseTarget),
}

#[derive(Args, Clone)]
struct EraseTarget {
    /// The compacted topic.
    #[arg(long, required = false, default_value = "")]
    topic: String,
    /// The key, as UTF-8 text.
    #[arg(long, required = false, default_value = "")]
    key: String,
    /// The broker's data directory (`log.dirs`), read directly: run on the broker host.
    #[arg(long, env = "RUNNEL_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

impl EraseTarget {
    fn check(&self) -> CliResult<()> {
        if self.topic.is_empty() || self.key.is_empty() {
            return Err(CliError::Usage("--topic and --key are required".into()));
        }
        Ok(())
    }
}

pub(crate) async fn run(ctx: &Ctx, cmd: EraseCommand) -> CliResult<()> {
    match cmd.status {
        Some(EraseSub::Status(t)) => status(ctx, &t).await,
        None => erase(ctx, &cmd.target, cmd.now, cmd.partition).await,
    }
}

/// The topic's settings that make up the deadline.
struct Deadline {
    max_compaction_lag_ms: i64,
    file_delete_delay_ms: i64,
    cleaner_backoff_ms: i64,
    compact: bool,
}

async fn deadline_settings(ctx: &Ctx, topic: &str) -> CliResult<Deadline> {
    let entries = ctx
        .admin
        .describe_configs(&ConfigResource::Topic(topic.to_string()))
        .await?;
    let get = |name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    let long = |name: &str, default: i64| {
        get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(default)
    };
    let broker = ctx
        .admin
        .describe_configs(&ConfigResource::Broker(0))
        .await
        .unwrap_or_default();
    let backoff = broker
        .iter()
        .find(|e| e.name == "log.cleaner.backoff.ms")
        .and_then(|e| e.value.as_deref()?.parse().ok())
        .unwrap_or(DEFAULT_CLEANER_BACKOFF_MS);
    Ok(Deadline {
        max_compaction_lag_ms: long("max.compaction.lag.ms", i64::MAX),
        file_delete_delay_ms: long("file.delete.delay.ms", 0),
        cleaner_backoff_ms: backoff,
        compact: get("cleanup.policy").is_some_and(|p| p.split(',').any(|x| x.trim() == "compact")),
    })
}

/// `<data dir>/<topic>-<partition>` for every partition of `topic` found there.
fn partition_dirs(data_dir: &Path, topic: &str) -> CliResult<BTreeMap<i32, PathBuf>> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(data_dir).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the data directory {} ({e}); run on the broker host with --data-dir",
            data_dir.display()
        ))
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(tp) = parse_partition_dir_name(&name).filter(|tp| tp.topic == topic) {
            out.insert(tp.partition, entry.path());
        }
    }
    Ok(out)
}

fn scan(dirs: &BTreeMap<i32, PathBuf>, key: &[u8]) -> CliResult<Vec<(i32, String, KeyOccurrence)>> {
    let mut found = Vec::new();
    for (p, dir) in dirs {
        let hits = scan_dir_for_key(dir, key)
            .map_err(|e| CliError::Broker(format!("scanning {}: {e}", dir.display())))?;
        found.extend(hits.into_iter().map(|(file, o)| (*p, file, o)));
    }
    Ok(found)
}

async fn erase(ctx: &Ctx, t: &EraseTarget, now: bool, partition: Option<i32>) -> CliResult<()> {
    t.check()?;
    ensure_exists(ctx, &t.topic).await?;
    let d = deadline_settings(ctx, &t.topic).await?;
    if !d.compact {
        return Err(CliError::Usage(format!(
            "topic {} is not compacted (cleanup.policy has no \"compact\"): a tombstone would \
             not erase anything; use retention.ms or `runnel topics delete-records`",
            t.topic
        )));
    }
    let desc = ctx.admin.describe_topics(&[t.topic.as_str()]).await?;
    let count = desc.first().map_or(0, |d| d.partitions.len()) as i32;
    if count == 0 {
        return Err(CliError::Broker(format!(
            "no partitions for topic {}",
            t.topic
        )));
    }
    let local = partition_dirs(&t.data_dir, &t.topic).ok();
    let targets: Vec<i32> = match (partition, &local) {
        (Some(p), _) => vec![p],
        (None, Some(dirs)) if !dirs.is_empty() => {
            let mut ps: Vec<i32> = scan(dirs, t.key.as_bytes())?
                .iter()
                .filter(|(_, _, o)| !o.tombstone)
                .map(|(p, _, _)| *p)
                .collect();
            ps.dedup();
            if ps.is_empty() {
                ps.push(partition_for_key(t.key.as_bytes(), count));
            }
            ps
        }
        // Not on the broker host: the Java client's default partition for the key.
        _ => vec![partition_for_key(t.key.as_bytes(), count)],
    };
    if now && local.as_ref().is_none_or(|d| d.is_empty()) {
        return Err(CliError::Usage(format!(
            "--now needs the broker's data directory; {} has no partitions of {}",
            t.data_dir.display(),
            t.topic
        )));
    }
    let producer = Producer::new(
        ctx.client.clone(),
        ProducerConfig {
            acks: Acks::All,
            ..ProducerConfig::default()
        },
    )?;
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for p in targets {
        let delivery = producer
            .send_record(
                ProducerRecord::new(&t.topic)
                    .key(t.key.as_bytes().to_vec())
                    .partition(p),
            )
            .await?;
        let (p, offset) = delivery.await?;
        let sent_ms = now_ms();
        let deadline = sent_ms
            .saturating_add(d.max_compaction_lag_ms)
            .saturating_add(d.cleaner_backoff_ms)
            .saturating_add(d.file_delete_delay_ms);
        if now {
            if let Some(dir) = local.as_ref().and_then(|m| m.get(&p)) {
                std::fs::write(dir.join(COMPACT_NOW_MARKER), b"").map_err(|e| {
                    CliError::Broker(format!("writing the compact-now marker: {e}"))
                })?;
            }
        }
        let deadline_text = if d.max_compaction_lag_ms == i64::MAX && !now {
            "none: the topic has no max.compaction.lag.ms".to_string()
        } else if now {
            format!("within {} ms (compaction requested)", d.cleaner_backoff_ms)
        } else {
            format_time(deadline)
        };
        rows.push(vec![
            t.topic.clone(),
            p.to_string(),
            offset.to_string(),
            deadline_text.clone(),
        ]);
        out.push(json!({"topic": t.topic, "partition": p, "tombstone_offset": offset,
            "erased_by": if d.max_compaction_lag_ms == i64::MAX && !now { serde_json::Value::Null } else { json!(deadline) },
            "erased_by_text": deadline_text}));
    }
    producer.close().await?;
    match ctx.output {
        Output::Json => ctx.print_json(&json!(out)),
        Output::Table => print_table(
            &["TOPIC", "PARTITION", "TOMBSTONE-OFFSET", "ERASED-BY"],
            &rows,
        ),
    }
    Ok(())
}

async fn status(ctx: &Ctx, t: &EraseTarget) -> CliResult<()> {
    t.check()?;
    ensure_exists(ctx, &t.topic).await?;
    let d = deadline_settings(ctx, &t.topic).await?;
    let dirs = partition_dirs(&t.data_dir, &t.topic)?;
    if dirs.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds no partition of {}; run on the broker host with --data-dir",
            t.data_dir.display(),
            t.topic
        )));
    }
    let found = scan(&dirs, t.key.as_bytes())?;
    let values: Vec<&(i32, String, KeyOccurrence)> =
        found.iter().filter(|(_, _, o)| !o.tombstone).collect();
    let tombstones: Vec<&(i32, String, KeyOccurrence)> =
        found.iter().filter(|(_, _, o)| o.tombstone).collect();
    let erased = values.is_empty();
    let now = now_ms();
    // The deadline counts from the newest tombstone after the values it erases.
    let deadline = |p: i32| -> Option<i64> {
        let last_value = values
            .iter()
            .filter(|v| v.0 == p)
            .map(|v| v.2.offset)
            .max()?;
        let t = tombstones
            .iter()
            .filter(|x| x.0 == p && x.2.offset > last_value)
            .map(|x| x.2.timestamp)
            .min()?;
        (d.max_compaction_lag_ms < i64::MAX).then(|| {
            t.saturating_add(d.max_compaction_lag_ms)
                .saturating_add(d.cleaner_backoff_ms)
                .saturating_add(d.file_delete_delay_ms)
        })
    };
    match ctx.output {
        Output::Json => ctx.print_json(&json!({
            "topic": t.topic,
            "key": t.key,
            "state": if erased { "erased" } else { "pending" },
            "tombstones": tombstones.iter().map(|(p, f, o)| json!({"partition": p, "file": f, "offset": o.offset})).collect::<Vec<_>>(),
            "remaining": values.iter().map(|(p, f, o)| json!({
                "partition": p, "file": f, "offset": o.offset, "timestamp": o.timestamp,
                "erased_by": deadline(*p),
                "overdue": deadline(*p).is_some_and(|ms| ms < now),
            })).collect::<Vec<_>>(),
        })),
        Output::Table => {
            if erased {
                println!(
                    "erased: no record of key {:?} in {} other than {} tombstone(s)",
                    t.key,
                    t.topic,
                    tombstones.len()
                );
            } else {
                println!("pending: {} record(s) of key {:?} remain on disk", values.len(), t.key);
                let rows: Vec<Vec<String>> = values
                    .iter()
                    .map(|(p, f, o)| {
                        vec![
                            p.to_string(),
                            f.clone(),
                            o.offset.to_string(),
                            match deadline(*p) {
                                // Past due: the broker's clock went back since the
                                // tombstone (or differs from the clock that stamped
                                // it), or the cleaner is stalled: its log says which.
                                Some(ms) if ms < now => {
                                    format!("{} (overdue)", format_time(ms))
                                }
                                Some(ms) => format_time(ms),
                                None if d.max_compaction_lag_ms == i64::MAX => {
                                    "no deadline: max.compaction.lag.ms is unset".into()
                                }
                                None => "no tombstone yet: run `runnel erase`".into(),
                            },
                        ]
                    })
                    .collect();
                print_table(&["PARTITION", "FILE", "OFFSET", "REMOVED-BY"], &rows);
            }
        }
    }
    Ok(())
}
