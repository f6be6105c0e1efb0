"""What we send to the remote bootstrap: the command line and the stdin header.

The login shell on the remote parses the command line, and sh, bash, zsh, fish
and tcsh disagree about quoting. So the command line is the same fixed text
for every job, readable by all of them, and the job itself (argv, cwd, env,
including secret values) travels as the first stdin line.
"""

from __future__ import annotations

import base64
import secrets
import shlex
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Literal

import attrs

from ..errors import InvalidInput
from ._validate import check_env, check_path, spawn_attachments
from .base import Attachment, SpawnOptions, _attachments, _freeze_env, _strings

Mode = Literal["run", "spawn", "attach", "watch"]


@cache
def _bootstrap_b64() -> str:
    text = (resources.files(__package__) / "remote" / "bootstrap.sh").read_text("utf-8")
    return base64.b64encode(text.encode()).decode("ascii")


@cache
def _supervisor() -> str:
    return (resources.files(__package__) / "remote" / "supervisor.sh").read_text("utf-8")


@cache
def remote_command() -> str:
    """The one remote command line, identical for every job.

    Single quotes are literal in every common login shell, base64 has no
    special characters, and ``exec`` (a builtin everywhere) makes /bin/sh the
    session leader so the watchdog can stop the whole process group.
    """
    return f"exec /bin/sh -c 'eval \"$(echo {_bootstrap_b64()} | base64 -d)\"'"


@attrs.frozen
class RemoteJob:
    """One job for the bootstrap script. Build the header with ``header()``."""

    argv: Sequence[str] = attrs.field(converter=_strings)
    mode: Mode = "spawn"
    cwd: str | None = None  # absolute remote path
    cwd_home_relative: str | None = None  # relative to the remote $HOME
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_env)
    find_claude: bool = False
    claude_path: str | None = None  # tried first when finding claude
    claude_path_strict: bool = False  # don't look anywhere else
    heartbeat_misses: int = 0  # seconds without a heartbeat before the watchdog acts
    unset_env: Sequence[str] = attrs.field(default=(), converter=_strings)
    # Index into argv -> content the bootstrap puts in a private file or
    # directory, passing its path instead (see Attachment).
    attachments: Mapping[int, Attachment] = attrs.field(factory=dict, converter=_attachments)
    # spawn: seconds the process may outlive its channel (0: it ends with it).
    grace: int = 0
    # attach, watch: the supervised job's directory and the output offsets already had.
    attach_dir: str = ""
    stdout_at: int = 0
    stderr_at: int = 0
    nonce: str = attrs.field(factory=lambda: secrets.token_hex(16))

    def header(self) -> bytes:
        q = shlex.quote
        lines = [
            f"RX_NONCE={q(self.nonce)}",
            f"RX_MODE={q(self.mode)}",
            f"RX_HB_MISS={int(self.heartbeat_misses)}",
            f"RX_GRACE={int(self.grace)}",
            f"RX_FIND_CLAUDE={'1' if self.find_claude else ''}",
            f"RX_CLAUDE={q(self.claude_path or '')}",
            f"RX_CLAUDE_STRICT={'1' if self.claude_path_strict else ''}",
            "unset RX_CWD_REL",
            f"RX_CWD={q(self.cwd or '')}",
        ]
        if self.grace > 0 or self.mode in ("attach", "watch"):
            lines.append(f"RX_DIR={q(self.attach_dir)}")
            lines.append(f"RX_OUT_AT={int(self.stdout_at)}")
            lines.append(f"RX_ERR_AT={int(self.stderr_at)}")
            lines.append(_supervisor())
        if self.cwd_home_relative is not None:
            lines.append(f"RX_CWD_REL={q(self.cwd_home_relative)}")
        argv = list(self.argv)
        for number, index in enumerate(sorted(self.attachments)):
            # The bootstrap swaps the placeholder for the private copy's path.
            attachment = self.attachments[index]
            data = base64.b64encode(attachment.data).decode("ascii")
            lines.append(f"RX_ATT_{number}={data}")
            lines.append(f"RX_ATT_KIND_{number}={attachment.kind}")
            argv[index] = f"{self.nonce}:att:{number}"
        lines.append(f"RX_ATTS={len(self.attachments)}")
        lines.append("set -- " + " ".join(q(a) for a in argv))
        # The environment is for the process only: the bootstrap calls rx_env
        # just before it execs the process, so a caller's PATH, IFS, HOME or
        # TMPDIR cannot change how the bootstrap itself runs.
        lines.append("rx_env() {")
        lines.append(":")
        lines.extend(f"unset {name}" for name in self.unset_env)
        lines.extend(f"export {name}={q(value)}" for name, value in self.env.items())
        lines.append("}")
        script = "\n".join(lines) + "\n"
        # surrogateescape: str forms of arbitrary bytes (os.fsdecode) arrive as those bytes.
        return base64.b64encode(script.encode("utf-8", "surrogateescape")) + b"\n"

    def marker(self, word: str) -> bytes:
        """A control line for the stdin relay: ``hb``, ``eof``; ``done``, ``stop`` (attach)."""
        return f"{self.nonce} {word}\n".encode("ascii")

    def tail(self, data: bytes) -> bytes:
        """The control line that hands the relay a last line without its newline."""
        return self.marker("tail " + base64.b64encode(data).decode("ascii"))


