"""``PUT /api/settings/remote-executors``: replace the configured list in one write.

:class:`~remote_executors.settings.SettingsStore` changes one executor at a
time; a PUT must validate every entry first and then write the new list (in
its order, options of executors that stay kept) atomically under the store's
lock. This module is that one operation.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import InvalidInput
from ..settings import HostSettings, Settings, SettingsStore

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
    # The store's own lock, reader and writer: unknown keys and options survive.
    with store._locked():
        document = store._read()
        current = document.settings
        entries = [current.get(name) or HostSettings(name) for name in names]
        settings = Settings(entries)
        if settings != current:
            host_extra = {k: v for k, v in document.host_extra.items() if k in names}
            store._write(attrs.evolve(document, settings=settings, host_extra=host_extra))
    return store.load().hosts
