//! The checker: reads a history (see [`crate::history`]) and reports what went wrong.
//!
//! It is pure: the same history always gives the same report, so a finding can be
//! replayed from the file alone (`runnel-soak check HISTORY`).
//!
//! The truth it checks against is the final read: after the last fault the driver
//! restarts the broker cleanly and reads every partition from offset 0 to its end, with
//! `read_uncommitted` (reader [`FINAL`]) and, for the transactional topics,
//! `read_committed` (reader [`FINAL_COMMITTED`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::history::{Event, Isolation};

/// The reader name of the final read_uncommitted read.
pub const FINAL: &str = "final";
/// The reader name of the final read_committed read.
pub const FINAL_COMMITTED: &str = "final-committed";

/// How many examples of each violation the report keeps (the count is always exact).
const EXAMPLES: usize = 10;

/// What can go wrong.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    /// An acknowledged write is not in the final read.
    Lost,
    /// One record at two offsets of the final read.
    Duplicated,
    /// An acknowledgement or a poll put a record at an offset where the final read has
    /// another record, or none.
    InconsistentOffset,
    /// One producer's records in a partition are not in the order it sent them.
    Reordered,
    /// A reader's offsets on a partition went down or repeated within one assignment.
    NonMonotonicPoll,
    /// A read_committed reader saw a record of a transaction that did not commit.
    AbortedRead,
    /// Some but not all of a transaction's records are visible to read_committed, or a
    /// committed transaction's records are missing.
    PartialTransaction,
    /// An acknowledged commit moved back: a later acknowledged commit, the committed
    /// offset read back, or the position a new owner started at, is below it.
    CommittedOffsetRegression,
    /// Two live members of a group owned one partition at the same time.
    DoubleOwnership,
    /// The final read did not reach the end of a partition, so it cannot vouch for it.
    IncompleteFinalRead,
}

/// The figures of a run, so that a run that tested nothing cannot pass.
#[derive(Serialize, Default, Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub sends: u64,
    pub acked: u64,
    pub failed: u64,
    /// Sent, neither acknowledged nor failed (in flight when the run ended).
    pub unanswered: u64,
    pub txns_committed: u64,
    pub txns_aborted: u64,
    /// Transactions whose end the broker did not confirm.
    pub txns_unknown: u64,
    pub polls: u64,
    pub read_committed_polls: u64,
    pub commits_acked: u64,
    pub commits_failed: u64,
    pub assignments: u64,
    pub faults: u64,
    pub final_records: u64,
}

#[derive(Serialize, Debug, Clone)]
pub struct Found {
    pub count: u64,
    pub examples: Vec<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Report {
    pub counts: Counts,
    pub violations: BTreeMap<Violation, Found>,
    /// Why the run proves nothing, if it does not (no acknowledged write, no final read).
    pub vacuous: Option<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.vacuous.is_none()
    }

    fn add(&mut self, kind: Violation, example: String) {
        let found = self.violations.entry(kind).or_insert(Found {
            count: 0,
            examples: Vec::new(),
        });
        found.count += 1;
        if found.examples.len() < EXAMPLES {
            found.examples.push(example);
        }
    }

    /// A human summary, one line a figure and each violation with its examples.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let mut s = format!(
            "writes: {} sent, {} acknowledged, {} failed, {} unanswered\n\
             transactions: {} committed, {} aborted, {} unconfirmed\n\
             reads: {} polls ({} read_committed), {} records in the final read\n\
             group: {} commits acknowledged, {} refused or unanswered, {} assignments\n\
             faults injected: {}\n",
            c.sends,
            c.acked,
            c.failed,
            c.unanswered,
            c.txns_committed,
            c.txns_aborted,
            c.txns_unknown,
            c.polls,
            c.read_committed_polls,
            c.final_records,
            c.commits_acked,
            c.commits_failed,
            c.assignments,
            c.faults
        );
        for kind in ALL {
            let n = self.violations.get(&kind).map_or(0, |f| f.count);
            s.push_str(&format!("{kind:?}: {n}\n"));
            if let Some(found) = self.violations.get(&kind) {
                for e in &found.examples {
                    s.push_str(&format!("  - {e}\n"));
                }
            }
        }
        match &self.vacuous {
            Some(why) => s.push_str(&format!("VACUOUS: {why}\n")),
            None if self.ok() => s.push_str("OK: no violations\n"),
            None => s.push_str("FAILED\n"),
        }
        s
    }
}

