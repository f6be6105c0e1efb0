"""A scripted stand-in for the Anthropic Messages API, served on loopback.

Point the real Claude Code CLI at it (``ANTHROPIC_BASE_URL``, a dummy ``ANTHROPIC_API_KEY``) and it
runs whole sessions whose model turns you script::

    from remote_executors.testing.model import ScriptedModel, text, tool_use

    with ScriptedModel() as model:
        model.script(
            tool_use("Bash", {"command": "echo hi", "description": "Say hi"}),
            text("done"),
        )
        options = ClaudeAgentOptions(env=model.cli_env(), allowed_tools=["Bash"], ...)
        ...
        assert model.main_requests[-1].tool_results[0].content == "hi"

The server is pure stdlib and runs in a background thread, so it works the same from sync
fixtures, asyncio and trio tests, and plain scripts.

How a request is answered, in order:

1. Requests the CLI makes on the side (session titles, tool-use summaries, ...; see
   :func:`is_side_request`) get the ``side`` responder and never consume scripted turns.
2. Main-conversation requests go through the rules (:meth:`ScriptedModel.add_rule`), first
   non-``None`` answer wins; then the first matching scripted queue (:meth:`ScriptedModel.script`);
   then the ``default`` responder (:func:`echo`: ``"ok: <last user text>"``).

The same scripted reply is rendered as an SSE stream when the request has ``"stream": true`` and
as one JSON message otherwise (the CLI falls back to non-streaming calls after stream failures).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

import attrs

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_MODEL",
    "ApiError",
    "ModelRequest",
    "Reply",
    "Responder",
    "ScriptEntry",
    "ScriptedModel",
    "ScriptedReply",
    "Text",
    "ToolResult",
    "ToolUse",
    "api_error",
    "echo",
    "is_side_request",
    "overloaded",
    "reply",
    "side_reply",
    "slow",
    "text",
    "tool_use",
]

logger = logging.getLogger(__name__)

#: The key :class:`ScriptedModel` expects by default; it is not a secret.
DEFAULT_API_KEY = "sk-ant-scripted-model-dummy-key"
#: The model name in replies when the request named none.
DEFAULT_MODEL = "claude-scripted-model"

RequestKind = Literal["main", "side", "count_tokens", "hello", "unknown"]


# --------------------------------------------------------------------------- replies


@attrs.frozen
class Text:
    """A text content block of a scripted reply."""

    text: str


@attrs.frozen
class ToolUse:
    """A ``tool_use`` content block of a scripted reply; ``id`` is generated when ``None``."""

    name: str
    input: Mapping[str, Any]
    id: str | None = None


def _timing(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class Reply:
    """One assistant message the model sends back.

    ``delay`` is how long the server waits before it sends anything (time to first byte);
    ``chunk_delay`` is the pause between streamed events, so a reply with many chunks takes
    about ``delay + events * chunk_delay``. ``chunk_size`` is how many characters of text or
    tool-input JSON go into one delta event. ``stop_reason`` defaults to ``"tool_use"`` when
    the reply contains a tool use and ``"end_turn"`` otherwise.
    """

    content: tuple[Text | ToolUse, ...]
    stop_reason: str | None = None
    delay: float = attrs.field(default=0.0, validator=_timing)
    chunk_delay: float = attrs.field(default=0.0, validator=_timing)
    chunk_size: int = 24
    model: str | None = None

    @property
    def effective_stop_reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        if any(isinstance(block, ToolUse) for block in self.content):
            return "tool_use"
        return "end_turn"


@attrs.frozen
class ApiError:
    """An HTTP error in the Messages API's shape: ``{"type": "error", "error": {...}}``.

    The CLI retries 5xx and 529 answers on its own (with backoff), so script as many errors as
    attempts you want to fail, or use a status it does not retry (400, 401, 403).
    """

    status: int
    error_type: str
    message: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    delay: float = attrs.field(default=0.0, validator=_timing)


ScriptedReply: TypeAlias = Reply | ApiError

_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}


def text(
    content: str, *, delay: float = 0.0, chunk_delay: float = 0.0, chunk_size: int = 24
) -> Reply:
    """A reply consisting of one text block."""
    return Reply((Text(content),), delay=delay, chunk_delay=chunk_delay, chunk_size=chunk_size)


def tool_use(
    name: str,
    input: Mapping[str, Any],
    *,
    id: str | None = None,
    preamble: str | None = None,
    delay: float = 0.0,
    chunk_delay: float = 0.0,
    chunk_size: int = 24,
) -> Reply:
    """A reply that calls one tool (any tool: ``"Bash"``, ``"Read"``, an MCP tool ...).

    ``preamble`` is optional text the model "says" before the call, in the same message.
    """
    blocks: list[Text | ToolUse] = []
    if preamble is not None:
        blocks.append(Text(preamble))
    blocks.append(ToolUse(name, dict(input), id))
    return Reply(tuple(blocks), delay=delay, chunk_delay=chunk_delay, chunk_size=chunk_size)


def reply(
    *content: Text | ToolUse | str,
    stop_reason: str | None = None,
    delay: float = 0.0,
    chunk_delay: float = 0.0,
    chunk_size: int = 24,
) -> Reply:
    """A reply with several blocks, e.g. text plus two parallel tool uses."""
    blocks = tuple(Text(block) if isinstance(block, str) else block for block in content)
    if not blocks:
        raise ValueError("a reply needs at least one content block")
    return Reply(
        blocks,
        stop_reason=stop_reason,
        delay=delay,
        chunk_delay=chunk_delay,
        chunk_size=chunk_size,
    )


def slow(
    scripted: ScriptedReply | str, *, delay: float = 0.0, chunk_delay: float = 0.0
) -> ScriptedReply:
    """The same reply, answered after ``delay`` seconds and streamed ``chunk_delay`` apart."""
    if isinstance(scripted, str):
        scripted = text(scripted)
    if isinstance(scripted, ApiError):
        return attrs.evolve(scripted, delay=delay)
    return attrs.evolve(scripted, delay=delay, chunk_delay=chunk_delay)


def api_error(
    status: int,
    message: str | None = None,
    *,
    error_type: str | None = None,
    retry_after: float | None = None,
    should_retry: bool | None = None,
    delay: float = 0.0,
) -> ApiError:
    """An HTTP error answer; ``error_type`` defaults to what the real API uses for ``status``.

    ``retry_after`` and ``should_retry`` set the ``retry-after`` and ``x-should-retry``
    headers, which the CLI's HTTP client honours.
    """
    kind = error_type or _ERROR_TYPES.get(status, "api_error")
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    if should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    return ApiError(
        status=status,
        error_type=kind,
        message=message or f"Scripted {status} {kind}",
        headers=headers,
        delay=delay,
    )


def overloaded(message: str = "Overloaded") -> ApiError:
    """The API's 529 ``overloaded_error``."""
    return api_error(529, message)


