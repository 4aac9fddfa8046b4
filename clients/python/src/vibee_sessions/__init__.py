"""vibee-sessions: a client for the store, and Telethon/Pyrogram session storage in it.

* :class:`Client` / :class:`AsyncClient`: the REST API (sessions, blobs, leases).
* :mod:`vibee_sessions.telethon`: ``VibeeSession``, a Telethon ``Session``.
* :mod:`vibee_sessions.pyrogram`: ``VibeeStorage``, a Pyrogram ``Storage``.
* ``vibee-sessions-py import ...`` / ``python -m vibee_sessions import ...``:
  move ``.session`` files and session strings into the store.
"""

from .client import AsyncClient, Client
from .errors import (
    ApiError,
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidField,
    LeaseHeld,
    LeaseRequired,
    NoLease,
    NoSessionData,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServerError,
    SessionClosed,
    SessionInactive,
    StaleLease,
    TransportError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    VibeeError,
)
from ._ops import Renewed
from .models import Blob, Credentials, Lease, Secret, SessionInfo

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "ApiError",
    "BadRequest",
    "Blob",
    "Client",
    "ConfigError",
    "Conflict",
    "Credentials",
    "Forbidden",
    "InvalidField",
    "Lease",
    "LeaseHeld",
    "LeaseRequired",
    "NoLease",
    "NoSessionData",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "Renewed",
    "Secret",
    "ServerError",
    "SessionClosed",
    "SessionInactive",
    "SessionInfo",
    "StaleLease",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "VibeeError",
]
