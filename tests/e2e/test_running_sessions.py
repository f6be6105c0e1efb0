"""Running sessions from a new local process: list, follow to the result, resume.

An app (a real subprocess driving the SDK over the bed) starts a long turn and is
killed with SIGKILL; the turn goes on under the remote supervisor. This process then
lists it, follows it read-only to its result (the transcript whole here by then),
and resumes it. Real sshd, real CLI, the scripted model.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ResultMessage,
    SystemMessage,
    ToolUseBlock,
    UserMessage,
    get_session_messages,
)

import remote_executors as rx
from _cli import CLI
from _sessions import texts, transcripts
from remote_executors.paths import project_dir_from_cwd
from remote_executors.testing.model import ScriptedModel, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHFault, SSHTestBed

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])

APP = """
import sys, anyio
from claude_agent_sdk import ClaudeAgentOptions
import remote_executors as rx

def show(m):
    print(type(m).__name__, flush=True)
    if type(m).__name__ == "SystemMessage" and m.subtype == "init":
        print("SESSION", m.data["session_id"], flush=True)

async def main():
    alias, config, cwd, prompt, mode = sys.argv[1:6]
    options = ClaudeAgentOptions(cwd=cwd, allowed_tools=["Bash"])
    async with rx.SSHExecutor(alias, ssh_config=config) as executor:
        if mode == "query":  # one prompt: the SDK closes the CLI's input at once
            async for m in rx.query(prompt=prompt, executor=executor, options=options):
                show(m)
        else:  # a client keeps it open for the next prompt
            async with rx.ClaudeSDKClient(options=options, executor=executor) as client:
                await client.query(prompt)
                async for m in client.receive_response():
                    show(m)

anyio.run(main)
"""


@pytest.fixture(autouse=True)
def local_claude(private_local_claude: Path) -> Path:
    return private_local_claude


def long_turn(model: ScriptedModel, seconds: float) -> str:
    prompt = f"work a while {secrets.token_hex(4)}"
    model.script(
        tool_use("Bash", {"command": f"echo go; sleep {seconds}; echo slept", "description": "w"}),
        text("finished the long work"),
        when=prompt,
    )
    return prompt


def executor_for(cfg: SSHClientConfig, backend: str = "openssh") -> rx.SSHExecutor:
    return rx.SSHExecutor(cfg.alias, ssh_config=cfg.path, backend=backend)  # type: ignore[arg-type]


async def start_and_kill_app(
    cfg: SSHClientConfig, project: Project, prompt: str, tmp_path: Path, mode: str = "query"
) -> str:
    """Run the app until its turn's tool call is under way, SIGKILL it; its session id."""
    script = tmp_path / "app.py"
    script.write_text(APP)
    argv = [sys.executable, str(script), cfg.alias, str(cfg.path), str(project.local), prompt, mode]
    errors = (tmp_path / "app.err").open("wb")
    process = await anyio.open_process(argv, env=os.environ.copy(), stderr=errors)
    assert process.stdout is not None
    lines: list[str] = []
    buffer = b""
    with anyio.fail_after(90):
        while not any(line.startswith("AssistantMessage") for line in lines):
            try:
                buffer += await process.stdout.receive()
            except anyio.EndOfStream:
                raise AssertionError((tmp_path / "app.err").read_text()) from None
            *done, buffer = buffer.split(b"\n")
            lines += [line.decode() for line in done]
        process.send_signal(signal.SIGKILL)
        await process.wait()
    [sid] = [line.split()[1] for line in lines if line.startswith("SESSION ")]
    return sid


