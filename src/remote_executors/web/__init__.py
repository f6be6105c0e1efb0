"""The local web UI and HTTP API (``pip install 'remote-executors[web]'``).

:func:`create_app` returns the whole thing as one ASGI app (Starlette): the
pages, their static files and the JSON API under ``/api``, behind the token
guard. A host app that has its own authentication mounts only the API::

    from starlette.applications import Starlette
    from starlette.routing import Mount
    from remote_executors.web import WebContext, api_router, lifespan

    context = WebContext()
    app = Starlette(routes=[Mount("/rx/api", app=api_router(context))],
                    lifespan=lambda app: lifespan(context))

Starlette serves and routes, uvicorn runs it (``remote-executors ui``).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from ._context import OutsideRoots, WebContext
from ._guard import LOOPBACK_NAMES, TokenGuard
from .api import api_router

__all__ = [
    "LOOPBACK_NAMES",
    "OutsideRoots",
    "WebContext",
    "api_router",
    "create_app",
    "lifespan",
    "new_token",
]


@contextlib.asynccontextmanager
async def lifespan(context: WebContext) -> AsyncIterator[None]:
    """While entered, sessions can start; on exit every running session is stopped
    (its client disconnected, its executor closed)."""
    context.begin()
    async with anyio.create_task_group() as tg:
        context.runs.attach(tg)
        tg.start_soon(context.browsing.sweep)
        try:
            yield
        finally:
            context.stop()
            context.runs.attach(None)
            tg.cancel_scope.cancel()  # the sweeper; sessions were stopped above
            with anyio.CancelScope(shield=True):
                await context.browsing.aclose()


def new_token() -> str:
    """A fresh random token (32 bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


def create_app(
    *,
    token: str | None = None,
    context: WebContext | None = None,
    hosts: Iterable[str] = LOOPBACK_NAMES,
) -> Starlette:
    """The web UI and API as one ASGI app.

    ``token``: what every request must carry (default: a fresh random one, in
    ``app.state.token``). ``hosts``: the names the Host header may carry
    (DNS rebinding guard; loopback names by default). ``context``: settings,
    records, allowed project roots (default: the user's files and home).
    """
    from .pages import page_routes

    context = context if context is not None else WebContext()
    token = token if token is not None else new_token()

    @contextlib.asynccontextmanager
    async def app_lifespan(_: Any) -> AsyncIterator[None]:
        async with lifespan(context):
            yield

    app = Starlette(
        routes=[Mount("/api", app=api_router(context)), *page_routes(context)],
        middleware=[Middleware(TokenGuard, token=token, hosts=hosts)],
        lifespan=app_lifespan,
    )
    app.state.token = token
    app.state.rx = context
    return app
