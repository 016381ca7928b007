//! `runnel lag`: consumer lag with a Burrow-style verdict per group.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::time::Duration;

use runnel_client::{OffsetSpec, TopicPartition};
use serde_json::json;

use super::groups::{group_state, owners};
use super::{not_found, now_ms, print_table, CliError, CliResult, Ctx, Output};

/// `runnel lag`.
#[derive(clap::Args)]
#[command(after_help = "\
Lag is the log end offset minus the group's committed offset, per partition. A verdict \
needs history, so the command takes --samples samples --interval seconds apart (by \
default 3 samples 1 s apart) and judges each partition over that window, in the spirit \
of LinkedIn's Burrow:

  OK       lag was 0 in some sample of the window, or it is shrinking (the group is \
catching up);
  LAGGING  lag > 0 in every sample, the committed offset moves, but lag never shrank \
from one sample to the next (the group is moving but not keeping up);
  STALLED  lag > 0 in every sample and the committed offset did not move at all while \
the group has active members (they are stuck, e.g. on a poison record);
  STOPPED  the group has no active members (state Empty or Dead) and lag > 0 at the \
last sample: nobody is consuming.

A group's verdict is its worst partition's (STOPPED > STALLED > LAGGING > OK). Make the \
window, (samples - 1) x interval, longer than your consumers' commit interval (Java's \
auto.commit.interval.ms is 5 s) or committing groups look STALLED between commits.

--watch redraws the table after every sample (clearing the screen on a terminal; with \
--output json it prints one JSON document per line) over a sliding window of the last \
--samples samples, until interrupted.")]
pub struct LagArgs {
    /// Only this group.
    #[arg(long)]
    group: Option<String>,
    /// Samples per verdict window (at least 2).
    #[arg(long, default_value_t = 3)]
    samples: usize,
    /// Seconds between samples.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Keep sampling and redraw the table, until interrupted.
    #[arg(long)]
    watch: bool,
}

/// What one sample saw of one group.
#[derive(Clone, Debug)]
struct GroupSample {
    state: String,
    members: usize,
    /// partition → (committed offset, log end offset, owner client id)
    partitions: BTreeMap<TopicPartition, (Option<i64>, i64, Option<String>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verdict {
    Ok,
    Lagging,
    Stalled,
    Stopped,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Lagging => "LAGGING",
            Verdict::Stalled => "STALLED",
            Verdict::Stopped => "STOPPED",
        }
    }
}

/// The Burrow-style rules over a window of (committed, lag) samples of one partition,
/// oldest first. `active`: the group has members at the last sample.
pub(crate) fn partition_verdict(window: &[(i64, i64)], active: bool) -> Verdict {
    let Some(&(last_committed, last_lag)) = window.last() else {
        return Verdict::Ok;
    };
    if !active && last_lag > 0 {
        return Verdict::Stopped;
    }
    if window.iter().any(|(_, lag)| *lag <= 0) {
        return Verdict::Ok;
    }
    if window.len() < 2 {
        return Verdict::Ok;
    }
    let first_committed = window[0].0;
    if first_committed == last_committed {
        // Only active groups get here: an inactive one with lag returned above.
        return Verdict::Stalled;
    }
    let never_shrank = window.windows(2).all(|w| w[1].1 >= w[0].1);
    if never_shrank {
        Verdict::Lagging
    } else {
        Verdict::Ok
    }
}

