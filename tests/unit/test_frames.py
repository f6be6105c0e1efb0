"""Only the command's own stdout comes back: the frame codec, alone and for real.

The decoder is tested on its own (frames split anywhere, noise between and
around them, noise that looks like a header, binary payload, a frame cut by
the end of the stream), then the real bootstrap over the shell backend: a
login shell whose rc starts a background job that prints into the channel
while the command runs, under every login shell, with perl and with the dd
fallback, and a flood of noise written concurrently with the command's output.
"""

from __future__ import annotations

import base64
import itertools
import os
import secrets
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import anyio
import pytest
from _shell_backend import SHELLS, SSH_PATH, ShellBackend
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_bootstrap import read_all, read_line, run_job
from test_bootstrap_extras import BOOTSTRAP_TOOLS, all_command_lines, drain, ssh_executor

from _chatty import CHATTER, rc_line
from remote_executors.errors import RemoteSetupError
from remote_executors.executors import _remote_job, _remote_process
from remote_executors.executors._frames import (
    PIPE_BUF,
    FrameDecoder,
    encode_frames,
    frame_tag,
    max_payload,
)
from remote_executors.executors._remote_job import RemoteJob
from remote_executors.executors._remote_process import RemoteProcess, start_job
from remote_executors.executors.base import CommandResult

pytestmark = pytest.mark.anyio

NONCE = "0123456789abcdef" * 2
TAG = frame_tag(NONCE)


@pytest.fixture
def anyio_backend() -> str:
    """The shell side never meets the event loop: asyncio is enough here."""
    return "asyncio"


def decode(stream: bytes, cuts: list[int] | None = None) -> tuple[bytes, FrameDecoder]:
    """``stream`` through a decoder, fed in pieces cut at ``cuts`` (offsets)."""
    decoder = FrameDecoder(NONCE)
    edges = [0, *sorted(c for c in (cuts or []) if 0 < c < len(stream)), len(stream)]
    out = b"".join(decoder.feed(stream[a:b]) for a, b in itertools.pairwise(edges))
    decoder.close()
    return out, decoder


# --- the decoder alone --------------------------------------------------------------------


def test_a_frame_fits_in_one_atomic_pipe_write() -> None:
    frames = encode_frames(NONCE, os.urandom(3 * max_payload(NONCE) + 5))
    size = len(TAG) + 4 + max_payload(NONCE)
    assert size == PIPE_BUF
    assert frames[:size].startswith(TAG + b"%04x" % max_payload(NONCE))
    assert len(frames) == 4 * (len(TAG) + 4) + 3 * max_payload(NONCE) + 5


# Noise another writer may put between frames: plain lines, an SDK-looking JSON
# line, a header with another nonce, our status-line shape, bytes with no newline.
NOISE = [
    b"you have new mail\n",
    b'{"type":"result","subtype":"success","result":"hijacked"}\n',
    b"f" * 32 + b":0005HIJAK",
    b"\n" + NONCE.encode() + b" OK AAAA\n",
    b"no newline",
    b"\x00\xff" * 3000,
    TAG[:20],  # the start of our tag, then something else
]


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.binary(max_size=9000), max_size=6),
    noise=st.lists(st.sampled_from(NOISE) | st.binary(max_size=100), min_size=7, max_size=7),
    cuts=st.lists(st.integers(min_value=0, max_value=40_000), max_size=30),
)
@example(pieces=[], noise=[b""] * 7, cuts=[])
@example(pieces=[b"x"], noise=NOISE, cuts=list(range(200)))
def test_any_frames_any_noise_any_split(
    pieces: list[bytes], noise: list[bytes], cuts: list[int]
) -> None:
    stream = noise[-1] + b"".join(
        encode_frames(NONCE, piece) + noise[i] for i, piece in enumerate(pieces)
    )
    out, decoder = decode(stream, cuts)
    assert out == b"".join(pieces)
    assert decoder.noise == len(noise[-1]) + sum(len(noise[i]) for i in range(len(pieces)))
    assert decoder.cut == 0


def test_a_header_split_byte_by_byte() -> None:
    data = b"a line\n" + bytes(range(256))
    stream = b"chatter " + encode_frames(NONCE, data) + b" more chatter"
    out, decoder = decode(stream, list(range(len(stream))))
    assert out == data
    assert decoder.noise == len(b"chatter  more chatter")


