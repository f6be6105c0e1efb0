"""``ClaudeAgentOptions(session_store=...)`` through ``SSHExecutor``, end to end.

Oracles nobody here wrote: the SDK's own readers of a store
(``list_sessions_from_store``, ``get_session_messages_from_store``,
``list_subagents_from_store``, ``get_subagent_messages_from_store``) against its
readers of the local copy, the SDK's ``run_session_store_conformance``, and the
real CLI resuming (what the model is sent on the resumed turn).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import (
    AgentDefinition,
    ClaudeAgentOptions,
    InMemorySessionStore,
    Message,
    ResultMessage,
    get_session_messages,
    get_session_messages_from_store,
    get_subagent_messages,
    get_subagent_messages_from_store,
    list_sessions_from_store,
    list_subagents,
    list_subagents_from_store,
    project_key_for_directory,
)
from claude_agent_sdk.testing import run_session_store_conformance

import remote_executors as rx
from remote_executors.executors.ssh import BACKENDS
from remote_executors.sync._locate import local_project_dir
from remote_executors.testing.model import text, tool_use
from remote_executors.testing.plugin import Project

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SESSION_TIMEOUT = 90
HELPER = {"helper": AgentDefinition(description="helps", prompt="You help.")}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def run(options: ClaudeAgentOptions, executor: object, prompt: str) -> list[Message]:
    with anyio.fail_after(SESSION_TIMEOUT):
        return [m async for m in rx.query(prompt=prompt, options=options, executor=executor)]


def results(messages: Sequence[Message]) -> list[ResultMessage]:
    found = [m for m in messages if isinstance(m, ResultMessage)]
    assert found and not any(r.is_error for r in found), messages
    return found


def script_subagent_turn(model: Any, prompt: str) -> None:
    model.script(
        tool_use("Task", {"description": "sub", "prompt": prompt, "subagent_type": "helper"}),
        text(f"sub done: {prompt}"),
        text("main done"),
    )


def uuids(entries: Sequence[Any]) -> list[str]:
    return [e["uuid"] for e in entries if isinstance(e, dict) and isinstance(e.get("uuid"), str)]


def file_uuids(path: Path) -> list[str]:
    return uuids([json.loads(line) for line in path.read_text().splitlines() if line.strip()])


def forget_locally(project: Project, session_id: str) -> None:
    """As if the app's local disk were new: no local copy, no record."""
    shutil.rmtree(local_project_dir(project.local), ignore_errors=True)
    rx.SessionRecords().delete(session_id)


@pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True)
async def test_the_store_gets_what_it_gets_locally_subagents_included(
    rx_executor, rx_project, rx_model
):
    store = InMemorySessionStore()
    script_subagent_turn(rx_model, "look around")
    messages = await run(
        ClaudeAgentOptions(
            cwd=str(rx_project.local), agents=HELPER, allowed_tools=["Task"], session_store=store
        ),
        rx_executor,
        "delegate",
    )
    session_id = results(messages)[0].session_id
    cwd = str(rx_project.local)
    key = project_key_for_directory(cwd)
    keys = set(store._store)  # the mirror's keys: this machine's project key
    assert f"{key}/{session_id}" in keys
    [sub_key] = [k for k in keys if k.startswith(f"{key}/{session_id}/subagents/")]

    # The SDK reads the same conversation from the store as from the synced local copy.
    [listed] = await list_sessions_from_store(store, directory=cwd)
    assert listed.session_id == session_id
    from_store = await get_session_messages_from_store(store, session_id, directory=cwd)
    local = get_session_messages(session_id, directory=cwd)
    assert [m.uuid for m in from_store] == [m.uuid for m in local] and local
    assert await list_subagents_from_store(store, session_id, directory=cwd) == list_subagents(
        session_id, directory=cwd
    )
    [agent_id] = list_subagents(session_id, directory=cwd)
    sub_store = await get_subagent_messages_from_store(store, session_id, agent_id, directory=cwd)
    sub_local = get_subagent_messages(session_id, agent_id, directory=cwd)
    assert [m.uuid for m in sub_store] == [m.uuid for m in sub_local] and sub_local
    # Every mirrored entry is a line of the transcript, in the same order.
    transcript = local_project_dir(cwd) / f"{session_id}.jsonl"
    assert uuids(store._store[f"{key}/{session_id}"]) == file_uuids(transcript)
    assert sub_key.endswith(agent_id)

    # A store holding what came through SSH still meets the SDK's store contracts.
    fed = dict(store._store)

    async def make() -> InMemorySessionStore:
        fresh = InMemorySessionStore()
        for joined, entries in fed.items():
            project_key, session, *sub = joined.split("/", 2)
            await fresh.append(
                {
                    "project_key": project_key,
                    "session_id": session,
                    **({"subpath": sub[0]} if sub else {}),
                },
                entries,
            )  # type: ignore[arg-type]
        return fresh

    await run_session_store_conformance(make)


