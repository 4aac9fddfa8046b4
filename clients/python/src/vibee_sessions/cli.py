"""``vibee-sessions-py``: move Telethon/Pyrogram sessions into the store.

    vibee-sessions-py import telethon FILE.session... --api-id N --api-hash-file F
    vibee-sessions-py import pyrogram FILE.session... --api-hash-file F
    vibee-sessions-py import string --format telethon|pyrogram --api-hash-file F < strings

Everything is read and checked first, with the server asked about each
tenant (is its lease held elsewhere?); only then is anything written. Each
session is written under a lease of its own, read back and compared byte for
byte; ``--shred`` then removes the plaintext file, when it is unchanged since
it was read. Output names ids, never a secret. Exit codes: 0 done, 1 a
write or the server failed, 2 bad usage or input (nothing written).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Dict, List, Optional, Sequence, TextIO

from . import _config
from .client import Client
from .errors import NotFound, PreconditionFailed, VibeeError
from .formats import PYROGRAM, TELETHON
from .shred import shred_file
from .sources import (
    Item,
    SourceError,
    file_digest,
    read_pyrogram_file,
    read_string,
    read_telethon_file,
)

EXIT_FAILED = 1
EXIT_USAGE = 2
HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vibee-sessions-py",
        description="Move Telethon and Pyrogram sessions into vibee-sessions. "
        "The server is --base-url or VIBEE_API_URL; the token VIBEE_TOKEN or VIBEE_TOKEN_FILE "
        "(scopes sessions:read and sessions:write).",
    )
    p.add_argument("--base-url", help="the server (default: VIBEE_API_URL)")
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="import session files or strings")
    kinds = imp.add_subparsers(dest="kind", required=True)
    for kind, what in ((TELETHON, "Telethon"), (PYROGRAM, "Pyrogram")):
        k = kinds.add_parser(kind, help=f"{what} SQLite .session files")
        k.add_argument("files", nargs="+", metavar="FILE.session")
        _common(k)
        k.add_argument(
            "--shred",
            action="store_true",
            help="remove each file (and its SQLite journal) after a verified round trip",
        )
    s = kinds.add_parser(
        "string",
        help="session strings from stdin, one per line: STRING or USER_ID STRING",
    )
    s.add_argument("--format", required=True, choices=[TELETHON, PYROGRAM], dest="library")
    _common(s)
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user-id", help="the tenant's user_id (one input only; default: the Telegram user id in the session)")
    p.add_argument("--session-id", help="the session_id to give a new session (one input only; default: generated)")
    p.add_argument("--api-id", type=int, help="Telegram api_id, where the session lacks it")
    p.add_argument(
        "--api-hash-file",
        required=True,
        help="a file holding the Telegram api_hash (32 hex characters); never on the command line",
    )
    p.add_argument("--holder", help="lease holder name while writing (default: VIBEE_HOLDER or <host>-<pid>)")


def _api_hash(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
    except OSError as err:
        raise SourceError(path, "api_hash", f"cannot read --api-hash-file: {err.strerror}") from None
    if not HEX32.match(value):
        raise SourceError(path, "api_hash", "must be Telegram's api_hash: 32 hexadecimal characters")
    return value


def _read_items(args: argparse.Namespace, stdin: TextIO) -> List[Item]:
    if args.kind == "string":
        items = []
        for n, line in enumerate(stdin, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.split()
            if len(parts) > 2:
                raise SourceError(f"stdin line {n}", "line", "expected STRING or USER_ID STRING")
            item = read_string(f"stdin line {n}", args.library, parts[-1], args.api_id)
            if len(parts) == 2:
                _config_id(item.source, "user_id", parts[0])
                item.tenant = parts[0]
            items.append(item)
        if not items:
            raise UsageError("no session strings on stdin")
        return items
    if args.kind == TELETHON:
        return [read_telethon_file(path) for path in args.files]
    return [read_pyrogram_file(path, args.api_id) for path in args.files]


def _config_id(source: str, field: str, value: str) -> None:
    try:
        _config.check_identifier(field, value)
    except VibeeError as err:
        raise SourceError(source, field, str(err)) from None


class Plan:
    def __init__(self, item: Item, user_id: str, api_id: int, session_id: Optional[str]) -> None:
        self.item = item
        self.user_id = user_id
        self.api_id = api_id
        self.session_id = session_id
        self.existing: Optional[str] = None  # session_id of the row, when it exists


def _plans(args: argparse.Namespace, items: List[Item]) -> List[Plan]:
    if len(items) > 1 and (args.user_id or args.session_id):
        raise UsageError("--user-id and --session-id name one tenant: give them with one input only")
    plans: List[Plan] = []
    seen: Dict[str, str] = {}
    for item in items:
        user_id = args.user_id or item.tenant
        if user_id is None and item.telegram_user_id:
            user_id = str(item.telegram_user_id)
        if not user_id:
            raise SourceError(
                item.source,
                "user_id",
                "the session does not name its user (Telethon records it only after a first connect): pass --user-id",
            )
        _config_id(item.source, "user_id", user_id)
        if args.session_id:
            _config_id(item.source, "session_id", args.session_id)
        api_id = item.api_id or args.api_id
        if not api_id or api_id <= 0:
            raise SourceError(item.source, "api_id", "the session holds none: pass --api-id")
        if user_id in seen:
            raise SourceError(item.source, "user_id", f"{user_id} is also the tenant of {seen[user_id]}")
        seen[user_id] = item.source
        plans.append(Plan(item, user_id, api_id, args.session_id))
    return plans


def _preflight(client: Client, plans: List[Plan], holder: str) -> None:
    """Ask the server about every tenant before anything is written."""
    for plan in plans:
        try:
            found = client.find_session(plan.user_id)
        except NotFound:
            plan.existing = None
            continue
        plan.existing = found.session_id
        if plan.session_id and plan.session_id != found.session_id:
            raise SourceError(
                plan.item.source,
                "session_id",
                f"user_id {plan.user_id} already has session {found.session_id}, not {plan.session_id}",
            )
        if not found.is_active:
            raise SourceError(
                plan.item.source,
                "is_active",
                f"session {found.session_id} of user_id {plan.user_id} is deactivated: reactivate it first",
            )
        lease = client.get_lease(plan.existing)
        if lease is not None and lease.holder != holder:
            raise SourceError(
                plan.item.source,
                "lease",
                f"session {plan.existing} of user_id {plan.user_id} is in use by {lease.holder} "
                f"until {lease.expires_at}: stop that client first",
            )


def _write(client: Client, plan: Plan, api_hash: str, holder: str, ttl: int = 60) -> str:
    fields = dict(
        user_id=plan.user_id,
        api_id=plan.api_id,
        api_hash=api_hash,
        session_data=plan.item.blob.encode("ascii"),
    )
    if plan.existing is None:
        try:
            info = client.create_session(session_id=plan.session_id, **fields)
            plan.existing = info.session_id
            return "created"
        except PreconditionFailed:
            plan.existing = client.find_session(plan.user_id).session_id
    lease = client.take_lease(plan.existing, holder, ttl)
    try:
        client.upsert_session(lease_fence=lease.fence, **fields)
    finally:
        client.release_lease(lease)
    return "updated"


def _verify(client: Client, plan: Plan) -> None:
    assert plan.existing is not None
    blob = client.get_blob(plan.existing)
    if blob is None or blob.data.reveal() != plan.item.blob.encode("ascii"):
        raise SourceError(plan.item.source, "session_data", "read back from the store, it differs from what was written")


def run(argv: Optional[Sequence[str]] = None, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = _parser().parse_args(argv)
    try:
        api_hash = _api_hash(args.api_hash_file)
        items = _read_items(args, stdin)
        plans = _plans(args, items)
        holder = _config.holder(args.holder)
        client = Client(args.base_url)
    except (SourceError, UsageError, VibeeError) as e:
        print(f"vibee-sessions-py: {e}; nothing was written", file=err)
        return EXIT_USAGE
    with client:
        try:
            _preflight(client, plans, holder)
        except SourceError as e:
            print(f"vibee-sessions-py: {e}; nothing was written", file=err)
            return EXIT_USAGE
        except VibeeError as e:
            print(f"vibee-sessions-py: the server: {e}; nothing was written", file=err)
            return EXIT_FAILED
        failed = 0
        for plan in plans:
            source = plan.item.source
            try:
                outcome = _write(client, plan, api_hash, holder)
                _verify(client, plan)
            except (VibeeError, SourceError) as e:
                failed += 1
                print(f"vibee-sessions-py: {source}: {e}", file=err)
                continue
            print(f"{outcome} user_id={plan.user_id} session_id={plan.existing} from {source}", file=out)
            if getattr(args, "shred", False) and plan.item.path:
                if file_digest(plan.item.path) != plan.item.digest:
                    failed += 1
                    print(f"vibee-sessions-py: {source}: file: changed since it was read; not shredded", file=err)
                    continue
                for removed in shred_file(plan.item.path):
                    print(f"shredded {removed}", file=out)
    if failed:
        print(f"vibee-sessions-py: {failed} of {len(plans)} failed (a re-run is safe: import is idempotent)", file=err)
        return EXIT_FAILED
    return 0


def main() -> int:
    return run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
