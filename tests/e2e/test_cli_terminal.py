"""What the command shows in a real terminal: progress, colours, Ctrl-C.

Each test runs the installed script on a pseudo-terminal that is its
controlling terminal (``_cli.Terminal``): it sees a tty, draws its progress
line, and gets SIGINT from the terminal when Ctrl-C is typed.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from _cli import CLI, SGR, ok
from remote_executors.testing.model import ScriptedModel, api_error, slow, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import SSHClientConfig

pytestmark = [pytest.mark.e2e]

ERASE_LINE = "\r\x1b[2K"


@pytest.fixture
def cli(tmp_path: Path, rx_model: ScriptedModel) -> CLI:
    return CLI(tmp_path, rx_model)


def script_with_retries(model: ScriptedModel) -> None:
    model.script(
        api_error(500, retry_after=0.3),
        api_error(500, retry_after=0.3),
        tool_use("Bash", {"command": "sleep 1; echo slept", "description": "wait"}),
        text("done after retries"),
    )


def test_progress_shows_retries_and_what_runs_in_colour(
    cli: CLI, rx_model: ScriptedModel, tmp_path: Path
) -> None:
    script_with_retries(rx_model)
    term = cli.terminal(
        "run",
        "--cwd",
        str(tmp_path),
        "--allow",
        "Bash",
        "hi",
        env={"CLAUDE_CODE_MAX_RETRIES": "2"},
    )
    code, out = term.finish()
    assert code == 0, out
    # The transient line said what was going on while nothing else was printed.
    assert "… starting Claude Code…" in out
    assert re.search(r"… API error 500 \([a-z_]+\): retry 1/2", out), out
    assert "retry 2/2" in out
    assert "… running Bash…" in out
    assert ERASE_LINE in out  # and was erased before the next line
    assert "done after retries" in out
    assert SGR.search(out)  # a terminal gets colours
    final = out.rstrip().splitlines()[-1]
    assert "session " in final and "\x1b[32m" in final  # green: it went well


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"TERM": "dumb"}], ids=["NO_COLOR", "dumb"])
def test_no_color_and_dumb_terminals(
    cli: CLI, rx_model: ScriptedModel, tmp_path: Path, env: dict[str, str]
) -> None:
    script_with_retries(rx_model)
    term = cli.terminal(
        "run",
        "--cwd",
        str(tmp_path),
        "--allow",
        "Bash",
        "hi",
        env={"CLAUDE_CODE_MAX_RETRIES": "2", **env},
    )
    code, out = term.finish()
    assert code == 0, out
    assert not SGR.search(out), repr(out)
    assert "done after retries" in out
    if "TERM" in env:
        # A dumb terminal cannot erase a line: no progress line at all.
        assert ERASE_LINE not in out and "…" not in out
    else:
        assert "retry 1/2" in out  # progress stays, only without colour
    # The error line of a failure obeys too.
    failed = cli.terminal("executors", "remove", "nobox", env=env)
    code, out = failed.finish()
    assert code == 1 and "error: nobox is not configured" in out and not SGR.search(out)


def test_ctrl_c_saves_the_session_and_says_how_to_resume_it(
    cli: CLI, rx_model: ScriptedModel, rx_ssh_config: SSHClientConfig, rx_project: Project
) -> None:
    host = rx_ssh_config.alias
    ok(cli("executors", "add", host, "--ssh-config", str(rx_ssh_config.path)))
    rx_model.script(slow(text("too late"), delay=60))
    term = cli.terminal("run", "--on", host, "--cwd", str(rx_project.local), "first words")
    # Its first seconds: the model has the request, nothing has been answered.
    deadline = time.monotonic() + 60
    while not rx_model.main_requests:
        assert time.monotonic() < deadline, term.text
        time.sleep(0.1)
    term.wait_for("waiting for the model")
    term.ctrl_c()
    code, out = term.finish(timeout=60)
    assert code == 130, out
    found = re.search(r"interrupted: session ([0-9a-f-]{36}) on " + re.escape(host), out)
    assert found, out
    sid = found.group(1)
    assert f"to continue it: remote-executors run --resume {sid}" in out
    assert "Traceback" not in out

    # Recorded and pulled before it exited: listed here, with its copy, as the host's.
    listed = json.loads(ok(cli("sessions", "--cwd", str(rx_project.local), "--json")))
    row = next(s for s in listed if s["session_id"] == sid)
    assert row["executor"] == host and row["local_copy"] is True
    # And the resume it printed works.
    rx_model.clear()
    rx_model.script(text("picked up again"))
    again = ok(cli("run", "--cwd", str(rx_project.local), "--resume", sid, "go on"))
    assert "picked up again" in again and f" on {host} " in again.splitlines()[-1]
    assert "first words" in repr(rx_model.main_requests[-1].messages)


def test_a_second_ctrl_c_leaves_at_once(
    cli: CLI, rx_model: ScriptedModel, rx_ssh_config: SSHClientConfig, rx_project: Project
) -> None:
    host = rx_ssh_config.alias
    ok(cli("executors", "add", host, "--ssh-config", str(rx_ssh_config.path)))
    rx_model.script(slow(text("too late"), delay=60))
    term = cli.terminal("run", "--on", host, "--cwd", str(rx_project.local), "words")
    term.wait_for("waiting for the model")
    term.ctrl_c()
    term.wait_for("interrupted")
    term.ctrl_c()
    start = time.monotonic()
    code, out = term.finish(timeout=30)
    assert code == 130, out
    assert "Traceback" not in out
    assert time.monotonic() - start < 20  # not the whole 20 s save budget, nor the reply
