"""The docs say what the code does: dependencies, commands, options, exit codes, check steps."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from remote_executors._check import TITLES
from remote_executors.cli import EXIT_CODES, cli

ROOT = Path(__file__).parents[2]
CLI_DOC = (ROOT / "docs" / "cli.md").read_text()


def _commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    found: dict[str, click.Command] = {}
    for name in cli.list_commands(ctx):  # type: ignore[attr-defined]
        command = cli.get_command(ctx, name)  # type: ignore[attr-defined]
        assert command is not None
        found[name] = command
        if isinstance(command, click.Group):
            for sub, subcommand in command.commands.items():
                found[f"{name} {sub}"] = subcommand
    return found


def test_getting_started_installs_from_a_checkout_and_names_every_dependency() -> None:
    text = (ROOT / "docs" / "getting-started.md").read_text()
    assert "pip install -e ." in text  # what works while the package is unpublished
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for requirement in pyproject["project"]["dependencies"]:
        name = re.split(r"[<>=!~ \[]", requirement)[0]
        assert f"`{name}`" in text, f"getting-started does not name the dependency {name}"


def test_cli_doc_has_every_command_and_option() -> None:
    for name, command in _commands().items():
        assert f"remote-executors {name}" in CLI_DOC or f"## {name}" in CLI_DOC, name
        for param in command.params:
            for opt in getattr(param, "opts", []) + getattr(param, "secondary_opts", []):
                if opt.startswith("--") and opt != "--help":
                    assert opt in CLI_DOC, f"docs/cli.md does not mention {name} {opt}"


def test_cli_doc_lists_every_exit_code() -> None:
    table = CLI_DOC.split("## Exit codes", 1)[1]
    for name, code in EXIT_CODES.items():
        assert re.search(rf"^\| {code} \|", table, re.M), f"exit code {code} ({name})"


def test_every_check_step_is_documented() -> None:
    api = (ROOT / "docs" / "api.md").read_text()
    for name, title in TITLES.items():
        assert f"`{name}`" in api, name
        assert title.lower() in " ".join(CLI_DOC.split()).lower(), title


def test_readme_closes_the_executor_in_its_example() -> None:
    example = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert example and "async with rx.SSHExecutor(" in example.group(1)
