"""Client and AsyncClient against the real server: every call over HTTP."""

from __future__ import annotations

import asyncio
import os

import pytest

import vibee_sessions as vs
from conftest import API_HASH


def test_token_comes_from_argument_env_or_file_never_the_url(server, token, tmp_path, monkeypatch):
    monkeypatch.delenv("VIBEE_TOKEN", raising=False)
    monkeypatch.delenv("VIBEE_TOKEN_FILE", raising=False)
    monkeypatch.setenv("VIBEE_API_URL", server.base)
    with pytest.raises(vs.ConfigError, match="VIBEE_TOKEN"):
        vs.Client()
    monkeypatch.setenv("VIBEE_TOKEN", token)
    with vs.Client() as c:
        assert list(c.list_sessions()) == []
    monkeypatch.delenv("VIBEE_TOKEN")
    path = tmp_path / "token"
    path.write_text(token + "\n")
    monkeypatch.setenv("VIBEE_TOKEN_FILE", str(path))
    with vs.Client() as c:
        assert list(c.list_sessions()) == []
        assert token not in repr(c)
    host = server.base.split("://", 1)[1]
    with pytest.raises(vs.ConfigError, match="credentials"):
        vs.Client(f"http://{token}@{host}")
    with pytest.raises(vs.ConfigError, match="query"):
        vs.Client(f"{server.base}/?token={token}")


def test_bad_token_is_unauthorized_with_the_api_code(server):
    with vs.Client(server.base, token="vs_not_a_real_token") as c:
        with pytest.raises(vs.Unauthorized) as err:
            list(c.list_sessions())
    assert err.value.status == 401
    assert err.value.code == "unauthorized"


def test_missing_scope_is_forbidden_naming_it(server):
    with vs.Client(server.base, token=server.token("lister", "sessions:list")) as c:
        with pytest.raises(vs.Forbidden) as err:
            c.upsert_session(user_id="u1", api_id=1, api_hash=API_HASH)
    assert err.value.code == "forbidden"
    assert err.value.required_scope == "sessions:write"


def test_invalid_field_carries_code_and_field_and_never_the_value(client):
    with pytest.raises(vs.InvalidField) as err:
        client.upsert_session(user_id="u1", api_id=1, api_hash="not-hex-and-secret")
    assert err.value.status == 422
    assert err.value.code == "invalid_field"
    assert err.value.field == "api_hash"
    assert "not-hex-and-secret" not in str(err.value)


def test_sessions_create_update_credentials_patch_deactivate(client):
    created = client.create_session(
        user_id="acme", api_id=777, api_hash=API_HASH, phone="+15551234567", session_id="acme-main"
    )
    assert (created.user_id, created.session_id, created.api_id) == ("acme", "acme-main", 777)
    assert created.etag == f'"{created.version}"'
    updated = client.upsert_session(user_id="acme", api_id=778, api_hash=API_HASH)
    assert updated.api_id == 778 and updated.version > created.version

    creds = client.get_credentials("acme-main")
    assert creds.api_hash.reveal() == API_HASH
    assert creds.phone is not None and creds.phone.reveal() == "+15551234567"
    assert API_HASH not in repr(creds) and "5551234567" not in repr(creds)

    assert client.find_session("acme").session_id == "acme-main"

    patched = client.patch_session("acme-main", username="acme_bot", if_match=updated)
    assert patched.username == "acme_bot"
    with pytest.raises(vs.PreconditionFailed):
        client.patch_session("acme-main", username="other", if_match=updated)
    cleared = client.patch_session("acme-main", username=None)
    assert cleared.username is None

    client.deactivate_session("acme-main")
    assert [s.session_id for s in client.list_sessions()] == []
    assert [s.session_id for s in client.list_sessions(include_inactive=True)] == ["acme-main"]
    with pytest.raises(vs.SessionInactive) as err:
        client.take_lease("acme-main", "any-host", 30)
    assert err.value.code == "session_inactive"
    assert client.reactivate_session("acme-main").is_active
    assert client.get_credentials_by_user("acme").session.session_id == "acme-main"
    client.deactivate_session("acme-main")
    client.deactivate_session("acme-main", purge=True)
    with pytest.raises(vs.NotFound) as err:
        client.get_credentials("acme-main")
    assert err.value.status == 404


