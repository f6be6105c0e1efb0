"""Whose credentials a remote CLI uses: the host's own, or (opt-in) one forwarded from here.

Default: the host owns its credentials. Nothing from this machine's
environment reaches the remote CLI (only what ``ClaudeAgentOptions.env``
names explicitly, and what the SDK itself sets), so a host set up for
Bedrock, Vertex, an ``apiKeyHelper`` or an OAuth login keeps using that.

Opt-in, per host (``SSHExecutor(..., forward_credentials="ANTHROPIC_API_KEY")``
or the host's settings): forward this machine's ``ANTHROPIC_API_KEY`` or
``CLAUDE_CODE_OAUTH_TOKEN`` to the remote CLI, *only when the host has no
credentials of its own* (each session start asks the host, by name only).
The value travels in the job's stdin header, is exported for the CLI's
process only, and is never on a command line, on the remote disk, or in a
log line.

:func:`probe` finds what the host has (names and places, never values);
:func:`in_use` says which of them the CLI will use, by the CLI's own order:
a cloud provider, then ``ANTHROPIC_AUTH_TOKEN``, ``ANTHROPIC_API_KEY``,
``apiKeyHelper``, ``CLAUDE_CODE_OAUTH_TOKEN``, and last a ``/login``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import attrs

from .errors import InvalidInput
from .executors.base import Executor

__all__ = [
    "CLOUD_VARS",
    "CREDENTIAL_VARS",
    "FORWARDABLE",
    "Credential",
    "forwarded_env",
    "in_use",
    "probe",
]

#: Environment variables the CLI logs in with (values are never read back).
CREDENTIAL_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
#: Variables that switch the CLI to a cloud provider's own credentials.
CLOUD_VARS = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX")
#: What may be forwarded from this machine (opt-in).
FORWARDABLE = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN")

_SETTINGS_KEYS = "|".join((*CREDENTIAL_VARS, *CLOUD_VARS, "apiKeyHelper"))

# Each line names what was found. A secret never reaches stdout: the shell
# tests variables with -n, and JSON files are matched on the remote side,
# where everything but the key's name is cut away before it is printed.
PROBE = (
    r"""
rx_c=${CLAUDE_CONFIG_DIR:-$HOME/.claude}
printf 'CONFIG %s\n' "$rx_c"
rx_found=
"""
    + "".join(
        f'[ -n "${{{name}:-}}" ] && {{ echo "ENV {name}"; rx_found=1; }}\n'
        for name in (*CREDENTIAL_VARS, *CLOUD_VARS)
    )
    + r"""
if [ -s "$rx_c/.credentials.json" ]; then echo FILE; rx_found=1; fi
rx_keys() {
  tr '\n\r\t' '   ' <"$1" 2>/dev/null \
    | grep -oE "\"($2)\"[ ]*:[ ]*\"[^\"]" | cut -d'"' -f2 | sort -u
}
if [ -f "$rx_c/settings.json" ]; then
  for rx_k in $(rx_keys "$rx_c/settings.json" '"""
    + _SETTINGS_KEYS
    + r"""'); do
    echo "SETTINGS $rx_k"; rx_found=1
  done
fi
rx_j=$HOME/.claude.json
if [ -n "${CLAUDE_CONFIG_DIR:-}" ]; then rx_j=$CLAUDE_CONFIG_DIR/.claude.json; fi
if [ -f "$rx_j" ] && [ -n "$(rx_keys "$rx_j" primaryApiKey)" ]; then
  printf 'SAVED %s\n' "$rx_j"; rx_found=1
fi
if [ "$(uname -s 2>/dev/null)" = Darwin ] && command -v security >/dev/null 2>&1 \
  && security find-generic-password -s 'Claude Code-credentials' >/dev/null 2>&1; then
  echo KEYCHAIN
fi
if [ -z "$rx_found" ]; then
  # Set only for login shells (e.g. in ~/.profile)? A command over SSH, and
  # so the CLI, does not get those. `env` is the one command every shell runs
  # alike; only the names of non-empty variables are kept.
  case ${SHELL##*/} in csh | tcsh) rx_l= ;; *) rx_l=-l ;; esac
  "${SHELL:-/bin/sh}" $rx_l -c env </dev/null 2>/dev/null \
    | grep -oE '^("""
    + "|".join(CREDENTIAL_VARS)
    + r""")=.' | cut -d= -f1 | sort -u | sed 's/^/LOGIN /'
fi
exit 0
"""
)