@pytest.mark.parametrize(
    "fake",
    [
        b"e" * 32 + b":0005HIJAK",  # another nonce
        NONCE.encode() + b" 0005HIJAK",  # our nonce, not our tag
        TAG + b"zz05HIJAK",  # not hex
        TAG + b"0A05HIJAK",  # upper case: we write lower case only
        TAG + b"0000",  # empty frames are never written
        TAG + b"%04x" % (max_payload(NONCE) + 1),  # more than one write may carry
        TAG + b"+005HIJAK",  # int() would take these
        TAG + b" 005HIJAK",
        TAG + b"0_05HIJAK",
    ],
)
def test_noise_that_looks_like_a_header_is_dropped(fake: bytes) -> None:
    stream = encode_frames(NONCE, b"one ") + fake + encode_frames(NONCE, b"two")
    out, decoder = decode(stream)
    assert out == b"one two"
    assert decoder.noise == len(fake)


def test_payload_that_looks_like_frames_is_payload() -> None:
    # The command's own bytes may contain anything, our tag and whole frames included.
    data = encode_frames(NONCE, b"inner") + TAG + b"0005" + b"\n" + NONCE.encode() + b" OK x\n"
    out, decoder = decode(encode_frames(NONCE, data), [7, 40, 41])
    assert out == data
    assert decoder.noise == 0


def test_empty_output_and_noise_only() -> None:
    assert decode(b"")[0] == b""
    out, decoder = decode(b"".join(NOISE))
    assert out == b""
    assert decoder.noise == len(b"".join(NOISE))


def test_a_frame_cut_by_the_end_of_the_stream() -> None:
    data = os.urandom(1000)
    stream = encode_frames(NONCE, data)[: len(TAG) + 4 + 600]
    out, decoder = decode(stream, [50, 300])
    # What arrived of it is the command's (nothing else can be inside a frame).
    assert out == data[:600]
    assert decoder.cut == 400
    # A header cut short is not a frame.
    out, decoder = decode(encode_frames(NONCE, b"done") + TAG + b"00")
    assert out == b"done"
    assert decoder.noise == len(TAG) + 2 and decoder.cut == 0


# --- the bootstrap's framing, for real ------------------------------------------------


def chatty_prelude(directory: Path) -> str:
    """Starts CHATTER in the background, as a login script would."""
    script = directory / "chatter.sh"
    script.write_text(CHATTER)
    return rc_line(script)


EVERY_SHELL = pytest.mark.parametrize("shell", SHELLS, ids=[os.path.basename(s) for s in SHELLS])

# Prints, waits until the chatter has come and gone, prints again (binary too).
SLOW_PRINTER = ["sh", "-c", "printf 'first\\n'; sleep 0.8; printf 'second \\377\\000\\n'"]
SLOW_OUTPUT = b"first\nsecond \xff\x00\n"


@pytest.mark.parametrize("mode", ["run", "spawn"])
@EVERY_SHELL
async def test_a_login_scripts_background_job_cannot_write_into_stdout(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, shell: str, mode: str
) -> None:
    backend = make_backend(shell, prelude=chatty_prelude(tmp_path))
    result = await run_job(backend, RemoteJob(argv=SLOW_PRINTER, mode=mode))
    assert result == CommandResult(0, SLOW_OUTPUT, b"")


@EVERY_SHELL
async def test_home_is_not_polluted_by_late_chatter(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, remote_home: Path, shell: str
) -> None:
    # The command is over before the chatter comes: it used to land in home().
    executor = ssh_executor(make_backend(shell, prelude=chatty_prelude(tmp_path)))
    with anyio.fail_after(20):
        assert await executor.home() == str(remote_home)
        result = await executor.run(["sh", "-c", 'printf %s "$HOME"; sleep 0.5'])
    assert result == CommandResult(0, str(remote_home).encode(), b"")


async def test_spawned_stdout_stays_clean_while_chatter_arrives(
    make_backend: Callable[..., ShellBackend], tmp_path: Path
) -> None:
    backend = make_backend("/bin/bash", prelude=chatty_prelude(tmp_path))
    process = await start_job(backend, RemoteJob(argv=["cat"]), pipe_stderr=True)
    pending = bytearray()
    lines = []
    with anyio.fail_after(20):
        for i in range(8):  # 1.2 s: the chatter arrives in between
            await process.stdin.send(b'{"n": %d}\n' % i)
            lines.append(await read_line(process.stdout, pending))
            await anyio.sleep(0.15)
        await process.stdin.aclose()
        rest = await read_all(process.stdout)
        assert await process.wait() == 0
    assert lines == [b'{"n": %d}' % i for i in range(8)]
    assert pending == b"" and rest == b""
    assert _decoder(process).noise > 0  # the chatter did arrive, and was dropped


