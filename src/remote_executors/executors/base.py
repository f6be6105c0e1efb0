"""The ``Executor`` protocol and the small value classes it speaks in.

An executor is one machine: it can start a long-lived process there
(``spawn``), run a short command there (``run``), tell its home directory and
map a local working directory to its own. That is the whole seam between the
SDK-facing code and the machine; everything SSH-specific stays behind it.

Beyond the protocol, an executor (or the process it spawns) may offer small
optional capabilities, each a protocol of its own that the rest of the library
probes at run time (the way the SDK probes a ``SessionStore``'s optional
methods) rather than checking for a concrete class:

* :class:`SharesLocalFilesystem` -- its processes read and write this
  machine's files (nothing to sync; paths map to themselves).
* :class:`RsyncShell` -- rsync can reach it with ``rsync -e <argv>``.
* :class:`SftpChannel` -- it holds an SFTP session the sync can use.
* :class:`ReportsClosed` -- it says whether ``aclose`` ran.
* :class:`FindsClaude` -- ``spawn("claude", ...)`` finds the CLI the way a
  session does (beyond ``PATH``), so ``check`` asks it rather than ``run``.
* :class:`ReportsLoss` (a process) -- it can tell a lost link from an exit.
* :class:`ReportsPlacement` (a process) -- it says which program runs, and where.

The ``*_of`` / ``shares_local_filesystem`` helpers below are the probes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

import attrs
from anyio.abc import Process

if TYPE_CHECKING:
    from ..errors import ExecutorError

__all__ = [
    "Attachment",
    "CommandResult",
    "Executor",
    "FindsClaude",
    "ReportsClosed",
    "ReportsLoss",
    "ReportsPlacement",
    "RsyncShell",
    "SftpChannel",
    "SharesLocalFilesystem",
    "SpawnOptions",
    "finds_claude",
    "is_closed",
    "lost_error_of",
    "placement_of",
    "rsync_shell_of",
    "sftp_channel_of",
    "shares_local_filesystem",
]

T = TypeVar("T")


def _freeze_env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(env or {})


def _strings(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def _ints(items: Iterable[int]) -> tuple[int, ...]:
    return tuple(items)


@attrs.frozen
class Attachment:
    """Content a process needs as a path on its own machine.

    ``kind="file"``: ``data`` is the file's bytes. ``kind="tree"``: ``data`` is an
    uncompressed tar archive of a directory's contents (relative names only),
    unpacked into a directory whose path the process gets. Either way the path
    is private to the executor's user (0600 files in a 0700 directory) and is
    removed when the process ends.
    """

    kind: Literal["file", "tree"]
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")

    def __attrs_post_init__(self) -> None:
        if self.kind not in ("file", "tree"):
            raise ValueError(f"Attachment kind must be 'file' or 'tree', not {self.kind!r}")


def _attachments(items: Mapping[int, Attachment] | None) -> Mapping[int, Attachment]:
    return dict(items or {})


@attrs.frozen
class SpawnOptions:
    """What to start: the Python form of the TypeScript SDK's ``SpawnOptions``.

    ``cwd`` and ``env`` are already the machine's own (see ``Executor.map_cwd``);
    ``env`` holds only the variables to add to the machine's environment.
    ``stderr`` asks for a readable stderr stream; without it stderr is kept
    by the executor for diagnostics only.
    ``unset_env`` names variables to remove from the machine's environment.
    ``private_args`` are indices into ``args`` whose values must not appear on
    any command line (e.g. JSON holding credentials): a remote executor hands
    each over as the path of a private file holding the value. Locally they are
    passed as they are, as the SDK itself does.
    ``attachments`` maps indices into ``args`` to content the process needs as
    a path (a file or a directory tree, see :class:`Attachment`): every
    executor, local ones too, replaces each such argument with the path of a
    private copy of the content on its machine, removed when the process ends.
    ``outlive_link`` asks an executor that can (``SSHExecutor(reattach_within=...)``)
    to keep the process running through a dropped link and reattach to it; the
    stdout of such a process carries a :class:`~remote_executors.LinkStatus`
    line at a line boundary on each drop and reattach, so it is for line-based
    JSON streams such as the Claude Code CLI's (the SDK seam sets it). Other
    processes keep an exact byte stream and end with the link.
    """

    command: str
    args: Sequence[str] = attrs.field(default=(), converter=_strings)
    cwd: str | None = None
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_env)
    stderr: bool = False
    unset_env: Sequence[str] = attrs.field(default=(), converter=_strings)
    private_args: Sequence[int] = attrs.field(default=(), converter=_ints)
    attachments: Mapping[int, Attachment] = attrs.field(factory=dict, converter=_attachments)
    outlive_link: bool = False

    @property
    def argv(self) -> tuple[str, ...]:
        return (self.command, *self.args)


@attrs.frozen
class CommandResult:
    """Outcome of ``Executor.run``."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@runtime_checkable
