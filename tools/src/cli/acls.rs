//! `runnel acls add|list|remove`, with kafka-acls.sh's options and their meanings
//! (Kafka's `AclCommand`): principals and hosts to allow or deny, operations, resources
//! and pattern types, and the `--producer` / `--consumer` conveniences.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal};

use clap::{Args, Subcommand, ValueEnum};
use runnel_client::acl::{
    AccessControlEntry, AclBinding, AclBindingFilter, AclOperation, AclPermissionType, PatternType,
    ResourcePattern, ResourceType, CLUSTER_NAME,
};
use serde_json::json;

use super::{CliError, CliResult, Ctx, Output};

#[derive(Subcommand)]
pub enum AclsCommand {
    /// Add ACLs (kafka-acls.sh --add). Each --allow-principal / --deny-principal gets
    /// each --operation on each resource, from each --allow-host / --deny-host (`*`).
    Add {
        #[command(flatten)]
        resources: ResourceArgs,
        #[command(flatten)]
        entries: EntryArgs,
    },
    /// List ACLs (kafka-acls.sh --list): all of them, or those on the given resources.
    List {
        #[command(flatten)]
        resources: ResourceArgs,
        /// Only ACLs of this principal (Type:name). Repeatable.
        #[arg(long = "principal", value_name = "PRINCIPAL")]
        principals: Vec<String>,
    },
    /// Remove ACLs (kafka-acls.sh --remove): the entries the options describe, or every
    /// ACL on the resources when no principal is given. Asks on the terminal unless
    /// --force; without a terminal, refuses unless --force.
    Remove {
        #[command(flatten)]
        resources: ResourceArgs,
        #[command(flatten)]
        entries: EntryArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PatternArg {
    Literal,
    Prefixed,
    /// Filters only: every pattern type, the exact name.
    Any,
    /// Filters only: every ACL that applies to the name (literal, wildcard, prefixes).
    Match,
}

impl PatternArg {
    fn pattern_type(self) -> PatternType {
        match self {
            PatternArg::Literal => PatternType::Literal,
            PatternArg::Prefixed => PatternType::Prefixed,
            PatternArg::Any => PatternType::Any,
            PatternArg::Match => PatternType::Match,
        }
    }
}

/// The resources an ACL command is about.
#[derive(Args)]
pub struct ResourceArgs {
    /// A topic; `*` is every topic. Repeatable.
    #[arg(long = "topic", value_name = "TOPIC")]
    topics: Vec<String>,
    /// A consumer group; `*` is every group. Repeatable.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// The cluster resource (kafka-cluster).
    #[arg(long)]
    cluster: bool,
    /// A transactional id; `*` is every one. Repeatable.
    #[arg(long = "transactional-id", value_name = "ID")]
    transactional_ids: Vec<String>,
    /// A delegation token id. Repeatable.
    #[arg(long = "delegation-token", value_name = "TOKEN")]
    delegation_tokens: Vec<String>,
    /// A user principal as a resource (for CreateTokens, DescribeTokens). Repeatable.
    #[arg(long = "user-principal", value_name = "PRINCIPAL")]
    user_principals: Vec<String>,
    /// How resource names match: literal or prefixed for add; list and remove also
    /// take any (every pattern type, exact name) and match (every ACL that applies).
    #[arg(long, value_enum, default_value_t = PatternArg::Literal)]
    resource_pattern_type: PatternArg,
}

/// The entries of ACLs to add or remove.
#[derive(Args)]
pub struct EntryArgs {
    /// A principal to allow, Type:name (User:alice; User:* is everyone). Repeatable.
    #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
    allow_principals: Vec<String>,
    /// A principal to deny; DENY wins over ALLOW. Repeatable.
    #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
    deny_principals: Vec<String>,
    /// A host the allowed principals may come from (default `*`, every host). Repeatable.
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// A host the denied principals are denied from (default `*`). Repeatable.
    #[arg(long = "deny-host", value_name = "HOST")]
    deny_hosts: Vec<String>,
    /// An operation: All (default), Read, Write, Create, Delete, Alter, Describe,
    /// ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, CreateTokens,
    /// DescribeTokens, TwoPhaseCommit. Repeatable.
    #[arg(long = "operation", value_name = "OPERATION")]
    operations: Vec<String>,
    /// The producer role: WRITE, DESCRIBE and CREATE on --topic; WRITE and DESCRIBE on
    /// --transactional-id; IDEMPOTENT_WRITE on the cluster with --idempotent.
    #[arg(long)]
    producer: bool,
    /// With --producer: IDEMPOTENT_WRITE on the cluster.
    #[arg(long)]
    idempotent: bool,
    /// The consumer role: READ and DESCRIBE on --topic, READ on --group.
    #[arg(long)]
    consumer: bool,
}

pub(crate) async fn run(ctx: &Ctx, cmd: AclsCommand) -> CliResult<()> {
    match cmd {
        AclsCommand::Add { resources, entries } => add(ctx, &resources, &entries).await,
        AclsCommand::List {
            resources,
            principals,
        } => list(ctx, &resources, &principals).await,
        AclsCommand::Remove {
            resources,
            entries,
            force,
        } => remove(ctx, &resources, &entries, force).await,
    }
}

fn usage(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

/// `Type:name`, as Kafka's `SecurityUtils.parseKafkaPrincipal` splits it.
fn parse_principal(s: &str) -> CliResult<String> {
    let s = s.trim();
    match s.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(s.to_string()),
        _ => Err(usage(format!(
            "expected a principal in format principalType:principalName (User:alice) but got {s:?}"
        ))),
    }
}

/// The resource filters the options name (Kafka's `getResourceFilter`). As in Kafka,
/// the cluster is only named with the literal pattern type.
fn resource_filters(r: &ResourceArgs, idempotent: bool) -> CliResult<Vec<AclBindingFilter>> {
    let pt = r.resource_pattern_type.pattern_type();
    let mut out: Vec<AclBindingFilter> = Vec::new();
    let mut push = |t: ResourceType, name: &str| {
        let f = AclBindingFilter::for_resources(t, Some(name.trim().to_string()), pt);
        if !out.contains(&f) {
            out.push(f);
        }
    };
    for t in &r.topics {
        push(ResourceType::Topic, t);
    }
    if pt == PatternType::Literal && (r.cluster || idempotent) {
        push(ResourceType::Cluster, CLUSTER_NAME);
    }
    for g in &r.groups {
        push(ResourceType::Group, g);
    }
    for t in &r.transactional_ids {
        push(ResourceType::TransactionalId, t);
    }
    for t in &r.delegation_tokens {
        push(ResourceType::DelegationToken, t);
    }
    for u in &r.user_principals {
        push(ResourceType::User, u);
    }
    if out.iter().any(|f| f.name.as_deref() == Some("")) {
        return Err(usage("a resource name cannot be empty"));
    }
    Ok(out)
}

fn no_resource() -> CliError {
    usage(
        "you must provide at least one resource: --topic <topic> or --cluster or --group <group> \
         or --transactional-id <id> or --delegation-token <token> or --user-principal <principal>",
    )
}

/// The entries for `operations` (Kafka's `getAcl`): each allowed principal from each
/// allowed host, each denied principal from each denied host.
fn entries_for(
    e: &EntryArgs,
    operations: &[AclOperation],
) -> CliResult<BTreeSet<AccessControlEntry>> {
    let hosts = |given: &[String], principals: &[String]| -> Vec<String> {
        if !given.is_empty() {
            given.iter().map(|h| h.trim().to_string()).collect()
        } else if !principals.is_empty() {
            vec!["*".to_string()]
        } else {
            Vec::new()
        }
    };
    let mut out = BTreeSet::new();
    for (principals, host_args, permission) in [
        (
            &e.allow_principals,
            &e.allow_hosts,
            AclPermissionType::Allow,
        ),
        (&e.deny_principals, &e.deny_hosts, AclPermissionType::Deny),
    ] {
        let hosts = hosts(host_args, principals);
        for p in principals {
            let principal = parse_principal(p)?;
            for op in operations {
                for h in &hosts {
                    if h.is_empty() {
                        return Err(usage("a host cannot be empty"));
                    }
                    out.insert(AccessControlEntry {
                        principal: principal.clone(),
                        host: h.clone(),
                        operation: *op,
                        permission,
                    });
                }
            }
        }
    }
    Ok(out)
}

fn parse_operations(names: &[String]) -> CliResult<Vec<AclOperation>> {
    if names.is_empty() {
        return Ok(vec![AclOperation::All]);
    }
    names
        .iter()
        .map(|n| {
            AclOperation::parse(n)
                .filter(|op| *op != AclOperation::Any)
                .ok_or_else(|| {
                    let valid: Vec<String> = AclOperation::VALUES
                        .iter()
                        .filter(|o| **o != AclOperation::Any)
                        .map(|o| o.pascal_name())
                        .collect();
                    usage(format!(
                        "unknown operation {n:?}; valid operations are {}",
                        valid.join(", ")
                    ))
                })
        })
        .collect()
}

/// kafka-acls.sh's argument checks for add and remove (`checkArgs`).
fn check_entry_args(r: &ResourceArgs, e: &EntryArgs) -> CliResult<()> {
    if (e.producer || e.consumer)
        && (!e.operations.is_empty() || !e.deny_principals.is_empty() || !e.deny_hosts.is_empty())
    {
        return Err(usage(
            "--producer and --consumer imply the operations: they take no --operation, \
             --deny-principal or --deny-host",
        ));
    }
    if e.producer && r.topics.is_empty() {
        return Err(usage("with --producer you must specify a --topic"));
    }
    if e.idempotent && !e.producer {
        return Err(usage(
            "the --idempotent option is only available if --producer is set",
        ));
    }
    if e.consumer
        && (r.topics.is_empty()
            || r.groups.is_empty()
            || (!e.producer && (r.cluster || !r.transactional_ids.is_empty())))
    {
        return Err(usage(
            "with --consumer you must specify a --topic and a --group and no --cluster or \
             --transactional-id option should be specified",
        ));
    }
    Ok(())
}

/// Each resource filter with the entries to add or remove on it (Kafka's
/// `getResourceFilterToAcls`), operations checked against the resource type.
fn filters_to_entries(
    r: &ResourceArgs,
    e: &EntryArgs,
) -> CliResult<Vec<(AclBindingFilter, BTreeSet<AccessControlEntry>)>> {
    check_entry_args(r, e)?;
    let filters = resource_filters(r, e.idempotent)?;
    if filters.is_empty() {
        return Err(no_resource());
    }
    let mut map: Vec<(AclBindingFilter, BTreeSet<AccessControlEntry>)> = Vec::new();
    let mut add = |f: &AclBindingFilter, entries: BTreeSet<AccessControlEntry>| match map
        .iter_mut()
        .find(|(g, _)| g == f)
    {
        Some((_, set)) => set.extend(entries),
        None => map.push((f.clone(), entries)),
    };
    use AclOperation::*;
    if !e.producer && !e.consumer {
        let ops = parse_operations(&e.operations)?;
        let entries = entries_for(e, &ops)?;
        for f in &filters {
            add(f, entries.clone());
        }
    }
    if e.producer {
        for f in &filters {
            match f.resource_type {
                ResourceType::Topic => add(f, entries_for(e, &[Write, Describe, Create])?),
                ResourceType::TransactionalId => add(f, entries_for(e, &[Write, Describe])?),
                ResourceType::Cluster if e.idempotent => {
                    add(f, entries_for(e, &[IdempotentWrite])?)
                }
                _ => {}
            }
        }
    }
    if e.consumer {
        for f in &filters {
            match f.resource_type {
                ResourceType::Topic => add(f, entries_for(e, &[Read, Describe])?),
                ResourceType::Group => add(f, entries_for(e, &[Read])?),
                _ => {}
            }
        }
    }
    for (f, entries) in &map {
        let valid = f.resource_type.operations();
        if entries
            .iter()
            .any(|a| a.operation != All && !valid.contains(&a.operation))
        {
            let mut names: Vec<String> = valid.iter().map(|o| o.pascal_name()).collect();
            names.push("All".into());
            return Err(usage(format!(
                "ResourceType {} only supports operations {}",
                f.resource_type,
                names.join(", ")
            )));
        }
    }
    Ok(map)
}

fn binding_json(b: &AclBinding) -> serde_json::Value {
    json!({
        "resource_type": b.pattern.resource_type.name(),
        "resource_name": b.pattern.name,
        "pattern_type": b.pattern.pattern_type.name(),
        "principal": b.entry.principal,
        "host": b.entry.host,
        "operation": b.entry.operation.name(),
        "permission_type": b.entry.permission.name(),
    })
}

/// kafka-acls.sh's block as its --list prints it: "<title> `<pattern>`:", one
/// tab-indented entry a line, a blank line.
fn print_list_block<'a>(
    title: &str,
    pattern: &str,
    entries: impl IntoIterator<Item = &'a AccessControlEntry>,
) {
    println!("{title} `{pattern}`:");
    for e in entries {
        println!("\t{e}");
    }
    println!();
}

/// kafka-acls.sh's block as its --add prints it, stray spaces included.
fn print_block<'a>(
    title: &str,
    pattern: &str,
    entries: impl IntoIterator<Item = &'a AccessControlEntry>,
) {
    let lines: Vec<String> = entries.into_iter().map(|e| format!("\t{e}")).collect();
    println!("{title} `{pattern}`: \n {} \n", lines.join("\n"));
}

