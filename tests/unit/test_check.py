"""``check()`` against fake executors: how failures map to steps, version rules, the probes.

``ShellBox`` is a "remote" whose commands run under ``/bin/sh`` here with a
home of its own, a clean environment and a PATH we control, so the step
scripts (credentials, project, rsync, claude) run for real. The other fakes
raise exactly the typed errors a real executor raises, or never answer.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import claude_agent_sdk._cli_version
import pytest
from anyio.abc import Process

import remote_executors as rx
from remote_executors.check import CheckReport, CheckStep, check, compare_cli_versions
from remote_executors.sdk import expected_cli_version

pytestmark = pytest.mark.anyio

EXPECTED = claude_agent_sdk._cli_version.__cli_version__
ALL_STEPS = [
    "connect",
    "host_key",
    "auth",
    "platform",
    "claude",
    "claude_version",
    "project",
    "credentials",
    "rsync_local",
    "rsync_remote",
    "sftp",
]
REMOTE_AFTER_CONNECT = ["platform", "claude", "claude_version", "project", "credentials"]
SECRET = "sk-ant-api03-UNIT-TEST-SECRET-d0n7-l34k-m3"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def statuses(report: CheckReport) -> dict[str, str]:
    return {step.name: step.status for step in report.steps}


def step(report: CheckReport, name: str) -> CheckStep:
    found = report.step(name)
    assert found is not None, name
    return found


class ShellBox:
    """A "remote" machine: commands run under /bin/sh here, as sshd would run them.

    Its own HOME, a clean environment (nothing inherited from the test
    process, so no real credentials leak in), ``bin`` first on PATH. Every
    ``run`` is recorded with what it printed.
    """

    def __init__(self, root: Path, *, env: Mapping[str, str] | None = None) -> None:
        self.home = root / "box-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.bin = root / "box-bin"
        self.bin.mkdir(exist_ok=True)
        self.env = {
            "HOME": str(self.home),
            "PATH": f"{self.bin}:{SYSTEM_PATH}",
            "SHELL": "/bin/sh",
            "LC_ALL": "C",
            **(env or {}),
        }
        self.calls: list[tuple[tuple[str, ...], bytes, bytes]] = []

    @property
    def name(self) -> str:
        return "box"

    async def spawn(self, options: rx.SpawnOptions) -> Process:
        raise AssertionError("check() must not spawn on a generic executor")

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = 30.0,
    ) -> rx.CommandResult:
        try:
            with anyio.fail_after(timeout):
                done = await anyio.run_process(
                    ["/bin/sh", "-c", 'exec "$@"', "sh", *argv],
                    input=input,
                    cwd=cwd or str(self.home),
                    env={**self.env, **(env or {})},
                    check=False,
                )
        except TimeoutError:
            raise rx.CommandTimeout(f"{argv[0]} timed out on box", host="box") from None
        self.calls.append((tuple(argv), done.stdout, done.stderr))
        return rx.CommandResult(done.returncode, done.stdout, done.stderr)

    async def home(self) -> str:
        return str(self.home)

    async def map_cwd(self, local_cwd: str) -> str:
        return str(self.home / Path(local_cwd).name)

    async def aclose(self) -> None:
        return None


class Failing(ShellBox):
    """Every command fails with ``error`` (a connection that never works)."""

    def __init__(self, root: Path, error: Exception) -> None:
        super().__init__(root)
        self.error = error
        self.attempts = 0

    async def run(self, argv: Sequence[str], **kwargs: Any) -> rx.CommandResult:
        self.attempts += 1
        raise self.error


class SshSays(ShellBox):
    """Every command ends as ssh ends when it fails itself: exit 255 and its stderr."""

    def __init__(self, root: Path, stderr: str) -> None:
        super().__init__(root)
        self.stderr = stderr.encode()

    async def run(self, argv: Sequence[str], **kwargs: Any) -> rx.CommandResult:
        return rx.CommandResult(255, b"", self.stderr)


class Freezes(ShellBox):
    """Answers ``answered`` commands, then never again (a frozen link).

    ``honour_timeout``: raise CommandTimeout at ``timeout`` like real executors;
    otherwise hang past it (check()'s own bound must still end the step).
    """

    def __init__(self, root: Path, *, answered: int, honour_timeout: bool = True) -> None:
        super().__init__(root)
        self.answered = answered
        self.honour_timeout = honour_timeout
        self.hung = 0

    async def run(self, argv: Sequence[str], **kwargs: Any) -> rx.CommandResult:
        if self.answered > 0:
            self.answered -= 1
            return await super().run(argv, **kwargs)
        self.hung += 1
        if self.honour_timeout:
            with anyio.move_on_after(kwargs.get("timeout", 30.0)):
                await anyio.sleep_forever()
            raise rx.CommandTimeout(f"{argv[0]} timed out on box", host="box")
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


class Slow(ShellBox):
    """Answers every command, each after ``delay`` seconds."""

    def __init__(self, root: Path, delay: float) -> None:
        super().__init__(root)
        self.delay = delay

    async def run(self, argv: Sequence[str], **kwargs: Any) -> rx.CommandResult:
        await anyio.sleep(self.delay)
        return await super().run(argv, **kwargs)


@pytest.fixture
def box(tmp_path: Path) -> ShellBox:
    """A ready box: a claude of the expected version, an API key in settings.json."""
    b = ShellBox(tmp_path)
    script(b.bin / "claude", f'echo "{EXPECTED} (Claude Code)"')
    settings = b.home / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"env": {"ANTHROPIC_API_KEY": SECRET}}, indent=2))
    return b


# ---- connection failures -----------------------------------------------------------------

UNREACHABLE = rx.HostUnreachable(
    "box refused the connection: no SSH server is listening there. Check that sshd runs.",
    host="box",
    detail="ssh: connect to host 10.0.0.1 port 22: Connection refused",
)
AUTH = rx.AuthenticationFailed(
    "Authentication to box failed: the server refused every key offered.",
    host="box",
    detail="me@10.0.0.1: Permission denied (publickey).",
)
UNKNOWN_KEY = rx.HostKeyError(
    "The host key of box is not in known_hosts, so the connection was refused.",
    host="box",
    detail="Host key verification failed.",
)
CHANGED_KEY = rx.HostKeyError(
    "The host key of box has changed since it was recorded in known_hosts.",
    host="box",
    detail="Host key verification failed.",
)
CONFIG = rx.ConnectionFailed(
    "ssh refused its configuration for box. Fix the ssh config file named below.",
    host="box",
    detail="/home/me/.ssh/config: line 3: Bad configuration option: hostnme",
)

# error -> expected (connect, host_key, auth) statuses and the step whose hint is the message
CONNECT_CASES = {
    "unreachable": (UNREACHABLE, ("fail", "skip", "skip"), "connect"),
    "auth": (AUTH, ("ok", "ok", "fail"), "auth"),
    "unknown-host-key": (UNKNOWN_KEY, ("ok", "fail", "skip"), "host_key"),
    "changed-host-key": (CHANGED_KEY, ("ok", "fail", "skip"), "host_key"),
    "config": (CONFIG, ("fail", "skip", "skip"), "connect"),
}


@pytest.mark.parametrize("case", list(CONNECT_CASES))
async def test_connection_errors_map_to_steps(case: str, tmp_path: Path) -> None:
    error, expected, failed = CONNECT_CASES[case]
    executor = Failing(tmp_path, error)
    report = await check(executor, "/some/project", timeout=5)

    assert [s.name for s in report.steps] == ALL_STEPS
    got = statuses(report)
    assert (got["connect"], got["host_key"], got["auth"]) == expected
    assert executor.attempts == 1  # one connection attempt, nothing retried
    assert not report.ok
    assert step(report, failed).hint == error.message  # says what to do, names the host
    assert "box" in step(report, failed).hint
    for name in [*REMOTE_AFTER_CONNECT, "rsync_remote"]:
        assert got[name] == "skip", name
        assert step(report, name).detail.startswith("not checked: ")
    # What happens here does not depend on the host.
    assert got["rsync_local"] != "skip"
    # Every step that is not ok says why (skip) or what to do (fail/warn).
    for s in report.steps:
        if s.status == "skip":
            assert s.detail, s
        elif s.status in ("fail", "warn"):
            assert s.hint, s


async def test_connection_failure_detail_is_what_ssh_said(tmp_path: Path) -> None:
    report = await check(Failing(tmp_path, UNREACHABLE), timeout=5)
    assert step(report, "connect").detail == UNREACHABLE.detail
    report = await check(Failing(tmp_path, CHANGED_KEY), timeout=5)
    assert "changed" in step(report, "host_key").detail
    assert step(report, "auth").detail == "not tried: ssh checks the host key first"
    report = await check(Failing(tmp_path, UNKNOWN_KEY), timeout=5)
    assert step(report, "host_key").detail == "not in known_hosts"


@pytest.mark.parametrize(
    ("stderr", "failed"),
    [
        ("ssh: connect to host 10.0.0.1 port 22: Connection refused", "connect"),
        ("me@10.0.0.1: Permission denied (publickey).", "auth"),
        ("Host key verification failed.", "host_key"),
    ],
)
async def test_ssh_exit_255_is_classified_like_a_raised_error(
    stderr: str, failed: str, tmp_path: Path
) -> None:
    report = await check(SshSays(tmp_path, stderr), timeout=5)
    assert step(report, failed).status == "fail"
    expected = "not in known_hosts" if failed == "host_key" else stderr
    assert step(report, failed).detail == expected
    assert step(report, "claude").status == "skip"


async def test_remote_shell_broken_is_a_platform_failure(tmp_path: Path) -> None:
    error = rx.RemoteSetupError(
        "The remote shell on box exited (status 127) before starting the process.", host="box"
    )
    report = await check(Failing(tmp_path, error), timeout=5)
    got = statuses(report)
    assert (got["connect"], got["host_key"], got["auth"], got["platform"]) == (
        "ok",
        "ok",
        "ok",
        "fail",
    )
    assert step(report, "platform").hint == error.message
    assert got["claude"] == "skip"


# ---- a ready box ---------------------------------------------------------------------------


async def test_ready_box_all_ok(box: ShellBox, tmp_path: Path) -> None:
    (box.home / "shop").mkdir()
    seen: list[CheckStep] = []
    report = await check(box, str(tmp_path / "shop"), timeout=10, on_step=seen.append)

    assert seen == list(report.steps)  # every step, as it completed, in order
    assert [s.name for s in report.steps] == ALL_STEPS
    got = statuses(report)
    assert all(got[name] == "ok" for name in ALL_STEPS[:-2]), got
    assert report.ok
    uname = os.uname()
    assert step(report, "platform").detail == f"{uname.sysname} {uname.machine}"
    assert step(report, "auth").detail.startswith("logged in as ")
    # A generic executor does not say where claude is; its version is still read.
    assert step(report, "claude").detail == f"claude {EXPECTED}"
    assert step(report, "claude_version").detail == f"{EXPECTED}, as the SDK expects"
    assert step(report, "project").detail == str(box.home / "shop")
    assert step(report, "credentials").detail == (
        f"uses ANTHROPIC_API_KEY in {box.home}/.claude/settings.json"
    )
    for s in report.steps:
        assert s.seconds >= 0
        if s.status == "ok":
            assert s.hint == ""


async def test_report_to_dict_is_json(box: ShellBox) -> None:
    report = await check(box, timeout=10)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["host"] == "box"
    assert data["ok"] is report.ok
    assert [s["name"] for s in data["steps"]] == ALL_STEPS
    assert set(data["steps"][0]) == {"name", "title", "status", "detail", "hint", "seconds"}
    assert step(report, "project").status == "skip"
    assert step(report, "project").detail == "no project directory given"


def test_report_ok_means_no_failure() -> None:
    warn = CheckStep("rsync_local", "rsync here", "warn", "old", "upgrade")
    skip = CheckStep("project", "Project directory", "skip", "no project directory given")
    fail = CheckStep("claude", "Claude CLI found", "fail", "not found", "install it")
    assert CheckReport("box", (warn, skip)).ok
    assert not CheckReport("box", (warn, fail)).ok
    assert CheckReport("box", ()).ok


async def test_timeout_must_be_positive(box: ShellBox) -> None:
    with pytest.raises(rx.InvalidInput):
        await check(box, timeout=0)


# ---- claude and its version -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "status", "says"),
    [
        ("2.1.330 (Claude Code)", "ok", "2.1.330, as the SDK expects"),
        ("2.1.329 (Claude Code)", "warn", "older"),
        ("2.0.999 (Claude Code)", "warn", "older"),
        ("1.9.999", "warn", "older"),
        ("2.1.331 (Claude Code)", "ok", "newer"),
        ("2.2.0", "ok", "newer"),
        ("3.0.0 (Claude Code)", "warn", "newer major"),
        ("Claude Code, unknown build", "warn", "cannot read a version"),
        ("", "warn", "cannot read a version from 'nothing'"),
    ],
)
def test_cli_version_comparison(remote: str, status: str, says: str) -> None:
    found = compare_cli_versions(remote, "2.1.330", "box")
    assert found.status == status
    assert says in found.detail
    if status == "warn":
        assert found.hint
    if "older" in says or "cannot read" in says:
        assert "claude update" in found.hint and "box" in found.hint
        assert "`remote-executors install box`" in found.hint


def test_cli_version_unknown_expectation_is_skipped() -> None:
    assert compare_cli_versions("2.1.330", None, "box").status == "skip"
    assert compare_cli_versions("2.1.330", "garbage", "box").status == "skip"


def test_expected_cli_version_is_the_sdks() -> None:
    """The seam reads the SDK's private _cli_version: pinned here."""
    assert expected_cli_version() == EXPECTED
    assert compare_cli_versions(f"{EXPECTED} (Claude Code)", EXPECTED, "b").status == "ok"


async def test_older_remote_cli_warns(box: ShellBox) -> None:
    script(box.bin / "claude", 'echo "2.0.1 (Claude Code)"')
    report = await check(box, timeout=10)
    assert step(report, "claude").status == "ok"
    version = step(report, "claude_version")
    assert version.status == "warn"
    assert version.detail.startswith("CLI older than the SDK expects: 2.0.1")
    assert report.ok  # a warning is not a failure


async def test_no_claude_fails_and_skips_its_version(box: ShellBox) -> None:
    (box.bin / "claude").unlink()
    report = await check(box, timeout=10)
    assert step(report, "claude").status == "fail"
    assert "Install it there" in step(report, "claude").hint
    assert step(report, "claude_version").status == "skip"
    assert step(report, "credentials").status == "ok"  # the rest still runs


async def test_claude_that_does_not_run_fails(box: ShellBox) -> None:
    script(box.bin / "claude", 'echo "cannot execute binary file" >&2; exit 2')
    report = await check(box, timeout=10)
    claude = step(report, "claude")
    assert claude.status == "fail"
    assert "exited 2: cannot execute binary file" in claude.detail
    assert "Reinstall" in claude.hint
    assert step(report, "claude_version").status == "skip"
    assert step(report, "credentials").status == "ok"


async def test_local_executor(tmp_path: Path) -> None:
    from remote_executors.sdk import find_local_claude

    report = await check(rx.LocalExecutor(), str(tmp_path), timeout=10)
    assert report.host == "local"
    for name in ("connect", "host_key", "auth"):
        assert (step(report, name).status, step(report, name).detail) == ("ok", "local")
    assert step(report, "claude").detail == f"{find_local_claude()} {EXPECTED}"
    assert step(report, "claude_version").status == "ok"
    assert step(report, "project").detail == str(tmp_path)
    assert step(report, "rsync_remote").status == "skip"

    missing = await check(rx.LocalExecutor(), str(tmp_path / "nope"), timeout=10)
    assert step(missing, "project").status == "fail"
    assert step(missing, "project").hint == "Create it, or pick another cwd."


# ---- project -------------------------------------------------------------------------------


async def test_project_missing(box: ShellBox) -> None:
    report = await check(box, "/local/code/shop", timeout=10)
    project = step(report, "project")
    assert project.status == "fail"
    remote = f"{box.home}/shop"
    assert project.detail == f"{remote} doesn't exist on box"
    assert remote in project.hint and "path_map" in project.hint and "box" in project.hint
    assert not report.ok


async def test_project_is_a_file(box: ShellBox) -> None:
    (box.home / "shop").write_text("")
    report = await check(box, "/local/code/shop", timeout=10)
    assert step(report, "project").status == "fail"
    assert "is not a directory" in step(report, "project").detail


async def test_project_through_a_symlink_shows_both(box: ShellBox) -> None:
    (box.home / "real").mkdir()
    (box.home / "shop").symlink_to(box.home / "real")
    report = await check(box, "/local/code/shop", timeout=10)
    assert step(report, "project").status == "ok"
    assert step(report, "project").detail == f"{box.home}/shop (-> {box.home}/real)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root enters any directory")
