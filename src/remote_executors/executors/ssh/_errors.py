"""Turn OpenSSH's exit 255 and stderr into the typed error that says what to do."""

from __future__ import annotations

from ...errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ExecutorError,
    HostKeyError,
    HostUnreachable,
    ProcessLost,
)
from .._backend import Ending

SSH_FAILED = 255  # ssh's own exit status for its own failures


def _tail(stderr: str, lines: int = 12) -> str:
    return "\n".join(stderr.strip().splitlines()[-lines:])


def connect_error(kind: str, host: str, detail: str = "") -> ExecutorError:
    """The typed error, with what to do, for one kind of connection failure.

    Kinds: ``host-key-changed``, ``host-key-unknown``, ``auth``, ``key-encrypted``,
    ``resolve``, ``refused``, ``timeout``, ``config``, anything else (generic).
    Shared by both backends so a failure reads the same whichever one met it.
    """
    if kind == "host-key-changed":
        return HostKeyError(
            f"The host key of {host} has changed since it was recorded in known_hosts. "
            "This can mean someone is intercepting the connection. If the server was "
            f"reinstalled, verify the new key and run: ssh-keygen -R <hostname of {host}>",
            host=host,
            detail=detail,
        )
    if kind == "host-key-unknown":
        return HostKeyError(
            f"The host key of {host} is not in known_hosts, so the connection was refused. "
            f"Run `ssh {host}` once to check and accept the key, or pass "
            "SSHExecutor(..., accept_new_host_keys=True) to trust a first-seen key.",
            host=host,
            detail=detail,
        )
    if kind == "auth":
        return AuthenticationFailed(
            f"Authentication to {host} failed: the server refused every key offered. "
            f"Check that `ssh {host} true` works without a prompt (ssh-agent loaded, "
            "IdentityFile right, key in the remote authorized_keys).",
            host=host,
            detail=detail,
        )
    if kind == "key-encrypted":
        return AuthenticationFailed(
            f"Authentication to {host} needs a passphrase-protected key that nobody can "
            "unlock here. Load it into ssh-agent (ssh-add) and try again.",
            host=host,
            detail=detail,
        )
    if kind == "resolve":
        return HostUnreachable(
            f"Cannot resolve the address of {host}. Check the HostName for {host} in "
            "your ssh config and your DNS.",
            host=host,
            detail=detail,
        )
    if kind == "refused":
        return HostUnreachable(
            f"{host} refused the connection: no SSH server is listening there. Check "
            f"that sshd runs on {host} and the Port in your ssh config.",
            host=host,
            detail=detail,
        )
    if kind == "timeout":
        return HostUnreachable(
            f"Cannot reach {host}: the connection timed out. Check the network, VPN "
            "or ProxyJump settings for it.",
            host=host,
            detail=detail,
        )
    if kind == "config":
        return ConnectionFailed(
            f"ssh refused its configuration for {host}. Fix the ssh config file named below.",
            host=host,
            detail=detail,
        )
    return ConnectionFailed(
        f"ssh could not connect to {host}. Run `ssh -v {host} true` to see why.",
        host=host,
        detail=detail,
    )


def classify_connect_failure(host: str, stderr: str) -> ExecutorError:
    """Classify a failure to connect or log in (stderr read with ``LC_ALL=C``)."""
    text = stderr
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or (
        "Host key for" in text and ("has changed" in text)
    ):
        kind = "host-key-changed"
    elif (
        "Host key verification failed" in text
        or "No ED25519 host key is known" in text
        or ("host key is known" in text)
    ):
        kind = "host-key-unknown"
    elif "Permission denied (" in text or "Too many authentication failures" in text:
        kind = "auth"
    elif "Could not resolve hostname" in text or "Name or service not known" in text:
        kind = "resolve"
    elif "Connection refused" in text:
        kind = "refused"
    elif "timed out" in text or "No route to host" in text or "Network is unreachable" in text:
        kind = "timeout"
    elif (
        "Bad configuration option" in text
        or "Bad owner or permissions" in text
        or ("Can't open user config file" in text or "Unsupported option" in text)
    ):
        kind = "config"
    else:
        kind = "other"
    return connect_error(kind, host, _tail(stderr))


def lost_link(host: str, ending: Ending) -> ExecutorError | None:
    """``ProcessLost`` when the link, not the program, ended a job: ssh failed
    (255), or the local client was killed by a signal nobody here sent. Both
    SSH backends' ``lost_error``."""
    code = ending.returncode
    if code == SSH_FAILED or (code < 0 and not ending.signalled):
        return classify_lost(host, ending.stderr, code)
    return None


def classify_lost(host: str, stderr: str, returncode: int | None) -> ExecutorError:
    """The link dropped while something was running."""
    return ProcessLost(
        f"Lost the connection to {host} while the process was running (ssh exit "
        f"{returncode}). The remote side stops it within seconds; the session can be "
        "resumed once the host is reachable again.",
        host=host,
        detail=_tail(stderr),
        exit_code=returncode,
    )
