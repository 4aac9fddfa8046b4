"""An agent under the real ``vibee-sessions boot --exec``, using VibeeSession."""

from __future__ import annotations

import os
import subprocess
import sys

from telethon.sessions import StringSession

from conftest import BIN

AGENT = r"""
import os
from telethon.crypto import AuthKey
from vibee_sessions.telethon import VibeeSession

with open(os.environ["AGENT_TOKEN_FILE"]) as f:
    token = f.read().strip()
s = VibeeSession(os.environ["TELEGRAM_SESSION_ID"], base_url=os.environ["AGENT_API_URL"], token=token)
print("holder", s.holder, "fence", s.lease.fence, "env_fence", os.environ.get("VIBEE_LEASE_FENCE"),
      "adopted", s._keeper.adopted, flush=True)
s.set_dc(2, "149.154.167.51", 443)
s.auth_key = AuthKey(bytes(range(256)))
s.save()
s.close()
"""


def test_an_agent_under_boot_exec_adopts_its_loaders_lease(server, token, client, make_session, tmp_path):
    sid = make_session("boot-tenant", "boot-sess")
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    token_file = tmp_path / "agent.token"
    token_file.write_text(token)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": server.db_url,
        "MASTER_KEY": server.env["MASTER_KEY"],
        "AGENT_API_URL": server.base,
        "AGENT_TOKEN_FILE": str(token_file),
    }
    out = subprocess.run(
        [BIN, "boot", "--user-id", "boot-tenant", "--holder", "loader-e2e", "--lease-ttl", "30s",
         "--exec", "--", sys.executable, str(agent)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    said = dict(zip(words[::2], words[1::2]))
    assert said["holder"] == "loader-e2e"
    assert said["adopted"] == "True"
    assert said["fence"] == said["env_fence"]
    stored = StringSession(client.get_blob(sid).data.reveal().decode())
    assert (stored.dc_id, stored.server_address, stored.auth_key.key) == (2, "149.154.167.51", bytes(range(256)))
    assert client.get_lease(sid) is None  # the loader released it when its agent ended
