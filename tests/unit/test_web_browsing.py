"""The directory picker's executors: kept open between requests, dropped after a failure,
closed when idle and when the server stops."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from remote_executors.errors import ConnectionFailed, RemotePathNotFound
from remote_executors.testing.fakes import FakeExecutor
from remote_executors.web._browsing import BrowsingExecutors

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def maker(made: list[FakeExecutor], name: str = "box") -> Callable[[], FakeExecutor]:
    def make() -> FakeExecutor:
        made.append(FakeExecutor(name=name))
        return made[-1]

    return make


async def test_one_executor_serves_request_after_request() -> None:
    browsing, made = BrowsingExecutors(), []
    for _ in range(3):
        async with browsing.use("box", maker(made)) as executor:
            assert executor is made[0]
    # Each request builds one (cheap: not connected) to compare specs; only the first is kept.
    assert len(made) == 3 and not made[0].closed and made[1].closed and made[2].closed
    await browsing.aclose()
    assert made[0].closed and len(browsing) == 0


async def test_a_failure_drops_it_but_a_missing_directory_does_not() -> None:
    browsing, made = BrowsingExecutors(), []
    with pytest.raises(RemotePathNotFound):
        async with browsing.use("box", maker(made)):
            raise RemotePathNotFound("~/x does not exist on box.", host="box", path="~/x")
    assert not made[0].closed and len(browsing) == 1
    with pytest.raises(ConnectionFailed):
        async with browsing.use("box", maker(made)):
            raise ConnectionFailed("box: connection refused.", host="box")
    assert made[0].closed and len(browsing) == 0
    async with browsing.use("box", maker(made)) as executor:
        assert executor is made[2] and not executor.closed
    await browsing.aclose()


async def test_idle_ones_are_closed_by_the_sweeper() -> None:
    browsing, made = BrowsingExecutors(idle_seconds=0.05), []
    async with browsing.use("box", maker(made)):
        pass
    async with anyio.create_task_group() as tg:
        tg.start_soon(browsing.sweep)
        with anyio.fail_after(5):
            while len(browsing):
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert made[0].closed


async def test_one_in_use_while_replaced_is_closed_by_its_last_user() -> None:
    browsing, made = BrowsingExecutors(), []
    async with browsing.use("box", maker(made, "one")) as first:
        # The settings changed meanwhile: another spec for the same name.
        async with browsing.use("box", maker(made, "two")) as second:
            assert second is not first and not first.closed
        assert not first.closed  # still in use
    assert first.closed and not second.closed
    await browsing.aclose()
    assert second.closed
