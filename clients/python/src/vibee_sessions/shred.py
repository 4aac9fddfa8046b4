"""Removing a plaintext session file once its contents are safe in the store.

Each file (and the SQLite journal, WAL and shared-memory files beside it)
is overwritten with zeroes, flushed to disk, then unlinked, and the
directory entry removal is flushed too. On copy-on-write or flash storage
the old blocks may survive an overwrite: there, only full-disk encryption
protects what was written before; this removes every copy a program can
still open.
"""

from __future__ import annotations

import os
from typing import List

SIDECARS = ("-journal", "-wal", "-shm")


def _overwrite_and_unlink(path: str) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b", buffering=0) as f:
        remaining = size
        zeros = b"\0" * (1 << 16)
        while remaining > 0:
            n = f.write(zeros[: min(len(zeros), remaining)])
            remaining -= n or 0
        os.fsync(f.fileno())
    os.unlink(path)


def shred_file(path: str) -> List[str]:
    """Shreds ``path`` and its SQLite sidecars; returns the paths removed."""
    removed = []
    for p in [path] + [path + s for s in SIDECARS]:
        if os.path.isfile(p):
            _overwrite_and_unlink(p)
            removed.append(p)
    directory = os.path.dirname(os.path.abspath(path))
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return removed
