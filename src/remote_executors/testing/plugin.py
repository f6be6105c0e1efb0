"""pytest plugin (entry point ``remote_executors``): the test bed as fixtures.

Installed with the package, so a host app's own tests can use a real loopback
sshd, a real "remote" account and a scripted model without writing any of it:

- ``rx_model``: a :class:`~remote_executors.testing.model.ScriptedModel`
  (one server per test session, scripts and recorded requests cleared per test).
- ``rx_sshd``, ``rx_account``, ``rx_account_factory``, ``rx_ssh_config``:
  see :mod:`remote_executors.testing._sshd_fixtures`; accounts talk to ``rx_model``.
- ``rx_ssh_backend``: the SSH backend ``rx_executor`` uses, ``"openssh"`` unless
  parametrized (indirectly) with ``"fabric"``: run one test over both with
  ``@pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True)``.
- ``rx_executor``: an ``SSHExecutor`` for ``rx_ssh_config``, closed afterwards.
- ``rx_project``: a project directory that exists on both sides
  (``local``, ``remote``; the local one under the local home, so the default
  home-relative mapping applies).
- ``rx_local_env``: ``ClaudeAgentOptions.env`` for a *local* CLI run against
  ``rx_model``, with a private ``CLAUDE_CONFIG_DIR``.
- ``rx_container_bed``, ``rx_container``, ``rx_container_factory``,
  ``rx_docker_executor``, ``rx_container_project``: a real Docker container
  bed; ``rx_podman_bed``, ``rx_podman_container``: the same in Podman (see
  :mod:`remote_executors.testing._docker_fixtures`).
- ``rx_kube_standin``, ``rx_kube_pod``, ``rx_kubeconfig``, ``rx_kube_executor``:
  a stand-in Kubernetes API whose pods are the Docker bed's containers (see
  :mod:`remote_executors.testing._kube_fixtures`).
- ``rx_isolated``: the test's own ``CLAUDE_CONFIG_DIR`` and
  ``REMOTE_EXECUTORS_DATA_DIR`` (see :class:`Isolated`). Every fixture above
  that can lead to a session uses it, so sessions a test runs are synced and
  recorded in its temp dir, never into the real ``~/.claude/projects`` (where
  Claude Code's resume picker would list them) or the real records.

Fixtures that touch sshd need root (CI) or fall back to the current-user mode.
Importing the plugin loads nothing heavy (no SDK, no sshd or model code):
that happens when a test first uses a fixture.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ._docker_fixtures import (
    ContainerFactory,
    rx_container,
    rx_container_bed,
    rx_container_factory,
    rx_container_project,
    rx_docker_executor,
    rx_podman_bed,
    rx_podman_container,
)
from ._kube_fixtures import rx_kube_executor, rx_kube_pod, rx_kube_standin, rx_kubeconfig
from ._model_fixtures import rx_model, rx_model_server
from ._project import Project
from ._sshd_fixtures import (
    AccountFactory,
    Isolated,
    rx_account,
    rx_account_factory,
    rx_isolated,
    rx_ssh_config,
    rx_sshd,
)

if TYPE_CHECKING:
    from .model import ScriptedModel
    from .sshd import RemoteAccount, SSHClientConfig, SSHTestBed

__all__ = [
    "AccountFactory",
    "ContainerFactory",
    "Isolated",
    "Project",
    "rx_account",
    "rx_account_factory",
    "rx_container",
    "rx_container_bed",
    "rx_container_factory",
    "rx_container_project",
    "rx_docker_executor",
    "rx_executor",
    "rx_isolated",
    "rx_kube_executor",
    "rx_kube_pod",
    "rx_kube_standin",
    "rx_kubeconfig",
    "rx_local_env",
    "rx_model",
    "rx_model_server",
    "rx_model_url",
    "rx_podman_bed",
    "rx_podman_container",
    "rx_project",
    "rx_ssh_backend",
    "rx_ssh_config",
    "rx_sshd",
]


@pytest.fixture
def rx_model_url(rx_model: ScriptedModel) -> str:
    """Accounts created by the fixtures point their CLI at ``rx_model``."""
    return rx_model.url


@pytest.fixture
def rx_ssh_backend(request: pytest.FixtureRequest) -> str:
    """The ``SSHExecutor`` backend of ``rx_executor`` (indirect parameter; default openssh)."""
    return str(getattr(request, "param", "openssh"))


@pytest.fixture
async def rx_executor(
    rx_ssh_config: SSHClientConfig, rx_ssh_backend: str, rx_isolated: Isolated
) -> AsyncIterator[object]:
    """``SSHExecutor`` for the test's account (needs an anyio test)."""
    from ..executors.ssh import SSHExecutor

    executor = SSHExecutor(
        rx_ssh_config.alias,
        ssh_config=str(rx_ssh_config.path),
        backend=rx_ssh_backend,  # type: ignore[arg-type]  # checked by SSHExecutor
    )
    try:
        yield executor
    finally:
        await executor.aclose()


@pytest.fixture
def rx_project(
    rx_sshd: SSHTestBed, rx_account: RemoteAccount, rx_isolated: Isolated
) -> Iterator[Project]:
    """``~/rx-test-<random>/shop`` here and in the remote account's home."""
    relative = Path(f"rx-test-{secrets.token_hex(4)}") / "shop"
    local = Path.home() / relative
    local.mkdir(parents=True)
    remote = rx_sshd.remote_home(rx_account) / relative
    rx_sshd.run_as(rx_account, ["mkdir", "-p", str(remote)], check=True)
    try:
        yield Project(local=local, remote=remote)
    finally:
        shutil.rmtree(local.parent, ignore_errors=True)


@pytest.fixture
def rx_local_env(rx_model: ScriptedModel, tmp_path: Path, rx_isolated: Isolated) -> dict[str, str]:
    """Env for a local CLI run: the scripted model and a private config dir."""
    config = tmp_path / "local-claude"
    config.mkdir()
    return {**rx_model.cli_env(), "CLAUDE_CONFIG_DIR": os.fspath(config)}
