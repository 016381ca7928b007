//! Each violation from a small hand-written history, and a clean history that passes.

use super::*;
use crate::history::Event;

const T: &str = "soak";
const TX: &str = "soak-txn";

fn send(
    t: u64,
    producer: &str,
    topic: &str,
    p: i32,
    seq: u64,
    value: &str,
    txn: Option<u64>,
) -> Event {
    Event::Send {
        t,
        producer: producer.into(),
        topic: topic.into(),
        partition: p,
        seq,
        value: value.into(),
        txn,
    }
}

fn ack(t: u64, topic: &str, p: i32, value: &str, offset: i64) -> Event {
    Event::Ack {
        t,
        topic: topic.into(),
        partition: p,
        value: value.into(),
        offset,
    }
}

#[allow(clippy::too_many_arguments)]
fn poll(
    t: u64,
    reader: &str,
    session: u64,
    iso: Isolation,
    topic: &str,
    p: i32,
    offset: i64,
    value: &str,
) -> Event {
    Event::Poll {
        t,
        reader: reader.into(),
        session,
        isolation: iso,
        topic: topic.into(),
        partition: p,
        offset,
        value: value.into(),
    }
}

fn final_read(topic: &str, p: i32, values: &[&str]) -> Vec<Event> {
    let mut out: Vec<Event> = values
        .iter()
        .enumerate()
        .map(|(o, v)| {
            poll(
                1000,
                FINAL,
                0,
                Isolation::ReadUncommitted,
                topic,
                p,
                o as i64,
                v,
            )
        })
        .collect();
    out.push(Event::FinalEnd {
        t: 1001,
        reader: FINAL.into(),
        isolation: Isolation::ReadUncommitted,
        topic: topic.into(),
        partition: p,
        end: values.len() as i64,
        reached: true,
    });
    out
}

fn final_committed(topic: &str, p: i32, values: &[(i64, &str)]) -> Vec<Event> {
    let mut out: Vec<Event> = values
        .iter()
        .map(|(o, v)| {
            poll(
                1000,
                FINAL_COMMITTED,
                0,
                Isolation::ReadCommitted,
                topic,
                p,
                *o,
                v,
            )
        })
        .collect();
    out.push(Event::FinalEnd {
        t: 1001,
        reader: FINAL_COMMITTED.into(),
        isolation: Isolation::ReadCommitted,
        topic: topic.into(),
        partition: p,
        end: 10,
        reached: true,
    });
    out
}

fn commit(t: u64, member: &str, p: i32, offset: i64, acked: bool) -> Event {
    Event::Commit {
        t,
        group: "g".into(),
        member: member.into(),
        topic: T.into(),
        partition: p,
        offset,
        acked,
    }
}

fn assign(t: u64, member: &str, session: u64, p: i32) -> Event {
    Event::Assign {
        t,
        group: "g".into(),
        member: member.into(),
        session,
        topic: T.into(),
        partition: p,
    }
}

fn revoke(t: u64, member: &str, p: i32, lost: bool) -> Event {
    Event::Revoke {
        t,
        group: "g".into(),
        member: member.into(),
        topic: T.into(),
        partition: p,
        lost,
    }
}

fn txn_end(t: u64, producer: &str, txn: u64, commit: bool, acked: bool) -> Event {
    Event::TxnEnd {
        t,
        producer: producer.into(),
        txn,
        commit,
        acked,
        error: None,
    }
}

/// Two acknowledged writes, read by a member and by the final read.
fn clean() -> Vec<Event> {
    let mut h = vec![
        send(1, "p", T, 0, 0, "p-0", None),
        send(2, "p", T, 0, 1, "p-1", None),
        ack(3, T, 0, "p-0", 0),
        ack(4, T, 0, "p-1", 1),
        assign(5, "m1", 1, 0),
        poll(6, "m1", 1, Isolation::ReadUncommitted, T, 0, 0, "p-0"),
        poll(7, "m1", 1, Isolation::ReadUncommitted, T, 0, 1, "p-1"),
        commit(8, "m1", 0, 2, true),
    ];
    h.extend(final_read(T, 0, &["p-0", "p-1"]));
    h
}

