"""TLS and credential plugins, as real clusters use them, through the stand-in.

Clusters serve HTTPS with their own CA (in the kubeconfig), and managed ones
hand out tokens through an exec credential plugin (``aws eks get-token``,
``gke-gcloud-auth-plugin``). The stand-in serves HTTPS/WSS with a
self-signed certificate and answers only its token; the real ``kubernetes``
client loads the kubeconfig, runs the plugin and verifies the server.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

import remote_executors as rx
from remote_executors.executors.base import SpawnOptions
from remote_executors.executors.kubernetes import KubernetesExecutor
from remote_executors.testing.docker import ContainerBed, TestContainer
from remote_executors.testing.executor_conformance import read_all
from remote_executors.testing.kube_standin import KubeStandin

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def tls_standin(rx_container_bed: ContainerBed, rx_container: TestContainer) -> KubeStandin:
    with KubeStandin(rx_container_bed.engine, tls=True) as standin:
        standin.add_pod("secure", "box-0", rx_container.name, user=rx_container.user)
        yield standin  # type: ignore[misc]


def pod(kubeconfig: Path) -> KubernetesExecutor:
    return KubernetesExecutor("box-0", namespace="secure", kubeconfig=str(kubeconfig))


async def spawn_echo(executor: KubernetesExecutor) -> bytes:
    """A spawned process over WSS: stdin in, stdout back, stdin closed, exit status."""
    process = await executor.spawn(SpawnOptions("/bin/cat", []))
    assert process.stdin is not None and process.stdout is not None
    await process.stdin.send(b"over wss\n")
    await process.stdin.aclose()
    out = await read_all(process.stdout)
    assert await process.wait() == 0
    return out


@pytest.mark.parametrize("auth", ["token", "exec"])
async def test_tls_with_a_token_or_a_credential_plugin(
    tls_standin: KubeStandin, tmp_path: Path, auth: str
) -> None:
    assert tls_standin.url.startswith("https://")
    config = tls_standin.kubeconfig(tmp_path / "config", auth=auth)
    if auth == "exec":
        assert tls_standin.token not in config.read_text()  # only the plugin knows it
    async with pod(config) as executor:
        done = await executor.run(["sh", "-c", "echo in-$(id -un)"])
        assert done.returncode == 0 and done.stdout.strip() == b"in-agent"
        assert await spawn_echo(executor) == b"over wss\n"


async def test_a_server_certificate_not_trusted_is_a_typed_error(
    tls_standin: KubeStandin, tmp_path: Path
) -> None:
    other = KubeStandin(tls=True).ca_pem  # another CA: the server's is not trusted
    config = tls_standin.kubeconfig(tmp_path / "config", ca_pem=other)
    executor = pod(config)
    with pytest.raises(rx.ConnectionFailed) as caught:
        await executor.run(["true"])
    error = caught.value
    assert error.host == executor.spec and "pod box-0 in namespace secure" in error.message
    assert "certificate" in error.message and "certificate-authority" in error.message


async def test_a_plugin_token_the_server_refuses_is_a_login_error(
    tls_standin: KubeStandin, tmp_path: Path
) -> None:
    config = tls_standin.kubeconfig(tmp_path / "config", auth="exec", token=secrets.token_hex(16))
    executor = pod(config)
    with pytest.raises(rx.AuthenticationFailed) as caught:
        await executor.run(["true"])
    assert "401" in caught.value.message and "pod box-0" in caught.value.message
