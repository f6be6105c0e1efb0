"""Sessions through the installed command: where they ran, what sync records, diverged copies.

Real sshd account, real Claude CLI on both sides, the scripted model.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from _cli import CLI, last_line, ok, session_of
from remote_executors.paths import project_dir_from_cwd
from remote_executors.testing.model import ScriptedModel, slow, text
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def cli(tmp_path: Path, rx_model: ScriptedModel) -> CLI:
    return CLI(tmp_path, rx_model)


@pytest.fixture
def host(cli: CLI, rx_ssh_config: SSHClientConfig) -> str:
    done = cli("executors", "add", rx_ssh_config.alias, "--ssh-config", str(rx_ssh_config.path))
    assert done.returncode == 0, done.stderr
    return rx_ssh_config.alias


def sessions(cli: CLI, project: Project) -> dict[str, dict[str, object]]:
    listed = json.loads(ok(cli("sessions", "--cwd", str(project.local), "--json")))
    return {s["session_id"]: s for s in listed}


def transcript(cli: CLI, project: Project, sid: str) -> Path:
    """The local copy, where the command (CLAUDE_CONFIG_DIR=cli.claude_dir) keeps it."""
    name = project_dir_from_cwd(os.path.realpath(project.local))
    return cli.claude_dir / "projects" / name / f"{sid}.jsonl"


def test_run_on_a_host_resume_where_it_ran_and_sync(
    cli: CLI, host: str, rx_model: ScriptedModel, rx_project: Project
) -> None:
    rx_model.script(text("remote answer one"))
    out = ok(cli("run", "--on", host, "--cwd", str(rx_project.local), "first"))
    assert "remote answer one" in out
    assert f" on {host} " in last_line(out)
    sid = session_of(out)
    listed = sessions(cli, rx_project)
    assert [(s, v["executor"], v["synced"]) for s, v in listed.items()] == [(sid, host, True)]
    assert f"[{host}]" in ok(cli("sessions", "--cwd", str(rx_project.local)))

    # --resume without --on continues where it ran, and says so.
    rx_model.script(text("remote answer two"))
    out = ok(cli("run", "--cwd", str(rx_project.local), "--resume", sid, "second"))
    assert "remote answer two" in out
    assert "remote answer one" in repr(rx_model.main_requests[-1].messages)
    assert last_line(out).startswith(f"session {sid} on {host} ")

    report = json.loads(
        ok(cli("sync", host, "--cwd", str(rx_project.local), "--session", sid, "--json"))
    )
    assert report["direction"] == "pull" and report["session_id"] == sid
    assert all(f["kind"] == "same" for f in report["files"])  # already in step
    # --cwd defaults to the current directory, as for run and sessions.
    human = ok(cli("sync", host, cwd=rx_project.local))
    assert f"in step with {host}" in human
    pushed = json.loads(ok(cli("sync", host, "--cwd", str(rx_project.local), "--push", "--json")))
    assert pushed["direction"] == "push" and pushed["moved"] == 0


def test_sync_records_where_the_sessions_it_pulls_came_from(
    cli: CLI,
    host: str,
    rx_model: ScriptedModel,
    rx_project: Project,
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
) -> None:
    """A session started on the host itself (no record here) is the host's once synced."""
    assert rx_account.claude_path is not None
    rx_model.script(text("made on the host itself"))
    made = rx_sshd.run_as(
        rx_account,
        [str(rx_account.claude_path), "-p", "started over there", "--output-format", "json"],
        cwd=rx_project.remote,
        timeout=120,
        check=True,
    )
    sid = json.loads(made.stdout)["session_id"]
    assert sid not in sessions(cli, rx_project)  # nothing here knows it yet

    out = ok(cli("sync", host, "--cwd", str(rx_project.local)))
    assert f"{sid}.jsonl" in out and f"pulled from {host}" in out
    listed = sessions(cli, rx_project)
    assert listed[sid]["executor"] == host and listed[sid]["synced"] is True

    # So a resume runs there (where its transcript lives), not here.
    rx_model.script(text("continued on the host"))
    out = ok(cli("run", "--cwd", str(rx_project.local), "--resume", sid, "go on"))
    assert "continued on the host" in out
    assert f" on {host} " in last_line(out)
    assert "started over there" in repr(rx_model.main_requests[-1].messages)