fn kinds(report: &Report) -> Vec<Violation> {
    report.violations.keys().copied().collect()
}

#[test]
fn a_clean_history_passes_with_its_counts() {
    let r = check(&clean());
    assert!(r.ok(), "{}", r.summary());
    assert_eq!(r.counts.sends, 2);
    assert_eq!(r.counts.acked, 2);
    assert_eq!(r.counts.polls, 2);
    assert_eq!(r.counts.final_records, 2);
    assert_eq!(r.counts.commits_acked, 1);
}

#[test]
fn a_history_with_no_acknowledged_write_is_vacuous() {
    let mut h = vec![send(1, "p", T, 0, 0, "p-0", None)];
    h.extend(final_read(T, 0, &[]));
    let r = check(&h);
    assert!(!r.ok());
    assert!(r.vacuous.is_some());
    assert_eq!(r.counts.unanswered, 1);
}

#[test]
fn an_acknowledged_write_missing_from_the_final_read_is_lost() {
    let mut h = clean();
    h.retain(|e| !matches!(e, Event::Poll { reader, offset: 1, .. } if reader == FINAL));
    let r = check(&h);
    assert_eq!(kinds(&r), [Violation::Lost, Violation::InconsistentOffset]);
    assert_eq!(r.violations[&Violation::Lost].count, 1);
}

#[test]
fn an_unacknowledged_write_may_be_missing() {
    let mut h = clean();
    h.push(send(9, "p", T, 0, 2, "p-2", None));
    h.push(Event::SendFailed {
        t: 10,
        topic: T.into(),
        partition: 0,
        value: "p-2".into(),
        error: "timed out".into(),
    });
    let r = check(&h);
    assert!(r.ok(), "{}", r.summary());
    assert_eq!(r.counts.failed, 1);
}

#[test]
fn a_record_at_two_offsets_is_duplicated() {
    let mut h = clean();
    h.retain(|e| !matches!(e, Event::Poll { reader, .. } | Event::FinalEnd { reader, .. } if reader == FINAL));
    h.extend(final_read(T, 0, &["p-0", "p-1", "p-1"]));
    let r = check(&h);
    assert_eq!(kinds(&r), [Violation::Duplicated]);
}

#[test]
fn a_record_no_producer_sent_is_inconsistent() {
    let mut h = clean();
    h.retain(|e| !matches!(e, Event::Poll { reader, .. } | Event::FinalEnd { reader, .. } if reader == FINAL));
    h.extend(final_read(T, 0, &["p-0", "p-1", "garbage"]));
    assert_eq!(kinds(&check(&h)), [Violation::InconsistentOffset]);
}

#[test]
fn an_ack_at_another_offset_is_inconsistent() {
    let mut h = clean();
    h[3] = ack(4, T, 0, "p-1", 5);
    let r = check(&h);
    assert_eq!(kinds(&r), [Violation::InconsistentOffset]);
}

#[test]
fn a_poll_of_another_record_at_an_offset_is_inconsistent() {
    let mut h = clean();
    h[6] = poll(7, "m1", 1, Isolation::ReadUncommitted, T, 0, 1, "p-0");
    let r = check(&h);
    assert!(
        kinds(&r).contains(&Violation::InconsistentOffset),
        "{}",
        r.summary()
    );
}

