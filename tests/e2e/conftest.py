"""Shared e2e fixtures: measured figures, printed in the terminal summary (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

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
