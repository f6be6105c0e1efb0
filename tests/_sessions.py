"""Session scaffolding shared by the end-to-end tests that run whole SDK sessions.

``options_for`` a project, ``run`` a prompt to its end (bounded), and
``result_of`` the messages: the one successful result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from claude_agent_sdk import ClaudeAgentOptions, Message, ResultMessage

import remote_executors as rx
from remote_executors.testing.plugin import Project

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