#[test]
fn a_producer_s_records_out_of_order_are_reordered() {
    let mut h = clean();
    h.retain(|e| !matches!(e, Event::Poll { reader, .. } | Event::FinalEnd { reader, .. } if reader == FINAL));
    h[2] = ack(3, T, 0, "p-0", 1);
    h[3] = ack(4, T, 0, "p-1", 0);
    h[5] = poll(6, "m1", 1, Isolation::ReadUncommitted, T, 0, 0, "p-1");
    h[6] = poll(7, "m1", 1, Isolation::ReadUncommitted, T, 0, 1, "p-0");
    h.extend(final_read(T, 0, &["p-1", "p-0"]));
    let r = check(&h);
    assert_eq!(kinds(&r), [Violation::Reordered]);
}

#[test]
fn a_poll_that_goes_back_within_an_assignment_is_non_monotonic() {
    let mut h = clean();
    h.insert(
        7,
        poll(7, "m1", 1, Isolation::ReadUncommitted, T, 0, 0, "p-0"),
    );
    let r = check(&h);
    assert_eq!(kinds(&r), [Violation::NonMonotonicPoll]);
    // A new assignment may read again from the committed offset.
    let mut h = clean();
    h.insert(7, assign(7, "m1", 2, 0));
    h.insert(
        8,
        poll(7, "m1", 2, Isolation::ReadUncommitted, T, 0, 0, "p-0"),
    );
    let r = check(&h);
    assert!(r.ok(), "{}", r.summary());
}

fn txn_history(
    fate: Option<(bool, bool)>,
    visible: &[(i64, &str)],
    polled: Option<&str>,
) -> Vec<Event> {
    let mut h = clean();
    h.push(send(20, "tp", TX, 0, 0, "t-0", Some(0)));
    h.push(send(21, "tp", TX, 0, 1, "t-1", Some(0)));
    h.push(ack(22, TX, 0, "t-0", 0));
    h.push(ack(23, TX, 0, "t-1", 1));
    if let Some((commit, acked)) = fate {
        h.push(txn_end(24, "tp", 0, commit, acked));
    }
    if let Some(v) = polled {
        let offset = if v == "t-0" { 0 } else { 1 };
        h.push(poll(
            25,
            "rc",
            0,
            Isolation::ReadCommitted,
            TX,
            0,
            offset,
            v,
        ));
    }
    h.extend(final_read(TX, 0, &["t-0", "t-1"]));
    h.extend(final_committed(TX, 0, visible));
    h
}

#[test]
fn a_committed_transaction_is_visible_whole() {
    let all = [(0, "t-0"), (1, "t-1")];
    let r = check(&txn_history(Some((true, true)), &all, Some("t-0")));
    assert!(r.ok(), "{}", r.summary());
    assert_eq!(r.counts.txns_committed, 1);
    assert_eq!(r.counts.read_committed_polls, 1);
    let r = check(&txn_history(Some((true, true)), &all[..1], None));
    assert_eq!(kinds(&r), [Violation::PartialTransaction]);
    // Unconfirmed: all or nothing.
    assert!(check(&txn_history(Some((true, false)), &all, None)).ok());
    assert!(check(&txn_history(Some((true, false)), &[], None)).ok());
    let r = check(&txn_history(Some((true, false)), &all[1..], None));
    assert_eq!(kinds(&r), [Violation::PartialTransaction]);
}

#[test]
fn an_aborted_transaction_seen_by_read_committed_is_an_aborted_read() {
    let r = check(&txn_history(Some((false, true)), &[], None));
    assert!(r.ok(), "{}", r.summary());
    assert_eq!(r.counts.txns_aborted, 1);
    // Polled during the run, though it aborted.
    let r = check(&txn_history(Some((false, true)), &[], Some("t-1")));
    assert_eq!(kinds(&r), [Violation::AbortedRead]);
    // In the final read_committed read.
    let r = check(&txn_history(
        Some((false, false)),
        &[(0, "t-0"), (1, "t-1")],
        None,
    ));
    assert_eq!(kinds(&r), [Violation::AbortedRead]);
    // Never ended: it can only have aborted.
    let r = check(&txn_history(None, &[(0, "t-0")], None));
    assert_eq!(kinds(&r), [Violation::AbortedRead]);
}

