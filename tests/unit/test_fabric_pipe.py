"""The fabric backend's channel events: closed on the event loop while paramiko's
transport thread may still set them (the CI race of test_proxycommand_and_proxyjump)."""

from __future__ import annotations

import os
import select
import threading
from pathlib import Path

from remote_executors.executors.ssh._fabric import _SafePipe


def test_set_and_clear_wake_and_quiet_the_descriptor() -> None:
    pipe = _SafePipe()
    try:
        assert select.select([pipe.fileno()], [], [], 0)[0] == []
        pipe.set()
        pipe.set()  # once is enough: one byte, one wake-up
        assert select.select([pipe.fileno()], [], [], 0)[0] == [pipe.fileno()]
        pipe.clear()
        assert select.select([pipe.fileno()], [], [], 0)[0] == []
    finally:
        pipe.close()


def test_set_after_close_writes_nowhere(tmp_path: Path) -> None:
    pipe = _SafePipe()
    write_end = pipe._wfd
    pipe.close()
    # The descriptor number is free again; whatever reuses it must not get a byte.
    fd = os.open(tmp_path / "other", os.O_WRONLY | os.O_CREAT)
    try:
        pipe.set()
        pipe.clear()
        pipe.close()
    finally:
        os.close(fd)
    assert (tmp_path / "other").read_bytes() == b""
    assert write_end >= 0


def test_closing_while_another_thread_sets_never_fails() -> None:
    errors: list[BaseException] = []
    for _ in range(300):
        pipe = _SafePipe()
        start = threading.Barrier(2)

        def hammer(pipe: _SafePipe = pipe, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                for _ in range(200):
                    pipe.set()
                    pipe.clear()
            except BaseException as exc:  # the race this guards against: EBADF
                errors.append(exc)

        thread = threading.Thread(target=hammer)
        thread.start()
        start.wait()
        pipe.close()
        thread.join()
    assert errors == []
