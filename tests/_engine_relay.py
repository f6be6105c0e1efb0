"""A unix-socket relay in front of the Docker engine's socket, for tests.

Point ``DOCKER_HOST=unix://RELAY`` at it: the API carrier still applies (a
local unix socket), and the relay records what the client sent on each
connection and can cut the streams it carries, keeping or refusing new ones.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

ENGINE_SOCKET = "/var/run/docker.sock"


class EngineRelay:
    def __init__(self, path: Path, engine_socket: str = ENGINE_SOCKET) -> None:
        self.path = path
        self._engine = engine_socket
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(str(path))
        self._server.listen(64)
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        #: Per connection, everything the client sent (in order of connection).
        self.sent: list[bytearray] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self._engine)
            log = bytearray()
            with self._lock:
                self._open += [client, upstream]
                self.sent.append(log)
            threading.Thread(target=self._pump, args=(client, upstream, log), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, log: bytearray | None) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if log is not None:
                    with self._lock:
                        log += data
                dst.sendall(data)
        with contextlib.suppress(OSError):
            # Pass a half-close on as a half-close (the end of a job's stdin).
            dst.shutdown(socket.SHUT_WR)

    def requests(self) -> list[bytes]:
        """The HTTP part of each connection: a hijacked one up to the end of its
        request (what follows is the job's stdin), others whole."""
        out = []
        with self._lock:
            logs = [bytes(log) for log in self.sent]
        for log in logs:
            head, sep, rest = log.partition(b"\r\n\r\n")
            if b"\r\nUpgrade: tcp" in head:
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                out.append(head + sep + rest[:length])
            else:
                out.append(log)
        return out

    def streams(self) -> list[bytes]:
        """What went up each hijacked stream after its request."""
        with self._lock:
            logs = [bytes(log) for log in self.sent]
        return [log.partition(b"\r\n\r\n")[2] for log in logs if b"\r\nUpgrade: tcp" in log]

    def cut(self, *, refuse_new: bool) -> None:
        """Drop every connection; with ``refuse_new`` the socket goes too."""
        if refuse_new:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self.path.unlink()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.cut(refuse_new=True)
