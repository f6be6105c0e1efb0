"""A second strategy: rsync into a staging area the library owns, decide in Python.

``RsyncSessionSync`` moves bytes with rsync and makes every decision itself,
exactly as :class:`~remote_executors.sync.TailSessionSync` does; rsync is
only a transfer engine and never decides what may be overwritten.

Pull
    rsync copies the session's files (``<sid>.jsonl`` and ``<sid>/**``, or
    every session of the project; never hidden files or conflict copies) from
    the executor's ``<config>/projects/<name>/`` into a fresh directory beside
    the previous snapshot, which is each file's basis for rsync's delta
    algorithm (``--link-dest``; the first snapshot is a copy of the local
    files). The new snapshot then replaces the old one. Because each snapshot
    starts empty, it holds exactly the files the remote holds now, without
    ``--delete``. The staging copies play the remote's part in the same
    two-step decision TailSessionSync makes (a window before the local end and
    the first bytes first, the whole file when they do not prove the local
    copy a prefix), through the shared
    :func:`~remote_executors.sync._reconcile.reconcile`.
Push
    A pull first (so the decision is made on what the remote holds now), then
    the files decided PUSH are sent in one rsync run into a hidden temp dir
    inside the remote project dir, using each remote file as the delta basis
    (``--copy-dest=..``). A small script run through ``Executor.run``
    (``rsync_install.sh``) renames each complete copy over its file only if
    that file still has the size the decision was made on. rsync replaces
    whole files, so a file is only sent if the local copy holds every byte of
    the remote one, a trailing partial line included.

Cost: rsync reads whole files on both sides and writes a whole new staging
copy, so a sync costs time in proportion to the transcript's size (about
0.13 s for 1 KB appended to 50 MB on loopback, 2.6 times the 50 KB figure;
``bench/bench_sync_strategies.py``); TailSessionSync's pull costs the new bytes.

Transport: for an ``SSHExecutor`` (OpenSSH backend), rsync's ``-e`` is the
executor's own ssh command line with its ControlPath, so rsync rides the
executor's master connection; for a ``LocalExecutor`` both paths are local.
``-s`` (secluded args) sends file names and options over rsync's protocol, so
the remote command line is a fixed ``rsync --server ...`` that no login
shell (sh, bash, zsh, fish, tcsh) can misread, and no user data is on it.
Both rsyncs must be GNU rsync 3.2.4 or newer; that is checked once per
executor, with the remote one checked exactly where it will be run (its
absolute path is passed as ``--rsync-path``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import re
import secrets
import shutil
import signal
import subprocess
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs

from remote_executors.errors import (
    CommandTimeout,
    SyncDiskFull,
    SyncError,
    SyncPermissionDenied,
    SyncTooLarge,
    SyncToolMissing,
)
from remote_executors.executors.base import (
    CommandResult,
    Executor,
    rsync_shell_of,
    shares_local_filesystem,
)
from remote_executors.sync._blob import Blob
from remote_executors.sync._decide import Kind
from remote_executors.sync._lock import session_lock
from remote_executors.sync._reconcile import (
    WINDOW,
    RemoteCopy,
    Request,
    changed_meanwhile,
    file_size,
    in_step,
    is_session_file,
    local_error,
    local_files,
    pread,
    prefixes,
    reconcile,
    tail_offset,
    too_large,
)
from remote_executors.sync._state import SyncState, load_state, save_state
from remote_executors.sync._sweep import Sweeper
from remote_executors.sync._tail import _check, _side, lock_path, raise_conflicts
from remote_executors.sync.base import (
    MAX_FILE_BYTES,
    MAX_SESSION_BYTES,
    FileSync,
    Limits,
    SessionPaths,
    SyncReport,
)

__all__ = [
    "CVE_WARNING",
    "MIN_VERSION",
    "SAFE_VERSION",
    "RsyncSessionSync",
    "RsyncVersion",
    "parse_rsync_version",
    "pull_argv",
    "push_argv",
    "rsh_option",
    "staging_dir",
]

#: The oldest GNU rsync accepted: 3.2.4 changed how arguments are protected
#: from the remote shell (and older ones have known protocol CVEs).
MIN_VERSION = (3, 2, 4)
#: The first release without CVE-2024-12086/12087/12088, through which the
#: other side of a transfer (for a pull: the remote) can read and write files
#: on this machine. Older releases are used with a warning: distributions
#: have patched their builds without changing the version rsync reports.
SAFE_VERSION = (3, 4, 0)
CVE_WARNING = (
    "rsync {where} ({path}) is {version}, older than 3.4.0: unless your distribution "
    "patched it (check its security advisories, e.g. `dpkg -l rsync` on Debian: "
    "3.2.7-1+deb12u2 or later), a malicious rsync on the remote can read and write "
    "files on this machine through it (CVE-2024-12086, -12087, -12088). Upgrade rsync "
    "to 3.4.0 or newer, or use the default TailSessionSync, which needs no rsync."
)

log = logging.getLogger("remote_executors.sync")

_INSTALL = resources.files(__package__).joinpath("rsync_install.sh").read_text("utf-8")

# Runs through Executor.run on the executor's machine: where its Claude config
# is by default, and which rsync a command there finds (or the one given).
_PROBE = r"""
printf 'RX-CONFIG %s\n' "${CLAUDE_CONFIG_DIR:-$HOME/.claude}"
if [ -n "$1" ]; then rx_r=$1; else rx_r=$(command -v rsync 2>/dev/null) || rx_r=; fi
case $rx_r in
  /*) ;;
  *) printf 'RX-NONE\n'; exit 0 ;;
esac
printf 'RX-PATH %s\n' "$rx_r"
rx_v=$("$rx_r" --version 2>&1 </dev/null)
printf 'RX-STATUS %s\n%s\n' "$?" "$rx_v"
"""

_FIX = (
    "Install GNU rsync {min} or newer {where} (e.g. `apt install rsync`, or "
    "`brew install rsync` on macOS){extra}, or use the default TailSessionSync, "
    "which needs no rsync."
)
_MIN_TEXT = ".".join(map(str, MIN_VERSION))

# Host aliases rsync can take as the machine of "machine:path" and hand to ssh
# as they are: no ":" (rsync would split there), no leading "-" on the user or
# the host (ssh would read an option).
_MACHINE = re.compile(r"(?:[A-Za-z0-9_.%+~][A-Za-z0-9_.%+~-]*@)?[A-Za-z0-9_.%+~][A-Za-z0-9_.%+~-]*")
# An absolute path every login shell (sh, bash, zsh, fish, tcsh) reads as one word.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9_./+=,@%:-]*")
_ERROR_LINE = re.compile(r"^rsync: \[(?P<role>[A-Za-z]+)\] (?P<what>.*?)(?: \((?P<errno>\d+)\))?$")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')

# errno values (the same numbers on Linux, the BSDs and macOS, except EDQUOT).
_ENOENT, _ENOTDIR = 2, 20
_PERM_ERRNOS = frozenset({1, 13, 30})  # EPERM, EACCES, EROFS
_FULL_ERRNOS = frozenset({28, 122, 69})  # ENOSPC, EDQUOT (Linux), EDQUOT (BSD, macOS)
_VANISHED = 24  # rsync: "some files vanished before they could be transferred"
_PARTIAL = 23  # rsync: "some files/attrs were not transferred"
_STDERR_KEPT = 64 << 10
_STDOUT_KEPT = 1 << 20
_OVER_MAX = " is over max-size"


# -- versions ---------------------------------------------------------------


@attrs.frozen
class RsyncVersion:
    """What ``rsync --version`` said."""

    first_line: str
    flavor: Literal["gnu", "openrsync", "unknown"]
    version: tuple[int, int, int] | None = None
    suffix: str = ""
    """What follows the number (``pre1``, ``dev``), empty for a release."""

    @property
    def before_cve_fixes(self) -> bool:
        """GNU rsync older than :data:`SAFE_VERSION` (may lack the 2025 CVE fixes)."""
        return self.flavor == "gnu" and self.version is not None and self.version < SAFE_VERSION

    @property
    def supported(self) -> bool:
        """GNU rsync at or after :data:`MIN_VERSION` (pre-releases of it are not)."""
        if self.flavor != "gnu" or self.version is None:
            return False
        if self.version != MIN_VERSION:
            return self.version > MIN_VERSION
        return not self.suffix.startswith(("pre", "dev"))


_GNU_VERSION = re.compile(r"\brsync\s+version:?\s+v?(\d+)\.(\d+)\.(\d+)(\S*)")


def parse_rsync_version(text: str) -> RsyncVersion:
    """Parse ``rsync --version`` output (GNU rsync, macOS openrsync or anything else)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if "openrsync" in text.lower():
        return RsyncVersion(first, "openrsync")
    for line in lines[:3]:
        match = _GNU_VERSION.search(line)
        if match:
            major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
            return RsyncVersion(first, "gnu", (major, minor, patch), match.group(4))
    return RsyncVersion(first, "unknown")


def _tool_missing(
    host: str, side: str, problem: str, *, detail: str = "", remote: bool
) -> SyncToolMissing:
    if remote:
        where = f"on {host}"
        extra = (
            ", or pass RsyncSessionSync(remote_rsync='/path/to/rsync') if it is not on "
            "the PATH an SSH command gets there"
        )
    else:
        where = "here"
        extra = " and put it first on PATH, or pass RsyncSessionSync(rsync='/path/to/rsync')"
    fix = _FIX.format(min=_MIN_TEXT, where=where, extra=extra)
    return SyncToolMissing(f"{problem} {fix}", host=host, side=side, detail=detail)


def _version_problem(version: RsyncVersion, path: str, where: str) -> str | None:
    """Why ``version`` is not usable, or None."""
    if version.supported:
        return None
    found = version.first_line or "(nothing)"
    if version.flavor == "openrsync":
        return (
            f"rsync {where} ({path}) is openrsync, macOS's own rsync ({found!r}), which "
            "RsyncSessionSync does not support."
        )
    if version.flavor == "gnu":
        return (
            f"rsync {where} ({path}) is too old: {found!r}. RsyncSessionSync needs GNU "
            f"rsync {_MIN_TEXT} or newer (argument protection changed in 3.2.4)."
        )
    return f"rsync {where} ({path}) did not say which version it is: {found!r}."


# -- argv -------------------------------------------------------------------


def rsh_option(argv: Sequence[str]) -> str:
    """``argv`` as one ``-e`` value: rsync splits it on spaces, honouring quotes.

    Every word is single-quoted; rsync reads a doubled quote inside quotes as
    one literal quote. No shell is involved, so nothing else is special.
    """
    words = []
    for arg in argv:
        if any(c in arg for c in "\x00\n\r"):
            raise ValueError(f"cannot pass {arg!r} through rsync -e")
        words.append("'" + arg.replace("'", "''") + "'")
    return " ".join(words)


def _remote_word(path: str, host: str) -> str:
    """``path`` as one word for the remote login shell (``--rsync-path`` is not escaped)."""
    if _PLAIN_PATH.fullmatch(path):
        return path
    if any(c in path for c in "'\\!\x00\n\r") or not path.startswith("/"):
        raise _tool_missing(
            host,
            host,
            f"rsync on {host} is at {path!r}, which cannot be passed to its login shell safely.",
            remote=True,
        )
    return f"'{path}'"


def _transport(rsh: Sequence[str] | None, remote_rsync: str | None, host: str) -> list[str]:
    if rsh is None:
        return []
    argv = ["-e", rsh_option(rsh)]
    if remote_rsync is not None:
        argv.append(f"--rsync-path={_remote_word(remote_rsync, host)}")
    return argv


def _over_max_size(stdout: str) -> list[str]:
    """The files ``--info=skip1`` said it left out for ``--max-size``."""
    names = []
    for line in stdout.splitlines():
        if line.endswith(_OVER_MAX):
            names.append(_unescape(line[: -len(_OVER_MAX)]))
    return names


def _unescape(name: str) -> str:
    """rsync prints unprintable bytes of a name as ``\\#ooo`` (octal)."""
    raw = name.encode("utf-8", "surrogateescape")
    raw = re.sub(rb"\\#([0-7]{3})", lambda m: bytes([int(m[1], 8)]), raw)
    return raw.decode("utf-8", "surrogateescape")


def _filters(session_id: str | None) -> list[str]:
    # First match wins. Hidden names (temp files, .rx-push dirs) and conflict
    # copies never travel; is_session_file() filters the rest exactly.
    rules = ["- .*", "- *.conflict-*"]
    if session_id is None:
        rules += ["+ /*.jsonl", "+ /*-*-*-*-*/***"]
    else:
        rules += [f"+ /{session_id}.jsonl", f"+ /{session_id}/***"]
    rules.append("- *")
    return [f"--filter={rule}" for rule in rules]


