"""The pages: server-rendered HTML, one small script (``static/app.js``), no build step.

Everything user-controlled is escaped here (``html.escape``) and inserted as
text by the script, never as markup; the Content-Security-Policy allows only
this server's own script and style.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import InvalidInput
from ..paths import validate_session_id
from ..records import LOCAL
from ._context import OutsideRoots, WebContext

__all__ = ["page_routes"]

_STATIC = Path(__file__).with_name("static")


def _layout(request: Request, title: str, body: str, *, page: str) -> HTMLResponse:
    token = request.app.state.token
    nav = "".join(
        f'<a href="{href}"{" aria-current=page" if key == page else ""}>{label}</a>'
        for key, href, label in (
            ("sessions", "/", "Sessions"),
            ("settings", "/settings", "Settings"),
        )
    )
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="rx-token" content="{escape(token)}">
<title>{escape(title)} · remote-executors</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head><body data-page="{page}">
<header><nav aria-label="Main">{nav}</nav></header>
<main>{body}</main>
</body></html>"""
    )


def _picks_directory(name: str) -> bool:
    """A directory on the host can be picked for ssh aliases (a path_map entry)."""
    return name != LOCAL and "://" not in name


def _options(executors: list[str], chosen: str | None) -> str:
    out = []
    for name in [LOCAL, *executors]:
        label = "Local (this machine)" if name == LOCAL else name
        selected = " selected" if name == chosen else ""
        picks = " data-picks-directory" if _picks_directory(name) else ""
        out.append(f'<option value="{escape(name)}"{selected}{picks}>{escape(label)}</option>')
    return "".join(out)


def _when(iso: str) -> str:
    try:
        return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def _badge(row: dict[str, Any]) -> str:
    return (
        f'<span class="badge" tabindex="0" title="{escape(row["host_detail"])}" '
        f'aria-label="Ran on {escape(row["executor"])} ({escape(row["host_detail"])})">'
        f"{escape(row['executor'])}</span>"
    )


def _marks(row: dict[str, Any]) -> str:
    marks = [row["state"], *row["marks"]]
    return "".join(
        f'<span class="mark mark-{escape(m.replace(" ", "-"))}">{escape(m)}</span>' for m in marks
    )


async def sessions_page(request: Request) -> Response:
    context: WebContext = request.app.state.rx
    cwd = request.query_params.get("cwd") or context.default_cwd
    try:
        project = context.project(cwd)
    except OutsideRoots as exc:
        return _layout(
            request, "Sessions", f'<p role="alert">{escape(str(exc))}</p>', page="sessions"
        )
    rows = await context.sessions(project)
    executors = context.settings.load().hosts
    chosen = context.run_on.get(project) or LOCAL
    items = "".join(
        f'<li class="session"><a href="/sessions/{escape(r["session_id"])}">'
        f"{escape(r['title'] or r['session_id'])}</a> {_badge(r)} {_marks(r)}"
        f'<time datetime="{escape(r["updated"])}">{escape(_when(r["updated"]))}</time></li>'
        for r in rows
    )
    body = f"""
<h1>Sessions</h1>
<form id="project" method="get" action="/">
  <label for="cwd">Project directory</label>
  <div class="row"><input id="cwd" name="cwd" value="{escape(project)}" required>
  <button type="submit">Show</button></div>
</form>
<section aria-labelledby="new-h">
<h2 id="new-h">New session</h2>
<form id="new-session" data-cwd="{escape(project)}">
  <label for="run-on">Run on</label>
  <select id="run-on" name="executor">{_options(executors, chosen)}</select>
  <div id="remote-dir"{"" if _picks_directory(chosen) else " hidden"}>
  <label for="remote-cwd">Directory on the host</label>
  <input id="remote-cwd" name="remote_cwd" autocomplete="off" spellcheck="false"
    role="combobox" aria-autocomplete="list" aria-expanded="false"
    aria-controls="remote-cwd-options" aria-describedby="remote-cwd-status"
    placeholder="~/code/shop, code/shop or /srv/shop">
  <ul id="remote-cwd-options" role="listbox" aria-label="Directories on the host" hidden></ul>
  <label class="inline"><input type="checkbox" id="remote-hidden"> Show hidden directories</label>
  <p id="remote-cwd-status" class="hint" role="status" aria-live="polite">Empty: this
    project's own path there (as the executor maps it).</p>
  </div>
  <label for="prompt">Prompt</label>
  <textarea id="prompt" name="prompt" rows="3" required></textarea>
  <button type="submit">Start</button>
  <p class="status" role="status" aria-live="polite"></p>
</form>
</section>
<section aria-labelledby="list-h">
<h2 id="list-h">In {escape(project)}</h2>
{f'<ul class="sessions">{items}</ul>' if rows else "<p>No sessions in this project yet.</p>"}
</section>"""
    return _layout(request, "Sessions", body, page="sessions")


def _executor_item(name: str) -> str:
    """One configured executor (``name`` already escaped); hidden text labels the buttons."""
    hidden = '<span class="sr-only">'
    return (
        f'<li class="executor" data-name="{name}"><span class="name">{name}</span>'
        f'<button type="button" class="check">Test connection{hidden} to {name}</span></button>'
        f'<button type="button" class="remove">Remove{hidden} {name}</span></button>'
        f'<ol class="steps" aria-live="polite" aria-label="Test results for {name}"></ol></li>'
    )


async def settings_page(request: Request) -> Response:
    context: WebContext = request.app.state.rx
    hosts = context.settings.load().hosts
    items = "".join(_executor_item(escape(h)) for h in hosts)
    body = f"""
<h1>Remote executors</h1>
<p>Each is an ssh alias (a Host in ~/.ssh/config). Sessions can run on any of them.</p>
<ul id="executors">{items or '<li class="empty">None configured yet.</li>'}</ul>
<form id="add-executor">
  <label for="new-executor">Add an executor (ssh alias)</label>
  <div class="row"><input id="new-executor" name="name" required autocomplete="off">
  <button type="submit">Add</button></div>
  <p class="status" role="status" aria-live="polite"></p>
</form>"""
    return _layout(request, "Settings", body, page="settings")


async def session_page(request: Request) -> Response:
    try:
        sid = validate_session_id(request.path_params["session_id"])
    except InvalidInput as exc:
        return HTMLResponse(escape(exc.message), status_code=400)
    body = f"""
<h1>Session <code>{escape(sid)}</code></h1>
<p class="where"><span id="run-state" role="status" aria-live="polite"></span></p>
<ol id="transcript" data-session="{escape(sid)}" aria-label="Transcript"></ol>
<section id="permissions" aria-live="assertive" aria-label="Permission requests"></section>
<ul id="notices" aria-live="polite" aria-label="Notices"></ul>
<form id="send">
  <label for="prompt">Your message</label>
  <textarea id="prompt" name="prompt" rows="3" required></textarea>
  <div class="row"><button type="submit">Send</button>
  <button type="button" id="interrupt">Interrupt</button></div>
  <p class="status" role="status" aria-live="polite"></p>
</form>"""
    return _layout(request, f"Session {sid[:8]}", body, page="session")


def page_routes(context: WebContext) -> list[BaseRoute]:
    return [
        Route("/", sessions_page, methods=["GET"]),
        Route("/settings", settings_page, methods=["GET"]),
        Route("/sessions/{session_id}", session_page, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=_STATIC), name="static"),
    ]
