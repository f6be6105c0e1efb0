"""pytest fixtures for the scripted Messages API (see :mod:`remote_executors.testing.model`).

- ``rx_model_server`` (session): one :class:`ScriptedModel` on 127.0.0.1.
- ``rx_model``: the same server with no scripts or recorded requests left
  from other tests.

The SSH and container fixtures point their CLIs at it; they and the plugin
import it from here, so neither depends on the plugin module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .model import ScriptedModel

__all__ = ["rx_model", "rx_model_server"]


@pytest.fixture(scope="session")
def rx_model_server() -> Iterator[ScriptedModel]:
    """The session's scripted Messages API on 127.0.0.1."""
    from .model import ScriptedModel

    with ScriptedModel() as model:
        yield model


@pytest.fixture
def rx_model(rx_model_server: ScriptedModel) -> ScriptedModel:
    """The scripted model, with no scripts or recorded requests left from other tests."""
    rx_model_server.clear()
    return rx_model_server
