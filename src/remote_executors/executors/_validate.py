"""Input checks that run before anything touches a shell, ssh or a path."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import InvalidInput

if TYPE_CHECKING:
    from .base import Attachment, SpawnOptions

# ssh destinations: aliases, host names, user@host, [v6]:port-ish forms.
# Deliberately ASCII and free of shell, glob and ssh-option characters.
_HOST_RE = re.compile(r"[A-Za-z0-9_.@:%+~\[\]-]+")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def check_host(host: str) -> str:
    """Refuse anything ssh could read as an option or a pattern."""
    if not isinstance(host, str) or not host:
        raise InvalidInput("An SSH host alias is required (e.g. 'box').", host=repr(host))
    if host.startswith("-"):
        raise InvalidInput(
            f"Refusing SSH host {host!r}: it starts with '-', which ssh would read as an "
            "option. Use the Host alias from your ~/.ssh/config.",
            host=host,
        )
    if not _HOST_RE.fullmatch(host):
        raise InvalidInput(
            f"Refusing SSH host {host!r}: only letters, digits and . _ - @ : % + ~ [ ] are "
            "allowed (no whitespace, quotes or control characters). Use the Host alias "
            "from your ~/.ssh/config.",
            host=host,
        )
    return host


def check_path(path: str, *, host: str, what: str = "path") -> str:
    """A path we will hand to a remote shell script or a command line."""
    if not isinstance(path, str) or not path:
        raise InvalidInput(f"An empty {what} was given for {host}.", host=host)
    if _CONTROL_RE.search(path):
        raise InvalidInput(
            f"Refusing {what} {path!r} for {host}: it contains a newline or another "
            "control character. Rename the directory or pick another one.",
            host=host,
        )
    if path.startswith("-"):
        raise InvalidInput(
            f"Refusing {what} {path!r} for {host}: it starts with '-'. Give an absolute "
            "path or one starting with './'.",
            host=host,
        )
    return path


def remote_prefix(remote: str, *, host: str) -> str:
    """A path_map target: absolute (normalized), or under the remote home as ``~`` or ``~/rest``.

    ``code/x``, ``~/code/x`` and ``./code/x`` all mean ``$HOME/code/x`` there; a
    relative path may not climb out of the home (``..``), and ``~user`` is refused.
    """
    check_path(remote, host=host, what="remote path in path_map")
    if remote.startswith("/"):
        return posixpath.normpath(remote)
    if remote.startswith("~") and not (remote == "~" or remote.startswith("~/")):
        raise InvalidInput(
            f"Refusing remote path {remote!r} in path_map for {host}: ~user paths are not "
            "supported. Give an absolute path, or one relative to the remote home "
            "(code/x or ~/code/x).",
            host=host,
        )
    rest = posixpath.normpath(remote[1:].lstrip("/") if remote.startswith("~") else remote)
    if rest == "..":
        rest = "../"
    if rest.startswith("../"):
        raise InvalidInput(
            f"Refusing remote path {remote!r} in path_map for {host}: a path relative to "
            "the remote home must stay inside it. Give an absolute path instead.",
            host=host,
        )
    return "~" if rest in ("", ".") else f"~/{rest}"


def check_env(env: Mapping[str, str], *, host: str) -> dict[str, str]:
    """Environment names must be plain identifiers; values must be strings without NUL."""
    out: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME_RE.fullmatch(name):
            raise InvalidInput(
                f"Refusing environment variable name {name!r} for {host}: names must "
                "match [A-Za-z_][A-Za-z0-9_]*.",
                host=host,
            )
        if not isinstance(value, str) or "\x00" in value:
            raise InvalidInput(
                f"Refusing the value of environment variable {name} for {host}: it must "
                "be a string without NUL characters.",
                host=host,
            )
        out[name] = value
    return out


def absolute_local(path: str | os.PathLike[str], *, host: str = "local") -> str:
    """Expand ``~`` and make a local path absolute and normal (no ``..`` left)."""
    text = os.fspath(path)
    check_path(text, host=host, what="working directory")
    return os.path.normpath(os.path.abspath(os.path.expanduser(text)))


def spawn_attachments(
    options: SpawnOptions, *, host: str, private_as_files: bool, mode: str = "spawn"
) -> dict[int, Attachment]:
    """``options.attachments``, checked, plus ``private_args`` as file attachments
    when the executor must keep them off its command lines (``private_as_files``)."""
    from .base import Attachment

    count = len(options.args)
    for name, indices in (
        ("private_args", tuple(options.private_args)),
        ("attachments", tuple(options.attachments)),
    ):
        if any(not 0 <= i < count for i in indices):
            raise InvalidInput(
                f"{name} {tuple(sorted(indices))} point outside the {count} arguments for {host}.",
                host=host,
            )
        if indices and mode != "spawn":
            raise InvalidInput(f"{name} are only supported by spawn() (host {host}).", host=host)
    both = set(options.private_args) & set(options.attachments)
    if both:
        raise InvalidInput(
            f"Arguments {sorted(both)} are both private_args and attachments for {host}; "
            "an attachment already keeps its content off the command line.",
            host=host,
        )
    found = dict(options.attachments)
    for index, attachment in found.items():
        if not isinstance(attachment, Attachment):
            raise InvalidInput(
                f"attachments[{index}] for {host} must be an Attachment, not {attachment!r}.",
                host=host,
            )
    if private_as_files:
        for index in options.private_args:
            value = options.args[index].encode("utf-8", "surrogateescape")
            found[index] = Attachment("file", value)
    return found
