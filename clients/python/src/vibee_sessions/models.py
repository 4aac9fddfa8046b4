"""What the API returns, parsed once into plain types.

Secrets (``api_hash``, ``phone``, the blob) never appear in a ``repr``: a
traceback, a log line or a debugger's variable view shows their length only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional


def _quoted_etag(value: Optional[str]) -> Optional[str]:
    return value or None


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    """A session's metadata (never a credential)."""

    user_id: str
    session_id: str
    api_id: int
    is_active: bool
    is_authorized: bool
    version: Optional[int]
    username: Optional[str] = None
    has_session_data: bool = False
    has_phone: bool = False
    digital_twin_enabled: bool = False
    auto_reply_enabled: bool = False
    target_chats: List[Any] = dataclasses.field(default_factory=list)
    last_seen_at: Optional[str] = None
    created_at: Optional[str] = None
    updated_at: Optional[str] = None
    #: The ``ETag`` of the answer (``"<version>"``), for ``if_match=``.
    etag: Optional[str] = None
    #: The live lease, in a listing (``None``: nobody holds it, or not listed).
    lease: Optional["Lease"] = None
    #: Every field of the answer, including ones this version does not know.
    raw: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Dict[str, Any], etag: Optional[str] = None) -> "SessionInfo":
        version = body.get("version")
        if etag is None and isinstance(version, int):
            etag = f'"{version}"'
        meta = {k: v for k, v in body.items() if k not in ("api_hash", "phone", "session_data")}
        return cls(
            user_id=body["user_id"],
            session_id=body["session_id"],
            api_id=int(body["api_id"]),
            is_active=bool(body.get("is_active", True)),
            is_authorized=bool(body.get("is_authorized", False)),
            version=version if isinstance(version, int) else None,
            username=body.get("username"),
            has_session_data=bool(body.get("has_session_data", False)),
            has_phone=bool(body.get("has_phone", False)),
            digital_twin_enabled=bool(body.get("digital_twin_enabled", False)),
            auto_reply_enabled=bool(body.get("auto_reply_enabled", False)),
            target_chats=list(body.get("target_chats") or []),
            last_seen_at=body.get("last_seen_at"),
            created_at=body.get("created_at"),
            updated_at=body.get("updated_at"),
            etag=_quoted_etag(etag),
            lease=Lease.from_json(body["lease"]) if isinstance(body.get("lease"), dict) else None,
            raw=meta,
        )


class Secret:
    """A secret value whose ``repr`` and ``str`` show nothing of it."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def reveal(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        n = len(self._value) if self._value is not None else 0
        return f"<secret, {n} {'bytes' if isinstance(self._value, bytes) else 'chars'}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value or b"")))


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A session with its decrypted credentials (an audited read)."""

    session: SessionInfo
    api_hash: Secret
    phone: Optional[Secret]
    session_data: Optional[Secret]


@dataclasses.dataclass(frozen=True)
class Lease:
    """A live lease: who holds a session, with which fence, until when."""

    session_id: str
    holder: str
    fence: int
    expires_at: str
    raw: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Dict[str, Any]) -> "Lease":
        return cls(
            session_id=body["session_id"],
            holder=body["holder"],
            fence=int(body["fence"]),
            expires_at=str(body["expires_at"]),
            raw=dict(body),
        )


@dataclasses.dataclass(frozen=True)
class Blob:
    """A session blob and the ETag of the session row it was read from."""

    data: Secret
    etag: Optional[str] = None
