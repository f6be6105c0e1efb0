"""Browse directories on a host: pick a remote project without typing it blind.

``await list_dir(executor, "~/code")`` lists one directory there (``~``,
``~/x`` and ``x`` are relative to the remote home; ``/x`` is absolute),
marking the entries (and the directory itself) that already have Claude
Code sessions on that machine. ``await complete_path(executor, "~/co")``
completes a partial path to the directories it could mean;
``complete_dirs`` does the same with each completion's session mark (what a
directory picker shows).

Bounded whatever the directory holds: at most ``limit`` entries come back
(``truncated`` says there were more), the remote command stops after
``timeout`` seconds, and its output is capped (``OutputTooLarge``). Names are
passed as NUL-terminated bytes, so any file name arrives intact.
"""

from __future__ import annotations

import os

import attrs

from .errors import ExecutorError, InvalidInput, RemotePathNotFound
from .executors.base import Executor
from .paths import project_dir_from_cwd

__all__ = ["Completion", "DirEntry", "Listing", "complete_dirs", "complete_path", "list_dir"]

#: Project dirs of the host read at most (names only) to mark entries with sessions.
_MAX_PROJECTS = 20000
#: Bytes per listed name on average, for the output cap.
_BYTES_PER_ENTRY = 300


@attrs.frozen
class DirEntry:
    """One entry of a :class:`Listing`."""

    name: str
    is_dir: bool
    """A directory (or a link to one)."""
    has_sessions: bool = False
    """Claude Code has sessions for this directory on that machine."""


@attrs.frozen
class Listing:
    """One directory on ``host``: its physical path and (up to ``limit``) entries, sorted."""

    host: str
    path: str
    """The directory's absolute, symlink-free path there."""
    entries: tuple[DirEntry, ...]
    truncated: bool
    """More entries were there than were listed."""
    has_sessions: bool
    """The directory itself has Claude Code sessions there."""

    @property
    def directories(self) -> tuple[DirEntry, ...]:
        return tuple(e for e in self.entries if e.is_dir)


@attrs.frozen
class Completion:
    """A directory a partial path could mean (see :func:`complete_dirs`)."""

    path: str
    """The partial path's directory part, the completed name and ``/`` (``~/code/``)."""
    has_sessions: bool
    """Claude Code has sessions for this directory on that machine."""


# $1 path as given, $2 1: hidden too, $3 limit, $4 name prefix, $5 1: directories only.
# Records, each NUL-terminated: "S <state>", "P <physical dir>", "D|F <name>",
# "T" (truncated), "J <project dir name>".
_LIST = (
    r"""
case $1 in
  '' | '~') rx_d=$HOME ;;
  '~/'*) rx_d=$HOME/${1#'~/'} ;;
  /*) rx_d=$1 ;;
  *) rx_d=$HOME/$1 ;;
esac
if [ ! -e "$rx_d" ]; then printf 'S missing\0P %s\0' "$rx_d"; exit 0; fi
if [ ! -d "$rx_d" ]; then printf 'S notdir\0P %s\0' "$rx_d"; exit 0; fi
cd -- "$rx_d" 2>/dev/null || { printf 'S noaccess\0P %s\0' "$rx_d"; exit 0; }
printf 'S ok\0P %s\0' "$(pwd -P)"
rx_n=0
for rx_f in * .*; do
  case $rx_f in . | ..) continue ;; esac
  case $rx_f in "$4"*) ;; *) continue ;; esac
  case $rx_f in .*) [ "$2" = 1 ] || case $4 in .*) ;; *) continue ;; esac ;; esac
  [ -e "$rx_f" ] || [ -L "$rx_f" ] || continue
  [ "$5" = 1 ] && [ ! -d "$rx_f" ] && continue
  if [ "$rx_n" -ge "$3" ]; then printf 'T\0'; break; fi
  rx_n=$((rx_n + 1))
  if [ -d "$rx_f" ]; then printf 'D %s\0' "$rx_f"; else printf 'F %s\0' "$rx_f"; fi
done
rx_p=${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects
if [ -d "$rx_p" ] && cd -- "$rx_p" 2>/dev/null; then
  rx_n=0
  for rx_f in *; do
    [ "$rx_n" -lt """
    + str(_MAX_PROJECTS)
    + r""" ] || break
    rx_n=$((rx_n + 1))
    [ -d "$rx_f" ] && printf 'J %s\0' "$rx_f"
  done
fi
exit 0
"""
)