def test_post_is_conditional_create_only_and_if_match(client):
    """RFC 9110 conditional requests on POST /sessions."""
    created = client.create_session(user_id="cond", api_id=1, api_hash=API_HASH)
    with pytest.raises(vs.PreconditionFailed) as err:
        client.create_session(user_id="cond", api_id=2, api_hash=API_HASH)
    assert err.value.code == "precondition_failed"
    updated = client.upsert_session(user_id="cond", api_id=3, api_hash=API_HASH, if_match=created)
    assert updated.api_id == 3
    with pytest.raises(vs.PreconditionFailed):
        client.upsert_session(user_id="cond", api_id=4, api_hash=API_HASH, if_match=created)
    assert client.find_session("cond").api_id == 3


def test_list_is_an_iterator_over_pages(client, make_session):
    for i in range(7):
        make_session(f"user-{i}", f"sess-{i}")
    seen = [s.user_id for s in client.list_sessions(page_size=3)]
    assert seen == [f"user-{i}" for i in range(7)]
    it = client.list_sessions(page_size=2)
    assert next(it).user_id == "user-0"


def test_blob_put_get_delete_and_etag(client, make_session):
    sid = make_session("blobby")
    assert client.get_blob(sid) is None
    data = os.urandom(4096)
    etag = client.put_blob(sid, data)
    blob = client.get_blob(sid)
    assert blob is not None and blob.data.reveal() == data
    assert etag and etag.startswith('"')
    with pytest.raises(vs.PreconditionFailed):
        client.put_blob(sid, b"other", if_match='"1"')
    assert client.get_blob(sid).data.reveal() == data
    client.delete_blob(sid)
    assert client.get_blob(sid) is None
    with pytest.raises(ValueError):
        client.put_blob(sid, b"")


def test_leases_take_renew_release_and_fencing(client, make_session):
    sid = make_session("leased")
    a = client.take_lease(sid, "host-a", 30)
    assert (a.session_id, a.holder) == (sid, "host-a") and a.fence > 0
    (listed,) = client.list_sessions()
    assert listed.lease is not None and (listed.lease.holder, listed.lease.fence) == ("host-a", a.fence)
    with pytest.raises(vs.LeaseHeld) as err:
        client.take_lease(sid, "host-b", 30)
    assert err.value.code == "lease_held"
    assert err.value.holder == "host-a" and err.value.expires_at
    assert client.get_lease(sid).holder == "host-a"

    renewed = client.renew_lease(a, 60)
    assert renewed.fence == a.fence and renewed.expires_at >= a.expires_at

    with pytest.raises(vs.LeaseRequired) as err:
        client.put_blob(sid, b"no fence")
    assert err.value.code == "lease_required"
    with pytest.raises(vs.StaleLease):
        client.put_blob(sid, b"wrong fence", lease_fence=a.fence + 1000)
    client.put_blob(sid, b"right fence", lease_fence=a.fence)
    assert client.get_blob(sid).data.reveal() == b"right fence"

    client.release_lease(a)
    assert client.get_lease(sid) is None
    with pytest.raises(vs.StaleLease):
        client.release_lease(a)
    b = client.take_lease(sid, "host-b", 30)
    assert b.fence > a.fence
    with pytest.raises(vs.StaleLease):
        client.put_blob(sid, b"old writer", lease_fence=a.fence)
    assert client.get_blob(sid).data.reveal() == b"right fence"