const ALL: [Violation; 10] = [
    Violation::Lost,
    Violation::Duplicated,
    Violation::InconsistentOffset,
    Violation::Reordered,
    Violation::NonMonotonicPoll,
    Violation::AbortedRead,
    Violation::PartialTransaction,
    Violation::CommittedOffsetRegression,
    Violation::DoubleOwnership,
    Violation::IncompleteFinalRead,
];

type Tp = (String, i32);

struct SendInfo {
    producer: String,
    tp: Tp,
    seq: u64,
    txn: Option<u64>,
}

/// How a transaction ended, as far as its producer knows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TxnFate {
    Committed,
    /// An abort was asked for (confirmed or not): it can never commit.
    Aborted,
    /// A commit was asked for and not confirmed: all or nothing.
    Unknown,
}

/// One member's hold on one partition.
struct Ownership {
    member: String,
    session: u64,
    start: u64,
    end: Option<u64>,
    lost: bool,
}

pub fn check(events: &[Event]) -> Report {
    let mut report = Report {
        counts: Counts::default(),
        violations: BTreeMap::new(),
        vacuous: None,
    };

    // The final read: offset -> value per partition, and what read_committed sees.
    let mut final_log: HashMap<Tp, BTreeMap<i64, String>> = HashMap::new();
    let mut final_visible: HashMap<Tp, HashSet<String>> = HashMap::new();
    let mut final_committed_tps: HashSet<Tp> = HashSet::new();
    let mut sends: HashMap<String, SendInfo> = HashMap::new();
    let mut txn_values: HashMap<(String, u64), Vec<String>> = HashMap::new();
    let mut txn_fate: HashMap<(String, u64), TxnFate> = HashMap::new();
    let mut answered: HashSet<&str> = HashSet::new();
    for e in events {
        match e {
            Event::Send {
                producer,
                topic,
                partition,
                seq,
                value,
                txn,
                ..
            } => {
                report.counts.sends += 1;
                sends.insert(
                    value.clone(),
                    SendInfo {
                        producer: producer.clone(),
                        tp: (topic.clone(), *partition),
                        seq: *seq,
                        txn: *txn,
                    },
                );
                if let Some(txn) = txn {
                    txn_values
                        .entry((producer.clone(), *txn))
                        .or_default()
                        .push(value.clone());
                }
            }
            Event::Ack { value, .. } => {
                report.counts.acked += 1;
                answered.insert(value);
            }
            Event::SendFailed { value, .. } => {
                report.counts.failed += 1;
                answered.insert(value);
            }
            Event::TxnEnd {
                producer,
                txn,
                commit,
                acked,
                ..
            } => {
                let fate = match (commit, acked) {
                    (true, true) => {
                        report.counts.txns_committed += 1;
                        TxnFate::Committed
                    }
                    (false, true) => {
                        report.counts.txns_aborted += 1;
                        TxnFate::Aborted
                    }
                    (true, false) => {
                        report.counts.txns_unknown += 1;
                        TxnFate::Unknown
                    }
                    (false, false) => {
                        report.counts.txns_unknown += 1;
                        TxnFate::Aborted
                    }
                };
                txn_fate.insert((producer.clone(), *txn), fate);
            }
            Event::Poll {
                reader,
                isolation,
                topic,
                partition,
                offset,
                value,
                ..
            } => {
                let tp = (topic.clone(), *partition);
                if reader == FINAL {
                    report.counts.final_records += 1;
                    let log = final_log.entry(tp).or_default();
                    if let Some(other) = log.insert(*offset, value.clone()) {
                        if &other != value {
                            report.add(
                                Violation::InconsistentOffset,
                                format!(
                                    "the final read got {other} and {value} at {topic}-{partition}@{offset}"
                                ),
                            );
                        }
                    }
                } else if reader == FINAL_COMMITTED {
                    final_visible.entry(tp).or_default().insert(value.clone());
                } else {
                    report.counts.polls += 1;
                    if *isolation == Isolation::ReadCommitted {
                        report.counts.read_committed_polls += 1;
                    }
                }
            }
            Event::Commit { acked, .. } => {
                if *acked {
                    report.counts.commits_acked += 1;
                } else {
                    report.counts.commits_failed += 1;
                }
            }
            Event::Assign { .. } => report.counts.assignments += 1,
            Event::Fault { .. } => report.counts.faults += 1,
            Event::FinalEnd {
                reader,
                isolation,
                topic,
                partition,
                end,
                reached,
                ..
            } => {
                if *isolation == Isolation::ReadCommitted {
                    final_committed_tps.insert((topic.clone(), *partition));
                }
                if !reached {
                    report.add(
                        Violation::IncompleteFinalRead,
                        format!("{reader} did not reach {end} on {topic}-{partition}"),
                    );
                }
            }
            Event::CommittedRead { .. } | Event::Revoke { .. } => {}
        }
    }
    report.counts.unanswered = sends
        .keys()
        .filter(|v| !answered.contains(v.as_str()))
        .count() as u64;

    // Where each value sits in the final read.
    let mut final_at: HashMap<&str, Vec<(&Tp, i64)>> = HashMap::new();
    for (tp, log) in &final_log {
        for (offset, value) in log {
            final_at.entry(value).or_default().push((tp, *offset));
        }
    }
    let mut duplicated: Vec<_> = final_at.iter().filter(|(_, at)| at.len() > 1).collect();
    duplicated.sort_by_key(|(v, _)| *v);
    for (value, at) in duplicated {
        report.add(Violation::Duplicated, format!("{value} at {}", places(at)));
    }

    let mut strangers: Vec<&&str> = final_at
        .keys()
        .filter(|v| !sends.contains_key(**v))
        .collect();
    strangers.sort();
    for value in strangers {
        report.add(
            Violation::InconsistentOffset,
            format!("the final read has {value}, which no producer sent"),
        );
    }
    check_acks(events, &final_log, &final_at, &mut report);
    check_order(&final_log, &sends, &mut report);
    check_polls(events, &final_log, &mut report);
    check_transactions(
        events,
        &sends,
        &txn_values,
        &txn_fate,
        &final_visible,
        &final_committed_tps,
        &mut report,
    );
    check_commits(events, &mut report);
    check_ownership(events, &mut report);

    if report.counts.acked == 0 {
        report.vacuous = Some("no write was acknowledged".into());
    } else if report.counts.final_records == 0 {
        report.vacuous = Some("the final read saw no record".into());
    } else if report.counts.polls == 0 {
        report.vacuous = Some("no reader polled a record during the run".into());
    }
    report
}