@asyncio_only
@pytest.mark.parametrize("mode", ["query", "client"])
async def test_killed_app_session_is_listed_followed_then_resumed(
    mode: str,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    local_claude: Path,
    tmp_path: Path,
) -> None:
    prompt = long_turn(rx_model, 8)
    sid = await start_and_kill_app(rx_ssh_config, rx_project, prompt, tmp_path, mode)

    async with executor_for(rx_ssh_config) as executor:
        with anyio.fail_after(30):
            while True:
                running = await rx.list_running_sessions(executor)
                [session] = [s for s in running if s.session_id == sid]
                if not session.attached:  # the app is dead: its channel closes soon
                    break
                await anyio.sleep(0.1)
        assert session.host == executor.name
        assert session.cwd == str(rx_project.remote)
        # A client's CLI waits for more input after the turn: the follow closes it. A
        # one-prompt query had closed it already, so on a loaded machine its CLI may have
        # ended before this look ("exited": its output waits in the spool).
        # (A client's CLI may be "idle" by then: the follow yields its history and ends.)
        assert session.state in (("running", "exited") if mode == "query" else ("running", "idle"))
        assert session.running_for.total_seconds() < 60

        with anyio.fail_after(60):
            messages = [m async for m in rx.follow_running_session(executor, sid)]
        results = [m for m in messages if isinstance(m, ResultMessage)]
        assert len(results) == 1 and results[0].subtype == "success"
        assert results[0].session_id == sid
        # It ends at the result (or, when the CLI had ended, at its last status lines).
        after = messages[messages.index(results[0]) + 1 :]
        assert all(isinstance(m, SystemMessage) for m in after), after
        # The whole turn, from the CLI's start, once each.
        assert texts(messages) == ["finished the long work"]
        tool_calls = [
            b for m in messages if isinstance(m, AssistantMessage) for b in m.content
            if isinstance(b, ToolUseBlock)
        ]  # fmt: skip
        assert len(tool_calls) == 1
        assert any(isinstance(m, UserMessage) for m in messages)  # the tool's result
        inits = [m for m in messages if isinstance(m, SystemMessage) and m.subtype == "init"]
        assert len(inits) == 1
        uuids = [m.uuid for m in messages if getattr(m, "uuid", None)]
        assert len(uuids) == len(set(uuids))
        # The transcript is whole here (an oracle nobody here wrote), and byte-equal.
        entries = get_session_messages(sid, directory=str(rx_project.local))
        assert any("finished the long work" in str(e) for e in entries)
        there, here = transcripts(rx_sshd, rx_account, rx_project, local_claude, sid)
        assert here == there and b"finished the long work" in here

        # Released: the CLI exited and the host cleaned up its job. The listing
        # leaves it out once its output was collected ("done"); the supervisor
        # removes it a moment later.
        with anyio.fail_after(20):
            while any(s.session_id == sid for s in await rx.list_running_sessions(executor)):
                await anyio.sleep(0.2)
            while Path(session.job_dir).exists():
                await anyio.sleep(0.1)

        # Resumed as usual: the model sees the followed turn in the history.
        again = f"and now {secrets.token_hex(4)}"
        options = ClaudeAgentOptions(cwd=str(rx_project.local), resume=sid)
        with anyio.fail_after(60):
            resumed = [m async for m in rx.query(prompt=again, options=options, executor=executor)]
    assert texts(resumed) == [f"ok: {again}"]  # the scripted model's default answer
    assert "finished the long work" in json.dumps(rx_model.main_requests[-1].body)


