"""Every ``ClaudeAgentOptions`` field through ``SSHExecutor``: the rows of docs/options.md.

Options that only change the CLI's command line are checked with an oracle
taken from the SDK itself: the remote CLI is started through a wrapper
(``cli_path``, a path on the host) that records the arguments it got, and they
must be what the SDK would have given a local CLI for the same options. The
rest have tests of what they do (here, or in the modules docs/options.md names).
"""

from __future__ import annotations

import dataclasses
import io
import json
import secrets
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from claude_agent_sdk import (
    AgentDefinition,
    AssistantMessage,
    ClaudeAgentOptions,
    CLIJSONDecodeError,
    InMemorySessionStore,
    Message,
    ResultMessage,
    TextBlock,
    UserMessage,
)

import remote_executors as rx
from remote_executors import _cli_argv
from remote_executors._sdk_compat import SubprocessCLITransport, configure_can_use_tool
from remote_executors.sync._locate import local_project_dir
from remote_executors.testing.model import text, tool_use

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SESSION_TIMEOUT = 60
SID = "6f1c1f44-5d1e-4a55-9b1c-3e9b2f1d0a77"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def run(options: ClaudeAgentOptions, executor: object, prompt: str = "go") -> list[Message]:
    with anyio.fail_after(SESSION_TIMEOUT):
        return [m async for m in rx.query(prompt=prompt, options=options, executor=executor)]


def results(messages: Sequence[Message]) -> list[ResultMessage]:
    return [m for m in messages if isinstance(m, ResultMessage)]


# The wrapper records its arguments (and the config files it was handed), then
# runs the real CLI with them.
WRAPPER = r"""#!/bin/sh
out="$HOME/rx-argv"
: > "$out"
prev=
for a; do
  printf '%s\0' "$a" >> "$out"
  case $prev in --settings | --mcp-config) cp "$a" "$out$prev" 2>/dev/null ;; esac
  prev=$a
done
exec "$HOME/.local/bin/claude" "$@"
"""


@pytest.fixture
def wrapper(rx_sshd, rx_account) -> str:
    path = rx_sshd.remote_home(rx_account) / "bin" / "claude-recording"
    rx_sshd.run_as(
        rx_account,
        ["/bin/sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod 755 "$1"', "sh",
         str(path)],
        input=WRAPPER,
        check=True,
    )  # fmt: skip
    return str(path)


def remote_args(bed: Any, account: Any) -> list[_cli_argv.Arg]:
    recorded = bed.run_as(account, ["cat", str(bed.remote_home(account) / "rx-argv")], check=True)
    return _cli_argv.parse(recorded.stdout.split("\0")[:-1])


def remote_config(bed: Any, account: Any, flag: str) -> Any:
    path = bed.remote_home(account) / f"rx-argv{flag}"
    return json.loads(bed.run_as(account, ["cat", str(path)], check=True).stdout)


def local_args(options: ClaudeAgentOptions) -> list[_cli_argv.Arg]:
    """What the SDK gives a CLI on this machine for ``options``."""
    transport = SubprocessCLITransport(prompt="", options=configure_can_use_tool(options))
    transport._cli_path = "claude"
    return _cli_argv.parse(transport._build_command()[1:])


def has(field: str) -> bool:
    return field in {f.name for f in dataclasses.fields(ClaudeAgentOptions)}


#: Options that only shape the CLI's command line: field -> options, script.
PASSED_THROUGH: dict[str, dict[str, Any]] = {
    "tools": {"tools": ["Bash", "Read"]},
    "allowed_tools": {"allowed_tools": ["Bash(echo:*)", "Read"]},
    "disallowed_tools": {"disallowed_tools": ["Write", "Edit"]},
    "system_prompt": {"system_prompt": "You are terse."},
    "strict_mcp_config": {"strict_mcp_config": True},
    "permission_mode": {"permission_mode": "acceptEdits"},
    "session_id": {"session_id": SID},
    "max_turns": {"max_turns": 7},
    "max_budget_usd": {"max_budget_usd": 3.5},
    "model": {"model": "claude-rx-model"},
    "fallback_model": {"model": "claude-rx-a", "fallback_model": "claude-rx-b"},
    "betas": {"betas": ["context-1m-2025-08-07"]},
    "permission_prompt_tool_name": {"permission_prompt_tool_name": "mcp__none__approve"},
    "include_hook_events": {"include_hook_events": True},
    "setting_sources": {"setting_sources": ["user", "local"]},
    "skills": {"skills": ["rx-skill"]},
    "thinking": {"thinking": {"type": "enabled", "budget_tokens": 2048}},
    "max_thinking_tokens": {"max_thinking_tokens": 1024},
    "effort": {"effort": "low"},
    "output_format": {
        "output_format": {"type": "json_schema", "schema": {"type": "object", "properties": {}}}
    },
    "task_budget": {"task_budget": {"total": 50000}},
    "extra_args": {"extra_args": {"debug-to-stderr": None, "name": "rx option test"}},
    "sandbox": {"sandbox": {"enabled": False}},
    "session_store": {"session_store": InMemorySessionStore()},
    "session_store_flush": {
        "session_store": InMemorySessionStore(),
        "session_store_flush": "eager",
    },
}


