"""Session scaffolding shared by the end-to-end tests that run whole SDK sessions.

``options_for`` a project, ``run`` a prompt to its end (bounded), ``result_of``
the messages (the one successful result); a session as tests look at it: its
transcript on both sides of the bed (both are on this machine), the texts the
model said. For a container of the Docker bed (Docker, the Kubernetes
stand-in): a first turn there and a resume, checked against the SDK's own
readers and the container's transcript, and the same through the CLI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    Message,
    ResultMessage,
    TextBlock,
    get_session_messages,
    list_sessions,
)

import remote_executors as rx
from _cli import CLI, last_line, ok, session_of
from remote_executors.paths import project_dir_from_cwd
from remote_executors.testing.docker import TestContainer
from remote_executors.testing.model import ScriptedModel, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import RemoteAccount, SSHTestBed

#: Seconds one session may take on the loopback bed (CI: 2 loaded cores).
SESSION_TIMEOUT = 90


def options_for(project: Project, **kw: Any) -> ClaudeAgentOptions:
    """Options for a session in ``project`` that may use Bash and does not retry."""
    return ClaudeAgentOptions(
        cwd=str(project.local),
        allowed_tools=["Bash"],
        env={"CLAUDE_CODE_MAX_RETRIES": "0"},
        **kw,
    )


async def run(
    prompt: str,
    options: ClaudeAgentOptions,
    executor: rx.Executor | None,
    *,
    timeout: float = SESSION_TIMEOUT,
    **kw: Any,
) -> list[Message]:
    """Every message of one ``rx.query``, within ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        return [m async for m in rx.query(prompt=prompt, options=options, executor=executor, **kw)]


def result_of(messages: Sequence[Message]) -> ResultMessage:
    """The session's only result, checked to be a success."""
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert len(results) == 1, messages
    assert not results[0].is_error, results[0]
    return results[0]


def project_dirs(
    bed: SSHTestBed, account: RemoteAccount, project: Project, config: Path
) -> tuple[Path, Path]:
    """The project's session directory there and here (``config``: the local config dir)."""
    remote = bed.remote_home(account) / ".claude" / "projects"
    remote /= project_dir_from_cwd(os.path.realpath(project.remote))
    local = config / "projects" / project_dir_from_cwd(os.path.realpath(project.local))
    return remote, local


def transcripts(
    bed: SSHTestBed, account: RemoteAccount, project: Project, config: Path, sid: str
) -> tuple[bytes, bytes]:
    """Session ``sid``'s transcript there and here."""
    remote, local = project_dirs(bed, account, project, config)
    return (remote / f"{sid}.jsonl").read_bytes(), (local / f"{sid}.jsonl").read_bytes()


def texts(messages: list[Any]) -> list[str]:
    """The assistant's text blocks, in order."""
    return [
        b.text
        for m in messages
        if isinstance(m, AssistantMessage)
        for b in m.content
        if isinstance(b, TextBlock)
    ]


# -- sessions in a container of the Docker bed ---------------------------------------------


def container_transcript(box: TestContainer, project: Project, sid: str) -> Path:
    """Session ``sid``'s transcript in ``box`` (through its root, seen from here)."""
    return box.path(
        f"{box.claude_config_dir}/projects/{project_dir_from_cwd(str(project.remote))}/{sid}.jsonl"
    )


def local_transcript(config: Path, project: Project, sid: str) -> Path:
    """Session ``sid``'s transcript here (``config``: the local config dir)."""
    return config / "projects" / project_dir_from_cwd(str(project.local)) / f"{sid}.jsonl"


def in_step(box: TestContainer, project: Project, config: Path, sid: str) -> bytes:
    """The container's transcript, checked to be the local copy byte for byte."""
    remote = container_transcript(box, project, sid).read_bytes()
    assert local_transcript(config, project, sid).read_bytes() == remote
    return remote


async def first_turn_in(
    executor: rx.Executor,
    box: TestContainer,
    project: Project,
    model: ScriptedModel,
    config: Path,
    *,
    tag: str,
) -> str:
    """One turn whose Bash tool runs in ``box`` (closing ``executor``); checks that
    it ran there as the container's user, is on the local disk and recorded
    with the executor's spec and the container's cwd. Returns the session id."""
    model.script(
        tool_use("Bash", {"command": f"echo in-{tag}-$(id -un)", "description": "echo"}),
        text(f"first answer {tag}-one"),
    )
    try:
        sid = result_of(await run("first question", options_for(project), executor)).session_id
    finally:
        await executor.aclose()
    entries = get_session_messages(sid, directory=str(project.local))
    assert f"in-{tag}-{box.user}" in repr([e.message for e in entries])
    assert [s.session_id for s in list_sessions(directory=str(project.local))] == [sid]
    in_step(box, project, config, sid)
    record = rx.get_session_record(sid)
    assert record is not None and record.executor == executor.spec
    assert record.remote_cwd == str(project.remote)
    return sid


async def resume_in(
    executor: rx.Executor | None,
    box: TestContainer,
    project: Project,
    model: ScriptedModel,
    config: Path,
    sid: str,
    *,
    turn: str,
) -> None:
    """Resume ``sid`` on ``executor`` (None: where its record says; closed after):
    the CLI there continues the conversation, and the turn lands on both sides."""
    model.script(text(f"{turn} answer"))
    try:
        messages = await run(f"{turn} question", options_for(project, resume=sid), executor)
    finally:
        if executor is not None:
            await executor.aclose()
    assert result_of(messages).session_id == sid
    seen = repr(model.main_requests[-1].messages)
    assert "first answer" in seen and f"{turn} question" in seen
    assert f"{turn} answer".encode() in in_step(box, project, config, sid)


def cli_run_on(
    cli: CLI, spec: str, project: Project, model: ScriptedModel, *, where: str, home: str
) -> str:
    """``run --on spec`` a Bash turn that prints its ``home`` there; the session is
    listed with ``spec``. Returns the session id."""
    cwd = str(project.local)
    model.script(
        tool_use("Bash", {"command": f"echo cli-in-{where} $HOME", "description": "echo"}),
        text(f"Answered from the {where}."),
    )
    out = ok(cli("run", "--on", spec, "--cwd", cwd, "--allow", "Bash", "where are you?"))
    assert f"Answered from the {where}." in out
    assert f"cli-in-{where} {home}" in out
    assert spec in last_line(out)
    sid = session_of(out)
    sessions = json.loads(ok(cli("sessions", "--cwd", cwd, "--json")))
    assert [(s["session_id"], s["spec"]) for s in sessions] == [(sid, spec)]
    return sid


def cli_resume_where_it_ran(
    cli: CLI, spec: str, project: Project, model: ScriptedModel, sid: str
) -> None:
    """``run --resume`` with no ``--on`` runs where the session last ran: on ``spec``."""
    model.script(text("Resumed where it ran."))
    out = ok(cli("run", "--resume", sid, "--cwd", str(project.local), "more"))
    assert "Resumed where it ran." in out
    assert spec in last_line(out)
