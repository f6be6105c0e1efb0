"""A whole Claude Code session through remote-executors, with no account needed.

    python -m remote_executors.demo                 # local executor, scripted model
    python -m remote_executors.demo --on box        # the same on ssh alias "box"

Without ``--on`` the real Claude Code CLI (bundled with claude-agent-sdk)
runs on this machine against a scripted stand-in for the Messages API, in a
throwaway project and config directory, and the transcript it wrote is read
back with the SDK's own session reader. With ``--on HOST`` the session runs
on HOST with the real model and HOST's own Claude credentials, in the same
directory relative to your home (``--cwd``).
"""

from __future__ import annotations

import argparse
import os
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
from .executors.base import Executor
from .paths import project_dir_from_cwd


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
    print(f"Running a session on {executor.name} in {options.cwd}")
    session_id = None
    async for message in query(prompt=prompt, options=options, executor=executor):
        _show(message)
        if isinstance(message, ResultMessage):
            session_id = message.session_id
    await executor.aclose()
    return session_id


async def _local_demo(prompt: str) -> int:
    from .testing.model import ScriptedModel, text, tool_use

    # Kept afterwards so the transcript can be looked at; it is in /tmp.
    tmp = tempfile.mkdtemp(prefix="rx-demo-")
    with ScriptedModel() as model:
        project = Path(tmp) / "shop"
        project.mkdir()
        (project / "README.md").write_text("# shop\n")
        config = Path(tmp) / "claude-config"
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
        print(f"\nTranscript (kept in a throwaway dir): {transcript / (session_id + '.jsonl')}")
        os.environ["CLAUDE_CONFIG_DIR"] = str(config)  # where the SDK's reader looks
        messages = get_session_messages(session_id, directory=str(project))
        print(f"The SDK reads back {len(messages)} messages from it:")
        for entry in messages:
            print(f"  {entry.type}")
        print(
            "\nTo run a session on another machine: "
            "python -m remote_executors.demo --on <ssh alias> --cwd <dir under your home>"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m remote_executors.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--on", metavar="HOST", help="ssh alias to run on (default: local demo)")
    parser.add_argument("--cwd", default=".", help="project directory (with --on)")
    parser.add_argument("--prompt", default="Is anything failing in this project?")
    args = parser.parse_args(argv)
    try:
        if args.on is None:
            return anyio.run(_local_demo, args.prompt)
        options = ClaudeAgentOptions(cwd=os.path.abspath(args.cwd))
        session_id = anyio.run(_session, SSHExecutor(args.on), options, args.prompt)
        return 0 if session_id else 1
    except ExecutorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
