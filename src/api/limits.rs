//! Per-caller limits, so that no caller (with a valid token or without one)
//! can take the service from the others:
//!
//! - a cap on open connections (`HTTP_MAX_CONNECTIONS`): past it a new
//!   connection is closed at once, before any TLS or HTTP work;
//! - a cap on concurrent token checks that go to the database (a quarter of
//!   the pool): bogus `vbs_…` tokens, which are never cached as valid, cannot
//!   hold every pooled connection; identical bogus tokens are answered from
//!   the negative cache (`db::tokens::TokenCache`) without a query at all;
//! - past `FAILURES_PER_SEC` failed lookups a second, a lookup of an
//!   uncached token first waits `FAILURE_DELAY` (`FailedLookups`);
//! - a cap on requests in flight per token (`TOKEN_MAX_CONCURRENCY`): past it
//!   a request waits (`TOKEN_QUEUE_WAIT_SECS`) for one of its token's slots,
//!   then gets 429 with `Retry-After`; other tokens are unaffected.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Accepts at most `permits` connections at a time; the rest are closed.
#[derive(Clone)]
pub struct CappedAcceptor<A> {
    inner: A,
    permits: Arc<Semaphore>,
}

impl<A> CappedAcceptor<A> {
    pub fn new(inner: A, max_connections: usize) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max_connections)),
        }
    }
}

/// A connection holding its place under the cap until it is dropped.
pub struct Capped<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<A, I, S> Accept<I, S> for CappedAcceptor<A>
where
    A: Accept<I, S> + Clone + Send + 'static,
    A::Future: Send,
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = Capped<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let permit = self.permits.clone().try_acquire_owned();
        let inner = self.inner.clone();
        Box::pin(async move {
            let Ok(permit) = permit else {
                metrics::counter!("vibee_http_connections_refused_total").increment(1);
                // Dropping `stream` closes it: no handshake, no request read.
                return Err(io::Error::other("connection cap reached"));
            };
            let (inner, service) = inner.accept(stream, service).await?;
            Ok((
                Capped {
                    inner,
                    _permit: permit,
                },
                service,
            ))
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Requests in flight per token: past `per_token`, a request waits up to
/// `wait` for a slot (as tower's `ConcurrencyLimit` would, but per token and
/// bounded), then gets 429.
pub struct TokenLimits {
    per_token: usize,
    wait: Duration,
    slots: Mutex<HashMap<i64, Arc<Semaphore>>>,
}

impl TokenLimits {
    pub fn new(per_token: usize, wait: Duration) -> Self {
        Self {
            per_token,
            wait,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one request of token `id`, or `None` when none came free
    /// within the wait.
    pub async fn enter(&self, id: i64) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            // Tokens are few (operators make them); forget idle ones when
            // the map grows anyway, so it stays bounded.
            if slots.len() > 10_000 {
                slots.retain(|_, s| s.available_permits() < self.per_token);
            }
            slots
                .entry(id)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_token)))
                .clone()
        };
        // `timeout` polls first: a zero wait still takes a free slot.
        match tokio::time::timeout(self.wait, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => None,
        }
    }
}

/// Token lookups that found nothing, per second: past `FAILURES_PER_SEC`
/// in the current or the previous second, every further lookup of an
/// uncached token first waits `FAILURE_DELAY`. A flood of bogus tokens is
/// then slowed to one request per client per delay (a client waits for its
/// answer), so the lookups and the CPU they cost stay with the legitimate
/// callers, whose verified tokens are answered from the cache and never
/// wait here. An unknown-but-valid token presented during a flood is still
/// verified, one delay late.
pub struct FailedLookups {
    /// The second (since the process started) the count is for.
    second: AtomicU64,
    count: AtomicU64,
    previous: AtomicU64,
    started: std::time::Instant,
}

/// Failed lookups per second a server takes without slowing anyone down.
pub const FAILURES_PER_SEC: u64 = 100;
pub const FAILURE_DELAY: Duration = Duration::from_secs(1);

impl Default for FailedLookups {
    fn default() -> Self {
        Self {
            second: AtomicU64::new(0),
            count: AtomicU64::new(0),
            previous: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }
}

impl FailedLookups {
    fn roll(&self) -> u64 {
        let now = self.started.elapsed().as_secs();
        let seen = self.second.load(Ordering::Acquire);
        if now != seen
            && self
                .second
                .compare_exchange(seen, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let last = self.count.swap(0, Ordering::AcqRel);
            self.previous
                .store(if now == seen + 1 { last } else { 0 }, Ordering::Release);
        }
        now
    }

    /// Records a lookup that found no token.
    pub fn failed(&self) {
        self.roll();
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// Waits `FAILURE_DELAY` when lookups are failing faster than
    /// `FAILURES_PER_SEC`.
    pub async fn pace(&self) {
        self.roll();
        let recent = self
            .count
            .load(Ordering::Acquire)
            .max(self.previous.load(Ordering::Acquire));
        if recent > FAILURES_PER_SEC {
            metrics::counter!("vibee_token_lookups_delayed_total").increment(1);
            tokio::time::sleep(FAILURE_DELAY).await;
        }
    }
}
