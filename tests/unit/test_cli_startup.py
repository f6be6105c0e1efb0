"""What the command and the pytest plugin import at start (item 19 of issue 14).

Not timed (bench/bench_startup.py prints the figures): these check *what* is
imported, which is what the time depends on, and pin the deferred SDK init
(cli/_sdk_deferred.py) against the installed claude-agent-sdk.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import remote_executors

#: Modules whose import costs most of a second: none may load for quick commands.
HEAVY = ("mcp", "pydantic", "paramiko", "claude_agent_sdk.client", "claude_agent_sdk.query")


def _imported(argv: list[str], env_dir: Path) -> set[str]:
    """Modules the command imported (python -X importtime's log), run for real."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(env_dir),
            "REMOTE_EXECUTORS_CONFIG_DIR": str(env_dir / "config"),
            "REMOTE_EXECUTORS_DATA_DIR": str(env_dir / "data"),
            "CLAUDE_CONFIG_DIR": str(env_dir / "claude"),
        },
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        line.split("|")[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }


def _script() -> str:
    script = Path(sys.executable).with_name("remote-executors")
    if not script.exists():
        pytest.skip("the console script is not installed next to this interpreter")
    return str(script)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["executors", "list"],
        ["executors", "list", "--json"],
        ["sessions"],
        ["ui", "--help"],
    ],
)
def test_quick_commands_import_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    modules = _imported([_script(), *args], tmp_path)
    assert "remote_executors.cli" in modules  # the log is read right
    heavy = {m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY}
    assert not heavy, sorted(heavy)


def test_the_pytest_plugin_imports_nothing_heavy(tmp_path: Path) -> None:
    modules = _imported(["-c", "import remote_executors.testing.plugin"], tmp_path)
    assert "remote_executors.testing.plugin" in modules
    assert not {m for m in modules if m.startswith(("claude_agent_sdk", "mcp", "paramiko"))}
    # Nor the bed or the model: they load when a fixture first runs.
    assert "remote_executors.testing.sshd" not in modules
    assert "remote_executors.testing.model" not in modules


_DEFERRED = textwrap.dedent(
    """
    import sys
    from remote_executors.cli._sdk_deferred import LIGHT, defer

    assert defer() is True
    import remote_executors.errors as errors            # bases from the SDK's _errors
    from claude_agent_sdk import list_sessions, SDKSessionInfo
    light = {name: getattr(sys.modules["claude_agent_sdk"], name) for name in LIGHT}
    assert "mcp" not in sys.modules, "the light names pulled in mcp"

    import claude_agent_sdk                              # now the real __init__ runs
    from claude_agent_sdk import ClaudeAgentOptions, query
    assert "mcp" in sys.modules and callable(query)
    for name, value in light.items():                    # the very same objects
        assert getattr(claude_agent_sdk, name) is value, name
    assert issubclass(errors.ConnectionFailed, claude_agent_sdk.CLIConnectionError)
    assert issubclass(errors.ClaudeNotFound, claude_agent_sdk.CLINotFoundError)
    assert issubclass(errors.ProcessLost, claude_agent_sdk.ProcessError)
    assert set(claude_agent_sdk.__all__) <= set(dir(claude_agent_sdk))
    assert "__getattr__" not in vars(claude_agent_sdk)  # no trace left
    assert defer() is False                              # already imported: left alone
    print("ok")
    """
)


def test_the_deferred_sdk_init_gives_the_same_objects_as_the_real_one() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _DEFERRED], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_public_names_resolve_lazily() -> None:
    for name in remote_executors.__all__:
        assert getattr(remote_executors, name) is not None, name
    assert set(remote_executors.__all__) <= set(dir(remote_executors))
    with pytest.raises(AttributeError):
        remote_executors.no_such_name  # noqa: B018


def test_the_testing_kit_exports_its_everyday_names() -> None:
    from remote_executors.testing import ScriptedModel, SSHTestBed, text, tool_use
    from remote_executors.testing.model import ScriptedModel as Model

    assert ScriptedModel is Model and callable(text) and callable(tool_use)
    assert SSHTestBed.__module__ == "remote_executors.testing.sshd"
