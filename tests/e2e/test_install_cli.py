"""``install_cli`` over the real sshd bed: the bundled CLI uploaded, verified, linked, used.

An account without the CLI gets it and runs a session; a link cut half way
through the upload leaves the old state; a host whose ``uname`` says aarch64
is refused before a byte is sent; a ``~/.local/bin/claude`` someone else put
there is not replaced without ``force``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from _cli import CLI, ok
from remote_executors import _sdk_compat
from remote_executors.check import check
from remote_executors.errors import InstallFailed, UnsupportedPlatform
from remote_executors.executors.ssh import BACKENDS
from remote_executors.install import LINK, VERSIONS_DIR, install_cli
from remote_executors.testing.link import LinkProxy
from remote_executors.testing.model import ScriptedModel, text
from remote_executors.testing.plugin import AccountFactory
from remote_executors.testing.sshd import RemoteAccount, SSHTestBed

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

FIGURES_TITLE = "Installing the CLI"
VERSION = _sdk_compat.expected_cli_version()
BUNDLED = _sdk_compat.bundled_cli()


@pytest.fixture
def anyio_backend() -> str:
    """One event loop: each install moves the whole bundled CLI (~400 MB)."""
    return "asyncio"


def installed(account: RemoteAccount) -> Path:
    return account.home / VERSIONS_DIR / str(VERSION)


def fake_tool(bed: SSHTestBed, account: RemoteAccount, name: str, body: str) -> None:
    """A script called ``name`` first on the PATH of the account's ssh commands."""
    fake = account.home / "fakebin"
    bed.run_as(account, ["mkdir", "-p", str(fake)], check=True)
    tool = fake / name
    bed.run_as(
        account, ["/bin/sh", "-c", f"cat > {tool}; chmod 755 {tool}"], input=f"#!/bin/sh\n{body}"
    )
    bed.run_as(
        account,
        ["/bin/sh", "-c", f"echo 'export PATH={fake}:$PATH' >> {account.home}/.bashrc"],
        check=True,
    )


def partials(account: RemoteAccount) -> list[Path]:
    versions = account.home / VERSIONS_DIR
    return sorted(versions.glob(".*.partial*")) if versions.is_dir() else []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_account_without_cli_gets_it_and_runs_a_session(
    backend: str,
    rx_sshd: SSHTestBed,
    rx_account_factory: AccountFactory,
    rx_model: ScriptedModel,
    tmp_path: Path,
    record,
) -> None:
    account = rx_account_factory(claude=None, label=f"noclaude_{backend}")
    cfg = rx_sshd.client_config(account, tmp_path / "ssh")
    async with rx.SSHExecutor(cfg.alias, ssh_config=cfg.path, backend=backend) as box:
        before = await check(box, timeout=15)
        claude = before.step("claude")
        assert claude is not None and claude.status == "fail"
        assert claude.detail.startswith("CLI missing")
        assert f"remote-executors install {cfg.alias}" in claude.hint

        progress: list[int] = []
        started = time.monotonic()
        result = await install_cli(box, on_progress=lambda sent, total: progress.append(sent))
        record(f"install over loopback, {backend} (first time, s)", time.monotonic() - started)
        assert BUNDLED is not None
        size = os.path.getsize(BUNDLED)
        assert result.uploaded == size and progress[-1] == size
        assert result.version == VERSION
        binary = installed(account)
        assert result.path == str(binary) and result.link == str(account.home / LINK)
        assert os.readlink(account.home / LINK) == str(binary)
        assert binary.read_bytes() == Path(BUNDLED).read_bytes()
        assert binary.stat().st_mode & 0o777 == 0o700 and binary.stat().st_uid == account.uid
        assert not partials(account)

        after = await check(box, timeout=15)
        version = after.step("claude_version")
        assert version is not None and version.status == "ok", after

        # A session runs on it.
        rx_model.script(text("installed and answering"))
        project = account.home / "proj"
        rx_sshd.run_as(account, ["mkdir", "-p", str(project)], check=True)
        local = tmp_path / "here"
        local.mkdir()
        options = ClaudeAgentOptions(cwd=str(local), env={"CLAUDE_CODE_MAX_RETRIES": "0"})
        box_mapped = rx.SSHExecutor(
            cfg.alias, ssh_config=cfg.path, path_map={str(local): "proj"}, backend=backend
        )
        async with box_mapped:
            with anyio.fail_after(90):
                messages = [
                    m async for m in rx.query(prompt="hi", options=options, executor=box_mapped)
                ]
        results = [m for m in messages if isinstance(m, ResultMessage)]
        assert (
            results
            and not results[-1].is_error
            and results[-1].result == ("installed and answering")
        )

        # Again: the version is there and verified, nothing is sent.
        started = time.monotonic()
        again = await install_cli(box)
        record(f"install again, {backend}, already there (s)", time.monotonic() - started)
        assert again.uploaded == 0 and os.readlink(account.home / LINK) == str(binary)


