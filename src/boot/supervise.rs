//! `boot --exec` as a supervisor: the agent runs as our child while we hold
//! its tenants' leases, renew them every third of the TTL, forward SIGTERM,
//! SIGINT and SIGHUP, and exit with its status.
//!
//! Safety rule: a lease is given up only after the child using it has
//! stopped. A lease that could not be renewed for half its TTL is dropped
//! the same way (the child stopped first), so it cannot expire, by the
//! database's clock, while our child still runs it: our half-TTL is counted
//! from the moment the last successful renewal was *sent*, and the database
//! set the expiry a full TTL after a moment no earlier than that.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::process::Child;
use std::time::{Duration, Instant};

use super::BootError;
use super::child::{Signals, agent_command, exit_code, signal_child, spawn};
use super::leaser::{Leaser, TakeOutcome};
use super::share::Slot;

mod rebalance;
pub use rebalance::TAKE_CHUNK;

/// Rounds in a row that may follow each other at once, without starting
/// the agent in between, while a loader fills its share.
const MAX_QUICK_ROUNDS: usize = 3;

#[derive(Debug, Clone)]
pub struct Settings {
    pub holder: String,
    pub ttl: Duration,
    pub stop_grace: Duration,
    pub wait: bool,
}

impl Settings {
    fn ttl_seconds(&self) -> i32 {
        i32::try_from(self.ttl.as_secs()).unwrap_or(i32::MAX)
    }

    /// Renewals (and rebalancing) run at about a third of the TTL.
    fn period(&self) -> Duration {
        self.ttl / 3
    }
}

struct Running {
    child: Child,
    set: BTreeSet<String>,
}

enum Event {
    Tick,
    /// The agent exited on its own (or after a forwarded signal).
    ChildExited(i32),
    /// A stop was asked for while no agent ran.
    Stop(i32),
}

pub struct Supervisor {
    leaser: Leaser,
    settings: Settings,
    argv: Vec<OsString>,
    running: Option<Running>,
    signals: Signals,
    /// A stop signal arrived: (signal, when).
    stopping: Option<(i32, Instant)>,
    /// When the last renewal that kept every lease was sent.
    renewed_at: Instant,
    /// Held leases: session id → (slot, fence).
    held: BTreeMap<String, (Slot, i64)>,
}

/// A store call that cannot outlast a renewal period: a hung database must
/// not keep the half-TTL check from running.
async fn bounded<T>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, BootError>>,
) -> Result<T, BootError> {
    tokio::time::timeout(limit, f).await.unwrap_or_else(|_| {
        Err(BootError::Unavailable(
            "the store did not answer in time".into(),
        ))
    })
}

impl Supervisor {
    pub fn new(leaser: Leaser, settings: Settings, argv: Vec<OsString>) -> Result<Self, BootError> {
        Ok(Self {
            leaser,
            settings,
            argv,
            running: None,
            signals: Signals::new()?,
            stopping: None,
            renewed_at: Instant::now(),
            held: BTreeMap::new(),
        })
    }

