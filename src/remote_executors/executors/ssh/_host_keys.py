"""Host key checking for the pure-Python backend, with OpenSSH's rules.

paramiko's (and so Fabric's) defaults are not acceptable: Fabric trusts an
unknown key silently. Here an unknown key is refused unless the caller opted
in to trusting first-seen keys, in which case it is recorded in the user's
known_hosts file as ``ssh`` would record it; a changed key is always refused
(paramiko raises ``BadHostKeyException`` before any policy is asked).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import paramiko

from ._config import ResolvedHost

log = logging.getLogger("remote_executors.ssh")

_file_lock = threading.Lock()  # one append to known_hosts at a time in this process


class UnknownHostKey(paramiko.SSHException):  # type: ignore[misc]
    """The server's key is not in any known_hosts file and may not be trusted."""


def load_known_keys(client: paramiko.SSHClient, resolved: ResolvedHost) -> None:
    """Give ``client`` exactly the keys known_hosts has for ``resolved``.

    paramiko looks keys up by ``host`` or ``[host]:port``; OpenSSH also honours
    ``HostKeyAlias`` and several files. So the keys are looked up here, under
    the name ssh would use, and filed under the name paramiko will ask for.
    """
    asked_as = (
        resolved.hostname if resolved.port == 22 else f"[{resolved.hostname}]:{resolved.port}"
    )
    keys = client.get_host_keys()
    keys.clear()
    filed: set[str] = set()  # key types found so far: the first file that has one wins
    for path in (*resolved.user_known_hosts, *resolved.global_known_hosts):
        if not os.path.isfile(path):
            continue
        table = paramiko.HostKeys()
        try:
            table.load(path)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            log.warning("skipping unreadable known_hosts file %s: %s", path, exc)
            continue
        found = table.lookup(resolved.known_hosts_name)
        if found is None:
            continue
        for keytype in found.keys():  # noqa: SIM118 (SubDict only iterates this way)
            if keytype not in filed:
                filed.add(keytype)
                keys.add(asked_as, keytype, found[keytype])


class RefuseUnknown(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownHostKey(f"No {key.get_name()} host key is known for {hostname}")


class AcceptNew(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """``StrictHostKeyChecking accept-new``: record a first-seen key, then trust it."""

    def __init__(self, resolved: ResolvedHost) -> None:
        self._resolved = resolved

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        name = self._resolved.known_hosts_name
        if self._resolved.hash_known_hosts:
            name = paramiko.HostKeys.hash_host(name)
        path = self._resolved.user_known_hosts[0]
        line = f"{name} {key.get_name()} {key.get_base64()}\n"
        try:
            with _file_lock:
                os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="ascii") as handle:
                    handle.write(line)
        except OSError as exc:
            # ssh also connects when it cannot record the key; say so.
            log.warning("could not record the host key of %s in %s: %s", hostname, path, exc)
        else:
            log.warning(
                "Permanently added the %s host key of %s to %s",
                key.get_name(),
                self._resolved.alias,
                path,
            )
        client.get_host_keys().add(hostname, key.get_name(), key)
