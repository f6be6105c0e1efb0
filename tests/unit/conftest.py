"""Fixtures shared by the unit tests of the remote bootstrap (run under a local shell)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import pytest
from _shell_backend import ShellBackend


@pytest.fixture
def remote_home(tmp_path: Path) -> Path:
    """The "remote" account's home (deliberately not the local one)."""
    home = tmp_path / "remote home"
    home.mkdir()
    return home


@pytest.fixture
def remote_tmp(tmp_path: Path) -> Path:
    """The "remote" TMPDIR, where the bootstrap makes its private directory."""
    tmp = tmp_path / "remote tmp"
    tmp.mkdir()
    return tmp


@pytest.fixture
async def make_backend(
    remote_home: Path, remote_tmp: Path
) -> AsyncIterator[Callable[..., ShellBackend]]:
    """ShellBackends whose process groups are all killed at teardown."""
    made: list[ShellBackend] = []

    def make(
        shell: str = "/bin/sh",
        *,
        prelude: str = "",
        home: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ShellBackend:
        backend = ShellBackend(
            shell,
            home=str(home or remote_home),
            prelude=prelude,
            env={"TMPDIR": str(remote_tmp), **(env or {})},
        )
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()