#[test]
fn a_transactional_partition_without_a_final_read_committed_read_is_incomplete() {
    let mut h = txn_history(Some((true, true)), &[(0, "t-0"), (1, "t-1")], None);
    h.retain(|e| !matches!(e, Event::FinalEnd { reader, .. } if reader == FINAL_COMMITTED));
    let r = check(&h);
    assert_eq!(kinds(&r), [Violation::IncompleteFinalRead]);
}

#[test]
fn a_commit_below_an_acknowledged_one_is_a_regression() {
    let mut h = clean();
    h.push(commit(9, "m2", 0, 1, true));
    let r = check(&h);
    assert_eq!(kinds(&r), [Violation::CommittedOffsetRegression]);
    // A refused commit does not count.
    let mut h = clean();
    h.push(commit(9, "m2", 0, 1, false));
    assert!(check(&h).ok());
    // Nor may the offset read back be below it.
    let mut h = clean();
    h.push(Event::CommittedRead {
        t: 9,
        group: "g".into(),
        topic: T.into(),
        partition: 0,
        offset: 1,
    });
    assert_eq!(kinds(&check(&h)), [Violation::CommittedOffsetRegression]);
}

#[test]
fn a_new_owner_starting_below_the_acknowledged_commit_is_a_regression() {
    let mut h = clean();
    h.push(revoke(9, "m1", 0, false));
    h.push(assign(10, "m2", 1, 0));
    h.push(poll(
        11,
        "m2",
        1,
        Isolation::ReadUncommitted,
        T,
        0,
        1,
        "p-1",
    ));
    let r = check(&h);
    assert_eq!(kinds(&r), [Violation::CommittedOffsetRegression]);
}

#[test]
fn two_members_holding_a_partition_at_once_is_double_ownership() {
    let mut h = clean();
    h.push(assign(9, "m2", 1, 0));
    h.push(revoke(12, "m1", 0, false));
    let r = check(&h);
    assert_eq!(kinds(&r), [Violation::DoubleOwnership]);
    // A handover: revoked before the next assignment.
    let mut h = clean();
    h.push(revoke(9, "m1", 0, false));
    h.push(assign(10, "m2", 1, 0));
    assert!(check(&h).ok());
}

#[test]
fn a_lost_assignment_ends_at_the_member_s_last_accepted_commit() {
    // m1's session expired: the group gave p0 to m2 at 10, and m1 learned it at 12.
    // Its last accepted commit was at 8, so it was not live with m2.
    let mut h = clean();
    h.push(assign(10, "m2", 1, 0));
    h.push(commit(11, "m1", 0, 2, false));
    h.push(revoke(12, "m1", 0, true));
    let r = check(&h);
    assert!(r.ok(), "{}", r.summary());
    // An accepted commit after m2 took over means both were live owners.
    let mut h = clean();
    h.push(assign(10, "m2", 1, 0));
    h.push(commit(11, "m1", 0, 2, true));
    h.push(revoke(12, "m1", 0, true));
    assert_eq!(kinds(&check(&h)), [Violation::DoubleOwnership]);
}

#[test]
fn an_incomplete_final_read_is_reported() {
    let mut h = clean();
    for e in &mut h {
        if let Event::FinalEnd { reached, .. } = e {
            *reached = false;
        }
    }
    assert_eq!(kinds(&check(&h)), [Violation::IncompleteFinalRead]);
}

#[test]
fn a_history_round_trips_through_its_file() {
    let dir = std::env::temp_dir().join(format!("soak-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history.jsonl");
    let rec = crate::history::Recorder::create(&path).unwrap();
    for e in clean() {
        rec.record(&e);
    }
    rec.flush().unwrap();
    assert_eq!(crate::history::read(&path).unwrap(), clean());
    std::fs::remove_dir_all(&dir).unwrap();
}
