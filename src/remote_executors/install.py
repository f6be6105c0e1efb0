"""Install the Claude Code CLI on a host: the very binary this SDK bundles.

``await install_cli(executor)`` copies the CLI that the installed
``claude-agent-sdk`` wheel ships (so its version is the one the SDK expects)
to the host, over the executor's own link: the host needs no network access.
It lands where Claude Code's native installer puts it, so ``claude update``
there keeps working::

    ~/.local/share/claude/versions/<version>   the binary (0700, in 0700 dirs)
    ~/.local/bin/claude                        a symlink to it

Order of work, each step leaving the host as it was if it fails:

1. Probe: OS, CPU, C library, and whether the binary's program interpreter
   exists there. A binary that cannot run there is refused
   (:class:`~remote_executors.errors.UnsupportedPlatform`) before any byte
   is sent.
2. Upload into a ``.<version>.<pid>.partial`` file beside the versions,
   hashing the bytes on both sides as they pass (SHA-256); only when its size
   and the two digests agree is it ``rename``d into place. A cut link leaves
   only the partial file (swept by the next install once nobody has written
   to it for a minute); the versions and the link are untouched. A version
   already there with the right checksum is not sent again.
3. Point ``~/.local/bin/claude`` at it by renaming a new symlink over the old
   one (atomic), then run ``claude --version`` there.

Never automatic: sessions do not install anything unless the caller calls
this (or ``remote-executors install HOST``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable
from functools import lru_cache

import anyio
import attrs

from ._platform import Platform, binary_platform, mismatch
from ._sdk_compat import bundled_cli, expected_cli_version
from .errors import ExecutorError, InstallFailed, InvalidInput, UnsupportedPlatform
from .executors.base import CommandResult, Executor, SpawnOptions, shares_local_filesystem

__all__ = ["InstallResult", "install_cli", "remote_platform"]

#: Where the native installer keeps versions and its link, relative to the home.
VERSIONS_DIR = ".local/share/claude/versions"
LINK = ".local/bin/claude"
#: Bytes per write to the upload's stdin.
_CHUNK = 1 << 20
#: The staged file's name, as the upload script makes it.
_STAGED = re.compile(r"\.[A-Za-z0-9.+_-]+\.[0-9]+\.partial")
#: A partial upload nobody wrote to for this many minutes is an abandoned one.
_STALE_MINUTES = 1


@attrs.frozen
class InstallResult:
    """What :func:`install_cli` did on ``host``."""

    host: str
    version: str
    path: str
    """The installed binary on the host (``~/.local/share/claude/versions/<version>``)."""
    link: str
    """``~/.local/bin/claude`` on the host, now pointing at ``path``."""
    uploaded: int
    """Bytes sent (0: that version was already there, checksum verified)."""
    seconds: float
    platform: str
    """The host's platform, e.g. ``"Linux x86_64 glibc"``."""


