"""Reading what operators have lying around: Telethon and Pyrogram ``.session``
files and session strings, each into one blob in the library's string format.

Files are opened read-only (SQLite ``mode=ro``), never changed. Every
problem raises :class:`SourceError` naming the source and the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sqlite3
from typing import List, Optional

from .formats import (
    PYROGRAM,
    TELETHON,
    FormatError,
    PyrogramState,
    TelethonState,
    decode_pyrogram,
    decode_telethon,
)


class SourceError(Exception):
    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        super().__init__(f"{source}: {field}: {message}")


@dataclasses.dataclass
class Item:
    """One session to import, parsed and checked."""

    source: str  # a path, or "stdin line N"
    library: str  # TELETHON | PYROGRAM
    blob: str = dataclasses.field(repr=False)
    telegram_user_id: Optional[int]
    api_id: Optional[int]
    path: Optional[str] = None
    digest: Optional[str] = None  # sha256 of the file when read
    tenant: Optional[str] = None  # a user_id given with the input (stdin's USER_ID STRING)


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _connect(path: str) -> sqlite3.Connection:
    if not os.path.isfile(path):
        raise SourceError(path, "file", "no such file")
    try:
        conn = sqlite3.connect(f"file:{os.path.abspath(path)}?mode=ro", uri=True)
        conn.execute("select name from sqlite_master").fetchall()
    except sqlite3.DatabaseError as err:
        raise SourceError(path, "file", f"not an SQLite session file ({err})") from None
    return conn


def _columns(conn: sqlite3.Connection, table: str) -> List[str]:
    return [row[1] for row in conn.execute(f"pragma table_info({table})")]


def _kind(columns: List[str]) -> Optional[str]:
    if "server_address" in columns:
        return TELETHON
    if "user_id" in columns and "is_bot" in columns:
        return PYROGRAM
    return None


def read_telethon_file(path: str) -> Item:
    digest = file_digest(path) if os.path.isfile(path) else None
    conn = _connect(path)
    try:
        cols = _columns(conn, "sessions")
        kind = _kind(cols)
        if kind == PYROGRAM:
            raise SourceError(path, "file", "this is a Pyrogram session file: use `import pyrogram`")
        if kind != TELETHON:
            raise SourceError(path, "sessions", "no Telethon sessions table in this file")
        row = conn.execute("select dc_id, server_address, port, auth_key from sessions").fetchone()
        if row is None:
            raise SourceError(path, "sessions", "the file holds no session (never connected)")
        dc_id, address, port, key = row
        user_id = None
        if "entities" in _tables(conn):
            # Telethon records its own user as the entity with id 0 and the
            # user id in the hash column (telegrambaseclient, "as a hack").
            me = conn.execute("select hash from entities where id = 0").fetchone()
            if me and me[0]:
                user_id = int(me[0])
    finally:
        conn.close()
    try:
        blob = TelethonState(int(dc_id or 0), str(address or ""), int(port or 0), bytes(key or b"")).encode()
    except FormatError as err:
        raise _fail(path, err) from None
    return Item(path, TELETHON, blob, user_id, None, path=path, digest=digest)


def _tables(conn: sqlite3.Connection) -> List[str]:
    return [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]


def _api_id(source: str, found: Optional[int], flag: Optional[int]) -> int:
    if found and flag and int(found) != flag:
        raise SourceError(source, "api_id", f"the session holds api_id {found}, --api-id says {flag}")
    api_id = int(found or flag or 0)
    if api_id <= 0:
        raise SourceError(source, "api_id", "the session holds none: pass --api-id")
    return api_id


def _fail(source: str, err: FormatError) -> SourceError:
    return SourceError(source, err.field, str(err).split(": ", 1)[1])


def read_pyrogram_file(path: str, api_id: Optional[int] = None) -> Item:
    digest = file_digest(path) if os.path.isfile(path) else None
    conn = _connect(path)
    try:
        cols = _columns(conn, "sessions")
        kind = _kind(cols)
        if kind == TELETHON:
            raise SourceError(path, "file", "this is a Telethon session file: use `import telethon`")
        if kind != PYROGRAM:
            raise SourceError(path, "sessions", "no Pyrogram sessions table in this file")
        api_col = "api_id" if "api_id" in cols else "null"
        row = conn.execute(
            f"select dc_id, {api_col}, test_mode, auth_key, user_id, is_bot from sessions"
        ).fetchone()
    finally:
        conn.close()
    if row is None:
        raise SourceError(path, "sessions", "the file holds no session")
    dc_id, found_api_id, test_mode, key, user_id, is_bot = row
    if not user_id:
        raise SourceError(path, "user_id", "the session was never signed in (no user_id)")
    state = PyrogramState(
        int(dc_id or 0), _api_id(path, found_api_id, api_id), bool(test_mode),
        bytes(key or b""), int(user_id), bool(is_bot),
    )
    try:
        blob = state.encode()
    except FormatError as err:
        raise _fail(path, err) from None
    return Item(path, PYROGRAM, blob, state.user_id, state.api_id, path=path, digest=digest)


def read_string(source: str, library: str, text: str, api_id: Optional[int] = None) -> Item:
    try:
        if library == TELETHON:
            decode_telethon(text)
            return Item(source, TELETHON, text.strip(), None, None)
        state = decode_pyrogram(text)
        if not state.user_id:
            raise SourceError(source, "user_id", "the session string names no user")
        state = dataclasses.replace(state, api_id=_api_id(source, state.api_id, api_id))
        return Item(source, PYROGRAM, state.encode(), state.user_id, state.api_id)
    except FormatError as err:
        raise _fail(source, err) from None
