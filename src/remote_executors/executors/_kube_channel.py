"""One ``pods/exec`` WebSocket as a job channel (the ``_backend.Channel`` protocol).

The official client's ``stream()`` opens the socket (kubeconfig, TLS, auth,
the ``v5.channel.k8s.io``/``v4.channel.k8s.io`` negotiation) and hands back
its ``WSClient``; from there one reader thread takes frames off the socket
and writes each stream's bytes into an OS pipe that the event loop reads
(``_threaded_channel``), so memory stays bounded whatever the pod sends.

Channels of the exec protocol: 0 stdin, 1 stdout, 2 stderr, 3 the final
status (a ``metav1.Status`` JSON), 4 resize (unused: no tty); under v5, a
frame on 255 closes a stream (``[255, 0]``: end of stdin).
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

from ._threaded_channel import ThreadedChannel

__all__ = ["EXEC_FAILED", "KubeChannel", "V4", "V5", "exit_code_of"]

V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"

_STDIN, _STDOUT, _STDERR, _STATUS, _CLOSE = 0, 1, 2, 3, 255
#: No status came, or it named no exit code: the link, not the program, ended
#: (the value ssh and the engine CLIs use for their own failures).
EXEC_FAILED = 255
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


class KubeChannel(ThreadedChannel):
    """A running ``pods/exec``: byte streams, stdin writes, the exit status.

    ``pid`` is this Python process's: no local process carries the exec.
    ``protocol`` is the subprotocol the server chose; only under v5 can
    stdin end without the whole exec ending (``closes_stdin``).
    """

    def __init__(self, client: Any, *, pipe_stderr: bool) -> None:
        super().__init__(pipe_stderr=pipe_stderr, thread_name="rx-kube-exec")
        self._client = client  # kubernetes.stream.ws_client.WSClient
        self._sock = client.sock
        self.protocol: str = str(client.subprotocol or "")
        self._start_reader()

    @property
    def closes_stdin(self) -> bool:
        return self.protocol == V5

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
                    self._stdout(payload)
                elif channel == _STDERR:
                    self._stderr(payload)
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
