"""Running a conformance suite again on trio, over a subset of its tests.

The event loop changes how the local side drives its pipes and clients, not
what happens on the remote, so remote executors run a cheap subset on trio
(the whole suites run on both loops over ``LocalExecutor``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import pytest

from remote_executors.testing.executor_conformance import ExecutorConformance

Suite = TypeVar("Suite", bound=type)


class _OnTrio:
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "trio"


def on_trio(suite: Suite, keep: Iterable[str], *, of: type = ExecutorConformance) -> Suite:
    """``suite`` again on trio, running only the tests of ``of`` named in ``keep``.

    Assign it to a ``Test...`` name of the test module for pytest to collect it.
    """
    keep = frozenset(keep)
    unknown = keep - set(dir(of))
    assert not unknown, f"no such tests in the suite: {unknown}"
    name = f"{suite.__name__}Trio"
    skipped = {t: None for t in dir(of) if t.startswith("test_") and t not in keep}
    body = {"__module__": suite.__module__, "__qualname__": name, **skipped}
    trio: Suite = type(name, (_OnTrio, suite), body)
    return trio
