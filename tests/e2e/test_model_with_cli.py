"""The real bundled Claude Code CLI, driven through the real SDK, against the scripted model.

Everything runs locally: these tests pin what the CLI sends and how it reacts to the stand-in,
so the SSH end-to-end tests can rely on it. Each session takes about a second.

Facts pinned here (Claude Code 2.1.330):
- ``permission_mode="bypassPermissions"`` is refused as root ("--dangerously-skip-permissions
  cannot be used with root/sudo privileges") unless ``IS_SANDBOX=1``; ``allowed_tools=["Bash"]``
  works for every user, so the tests use it.
- With ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` a session makes only main-loop calls to
  ``POST /v1/messages?beta=true``. Without it the CLI also probes ``HEAD /api/hello``, asks the
  model for a session title, and talks to api.anthropic.com directly.
- An API error the CLI gives up on becomes an assistant message "API Error: <status> ...", a
  ``ResultMessage`` with ``is_error=True``, then the SDK raises ``ResultError``. 5xx/529 are
  retried up to 10 times with backoff (``CLAUDE_CODE_MAX_RETRIES`` lowers that).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ResultError,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
    list_sessions,
    query,
)

from remote_executors.testing.model import (
    ScriptedModel,
    api_error,
    overloaded,
    slow,
    text,
    tool_use,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as running:
        yield running


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    # The CLI's own ~/.claude for this test only: nothing touches the real one.
    path = tmp_path / "claude-config"
    path.mkdir()
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def options(
    model: ScriptedModel, config_dir: Path, project: Path, **env: str
) -> ClaudeAgentOptions:
    return ClaudeAgentOptions(
        cwd=project,
        env={**model.cli_env(), "CLAUDE_CONFIG_DIR": str(config_dir), **env},
        allowed_tools=["Bash"],
    )


async def run(prompt: str, opts: ClaudeAgentOptions) -> tuple[list[Any], float]:
    started = time.monotonic()
    messages = [message async for message in query(prompt=prompt, options=opts)]
    return messages, time.monotonic() - started


def blocks(messages: list[Any]) -> list[Any]:
    return [
        block
        for message in messages
        if isinstance(message, (AssistantMessage, UserMessage))
        and isinstance(message.content, list)
        for block in message.content
    ]


async def test_text_turn(
    anyio_backend: str, model: ScriptedModel, config_dir: Path, project: Path
) -> None:
    messages, elapsed = await run("hello there", options(model, config_dir, project))

    assert [b.text for b in blocks(messages) if isinstance(b, TextBlock)] == ["ok: hello there"]
    result = messages[-1]
    assert isinstance(result, ResultMessage)
    assert (result.subtype, result.is_error, result.num_turns) == ("success", False, 1)
    assert elapsed < 15

    (request,) = model.requests
    assert request.kind == "main"
    # The dummy key reached the CLI and came back to us: the test bed's key plumbing works.
    assert request.api_key == model.api_key
    assert request.authorized
    assert request.headers["user-agent"].startswith("claude-cli/")
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.session_id == result.session_id
    assert request.stream
    assert "Bash" in request.tool_names
    assert request.last_user_text == "hello there"

    # The transcript is on disk once the session is over.
    transcript = next(config_dir.glob(f"projects/*/{result.session_id}.jsonl"))
    assert "ok: hello there" in transcript.read_text()


async def test_multi_step_bash_turn(
    anyio_backend: str, model: ScriptedModel, config_dir: Path, project: Path
) -> None:
    model.script(
        tool_use("Bash", {"command": "echo hi-from-bash; pwd", "description": "Say hi"}),
        text("all done"),
    )

    messages, elapsed = await run("run something", options(model, config_dir, project))

    tool_uses = [b for b in blocks(messages) if isinstance(b, ToolUseBlock)]
    results = [b for b in blocks(messages) if isinstance(b, ToolResultBlock)]
    texts = [b.text for b in blocks(messages) if isinstance(b, TextBlock)]
    assert [(u.name, u.input["command"]) for u in tool_uses] == [("Bash", "echo hi-from-bash; pwd")]
    assert len(results) == 1
    assert results[0].tool_use_id == tool_uses[0].id
    assert results[0].is_error is False
    assert texts == ["all done"]
    result = messages[-1]
    assert isinstance(result, ResultMessage)
    assert (result.is_error, result.num_turns) == (False, 2)
    assert elapsed < 15

    # What the CLI sent back to the model: the command's real output.
    first, second = model.main_requests
    assert first.tool_results == []
    (sent,) = second.tool_results
    assert sent.tool_use_id == tool_uses[0].id
    assert sent.content == f"hi-from-bash\n{project.resolve()}"
    assert not sent.is_error
    assert model.pending == 0


async def test_slow_reply(
    anyio_backend: str, model: ScriptedModel, config_dir: Path, project: Path
) -> None:
    words = "slowly streamed words " * 6
    model.script(slow(text(words, chunk_size=11), delay=1.0, chunk_delay=0.05))

    messages, elapsed = await run("take your time", options(model, config_dir, project))

    assert [b.text for b in blocks(messages) if isinstance(b, TextBlock)] == [words]
    result = messages[-1]
    assert isinstance(result, ResultMessage)
    assert not result.is_error
    # 1 s to first byte plus ~17 events 50 ms apart.
    assert result.duration_api_ms >= 1500
    assert elapsed >= 1.5


async def test_api_error_surfaces_as_an_error_result(
    anyio_backend: str, model: ScriptedModel, config_dir: Path, project: Path
) -> None:
    model.add_rule(lambda request: api_error(500, "scripted breakage"))
    # Without this the CLI retries 10 times with backoff (minutes).
    opts = options(model, config_dir, project, CLAUDE_CODE_MAX_RETRIES="0")
    messages: list[Any] = []

    with pytest.raises(ResultError) as caught:
        async for message in query(prompt="fail please", options=opts):
            messages.append(message)

    assert caught.value.api_error_status == 500
    assert "scripted breakage" in (caught.value.result or "")
    assistant = [m for m in messages if isinstance(m, AssistantMessage)]
    assert assistant
    error_text = assistant[-1].content[0]
    assert isinstance(error_text, TextBlock)
    assert "API Error: 500 scripted breakage" in error_text.text
    assert assistant[-1].error is not None
    result = messages[-1]
    assert isinstance(result, ResultMessage)
    assert result.is_error
    assert model.main_requests


async def test_overloaded_then_recovered(
    anyio_backend: str, model: ScriptedModel, config_dir: Path, project: Path
) -> None:
    model.script(overloaded(), "recovered")

    messages, elapsed = await run("try again", options(model, config_dir, project))

    retries = [m for m in messages if isinstance(m, SystemMessage) and m.subtype == "api_retry"]
    assert [(m.data["attempt"], m.data["error_status"]) for m in retries] == [(1, 529)]
    assert [b.text for b in blocks(messages) if isinstance(b, TextBlock)] == ["recovered"]
    assert len(model.main_requests) == 2
    assert elapsed < 15


async def test_side_request_does_not_eat_scripted_turns(
    anyio_backend: str,
    model: ScriptedModel,
    config_dir: Path,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = model.cli_env()
    # Nonessential traffic on makes the CLI ask the model for a session title ...
    del env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"]
    # ... and also call api.anthropic.com directly: send that to a closed port so nothing leaves.
    dead_proxy = "http://127.0.0.1:9"
    env.update(
        CLAUDE_CONFIG_DIR=str(config_dir),
        HTTPS_PROXY=dead_proxy,
        HTTP_PROXY=dead_proxy,
        NO_PROXY="127.0.0.1,localhost",
    )
    model.script(
        tool_use("Bash", {"command": "echo step", "description": "Step"}), text("finished")
    )
    opts = ClaudeAgentOptions(cwd=project, env=env, allowed_tools=["Bash"])

    messages, elapsed = await run("investigate the flaky parser test", opts)

    assert [b.text for b in blocks(messages) if isinstance(b, TextBlock)] == ["finished"]
    assert elapsed < 20
    side = model.side_requests
    assert side, "the CLI made no title request"
    assert side[0].output_schema is not None
    assert "investigate the flaky parser test" in side[0].last_user_text
    assert len(model.main_requests) == 2
    # The SDK's own reader sees the title our side reply produced.
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config_dir))
    (info,) = list_sessions(directory=str(project))
    assert info.custom_title == "Scripted session"


# Each CLI session costs about 2.3 s of CPU (start-up plus the Bash tool), so ten at once take
# ~25 s on a 2-core box. Four prove that concurrent sessions keep their scripts apart; the
# server side of ten-plus parallel streams is covered in tests/unit/test_model.py. One backend
# is enough: the model runs in its own thread whatever loop drives the SDK.
CONCURRENT_SESSIONS = 4


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_concurrent_sessions(
    anyio_backend: str, model: ScriptedModel, tmp_path: Path
) -> None:
    count = CONCURRENT_SESSIONS
    for i in range(count):
        model.script(
            slow(tool_use("Bash", {"command": f"echo out-{i}", "description": "Echo"}), delay=0.2),
            lambda request: f"saw {request.tool_results[0].content}",
            when=f"session {i}:",
        )
    outcomes: dict[int, list[str]] = {}

    async def one(i: int) -> None:
        base = tmp_path / f"s{i}"
        (base / "config").mkdir(parents=True)
        (base / "project").mkdir()
        messages, _ = await run(
            f"session {i}: go", options(model, base / "config", base / "project")
        )
        outcomes[i] = [b.text for b in blocks(messages) if isinstance(b, TextBlock)]

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
    elapsed = time.monotonic() - started

    assert outcomes == {i: [f"saw out-{i}"] for i in range(count)}
    assert len(model.main_requests) == 2 * count
    assert len({r.session_id for r in model.main_requests}) == count
    assert elapsed < 60