def other_host(
    bed: Any, account: Any, project: Project, factory: Any, where: Path
) -> rx.SSHExecutor:
    """An executor for a new account that has the project directory but nothing else."""
    fresh = factory(label="other")
    relative = project.remote.relative_to(bed.remote_home(account))
    bed.run_as(fresh, ["mkdir", "-p", str(bed.remote_home(fresh) / relative)], check=True)
    config = bed.client_config(fresh, where, alias="rx-other")
    executor = rx.SSHExecutor(config.alias, ssh_config=str(config.path))
    executor.account = fresh  # type: ignore[attr-defined]  # for the test's own checks
    return executor


def sent_text(model: Any) -> str:
    return json.dumps(model.main_requests[-1].body)


async def test_resume_from_the_store_on_a_host_that_never_saw_the_session(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account, rx_account_factory, tmp_path
):
    """The app lost its local disk and the session moves to a new host: the store's
    copy goes there, subagent transcripts too, and the conversation continues."""
    store = InMemorySessionStore()
    first = f"first-{secrets.token_hex(3)}"
    script_subagent_turn(rx_model, first)
    options = ClaudeAgentOptions(
        cwd=str(rx_project.local), agents=HELPER, allowed_tools=["Task"], session_store=store
    )
    session_id = results(await run(options, rx_executor, first))[0].session_id
    forget_locally(rx_project, session_id)

    second = f"second-{secrets.token_hex(3)}"
    other = other_host(rx_sshd, rx_account, rx_project, rx_account_factory, tmp_path / "other")
    async with other:
        messages = await run(
            ClaudeAgentOptions(cwd=str(rx_project.local), resume=session_id, session_store=store),
            other,
            second,
        )
    assert results(messages)[-1].session_id == session_id
    sent = sent_text(rx_model)
    assert first in sent and second in sent  # the resumed CLI had the whole conversation
    # The host now holds the session, its subagent transcript included.
    listing = rx_sshd.run_as(
        other.account, ["/bin/sh", "-c", "cd ~/.claude/projects && ls -R"], check=True
    ).stdout
    assert f"{session_id}.jsonl" in listing and "agent-" in listing
    # The new turn reached the store under the same key, and the local copy is whole.
    key = f"{project_key_for_directory(str(rx_project.local))}/{session_id}"
    assert second in json.dumps(store._store[key])
    local = local_project_dir(rx_project.local) / f"{session_id}.jsonl"
    assert set(uuids(store._store[key])) <= set(file_uuids(local))