@pytest.mark.parametrize("field", sorted(PASSED_THROUGH))
async def test_passed_through_as_locally(
    field, rx_executor, rx_project, rx_model, rx_sshd, rx_account, wrapper
):
    """The remote CLI gets what a local one would, flag for flag and value for value
    (config JSON as a private file whose content is what the SDK built)."""
    options = ClaudeAgentOptions(cwd=str(rx_project.local), **PASSED_THROUGH[field])
    messages = await run(dataclasses.replace(options, cli_path=wrapper), rx_executor)
    assert results(messages), messages
    want = local_args(options)
    got = remote_args(rx_sshd, rx_account)
    config = {a.flag for a in want if _cli_argv.PATH_FLAGS.get(a.flag) == "config"}
    plain = lambda args: sorted((a.flag, a.value) for a in args if a.flag not in config)  # noqa: E731
    assert plain(got) == plain(want)
    for flag in config:
        [sent] = _cli_argv.values(want, flag)
        assert remote_config(rx_sshd, rx_account, flag) == json.loads(sent)
    assert any(a.flag in ("--model", "--tools", "--session-mirror") for a in want) or want


async def test_cli_path_is_a_path_on_the_host(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account, wrapper
):
    messages = await run(
        ClaudeAgentOptions(cwd=str(rx_project.local), cli_path=wrapper), rx_executor
    )
    assert results(messages)
    assert remote_args(rx_sshd, rx_account)  # the wrapper on the host ran


async def test_user_is_refused_before_anything_starts(rx_executor, rx_project, rx_model):
    with pytest.raises(rx.InvalidInput, match="user") as caught:
        await run(ClaudeAgentOptions(cwd=str(rx_project.local), user="nobody"), rx_executor)
    assert caught.value.host == rx_executor.name
    assert rx_model.requests == []


async def test_max_buffer_size_bounds_messages_as_locally(rx_executor, rx_project, rx_model):
    rx_model.script(text("x" * 4000))
    with pytest.raises(CLIJSONDecodeError):
        await run(ClaudeAgentOptions(cwd=str(rx_project.local), max_buffer_size=2000), rx_executor)


async def test_debug_stderr_is_unused_as_locally(rx_executor, rx_project, rx_model):
    """The SDK no longer writes to ``debug_stderr`` (use ``stderr``): nothing arrives."""
    sink = io.StringIO()
    messages = await run(
        ClaudeAgentOptions(
            cwd=str(rx_project.local), debug_stderr=sink, extra_args={"debug-to-stderr": None}
        ),
        rx_executor,
    )
    assert results(messages) and sink.getvalue() == ""


async def test_continue_conversation_continues_the_latest_session_here(
    rx_executor, rx_project, rx_model, rx_local_env
):
    """The latest session of the project is the one this machine's copies say, even
    when it last ran elsewhere (here: locally, after an older one on the host)."""
    options = ClaudeAgentOptions(cwd=str(rx_project.local))
    older = results(await run(options, rx_executor, "older on the host"))[0].session_id
    # A later session of the same project ran on this machine.
    local = ClaudeAgentOptions(
        cwd=str(rx_project.local),
        env={k: v for k, v in rx_local_env.items() if k != "CLAUDE_CONFIG_DIR"},
    )
    latest = results(await run(local, rx.LocalExecutor(), "latest, run here"))[0].session_id
    assert latest != older
    messages = await run(
        dataclasses.replace(options, continue_conversation=True), rx_executor, "continue"
    )
    assert results(messages)[-1].session_id == latest
    assert "latest, run here" in json.dumps(rx_model.main_requests[-1].body)


async def test_fork_and_resume_at_and_drops_turn_reach_the_resumed_cli(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account, wrapper
):
    """``fork_session``, ``resume_session_at`` and ``resume_drops_turn`` go with the
    resume (after the executor's copy is brought up to date): the forked session on
    the host continues from turn one without turn two, as it would here."""
    options = ClaudeAgentOptions(cwd=str(rx_project.local), cli_path=wrapper)
    first = results(await run(options, rx_executor, "turn one"))[0].session_id
    await run(dataclasses.replace(options, resume=first), rx_executor, "turn two")
    path = local_project_dir(rx_project.local) / f"{first}.jsonl"
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    prompts = [
        i
        for i, e in enumerate(entries)
        if e.get("type") == "user" and "turn two" in json.dumps(e.get("message"))
    ]
    second_prompt = entries[prompts[0]]["uuid"]
    kept_last = [e["uuid"] for e in entries[: prompts[0]] if isinstance(e.get("uuid"), str)][-1]
    fork = dataclasses.replace(
        options, resume=first, fork_session=True, resume_session_at=kept_last
    )
    if has("resume_drops_turn"):
        fork = dataclasses.replace(fork, resume_drops_turn=second_prompt)
    messages = await run(fork, rx_executor, "turn three")
    assert results(messages)[-1].session_id != first  # a fork continues under a new id
    sent = json.dumps(rx_model.main_requests[-1].body)
    assert "turn one" in sent and "turn three" in sent and "turn two" not in sent
    args = remote_args(rx_sshd, rx_account)
    assert _cli_argv.values(args, "--resume") == [first]
    assert _cli_argv.find(args, "--fork-session")
    assert _cli_argv.values(args, "--resume-session-at") == [kept_last]
    if has("resume_drops_turn"):
        assert _cli_argv.values(args, "--resume-drops-turn") == [second_prompt]


