"""The exception tree.

Every failure a user can meet is one of these. Each carries the host it
happened on (``"local"`` for the local machine) and a message that says what
failed and what to do about it. The tree is layered like httpx's so callers
can catch as broadly or as narrowly as they need::

    ExecutorError
    ├── InvalidInput                 bad host, path, cwd, spec or session id; nothing ran
├── ExecutorUnavailable          a spec's scheme is unknown or its module is not installed
    │   └── OptionPathError          an option names a local path that cannot go to the host
    ├── ConnectionFailed             could not reach the host at all
    │   ├── HostUnreachable          DNS, refused, timed out, no route
    │   ├── AuthenticationFailed     keys/agent/password refused
    │   └── HostKeyError             host key unknown or changed
    ├── RemoteSetupError             reached the host, but it can't run the session
    │   ├── ClaudeNotFound           no Claude Code CLI where we looked
    │   ├── ClaudeNotResponding      the CLI started but never answered
    │   ├── RemotePathNotFound       the working directory does not exist there
    │   └── InstallFailed            installing the CLI there did not complete (old state kept)
    │       └── UnsupportedPlatform  the bundled CLI cannot run on that OS/arch/libc
    ├── CommandTimeout               a short command did not finish in time
    ├── OutputTooLarge               a short command printed more than its limit
    ├── ProcessLost                  the running session's link or process died
    └── SyncError                    a transcript sync did not complete (nothing lost)
        ├── SessionConflict          the two copies diverged; both were kept
        ├── SyncToolMissing          rsync missing, too old or openrsync (one side)
        ├── SyncPermissionDenied     a transcript file or dir is not writable/readable
        ├── SyncDiskFull             no space left for the transcript
        └── SyncTooLarge             a remote file over the sync's size limits

So that SDK apps keep working unchanged, the errors a local run would raise as
``claude_agent_sdk`` errors are also those: ``ConnectionFailed`` and
``RemoteSetupError`` are ``CLIConnectionError``s, ``ClaudeNotFound`` is a
``CLINotFoundError`` and ``ProcessLost`` is a ``ProcessError``.
"""

from __future__ import annotations

from claude_agent_sdk import CLIConnectionError, CLINotFoundError, ProcessError

__all__ = [
    "AuthenticationFailed",
    "ClaudeNotFound",
    "ClaudeNotResponding",
    "CommandTimeout",
    "ConnectionFailed",
    "ExecutorError",
    "ExecutorUnavailable",
    "HostKeyError",
    "HostUnreachable",
    "InstallFailed",
    "InvalidInput",
    "OptionPathError",
    "OutputTooLarge",
    "ProcessLost",
    "RemotePathNotFound",
    "RemoteSetupError",
    "SessionConflict",
    "SessionNotRunning",
    "SyncDiskFull",
    "SyncError",
    "SyncPermissionDenied",
    "SyncToolMissing",
    "SyncTooLarge",
    "UnsupportedPlatform",
]


