"""Concurrent sessions on one host through one SSHExecutor, on the loopback test bed.

    sudo .venv/bin/python bench/bench_concurrent_sessions.py [--sessions N] [--runs R]
        [--backend openssh|fabric|both] [--model-delay SECONDS]

For each SSH backend, one executor (one connection) first runs one session
alone, then N sessions at once (the real CLI, the scripted model); R times.
LocalExecutor does the same first, as the baseline: the "remote" CLIs run on
this machine too, so the machine's own scaling bounds every row. Each session
is a short multi-step turn: the model calls Bash, then answers with text,
each reply after ``--model-delay`` seconds (a stand-in for a real model's
latency). Per row it prints:

- how many of the N completed: a ResultMessage that is no error, its turn in
  the local transcript when the result arrived and, remote, the local copy
  byte-identical to the remote one once the CLI exited; the error text of
  every check that failed;
- the wall time of the N against the wall time of one (target: <= 2x), and
  the CPU the sessions used: with N x that on this machine's cores, the batch
  cannot finish faster than the "CPU floor" printed;
- the local memory: the peak RSS of this process during the batch and, for
  openssh, the peak summed PSS of its ssh client processes (the work the
  fabric backend does in-process);
- the TCP connections to the bed's sshd: the most open at once and how many
  distinct ones were seen (client sockets in /proc/net/tcp, sampled), the
  per-connection sshd processes as a cross-check and, exactly, from sshd's
  log: the logins during the batch and the session channels it refused.

sshd's MaxSessions (default 10) caps the channels of one connection, and N
sessions plus their transcript pulls can need more than 10 at once.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio
from _bed import backend_name, bench_bed
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from remote_executors.executors.ssh import BACKENDS
from remote_executors.testing.model import ScriptedModel, slow, text, tool_use
from remote_executors.testing.sshd import RemoteAccount, SSHTestBed

T = TypeVar("T")
SAMPLE_SECONDS = 0.1
TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


# -- what the machine shows (Linux /proc) -------------------------------------


def established_client_ports(server_port: int) -> set[int]:
    """Local ports of ESTABLISHED loopback connections *to* ``server_port``."""
    ports = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            # Only the client end: the server end has the port on its local side.
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def pss_kb(pid: str) -> int:
    # PSS, not RSS: many ssh processes share one set of library pages.
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stat_fields(pid: str) -> list[str]:
    """/proc/PID/stat from field 3 (state) on: rest[1] is the ppid, rest[11:15]
    utime, stime and the cutime, cstime of its waited-for children."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2 :].split()  # comm may hold spaces


def tree_ticks(root: int) -> int:
    """CPU ticks used by ``root`` and every descendant, living or reaped.

    Each living process's own time plus what it collected from children it
    waited for counts every tick once, as long as the tree reaps its own
    orphans: the bed's sshd runs under a child-subreaper that does.
    """
    children: dict[int, list[int]] = {}
    usage: dict[int, int] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            rest = stat_fields(pid)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(int(rest[1]), []).append(int(pid))
        usage[int(pid)] = sum(int(v) for v in rest[11:15])
    total, todo = 0, [root]
    while todo:
        node = todo.pop()
        total += usage.get(node, 0)
        todo.extend(children.get(node, []))
    return total


@dataclass
class Scan:
    ssh_clients: list[str] = field(default_factory=list)
    detached_ticks: dict[str, int] = field(default_factory=dict)  # ssh pid -> own CPU ticks
    sshd: int = 0


def scan_processes(marker: str, uid: int | None) -> Scan:
    """Local ssh processes whose command line names ``marker`` (our ssh_config),
    the own CPU of those not our children (the ControlMaster: ``ssh -f``
    detaches it), and the sshd processes running as ``uid`` (one per
    connection: the privilege-separated child)."""
    scan = Scan()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            if comm == "ssh":
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() not in f.read():
                        continue
                scan.ssh_clients.append(pid)
                rest = stat_fields(pid)
                # Our own children's CPU is in RUSAGE_CHILDREN once they are waited for.
                if int(rest[1]) != os.getpid():
                    scan.detached_ticks[pid] = int(rest[11]) + int(rest[12])
            elif comm == "sshd" and uid is not None and os.stat(f"/proc/{pid}").st_uid == uid:
                scan.sshd += 1
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return scan


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux >= 4.0), so a phase gets its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


