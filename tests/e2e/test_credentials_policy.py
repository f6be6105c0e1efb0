"""The credential policy over the real sshd bed, the real CLI and the scripted model.

The model accepts only the key the test expects, so a session that answers
proves which credential the remote CLI used. ``ps`` (both "machines" are this
one) and the disks of both sides are searched for the forwarded key.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from remote_executors.check import check
from remote_executors.credentials import forwarded_env
from remote_executors.testing.model import ScriptedModel, slow, text
from remote_executors.testing.plugin import AccountFactory, Isolated
from remote_executors.testing.sshd import RemoteAccount, SSHTestBed

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def local_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = "sk-ant-local-" + secrets.token_hex(16)
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    return key


@pytest.fixture
def model_key(rx_model: ScriptedModel) -> Iterator[ScriptedModel]:
    """The model with its key requirement restorable (tests change it)."""
    saved = rx_model.api_key
    try:
        yield rx_model
    finally:
        rx_model.api_key = saved


def settings_for(bed: SSHTestBed, account: RemoteAccount, model: ScriptedModel, **extra: object):
    """Replace the account's settings: the model's URL and no key, plus ``extra``."""
    settings = {
        "env": {
            "ANTHROPIC_BASE_URL": model.url,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        },
        **extra,
    }
    path = account.claude_config_dir / "settings.json"
    bed.run_as(
        account, ["/bin/sh", "-c", 'cat > "$1"', "sh", str(path)], input=json.dumps(settings)
    )


def project(bed: SSHTestBed, account: RemoteAccount, tmp_path: Path) -> tuple[Path, dict]:
    bed.run_as(account, ["mkdir", "-p", str(account.home / "proj")], check=True)
    local = tmp_path / "proj"
    local.mkdir()
    return local, {str(local): "proj"}


async def session(executor: rx.SSHExecutor, local: Path, during=None) -> ResultMessage:
    options = ClaudeAgentOptions(cwd=str(local), env={"CLAUDE_CODE_MAX_RETRIES": "0"})
    result = None
    with anyio.fail_after(90):
        async for m in rx.query(prompt="who am I", options=options, executor=executor):
            if during is not None and type(m).__name__ == "SystemMessage":
                await during()
            if isinstance(m, ResultMessage):
                result = m
    assert result is not None
    return result


def every_command_line() -> str:
    return subprocess.run(
        ["ps", "-ww", "-A", "-o", "args="], capture_output=True, text=True, check=True
    ).stdout


def files_holding(root: Path, needle: str) -> list[str]:
    done = subprocess.run(["grep", "-rlF", "--", needle, str(root)], capture_output=True, text=True)
    return done.stdout.split()


async def test_forwarded_key_reaches_a_bare_host_over_stdin_only(
    rx_sshd: SSHTestBed,
    rx_account_factory: AccountFactory,
    model_key: ScriptedModel,
    local_key: str,
    rx_isolated: Isolated,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    account = rx_account_factory(label="bare")
    settings_for(rx_sshd, account, model_key)
    model_key.api_key = local_key  # only our key gets an answer
    local, path_map = project(rx_sshd, account, tmp_path)
    cfg = rx_sshd.client_config(account, tmp_path / "ssh")

    # Default: nothing of ours goes; the host has no credentials, and check says so.
    async with rx.SSHExecutor(cfg.alias, ssh_config=cfg.path, path_map=path_map) as plain:
        assert await forwarded_env(plain) == {}
        creds = (await check(plain, timeout=15)).step("credentials")
        assert creds is not None and creds.status == "fail" and "none found" in creds.detail

    async with rx.SSHExecutor(
        cfg.alias, ssh_config=cfg.path, path_map=path_map, forward_credentials="ANTHROPIC_API_KEY"
    ) as box:
        creds = (await check(box, timeout=15)).step("credentials")
        assert creds is not None and creds.status == "ok"
        assert creds.detail.startswith("uses ANTHROPIC_API_KEY forwarded from this machine")

        seen: list[str] = []

        async def look() -> None:
            seen.append(every_command_line())

        model_key.script(slow(text("it is you"), delay=1.5))
        result = await session(box, local, during=look)
    assert not result.is_error and result.result == "it is you"
    mains = model_key.main_requests
    assert mains and all(r.api_key == local_key and r.authorized for r in mains)
    # Never on a command line (ps taken while the CLI ran), on either disk, or in a log.
    assert seen and all(local_key not in lines for lines in seen)
    assert "claude" in seen[0]
    assert files_holding(account.home, local_key) == []
    assert files_holding(rx_isolated.claude_dir, local_key) == []
    if rx_isolated.data_dir.exists():
        assert files_holding(rx_isolated.data_dir, local_key) == []
    assert local_key not in caplog.text
    assert local_key not in repr(creds)


@pytest.mark.parametrize("forward", [None, "ANTHROPIC_API_KEY"], ids=["own", "own+forward"])
async def test_a_host_with_its_own_provider_keeps_it(
    forward: str | None,
    rx_sshd: SSHTestBed,
    rx_account_factory: AccountFactory,
    model_key: ScriptedModel,
    local_key: str,
    tmp_path: Path,
) -> None:
    helper_key = "sk-ant-helper-" + secrets.token_hex(8)
    account = rx_account_factory(label="ownhelper")
    settings_for(rx_sshd, account, model_key, apiKeyHelper=f"echo {helper_key}")
    model_key.api_key = helper_key  # only the host's own key gets an answer
    local, path_map = project(rx_sshd, account, tmp_path)
    cfg = rx_sshd.client_config(account, tmp_path / "ssh")
    async with rx.SSHExecutor(
        cfg.alias, ssh_config=cfg.path, path_map=path_map, forward_credentials=forward
    ) as box:
        creds = (await check(box, timeout=15)).step("credentials")
        assert creds is not None and creds.status == "ok"
        assert creds.detail.startswith("uses apiKeyHelper in ")
        if forward:
            assert "is not forwarded: the host's own setup wins" in creds.detail
        assert await forwarded_env(box) == {}
        model_key.script(text("helper it is"))
        result = await session(box, local)
    assert not result.is_error and result.result == "helper it is"
    keys = {r.api_key for r in model_key.main_requests}
    assert keys == {helper_key}
