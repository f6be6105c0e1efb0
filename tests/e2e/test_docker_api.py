"""The in-process Engine API carrier of ``DockerExecutor``, against the real engine.

Which carrier runs (the API one with no docker CLI at all; the CLI one for a
context or a tcp ``DOCKER_HOST``), that no job data is in any request line,
URL, body or argv, that a flood of output keeps local memory bounded, and
that every way of stopping a process stops its tree in the container,
including the engine's stream breaking under it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from functools import partial
from pathlib import Path

import anyio
import pytest

import remote_executors as rx
from _engine_relay import EngineRelay
from remote_executors.executors._container_engine import EngineBackend
from remote_executors.executors._docker_api import DockerAPIBackend
from remote_executors.executors.base import SpawnOptions
from remote_executors.executors.docker import DockerExecutor
from remote_executors.testing.docker import TestContainer
from remote_executors.testing.executor_conformance import read_all

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EngineRelay:
    relay = EngineRelay(tmp_path / "engine.sock")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{relay.path}")
    yield relay  # type: ignore[misc]
    relay.close()


def _children() -> list[str]:
    """Command lines of this process's child processes."""
    found = []
    me = str(os.getpid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[-1].split()
            if stat[1].decode() != me or stat[0] == b"Z":
                continue
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _sleeping(container: TestContainer, mark: str, running: bool) -> None:
    """Wait until ``sleep MARK`` processes run (or no longer do) in the container."""
    with anyio.fail_after(20):
        while any(f"sleep {mark}" in p for p in container.processes()) != running:
            await anyio.sleep(0.05)


def _mark() -> str:
    return f"{300 + secrets.randbelow(10**6) / 10**6:.6f}"


async def test_the_api_carrier_needs_no_docker_cli(
    rx_container: TestContainer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no config.json: the default context
    monkeypatch.setenv("PATH", str(tmp_path))  # and no docker (nor anything else) on PATH
    before = _children()  # the session's own (the sshd bed of other tests, say)
    executor = DockerExecutor(rx_container.name, user=rx_container.user)
    assert isinstance(executor._backend, DockerAPIBackend)
    result = await executor.run(["/bin/sh", "-c", "cat; echo err >&2; exit 3"], input=b"in")
    assert (result.returncode, result.stdout, result.stderr) == (3, b"in", b"err\n")
    process = await executor.spawn(SpawnOptions("cat"))
    assert process.stdin is not None and process.stdout is not None
    await process.stdin.send(b"hello\n")
    with anyio.fail_after(20):
        assert await process.stdout.receive() == b"hello\n"
    assert not set(_children()) - set(before)  # nothing carries the job but this process
    await process.stdin.aclose()
    with anyio.fail_after(20):
        assert await read_all(process.stdout) == b""
        assert await process.wait() == 0
    await executor.aclose()


async def test_the_cli_carrier_for_a_docker_context(
    rx_container: TestContainer, docker_cli_carrier: str
) -> None:
    executor = DockerExecutor(rx_container.name, user=rx_container.user)
    assert isinstance(executor._backend, EngineBackend)
    process = await executor.spawn(SpawnOptions("cat"))
    assert process.stdin is not None and process.stdout is not None
    docker = shutil.which("docker")
    assert any(c.startswith(f"{docker} exec -i") for c in _children()), _children()
    await process.stdin.send(b"via the cli\n")
    with anyio.fail_after(20):
        assert await process.stdout.receive() == b"via the cli\n"
    await process.stdin.aclose()
    with anyio.fail_after(20):
        await read_all(process.stdout)
        assert await process.wait() == 0
    await executor.aclose()


async def test_the_cli_carrier_for_a_tcp_docker_host(
    rx_container: TestContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")  # nothing listens there
    executor = DockerExecutor(rx_container.name)
    assert isinstance(executor._backend, EngineBackend)
    with pytest.raises(rx.HostUnreachable) as caught:
        await executor.run(["true"])
    assert caught.value.host == executor.name
    assert rx_container.name in str(caught.value)
    assert "Cannot reach the docker engine" in caught.value.message
    assert "tcp://127.0.0.1:1" in (caught.value.detail or "")  # the CLI's own words


async def test_no_job_data_in_any_request_or_argv(
    rx_container: TestContainer, relay: EngineRelay
) -> None:
    secret = f"sk-secret-{secrets.token_hex(12)}"
    word = f"argv-word-{secrets.token_hex(8)}"
    executor = DockerExecutor(rx_container.name, user=rx_container.user)
    assert isinstance(executor._backend, DockerAPIBackend)
    process_script = f'printf "%s\\n" "$TOKEN"; cat # {word}'
    process = await executor.spawn(
        SpawnOptions("/bin/sh", ["-c", process_script], env={"TOKEN": secret})
    )
    assert process.stdin is not None and process.stdout is not None
    with anyio.fail_after(20):
        assert await process.stdout.receive() == f"{secret}\n".encode()
    requests = relay.requests()
    assert any(r.startswith(b"POST /containers/") for r in requests)
    assert any(b"/start HTTP/1.1" in r for r in requests)
    for request in requests:
        assert secret.encode() not in request and word.encode() not in request, request[:300]
    # The capture is real: the job did go up the stream, base64-encoded in its header.
    assert any(s for s in relay.streams())
    # No command line on this machine has the secret (the container's processes
    # are among them), and none but the job's own has its argv.
    job = f"/bin/sh\0-c\0{process_script}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert secret.encode() not in cmdline, pid
        assert word.encode() not in cmdline or cmdline.startswith(job), (pid, cmdline[:200])
    # Nor what the engine keeps about the exec sessions.
    api = executor._backend._api
    info = await anyio.to_thread.run_sync(api.call, "GET", f"/containers/{rx_container.name}/json")
    assert info["ExecIDs"]
    for exec_id in info["ExecIDs"]:
        said = await anyio.to_thread.run_sync(api.call, "GET", f"/exec/{exec_id}/json")
        assert secret not in json.dumps(said) and word not in json.dumps(said)
    await process.stdin.aclose()
    with anyio.fail_after(20):
        await read_all(process.stdout)
        assert await process.wait() == 0
    await executor.aclose()


async def test_a_flood_of_output_keeps_memory_bounded(rx_container: TestContainer) -> None:
    executor = DockerExecutor(rx_container.name, user=rx_container.user)
    assert isinstance(executor._backend, DockerAPIBackend)
    mark = _mark()
    # Endless output from a process tree the test can see (sleep MARK runs beside it).
    process = await executor.spawn(
        SpawnOptions("/bin/sh", ["-c", f"sleep {mark} & exec cat /dev/zero"])
    )
    assert process.stdout is not None
    await _sleeping(rx_container, mark, True)
    first = await process.stdout.receive()
    before = _rss()
    await anyio.sleep(3)  # nobody reads: the engine must be held back, not buffered here
    held = _rss() - before
    assert held < 16 << 20, f"local memory grew by {held >> 20} MiB while nobody read"
    # It still flows when read, and memory stays flat over many times the pipe's size.
    got = len(first)
    with anyio.fail_after(60):
        while got < 64 << 20:
            got += len(await process.stdout.receive())
    grew = _rss() - before
    assert grew < 32 << 20, f"local memory grew by {grew >> 20} MiB reading 64 MiB"
    process.kill()
    with anyio.fail_after(20):
        await process.wait()
    await _sleeping(rx_container, mark, False)
    await executor.aclose()


@pytest.mark.parametrize("how", ["terminate", "kill", "aclose", "cancel"])
async def test_every_way_of_stopping_stops_the_tree(rx_container: TestContainer, how: str) -> None:
    executor = DockerExecutor(rx_container.name, user=rx_container.user)
    assert isinstance(executor._backend, DockerAPIBackend)
    mark = _mark()
    script = f"sleep {mark} & sleep {mark}; wait"
    if how == "cancel":
        # A caller giving up on run(): its process tree must not outlive it.
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(executor.run, ["/bin/sh", "-c", script], timeout=600))
            await _sleeping(rx_container, mark, True)
            tg.cancel_scope.cancel()
    else:
        process = await executor.spawn(SpawnOptions("/bin/sh", ["-c", script]))
        await _sleeping(rx_container, mark, True)
        if how == "aclose":
            await executor.aclose()
        else:
            getattr(process, how)()
        with anyio.fail_after(20):
            await process.wait()
        assert process.lost_error() is None  # type: ignore[attr-defined]  # we stopped it
    await _sleeping(rx_container, mark, False)
    await executor.aclose()


@pytest.mark.parametrize("refuse_new", [False, True], ids=["engine-answers", "engine-gone"])
async def test_a_broken_stream_is_process_lost(
    rx_container: TestContainer, relay: EngineRelay, refuse_new: bool
) -> None:
    # engine-answers: the stream breaks but the engine still answers (where
    # `docker exec` reports the running job's exit code 0); engine-gone: no new
    # connection either.
    executor = DockerExecutor(rx_container.name, user=rx_container.user)
    mark = _mark()
    process = await executor.spawn(
        SpawnOptions("/bin/sh", ["-c", f"sleep {mark} & sleep {mark}; wait"])
    )
    await _sleeping(rx_container, mark, True)
    relay.cut(refuse_new=refuse_new)
    with anyio.fail_after(20):
        code = await process.wait()
    await _sleeping(rx_container, mark, False)  # the watchdog: its stdin closed
    lost = process.lost_error()  # type: ignore[attr-defined]
    assert isinstance(lost, rx.ProcessLost), code
    assert lost.host == executor.name and rx_container.name in str(lost)
    assert "Lost the link to the docker engine" in lost.message
    await executor.aclose()


_TRY_RUN = """
import anyio, sys
import remote_executors as rx
from remote_executors.executors.docker import DockerExecutor

async def main():
    executor = DockerExecutor(sys.argv[1])
    try:
        await executor.run(["true"])
    except rx.ExecutorError as exc:
        print(type(exc).__name__, exc.host, exc.message, sep="\\n")

anyio.run(main)
"""


async def test_a_socket_this_user_may_not_use(
    rx_container: TestContainer, relay: EngineRelay
) -> None:
    # Root may use any socket; without CAP_DAC_OVERRIDE it is an ordinary user
    # outside the docker group, which a socket of mode 0 refuses for real.
    relay.path.chmod(0)
    done = await anyio.run_process(
        [
            "setpriv",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
            sys.executable,
            "-c",
            _TRY_RUN,
            rx_container.name,
        ],
        check=False,
    )
    kind, host, message = done.stdout.decode().split("\n", 2)
    assert kind == "HostUnreachable", done.stderr.decode()[-2000:]
    assert host == f"docker://{rx_container.name}"
    assert rx_container.name in message
    assert "Cannot reach the docker engine" in message and "docker group" in message
    assert relay.sent == []  # refused before anything was sent
