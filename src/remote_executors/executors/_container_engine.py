"""The container engine's own CLI (``docker`` or ``podman``) as a job backend.

``DockerExecutor`` runs every job the way ``SSHExecutor`` does (the bootstrap
script, the job on stdin, heartbeats and the watchdog), so it only needs what
``_backend.Backend`` asks for: open one command in the container with byte
pipes, say why that failed, and say when the client, not the program, ended
a job. One ``<engine> exec -i`` client per job (a ``PipeChannel``) carries
it; the command line it gets is the fixed bootstrap text, the same for every
job, so nothing about a job (argv, env, secrets) is on any command line here
or in the container.
"""

from __future__ import annotations

import os
import re
import shutil

from ..errors import (
    ConnectionFailed,
    ExecutorError,
    HostUnreachable,
    ProcessLost,
    RemoteSetupError,
)
from ._backend import Ending
from ._pipe_channel import PipeChannel

__all__ = ["ENGINES", "EngineBackend", "engine_failure"]

#: The engines ``DockerExecutor(engine=...)`` accepts.
ENGINES = ("docker", "podman")
#: The engine CLI's exit status when its connection to the engine broke.
_CLIENT_FAILED = 255

# The engine CLIs print English, but not always the same English; these
# cover docker 20-28 and podman 4-5.
_DAEMON = re.compile(
    r"Cannot connect to the Docker daemon|error during connect|Is the docker daemon running"
    r"|permission denied while trying to connect|unable to connect to Podman"
    r"|Cannot connect to Podman",
    re.IGNORECASE,
)
_MISSING = re.compile(r"No such container|no container with name or ID", re.IGNORECASE)
_STOPPED = re.compile(
    r"is not running|is paused|container state improper|can only create exec sessions on running",
    re.IGNORECASE,
)
_USER = re.compile(
    r"unable to find user|no matching entries in passwd|no users found", re.IGNORECASE
)
_SHELL = re.compile(
    r"exec: \"/bin/sh\": stat /bin/sh|/bin/sh: no such file|executable file not found",
    re.IGNORECASE,
)


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def engine_failure(
    engine: str, container: str, name: str, stderr: str, returncode: int
) -> ExecutorError | None:
    """The typed error for an ``<engine> exec`` that failed before the bootstrap
    answered; None when stderr names none of the engine's own failures."""
    detail = _tail(stderr)
    if _DAEMON.search(stderr):
        hint = (
            f"Start it (e.g. `sudo systemctl start {engine}`, or `dockerd &`), check "
            "DOCKER_HOST / the docker context, and that this user may use its socket "
            "(the docker group)."
            if engine == "docker"
            else "Check `podman info`; a rootless podman needs its user session "
            "(XDG_RUNTIME_DIR), a remote one `podman system connection`."
        )
        return HostUnreachable(
            f"Cannot reach the {engine} engine for container {container} ({name}). {hint}",
            host=name,
            detail=detail,
        )
    if _MISSING.search(stderr):
        return HostUnreachable(
            f"There is no container {container} in {engine} ({name}). Check the name "
            f"with `{engine} ps -a`, or create it (`{engine} run -d --name {container} ...`).",
            host=name,
            detail=detail,
        )
    if _STOPPED.search(stderr):
        return HostUnreachable(
            f"Container {container} is not running ({name}). Start it with "
            f"`{engine} start {container}` (or unpause it), then try again.",
            host=name,
            detail=detail,
        )
    if _USER.search(stderr):
        return RemoteSetupError(
            f"The user given for container {container} does not exist in it ({name}). "
            "Pass DockerExecutor(..., user=...) with a user of the image (or none for "
            "the image's default user).",
            host=name,
            detail=detail,
        )
    if _SHELL.search(stderr):
        return RemoteSetupError(
            f"Container {container} has no /bin/sh ({name}); sessions need a POSIX shell "
            "and coreutils in the image (the Claude Code CLI needs glibc too: a "
            "Debian or Ubuntu base works, distroless and scratch images do not).",
            host=name,
            detail=detail,
        )
    if returncode == 125 or stderr.lstrip().startswith("Error"):
        return ConnectionFailed(
            f"{engine} could not run a command in container {container} ({name}): "
            f"{_tail(stderr, 1) or f'exit {returncode}'}. Check `{engine} exec -i "
            f"{container} true`.",
            host=name,
            detail=detail,
        )
    return None


class EngineBackend:
    """Runs the bootstrap in ``container`` through ``<engine> exec -i``."""

    def __init__(self, name: str, engine: str, container: str, user: str | None) -> None:
        self.host = name  # what errors name (Backend protocol)
        self._engine_name = engine
        self._container = container
        self._user = user
        self._binary: str | None = None

    def binary(self) -> str:
        """The engine CLI's path; ``ConnectionFailed`` (with what to install) if absent."""
        if self._binary is None:
            found = shutil.which(self._engine_name)
            if found is None:
                package = "docker.io or docker-ce" if self._engine_name == "docker" else "podman"
                raise ConnectionFailed(
                    f"The {self._engine_name} command is not installed here (not on PATH), "
                    f"so container {self._container} cannot be reached ({self.host}). "
                    f"Install it (Debian/Ubuntu: apt-get install {package}).",
                    host=self.host,
                )
            self._binary = found
        return self._binary

    def exec_argv(self, command: list[str], *, interactive: bool = True) -> list[str]:
        """``<engine> exec [-i] [-u USER] -- CONTAINER command...``."""
        argv = [self.binary(), "exec"]
        if interactive:
            argv.append("-i")
        if self._user is not None:
            argv += ["-u", self._user]
        # The container name cannot start with "-" (checked), but "--" costs nothing.
        return [*argv, "--", self._container, *command]

    async def connect(self) -> None:
        self.binary()

    async def open(self, remote_command_text: str, *, pipe_stderr: bool) -> PipeChannel:
        return await PipeChannel.start(
            self.exec_argv(["/bin/sh", "-c", remote_command_text]),
            pipe_stderr=pipe_stderr,
            # Stable English diagnostics from the engine CLI; the command in
            # the container gets its own environment, not ours.
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )

    def connect_failure(self, stderr: str, returncode: int) -> ExecutorError | None:
        return engine_failure(self._engine_name, self._container, self.host, stderr, returncode)

    def lost_error(self, ending: Ending) -> ExecutorError | None:
        """The exec client lost the engine, or was killed, under a job nobody stopped
        (a container that stopped is the executor's to tell: see ``ContainerProcess``)."""
        if ending.signalled:
            return None
        engine, code = self._engine_name, ending.returncode
        if code == _CLIENT_FAILED:
            return ProcessLost(
                f"Lost the link to the {engine} engine of container {self.host} "
                f"while the process was running (client exit {code}). The process in the "
                "container is stopped by its watchdog; the session can be resumed once the "
                "engine answers again.",
                host=self.host,
                detail=ending.stderr[-2000:],
                exit_code=code,
            )
        if code < 0:
            return ProcessLost(
                f"The {engine} exec client for {self.host} (pid {ending.pid}) was "
                f"killed by signal {-code} while the process was running; the process in the "
                "container is stopped by its watchdog. The session can be resumed.",
                host=self.host,
                detail=ending.stderr[-2000:],
                exit_code=code,
            )
        return None

    async def aclose(self) -> None:
        """Nothing to release: every job has its own client process."""
