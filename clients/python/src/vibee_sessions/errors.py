"""Exceptions, one per answer a program may want to tell apart.

Every error the server sends is ``{"error", "code", "field"?}``; an
:class:`ApiError` carries all three, the HTTP status and the request id, and
its subclass is chosen by ``code`` first (so ``LeaseHeld`` and ``StaleLease``
are told apart although both are 409), then by status. No error message ever
holds a token, a credential or a blob: the server never echoes them, and this
package never puts request bodies into messages.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type


class VibeeError(Exception):
    """Base of every exception this package raises."""


class ConfigError(VibeeError):
    """The client cannot be set up: no URL, no token, a bad identifier."""


class SessionClosed(VibeeError):
    """An adapter was closed (its client disconnected); make a new one to connect again."""


class TransportError(VibeeError):
    """The server could not be reached, or the connection broke."""


class ApiError(VibeeError):
    """The server answered with an error."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: Optional[str] = None,
        *,
        request_id: Optional[str] = None,
        body: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.status = status
        self.code = code
        self.field = field
        self.message = message
        self.request_id = request_id
        #: The whole error body (metadata only: the server never echoes secrets).
        self.body: Dict[str, Any] = dict(body or {})
        text = f"{status} {code}: {message}"
        if field:
            text += f" (field: {field})"
        super().__init__(text)


class BadRequest(ApiError):
    """400: a malformed body or query string."""


class Unauthorized(ApiError):
    """401: no, bad, unknown or revoked token."""


class Forbidden(ApiError):
    """403: the token lacks a scope (``required_scope``)."""

    @property
    def required_scope(self) -> Optional[str]:
        return self.body.get("required_scope")


class NotFound(ApiError):
    """404: no such session or route."""


class NoSessionData(NotFound):
    """404 ``no_session_data``: the session has no blob stored."""


class NoLease(NotFound):
    """404 ``no_lease``: nobody holds the session's lease."""


class Conflict(ApiError):
    """409."""


class LeaseHeld(Conflict):
    """409 ``lease_held``: another holder has a live lease on the session."""

    @property
    def holder(self) -> Optional[str]:
        return self.body.get("holder")

    @property
    def expires_at(self) -> Optional[str]:
        return self.body.get("expires_at")


class StaleLease(Conflict):
    """409 ``stale_lease``: the lease this writer holds is no longer the live one.

    Also raised by the adapters, without a server round trip, once their
    background renewal found the lease lost: they then write nothing.
    """


class LeaseRequired(Conflict):
    """409 ``lease_required``: a live lease exists, and the write carried no fence."""


class SessionInactive(Conflict):
    """409 ``session_inactive``: the session is deactivated (reactivate it first)."""


class PreconditionFailed(ApiError):
    """412 ``precondition_failed``: ``If-Match`` / ``If-None-Match`` did not hold."""


class PayloadTooLarge(ApiError):
    """413."""


class UnsupportedMediaType(ApiError):
    """415."""


class InvalidField(ApiError):
    """422 ``invalid_field``: ``field`` names the field at fault."""


class ServerError(ApiError):
    """5xx: ``integrity_error``, ``internal_error``."""


class Unavailable(ServerError):
    """503 ``unavailable`` / ``timeout``: the database is down, or the request took too long."""


_BY_CODE: Dict[str, Type[ApiError]] = {
    "lease_held": LeaseHeld,
    "stale_lease": StaleLease,
    "lease_required": LeaseRequired,
    "session_inactive": SessionInactive,
    "no_lease": NoLease,
    "no_session_data": NoSessionData,
    "precondition_failed": PreconditionFailed,
    "invalid_field": InvalidField,
}

_BY_STATUS: Dict[int, Type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidField,
    503: Unavailable,
}


def error_for(
    status: int, body: Optional[Dict[str, Any]], request_id: Optional[str] = None
) -> ApiError:
    """The exception for an error answer (``body`` is its JSON, when it was JSON)."""
    body = body if isinstance(body, dict) else {}
    code = str(body.get("code") or f"http_{status}")
    message = str(body.get("error") or f"HTTP {status}")
    field = body.get("field")
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    return cls(
        status,
        code,
        message,
        field if isinstance(field, str) else None,
        request_id=request_id,
        body=body,
    )
