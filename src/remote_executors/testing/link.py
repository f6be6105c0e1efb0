"""A TCP proxy that breaks the link on demand, for fault-injection tests.

Put it in front of the bed's sshd and point an ssh alias at it; then cut or
freeze the "network" in the middle of a session::

    from remote_executors.testing.link import LinkProxy

    with LinkProxy(bed.host, bed.port) as link:
        cfg = link.client_config(bed.client_config(account))  # alias "<alias>-link"
        executor = SSHExecutor(cfg.alias, ssh_config=cfg.path)
        ...
        link.cut()       # every proxied connection reset (RST), new ones refused
        link.restore()   # connections accepted again
        link.freeze()    # a black hole: sockets stay open, no byte moves either way
        link.thaw()      # bytes flow again (what was held back is delivered)

Everything runs in one background thread around a ``selectors`` loop, with
no event loop of its own, so it works the same from asyncio and trio tests,
sync fixtures and plain scripts. Each control call returns once the loop has
applied it: after ``cut()`` returns, the connections are gone.

How each fault looks from the outside:

``cut()``
    Every proxied connection is closed with ``SO_LINGER`` 0, so both ends get a
    TCP reset, as when a NAT or firewall on the path drops its state. Until
    :meth:`restore`, connecting to the proxy's port is refused
    (``ECONNREFUSED``): the port stays reserved for the proxy (a second socket
    holds it with ``SO_REUSEPORT``), so nobody else can take it meanwhile.
``freeze()``
    The proxy stops reading and writing, in both directions, on every
    connection, and stops accepting. Nothing is closed: the peers see a link
    that swallows bytes (until the kernel buffers fill) and answers nothing,
    so only keepalives or timeouts tell them. New connections complete their
    TCP handshake in the listen backlog and hang there. :meth:`thaw` delivers
    whatever was held back and accepts what waited.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import attrs

from .sshd import SSHClientConfig

__all__ = ["LinkProxy", "LinkProxyError"]

log = logging.getLogger(__name__)

_CHUNK = 65536
#: Bytes buffered per direction before the proxy stops reading that side.
_BUFFER_LIMIT = 1 << 20
_COMMAND_TIMEOUT = 10.0


class LinkProxyError(RuntimeError):
    """The proxy could not do what was asked (not started, closed, loop died)."""


class _Pipe:
    """One proxied connection: the accepted client socket and its upstream socket."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.connecting = True
        self.to_upstream = bytearray()
        self.to_client = bytearray()
        self.client_eof = False  # the client sent FIN
        self.upstream_eof = False
        self.upstream_shut = False  # we passed the client's FIN on
        self.client_shut = False

    def sockets(self) -> tuple[socket.socket, socket.socket]:
        return self.client, self.upstream


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` so that the peer gets a TCP reset, not a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _shareable_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


class LinkProxy:
    """A fault-injecting TCP proxy on ``host`` (loopback) in front of ``target_host:target_port``.

    ``port=0`` picks a free port; it stays the proxy's for its whole life, cut
    or not. Use it as a context manager or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self._requested_port = port
        self._port = 0
        self._holder: socket.socket | None = None  # keeps the port while cut
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._commands: list[tuple[Callable[[], None], threading.Event]] = []
        self._pipes: list[_Pipe] = []
        self._masks: dict[socket.socket, int] = {}
        self._stopping = False
        self._failed: BaseException | None = None
        self._cut = False
        self._frozen = False
        #: Connections accepted so far.
        self.accepted = 0
        #: Connections reset by :meth:`cut`.
        self.resets = 0
        #: Bytes forwarded client -> target and target -> client.
        self.bytes_up = 0
        self.bytes_down = 0

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> LinkProxy:
        """Bind, listen and start forwarding; returns ``self``."""
        if self._thread is not None:
            raise LinkProxyError("LinkProxy is already running")
        holder = _shareable_socket()
        try:
            holder.bind((self.host, self._requested_port))
            self._port = holder.getsockname()[1]
            self._holder = holder
            self._listener = self._listen()
        except BaseException:
            holder.close()
            self._holder = None
            raise
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"LinkProxy:{self._port}", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Reset every connection, stop listening and free the port."""
        thread = self._thread
        if thread is None:
            return
        if thread.is_alive():
            with contextlib.suppress(LinkProxyError):
                self._command(self._shutdown)
            thread.join(timeout=_COMMAND_TIMEOUT)
        self._thread = None
        for sock in (self._listener, self._holder, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._listener = self._holder = self._wake_r = self._wake_w = None
        if self._selector is not None:
            self._selector.close()
            self._selector = None

    def __enter__(self) -> LinkProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "cut" if self._cut else "frozen" if self._frozen else "up"
        target = f"{self.target[0]}:{self.target[1]}"
        return f"<LinkProxy {self.host}:{self._port or '?'} -> {target} {state}>"

    @property
    def port(self) -> int:
        """The port clients connect to."""
        if not self._port:
            raise LinkProxyError("LinkProxy has not been started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def is_cut(self) -> bool:
        return self._cut

    @property
    def is_frozen(self) -> bool:
        return self._frozen

    @property
    def active(self) -> int:
        """Connections currently proxied (frozen ones included)."""
        with self._lock:
            return len(self._pipes)

    # -- faults -----------------------------------------------------------------------

    def cut(self) -> int:
        """Reset every proxied connection and refuse new ones until :meth:`restore`.

        Returns how many connections were reset.
        """
        count: list[int] = []

        def apply() -> None:
            count.append(len(self._pipes))
            self._cut = True
            for pipe in list(self._pipes):
                self._drop(pipe, reset=True)
            self.resets += count[0]
            if self._listener is not None:
                self._unregister(self._listener)
                self._listener.close()
                self._listener = None

        self._command(apply)
        return count[0]

    def restore(self) -> None:
        """Accept connections again after :meth:`cut` (a frozen link stays frozen)."""

        def apply() -> None:
            if self._listener is None:
                self._listener = self._listen()
            self._cut = False

        self._command(apply)

    def freeze(self) -> None:
        """Stop moving bytes both ways and stop accepting; keep every socket open."""

        def apply() -> None:
            self._frozen = True

        self._command(apply)

    def thaw(self) -> None:
        """Move bytes again after :meth:`freeze` and accept what waited."""

        def apply() -> None:
            self._frozen = False

        self._command(apply)

    # -- ssh ---------------------------------------------------------------------------

    def client_config(
        self,
        config: SSHClientConfig,
        directory: Path | None = None,
        *,
        alias: str | None = None,
    ) -> SSHClientConfig:
        """An ssh_config whose ``alias`` reaches ``config``'s account through this proxy.

        The new file holds a ``Host <alias>`` block (default alias:
        ``<config.alias>-link``) with ``config.alias``'s settings, HostName and
        Port pointing here and a known_hosts file that pins the server's key
        for this address; the rest of ``config``'s file follows unchanged, so
        its other aliases still go straight to sshd. Written to ``directory``
        (default: ``link-<port>`` beside ``config.path``). ``config`` must
        reach the proxy's target.
        """
        if config.port != self.target[1]:
            raise ValueError(
                f"{config.path} reaches port {config.port}, but this proxy forwards to "
                f"{self.target[0]}:{self.target[1]}"
            )
        alias = alias or f"{config.alias}-link"
        directory = directory or config.path.parent / f"link-{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        known_hosts = directory / "known_hosts"
        pinned = []
        for line in config.known_hosts.read_text().splitlines():
            fields = line.split(None, 1)
            if len(fields) == 2 and not line.startswith("#"):
                pinned.append(f"[{self.host}]:{self.port} {fields[1]}")
        known_hosts.write_text("\n".join(pinned) + "\n")
        original = config.path.read_text()
        block = [f"Host {alias}"]
        for line in _host_block(original, config.alias):
            key, _, _ = line.strip().partition(" ")
            if key.lower() == "hostname":
                line = f"    HostName {self.host}"
            elif key.lower() == "port":
                line = f"    Port {self.port}"
            elif key.lower() == "userknownhostsfile":
                line = f'    UserKnownHostsFile "{known_hosts}"'
            block.append(line)
        path = directory / "ssh_config"
        header = f"# {alias}: {config.alias} through LinkProxy {self.host}:{self.port}"
        path.write_text("\n".join([header, *block, "", original]))
        return attrs.evolve(config, path=path, alias=alias, port=self.port, known_hosts=known_hosts)

    # -- the loop ----------------------------------------------------------------------

    def _listen(self) -> socket.socket:
        sock = _shareable_socket()
        try:
            sock.bind((self.host, self._port))
            sock.listen(64)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _command(self, apply: Callable[[], None]) -> None:
        """Run ``apply`` in the loop thread and wait until it has run."""
        if self._thread is None or self._wake_w is None:
            raise LinkProxyError("LinkProxy is not running: call start() first")
        if self._failed is not None:
            raise LinkProxyError(f"the LinkProxy loop died: {self._failed!r}")
        done = threading.Event()
        with self._lock:
            self._commands.append((apply, done))
        with contextlib.suppress(BlockingIOError):
            self._wake_w.send(b"x")
        if not done.wait(_COMMAND_TIMEOUT):
            raise LinkProxyError(f"the LinkProxy loop did not answer: {self._failed!r}")

    def _shutdown(self) -> None:
        self._stopping = True
        for pipe in list(self._pipes):
            self._drop(pipe, reset=True)
        if self._listener is not None:
            self._unregister(self._listener)

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None and self._wake_r is not None
        selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while True:
                self._run_commands()
                if self._stopping:
                    return
                self._update_interest()
                for key, mask in selector.select():
                    sock = key.fileobj
                    if sock is self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                    elif sock is self._listener:
                        self._accept()
                    elif isinstance(key.data, _Pipe):
                        assert isinstance(sock, socket.socket)
                        self._service(key.data, sock, mask)
        except BaseException as exc:  # pragma: no cover - a bug in the loop
            self._failed = exc
            log.exception("LinkProxy loop died")
            raise
        finally:
            for pipe in list(self._pipes):
                self._drop(pipe, reset=True)
            self._run_commands()  # release anyone waiting

    def _run_commands(self) -> None:
        with self._lock:
            commands, self._commands = self._commands, []
        for apply, done in commands:
            try:
                apply()
            finally:
                done.set()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("LinkProxy accept failed: %s", exc)
                return
            client.setblocking(False)
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.setblocking(False)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = upstream.connect_ex(self.target)
            if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                _reset(client)
                upstream.close()
                continue
            with self._lock:
                self._pipes.append(_Pipe(client, upstream))
            self.accepted += 1

    def _service(self, pipe: _Pipe, sock: socket.socket, mask: int) -> None:
        if pipe not in self._pipes:
            return
        try:
            if sock is pipe.upstream and pipe.connecting:
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    raise OSError(error, os.strerror(error))
                pipe.connecting = False
                self._pass_eof(pipe)
                return
            if mask & selectors.EVENT_READ:
                self._read(pipe, sock)
            if mask & selectors.EVENT_WRITE:
                self._write(pipe, sock)
            self._pass_eof(pipe)
        except OSError:
            # One side failed (reset, refused): the other side hears it as a reset too.
            self._drop(pipe, reset=True)

    def _read(self, pipe: _Pipe, sock: socket.socket) -> None:
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        if sock is pipe.client:
            if data:
                pipe.to_upstream += data
                self.bytes_up += len(data)
            else:
                pipe.client_eof = True
        elif data:
            pipe.to_client += data
            self.bytes_down += len(data)
        else:
            pipe.upstream_eof = True

    def _write(self, pipe: _Pipe, sock: socket.socket) -> None:
        buffer = pipe.to_upstream if sock is pipe.upstream else pipe.to_client
        if not buffer:
            return
        try:
            sent = sock.send(buffer)
        except (BlockingIOError, InterruptedError):
            return
        del buffer[:sent]

    def _pass_eof(self, pipe: _Pipe) -> None:
        """Forward a FIN once everything before it was delivered; close when both are done."""
        if (
            pipe.client_eof
            and not pipe.to_upstream
            and not pipe.upstream_shut
            and not pipe.connecting
        ):
            pipe.upstream_shut = True
            with contextlib.suppress(OSError):
                pipe.upstream.shutdown(socket.SHUT_WR)
        if pipe.upstream_eof and not pipe.to_client and not pipe.client_shut:
            pipe.client_shut = True
            with contextlib.suppress(OSError):
                pipe.client.shutdown(socket.SHUT_WR)
        if pipe.upstream_shut and pipe.client_shut:
            self._drop(pipe, reset=False)

    def _drop(self, pipe: _Pipe, *, reset: bool) -> None:
        with self._lock:
            if pipe not in self._pipes:
                return
            self._pipes.remove(pipe)
        for sock in pipe.sockets():
            self._unregister(sock)
            if reset:
                _reset(sock)
            else:
                sock.close()

    # -- selector bookkeeping ----------------------------------------------------------------

    def _unregister(self, sock: socket.socket) -> None:
        if self._masks.pop(sock, 0) and self._selector is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(sock)

    def _set_interest(self, sock: socket.socket, mask: int, data: object = None) -> None:
        selector = self._selector
        assert selector is not None
        old = self._masks.get(sock, 0)
        if mask == old:
            return
        if not mask:
            self._unregister(sock)
        elif not old:
            selector.register(sock, mask, data)
        else:
            selector.modify(sock, mask, data)
        if mask:
            self._masks[sock] = mask

    def _update_interest(self) -> None:
        read, write = selectors.EVENT_READ, selectors.EVENT_WRITE
        if self._listener is not None:
            self._set_interest(self._listener, 0 if self._frozen else read)
        for pipe in list(self._pipes):
            if self._frozen:
                self._set_interest(pipe.client, 0, pipe)
                self._set_interest(pipe.upstream, 0, pipe)
                continue
            client = 0
            if not pipe.client_eof and len(pipe.to_upstream) < _BUFFER_LIMIT:
                client |= read
            if pipe.to_client:
                client |= write
            if pipe.connecting:
                upstream = write
            else:
                upstream = 0
                if not pipe.upstream_eof and len(pipe.to_client) < _BUFFER_LIMIT:
                    upstream |= read
                if pipe.to_upstream:
                    upstream |= write
            self._set_interest(pipe.client, client, pipe)
            self._set_interest(pipe.upstream, upstream, pipe)


def _host_block(config_text: str, alias: str) -> list[str]:
    """The option lines of the ``Host <alias>`` block of an ssh_config text."""
    lines = config_text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.split() == ["Host", alias])
    except StopIteration:
        raise ValueError(f"no 'Host {alias}' block in the ssh_config") from None
    block = []
    for line in lines[start + 1 :]:
        words = line.split()
        if not words or words[0].lower() in ("host", "match"):
            break
        block.append(line)
    return block
