"""What a user meets when a pod is not usable, provoked for real through the stand-in.

Each failure is a typed error that names the pod (``exc.host`` is the
executor's spec) and says what to do, with the kubectl command that shows
more. The stand-in answers as an API server does: 404 for a missing pod, a
phase for a pod that does not run, 400 for a container the pod does not
have, 401/403 for credentials and RBAC; the exec stream can be cut under a
running process.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path

import anyio
import pytest

import remote_executors as rx
from remote_executors._check import check
from remote_executors.executors.base import SpawnOptions
from remote_executors.executors.kubernetes import KubernetesExecutor
from remote_executors.testing._docker_fixtures import ContainerFactory
from remote_executors.testing.docker import ContainerBed, TestContainer
from remote_executors.testing.executor_conformance import read_all
from remote_executors.testing.kube_standin import KubeStandin, StandinPod
from remote_executors.testing.plugin import Project

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pod(name: str, kubeconfig: Path, **options: str) -> KubernetesExecutor:
    return KubernetesExecutor(name, namespace="rx-test", kubeconfig=str(kubeconfig), **options)


def named(exc: rx.ExecutorError, executor: KubernetesExecutor, *words: str) -> None:
    assert exc.host == executor.spec
    assert f"pod {executor.pod}" in str(exc) or executor.pod in str(exc)
    for word in words:
        assert word in exc.message, exc.message


async def test_no_such_pod(rx_kube_standin: KubeStandin, rx_kubeconfig: Path) -> None:
    executor = pod(f"missing-{secrets.token_hex(3)}", rx_kubeconfig)
    with pytest.raises(rx.HostUnreachable) as caught:
        await executor.run(["true"])
    named(caught.value, executor, "There is no pod", "namespace rx-test", "kubectl")
    report = await check(executor)
    assert not report.ok and report.steps[0].status == "fail"
    assert "get pods" in report.steps[0].hint


async def test_a_pod_that_is_not_running(
    rx_kube_standin: KubeStandin,
    rx_kubeconfig: Path,
    rx_container_factory: ContainerFactory,
    rx_container_bed: ContainerBed,
    rx_container: TestContainer,
) -> None:
    rx_kube_standin.add_pod("rx-test", "pending-0", rx_container.name, phase="Pending")
    executor = pod("pending-0", rx_kubeconfig)
    with pytest.raises(rx.HostUnreachable) as caught:
        await executor.run(["true"])
    named(caught.value, executor, "not running (phase Pending)", "describe pod pending-0")
    # A pod whose container stopped (its phase follows the container's state).
    box = rx_container_factory(claude=False)
    rx_container_bed.stop(box.name)
    rx_kube_standin.add_pod("rx-test", "stopped-0", box.name, user=box.user)
    executor = pod("stopped-0", rx_kubeconfig)
    with pytest.raises(rx.HostUnreachable) as caught:
        await executor.spawn(SpawnOptions("cat"))
    named(caught.value, executor, "not running (phase Failed)")


async def test_a_container_the_pod_does_not_have(
    rx_kube_pod: StandinPod, rx_kubeconfig: Path
) -> None:
    executor = pod(rx_kube_pod.name, rx_kubeconfig, container="sidecar")
    with pytest.raises(rx.RemoteSetupError) as caught:
        await executor.run(["true"])
    named(caught.value, executor, "no container 'sidecar'", "it has claude", "/CONTAINER")


async def test_exec_or_read_forbidden(
    rx_kube_standin: KubeStandin, rx_kubeconfig: Path, rx_container: TestContainer
) -> None:
    rx_kube_standin.add_pod("rx-test", "no-exec-0", rx_container.name, user=rx_container.user)
    rx_kube_standin.forbid("rx-test", "no-exec-0", "exec")
    executor = pod("no-exec-0", rx_kubeconfig)
    with pytest.raises(rx.AuthenticationFailed) as caught:
        await executor.run(["true"])
    named(caught.value, executor, "403", "create pods/exec", "auth can-i create pods/exec")
    rx_kube_standin.add_pod("rx-test", "no-get-0", rx_container.name)
    rx_kube_standin.forbid("rx-test", "no-get-0", "get")
    executor = pod("no-get-0", rx_kubeconfig)
    with pytest.raises(rx.AuthenticationFailed) as caught:
        await executor.run(["true"])
    named(caught.value, executor, "get pods", "RBAC")


async def test_credentials_refused(
    rx_kube_standin: KubeStandin, rx_kube_pod: StandinPod, tmp_path: Path
) -> None:
    stale = rx_kube_standin.kubeconfig(tmp_path / "stale", token="expired")
    executor = pod(rx_kube_pod.name, stale)
    with pytest.raises(rx.AuthenticationFailed) as caught:
        await executor.run(["true"])
    named(caught.value, executor, "refused the credentials", "401")


async def test_no_api_server_and_no_kubeconfig(
    rx_kube_standin: KubeStandin, rx_kube_pod: StandinPod, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = KubeStandin()
    dead.port = port
    executor = pod(rx_kube_pod.name, dead.kubeconfig(tmp_path / "dead"))
    with pytest.raises(rx.HostUnreachable) as caught:
        await executor.run(["true"], timeout=60)
    named(caught.value, executor, "Cannot reach the Kubernetes API server")
    executor = pod(rx_kube_pod.name, tmp_path / "nowhere", context="prod")
    with pytest.raises(rx.ConnectionFailed) as caught:
        await executor.run(["true"])
    named(caught.value, executor, "Cannot load the Kubernetes configuration", "context=")


async def test_missing_client_says_what_to_install(
    rx_kube_pod: StandinPod, rx_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # as if not installed
    executor = rx.executor_from_spec(f"k8s://rx-test/{rx_kube_pod.name}")
    with pytest.raises(rx.ExecutorUnavailable) as caught:
        await executor.run(["true"])
    assert "pip install 'remote-executors[kubernetes]'" in caught.value.message
    assert caught.value.host == executor.name


async def test_a_missing_working_directory_and_no_claude(
    rx_kube_standin: KubeStandin,
    rx_kube_pod: StandinPod,
    rx_kubeconfig: Path,
    rx_container_factory: ContainerFactory,
    tmp_path: Path,
) -> None:
    executor = pod(rx_kube_pod.name, rx_kubeconfig)
    with pytest.raises(rx.RemotePathNotFound) as caught:
        await executor.run(["true"], cwd=str(tmp_path / "nowhere"))
    named(caught.value, executor, "doesn't exist in pod", "path_map")
    box = rx_container_factory(claude=False)
    rx_kube_standin.add_pod("rx-test", "bare-0", box.name, user=box.user)
    executor = pod("bare-0", rx_kubeconfig)
    with pytest.raises(rx.ClaudeNotFound) as caught:
        await executor.spawn(SpawnOptions("claude", ["--version"]))
    named(caught.value, executor, "Claude CLI not installed in pod", "claude_path=")
    report = await check(executor)
    claude = report.step("claude")
    assert claude is not None and claude.status == "fail" and "claude_path=" in claude.hint


async def test_the_pod_stopping_under_a_process_is_process_lost(
    rx_kube_standin: KubeStandin,
    rx_kubeconfig: Path,
    rx_container_factory: ContainerFactory,
    rx_container_bed: ContainerBed,
) -> None:
    box = rx_container_factory(claude=False)
    rx_kube_standin.add_pod("rx-test", "doomed-0", box.name, user=box.user)
    executor = pod("doomed-0", rx_kubeconfig)
    process = await executor.spawn(SpawnOptions("sleep", ["300"]))
    await anyio.to_thread.run_sync(rx_container_bed.stop, box.name)
    with anyio.fail_after(30):
        assert await process.wait() != 0
    lost = process.lost_error()  # type: ignore[attr-defined]
    assert isinstance(lost, rx.ProcessLost)
    named(lost, executor, "stopped (failed)", "resume")
    await executor.aclose()


async def test_a_cut_exec_stream_is_process_lost_and_leaves_nothing_running(
    rx_kube_standin: KubeStandin, rx_kube_executor: KubernetesExecutor, rx_container: TestContainer
) -> None:
    mark = f"{300 + secrets.randbelow(10**6) / 10**6:.6f}"
    process = await rx_kube_executor.spawn(
        SpawnOptions("/bin/sh", ["-c", f"sleep {mark} & sleep {mark}; wait"])
    )
    with anyio.fail_after(30):
        while not any(f"sleep {mark}" in p for p in rx_container.processes()):
            await anyio.sleep(0.05)
    await anyio.to_thread.run_sync(rx_kube_standin.cut)  # as if the API server went away
    with anyio.fail_after(30):
        await process.wait()
        while any(f"sleep {mark}" in p for p in rx_container.processes()):
            await anyio.sleep(0.1)
    lost = process.lost_error()  # type: ignore[attr-defined]
    assert isinstance(lost, rx.ProcessLost)
    named(lost, rx_kube_executor, "Lost the exec stream", "resumed")


async def test_secrets_are_on_no_command_line_and_in_no_exec_request(
    rx_kube_standin: KubeStandin, rx_kube_executor: KubernetesExecutor
) -> None:
    secret = f"sk-secret-{secrets.token_hex(12)}"
    process = await rx_kube_executor.spawn(
        SpawnOptions("/bin/sh", ["-c", 'printf "%s\\n" "$TOKEN"; cat'], env={"TOKEN": secret})
    )
    assert process.stdout is not None and process.stdin is not None
    with anyio.fail_after(30):
        assert await process.stdout.receive() == f"{secret}\n".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):  # the container's too
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert secret.encode() not in cmdline, (pid, cmdline[:200])
    assert secret not in repr(rx_kube_standin.execs)  # what reached the "API server"
    await process.stdin.aclose()
    with anyio.fail_after(30):
        await read_all(process.stdout)
        assert await process.wait() == 0


async def test_check_reports_a_good_pod(
    rx_kube_executor: KubernetesExecutor, rx_container_project: Project
) -> None:
    report = await check(rx_kube_executor, rx_container_project.local)
    assert report.ok, report.to_dict()
    steps = {s.name: s for s in report.steps}
    assert steps["connect"].title == "Container reachable"
    assert steps["project"].detail == str(rx_container_project.remote)
    assert steps["host_key"].status == "skip"


@pytest.mark.parametrize(
    "spec",
    [
        "k8s://ns",
        "k8s://ns/Pod",
        "k8s://ns/pod/c/extra",
        "k8s://-ns/pod",
        "k8s://ns/pod?user=root",
        "docker://ns/pod",
    ],
)
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(rx.InvalidInput):
        KubernetesExecutor.from_spec(spec)


def test_spec_round_trips() -> None:
    for spec in (
        "k8s://default/web-0",
        "k8s://team-a/agent-7/claude",
        "k8s://team-a/agent-7?context=prod-eu",
        "k8s://team-a/agent-7/claude?context=kind-kind&kubeconfig=/home/me/.kube/other",
    ):
        assert KubernetesExecutor.from_spec(spec).spec == spec
        assert rx.executor_from_spec(spec).spec == spec
    assert KubernetesExecutor("p").spec == "k8s://default/p"
