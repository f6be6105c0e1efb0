"""Every use of claude-agent-sdk private API, in one leaf module.

The SDK's public surface does not offer what an executor needs (a transport
whose process starts elsewhere, the store-resume helpers, the bundled CLI's
location), so these names are borrowed from its internals. Nothing else in
the package imports ``claude_agent_sdk._internal`` or a private name;
``tests/unit/test_sdk_seam.py`` pins each one so an SDK upgrade that moves
one fails loudly, naming what moved.

This module imports nothing from the package except the error tree, so
executors can use it without an import circle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, Message
from claude_agent_sdk._errors import MessageParseError
from claude_agent_sdk._internal.client import InternalClient
from claude_agent_sdk._internal.message_parser import parse_message as _parse_message
from claude_agent_sdk._internal.session_resume import (
    MaterializedResume,
    _load_candidate,
    _resolve_continue_candidate,
    apply_materialized_options,
    materialize_resume_session,
)
from claude_agent_sdk._internal.session_store_validation import (
    _store_implements,
    validate_session_store_options,
)
from claude_agent_sdk._internal.sessions import (
    _agent_metadata_sidecar_path,
    _get_projects_dir,
    _split_agent_metadata,
)
from claude_agent_sdk._internal.transport import subprocess_cli
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport
from claude_agent_sdk.types import SessionStore, _configure_can_use_tool

from .errors import ClaudeNotFound

__all__ = [
    "InternalClient",
    "MaterializedResume",
    "SubprocessCLITransport",
    "agent_metadata_sidecar_name",
    "apply_materialized_options",
    "bundled_cli",
    "configure_can_use_tool",
    "expected_cli_version",
    "find_local_claude",
    "load_store_session",
    "materialize_resume_session",
    "mirror_projects_dir",
    "parse_message",
    "resolve_store_continue",
    "set_transport_cli_path",
    "set_transport_options",
    "split_agent_metadata",
    "store_implements",
    "subprocess_cli",
    "transport_cli_path",
    "transport_connected",
    "transport_options",
    "validate_session_store_options",
]

# -- SubprocessCLITransport's private state, which ExecutorTransport extends ------


def transport_options(transport: SubprocessCLITransport) -> ClaudeAgentOptions:
    """The options the transport builds the CLI's command line from."""
    return transport._options


def set_transport_options(transport: SubprocessCLITransport, options: ClaudeAgentOptions) -> None:
    transport._options = options


def transport_cli_path(transport: SubprocessCLITransport) -> str | None:
    """The CLI the transport runs (None: not found here)."""
    path = transport._cli_path
    return None if path is None else str(path)


def set_transport_cli_path(transport: SubprocessCLITransport, path: str) -> None:
    transport._cli_path = path


def transport_connected(transport: SubprocessCLITransport) -> bool:
    """True once the transport started its process."""
    return transport._process is not None


def parse_message(data: dict[str, Any]) -> Message | None:
    """The SDK's message object for one stream-json line of the CLI; None for a
    line it does not turn into one (a kind it does not know, or malformed)."""
    try:
        return _parse_message(data)
    except MessageParseError:
        return None


#: Routes ``can_use_tool`` over stdio, as the SDK does before it builds its own
#: transport (a transport handed to the SDK skips that step).
configure_can_use_tool = _configure_can_use_tool


def find_local_claude() -> str:
    """The CLI the SDK itself would run on this machine (bundled first)."""
    transport = SubprocessCLITransport(prompt="", options=ClaudeAgentOptions())
    try:
        return transport._find_cli()
    except Exception as exc:
        raise ClaudeNotFound(
            "Claude CLI not found on local. Reinstall claude-agent-sdk (it bundles the "
            "CLI), install Claude Code, or set ClaudeAgentOptions(cli_path=...).",
            host="local",
        ) from exc


def bundled_cli() -> str | None:
    """The CLI binary the installed SDK wheel ships (None: this wheel has none)."""
    transport = SubprocessCLITransport(prompt="", options=ClaudeAgentOptions())
    return transport._find_bundled_cli()


def expected_cli_version() -> str | None:
    """The Claude Code CLI version the installed SDK was built for and bundles
    (e.g. ``"2.1.330"``); None if this SDK does not say."""
    try:
        from claude_agent_sdk._cli_version import __cli_version__
    except ImportError:
        return None
    return str(__cli_version__) or None


def mirror_projects_dir(env: Mapping[str, str]) -> str:
    """Where the SDK's transcript-mirror batcher expects ``filePath`` values to
    live: the projects dir of ``options.env``'s config dir, read on this machine."""
    return os.fspath(_get_projects_dir(dict(env)))


def store_implements(store: SessionStore, method: str) -> bool:
    """True when ``store`` overrides an optional ``SessionStore`` method."""
    return _store_implements(store, method)


async def load_store_session(
    store: SessionStore, project_key: str, session_id: str, timeout: float
) -> list[Any] | None:
    """The main transcript entries the store holds for a session (None: none),
    with the SDK's own timeout and error wording."""
    loaded = await _load_candidate(store, project_key, session_id, timeout)
    return None if loaded is None else list(loaded[1])


async def resolve_store_continue(
    store: SessionStore, project_key: str, timeout: float
) -> str | None:
    """The session ``continue_conversation`` picks from the store, as the SDK picks it."""
    loaded = await _resolve_continue_candidate(store, project_key, timeout)
    return None if loaded is None else str(loaded[0])


def split_agent_metadata(entries: list[Any]) -> tuple[dict[str, Any] | None, list[Any]]:
    """A subagent's store entries as (``.meta.json`` content or None, transcript lines)."""
    return _split_agent_metadata(entries)


def agent_metadata_sidecar_name(transcript_name: str) -> str:
    """``agent-x.jsonl`` -> ``agent-x.meta.json``, the SDK's naming."""
    return _agent_metadata_sidecar_path(Path(transcript_name)).name