async def test_project_not_enterable(box: ShellBox) -> None:
    (box.home / "shop").mkdir(mode=0o000)
    try:
        report = await check(box, "/local/code/shop", timeout=10)
    finally:
        (box.home / "shop").chmod(0o700)
    assert step(report, "project").status == "fail"
    assert "cannot be entered" in step(report, "project").detail


# ---- credentials ---------------------------------------------------------------------------


def write_settings(box: ShellBox, settings: object, config: Path | None = None) -> Path:
    path = (config or box.home / ".claude") / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings if isinstance(settings, str) else json.dumps(settings, indent=2))
    return path


async def credentials(box: ShellBox) -> CheckStep:
    return step(await check(box, timeout=10), "credentials")


async def test_credentials_none(box: ShellBox) -> None:
    write_settings(box, {"env": {"ANTHROPIC_API_KEY": "", "OTHER": SECRET}, "model": "x"})
    found = await credentials(box)
    assert found.status == "fail"
    assert found.detail.startswith("none found")
    assert f"{box.home}/.claude/settings.json" in found.hint
    assert "/login" in found.hint and "ClaudeAgentOptions(env=" in found.hint


@pytest.mark.parametrize(
    "name", ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"]
)
async def test_credentials_in_the_environment(name: str, box: ShellBox) -> None:
    write_settings(box, {})
    box.env[name] = SECRET
    found = await credentials(box)
    assert (found.status, found.detail) == ("ok", f"uses {name} in the environment")