def pull_argv(
    rsync: str,
    *,
    source: str,
    dest: str,
    session_id: str | None,
    link_dest: str | None = None,
    rsh: Sequence[str] | None = None,
    remote_rsync: str | None = None,
    host: str = "local",
    max_size: int | None = None,
) -> list[str]:
    """rsync's argv for a pull of ``source`` (``machine:dir/`` or a local dir) into ``dest``.

    Whether a file travels is never decided on mtimes (rsync's default quick
    check would skip a diverged copy of the same size and mtime, and leave a
    stale staging copy to decide on). For one session, ``--ignore-times``:
    its transcript changes on nearly every pull (each turn), so every file
    goes straight to the delta pass against the previous snapshot, without
    the whole-file checksum both sides would otherwise compute first (about
    half the time for a 50 MB transcript). For a whole project, whose
    sessions are mostly unchanged, ``--checksum``: an unchanged file costs a
    hash and becomes a hard link to the previous snapshot (``--link-dest``).
    No ``--times``, ``--perms`` or ``--links``: the staging copy only needs
    the bytes (symlinks and special files are skipped). ``--chmod`` keeps
    the staging copies private. ``max_size``: larger files are not
    transferred, and each is named on stdout (``--info=skip1``).
    """
    compare = "--checksum" if session_id is None else "--ignore-times"
    argv = [rsync, "--recursive", compare, "-s", "--chmod=D700,F600"]
    if max_size is not None:
        argv += [f"--max-size={max_size}", "--info=skip1"]
    argv += _filters(session_id)
    if link_dest is not None:
        argv.append(f"--link-dest={link_dest}")
    argv += _transport(rsh, remote_rsync, host)
    return [*argv, "--", source, dest]