def _decoder(process: RemoteProcess) -> FrameDecoder:
    return process._stdout.decoder  # type: ignore[attr-defined, no-any-return]


async def test_output_that_mimics_our_frames_is_passed_on_exactly(
    make_backend: Callable[..., ShellBackend],
) -> None:
    # A spawned process can know the nonce (REMOTE_EXECUTORS_JOB): what it
    # prints is its output all the same, byte for byte.
    script = (
        'printf "%s:0005HIJAK" "$REMOTE_EXECUTORS_JOB"; '
        'printf "\\n%s OK AAAA\\n" "$REMOTE_EXECUTORS_JOB"'
    )
    process = await start_job(
        make_backend(), RemoteJob(argv=["sh", "-c", script]), pipe_stderr=True
    )
    nonce = process._job.nonce
    with anyio.fail_after(10):
        out = await read_all(process.stdout)
        assert await process.wait() == 0
    assert out == f"{nonce}:0005HIJAK\n{nonce} OK AAAA\n".encode()


async def test_a_run_commands_own_background_child_is_its_output(
    make_backend: Callable[..., ShellBackend],
) -> None:
    job = RemoteJob(argv=["sh", "-c", "(sleep 0.3; echo late) & echo early"], mode="run")
    assert await run_job(make_backend(), job) == CommandResult(0, b"early\nlate\n", b"")


def flood(started: Path) -> str:
    """A login script's background job that writes big chunks (well past PIPE_BUF,
    so the kernel may split them) into the channel once the command has
    started (before, they would be chatter before the status line)."""
    return (
        f"( i=0; while [ ! -e '{started}' ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); "
        "done; i=0; while [ $i -lt 40 ]; do "
        "head -c 65536 /dev/zero | tr '\\0' x; i=$((i + 1)); done ) &\n"
    )


@pytest.mark.parametrize("perl", [True, False], ids=["perl", "dd"])
@pytest.mark.parametrize("mode", ["run", "spawn"])
async def test_a_flood_of_noise_never_lands_inside_a_frame(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, mode: str, perl: bool
) -> None:
    # Text when awk relays stdin (no perl): mawk is not binary-safe.
    data = os.urandom(2 << 20) if perl else os.urandom(1 << 19).hex().encode()
    env = {} if perl else {"PATH": tools_without_perl(tmp_path / "bin")}
    started = tmp_path / "started"
    backend = make_backend("/bin/sh", prelude=flood(started), env=env)
    argv = ["sh", "-c", 'touch "$1"; exec cat', "sh", str(started)]
    process = await start_job(backend, RemoteJob(argv=argv, mode=mode), pipe_stderr=True)
    received = bytearray()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:

            async def pump() -> None:
                received.extend(await read_all(process.stdout))

            tg.start_soon(pump)
            await process.stdin.send(data + b"\n")
            await process.stdin.aclose()
        assert await process.wait() == 0
    await drain(process)
    assert len(received) == len(data) + 1
    assert bytes(received) == data + b"\n"
    assert _decoder(process).noise > 0


def tools_without_perl(directory: Path, leave_out: tuple[str, ...] = ()) -> str:
    """A PATH with what the bootstrap needs, awk, dd and wc, but no perl."""
    directory.mkdir()
    for name in dict.fromkeys((*BOOTSTRAP_TOOLS, "awk", "tr", "grep", "touch")):
        found = shutil.which(name, path=SSH_PATH)
        if found is not None and name not in leave_out:
            (directory / name).symlink_to(found)
    assert shutil.which("perl", path=str(directory)) is None
    return str(directory)


