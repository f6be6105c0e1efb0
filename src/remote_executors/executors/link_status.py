"""How a dropped link reaches the app: as a message in its stream.

With ``SSHExecutor(reattach_within=...)`` a dropped link does not end the
session. The process's stdout carries a line the SDK parses into a
``claude_agent_sdk.SystemMessage`` with subtype :data:`LINK_SUBTYPE`: one
with ``state="detached"`` when the link is lost (sent at once when the
output stopped at a line boundary, else right after the reattach, when the
line in flight is complete) and one with ``state="reattached"`` when the
stream flows again. Apps that do not know it can ignore it;
:meth:`LinkStatus.from_message` reads it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import attrs

__all__ = ["LINK_SUBTYPE", "LinkStatus"]

LINK_SUBTYPE = "remote_executors_link"


@attrs.frozen
class LinkStatus:
    """The state of a session's link, as an app would show it."""

    state: Literal["detached", "reattached"]
    host: str
    message: str
    """One line for a status bar, e.g. "Link to box lost, reconnecting"."""
    seconds: float = 0.0
    """For ``reattached``: how long the link was down."""
    grace: float = 0.0
    """How long the host keeps the session running without a link."""

    def to_raw(self) -> dict[str, Any]:
        """The stream-json form the SDK parses into a ``SystemMessage``."""
        return {
            "type": "system",
            "subtype": LINK_SUBTYPE,
            "state": self.state,
            "host": self.host,
            "message": self.message,
            "seconds": round(self.seconds, 3),
            "grace": self.grace,
        }

    def to_line(self) -> bytes:
        """One stdout line, as the CLI would print it."""
        return json.dumps(self.to_raw(), separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_message(cls, message: object) -> LinkStatus | None:
        """The status ``message`` carries (a ``SystemMessage``), or None if it is not one."""
        if getattr(message, "subtype", None) != LINK_SUBTYPE:
            return None
        data = getattr(message, "data", None)
        if not isinstance(data, dict):
            return None
        state = data.get("state")
        if state not in ("detached", "reattached"):
            return None
        return cls(
            state=state,
            host=str(data.get("host", "")),
            message=str(data.get("message", "")),
            seconds=float(data.get("seconds", 0.0)),
            grace=float(data.get("grace", 0.0)),
        )
