//! `runnel groups park` and `runnel groups parked`: the hospital for poison records.

use bytes::Bytes;
use std::time::{Duration, Instant};

use runnel_client::{
    Acks, ConsumerRecord, NewTopic, OffsetSpec, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use serde_json::json;

use super::consume::read_records;
use super::groups::{commit_refused, group_state, owners, GroupState};
use super::{
    bytes_json, format_time, now_ms, print_table, topic_partitions, CliError, CliResult, Ctx,
    Output,
};

/// Headers a parked record gets, after its own.
pub(crate) const H_TOPIC: &str = "runnel.parked.topic";
pub(crate) const H_PARTITION: &str = "runnel.parked.partition";
pub(crate) const H_OFFSET: &str = "runnel.parked.offset";
pub(crate) const H_GROUP: &str = "runnel.parked.group";
pub(crate) const H_TIMESTAMP: &str = "runnel.parked.timestamp";
pub(crate) const H_AT: &str = "runnel.parked.at";
pub(crate) const H_REASON: &str = "runnel.parked.reason";
const PARKED_PREFIX: &str = "runnel.parked.";
const PARKING_SUFFIX: &str = ".parked";

/// `groups park`.
#[derive(clap::Args)]
pub struct ParkArgs {
    /// The group stuck on the record.
    #[arg(long)]
    group: String,
    /// The topic of the record.
    #[arg(long)]
    topic: String,
    /// Its partition.
    #[arg(long)]
    partition: i32,
    /// Park from this offset instead of the group's committed offset. Refused if the
    /// group's committed offset is before it (records in between would be skipped).
    #[arg(long)]
    offset: Option<i64>,
    /// How many records to park (from the first at or after the start offset).
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Where to park; default <TOPIC>.parked (created with 1 partition if missing).
    #[arg(long, value_name = "NAME")]
    parking_topic: Option<String>,
    /// Why: stored in the runnel.parked.reason header.
    #[arg(long)]
    reason: Option<String>,
    /// After copying, remove every member of the group so the commit can land (they
    /// rejoin and resume after the parked records). See the command's long help.
    #[arg(long)]
    force: bool,
}

/// `groups parked`.
#[derive(clap::Args)]
pub struct ParkedArgs {
    /// Only records parked from this topic (reads <TOPIC>.parked).
    #[arg(long, conflicts_with = "parking_topic")]
    topic: Option<String>,
    /// Read this parking topic.
    #[arg(long, value_name = "NAME")]
    parking_topic: Option<String>,
    /// At most this many records per parking partition (the oldest first).
    #[arg(long, default_value_t = 1000)]
    limit: usize,
}

fn header<'a>(r: &'a ConsumerRecord, name: &str) -> Option<&'a [u8]> {
    r.headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_deref())
}

