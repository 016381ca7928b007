//! `runnel topics ...`.

use clap::Subcommand;
use runnel_client::{AlterConfigOp, ConfigResource, NewTopic, OffsetSpec, TopicPartition};
use serde_json::json;

use super::{not_found, parse_kv, print_table, CliError, CliResult, Ctx, Output};

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// List topics.
    List,
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// A topic config as NAME=VALUE. Repeatable.
        #[arg(long = "config", value_name = "NAME=VALUE")]
        configs: Vec<String>,
    },
    /// Show partitions, leaders, offsets and overridden configs of a topic.
    Describe { name: String },
    /// Delete a topic.
    Delete { name: String },
    /// Set or delete topic configs.
    AlterConfig {
        name: String,
        /// Set NAME=VALUE. Repeatable.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Remove an override, back to the default. Repeatable.
        #[arg(long = "delete", value_name = "NAME")]
        delete: Vec<String>,
    },
    /// Grow a topic to a total number of partitions.
    AddPartitions {
        name: String,
        /// The partition count after the change.
        #[arg(long)]
        total: i32,
    },
}

pub(crate) async fn run(ctx: &Ctx, cmd: TopicsCommand) -> CliResult<()> {
    match cmd {
        TopicsCommand::List => list(ctx).await,
        TopicsCommand::Create {
            name,
            partitions,
            configs,
        } => {
            if partitions < 1 {
                return Err(CliError::Usage("--partitions must be at least 1".into()));
            }
            let mut topic = NewTopic::new(&name, partitions);
            for c in &configs {
                let (k, v) = parse_kv(c)?;
                topic = topic.config(k, v);
            }
            ctx.admin.create_topics(&[topic]).await?;
            done(ctx, "created", &name);
            Ok(())
        }
        TopicsCommand::Describe { name } => describe(ctx, &name).await,
        TopicsCommand::Delete { name } => {
            ensure_exists(ctx, &name).await?;
            ctx.admin.delete_topics(&[&name]).await?;
            done(ctx, "deleted", &name);
            Ok(())
        }
        TopicsCommand::AlterConfig { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                return Err(CliError::Usage(
                    "alter-config needs at least one --set or --delete".into(),
                ));
            }
            let mut ops = Vec::new();
            for s in &set {
                let (k, v) = parse_kv(s)?;
                ops.push(AlterConfigOp::set(k, v));
            }
            ops.extend(delete.iter().map(AlterConfigOp::delete));
            ensure_exists(ctx, &name).await?;
            ctx.admin
                .incremental_alter_configs(&ConfigResource::Topic(name.clone()), &ops)
                .await?;
            done(ctx, "altered", &name);
            Ok(())
        }
        TopicsCommand::AddPartitions { name, total } => {
            ensure_exists(ctx, &name).await?;
            ctx.admin.create_partitions(&name, total).await?;
            done(ctx, "partitions added", &name);
            Ok(())
        }
    }
}

fn done(ctx: &Ctx, what: &str, name: &str) {
    match ctx.output {
        Output::Table => println!("topic {name} {what}"),
        Output::Json => ctx.print_json(&json!({ "topic": name, "result": what })),
    }
}

/// Fail with "does not exist; did you mean" (exit 3) unless the topic exists.
pub(crate) async fn ensure_exists(ctx: &Ctx, name: &str) -> CliResult<()> {
    let topics = ctx.admin.list_topics(true).await?;
    if topics.iter().any(|t| t == name) {
        Ok(())
    } else {
        Err(not_found("topic", name, topics.iter().map(String::as_str)))
    }
}

async fn list(ctx: &Ctx) -> CliResult<()> {
    let mut topics = ctx.admin.list_topics(false).await?;
    topics.sort();
    let descs = if topics.is_empty() {
        Vec::new()
    } else {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        ctx.admin.describe_topics(&names).await?
    };
    match ctx.output {
        Output::Json => ctx.print_json(&json!(descs
            .iter()
            .map(|d| json!({ "name": d.name, "partitions": d.partitions.len() }))
            .collect::<Vec<_>>())),
        Output::Table => {
            let rows: Vec<Vec<String>> = descs
                .iter()
                .map(|d| vec![d.name.clone(), d.partitions.len().to_string()])
                .collect();
            print_table(&["TOPIC", "PARTITIONS"], &rows);
        }
    }
    Ok(())
}

async fn describe(ctx: &Ctx, name: &str) -> CliResult<()> {
    ensure_exists(ctx, name).await?;
    let desc = ctx
        .admin
        .describe_topics(&[name])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Broker(format!("no metadata for topic {name}")))?;
    let mut partitions = desc.partitions.clone();
    partitions.sort_by_key(|p| p.partition);
    let tps: Vec<TopicPartition> = partitions
        .iter()
        .map(|p| TopicPartition::new(name, p.partition))
        .collect();
    let starts = ctx
        .admin
        .list_offsets(
            &tps.iter()
                .map(|tp| (tp.clone(), OffsetSpec::Earliest))
                .collect::<Vec<_>>(),
        )
        .await?;
    let ends = ctx
        .admin
        .list_offsets(
            &tps.iter()
                .map(|tp| (tp.clone(), OffsetSpec::Latest))
                .collect::<Vec<_>>(),
        )
        .await?;
    let configs: Vec<(String, Option<String>)> = ctx
        .admin
        .describe_configs(&ConfigResource::Topic(name.to_string()))
        .await?
        .into_iter()
        // 1: DYNAMIC_TOPIC_CONFIG, set on this topic.
        .filter(|c| c.source == 1)
        .map(|c| {
            let v = if c.is_sensitive { None } else { c.value };
            (c.name, v)
        })
        .collect();
    let off = |m: &std::collections::BTreeMap<TopicPartition, runnel_client::ListedOffset>,
               tp: &TopicPartition| m.get(tp).map(|o| o.offset);
    match ctx.output {
        Output::Json => {
            let parts: Vec<_> = partitions
                .iter()
                .zip(&tps)
                .map(|(p, tp)| {
                    json!({
                        "partition": p.partition,
                        "leader": p.leader,
                        "replicas": p.replicas,
                        "isr": p.isr,
                        "log_start_offset": off(&starts, tp),
                        "log_end_offset": off(&ends, tp),
                    })
                })
                .collect();
            let cfg: serde_json::Map<String, serde_json::Value> =
                configs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            ctx.print_json(&json!({
                "name": name,
                "internal": desc.internal,
                "partitions": parts,
                "configs": cfg,
            }));
        }
        Output::Table => {
            println!("Topic: {name}  Partitions: {}", partitions.len());
            println!();
            let fmt = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
            let rows: Vec<Vec<String>> = partitions
                .iter()
                .zip(&tps)
                .map(|(p, tp)| {
                    vec![
                        p.partition.to_string(),
                        p.leader.to_string(),
                        fmt(off(&starts, tp)),
                        fmt(off(&ends, tp)),
                    ]
                })
                .collect();
            print_table(
                &["PARTITION", "LEADER", "LOG-START-OFFSET", "LOG-END-OFFSET"],
                &rows,
            );
            println!();
            if configs.is_empty() {
                println!("Configs: (all defaults)");
            } else {
                let rows: Vec<Vec<String>> = configs
                    .iter()
                    .map(|(k, v)| vec![k.clone(), v.clone().unwrap_or_else(|| "<hidden>".into())])
                    .collect();
                print_table(&["CONFIG", "VALUE"], &rows);
            }
        }
    }
    Ok(())
}
