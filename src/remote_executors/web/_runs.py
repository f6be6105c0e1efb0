"""Sessions this server drives: one SDK client per session, owned by one task.

The SDK's client enters its task group in ``connect()`` and leaves it in
``disconnect()``; both must happen in the same task. So each :class:`Run` is a
task that connects, sends the first prompt, reads every message until it is
stopped, then disconnects. Requests talk to it through ``send``,
``interrupt`` and the permission prompts it holds; watchers learn of changes
through :meth:`Run.changed` (a version number and an event).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio
import attrs
from anyio.abc import TaskGroup

from ..errors import ExecutorError

if TYPE_CHECKING:
    from claude_agent_sdk import ClaudeAgentOptions

    from ..executors.base import Executor
    from ..sdk import ClaudeSDKClient

__all__ = [
    "MAX_RUNS",
    "PERMISSION_SECONDS",
    "PermissionPrompt",
    "Run",
    "RunState",
    "Runs",
    "StartFailed",
]

log = logging.getLogger("remote_executors.web")

RunState = Literal["starting", "running", "idle", "ended", "failed"]

#: SDK messages kept per run for pages that join mid-turn (the transcript file has them all).
_LIVE_KEEP = 200
#: Longest string kept in a live message (a tool result can be megabytes).
_LIVE_TEXT = 64 * 1024
#: How long a new session may take to say its id.
START_SECONDS = 90.0
#: How long a permission prompt waits for the page's answer before it is denied
#: (a turn must not hang on a tab nobody looks at).
PERMISSION_SECONDS = 600.0
#: Automatic denials a run remembers for the page (the newest).
_NOTICES_KEPT = 5
#: Sessions kept connected at once; past it the oldest idle ones are disconnected
#: (their next message resumes them). Each holds a CLI process and a connection.
MAX_RUNS = 16


class StartFailed(Exception):
    """A session did not start; ``message`` says why (names the host for executor errors)."""

    def __init__(self, message: str, *, status: int = 502) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@attrs.define
class PermissionPrompt:
    """A tool call waiting for the user's allow or deny."""

    id: str
    tool: str
    input: dict[str, Any]
    expires_at: float = 0.0
    """Wall-clock time (epoch seconds) when it is denied unanswered."""
    allow: bool | None = None
    message: str = ""
    answered: anyio.Event = attrs.field(factory=anyio.Event)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tool": self.tool,
            "input": _bounded(self.input),
            "expires_at": self.expires_at,
            "seconds_left": max(0.0, round(self.expires_at - time.time(), 1)),
        }


