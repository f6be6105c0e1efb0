"""Local files and directories that options name, end to end through ``SSHExecutor``.

Real sshd, the real CLI on the "remote" account, the scripted model. What each
test proves is read off what the remote CLI did with the file: what its init
message lists, what reached the model (a skill's body, a system prompt, a tool's
output), and that nothing is left on the host afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import (
    ClaudeAgentOptions,
    Message,
    ResultMessage,
    SystemMessage,
)

import remote_executors as rx
from remote_executors import _option_files
from remote_executors.executors.ssh import BACKENDS
from remote_executors.testing.model import text, tool_use

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SESSION_TIMEOUT = 60


@pytest.fixture
def anyio_backend() -> str:
    """The shipping is event-loop agnostic code; trio runs the SDK feature suite."""
    return "asyncio"


async def run_query(
    options: ClaudeAgentOptions, executor: object, prompt: str = "go"
) -> list[Message]:
    with anyio.fail_after(SESSION_TIMEOUT):
        return [m async for m in rx.query(prompt=prompt, options=options, executor=executor)]


def init_of(messages: Sequence[Message]) -> dict[str, Any]:
    [init] = [m for m in messages if isinstance(m, SystemMessage) and m.subtype == "init"]
    return init.data


def ok_result(messages: Sequence[Message]) -> ResultMessage:
    [result] = [m for m in messages if isinstance(m, ResultMessage)]
    assert not result.is_error, result
    return result


def write(root: Path, rel: str, content: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def skill(name: str, body: str) -> str:
    return f"---\nname: {name}\ndescription: the {name} skill\n---\n{body}\n"


def agent(name: str, description: str = "helps") -> str:
    return f"---\nname: {name}\ndescription: {description}\n---\nYou are {name}.\n"


def request_text(request: Any) -> str:
    return json.dumps(request.body)


def put_remote(bed: Any, account: Any, path: Path, content: str) -> None:
    """Write a file as the remote account."""
    script = 'mkdir -p "$(dirname "$1")" && printf "%s" "$2" > "$1"'
    bed.run_as(account, ["/bin/sh", "-c", script, "sh", str(path), content], check=True)


def job_dirs(bed: Any, account: Any) -> set[str]:
    """The bootstrap's private job directories the account has in /tmp."""
    done = bed.run_as(account, ["/bin/sh", "-c", "ls -d /tmp/rx.* 2>/dev/null; exit 0"])
    return set(done.stdout.split())


# --------------------------------------------------------------------------- plugins


@pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True)
async def test_a_local_plugin_works_on_the_host(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account, tmp_path
):
    """The plugin exists only here; the remote CLI loads it, names and all, and the
    model gets its skill's body. The copy is gone from the host afterwards."""
    name = f"plug{secrets.token_hex(3)}"
    body = f"SKILL-BODY-{secrets.token_hex(6)}"
    plugin = tmp_path / "my plugin"
    write(plugin, ".claude-plugin/plugin.json", json.dumps({"name": name, "version": "1.0.0"}))
    write(plugin, "skills/deploy/SKILL.md", skill("deploy", body))
    write(plugin, "commands/ship.md", "---\ndescription: ship it\n---\nShip.\n")
    write(plugin, "agents/reviewer.md", agent("reviewer"))
    hook = write(plugin, "bin/tool.sh", "#!/bin/sh\necho tool\n")
    hook.chmod(0o755)
    (plugin / ".git").mkdir()
    write(plugin, ".git/big", "x" * 1000)  # version control metadata is not shipped
    before = job_dirs(rx_sshd, rx_account)

    rx_model.script(tool_use("Skill", {"skill": f"{name}:deploy"}), text("deployed"))
    messages = await run_query(
        ClaudeAgentOptions(
            cwd=str(rx_project.local),
            allowed_tools=["Skill"],
            plugins=[{"type": "local", "path": str(plugin)}],
        ),
        rx_executor,
    )
    assert ok_result(messages).result == "deployed"
    init = init_of(messages)
    [loaded] = [p for p in init["plugins"] if p["name"] == name]
    assert loaded["path"] != str(plugin)  # the host's private copy
    assert f"{name}:deploy" in init["skills"]
    assert f"{name}:ship" in init["slash_commands"]
    assert f"{name}:reviewer" in init["agents"]
    assert body in request_text(rx_model.main_requests[-1])
    # This session's job directory holds the copy; other tests' jobs on the same account may
    # come and go meanwhile, so wait for this one only.
    job = "/".join(loaded["path"].split("/")[:3])
    assert job.startswith("/tmp/rx.") and job not in before  # this session's own job
    with anyio.fail_after(30):  # the job's own cleanup, after the session ended
        while rx_sshd.run_as(rx_account, ["test", "-e", job]).returncode == 0:
            await anyio.sleep(0.1)
    assert rx_sshd.run_as(rx_account, ["test", "-e", loaded["path"]]).returncode != 0


