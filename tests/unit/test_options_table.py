"""docs/options.md has a row for every ``ClaudeAgentOptions`` field, backed by a real test.

When claude-agent-sdk adds a field, this fails until someone decides what the
field does through an executor (works, shipped, mapped or refused), writes the
row, and names the end-to-end test that shows it.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import claude_agent_sdk
from claude_agent_sdk import ClaudeAgentOptions

import _isolated_ast

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "options.md"
ROW = re.compile(r"^\| `(?P<field>[a-z_]+)` \|(?P<middle>.*)\| `(?P<test>tests/[^`]+)` \|$")
OUTCOMES = ("works", "shipped", "mapped", "refused")


def rows() -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for line in TABLE.read_text().splitlines():
        match = ROW.match(line)
        if match:
            assert match["field"] not in found, f"two rows for {match['field']}"
            found[match["field"]] = (match["middle"], match["test"])
    return found


def test_every_field_has_a_row() -> None:
    fields = {f.name for f in dataclasses.fields(ClaudeAgentOptions)}
    missing = fields - set(rows())
    assert not missing, (
        f"claude-agent-sdk {claude_agent_sdk.__version__} has ClaudeAgentOptions fields "
        f"with no row in docs/options.md: {sorted(missing)}. Find out what each does "
        "through an executor, make it work or refuse it, and add the row and its test."
    )


def test_every_row_says_an_outcome_and_names_a_test_that_exists() -> None:
    for field, (middle, ref) in rows().items():
        outcome = middle.split("|")[0].strip()
        assert outcome.startswith(OUTCOMES), f"{field}: outcome {outcome!r}"
        path, _, name = ref.partition("::")
        source = (ROOT / path).read_text()
        assert re.search(rf"^\s*(async )?def {name}\(", source, re.M), f"{field}: no {ref}"


def test_passed_through_rows_are_the_ones_the_argv_oracle_runs() -> None:
    module = _isolated_ast.parse((ROOT / "tests/e2e/test_options.py").read_text())
    [table] = [
        node.value
        for node in module.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "PASSED_THROUGH"
    ]
    assert isinstance(table, ast.Dict)
    checked = {k.value for k in table.keys if isinstance(k, ast.Constant)}
    claimed = {
        f for f, (_, ref) in rows().items() if ref.endswith("test_passed_through_as_locally")
    }
    assert claimed <= checked, claimed - checked
