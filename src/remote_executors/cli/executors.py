"""``remote-executors executors list|add|update|remove``: the configured hosts."""

from __future__ import annotations

import os
from typing import Any

import click

from ..settings import HostSettings, SettingsError, SettingsStore
from ._exit import Failed
from ._hosts import HostType
from ._output import Output

_ALIAS = HostType(local_ok=False, not_local="it needs no set-up.")
_RESETTABLE = {
    "claude-path": "claude_path",
    "path-map": "path_map",
    "ssh-config": "ssh_config",
    "connect-timeout": "connect_timeout",
    "forward-credentials": "forward_credentials",
    "reattach-within": "reattach_within",
    "warm-spawn": "warm_spawn",
}


def _host_dict(host: HostSettings) -> dict[str, Any]:
    return {
        "host": host.host,
        "spec": host.spec,
        "ssh_config": host.ssh_config,
        "claude_path": host.claude_path,
        "path_map": dict(host.path_map),
        "accept_new_host_keys": host.accept_new_host_keys,
        "connect_timeout": host.connect_timeout,
        "forward_credentials": host.forward_credentials,
        "reattach_within": host.reattach_within,
        "warm_spawn": host.warm_spawn,
    }


@click.group()
def executors() -> None:
    """List, add, update and remove the configured remote executors (ssh aliases, specs)."""


@executors.command("list")
@click.option("--json", "json_mode", is_flag=True, help="Print JSON.")
def list_(json_mode: bool) -> None:
    """List the configured executors."""
    out = Output(json_mode=json_mode)
    hosts = SettingsStore().list()
    if json_mode:
        out.json([_host_dict(h) for h in hosts])
        return
    if not hosts:
        out.line("No remote executors configured. Add one: remote-executors executors add HOST")
        return
    columns = ["host", "claude", "path map"]
    if any(h.ssh_config for h in hosts):
        columns.append("ssh config")
    rows = [
        {
            "host": h.host,
            "claude": h.claude_path or "(found on the host)",
            "path map": ", ".join(f"{k}={v}" for k, v in h.path_map.items()),
            "ssh config": h.ssh_config or "",
        }
        for h in hosts
    ]
    out.table(rows, columns)


def _path_map(host: str, values: tuple[str, ...]) -> dict[str, str]:
    """LOCAL=REMOTE pairs: LOCAL made absolute here, REMOTE absolute or under the remote
    home (``code/x`` and ``~/code/x`` are stored as ``~/code/x``)."""
    from ..executors._validate import remote_prefix

    mapping = {}
    for value in values:
        local, sep, remote = value.partition("=")
        if not sep or not local or not remote:
            raise click.BadParameter(f"{value!r}: expected LOCAL=REMOTE", param_hint="--path-map")
        local_abs = os.path.abspath(os.path.expanduser(local))
        mapping[local_abs] = remote_prefix(remote, host=host)
    return mapping


def _check_alias(host: str, ssh_config: str | None, force: bool) -> None:
    """Refuse a name no ssh config knows and DNS does not resolve (a typo, usually)."""
    from ..errors import InvalidInput
    from ..executors._validate import check_host
    from ._aliases import is_known, resolves, unknown_alias_text

    if "://" in host:
        return  # a spec of another kind (docker://c): its executor checks it when used
    check_host(host)
    if force or is_known(host, ssh_config) or resolves(host):
        return
    raise InvalidInput(
        unknown_alias_text(host, ssh_config) + " Nothing was added (add --force to add it anyway).",
        host=host,
    )


def _options(
    host: str,
    *,
    claude_path: str | None,
    path_map: tuple[str, ...],
    ssh_config: str | None,
    accept_new_host_keys: bool | None,
    connect_timeout: float | None,
    forward_credentials: str | None = None,
    reattach_within: float | None = None,
    warm_spawn: bool | None = None,
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if forward_credentials is not None:
        options["forward_credentials"] = forward_credentials
    if claude_path is not None:
        options["claude_path"] = claude_path
    if path_map:
        options["path_map"] = _path_map(host, path_map)
    if ssh_config is not None:
        options["ssh_config"] = os.path.abspath(ssh_config)
    if accept_new_host_keys is not None:
        options["accept_new_host_keys"] = accept_new_host_keys
    if connect_timeout is not None:
        options["connect_timeout"] = connect_timeout
    if reattach_within is not None:
        options["reattach_within"] = reattach_within
    if warm_spawn is not None:
        options["warm_spawn"] = warm_spawn
    return options


_CLAUDE_PATH = click.option(
    "--claude-path", metavar="PATH", help="Where the Claude CLI is on the host (default: found)."
)
_PATH_MAP = click.option(
    "--path-map",
    multiple=True,
    metavar="LOCAL=REMOTE",
    help="Map a local directory to one on the host, absolute or relative to its home (repeatable).",
)
_SSH_CONFIG = click.option(
    "--ssh-config",
    type=click.Path(exists=True, dir_okay=False),
    help="ssh_config file to use (instead of ~/.ssh/config).",
)
_TIMEOUT = click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Give up connecting after this long.",
)
_FORWARD = click.option(
    "--forward-credentials",
    type=click.Choice(["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"]),
    help="Hand this machine's value of it to sessions on HOST (over stdin) when HOST has "
    "no credentials of its own. Default: HOST uses its own.",
)
_REATTACH = click.option(
    "--reattach-within",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Keep a session running on the host this long after the link drops, and "
    "reconnect to it (default 300; 0: a lost link ends the session).",
)
_WARM = click.option(
    "--warm-spawn/--no-warm-spawn",
    default=None,
    help="Keep one channel open and waiting on the host so the next session starts "
    "sooner (default: on; it costs one idle shell there).",
)
_FORCE = click.option(
    "--force",
    is_flag=True,
    help="Accept HOST even if no ssh config knows it and it does not resolve.",
)
_JSON = click.option("--json", "json_mode", is_flag=True, help="Print JSON.")


