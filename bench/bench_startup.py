"""Start-up time of the ``remote-executors`` command and of the pytest plugin's import.

    .venv/bin/python bench/bench_startup.py [--runs N]

Runs the installed script N times per command (private config, data and
Claude dirs; nothing to connect to) and prints the median and best wall time
of each, against the target of 0.3 s for ``--help``, ``executors …`` and
``sessions``. ``run --help`` is listed for comparison (``run`` itself needs
the SDK). It also imports the pytest plugin in a fresh interpreter and says
whether that imported ``claude_agent_sdk`` or ``mcp``; the plugin should
import nothing heavy until a fixture is used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.3

COMMANDS: list[tuple[str, list[str], bool]] = [
    ("--help", ["--help"], True),
    ("executors list", ["executors", "list"], True),
    ("executors list --json", ["executors", "list", "--json"], True),
    ("sessions", ["sessions", "--cwd", "{project}"], True),
    ("run --help", ["run", "--help"], False),
]

_PLUGIN_PROBE = (
    "import sys, remote_executors.testing.plugin as p; "
    "print(','.join(m for m in ('claude_agent_sdk', 'mcp', 'paramiko') if m in sys.modules))"
)


def _script() -> list[str]:
    script = Path(sys.executable).with_name("remote-executors")
    return [str(script)] if script.exists() else [sys.executable, "-m", "remote_executors.cli"]


def _time(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        env = {
            **os.environ,
            "CLAUDE_CONFIG_DIR": str(Path(tmp) / "claude"),
            "REMOTE_EXECUTORS_DATA_DIR": str(Path(tmp) / "data"),
            "REMOTE_EXECUTORS_CONFIG_DIR": str(Path(tmp) / "config"),
        }
        base = [sys.executable, "-c", "pass"]
        _time(base, env)  # warm the page cache
        python = statistics.median(_time(base, env) for _ in range(args.runs))
        print(
            f"{args.runs} runs each; load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores"
        )
        print(f"{'bare python':28}{python:8.3f} s")
        print(f"{'command':28}{'median':>8}{'best':>8}  target")
        for label, argv, targeted in COMMANDS:
            full = _script() + [a.format(project=project) for a in argv]
            _time(full, env)
            times = [_time(full, env) for _ in range(args.runs)]
            median = statistics.median(times)
            verdict = ""
            if targeted:
                verdict = f"< {TARGET} s " + ("ok" if median < TARGET else "MISSED")
            print(f"{label:28}{median:8.3f}{min(times):8.3f}  {verdict}")
        plugin = [sys.executable, "-c", _PLUGIN_PROBE]
        times = [_time(plugin, env) for _ in range(args.runs)]
        heavy = subprocess.run(plugin, env=env, capture_output=True, text=True, check=True)
        loaded = heavy.stdout.strip() or "nothing heavy"
        print(
            f"{'import the pytest plugin':28}{statistics.median(times):8.3f}"
            f"{min(times):8.3f}  loads: {loaded}"
        )


if __name__ == "__main__":
    main()