fn header_str(r: &ConsumerRecord, name: &str) -> Option<String> {
    header(r, name).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn header_i64(r: &ConsumerRecord, name: &str) -> Option<i64> {
    header_str(r, name).and_then(|v| v.parse().ok())
}

pub(crate) async fn park(ctx: &Ctx, a: ParkArgs) -> CliResult<()> {
    if a.count == 0 {
        return Err(CliError::Usage("--count must be at least 1".into()));
    }
    let tp = topic_partitions(ctx, &a.topic, &[a.partition])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Broker(format!("no partition {}", a.partition)))?;
    let parking = a
        .parking_topic
        .clone()
        .unwrap_or_else(|| format!("{}{PARKING_SUFFIX}", a.topic));
    if parking == a.topic {
        return Err(CliError::Usage(
            "the parking topic must differ from the topic".into(),
        ));
    }
    let group = a.group.as_str();
    let state = group_state(ctx, group).await?;
    let committed = ctx
        .admin
        .fetch_group_offsets(group, Some(std::slice::from_ref(&tp)))
        .await?
        .get(&tp)
        .copied();
    let start = match (a.offset, committed) {
        (Some(o), _) if o < 0 => {
            return Err(CliError::Usage("--offset cannot be negative".into()));
        }
        (Some(o), _) => o,
        (None, Some(c)) => c,
        (None, None) => {
            let groups = ctx.admin.list_groups().await?;
            if !groups.iter().any(|g| g.group_id == group) {
                return Err(super::not_found(
                    "group",
                    group,
                    groups.iter().map(|g| g.group_id.as_str()),
                ));
            }
            return Err(CliError::Usage(format!(
                "group {group} has no committed offset for {}-{}; say which record with --offset",
                tp.topic, tp.partition
            )));
        }
    };
    if let Some(c) = committed {
        if c < start {
            return Err(CliError::Refused(format!(
                "group {group} is at offset {c} of {}-{}, before {start}: committing past the parked \
                 records would skip {c}..{} unconsumed; park from {c} (omit --offset) or move the group first",
                tp.topic,
                tp.partition,
                start - 1
            )));
        }
    }
    if !state.is_inactive() && !a.force {
        let owned = owners(&state);
        let who = match owned.get(&tp) {
            Some(m) => format!(
                "member {} (client {}, host {}) owns {}-{}",
                m.member_id, m.client_id, m.client_host, tp.topic, tp.partition
            ),
            None => format!(
                "no member owns {}-{} right now, but the broker takes a commit from outside \
                 the group only while it is empty",
                tp.topic, tp.partition
            ),
        };
        return Err(CliError::Refused(format!(
            "{}: {who}. Stop the consumers, or pass --force to remove them from the group \
             (they rejoin and resume after the parked record)",
            state.describe_activity(group)
        )));
    }

    // The records to park.
    let listed = |spec| {
        let tp = tp.clone();
        async move {
            ctx.admin
                .list_offsets(&[(tp.clone(), spec)])
                .await
                .map(|m| m.get(&tp).map_or(0, |o| o.offset))
        }
    };
    let log_start = listed(OffsetSpec::Earliest).await?;
    let log_end = listed(OffsetSpec::Latest).await?;
    if start < log_start {
        return Err(CliError::NotFound(format!(
            "offset {start} of {}-{} is gone (log start offset {log_start})",
            tp.topic, tp.partition
        )));
    }
    if start >= log_end {
        return Err(CliError::NotFound(format!(
            "no record at offset {start} of {}-{} (log end offset {log_end})",
            tp.topic, tp.partition
        )));
    }
    let records = read_records(ctx, &tp, start, a.count).await?;
    let Some(last) = records.last().map(|r| r.offset) else {
        return Err(CliError::NotFound(format!(
            "no record at or after offset {start} of {}-{}",
            tp.topic, tp.partition
        )));
    };
    let new_offset = last + 1;

    // Copy, acks=all, and wait.
    let parking_partitions = ensure_parking_topic(ctx, &parking).await?;
    let parked_at = now_ms();
    let copies: Vec<ProducerRecord> = records
        .iter()
        .map(|r| {
            let mut headers = r.headers.clone();
            let mut add = |k: &str, v: String| headers.push((k.to_string(), Some(v.into_bytes())));
            add(H_TOPIC, tp.topic.clone());
            add(H_PARTITION, tp.partition.to_string());
            add(H_OFFSET, r.offset.to_string());
            add(H_GROUP, group.to_string());
            add(H_TIMESTAMP, r.timestamp.to_string());
            add(H_AT, parked_at.to_string());
            if let Some(reason) = &a.reason {
                add(H_REASON, reason.clone());
            }
            ProducerRecord {
                topic: parking.clone(),
                partition: Some(tp.partition % parking_partitions),
                key: r.key.clone(),
                value: r.value.clone().map(Bytes::from),
                headers,
                timestamp: Some(r.timestamp),
            }
        })
        .collect();
    let placed = produce_all(ctx, copies.clone()).await.map_err(|e| {
        CliError::Broker(format!(
            "copying to {parking} failed, nothing committed (the group is still at {}): {e}",
            committed.map_or("no offset".to_string(), |c| c.to_string())
        ))
    })?;

    // Read the copies back and compare before anything is committed.
    for (copy, (p, o)) in copies.iter().zip(&placed) {
        let ptp = TopicPartition::new(parking.clone(), *p);
        let back = read_records(ctx, &ptp, *o, 1).await?;
        let same = back.first().is_some_and(|b| {
            b.offset == *o
                && b.key == copy.key
                && b.value.as_deref() == copy.value.as_deref()
                && b.headers == copy.headers
                && Some(b.timestamp) == copy.timestamp
        });
        if !same {
            return Err(CliError::Broker(format!(
                "the copy at {parking}-{p}@{o} does not read back identical; nothing committed"
            )));
        }
    }

    // Commit past the parked records.
    let finish_hint = format!(
        "the records are parked in {parking} ({}), but group {group} was NOT moved; once the group is \
         empty, finish with: runnel groups reset-offsets {group} --topic {}:{} --to-offset {new_offset} --execute",
        placed
            .iter()
            .map(|(p, o)| format!("{p}@{o}"))
            .collect::<Vec<_>>()
            .join(", "),
        tp.topic,
        tp.partition
    );
    let mut removed: Vec<String> = Vec::new();
    let outcome = commit_past(ctx, group, &tp, new_offset, a.force, &mut removed).await;
    let committed_now = match outcome {
        Ok(c) => c,
        Err(e) => return Err(with_hint(e, &finish_hint)),
    };

    match ctx.output {
        Output::Json => ctx.print_json(&json!({
            "group": group,
            "topic": tp.topic,
            "partition": tp.partition,
            "parking_topic": parking,
            "previous_offset": committed,
            "committed_offset": committed_now,
            "members_removed": removed,
            "records": records.iter().zip(&placed).map(|(r, (p, o))| json!({
                "offset": r.offset,
                "timestamp": r.timestamp,
                "parked_partition": p,
                "parked_offset": o,
            })).collect::<Vec<_>>(),
        })),
        Output::Table => {
            let rows: Vec<Vec<String>> = records
                .iter()
                .zip(&placed)
                .map(|(r, (p, o))| {
                    vec![
                        format!("{}-{}@{}", tp.topic, tp.partition, r.offset),
                        format!("{parking}-{p}@{o}"),
                        format_time(r.timestamp),
                    ]
                })
                .collect();
            print_table(&["RECORD", "PARKED-AS", "TIMESTAMP"], &rows);
            println!();
            if !removed.is_empty() {
                println!(
                    "removed {} member(s) from group {group}: {}",
                    removed.len(),
                    removed.join(", ")
                );
            }
            match committed_now {
                Some(c) if Some(c) != committed => println!(
                    "group {group} committed at offset {c} of {}-{} (was {})",
                    tp.topic,
                    tp.partition,
                    committed.map_or("-".into(), |c| c.to_string())
                ),
                _ => println!(
                    "group {group} was already past offset {last} of {}-{}; its offset is unchanged",
                    tp.topic, tp.partition
                ),
            }
        }
    }
    Ok(())
}

