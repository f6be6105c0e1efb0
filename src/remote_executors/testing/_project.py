"""``Project``: a project directory that exists on both machines.

A leaf of its own so the SSH and container fixtures and the plugin can all
hand one out without importing each other.
"""

from __future__ import annotations

from pathlib import Path

import attrs

__all__ = ["Project"]


@attrs.frozen
class Project:
    """A project directory on both machines, mapped by the default rule."""

    local: Path
    remote: Path
