"""The credential policy's decisions: which credential the CLI uses, and when ours is forwarded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

import remote_executors as rx
from remote_executors.credentials import (
    forwarded_env,
    found_credentials,
    has_own,
    in_use,
    probe_lines,
)
from remote_executors.settings import HostSettings

pytestmark = pytest.mark.anyio

CONFIG = ("CONFIG", "/home/u/.claude")


class ProbedHost:
    """An executor whose credential probe prints ``lines``; counts the probes."""

    name = "box"

    def __init__(self, lines: str, forward: str | None) -> None:
        self.out = lines.encode()
        self.forward_credentials = forward
        self.probes = 0

    async def run(self, argv: Sequence[str], **_: object) -> rx.CommandResult:
        self.probes += 1
        return rx.CommandResult(0, self.out, b"")


@pytest.mark.parametrize(
    ("lines", "used"),
    [
        ([("ENV", "ANTHROPIC_API_KEY")], "ANTHROPIC_API_KEY in the environment"),
        (
            [("ENV", "ANTHROPIC_API_KEY"), ("SETTINGS", "ANTHROPIC_API_KEY")],
            "ANTHROPIC_API_KEY in /home/u/.claude/settings.json",
        ),
        (
            [("FILE", ""), ("SETTINGS", "apiKeyHelper")],
            "apiKeyHelper in /home/u/.claude/settings.json",
        ),
        (
            [("SETTINGS", "apiKeyHelper"), ("SETTINGS", "CLAUDE_CODE_USE_BEDROCK")],
            "CLAUDE_CODE_USE_BEDROCK in /home/u/.claude/settings.json (cloud credentials "
            "not checked)",
        ),
        (
            [("ENV", "CLAUDE_CODE_OAUTH_TOKEN"), ("ENV", "ANTHROPIC_AUTH_TOKEN")],
            "ANTHROPIC_AUTH_TOKEN in the environment",
        ),
        ([("FILE", "")], "/home/u/.claude/.credentials.json"),
    ],
)
def test_the_credential_in_use_follows_the_clis_order(
    lines: list[tuple[str, str]], used: str
) -> None:
    found = in_use([CONFIG, *lines])
    assert found is not None and str(found) == used


def test_nothing_or_login_only_is_no_credential_of_its_own() -> None:
    assert in_use([CONFIG]) is None and not has_own([CONFIG])
    assert not has_own([CONFIG, ("LOGIN", "ANTHROPIC_API_KEY")])
    assert has_own([CONFIG, ("KEYCHAIN", "")])
    assert probe_lines(b"CONFIG /x\nENV ANTHROPIC_API_KEY\n\n") == [
        ("CONFIG", "/x"),
        ("ENV", "ANTHROPIC_API_KEY"),
    ]
    assert [c.name for c in found_credentials([CONFIG, ("SAVED", "/home/u/.claude.json")])] == [
        "/login"
    ]


LOCAL = {"ANTHROPIC_API_KEY": "sk-local", "CLAUDE_CODE_OAUTH_TOKEN": "oat-local"}


async def test_nothing_is_forwarded_by_default() -> None:
    host = ProbedHost("CONFIG /h\n", None)
    assert await forwarded_env(host, local_env=LOCAL) == {}  # type: ignore[arg-type]
    assert host.probes == 0


async def test_forwarded_only_when_the_host_has_nothing_of_its_own() -> None:
    bare = ProbedHost("CONFIG /h\n", "ANTHROPIC_API_KEY")
    assert await forwarded_env(bare, local_env=LOCAL) == {  # type: ignore[arg-type]
        "ANTHROPIC_API_KEY": "sk-local"
    }
    for own in (
        "SETTINGS apiKeyHelper",
        "SETTINGS CLAUDE_CODE_USE_VERTEX",
        "ENV CLAUDE_CODE_USE_BEDROCK",
        "FILE",
        "ENV ANTHROPIC_API_KEY",
        "KEYCHAIN",
    ):
        host = ProbedHost(f"CONFIG /h\n{own}\n", "ANTHROPIC_API_KEY")
        assert await forwarded_env(host, local_env=LOCAL) == {}, own  # type: ignore[arg-type]


async def test_not_forwarded_when_unset_here_or_set_explicitly() -> None:
    host = ProbedHost("CONFIG /h\n", "CLAUDE_CODE_OAUTH_TOKEN")
    assert await forwarded_env(host, local_env={}) == {}  # type: ignore[arg-type]
    explicit: Mapping[str, str] = {"CLAUDE_CODE_OAUTH_TOKEN": "mine"}
    assert (
        await forwarded_env(host, explicit=explicit, local_env=LOCAL)  # type: ignore[arg-type]
        == {}
    )
    assert await forwarded_env(host, local_env=LOCAL) == {  # type: ignore[arg-type]
        "CLAUDE_CODE_OAUTH_TOKEN": "oat-local"
    }


def test_only_the_two_login_variables_may_be_forwarded() -> None:
    with pytest.raises(rx.InvalidInput, match="forward_credentials takes one of"):
        rx.SSHExecutor("box", forward_credentials="AWS_SECRET_ACCESS_KEY")
    assert rx.SSHExecutor("box", forward_credentials="ANTHROPIC_API_KEY").forward_credentials
    assert rx.SSHExecutor("box").forward_credentials is None
    with pytest.raises(rx.InvalidInput, match="Invalid forward_credentials"):
        HostSettings("box", forward_credentials="PATH")
    entry = HostSettings("box", forward_credentials="CLAUDE_CODE_OAUTH_TOKEN")
    assert entry.options() == {"forward_credentials": "CLAUDE_CODE_OAUTH_TOKEN"}
    assert entry.executor().forward_credentials == "CLAUDE_CODE_OAUTH_TOKEN"
