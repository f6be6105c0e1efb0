"""follow_transcript: entries as they land in the local file, from the start or from now."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import remote_executors as rx
from remote_executors.paths import project_dir_from_cwd

pytestmark = pytest.mark.anyio

SID = "0f0e0d0c-0b0a-4908-8706-050403020100"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(cwd, its transcript path) under a private local config dir."""
    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    cwd = tmp_path / "shop"
    cwd.mkdir()
    transcript = config / "projects" / project_dir_from_cwd(str(cwd.resolve())) / f"{SID}.jsonl"
    return cwd, transcript


def line(n: int) -> bytes:
    return json.dumps({"n": n}).encode() + b"\n"


async def take(entries: AsyncIterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    with anyio.fail_after(10):
        async for entry in entries:
            got.append(entry)
            if len(got) == count:
                break
    return got


async def test_from_the_start_then_as_lines_land(project: tuple[Path, Path]) -> None:
    cwd, path = project
    path.parent.mkdir(parents=True)
    path.write_bytes(line(0) + line(1))

    async def write_later() -> None:
        await anyio.sleep(0.1)
        with open(path, "ab") as f:
            f.write(b'{"n": ')  # half a line: not yielded until complete
            f.flush()
            await anyio.sleep(0.1)
            f.write(b"2}\nnot json\n" + line(3))

    async with anyio.create_task_group() as tg:
        tg.start_soon(write_later)
        entries = rx.follow_transcript(SID, directory=cwd, poll_interval=0.01)
        assert await take(entries, 4) == [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]


async def test_from_now_skips_what_is_there(project: tuple[Path, Path]) -> None:
    cwd, path = project
    path.parent.mkdir(parents=True)
    path.write_bytes(line(0) + line(1) + b'{"n": ')

    async def write_later() -> None:
        await anyio.sleep(0.2)
        with open(path, "ab") as f:
            f.write(b"2}\n" + line(3))

    async with anyio.create_task_group() as tg:
        entries = rx.follow_transcript(SID, directory=cwd, since="now", poll_interval=0.01)
        tg.start_soon(write_later)
        # The line that was half written "now" lands after: it is yielded.
        assert await take(entries, 2) == [{"n": 2}, {"n": 3}]


async def test_waits_for_the_file_and_finds_it_without_a_directory(
    project: tuple[Path, Path],
) -> None:
    _, path = project

    async def create_later() -> None:
        await anyio.sleep(0.1)
        path.parent.mkdir(parents=True)
        path.write_bytes(line(7))

    async with anyio.create_task_group() as tg:
        tg.start_soon(create_later)
        assert await take(rx.follow_transcript(SID, poll_interval=0.01), 1) == [{"n": 7}]


async def test_an_endless_line_is_refused(project: tuple[Path, Path]) -> None:
    cwd, path = project
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * 5000)
    with pytest.raises(rx.InvalidInput, match="longer than 1000 bytes"):
        await take(rx.follow_transcript(SID, directory=cwd, max_line_bytes=1000), 1)


async def test_a_bad_session_id_is_refused() -> None:
    with pytest.raises(rx.InvalidInput):
        await take(rx.follow_transcript("../etc/passwd"), 1)