/// `topic-partition@offset, ...`
fn places(at: &[(&Tp, i64)]) -> String {
    at.iter()
        .map(|(tp, o)| format!("{}-{}@{o}", tp.0, tp.1))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_acks(
    events: &[Event],
    final_log: &HashMap<Tp, BTreeMap<i64, String>>,
    final_at: &HashMap<&str, Vec<(&Tp, i64)>>,
    report: &mut Report,
) {
    for e in events {
        let Event::Ack {
            topic,
            partition,
            value,
            offset,
            ..
        } = e
        else {
            continue;
        };
        let tp = (topic.clone(), *partition);
        let at_offset = final_log.get(&tp).and_then(|log| log.get(offset));
        match final_at.get(value.as_str()) {
            None => report.add(
                Violation::Lost,
                format!("{value}, acknowledged at {topic}-{partition}@{offset}"),
            ),
            Some(at) if !at.iter().any(|(t, o)| **t == tp && o == offset) => report.add(
                Violation::InconsistentOffset,
                format!(
                    "{value} acknowledged at {topic}-{partition}@{offset}, read at {}",
                    places(at)
                ),
            ),
            Some(_) => {}
        }
        if let Some(other) = at_offset {
            if other != value {
                report.add(
                    Violation::InconsistentOffset,
                    format!(
                        "{value} acknowledged at {topic}-{partition}@{offset}, where the final read has {other}"
                    ),
                );
            }
        }
    }
}

fn check_order(
    final_log: &HashMap<Tp, BTreeMap<i64, String>>,
    sends: &HashMap<String, SendInfo>,
    report: &mut Report,
) {
    let mut tps: Vec<_> = final_log.keys().collect();
    tps.sort();
    for tp in tps {
        // The last (seq, offset) of each producer seen in this partition.
        let mut last: HashMap<&str, (u64, i64)> = HashMap::new();
        // A second copy is a duplicate, reported as such, not also a reordering.
        let mut seen: HashSet<&str> = HashSet::new();
        for (offset, value) in &final_log[tp] {
            let Some(send) = sends.get(value) else {
                continue;
            };
            if !seen.insert(value) {
                continue;
            }
            if let Some((seq, at)) = last.get(send.producer.as_str()) {
                if send.seq <= *seq {
                    report.add(
                        Violation::Reordered,
                        format!(
                            "{}-{}: {}'s send {} at {offset} follows its send {seq} at {at}",
                            tp.0, tp.1, send.producer, send.seq
                        ),
                    );
                }
            }
            last.insert(&send.producer, (send.seq, *offset));
        }
    }
}

fn check_polls(
    events: &[Event],
    final_log: &HashMap<Tp, BTreeMap<i64, String>>,
    report: &mut Report,
) {
    let mut last: HashMap<(&str, u64, &str, i32), i64> = HashMap::new();
    for e in events {
        let Event::Poll {
            reader,
            session,
            topic,
            partition,
            offset,
            value,
            ..
        } = e
        else {
            continue;
        };
        let key = (reader.as_str(), *session, topic.as_str(), *partition);
        if let Some(prev) = last.insert(key, *offset) {
            if *offset <= prev {
                report.add(
                    Violation::NonMonotonicPoll,
                    format!(
                        "{reader} (assignment {session}) read {topic}-{partition}@{offset} after @{prev}"
                    ),
                );
            }
        }
        if reader == FINAL || reader == FINAL_COMMITTED {
            continue;
        }
        let tp = (topic.clone(), *partition);
        match final_log.get(&tp).and_then(|log| log.get(offset)) {
            Some(v) if v == value => {}
            Some(v) => report.add(
                Violation::InconsistentOffset,
                format!("{reader} read {value} at {topic}-{partition}@{offset}, the final read {v}"),
            ),
            None => report.add(
                Violation::InconsistentOffset,
                format!(
                    "{reader} read {value} at {topic}-{partition}@{offset}, the final read nothing there"
                ),
            ),
        }
    }
}

fn check_transactions(
    events: &[Event],
    sends: &HashMap<String, SendInfo>,
    txn_values: &HashMap<(String, u64), Vec<String>>,
    txn_fate: &HashMap<(String, u64), TxnFate>,
    final_visible: &HashMap<Tp, HashSet<String>>,
    final_committed_tps: &HashSet<Tp>,
    report: &mut Report,
) {
    let visible: HashSet<&str> = final_visible
        .values()
        .flat_map(|s| s.iter().map(String::as_str))
        .collect();
    // Transactions that read_committed must not show: aborted ones, and those the final
    // read_committed read shows none of.
    let mut invisible: HashSet<(&str, u64)> = HashSet::new();
    let mut keys: Vec<_> = txn_values.keys().collect();
    keys.sort();
    for key in keys {
        let values = &txn_values[key];
        let (producer, txn) = key;
        // No end recorded: no commit was asked for, so it can only have aborted.
        let fate = txn_fate.get(key).copied().unwrap_or(TxnFate::Aborted);
        let shown = values
            .iter()
            .filter(|v| visible.contains(v.as_str()))
            .count();
        if shown == 0 {
            invisible.insert((producer, *txn));
        }
        match fate {
            TxnFate::Aborted if shown > 0 => report.add(
                Violation::AbortedRead,
                format!(
                    "transaction {producer}/{txn} was aborted, yet read_committed shows {shown} of its {} records",
                    values.len()
                ),
            ),
            TxnFate::Committed if shown < values.len() => report.add(
                Violation::PartialTransaction,
                format!(
                    "transaction {producer}/{txn} committed, read_committed shows {shown} of its {} records",
                    values.len()
                ),
            ),
            TxnFate::Unknown if shown != 0 && shown != values.len() => report.add(
                Violation::PartialTransaction,
                format!(
                    "transaction {producer}/{txn} (commit unconfirmed): read_committed shows {shown} of its {} records",
                    values.len()
                ),
            ),
            _ => {}
        }
    }
    // Every partition a transaction wrote to must have had a final read_committed read.
    let mut unread: Vec<&Tp> = sends
        .values()
        .filter(|s| s.txn.is_some() && !final_committed_tps.contains(&s.tp))
        .map(|s| &s.tp)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    unread.sort();
    for tp in unread {
        report.add(
            Violation::IncompleteFinalRead,
            format!("no final read_committed read of {}-{}", tp.0, tp.1),
        );
    }
    for e in events {
        let Event::Poll {
            reader,
            isolation: Isolation::ReadCommitted,
            topic,
            partition,
            offset,
            value,
            ..
        } = e
        else {
            continue;
        };
        if reader == FINAL_COMMITTED {
            continue;
        }
        if let Some(SendInfo {
            producer,
            txn: Some(txn),
            ..
        }) = sends.get(value)
        {
            if invisible.contains(&(producer.as_str(), *txn)) {
                report.add(
                    Violation::AbortedRead,
                    format!(
                        "{reader} read {value} at {topic}-{partition}@{offset}, of transaction {producer}/{txn}, which did not commit"
                    ),
                );
            }
        }
    }
}

fn check_commits(events: &[Event], report: &mut Report) {
    // The highest acknowledged commit so far, per group and partition.
    let mut high: HashMap<(&str, &str, i32), (i64, u64)> = HashMap::new();
    // A member's new assignment: the first poll must start at or past the commit.
    let mut fresh: HashMap<(&str, u64, &str, i32), i64> = HashMap::new();
    let mut member_group: HashMap<&str, &str> = HashMap::new();
    for e in events {
        match e {
            Event::Commit {
                t,
                group,
                member,
                topic,
                partition,
                offset,
                acked: true,
            } => {
                let key = (group.as_str(), topic.as_str(), *partition);
                if let Some((prev, at)) = high.get(&key) {
                    if offset < prev {
                        report.add(
                            Violation::CommittedOffsetRegression,
                            format!(
                                "{member} committed {topic}-{partition}@{offset} at {t} µs, below the commit of {prev} acknowledged at {at} µs"
                            ),
                        );
                        continue;
                    }
                }
                high.insert(key, (*offset, *t));
            }
            Event::CommittedRead {
                t,
                group,
                topic,
                partition,
                offset,
            } => {
                if let Some((prev, at)) = high.get(&(group.as_str(), topic.as_str(), *partition)) {
                    if offset < prev {
                        report.add(
                            Violation::CommittedOffsetRegression,
                            format!(
                                "{group} read back {topic}-{partition}@{offset} at {t} µs, below the commit of {prev} acknowledged at {at} µs"
                            ),
                        );
                    }
                }
            }
            Event::Assign {
                group,
                member,
                session,
                topic,
                partition,
                ..
            } => {
                member_group.insert(member, group);
                if let Some((prev, _)) = high.get(&(group.as_str(), topic.as_str(), *partition)) {
                    fresh.insert((member, *session, topic, *partition), *prev);
                }
            }
            Event::Poll {
                t,
                reader,
                session,
                topic,
                partition,
                offset,
                ..
            } => {
                if let Some(committed) =
                    fresh.remove(&(reader.as_str(), *session, topic.as_str(), *partition))
                {
                    if *offset < committed {
                        report.add(
                            Violation::CommittedOffsetRegression,
                            format!(
                                "{reader} started {topic}-{partition} at {offset} at {t} µs, below the acknowledged commit of {committed}"
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

fn check_ownership(events: &[Event], report: &mut Report) {
    let mut holds: HashMap<(&str, &str, i32), Vec<Ownership>> = HashMap::new();
    // The last acknowledged commit of each member's session: a member that lost its
    // partitions was live, as far as the group knows, until then.
    let mut last_acked: HashMap<(&str, u64), u64> = HashMap::new();
    let mut session_of: HashMap<&str, u64> = HashMap::new();
    let mut end_of_run = 0;
    for e in events {
        match e {
            Event::Assign {
                t,
                group,
                member,
                session,
                topic,
                partition,
            } => {
                session_of.insert(member, *session);
                holds
                    .entry((group, topic, *partition))
                    .or_default()
                    .push(Ownership {
                        member: member.clone(),
                        session: *session,
                        start: *t,
                        end: None,
                        lost: false,
                    });
            }
            Event::Revoke {
                t,
                group,
                member,
                topic,
                partition,
                lost,
            } => {
                if let Some(list) = holds.get_mut(&(group.as_str(), topic.as_str(), *partition)) {
                    if let Some(h) = list
                        .iter_mut()
                        .rev()
                        .find(|h| h.member == *member && h.end.is_none())
                    {
                        h.end = Some(*t);
                        h.lost = *lost;
                    }
                }
            }
            Event::Commit {
                t,
                member,
                acked: true,
                ..
            } => {
                if let Some(session) = session_of.get(member.as_str()) {
                    last_acked.insert((member, *session), *t);
                }
            }
            _ => {}
        }
        end_of_run = end_of_run.max(event_time(e));
    }
    let mut keys: Vec<_> = holds.keys().copied().collect();
    keys.sort();
    for key in keys {
        let list = &holds[&key];
        let spans: Vec<(&Ownership, u64, u64)> = list
            .iter()
            .map(|h| {
                let end = match (h.end, h.lost) {
                    (Some(end), false) => end,
                    // Lost: live only as far as its last accepted commit shows.
                    (Some(end), true) => last_acked
                        .get(&(h.member.as_str(), h.session))
                        .copied()
                        .unwrap_or(h.start)
                        .clamp(h.start, end),
                    (None, _) => end_of_run,
                };
                (h, h.start, end)
            })
            .collect();
        for (i, (a, a0, a1)) in spans.iter().enumerate() {
            for (b, b0, b1) in &spans[i + 1..] {
                if a.member != b.member && a0 < b1 && b0 < a1 {
                    let (g, topic, p) = key;
                    report.add(
                        Violation::DoubleOwnership,
                        format!(
                            "{g}: {} and {} both owned {topic}-{p} for {} µs (from {} µs)",
                            a.member,
                            b.member,
                            a1.min(b1) - a0.max(b0),
                            a0.max(b0)
                        ),
                    );
                }
            }
        }
    }
}

fn event_time(e: &Event) -> u64 {
    match e {
        Event::Send { t, .. }
        | Event::Ack { t, .. }
        | Event::SendFailed { t, .. }
        | Event::TxnEnd { t, .. }
        | Event::Poll { t, .. }
        | Event::Commit { t, .. }
        | Event::CommittedRead { t, .. }
        | Event::Assign { t, .. }
        | Event::Revoke { t, .. }
        | Event::Fault { t, .. }
        | Event::FinalEnd { t, .. } => *t,
    }
}

#[cfg(test)]
mod tests;
