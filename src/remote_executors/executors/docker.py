"""``DockerExecutor``: a running Docker or Podman container as the machine."""

from __future__ import annotations

import logging
import os
import re
import signal as _signal
import subprocess
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import anyio
from anyio.abc import Process

from ..errors import (
    ClaudeNotFound,
    ExecutorError,
    InvalidInput,
    ProcessLost,
    RemotePathNotFound,
    RemoteSetupError,
)
from ._capture import DEFAULT_MAX_OUTPUT, check_limit
from ._container_engine import ENGINES, EngineBackend, engine_failure
from ._cwd_map import cwd_target, mapped_cwd, sorted_path_map, usable_home
from ._docker_api import DockerAPIBackend, api_socket
from ._remote_job import RemoteJob, job_for
from ._remote_process import RemoteProcess, start_job
from ._run_job import run_job
from ._spare import SpareChannel
from ._validate import check_path
from .base import CommandResult, SpawnOptions

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ContainerProcess", "DockerExecutor"]

log = logging.getLogger("remote_executors.docker")

#: A job SIGKILLed in the container (128 + 9), as a stopping container does.
_KILLED = 137

_GENTLE = frozenset({_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP})

# Docker's own rule for names ([a-zA-Z0-9][a-zA-Z0-9_.-]*); ids are hex, so they fit.
_CONTAINER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# user, uid, user:group or uid:gid, as `exec -u` takes them.
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?")


def _check_container(container: object, engine: str) -> str:
    if not isinstance(container, str) or not _CONTAINER_RE.fullmatch(container):
        raise InvalidInput(
            f"Refusing container name {container!r} for {engine}: a container name or id "
            "starts with a letter or digit and holds only letters, digits and _ . - "
            f"(see `{engine} ps -a`).",
            host=f"{engine}://{container}",
        )
    return container


class ContainerProcess(RemoteProcess):
    """A process in a container, carried by an ``<engine> exec`` client.

    ``pid`` is the local client's. Stopping it ends the client; the engine then
    closes the process's stdin and the watchdog in the container stops its
    whole process tree. ``lost_error`` also tells a container that stopped
    under a running process from the process's own failure (an engine that
    went away is the backend's to tell).
    """

    executor: DockerExecutor | None = None  # asked for the container's state after a failure
    _container_state: str | None = None  # None: not asked, or the engine did not say

    async def wait(self) -> int:
        code = await super().wait()
        executor = self.executor
        if executor is not None and code != 0 and not self._signalled:
            self.executor = None  # asked once
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                self._container_state = await executor._state()
                # A stopping container SIGKILLs its execs before its state says
                # so: give a killed job's container a moment to finish stopping.
                for _ in range(4):
                    if code != _KILLED or self._container_state != "running":
                        break
                    await anyio.sleep(0.5)
                    self._container_state = await executor._state()
        return code

    def send_signal(self, signal: int) -> None:
        # The engine CLI catches SIGTERM, SIGINT and SIGHUP and exits 0 leaving
        # the process running (it proxies no signals for exec). A spawned job
        # is stopped gently by ending the client's stdin instead: the engine
        # closes the job's stdin and the watchdog stops its tree (TERM, then
        # KILL). Anything else, and any signal to a short run job (which has
        # no watchdog; the executor then kills its group), goes to the client.
        if signal in _GENTLE and self._job.mode == "spawn":
            self._signalled = True
            self._stop_heartbeat()
            self._channel.close_stdin()
            return
        super().send_signal(_signal.SIGKILL if signal in _GENTLE else signal)

    def lost_error(self) -> ExecutorError | None:
        code = self.returncode
        if code is None or code == 0:
            return None
        state = self._container_state
        if state not in (None, "running"):
            return self._stopped_error(state, code)
        return super().lost_error()

    def _stopped_error(self, state: str, code: int) -> ExecutorError | None:
        """The error when the container was no longer running after a failed job."""
        return ProcessLost(
            f"Container {self.host} stopped ({state}) while the "
            f"process was running (exit {code}). Start it again and resume the session.",
            host=self.host,
            detail=self.stderr_tail()[-2000:],
            exit_code=code,
        )


