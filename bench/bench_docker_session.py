"""Session latency: LocalExecutor vs DockerExecutor and KubernetesExecutor on a real container.

    sudo .venv/bin/python bench/bench_docker_session.py [--runs N]

Runs N one-turn sessions of each kind (the real CLI, the scripted model) and
reports the median time to the first message and to the result. The
container is the test bed's (testing/docker.py: a debootstrapped Debian, the
bundled CLI bind-mounted, ``--network host``); "warm" reuses one
``DockerExecutor`` (it remembers where the CLI is), "cold" makes a new one per
session; both use the in-process Engine API carrier. "warm-cli" is a warm one
carried by one ``docker exec`` client per process (the carrier for contexts
and remote engines), for the API/CLI ratio. There is no connection to keep:
every process is one exec. Runs are interleaved, in an order that turns every round, so drift in
machine load and the previous session's wind-down spread over every row alike.
Ratios are docker/local; the target for warm is <= 1.10. The "k8s"
row is a warm ``KubernetesExecutor`` on the same container, seen as a pod
through the Kubernetes stand-in (testing/kube_standin.py: the real client,
a pods/exec WebSocket per process, ``docker exec`` behind it), so it costs
what the docker row does plus the stand-in's hop; k8s/local is reported.
"k8s-plain" is the same with ``warm_spawn=False``: every process on an exec
of its own, none waiting for the next spawn.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from _bed import Timing, one_session
from claude_agent_sdk import ClaudeAgentOptions

import remote_executors as rx
from remote_executors.executors._container_engine import EngineBackend
from remote_executors.testing.docker import ContainerBed
from remote_executors.testing.kube_standin import KubeStandin
from remote_executors.testing.model import ScriptedModel

TARGET = 1.10
#: Seconds between sessions, for the one before to wind down.
SETTLE = 0.5


async def measure(runs: int) -> None:
    load = os.getloadavg()
    with (
        ScriptedModel() as model,
        ContainerBed() as bed,
        KubeStandin() as standin,
        tempfile.TemporaryDirectory() as tmp,
    ):
        os.environ["CLAUDE_CONFIG_DIR"] = str(Path(tmp) / "synced-claude")
        os.environ["REMOTE_EXECUTORS_DATA_DIR"] = str(Path(tmp) / "rx-data")
        box = bed.container(model_url=model.url)
        rel = Path(f"rx-bench-{time.time_ns()}")
        local = Path.home() / rel
        local.mkdir()
        box.exec(["mkdir", "-p", f"{box.home}/{rel}"])
        local_options = ClaudeAgentOptions(
            cwd=str(local),
            env={**model.cli_env(), "CLAUDE_CONFIG_DIR": str(Path(tmp) / "local-claude")},
        )
        remote_options = ClaudeAgentOptions(cwd=str(local))
        results: dict[str, list[Timing]] = {
            "local": [],
            "cold": [],
            "warm": [],
            "warm-cli": [],
            "k8s": [],
            "k8s-plain": [],
        }
        warm = rx.DockerExecutor(box.name, user=box.user)
        # The same, carried by one `docker exec` client per process (the
        # carrier for contexts and remote engines; the only one before the API's).
        warm_cli = rx.DockerExecutor(box.name, user=box.user)
        warm_cli._backend = EngineBackend(warm_cli.name, "docker", box.name, box.user)
        standin.add_pod("bench", "box-0", box.name, user=box.user)
        kubeconfig = str(standin.kubeconfig(Path(tmp) / "kube"))
        pod = rx.KubernetesExecutor("box-0", namespace="bench", kubeconfig=kubeconfig)
        # Every process on an exec of its own (no spare waiting for the next spawn).
        pod_plain = rx.KubernetesExecutor(
            "box-0", namespace="bench", kubeconfig=kubeconfig, warm_spawn=False
        )
        try:
            # Warm-up: page the CLI binary into the cache on both sides.
            await one_session(rx.LocalExecutor(), local_options)
            await one_session(warm, remote_options)
            await one_session(warm_cli, remote_options)
            await one_session(pod, remote_options)
            await one_session(pod_plain, remote_options)

            async def cold_session() -> Timing:
                cold = rx.DockerExecutor(box.name, user=box.user)
                try:
                    return await one_session(cold, remote_options)
                finally:
                    await cold.aclose()

            kinds: dict[str, Callable[[], Awaitable[Timing]]] = {
                "local": lambda: one_session(rx.LocalExecutor(), local_options),
                "cold": cold_session,
                "warm": lambda: one_session(warm, remote_options),
                "warm-cli": lambda: one_session(warm_cli, remote_options),
                "k8s": lambda: one_session(pod, remote_options),
                "k8s-plain": lambda: one_session(pod_plain, remote_options),
            }
            order = list(kinds)
            for round_ in range(runs):
                # A new order each round, and a pause between sessions: the one
                # before is still winding down (its CLI exiting) when the next starts.
                turn = round_ % len(order)
                for kind in order[turn:] + order[:turn]:
                    await anyio.sleep(SETTLE)
                    results[kind].append(await kinds[kind]())
        finally:
            await warm.aclose()
            await warm_cli.aclose()
            await pod.aclose()
            await pod_plain.aclose()
            local.rmdir()

    def med(kind: str, index: int) -> float:
        return statistics.median(r[index] for r in results[kind])

    print(f"{runs} runs each; load average {load[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'':16}{'first message':>15}{'result':>10}")
    for kind in results:
        print(f"{kind:16}{med(kind, 0):14.3f}s{med(kind, 1):9.3f}s")
    for kind in ("cold", "warm", "warm-cli"):
        ratio = med(kind, 0) / med("local", 0)
        verdict = f"  (target <= {TARGET}: {'ok' if ratio <= TARGET else 'MISSED'})"
        print(
            f"{kind} docker/local: first message {ratio:.2f}x, result "
            f"{med(kind, 1) / med('local', 1):.2f}x" + (verdict if kind == "warm" else "")
        )
    print(
        f"warm API/CLI carrier: first message {med('warm', 0) / med('warm-cli', 0):.2f}x, "
        f"result {med('warm', 1) / med('warm-cli', 1):.2f}x"
    )
    plain_first, plain_result = (med("k8s-plain", i) / med("local", i) for i in (0, 1))
    print(
        f"warm k8s-stand-in/local: first message {med('k8s', 0) / med('local', 0):.2f}x, "
        f"result {med('k8s', 1) / med('local', 1):.2f}x; k8s/docker warm "
        f"{med('k8s', 0) / med('warm', 0):.2f}x; without the spare exec (warm_spawn=False) "
        f"{plain_first:.2f}x / {plain_result:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    anyio.run(measure, args.runs)


if __name__ == "__main__":
    main()
