"""OpenSSH's own failure texts (``LC_ALL=C``) become the typed error that says what to do.

The stderr samples are what OpenSSH 9 prints for each case, verbatim.
"""

from __future__ import annotations

import pytest
from claude_agent_sdk import ClaudeSDKError, CLIConnectionError, CLINotFoundError, ProcessError

import remote_executors as rx
from remote_executors.errors import (
    AuthenticationFailed,
    ClaudeNotFound,
    CommandTimeout,
    ConnectionFailed,
    ExecutorError,
    HostKeyError,
    HostUnreachable,
    InvalidInput,
    ProcessLost,
    RemotePathNotFound,
    RemoteSetupError,
)
from remote_executors.executors.ssh._errors import (
    SSH_FAILED,
    classify_connect_failure,
    classify_lost,
)

AUTH = "rx-bash@127.0.0.1: Permission denied (publickey).\n"
AUTH_MANY = (
    "Warning: Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts.\n"
    "rx@127.0.0.1: Permission denied (publickey,password,keyboard-interactive).\n"
)
TOO_MANY = "Received disconnect from 127.0.0.1 port 2222:2: Too many authentication failures\n"
UNKNOWN_KEY = (
    "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict "
    "checking.\nHost key verification failed.\n"
)
UNKNOWN_RSA = (
    "No RSA host key is known for box.example.com and you have requested strict checking.\n"
    "Host key verification failed.\n"
)
CHANGED_KEY = """\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:3m6D5Wn0k2Yy1lJb3h1f7x2vJ0XGgk2hZ1mN8pQrStU.
Please contact your system administrator.
Add correct host key in /tmp/rx/known_hosts to get rid of this message.
Offending ED25519 key in /tmp/rx/known_hosts:1
Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.
Host key verification failed.
"""
REFUSED = "ssh: connect to host 127.0.0.1 port 1: Connection refused\n"
DNS = "ssh: Could not resolve hostname x.invalid: Name or service not known\n"
DNS_TEMPORARY = "ssh: Could not resolve hostname x.invalid: Temporary failure in name resolution\n"
TIMEOUT = "ssh: connect to host 10.0.0.1 port 22: Connection timed out\n"
BANNER_TIMEOUT = (
    "Connection timed out during banner exchange\nConnection to 10.0.0.1 port 22 timed out\n"
)
NO_ROUTE = "ssh: connect to host 10.0.0.1 port 22: No route to host\n"
NET_UNREACHABLE = "ssh: connect to host 10.0.0.1 port 22: Network is unreachable\n"
BAD_OPTION = "/tmp/rx/ssh_config: line 3: Bad configuration option: frobnicate\n"
BAD_OWNER = "Bad owner or permissions on /root/.ssh/config\n"
CLOSED = "Connection closed by 127.0.0.1 port 2222\n"

# stderr, error class, what the message must tell the user to do (all of them)
CASES = [
    (AUTH, AuthenticationFailed, ["Authentication", "ssh box true", "authorized_keys"]),
    (AUTH_MANY, AuthenticationFailed, ["Authentication", "ssh-agent"]),
    (TOO_MANY, AuthenticationFailed, ["Authentication", "IdentityFile"]),
    (UNKNOWN_KEY, HostKeyError, ["not in known_hosts", "ssh box", "accept_new_host_keys=True"]),
    (UNKNOWN_RSA, HostKeyError, ["not in known_hosts", "accept_new_host_keys=True"]),
    (CHANGED_KEY, HostKeyError, ["has changed", "intercepting", "ssh-keygen -R"]),
    (REFUSED, HostUnreachable, ["refused", "sshd", "Port"]),
    (DNS, HostUnreachable, ["resolve", "HostName", "DNS"]),
    (DNS_TEMPORARY, HostUnreachable, ["resolve", "HostName"]),
    (TIMEOUT, HostUnreachable, ["timed out", "network", "ProxyJump"]),
    (BANNER_TIMEOUT, HostUnreachable, ["timed out"]),
    (NO_ROUTE, HostUnreachable, ["Cannot reach", "network"]),
    (NET_UNREACHABLE, HostUnreachable, ["Cannot reach"]),
    (BAD_OPTION, ConnectionFailed, ["configuration", "Fix the ssh config"]),
    (BAD_OWNER, ConnectionFailed, ["configuration"]),
    (CLOSED, ConnectionFailed, ["ssh -v box true"]),
    ("", ConnectionFailed, ["ssh -v box true"]),
]