@attrs.frozen
class JobStatus:
    """The bootstrap's status line, decoded."""

    ok: bool
    reason: str = ""  # "cwd", "claude", "tmp", "attach", "tools", "gone" when not ok
    values: tuple[str, ...] = ()


def parse_status(line: bytes, nonce: str) -> JobStatus | None:
    """Decode ``<nonce> OK|ERR ...``; None when the line is noise."""
    words = line.rstrip(b"\r\n").split(b" ")
    if len(words) < 2 or words[0] != nonce.encode("ascii"):
        return None
    kind = words[1].decode("ascii", "replace")

    def decode(words: list[bytes]) -> tuple[str, ...]:
        return tuple(base64.b64decode(w).decode("utf-8", "surrogateescape") for w in words)

    if kind == "OK":
        values = decode(words[2:])
        if len(values) == 1 and values[0].endswith("\0"):
            # One word of NUL-terminated values (see rx_ok in bootstrap.sh).
            values = tuple(values[0][:-1].split("\0"))
        return JobStatus(ok=True, values=values)
    reason = words[2].decode("ascii", "replace") if len(words) > 2 else "unknown"
    return JobStatus(ok=False, reason=reason, values=decode(words[3:]))


#: Seconds without a heartbeat from the local side before a spawned job's
#: watchdog stops its process group.
WATCHDOG_SECONDS = 8


def job_for(
    options: SpawnOptions,
    mode: Literal["run", "spawn"],
    *,
    host: str,
    where: str,
    cwd_target: Callable[[str], tuple[str | None, str | None]],
    claude_path: str | None,
    found_claude: str | None,
    grace: int = 0,
) -> RemoteJob:
    """The job for ``options`` as every bootstrap-driven executor builds it.

    ``host`` names the executor in errors and ``where`` says where it runs
    ("on box", "in docker://c"); ``cwd_target`` maps a local cwd to
    (absolute, home-relative); ``claude_path`` is the one the caller set,
    ``found_claude`` the one an earlier spawn found.
    """
    check_path(options.command, host=host, what="command")
    if any("\x00" in arg for arg in options.args):
        raise InvalidInput(
            f"Refusing to run {options.command} {where}: an argument contains "
            "a NUL character, which no command line can carry.",
            host=host,
        )
    env = check_env(options.env, host=host)
    unset = list(check_env(dict.fromkeys(options.unset_env, ""), host=host))
    attachments = spawn_attachments(options, host=host, private_as_files=True, mode=mode)
    absolute = relative = None
    if options.cwd is not None:
        absolute, relative = cwd_target(options.cwd)
    return RemoteJob(
        unset_env=unset,
        attachments={i + 1: a for i, a in attachments.items()},  # argv[0] is the command
        argv=options.argv,
        mode=mode,
        cwd=absolute,
        cwd_home_relative=relative,
        env=env,
        find_claude=options.command == "claude",
        claude_path=claude_path or found_claude,
        claude_path_strict=claude_path is not None,
        heartbeat_misses=WATCHDOG_SECONDS if mode == "spawn" else 0,
        grace=grace,
    )
