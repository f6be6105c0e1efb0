"""The fault-injecting TCP proxy (remote_executors.testing.link) against a local echo server."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from remote_executors.testing.link import LinkProxy, LinkProxyError
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHFault


class EchoServer:
    """Echoes every byte back; on EOF from a client it sends ``bye`` and closes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.errors: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
                conn.sendall(b"bye")
            except OSError as exc:
                self.errors.append(type(exc).__name__)

    def close(self) -> None:
        # close() alone would not wake the accept() blocked in the other thread.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def link(echo: EchoServer) -> Iterator[LinkProxy]:
    with LinkProxy("127.0.0.1", echo.port) as proxy:
        yield proxy


def connect(link: LinkProxy) -> socket.socket:
    sock = socket.create_connection(link.address, timeout=5)
    sock.settimeout(5)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_forwards_both_ways_and_half_close(link: LinkProxy) -> None:
    payload = bytes(range(256)) * 8192  # 2 MB: more than one buffer's worth
    with connect(link) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        assert recv_exactly(sock, len(payload)) == payload
        sender.join()
        # Our FIN reaches the server, its answer and FIN come back.
        sock.shutdown(socket.SHUT_WR)
        assert recv_exactly(sock, 10) == b"bye"
    assert link.accepted == 1
    assert link.bytes_up == link.bytes_down - 3 == len(payload)
    wait_for(lambda: link.active == 0)


def test_cut_resets_connections_and_refuses_until_restored(
    link: LinkProxy, echo: EchoServer
) -> None:
    port = link.port
    with connect(link) as a, connect(link) as b:
        a.sendall(b"ping")
        assert recv_exactly(a, 4) == b"ping"
        wait_for(lambda: link.active == 2)
        assert link.cut() == 2
        assert link.is_cut and link.active == 0
        for sock in (a, b):
            # A reset, not an orderly end of stream.
            with pytest.raises(ConnectionResetError):
                sock.sendall(b"x")
                sock.recv(10)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(link.address, timeout=2)
    # The port stays reserved for the proxy while it is cut.
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))
    # The server side was reset too.
    wait_for(lambda: echo.errors == ["ConnectionResetError"] * 2)
    link.restore()
    assert not link.is_cut and link.port == port
    with connect(link) as sock:
        sock.sendall(b"again")
        assert recv_exactly(sock, 5) == b"again"
    assert link.resets == 2


def test_freeze_holds_bytes_both_ways_until_thaw(link: LinkProxy, echo: EchoServer) -> None:
    with connect(link) as sock:
        sock.sendall(b"one")
        assert recv_exactly(sock, 3) == b"one"
        link.freeze()
        sock.sendall(b"two")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        # New connections complete their handshake but hang in the backlog.
        late = socket.create_connection(link.address, timeout=2)
        with late:
            late.sendall(b"late")
            late.settimeout(0.3)
            with pytest.raises(TimeoutError):
                late.recv(10)
            assert echo.connections == 1 and link.accepted == 1
            link.thaw()
            sock.settimeout(5)
            late.settimeout(5)
            assert recv_exactly(sock, 3) == b"two"
            assert recv_exactly(late, 4) == b"late"
    assert link.accepted == 2


def test_a_dead_target_resets_the_client() -> None:
    # Bound but never listening: connecting to it is refused.
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        with LinkProxy("127.0.0.1", dead.getsockname()[1]) as link:
            # The reset may even beat connect() home on loopback.
            with contextlib.suppress(ConnectionResetError), connect(link) as sock:
                assert sock.recv(10) == b""
            wait_for(lambda: link.active == 0)
            assert link.accepted == 1


def test_close_frees_the_port_and_controls_refuse_afterwards(echo: EchoServer) -> None:
    link = LinkProxy("127.0.0.1", echo.port).start()
    port = link.port
    sock = connect(link)
    link.close()
    with pytest.raises(ConnectionResetError):
        sock.sendall(b"x")
        sock.recv(1)
    sock.close()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
    with pytest.raises(LinkProxyError):
        link.cut()
    link.close()  # idempotent


def fake_config(tmp_path: Path, port: int) -> SSHClientConfig:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKey\n")
    path = tmp_path / "ssh_config"
    path.write_text(
        "\n".join(
            [
                "Host rx-box",
                "    HostName 127.0.0.1",
                f"    Port {port}",
                "    User rx-bash",
                f'    IdentityFile "{tmp_path / "id"}"',
                f'    UserKnownHostsFile "{known}"',
                "    StrictHostKeyChecking yes",
                "",
                "Host rx-box-refused",
                "    Port 1",
                "",
            ]
        )
    )
    account = RemoteAccount(
        label="bash",
        user="rx-bash",
        uid=1,
        gid=1,
        home=tmp_path,
        shell="/bin/bash",
        claude_config_dir=tmp_path,
        claude_path=None,
        identity_file=tmp_path / "id",
        separate_user=True,
    )
    return SSHClientConfig(
        path=path,
        alias="rx-box",
        account=account,
        port=port,
        known_hosts=known,
        include_alias="rx-box-include",
        match_alias="rx-box-match",
        fault_aliases={SSHFault.CONNECTION_REFUSED: "rx-box-refused"},
    )


def ssh_settings(path: Path, alias: str) -> dict[str, str]:
    out = subprocess.run(
        ["ssh", "-G", "-F", str(path), "--", alias], capture_output=True, text=True, check=True
    ).stdout
    settings: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, value)
    return settings


def test_client_config_goes_through_the_proxy(
    link: LinkProxy, echo: EchoServer, tmp_path: Path
) -> None:
    original = fake_config(tmp_path, echo.port)
    cfg = link.client_config(original)
    assert cfg.alias == "rx-box-link" and cfg.port == link.port
    assert cfg.path.parent == tmp_path / f"link-{link.port}"
    through = ssh_settings(cfg.path, cfg.alias)
    assert through["hostname"] == "127.0.0.1" and through["port"] == str(link.port)
    assert through["user"] == "rx-bash"
    assert through["userknownhostsfile"] == str(cfg.known_hosts)
    assert cfg.known_hosts.read_text() == (
        f"[127.0.0.1]:{link.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKey\n"
    )
    # The other aliases are still there, unchanged.
    assert ssh_settings(cfg.path, "rx-box")["port"] == str(echo.port)
    assert ssh_settings(cfg.path, "rx-box-refused")["port"] == "1"
    with pytest.raises(ValueError, match="forwards to"):
        LinkProxy("127.0.0.1", echo.port + 1).client_config(original)
