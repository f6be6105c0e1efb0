"""How a local cwd maps to a remote machine's (SSH hosts, containers, pods).

``path_map`` rules first (longest prefix first, as ``sorted_path_map`` sorts
them; a target under ``~`` is relative to the remote home), then the rule
every remote kind shares: a directory under the local home is the same path
under the remote home; anything else keeps its absolute path. The remote home
is asked once per executor (``usable_home``) and only a plain absolute path
is accepted, since it is joined into every mapped path.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Awaitable, Callable, Iterable, Mapping

from ..errors import RemoteSetupError
from ._validate import _CONTROL_RE, absolute_local, remote_prefix
from .base import CommandResult

__all__ = ["cwd_target", "mapped_cwd", "sorted_path_map", "under_home", "usable_home"]

PathMap = tuple[tuple[str, str], ...]


def sorted_path_map(path_map: Mapping[str, str] | None, *, host: str) -> PathMap:
    """``path_map`` checked (absolute local prefixes, clean remote ones), the
    longest local prefix first so that it wins."""
    pairs = (
        (absolute_local(local, host=host), remote_prefix(remote, host=host))
        for local, remote in (path_map or {}).items()
    )
    return tuple(sorted(pairs, key=lambda pair: len(pair[0]), reverse=True))


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


async def mapped_cwd(
    local_cwd: str,
    path_map: Iterable[tuple[str, str]],
    *,
    host: str,
    home: Callable[[], Awaitable[str]],
) -> str:
    """The remote directory for ``local_cwd`` (``home`` is asked only when needed)."""
    absolute, relative = cwd_target(local_cwd, path_map, host=host)
    if absolute is not None:
        return absolute
    return under_home(await home(), relative or "")


async def usable_home(
    run: Callable[..., Awaitable[CommandResult]], *, host: str, who: str, advice: str
) -> str:
    """``$HOME`` there, through ``run`` (an executor's); ``RemoteSetupError`` unless
    it is an absolute path without control characters. The message is ``who``
    did not report a usable home ..., then ``advice`` (from its punctuation on)."""
    result = await run(["/bin/sh", "-c", 'printf %s "$HOME"'], timeout=30)
    home = result.stdout.decode("utf-8", "surrogateescape")
    if not result.ok or not home.startswith("/") or _CONTROL_RE.search(home):
        raise RemoteSetupError(
            f"{who} did not report a usable home directory: $HOME there is "
            f"{home[:200]!r} (exit status {result.returncode}){advice}",
            host=host,
            detail=result.stderr.decode("utf-8", "replace")[-2000:],
        )
    return home
