//! `runnel transactions list|describe|describe-producers|find-hanging|abort`, with
//! kafka-transactions.sh's options, columns and decisions (Kafka's `TransactionsCommand`,
//! KIP-664): inspect transactional ids and the producers on a partition, find hanging
//! transactions, and abort one.

use std::collections::{BTreeMap, BTreeSet};

use clap::Subcommand;
use runnel_client::{
    AbortTransactionSpec, ListTransactionsOptions, ProducerState, TopicPartition,
    TransactionDescription,
};
use serde_json::json;

use super::{not_found, now_ms, print_table, topic_partitions, CliError, CliResult, Ctx, Output};

#[derive(Subcommand)]
pub enum TransactionsCommand {
    /// List the transactional ids every broker coordinates, with their producer id and
    /// state.
    List {
        /// Only transactions running longer than this many milliseconds (KIP-994); a
        /// negative value lists all.
        #[arg(long, value_name = "MS", allow_negative_numbers = true)]
        duration_filter: Option<i64>,
    },
    /// Describe the state of a transactional id: producer, state, timeout, when its
    /// transaction started and its partitions.
    Describe {
        /// The transactional id.
        #[arg(long, value_name = "ID")]
        transactional_id: String,
    },
    /// Describe the producers with state on a partition: epoch, last sequence and
    /// timestamp, coordinator epoch, and where their open transaction starts.
    DescribeProducers {
        /// Ask this broker's replica instead of the leader.
        #[arg(long, value_name = "ID")]
        broker_id: Option<i32>,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The partition.
        #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
        partition: i32,
    },
    /// Find hanging transactions: open on a partition for longer than
    /// --max-transaction-timeout, and no longer part of their transactional id's
    /// transaction (or with no transactional id left at all). Needs --topic or
    /// --broker-id to limit the search.
    FindHanging {
        /// Search the partitions with a replica on this broker.
        #[arg(long, value_name = "ID")]
        broker_id: Option<i32>,
        /// The largest transaction timeout in use, in minutes: transactions open for
        /// less are not considered.
        #[arg(long, value_name = "MINUTES", default_value_t = 15,
              value_parser = clap::value_parser!(i64).range(0..))]
        max_transaction_timeout: i64,
        /// Search only this topic.
        #[arg(long)]
        topic: Option<String>,
        /// Search only this partition of --topic.
        #[arg(long, requires = "topic", value_parser = clap::value_parser!(i32).range(0..))]
        partition: Option<i32>,
    },
    /// Abort a hanging transaction on a partition by writing its abort marker (needs
    /// ClusterAction on the cluster). Name it by --start-offset (the producer is looked
    /// up with describe-producers) or by --producer-id, --producer-epoch and
    /// --coordinator-epoch.
    Abort {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The partition.
        #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
        partition: i32,
        /// The first offset of the transaction to abort.
        #[arg(long, value_name = "OFFSET",
              conflicts_with_all = ["producer_id", "producer_epoch", "coordinator_epoch"])]
        start_offset: Option<i64>,
        /// The producer id of the transaction.
        #[arg(long, value_name = "ID")]
        producer_id: Option<i64>,
        /// The producer epoch of the transaction.
        #[arg(long, value_name = "EPOCH")]
        producer_epoch: Option<i16>,
        /// The coordinator epoch of the producer's last marker (-1 is taken as 0).
        #[arg(long, value_name = "EPOCH", allow_negative_numbers = true)]
        coordinator_epoch: Option<i32>,
    },
}

