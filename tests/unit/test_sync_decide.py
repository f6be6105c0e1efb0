"""Unit and property tests for the no-loss sync decision (remote_executors.sync._decide).

The model: a decision is applied by copying one side over the other (PULL:
local := remote; PUSH: remote := local) or, for a conflict, by changing
nothing and keeping both copies. Whatever the two sides hold, applying the
decision must never lose a line either side had.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from remote_executors.sync._decide import Decision, Kind, complete_lines, decide

SWAPPED = {
    Kind.SAME: Kind.SAME,
    Kind.PULL: Kind.PUSH,
    Kind.PUSH: Kind.PULL,
    Kind.CONFLICT: Kind.CONFLICT,
}

# Few distinct lines, two of them the same length, so that generated pairs
# often share prefixes, diverge at equal length, or differ inside a line.
line = st.sampled_from([b'{"a":1}\n', b'{"b":2}\n', b'{"a":1,"t":"x"}\n', b"\n"])
partial = st.sampled_from([b"", b"", b'{"a"', b'{"b":2}', b"\xff"])
transcript = st.builds(lambda ls, p: b"".join(ls) + p, st.lists(line, max_size=6), partial)
tiny = st.lists(st.sampled_from(b"ab\n"), max_size=8).map(bytes)


@st.composite
def related(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Two transcripts that share a common history, then may each grow."""
    base = draw(transcript)
    return base + draw(transcript), base + draw(transcript)


side = st.one_of(st.none(), transcript, tiny, st.binary(max_size=12))
pairs = st.one_of(st.tuples(side, side), related(), st.tuples(tiny, tiny))


def lines_of(data: bytes | None) -> list[bytes]:
    """The complete lines of ``data`` (a partial last line is not a line yet)."""
    return [] if data is None else complete_lines(data).splitlines(keepends=True)


def apply_model(
    decision: Decision, local: bytes | None, remote: bytes | None
) -> tuple[bytes | None, bytes | None, list[bytes | None]]:
    """Apply ``decision``: new local, new remote, and every copy kept anywhere."""
    if decision.kind is Kind.PULL:
        local = remote
    elif decision.kind is Kind.PUSH:
        remote = local
    # A conflict changes nothing: local stays, the remote copy is saved beside it.
    return local, remote, [local, remote]


@given(pairs)
@example((None, None))
@example((None, b""))
@example((b"", b""))
@example((b"a\n", b"b\n"))  # same length, different bytes
@example((b"a\nb\n", b"a\nc\nd\n"))  # longer receiver, diverged
def test_applying_the_decision_never_loses_a_line(pair: tuple[bytes | None, bytes | None]) -> None:
    local, remote = pair
    decision = decide(local, remote)
    new_local, new_remote, kept = apply_model(decision, local, remote)

    # Each side only ever grows by appending: its old bytes are a prefix of its new ones.
    if local is not None:
        assert new_local is not None and new_local.startswith(local)
    if remote is not None:
        assert new_remote is not None and new_remote.startswith(remote)
    # So every line either side had is still there (counted with multiplicity).
    after = [ln for copy in kept for ln in lines_of(copy)]
    for before in (local, remote):
        for ln in set(lines_of(before)):
            assert after.count(ln) >= lines_of(before).count(ln)
    # And after a fast-forward both sides agree.
    if decision.kind is not Kind.CONFLICT:
        assert new_local == new_remote


@given(pairs)
def test_swapping_sides_swaps_pull_and_push(pair: tuple[bytes | None, bytes | None]) -> None:
    local, remote = pair
    forward, backward = decide(local, remote), decide(remote, local)
    assert backward.kind is SWAPPED[forward.kind]
    assert (backward.local_size, backward.remote_size) == (forward.remote_size, forward.local_size)
    assert backward.common == forward.common


@given(pairs)
def test_same_iff_equal(pair: tuple[bytes | None, bytes | None]) -> None:
    local, remote = pair
    assert (decide(local, remote).kind is Kind.SAME) == (local == remote)


@given(pairs)
def test_kind_matches_the_prefix_definition(pair: tuple[bytes | None, bytes | None]) -> None:
    local, remote = pair
    decision = decide(local, remote)
    loc, rem = local or b"", remote or b""
    if local == remote:
        expected = Kind.SAME
    elif local is None or (remote is not None and len(loc) < len(rem) and rem.startswith(loc)):
        expected = Kind.PULL
    elif remote is None or (len(rem) < len(loc) and loc.startswith(rem)):
        expected = Kind.PUSH
    else:
        expected = Kind.CONFLICT
    assert decision.kind is expected
    assert decision.local_size == (None if local is None else len(local))
    assert decision.remote_size == (None if remote is None else len(remote))


