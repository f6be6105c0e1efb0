"""Live transcripts on the loopback test bed: lag per line, and the cost at the result.

    sudo .venv/bin/python bench/bench_live.py [--steps N] [--turns T] [--runs R] [--model-delay S]
        [--backend openssh|fabric|both] [--cores shared|split|both]
        [--compare-no-live] [--compare-linger]

Per SSH backend, on a warm SSHExecutor (the real CLI, the scripted model):

- live lag: one long turn of N steps (a Bash call each, the model answering
  0.15 s later), with the follower waiting on inotifywait (when installed on
  this machine) and with it polling; a thread watches the remote transcript and its local copy
  (both on this machine) every millisecond and notes when each line appeared
  on each side. Prints p50/p95/max of local minus remote time over every line
  (target: p95 <= 100 ms), and the follower's CPU time on the remote.
- result-time overhead: T short turns with the follower (one confirmation at
  the result) and T without it (``live=False``: a pull at the result, as
  before); prints the median time the result was held back for each (target:
  <= 10 ms with the follower).
- warm ratios: R one-turn sessions each locally and on a warm executor with
  the follower (the default), in pairs (alternating order, a 0.5 s pause
  before each); prints remote/local medians of the time to the first
  message, to the result (target: <= 1.05) and to the session's end (the
  CLI exited, the transcripts in step: what a caller waiting for the query
  to finish sees), each with a 95 % bootstrap interval over the rounds:
  single sessions vary by tens of ms here, so take enough runs (--runs 40
  and up) for the interval to mean something. ``--compare-no-live`` adds
  sessions with ``live=False`` on the same executor (a pull at the result).
  ``--compare-linger`` adds sessions on a second warm executor whose follower
  stops with each session (it waits for the next one otherwise). Twice by
  default: with every process on every core, as the bed is,
  and with the bed split into two 1-core machines (``--cores``): on shared
  cores the remote side's CPU (sshd, its shells and perls, the remote CLI)
  also slows the local side, which two machines would not do.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import anyio
from _bed import BenchBed, Timing, backend_name, bench_bed, one_session
from _remote_cost import descendants
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage

import remote_executors as rx
from remote_executors.executors.ssh import BACKENDS
from remote_executors.paths import project_dir_from_cwd
from remote_executors.sync import _follow_channel, _per_session
from remote_executors.sync._follower import LiveFollower
from remote_executors.sync._per_session import SessionSyncer
from remote_executors.testing.mirror_watch import MirrorWatch, percentile
from remote_executors.testing.model import ScriptedModel, slow, text, tool_use
from remote_executors.testing.sshd import FOLLOWER_MARK

HOLDS: list[float] = []  # seconds each result was held back


def time_after_turn() -> None:
    """Time every SessionSyncer.after_turn (the hold at each result)."""
    original: Callable[[SessionSyncer], Awaitable[list[dict[str, Any]]]] = SessionSyncer.after_turn

    async def timed(self: SessionSyncer) -> list[dict[str, Any]]:
        start = time.perf_counter()
        try:
            return await original(self)
        finally:
            HOLDS.append(time.perf_counter() - start)

    SessionSyncer.after_turn = timed  # type: ignore[method-assign]


def follower_cpu(b: BenchBed) -> float:
    """CPU seconds used so far by the account's live followers."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in b.bed.processes(b.account):
        if FOLLOWER_MARK in p.args:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def follower_waits(wait: Literal["auto", "poll"]) -> None:
    """Make every session's follower wait this way (auto: inotifywait where installed)."""
    # A class swapped for a factory of it: what the syncer calls is all that matters.
    _per_session.LiveFollower = functools.partial(LiveFollower, wait=wait)  # type: ignore[attr-defined, assignment]