def test_sync_push_names_each_file_by_the_way_it_went(
    cli: CLI, host: str, rx_model: ScriptedModel, rx_project: Project
) -> None:
    ids = []
    for answer in ("one", "two"):
        rx_model.script(text(f"answer {answer}"))
        ids.append(session_of(ok(cli("run", "--on", host, "--cwd", str(rx_project.local), "q"))))
    behind, ahead = (transcript(cli, rx_project, sid) for sid in ids)
    first_line = behind.read_bytes().splitlines(keepends=True)[0]
    behind.write_bytes(first_line)  # the local copy is a prefix: the push pulls first
    with ahead.open("ab") as f:  # the local copy has a line more: pushed
        f.write(b'{"type":"summary","summary":"a local note","leafUuid":"x"}\n')

    out = ok(cli("sync", host, "--cwd", str(rx_project.local), "--push"))
    lines = out.splitlines()
    assert any(f"{ids[0]}.jsonl" in line and f"pulled from {host}" in line for line in lines), out
    assert any(f"{ids[1]}.jsonl" in line and f"pushed to {host}" in line for line in lines), out


def test_a_diverged_session_is_one_warning_and_exit_5_and_a_sync_clears_the_mark(
    cli: CLI, host: str, rx_model: ScriptedModel, rx_project: Project
) -> None:
    rx_model.script(text("the first turn"))
    sid = session_of(ok(cli("run", "--on", host, "--cwd", str(rx_project.local), "first")))
    local = transcript(cli, rx_project, sid)

    # While the host answers the resumed session, the local copy grows differently.
    rx_model.script(slow(text("the second turn"), delay=6))
    before = len(rx_model.main_requests)
    running = cli.popen("run", "--cwd", str(rx_project.local), "--resume", sid, "second")
    deadline = time.monotonic() + 60
    while len(rx_model.main_requests) == before:
        assert time.monotonic() < deadline and running.poll() is None, running.communicate()
        time.sleep(0.2)
    with local.open("ab") as f:
        f.write(b'{"type":"summary","summary":"written here meanwhile","leafUuid":"y"}\n')
    out, err = running.communicate(timeout=120)

    assert running.returncode == 5, (out, err)
    assert out.count("diverged between") == 1, out  # one warning, though the library retried
    assert f"--resume {sid} --fork" in out  # the way on, in the command's own terms
    assert "ClaudeAgentOptions" not in out + err
    assert "transcript not in step" in last_line(out)
    assert "⚠" in ok(cli("sessions", "--cwd", str(rx_project.local)))
    assert sessions(cli, rx_project)[sid]["synced"] is False

    # Keep the host's copy: move the local one aside, sync, and the mark is gone.
    local.rename(local.with_suffix(".mine"))
    ok(cli("sync", host, "--cwd", str(rx_project.local), "--session", sid))
    assert sessions(cli, rx_project)[sid]["synced"] is True
    assert "⚠" not in ok(cli("sessions", "--cwd", str(rx_project.local)))

    # And --fork continues it under a new id.
    rx_model.script(text("forked"))
    out = ok(cli("run", "--cwd", str(rx_project.local), "--resume", sid, "--fork", "third"))
    assert "forked" in out and session_of(out) != sid and f" on {host} " in last_line(out)


def test_a_file_over_the_size_limit_is_refused_and_the_flag_raises_it(
    cli: CLI, host: str, rx_model: ScriptedModel, rx_project: Project, rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
) -> None:  # fmt: skip
    rx_model.script(text("made"))
    sid = session_of(ok(cli("run", "--on", host, "--cwd", str(rx_project.local), "make one")))
    # The remote's session gains a tool result of 2 MiB.
    physical = ["sh", "-c", 'cd "$1" && pwd -P', "sh", str(rx_project.remote)]
    name = project_dir_from_cwd(rx_sshd.run_as(rx_account, physical, check=True).stdout.strip())
    big = rx_sshd.remote_home(rx_account) / ".claude" / "projects" / name / sid / "tool-results"
    fill = 'mkdir -p "$1" && head -c 2097152 /dev/zero > "$1/big.bin"'
    rx_sshd.run_as(rx_account, ["sh", "-c", fill, "sh", str(big)], check=True)
    refused = cli("sync", host, "--cwd", str(rx_project.local), "--max-file-size", "1M")
    assert refused.returncode == 5, refused
    assert "big.bin" in refused.stderr and "--max-file-size" in refused.stderr
    assert "TailSessionSync" not in refused.stderr  # the command's own terms
    local = transcript(cli, rx_project, sid).parent / sid / "tool-results" / "big.bin"
    assert not local.exists()
    ok(cli("sync", host, "--cwd", str(rx_project.local), "--max-file-size", "4M"))
    assert local.stat().st_size == 2 << 20
    bad = cli("sync", host, "--cwd", str(rx_project.local), "--max-file-size", "lots")
    assert bad.returncode == 2 and "not a size" in bad.stderr
