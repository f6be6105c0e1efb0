"""The "Run on" choice per project, remembered across page loads and server runs.

A small JSON file (``<data dir>/web/run-on.json``, 0600, written atomically)
mapping a project directory to the executor last chosen for it. At most
:data:`KEEP` projects are kept, the most recent ones.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from .._store_file import install_atomically
from ..records import data_dir

__all__ = ["KEEP", "RunOnMemory"]

KEEP = 500


class RunOnMemory:
    """``get(cwd)`` / ``remember(cwd, executor)``; unreadable files read as empty."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else data_dir() / "web" / "run-on.json"
        self._lock = threading.Lock()

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def get(self, cwd: str) -> str | None:
        return self._load().get(cwd)

    def remember(self, cwd: str, executor: str) -> None:
        with self._lock:
            data = self._load()
            data.pop(cwd, None)
            data[cwd] = executor  # newest last
            kept = dict(list(data.items())[-KEEP:])
            text = json.dumps(kept, ensure_ascii=True, indent=1) + "\n"
            install_atomically(self.path, text.encode("ascii"))
