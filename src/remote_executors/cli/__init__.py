"""The ``remote-executors`` command line (click).

Every command has ``--help``, most have ``--json`` for scripts. Every failure
prints one line that names the host, what failed and what to do, and exits
with a code that says what kind of failure it was (see :data:`EXIT_CODES`);
``--debug`` (anywhere on the line) adds the traceback and debug logging.

Start-up is kept short: this module imports only click, each command's
module is imported when that command runs, and :func:`main` defers the SDK's
heavy package init (see :mod:`._sdk_deferred`).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

from ._exit import EXIT_CODES, report_failure

__all__ = ["EXIT_CODES", "cli", "main"]

#: Subcommand name -> "module:attribute", imported on first use.
_COMMANDS = {
    "executors": ".executors:executors",
    "check": ".check:check_command",
    "install": ".install:install",
    "ls": ".ls:ls",
    "run": ".run:run",
    "sessions": ".sessions:sessions",
    "sync": ".sync:sync",
    "ui": ".ui:ui",
}


def _configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    if not debug:
        # Sync problems reach the user as status lines; the log repeats them.
        logging.getLogger("remote_executors.sync").setLevel(logging.ERROR)
    else:
        logging.getLogger("remote_executors.sync").setLevel(logging.NOTSET)


def _set_debug(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().ensure_object(dict)["debug"] = True
        _configure_logging(True)


def _with_debug_option(command: click.Command) -> click.Command:
    """``--debug`` after the subcommand too (``run --debug …``), as before it."""
    if not any(p.name == "debug" for p in command.params):
        command.params.append(
            click.Option(
                ["--debug"],
                is_flag=True,
                expose_value=False,
                is_eager=True,
                callback=_set_debug,
                help="Show tracebacks and debug logging.",
            )
        )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_debug_option(sub)
    return command


class _Group(click.Group):
    """Imports commands lazily; turns failures into one clear line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name, __name__)
        command: click.Command = getattr(module, attribute)
        return _with_debug_option(command)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BaseException as exc:
            if not isinstance(exc, Exception | KeyboardInterrupt):
                raise  # SystemExit, GeneratorExit: not ours to report
            ctx.exit(report_failure(ctx, exc))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.version_option(package_name="remote-executors", prog_name="remote-executors")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Run Claude Code sessions on other machines over SSH, transcripts kept locally.

    HOST is an ssh alias (a Host in ~/.ssh/config), or "local" for this machine
    (write ssh://local for an ssh alias that is called local).
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = ctx.obj.get("debug", False) or debug
    _configure_logging(ctx.obj["debug"])


def main() -> None:
    """Console script entry point."""
    from ._exit import quiet_broken_pipe
    from ._sdk_deferred import defer

    defer()
    try:
        cli(prog_name="remote-executors")
    finally:
        quiet_broken_pipe()