async def test_resume_from_the_store_catches_up_a_host_that_is_behind(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account, rx_account_factory, tmp_path
):
    """Turn 1 ran here on the first host, turn 2 on another host from another app
    instance (only the store saw it). Resuming on the first host with the store: the
    missing turn is appended to the local copy, pushed to the host, and the CLI
    continues with all of it; nothing that was on either side is lost."""
    store = InMemorySessionStore()
    turns = [f"turn{i}-{secrets.token_hex(3)}" for i in range(3)]
    options = ClaudeAgentOptions(cwd=str(rx_project.local), session_store=store)
    session_id = results(await run(options, rx_executor, turns[0]))[0].session_id
    local = local_project_dir(rx_project.local) / f"{session_id}.jsonl"
    before = local.read_bytes()

    # Another app instance (its own local disk) continues it on another host.
    saved = local.parent.with_name(local.parent.name + ".saved")
    local.parent.rename(saved)
    record = rx.get_session_record(session_id)
    rx.SessionRecords().delete(session_id)
    other = other_host(rx_sshd, rx_account, rx_project, rx_account_factory, tmp_path / "other")
    async with other:
        resumed = dataclasses.replace(options, resume=session_id)
        results(await run(resumed, other, turns[1]))
    shutil.rmtree(local.parent)
    saved.rename(local.parent)
    assert record is not None
    rx.SessionRecords().put(record)

    # This instance resumes on its own host, which never saw turn 2.
    messages = await run(dataclasses.replace(options, resume=session_id), rx_executor, turns[2])
    assert results(messages)[-1].session_id == session_id
    sent = sent_text(rx_model)
    assert all(t in sent for t in turns)
    after = local.read_bytes()
    assert after.startswith(before)  # extended, never rewritten
    remote = rx_sshd.remote_home(rx_account) / ".claude" / "projects"
    found = rx_sshd.run_as(
        rx_account, ["/bin/sh", "-c", f'cat "{remote}"/*/{session_id}.jsonl'], check=True
    ).stdout.encode()
    assert found == after


async def test_continue_with_a_store_picks_the_stores_latest_session(
    rx_executor, rx_project, rx_model
):
    store = InMemorySessionStore()
    options = ClaudeAgentOptions(cwd=str(rx_project.local), session_store=store)
    await run(options, rx_executor, "older")
    latest = results(await run(options, rx_executor, "latest"))[0].session_id
    forget_locally(rx_project, latest)
    messages = await run(
        dataclasses.replace(options, continue_conversation=True), rx_executor, "again"
    )
    assert results(messages)[-1].session_id == latest
    assert "latest" in sent_text(rx_model)


async def test_a_store_diverged_from_the_local_copy_is_refused_and_nothing_changes(
    rx_executor, rx_project, rx_model
):
    store = InMemorySessionStore()
    options = ClaudeAgentOptions(cwd=str(rx_project.local), session_store=store)
    session_id = results(await run(options, rx_executor, "one"))[0].session_id
    key = {
        "project_key": project_key_for_directory(str(rx_project.local)),
        "session_id": session_id,
    }
    entries = store._store[f"{key['project_key']}/{session_id}"]
    entries.insert(1, {"type": "user", "uuid": "00000000-0000-4000-8000-00000000beef"})
    local = local_project_dir(rx_project.local) / f"{session_id}.jsonl"
    before = local.read_bytes()
    requests = len(rx_model.requests)
    with pytest.raises(rx.SessionConflict, match="diverged") as caught:
        await run(dataclasses.replace(options, resume=session_id), rx_executor, "two")
    assert caught.value.host == rx_executor.name
    assert local.read_bytes() == before
    assert len(rx_model.requests) == requests  # the CLI never started


async def test_store_resume_through_the_local_executor_is_the_sdks_own(
    rx_project, rx_model, rx_local_env
):
    """LocalExecutor: the SDK's materialization (a temp config dir, removed after),
    with the mirror still keyed by this project."""
    store = InMemorySessionStore()
    options = ClaudeAgentOptions(cwd=str(rx_project.local), session_store=store, env=rx_local_env)
    local = rx.LocalExecutor()
    session_id = results(await run(options, local, "local one"))[0].session_id
    config = Path(rx_local_env["CLAUDE_CONFIG_DIR"])
    shutil.rmtree(config / "projects")  # only the store has it now
    messages = await run(dataclasses.replace(options, resume=session_id), local, "local two")
    assert results(messages)[-1].session_id == session_id
    assert "local one" in sent_text(rx_model)
    key = f"{project_key_for_directory(str(rx_project.local))}/{session_id}"
    assert "local two" in json.dumps(store._store[key])
    assert not (config / "projects").exists()  # resumed from the temp dir, as the SDK does
