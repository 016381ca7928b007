//! Server-side assignors of the consumer group protocol (KIP-848): `uniform` (sticky and
//! balanced) and `range` (per topic, contiguous ranges in member order). Pure functions:
//! members' subscriptions and the topics' partition counts in, a target assignment out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A topic partition by name.
pub type Tp = (String, i32);

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// One member as an assignor sees it.
pub struct AssignorMember<'a> {
    pub id: &'a str,
    pub subscribed: &'a [String],
    /// Its previous target assignment (for stickiness).
    pub previous: Option<&'a BTreeSet<Tp>>,
}

/// Compute a target assignment. `topics` maps a topic name to its partition count;
/// subscribed topics that do not exist are ignored. Every member gets an entry.
pub fn assign(
    name: &str,
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<String, i32>,
) -> HashMap<String, BTreeSet<Tp>> {
    if name == RANGE {
        range(members, topics)
    } else {
        uniform(members, topics)
    }
}

fn subscribers<'a>(members: &'a [AssignorMember<'a>], topic: &str) -> Vec<&'a str> {
    let mut ids: Vec<&str> = members
        .iter()
        .filter(|m| m.subscribed.iter().any(|t| t == topic))
        .map(|m| m.id)
        .collect();
    ids.sort_unstable();
    ids
}

fn range(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<String, i32>,
) -> HashMap<String, BTreeSet<Tp>> {
    let mut out: HashMap<String, BTreeSet<Tp>> = members
        .iter()
        .map(|m| (m.id.to_string(), BTreeSet::new()))
        .collect();
    for (topic, &n) in topics {
        let subs = subscribers(members, topic);
        if subs.is_empty() || n <= 0 {
            continue;
        }
        let (base, extra) = (n as usize / subs.len(), n as usize % subs.len());
        let mut next = 0i32;
        for (i, id) in subs.iter().enumerate() {
            let count = base + usize::from(i < extra);
            let set = out.entry(id.to_string()).or_default();
            for _ in 0..count {
                set.insert((topic.clone(), next));
                next += 1;
            }
        }
    }
    out
}

/// Balanced and sticky: members keep their previous partitions up to their fair share,
/// and the rest go, one by one, to the subscribed member owning the fewest.
fn uniform(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<String, i32>,
) -> HashMap<String, BTreeSet<Tp>> {
    let mut sorted: Vec<&AssignorMember<'_>> = members.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(b.id));
    let mut out: BTreeMap<&str, BTreeSet<Tp>> =
        sorted.iter().map(|m| (m.id, BTreeSet::new())).collect();
    let subscribed = |m: &AssignorMember<'_>, t: &str| m.subscribed.iter().any(|s| s == t);
    // Every partition some member subscribes to.
    let mut all: Vec<Tp> = Vec::new();
    for (t, &n) in topics {
        if sorted.iter().any(|m| subscribed(m, t)) {
            all.extend((0..n.max(0)).map(|p| (t.clone(), p)));
        }
    }
    let active = sorted
        .iter()
        .filter(|m| topics.keys().any(|t| subscribed(m, t)))
        .count();
    if active == 0 {
        return out.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    }
    let (base, mut extra) = (all.len() / active, all.len() % active);
    let valid: BTreeSet<&Tp> = all.iter().collect();
    let mut taken: BTreeSet<Tp> = BTreeSet::new();
    // 1. Keep up to `base` previous partitions each.
    let mut leftovers: Vec<(&str, Tp)> = Vec::new();
    for m in &sorted {
        let Some(prev) = m.previous else { continue };
        for tp in prev {
            if !valid.contains(tp) || !subscribed(m, &tp.0) || taken.contains(tp) {
                continue;
            }
            let mine = out.get_mut(m.id).expect("member entry");
            if mine.len() < base {
                mine.insert(tp.clone());
                taken.insert(tp.clone());
            } else {
                leftovers.push((m.id, tp.clone()));
            }
        }
    }
    // 2. Members at `base` may keep one more previous partition while extras remain.
    for (id, tp) in leftovers {
        if extra == 0 || taken.contains(&tp) {
            continue;
        }
        let mine = out.get_mut(id).expect("member entry");
        if mine.len() == base {
            mine.insert(tp.clone());
            taken.insert(tp);
            extra -= 1;
        }
    }
    // 3. The rest to the subscribed member with the fewest.
    for tp in all {
        if taken.contains(&tp) {
            continue;
        }
        let best = sorted
            .iter()
            .filter(|m| subscribed(m, &tp.0))
            .min_by_key(|m| (out[m.id].len(), m.id))
            .map(|m| m.id);
        if let Some(id) = best {
            out.get_mut(id).expect("member entry").insert(tp.clone());
            taken.insert(tp);
        }
    }
    out.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(n: i32) -> BTreeMap<String, i32> {
        [("t".to_string(), n)].into_iter().collect()
    }

    #[test]
    fn uniform_is_balanced_and_sticky() {
        let subs = vec!["t".to_string()];
        let ms: Vec<AssignorMember<'_>> = ["a", "b", "c"]
            .iter()
            .map(|id| AssignorMember {
                id,
                subscribed: &subs,
                previous: None,
            })
            .collect();
        let first = assign(UNIFORM, &ms, &topics(12));
        assert!(first.values().all(|s| s.len() == 4));
        // Add d: only 3 partitions move, each from a previous owner.
        let ms: Vec<AssignorMember<'_>> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| AssignorMember {
                id,
                subscribed: &subs,
                previous: first.get(*id),
            })
            .collect();
        let second = assign(UNIFORM, &ms, &topics(12));
        assert!(second.values().all(|s| s.len() == 3));
        for id in ["a", "b", "c"] {
            assert!(second[id].is_subset(&first[id]));
        }
        let union: BTreeSet<&Tp> = second.values().flatten().collect();
        assert_eq!(union.len(), 12);
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let subs = vec!["t".to_string()];
        let ms: Vec<AssignorMember<'_>> = ["a", "b"]
            .iter()
            .map(|id| AssignorMember {
                id,
                subscribed: &subs,
                previous: None,
            })
            .collect();
        let a = assign(RANGE, &ms, &topics(5));
        assert_eq!(a["a"].iter().map(|t| t.1).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(a["b"].iter().map(|t| t.1).collect::<Vec<_>>(), [3, 4]);
    }
}
