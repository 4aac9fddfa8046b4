//! A figure that is costly to compute (the stats: a scan of `user_sessions`)
//! shared by every caller of this process: computed at most once per
//! `max_age`, by one computation at a time (callers that arrive while it
//! runs wait for it instead of starting their own), and never kept when it
//! fails. A caller that must see what happened before it asked
//! (`Cache-Control: no-cache`) waits for a computation that started after it
//! arrived, never an older one.
//!
//! Computed on demand rather than on a timer (as the `/metrics` gauges are):
//! a server nobody asks never scans.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::error::{AppError, AppResult};

/// One computed value and when its computation started.
pub struct Snapshot<T> {
    pub value: T,
    started: Instant,
}

impl<T> Snapshot<T> {
    /// Since its computation started: what the figures may have missed.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }
}

/// What one computation ends with, for everyone waiting on it.
type Outcome<T> = Option<AppResult<Arc<Snapshot<T>>>>;

struct Flight<T> {
    /// Computations are numbered from 1 in the order they start.
    number: u64,
    done: watch::Receiver<Outcome<T>>,
}

struct State<T> {
    latest: Option<Arc<Snapshot<T>>>,
    /// The computation running, if any: at most one at a time.
    flight: Option<Flight<T>>,
    /// How many computations have started.
    started: u64,
}

/// Which answers a caller takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// One younger than the maximum age, or a running computation's.
    WithinMaxAge,
    /// Only one computed after the caller arrived (RFC 9111 `no-cache`).
    Revalidate,
}

pub struct Shared<T> {
    max_age: Duration,
    state: Arc<Mutex<State<T>>>,
}

