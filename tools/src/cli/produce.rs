//! `runnel produce TOPIC`: one record per input line.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use runnel_client::{Acks, Compression, Delivery, Producer, ProducerConfig, ProducerRecord};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::{parse_kv, print_table, topic_partitions, CliError, CliResult, Ctx, Output};

/// `runnel produce`.
#[derive(clap::Args)]
#[command(after_help = "\
Each line (without its line ending, \\n or \\r\\n) is one record's value; an empty line is \
an empty value. With --key-separator, a line is split at the first separator into key and \
value, and a line without one is an error (records before it are sent). Records without \
a key are spread over partitions by the sticky partitioner, with a key by its murmur2 hash \
(as Kafka's Java client does), unless --partition is given.

The summary (records, bytes, and the first and last offset per partition) goes to stdout; \
a progress bar goes to stderr when stderr is a terminal.")]
pub struct ProduceArgs {
    /// The topic. A missing one is created if the broker allows it
    /// (`auto.create.topics.enable`), as kcat and kafka-console-producer get it created.
    topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// A header on every record, KEY=VALUE. Repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Send every record to this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Acknowledgements to wait for: all (fsynced on Runnel; idempotent), 1 (written by
    /// the leader) or 0 (none; offsets are unknown).
    #[arg(long, value_enum, default_value_t = AcksArg::All)]
    acks: AcksArg,
    /// Compression of the record batches.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    compression: CompressionArg,
    /// How long a batch waits for more records, in ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AcksArg {
    All,
    #[value(name = "1")]
    One,
    #[value(name = "0")]
    Zero,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// Deliveries awaited at most this far behind the input.
const MAX_IN_FLIGHT: usize = 50_000;

#[derive(Default)]
struct Summary {
    records: u64,
    bytes: u64,
    /// partition → (first offset, last offset, records)
    partitions: BTreeMap<i32, (i64, i64, u64)>,
}

impl Summary {
    fn delivered(&mut self, partition: i32, offset: i64) {
        let e = self
            .partitions
            .entry(partition)
            .or_insert((offset, offset, 0));
        e.0 = e.0.min(offset);
        e.1 = e.1.max(offset);
        e.2 += 1;
    }
}

pub(crate) async fn run(ctx: &Ctx, a: ProduceArgs) -> CliResult<()> {
    let only: Vec<i32> = a.partition.into_iter().collect();
    // As a producer would: the broker creates a missing topic if it allows that. If it
    // does not, topic_partitions says so (with a "did you mean").
    match ctx.client.topic_for_produce(&a.topic).await {
        // 3: UNKNOWN_TOPIC_OR_PARTITION.
        Err(e) if e.code() != Some(3) => return Err(e.into()),
        _ => {}
    }
    topic_partitions(ctx, &a.topic, &only).await?;
    let headers: Vec<(String, Option<Vec<u8>>)> = a
        .headers
        .iter()
        .map(|h| parse_kv(h).map(|(k, v)| (k, Some(v.into_bytes()))))
        .collect::<CliResult<_>>()?;
    if a.key_separator.as_deref() == Some("") {
        return Err(CliError::Usage("--key-separator cannot be empty".into()));
    }
    let (input, total_bytes): (Box<dyn AsyncRead + Unpin + Send>, Option<u64>) = match &a.file {
        Some(path) => {
            let f = tokio::fs::File::open(path)
                .await
                .map_err(|e| CliError::Usage(format!("cannot open {}: {e}", path.display())))?;
            let len = f.metadata().await.ok().map(|m| m.len());
            (Box::new(f), len)
        }
        None => (Box::new(tokio::io::stdin()), None),
    };
    let acks = match a.acks {
        AcksArg::All => Acks::All,
        AcksArg::One => Acks::Leader,
        AcksArg::Zero => Acks::None,
    };
    let config = ProducerConfig {
        acks,
        idempotence: acks == Acks::All,
        linger: Duration::from_millis(a.linger_ms),
        compression: match a.compression {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        },
        ..ProducerConfig::default()
    };
    let producer = Producer::new(ctx.client.clone(), config)?;
    let progress = progress_bar(total_bytes);

    let mut summary = Summary::default();
    let mut pending: VecDeque<Delivery> = VecDeque::new();
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    let mut line_no: u64 = 0;
    let mut read_bytes: u64 = 0;
    let mut failure: Option<CliError> = None;
    loop {
        line.clear();
        let n = match reader.read_until(b'\n', &mut line).await {
            Ok(n) => n,
            Err(e) => {
                failure = Some(CliError::Usage(format!("reading input: {e}")));
                break;
            }
        };
        if n == 0 {
            break;
        }
        read_bytes += n as u64;
        line_no += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let (key, value) = match &a.key_separator {
            Some(sep) => match find(&line, sep.as_bytes()) {
                Some(at) => (Some(line[..at].to_vec()), line[at + sep.len()..].to_vec()),
                None => {
                    failure = Some(CliError::Usage(format!(
                        "line {line_no} has no key separator {sep:?}"
                    )));
                    break;
                }
            },
            None => (None, line.clone()),
        };
        summary.bytes += (key.as_ref().map_or(0, Vec::len) + value.len()) as u64;
        let record = ProducerRecord {
            topic: a.topic.clone(),
            partition: a.partition,
            key,
            value: Some(value.into()),
            headers: headers.clone(),
            timestamp: None,
        };
        match producer.send_record(record).await {
            Ok(d) => pending.push_back(d),
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        }
        summary.records += 1;
        if let Some(pb) = &progress {
            match total_bytes {
                Some(_) => pb.set_position(read_bytes),
                None => pb.set_position(summary.records),
            }
        }
        if pending.len() >= MAX_IN_FLIGHT {
            if let Some(d) = pending.pop_front() {
                if let Err(e) = settle(d, &mut summary).await {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    let flushed = producer.flush().await;
    let mut delivery_error = None;
    for d in pending {
        if let Err(e) = settle(d, &mut summary).await {
            delivery_error.get_or_insert(e);
        }
    }
    let closed = producer.close().await;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    let acked: u64 = summary.partitions.values().map(|p| p.2).sum();
    match ctx.output {
        Output::Json => ctx.print_json(&json!({
            "topic": a.topic,
            "records": summary.records,
            "acknowledged": if acks == Acks::None { None } else { Some(acked) },
            "bytes": summary.bytes,
            "partitions": summary.partitions.iter().map(|(p, (first, last, n))| json!({
                "partition": p,
                "first_offset": first,
                "last_offset": last,
                "records": n,
            })).collect::<Vec<_>>(),
        })),
        Output::Table => {
            println!(
                "produced {} record{} ({} bytes of keys and values) to {}",
                summary.records,
                if summary.records == 1 { "" } else { "s" },
                summary.bytes,
                a.topic
            );
            if acks == Acks::None {
                println!("offsets unknown with --acks 0");
            } else if !summary.partitions.is_empty() {
                println!();
                let rows: Vec<Vec<String>> = summary
                    .partitions
                    .iter()
                    .map(|(p, (first, last, n))| {
                        vec![
                            p.to_string(),
                            n.to_string(),
                            first.to_string(),
                            last.to_string(),
                        ]
                    })
                    .collect();
                print_table(
                    &["PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"],
                    &rows,
                );
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(e) = delivery_error {
        return Err(e);
    }
    flushed?;
    closed?;
    Ok(())
}

async fn settle(d: Delivery, summary: &mut Summary) -> CliResult<()> {
    let (partition, offset) = d
        .await
        .map_err(|e| CliError::Broker(format!("a record was not written: {e}")))?;
    if offset >= 0 {
        summary.delivered(partition, offset);
    }
    Ok(())
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A progress bar on stderr, only when stderr is a terminal: by bytes for a file, a
/// record counter for stdin. It appears after a second, so short inputs show nothing.
fn progress_bar(total_bytes: Option<u64>) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = match total_bytes {
        Some(len) => {
            let pb = indicatif::ProgressBar::with_draw_target(
                Some(len),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                pb.set_style(style);
            }
            pb
        }
        None => {
            let pb = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {pos} records {per_sec}")
            {
                pb.set_style(style);
            }
            pb
        }
    };
    // Hidden for the first second: nothing flickers for short inputs.
    pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    let shown = pb.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !shown.is_finished() {
            shown.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            shown.enable_steady_tick(Duration::from_millis(200));
        }
    });
    Some(pb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_separator() {
        assert_eq!(find(b"k:v:w", b":"), Some(1));
        assert_eq!(find(b"key::value", b"::"), Some(3));
        assert_eq!(find(b"novalue", b":"), None);
        assert_eq!(find(b"", b":"), None);
    }
}