# --------------------------------------------------------------------------- requests


@attrs.frozen
class ToolResult:
    """A ``tool_result`` block the CLI sent back, with its content flattened to text."""

    tool_use_id: str
    content: str
    is_error: bool


def _block_text(content: object) -> str:
    """Flatten a message or tool-result ``content`` (a string or a list of blocks) to text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(block.get("text", ""))
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        ]
        return "\n".join(parts)
    return ""


def _is_reminder(block_text: str) -> bool:
    # The CLI wraps its own context (attribution, date, CLAUDE.md ...) in <system-reminder>
    # blocks inside user messages; they are not what the user typed.
    return block_text.lstrip().startswith("<system-reminder>")


def _user_texts(message: Mapping[str, Any]) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [] if _is_reminder(content) else [content]
    texts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                value = str(block.get("text", ""))
                if not _is_reminder(value):
                    texts.append(value)
    return texts


@attrs.frozen
class ModelRequest:
    """One HTTP request the server received, as the CLI sent it.

    ``headers`` has lower-case names. ``body`` is the parsed JSON body (``{}`` when there is
    none or it is not JSON). ``kind`` says how it was routed: ``"main"`` (a turn of the main
    conversation, including subagents), ``"side"`` (a helper call such as title generation),
    ``"count_tokens"``, ``"hello"`` (the CLI's connectivity probe) or ``"unknown"``.
    ``authorized`` is false when the server rejected the request's API key.
    """

    index: int
    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    raw_body: bytes
    kind: RequestKind
    authorized: bool
    received_at: float

    @property
    def api_key(self) -> str | None:
        """The ``x-api-key`` header, or the bearer token of ``Authorization``."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[len("bearer ") :].strip()
        return None

    @property
    def session_id(self) -> str | None:
        """The CLI's session id (``X-Claude-Code-Session-Id``), the same on side requests."""
        return self.headers.get("x-claude-code-session-id")

    @property
    def model(self) -> str | None:
        value = self.body.get("model")
        return value if isinstance(value, str) else None

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        value = self.body.get("messages")
        if not isinstance(value, list):
            return []
        return [message for message in value if isinstance(message, dict)]

    @property
    def system_text(self) -> str:
        """The system prompt, its blocks joined by newlines."""
        return _block_text(self.body.get("system"))

    @property
    def tool_names(self) -> list[str]:
        tools = self.body.get("tools")
        if not isinstance(tools, list):
            return []
        return [str(tool.get("name")) for tool in tools if isinstance(tool, dict)]

    @property
    def user_texts(self) -> list[str]:
        """Everything the user typed in this conversation, oldest first, reminders left out."""
        texts: list[str] = []
        for message in self.messages:
            if message.get("role") == "user":
                texts.extend(_user_texts(message))
        return texts

    @property
    def first_user_text(self) -> str:
        """The conversation's opening prompt: stable across all turns of one session."""
        texts = self.user_texts
        return texts[0] if texts else ""

    @property
    def last_user_text(self) -> str:
        """The most recent thing the user typed (tool results do not count)."""
        texts = self.user_texts
        return texts[-1] if texts else ""

    @property
    def tool_results(self) -> list[ToolResult]:
        """The ``tool_result`` blocks of the last user message (the answers to the last turn)."""
        for message in reversed(self.messages):
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if not isinstance(content, list):
                return []
            return [
                ToolResult(
                    tool_use_id=str(block.get("tool_use_id", "")),
                    content=_block_text(block.get("content")),
                    is_error=bool(block.get("is_error", False)),
                )
                for block in content
                if isinstance(block, dict) and block.get("type") == "tool_result"
            ]
        return []

    @property
    def output_schema(self) -> Mapping[str, Any] | None:
        """The JSON schema of a structured-output request (``output_config.format``)."""
        config = self.body.get("output_config")
        if not isinstance(config, dict):
            return None
        fmt = config.get("format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema = fmt.get("schema")
            if isinstance(schema, dict):
                return schema
        return None


#: A function from the request to a reply; ``str`` means :func:`text`, ``None`` means "pass".
Responder: TypeAlias = Callable[[ModelRequest], ScriptedReply | str | None]
#: What :meth:`ScriptedModel.script` accepts for one turn.
ScriptEntry: TypeAlias = ScriptedReply | str | Responder


def is_side_request(request: ModelRequest) -> bool:
    """Tell the CLI's helper calls from turns of the main conversation.

    Claude Code 2.1.x makes one-shot helper calls (session title, tool-use summary, away
    summary, ...) through the same endpoint, often with the same model. Its helper path always
    sends ``tools: []``, thinking disabled or absent, and exactly one user message. The main
    loop sends its tool list and adaptive thinking, and even with every tool disabled its first
    request already has two messages (the prompt plus the environment ``system`` message).
    A main loop with no tools, thinking off and a single message would look like a helper:
    pass your own ``is_side`` to :class:`ScriptedModel` if you build one.
    """
    if request.body.get("tools"):
        return False
    thinking = request.body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled"):
        return False
    return len(request.messages) <= 1


def echo(request: ModelRequest) -> Reply:
    """The default responder: ``"ok: <last user text>"``."""
    return text(f"ok: {request.last_user_text}")


def _example_for(schema: Mapping[str, Any]) -> object:
    """A small value that satisfies a JSON schema (enough for the CLI's helper schemas)."""
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties")
        result: dict[str, object] = {}
        if isinstance(properties, dict):
            for name, sub in properties.items():
                result[name] = _example_for(sub) if isinstance(sub, dict) else None
        return result
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return "Scripted session"


def side_reply(request: ModelRequest) -> Reply:
    """The default answer to side requests: JSON matching the requested schema, else text."""
    schema = request.output_schema
    if schema is not None:
        return text(json.dumps(_example_for(schema)))
    return text("Scripted side reply")


# --------------------------------------------------------------------------- wire format


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _chunks(value: str, size: int) -> list[str]:
    size = max(1, size)
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


def _estimate_tokens(raw_body: bytes) -> int:
    # Roughly what the real tokenizer gives for English and JSON: plausible and never zero.
    return max(1, len(raw_body) // 4)


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


@attrs.frozen
class _Rendered:
    """A reply with its ids fixed, so the streamed and the JSON form say the same thing."""

    message_id: str
    model: str
    blocks: tuple[Text | ToolUse, ...]
    stop_reason: str
    input_tokens: int
    output_tokens: int


def _render(scripted: Reply, request: ModelRequest) -> _Rendered:
    blocks = tuple(
        attrs.evolve(block, id=_new_id("toolu_"))
        if isinstance(block, ToolUse) and block.id is None
        else block
        for block in scripted.content
    )
    output_chars = sum(
        len(block.text) if isinstance(block, Text) else len(json.dumps(block.input))
        for block in blocks
    )
    return _Rendered(
        message_id=_new_id("msg_"),
        model=scripted.model or request.model or DEFAULT_MODEL,
        blocks=blocks,
        stop_reason=scripted.effective_stop_reason,
        input_tokens=_estimate_tokens(request.raw_body),
        output_tokens=max(1, output_chars // 4),
    )


def _message_json(rendered: _Rendered) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for block in rendered.blocks:
        if isinstance(block, Text):
            content.append({"type": "text", "text": block.text})
        else:
            content.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.input)}
            )
    return {
        "id": rendered.message_id,
        "type": "message",
        "role": "assistant",
        "model": rendered.model,
        "content": content,
        "stop_reason": rendered.stop_reason,
        "stop_sequence": None,
        "usage": _usage(rendered.input_tokens, rendered.output_tokens),
    }


def _sse_events(rendered: _Rendered, chunk_size: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The event sequence of the real streaming API for one message."""
    start = _message_json(rendered)
    start.update(content=[], stop_reason=None, usage=_usage(rendered.input_tokens, 1))
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(rendered.blocks):
        if isinstance(block, Text):
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for piece in _chunks(block.text, chunk_size):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": block.id,
                        "name": block.name,
                        "input": {},
                    },
                },
            )
            # The real API opens every tool input with an empty partial_json.
            pieces = ["", *_chunks(json.dumps(dict(block.input)), chunk_size)]
            for piece in pieces:
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": rendered.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": rendered.output_tokens},
        },
    )
    yield "message_stop", {"type": "message_stop"}


# --------------------------------------------------------------------------- server


class _ClientGone(Exception):
    """The client closed the connection, or the model is stopping."""


class _Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1 so the CLI can keep connections alive, as it does with the real API.
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.model._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.model._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Skip trailers up to the blank line that ends the body.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        try:
            raw = self._read_body()
            model = self.server.model
            request, answer = model._dispatch(
                self.command, self.path, dict(self.headers.items()), raw
            )
            self._answer(request, answer)
        except _ClientGone:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def _answer(self, request: ModelRequest, answer: _Answer) -> None:
        model = self.server.model
        if isinstance(answer, ApiError):
            model._sleep(answer.delay)
            body = {
                "type": "error",
                "error": {"type": answer.error_type, "message": answer.message},
                "request_id": _new_id("req_"),
            }
            self._send_json(answer.status, body, answer.headers)
        elif isinstance(answer, Reply):
            model._sleep(answer.delay)
            rendered = _render(answer, request)
            if request.stream:
                self._send_stream(rendered, answer)
            else:
                self._send_json(200, _message_json(rendered))
        elif answer is None:
            self._send_json(200, None)
        else:
            self._send_json(200, answer)

    def _start(self, status: int, content_type: str | None, extra: Mapping[str, str]) -> None:
        self.send_response(status)
        self.send_header("request-id", _new_id("req_"))
        if content_type is not None:
            self.send_header("content-type", content_type)
        for name, value in extra.items():
            self.send_header(name, value)

    def _send_json(self, status: int, body: object, extra: Mapping[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self._start(status, "application/json" if body is not None else None, extra or {})
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def _send_stream(self, rendered: _Rendered, scripted: Reply) -> None:
        model = self.server.model
        self._start(
            200,
            "text/event-stream; charset=utf-8",
            {"cache-control": "no-cache", "transfer-encoding": "chunked"},
        )
        self.end_headers()
        first = True
        for event, data in _sse_events(rendered, scripted.chunk_size):
            if not first:
                model._sleep(scripted.chunk_delay)
            first = False
            frame = f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # Many concurrent CLI sessions open connections in bursts.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], model: ScriptedModel) -> None:
        self.model = model
        super().__init__(address, _Handler)


# What _dispatch tells the handler to send: a scripted reply, or a JSON body with status 200.
_Answer: TypeAlias = ScriptedReply | dict[str, Any] | None


@attrs.define
class _Queue:
    when: Callable[[ModelRequest], bool] | None
    entries: deque[ScriptEntry]


class ScriptedModel:
    """A scripted Messages API on ``127.0.0.1``, serving from a background thread.

    Use it as a context manager (``with ScriptedModel() as model``) or call :meth:`start` and
    :meth:`stop`. ``model.url`` is the ``ANTHROPIC_BASE_URL`` to give the CLI and
    :meth:`cli_env` the whole environment.

    Args:
        port: port to bind; ``0`` picks a free one.
        api_key: the key requests must carry (``x-api-key`` or bearer token). Requests without
            it get the API's 401 ``authentication_error``. ``None`` accepts any key.
        default: answers main-conversation requests nothing else answered (default :func:`echo`).
        side: answers side requests (default :func:`side_reply`).
        is_side: classifies requests (default :func:`is_side_request`).
        host: interface to bind; keep the loopback default unless you know why.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        api_key: str | None = DEFAULT_API_KEY,
        default: Responder = echo,
        side: Responder = side_reply,
        is_side: Callable[[ModelRequest], bool] = is_side_request,
        host: str = "127.0.0.1",
    ) -> None:
        self.api_key = api_key
        self.default = default
        self.side = side
        self.is_side = is_side
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[ModelRequest] = []
        self._queues: list[_Queue] = []
        self._rules: list[Responder] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> ScriptedModel:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("ScriptedModel is already running")
        self._stopping.clear()
        server = _Server((self._host, self._port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"ScriptedModel:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections (a reply in flight is cut off)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> ScriptedModel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ScriptedModel is not running: call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL for ``ANTHROPIC_BASE_URL`` (no trailing slash)."""
        return f"http://{self._host}:{self.port}"

    def cli_env(self) -> dict[str, str]:
        """The environment that points a Claude Code CLI at this model."""
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": self.api_key or DEFAULT_API_KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }

    # -- scripting

    def script(
        self, *entries: ScriptEntry, when: str | Callable[[ModelRequest], bool] | None = None
    ) -> None:
        """Queue replies for the next main-conversation requests, one entry per request.

        An entry is a reply, a string (a text reply) or a responder called with the request
        (``None`` from it means the default answer). With ``when``, the entries only answer
        requests it matches: a string matches conversations whose opening prompt contains it,
        which keeps concurrent sessions apart. Queues with ``when`` are tried before queues
        without, each group in the order it was added.
        """
        predicate: Callable[[ModelRequest], bool] | None
        if isinstance(when, str):
            marker = when

            def predicate(request: ModelRequest) -> bool:
                return marker in request.first_user_text

        else:
            predicate = when
        with self._lock:
            self._queues = [queue for queue in self._queues if queue.entries]
            self._queues.append(_Queue(predicate, deque(entries)))

    def add_rule(self, rule: Responder) -> None:
        """Answer main-conversation requests with ``rule`` whenever it returns non-``None``.

        Rules are consulted before scripted queues, in the order they were added.
        """
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        """Drop scripted turns, rules and recorded requests."""
        with self._lock:
            self._queues.clear()
            self._rules.clear()
            self._requests.clear()

    @property
    def pending(self) -> int:
        """How many scripted turns have not been used yet."""
        with self._lock:
            return sum(len(queue.entries) for queue in self._queues)

    # -- inspection

    @property
    def requests(self) -> list[ModelRequest]:
        """Every request received so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def main_requests(self) -> list[ModelRequest]:
        return [request for request in self.requests if request.kind == "main"]

    @property
    def side_requests(self) -> list[ModelRequest]:
        return [request for request in self.requests if request.kind == "side"]

    def wait_for(
        self,
        predicate: Callable[[ModelRequest], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 30.0,
    ) -> list[ModelRequest]:
        """Block until ``count`` recorded requests match ``predicate``; return them.

        This blocks the calling thread: from async code run it in a worker thread
        (``await anyio.to_thread.run_sync(model.wait_for, ...)``). Raises ``TimeoutError``.
        """
        check = predicate or (lambda request: request.kind == "main")
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [request for request in self._requests if check(request)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{len(found)} of {count} expected requests arrived within {timeout}s"
                    )
                self._changed.wait(remaining)

    # -- internals used by the handler

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self._stopping.wait(seconds):
            raise _ClientGone

    def _dispatch(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[ModelRequest, _Answer]:
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            parsed = json.loads(raw) if raw else {}
        except (ValueError, UnicodeDecodeError):
            parsed = {}
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}

        kind: RequestKind
        if path == "/v1/messages" and method == "POST":
            kind = "main"
        elif path == "/v1/messages/count_tokens" and method == "POST":
            kind = "count_tokens"
        elif path == "/api/hello":
            kind = "hello"
        else:
            kind = "unknown"
        probe = ModelRequest(
            index=-1,
            method=method,
            path=path,
            query=parts.query,
            headers=lowered,
            body=body,
            raw_body=raw,
            kind=kind,
            authorized=True,
            received_at=time.time(),
        )
        authorized = kind == "hello" or self._authorized(probe)
        if kind == "main" and self._safe_is_side(probe):
            kind = "side"

        with self._changed:
            request = attrs.evolve(
                probe, index=len(self._requests), kind=kind, authorized=authorized
            )
            self._requests.append(request)
            self._changed.notify_all()

        if not authorized:
            logger.info("rejected %s %s: wrong or missing API key", method, path)
            return request, api_error(401, "invalid x-api-key")
        if kind == "unknown":
            logger.warning("ScriptedModel: no such endpoint %s %s", method, target)
            return request, api_error(404, f"Not found: {method} {path}")
        if kind == "hello":
            return request, None
        if "anthropic-version" not in lowered:
            return request, api_error(400, "anthropic-version: header is required")
        if kind == "count_tokens":
            return request, {"input_tokens": _estimate_tokens(raw)}
        if kind == "side":
            return request, self._resolve(self.side, request)
        return request, self._answer_main(request)

    def _safe_is_side(self, request: ModelRequest) -> bool:
        try:
            return self.is_side(request)
        except Exception:
            logger.exception("ScriptedModel: is_side raised; treating the request as main")
            return False

    def _authorized(self, request: ModelRequest) -> bool:
        if self.api_key is None:
            return True
        return secrets.compare_digest(request.api_key or "", self.api_key)

    def _answer_main(self, request: ModelRequest) -> ScriptedReply:
        with self._lock:
            rules = list(self._rules)
        for rule in rules:
            answer = self._call(rule, request)
            if answer is not None:
                return answer
        entry: ScriptEntry | None = None
        with self._lock:
            # Conditional queues first, so a catch-all script cannot steal a session's turns.
            ordered = [q for q in self._queues if q.when is not None]
            ordered += [q for q in self._queues if q.when is None]
            for queue in ordered:
                if queue.entries and self._matches(queue, request):
                    entry = queue.entries.popleft()
                    break
        if entry is not None:
            if isinstance(entry, (Reply, ApiError)):
                return entry
            if isinstance(entry, str):
                return text(entry)
            answer = self._call(entry, request)
            if answer is not None:
                return answer
        return self._resolve(self.default, request)

    @staticmethod
    def _matches(queue: _Queue, request: ModelRequest) -> bool:
        if queue.when is None:
            return True
        try:
            return queue.when(request)
        except Exception:
            logger.exception("ScriptedModel: a script predicate raised")
            return False

    def _resolve(self, responder: Responder, request: ModelRequest) -> ScriptedReply:
        answer = self._call(responder, request)
        return answer if answer is not None else echo(request)

    @staticmethod
    def _call(responder: Responder, request: ModelRequest) -> ScriptedReply | None:
        try:
            answer = responder(request)
        except Exception as exc:
            # A broken responder must not hang the CLI: answer with a visible 500 instead.
            logger.exception("ScriptedModel: responder raised")
            return api_error(500, f"ScriptedModel responder raised {exc!r}", should_retry=False)
        if isinstance(answer, str):
            return text(answer)
        return answer
