"""``vibee-sessions-py import`` with .session files the real libraries wrote offline."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyrogram.storage import FileStorage
from telethon import TelegramClient
from telethon.crypto import AuthKey
from telethon.sessions import StringSession
from telethon.tl import types

from conftest import API_HASH

API_ID = 611335


def run_import(server, token, args, stdin="", extra_env=None):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "VIBEE_API_URL": server.base,
        "VIBEE_TOKEN": token,
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "vibee_sessions", "import", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def api_hash_file(tmp_path):
    p = tmp_path / "api_hash"
    p.write_text(API_HASH + "\n")
    return str(p)


def telethon_file(path: Path, *, dc_id=2, address="149.154.167.51", port=443, self_id=None, entities=0):
    """A .session file as Telethon writes it, made by Telethon itself (no network)."""
    key = os.urandom(256)

    async def make():
        tg = TelegramClient(str(path), 1, API_HASH)
        tg.session.set_dc(dc_id, address, port)
        tg.session.auth_key = AuthKey(key)
        if entities:
            users = [
                types.User(id=10_000 + i, access_hash=i * 7919 + 1, username=f"peer{i}", phone=f"1555{i:07d}", first_name=f"Peer {i}")
                for i in range(entities)
            ]
            tg.session.process_entities(types.contacts.ResolvedPeer(types.PeerUser(10_000), [], users))
        if self_id:
            # How Telethon records its own user id (entity 0) on disconnect.
            tg._mb_entity_cache.set_self_user(self_id, False, 0)
            await tg._save_states_and_entities()
        tg.session.save()
        tg.session.close()

    asyncio.run(make())
    return key


def pyrogram_file(workdir: Path, name: str, *, user_id=424242, dc_id=2, api_id=API_ID, is_bot=False):
    """A .session file as Pyrogram's FileStorage writes it (no network)."""
    key = os.urandom(256)

    async def make():
        st = FileStorage(name, workdir)
        await st.open()
        await st.api_id(api_id)
        await st.dc_id(dc_id)
        await st.test_mode(False)
        await st.auth_key(key)
        await st.user_id(user_id)
        await st.is_bot(is_bot)
        await st.save()
        exported = await st.export_session_string()
        await st.close()
        return exported

    return key, asyncio.run(make())


def no_secret_in(text: str, key: bytes) -> None:
    assert API_HASH not in text
    assert key.hex() not in text
    assert base64.urlsafe_b64encode(key).decode()[:40] not in text
    assert base64.b64encode(key).decode()[:40] not in text


def test_telethon_files_round_trip_and_shred_leaves_no_plaintext(server, token, client, tmp_path, api_hash_file):
    a = tmp_path / "alice.session"
    b = tmp_path / "bob.session"
    key_a = telethon_file(a, self_id=1111, entities=800)
    key_b = telethon_file(b, dc_id=4, address="149.154.167.91", self_id=2222)
    assert a.stat().st_size > 60_000  # a real account's file: ~69 KiB with 800 entities

    out = run_import(server, token, ["telethon", str(a), str(b), "--api-id", str(API_ID), "--api-hash-file", api_hash_file, "--shred"])
    assert out.returncode == 0, out.stderr
    no_secret_in(out.stdout + out.stderr, key_a)
    no_secret_in(out.stdout + out.stderr, key_b)
    assert "created user_id=1111" in out.stdout and "created user_id=2222" in out.stdout
    assert not a.exists() and not b.exists()
    assert not list(tmp_path.glob("*.session*"))

    for user_id, key, dc, addr in (("1111", key_a, 2, "149.154.167.51"), ("2222", key_b, 4, "149.154.167.91")):
        info = client.find_session(user_id)
        assert info.api_id == API_ID
        s = StringSession(client.get_blob(info.session_id).data.reveal().decode())
        assert (s.dc_id, s.server_address, s.port, s.auth_key.key) == (dc, addr, 443, key)
        assert client.get_credentials(info.session_id).api_hash.reveal() == API_HASH


def test_import_is_idempotent(server, token, client, tmp_path, api_hash_file):
    f = tmp_path / "carol.session"
    key = telethon_file(f, self_id=3333)
    args = ["telethon", str(f), "--api-id", str(API_ID), "--api-hash-file", api_hash_file]
    first = run_import(server, token, args)
    assert first.returncode == 0, first.stderr
    sid = client.find_session("3333").session_id
    again = run_import(server, token, args)
    assert again.returncode == 0, again.stderr
    assert f"updated user_id=3333 session_id={sid}" in again.stdout
    assert [s.user_id for s in client.list_sessions()] == ["3333"]
    assert StringSession(client.get_blob(sid).data.reveal().decode()).auth_key.key == key
    assert f.exists()  # no --shred: the file stays


