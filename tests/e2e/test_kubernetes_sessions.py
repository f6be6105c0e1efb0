"""Whole sessions in a pod of the Kubernetes stand-in: query, sync, resume, the CLI.

The pod ``rx-test/shop-0`` (container ``claude``) is the Docker bed's shared
container behind :mod:`remote_executors.testing.kube_standin`, reached by the
real ``kubernetes`` client; the CLI in it talks to the scripted model on
127.0.0.1. Oracles: the SDK's own session readers on the local copy, the
pod's own transcript file, and the real CLI resuming the synced session.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from claude_agent_sdk import get_session_messages, list_sessions
from test_docker_sessions import (
    container_transcript,
    local_claude,  # noqa: F401  (autouse: private CLAUDE_CONFIG_DIR and records)
    local_transcript,
    options_for,
    result_of,
    run,
)

import remote_executors as rx
from _cli import CLI, last_line, ok, session_of
from remote_executors.testing.docker import TestContainer
from remote_executors.testing.kube_standin import KubeStandin, StandinPod
from remote_executors.testing.model import ScriptedModel, text, tool_use
from remote_executors.testing.plugin import Project

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_session_in_a_pod_syncs_and_resumes_there(
    rx_kube_pod: StandinPod,
    rx_kubeconfig: Path,
    rx_container: TestContainer,
    rx_container_project: Project,
    rx_model: ScriptedModel,
    local_claude: Path,  # noqa: F811
) -> None:
    project = rx_container_project
    executor = rx.KubernetesExecutor(
        rx_kube_pod.name,
        namespace=rx_kube_pod.namespace,
        container="claude",
        kubeconfig=str(rx_kubeconfig),
    )
    spec = f"k8s://rx-test/shop-0/claude?kubeconfig={rx_kubeconfig}"
    assert executor.spec == spec
    rx_model.script(
        tool_use("Bash", {"command": "echo in-pod-$(id -un)", "description": "echo"}),
        text("first answer p-one"),
    )
    try:
        sid = result_of(await run("first question", options_for(project), executor)).session_id
    finally:
        await executor.aclose()
    entries = get_session_messages(sid, directory=str(project.local))
    assert "in-pod-agent" in repr([e.message for e in entries])
    assert [s.session_id for s in list_sessions(directory=str(project.local))] == [sid]
    remote = container_transcript(rx_container, project, sid)
    assert local_transcript(local_claude, project, sid).read_bytes() == remote.read_bytes()
    record = rx.get_session_record(sid)
    assert record is not None and record.executor == spec
    assert record.remote_cwd == str(project.remote)

    # With no executor at all: the record's spec reopens the pod.
    rx_model.script(text("second answer"))
    messages = await run("second question", options_for(project, resume=sid), None)
    assert result_of(messages).session_id == sid
    seen = repr(rx_model.main_requests[-1].messages)
    assert "first answer p-one" in seen and "second question" in seen
    assert b"second answer" in remote.read_bytes()
    assert local_transcript(local_claude, project, sid).read_bytes() == remote.read_bytes()


def test_cli_runs_checks_and_resumes_on_a_pod_spec(
    rx_kube_pod: StandinPod,
    rx_kubeconfig: Path,
    rx_kube_standin: KubeStandin,
    rx_container_project: Project,
    rx_model: ScriptedModel,
    tmp_path: Path,
) -> None:
    cli = CLI(tmp_path / "cli", rx_model)
    cli.env["KUBECONFIG"] = str(rx_kubeconfig)  # as kubectl users have it
    spec = "k8s://rx-test/shop-0"  # the pod's only container
    rx_model.script(
        tool_use("Bash", {"command": "echo cli-in-pod $HOME", "description": "echo"}),
        text("Answered from the pod."),
    )
    cwd = str(rx_container_project.local)
    # The stand-in is shared: other tests' execs are already on its list.
    execs_before = len(rx_kube_standin.execs)
    out = ok(cli("run", "--on", spec, "--cwd", cwd, "--allow", "Bash", "where are you?"))
    assert "Answered from the pod." in out
    assert "cli-in-pod /home/agent" in out
    assert spec in last_line(out)
    sid = session_of(out)
    sessions = json.loads(ok(cli("sessions", "--cwd", cwd, "--json")))
    assert [(s["session_id"], s["spec"]) for s in sessions] == [(sid, spec)]

    checked = json.loads(ok(cli("check", spec, "--cwd", cwd, "--json")))
    assert checked["ok"] and checked["host"] == spec, checked
    steps = {s["name"]: s for s in checked["steps"]}
    assert steps["connect"]["title"] == "Container reachable"
    assert ".local/bin/claude" in steps["claude"]["detail"]

    # --resume with no --on runs where the session last ran: in the pod.
    rx_model.script(text("Resumed in the pod."))
    out = ok(cli("run", "--resume", sid, "--cwd", cwd, "more"))
    assert "Resumed in the pod." in out
    assert spec in last_line(out)
    # Nothing about a job travelled in an exec URL but the fixed loader.
    commands = {tuple(q.get("command", [])) for q in rx_kube_standin.execs[execs_before:]}
    assert len(commands) == 1, commands
