"""``run --json``: each SDK message back in the shape ``claude --output-format stream-json`` prints.

The SDK parses the CLI's JSON lines into dataclasses and keeps only what it
knows; this puts the known parts back where the CLI had them (``type`` on
every message and content block, the assistant's fields under ``message``,
``modelUsage``), so a script written against ``claude -p --output-format
stream-json --verbose`` reads this output too. System messages carry the
CLI's own object unchanged (the SDK keeps it whole in ``data``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

__all__ = ["to_stream_json"]

#: SDK content block class -> the API's block ``type``.
_BLOCK_TYPES = {
    "TextBlock": "text",
    "ThinkingBlock": "thinking",
    "ToolUseBlock": "tool_use",
    "ToolResultBlock": "tool_result",
    "ServerToolUseBlock": "server_tool_use",
    "ServerToolResultBlock": "advisor_tool_result",
}
#: SDK field name -> the CLI's key, where they differ.
_RENAMED = {"model_usage": "modelUsage"}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _plain(value: Any) -> Any:
    """Dataclasses (nested too) as dicts, keys renamed to the CLI's."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        out: dict[str, Any] = {}
        if name in _BLOCK_TYPES:
            out["type"] = _BLOCK_TYPES[name]
        for field in dataclasses.fields(value):
            out[_RENAMED.get(field.name, field.name)] = _plain(getattr(value, field.name))
        return out
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _content(content: Any) -> Any:
    return content if isinstance(content, str) else _plain(content)


def to_stream_json(message: object) -> dict[str, Any]:
    """One SDK message as the CLI's stream-json object."""
    name = type(message).__name__
    data = getattr(message, "data", None)
    if isinstance(data, dict) and data.get("type") == "system":
        return dict(data)
    get = message.__getattribute__
    if name == "AssistantMessage":
        out: dict[str, Any] = {
            "type": "assistant",
            "message": {
                "id": getattr(message, "message_id", None),
                "type": "message",
                "role": "assistant",
                "model": get("model"),
                "content": _content(get("content")),
                "stop_reason": getattr(message, "stop_reason", None),
                "usage": getattr(message, "usage", None),
            },
            "parent_tool_use_id": get("parent_tool_use_id"),
            "session_id": getattr(message, "session_id", None),
            "uuid": getattr(message, "uuid", None),
        }
        if getattr(message, "error", None) is not None:
            out["error"] = get("error")
        return out
    if name == "UserMessage":
        out = {
            "type": "user",
            "message": {"role": "user", "content": _content(get("content"))},
            "parent_tool_use_id": get("parent_tool_use_id"),
            "uuid": getattr(message, "uuid", None),
        }
        if getattr(message, "tool_use_result", None) is not None:
            out["tool_use_result"] = get("tool_use_result")
        return out
    if name == "RateLimitEvent":
        info = get("rate_limit_info")
        raw = getattr(info, "raw", None) or _plain(info)
        return {
            "type": "rate_limit_event",
            "rate_limit_info": raw,
            "uuid": get("uuid"),
            "session_id": get("session_id"),
        }
    kind = {"ResultMessage": "result", "StreamEvent": "stream_event"}.get(name)
    plain = _plain(message)
    if not isinstance(plain, dict):  # not a dataclass: say what it is
        return {"type": _snake(name), "value": repr(message)}
    # Fields the SDK defaults to None are ones the CLI left out (or sent as null).
    fields = {key: value for key, value in plain.items() if value is not None}
    return {"type": kind or _snake(name.removesuffix("Message")), **fields}
