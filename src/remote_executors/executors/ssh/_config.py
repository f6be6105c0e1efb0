"""What ``ssh box`` would use for ``box``: the client settings, resolved.

Where an OpenSSH client exists, ``ssh -G`` answers: it speaks the whole
ssh_config language (Include, Match, tokens, defaults, ``-o`` overrides), so
the pure-Python backend connects exactly where ``ssh box`` would. Without it,
paramiko's parser reads the files; it ignores ``Include``, so those lines are
inlined first (OpenSSH's own semantics: an included file is read in place).
"""

from __future__ import annotations

import getpass
import glob
import io
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence

import anyio
import attrs

from ...errors import ConnectionFailed
from ._errors import classify_connect_failure

log = logging.getLogger("remote_executors.ssh")

_C_LOCALE = {"LC_ALL": "C", "LANG": "C"}
_INCLUDE_RE = re.compile(r"^\s*include\s*=?\s*(.+?)\s*$", re.IGNORECASE)
_MAX_INCLUDE_DEPTH = 16  # OpenSSH's own limit
_NONE = ("", "none")

#: ssh -G keys that may appear on several lines (each line one value).
_MULTI = frozenset({"identityfile", "certificatefile", "sendenv", "setenv"})


def _tuple(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class ResolvedHost:
    """The settings ``ssh`` would connect to one alias with."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    identities_only: bool = False
    identity_agent: str | None = None  # None: $SSH_AUTH_SOCK
    use_agent: bool = True
    proxy_command: str | None = None  # tokens expanded
    proxy_jump: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    user_known_hosts: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    global_known_hosts: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    strict_host_key_checking: str = "ask"
    host_key_alias: str | None = None
    hash_known_hosts: bool = False

    @property
    def known_hosts_name(self) -> str:
        """The name this host's key is filed under in known_hosts."""
        if self.host_key_alias:
            return self.host_key_alias
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    @property
    def checking_disabled(self) -> bool:
        return self.strict_host_key_checking in ("no", "off", "false")

    def warn_if_checking_disabled(self) -> None:
        """Say (once per resolve) that a "don't check" config is only half obeyed."""
        if self.checking_disabled:
            log.warning(
                "ssh config for %s disables host key checking; remote-executors still "
                "refuses changed host keys (accepting only new ones).",
                self.alias,
            )

    @classmethod
    def from_options(cls, alias: str, options: Mapping[str, Sequence[str]]) -> ResolvedHost:
        """Build from ``ssh -G``-shaped options (lower-case keys, lists of values)."""

        def one(key: str, default: str = "") -> str:
            values = options.get(key)
            return values[0] if values else default

        hostname = one("hostname", alias)
        port = int(one("port", "22") or 22)
        user = one("user") or getpass.getuser()
        tokens = {"h": hostname, "p": str(port), "r": user, "n": alias}

        def path(value: str) -> str:
            return os.path.expanduser(expand_tokens(value, tokens))

        def paths(key: str) -> tuple[str, ...]:
            found: list[str] = []
            for value in options.get(key, ()):
                found += [path(v) for v in value.split() if v.lower() not in _NONE]
            return tuple(found)

        agent = one("identityagent")
        proxy = one("proxycommand")
        jump = one("proxyjump")
        return cls(
            alias=alias,
            hostname=hostname,
            port=port,
            user=user,
            identity_files=[path(v) for v in options.get("identityfile", ())],
            identities_only=one("identitiesonly", "no").lower() == "yes",
            identity_agent=(
                path(agent) if agent and agent.lower() not in ("none", "ssh_auth_sock") else None
            ),
            use_agent=agent.lower() != "none",
            proxy_command=(
                expand_tokens(proxy, tokens) if proxy and proxy.lower() not in _NONE else None
            ),
            proxy_jump=(
                tuple(h.strip() for h in jump.split(",") if h.strip())
                if jump and jump.lower() not in _NONE
                else ()
            ),
            user_known_hosts=paths("userknownhostsfile") or (path("~/.ssh/known_hosts"),),
            global_known_hosts=paths("globalknownhostsfile"),
            strict_host_key_checking=one("stricthostkeychecking", "ask").lower(),
            host_key_alias=one("hostkeyalias") or None,
            hash_known_hosts=one("hashknownhosts", "no").lower() == "yes",
        )


def expand_tokens(value: str, tokens: Mapping[str, str]) -> str:
    """Expand ssh_config ``%x`` tokens (``%%`` is a literal ``%``)."""
    local = {"d": os.path.expanduser("~"), "u": getpass.getuser(), "%": "%"}

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        return {**local, **tokens}.get(key, match.group(0))

    return re.sub(r"%(.)", sub, value)


def parse_ssh_g(text: str) -> dict[str, list[str]]:
    """``ssh -G`` output: one ``key value`` per line; some keys repeat."""
    options: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if not key:
            continue
        values = options.setdefault(key.lower(), [])
        if key.lower() in _MULTI or not values:
            values.append(value)
    return options


async def resolve(
    alias: str,
    *,
    ssh_config: str | None = None,
    options: Mapping[str, str] | None = None,
    ssh_binary: str | None = None,
) -> ResolvedHost:
    """Resolve ``alias`` as ``ssh [-F ssh_config] [-oK=V ...] alias`` would."""
    ssh = ssh_binary if ssh_binary is not None else shutil.which("ssh")
    if ssh:
        return ResolvedHost.from_options(
            alias, await ssh_g(alias, ssh=ssh, ssh_config=ssh_config, options=options)
        )
    return await anyio.to_thread.run_sync(_resolve_with_paramiko, alias, ssh_config, options)


async def ssh_g(
    target: str,
    *,
    ssh: str,
    ssh_config: str | None = None,
    options: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> dict[str, list[str]]:
    argv = [ssh, *(["-F", ssh_config] if ssh_config else [])]
    argv += [f"-o{key}={value}" for key, value in (options or {}).items()]
    argv += [*extra, "-G", "--", target]
    result = await anyio.run_process(
        argv, check=False, stdin=subprocess.DEVNULL, env={**os.environ, **_C_LOCALE}
    )
    if result.returncode != 0:
        raise classify_connect_failure(target, result.stderr.decode("utf-8", "replace"))
    return parse_ssh_g(result.stdout.decode("utf-8", "replace"))


# -- without an OpenSSH client ----------------------------------------------


def _resolve_with_paramiko(
    alias: str, ssh_config: str | None, options: Mapping[str, str] | None
) -> ResolvedHost:
    import paramiko

    if ssh_config is not None:
        # ``-F`` names a user configuration: its relative Includes are in ~/.ssh.
        files = [(ssh_config, os.path.expanduser("~/.ssh"))]
    else:
        files = [
            (os.path.expanduser("~/.ssh/config"), os.path.expanduser("~/.ssh")),
            ("/etc/ssh/ssh_config", "/etc/ssh"),
        ]
    # ``-o`` options come first: in ssh_config the first value obtained wins.
    text = "".join(f"{key} {value}\n" for key, value in (options or {}).items())
    for path, base in files:
        if os.path.exists(path):
            try:
                text += inline_includes(path, base) + "\n"
            except OSError as exc:
                raise ConnectionFailed(
                    f"Cannot read the ssh config {path} for {alias}: {exc}.", host=alias
                ) from exc
    try:
        looked_up = paramiko.SSHConfig.from_text(text).lookup(alias)
    except Exception as exc:  # paramiko raises several types for bad files
        raise ConnectionFailed(
            f"The ssh config for {alias} could not be parsed ({exc}). Fix it, or install "
            "the OpenSSH client so `ssh -G` can read it.",
            host=alias,
        ) from exc
    found: dict[str, list[str]] = {}
    for key, value in looked_up.items():
        found[key.lower()] = list(value) if isinstance(value, list) else [str(value)]
    found.setdefault(
        "identityfile",
        [f"~/.ssh/id_{kind}" for kind in ("rsa", "ecdsa", "ecdsa_sk", "ed25519", "ed25519_sk")],
    )
    found.setdefault("userknownhostsfile", ["~/.ssh/known_hosts ~/.ssh/known_hosts2"])
    found.setdefault("globalknownhostsfile", ["/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"])
    return ResolvedHost.from_options(alias, found)


def inline_includes(path: str, base: str, depth: int = 0) -> str:
    """The text of ``path`` with each ``Include`` replaced by the files it names.

    Exact for what Includes usually hold (options for the enclosing block, or
    whole ``Host`` blocks included at the top level). One difference from
    OpenSSH remains: ``Host``/``Match`` blocks inside a file included from
    *within* a conditional block apply as if included at the top level.
    """
    if depth > _MAX_INCLUDE_DEPTH:
        raise OSError(f"Include nested deeper than {_MAX_INCLUDE_DEPTH} levels at {path}")
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    out = io.StringIO()
    for line in lines:
        match = _INCLUDE_RE.match(line)
        if match is None:
            out.write(line + "\n")
            continue
        for pattern in _split_words(match.group(1)):
            pattern = os.path.expanduser(pattern)
            if not os.path.isabs(pattern):
                pattern = os.path.join(base, pattern)
            for included in sorted(glob.glob(pattern)):
                out.write(inline_includes(included, base, depth + 1) + "\n")
    return out.getvalue()


def _split_words(text: str) -> list[str]:
    """ssh_config's word splitting: whitespace, double quotes group."""
    return [a or b for a, b in re.findall(r'"([^"]*)"|(\S+)', text)]
