"""The internal seam between an executor and what carries its jobs.

A backend (OpenSSH, Fabric, a container engine's CLI, a Kubernetes exec
stream) does three things: connect (and say precisely why it can't), open one
remote command line as a channel with byte pipes, and say when a job ended
because its carrier failed rather than its program. Everything above it (the
bootstrap protocol, the watchdog, the SDK) is shared by every backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs
from anyio.abc import ByteReceiveStream

from ..errors import ConnectionFailed, ExecutorError

#: Connections one backend opens to a host at most: sshd's MaxSessions caps the
#: channels of each (10 by default), and past the first one each carries the
#: overflow. 100 sessions with their live followers need about 20.
MAX_CONNECTIONS = 32


def pool_full(host: str, per_connection: int | None) -> ConnectionFailed:
    """The error when ``MAX_CONNECTIONS`` connections cannot carry one more channel."""
    each = f" ({per_connection} channels each)" if per_connection else ""
    return ConnectionFailed(
        f"{host} refused to open another session channel on {MAX_CONNECTIONS} "
        f"connections{each}. Raise MaxSessions in its sshd_config or run fewer "
        "sessions at once.",
        host=host,
    )


def refused_in_a_row(host: str, attempts: int) -> ConnectionFailed:
    """The error when channel opens kept being refused."""
    return ConnectionFailed(
        f"{host} refused {attempts} session channels in a row. Raise MaxSessions in its "
        "sshd_config or run fewer sessions at once.",
        host=host,
    )


class ChannelRefused(Exception):
    """The channel never reached the remote command: the connection carrying it
    refused it (MaxSessions) or was gone. Nothing ran; open it again."""


def _options(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


@attrs.frozen
class LinkOptions:
    """How to reach the host: the ``SSHExecutor`` options every backend honours."""

    ssh_config: str | None = None  # absolute; None: the user's default config
    options: Mapping[str, str] = attrs.field(factory=dict, converter=_options)  # -o Key=Value
    accept_new_host_keys: bool = False
    connect_timeout: float = 15.0
    keepalive_interval: int = 5
    keepalive_count: int = 3


@attrs.frozen
class Ending:
    """How a job's channel ended, for ``Backend.lost_error`` to judge."""

    returncode: int  # nonzero; negative: the local client was killed by that signal
    pid: int  # the local client's (this process's own when there is no client)
    signalled: bool  # this side stopped it (terminate, kill, a gentle stop)
    stderr: str  # the end of what came on stderr


class Channel(Protocol):
    """One running remote command line, as the backend carries it."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    stdout: ByteReceiveStream
    stderr: ByteReceiveStream | None  # None: stderr is kept aside, see stderr_text

    def write_stdin(self, data: bytes) -> None:
        """Blocking, thread-safe write of all of ``data``; raises OSError when gone."""

    def close_stdin(self) -> None: ...

    def stderr_text(self) -> str:
        """What stderr held, when it was kept aside (empty otherwise)."""

    async def wait(self) -> int: ...

    async def aclose(self) -> None:
        """Release the local pipes (waits for the client process to end)."""

    def send_signal(self, signum: int) -> None: ...


class Backend(Protocol):
    """How an executor reaches one machine (an SSH host, a container, a pod)."""

    host: str

    async def connect(self) -> None:
        """Make sure a (shared) connection is up; raise ``ConnectionFailed`` types."""

    async def open(self, remote_command: str, *, pipe_stderr: bool) -> Channel:
        """Start ``remote_command`` under the remote login shell."""

    def connect_failure(self, stderr: str, returncode: int) -> Exception | None:
        """Classify a channel that died before the remote side answered
        (``ChannelRefused``: it never reached it; open another)."""

    def lost_error(self, ending: Ending) -> ExecutorError | None:
        """The typed error (usually ``ProcessLost``) when the carrier (the link,
        the local client, the exec stream) and not the program ended a job whose
        exit status was nonzero; None when the program's own status stands."""

    async def aclose(self) -> None: ...
