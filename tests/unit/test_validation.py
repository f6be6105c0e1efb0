"""Input checks, SSHExecutor's constructor refusals and its cwd mapping rules.

Nothing here starts ssh: every refusal must happen before anything runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from remote_executors import InvalidInput, SpawnOptions, SSHExecutor
from remote_executors.executors._validate import (
    absolute_local,
    check_env,
    check_host,
    check_path,
)

# --- check_host ------------------------------------------------------------------

GOOD_HOSTS = [
    "box",
    "Box-2",
    "user@box",
    "u_1@host.example.com",
    "10.0.0.1",
    "[::1]",
    "[fe80::1%eth0]",
    "box:2222",
    "alias+dev",
    "~box",
    "a" * 200,
]

BAD_HOSTS = [
    "",
    "-oProxyCommand=touch /tmp/pwned",
    "-oProxyCommand=x",
    "-",
    "--",
    "-F/tmp/evil",
    " box",
    "box ",
    "bo x",
    "box\t",
    "box\n",
    "box\nHost evil",
    "bo'x",
    '"box"',
    "`box`",
    "$(box)",
    "box;id",
    "box|id",
    "box&",
    "box*",
    "box?",
    "box/x",
    "box\\x",
    "box,other",
    "bóx",
    "box\x00",
    "box\x7f",
]


@pytest.mark.parametrize("host", GOOD_HOSTS)
def test_check_host_accepts_ssh_destinations(host: str) -> None:
    assert check_host(host) == host


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_check_host_refuses(host: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_host(host)
    error = info.value
    assert isinstance(error, ValueError)
    if host:
        assert repr(host) in str(error)
        assert "~/.ssh/config" in str(error)


@pytest.mark.parametrize("host", [None, 1, b"box", ["box"]])
def test_check_host_refuses_non_strings(host: object) -> None:
    with pytest.raises(InvalidInput):
        check_host(host)  # type: ignore[arg-type]


def test_dash_hosts_are_told_why() -> None:
    with pytest.raises(InvalidInput, match="starts with '-'"):
        check_host("-oProxyCommand=x")


# --- check_path ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/a b/c", "rel/x", "./-x", "~/code", "/weird/'\"$(x)`y`/🐍", "/x-", "a-b", "/-x"],
)
def test_check_path_accepts(path: str) -> None:
    assert check_path(path, host="box") == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("/a\nb", "control character"),
        ("/a\rb", "control character"),
        ("/a\tb", "control character"),
        ("/a\x00b", "control character"),
        ("/a\x1bb", "control character"),
        ("/a\x7fb", "control character"),
        ("-rf", "starts with '-'"),
        ("--", "starts with '-'"),
        ("-", "starts with '-'"),
    ],
)
def test_check_path_refuses(path: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as info:
        check_path(path, host="box", what="working directory")
    assert info.value.host == "box"
    assert "box" in str(info.value)


def test_check_path_refuses_non_strings() -> None:
    with pytest.raises(InvalidInput):
        check_path(None, host="box")  # type: ignore[arg-type]


# --- check_env -------------------------------------------------------------------


def test_check_env_accepts_and_copies() -> None:
    env = {"A": "", "_b9": "x\ny", "PATH": "/bin", "Z": "$(id) `id` 'q' \"q\" 🐍"}
    out = check_env(env, host="box")
    assert out == env and out is not env


@pytest.mark.parametrize("name", ["", "1A", "A-B", "A B", "A=B", "A.B", "É", "A\n", "$A"])
def test_check_env_refuses_names(name: str) -> None:
    with pytest.raises(InvalidInput, match="name") as info:
        check_env({name: "v"}, host="box")
    assert "box" in str(info.value)


@pytest.mark.parametrize("value", ["a\x00b", None, 1, b"v"])
def test_check_env_refuses_values(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_env({"SECRET": value}, host="box")  # type: ignore[dict-item]
    message = str(info.value)
    assert "SECRET" in message and "box" in message
    # The value itself may be a secret: never echoed.
    assert "a\x00b" not in message


def test_check_env_refuses_non_string_names() -> None:
    with pytest.raises(InvalidInput):
        check_env({1: "v"}, host="box")  # type: ignore[dict-item]


# --- absolute_local ----------------------------------------------------------------


def test_absolute_local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", "/home/me")
    monkeypatch.chdir(tmp_path)
    assert absolute_local("~") == "/home/me"
    assert absolute_local("~/code/../shop/./x/") == "/home/me/shop/x"
    assert absolute_local("/a//b/./c/..") == "/a/b"
    assert absolute_local("/..") == "/"
    assert absolute_local("rel/x") == os.path.join(os.path.realpath(tmp_path), "rel", "x")
    assert absolute_local(Path("/p q/r")) == "/p q/r"
    assert absolute_local("./-x") == os.path.join(os.path.realpath(tmp_path), "-x")


@pytest.mark.parametrize("path", ["", "-x", "/a\nb", "/a\x00b"])
def test_absolute_local_refuses(path: str) -> None:
    with pytest.raises(InvalidInput) as info:
        absolute_local(path, host="box")
    assert info.value.host == "box"


# --- SSHExecutor(...) refusals --------------------------------------------------------


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_executor_refuses_bad_hosts(host: str) -> None:
    with pytest.raises(InvalidInput):
        SSHExecutor(host)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backend": "paramiko"},
        {"backend": "OpenSSH"},
        {"claude_path": ""},
        {"claude_path": "-x"},
        {"claude_path": "/opt/claude\n"},
        {"ssh_config": ""},
        {"ssh_config": "-oProxyCommand=x"},
        {"ssh_config": "/etc/ssh\n/x"},
        {"path_map": {"/home/me/code": "../code"}},  # out of the remote home
        {"path_map": {"/home/me/code": "~/code/../.."}},
        {"path_map": {"/home/me/code": "~root/code"}},  # ~user: not supported
        {"path_map": {"/home/me/code": ""}},
        {"path_map": {"/home/me/code": "-rf"}},
        {"path_map": {"/home/me/code": "/srv/a\nb"}},
        {"path_map": {"": "/srv"}},
        {"path_map": {"/a\nb": "/srv"}},
        {"path_map": {"-x": "/srv"}},
        {"ssh_options": {"Proxy Command": "x"}},
        {"ssh_options": {"A=B": "x"}},
        {"ssh_options": {"-oProxyCommand": "x"}},
        {"ssh_options": {"": "x"}},
        {"ssh_options": {"Ciphers": "a\nHost *"}},
        {"ssh_options": {"Ciphers": "a\rb"}},
        {"ssh_options": {"Ciphers": "a\x00b"}},
        {"ssh_options": {"Ünïcode": "x"}},
    ],
)
def test_executor_refuses_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as info:
        SSHExecutor("box", **kwargs)  # type: ignore[arg-type]
    assert info.value.host == "box"
    assert "box" in str(info.value)


def test_executor_accepts_good_options(tmp_path: Path) -> None:
    ex = SSHExecutor(
        "user@box",
        ssh_config=tmp_path / "config",
        claude_path="/opt/claude code/claude",
        path_map={"~/code": "/srv/code", "/tmp/x": "/"},
        ssh_options={"ServerAliveInterval": "5", "Ciphers": "aes128-ctr,aes256-ctr"},
    )
    assert ex.name == ex.host == "user@box"
    assert repr(ex) == "SSHExecutor('user@box')"


async def _refused(ex: SSHExecutor, options: SpawnOptions) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        await ex.spawn(options)
    return info.value


@pytest.mark.anyio
async def test_spawn_and_run_refuse_bad_input_before_connecting() -> None:
    # "box" does not resolve anywhere: any attempt to connect would fail differently.
    ex = SSHExecutor("box")
    for options in [
        SpawnOptions("-oProxyCommand=x"),
        SpawnOptions(""),
        SpawnOptions("cat", ["a\x00b"]),
        SpawnOptions("cat", env={"BAD NAME": "x"}),
        SpawnOptions("cat", env={"A": "x\x00"}),
        SpawnOptions("cat", cwd="/a\nb"),
        SpawnOptions("cat", cwd="-x"),
    ]:
        error = await _refused(ex, options)
        assert error.host == "box"
    with pytest.raises(InvalidInput):
        await ex.run([])
    with pytest.raises(InvalidInput):
        await ex.run(["printf", "a\x00b"])


# --- cwd mapping -------------------------------------------------------------------


@pytest.fixture
def local_home(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HOME", "/home/me")
    return "/home/me"


@pytest.mark.parametrize(
    ("local", "target"),
    [
        ("/home/me/code/shop", (None, "code/shop")),
        ("~/code/shop", (None, "code/shop")),
        ("/home/me", (None, "")),
        ("~", (None, "")),
        ("/home/me/", (None, "")),
        ("/home/me/code/../shop/./x", (None, "shop/x")),
        ("/home/me/a b/'c'/🐍", (None, "a b/'c'/🐍")),
        ("/home/meow/x", ("/home/meow/x", None)),  # a prefix, not the home
        ("/home", ("/home", None)),
        ("/srv/data", ("/srv/data", None)),
        ("/srv/../etc/./x", ("/etc/x", None)),
        ("/home/me/../other", ("/home/other", None)),
        ("/", ("/", None)),
    ],
)
def test_default_mapping_is_home_relative(
    local_home: str, local: str, target: tuple[str | None, str | None]
) -> None:
    assert SSHExecutor("box")._cwd_target(local) == target


def test_home_with_a_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/me/")
    ex = SSHExecutor("box")
    assert ex._cwd_target("/home/me") == (None, "")
    assert ex._cwd_target("/home/me/x") == (None, "x")


def test_relative_local_cwd_is_resolved_here(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = os.path.realpath(tmp_path)
    monkeypatch.setenv("HOME", home)
    monkeypatch.chdir(home)
    assert SSHExecutor("box")._cwd_target("code/x") == (None, "code/x")
    assert SSHExecutor("box")._cwd_target(".") == (None, "")


def test_path_map_longest_prefix_wins(local_home: str) -> None:
    ex = SSHExecutor(
        "box",
        path_map={
            "/home/me/code": "/srv/code",
            "~/code/big": "/data//big/",  # "~" expands; remote is normalised
            "/mnt": "/remote/mnt",
        },
    )
    cases = {
        "/home/me/code": "/srv/code",
        "/home/me/code/shop": "/srv/code/shop",
        "/home/me/code/big": "/data/big",
        "/home/me/code/big/a/b": "/data/big/a/b",
        "/home/me/code/bigger": "/srv/code/bigger",  # prefix match is per component
        "/home/me/code/big/../shop": "/srv/code/shop",
        "/mnt/x": "/remote/mnt/x",
        "/mntx": "/mntx",
    }
    for local, remote in cases.items():
        assert ex._cwd_target(local) == (remote, None), local
    # Outside every mapping: the default rules.
    assert ex._cwd_target("/home/me/other") == (None, "other")
    assert ex._cwd_target("/srv/x") == ("/srv/x", None)


def test_path_map_can_map_the_root(local_home: str) -> None:
    ex = SSHExecutor("box", path_map={"/": "/chroot"})
    assert ex._cwd_target("/") == ("/chroot", None)
    assert ex._cwd_target("/etc/x") == ("/chroot/etc/x", None)
    assert ex._cwd_target("~/x") == ("/chroot/home/me/x", None)


@pytest.mark.anyio
async def test_map_cwd_joins_the_remote_home(local_home: str) -> None:
    ex = SSHExecutor("box", path_map={"/home/me/mapped": "/srv/m"})
    ex._home = "/remote/home"  # what home() would learn from the host
    assert await ex.map_cwd("/home/me/code/x") == "/remote/home/code/x"
    assert await ex.map_cwd("~") == "/remote/home"
    assert await ex.map_cwd("/home/me/mapped/y") == "/srv/m/y"
    assert await ex.map_cwd("/opt/x/../y") == "/opt/y"


@pytest.mark.anyio
async def test_path_map_targets_relative_to_the_remote_home(local_home: str) -> None:
    """``code/shop``, ``~/code/shop`` and ``~`` mean paths under the remote home."""
    ex = SSHExecutor(
        "box",
        path_map={"/work/shop": "code/shop", "/work/lab": "~/lab/", "/work/home": "~"},
    )
    assert ex._cwd_target("/work/shop") == (None, "code/shop")
    assert ex._cwd_target("/work/shop/src") == (None, "code/shop/src")
    assert ex._cwd_target("/work/lab/x") == (None, "lab/x")
    assert ex._cwd_target("/work/home") == (None, "")
    ex._home = "/remote/home"
    assert await ex.map_cwd("/work/shop/src") == "/remote/home/code/shop/src"
    assert await ex.map_cwd("/work/home") == "/remote/home"


@pytest.mark.anyio
async def test_map_cwd_refuses_bad_paths(local_home: str) -> None:
    ex = SSHExecutor("box")
    ex._home = "/remote/home"
    for bad in ["", "/a\nb", "-x"]:
        with pytest.raises(InvalidInput):
            await ex.map_cwd(bad)


def test_jobs_carry_the_mapping_and_the_claude_settings(local_home: str) -> None:
    ex = SSHExecutor("box", claude_path="/opt/claude")
    job = ex._job(SpawnOptions("claude", ["-p"], cwd="/home/me/code", env={"A": "1"}), "spawn")
    assert job.argv == ("claude", "-p")
    assert (job.cwd, job.cwd_home_relative) == (None, "code")
    assert job.find_claude and job.claude_path == "/opt/claude" and job.claude_path_strict
    assert job.heartbeat_misses > 0
    assert dict(job.env) == {"A": "1"}

    job = SSHExecutor("box")._job(SpawnOptions("ls", cwd="/srv"), "run")
    assert (job.cwd, job.cwd_home_relative) == ("/srv", None)
    assert not job.find_claude and not job.claude_path_strict and job.claude_path is None
    assert job.heartbeat_misses == 0
    assert SSHExecutor("box")._job(SpawnOptions("ls"), "run").cwd_home_relative is None
