"""``remote-executors check HOST``: the "Test connection" button."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import click

from ._exit import EXIT_CODES
from ._hints import cli_terms
from ._hosts import HostType, Target
from ._output import Output

if TYPE_CHECKING:
    from .._check import CheckReport, CheckStep

#: A failed step -> the exit code ``run`` would give for the same problem.
_STEP_CODES = {
    "connect": "connection",
    "host_key": "connection",
    "auth": "connection",
    "claude": "remote_setup",
    "project": "remote_setup",
}


def exit_code_for(report: CheckReport) -> int:
    """0 when nothing failed, else the code of the first failed step's kind (1 by default)."""
    for step in report.steps:
        if step.status == "fail":
            return EXIT_CODES[_STEP_CODES.get(step.name, "failed")]
    return EXIT_CODES["ok"]


def _hint(step: CheckStep, host: str) -> str:
    if step.name == "connect" and step.status == "fail" and "resolve" in step.hint + step.detail:
        from ._aliases import is_known, unknown_alias_text

        if not is_known(host, None):
            return unknown_alias_text(host, None)
    return cli_terms(step.hint, host=host)


@click.command("check")
@click.argument("target", metavar="HOST", type=HostType(local_ok=True))
@click.option("--cwd", help="Also check this local project directory's counterpart on HOST.")
@click.option("--timeout", default=20.0, show_default=True, help="Seconds per remote step.")
@click.option("--json", "json_mode", is_flag=True, help="Print the report as JSON.")
def check_command(target: Target, cwd: str | None, timeout: float, json_mode: bool) -> None:
    """Check that HOST (or "local": this machine) can run Claude Code sessions, step by step.

    Exits 0 when no step failed (warnings allowed); else 3 when HOST could not
    be reached or logged into, 4 when it has no Claude CLI or project
    directory, 1 for any other failed step.
    """
    from .._check import check
    from ..executors.base import Executor
    from ..executors.local import LocalExecutor
    from ..settings import executor_for

    out = Output(json_mode=json_mode)
    host = target.alias
    name = host or "this machine"

    def shown(step: CheckStep) -> None:
        detail = f" ({step.detail})" if step.detail else ""
        out.status(step.status, f"{step.title}{detail}", _hint(step, host or "local"))
        out.progress("checking…")

    async def go() -> CheckReport:
        executor: Executor = LocalExecutor() if host is None else executor_for(host)
        try:
            out.progress(f"checking {name}…")
            return await check(executor, cwd, timeout=timeout, on_step=shown)
        finally:
            await executor.aclose()

    try:
        report = anyio.run(go)
    finally:
        out.clear_progress()
    code = exit_code_for(report)
    if json_mode:
        data: dict[str, Any] = report.to_dict()
        for step, shown_step in zip(report.steps, data["steps"], strict=True):
            shown_step["hint"] = _hint(step, host or "local")
        out.json({**data, "exit_code": code})
    elif report.ok:
        out.line(f"{name} is ready.", fg="green")
    else:
        out.line(f"{name} is not ready: fix the failed steps above.", fg="red")
    if code:
        raise click.exceptions.Exit(code)
