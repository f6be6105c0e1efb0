"""README's first command: the demo runs a whole local session and reads it back."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_runs_a_session_and_reads_its_transcript():
    done = subprocess.run(
        [sys.executable, "-m", "remote_executors.demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "tool call: Bash" in done.stdout
    assert "result: success" in done.stdout
    match = re.search(r"^Transcript \(kept in a throwaway dir\): (\S+\.jsonl)$", done.stdout, re.M)
    assert match, done.stdout
    transcript = Path(match.group(1))
    assert transcript.is_file() and transcript.stat().st_size > 0
    assert "The SDK reads back 4 messages" in done.stdout
