"""Session scaffolding shared by the end-to-end tests that run whole SDK sessions.

``options_for`` a project, ``run`` a prompt to its end (bounded), ``result_of``
the messages (the one successful result); a session as tests look at it: its
transcript on both sides of the bed (both are on this machine), the texts the
model said.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from claude_agent_sdk import AssistantMessage, ClaudeAgentOptions, Message, ResultMessage, TextBlock

import remote_executors as rx
from remote_executors.paths import project_dir_from_cwd
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
