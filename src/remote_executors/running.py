"""Sessions whose Claude Code CLI still runs on a host, seen from a new local process.

A CLI spawned with ``reattach_within`` runs under the remote supervisor
(``executors/remote/supervisor.sh``), which spools its stdout in a private job
directory (``$TMPDIR/rx.XXXXXXXX``) until a client collects it. When the
app that started it dies mid-turn, the turn goes on there; this module finds
such jobs (one short ``run()``: the spool's first ``init`` line holds the
session id and cwd) and follows one read-only over a ``watch`` channel: its
output from the start, as SDK message objects, with the transcript kept in
step locally as a turn of the app's own would be. It does not answer the
CLI's control requests: a turn waiting on ``can_use_tool`` stays waiting.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import posixpath
import time
from collections.abc import AsyncIterator
from typing import Literal, Protocol, runtime_checkable

import anyio
import attrs
from claude_agent_sdk import AssistantMessage, Message, ResultMessage, StreamEvent, UserMessage

from ._sdk_compat import parse_message
from .errors import ExecutorError, InvalidInput, OutputTooLarge, ProcessLost, SessionNotRunning
from .executors.base import Executor, shares_local_filesystem
from .executors.ssh._reattach import JobWatch
from .paths import validate_session_id
from .records import SessionRecords
from .sync._per_session import SessionSyncer

__all__ = ["RunningSession", "follow_running_session", "list_running_sessions"]

log = logging.getLogger("remote_executors.running")

#: Jobs listed per host at most, and bytes of an ``init`` line sent back per job.
MAX_JOBS = 100
MAX_INIT = 64 << 10
#: The longest stream-json line a follow accepts (the SDK's own default is 1 MiB).
MAX_LINE = 16 << 20

# One look at the job directories, in perl (the supervisor needs it anyway;
# perl-base modules only). Per live supervised job, one line:
#   rx-job <dir> <started> <last output> <spool bytes> <attached> <exited> <idle> <sid> <cwd> <init>
# with <dir>, <sid>, <cwd> and <init> in hex: the session id and cwd as the
# init line's JSON string contents (found by pattern: the CLI orders keys as
# it likes), the init line itself when it is at most MAX_INIT bytes (then it
# is parsed instead). "idle": the spool's last line is a result, or the
# CLI's "session_state_changed" to idle that follows one. Left out: a job told
# to "stop", and one whose output a client has collected whole ("done": the
# supervisor is removing it, up to a second later after a dropped link).
_LIST = r"""
use strict;
my ($max_jobs, $max_init) = @ARGV;
my $keep = 1 << 20;  # bytes of a line looked at
my $tmp = (defined $ENV{TMPDIR} && length $ENV{TMPDIR}) ? $ENV{TMPDIR} : "/tmp";
$tmp =~ s{(.)/+\z}{$1};
opendir(my $dh, $tmp) or exit 0;
my @jobs = sort grep { /\Arx\.[A-Za-z0-9]{8}\z/ } readdir $dh;
closedir $dh;
sub first_pid { open(my $h, "<", $_[0]) or return 0; my $l = <$h> // "";
  return $l =~ /\A\s*(\d+)/ ? $1 : 0 }
