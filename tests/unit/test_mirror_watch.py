"""The live-transcript e2e tests' watcher catches what it is there to catch."""

from __future__ import annotations

import time
from pathlib import Path

from remote_executors.testing.mirror_watch import PARTIAL_GRACE, MirrorWatch


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    remote, local = tmp_path / "remote", tmp_path / "local"
    remote.mkdir()
    local.mkdir()
    return remote, local


def test_a_partial_line_that_stays_is_a_violation(tmp_path: Path) -> None:
    remote, local = _dirs(tmp_path)
    (remote / "s.jsonl").write_bytes(b'{"a":1}\n{"b"')
    with MirrorWatch(remote, local) as watch:
        (local / "s.jsonl").write_bytes(b'{"a":1}\n{"b"')
        time.sleep(PARTIAL_GRACE * 6)
    assert watch.violations == {"s.jsonl: local ends in a partial line"}


def test_a_partial_line_completed_at_once_is_not(tmp_path: Path) -> None:
    remote, local = _dirs(tmp_path)
    (remote / "s.jsonl").write_bytes(b'{"a":1}\n{"b":2}\n')
    with MirrorWatch(remote, local) as watch:
        with open(local / "s.jsonl", "ab") as f:
            f.write(b'{"a":1}\n{"b"')
            f.flush()
            time.sleep(0.005)  # a reader may catch one write half copied
            f.write(b":2}\n")
        time.sleep(PARTIAL_GRACE * 3)
    assert watch.violations == set()


def test_local_bytes_the_remote_lacks_are_a_violation(tmp_path: Path) -> None:
    remote, local = _dirs(tmp_path)
    (remote / "s.jsonl").write_bytes(b'{"a":1}\n')
    with MirrorWatch(remote, local) as watch:
        (local / "s.jsonl").write_bytes(b'{"x":9}\n')
        time.sleep(0.05)
    assert "s.jsonl: local is not a prefix of the remote copy" in watch.violations
