//! `runnel consume TOPIC`: print records.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use runnel_client::{
    Consumer, ConsumerConfig, ConsumerRecord, GroupConfig, OffsetReset, OffsetSpec, TopicPartition,
};
use serde_json::json;

use super::{bytes_json, hex, parse_time, topic_partitions, CliError, CliResult, Ctx};

/// `runnel consume`.
#[derive(clap::Args)]
#[command(after_help = "\
By default the command exits once it has printed everything up to the end of the log \
(the high watermark of each partition when it gets there), which is what scripts want; \
--follow keeps waiting for new records until interrupted. --count N exits after N records \
either way.

--format json prints one object per line: {\"topic\", \"partition\", \"offset\", \
\"timestamp\" (ms), \"key\", \"value\", \"headers\": [{\"key\", \"value\"}]}. A key, value \
or header value is a JSON string when its bytes are UTF-8, {\"base64\": \"...\"} when they \
are not, and null when absent. --format hex prints the same objects with every key, value \
and header value as a lower-case hex string (binary-safe, no guessing). --format text \
prints the value (lossy UTF-8), preceded by the key and --key-separator when one is \
given.

With --group the command joins the group as a consumer (classic protocol, range \
assignor), starts from the group's committed offsets (--from earliest|latest where it has \
none), commits what it printed, and leaves the group on exit.")]
pub struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Where to start: earliest, latest, an OFFSET, @TIME (epoch ms or RFC 3339: the
    /// first record at or after it), or committed (the group's offsets; the default with
    /// --group). Default: earliest.
    #[arg(long, value_name = "POSITION")]
    from: Option<String>,
    /// Only these partitions (repeatable); default: all.
    #[arg(long)]
    partition: Vec<i32>,
    /// Exit after this many records.
    #[arg(long, short = 'n')]
    count: Option<u64>,
    /// Consume as a member of this group and commit what was printed.
    #[arg(long)]
    group: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// With --format text: print the key, then this separator, then the value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Keep waiting for new records instead of exiting at the end of the log.
    #[arg(long, short = 'f', conflicts_with = "exit_at_end")]
    follow: bool,
    /// Exit once caught up with the end of the log (the default; for kcat-style scripts).
    #[arg(long)]
    exit_at_end: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Hex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    Earliest,
    Latest,
    Committed,
    Offset(i64),
    Time(i64),
}

fn parse_from(s: &str) -> CliResult<Start> {
    match s {
        "earliest" | "beginning" => Ok(Start::Earliest),
        "latest" | "end" => Ok(Start::Latest),
        "committed" => Ok(Start::Committed),
        _ => {
            if let Some(t) = s.strip_prefix('@') {
                return Ok(Start::Time(parse_time(t)?));
            }
            match s.parse::<i64>() {
                Ok(o) if o >= 0 => Ok(Start::Offset(o)),
                _ => Err(CliError::Usage(format!(
                    "--from {s:?}: expected earliest, latest, committed, an offset or @TIME"
                ))),
            }
        }
    }
}

/// One record in the chosen format, without the trailing newline.
pub(crate) fn render(r: &ConsumerRecord, format: Format, key_separator: Option<&str>) -> String {
    match format {
        Format::Text => {
            let value = r
                .value
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            match key_separator {
                Some(sep) => {
                    let key = r
                        .key
                        .as_deref()
                        .map(String::from_utf8_lossy)
                        .unwrap_or_default();
                    format!("{key}{sep}{value}")
                }
                None => value.into_owned(),
            }
        }
        Format::Json => record_json(r).to_string(),
        Format::Hex => {
            let h = |b: &Option<Vec<u8>>| b.as_deref().map(hex);
            json!({
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "timestamp": r.timestamp,
                "key": h(&r.key),
                "value": h(&r.value),
                "headers": r.headers.iter().map(|(k, v)| json!({
                    "key": k,
                    "value": h(v),
                })).collect::<Vec<_>>(),
            })
            .to_string()
        }
    }
}

/// A record as JSON (bytes as UTF-8 strings or `{"base64": ...}`).
pub(crate) fn record_json(r: &ConsumerRecord) -> serde_json::Value {
    json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": bytes_json(r.key.as_deref()),
        "value": bytes_json(r.value.as_deref()),
        "headers": r.headers.iter().map(|(k, v)| json!({
            "key": k,
            "value": bytes_json(v.as_deref()),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) async fn run(ctx: &Ctx, a: ConsumeArgs) -> CliResult<()> {
    let from = match &a.from {
        Some(f) => parse_from(f)?,
        None if a.group.is_some() => Start::Committed,
        None => Start::Earliest,
    };
    if a.key_separator.is_some() && a.format != Format::Text {
        return Err(CliError::Usage(
            "--key-separator applies to --format text only".into(),
        ));
    }
    let tps = topic_partitions(ctx, &a.topic, &a.partition).await?;
    let mut consumer;
    match &a.group {
        Some(group) => {
            if !a.partition.is_empty() {
                return Err(CliError::Usage(
                    "--partition cannot be combined with --group: the group assigns partitions"
                        .into(),
                ));
            }
            let reset = match from {
                Start::Committed | Start::Earliest => OffsetReset::Earliest,
                Start::Latest => OffsetReset::Latest,
                Start::Offset(_) | Start::Time(_) => {
                    return Err(CliError::Usage(
                        "with --group, --from is committed, earliest or latest (where the group has no offset); \
                         move the group with `runnel groups reset-offsets` instead"
                            .into(),
                    ))
                }
            };
            consumer = Consumer::new(
                ctx.client.clone(),
                ConsumerConfig {
                    auto_offset_reset: reset,
                    ..ConsumerConfig::default()
                },
            );
            consumer.subscribe(GroupConfig::new(group.clone()), &[&a.topic]);
        }
        None => {
            if from == Start::Committed {
                return Err(CliError::Usage("--from committed needs --group".into()));
            }
            consumer = Consumer::new(
                ctx.client.clone(),
                ConsumerConfig {
                    auto_offset_reset: OffsetReset::Earliest,
                    ..ConsumerConfig::default()
                },
            );
            consumer.assign(tps.clone());
            for tp in &tps {
                match from {
                    Start::Earliest | Start::Committed => consumer.seek_to_beginning(tp)?,
                    Start::Latest => consumer.seek_to_end(tp)?,
                    Start::Offset(o) => consumer.seek(tp, o)?,
                    Start::Time(t) => consumer.seek_to_timestamp(tp, t)?,
                }
            }
        }
    }
    let result = consume_loop(&mut consumer, &a).await;
    if a.group.is_some() {
        let closed = consumer.close().await;
        result?;
        closed?;
        Ok(())
    } else {
        result
    }
}

async fn consume_loop(consumer: &mut Consumer, a: &ConsumeArgs) -> CliResult<()> {
    let stdout = std::io::stdout();
    let mut printed: u64 = 0;
    let in_group = a.group.is_some();
    let joined_by = Instant::now() + Duration::from_secs(60);
    loop {
        if a.count.is_some_and(|n| printed >= n) {
            break;
        }
        let records = tokio::select! {
            r = consumer.poll(Duration::from_millis(500)) => r?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let mut out = stdout.lock();
        // Where each partition stands after what was printed.
        let mut resume: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        let mut stopped = false;
        for r in &records {
            let tp = TopicPartition::new(r.topic.clone(), r.partition);
            if stopped || a.count.is_some_and(|n| printed >= n) {
                stopped = true;
                // Not printed: the partition resumes here (for the group's commit).
                resume.entry(tp).or_insert(r.offset);
                continue;
            }
            let line = render(r, a.format, a.key_separator.as_deref());
            if writeln!(out, "{line}").is_err() {
                // stdout closed (e.g. `| head`): stop quietly.
                return Ok(());
            }
            printed += 1;
        }
        let _ = out.flush();
        drop(out);
        if in_group {
            for (tp, offset) in &resume {
                consumer.seek(tp, *offset)?;
            }
            if !records.is_empty() && consumer.group_member().is_some() {
                match consumer.commit_group().await {
                    Ok(()) => {}
                    // A rebalance or removal from the group: the next poll rejoins, and
                    // the records since the last commit come again (at least once).
                    Err(e) if super::groups::commit_refused(&e) => {
                        eprintln!("warning: commit refused, rejoining the group: {e}");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if stopped {
            break;
        }
        if a.follow {
            continue;
        }
        // Caught up with every assigned partition?
        if in_group && consumer.group_member().is_none() {
            if Instant::now() > joined_by {
                return Err(CliError::Broker(format!(
                    "could not join group {} within 60s",
                    a.group.as_deref().unwrap_or_default()
                )));
            }
            continue;
        }
        let assigned = consumer.assignment();
        let caught_up =
            assigned.iter().all(
                |tp| match (consumer.position(tp), consumer.high_watermark(tp)) {
                    (Some(p), Some(hw)) => p >= hw,
                    _ => false,
                },
            );
        if caught_up {
            break;
        }
    }
    Ok(())
}

/// Read up to `max` records of `tp` from `from` (the first record at or after it) up to
/// the high watermark. Stops at the end of the log.
pub(crate) async fn read_records(
    ctx: &Ctx,
    tp: &TopicPartition,
    from: i64,
    max: usize,
) -> CliResult<Vec<ConsumerRecord>> {
    let mut consumer = Consumer::new(
        ctx.client.clone(),
        ConsumerConfig {
            auto_offset_reset: OffsetReset::None,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign([tp.clone()]);
    consumer.seek(tp, from)?;
    let end = ctx
        .admin
        .list_offsets(&[(tp.clone(), OffsetSpec::Latest)])
        .await?
        .get(tp)
        .map_or(0, |o| o.offset);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < max {
        if consumer.position(tp).is_some_and(|p| p >= end) || from >= end {
            break;
        }
        if Instant::now() > deadline {
            return Err(CliError::Broker(format!(
                "reading {}-{} from offset {from} timed out",
                tp.topic, tp.partition
            )));
        }
        let records = consumer.poll(Duration::from_millis(500)).await?;
        for r in records {
            if r.offset >= from && r.offset < end && out.len() < max {
                out.push(r);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_positions() {
        assert_eq!(parse_from("earliest").unwrap(), Start::Earliest);
        assert_eq!(parse_from("latest").unwrap(), Start::Latest);
        assert_eq!(parse_from("42").unwrap(), Start::Offset(42));
        assert_eq!(
            parse_from("@1700000000000").unwrap(),
            Start::Time(1_700_000_000_000)
        );
        assert_eq!(
            parse_from("@2023-11-14T22:13:20Z").unwrap(),
            Start::Time(1_700_000_000_000)
        );
        assert!(parse_from("-3").is_err());
        assert!(parse_from("soon").is_err());
    }

    #[test]
    fn formats() {
        let r = ConsumerRecord {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            timestamp: 1000,
            key: Some(b"k".to_vec()),
            value: Some(vec![0xff, 0x01]),
            headers: vec![("h".into(), Some(b"v".to_vec())), ("n".into(), None)],
        };
        let j: serde_json::Value = serde_json::from_str(&render(&r, Format::Json, None)).unwrap();
        assert_eq!(j["key"], "k");
        assert_eq!(j["value"]["base64"], "/wE=");
        assert_eq!(j["headers"][0]["value"], "v");
        assert!(j["headers"][1]["value"].is_null());
        let h: serde_json::Value = serde_json::from_str(&render(&r, Format::Hex, None)).unwrap();
        assert_eq!(h["key"], "6b");
        assert_eq!(h["value"], "ff01");
        assert_eq!(render(&r, Format::Text, Some("\t")), "k\t\u{fffd}\u{1}");
    }
}
