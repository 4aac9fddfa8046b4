"""The blob formats, checked against the real libraries' own encoders and decoders."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
from pyrogram.storage import MemoryStorage
from telethon.crypto import AuthKey
from telethon.sessions import StringSession

from vibee_sessions.formats import (
    PYROGRAM,
    TELETHON,
    FormatError,
    PyrogramState,
    TelethonState,
    decode_pyrogram,
    decode_telethon,
    detect,
)


@pytest.mark.parametrize("address", ["149.154.167.51", "2001:67c:4e8:f002::a"])
def test_telethon_strings_match_stringsession_both_ways(address):
    key = os.urandom(256)
    real = StringSession()
    real.set_dc(2, address, 443)
    real.auth_key = AuthKey(key)
    theirs = real.save()
    ours = TelethonState(2, address, 443, key).encode()
    assert ours == theirs
    back = decode_telethon(theirs)
    assert (back.dc_id, back.server_address, back.port, back.auth_key) == (2, address, 443, key)
    assert detect(theirs.encode()) == TELETHON


def test_pyrogram_strings_match_export_session_string_both_ways():
    key = os.urandom(256)

    async def go():
        st = MemoryStorage("x")
        await st.open()
        await st.dc_id(4)
        await st.api_id(611335)
        await st.test_mode(False)
        await st.auth_key(key)
        await st.user_id(123456789012)
        await st.is_bot(True)
        theirs = await st.export_session_string()
        await st.close()
        return theirs

    theirs = asyncio.run(go())
    assert PyrogramState(4, 611335, False, key, 123456789012, True).encode() == theirs
    back = decode_pyrogram(theirs)
    assert (back.dc_id, back.api_id, back.auth_key, back.user_id, back.is_bot) == (4, 611335, key, 123456789012, True)
    assert detect(theirs.encode()) == PYROGRAM

    async def load():
        st = MemoryStorage("y", PyrogramState(4, 611335, False, key, 123456789012, True).encode())
        await st.open()
        values = (await st.dc_id(), await st.api_id(), await st.auth_key(), await st.user_id(), await st.is_bot())
        await st.close()
        return values

    assert asyncio.run(load()) == (4, 611335, key, 123456789012, True)


def test_old_pyrogram_layout_without_api_id_is_read():
    key = os.urandom(256)
    old = base64.urlsafe_b64encode(struct.pack(">B?256sQ?", 2, False, key, 99, False)).decode().rstrip("=")
    state = decode_pyrogram(old)
    assert (state.dc_id, state.api_id, state.auth_key, state.user_id) == (2, None, key, 99)
    with pytest.raises(FormatError) as err:
        state.encode()
    assert err.value.field == "api_id"


def test_bad_input_names_the_field_and_never_echoes_the_key():
    key = os.urandom(256)
    with pytest.raises(FormatError) as err:
        TelethonState(2, "not-an-ip", 443, key).encode()
    assert err.value.field == "server_address"
    with pytest.raises(FormatError) as err:
        TelethonState(2, "1.2.3.4", 443, b"short").encode()
    assert err.value.field == "auth_key"
    with pytest.raises(FormatError) as err:
        decode_telethon("1" + "A" * 10)
    assert err.value.field == "session_string"
    with pytest.raises(FormatError) as err:
        decode_pyrogram("!" * 362)
    assert err.value.field == "session_string"
    with pytest.raises(FormatError) as err:
        decode_pyrogram("A" * 362)  # decodes, but the key is all zeroes
    assert err.value.field == "auth_key"
    assert key.hex() not in repr(TelethonState(2, "1.2.3.4", 443, key))
    assert key.hex() not in repr(PyrogramState(2, 1, False, key, 5, False))
    assert detect(b"\xff\x00binary") is None
