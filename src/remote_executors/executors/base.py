"""The ``Executor`` protocol and the small value classes it speaks in.

An executor is one machine: it can start a long-lived process there
(``spawn``), run a short command there (``run``), tell its home directory and
map a local working directory to its own. That is the whole seam between the
SDK-facing code and the machine; everything SSH-specific stays behind it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

import attrs
from anyio.abc import Process

__all__ = ["Attachment", "CommandResult", "Executor", "SpawnOptions"]


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
    """

    command: str
    args: Sequence[str] = attrs.field(default=(), converter=_strings)
    cwd: str | None = None
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_env)
    stderr: bool = False
    unset_env: Sequence[str] = attrs.field(default=(), converter=_strings)
    private_args: Sequence[int] = attrs.field(default=(), converter=_ints)
    attachments: Mapping[int, Attachment] = attrs.field(factory=dict, converter=_attachments)

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

    Implementations: ``LocalExecutor`` and ``SSHExecutor``. The process
    ``spawn`` returns behaves like ``anyio.abc.Process``: byte streams for
    stdin/stdout/stderr, ``wait()``, ``terminate()``, ``kill()``,
    ``send_signal()``, ``returncode`` and ``pid`` (the local pid of whatever
    carries the process, e.g. the ``ssh`` client).
    """

    @property
    def name(self) -> str:
        """``"local"`` or the ssh host alias; used in messages and metadata."""
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
