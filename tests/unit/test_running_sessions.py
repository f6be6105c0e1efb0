"""Running sessions: the listing's lines, and a follow's stop rule over a fake watch channel.

The real supervisor, sshd and CLI are in tests/e2e/test_running_sessions.py.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from claude_agent_sdk import AssistantMessage, ResultMessage, SystemMessage

from remote_executors.errors import OutputTooLarge
from remote_executors.running import RunningSession, _Follow, parse_job_line

pytestmark = pytest.mark.anyio

SID = "0b6e3c2a-58b4-4a5e-9d0b-3f3f0d1e2a77"


def job_line(init: bytes, *, attached: int = 0, exited: int = 0, idle: int = 0) -> bytes:
    d = b"/tmp/rx.AbCd1234".hex().encode()
    return b"rx-job %s 1700000000 1700000100 4096 %d %d %d %s" % (
        d,
        attached,
        exited,
        idle,
        init.hex().encode(),
    )


def init_line(sid: str = SID, cwd: str = "/home/u/shop") -> bytes:
    return json.dumps(
        {"type": "system", "subtype": "init", "cwd": cwd, "session_id": sid, "tools": []},
        separators=(",", ":"),
    ).encode()


def test_a_job_line_becomes_a_running_session() -> None:
    session = parse_job_line("box", job_line(init_line(), attached=1))
    assert session is not None
    assert (session.host, session.session_id, session.cwd) == ("box", SID, "/home/u/shop")
    assert session.state == "running" and session.attached
    assert session.job_dir == "/tmp/rx.AbCd1234" and session.spool_bytes == 4096
    assert session.started.timestamp() == 1700000000
    idle = parse_job_line("box", job_line(init_line(), idle=1))
    exited = parse_job_line("box", job_line(init_line(), exited=1, idle=1))
    assert idle is not None and idle.state == "idle"
    assert exited is not None and exited.state == "exited"


def test_a_cut_short_init_line_still_names_the_session() -> None:
    line = init_line(cwd='/home/u/a "b"')[:-5]  # the listing sends at most MAX_INIT bytes
    session = parse_job_line("box", job_line(line))
    assert session is not None and session.session_id == SID and session.cwd == '/home/u/a "b"'


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"noise from a login script",
        job_line(b""),  # the CLI started no turn yet: no session id
        job_line(init_line(sid="../../etc")),  # not a session id
        job_line(b"{}")[:-3] + b"zz",  # not hex
        job_line(init_line()) + b" extra",
    ],
)
def test_other_lines_are_no_session(line: bytes) -> None:
    assert parse_job_line("box", line) is None


# ---- the follow, over a fake watch channel -------------------------------------------------


def assistant(text: str, n: int) -> bytes:
    return json.dumps(
        {
            "type": "assistant",
            "uuid": f"u{n}",
            "session_id": SID,
            "message": {
                "role": "assistant",
                "model": "m",
                "content": [{"type": "text", "text": text}],
            },
        }
    ).encode()


def result(n: int) -> bytes:
    return json.dumps(
        {
            "type": "result",
            "subtype": "success",
            "uuid": f"r{n}",
            "duration_ms": 1,
            "duration_api_ms": 1,
            "is_error": False,
            "num_turns": 1,
            "session_id": SID,
        }
    ).encode()


class FakeWatch:
    def __init__(self, spool: bytearray, at: int, size: int, drop_after: int | None) -> None:
        self.spool, self.at, self.size, self.drop_after = spool, at, size, drop_after
        self.attached = False
        self.size_at_start = size
        self.ended = False
        self.said: list[str] = []

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.sleep(0)
        if self.drop_after is not None and self.at >= self.drop_after:
            raise anyio.EndOfStream  # the channel dropped (no end frame)
        if self.at >= len(self.spool):
            self.ended = True
            raise anyio.EndOfStream
        end = min(len(self.spool), self.at + 7)  # small chunks: lines arrive in pieces
        if self.drop_after is not None:
            end = min(end, self.drop_after)
        chunk = bytes(self.spool[self.at : end])
        self.at = end
        return chunk

    async def say(self, word: str) -> None:
        self.said.append(word)

    async def aclose(self) -> None:
        pass


class FakeExecutor:
    name = "box"

    def __init__(self, spool: bytes, size_at_start: int, drops: list[int]) -> None:
        self.spool = bytearray(spool)
        self.size = size_at_start
        self.drops = drops
        self.opened_at: list[int] = []
        self.watches: list[FakeWatch] = []

    async def watch_job(self, job_dir: str, stdout_at: int = 0) -> FakeWatch:
        self.opened_at.append(stdout_at)
        drop = self.drops.pop(0) if self.drops else None
        watch = FakeWatch(self.spool, stdout_at, self.size, drop)
        self.watches.append(watch)
        return watch


def running(state: str = "running") -> RunningSession:
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    return RunningSession(
        host="box",
        session_id=SID,
        cwd="/x",
        started=now,
        last_output=now,
        state=state,  # type: ignore[arg-type]
        attached=False,
        job_dir="/tmp/rx.x",
        spool_bytes=0,
    )


async def follow(executor: FakeExecutor, release: bool = False) -> list[Any]:
    run = _Follow(executor, running(), None)  # type: ignore[arg-type]
    try:
        return [m async for m in run.messages(release=release)]
    finally:
        await run.close()


SPOOL = b"\n".join(
    [
        b'{"type":"control_response","response":{"subtype":"success","request_id":"1"}}',
        init_line(),
        assistant("one", 1),
        result(1),
        init_line(),
        assistant("two", 2),
        result(2),
        b'{"type":"assistant","uuid":"u3","session_id":"' + SID.encode() + b'"',  # unfinished
    ]
)


def texts(messages: list[Any]) -> list[str]:
    return [b.text for m in messages if isinstance(m, AssistantMessage) for b in m.content]


async def test_it_replays_from_the_start_and_stops_at_the_turn_in_flight() -> None:
    # The follow began in the middle of turn two: it ends at turn two's result.
    mid = SPOOL.index(assistant("two", 2)) + 5
    messages = await follow(FakeExecutor(SPOOL, mid, []))
    assert texts(messages) == ["one", "two"]
    assert [m.uuid for m in messages if isinstance(m, ResultMessage)] == ["r1", "r2"]
    assert isinstance(messages[-1], ResultMessage)
    assert sum(isinstance(m, SystemMessage) for m in messages) == 2  # control lines dropped


async def test_an_idle_session_yields_its_history_and_ends() -> None:
    idle = SPOOL.index(result(2)) + len(result(2)) + 1
    messages = await follow(FakeExecutor(SPOOL, idle, []))
    assert texts(messages) == ["one", "two"] and isinstance(messages[-1], ResultMessage)


async def test_a_dropped_channel_is_reopened_from_the_last_byte() -> None:
    drops = [13, 100, 101, 250]
    executor = FakeExecutor(SPOOL, len(SPOOL) - 10, list(drops))
    messages = await follow(executor)
    assert texts(messages) == ["one", "two"]
    assert executor.opened_at == [0, *drops]
    uuids = [m.uuid for m in messages if getattr(m, "uuid", None)]
    assert uuids == ["u1", "r1", "u2", "r2"]


async def test_release_is_said_when_nobody_is_attached() -> None:
    executor = FakeExecutor(SPOOL, 10, [])
    await follow(executor, release=True)
    assert executor.watches[-1].said[:1] == ["release"]


async def test_a_line_past_the_limit_stops_the_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("remote_executors.running.MAX_LINE", 64)
    with pytest.raises(OutputTooLarge) as error:
        await follow(FakeExecutor(b'{"type":"assistant"' + b" " * 200 + b"}\n", 0, []))
    assert error.value.host == "box" and "box" in str(error.value)
