"""The Kubernetes API as a job backend: kubeconfig, pod read, ``pods/exec``.

Everything goes through the official ``kubernetes`` client (blocking, so in
worker threads): its kubeconfig loader (contexts, exec plugins, in-cluster
service accounts), ``CoreV1Api.read_namespaced_pod`` and
``kubernetes.stream.stream`` for exec. Like ``_container_engine`` it gives
``start_job`` what ``_backend.Backend`` asks for: open one command in the
container with byte streams, and say why that failed, naming the pod.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import anyio

from ..errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ExecutorError,
    ExecutorUnavailable,
    HostUnreachable,
    ProcessLost,
    RemoteSetupError,
)
from ._backend import Ending
from ._kube_channel import EXEC_FAILED, KubeChannel
from ._remote_job import _bootstrap_b64

__all__ = ["KubeBackend", "PodInfo", "import_client"]

_INSTALL = "pip install 'remote-executors[kubernetes]'"

# An exec's command travels in the request URL, where the 14 KB bootstrap
# would pass the 8 KB that proxies in front of API servers (and the stand-in)
# accept. So the command is this loader, and the bootstrap comes as the first
# stdin line, just before the job header (``read`` takes exactly one line).
_LOADER = 'read -r rx_b || exit 125; eval "$(printf %s "$rx_b" | base64 -d)"'


def import_client(host: str) -> Any:
    """The ``kubernetes`` package, or ``ExecutorUnavailable`` saying what to install."""
    try:
        import kubernetes
        import kubernetes.stream
    except ImportError as exc:
        raise ExecutorUnavailable(
            f"Cannot reach {host}: the Kubernetes executor needs the official kubernetes "
            f"client, which is not installed: {_INSTALL}.",
            host=host,
            scheme="k8s",
            detail=str(exc),
        ) from exc
    return kubernetes


class PodInfo:
    """What a pod read says that matters here."""

    def __init__(self, pod: Any) -> None:
        self.phase: str = str(getattr(pod.status, "phase", None) or "Unknown")
        self.containers: list[str] = [c.name for c in (pod.spec.containers or [])]
        annotations = pod.metadata.annotations or {}
        self.default_container: str | None = annotations.get(
            "kubectl.kubernetes.io/default-container"
        )
        self.running: dict[str, bool] = {}
        for status in pod.status.container_statuses or []:
            self.running[status.name] = getattr(status.state, "running", None) is not None


def _status_of(exc: BaseException) -> int:
    """The HTTP status of a client failure: an ``ApiException``'s, or for exec
    (which the client wraps as status 0) the WebSocket handshake's."""
    status = getattr(exc, "status", 0) or 0
    if status:
        return int(status)
    cause = exc.__cause__ or exc.__context__
    return int(getattr(cause, "status_code", 0) or 0)


