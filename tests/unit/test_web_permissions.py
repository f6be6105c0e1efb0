"""Permission prompts in the web UI wait a bounded time: unanswered, the tool is denied
and the run says so (a turn never hangs on a tab nobody looks at)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny

from remote_executors.web._runs import Run

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def ask(run: Run, results: list[Any]) -> None:
    results.append(await run.can_use_tool("Bash", {"command": "rm -rf build"}, None))


async def test_an_unanswered_prompt_is_denied_in_time_and_noted() -> None:
    run = Run(executor_name="box", cwd="/", permission_seconds=0.3)
    results: list[Any] = []
    began = time.time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, run, results)
        with anyio.fail_after(5):
            while not run.prompts:
                await anyio.sleep(0.01)
        (shown,) = run.snapshot()["permissions"]
        assert began + 0.3 <= shown["expires_at"] <= time.time() + 0.3
        assert 0 < shown["seconds_left"] <= 0.3
        prompt_id = shown["id"]
    elapsed = time.time() - began
    assert 0.3 <= elapsed < 3, elapsed
    (result,) = results
    assert isinstance(result, PermissionResultDeny)
    assert result.message == "No answer in the web UI within 0.3 s: Bash was denied."
    snapshot = run.snapshot()
    assert snapshot["permissions"] == [] and snapshot["notices"] == [result.message]
    assert not run.answer(prompt_id, allow=True, message="")  # too late: it was denied


async def test_an_answer_in_time_wins_and_leaves_no_notice() -> None:
    run = Run(executor_name="box", cwd="/", permission_seconds=5)
    results: list[Any] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, run, results)
        with anyio.fail_after(5):
            while not run.prompts:
                await anyio.sleep(0.01)
        assert run.answer(next(iter(run.prompts)), allow=True, message="")
    assert isinstance(results[0], PermissionResultAllow)
    assert run.snapshot()["notices"] == []
