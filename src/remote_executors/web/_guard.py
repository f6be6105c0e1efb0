"""Who may talk to the server: token, Host header, cross-site writes.

A pure ASGI middleware in front of the whole app:

* The Host header must name an allowed host (loopback names by default), so a
  DNS-rebinding page whose name resolves to 127.0.0.1 is refused.
* Every request carries the token: ``Authorization: Bearer TOKEN``, or the
  ``rx_token`` cookie. A page visit with ``?token=TOKEN`` sets that cookie
  (HttpOnly, SameSite=Strict) and redirects to the same URL without it, so
  the token leaves the address bar and history.
* Requests that change something (anything but GET and HEAD) must carry the
  token in a header; the cookie alone is not enough (cross-site request
  forgery), and an ``Origin`` other than the server's own is refused.
* No CORS headers are ever sent: other origins' scripts cannot read answers.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["COOKIE", "LOOPBACK_NAMES", "TokenGuard"]

COOKIE = "rx_token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    ),
]


def _host_name(host_header: str) -> str:
    """``name`` of ``name:port`` / ``[v6]:port``, lower-cased."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class TokenGuard:
    """The middleware (see the module docs). ``hosts``: allowed Host names (any port)."""

    def __init__(self, app: ASGIApp, *, token: str, hosts: Iterable[str] = LOOPBACK_NAMES) -> None:
        if len(token) < 16:
            raise ValueError("the web UI's token must be at least 16 characters")
        self.app = app
        self.token = token
        self.hosts = frozenset(h.lower().strip("[]") for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope.get("method", "GET")
        host = headers.get("host", "")
        if _host_name(host) not in self.hosts:
            await _refuse(
                send,
                421,
                f"Host {host!r} is not this server's; open the URL printed "
                "by remote-executors ui (or start it with --host NAME).",
            )
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = query.get("token")
        if given is not None and method in _SAFE_METHODS:
            if not self._match(given):
                await _refuse(
                    send,
                    401,
                    "Wrong token: open the URL printed by remote-executors "
                    "ui (a new run prints a new token).",
                )
                return
            await _set_cookie_and_redirect(scope, send, self.token, query)
            return
        header_token = _bearer(headers.get("authorization", "")) or headers.get("x-rx-token")
        cookie_token = _cookie(headers.get("cookie", ""))
        if method not in _SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
                await _refuse(send, 403, f"Cross-site request from {origin} refused.")
                return
            if header_token is None:
                await _refuse(
                    send,
                    403 if cookie_token else 401,
                    "This request changes something: send the token in an "
                    "Authorization: Bearer header (the page does this).",
                )
                return
        token = header_token if header_token is not None else cookie_token
        if token is None or not self._match(token):
            await _refuse(
                send,
                401,
                "Missing or wrong token: open the URL printed by "
                "remote-executors ui, or send Authorization: Bearer TOKEN.",
            )
            return
        await self.app(scope, receive, _with_headers(send))

    def _match(self, token: str) -> bool:
        return secrets.compare_digest(token.encode("utf-8", "replace"), self.token.encode())


def _bearer(value: str) -> str | None:
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _cookie(value: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(value)
    except Exception:  # a malformed Cookie header is just no cookie
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
        await send(message)

    return wrapped


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *_SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _set_cookie_and_redirect(
    scope: Scope, send: Send, token: str, query: dict[str, str]
) -> None:
    rest = urlencode({k: v for k, v in query.items() if k != "token"})
    location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode("latin-1", "replace")),
                (b"set-cookie", cookie.encode()),
                (b"content-length", b"0"),
                *_SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
