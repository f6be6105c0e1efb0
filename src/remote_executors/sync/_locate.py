"""Finding a session on each side: the local project dir and the executor's.

Each side's project dir is named after that side's own resolved working
directory, as the CLI names it, under that side's Claude config dir.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from remote_executors.errors import SyncError
from remote_executors.executors.base import Executor, shares_local_filesystem
from remote_executors.paths import project_dir_from_cwd
from remote_executors.sync.base import SessionPaths

__all__ = ["local_project_dir", "locate", "same_place", "session_paths"]


def local_projects_dir(config_dir: str | None = None) -> Path:
    """The projects dir of ``config_dir``, by default the one this machine's
    readers (the SDK's, a local CLI's) use: ``$CLAUDE_CONFIG_DIR`` or ``~/.claude``."""
    config = config_dir or os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(config or Path.home() / ".claude") / "projects"


def local_project_dir(local_cwd: str | os.PathLike[str]) -> Path:
    """The local project dir of a session run in ``local_cwd``."""
    return local_projects_dir() / project_dir_from_cwd(
        os.path.realpath(os.path.expanduser(local_cwd))
    )


async def locate(
    executor: Executor,
    *,
    local_cwd: str | os.PathLike[str],
    session_id: str | None,
    env: Mapping[str, str] | None = None,
    remote_cwd: str | None = None,
) -> SessionPaths:
    """The session's :class:`SessionPaths` for ``executor``.

    ``remote_cwd`` is the physical working directory on the executor's
    machine when known (a running session reports it); otherwise the local
    cwd is mapped as a session's would be and resolved there (one command).
    ``env`` is the session's ``ClaudeAgentOptions.env``: its
    ``CLAUDE_CONFIG_DIR`` is where that machine's CLI keeps sessions.
    """
    local_cwd = os.fspath(local_cwd)
    if remote_cwd is None:
        mapped = await executor.map_cwd(os.path.abspath(os.path.expanduser(local_cwd)))
        result = await executor.run(["/bin/sh", "-c", "pwd -P"], cwd=mapped, timeout=30)
        remote_cwd = result.stdout.decode("utf-8", "surrogateescape").rstrip("\n")
        if not result.ok or not remote_cwd.startswith("/"):
            raise SyncError(
                f"Could not resolve {mapped} on {executor.name} to find its sessions "
                f"(exit {result.returncode}). Check that the directory exists there.",
                host=executor.name,
                detail=result.stderr.decode("utf-8", "replace"),
            )
    return session_paths(local_cwd, remote_cwd, session_id, env)


def session_paths(
    local_cwd: str | os.PathLike[str],
    remote_cwd: str,
    session_id: str | None,
    env: Mapping[str, str] | None = None,
) -> SessionPaths:
    """:class:`SessionPaths` from both sides' working directories (``remote_cwd``
    already resolved there) and the session's ``ClaudeAgentOptions.env``."""
    return SessionPaths(
        local_dir=local_project_dir(local_cwd),
        remote_project=project_dir_from_cwd(remote_cwd),
        session_id=session_id,
        remote_config_dir=(env or {}).get("CLAUDE_CONFIG_DIR") or None,
    )


def same_place(executor: Executor, paths: SessionPaths) -> bool:
    """True when the executor writes the session exactly where the local readers look."""
    if not shares_local_filesystem(executor):
        return False
    remote = local_projects_dir(paths.remote_config_dir) / paths.remote_project
    return os.path.realpath(remote) == os.path.realpath(paths.local_dir)