def test_pyrogram_files_round_trip(server, token, client, tmp_path, api_hash_file):
    key, exported = pyrogram_file(tmp_path, "dave", user_id=4444, dc_id=5)
    path = tmp_path / "dave.session"
    out = run_import(server, token, ["pyrogram", str(path), "--api-hash-file", api_hash_file, "--shred"])
    assert out.returncode == 0, out.stderr
    no_secret_in(out.stdout + out.stderr, key)
    assert not path.exists()
    info = client.find_session("4444")
    assert info.api_id == API_ID  # Pyrogram's file holds it
    assert client.get_blob(info.session_id).data.reveal().decode() == exported


def test_strings_from_stdin(server, token, client, api_hash_file):
    tele = StringSession()
    tele.set_dc(2, "149.154.167.51", 443)
    tele_key = os.urandom(256)
    tele.auth_key = AuthKey(tele_key)
    tele_string = tele.save()
    out = run_import(
        server, token, ["string", "--format", "telethon", "--api-id", "7", "--api-hash-file", api_hash_file],
        stdin=f"# a comment\n\ntenant-t {tele_string}\n",
    )
    assert out.returncode == 0, out.stderr
    no_secret_in(out.stdout + out.stderr, tele_key)
    assert client.get_blob(client.find_session("tenant-t").session_id).data.reveal().decode() == tele_string

    key, pyro_string = pyrogram_file(Path(os.environ.get("TMPDIR", "/tmp")), f"p{os.getpid()}", user_id=5555)
    os.remove(Path(os.environ.get("TMPDIR", "/tmp")) / f"p{os.getpid()}.session")
    out = run_import(server, token, ["string", "--format", "pyrogram", "--api-hash-file", api_hash_file], stdin=pyro_string + "\n")
    assert out.returncode == 0, out.stderr
    assert client.get_blob(client.find_session("5555").session_id).data.reveal().decode() == pyro_string


def test_everything_is_validated_before_anything_is_written(server, token, client, tmp_path, api_hash_file):
    good = tmp_path / "good.session"
    telethon_file(good, self_id=6666)
    broken = tmp_path / "broken.session"
    broken.write_bytes(b"this is not sqlite at all" * 100)
    out = run_import(server, token, ["telethon", str(good), str(broken), "--api-id", "1", "--api-hash-file", api_hash_file, "--shred"])
    assert out.returncode == 2
    assert str(broken) in out.stderr and "file" in out.stderr and "nothing was written" in out.stderr
    assert list(client.list_sessions(include_inactive=True)) == []
    assert good.exists() and broken.exists()


def test_failures_name_the_file_and_field(server, token, client, tmp_path, api_hash_file):
    no_user = tmp_path / "anon.session"
    telethon_file(no_user)  # never connected: Telethon has not recorded its user
    out = run_import(server, token, ["telethon", str(no_user), "--api-id", "1", "--api-hash-file", api_hash_file])
    assert out.returncode == 2 and f"{no_user}: user_id:" in out.stderr

    out = run_import(server, token, ["telethon", str(no_user), "--user-id", "erin", "--api-hash-file", api_hash_file])
    assert out.returncode == 2 and f"{no_user}: api_id:" in out.stderr

    _, _ = pyrogram_file(tmp_path, "pyro")
    out = run_import(server, token, ["telethon", str(tmp_path / "pyro.session"), "--api-id", "1", "--api-hash-file", api_hash_file])
    assert out.returncode == 2 and "Pyrogram session file" in out.stderr

    bad_hash = tmp_path / "bad_hash"
    bad_hash.write_text("zz")
    out = run_import(server, token, ["telethon", str(no_user), "--user-id", "erin", "--api-id", "1", "--api-hash-file", str(bad_hash)])
    assert out.returncode == 2 and "api_hash" in out.stderr

    out = run_import(server, token, ["string", "--format", "pyrogram", "--api-hash-file", api_hash_file], stdin="garbage\n")
    assert out.returncode == 2 and "stdin line 1: session_string:" in out.stderr
    assert list(client.list_sessions(include_inactive=True)) == []


def test_a_session_in_use_elsewhere_is_not_overwritten(server, token, client, make_session, tmp_path, api_hash_file):
    sid = make_session("7777")
    client.put_blob(sid, b"live client's blob")
    lease = client.take_lease(sid, "live-agent", 60)
    f = tmp_path / "frank.session"
    telethon_file(f, self_id=7777)
    out = run_import(server, token, ["telethon", str(f), "--api-id", "1", "--api-hash-file", api_hash_file, "--shred"])
    assert out.returncode == 2
    assert "live-agent" in out.stderr and "nothing was written" in out.stderr
    assert client.get_blob(sid).data.reveal() == b"live client's blob"
    assert f.exists()
    client.release_lease(lease)


def test_a_deactivated_tenant_is_refused_before_anything_is_written(server, token, client, make_session, tmp_path, api_hash_file):
    sid = make_session("8888")
    client.deactivate_session(sid)
    f = tmp_path / "gone.session"
    telethon_file(f, self_id=8888)
    out = run_import(server, token, ["telethon", str(f), "--api-id", "1", "--api-hash-file", api_hash_file])
    assert out.returncode == 2
    assert f"{f}: is_active:" in out.stderr and "nothing was written" in out.stderr
