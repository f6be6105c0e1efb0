"""The Docker Engine API over its unix socket as a job carrier, in process.

``DockerExecutor(engine="docker")`` uses it instead of one ``docker exec``
client process per job when the engine is the local socket (see
:func:`api_socket`): no Go client to start (its start-up and round trips
were most of a spawn's cost) and none to keep per idle session (6.4 MiB).

One job is three requests, each on its own connection to the socket:
``POST /containers/{c}/exec`` (the fixed bootstrap text as the command; the
job itself goes on stdin, as everywhere), ``POST /exec/{id}/start``, which the
engine answers ``101`` and turns into a raw two-way stream (stdout and stderr
multiplexed with 8-byte headers, since there is no TTY), and, once that
stream ends, ``GET /exec/{id}/json`` for the exit code. ``shutdown(SHUT_WR)``
ends the job's stdin; closing the stream makes the engine close it too, which
the watchdog in the container takes as "the caller is gone".

Blocking sockets and one reader thread per job that writes into OS pipes
(``_threaded_channel``, as for Kubernetes) keep it independent of asyncio or
trio, and bound memory: a pipe holds 64 KiB, a full one blocks the reader,
the socket fills and the engine stops reading the job's output.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import shutil
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import anyio

from ..errors import ConnectionFailed, ExecutorError, ProcessLost
from ._backend import Ending
from ._container_engine import engine_failure
from ._kube_channel import EXEC_FAILED
from ._threaded_channel import KEEP, ThreadedChannel

__all__ = ["DEFAULT_SOCKET", "DockerAPIBackend", "DockerAPIChannel", "api_socket"]

DEFAULT_SOCKET = "/var/run/docker.sock"
_CONNECT_TIMEOUT = 15.0
_REPLY_LIMIT = 1 << 20  # an API answer we read is small JSON; a bigger one is refused
_HEADER_LIMIT = 65536  # the 101 answer's headers
_CHUNK = 65536


def api_socket(engine: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The engine's unix socket when the API carrier applies, else None.

    It applies to ``docker`` when the docker CLI would itself talk to a local
    unix socket: ``DOCKER_HOST`` unset or ``unix://``, and no context other
    than ``default`` selected (``DOCKER_CONTEXT``, or ``currentContext`` in
    ``$DOCKER_CONFIG/config.json``, by default ``~/.docker/config.json``).
    Anything else (tcp, ssh, TLS, contexts, podman) stays with the CLI, which
    knows how to reach it.
    """
    if engine != "docker":
        return None
    env = os.environ if environ is None else environ
    host = env.get("DOCKER_HOST", "")
    if host:  # the CLI lets DOCKER_HOST win over any context
        if host.startswith("unix://") and len(host) > len("unix://"):
            return host[len("unix://") :]
        return None
    context = env.get("DOCKER_CONTEXT", "")
    if context:
        return DEFAULT_SOCKET if context == "default" else None
    config_dir = env.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    try:
        with open(os.path.join(config_dir, "config.json"), "rb") as file:
            config: Any = json.loads(file.read(_REPLY_LIMIT))
    except FileNotFoundError:
        return DEFAULT_SOCKET
    except (OSError, ValueError):
        return None  # unreadable or broken: the CLI says what is wrong with it
    current = config.get("currentContext", "") if isinstance(config, dict) else None
    return DEFAULT_SOCKET if current in ("", "default") else None


class _Refused(Exception):
    """The engine answered a request with an error: ``(status, its message)``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _unreachable(path: str, exc: OSError) -> str:
    """What the docker CLI says when it cannot reach the socket (so the
    same classification, and the same hints, apply)."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            "permission denied while trying to connect to the Docker daemon socket at "
            f"unix://{path}: {exc.strerror or exc}"
        )
    return (
        f"Cannot connect to the Docker daemon at unix://{path}. Is the docker daemon "
        f"running? ({exc.strerror or exc})"
    )


def _message(body: bytes) -> str:
    try:
        parsed: Any = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:2000]
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])[:2000]
    return str(parsed)[:2000]


