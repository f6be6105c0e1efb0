"""A hostile or unlucky remote cannot hurt the local side through a command's output.

For real over the loopback sshd, over both SSH backends:

- a login script (``~/.bashrc``, ``~/.zshenv``, fish's ``config.fish``,
  ``~/.tcshrc``) that starts a background job printing into the channel while
  commands run — a line that looks like an SDK message, one that mimics our
  frame header with another nonce, our status line's shape, text without a
  newline (``tests/_chatty.py``): ``home()`` is right, ``run()`` returns the
  command's bytes only, and a session through ``rx.query`` gets no extra message;
- a tool first on the PATH that streams forever (``head`` that is really
  ``cat /dev/zero``): ``run()`` raises ``OutputTooLarge`` promptly, local memory
  grows by about the limit only, and nothing is left running there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from _chatty import HIJACKED, make_chatty
from remote_executors.executors.ssh import BACKENDS
from remote_executors.testing.model import ScriptedModel, slow
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import (
    SHELLS,
    RemoteAccount,
    SSHClientConfig,
    SSHTestBed,
)

FIGURES_TITLE = "run() against endless output (default max_output, 64 MiB)"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True),
    # The remote side never meets the event loop.
    pytest.mark.parametrize("anyio_backend", ["asyncio"]),
]

#: Login shells whose rc file an ssh command reads (``sh -c`` reads none).
CHATTY_SHELLS = [s for s in SHELLS if s != "sh"]


def _raw_ssh_stdout(cfg: SSHClientConfig, command: str) -> bytes:
    """What the channel carries with nothing of ours in between (system ssh)."""
    return subprocess.run(
        ["ssh", "-F", str(cfg.path), "-T", cfg.alias, command],
        capture_output=True,
        timeout=30,
        check=True,
    ).stdout


@pytest.mark.parametrize("rx_account", SHELLS, indirect=True, ids=SHELLS)
async def test_chatty_login_home_and_run_are_exact(
    rx_executor: rx.SSHExecutor,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_ssh_backend: str,
) -> None:
    chatty = make_chatty(rx_account) is not None
    if chatty and rx_ssh_backend == "openssh":
        # The chatter is real: it reaches a plain ssh command's stdout late.
        raw = _raw_ssh_stdout(rx_ssh_config, "sleep 1; echo done")
        assert HIJACKED.encode() in raw.split(b"done")[0], raw
    with anyio.fail_after(60):
        # home() is over before the chatter comes (it used to end up in the cache).
        assert await rx_executor.home() == str(rx_account.home)
        slow_print = "printf 'first\\n'; sleep 1; printf 'second \\377\\n'"
        result = await rx_executor.run(["/bin/sh", "-c", slow_print])
        assert result == rx.CommandResult(0, b"first\nsecond \xff\n", b"")
        echoed = await rx_executor.run(["/bin/sh", "-c", "sleep 1; cat"], input=b"in\x00put")
        assert echoed == rx.CommandResult(0, b"in\x00put", b"")


@pytest.mark.parametrize("rx_account", CHATTY_SHELLS, indirect=True, ids=CHATTY_SHELLS)
async def test_chatty_login_session_gets_no_extra_message(
    rx_executor: rx.SSHExecutor,
    rx_account: RemoteAccount,
    rx_project: Project,
    rx_model: ScriptedModel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert make_chatty(rx_account) is not None
    # The answer comes after the chatter, so it lands in the middle of the session.
    rx_model.script(slow("answered after the chatter", delay=1.5))
    caplog.set_level("DEBUG", logger="remote_executors.ssh")
    options = ClaudeAgentOptions(cwd=str(rx_project.local))
    with anyio.fail_after(90):
        messages = [m async for m in rx.query(prompt="hi", options=options, executor=rx_executor)]
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert len(results) == 1, messages
    assert results[0].result == "answered after the chatter" and not results[0].is_error
    assert HIJACKED not in repr(messages)
    # It did arrive on the session's channel, and was dropped there.
    dropped = [r for r in caplog.records if "did not write" in r.getMessage()]
    assert any(HIJACKED in r.getMessage() for r in dropped), [r.getMessage() for r in dropped]


# --- a tool that streams forever ------------------------------------------------------

# Runs in a fresh interpreter, so its peak RSS (VmHWM) is this run's alone.
_PROBE = r"""
import json, sys, time
import anyio
import remote_executors as rx

def hwm_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

async def main(alias, config, backend, bindir):
    out = {}
    async with rx.SSHExecutor(alias, ssh_config=config, backend=backend) as executor:
        await executor.home()
        out["small"] = (await executor.run(["head", "-c", "5", "/etc/passwd"])).stdout.decode()
        before = hwm_kib()
        start = time.monotonic()
        try:
            # "head" as the caller meant it, but the remote's PATH finds another first.
            await executor.run(
                ["head", "-c", "100", "/etc/passwd"],
                env={"PATH": bindir + ":/usr/bin:/bin"},
                timeout=120,
            )
            out["outcome"] = "returned"
        except rx.OutputTooLarge as exc:
            out.update(outcome="OutputTooLarge", limit=exc.limit, stream=exc.stream,
                       host=exc.host, message=str(exc))
        out["seconds"] = time.monotonic() - start
        out["growth_mib"] = (hwm_kib() - before) / 1024
    print(json.dumps(out))

anyio.run(main, *sys.argv[1:])
"""


async def test_endless_output_is_stopped_with_bounded_memory(
    rx_sshd: SSHTestBed,
    rx_account: RemoteAccount,
    rx_ssh_config: SSHClientConfig,
    rx_ssh_backend: str,
    record: Callable[[str, float], None],
) -> None:
    bindir = rx_account.home / "rx-bin"
    bindir.mkdir()
    fake = bindir / "head"
    fake.write_text("#!/bin/sh\nexec cat /dev/zero\n")
    fake.chmod(0o755)
    for made in (bindir, fake):
        os.chown(made, rx_account.uid, rx_account.gid)

    argv = [sys.executable, "-c", _PROBE, rx_ssh_config.alias, str(rx_ssh_config.path)]
    started = time.monotonic()
    done = await anyio.run_process([*argv, rx_ssh_backend, str(bindir)], check=False)
    assert done.returncode == 0, done.stderr.decode()
    out = json.loads(done.stdout)
    assert out["small"] == Path("/etc/passwd").read_text()[:5]
    assert out["outcome"] == "OutputTooLarge", out
    assert (out["limit"], out["stream"], out["host"]) == (64 << 20, "stdout", rx_ssh_config.alias)
    assert rx_ssh_config.alias in out["message"] and "head" in out["message"]
    assert "max_output=" in out["message"]
    record(f"seconds to OutputTooLarge ({rx_ssh_backend})", out["seconds"])
    record(f"peak RSS growth, MiB ({rx_ssh_backend})", out["growth_mib"])
    # Promptly: the cap, not the timeout (120 s), ended it.
    assert out["seconds"] < 20, out
    # About the cap (64 MiB) and the transport's buffers; without the cap it
    # grew ~110 MB/s until the timeout.
    assert out["growth_mib"] < 64 + 40, out
    # Nothing is left streaming there.
    with anyio.fail_after(10):
        while any("cat /dev/zero" in p.args for p in rx_sshd.processes(rx_account)):
            await anyio.sleep(0.1)
    assert time.monotonic() - started < 60
