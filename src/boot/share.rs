//! The fair share of a boot loader among N live loaders: what to keep, what
//! to hand over, what to try to take. Pure: the supervisor feeds it what the
//! database said and carries it out.
//!
//! Each loader's share is ⌈active ÷ live loaders⌉, so together they can hold
//! every active session. A loader above its share (a loader joined) releases
//! the excess; one below takes free sessions. The order in which a loader
//! tries free sessions is its own (rendezvous hashing of holder and
//! session): first the ones it owns (it likes them best of all live
//! loaders: each session has one owner), then the others. Loaders that
//! fill their shares at the same time rarely race for the same one.

use std::collections::{BTreeSet, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

/// An active session and its live holder, as the store reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub session_id: String,
    pub user_id: String,
    pub holder: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Held sessions that are no longer active (deactivated or purged).
    pub drop: Vec<String>,
    /// Held sessions above the share, to hand over.
    pub release: Vec<String>,
    /// Free sessions to try, best first; take until the share is reached.
    pub candidates: Vec<String>,
    /// How many this loader should hold.
    pub share: usize,
}

/// The preference of `holder` for `session_id` (higher is better). Fixed
/// keys: every loader computes the same scores.
fn score(holder: &str, session_id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    holder.hash(&mut h);
    session_id.hash(&mut h);
    h.finish()
}

pub fn share_of(active: usize, live_loaders: usize) -> usize {
    active.div_ceil(live_loaders.max(1))
}

/// The live loaders: `me` counts even when its heartbeat is not in yet.
pub fn loaders(me: &str, live: &[String]) -> usize {
    live.len() + usize::from(!live.iter().any(|l| l == me))
}

/// What `me` (holding `held`) should do, given the live loaders and the
/// active sessions.
pub fn plan(me: &str, live: &[String], slots: &[Slot], held: &BTreeSet<String>) -> Plan {
    let share = share_of(slots.len(), loaders(me, live));
    let active: HashSet<&str> = slots.iter().map(|s| s.session_id.as_str()).collect();
    let drop: Vec<String> = held
        .iter()
        .filter(|s| !active.contains(s.as_str()))
        .cloned()
        .collect();
    let mut mine: Vec<&String> = held
        .iter()
        .filter(|s| active.contains(s.as_str()))
        .collect();
    let mut plan = Plan {
        drop,
        share,
        ..Plan::default()
    };
    if mine.len() > share {
        // Keep the ones this loader likes best; hand over the rest.
        mine.sort_by_key(|s| std::cmp::Reverse(score(me, s)));
        plan.release = mine[share..].iter().map(|s| (*s).clone()).collect();
    } else if mine.len() < share {
        let mut free: Vec<&Slot> = slots
            .iter()
            .filter(|s| s.holder.is_none() && !held.contains(&s.session_id))
            .collect();
        // The ones it owns first: loaders that fill their shares at once
        // start on disjoint sessions instead of racing for the same ones.
        let others: Vec<&str> = live
            .iter()
            .map(String::as_str)
            .filter(|l| *l != me)
            .collect();
        free.sort_by_cached_key(|s| {
            let mine = score(me, &s.session_id);
            let owned = others.iter().all(|l| score(l, &s.session_id) < mine);
            std::cmp::Reverse((owned, mine))
        });
        plan.candidates = free.into_iter().map(|s| s.session_id.clone()).collect();
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(n: usize, holder: impl Fn(usize) -> Option<String>) -> Vec<Slot> {
        (0..n)
            .map(|i| Slot {
                session_id: format!("s{i:04}"),
                user_id: format!("u{i:04}"),
                holder: holder(i),
            })
            .collect()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Three loaders taking in turn from nothing end up covering every
    /// session once, within one share each.
    #[test]
    fn loaders_split_everything_without_doubles() {
        let live = names(&["a", "b", "c"]);
        let mut owner: Vec<Option<String>> = vec![None; 300];
        for _round in 0..3 {
            for me in &live {
                let s = slots(300, |i| owner[i].clone());
                let held: BTreeSet<String> = s
                    .iter()
                    .filter(|x| x.holder.as_deref() == Some(me))
                    .map(|x| x.session_id.clone())
                    .collect();
                let p = plan(me, &live, &s, &held);
                assert!(p.release.is_empty() && p.drop.is_empty());
                let room = p.share - held.len();
                for c in p.candidates.iter().take(room) {
                    let i: usize = c[1..].parse().unwrap();
                    assert!(owner[i].is_none());
                    owner[i] = Some(me.clone());
                }
            }
        }
        assert!(owner.iter().all(Option::is_some));
        for me in &live {
            assert_eq!(owner.iter().filter(|o| o.as_ref() == Some(me)).count(), 100);
        }
    }

    /// Loaders that plan at once from the same view start on disjoint
    /// sessions: each free one is in exactly one loader's first third.
    #[test]
    fn loaders_starting_together_begin_on_disjoint_sessions() {
        let live = names(&["a", "b", "c"]);
        let s = slots(3000, |_| None);
        let mut firsts: Vec<BTreeSet<String>> = Vec::new();
        for me in &live {
            let p = plan(me, &live, &s, &BTreeSet::new());
            assert_eq!(p.candidates.len(), 3000);
            let owned = p
                .candidates
                .iter()
                .take_while(|c| live.iter().all(|l| l == me || score(l, c) < score(me, c)))
                .cloned()
                .collect();
            firsts.push(owned);
        }
        let total: usize = firsts.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<&String> = firsts.iter().flatten().collect();
        assert_eq!((total, union.len()), (3000, 3000));
        assert!(
            firsts.iter().all(|f| (850..1150).contains(&f.len())),
            "{:?}",
            firsts.iter().map(BTreeSet::len).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_joining_loader_gets_the_excess_handed_over() {
        let s = slots(300, |i| Some(["a", "b", "c"][i % 3].to_string()));
        let held: BTreeSet<String> = s
            .iter()
            .filter(|x| x.holder.as_deref() == Some("a"))
            .map(|x| x.session_id.clone())
            .collect();
        let p = plan("a", &names(&["a", "b", "c", "d"]), &s, &held);
        assert_eq!(p.share, 75);
        assert_eq!(p.release.len(), 25);
        assert!(p.release.iter().all(|r| held.contains(r)));
        // The newcomer sees nothing free yet, and a share to fill.
        let p = plan("d", &names(&["a", "b", "c", "d"]), &s, &BTreeSet::new());
        assert_eq!((p.share, p.candidates.len()), (75, 0));
    }

    #[test]
    fn inactive_sessions_are_dropped_and_self_counts() {
        let s = slots(4, |_| None);
        let held: BTreeSet<String> = ["s0001".to_string(), "gone".to_string()].into();
        // `me` not yet in the live list: it still counts as a loader.
        let p = plan("me", &names(&["x"]), &s, &held);
        assert_eq!(p.drop, vec!["gone".to_string()]);
        assert_eq!(p.share, 2);
        assert_eq!(p.candidates.len(), 3);
        assert!(!p.candidates.contains(&"s0001".to_string()));
        assert_eq!(share_of(0, 3), 0);
        assert_eq!(share_of(10, 3), 4);
    }
}
