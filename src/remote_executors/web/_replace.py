"""``PUT /api/settings/remote-executors``: replace the configured list in one write.

A PUT must say what is wrong with every entry (not only the first) before
:meth:`~remote_executors.settings.SettingsStore.replace_hosts` writes the new
list (in its order, options of executors that stay kept) atomically.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput
from ..settings import HostSettings, SettingsStore

__all__ = ["problems_in", "replace_executors"]


def problems_in(names: Any) -> list[dict[str, Any]]:
    """What is wrong with each entry of ``names`` (empty: it may be written)."""
    if not isinstance(names, list):
        return [{"index": None, "entry": None, "error": "Expected a JSON list of strings."}]
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, name in enumerate(names):
        if not isinstance(name, str):
            problems.append({"index": index, "entry": name, "error": "Not a string."})
            continue
        try:
            HostSettings(name)  # the settings module's own validation
        except InvalidInput as exc:
            problems.append({"index": index, "entry": name, "error": exc.message})
            continue
        if name in seen:
            problems.append({"index": index, "entry": name, "error": "Listed twice."})
        seen.add(name)
    return problems


def replace_executors(store: SettingsStore, names: list[str]) -> list[str]:
    """Write ``names`` as the configured list (validated by :func:`problems_in` first)."""
    return store.replace_hosts(names)