def _untrusted(exc: BaseException) -> str:
    """Why the server's certificate was refused, when that is what failed (urllib3
    wraps the ssl error in its retries, websocket-client raises it as is)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        error = todo.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ssl.SSLCertVerificationError):
            return error.verify_message or str(error)
        todo += [e for e in (error.__cause__, error.__context__) if e is not None]
        todo += [a for a in getattr(error, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(error, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    text = str(exc)
    return "certificate verify failed" if "CERTIFICATE_VERIFY_FAILED" in text else ""


class KubeBackend:
    """Runs the bootstrap in one container of one pod through ``pods/exec``."""

    def __init__(
        self,
        name: str,
        pod: str,
        namespace: str,
        container: str | None,
        context: str | None,
        kubeconfig: str | None,
    ) -> None:
        self.host = name  # what errors name (Backend protocol)
        self._pod = pod
        self._namespace = namespace
        self._container = container
        self._context = context
        self._kubeconfig = kubeconfig
        self._api: Any = None
        self._resolved: str | None = None  # the container every exec goes to
        self._lock = anyio.Lock()

    @property
    def where(self) -> str:
        """How kubectl users name the pod: ``pod NAME in namespace NS``."""
        return f"pod {self._pod} in namespace {self._namespace}"

    def _kubectl(self, *words: str) -> str:
        context = f" --context {self._context}" if self._context else ""
        return f"`kubectl{context} -n {self._namespace} " + " ".join(words) + "`"

    # -- the API client ---------------------------------------------------------

    def _config_file(self) -> str | None:
        if self._kubeconfig:
            return self._kubeconfig
        env = os.environ.get("KUBECONFIG")
        if env:
            return env.split(os.pathsep)[0]
        default = os.path.expanduser("~/.kube/config")
        if os.path.exists(default) or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            return default
        return None  # in a pod with no kubeconfig: its service account

    def _load(self) -> Any:
        kubernetes = import_client(self.host)
        path = self._config_file()
        try:
            if path is None:
                configuration = kubernetes.client.Configuration()
                kubernetes.config.load_incluster_config(client_configuration=configuration)
                api_client = kubernetes.client.ApiClient(configuration)
            else:
                api_client = kubernetes.config.new_client_from_config(
                    config_file=path, context=self._context, persist_config=False
                )
        except (kubernetes.config.ConfigException, OSError, ValueError, TypeError) as exc:
            where = f"the kubeconfig {path}" if path else "the pod's service account"
            context = f" (context {self._context!r})" if self._context else ""
            raise ConnectionFailed(
                f"Cannot load the Kubernetes configuration for {self.where} from "
                f"{where}{context}: {exc}. Check `kubectl config get-contexts`, or pass "
                "KubernetesExecutor(..., kubeconfig=PATH, context=NAME).",
                host=self.host,
                detail=str(exc),
            ) from None
        return kubernetes.client.CoreV1Api(api_client)

    async def api(self) -> Any:
        async with self._lock:
            if self._api is None:
                self._api = await anyio.to_thread.run_sync(self._load)
        return self._api

    def _failure(self, exc: BaseException, doing: str) -> ExecutorError:
        status = _status_of(exc)
        detail = str(getattr(exc, "body", "") or exc)[-2000:]
        if status == 401:
            return AuthenticationFailed(
                f"The Kubernetes API refused the credentials of the kubeconfig while "
                f"{doing} {self.where} (401). Log in again (refresh the token, "
                "`kubectl config view`), then retry.",
                host=self.host,
                detail=detail,
            )
        if status == 403:
            verb = "create pods/exec" if "exec" in doing else "get pods"
            return AuthenticationFailed(
                f"Not allowed to {verb} for {self.where} (403 Forbidden). The account "
                "needs RBAC get on pods, and create and get on pods/exec, in that namespace; "
                f"check with {self._kubectl('auth can-i', verb)}.",
                host=self.host,
                detail=detail,
            )
        if status == 404:
            return HostUnreachable(
                f"There is no {self.where} ({self.host}). Check the name with "
                f"{self._kubectl('get pods')}, or create the pod first.",
                host=self.host,
                detail=detail,
            )
        if status == 0 and _untrusted(exc):
            return ConnectionFailed(
                f"The Kubernetes API server's certificate is not trusted while {doing} "
                f"{self.where}: {_untrusted(exc)}. Check the cluster's "
                "certificate-authority(-data) in the kubeconfig (`kubectl config view "
                "--raw`) and that its server address is the one the certificate names.",
                host=self.host,
                detail=detail,
            )
        if status == 0:
            return HostUnreachable(
                f"Cannot reach the Kubernetes API server for {self.where} while {doing} "
                f"it: {str(exc).strip()[:300]}. Check the cluster address in the "
                f"kubeconfig and that {self._kubectl('get pod', self._pod)} answers.",
                host=self.host,
                detail=detail,
            )
        return ConnectionFailed(
            f"The Kubernetes API failed while {doing} {self.where} (HTTP {status}). "
            f"Check {self._kubectl('get pod', self._pod)}.",
            host=self.host,
            detail=detail,
        )

    # -- the pod ------------------------------------------------------------------

    async def read_pod(self) -> PodInfo:
        api = await self.api()

        def read() -> Any:
            return api.read_namespaced_pod(self._pod, self._namespace, _request_timeout=30)

        try:
            pod = await anyio.to_thread.run_sync(read)
        except Exception as exc:
            raise self._failure(exc, "reading") from None
        return PodInfo(pod)

    def _choose(self, info: PodInfo) -> str:
        """The container to exec into; the pod must run and it must run."""
        if info.phase != "Running":
            raise HostUnreachable(
                f"The {self.where} is not running (phase {info.phase}). Wait until it "
                f"is (see {self._kubectl('describe pod', self._pod)}) or start a new "
                "pod for the session.",
                host=self.host,
            )
        chosen = self._container or info.default_container or (info.containers or [""])[0]
        if chosen not in info.containers:
            raise RemoteSetupError(
                f"The {self.where} has no container {chosen!r}; it has "
                + (", ".join(info.containers) or "none")
                + ". Pass one of them: k8s://"
                + f"{self._namespace}/{self._pod}/CONTAINER.",
                host=self.host,
            )
        if info.running and not info.running.get(chosen, False):
            raise HostUnreachable(
                f"Container {chosen} of the {self.where} is not running. See "
                f"{self._kubectl('describe pod', self._pod)}; it may be restarting.",
                host=self.host,
            )
        return chosen

    async def container(self) -> str:
        """Which container execs go to (read from the pod once, then kept)."""
        if self._resolved is None:
            self._resolved = self._choose(await self.read_pod())
        return self._resolved

    async def state(self) -> str | None:
        """``running``, ``missing`` or the pod's phase in lower case; None when unknown."""
        try:
            info = await self.read_pod()
        except HostUnreachable as exc:
            return "missing" if "There is no" in exc.message else None
        except ExecutorError:
            return None
        if info.phase != "Running":
            return info.phase.lower()
        container = self._resolved or self._container
        if container is not None and info.running and not info.running.get(container, False):
            return "container-stopped"
        return "running"

    # -- the Backend protocol -------------------------------------------------

    async def connect(self) -> None:
        await self.container()

    async def open(self, remote_command_text: str, *, pipe_stderr: bool) -> KubeChannel:
        """Start the bootstrap (see ``_LOADER``: ``remote_command_text``, the same
        script for every job, is sent on stdin rather than in the URL)."""
        container = await self.container()
        api = await self.api()
        kubernetes = import_client(self.host)

        def start() -> Any:
            return kubernetes.stream.stream(
                api.connect_get_namespaced_pod_exec,
                self._pod,
                self._namespace,
                command=["/bin/sh", "-c", _LOADER],
                container=container,
                stdin=True,
                stdout=True,
                stderr=True,
                tty=False,
                binary=True,
                _preload_content=False,
            )

        try:
            client = await anyio.to_thread.run_sync(start)
        except Exception as exc:
            if _status_of(exc) in (400, 404):
                self._resolved = None  # the pod may be gone or changed: read it again
                raise await self._diagnose(exc) from None
            raise self._failure(exc, "starting an exec in") from None
        channel = KubeChannel(client, pipe_stderr=pipe_stderr)
        try:
            line = _bootstrap_b64().encode("ascii") + b"\n"
            await anyio.to_thread.run_sync(channel.write_stdin, line)
        except OSError:
            pass  # the exec already ended: start_job's status read says why
        return channel

    async def _diagnose(self, exc: BaseException) -> ExecutorError:
        try:
            self._choose(await self.read_pod())
        except ExecutorError as found:
            return found
        return self._failure(exc, "starting an exec in")

    def lost_error(self, ending: Ending) -> ExecutorError | None:
        """The exec stream broke (no exit status came) under a job nobody stopped."""
        if ending.signalled or ending.returncode != EXEC_FAILED:
            return None
        said = (ending.stderr.strip().splitlines() or ["no exit status came"])[-1]
        return ProcessLost(
            f"Lost the exec stream to {self.host} while the process was running "
            f"({said[:300]}). "
            "The process in the pod is stopped by its watchdog; the session can be "
            "resumed once the API server answers again.",
            host=self.host,
            detail=ending.stderr[-2000:],
            exit_code=ending.returncode,
        )

    def connect_failure(self, stderr: str, returncode: int) -> ExecutorError | None:
        """An exec that ended before the bootstrap answered (its status message)."""
        lowered = stderr.lower()
        if "no such file" in lowered or "executable file not found" in lowered:
            return RemoteSetupError(
                f"The container of {self.where} has no /bin/sh; sessions need a POSIX "
                "shell and coreutils in the image (and glibc for the Claude Code CLI: a "
                "Debian or Ubuntu base works, distroless and scratch images do not).",
                host=self.host,
                detail=stderr[-2000:],
            )
        if stderr.strip():
            return ConnectionFailed(
                f"Kubernetes could not run a command in {self.where}: "
                f"{stderr.strip().splitlines()[-1][:300]}. Check "
                f"{self._kubectl('exec -i', self._pod, '-- /bin/sh -c true')}.",
                host=self.host,
                detail=stderr[-2000:],
            )
        return None

    async def aclose(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            await anyio.to_thread.run_sync(api.api_client.close)
