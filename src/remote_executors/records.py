"""Which executor ran each session, and where: the session metadata store.

Resuming a session needs to know the machine that holds its transcript and
the directory it ran in there; the transcript itself does not say. This
module keeps that, one small JSON file per session, under the user's data
dir (``$REMOTE_EXECUTORS_DATA_DIR``, else platformdirs' ``user_data_dir``)::

    <root>/sessions/<session id>.json   {"version": 2, "session_id": ..., ...}
    <root>/sessions/.lock               flock'ed around every change

Guarantees:

* Writes are atomic and durable (temp file, fsync, rename, fsync of the
  directory): a reader, in any process, sees a whole old record or a whole
  new one, never a torn file. Files are 0600 and directories this module
  creates 0700: the paths in a record say what the user works on.
* Changes (:meth:`SessionRecords.put`, :meth:`~SessionRecords.update`,
  :meth:`~SessionRecords.delete`) hold an exclusive ``flock`` on
  ``sessions/.lock``, so concurrent read-modify-writes from threads or
  processes never lose an update. Reads take no lock; atomic renames make
  that safe.
* Session ids are validated (canonical lowercase UUID) before they reach a
  path, executor specs before they are recorded.
* ``executor`` is the executor's spec (``local``, ``ssh://box?ssh_config=...``,
  ``docker://c``): what reopens it for a resume. Version 1 files (an SSH
  alias, plus the ``ssh_config`` it was reached with) read as the same spec;
  they are rewritten as version 2 only when the record changes.
* A file this version cannot trust (invalid JSON, missing or ill-typed
  fields, a newer format version) is reported with a warning on the
  ``remote_executors.records`` logger and treated as absent by reads. It is
  never deleted or rewritten behind the user's back: only an explicit
  :meth:`~SessionRecords.put` or :meth:`~SessionRecords.delete` replaces or
  removes it. Unknown extra keys are ignored, so an older version can read
  what a newer one writes as long as the version number stays the same.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import attrs

from remote_executors._store_file import (
    DATA_DIR_ENV,
    data_dir,
    fsync_dir,
    install_atomically,
    locked,
)
from remote_executors.errors import InvalidInput
from remote_executors.executors.registry import check_spec, normalize_spec
from remote_executors.executors.ssh._spec import spec_from_options
from remote_executors.paths import validate_session_id

__all__ = [
    "DATA_DIR_ENV",
    "FORMAT_VERSION",
    "LOCAL",
    "SessionRecord",
    "SessionRecords",
    "data_dir",
    "get_session_record",
    "list_session_records",
]

LOCAL = "local"
"""The executor name recorded for sessions run on this machine."""


FORMAT_VERSION = 2
"""The version written into each record file; files with a higher one are not read.

1: ``executor`` is ``local`` or an SSH alias, with an optional ``ssh_config``.
2: ``executor`` is a spec (see :mod:`remote_executors.executors.registry`)."""

_APP_NAME = "remote-executors"
_SESSIONS = "sessions"
_LOCK_NAME = ".lock"
_SUFFIX = ".json"
_REQUIRED = ("session_id", "executor", "local_cwd", "created_at", "updated_at")
_OPTIONAL = ("remote_cwd", "remote_project_dir", "sync_error")
_OPTIONAL_V1 = (*_OPTIONAL, "ssh_config")

_log = logging.getLogger("remote_executors.records")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _check_session_id(_: object, __: attrs.Attribute[str], value: str) -> None:
    validate_session_id(value)


def _to_spec(value: object) -> str:
    """A well-formed spec, canonical (a bare alias ``box`` is ``ssh://box``); nothing
    that could act as an option. The scheme's class is not imported."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(
            f"Invalid executor {value!r}: expected {LOCAL!r} or a spec such as ssh://box.",
            host=repr(value),
        )
    return normalize_spec(value)


def _check_spec(_: object, __: attrs.Attribute[str], value: str) -> None:
    """Also run by ``attrs.validate`` (converters are not): a record changed behind
    attrs' back is refused before it is written."""
    if _to_spec(value) != value:
        raise InvalidInput(f"Executor {value!r} is not a canonical spec.", host=str(value))


