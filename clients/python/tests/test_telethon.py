"""VibeeSession with the real Telethon, against the real server; no Telegram."""

from __future__ import annotations

import asyncio
import os

import pytest
from telethon import TelegramClient
from telethon.crypto import AuthKey
from telethon.sessions import MemorySession, StringSession

import vibee_sessions as vs
from vibee_sessions.telethon import VibeeSession


def _vibee(server, token, sid, **kw):
    return VibeeSession(sid, base_url=server.base, token=token, **kw)


def test_dc_address_port_and_auth_key_round_trip_byte_for_byte(server, token, client, make_session):
    sid = make_session("tele-1")
    key = os.urandom(256)
    first = _vibee(server, token, sid, holder="worker-1")
    assert first.auth_key is None and first.dc_id == 0  # nothing stored yet
    first.set_dc(4, "149.154.167.91", 443)
    first.auth_key = AuthKey(key)
    first.save()

    # The blob is Telethon's own StringSession format: the real class reads it.
    stored = client.get_blob(sid).data.reveal().decode("ascii")
    real = StringSession(stored)
    assert (real.dc_id, real.server_address, real.port) == (4, "149.154.167.91", 443)
    assert real.auth_key.key == key
    first.close()
    assert client.get_lease(sid) is None  # close() released it

    second = _vibee(server, token, sid, holder="worker-2")
    assert (second.dc_id, second.server_address, second.port) == (4, "149.154.167.91", 443)
    assert second.auth_key.key == key
    second.close()


def test_ipv6_and_a_dc_switch(server, token, client, make_session):
    sid = make_session("tele-v6")
    s = _vibee(server, token, sid)
    s.set_dc(2, "2001:67c:4e8:f002::a", 443)
    s.auth_key = AuthKey(os.urandom(256))
    s.save()
    # Telethon's _switch_dc: new DC, auth key cleared, then a new key.
    s.set_dc(5, "91.108.56.130", 443)
    s.auth_key = None
    s.save()  # no key: the stored, still-valid one stays
    assert StringSession(client.get_blob(sid).data.reveal().decode()).dc_id == 2
    new_key = os.urandom(256)
    s.auth_key = AuthKey(new_key)
    s.save()
    s.close()
    back = _vibee(server, token, sid)
    assert (back.dc_id, back.server_address, back.auth_key.key) == (5, "91.108.56.130", new_key)
    back.close()


def test_unchanged_state_is_not_written_again(server, token, client, make_session):
    sid = make_session("tele-quiet")
    s = _vibee(server, token, sid)
    s.set_dc(2, "149.154.167.51", 443)
    s.auth_key = AuthKey(os.urandom(256))
    s.save()
    version = client.find_session("tele-quiet").version
    s.process_entities([])  # entity caches stay in memory
    s.save()
    s.save()
    assert client.find_session("tele-quiet").version == version
    s.close()


def test_second_adapter_on_the_same_session_gets_lease_held(server, token, make_session):
    sid = make_session("tele-twice")
    first = _vibee(server, token, sid, holder="agent-a")
    with pytest.raises(vs.LeaseHeld) as err:
        _vibee(server, token, sid, holder="agent-b")
    assert err.value.holder == "agent-a"
    first.close()
    _vibee(server, token, sid, holder="agent-b").close()


def test_a_writer_whose_lease_was_taken_over_gets_stale_lease_and_overwrites_nothing(
    server, token, client, make_session
):
    sid = make_session("tele-stale")
    old = _vibee(server, token, sid, holder="old-host")
    old.set_dc(2, "149.154.167.51", 443)
    old.auth_key = AuthKey(os.urandom(256))
    old.save()
    # The old holder stalls; its lease is gone (here: released behind its
    # back, as an expiry would) and a new holder takes over and logs in anew.
    client.release_lease(old.lease)
    new = _vibee(server, token, sid, holder="new-host")
    fresh = os.urandom(256)
    new.auth_key = AuthKey(fresh)
    new.save()
    # The old writer wakes up and saves a key of its own.
    old.auth_key = AuthKey(os.urandom(256))
    with pytest.raises(vs.StaleLease):
        old.save()
    assert StringSession(client.get_blob(sid).data.reveal().decode()).auth_key.key == fresh
    new.close()


