"""Resuming from a ``SessionStore`` when the CLI runs on another machine.

Locally the SDK writes the store's copy of a session into a temporary config
dir that the CLI resumes from. A CLI on another machine cannot read that. So
the store's entries are merged into the local copy of the session (the
library keeps one for every session it runs) and the ordinary no-loss push
carries them to the executor:

- no local copy: the store's entries become it;
- the local copy already holds every entry the store has (matched by
  ``uuid``; the CLI also writes lines it does not mirror): nothing to do;
- the store has entries after the last one the local copy holds: they are
  appended, so the local file stays an extension of what both sides had;
- otherwise the copies diverged: :class:`~remote_executors.SessionConflict`,
  nothing changed anywhere.

Subagent transcripts and their ``.meta.json`` sidecars follow the same rules.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from claude_agent_sdk.types import SessionStore

from remote_executors._sdk_compat import (
    agent_metadata_sidecar_name,
    load_store_session,
    resolve_store_continue,
    split_agent_metadata,
    store_implements,
)
from remote_executors.errors import SessionConflict, SyncError
from remote_executors.sync._install import append_exactly, install_atomically
from remote_executors.sync._lock import session_lock
from remote_executors.sync._tail import lock_path
from remote_executors.sync.base import SessionPaths

__all__ = ["StoreSession", "load_from_store", "merge_into_local"]


@attrs.frozen
class StoreSession:
    """A session as a store holds it: main entries and ``subpath -> entries``."""

    session_id: str
    entries: Sequence[Any]
    subpaths: Mapping[str, Sequence[Any]] = attrs.field(factory=dict)


async def load_from_store(
    store: SessionStore,
    project_key: str,
    *,
    resume: str | None,
    timeout: float,
) -> StoreSession | None:
    """The session ``resume`` names (or, with None, the one ``continue`` picks), as the
    SDK's own materialization loads it; None when the store has nothing for it."""
    session_id = resume
    if session_id is None:
        session_id = await resolve_store_continue(store, project_key, timeout)
        if session_id is None:
            return None
    entries = await load_store_session(store, project_key, session_id, timeout)
    if not entries:
        return None
    subpaths: dict[str, Sequence[Any]] = {}
    if store_implements(store, "list_subkeys"):
        key = {"project_key": project_key, "session_id": session_id}
        for subpath in await store.list_subkeys(key):  # type: ignore[arg-type]
            if not _safe_subpath(subpath):
                continue
            loaded = await store.load({**key, "subpath": subpath})  # type: ignore[typeddict-item]
            if loaded:
                subpaths[subpath] = loaded
    return StoreSession(session_id, entries, subpaths)


def _safe_subpath(subpath: object) -> bool:
    if not isinstance(subpath, str) or not subpath or "\x00" in subpath:
        return False
    parts = subpath.replace("\\", "/").split("/")
    return not subpath.startswith(("/", "\\")) and not any(p in ("", ".", "..") for p in parts)


async def merge_into_local(paths: SessionPaths, session: StoreSession, host: str) -> list[str]:
    """Merge the store's copy into the local one (see module doc); the files changed."""
    changed: list[str] = []
    async with session_lock(lock_path(paths)):
        main = paths.local_dir / f"{session.session_id}.jsonl"
        if _merge_file(main, list(session.entries), host, session.session_id):
            changed.append(main.name)
        for subpath, entries in session.subpaths.items():
            metadata, transcript = split_agent_metadata(list(entries))
            rel = f"{session.session_id}/{subpath}.jsonl"
            path = paths.local_dir / rel
            if transcript and _merge_file(path, transcript, host, session.session_id):
                changed.append(rel)
            if metadata is not None:
                sidecar = path.with_name(agent_metadata_sidecar_name(path.name))
                if not sidecar.exists():
                    content = {k: v for k, v in metadata.items() if k != "type"}
                    install_atomically(sidecar, json.dumps(content).encode())
                    changed.append(os.fspath(sidecar.relative_to(paths.local_dir)))
    return changed


def _lines(entries: Sequence[Any]) -> bytes:
    return b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries)


def _uuid(entry: Any) -> str | None:
    value = entry.get("uuid") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


def _merge_file(path: Path, entries: list[Any], host: str, session_id: str) -> bool:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        install_atomically(path, _lines(entries))
        return True
    except OSError as exc:
        raise SyncError(f"Cannot read {path} to resume from the session store: {exc}",
                        host=host, side="local") from exc  # fmt: skip
    held: set[str] = set()
    for line in data.splitlines():
        try:
            uuid = _uuid(json.loads(line))
        except ValueError:
            continue
        if uuid is not None:
            held.add(uuid)
    # The last store entry the local copy holds; everything after it is new.
    last = max((i for i, e in enumerate(entries) if _uuid(e) in held), default=-1)
    tail = entries[last + 1 :]
    if not tail:
        return False
    if any(_uuid(e) in held for e in tail) or any(
        _uuid(e) is not None and _uuid(e) not in held for e in entries[: last + 1]
    ):
        raise SessionConflict(
            f"The session store's copy of {path.name} and the local one diverged: each "
            "holds entries the other lacks. Nothing was changed. Resume without "
            "session_store to continue the local copy, or move the local copy aside "
            f"({path}) to continue the store's.",
            host=host,
            session_id=session_id,
        )
    if data and not data.endswith(b"\n"):
        raise SessionConflict(
            f"The local copy {path} ends in a partial line; not extending it from the "
            "session store. Sync the session, then resume again.",
            host=host,
            session_id=session_id,
        )
    if not append_exactly(path, len(data), _lines(tail)):
        raise SyncError(f"{path} changed while resuming from the session store; try again.",
                        host=host, side="local")  # fmt: skip
    return True
