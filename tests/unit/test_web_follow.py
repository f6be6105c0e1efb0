"""The transcript follower behind the SSE stream: whole lines only, bounded memory."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from remote_executors.web._follow import follow_entries, read_entries
from remote_executors.web._run_on import KEEP, RunOnMemory

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def line(n: int) -> bytes:
    return json.dumps({"type": "user", "uuid": f"u{n}"}).encode() + b"\n"


def test_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(line(1) + line(2)[:-5])
    entries, count, offset = read_entries(path)
    assert [e["uuid"] for e in entries] == ["u1"] and count == 1
    assert offset == len(line(1))


def test_oversize_line_is_skipped_not_buffered(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    big = b'{"type":"user","x":"' + b"a" * 300_000 + b'"}\n'
    path.write_bytes(line(1) + big + b"not json\n" + line(2))
    entries, _, offset = read_entries(path, max_line=100_000)
    assert [e.get("uuid") or e["type"] for e in entries] == ["u1", "oversize", "u2"]
    assert offset == path.stat().st_size


def test_keep_holds_only_the_newest_entries(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"".join(line(n) for n in range(5000)))
    entries, count, offset = read_entries(path, keep=10)
    assert [e["uuid"] for e in entries] == [f"u{n}" for n in range(4990, 5000)]
    assert count == 5000 and offset == path.stat().st_size


async def test_follow_yields_appended_lines(tmp_path: Path) -> None:
    path = tmp_path / "later.jsonl"  # does not exist yet
    got: list[str] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def follow() -> None:
                async for batch in follow_entries(path, interval=0.01):
                    got.extend(e["uuid"] for e in batch)
                    if len(got) == 3:
                        tg.cancel_scope.cancel()

            tg.start_soon(follow)
            await anyio.sleep(0.05)
            with path.open("ab") as handle:
                handle.write(line(1) + line(2)[:10])
                handle.flush()
                await anyio.sleep(0.05)
                handle.write(line(2)[10:] + line(3))
    assert got == ["u1", "u2", "u3"]


def test_run_on_is_remembered_and_bounded(tmp_path: Path) -> None:
    memory = RunOnMemory(tmp_path / "web" / "run-on.json")
    assert memory.get("/p") is None
    memory.remember("/p", "box")
    assert RunOnMemory(memory.path).get("/p") == "box"
    assert memory.path.stat().st_mode & 0o777 == 0o600
    for n in range(KEEP + 5):
        memory.remember(f"/q{n}", "gpu")
    data = json.loads(memory.path.read_text())
    assert len(data) == KEEP and "/p" not in data
    memory.path.write_text("{not json")
    assert memory.get("/q1") is None  # unreadable reads as empty


async def test_runs_past_the_cap_disconnect_the_oldest_idle_ones() -> None:
    from remote_executors.web._runs import MAX_RUNS, PermissionPrompt, Run, Runs

    runs = Runs()
    made = []
    for n in range(MAX_RUNS + 3):
        run = Run(executor_name="local", cwd="/p")
        run.state = "idle"
        made.append(run)
        runs._by_id[f"s{n}"] = run
    made[0].prompts["x"] = PermissionPrompt("x", "Bash", {})  # waiting on the user: kept
    made[1].state = "running"  # mid-turn: kept
    made[2].state = "failed"  # over: dropped first
    runs._trim()
    kept = runs.all()
    assert len(kept) == MAX_RUNS
    assert made[0] in kept and made[1] in kept and made[2] not in kept
    assert made[3] not in kept and made[4] not in kept and made[5] in kept
    assert made[3]._stop.cancel_called and not made[5]._stop.cancel_called
