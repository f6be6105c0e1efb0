"""Every claude-agent-sdk feature, end to end through ``SSHExecutor``.

Real sshd on loopback, a real login account as "the remote", the real Claude Code
CLI running there, and the scripted model. Each test checks what came back to the
SDK, and where it matters what the model received or what landed on the remote.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import (
    AgentDefinition,
    AssistantMessage,
    ClaudeAgentOptions,
    HookContext,
    HookMatcher,
    Message,
    PermissionResultAllow,
    PermissionResultDeny,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    TextBlock,
    ToolPermissionContext,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
    create_sdk_mcp_server,
    tool,
)

import remote_executors as rx
from remote_executors.executors.ssh import BACKENDS
from remote_executors.paths import project_dir_from_cwd
from remote_executors.testing.model import slow, text, tool_use
from remote_executors.testing.sshd import NOISE_STDOUT, SHELLS, RemoteAccount, SSHTestBed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    # Every feature over both SSH implementations.
    pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True),
]

#: Upper bound for one whole CLI session (start, a few model turns, exit).
SESSION_TIMEOUT = 60


# --------------------------------------------------------------------------- helpers


async def run_query(
    prompt: str | AsyncIterator[dict[str, Any]],
    options: ClaudeAgentOptions,
    executor: object,
) -> list[Message]:
    with anyio.fail_after(SESSION_TIMEOUT):
        return [m async for m in rx.query(prompt=prompt, options=options, executor=executor)]


def only_result(messages: Sequence[Message]) -> ResultMessage:
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert len(results) == 1, messages
    assert not results[0].is_error, results[0]
    return results[0]


def blocks_of(messages: Sequence[Message], kind: type) -> list[Any]:
    found = []
    for m in messages:
        if isinstance(m, (AssistantMessage, UserMessage)) and isinstance(m.content, list):
            found.extend(b for b in m.content if isinstance(b, kind))
    return found


def init_message(messages: Sequence[Message]) -> SystemMessage:
    inits = [m for m in messages if isinstance(m, SystemMessage) and m.subtype == "init"]
    assert inits, messages
    return inits[0]


def result_text(block: ToolResultBlock) -> str:
    if isinstance(block.content, str):
        return block.content
    return "\n".join(str(part.get("text", "")) for part in block.content or [])


def physical(bed: SSHTestBed, account: RemoteAccount, path: Path) -> str:
    """``pwd -P`` of ``path`` as the remote account sees it."""
    done = bed.run_as(account, ["/bin/sh", "-c", 'cd -- "$1" && pwd -P', "sh", str(path)])
    assert done.returncode == 0, done.stderr
    return done.stdout.rstrip("\n")


def transcript_path(
    bed: SSHTestBed, account: RemoteAccount, remote_cwd: str, session_id: str
) -> Path:
    return (
        bed.remote_home(account)
        / ".claude"
        / "projects"
        / project_dir_from_cwd(remote_cwd)
        / f"{session_id}.jsonl"
    )


def read_remote(bed: SSHTestBed, account: RemoteAccount, path: Path) -> str:
    """Read a file as the remote account (it must be readable *there*)."""
    done = bed.run_as(account, ["cat", "--", str(path)])
    assert done.returncode == 0, f"{path}: {done.stderr}"
    return done.stdout


def remote_exists(bed: SSHTestBed, account: RemoteAccount, path: Path) -> bool:
    return bed.run_as(account, ["test", "-e", str(path)]).returncode == 0


def bash(command: str) -> Any:
    return tool_use("Bash", {"command": command, "description": "probe"})


def token() -> str:
    return secrets.token_hex(4)


# --------------------------------------------------------------------------- prompts


async def test_string_prompt(rx_executor, rx_project, rx_model, rx_sshd, rx_account):
    messages = await run_query(
        "hello string prompt", ClaudeAgentOptions(cwd=str(rx_project.local)), rx_executor
    )
    result = only_result(messages)
    assert result.result == "ok: hello string prompt"
    assert [b.text for b in blocks_of(messages, TextBlock)] == ["ok: hello string prompt"]
    # The CLI ran in the remote project directory, not in the local one.
    assert init_message(messages).data["cwd"] == physical(rx_sshd, rx_account, rx_project.remote)
    assert rx_model.main_requests[-1].last_user_text == "hello string prompt"
    assert rx_model.main_requests[-1].session_id == result.session_id


async def test_streamed_prompt(rx_executor, rx_project, rx_model):
    sent: list[str] = []

    async def prompts() -> AsyncIterator[dict[str, Any]]:
        for words in ("first streamed message", "second streamed message"):
            sent.append(words)
            yield {
                "type": "user",
                "message": {"role": "user", "content": words},
                "parent_tool_use_id": None,
                "session_id": "",
            }

    messages = await run_query(
        prompts(), ClaudeAgentOptions(cwd=str(rx_project.local)), rx_executor
    )
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert sent == ["first streamed message", "second streamed message"]
    # One turn per streamed message, in order, in one session.
    assert [(r.result, r.is_error) for r in results] == [
        ("ok: first streamed message", False),
        ("ok: second streamed message", False),
    ]
    assert len({r.session_id for r in results}) == 1
    assert [r.user_texts for r in rx_model.main_requests] == [sent[:1], sent]


# --------------------------------------------------------------------------- tools


async def test_bash_tool_runs_in_the_remote_cwd(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account
):
    rx_model.script(bash("echo $PWD; id -un"), text("all done"))
    messages = await run_query(
        "where are you?",
        ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"]),
        rx_executor,
    )
    assert only_result(messages).result == "all done"

    [use] = blocks_of(messages, ToolUseBlock)
    assert use.name == "Bash"
    assert use.input["command"] == "echo $PWD; id -un"
    [returned] = blocks_of(messages, ToolResultBlock)
    assert returned.tool_use_id == use.id
    assert not returned.is_error

    # What the model got back: the remote directory, as the remote user (we are root).
    [tool_result] = rx_model.main_requests[-1].tool_results
    assert tool_result.content.splitlines() == [
        physical(rx_sshd, rx_account, rx_project.remote),
        rx_account.user,
    ]
    assert str(rx_project.local) not in tool_result.content
    assert result_text(returned) == tool_result.content


async def test_can_use_tool_allows_and_denies(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account
):
    calls: list[tuple[str, dict[str, Any]]] = []

    async def can_use_tool(
        name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        calls.append((name, tool_input))
        if "forbidden" in tool_input.get("command", ""):
            return PermissionResultDeny(message="forbidden by the test's callback")
        return PermissionResultAllow()

    # `touch` is not read-only, so the CLI asks (it never asks for a plain `echo`).
    allowed, forbidden = "touch allowed-42 && echo allowed-42", "touch forbidden-43"
    rx_model.script(bash(allowed), bash(forbidden), text("finished"))
    messages = await run_query(
        "use the tools",
        ClaudeAgentOptions(cwd=str(rx_project.local), can_use_tool=can_use_tool),
        rx_executor,
    )
    assert only_result(messages).result == "finished"
    assert [(name, tool_input["command"]) for name, tool_input in calls] == [
        ("Bash", allowed),
        ("Bash", forbidden),
    ]
    main = rx_model.main_requests
    [ran] = main[-2].tool_results
    assert (ran.content, ran.is_error) == ("allowed-42", False)
    [denied] = main[-1].tool_results
    assert denied.is_error
    assert "forbidden by the test's callback" in denied.content
    # Only the allowed command touched the remote project.
    assert remote_exists(rx_sshd, rx_account, rx_project.remote / "allowed-42")
    assert not remote_exists(rx_sshd, rx_account, rx_project.remote / "forbidden-43")


async def test_pre_tool_use_hook_sees_and_blocks(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account
):
    seen: list[dict[str, Any]] = []

    async def guard(
        input_data: dict[str, Any], tool_use_id: str | None, context: HookContext
    ) -> dict[str, Any]:
        seen.append({"tool_use_id": tool_use_id, **input_data})
        if input_data["tool_input"]["command"].startswith("rm "):
            return {
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "deny",
                    "permissionDecisionReason": "blocked by the test's hook",
                }
            }
        return {}

    rx_sshd.run_as(rx_account, ["touch", "precious"], cwd=rx_project.remote, check=True)
    rx_model.script(bash("echo hook-ok"), bash("rm -f precious"), text("hooked"))
    messages = await run_query(
        "hook me",
        ClaudeAgentOptions(
            cwd=str(rx_project.local),
            allowed_tools=["Bash"],
            hooks={"PreToolUse": [HookMatcher(matcher="Bash", hooks=[guard])]},
        ),
        rx_executor,
    )
    assert only_result(messages).result == "hooked"
    uses = blocks_of(messages, ToolUseBlock)
    assert [s["tool_input"]["command"] for s in seen] == ["echo hook-ok", "rm -f precious"]
    assert [s["tool_use_id"] for s in seen] == [u.id for u in uses]
    for s in seen:
        assert (s["hook_event_name"], s["tool_name"]) == ("PreToolUse", "Bash")
        # The hook input describes the remote session.
        assert s["cwd"] == physical(rx_sshd, rx_account, rx_project.remote)
    main = rx_model.main_requests
    assert main[-2].tool_results[0].content == "hook-ok"
    [blocked] = main[-1].tool_results
    assert blocked.is_error
    assert "blocked by the test's hook" in blocked.content
    assert remote_exists(rx_sshd, rx_account, rx_project.remote / "precious")


async def test_sdk_mcp_tool_runs_locally(rx_executor, rx_project, rx_model):
    calls: list[tuple[dict[str, Any], int]] = []

    @tool("add", "Add two integers", {"a": int, "b": int})
    async def add(args: dict[str, Any]) -> dict[str, Any]:
        calls.append((args, os.getpid()))
        return {"content": [{"type": "text", "text": f"sum={args['a'] + args['b']}"}]}

    server = create_sdk_mcp_server("calc", version="1.0.0", tools=[add])
    rx_model.script(tool_use("mcp__calc__add", {"a": 20, "b": 22}), text("the sum is 42"))
    messages = await run_query(
        "add please",
        ClaudeAgentOptions(
            cwd=str(rx_project.local),
            mcp_servers={"calc": server},
            allowed_tools=["mcp__calc__add"],
        ),
        rx_executor,
    )
    assert only_result(messages).result == "the sum is 42"
    # The Python function ran here, in this process.
    assert calls == [({"a": 20, "b": 22}, os.getpid())]
    main = rx_model.main_requests
    # The remote CLI connected to the in-process server over the SSH stdio link ...
    init = init_message(messages).data
    assert {"name": "calc", "status": "connected"}.items() <= init["mcp_servers"][0].items()
    assert "mcp__calc__add" in init["tools"]
    # ... and told the model about the tool (as a deferred tool: 2.1.x loads MCP schemas lazily).
    assert "mcp__calc__add" in main[0].raw_body.decode()
    [returned] = main[-1].tool_results
    assert returned.content == "sum=42"
    assert not returned.is_error


async def test_agents_run_a_subagent_on_the_remote(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account
):
    marker = f"rx-reviewer-{token()}"
    task = f"review the shop code {marker}"
    # Agents run in the background by default; in the foreground the subagent's
    # answer comes back as the tool result of the same turn.
    delegate = tool_use(
        "Agent",
        {
            "description": "Review code",
            "prompt": task,
            "subagent_type": "reviewer",
            "run_in_background": False,
        },
    )
    rx_model.script(delegate, text("main agent done"), when="delegate to the reviewer")
    rx_model.script(text(f"review verdict {marker}"), when=marker)
    messages = await run_query(
        "delegate to the reviewer",
        ClaudeAgentOptions(
            cwd=str(rx_project.local),
            allowed_tools=["Agent"],
            agents={
                "reviewer": AgentDefinition(
                    description="Reviews code",
                    prompt=f"You are the reviewer subagent {marker}.",
                    tools=["Read"],
                )
            },
        ),
        rx_executor,
    )
    result = only_result(messages)
    assert result.result == "main agent done"

    # The subagent's own turn: its system prompt and its task reached the model.
    sub = [r for r in rx_model.main_requests if marker in r.system_text]
    assert sub, [r.system_text[:200] for r in rx_model.main_requests]
    assert sub[0].first_user_text == task
    assert sub[0].tool_names == ["Read"]  # the agent definition's tools, not the main set
    # The main agent got the subagent's answer as the tool result.
    [returned] = rx_model.main_requests[-1].tool_results
    assert f"review verdict {marker}" in returned.content

    # Its transcript is on the remote, under the session's directory.
    cwd = physical(rx_sshd, rx_account, rx_project.remote)
    session_dir = transcript_path(rx_sshd, rx_account, cwd, result.session_id).with_suffix("")
    found = rx_sshd.run_as(rx_account, ["find", str(session_dir / "subagents"), "-name", "*.jsonl"])
    [subagent_transcript] = found.stdout.split()
    assert Path(subagent_transcript).name.startswith("agent-")
    assert task in read_remote(rx_sshd, rx_account, Path(subagent_transcript))


# --------------------------------------------------------------------------- client


async def test_client_turns_and_interrupt(rx_executor, rx_project, rx_model):
    async with rx.ClaudeSDKClient(
        ClaudeAgentOptions(cwd=str(rx_project.local)), executor=rx_executor
    ) as client:
        with anyio.fail_after(SESSION_TIMEOUT):
            await client.query("first turn")
            first = [m async for m in client.receive_response()]
        assert only_result(first).result == "ok: first turn"

        rx_model.script(slow("this reply takes far too long", delay=30))
        with anyio.fail_after(SESSION_TIMEOUT):
            await client.query("slow turn")
            await anyio.to_thread.run_sync(
                lambda: rx_model.wait_for(
                    lambda r: r.kind == "main" and r.last_user_text == "slow turn"
                )
            )
        started = anyio.current_time()
        with anyio.fail_after(10):
            await client.interrupt()
            interrupted = [m async for m in client.receive_response()]
        assert anyio.current_time() - started < 5
        [result] = [m for m in interrupted if isinstance(m, ResultMessage)]
        assert result.subtype == "error_during_execution"
        assert result.terminal_reason == "aborted_streaming"
        assert "[Request interrupted by user]" in [
            b.text for b in blocks_of(interrupted, TextBlock)
        ]
        assert "this reply takes far too long" not in str(interrupted)

        with anyio.fail_after(SESSION_TIMEOUT):
            await client.query("third turn")
            third = [m async for m in client.receive_response()]
        assert only_result(third).result == "ok: third turn"
    # The third turn continued the same conversation, interrupted turn included.
    last = rx_model.main_requests[-1]
    assert [t.strip() for t in last.user_texts] == [
        "first turn",
        "slow turn",
        "[Request interrupted by user]",
        "third turn",
    ]


# --------------------------------------------------------------------------- sessions


async def test_resume_continues_the_conversation(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account
):
    word = f"pineapple-{token()}"
    first = await run_query(
        f"remember {word}", ClaudeAgentOptions(cwd=str(rx_project.local)), rx_executor
    )
    session_id = only_result(first).session_id

    second = await run_query(
        "what was the word?",
        ClaudeAgentOptions(cwd=str(rx_project.local), resume=session_id),
        rx_executor,
    )
    resumed = only_result(second)
    assert resumed.result == "ok: what was the word?"
    assert resumed.session_id == session_id
    last = rx_model.main_requests[-1]
    assert last.user_texts == [f"remember {word}", "what was the word?"]
    assistant_texts = [
        _block_texts(m["content"]) for m in last.messages if m.get("role") == "assistant"
    ]
    assert f"ok: remember {word}" in assistant_texts
    # Both turns are in the one transcript on the remote.
    cwd = physical(rx_sshd, rx_account, rx_project.remote)
    transcript = read_remote(
        rx_sshd, rx_account, transcript_path(rx_sshd, rx_account, cwd, session_id)
    )
    assert f"remember {word}" in transcript
    assert "what was the word?" in transcript


def _block_texts(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


async def test_transcript_on_the_remote(rx_executor, rx_project, rx_model, rx_sshd, rx_account):
    prompt = f"leave a transcript {token()}"
    messages = await run_query(prompt, ClaudeAgentOptions(cwd=str(rx_project.local)), rx_executor)
    session_id = only_result(messages).session_id
    cwd = physical(rx_sshd, rx_account, rx_project.remote)
    path = transcript_path(rx_sshd, rx_account, cwd, session_id)
    lines = [json.loads(line) for line in read_remote(rx_sshd, rx_account, path).splitlines()]
    assert any(
        e.get("type") == "user" and e.get("message", {}).get("content") == prompt for e in lines
    )
    assert {e.get("sessionId") for e in lines if "sessionId" in e} == {session_id}
    assert {e["cwd"] for e in lines if "cwd" in e} == {cwd}
    # Nothing was written into the local ~/.claude for this session.
    local = Path.home() / ".claude" / "projects"
    assert not list(local.glob(f"*/{session_id}.jsonl"))


# --------------------------------------------------------------------------- options


async def test_partial_messages_stream(rx_executor, rx_project, rx_model):
    reply = "streamed in many small pieces over ssh"
    rx_model.script(text(reply, chunk_size=4))
    messages = await run_query(
        "stream please",
        ClaudeAgentOptions(cwd=str(rx_project.local), include_partial_messages=True),
        rx_executor,
    )
    assert only_result(messages).result == reply
    events = [m for m in messages if isinstance(m, StreamEvent)]
    kinds = [e.event.get("type") for e in events]
    assert "message_start" in kinds and "message_stop" in kinds
    deltas = [
        e.event["delta"]["text"]
        for e in events
        if e.event.get("type") == "content_block_delta"
        and e.event["delta"].get("type") == "text_delta"
    ]
    assert len(deltas) >= len(reply) // 4
    assert "".join(deltas) == reply


async def test_stderr_callback_gets_lines(rx_executor, rx_project, rx_model):
    lines: list[str] = []
    messages = await run_query(
        "talk on stderr",
        ClaudeAgentOptions(
            cwd=str(rx_project.local),
            stderr=lines.append,
            extra_args={"debug-to-stderr": None},
        ),
        rx_executor,
    )
    assert only_result(messages).result == "ok: talk on stderr"
    assert len(lines) > 5, lines
    assert all("\n" not in line for line in lines)
    assert any("[DEBUG]" in line for line in lines), lines[:20]
    # They come from the CLI on the remote: it reports the remote project's settings paths.
    assert any(str(rx_project.remote) in line for line in lines), lines[:20]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("rx_account", [{"shell": "bash", "noisy": True}], indirect=True)
async def test_stderr_callback_gets_no_login_shell_chatter(rx_executor, rx_project, rx_model):
    from remote_executors.testing.sshd import NOISE_STDERR

    lines: list[str] = []
    messages = await run_query(
        "quiet please",
        ClaudeAgentOptions(
            cwd=str(rx_project.local),
            stderr=lines.append,
            extra_args={"debug-to-stderr": None},
        ),
        rx_executor,
    )
    assert only_result(messages).result == "ok: quiet please"
    assert any("[DEBUG]" in line for line in lines), lines[:20]
    assert not any(NOISE_STDERR in line for line in lines), lines[:5]


async def test_env_reaches_remote_but_local_env_does_not(
    rx_executor, rx_project, rx_model, rx_account, monkeypatch
):
    probe = f"probe-{token()}"
    leak_name = f"RX_LOCAL_ONLY_{token().upper()}"
    monkeypatch.setenv(leak_name, "local-secret")
    rx_model.script(bash('echo "probe=$RX_PROBE"; env'), text("env checked"))
    messages = await run_query(
        "show env",
        ClaudeAgentOptions(
            cwd=str(rx_project.local), allowed_tools=["Bash"], env={"RX_PROBE": probe}
        ),
        rx_executor,
    )
    assert only_result(messages).result == "env checked"
    [returned] = rx_model.main_requests[-1].tool_results
    lines = returned.content.splitlines()
    assert lines[0] == f"probe={probe}"
    assert f"RX_PROBE={probe}" in lines
    assert not any(line.startswith(f"{leak_name}=") for line in lines)
    assert "local-secret" not in returned.content
    env = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    assert env["HOME"] == str(rx_account.home)  # the remote's own, not ours
    assert env["CLAUDE_CODE_ENTRYPOINT"] == "sdk-py"  # what the SDK itself adds still arrives


# --------------------------------------------------------------------------- remote shapes


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    "rx_account", [{"shell": s, "noisy": True} for s in SHELLS], indirect=True, ids=SHELLS
)
async def test_login_shells(rx_executor, rx_project, rx_model, rx_sshd, rx_account):
    prompt = f"hello from {rx_account.shell_name}"
    messages = await run_query(prompt, ClaudeAgentOptions(cwd=str(rx_project.local)), rx_executor)
    # The rc files' chatter on stdout did not corrupt the JSON stream.
    assert only_result(messages).result == f"ok: {prompt}"
    assert NOISE_STDOUT not in str(messages)
    assert init_message(messages).data["cwd"] == physical(rx_sshd, rx_account, rx_project.remote)
    assert rx_model.main_requests[-1].last_user_text == prompt


async def test_hostile_cwd_name(rx_executor, rx_project, rx_model, rx_sshd, rx_account):
    pwned = Path(f"/tmp/rx-pwned-{token()}")
    name = f'it\'s "quoted" a b $(touch {pwned}) `touch {pwned}` 🦀 end'
    local = rx_project.local / name
    local.mkdir(parents=True)
    remote = rx_project.remote / name
    rx_sshd.run_as(rx_account, ["mkdir", "-p", "--", str(remote)], check=True)

    rx_model.script(bash("pwd"), text("weird cwd ok"))
    messages = await run_query(
        "where am I",
        ClaudeAgentOptions(cwd=str(local), allowed_tools=["Bash"]),
        rx_executor,
    )
    result = only_result(messages)
    assert result.result == "weird cwd ok"
    cwd = physical(rx_sshd, rx_account, remote)
    assert cwd.endswith(name)
    assert init_message(messages).data["cwd"] == cwd
    assert rx_model.main_requests[-1].tool_results[0].content == cwd
    assert transcript_path(rx_sshd, rx_account, cwd, result.session_id).is_file()
    assert not pwned.exists()