async fn add(ctx: &Ctx, r: &ResourceArgs, e: &EntryArgs) -> CliResult<()> {
    if !matches!(
        r.resource_pattern_type,
        PatternArg::Literal | PatternArg::Prefixed
    ) {
        return Err(usage(
            "a --resource-pattern-type of any or match is not valid when adding ACLs: use literal or prefixed",
        ));
    }
    let map = filters_to_entries(r, e)?;
    if map.iter().any(|(_, entries)| entries.is_empty()) {
        return Err(usage(
            "you must specify one of: --allow-principal, --deny-principal when trying to add ACLs",
        ));
    }
    let mut added = Vec::new();
    for (f, entries) in &map {
        let pattern = ResourcePattern {
            resource_type: f.resource_type,
            name: f.name.clone().unwrap_or_default(),
            pattern_type: f.pattern_type,
        };
        if ctx.output == Output::Table {
            print_block("Adding ACLs for resource", &pattern.to_string(), entries);
        }
        let bindings: Vec<AclBinding> = entries
            .iter()
            .map(|entry| AclBinding {
                pattern: pattern.clone(),
                entry: entry.clone(),
            })
            .collect();
        ctx.admin.create_acls(&bindings).await?;
        added.extend(bindings);
    }
    if ctx.output == Output::Json {
        ctx.print_json(&json!({
            "result": "added",
            "acls": added.iter().map(binding_json).collect::<Vec<_>>(),
        }));
    }
    Ok(())
}

