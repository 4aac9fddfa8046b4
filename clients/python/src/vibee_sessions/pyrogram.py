"""A Pyrogram ``Storage`` whose session lives encrypted in vibee-sessions.

Pyrogram 2.0 has no ``storage=`` argument: ``Client.__init__`` always builds
a ``FileStorage`` or ``MemoryStorage`` into ``client.storage``, and every
later use goes through that attribute. Replace it before ``start()``:

    from pyrogram import Client
    from vibee_sessions.pyrogram import VibeeStorage

    app = Client("acme", api_id=api_id, api_hash=api_hash, in_memory=True)
    app.storage = VibeeStorage("acme", session_id="acme-main")

The blob is Pyrogram's own session string (dc_id, api_id, test_mode, auth
key, user_id, is_bot). Peers stay in memory (an in-memory SQLite database,
as in ``MemoryStorage``): they are not secrets and change constantly.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from typing import Any, Callable, Optional, TypeVar

try:
    from pyrogram.storage import MemoryStorage
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(
        "vibee_sessions.pyrogram needs Pyrogram: pip install 'vibee-sessions[pyrogram]'"
    ) from err

from . import _config
from .client import Client
from .errors import SessionClosed, VibeeError
from .formats import TELETHON, FormatError, PyrogramState, decode_pyrogram, detect
from .lease import Holdings, LeaseKeeper, check_ttl

__all__ = ["VibeeStorage"]

T = TypeVar("T")


async def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    # Blocking HTTP off the event loop (asyncio.to_thread is 3.9+).
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


class VibeeStorage(MemoryStorage):
    """A Pyrogram storage kept in vibee-sessions, under a lease.

    Construction takes the session's lease (:class:`~vibee_sessions.LeaseHeld`
    when another holder has it); ``open()`` loads the stored session string;
    each change of DC, auth key, user or bot flag that leaves a complete
    session is written at once, with the lease's fence (Pyrogram itself
    calls ``save()`` only when the client stops). ``close()`` saves and
    releases the lease; a later ``open()`` (``Client.restart()``) takes it again.

    Arguments as for :class:`vibee_sessions.telethon.VibeeSession`; ``name``
    is Pyrogram's storage name (any string).
    """

    def __init__(
        self,
        name: str,
        *,
        session_id: str,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        holder: Optional[str] = None,
        lease_ttl: int = 60,
        client: Optional[Client] = None,
        on_lease_lost: Optional[Callable[[VibeeError], None]] = None,
    ) -> None:
        super().__init__(name)
        _config.check_identifier("session_id", session_id)
        check_ttl(lease_ttl)
        self.session_id = session_id
        self._ttl = lease_ttl
        self._on_lost = on_lease_lost
        self._holder = _config.holder(holder)
        self._client = client if client is not None else Client(base_url, token=token)
        self._holdings = Holdings(self._client, owned=client is None)
        weakref.finalize(self, self._holdings)
        self._stored: Optional[str] = None
        self._opened = False
        self._closed = False
        self._keeper: LeaseKeeper
        self._take()

    # -- lease and blob -----------------------------------------------------

    def _take(self) -> None:
        self._keeper = LeaseKeeper(
            self._client, self.session_id, self._holder, self._ttl, self._on_lost
        )
        self._holdings.keeper = self._keeper
        try:
            self._stored = self._load()
        except BaseException:
            self._keeper.release_quietly()
            raise
        self._closed = False

    def _load(self) -> Optional[str]:
        blob = self._client.get_blob(self.session_id)
        if blob is None:
            return None
        data = blob.data.reveal()
        try:
            text = data.decode("ascii")
            decode_pyrogram(text)
        except (FormatError, UnicodeDecodeError, ValueError):
            if detect(data) == TELETHON:
                raise FormatError(
                    "session_data",
                    f"session {self.session_id} holds a Telethon StringSession, not Pyrogram's;"
                    " use vibee_sessions.telethon.VibeeSession for it",
                ) from None
            raise FormatError(
                "session_data",
                f"session {self.session_id} holds a blob that is not a Pyrogram session string",
            ) from None
        return text.strip()

    @property
    def holder(self) -> str:
        return self._holder

    @property
    def lease(self) -> Any:
        return self._keeper.lease

    async def _current(self) -> Optional[str]:
        values = [
            await super().dc_id(),
            await super().api_id(),
            await super().test_mode(),
            await super().auth_key(),
            await super().user_id(),
            await super().is_bot(),
        ]
        if any(v is None for v in values) or not values[1] or not values[4]:
            # Not signed in yet (Pyrogram sets user_id and is_bot last).
            return None
        dc_id, api_id, test_mode, key, user_id, is_bot = values
        return PyrogramState(dc_id, api_id, bool(test_mode), bytes(key), user_id, bool(is_bot)).encode()

    async def _persist(self) -> None:
        if not self._opened:
            return
        current = await self._current()
        if current is None or current == self._stored:
            return
        if self._closed:
            raise SessionClosed(f"storage of session {self.session_id} was closed")
        fence = self._keeper.fence()
        await _in_thread(
            self._client.put_blob, self.session_id, current.encode("ascii"), lease_fence=fence
        )
        self._stored = current

    # -- Storage ------------------------------------------------------------

    async def open(self) -> None:
        if self._closed:
            await _in_thread(self._take)
        self.session_string = self._stored or ""
        await super().open()
        self._opened = True

    async def save(self) -> None:
        await super().save()
        await self._persist()

    async def close(self) -> None:
        if self._closed:
            return
        try:
            if self._keeper.lost is None:
                await self._persist()
        finally:
            self._closed = True
            self._opened = False
            await _in_thread(self._keeper.release)
            if self.conn is not None:
                await super().close()

    async def delete(self) -> None:
        """Clear the stored blob (``Client.log_out()`` calls this, after ``close()``).

        After ``close()`` it goes without a fence: the server refuses it
        (``LeaseRequired``) when another holder took the lease meanwhile. A
        lease adopted from a supervising ``boot --exec`` is still live: its
        fence is sent.
        """
        fence = self._keeper.fence_after_close() if self._closed else self._keeper.fence()
        await _in_thread(self._client.delete_blob, self.session_id, lease_fence=fence)
        self._stored = None

    # The setters Pyrogram calls when it signs in, migrates DC or makes a
    # new auth key; each persists at once when the session is complete.
    # (SQLiteStorage finds the column from the caller's function name,
    # which is why each keeps the name of the method it overrides.)

    async def dc_id(self, value: Any = object) -> Any:
        result = await super().dc_id(value)
        if value is not object:
            await self._persist()
        return result

    async def api_id(self, value: Any = object) -> Any:
        result = await super().api_id(value)
        if value is not object:
            await self._persist()
        return result

    async def test_mode(self, value: Any = object) -> Any:
        result = await super().test_mode(value)
        if value is not object:
            await self._persist()
        return result

    async def auth_key(self, value: Any = object) -> Any:
        result = await super().auth_key(value)
        if value is not object:
            await self._persist()
        return result

    async def user_id(self, value: Any = object) -> Any:
        result = await super().user_id(value)
        if value is not object:
            await self._persist()
        return result

    async def is_bot(self, value: Any = object) -> Any:
        result = await super().is_bot(value)
        if value is not object:
            await self._persist()
        return result
