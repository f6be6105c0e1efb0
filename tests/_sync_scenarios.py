"""Scenarios every sync strategy must decide alike (the cross-strategy tests use them).

Each is ``(local files, remote files)`` keyed by short names (``T``: the
transcript, ``S``: a subagent's, ``R``: a tool result...); :func:`names` maps
them to paths of one session.
"""

from __future__ import annotations

import json


def jsonl(*records: object) -> bytes:
    return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)


def lines(n: int, tag: str = "t", pad: int = 60) -> bytes:
    return jsonl(*({"n": i, "tag": tag, "text": "x" * pad} for i in range(n)))


BIG_LINE = jsonl({"big": "y" * 5000})
COMMON = lines(100)  # ~9 KB: beyond the 4 KiB window

SCENARIOS: dict[str, tuple[dict[str, bytes], dict[str, bytes]]] = {
    "remote-only": ({}, {"T": lines(3), "S": lines(1, "s"), "R": b"\x00bin"}),
    "local-only": ({"T": lines(3), "S": lines(1, "s")}, {}),
    "same": ({"T": COMMON}, {"T": COMMON}),
    "behind-small": ({"T": lines(2)}, {"T": lines(2) + lines(1, "n")}),
    "behind-large": ({"T": COMMON}, {"T": COMMON + BIG_LINE + lines(3, "n")}),
    "ahead-small": ({"T": lines(2) + lines(1, "n")}, {"T": lines(2)}),
    "ahead-large": ({"T": COMMON + BIG_LINE}, {"T": COMMON}),
    "diverged-same-length": ({"T": COMMON + b'{"a":1}\n'}, {"T": COMMON + b'{"b":1}\n'}),
    "diverged-longer-local": (
        {"T": lines(2) + b'{"a":1}\n{"a":2}\n'},
        {"T": lines(2) + b'{"b":1}\n'},
    ),
    "diverged-first-bytes": ({"T": b'{"w":"l"}\n' + COMMON}, {"T": b'{"w":"r"}\n' + COMMON}),
    "diverged-in-the-middle": (
        {"T": COMMON + b'{"w":"l"}\n' + COMMON},
        {"T": COMMON + b'{"w":"r"}\n' + COMMON},
    ),
    "remote-partial-small": ({"T": lines(2)}, {"T": lines(2) + b'{"half":'}),
    "remote-partial-large": ({"T": COMMON}, {"T": COMMON + lines(1, "n") + b'{"half":'}),
    "both-partial-small": ({"T": lines(2) + b'{"half":'}, {"T": lines(2) + b'{"half":'}),
    "both-partial-large": ({"T": COMMON + b'{"half":'}, {"T": COMMON + b'{"half":'}),
    "only-partial": ({}, {"T": b'{"half":'}),
    "local-ahead-of-partial": (
        {"T": COMMON + lines(1, "n") + lines(1, "local")},
        {"T": COMMON + lines(1, "n") + b'{"half":'},
    ),
    "subagent-behind": ({"T": lines(1), "S": lines(1, "s")}, {"T": lines(1), "S": lines(2, "s")}),
    "hidden-and-conflict-copies": (
        {"T": lines(1)},
        {"T": lines(1), ".T.tmp": b"x", "T.conflict-box-20260101T000000Z": b"y\n"},
    ),
}


def names(sid: str) -> dict[str, str]:
    """The scenarios' short names as paths of session ``sid``."""
    return {
        "T": f"{sid}.jsonl",
        "S": f"{sid}/subagents/agent-1.jsonl",
        "R": f"{sid}/tool-results/toolu_1.txt",
        ".T.tmp": f".{sid}.jsonl.tmp",
        "T.conflict-box-20260101T000000Z": f"{sid}.jsonl.conflict-box-20260101T000000Z",
    }