def _bounded(value: Any) -> Any:
    """A JSON-ready copy with long strings cut (memory stays bounded)."""
    if isinstance(value, str):
        return value if len(value) <= _LIVE_TEXT else value[:_LIVE_TEXT] + "…"
    if isinstance(value, dict):
        return {str(k): _bounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _bounded(str(value))


def _block(block: Any) -> dict[str, Any]:
    """An SDK content block as the transcript writes it (``type`` first)."""
    kind = {
        "TextBlock": "text",
        "ThinkingBlock": "thinking",
        "ToolUseBlock": "tool_use",
        "ToolResultBlock": "tool_result",
    }.get(type(block).__name__, "other")
    is_instance = dataclasses.is_dataclass(block) and not isinstance(block, type)
    fields = dataclasses.asdict(block) if is_instance else {}
    return {"type": kind, **_bounded(fields)}


def message_entry(message: Any) -> dict[str, Any] | None:
    """A user or assistant SDK message in the transcript's entry shape, else None."""
    from claude_agent_sdk import AssistantMessage, UserMessage

    if isinstance(message, AssistantMessage):
        role = "assistant"
    elif isinstance(message, UserMessage):
        role = "user"
    else:
        return None
    content = message.content
    blocks: Any = _bounded(content) if isinstance(content, str) else [_block(b) for b in content]
    return {
        "type": role,
        "uuid": message.uuid,
        "live": True,
        "message": {"role": role, "content": blocks},
    }


class Run:
    """One session driven by this server (see the module docs)."""

    def __init__(
        self, *, executor_name: str, cwd: str, permission_seconds: float = PERMISSION_SECONDS
    ) -> None:
        self.executor_name = executor_name
        self.cwd = cwd
        self.permission_seconds = permission_seconds
        self.notices: collections.deque[str] = collections.deque(maxlen=_NOTICES_KEPT)
        """What happened without the page: permission prompts denied unanswered."""
        self.session_id: str | None = None
        self.state: RunState = "starting"
        self.error: str | None = None
        self.prompts: dict[str, PermissionPrompt] = {}
        self.live: collections.deque[tuple[int, dict[str, Any]]] = collections.deque(
            maxlen=_LIVE_KEEP
        )
        self.version = 0
        self._seq = 0
        self._changed = anyio.Event()
        self._started = anyio.Event()
        self._stop = anyio.CancelScope()
        self._client: ClaudeSDKClient | None = None

    # -- what watchers see ---------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "state": self.state,
            "error": self.error,
            "executor": self.executor_name,
            "permissions": [p.to_dict() for p in self.prompts.values()],
            "notices": list(self.notices),
        }

    def live_after(self, seq: int) -> list[tuple[int, dict[str, Any]]]:
        return [(n, entry) for n, entry in self.live if n > seq]

    async def changed(self, version: int) -> int:
        """Wait until the version differs from ``version``; return the new one."""
        while self.version == version:
            await self._changed.wait()
        return self.version

    def _bump(self) -> None:
        self.version += 1
        event, self._changed = self._changed, anyio.Event()
        event.set()

    # -- requests ------------------------------------------------------------

    async def send(self, prompt: str) -> None:
        if self._client is None or self.state in ("ended", "failed"):
            raise StartFailed(f"The session on {self.executor_name} is not running.", status=409)
        self.state = "running"
        self._bump()
        await self._client.query(prompt)

    async def interrupt(self) -> None:
        if self._client is None or self.state != "running":
            raise StartFailed(
                f"The session on {self.executor_name} has no turn running.", status=409
            )
        for prompt in list(self.prompts.values()):
            prompt.allow, prompt.message = False, "Interrupted in the web UI."
            prompt.answered.set()
        await self._client.interrupt()

    def answer(self, prompt_id: str, *, allow: bool, message: str) -> bool:
        prompt = self.prompts.get(prompt_id)
        if prompt is None or prompt.answered.is_set():
            return False
        prompt.allow, prompt.message = allow, message
        prompt.answered.set()
        return True

    def stop(self) -> None:
        self._stop.cancel()

    # -- the task --------------------------------------------------------------

    async def can_use_tool(self, tool: str, tool_input: dict[str, Any], _context: Any) -> Any:
        from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny

        seconds = self.permission_seconds
        prompt = PermissionPrompt(
            secrets.token_hex(8), tool, dict(tool_input), expires_at=time.time() + seconds
        )
        self.prompts[prompt.id] = prompt
        self._bump()
        try:
            with anyio.move_on_after(seconds):
                await prompt.answered.wait()
            if not prompt.answered.is_set():
                prompt.answered.set()  # a late click finds it answered
                prompt.allow = False
                prompt.message = f"No answer in the web UI within {seconds:g} s: {tool} was denied."
                self.notices.append(prompt.message)
                log.info("session on %s: %s", self.executor_name, prompt.message)
        finally:
            self.prompts.pop(prompt.id, None)
            self._bump()
        if prompt.allow:
            return PermissionResultAllow()
        return PermissionResultDeny(message=prompt.message or "Denied in the web UI.")

    async def main(
        self, prompt: str, options: ClaudeAgentOptions, executor: Executor | None
    ) -> None:
        from claude_agent_sdk import ResultMessage, SystemMessage

        from ..sdk import ClaudeSDKClient

        client = None
        try:
            with self._stop:
                client = ClaudeSDKClient(options=options, executor=executor)
                await client.connect()
                self._client = client
                self.state = "running"
                await client.query(prompt)
                async for message in client.receive_messages():
                    if isinstance(message, SystemMessage) and message.subtype == "init":
                        self.session_id = str(message.data.get("session_id") or "") or None
                        self._started.set()
                    elif isinstance(message, ResultMessage):
                        self.session_id = self.session_id or message.session_id
                        self.state = "idle"
                        self._started.set()
                    entry = message_entry(message)
                    if entry is not None:
                        self._seq += 1
                        self.live.append((self._seq, entry))
                    self._bump()
            self.state = "ended"
        except Exception as exc:
            self.state = "failed"
            self.error = exc.message if isinstance(exc, ExecutorError) else str(exc)
            self.error = self.error or type(exc).__name__
            log.warning("session on %s failed: %s", self.executor_name, self.error)
        finally:
            self._client = None
            with anyio.CancelScope(shield=True):
                if client is not None:
                    with anyio.move_on_after(30):
                        try:
                            await client.disconnect()
                        except Exception as exc:  # the session is over either way
                            log.debug("disconnect: %s", exc)
                if executor is not None:
                    await executor.aclose()
            if self.state not in ("failed",):
                self.state = "ended"
            self._started.set()
            self._bump()

    async def wait_started(self, seconds: float = START_SECONDS) -> str:
        """The session id, once the CLI said it; :class:`StartFailed` otherwise."""
        with anyio.move_on_after(seconds):
            await self._started.wait()
        if self.session_id is None:
            raise StartFailed(
                self.error
                or f"The session on {self.executor_name} did not start within {seconds:.0f} s.",
            )
        return self.session_id


class Runs:
    """Every :class:`Run` of this server; their tasks live in the app's task group."""

    def __init__(self, *, permission_seconds: float = PERMISSION_SECONDS) -> None:
        self._tg: TaskGroup | None = None
        self._by_id: dict[str, Run] = {}
        self.permission_seconds = permission_seconds
        """How long each run's permission prompts wait for an answer."""

    def attach(self, tg: TaskGroup | None) -> None:
        self._tg = tg
        if tg is None:
            for run in self._by_id.values():
                run.stop()
            self._by_id.clear()

    def get(self, session_id: str) -> Run | None:
        return self._by_id.get(session_id)

    def all(self) -> list[Run]:
        return list(self._by_id.values())

    async def start(
        self,
        *,
        prompt: str,
        options_for: Callable[[Run], ClaudeAgentOptions],
        executor: Executor | None,
        executor_name: str,
        cwd: str,
    ) -> Run:
        """Start a session and wait until its id is known."""
        if self._tg is None:
            raise StartFailed(
                "The web app is not running (enter its lifespan to start sessions).", status=503
            )
        run = Run(executor_name=executor_name, cwd=cwd, permission_seconds=self.permission_seconds)
        options = options_for(run)
        self._tg.start_soon(run.main, prompt, options, executor)
        try:
            sid = await run.wait_started()
        except StartFailed:
            run.stop()  # e.g. still connecting after the wait: do not leave it running
            raise
        old = self._by_id.pop(sid, None)
        if old is not None and old is not run:
            old.stop()
        self._by_id[sid] = run  # newest last
        self._trim()
        return run

    def _trim(self) -> None:
        for sid, run in list(self._by_id.items()):
            if run.state in ("ended", "failed"):
                del self._by_id[sid]
        for sid, run in list(self._by_id.items()):
            if len(self._by_id) <= MAX_RUNS:
                break
            if run.state == "idle" and not run.prompts:
                run.stop()
                del self._by_id[sid]
