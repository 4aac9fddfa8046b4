"""A Telethon ``Session`` whose DC and auth key live encrypted in vibee-sessions.

    from telethon import TelegramClient
    from vibee_sessions.telethon import VibeeSession

    client = TelegramClient(VibeeSession("acme-main"), api_id, api_hash)

The blob is Telethon's own ``StringSession`` string (DC id, address, port,
auth key), so a session can move between this store and any Telethon
program. Entities, sent files and update state stay in memory, as in
``MemorySession``: they are not secrets and change on nearly every update.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Optional

try:
    from telethon.crypto import AuthKey
    from telethon.sessions import MemorySession
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(
        "vibee_sessions.telethon needs Telethon: pip install 'vibee-sessions[telethon]'"
    ) from err

from . import _config
from .client import Client
from .errors import SessionClosed, VibeeError
from .formats import PYROGRAM, FormatError, TelethonState, decode_telethon, detect
from .lease import Holdings, LeaseKeeper, check_ttl

__all__ = ["VibeeSession"]


class VibeeSession(MemorySession):
    """A Telethon session kept in vibee-sessions, under a lease.

    On construction it takes the session's lease (:class:`~vibee_sessions.LeaseHeld`
    when another holder has it) and loads the stored DC and auth key. The
    lease is renewed in the background. :meth:`save` writes the blob, with the
    lease's fence, whenever the DC or the auth key changed; :meth:`close` (which
    ``TelegramClient.disconnect()`` calls) saves and releases the lease.

    :param session_id: the session in the store (it must exist: create it
        with ``vibee-sessions session put``, the API or ``vibee-sessions-py import``).
    :param base_url: default ``VIBEE_API_URL``.
    :param token: default ``VIBEE_TOKEN`` / ``VIBEE_TOKEN_FILE``; needs
        ``sessions:read`` and ``sessions:write``.
    :param holder: the lease holder's name; default ``VIBEE_HOLDER``, else
        ``<hostname>-<pid>``.
    :param lease_ttl: seconds (5-3600) the lease outlives a holder that stops renewing.
    :param client: a :class:`~vibee_sessions.Client` to use instead of making one.
    :param on_lease_lost: called (from the renewal thread) with the error once
        the lease is lost; e.g. to disconnect the client before another holder
        connects with the same key. Later saves raise ``StaleLease`` regardless.
    """

    def __init__(
        self,
        session_id: str,
        *,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        holder: Optional[str] = None,
        lease_ttl: int = 60,
        client: Optional[Client] = None,
        on_lease_lost: Optional[Callable[[VibeeError], None]] = None,
    ) -> None:
        super().__init__()
        _config.check_identifier("session_id", session_id)
        check_ttl(lease_ttl)
        self.session_id = session_id
        self._client = client if client is not None else Client(base_url, token=token)
        self._closed = False
        self._stored: Optional[str] = None
        holdings = Holdings(self._client, owned=client is None)
        self._finalizer = weakref.finalize(self, holdings)
        self._keeper = LeaseKeeper(
            self._client, session_id, _config.holder(holder), lease_ttl, on_lease_lost
        )
        holdings.keeper = self._keeper
        try:
            self._load()
        except BaseException:
            self._finalizer()
            raise

    def _load(self) -> None:
        blob = self._client.get_blob(self.session_id)
        if blob is None:
            return
        data = blob.data.reveal()
        try:
            state = decode_telethon(data.decode("ascii"))
        except (FormatError, UnicodeDecodeError, ValueError):
            if detect(data) == PYROGRAM:
                raise FormatError(
                    "session_data",
                    f"session {self.session_id} holds a Pyrogram session string, not Telethon's;"
                    " use vibee_sessions.pyrogram.VibeeStorage for it",
                ) from None
            raise FormatError(
                "session_data",
                f"session {self.session_id} holds a blob that is not a Telethon StringSession",
            ) from None
        self._dc_id = state.dc_id
        self._server_address = state.server_address
        self._port = state.port
        self._auth_key = AuthKey(state.auth_key)
        self._stored = data.decode("ascii")

    @property
    def holder(self) -> str:
        return self._keeper.holder

    @property
    def lease(self) -> Any:
        """The current :class:`~vibee_sessions.Lease`."""
        return self._keeper.lease

    def clone(self, to_instance: Any = None) -> Any:
        # Telethon clones the session for CDN and exported-DC connections; a
        # clone must neither take this session's lease nor write its blob.
        return to_instance or MemorySession()

    def _current(self) -> Optional[str]:
        key = self._auth_key.key if self._auth_key is not None else None
        if not key or not self._server_address or not self._port or not self._dc_id:
            return None
        return TelethonState(self._dc_id, self._server_address, self._port, key).encode()

    def save(self) -> None:
        """Write the blob when the DC or the auth key changed since it was loaded or last saved.

        A state without an auth key (Telethon's DC switch clears it before
        making a new one) is not written, so the stored, still-valid key is
        never replaced by nothing. Raises :class:`~vibee_sessions.StaleLease`
        when the lease was lost: nothing is written then.
        """
        current = self._current()
        if current is None or current == self._stored:
            return
        if self._closed:
            raise SessionClosed(
                f"session {self.session_id} was closed; make a new VibeeSession to connect again"
            )
        fence = self._keeper.fence()
        self._client.put_blob(self.session_id, current.encode("ascii"), lease_fence=fence)
        self._stored = current

    def close(self) -> None:
        """Save, then release the lease (``TelegramClient.disconnect()`` calls this)."""
        if self._closed:
            return
        try:
            if self._keeper.lost is None:
                self.save()
        finally:
            self._closed = True
            # The HTTP client stays: Telethon's log_out() calls delete() next.
            self._keeper.release()

    def delete(self) -> None:
        """Clear the stored blob (``TelegramClient.log_out()`` calls this).

        Telethon calls it after ``disconnect()`` has closed the session and
        released the lease, so it then goes without a fence: the server
        refuses it (``LeaseRequired``) when another holder took the lease
        meanwhile, and that holder's blob stays. A lease adopted from a
        supervising ``boot --exec`` is still live: its fence is sent.
        """
        fence = self._keeper.fence_after_close() if self._closed else self._keeper.fence()
        self._client.delete_blob(self.session_id, lease_fence=fence)
        self._stored = None
        self._auth_key = None
