"""Reading the live follower's output (``follow.pl``): framed, byte-exact, bounded.

The remote is another machine and may lie: every header is matched in full,
every length is checked against a cap before a byte of its payload is kept,
and every name must be one of the session's files. Anything else stops the
parse with :class:`LiveProtocolError`; nothing is guessed. Memory stays
below one header plus one payload, whatever the stream holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from remote_executors.sync._reconcile import WINDOW, is_session_file

__all__ = [
    "MAX_HEADER",
    "MAX_PAYLOAD",
    "Data",
    "FrameParser",
    "Frame",
    "Head",
    "Hello",
    "LiveProtocolError",
    "Problem",
    "Synced",
]

#: The longest header line accepted (a name is at most a few hundred bytes).
MAX_HEADER = 8192
#: The largest data frame accepted (the follower sends at most 256 KiB).
MAX_PAYLOAD = 1 << 20

_NUM = rb"(0|[1-9][0-9]{0,19})"
_TAG = rb"([1-9][0-9]{0,8}) "
_HELLO = re.compile(rb"L ([0-9]{1,4}) ([a-z]{1,16})")
_HEAD = re.compile(rb"H " + _TAG + _NUM + rb" (.+)", re.DOTALL)
_DATA = re.compile(rb"D " + _TAG + _NUM + rb" " + _NUM + rb" (.+)", re.DOTALL)
_PROBLEM = re.compile(rb"([TB]) " + _TAG + _NUM + rb" (.+)", re.DOTALL)
_UNREADABLE = re.compile(rb"E " + _TAG + rb"(.+)", re.DOTALL)
_SYNCED = re.compile(rb"S " + _TAG + _NUM)


class LiveProtocolError(Exception):
    """The follower's output is not what ``follow.pl`` writes."""


@attrs.frozen
class Hello:
    version: int
    mode: str


@attrs.frozen
class Head:
    """The file's first bytes, to check against the local ones."""

    tag: int
    rel: str
    data: bytes


@attrs.frozen
class Data:
    """The file's bytes ``[offset, offset + len(data))``."""

    tag: int
    rel: str
    offset: int
    data: bytes


@attrs.frozen
class Problem:
    """A file the follower will not send: ``shrunk``, ``too-big`` or ``unreadable``."""

    tag: int
    rel: str
    kind: str
    size: int = -1


@attrs.frozen
class Synced:
    """Everything of session ``tag`` on the remote disk when flush ``seq`` was asked
    for has been sent."""

    tag: int
    seq: int


Frame = Hello | Head | Data | Problem | Synced


class FrameParser:
    """Push parser: :meth:`feed` bytes as they arrive, get whole frames back.

    Every frame but the hello names a session by the tag the local side gave
    it; ``session_of`` maps a tag to the session id whose files it may name.
    Frames of a tag it does not know (a session just let go, whose last bytes
    were in flight) are read and dropped.
    """

    def __init__(
        self, session_of: Callable[[int], str | None], *, max_payload: int = MAX_PAYLOAD
    ) -> None:
        self._session_of = session_of
        self._max_payload = max_payload
        self._buf = bytearray()
        self._pending: tuple[bytes, int] | None = None  # header awaiting its payload
        self._hello = False

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buf += chunk
        frames: list[Frame] = []
        while True:
            if self._pending is not None:
                header, size = self._pending
                if len(self._buf) < size:
                    return frames
                payload = bytes(self._buf[:size])
                del self._buf[:size]
                self._pending = None
                frame = self._with_payload(header, payload)
                if frame is not None:
                    frames.append(frame)
                continue
            end = self._buf.find(b"\n", 0, MAX_HEADER + 1)
            if end < 0:
                if len(self._buf) > MAX_HEADER:
                    raise LiveProtocolError(f"a header longer than {MAX_HEADER} bytes")
                return frames
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            frame = self._header(line)
            if frame is not None:
                frames.append(frame)

    def _header(self, line: bytes) -> Frame | None:
        if not self._hello:
            hello = _HELLO.fullmatch(line)
            if hello is None:
                raise LiveProtocolError(f"unexpected first line {line[:80]!r}")
            self._hello = True
            return Hello(int(hello[1]), hello[2].decode("ascii"))
        if (m := _DATA.fullmatch(line)) is not None:
            size = int(m[3])
            if size == 0 or size > self._max_payload:
                raise LiveProtocolError(f"a data frame of {size} bytes")
            self._pending = (line, size)
            return None
        if (m := _HEAD.fullmatch(line)) is not None:
            size = int(m[2])
            if size > WINDOW:
                raise LiveProtocolError(f"a head of {size} bytes")
            self._pending = (line, size)
            return None
        if (m := _SYNCED.fullmatch(line)) is not None:
            return Synced(int(m[1]), int(m[2]))
        if (m := _PROBLEM.fullmatch(line)) is not None:
            kind = "shrunk" if m[1] == b"T" else "too-big"
            tag = int(m[2])
            rel = self._rel(tag, m[4])
            return None if rel is None else Problem(tag, rel, kind, int(m[3]))
        if (m := _UNREADABLE.fullmatch(line)) is not None:
            tag = int(m[1])
            rel = self._rel(tag, m[2])
            return None if rel is None else Problem(tag, rel, "unreadable")
        raise LiveProtocolError(f"unexpected line {line[:80]!r}")

    def _with_payload(self, header: bytes, payload: bytes) -> Frame | None:
        if (m := _DATA.fullmatch(header)) is not None:
            tag = int(m[1])
            rel = self._rel(tag, m[4])
            return None if rel is None else Data(tag, rel, int(m[2]), payload)
        m = _HEAD.fullmatch(header)
        assert m is not None
        tag = int(m[1])
        rel = self._rel(tag, m[3])
        return None if rel is None else Head(tag, rel, payload)

    def _rel(self, tag: int, raw: bytes) -> str | None:
        """The file name, checked against the tag's session; None for a tag not followed."""
        sid = self._session_of(tag)
        if sid is None:
            return None
        rel = raw.decode("utf-8", "surrogateescape")
        if not is_session_file(rel, sid):
            raise LiveProtocolError(f"{rel[:120]!r} is not a file of session {sid}")
        return rel
