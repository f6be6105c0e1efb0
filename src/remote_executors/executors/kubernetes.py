"""``KubernetesExecutor``: a container of a running Kubernetes pod as the machine.

It is ``DockerExecutor`` with another carrier: the same bootstrap script,
job header on stdin (so no argv, env or secret is on any command line, here
or in the pod), heartbeats and watchdog, home and cwd mapping, ``run``
limits and transcript sync; only the channel differs, a ``pods/exec``
WebSocket opened by the official ``kubernetes`` client (see ``_kube_api``
and ``_kube_channel``).
"""

from __future__ import annotations

import re
import signal as _signal
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..errors import ExecutorError, InvalidInput, ProcessLost
from ._capture import DEFAULT_MAX_OUTPUT
from ._kube_api import KubeBackend
from ._kube_channel import V5, KubeChannel
from ._remote_process import RemoteProcess
from ._spare import SpareChannel
from ._validate import check_path
from .base import CommandResult
from .docker import ContainerProcess, DockerExecutor
from .registry import format_spec, parse_spec

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["KubernetesExecutor", "PodProcess"]

SCHEME = "k8s"
_GENTLE = frozenset({_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP})
# DNS-1123: namespaces and container names are labels, pod names subdomains.
_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_POD_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_CONTEXT_RE = re.compile(r"[^\x00-\x1f\x7f]{1,253}")
_PATH_MAP = "path_map:"
_OPTIONS = ("context", "kubeconfig", "claude_path")

# A run job's stdin can only end under v5 (a close frame); under v4 the
# command gets exactly the input's bytes through `head -c` instead, then EOF.
_FEED = 'n=$1; shift; if [ "$n" -gt 0 ]; then head -c "$n" | "$@"; else "$@" </dev/null; fi'


