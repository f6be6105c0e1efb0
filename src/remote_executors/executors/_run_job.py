"""``run()`` for executors whose jobs go through the bootstrap (SSH, containers).

A run job has no watchdog: when it ends early (timeout, cancellation, too much
output), killing the local client leaves the command running on the other side
(no pty over ssh, none in ``<engine> exec`` either), so its process group is
stopped there by a second, bounded job.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from ..errors import CommandTimeout, ExecutorError
from ._capture import DEFAULT_MAX_OUTPUT, Overflow, capture, too_large
from ._remote_job import RemoteJob
from ._remote_process import RemoteProcess
from .base import CommandResult

__all__ = ["StartJob", "collect", "run_job"]

log = logging.getLogger("remote_executors.executors")

#: Starts one job with stderr piped, giving its bootstrap ``startup_timeout`` seconds.
StartJob = Callable[[RemoteJob, float], Awaitable[RemoteProcess]]

_KILL_GROUP = ("/bin/sh", "-c", 'kill -s KILL -- "-$1" 2>/dev/null; exit 0', "sh")


async def collect(
    process: RemoteProcess, input: bytes | None, limit: int = DEFAULT_MAX_OUTPUT
) -> CommandResult:
    """The run job's output and status; :class:`Overflow` past ``limit`` (still running)."""
    out, err = await capture(process, input, limit)
    code = await process.wait()
    return CommandResult(code, out, err)


async def run_job(
    start: StartJob,
    job: RemoteJob,
    *,
    input: bytes | None,
    timeout: float,
    limit: int,
    host: str,
    where: str,
) -> CommandResult:
    """Run ``job`` to its end and return what it printed.

    ``host`` names the executor in errors; ``where`` says where the command
    ran, for messages ("on box", "in docker://c").
    """
    command = job.argv[0]
    try:
        with anyio.fail_after(timeout):
            process = await start(job, timeout)
            try:
                return await collect(process, input, limit)
            finally:
                with anyio.CancelScope(shield=True):
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
                        await _kill_group(start, process.remote_pgid, where)
                    await process.aclose()
    except TimeoutError:
        raise CommandTimeout(
            f"{command} did not finish within {timeout:g} s {where} and was "
            "stopped there. If it needs longer, pass a larger run(..., timeout=...).",
            host=host,
        ) from None
    except Overflow as exc:
        raise too_large(command, host, limit, exc.stream) from None


async def _kill_group(start: StartJob, pgid: int | None, where: str) -> None:
    """Best effort, bounded: SIGKILL a run job's process group where it ran."""
    if pgid is None:
        return
    job = RemoteJob(argv=(*_KILL_GROUP, str(pgid)), mode="run")
    with anyio.move_on_after(5, shield=True):
        try:
            process = await start(job, 5)
            try:
                await collect(process, None)
            finally:
                await process.aclose()
        except (ExecutorError, Overflow) as exc:
            log.debug("could not stop process group %s %s: %s", pgid, where, exc)
