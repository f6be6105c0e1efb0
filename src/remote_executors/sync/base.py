"""What a session sync is: where a session lives on each side, the strategy
protocol, and the report a sync returns.

A strategy only moves bytes; the no-loss rules (byte-prefix decisions,
conflict copies, the per-session lock) are shared by every strategy, so two
strategies given the same two sides make the same decisions.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import attrs

from remote_executors.executors.base import Executor
from remote_executors.paths import validate_session_id
from remote_executors.sync._decide import Kind

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_SESSION_BYTES",
    "FileSync",
    "Limits",
    "SessionPaths",
    "SessionSync",
    "SyncReport",
]


def _check_name(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    # Project dir names start with "-" (from the leading "/"); the scripts
    # only ever use them after "projects/", never as an argument on their own.
    if not value or value in (".", "..") or any(c in value for c in "/\n\r\x00"):
        raise ValueError(f"{attribute.name} must be a single directory name, got {value!r}")


def _check_sid(_: object, __: object, value: str | None) -> None:
    if value is not None:
        validate_session_id(value)


@attrs.frozen
class SessionPaths:
    """Where one session (or a whole project) lives on each side.

    The two project dir names differ when the paths differ
    (``/Users/me/shop`` here, ``/home/me/shop`` there): each is computed from
    that side's own resolved working directory. ``remote_config_dir`` is the
    executor's Claude config dir; ``None`` means that machine's default
    (``$CLAUDE_CONFIG_DIR``, else ``~/.claude``).
    """

    local_dir: Path
    """The local ``<config>/projects/<name>`` directory, where the SDK's readers look."""
    remote_project: str = attrs.field(validator=_check_name)
    """The project dir name on the executor's machine."""
    session_id: str | None = attrs.field(default=None, validator=_check_sid)
    """The session to sync; ``None`` syncs every session of the project."""
    remote_config_dir: str | None = None

    @property
    def remote_dir(self) -> str:
        """The remote projects dir as a shell expression's value would be (for messages)."""
        base = self.remote_config_dir or "~/.claude"
        return posixpath.join(base, "projects", self.remote_project)


#: The default limits of :class:`Limits`.
MAX_FILE_BYTES = 1 << 30
MAX_SESSION_BYTES = 4 << 30


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive number of bytes, got {value!r}")


@attrs.frozen
class Limits:
    """How much of a remote session a pull may copy here.

    The remote is another machine: it may hold (or claim to hold) files of
    any size. A file over ``max_file_bytes``, or one that would take the
    session's files together over ``max_session_bytes``, is not copied and
    is reported as :class:`~remote_executors.SyncTooLarge` (the rest of the
    session still syncs). Up to ``inline_bytes`` of new data travel with the
    listing in memory; more is streamed to disk, so memory stays bounded
    whatever the sizes.
    """

    max_file_bytes: int = attrs.field(default=MAX_FILE_BYTES, validator=_positive)
    max_session_bytes: int = attrs.field(default=MAX_SESSION_BYTES, validator=_positive)
    inline_bytes: int = attrs.field(default=8 << 20, validator=_positive)


@attrs.frozen
class FileSync:
    """What happened to one file. ``path`` is relative to the project dir."""

    path: str
    kind: Kind
    """SAME, PULL (local fast-forwarded), PUSH (remote behind) or CONFLICT."""
    moved: int = 0
    """Bytes written to the receiving side by this sync."""
    conflict_copy: Path | None = None
    """For a conflict: where the other side's copy was saved (locally)."""


@attrs.frozen
class SyncReport:
    """The outcome of one pull or push."""

    direction: Literal["pull", "push"]
    host: str
    paths: SessionPaths
    files: tuple[FileSync, ...] = ()
    seconds: float = 0.0

    @property
    def moved(self) -> int:
        """Bytes written to the receiving side."""
        return sum(f.moved for f in self.files)

    @property
    def conflicts(self) -> tuple[FileSync, ...]:
        return tuple(f for f in self.files if f.kind is Kind.CONFLICT)

    @property
    def local_ahead(self) -> tuple[FileSync, ...]:
        """Files the local side holds more of (what a push would send)."""
        return tuple(f for f in self.files if f.kind is Kind.PUSH)


@runtime_checkable
class SessionSync(Protocol):
    """A way to move session transcripts between an executor's machine and here.

    Implementations must follow the no-loss rules: a side is only ever
    extended by bytes it lacks from the other (a byte-prefix fast-forward),
    never truncated or overwritten; diverged copies are both kept and
    reported as :class:`~remote_executors.SessionConflict`; syncs of one
    session are serialized.
    """

    async def pull(self, executor: Executor, paths: SessionPaths) -> SyncReport:
        """Bring the local copy up to the remote one.

        Local files that are a prefix of the remote ones are extended; local
        files ahead of the remote are left alone and reported as PUSH.
        Raises :class:`~remote_executors.SessionConflict` (after syncing every
        other file) when copies diverged, other :class:`~remote_executors.SyncError`
        or connection errors when the sync could not complete.
        """
        ...

    async def push(self, executor: Executor, paths: SessionPaths) -> SyncReport:
        """Bring the remote copy up to the local one (pulling first what the remote has more of)."""
        ...
