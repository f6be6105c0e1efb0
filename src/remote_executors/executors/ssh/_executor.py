"""``SSHExecutor``: a machine reached over SSH."""

from __future__ import annotations

import logging
import math
import os
import shutil
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, TypeVar

import anyio
from anyio.abc import Process

from ...errors import InvalidInput
from .._backend import Backend, LinkOptions
from .._capture import DEFAULT_MAX_OUTPUT, check_limit
from .._cwd_map import cwd_target, mapped_cwd, sorted_path_map, usable_home
from .._remote_job import RemoteJob, job_for
from .._remote_process import RemoteProcess, start_job
from .._run_job import run_job
from .._spare import SpareChannel
from .._validate import _CONTROL_RE, check_host, check_path
from ..base import CommandResult, SpawnOptions
from ._openssh import OpenSSHBackend
from ._reattach import JobWatch, ReattachingProcess, grace_seconds, is_supervised, watch_job
from ._spec import options_from_spec, spec_from_options

if TYPE_CHECKING:
    import fabric
    import paramiko

__all__ = ["BACKENDS", "SSHExecutor"]

#: The SSH implementations ``SSHExecutor(backend=...)`` accepts ("auto" picks one).
BACKENDS = ("openssh", "fabric")

T = TypeVar("T")

log = logging.getLogger("remote_executors.ssh")

#: Seconds a spawned process outlives a dropped link by default (``reattach_within``).
DEFAULT_REATTACH_WITHIN = 300.0
MAX_REATTACH_WITHIN = 7 * 24 * 3600.0


