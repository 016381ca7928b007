//! `runnel groups ...`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Subcommand;
use runnel_client::group::decode_assignment;
use runnel_client::{Consumer, ConsumerConfig, OffsetReset, OffsetSpec, TopicPartition};
use serde_json::json;

use super::park::{ParkArgs, ParkedArgs};
use super::{
    not_found, now_ms, parse_time, parse_topic_spec, print_table, topic_partitions, CliError,
    CliResult, Ctx, Output,
};

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// List consumer groups.
    List,
    /// Show a group's state, protocol, and per partition its committed offset, log end
    /// offset, lag (messages and time) and owning member.
    Describe { group: String },
    /// Move a group's committed offsets. Like Kafka's kafka-consumer-groups, this only
    /// shows the plan (partition, current offset, new offset) unless --execute is given.
    ///
    /// New offsets are clamped to [log start offset, log end offset] of each partition.
    /// Refused (exit 4) while the group has active members (state other than Empty or
    /// Dead): the broker only takes offsets from outside the group when it is empty.
    ResetOffsets(ResetArgs),
    /// Delete groups and their committed offsets. A group with active members is refused
    /// by the broker (NON_EMPTY_GROUP, exit 4): stop its consumers first.
    Delete {
        /// The groups to delete.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Copy poison record(s) at a group's position to a parking topic, then commit the
    /// group past them.
    ///
    /// The record(s) at the group's committed offset (or --offset) are copied byte for
    /// byte (key, value, headers, timestamp) to the parking topic, with headers naming
    /// their origin: runnel.parked.topic, runnel.parked.partition, runnel.parked.offset,
    /// runnel.parked.group, runnel.parked.timestamp (the original timestamp, ms) and
    /// runnel.parked.at (when it was parked, ms). The copy is produced with acks=all
    /// (fsynced), waited for and read back and compared; only then is the group's offset
    /// committed past the parked records. If anything fails before that, nothing is
    /// committed.
    ///
    /// The parking topic defaults to <TOPIC>.parked and is created with 1 partition if
    /// missing (parked records are few; one partition keeps them in parking order).
    /// A record from partition P goes to partition P mod (parking partitions).
    ///
    /// The broker takes a commit from outside the group only while the group is empty,
    /// so parking is refused (exit 4) while the group has active members. With --force,
    /// once the copy is safe, every member of the (classic) group is removed, as Kafka's
    /// removeMembersFromConsumerGroup does (LeaveGroup with member identities): running
    /// consumers get UNKNOWN_MEMBER_ID on their next heartbeat, rejoin and restart from
    /// the committed offsets, i.e. after the parked records. If a member rejoins before
    /// the commit lands, the removal and commit are retried a few times; if the commit
    /// still fails, the records stay parked, nothing is committed, and the command says
    /// how to finish by hand. Members of KIP-848 (group.protocol=consumer) groups, which
    /// LeaveGroup does not know, are removed with a ConsumerGroupHeartbeat of epoch -1
    /// on their behalf (what a member sends to leave); they rejoin the same way.
    Park(ParkArgs),
    /// List parked records: what the parking topics (*.parked) hold, with their origin.
    Parked(ParkedArgs),
}

/// `groups reset-offsets`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
#[command(group(
    clap::ArgGroup::new("mode")
        .required(true)
        .args(["to_earliest", "to_latest", "to_datetime", "to_offset", "shift_by"])
))]
pub struct ResetArgs {
    /// The group.
    group: String,
    /// A topic, or some of its partitions: TOPIC or TOPIC:P[,P...]. Repeatable.
    #[arg(long, value_name = "TOPIC[:P,...]")]
    topic: Vec<String>,
    /// Every topic-partition the group has committed offsets for.
    #[arg(long)]
    all_topics: bool,
    /// To the log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset (skip everything not consumed yet).
    #[arg(long)]
    to_latest: bool,
    /// To the first record at or after this time: RFC 3339 or epoch ms (the log end if
    /// there is none).
    #[arg(long, value_name = "TIME")]
    to_datetime: Option<String>,
    /// To this offset.
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// By N from the committed offset (negative: back). Needs a committed offset.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Only show the plan (the default without --execute).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    execute: bool,
}

