"""Local files and directories that options name, made available where the CLI runs.

Run locally, the CLI reads a plugin directory, a settings or MCP config file,
a system prompt file, extra working directories and the project's
``.claude/`` from this machine's disk. Run on another machine it would look
there, find nothing and carry on without them. So before a remote CLI starts,
the SDK's command line is read (:mod:`._cli_argv`) and each path is dealt
with (docs/options.md has the table):

- shipped: the content goes with the job as an attachment (a private copy in
  the job's own temp directory on the host, removed when the session ends)
  and the argument becomes that copy's path. Config files that may hold
  credentials always travel this way, JSON text too, so they are on no
  command line there. Only what the option names is read, under a size cap;
  a link out of a named directory is refused rather than followed.
- mapped: ``add_dirs`` are working directories like ``cwd``: mapped with the
  same rule and required to exist on the host.
- the project's ``.claude/`` agents, skills, commands and settings that the
  host's copy of the project lacks are shipped too (agents, skills and
  commands as an extra directory the CLI loads them from, settings merged
  into the session's flag settings), so the session sees the project as it
  is here.

Anything that cannot be made available raises a typed error before anything
starts; nothing is ever dropped silently.
"""

from __future__ import annotations

import io
import json
import logging
import os
import posixpath
import stat
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ._cli_argv import PATH_FLAGS, Arg, parse
from .errors import OptionPathError, RemotePathNotFound
from .executors.base import Attachment, Executor

__all__ = ["MAX_SHIPPED_BYTES", "OPTION_OF_FLAG", "Prepared", "prepare"]

log = logging.getLogger("remote_executors.options")

#: The most bytes of local files one session start ships to the host.
MAX_SHIPPED_BYTES = 32 * 1024 * 1024

#: The ``ClaudeAgentOptions`` field behind each flag, for messages.
OPTION_OF_FLAG = {
    "--mcp-config": "mcp_servers",
    "--settings": "settings",
    "--system-prompt-file": "system_prompt",
    "--plugin-dir": "plugins",
    "--add-dir": "add_dirs",
}

#: Version-control metadata is not part of a plugin and can be large.
_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn"})
_PROJECT_DIRS = ("agents", "skills", "commands")
_PROJECT_SETTINGS = {"settings.json": "project", "settings.local.json": "local"}
_ALL_SOURCES = frozenset({"user", "project", "local"})


@attrs.frozen
class Prepared:
    """The command line to start on the host, and what goes with it."""

    args: tuple[str, ...]
    attachments: Mapping[int, Attachment]
    shipped: tuple[str, ...] = ()
    """Local paths shipped (for the log and for tests)."""


@attrs.define
class _Shipped:
    """An argument whose value becomes the path of an attachment on the host."""

    flag: str
    attachment: Attachment
    source: str  # the local path, or "<json>"


class _Budget:
    def __init__(self, host: str) -> None:
        self.host = host
        self.used = 0

    def take(self, size: int, *, option: str, path: str) -> None:
        self.used += size
        if self.used > MAX_SHIPPED_BYTES:
            raise OptionPathError(
                f"{option} names {path}, which takes the local files this session ships "
                f"to {self.host} past {MAX_SHIPPED_BYTES // (1024 * 1024)} MiB. Install "
                f"it on {self.host} and configure it there (the host's own settings), or "
                "make it smaller.",
                host=self.host,
                option=option,
                path=path,
            )


async def prepare(args: Sequence[str], *, executor: Executor, local_cwd: str) -> Prepared:
    """The SDK's CLI arguments (without the program) made ready for ``executor``'s machine."""
    host = executor.name
    budget = _Budget(host)
    items: list[Arg | _Shipped] = []
    workdirs: list[tuple[int, str]] = []  # (position in items, local path)
    for arg in parse(args):
        kind = PATH_FLAGS.get(arg.flag)
        if kind is None or arg.value is None:
            items.append(arg)
            continue
        option = OPTION_OF_FLAG[arg.flag]
        if kind == "config" and arg.value.lstrip().startswith("{"):
            data = arg.value.encode("utf-8", "surrogateescape")
            items.append(_Shipped(arg.flag, Attachment("file", data), "<json>"))
        elif kind in ("config", "file"):
            path = _local(arg.value, local_cwd)
            data = _read_file(path, budget, option=option)
            items.append(_Shipped(arg.flag, Attachment("file", data), os.fspath(path)))
        elif kind == "directory":
            path = _local(arg.value, local_cwd)
            archive = _Tree(budget, option=option)
            archive.add_dir(path, "")
            items.append(_Shipped(arg.flag, Attachment("tree", archive.close()), os.fspath(path)))
        else:  # a working directory, mapped like cwd
            workdirs.append((len(items), os.fspath(_local(arg.value, local_cwd))))
            items.append(arg)

    project = _ProjectConfig(Path(os.path.expanduser(local_cwd)), _setting_sources(items))
    if workdirs or project.candidates:
        mapped = [await executor.map_cwd(local) for _, local in workdirs]
        found = await _probe(executor, local_cwd, mapped)
        for (position, local), remote in zip(workdirs, mapped, strict=True):
            if remote in found.missing_dirs:
                raise RemotePathNotFound(
                    f"add_dirs names {local}, which is {remote} on {host}, and that "
                    f"directory doesn't exist there. Create it on {host} (e.g. clone it), "
                    "or map it to one that exists with SSHExecutor(..., path_map={local: "
                    "remote}).",
                    host=host,
                    path=remote,
                )
            original = items[position]
            assert isinstance(original, Arg)
            items[position] = attrs.evolve(original, value=remote)
        project.ship_missing(items, found, budget)

    out: list[str] = []
    attachments: dict[int, Attachment] = {}
    shipped: list[str] = []
    for item in items:
        if isinstance(item, Arg):
            out.extend(item.tokens())
            continue
        out.append(item.flag)
        attachments[len(out)] = item.attachment
        out.append(item.source)  # replaced by the copy's path on the host
        if item.source != "<json>":
            shipped.append(item.source)
    if shipped:
        log.info("shipping to %s for this session: %s", host, ", ".join(shipped))
    return Prepared(tuple(out), attachments, tuple(shipped))