@executors.command("add")
@click.argument("host", type=_ALIAS)
@_CLAUDE_PATH
@_PATH_MAP
@_SSH_CONFIG
@click.option("--accept-new-host-keys", is_flag=True, help="Trust the host key on first use.")
@_TIMEOUT
@_FORWARD
@_REATTACH
@_WARM
@_FORCE
@_JSON
def add(
    host: str,
    claude_path: str | None,
    path_map: tuple[str, ...],
    ssh_config: str | None,
    accept_new_host_keys: bool,
    connect_timeout: float | None,
    forward_credentials: str | None,
    reattach_within: float | None,
    warm_spawn: bool | None,
    force: bool,
    json_mode: bool,
) -> None:
    """Add HOST (an ssh alias, or a spec such as docker://c) to the configured executors.

    Exits 1 if HOST is already configured (change it with `executors update`).
    """
    out = Output(json_mode=json_mode)
    options = _options(
        host,
        claude_path=claude_path,
        path_map=path_map,
        ssh_config=ssh_config,
        accept_new_host_keys=accept_new_host_keys or None,
        connect_timeout=connect_timeout,
        forward_credentials=forward_credentials,
        reattach_within=reattach_within,
        warm_spawn=warm_spawn,
    )
    store = SettingsStore()
    store.load()  # an unreadable file is the first thing to hear about
    _check_alias(host, options.get("ssh_config"), force)
    try:
        added = store.add(host, **options)
    except SettingsError as exc:
        if store.load().get(host) is None:
            raise  # the file itself is the problem
        raise Failed(
            f"{host} is already configured. Change it with `remote-executors executors update "
            f"{host} …` (same options as add), or remove it first.",
            host=host,
        ) from exc
    if json_mode:
        out.json(_host_dict(added))
    else:
        out.status("ok", f"Added {added.host}. Test it: remote-executors check {added.host}")


@executors.command("update")
@click.argument("host", type=_ALIAS)
@_CLAUDE_PATH
@_PATH_MAP
@_SSH_CONFIG
@click.option(
    "--accept-new-host-keys/--no-accept-new-host-keys",
    default=None,
    help="Trust (or stop trusting) host keys seen for the first time.",
)
@_TIMEOUT
@_FORWARD
@_REATTACH
@_WARM
@click.option(
    "--reset",
    "reset",
    multiple=True,
    type=click.Choice(sorted(_RESETTABLE)),
    help="Put an option back to its default (repeatable).",
)
@_FORCE
@_JSON
def update(
    host: str,
    claude_path: str | None,
    path_map: tuple[str, ...],
    ssh_config: str | None,
    accept_new_host_keys: bool | None,
    connect_timeout: float | None,
    forward_credentials: str | None,
    reattach_within: float | None,
    warm_spawn: bool | None,
    reset: tuple[str, ...],
    force: bool,
    json_mode: bool,
) -> None:
    """Change some options of the configured HOST; the others keep their values.

    --path-map replaces the whole map. Exits 1 if HOST is not configured.
    """
    out = Output(json_mode=json_mode)
    options = _options(
        host,
        claude_path=claude_path,
        path_map=path_map,
        ssh_config=ssh_config,
        accept_new_host_keys=accept_new_host_keys,
        connect_timeout=connect_timeout,
        forward_credentials=forward_credentials,
        reattach_within=reattach_within,
        warm_spawn=warm_spawn,
    )
    for name in reset:
        key = _RESETTABLE[name]
        if key in options:
            raise click.UsageError(f"--{name} is both set and reset; give one of them.")
        options[key] = None
    if not options:
        raise click.UsageError("Nothing to change: give an option to set or --reset.")
    if "ssh_config" in options and options["ssh_config"] is not None:
        _check_alias(host, options["ssh_config"], force)
    store = SettingsStore()
    if store.load().get(host) is None:
        raise Failed(
            f"{host} is not configured. Add it: remote-executors executors add {host}", host=host
        )
    updated = store.update(host, **options)
    if json_mode:
        out.json(_host_dict(updated))
    else:
        out.status("ok", f"Updated {updated.host}. Test it: remote-executors check {updated.host}")


@executors.command("remove")
@click.argument("host", type=_ALIAS)
@_JSON
def remove(host: str, json_mode: bool) -> None:
    """Remove HOST from the configured executors (its sessions stay).

    Exits 1 if HOST is not configured.
    """
    out = Output(json_mode=json_mode)
    if not SettingsStore().remove(host):
        raise Failed(f"{host} is not configured (see: remote-executors executors list).", host=host)
    if json_mode:
        out.json({"host": host, "removed": True})
    else:
        out.status("ok", f"Removed {host}.")
