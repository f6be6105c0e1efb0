"""The JSON API (mounted at ``/api``): settings, checks, sessions, live events.

Every handler answers JSON; a problem is a 4xx/5xx with ``{"error": message}``
(and ``problems`` for a bad settings list) and changes nothing. The schema is
served at ``/api/openapi.json`` (see :mod:`._openapi`).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from ..errors import ExecutorError, InvalidInput
from ..executors.registry import short_name
from ..paths import validate_session_id
from ..records import LOCAL
from ..settings import SettingsError
from ._context import OutsideRoots, WebContext
from ._follow import first_value, follow_entries, read_entries
from ._replace import problems_in, replace_executors
from ._runs import Run, StartFailed
from ._sessions import transcript_path
from ._stream import Emit, Streamed

__all__ = ["BROWSE_SECONDS", "MAX_BODY", "MAX_COMPLETIONS", "MAX_ENTRIES", "api_router"]

#: Largest request body read (prompts included).
MAX_BODY = 1024 * 1024
#: Entries one GET of a transcript returns (the newest; ``truncated`` says so).
MAX_ENTRIES = 2000
#: Directories one completion answers with (a picker shows no more).
MAX_COMPLETIONS = 100
#: Longest a directory listing or completion may take on the host.
BROWSE_SECONDS = 10.0
#: Seconds between SSE keep-alive comments.
_KEEPALIVE = 15.0


class _Problem(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _body(request: Request) -> Any:
    """The JSON body, at most :data:`MAX_BODY` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise _Problem(413, f"Request body over {MAX_BODY} bytes.")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise _Problem(413, f"Request body over {MAX_BODY} bytes.")
    try:
        return json.loads(data) if data else None
    except (ValueError, RecursionError) as exc:
        raise _Problem(400, f"Malformed JSON body: {exc}.") from None


