"""HTTP-level tests of the scripted Messages API (no CLI involved)."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from remote_executors.testing.model import (
    DEFAULT_API_KEY,
    ModelRequest,
    ScriptedModel,
    ToolUse,
    api_error,
    is_side_request,
    overloaded,
    reply,
    side_reply,
    slow,
    text,
    tool_use,
)

HEADERS = {
    "x-api-key": DEFAULT_API_KEY,
    "anthropic-version": "2023-06-01",
    "content-type": "application/json",
}

# What the CLI's session-title helper sends (Claude Code 2.1.330), trimmed.
TITLE_REQUEST: dict[str, Any] = {
    "model": "claude-opus-5-5",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "<session>\nx\n</session>"}]}
    ],
    "system": [{"type": "text", "text": "You are naming a coding session ..."}],
    "tools": [],
    "max_tokens": 128000,
    "output_config": {
        "effort": "medium",
        "format": {
            "type": "json_schema",
            "schema": {
                "type": "object",
                "properties": {"title": {"type": "string"}},
                "required": ["title"],
                "additionalProperties": False,
            },
        },
    },
    "stream": True,
}


def main_body(prompt: str = "hello", *, stream: bool = True, **extra: Any) -> dict[str, Any]:
    """A request shaped like the CLI's main loop: tools, adaptive thinking, reminder block."""
    body: dict[str, Any] = {
        "model": "claude-opus-5-5",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>\nsome context\n</system-reminder>"},
                    {"type": "text", "text": prompt},
                ],
            },
            {"role": "system", "content": [{"type": "text", "text": "# Environment"}]},
        ],
        "system": [{"type": "text", "text": "You are a Claude agent"}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
        "thinking": {"type": "adaptive"},
        "max_tokens": 128000,
        "stream": stream,
    }
    body.update(extra)
    return body


def with_tool_result(body: dict[str, Any], tool_use_id: str, output: str) -> dict[str, Any]:
    messages = [
        *body["messages"],
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": tool_use_id, "name": "Bash", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_use_id,
                    "content": [{"type": "text", "text": output}],
                    "is_error": False,
                }
            ],
        },
    ]
    return {**body, "messages": messages}


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """Parse an SSE body into (event, data) pairs."""
        result = []
        for frame in self.body.decode().split("\n\n"):
            if not frame.strip():
                continue
            fields = dict(line.split(": ", 1) for line in frame.splitlines())
            result.append((fields["event"], json.loads(fields["data"])))
        return result


def call(
    model: ScriptedModel,
    body: dict[str, Any] | None = None,
    *,
    path: str = "/v1/messages?beta=true",
    method: str = "POST",
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> Response:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", model.port, timeout=10)
    try:
        payload = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=payload, headers=HEADERS if headers is None else headers)
        response = conn.getresponse()
        data = response.read()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        if own:
            conn.close()


def streamed_text(response: Response) -> str:
    return "".join(
        data["delta"]["text"]
        for event, data in response.events()
        if event == "content_block_delta" and data["delta"]["type"] == "text_delta"
    )


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as running:
        yield running


# --------------------------------------------------------------------------- wire format


def test_default_reply_streams_the_real_event_sequence(model: ScriptedModel) -> None:
    response = call(model, main_body("hello there"))

    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["request-id"].startswith("req_")
    events = response.events()
    names = [event for event, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_")
    assert start["role"] == "assistant"
    assert start["model"] == "claude-opus-5-5"  # echoes the requested model
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["input_tokens"] > 0
    assert events[2][1]["content_block"] == {"type": "text", "text": ""}
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] > 0
    # The default echoes what the user typed, not the CLI's <system-reminder> blocks.
    assert streamed_text(response) == "ok: hello there"


def test_non_streaming_request_gets_one_json_message(model: ScriptedModel) -> None:
    model.script(reply("I will run it", ToolUse("Bash", {"command": "ls"})))

    response = call(model, main_body(stream=False))

    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    message = response.json()
    assert message["type"] == "message"
    assert message["stop_reason"] == "tool_use"
    assert message["content"][0] == {"type": "text", "text": "I will run it"}
    block = message["content"][1]
    assert block["type"] == "tool_use"
    assert block["id"].startswith("toolu_")
    assert (block["name"], block["input"]) == ("Bash", {"command": "ls"})