def push_argv(
    rsync: str,
    *,
    source: str,
    dest: str,
    rsh: Sequence[str] | None = None,
    remote_rsync: str | None = None,
    host: str = "local",
) -> list[str]:
    """rsync's argv sending the NUL-separated relative paths on stdin from ``source`` to ``dest``.

    ``dest`` is a fresh hidden dir inside the remote project dir;
    ``--copy-dest=..`` makes each remote file the delta basis of its new
    copy. ``--ignore-times``: every file listed is known to differ, and rsync
    must never take a basis whose size and mtime happen to match for "the
    same". ``--files-from`` with ``--from0`` keeps the names off every command
    line and out of option parsing.
    """
    argv = [rsync, "--ignore-times", "-s", "--files-from=-", "--from0", "--copy-dest=.."]
    argv += ["--chmod=D700,F600", *_transport(rsh, remote_rsync, host)]
    return [*argv, "--", source, dest]


# -- staging ----------------------------------------------------------------


def staging_dir(paths: SessionPaths, host: str) -> Path:
    """Where pulls of ``paths`` from ``host`` keep their snapshot (keyed like the lock)."""
    from remote_executors._store_file import data_dir

    key = lock_path(paths).name.removesuffix(".lock")
    return data_dir() / "staging" / key / _side(host)