def _local(value: str, local_cwd: str) -> Path:
    """A path named by an option, as the CLI would resolve it here (relative: to cwd)."""
    return Path(os.path.expanduser(local_cwd), os.path.expanduser(value))


def _read_file(path: Path, budget: _Budget, *, option: str) -> bytes:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        budget.take(info.st_size, option=option, path=os.fspath(path))
        return path.read_bytes()
    except OSError as exc:
        raise _unreadable(option, path, budget.host, exc) from exc


def _unreadable(option: str, path: Path, host: str, exc: OSError) -> OptionPathError:
    reason = "does not exist" if isinstance(exc, FileNotFoundError) else "cannot be read"
    return OptionPathError(
        f"{option} names {path}, which {reason} on this machine, so it cannot be "
        f"shipped to {host} for the session. Paths in options are local paths: fix the "
        "path, or configure it on the host itself.",
        host=host,
        option=option,
        path=os.fspath(path),
        detail=str(exc),
    )


class _Tree:
    """An uncompressed tar archive of local directories, built under the budget."""

    def __init__(self, budget: _Budget, *, option: str) -> None:
        self._budget = budget
        self._option = option
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buffer, mode="w", format=tarfile.PAX_FORMAT)

    def add_dir(self, root: Path, prefix: str) -> None:
        """Add ``root``'s contents under ``prefix`` (``""``: at the top)."""
        try:
            top = root.resolve(strict=True)  # the option names it: a link to it is fine
            if not top.is_dir():
                raise NotADirectoryError(f"{root} is not a directory")
            if prefix:
                self._add(top, prefix, top)
            for directory, dirs, files in os.walk(top):
                dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
                base = Path(directory)
                for name in [*dirs, *sorted(files)]:
                    path = base / name
                    rel = path.relative_to(top).as_posix()
                    self._add(path, posixpath.join(prefix, rel) if prefix else rel, top)
        except OSError as exc:
            raise _unreadable(self._option, root, self._budget.host, exc) from exc

    def add_file(self, path: Path, name: str) -> None:
        try:
            self._add(path.resolve(strict=True), name, path.parent)
        except OSError as exc:
            raise _unreadable(self._option, path, self._budget.host, exc) from exc

    def _add(self, path: Path, name: str, top: Path) -> None:
        info = self._tar.gettarinfo(os.fspath(path), arcname=name)
        info.uid = info.gid = 0  # nobody's names travel; the host's user owns the copy
        info.uname = info.gname = ""
        if info.issym():
            target = Path(os.path.normpath(path.parent / os.readlink(path)))
            if not (target == top or top in target.parents):
                raise self._refused(path, f"it links to {os.readlink(path)}, outside {top}")
            self._tar.addfile(info)
        elif info.isdir():
            self._tar.addfile(info)
        elif info.isfile():
            self._budget.take(info.size, option=self._option, path=os.fspath(path))
            with open(path, "rb") as data:
                self._tar.addfile(info, data)
        else:
            raise self._refused(path, "it is not a regular file, directory or link")

    def _refused(self, path: Path, why: str) -> OptionPathError:
        host = self._budget.host
        return OptionPathError(
            f"{self._option}: cannot ship {path} to {host}: {why}. Only what the option "
            "names is shipped; remove or replace it.",
            host=host,
            option=self._option,
            path=os.fspath(path),
        )

    def close(self) -> bytes:
        self._tar.close()
        return self._buffer.getvalue()


def _setting_sources(items: Sequence[Arg | _Shipped]) -> frozenset[str]:
    """The setting sources the CLI will load (its default: all of them)."""
    given = [i.value for i in items if isinstance(i, Arg) and i.flag == "--setting-sources"]
    if not given or given[-1] is None:
        return _ALL_SOURCES
    return frozenset(s.strip() for s in given[-1].split(",") if s.strip())


@attrs.frozen
class _Found:
    """What the probe saw on the host."""

    missing_dirs: frozenset[str] = frozenset()
    project_entries: frozenset[str] = frozenset()  # "agents/x.md", "settings.json", ...


