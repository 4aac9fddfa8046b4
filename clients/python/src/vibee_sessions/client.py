"""``Client`` (blocking) and ``AsyncClient`` (asyncio) over the REST API.

Both take the same arguments and have the same methods; the async ones are
coroutines, and ``AsyncClient.list_sessions`` is an async iterator.
"""

from __future__ import annotations

from typing import (
    Any,
    AsyncIterator,
    Dict,
    Iterator,
    Mapping,
    Optional,
)

import httpx

from . import _config, _ops
from ._ops import Answer, Op, Renewed
from .errors import StaleLease, TransportError
from .models import Blob, Credentials, Lease, SessionInfo

__all__ = ["Client", "AsyncClient"]

USER_AGENT = "vibee-sessions-py/0.1"


def _http_options(
    base_url: Optional[str], token: Optional[str], timeout: float, verify: Any, transport: Any
) -> Dict[str, Any]:
    """What ``httpx.Client`` and ``httpx.AsyncClient`` are built with."""
    return {
        "base_url": _config.base_url(base_url),
        "headers": {
            "Authorization": f"Bearer {_config.token(token)}",
            "User-Agent": USER_AGENT,
        },
        "timeout": timeout,
        "verify": verify,
        "transport": transport,
        "follow_redirects": False,
    }


def _request(op: Op) -> Dict[str, Any]:
    """The arguments of ``request`` for ``op``, the same for both clients."""
    return {
        "method": op.method,
        "url": op.path,
        "params": op.params,
        "headers": op.headers,
        "json": op.json_body,
        "content": op.content,
    }


def _transport_error(op: Op, err: Exception) -> TransportError:
    # The URL holds no secret (see _config.base_url), the request body is
    # never part of the message.
    return TransportError(f"{op.method} {op.path}: {type(err).__name__}: {err}")


def _finish(op: Op, answer: Answer) -> Any:
    if answer.status >= 400:
        try:
            _ops.raise_for(answer)
        except op.absent:
            return None
    return op.parse(answer)