async def long_turn(b: BenchBed, backend: str, steps: int) -> tuple[list[float], float, float]:
    """(lags, follower CPU seconds, turn seconds) for one long turn."""
    tag = f"[live-{backend}-{time.time_ns()}]"
    b.model.script(
        text("warm"),
        *(
            tool_use("Bash", {"command": f"echo step {i}", "description": "echo"}, delay=0.15)
            for i in range(steps)
        ),
        text("done", delay=0.15),
        when=tag,
    )
    remote_dir = (
        b.bed.remote_home(b.account)
        / ".claude"
        / "projects"
        / project_dir_from_cwd(os.path.realpath(b.bed.remote_home(b.account) / b.local.name))
    )
    local_dir = (
        Path(os.environ["CLAUDE_CONFIG_DIR"]) / "projects" / project_dir_from_cwd(str(b.local))
    )
    options = ClaudeAgentOptions(cwd=str(b.local), allowed_tools=["Bash"])
    executor = rx.SSHExecutor(
        b.cfg.alias, ssh_config=str(b.cfg.path), backend=backend_name(backend)
    )
    async with executor, rx.ClaudeSDKClient(options, executor=executor) as client:
        await client.query(f"{tag} warm up")
        async for _ in client.receive_response():
            pass
        with MirrorWatch(remote_dir, local_dir) as watch:
            start = time.perf_counter()
            await client.query(f"{tag} go")
            async for m in client.receive_response():
                if isinstance(m, ResultMessage):
                    assert not m.is_error, m
            seconds = time.perf_counter() - start
            cpu = await anyio.to_thread.run_sync(follower_cpu, b)
    assert not watch.violations, watch.violations
    return watch.lags(), cpu, seconds


async def holds(b: BenchBed, backend: str, turns: int, live: bool) -> list[float]:
    """The result holds of ``turns`` short turns (the first, cold one left out)."""
    tag = f"[hold-{backend}-{live}-{time.time_ns()}]"
    b.model.script(
        *(
            reply
            for i in range(turns + 1)
            for reply in (
                tool_use("Bash", {"command": f"echo {i}", "description": "echo"}),
                text(f"turn {i} done"),
            )
        ),
        when=tag,
    )
    options = ClaudeAgentOptions(cwd=str(b.local), allowed_tools=["Bash"])
    executor = rx.SSHExecutor(
        b.cfg.alias, ssh_config=str(b.cfg.path), backend=backend_name(backend)
    )
    async with executor, rx.ClaudeSDKClient(options, executor=executor, live=live) as client:
        HOLDS.clear()
        for i in range(turns + 1):
            await client.query(f"{tag} turn {i}")
            async for _ in client.receive_response():
                pass
    return HOLDS[1 : turns + 1]


async def scripted_session(
    executor: rx.Executor,
    options: ClaudeAgentOptions,
    live: bool,
    model: ScriptedModel,
    delay: float,
) -> Timing:
    """:func:`_bed.one_session`; with ``delay``, the model answers after that many
    seconds (as a real one takes)."""
    if delay > 0:
        model.script(slow(text("hi"), delay=delay))
    return await one_session(executor, options, live=live)


@contextlib.contextmanager
def two_machines(b: BenchBed) -> Iterator[None]:
    """The bed as two 1-core machines: sshd and all it starts on CPU 1 (the
    remote), this process and all it starts on CPU 0 (the app's machine, with
    its local CLIs, its ssh clients and the stand-in model).

    Shared cores charge the remote's work (sshd, its shells and perls, the
    remote CLI) to the local side's time too, which two machines would not.
    Affinity is inherited at fork: only what starts inside the block is split.
    """
    if (os.cpu_count() or 1) < 2 or b.bed.pid is None:
        raise SystemExit("--cores split needs 2 cores and a running bed")
    everything = os.sched_getaffinity(0)
    threads = [int(t) for t in os.listdir("/proc/self/task")]
    remote = descendants(b.bed.pid)
    for tid in threads:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(tid, {0})
    for pid in remote:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {1})
    try:
        yield
    finally:
        for tid in [int(t) for t in os.listdir("/proc/self/task")]:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, everything)
        for pid in descendants(b.bed.pid):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, everything)


