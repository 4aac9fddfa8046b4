"""The two session-string formats the store keeps as blobs, without the libraries.

* Telethon's ``StringSession``: ``"1"`` + urlsafe base64 (padded) of
  ``>B{4|16}sH256s`` = dc_id, packed IPv4/IPv6 address, port, auth key.
* Pyrogram's session string: urlsafe base64 (unpadded) of ``>BI?256sQ?`` =
  dc_id, api_id, test_mode, auth key, user_id, is_bot. Pyrogram's two older
  layouts (without api_id) are read too.

The import command needs neither library installed; the tests check these
against the real ``StringSession`` and ``MemoryStorage``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import struct
from typing import Optional

TELETHON = "telethon"
PYROGRAM = "pyrogram"

_TELETHON_VERSION = "1"
_TELETHON_LAYOUT = ">B{}sH256s"
_PYROGRAM_LAYOUT = ">BI?256sQ?"
_PYROGRAM_OLD = {351: ">B?256sI?", 356: ">B?256sQ?"}
_PYROGRAM_LEN = 362  # 271 bytes, unpadded base64


class FormatError(ValueError):
    """A session string or file that does not parse; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def _key_repr(key: bytes) -> str:
    return f"<auth key, {len(key)} bytes>"


@dataclasses.dataclass(frozen=True)
class TelethonState:
    dc_id: int
    server_address: str
    port: int
    auth_key: bytes = dataclasses.field(repr=False)

    def __repr__(self) -> str:
        return (
            f"TelethonState(dc_id={self.dc_id}, server_address={self.server_address!r}, "
            f"port={self.port}, auth_key={_key_repr(self.auth_key)})"
        )

    def encode(self) -> str:
        check_auth_key(self.auth_key)
        try:
            ip = ipaddress.ip_address(self.server_address).packed
        except ValueError:
            raise FormatError("server_address", "must be an IPv4 or IPv6 address") from None
        if not 0 < self.port < 65536:
            raise FormatError("port", "must be 1-65535")
        if not 0 < self.dc_id < 256:
            raise FormatError("dc_id", "must be 1-255")
        packed = struct.pack(
            _TELETHON_LAYOUT.format(len(ip)), self.dc_id, ip, self.port, self.auth_key
        )
        return _TELETHON_VERSION + base64.urlsafe_b64encode(packed).decode("ascii")


@dataclasses.dataclass(frozen=True)
class PyrogramState:
    dc_id: int
    api_id: Optional[int]
    test_mode: bool
    auth_key: bytes = dataclasses.field(repr=False)
    user_id: int = 0
    is_bot: bool = False

    def __repr__(self) -> str:
        return (
            f"PyrogramState(dc_id={self.dc_id}, api_id={self.api_id}, test_mode={self.test_mode}, "
            f"auth_key={_key_repr(self.auth_key)}, user_id={self.user_id}, is_bot={self.is_bot})"
        )

    def encode(self) -> str:
        check_auth_key(self.auth_key)
        if not self.api_id or self.api_id <= 0:
            raise FormatError("api_id", "is required for Pyrogram's session string format")
        if not self.user_id:
            raise FormatError("user_id", "is required for Pyrogram's session string format")
        if not 0 < self.dc_id < 256:
            raise FormatError("dc_id", "must be 1-255")
        packed = struct.pack(
            _PYROGRAM_LAYOUT,
            self.dc_id,
            self.api_id,
            bool(self.test_mode),
            self.auth_key,
            self.user_id,
            bool(self.is_bot),
        )
        return base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def check_auth_key(key: Optional[bytes]) -> None:
    if not isinstance(key, (bytes, bytearray)) or len(key) != 256:
        raise FormatError("auth_key", "must be 256 bytes")
    if not any(key):
        raise FormatError("auth_key", "is all zeroes (the session was never authorized)")


def _b64(text: str, field: str, size: int) -> bytes:
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(field, "is not urlsafe base64") from None
    if len(raw) != size:
        raise FormatError(field, f"decodes to {len(raw)} bytes, not {size}")
    return raw


def decode_telethon(text: str) -> TelethonState:
    text = text.strip()
    if not text.startswith(_TELETHON_VERSION):
        raise FormatError("session_string", "is not a Telethon StringSession (version 1)")
    body = text[1:]
    ip_len = 4 if len(body) == 352 else 16 if len(body) == 368 else 0
    if not ip_len:
        raise FormatError("session_string", f"has the wrong length for a Telethon StringSession ({len(text)} characters)")
    raw = _b64(body, "session_string", struct.calcsize(_TELETHON_LAYOUT.format(ip_len)))
    dc_id, ip, port, key = struct.unpack(_TELETHON_LAYOUT.format(ip_len), raw)
    state = TelethonState(dc_id, ipaddress.ip_address(ip).compressed, port, key)
    check_auth_key(state.auth_key)
    return state


def decode_pyrogram(text: str) -> PyrogramState:
    text = text.strip()
    if len(text) in _PYROGRAM_OLD:
        layout = _PYROGRAM_OLD[len(text)]
        raw = _b64(text, "session_string", struct.calcsize(layout))
        dc_id, test_mode, key, user_id, is_bot = struct.unpack(layout, raw)
        state = PyrogramState(dc_id, None, test_mode, key, user_id, is_bot)
    elif len(text) == _PYROGRAM_LEN:
        raw = _b64(text, "session_string", struct.calcsize(_PYROGRAM_LAYOUT))
        dc_id, api_id, test_mode, key, user_id, is_bot = struct.unpack(_PYROGRAM_LAYOUT, raw)
        state = PyrogramState(dc_id, api_id, test_mode, key, user_id, is_bot)
    else:
        raise FormatError("session_string", f"has the wrong length for a Pyrogram session string ({len(text)} characters)")
    check_auth_key(state.auth_key)
    return state


def detect(blob: bytes) -> Optional[str]:
    """Which library's format a stored blob is in, or ``None``."""
    try:
        text = blob.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    for name, decode in ((TELETHON, decode_telethon), (PYROGRAM, decode_pyrogram)):
        try:
            decode(text)
            return name
        except (FormatError, struct.error):
            continue
    return None