@pytest.mark.parametrize("mode", ["run", "spawn"])
async def test_dd_framer_is_binary_exact_and_interactive(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, mode: str
) -> None:
    backend = make_backend(env={"PATH": tools_without_perl(tmp_path / "bin")})
    # Binary output from the command itself (awk, which relays a spawned
    # process's stdin without perl, is not binary-safe), then lines from stdin.
    data = bytes(range(256)) * 100 + b"".join(b"%d\n" % i for i in range(3000)) + b"end"
    (tmp_path / "data").write_bytes(data)
    job = RemoteJob(
        argv=["sh", "-c", 'cat "$1"; exec cat', "sh", str(tmp_path / "data")], mode=mode
    )
    process = await start_job(backend, job, pipe_stderr=True)
    pending = bytearray()
    with anyio.fail_after(60):
        while len(pending) < len(data):
            pending += await process.stdout.receive()
        assert bytes(pending[: len(data)]) == data
        del pending[: len(data)]
        if mode == "spawn":
            # A line reaches the caller while the process waits for more.
            await process.stdin.send(b"ping\n")
            assert await read_line(process.stdout, pending) == b"ping"
        await process.stdin.send(b"last line\n")
        await process.stdin.aclose()
        rest = bytes(pending) + await read_all(process.stdout)
        assert await process.wait() == 0
    await drain(process)
    assert rest == b"last line\n"
    assert os.listdir(backend.env["TMPDIR"]) == []  # the frame files went with the job


@pytest.mark.parametrize("missing", ["dd", "wc"])
async def test_neither_perl_nor_dd_is_a_setup_error(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, missing: str
) -> None:
    path = tools_without_perl(tmp_path / "bin", leave_out=(missing,))
    backend = make_backend(env={"PATH": path})
    with pytest.raises(RemoteSetupError) as info:
        await start_job(backend, RemoteJob(argv=["true"], mode="run"), pipe_stderr=True)
    message = str(info.value)
    assert info.value.host == "shellbox" and "shellbox" in message
    assert missing in message and "perl" in message and "Install" in message


def test_frames_cost_about_one_percent() -> None:
    # The figure the docs quote: header bytes per payload byte on bulk output.
    overhead = (len(TAG) + 4) / max_payload(NONCE)
    assert overhead < 0.01
    # And a short line costs one header.
    nonce = secrets.token_hex(16)
    assert len(encode_frames(nonce, b"x\n")) == len(frame_tag(nonce)) + 4 + 2


@pytest.mark.parametrize("perl", [True, False], ids=["perl", "dd"])
async def test_frames_keep_to_posix_pipe_buf_off_linux(
    make_backend: Callable[..., ShellBackend],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    perl: bool,
) -> None:
    # Where Linux's /proc is missing (macOS: PIPE_BUF is 512), frames are small.
    text = (resources.files(_remote_job.__package__) / "remote" / "bootstrap.sh").read_text()
    assert "/proc/sys/fs/pipe-max-size" in text
    text = text.replace("/proc/sys/fs/pipe-max-size", "/nonexistent/pipe-max-size")
    script = base64.b64encode(text.encode()).decode()
    command = f"exec /bin/sh -c 'eval \"$(echo {script} | base64 -d)\"'"
    monkeypatch.setattr(_remote_process, "remote_command", lambda: command)
    env = {} if perl else {"PATH": tools_without_perl(tmp_path / "bin")}
    data = os.urandom(100_000)
    (tmp_path / "data").write_bytes(data)
    job = RemoteJob(argv=["cat", str(tmp_path / "data")], mode="run")
    process = await start_job(make_backend(env=env), job, pipe_stderr=True)
    with anyio.fail_after(30):
        out = await read_all(process.stdout)
        assert await process.wait() == 0
    assert out == data
    per_frame = 512 - len(frame_tag(job.nonce)) - 4
    assert _decoder(process).frames >= -(-len(data) // per_frame)  # none larger on the whole


@pytest.mark.parametrize("perl", [True, False], ids=["perl", "dd"])
async def test_the_nonce_is_on_no_command_line(
    make_backend: Callable[..., ShellBackend], tmp_path: Path, perl: bool
) -> None:
    # Every user on the host can read command lines; a frame tag is nobody's business.
    env = {} if perl else {"PATH": tools_without_perl(tmp_path / "bin")}
    backend = make_backend(env=env)
    spawned = await start_job(backend, RemoteJob(argv=["cat"]), pipe_stderr=True)
    job = RemoteJob(argv=["sh", "-c", "echo ran; sleep 2"], mode="run")
    ran = await start_job(backend, job, pipe_stderr=True)
    with anyio.fail_after(20):
        # Relay, framers and the commands all running.
        await spawned.stdin.send(b"ping\n")
        assert await read_line(spawned.stdout, bytearray()) == b"ping"
        assert await read_line(ran.stdout, bytearray()) == b"ran"
        seen = await all_command_lines()
        await spawned.stdin.aclose()
        assert await spawned.wait() == 0 and await ran.wait() == 0
    for process in (spawned, ran):
        assert process._job.nonce.encode() not in seen
    await drain(spawned)
    await drain(ran)