    /// SIGTERM, then SIGKILL after the grace period; waits for the exit.
    async fn stop_child(&mut self) -> Option<i32> {
        let mut running = self.running.take()?;
        signal_child(&running.child, libc::SIGTERM);
        let deadline = Instant::now() + self.settings.stop_grace;
        loop {
            if let Ok(Some(status)) = running.child.try_wait() {
                return Some(exit_code(status));
            }
            if Instant::now() >= deadline {
                tracing::warn!("the agent did not stop within --stop-grace; killing it");
                let _ = running.child.kill();
                return running.child.wait().ok().map(exit_code);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `deadline`, a signal, or the agent's exit.
    async fn wait(&mut self, deadline: Instant) -> Event {
        loop {
            if let Some(r) = &mut self.running
                && let Ok(Some(status)) = r.child.try_wait()
            {
                self.running = None;
                return Event::ChildExited(exit_code(status));
            }
            if let Some((sig, since)) = self.stopping {
                match &mut self.running {
                    None => return Event::Stop(128 + sig),
                    Some(r) if since.elapsed() >= self.settings.stop_grace => {
                        let _ = r.child.kill();
                    }
                    Some(_) => {}
                }
            }
            let now = Instant::now();
            let due = now >= deadline
                || (!self.held.is_empty() && self.renewed_at.elapsed() >= self.settings.ttl / 2);
            // Signals are looked at also when the tick is due: rounds that
            // follow each other at once must still notice a stop.
            let nap = if due {
                Duration::ZERO
            } else {
                (deadline - now).min(Duration::from_millis(50))
            };
            let sig = tokio::select! {
                biased;
                _ = self.signals.term.recv() => Some(libc::SIGTERM),
                _ = self.signals.int.recv() => Some(libc::SIGINT),
                _ = self.signals.hup.recv() => Some(libc::SIGHUP),
                _ = tokio::time::sleep(nap) => None,
            };
            if let Some(sig) = sig {
                if let Some(r) = &self.running {
                    signal_child(&r.child, sig);
                }
                if sig != libc::SIGHUP && self.stopping.is_none() {
                    self.stopping = Some((sig, Instant::now()));
                }
            } else if due {
                return Event::Tick;
            }
        }
    }

    /// Gives up every lease: the agent is stopped first.
    async fn release_all(&mut self) {
        self.stop_child().await;
        let fences: Vec<(String, i64)> = std::mem::take(&mut self.held)
            .into_iter()
            .map(|(sid, (_, fence))| (sid, fence))
            .collect();
        if fences.is_empty() {
            return;
        }
        let count = fences.len();
        let r = bounded(
            self.settings.period(),
            self.leaser.release_batch(&self.settings.holder, fences),
        );
        if let Err(e) = r.await {
            tracing::warn!(leases = count, error = %e, "could not release the leases; they will expire");
        }
    }

    /// Renews every held lease; drops the lost ones (agent stopped first)
    /// and, past half the TTL without a renewal, all of them.
    async fn renew(&mut self) {
        if self.held.is_empty() {
            self.renewed_at = Instant::now();
            return;
        }
        let sent = Instant::now();
        let fences: Vec<(String, i64)> = self
            .held
            .iter()
            .map(|(s, (_, f))| (s.clone(), *f))
            .collect();
        let r = bounded(
            self.settings.period(),
            self.leaser
                .renew(&self.settings.holder, self.settings.ttl_seconds(), fences),
        );
        match r.await {
            Ok(renewed) => {
                self.renewed_at = sent;
                let lost: Vec<String> = self
                    .held
                    .keys()
                    .filter(|s| !renewed.contains(*s))
                    .cloned()
                    .collect();
                if !lost.is_empty() {
                    tracing::warn!(
                        lost = lost.len(),
                        "leases lost (broken or expired); restarting the agent without them"
                    );
                    self.stop_child().await;
                    for s in lost {
                        self.held.remove(&s);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing the leases failed"),
        }
        if !self.held.is_empty() && self.renewed_at.elapsed() >= self.settings.ttl / 2 {
            tracing::error!(
                leases = self.held.len(),
                "no renewal for half the lease TTL: stopping the agent and dropping its leases"
            );
            self.stop_child().await;
            self.held.clear();
        }
    }

    /// (Re)starts the agent when the held set differs from the one it runs.
    async fn converge(&mut self, one: bool) -> Result<(), BootError> {
        let want: BTreeSet<String> = self.held.keys().cloned().collect();
        if self.running.as_ref().is_some_and(|r| r.set == want)
            || (self.running.is_none() && want.is_empty())
        {
            return Ok(());
        }
        self.stop_child().await;
        if want.is_empty() || self.stopping.is_some() {
            return Ok(());
        }
        // In user_id order, as a first start hands them out.
        let mut slots: Vec<Slot> = self.held.values().map(|(s, _)| s.clone()).collect();
        slots.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        let tenants = bounded(self.settings.ttl / 2, self.leaser.load(slots)).await?;
        if tenants.is_empty() {
            return Ok(());
        }
        let set: BTreeSet<String> = tenants.iter().map(|t| t.session_id.clone()).collect();
        let held = &self.held;
        let (cmd, file) = agent_command(
            &self.argv,
            &self.settings.holder,
            &tenants,
            |session_id| held.get(session_id).map(|(_, f)| *f),
            one,
        )?;
        let child = spawn(cmd)?;
        drop(file);
        tracing::info!(tenants = set.len(), pid = child.id(), "agent started");
        self.running = Some(Running { child, set });
        Ok(())
    }

    async fn finish(&mut self, code: i32) -> i32 {
        self.release_all().await;
        let _ = bounded(
            self.settings.period(),
            self.leaser.leave(&self.settings.holder),
        )
        .await;
        code
    }

    /// One tenant: take its lease (or wait for it), run the agent, renew.
    pub async fn run_one(mut self, user_id: &str) -> Result<i32, BootError> {
        let slot = self.leaser.find_user(user_id).await?;
        let ttl = self.settings.ttl_seconds();
        loop {
            match self
                .leaser
                .take(&slot.session_id, &self.settings.holder, ttl)
                .await?
            {
                TakeOutcome::Granted(g) => {
                    self.renewed_at = Instant::now();
                    self.held
                        .insert(slot.session_id.clone(), (slot.clone(), g.fence));
                    break;
                }
                TakeOutcome::Held { holder, expires_at } if !self.settings.wait => {
                    return Err(BootError::LeaseHeld {
                        user_id: user_id.to_owned(),
                        holder,
                        expires_at: expires_at.to_rfc3339(),
                    });
                }
                TakeOutcome::Held { holder, .. } => {
                    tracing::info!(%holder, "the lease is held; waiting (--wait)");
                    if let Event::Stop(code) =
                        self.wait(Instant::now() + Duration::from_secs(1)).await
                    {
                        return Ok(code);
                    }
                }
                TakeOutcome::Gone => return Err(BootError::Inactive(user_id.to_owned())),
            }
        }
        if let Err(e) = self.converge(true).await {
            self.finish(1).await;
            return Err(e);
        }
        if self.running.is_none() {
            self.finish(1).await;
            return Err(BootError::Inactive(user_id.to_owned()));
        }
        loop {
            let deadline = Instant::now() + self.settings.period();
            match self.wait(deadline).await {
                Event::ChildExited(code) | Event::Stop(code) => return Ok(self.finish(code).await),
                Event::Tick => {}
            }
            self.renew().await;
            if self.held.is_empty() {
                self.finish(0).await;
                return Err(BootError::LeaseLost(format!(
                    "lost the lease of user_id {user_id} (broken, or not renewed for half its TTL); the agent was stopped"
                )));
            }
        }
    }

    /// Every active session, split with the other live loaders.
    pub async fn run_all(mut self) -> Result<i32, BootError> {
        let mut first = true;
        let mut quick = 0;
        loop {
            let tick = Instant::now();
            self.renew().await;
            let mut next = tick + self.settings.period();
            // Stopping: only renew until the agent is gone.
            let mut filling = false;
            if self.stopping.is_none() {
                match self.rebalance().await {
                    Ok(round) if round.active == 0 && first => {
                        self.finish(0).await;
                        return Err(BootError::NoActiveSessions);
                    }
                    Ok(round) => {
                        first = false;
                        filling = round.unfinished && quick < MAX_QUICK_ROUNDS;
                    }
                    Err(e) if first => {
                        self.finish(0).await;
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "rebalancing failed; keeping the current set")
                    }
                }
            }
            if filling {
                // Cut short with more to take: go on at once (renewing
                // first), and start the agent once, with the whole share,
                // instead of once per round.
                quick += 1;
                next = Instant::now();
            } else {
                quick = 0;
                if let Err(e) = self.converge(false).await {
                    tracing::warn!(error = %e, "could not start the agent; retrying next period");
                }
            }
            match self.wait(next).await {
                Event::ChildExited(code) | Event::Stop(code) => return Ok(self.finish(code).await),
                Event::Tick => {}
            }
        }
    }
}