def _check_path(record: SessionRecord, attribute: attrs.Attribute[Any], value: object) -> None:
    """Paths are absolute: a relative one would mean something else from every cwd."""
    if value is None and attribute.name != "local_cwd":
        return
    host = LOCAL if attribute.name == "local_cwd" else record.executor
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise InvalidInput(
            f"Invalid {attribute.name} {value!r}: expected an absolute path without NUL "
            "characters.",
            host=host,
        )


def _check_optional_str(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidInput(
            f"Invalid {attribute.name} {value!r}: expected a string or None.", host=LOCAL
        )


def _to_utc(value: dt.datetime) -> dt.datetime:
    """Keep every timestamp aware and in UTC, so records compare and sort safely."""
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise InvalidInput(
            f"Invalid timestamp {value!r}: expected a timezone-aware datetime.", host=LOCAL
        )
    return value.astimezone(dt.timezone.utc)


@attrs.frozen
class SessionRecord:
    """Where one session ran: what a resume needs to find its transcript again.

    Every field is checked on construction (and by ``attrs.evolve``), raising
    :class:`~remote_executors.errors.InvalidInput`, so a record that exists is
    one the store may write. ``remote_cwd`` and ``remote_project_dir`` describe
    the executor's machine and are ``None`` for local sessions. ``updated_at``
    defaults to ``created_at``; both are UTC (aware input is converted).
    ``sync_error`` is the last failed sync's message, ``None`` once a sync
    succeeded.
    """

    session_id: str = attrs.field(validator=_check_session_id)
    executor: str = attrs.field(converter=_to_spec, validator=_check_spec)
    """The executor's spec (``local``, ``ssh://box``, ``docker://c``...); a bare
    SSH alias is stored as ``ssh://ALIAS``."""
    local_cwd: str = attrs.field(validator=_check_path)
    remote_cwd: str | None = attrs.field(default=None, validator=_check_path)
    remote_project_dir: str | None = attrs.field(default=None, validator=_check_path)
    created_at: dt.datetime = attrs.field(factory=_now, converter=_to_utc)
    updated_at: dt.datetime = attrs.field(
        default=attrs.Factory(lambda self: self.created_at, takes_self=True),
        converter=_to_utc,
    )
    sync_error: str | None = attrs.field(default=None, validator=_check_optional_str)

    @property
    def is_remote(self) -> bool:
        """True when another machine holds the transcript (it must be synced / pushed)."""
        return self.executor != LOCAL


def _to_json(record: SessionRecord) -> dict[str, Any]:
    """The versioned on-disk form (datetimes as ISO 8601 strings)."""
    return {
        "version": FORMAT_VERSION,
        "session_id": record.session_id,
        "executor": record.executor,
        "local_cwd": record.local_cwd,
        "remote_cwd": record.remote_cwd,
        "remote_project_dir": record.remote_project_dir,
        "created_at": record.created_at.isoformat(timespec="microseconds"),
        "updated_at": record.updated_at.isoformat(timespec="microseconds"),
        "sync_error": record.sync_error,
    }


def _from_json(data: object) -> SessionRecord:
    """Parse the on-disk form; raise ``ValueError`` (incl. InvalidInput) if unusable.

    Unknown keys are ignored; a missing optional field reads as ``None``. A
    higher ``version`` raises :class:`_NewerFormat` (also a ``ValueError``).
    """
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    version = data.get("version")
    if type(version) is not int or version < 1:
        raise ValueError(f"bad or missing version {version!r}")
    if version > FORMAT_VERSION:
        raise _NewerFormat(version)
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    optional = _OPTIONAL_V1 if version == 1 else _OPTIONAL
    for key in (*_REQUIRED, *optional):
        value = data.get(key)
        if not (isinstance(value, str) or (value is None and key in optional)):
            raise ValueError(f"field {key} is {type(value).__name__}, not a string")
    executor = data["executor"]
    if version == 1:
        executor = _v1_spec(executor, data.get("ssh_config"))
    return SessionRecord(
        session_id=data["session_id"],
        executor=executor,
        local_cwd=data["local_cwd"],
        remote_cwd=data.get("remote_cwd"),
        remote_project_dir=data.get("remote_project_dir"),
        created_at=dt.datetime.fromisoformat(data["created_at"]),
        updated_at=dt.datetime.fromisoformat(data["updated_at"]),
        sync_error=data.get("sync_error"),
    )


def _v1_spec(executor: str, ssh_config: str | None) -> str:
    """A version 1 record's executor as a spec: ``local``, or the SSH alias with the
    ssh_config it was reached with."""
    if executor == LOCAL:
        return LOCAL
    # The alias was only checked loosely then ("no '-' first, no '/'"): one the
    # spec cannot hold is not a record to trust.
    check_spec(executor)
    if "://" in executor:
        raise ValueError(f"executor {executor!r} is not a version 1 SSH alias")
    if ssh_config is not None and not ssh_config.startswith("/"):
        raise ValueError(f"ssh_config {ssh_config!r} is not an absolute path")
    return spec_from_options(executor, {"ssh_config": ssh_config})


class _NewerFormat(ValueError):
    """The file was written by a newer version of this library."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"format version {version} is newer than this library's {FORMAT_VERSION}; "
            "upgrade remote-executors to read it"
        )


class SessionRecords:
    """The store: one JSON file per session under ``<root>/sessions/<sid>.json``.

    Cheap to construct; holds no open files. ``root`` defaults to
    :func:`data_dir`, read once here. Directories are created on the first
    write, not before, so reading an empty store leaves no trace.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._root = data_dir() if root is None else Path(root)

    @property
    def root(self) -> Path:
        """The store's root directory (records live in its ``sessions/`` subdirectory)."""
        return self._root

    def get(self, session_id: str) -> SessionRecord | None:
        """Return the record of ``session_id``, or ``None`` if there is none.

        A file that cannot be trusted (see the module docs) is logged as a
        warning and reads as ``None``; it is left as it is. Other I/O errors
        (e.g. permission denied) are raised: they are not "no record".
        """
        path = self._path(session_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return self._parse(path, data, session_id)

    def put(self, record: SessionRecord) -> None:
        """Write ``record`` whole, replacing any file for its session.

        This is the explicit full write: it also replaces a file that
        :meth:`get` reported as corrupt or too new. Use :meth:`update` to
        change some fields of an existing record.
        """
        attrs.validate(record)  # a record altered with object.__setattr__ is refused too
        path = self._path(record.session_id)
        with self._locked():
            self._write(path, record)

    def update(self, session_id: str, /, **changes: Any) -> SessionRecord | None:
        """Change some fields of the record under the store lock; return the new record.

        ``updated_at`` is set to now unless given in ``changes``. Returns
        ``None``, changing nothing, when there is no record or its file
        cannot be trusted (logged as for :meth:`get`): an update never
        replaces data it could not read. Invalid values raise
        :class:`~remote_executors.errors.InvalidInput` and nothing is
        written; an unknown field name raises ``TypeError``; ``session_id``
        cannot be changed (``put`` a new record).
        """
        path = self._path(session_id)
        if changes.get("session_id", session_id) != session_id:
            raise InvalidInput(
                "A record's session_id cannot be changed; put() a record for the new id.",
                host=LOCAL,
            )
        with self._locked():
            current = self.get(session_id)
            if current is None:
                return None
            # Stamped under the lock, so stamps follow the order writes land in.
            changes.setdefault("updated_at", _now())
            new = attrs.evolve(current, **changes)
            self._write(path, new)
        return new

    def note_synced(
        self,
        session_ids: Iterable[str],
        *,
        executor: str,
        local_cwd: str,
        remote_project_dir: str | None = None,
    ) -> builtins.list[str]:
        """After a sync with ``executor`` (its spec) that completed for ``session_ids`` (sessions
        that machine holds): keep what the records know; return the ids changed.

        A session with no record came from ``executor``: it gets one, so it is
        listed and resumed there rather than taken for a local one. A session
        recorded on ``executor`` whose last sync failed is in step again: its
        ``sync_error`` is cleared. Records of other machines are left alone.
        """
        executor = _to_spec(executor)
        changed = []
        for session_id in session_ids:
            path = self._path(session_id)
            with self._locked():
                current = self.get(session_id)
                if current is None:
                    self._write(
                        path,
                        SessionRecord(
                            session_id=session_id,
                            executor=executor,
                            local_cwd=local_cwd,
                            remote_project_dir=remote_project_dir,
                        ),
                    )
                elif current.executor == executor and current.sync_error is not None:
                    self._write(path, attrs.evolve(current, sync_error=None, updated_at=_now()))
                else:
                    continue
            changed.append(session_id)
        return changed

    def list(self, local_cwd: str | None = None) -> builtins.list[SessionRecord]:
        """Return every readable record, most recently updated first.

        With ``local_cwd``, only sessions whose ``local_cwd`` is the same
        directory, compared after ``os.path.realpath`` on both sides (so a
        symlinked spelling matches). Untrustworthy or unreadable files are
        logged as warnings and skipped, so one bad file cannot hide the rest.
        """
        wanted = None if local_cwd is None else os.path.realpath(local_cwd)
        records: builtins.list[SessionRecord] = []
        for session_id, path in self._files():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # deleted since the directory was listed
            except OSError as exc:
                _log.warning("Skipping session record %s: cannot read it: %s", path, exc)
                continue
            record = self._parse(path, data, session_id)
            if record is None:
                continue
            if wanted is not None and os.path.realpath(record.local_cwd) != wanted:
                continue
            records.append(record)
        records.sort(key=lambda r: (r.updated_at, r.session_id), reverse=True)
        return records

    def delete(self, session_id: str) -> bool:
        """Remove the record of ``session_id`` (even an untrustworthy one); True if it existed.

        Only the record goes: the transcript, local or remote, is not touched.
        """
        path = self._path(session_id)
        with self._locked():
            try:
                os.unlink(path)
            except FileNotFoundError:
                return False
            fsync_dir(path.parent)
        return True

    # -- internals ---------------------------------------------------------

    @property
    def _sessions(self) -> Path:
        return self._root / _SESSIONS

    def _path(self, session_id: str) -> Path:
        # Validation first: only a canonical UUID ever becomes part of a path.
        return self._sessions / f"{validate_session_id(session_id)}{_SUFFIX}"

    def _files(self) -> Iterator[tuple[str, Path]]:
        """Yield (session id, path) of every record file; temp and lock files are skipped."""
        try:
            names = os.listdir(self._sessions)
        except FileNotFoundError:
            return
        for name in names:
            if not name.endswith(_SUFFIX):
                continue
            session_id = name[: -len(_SUFFIX)]
            try:
                validate_session_id(session_id)
            except InvalidInput:
                continue  # not ours (a user's stray file); not worth a warning
            yield session_id, self._sessions / name

    @staticmethod
    def _parse(path: Path, data: bytes, session_id: str) -> SessionRecord | None:
        """Decode a file's bytes, or log why it cannot be trusted and return None."""
        try:
            record = _from_json(json.loads(data))
        except _NewerFormat as exc:
            _log.warning("Ignoring session record %s: %s", path, exc)
            return None
        except (ValueError, TypeError, RecursionError) as exc:  # JSON, UTF-8, fields, nesting
            _log.warning("Ignoring corrupt session record %s (left untouched): %s", path, exc)
            return None
        if record.session_id != session_id:
            _log.warning(
                "Ignoring session record %s (left untouched): it holds session %s",
                path,
                record.session_id,
            )
            return None
        return record

    @staticmethod
    def _write(path: Path, record: SessionRecord) -> None:
        # ensure_ascii: lone surrogates (undecodable file names) survive as JSON escapes.
        text = json.dumps(_to_json(record), ensure_ascii=True, indent=2) + "\n"
        install_atomically(path, text.encode("ascii"))

    def _locked(self) -> AbstractContextManager[None]:
        """The store's flock (excludes other threads and processes). Blocking is
        fine: holders only do a small local read and write."""
        return locked(self._sessions / _LOCK_NAME)


def get_session_record(session_id: str) -> SessionRecord | None:
    """Return the record of ``session_id`` in the default store (:func:`data_dir`), if any."""
    return SessionRecords().get(session_id)


def list_session_records(directory: str | None = None) -> list[SessionRecord]:
    """List the default store's records, newest first; only ``directory``'s when given.

    Named like ``claude_agent_sdk.list_sessions(directory=...)``, whose
    directory it filters by the same way (real paths compared).
    """
    return SessionRecords().list(local_cwd=directory)