async def ratios(
    b: BenchBed,
    backend: str,
    runs: int,
    delay: float,
    compare_no_live: bool = False,
    compare_linger: bool = False,
) -> dict[str, list[Timing]]:
    """Timings of one-turn sessions, a row per round: local, and on a warm executor
    with the follower, interleaved. ``compare_no_live``: also on that executor
    without it; ``compare_linger``: also on a second warm executor whose follower
    stops with each session (as before it lingered)."""
    local_options = ClaudeAgentOptions(
        cwd=str(b.local),
        env={**b.model.cli_env(), "CLAUDE_CONFIG_DIR": str(Path(b.tmp) / "local-run-claude")},
    )
    remote_options = ClaudeAgentOptions(cwd=str(b.local))
    linger = _follow_channel.LINGER_SECONDS
    async with contextlib.AsyncExitStack() as stack:
        executor = await stack.enter_async_context(
            rx.SSHExecutor(b.cfg.alias, ssh_config=str(b.cfg.path), backend=backend_name(backend))
        )
        # (kind, executor, options, live, the follower lingers)
        kinds: list[tuple[str, rx.Executor, ClaudeAgentOptions, bool, bool]] = [
            ("local", rx.LocalExecutor(), local_options, True, True),
            ("live", executor, remote_options, True, True),
        ]
        if compare_no_live:
            kinds.append(("no live", executor, remote_options, False, True))
        if compare_linger:
            other = await stack.enter_async_context(
                rx.SSHExecutor(
                    b.cfg.alias, ssh_config=str(b.cfg.path), backend=backend_name(backend)
                )
            )
            kinds.append(("live, follower stops", other, remote_options, True, False))
        for _, ex, options, _, lingers in kinds:  # warm-up
            _follow_channel.LINGER_SECONDS = linger if lingers else 0.0
            await one_session(ex, options)
        rows: dict[str, list[Timing]] = {kind[0]: [] for kind in kinds}
        try:
            for n in range(runs):
                # Each kind once per round, in a rotated order, each after a pause (a
                # user reading the last answer): a session does not start while the
                # previous one winds down (its CLI exiting, the spare channel
                # reopening), which would charge that work to whichever kind came next.
                turn = n % len(kinds)
                for kind, ex, options, live, lingers in kinds[turn:] + kinds[:turn]:
                    _follow_channel.LINGER_SECONDS = linger if lingers else 0.0
                    await anyio.sleep(0.5)
                    rows[kind].append(await scripted_session(ex, options, live, b.model, delay))
        finally:
            _follow_channel.LINGER_SECONDS = linger
    return rows


def median_timing(rows: list[Timing]) -> Timing:
    return Timing(*(statistics.median(column) for column in zip(*rows, strict=True)))


def ratio_interval(
    remote: list[Timing], local: list[Timing], field: str, draws: int = 2000
) -> tuple[float, float, float]:
    """remote/local of the medians of ``field``, with a 95 % bootstrap interval.

    Rounds are resampled whole (a round's local and remote sessions ran side by
    side, under the same load), so the interval says how far the ratio could
    move on another run of the same length: a target is met when the upper end
    is under it.
    """
    pairs = [(getattr(r, field), getattr(lo, field)) for r, lo in zip(remote, local, strict=True)]

    def ratio(sample: list[tuple[float, float]]) -> float:
        return statistics.median(r for r, _ in sample) / statistics.median(lo for _, lo in sample)

    rng = random.Random(1)  # the same interval for the same figures
    spread = sorted(ratio(rng.choices(pairs, k=len(pairs))) for _ in range(draws))
    return ratio(pairs), spread[int(draws * 0.025)], spread[int(draws * 0.975) - 1]