def _object(body: Any, *required: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _Problem(400, "Expected a JSON object body.")
    for key in required:
        value = body.get(key)
        if not isinstance(value, str) or not value.strip():
            raise _Problem(400, f"{key!r} is required: a non-empty string.")
    return body


def _context(request: Request) -> WebContext:
    context: WebContext = request.scope["rx"]  # set by api_router's wrapper
    return context


def _configured(context: WebContext, name: str) -> str:
    """``name`` if it is ``local`` or a configured executor; 400/404 otherwise."""
    if name == LOCAL:
        return name
    problems = problems_in([name])
    if problems:
        raise _Problem(400, problems[0]["error"])
    if name not in context.settings.load().hosts:
        raise _Problem(
            404,
            f"Executor {name!r} is not configured: add it in the settings first "
            "(PUT /api/settings/remote-executors).",
        )
    return name


def _executor(context: WebContext, name: str) -> Any:
    from ..executors.local import LocalExecutor
    from ..settings import executor_for

    return LocalExecutor() if name == LOCAL else executor_for(name, context.settings)


def _executor_in(context: WebContext, name: str, project: str, remote_cwd: object) -> Any:
    """``name``'s executor with ``project`` mapped to ``remote_cwd`` there (the
    directory picked in the form); the mapping is part of the spec the session
    is recorded with, so its resumes run there too."""
    from ..executors.ssh import SSHExecutor

    if not isinstance(remote_cwd, str):
        raise _Problem(400, "remote_cwd must be a string: a directory on the executor's host.")
    entry = context.settings.load().get(name)
    if name == LOCAL or entry is None or entry.is_spec:
        raise _Problem(
            400,
            f"{name} runs sessions in the project directory itself; a directory on the "
            "host (remote_cwd) is for ssh executors.",
        )
    # The project itself is the longest prefix there is: the configured map has no
    # say for this session's cwd, so the recorded spec carries only the pick.
    return SSHExecutor(entry.host, **{**entry.options(), "path_map": {project: remote_cwd}})


def _project(context: WebContext, cwd: object) -> str:
    try:
        return context.project(cwd)
    except OutsideRoots as exc:
        raise _Problem(400, str(exc)) from None


def _session_id(request: Request) -> str:
    try:
        return validate_session_id(request.path_params["session_id"])
    except InvalidInput as exc:
        raise _Problem(400, exc.message) from None


def _session_cwd(context: WebContext, sid: str) -> str | None:
    run = context.runs.get(sid)
    if run is not None:
        return run.cwd
    record = context.records.get(sid)
    return record.local_cwd if record is not None else None


def _session_file(context: WebContext, sid: str) -> tuple[str | None, Any]:
    cwd = _session_cwd(context, sid)
    path = transcript_path(sid, cwd)
    if path is None or (cwd is None and not path.is_file()):
        raise _Problem(404, f"No session {sid} on this machine.")
    if cwd is None:
        # Only the projects dir names the project; its cwd is in the entries.
        cwd = first_value(path, "cwd")
    if cwd is not None:
        try:
            context.project(cwd)
        except OutsideRoots as exc:
            raise _Problem(403, str(exc)) from None
    return cwd, path


# -- settings -----------------------------------------------------------------


async def get_settings(request: Request) -> Response:
    return JSONResponse(_context(request).settings.load().hosts)


async def put_settings(request: Request) -> Response:
    body = await _body(request)
    problems = problems_in(body)
    if problems:
        return _error(
            400,
            "The list was not saved: " + "; ".join(p["error"] for p in problems),
            problems=problems,
        )
    return JSONResponse(replace_executors(_context(request).settings, body))


async def list_executors(request: Request) -> Response:
    context = _context(request)
    hosts = context.settings.list()
    return JSONResponse(
        [{"name": LOCAL, "label": "Local (this machine)"}]
        + [{"name": h.host, "label": h.host, "options": h.options()} for h in hosts]
    )


# -- check --------------------------------------------------------------------


async def check_executor(request: Request) -> Response:
    from .._check import TITLES, check

    context = _context(request)
    name = _configured(context, request.path_params["name"])
    body = await _body(request)
    cwd = None
    if body is not None:
        cwd = _object(body).get("cwd")
        if cwd is not None:
            cwd = _project(context, cwd)
    executor = _executor(context, name)

    async def produce(emit: Emit) -> None:
        send, receive = anyio.create_memory_object_stream[Any](len(TITLES) + 1)
        try:
            async with anyio.create_task_group() as tg:

                async def run() -> None:
                    async with send:
                        report = await check(
                            executor, cwd, on_step=lambda step: send.send_nowait(step)
                        )
                        send.send_nowait(report)

                tg.start_soon(run)
                async with receive:
                    async for item in receive:
                        if hasattr(item, "steps"):
                            line = {"done": True, "host": item.host, "ok": item.ok}
                        else:
                            line = {
                                "step": item.name,
                                "title": item.title,
                                "status": item.status,
                                "detail": item.detail,
                                "hint": item.hint,
                                "seconds": round(item.seconds, 3),
                            }
                        await emit(json.dumps(line).encode() + b"\n")
        finally:
            with anyio.CancelScope(shield=True):
                await executor.aclose()

    return Streamed(produce, media_type="application/x-ndjson")  # type: ignore[return-value]


# -- browsing a host -------------------------------------------------------------


async def list_directories(request: Request) -> Response:
    """``?path=~/code`` lists a directory on the executor's machine (``ls``);
    ``&complete=1`` completes ``path`` as a partial one; ``&hidden=1`` adds dot names.
    The executor stays open a while for the next request (see :mod:`._browsing`)."""
    from ..errors import RemotePathNotFound

    context = _context(request)
    name = _configured(context, request.path_params["name"])
    if name == LOCAL:
        raise _Problem(400, "This machine's directories are picked in the cwd field itself.")
    query = request.query_params
    path = query.get("path") or "~"
    hidden = query.get("hidden") == "1"
    try:
        async with context.browsing.use(name, lambda: _executor(context, name)) as executor:
            return await _browse(executor, path, hidden=hidden, complete=query.get("complete"))
    except RemotePathNotFound as exc:
        raise _Problem(404, exc.message) from None


async def _browse(executor: Any, path: str, *, hidden: bool, complete: str | None) -> Response:
    from ..browse import complete_dirs, list_dir

    if complete == "1":
        found = await complete_dirs(
            executor, path, hidden=hidden, limit=MAX_COMPLETIONS, timeout=BROWSE_SECONDS
        )
        return JSONResponse(
            {
                "completions": [c.path for c in found],
                "entries": [{"path": c.path, "has_sessions": c.has_sessions} for c in found],
            }
        )
    listing = await list_dir(executor, path, hidden=hidden, timeout=BROWSE_SECONDS)
    return JSONResponse(
        {
            "host": listing.host,
            "path": listing.path,
            "has_sessions": listing.has_sessions,
            "truncated": listing.truncated,
            "entries": [
                {"name": e.name, "dir": e.is_dir, "has_sessions": e.has_sessions}
                for e in listing.entries
            ],
        }
    )


# -- sessions -----------------------------------------------------------------


async def list_sessions(request: Request) -> Response:
    context = _context(request)
    project = _project(context, request.query_params.get("cwd") or context.default_cwd)
    rows = await context.sessions(project)
    return JSONResponse({"cwd": project, "run_on": context.run_on.get(project), "sessions": rows})


def _run_info(run: Run | None) -> dict[str, Any] | None:
    return None if run is None else run.snapshot()


async def get_session(request: Request) -> Response:
    context = _context(request)
    sid = _session_id(request)
    cwd, path = _session_file(context, sid)
    entries, count, offset = await anyio.to_thread.run_sync(
        functools.partial(read_entries, path, keep=MAX_ENTRIES)
    )
    record = context.records.get(sid)
    return JSONResponse(
        {
            "session_id": sid,
            "cwd": cwd,
            "executor": short_name(record.executor) if record is not None else LOCAL,
            "run": _run_info(context.runs.get(sid)),
            "entries": entries,
            "truncated": count > len(entries),
            "offset": offset,
        }
    )


async def session_events(request: Request) -> Response:
    """SSE: ``entries`` (new lines of the local transcript; ``id`` is the offset to
    resume from), ``live`` (messages of a turn this server runs, before they
    land locally) and ``state`` (running / idle, permission prompts)."""
    context = _context(request)
    sid = _session_id(request)
    _, path = _session_file(context, sid)
    raw = request.headers.get("last-event-id") or request.query_params.get("offset") or "0"
    if not raw.isdigit():
        raise _Problem(400, "offset must be a byte offset (a whole number).")
    offset = int(raw)

    async def produce(emit: Emit) -> None:
        async def event(kind: str, data: Any, event_id: str | None = None) -> None:
            head = f"event: {kind}\n" + (f"id: {event_id}\n" if event_id else "")
            await emit((head + f"data: {json.dumps(data)}\n\n").encode())

        async with anyio.create_task_group() as tg:

            async def entries() -> None:
                async for batch in follow_entries(path, offset):
                    await event("entries", batch, None)

            async def state() -> None:
                version, seq = -1, 0
                while True:
                    run = context.runs.get(sid)
                    if run is None:
                        await anyio.sleep(0.25)  # a turn may start later
                        continue
                    if run.version != version:
                        version = run.version
                        await event("state", run.snapshot())
                        fresh = run.live_after(seq)
                        if fresh:
                            seq = fresh[-1][0]
                            await event("live", [entry for _, entry in fresh])
                    with anyio.move_on_after(_KEEPALIVE):
                        await run.changed(version)

            async def keepalive() -> None:
                while True:
                    await anyio.sleep(_KEEPALIVE)
                    await emit(b": keep-alive\n\n")

            await emit(b"retry: 1000\n\n")
            tg.start_soon(entries)
            tg.start_soon(state)
            tg.start_soon(keepalive)
            await context.until_stopping()  # the server stops: end the stream
            tg.cancel_scope.cancel()

    return Streamed(produce, media_type="text/event-stream")  # type: ignore[return-value]


async def _start(
    context: WebContext, prompt: str, cwd: str, name: str, executor: Any, resume: str | None
) -> Run:
    """A session (new, or ``resume``'s next turn) whose tool permissions the page answers."""
    from claude_agent_sdk import ClaudeAgentOptions

    def options_for(run: Run) -> Any:
        return ClaudeAgentOptions(cwd=cwd, resume=resume, can_use_tool=run.can_use_tool)

    return await context.runs.start(
        prompt=prompt, options_for=options_for, executor=executor, executor_name=name, cwd=cwd
    )


async def start_session(request: Request) -> Response:
    context = _context(request)
    body = _object(await _body(request), "prompt", "cwd", "executor")
    cwd = _project(context, body["cwd"])
    name = _configured(context, body["executor"])
    remote_cwd = body.get("remote_cwd")
    if remote_cwd is None or remote_cwd == "":
        executor = _executor(context, name)
    else:
        executor = _executor_in(context, name, cwd, remote_cwd)
    run = await _start(context, body["prompt"], cwd, name, executor, None)
    context.run_on.remember(cwd, name)  # only a choice that started a session
    return JSONResponse(
        {"session_id": run.session_id, "executor": name, "cwd": cwd, "run": run.snapshot()},
        status_code=201,
    )


async def send_message(request: Request) -> Response:
    context = _context(request)
    sid = _session_id(request)
    body = _object(await _body(request), "prompt")
    run = context.runs.get(sid)
    if run is not None and run.state in ("idle", "running"):
        await run.send(body["prompt"])
        return JSONResponse({"session_id": sid, "run": run.snapshot()}, status_code=202)
    cwd, _ = _session_file(context, sid)
    if cwd is None:
        raise _Problem(409, f"Session {sid}'s project directory is not known; cannot resume.")
    record = context.records.get(sid)
    name = short_name(record.executor) if record is not None else LOCAL
    # Where it last ran: the recorded host with its configured options (None: local).
    executor = None if name != LOCAL else _executor(context, LOCAL)
    run = await _start(context, body["prompt"], cwd, name, executor, sid)
    return JSONResponse({"session_id": sid, "run": run.snapshot()}, status_code=202)


async def interrupt(request: Request) -> Response:
    context = _context(request)
    sid = _session_id(request)
    run = context.runs.get(sid)
    if run is None:
        raise _Problem(409, f"Session {sid} is not running in this server.")
    await run.interrupt()
    return JSONResponse({"session_id": sid, "run": run.snapshot()})


async def list_permissions(request: Request) -> Response:
    run = _context(request).runs.get(_session_id(request))
    return JSONResponse([] if run is None else [p.to_dict() for p in run.prompts.values()])


async def answer_permission(request: Request) -> Response:
    context = _context(request)
    sid = _session_id(request)
    body = _object(await _body(request), "decision")
    decision = body["decision"]
    if decision not in ("allow", "deny"):
        raise _Problem(400, "decision must be 'allow' or 'deny'.")
    message = body.get("message", "")
    if not isinstance(message, str):
        raise _Problem(400, "message must be a string.")
    run = context.runs.get(sid)
    if run is None or not run.answer(
        request.path_params["prompt_id"], allow=decision == "allow", message=message
    ):
        raise _Problem(404, "No such permission prompt waiting (answered already?).")
    return JSONResponse({"session_id": sid, "decision": decision})


async def openapi(request: Request) -> Response:
    from ._openapi import SCHEMA

    return JSONResponse(SCHEMA)


# -- the router ---------------------------------------------------------------


def _wrap(handler: Any) -> Any:
    """Typed failures become their JSON answer; nothing is half-done by then."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except _Problem as exc:
            return _error(exc.status, exc.message, **exc.extra)
        except StartFailed as exc:
            return _error(exc.status, exc.message)
        except SettingsError as exc:
            return _error(500, exc.message)
        except InvalidInput as exc:
            return _error(400, exc.message)
        except ExecutorError as exc:
            return _error(502, exc.message)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


class _WithContext:
    """Puts the context into the scope so handlers find it when the router is mounted."""

    def __init__(self, app: Any, context: WebContext) -> None:
        self.app, self.context = app, context

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope["rx"] = self.context
        await self.app(scope, receive, send)


def routes() -> list[Route]:
    return [
        Route("/openapi.json", _wrap(openapi), methods=["GET"]),
        Route("/settings/remote-executors", _wrap(get_settings), methods=["GET"]),
        Route("/settings/remote-executors", _wrap(put_settings), methods=["PUT"]),
        Route("/executors", _wrap(list_executors), methods=["GET"]),
        Route("/executors/{name:str}/check", _wrap(check_executor), methods=["POST"]),
        Route("/executors/{name:str}/directories", _wrap(list_directories), methods=["GET"]),
        Route("/sessions", _wrap(list_sessions), methods=["GET"]),
        Route("/sessions", _wrap(start_session), methods=["POST"]),
        Route("/sessions/{session_id}", _wrap(get_session), methods=["GET"]),
        Route("/sessions/{session_id}/events", _wrap(session_events), methods=["GET"]),
        Route("/sessions/{session_id}/messages", _wrap(send_message), methods=["POST"]),
        Route("/sessions/{session_id}/interrupt", _wrap(interrupt), methods=["POST"]),
        Route("/sessions/{session_id}/permissions", _wrap(list_permissions), methods=["GET"]),
        Route(
            "/sessions/{session_id}/permissions/{prompt_id}",
            _wrap(answer_permission),
            methods=["POST"],
        ),
    ]


def api_router(context: WebContext) -> Any:
    """The API alone, as an ASGI app to mount (e.g. ``Mount("/api", app=...)``).

    It does no authentication: the host app's own does. Sessions start only
    while the context's runs are attached to a task group (see
    :func:`remote_executors.web.lifespan`).
    """
    return _WithContext(Router(routes=routes()), context)