def _prepare_staging(root: Path, paths: SessionPaths) -> Path:
    """Make ``root`` (0700), tidy leftovers of an interrupted pull; return a fresh incoming dir.

    With no snapshot yet (first sync with this host, or a new data dir), the
    local session files are copied in to serve as the basis: rsync then moves
    only what the local side lacks, as later syncs do. They are copies, never
    links: the basis must not change when the local files grow.
    """
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    current = root / "current"
    if not current.is_dir():
        # A pull stopped between its two renames: the old snapshot is still a basis.
        for old in sorted(root.glob("old-*")):
            old.rename(current)
            break
    for leftover in [*root.glob("incoming-*"), *root.glob("old-*")]:
        shutil.rmtree(leftover, ignore_errors=True)
    if not current.is_dir():
        seed = root / f"incoming-{secrets.token_hex(6)}"
        seed.mkdir(mode=0o700)
        for rel in local_files(paths.local_dir, paths.session_id):
            target = seed / rel
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):  # gone meanwhile: no basis for it
                shutil.copyfile(paths.local_dir / rel, target)
        seed.rename(current)
    incoming = root / f"incoming-{secrets.token_hex(6)}"
    incoming.mkdir(mode=0o700)
    return incoming


def _install_snapshot(root: Path, incoming: Path) -> Path:
    current = root / "current"
    old = None
    if current.exists():
        old = root / f"old-{secrets.token_hex(6)}"
        current.rename(old)
    incoming.rename(current)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return current


# -- rsync's diagnostics ----------------------------------------------------


@attrs.frozen
class _Problem:
    role: str
    what: str
    errno: int | None

    @property
    def path(self) -> str:
        match = _QUOTED.search(self.what)
        return match.group(1) if match else ""

    def on_sender(self) -> bool:
        return self.role.lower() == "sender"


def _problems(stderr: str) -> list[_Problem]:
    found = []
    for line in stderr.splitlines():
        match = _ERROR_LINE.match(line.strip())
        if match:
            number = match.group("errno")
            found.append(
                _Problem(match.group("role"), match.group("what"), int(number) if number else None)
            )
    return found


def _is_full(p: _Problem) -> bool:
    return p.errno in _FULL_ERRNOS or "No space left" in p.what or "quota" in p.what


def _is_denied(p: _Problem) -> bool:
    return p.errno in _PERM_ERRNOS or "Permission denied" in p.what


@attrs.frozen
class _Remote:
    """What the probe found on the executor's machine (cached per executor)."""

    config: str
    rsync: str
    version: RsyncVersion


@attrs.frozen
class _Pulled:
    """A pull's outcome, and what its decisions were made on."""

    files: tuple[FileSync, ...]
    sizes: dict[str, int]
    """Each remote file's size (its staging copy's)."""
    snapshot: Path
    """The staging snapshot of the remote's files."""
    remote_dir: bool
    """Whether the remote project dir exists."""


@attrs.frozen
class _Route:
    """How to reach one executor's project dir."""

    host: str
    base: str
    """The project dir there: absolute, or ``./``-relative to the login dir."""
    rsh: tuple[str, ...] | None = None
    """rsync's ``-e`` argv; None: the executor's machine is this one."""
    remote_rsync: str | None = None

    def spec(self, path: str) -> str:
        return path if self.rsh is None else f"{self.host}:{path}"

    def side(self, sending: bool, direction: str) -> str:
        """The side (``"local"`` or the host) where an rsync role runs."""
        remote = sending if direction == "pull" else not sending
        return self.host if remote else "local"


