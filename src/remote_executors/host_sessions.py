"""Sessions a host has: list them (all projects or one), import one to continue it there.

``await list_host_sessions(executor)`` reads the host's Claude Code projects
dir (``$CLAUDE_CONFIG_DIR/projects``, else ``~/.claude/projects``) and
returns one :class:`HostSession` per transcript, newest first, each marked
with whether this machine has a copy and where the local records say it
runs. ``await import_session(executor, session_id)`` pulls that session here
(the usual no-loss sync) and records it as the host's, so a resume with no
executor given (``remote-executors run --resume ID``) continues it on that
host, in the directory it ran in. An imported session is never recorded as a
local one.

Only what the host's files say is used: project dir names and session ids
that are not what the CLI writes are skipped, and every value is bounded
(a few KiB of each transcript's head are read for its directory and first
prompt; at most ``limit`` sessions are listed).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re

import attrs

from .errors import ExecutorError, InvalidInput, SyncError
from .executors.base import Executor, shares_local_filesystem
from .paths import validate_session_id
from .records import SessionRecord, SessionRecords
from .sync._locate import local_project_dir, local_projects_dir, locate
from .sync.base import SessionPaths, SessionSync

__all__ = ["HostSession", "import_session", "list_host_sessions"]

_PROJECT_NAME = re.compile(r"[A-Za-z0-9-]{1,255}")
_SESSION_FILE = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.jsonl")
#: Lines of each transcript's head read for its directory and first prompt.
_HEAD_LINES = 40
#: Characters of a first prompt kept.
_PROMPT_CHARS = 200


@attrs.frozen
class HostSession:
    """One session transcript on a host."""

    host: str
    session_id: str
    project_dir: str
    """Its project dir's name on the host."""
    cwd: str | None
    """The directory it ran in there (from the transcript; None if it does not say)."""
    size: int
    modified: dt.datetime
    first_prompt: str
    """The start of its first prompt, as far as the transcript's head shows it ("" if not)."""
    here: bool
    """This machine has a copy (in any local project dir)."""
    recorded_on: str | None
    """Where the local records say it runs (``"local"``, a host), or None: no record."""


# $1: project dir name or '' (all), $2: session id or '' (all), $3: limit.
# Lines (JSON strings hold no raw newline; a name that does is not one the CLI
# writes, and is skipped): "F <size> <mtime> ./<project>/<file>", then per file
# "C <project>/<file>\t<cwd JSON string>" and "U <project>/<file>\t<prompt JSON string>".
_LIST = (
    r"""
rx_p=${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects
[ -d "$rx_p" ] || exit 0
cd -- "$rx_p" || exit 3
rx_s=${2:-*}
rx_lim=$3
# ./ in front: project dir names start with "-", which tools take for options.
if [ -n "$1" ]; then set -- ./"$1"/$rx_s.jsonl; else set -- ./*/$rx_s.jsonl; fi
rx_stat() {
  stat -c '%s %Y %n' "$@" 2>/dev/null || stat -f '%z %m %N' "$@" 2>/dev/null
}
[ -e "$1" ] || exit 0
# Newest first, at most the limit; names are checked again on this side.
rx_nl='
'
set -f
IFS=$rx_nl
set -- $(ls -t -- "$@" 2>/dev/null | head -n "$rx_lim")
unset IFS
[ "$#" -gt 0 ] || exit 0
rx_stat "$@" | sed 's/^/F /'
awk -v max="""
    + str(_HEAD_LINES)
    + r""" '
  FNR == 1 { cwd = 0; user = 0 }
  FNR > max { nextfile }
  !cwd && match($0, /"cwd" *: *"([^"\\]|\\.)*"/) {
    s = substr($0, RSTART, RLENGTH); sub(/^"cwd" *: */, "", s)
    printf "C %s\t%s\n", FILENAME, s; cwd = 1
  }
  !user && $0 ~ /"type" *: *"user"/ && match($0, /"(content|text)" *: *"([^"\\]|\\.)*"/) {
    s = substr($0, RSTART, RLENGTH); sub(/^"(content|text)" *: */, "", s)
    printf "U %s\t%s\n", FILENAME, substr(s, 1, 2000); user = 1
  }
  cwd && user { nextfile }
' "$@"
exit 0
"""
)


async def list_host_sessions(
    executor: Executor,
    *,
    cwd: str | os.PathLike[str] | None = None,
    limit: int = 1000,
    timeout: float = 30.0,
) -> list[HostSession]:
    """The sessions ``executor``'s machine has, newest first (see the module doc).

    ``cwd``: only the project this local directory maps to there (as a
    session's would). Raises the usual connection errors, and
    :class:`~remote_executors.errors.SyncError` when the host's projects dir
    cannot be read.
    """
    project = ""
    if cwd is not None:
        project = await _remote_project(executor, os.fspath(cwd))
    return await _list(executor, project, "", limit, timeout)


