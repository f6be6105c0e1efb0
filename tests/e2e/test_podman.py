"""``DockerExecutor(engine="podman")`` on a real Podman (Debian's), in brief.

The Docker tests cover the executor's logic in full; what differs with Podman
is the engine's client and its messages. So this runs the conformance
suite's stream, status and stopping tests (``PODMAN_SUBSET``), a whole
session with resume, and the engine's refusals, against a Podman container
of the same image (loaded from Docker's). Podman here needs
``default_ulimits`` in /etc/containers/containers.conf and ``catatonit`` for
``--init`` (.ci/run sets both up).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import anyio
import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from remote_executors.executors.base import SpawnOptions
from remote_executors.executors.docker import DockerExecutor
from remote_executors.paths import project_dir_from_cwd
from remote_executors.testing.docker import ContainerBed, TestContainer
from remote_executors.testing.executor_conformance import ExecutorConformance
from remote_executors.testing.model import ScriptedModel, text, tool_use

pytestmark = [pytest.mark.e2e]

PODMAN_SUBSET = frozenset(
    {
        "test_spawn_round_trip_is_binary_exact",
        "test_stderr_is_a_separate_stream_when_asked",
        "test_exit_status",
        "test_terminate",
        "test_kill_stops_a_process_that_ignores_sigterm",
        "test_closing_the_executor_stops_its_processes",
        "test_run_timeout_stops_the_command",
        "test_cancelling_run_stops_the_command",
        "test_private_args",
        "test_claude_is_the_claude_code_cli",
    }
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def podman_project(rx_podman_container: TestContainer) -> Iterator[Path]:
    relative = Path(f"rx-test-{secrets.token_hex(4)}") / "shop"
    local = Path.home() / relative
    local.mkdir(parents=True)
    rx_podman_container.exec(["mkdir", "-p", f"{rx_podman_container.home}/{relative}"])
    try:
        yield local
    finally:
        local.rmdir()
        local.parent.rmdir()
        rx_podman_container.exec(
            ["rm", "-rf", f"{rx_podman_container.home}/{relative.parent}"], check=False
        )


class TestPodmanExecutor(ExecutorConformance):
    @pytest.fixture
    async def executor(self, rx_podman_container: TestContainer) -> AsyncIterator[DockerExecutor]:
        executor = DockerExecutor(
            rx_podman_container.name, engine="podman", user=rx_podman_container.user
        )
        try:
            yield executor
        finally:
            await executor.aclose()

    @pytest.fixture
    def workdir(self, podman_project: Path) -> Path:
        return podman_project

    @pytest.fixture
    def remote_processes(self, rx_podman_container: TestContainer) -> Callable[[], Sequence[str]]:
        return rx_podman_container.processes


_unknown = PODMAN_SUBSET - set(dir(ExecutorConformance))
assert not _unknown, f"no such tests in the suite: {_unknown}"
for _name in dir(ExecutorConformance):
    if _name.startswith("test_") and _name not in PODMAN_SUBSET:
        setattr(TestPodmanExecutor, _name, None)


@pytest.mark.anyio
async def test_a_session_in_podman_syncs_and_resumes(
    rx_podman_container: TestContainer,
    podman_project: Path,
    rx_model: ScriptedModel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "local-claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "rx-data"))
    box = rx_podman_container
    options = ClaudeAgentOptions(cwd=str(podman_project), allowed_tools=["Bash"])
    rx_model.script(
        tool_use("Bash", {"command": "echo podman-$(id -un)", "description": "echo"}),
        text("first answer p-one"),
    )
    with anyio.fail_after(90):
        async with DockerExecutor(box.name, engine="podman", user=box.user) as executor:
            results = [
                m
                async for m in rx.query(prompt="first", options=options, executor=executor)
                if isinstance(m, ResultMessage)
            ]
    sid = results[0].session_id
    remote = box.path(
        f"{box.claude_config_dir}/projects/"
        f"{project_dir_from_cwd(box.home + '/' + str(podman_project.relative_to(Path.home())))}"
        f"/{sid}.jsonl"
    )
    local = config / "projects" / project_dir_from_cwd(str(podman_project)) / f"{sid}.jsonl"
    assert b"podman-agent" in local.read_bytes()
    assert local.read_bytes() == remote.read_bytes()
    record = rx.get_session_record(sid)
    assert record is not None and record.executor == f"podman://{box.name}?user=agent"
    # Resume with no executor: the record reopens the podman container.
    rx_model.script(text("second answer"))
    resumed = ClaudeAgentOptions(cwd=str(podman_project), resume=sid)
    with anyio.fail_after(90):
        results = [
            m
            async for m in rx.query(prompt="second", options=resumed)
            if isinstance(m, ResultMessage)
        ]
    assert results[0].session_id == sid and not results[0].is_error
    assert "first answer p-one" in repr(rx_model.main_requests[-1].messages)
    assert local.read_bytes() == remote.read_bytes()


@pytest.mark.anyio
async def test_podman_refusals_are_typed_and_name_the_container(
    rx_podman_bed: ContainerBed,
) -> None:
    missing = DockerExecutor(f"rx-missing-{secrets.token_hex(4)}", engine="podman")
    with pytest.raises(rx.HostUnreachable) as caught:
        await missing.run(["true"])
    assert caught.value.host == missing.name and "podman ps -a" in caught.value.message
    box = rx_podman_bed.container(claude=False)
    try:
        nobody = DockerExecutor(box.name, engine="podman", user="no-such-user")
        with pytest.raises(rx.RemoteSetupError) as setup:
            await nobody.run(["true"])
        assert "does not exist" in setup.value.message
        await anyio.to_thread.run_sync(rx_podman_bed.stop, box.name)
        stopped = DockerExecutor(box.name, engine="podman", user=box.user)
        with pytest.raises(rx.HostUnreachable) as down:
            await stopped.spawn(SpawnOptions("cat"))
        assert f"podman start {box.name}" in down.value.message
    finally:
        rx_podman_bed.remove(box.name)