pub(crate) async fn run(ctx: &Ctx, a: LagArgs) -> CliResult<()> {
    if a.samples < 2 {
        return Err(CliError::Usage(
            "--samples must be at least 2: a verdict needs a trend".into(),
        ));
    }
    if !(a.interval.is_finite() && a.interval > 0.0 && a.interval <= 3600.0) {
        return Err(CliError::Usage(
            "--interval must be between 0 and 3600 seconds".into(),
        ));
    }
    let interval = Duration::from_secs_f64(a.interval);
    let groups = match &a.group {
        Some(g) => {
            let all = ctx.admin.list_groups().await?;
            if !all.iter().any(|l| &l.group_id == g) {
                return Err(not_found(
                    "group",
                    g,
                    all.iter().map(|l| l.group_id.as_str()),
                ));
            }
            vec![g.clone()]
        }
        None => ctx
            .admin
            .list_groups()
            .await?
            .into_iter()
            .filter(|g| g.protocol_type == "consumer" || g.protocol_type.is_empty())
            .map(|g| g.group_id)
            .collect(),
    };
    let mut window: VecDeque<BTreeMap<String, GroupSample>> = VecDeque::new();
    let redraw = a.watch && ctx.output == Output::Table && std::io::stdout().is_terminal();
    loop {
        window.push_back(sample(ctx, &groups).await?);
        while window.len() > a.samples {
            window.pop_front();
        }
        if window.len() == a.samples || (a.watch && window.len() >= 2) {
            let report = evaluate(&window);
            if redraw {
                // Clear the screen and go home.
                print!("\x1b[2J\x1b[H");
                println!(
                    "runnel lag, every {:.1}s, window of {} samples (Ctrl-C to stop)",
                    a.interval,
                    window.len()
                );
                println!();
            }
            print_report(ctx, &report, &a, window.len());
            if !a.watch {
                return Ok(());
            }
            if !redraw && ctx.output == Output::Table {
                println!();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn sample(ctx: &Ctx, groups: &[String]) -> CliResult<BTreeMap<String, GroupSample>> {
    let mut out = BTreeMap::new();
    let mut all_tps: Vec<TopicPartition> = Vec::new();
    let mut raw = Vec::new();
    for g in groups {
        let state = group_state(ctx, g).await?;
        let committed = ctx.admin.fetch_group_offsets(g, None).await?;
        let owned: BTreeMap<TopicPartition, String> = owners(&state)
            .into_iter()
            .map(|(tp, m)| (tp, m.client_id.clone()))
            .collect();
        for tp in committed.keys().chain(owned.keys()) {
            if !all_tps.contains(tp) {
                all_tps.push(tp.clone());
            }
        }
        raw.push((g.clone(), state, committed, owned));
    }
    let ends = if all_tps.is_empty() {
        BTreeMap::new()
    } else {
        // A partition of a deleted topic makes ListOffsets fail: ask one by one then.
        let specs: Vec<(TopicPartition, OffsetSpec)> = all_tps
            .iter()
            .map(|tp| (tp.clone(), OffsetSpec::Latest))
            .collect();
        match ctx.admin.list_offsets(&specs).await {
            Ok(e) => e,
            Err(_) => {
                let mut e = BTreeMap::new();
                for s in &specs {
                    if let Ok(one) = ctx.admin.list_offsets(std::slice::from_ref(s)).await {
                        e.extend(one);
                    }
                }
                e
            }
        }
    };
    for (g, state, committed, owned) in raw {
        let mut partitions = BTreeMap::new();
        for tp in committed.keys().chain(owned.keys()) {
            let Some(end) = ends.get(tp).map(|o| o.offset) else {
                continue;
            };
            partitions.insert(
                tp.clone(),
                (committed.get(tp).copied(), end, owned.get(tp).cloned()),
            );
        }
        out.insert(
            g,
            GroupSample {
                state: state.state,
                members: state.members.len(),
                partitions,
            },
        );
    }
    Ok(out)
}

struct PartitionReport {
    tp: TopicPartition,
    committed: Option<i64>,
    log_end: i64,
    lag: Option<i64>,
    /// Lag at the first sample of the window it was seen in.
    lag_before: Option<i64>,
    /// Committed offset movement over the window.
    moved: Option<i64>,
    owner: Option<String>,
    verdict: Option<Verdict>,
}

struct GroupReport {
    group: String,
    state: String,
    members: usize,
    total_lag: i64,
    verdict: Verdict,
    partitions: Vec<PartitionReport>,
}

fn evaluate(window: &VecDeque<BTreeMap<String, GroupSample>>) -> Vec<GroupReport> {
    let Some(last) = window.back() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (group, now) in last {
        let active = !matches!(now.state.as_str(), "Empty" | "Dead");
        let mut parts = Vec::new();
        for (tp, (committed, end, owner)) in &now.partitions {
            // This partition's (committed, lag) history over the window.
            let history: Vec<(i64, i64)> = window
                .iter()
                .filter_map(|s| s.get(group)?.partitions.get(tp))
                .filter_map(|(c, e, _)| c.map(|c| (c, e.saturating_sub(c).max(0))))
                .collect();
            let lag = committed.map(|c| end.saturating_sub(c).max(0));
            let verdict = committed.map(|_| partition_verdict(&history, active));
            parts.push(PartitionReport {
                tp: tp.clone(),
                committed: *committed,
                log_end: *end,
                lag,
                lag_before: history.first().map(|h| h.1),
                moved: match (history.first(), history.last()) {
                    (Some(f), Some(l)) => Some(l.0.saturating_sub(f.0)),
                    _ => None,
                },
                owner: owner.clone(),
                verdict,
            });
        }
        let total_lag = parts.iter().filter_map(|p| p.lag).sum();
        let verdict = parts
            .iter()
            .filter_map(|p| p.verdict)
            .max()
            .unwrap_or(Verdict::Ok);
        out.push(GroupReport {
            group: group.clone(),
            state: now.state.clone(),
            members: now.members,
            total_lag,
            verdict,
            partitions: parts,
        });
    }
    out
}

fn print_report(ctx: &Ctx, report: &[GroupReport], a: &LagArgs, samples: usize) {
    match ctx.output {
        Output::Json => {
            let doc = json!({
                "at": now_ms(),
                "samples": samples,
                "interval_ms": (a.interval * 1000.0).round() as i64,
                "groups": report.iter().map(|g| json!({
                    "group": g.group,
                    "state": g.state,
                    "members": g.members,
                    "total_lag": g.total_lag,
                    "verdict": g.verdict.name(),
                    "partitions": g.partitions.iter().map(|p| json!({
                        "topic": p.tp.topic,
                        "partition": p.tp.partition,
                        "committed_offset": p.committed,
                        "log_end_offset": p.log_end,
                        "lag": p.lag,
                        "lag_at_window_start": p.lag_before,
                        "committed_moved_by": p.moved,
                        "owner": p.owner,
                        "verdict": p.verdict.map(Verdict::name),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            if a.watch {
                println!("{doc}");
            } else {
                ctx.print_json(&doc);
            }
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = report
                .iter()
                .map(|g| {
                    vec![
                        g.group.clone(),
                        g.state.clone(),
                        g.members.to_string(),
                        g.total_lag.to_string(),
                        g.verdict.name().to_string(),
                    ]
                })
                .collect();
            print_table(
                &["GROUP", "STATE", "MEMBERS", "TOTAL-LAG", "VERDICT"],
                &rows,
            );
            let dash = |o: Option<i64>| o.map_or("-".to_string(), |v| v.to_string());
            let rows: Vec<Vec<String>> = report
                .iter()
                .flat_map(|g| {
                    g.partitions.iter().map(|p| {
                        let trend = match (p.lag_before, p.lag) {
                            (Some(b), Some(l)) if l > b => format!("+{}", l.saturating_sub(b)),
                            (Some(b), Some(l)) => format!("{}", l.saturating_sub(b)),
                            _ => "-".into(),
                        };
                        vec![
                            g.group.clone(),
                            p.tp.topic.clone(),
                            p.tp.partition.to_string(),
                            dash(p.committed),
                            p.log_end.to_string(),
                            dash(p.lag),
                            trend,
                            p.owner.clone().unwrap_or_else(|| "-".into()),
                            p.verdict.map_or("-", Verdict::name).to_string(),
                        ]
                    })
                })
                .collect();
            if !rows.is_empty() {
                println!();
                print_table(
                    &[
                        "GROUP",
                        "TOPIC",
                        "PARTITION",
                        "COMMITTED",
                        "LOG-END",
                        "LAG",
                        "LAG-TREND",
                        "OWNER",
                        "VERDICT",
                    ],
                    &rows,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burrow_rules() {
        use Verdict::*;
        // Caught up at some point: OK.
        assert_eq!(partition_verdict(&[(5, 3), (8, 0), (9, 2)], true), Ok);
        // Moving and catching up: OK.
        assert_eq!(partition_verdict(&[(5, 9), (8, 6), (10, 4)], true), Ok);
        // Moving but lag never shrinks: LAGGING.
        assert_eq!(
            partition_verdict(&[(5, 9), (8, 9), (10, 12)], true),
            Lagging
        );
        // Not moving, lag > 0, members: STALLED.
        assert_eq!(partition_verdict(&[(5, 9), (5, 9), (5, 11)], true), Stalled);
        // No members, lag > 0: STOPPED.
        assert_eq!(partition_verdict(&[(5, 9), (5, 9)], false), Stopped);
        // No members, no lag: OK.
        assert_eq!(partition_verdict(&[(5, 0), (5, 0)], false), Ok);
        assert!(Stopped > Stalled && Stalled > Lagging && Lagging > Ok);
    }
}
