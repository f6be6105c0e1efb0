"""``SSHExecutor`` and its private parts: the OpenSSH and Fabric backends,
ssh_config resolution, host keys, error classification, specs, reattach.

Lazy, like the package root: the light helpers here (``_spec``, ``_errors``)
are imported by records, settings and ``check`` without loading the executor.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._executor import BACKENDS, SSHExecutor

__all__ = ["BACKENDS", "SSHExecutor"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("._executor", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
