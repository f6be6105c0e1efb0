"""``ast.parse`` in a child interpreter, for tests that read source code.

CPython 3.11 before 3.11.9 keeps the AST converter's recursion count in state
shared by all threads (gh-106905). When another thread parses at the same
moment (a leftover thread formatting a traceback: 3.11's carets parse the
line), ``ast.parse`` fails with "AST constructor recursion depth mismatch".
A fresh thread does not help; a child process shares nothing.
"""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys

_CHILD = """
import ast, pickle, sys
sources = pickle.load(sys.stdin.buffer)
pickle.dump([ast.parse(s) for s in sources], sys.stdout.buffer)
"""


def parse_all(sources: list[str]) -> list[ast.Module]:
    """Each of ``sources`` parsed, in one child interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=pickle.dumps(sources),
        capture_output=True,
        check=True,
        timeout=60,
    )
    trees: list[ast.Module] = pickle.loads(done.stdout)
    return trees


def parse(source: str) -> ast.Module:
    return parse_all([source])[0]