class SSHExecutor:
    """Run processes on ``host``, an alias resolved exactly as ``ssh host`` would.

    ``host`` may also be a ``fabric.Connection`` the app already holds; the
    executor then uses it (and opens it if needed) but leaves closing it to
    the app.

    Options:
      backend: "openssh" (the system ``ssh`` client, with a private
        ControlMaster), "fabric" (pure Python: Fabric/paramiko, one pooled
        connection) or "auto" (the default: "openssh" when ``ssh`` is on PATH,
        else "fabric"; always "fabric" for a ``fabric.Connection``).
      ssh_config: an ssh_config file to use instead of ``~/.ssh/config`` (``ssh -F``).
      claude_path: where the Claude Code CLI is on the host (skips the search).
      path_map: local directory prefix -> remote directory prefix (absolute, or
        relative to the remote home: "code/x", "~/code/x"); overrides the
        default home-relative mapping (``~/code/x`` here is ``~/code/x`` there).
      accept_new_host_keys: trust a host key seen for the first time (changed
        keys are always refused). Off by default: unknown keys are refused.
      connect_timeout, keepalive_interval, keepalive_count: link timing; a dead
        link is noticed after about interval x count seconds.
      ssh_options: extra ``-o Key=Value`` options for every ssh invocation.
      forward_credentials: "ANTHROPIC_API_KEY" or "CLAUDE_CODE_OAUTH_TOKEN" to
        hand this machine's value of it to sessions there, over stdin, when the
        host has no credentials of its own (see :mod:`remote_executors.credentials`).
        Off by default: the host's own credentials are used.
      reattach_within: seconds a spawned process (the Claude Code CLI) keeps
        running on the host after the link drops. Meanwhile this side
        reconnects and the stream resumes where it stopped, nothing lost or
        repeated; past it the host stops the process and the caller gets
        ``ProcessLost``. 0: the process ends with its link (no supervisor).
        Needs perl on the host; without it the process ends with its link.
      warm_spawn: keep one channel open and waiting (a login shell and the
        bootstrap, idle) so the next spawn skips opening it: about 15 ms less
        to the first message on a LAN. It costs one idle shell on the host and
        one of sshd's MaxSessions channels, closes after 2 minutes unused and
        with the executor. The live follower then also waits up to 2 minutes
        for the next session instead of stopping with the last one (a perl
        and a channel more while it waits). On by default.
    """

    def __init__(
        self,
        host: str | fabric.Connection,
        *,
        backend: Literal["auto", "openssh", "fabric"] = "auto",
        ssh_config: str | os.PathLike[str] | None = None,
        claude_path: str | None = None,
        path_map: Mapping[str, str] | None = None,
        accept_new_host_keys: bool = False,
        connect_timeout: float = 15.0,
        keepalive_interval: int = 5,
        keepalive_count: int = 3,
        ssh_options: Mapping[str, str] | None = None,
        forward_credentials: str | None = None,
        reattach_within: float = DEFAULT_REATTACH_WITHIN,
        warm_spawn: bool = True,
    ) -> None:
        connection = None
        backend_asked = backend
        if not isinstance(host, str):
            connection = host
            host = _connection_name(connection)
            if backend == "openssh":
                raise InvalidInput(
                    f"A fabric.Connection for {host} needs backend='fabric' (or 'auto').",
                    host=host,
                )
            backend = "fabric"
        self._host = check_host(host)
        if backend == "auto":
            backend = "openssh" if shutil.which("ssh") else "fabric"
        if backend not in BACKENDS:
            raise InvalidInput(
                f"Unknown SSH backend {backend!r} for {host}; available: "
                + ", ".join(repr(b) for b in ("auto", *BACKENDS))
                + ".",
                host=host,
            )
        self._backend_name = backend
        from ...credentials import check_forward

        self._forward_credentials = check_forward(forward_credentials, host=host)
        if not (
            isinstance(reattach_within, (int, float))
            and math.isfinite(reattach_within)
            and 0 <= reattach_within <= MAX_REATTACH_WITHIN
        ):
            raise InvalidInput(
                f"reattach_within for {host} must be a number of seconds from 0 (off) to "
                f"{MAX_REATTACH_WITHIN:g}, not {reattach_within!r}.",
                host=host,
            )
        self._reattach_within = float(reattach_within)
        if claude_path is not None:
            check_path(claude_path, host=host, what="claude_path")
        self._claude_path = claude_path
        self._found_claude: str | None = None
        self._path_map = sorted_path_map(path_map, host=self._host)
        for key, value in (ssh_options or {}).items():
            # ASCII keyword, value without control characters: one -oKey=Value
            # that ssh reads as exactly that option.
            if not (key.isascii() and key.isalnum()) or _CONTROL_RE.search(value):
                raise InvalidInput(f"Bad ssh option {key}={value!r} for {host}.", host=host)
        config = os.fspath(ssh_config) if ssh_config is not None else None
        if config is not None:
            check_path(config, host=host, what="ssh_config")
            config = os.path.abspath(config)
        self._ssh_config = config
        link = LinkOptions(
            ssh_config=config,
            options=ssh_options,
            accept_new_host_keys=accept_new_host_keys,
            connect_timeout=connect_timeout,
            keepalive_interval=keepalive_interval,
            keepalive_count=keepalive_count,
        )
        self._backend: Backend
        if backend == "fabric":
            from ._fabric import FabricBackend  # imports paramiko: only when asked for

            self._backend = FabricBackend(self._host, link, connection=connection)
        else:
            self._backend = OpenSSHBackend(self._host, link)
        self._spare = SpareChannel(self._backend) if warm_spawn else None
        self._home: str | None = None
        self._closed = False
        given = {
            "backend": "auto" if connection is not None else backend_asked,
            "ssh_config": config,
            "claude_path": claude_path,
            "path_map": path_map,
            "accept_new_host_keys": accept_new_host_keys,
            "connect_timeout": None if connect_timeout == 15.0 else connect_timeout,
            "keepalive_interval": None if keepalive_interval == 5 else keepalive_interval,
            "keepalive_count": None if keepalive_count == 3 else keepalive_count,
            "ssh_options": ssh_options,
            "forward_credentials": self._forward_credentials,
            "reattach_within": (
                None if reattach_within == DEFAULT_REATTACH_WITHIN else float(reattach_within)
            ),
            "warm_spawn": bool(warm_spawn),
        }
        self._spec = spec_from_options(self._host, given)
        self._processes: weakref.WeakSet[RemoteProcess | ReattachingProcess] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"SSHExecutor({self._host!r})"

    @classmethod
    def from_spec(cls, spec: str) -> SSHExecutor:
        """``SSHExecutor`` for ``ssh://HOST?options`` (see :attr:`spec`) or a bare alias."""
        host, options = options_from_spec(spec)
        return cls(host, **options)

    @property
    def spec(self) -> str:
        """``ssh://HOST`` and the options given that differ from the defaults; an
        executor built on a ``fabric.Connection`` reopens as a new connection."""
        return self._spec

    @property
    def name(self) -> str:
        return self._host

    @property
    def host(self) -> str:
        return self._host

    @property
    def backend(self) -> str:
        """The SSH implementation in use: "openssh" or "fabric"."""
        return self._backend_name

    @property
    def forward_credentials(self) -> str | None:
        """The local credential variable forwarded to sessions (None: the host's own)."""
        return self._forward_credentials

    @property
    def reattach_within(self) -> float:
        """Seconds a spawned process outlives a dropped link (0: it does not)."""
        return self._reattach_within

    @property
    def warm_spawn(self) -> bool:
        """A spare channel waits for the next spawn (see the class's options)."""
        return self._spare is not None

    @property
    def ssh_config(self) -> str | None:
        """The ssh_config file given (absolute), None for ssh's default."""
        return self._ssh_config

    # -- paths ------------------------------------------------------------

    def _cwd_target(self, local_cwd: str) -> tuple[str | None, str | None]:
        """(absolute remote cwd, home-relative remote cwd); exactly one is set."""
        return cwd_target(local_cwd, self._path_map, host=self._host)

    async def map_cwd(self, local_cwd: str) -> str:
        return await mapped_cwd(local_cwd, self._path_map, host=self._host, home=self.home)

    async def home(self) -> str:
        if self._home is None:
            self._home = await usable_home(
                self.run,
                host=self._host,
                who=self._host,
                advice=", not an absolute path without control characters. Check that HOME "
                f"is set for the login on {self._host} (e.g. in its ~/.ssh/environment or "
                "login scripts), or pass SSHExecutor(..., path_map={local: remote}) so "
                "nothing depends on it.",
            )
        return self._home

    # -- processes --------------------------------------------------------

    def _job(self, options: SpawnOptions, mode: Literal["run", "spawn"]) -> RemoteJob:
        return job_for(
            options,
            mode,
            host=self._host,
            where=f"on {self._host}",
            cwd_target=self._cwd_target,
            claude_path=self._claude_path,
            found_claude=self._found_claude,
            grace=(
                grace_seconds(self._reattach_within)
                if mode == "spawn" and options.outlive_link
                else 0
            ),
        )

    async def spawn(self, options: SpawnOptions) -> Process:
        """Start ``options.command`` on the host; ``"claude"`` means the Claude Code CLI.

        ``options.cwd`` is a *local* path, mapped with ``map_cwd`` rules.
        """
        job = self._job(options, "spawn")
        process = await start_job(self._backend, job, pipe_stderr=options.stderr, spare=self._spare)
        if job.find_claude and process.remote_path:
            self._found_claude = process.remote_path
        if job.grace and is_supervised(process):
            supervised = ReattachingProcess(
                self._backend,
                job,
                process,
                grace=self._reattach_within,
                pipe_stderr=options.stderr,
            )
            self._processes.add(supervised)
            return supervised
        self._processes.add(process)
        return process

    async def watch_job(self, job_dir: str, stdout_at: int = 0) -> JobWatch:
        """A read-only channel to a supervised job there (see ``running.py``)."""
        return await watch_job(self._backend, job_dir, stdout_at)

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = 30.0,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> CommandResult:
        if not argv:
            raise InvalidInput(f"No command given to run on {self._host}.", host=self._host)
        limit = check_limit(max_output, self._host)
        options = SpawnOptions(argv[0], argv[1:], cwd=cwd, env=env or {}, stderr=True)
        job = self._job(options, "run")
        return await run_job(
            self._start_run,
            job,
            input=input,
            timeout=timeout,
            limit=limit,
            host=self._host,
            where=f"on {self._host}",
        )

    async def _start_run(self, job: RemoteJob, startup_timeout: float) -> RemoteProcess:
        return await start_job(
            self._backend, job, pipe_stderr=True, startup_timeout=startup_timeout
        )

    async def rsync_rsh(self) -> list[str] | None:
        """rsync's ``-e`` argv: ssh sharing this executor's connection (None: not possible).

        Capability :class:`~remote_executors.executors.base.RsyncShell`."""
        if not isinstance(self._backend, OpenSSHBackend):
            return None
        return await self._backend.shared_ssh_argv()

    @property
    def finds_claude(self) -> bool:
        """spawn("claude") searches the login's usual places (capability
        :class:`~remote_executors.executors.base.FindsClaude`)."""
        return True

    @property
    def offers_sftp(self) -> bool:
        """True on the fabric backend (capability
        :class:`~remote_executors.executors.base.SftpChannel`)."""
        return self._backend_name == "fabric"

    async def sftp_call(
        self, fn: Callable[[paramiko.SFTPClient], T], *, timeout: float = 30.0
    ) -> T:
        """Run ``fn(sftp)`` on the pooled connection's SFTP session (fabric backend only).

        For sync strategies: blocking paramiko calls run in a worker thread,
        one at a time; a dead link raises ``ConnectionFailed``, a slow one
        ``CommandTimeout``; file errors come back as ``OSError``.
        """
        from ._fabric import FabricBackend

        if not isinstance(self._backend, FabricBackend):
            raise InvalidInput(
                f"SFTP needs SSHExecutor({self._host!r}, backend='fabric').", host=self._host
            )
        return await self._backend.sftp_call(fn, timeout=timeout)

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran (later use would open a new connection)."""
        return self._closed

    async def aclose(self) -> None:
        self._closed = True
        with anyio.CancelScope(shield=True):
            processes = list(self._processes)
            for process in processes:
                if process.returncode is None:
                    process.terminate()
            for process in processes:
                if isinstance(process, ReattachingProcess):
                    # Its "stop" must reach the host before the connection goes.
                    await process.aclose()
            if self._spare is not None:
                await self._spare.aclose()
            await self._backend.aclose()

    async def __aenter__(self) -> SSHExecutor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _connection_name(connection: object) -> str:
    """The name a ``fabric.Connection`` goes by (its original host string)."""
    import fabric

    if not isinstance(connection, fabric.Connection):
        raise InvalidInput(
            f"SSHExecutor takes a host alias or a fabric.Connection, not {connection!r}.",
            host=repr(connection),
        )
    return str(connection.original_host or connection.host)
