"""The remote home and cwd mapping every remote executor shares (``executors/_cwd_map``).

SSH, Docker and Kubernetes executors ask for ``$HOME`` the same way and map
a cwd the same way; only their advice differs. The "remote" here is a real
shell behind the test-only ``ShellBackend``, given a ``$HOME`` that cannot
be used, so the check runs for real.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from _shell_backend import ShellBackend

from remote_executors import DockerExecutor, KubernetesExecutor, SSHExecutor
from remote_executors.errors import InvalidInput, RemoteSetupError
from remote_executors.executors._cwd_map import sorted_path_map

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_path_map_is_checked_and_longest_prefix_first() -> None:
    assert sorted_path_map({"/a": "/r/a", "/a/b/c": "~/c", "/a/b": "x"}, host="h") == (
        ("/a/b/c", "~/c"),
        ("/a/b", "~/x"),  # relative to the remote home
        ("/a", "/r/a"),
    )
    assert sorted_path_map(None, host="h") == ()
    with pytest.raises(InvalidInput):
        sorted_path_map({"/a": "-rf"}, host="h")


def _on(executor: object, backend: ShellBackend) -> object:
    executor._backend = backend  # type: ignore[attr-defined]
    return executor


@pytest.mark.parametrize("home", ["relative/home", "/with\nnewline", ""])
async def test_an_unusable_home_is_refused_with_each_kinds_advice(
    make_backend: Callable[..., ShellBackend], home: str
) -> None:
    backend = make_backend(env={"HOME": home})
    shown = repr(home)
    ssh = _on(SSHExecutor("shellbox"), backend)
    with pytest.raises(RemoteSetupError) as caught:
        await ssh.home()  # type: ignore[attr-defined]
    assert caught.value.message == (
        f"shellbox did not report a usable home directory: $HOME there is {shown} (exit "
        "status 0), not an absolute path without control characters. Check that HOME is "
        "set for the login on shellbox (e.g. in its ~/.ssh/environment or login scripts), "
        "or pass SSHExecutor(..., path_map={local: remote}) so nothing depends on it."
    )
    assert caught.value.host == "shellbox"

    docker = _on(DockerExecutor("box"), backend)
    with pytest.raises(RemoteSetupError) as caught:
        await docker.home()  # type: ignore[attr-defined]
    assert caught.value.message == (
        f"Container docker://box did not report a usable home directory: $HOME there is "
        f"{shown} (exit status 0). Give the user a home in the image (or `-e HOME=...` when "
        "creating the container), or pass DockerExecutor(..., path_map={local: container})."
    )
    assert caught.value.host == "docker://box"

    pod = _on(KubernetesExecutor("shop-0", namespace="ns"), backend)
    with pytest.raises(RemoteSetupError) as caught:
        await pod.home()  # type: ignore[attr-defined]
    assert caught.value.host == "k8s://ns/shop-0"
    assert "pass KubernetesExecutor(..., path_map={local: container})" in caught.value.message


async def test_each_kind_maps_a_cwd_under_the_home_it_was_told(
    make_backend: Callable[..., ShellBackend],
    remote_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_home = tmp_path / "local home"
    local_home.mkdir()
    monkeypatch.setenv("HOME", str(local_home))
    for executor in (
        SSHExecutor("shellbox", path_map={"/srv/in": "~/mapped"}),
        DockerExecutor("box", path_map={"/srv/in": "~/mapped"}),
        KubernetesExecutor("shop-0", path_map={"/srv/in": "~/mapped"}),
    ):
        _on(executor, make_backend())
        assert await executor.map_cwd(str(local_home / "code")) == f"{remote_home}/code"
        assert await executor.map_cwd("/srv/in/x") == f"{remote_home}/mapped/x"
        assert await executor.map_cwd("/opt/y") == "/opt/y"
        await executor.aclose()
