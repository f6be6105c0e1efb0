"""Shared settings for this project's own suite (fixtures come from the package plugin)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every anyio test runs on both event loops the SDK supports."""
    return str(request.param)