def test_tool_use_streams_input_json_deltas(model: ScriptedModel) -> None:
    command = {"command": "printf '%s\\n' " + "x" * 100, "description": "Print many x"}
    model.script(tool_use("Bash", command, id="toolu_fixed", chunk_size=7))

    events = call(model, main_body()).events()

    start = next(data for event, data in events if event == "content_block_start")
    assert start["content_block"] == {
        "type": "tool_use",
        "id": "toolu_fixed",
        "name": "Bash",
        "input": {},
    }
    pieces = [
        data["delta"]["partial_json"]
        for event, data in events
        if event == "content_block_delta" and data["delta"]["type"] == "input_json_delta"
    ]
    assert pieces[0] == ""  # like the real API
    assert len(pieces) > 10
    assert json.loads("".join(pieces)) == command
    stop = next(data for event, data in events if event == "message_delta")
    assert stop["delta"]["stop_reason"] == "tool_use"


def test_several_blocks_get_consecutive_indexes(model: ScriptedModel) -> None:
    model.script(
        reply(
            "Running two things",
            ToolUse("Bash", {"command": "a"}),
            ToolUse("Read", {"file_path": "/x"}),
        )
    )

    events = call(model, main_body()).events()

    starts = [data for event, data in events if event == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1, 2]
    assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use", "tool_use"]
    assert starts[1]["content_block"]["id"] != starts[2]["content_block"]["id"]


def test_keep_alive_connection_serves_several_requests(model: ScriptedModel) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", model.port, timeout=10)
    try:
        first = call(model, main_body("one"), conn=conn)
        second = call(model, main_body("two", stream=False), conn=conn)
        third = call(model, main_body("three"), conn=conn)
    finally:
        conn.close()
    assert streamed_text(first) == "ok: one"
    assert second.json()["content"][0]["text"] == "ok: two"
    assert streamed_text(third) == "ok: three"


# --------------------------------------------------------------------------- scripting


def test_scripted_turns_are_used_in_order_then_the_default(model: ScriptedModel) -> None:
    model.script(text("first"), "second", lambda request: f"third saw {request.last_user_text}")
    assert model.pending == 3

    answers = [streamed_text(call(model, main_body(f"p{i}"))) for i in range(4)]

    assert answers == ["first", "second", "third saw p2", "ok: p3"]
    assert model.pending == 0


def test_rules_come_before_the_queue_and_none_passes(model: ScriptedModel) -> None:
    model.script("queued")
    model.add_rule(lambda request: "ruled" if "magic" in request.last_user_text else None)

    assert streamed_text(call(model, main_body("magic word"))) == "ruled"
    assert streamed_text(call(model, main_body("plain"))) == "queued"
    assert streamed_text(call(model, main_body("plain"))) == "ok: plain"


def test_when_keeps_concurrent_conversations_apart(model: ScriptedModel) -> None:
    model.script("generic")
    model.script("for A 1", "for A 2", when="task A")
    model.script("for B", when=lambda request: request.first_user_text.startswith("task B"))

    a1 = main_body("task A")
    b1 = main_body("task B")
    # A's second request is a follow-up in the same conversation: matched by its first prompt.
    a2 = with_tool_result(a1, "toolu_1", "output")

    assert streamed_text(call(model, b1)) == "for B"
    assert streamed_text(call(model, a1)) == "for A 1"
    assert streamed_text(call(model, a2)) == "for A 2"
    assert streamed_text(call(model, a2)) == "generic"
    assert streamed_text(call(model, b1)) == "ok: task B"


def test_default_responder_can_be_replaced() -> None:
    with ScriptedModel(default=lambda request: text(request.last_user_text.upper())) as model:
        assert streamed_text(call(model, main_body("shout"))) == "SHOUT"


def test_a_responder_that_raises_answers_500_instead_of_hanging(
    model: ScriptedModel, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: ModelRequest) -> str:
        raise RuntimeError("boom")

    model.script(broken)
    with caplog.at_level(logging.ERROR):
        response = call(model, main_body())
    assert response.status == 500
    assert response.headers["x-should-retry"] == "false"
    assert "boom" in response.json()["error"]["message"]
    assert "responder raised" in caplog.text


# --------------------------------------------------------------------------- requests


def test_requests_are_recorded_with_what_the_cli_sent(model: ScriptedModel) -> None:
    first = main_body("run it")
    model.script(tool_use("Bash", {"command": "echo hi"}, id="toolu_a"), "done")
    call(model, first)
    call(model, with_tool_result(first, "toolu_a", "hi\n"))

    requests = model.requests
    assert [r.index for r in requests] == [0, 1]
    assert all(r.kind == "main" and r.authorized for r in requests)
    second = requests[1]
    assert second.method == "POST"
    assert second.path == "/v1/messages"
    assert second.query == "beta=true"
    assert second.api_key == DEFAULT_API_KEY
    assert second.headers["anthropic-version"] == "2023-06-01"
    assert second.model == "claude-opus-5-5"
    assert second.stream is True
    assert second.tool_names == ["Bash"]
    assert second.system_text == "You are a Claude agent"
    assert second.first_user_text == "run it"
    assert second.last_user_text == "run it"  # a tool result is not user text
    assert [(t.tool_use_id, t.content, t.is_error) for t in second.tool_results] == [
        ("toolu_a", "hi\n", False)
    ]
    assert requests[0].tool_results == []
    assert json.loads(second.raw_body) == second.body