class RsyncSessionSync:
    """Sync with rsync over the executor's own connection; decide in Python.

    Needs GNU rsync 3.2.4 or newer here and on the executor's machine, and an
    ``SSHExecutor`` (OpenSSH backend) or a ``LocalExecutor``. ``rsync`` is the
    local binary (a name looked up on PATH, or a path); ``remote_rsync`` an
    absolute path to use on the executor's machine instead of the ``rsync`` an
    SSH command finds there. ``timeout`` bounds each rsync run and remote
    command; ``lock_timeout`` how long a sync waits for another sync of the
    same session to finish.
    """

    def __init__(
        self,
        *,
        timeout: float = 120.0,
        lock_timeout: float = 60.0,
        rsync: str = "rsync",
        remote_rsync: str | None = None,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_session_bytes: int = MAX_SESSION_BYTES,
    ) -> None:
        if not rsync or rsync.startswith("-") or any(c in rsync for c in "\x00\n\r"):
            raise ValueError(f"rsync must be a command name or a path, got {rsync!r}")
        if remote_rsync is not None and (
            not remote_rsync.startswith("/") or any(c in remote_rsync for c in "\x00\n\r")
        ):
            raise ValueError(f"remote_rsync must be an absolute path, got {remote_rsync!r}")
        self.timeout = timeout
        self.lock_timeout = lock_timeout
        self.rsync = rsync
        self.remote_rsync = remote_rsync
        self.limits = Limits(max_file_bytes=max_file_bytes, max_session_bytes=max_session_bytes)
        self._local_ok = False
        self._remotes: weakref.WeakKeyDictionary[Executor, _Remote] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"RsyncSessionSync(timeout={self.timeout}, rsync={self.rsync!r})"

    async def pull(self, executor: Executor, paths: SessionPaths) -> SyncReport:
        started = time.monotonic()
        async with session_lock(lock_path(paths), timeout=self.lock_timeout), self._tools(executor):
            route = await self._route(executor, paths)
            pulled = await self._pull(route, paths)
        report = SyncReport("pull", executor.name, paths, pulled.files, time.monotonic() - started)
        raise_conflicts(report)
        return report

    async def push(self, executor: Executor, paths: SessionPaths) -> SyncReport:
        started = time.monotonic()
        async with session_lock(lock_path(paths), timeout=self.lock_timeout), self._tools(executor):
            route = await self._route(executor, paths)
            pulled = await self._pull(route, paths)
            wanted: dict[str, int | None] = {}
            kept: list[str] = []
            for f in pulled.files:
                if f.kind is not Kind.PUSH:
                    continue
                size = pulled.sizes.get(f.path)
                if size is None or self._extends(paths, pulled.snapshot, f.path, size, route.host):
                    wanted[f.path] = size
                else:
                    kept.append(f.path)
            stored: dict[str, FileSync] = {}
            if wanted:
                stored = await self._send(executor, route, paths, wanted, pulled.remote_dir)
        done = tuple(stored.get(f.path, f) for f in pulled.files)
        report = SyncReport("push", executor.name, paths, done, time.monotonic() - started)
        raise_conflicts(report)
        if kept:
            listing = ", ".join(f"{paths.remote_dir}/{rel}" for rel in kept)
            raise SyncError(
                f"Not pushed to {executor.name}: {listing} ends with a partial line (its "
                "writer stopped half-way through a line) that the local copy does not "
                "have, and replacing the file would drop those bytes. Nothing was "
                "overwritten; once that line is complete (or the file is set aside on "
                f"{executor.name}), sync again.",
                host=executor.name,
            )
        return report

    # -- tools and route ----------------------------------------------------

    @contextlib.asynccontextmanager
    async def _tools(self, executor: Executor) -> AsyncIterator[None]:
        """Forget what was found about the tools when one turns out missing after all."""
        try:
            yield
        except SyncToolMissing:
            self._local_ok = False
            with contextlib.suppress(TypeError):
                self._remotes.pop(executor, None)
            raise

    async def _route(self, executor: Executor, paths: SessionPaths) -> _Route:
        await self._check_local()
        host = executor.name
        rsh_of = rsync_shell_of(executor)
        if rsh_of is None and shares_local_filesystem(executor):
            # What ${CLAUDE_CONFIG_DIR:-$HOME/.claude} is for a command run here.
            config = (
                paths.remote_config_dir
                or os.environ.get("CLAUDE_CONFIG_DIR")
                or os.environ.get("HOME", "") + "/.claude"
            )
            base = os.path.abspath(os.path.join(config, "projects", paths.remote_project))
            return _Route(host, base)
        rsh = await rsh_of() if rsh_of is not None else None
        if rsh is None:
            raise SyncToolMissing(
                f"RsyncSessionSync needs an SSHExecutor (OpenSSH backend), a LocalExecutor "
                f"or another executor with rsync_rsh(); {executor!r} is none of these, so "
                f"rsync cannot reach {host}. "
                "Use the default TailSessionSync, which works with any executor.",
                host=host,
            )
        if not _MACHINE.fullmatch(host):
            raise SyncError(
                f"RsyncSessionSync cannot hand the SSH destination {host!r} to rsync "
                "(rsync splits it at ':' and passes user and host to ssh as words). "
                "Use a Host alias from your ssh config, or the default TailSessionSync.",
                host=host,
            )
        remote = await self._probe(executor)
        config = paths.remote_config_dir or remote.config
        base = posixpath.join(config, "projects", paths.remote_project)
        if not base.startswith("/"):
            base = "./" + base  # relative to the login dir, as for the executor's commands
        return _Route(host, base, tuple(rsh), remote.rsync)

    async def _check_local(self) -> None:
        if self._local_ok:
            return
        path = shutil.which(self.rsync) or self.rsync
        try:
            result = await anyio.run_process(
                [path, "--version"], check=False, env=_rsync_env(), input=b""
            )
        except OSError as exc:
            raise _tool_missing(
                "local",
                "local",
                f"rsync is missing here: {self.rsync!r} could not be run ({exc.strerror}).",
                remote=False,
            ) from exc
        text = (result.stdout + result.stderr).decode("utf-8", "replace")
        if result.returncode != 0:
            raise _tool_missing(
                "local",
                "local",
                f"rsync here ({path}) could not be run: "
                f"{text.strip().splitlines()[0] if text.strip() else result.returncode!r}.",
                detail=text,
                remote=False,
            )
        version = parse_rsync_version(text)
        problem = _version_problem(version, path, "here")
        if problem is not None:
            raise _tool_missing("local", "local", problem, detail=text, remote=False)
        if version.before_cve_fixes:
            log.warning(CVE_WARNING.format(where="here", path=path, version=version.first_line))
        self._local_ok = True

    async def _probe(self, executor: Executor) -> _Remote:
        try:
            cached = self._remotes.get(executor)
        except TypeError:  # not weak-referenceable (or hashable): probe every time
            cached = None
        if cached is not None:
            return cached
        host = executor.name
        result = await executor.run(
            ["/bin/sh", "-c", _PROBE, "rx-rsync-probe", self.remote_rsync or ""],
            timeout=min(self.timeout, 60.0),
        )
        out = result.stdout.decode("utf-8", "surrogateescape")
        lines = out.split("\n")
        if not result.ok or not lines[0].startswith("RX-CONFIG "):
            raise SyncError(
                f"Could not look for rsync on {host} (exit {result.returncode}). Nothing was "
                "changed; sync again.",
                host=host,
                detail=result.stderr.decode("utf-8", "replace"),
            )
        config = lines[0][len("RX-CONFIG ") :]
        looked = (
            f"{self.remote_rsync} does not exist"
            if self.remote_rsync
            else "`command -v rsync` found nothing on the PATH an SSH command gets"
        )
        if len(lines) < 2 or not lines[1].startswith("RX-PATH "):
            raise _tool_missing(host, host, f"rsync is missing on {host}: {looked}.", remote=True)
        path = lines[1][len("RX-PATH ") :]
        status = lines[2][len("RX-STATUS ") :] if len(lines) > 2 else ""
        text = "\n".join(lines[3:]).strip()
        if status != "0":
            first = text.splitlines()[0] if text else f"exit {status}"
            raise _tool_missing(
                host,
                host,
                f"rsync on {host} ({path}) could not be run by the login user: {first}.",
                detail=text,
                remote=True,
            )
        version = parse_rsync_version(text)
        problem = _version_problem(version, path, f"on {host}")
        if problem is not None:
            raise _tool_missing(host, host, problem, detail=text, remote=True)
        _remote_word(path, host)  # refuse now a path the remote shell would split
        remote = _Remote(config, path, version)
        with contextlib.suppress(TypeError):
            self._remotes[executor] = remote
        return remote

    # -- running rsync ------------------------------------------------------

    async def _rsync(
        self, argv: list[str], *, input: bytes | None, host: str
    ) -> tuple[int, str, str]:
        """Run rsync here; return its exit status, stdout and stderr (killed with its
        ssh on timeout). What it prints is kept bounded: the last 64 KiB of stderr,
        the first MiB of stdout (a remote rsync can print without end)."""
        try:
            process = await anyio.open_process(
                argv,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_rsync_env(),
                start_new_session=True,  # its own group: a timeout stops ssh too
            )
        except OSError as exc:
            self._local_ok = False
            raise _tool_missing(
                "local",
                "local",
                f"rsync is missing here: {argv[0]!r} could not be run ({exc.strerror}).",
                remote=False,
            ) from exc
        err = bytearray()
        out = bytearray()

        async def drain(stream: Any, sink: bytearray, keep: int, tail: bool) -> None:
            with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError):
                while True:
                    sink += await stream.receive()
                    if len(sink) > keep and tail:
                        del sink[: len(sink) - keep]
                    elif len(sink) > keep:
                        del sink[keep:]

        try:
            with anyio.fail_after(self.timeout):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(drain, process.stderr, err, _STDERR_KEPT, True)
                    tg.start_soon(drain, process.stdout, out, _STDOUT_KEPT, False)
                    if process.stdin is not None:
                        with contextlib.suppress(
                            anyio.BrokenResourceError, anyio.ClosedResourceError
                        ):
                            await process.stdin.send(input or b"")
                        await process.stdin.aclose()
                code = await process.wait()
        except BaseException as exc:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with anyio.CancelScope(shield=True):
                await process.wait()
                await process.aclose()
            if isinstance(exc, TimeoutError):
                raise CommandTimeout(
                    f"rsync with {host} did not finish within {self.timeout:g} s and was "
                    "stopped. Nothing was lost; sync again (or use a larger timeout).",
                    host=host,
                ) from None
            raise
        await process.aclose()
        return code, out.decode("utf-8", "surrogateescape"), err.decode("utf-8", "replace")

    def _failure(
        self, code: int, stderr: str, route: _Route, paths: SessionPaths, direction: str
    ) -> SyncError:
        """The typed error for a failed rsync run."""
        host = route.host
        problems = _problems(stderr)
        detail = stderr.strip()
        for p in problems:
            if _is_full(p):
                side = route.side(p.on_sender(), direction)
                where = "local" if side == "local" else host
                return SyncDiskFull(
                    f"No space left on {where} to store session files "
                    f"({p.path or paths.remote_dir}) while syncing with {host}: free some "
                    "disk space there, then sync again (nothing was lost).",
                    host=host,
                    side=side,
                    detail=detail,
                )
        for p in problems:
            if _is_denied(p):
                side = route.side(p.on_sender(), direction)
                where = "local" if side == "local" else host
                verb = "read" if p.on_sender() else "write"
                return SyncPermissionDenied(
                    f"Cannot {verb} {p.path or paths.remote_dir} on {where}: permission "
                    "denied. Make it belong to (and be writable by) the user the sync runs "
                    "as there, then sync again (nothing was lost).",
                    host=host,
                    side=side,
                    detail=detail,
                )
        if route.rsh is not None and "is your shell clean" in stderr:
            return SyncError(
                f"rsync could not talk to {host}: the login shell there prints text for "
                "ssh commands (an echo in ~/.bashrc, ~/.zshenv, config.fish...), which "
                "rsync reads as its own protocol. Make that output interactive-only (e.g. "
                "in bash: [[ $- == *i* ]] || return before it), or use the default "
                "TailSessionSync, which ignores it. Nothing was changed.",
                host=host,
                detail=detail,
            )
        if route.rsh is not None and (
            "command not found" in stderr
            or (route.remote_rsync is not None and f"{route.remote_rsync}: not found" in stderr)
        ):
            return _tool_missing(
                host,
                host,
                f"rsync on {host} ({route.remote_rsync}) could not be started: "
                f"{detail.splitlines()[0] if detail else code}.",
                detail=detail,
                remote=True,
            )
        return SyncError(
            f"rsync could not {direction} session files "
            f"{'from' if direction == 'pull' else 'to'} {paths.remote_dir} on {host} "
            f"(exit {code}). Nothing was lost; sync again once fixed.",
            host=host,
            detail=detail,
        )

    # -- pull ---------------------------------------------------------------

    async def _pull(self, route: _Route, paths: SessionPaths) -> _Pulled:
        """Fast-forward local files; return every file's outcome and what it was decided on."""
        host = route.host
        mine = local_files(paths.local_dir, paths.session_id, sweep=Sweeper())
        snapshot, errors, remote_dir = await self._fetch(route, paths)
        theirs = local_files(snapshot, paths.session_id)
        staged = {rel: (snapshot / rel).stat().st_size for rel in theirs}
        request = Request("all", {}, self.limits)
        admitted, too_big = request.admit(staged, host, paths.remote_dir)
        errors += too_big
        state = load_state(paths, host)
        results: dict[str, FileSync] = {}
        sizes: dict[str, int] = {}
        verified = state.verified()  # once: it merges every settled file's entry
        for rel in admitted:
            outcome, sizes[rel] = self._reconcile(
                paths, snapshot, rel, host, state.settled, verified
            )
            results[rel] = outcome
        refused = {e.path for e in errors if isinstance(e, SyncTooLarge)}
        for rel in mine:
            if rel not in results and rel not in refused:
                results[rel] = FileSync(rel, Kind.PUSH)
        settled = in_step(paths.local_dir, results, sizes)
        unsettled = set(results) | {e.path for e in errors if isinstance(e, SyncTooLarge)}
        unsettled -= set(settled)
        main = {f"{paths.session_id}.jsonl"}
        prefix = prefixes(paths.local_dir, results, main | unsettled, verified)
        save_state(
            paths,
            host,
            SyncState(settled, frozenset(unsettled), prefix=prefix),
            everything=True,
        )
        if errors:
            raise errors[0]
        files = tuple(results[rel] for rel in sorted(results))
        return _Pulled(files, sizes, snapshot, remote_dir)

    async def _fetch(
        self, route: _Route, paths: SessionPaths
    ) -> tuple[Path, list[SyncError], bool]:
        """rsync the remote files into a new snapshot; return it, deferred errors (files
        unreadable or over the size limit), dir found."""
        host = route.host
        root = staging_dir(paths, host)
        try:
            incoming = _prepare_staging(root, paths)
        except OSError as exc:
            raise local_error(exc, host=host, what="the staging area") from exc
        current = root / "current"
        argv = pull_argv(
            self.rsync,
            source=route.spec(route.base + "/"),
            dest=os.fspath(incoming) + "/",
            session_id=paths.session_id,
            link_dest="../current" if current.is_dir() else None,
            rsh=route.rsh,
            remote_rsync=route.remote_rsync,
            host=host,
            max_size=self.limits.max_file_bytes,
        )
        try:
            code, stdout, stderr = await self._rsync(argv, input=None, host=host)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        deferred: list[SyncError] = [
            too_large(rel, None, "file", self.limits, host, paths.remote_dir)
            for rel in _over_max_size(stdout)
            if is_session_file(rel, paths.session_id)
        ]
        remote_dir = True
        if code not in (0, _VANISHED):
            problems = _problems(stderr)
            senders = [p for p in problems if p.on_sender()]
            missing_root = code == _PARTIAL and any(
                p.errno in (_ENOENT, _ENOTDIR) and p.what.startswith("change_dir") for p in senders
            )
            unreadable = [p for p in senders if _is_denied(p)]
            if missing_root:
                remote_dir = False  # nothing there yet: an empty snapshot
            elif code == _PARTIAL and unreadable and len(unreadable) == len(problems):
                deferred += [
                    SyncPermissionDenied(
                        f"Cannot read {p.path or paths.remote_dir} on {host}: permission "
                        "denied. Make it readable by the SSH login user, then sync again.",
                        host=host,
                        detail=stderr.strip(),
                    )
                    for p in unreadable
                ]
            else:
                shutil.rmtree(incoming, ignore_errors=True)
                raise self._failure(code, stderr, route, paths, "pull")
        try:
            return _install_snapshot(root, incoming), deferred, remote_dir
        except OSError as exc:
            shutil.rmtree(incoming, ignore_errors=True)
            raise local_error(exc, host=host, what="the staging area") from exc

    def _reconcile(
        self,
        paths: SessionPaths,
        snapshot: Path,
        rel: str,
        host: str,
        settled: Mapping[str, int] | None = None,
        verified: Mapping[str, int] | None = None,
    ) -> tuple[FileSync, int]:
        """Decide ``rel`` as TailSessionSync would, with the staging copy as the remote's
        (read from disk a chunk at a time, never whole into memory)."""
        staged = snapshot / rel
        try:
            size = staged.stat().st_size
            local_size = file_size(paths.local_dir / rel)
            if "/" in rel and local_size == size and (settled or {}).get(rel) == size:
                # In step at this size last time, on both sides (see sync._state).
                return FileSync(rel, Kind.SAME), size
            # First the bytes from a window before the local end and the first
            # bytes (TailSessionSync's first round trip), then, if they do not
            # prove the local copy a prefix, the whole file (its second).
            offset = tail_offset(local_size, (verified or {}).get(rel))
            if offset > size:
                offset = 0
            blob = Blob(path=staged, length=size)
            copy = RemoteCopy(size, offset, blob.slice(offset), blob.read(0, min(offset, WINDOW)))
            outcome = reconcile(paths.local_dir, rel, copy, side=_side(host))
            if outcome is None:
                whole = RemoteCopy(size, 0, blob)
                outcome = reconcile(paths.local_dir, rel, whole, side=_side(host))
        except OSError as exc:
            raise local_error(exc, host=host, what=f"session file {rel}") from exc
        if outcome is None:
            raise changed_meanwhile(paths.local_dir / rel, host)
        return outcome, size

    # -- push ---------------------------------------------------------------

    def _extends(self, paths: SessionPaths, snapshot: Path, rel: str, size: int, host: str) -> bool:
        """Whether local ``rel`` starts with all ``size`` bytes of the remote's copy.

        A PUSH decision proves that for the remote's complete lines; a partial
        last line (the remote's writer stopped mid-line) is left out of every
        decision, and replacing the file must not drop it. Only the bytes from
        the last newline on need checking.
        """
        start = size
        while start > 0:
            start = max(0, start - WINDOW)
            with contextlib.suppress(OSError):  # unreadable: compared (and reported) below
                if b"\n" in pread(snapshot / rel, start, size - start):
                    break
        try:
            theirs = pread(snapshot / rel, start, size - start)
            return pread(paths.local_dir / rel, start, size - start) == theirs
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise local_error(exc, host=host, what=f"session file {rel}") from exc

    async def _send(
        self,
        executor: Executor,
        route: _Route,
        paths: SessionPaths,
        wanted: dict[str, int | None],
        remote_dir: bool,
    ) -> dict[str, FileSync]:
        """rsync ``wanted`` (rel -> remote size decided on) into a temp dir, then install."""
        host = route.host
        if not remote_dir:
            result = await executor.run(
                ["/bin/sh", "-c", _INSTALL, "rx-sync-install", "prep", route.base],
                timeout=self.timeout,
            )
            _check(result, host, paths, "write")
        tmp = f".rx-push-{secrets.token_hex(8)}"
        argv = push_argv(
            self.rsync,
            source=os.path.abspath(paths.local_dir) + "/",
            dest=route.spec(posixpath.join(route.base, tmp) + "/"),
            rsh=route.rsh,
            remote_rsync=route.remote_rsync,
            host=host,
        )
        listing = b"".join(os.fsencode(rel) + b"\0" for rel in wanted)
        try:
            code, _, stderr = await self._rsync(argv, input=listing, host=host)
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self._install(executor, route, tmp, {})
            raise
        if code != 0:
            with contextlib.suppress(Exception):
                await self._install(executor, route, tmp, {})
            raise self._failure(code, stderr, route, paths, "push")
        result = await self._install(executor, route, tmp, wanted)
        _check(result, host, paths, "write")
        return self._installed(result.stdout, wanted, host, paths)

    async def _install(
        self, executor: Executor, route: _Route, tmp: str, wanted: dict[str, int | None]
    ) -> CommandResult:
        args = [route.base, tmp]
        for rel, size in wanted.items():
            args += [rel, str(-1 if size is None else size)]
        return await executor.run(
            ["/bin/sh", "-c", _INSTALL, "rx-sync-install", *args], timeout=self.timeout
        )

    def _installed(
        self, out: bytes, wanted: dict[str, int | None], host: str, paths: SessionPaths
    ) -> dict[str, FileSync]:
        done: dict[str, FileSync] = {}
        trouble: dict[str, str] = {}
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            word, _, rest = line.partition(" ")
            size_text, _, rel = rest.partition(" ")
            if word == "RX-OK" and rel in wanted and size_text.isdigit():
                done[rel] = FileSync(rel, Kind.PUSH, moved=int(size_text) - (wanted[rel] or 0))
            elif word == "RX-MOVED" and rel in wanted:
                trouble[rel] = f"it now has {size_text} bytes"
            elif word == "RX-LOST" and rest in wanted:
                trouble[rest] = "its new copy went missing"
            else:
                raise SyncError(
                    f"Installing pushed session files on {host} failed: unexpected output "
                    f"{line[:80]!r}. Nothing was overwritten; sync again.",
                    host=host,
                )
        for rel in wanted:
            if rel not in done and rel not in trouble:
                trouble[rel] = "no answer"
        if trouble:
            what = "; ".join(f"{paths.remote_dir}/{rel} ({why})" for rel, why in trouble.items())
            raise SyncError(
                f"Session files on {host} changed while they were being pushed: {what}. "
                "Nothing was overwritten; sync again.",
                host=host,
            )
        return done


def _rsync_env() -> dict[str, str]:
    """Our environment without RSYNC_* settings (they change how arguments are
    handled, e.g. RSYNC_OLD_ARGS) and with stable English diagnostics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RSYNC_")}
    env["LC_ALL"] = "C"
    return env
