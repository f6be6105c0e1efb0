"""Sessions on a host over the real sshd bed: listed across projects, imported, resumed there.

Real sessions (the real CLI on the remote account, the scripted model): two
run through the library (so they are here too), one run on the host directly
(so only the host has it). The oracles: the SDK's own ``list_sessions`` on
the local copy, and the host's transcript growing when the imported session
is resumed with no host given.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import anyio
import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage, list_sessions

import remote_executors as rx
from _cli import CLI, ok, session_of
from remote_executors.executors.ssh import BACKENDS
from remote_executors.host_sessions import import_session, list_host_sessions
from remote_executors.paths import project_dir_from_cwd
from remote_executors.testing.model import ScriptedModel, text
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed

pytestmark = [pytest.mark.e2e]

FIGURES_TITLE = "Sessions on a host"


def remote_dir(bed: SSHTestBed, account: RemoteAccount, name: str) -> Path:
    path = account.home / name
    bed.run_as(account, ["mkdir", "-p", str(path)], check=True)
    return path


def run_on_host_directly(bed: SSHTestBed, account: RemoteAccount, cwd: Path) -> str:
    """A session started on the host itself (`claude -p`), which this machine never saw."""
    assert account.claude_path is not None
    done = bed.run_as(
        account,
        [str(account.claude_path), "-p", "started over there", "--output-format", "json"],
        cwd=cwd,
        timeout=90,
        check=True,
    )
    return str(json.loads(done.stdout)["session_id"])


async def run_here(executor: rx.SSHExecutor, local: Path, prompt: str) -> str:
    options = ClaudeAgentOptions(cwd=str(local), env={"CLAUDE_CODE_MAX_RETRIES": "0"})
    with anyio.fail_after(90):
        messages = [m async for m in rx.query(prompt=prompt, options=options, executor=executor)]
    result = [m for m in messages if isinstance(m, ResultMessage)][-1]
    return result.session_id


@pytest.mark.anyio
@pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True)
async def test_listed_across_projects_marked_imported_and_listed_locally(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_executor: rx.SSHExecutor,
    rx_model: ScriptedModel,
    rx_isolated: object,
) -> None:
    tag = uuid.uuid4().hex[:6]
    locals_ = []
    for name in (f"hs-{tag}-a", f"hs-{tag}-b"):
        remote_dir(rx_sshd, rx_account, name)
        local = Path.home() / name
        local.mkdir()
        locals_.append(local)
    try:
        rx_model.script(text("answer a"), text("answer b"), text("answer there"))
        sid_a = await run_here(rx_executor, locals_[0], "first")
        sid_b = await run_here(rx_executor, locals_[1], "second")
        there = remote_dir(rx_sshd, rx_account, f"hs-{tag}-c")
        sid_c = run_on_host_directly(rx_sshd, rx_account, there)

        found = {s.session_id: s for s in await list_host_sessions(rx_executor)}
        assert {sid_a, sid_b, sid_c} <= set(found)
        assert found[sid_a].here and found[sid_b].here and not found[sid_c].here
        assert found[sid_a].recorded_on == rx_executor.spec and found[sid_c].recorded_on is None
        assert found[sid_c].cwd == str(there) and found[sid_c].first_prompt == "started over there"
        assert found[sid_a].first_prompt == "first"
        assert found[sid_c].project_dir == project_dir_from_cwd(str(there))
        # One project only.
        only_a = await list_host_sessions(rx_executor, cwd=locals_[0])
        assert [s.session_id for s in only_a] == [sid_a]

        # Import the one only the host had: here now, recorded as the host's, not local.
        local_c = Path.home() / f"hs-{tag}-c"
        local_c.mkdir()
        locals_.append(local_c)
        record = await import_session(rx_executor, sid_c)
        assert record.executor == rx_executor.spec and record.is_remote
        assert record.local_cwd == str(local_c) and record.remote_cwd == str(there)
        listed = list_sessions(directory=str(local_c))
        assert [s.session_id for s in listed] == [sid_c]
        again = {s.session_id: s for s in await list_host_sessions(rx_executor)}
        assert again[sid_c].here and again[sid_c].recorded_on == rx_executor.spec

        with pytest.raises(rx.InvalidInput, match="has no session"):
            await import_session(rx_executor, str(uuid.uuid4()))
    finally:
        for local in locals_:
            shutil.rmtree(local, ignore_errors=True)


def test_cli_lists_imports_and_resumes_on_the_host(
    tmp_path: Path,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_model: ScriptedModel,
) -> None:
    cli = CLI(tmp_path, rx_model)
    host = rx_ssh_config.alias
    ok(cli("executors", "add", host, "--ssh-config", str(rx_ssh_config.path)))
    name = f"hs-cli-{uuid.uuid4().hex[:6]}"
    there = remote_dir(rx_sshd, rx_account, name)
    local = Path.home() / name
    local.mkdir()
    try:
        rx_model.script(text("answer there"))
        sid = run_on_host_directly(rx_sshd, rx_account, there)
        out = ok(cli("sessions", "--on", host))
        assert sid in out and str(there) in out and "started over there" in out
        listed = json.loads(ok(cli("sessions", "--on", host, "--json")))
        mine = [s for s in listed if s["session_id"] == sid]
        assert mine and mine[0]["here"] is False

        out = ok(cli("sessions", "--on", host, "--import", sid))
        assert f"{sid} pulled from {host}" in out and f"run --resume {sid}" in out
        # Listed here as the host's session, never as a local one.
        here = json.loads(ok(cli("sessions", "--cwd", str(local), "--json")))
        assert [(s["session_id"], s["executor"]) for s in here] == [(sid, host)]

        # Resumed with no host and no --cwd: it continues on the host, in its directory.
        transcript = (
            rx_account.claude_config_dir / "projects" / project_dir_from_cwd(str(there))
        ) / f"{sid}.jsonl"
        before = transcript.stat().st_size
        rx_model.script(text("continued there"))
        out = ok(cli("run", "--resume", sid, "go on"))
        assert "continued there" in out and session_of(out) == sid and f" on {host} " in out
        assert transcript.stat().st_size > before
        assert "started over there" in json.dumps(rx_model.main_requests[-1].body)
    finally:
        shutil.rmtree(local, ignore_errors=True)


@pytest.mark.anyio
async def test_listing_a_hundred_sessions(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_executor: rx.SSHExecutor,
    rx_isolated: object,
    record,
) -> None:
    projects = rx_account.claude_config_dir / "projects"
    lines = [
        json.dumps({"type": "user", "cwd": f"/srv/p{i}", "message": {"content": f"task {i}"}})
        for i in range(10)
    ]
    for p in range(10):
        d = projects / project_dir_from_cwd(f"/srv/p{p}")
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, rx_account.uid, rx_account.gid)
        for _ in range(10):
            f = d / f"{uuid.uuid4()}.jsonl"
            f.write_text((lines[p] + "\n") * 50)
            os.chown(f, rx_account.uid, rx_account.gid)
    os.chown(projects, rx_account.uid, rx_account.gid)
    await list_host_sessions(rx_executor)  # connection up
    started = time.monotonic()
    found = await list_host_sessions(rx_executor)
    record("list 100 sessions on a host (s)", time.monotonic() - started)
    assert len(found) == 100
    assert {s.cwd for s in found} == {f"/srv/p{i}" for i in range(10)}
    assert all(s.first_prompt.startswith("task ") and not s.here for s in found)
    limited = await list_host_sessions(rx_executor, limit=7)
    assert len(limited) == 7


def test_a_hostile_hosts_odd_names_and_values_are_skipped_or_quoted(
    tmp_path: Path,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_model: ScriptedModel,
) -> None:
    projects = rx_account.claude_config_dir / "projects"
    good = projects / "-srv-x"
    odd = projects / "has space"
    for d in (good, odd):
        d.mkdir(parents=True, exist_ok=True)
    sid = str(uuid.uuid4())
    escape = "/srv/\x1b]0;owned\x07x"
    (good / f"{sid}.jsonl").write_text(
        json.dumps({"type": "user", "cwd": escape, "message": {"content": "\x1b[2Jhi"}}) + "\n"
    )
    (good / "notes.jsonl").write_text("{}\n")  # not a session id
    (odd / f"{uuid.uuid4()}.jsonl").write_text("{}\n")  # not a name the CLI makes
    (good / f"{uuid.uuid4()}.jsonl").write_text("x" * 3_000_000)  # one endless line
    subprocess.run(["chown", "-R", f"{rx_account.uid}:{rx_account.gid}", str(projects)], check=True)
    cli = CLI(tmp_path, rx_model)
    host = rx_ssh_config.alias
    ok(cli("executors", "add", host, "--ssh-config", str(rx_ssh_config.path)))
    listed = json.loads(ok(cli("sessions", "--on", host, "--json")))
    assert {s["project_dir"] for s in listed} == {"-srv-x"}
    mine = [s for s in listed if s["session_id"] == sid]
    assert mine and mine[0]["cwd"] == escape and mine[0]["first_prompt"] == "\x1b[2Jhi"
    shown = ok(cli("sessions", "--on", host))
    assert "\x1b" not in shown and "\\x1b" in shown
