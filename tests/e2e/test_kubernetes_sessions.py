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

import remote_executors as rx
from _cli import CLI, ok
from _sessions import cli_resume_where_it_ran, cli_run_on, first_turn_in, resume_in
from remote_executors.testing.docker import TestContainer
from remote_executors.testing.kube_standin import KubeStandin, StandinPod
from remote_executors.testing.model import ScriptedModel
from remote_executors.testing.plugin import Project

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("private_local_claude")]


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
    private_local_claude: Path,
) -> None:
    box, project, config = rx_container, rx_container_project, private_local_claude
    executor = rx.KubernetesExecutor(
        rx_kube_pod.name,
        namespace=rx_kube_pod.namespace,
        container="claude",
        kubeconfig=str(rx_kubeconfig),
    )
    assert executor.spec == f"k8s://rx-test/shop-0/claude?kubeconfig={rx_kubeconfig}"
    sid = await first_turn_in(executor, box, project, rx_model, config, tag="pod")
    # With no executor at all: the record's spec reopens the pod.
    await resume_in(None, box, project, rx_model, config, sid, turn="second")


def test_cli_runs_checks_and_resumes_on_a_pod_spec(
    rx_kube_pod: StandinPod,
    rx_kubeconfig: Path,
    rx_kube_standin: KubeStandin,
    rx_container: TestContainer,
    rx_container_project: Project,
    rx_model: ScriptedModel,
    tmp_path: Path,
) -> None:
    cli = CLI(tmp_path / "cli", rx_model)
    cli.env["KUBECONFIG"] = str(rx_kubeconfig)  # as kubectl users have it
    spec = "k8s://rx-test/shop-0"  # the pod's only container
    cwd = str(rx_container_project.local)
    # The stand-in is shared: other tests' execs are already on its list.
    execs_before = len(rx_kube_standin.execs)
    sid = cli_run_on(cli, spec, rx_container_project, rx_model, where="pod", home=rx_container.home)

    checked = json.loads(ok(cli("check", spec, "--cwd", cwd, "--json")))
    assert checked["ok"] and checked["host"] == spec, checked
    steps = {s["name"]: s for s in checked["steps"]}
    assert steps["connect"]["title"] == "Container reachable"
    assert ".local/bin/claude" in steps["claude"]["detail"]

    cli_resume_where_it_ran(cli, spec, rx_container_project, rx_model, sid)
    # Nothing about a job travelled in an exec URL but the fixed loader.
    commands = {tuple(q.get("command", [])) for q in rx_kube_standin.execs[execs_before:]}
    assert len(commands) == 1, commands
