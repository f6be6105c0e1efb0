"""pytest fixtures for the container test bed (see :mod:`remote_executors.testing.docker`).

- ``rx_container_bed`` (session): a :class:`ContainerBed` for Docker; its image
  is built on first use (once per machine: it is cached by a hash of its
  recipe). Where no engine answers, tests that use it are skipped with the
  reason, except under CI (``CI`` set), where that is a failure: CI must
  install and start the engine (.ci/run does).
- ``rx_podman_bed``, ``rx_podman_container`` (session): the same with Podman.
- ``rx_container`` (session): one container whose CLI talks to ``rx_model``;
  tests share it (each works in directories of its own).
- ``rx_container_factory``: makes fresh containers for tests that stop or
  break theirs; removed at teardown.
- ``rx_docker_executor``: a ``DockerExecutor`` for ``rx_container``'s user.
- ``rx_container_project``: a project directory under the local home whose
  home-relative counterpart exists in ``rx_container``.

``docker_executor(box)`` is the ``DockerExecutor`` for a test container's
user, for fixtures of their own (``async with`` closes it).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from ._project import Project

if TYPE_CHECKING:
    from ..executors.docker import DockerExecutor
    from ._sshd_fixtures import Isolated
    from .docker import ContainerBed, TestContainer
    from .model import ScriptedModel

__all__ = [
    "ContainerFactory",
    "docker_executor",
    "rx_container",
    "rx_container_bed",
    "rx_container_factory",
    "rx_container_project",
    "rx_docker_executor",
    "rx_podman_bed",
    "rx_podman_container",
]


class ContainerFactory(Protocol):
    """Call signature of ``rx_container_factory``: :meth:`ContainerBed.container`'s."""

    def __call__(self, **options: Any) -> TestContainer: ...


def _bed(engine: str) -> Iterator[ContainerBed]:
    from .docker import ContainerBed, engine_available

    why = engine_available(engine)
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{engine} is required in CI: {why}")
        pytest.skip(f"no {engine} here: {why}")
    with ContainerBed(engine) as bed:
        yield bed


@pytest.fixture(scope="session")
def rx_container_bed() -> Iterator[ContainerBed]:
    """The session's Docker bed; skipped (failed under CI) where Docker does not answer."""
    yield from _bed("docker")


@pytest.fixture(scope="session")
def rx_podman_bed() -> Iterator[ContainerBed]:
    """The session's Podman bed (its image loaded from Docker's when there is one);
    skipped (failed under CI) where podman does not answer."""
    yield from _bed("podman")


@pytest.fixture(scope="session")
def rx_podman_container(
    rx_podman_bed: ContainerBed, rx_model_server: ScriptedModel
) -> TestContainer:
    """Like ``rx_container``, in Podman."""
    return rx_podman_bed.container(model_url=rx_model_server.url)


@pytest.fixture(scope="session")
def rx_container(rx_container_bed: ContainerBed, rx_model_server: ScriptedModel) -> TestContainer:
    """A running container (user ``agent``, home ``/home/agent``) talking to ``rx_model``."""
    return rx_container_bed.container(model_url=rx_model_server.url)


@pytest.fixture
def rx_container_factory(
    rx_container_bed: ContainerBed, rx_model_server: ScriptedModel
) -> Iterator[ContainerFactory]:
    """Fresh containers (``model_url`` defaults to ``rx_model``'s), removed afterwards."""
    made: list[TestContainer] = []

    def make(**options: Any) -> TestContainer:
        options.setdefault("model_url", rx_model_server.url)
        box = rx_container_bed.container(**options)
        made.append(box)
        return box

    yield make
    for box in made:
        rx_container_bed.remove(box.name)


def docker_executor(box: TestContainer) -> DockerExecutor:
    """A ``DockerExecutor`` for ``box``'s user."""
    from ..executors.docker import DockerExecutor

    return DockerExecutor(box.name, user=box.user)


@pytest.fixture
async def rx_docker_executor(
    rx_container: TestContainer, rx_isolated: Isolated
) -> AsyncIterator[DockerExecutor]:
    """A ``DockerExecutor`` for ``rx_container`` (needs an anyio test), closed afterwards.

    Sessions it runs are synced and recorded in the test's own dirs (``rx_isolated``).
    """
    async with docker_executor(rx_container) as executor:
        yield executor


@pytest.fixture
def rx_container_project(rx_container: TestContainer) -> Iterator[Project]:
    """``~/rx-test-<random>/shop`` here and in the container user's home."""
    relative = Path(f"rx-test-{secrets.token_hex(4)}") / "shop"
    local = Path.home() / relative
    local.mkdir(parents=True)
    remote = Path(rx_container.home) / relative
    rx_container.exec(["mkdir", "-p", str(remote)])
    try:
        yield Project(local=local, remote=remote)
    finally:
        shutil.rmtree(local.parent, ignore_errors=True)
        rx_container.exec(["rm", "-rf", str(remote.parent)], check=False)