async def install_cli(
    executor: Executor,
    *,
    binary: str | os.PathLike[str] | None = None,
    version: str | None = None,
    force: bool = False,
    timeout: float = 900.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> InstallResult:
    """Install the CLI this SDK bundles (or ``binary``, named ``version``) on ``executor``'s host.

    ``force`` replaces a ``~/.local/bin/claude`` that is a file rather than a
    link (otherwise that is refused: someone else installed it).
    ``on_progress(sent, total)`` is called as bytes go out. Raises
    :class:`~remote_executors.errors.UnsupportedPlatform` when the binary
    cannot run there, :class:`~remote_executors.errors.InstallFailed` for
    anything else that stops the install (the old state is kept), and the
    usual connection errors.
    """
    host = executor.name
    if shares_local_filesystem(executor):
        raise InvalidInput(
            "install_cli() installs on another machine; on this one the SDK runs the CLI "
            "it bundles.",
            host=host,
        )
    started = time.monotonic()
    local_path, version = _what_to_install(host, binary, version)
    built_for = await anyio.to_thread.run_sync(_binary_platform, local_path, host)
    size = os.path.getsize(local_path)

    with anyio.fail_after(timeout):
        probe = await _probe(executor, version, size, built_for.interpreter, timeout)
        there = probe.platform
        why = mismatch(built_for, there, interpreter_there=probe.interpreter_there)
        if why is not None:
            raise UnsupportedPlatform(
                f"Cannot install Claude Code on {host}: the CLI this SDK bundles ({built_for}) "
                f"cannot run there ({there}): {why}. Install Claude Code on {host} itself "
                "(curl -fsSL https://claude.ai/install.sh | bash), or set up a host of the "
                f"same platform as this one.",
                host=host,
                remote=str(there),
                local=str(built_for),
            )
        if not probe.sha_tool:
            raise InstallFailed(
                f"Cannot install Claude Code on {host}: it has no sha256sum, shasum or "
                "openssl to verify the upload with. Install coreutils there and run the "
                "install again.",
                host=host,
            )
        if probe.link_kind == "file" and not force:
            raise InstallFailed(
                f"Not installing on {host}: ~/{LINK} there is a file, not a link, so "
                "another installer put it there. Move it aside (or replace it: force the install, "
                "`remote-executors install --force`) and run the install again.",
                host=host,
            )
        if probe.link_kind == "dir":
            raise InstallFailed(
                f"Not installing on {host}: ~/{LINK} there is a directory. Move it aside "
                "and run the install again.",
                host=host,
            )
        uploaded = 0
        staged = ""
        if not probe.existing_sha or probe.existing_sha != await anyio.to_thread.run_sync(
            _sha256, local_path
        ):
            # Both sides hash the bytes as they pass; the copy is moved into place
            # only if the two digests agree.
            staged, digest = await _upload(executor, local_path, version, size, on_progress)
            uploaded = size
        else:
            digest = probe.existing_sha
        await _link(executor, version, staged, digest, timeout)
    return InstallResult(
        host=host,
        version=version,
        path=f"{probe.home}/{VERSIONS_DIR}/{version}",
        link=f"{probe.home}/{LINK}",
        uploaded=uploaded,
        seconds=time.monotonic() - started,
        platform=str(there),
    )


async def remote_platform(executor: Executor, *, timeout: float = 30.0) -> Platform:
    """The host's OS, CPU and C library (``uname -sm`` and a look at its libc)."""
    return (await _probe(executor, "", 0, "", timeout)).platform


# -- the steps --------------------------------------------------------------------


def _what_to_install(
    host: str, binary: str | os.PathLike[str] | None, version: str | None
) -> tuple[str, str]:
    if binary is None:
        found = bundled_cli()
        if found is None:
            raise InstallFailed(
                f"Cannot install Claude Code on {host}: the installed claude-agent-sdk has "
                "no bundled CLI to copy (a wheel without one for this platform). Install a "
                "platform wheel of claude-agent-sdk here, or install Claude Code on "
                f"{host} itself.",
                host=host,
            )
        binary = found
        version = version or expected_cli_version()
    path = os.fspath(binary)
    if not version or not _safe_version(version):
        raise InvalidInput(
            f"Cannot install {path} on {host}: its version {version!r} is unknown or not a "
            "plain version number (e.g. 2.1.337). Pass version=.",
            host=host,
        )
    if not os.path.isfile(path):
        raise InvalidInput(f"Cannot install {path} on {host}: no such file here.", host=host)
    return path, version


def _safe_version(version: str) -> bool:
    return all(c.isalnum() or c in ".-+_" for c in version) and not version.startswith(".")


def _binary_platform(path: str, host: str) -> Platform:
    try:
        return binary_platform(path)
    except (OSError, ValueError) as exc:
        raise InstallFailed(
            f"Cannot install {path} on {host}: {exc}. Reinstall claude-agent-sdk here.",
            host=host,
        ) from exc


@lru_cache(maxsize=4)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK * 4):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256(path: str) -> str:
    st = os.stat(path)
    return _sha256_cached(path, st.st_size, st.st_mtime_ns)


# A sha256 of $1 on stdout, by whichever tool the host has ("" if none).
_SUM = r"""
rx_sum() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum <"$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 <"$1" | cut -d' ' -f1
  elif command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r <"$1" | cut -d' ' -f1
  fi
}
"""

# $1 version, $2 size, $3 interpreter. "<KEY> <value>" lines.
_PROBE = (
    _SUM
    + r"""
printf 'HOME %s\n' "$HOME"
printf 'S %s\n' "$(uname -s 2>/dev/null)"
printf 'M %s\n' "$(uname -m 2>/dev/null)"
if getconf GNU_LIBC_VERSION >/dev/null 2>&1; then echo 'L glibc'
elif ls /lib/ld-musl-* >/dev/null 2>&1 || ldd --version 2>&1 | grep -qi musl; then echo 'L musl'
fi
if [ -n "$3" ] && [ -e "$3" ]; then echo 'I yes'; fi
for rx_t in sha256sum shasum openssl; do
  if command -v "$rx_t" >/dev/null 2>&1; then printf 'H %s\n' "$rx_t"; break; fi
done
rx_v="$HOME/"""
    + VERSIONS_DIR
    + r"""/$1"
if [ -n "$1" ] && [ -f "$rx_v" ] && [ "$(wc -c <"$rx_v" | tr -d ' ')" = "$2" ]; then
  printf 'V %s\n' "$(rx_sum "$rx_v")"
fi
rx_l="$HOME/"""
    + LINK
    + r""""
if [ -L "$rx_l" ]; then echo 'K link'
elif [ -d "$rx_l" ]; then echo 'K dir'
elif [ -e "$rx_l" ]; then echo 'K file'
fi
exit 0
"""
)

