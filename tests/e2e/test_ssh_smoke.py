"""A whole session over a real sshd, real CLI and the scripted model."""

from __future__ import annotations

import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_text_turn(rx_executor, rx_project, rx_model):
    results = [
        m
        async for m in rx.query(
            prompt="hello there",
            options=ClaudeAgentOptions(cwd=str(rx_project.local)),
            executor=rx_executor,
        )
        if isinstance(m, ResultMessage)
    ]
    assert [r.result for r in results] == ["ok: hello there"]
    assert rx_model.main_requests, "the remote CLI never reached the model"