@asyncio_only
async def test_following_from_now_skips_the_history(
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    local_claude: Path,
    tmp_path: Path,
) -> None:
    """``since="now"``: only what the CLI prints from then on (no init, no first
    assistant message), to the turn's result; the transcript is still whole here."""
    prompt = long_turn(rx_model, 6)
    sid = await start_and_kill_app(rx_ssh_config, rx_project, prompt, tmp_path, "client")
    async with executor_for(rx_ssh_config) as executor:
        with anyio.fail_after(60):
            follow = rx.follow_running_session(executor, sid, since="now", release=False)
            messages = [m async for m in follow]
        results = [m for m in messages if isinstance(m, ResultMessage)]
        assert len(results) == 1 and results[0].session_id == sid
        assert not [m for m in messages if isinstance(m, SystemMessage) and m.subtype == "init"]
        # The tool call was printed before the follow began: not yielded again.
        assert not any(
            isinstance(b, ToolUseBlock)
            for m in messages
            if isinstance(m, AssistantMessage)
            for b in m.content
        ), messages
        assert texts(messages) == ["finished the long work"]
        there, here = transcripts(rx_sshd, rx_account, rx_project, local_claude, sid)
        assert here == there and b"finished the long work" in here
        # Not released: the CLI waits for input. From now, nothing is in flight.
        with anyio.fail_after(30):
            assert [m async for m in rx.follow_running_session(executor, sid, since="now")] == []
        # That follow released it: the CLI ends and the host cleans up.
        with anyio.fail_after(20):
            while any(s.session_id == sid for s in await rx.list_running_sessions(executor)):
                await anyio.sleep(0.2)
        with pytest.raises(rx.InvalidInput, match="since"):
            [m async for m in rx.follow_running_session(executor, sid, since="later")]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("anyio_backend", "rx_ssh_backend"),
    [("asyncio", "openssh"), ("trio", "openssh"), ("asyncio", "fabric")],
    indirect=["rx_ssh_backend"],
)
async def test_following_leaves_an_attached_client_alone(
    rx_ssh_backend: str,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
) -> None:
    """The app still runs: a follower sees the same turn, and the app's channel (its stdin,
    its control requests) stays its own: it gets its result, with no link status."""
    prompt = long_turn(rx_model, 3)
    options = ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"])
    own: list[Any] = []
    followed: list[Any] = []
    async with executor_for(rx_ssh_config, rx_ssh_backend) as executor:
        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                started = anyio.Event()
                sid = ""

                async def app() -> None:
                    nonlocal sid
                    async for m in rx.query(prompt=prompt, options=options, executor=executor):
                        own.append(m)
                        if isinstance(m, AssistantMessage) and not started.is_set():
                            sid = m.session_id or ""
                            started.set()

                tg.start_soon(app)
                await started.wait()
                # A second executor, as a second app would have.
                async with executor_for(rx_ssh_config, rx_ssh_backend) as other:
                    [session] = [
                        s for s in await rx.list_running_sessions(other) if s.session_id == sid
                    ]
                    assert session.attached and session.state == "running"
                    followed = [m async for m in rx.follow_running_session(other, sid)]
    assert rx.LinkStatus.from_message(own[-1]) is None
    assert not [m for m in own if rx.LinkStatus.from_message(m) is not None]
    for messages in (own, followed):
        results = [m for m in messages if isinstance(m, ResultMessage)]
        assert len(results) == 1 and results[0].subtype == "success", messages
        assert texts(messages) == ["finished the long work"]
    own_uuids = [m.uuid for m in own if getattr(m, "uuid", None)]
    assert [m.uuid for m in followed if getattr(m, "uuid", None)] == own_uuids


@asyncio_only
async def test_not_running_and_unknown_sessions_and_an_unreachable_host_are_typed(
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
) -> None:
    options = ClaudeAgentOptions(cwd=str(rx_project.local))
    async with executor_for(rx_ssh_config) as executor:
        with anyio.fail_after(60):
            ended = [m async for m in rx.query(prompt="hi", options=options, executor=executor)]
            sid = ended[-1].session_id
            with pytest.raises(rx.SessionNotRunning) as not_running:
                async for _ in rx.follow_running_session(executor, sid):
                    pass
            unknown = "0b6e3c2a-58b4-4a5e-9d0b-3f3f0d1e2a77"
            with pytest.raises(rx.SessionNotRunning) as not_known:
                async for _ in rx.follow_running_session(executor, unknown):
                    pass
    host = executor.name
    assert not_running.value.known and not_running.value.session_id == sid
    assert host in str(not_running.value) and f"resume={sid!r}" in str(not_running.value)
    assert not not_known.value.known and not_known.value.host == host
    assert f"sessions --running --on {host}" in str(not_known.value)

    refused = rx.SSHExecutor(
        rx_ssh_config.alias_for(SSHFault.CONNECTION_REFUSED), ssh_config=rx_ssh_config.path
    )
    async with refused:
        with anyio.fail_after(60), pytest.raises(rx.HostUnreachable) as unreachable:
            await rx.list_running_sessions(refused)
        with anyio.fail_after(60), pytest.raises(rx.HostUnreachable):
            async for _ in rx.follow_running_session(refused, sid):
                pass
    assert refused.name in str(unreachable.value)