@pytest.mark.parametrize(
    ("stderr", "kind", "advice"),
    CASES,
    ids=[
        "auth",
        "auth-many-methods",
        "too-many-auth",
        "unknown-key",
        "unknown-rsa-key",
        "changed-key",
        "refused",
        "dns",
        "dns-temporary",
        "timeout",
        "banner-timeout",
        "no-route",
        "net-unreachable",
        "bad-config-option",
        "bad-config-owner",
        "closed",
        "empty",
    ],
)
def test_classify_connect_failure(stderr: str, kind: type[Exception], advice: list[str]) -> None:
    error = classify_connect_failure("box", stderr)
    assert type(error) is kind
    assert error.host == "box"
    message = error.message
    # Names the host the user asked for (the alias, not the address ssh printed)...
    assert "box" in message
    # ...and says what to do.
    for words in advice:
        assert words in message, (words, message)
    # The raw diagnostic is kept, and shown after the message.
    assert error.detail == "\n".join(stderr.strip().splitlines()[-12:])
    if stderr:
        assert str(error).startswith(message + "\n")
        assert stderr.strip().splitlines()[-1] in str(error)
    else:
        assert str(error) == message


def test_changed_key_is_not_mistaken_for_an_unknown_one() -> None:
    """Both end with "Host key verification failed."; only one is an attack warning."""
    changed = classify_connect_failure("box", CHANGED_KEY)
    unknown = classify_connect_failure("box", UNKNOWN_KEY)
    assert "has changed" in changed.message and "accept_new_host_keys" not in changed.message
    assert "not in known_hosts" in unknown.message and "ssh-keygen -R" not in unknown.message


def test_detail_keeps_the_tail_of_long_output() -> None:
    noise = "".join(f"debug1: line {i}\n" for i in range(100))
    error = classify_connect_failure("box", noise + AUTH)
    assert isinstance(error, AuthenticationFailed)
    assert error.detail.splitlines()[-1] == AUTH.strip()
    assert len(error.detail.splitlines()) <= 12


def test_classify_lost() -> None:
    error = classify_lost("box", "Timeout, server box not responding.\n", SSH_FAILED)
    assert type(error) is ProcessLost
    assert error.host == "box"
    assert "box" in error.message and "255" in error.message
    assert "resumed" in error.message
    assert error.detail == "Timeout, server box not responding."
    # It is the SDK's ProcessError too, filled in the way the SDK fills it.
    assert isinstance(error, ProcessError)
    assert error.exit_code == SSH_FAILED
    assert error.stderr == error.detail


# --- every error is also the claude_agent_sdk error a local run would raise ----------

SDK_PARENTS: list[tuple[type[ExecutorError], tuple[type[BaseException], ...]]] = [
    (ConnectionFailed, (CLIConnectionError,)),
    (HostUnreachable, (ConnectionFailed, CLIConnectionError)),
    (AuthenticationFailed, (ConnectionFailed, CLIConnectionError)),
    (HostKeyError, (ConnectionFailed, CLIConnectionError)),
    (RemoteSetupError, (CLIConnectionError,)),
    (ClaudeNotFound, (RemoteSetupError, CLINotFoundError, CLIConnectionError)),
    (RemotePathNotFound, (RemoteSetupError, CLIConnectionError)),
    (ProcessLost, (ProcessError,)),
    (InvalidInput, (ValueError,)),
    (CommandTimeout, (TimeoutError,)),
]


@pytest.mark.parametrize(("kind", "parents"), SDK_PARENTS, ids=[k.__name__ for k, _ in SDK_PARENTS])
def test_error_classes_are_sdk_errors(
    kind: type[ExecutorError], parents: tuple[type[BaseException], ...]
) -> None:
    assert issubclass(kind, ExecutorError)
    for parent in parents:
        assert issubclass(kind, parent), parent
    extra = {"path": "/x"} if kind is RemotePathNotFound else {}
    error = kind("Something failed on box. Do this.", host="box", detail="raw", **extra)  # type: ignore[arg-type]
    assert error.host == "box" and error.detail == "raw"
    assert str(error) == "Something failed on box. Do this.\nraw"
    with pytest.raises(parents[-1]):
        raise error
    if issubclass(kind, (CLIConnectionError, ProcessError)):
        assert isinstance(error, ClaudeSDKError)


def test_classified_errors_are_caught_by_sdk_handlers() -> None:
    """An app's existing ``except CLIConnectionError`` keeps working for remote runs."""
    for stderr, _, _ in CASES:
        with pytest.raises(CLIConnectionError):
            raise classify_connect_failure("box", stderr)


def test_public_names() -> None:
    for name in [
        "ExecutorError",
        "InvalidInput",
        "ConnectionFailed",
        "HostUnreachable",
        "AuthenticationFailed",
        "HostKeyError",
        "RemoteSetupError",
        "ClaudeNotFound",
        "RemotePathNotFound",
        "CommandTimeout",
        "ProcessLost",
    ]:
        assert getattr(rx, name).__name__ == name
    assert ClaudeNotFound("x", host="box", searched=("a", "b")).searched == ("a", "b")
    assert RemotePathNotFound("x", host="box", path="/p").path == "/p"