async def test_credentials_file(box: ShellBox) -> None:
    write_settings(box, {})
    (box.home / ".claude" / ".credentials.json").write_text(
        json.dumps({"claudeAiOauth": {"accessToken": SECRET}})
    )
    found = await credentials(box)
    assert (found.status, found.detail) == ("ok", f"uses {box.home}/.claude/.credentials.json")


async def test_credentials_settings_on_one_line_or_many(box: ShellBox) -> None:
    write_settings(box, '{"env":{"CLAUDE_CODE_OAUTH_TOKEN":"' + SECRET + '","A":"b"}}')
    assert (await credentials(box)).detail == (
        f"uses CLAUDE_CODE_OAUTH_TOKEN in {box.home}/.claude/settings.json"
    )
    write_settings(box, '{\n  "env": {\n    "ANTHROPIC_AUTH_TOKEN"\n  :\n  "' + SECRET + '"\n}}')
    assert (await credentials(box)).detail == (
        f"uses ANTHROPIC_AUTH_TOKEN in {box.home}/.claude/settings.json"
    )


async def test_credentials_api_key_helper_and_saved_login(box: ShellBox) -> None:
    write_settings(box, {"apiKeyHelper": "~/bin/get-key.sh"})
    assert (await credentials(box)).detail == (
        f"uses apiKeyHelper in {box.home}/.claude/settings.json"
    )
    write_settings(box, {})
    (box.home / ".claude.json").write_text(json.dumps({"primaryApiKey": SECRET}))
    assert (await credentials(box)).detail == (
        f"uses API key saved by /login in {box.home}/.claude.json"
    )


