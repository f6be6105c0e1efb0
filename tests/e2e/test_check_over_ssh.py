"""``check()`` over the real sshd test bed: every step provoked for real.

Real accounts, real ``ssh`` failures (fault aliases of the bed's ssh_config),
the real Claude CLI (or none), real settings files, and a TCP proxy that
freezes the link. Each check must end in bounded time and leave nothing
running on either side.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import remote_executors as rx
from remote_executors.check import CheckReport, CheckStep, check
from remote_executors.testing.link import LinkProxy
from remote_executors.testing.model import DEFAULT_API_KEY
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHFault, SSHTestBed

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

EXPECTED_CLI = rx.sdk.expected_cli_version()
PROFILE_EXPORT = 'printf "export ANTHROPIC_API_KEY=%s\\n" "$1" >> ~/.profile'
REMOTE_STEPS = ["platform", "claude", "claude_version", "project", "credentials", "rsync_remote"]


def step(report: CheckReport, name: str) -> CheckStep:
    found = report.step(name)
    assert found is not None, name
    return found


def statuses(report: CheckReport) -> dict[str, str]:
    return {s.name: s.status for s in report.steps}


def local_ssh(cfg: SSHClientConfig) -> list[str]:
    """Our ``ssh`` processes (master or channel) for this config file."""
    out = subprocess.run(
        ["ps", "-ww", "-A", "-o", "stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [
        line
        for line in out.splitlines()
        if str(cfg.path) in line and not line.lstrip().startswith("Z")
    ]


async def nothing_left(
    bed: SSHTestBed, account: RemoteAccount, cfg: SSHClientConfig, executor: rx.SSHExecutor
) -> None:
    """After ``aclose``: no ssh of ours here, no process of the account there."""
    await executor.aclose()
    deadline = time.monotonic() + 5
    while local_ssh(cfg) or bed.processes(account):
        if time.monotonic() > deadline:
            raise AssertionError(f"left: here {local_ssh(cfg)}, there {bed.processes(account)}")
        await anyio.sleep(0.05)


def set_settings(bed: SSHTestBed, account: RemoteAccount, settings: object) -> None:
    """Replace the account's settings.json (as the account, so it stays theirs)."""
    path = account.claude_config_dir / "settings.json"
    bed.run_as(
        account,
        ["/bin/sh", "-c", 'cat > "$1"', "sh", str(path)],
        input=json.dumps(settings),
        check=True,
    )


@pytest.fixture
def executor(rx_ssh_config: SSHClientConfig) -> rx.SSHExecutor:
    return rx.SSHExecutor(rx_ssh_config.alias, ssh_config=rx_ssh_config.path)