async def test_upload_cut_half_way_leaves_the_old_state(
    rx_sshd: SSHTestBed,
    rx_account_factory: AccountFactory,
    tmp_path: Path,
) -> None:
    # An account whose ~/.local/bin/claude links to an older build (here: the shared one).
    account = rx_account_factory(label="cutinstall")
    link = account.home / LINK
    old_target = os.readlink(link)
    with LinkProxy(rx_sshd.host, rx_sshd.port) as proxy:
        cfg = proxy.client_config(rx_sshd.client_config(account, tmp_path / "ssh"))
        async with rx.SSHExecutor(cfg.alias, ssh_config=cfg.path) as box:
            assert BUNDLED is not None
            half = os.path.getsize(BUNDLED) // 2

            def cut_at_half(sent: int, total: int) -> None:
                if sent >= half and not proxy.is_cut:
                    proxy.cut()

            with anyio.fail_after(120), pytest.raises(InstallFailed) as info:
                await install_cli(box, on_progress=cut_at_half)
            assert cfg.alias in info.value.message and "run the install again" in info.value.message
    # The link still points where it did; no version file, whole or broken.
    assert os.readlink(link) == old_target
    assert not installed(account).exists()
    # The watchdog stopped the upload there; what it left is a partial file only.
    deadline = time.monotonic() + 10
    while rx_sshd.processes(account) and time.monotonic() < deadline:
        await anyio.sleep(0.1)
    assert not rx_sshd.processes(account)
    left = partials(account)
    assert all(p.is_fifo() or p.stat().st_size < os.path.getsize(BUNDLED) for p in left)

    # The next install (direct this time) completes, and sweeps an abandoned partial.
    for p in left:
        os.utime(p, (time.time() - 600, time.time() - 600))
    direct = rx_sshd.client_config(account, tmp_path / "ssh2")
    async with rx.SSHExecutor(direct.alias, ssh_config=direct.path) as box:
        result = await install_cli(box)
    assert os.readlink(link) == result.path == str(installed(account))
    assert installed(account).stat().st_size == os.path.getsize(BUNDLED)
    assert not partials(account)


async def test_wrong_architecture_is_refused_before_upload(
    rx_sshd: SSHTestBed,
    rx_account_factory: AccountFactory,
    rx_model: ScriptedModel,
    tmp_path: Path,
) -> None:
    account = rx_account_factory(claude=None, label="armhost")
    # A uname that reports an arm64 machine, first on the PATH of ssh commands.
    fake_tool(
        rx_sshd,
        account,
        "uname",
        'case "$1" in -m) echo aarch64 ;; -s) echo Linux ;; *) exec /bin/uname "$@" ;; esac\n',
    )
    cfg = rx_sshd.client_config(account, tmp_path / "ssh")
    async with rx.SSHExecutor(cfg.alias, ssh_config=cfg.path) as box:
        assert str(await rx.remote_platform(box)) == "Linux aarch64 glibc"
        with pytest.raises(UnsupportedPlatform) as info:
            await install_cli(box)
    error = info.value
    assert error.host == cfg.alias and error.remote == "Linux aarch64 glibc"
    assert error.local.startswith("Linux x86_64") or "aarch64" not in error.local
    assert "aarch64" in error.message and "install.sh" in error.message
    assert not (account.home / VERSIONS_DIR).exists() and not (account.home / LINK).exists()

    # The command says the same in one line, exit 4; "local" is refused as usage.
    cli = CLI(tmp_path / "cli", rx_model)
    ok(cli("executors", "add", cfg.alias, "--ssh-config", str(cfg.path)))
    done = cli("install", cfg.alias)
    assert done.returncode == 4, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: ") and "aarch64" in done.stderr
    assert "Traceback" not in done.stderr
    assert cli("install", "local").returncode == 2


async def test_a_claude_file_someone_else_installed_is_kept_without_force(
    rx_sshd: SSHTestBed,
    rx_account_factory: AccountFactory,
    tmp_path: Path,
) -> None:
    account = rx_account_factory(claude=None, label="ownclaude")
    own = account.home / LINK
    rx_sshd.run_as(
        account,
        [
            "/bin/sh",
            "-c",
            f"mkdir -p {own.parent} && printf '#!/bin/sh\\necho 1.0.0\\n' > {own} "
            f"&& chmod 755 {own}",
        ],
        check=True,
    )
    cfg = rx_sshd.client_config(account, tmp_path / "ssh")
    async with rx.SSHExecutor(cfg.alias, ssh_config=cfg.path) as box:
        with pytest.raises(InstallFailed, match="is a file, not a link"):
            await install_cli(box)
        assert own.read_text().endswith("echo 1.0.0\n") and not own.is_symlink()
        assert not installed(account).exists()
        # check names the fix for a CLI older than the SDK expects.
        report = await check(box, timeout=15)
        version = report.step("claude_version")
        assert version is not None and version.status == "warn"
        assert f"remote-executors install {cfg.alias}" in version.hint


async def test_a_copy_whose_checksum_differs_is_not_installed(
    rx_sshd: SSHTestBed,
    rx_account_factory: AccountFactory,
    tmp_path: Path,
) -> None:
    """The host's sha256sum disagrees (as for bytes changed in transit): nothing is installed."""
    account = rx_account_factory(claude=None, label="badsum")
    fake_tool(rx_sshd, account, "sha256sum", "cat >/dev/null\necho 0000000000000000  -\n")
    cfg = rx_sshd.client_config(account, tmp_path / "ssh")
    async with rx.SSHExecutor(cfg.alias, ssh_config=cfg.path) as box:
        with pytest.raises(InstallFailed, match="SHA-256 does not match") as info:
            await install_cli(box)
    assert info.value.host == cfg.alias and "run the install again" in info.value.message
    assert not installed(account).exists() and not (account.home / LINK).exists()
    assert not partials(account)