async fn list(ctx: &Ctx, r: &ResourceArgs, principals: &[String]) -> CliResult<()> {
    let principals: Vec<String> = principals
        .iter()
        .map(|p| parse_principal(p))
        .collect::<CliResult<_>>()?;
    let filters = resource_filters(r, false)?;
    let mut bindings: BTreeSet<AclBinding> = BTreeSet::new();
    if filters.is_empty() {
        bindings.extend(ctx.admin.describe_acls(&AclBindingFilter::any()).await?);
    } else {
        for f in &filters {
            bindings.extend(ctx.admin.describe_acls(f).await?);
        }
    }
    if !principals.is_empty() {
        bindings.retain(|b| principals.contains(&b.entry.principal));
    }
    if ctx.output == Output::Json {
        ctx.print_json(&json!(bindings
            .iter()
            .map(binding_json)
            .collect::<Vec<_>>()));
        return Ok(());
    }
    let by_pattern = |only: Option<&str>| {
        let mut m: BTreeMap<&ResourcePattern, Vec<&AccessControlEntry>> = BTreeMap::new();
        for b in &bindings {
            if only.is_none_or(|p| p == b.entry.principal) {
                m.entry(&b.pattern).or_default().push(&b.entry);
            }
        }
        m
    };
    if principals.is_empty() {
        for (pattern, entries) in by_pattern(None) {
            print_list_block("Current ACLs for resource", &pattern.to_string(), entries);
        }
    } else {
        for p in &principals {
            println!("ACLs for principal `{p}`");
            for (pattern, entries) in by_pattern(Some(p)) {
                print_list_block("Current ACLs for resource", &pattern.to_string(), entries);
            }
        }
    }
    Ok(())
}

