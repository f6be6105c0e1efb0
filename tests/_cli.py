"""Driving the installed ``remote-executors`` script: in a subprocess, and in a real terminal.

``CLI`` runs it with private config, data and Claude dirs (local sessions talk
to the scripted model). ``Terminal`` runs it on a pseudo-terminal it controls,
as a shell would: colours and the progress line appear, and ``ctrl_c()``
types Ctrl-C, which the terminal turns into SIGINT for the command.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from remote_executors.testing.model import ScriptedModel

TIMEOUT = 120

#: ANSI colour (SGR) sequences, as click.style writes them.
SGR = re.compile(r"\x1b\[[0-9;]*m")


def command() -> list[str]:
    script = Path(sys.executable).with_name("remote-executors")
    if script.exists():
        return [str(script)]
    found = shutil.which("remote-executors")
    return [found] if found else [sys.executable, "-m", "remote_executors.cli"]


class CLI:
    def __init__(self, tmp: Path, model: ScriptedModel) -> None:
        self.tmp = tmp
        self.claude_dir = tmp / "claude"
        self.data_dir = tmp / "data"
        self.env = {
            **os.environ,
            "CLAUDE_CONFIG_DIR": str(self.claude_dir),
            "REMOTE_EXECUTORS_DATA_DIR": str(self.data_dir),
            "REMOTE_EXECUTORS_CONFIG_DIR": str(tmp / "config"),
            # Local sessions talk to the scripted model (remote accounts are set up for it).
            **model.cli_env(),
            "CLAUDE_CODE_MAX_RETRIES": "0",
        }
        for name in ("NO_COLOR", "TERM"):
            self.env.pop(name, None)

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdout: int | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """The installed command, in a subprocess (``stdout``: an fd to write to instead)."""
        return subprocess.run(
            [*command(), *args],
            env={**self.env, **(env or {})},
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
            cwd=cwd,
        )

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*command(), *args],
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def terminal(self, *args: str, env: Mapping[str, str] | None = None) -> Terminal:
        return Terminal([*command(), *args], {**self.env, "TERM": "xterm", **(env or {})})

    def inproc(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The same command in this process (click's runner): for the many quick
        calls of settings-only tests, which would otherwise spend most of their
        time starting an interpreter each time."""
        from click.testing import CliRunner

        from remote_executors.cli import cli

        result = CliRunner().invoke(cli, list(args), env=self.env, prog_name="remote-executors")
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


class Terminal:
    """A command on its own pseudo-terminal (its controlling terminal, 100 columns)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))

        def controlling_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=dict(env),
            preexec_fn=controlling_terminal,  # a test: no threads to worry about
            close_fds=True,
        )
        os.close(slave)
        self._master = master
        self.output = b""

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: the other side is closed
            chunk = b""
        self.output += chunk
        return bool(chunk)

    def wait_for(self, condition: Callable[[str], bool] | str, timeout: float = TIMEOUT) -> str:
        """Read until ``condition`` holds for the output so far (or a string appears)."""
        check = (lambda text: condition in text) if isinstance(condition, str) else condition
        deadline = time.monotonic() + timeout
        while not check(self.text):
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen in time; output so far:\n{self.text}")
            if not self._read(0.2) and self.process.poll() is not None:
                raise AssertionError(f"the command ended first; output:\n{self.text}")
        return self.text

    def ctrl_c(self) -> None:
        os.write(self._master, b"\x03")

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        """Read to the end; (exit status, everything it printed)."""
        deadline = time.monotonic() + timeout
        while self._read(0.2):
            if time.monotonic() > deadline:
                self.process.send_signal(signal.SIGKILL)
                raise AssertionError(f"did not finish in time; output:\n{self.text}")
        code = self.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        os.close(self._master)
        return code, self.text

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def one_error_line(result: subprocess.CompletedProcess[str], *must: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error: "), result.stderr
    for word in must:
        assert word in first, first
    return first


def last_line(out: str) -> str:
    return out.strip().splitlines()[-1]


def session_of(out: str) -> str:
    """The session id from ``run``'s last line (``session <id> on <host> · …``)."""
    line = last_line(out)
    assert line.startswith("session "), out
    return line.split()[1]
