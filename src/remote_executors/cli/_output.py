"""Printing for the command line: JSON for scripts, readable lines for people.

Colours and transient progress lines only go to a terminal (click strips
styles when stdout is not one; progress is skipped entirely).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

__all__ = ["Output"]

_STATUS_STYLE = {
    "ok": ("✔", "green"),
    "warn": ("!", "yellow"),
    "fail": ("✘", "red"),
    "skip": ("-", "bright_black"),
}


class Output:
    """Where a command's results go; ``json_mode`` prints one JSON document."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.tty = sys.stdout.isatty()
        self._progress = False

    def json(self, data: Any) -> None:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))

    def line(self, text: str = "", **style: Any) -> None:
        if not self.json_mode:
            self.clear_progress()
            click.echo(click.style(text, **style) if style else text)

    def status(self, status: str, text: str, hint: str = "") -> None:
        mark, colour = _STATUS_STYLE.get(status, ("?", "white"))
        self.line(f"{click.style(mark, fg=colour)} {text}")
        if hint and status in ("warn", "fail"):
            self.line(f"    {hint}", fg="bright_black")

    def progress(self, text: str) -> None:
        """A transient "working on it" line, on a terminal only."""
        if self.json_mode or not self.tty:
            return
        click.echo(click.style(f"… {text}", fg="bright_black") + "\r", nl=False)
        self._progress = True

    def clear_progress(self) -> None:
        if self._progress:
            click.echo("\r\x1b[2K", nl=False)
            self._progress = False

    def table(self, rows: Sequence[Mapping[str, str]], columns: Sequence[str]) -> None:
        if self.json_mode:
            return
        widths = {c: max([len(c)] + [len(r.get(c, "")) for r in rows]) for c in columns}
        self.line("  ".join(c.upper().ljust(widths[c]) for c in columns), bold=True)
        for row in rows:
            self.line("  ".join(row.get(c, "").ljust(widths[c]) for c in columns).rstrip())