def _check_name(value: object, what: str, pattern: re.Pattern[str], shown: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(
            f"Refusing {what} {value!r} for {shown}: Kubernetes {what}s are lowercase "
            "letters, digits and '-' (pods may hold '.'), starting and ending with a "
            "letter or digit.",
            host=shown,
        )
    return value


class PodProcess(ContainerProcess):
    """A process in a pod's container, carried by one ``pods/exec`` stream.

    ``pid`` is this Python process's (no local client process). Stopping it
    gently ends its stdin (v5), so the watchdog in the container stops the
    whole process tree and the real exit status still comes back; anything
    else (or a v4 server) ends the stream, which ends stdin in the pod too.
    A broken exec stream is the backend's to tell (``KubeBackend.lost_error``).
    """

    def send_signal(self, signal: int) -> None:
        channel = self._channel
        if (
            signal in _GENTLE
            and self._job.mode == "spawn"
            and isinstance(channel, KubeChannel)
            and channel.closes_stdin
        ):
            self._signalled = True
            self._stop_heartbeat()
            channel.close_stdin()
            return
        RemoteProcess.send_signal(self, signal)

    def _stopped_error(self, state: str, code: int) -> ExecutorError | None:
        if self._signalled:
            return None
        what = "is gone" if state == "missing" else f"stopped ({state})"
        return ProcessLost(
            f"The pod of {self.host} {what} while the process was running (exit "
            f"{code}). Start a pod again (same name, same volume for ~/.claude) and "
            "resume the session.",
            host=self.host,
            detail=self.stderr_tail()[-2000:],
            exit_code=code,
        )


class KubernetesExecutor(DockerExecutor):
    """Run processes in ``container`` of ``pod`` in ``namespace`` (a running pod).

    Every process is one ``pods/exec`` (``/bin/sh`` reading a job header on
    stdin) through the official ``kubernetes`` client, configured from the
    kubeconfig (``kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``;
    in a pod without one, its service account) and its ``context``. The
    process runs as the container's user, in the same directory relative
    to that user's home as locally (or as ``path_map`` says).

    Options:
      container: which container of the pod (default: the pod's
        ``kubectl.kubernetes.io/default-container`` annotation, else its first).
      context: a kubeconfig context (default: the current one).
      kubeconfig: path of the kubeconfig file.
      claude_path: where the Claude Code CLI is in the container (skips the search).
      path_map: local directory prefix -> container directory prefix.
      warm_spawn: keep one ``pods/exec`` open and waiting (the bootstrap, idle)
        so the next spawn skips opening one (a round trip to the API server
        and the kubelet starting a process in the container). It costs one
        idle shell in the container, closes after 2 minutes unused and with
        the executor. The live follower then also waits up to 2 minutes for
        the next session. On by default.

    The account needs RBAC ``get`` on ``pods`` and ``create`` on ``pods/exec``
    in the namespace; the image needs ``/bin/sh``, coreutils, ``ps`` (procps)
    and, for sessions, the Claude Code CLI (glibc-based images). Install the
    client with ``pip install 'remote-executors[kubernetes]'``.
    """

    _process_class = PodProcess
    _holder = "pod"
    # No bare exec to ask again with: KubeBackend.open diagnoses a refused exec itself.
    _diagnoses_early_exit = False

    def __init__(
        self,
        pod: str,
        *,
        namespace: str = "default",
        container: str | None = None,
        context: str | None = None,
        kubeconfig: str | None = None,
        claude_path: str | None = None,
        path_map: Mapping[str, str] | None = None,
        warm_spawn: bool = True,
    ) -> None:
        shown = f"{SCHEME}://{namespace}/{pod}"
        self._pod = _check_name(pod, "pod name", _POD_RE, shown)
        self._namespace = _check_name(namespace, "namespace", _LABEL_RE, shown)
        self._kube_container = (
            None
            if container is None
            else _check_name(container, "container name", _LABEL_RE, shown)
        )
        if context is not None and (
            not isinstance(context, str) or not _CONTEXT_RE.fullmatch(context)
        ):
            raise InvalidInput(f"Refusing kube context {context!r} for {shown}.", host=shown)
        self._context = context
        if kubeconfig is not None:
            check_path(kubeconfig, host=shown, what="kubeconfig")
        self._kubeconfig = kubeconfig
        self._protocol: str | None = None  # what the server speaks, once seen
        # The shared state DockerExecutor's methods use (see docker.py); the
        # engine- and container-named ones are overridden here.
        self._user = None
        self._init_common(self._spec(), claude_path, path_map)
        self._backend = KubeBackend(  # type: ignore[assignment]
            self._name, pod, namespace, container, context, kubeconfig
        )
        self._spare = SpareChannel(self._backend) if warm_spawn else None

    # -- identity ---------------------------------------------------------------

    def _spec(self) -> str:
        target = f"{self._namespace}/{self._pod}"
        if self._kube_container is not None:
            target += f"/{self._kube_container}"
        options = [
            (key, value)
            for key, value in (("context", self._context), ("kubeconfig", self._kubeconfig))
            if value is not None
        ]
        return format_spec(SCHEME, target, options)

    @property
    def spec(self) -> str:
        """``k8s://NAMESPACE/POD[/CONTAINER]`` (``?context=C&kubeconfig=PATH`` when
        given): the string :meth:`from_spec` reopens this executor from."""
        return self._name

    @classmethod
    def from_spec(cls, spec: str) -> Self:
        """The executor ``spec`` names (``k8s://ns/pod``, ``k8s://ns/pod/c?context=x``)."""
        parsed = parse_spec(spec)
        parts = unquote(parsed.target).split("/")
        if parsed.scheme != SCHEME or len(parts) not in (2, 3) or not all(parts):
            raise InvalidInput(
                f"Not a Kubernetes spec: {spec!r}. Use k8s://NAMESPACE/POD or "
                "k8s://NAMESPACE/POD/CONTAINER (optionally ?context=NAME).",
                host=str(spec),
            )
        options: dict[str, str] = {}
        path_map: dict[str, str] = {}
        for key, value in parsed.options:
            if key.startswith(_PATH_MAP) and len(key) > len(_PATH_MAP):
                path_map[key[len(_PATH_MAP) :]] = value
            elif key in _OPTIONS:
                options[key] = value
            else:
                raise InvalidInput(
                    f"Unknown option {key!r} in {spec!r}; k8s:// specs take "
                    + ", ".join(_OPTIONS)
                    + ".",
                    host=spec,
                )
        return cls(
            parts[1],
            namespace=parts[0],
            container=parts[2] if len(parts) == 3 else None,
            context=options.get("context"),
            kubeconfig=options.get("kubeconfig"),
            claude_path=options.get("claude_path"),
            path_map=path_map or None,
        )

    def __repr__(self) -> str:
        extra = "".join(
            f", {key}={value!r}"
            for key, value in (
                ("container", self._kube_container),
                ("context", self._context),
            )
            if value is not None
        )
        return f"KubernetesExecutor({self._pod!r}, namespace={self._namespace!r}{extra})"

    @property
    def pod(self) -> str:
        return self._pod

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def container(self) -> str:
        """The container asked for (the pod's default one is chosen when None was)."""
        return self._kube_container or ""

    @property
    def context(self) -> str | None:
        return self._context

    @property
    def engine(self) -> str:
        return "kubernetes"

    # -- processes --------------------------------------------------------------

    @property
    def _place(self) -> str:
        backend: KubeBackend = self._backend  # type: ignore[assignment]
        return f"{backend.where} ({self._name})"

    def _started(self, process: ContainerProcess) -> None:
        channel = process._channel
        if isinstance(channel, KubeChannel):
            self._protocol = channel.protocol

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = 30.0,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> CommandResult:
        argv = list(argv)
        if argv and argv[0] != "claude" and self._protocol != V5:
            # Not known to speak v5 (yet): stdin cannot be ended, so feed it by length.
            argv = ["/bin/sh", "-c", _FEED, "sh", str(len(input or b"")), *argv]
        return await super().run(
            argv, cwd=cwd, env=env, input=input, timeout=timeout, max_output=max_output
        )

    async def _state(self) -> str | None:
        backend: KubeBackend = self._backend  # type: ignore[assignment]
        return await backend.state()

    @property
    def protocol(self) -> str | None:
        """The exec subprotocol the API server chose (``v5.channel.k8s.io`` on
        Kubernetes 1.30+), None before the first exec."""
        return self._protocol
