"""docs/testing.md's example, run as a host app's own test suite would run it.

A separate pytest run (the plugin comes from the installed package) with a
home of its own and none of this suite's isolation: the example must pass,
and leave nothing in that home's ``~/.claude/projects`` (which Claude Code's
resume picker lists) or in the real session records.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]

DOCS = Path(__file__).parents[2] / "docs" / "testing.md"

EXTRA = """

@pytest.mark.anyio
async def test_the_session_reached_the_tests_own_dirs(rx_executor, rx_project, rx_model,
                                                      rx_isolated):
    rx_model.script("isolated")
    async for m in rx.query(prompt="go", executor=rx_executor,
                            options=ClaudeAgentOptions(cwd=str(rx_project.local))):
        pass
    assert list(rx_isolated.claude_dir.glob("projects/*/*.jsonl"))  # synced, here
    assert list(rx_isolated.data_dir.glob("sessions/*.json"))  # recorded, here
"""


def test_the_documented_example_leaves_the_real_dirs_alone(tmp_path: Path) -> None:
    example = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert example, "docs/testing.md has no python example"
    (tmp_path / "test_example.py").write_text(example.group(1) + EXTRA)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CLAUDE_CONFIG_DIR", "REMOTE_EXECUTORS_DATA_DIR", "XDG_DATA_HOME")
        and not k.startswith(("PYTEST_", "COV_"))
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",
            "test_example.py",
        ],
        cwd=tmp_path,
        env={**env, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed.group(1)) >= 2, done.stdout[-2000:]  # both tests, each backend
    assert not list(home.glob(".claude/projects/*")), list(home.rglob("*"))
    assert not list(home.glob(".local/share/remote-executors/sessions/*.json"))