class DockerExecutor:
    """Run processes in ``container``, a running Docker (or Podman) container.

    Every process runs through ``<engine> exec -i`` as ``user`` (the image's
    default user when None), in the same directory relative to the
    container user's home as locally (or as ``path_map`` says). Nothing about
    a job travels on a command line: argv, environment and secret values go
    to a small ``/bin/sh`` bootstrap over stdin, which also runs a watchdog
    that stops the process tree when the client goes away.

    Options:
      engine: ``"docker"`` or ``"podman"`` (the CLI of that name on PATH; its
        own configuration applies: ``DOCKER_HOST``, contexts, podman connections).
      user: ``exec -u`` value: ``name``, ``uid``, ``name:group`` or ``uid:gid``.
      claude_path: where the Claude Code CLI is in the container (skips the search).
      path_map: local directory prefix -> container directory prefix (absolute,
        or relative to the container user's home: ``"code/x"``, ``"~/code/x"``).
      warm_spawn: keep one ``exec`` open and waiting (the bootstrap, idle) so
        the next spawn skips starting it: most of the engine's ~90 ms per exec.
        It costs one idle shell in the container, closes after 2 minutes
        unused and with the executor. The live follower then also waits up to
        2 minutes for the next session. On by default.

    The container needs ``/bin/sh``, coreutils, ``ps`` (procps) and, for
    sessions, the Claude Code CLI (glibc-based images).
    """

    # What a subclass with another carrier (KubernetesExecutor) changes.
    #: The class every job runs as.
    _process_class: type[ContainerProcess] = ContainerProcess
    #: What holds the container, in advice on paths: ``mount the project into the ...``.
    _holder = "container"
    #: Whether an exec that died before the bootstrap ran is asked again with a
    #: bare ``<engine> exec`` (see ``_diagnose``).
    _diagnoses_early_exit = True
    #: An exec waiting for the next spawn (warm_spawn).
    _spare: SpareChannel | None = None

    def __init__(
        self,
        container: str,
        *,
        engine: Literal["docker", "podman"] = "docker",
        user: str | None = None,
        claude_path: str | None = None,
        path_map: Mapping[str, str] | None = None,
        warm_spawn: bool = True,
    ) -> None:
        if engine not in ENGINES:
            raise InvalidInput(
                f"Unknown container engine {engine!r} for container {container!r}; "
                "available: " + ", ".join(repr(e) for e in ENGINES) + ".",
                host=f"{engine}://{container}",
            )
        self._engine = engine
        self._container = _check_container(container, engine)
        if user is not None and (not isinstance(user, str) or not _USER_RE.fullmatch(user)):
            raise InvalidInput(
                f"Refusing user {user!r} for container {container}: give a user name or "
                "uid, optionally with :group or :gid.",
                host=f"{engine}://{container}",
            )
        self._user = user
        self._init_common(self._spec(), claude_path, path_map)
        # The carrier: the Engine API in process when the engine is a local
        # unix socket, else the engine's CLI (contexts, tcp, ssh, podman).
        socket_path = api_socket(engine)
        self._backend: EngineBackend | DockerAPIBackend = (
            DockerAPIBackend(self._name, container, user, socket_path)
            if socket_path is not None
            else EngineBackend(self._name, engine, container, user)
        )
        self._spare = SpareChannel(self._backend) if warm_spawn else None

    def _init_common(
        self, name: str, claude_path: str | None, path_map: Mapping[str, str] | None
    ) -> None:
        """State every container executor shares (KubernetesExecutor too)."""
        self._name = name
        if claude_path is not None:
            check_path(claude_path, host=self._name, what="claude_path")
        self._claude_path = claude_path
        self._found_claude: str | None = None
        self._path_map = sorted_path_map(path_map, host=self._name)
        self._home: str | None = None
        self._closed = False
        self._processes: weakref.WeakSet[RemoteProcess] = weakref.WeakSet()

    # -- identity ---------------------------------------------------------------

    def _spec(self) -> str:
        spec = f"{self._engine}://{self._container}"
        if self._user is not None:
            spec += "?" + urlencode({"user": self._user}, quote_via=quote, safe=":")
        return spec

    @property
    def spec(self) -> str:
        """``docker://CONTAINER`` or ``podman://CONTAINER`` (``?user=U`` when given):
        the string :meth:`from_spec` reopens this executor from."""
        return self._name

    @classmethod
    def from_spec(cls, spec: str) -> Self:
        """The executor ``spec`` names (``docker://c``, ``podman://c?user=u``)."""
        parts = urlsplit(spec) if isinstance(spec, str) else None
        if parts is None or parts.scheme not in ENGINES or not parts.netloc or parts.path:
            raise InvalidInput(
                f"Not a container spec: {spec!r}. Use docker://CONTAINER or "
                "podman://CONTAINER (optionally ?user=NAME).",
                host=str(spec),
            )
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = set(query) - {"user"}
        if unknown:
            raise InvalidInput(
                f"Unknown option(s) {', '.join(sorted(unknown))} in {spec!r}; only user= "
                "is understood.",
                host=spec,
            )
        engine: Literal["docker", "podman"] = "docker" if parts.scheme == "docker" else "podman"
        return cls(parts.netloc, engine=engine, user=query.get("user"))

    def __repr__(self) -> str:
        user = f", user={self._user!r}" if self._user is not None else ""
        return f"DockerExecutor({self._container!r}, engine={self._engine!r}{user})"

    @property
    def name(self) -> str:
        """The spec: what errors, logs and records name this executor by."""
        return self._name

    @property
    def container(self) -> str:
        return self._container

    @property
    def engine(self) -> str:
        return self._engine

    @property
    def user(self) -> str | None:
        return self._user

    @property
    def warm_spawn(self) -> bool:
        """An ``exec`` waits for the next spawn (see the class's options)."""
        return self._spare is not None

    # -- paths ------------------------------------------------------------------

    def _cwd_target(self, local_cwd: str) -> tuple[str | None, str | None]:
        """(absolute container cwd, home-relative container cwd); exactly one is set."""
        return cwd_target(local_cwd, self._path_map, host=self._name)

    async def map_cwd(self, local_cwd: str) -> str:
        return await mapped_cwd(local_cwd, self._path_map, host=self._name, home=self.home)

    async def home(self) -> str:
        if self._home is None:
            self._home = await usable_home(
                self.run,
                host=self._name,
                who=f"Container {self._name}",
                advice=". Give the user a home in the image (or `-e HOME=...` when creating "
                f"the container), or pass {type(self).__name__}(..., path_map={{local: "
                "container}).",
            )
        return self._home

    # -- processes --------------------------------------------------------------

    def _job(self, options: SpawnOptions, mode: Literal["run", "spawn"]) -> RemoteJob:
        return job_for(
            options,
            mode,
            host=self._name,
            where=f"in {self._name}",
            cwd_target=self._cwd_target,
            claude_path=self._claude_path,
            found_claude=self._found_claude,
        )

    @property
    def _place(self) -> str:
        """Where jobs run, as messages name it."""
        return f"container {self._name}"

    def _started(self, process: ContainerProcess) -> None:
        """A step after every start (KubernetesExecutor notes the exec protocol)."""

    async def _start(
        self, job: RemoteJob, *, pipe_stderr: bool, startup_timeout: float = 60.0
    ) -> RemoteProcess:
        kind = type(self).__name__
        try:
            process = await start_job(
                self._backend,
                job,
                pipe_stderr=pipe_stderr,
                startup_timeout=startup_timeout,
                process_class=self._process_class,
                spare=self._spare if job.mode == "spawn" else None,
            )
        except RemotePathNotFound as exc:
            raise RemotePathNotFound(
                f"Path {exc.path} doesn't exist in {self._place}. Create it there "
                f"(or mount the project into the {self._holder}), or map the local directory "
                f"to an existing one with {kind}(..., path_map={{local: {self._holder}}}).",
                host=self._name,
                path=exc.path,
            ) from None
        except ClaudeNotFound as exc:
            places = "; ".join(exc.searched) or "nowhere"
            raise ClaudeNotFound(
                f"Claude CLI not installed in {self._place}. Looked in: {places}. "
                "Install it in the image (e.g. `npm install -g @anthropic-ai/claude-code`, "
                f"or copy the native binary to ~/.local/bin), or pass {kind}(..., "
                "claude_path='/path/in/container').",
                host=self._name,
                searched=exc.searched,
            ) from None
        except RemoteSetupError as exc:
            if (
                not self._diagnoses_early_exit
                or type(exc) is not RemoteSetupError
                or "before starting" not in exc.message
            ):
                raise
            # The engine's own refusals (no such user, no /bin/sh) come on the
            # exec's stdout, which the job's status read passed over: ask again.
            raise await self._diagnose(exc) from None
        assert isinstance(process, ContainerProcess)
        process.executor = self
        self._started(process)
        return process

    async def spawn(self, options: SpawnOptions) -> Process:
        """Start ``options.command`` in the container; ``"claude"`` means the Claude Code CLI.

        ``options.cwd`` is a *local* path, mapped with ``map_cwd`` rules.
        """
        job = self._job(options, "spawn")
        process = await self._start(job, pipe_stderr=options.stderr)
        if job.find_claude and process.remote_path:
            self._found_claude = process.remote_path
        self._processes.add(process)
        return process

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
            raise InvalidInput(f"No command given to run in {self._name}.", host=self._name)
        limit = check_limit(max_output, self._name)
        options = SpawnOptions(argv[0], argv[1:], cwd=cwd, env=env or {}, stderr=True)
        job = self._job(options, "run")
        return await run_job(
            self._start_run,
            job,
            input=input,
            timeout=timeout,
            limit=limit,
            host=self._name,
            where=f"in {self._name}",
        )

    async def _start_run(self, job: RemoteJob, startup_timeout: float) -> RemoteProcess:
        return await self._start(job, pipe_stderr=True, startup_timeout=startup_timeout)

    async def _diagnose(self, exc: RemoteSetupError) -> ExecutorError:
        """Why ``<engine> exec`` exits before the bootstrap runs, from one bare exec."""
        if isinstance(self._backend, DockerAPIBackend):
            with anyio.move_on_after(15):
                probed = await self._backend.probe()
                if probed is not None:
                    failure = self._backend.connect_failure(*probed)
                    if failure is not None:
                        return failure
            return self._no_shell(exc)
        argv = self._backend.exec_argv(["/bin/sh", "-c", "exit 0"], interactive=False)
        with anyio.move_on_after(15):
            done = await anyio.run_process(
                argv, check=False, stdin=subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C"}
            )
            said = (done.stdout + done.stderr).decode("utf-8", "replace")
            failure = engine_failure(
                self._engine, self._container, self._name, said, done.returncode
            )
            if failure is not None:
                return failure
        return self._no_shell(exc)

    def _no_shell(self, exc: RemoteSetupError) -> RemoteSetupError:
        return RemoteSetupError(
            f"Container {self._name} could not start the process: its shell exited before "
            "running anything. The image needs /bin/sh with base64, awk, mkfifo, mktemp "
            f"and ps (procps); check `{self._engine} exec -i {self._container} /bin/sh`.",
            host=self._name,
            detail=exc.detail,
        )

    async def _state(self) -> str | None:
        """The container's state (``running``, ``exited``, ...; ``missing``), None if unknown."""
        if isinstance(self._backend, DockerAPIBackend):
            return await self._backend.state()
        try:
            argv = [
                self._backend.binary(),
                "container",
                "inspect",
                "--format",
                "{{.State.Status}}",
                "--",
                self._container,
            ]
        except ExecutorError:
            return None
        done = await anyio.run_process(
            argv, check=False, stdin=subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C"}
        )
        if done.returncode == 0:
            return done.stdout.decode("utf-8", "replace").strip() or None
        if b"no such" in done.stderr.lower():
            return "missing"
        return None

    @property
    def finds_claude(self) -> bool:
        """spawn("claude") searches the user's usual places in the container, as over SSH
        (capability :class:`~remote_executors.executors.base.FindsClaude`)."""
        return True

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran."""
        return self._closed

    async def aclose(self) -> None:
        """Stop every process still running (the container itself is left as it is)."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            for process in list(self._processes):
                if process.returncode is None:
                    process.terminate()
            if self._spare is not None:
                await self._spare.aclose()
            await self._backend.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
