"""What the last sync of a session left in step, so the next one need not look again.

A session may hold thousands of files (one per subagent, per large tool
result), and nearly all of them stop changing once written. Reading each one
on every pull would make a turn's sync cost follow the session's size. So a
pull remembers, per file, the size at which both copies were last seen equal
(the file was SAME or pulled whole); the next pull leaves a file unread when
both copies still have exactly that size. Transcripts and tool results only
grow, so a file that gained bytes on either side is read and decided as
usual. The main transcript is always read (it grows every turn anyway).

It also remembers when the last pull started and which files it moved, so a
per-turn pull can ask the remote for just the files modified since then
(plus the transcript, the files that are not in step, and the ones that were
moving): a turn's pull then costs what changed, not what exists. Every so
often, and for every push, a pull looks at everything again.

The record lives in the library's data dir, beside the session's lock, and is
only read and written under that lock, as two files: a small one every pull
reads and writes, and the list of every file in step (100k entries for a big
session), which only a full pull reads and writes; a partial pull keeps what it
learns in the small one. A missing or damaged record just means every file is
read once more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from remote_executors.sync._install import install_atomically
from remote_executors.sync.base import SessionPaths

__all__ = ["SyncState", "load_state", "save_state", "state_path"]


@attrs.frozen
class SyncState:
    settled: Mapping[str, int] = attrs.field(factory=dict)
    """rel -> the size both copies had when last seen equal."""
    unsettled: frozenset[str] = frozenset()
    """Files seen on either side that were not in step."""
    recent: frozenset[str] = frozenset()
    """Files the last pull moved bytes of (likely to move again)."""
    pulled_at: float | None = None
    """When the last pull started (this machine's clock)."""
    partial_pulls: int = 0
    """Pulls since the last one that looked at every file."""
    temps: frozenset[str] = frozenset()
    """Temp files of ours seen too fresh to remove (looked at again next time)."""
    prefix: Mapping[str, int] = attrs.field(factory=dict)
    """rel -> a local size the last pull saw to be a prefix of the remote copy, for
    the transcript and the files not in step or just moved. A tail must start at
    or before it: bytes appended locally since were never compared, and the
    window before the local end alone cannot prove them in the remote copy
    (both sides may have appended lines whose last 4 KiB happen to agree)."""

    def verified(self) -> dict[str, int]:
        """rel -> a local size known to be a prefix of the remote copy."""
        return {**self.settled, **self.prefix}


def state_path(paths: SessionPaths, host: str) -> Path:
    """Where the record for syncing ``paths`` with ``host`` lives."""
    from remote_executors._store_file import data_dir

    key = f"{paths.local_dir}\0{host}\0{paths.remote_project}\0{paths.remote_config_dir}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    return data_dir() / "sync-state" / f"{digest[:24]}.{paths.session_id or 'project'}.json"


def _settled_path(paths: SessionPaths, host: str) -> Path:
    head = state_path(paths, host)
    return head.with_name(head.name[: -len(".json")] + ".settled.json")


def load_state(paths: SessionPaths, host: str, *, everything: bool = True) -> SyncState:
    """The record (an empty one when missing or unreadable). ``everything=False``:
    only what a partial pull needs (``settled`` then holds just the files the
    partial pulls since the last full one saw in step)."""
    state = _load_head(paths, host)
    if not everything:
        return state
    try:
        raw = json.loads(_settled_path(paths, host).read_bytes())
    except (OSError, ValueError):
        raw = None
    full = raw.get("settled") if isinstance(raw, dict) and raw.get("version") == 2 else None
    settled = {}
    if isinstance(full, dict):
        settled = {k: v for k, v in full.items() if isinstance(k, str) and type(v) is int}
    settled.update(state.settled)
    return attrs.evolve(state, settled=settled)


def _load_head(paths: SessionPaths, host: str) -> SyncState:
    try:
        raw = json.loads(state_path(paths, host).read_bytes())
    except (OSError, ValueError):
        return SyncState()
    if not isinstance(raw, dict) or raw.get("version") != 2:
        return SyncState()
    settled = raw.get("settled")
    names = raw.get("unsettled"), raw.get("recent")
    pulled_at, partial = raw.get("pulled_at"), raw.get("partial_pulls")
    temps = raw.get("temps", [])
    prefix = raw.get("prefix", {})  # records written before it have none
    if not isinstance(settled, dict) or not all(isinstance(n, list) for n in (*names, temps)):
        return SyncState()
    return SyncState(
        {k: v for k, v in settled.items() if isinstance(k, str) and type(v) is int},
        frozenset(n for n in names[0] if isinstance(n, str)),  # type: ignore[union-attr]
        frozenset(n for n in names[1] if isinstance(n, str)),  # type: ignore[union-attr]
        float(pulled_at) if isinstance(pulled_at, (int, float)) else None,
        partial if type(partial) is int else 0,
        frozenset(t for t in temps if isinstance(t, str)),
        {k: v for k, v in prefix.items() if isinstance(k, str) and type(v) is int}
        if isinstance(prefix, dict)
        else {},
    )


def save_state(paths: SessionPaths, host: str, state: SyncState, *, everything: bool) -> None:
    """Best effort: a record that cannot be written only costs a full look next time.

    ``everything``: ``state.settled`` is the whole list (a full pull) and replaces
    the stored one; else it is what the partial pulls since saw in step.
    """
    record = {
        "version": 2,
        "settled": {} if everything else dict(state.settled),
        "unsettled": sorted(state.unsettled),
        "recent": sorted(state.recent),
        "pulled_at": state.pulled_at,
        "partial_pulls": state.partial_pulls,
        "temps": sorted(state.temps),
        "prefix": dict(state.prefix),
    }
    with contextlib.suppress(OSError):
        if everything:
            whole = {"version": 2, "settled": dict(state.settled)}
            install_atomically(_settled_path(paths, host), json.dumps(whole).encode())
        install_atomically(state_path(paths, host), json.dumps(record).encode())


def forget(paths: SessionPaths, host: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(state_path(paths, host))
