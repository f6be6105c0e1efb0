"""Shared e2e fixtures: measured figures, printed in the terminal summary (tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from remote_executors.testing.link import LinkProxy
from remote_executors.testing.sshd import SSHTestBed

#: The user_properties key tests/conftest.py collects figures by.
FIGURE = "rx-figure"


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[[str, float], None]:
    """``record(what, value)``: keep a measured figure (seconds unless ``what`` says).

    Figures travel as the test's ``user_properties``, so they reach the summary
    from pytest-xdist workers too; the heading is the module's ``FIGURES_TITLE``.
    """
    title = getattr(request.module, "FIGURES_TITLE", request.module.__name__)

    def add(what: str, value: float) -> None:
        request.node.user_properties.append((FIGURE, (title, what, round(value, 3))))

    return add


@pytest.fixture
def private_local_claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private local config dir (where the SDK's readers look) and data dir."""
    config = tmp_path / "local-claude"
    config.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "rx-data"))
    return config


@pytest.fixture
def link(rx_sshd: SSHTestBed) -> Iterator[LinkProxy]:
    """A TCP proxy in front of the bed's sshd that can cut, refuse and freeze the link."""
    with LinkProxy(rx_sshd.host, rx_sshd.port) as proxy:
        yield proxy


@pytest.fixture
def docker_cli_carrier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make ``DockerExecutor`` use the docker CLI carrier against the same engine:
    a docker context of its own (in a private ``DOCKER_CONFIG``) selected by
    ``DOCKER_CONTEXT``, which the in-process API carrier leaves to the CLI.
    Returns the context's name."""
    import subprocess

    config = tmp_path / "docker-config"
    config.mkdir()
    name = "rx-cli-carrier"
    subprocess.run(
        ["docker", "context", "create", name, "--docker", "host=unix:///var/run/docker.sock"],
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_CONFIG": str(config)},
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.setenv("DOCKER_CONTEXT", name)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return name