@attrs.frozen
class Credential:
    """One credential the CLI can use: its ``name``, ``where`` it comes from, and how
    that reads (``text``)."""

    name: str
    """``ANTHROPIC_API_KEY``, ``apiKeyHelper``, ``CLAUDE_CODE_USE_BEDROCK``, ``/login``, ..."""
    where: str
    """``"the environment"``, a file's path, ``"this machine (forwarded)"``, ..."""
    rank: int = 99
    text: str = ""

    def __str__(self) -> str:
        return self.text or f"{self.name} in {self.where}"


# The CLI's order: lower wins.
_RANK = {
    **dict.fromkeys(CLOUD_VARS, 0),
    "ANTHROPIC_AUTH_TOKEN": 1,
    "ANTHROPIC_API_KEY": 2,
    "apiKeyHelper": 3,
    "CLAUDE_CODE_OAUTH_TOKEN": 4,
    "/login": 5,
}
_NOT_CHECKED = " (cloud credentials not checked)"


def found_credentials(lines: Sequence[tuple[str, str]]) -> list[Credential]:
    """The probe's ``(marker, name)`` lines as credentials, in the CLI's order of use.

    A variable set both in the environment and in ``settings.json``'s ``env``
    block counts once, from settings (the CLI applies that block over its
    environment).
    """
    config = next((value for key, value in lines if key == "CONFIG"), "~/.claude")
    found: dict[str, Credential] = {}
    for key, value in lines:
        cloud = _NOT_CHECKED if value in CLOUD_VARS else ""
        if key == "ENV" and value in _RANK:
            found.setdefault(
                value,
                Credential(
                    value, "the environment", _RANK[value], f"{value} in the environment" + cloud
                ),
            )
        elif key == "SETTINGS" and value in _RANK:
            where = f"{config}/settings.json"
            found[value] = Credential(value, where, _RANK[value], f"{value} in {where}{cloud}")
        elif key == "FILE":
            where = f"{config}/.credentials.json"
            found.setdefault("/login", Credential("/login", where, 5, where))
        elif key == "SAVED":
            found.setdefault(
                "/login", Credential("/login", value, 5, f"API key saved by /login in {value}")
            )
    return sorted(found.values(), key=lambda c: c.rank)


def in_use(lines: Sequence[tuple[str, str]]) -> Credential | None:
    """The credential the CLI will use there, of those the probe found (None: none)."""
    found = found_credentials(lines)
    return found[0] if found else None


def has_own(lines: Sequence[tuple[str, str]]) -> bool:
    """The host has credentials of its own (a Keychain login counts: it is the host's)."""
    return in_use(lines) is not None or any(key == "KEYCHAIN" for key, _ in lines)


def probe_lines(stdout: bytes) -> list[tuple[str, str]]:
    """The probe's output as ``(marker, name)`` pairs."""
    found = []
    for line in stdout.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(" ")
        if key:
            found.append((key, value.strip()))
    return found


async def probe(executor: Executor, *, timeout: float = 20.0) -> list[tuple[str, str]]:
    """What credentials ``executor``'s machine has, as ``(marker, name)`` pairs (no values)."""
    result = await executor.run(["/bin/sh", "-c", PROBE], timeout=timeout)
    if result.returncode == 255:
        from .executors.ssh._errors import classify_lost

        raise classify_lost(executor.name, result.stderr.decode("utf-8", "replace"), 255)
    return probe_lines(result.stdout)


def check_forward(name: str | None, *, host: str) -> str | None:
    """``name`` if it may be forwarded, else ``InvalidInput``."""
    if name is None or name in FORWARDABLE:
        return name
    raise InvalidInput(
        f"Cannot forward {name!r} to {host}: forward_credentials takes one of "
        f"{', '.join(FORWARDABLE)} (or None: the host uses its own credentials).",
        host=host,
    )


async def forwarded_env(
    executor: Executor,
    *,
    explicit: Mapping[str, str] | None = None,
    local_env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> dict[str, str]:
    """What to add to a session's environment on ``executor`` under its credential policy.

    Empty unless the executor forwards a credential (``forward_credentials``),
    that variable is set here (``local_env``, default ``os.environ``), the
    session's own env (``explicit``) does not set it, and the host has no
    credentials of its own.
    """
    name = getattr(executor, "forward_credentials", None)
    if not name:
        return {}
    value = (os.environ if local_env is None else local_env).get(name)
    if not value or name in (explicit or {}):
        return {}
    if has_own(await probe(executor, timeout=timeout)):
        return {}  # the host's own setup wins
    return {name: value}
