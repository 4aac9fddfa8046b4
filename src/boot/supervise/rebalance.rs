//! A `--all` loader's round of rebalancing: take its fair share of the
//! active sessions, hand over what is above it, drop what is gone. Takes
//! and releases go in batches, one statement each (issue 17: three loaders
//! over 100,000 tenants settle within the lease TTL plus one period).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::{Supervisor, bounded};
use crate::boot::BootError;
use crate::boot::share::{self, Plan, Slot};

/// Leases taken per statement while a loader fills its share: 33,000 are a
/// few dozen statements, and a loader that has not seen the others yet
/// overshoots its share by at most one chunk.
pub const TAKE_CHUNK: usize = 1_000;

/// Fresh looks at who holds what (`slots`) one fill may take when its
/// candidates run out or go stale.
const MAX_REFRESHES: usize = 3;

/// How a round of rebalancing went.
pub(super) struct Round {
    /// Active sessions.
    pub active: usize,
    /// The fill stopped at its time limit below the share, having taken
    /// some, with free sessions left to try: the next round should come at
    /// once.
    pub unfinished: bool,
}

/// What a fill works from: the active sessions as last listed, the plan
/// made from them, and how far down its candidates the fill has come.
struct View {
    slots: Vec<Slot>,
    /// Session id → its place in `slots`.
    index: HashMap<String, usize>,
    plan: Plan,
    next: usize,
}

impl View {
    fn new(plan: Plan, slots: Vec<Slot>) -> Self {
        let index = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.session_id.clone(), i))
            .collect();
        Self {
            slots,
            index,
            plan,
            next: 0,
        }
    }

    fn slot(&self, session_id: &str) -> Option<&Slot> {
        self.index.get(session_id).map(|&i| &self.slots[i])
    }

    fn exhausted(&self) -> bool {
        self.next == self.plan.candidates.len()
    }

    /// The next candidates to try, at most `n`.
    fn next_chunk(&mut self, n: usize) -> Vec<String> {
        let end = (self.next + n).min(self.plan.candidates.len());
        let chunk = self.plan.candidates[self.next..end].to_vec();
        self.next = end;
        chunk
    }

    /// The plan again from the same listing, for a new set of live loaders
    /// (its share, and which sessions this loader owns).
    fn replan(&mut self, me: &str, live: &[String], held: &BTreeSet<String>) {
        self.plan = share::plan(me, live, &self.slots, held);
        self.next = 0;
    }
}

impl Supervisor {
    /// Takes its share, hands over what is above it, drops what is gone.
    pub(super) async fn rebalance(&mut self) -> Result<Round, BootError> {
        let ttl = self.settings.ttl_seconds();
        let limit = self.settings.period();
        // Announce, list, then look at who is live: loaders started together
        // have announced themselves by the time the listing is done, and
        // plan with each other instead of each taking everything at first.
        bounded(limit, self.leaser.heartbeat(&self.settings.holder, ttl)).await?;
        let slots = bounded(limit, self.leaser.slots()).await?;
        let live = bounded(limit, self.leaser.heartbeat(&self.settings.holder, ttl)).await?;
        let held: BTreeSet<String> = self.held.keys().cloned().collect();
        let plan = share::plan(&self.settings.holder, &live, &slots, &held);
        let out: Vec<String> = plan.drop.iter().chain(&plan.release).cloned().collect();
        if !out.is_empty() {
            tracing::info!(
                handing_over = plan.release.len(),
                dropped = plan.drop.len(),
                share = plan.share,
                "giving up leases"
            );
            // The agent stops before anyone else can take what it runs.
            self.stop_child().await;
            let fences: Vec<(String, i64)> = out
                .into_iter()
                .filter_map(|sid| self.held.remove(&sid).map(|(_, fence)| (sid, fence)))
                .collect();
            bounded(
                limit,
                self.leaser.release_batch(&self.settings.holder, fences),
            )
            .await?;
        }
        let active = slots.len();
        let unfinished = self.fill(plan, live, slots).await;
        Ok(Round { active, unfinished })
    }

    /// Takes free sessions, best first, `TAKE_CHUNK` a statement, until the
    /// share is reached. A round stops taking after half a period, so the
    /// leases already held are renewed in time; the rest are taken in the
    /// next rounds. True when it stopped there with more to take.
    async fn fill(&mut self, plan: Plan, mut live: Vec<String>, slots: Vec<Slot>) -> bool {
        let ttl = self.settings.ttl_seconds();
        let limit = self.settings.period();
        let me = self.settings.holder.clone();
        let mut view = View::new(plan, slots);
        let started = Instant::now();
        let before = self.held.len();
        let (mut stale, mut refreshes, mut statements) = (false, 0, 0);
        let unfinished = loop {
            if self.held.len() >= view.plan.share {
                break false;
            }
            if started.elapsed() >= limit / 2 {
                break self.held.len() > before && !view.exhausted();
            }
            // Tried them all, or most of the last chunk was gone: others
            // took them since the listing (the end of a fill, when the few
            // free ones left are far down this loader's order). Look again
            // at what is free now.
            if view.exhausted() || stale {
                if refreshes == MAX_REFRESHES {
                    break false;
                }
                refreshes += 1;
                let fresh = match bounded(limit, self.leaser.slots()).await {
                    Ok(fresh) => fresh,
                    Err(e) => {
                        tracing::warn!(error = %e, "listing the sessions failed; retrying next period");
                        break false;
                    }
                };
                let held: BTreeSet<String> = self.held.keys().cloned().collect();
                view = View::new(share::plan(&me, &live, &fresh, &held), fresh);
                stale = false;
                if view.exhausted() {
                    break false;
                }
                continue;
            }
            let chunk = view.next_chunk((view.plan.share - self.held.len()).min(TAKE_CHUNK));
            let asked = chunk.len();
            statements += 1;
            // Not granted: another loader was quicker, or it was deactivated.
            match bounded(limit, self.leaser.take_batch(&me, ttl, chunk)).await {
                Ok(granted) => {
                    stale = granted.len() * 2 < asked;
                    for (sid, fence) in granted {
                        if let Some(slot) = view.slot(&sid) {
                            self.held.insert(sid, (slot.clone(), fence));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "taking leases failed; retrying next period");
                    break false;
                }
            }
            // Loaders started together may have planned before seeing each
            // other's heartbeat (each its own share: everything, and every
            // session its own). Looking again after every chunk stops this
            // one near its real share, on the sessions it owns, in its
            // first round.
            match bounded(limit, self.leaser.heartbeat(&me, ttl)).await {
                Ok(now) if now != live => {
                    live = now;
                    let held: BTreeSet<String> = self.held.keys().cloned().collect();
                    view.replan(&me, &live, &held);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the heartbeat failed; retrying next period");
                    break false;
                }
            }
        };
        tracing::debug!(
            taken = self.held.len() - before,
            held = self.held.len(),
            share = view.plan.share,
            statements,
            refreshes,
            ms = started.elapsed().as_millis() as u64,
            "filled"
        );
        unfinished
    }
}
