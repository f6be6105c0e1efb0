"""``remote-executors run PROMPT``: one session, streamed readably."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio
import click

from ._exit import EXIT_CODES, Failed
from ._hosts import HostType, Target
from ._output import Output
from ._render import Renderer

if TYPE_CHECKING:
    from ..executors.base import Executor

_PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")
#: How long the save after Ctrl-C may take (pull what the host wrote so far).
_SAVE_SECONDS = 20.0


def _executor(target: Target | None, resume: str | None) -> Executor:
    """``--on``'s machine; with ``--resume`` and no ``--on``, where the session last ran."""
    from ..executors.local import LocalExecutor
    from ..settings import executor_for

    if target is not None:
        return LocalExecutor() if target.alias is None else executor_for(target.alias)
    if resume is not None:
        from ..paths import validate_session_id
        from ..records import get_session_record

        record = get_session_record(validate_session_id(resume))
        if record is not None and record.is_remote:
            return executor_for(record.executor)
    return LocalExecutor()


def _recorded_cwd(resume: str | None) -> str | None:
    """The local directory a resumed session was recorded in (an imported one too)."""
    if resume is None:
        return None
    from ..paths import validate_session_id
    from ..records import get_session_record

    record = get_session_record(validate_session_id(resume))
    return record.local_cwd if record is not None else None


def _where(executor: Executor) -> str:
    from ..executors.base import shares_local_filesystem

    return "local" if shares_local_filesystem(executor) else executor.name


