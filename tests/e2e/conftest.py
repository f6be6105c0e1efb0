"""Shared e2e fixtures: measured figures printed at the end of a module's tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

_FIGURES: dict[str, list[tuple[str, str, float]]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_figures(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a module that recorded figures, print them (title: its ``FIGURES_TITLE``)."""
    yield
    figures = _FIGURES.pop(request.module.__name__, [])
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not figures:
        return
    title = getattr(request.module, "FIGURES_TITLE", request.module.__name__)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line("")
        reporter.write_sep("-", title)
        for test, what, value in figures:
            reporter.write_line(f"{value:9.2f}  {what:<56} {test}")


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[[str, float], None]:
    """``record(what, value)``: keep a measured figure (seconds unless ``what`` says)."""

    def add(what: str, value: float) -> None:
        _FIGURES.setdefault(request.module.__name__, []).append((request.node.name, what, value))
        request.node.user_properties.append((what, round(value, 3)))

    return add
