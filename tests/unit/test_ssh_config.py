"""Resolving an alias like ``ssh box`` and checking host keys like ssh, for the fabric backend.

``ssh -G`` is the oracle where it exists: the paramiko path (no OpenSSH client) must resolve
the same hosts to the same settings.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest

from remote_executors.executors.ssh._config import (
    ResolvedHost,
    expand_tokens,
    inline_includes,
    parse_ssh_g,
    resolve,
)
from remote_executors.executors.ssh._host_keys import AcceptNew, load_known_keys

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # no event-loop behaviour here


def write_config(tmp_path: Path) -> Path:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "10-box.conf").write_text(
        "Host box\n    HostName box.example\n    Port 2222\n    User alice\n"
    )
    (conf / "20-jump.conf").write_text("Host jumped\n    ProxyJump alice@box:2222,bob@other\n")
    (tmp_path / "nested.conf").write_text(f"Include {conf}/*.conf\n")
    config = tmp_path / "config"
    config.write_text(
        # At the top, as `Include ~/.ssh/config.d/*` usually is (inside a Host block it
        # would apply to that host only; see _ssh_config.inline_includes).
        f'Include "{tmp_path}/nested.conf"\n'
        "Host proxied\n"
        "    HostName 10.1.2.3\n"
        "    ProxyCommand nc %h %p\n"
        "    HostKeyAlias proxied-key\n"
        "    IdentityFile ~/.ssh/id_proxied\n"
        "    UserKnownHostsFile /k/one /k/two\n"
        "Match originalhost matched\n"
        "    HostName matched.example\n"
        "    IdentitiesOnly yes\n"
        "    IdentityAgent none\n"
    )
    return config


async def resolve_without_ssh(alias: str, config: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    return await resolve(alias, ssh_config=str(config))


@pytest.mark.parametrize("via", ["ssh -G", "paramiko"])
async def test_both_resolvers_agree_on_include_match_and_proxies(
    via: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path)
    if via == "paramiko":

        async def get(alias: str) -> ResolvedHost:
            return await resolve_without_ssh(alias, config, monkeypatch)
    else:
        if shutil.which("ssh") is None:
            pytest.fail("the OpenSSH client is needed as the oracle (CI installs it)")

        async def get(alias: str) -> ResolvedHost:
            return await resolve(alias, ssh_config=str(config))

    box = await get("box")  # reached through two levels of Include and a glob
    assert (box.hostname, box.port, box.user) == ("box.example", 2222, "alice")
    assert box.known_hosts_name == "[box.example]:2222"

    proxied = await get("proxied")
    assert proxied.proxy_command == "nc 10.1.2.3 22"
    assert proxied.known_hosts_name == "proxied-key"  # HostKeyAlias, no port
    assert proxied.user_known_hosts == ("/k/one", "/k/two")
    assert proxied.identity_files[0] == str(Path("~/.ssh/id_proxied").expanduser())

    jumped = await get("jumped")
    assert jumped.proxy_jump == ("alice@box:2222", "bob@other")

    matched = await get("matched")
    assert matched.hostname == "matched.example"
    assert matched.identities_only and not matched.use_agent


async def test_options_come_first_as_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path)
    with_ssh = await resolve("box", ssh_config=str(config), options={"Port": "2022"})
    monkeypatch.setattr(shutil, "which", lambda name: None)
    without = await resolve("box", ssh_config=str(config), options={"Port": "2022"})
    assert with_ssh.port == without.port == 2022


def test_include_depth_is_bounded(tmp_path: Path) -> None:
    loop = tmp_path / "loop.conf"
    loop.write_text(f'Include "{loop}"\n')
    with pytest.raises(OSError, match="nested deeper"):
        inline_includes(str(loop), str(tmp_path))


def test_parse_ssh_g_keeps_repeated_keys_only_where_ssh_repeats_them() -> None:
    parsed = parse_ssh_g(
        "user bob\nidentityfile ~/.ssh/a\nidentityfile ~/.ssh/b\nport 22\nport 23\n"
    )
    assert parsed["identityfile"] == ["~/.ssh/a", "~/.ssh/b"]
    assert parsed["port"] == ["22"]  # the first value wins, as in ssh_config


def test_tokens() -> None:
    assert expand_tokens("ssh -W %h:%p %%r %n %z", {"h": "H", "p": "2", "n": "box"}) == (
        "ssh -W H:2 %r box %z"
    )


# ---- host keys ------------------------------------------------------------------------


@pytest.fixture
def host_key(tmp_path: Path) -> paramiko.PKey:
    path = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def resolved(tmp_path: Path, **extra: list[str]) -> ResolvedHost:
    return ResolvedHost.from_options(
        "box",
        {
            "hostname": ["10.0.0.9"],
            "port": ["2200"],
            "user": ["u"],
            "userknownhostsfile": [f"{tmp_path}/known_a {tmp_path}/known_b"],
            **extra,
        },
    )


def test_known_keys_are_found_in_any_file_hashed_or_aliased(
    tmp_path: Path, host_key: paramiko.PKey
) -> None:
    line = f"{host_key.get_name()} {host_key.get_base64()}\n"
    hashed = paramiko.HostKeys.hash_host("alias-name")
    (tmp_path / "known_b").write_text(f"{hashed} {line}")
    client = paramiko.SSHClient()
    load_known_keys(client, resolved(tmp_path, hostkeyalias=["alias-name"]))
    # Filed under the name paramiko asks for (host and port), found via the alias.
    assert client.get_host_keys().lookup("[10.0.0.9]:2200")[host_key.get_name()] == host_key

    other = paramiko.SSHClient()
    load_known_keys(other, resolved(tmp_path))  # no alias: [10.0.0.9]:2200 is unknown
    assert other.get_host_keys().lookup("[10.0.0.9]:2200") is None


def test_accept_new_records_the_key_as_ssh_would(tmp_path: Path, host_key: paramiko.PKey) -> None:
    target = resolved(tmp_path, hashknownhosts=["yes"])
    client = paramiko.SSHClient()
    AcceptNew(target).missing_host_key(client, "[10.0.0.9]:2200", host_key)
    written = (tmp_path / "known_a").read_text()
    assert written.startswith("|1|") and host_key.get_base64() in written
    assert (tmp_path / "known_a").stat().st_mode & 0o777 == 0o600
    # What was written is what the next connection finds.
    again = paramiko.SSHClient()
    load_known_keys(again, target)
    assert again.get_host_keys().lookup("[10.0.0.9]:2200")[host_key.get_name()] == host_key
