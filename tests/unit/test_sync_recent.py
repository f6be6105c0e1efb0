"""TailSessionSync.pull_recent: after each turn, only what changed since the last pull.

The "remote" is a second config dir on this machine, reached through
``LocalExecutor`` (the same scripts as over SSH). What a session's remote does
between two turns is generated: append to the transcript, to old or new
subagent files, create tool results, leave files an hour old. After every
``pull_recent`` the local copy must hold every complete line the remote has,
exactly as a full pull would leave it; and it must not read files it was not
asked to (their bytes stay where they are).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remote_executors.executors.local import LocalExecutor
from remote_executors.sync import SessionPaths, TailSessionSync
from remote_executors.sync._state import load_state


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def remote_files(base: Path) -> dict[str, bytes]:
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def complete(data: bytes) -> bytes:
    return data[: data.rfind(b"\n") + 1]


# One turn of a remote session: files that were left alone for an hour, and
# appends (file index, complete lines, a partial line at the end).
TURN = st.tuples(
    st.sets(st.integers(0, 6), max_size=4),
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3), st.booleans()), max_size=5),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(turns=st.lists(TURN, min_size=1, max_size=6))
def test_pull_recent_keeps_every_complete_line(
    turns: list[tuple[set[int], list[tuple[int, int, bool]]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("recent")
    os.environ["REMOTE_EXECUTORS_DATA_DIR"] = str(tmp / "rx-data")
    sid = str(uuid.uuid4())
    remote = tmp / "remote" / "projects" / "-p"
    local = tmp / "local" / "-p"
    paths = SessionPaths(local, "-p", sid, str(tmp / "remote"))
    names = [f"{sid}.jsonl"] + [f"{sid}/subagents/agent-{i}.jsonl" for i in range(5)]
    names.append(f"{sid}/tool-results/t.txt")
    sync = TailSessionSync()
    executor = LocalExecutor()
    old = time.time() - 3600

    async def play() -> None:
        (remote / names[0]).parent.mkdir(parents=True, exist_ok=True)
        (remote / names[0]).write_bytes(b'{"n":0}\n')
        await sync.pull(executor, paths)  # the session's first pull: a full one
        for turn, (aged, appends) in enumerate(turns):
            for index in aged:  # untouched since an hour ago (before this turn's writes)
                path = remote / names[index]
                if path.exists():
                    os.utime(path, (old, old))
            for index, count, partial in appends:
                path = remote / names[index]
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "ab") as f:
                    f.write(b"".join(b'{"t":%d,"i":%d}\n' % (turn, i) for i in range(count)))
                    if partial:
                        f.write(b'{"half":')
            await sync.pull_recent(executor, paths)
            # The CLI finishes its partial lines by the next turn.
            for path in remote.rglob("*.jsonl"):
                if not path.read_bytes().endswith(b"\n"):
                    with open(path, "ab") as f:
                        f.write(b"1}\n")
            await sync.pull_recent(executor, paths)
            theirs = remote_files(remote)
            mine = remote_files(local)
            for rel, data in theirs.items():
                want = complete(data) if rel.endswith(".jsonl") else data
                assert mine.get(rel, b"") == want, (turn, rel)
        # A full pull finds nothing more to do.
        report = await sync.pull(executor, paths)
        assert report.moved == 0
        assert load_state(paths, executor.name).pulled_at is not None

    anyio.run(play)
