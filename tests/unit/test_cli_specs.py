"""The command line speaks specs: ``--on SCHEME://…``, resume by record, settings entries.

The executor is a third-party package's (``acme://``, a ``FakeExecutor`` found
through its entry point, see ``tests/_acme_plugin.py``), run by the installed
``remote-executors`` script in a subprocess: the whole path from the
argument to the registry, the session, its record and the resume is real;
only the machine is in memory (so its transcript cannot be synced: exit 5).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import _acme_plugin
from _cli import command
from remote_executors.records import SessionRecords


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    site = _acme_plugin.install(tmp_path / "site")
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": str(site) + (os.pathsep + path if path else ""),
        "REMOTE_EXECUTORS_DATA_DIR": str(tmp_path / "data"),
        "REMOTE_EXECUTORS_CONFIG_DIR": str(tmp_path / "config"),
        "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
        "ACME_LOG": str(tmp_path / "acme.log"),
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=env["REMOTE_EXECUTORS_DATA_DIR"].rsplit("/", 1)[0],
    )


def test_run_on_a_plugin_spec_and_resume_there_without_on(env: dict[str, str]) -> None:
    first = cli(env, "run", "--on", "acme://box", "--json", "hi")
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    result = next(m for m in lines if m.get("type") == "result")
    assert result["result"] == "Hello from a FakeExecutor."
    sid = result["session_id"]
    # A fake machine holds no transcript file to sync: that is reported, not hidden.
    assert first.returncode == 5, first.stderr
    record = SessionRecords(env["REMOTE_EXECUTORS_DATA_DIR"]).get(sid)
    assert record is not None and record.executor == "acme://box"

    # No --on: the record's spec reopens the plugin's executor. The resume syncs
    # first (a copy behind would fork the conversation); a fake machine cannot,
    # so it stops there, naming that machine.
    again = cli(env, "run", "--resume", sid, "--json", "more")
    assert again.returncode == 5, again.stderr
    error = json.loads(again.stdout.splitlines()[-1])
    assert (error["type"], error["error"], error["host"]) == ("error", "SyncError", "acme-box")
    log = Path(env["ACME_LOG"]).read_text().splitlines()
    assert log == ["acme://box", "acme://box"]  # --on, then the record's spec

    listed = cli(env, "sessions")
    assert "[acme://box]" in listed.stdout
    rows = json.loads(cli(env, "sessions", "--json").stdout)
    assert [(r["executor"], r["spec"]) for r in rows] == [("acme://box", "acme://box")]


def test_specs_in_the_settings_from_the_command_line(env: dict[str, str]) -> None:
    added = cli(env, "executors", "add", "acme://box", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["spec"] == "acme://box"
    refused = cli(env, "executors", "add", "acme://other", "--claude-path", "/x")
    assert refused.returncode != 0 and "takes no SSH options" in refused.stderr
    listed = json.loads(cli(env, "executors", "list", "--json").stdout)
    assert [h["spec"] for h in listed] == ["acme://box"]


@pytest.mark.parametrize(
    ("spec", "says", "code"),
    [
        ("nope://x", "the scheme 'nope' is not known", 1),
        ("docker://a b", "whitespace", 2),
        ("Docker://c", "is not a scheme", 2),
    ],
)
def test_bad_specs_on_the_command_line_say_why(
    env: dict[str, str], spec: str, says: str, code: int
) -> None:
    done = cli(env, "run", "--on", spec, "hi")
    assert done.returncode == code, done.stderr
    assert says in " ".join(done.stderr.split())
    assert not Path(env["REMOTE_EXECUTORS_DATA_DIR"]).exists()  # nothing recorded