# ---- all ok --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rx_account",
    ["bash", {"shell": "fish", "noisy": True}, "tcsh"],
    ids=["bash", "noisy-fish", "tcsh"],
    indirect=True,
)
async def test_ready_account_is_all_ok(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    executor: rx.SSHExecutor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    outputs: list[bytes] = []
    real_run = executor.run

    async def recording_run(argv, **kwargs):
        result = await real_run(argv, **kwargs)
        outputs.append(result.stdout + result.stderr)
        return result

    executor.run = recording_run
    seen: list[CheckStep] = []
    with anyio.fail_after(30):
        report = await check(executor, str(rx_project.local), timeout=15, on_step=seen.append)

    assert seen == list(report.steps)
    assert report.ok, report
    got = statuses(report)
    assert got.pop("sftp") == "skip"  # the OpenSSH backend syncs without SFTP
    assert all(status == "ok" for status in got.values()), report
    uname = os.uname()
    assert step(report, "platform").detail == f"{uname.sysname} {uname.machine}"
    assert step(report, "auth").detail == f"logged in as {rx_account.user}"
    assert step(report, "claude").detail == f"{rx_account.claude_path} {EXPECTED_CLI}"
    assert step(report, "claude_version").detail == f"{EXPECTED_CLI}, as the SDK expects"
    assert step(report, "project").detail == str(rx_project.remote)
    settings = rx_account.claude_config_dir / "settings.json"
    assert step(report, "credentials").detail == f"uses ANTHROPIC_API_KEY in {settings}"
    rsync = shutil.which("rsync")
    assert rsync is not None and step(report, "rsync_remote").detail.startswith("/")

    # The key the account's settings hold never came back, nor reached the report or a log.
    assert DEFAULT_API_KEY in settings.read_text()
    assert outputs and not any(DEFAULT_API_KEY.encode() in out for out in outputs)
    assert DEFAULT_API_KEY not in json.dumps(report.to_dict())
    assert DEFAULT_API_KEY not in caplog.text
    await nothing_left(rx_sshd, rx_account, rx_ssh_config, executor)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_fabric_backend_is_all_ok_and_checks_sftp(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
) -> None:
    executor = rx.SSHExecutor(rx_ssh_config.alias, ssh_config=rx_ssh_config.path, backend="fabric")
    with anyio.fail_after(30):
        report = await check(executor, str(rx_project.local), timeout=15)
    assert all(status == "ok" for status in statuses(report).values()), report
    assert step(report, "sftp").detail == f"SFTP session opens in {rx_account.home}"
    assert step(report, "auth").detail == f"logged in as {rx_account.user}"
    await nothing_left(rx_sshd, rx_account, rx_ssh_config, executor)

    wrong = rx.SSHExecutor(
        rx_ssh_config.alias_for(SSHFault.WRONG_KEY), ssh_config=rx_ssh_config.path, backend="fabric"
    )
    with anyio.fail_after(30):
        report = await check(wrong, str(rx_project.local), timeout=10)
    got = statuses(report)
    assert (got["connect"], got["host_key"], got["auth"], got["sftp"]) == (
        "ok",
        "ok",
        "fail",
        "skip",
    )
    assert "AuthenticationException" in step(report, "auth").detail
    await nothing_left(rx_sshd, rx_account, rx_ssh_config, wrong)


# ---- cannot connect ------------------------------------------------------------------------

# fault -> (connect, host_key, auth), and the step whose hint is the typed error's message
FAULTS = {
    SSHFault.CONNECTION_REFUSED: (("fail", "skip", "skip"), "connect", "Connection refused"),
    SSHFault.UNRESOLVABLE: (("fail", "skip", "skip"), "connect", "Could not resolve hostname"),
    SSHFault.WRONG_KEY: (("ok", "ok", "fail"), "auth", "Permission denied (publickey)"),
    SSHFault.UNKNOWN_HOST_KEY: (("ok", "fail", "skip"), "host_key", "not in known_hosts"),
    SSHFault.CHANGED_HOST_KEY: (("ok", "fail", "skip"), "host_key", "changed"),
}


@pytest.mark.parametrize("fault", list(FAULTS), ids=lambda f: f.value)
async def test_connection_faults(
    fault: SSHFault,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
) -> None:
    expected, failed, says = FAULTS[fault]
    alias = rx_ssh_config.alias_for(fault)
    executor = rx.SSHExecutor(alias, ssh_config=rx_ssh_config.path)
    with anyio.fail_after(20):
        report = await check(executor, str(rx_project.local), timeout=10)

    got = statuses(report)
    assert (got["connect"], got["host_key"], got["auth"]) == expected
    assert not report.ok
    bad = step(report, failed)
    assert says in bad.detail
    assert alias in bad.hint  # names the host and says what to do
    for name in REMOTE_STEPS:
        assert got[name] == "skip" and step(report, name).detail.startswith("not checked: ")
    assert got["rsync_local"] == "ok"
    await nothing_left(rx_sshd, rx_account, rx_ssh_config, executor)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_sshd_stopped(tmp_path: Path) -> None:
    with SSHTestBed() as bed:
        account = bed.account(label="chkstop")
        cfg = bed.client_config(account, tmp_path / "ssh", alias="rx-chkstop")
        bed.stop()
        executor = rx.SSHExecutor(cfg.alias, ssh_config=cfg.path)
        report = await check(executor, timeout=10)
        connect = step(report, "connect")
        assert connect.status == "fail"
        assert "Connection refused" in connect.detail
        assert "Check that sshd runs on rx-chkstop" in connect.hint
        await executor.aclose()
        assert local_ssh(cfg) == []


# ---- reached the host, something is missing -----------------------------------------------


@pytest.mark.parametrize("rx_account", [{"claude": None}], indirect=True)
async def test_no_claude(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    executor: rx.SSHExecutor,
) -> None:
    report = await check(executor, str(rx_project.local), timeout=15)
    got = statuses(report)
    claude = step(report, "claude")
    assert claude.status == "fail"
    assert claude.detail.startswith("CLI missing: not found (looked in ")
    assert f"remote-executors install {rx_ssh_config.alias}" in claude.hint
    for place in (
        f"PATH of login shell {rx_account.shell}",
        f"{rx_account.home}/.local/bin/claude",
    ):
        assert place in claude.hint
    assert "curl -fsSL https://claude.ai/install.sh" in claude.hint
    assert got["claude_version"] == "skip"
    # Everything that does not need the CLI was still checked.
    for name in ("connect", "host_key", "auth", "platform", "project", "credentials"):
        assert got[name] == "ok", name
    assert not report.ok
    await nothing_left(rx_sshd, rx_account, rx_ssh_config, executor)


async def test_project_missing_there(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    executor: rx.SSHExecutor,
) -> None:
    relative = Path(f"rx-test-{secrets.token_hex(4)}") / "not-cloned-there"
    local = Path.home() / relative
    local.mkdir(parents=True)  # exists here only
    try:
        report = await check(executor, str(local), timeout=15)
    finally:
        shutil.rmtree(local.parent)
    remote = f"{rx_account.home}/{relative}"
    project = step(report, "project")
    assert project.status == "fail"
    assert project.detail == f"{remote} doesn't exist on {rx_ssh_config.alias}"
    assert "path_map" in project.hint and remote in project.hint
    assert step(report, "credentials").status == "ok"
    assert not report.ok
    await nothing_left(rx_sshd, rx_account, rx_ssh_config, executor)


@pytest.mark.parametrize(
    "rx_account",
    [None, {"claude_config_dir": ".config/claude"}],
    ids=["home", "config-dir"],
    indirect=True,
)
async def test_no_credentials(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    executor: rx.SSHExecutor,
) -> None:
    set_settings(rx_sshd, rx_account, {"env": {"DISABLE_AUTOUPDATER": "1"}})
    report = await check(executor, timeout=15)
    found = step(report, "credentials")
    assert found.status == "fail"
    settings = f"{rx_account.claude_config_dir}/settings.json"
    assert found.detail.startswith("none found")
    assert settings in found.detail and settings in found.hint
    assert not report.ok
    assert [s.name for s in report.steps if s.status == "fail"] == ["credentials"]

    # A key only a login shell sets is not one the CLI gets over SSH: said so.
    secret = f"sk-ant-e2e-{secrets.token_hex(8)}"
    rx_sshd.run_as(
        rx_account,
        ["/bin/sh", "-c", PROFILE_EXPORT, "sh", secret],
        check=True,
    )
    report = await check(executor, timeout=15)
    found = step(report, "credentials")
    assert found.status == "fail"
    assert "ANTHROPIC_API_KEY is set only for login shells" in found.detail
    assert secret not in json.dumps(report.to_dict())
    probe = await executor.run(["/bin/sh", "-c", 'printf %s "${ANTHROPIC_API_KEY:-unset}"'])
    assert probe.stdout == b"unset"  # what the claim rests on: SSH commands lack it

    # Once the account has a credentials file, it is found.
    creds = rx_account.claude_config_dir / ".credentials.json"
    rx_sshd.run_as(
        rx_account, ["/bin/sh", "-c", 'printf "{}" > "$1"', "sh", str(creds)], check=True
    )
    report = await check(executor, timeout=15)
    assert (step(report, "credentials").status, step(report, "credentials").detail) == (
        "ok",
        f"uses {creds}",
    )
    await nothing_left(rx_sshd, rx_account, rx_ssh_config, executor)


# ---- never hangs ---------------------------------------------------------------------------


@pytest.fixture
def link(rx_sshd: SSHTestBed) -> Iterator[LinkProxy]:
    with LinkProxy(rx_sshd.host, rx_sshd.port) as proxy:
        yield proxy


@pytest.fixture
def link_config(link: LinkProxy, rx_ssh_config: SSHClientConfig) -> SSHClientConfig:
    return link.client_config(rx_ssh_config)


TIMEOUT = 2.0


async def test_frozen_before_connecting(link: LinkProxy, link_config: SSHClientConfig) -> None:
    executor = rx.SSHExecutor(link_config.alias, ssh_config=link_config.path)
    link.freeze()
    started = time.monotonic()
    with anyio.fail_after(3 * TIMEOUT + 2):
        report = await check(executor, timeout=TIMEOUT)
    assert time.monotonic() - started < TIMEOUT + 1.5
    connect = step(report, "connect")
    assert connect.status == "fail"
    assert connect.detail == f"no answer from {link_config.alias} within {TIMEOUT:g} s"
    assert all(step(report, name).status == "skip" for name in REMOTE_STEPS)
    await executor.aclose()
    assert local_ssh(link_config) == []  # the ssh that was connecting is gone too
    link.thaw()


async def test_frozen_mid_check(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    link: LinkProxy,
    link_config: SSHClientConfig,
) -> None:
    executor = rx.SSHExecutor(link_config.alias, ssh_config=link_config.path)

    def freeze_after_platform(s: CheckStep) -> None:
        if s.name == "platform":
            link.freeze()

    started = time.monotonic()
    with anyio.fail_after(3 * TIMEOUT + 2):
        report = await check(executor, timeout=TIMEOUT, on_step=freeze_after_platform)
    elapsed = time.monotonic() - started
    # The claude step's timeout, then one short "still there?" probe; nothing else waits.
    assert elapsed < 2 * TIMEOUT + 2.5, elapsed
    got = statuses(report)
    assert got["connect"] == got["platform"] == "ok"
    assert (step(report, "claude").status, step(report, "claude").detail) == (
        "fail",
        f"no answer from {link_config.alias} within {TIMEOUT:g} s",
    )
    for name in ("claude_version", "project", "credentials", "rsync_remote"):
        assert got[name] == "skip"
        assert "stopped answering" in step(report, name).detail
    assert got["rsync_local"] == "ok"
    await executor.aclose()
    assert local_ssh(link_config) == []
    link.thaw()