pub(crate) async fn run(ctx: &Ctx, cmd: TransactionsCommand) -> CliResult<()> {
    match cmd {
        TransactionsCommand::List { duration_filter } => list(ctx, duration_filter).await,
        TransactionsCommand::Describe { transactional_id } => {
            describe(ctx, &transactional_id).await
        }
        TransactionsCommand::DescribeProducers {
            broker_id,
            topic,
            partition,
        } => describe_producers(ctx, broker_id, &topic, partition).await,
        TransactionsCommand::FindHanging {
            broker_id,
            max_transaction_timeout,
            topic,
            partition,
        } => {
            find_hanging(
                ctx,
                broker_id,
                max_transaction_timeout,
                topic.as_deref(),
                partition,
            )
            .await
        }
        TransactionsCommand::Abort {
            topic,
            partition,
            start_offset,
            producer_id,
            producer_epoch,
            coordinator_epoch,
        } => {
            let target =
                match (start_offset, producer_id) {
                    (Some(offset), _) => AbortTarget::StartOffset(offset),
                    (None, Some(id)) => AbortTarget::Producer {
                        id,
                        epoch: producer_epoch.ok_or_else(|| {
                            CliError::Usage("missing required argument --producer-epoch".into())
                        })?,
                        coordinator_epoch: coordinator_epoch.ok_or_else(|| {
                            CliError::Usage("missing required argument --coordinator-epoch".into())
                        })?,
                    },
                    (None, None) => return Err(CliError::Usage(
                        "the transaction to abort must be identified either with --start-offset \
                         or with --producer-id, --producer-epoch and --coordinator-epoch"
                            .into(),
                    )),
                };
            abort(ctx, &topic, partition, target).await
        }
    }
}

/// `None` as kafka-transactions.sh prints an absent value.
fn or_none<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "None".to_string(), |v| v.to_string())
}

fn tp_string(tp: &TopicPartition) -> String {
    format!("{}-{}", tp.topic, tp.partition)
}

/// A broker named by --broker-id must be in the cluster (exit 3 otherwise).
async fn ensure_broker(ctx: &Ctx, id: i32) -> CliResult<()> {
    ctx.client.refresh_metadata(&[]).await?;
    let brokers = ctx.client.brokers();
    if brokers.iter().any(|b| b.node_id == id) {
        return Ok(());
    }
    let ids: Vec<String> = brokers.iter().map(|b| b.node_id.to_string()).collect();
    Err(CliError::NotFound(format!(
        "broker {id} does not exist (brokers: {})",
        ids.join(", ")
    )))
}