@dataclass
class Seen:
    """What was observed over one phase."""

    conns_peak: int = 0
    conns_used: set[int] = field(default_factory=set)
    sshd_peak: int = 0
    ssh_procs_peak: int = 0
    ssh_pss_peak_kb: int = 0
    rss_peak_kb: int = 0  # VmHWM, or the sampled peak where it cannot be reset
    detached_ticks: dict[str, int] = field(default_factory=dict)  # during the phase
    cpu_local: float = 0.0  # seconds: this process, its children, the detached ssh
    cpu_remote: float = 0.0  # seconds: the bed's whole process tree (sshd, CLIs, tools)
    cpu_busy: float = 0.0  # fraction of all cores, anything on the machine
    logins: int = 0  # sshd's log: connections authenticated during the phase
    refused: int = 0  # sshd's log: session channels refused (MaxSessions)


async def sample(into: Seen, port: int, marker: str, uid: int | None, stop: anyio.Event) -> None:
    start = scan_processes(marker, uid).detached_ticks  # CPU from before is not the phase's
    while True:
        ports = established_client_ports(port)
        into.conns_peak = max(into.conns_peak, len(ports))
        into.conns_used |= ports
        scan = scan_processes(marker, uid)
        into.sshd_peak = max(into.sshd_peak, scan.sshd)
        into.ssh_procs_peak = max(into.ssh_procs_peak, len(scan.ssh_clients))
        pss = sum(pss_kb(p) for p in scan.ssh_clients)
        into.ssh_pss_peak_kb = max(into.ssh_pss_peak_kb, pss)
        into.rss_peak_kb = max(into.rss_peak_kb, status_kb("VmRSS"))
        for pid, ticks in scan.detached_ticks.items():
            into.detached_ticks[pid] = ticks - start.get(pid, 0)
        if stop.is_set():
            return
        with anyio.move_on_after(SAMPLE_SECONDS):
            await stop.wait()


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def own_cpu() -> float:
    """CPU seconds of this process plus its children that were waited for (local CLIs)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


# -- sessions -------------------------------------------------------------------


@dataclass
class Outcome:
    seconds: float = 0.0
    problem: str = ""  # empty: completed (and synced)


class Bench:
    def __init__(
        self,
        model: ScriptedModel,
        bed: SSHTestBed,
        account: RemoteAccount,
        marker: str,
        local: Path,
        local_config: Path,
        delay: float,
    ) -> None:
        self.model = model
        self.bed = bed
        self.account = account
        self.marker = marker
        self.local = local
        self.local_config = local_config
        self.local_home = local_config.parent / "local-home"
        self.local_home.mkdir(exist_ok=True)
        self.delay = delay
        name = rx.project_dir_from_cwd(str(local))
        # Where remote sessions are synced to, and where local ones are written.
        self.synced = Path(os.environ["CLAUDE_CONFIG_DIR"]) / "projects" / name
        self.local_projects = local_config / "projects" / name

    def remote_transcript(self, sid: str) -> Path | None:
        found = list((self.account.claude_config_dir / "projects").glob(f"*/{sid}.jsonl"))
        return found[0] if len(found) == 1 else None

    async def session(self, executor: rx.Executor, tag: str) -> Outcome:
        remote = isinstance(executor, rx.SSHExecutor)
        # The tag in the opening prompt routes this script to this session only.
        done = f"done {tag}"
        self.model.script(
            slow(
                tool_use("Bash", {"command": f"echo step {tag}", "description": "echo"}),
                delay=self.delay,
            ),
            slow(text(done), delay=self.delay),
            when=tag,
        )
        if remote:
            options = ClaudeAgentOptions(cwd=str(self.local), allowed_tools=["Bash"])
            transcripts = self.synced
        else:
            # A fresh home and the account's shell, like the remote CLIs get: our
            # own rc files would slow the Bash tool's shell and skew the baseline.
            env = {
                **self.model.cli_env(),
                "CLAUDE_CONFIG_DIR": str(self.local_config),
                "HOME": str(self.local_home),
                "SHELL": self.account.shell,
            }
            options = ClaudeAgentOptions(cwd=str(self.local), allowed_tools=["Bash"], env=env)
            transcripts = self.local_projects
        problems: list[str] = []
        result: ResultMessage | None = None
        start = time.perf_counter()
        try:
            prompt = f"{tag} run the step"
            async with aclosing(rx.query(prompt=prompt, options=options, executor=executor)) as s:
                async for message in s:
                    status = rx.SessionSyncStatus.from_message(message)
                    if status is not None and not status.ok:
                        problems.append(f"sync status: {status.error}: {status.detail}")
                    if isinstance(message, ResultMessage):
                        result = message
                        # A remote result is handed on only once the turn is local.
                        path = transcripts / f"{message.session_id}.jsonl"
                        if not (path.exists() and done in path.read_text(errors="replace")):
                            problems.append("turn not in the local transcript at the result")
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - start
        if result is None:
            problems.append("no ResultMessage")
        else:
            if result.is_error or result.subtype != "success":
                problems.append(f"result is an error: {result.subtype} {result.result!r}")
            if remote:
                there = self.remote_transcript(result.session_id)
                here = transcripts / f"{result.session_id}.jsonl"
                if there is None or not here.exists():
                    problems.append(f"transcript missing (remote {there}, local {here.exists()})")
                elif there.read_bytes() != here.read_bytes():
                    problems.append("local transcript differs from the remote one after exit")
        return Outcome(seconds, "; ".join(problems))

    async def batch(self, executor: rx.Executor, tags: list[str]) -> list[Outcome]:
        outcomes = [Outcome() for _ in tags]

        async def one(i: int) -> None:
            outcomes[i] = await self.session(executor, tags[i])

        async with anyio.create_task_group() as tg:
            for i in range(len(tags)):
                tg.start_soon(one, i)
        return outcomes

    async def observed(self, work: Callable[[], Awaitable[T]], remote: bool) -> tuple[T, Seen]:
        """``await work()`` with the sampler on: its result and what was seen."""
        seen = Seen()
        stop = anyio.Event()
        reset = reset_peak_rss()
        busy0, total0 = machine_cpu()
        own0 = own_cpu()
        # The bed's reaper: sshd's parent, root of every remote process.
        bed_root = int(stat_fields(str(self.bed.pid))[1])
        tree0 = tree_ticks(bed_root)
        log_offset = self.bed.log_path.stat().st_size
        uid = self.account.uid if remote else None
        async with anyio.create_task_group() as tg:
            tg.start_soon(sample, seen, self.bed.port, self.marker, uid, stop)
            try:
                result = await work()
            finally:
                stop.set()
        busy1, total1 = machine_cpu()
        seen.cpu_busy = (busy1 - busy0) / max(1, total1 - total0)
        seen.cpu_local = own_cpu() - own0 + sum(seen.detached_ticks.values()) / TICKS
        seen.cpu_remote = (tree_ticks(bed_root) - tree0) / TICKS
        # Exact, where sampling /proc/net/tcp can miss a short-lived connection.
        with self.bed.log_path.open("rb") as f:
            f.seek(log_offset)
            log = f.read().decode(errors="replace")
        seen.logins = log.count(f"Accepted publickey for {self.account.user} ")
        seen.refused = log.count("no more sessions")
        if reset:
            seen.rss_peak_kb = max(seen.rss_peak_kb, status_kb("VmHWM"))
        return result, seen


@dataclass
class Run:
    single: Outcome
    single_seen: Seen
    wall: float
    outcomes: list[Outcome]
    seen: Seen


async def run_row(
    bench: Bench, name: str, make: Callable[[], rx.Executor], sessions: int, runs: int
) -> list[Run]:
    found = []
    executor = make()
    remote = isinstance(executor, rx.SSHExecutor)
    try:
        # Warm-up: connection up, claude found on the host, CLI paged in.
        warm = await bench.session(executor, f"<{name}-warm>")
        if warm.problem:
            raise SystemExit(f"{name}: the warm-up session failed: {warm.problem}")
        for run in range(runs):
            single, single_seen = await bench.observed(
                partial(bench.session, executor, f"<{name}-{run}-single>"), remote
            )
            tags = [f"<{name}-{run}-{i:02}>" for i in range(sessions)]
            start = time.perf_counter()
            outcomes, seen = await bench.observed(partial(bench.batch, executor, tags), remote)
            wall = time.perf_counter() - start
            found.append(Run(single, single_seen, wall, outcomes, seen))
    finally:
        if isinstance(executor, rx.SSHExecutor):
            await executor.aclose()
    return found


@dataclass
class Figures:
    single: float
    batch: float
    memory_mib: float


def report(name: str, runs: list[Run], sessions: int) -> Figures:
    single = statistics.median(r.single.seconds for r in runs)
    batch = statistics.median(r.wall for r in runs)
    remote = name != "local"
    print(f"[{name}]")
    ok = [sum(1 for o in r.outcomes if not o.problem) for r in runs]
    print(f"  completed: {', '.join(f'{n}/{sessions}' for n in ok)} (per run)")
    for i, r in enumerate(runs):
        for o in [r.single, *r.outcomes]:
            if o.problem:
                which = "the single session" if o is r.single else "a batch session"
                print(f"  run {i}, {which}, FAILED after {o.seconds:.2f} s: {o.problem}")
    print(
        f"  wall: one session {single:.2f} s, {sessions} at once {batch:.2f} s -> "
        f"{batch / single:.2f}x (target <= 2x)"
    )
    each = [o.seconds for r in runs for o in r.outcomes]
    print(f"  each batch session: median {statistics.median(each):.2f} s, max {max(each):.2f} s")
    # CPU "here": this process (the scripted model's server too), its children
    # (local CLIs, ssh clients) and the detached ControlMaster; "there": the
    # bed's sshd and everything under it (remote CLIs, their tools).
    here = statistics.median(r.seen.cpu_local / sessions for r in runs)
    there = statistics.median(r.seen.cpu_remote / sessions for r in runs)
    alone = statistics.median(r.single_seen.cpu_local + r.single_seen.cpu_remote for r in runs)
    print(
        f"  CPU per session: alone {alone:.2f} s, in the batch {here + there:.2f} s "
        f"(here {here:.2f}, there {there:.2f}) -> CPU floor for {sessions} on {CORES} cores "
        f"{(here + there) * sessions / CORES:.2f} s; machine busy during the batch "
        + ", ".join(f"{r.seen.cpu_busy * 100:.0f}%" for r in runs)
    )
    if remote:
        print(
            f"  TCP connections to sshd during the batch (sampled every {SAMPLE_SECONDS:g} s): "
            f"peak open {max(r.seen.conns_peak for r in runs)}, distinct seen per run "
            f"{[len(r.seen.conns_used) for r in runs]}; per-connection sshd processes peak "
            f"{max(r.seen.sshd_peak for r in runs)} (one session alone: peak open "
            f"{max(r.single_seen.conns_peak for r in runs)})"
        )
        print(
            f"  sshd log during the batch, per run: new logins {[r.seen.logins for r in runs]}, "
            f"session channels refused (MaxSessions) {[r.seen.refused for r in runs]}"
        )
    memory = max(r.seen.rss_peak_kb for r in runs) / 1024
    line = f"  local memory: this process peak RSS {memory:.0f} MiB"
    if any(r.seen.ssh_procs_peak for r in runs):
        pss = max(r.seen.ssh_pss_peak_kb for r in runs) / 1024
        procs = max(r.seen.ssh_procs_peak for r in runs)
        line += f"; ssh client processes peak {procs}, summed PSS {pss:.0f} MiB"
        memory += pss
    print(line)
    return Figures(single, batch, memory)


async def measure(sessions: int, runs: int, backends: tuple[str, ...], delay: float) -> None:
    found: dict[str, list[Run]] = {}
    load = os.getloadavg()
    with bench_bed() as (model, bed, account, cfg, local, tmp):
        bench = Bench(model, bed, account, str(cfg.path), local, Path(tmp) / "local-claude", delay)
        rows: dict[str, Callable[[], rx.Executor]] = {"local": rx.LocalExecutor}
        for backend in backends:
            rows[backend] = partial(
                rx.SSHExecutor, cfg.alias, ssh_config=str(cfg.path), backend=backend_name(backend)
            )
        for name, make in rows.items():
            found[name] = await run_row(bench, name, make, sessions, runs)

    print(
        f"{sessions} concurrent sessions on one host through one executor, {runs} run(s); "
        f"Bash tool call + text answer, model delay {delay:g} s per reply; medians"
    )
    # Other work on the machine skews every figure: say how much there was.
    print(
        f"load average (1 min) at start/end: {load[0]:.1f} / {os.getloadavg()[0]:.1f} "
        f"on {CORES} cores"
    )
    figures = {name: report(name, found[name], sessions) for name in found}
    base = figures["local"]
    for backend in backends:
        f = figures[backend]
        print(
            f"{backend}/local: one session {f.single / base.single:.2f}x, "
            f"{sessions} at once {f.batch / base.batch:.2f}x"
        )
    if set(BACKENDS) <= set(backends):
        fab, ossh = figures["fabric"], figures["openssh"]
        print(
            f"fabric/openssh: one session {fab.single / ossh.single:.2f}x, {sessions} at once "
            f"{fab.batch / ossh.batch:.2f}x, local memory (process RSS + ssh clients' PSS) "
            f"{fab.memory_mib / ossh.memory_mib:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--model-delay", type=float, default=0.5, help="seconds per reply")
    args = parser.parse_args()
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    anyio.run(measure, args.sessions, args.runs, backends, args.model_delay)


if __name__ == "__main__":
    main()
