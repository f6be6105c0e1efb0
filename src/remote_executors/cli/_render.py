"""``run``'s readable output: the conversation as lines, what is going on as progress.

Assistant text and tool calls (``→ Bash: ls``) and results (``← first line
(+N lines)``) are lines; what happens in between (connecting, waiting for the
model, API retries, compaction, a running tool) is the transient progress
line, on a terminal. A sync problem is one warning however often the library
repeats it; :attr:`Renderer.sync_failure` is the one still unresolved at the end.
"""

from __future__ import annotations

import json
from typing import Any

from ._hints import cli_terms
from ._output import Output

__all__ = ["Renderer", "tool_result_text"]

_WIDTH = 160


def _tool_call(name: str, tool_input: dict[str, Any]) -> str:
    value = tool_input.get("command") or tool_input.get("file_path") or tool_input
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"{name}: {text}"


def tool_result_text(content: object) -> str:
    """The result's first line, cut at 160 characters, and how many lines follow."""
    if isinstance(content, list):
        content = "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    lines = str(content or "").strip().splitlines() or [""]
    first = lines[0] if len(lines[0]) <= _WIDTH else lines[0][: _WIDTH - 1] + "…"
    more = len(lines) - 1
    return first + (f" (+{more} line{'s' if more != 1 else ''})" if more else "")


def _retry(data: dict[str, Any]) -> str:
    status = data.get("error_status")
    error = data.get("error") or "error"
    what = f"API error {status} ({error})" if status else f"API error ({error})"
    attempt, most = data.get("attempt"), data.get("max_retries")
    delay = data.get("retry_delay_ms")
    when = f" in {delay / 1000:.0f} s" if isinstance(delay, int | float) else ""
    count = f" {attempt}/{most}" if attempt and most else ""
    return f"{what}: retry{count}{when}…"


class Renderer:
    """Shows one session's messages; remembers what the command's ending needs."""

    def __init__(self, out: Output, host: str) -> None:
        self.out = out
        self.host = host
        self.session_id: str | None = None
        self.result: Any = None
        self.sync_failure: Any = None  # the SessionSyncStatus still failing, if any
        self._shown_failures: set[tuple[str, str]] = set()

    def note(self, message: object) -> None:
        """Keep what the ending needs (session id, result, sync state); print nothing."""
        from claude_agent_sdk import ResultMessage

        from ..sync.status import SessionSyncStatus

        sid = getattr(message, "session_id", None)
        if isinstance(sid, str) and sid:
            self.session_id = sid
        data = getattr(message, "data", None)
        if isinstance(data, dict) and isinstance(data.get("session_id"), str):
            self.session_id = data["session_id"]
        if isinstance(message, ResultMessage):
            self.result = message
        status = SessionSyncStatus.from_message(message)
        if status is not None:
            self.sync_failure = None if status.ok else status

    def show(self, message: object) -> None:
        from claude_agent_sdk import (
            AssistantMessage,
            ResultMessage,
            SystemMessage,
            TextBlock,
            ToolResultBlock,
            ToolUseBlock,
            UserMessage,
        )

        from ..sync.status import SessionSyncStatus

        out = self.out
        self.note(message)
        status = SessionSyncStatus.from_message(message)
        if status is not None:
            self._sync_status(status)
        elif isinstance(message, SystemMessage):
            self._system(message.subtype, message.data)
        elif isinstance(message, AssistantMessage):
            tool = None
            for block in message.content:
                if isinstance(block, TextBlock):
                    out.line(block.text)
                elif isinstance(block, ToolUseBlock):
                    out.line(f"→ {_tool_call(block.name, block.input)}", fg="cyan")
                    tool = block.name
            out.progress(f"running {tool}…" if tool else "waiting for the model…")
        elif isinstance(message, UserMessage) and isinstance(message.content, list):
            for block in message.content:
                if isinstance(block, ToolResultBlock):
                    mark = "✘" if block.is_error else "←"
                    out.line(f"  {mark} {tool_result_text(block.content)}", fg="bright_black")
            out.progress("waiting for the model…")
        elif isinstance(message, ResultMessage):
            out.clear_progress()

    def _system(self, subtype: str, data: dict[str, Any]) -> None:
        if subtype == "init":
            sid = data.get("session_id")
            self.out.progress(f"session {sid} on {self.host}: waiting for the model…")
        elif subtype == "api_retry":
            self.out.progress(_retry(data))
        elif subtype == "status":
            state = data.get("status")
            self.out.progress(f"{state}…" if state else "working…")
        elif subtype in ("task_started", "task_progress"):
            self.out.progress(f"task: {data.get('description', '')}…")
        elif subtype == "remote_executors_link":  # LinkStatus: "Link to box lost, reconnecting"
            self.out.progress(f"{data.get('message', 'link status')}…")
        elif not subtype.startswith("hook_"):
            self.out.progress(subtype.replace("_", " ") + "…")

    def _sync_status(self, status: Any) -> None:
        if status.ok:
            if self._shown_failures:
                self.out.status("ok", status.message)
            self._shown_failures.clear()
            return
        # The same kind of failure of the same session with the same host is
        # one problem (a conflict's details name a new copy each time).
        key = (status.error, f"{status.host} {status.session_id}")
        if key in self._shown_failures:
            return  # the library retries and reports again; once is enough here
        self._shown_failures.add(key)
        hint = cli_terms(status.detail, host=status.host, session_id=status.session_id)
        self.out.status("warn", status.message, hint)
