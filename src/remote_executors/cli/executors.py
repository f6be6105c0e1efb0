"""``remote-executors executors list|add|remove``: the configured hosts."""

from __future__ import annotations

from typing import Any

import click

from ..settings import HostSettings, SettingsStore
from ._output import Output


def _host_dict(host: HostSettings) -> dict[str, Any]:
    return {
        "host": host.host,
        "ssh_config": host.ssh_config,
        "claude_path": host.claude_path,
        "path_map": dict(host.path_map),
        "accept_new_host_keys": host.accept_new_host_keys,
    }


@click.group()
def executors() -> None:
    """List, add and remove the configured remote executors (ssh aliases)."""


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
    rows = [
        {
            "host": h.host,
            "claude": h.claude_path or "(found on the host)",
            "path map": ", ".join(f"{k}={v}" for k, v in h.path_map.items()),
        }
        for h in hosts
    ]
    out.table(rows, ["host", "claude", "path map"])


def _path_map(values: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for value in values:
        local, sep, remote = value.partition("=")
        if not sep or not local or not remote:
            raise click.BadParameter(f"{value!r}: expected LOCAL=REMOTE", param_hint="--path-map")
        mapping[local] = remote
    return mapping


@executors.command("add")
@click.argument("host")
@click.option("--claude-path", help="Where the Claude CLI is on the host (default: found).")
@click.option(
    "--path-map",
    multiple=True,
    metavar="LOCAL=REMOTE",
    help="Map a local directory to one on the host (repeatable).",
)
@click.option("--ssh-config", type=click.Path(dir_okay=False), help="ssh_config file to use.")
@click.option("--accept-new-host-keys", is_flag=True, help="Trust the host key on first use.")
@click.option("--json", "json_mode", is_flag=True, help="Print JSON.")
def add(
    host: str,
    claude_path: str | None,
    path_map: tuple[str, ...],
    ssh_config: str | None,
    accept_new_host_keys: bool,
    json_mode: bool,
) -> None:
    """Add HOST (an ssh alias) to the configured executors."""
    options: dict[str, Any] = {"accept_new_host_keys": accept_new_host_keys}
    if claude_path:
        options["claude_path"] = claude_path
    if path_map:
        options["path_map"] = _path_map(path_map)
    if ssh_config:
        import os

        options["ssh_config"] = os.path.abspath(ssh_config)
    added = SettingsStore().add(host, **options)
    out = Output(json_mode=json_mode)
    if json_mode:
        out.json(_host_dict(added))
    else:
        out.status("ok", f"Added {added.host}. Test it: remote-executors check {added.host}")


@executors.command("remove")
@click.argument("host")
@click.option("--json", "json_mode", is_flag=True, help="Print JSON.")
def remove(host: str, json_mode: bool) -> None:
    """Remove HOST from the configured executors (its sessions stay)."""
    removed = SettingsStore().remove(host)
    out = Output(json_mode=json_mode)
    if json_mode:
        out.json({"host": host, "removed": removed})
    elif removed:
        out.status("ok", f"Removed {host}.")
    else:
        out.status("fail", f"{host} is not configured.", "See: remote-executors executors list")
    if not removed:
        raise click.exceptions.Exit(1)