sub alive { return $_[0] > 1 && kill(0, $_[0]) }
sub a_perl { my $p = shift; return 0 unless alive($p);
  open(my $c, "<", "/proc/$p/comm") or return 1; return ((<$c> // "") =~ /perl/) ? 1 : 0 }
sub hex_of { return unpack("H*", $_[0] // "") }
my $n = 0;
for my $j (@jobs) {
  my $d = "$tmp/$j";
  next if -l $d or !-d _ or !-O _;
  next unless -f "$d/out" && -f "$d/wd" && -p "$d/in" && !-e "$d/stop" && !-e "$d/done";
  next unless alive(first_pid("$d/wd"));  # its watchdog: the job is still supervised
  last if ++$n > $max_jobs;
  my $started = (stat "$d/wd")[9];
  my ($size, $last) = (stat "$d/out")[7, 9];
  open(my $o, "<", "$d/out") or next;
  binmode $o;
  my ($line, $long, $init, $seen, $b) = ("", 0, undef, 0, "");
  SCAN: while ($seen < (8 << 20) && sysread($o, $b, 65536)) {
    $seen += length $b;
    while (length $b) {
      my $nl = index($b, "\n");
      my $part = $nl < 0 ? $b : substr($b, 0, $nl);
      $long += length $part;
      $line .= substr($part, 0, $keep - length $line) if length $line < $keep;
      last if $nl < 0;
      $b = substr($b, $nl + 1);
      if ($line =~ /"subtype":"init"/ && $line =~ /"type":"system"/) { $init = $line; last SCAN }
      ($line, $long) = ("", 0);
    }
  }
  my ($sid, $cwd) = ("", "");
  if (defined $init) {
    $sid = $1 if $init =~ /"session_id":"([0-9A-Za-z-]{1,64})"/;
    $cwd = substr($1, 0, 8192) if $init =~ /"cwd":"((?:[^"\\]|\\.)*)"/;
    $init = "" if $long > $max_init;
  }
  my $idle = 0;
  if ($size > 0 && seek($o, $size > 65536 ? $size - 65536 : 0, 0) && sysread($o, $b, 65536)) {
    my $at = rindex($b, "\n", length($b) - 2);
    my $l = $at >= 0 && $b =~ /\n\z/ ? substr($b, $at + 1) : "";
    $idle = 1 if $l =~ /"type":"result"/
      || ($l =~ /"subtype":"session_state_changed"/ && $l =~ /"state":"idle"/);
  }
  printf "rx-job %s %d %d %d %d %d %d %s %s %s\n", hex_of($d), $started, $last, $size,
    a_perl(first_pid("$d/attach")), (-e "$d/status" ? 1 : 0), $idle,
    hex_of($sid), hex_of($cwd), hex_of($init);
}
"""

State = Literal["running", "idle", "exited"]


@attrs.frozen
class RunningSession:
    """A session whose CLI runs under the supervisor on ``host``.

    ``state``: ``"running"`` (a turn is in flight), ``"idle"`` (the last turn
    ended; the CLI waits for input that only its own client can send) or
    ``"exited"`` (the CLI ended; its last output waits to be collected).
    ``attached``: a local process still holds the job's channel.
    ``started``/``last_output`` are UTC; ``job_dir`` is the job's private
    directory on the host.
    """

    host: str
    session_id: str
    cwd: str
    started: dt.datetime
    last_output: dt.datetime
    state: State
    attached: bool
    job_dir: str
    spool_bytes: int

    @property
    def running_for(self) -> dt.timedelta:
        """How long its CLI has run."""
        return dt.datetime.now(dt.timezone.utc) - self.started


@runtime_checkable
class _Watchable(Protocol):
    """An executor that can open a read-only channel to a supervised job (SSH)."""

    async def watch_job(self, job_dir: str, stdout_at: int = 0) -> JobWatch: ...


async def list_running_sessions(
    executor: Executor, *, timeout: float = 30.0
) -> list[RunningSession]:
    """The sessions whose CLI still runs (or waits to be collected) on ``executor``'s
    host, newest first. One short command there; none when the host has no perl
    (then no CLI runs supervised). Raises what ``executor.run`` raises when the
    host cannot be reached."""
    if shares_local_filesystem(executor):
        return []
    result = await executor.run(
        ["perl", "-e", _LIST, "--", str(MAX_JOBS), str(MAX_INIT)],
        timeout=timeout,
        max_output=MAX_JOBS * (2 * MAX_INIT + 2 * 8192 + 1024),
    )
    if result.returncode != 0:
        log.info("%s: listing running sessions failed (%s)", executor.name, result.returncode)
        return []
    found = [
        s
        for line in result.stdout.splitlines()
        if (s := parse_job_line(executor.name, line)) is not None
    ]
    found.sort(key=lambda s: s.started, reverse=True)
    return found


def parse_job_line(host: str, line: bytes) -> RunningSession | None:
    """One ``rx-job`` line of the listing; None for other lines, or a job whose
    CLI has not started a turn yet (no ``init`` line: no session id)."""
    words = line.split(b" ")
    if len(words) != 11 or words[0] != b"rx-job":
        return None
    try:
        job_dir, sid, cwd, init = (
            bytes.fromhex(w.decode("ascii")).decode("utf-8", "surrogateescape")
            for w in (words[1], words[8], words[9], words[10])
        )
        started, last, size, attached, exited, idle = (int(w) for w in words[2:8])
    except (ValueError, UnicodeDecodeError):
        return None
    sid, cwd = _session_of(init, sid, cwd)
    if not sid:
        return None
    try:
        validate_session_id(sid)
    except ExecutorError:
        return None
    state: State = "exited" if exited else "idle" if idle else "running"
    return RunningSession(
        host=host,
        session_id=sid,
        cwd=cwd,
        started=dt.datetime.fromtimestamp(started, dt.timezone.utc),
        last_output=dt.datetime.fromtimestamp(last, dt.timezone.utc),
        state=state,
        attached=bool(attached),
        job_dir=job_dir,
        spool_bytes=size,
    )


def _session_of(init: str, sid: str, cwd: str) -> tuple[str, str]:
    """The session id and cwd: from the init line when it came whole, else from the
    JSON string contents the host's pattern found."""
    try:
        data = json.loads(init) if init else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        found_sid, found_cwd = data.get("session_id"), data.get("cwd")
        return (
            found_sid if isinstance(found_sid, str) else "",
            found_cwd if isinstance(found_cwd, str) else "",
        )
    try:
        decoded = json.loads(f'"{cwd}"')
    except ValueError:
        decoded = ""
    return sid, decoded if isinstance(decoded, str) else ""


async def find_running_session(executor: Executor, session_id: str) -> RunningSession:
    """The running job of ``session_id`` on ``executor``'s host, or :class:`SessionNotRunning`."""
    validate_session_id(session_id)
    host = executor.name
    for session in await list_running_sessions(executor):
        if session.session_id == session_id:
            return session
    if SessionRecords().get(session_id) is not None or _has_local_transcript(session_id):
        raise SessionNotRunning(
            f"Session {session_id} is not running on {host}: its CLI ended, or the host "
            "stopped it after reattach_within. Resume it instead "
            f"(ClaudeAgentOptions(resume={session_id!r}), or "
            f"`remote-executors run --resume {session_id} PROMPT`).",
            host=host,
            session_id=session_id,
            known=True,
        )
    raise SessionNotRunning(
        f"No session {session_id} is running on {host}, and this machine has no record of "
        f"it. List what runs there with `remote-executors sessions --running --on {host}`.",
        host=host,
        session_id=session_id,
        known=False,
    )


def _has_local_transcript(session_id: str) -> bool:
    from .host_sessions import _local_session_ids

    return session_id in _local_session_ids()


async def follow_running_session(
    executor: Executor,
    session_id: str,
    *,
    cwd: str | os.PathLike[str] | None = None,
    sync: bool = True,
    release: bool = True,
    since: Literal["start", "now"] = "start",
) -> AsyncIterator[Message]:
    """Follow a session whose CLI still runs on ``executor``'s host, read-only.

    Yields the SDK message objects its CLI printed since it started (every
    turn that process ran), live, up to the end of the turn in flight: the
    first ``ResultMessage`` (and the status lines right after it) at or past
    what the CLI had printed when the follow began (at once, after the
    history, when it was idle already), or the end of the process. With
    ``since="now"`` only what it prints from then on is read and yielded
    (nothing at all when it was idle already): for a UI that shows the
    history from the local transcript, or a long-running CLI whose output
    since its start is large. With
    ``sync`` the transcript reaches the local project directory of ``cwd``
    as the turn runs and is complete there when the result is yielded
    (``cwd`` defaults to the directory recorded for the session, else the
    local counterpart of the one it ran in there).

    With ``release`` (the default) and no other local process attached, the
    CLI's input is then closed, as its own client would at the end, so it
    exits and the host cleans up; resume the session afterwards as usual
    (``ClaudeAgentOptions(resume=session_id)``). A process still attached
    keeps its channel and its session untouched.

    Raises :class:`SessionNotRunning` (not running there, or unknown),
    :class:`InvalidInput` (an executor that cannot follow, or a ``since``
    that is neither), and what the executor raises when the host cannot be
    reached.
    """
    host = executor.name
    if since not in ("start", "now"):
        raise InvalidInput(f'since must be "start" or "now", not {since!r}', host=host)
    if not isinstance(executor, _Watchable):
        raise InvalidInput(
            f"{host} cannot follow a running session: only SSH executors run the "
            "supervisor that keeps one running without its client.",
            host=host,
        )
    job = await find_running_session(executor, session_id)
    if sync:
        from .sync._default import default_sync

        local = await _local_cwd(executor, job, cwd)
        syncer: SessionSyncer | None = SessionSyncer(
            executor, default_sync(executor), local_cwd=local, env=_remote_env(session_id)
        )
    else:
        syncer = None
    follow = _Follow(executor, job, syncer, from_now=since == "now")
    try:
        async for message in follow.messages(release=release):
            yield message
    finally:
        with anyio.CancelScope(shield=True):
            await follow.close()


def _remote_env(session_id: str) -> dict[str, str]:
    """The CLAUDE_CONFIG_DIR the session ran with there, when its record here knows
    it (the CLI's environment is not readable there: it may hold secrets)."""
    record = SessionRecords().get(session_id)
    project_dir = record.remote_project_dir if record is not None else None
    if project_dir and project_dir.startswith("/"):
        # <config>/projects/<project>
        return {"CLAUDE_CONFIG_DIR": posixpath.dirname(posixpath.dirname(project_dir))}
    return {}


async def _local_cwd(
    executor: Executor, job: RunningSession, cwd: str | os.PathLike[str] | None
) -> str:
    if cwd is not None:
        return os.path.realpath(os.path.expanduser(os.fspath(cwd)))
    record = SessionRecords().get(job.session_id)
    if record is not None:
        return record.local_cwd
    from .host_sessions import _local_counterpart

    return await _local_counterpart(executor, job.cwd)


class _Follow:
    """One follow: the watch channel (reopened from the last byte after a drop),
    lines parsed, the syncer told about ``init`` and ``result`` as the transport
    tells it."""

    def __init__(
        self,
        executor: _Watchable,
        job: RunningSession,
        syncer: SessionSyncer | None,
        *,
        from_now: bool = False,
    ) -> None:
        self.executor = executor
        self.host = job.host
        self.job = job
        self.syncer = syncer
        self.watch: JobWatch | None = None
        # From now: from the byte before the spool's end as listed, so the line
        # in progress there is known to be one (it is skipped whole, see messages()).
        self.from_now = from_now
        self.at = max(0, job.spool_bytes - 1) if from_now else 0  # spool bytes received
        self.stop_at: int | None = None  # the first result ending here or later ends it
        self.attached = False
        self.ended = False  # the end frame arrived: the CLI exited

    async def _open(self) -> JobWatch:
        patience = max(30.0, float(getattr(self.executor, "reattach_within", 0.0)))
        deadline = time.monotonic() + patience
        delay = 0.1
        while True:
            try:
                watch = await self.executor.watch_job(self.job.job_dir, self.at)
                break
            except ProcessLost:
                raise
            except ExecutorError:
                if time.monotonic() + delay > deadline:
                    raise
                await anyio.sleep(delay)
                delay = min(delay * 2, 1.0)
        if self.stop_at is None:
            self.stop_at = watch.size_at_start
            self.attached = watch.attached
        self.watch = watch
        return watch

    async def _receive(self) -> bytes | None:
        """More of the spool; None at its end. A dropped channel is reopened from here."""
        while True:
            watch = self.watch or await self._open()
            try:
                chunk = await watch.receive(1 << 16)
            except anyio.EndOfStream:
                if watch.ended:
                    self.ended = True
                    return None
                log.info(
                    "%s: the follow's channel dropped at byte %d, reopening", self.host, self.at
                )
                await self._drop()
                continue
            self.at += len(chunk)
            return chunk

    async def messages(self, *, release: bool) -> AsyncIterator[Message]:
        buffer = bytearray()
        done = False
        # A turn began (output after the last result); from now, one is in flight
        # when the listing said so (its start is behind us).
        in_turn = self.from_now and self.job.state == "running"
        results = 0
        skip = self.from_now and self.at > 0  # up to the first newline: a line begun before
        if self.from_now:
            if self.syncer is not None:
                # The init line is behind us: the listing has what the syncer needs.
                init = {"type": "system", "subtype": "init", "session_id": self.job.session_id}
                self.syncer.on_init(init, self.job.cwd or None)
            await self._open()
            done = self.job.state == "idle"  # no turn in flight: nothing to wait for
        while not done and (chunk := await self._receive()) is not None:
            buffer += chunk
            start = 0
            if skip:
                newline = buffer.find(b"\n")
                if newline < 0:
                    buffer.clear()
                    continue
                start, skip = newline + 1, False
            while not done and (newline := buffer.find(b"\n", start)) >= 0:
                line, start = bytes(buffer[start:newline]), newline + 1
                end = self.at - (len(buffer) - start)  # the spool offset past this line
                async for message in self._line(line):
                    yield message
                    if isinstance(message, ResultMessage):
                        in_turn, results = False, results + 1
                    elif isinstance(message, (AssistantMessage, UserMessage, StreamEvent)):
                        in_turn = True
                # Past what the CLI had printed when the follow began, and no turn
                # open: the turn in flight then has ended (or there was none).
                done = end >= (self.stop_at or 0) and (results > 0 or self.from_now) and not in_turn
            del buffer[:start]
            if len(buffer) > MAX_LINE:
                raise OutputTooLarge(
                    f"The session on {self.host} printed a line longer than {MAX_LINE} bytes; "
                    "following it stopped. Resume it once it ends.",
                    host=self.host,
                    limit=MAX_LINE,
                    stream="stdout",
                )
        if done and release and self.watch is not None and not await self._attached_now():
            await self._release(self.watch)
        if self.syncer is not None and self.ended:
            for status in await self.syncer.after_exit():
                parsed = parse_message(status)
                if parsed is not None:
                    yield parsed

    async def _line(self, line: bytes) -> AsyncIterator[Message]:
        try:
            data = json.loads(line)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if self.syncer is not None:
            if kind == "system" and data.get("subtype") == "init":
                cwd = data.get("cwd")
                self.syncer.on_init(data, cwd if isinstance(cwd, str) else None)
            elif kind == "result":
                for status in await self.syncer.after_turn():
                    parsed = parse_message(status)
                    if parsed is not None:
                        yield parsed
        if kind in ("control_request", "control_response", "transcript_mirror", "keep_alive"):
            return
        message = parse_message(data)
        if message is not None:
            yield message

    async def _attached_now(self) -> bool:
        """Whether a client holds the job's channel now (the one that started the
        follow may have been on its way out then)."""
        if not self.attached:
            return False
        jobs = await list_running_sessions(self.executor)  # type: ignore[arg-type]
        return any(j.job_dir == self.job.job_dir and j.attached for j in jobs)

    async def _release(self, watch: JobWatch) -> None:
        """Close the CLI's input (nobody else will) and read on to its end."""
        await watch.say("release")
        with anyio.move_on_after(30):
            while True:
                try:
                    await watch.receive(1 << 16)
                except anyio.EndOfStream:
                    self.ended = watch.ended
                    return

    async def _drop(self) -> None:
        watch, self.watch = self.watch, None
        if watch is None:
            return
        if self.ended:
            await watch.say("done")
        await watch.aclose()

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._drop()
            if self.syncer is not None:
                await self.syncer.on_close()
