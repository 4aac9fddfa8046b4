"""The API's operations, each as a request to send and a parser of its answer.

Kept free of I/O so that :class:`~vibee_sessions.Client` and
:class:`~vibee_sessions.AsyncClient` share every detail of the protocol and
differ only in how they send.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import urllib.parse
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Type

from ._config import check_identifier
from .errors import NoLease, NoSessionData, error_for
from .models import Blob, Credentials, Lease, Secret, SessionInfo

API = "/api/v1"

# A field left out of a request (``None`` means JSON null where that clears).
UNSET: Any = object()


@dataclasses.dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclasses.dataclass
class Op:
    method: str
    path: str
    parse: Callable[[Answer], Any]
    params: Optional[Dict[str, str]] = None
    headers: Dict[str, str] = dataclasses.field(default_factory=dict)
    json_body: Any = None
    content: Optional[bytes] = None
    #: Errors that are an answer (``None``), not a failure: a blob or lease that is not there.
    absent: Tuple[Type[BaseException], ...] = ()


def seg(field: str, value: str) -> str:
    check_identifier(field, value)
    return urllib.parse.quote(value, safe="")


def raise_for(answer: Answer) -> None:
    if answer.status < 400:
        return
    try:
        body = answer.json()
    except ValueError:
        body = None
    raise error_for(answer.status, body, answer.headers.get("x-request-id"))


def _conditions(
    headers: Dict[str, str],
    *,
    if_match: Any = None,
    if_none_match: Optional[str] = None,
    lease_fence: Optional[int] = None,
) -> Dict[str, str]:
    if if_match is not None:
        headers["If-Match"] = etag_of(if_match)
    if if_none_match is not None:
        headers["If-None-Match"] = if_none_match
    if lease_fence is not None:
        headers["Lease-Fence"] = str(int(lease_fence))
    return headers


def etag_of(value: Any) -> str:
    """An ``If-Match`` value from an ETag string, a version number or a SessionInfo."""
    if isinstance(value, SessionInfo):
        if value.etag is None:
            raise ValueError("this SessionInfo carries no ETag")
        return value.etag
    if isinstance(value, int):
        return f'"{value}"'
    text = str(value)
    if text == "*" or text.startswith('"') or text.startswith("W/"):
        return text
    return f'"{text}"'


def _session(answer: Answer) -> SessionInfo:
    return SessionInfo.from_json(answer.json(), answer.headers.get("etag"))


def _nothing(answer: Answer) -> None:
    return None


def _etag(answer: Answer) -> Optional[str]:
    return answer.headers.get("etag")


def upsert(
    *,
    user_id: str,
    api_id: int,
    api_hash: str,
    session_id: Optional[str] = None,
    phone: Optional[str] = None,
    username: Optional[str] = None,
    session_data: Optional[bytes] = None,
    is_authorized: Optional[bool] = None,
    digital_twin_enabled: Optional[bool] = None,
    auto_reply_enabled: Optional[bool] = None,
    target_chats: Optional[list] = None,
    if_match: Any = None,
    if_none_match: Optional[str] = None,
    lease_fence: Optional[int] = None,
) -> Op:
    check_identifier("user_id", user_id)
    body: Dict[str, Any] = {"user_id": user_id, "api_id": int(api_id), "api_hash": api_hash}
    if session_id is not None:
        check_identifier("session_id", session_id)
        body["session_id"] = session_id
    for name, value in (
        ("phone", phone),
        ("username", username),
        ("is_authorized", is_authorized),
        ("digital_twin_enabled", digital_twin_enabled),
        ("auto_reply_enabled", auto_reply_enabled),
        ("target_chats", target_chats),
    ):
        if value is not None:
            body[name] = value
    if session_data is not None:
        body["session_data"] = base64.b64encode(bytes(session_data)).decode("ascii")
    headers = _conditions(
        {},
        if_match=if_match,
        if_none_match=if_none_match,
        lease_fence=lease_fence,
    )
    return Op("POST", f"{API}/sessions", _session, headers=headers, json_body=body)


def credentials(session_id: str, *, by_user: bool = False) -> Op:
    def parse(answer: Answer) -> Credentials:
        body = answer.json()
        data = body.get("session_data")
        return Credentials(
            session=SessionInfo.from_json(body, answer.headers.get("etag")),
            api_hash=Secret(body.get("api_hash")),
            phone=Secret(body["phone"]) if body.get("phone") is not None else None,
            session_data=Secret(_b64decode(data)) if data is not None else None,
        )

    if by_user:
        return Op("GET", f"{API}/users/{seg('user_id', session_id)}/session", parse)
    return Op("GET", f"{API}/sessions/{seg('session_id', session_id)}", parse)


def _b64decode(text: str) -> bytes:
    text = text.strip()
    text += "=" * (-len(text) % 4)
    alt = b"-_" if ("-" in text or "_" in text) else None
    return base64.b64decode(text, altchars=alt, validate=True)


def lookup(user_id: str) -> Op:
    return Op("GET", f"{API}/users/{seg('user_id', user_id)}", _session)


def list_page(
    *,
    limit: int = 100,
    cursor: Optional[str] = None,
    include_inactive: bool = False,
    is_authorized: Optional[bool] = None,
    user_id: Optional[str] = None,
) -> Op:
    params = {"limit": str(int(limit))}
    if cursor is not None:
        params["cursor"] = cursor
    if include_inactive:
        params["include_inactive"] = "true"
    if is_authorized is not None:
        params["is_authorized"] = "true" if is_authorized else "false"
    if user_id is not None:
        params["user_id"] = user_id

    def parse(answer: Answer) -> Tuple[list, Optional[str]]:
        body = answer.json()
        return [SessionInfo.from_json(s) for s in body["sessions"]], body.get("next_cursor")

    return Op("GET", f"{API}/sessions", parse, params=params)


def patch(session_id: str, fields: Dict[str, Any], *, if_match: Any = None) -> Op:
    allowed = {
        "username",
        "is_authorized",
        "digital_twin_enabled",
        "auto_reply_enabled",
        "target_chats",
        "last_seen_at",
        "is_active",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise TypeError(f"patch_session() got unknown fields: {', '.join(sorted(unknown))}")
    body = {k: v for k, v in fields.items() if v is not UNSET}
    headers = _conditions({}, if_match=if_match)
    return Op(
        "PATCH",
        f"{API}/sessions/{seg('session_id', session_id)}",
        _session,
        headers=headers,
        json_body=body,
    )


def deactivate(session_id: str, *, purge: bool = False, if_match: Any = None) -> Op:
    headers = _conditions({}, if_match=if_match)
    return Op(
        "DELETE",
        f"{API}/sessions/{seg('session_id', session_id)}",
        _nothing,
        params={"purge": "true"} if purge else None,
        headers=headers,
    )


def reactivate(session_id: str) -> Op:
    return Op("POST", f"{API}/sessions/{seg('session_id', session_id)}/reactivate", _session)


def get_blob(session_id: str) -> Op:
    def parse(answer: Answer) -> Blob:
        return Blob(Secret(answer.body), answer.headers.get("etag"))

    return Op(
        "GET",
        f"{API}/sessions/{seg('session_id', session_id)}/data",
        parse,
        headers={"Accept": "application/octet-stream"},
        absent=(NoSessionData,),
    )


def put_blob(
    session_id: str, data: bytes, *, lease_fence: Optional[int] = None, if_match: Any = None
) -> Op:
    if not data:
        raise ValueError("a session blob cannot be empty; use delete_blob() to clear it")
    headers = _conditions(
        {"Content-Type": "application/octet-stream"},
        if_match=if_match,
        lease_fence=lease_fence,
    )
    return Op(
        "PUT",
        f"{API}/sessions/{seg('session_id', session_id)}/data",
        _etag,
        headers=headers,
        content=bytes(data),
    )


def delete_blob(
    session_id: str, *, lease_fence: Optional[int] = None, if_match: Any = None
) -> Op:
    headers = _conditions(
        {}, if_match=if_match, lease_fence=lease_fence
    )
    return Op(
        "DELETE",
        f"{API}/sessions/{seg('session_id', session_id)}/data",
        _etag,
        headers=headers,
        absent=(NoSessionData,),
    )


def _lease(answer: Answer) -> Lease:
    return Lease.from_json(answer.json())


def take_lease(session_id: str, holder: str, ttl_seconds: int) -> Op:
    check_identifier("holder", holder)
    return Op(
        "POST",
        f"{API}/sessions/{seg('session_id', session_id)}/lease",
        _lease,
        json_body={"holder": holder, "ttl_seconds": int(ttl_seconds)},
    )


def get_lease(session_id: str) -> Op:
    return Op(
        "GET", f"{API}/sessions/{seg('session_id', session_id)}/lease", _lease, absent=(NoLease,)
    )


def release_lease(session_id: str, holder: str, fence: int) -> Op:
    check_identifier("holder", holder)
    return Op(
        "DELETE",
        f"{API}/sessions/{seg('session_id', session_id)}/lease",
        _nothing,
        params={"holder": holder, "fence": str(int(fence))},
    )


def break_lease(session_id: str) -> Op:
    return Op(
        "POST", f"{API}/sessions/{seg('session_id', session_id)}/lease/break", _lease, json_body={}
    )


@dataclasses.dataclass(frozen=True)
class Renewed:
    """The answer of a batched renewal."""

    #: Leases renewed, with their new expiry.
    renewed: List[Lease]
    #: Sessions named but not renewed (expired, broken, released, or the
    #: fence moved on): stop using them.
    lost: List[str]


def _renewed(answer: Answer) -> Renewed:
    body = answer.json()
    return Renewed(
        [Lease.from_json(x) for x in body.get("renewed", [])], list(body.get("lost", []))
    )


def renew_leases(holder: str, fences: Mapping[str, int], ttl_seconds: int) -> Op:
    check_identifier("holder", holder)
    for sid in fences:
        check_identifier("session_id", sid)
    return Op(
        "POST",
        f"{API}/leases/renew",
        _renewed,
        json_body={
            "holder": holder,
            "ttl_seconds": int(ttl_seconds),
            "fences": {sid: int(f) for sid, f in fences.items()},
        },
    )