async def test_credentials_cloud_provider(box: ShellBox) -> None:
    write_settings(box, {"env": {"CLAUDE_CODE_USE_BEDROCK": "1"}})
    found = await credentials(box)
    assert found.status == "ok"
    assert "CLAUDE_CODE_USE_BEDROCK" in found.detail and "not checked" in found.detail


async def test_credentials_follow_claude_config_dir(box: ShellBox) -> None:
    write_settings(box, {})  # ~/.claude has none
    config = box.home / "cfg"
    write_settings(box, {"env": {"ANTHROPIC_API_KEY": SECRET}}, config)
    box.env["CLAUDE_CONFIG_DIR"] = str(config)
    assert (await credentials(box)).detail == f"uses ANTHROPIC_API_KEY in {config}/settings.json"


async def test_credentials_only_in_login_profile(box: ShellBox) -> None:
    write_settings(box, {})
    (box.home / ".profile").write_text(f"export ANTHROPIC_API_KEY={SECRET}\n")
    found = await credentials(box)
    assert found.status == "fail"
    assert "ANTHROPIC_API_KEY is set only for login shells" in found.detail
    assert "~/.bashrc" in found.hint


async def test_no_secret_leaves_the_box(box: ShellBox, caplog: pytest.LogCaptureFixture) -> None:
    """Values are tested and cut away there: they are not in any output, argv, report or log."""
    caplog.set_level(logging.DEBUG)
    (box.home / ".claude" / ".credentials.json").write_text(json.dumps({"t": SECRET}))
    (box.home / ".claude.json").write_text(json.dumps({"primaryApiKey": SECRET}))
    (box.home / ".profile").write_text(f"export ANTHROPIC_AUTH_TOKEN={SECRET}\n")
    box.env["CLAUDE_CODE_OAUTH_TOKEN"] = SECRET
    report = await check(box, timeout=10)
    assert step(report, "credentials").status == "ok"
    assert box.calls
    for argv, stdout, stderr in box.calls:
        assert SECRET not in " ".join(argv)
        assert SECRET.encode() not in stdout + stderr
    assert SECRET not in json.dumps(report.to_dict())
    assert SECRET not in repr(report)
    assert SECRET not in caplog.text

    # Also when nothing the CLI can use is found and the login shell is probed.
    write_settings(box, {"env": {"SOMETHING_ELSE": SECRET}})
    (box.home / ".claude" / ".credentials.json").unlink()
    (box.home / ".claude.json").unlink()
    del box.env["CLAUDE_CODE_OAUTH_TOKEN"]
    box.calls.clear()
    report = await check(box, timeout=10)
    assert "only for login shells" in step(report, "credentials").detail
    for _argv, stdout, stderr in box.calls:
        assert SECRET.encode() not in stdout + stderr
    assert SECRET not in json.dumps(report.to_dict()) and SECRET not in caplog.text


