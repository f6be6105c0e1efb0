"""Sessions that run remotely are complete on the local disk, turn by turn.

Real sshd, real CLI on the remote account, the scripted model. The oracles are
the SDK's own session readers on the local copy, and the real CLI resuming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import (
    ResultMessage,
    get_session_messages,
    list_sessions,
)

import remote_executors as rx
from _sessions import SESSION_TIMEOUT, options_for, result_of, run
from remote_executors.executors.ssh import BACKENDS
from remote_executors.paths import project_dir_from_cwd
from remote_executors.testing.model import ScriptedModel, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import RemoteAccount, SSHTestBed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    # Over both backends, each with its default strategy (tail; SFTP for fabric).
    pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True),
]


@pytest.fixture(autouse=True)
def local_claude(private_local_claude: Path) -> Path:
    return private_local_claude


def remote_transcript(bed: SSHTestBed, account: RemoteAccount, project: Project, sid: str) -> Path:
    real = os.path.realpath(project.remote)
    return (
        bed.remote_home(account)
        / ".claude"
        / "projects"
        / project_dir_from_cwd(real)
        / f"{sid}.jsonl"
    )


def local_transcript(config: Path, project: Project, sid: str) -> Path:
    name = project_dir_from_cwd(os.path.realpath(project.local))
    return config / "projects" / name / f"{sid}.jsonl"


async def test_remote_turn_is_readable_locally_when_the_result_arrives(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    rx_model.script(
        tool_use("Bash", {"command": "echo synced-marker", "description": "echo"}),
        text("All done."),
    )
    seen_at_result: list[int] = []
    sid = None
    with anyio.fail_after(SESSION_TIMEOUT):
        async for m in rx.query(prompt="go", options=options_for(rx_project), executor=rx_executor):
            if isinstance(m, ResultMessage):
                sid = m.session_id
                # The oracle: the SDK's own readers, on the local disk, now.
                listed = list_sessions(directory=str(rx_project.local))
                assert [s.session_id for s in listed] == [sid]
                entries = get_session_messages(sid, directory=str(rx_project.local))
                seen_at_result.append(len(entries))
                texts = repr([e.message for e in entries])
                assert "synced-marker" in texts and "All done." in texts
    assert sid is not None and seen_at_result and seen_at_result[0] >= 4
    # After the CLI exited, the local copy is byte-identical to the remote one.
    remote = remote_transcript(rx_sshd, rx_account, rx_project, sid).read_bytes()
    assert local_transcript(local_claude, rx_project, sid).read_bytes() == remote
    record = rx.get_session_record(sid)
    assert record is not None and record.executor == rx_executor.spec
    assert record.remote_cwd == os.path.realpath(rx_project.remote)
    assert record.sync_error is None


def all_text(request: Any) -> str:
    return repr(request.messages)


async def first_session(
    prompt: str, project: Project, executor: rx.Executor, model: ScriptedModel, marker: str
) -> str:
    model.script(
        tool_use("Bash", {"command": f"echo {marker}", "description": "echo"}),
        text(f"first answer {marker}"),
    )
    return result_of(await run(prompt, options_for(project), executor)).session_id


async def test_resume_on_the_same_host_continues_the_conversation(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    sid = await first_session("first question", rx_project, rx_executor, rx_model, "m-one")
    before = local_transcript(local_claude, rx_project, sid).read_bytes()
    remote_path = remote_transcript(rx_sshd, rx_account, rx_project, sid)
    inode = remote_path.stat().st_ino
    rx_model.script(text("second answer"))
    messages = await run("second question", options_for(rx_project, resume=sid), rx_executor)
    assert result_of(messages).session_id == sid
    # The real CLI resumed the conversation: the model saw the first turn.
    last = rx_model.main_requests[-1]
    assert "first answer m-one" in all_text(last) and "second question" in all_text(last)
    after = local_transcript(local_claude, rx_project, sid).read_bytes()
    assert after.startswith(before) and len(after) > len(before)
    assert after == remote_path.read_bytes()
    # Local was not ahead, so nothing was pushed: the CLI appended to the same file.
    assert remote_path.stat().st_ino == inode
    entries = get_session_messages(sid, directory=str(rx_project.local))
    assert "second answer" in repr([e.message for e in entries])


async def test_remote_session_resumes_locally_and_back(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    sid = await first_session("remote question", rx_project, rx_executor, rx_model, "m-r")
    # Locally: the local CLI reads the synced copy (same config dir as the readers).
    rx_model.script(text("local answer"))
    local_options = options_for(rx_project, resume=sid)
    local_options.env.update(rx_model.cli_env())
    messages = await run("local question", local_options, rx.LocalExecutor())
    assert result_of(messages).session_id == sid
    assert "first answer m-r" in all_text(rx_model.main_requests[-1])
    record = rx.get_session_record(sid)
    assert record is not None and record.executor == "local"
    local_bytes = local_transcript(local_claude, rx_project, sid).read_bytes()
    remote_path = remote_transcript(rx_sshd, rx_account, rx_project, sid)
    assert local_bytes.startswith(remote_path.read_bytes())
    assert len(local_bytes) > remote_path.stat().st_size  # local is ahead now

    # Back on the remote: local is strictly ahead, so it is pushed first.
    rx_model.script(text("remote again"))
    messages = await run("third question", options_for(rx_project, resume=sid), rx_executor)
    assert result_of(messages).session_id == sid
    seen = all_text(rx_model.main_requests[-1])
    assert "first answer m-r" in seen and "local answer" in seen
    final_local = local_transcript(local_claude, rx_project, sid).read_bytes()
    assert final_local.startswith(local_bytes)
    assert final_local == remote_path.read_bytes()


async def test_local_session_resumes_on_the_remote(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    local_options = options_for(rx_project)
    local_options.env.update(rx_model.cli_env())
    rx_model.script(text("born locally"))
    sid = result_of(await run("hello", local_options, rx.LocalExecutor())).session_id
    remote_path = remote_transcript(rx_sshd, rx_account, rx_project, sid)
    assert not remote_path.exists()
    rx_model.script(text("continued remotely"))
    messages = await run("more", options_for(rx_project, resume=sid), rx_executor)
    assert result_of(messages).session_id == sid
    assert "born locally" in all_text(rx_model.main_requests[-1])
    assert local_transcript(local_claude, rx_project, sid).read_bytes() == remote_path.read_bytes()


async def test_every_turn_of_a_client_session_is_local_before_its_result(
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
) -> None:
    rx_model.script(
        text("turn one"),
        tool_use("Bash", {"command": "echo turn-two-tool", "description": "echo"}),
        text("turn two"),
    )
    with anyio.fail_after(SESSION_TIMEOUT):
        async with rx.ClaudeSDKClient(options_for(rx_project), executor=rx_executor) as client:
            for prompt, expected in (("one", "turn one"), ("two", "turn two")):
                await client.query(prompt)
                async for m in client.receive_response():
                    if isinstance(m, ResultMessage):
                        entries = get_session_messages(
                            m.session_id, directory=str(rx_project.local)
                        )
                        assert expected in repr([e.message for e in entries])


async def test_a_failed_sync_reaches_the_caller_as_data_and_recovers(
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    # A plain file where the local project dir must go: every local write fails.
    blocker = local_claude / "projects"
    blocker.write_text("not a directory")
    rx_model.script(text("turn one"), text("turn two"))
    statuses: list[rx.SessionSyncStatus] = []
    with anyio.fail_after(SESSION_TIMEOUT):
        async with rx.ClaudeSDKClient(options_for(rx_project), executor=rx_executor) as client:
            await client.query("one")
            turn_one = [m async for m in client.receive_response()]
            statuses += [s for m in turn_one if (s := rx.SessionSyncStatus.from_message(m))]
            assert isinstance(turn_one[-1], ResultMessage)  # the session went on
            sid = turn_one[-1].session_id
            [failed] = statuses
            assert not failed.ok and failed.host == rx_executor.name
            assert failed.message == "Session sync failed, local view may be stale"
            record = rx.get_session_record(sid)
            assert record is not None and record.sync_error
            blocker.unlink()
            await client.query("two")
            turn_two = [m async for m in client.receive_response()]
            [recovered] = [s for m in turn_two if (s := rx.SessionSyncStatus.from_message(m))]
            assert recovered.ok
            entries = get_session_messages(sid, directory=str(rx_project.local))
            texts = repr([e.message for e in entries])
            assert "turn one" in texts and "turn two" in texts
    record = rx.get_session_record(sid)
    assert record is not None and record.sync_error is None


async def test_subagent_transcripts_are_synced(
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    from claude_agent_sdk import AgentDefinition

    marker = "rx-sub-marker"
    rx_model.script(
        tool_use(
            "Agent",
            {
                "description": "Review code",
                "prompt": f"review {marker}",
                "subagent_type": "reviewer",
                "run_in_background": False,
            },
        ),
        text("main done"),
        when="delegate",
    )
    rx_model.script(text(f"verdict {marker}"), when=marker)
    options = options_for(rx_project)
    options.allowed_tools = ["Agent"]
    options.agents = {
        "reviewer": AgentDefinition(description="Reviews", prompt="You review.", tools=["Read"])
    }
    sid = result_of(await run("delegate", options, rx_executor)).session_id
    local_dir = local_transcript(local_claude, rx_project, sid).with_suffix("")
    [sub] = list((local_dir / "subagents").glob("agent-*.jsonl"))
    assert f"review {marker}" in sub.read_text()


async def test_resume_without_an_executor_runs_where_the_session_last_ran(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    sid = await first_session("where", rx_project, rx_executor, rx_model, "m-rec")
    record = rx.get_session_record(sid)
    assert record is not None and record.executor == rx_executor.spec
    assert f"ssh_config={rx_executor.ssh_config}" in record.executor
    rx_model.script(text("still remote"))
    messages = await run("again", options_for(rx_project, resume=sid), None)
    assert result_of(messages).session_id == sid
    remote_path = remote_transcript(rx_sshd, rx_account, rx_project, sid)
    assert b"still remote" in remote_path.read_bytes()  # it ran there, not here
    assert local_transcript(local_claude, rx_project, sid).read_bytes() == remote_path.read_bytes()


async def test_resume_refuses_a_malformed_session_id_before_anything_runs(
    rx_project: Project, rx_executor: rx.SSHExecutor
) -> None:
    for bad in ("../../etc/passwd", "-rf", "not-a-uuid"):
        with pytest.raises(rx.InvalidInput):
            await run("x", options_for(rx_project, resume=bad), rx_executor)
        with pytest.raises(rx.InvalidInput):
            await run("x", options_for(rx_project, resume=bad), None)


async def test_a_forked_resume_syncs_the_new_session_and_keeps_the_old_one(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    sid = await first_session("base", rx_project, rx_executor, rx_model, "m-fork")
    old = local_transcript(local_claude, rx_project, sid).read_bytes()
    rx_model.script(text("forked answer"))
    options = options_for(rx_project, resume=sid, fork_session=True)
    new_sid = result_of(await run("fork it", options, rx_executor)).session_id
    assert new_sid != sid
    assert local_transcript(local_claude, rx_project, sid).read_bytes() == old
    forked = local_transcript(local_claude, rx_project, new_sid).read_bytes()
    assert b"forked answer" in forked
    assert forked == remote_transcript(rx_sshd, rx_account, rx_project, new_sid).read_bytes()


async def test_a_remote_project_behind_a_symlink_is_found_by_its_real_path(
    rx_ssh_backend: str,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: Any,
    rx_project: Project,
    rx_model: ScriptedModel,
    local_claude: Path,
) -> None:
    # The local project maps (path_map) to a symlink on the remote; the CLI
    # names its project dir after the real path behind it.
    real = rx_project.remote.parent / "real-shop"
    link = rx_project.remote.parent / "link-shop"
    rx_sshd.run_as(rx_account, ["mkdir", "-p", str(real)], check=True)
    rx_sshd.run_as(rx_account, ["ln", "-s", str(real), str(link)], check=True)
    executor = rx.SSHExecutor(
        rx_ssh_config.alias,
        ssh_config=str(rx_ssh_config.path),
        path_map={str(rx_project.local): str(link)},
        backend=rx_ssh_backend,
    )
    async with executor:
        rx_model.script(text("behind a link"))
        sid = result_of(await run("hi", options_for(rx_project), executor)).session_id
    remote = (
        rx_sshd.remote_home(rx_account)
        / ".claude/projects"
        / project_dir_from_cwd(os.path.realpath(real))
        / f"{sid}.jsonl"
    )
    assert remote.exists()
    local = local_transcript(local_claude, rx_project, sid)
    assert local.read_bytes() == remote.read_bytes()
    assert [s.session_id for s in list_sessions(directory=str(rx_project.local))] == [sid]