fn with_hint(e: CliError, hint: &str) -> CliError {
    match e {
        CliError::Refused(m) => CliError::Refused(format!("{m}; {hint}")),
        CliError::Broker(m) => CliError::Broker(format!("{m}; {hint}")),
        CliError::NotFound(m) => CliError::NotFound(format!("{m}; {hint}")),
        CliError::Usage(m) => CliError::Usage(format!("{m}; {hint}")),
    }
}

/// Commit `new_offset` for `tp` unless the group is already there or past it. With
/// `force`, members are removed first (retried if they rejoin before the commit).
/// Returns the group's committed offset afterwards.
async fn commit_past(
    ctx: &Ctx,
    group: &str,
    tp: &TopicPartition,
    new_offset: i64,
    force: bool,
    removed: &mut Vec<String>,
) -> CliResult<Option<i64>> {
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        let state = group_state(ctx, group).await?;
        if !state.is_inactive() {
            if !force {
                return Err(CliError::Refused(format!(
                    "{} (members joined while parking)",
                    state.describe_activity(group)
                )));
            }
            remove_members(ctx, group, &state, removed).await?;
            wait_inactive(ctx, group).await?;
        }
        let current = ctx
            .admin
            .fetch_group_offsets(group, Some(std::slice::from_ref(tp)))
            .await?
            .get(tp)
            .copied();
        if current.is_some_and(|c| c >= new_offset) {
            return Ok(current);
        }
        match ctx
            .admin
            .commit_group_offsets(group, &[(tp.clone(), new_offset)])
            .await
        {
            Ok(()) => return Ok(Some(new_offset)),
            Err(e) if commit_refused(&e) && force && attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) if commit_refused(&e) => {
                return Err(CliError::Refused(format!(
                    "group {group} has active members again; the broker refused the commit: {e}"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CliError::Refused(format!(
        "group {group}: members kept rejoining; gave up after {ATTEMPTS} attempts"
    )))
}

async fn remove_members(
    ctx: &Ctx,
    group: &str,
    state: &GroupState,
    removed: &mut Vec<String>,
) -> CliResult<()> {
    if state.members.is_empty() {
        return Ok(());
    }
    let members: Vec<(String, Option<String>)> = state
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.group_instance_id.clone()))
        .collect();
    // Classic members leave with LeaveGroup; KIP-848 members are unknown to it
    // (UNKNOWN_MEMBER_ID) and leave with a ConsumerGroupHeartbeat of epoch -1 instead.
    let codes = match ctx.admin.remove_group_members(group, &members).await {
        Ok(c) => c,
        Err(e) if e.code() == Some(25) => vec![25; members.len()],
        Err(e) => return Err(e.into()),
    };
    let mut failed = Vec::new();
    for ((id, _), code) in members.iter().zip(codes) {
        match code {
            0 => removed.push(id.clone()),
            25 => match ctx.admin.remove_consumer_group_member(group, id).await {
                Ok(()) => removed.push(id.clone()),
                // Gone already (it left or expired meanwhile).
                Err(e) if e.code() == Some(25) => failed.push(id.clone()),
                Err(e) => {
                    return Err(CliError::Broker(format!(
                        "removing member {id} from group {group}: {e}"
                    )))
                }
            },
            c => {
                return Err(CliError::Broker(format!(
                    "removing member {id} from group {group}: error code {c}"
                )))
            }
        }
    }
    if !failed.is_empty() && failed.len() == members.len() {
        return Err(CliError::Refused(format!(
            "could not remove the members of group {group} ({}): UNKNOWN_MEMBER_ID",
            failed.join(", ")
        )));
    }
    Ok(())
}

/// Wait (briefly) until the group has no members.
async fn wait_inactive(ctx: &Ctx, group: &str) -> CliResult<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = group_state(ctx, group).await?;
        if state.is_inactive() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CliError::Refused(format!(
                "{} after removing its members",
                state.describe_activity(group)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Create the parking topic (1 partition) unless it exists; its partition count.
async fn ensure_parking_topic(ctx: &Ctx, name: &str) -> CliResult<i32> {
    let topics = ctx.admin.list_topics(true).await?;
    if !topics.iter().any(|t| t == name) {
        match ctx.admin.create_topics(&[NewTopic::new(name, 1)]).await {
            Ok(()) => {}
            // TOPIC_ALREADY_EXISTS: someone else made it meanwhile.
            Err(e) if e.code() == Some(36) => {}
            Err(e) => {
                return Err(CliError::Broker(format!(
                    "creating the parking topic {name}: {e}"
                )))
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        ctx.client.invalidate(name);
        match ctx.client.partition_count(name).await {
            Ok(n) if n > 0 => return Ok(n as i32),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(_) => {
                return Err(CliError::Broker(format!(
                    "parking topic {name} has no partitions"
                )))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Produce with acks=all (idempotent) and wait for every acknowledgement; the
/// (partition, offset) of each record, in order.
async fn produce_all(ctx: &Ctx, records: Vec<ProducerRecord>) -> CliResult<Vec<(i32, i64)>> {
    let producer = Producer::new(
        ctx.client.clone(),
        ProducerConfig {
            acks: Acks::All,
            idempotence: true,
            linger: Duration::ZERO,
            ..ProducerConfig::default()
        },
    )?;
    let mut deliveries = Vec::new();
    for r in records {
        deliveries.push(producer.send_record(r).await?);
    }
    producer.flush().await?;
    let mut out = Vec::new();
    for d in deliveries {
        out.push(d.await?);
    }
    producer.close().await?;
    Ok(out)
}

pub(crate) async fn parked(ctx: &Ctx, a: ParkedArgs) -> CliResult<()> {
    let all = ctx.admin.list_topics(false).await?;
    let wanted: Vec<String> = match (&a.topic, &a.parking_topic) {
        (Some(t), _) => {
            let name = format!("{t}{PARKING_SUFFIX}");
            if !all.contains(t) && !all.contains(&name) {
                return Err(super::not_found("topic", t, all.iter().map(String::as_str)));
            }
            all.iter().filter(|n| **n == name).cloned().collect()
        }
        (None, Some(p)) => {
            if !all.contains(p) {
                return Err(super::not_found("topic", p, all.iter().map(String::as_str)));
            }
            vec![p.clone()]
        }
        (None, None) => all
            .iter()
            .filter(|n| n.ends_with(PARKING_SUFFIX))
            .cloned()
            .collect(),
    };
    let mut found: Vec<ConsumerRecord> = Vec::new();
    for topic in &wanted {
        for tp in topic_partitions(ctx, topic, &[]).await? {
            let start = ctx
                .admin
                .list_offsets(&[(tp.clone(), OffsetSpec::Earliest)])
                .await?
                .get(&tp)
                .map_or(0, |o| o.offset);
            found.extend(read_records(ctx, &tp, start, a.limit).await?);
        }
    }
    match ctx.output {
        Output::Json => ctx.print_json(&json!(found
            .iter()
            .map(|r| json!({
                "parking_topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "origin": {
                    "topic": header_str(r, H_TOPIC),
                    "partition": header_i64(r, H_PARTITION),
                    "offset": header_i64(r, H_OFFSET),
                    "group": header_str(r, H_GROUP),
                    "timestamp": header_i64(r, H_TIMESTAMP),
                },
                "parked_at": header_i64(r, H_AT),
                "reason": header_str(r, H_REASON),
                "timestamp": r.timestamp,
                "key": bytes_json(r.key.as_deref()),
                "value": bytes_json(r.value.as_deref()),
                "headers": r.headers.iter()
                    .filter(|(k, _)| !k.starts_with(PARKED_PREFIX))
                    .map(|(k, v)| json!({ "key": k, "value": bytes_json(v.as_deref()) }))
                    .collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>())),
        Output::Table => {
            if found.is_empty() {
                println!("no parked records");
                return Ok(());
            }
            let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|r| {
                    vec![
                        format!(
                            "{}-{}@{}",
                            dash(header_str(r, H_TOPIC)),
                            dash(header_str(r, H_PARTITION)),
                            dash(header_str(r, H_OFFSET))
                        ),
                        dash(header_str(r, H_GROUP)),
                        header_i64(r, H_AT).map_or("-".into(), format_time),
                        format!("{}-{}@{}", r.topic, r.partition, r.offset),
                        preview(r.key.as_deref()),
                        preview(r.value.as_deref()),
                        dash(header_str(r, H_REASON)),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ORIGIN",
                    "GROUP",
                    "PARKED-AT",
                    "PARKED-AS",
                    "KEY",
                    "VALUE",
                    "REASON",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

/// A short, printable view of some bytes.
fn preview(b: Option<&[u8]>) -> String {
    let Some(b) = b else {
        return "-".into();
    };
    let text = match std::str::from_utf8(b) {
        Ok(s) => s.replace(['\n', '\t', '\r'], " "),
        Err(_) => format!("0x{}", super::hex(&b[..b.len().min(16)])),
    };
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(37).collect();
        format!("{cut}...")
    } else {
        text
    }
}