async fn list(ctx: &Ctx, duration_filter: Option<i64>) -> CliResult<()> {
    let options = ListTransactionsOptions {
        duration_filter_ms: duration_filter.unwrap_or(-1),
        ..ListTransactionsOptions::default()
    };
    let listings = ctx.admin.list_transactions(&options).await?;
    match ctx.output {
        Output::Json => ctx.print_json(&json!(listings
            .iter()
            .map(|l| json!({
                "transactional_id": l.transactional_id,
                "coordinator_id": l.coordinator_id,
                "producer_id": l.producer_id,
                "state": l.state,
            }))
            .collect::<Vec<_>>())),
        Output::Table => {
            let rows: Vec<Vec<String>> = listings
                .iter()
                .map(|l| {
                    vec![
                        l.transactional_id.clone(),
                        l.coordinator_id.to_string(),
                        l.producer_id.to_string(),
                        l.state.clone(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "TransactionalId",
                    "Coordinator",
                    "ProducerId",
                    "TransactionState",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

/// TRANSACTIONAL_ID_NOT_FOUND.
const E_TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

async fn describe(ctx: &Ctx, id: &str) -> CliResult<()> {
    let answer = ctx
        .admin
        .describe_transactions(&[id])
        .await?
        .remove(id)
        .ok_or_else(|| CliError::Broker(format!("no answer for transactional id {id}")))?;
    let d: TransactionDescription = match answer {
        Ok(d) => d,
        Err(e) if e.code() == Some(E_TRANSACTIONAL_ID_NOT_FOUND) => {
            let known = ctx
                .admin
                .list_transactions(&ListTransactionsOptions::default())
                .await
                .unwrap_or_default();
            return Err(not_found(
                "transactional id",
                id,
                known.iter().map(|l| l.transactional_id.as_str()),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let duration = d.start_time_ms.map(|start| now_ms() - start);
    match ctx.output {
        Output::Json => ctx.print_json(&json!({
            "coordinator_id": d.coordinator_id,
            "transactional_id": d.transactional_id,
            "producer_id": d.producer_id,
            "producer_epoch": d.producer_epoch,
            "state": d.state,
            "timeout_ms": d.timeout_ms,
            "start_time_ms": d.start_time_ms,
            "duration_ms": duration,
            "partitions": d.partitions.iter().map(|tp| json!({
                "topic": tp.topic,
                "partition": tp.partition,
            })).collect::<Vec<_>>(),
        })),
        Output::Table => {
            let row = vec![
                d.coordinator_id.to_string(),
                d.transactional_id.clone(),
                d.producer_id.to_string(),
                d.producer_epoch.to_string(),
                d.state.clone(),
                d.timeout_ms.to_string(),
                or_none(d.start_time_ms),
                or_none(duration),
                d.partitions
                    .iter()
                    .map(tp_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ];
            print_table(
                &[
                    "CoordinatorId",
                    "TransactionalId",
                    "ProducerId",
                    "ProducerEpoch",
                    "TransactionState",
                    "TransactionTimeoutMs",
                    "CurrentTransactionStartTimeMs",
                    "TransactionDurationMs",
                    "TopicPartitions",
                ],
                &[row],
            );
        }
    }
    Ok(())
}

fn producer_json(p: &ProducerState) -> serde_json::Value {
    json!({
        "producer_id": p.producer_id,
        "producer_epoch": p.producer_epoch,
        "coordinator_epoch": p.coordinator_epoch,
        "last_sequence": p.last_sequence,
        "last_timestamp": p.last_timestamp,
        "current_txn_start_offset": p.current_txn_start_offset,
    })
}

async fn describe_producers(
    ctx: &Ctx,
    broker: Option<i32>,
    topic: &str,
    partition: i32,
) -> CliResult<()> {
    let tp = topic_partitions(ctx, topic, &[partition])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Broker(format!("no metadata for {topic}-{partition}")))?;
    if let Some(b) = broker {
        ensure_broker(ctx, b).await?;
    }
    let mut found = ctx
        .admin
        .describe_producers(std::slice::from_ref(&tp), broker)
        .await
        .map_err(|e| {
            let on = broker.map_or_else(|| "leader".to_string(), |b| format!("broker {b}"));
            CliError::Broker(format!(
                "failed to describe producers for partition {} on {on}: {e}",
                tp_string(&tp)
            ))
        })?;
    let producers = found.remove(&tp).unwrap_or_default();
    match ctx.output {
        Output::Json => ctx.print_json(&json!({
            "topic": tp.topic,
            "partition": tp.partition,
            "producers": producers.iter().map(producer_json).collect::<Vec<_>>(),
        })),
        Output::Table => {
            let rows: Vec<Vec<String>> = producers
                .iter()
                .map(|p| {
                    vec![
                        p.producer_id.to_string(),
                        p.producer_epoch.to_string(),
                        p.coordinator_epoch.unwrap_or(-1).to_string(),
                        p.last_sequence.to_string(),
                        p.last_timestamp.to_string(),
                        or_none(p.current_txn_start_offset),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ProducerId",
                    "ProducerEpoch",
                    "LatestCoordinatorEpoch",
                    "LastSequence",
                    "LastTimestamp",
                    "CurrentTransactionStartOffset",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

/// How many topics or partitions one request names (kafka-transactions.sh's batches).
const MAX_BATCH: usize = 500;

/// An open transaction on a partition: a candidate for hanging.
struct OpenTxn {
    tp: TopicPartition,
    producer: ProducerState,
    transactional_id: Option<String>,
}

/// The partitions find-hanging searches: the one named, the topic's, or every topic's
/// (internal ones included); with `broker`, only those with a replica there.
async fn partitions_to_search(
    ctx: &Ctx,
    broker: Option<i32>,
    topic: Option<&str>,
    partition: Option<i32>,
) -> CliResult<Vec<TopicPartition>> {
    let topics: Vec<String> = match (topic, partition) {
        (Some(t), Some(p)) => return topic_partitions(ctx, t, &[p]).await,
        (Some(t), None) => {
            super::topics::ensure_exists(ctx, t).await?;
            vec![t.to_string()]
        }
        (None, _) => ctx.admin.list_topics(true).await?,
    };
    let mut out = Vec::new();
    for batch in topics.chunks(MAX_BATCH) {
        let names: Vec<&str> = batch.iter().map(String::as_str).collect();
        for d in ctx.admin.describe_topics(&names).await? {
            for p in &d.partitions {
                if broker.is_none_or(|b| p.replicas.contains(&b)) {
                    out.push(TopicPartition::new(d.name.clone(), p.partition));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn find_hanging(
    ctx: &Ctx,
    broker: Option<i32>,
    max_timeout_min: i64,
    topic: Option<&str>,
    partition: Option<i32>,
) -> CliResult<()> {
    if topic.is_none() && broker.is_none() {
        return Err(CliError::Usage(
            "find-hanging needs --topic or --broker-id to limit the scope of the search".into(),
        ));
    }
    if let Some(b) = broker {
        ensure_broker(ctx, b).await?;
    }
    let max_timeout_ms = max_timeout_min.saturating_mul(60_000);
    let partitions = partitions_to_search(ctx, broker, topic, partition).await?;

    // Open transactions older than the largest timeout: the coordinator should have
    // completed them by now.
    let mut candidates: Vec<OpenTxn> = Vec::new();
    for batch in partitions.chunks(MAX_BATCH) {
        let found = ctx
            .admin
            .describe_producers(batch, broker)
            .await
            .map_err(|e| {
                CliError::Broker(format!(
                    "failed to describe producers for {} partitions: {e}",
                    batch.len()
                ))
            })?;
        let now = now_ms();
        for (tp, producers) in found {
            for p in producers {
                if p.current_txn_start_offset.is_some()
                    && now.saturating_sub(p.last_timestamp) > max_timeout_ms
                {
                    candidates.push(OpenTxn {
                        tp: tp.clone(),
                        producer: p,
                        transactional_id: None,
                    });
                }
            }
        }
    }

    let mut hanging: Vec<OpenTxn> = Vec::new();
    if !candidates.is_empty() {
        // Which transactional id each producer id belongs to now.
        let producer_ids: BTreeSet<i64> =
            candidates.iter().map(|c| c.producer.producer_id).collect();
        let listings = ctx
            .admin
            .list_transactions(&ListTransactionsOptions {
                producer_ids: producer_ids.iter().copied().collect(),
                ..ListTransactionsOptions::default()
            })
            .await
            .map_err(|e| {
                CliError::Broker(format!(
                    "failed to list transactions for {} producers: {e}",
                    producer_ids.len()
                ))
            })?;
        let ids: BTreeMap<i64, String> = listings
            .into_iter()
            .filter(|l| producer_ids.contains(&l.producer_id))
            .map(|l| (l.producer_id, l.transactional_id))
            .collect();
        // And the partitions of that id's transaction.
        let names: Vec<&str> = ids.values().map(String::as_str).collect();
        let mut descriptions: BTreeMap<String, Option<TransactionDescription>> = BTreeMap::new();
        if !names.is_empty() {
            let answers = ctx.admin.describe_transactions(&names).await?;
            for (name, answer) in answers {
                let d = match answer {
                    Ok(d) => Some(d),
                    Err(e) if e.code() == Some(E_TRANSACTIONAL_ID_NOT_FOUND) => None,
                    Err(e) => {
                        return Err(CliError::Broker(format!(
                            "failed to describe {} transactions: {e}",
                            names.len()
                        )))
                    }
                };
                descriptions.insert(name, d);
            }
        }
        // As Kafka decides: hanging unless the producer's transactional id still has
        // this partition in its transaction (Ongoing, or waiting for this marker).
        for mut c in candidates {
            let id = ids.get(&c.producer.producer_id);
            let description = id
                .and_then(|i| descriptions.get(i))
                .and_then(Option::as_ref);
            let still_coordinated = description.is_some_and(|d| d.partitions.contains(&c.tp));
            if !still_coordinated {
                c.transactional_id = id.cloned();
                hanging.push(c);
            }
        }
    }
    hanging.sort_by(|a, b| (&a.tp, a.producer.producer_id).cmp(&(&b.tp, b.producer.producer_id)));

    let now = now_ms();
    let duration_ms = |c: &OpenTxn| now.saturating_sub(c.producer.last_timestamp).max(0);
    match ctx.output {
        Output::Json => ctx.print_json(&json!(hanging
            .iter()
            .map(|c| json!({
                "topic": c.tp.topic,
                "partition": c.tp.partition,
                "producer_id": c.producer.producer_id,
                "producer_epoch": c.producer.producer_epoch,
                "coordinator_epoch": c.producer.coordinator_epoch,
                "start_offset": c.producer.current_txn_start_offset,
                "last_timestamp": c.producer.last_timestamp,
                "duration_ms": duration_ms(c),
                "transactional_id": c.transactional_id,
            }))
            .collect::<Vec<_>>())),
        Output::Table => {
            let rows: Vec<Vec<String>> = hanging
                .iter()
                .map(|c| {
                    vec![
                        c.tp.topic.clone(),
                        c.tp.partition.to_string(),
                        c.producer.producer_id.to_string(),
                        c.producer.producer_epoch.to_string(),
                        c.producer.coordinator_epoch.unwrap_or(-1).to_string(),
                        c.producer
                            .current_txn_start_offset
                            .unwrap_or(-1)
                            .to_string(),
                        c.producer.last_timestamp.to_string(),
                        (duration_ms(c) / 60_000).to_string(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "Topic",
                    "Partition",
                    "ProducerId",
                    "ProducerEpoch",
                    "CoordinatorEpoch",
                    "StartOffset",
                    "LastTimestamp",
                    "Duration(min)",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

enum AbortTarget {
    StartOffset(i64),
    Producer {
        id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    },
}

/// Errors from WriteTxnMarkers that mean "not this producer's transaction any more":
/// INVALID_PRODUCER_EPOCH 47, TRANSACTION_COORDINATOR_FENCED 52, PRODUCER_FENCED 90.
fn abort_refused(e: &runnel_client::Error) -> bool {
    matches!(e.code(), Some(47 | 52 | 90))
}

async fn abort(ctx: &Ctx, topic: &str, partition: i32, target: AbortTarget) -> CliResult<()> {
    let tp = topic_partitions(ctx, topic, &[partition])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Broker(format!("no metadata for {topic}-{partition}")))?;
    let (producer_id, producer_epoch, coordinator_epoch) = match target {
        AbortTarget::StartOffset(offset) => {
            let mut found = ctx
                .admin
                .describe_producers(std::slice::from_ref(&tp), None)
                .await
                .map_err(|e| {
                    CliError::Broker(format!(
                        "failed to validate producer state for partition {}: {e}",
                        tp_string(&tp)
                    ))
                })?;
            let producers = found.remove(&tp).unwrap_or_default();
            let Some(p) = producers
                .iter()
                .find(|p| p.current_txn_start_offset == Some(offset))
            else {
                let open: Vec<String> = producers
                    .iter()
                    .filter_map(|p| p.current_txn_start_offset)
                    .map(|o| o.to_string())
                    .collect();
                let hint = if open.is_empty() {
                    "; it has no open transactions".to_string()
                } else {
                    format!("; open transactions there start at {}", open.join(", "))
                };
                return Err(CliError::NotFound(format!(
                    "could not find any open transaction starting at offset {offset} on partition {}{hint}",
                    tp_string(&tp)
                )));
            };
            let epoch = i16::try_from(p.producer_epoch).map_err(|_| {
                CliError::Broker(format!(
                    "producer {} has epoch {}, outside a producer epoch's range",
                    p.producer_id, p.producer_epoch
                ))
            })?;
            // A producer that never saw a marker has no coordinator epoch: 0 is at
            // most any real one.
            (p.producer_id, epoch, p.coordinator_epoch.unwrap_or(0))
        }
        AbortTarget::Producer {
            id,
            epoch,
            coordinator_epoch,
        } => (id, epoch, coordinator_epoch.max(0)),
    };
    let spec = AbortTransactionSpec {
        partition: &tp,
        producer_id,
        producer_epoch,
        coordinator_epoch,
    };
    ctx.admin.abort_transaction(&spec).await.map_err(|e| {
        if abort_refused(&e) {
            CliError::Refused(format!(
                "{e}; the producer has moved on (a newer epoch or coordinator): check with describe-producers"
            ))
        } else {
            CliError::Broker(e.to_string())
        }
    })?;
    match ctx.output {
        Output::Json => ctx.print_json(&json!({
            "topic": tp.topic,
            "partition": tp.partition,
            "producer_id": producer_id,
            "producer_epoch": producer_epoch,
            "coordinator_epoch": coordinator_epoch,
            "result": "aborted",
        })),
        Output::Table => println!(
            "aborted the transaction of producer {producer_id} (epoch {producer_epoch}, \
             coordinator epoch {coordinator_epoch}) on {}",
            tp_string(&tp)
        ),
    }
    Ok(())
}
