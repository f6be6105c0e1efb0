"""The Claude Code command line the SDK builds, read by meaning rather than by position.

The SDK spells options in more than one way and changes its mind between
releases: ``--model value`` became ``--model=value`` in 0.2.190, while
``--settings`` and ``--mcp-config`` still go as two arguments (and as one
when the value starts with ``-``). Everything that inspects or rewrites the
command line goes through :func:`parse`, which accepts both spellings for
every flag, so a respelling cannot make us miss a flag (and, for instance,
put a credential on a remote command line).

``tests/unit/test_sdk_seam.py`` builds the SDK's command line with every
option set and fails, naming the flag, when the SDK sends one this table
does not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

__all__ = [
    "BOOLEAN_FLAGS",
    "KNOWN_FLAGS",
    "PATH_FLAGS",
    "VALUE_FLAGS",
    "Arg",
    "find",
    "parse",
    "unparse",
    "values",
]

#: Flags the SDK sends with a value it always binds (as ``--flag value`` or ``--flag=value``).
VALUE_FLAGS = frozenset(
    {
        "--add-dir",
        "--allowedTools",
        "--append-system-prompt",
        "--betas",
        "--disallowedTools",
        "--effort",
        "--fallback-model",
        "--input-format",
        "--json-schema",
        "--max-budget-usd",
        "--max-thinking-tokens",
        "--max-turns",
        "--mcp-config",
        "--model",
        "--output-format",
        "--permission-mode",
        "--permission-prompt-tool",
        "--plugin-dir",
        "--resume-drops-turn",
        "--resume-session-at",
        "--session-id",
        "--setting-sources",
        "--settings",
        "--system-prompt",
        "--system-prompt-file",
        "--task-budget",
        "--thinking",
        "--thinking-display",
        "--tools",
    }
)

#: Flags whose value is optional to the CLI: only ``--flag=value`` or a next
#: argument that does not start with ``-`` is their value.
OPTIONAL_VALUE_FLAGS = frozenset({"--resume"})

#: Flags the SDK sends without a value.
BOOLEAN_FLAGS = frozenset(
    {
        "--continue",
        "--fork-session",
        "--include-hook-events",
        "--include-partial-messages",
        "--session-mirror",
        "--strict-mcp-config",
        "--verbose",
    }
)

KNOWN_FLAGS = VALUE_FLAGS | OPTIONAL_VALUE_FLAGS | BOOLEAN_FLAGS

PathKind = Literal["config", "file", "directory", "workdir"]

#: Flags whose value names something on the machine that runs the CLI, and what:
#: ``config``: JSON text or a JSON file that may hold credentials (MCP server
#: headers and env, settings env); ``file``: a file; ``directory``: a directory
#: the CLI reads (a plugin); ``workdir``: a directory the session works in.
PATH_FLAGS: dict[str, PathKind] = {
    "--mcp-config": "config",
    "--settings": "config",
    "--system-prompt-file": "file",
    "--plugin-dir": "directory",
    "--add-dir": "workdir",
}


@attrs.frozen
class Arg:
    """One option of the command line: a flag and its value, however spelled.

    ``flag`` is ``""`` for an argument that belongs to no flag (the SDK sends
    none; kept so nothing is lost). ``joined`` is true for ``--flag=value``.
    """

    flag: str
    value: str | None = None
    joined: bool = False

    def tokens(self) -> list[str]:
        """The argument(s) as they were spelled."""
        if not self.flag:
            return [self.value or ""]
        if self.value is None:
            return [self.flag]
        if self.joined:
            return [f"{self.flag}={self.value}"]
        return [self.flag, self.value]


def parse(args: Sequence[str]) -> list[Arg]:
    """Split a CLI command line (without the program) into flags and values.

    ``--flag=value`` is one argument with its value. ``--flag value``: the next
    argument is the value for a flag known to take one, for an unknown flag
    (``extra_args``) when it does not start with ``-``, never for a known
    boolean flag. The SDK sends no positional arguments (the prompt goes over
    stdin), so this reading is unambiguous for what it builds.
    """
    out: list[Arg] = []
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if not word.startswith("--") or word == "--":
            out.append(Arg("", word))
            continue
        flag, eq, value = word.partition("=")
        if eq:
            out.append(Arg(flag, value, joined=True))
            continue
        takes_next = i < len(args) and (
            flag in VALUE_FLAGS or (flag not in BOOLEAN_FLAGS and not args[i].startswith("-"))
        )
        if takes_next:
            out.append(Arg(flag, args[i]))
            i += 1
        else:
            out.append(Arg(flag))
    return out


def unparse(parsed: Iterable[Arg]) -> list[str]:
    """The command line of ``parsed``, each argument spelled as it was."""
    return [token for arg in parsed for token in arg.tokens()]


def find(parsed: Iterable[Arg], flag: str) -> list[Arg]:
    """Every occurrence of ``flag``."""
    return [arg for arg in parsed if arg.flag == flag]


def values(parsed: Iterable[Arg], flag: str) -> list[str]:
    """The values given to ``flag``, in order (flags given without a value skipped)."""
    return [arg.value for arg in parsed if arg.flag == flag and arg.value is not None]
