"""An ``SSHExecutor`` the app never closed leaves nothing behind when the interpreter exits.

(README's example closes it; plenty of scripts will not.) Without cleanup
the OpenSSH ControlMaster stayed up for ControlPersist (5 minutes), re-parented
to init, and its private ``/tmp/rx-*`` directory stayed forever.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from remote_executors.testing.sshd import SSHClientConfig

pytestmark = [pytest.mark.e2e]

SCRIPT = textwrap.dedent(
    """
    import sys, anyio, remote_executors as rx

    async def main():
        executor = rx.SSHExecutor(sys.argv[1], ssh_config=sys.argv[2], backend="openssh")
        result = await executor.run(["true"])
        assert result.returncode == 0
        print(executor._backend._control_dir, flush=True)  # and no aclose()

    anyio.run(main)
    """
)


def processes_naming(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_the_master_and_its_directory_go_at_exit(rx_ssh_config: SSHClientConfig) -> None:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, rx_ssh_config.alias, str(rx_ssh_config.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no warnings about unclosed transports either
    control_dir = done.stdout.strip()
    assert control_dir.startswith("/tmp/rx-")
    assert not os.path.exists(control_dir)
    assert processes_naming(control_dir) == []
    assert time.monotonic() - start < 30


KEPT = textwrap.dedent(
    """
    import gc, sys, anyio, remote_executors as rx

    async def main():
        executor = rx.SSHExecutor(sys.argv[1], ssh_config=sys.argv[2], backend="openssh")
        process = await executor.spawn(
            rx.SpawnOptions("/bin/sh", ["-c", "sleep 1; echo still-here"])
        )
        del executor  # dropped, not closed: its process still needs the connection
        gc.collect()
        out = b""
        async for chunk in process.stdout:
            out += chunk
        print(out.decode().strip(), await process.wait(), flush=True)

    anyio.run(main)
    """
)


def test_a_dropped_executor_does_not_cut_a_running_process(
    rx_ssh_config: SSHClientConfig,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KEPT, rx_ssh_config.alias, str(rx_ssh_config.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["still-here", "0"]
