"""The harness: a real ``vibee-sessions serve`` on a real PostgreSQL.

Like the Rust tests (tests/common), each test gets a database of its own,
copied from a template that already holds the migrations (made once per
migrations fingerprint with ``vibee-sessions migrate``) and dropped after the
test. Databases are named ``vs_test_<pid>_...`` so that scripts/test.sh
drops what a killed run left behind. PostgreSQL is driven with ``psql``.

Environment: ``VIBEE_SESSIONS_BIN`` (default: target/debug/vibee-sessions of
this checkout) and ``TEST_DATABASE_URL`` (default
postgres://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[3]
ADMIN_URL = os.environ.get("TEST_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
BIN = os.environ.get("VIBEE_SESSIONS_BIN") or str(ROOT / "target" / "debug" / "vibee-sessions")

ALL_SCOPES = "sessions:read,sessions:write,sessions:list"


def url_with_db(url: str, db: str) -> str:
    return re.sub(r"^([a-z]+://[^/?]*)(/[^?]*)?", lambda m: f"{m.group(1)}/{db}", url, count=1)


def psql(sql: str, url: str = ADMIN_URL) -> str:
    out = subprocess.run(
        ["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()}")
    return out.stdout.strip()


def run_bin(args: List[str], env: Dict[str, str], stdin: Optional[str] = None) -> str:
    full = {"PATH": os.environ.get("PATH", ""), **env}
    out = subprocess.run([BIN, *args], env=full, capture_output=True, text=True, input=stdin)
    if out.returncode != 0:
        raise RuntimeError(f"vibee-sessions {args[0]} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def migrations_fingerprint() -> str:
    h = hashlib.sha256()
    for path in sorted((ROOT / "migrations").rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


@pytest.fixture(scope="session", autouse=True)
def _preconditions() -> None:
    if not os.access(BIN, os.X_OK):
        pytest.exit(f"{BIN} is not built: run `cargo build` (or scripts/python-clients-test.sh)", 2)
    try:
        psql("SELECT 1")
    except (RuntimeError, FileNotFoundError) as err:
        pytest.exit(f"PostgreSQL at TEST_DATABASE_URL is not reachable: {err}", 2)


@pytest.fixture(scope="session")
def template() -> str:
    name = f"vs_pytemplate_{migrations_fingerprint()}"
    if psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
        building = f"{name}_b{os.getpid()}"
        psql(f"DROP DATABASE IF EXISTS {building} WITH (FORCE)")
        psql(f"CREATE DATABASE {building}")
        run_bin(["migrate"], {"DATABASE_URL": url_with_db(ADMIN_URL, building)})
        try:
            psql(f"ALTER DATABASE {building} RENAME TO {name}")
        except RuntimeError:
            # Another run made it meanwhile.
            psql(f"DROP DATABASE IF EXISTS {building} WITH (FORCE)")
    return name


@pytest.fixture(scope="session")
def master_key() -> str:
    return run_bin(["keygen"], {})


@pytest.fixture
def db(template: str) -> Iterator[str]:
    name = f"vs_test_{os.getpid()}_{uuid.uuid4().hex}"
    for attempt in range(100):
        try:
            psql(f"CREATE DATABASE {name} TEMPLATE {template}")
            break
        except RuntimeError as err:
            if "being accessed by other users" not in str(err) or attempt == 99:
                raise
            time.sleep(0.05)
    try:
        yield url_with_db(ADMIN_URL, name)
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Server:
    """A running ``vibee-sessions serve``, its logs captured."""

    def __init__(self, db_url: str, master_key: str) -> None:
        self.db_url = db_url
        self.env = {"DATABASE_URL": db_url, "MASTER_KEY": master_key}
        self._lines: List[str] = []
        self._ready = threading.Event()
        self.base = ""
        self.proc = subprocess.Popen(
            [BIN, "serve"],
            env={
                "PATH": os.environ.get("PATH", ""),
                **self.env,
                "LISTEN_ADDR": "127.0.0.1:0",
                "RUST_LOG": "info",
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd="/tmp",
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(30):
            self.proc.kill()
            raise RuntimeError("the server did not start:\n" + self.logs())

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)
            m = re.search(r"listening on (\S+?)[\"\s]", line + " ")
            if m and not self._ready.is_set():
                self.base = m.group(1)
                self._ready.set()

    def logs(self) -> str:
        return "".join(self._lines)

    def token(self, name: str, scopes: str = ALL_SCOPES) -> str:
        return run_bin(["token", "create", "--name", name, "--scope", scopes], {"DATABASE_URL": self.db_url})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def server(db: str, master_key: str) -> Iterator[Server]:
    s = Server(db, master_key)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def token(server: Server) -> str:
    return server.token("py-tests")


@pytest.fixture
def client(server: Server, token: str):
    from vibee_sessions import Client

    with Client(server.base, token=token) as c:
        yield c


API_HASH = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def make_session(client):
    """Creates a session row (no blob) and returns its session_id."""

    def make(user_id: str, session_id: Optional[str] = None, api_id: int = 12345) -> str:
        info = client.upsert_session(
            user_id=user_id, api_id=api_id, api_hash=API_HASH, session_id=session_id
        )
        return info.session_id

    return make
