"""What to do with one transcript file, given what each side holds.

Transcripts are append-only, so the only safe moves are fast-forwards: a side
may be replaced by the other's content only when its own content is a strict
byte-prefix of it. Anything else is a conflict and nothing is overwritten.

The decision is a pure function of the two byte strings (``None`` for a file
missing on that side). It costs one prefix comparison (a ``memcmp`` over the
shorter side); locating where two copies diverge is only paid for conflicts.

Partial lines: while a turn runs, the remote CLI may be half-way through
writing a line. Pass the remote copy through :func:`complete_lines` before
deciding: a partial last line is never installed locally; it arrives complete
on the next sync. Local copies are only ever written by the library from
complete lines (or by a local CLI), so they are compared as they are.
"""

from __future__ import annotations

import enum
from pathlib import Path

import attrs

from remote_executors.sync._blob import Blob, common_prefix

__all__ = ["Decision", "Kind", "complete_lines", "decide", "decide_file"]

# Large enough that slicing costs little per byte, small enough that the final
# bisection inside one chunk is a handful of cheap comparisons.
_CHUNK = 1 << 16


class Kind(enum.Enum):
    """The move that keeps both sides without losing a line."""

    SAME = "same"
    """Both sides hold the same bytes (or the file is missing on both)."""
    PULL = "pull"
    """Local is missing or a strict prefix of remote: fast-forward local."""
    PUSH = "push"
    """Remote is missing or a strict prefix of local: remote is behind."""
    CONFLICT = "conflict"
    """Neither is a prefix of the other: keep both, overwrite nothing."""


@attrs.frozen
class Decision:
    """The outcome of :func:`decide` for one file.

    ``common`` is the length of the longest common byte-prefix: for a conflict
    it is the offset of the first differing byte, which an error message can
    turn into a line number; otherwise it is the shorter side's size.
    """

    kind: Kind
    local_size: int | None
    remote_size: int | None
    common: int


def decide(local: bytes | None, remote: bytes | None) -> Decision:
    """Decide how to bring ``local`` and ``remote`` in step.

    ``None`` means the file does not exist on that side; an existing empty
    file is ``b""``. A missing side is behind any existing one, even an empty
    one, so that the file gets created there.
    """
    local_size = None if local is None else len(local)
    remote_size = None if remote is None else len(remote)
    if local is None:
        return Decision(Kind.SAME if remote is None else Kind.PULL, None, remote_size, 0)
    if remote is None:
        return Decision(Kind.PUSH, local_size, None, 0)
    if len(local) == len(remote):
        if local == remote:
            return Decision(Kind.SAME, local_size, remote_size, len(local))
    elif len(local) < len(remote):
        if remote.startswith(local):
            return Decision(Kind.PULL, local_size, remote_size, len(local))
    elif local.startswith(remote):
        return Decision(Kind.PUSH, local_size, remote_size, len(remote))
    return Decision(Kind.CONFLICT, local_size, remote_size, _common_prefix(local, remote))


def complete_lines(data: bytes) -> bytes:
    """Return ``data`` without a trailing partial line (bytes after the last ``\\n``).

    Use it on a copy of a file that may still be being written: a partial
    last line is never installed locally; it arrives complete on the next
    sync. Data with no newline at all is entirely partial and yields ``b""``.
    """
    # bytes[:len] returns the same object, so the common case copies nothing.
    return data[: data.rfind(b"\n") + 1]


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the longest common prefix of ``a`` and ``b``."""
    end = min(len(a), len(b))
    start = 0
    # Compare whole chunks (memcmp speed) to find the one that differs...
    while start < end:
        stop = min(start + _CHUNK, end)
        if a[start:stop] != b[start:stop]:
            break
        start = stop
    else:
        return end
    # ...then bisect inside it, keeping the first difference in [lo, hi).
    lo, hi = start, stop
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def decide_file(local: Path | None, remote: Blob | None) -> Decision:
    """:func:`decide` for a local file and remote bytes of any size, in bounded memory.

    ``local`` is the local file's path (None: missing; a path that does not
    exist counts as missing too).
    """
    local_size = None
    if local is not None:
        try:
            local_size = local.stat().st_size
        except FileNotFoundError:
            local = None
    remote_size = None if remote is None else len(remote)
    if local is None or local_size is None:
        return Decision(Kind.SAME if remote is None else Kind.PULL, None, remote_size, 0)
    if remote is None or remote_size is None:
        return Decision(Kind.PUSH, local_size, None, 0)
    shorter = min(local_size, remote_size)
    common = common_prefix(local, remote.slice(0, shorter))
    if common == shorter:
        if local_size == remote_size:
            return Decision(Kind.SAME, local_size, remote_size, common)
        kind = Kind.PULL if local_size < remote_size else Kind.PUSH
        return Decision(kind, local_size, remote_size, common)
    return Decision(Kind.CONFLICT, local_size, remote_size, common)
