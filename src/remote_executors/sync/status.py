"""How a session's sync state reaches the app: as a message in its stream.

A failed sync does not fail the session. The app gets a
``claude_agent_sdk.SystemMessage`` with subtype :data:`SYNC_SUBTYPE` just
before the turn's ``ResultMessage`` (and again for each later failure), and
one with ``ok=True`` when a later sync succeeds. Being a plain SDK message,
it flows through ``query`` and ``ClaudeSDKClient`` alike and apps that do not
know it can ignore it; :meth:`SessionSyncStatus.from_message` reads it.
"""

from __future__ import annotations

from typing import Any

import attrs
from claude_agent_sdk import SystemMessage

__all__ = ["SYNC_SUBTYPE", "SessionSyncStatus"]

SYNC_SUBTYPE = "remote_executors_session_sync"


@attrs.frozen
class SessionSyncStatus:
    """The sync state of a running session, as an app would show it."""

    ok: bool
    session_id: str
    host: str
    message: str
    """One line for a status bar, e.g. "Session sync failed, local view may be stale"."""
    error: str = ""
    """The error's class name (``SessionConflict``, ``HostUnreachable``...), empty when ok."""
    detail: str = ""
    """The full error message: what failed and what to do."""
    conflict_copies: tuple[tuple[str, str], ...] = ()
    """For a conflict: ``(local file, saved copy of the other side)`` pairs."""

    def to_raw(self) -> dict[str, Any]:
        """The stream-json form the SDK parses into a ``SystemMessage``."""
        return {
            "type": "system",
            "subtype": SYNC_SUBTYPE,
            "ok": self.ok,
            "session_id": self.session_id,
            "host": self.host,
            "message": self.message,
            "error": self.error,
            "detail": self.detail,
            "conflict_copies": [list(pair) for pair in self.conflict_copies],
        }

    @classmethod
    def from_message(cls, message: object) -> SessionSyncStatus | None:
        """The status carried by ``message``, or None if it is not a sync status."""
        if not isinstance(message, SystemMessage) or message.subtype != SYNC_SUBTYPE:
            return None
        data = message.data
        return cls(
            ok=bool(data.get("ok")),
            session_id=str(data.get("session_id", "")),
            host=str(data.get("host", "")),
            message=str(data.get("message", "")),
            error=str(data.get("error", "")),
            detail=str(data.get("detail", "")),
            conflict_copies=tuple(
                (str(pair[0]), str(pair[1])) for pair in data.get("conflict_copies", ())
            ),
        )
