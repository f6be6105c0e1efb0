"""One ``pods/exec`` WebSocket as a job channel (the ``_backend.Channel`` protocol).

The official client's ``stream()`` opens the socket (kubeconfig, TLS, auth,
the ``v5.channel.k8s.io``/``v4.channel.k8s.io`` negotiation) and hands back
its ``WSClient``; from there one reader thread takes frames off the socket
and writes each stream's bytes into an OS pipe that the event loop reads.
A pipe holds 64 KiB: when nobody reads, the reader blocks, the socket fills
and the server stops sending, so memory stays bounded whatever the pod sends.

Channels of the exec protocol: 0 stdin, 1 stdout, 2 stderr, 3 the final
status (a ``metav1.Status`` JSON), 4 resize (unused: no tty); under v5, a
frame on 255 closes a stream (``[255, 0]``: end of stdin).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import threading
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream

__all__ = ["EXEC_FAILED", "KubeChannel", "V4", "V5", "exit_code_of"]

V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"

_STDIN, _STDOUT, _STDERR, _STATUS, _CLOSE = 0, 1, 2, 3, 255
#: No status came, or it named no exit code: the link, not the program, ended
#: (the value ssh and the engine CLIs use for their own failures).
EXEC_FAILED = 255
_KEEP = 16384  # bytes of stderr kept for messages when nobody reads it
_STATUS_LIMIT = 65536  # a status is a small JSON object; a bigger one is cut


def exit_code_of(status: bytes) -> tuple[int, str]:
    """(exit code, message) from channel 3's ``Status``; ``EXEC_FAILED`` when it
    carries no exit code (the exec itself failed: the message says why)."""
    try:
        parsed: Any = json.loads(status.decode("utf-8", "replace"))
    except ValueError:
        return EXEC_FAILED, status.decode("utf-8", "replace")[:2000]
    if not isinstance(parsed, dict):
        return EXEC_FAILED, str(parsed)[:2000]
    if parsed.get("status") == "Success":
        return 0, ""
    message = str(parsed.get("message") or "")
    details = parsed.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    if parsed.get("reason") == "NonZeroExitCode" and isinstance(causes, list):
        for cause in causes:
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                with contextlib.suppress(TypeError, ValueError):
                    return int(str(cause.get("message"))), message
    return EXEC_FAILED, message or str(parsed)[:2000]


class _PipeStream(ByteReceiveStream):
    """The read end of a pipe the reader thread writes into."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd: int | None = fd

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            fd = self._fd
            if fd is None:
                raise anyio.ClosedResourceError
            try:
                data = os.read(fd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(fd)
                continue
            if not data:
                raise anyio.EndOfStream
            return data

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            anyio.notify_closing(fd)
            os.close(fd)


class KubeChannel:
    """A running ``pods/exec``: byte streams, stdin writes, the exit status.

    ``pid`` is this Python process's: no local process carries the exec.
    ``protocol`` is the subprotocol the server chose; only under v5 can
    stdin end without the whole exec ending (``closes_stdin``).
    """

    def __init__(self, client: Any, *, pipe_stderr: bool) -> None:
        self._client = client  # kubernetes.stream.ws_client.WSClient
        self._sock = client.sock
        self.protocol: str = str(client.subprotocol or "")
        self._lock = threading.Lock()  # whole writes: a heartbeat never lands inside one
        self._stdin_closed = False
        self._signal: int | None = None
        self._code: int | None = None
        self._message = ""
        self._kept = b""
        self._dead: set[int] = set()  # write ends whose reader is gone
        self._ended = False  # the reader thread finished (or the channel was closed)
        self._waiting: anyio.Event | None = None  # the one task reading _done
        out_r, self._out_w = os.pipe()
        os.set_blocking(self._out_w, False)
        self.stdout: ByteReceiveStream = _PipeStream(out_r)
        self._err_w: int | None = None
        self._err: _PipeStream | None = None
        if pipe_stderr:
            err_r, self._err_w = os.pipe()
            os.set_blocking(self._err_w, False)
            self._err = _PipeStream(err_r)
        self.stderr: ByteReceiveStream | None = self._err
        done_r, self._done_w = os.pipe()
        self._done = _PipeStream(done_r)
        self._reader = threading.Thread(target=self._read, name="rx-kube-exec", daemon=True)
        self._reader.start()

    @property
    def closes_stdin(self) -> bool:
        return self.protocol == V5

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def returncode(self) -> int | None:
        return self._code

    # -- the reader thread ---------------------------------------------------

    def _read(self) -> None:
        status = b""
        try:
            while True:
                try:
                    opcode, frame = self._sock.recv_data_frame(True)
                except Exception:  # closed here, reset by the server, bad frame: the end
                    break
                if opcode == 0x8:  # close
                    break
                data = bytes(frame.data or b"")
                if not data or opcode not in (0x1, 0x2):
                    continue
                channel, payload = data[0], data[1:]
                if channel == _STDOUT:
                    self._write(self._out_w, payload)
                elif channel == _STDERR:
                    if self._err_w is None:
                        self._kept = (self._kept + payload)[-_KEEP:]
                    else:
                        self._write(self._err_w, payload)
                elif channel == _STATUS:
                    status = (status + payload)[:_STATUS_LIMIT]
                # 255 from the server (it closed a stream) and anything else: nothing to do
        finally:
            if status:
                self._code, self._message = exit_code_of(status)
            elif self._signal is not None:
                self._code = -self._signal
            else:
                self._code = EXEC_FAILED
                self._message = "the exec stream closed without an exit status"
            with self._lock:
                self._stdin_closed = True
            with contextlib.suppress(Exception):
                self._client.close()
            for fd in (self._out_w, self._err_w, self._done_w):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _write(self, fd: int, data: bytes) -> None:
        """Write all of ``data``, waiting while the pipe is full. Dropped once the
        reader went away, or once the exec was stopped (then nobody may read
        again, and the stream must still end so that ``wait()`` returns)."""
        if fd in self._dead:
            return
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    if self._signal is not None:
                        self._dead.add(fd)
                        return
                    select.select([], [fd], [], 0.2)
        except OSError:
            self._dead.add(fd)

    # -- the Channel protocol --------------------------------------------------

    def write_stdin(self, data: bytes) -> None:
        with self._lock:
            if self._stdin_closed:
                raise BrokenPipeError("stdin is closed")
            try:
                self._client.write_channel(_STDIN, bytes(data))
            except Exception as exc:  # websocket-client raises its own types
                raise BrokenPipeError(str(exc)) from exc

    def close_stdin(self) -> None:
        """End the command's stdin (v5); under v4 there is no way to, short of
        ending the exec, so stdin just stays open."""
        with self._lock:
            if self._stdin_closed:
                return
            self._stdin_closed = True
            if self.closes_stdin:
                with contextlib.suppress(Exception):
                    self._client.close_channel(_STDIN)

    def stderr_text(self) -> str:
        text = self._kept.decode("utf-8", "replace")
        if self._message:
            text += ("\n" if text else "") + self._message
        return text

    async def wait(self) -> int:
        # One task waits on the pipe (an fd takes one waiter); others on an event.
        while not self._ended:
            if self._waiting is not None:
                await self._waiting.wait()
                continue
            self._waiting = event = anyio.Event()
            try:
                with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError):
                    while True:
                        await self._done.receive()
                self._ended = True
            finally:
                self._waiting = None
                event.set()
        code = self._code  # set before the thread closes its end of _done
        if code is None:
            raise anyio.ClosedResourceError  # closed under a waiter: aclose() ran
        return code

    def send_signal(self, signum: int) -> None:
        """End the exec: the stream closes, the pod's side closes the command's
        stdin and the watchdog there stops its process tree. The exec API
        carries no signals."""
        if self._code is not None or self._signal is not None:
            return
        self._signal = signum
        # The close handshake may block on a frozen link: not on the event loop.
        threading.Thread(target=self._close_quietly, name="rx-kube-close", daemon=True).start()

    def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self._sock.close(timeout=2)
        with contextlib.suppress(Exception):
            self._sock.shutdown()

    async def aclose(self) -> None:
        if self._code is None:
            self.send_signal(9)
            with anyio.move_on_after(5, shield=True):
                await self.wait()
        self.stdout_close()

    def stdout_close(self) -> None:
        for stream in (self.stdout, self._err, self._done):
            if isinstance(stream, _PipeStream):
                stream.close()