@given(pairs)
def test_common_is_the_longest_common_prefix(pair: tuple[bytes | None, bytes | None]) -> None:
    local, remote = pair
    decision = decide(local, remote)
    if local is None or remote is None:
        assert decision.common == 0
        return
    naive = 0
    while naive < min(len(local), len(remote)) and local[naive] == remote[naive]:
        naive += 1
    assert decision.common == naive


@pytest.mark.parametrize("at", [0, 1, 65535, 65536, 65537, 3 * 65536 + 17, 300_000 - 1])
def test_conflict_offset_in_large_files(at: int) -> None:
    local = bytes(range(256)) * (300_000 // 256) + b"x" * (300_000 % 256)
    remote = bytearray(local)
    remote[at] ^= 0xFF
    remote += b"more\n"  # longer receiver, diverged: still a conflict
    decision = decide(local, bytes(remote))
    assert decision == Decision(Kind.CONFLICT, len(local), len(remote), at)


@pytest.mark.parametrize(
    ("local", "remote", "kind"),
    [
        (None, None, Kind.SAME),
        (b"", b"", Kind.SAME),
        (b"a\n", b"a\n", Kind.SAME),
        (None, b"", Kind.PULL),  # an empty remote file is still created locally
        (b"", None, Kind.PUSH),
        (b"", b"a\n", Kind.PULL),
        (b"a\n", b"a\nb\n", Kind.PULL),
        (b"a\nb\n", b"a\n", Kind.PUSH),
        (b"a\n", b"b\n", Kind.CONFLICT),  # same length, different bytes
        (b"a\nb\n", b"a\nc\nd\n", Kind.CONFLICT),  # longer remote, diverged
        (b"a\nc\nd\n", b"a\nb\n", Kind.CONFLICT),  # longer local, diverged
        (b"a\nb", b"a\nc\n", Kind.CONFLICT),  # diverged inside a partial line
    ],
)
def test_examples(local: bytes | None, remote: bytes | None, kind: Kind) -> None:
    assert decide(local, remote).kind is kind


def test_decision_is_a_frozen_value() -> None:
    decision = decide(b"a\n", b"a\nb\n")
    assert decision == Decision(Kind.PULL, 2, 4, 2)
    assert hash(decision) == hash(Decision(Kind.PULL, 2, 4, 2))
    with pytest.raises(AttributeError):
        decision.kind = Kind.SAME  # type: ignore[misc]


# -- complete_lines -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "complete"),
    [
        (b"", b""),
        (b"partial", b""),
        (b"\n", b"\n"),
        (b"a\n", b"a\n"),
        (b"a\nb", b"a\n"),
        (b"a\nb\n", b"a\nb\n"),
        (b"a\r\nb\r", b"a\r\n"),  # only \n ends a line
        (b'{"a":1}\n{"b":', b'{"a":1}\n'),
    ],
)
def test_complete_lines_examples(data: bytes, complete: bytes) -> None:
    assert complete_lines(data) == complete


@given(st.one_of(transcript, tiny, st.binary(max_size=40)))
def test_complete_lines_drops_exactly_the_partial_last_line(data: bytes) -> None:
    kept = complete_lines(data)
    dropped = data[len(kept) :]
    assert data.startswith(kept)
    assert kept == b"" or kept.endswith(b"\n")
    assert b"\n" not in dropped
    assert complete_lines(kept) == kept


def test_complete_lines_does_not_copy_complete_data() -> None:
    data = b'{"a":1}\n' * 1000
    assert complete_lines(data) is data


@given(st.lists(line, min_size=1, max_size=8), st.data())
def test_syncing_a_file_being_written_only_ever_pulls_complete_lines(
    lines: list[bytes], data: st.DataObject
) -> None:
    """Sync repeatedly while the remote CLI appends: never a conflict, never a partial line."""
    final = b"".join(lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(final)), max_size=6)))
    local: bytes | None = None
    for cut in [*cuts, len(final)]:
        remote_now = complete_lines(final[:cut])  # what a sync mid-write sees
        decision = decide(local, remote_now)
        assert decision.kind in (Kind.PULL, Kind.SAME)
        if decision.kind is Kind.PULL:
            local = remote_now
        assert local is not None and complete_lines(local) == local
    assert local == final  # the last sync, after the turn, brings everything
