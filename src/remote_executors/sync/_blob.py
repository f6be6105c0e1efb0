"""Bytes that came from the other side: in memory when small, in a local file when not.

A sync must not hold a whole remote file in memory: a session may carry a
multi-gigabyte tool result, and a hostile remote can claim any size. Small
reads (every ordinary turn) stay ``bytes``; anything larger is spooled to a
hidden temp file beside the file it is for (so installing it is a rename on
the same file system, and a leftover is swept like any other temp file of
ours). Everything that compares or installs remote data takes a :class:`Blob`
and works through it in fixed-size chunks, so memory stays bounded by the
chunk size whatever the file size.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from remote_executors._store_file import make_dirs

__all__ = ["CHUNK", "Blob", "Spool"]

#: How much is read or compared at a time.
CHUNK = 1 << 20


class Blob:
    """A read-only run of bytes: a ``bytes`` object, or a range of a local file."""

    def __init__(
        self, data: bytes = b"", *, path: Path | None = None, start: int = 0, length: int = 0
    ) -> None:
        self._data = data
        self._path = path
        self._start = start
        self._length = len(data) if path is None else length

    @classmethod
    def of(cls, data: bytes | Blob) -> Blob:
        return data if isinstance(data, Blob) else cls(data)

    @property
    def path(self) -> Path | None:
        """The local file holding the bytes (None: in memory)."""
        return self._path

    @property
    def in_memory(self) -> bool:
        return self._path is None

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        where = "memory" if self._path is None else os.fspath(self._path)
        return f"<Blob {self._length} bytes in {where}>"

    def slice(self, start: int, end: int | None = None) -> Blob:
        """Bytes ``[start, end)`` of this blob, without copying."""
        end = self._length if end is None else min(end, self._length)
        start = min(start, end)
        if self._path is None:
            return Blob(self._data[start:end])
        return Blob(path=self._path, start=self._start + start, length=end - start)

    def read(self, start: int = 0, length: int | None = None) -> bytes:
        """Up to ``length`` bytes from ``start`` (the caller keeps ``length`` small)."""
        end = self._length if length is None else min(self._length, start + length)
        if start >= end:
            return b""
        if self._path is None:
            return self._data[start:end]
        with open(self._path, "rb") as f:
            f.seek(self._start + start)
            return f.read(end - start)

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The bytes in order, ``size`` at a time."""
        if self._path is None:
            for at in range(0, self._length, size):
                yield self._data[at : at + size]
            return
        with open(self._path, "rb") as f:
            f.seek(self._start)
            left = self._length
            while left > 0:
                piece = f.read(min(size, left))
                if not piece:
                    raise OSError(f"{self._path} shrank while it was being read")
                left -= len(piece)
                yield piece

    def complete_length(self) -> int:
        """The length up to and including the last ``\\n`` (0 if there is none)."""
        if self._path is None:
            return self._data.rfind(b"\n") + 1
        end = self._length
        while end > 0:
            start = max(0, end - CHUNK)
            found = self.read(start, end - start).rfind(b"\n")
            if found >= 0:
                return start + found + 1
            end = start
        return 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bytes):
            return len(other) == self._length and self.read() == other
        if not isinstance(other, Blob):
            return NotImplemented
        if len(other) != self._length:
            return False
        return all(a == b for a, b in zip(self.chunks(), other.chunks(), strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable-ish view: not a dict key

    def startswith_file(self, path: Path, length: int) -> bool:
        """Whether this blob's first ``length`` bytes equal ``path``'s first ``length``."""
        return common_prefix(path, self.slice(0, length)) == length


def common_prefix(path: Path, blob: Blob, offset: int = 0) -> int:
    """Length of the common prefix of ``blob`` and ``path`` read from ``offset``."""
    done = 0
    with open(path, "rb") as f:
        f.seek(offset)
        for piece in blob.chunks():
            mine = f.read(len(piece))
            if mine == piece:
                done += len(piece)
                continue
            same = 0
            for a, b in zip(mine, piece, strict=False):
                if a != b:
                    break
                same += 1
            return done + same
    return done


class Spool:
    """A hidden temp file beside ``target`` that remote bytes are streamed into.

    Named like every temp file of ours (``.<name>.<random>.tmp``) so a spool
    left by a killed process is swept on the next sync. Use as a context
    manager: the file is removed on exit unless :meth:`keep` was called.
    """

    def __init__(self, target: Path) -> None:
        make_dirs(target.parent)
        fd, name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name[:200]}.", suffix=".tmp"
        )
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self.size = 0
        self._kept = False

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.size += len(data)

    def blob(self) -> Blob:
        """What was written so far (flushed), as a blob."""
        self._file.flush()
        return Blob(path=self.path, start=0, length=self.size)

    def keep(self) -> None:
        """Leave the file for the caller (e.g. it was renamed into place)."""
        self._kept = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        if not self._kept:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
