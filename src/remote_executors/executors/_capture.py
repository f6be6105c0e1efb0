"""What ``Executor.run`` keeps of a command's output: everything, up to a limit.

A command that prints without end (a tool that streams ``/dev/zero``, a log
followed forever) would otherwise grow this process's memory until its timeout,
by a hundred megabytes a second. Both executors read through :func:`capture`,
which stops reading at the limit; the caller then stops the command.
"""

from __future__ import annotations

import contextlib
import io
from typing import Literal

import anyio
from anyio.abc import ByteReceiveStream, Process

from ..errors import InvalidInput, OutputTooLarge

__all__ = ["DEFAULT_MAX_OUTPUT", "Overflow", "capture", "check_limit", "too_large"]

#: ``Executor.run``'s default ``max_output``: bytes kept per stream.
DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024

Stream = Literal["stdout", "stderr"]


class Overflow(Exception):
    """``stream`` passed the limit; the command is still running."""

    def __init__(self, stream: Stream) -> None:
        super().__init__(stream)
        self.stream: Stream = stream


def check_limit(max_output: int, host: str) -> int:
    if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 0:
        raise InvalidInput(
            f"max_output must be a number of bytes (an int >= 0), not {max_output!r}, "
            f"for a command on {host}.",
            host=host,
        )
    return max_output


async def capture(process: Process, input: bytes | None, limit: int) -> tuple[bytes, bytes]:
    """Feed ``input``, end stdin, and read stdout and stderr to their ends.

    Raises :class:`Overflow` as soon as either stream holds more than ``limit``
    bytes, having read at most one chunk past it: memory stays bounded.
    """
    # BytesIO: one growing buffer, handed out without a copy at the end (a list
    # of chunks joined would hold, and fault in, twice the output).
    kept: dict[Stream, io.BytesIO] = {"stdout": io.BytesIO(), "stderr": io.BytesIO()}
    overflow: list[Stream] = []
    scope = anyio.CancelScope()

    async def pump(stream: ByteReceiveStream | None, name: Stream) -> None:
        if stream is None:
            return
        sink = kept[name]
        try:
            while True:
                chunk = await stream.receive()
                if sink.tell() + len(chunk) > limit:
                    overflow.append(name)
                    scope.cancel()
                    return
                sink.write(chunk)
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    with scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump, process.stdout, "stdout")
            tg.start_soon(pump, process.stderr, "stderr")
            if process.stdin is not None:
                # The command may exit (or be stopped) without reading it all.
                if input:
                    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                        await process.stdin.send(input)
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await process.stdin.aclose()
    if overflow:
        kept.clear()  # nothing is returned: let it go before the caller cleans up
        raise Overflow(overflow[0])
    return kept["stdout"].getvalue(), kept["stderr"].getvalue()


def too_large(argv0: str, host: str, limit: int, stream: Stream) -> OutputTooLarge:
    """The error for a command whose ``stream`` passed ``limit`` (it has been stopped)."""
    return OutputTooLarge(
        f"{argv0} printed more than {limit} bytes on {stream} on {host} and was stopped "
        "there; nothing it printed is returned. If that much output is expected, pass a "
        "larger run(..., max_output=...) (bytes per stream), or have the command write "
        "to a file instead.",
        host=host,
        limit=limit,
        stream=stream,
    )
