"""Running sessions: the listing's lines, and a follow's stop rule over a fake watch channel.

The real supervisor, sshd and CLI are in tests/e2e/test_running_sessions.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import AssistantMessage, ResultMessage, SystemMessage

from remote_executors import running as running_module
from remote_executors.errors import OutputTooLarge
from remote_executors.running import RunningSession, _Follow, parse_job_line

pytestmark = pytest.mark.anyio

SID = "0b6e3c2a-58b4-4a5e-9d0b-3f3f0d1e2a77"


def job_line(
    init: bytes,
    *,
    attached: int = 0,
    exited: int = 0,
    idle: int = 0,
    sid: str = "",
    cwd: str = "",
) -> bytes:
    """A listing line as the host sends it (the perl in running.py)."""
    fields = [b"/tmp/rx.AbCd1234", sid.encode(), cwd.encode(), init]
    d, s, c, i = (f.hex().encode() for f in fields)
    head = b"rx-job %s 1700000000 1700000100 4096 %d %d %d" % (d, attached, exited, idle)
    return b" ".join([head, s, c, i])


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


def test_a_long_init_line_is_named_by_the_host_s_patterns() -> None:
    # Over MAX_INIT the host sends no init line, only what its patterns found: the JSON
    # string contents of "session_id" and "cwd" (escapes and all).
    session = parse_job_line("box", job_line(b"", sid=SID, cwd='/home/u/a \\"b\\" \\u00e9'))
    assert session is not None
    assert session.session_id == SID and session.cwd == '/home/u/a "b" \u00e9'


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"noise from a login script",
        job_line(b""),  # the CLI started no turn yet: no session id
        job_line(init_line(sid="../../etc")),  # not a session id
        job_line(b"", sid="../../etc"),
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


STATE_IDLE = b'{"type":"system","subtype":"session_state_changed","state":"idle"}'
SPOOL = b"\n".join(
    [
        b'{"type":"control_response","response":{"subtype":"success","request_id":"1"}}',
        init_line(),
        assistant("one", 1),
        result(1),
        init_line(),
        assistant("two", 2),
        result(2),
        STATE_IDLE,
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
    # The CLI says it is idle after a result: the follow ends there, not at the next result.
    idle = SPOOL.index(STATE_IDLE) + len(STATE_IDLE) + 1
    messages = await follow(FakeExecutor(SPOOL, idle, []))
    assert texts(messages) == ["one", "two"]
    assert isinstance(messages[-2], ResultMessage) and messages[-2].uuid == "r2"
    assert isinstance(messages[-1], SystemMessage)  # the state line


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


# ---- the host's side of the listing, the real perl over job dirs made here ------------------


def make_job(tmp: Path, name: str, lines: list[bytes], *, live: bool = True) -> Path:
    job = tmp / name
    job.mkdir(mode=0o700)
    (job / "out").write_bytes(b"".join(line + b"\n" for line in lines))
    (job / "wd").write_text(f"{os.getpid() if live else 999999999}\n")  # the watchdog's pid
    (job / "attach").write_text(f"{os.getpid()} {os.getpid()}\n")  # not perl: not attached
    os.mkfifo(job / "in")
    return job


def listing(tmp: Path) -> list[RunningSession]:
    done = subprocess.run(
        ["perl", "-e", running_module._LIST, "--", "100", str(running_module.MAX_INIT)],
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        check=True,
    )
    found = [parse_job_line("box", line) for line in done.stdout.splitlines()]
    return sorted((s for s in found if s is not None), key=lambda s: s.job_dir)


@pytest.mark.skipif(shutil.which("perl") is None, reason="no perl here")
def test_the_host_listing_finds_live_jobs_whatever_the_key_order(tmp_path: Path) -> None:
    late_keys = json.dumps(
        {"tools": ["x"] * 50, "cwd": '/srv/a "q"', "type": "system", "session_id": SID}
        | {"subtype": "init"},
        separators=(",", ":"),
    ).encode()
    other = "1b6e3c2a-58b4-4a5e-9d0b-3f3f0d1e2a77"
    huge = json.dumps(
        {"type": "system", "subtype": "init", "session_id": other, "cwd": "/srv/b"}
        | {"tools": ["t" * 100] * 2000},
        separators=(",", ":"),
    ).encode()
    result_line = json.dumps(
        {"is_error": False, "type": "result", "subtype": "success"}, separators=(",", ":")
    ).encode()
    spool = [b'{"type":"control_response"}', late_keys, result_line, STATE_IDLE]
    make_job(tmp_path, "rx.Aaaaaaaa", spool)  # as the CLI ends a turn
    make_job(tmp_path, "rx.Bbbbbbbb", [huge, b'{"type":"assistant"}'])
    make_job(tmp_path, "rx.Cccccccc", [late_keys], live=False)  # its supervisor is gone
    make_job(tmp_path, "rx.Dddddddd", [b'{"type":"control_response"}'])  # no turn yet
    (tmp_path / "rx.Eeeeeeee").symlink_to(tmp_path / "rx.Aaaaaaaa")
    # Exited and collected whole by a follow: on its way out, not running.
    collected = make_job(tmp_path, "rx.Ffffffff", [late_keys, result_line])
    (collected / "status").write_text("0\n")
    (collected / "done").touch()
    idle, running = listing(tmp_path)
    assert (idle.session_id, idle.cwd, idle.state) == (SID, '/srv/a "q"', "idle")
    assert (running.session_id, running.cwd, running.state) == (other, "/srv/b", "running")
    assert len(huge) > running_module.MAX_INIT  # found by pattern, not parsed
    assert not idle.attached and idle.job_dir == str(tmp_path / "rx.Aaaaaaaa")


async def test_a_follow_looks_for_the_transcript_where_the_session_kept_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session started with CLAUDE_CONFIG_DIR there: its record says where its
    project dir is, and the follow's sync looks in that config dir."""
    from remote_executors.records import SessionRecord, SessionRecords

    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "data"))
    assert running_module._remote_env(SID) == {}  # no record: the CLI's default
    SessionRecords().put(
        SessionRecord(
            SID,
            "ssh://box",
            "/home/me/shop",
            remote_cwd="/srv/shop",
            remote_project_dir="/srv/claude cfg/projects/-srv-shop",
        )
    )
    assert running_module._remote_env(SID) == {"CLAUDE_CONFIG_DIR": "/srv/claude cfg"}
