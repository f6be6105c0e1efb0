"""The ``remote-executors`` command line (click).

Every command has ``--help``, most have ``--json`` for scripts. Every failure
prints one line that names the host, what failed and what to do, and exits
with a code that says what kind of failure it was (see :data:`EXIT_CODES`);
``--debug`` adds the traceback and debug logging.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import click

from .. import errors

__all__ = ["EXIT_CODES", "cli", "main"]

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
    "interrupted": 130,
}


def _exit_code(exc: BaseException) -> int:
    from ..settings import SettingsError

    table: list[tuple[type[BaseException], str]] = [
        (errors.InvalidInput, "usage"),
        (errors.ConnectionFailed, "connection"),
        (errors.RemoteSetupError, "remote_setup"),
        (errors.SyncError, "sync"),
        (SettingsError, "settings"),
        (errors.ProcessLost, "session_lost"),
    ]
    for kind, name in table:
        if isinstance(exc, kind):
            return EXIT_CODES[name]
    return EXIT_CODES["failed"]


class _Group(click.Group):
    """Turns library errors into one clear line and a meaningful exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_CODES["interrupted"])
        except errors.ExecutorError as exc:
            self._report(ctx, exc, exc.message)
            ctx.exit(_exit_code(exc))
        except Exception as exc:  # a bug or an unexpected environment problem
            self._report(ctx, exc, f"unexpected {type(exc).__name__}: {exc}")
            ctx.exit(EXIT_CODES["failed"])

    @staticmethod
    def _report(ctx: click.Context, exc: BaseException, message: str) -> None:
        debug = bool(ctx.obj and ctx.obj.get("debug"))
        if debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
        click.echo(click.style("error: ", fg="red", bold=True) + first, err=True)
        if not debug:
            rest = message.strip().splitlines()[1:]
            for line in rest:
                click.echo(f"  {line}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.version_option(package_name="remote-executors", prog_name="remote-executors")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Run Claude Code sessions on other machines over SSH, transcripts kept locally."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not debug:
        # Sync problems reach the user as status lines; the log repeats them.
        logging.getLogger("remote_executors.sync").setLevel(logging.ERROR)


def _register() -> None:
    from .check import check_command
    from .executors import executors
    from .run import run
    from .sessions import sessions
    from .sync import sync

    for command in (executors, check_command, run, sessions, sync):
        cli.add_command(command)


_register()


def main() -> None:
    """Console script entry point."""
    cli(prog_name="remote-executors")
