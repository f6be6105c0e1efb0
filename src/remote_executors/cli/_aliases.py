"""Is HOST an alias the user's ssh config knows? If not, which ones look close?

ssh accepts any name (``ssh -G bxo`` succeeds), so a typo only shows as a
DNS failure much later. Here the config's ``Host`` lines (Includes followed)
say which aliases exist; a name no ``Host`` pattern other than ``*`` matches,
and that is not a resolvable host name either, is unknown.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import os
import re
import socket
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..errors import ExecutorError

__all__ = [
    "config_files",
    "host_patterns",
    "is_known",
    "resolves",
    "unknown_alias_message",
    "unknown_alias_text",
]

_HOST_RE = re.compile(r"^\s*host\s*(?:=\s*|\s)(.*)$", re.IGNORECASE)
_MATCH_RE = re.compile(r"^\s*match\s*(?:=\s*|\s)(.*)$", re.IGNORECASE)
#: Match criteria that name hosts (their argument is a pattern list).
_MATCH_HOSTS = ("host", "originalhost")
_USER_CONFIG = "~/.ssh/config"
_SYSTEM_CONFIG = "/etc/ssh/ssh_config"


def config_files(ssh_config: str | None) -> list[tuple[str, str]]:
    """(file, base for relative Includes) that ``ssh [-F ssh_config]`` reads."""
    if ssh_config is not None:
        return [(ssh_config, os.path.expanduser("~/.ssh"))]
    return [
        (os.path.expanduser(_USER_CONFIG), os.path.expanduser("~/.ssh")),
        (_SYSTEM_CONFIG, "/etc/ssh"),
    ]


def host_patterns(ssh_config: str | None) -> list[str]:
    """Every host pattern of those files (Includes inlined): on ``Host`` lines and in
    ``Match host``/``originalhost`` criteria. A ``Match`` whose hosts cannot be told
    without running it (``exec``, ``all``, ...) gives ``*``: anything may match."""
    from ..executors.ssh._config import _split_words, inline_includes

    patterns: list[str] = []
    for path, base in config_files(ssh_config):
        try:
            text = inline_includes(path, base)
        except OSError:
            continue
        for line in text.splitlines():
            content = line.split("#", 1)[0]
            if found := _HOST_RE.match(content):
                patterns += _split_words(found.group(1))
            elif found := _MATCH_RE.match(content):
                patterns += _match_patterns(_split_words(found.group(1)))
    return patterns


def _match_patterns(words: list[str]) -> list[str]:
    """The host patterns a ``Match`` line names; ``*?`` when a command decides it."""
    named: list[str] = []
    pairs = iter(words)
    for criterion in pairs:
        key = criterion.lower().lstrip("!")
        if key in ("all", "canonical", "final"):
            continue  # no argument; "all" is like "Host *", which knows no name
        argument = next(pairs, "")
        if key in _MATCH_HOSTS:
            named += argument.split(",")
        elif key == "exec":
            return ["*?"]  # decided by running a command: cannot tell here
    return named


def _matches(name: str, patterns: list[str]) -> bool:
    if "*?" in patterns:  # a Match that could take any name
        return True
    positive = [p for p in patterns if not p.startswith("!") and p.strip("*")]
    negated = [p[1:] for p in patterns if p.startswith("!")]
    if any(fnmatch.fnmatchcase(name, p) for p in negated):
        return False
    return any(fnmatch.fnmatchcase(name, p) for p in positive)


def is_known(alias: str, ssh_config: str | None) -> bool:
    """A ``Host`` pattern (other than a bare ``*``) matches ``alias``."""
    return _matches(alias.rpartition("@")[2], host_patterns(ssh_config))


def resolves(alias: str, timeout: float = 3.0) -> bool:
    """The name (after any ``user@``) resolves in DNS within ``timeout`` seconds."""
    name = alias.rpartition("@")[2].strip("[]")
    result: list[bool] = []

    def look_up() -> None:
        try:
            socket.getaddrinfo(name, 22)
            result.append(True)
        except (OSError, UnicodeError):
            result.append(False)

    worker = threading.Thread(target=look_up, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def _candidates(ssh_config: str | None) -> list[str]:
    names = [p for p in host_patterns(ssh_config) if not any(c in p for c in "*?!")]
    with contextlib.suppress(Exception):  # suggestions only
        from ..settings import SettingsStore

        names += SettingsStore().load().hosts
    return list(dict.fromkeys(names))


def _shown(ssh_config: str | None) -> str:
    if ssh_config is not None:
        return ssh_config
    return _USER_CONFIG


def unknown_alias_text(alias: str, ssh_config: str | None) -> str:
    """What to say about an alias no config knows and no DNS resolves."""
    close = difflib.get_close_matches(alias, _candidates(ssh_config), n=3, cutoff=0.6)
    text = (
        f"Unknown host {alias}: it is not a Host in {_shown(ssh_config)} and no host of "
        "that name resolves."
    )
    if close:
        text += " Did you mean " + " or ".join(close) + "?"
    else:
        text += f" Add a Host {alias} block to {_shown(ssh_config)}, or check the spelling."
    return text


def _ssh_config_of(host: str) -> str | None:
    try:
        from ..settings import SettingsStore

        entry = SettingsStore().load().get(host)
    except Exception:  # unreadable settings: the default config then
        return None
    return entry.ssh_config if entry is not None else None


def unknown_alias_message(exc: ExecutorError) -> str | None:
    """For "cannot resolve" failures of an alias no config knows: say so, with close names."""
    from ..errors import HostUnreachable

    if not isinstance(exc, HostUnreachable) or "Cannot resolve the address" not in exc.message:
        return None
    ssh_config = _ssh_config_of(exc.host)
    if is_known(exc.host, ssh_config):
        return None
    return unknown_alias_text(exc.host, ssh_config)
