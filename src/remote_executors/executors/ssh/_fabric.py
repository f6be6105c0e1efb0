"""The pure-Python backend: Fabric (paramiko), one pooled connection per executor.

It works where no OpenSSH client exists and lets an app hand in its own
``fabric.Connection``. Where paramiko's and Fabric's defaults fall short of
``ssh`` they are closed here:

- the alias is resolved as ``ssh box`` would (:mod:`._ssh_config`), not by
  paramiko's parser alone, which ignores ``Include``;
- unknown host keys are refused unless the caller opts in, changed keys
  always (:mod:`._host_keys`; Fabric trusts every key by default);
- opening the connection and every channel is bounded in time, runs off the
  event loop and can be cancelled, and a failed attempt closes its transport
  so no paramiko thread is left behind;
- paramiko's keepalive expects no answer, so it cannot notice a dead link: a
  small monitor sends requests that need one and closes the transport when
  none comes back, as ``ServerAliveCountMax`` does;
- a channel close does not stop the remote process by itself; the shared
  bootstrap's watchdog does (it sees its input end), exactly as with OpenSSH.

Channel data is read without threads: each paramiko buffer gets its own OS
pipe as its "data ready" event, which the event loop waits on.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import shutil
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import attrs
import fabric
import paramiko
from anyio.abc import ByteReceiveStream

from ...errors import CommandTimeout, ConnectionFailed, ExecutorError
from .._backend import MAX_CONNECTIONS, Ending, LinkOptions, pool_full, refused_in_a_row
from ._config import ResolvedHost, resolve, ssh_g
from ._errors import SSH_FAILED, classify_connect_failure, connect_error, lost_link
from ._host_keys import AcceptNew, RefuseUnknown, UnknownHostKey, load_known_keys

log = logging.getLogger("remote_executors.ssh")

T = TypeVar("T")

#: Our transports log here, below paramiko's own channel (whose handlers still
#: see every record): a refused channel is how the pool learns the server's
#: MaxSessions and is retried elsewhere, not an error to print on stderr.
_PARAMIKO_LOG = "paramiko.transport.remote_executors"


class _RefusalIsRoutine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and "open FAILED" in str(record.msg):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


logging.getLogger(_PARAMIKO_LOG).addFilter(_RefusalIsRoutine())

_STDERR_KEEP = 16384
#: How a server refuses one more session channel on a connection: OpenSSH's sshd
#: answers MaxSessions with SSH_OPEN_CONNECT_FAILED (2), others with
#: SSH_OPEN_ADMINISTRATIVELY_PROHIBITED (1).
_OPEN_REFUSED = (1, 2)
#: Tries to open one channel when connections refuse it (each refusal makes room).
_OPEN_ATTEMPTS = 8
_WINDOW = 8 << 20  # bytes in flight per channel: long JSON lines need more than 2 MiB
_SFTP_PACKET = 256 << 10  # OpenSSH's sftp-server takes 255 KiB requests (30% faster reads)


def classify_paramiko(host: str, exc: BaseException) -> ExecutorError:
    """The typed error for what paramiko, Fabric or the socket layer raised."""
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        # Its own text drops why each address failed ("[Errno None] Unable to connect").
        detail += "".join(f"\n{addr}: {err}" for addr, err in exc.errors.items())
    if isinstance(exc, ExecutorError):
        return exc
    if isinstance(exc, paramiko.BadHostKeyException):
        kind = "host-key-changed"
    elif isinstance(exc, UnknownHostKey):
        kind = "host-key-unknown"
    elif isinstance(exc, paramiko.PasswordRequiredException):
        kind = "key-encrypted"
    elif isinstance(exc, paramiko.AuthenticationException):
        kind = "auth"
    elif isinstance(exc, socket.gaierror):
        kind = "resolve"
    elif isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        codes = {getattr(e, "errno", None) for e in exc.errors.values()}
        kind = "refused" if codes <= {errno.ECONNREFUSED} else "timeout"
    elif isinstance(exc, ConnectionRefusedError):
        kind = "refused"
    elif isinstance(exc, (TimeoutError, socket.timeout)) or (
        isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)
    ):
        kind = "timeout"
    else:
        kind = "other"
    return connect_error(kind, host, detail)


class _ProxyCommand(paramiko.ProxyCommand):  # type: ignore[misc]
    """paramiko's ProxyCommand, ending at the command's end of output.

    paramiko's ``recv`` loops until it has every byte asked for, so a proxy
    that exits (``ssh -W`` refused, a wrong ``nc`` host) made it spin at
    full CPU until the banner timeout. Here EOF ends the read: the transport
    then fails at once with the proxy's own words.
    """

    def recv(self, size: int) -> bytes:
        try:
            buffer = b""
            start = time.monotonic()
            while len(buffer) < size:
                wait = None
                if self.timeout is not None:
                    wait = self.timeout - (time.monotonic() - start)
                    if wait <= 0:
                        if buffer:
                            return buffer
                        raise TimeoutError()
                readable, _, _ = select.select([self.process.stdout], [], [], wait)
                if readable:
                    chunk = os.read(self.process.stdout.fileno(), size - len(buffer))
                    if not chunk:
                        return buffer  # EOF: b"" tells paramiko the link ended
                    buffer += chunk
            return buffer
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise
            raise paramiko.ProxyCommandFailure(" ".join(self.cmd), exc.strerror) from exc


class _NoSftp(Exception):
    """The server would not start its SFTP subsystem."""


class _ChannelRefused(Exception):
    """The server would not open one more session channel on this connection."""


class _SafePipe:
    """paramiko's pipe-backed event (``set``/``clear``/``fileno``/``close``), safe
    to close while paramiko's transport thread may still ``set`` it.

    paramiko's own pipe checks "closed" before writing but marks itself closed
    only after closing its descriptors: a ``set`` from the transport thread in
    between writes to a closed descriptor (EBADF, seen on CI), or to whatever
    file reused its number. Here one lock orders the two.
    """

    def __init__(self) -> None:
        self._rfd, self._wfd = os.pipe()
        self._lock = threading.Lock()
        self._set = False
        self._closed = False

    def fileno(self) -> int:
        return self._rfd

    def set(self) -> None:
        with self._lock:
            if self._set or self._closed:
                return
            self._set = True
            os.write(self._wfd, b"*")

    def set_forever(self) -> None:  # paramiko's interface; never used for our pipes
        self.set()

    def clear(self) -> None:
        with self._lock:
            if not self._set or self._closed:
                return
            os.read(self._rfd, 1)
            self._set = False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._rfd)
            os.close(self._wfd)


class _Notify(threading.Event):
    """A channel's ``status_event`` that also wakes the event loop (via a pipe)."""

    def __init__(self, pipe: Any) -> None:
        super().__init__()
        self._pipe = pipe

    def set(self) -> None:
        super().set()
        self._pipe.set()


