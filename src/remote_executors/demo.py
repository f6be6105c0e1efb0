"""A whole Claude Code session through remote-executors, with no account needed.

    python -m remote_executors.demo                 # this machine, scripted model
    python -m remote_executors.demo --on box        # the same on ssh alias "box"

Without ``--on`` the real Claude Code CLI (bundled with claude-agent-sdk)
runs on this machine against a scripted stand-in for the Messages API, in a
throwaway project, Claude config dir and records dir (removed afterwards
unless ``--keep``; nothing reaches ``~/.claude`` or the real session
records), and the transcript it wrote is read back with the SDK's own
session reader. With ``--on HOST`` the session runs on HOST with the real
model and HOST's own Claude credentials, in the same directory relative to
your home (``--cwd``), and is synced and recorded like any other session.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import anyio
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ResultMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
    get_session_messages,
)

from . import ExecutorError, LocalExecutor, SSHExecutor, query
from .executors.base import Executor, shares_local_filesystem
from .paths import project_dir_from_cwd
from .records import DATA_DIR_ENV

_DESCRIPTION = """\
Run a whole Claude Code session through remote-executors and show it.

Without --on: the real Claude Code CLI runs on this machine against a
scripted stand-in for the model (no account, no network), in a throwaway
project and config directory that is removed afterwards (--keep keeps it);
nothing is written to ~/.claude or to the real session records. The
transcript is then read back with the SDK's own session reader.

With --on HOST: the session runs on the ssh alias HOST with the real model
and HOST's own Claude credentials, in the directory --cwd maps to there
(the same path relative to your home), and is synced here like any session.
"""


def _show(message: object) -> None:
    if isinstance(message, AssistantMessage):
        for block in message.content:
            if isinstance(block, TextBlock):
                print(f"  assistant: {block.text}")
            elif isinstance(block, ToolUseBlock):
                print(f"  tool call: {block.name} {block.input}")
    elif isinstance(message, UserMessage) and isinstance(message.content, list):
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                print(f"  tool result: {str(block.content).strip()[:200]}")
    elif isinstance(message, ResultMessage):
        turns = f"{message.num_turns} turn(s)"
        print(f"  result: {message.subtype}, {turns}, session {message.session_id}")


async def _session(executor: Executor, options: ClaudeAgentOptions, prompt: str) -> str | None:
    where = "this machine" if shares_local_filesystem(executor) else executor.name
    print(f"Running a session on {where} in {options.cwd}")
    session_id = None
    try:
        async for message in query(prompt=prompt, options=options, executor=executor):
            _show(message)
            if isinstance(message, ResultMessage):
                session_id = message.session_id
    finally:
        await executor.aclose()
    return session_id


async def _local_demo(prompt: str, tmp: Path) -> int:
    from .testing.model import ScriptedModel, text, tool_use

    with ScriptedModel() as model:
        project = tmp / "shop"
        project.mkdir()
        (project / "README.md").write_text("# shop\n")
        config = tmp / "claude-config"
        model.script(
            tool_use("Bash", {"command": "ls", "description": "List the project files"}),
            text("The project holds one file, README.md. Nothing is failing."),
        )
        options = ClaudeAgentOptions(
            cwd=str(project),
            allowed_tools=["Bash"],
            env={**model.cli_env(), "CLAUDE_CONFIG_DIR": str(config)},
        )
        session_id = await _session(LocalExecutor(), options, prompt)
        if session_id is None:
            print("The session produced no result.", file=sys.stderr)
            return 1
        transcript = config / "projects" / project_dir_from_cwd(os.path.realpath(project))
        print(f"\nTranscript: {transcript / (session_id + '.jsonl')}")
        messages = get_session_messages(session_id, directory=str(project))
        print(f"The SDK reads back {len(messages)} messages from it:")
        for entry in messages:
            print(f"  {entry.type}")
        print(
            "\nTo run a session on another machine: "
            "python -m remote_executors.demo --on <ssh alias> --cwd <dir under your home>"
        )
    return 0


def _isolated_local_demo(prompt: str, keep: bool) -> int:
    """The local demo with every directory it writes in one temp dir of its own."""
    tmp = Path(tempfile.mkdtemp(prefix="rx-demo-"))
    saved = {name: os.environ.get(name) for name in ("CLAUDE_CONFIG_DIR", DATA_DIR_ENV)}
    # Where the SDK's reader looks and where session records go: here, not ~.
    os.environ["CLAUDE_CONFIG_DIR"] = str(tmp / "claude-config")
    os.environ[DATA_DIR_ENV] = str(tmp / "records")
    try:
        return anyio.run(_local_demo, prompt, tmp)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if keep:
            print(f"Kept the demo's directory: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m remote_executors.demo",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--on", metavar="HOST", help="ssh alias to run on (default: this machine)")
    parser.add_argument("--cwd", default=".", help="project directory (with --on)")
    parser.add_argument("--prompt", default="Is anything failing in this project?")
    parser.add_argument(
        "--keep", action="store_true", help="keep the local demo's directory (to look at it)"
    )
    args = parser.parse_args(argv)
    try:
        if args.on is None:
            return _isolated_local_demo(args.prompt, args.keep)
        options = ClaudeAgentOptions(cwd=os.path.abspath(args.cwd))
        session_id = anyio.run(_session, SSHExecutor(args.on), options, args.prompt)
        return 0 if session_id else 1
    except ExecutorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
