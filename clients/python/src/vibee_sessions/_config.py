"""Where the client finds the server, its token and its holder name.

The token comes from an argument, ``VIBEE_TOKEN`` or ``VIBEE_TOKEN_FILE`` and
nowhere else: never from the URL (a URL ends up in logs, proxies' access
logs and ``ps``), so a base URL with user info or a query is refused.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.parse
from typing import Mapping, Optional

from .errors import ConfigError

#: The identifier rule of the server (user_id, session_id, holder, token names).
IDENTIFIER = re.compile(r"^[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]{0,127}$")


def _env(env: Optional[Mapping[str, str]]) -> Mapping[str, str]:
    return os.environ if env is None else env


def base_url(value: Optional[str], env: Optional[Mapping[str, str]] = None) -> str:
    """The API's base URL (scheme, host, port, optional path prefix)."""
    url = value or _env(env).get("VIBEE_API_URL", "")
    if not url:
        raise ConfigError(
            "no server URL: pass base_url= or set VIBEE_API_URL (e.g. http://127.0.0.1:8080)"
        )
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("the server URL must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "the server URL must not hold credentials; pass token= or set VIBEE_TOKEN / VIBEE_TOKEN_FILE"
        )
    if parts.query or parts.fragment:
        raise ConfigError("the server URL must have no query or fragment")
    path = parts.path.rstrip("/")
    if path.endswith("/api/v1"):
        path = path[: -len("/api/v1")]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def token(value: Optional[str], env: Optional[Mapping[str, str]] = None) -> str:
    """The bearer token: the argument, else VIBEE_TOKEN, else VIBEE_TOKEN_FILE."""
    e = _env(env)
    if value:
        tok = value
    elif e.get("VIBEE_TOKEN"):
        tok = e["VIBEE_TOKEN"]
    elif e.get("VIBEE_TOKEN_FILE"):
        path = e["VIBEE_TOKEN_FILE"]
        try:
            with open(path, encoding="utf-8") as f:
                tok = f.read()
        except OSError as err:
            raise ConfigError(f"cannot read VIBEE_TOKEN_FILE {path}: {err.strerror}") from None
    else:
        raise ConfigError("no API token: pass token= or set VIBEE_TOKEN or VIBEE_TOKEN_FILE")
    tok = tok.strip()
    if not tok or any(c.isspace() or not c.isprintable() for c in tok):
        raise ConfigError("the API token is empty or holds whitespace or control characters")
    return tok


def holder(value: Optional[str], env: Optional[Mapping[str, str]] = None) -> str:
    """The lease holder: the argument, else VIBEE_LEASE_HOLDER, else
    VIBEE_HOLDER, else <hostname>-<pid>.

    ``vibee-sessions boot --exec`` puts its own holder name in the agent's
    VIBEE_LEASE_HOLDER: an adapter in that agent then finds the lease held
    under its name and adopts it instead of competing with its supervisor.
    The last default matches boot's; characters the server's identifier rule
    refuses are replaced with ``-``.
    """
    e = _env(env)
    name = value or e.get("VIBEE_LEASE_HOLDER") or e.get("VIBEE_HOLDER") or ""
    if not name:
        host = re.sub(r"[^A-Za-z0-9_.:@-]", "-", socket.gethostname()) or "host"
        name = f"{host.lstrip('.')}-{os.getpid()}"[-128:]
    check_identifier("holder", name)
    return name


def check_identifier(field: str, value: str) -> None:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ConfigError(
            f"{field} must be 1-128 characters of letters, digits and _ - . : @ (not starting with .)"
        )