class Client:
    """A blocking client.

    :param base_url: the server, e.g. ``https://sessions.internal:8443``;
        default ``VIBEE_API_URL``.
    :param token: the API token; default ``VIBEE_TOKEN``, else the contents of
        ``VIBEE_TOKEN_FILE``. Never part of the URL.
    :param timeout: seconds per request.
    :param verify: TLS verification, as httpx takes it (``True``, a CA bundle
        path, or an ``ssl.SSLContext``).
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        *,
        token: Optional[str] = None,
        timeout: float = 30.0,
        verify: Any = True,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        options = _http_options(base_url, token, timeout, verify, transport)
        self.base_url: str = options["base_url"]
        self._http = httpx.Client(**options)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, op: Op) -> Any:
        try:
            r = self._http.request(**_request(op))
        except httpx.HTTPError as err:
            raise _transport_error(op, err) from None
        return _finish(op, Answer(r.status_code, r.headers, r.content))

    # -- sessions -----------------------------------------------------------

    def upsert_session(self, **fields: Any) -> SessionInfo:
        """Create or update the session of ``user_id`` (``POST /sessions``).

        Fields: ``user_id``, ``api_id``, ``api_hash`` (required), ``session_id``,
        ``phone``, ``username``, ``session_data`` (bytes), ``is_authorized``,
        ``digital_twin_enabled``, ``auto_reply_enabled``, ``target_chats``;
        conditions: ``if_match`` (an ETag, version or SessionInfo),
        ``if_none_match="*"`` (create only), ``lease_fence``.
        """
        return self._call(_ops.upsert(**fields))

    def create_session(self, **fields: Any) -> SessionInfo:
        """Create only: :class:`PreconditionFailed` when ``user_id`` exists."""
        return self._call(_ops.upsert(if_none_match="*", **fields))

    def get_credentials(self, session_id: str) -> Credentials:
        """The session with its decrypted credentials (an audited read)."""
        return self._call(_ops.credentials(session_id))

    def get_credentials_by_user(self, user_id: str) -> Credentials:
        """The session of a ``user_id`` with its decrypted credentials (an audited read)."""
        return self._call(_ops.credentials(user_id, by_user=True))

    def reactivate_session(self, session_id: str) -> SessionInfo:
        """Make a deactivated session active again (audited)."""
        return self._call(_ops.reactivate(session_id))

    def break_lease(self, session_id: str) -> Lease:
        """Break whatever lease the session has (``admin``); the next take gets a new fence."""
        return self._call(_ops.break_lease(session_id))

    def find_session(self, user_id: str) -> SessionInfo:
        """The session of a ``user_id``: metadata only, no credential read."""
        return self._call(_ops.lookup(user_id))

    def list_sessions(
        self,
        *,
        page_size: int = 100,
        include_inactive: bool = False,
        is_authorized: Optional[bool] = None,
        user_id: Optional[str] = None,
    ) -> Iterator[SessionInfo]:
        """Every session (metadata), fetched a page at a time as the iterator goes."""
        cursor: Optional[str] = None
        while True:
            page, cursor = self._call(
                _ops.list_page(
                    limit=page_size,
                    cursor=cursor,
                    include_inactive=include_inactive,
                    is_authorized=is_authorized,
                    user_id=user_id,
                )
            )
            yield from page
            if not cursor or not page:
                return

    def patch_session(self, session_id: str, *, if_match: Any = None, **fields: Any) -> SessionInfo:
        """Change non-secret fields; ``None`` clears ``username`` / ``last_seen_at``."""
        return self._call(_ops.patch(session_id, fields, if_match=if_match))

    def deactivate_session(
        self, session_id: str, *, purge: bool = False, if_match: Any = None
    ) -> None:
        """Deactivate (idempotent); ``purge=True`` deletes the row."""
        self._call(_ops.deactivate(session_id, purge=purge, if_match=if_match))

    # -- the blob -----------------------------------------------------------

    def get_blob(self, session_id: str) -> Optional[Blob]:
        """The session's MTProto blob, or ``None`` when none is stored."""
        return self._call(_ops.get_blob(session_id))

    def put_blob(
        self,
        session_id: str,
        data: bytes,
        *,
        lease_fence: Optional[int] = None,
        if_match: Any = None,
    ) -> Optional[str]:
        """Replace the blob; returns the new ETag."""
        return self._call(_ops.put_blob(session_id, data, lease_fence=lease_fence, if_match=if_match))

    def delete_blob(
        self, session_id: str, *, lease_fence: Optional[int] = None, if_match: Any = None
    ) -> Optional[str]:
        """Clear the blob (Telethon's and Pyrogram's ``log_out`` do)."""
        return self._call(_ops.delete_blob(session_id, lease_fence=lease_fence, if_match=if_match))

    # -- leases -------------------------------------------------------------

    def take_lease(self, session_id: str, holder: str, ttl_seconds: int = 60) -> Lease:
        """Take (or, for the same holder, renew) the lease: :class:`LeaseHeld` when another has it."""
        return self._call(_ops.take_lease(session_id, holder, ttl_seconds))

    def renew_lease(self, lease: Lease, ttl_seconds: int = 60) -> Lease:
        """Renew ``lease`` under its fence; :class:`StaleLease` when it is no longer live.

        Unlike taking the lease again, this never re-takes a lapsed lease
        under a new fence: a holder whose lease lapsed must reload first.
        """
        return _renewed_one(lease, self.renew_leases(lease.holder, {lease.session_id: lease.fence}, ttl_seconds))

    def renew_leases(
        self, holder: str, fences: Mapping[str, int], ttl_seconds: int = 60
    ) -> Renewed:
        """Renew many leases of one holder in one request (``POST /leases/renew``)."""
        return self._call(_ops.renew_leases(holder, fences, ttl_seconds))

    def get_lease(self, session_id: str) -> Optional[Lease]:
        """The live lease, or ``None``."""
        return self._call(_ops.get_lease(session_id))

    def release_lease(self, lease: Lease) -> None:
        """Release; :class:`StaleLease` when it is no longer this holder's with this fence."""
        self._call(_ops.release_lease(lease.session_id, lease.holder, lease.fence))