/// Kafka's `confirmAction`: ask, and go ahead on "y". kafka-acls.sh reads the answer
/// from the console, so without a terminal it fails before removing anything; so does
/// this, with a usage error that names --force.
fn confirm(question: &str) -> CliResult<bool> {
    let refuse = || {
        usage(
            "refusing to remove ACLs without confirmation: stdin is not a terminal; \
             pass --force to remove them without asking",
        )
    };
    if !std::io::stdin().is_terminal() {
        eprintln!("{question} (y/n)");
        return Err(refuse());
    }
    eprintln!("{question} (y/n)");
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => Err(refuse()),
        Ok(_) => Ok(line.trim().eq_ignore_ascii_case("y")),
    }
}

async fn remove(ctx: &Ctx, r: &ResourceArgs, e: &EntryArgs, force: bool) -> CliResult<()> {
    let map = filters_to_entries(r, e)?;
    let mut removed = Vec::new();
    let mut declined = false;
    for (f, entries) in &map {
        let pattern = f.pattern_string();
        let question = if entries.is_empty() {
            format!("Are you sure you want to delete all ACLs for resource filter `{pattern}`?")
        } else {
            let lines: Vec<String> = entries.iter().map(|e| format!("\t{e}")).collect();
            format!(
                "Are you sure you want to remove ACLs: \n {} \n from resource filter `{pattern}`?",
                lines.join("\n")
            )
        };
        if !force && !confirm(&question)? {
            declined = true;
            continue;
        }
        let filters: Vec<AclBindingFilter> = if entries.is_empty() {
            vec![f.clone()]
        } else {
            entries.iter().map(|a| f.clone().with_entry(a)).collect()
        };
        for deleted in ctx.admin.delete_acls(&filters).await? {
            removed.extend(deleted);
        }
    }
    match ctx.output {
        Output::Json => ctx.print_json(&json!({
            "result": if declined && removed.is_empty() { "declined" } else { "removed" },
            "acls": removed.iter().map(binding_json).collect::<Vec<_>>(),
        })),
        Output::Table => {
            let mut by_pattern: BTreeMap<&ResourcePattern, Vec<&AccessControlEntry>> =
                BTreeMap::new();
            for b in &removed {
                by_pattern.entry(&b.pattern).or_default().push(&b.entry);
            }
            for (pattern, entries) in by_pattern {
                print_list_block("Removed ACLs for resource", &pattern.to_string(), entries);
            }
            if removed.is_empty() {
                println!("no ACLs removed");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        cmd: AclsCommand,
    }

    fn plan(args: &[&str]) -> CliResult<Vec<(AclBindingFilter, BTreeSet<AccessControlEntry>)>> {
        let mut all = vec!["t"];
        all.extend_from_slice(args);
        match T::try_parse_from(all)
            .map_err(|e| usage(e.to_string()))?
            .cmd
        {
            AclsCommand::Add { resources, entries }
            | AclsCommand::Remove {
                resources, entries, ..
            } => filters_to_entries(&resources, &entries),
            AclsCommand::List { .. } => unreachable!(),
        }
    }

    fn ops(set: &BTreeSet<AccessControlEntry>) -> Vec<&'static str> {
        set.iter().map(|e| e.operation.name()).collect()
    }

    #[test]
    fn producer_and_consumer_expand_as_kafka_does() {
        let p = plan(&[
            "add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--consumer",
            "--topic",
            "orders",
            "--group",
            "billing",
            "--idempotent",
            "--transactional-id",
            "tx",
        ])
        .unwrap();
        let get = |t: ResourceType| {
            p.iter()
                .find(|(f, _)| f.resource_type == t)
                .map(|(_, e)| ops(e))
                .unwrap()
        };
        assert_eq!(
            get(ResourceType::Topic),
            ["READ", "WRITE", "CREATE", "DESCRIBE"]
        );
        assert_eq!(get(ResourceType::Group), ["READ"]);
        assert_eq!(get(ResourceType::Cluster), ["IDEMPOTENT_WRITE"]);
        assert_eq!(get(ResourceType::TransactionalId), ["WRITE", "DESCRIBE"]);
        let (_, e) = &p[0];
        assert!(e
            .iter()
            .all(|e| e.host == "*" && e.principal == "User:alice"));
    }

    #[test]
    fn operations_hosts_and_checks() {
        let p = plan(&[
            "add",
            "--allow-principal",
            "User:a",
            "--deny-principal",
            "User:b",
            "--deny-host",
            "10.0.0.1",
            "--operation",
            "Read",
            "--operation",
            "DESCRIBE",
            "--topic",
            "t",
        ])
        .unwrap();
        let entries: Vec<String> = p[0].1.iter().map(|e| e.to_string()).collect();
        assert!(entries.contains(
            &"(principal=User:b, host=10.0.0.1, operation=READ, permissionType=DENY)".to_string()
        ));
        assert_eq!(entries.len(), 4);
        for bad in [
            &[
                "add",
                "--allow-principal",
                "User:a",
                "--operation",
                "Fly",
                "--topic",
                "t",
            ][..],
            &["add", "--allow-principal", "alice", "--topic", "t"],
            &[
                "add",
                "--allow-principal",
                "User:a",
                "--operation",
                "IdempotentWrite",
                "--topic",
                "t",
            ],
            &["add", "--allow-principal", "User:a", "--producer"],
            &[
                "add",
                "--allow-principal",
                "User:a",
                "--consumer",
                "--topic",
                "t",
            ],
            &[
                "add",
                "--allow-principal",
                "User:a",
                "--idempotent",
                "--topic",
                "t",
            ],
            &[
                "add",
                "--allow-principal",
                "User:a",
                "--producer",
                "--operation",
                "Read",
                "--topic",
                "t",
            ],
            &["add", "--allow-principal", "User:a"],
        ] {
            assert!(plan(bad).is_err(), "{bad:?}");
        }
        // Without a principal, remove selects every ACL on the resource.
        let p = plan(&["remove", "--topic", "t", "--resource-pattern-type", "match"]).unwrap();
        assert!(p[0].1.is_empty());
        assert_eq!(p[0].0.pattern_type, PatternType::Match);
    }
}