class _Forward:
    """A buffer's event that sets another pipe and leaves clearing to its owner."""

    def __init__(self, pipe: _SafePipe) -> None:
        self._pipe = pipe

    def set(self) -> None:
        self._pipe.set()

    def clear(self) -> None:
        pass


class _ChannelStream(ByteReceiveStream):
    """stdout or stderr of one channel, read on the event loop."""

    def __init__(self, owner: FabricChannel, *, stderr: bool) -> None:
        self._owner = owner
        self._stderr = stderr
        self._closed = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            data = self._owner._take(max_bytes, stderr=self._stderr)
            if data is None:
                await self._owner._wait_data(stderr=self._stderr)
                continue
            if not data:
                raise anyio.EndOfStream
            return data

    async def aclose(self) -> None:
        self._closed = True


class FabricChannel:
    """One session channel on the pooled connection, carrying one command.

    ``pid`` is this Python process's: no local process carries the channel.
    """

    def __init__(
        self,
        channel: paramiko.Channel,
        pipes: tuple[Any, Any, Any],
        *,
        pipe_stderr: bool,
        lost_reason: Callable[[], str],
    ) -> None:
        self._chan = channel
        self._out, self._err, self._status = pipes
        self._pipe_stderr = pipe_stderr
        self._lost_reason = lost_reason
        self._lock = threading.Lock()  # whole writes: a heartbeat never lands inside one
        self._stdin_closed = False
        self._signal: int | None = None
        self._code: int | None = None
        self._kept = b""
        self._pipes_closed = False
        self.stdout: ByteReceiveStream = _ChannelStream(self, stderr=False)
        self.stderr: ByteReceiveStream | None = (
            _ChannelStream(self, stderr=True) if pipe_stderr else None
        )

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def returncode(self) -> int | None:
        if self._code is None and self._chan.status_event.is_set():
            self._keep_stderr()
            status = self._chan.exit_status
            if status >= 0:
                self._code = status
            elif self._signal is not None:
                self._code = -self._signal
            else:
                # Closed with no exit status: the link, not the program, ended
                # (ssh says 255 for that too).
                self._code = SSH_FAILED
        return self._code

    # -- reading (event loop) ----------------------------------------------

    def _take(self, max_bytes: int, *, stderr: bool) -> bytes | None:
        """Buffered data, ``b""`` at end of stream, None when nothing yet."""
        chan = self._chan
        if not self._pipe_stderr:
            self._keep_stderr()
        ready, recv = (
            (chan.recv_stderr_ready, chan.recv_stderr) if stderr else (chan.recv_ready, chan.recv)
        )
        if ready():
            data: bytes = recv(max_bytes)
            return data
        if chan.closed or chan.eof_received:
            return recv(max_bytes) if ready() else b""
        return None

    async def _wait_data(self, *, stderr: bool) -> None:
        if self._pipes_closed:
            raise anyio.ClosedResourceError
        pipe = self._err if stderr else self._out
        if not self._pipe_stderr and not stderr:
            # Kept-aside stderr also wakes this pipe (see _Forward): clear it
            # first, then look, so a wake-up is never lost and an idle channel
            # sleeps until something arrives.
            pipe.clear()
            self._keep_stderr()
            chan = self._chan
            if chan.recv_ready() or chan.closed or chan.eof_received:
                return
        await anyio.wait_readable(pipe.fileno())

    def _keep_stderr(self) -> None:
        while self._chan.recv_stderr_ready():
            self._kept = (self._kept + self._chan.recv_stderr(65536))[-_STDERR_KEEP:]

    def stderr_text(self) -> str:
        self._keep_stderr()
        text = self._kept.decode("utf-8", "replace")
        if self._code == SSH_FAILED or (self._chan.closed and self._chan.exit_status < 0):
            reason = self._lost_reason()
            if reason:
                text += ("\n" if text else "") + reason
        return text

    # -- writing (worker threads) ------------------------------------------

    def write_stdin(self, data: bytes) -> None:
        with self._lock:
            if self._stdin_closed or self._chan.closed:
                raise BrokenPipeError("stdin is closed")
            try:
                self._chan.sendall(data)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                raise BrokenPipeError(str(exc)) from exc

    def close_stdin(self) -> None:
        with self._lock:
            if self._stdin_closed:
                return
            self._stdin_closed = True
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                if not self._chan.closed:
                    self._chan.shutdown_write()

    # -- lifetime ------------------------------------------------------------

    async def wait(self) -> int:
        while True:
            code = self.returncode
            if code is not None:
                with self._lock:
                    self._stdin_closed = True
                return code
            if self._pipes_closed:
                raise anyio.ClosedResourceError
            await anyio.wait_readable(self._status.fileno())

    def send_signal(self, signum: int) -> None:
        """Close the channel, as killing a local ``ssh`` client would.

        The close message is sent from a thread: over a frozen link the send
        could block, and this is called from the event loop.
        """
        if self.returncode is not None:
            return
        self._signal = signum
        threading.Thread(target=self._close_quietly, name="rx-close", daemon=True).start()
        # paramiko marks the channel closed before it sends anything; wait for that.
        self._chan.status_event.wait(1)

    def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self._chan.close()

    async def aclose(self) -> None:
        if not self._chan.closed:
            await anyio.to_thread.run_sync(self._close_quietly, abandon_on_cancel=True)
        if not self._pipes_closed:
            self._pipes_closed = True
            for pipe in (self._out, self._err, self._status):
                # Wake anyone still waiting on it before the descriptor goes away.
                anyio.notify_closing(pipe.fileno())
                pipe.close()


