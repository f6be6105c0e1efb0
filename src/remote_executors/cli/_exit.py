"""How a failed command ends: one ``error:`` line (JSON too with ``--json``) and an exit code.

The library's errors are imported only if one was raised (they pull in the
SDK's error classes), so commands that never fail stay quick to start.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback

import click

from ._output import colour_allowed

if sys.version_info < (3, 11):  # pragma: no cover - the builtin from 3.11
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found, unused-ignore]

__all__ = ["EXIT_CODES", "Failed", "exit_code", "quiet_broken_pipe", "report_failure"]

#: Exit codes: what kind of failure a non-zero status means.
EXIT_CODES = {
    "ok": 0,
    "failed": 1,  # the command ran and the answer is "no": a check failed, a session errored
    "usage": 2,  # bad arguments or input (click's own code for usage errors)
    "connection": 3,  # could not reach or log into the host
    "remote_setup": 4,  # reached the host, but it cannot run sessions (no claude, no dir)
    "sync": 5,  # a transcript sync did not complete (nothing lost), incl. conflicts
    "settings": 6,  # the settings file is unreadable or invalid
    "session_lost": 7,  # the link or process died mid-session; resume it
    "interrupted": 130,  # Ctrl-C (128 + SIGINT)
    "broken_pipe": 141,  # the reader went away (`| head`): 128 + SIGPIPE, as for other tools
}


class Failed(Exception):
    """A command-level "no" (not a library error): reported like one, with its own code."""

    def __init__(self, message: str, *, host: str = "", code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.host = host
        self.code = code


#: Lines of an error's raw diagnostic (e.g. ssh's stderr) shown under it.
_DETAIL_LINES = 6


def exit_code(exc: BaseException) -> int:
    """The code for a library error (1 for anything else)."""
    errors = sys.modules.get("remote_executors.errors")
    settings = sys.modules.get("remote_executors.settings")
    if errors is None:
        return EXIT_CODES["failed"]
    table: list[tuple[type[BaseException], str]] = [
        (errors.InvalidInput, "usage"),
        (errors.ConnectionFailed, "connection"),
        (errors.RemoteSetupError, "remote_setup"),
        (errors.SyncError, "sync"),
        (errors.ProcessLost, "session_lost"),
    ]
    if settings is not None:
        table.insert(0, (settings.SettingsError, "settings"))
    for kind, name in table:
        if isinstance(exc, kind):
            return EXIT_CODES[name]
    return EXIT_CODES["failed"]


def _leaf(exc: BaseException) -> BaseException:
    """The error inside task-group wrappers (the first one that says something)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _broken_pipe(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_broken_pipe(e) for e in exc.exceptions)
    return isinstance(exc, BrokenPipeError)


def quiet_broken_pipe() -> None:
    """Flush stdout; if the reader is gone, point stdout at /dev/null so the
    interpreter's own final flush cannot print a traceback, and exit 141."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
        sys.exit(EXIT_CODES["broken_pipe"])


def _stdout_to_devnull() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def _echo_err(text: str) -> None:
    with contextlib.suppress(BrokenPipeError):
        click.echo(text, err=True, color=colour_allowed())


def report_failure(ctx: click.Context, exc: BaseException) -> int:
    """Print what failed, in the caller's terms; return the exit code."""
    if _broken_pipe(exc):
        _stdout_to_devnull()
        return EXIT_CODES["broken_pipe"]
    leaf = _leaf(exc)
    obj = ctx.find_root().obj or {}
    if isinstance(leaf, KeyboardInterrupt):
        _echo_err("interrupted")
        return EXIT_CODES["interrupted"]
    errors = sys.modules.get("remote_executors.errors")
    host = detail = ""
    if errors is not None and isinstance(leaf, errors.ExecutorError):
        from ._hints import cli_message

        message, detail, host = cli_message(leaf), leaf.detail.strip(), leaf.host
        code = exit_code(leaf)
    elif isinstance(leaf, Failed):
        message, host, code = leaf.message, leaf.host, leaf.code
    else:
        message = f"unexpected {type(leaf).__name__}: {leaf}"
        code = EXIT_CODES["failed"]
    if obj.get("json"):
        data = {
            "type": "error",
            "error": "CommandFailed" if isinstance(leaf, Failed) else type(leaf).__name__,
            "host": host or None,
            "message": message,
            "detail": detail or None,
            "exit_code": code,
        }
        for extra in ("session_id", "copies"):  # SessionConflict: what a script resolves
            if getattr(leaf, extra, None):
                data[extra] = getattr(leaf, extra)
        try:
            click.echo(json.dumps(data, ensure_ascii=False))
        except BrokenPipeError:
            _stdout_to_devnull()
    if obj.get("debug"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    lines = message.strip().splitlines() or [type(leaf).__name__]
    _echo_err(click.style("error: ", fg="red", bold=True) + lines[0])
    if not obj.get("debug"):
        for line in lines[1:]:
            _echo_err(f"  {line}")
        for line in detail.splitlines()[-_DETAIL_LINES:]:
            _echo_err(click.style(f"  | {line}", fg="bright_black"))
    return code