# ---- rsync ---------------------------------------------------------------------------------

GNU_OK = "rsync  version 3.2.7  protocol version 31"
GNU_OLD = "rsync  version 3.2.3  protocol version 31"
OPENRSYNC = "openrsync: protocol version 29\nrsync version 2.6.9 compatible"


GNU_SAFE = "rsync  version 3.4.1  protocol version 32"


@pytest.mark.parametrize(
    ("version", "status", "says"),
    [
        (GNU_SAFE, "ok", "3.4.1"),
        (GNU_OK, "ok", "3.2.7"),
        (GNU_OLD, "warn", "too old"),
        (OPENRSYNC, "warn", "openrsync"),
    ],
)
async def test_rsync_versions_on_both_sides(
    version: str, status: str, says: str, box: ShellBox, tmp_path: Path, monkeypatch: Any
) -> None:
    local_bin = tmp_path / "local-bin"
    script(local_bin / "rsync", f"printf '%s\\n' '{version}'")
    script(box.bin / "rsync", f"printf '%s\\n' '{version}'")
    monkeypatch.setenv("PATH", f"{local_bin}:{os.environ['PATH']}")
    report = await check(box, timeout=10)
    for name, where in (("rsync_local", local_bin), ("rsync_remote", box.bin)):
        found = step(report, name)
        if version == GNU_OK and name == "rsync_local":
            # Usable, but a hostile remote could use its CVEs against this machine.
            assert found.status == "warn", found
            assert "CVE-2024-12086" in found.detail and "3.4.0" in found.hint
            assert "TailSessionSync" in found.hint
            continue
        assert found.status == status, found
        assert says in found.detail
        assert str(where / "rsync") in found.detail
        if status == "warn":
            assert "Install GNU rsync 3.2.4 or newer" in found.hint
            assert "TailSessionSync" in found.hint
    assert report.ok  # rsync is only needed by RsyncSessionSync