async def list_dir(
    executor: Executor,
    path: str = "~",
    *,
    hidden: bool = False,
    limit: int = 1000,
    timeout: float = 15.0,
) -> Listing:
    """List directory ``path`` on ``executor``'s machine (see the module doc).

    ``hidden`` includes names starting with ``.``. Raises
    :class:`~remote_executors.errors.RemotePathNotFound` when ``path`` is not
    a directory there (or cannot be entered), ``InvalidInput`` for a bad
    ``path`` or ``limit``, and the usual connection errors.
    """
    return await _list(executor, path, hidden=hidden, limit=limit, prefix="", timeout=timeout)


async def complete_path(
    executor: Executor, partial: str, *, limit: int = 100, timeout: float = 15.0
) -> list[str]:
    """Directories on ``executor``'s machine that ``partial`` could be the start of.

    Each is ``partial``'s directory part plus a completed name and ``/``
    (``"~/co"`` -> ``["~/code/", "~/config/"]``), sorted; hidden ones only when
    the partial name starts with ``.``. A partial whose directory does not
    exist completes to nothing.
    """
    found = await complete_dirs(executor, partial, limit=limit, timeout=timeout)
    return [c.path for c in found]


async def complete_dirs(
    executor: Executor,
    partial: str,
    *,
    hidden: bool = False,
    limit: int = 100,
    timeout: float = 15.0,
) -> list[Completion]:
    """:func:`complete_path` with each directory's session mark.

    ``hidden`` offers names starting with ``.`` even when the partial name
    does not start with one. At most ``limit`` directories come back (files
    do not count against it).
    """
    head, _, prefix = partial.rpartition("/")
    directory = head + "/" if head or partial.startswith("/") else ""
    if partial in ("~", "") or (not head and partial.startswith("~") and prefix == "~"):
        return [Completion("~/", False)] if partial == "~" else []
    try:
        listing = await _list(
            executor,
            directory or "~",
            hidden=hidden,
            limit=limit,
            prefix=prefix,
            timeout=timeout,
            dirs_only=True,
        )
    except RemotePathNotFound:
        return []
    return [Completion(directory + e.name + "/", e.has_sessions) for e in listing.entries]


async def _list(
    executor: Executor,
    path: str,
    *,
    hidden: bool,
    limit: int,
    prefix: str,
    timeout: float,
    dirs_only: bool = False,
) -> Listing:
    host = executor.name
    if not isinstance(path, str) or "\0" in path or "\0" in prefix:
        raise InvalidInput(f"Cannot list {path!r} on {host}: not a path.", host=host)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise InvalidInput(
            f"Cannot list {path} on {host}: limit must be 1 to 100000, not {limit!r}.",
            host=host,
        )
    cap = 64 * 1024 + (limit + _MAX_PROJECTS) * _BYTES_PER_ENTRY
    result = await executor.run(
        [
            "/bin/sh",
            "-c",
            _LIST,
            "rx-ls",
            path,
            "1" if hidden else "0",
            str(limit),
            prefix,
            "1" if dirs_only else "0",
        ],
        timeout=timeout,
        max_output=cap,
    )
    if not result.ok:
        if result.returncode == 255:
            from .executors.ssh._errors import classify_lost

            raise classify_lost(host, result.stderr.decode("utf-8", "replace"), 255)
        raise ExecutorError(
            f"Listing {path} on {host} failed (exit {result.returncode}). Check that /bin/sh "
            "works there.",
            host=host,
            detail=result.stderr.decode("utf-8", "replace")[-2000:],
        )
    state = physical = ""
    entries: list[tuple[str, bool]] = []
    projects: set[str] = set()
    truncated = False
    for record in result.stdout.split(b"\0"):
        kind, _, raw = record.partition(b" ")
        value = os.fsdecode(raw)
        if kind == b"S":
            state = value
        elif kind == b"P":
            physical = value
        elif kind in (b"D", b"F"):
            entries.append((value, kind == b"D"))
        elif kind == b"J":
            projects.add(value)
        elif kind == b"T":
            truncated = True
    if state != "ok":
        why = {
            "missing": "does not exist",
            "notdir": "is not a directory",
            "noaccess": "cannot be entered (permissions)",
        }.get(state, "could not be listed")
        raise RemotePathNotFound(
            f"{physical or path} {why} on {host}. Paths are absolute, or relative to the "
            "home directory there (~, ~/code, code).",
            host=host,
            path=physical or path,
        )

    def has_sessions(directory: str) -> bool:
        try:
            return project_dir_from_cwd(directory) in projects
        except InvalidInput:
            return False

    base = physical.rstrip("/")
    listed = tuple(
        DirEntry(name, is_dir, is_dir and has_sessions(f"{base}/{name}"))
        for name, is_dir in entries
    )
    return Listing(host, physical, listed, truncated, has_sessions(physical))
