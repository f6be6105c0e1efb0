"""``remote-executors run PROMPT``: one session, streamed readably."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import anyio
import click
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    Message,
    ResultMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from ..executors.base import Executor
from ..executors.local import LocalExecutor
from ..sdk import query
from ..settings import executor_for
from ..sync.status import SessionSyncStatus
from ._output import Output

_PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")


def _tool_call(block: ToolUseBlock) -> str:
    value = block.input.get("command") or block.input.get("file_path") or block.input
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"{block.name}: {text}"


def _tool_result(block: ToolResultBlock) -> str:
    content = block.content
    if isinstance(content, list):
        content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    first = (str(content or "").strip().splitlines() or [""])[0]
    return first[:160]


def _show(out: Output, message: Message) -> None:
    status = SessionSyncStatus.from_message(message)
    if status is not None:
        out.status("ok" if status.ok else "warn", status.message, status.detail)
    elif isinstance(message, AssistantMessage):
        for block in message.content:
            if isinstance(block, TextBlock):
                out.line(block.text)
            elif isinstance(block, ToolUseBlock):
                out.line(f"→ {_tool_call(block)}", fg="cyan")
    elif isinstance(message, UserMessage) and isinstance(message.content, list):
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                mark = "✘" if block.is_error else "←"
                out.line(f"  {mark} {_tool_result(block)}", fg="bright_black")


def _as_json(message: Message) -> dict[str, Any]:
    data = dataclasses.asdict(message) if dataclasses.is_dataclass(message) else {}
    return {"kind": type(message).__name__, **data}


@click.command("run")
@click.argument("prompt")
@click.option("--on", "host", help="ssh alias to run on (default: this machine).")
@click.option("--cwd", default=".", show_default=True, help="The local project directory.")
@click.option("--resume", "resume", metavar="SESSION_ID", help="Continue a session.")
@click.option(
    "--allow", "allowed", multiple=True, metavar="TOOL", help="Allow a tool (repeatable)."
)
@click.option(
    "--permission-mode", type=click.Choice(_PERMISSION_MODES), help="The CLI's permission mode."
)
@click.option("--json", "json_mode", is_flag=True, help="One JSON object per message.")
def run(
    prompt: str,
    host: str | None,
    cwd: str,
    resume: str | None,
    allowed: tuple[str, ...],
    permission_mode: str | None,
    json_mode: bool,
) -> None:
    """Run a session with PROMPT (locally, or on --on HOST) and stream it.

    With --resume and no --on, the session continues where it last ran.
    Prints the session id at the end; exits 1 if the session ended in error.
    """
    out = Output(json_mode=json_mode)
    options = ClaudeAgentOptions(
        cwd=os.path.abspath(os.path.expanduser(cwd)),
        resume=resume,
        allowed_tools=list(allowed),
        permission_mode=permission_mode,  # type: ignore[arg-type]
    )

    async def go() -> ResultMessage | None:
        executor: Executor | None
        if host is not None:
            executor = executor_for(host)
        elif resume is None:
            executor = LocalExecutor()
        else:
            executor = None  # where the session last ran
        result = None
        try:
            out.progress("starting…")
            async for message in query(prompt=prompt, options=options, executor=executor):
                if json_mode:
                    click.echo(json.dumps(_as_json(message), ensure_ascii=False, default=str))
                else:
                    _show(out, message)
                if isinstance(message, ResultMessage):
                    result = message
        finally:
            if executor is not None:
                await executor.aclose()
        return result

    result = anyio.run(go)
    if result is None:
        out.line("The session ended without a result.", fg="red")
        raise click.exceptions.Exit(1)
    where = host or "local"
    out.line(
        f"session {result.session_id} on {where} · {result.num_turns} turn(s)"
        + (f" · ${result.total_cost_usd:.4f}" if result.total_cost_usd else ""),
        fg="red" if result.is_error else "green",
    )
    if result.is_error:
        raise click.exceptions.Exit(1)
