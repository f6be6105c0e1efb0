"""A spare bootstrap channel, opened ahead of the next spawn.

Starting a remote process costs a channel (on the SSH connection, or a
``docker exec``), a login shell and the bootstrap decoding itself before
anything job-specific happens; the bootstrap then waits for its first stdin
line, the job header. So a channel can be opened early and left waiting
there: the next spawn writes its header to it and skips all of that. Each
spawn that takes the spare opens the next one while it waits for its own
status line.

A spare costs one idle ``/bin/sh`` on the remote (and one session channel,
counted against sshd's ``MaxSessions`` like any other). It never outlives
its use: the bootstrap exits quietly at the end of its stdin, which closing
the executor, a spare past ``max_age``, or a dropped link all bring about.

The next spare opens when a job of the executor ends, not while one starts:
its login shell would compete with the starting program for the CPU (on the
loopback test bed, the very same CPU).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time

import anyio

from ..errors import ExecutorError
from ._backend import Backend, Channel
from ._remote_job import remote_command

log = logging.getLogger("remote_executors.spare")

#: Seconds a spare waits for a spawn before it is closed. Long enough to span
#: the gap between one session's end and the next prompt, short enough that an
#: idle executor does not hold a remote shell (and a connection) for long.
MAX_AGE = 120.0


def _end_input(channel: Channel) -> None:
    """End the bootstrap's input, which ends it. A channel that cannot end its
    stdin alone (a Kubernetes exec under the v4 protocol) is ended whole: the
    other side then sees its stdin end too."""
    if getattr(channel, "closes_stdin", True):
        channel.close_stdin()
    else:
        channel.send_signal(signal.SIGKILL)


class SpareChannel:
    """At most one pre-opened bootstrap channel for ``backend``."""

    def __init__(self, backend: Backend, *, max_age: float = MAX_AGE) -> None:
        self._backend = backend
        self._max_age = max_age
        self._channel: Channel | None = None
        self._pipe_stderr = False
        self._wanted_stderr = False  # what the last spawn asked for
        self._opened_at = 0.0
        self._expiry: threading.Timer | None = None
        self._opening = False
        self._closed = False
        #: Spawns that ran on the spare, and spares thrown away unused (tests, benches).
        self.taken = 0
        self.discarded = 0

    @property
    def channel(self) -> Channel | None:
        """The spare waiting now, if any."""
        return self._channel

    async def take(self, pipe_stderr: bool) -> Channel | None:
        """The spare, if it is alive, fresh and of the kind asked for; else None
        (a spare that is not is closed)."""
        self._wanted_stderr = pipe_stderr
        channel, self._channel = self._channel, None
        self._stop_expiry()
        if channel is None:
            return None
        fresh = time.monotonic() - self._opened_at < self._max_age
        if channel.returncode is None and fresh and pipe_stderr == self._pipe_stderr:
            self.taken += 1
            return channel
        await self.discard(channel)
        return None

    async def refill(self, pipe_stderr: bool | None = None) -> None:
        """Open the next spare, unless there is one (or one is being opened);
        by default of the stderr kind the last spawn asked for."""
        if pipe_stderr is None:
            pipe_stderr = self._wanted_stderr
        if self._closed or self._opening or self._channel is not None:
            return
        self._opening = True
        try:
            channel = await self._backend.open(remote_command(), pipe_stderr=pipe_stderr)
        except (ExecutorError, OSError) as exc:
            # No spare this time: the next spawn opens its own channel and says why.
            log.debug("%s: no spare channel: %s", self._backend.host, exc)
            return
        finally:
            self._opening = False
        if self._closed or self._channel is not None:
            await self.discard(channel)
            return
        self._channel = channel
        self._pipe_stderr = pipe_stderr
        self._opened_at = time.monotonic()
        # Ending its stdin ends the bootstrap: the channel then closes by itself.
        self._expiry = threading.Timer(self._max_age, _end_input, (channel,))
        self._expiry.daemon = True
        self._expiry.start()

    async def discard(self, channel: Channel) -> None:
        """Close a channel that carried no job (the bootstrap exits at end of input)."""
        self.discarded += 1
        with anyio.CancelScope(shield=True):
            _end_input(channel)
            with anyio.move_on_after(2):
                code = await channel.wait()
                if code not in (0, None):
                    # A refused channel (MaxSessions) teaches the backend its limit.
                    with contextlib.suppress(Exception):
                        self._backend.connect_failure(channel.stderr_text(), code)
            if channel.returncode is None:
                channel.send_signal(signal.SIGKILL)
            await channel.aclose()

    def _stop_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    async def aclose(self) -> None:
        """Close the spare; no new one is opened after this."""
        self._closed = True
        channel, self._channel = self._channel, None
        self._stop_expiry()
        if channel is not None:
            await self.discard(channel)
