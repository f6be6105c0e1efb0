"""The library's hints, said in the command line's own terms.

The library's messages tell a Python caller what to pass
(``SSHExecutor(..., path_map=…)``, ``ClaudeAgentOptions(resume=…, fork_session=True)``);
someone at the command line needs the flag that does the same. Each known
Python fragment is rewritten into the command that has that effect, from the
error's own attributes (host, session id, path). ``tests/unit/test_cli_hints.py``
runs every library message that carries such a fragment through here and
fails if any Python is left.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..errors import ExecutorError

__all__ = ["PYTHON_RE", "cli_message", "cli_terms", "executors_command"]

#: What a Python-only hint looks like (the unit test's and the e2e tests' check).
PYTHON_RE = re.compile(
    r"SSHExecutor\(|ClaudeAgentOptions|\w+\(\.\.\.|=True\b|\brx\.\w|run\(\.\.\.|"
    r"\buse (update|add) to\b"
)

PROG = "remote-executors"


def _q(text: str) -> str:
    return shlex.quote(text)


def executors_command(host: str, flags: str) -> str:
    """``executors update`` for a configured host, else ``executors add``."""
    verb = "add"
    # Only picks the verb; a problem with the file is reported where it matters.
    with contextlib.suppress(Exception):
        from ..settings import SettingsStore

        if SettingsStore().load().get(host) is not None:
            verb = "update"
    return f"`{PROG} executors {verb} {_q(host)} {flags}`"


_Rewrite = Callable[["re.Match[str]", str, str], str]


def _host_keys(_: re.Match[str], host: str, __: str) -> str:
    return executors_command(host, "--accept-new-host-keys") + " to trust a first-seen key"


def _path_map_pair(match: re.Match[str], host: str, __: str) -> str:
    return executors_command(host, "--path-map " + _q(f"{match['local']}={match['remote']}"))


def _path_map(_: re.Match[str], host: str, __: str) -> str:
    return executors_command(host, "--path-map LOCAL=REMOTE")


def _claude_path(_: re.Match[str], host: str, __: str) -> str:
    return executors_command(host, "--claude-path /path/to/claude")


def _fork(_: re.Match[str], __: str, session: str) -> str:
    return f'`{PROG} run --resume {session or "SESSION_ID"} --fork "PROMPT"`'


def _sync_limit(flag: str) -> _Rewrite:
    def rewrite(_: re.Match[str], host: str, __: str) -> str:
        return f"sync it with `{PROG} sync {_q(host or 'HOST')} {flag} SIZE`"

    return rewrite


#: (Python fragment, its command-line form). Order matters: specific first.
_REWRITES: list[tuple[re.Pattern[str], _Rewrite | str]] = [
    (
        re.compile(
            r"(?:pass )?SSHExecutor\(\.\.\., accept_new_host_keys=True\) to trust a "
            r"first-seen key"
        ),
        _host_keys,
    ),
    (
        re.compile(r"SSHExecutor\(\.\.\., path_map=\{'(?P<local>[^']*)': '(?P<remote>[^']*)'\}\)"),
        _path_map_pair,
    ),
    (re.compile(r"SSHExecutor\(\.\.\., path_map=\{local: ?remote\}\)"), _path_map),
    (re.compile(r"(?:pass )?SSHExecutor\(\.\.\., claude_path='[^']*'\)"), _claude_path),
    (re.compile(r"ClaudeAgentOptions\(resume=[^,)]*, fork_session=True\)"), _fork),
    (re.compile(r", or pass it with ClaudeAgentOptions\(env=\{[^}]*\}\)"), ""),
    (re.compile(r",? or set ClaudeAgentOptions\(cli_path=\.\.\.\)"), ", or put claude on PATH"),
    (re.compile(r" If it needs longer, pass a larger run\(\.\.\., timeout=\.\.\.\)\."), ""),
    (
        re.compile(
            r" If that much output is expected, pass a larger run\(\.\.\., max_output=\.\.\.\) "
            r"\(bytes per stream\), or have the command write to a file instead\."
        ),
        " Nothing the command line runs there prints that much: check the host's login "
        "scripts and the tools first on its PATH.",
    ),
    (
        re.compile(
            r"raise the sync strategy's max_file_bytes, e\.g\. TailSessionSync\("
            r"max_file_bytes=\.\.\.\)"
        ),
        _sync_limit("--max-file-size"),
    ),
    (
        re.compile(
            r"raise the sync strategy's max_session_bytes, e\.g\. TailSessionSync\("
            r"max_session_bytes=\.\.\.\)"
        ),
        _sync_limit("--max-session-size"),
    ),
    (
        re.compile(r"\(ClaudeAgentOptions\(resume='[^']*'\), or (`[^`]*`)\)"),
        lambda match, _host, _sid: f"({match.group(1)})",
    ),
    (re.compile(r"allow a slow machine more time with start_timeout=\."), "try again"),
    (re.compile(r"\buse update to change its options\b"), "change its options with {update}"),
    (re.compile(r"\buse add to configure it\b"), "add it with {add}"),
]


def cli_terms(text: str, *, host: str = "", session_id: str = "") -> str:
    """``text`` with each Python-only hint replaced by the command that does it."""
    commands = {
        "update": f"`{PROG} executors update {_q(host)} …`",
        "add": f"`{PROG} executors add {_q(host)}`",
    }
    for pattern, rewrite in _REWRITES:

        def replace(match: re.Match[str], rewrite: _Rewrite | str = rewrite) -> str:
            if isinstance(rewrite, str):
                return rewrite.format(**commands)
            return rewrite(match, host, session_id)

        text = pattern.sub(replace, text)
    return text


#: Settings option names as the command's flags (for refused input).
_OPTION_FLAGS = re.compile(
    r"\b(path_map|claude_path|ssh_config|connect_timeout|accept_new_host_keys|reattach_within"
    r"|warm_spawn)\b"
)


def cli_message(exc: ExecutorError) -> str:
    """The error's message for the command line (see :func:`cli_terms`)."""
    from ..errors import InvalidInput
    from ._aliases import unknown_alias_message

    unknown = unknown_alias_message(exc)
    if unknown is not None:
        return unknown
    session = getattr(exc, "session_id", None) or ""
    message = cli_terms(exc.message, host=exc.host, session_id=session)
    if isinstance(exc, InvalidInput):  # bad input names the flag it came from
        message = _OPTION_FLAGS.sub(lambda m: "--" + m.group(1).replace("_", "-"), message)
    return message
