"""The Engine API carrier against a scripted engine on a unix socket.

When the carrier applies, how it reads the multiplexed stream (split at any
byte, cut mid-frame), that a flood held by a slow reader stays in the socket
rather than here, and how refused requests become typed errors. The real
engine is in tests/e2e/test_docker_api.py.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

import remote_executors as rx
from remote_executors.executors._docker_api import (
    DEFAULT_SOCKET,
    DockerAPIBackend,
    DockerAPIChannel,
    api_socket,
)
from remote_executors.executors._kube_channel import EXEC_FAILED

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- when the carrier applies ---------------------------------------------------


def _config(tmp_path: Path, text: str | None) -> dict[str, str]:
    if text is not None:
        (tmp_path / "config.json").write_text(text)
    return {"DOCKER_CONFIG": str(tmp_path)}


@pytest.mark.parametrize(
    ("env", "config", "expected"),
    [
        ({}, None, DEFAULT_SOCKET),
        ({}, "{}", DEFAULT_SOCKET),
        ({}, '{"currentContext": "default"}', DEFAULT_SOCKET),
        ({}, '{"currentContext": "remote"}', None),
        ({}, "not json", None),
        ({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, None, "/run/user/1000/docker.sock"),
        ({"DOCKER_HOST": "unix:///x.sock"}, '{"currentContext": "remote"}', "/x.sock"),
        ({"DOCKER_HOST": "tcp://10.0.0.1:2376"}, None, None),
        ({"DOCKER_HOST": "ssh://me@box"}, None, None),
        ({"DOCKER_HOST": "unix://"}, None, None),
        ({"DOCKER_CONTEXT": "default"}, '{"currentContext": "remote"}', DEFAULT_SOCKET),
        ({"DOCKER_CONTEXT": "remote"}, None, None),
    ],
)
def test_when_the_api_carrier_applies(
    tmp_path: Path, env: dict[str, str], config: str | None, expected: str | None
) -> None:
    assert api_socket("docker", {**_config(tmp_path, config), **env}) == expected


def test_podman_keeps_its_cli(tmp_path: Path) -> None:
    assert api_socket("podman", _config(tmp_path, None)) is None


# -- a scripted engine -----------------------------------------------------------

Script = Callable[[socket.socket], None]


class FakeEngine:
    """Answers exec create, then runs ``script`` on the started stream, then
    answers exec inspect with ``inspect``."""

    def __init__(self, path: Path, script: Script, inspect: dict[str, object]) -> None:
        self.path = path
        self.script = script
        self.inspect = inspect
        self.create_status = 201
        self.create_body: dict[str, object] = {"Id": "abc123"}
        self.sent = 0  # stream bytes the script got into the socket
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(str(path))
        self._server.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            head, _, body = data.partition(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode()
            length = next(
                (
                    int(h.split(b":")[1])
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"content-length")
                ),
                0,
            )
            while len(body) < length:
                body += conn.recv(4096)
            if line.startswith("POST /containers/"):
                self._json(conn, self.create_status, self.create_body)
            elif line.startswith("POST /exec/"):
                conn.sendall(
                    b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
                )
                self.script(conn)
            elif line.startswith("GET /exec/"):
                self._json(conn, 200, self.inspect)

    @staticmethod
    def _json(conn: socket.socket, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        conn.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Callable[..., FakeEngine]]:
    made: list[FakeEngine] = []

    def make(script: Script, inspect: dict[str, object] | None = None) -> FakeEngine:
        fake = FakeEngine(
            tmp_path / f"engine{len(made)}.sock",
            script,
            inspect or {"Running": False, "ExitCode": 0},
        )
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.close()


def backend(fake: FakeEngine) -> DockerAPIBackend:
    return DockerAPIBackend("docker://box", "box", None, str(fake.path))


async def read_all(stream: anyio.abc.ByteReceiveStream | None) -> bytes:
    assert stream is not None
    out = b""
    with contextlib.suppress(anyio.EndOfStream):
        while True:
            out += await stream.receive()
    return out


async def test_frames_split_at_every_byte(engine: Callable[..., FakeEngine]) -> None:
    wire = frame(1, b"out one ") + frame(2, b"err") + frame(1, b"out two") + frame(1, b"")

    def script(conn: socket.socket) -> None:
        for i in range(len(wire)):
            conn.sendall(wire[i : i + 1])

    fake = engine(script, {"Running": False, "ExitCode": 7})
    channel = await backend(fake).open("true", pipe_stderr=True)
    with anyio.fail_after(10):
        assert await read_all(channel.stdout) == b"out one out two"
        assert await read_all(channel.stderr) == b"err"
        assert await channel.wait() == 7
    await channel.aclose()


async def test_a_stream_cut_mid_frame_is_a_failed_exec(engine: Callable[..., FakeEngine]) -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(frame(1, b"whole") + frame(1, b"half of it")[:-4])

    fake = engine(script, {"Running": False, "ExitCode": 0})  # never asked
    channel = await backend(fake).open("true", pipe_stderr=False)
    with anyio.fail_after(10):
        assert await read_all(channel.stdout) == b"whole" + b"half of it"[:-4]
        assert await channel.wait() == EXEC_FAILED
    assert "mid-frame" in channel.stderr_text()
    await channel.aclose()


async def test_a_stream_that_ends_under_a_running_exec_is_a_failed_exec(
    engine: Callable[..., FakeEngine],
) -> None:
    fake = engine(lambda conn: conn.sendall(frame(1, b"x")), {"Running": True, "ExitCode": None})
    channel = await backend(fake).open("true", pipe_stderr=False)
    with anyio.fail_after(10):
        assert await read_all(channel.stdout) == b"x"
        assert await channel.wait() == EXEC_FAILED
    assert "still running" in channel.stderr_text()
    await channel.aclose()


async def test_a_slow_reader_holds_the_flood_in_the_socket(
    engine: Callable[..., FakeEngine],
) -> None:
    total = 64 << 20
    done = threading.Event()

    def script(conn: socket.socket) -> None:
        # One frame that declares all 64 MiB, written as fast as the socket takes it.
        fake.sent += conn.send(bytes([1, 0, 0, 0]) + total.to_bytes(4, "big"))
        chunk = bytes(65536)
        with contextlib.suppress(OSError):
            while fake.sent < total + 8:
                fake.sent += conn.send(chunk[: total + 8 - fake.sent])
        done.set()

    fake = engine(script)
    channel = await backend(fake).open("true", pipe_stderr=False)
    assert isinstance(channel, DockerAPIChannel)
    await anyio.sleep(1.0)  # nobody reads
    held = fake.sent
    # The pipe and both socket buffers hold a few MiB at most; the rest waits.
    assert held < 16 << 20, held
    got = 0
    with anyio.fail_after(60):
        while got < total:
            got += len(await channel.stdout.receive())
    assert got == total
    with anyio.fail_after(10):
        assert await channel.wait() == 0
    assert done.is_set()
    await channel.aclose()


@pytest.mark.parametrize(
    ("status", "message", "error", "words"),
    [
        (404, "No such container: box", rx.HostUnreachable, ["no container box", "docker ps -a"]),
        (
            409,
            "Container box is paused, unpause the container before exec",
            rx.HostUnreachable,
            ["not running", "docker start box"],
        ),
        (409, "Container 1234 is not running", rx.HostUnreachable, ["not running"]),
        (500, "something else broke", rx.ConnectionFailed, ["something else broke"]),
    ],
)
async def test_refused_requests_are_typed_errors(
    engine: Callable[..., FakeEngine],
    status: int,
    message: str,
    error: type[rx.ExecutorError],
    words: list[str],
) -> None:
    fake = engine(lambda conn: None)
    fake.create_status, fake.create_body = status, {"message": message}
    with pytest.raises(error) as caught:
        await backend(fake).open("true", pipe_stderr=False)
    assert caught.value.host == "docker://box"
    for word in words:
        assert word in caught.value.message


async def test_no_socket_is_an_unreachable_engine(tmp_path: Path) -> None:
    missing = DockerAPIBackend("docker://box", "box", None, str(tmp_path / "none.sock"))
    with pytest.raises((rx.HostUnreachable, rx.ConnectionFailed)) as caught:
        await missing.open("true", pipe_stderr=False)
    assert caught.value.host == "docker://box"
    assert "box" in caught.value.message


async def test_ending_stdin_never_waits_for_a_stuck_write(
    engine: Callable[..., FakeEngine],
) -> None:
    release = threading.Event()

    def script(conn: socket.socket) -> None:
        release.wait(30)  # reads none of the job's stdin until the test is done

    fake = engine(script)
    channel = await backend(fake).open("true", pipe_stderr=False)
    failed: list[BaseException] = []

    def write() -> None:
        try:
            channel.write_stdin(bytes(64 << 20))  # far more than the socket buffers hold
        except OSError as exc:
            failed.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    await anyio.sleep(0.5)
    assert writer.is_alive()  # stuck: nobody reads
    started = anyio.current_time()
    channel.close_stdin()
    assert anyio.current_time() - started < 0.5
    await anyio.to_thread.run_sync(writer.join, 10)
    assert not writer.is_alive() and failed  # the shutdown ended the write
    release.set()
    channel.send_signal(9)
    with anyio.fail_after(10):
        assert await channel.wait() == -9
    await channel.aclose()