impl<T: Send + Sync + 'static> Shared<T> {
    /// `max_age` zero: every caller revalidates (concurrent ones still
    /// share a computation).
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            state: Arc::new(Mutex::new(State {
                latest: None,
                flight: None,
                started: 0,
            })),
        }
    }

    /// The value as `freshness` allows, computing it with `compute` when
    /// nothing fits and no fitting computation runs. The computation runs
    /// as its own task: a caller that gives up (its request timed out) does
    /// not abandon it, and the next caller gets its result.
    pub async fn get<F, Fut>(&self, freshness: Freshness, compute: F) -> AppResult<Arc<Snapshot<T>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = AppResult<T>> + Send + 'static,
    {
        let revalidate = freshness == Freshness::Revalidate || self.max_age.is_zero();
        let mut compute = Some(compute);
        // The first computation this caller may join.
        let mut first_acceptable = None;
        loop {
            let (mut done, number, joins) = {
                let mut state = self.lock();
                let first =
                    *first_acceptable.get_or_insert(if revalidate { state.started + 1 } else { 0 });
                if !revalidate
                    && let Some(latest) = &state.latest
                    && latest.age() < self.max_age
                {
                    return Ok(latest.clone());
                }
                match &state.flight {
                    Some(f) => (f.done.clone(), f.number, f.number >= first),
                    None => {
                        let compute = compute.take().expect("a caller starts one computation");
                        let (done, number) = self.start(&mut state, compute());
                        (done, number, true)
                    }
                }
            };
            // An older computation than this caller accepts: wait for it to
            // end (one scan at a time), then start or join the next.
            let ended = done.wait_for(Option::is_some).await;
            match ended {
                Ok(outcome) if joins => {
                    return outcome.clone().expect("waited for an outcome");
                }
                Ok(_) => {}
                Err(_) => {
                    // The task was dropped without an outcome (the runtime is
                    // stopping): forget the computation so none waits on it.
                    let mut state = self.lock();
                    if state.flight.as_ref().is_some_and(|f| f.number == number) {
                        state.flight = None;
                    }
                    return Err(AppError::unavailable());
                }
            }
        }
    }

    fn start(
        &self,
        state: &mut State<T>,
        work: impl Future<Output = AppResult<T>> + Send + 'static,
    ) -> (watch::Receiver<Outcome<T>>, u64) {
        state.started += 1;
        let number = state.started;
        let (tx, done) = watch::channel(None);
        state.flight = Some(Flight {
            number,
            done: done.clone(),
        });
        let shared = self.state.clone();
        let started = Instant::now();
        tokio::spawn(async move {
            // Its own task, so that a panic still ends the flight.
            let outcome = match tokio::spawn(work).await {
                Ok(Ok(value)) => Ok(Arc::new(Snapshot { value, started })),
                Ok(Err(e)) => Err(e),
                Err(e) => {
                    tracing::error!(error = %e, "a shared computation failed");
                    Err(AppError::internal())
                }
            };
            {
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(snapshot) = &outcome {
                    state.latest = Some(snapshot.clone());
                }
                state.flight = None;
            }
            tx.send_replace(Some(outcome));
        });
        (done, number)
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding it; a poisoned lock's state is whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::sync::Semaphore;

    /// Computations numbered in the order they start, each held until the
    /// test lets one through `gate`.
    struct Counter {
        runs: Arc<AtomicU64>,
        gate: Arc<Semaphore>,
    }

    type Work = std::pin::Pin<Box<dyn Future<Output = AppResult<u64>> + Send>>;

    impl Counter {
        fn new() -> Self {
            Self {
                runs: Arc::new(AtomicU64::new(0)),
                gate: Arc::new(Semaphore::new(0)),
            }
        }

        /// A computation that answers its number, or fails with `unavailable`.
        fn run(&self, fails: bool) -> impl FnOnce() -> Work + use<> {
            let runs = self.runs.clone();
            let gate = self.gate.clone();
            move || {
                Box::pin(async move {
                    let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                    gate.acquire().await.unwrap().forget();
                    if fails {
                        Err(AppError::unavailable())
                    } else {
                        Ok(n)
                    }
                })
            }
        }

        fn compute(&self) -> impl FnOnce() -> Work + use<> {
            self.run(false)
        }

        fn runs(&self) -> u64 {
            self.runs.load(Ordering::SeqCst)
        }
    }

    /// Long enough for the steps of a test, short enough to wait out.
    const MAX_AGE: Duration = Duration::from_secs(2);

    /// Lets the spawned computations and callers run as far as they can.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn callers_within_the_max_age_share_one_computation() {
        let shared = Arc::new(Shared::new(MAX_AGE));
        let c = Counter::new();
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let (shared, compute) = (shared.clone(), c.compute());
                tokio::spawn(async move {
                    shared
                        .get(Freshness::WithinMaxAge, compute)
                        .await
                        .map(|s| s.value)
                })
            })
            .collect();
        settle().await;
        c.gate.add_permits(1);
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap(), 1);
        }
        let again = shared
            .get(Freshness::WithinMaxAge, c.compute())
            .await
            .unwrap();
        assert_eq!((again.value, c.runs()), (1, 1));
        // Past the max age: computed anew.
        tokio::time::sleep(MAX_AGE).await;
        c.gate.add_permits(1);
        let later = shared
            .get(Freshness::WithinMaxAge, c.compute())
            .await
            .unwrap();
        assert_eq!((later.value, c.runs()), (2, 2));
    }

    #[tokio::test]
    async fn revalidation_never_joins_a_computation_older_than_the_request() {
        let shared = Arc::new(Shared::new(MAX_AGE));
        let c = Counter::new();
        let spawn_get = |freshness| {
            let (shared, compute) = (shared.clone(), c.compute());
            tokio::spawn(async move { shared.get(freshness, compute).await.map(|s| s.value) })
        };
        let first = spawn_get(Freshness::WithinMaxAge);
        settle().await;
        assert_eq!(c.runs(), 1, "the first computation runs");
        // Arrive while it runs: a plain caller joins it, revalidating ones
        // wait for the next, all of them for the same next one.
        let plain = spawn_get(Freshness::WithinMaxAge);
        let fresh: Vec<_> = (0..5).map(|_| spawn_get(Freshness::Revalidate)).collect();
        settle().await;
        assert_eq!(c.runs(), 1, "no second scan while the first runs");
        c.gate.add_permits(1);
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(plain.await.unwrap().unwrap(), 1);
        settle().await;
        assert_eq!(c.runs(), 2, "one computation for every revalidating caller");
        // One that arrives while the second runs waits for a third.
        let late = spawn_get(Freshness::Revalidate);
        settle().await;
        c.gate.add_permits(1);
        for f in fresh {
            assert_eq!(f.await.unwrap().unwrap(), 2);
        }
        settle().await;
        assert_eq!(c.runs(), 3);
        c.gate.add_permits(1);
        assert_eq!(late.await.unwrap().unwrap(), 3);
        // Within the max age, a plain caller takes the newest.
        let cached = shared
            .get(Freshness::WithinMaxAge, c.compute())
            .await
            .unwrap();
        assert_eq!((cached.value, c.runs()), (3, 3));
    }

    #[tokio::test]
    async fn a_failure_is_shared_by_its_waiters_and_not_kept() {
        let shared = Arc::new(Shared::new(MAX_AGE));
        let c = Counter::new();
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let (shared, compute) = (shared.clone(), c.run(true));
                tokio::spawn(async move {
                    shared
                        .get(Freshness::WithinMaxAge, compute)
                        .await
                        .err()
                        .map(|e| e.code())
                })
            })
            .collect();
        settle().await;
        c.gate.add_permits(1);
        for caller in callers {
            assert_eq!(caller.await.unwrap(), Some("unavailable"));
        }
        assert_eq!(c.runs(), 1, "one failed computation, shared");
        c.gate.add_permits(1);
        let ok = shared
            .get(Freshness::WithinMaxAge, c.compute())
            .await
            .unwrap();
        assert_eq!((ok.value, c.runs()), (2, 2), "the failure was not kept");
    }

    #[tokio::test]
    async fn a_max_age_of_zero_revalidates_every_call() {
        let shared = Shared::new(Duration::ZERO);
        let c = Counter::new();
        c.gate.add_permits(2);
        assert_eq!(
            shared
                .get(Freshness::WithinMaxAge, c.compute())
                .await
                .unwrap()
                .value,
            1
        );
        assert_eq!(
            shared
                .get(Freshness::WithinMaxAge, c.compute())
                .await
                .unwrap()
                .value,
            2
        );
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_abandon_the_computation() {
        let shared = Arc::new(Shared::new(MAX_AGE));
        let c = Counter::new();
        let caller = {
            let (shared, compute) = (shared.clone(), c.compute());
            tokio::spawn(async move { shared.get(Freshness::WithinMaxAge, compute).await.is_ok() })
        };
        settle().await;
        caller.abort();
        c.gate.add_permits(1);
        settle().await;
        let next = shared
            .get(Freshness::WithinMaxAge, c.compute())
            .await
            .unwrap();
        assert_eq!((next.value, c.runs()), (1, 1));
    }
}
