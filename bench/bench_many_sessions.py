"""The local cost of many idle sessions from one process, against a stub CLI.

    sudo .venv/bin/python bench/bench_many_sessions.py [--sessions N] [--quiet SECONDS]
        [--rows local,openssh,fabric,docker] [--docker-sessions N]

Each row opens N ``ClaudeSDKClient`` sessions at once from this process, all
on one executor, runs one turn in each and keeps them open (an idle session:
CLI channel, live follower, heartbeats). The CLI is
``testing/stub_cli.sh``, a tiny stream-json responder, so the remote side
costs next to nothing and what is measured is this side: the executor, the
SDK seam, the follower, the ssh client processes.

Per row it prints:

- how many of the N sessions answered (a ResultMessage that is no error);
- the time to open all N and get every first result;
- local memory: summed PSS of this process, every descendant (ssh mux
  clients, docker CLIs) and the detached ssh ControlMasters, with the N
  sessions open minus the same figure before they opened, per session;
  for the local row the stub CLIs themselves are left out (elsewhere they
  run on the remote side);
- local CPU per idle session: the ticks of the same processes over a quiet
  window (``--quiet``, default 30 s) with all N open, as % of one core;
- connections and sshd's refusals (remote rows): the logins sshd accepted and
  the session channels it refused ("no more sessions") during the row, and
  the CPU the remote side (the bed's sshd and everything under it) used
  over the quiet window, per session;
- that remote CPU split into sshd's processes and the account's job
  processes (shells, watchdogs, relays, followers, stub CLIs), and the forks
  per second per idle session under sshd, by the forking command
  (``_remote_cost.py``: exact, from the kernel's process events; needs root).

Targets (issue 16): <= 2 MiB and <= 1 % of a core per idle session.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio
from _bed import bench_bed
from _remote_cost import ForkCounter, split, tree_usage
from bench_concurrent_sessions import pss_kb, stat_fields, tree_ticks
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from remote_executors.testing.stub_cli import STUB_CLI, install_stub_cli

TICKS = os.sysconf("SC_CLK_TCK")
MEMORY_TARGET_MIB = 2.0
CPU_TARGET = 0.01


# -- what this process costs, children and detached masters included ----------


@dataclass
class Tree:
    pss_kb: int = 0
    ticks: int = 0  # own + reaped children's CPU of every process counted
    processes: int = 0
    stub_pss_kb: int = 0  # the local row's stub CLIs (their own cost, not the executor's)


def process_table() -> tuple[dict[int, list[int]], dict[int, list[str]]]:
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            rest = stat_fields(name)
        except (OSError, ValueError, IndexError):
            continue
        stats[int(name)] = rest
        children.setdefault(int(rest[1]), []).append(int(name))
    return children, stats


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def measure_tree(marker: str, remote_root: int) -> Tree:
    """This process, its descendants, and ssh processes naming ``marker`` (the
    ControlMasters: ``ssh -f`` detaches them from us); not the bed's sshd
    (``remote_root``: our child here, the remote machine in the picture)."""
    children, stats = process_table()
    mine: set[int] = set()
    todo = [os.getpid()]
    while todo:
        pid = todo.pop()
        if pid == remote_root:
            continue
        mine.add(pid)
        todo.extend(children.get(pid, []))
    for pid in stats:
        if pid not in mine and marker.encode() in cmdline(pid):
            mine.add(pid)
    tree = Tree()
    stub = str(STUB_CLI).encode()
    for pid in mine:
        rest = stats.get(pid)
        if rest is None:
            continue
        tree.processes += 1
        tree.ticks += sum(int(v) for v in rest[11:15])
        pss = pss_kb(str(pid))
        if stub in cmdline(pid):
            tree.stub_pss_kb += pss
        else:
            tree.pss_kb += pss
    return tree


# -- sessions -------------------------------------------------------------------


@dataclass
class Row:
    name: str
    sessions: int
    answered: int = 0
    problems: list[str] = field(default_factory=list)
    open_seconds: float = 0.0
    memory_kb_per_session: float = 0.0
    cpu_per_session: float = 0.0  # fraction of one core
    remote_cpu_per_session: float = 0.0  # the bed's sshd and all under it
    remote_sshd_per_session: float = 0.0  # of which sshd's own processes
    remote_jobs_per_session: float = 0.0  # of which the account's job processes
    remote_forks_per_second: float = -1.0  # per idle session; -1: not counted
    remote_forks_by: dict[str, int] = field(default_factory=dict)
    remote_ticks_by: dict[str, int] = field(default_factory=dict)
    processes_before: int = 0
    processes_after: int = 0
    pss_before_kb: int = 0
    pss_after_kb: int = 0
    logins: int = 0
    refused: int = 0


async def open_session(
    executor: rx.Executor, options: ClaudeAgentOptions, row: Row, clients: list[rx.ClaudeSDKClient]
) -> None:
    client = rx.ClaudeSDKClient(options, executor=executor)
    try:
        await client.connect()
        clients.append(client)
        await client.query("hello")
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                if message.is_error:
                    row.problems.append(f"error result: {message.result!r}")
                else:
                    row.answered += 1
    except Exception as exc:
        row.problems.append(f"{type(exc).__name__}: {exc}")


async def run_row(
    name: str,
    make: Callable[[], rx.Executor],
    options: ClaudeAgentOptions,
    sessions: int,
    quiet: float,
    marker: str,
    log_path: Path | None,
    remote_root: int,
) -> Row:
    row = Row(name, sessions)
    executor = make()
    clients: list[rx.ClaudeSDKClient] = []
    log_offset = log_path.stat().st_size if log_path else 0
    try:
        # Warm-up: connection up, the stub paged in; then the "no session" figure.
        warm: list[rx.ClaudeSDKClient] = []
        await open_session(executor, options, Row(name, 1), warm)
        for client in warm:
            await client.disconnect()
        await anyio.sleep(2)
        before = measure_tree(marker, remote_root)
        row.pss_before_kb, row.processes_before = before.pss_kb, before.processes
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(sessions):
                tg.start_soon(open_session, executor, options, row, clients)
        row.open_seconds = time.perf_counter() - start
        await anyio.sleep(3)  # let the turn-end syncs and followers settle
        first = measure_tree(marker, remote_root)
        remote_first = tree_ticks(remote_root)
        usage_first = tree_usage(remote_root)
        forks = start_fork_counter(remote_root)
        await anyio.sleep(quiet)
        if forks is not None:
            forks.__exit__(None, None, None)
            row.remote_forks_per_second = forks.total() / quiet / sessions
            row.remote_forks_by = dict(forks.forks.most_common(4))
        last = measure_tree(marker, remote_root)
        remote_last = tree_ticks(remote_root)
        parts = split(usage_first, tree_usage(remote_root))
        row.remote_sshd_per_session = parts.sshd / TICKS / quiet / sessions
        row.remote_jobs_per_session = parts.jobs / TICKS / quiet / sessions
        row.remote_ticks_by = {k: v for k, v in parts.by_command.most_common(5) if v}
        row.pss_after_kb, row.processes_after = last.pss_kb, last.processes
        row.memory_kb_per_session = (last.pss_kb - before.pss_kb) / sessions
        row.cpu_per_session = (last.ticks - first.ticks) / TICKS / quiet / sessions
        row.remote_cpu_per_session = (remote_last - remote_first) / TICKS / quiet / sessions
    finally:
        with anyio.CancelScope(shield=True):
            for client in clients:
                try:
                    await client.disconnect()
                except Exception as exc:
                    row.problems.append(f"disconnect: {type(exc).__name__}: {exc}")
            aclose = getattr(executor, "aclose", None)
            if aclose is not None:
                await aclose()
    if log_path is not None:
        with log_path.open("rb") as f:
            f.seek(log_offset)
            log = f.read().decode(errors="replace")
        row.logins = log.count("Accepted publickey for ")
        row.refused = log.count("no more sessions")
    return row


def start_fork_counter(root: int) -> ForkCounter | None:
    try:
        return ForkCounter(root).__enter__()
    except OSError as exc:  # not root: no process events
        print(f"forks not counted: {exc}")
        return None


def report_remote(row: Row) -> None:
    if row.name == "docker":
        return  # the container's processes are not under the bed's sshd
    ticks = ", ".join(f"{name} {n}" for name, n in row.remote_ticks_by.items()) or "none"
    print(
        f"  remote CPU split: sshd {row.remote_sshd_per_session * 100:.3f} %, "
        f"the account's job processes {row.remote_jobs_per_session * 100:.3f} % "
        f"per idle session (ticks by command: {ticks})"
    )
    if row.remote_forks_per_second >= 0:
        by = ", ".join(f"{name} {n}" for name, n in row.remote_forks_by.items()) or "none"
        print(
            f"  remote forks: {row.remote_forks_per_second:.3f} per second per idle session "
            f"(by forking command: {by})"
        )


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def report(row: Row, base: Row | None) -> None:
    mib = row.memory_kb_per_session / 1024
    cpu = row.cpu_per_session
    print(f"[{row.name}] {row.answered}/{row.sessions} sessions answered")
    for problem in sorted(set(row.problems))[:5]:
        print(f"  problem ({row.problems.count(problem)}x): {problem[:300]}")
    print(f"  open all {row.sessions} (connect + first result): {row.open_seconds:.2f} s")
    print(
        f"  local memory: {mib:.2f} MiB PSS per idle session "
        f"({row.pss_before_kb / 1024:.0f} -> {row.pss_after_kb / 1024:.0f} MiB, "
        f"{row.processes_before} -> {row.processes_after} processes; target <= "
        f"{MEMORY_TARGET_MIB:g} MiB: {'ok' if mib <= MEMORY_TARGET_MIB else 'MISSED'})"
    )
    print(
        f"  local CPU: {cpu * 100:.3f} % of a core per idle session "
        f"(target <= {CPU_TARGET * 100:g} %: {'ok' if cpu <= CPU_TARGET else 'MISSED'})"
    )
    if row.name != "local" and row.name != "docker":
        print(f"  sshd: {row.logins} logins, {row.refused} session channels refused")
        # Not a target (the remote is another machine), but idle work there too.
        print(
            f"  remote CPU (sshd, watchdogs, followers, stub CLIs): "
            f"{row.remote_cpu_per_session * 100:.3f} % of a core per idle session"
        )
    if row.name != "local":
        report_remote(row)
    if base is not None and row is not base:
        print(
            f"  {row.name}/local: open {ratio(row.open_seconds, base.open_seconds):.2f}x, "
            f"CPU {ratio(row.cpu_per_session, base.cpu_per_session):.2f}x"
        )


async def measure(args: argparse.Namespace) -> None:
    rows = args.rows.split(",")
    load = os.getloadavg()
    found: list[Row] = []
    with bench_bed() as (_model, bed, account, cfg, local, tmp):
        stub = install_stub_cli(account)
        remote_options = ClaudeAgentOptions(cwd=str(local), cli_path=str(stub))
        local_options = ClaudeAgentOptions(
            cwd=str(local),
            cli_path=str(STUB_CLI),
            env={"CLAUDE_CONFIG_DIR": str(Path(tmp) / "local-claude")},
        )
        marker = str(cfg.path)
        # The bed's reaper: sshd's parent, root of every "remote" process.
        remote_root = int(stat_fields(str(bed.pid))[1])
        for name in rows:
            if name == "local":
                row = await run_row(
                    name,
                    rx.LocalExecutor,
                    local_options,
                    args.sessions,
                    args.quiet,
                    marker,
                    None,
                    remote_root,
                )
            elif name in ("openssh", "fabric"):
                make = partial(rx.SSHExecutor, cfg.alias, ssh_config=str(cfg.path), backend=name)
                row = await run_row(
                    name,
                    make,
                    remote_options,
                    args.sessions,
                    args.quiet,
                    marker,
                    bed.log_path,
                    remote_root,
                )
            elif name == "docker":
                row = await docker_row(args, local, marker, remote_root)
            else:
                raise SystemExit(f"unknown row {name!r}")
            found.append(row)
    print(
        f"{args.sessions} idle sessions from one process (docker: {args.docker_sessions}), "
        f"stub CLI, quiet window {args.quiet:g} s"
    )
    print(f"load average (1 min) at start/end: {load[0]:.1f} / {os.getloadavg()[0]:.1f}")
    base = next((r for r in found if r.name == "local"), None)
    for row in found:
        report(row, base)
    if base is not None:
        # Totals, not per-session figures: a local idle session costs ~0 here.
        print(
            "local memory with the sessions open, vs local: "
            + ", ".join(
                f"{r.name} {r.pss_after_kb / base.pss_after_kb:.2f}x"
                for r in found
                if r is not base and base.pss_after_kb
            )
        )
    print(
        "summary: "
        + "; ".join(
            f"{r.name} {r.answered}/{r.sessions} ok, "
            f"{r.memory_kb_per_session / 1024:.2f} MiB, "
            f"{r.cpu_per_session * 100:.3f} %cpu, open {r.open_seconds:.1f} s"
            for r in found
        )
    )
    remote = [r for r in found if r.name in ("openssh", "fabric")]
    if remote:
        print(
            "remote summary (per idle session): "
            + "; ".join(
                f"{r.name} {r.remote_cpu_per_session * 100:.3f} %cpu "
                f"(jobs {r.remote_jobs_per_session * 100:.3f} %), "
                f"{r.remote_forks_per_second:.3f} forks/s"
                for r in remote
            )
        )


async def docker_row(args: argparse.Namespace, local: Path, marker: str, remote_root: int) -> Row:
    from remote_executors.testing.docker import ContainerBed, engine_available

    if (why := engine_available("docker")) is not None:
        print(f"docker row skipped: {why}")
        return Row("docker", 0)
    with ContainerBed() as bed:
        box = bed.container()
        stub = f"{box.home}/.local/bin/claude-stub"
        box.exec(["mkdir", "-p", f"{box.home}/.local/bin", f"{box.home}/{local.name}"])
        box.path(stub).write_bytes(STUB_CLI.read_bytes())
        box.path(stub).chmod(0o755)
        options = ClaudeAgentOptions(cwd=str(local), cli_path=stub)
        return await run_row(
            "docker",
            partial(rx.DockerExecutor, box.name, path_map={str(local): f"{box.home}/{local.name}"}),
            options,
            args.docker_sessions,
            args.quiet,
            marker,
            None,
            remote_root,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--docker-sessions", type=int, default=20)
    parser.add_argument("--quiet", type=float, default=30.0, help="idle window, seconds")
    parser.add_argument("--rows", default="local,openssh,fabric,docker")
    anyio.run(measure, parser.parse_args())


if __name__ == "__main__":
    main()