async def test_rsync_missing_on_both_sides(box: ShellBox, tmp_path: Path, monkeypatch: Any) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    box.env["PATH"] = str(box.bin)  # the probe's own tools are shell builtins
    report = await check(box, timeout=10)
    local, remote = step(report, "rsync_local"), step(report, "rsync_remote")
    assert (local.status, local.detail) == ("warn", "not found on PATH")
    assert remote.status == "warn" and "rsync is missing on box" in remote.detail
    assert "Install GNU rsync" in local.hint and "Install GNU rsync" in remote.hint


# ---- never hangs ---------------------------------------------------------------------------


@pytest.mark.parametrize("honour_timeout", [True, False], ids=["timeout", "ignores-timeout"])
async def test_connect_that_never_answers(honour_timeout: bool, tmp_path: Path) -> None:
    executor = Freezes(tmp_path, answered=0, honour_timeout=honour_timeout)
    started = time.monotonic()
    report = await check(executor, "/x/shop", timeout=0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, elapsed
    connect = step(report, "connect")
    assert connect.status == "fail"
    assert connect.detail == "no answer from box within 0.5 s"
    assert "box" in connect.hint
    assert all(step(report, n).status == "skip" for n in [*REMOTE_AFTER_CONNECT, "rsync_remote"])
    assert executor.hung == 1  # no further waiting once it did not answer


@pytest.mark.parametrize("honour_timeout", [True, False], ids=["timeout", "ignores-timeout"])
async def test_link_that_freezes_mid_check(honour_timeout: bool, tmp_path: Path) -> None:
    executor = Freezes(tmp_path, answered=1, honour_timeout=honour_timeout)  # the connect only
    script(executor.bin / "claude", f'echo "{EXPECTED}"')
    started = time.monotonic()
    report = await check(executor, "/x/shop", timeout=0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 4, elapsed
    got = statuses(report)
    assert got["connect"] == got["platform"] == "ok"
    claude = step(report, "claude")
    assert (claude.status, claude.detail) == ("fail", "no answer from box within 0.5 s")
    for name in ("claude_version", "project", "credentials", "rsync_remote"):
        assert got[name] == "skip"
        assert "box stopped answering during the Claude CLI found step" in step(report, name).detail
    if honour_timeout:
        assert executor.hung == 2  # the claude step and one "still there?" probe
        assert got["rsync_local"] != "skip"
    else:  # the hang cost check()'s own bound (budget + 1 s): the whole check's time is up
        assert executor.hung == 1
        assert "ran out of time" in step(report, "rsync_local").detail


async def test_a_slow_step_alone_does_not_stop_the_check(tmp_path: Path) -> None:
    """A command that times out while the host still answers: later steps still run."""

    class SlowClaude(ShellBox):
        async def run(self, argv: Sequence[str], **kwargs: Any) -> rx.CommandResult:
            if argv[0] == "claude":
                with anyio.move_on_after(kwargs["timeout"]):
                    await anyio.sleep_forever()
                raise rx.CommandTimeout("claude timed out on box", host="box")
            return await super().run(argv, **kwargs)

    executor = SlowClaude(tmp_path)
    write_settings(executor, {"env": {"ANTHROPIC_API_KEY": SECRET}})
    report = await check(executor, timeout=0.5)
    claude = step(report, "claude")
    assert (claude.status, claude.detail) == ("fail", "did not finish within 0.5 s")
    assert "larger timeout" in claude.hint
    assert step(report, "credentials").status == "ok"


async def test_whole_check_is_bounded(tmp_path: Path) -> None:
    """Each call answers just inside the timeout: the check as a whole still ends."""
    executor = Slow(tmp_path, delay=0.4)
    script(executor.bin / "claude", f'echo "{EXPECTED}"')
    started = time.monotonic()
    report = await check(executor, "/x/shop", timeout=0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 3 * 0.5 + 1, elapsed
    skipped = [s for s in report.steps if "ran out of time" in s.detail]
    assert skipped and all(s.status == "skip" for s in skipped)
    assert "1.5 s in all" in skipped[0].detail