async def test_option_paths_that_cannot_be_shipped_are_refused_before_anything_starts(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account, tmp_path, monkeypatch
):
    plugin = tmp_path / "plugin"
    write(plugin, ".claude-plugin/plugin.json", json.dumps({"name": "p"}))
    secret = write(tmp_path, "elsewhere/secret.txt", "do not ship")
    cases: list[tuple[ClaudeAgentOptions, str, str]] = [
        (
            ClaudeAgentOptions(plugins=[{"type": "local", "path": str(tmp_path / "nope")}]),
            "plugins",
            "does not exist on this machine",
        ),
        (ClaudeAgentOptions(settings=str(tmp_path / "missing.json")), "settings", "does not exist"),
        (
            ClaudeAgentOptions(mcp_servers=tmp_path / "missing.json"),
            "mcp_servers",
            "does not exist",
        ),
        (
            ClaudeAgentOptions(system_prompt={"type": "file", "path": str(tmp_path / "nope.md")}),
            "system_prompt",
            "does not exist",
        ),
    ]
    linked = tmp_path / "linked"
    write(linked, ".claude-plugin/plugin.json", json.dumps({"name": "l"}))
    (linked / "secret.txt").symlink_to(secret)
    cases.append(
        (ClaudeAgentOptions(plugins=[{"type": "local", "path": str(linked)}]), "plugins", "outside")
    )
    for options, option, says in cases:
        options.cwd = str(rx_project.local)
        with pytest.raises(rx.OptionPathError) as caught:
            await run_query(options, rx_executor)
        error = caught.value
        assert error.option == option and error.host == rx_executor.name
        assert says in str(error) and rx_executor.name in str(error) and error.path in str(error)

    monkeypatch.setattr(_option_files, "MAX_SHIPPED_BYTES", 1000)
    write(plugin, "big.bin", "x" * 2000)
    with pytest.raises(rx.OptionPathError, match="MiB") as caught:
        await run_query(
            ClaudeAgentOptions(
                cwd=str(rx_project.local), plugins=[{"type": "local", "path": str(plugin)}]
            ),
            rx_executor,
        )
    assert caught.value.option == "plugins"
    # Nothing started: the model saw no request, the host runs no session (SDKs before
    # 0.2.190 run `claude -v` first, as they do locally).
    assert rx_model.requests == []
    assert not [p for p in rx_sshd.processes(rx_account) if "stream-json" in p.args]


# --------------------------------------------------------------------------- config files


