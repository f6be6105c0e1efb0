"""Printing for the command line: JSON for scripts, readable lines for people.

Colours only on a terminal, and never with ``NO_COLOR`` set (https://no-color.org)
or ``TERM=dumb``; the transient progress line only on a terminal that can
erase a line (not ``TERM=dumb``) and never in ``--json`` mode.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

import click

__all__ = ["Output", "colour_allowed", "interactive"]

_STATUS_STYLE = {
    "ok": ("✔", "green"),
    "warn": ("!", "yellow"),
    "fail": ("✘", "red"),
    "skip": ("-", "bright_black"),
}


def _dumb() -> bool:
    return os.environ.get("TERM", "") == "dumb"


def colour_allowed(stream: IO[str] | None = None) -> bool | None:
    """click's ``color=``: False when the user asked for none, else None (click decides
    by whether ``stream`` is a terminal)."""
    if os.environ.get("NO_COLOR") or _dumb():
        return False
    return None


def interactive(stream: IO[str]) -> bool:
    """A terminal that can redraw a line (for progress)."""
    try:
        return stream.isatty() and not _dumb()
    except ValueError:  # closed
        return False


class Output:
    """Where a command's results go; ``json_mode`` prints JSON only.

    Registers ``json_mode`` with the command's context, so a failure is
    reported as JSON on stdout too (see :mod:`._exit`).
    """

    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.tty = interactive(sys.stdout)
        self.colour = colour_allowed()
        self._progress = False
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.find_root().ensure_object(dict)["json"] = json_mode

    def json(self, data: Any) -> None:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))

    def json_line(self, data: Any) -> None:
        """One compact JSON object on one line (streams: one per message)."""
        click.echo(json.dumps(data, ensure_ascii=False, default=str))

    def line(self, text: str = "", **style: Any) -> None:
        if not self.json_mode:
            self.clear_progress()
            click.echo(click.style(text, **style) if style else text, color=self.colour)

    def status(self, status: str, text: str, hint: str = "") -> None:
        mark, colour = _STATUS_STYLE.get(status, ("?", "white"))
        self.line(f"{click.style(mark, fg=colour)} {text}")
        if hint and status in ("warn", "fail"):
            for hint_line in hint.strip().splitlines():
                self.line(f"    {hint_line}", fg="bright_black")

    def progress(self, text: str) -> None:
        """A transient "working on it" line, on a terminal only (replaced by the next)."""
        if self.json_mode or not self.tty:
            return
        width = max(20, shutil.get_terminal_size().columns - 1)
        shown = f"… {text}"[:width]
        click.echo("\r\x1b[2K" + click.style(shown, fg="bright_black"), nl=False, color=self.colour)
        self._progress = True

    def clear_progress(self) -> None:
        if self._progress:
            click.echo("\r\x1b[2K", nl=False)
            self._progress = False

    def table(self, rows: Sequence[Mapping[str, str]], columns: Sequence[str]) -> None:
        if self.json_mode:
            return
        widths = {c: max([len(c)] + [len(r.get(c, "")) for r in rows]) for c in columns}
        self.line("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip(), bold=True)
        for row in rows:
            self.line("  ".join(row.get(c, "").ljust(widths[c]) for c in columns).rstrip())
