"""Shared settings for this project's own suite (fixtures come from the package plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every anyio test runs on both event loops the SDK supports."""
    return str(request.param)


@pytest.fixture(scope="session", autouse=True)
def _private_claude_and_data_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep sessions synced by the suite out of the real ~/.claude and data dir."""
    root = tmp_path_factory.mktemp("rx-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLAUDE_CONFIG_DIR", str(root / "claude"))
        mp.setenv("REMOTE_EXECUTORS_DATA_DIR", str(root / "data"))
        yield