def test_side_requests_do_not_consume_scripted_turns(model: ScriptedModel) -> None:
    model.script("main turn")

    side = call(model, TITLE_REQUEST)
    main = call(model, main_body())

    # The title helper asked for JSON matching its schema, so it gets some.
    assert json.loads(streamed_text(side)) == {"title": "Scripted session"}
    assert streamed_text(main) == "main turn"
    assert [r.kind for r in model.requests] == ["side", "main"]
    assert (
        model.side_requests[0].output_schema == TITLE_REQUEST["output_config"]["format"]["schema"]
    )
    assert len(model.main_requests) == 1


def test_side_classifier() -> None:
    def request(body: dict[str, Any]) -> ModelRequest:
        return ModelRequest(
            index=0,
            method="POST",
            path="/v1/messages",
            query="",
            headers={},
            body=body,
            raw_body=json.dumps(body).encode(),
            kind="main",
            authorized=True,
            received_at=0.0,
        )

    assert is_side_request(request(TITLE_REQUEST))
    # A tool-use summary helper: no schema, still tool-free, thinking off, one message.
    summary = {
        **TITLE_REQUEST,
        "output_config": {"effort": "low"},
        "thinking": {"type": "disabled"},
    }
    assert is_side_request(request(summary))
    assert not is_side_request(request(main_body()))
    # The main loop with every tool disabled still has thinking and two messages.
    assert not is_side_request(request(main_body(tools=[])))
    assert not is_side_request(request(main_body(tools=[], thinking={"type": "disabled"})))
    # Side replies without a schema are plain text.
    plain = side_reply(request(summary))
    assert plain.content[0] == text("Scripted side reply").content[0]


def test_custom_side_responder_and_classifier() -> None:
    with ScriptedModel(
        is_side=lambda request: "side" in request.last_user_text,
        side=lambda request: "from side",
    ) as model:
        model.script("from script")
        assert streamed_text(call(model, main_body("a side question"))) == "from side"
        assert streamed_text(call(model, main_body("a main question"))) == "from script"


# --------------------------------------------------------------------------- errors and auth


@pytest.mark.parametrize(
    ("scripted", "status", "error_type"),
    [
        (api_error(500), 500, "api_error"),
        (overloaded(), 529, "overloaded_error"),
        (api_error(401), 401, "authentication_error"),
        (api_error(429, "slow down", retry_after=3), 429, "rate_limit_error"),
        (api_error(418, error_type="teapot_error"), 418, "teapot_error"),
    ],
)
def test_api_errors_have_the_api_shape(
    model: ScriptedModel, scripted: Any, status: int, error_type: str
) -> None:
    model.script(scripted)

    response = call(model, main_body())

    assert response.status == status
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["error"]["message"]
    assert body["request_id"].startswith("req_")
    if status == 429:
        assert response.headers["retry-after"] == "3"
        assert body["error"]["message"] == "slow down"
    # An error consumes its turn; the next request gets the default again.
    assert call(model, main_body()).status == 200


def test_missing_or_wrong_api_key_is_rejected_and_recorded(model: ScriptedModel) -> None:
    no_key = {k: v for k, v in HEADERS.items() if k != "x-api-key"}
    wrong = {**HEADERS, "x-api-key": "sk-wrong"}
    bearer = {**no_key, "authorization": f"Bearer {DEFAULT_API_KEY}"}
    model.script("for the authorized one")

    assert call(model, main_body(), headers=no_key).status == 401
    rejected = call(model, main_body(), headers=wrong)
    assert rejected.status == 401
    assert rejected.json()["error"]["type"] == "authentication_error"
    assert streamed_text(call(model, main_body(), headers=bearer)) == "for the authorized one"

    assert [(r.api_key, r.authorized) for r in model.requests] == [
        (None, False),
        ("sk-wrong", False),
        (DEFAULT_API_KEY, True),
    ]


def test_any_key_is_accepted_when_none_is_expected() -> None:
    with ScriptedModel(api_key=None) as model:
        headers = {**HEADERS, "x-api-key": "whatever"}
        assert call(model, main_body(), headers=headers).status == 200
        assert model.cli_env()["ANTHROPIC_API_KEY"]


def test_missing_anthropic_version_is_a_400(model: ScriptedModel) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "anthropic-version"}
    response = call(model, main_body(), headers=headers)
    assert response.status == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


# --------------------------------------------------------------------------- other endpoints


