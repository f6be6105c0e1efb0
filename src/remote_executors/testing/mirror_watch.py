"""Watching a remote project dir and its local copy at once, line by line.

For test beds where both sides are on this machine (the loopback sshd): a
thread looks at both directories every millisecond and notes when each
line of each transcript (``*.jsonl`` at the top and under session dirs)
appeared on each side, which gives the live lag per line. On the way it
checks what a reader of the local copy must always see: a byte-prefix of the
remote file, no partial last line, and the same inode from the file's first
appearance on.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType

import attrs

__all__ = ["MirrorWatch", "percentile"]


@attrs.define
class _Side:
    data: bytearray = attrs.field(factory=bytearray)
    times: list[float] = attrs.field(factory=list)  # when line i appeared
    inode: int | None = None
    before: int = 0  # lines there when the watch started


#: How long a local file may show a partial last line (a read that raced a write).
PARTIAL_GRACE = 0.05


class MirrorWatch:
    """Use as a context manager; read :attr:`violations` and :meth:`lags` afterwards."""

    def __init__(self, remote_dir: Path, local_dir: Path, *, interval: float = 0.001) -> None:
        self.remote_dir = remote_dir
        self.local_dir = local_dir
        self.interval = interval
        self.remote: dict[str, _Side] = {}
        self.local: dict[str, _Side] = {}
        self.violations: set[str] = set()
        #: When each file was first seen ending in a partial line (cleared once it is whole).
        self._partial_since: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rx-mirror-watch", daemon=True)

    def __enter__(self) -> MirrorWatch:
        self._look()  # what is there already is not timed
        for sides in (self.remote, self.local):
            for side in sides.values():
                side.before = len(side.times)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._look()  # a last look, after everything settled

    def lines_at(self, rel: str, when: float) -> int:
        """How many lines of ``rel`` the local copy held at ``when`` (time.time())."""
        side = self.local.get(rel)
        return 0 if side is None else sum(1 for t in side.times if t <= when)

    def lags(self, rel: str | None = None) -> list[float]:
        """Per line written remotely while watched and seen on both sides (of ``rel``,
        or of every file): seconds from the remote write to the local one."""
        found: list[float] = []
        for name, remote in self.remote.items():
            local = self.local.get(name)
            if local is None or rel not in (None, name):
                continue
            first = max(remote.before, local.before)
            pairs = zip(remote.times[first:], local.times[first:], strict=False)
            found += [lt - rt for rt, lt in pairs]
        return found

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._look()
            time.sleep(self.interval)

    def _look(self) -> None:
        now = time.time()
        # Local first: whatever it holds, the remote held (at least) just before.
        for rel in _jsonl(self.local_dir):
            self._grow(self.local, self.local_dir, rel, now, local=True)
        for rel in _jsonl(self.remote_dir):
            self._grow(self.remote, self.remote_dir, rel, now, local=False)
        for rel, local in self.local.items():
            remote = self.remote.get(rel)
            have = bytes(local.data)
            if remote is None or not bytes(remote.data).startswith(have):
                self.violations.add(f"{rel}: local is not a prefix of the remote copy")
            if have and not have.endswith(b"\n"):
                # A read racing one write() may see part of it (Linux copies a write into the
                # page cache while readers read): what matters is that the file never rests
                # with a partial line, so it counts once it stays that way.
                since = self._partial_since.setdefault(rel, now)
                if now - since > PARTIAL_GRACE:
                    self.violations.add(f"{rel}: local ends in a partial line")
            else:
                self._partial_since.pop(rel, None)

    def _grow(self, sides: dict[str, _Side], base: Path, rel: str, now: float, local: bool) -> None:
        side = sides.setdefault(rel, _Side())
        try:
            with open(base / rel, "rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                f.seek(len(side.data))
                new = f.read()
        except FileNotFoundError:
            return
        if side.inode is None:
            side.inode = inode
        elif inode != side.inode and local:
            self.violations.add(f"{rel}: the local file was replaced (new inode)")
            side.inode = inode
        side.data += new
        side.times += [now] * new.count(b"\n")


def _jsonl(base: Path) -> list[str]:
    found: list[str] = []
    for root, _dirs, files in os.walk(base):
        rel_root = os.path.relpath(root, base)
        found += [
            name if rel_root == "." else f"{rel_root}/{name}"
            for name in files
            if name.endswith(".jsonl") and not name.startswith(".")
        ]
    return found


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
