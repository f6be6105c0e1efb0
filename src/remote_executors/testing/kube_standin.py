"""A stand-in Kubernetes API server: pod reads and ``pods/exec``, backed by real containers.

No control plane can be installed here, so ``KubernetesExecutor`` is tested
through the real ``kubernetes`` client against this: a small server on
127.0.0.1 (the ``websockets`` library, in a background thread) that answers
exactly what the executor uses and nothing else:

- ``GET /api/v1/namespaces/{ns}/pods/{pod}``: a ``v1.Pod`` with its phase
  and container states, from the backing container's state (or a phase the
  test sets), else a 404 ``Status``;
- ``GET .../pods/{pod}/exec?command=...&container=...&stdin=...`` upgraded
  to a WebSocket with ``v5.channel.k8s.io`` or ``v4.channel.k8s.io``
  (``protocols`` picks which are offered): channel 0 to the command's stdin,
  1 and 2 from its stdout/stderr, 3 the final ``Status`` with the exit code,
  4 (resize) ignored, and under v5 ``[255, 0]`` closes stdin. Each exec is a
  ``docker exec -i`` into the pod's container (as the pod's user, as a
  ``runAsUser`` would), so the process, its watchdog and its files are real.

Every request needs the bearer token of the kubeconfig that ``kubeconfig()``
writes (401 otherwise): in it (``auth="token"``) or from an exec credential
plugin (``auth="exec"``, a small script the kubeconfig runs, as cloud
providers' ``aws eks get-token`` or ``gke-gcloud-auth-plugin`` are run).
``tls=True`` serves HTTPS/WSS with a certificate made for 127.0.0.1, whose
CA the kubeconfig carries (``certificate-authority-data``). ``forbid`` makes
pod reads or execs of a pod answer 403, as missing RBAC does. Each exec's
query is kept in ``execs`` so tests can see what reached the "cluster" (e.g.
that no secret is in a command).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

__all__ = ["V4", "V5", "KubeStandin", "StandinPod"]

log = logging.getLogger("remote_executors.testing.kube_standin")

V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
_C_ENV = {**os.environ, "LC_ALL": "C", "LANG": "C"}
_CHUNK = 32768


@attrs.define
class StandinPod:
    """One pod: ``backing`` is the engine container behind all its containers."""

    namespace: str
    name: str
    backing: str
    containers: tuple[str, ...] = ("main",)
    user: str | None = None  # exec -u (the pod's runAsUser)
    phase: str | None = None  # None: from the backing container's state


def _status(code: int, reason: str, message: str, **extra: Any) -> bytes:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
        **extra,
    }
    return json.dumps(body).encode()


def _self_signed(ip: str) -> tuple[bytes, bytes]:
    """(certificate, key) PEM for ``ip``, self-signed (``cryptography``, which
    paramiko already needs)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rx-kube-standin")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def exit_status(code: int) -> bytes:
    """Channel 3's last word: ``Success`` or ``NonZeroExitCode`` with the code."""
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    ).encode()