def test_count_tokens(model: ScriptedModel) -> None:
    response = call(model, main_body(), path="/v1/messages/count_tokens?beta=true")
    assert response.status == 200
    assert response.json()["input_tokens"] > 0
    assert model.requests[0].kind == "count_tokens"
    assert model.main_requests == []


def test_connectivity_probe(model: ScriptedModel) -> None:
    response = call(model, None, path="/api/hello", method="HEAD", headers={})
    assert response.status == 200
    assert model.requests[0].kind == "hello"


def test_unknown_paths_are_logged_and_answered_404(
    model: ScriptedModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="remote_executors.testing.model"):
        response = call(model, None, path="/v1/models", method="GET")
    assert response.status == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert "/v1/models" in caplog.text
    assert model.requests[0].kind == "unknown"


# --------------------------------------------------------------------------- timing


def test_slow_reply_delays_first_byte_and_chunks(model: ScriptedModel) -> None:
    model.script(slow(text("abcdefgh", chunk_size=2), delay=0.3, chunk_delay=0.05))
    conn = http.client.HTTPConnection("127.0.0.1", model.port, timeout=10)
    try:
        started = time.monotonic()
        conn.request("POST", "/v1/messages", json.dumps(main_body()), HEADERS)
        response = conn.getresponse()
        first_byte = time.monotonic() - started
        body = response.read()
        total = time.monotonic() - started
    finally:
        conn.close()
    assert first_byte >= 0.3
    # 4 text deltas plus the fixed events: 10 events, 9 pauses after the first.
    assert total >= 0.3 + 9 * 0.05
    assert total < 3
    assert streamed_text(Response(200, {}, body)) == "abcdefgh"


def test_slow_error_and_slow_string() -> None:
    assert slow(api_error(500), delay=2).delay == 2
    slowed = slow("hi", delay=1, chunk_delay=0.5)
    assert (slowed.delay, getattr(slowed, "chunk_delay", None)) == (1, 0.5)
    with pytest.raises(ValueError, match="delay"):
        text("x", delay=-1)


def test_concurrent_slow_requests_are_served_in_parallel(model: ScriptedModel) -> None:
    model.add_rule(lambda request: slow(f"done {request.last_user_text}", delay=0.5))
    results: dict[int, str] = {}

    def worker(i: int) -> None:
        results[i] = streamed_text(call(model, main_body(str(i))))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    assert results == {i: f"done {i}" for i in range(10)}
    assert elapsed < 4  # ten 0.5 s replies one after another would take 5 s


def test_stop_cuts_off_a_reply_in_flight() -> None:
    model = ScriptedModel().start()
    model.script(slow("never", delay=30))
    errors: list[BaseException] = []

    def client() -> None:
        try:
            call(model, main_body())
        except (OSError, http.client.HTTPException) as exc:
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    model.wait_for(timeout=5)
    started = time.monotonic()
    model.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 3
    assert errors  # the client saw the connection go away
    assert not model.running


# --------------------------------------------------------------------------- lifecycle


def test_lifecycle_and_env() -> None:
    model = ScriptedModel()
    with pytest.raises(RuntimeError, match="not running"):
        _ = model.url
    assert model.start() is model
    try:
        with pytest.raises(RuntimeError, match="already running"):
            model.start()
        assert model.url == f"http://127.0.0.1:{model.port}"
        assert model.cli_env() == {
            "ANTHROPIC_BASE_URL": model.url,
            "ANTHROPIC_API_KEY": DEFAULT_API_KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
    finally:
        model.stop()
    model.stop()  # idempotent
    # It can be started again after stopping, keeping its script.
    model.script("again")
    with model:
        assert streamed_text(call(model, main_body())) == "again"


def test_binds_a_given_port() -> None:
    with ScriptedModel() as probe:
        port = probe.port
    with ScriptedModel(port=port) as model:
        assert model.port == port
        assert call(model, main_body()).status == 200


def test_clear_and_wait_for(model: ScriptedModel) -> None:
    model.script("x")
    model.add_rule(lambda request: None)
    call(model, TITLE_REQUEST)
    with pytest.raises(TimeoutError, match="0 of 1"):
        model.wait_for(timeout=0.1)
    assert [r.kind for r in model.wait_for(lambda r: r.kind == "side")] == ["side"]
    model.clear()
    assert model.requests == []
    assert model.pending == 0


# --------------------------------------------------------------------------- async callers


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_usable_from_async_code(anyio_backend: str) -> None:
    # The server has its own thread, so it does not care which event loop the test runs.
    with ScriptedModel() as model:
        model.script(slow("from a thread", delay=0.2))
        response = await anyio.to_thread.run_sync(call, model, main_body())
        assert streamed_text(response) == "from a thread"
        found = await anyio.to_thread.run_sync(model.wait_for)
        assert found[0].kind == "main"