async def test_verbatim_prompts_reach_the_cli_as_locally(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account
):
    """An @mention names a file of the host's project: expanded there by default, left
    alone with ``verbatim_prompts``."""
    marker = f"FILE-{secrets.token_hex(4)}"
    script = 'printf "%s\\n" "$2" > "$1/notes.txt"'
    rx_sshd.run_as(rx_account, ["/bin/sh", "-c", script, "sh", str(rx_project.remote), marker],
                   check=True)  # fmt: skip
    options = ClaudeAgentOptions(cwd=str(rx_project.local))
    await run(options, rx_executor, "read @notes.txt")
    assert marker in json.dumps(rx_model.main_requests[-1].body)
    await run(dataclasses.replace(options, verbatim_prompts=True), rx_executor, "read @notes.txt")
    assert marker not in json.dumps(rx_model.main_requests[-1].body)


async def test_forward_subagent_text_as_locally(rx_executor, rx_project, rx_model, rx_local_env):
    """Same options, same script, here and on the host: the same subagent text reaches
    the caller, with the option and without (it travels in the initialize request)."""
    helper = {"helper": AgentDefinition(description="helps", prompt="You help.")}
    delegate = {"description": "d", "prompt": "p", "subagent_type": "helper",
                "run_in_background": False}  # fmt: skip

    def forwarded(messages: Sequence[Message]) -> list[str]:
        return [
            b.text
            for m in messages
            if isinstance(m, AssistantMessage) and m.parent_tool_use_id
            for b in m.content
            if isinstance(b, TextBlock)
        ]

    seen = {}
    machines = (("local", rx.LocalExecutor(), rx_local_env), ("remote", rx_executor, {}))
    for label, executor, env in machines:
        for forward in (True, False):
            rx_model.script(tool_use("Agent", delegate), text("subagent says hi"), text("done"))
            options = ClaudeAgentOptions(
                cwd=str(rx_project.local), agents=helper, allowed_tools=["Agent"],
                forward_subagent_text=forward, env=env,
            )  # fmt: skip
            seen[label, forward] = forwarded(await run(options, executor, "delegate"))
    assert seen["remote", True] == seen["local", True] == ["subagent says hi"]
    assert seen["remote", False] == seen["local", False] == []


async def test_file_checkpointing_rewinds_files_on_the_host(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account
):
    target = rx_project.remote / "edited.txt"
    rx_sshd.run_as(
        rx_account, ["/bin/sh", "-c", 'printf before > "$1"', "sh", str(target)], check=True
    )
    rx_model.script(
        tool_use("Write", {"file_path": str(target), "content": "after"}), text("written")
    )
    options = ClaudeAgentOptions(
        cwd=str(rx_project.local),
        enable_file_checkpointing=True,
        permission_mode="acceptEdits",
        extra_args={"replay-user-messages": None},
    )
    async with rx.ClaudeSDKClient(options, rx_executor) as client:
        await client.query("edit it")
        user_ids = []
        with anyio.fail_after(SESSION_TIMEOUT):
            async for message in client.receive_response():
                if isinstance(message, UserMessage) and message.uuid:
                    user_ids.append(message.uuid)
        assert rx_sshd.run_as(rx_account, ["cat", str(target)]).stdout == "after"
        await client.rewind_files(user_ids[0])
    assert rx_sshd.run_as(rx_account, ["cat", str(target)]).stdout == "before"


if has("client_app"):  # claude-agent-sdk 0.2.190 and later

    async def test_client_app_reaches_the_remote_cli(rx_executor, rx_project, rx_model):
        app = f"rx-app/{secrets.token_hex(2)}"
        rx_model.script(
            tool_use("Bash", {"command": "echo $CLAUDE_AGENT_SDK_CLIENT_APP"}), text("ok")
        )
        options = ClaudeAgentOptions(
            cwd=str(rx_project.local), client_app=app, allowed_tools=["Bash"]
        )
        await run(options, rx_executor)
        assert rx_model.main_requests[-1].tool_results[0].content.strip() == app


async def test_load_timeout_ms_bounds_a_slow_store_on_resume(rx_executor, rx_project, rx_model):
    class SlowStore(InMemorySessionStore):
        async def load(self, key: Any) -> Any:
            await anyio.sleep(30)

    with pytest.raises(RuntimeError, match="timed out"):
        await run(
            ClaudeAgentOptions(
                cwd=str(rx_project.local),
                resume=SID,
                session_store=SlowStore(),
                load_timeout_ms=200,
            ),
            rx_executor,
        )
    assert rx_model.requests == []
