"""VibeeStorage with the real Pyrogram, against the real server; no Telegram."""

from __future__ import annotations

import asyncio
import os

import pytest
from pyrogram import Client as PyroClient
from pyrogram.storage import MemoryStorage

import vibee_sessions as vs
from vibee_sessions.pyrogram import VibeeStorage

API_HASH = "0123456789abcdef0123456789abcdef"


def _storage(server, token, sid, **kw):
    return VibeeStorage("acct", session_id=sid, base_url=server.base, token=token, **kw)


async def _sign_in(storage, *, dc_id, api_id, key, user_id, is_bot=False, test_mode=False):
    # The calls Pyrogram's load_session() and sign_in() make, in their order.
    await storage.api_id(api_id)
    await storage.dc_id(dc_id)
    await storage.date(0)
    await storage.test_mode(test_mode)
    await storage.auth_key(key)
    await storage.user_id(None)
    await storage.is_bot(None)
    await storage.user_id(user_id)
    await storage.is_bot(is_bot)


def test_session_round_trips_byte_for_byte(server, token, client, make_session):
    sid = make_session("pyro-1")
    key = os.urandom(256)

    async def go():
        s = _storage(server, token, sid, holder="pyro-a")
        await s.open()
        assert await s.auth_key() is None
        await _sign_in(s, dc_id=4, api_id=98765, key=key, user_id=5550001)
        # Written at sign-in, not only at stop.
        stored = client.get_blob(sid).data.reveal().decode("ascii")
        assert stored == await s.export_session_string()
        # The blob is Pyrogram's own session string: the real MemoryStorage reads it.
        real = MemoryStorage("check", stored)
        await real.open()
        assert (await real.dc_id(), await real.api_id(), await real.user_id()) == (4, 98765, 5550001)
        assert await real.auth_key() == key
        assert not await real.is_bot() and not await real.test_mode()
        await real.close()
        await s.save()
        await s.close()
        assert client.get_lease(sid) is None

        back = _storage(server, token, sid, holder="pyro-b")
        await back.open()
        assert await back.auth_key() == key
        assert (await back.dc_id(), await back.api_id(), await back.user_id()) == (4, 98765, 5550001)
        await back.close()

    asyncio.run(go())


def test_as_the_storage_of_a_real_pyrogram_client(server, token, client, make_session):
    sid = make_session("pyro-client")
    key = os.urandom(256)

    async def seed():
        s = _storage(server, token, sid)
        await s.open()
        await _sign_in(s, dc_id=2, api_id=4242, key=key, user_id=777000111, is_bot=True)
        await s.close()

    asyncio.run(seed())

    async def go():
        # Pyrogram 2.0 has no storage= argument: replace client.storage before start.
        app = PyroClient("acct", api_id=4242, api_hash=API_HASH, in_memory=True)
        app.storage = _storage(server, token, sid, holder="pyro-app")
        await app.load_session()  # what connect() does first; no network for a stored session
        assert await app.storage.auth_key() == key
        assert await app.storage.is_bot()
        assert await app.export_session_string() == client.get_blob(sid).data.reveal().decode()
        await app.storage.close()
        assert client.get_lease(sid) is None
        # Client.restart(): open() again takes the lease again.
        await app.storage.open()
        assert client.get_lease(sid).holder == "pyro-app"
        await app.storage.close()

    asyncio.run(go())


def test_dc_migration_writes_the_new_key(server, token, client, make_session):
    sid = make_session("pyro-mig")

    async def go():
        s = _storage(server, token, sid)
        await s.open()
        await _sign_in(s, dc_id=2, api_id=1, key=os.urandom(256), user_id=1001)
        new_key = os.urandom(256)
        await s.dc_id(5)
        await s.auth_key(new_key)
        back = MemoryStorage("x", client.get_blob(sid).data.reveal().decode())
        await back.open()
        assert (await back.dc_id(), await back.auth_key()) == (5, new_key)
        await back.close()
        await s.close()

    asyncio.run(go())


def test_second_storage_on_the_same_session_gets_lease_held(server, token, make_session):
    sid = make_session("pyro-twice")
    first = _storage(server, token, sid, holder="one")
    with pytest.raises(vs.LeaseHeld) as err:
        _storage(server, token, sid, holder="two")
    assert err.value.code == "lease_held" and err.value.holder == "one"
    asyncio.run(first.close())


def test_a_writer_whose_lease_was_taken_over_gets_stale_lease(server, token, client, make_session):
    sid = make_session("pyro-stale")

    async def go():
        old = _storage(server, token, sid, holder="old")
        await old.open()
        await _sign_in(old, dc_id=2, api_id=1, key=os.urandom(256), user_id=1)
        client.release_lease(old.lease)  # its lease is gone (as by expiry)
        new = _storage(server, token, sid, holder="new")
        await new.open()
        fresh = os.urandom(256)
        await new.auth_key(fresh)
        with pytest.raises(vs.StaleLease):
            await old.auth_key(os.urandom(256))
        check = MemoryStorage("x", client.get_blob(sid).data.reveal().decode())
        await check.open()
        assert await check.auth_key() == fresh
        await check.close()
        await new.close()

    asyncio.run(go())


def test_log_out_after_close_deletes_the_blob(server, token, client, make_session):
    sid = make_session("pyro-logout")

    async def go():
        s = _storage(server, token, sid)
        await s.open()
        await _sign_in(s, dc_id=2, api_id=1, key=os.urandom(256), user_id=9)
        await s.close()
        await s.delete()  # Client.log_out(): stop() (close) then delete()

    asyncio.run(go())
    assert client.get_blob(sid) is None