@asyncio_only
async def test_cli_lists_and_follows_a_running_session(
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    rx_model: ScriptedModel,
    tmp_path: Path,
) -> None:
    cli = CLI(tmp_path / "cli", rx_model)
    alias = rx_ssh_config.alias
    added = cli("executors", "add", alias, "--ssh-config", str(rx_ssh_config.path))
    assert added.returncode == 0, added.stderr
    prompt = long_turn(rx_model, 8)
    sid = await start_and_kill_app(rx_ssh_config, rx_project, prompt, tmp_path)

    listed = await anyio.to_thread.run_sync(cli, "sessions", "--running", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = [r for r in json.loads(listed.stdout) if r.get("session_id") == sid]
    assert row["host"] == alias and row["state"] in ("running", "exited")
    assert row["cwd"] == str(rx_project.remote) and row["running_seconds"] < 60
    table = await anyio.to_thread.run_sync(cli, "sessions", "--running", "--on", alias)
    assert table.returncode == 0 and sid in table.stdout and "STATE" in table.stdout

    args = ("sessions", "--follow", sid, "--on", alias, "--cwd", str(rx_project.local), "--json")
    followed = await anyio.to_thread.run_sync(cli, *args)
    assert followed.returncode == 0, followed.stderr
    lines = [json.loads(line) for line in followed.stdout.splitlines()]
    [result] = [line for line in lines if line["type"] == "result"]
    assert result["session_id"] == sid and result["subtype"] == "success"
    assert {line["type"] for line in lines[lines.index(result) + 1 :]} <= {"system"}
    assert "finished the long work" in followed.stdout
    name = project_dir_from_cwd(os.path.realpath(rx_project.local))
    here = (cli.claude_dir / "projects" / name / f"{sid}.jsonl").read_text()
    assert "finished the long work" in here

    again = await anyio.to_thread.run_sync(cli, "sessions", "--follow", sid, "--on", alias)
    assert again.returncode == 1
    assert f"is not running on {alias}" in again.stderr
    assert f"remote-executors run --resume {sid}" in again.stderr
    assert "ClaudeAgentOptions" not in again.stderr  # Python advice, not for the command line

    lonely = await anyio.to_thread.run_sync(cli, "sessions", "--running", "--from-now")
    assert lonely.returncode == 2 and "--from-now goes with --follow" in lonely.stderr

    unknown = "0b6e3c2a-58b4-4a5e-9d0b-3f3f0d1e2a77"
    missing = await anyio.to_thread.run_sync(cli, "sessions", "--follow", unknown, "--on", alias)
    assert missing.returncode == 1
    assert f"sessions --running --on {alias}" in missing.stderr

    refused = rx_ssh_config.alias_for(SSHFault.CONNECTION_REFUSED)
    cli("executors", "add", refused, "--ssh-config", str(rx_ssh_config.path))
    down = await anyio.to_thread.run_sync(cli, "sessions", "--running", "--on", refused)
    assert down.returncode == 3, down.stderr  # connection
    assert refused in down.stderr and "refused the connection" in down.stderr
    # Without --on, an unreachable host is a warning beside the others' sessions.
    both = await anyio.to_thread.run_sync(cli, "sessions", "--running")
    assert both.returncode == 0, both.stderr
    assert refused in both.stdout
