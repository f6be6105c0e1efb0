"""What a user meets when a container is not usable, provoked for real.

Each failure is a typed error that names the container (``exc.host`` is the
executor's spec) and says what to do; a process whose container stops, or
whose ``docker exec`` client is killed, does not outlive it.
"""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path

import anyio
import pytest

import remote_executors as rx
from _engine_relay import EngineRelay
from remote_executors._check import check
from remote_executors.executors.base import SpawnOptions
from remote_executors.executors.docker import DockerExecutor
from remote_executors.testing._docker_fixtures import ContainerFactory
from remote_executors.testing.docker import ContainerBed, TestContainer
from remote_executors.testing.executor_conformance import read_all
from remote_executors.testing.plugin import Project

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def named(exc: rx.ExecutorError, executor: DockerExecutor, *words: str) -> None:
    assert exc.host == executor.name
    assert executor.container in str(exc)
    for word in words:
        assert word in exc.message, exc.message


async def test_no_such_container() -> None:
    executor = DockerExecutor(f"rx-missing-{secrets.token_hex(4)}")
    with pytest.raises(rx.HostUnreachable) as caught:
        await executor.run(["true"])
    named(caught.value, executor, "no container", "docker ps -a")


async def test_a_stopped_container(
    rx_container_factory: ContainerFactory, rx_container_bed: ContainerBed
) -> None:
    box = rx_container_factory(claude=False)
    rx_container_bed.stop(box.name)
    executor = DockerExecutor(box.name, user=box.user)
    with pytest.raises(rx.HostUnreachable) as caught:
        await executor.spawn(SpawnOptions("cat"))
    named(caught.value, executor, "not running", f"docker start {box.name}")