class ExecutorError(Exception):
    """Base of every error this library raises.

    ``host`` names the machine (an ssh alias, or ``"local"``); ``detail`` holds
    the raw diagnostic (e.g. the tail of ssh's stderr) when there is one.
    """

    def __init__(self, message: str, *, host: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.host = host
        self.detail = detail

    def __str__(self) -> str:
        if self.detail:
            return f"{self.message}\n{self.detail.strip()}"
        return self.message


class InvalidInput(ExecutorError, ValueError):
    """The caller passed something unsafe or malformed; nothing was run."""


class OptionPathError(InvalidInput):
    """A ``ClaudeAgentOptions`` field names a local file or directory that cannot be
    made available on the executor's machine (missing, unreadable, too large, or
    a link out of the directory it names). Nothing was started.

    ``option`` is the field (e.g. ``"plugins"``), ``path`` the local path.
    """

    def __init__(
        self, message: str, *, host: str, option: str, path: str, detail: str = ""
    ) -> None:
        super().__init__(message, host=host, detail=detail)
        self.option = option
        self.path = path


class ExecutorUnavailable(ExecutorError):
    """No executor class can be loaded for a spec: its scheme is not registered, or
    the module (or an optional dependency) behind it is not installed. The
    message says what to install. ``host`` is the spec, ``scheme`` its scheme."""

    def __init__(self, message: str, *, host: str, scheme: str, detail: str = "") -> None:
        super().__init__(message, host=host, detail=detail)
        self.scheme = scheme


class ConnectionFailed(ExecutorError, CLIConnectionError):
    """The host could not be reached or logged into."""


class HostUnreachable(ConnectionFailed):
    """DNS failure, connection refused, timeout, no route."""


class AuthenticationFailed(ConnectionFailed):
    """The server refused every credential offered."""


class HostKeyError(ConnectionFailed):
    """The host key is unknown (and not accepted) or does not match known_hosts."""


class RemoteSetupError(ExecutorError, CLIConnectionError):
    """Logged in, but the machine is not ready to run the session."""


class ClaudeNotFound(RemoteSetupError, CLINotFoundError):
    """No Claude Code CLI was found where we looked. ``searched`` lists the places."""

    def __init__(
        self, message: str, *, host: str, searched: tuple[str, ...] = (), detail: str = ""
    ) -> None:
        super().__init__(message, host=host, detail=detail)
        self.searched = searched


class ClaudeNotResponding(RemoteSetupError):
    """The CLI was started but sent nothing within the start timeout (it is not
    the Claude Code CLI, or it hangs there). It was stopped. ``path`` is the
    CLI's path on the machine, as far as known."""

    def __init__(self, message: str, *, host: str, path: str, detail: str = "") -> None:
        super().__init__(message, host=host, detail=detail)
        self.path = path


class RemotePathNotFound(RemoteSetupError):
    """The working directory does not exist on the machine."""

    def __init__(self, message: str, *, host: str, path: str, detail: str = "") -> None:
        super().__init__(message, host=host, detail=detail)
        self.path = path


class InstallFailed(RemoteSetupError):
    """Installing the Claude Code CLI on the machine did not complete. What was
    installed before (the ``~/.local/bin/claude`` link and the versions it points
    to) is unchanged; running the install again is safe."""


class UnsupportedPlatform(InstallFailed):
    """The CLI this machine has cannot run on the host (another OS, CPU
    architecture or C library). Nothing was uploaded. ``remote`` and ``local``
    describe both sides, e.g. ``"Linux aarch64 glibc"``."""

    def __init__(
        self, message: str, *, host: str, remote: str, local: str, detail: str = ""
    ) -> None:
        super().__init__(message, host=host, detail=detail)
        self.remote = remote
        self.local = local


class CommandTimeout(ExecutorError, TimeoutError):
    """A short command (``Executor.run``) did not finish within its timeout."""


class OutputTooLarge(ExecutorError):
    """A short command (``Executor.run``) printed more than ``limit`` bytes on one
    stream; it was stopped and nothing it printed is returned. ``stream`` is
    ``"stdout"`` or ``"stderr"``."""

    def __init__(
        self, message: str, *, host: str, limit: int, stream: str = "stdout", detail: str = ""
    ) -> None:
        super().__init__(message, host=host, detail=detail)
        self.limit = limit
        self.stream = stream


class ProcessLost(ExecutorError, ProcessError):
    """The link to a running process dropped, or the process died unexpectedly.

    The remote side is cleaned up by its watchdog; a session can be resumed.
    """

    def __init__(
        self, message: str, *, host: str, detail: str = "", exit_code: int | None = None
    ) -> None:
        super().__init__(message, host=host, detail=detail)
        self.exit_code = exit_code
        self.stderr = detail


class SessionNotRunning(ExecutorError, LookupError):
    """No Claude Code CLI runs that session on the host (it ended, never ran
    there, or the id is unknown): resume it instead of following it.

    ``known`` is True when this machine has a record or a transcript of it.
    """

    def __init__(self, message: str, *, host: str, session_id: str, known: bool) -> None:
        super().__init__(message, host=host)
        self.session_id = session_id
        self.known = known


class SyncError(ExecutorError):
    """A session sync did not complete. Nothing was lost: both sides hold at
    least what they held before, and the sync can simply be run again.

    ``side`` is where it failed: ``"local"`` or the host (often ``host``).
    During a session this is not raised: it reaches the caller as a
    ``SessionSyncStatus`` message and the sync is retried.
    """

    def __init__(
        self, message: str, *, host: str, side: str | None = None, detail: str = ""
    ) -> None:
        super().__init__(message, host=host, detail=detail)
        self.side = host if side is None else side


class SessionConflict(SyncError):
    """The local and remote copies of a transcript diverged: neither is a prefix of the other.

    Both were kept: the local file is untouched and the other side's copy is
    saved beside it (``copies``). Nothing was overwritten on either side.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str,
        session_id: str | None,
        copies: tuple[tuple[str, str], ...] = (),
        detail: str = "",
    ) -> None:
        super().__init__(message, host=host, side=host, detail=detail)
        self.session_id = session_id
        #: ``(local file, saved copy of the other side)`` pairs.
        self.copies = copies


class SyncToolMissing(SyncError):
    """The transfer tool (rsync) is missing or unusable on ``side``."""


class SyncPermissionDenied(SyncError):
    """A transcript file or directory on ``side`` cannot be read or written."""


class SyncDiskFull(SyncError):
    """No space left on ``side`` to store the transcript."""


class SyncTooLarge(SyncError):
    """A remote session file is over the sync strategy's size limits
    (:class:`~remote_executors.sync.Limits`) and was not copied here; it is
    untouched on the remote. ``path`` is the file (relative to the project
    dir), ``size`` its size, ``limit`` the limit it is over."""

    def __init__(
        self, message: str, *, host: str, path: str, size: int, limit: int, detail: str = ""
    ) -> None:
        super().__init__(message, host=host, side=host, detail=detail)
        self.path = path
        self.size = size
        self.limit = limit
