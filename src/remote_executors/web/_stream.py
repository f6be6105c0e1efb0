"""A streamed answer whose producer may run tasks: NDJSON (check steps) and SSE.

Starlette's ``StreamingResponse`` iterates a generator; a generator must not
hold a task group across ``yield``. Here the producer is a coroutine that
calls ``emit(chunk)``; it runs in the response's own task group, next to a
task that stops everything when the client goes away.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import anyio
from starlette.types import Receive, Scope, Send

__all__ = ["Emit", "Streamed"]

Emit = Callable[[bytes], Awaitable[None]]


class Streamed:
    """An ASGI response: ``status``, ``media_type``, then whatever ``produce`` emits."""

    def __init__(
        self, produce: Callable[[Emit], Awaitable[None]], *, media_type: str, status: int = 200
    ) -> None:
        self.produce = produce
        self.media_type = media_type
        self.status = status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    (b"content-type", self.media_type.encode()),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )

        async def emit(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async with anyio.create_task_group() as tg:

            async def until_gone() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(until_gone)
            with contextlib.suppress(OSError):  # the client went away mid-write
                await self.produce(emit)
            tg.cancel_scope.cancel()
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
