"""One session's lease, held and renewed in the background while it lives.

The adapters hold one of these: it takes the lease when made (``LeaseHeld``
when another holder has it), renews it from a daemon thread every third of
the TTL (a thread, not an asyncio task, so it keeps renewing while the event
loop is busy and works the same under Telethon, Pyrogram or plain code), and
hands out the fence for writes. Once the lease is lost, every further
``fence()`` raises :class:`StaleLease`, so nothing is written under it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from .client import Client
from .errors import ApiError, LeaseHeld, NotFound, StaleLease, TransportError, VibeeError
from .models import Lease

log = logging.getLogger("vibee_sessions")

MIN_TTL = 5
MAX_TTL = 3600


def check_ttl(ttl: int) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL <= ttl <= MAX_TTL:
        raise ValueError(f"lease_ttl must be an integer number of seconds, {MIN_TTL}-{MAX_TTL}")
    return ttl


def _lost(reason: str) -> StaleLease:
    return StaleLease(409, "stale_lease", reason)


class LeaseKeeper:
    def __init__(
        self,
        client: Client,
        session_id: str,
        holder: str,
        ttl: int,
        on_lost: Optional[Callable[[VibeeError], None]] = None,
    ) -> None:
        self._client = client
        self._on_lost = on_lost
        self.session_id = session_id
        self.holder = holder
        self.ttl = check_ttl(ttl)
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._lost: Optional[VibeeError] = None
        self._released = False
        # A live lease of this same holder (a supervising `vibee-sessions
        # boot --exec` with the same VIBEE_HOLDER) is adopted: renewed like
        # ours, but left to its owner at release.
        before = client.get_lease(session_id)
        self._lease: Lease = client.take_lease(session_id, holder, self.ttl)
        self.adopted = (
            before is not None and before.holder == holder and before.fence == self._lease.fence
        )
        self._renewed_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, name=f"vibee-lease-{session_id}", daemon=True
        )
        self._thread.start()

    @property
    def lease(self) -> Lease:
        with self._mutex:
            return self._lease

    @property
    def lost(self) -> Optional[VibeeError]:
        """Why the lease was lost, or ``None`` while it is held."""
        with self._mutex:
            return self._lost

    def fence(self) -> int:
        """The fence to write with; :class:`StaleLease` once the lease is lost or released."""
        with self._mutex:
            if self._lost is not None:
                raise self._lost
            if self._released:
                raise _lost("the lease was released (the session was closed)")
            if time.monotonic() - self._renewed_at >= self.ttl:
                # Not renewed for a whole TTL: another holder may have it by now.
                raise _lost("the lease could not be renewed for a whole TTL")
            return self._lease.fence

    def fence_after_close(self) -> Optional[int]:
        """The fence for a write after ``release()`` (``log_out()`` clears the
        blob after the client closed): an adopted lease is still its owner's,
        who runs this process under it, so its fence; a lease of ours was
        released, so none (the server then refuses the write if another
        holder took the lease meanwhile)."""
        with self._mutex:
            if self.adopted and self._lost is None:
                return self._lease.fence
            return None

    def _run(self) -> None:
        period = self.ttl / 3.0
        wait = period
        while not self._stop.wait(wait):
            try:
                renewed = self._client.renew_lease(self.lease, self.ttl)
            except (StaleLease, LeaseHeld, NotFound) as err:
                self._mark_lost(err)
                return
            except (TransportError, ApiError):
                # The server or the network is down for now: try again soon.
                # fence() refuses once a whole TTL has passed unrenewed.
                wait = min(period, 1.0)
                continue
            with self._mutex:
                self._lease = renewed
                self._renewed_at = time.monotonic()
            wait = period

    def _mark_lost(self, err: VibeeError) -> None:
        with self._mutex:
            if self._lost is not None or self._released:
                return
            self._lost = err
        log.warning(
            "vibee-sessions: lost the lease on session %s (%s); nothing more is written under it",
            self.session_id,
            err,
        )
        if self._on_lost is not None:
            try:
                self._on_lost(err)
            except Exception:
                log.exception("vibee-sessions: the on_lease_lost callback failed")

    def release(self) -> None:
        """Stop renewing and release the lease (a lost lease is not released: it is not ours)."""
        with self._mutex:
            if self._released:
                return
            self._released = True
            lost = self._lost is not None
            lease = self._lease
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        if not lost and not self.adopted:
            try:
                self._client.release_lease(lease)
            except StaleLease:
                # Taken over meanwhile: nothing of ours to release.
                pass

    def release_quietly(self) -> None:
        try:
            self.release()
        except Exception:  # at garbage collection or exit: nothing to tell anyone
            pass


class Holdings:
    """What an adapter holds, let go of when it is collected or the interpreter
    exits without ``close()``: its lease (so a restarted process need not wait
    out the TTL), then the HTTP client, when the adapter made it."""

    def __init__(self, client: Client, owned: bool) -> None:
        self.client = client
        self.owned = owned
        self.keeper: Optional[LeaseKeeper] = None

    def __call__(self) -> None:
        if self.keeper is not None:
            self.keeper.release_quietly()
        if self.owned:
            try:
                self.client.close()
            except Exception:
                pass