def test_background_renewal_keeps_the_lease_past_its_ttl(server, token, client, make_session):
    sid = make_session("tele-renew")
    s = _vibee(server, token, sid, holder="renewer", lease_ttl=5)
    first = client.get_lease(sid)
    import time

    time.sleep(7)  # longer than the TTL: only renewals keep it
    later = client.get_lease(sid)
    assert later is not None and later.holder == "renewer" and later.fence == first.fence
    assert later.expires_at > first.expires_at
    with pytest.raises(vs.LeaseHeld):
        _vibee(server, token, sid, holder="intruder")
    s.close()


def test_as_telegram_clients_session_with_no_connection(server, token, client, make_session):
    sid = make_session("tele-client")
    key = os.urandom(256)
    seeded = _vibee(server, token, sid)
    seeded.set_dc(2, "149.154.167.51", 443)
    seeded.auth_key = AuthKey(key)
    seeded.close()

    async def go():
        tg = TelegramClient(_vibee(server, token, sid, holder="tg"), 12345, "0123456789abcdef0123456789abcdef")
        assert isinstance(tg.session, VibeeSession)
        assert tg.session.auth_key.key == key
        # What Telethon does for CDN / exported DCs: the clone is plain memory.
        clone = tg.session.clone()
        assert type(clone) is MemorySession
        assert client.get_lease(sid).holder == "tg"
        await tg.disconnect()  # calls session.close(): saves and releases
        assert client.get_lease(sid) is None

    asyncio.run(go())


def test_log_out_delete_clears_the_blob(server, token, client, make_session):
    sid = make_session("tele-logout")
    s = _vibee(server, token, sid)
    s.set_dc(2, "149.154.167.51", 443)
    s.auth_key = AuthKey(os.urandom(256))
    s.save()
    s.close()
    s.delete()  # Telethon's log_out: disconnect (close), then delete
    assert client.get_blob(sid) is None


def test_a_pyrogram_blob_is_refused_by_name(server, token, client, make_session):
    from vibee_sessions.formats import PyrogramState

    sid = make_session("tele-wrong")
    client.put_blob(sid, PyrogramState(2, 1, False, os.urandom(256), 42, False).encode().encode())
    with pytest.raises(ValueError, match="Pyrogram"):
        _vibee(server, token, sid)
    assert client.get_lease(sid) is None  # the failed construction released it


def test_a_lease_its_supervisor_holds_is_adopted_and_left_to_it(server, token, client, make_session, monkeypatch):
    sid = make_session("tele-supervised")
    loader = client.take_lease(sid, "loader-host-1", 60)  # as `boot --exec` would
    # ... which starts its agent with VIBEE_LEASE_HOLDER (and VIBEE_HOLDER may differ).
    monkeypatch.setenv("VIBEE_LEASE_HOLDER", "loader-host-1")
    monkeypatch.setenv("VIBEE_HOLDER", "something-else")
    s = _vibee(server, token, sid)
    assert s.holder == "loader-host-1"
    assert s.lease.fence == loader.fence
    s.set_dc(2, "149.154.167.51", 443)
    s.auth_key = AuthKey(os.urandom(256))
    s.save()  # written under the supervisor's fence
    s.close()
    still = client.get_lease(sid)
    assert still is not None and still.holder == "loader-host-1" and still.fence == loader.fence
    # log_out under the supervisor: the blob is cleared under its live lease.
    s.delete()
    assert client.get_blob(sid) is None
    client.release_lease(still)


def test_a_lost_lease_is_noticed_reported_and_never_written_under(server, token, client, make_session):
    import threading

    sid = make_session("tele-lost")
    lost = threading.Event()
    seen = []

    def on_lost(err):
        seen.append(err)
        lost.set()

    s = _vibee(server, token, sid, holder="loser", lease_ttl=5, on_lease_lost=on_lost)
    client.release_lease(s.lease)  # gone behind its back, as by expiry
    client.take_lease(sid, "winner", 60)
    assert lost.wait(10), "the renewal thread noticed nothing"
    assert isinstance(seen[0], vs.StaleLease)
    s.set_dc(2, "149.154.167.51", 443)
    s.auth_key = AuthKey(os.urandom(256))
    with pytest.raises(vs.StaleLease):
        s.save()
    assert client.get_blob(sid) is None
    s.close()  # neither writes nor releases the winner's lease
    assert client.get_lease(sid).holder == "winner"