async def measure(
    steps: int,
    turns: int,
    runs: int,
    backends: tuple[str, ...],
    delay: float,
    cores: tuple[str, ...],
    compare_no_live: bool,
    compare_linger: bool,
) -> None:
    time_after_turn()
    load = os.getloadavg()
    with bench_bed("local-claude") as b:
        b.bed.run_as(b.account, ["mkdir", "-p", str(b.bed.remote_home(b.account) / b.local.name)])
        print(f"live transcripts, {steps}-step turn; result holds over {turns} turns")
        inotify = shutil.which("inotifywait") is not None
        for backend in backends:
            waits: tuple[Literal["auto", "poll"], ...] = ("auto", "poll") if inotify else ("poll",)
            for wait in waits:
                follower_waits(wait)
                lags, cpu, seconds = await long_turn(b, backend, steps)
                how = "inotifywait" if wait == "auto" else "poll"
                p50, p95 = percentile(lags, 50) * 1000, percentile(lags, 95) * 1000
                print(
                    f"[{backend}, {how}] live lag over {len(lags)} lines: p50 {p50:.1f} ms, "
                    f"p95 {p95:.1f} ms, max {max(lags) * 1000:.1f} ms (target p95 <= 100 ms)"
                )
                print(
                    f"[{backend}, {how}] follower CPU on the remote: {cpu * 1000:.0f} ms "
                    f"over the session (the long turn alone took {seconds:.1f} s)"
                )
            follower_waits("auto")
            for how in cores if runs else ():
                with two_machines(b) if how == "split" else contextlib.nullcontext():
                    rows = await ratios(b, backend, runs, delay, compare_no_live, compare_linger)
                lo = median_timing(rows["local"])
                for kind in [k for k in rows if k != "local"]:
                    t = median_timing(rows[kind])
                    shown = []
                    for field, label in (("first", "first message"), ("result", "result"),
                                         ("closed", "session over")):  # fmt: skip
                        mid, low, high = ratio_interval(rows[kind], rows["local"], field)
                        shown.append(f"{label} {mid:.3f}x [{low:.3f}-{high:.3f}]")
                    print(
                        f"[{backend}, {how} cores] warm remote ({kind})/local over {runs} "
                        f"one-turn sessions (model replies after {delay:g} s), medians with "
                        f"95 % intervals: {', '.join(shown)} "
                        f"({t.first * 1000:.0f}/{t.result * 1000:.0f}/{t.closed * 1000:.0f} ms "
                        f"vs {lo.first * 1000:.0f}/{lo.result * 1000:.0f}/"
                        f"{lo.closed * 1000:.0f} ms)"
                    )
            with_live = await holds(b, backend, turns, live=True)
            without = await holds(b, backend, turns, live=False)
            a, c = statistics.median(with_live), statistics.median(without)
            print(
                f"[{backend}] result held back: median {a * 1000:.1f} ms with the follower "
                f"(max {max(with_live) * 1000:.1f}), {c * 1000:.1f} ms with a pull "
                f"(max {max(without) * 1000:.1f}); target <= 10 ms"
            )
    print(
        f"load average (1 min) at start/end: {load[0]:.1f} / {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--runs", type=int, default=7, help="one-turn sessions for the ratios")
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument(
        "--model-delay",
        type=float,
        default=0.0,
        help="seconds the model takes per reply in the ratio sessions (0: at once, so the "
        "fixed cost of a remote spawn dominates; a real model takes seconds)",
    )
    parser.add_argument(
        "--cores",
        choices=["shared", "split", "both"],
        default="both",
        help="for the ratios: every process on every core (the bed as it is), or the bed "
        "as two 1-core machines (the remote side on CPU 1, this process and the local "
        "CLIs on CPU 0)",
    )
    parser.add_argument(
        "--compare-no-live",
        action="store_true",
        help="for the ratios: also sessions with live=False on the same executor",
    )
    parser.add_argument(
        "--compare-linger",
        action="store_true",
        help="for the ratios: also sessions on a second warm executor whose live follower "
        "stops with each session (it waits for the next one otherwise)",
    )
    args = parser.parse_args()
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    cores = ("shared", "split") if args.cores == "both" else (args.cores,)
    anyio.run(
        measure,
        args.steps,
        args.turns,
        args.runs,
        backends,
        args.model_delay,
        cores,
        args.compare_no_live,
        args.compare_linger,
    )


if __name__ == "__main__":
    main()
