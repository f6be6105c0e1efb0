"""The Kubernetes stand-in itself, spoken to directly: what the executor's tests rely on.

A raw WebSocket client (``websockets``) checks the channel protocols byte by
byte: v5 and v4 negotiation, stdin on channel 0, stdout/stderr on 1/2, the
exit status on 3, resize (4) ignored, v5's close-stdin signal on 255 (the
official client offers v5 first, so the executor's own tests run on v5;
v4 is covered here and by an executor over a v4-only stand-in below). Then
the HTTP side: pod reads, 401, 403 and 404 as a real API server words them.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from remote_executors.executors.base import SpawnOptions
from remote_executors.executors.kubernetes import KubernetesExecutor
from remote_executors.testing.docker import TestContainer
from remote_executors.testing.executor_conformance import read_all
from remote_executors.testing.kube_standin import V4, V5, KubeStandin, StandinPod

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # websockets' client is asyncio's


def exec_url(standin: KubeStandin, pod: StandinPod, *command: str) -> str:
    query = urlencode(
        [("command", c) for c in command]
        + [("container", pod.containers[0]), ("stdin", "true"), ("stdout", "true")]
        + [("stderr", "true"), ("tty", "false")]
    )
    return f"ws://127.0.0.1:{standin.port}/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/exec?{query}"


async def talk(
    standin: KubeStandin,
    pod: StandinPod,
    protocols: list[str],
    command: list[str],
    send: list[bytes],
) -> tuple[str | None, dict[int, bytes]]:
    """Run ``command``, send the frames in ``send``, collect every channel's bytes."""
    got: dict[int, bytes] = {}
    async with connect(
        exec_url(standin, pod, *command),
        subprotocols=protocols,  # type: ignore[arg-type]
        additional_headers={"Authorization": f"Bearer {standin.token}"},
    ) as ws:
        for frame in send:
            await ws.send(frame)
        with anyio.fail_after(30):
            async for message in ws:
                assert isinstance(message, bytes)
                got[message[0]] = got.get(message[0], b"") + message[1:]
        return ws.subprotocol, got


async def test_v5_stdin_close_and_exit_status(
    rx_kube_standin: KubeStandin, rx_kube_pod: StandinPod
) -> None:
    protocol, got = await talk(
        rx_kube_standin,
        rx_kube_pod,
        [V5, V4],
        ["/bin/sh", "-c", "cat; echo oops >&2; id -un; exit 7"],
        [b"\x00hello ", b'\x04{"Width":80,"Height":24}', b"\x00world\n", b"\xff\x00"],
    )
    assert protocol == V5
    assert got[1] == b"hello world\nagent\n"  # cat saw EOF; the pod's user ran it
    assert got[2] == b"oops\n"
    status = json.loads(got[3])
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]


async def test_v4_has_no_close_signal(
    rx_kube_standin: KubeStandin, rx_kube_pod: StandinPod
) -> None:
    # Under v4 a 255 frame is not a close signal: cat would wait for ever, so
    # the command reads exactly what it is sent.
    protocol, got = await talk(
        rx_kube_standin,
        rx_kube_pod,
        [V4],
        ["/bin/sh", "-c", "head -c 3; echo"],
        [b"\xff\x00", b"\x00abc"],
    )
    assert protocol == V4
    assert got[1] == b"abc\n"
    assert json.loads(got[3]) == {"metadata": {}, "status": "Success"}


async def test_refusals_read_as_a_real_api_servers(
    rx_kube_standin: KubeStandin, rx_kube_pod: StandinPod
) -> None:
    import httpx

    base = f"{rx_kube_standin.url}/api/v1/namespaces/{rx_kube_pod.namespace}/pods"
    auth = {"Authorization": f"Bearer {rx_kube_standin.token}"}
    locked = rx_kube_standin.add_pod(
        rx_kube_pod.namespace, "locked-0", rx_kube_pod.backing, containers=("claude",)
    )
    rx_kube_standin.forbid(locked.namespace, locked.name, "exec")
    async with httpx.AsyncClient() as client:
        pod = (await client.get(f"{base}/{rx_kube_pod.name}", headers=auth)).json()
        assert pod["status"]["phase"] == "Running"
        assert [c["name"] for c in pod["spec"]["containers"]] == ["claude"]
        assert pod["status"]["containerStatuses"][0]["state"]["running"]
        missing = await client.get(f"{base}/nope", headers=auth)
        assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"
        stranger = await client.get(f"{base}/{rx_kube_pod.name}")
        assert stranger.status_code == 401
        readable = await client.get(f"{base}/locked-0", headers=auth)
        assert readable.status_code == 200  # only exec is forbidden
    with pytest.raises(InvalidStatus) as caught:
        await talk(rx_kube_standin, locked, [V5], ["true"], [])
    assert caught.value.response.status_code == 403
    assert b'cannot create resource \\"pods/exec\\"' in caught.value.response.body
    wrong = StandinPod(rx_kube_pod.namespace, rx_kube_pod.name, rx_kube_pod.backing, ("sidecar",))
    with pytest.raises(InvalidStatus) as caught:
        await talk(rx_kube_standin, wrong, [V5], ["true"], [])
    assert caught.value.response.status_code == 400


@pytest.fixture
def v4_standin(rx_container: TestContainer, tmp_path: Path) -> tuple[KubeStandin, Path]:
    standin = KubeStandin(protocols=(V4,)).start()
    standin.add_pod("old", "box-0", rx_container.name, containers=("c",), user=rx_container.user)
    yield standin, standin.kubeconfig(tmp_path / "kubeconfig")  # type: ignore[misc]
    standin.close()


async def test_the_executor_over_a_v4_only_server(v4_standin: tuple[KubeStandin, Path]) -> None:
    standin, kubeconfig = v4_standin
    async with KubernetesExecutor("box-0", namespace="old", kubeconfig=str(kubeconfig)) as executor:
        # run() input ends where stdin cannot: the command gets exactly its bytes.
        result = await executor.run(["cat"], input=b"line\nno newline")
        assert (result.returncode, result.stdout) == (0, b"line\nno newline")
        assert executor.protocol == V4 and set(standin.negotiated) == {V4}
        assert (await executor.run(["/bin/sh", "-c", "exit 4"])).returncode == 4
        # A spawned process's stdin ends through the bootstrap's relay instead.
        process = await executor.spawn(SpawnOptions("cat"))
        assert process.stdin is not None and process.stdout is not None
        await process.stdin.send(b"round trip\n")
        await process.stdin.aclose()
        with anyio.fail_after(30):
            assert await read_all(process.stdout) == b"round trip\n"
            assert await process.wait() == 0
        # terminate() ends the stream; the watchdog in the container does the rest.
        process = await executor.spawn(SpawnOptions("sleep", ["300"]))
        process.terminate()
        with anyio.fail_after(30):
            assert await process.wait() != 0
