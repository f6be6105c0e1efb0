"""``ssh://`` specs: an ``SSHExecutor``'s options to and from its spec string.

``ssh://HOST?KEY=VALUE&...`` with the options that differ from the defaults::

    ssh://box
    ssh://me@box?ssh_config=/home/me/.ssh/work&claude_path=/opt/claude/bin/claude
    ssh://box?path_map:/home/me/code=/srv/me/code&ssh_option:Compression=yes

``path_map`` and ``ssh_options`` entries are one key each (``path_map:LOCAL``,
``ssh_option:NAME``), so any path survives the round trip. A spec holds no
secret: SSH options that carry one belong in ssh_config, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from ...errors import InvalidInput
from ..registry import format_spec, parse_spec

__all__ = ["SCHEME", "options_from_spec", "spec_from_options"]

SCHEME = "ssh"
_PATH_MAP = "path_map:"
_SSH_OPTION = "ssh_option:"
_STRINGS = ("backend", "ssh_config", "claude_path", "forward_credentials")
_FLOATS = ("connect_timeout", "reattach_within")
_INTS = ("keepalive_interval", "keepalive_count")
_BOOLS = ("accept_new_host_keys",)
_BOOLS_ON = ("warm_spawn",)  # on by default: only "off" is written
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def spec_from_options(host: str, options: Mapping[str, Any]) -> str:
    """The spec of ``SSHExecutor(host, **options)`` (options at their default left out)."""
    pairs: list[tuple[str, str]] = []
    for key in (*_STRINGS, *_BOOLS, *_FLOATS, *_INTS):
        value = options.get(key)
        if value is None or value is False or (key == "backend" and value == "auto"):
            continue
        pairs.append(
            (key, "1" if value is True else f"{value:g}" if key in _FLOATS else str(value))
        )
    for key in _BOOLS_ON:
        if options.get(key) is False:
            pairs.append((key, "0"))
    for local, remote in (options.get("path_map") or {}).items():
        pairs.append((_PATH_MAP + local, remote))
    for name, value in (options.get("ssh_options") or {}).items():
        pairs.append((_SSH_OPTION + name, value))
    return format_spec(SCHEME, host, pairs)


def options_from_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """(host, keyword options for ``SSHExecutor``) from an ``ssh://`` spec or bare alias."""
    parsed = parse_spec(spec)
    if parsed.scheme != SCHEME:
        raise InvalidInput(f"SSHExecutor takes ssh:// specs, not {spec!r}.", host=spec)
    host = unquote(parsed.target)
    if "/" in host or not host:
        raise InvalidInput(
            f"Invalid spec {spec!r}: ssh:// is followed by a host alias only (ssh://box), no path.",
            host=spec,
        )
    options: dict[str, Any] = {}
    path_map: dict[str, str] = {}
    ssh_options: dict[str, str] = {}
    for key, value in parsed.options:
        if key.startswith(_PATH_MAP) and len(key) > len(_PATH_MAP):
            path_map[key[len(_PATH_MAP) :]] = value
        elif key.startswith(_SSH_OPTION) and len(key) > len(_SSH_OPTION):
            ssh_options[key[len(_SSH_OPTION) :]] = value
        elif key in _STRINGS:
            options[key] = value
        elif key in _BOOLS or key in _BOOLS_ON:
            options[key] = _boolean(spec, key, value, host)
        elif key in _FLOATS or key in _INTS:
            options[key] = _number(spec, key, value, host)
        else:
            known = ", ".join(
                (
                    *_STRINGS,
                    *_BOOLS,
                    *_BOOLS_ON,
                    *_FLOATS,
                    *_INTS,
                    "path_map:LOCAL",
                    "ssh_option:NAME",
                )
            )
            raise InvalidInput(
                f"Unknown option {key!r} in {spec!r}; ssh:// specs take {known}.", host=host
            )
    if path_map:
        options["path_map"] = path_map
    if ssh_options:
        options["ssh_options"] = ssh_options
    return host, options


def _boolean(spec: str, key: str, value: str, host: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidInput(f"Invalid {key}={value!r} in {spec!r}: expected 1 or 0.", host=host)


def _number(spec: str, key: str, value: str, host: str) -> float | int:
    try:
        return int(value) if key in _INTS else float(value)
    except ValueError:
        raise InvalidInput(
            f"Invalid {key}={value!r} in {spec!r}: expected a number.", host=host
        ) from None
