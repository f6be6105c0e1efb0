"""README's first command: the demo runs a whole local session, reads it back, leaves nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "remote_executors.demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_demo_runs_a_session_and_reads_its_transcript():
    done = demo("--keep")
    assert done.returncode == 0, done.stderr
    assert "Running a session on this machine in " in done.stdout  # not "on local"
    assert "tool call: Bash" in done.stdout
    assert "result: success" in done.stdout
    match = re.search(r"^Transcript: (\S+\.jsonl)$", done.stdout, re.M)
    kept = re.search(r"^Kept the demo's directory: (\S+)$", done.stdout, re.M)
    assert match and kept, done.stdout
    try:
        transcript = Path(match.group(1))
        assert transcript.is_file() and transcript.stat().st_size > 0
        assert transcript.is_relative_to(kept.group(1))
        assert "The SDK reads back 4 messages" in done.stdout
    finally:
        shutil.rmtree(kept.group(1))


def test_demo_leaves_nothing_in_the_home_or_temp_dirs(tmp_path: Path) -> None:
    """No entry in ~/.claude/projects (Claude Code's resume picker), no records, no /tmp dir."""
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CLAUDE_CONFIG_DIR", "REMOTE_EXECUTORS_DATA_DIR", "XDG_DATA_HOME")
    }
    done = demo(env={**env, "HOME": str(home), "TMPDIR": str(temp)})
    assert done.returncode == 0, done.stderr
    assert "The SDK reads back 4 messages" in done.stdout
    assert list(home.rglob("*")) == []
    # Ours; the Claude CLI keeps its own scratch there (claude-<uid>, cc-socks) as it always does.
    assert [p for p in temp.iterdir() if p.name.startswith("rx-")] == []


def test_demo_help_is_plain_text():
    done = demo("--help")
    assert done.returncode == 0
    assert "``" not in done.stdout and "::" not in done.stdout
    assert "--keep" in done.stdout and "--on HOST" in done.stdout