# stdin: the binary. $1 version, $2 size. Writes it to a partial file while
# hashing it (tee into a FIFO the hash reads), then prints "T <partial file's
# name>" and "S <sha256>"; moving it into place is the next step's, once the
# digests agree.
_UPLOAD = (
    _SUM
    + r"""
rx_d="$HOME/"""
    + VERSIONS_DIR
    + r""""
mkdir -p "$rx_d" || { echo 'E mkdir'; exit 3; }
find "$rx_d" -maxdepth 1 -name '.*.partial*' -mmin +"""
    + str(_STALE_MINUTES)
    + r""" -exec rm -f {} + 2>/dev/null
rx_n=".$1.$$.partial"
rx_t="$rx_d/$rx_n"
mkfifo "$rx_t.fifo" || { echo 'E write'; exit 3; }
rx_sum "$rx_t.fifo" >"$rx_t.sum" &
rx_h=$!
if ! tee "$rx_t.fifo" >"$rx_t"; then
  kill "$rx_h" 2>/dev/null; rm -f "$rx_t" "$rx_t.fifo" "$rx_t.sum"; echo 'E write'; exit 3
fi
wait "$rx_h"
rm -f "$rx_t.fifo"
rx_z=$(wc -c <"$rx_t" | tr -d ' ')
if [ "$rx_z" != "$2" ]; then rm -f "$rx_t" "$rx_t.sum"; printf 'E size %s\n' "$rx_z"; exit 3; fi
printf 'T %s\nS %s\n' "$rx_n" "$(cat "$rx_t.sum")"
"""
)

# $1 version, $2 staged partial file's name ('' if the version is there), $3
# its sha256. Moves it into place if its recorded digest is that one, swaps the
# link by renaming a new one over it, then runs it.
_LINK = (
    r"""
rx_d="$HOME/"""
    + VERSIONS_DIR
    + r""""
rx_v="$rx_d/$1"
if [ -n "$2" ]; then
  rx_t="$rx_d/$2"
  rx_gone() { rm -f "$rx_t" "$rx_t.sum"; echo "E $1"; exit 3; }
  [ "$(cat "$rx_t.sum" 2>/dev/null)" = "$3" ] || rx_gone sum
  chmod 700 "$rx_t" && mv -f "$rx_t" "$rx_v" || rx_gone rename
  rm -f "$rx_t.sum"
fi
rx_l="$HOME/"""
    + LINK
    + r""""
rx_b=${rx_l%/*}
mkdir -p "$rx_b" || { echo 'E mkdir'; exit 3; }
[ -d "$rx_l" ] && [ ! -L "$rx_l" ] && { echo 'E dir'; exit 3; }
rm -f "$rx_b/.claude.$$"
ln -s "$rx_v" "$rx_b/.claude.$$" && mv -f "$rx_b/.claude.$$" "$rx_l" \
  || { rm -f "$rx_b/.claude.$$"; echo 'E link'; exit 3; }
printf 'V %s\n' "$("$rx_l" --version 2>&1 | head -n 1)"
"""
)


@attrs.frozen
class _Probe:
    home: str
    platform: Platform
    interpreter_there: bool
    sha_tool: str
    existing_sha: str
    link_kind: str


def _markers(stdout: bytes) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(" ")
        values.setdefault(key, value.strip())
    return values


async def _run(executor: Executor, script: str, args: list[str], timeout: float) -> CommandResult:
    result = await executor.run(["/bin/sh", "-c", script, "rx-install", *args], timeout=timeout)
    if result.returncode == 255 and not shares_local_filesystem(executor):
        from .executors.ssh._errors import classify_lost

        raise classify_lost(executor.name, result.stderr.decode("utf-8", "replace"), 255)
    return result


async def _probe(
    executor: Executor, version: str, size: int, interpreter: str, timeout: float
) -> _Probe:
    result = await _run(executor, _PROBE, [version, str(size), interpreter], min(timeout, 60))
    values = _markers(result.stdout)
    if not result.ok or not values.get("S"):
        raise InstallFailed(
            f"Cannot install Claude Code on {executor.name}: looking at its platform "
            f"failed (exit {result.returncode}). Check that /bin/sh and uname work there.",
            host=executor.name,
            detail=result.stderr.decode("utf-8", "replace")[-2000:],
        )
    return _Probe(
        home=values.get("HOME", "~"),
        platform=Platform(values["S"], values.get("M", ""), values.get("L", "")),
        interpreter_there=values.get("I") == "yes",
        sha_tool=values.get("H", ""),
        existing_sha=values.get("V", ""),
        link_kind=values.get("K", ""),
    )