class _Session:
    """One ``run``: streams the session; on Ctrl-C stops it and keeps what exists."""

    def __init__(self, executor: Executor, render: Renderer, json_mode: bool) -> None:
        self.executor = executor
        self.render = render
        self.json_mode = json_mode
        self.interrupted = False
        self.saved: str | None = None  # after Ctrl-C: where the transcript so far is
        self._scope: anyio.CancelScope | None = None
        self._save_scope: anyio.CancelScope | None = None

    async def go(self, prompt: str, options: Any) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_ctrl_c)
                try:
                    await self._stream(prompt, options)
                    if self.interrupted:
                        # Shielded from the task group, cut short by a second Ctrl-C.
                        self._save_scope = anyio.CancelScope(shield=True)
                        with self._save_scope:
                            await self._save(options.cwd)
                finally:
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.executor.aclose()

    async def _watch_ctrl_c(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                if self.interrupted:
                    # A second Ctrl-C: no more waiting.
                    if self._save_scope is not None:
                        self._save_scope.cancel()  # skip the save, close as usual
                        continue
                    # Still stopping the session: leave now (the host's
                    # watchdog stops the remote process within seconds).
                    sys.stderr.write("\ninterrupted again: leaving without saving\n")
                    os._exit(EXIT_CODES["interrupted"])
                self.interrupted = True
                self.render.out.progress("interrupted: stopping the session…")
                if self._scope is not None:
                    self._scope.cancel()

    async def _stream(self, prompt: str, options: Any) -> None:
        from ..sdk import query
        from ._stream_json import to_stream_json

        out = self.render.out
        self._scope = anyio.CancelScope()
        if self.interrupted:  # Ctrl-C came before this scope existed
            self._scope.cancel()
        with self._scope:
            if self.render.host == "local":
                out.progress("starting Claude Code…")
            else:
                out.progress(f"connecting to {self.render.host}…")
            messages = query(prompt=prompt, options=options, executor=self.executor)
            async with aclosing(messages) as stream:
                async for message in stream:
                    if self.json_mode:
                        self.render.note(message)
                        out.json_line(to_stream_json(message))
                    else:
                        self.render.show(message)

    async def _save(self, cwd: str) -> None:
        """After Ctrl-C: pull what the host has of the session (and record it) now,
        rather than leave it invisible until someone syncs by hand."""
        from ..errors import ExecutorError
        from ..executors.base import shares_local_filesystem
        from ..sync import local_project_dir, pull_session

        sid = self.render.session_id
        if sid is None:
            return
        out = self.render.out
        if not shares_local_filesystem(self.executor):
            out.progress(f"saving session {sid} from {self.render.host}…")
            with anyio.move_on_after(_SAVE_SECONDS):
                try:
                    await pull_session(self.executor, cwd=cwd, session_id=sid)
                except ExecutorError as exc:
                    out.clear_progress()
                    click.echo(
                        f"could not fetch it from {self.render.host}: {exc.message}", err=True
                    )
        out.clear_progress()
        if (local_project_dir(cwd) / f"{sid}.jsonl").is_file():
            self.saved = str(local_project_dir(cwd) / f"{sid}.jsonl")


def _read_prompt(prompt: str) -> str:
    if prompt != "-":
        return prompt
    text = sys.stdin.read()
    if not text.strip():
        raise click.UsageError("PROMPT is '-' but nothing came on stdin.")
    return text


def _resume_command(sid: str, cwd: str) -> str:
    parts = ["remote-executors", "run", "--resume", sid]
    if os.path.realpath(cwd) != os.path.realpath(os.getcwd()):
        parts += ["--cwd", cwd]
    return shlex.join(parts) + ' "PROMPT"'


@click.command("run")
@click.argument("prompt")
@click.option(
    "--on",
    "target",
    type=HostType(local_ok=True),
    metavar="HOST",
    help='ssh alias to run on, or "local" for this machine (the default; with --resume: '
    "where the session last ran).",
)
@click.option(
    "--cwd",
    help="The local project directory (default: the current one; with --resume: the "
    "session's own).",
)
@click.option("--resume", "resume", metavar="SESSION_ID", help="Continue a session.")
@click.option(
    "--fork",
    is_flag=True,
    help="With --resume: continue under a new session id, leaving the original as it is "
    "(also the way on from a diverged session).",
)
@click.option(
    "--allow", "allowed", multiple=True, metavar="TOOL", help="Allow a tool (repeatable)."
)
@click.option(
    "--permission-mode", type=click.Choice(_PERMISSION_MODES), help="The CLI's permission mode."
)
@click.option(
    "--json", "json_mode", is_flag=True, help="One JSON object per message (stream-json)."
)
def run(
    prompt: str,
    target: Target | None,
    cwd: str | None,
    resume: str | None,
    fork: bool,
    allowed: tuple[str, ...],
    permission_mode: str | None,
    json_mode: bool,
) -> None:
    """Run a session with PROMPT (locally, or on --on HOST) and stream it.

    PROMPT "-" reads the prompt from stdin. With --resume and no --on, the
    session continues where it last ran. The last line says which session ran
    where. Exits 1 if the session ended in error, 5 if its transcript could
    not be brought in step (the warning says why), 130 on Ctrl-C (after
    saving what the session wrote so far and printing how to resume it).
    """
    from claude_agent_sdk import ClaudeAgentOptions

    if fork and resume is None:
        raise click.UsageError("--fork continues a session: give --resume SESSION_ID too.")
    prompt = _read_prompt(prompt)
    out = Output(json_mode=json_mode)
    cwd = cwd or _recorded_cwd(resume) or "."
    directory = os.path.abspath(os.path.expanduser(cwd))
    executor = _executor(target, resume)
    render = Renderer(out, _where(executor))
    options = ClaudeAgentOptions(
        cwd=directory,
        resume=resume,
        fork_session=fork,
        allowed_tools=list(allowed),
        permission_mode=permission_mode,  # type: ignore[arg-type]
    )
    session = _Session(executor, render, json_mode)
    try:
        anyio.run(session.go, prompt, options)
    finally:
        out.clear_progress()
    if session.interrupted:
        _interrupted(session, out, cwd)
    result = render.result
    if result is None:
        raise Failed(f"The session on {render.host} ended without a result.", host=render.host)
    unsynced = render.sync_failure is not None
    out.line(
        f"session {result.session_id} on {render.host} · {result.num_turns} turn(s)"
        + (f" · ${result.total_cost_usd:.4f}" if result.total_cost_usd else "")
        + (" · transcript not in step (see above)" if unsynced else ""),
        fg="red" if result.is_error else ("yellow" if unsynced else "green"),
    )
    if result.is_error:
        raise click.exceptions.Exit(EXIT_CODES["failed"])
    if unsynced:
        raise click.exceptions.Exit(EXIT_CODES["sync"])


def _interrupted(session: _Session, out: Output, cwd: str) -> None:
    sid, host = session.render.session_id, session.render.host
    if sid is None:
        message = f"interrupted before the session on {host} started; nothing to resume."
        resume = None
    elif session.saved is None:
        message = f"interrupted: session {sid} on {host} had written nothing yet."
        resume = None
    else:
        message = f"interrupted: session {sid} on {host}; its transcript so far is here."
        resume = _resume_command(sid, cwd)
    if out.json_mode:
        out.json_line({"type": "interrupted", "session_id": sid, "host": host, "resume": resume})
    click.echo(message, err=True)
    if resume is not None:
        click.echo(f"to continue it: {resume}", err=True)
    raise click.exceptions.Exit(EXIT_CODES["interrupted"])