class _Keepalive(threading.Thread):
    """Requests that need an answer; no answer in time closes the transport."""

    def __init__(
        self,
        transport: paramiko.Transport,
        interval: float,
        count: int,
        on_dead: Callable[[], None],
    ) -> None:
        super().__init__(name="rx-keepalive", daemon=True)
        self._transport = transport
        self._interval = interval
        self._limit = interval * max(1, count)
        self._on_dead = on_dead
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self._interval):
            if not self._transport.is_active():
                return
            timer = threading.Timer(self._limit, self._dead)
            timer.daemon = True
            timer.start()
            try:
                # OpenSSH answers an unknown request with a failure: an answer all the same.
                self._transport.global_request("keepalive@openssh.com", wait=True)
            except Exception:  # the transport went away under us
                return
            finally:
                timer.cancel()

    def _dead(self) -> None:
        if self.stopped.is_set():
            return
        self._on_dead()
        with contextlib.suppress(Exception):
            self._transport.close()


class FabricBackend:
    """Reaches one host with Fabric; every channel shares one connection."""

    def __init__(
        self,
        host: str,
        link: LinkOptions | None = None,
        *,
        connection: fabric.Connection | None = None,
    ) -> None:
        self.host = host
        self._link = link or LinkOptions()
        self._given = connection
        self._connections: list[fabric.Connection] = []
        self._monitors: list[_Keepalive] = []
        self._resolved: ResolvedHost | None = None
        self._lock = anyio.Lock()
        self._lost = ""
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_conn: fabric.Connection | None = None
        self._sftp_lock = threading.Lock()
        self._proxy_commands: dict[int, str] = {}
        #: Channel opens under way on each connection (by id), before paramiko has them.
        self._pending: dict[int, int] = {}
        #: Channels one connection may carry, learned from the first refusal.
        self._limit: int | None = None

    @property
    def connection(self) -> fabric.Connection | None:
        """The pooled connection (the caller's own, if one was given)."""
        return self._connections[0] if self._connections else self._given

    # -- building connections ------------------------------------------------

    def _policy(self, resolved: ResolvedHost) -> paramiko.MissingHostKeyPolicy:
        if self._link.accept_new_host_keys:
            return AcceptNew(resolved)
        if resolved.checking_disabled:
            resolved.warn_if_checking_disabled()
            return AcceptNew(resolved)
        return RefuseUnknown()

    async def _resolve(
        self, target: str, user: str | None = None, port: str | None = None
    ) -> ResolvedHost:
        config = self._link.ssh_config
        if user is None and port is None:
            return await resolve(target, ssh_config=config, options=self._link.options)
        # A ProxyJump hop: ``ssh -G -l user -p port hop``.
        ssh = shutil.which("ssh")
        if ssh is None:
            base = await resolve(target, ssh_config=config)
            return attrs.evolve(base, user=user or base.user, port=int(port) if port else base.port)
        extra = [*(["-l", user] if user else []), *(["-p", port] if port else [])]
        return ResolvedHost.from_options(
            target, await ssh_g(target, ssh=ssh, ssh_config=config, extra=extra)
        )

    async def _build(self, resolved: ResolvedHost, depth: int = 0) -> fabric.Connection:
        gateway: fabric.Connection | None = None
        for hop in resolved.proxy_jump:
            if depth > 8:
                raise ConnectionFailed(
                    f"ProxyJump for {self.host} nests more than 8 hosts deep.", host=self.host
                )
            spec = hop.removeprefix("ssh://")
            user, _, rest = spec.rpartition("@")
            name, _, port = rest.partition(":")
            hop_resolved = await self._resolve(name, user or None, port or None)
            if gateway is None and hop_resolved.proxy_jump:
                # The first hop may need jumps of its own (its own config says so).
                gateway = await self._build(hop_resolved, depth + 1)
            else:
                gateway = self._connection_for(hop_resolved, gateway)
        return self._connection_for(resolved, gateway)

    def _connection_for(
        self, resolved: ResolvedHost, gateway: fabric.Connection | None
    ) -> fabric.Connection:
        # Fabric reads no ssh_config of its own: the settings are already resolved.
        config = fabric.Config(ssh_config=paramiko.SSHConfig())
        keys = [path for path in resolved.identity_files if os.path.isfile(path)]
        timeout = self._link.connect_timeout
        conn = fabric.Connection(
            resolved.hostname,
            user=resolved.user,
            port=resolved.port,
            config=config,
            gateway=gateway if gateway is not None else False,
            connect_timeout=max(1, round(timeout)),
            connect_kwargs={
                "key_filename": keys,
                "look_for_keys": False,  # ssh -G already listed the default key files
                "allow_agent": resolved.use_agent and not resolved.identities_only,
                "banner_timeout": timeout,
                "auth_timeout": timeout,
                "channel_timeout": timeout,
            },
        )
        self._secure(conn.client, resolved)
        if resolved.proxy_command:
            # Started by _open: a ProxyCommand runs from the moment it is made.
            self._proxy_commands[id(conn)] = resolved.proxy_command
        return conn

    def _secure(self, client: paramiko.SSHClient, resolved: ResolvedHost) -> None:
        client.set_missing_host_key_policy(self._policy(resolved))
        load_known_keys(client, resolved)

    # -- connecting ----------------------------------------------------------

    def _on_dead(self) -> None:
        self._lost = f"Timeout, server {self.host} not responding."

    def lost_reason(self) -> str:
        return self._lost or "Connection to " + self.host + " closed."

    async def connect(self) -> None:
        async with self._lock:
            if self._connections and self._connections[0].is_connected:
                return
            await self._close_all()
            conn = await self._new_connection()
            self._connections.append(conn)

    async def _new_connection(self) -> fabric.Connection:
        if self._given is not None and not self._connections:
            conn = self._given
            if not conn.is_connected:
                # Fabric would trust any key (and knows none): same rules as ours.
                self._secure(conn.client, _resolved_for(conn))
        else:
            if self._resolved is None:
                self._resolved = await self._resolve(self.host)
            conn = await self._build(self._resolved)
        await self._open(conn)
        self._lost = ""
        transport = conn.transport
        transport.set_log_channel(_PARAMIKO_LOG)
        sock = transport.sock
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Small JSON lines and status lines both ways: Nagle plus delayed
            # ACKs would add tens of milliseconds to each round trip.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_keepalive(0)
        if self._link.keepalive_interval > 0:
            monitor = _Keepalive(
                transport,
                self._link.keepalive_interval,
                self._link.keepalive_count,
                on_dead=self._on_dead,
            )
            monitor.start()
            self._monitors.append(monitor)
        log.debug("fabric connection to %s up", self.host)
        return conn

    async def _open(self, conn: fabric.Connection) -> None:
        cancelled = threading.Event()
        bound = self._link.connect_timeout + 10

        def work() -> None:
            try:
                command = self._proxy_commands.get(id(conn))
                if command and not conn.is_connected:
                    conn.connect_kwargs["sock"] = _ProxyCommand(command)
                conn.open()
            except BaseException:
                _close_connection(conn)
                raise
            if cancelled.is_set():
                _close_connection(conn)

        try:
            with anyio.fail_after(bound):
                await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except TimeoutError:
            cancelled.set()
            _close_in_background(conn)
            raise ConnectionFailed(
                f"Connecting to {self.host} took more than {bound:.0f} s. "
                f"Check `ssh {self.host} true`.",
                host=self.host,
            ) from None
        except anyio.get_cancelled_exc_class():
            # An attempt left running would log in later and hold a transport.
            cancelled.set()
            _close_in_background(conn)
            raise
        except Exception as exc:
            raise classify_paramiko(self.host, exc) from exc

    # -- channels ------------------------------------------------------------

    async def open(self, remote_command: str, *, pipe_stderr: bool) -> FabricChannel:
        await self.connect()
        for _attempt in range(_OPEN_ATTEMPTS):
            conn = await self._pick()
            key = id(conn)
            self._pending[key] = self._pending.get(key, 0) + 1
            try:
                channel = await self._open_channel(conn, remote_command, pipe_stderr)
            except _ChannelRefused as exc:
                # MaxSessions reached: the channels the server had confirmed on
                # this connection are what it allows (answers come in order, so
                # every open sent before this one has its answer by now).
                limit = max(1, _channels_on(conn, confirmed=True))
                self._limit = limit if self._limit is None else max(self._limit, limit)
                log.debug("%s refused a channel (%s): %d per connection", self.host, exc, limit)
                continue
            finally:
                self._pending[key] = self._pending.get(key, 1) - 1
            return channel
        raise refused_in_a_row(self.host, _OPEN_ATTEMPTS)

    async def _pick(self) -> fabric.Connection:
        """The first connection with room for one more channel, opened if need be."""
        async with self._lock:
            for conn in self._connections:
                if self._limit is None:
                    return conn
                # Open channels, the SFTP session and opens under way (all in
                # the transport's map once sent; ``_pending`` until then).
                if _channels_on(conn) + self._pending.get(id(conn), 0) < self._limit:
                    return conn
            if len(self._connections) >= MAX_CONNECTIONS:
                raise pool_full(self.host, self._limit)
            conn = await self._new_connection()
            self._connections.append(conn)
            return conn

    async def _open_channel(
        self, conn: fabric.Connection, remote_command: str, pipe_stderr: bool
    ) -> FabricChannel:
        transport: paramiko.Transport = conn.transport
        cancelled = threading.Event()

        def work() -> tuple[paramiko.Channel, tuple[Any, Any, Any]]:
            chan = transport.open_session(window_size=_WINDOW, timeout=self._link.connect_timeout)
            pipes = (_SafePipe(), _SafePipe(), _SafePipe())
            try:
                chan.in_buffer.set_event(pipes[0])
                # Nobody reads kept-aside stderr: its data wakes the stdout reader,
                # which keeps it (a full stderr window would stall the channel).
                chan.in_stderr_buffer.set_event(pipes[1] if pipe_stderr else _Forward(pipes[0]))
                chan.status_event = _Notify(pipes[2])
                chan.exec_command(remote_command)
            except BaseException:
                chan.close()
                for pipe in pipes:
                    pipe.close()
                raise
            if cancelled.is_set():
                chan.close()
            return chan, pipes

        try:
            with anyio.fail_after(self._link.connect_timeout + 10):
                chan, pipes = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except TimeoutError:
            cancelled.set()
            raise ConnectionFailed(
                f"{self.host} did not open a session channel within "
                f"{self._link.connect_timeout + 10:.0f} s. Check `ssh {self.host} true`.",
                host=self.host,
            ) from None
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        except paramiko.ChannelException as exc:
            if exc.code in _OPEN_REFUSED:
                raise _ChannelRefused(exc.text) from exc
            raise classify_paramiko(self.host, exc) from exc
        except paramiko.SSHException as exc:
            if transport.is_active() and str(exc) == "Unable to open channel.":
                # A refusal too: when several opens fail at once, paramiko hands
                # the server's answer (a ChannelException) to one of them only.
                raise _ChannelRefused(str(exc)) from exc
            if not transport.is_active():
                raise connect_error("other", self.host, self.lost_reason()) from exc
            raise classify_paramiko(self.host, exc) from exc
        except Exception as exc:
            if not transport.is_active():
                raise connect_error("other", self.host, self.lost_reason()) from exc
            raise classify_paramiko(self.host, exc) from exc
        return FabricChannel(chan, pipes, pipe_stderr=pipe_stderr, lost_reason=self.lost_reason)

    def lost_error(self, ending: Ending) -> ExecutorError | None:
        return lost_link(self.host, ending)

    def connect_failure(self, stderr: str, returncode: int) -> ExecutorError | None:
        if returncode == SSH_FAILED:
            return classify_connect_failure(self.host, stderr)
        return None

    # -- files ---------------------------------------------------------------

    async def sftp_call(self, fn: Callable[[paramiko.SFTPClient], T], *, timeout: float) -> T:
        """Run ``fn(sftp)`` in a worker thread on the pooled connection's SFTP session.

        Calls are serialized (paramiko's SFTP client is not safe to share
        between threads). What ``fn`` raises while the session is up comes
        back as it is (file errors are ``OSError``s); a dead link or SFTP
        session becomes a ``ConnectionFailed``, overrunning ``timeout`` a
        ``CommandTimeout``.
        """
        await self.connect()
        sftp_up = self._sftp is not None and not self._sftp.sock.closed
        # The SFTP session is one more channel: on a connection with room for it.
        conn = self._sftp_conn if sftp_up and self._sftp_conn is not None else await self._pick()

        def work() -> T:
            with self._sftp_lock:
                if self._sftp is None or self._sftp.sock.closed:
                    try:
                        self._sftp = paramiko.SFTPClient.from_transport(
                            conn.transport, window_size=_WINDOW, max_packet_size=_SFTP_PACKET
                        )
                    except (paramiko.SSHException, EOFError, OSError) as exc:
                        if conn.transport is not None and conn.transport.is_active():
                            raise _NoSftp(str(exc)) from exc
                        raise
                    if self._sftp is None:
                        raise _NoSftp("the server refused the sftp subsystem")
                    self._sftp_conn = conn
                return fn(self._sftp)

        try:
            with anyio.fail_after(timeout):
                return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except TimeoutError:
            self._drop_sftp()
            raise CommandTimeout(
                f"An SFTP transfer with {self.host} did not finish within {timeout:g} s.",
                host=self.host,
            ) from None
        except _NoSftp as exc:
            raise ConnectionFailed(
                f"{self.host} offers no SFTP subsystem. Enable `Subsystem sftp` in its "
                "sshd_config, or sync with TailSessionSync (sync=TailSessionSync()).",
                host=self.host,
                detail=str(exc),
            ) from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            sftp = self._sftp
            session_up = conn.is_connected and sftp is not None and not sftp.sock.closed
            # paramiko raises EOFError and SSHException for a broken link only, and
            # does so before its transport notices: never hand them on as a file's.
            if isinstance(exc, OSError) and session_up:
                raise  # a file-level error for the caller
            self._drop_sftp()
            raise connect_error(
                "other", self.host, f"{self.lost_reason()} ({type(exc).__name__}: {exc})"
            ) from exc

    def _drop_sftp(self) -> None:
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            threading.Thread(
                target=_close_sftp, args=(sftp,), name="rx-sftp-close", daemon=True
            ).start()

    # -- closing -------------------------------------------------------------

    async def _close_all(self) -> None:
        self._drop_sftp()
        for monitor in self._monitors:
            monitor.stopped.set()
        self._monitors.clear()
        connections, self._connections = self._connections, []
        self._proxy_commands.clear()
        self._pending.clear()
        for conn in connections:
            if conn is self._given:
                continue  # the caller's to close
            await anyio.to_thread.run_sync(_close_connection, conn, abandon_on_cancel=True)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await self._close_all()