async def _upload(
    executor: Executor,
    path: str,
    version: str,
    size: int,
    on_progress: Callable[[int, int], None] | None,
) -> tuple[str, str]:
    """Send ``path``; return (the staged partial file's name there, the digest both agree on)."""
    host = executor.name
    process = await executor.spawn(
        SpawnOptions("/bin/sh", ["-c", _UPLOAD, "rx-install", version, str(size)], stderr=True)
    )
    out = bytearray()
    err = bytearray()
    digest = hashlib.sha256()

    async def drain(stream: anyio.abc.ByteReceiveStream | None, sink: bytearray) -> None:
        if stream is None:
            return
        try:
            while True:
                data = await stream.receive()
                sink.extend(data[: max(0, 16384 - len(sink))])  # bounded: a few lines expected
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain, process.stdout, out)
            tg.start_soon(drain, process.stderr, err)
            sent = 0
            stdin = process.stdin
            assert stdin is not None
            try:
                async with await anyio.open_file(path, "rb") as f:
                    while chunk := await f.read(_CHUNK):
                        digest.update(chunk)
                        await stdin.send(chunk)
                        sent += len(chunk)
                        if on_progress is not None:
                            on_progress(sent, size)
                await stdin.aclose()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass  # the far end went away: its exit status and stderr say why
            code = await process.wait()
    finally:
        await _close(process)
    lost = getattr(process, "lost_error", lambda: None)()
    if isinstance(lost, ExecutorError):
        raise InstallFailed(
            f"Installing Claude Code on {host} stopped: the link was lost during the upload "
            f"({lost.message}) Nothing changed there: run the install again.",
            host=host,
            detail=lost.detail,
        ) from lost
    values = _markers(bytes(out))
    staged, there = values.get("T", ""), values.get("S", "")
    problem = ""
    if code != 0 or sent != size or not _STAGED.fullmatch(staged):
        problem = _upload_problem(values, size)
    elif there != digest.hexdigest():
        problem = "the uploaded copy's SHA-256 does not match this one (corrupted in transit)."
    if problem:
        if _STAGED.fullmatch(staged):
            with contextlib.suppress(ExecutorError):  # else the next install sweeps it
                await executor.run(
                    [
                        "/bin/sh",
                        "-c",
                        'cd "$HOME/$1" && rm -f -- "$2" "$2.sum"',
                        "rx-install",
                        VERSIONS_DIR,
                        staged,
                    ],
                    timeout=30,
                )
        raise InstallFailed(
            f"Installing Claude Code on {host} failed: {problem} Nothing changed there: "
            "run the install again.",
            host=host,
            detail=err.decode("utf-8", "replace")[-2000:],
        )
    return staged, there


def _upload_problem(values: dict[str, str], size: int) -> str:
    problem = values.get("E", "")
    if problem == "write":
        return "the upload could not be written there (is the disk full?)."
    if problem.startswith("size"):
        return f"{problem[5:] or 0} of {size} bytes arrived (the link broke off?)."
    if problem.startswith("sum"):
        return "the uploaded copy's SHA-256 is not the one it was sent with (changed there?)."
    if problem == "mkdir":
        return f"~/{VERSIONS_DIR} could not be created there."
    if problem == "rename":
        return "the verified upload could not be moved into place."
    return "the upload did not finish (the link broke off?)."


async def _close(process: object) -> None:
    aclose = getattr(process, "aclose", None)
    if aclose is not None:
        await aclose()


async def _link(executor: Executor, version: str, staged: str, digest: str, timeout: float) -> None:
    result = await _run(executor, _LINK, [version, staged, digest], min(timeout, 120))
    values = _markers(result.stdout)
    if not result.ok or "E" in values:
        problem = values.get("E", f"exit {result.returncode}")
        if problem in ("sum", "rename"):
            raise InstallFailed(
                f"Installing Claude Code on {executor.name} failed: "
                f"{_upload_problem(values, 0)} Nothing changed there: run the install again.",
                host=executor.name,
                detail=result.stderr.decode("utf-8", "replace")[-2000:],
            )
        raise InstallFailed(
            f"Claude Code {version} is on {executor.name}, but ~/{LINK} could not be pointed "
            f"at it ({problem}). Check that ~/.local/bin is writable there and run the "
            "install again.",
            host=executor.name,
            detail=result.stderr.decode("utf-8", "replace")[-2000:],
        )
    said = values.get("V", "")
    if version not in said:
        raise InstallFailed(
            f"Claude Code {version} was installed on {executor.name}, but running it there "
            f"printed {said[:200]!r} instead of its version. Check the host's platform and "
            "free memory, or install Claude Code there itself.",
            host=executor.name,
        )
