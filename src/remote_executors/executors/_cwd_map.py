"""How a local cwd maps to a remote machine's (SSH hosts, containers).

``path_map`` rules first (longest prefix first, as the executors sort them;
a target under ``~`` is relative to the remote home), then the rule every
remote kind shares: a directory under the local home is the same path under
the remote home; anything else keeps its absolute path.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable

from ._validate import absolute_local

__all__ = ["cwd_target", "under_home"]


def cwd_target(
    local_cwd: str, path_map: Iterable[tuple[str, str]], *, host: str
) -> tuple[str | None, str | None]:
    """(absolute remote cwd, home-relative remote cwd); exactly one is set."""
    local = absolute_local(local_cwd, host=host)
    for prefix, remote in path_map:
        if local == prefix or local.startswith(prefix.rstrip("/") + "/"):
            rest = os.path.relpath(local, prefix)
            target = remote if rest == "." else posixpath.join(remote, rest)
            if target == "~" or target.startswith("~/"):  # relative to the remote home
                return None, target[2:]
            return target, None
    home = os.path.expanduser("~")
    if local == home or local.startswith(home.rstrip("/") + "/"):
        rest = os.path.relpath(local, home)
        return None, ("" if rest == "." else rest)
    return local, None


def under_home(home: str, relative: str) -> str:
    """The remote directory ``relative`` to ``home`` (``""``: the home itself)."""
    return home if not relative else posixpath.join(home, relative)
