//! `runnel groups ...`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use runnel_client::group::decode_assignment;
use runnel_client::{Consumer, ConsumerConfig, OffsetReset, OffsetSpec, TopicPartition};
use serde_json::json;

use super::{not_found, print_table, CliError, CliResult, Ctx, Output};

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// List consumer groups.
    List,
    /// Show a group's state, protocol, and per partition its committed offset, log end
    /// offset, lag (messages and time) and owning member.
    Describe { group: String },
}

pub(crate) async fn run(ctx: &Ctx, cmd: GroupsCommand) -> CliResult<()> {
    match cmd {
        GroupsCommand::List => list(ctx).await,
        GroupsCommand::Describe { group } => describe(ctx, &group).await,
    }
}

async fn list(ctx: &Ctx) -> CliResult<()> {
    let groups = ctx.admin.list_groups().await?;
    match ctx.output {
        Output::Json => ctx.print_json(&json!(groups
            .iter()
            .map(|g| json!({
                "group": g.group_id,
                "protocol_type": g.protocol_type,
                "state": g.state,
            }))
            .collect::<Vec<_>>())),
        Output::Table => {
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| vec![g.group_id.clone(), g.state.clone(), g.protocol_type.clone()])
                .collect();
            print_table(&["GROUP", "STATE", "PROTOCOL-TYPE"], &rows);
        }
    }
    Ok(())
}

/// One row of `groups describe`.
struct PartitionLag {
    tp: TopicPartition,
    committed: Option<i64>,
    log_end: Option<i64>,
    lag: Option<i64>,
    lag_ms: Option<i64>,
    member: Option<(String, String, String)>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn describe(ctx: &Ctx, group: &str) -> CliResult<()> {
    let desc = ctx
        .admin
        .describe_groups(&[group])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Broker(format!("no description of group {group}")))?;
    let committed = ctx.admin.fetch_group_offsets(group, None).await?;
    if desc.error_code == 69 /* GROUP_ID_NOT_FOUND */
        || (desc.state == "Dead" && committed.is_empty())
    {
        let groups = ctx.admin.list_groups().await?;
        return Err(not_found(
            "group",
            group,
            groups.iter().map(|g| g.group_id.as_str()),
        ));
    }
    if desc.error_code != 0 {
        return Err(CliError::Broker(format!(
            "describe group {group}: error code {}",
            desc.error_code
        )));
    }

    // Owners, from the members' consumer-protocol assignments.
    let mut owners: BTreeMap<TopicPartition, (String, String, String)> = BTreeMap::new();
    if desc.protocol_type == "consumer" || desc.protocol_type.is_empty() {
        for m in &desc.members {
            if let Ok(tps) = decode_assignment(bytes::Bytes::from(m.assignment.clone())) {
                for tp in tps {
                    owners.insert(
                        tp,
                        (
                            m.member_id.clone(),
                            m.client_id.clone(),
                            m.client_host.clone(),
                        ),
                    );
                }
            }
        }
    }
    let mut tps: Vec<TopicPartition> = committed.keys().cloned().collect();
    for tp in owners.keys() {
        if !committed.contains_key(tp) {
            tps.push(tp.clone());
        }
    }
    tps.sort();
    let ends = if tps.is_empty() {
        BTreeMap::new()
    } else {
        ctx.admin
            .list_offsets(
                &tps.iter()
                    .map(|tp| (tp.clone(), OffsetSpec::Latest))
                    .collect::<Vec<_>>(),
            )
            .await?
    };
    let mut rows = Vec::new();
    for tp in &tps {
        let c = committed.get(tp).copied().filter(|o| *o >= 0);
        let end = ends.get(tp).map(|o| o.offset);
        let lag = match (c, end) {
            (Some(c), Some(e)) => Some((e - c).max(0)),
            _ => None,
        };
        let lag_ms = match (c, lag) {
            (Some(_), Some(0)) => Some(0),
            (Some(c), Some(_)) => oldest_unconsumed_age(ctx, tp, c).await,
            _ => None,
        };
        rows.push(PartitionLag {
            tp: tp.clone(),
            committed: c,
            log_end: end,
            lag,
            lag_ms,
            member: owners.get(tp).cloned(),
        });
    }

    match ctx.output {
        Output::Json => {
            let parts: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "topic": r.tp.topic,
                        "partition": r.tp.partition,
                        "committed_offset": r.committed,
                        "log_end_offset": r.log_end,
                        "lag": r.lag,
                        "lag_ms": r.lag_ms,
                        "member_id": r.member.as_ref().map(|m| &m.0),
                        "client_id": r.member.as_ref().map(|m| &m.1),
                        "host": r.member.as_ref().map(|m| &m.2),
                    })
                })
                .collect();
            ctx.print_json(&json!({
                "group": group,
                "state": desc.state,
                "protocol_type": desc.protocol_type,
                "protocol": desc.protocol,
                "members": desc.members.len(),
                "total_lag": rows.iter().filter_map(|r| r.lag).sum::<i64>(),
                "partitions": parts,
            }));
        }
        Output::Table => {
            let proto = if desc.protocol.is_empty() {
                "-".to_string()
            } else {
                desc.protocol.clone()
            };
            println!(
                "Group: {group}  State: {}  Protocol: {}/{}  Members: {}",
                desc.state,
                if desc.protocol_type.is_empty() {
                    "-"
                } else {
                    &desc.protocol_type
                },
                proto,
                desc.members.len()
            );
            println!();
            let dash = |o: Option<i64>| o.map_or("-".to_string(), |v| v.to_string());
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let (member, client, host) = r
                        .member
                        .clone()
                        .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
                    vec![
                        r.tp.topic.clone(),
                        r.tp.partition.to_string(),
                        dash(r.committed),
                        dash(r.log_end),
                        dash(r.lag),
                        r.lag_ms.map_or("-".to_string(), format_age),
                        member,
                        client,
                        host,
                    ]
                })
                .collect();
            print_table(
                &[
                    "TOPIC",
                    "PARTITION",
                    "COMMITTED",
                    "LOG-END",
                    "LAG",
                    "LAG-TIME",
                    "MEMBER",
                    "CLIENT-ID",
                    "HOST",
                ],
                &table,
            );
        }
    }
    Ok(())
}

/// How long ago the record at `offset` (the oldest unconsumed one) was written, in ms.
async fn oldest_unconsumed_age(ctx: &Ctx, tp: &TopicPartition, offset: i64) -> Option<i64> {
    let mut consumer = Consumer::new(
        ctx.client.clone(),
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            max_partition_fetch_bytes: 64 << 10,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign([tp.clone()]);
    consumer.seek(tp, offset).ok()?;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let records = consumer.poll(Duration::from_millis(500)).await.ok()?;
        if let Some(r) = records.iter().find(|r| r.offset >= offset) {
            return Some((now_ms() - r.timestamp).max(0));
        }
    }
    None
}

/// `1h2m`, `3m4s`, `5.2s`, `120ms`.
fn format_age(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h{}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}
