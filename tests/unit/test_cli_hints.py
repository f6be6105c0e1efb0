"""Every hint the library gives in Python terms has a command-line form (cli/_hints.py).

The messages come from the library's own source: every string in it that
tells a caller what to pass (``SSHExecutor(..., x=…)``, ``ClaudeAgentOptions(…)``)
is rewritten by ``cli_terms`` and nothing Python-shaped may be left. A new
message of that kind fails here until the command line can say it too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import _isolated_ast
import remote_executors
from remote_executors.cli._hints import PYTHON_RE, cli_terms
from remote_executors.executors.ssh._errors import connect_error

SRC = Path(remote_executors.__file__).parent
#: What a hint to a Python caller looks like in the source (a call with an argument).
PYTHON_HINT = re.compile(
    r"(SSHExecutor|ClaudeAgentOptions|SessionSync)\([^)]*=|\brun\(\.\.\.|\buse (update|add) to\b"
    r"|\bstart_timeout="
)


def _render(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's with each ``{…}`` as a sample value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                parts.append("'/some/path'" if value.conversion == ord("r") else "box")
        return "".join(parts)
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def library_hints() -> list[tuple[str, str]]:
    """(where, message text) for each non-docstring string in the library with a Python hint."""
    hints = []
    paths = [p for p in sorted(SRC.rglob("*.py")) if p.parts[-2] not in ("cli", "testing")]
    trees = _isolated_ast.parse_all([p.read_text() for p in paths])
    for path, tree in zip(paths, trees, strict=True):
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):  # its parts are read with it
                skip.update(id(part) for part in node.values)
            if id(node) in skip:
                continue
            text = _render(node)
            if text is not None and PYTHON_HINT.search(text):
                hints.append((f"{path.relative_to(SRC)}:{node.lineno}", text))
    return hints


#: Messages that never reach someone at the command line (the option, or the
#: API, is not reachable from it). Keep this short; say why for each.
NOT_FROM_THE_COMMAND = (
    "SftpSessionSync needs SSHExecutor",  # the CLI never builds a fabric-only sync
    "SFTP needs SSHExecutor",  # same: the CLI uses the default backend
)


def test_the_library_has_python_hints_to_rewrite() -> None:
    """Guards the scan itself: it does find the hints it is about."""
    texts = " ".join(text for _, text in library_hints())
    for known in ("accept_new_host_keys=True", "path_map=", "claude_path=", "fork_session=True"):
        assert known in texts


@pytest.mark.parametrize(("where", "text"), library_hints(), ids=lambda v: str(v)[:60])
def test_every_python_hint_has_a_command_line_form(where: str, text: str) -> None:
    if any(marker in text for marker in NOT_FROM_THE_COMMAND):
        pytest.skip(f"{where}: not reachable from the command line")
    said = cli_terms(text, host="box", session_id="2f1c0d9e-0000-4000-8000-000000000000")
    assert not PYTHON_RE.search(said), f"{where}: {said}"


@pytest.mark.parametrize(
    "kind",
    [
        "host-key-changed",
        "host-key-unknown",
        "auth",
        "key-encrypted",
        "resolve",
        "refused",
        "timeout",
        "config",
        "other",
    ],
)
def test_connection_hints(kind: str) -> None:
    said = cli_terms(connect_error(kind, "box").message, host="box")
    assert not PYTHON_RE.search(said), said
    if kind == "host-key-unknown":
        assert "remote-executors executors add box --accept-new-host-keys" in said


def test_rewrites_use_the_errors_own_values() -> None:
    said = cli_terms(
        "Create it there, or map the local directory to an existing one with "
        "SSHExecutor(..., path_map={'/home/me/my shop': '/path/on/box'}).",
        host="box",
    )
    assert "--path-map '/home/me/my shop=/path/on/box'" in said  # quoted for a shell
    conflict = cli_terms(
        "Continue from one of them with ClaudeAgentOptions(resume=..., fork_session=True), or",
        host="box",
        session_id="abc",
    )
    assert '`remote-executors run --resume abc --fork "PROMPT"`' in conflict