async def import_session(
    executor: Executor,
    session_id: str,
    *,
    local_cwd: str | os.PathLike[str] | None = None,
    sync: SessionSync | None = None,
    timeout: float = 30.0,
) -> SessionRecord:
    """Pull session ``session_id`` from ``executor``'s machine and record it as that host's.

    The local copy goes where a session run in ``local_cwd`` keeps it; by
    default that is the local counterpart of the directory it ran in there
    (the same path relative to the home directory). Returns the record, which
    says where a resume continues it. Raises
    :class:`~remote_executors.errors.InvalidInput` when the host has no such
    session or its directory has no local counterpart (pass ``local_cwd``),
    and what the sync raises (nothing is lost: diverged copies are both kept).
    """
    host = executor.name
    validate_session_id(session_id)
    if shares_local_filesystem(executor):
        raise InvalidInput(
            f"Session {session_id} is on this machine already; nothing to import.", host=host
        )
    found = await _list(executor, "", session_id, 10, timeout)
    if not found:
        raise InvalidInput(
            f"{host} has no session {session_id}. List the sessions it has with "
            f"`remote-executors sessions --on {host}`.",
            host=host,
        )
    session = found[0]
    if session.cwd is None:
        raise SyncError(
            f"Session {session_id} on {host} does not say which directory it ran in, so it "
            "cannot be resumed there. Its transcript may be damaged.",
            host=host,
        )
    if local_cwd is None:
        local = await _local_counterpart(executor, session.cwd)
    else:
        local = os.path.realpath(os.path.expanduser(os.fspath(local_cwd)))
    from .sync._default import default_sync

    paths = SessionPaths(
        local_dir=local_project_dir(local),
        remote_project=session.project_dir,
        session_id=session_id,
    )
    await (sync or default_sync(executor)).pull(executor, paths)
    records = SessionRecords()
    fields = {
        "executor": executor.spec,  # what reopens it, options included
        "local_cwd": local,
        "remote_cwd": session.cwd,
        "remote_project_dir": None,
        "sync_error": None,
    }
    updated = records.update(session_id, **fields)
    if updated is not None:
        return updated
    record = SessionRecord(session_id=session_id, **fields)  # type: ignore[arg-type]
    records.put(record)
    return record


# -- internals -----------------------------------------------------------------


async def _remote_project(executor: Executor, local_cwd: str) -> str:
    """The project dir name, there, of the directory ``local_cwd`` maps to."""
    paths = await locate(executor, local_cwd=local_cwd, session_id=None)
    return paths.remote_project


async def _local_counterpart(executor: Executor, remote_cwd: str) -> str:
    home = (await executor.home()).rstrip("/")
    if remote_cwd == home or remote_cwd.startswith(home + "/"):
        rest = remote_cwd[len(home) :].lstrip("/")
        return os.path.join(os.path.expanduser("~"), rest) if rest else os.path.expanduser("~")
    raise InvalidInput(
        f"The session ran in {remote_cwd} on {executor.name}, outside its home directory, "
        "so there is no local directory that maps to it by default. Pass the local project "
        "directory (--cwd) to import it into.",
        host=executor.name,
    )


def _local_session_ids() -> set[str]:
    root = local_projects_dir()
    try:
        projects = list(os.scandir(root))
    except OSError:
        return set()
    ids: set[str] = set()
    for project in projects:
        try:
            for entry in os.scandir(project.path):
                match = _SESSION_FILE.fullmatch(entry.name)
                if match:
                    ids.add(match.group(1))
        except OSError:
            continue
    return ids


async def _list(
    executor: Executor, project: str, session_id: str, limit: int, timeout: float
) -> list[HostSession]:
    host = executor.name
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise InvalidInput(f"limit must be 1 to 100000, not {limit!r} (host {host}).", host=host)
    result = await executor.run(
        ["/bin/sh", "-c", _LIST, "rx-sessions", project, session_id, str(limit)],
        timeout=timeout,
        max_output=limit * 5000 + 65536,
    )
    if result.returncode == 255 and not shares_local_filesystem(executor):
        from .executors.ssh._errors import classify_lost

        raise classify_lost(host, result.stderr.decode("utf-8", "replace"), 255)
    if not result.ok:
        raise SyncError(
            f"Could not read the sessions on {host} (exit {result.returncode}). Check that "
            "its Claude config dir (~/.claude, or $CLAUDE_CONFIG_DIR) is readable there.",
            host=host,
            detail=result.stderr.decode("utf-8", "replace")[-2000:],
        )
    files: dict[str, tuple[int, float]] = {}
    cwds: dict[str, str] = {}
    prompts: dict[str, str] = {}
    for line in result.stdout.split(b"\n"):
        kind, _, rest = line.partition(b" ")
        text = rest.decode("utf-8", "replace")
        if kind == b"F":
            length, _, more = text.partition(" ")
            stamp, _, name = more.partition(" ")
            if length.isdigit() and stamp.isdigit():
                files[name] = (int(length), float(stamp))
        elif kind in (b"C", b"U"):
            name, _, value = text.partition("\t")
            decoded = _json_string(value)
            if decoded is not None:
                (cwds if kind == b"C" else prompts)[name] = decoded
    here = _local_session_ids()
    records = SessionRecords()
    sessions = []
    for name, (size, mtime) in files.items():
        project_dir, _, file_name = name.removeprefix("./").partition("/")
        match = _SESSION_FILE.fullmatch(file_name)
        if not match or not _PROJECT_NAME.fullmatch(project_dir):
            continue  # not what the CLI writes
        sid = match.group(1)
        cwd = cwds.get(name)
        if cwd is not None and (not cwd.startswith("/") or "\0" in cwd):
            cwd = None
        try:
            known = records.get(sid)
        except ExecutorError:
            known = None
        sessions.append(
            HostSession(
                host=host,
                session_id=sid,
                project_dir=project_dir,
                cwd=cwd,
                size=size,
                modified=dt.datetime.fromtimestamp(mtime, dt.timezone.utc),
                first_prompt=" ".join(prompts.get(name, "").split())[:_PROMPT_CHARS],
                here=sid in here,
                recorded_on=known.executor if known is not None else None,
            )
        )
    sessions.sort(key=lambda s: s.modified, reverse=True)
    return sessions[:limit]


def _json_string(text: str) -> str | None:
    """A JSON string literal's value; one cut short (a long prompt) is closed first."""
    for attempt in (text, text.rstrip("\\") + '"'):
        try:
            value = json.loads(attempt)
        except ValueError:
            continue
        return value if isinstance(value, str) else None
    return None