class Executor(Protocol):
    """One machine that can run processes.

    Implementations: ``LocalExecutor``, ``SSHExecutor`` and, for tests,
    ``remote_executors.testing.FakeExecutor``. The process
    ``spawn`` returns behaves like ``anyio.abc.Process``: byte streams for
    stdin/stdout/stderr, ``wait()``, ``terminate()``, ``kill()``,
    ``send_signal()``, ``returncode`` and ``pid`` (the local pid of whatever
    carries the process, e.g. the ``ssh`` client).
    """

    @property
    def name(self) -> str:
        """A short name for messages: ``"local"``, the ssh host alias, the container..."""
        ...

    @property
    def spec(self) -> str:
        """The string that names this executor and reopens it:
        ``remote_executors.executor_from_spec(executor.spec)`` gives an equivalent
        executor (``"local"``, ``"ssh://box"``, ``"docker://c"``, ...). Session
        records keep it, so a resume finds the machine again."""
        ...

    async def spawn(self, options: SpawnOptions) -> Process:
        """Start a long-lived process; return once it is running.

        Raises the ``ExecutorError`` subclass that says why it could not start
        (connection, authentication, missing cwd, ...).
        """
        ...

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = 30.0,
        max_output: int = 64 * 1024 * 1024,
    ) -> CommandResult:
        """Run a short command to completion and capture its output.

        ``stdout`` holds only what the command itself wrote: on a remote
        machine, output that a login script's background job prints into the
        same channel is dropped.

        A non-zero exit is returned, not raised; failure to run at all raises
        an ``ExecutorError``; overrunning ``timeout`` raises ``CommandTimeout``
        after killing the command. More than ``max_output`` bytes on stdout or
        on stderr raises ``OutputTooLarge`` (naming the stream) after killing
        the command, having kept no more than about that much in memory; the
        default (64 MiB) is far above what a short command prints, and a
        command expected to print more should stream through ``spawn``.
        """
        ...

    async def home(self) -> str:
        """The machine's home directory for the user the executor runs as."""
        ...

    async def map_cwd(self, local_cwd: str) -> str:
        """The path on this machine that corresponds to ``local_cwd`` here."""
        ...

    async def aclose(self) -> None:
        """Release connections and stop every process still running."""
        ...


# -- optional capabilities ------------------------------------------------------
#
# Each is probed with the helper below it, never by checking a concrete class,
# so an executor from another package gets the same treatment as ours.


@runtime_checkable
class SharesLocalFilesystem(Protocol):
    """An executor whose processes use this machine's file system.

    ``shares_local_filesystem`` is True: its sessions' transcripts are already
    where local readers look, so nothing is synced, and its process cwd is the
    local path itself.
    """

    @property
    def shares_local_filesystem(self) -> bool: ...


def shares_local_filesystem(executor: object) -> bool:
    """True when ``executor`` says its processes use this machine's files."""
    return getattr(executor, "shares_local_filesystem", False) is True


@runtime_checkable
class RsyncShell(Protocol):
    """An executor rsync can reach: ``rsync -e ARGV`` with the argv it returns.

    ``rsync_rsh`` returns the remote-shell argv (e.g. ``ssh`` sharing the
    executor's master connection), or None when it cannot offer one right now
    (e.g. another SSH backend). rsync appends the host and its server command.
    """

    async def rsync_rsh(self) -> list[str] | None: ...


def rsync_shell_of(executor: object) -> Callable[[], Awaitable[list[str] | None]] | None:
    """The executor's ``rsync_rsh`` when it has one."""
    found = getattr(executor, "rsync_rsh", None)
    return found if callable(found) else None


@runtime_checkable
class SftpChannel(Protocol):
    """An executor that holds an SFTP session the sync can use.

    ``offers_sftp`` says whether it does (e.g. only one SSH backend has one);
    ``sftp_call(fn)`` runs ``fn(sftp_client)`` (a ``paramiko.SFTPClient``) in a
    worker thread, one call at a time, raising ``ConnectionFailed`` on a dead
    link and ``CommandTimeout`` past ``timeout``; file errors are ``OSError``.
    """

    @property
    def offers_sftp(self) -> bool: ...

    def sftp_call(self, fn: Callable[[Any], T], *, timeout: float = ...) -> Awaitable[T]: ...


def sftp_channel_of(executor: object) -> SftpChannel | None:
    """The executor itself when it offers an SFTP session now, else None."""
    if isinstance(executor, SftpChannel) and executor.offers_sftp is True:
        return executor
    return None


@runtime_checkable
class ReportsClosed(Protocol):
    """An executor that says whether ``aclose`` ran (later use would reconnect)."""

    @property
    def closed(self) -> bool: ...


def is_closed(executor: object) -> bool:
    return getattr(executor, "closed", False) is True


@runtime_checkable
class FindsClaude(Protocol):
    """An executor whose ``spawn(SpawnOptions("claude", ...))`` looks for the Claude
    CLI itself (``finds_claude`` is True), beyond the PATH ``run`` sees; its
    processes usually report where they found it (:class:`ReportsPlacement`)."""

    @property
    def finds_claude(self) -> bool: ...


def finds_claude(executor: object) -> bool:
    return getattr(executor, "finds_claude", False) is True


@runtime_checkable
class ReportsLoss(Protocol):
    """A spawned process that can tell "the link or carrier died" from "it exited".

    ``lost_error()`` returns the :class:`~remote_executors.ProcessLost` (or other
    ``ExecutorError``) to raise instead of the exit status, or None.
    """

    def lost_error(self) -> ExecutorError | None: ...


def lost_error_of(process: object) -> ExecutorError | None:
    probe = getattr(process, "lost_error", None)
    return probe() if callable(probe) else None


@runtime_checkable
class ReportsPlacement(Protocol):
    """A spawned process that says what runs and where, on its own machine.

    ``remote_path``: the program (e.g. where ``claude`` was found);
    ``remote_cwd``: its physical working directory. Empty when not known.
    """

    @property
    def remote_path(self) -> str: ...

    @property
    def remote_cwd(self) -> str: ...


def placement_of(process: object) -> tuple[str, str]:
    """(program, cwd) as the process reports them; empty strings when it cannot."""
    path = getattr(process, "remote_path", "")
    cwd = getattr(process, "remote_cwd", "")
    return (path if isinstance(path, str) else "", cwd if isinstance(cwd, str) else "")