# Runs in the session's cwd on the host: lists the project's .claude entries and
# which of the given directories are missing, NUL-separated (names may hold anything).
_PROBE = r"""
for rx_d in agents skills commands; do
  for rx_e in .claude/$rx_d/* .claude/$rx_d/.[!.]*; do
    [ -e "$rx_e" ] || [ -L "$rx_e" ] && printf 'E%s\0' "${rx_e#.claude/}"
  done
done
for rx_f in settings.json settings.local.json; do
  [ -e ".claude/$rx_f" ] && printf 'E%s\0' "$rx_f"
done
for rx_a; do [ -d "$rx_a" ] || printf 'M%s\0' "$rx_a"; done
exit 0
"""


async def _probe(executor: Executor, local_cwd: str, dirs: Sequence[str]) -> _Found:
    result = await executor.run(["/bin/sh", "-c", _PROBE, "sh", *dirs], cwd=local_cwd, timeout=30)
    if not result.ok:
        raise RemotePathNotFound(
            f"Could not look at the project directory for {local_cwd} on {executor.name} "
            f"(exit {result.returncode}). Check that it exists there.",
            host=executor.name,
            path=local_cwd,
            detail=result.stderr.decode("utf-8", "replace"),
        )
    missing: set[str] = set()
    entries: set[str] = set()
    for word in result.stdout.split(b"\0"):
        text = word.decode("utf-8", "surrogateescape")
        if text.startswith("M"):
            missing.add(text[1:])
        elif text.startswith("E"):
            entries.add(text[1:])
    return _Found(frozenset(missing), frozenset(entries))


class _ProjectConfig:
    """The local project's ``.claude/`` configuration the CLI would load here."""

    def __init__(self, cwd: Path, sources: frozenset[str]) -> None:
        self._dir = cwd / ".claude"
        self.candidates: list[str] = []  # "agents/x.md", "settings.json", ...
        if "project" in sources:
            for sub in _PROJECT_DIRS:
                try:
                    names = sorted(os.listdir(self._dir / sub))
                except OSError:
                    continue
                self.candidates.extend(f"{sub}/{name}" for name in names)
        for name, source in _PROJECT_SETTINGS.items():
            if source in sources and (self._dir / name).is_file():
                self.candidates.append(name)

    def ship_missing(self, items: list[Arg | _Shipped], found: _Found, budget: _Budget) -> None:
        missing = [c for c in self.candidates if c not in found.project_entries]
        entries = [m for m in missing if "/" in m]
        settings = [m for m in missing if "/" not in m]
        if entries:
            # Loaded from an extra directory's .claude/, under their own names.
            tree = _Tree(budget, option="setting_sources")
            for entry in entries:
                path = self._dir / entry
                if path.is_dir():
                    tree.add_dir(path, f".claude/{entry}")
                else:
                    tree.add_file(path, f".claude/{entry}")
            source = os.fspath(self._dir.parent)
            items.append(_Shipped("--add-dir", Attachment("tree", tree.close()), source))
            log.info("%s lacks %s of %s: shipped", budget.host, ", ".join(entries), source)
        if settings:
            self._merge_settings(items, settings, budget)

    def _merge_settings(
        self, items: list[Arg | _Shipped], names: list[str], budget: _Budget
    ) -> None:
        """Project settings the host lacks join the flag settings, under them in
        precedence as they are here (flag > local > project)."""
        merged: dict[str, Any] = {}
        for name in ("settings.json", "settings.local.json"):
            if name in names:
                path = self._dir / name
                _merge(merged, _json(_read_file(path, budget, option="setting_sources"), path))
        flags = [i for i in items if isinstance(i, _Shipped) and i.flag == "--settings"]
        if flags:
            last = flags[-1]  # the CLI reads only the last --settings
            _merge(merged, _json(last.attachment.data, Path(last.source)))
            last.attachment = Attachment("file", json.dumps(merged).encode())
        else:
            data = json.dumps(merged).encode()
            items.append(_Shipped("--settings", Attachment("file", data), "<json>"))
        log.info(
            "%s lacks the project's %s: merged into the session's settings",
            budget.host,
            " and ".join(names),
        )


def _json(data: bytes, path: Path) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except ValueError as exc:
        raise OptionPathError(
            f"Settings in {path} are not valid JSON: {exc}. Fix the file.",
            host="local",
            option="settings",
            path=os.fspath(path),
        ) from exc
    if not isinstance(value, dict):
        raise OptionPathError(
            f"Settings in {path} are not a JSON object. Fix the file.",
            host="local",
            option="settings",
            path=os.fspath(path),
        )
    return value


def _merge(low: dict[str, Any], high: Mapping[str, Any]) -> None:
    """Settings merge as the CLI does across sources: objects deeply, lists
    joined without repeats, other values from ``high``."""
    for key, value in high.items():
        mine = low.get(key)
        if isinstance(mine, dict) and isinstance(value, Mapping):
            _merge(mine, value)
        elif isinstance(mine, list) and isinstance(value, list):
            low[key] = mine + [v for v in value if v not in mine]
        else:
            low[key] = value