class AsyncClient:
    """The asyncio twin of :class:`Client` (same arguments, same methods)."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        *,
        token: Optional[str] = None,
        timeout: float = 30.0,
        verify: Any = True,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        options = _http_options(base_url, token, timeout, verify, transport)
        self.base_url: str = options["base_url"]
        self._http = httpx.AsyncClient(**options)

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r})"

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, op: Op) -> Any:
        try:
            r = await self._http.request(**_request(op))
        except httpx.HTTPError as err:
            raise _transport_error(op, err) from None
        return _finish(op, Answer(r.status_code, r.headers, r.content))

    async def upsert_session(self, **fields: Any) -> SessionInfo:
        return await self._call(_ops.upsert(**fields))

    async def create_session(self, **fields: Any) -> SessionInfo:
        return await self._call(_ops.upsert(if_none_match="*", **fields))

    async def get_credentials(self, session_id: str) -> Credentials:
        return await self._call(_ops.credentials(session_id))

    async def get_credentials_by_user(self, user_id: str) -> Credentials:
        """The session of a ``user_id`` with its decrypted credentials (an audited read)."""
        return await self._call(_ops.credentials(user_id, by_user=True))

    async def reactivate_session(self, session_id: str) -> SessionInfo:
        """Make a deactivated session active again (audited)."""
        return await self._call(_ops.reactivate(session_id))

    async def break_lease(self, session_id: str) -> Lease:
        """Break whatever lease the session has (``admin``); the next take gets a new fence."""
        return await self._call(_ops.break_lease(session_id))

    async def find_session(self, user_id: str) -> SessionInfo:
        return await self._call(_ops.lookup(user_id))

    async def list_sessions(
        self,
        *,
        page_size: int = 100,
        include_inactive: bool = False,
        is_authorized: Optional[bool] = None,
        user_id: Optional[str] = None,
    ) -> AsyncIterator[SessionInfo]:
        cursor: Optional[str] = None
        while True:
            page, cursor = await self._call(
                _ops.list_page(
                    limit=page_size,
                    cursor=cursor,
                    include_inactive=include_inactive,
                    is_authorized=is_authorized,
                    user_id=user_id,
                )
            )
            for item in page:
                yield item
            if not cursor or not page:
                return

    async def patch_session(
        self, session_id: str, *, if_match: Any = None, **fields: Any
    ) -> SessionInfo:
        return await self._call(_ops.patch(session_id, fields, if_match=if_match))

    async def deactivate_session(
        self, session_id: str, *, purge: bool = False, if_match: Any = None
    ) -> None:
        await self._call(_ops.deactivate(session_id, purge=purge, if_match=if_match))

    async def get_blob(self, session_id: str) -> Optional[Blob]:
        return await self._call(_ops.get_blob(session_id))

    async def put_blob(
        self,
        session_id: str,
        data: bytes,
        *,
        lease_fence: Optional[int] = None,
        if_match: Any = None,
    ) -> Optional[str]:
        return await self._call(
            _ops.put_blob(session_id, data, lease_fence=lease_fence, if_match=if_match)
        )

    async def delete_blob(
        self, session_id: str, *, lease_fence: Optional[int] = None, if_match: Any = None
    ) -> Optional[str]:
        return await self._call(
            _ops.delete_blob(session_id, lease_fence=lease_fence, if_match=if_match)
        )

    async def take_lease(self, session_id: str, holder: str, ttl_seconds: int = 60) -> Lease:
        return await self._call(_ops.take_lease(session_id, holder, ttl_seconds))

    async def renew_lease(self, lease: Lease, ttl_seconds: int = 60) -> Lease:
        return _renewed_one(
            lease,
            await self.renew_leases(lease.holder, {lease.session_id: lease.fence}, ttl_seconds),
        )

    async def renew_leases(
        self, holder: str, fences: Mapping[str, int], ttl_seconds: int = 60
    ) -> Renewed:
        return await self._call(_ops.renew_leases(holder, fences, ttl_seconds))

    async def get_lease(self, session_id: str) -> Optional[Lease]:
        return await self._call(_ops.get_lease(session_id))

    async def release_lease(self, lease: Lease) -> None:
        await self._call(_ops.release_lease(lease.session_id, lease.holder, lease.fence))


def _renewed_one(lease: Lease, answer: Renewed) -> Lease:
    for renewed in answer.renewed:
        if renewed.session_id == lease.session_id:
            return renewed
    raise StaleLease(
        409,
        "stale_lease",
        f"the lease on {lease.session_id} is no longer live under fence {lease.fence}"
        " (expired, broken, released or taken over); reload before writing",
    )