@pytest.mark.parametrize("form", ["file", "json"])
async def test_settings_and_mcp_config_reach_the_host(
    form, rx_executor, rx_project, rx_model, rx_sshd, rx_account, tmp_path
):
    """A settings file and an MCP config (a file, or JSON text) named here take
    effect on the host, and their content is on no command line there."""
    probe = f"probe-{secrets.token_hex(4)}"
    server = f"srv{secrets.token_hex(3)}"
    settings = json.dumps({"env": {"RX_SETTINGS_PROBE": probe}})
    mcp = json.dumps({"mcpServers": {server: {"command": "/bin/false", "env": {"T": probe}}}})
    if form == "file":
        settings_value: str = os.fspath(write(tmp_path, "conf/settings.json", settings))
        mcp_value: str | Path = write(tmp_path, "conf/mcp.json", mcp)
    else:
        settings_value, mcp_value = settings, mcp
    seen: list[str] = []

    async def watch() -> None:
        while True:
            seen.extend(p.args for p in rx_sshd.processes(rx_account))
            await anyio.sleep(0.05)

    rx_model.script(tool_use("Bash", {"command": "echo $RX_SETTINGS_PROBE"}), text("done"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        messages = await run_query(
            ClaudeAgentOptions(
                cwd=str(rx_project.local),
                allowed_tools=["Bash"],
                settings=settings_value,
                mcp_servers=mcp_value,
            ),
            rx_executor,
        )
        tg.cancel_scope.cancel()
    ok_result(messages)
    assert server in [s["name"] for s in init_of(messages)["mcp_servers"]]
    assert rx_model.main_requests[-1].tool_results[0].content.strip() == probe
    assert any("claude" in line for line in seen)
    assert not [line for line in seen if probe in line]


async def test_a_system_prompt_file_reaches_the_host(rx_executor, rx_project, rx_model, tmp_path):
    marker = f"SYSTEM-{secrets.token_hex(6)}"
    prompt_file = write(tmp_path, "prompts/system.md", f"You are {marker}.")
    messages = await run_query(
        ClaudeAgentOptions(
            cwd=str(rx_project.local),
            system_prompt={"type": "file", "path": os.fspath(prompt_file)},
        ),
        rx_executor,
    )
    ok_result(messages)
    assert marker in rx_model.main_requests[-1].system_text


# --------------------------------------------------------------------------- add_dirs


async def test_add_dirs_are_mapped_like_cwd(rx_executor, rx_project, rx_model, rx_sshd, rx_account):
    """``add_dirs`` name directories here; the host's counterparts (same rule as cwd)
    are what the remote CLI gets: it loads the skills kept in the host's copy."""
    local = rx_project.local.parent / "lib"
    local.mkdir()
    remote = rx_project.remote.parent / "lib"
    name = f"libskill{secrets.token_hex(3)}"
    put_remote(rx_sshd, rx_account, remote / ".claude" / "skills" / name / "SKILL.md",
               skill(name, "from the host"))  # fmt: skip
    messages = await run_query(
        ClaudeAgentOptions(cwd=str(rx_project.local), add_dirs=[local]), rx_executor
    )
    ok_result(messages)
    assert name in init_of(messages)["skills"]

    missing = rx_project.local.parent / "not-on-the-host"
    missing.mkdir()
    with pytest.raises(rx.RemotePathNotFound, match="add_dirs") as caught:
        await run_query(
            ClaudeAgentOptions(cwd=str(rx_project.local), add_dirs=[str(missing)]), rx_executor
        )
    assert caught.value.path.endswith("not-on-the-host")
    assert rx_executor.name in str(caught.value)


# --------------------------------------------------------------------------- the project's .claude/


async def test_project_config_the_host_lacks_is_shipped(
    rx_executor, rx_project, rx_model, rx_sshd, rx_account
):
    """Agents, skills, commands and settings under the local project's ``.claude/``
    reach a host whose copy of the project lacks them, under their own names; what
    the host has wins; none of it is written into the host's project."""
    tag = secrets.token_hex(3)
    claude = rx_project.local / ".claude"
    write(claude, f"agents/local{tag}.md", agent(f"local{tag}"))
    write(claude, f"agents/both{tag}.md", agent(f"both{tag}", "the local one"))
    write(claude, f"skills/sk{tag}/SKILL.md", skill(f"sk{tag}", "local skill"))
    write(claude, f"commands/cmd{tag}.md", "---\ndescription: c\n---\nrun\n")
    write(claude, "settings.json", json.dumps({"env": {"RX_PROJECT_PROBE": f"project-{tag}"}}))
    write(claude, "settings.local.json", json.dumps({"env": {"RX_LOCAL_PROBE": f"local-{tag}"}}))
    put_remote(rx_sshd, rx_account, rx_project.remote / ".claude" / "agents" / f"both{tag}.md",
               agent(f"both{tag}", "the host one"))  # fmt: skip

    rx_model.script(
        tool_use("Bash", {"command": "echo $RX_PROJECT_PROBE $RX_LOCAL_PROBE"}), text("done")
    )
    messages = await run_query(
        ClaudeAgentOptions(cwd=str(rx_project.local), allowed_tools=["Bash"]), rx_executor
    )
    ok_result(messages)
    init = init_of(messages)
    assert f"local{tag}" in init["agents"]
    assert init["agents"].count(f"both{tag}") == 1
    assert f"sk{tag}" in init["skills"] and f"cmd{tag}" in init["slash_commands"]
    assert rx_model.main_requests[-1].tool_results[0].content.split() == [
        f"project-{tag}",
        f"local-{tag}",
    ]
    agents_there = rx_sshd.run_as(
        rx_account, ["ls", "-A", str(rx_project.remote / ".claude" / "agents")]
    )
    assert agents_there.stdout.split() == [f"both{tag}.md"]  # the host's project is untouched
    # The host's own agent is the one the CLI uses.
    described = [r for r in rx_model.main_requests if "the host one" in request_text(r)]
    assert described and not [
        r for r in rx_model.main_requests if "the local one" in request_text(r)
    ]

    # Without the project source, nothing of the project's is loaded (as locally).
    messages = await run_query(
        ClaudeAgentOptions(cwd=str(rx_project.local), setting_sources=["user"]), rx_executor
    )
    assert f"local{tag}" not in init_of(messages)["agents"]
