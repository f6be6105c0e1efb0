"""``remote_executors.testing.FakeExecutor``: the in-memory executor host apps test with.

The parts of the executor conformance suite that make sense for a machine
with no shell run against a fake that plays ``cat`` (see ``NOT_APPLICABLE``
for the rest and why); the rest of this file checks what a host app relies
on: scripted ``run`` and ``spawn``, the capabilities the SDK seam probes
(a lost process, where it runs), and whole sessions through ``rx.query``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import anyio
import pytest
from claude_agent_sdk import AssistantMessage, ClaudeAgentOptions, ResultMessage, TextBlock

import remote_executors as rx
from remote_executors.executors.base import (
    finds_claude,
    lost_error_of,
    placement_of,
    shares_local_filesystem,
)
from remote_executors.testing import FakeExecutor, FakeProcess, FakeRun, claude_cli
from remote_executors.testing.executor_conformance import ExecutorConformance

# -- the conformance suite, where it applies ---------------------------------------------


async def _cat(options: rx.SpawnOptions, process: FakeProcess) -> int:
    while data := await process.read():
        process.write(data)
    return 0


async def _cat_machine(options: rx.SpawnOptions, process: FakeProcess) -> int:
    if options.command == "cat":
        return await _cat(options, process)
    return 127


def _run_on_cat_machine(home: str) -> Callable[[FakeRun], rx.CommandResult]:
    def run(call: FakeRun) -> rx.CommandResult:
        data = call.input or b""
        if call.argv == ("cat",):
            return rx.CommandResult(0, data, b"")
        if call.argv == ("wc", "-c"):
            return rx.CommandResult(0, f"{len(data)}\n".encode(), b"")
        if call.argv[:2] == ("test", "-d"):
            return rx.CommandResult(0 if call.argv[2] in (home, "/") else 1, b"", b"")
        if call.argv[:3] == ("/bin/sh", "-c", 'printf %s "$HOME"'):
            return rx.CommandResult(0, home.encode(), b"")
        return rx.CommandResult(127, b"", f"{call.argv[0]}: not found\n".encode())

    return run


#: Conformance tests that need what a fake machine does not have, and why.
NOT_APPLICABLE = {
    **dict.fromkeys(
        [
            "test_stdout_receive_honours_max_bytes",
            "test_arguments_arrive_exactly",
            "test_stderr_is_a_separate_stream_when_asked",
            "test_no_stderr_stream_unless_asked",
            "test_exit_status",
            "test_killed_by_a_signal",
            "test_run_killed_by_a_signal",
            "test_run_captures_output_and_status",
            "test_cwd_with_awkward_characters",
            "test_missing_cwd_raises_remote_path_not_found",
            "test_cwd_is_mapped",
            "test_only_the_commands_own_output_comes_back",
            "test_concurrent_spawns_and_runs",
            "test_missing_command",
        ],
        "runs /bin/sh scripts: a fake machine runs only what its handlers play",
    ),
    **dict.fromkeys(
        [
            "test_env_reaches_the_process",
            "test_env_overrides_and_unset_env_removes",
            "test_local_environment",
            "test_private_args",
            "test_attachments",
        ],
        "env, private files and attachments are handed to the handler in SpawnOptions "
        "as given; there is no process environment or file system to check them in",
    ),
    **dict.fromkeys(
        [
            "test_terminate",
            "test_kill_stops_a_process_that_ignores_sigterm",
            "test_closing_the_executor_stops_its_processes",
            "test_run_timeout_stops_the_command",
            "test_cancelling_run_stops_the_command",
            "test_run_output_past_max_output_raises_and_stops_the_command",
            "test_run_output_up_to_max_output_is_returned",
        ],
        "watches processes on the machine (ps) and memory while output streams in: "
        "a fake has no processes; its own tests below cover signals and limits",
    ),
    **dict.fromkeys(
        [
            "test_map_cwd",
            "test_bad_input_raises_invalid_input_and_runs_nothing",
            "test_private_args_out_of_range_are_invalid",
            "test_attachments_out_of_range_are_invalid",
            "test_claude_is_the_claude_code_cli",
        ],
        "checks paths, input validation and the real CLI of a real machine; a fake "
        "hands SpawnOptions to its handler unchanged and plays a stand-in CLI",
    ),
}


class TestFakeExecutorConformance(ExecutorConformance):
    stdin_line_buffered = False
    signal_status = "negative"

    @pytest.fixture(autouse=True)
    def _not_applicable(self, request: pytest.FixtureRequest) -> None:
        reason = NOT_APPLICABLE.get(getattr(request.node, "originalname", ""))
        if reason is not None:
            pytest.skip(f"not for a fake: {reason}")

    @pytest.fixture
    async def executor(self, tmp_path: Path) -> AsyncIterator[FakeExecutor]:
        executor = FakeExecutor(
            on_spawn=_cat_machine,
            on_run=_run_on_cat_machine("/home/fake"),
            name="fakebox",
        )
        yield executor
        await executor.aclose()

    @pytest.fixture
    def workdir(self, tmp_path: Path) -> Path:
        return tmp_path

    @pytest.fixture
    def remote_processes(self) -> Callable[[], Sequence[str]]:
        return list


# -- run ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_run_answers_from_the_handler_and_records_each_call() -> None:
    async def on_run(call: FakeRun) -> rx.CommandResult:
        await anyio.sleep(0)
        return (
            rx.CommandResult(0, b"main\n", b"")
            if call.argv[0] == "git"
            else rx.CommandResult(1, b"", b"no\n")
        )

    fake = FakeExecutor(on_run=on_run)
    assert await fake.run(["git", "branch"], cwd="/w", env={"A": "1"}) == rx.CommandResult(
        0, b"main\n", b""
    )
    assert (await fake.run(["ls"])).returncode == 1
    assert fake.runs[0] == FakeRun(("git", "branch"), "/w", {"A": "1"}, None, 30.0)
    unscripted = await FakeExecutor().run(["make"])
    assert unscripted.returncode == 127 and b"not scripted" in unscripted.stderr


@pytest.mark.anyio
async def test_run_keeps_the_executor_contract_for_errors_timeouts_and_limits() -> None:
    async def slow(call: FakeRun) -> rx.CommandResult:
        await anyio.sleep(10)
        raise AssertionError("not reached")

    with pytest.raises(rx.CommandTimeout) as timeout:
        await FakeExecutor(on_run=slow, name="box").run(["sleep"], timeout=0.05)
    assert timeout.value.host == "box" and "box" in timeout.value.message

    loud = FakeExecutor(on_run=lambda call: rx.CommandResult(0, b"x" * 100, b""), name="box")
    with pytest.raises(rx.OutputTooLarge) as large:
        await loud.run(["yes"], max_output=10)
    assert (large.value.host, large.value.stream, large.value.limit) == ("box", "stdout", 10)

    def down(call: FakeRun) -> rx.CommandResult:
        raise rx.HostUnreachable("Cannot reach box: no route.", host="box")

    with pytest.raises(rx.HostUnreachable):
        await FakeExecutor(on_run=down).run(["true"])
    with pytest.raises(rx.InvalidInput, match="No command"):
        await FakeExecutor().run([])


# -- spawn -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_signals_end_a_process_unless_the_play_traps_them() -> None:
    async def stubborn(options: rx.SpawnOptions, process: FakeProcess) -> int:
        process.trap_signals = True
        await process.signalled.wait()
        process.write(b"cleaning up\n")
        return 3

    fake = FakeExecutor(on_spawn=_cat)
    plain = await fake.spawn(rx.SpawnOptions("cat"))
    plain.terminate()
    assert await plain.wait() == -15
    with pytest.raises(ProcessLookupError):
        plain.kill()

    trapping = await FakeExecutor(on_spawn=stubborn).spawn(rx.SpawnOptions("worker"))
    await anyio.sleep(0.01)  # the play starts beside the caller, as a process would
    trapping.terminate()
    assert await trapping.wait() == 3
    assert await trapping.stdout.receive() == b"cleaning up\n"


@pytest.mark.anyio
async def test_a_failing_play_exits_1_with_its_error_on_stderr() -> None:
    async def broken(options: rx.SpawnOptions, process: FakeProcess) -> int:
        raise RuntimeError("script bug")

    process = await FakeExecutor(on_spawn=broken).spawn(rx.SpawnOptions("x", stderr=True))
    assert await process.wait() == 1
    assert process.stderr is not None
    assert await process.stderr.receive() == b"RuntimeError: script bug\n"
    assert isinstance(process, FakeProcess) and isinstance(process.error, RuntimeError)


@pytest.mark.anyio
async def test_a_lost_process_reports_process_lost_through_the_capability_probe() -> None:
    fake = FakeExecutor(on_spawn=_cat, name="box", path_map={"/home/me": "/srv/me"})
    process = await fake.spawn(rx.SpawnOptions("cat", cwd="/home/me/shop"))
    assert lost_error_of(process) is None
    assert placement_of(process) == ("/fake/bin/cat", "/srv/me/shop")
    assert isinstance(process, rx.ReportsLoss) and isinstance(process, rx.ReportsPlacement)
    assert isinstance(process, FakeProcess)
    process.lose()
    assert await process.wait() == 255
    lost = lost_error_of(process)
    assert isinstance(lost, rx.ProcessLost) and lost.host == "box"


def test_capabilities_and_spec() -> None:
    fake = FakeExecutor(name="box")
    assert isinstance(fake, rx.Executor)
    assert fake.spec == "fake://box"
    assert FakeExecutor.from_spec("fake://box") is fake
    assert finds_claude(fake) and not shares_local_filesystem(fake)
    assert not isinstance(fake, rx.SftpChannel) and not isinstance(fake, rx.RsyncShell)
    with pytest.raises(rx.InvalidInput, match="short word"):
        FakeExecutor(name="a/b")


# -- whole sessions ----------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REMOTE_EXECUTORS_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "data"


@pytest.mark.anyio
async def test_a_session_runs_in_memory_through_rx_query(data_dir: Path) -> None:
    fake = FakeExecutor(on_spawn=claude_cli(["first answer", "second"]), name="box")
    options = ClaudeAgentOptions(cwd=os.getcwd())
    texts = []
    async for message in rx.query(prompt="hi", options=options, executor=fake, sync=False):
        if isinstance(message, AssistantMessage):
            texts += [b.text for b in message.content if isinstance(b, TextBlock)]
        if isinstance(message, ResultMessage):
            sid = message.session_id
    assert texts == ["first answer"]
    # Older SDKs ask `claude -v` first, through the same transport.
    [session] = [s for s in fake.spawned if tuple(s.args) != ("-v",)]
    assert session.command == "claude"
    assert "--input-format" in session.args
    record = rx.get_session_record(sid)
    assert record is not None and record.executor == "fake://box"
    assert all(p.returncode is not None for p in fake.processes)  # nothing left running


@pytest.mark.anyio
async def test_a_process_lost_mid_turn_is_process_lost_naming_the_machine(data_dir: Path) -> None:
    play = claude_cli()

    async def drops(options: rx.SpawnOptions, process: FakeProcess) -> int:
        if "-v" in options.args:
            return await play(options, process)
        await process.read_line()  # the SDK's initialize request
        process.lose()
        return 255

    fake = FakeExecutor(on_spawn=drops, name="flaky")
    with pytest.raises(rx.ProcessLost) as info:
        async for _ in rx.query(
            prompt="hi", options=ClaudeAgentOptions(cwd=os.getcwd()), executor=fake, sync=False
        ):
            pass
    assert info.value.host == "flaky"
