#!/usr/bin/env python3
"""A stand-in agent for the chaos `leases` scenario: it reads the tenants
its boot loader gave it (VIBEE_SESSIONS_FD), logs when it started running
them and a tick every 50 ms, and `stop` when it is asked to stop. A child
killed with its loader (SIGKILL) logs nothing more: its interval ends at its
last tick plus one tick (see lease_check.py)."""
import json, os, signal, sys, time

log_dir = sys.argv[1]
with os.fdopen(int(os.environ["VIBEE_SESSIONS_FD"]), "rb") as f:
    tenants = [t["user_id"] for t in json.load(f)]
path = os.path.join(log_dir, f"{os.environ['VIBEE_LEASE_HOLDER']}-{os.getpid()}.log")
out = open(path, "w", buffering=1)
out.write(f"start {time.time():.6f} {os.environ['VIBEE_LEASE_HOLDER']} {' '.join(tenants)}\n")

def stop(*_):
    out.write(f"stop {time.time():.6f}\n")
    out.flush()
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
while True:
    out.write(f"tick {time.time():.6f}\n")
    time.sleep(0.05)