async def test_the_engine_is_not_installed(
    rx_container: TestContainer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API carrier needs no docker CLI, so "not installed" is no CLI on
    # PATH and no engine socket either.
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker on it
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    executor = DockerExecutor(rx_container.name)
    with pytest.raises(rx.ConnectionFailed) as caught:
        await executor.run(["true"])
    named(caught.value, executor, "not installed", "apt-get install")


async def test_the_engine_cli_is_not_installed(
    rx_container: TestContainer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_cli_carrier: str,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a context needs the CLI, and there is none
    executor = DockerExecutor(rx_container.name)
    with pytest.raises(rx.ConnectionFailed) as caught:
        await executor.run(["true"])
    named(caught.value, executor, "not installed", "apt-get install")


async def test_the_daemon_does_not_answer(
    rx_container: TestContainer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    executor = DockerExecutor(rx_container.name)
    with pytest.raises(rx.HostUnreachable) as caught:
        await executor.run(["true"])
    named(caught.value, executor, "Cannot reach the docker engine", "DOCKER_HOST")


async def test_a_user_the_image_does_not_have(rx_container: TestContainer) -> None:
    executor = DockerExecutor(rx_container.name, user="no-such-user")
    with pytest.raises(rx.RemoteSetupError) as caught:
        await executor.run(["true"])
    named(caught.value, executor, "does not exist", "user=")


async def test_no_claude_in_the_container(rx_container_factory: ContainerFactory) -> None:
    box = rx_container_factory(claude=False)
    executor = DockerExecutor(box.name, user=box.user)
    with pytest.raises(rx.ClaudeNotFound) as caught:
        await executor.spawn(SpawnOptions("claude", ["--version"]))
    named(caught.value, executor, "not installed in container", "claude_path=")
    assert f"{box.home}/.local/bin/claude" in caught.value.searched


async def test_a_missing_working_directory(rx_container: TestContainer, tmp_path: Path) -> None:
    executor = DockerExecutor(rx_container.name, user=rx_container.user)
    with pytest.raises(rx.RemotePathNotFound) as caught:
        await executor.run(["true"], cwd=str(tmp_path / "nowhere"))
    named(caught.value, executor, "doesn't exist in container", "path_map")


@pytest.mark.parametrize(
    "spec",
    [
        "docker://-rm",
        "docker://a b",
        "docker://",
        "ssh://box",
        "docker://c/extra",
        "docker://c?x=1",
    ],
)
def test_bad_specs_and_names_are_refused(spec: str) -> None:
    with pytest.raises(rx.InvalidInput):
        DockerExecutor.from_spec(spec)


def test_bad_user_or_engine_is_refused() -> None:
    with pytest.raises(rx.InvalidInput):
        DockerExecutor("c", user="--privileged")
    with pytest.raises(rx.InvalidInput):
        DockerExecutor("c", engine="lxc")  # type: ignore[arg-type]


def test_spec_round_trips() -> None:
    for spec in ("docker://box", "podman://box", "docker://box?user=1000:1000"):
        assert DockerExecutor.from_spec(spec).spec == spec
    assert DockerExecutor("box", engine="podman", user="me").spec == "podman://box?user=me"


async def test_container_stopping_under_a_process_is_process_lost(
    rx_container_factory: ContainerFactory, rx_container_bed: ContainerBed
) -> None:
    box = rx_container_factory(claude=False)
    executor = DockerExecutor(box.name, user=box.user)
    process = await executor.spawn(SpawnOptions("sleep", ["300"]))
    await anyio.to_thread.run_sync(rx_container_bed.stop, box.name)
    with anyio.fail_after(30):
        code = await process.wait()
    assert code != 0
    lost = process.lost_error()  # type: ignore[attr-defined]
    assert isinstance(lost, rx.ProcessLost)
    named(lost, executor, "stopped", "resume")
    await executor.aclose()


async def test_a_killed_exec_client_leaves_nothing_running(
    rx_container: TestContainer, docker_cli_carrier: str
) -> None:
    # Only the CLI carrier has a client process to kill; the API carrier's
    # counterpart is the engine link cut below (and tests/e2e/test_docker_api.py).
    executor = DockerExecutor(rx_container.name, user=rx_container.user)
    mark = f"{300 + secrets.randbelow(10**6) / 10**6:.6f}"
    process = await executor.spawn(
        SpawnOptions("/bin/sh", ["-c", f"sleep {mark} & sleep {mark}; wait"])
    )
    with anyio.fail_after(30):
        while not any(f"sleep {mark}" in p for p in rx_container.processes()):
            await anyio.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)  # not through the executor: as if the OOM killer did
    with anyio.fail_after(10):
        await process.wait()
        while any(f"sleep {mark}" in p for p in rx_container.processes()):
            await anyio.sleep(0.1)
    lost = process.lost_error()  # type: ignore[attr-defined]
    assert isinstance(lost, rx.ProcessLost)
    named(lost, executor, "killed by signal 9")
    await executor.aclose()


async def test_secrets_are_on_no_command_line_and_in_no_engine_record(
    rx_container: TestContainer, rx_container_bed: ContainerBed
) -> None:
    secret = f"sk-secret-{secrets.token_hex(12)}"
    executor = DockerExecutor(rx_container.name, user=rx_container.user)
    process = await executor.spawn(
        SpawnOptions("/bin/sh", ["-c", 'printf "%s\\n" "$TOKEN"; cat'], env={"TOKEN": secret})
    )
    assert process.stdout is not None
    with anyio.fail_after(30):
        first = await process.stdout.receive()
    assert first == f"{secret}\n".encode()  # the process has it
    # Every command line on this machine (the container's processes are among them).
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert secret.encode() not in cmdline, (pid, cmdline[:200])
    # What the engine keeps about the container and its exec sessions.
    inspected = rx_container_bed._run(["docker", "container", "inspect", rx_container.name])
    assert secret not in inspected
    assert process.stdin is not None
    await process.stdin.aclose()
    with anyio.fail_after(30):
        await read_all(process.stdout)
        assert await process.wait() == 0
    await executor.aclose()


async def test_check_names_each_problem(
    rx_container: TestContainer,
    rx_container_factory: ContainerFactory,
    rx_container_bed: ContainerBed,
    rx_container_project: Project,
) -> None:
    good = DockerExecutor(rx_container.name, user=rx_container.user)
    report = await check(good, rx_container_project.local)
    assert report.ok, report.to_dict()
    steps = {s.name: s for s in report.steps}
    assert steps["claude"].status == "ok"
    assert ".local/bin/claude" in steps["claude"].detail
    assert steps["project"].detail == str(rx_container_project.remote)

    missing = DockerExecutor(f"rx-missing-{secrets.token_hex(4)}")
    report = await check(missing)
    assert not report.ok
    first = report.steps[0]
    assert first.status == "fail" and "docker ps -a" in first.hint
    assert all(s.status == "skip" for s in report.steps[1:] if s.name != "rsync_local")

    bare = rx_container_factory(claude=False)
    report = await check(DockerExecutor(bare.name, user=bare.user))
    claude = report.step("claude")
    assert claude is not None and claude.status == "fail"
    assert "claude_path=" in claude.hint

    rx_container_bed.stop(bare.name)
    report = await check(DockerExecutor(bare.name, user=bare.user))
    assert report.steps[0].status == "fail" and f"docker start {bare.name}" in report.steps[0].hint


async def test_losing_the_engine_mid_process_is_process_lost(
    rx_container: TestContainer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = EngineRelay(tmp_path / "engine.sock")  # still a unix socket: the API carrier
    monkeypatch.setenv("DOCKER_HOST", f"unix://{link.path}")
    executor = DockerExecutor(rx_container.name, user=rx_container.user)
    mark = f"{300 + secrets.randbelow(10**6) / 10**6:.6f}"
    process = await executor.spawn(
        SpawnOptions("/bin/sh", ["-c", f"sleep {mark} & sleep {mark}; wait"])
    )
    with anyio.fail_after(30):
        while not any(f"sleep {mark}" in p for p in rx_container.processes()):
            await anyio.sleep(0.05)
    link.cut(refuse_new=True)
    with anyio.fail_after(20):
        await process.wait()
        # The watchdog in the container: stdin closed by the engine, or no heartbeats.
        while any(f"sleep {mark}" in p for p in rx_container.processes()):
            await anyio.sleep(0.1)
    lost = process.lost_error()  # type: ignore[attr-defined]
    assert isinstance(lost, rx.ProcessLost), process.returncode
    named(lost, executor, "Lost the link to the docker engine", "resumed")
    await executor.aclose()
