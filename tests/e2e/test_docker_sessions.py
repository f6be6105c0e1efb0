"""Whole sessions in a real Docker container: query, sync, resume, the CLI.

The container is the bed's Debian with the bundled CLI in ``~/.local/bin`` of
its user ``agent``; the model is the scripted stand-in on 127.0.0.1 (the
container shares the host's network). Oracles: the SDK's own session readers
on the local copy, the container's own transcript file, and the real CLI
resuming the synced session.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest
from claude_agent_sdk import (
    ClaudeAgentOptions,
    ProcessError,
)

import remote_executors as rx
from _cli import CLI, ok
from _sessions import (
    cli_resume_where_it_ran,
    cli_run_on,
    first_turn_in,
    options_for,
    result_of,
    resume_in,
    run,
)
from remote_executors.paths import project_dir_from_cwd
from remote_executors.testing._docker_fixtures import ContainerFactory
from remote_executors.testing.docker import ContainerBed, TestContainer
from remote_executors.testing.mirror_watch import MirrorWatch
from remote_executors.testing.model import ScriptedModel, slow, text, tool_use
from remote_executors.testing.plugin import Project

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the event loop changes nothing here that the SSH tests do not cover


@pytest.fixture(autouse=True)
def local_claude(private_local_claude: Path) -> Path:
    return private_local_claude


@pytest.mark.anyio
async def test_a_session_in_a_container_syncs_and_resumes_there(
    rx_container: TestContainer,
    rx_container_project: Project,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    box, project = rx_container, rx_container_project
    executor = rx.DockerExecutor(box.name, user=box.user)
    assert executor.spec == f"docker://{box.name}?user=agent"
    sid = await first_turn_in(executor, box, project, rx_model, local_claude, tag="container")
    # Resume there with a new executor for the same container: the CLI in the
    # container continues the conversation (the model sees the first turn).
    again = rx.DockerExecutor(box.name, user=box.user)
    await resume_in(again, box, project, rx_model, local_claude, sid, turn="second")
    # And with no executor at all: the record names the container.
    await resume_in(None, box, project, rx_model, local_claude, sid, turn="third")


@pytest.mark.anyio
async def test_lines_land_locally_while_a_container_turn_runs(
    rx_container: TestContainer,
    rx_container_project: Project,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    """The live follower runs on perl-base alone, the only perl of slim images
    (the bed's image has no Time::HiRes, as they do not)."""
    box, project = rx_container, rx_container_project
    assert box.exec(["perl", "-MTime::HiRes", "-e1"], check=False).returncode != 0
    remote_dir = box.path(
        f"{box.claude_config_dir}/projects/{project_dir_from_cwd(str(project.remote))}"
    )
    local_dir = local_claude / "projects" / project_dir_from_cwd(str(project.local))
    steps = 5
    rx_model.script(
        *(
            tool_use("Bash", {"command": f"echo live-{i}", "description": "echo"}, delay=0.4)
            for i in range(steps)
        ),
        text("All done.", delay=0.4),
    )
    result_at = 0.0
    executor = rx.DockerExecutor(box.name, user=box.user)
    try:
        with MirrorWatch(remote_dir, local_dir) as watch:
            result = result_of(await run("go", options_for(project), executor))
            result_at = time.time()
    finally:
        await executor.aclose()
    main = f"{result.session_id}.jsonl"
    # Most of the turn was on the local disk well before its result.
    total = len(watch.remote[main].times)
    assert total > 2 * steps
    assert watch.lines_at(main, result_at - 1.0) >= total // 2, watch.lines_at(main, result_at)
    assert not watch.violations, watch.violations
    assert (local_dir / main).read_bytes() == (remote_dir / main).read_bytes()


def test_cli_runs_on_a_container_spec(
    rx_container: TestContainer,
    rx_container_project: Project,
    rx_model: ScriptedModel,
    tmp_path: Path,
) -> None:
    cli = CLI(tmp_path / "cli", rx_model)
    spec = f"docker://{rx_container.name}?user={rx_container.user}"
    sid = cli_run_on(
        cli, spec, rx_container_project, rx_model, where="container", home=rx_container.home
    )
    # sync and check take the spec too.
    synced = json.loads(ok(cli("sync", spec, "--cwd", str(rx_container_project.local), "--json")))
    assert synced["host"] == spec
    remote_project = project_dir_from_cwd(str(rx_container_project.remote))
    assert synced["remote_dir"] == f"~/.claude/projects/{remote_project}"
    assert f"{sid}.jsonl" in [f["path"] for f in synced["files"]]
    checked = json.loads(ok(cli("check", spec, "--json")))
    assert checked["ok"] and checked["host"] == spec
    cli_resume_where_it_ran(cli, spec, rx_container_project, rx_model, sid)


def _cli_running(box: TestContainer) -> bool:
    return any(".local/bin/claude" in args for args in box.processes())


@pytest.mark.anyio
async def test_container_stopping_mid_turn_is_process_lost(
    rx_container_factory: ContainerFactory,
    rx_container_bed: ContainerBed,
    rx_model: ScriptedModel,
    tmp_path: Path,
) -> None:
    box = rx_container_factory()
    local = Path.home() / f"rx-test-{tmp_path.name}"
    local.mkdir()
    box.exec(["mkdir", "-p", f"{box.home}/{local.name}"])
    rx_model.script(slow("too late", delay=60))
    errors: list[BaseException] = []
    try:
        async with rx.DockerExecutor(box.name, user=box.user) as executor:

            async def consume() -> None:
                try:
                    async for _ in rx.query(
                        prompt="wait", options=ClaudeAgentOptions(cwd=str(local)), executor=executor
                    ):
                        pass
                except Exception as exc:  # the error under test
                    errors.append(exc)

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(consume)
                    while not rx_model.main_requests:  # the CLI is mid-turn
                        await anyio.sleep(0.1)
                    await anyio.to_thread.run_sync(rx_container_bed.stop, box.name)
    finally:
        local.rmdir()
    [error] = errors
    assert isinstance(error, rx.ProcessLost), repr(error)
    assert isinstance(error, ProcessError)  # what SDK apps already catch
    assert error.host == f"docker://{box.name}?user=agent" and box.name in str(error)
    assert "stopped" in error.message and "resume" in error.message


@pytest.mark.anyio
async def test_a_cancelled_session_leaves_nothing_in_the_container(
    rx_container: TestContainer, rx_container_project: Project, rx_model: ScriptedModel
) -> None:
    rx_model.script(slow("too late", delay=60))
    async with rx.DockerExecutor(rx_container.name, user=rx_container.user) as executor:
        with anyio.move_on_after(60) as scope:
            async with anyio.create_task_group() as tg:

                async def consume() -> None:
                    async for _ in rx.query(
                        prompt="wait", options=options_for(rx_container_project), executor=executor
                    ):
                        pass

                tg.start_soon(consume)
                while not rx_model.main_requests:
                    await anyio.sleep(0.1)
                assert _cli_running(rx_container)
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught  # cancelled by us, not by the minute's limit
    with anyio.fail_after(15):
        while _cli_running(rx_container):
            await anyio.sleep(0.1)
