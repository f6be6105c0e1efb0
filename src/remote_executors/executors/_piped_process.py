"""``PipedProcess``: an ``anyio.abc.Process`` whose three streams are set once.

The remote job process, the reattaching process and the fake one each build
their stdin/stdout/stderr in ``__init__``; the three read-only properties
``anyio.abc.Process`` asks for are the same for all of them.
"""

from __future__ import annotations

from anyio.abc import ByteReceiveStream, ByteSendStream, Process

__all__ = ["PipedProcess"]


class PipedProcess(Process):
    """Subclasses set ``_stdin``, ``_stdout`` and ``_stderr`` (None: not piped)."""

    _stdin: ByteSendStream
    _stdout: ByteReceiveStream
    _stderr: ByteReceiveStream | None

    @property
    def stdin(self) -> ByteSendStream:
        return self._stdin

    @property
    def stdout(self) -> ByteReceiveStream:
        return self._stdout

    @property
    def stderr(self) -> ByteReceiveStream | None:
        return self._stderr
