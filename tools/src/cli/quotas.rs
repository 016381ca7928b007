//! `runnel quotas alter|describe`: client quotas (KIP-546) by user, client id or IP,
//! through AlterClientQuotas and DescribeClientQuotas, as kafka-configs sets them.

use runnel_protocol::api::messages as m;
use runnel_protocol::api::ResponseBody;
use runnel_protocol::api::StrBytes;
use serde_json::json;

use super::{print_table, CliError, CliResult, Ctx, Output};

const DEFAULT_NAME: &str = "<default>";

/// `runnel quotas ...`.
#[derive(clap::Subcommand)]
pub enum QuotasCommand {
    /// Set or remove quotas of one entity.
    #[command(after_help = "\
Entities are Kafka's: --entity user=alice, --entity client-id=app, both for alice's \
client app, --entity ip=10.0.0.1; a name of <default> is the default entity \
(--entity 'user=<default>'). Quotas: producer_byte_rate, consumer_byte_rate, \
request_percentage, controller_mutation_rate (users and client ids), \
connection_creation_rate (IPs).

  runnel quotas alter --entity user=alice --add-config producer_byte_rate=1048576
  runnel quotas alter --entity 'client-id=<default>' --delete-config consumer_byte_rate")]
    Alter {
        /// TYPE=NAME, once per entity type (user, client-id, ip).
        #[arg(long = "entity", required = true)]
        entity: Vec<String>,
        /// KEY=VALUE[,KEY=VALUE...] to set.
        #[arg(long)]
        add_config: Option<String>,
        /// KEY[,KEY...] to remove.
        #[arg(long)]
        delete_config: Option<String>,
        /// Check only; change nothing.
        #[arg(long)]
        validate_only: bool,
    },
    /// List quotas: all, or those matching the filter.
    Describe {
        /// TYPE=NAME the entity must have (NAME <default> for the default entity).
        #[arg(long = "entity")]
        entity: Vec<String>,
        /// An entity type the entity must have, with any name.
        #[arg(long = "entity-type")]
        entity_type: Vec<String>,
        /// Only entities with exactly the filter's types.
        #[arg(long)]
        strict: bool,
    },
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// TYPE=NAME to (type, name), `<default>` as `None`.
fn parse_entity(arg: &str) -> CliResult<(String, Option<String>)> {
    let (t, n) = arg
        .split_once('=')
        .ok_or_else(|| CliError::Usage(format!("--entity {arg:?}: expected TYPE=NAME")))?;
    let name = (n != DEFAULT_NAME).then(|| n.to_string());
    Ok((t.to_string(), name))
}

fn entity_text(entity: &[(String, Option<String>)]) -> String {
    entity
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or(DEFAULT_NAME)))
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn run(ctx: &Ctx, command: QuotasCommand) -> CliResult<()> {
    let conn = ctx.client.any_connection().await?;
    match command {
        QuotasCommand::Alter {
            entity,
            add_config,
            delete_config,
            validate_only,
        } => {
            use m::alter_client_quotas_request::{EntityData, EntryData, OpData};
            let entity = entity
                .iter()
                .map(|e| parse_entity(e))
                .collect::<CliResult<Vec<_>>>()?;
            let mut ops = Vec::new();
            for kv in add_config.iter().flat_map(|c| c.split(',')) {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    CliError::Usage(format!("--add-config {kv:?}: expected KEY=VALUE"))
                })?;
                let v: f64 = v.trim().parse().map_err(|_| {
                    CliError::Usage(format!("--add-config {kv:?}: {v:?} is not a number"))
                })?;
                ops.push(OpData::default().with_key(s(k.trim())).with_value(v));
            }
            for k in delete_config.iter().flat_map(|c| c.split(',')) {
                ops.push(OpData::default().with_key(s(k.trim())).with_remove(true));
            }
            if ops.is_empty() {
                return Err(CliError::Usage(
                    "give --add-config and/or --delete-config".into(),
                ));
            }
            let req = m::AlterClientQuotasRequest::default()
                .with_validate_only(validate_only)
                .with_entries(vec![EntryData::default()
                    .with_entity(
                        entity
                            .iter()
                            .map(|(t, n)| {
                                EntityData::default()
                                    .with_entity_type(s(t))
                                    .with_entity_name(n.as_deref().map(s))
                            })
                            .collect(),
                    )
                    .with_ops(ops)]);
            let ResponseBody::AlterClientQuotas(r) = conn.send(req).await? else {
                return Err(CliError::Broker("not an AlterClientQuotas answer".into()));
            };
            for e in &r.entries {
                if e.error_code != 0 {
                    return Err(CliError::Broker(format!(
                        "{}: {}",
                        entity_text(&entity),
                        e.error_message.as_deref().unwrap_or("refused")
                    )));
                }
            }
            let what = if validate_only { "Valid" } else { "Updated" };
            match ctx.output {
                Output::Json => ctx.print_json(&json!({
                    "entity": entity_text(&entity),
                    "validate_only": validate_only,
                })),
                Output::Table => println!("{what}: quotas of {}", entity_text(&entity)),
            }
            Ok(())
        }
        QuotasCommand::Describe {
            entity,
            entity_type,
            strict,
        } => {
            use m::describe_client_quotas_request::ComponentData;
            let mut components = Vec::new();
            for e in &entity {
                let (t, n) = parse_entity(e)?;
                components.push(
                    ComponentData::default()
                        .with_entity_type(s(&t))
                        .with_match_type(if n.is_some() { 0 } else { 1 })
                        .with_match(n.as_deref().map(s)),
                );
            }
            for t in &entity_type {
                components.push(
                    ComponentData::default()
                        .with_entity_type(s(t))
                        .with_match_type(2)
                        .with_match(None),
                );
            }
            let req = m::DescribeClientQuotasRequest::default()
                .with_components(components)
                .with_strict(strict);
            let ResponseBody::DescribeClientQuotas(r) = conn.send(req).await? else {
                return Err(CliError::Broker("not a DescribeClientQuotas answer".into()));
            };
            if r.error_code != 0 {
                return Err(CliError::Broker(
                    r.error_message
                        .as_deref()
                        .unwrap_or("DescribeClientQuotas refused")
                        .to_string(),
                ));
            }
            let mut rows = Vec::new();
            for e in r.entries.unwrap_or_default() {
                let mut entity: Vec<(String, Option<String>)> = e
                    .entity
                    .iter()
                    .map(|d| {
                        (
                            d.entity_type.to_string(),
                            d.entity_name.as_ref().map(|n| n.to_string()),
                        )
                    })
                    .collect();
                entity.sort();
                for v in &e.values {
                    rows.push(vec![
                        entity_text(&entity),
                        v.key.to_string(),
                        v.value.to_string(),
                    ]);
                }
            }
            rows.sort();
            match ctx.output {
                Output::Json => ctx.print_json(&json!(rows
                    .iter()
                    .map(|r| json!({"entity": r[0], "quota": r[1], "value": r[2].parse::<f64>().ok()}))
                    .collect::<Vec<_>>())),
                Output::Table => print_table(&["ENTITY", "QUOTA", "VALUE"], &rows),
            }
            Ok(())
        }
    }
}
