"""``remote-executors check HOST``: the "Test connection" button."""

from __future__ import annotations

import anyio
import click

from ..check import CheckReport, CheckStep, check
from ..settings import executor_for
from ._output import Output


@click.command("check")
@click.argument("host")
@click.option("--cwd", help="Also check this local project directory's counterpart on HOST.")
@click.option("--timeout", default=20.0, show_default=True, help="Seconds per remote step.")
@click.option("--json", "json_mode", is_flag=True, help="Print the report as JSON.")
def check_command(host: str, cwd: str | None, timeout: float, json_mode: bool) -> None:
    """Check that HOST can run Claude Code sessions, step by step.

    Exits 0 when every step passed (warnings allowed), 1 when one failed.
    """
    out = Output(json_mode=json_mode)

    def shown(step: CheckStep) -> None:
        detail = f" ({step.detail})" if step.detail else ""
        out.status(step.status, f"{step.title}{detail}", step.hint)
        out.progress("checking…")

    async def go() -> CheckReport:
        executor = executor_for(host)
        try:
            out.progress(f"checking {host}…")
            return await check(executor, cwd, timeout=timeout, on_step=shown)
        finally:
            await executor.aclose()

    report = anyio.run(go)
    out.clear_progress()
    if json_mode:
        out.json(report.to_dict())
    elif report.ok:
        out.line(f"{host} is ready.", fg="green")
    else:
        out.line(f"{host} is not ready: fix the failed steps above.", fg="red")
    if not report.ok:
        raise click.exceptions.Exit(1)
