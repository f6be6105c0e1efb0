"""The frames a remote job's stdout travels in, and the decoder that reads them.

Anything on the remote that inherited the channel's stdout can write into it
at any time: a background job a login script started (``( sleep 1; echo 'you
have new mail' ) &`` in ``~/.bashrc``) prints in the middle of the command's
output, or after it. The status line only tells chatter printed *before* the
command from the command's output. So the bootstrap runs the command with its
stdout into a pipe and relays what it reads as frames::

    <nonce>:<4 lowercase hex digits: payload length><payload>

each written with one ``write()`` of at most ``PIPE_BUF`` bytes (4096 on Linux;
elsewhere the bootstrap keeps to POSIX's minimum, 512). A pipe
never interleaves another writer's bytes into such a write, so a frame always
arrives whole and contiguous; whatever lies between frames is someone else's
and is dropped here. The nonce is random per job and known only to the
bootstrap and to us, so chatter cannot forge a frame by accident.

A supervised job (reattach on, see supervisor.sh) ends its output with an
end frame, a header of length ``0000``, followed by one frame holding the
process's exit status: the local side then knows it has every byte, which
the end of a channel alone cannot tell after a reconnect.

stderr is not framed: it only feeds diagnostics and the caller's stderr
stream, which starts after the bootstrap's stderr mark.
"""

from __future__ import annotations

import logging
import re

__all__ = ["PIPE_BUF", "FrameDecoder", "encode_frames", "frame_tag", "max_payload"]

log = logging.getLogger("remote_executors.ssh")

#: Linux's atomic pipe write size, the largest frame the bootstrap writes (on
#: other systems it writes frames of at most 512 bytes, POSIX's minimum).
PIPE_BUF = 4096
_DIGITS = 4
_LENGTH_RE = re.compile(rb"[0-9a-f]{%d}" % _DIGITS)


def frame_tag(nonce: str) -> bytes:
    """What every frame of the job with ``nonce`` starts with."""
    return nonce.encode("ascii") + b":"


def max_payload(nonce: str) -> int:
    """The most payload bytes one frame carries (header and payload fit in ``PIPE_BUF``)."""
    return PIPE_BUF - len(frame_tag(nonce)) - _DIGITS


def encode_frames(nonce: str, data: bytes) -> bytes:
    """``data`` as the bootstrap frames it (for tests and the protocol's description)."""
    tag, size = frame_tag(nonce), max_payload(nonce)
    out = []
    for start in range(0, len(data), size):
        chunk = data[start : start + size]
        out.append(tag + b"%04x" % len(chunk) + chunk)
    return b"".join(out)


class FrameDecoder:
    """Turns a job's framed stdout back into the command's bytes, dropping the rest.

    Feed it the channel's stdout as it arrives (split anywhere); it returns the
    payload bytes now complete. Payload is passed on as it arrives, even before
    its frame is complete: a frame's bytes are contiguous on the channel, so
    nothing else can be inside it. ``frames`` counts the frames, ``noise`` the
    bytes dropped.
    """

    def __init__(self, nonce: str, *, end_frames: bool = False) -> None:
        self._end_frames = end_frames  # a supervised job's: "0000" ends the output
        self._tag = frame_tag(nonce)
        self._header = len(self._tag) + _DIGITS
        self._max = max_payload(nonce)
        self._pending = b""  # the start of what may be a header
        self._remaining = 0  # payload bytes still due in the current frame
        self.frames = 0
        self.noise = 0
        self.cut = 0  # payload bytes a frame announced that never came (set by close)
        self.ended = False  # the end frame came: the rest is the trailer
        self.trailer = b""  # the frame after the end frame (the exit status)

    def feed(self, data: bytes) -> bytes:
        """The command's bytes in ``data`` (with what earlier calls left pending)."""
        buf = self._pending + data if self._pending else data
        self._pending = b""
        out: list[bytes] = []
        dropped: list[bytes] = []
        pos, end = 0, len(buf)
        while pos < end:
            if self._remaining:
                take = min(self._remaining, end - pos)
                if self.ended:
                    self.trailer = (self.trailer + buf[pos : pos + take])[:32]
                else:
                    out.append(buf[pos : pos + take])
                pos += take
                self._remaining -= take
                continue
            found = buf.find(self._tag, pos)
            if found < 0:
                # Keep a tail that may be the start of a tag cut by the read.
                keep = max(pos, end - len(self._tag) + 1)
                dropped.append(buf[pos:keep])
                self._pending = buf[keep:]
                break
            dropped.append(buf[pos:found])
            if end - found < self._header:
                self._pending = buf[found:]
                break
            digits = buf[found + len(self._tag) : found + self._header]
            length = int(digits, 16) if _LENGTH_RE.fullmatch(digits) else -1
            if length == 0 and self._end_frames and not self.ended:
                self.ended = True
                pos = found + self._header
                continue
            if not 0 < length <= self._max:
                # Our tag but not a header we write: not ours to pass on.
                dropped.append(buf[found : found + 1])
                pos = found + 1
                continue
            self._remaining = length
            self.frames += 1
            pos = found + self._header
        self._drop(b"".join(dropped))
        return b"".join(out)

    def close(self) -> None:
        """The stream ended: what is left pending is noise, a frame left unfinished is cut."""
        self._drop(self._pending)
        self._pending = b""
        if self._remaining:
            self.cut += self._remaining
            log.debug("stdout ended %d bytes short of the end of a frame", self._remaining)
            self._remaining = 0

    def _drop(self, data: bytes) -> None:
        if data:
            self.noise += len(data)
            log.debug(
                "dropped %d bytes on stdout that the command did not write: %r",
                len(data),
                data[:120],
            )
