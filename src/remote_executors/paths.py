"""Where Claude Code keeps its session transcripts.

The CLI stores each session as ``<projects root>/<project dir>/<session id>.jsonl``.
The functions here reproduce its naming exactly (checked against the bundled
binary, version 2.1.330, by ``tests/e2e/test_paths_differential.py``):

* The project dir is the session's working directory as ``getcwd()`` reports it
  (symlinks resolved, no trailing slash, no Unicode normalisation), with every
  UTF-16 code unit outside ``[A-Za-z0-9]`` replaced by ``-``.  An astral
  character is two code units, hence two dashes.
* If that name is longer than 200 characters, it is cut to 200 and
  ``-<hash>`` is appended, where ``<hash>`` is ``abs(h)`` in base 36 and ``h``
  is the 32-bit Java ``String.hashCode`` of the *unsanitised* path's UTF-16
  code units.
* The projects root is ``$CLAUDE_CONFIG_DIR/projects`` or, when that variable
  is unset, ``$HOME/.claude/projects``; the CLI normalises it lexically
  (``path.join``) and to Unicode NFC.

Not modelled: if both ``CLAUDE_CONFIG_DIR`` and ``CLAUDE_CODE_PROJECT_DIR_NAME``
are set, the CLI uses the latter verbatim as the project dir (when it matches
``[A-Za-z0-9_-]{1,64}``). Keep ``CLAUDE_CODE_PROJECT_DIR_NAME`` out of session
environments.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from remote_executors.errors import InvalidInput

__all__ = ["project_dir_from_cwd", "projects_root", "validate_session_id"]

_MAX_NAME = 200  # the CLI's cut-off, counted in UTF-16 code units
_ASCII_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_SESSION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def project_dir_from_cwd(cwd: str) -> str:
    """Return the name the CLI gives the project dir of a session run in ``cwd``.

    ``cwd`` must be an absolute POSIX path. Repeated slashes, ``.`` components
    and a trailing slash are dropped, because ``getcwd()`` never reports them.
    ``..`` is refused: what it means depends on symlinks on the machine, so
    resolve the path there first (``cd -P -- DIR && pwd -P``).
    """
    path = _canonical_cwd(cwd)
    units = path.encode("utf-16-le")  # _canonical_cwd rejected lone surrogates
    name = "".join(ch if ch in _ASCII_ALNUM else ("--" if ord(ch) > 0xFFFF else "-") for ch in path)
    if len(name) <= _MAX_NAME:
        return name
    return f"{name[:_MAX_NAME]}-{_base36(abs(_java_string_hash(units)))}"


def projects_root(config_dir: str | None = None, home: str | None = None) -> str:
    """Return the directory that holds the CLI's project dirs.

    With no arguments this describes the local machine: it reads
    ``CLAUDE_CONFIG_DIR`` and the home directory from this process. To describe
    another machine, pass its ``home`` and its ``CLAUDE_CONFIG_DIR`` value as
    ``config_dir`` (``None`` meaning unset); the local environment is then not
    consulted.
    """
    if config_dir is None and home is None:
        config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
        home = str(Path.home())
    # The CLI tests CLAUDE_CONFIG_DIR with `??`, so an empty value still counts.
    if config_dir is not None:
        base, what = config_dir, "CLAUDE_CONFIG_DIR"
    elif home:
        base, what = f"{home}/.claude", "the home directory"
    else:
        raise InvalidInput(
            "Cannot locate Claude Code's projects directory: no home directory was given. "
            "Pass home= (or config_dir=) for the machine in question.",
            host="local",
        )
    if not base.startswith("/"):
        # The CLI would resolve it against each session's working directory,
        # scattering transcripts into project trees.
        raise InvalidInput(
            f"{what} is {base!r}, which is not an absolute path; Claude Code would store "
            "transcripts relative to each session's working directory. Set it to an "
            "absolute path.",
            host="local",
        )
    return unicodedata.normalize("NFC", _lexical_normpath(f"{base}/projects"))


def validate_session_id(sid: str) -> str:
    """Return ``sid`` if it is a canonical lowercase UUID, else raise InvalidInput."""
    if isinstance(sid, str) and _SESSION_ID.fullmatch(sid):
        return sid
    shown = repr(sid) if len(repr(sid)) <= 80 else repr(sid)[:77] + "..."
    raise InvalidInput(
        f"Invalid session id {shown}: expected a lowercase UUID such as "
        "'123e4567-e89b-42d3-a456-426614174000'. Use the session_id that Claude Code reported.",
        host="local",
    )


def _canonical_cwd(cwd: str) -> str:
    """Spell ``cwd`` the way getcwd() would, or raise InvalidInput."""
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise InvalidInput(
            f"Working directory {cwd!r} is not an absolute path. Pass the absolute, "
            "symlink-free path of the directory (as `pwd -P` prints it).",
            host="local",
        )
    if "\0" in cwd:
        raise InvalidInput(
            f"Working directory {cwd!r} contains a NUL character, which no path can hold.",
            host="local",
        )
    try:
        cwd.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: a non-UTF-8 file name decoded with surrogateescape.
        # The CLI refuses to start in such a directory.
        raise InvalidInput(
            f"Working directory {cwd!r} is not valid UTF-8; Claude Code cannot run there. "
            "Use a directory whose path is valid UTF-8.",
            host="local",
        ) from None
    parts = [p for p in cwd.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(
            f"Working directory {cwd!r} contains '..', whose meaning depends on symlinks "
            "on that machine. Resolve it there first (`cd -P -- DIR && pwd -P`).",
            host="local",
        )
    return "/" + "/".join(parts)


def _lexical_normpath(path: str) -> str:
    """Normalise an absolute path like Node's ``path.posix.normalize``."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def _java_string_hash(utf16le: bytes) -> int:
    """Return Java's ``String.hashCode`` (signed 32-bit) of UTF-16LE bytes."""
    h = 0
    for i in range(0, len(utf16le), 2):
        h = (h * 31 + (utf16le[i] | utf16le[i + 1] << 8)) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def _base36(n: int) -> str:
    """Format a non-negative int like JavaScript's ``n.toString(36)``."""
    digits = ""
    while True:
        n, r = divmod(n, 36)
        digits = _BASE36[r] + digits
        if n == 0:
            return digits
