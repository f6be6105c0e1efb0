"""Shared settings for this project's own suite (fixtures come from the package plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

#: ``record`` fixture figures (tests/e2e/conftest.py): user_properties under this key.
FIGURE = "rx-figure"
_figures: list[tuple[str, str, str, float]] = []


def pytest_report_header() -> str:
    """Which SDK (and bundled CLI) this run tests: CI runs the newest and the oldest."""
    import claude_agent_sdk
    from claude_agent_sdk._cli_version import __cli_version__

    return (
        f"claude-agent-sdk {claude_agent_sdk.__version__} (bundled Claude Code {__cli_version__})"
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect figures where the summary is written (the xdist controller too)."""
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key == FIGURE:
            title, what, number = value  # type: ignore[misc]
            _figures.append((str(title), report.nodeid.rpartition("::")[2], str(what), number))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The measured figures, one section per module that recorded some."""
    by_title: dict[str, list[tuple[str, str, float]]] = {}
    for title, test, what, number in _figures:
        by_title.setdefault(title, []).append((test, what, number))
    for title, rows in by_title.items():
        terminalreporter.write_sep("-", title)
        for test, what, number in rows:
            terminalreporter.write_line(f"{number:9.2f}  {what:<56} {test}")


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
