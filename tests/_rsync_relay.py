"""A stand-in remote shell for rsync's ``-e``, for tests: relays rsync's stream,
optionally damaging it as a failing link would.

Run as ``python _rsync_relay.py SPEC HOST WORD...`` (rsync appends HOST and the
remote command's words). SPEC is JSON:

``inner``
    The real remote shell's argv (ssh ...): it gets ``HOST WORD...``. ``null``:
    run the command here, ``/bin/sh -c "WORD..."`` (the way sshd hands a
    command line to a login shell), under ``prefix`` (e.g. ``setpriv ...``).
``cut``
    ``null`` (relay faithfully), or how the stream going ``dir`` (``"down"``:
    from the remote to rsync here, ``"up"``: from rsync here to the remote)
    is damaged: ``"empty"`` (nothing arrives), ``"half"`` (the link dies after
    ``budget`` bytes), ``"shrunk"`` (3 bytes vanish half-way through the first
    ``budget`` bytes, then the link dies), ``"last-byte"`` (everything but the
    final byte arrives, then the link closes).
``log``
    A file to append one JSON line per run to (the argv and bytes each way).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading

HOLD = 0.3  # seconds the newest bytes are held back while looking for the end (last-byte)


def main() -> None:
    spec = json.loads(sys.argv[1])
    # rsync may hand over non-blocking pipe ends (ssh copes with EAGAIN; plain
    # blocking reads and writes are simpler here).
    for fd in (0, 1):
        os.set_blocking(fd, True)
    host, words = sys.argv[2], sys.argv[3:]
    cut, direction = spec.get("cut"), spec.get("dir", "down")
    if spec.get("inner") is None:
        argv = [*spec.get("prefix", []), "/bin/sh", "-c", " ".join(words)]
    else:
        argv = [*spec["inner"], host, *words]
    if cut == "empty":
        _log(spec, argv, {"up": 0, "down": 0, "cut": cut})
        os._exit(255)
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert child.stdin is not None and child.stdout is not None
    counts = {"up": 0, "down": 0}
    budget = int(spec.get("budget", 4096))

    def die() -> None:
        _log(spec, argv, {**counts, "cut": cut})
        child.send_signal(signal.SIGKILL)
        os._exit(255)

    def pump(name: str, src: int, dst: int, close_dst: object) -> None:
        damaged = cut is not None and name == direction
        held = b""
        while True:
            if damaged and cut == "last-byte":
                ready, _, _ = select.select([src], [], [], HOLD if held else None)
                if not ready:  # quiet: the other side waits for these bytes
                    _write(dst, held)
                    counts[name] += len(held)
                    held = b""
                    continue
            chunk = os.read(src, 65536)
            if not chunk:
                if held:
                    _write(dst, held[:-1])
                    counts[name] += len(held) - 1
                    _log(spec, argv, {**counts, "cut": cut})
                    os._exit(255)
                break
            if damaged and cut == "last-byte":
                _write(dst, held)
                counts[name] += len(held)
                held = chunk
                continue
            if damaged and cut in ("half", "shrunk"):
                room = budget - counts[name]
                piece = chunk[:room]
                if cut == "shrunk" and counts[name] <= budget // 2 < counts[name] + len(piece):
                    at = budget // 2 - counts[name]
                    piece = piece[:at] + piece[at + 3 :]
                _write(dst, piece)
                counts[name] += len(chunk[:room])
                if counts[name] >= budget:
                    die()
                continue
            _write(dst, chunk)
            counts[name] += len(chunk)
        close_dst()  # type: ignore[operator]

    up = threading.Thread(
        target=pump, args=("up", 0, child.stdin.fileno(), child.stdin.close), daemon=True
    )
    down = threading.Thread(
        target=pump, args=("down", child.stdout.fileno(), 1, lambda: os.close(1)), daemon=True
    )
    up.start()
    down.start()
    down.join()
    code = child.wait()
    _log(spec, argv, {**counts, "cut": cut, "code": code})
    os._exit(code)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BrokenPipeError:
            return


def _log(spec: dict[str, object], argv: list[str], what: dict[str, object]) -> None:
    log = spec.get("log")
    if isinstance(log, str):
        with open(log, "a") as f:
            f.write(json.dumps({"argv": argv, **what}) + "\n")


if __name__ == "__main__":
    main()