class _API:
    """The few Engine API calls a job needs, each on a fresh connection."""

    def __init__(self, path: str) -> None:
        self.path = path

    def call(self, method: str, url: str, body: object = None, timeout: float = 30.0) -> Any:
        """The parsed JSON answer (None when empty); ``_Refused`` for an error
        answer, ``OSError`` when the socket does not answer."""
        connection = _UnixConnection(self.path, timeout)
        try:
            data = None if body is None else json.dumps(body).encode("utf-8")
            headers = {"Content-Type": "application/json"} if data is not None else {}
            connection.request(method, url, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read(_REPLY_LIMIT + 1)
        except http.client.HTTPException as exc:
            raise ConnectionResetError(f"bad answer from the engine: {exc!r}") from exc
        finally:
            connection.close()
        if response.status >= 400:
            raise _Refused(response.status, _message(raw))
        if len(raw) > _REPLY_LIMIT:
            raise _Refused(response.status, "the engine's answer was too large")
        return json.loads(raw) if raw.strip() else None

    def hijack(self, url: str, body: object) -> tuple[socket.socket, bytes]:
        """POST ``url`` asking for the raw stream; (the socket, bytes already
        read past the answer's headers)."""
        data = json.dumps(body).encode("utf-8")
        head = (
            f"POST {url} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        ).encode("ascii")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(_CONNECT_TIMEOUT)
            sock.connect(self.path)
            sock.sendall(head + data)
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(_CHUNK)
                if not chunk or len(buffer) > _HEADER_LIMIT:
                    raise ConnectionResetError("the engine closed the exec stream at its start")
                buffer += chunk
            header, rest = buffer.split(b"\r\n\r\n", 1)
            status_line = header.split(b"\r\n", 1)[0].decode("latin-1")
            parts = status_line.split(" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            if status not in (101, 200):
                # An error is a small JSON body; whatever came with the headers says it.
                with contextlib.suppress(OSError):
                    sock.settimeout(2)
                    while len(rest) < _HEADER_LIMIT and (more := sock.recv(_CHUNK)):
                        rest += more
                raise _Refused(status, _message(rest) or status_line)
            sock.settimeout(None)
            return sock, rest
        except BaseException:
            sock.close()
            raise


class DockerAPIChannel(ThreadedChannel):
    """A running exec over one hijacked connection (the ``_backend.Channel`` protocol)."""

    def __init__(
        self, api: _API, exec_id: str, sock: socket.socket, first: bytes, *, pipe_stderr: bool
    ) -> None:
        super().__init__(pipe_stderr=pipe_stderr, thread_name="rx-docker-exec")
        self._api = api
        self._exec_id = exec_id
        self._sock = sock
        self._first = first
        self._start_reader()

    # -- the reader thread ---------------------------------------------------

    def _recv(self) -> bytes:
        if self._first:
            data, self._first = self._first, b""
            return data
        try:
            return self._sock.recv(_CHUNK)
        except OSError:
            return b""  # reset or shut down here: the stream is over either way

    def _read(self) -> None:
        buffer = b""
        broke = False
        try:
            while True:
                # An 8-byte header: stream (1 stdout, 2 stderr), 3 zero bytes,
                # the payload's length (big-endian); then the payload, passed
                # on piece by piece as it comes, however long it says it is.
                while len(buffer) < 8:
                    data = self._recv()
                    if not data:
                        broke = bool(buffer)
                        return
                    buffer += data
                stream, size = buffer[0], int.from_bytes(buffer[4:8], "big")
                buffer = buffer[8:]
                while size > 0:
                    if not buffer:
                        buffer = self._recv()
                        if not buffer:
                            broke = True
                            return
                    piece, buffer = buffer[:size], buffer[size:]
                    size -= len(piece)
                    if stream == 1:
                        self._stdout(piece)
                    elif stream == 2:
                        self._stderr(piece)
        finally:
            with self._lock:
                self._stdin_closed = True
            with contextlib.suppress(OSError):
                self._sock.close()
            if self._signal is not None:
                self._code = -self._signal
            elif broke:
                self._code, self._message = EXEC_FAILED, "the exec stream broke off mid-frame"
            else:
                self._code, self._message = self._exit_status()

    def _exit_status(self) -> tuple[int, str]:
        """The job's exit code from the engine.

        The engine notes an exec's exit before it closes the exec's streams,
        so a stream that ended under a job the engine still calls running
        broke: ``EXEC_FAILED``, which the executor reports as a lost link.
        (Asked later, the engine would say 126, its code for an exec whose
        caller went away, after killing the job's main process; the watchdog
        stops the rest of its tree, its stdin being closed.)
        """
        try:
            info = self._api.call("GET", f"/exec/{self._exec_id}/json", timeout=5)
        except (OSError, _Refused, ValueError) as exc:
            return EXEC_FAILED, f"the engine did not say how the exec ended: {exc}"
        if not isinstance(info, dict):
            return EXEC_FAILED, "the engine said nothing about the exec"
        if info.get("Running"):
            return EXEC_FAILED, "the exec stream ended while the process was still running"
        code = info.get("ExitCode")
        if isinstance(code, int):
            return code, ""
        return EXEC_FAILED, "the engine reported no exit code for the exec"

    # -- the Channel protocol --------------------------------------------------

    def write_stdin(self, data: bytes) -> None:
        with self._lock:
            if self._stdin_closed:
                raise BrokenPipeError("stdin is closed")
            self._sock.sendall(data)

    def close_stdin(self) -> None:
        """Half-close: the engine ends the job's stdin, the output keeps coming.

        Called on the event loop: it never waits for a write stuck on a job
        that does not read its stdin (the shutdown ends that write too; its
        input is over either way)."""
        locked = self._lock.acquire(blocking=False)
        try:
            if self._stdin_closed:
                return
            self._stdin_closed = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)
        finally:
            if locked:
                self._lock.release()

    def send_signal(self, signum: int) -> None:
        """Drop the connection: the engine closes the job's stdin and the
        watchdog in the container stops its process tree. (The exec API
        carries no signals.)"""
        if self._code is not None or self._signal is not None:
            return
        self._signal = signum
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader; never blocks


class DockerAPIBackend:
    """Runs the bootstrap in ``container`` through the Engine API (``_backend.Backend``)."""

    engine = "docker"

    def __init__(self, name: str, container: str, user: str | None, socket_path: str) -> None:
        self.host = name  # what errors name
        self._container = container
        self._user = user
        self._api = _API(socket_path)

    @property
    def socket_path(self) -> str:
        return self._api.path

    def _failure(self, said: str, returncode: int = 125) -> ExecutorError:
        failure = engine_failure(self.engine, self._container, self.host, said, returncode)
        if failure is not None:
            return failure
        return ConnectionFailed(  # engine_failure classifies every 125; kept for mypy
            f"docker could not run a command in container {self._container} ({self.host}): {said}",
            host=self.host,
        )

    def _unreachable(self, exc: OSError) -> ExecutorError:
        if exc.errno == errno.ENOENT and shutil.which("docker") is None:
            # No socket and no CLI: most likely no Docker on this machine at all.
            return ConnectionFailed(
                f"Docker is not installed here (no engine socket at {self.socket_path}, no "
                f"docker command on PATH), so container {self._container} cannot be reached "
                f"({self.host}). Install it (Debian/Ubuntu: apt-get install docker.io or "
                "docker-ce) and start the engine, or set DOCKER_HOST.",
                host=self.host,
            )
        return self._failure(_unreachable(self.socket_path, exc))

    def _exec(self, command: list[str], *, stdin: bool) -> tuple[str, socket.socket, bytes]:
        """Create and start one exec (blocking): (its id, the stream, bytes read ahead)."""
        body: dict[str, object] = {
            "AttachStdin": stdin,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": False,
            "Cmd": command,
        }
        if self._user is not None:
            body["User"] = self._user
        try:
            created = self._api.call(
                "POST", f"/containers/{quote(self._container, safe='')}/exec", body
            )
            exec_id = str(created["Id"]) if isinstance(created, dict) else ""
            if not exec_id.isalnum():
                raise _Refused(0, f"the engine answered an exec create with {created!r:.200}")
            sock, first = self._api.hijack(
                f"/exec/{exec_id}/start", {"Detach": False, "Tty": False}
            )
        except _Refused as exc:
            raise self._failure(exc.message) from None
        except OSError as exc:
            raise self._unreachable(exc) from None
        return exec_id, sock, first

    async def connect(self) -> None:
        """Nothing to set up: every job opens its own connections."""

    async def open(self, remote_command_text: str, *, pipe_stderr: bool) -> DockerAPIChannel:
        command = ["/bin/sh", "-c", remote_command_text]
        exec_id, sock, first = await anyio.to_thread.run_sync(
            lambda: self._exec(command, stdin=True)
        )
        return DockerAPIChannel(self._api, exec_id, sock, first, pipe_stderr=pipe_stderr)

    def connect_failure(self, stderr: str, returncode: int) -> ExecutorError | None:
        return engine_failure(self.engine, self._container, self.host, stderr, returncode)

    def lost_error(self, ending: Ending) -> ExecutorError | None:
        """The stream to the engine broke (no exit status, or one still running)
        under a job nobody stopped. A container that stopped is the executor's
        to tell (``ContainerProcess``)."""
        if ending.signalled or ending.returncode != EXEC_FAILED:
            return None
        said = (ending.stderr.strip().splitlines() or ["no exit status came"])[-1]
        return ProcessLost(
            f"Lost the link to the docker engine of container {self.host} while the "
            f"process was running ({said[:300]}). The process in the container is "
            "stopped by its watchdog; the session can be resumed once the engine "
            "answers again.",
            host=self.host,
            detail=ending.stderr[-2000:],
            exit_code=ending.returncode,
        )

    async def probe(self) -> tuple[str, int] | None:
        """What a bare ``/bin/sh -c 'exit 0'`` exec says and its exit code (the
        engine puts its own refusals, such as an unknown user, on its output);
        None when it did not end in time. Typed errors for refused requests."""
        channel = await self.open("exit 0", pipe_stderr=True)
        channel.close_stdin()
        said: list[bytes] = []
        with anyio.move_on_after(15):
            for stream in (channel.stdout, channel.stderr):
                assert stream is not None
                with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError):
                    while sum(map(len, said)) < KEEP:
                        said.append(await stream.receive())
            code = await channel.wait()
            await channel.aclose()
            return b"".join(said).decode("utf-8", "replace"), code
        await channel.aclose()
        return None

    async def state(self) -> str | None:
        """The container's state (``running``, ``exited``, ...; ``missing``), None if unknown."""
        url = f"/containers/{quote(self._container, safe='')}/json"
        try:
            info = await anyio.to_thread.run_sync(lambda: self._api.call("GET", url, timeout=5))
        except _Refused as exc:
            return "missing" if exc.status == 404 else None
        except (OSError, ValueError):
            return None
        state = info.get("State") if isinstance(info, dict) else None
        status = state.get("Status") if isinstance(state, dict) else None
        return str(status) if status else None

    async def aclose(self) -> None:
        """Nothing to release: every job has its own connection."""