class KubeStandin:
    """The stand-in API server. ``start()`` it, ``add_pod()``, then ``kubeconfig()``."""

    def __init__(
        self, engine: str = "docker", *, protocols: Iterable[str] = (V5, V4), tls: bool = False
    ) -> None:
        self.engine = engine
        self.protocols = tuple(protocols)
        self.tls = tls
        self._cert: tuple[bytes, bytes] | None = None  # (certificate PEM, key PEM)
        self.token = secrets.token_hex(16)
        self.pods: dict[tuple[str, str], StandinPod] = {}
        self.forbidden: set[tuple[str, str, str]] = set()  # (ns, pod, "get"|"exec")
        self.execs: list[dict[str, list[str]]] = []
        self.negotiated: list[str] = []
        self._open: set[Any] = set()  # live exec WebSockets
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.port = 0

    # -- set-up -----------------------------------------------------------------

    def add_pod(
        self,
        namespace: str,
        name: str,
        backing: str,
        *,
        containers: Iterable[str] = ("main",),
        user: str | None = None,
        phase: str | None = None,
    ) -> StandinPod:
        pod = StandinPod(namespace, name, backing, tuple(containers), user, phase)
        self.pods[(namespace, name)] = pod
        return pod

    def forbid(self, namespace: str, pod: str, verb: str = "exec") -> None:
        """Answer 403 to ``verb`` (``get`` or ``exec``) on that pod from now on."""
        self.forbidden.add((namespace, pod, verb))

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        """The (self-signed) certificate the server presents with ``tls``."""
        if self._cert is None:
            self._cert = _self_signed("127.0.0.1")
        return self._cert[0]

    def kubeconfig(
        self,
        path: Path,
        *,
        context: str = "standin",
        token: str | None = None,
        auth: str = "token",
        ca_pem: bytes | None = None,
    ) -> Path:
        """Write a kubeconfig (0600) whose ``context`` reaches this server.

        ``auth="exec"``: the token comes from an exec credential plugin (a script
        written beside the kubeconfig) instead of the file. ``ca_pem``: the CA to
        trust instead of the server's own (with ``tls``)."""
        cluster: dict[str, Any] = {"server": self.url}
        if self.tls:
            cluster["certificate-authority-data"] = base64.b64encode(ca_pem or self.ca_pem).decode()
        user: dict[str, Any] = {"token": token or self.token}
        if auth == "exec":
            user = {"exec": self._credential_plugin(path, token or self.token)}
        elif auth != "token":
            raise ValueError(f"auth is 'token' or 'exec', not {auth!r}")
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "standin", "cluster": cluster}],
            "users": [{"name": "tester", "user": user}],
            "contexts": [{"name": context, "context": {"cluster": "standin", "user": "tester"}}],
            "current-context": context,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)  # JSON is YAML
        return path

    def _credential_plugin(self, kubeconfig: Path, token: str) -> dict[str, Any]:
        """An exec credential plugin that prints ``token`` (the token is in the
        script, 0700, not in any argv: the client runs the command as given)."""
        script = kubeconfig.parent / f"{kubeconfig.name}-credential"
        credential = {
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": {"token": token},
        }
        body = f"#!/bin/sh\ncat <<'JSON'\n{json.dumps(credential)}\nJSON\n"
        script.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with os.fdopen(fd, "w") as f:
            f.write(body)
        return {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(script),
            "interactiveMode": "Never",
        }

    # -- lifetime ---------------------------------------------------------------

    def start(self) -> KubeStandin:
        self._thread = threading.Thread(target=self._run, name="rx-kube-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the Kubernetes stand-in did not start within 30 s")
        return self

    def close(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def cut(self) -> None:
        """Drop every exec stream at once, with no status and no close frame, as
        a lost API server (or a node's kubelet going away) does."""
        loop = self._loop
        if loop is None:
            return

        done = threading.Event()

        def abort() -> None:
            for ws in list(self._open):
                ws.transport.abort()
            done.set()

        loop.call_soon_threadsafe(abort)
        done.wait(10)

    def __enter__(self) -> KubeStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        context = None
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ca_pem  # noqa: B018 (makes the certificate)
            assert self._cert is not None
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
                cert.write_bytes(self._cert[0])
                key.write_bytes(self._cert[1])
                context.load_cert_chain(cert, key)
        async with serve(
            self._exec,
            "127.0.0.1",
            0,
            process_request=self._http,
            select_subprotocol=self._select,
            max_size=16 * 1024 * 1024,
            ssl=context,
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    # -- HTTP ---------------------------------------------------------------------

    def _response(self, code: int, body: bytes) -> Any:
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        reasons = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
        headers = Headers(
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ]
        )
        return Response(code, reasons.get(code, "Error"), headers, body)

    def _route(self, path: str) -> tuple[StandinPod | None, str, str, str] | None:
        """(pod, namespace, name, "get"|"exec") for the two paths served."""
        parts = path.strip("/").split("/")
        if len(parts) in (6, 7) and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
            verb = "get" if len(parts) == 6 else parts[6]
            if verb in ("get", "exec"):
                return self.pods.get((parts[3], parts[5])), parts[3], parts[5], verb
        return None

    def _http(self, connection: Any, request: Any) -> Any:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._response(401, _status(401, "Unauthorized", "Unauthorized"))
        url = urlsplit(request.path)
        route = self._route(url.path)
        if route is None:
            return self._response(404, _status(404, "NotFound", "the server could not find it"))
        pod, namespace, name, verb = route
        if (namespace, name, verb) in self.forbidden:
            what = 'create resource "pods/exec"' if verb == "exec" else 'get resource "pods"'
            return self._response(
                403,
                _status(
                    403,
                    "Forbidden",
                    f'pods "{name}" is forbidden: User "tester" cannot {what} in API group '
                    f'"" in the namespace "{namespace}"',
                ),
            )
        if pod is None:
            return self._response(404, _status(404, "NotFound", f'pods "{name}" not found'))
        if verb == "get":
            return self._response(200, json.dumps(self._pod_json(pod)).encode())
        query = parse_qs(url.query)
        container = (query.get("container") or [pod.containers[0]])[0]
        if container not in pod.containers:
            return self._response(
                400,
                _status(
                    400,
                    "BadRequest",
                    f"container {container} is not valid for pod {name}",
                ),
            )
        if self._phase(pod) != "Running":
            return self._response(
                400,
                _status(400, "BadRequest", "cannot exec into a container in a completed pod"),
            )
        self.execs.append(query)
        return None  # go on with the WebSocket handshake

    def _select(self, connection: Any, offered: Any) -> Any:
        for protocol in offered:
            if protocol in self.protocols:
                self.negotiated.append(protocol)
                return protocol
        return None

    def _state(self, backing: str) -> str:
        done = subprocess.run(
            [self.engine, "container", "inspect", "--format", "{{.State.Status}}", "--", backing],
            capture_output=True,
            text=True,
            env=_C_ENV,
            check=False,
            timeout=30,
        )
        return done.stdout.strip() if done.returncode == 0 else "missing"

    def _phase(self, pod: StandinPod) -> str:
        if pod.phase is not None:
            return pod.phase
        state = self._state(pod.backing)
        return {"running": "Running", "created": "Pending"}.get(state, "Failed")

    def _pod_json(self, pod: StandinPod) -> dict[str, Any]:
        phase = self._phase(pod)
        running = phase == "Running"
        state: dict[str, Any] = (
            {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
            if running
            else {"terminated": {"exitCode": 137, "reason": "Error"}}
        )
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.backing},
            "spec": {"containers": [{"name": c, "image": "standin"} for c in pod.containers]},
            "status": {
                "phase": phase,
                "containerStatuses": [
                    {
                        "name": c,
                        "ready": running,
                        "restartCount": 0,
                        "image": "standin",
                        "imageID": "",
                        "state": state,
                    }
                    for c in pod.containers
                ],
            },
        }

    # -- exec -----------------------------------------------------------------------

    async def _exec(self, ws: Any) -> None:
        route = self._route(urlsplit(ws.request.path).path)
        assert route is not None and route[0] is not None  # _http checked
        pod = route[0]
        query = parse_qs(urlsplit(ws.request.path).query)
        command = query.get("command") or []
        v5 = ws.subprotocol == V5
        argv = [self.engine, "exec", "-i"]
        if pod.user is not None:
            argv += ["-u", pod.user]
        argv += ["--", pod.backing, *command]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_C_ENV,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

        async def pump(stream: asyncio.StreamReader, channel: int) -> None:
            while chunk := await stream.read(_CHUNK):
                await ws.send(bytes([channel]) + chunk)

        async def feed() -> None:
            stdin = proc.stdin
            assert stdin is not None
            with contextlib.suppress(Exception):
                async for message in ws:
                    data = message.encode() if isinstance(message, str) else message
                    if not data:
                        continue
                    channel, payload = data[0], data[1:]
                    if channel == 0 and not stdin.is_closing():
                        stdin.write(payload)
                        await stdin.drain()
                    elif channel == 255 and v5 and payload[:1] == b"\x00":
                        stdin.close()
                    # 4 (resize) and anything else: ignored
            # The client went away: what the kubelet does, end the exec's stdin.
            with contextlib.suppress(Exception):
                stdin.close()

        feeder = asyncio.create_task(feed())
        self._open.add(ws)
        try:
            await asyncio.gather(pump(proc.stdout, 1), pump(proc.stderr, 2))
            code = await proc.wait()
            with contextlib.suppress(Exception):
                await ws.send(bytes([3]) + exit_status(code))
                await ws.close()
        except Exception as exc:  # the client is gone: the watchdog stops the process
            log.debug("exec stream into %s ended early: %r", pod.backing, exc)
        finally:
            self._open.discard(ws)
            feeder.cancel()
            with contextlib.suppress(BaseException):
                await feeder
            if proc.returncode is None:
                with contextlib.suppress(Exception):
                    if proc.stdin is not None:
                        proc.stdin.close()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except asyncio.TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
