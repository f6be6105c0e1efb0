"""Temp files of ours that a killed process left behind, and when to remove them.

Every file this library writes into a project directory goes through a temp
file beside its target (``.<name>.<random>.tmp``, see ``_install`` and
``_blob.Spool``) and is renamed or removed when done. ``kill -9`` at the wrong
moment leaves one behind; nobody else would ever remove it. A sync sweeps
those of the session it syncs, once they are old enough that no live
process of ours can still be writing them (a writer touches its temp file
with every write, and installs hold the session's lock).
"""

from __future__ import annotations

import contextlib
import os
import re
import time

__all__ = ["STALE_SECONDS", "Sweeper", "is_our_temp", "remove_if_stale"]

#: A temp file untouched for this long belongs to no live writer.
STALE_SECONDS = 15 * 60

# mkstemp's random part is 8 characters of [a-z0-9_].
_TEMP = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def is_our_temp(name: str) -> bool:
    return _TEMP.fullmatch(name) is not None


def remove_if_stale(path: str, now: float | None = None) -> bool:
    """Remove ``path`` (one of our temp files) if nothing wrote it for a while."""
    now = time.time() if now is None else now
    with contextlib.suppress(OSError):
        if now - os.lstat(path).st_mtime >= STALE_SECONDS:
            os.unlink(path)
            return True
    return False


class Sweeper:
    """Removes the stale temp files it is shown; remembers the fresh ones (``kept``)
    so a later sync can look at just those again."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now
        self.kept: list[str] = []

    def see(self, path: str) -> None:
        if not remove_if_stale(path, self.now) and os.path.lexists(path):
            self.kept.append(path)