def _channels_on(conn: fabric.Connection, *, confirmed: bool = False) -> int:
    """Channels open on ``conn`` (SFTP included): those the server confirmed, or
    those opening too. paramiko keeps no public count; its channel map is read."""
    transport = conn.transport
    channels = getattr(transport, "_channels", None)
    if channels is None:
        return 0
    return sum(1 for c in channels.values() if not c.closed and (c.active or not confirmed))


def _resolved_for(conn: fabric.Connection) -> ResolvedHost:
    """Host-key settings for a caller's Connection, from what it was configured with."""
    ssh_config = conn.ssh_config or {}
    known = ssh_config.get("userknownhostsfile") or "~/.ssh/known_hosts ~/.ssh/known_hosts2"
    return ResolvedHost.from_options(
        str(conn.original_host or conn.host),
        {
            "hostname": [str(conn.host)],
            "port": [str(conn.port)],
            "user": [str(conn.user)],
            "userknownhostsfile": [str(known)],
            "globalknownhostsfile": ["/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"],
            "hostkeyalias": [str(ssh_config.get("hostkeyalias", ""))],
            "stricthostkeychecking": [str(ssh_config.get("stricthostkeychecking", "ask"))],
        },
    )


def _close_sftp(sftp: paramiko.SFTPClient) -> None:
    # The transport may already be gone (paramiko then raises EOFError).
    with contextlib.suppress(Exception):
        sftp.close()


def _close_connection(conn: fabric.Connection) -> None:
    with contextlib.suppress(Exception):
        conn.close()
    # Fabric closes nothing when the connection never finished opening, but
    # paramiko's transport thread runs from the first packet (failed logins).
    with contextlib.suppress(Exception):
        conn.client.close()
    gateway = conn.gateway
    if isinstance(gateway, fabric.Connection):
        _close_connection(gateway)


def _close_in_background(conn: fabric.Connection) -> None:
    threading.Thread(target=_close_connection, args=(conn,), name="rx-close", daemon=True).start()
