"""The live follower's frames: parsed byte-exactly, in any split, and a lying stream refused."""

from __future__ import annotations

import pytest

from remote_executors.sync._live_frames import (
    MAX_HEADER,
    MAX_PAYLOAD,
    Data,
    FrameParser,
    Head,
    Hello,
    LiveProtocolError,
    Problem,
    Synced,
)

SID = "0f0e0d0c-0b0a-4908-8706-050403020100"
MAIN = f"{SID}.jsonl"
HELLO = b"L 2 poll\n"
TAG = 1
session_of = {TAG: SID}.get


def parse(stream: bytes, *, split: int | None = None) -> list[object]:
    parser = FrameParser(session_of)
    frames: list[object] = []
    step = split or len(stream) or 1
    for i in range(0, len(stream), step):
        frames += parser.feed(stream[i : i + step])
    return frames


def test_every_frame_kind_round_trips_in_any_split() -> None:
    payload = b'{"a": 1}\n{"b": "\\n D 0 9 x\\n"}\n\x00\xff'
    stream = (
        HELLO
        + b"H 1 3 " + MAIN.encode() + b"\nabc"
        + b"D 1 4096 %d " % len(payload) + MAIN.encode() + b"\n" + payload
        + b"D 1 0 2 " + SID.encode() + b"/subagents/agent-x y.jsonl\n{}"
        + b"T 1 10 " + SID.encode() + b"/tool-results/t.txt\n"
        + b"B 1 99999999999 " + SID.encode() + b"/big.txt\n"
        + b"E 1 " + SID.encode() + b"/secret.txt\n"
        + b"S 1 7\n"
    )  # fmt: skip
    expected = [
        Hello(2, "poll"),
        Head(TAG, MAIN, b"abc"),
        Data(TAG, MAIN, 4096, payload),
        Data(TAG, f"{SID}/subagents/agent-x y.jsonl", 0, b"{}"),
        Problem(TAG, f"{SID}/tool-results/t.txt", "shrunk", 10),
        Problem(TAG, f"{SID}/big.txt", "too-big", 99999999999),
        Problem(TAG, f"{SID}/secret.txt", "unreadable"),
        Synced(TAG, 7),
    ]
    for split in (None, 1, 2, 7, 64):
        assert parse(stream, split=split) == expected


def test_a_frame_cut_short_yields_nothing_yet() -> None:
    parser = FrameParser(session_of)
    assert parser.feed(HELLO + b"D 1 0 10 " + MAIN.encode() + b"\n12345") == [Hello(2, "poll")]
    assert parser.feed(b"6789") == []
    assert parser.feed(b"0") == [Data(TAG, MAIN, 0, b"1234567890")]


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(b"hello\n", id="no-hello"),
        pytest.param(HELLO + b"X 1 2\n", id="unknown-frame"),
        pytest.param(HELLO + b"D 1 0 3 ../../.ssh/authorized_keys\nabc", id="escape-dotdot"),
        pytest.param(HELLO + b"D 1 0 3 /etc/passwd\nabc", id="absolute"),
        pytest.param(HELLO + b"D 1 0 3 other-session.jsonl\nabc", id="another-file"),
        pytest.param(HELLO + f"D 1 0 3 {SID}/.x.tmp\nabc".encode(), id="hidden-temp"),
        pytest.param(HELLO + f"D 1 0 3 {MAIN}.conflict-h-1\nabc".encode(), id="conflict-copy"),
        pytest.param(HELLO + f"D 1 -1 3 {MAIN}\nabc".encode(), id="negative-offset"),
        pytest.param(HELLO + f"D 1 01 3 {MAIN}\nabc".encode(), id="leading-zero"),
        pytest.param(HELLO + f"D 1 0 0 {MAIN}\n".encode(), id="empty-data"),
        pytest.param(HELLO + f"D 1 0 {MAIN}\n".encode(), id="missing-length"),
        pytest.param(HELLO + f"D 1 0 {MAX_PAYLOAD + 1} {MAIN}\n".encode(), id="huge-payload"),
        pytest.param(HELLO + f"D 1 0 {10**25} {MAIN}\n".encode(), id="absurd-length"),
        pytest.param(HELLO + f"H 1 4097 {MAIN}\n".encode(), id="huge-head"),
        pytest.param(HELLO + b"S 1 x\n", id="bad-seq"),
        pytest.param(HELLO + HELLO, id="second-hello-is-unknown"),
    ],
)
def test_a_lying_stream_is_refused(stream: bytes) -> None:
    with pytest.raises(LiveProtocolError):
        parse(stream)


def test_an_endless_header_is_refused_within_a_bound() -> None:
    parser = FrameParser(session_of)
    parser.feed(HELLO)
    with pytest.raises(LiveProtocolError, match="header longer"):
        for _ in range(100):
            parser.feed(b"D" * 1024)  # never a newline
    # The buffer never held much more than one header.
    assert len(parser._buf) <= MAX_HEADER + 1024


def test_memory_stays_below_one_payload_while_waiting() -> None:
    parser = FrameParser(session_of, max_payload=1000)
    parser.feed(HELLO + f"D 1 0 1000 {MAIN}\n".encode())
    for _ in range(9):
        assert parser.feed(b"x" * 100) == []
    frames = parser.feed(b"x" * 100 + b"S 1 1\n")
    assert frames == [Data(TAG, MAIN, 0, b"x" * 1000), Synced(TAG, 1)]
    assert len(parser._buf) == 0


def test_frames_of_a_session_not_followed_are_read_and_dropped() -> None:
    """A session that just left may still have bytes in flight: they are skipped
    whole (the stream stays in step), never applied."""
    stream = HELLO + f"D 9 0 3 {MAIN}\nabcE 9 {MAIN}\nS 9 4\nD 1 0 2 {MAIN}\nok".encode()
    assert parse(stream) == [Hello(2, "poll"), Synced(9, 4), Data(TAG, MAIN, 0, b"ok")]


@pytest.mark.parametrize("line", [b"D 0 0 3 x\nabc", b"D 01 0 3 x\nabc", b"S  4\n"])
def test_a_bad_tag_is_refused(line: bytes) -> None:
    with pytest.raises(LiveProtocolError):
        parse(HELLO + line)