pub(crate) async fn run(ctx: &Ctx, cmd: GroupsCommand) -> CliResult<()> {
    match cmd {
        GroupsCommand::List => list(ctx).await,
        GroupsCommand::Describe { group } => describe(ctx, &group).await,
        GroupsCommand::ResetOffsets(args) => reset_offsets(ctx, args).await,
        GroupsCommand::Delete { groups } => delete(ctx, &groups).await,
        GroupsCommand::Park(args) => super::park::park(ctx, args).await,
        GroupsCommand::Parked(args) => super::park::parked(ctx, args).await,
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

/// A group's state as DescribeGroups reports it, with "Dead" for an unknown group.
pub(crate) struct GroupState {
    pub state: String,
    pub protocol_type: String,
    pub members: Vec<runnel_client::GroupMember>,
}

impl GroupState {
    /// No active members: offsets may be changed from outside.
    pub fn is_inactive(&self) -> bool {
        matches!(self.state.as_str(), "Empty" | "Dead")
    }

    pub fn describe_activity(&self, group: &str) -> String {
        format!(
            "group {group} is active (state {}, {} member{})",
            self.state,
            self.members.len(),
            if self.members.len() == 1 { "" } else { "s" }
        )
    }
}

pub(crate) async fn group_state(ctx: &Ctx, group: &str) -> CliResult<GroupState> {
    let desc = ctx
        .admin
        .describe_groups(&[group])
        .await?
        .into_iter()
        .next();
    Ok(match desc {
        Some(d) if d.error_code == 0 => GroupState {
            state: d.state,
            protocol_type: d.protocol_type,
            members: d.members,
        },
        // GROUP_ID_NOT_FOUND, or no answer: nothing is there.
        Some(runnel_client::admin::GroupDescription { error_code: 69, .. }) | None => GroupState {
            state: "Dead".into(),
            protocol_type: String::new(),
            members: Vec::new(),
        },
        Some(d) => {
            return Err(CliError::Broker(format!(
                "describe group {group}: error code {}",
                d.error_code
            )))
        }
    })
}

/// Which partitions each member owns, from their consumer-protocol assignments.
pub(crate) fn owners(state: &GroupState) -> BTreeMap<TopicPartition, &runnel_client::GroupMember> {
    let mut out = BTreeMap::new();
    if state.protocol_type == "consumer" || state.protocol_type.is_empty() {
        for m in &state.members {
            if let Ok(tps) = decode_assignment(bytes::Bytes::from(m.assignment.clone())) {
                for tp in tps {
                    out.insert(tp, m);
                }
            }
        }
    }
    out
}

/// Errors from an admin offset commit that mean "the group is not empty".
pub(crate) fn commit_refused(e: &runnel_client::Error) -> bool {
    // UNKNOWN_MEMBER_ID 25, ILLEGAL_GENERATION 22, REBALANCE_IN_PROGRESS 27.
    matches!(e.code(), Some(25 | 22 | 27))
}

async fn reset_offsets(ctx: &Ctx, a: ResetArgs) -> CliResult<()> {
    let group = a.group.as_str();
    let to_time = a.to_datetime.as_deref().map(parse_time).transpose()?;
    let state = group_state(ctx, group).await?;
    if a.execute && !state.is_inactive() {
        return Err(CliError::Refused(format!(
            "{}; offsets can only be reset while it has no active members: stop its consumers and retry",
            state.describe_activity(group)
        )));
    }
    // The partitions to reset.
    let mut tps: Vec<TopicPartition> = Vec::new();
    if a.all_topics {
        tps = ctx
            .admin
            .fetch_group_offsets(group, None)
            .await?
            .into_keys()
            .collect();
        if tps.is_empty() {
            let groups = ctx.admin.list_groups().await?;
            if !groups.iter().any(|g| g.group_id == group) {
                return Err(not_found(
                    "group",
                    group,
                    groups.iter().map(|g| g.group_id.as_str()),
                ));
            }
            return Err(CliError::NotFound(format!(
                "group {group} has no committed offsets; name the topics with --topic"
            )));
        }
    } else {
        for spec in &a.topic {
            let (topic, parts) = parse_topic_spec(spec)?;
            for tp in topic_partitions(ctx, &topic, &parts).await? {
                if !tps.contains(&tp) {
                    tps.push(tp);
                }
            }
        }
    }
    tps.sort();
    let committed = ctx.admin.fetch_group_offsets(group, Some(&tps)).await?;
    let specs = |spec: OffsetSpec| -> Vec<(TopicPartition, OffsetSpec)> {
        tps.iter().map(|tp| (tp.clone(), spec)).collect()
    };
    let starts = ctx.admin.list_offsets(&specs(OffsetSpec::Earliest)).await?;
    let ends = ctx.admin.list_offsets(&specs(OffsetSpec::Latest)).await?;
    let by_time = match to_time {
        Some(ms) => Some(
            ctx.admin
                .list_offsets(&specs(OffsetSpec::Timestamp(ms)))
                .await?,
        ),
        None => None,
    };
    let mut plan: Vec<(TopicPartition, Option<i64>, i64)> = Vec::new();
    for tp in &tps {
        let start = starts.get(tp).map_or(0, |o| o.offset);
        let end = ends.get(tp).map_or(start, |o| o.offset);
        let current = committed.get(tp).copied();
        let wanted = if a.to_earliest {
            start
        } else if a.to_latest {
            end
        } else if let Some(found) = &by_time {
            match found.get(tp) {
                Some(o) if o.offset >= 0 => o.offset,
                _ => end,
            }
        } else if let Some(o) = a.to_offset {
            o
        } else if let Some(n) = a.shift_by {
            match current {
                Some(c) => c.saturating_add(n),
                None => {
                    return Err(CliError::Usage(format!(
                        "cannot shift {}-{}: group {group} has no committed offset there",
                        tp.topic, tp.partition
                    )))
                }
            }
        } else {
            return Err(CliError::Usage(
                "give one of --to-earliest, --to-latest, --to-datetime, --to-offset, --shift-by"
                    .into(),
            ));
        };
        plan.push((tp.clone(), current, wanted.clamp(start, end.max(start))));
    }
    if a.execute {
        let offsets: Vec<(TopicPartition, i64)> =
            plan.iter().map(|(tp, _, n)| (tp.clone(), *n)).collect();
        if let Err(e) = ctx.admin.commit_group_offsets(group, &offsets).await {
            if commit_refused(&e) {
                return Err(CliError::Refused(format!(
                    "group {group} gained active members; offsets can only be reset while it has none ({e})"
                )));
            }
            return Err(e.into());
        }
    } else if !state.is_inactive() {
        eprintln!(
            "warning: {}; --execute would be refused until its consumers stop",
            state.describe_activity(group)
        );
    }
    match ctx.output {
        Output::Json => ctx.print_json(&json!({
            "group": group,
            "executed": a.execute,
            "partitions": plan.iter().map(|(tp, c, n)| json!({
                "topic": tp.topic,
                "partition": tp.partition,
                "current_offset": c,
                "new_offset": n,
            })).collect::<Vec<_>>(),
        })),
        Output::Table => {
            let rows: Vec<Vec<String>> = plan
                .iter()
                .map(|(tp, c, n)| {
                    vec![
                        group.to_string(),
                        tp.topic.clone(),
                        tp.partition.to_string(),
                        c.map_or("-".into(), |c| c.to_string()),
                        n.to_string(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "GROUP",
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "NEW-OFFSET",
                ],
                &rows,
            );
            if a.execute {
                println!();
                println!("offsets of group {group} reset");
            } else {
                eprintln!("dry run: nothing changed; add --execute to commit these offsets");
            }
        }
    }
    Ok(())
}

async fn delete(ctx: &Ctx, groups: &[String]) -> CliResult<()> {
    let mut results: Vec<(String, Result<(), CliError>)> = Vec::new();
    for g in groups {
        let r = match ctx.admin.delete_groups(&[g.as_str()]).await {
            Ok(()) => Ok(()),
            // GROUP_ID_NOT_FOUND
            Err(e) if e.code() == Some(69) => {
                let all = ctx.admin.list_groups().await?;
                Err(not_found(
                    "group",
                    g,
                    all.iter()
                        .map(|l| l.group_id.as_str())
                        .filter(|n| !groups.iter().any(|x| x == n)),
                ))
            }
            // NON_EMPTY_GROUP
            Err(e) if e.code() == Some(68) => {
                let state = group_state(ctx, g).await?;
                Err(CliError::Refused(format!(
                    "{}; the broker refuses to delete a group with members (NON_EMPTY_GROUP): stop its consumers first",
                    state.describe_activity(g)
                )))
            }
            Err(e) => Err(e.into()),
        };
        results.push((g.clone(), r));
    }
    match ctx.output {
        Output::Json => ctx.print_json(&json!(results
            .iter()
            .map(|(g, r)| match r {
                Ok(()) => json!({ "group": g, "result": "deleted" }),
                Err(e) => json!({ "group": g, "result": "error", "error": e.to_string() }),
            })
            .collect::<Vec<_>>())),
        Output::Table => {
            for (g, r) in &results {
                if r.is_ok() {
                    println!("group {g} deleted");
                }
            }
        }
    }
    let mut first: Option<CliError> = None;
    let failures = results.iter().filter(|(_, r)| r.is_err()).count();
    for (_, r) in results {
        if let Err(e) = r {
            if failures > 1 {
                eprintln!("error: {e}");
            }
            first.get_or_insert(e);
        }
    }
    match first {
        None => Ok(()),
        Some(e) if failures == 1 => Err(e),
        Some(e) => Err(match e {
            CliError::Usage(_) => CliError::Usage(format!("{failures} groups not deleted")),
            CliError::Broker(_) => CliError::Broker(format!("{failures} groups not deleted")),
            CliError::NotFound(_) => CliError::NotFound(format!("{failures} groups not deleted")),
            CliError::Refused(_) => CliError::Refused(format!("{failures} groups not deleted")),
        }),
    }
}