def test_upsert_and_blob_delete_carry_the_fence(server, client, make_session):
    sid = make_session("fenced-user", "fenced")
    base = dict(user_id="fenced-user", api_id=12345, api_hash=API_HASH)
    client.upsert_session(session_data=b"v1", **base)
    a = client.take_lease(sid, "host-a", 30)
    other_hash = "fedcba9876543210fedcba9876543210"

    # Replacing the api_hash or the blob: the live fence, or nothing is written.
    with pytest.raises(vs.LeaseRequired) as err:
        client.upsert_session(**{**base, "api_hash": other_hash})
    assert (err.value.status, err.value.code) == (409, "lease_required")
    with pytest.raises(vs.LeaseRequired):
        client.upsert_session(session_data=b"v2", **base)
    with pytest.raises(vs.StaleLease):
        client.upsert_session(session_data=b"v2", lease_fence=a.fence + 1000, **base)
    creds = client.get_credentials(sid)
    assert creds.api_hash.reveal() == API_HASH and creds.session_data.reveal() == b"v1"
    # The stored values again with new metadata: no fence needed.
    assert client.upsert_session(username="renamed", **base).username == "renamed"
    client.upsert_session(session_data=b"v2", lease_fence=a.fence, **base)
    assert client.get_blob(sid).data.reveal() == b"v2"

    with pytest.raises(vs.LeaseRequired):
        client.delete_blob(sid)
    with pytest.raises(vs.StaleLease):
        client.delete_blob(sid, lease_fence=a.fence + 1000)
    assert client.get_blob(sid).data.reveal() == b"v2"
    client.delete_blob(sid, lease_fence=a.fence)
    assert client.get_blob(sid) is None

    # A purge waits for the lease; If-Match guards deactivation.
    with vs.Client(server.base, token=server.token("root", "admin")) as admin:
        with pytest.raises(vs.LeaseHeld) as held:
            admin.deactivate_session(sid, purge=True)
        assert held.value.holder == "host-a"
        with pytest.raises(vs.PreconditionFailed):
            admin.deactivate_session(sid, if_match='"999999"')
        assert client.get_lease(sid) is not None and client.find_session("fenced-user").is_active
        client.release_lease(a)
        admin.deactivate_session(sid, purge=True)


def test_batched_renewal(server, client, make_session):
    sids = [make_session(f"batch-{i}") for i in range(3)]
    leases = {sid: client.take_lease(sid, "loader-1", 30).fence for sid in sids}
    # One of them changes hands behind the loader's back.
    with vs.Client(server.base, token=server.token("root", "admin")) as admin:
        admin.break_lease(sids[2])
    client.take_lease(sids[2], "loader-2", 30)
    answer = client.renew_leases("loader-1", leases, 60)
    assert sorted(lease.session_id for lease in answer.renewed) == sorted(sids[:2])
    assert all(lease.holder == "loader-1" for lease in answer.renewed)
    assert answer.lost == [sids[2]]
    assert client.get_lease(sids[2]).holder == "loader-2"


def test_break_needs_admin_and_gives_a_new_fence(server, client, make_session):
    sid = make_session("breakme")
    held = client.take_lease(sid, "stuck-host", 3600)
    with pytest.raises(vs.Forbidden):
        client.break_lease(sid)
    with vs.Client(server.base, token=server.token("root", "admin")) as admin:
        admin.break_lease(sid)
    assert client.get_lease(sid) is None
    assert client.take_lease(sid, "next-host", 30).fence > held.fence


def test_async_client_does_the_same(server, token, make_session):
    sid = make_session("async-user", "async-sess")

    async def go():
        async with vs.AsyncClient(server.base, token=token) as c:
            seen = [s.session_id async for s in c.list_sessions(page_size=1)]
            assert seen == ["async-sess"]
            lease = await c.take_lease(sid, "async-holder", 30)
            with pytest.raises(vs.LeaseHeld):
                await c.take_lease(sid, "someone-else", 30)
            await c.put_blob(sid, b"\x00\x01async", lease_fence=lease.fence)
            blob = await c.get_blob(sid)
            assert blob.data.reveal() == b"\x00\x01async"
            await c.release_lease(lease)
            await c.delete_blob(sid)
            assert await c.get_blob(sid) is None
            creds = await c.get_credentials(sid)
            assert creds.api_hash.reveal() == API_HASH
            with pytest.raises(vs.NotFound):
                await c.get_credentials("no-such-session")

    asyncio.run(go())


def test_unreachable_server_is_a_transport_error(token):
    with vs.Client("http://127.0.0.1:9", token=token, timeout=2) as c:
        with pytest.raises(vs.TransportError) as err:
            c.get_blob("x")
    assert token not in str(err.value)
