"""What the last sync of a session left in step, so the next one need not look again.

A session may hold thousands of files (one per subagent, per large tool
result), and nearly all of them stop changing once written. Reading each one
on every pull would make a turn's sync cost follow the session's size. So a
pull remembers, per file, the size at which both copies were last seen equal
(the file was SAME or pulled whole); the next pull leaves a file unread when
both copies still have exactly that size. Transcripts and tool results only
grow, so a file that gained bytes on either side is read and decided as
usual. The main transcript is always read (it grows every turn anyway).

The record lives in the library's data dir, beside the session's lock, and is
only read and written under that lock. A missing or damaged record just means
every file is read once more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from remote_executors.sync._install import install_atomically
from remote_executors.sync.base import SessionPaths

__all__ = ["load_settled", "save_settled", "state_path"]


def state_path(paths: SessionPaths, host: str) -> Path:
    """Where the record for syncing ``paths`` with ``host`` lives."""
    from remote_executors.metadata import data_dir

    key = f"{paths.local_dir}\0{host}\0{paths.remote_project}\0{paths.remote_config_dir}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    return data_dir() / "sync-state" / f"{digest[:24]}.{paths.session_id or 'project'}.json"


def load_settled(paths: SessionPaths, host: str) -> dict[str, int]:
    """rel -> the size both copies had when last seen equal (empty: unknown)."""
    try:
        raw = json.loads(state_path(paths, host).read_bytes())
    except (OSError, ValueError):
        return {}
    settled = raw.get("settled") if isinstance(raw, dict) else None
    if not isinstance(settled, dict):
        return {}
    return {k: v for k, v in settled.items() if isinstance(k, str) and type(v) is int}


def save_settled(paths: SessionPaths, host: str, settled: Mapping[str, int]) -> None:
    """Best effort: a record that cannot be written only costs a re-read next time."""
    path = state_path(paths, host)
    data = json.dumps({"version": 1, "settled": dict(settled)}, separators=(",", ":"))
    with contextlib.suppress(OSError):
        if settled:
            install_atomically(path, data.encode())
        else:
            os.unlink(path)
