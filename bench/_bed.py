"""What every bench runs on: the scripted model, the loopback sshd, one account, one project."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Literal, NamedTuple, cast

from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from remote_executors.executors.ssh import BACKENDS
from remote_executors.testing.model import ScriptedModel
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed


class BenchBed(NamedTuple):
    model: ScriptedModel
    bed: SSHTestBed
    account: RemoteAccount
    cfg: SSHClientConfig
    local: Path  # the project here, under the local home; its twin exists there
    tmp: str  # a private directory, removed afterwards


@contextlib.contextmanager
def bench_bed(synced: str = "synced-claude") -> Iterator[BenchBed]:
    """Start everything; synced sessions go to ``<tmp>/<synced>``, not ~/.claude."""
    with ScriptedModel() as model, SSHTestBed() as bed, tempfile.TemporaryDirectory() as tmp:
        os.environ["CLAUDE_CONFIG_DIR"] = str(Path(tmp) / synced)
        os.environ["REMOTE_EXECUTORS_DATA_DIR"] = str(Path(tmp) / "rx-data")
        account = bed.account("bash", model_url=model.url)
        cfg = bed.client_config(account, Path(tmp) / "ssh")
        rel = Path(f"rx-bench-{time.time_ns()}")
        local = Path.home() / rel
        local.mkdir()
        bed.run_as(account, ["mkdir", "-p", str(bed.remote_home(account) / rel)], check=True)
        try:
            yield BenchBed(model, bed, account, cfg, local, tmp)
        finally:
            with contextlib.suppress(OSError):
                local.rmdir()


BackendName = Literal["openssh", "fabric"]


def backend_name(name: str) -> BackendName:
    """An SSH backend's name from the command line (argparse checked the choice)."""
    if name not in BACKENDS:
        raise ValueError(f"not an SSH backend: {name!r}")
    return cast(BackendName, name)


class Timing(NamedTuple):
    """Seconds from a one-prompt session's start."""

    first: float  # its first message arrived
    result: float  # its ResultMessage arrived
    closed: float  # the session was over (CLI exited, transcripts in step)


async def one_session(
    executor: rx.Executor, options: ClaudeAgentOptions, *, live: bool = True
) -> Timing:
    """One one-prompt session, timed.

    ``live=False``: without the live follower (the local copy moves at the turn's end).
    """
    start = time.perf_counter()
    first = result = None
    # aclosing: the session must be over before the executor may be closed.
    messages = rx.query(prompt="hello", options=options, executor=executor, live=live)
    async with aclosing(messages) as stream:
        async for message in stream:
            if first is None:
                first = time.perf_counter() - start
            if isinstance(message, ResultMessage):
                result = time.perf_counter() - start
                break
    assert first is not None and result is not None
    return Timing(first, result, time.perf_counter() - start)
