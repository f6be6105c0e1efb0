"""``check``: the "Test connection" button, as an API.

``await check(executor, cwd)`` walks through what a session on ``executor``
needs and returns a :class:`CheckReport`: one :class:`CheckStep` per item,
each with a status, what was found and, when it is not ``ok``, what to do.

Steps, by ``name`` (stable ids), in order:

``connect``, ``host_key``, ``auth``
    One connection attempt (it also runs ``uname``). ssh checks the host key
    before it authenticates, so a refused host key leaves ``auth`` skipped.
    For a :class:`LocalExecutor` these are ``ok`` with detail ``"local"``.
    For a :class:`DockerExecutor` they read "Container reachable" (failing
    with the engine's own problem and its fix: engine CLI not installed,
    daemon not answering, no such container, container stopped, no such
    user) and "Container user"; ``host_key`` is ``skip`` (there is none).
``platform``
    ``uname -sm`` there (``"Linux x86_64"``).
``claude``, ``claude_version``
    The Claude Code CLI, found the way a session finds it (for SSH: the
    bootstrap's search, login-shell PATH first), and its version compared
    with the one the installed ``claude-agent-sdk`` expects: equal is ``ok``,
    older is ``warn``, unreadable is ``warn``.
``project``
    With ``cwd``: the directory ``cwd`` maps to there exists and can be
    entered. Without it: ``skip``.
``credentials``
    Something the CLI can log in with on that machine: ``ANTHROPIC_API_KEY``
    (or ``ANTHROPIC_AUTH_TOKEN``, ``CLAUDE_CODE_OAUTH_TOKEN``) in the
    environment an SSH command gets, ``<config>/.credentials.json``, such a
    key (or ``apiKeyHelper``) in ``<config>/settings.json``, where
    ``<config>`` is ``$CLAUDE_CONFIG_DIR`` or ``~/.claude``. Only the *names*
    of what was found ever leave that machine: no secret value is read back,
    logged, reported or put on a command line.
``rsync_local``, ``rsync_remote``
    GNU rsync 3.2.4 or newer on each side (the checks ``RsyncSessionSync``
    makes). Only that strategy needs it, so a problem is a ``warn``.
``sftp``
    For an ``SSHExecutor`` on the fabric backend: its SFTP session opens and
    finds the home directory (what ``SftpSessionSync``, that backend's
    default sync, rides on). A problem is a ``warn``: sessions still run, but
    their transcripts would not reach this machine. Other executors: ``skip``.

A step that cannot run because an earlier one failed (no connection, the link
stopped answering, the check ran out of time) is ``skip``, with a detail
saying why. Every remote call is bounded by ``timeout`` seconds, and the whole
check by ``3 * timeout``; a call that times out is followed by one short
"still there?" probe, and if the host does not answer that either, the
remaining remote steps are skipped instead of each waiting in turn.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import anyio
import attrs
from anyio.abc import ByteReceiveStream, Process

from .credentials import (
    CREDENTIAL_VARS,
    FORWARDABLE,
    found_credentials,
    has_own,
    probe_lines,
)
from .credentials import PROBE as _CREDENTIALS
from .errors import (
    AuthenticationFailed,
    ClaudeNotFound,
    CommandTimeout,
    ConnectionFailed,
    ExecutorError,
    HostKeyError,
    InvalidInput,
    ProcessLost,
    SyncError,
    SyncToolMissing,
)
from .executors.base import (
    CommandResult,
    Executor,
    SpawnOptions,
    finds_claude,
    lost_error_of,
    placement_of,
    sftp_channel_of,
    shares_local_filesystem,
)
from .executors.ssh._errors import SSH_FAILED, classify_connect_failure, classify_lost
from .sdk import expected_cli_version, find_local_claude

__all__ = ["CheckReport", "CheckStep", "Status", "check"]

log = logging.getLogger("remote_executors.check")

Status = Literal["ok", "warn", "fail", "skip"]

#: Step ids and their human labels, in report order.
TITLES: Mapping[str, str] = {
    "connect": "SSH reachable",
    "host_key": "Host key",
    "auth": "Authentication",
    "platform": "Remote OS/arch",
    "claude": "Claude CLI found",
    "claude_version": "Claude CLI version",
    "project": "Project directory",
    "credentials": "Credentials",
    "rsync_local": "rsync here",
    "rsync_remote": "rsync there",
    "sftp": "SFTP there",
}

#: Titles that differ for a container (DockerExecutor): no ssh, no host key, no login.
CONTAINER_TITLES: Mapping[str, str] = {
    "connect": "Container reachable",
    "auth": "Container user",
    "platform": "Container OS/arch",
    "rsync_remote": "rsync in the container",
}

#: Seconds for the "is the host still there?" probe after a timeout.
_PROBE_SECONDS = 5.0
#: The whole check may take this many times ``timeout``.
_OVERALL_FACTOR = 3


@attrs.frozen
class CheckStep:
    """One item of a check: what was looked at, what was found, what to do."""

    name: str
    """Stable machine id (see :data:`TITLES`)."""
    title: str
    """Human label, e.g. ``"SSH reachable"``."""
    status: Status
    detail: str = ""
    """What was found, e.g. ``"Linux x86_64"``; for ``skip``, why it did not run."""
    hint: str = ""
    """What to do when the status is not ``ok``."""
    seconds: float = 0.0


def _steps(steps: Iterable[CheckStep]) -> tuple[CheckStep, ...]:
    return tuple(steps)


@attrs.frozen
class CheckReport:
    """Every step of one check of ``host``, in order."""

    host: str
    steps: tuple[CheckStep, ...] = attrs.field(converter=_steps)

    @property
    def ok(self) -> bool:
        """True when no step failed (``warn`` and ``skip`` are fine)."""
        return all(step.status != "fail" for step in self.steps)

    def step(self, name: str) -> CheckStep | None:
        """The step with id ``name``, or None."""
        return next((step for step in self.steps if step.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``host``, ``ok`` and the ``steps`` as dicts."""
        return {
            "host": self.host,
            "ok": self.ok,
            "steps": [
                {**attrs.asdict(step), "seconds": round(step.seconds, 3)} for step in self.steps
            ],
        }


async def check(
    executor: Executor,
    cwd: str | os.PathLike[str] | None = None,
    *,
    timeout: float = 20.0,
    on_step: Callable[[CheckStep], None] | None = None,
) -> CheckReport:
    """Check that ``executor`` can run a session (in ``cwd``, a local path, when given).

    ``timeout`` bounds each remote call (the whole check: ``3 * timeout``);
    ``on_step`` is called with each step as it completes. Never raises for
    what it finds: every problem is a step with status ``fail`` or ``warn``.
    The caller still owns ``executor`` (close it afterwards).
    """
    if not timeout > 0:
        raise InvalidInput(
            f"check() needs a positive timeout, got {timeout!r} (host {executor.name}).",
            host=executor.name,
        )
    run = _Check(executor, None if cwd is None else os.fspath(cwd), timeout, on_step)
    await run.all()
    return CheckReport(run.host, tuple(run.steps))


# -- the steps ----------------------------------------------------------------


@attrs.frozen
class _Found:
    status: Status
    detail: str = ""
    hint: str = ""


class _Check:
    def __init__(
        self,
        executor: Executor,
        cwd: str | None,
        timeout: float,
        on_step: Callable[[CheckStep], None] | None,
    ) -> None:
        self.executor = executor
        self.host = executor.name
        self.cwd = cwd
        self.timeout = timeout
        self.on_step = on_step
        self.local = shares_local_filesystem(executor)
        # A container's steps read in its own terms (no ssh, no host key, no login).
        self.container = str(getattr(executor, "spec", "")).partition("://")[0] in (
            "docker",
            "podman",
            "k8s",
        )
        self.steps: list[CheckStep] = []
        self.deadline = time.monotonic() + _OVERALL_FACTOR * timeout
        #: Why the remaining remote steps cannot run (None: they can).
        self.blocked: str | None = None
        self.claude_version: str | None = None  # what `claude --version` said

    # -- bookkeeping -----------------------------------------------------------

    def add(self, name: str, found: _Found, seconds: float = 0.0) -> None:
        hint = found.hint if found.status != "ok" else ""
        title = (CONTAINER_TITLES if self.container else TITLES).get(name, TITLES[name])
        if self.container and name == "host_key" and found.status == "ok":
            found = _Found("skip", "none: a container is reached through its engine")
        step = CheckStep(name, title, found.status, found.detail, hint, seconds)
        log.debug("check %s %s: %s %s", self.host, name, step.status, step.detail)
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)

    def budget(self) -> float:
        return min(self.timeout, self.deadline - time.monotonic())

    def out_of_time(self) -> str:
        return (
            f"the check ran out of time ({_OVERALL_FACTOR * self.timeout:g} s in all); "
            f"{self.host} answers slowly"
        )

    async def step(
        self, name: str, body: Callable[[float], Awaitable[_Found]], *, remote: bool = True
    ) -> None:
        """Run one step within the time left; turn what it raises into its result."""
        if remote and self.blocked is not None:
            self.add(name, _Found("skip", f"not checked: {self.blocked}"))
            return
        budget = self.budget()
        if budget <= 0.05:
            self.add(name, _Found("skip", f"not checked: {self.out_of_time()}"))
            return
        started = time.monotonic()
        try:
            # A little over the budget: the executor's own timeout (same
            # budget) should fire first, with its cleanup.
            with anyio.fail_after(budget + 1):
                found = await body(budget)
        except (CommandTimeout, TimeoutError):
            if self.local or not remote or await self.still_there():
                found = _Found(
                    "fail",
                    f"did not finish within {budget:g} s",
                    "If it is just slow there, pass a larger timeout.",
                )
            else:
                found = _Found(
                    "fail",
                    f"no answer from {self.host} within {budget:g} s",
                    f"{self.host} stopped answering. Check the network, VPN or ProxyJump "
                    f"settings for it, and that `ssh {self.host} true` returns promptly.",
                )
                self.blocked = f"{self.host} stopped answering during the {TITLES[name]} step"
        except (ConnectionFailed, ProcessLost) as exc:
            found = _Found("fail", _last_line(exc), exc.message)
            self.blocked = f"the connection to {self.host} failed during the {TITLES[name]} step"
        except ExecutorError as exc:
            found = _Found("fail", _last_line(exc), exc.message)
        except Exception as exc:  # a check reports, it does not crash
            log.debug("check %s %s: unexpected error", self.host, name, exc_info=True)
            found = _Found(
                "fail",
                f"unexpected error: {type(exc).__name__}: {exc}",
                "This is a bug in remote-executors; please report it with this message.",
            )
        self.add(name, found, time.monotonic() - started)

    async def still_there(self) -> bool:
        budget = min(_PROBE_SECONDS, self.budget())
        if budget <= 0.05:
            return False
        try:
            with anyio.fail_after(budget + 1):
                result = await self.executor.run(["true"], timeout=budget)
        except (ExecutorError, TimeoutError):
            return False
        return result.returncode != SSH_FAILED

    async def run(
        self, argv: Sequence[str], budget: float, *, cwd: str | None = None
    ) -> CommandResult:
        """``executor.run``, with ssh's own failure (exit 255) raised as the link's."""
        result = await self.executor.run(argv, cwd=cwd, timeout=budget)
        if result.returncode == SSH_FAILED and not self.local:
            stderr = result.stderr.decode("utf-8", "replace")
            raise classify_lost(self.host, stderr, result.returncode)
        return result

    # -- in order --------------------------------------------------------------

    async def all(self) -> None:
        await self.connection()
        await self.step("claude", self.claude)
        await self.step("claude_version", self.version)
        await self.step("project", self.project)
        await self.step("credentials", self.credentials)
        await self.step("rsync_local", self.rsync_local, remote=False)
        await self.step("rsync_remote", self.rsync_remote)
        await self.step("sftp", self.sftp)

    async def connection(self) -> None:
        """connect, host_key, auth and platform, from one connection attempt."""
        if self.local:
            for name in ("connect", "host_key", "auth"):
                self.add(name, _Found("ok", "local"))
            await self.step("platform", self.platform_local)
            return
        started = time.monotonic()
        budget = self.budget()
        reached = f"{self.host} answered"
        skip_auth = _Found("skip", "not tried: ssh checks the host key first")
        try:
            with anyio.fail_after(budget + 1):
                result = await self.executor.run(["/bin/sh", "-c", _WHOAMI], timeout=budget)
            if result.returncode == SSH_FAILED:
                raise classify_connect_failure(self.host, result.stderr.decode("utf-8", "replace"))
        except HostKeyError as exc:
            self.blocked = f"the host key of {self.host} was refused"
            if "has changed" in exc.message:
                what = "it changed since it was recorded in known_hosts"
            else:
                what = "not in known_hosts"
            self.add("connect", _Found("ok", reached), time.monotonic() - started)
            self.add("host_key", _Found("fail", what, exc.message))
            self.add("auth", skip_auth)
            self.add("platform", _Found("skip", f"not checked: {self.blocked}"))
            return
        except AuthenticationFailed as exc:
            self.blocked = f"{self.host} refused to log us in"
            self.add("connect", _Found("ok", reached), time.monotonic() - started)
            self.add("host_key", _Found("ok", "accepted"))
            self.add("auth", _Found("fail", _last_line(exc), exc.message))
            self.add("platform", _Found("skip", f"not checked: {self.blocked}"))
            return
        except (ConnectionFailed, CommandTimeout, TimeoutError) as exc:
            if isinstance(exc, ExecutorError) and not isinstance(exc, CommandTimeout):
                found = _Found("fail", _last_line(exc), exc.message)
            else:
                found = _Found(
                    "fail",
                    f"no answer from {self.host} within {budget:g} s",
                    f"Cannot reach {self.host} in time. Check the network, VPN or "
                    f"ProxyJump settings for it, and that `ssh {self.host} true` returns "
                    "promptly (a login script may be waiting for input).",
                )
            self.blocked = f"cannot connect to {self.host}"
            self.add("connect", found, time.monotonic() - started)
            for name in ("host_key", "auth", "platform"):
                self.add(name, _Found("skip", f"not checked: {self.blocked}"))
            return
        except ExecutorError as exc:
            # Logged in, but the remote shell cannot run our commands.
            self.blocked = f"{self.host} cannot run commands for us"
            self.add("connect", _Found("ok", reached), time.monotonic() - started)
            self.add("host_key", _Found("ok", "accepted"))
            self.add("auth", _Found("ok", "logged in"))
            self.add("platform", _Found("fail", _last_line(exc), exc.message))
            return
        values = _markers(result.stdout)
        node, user = values.get("N", ""), values.get("U", "")
        self.add(
            "connect",
            _Found("ok", f"reached {node}" if node else reached),
            time.monotonic() - started,
        )
        self.add("host_key", _Found("ok", "accepted"))
        self.add("auth", _Found("ok", f"logged in as {user}" if user else "logged in"))
        self.add("platform", _platform(values.get("P", ""), result))

    async def platform_local(self, budget: float) -> _Found:
        result = await self.run(["/bin/sh", "-c", _WHOAMI], budget)
        return _platform(_markers(result.stdout).get("P", ""), result)

    async def claude(self, budget: float) -> _Found:
        try:
            path, result = await self._claude_version(budget)
        except ClaudeNotFound as exc:
            searched = f" (looked in {len(exc.searched)} places)" if exc.searched else ""
            self.claude_version = None
            hint = exc.message
            if not self.local:
                hint = (
                    f"{install_command(self.host)} installs the CLI this SDK bundles "
                    f"(no network needed on {self.host}). {exc.message}"
                )
            return _Found("fail", f"CLI missing: not found{searched}", hint)
        out = result.stdout.decode("utf-8", "replace").strip()
        where = path or "claude"
        if not result.ok:
            err = result.stderr.decode("utf-8", "replace").strip() or out
            first = err.splitlines()[0] if err else ""
            # Only the version step depends on a CLI that runs: it is skipped.
            return _Found(
                "fail",
                f"{where} --version exited {result.returncode}"
                + (f": {first[:200]}" if first else ""),
                f"The Claude CLI at {where} on {self.host} does not run. Reinstall it "
                "there (curl -fsSL https://claude.ai/install.sh | bash)"
                + (
                    "."
                    if self.local
                    else f", or {install_command(self.host)} installs the CLI this SDK bundles."
                ),
            )
        self.claude_version = out
        version = _version_text(out)
        return _Found("ok", f"{where} {version}" if version else where)

    async def _claude_version(self, budget: float) -> tuple[str, CommandResult]:
        """(where the CLI is, what ``--version`` said), found as a session finds it."""
        executor = self.executor
        if self.local:
            local_cli = await anyio.to_thread.run_sync(find_local_claude)
            return local_cli, await self.run([local_cli, "--version"], budget)
        if finds_claude(executor):
            # spawn() has no timeout of its own.
            with anyio.fail_after(budget):
                process = await executor.spawn(SpawnOptions("claude", ["--version"], stderr=True))
                try:
                    result = await _collect(process)
                    lost = lost_error_of(process)
                    if lost is not None:
                        raise lost
                finally:
                    await process.aclose()
            return placement_of(process)[0], result
        # Any other executor: ask it to run "claude" (found however it finds it).
        result = await self.run(["claude", "--version"], budget)
        if result.returncode in (126, 127):
            raise ClaudeNotFound(
                f"Claude CLI not installed on {self.host} (running `claude` there "
                f"failed with exit {result.returncode}). Install it there "
                "(curl -fsSL https://claude.ai/install.sh | bash).",
                host=self.host,
            )
        return "", result

    async def version(self, budget: float) -> _Found:
        claude = self.step_named("claude")
        if claude is None or claude.status != "ok" or self.claude_version is None:
            return _Found("skip", "not checked: the Claude CLI was not found or does not run")
        return compare_cli_versions(self.claude_version, expected_cli_version(), self.host)

    def step_named(self, name: str) -> CheckStep | None:
        return next((s for s in self.steps if s.name == name), None)

    async def project(self, budget: float) -> _Found:
        if self.cwd is None:
            return _Found("skip", "no project directory given")
        remote = await self.executor.map_cwd(self.cwd)
        result = await self.run(["/bin/sh", "-c", _PROJECT, "rx-check", remote], budget)
        values = _markers(result.stdout)
        state = values.get("S", "")
        if state == "ok":
            physical = values.get("P", "")
            shown = remote if not physical or physical == remote else f"{remote} (-> {physical})"
            return _Found("ok", shown)
        if self.local:
            to_do = "Create it, or pick another cwd."
        else:
            to_do = (
                f"Create it there (e.g. clone the project into {remote} on {self.host}), "
                "or map the local directory to an existing one with "
                f"SSHExecutor(..., path_map={{{_absolute(self.cwd)!r}: "
                f"'/path/on/{self.host}'}})."
            )
        if state == "notdir":
            return _Found("fail", f"{remote} is not a directory on {self.host}", to_do)
        if state == "noaccess":
            return _Found(
                "fail",
                f"{remote} exists on {self.host} but cannot be entered",
                f"Let the login user of {self.host} enter {remote} (check its permissions "
                "and those of its parent directories).",
            )
        if state == "missing":
            return _Found("fail", f"{remote} doesn't exist on {self.host}", to_do)
        return _unexpected(result, "looking for the project directory")

    async def credentials(self, budget: float) -> _Found:
        result = await self.run(["/bin/sh", "-c", _CREDENTIALS], budget)
        if not result.ok:
            return _unexpected(result, "looking for credentials")
        lines = probe_lines(result.stdout)
        forward = getattr(self.executor, "forward_credentials", None)
        if forward in FORWARDABLE and not self.local:
            if not has_own(lines) and os.environ.get(forward):
                return _Found(
                    "ok",
                    f"uses {forward} forwarded from this machine (over stdin, per session): "
                    f"{self.host} has no credentials of its own",
                )
            found = credentials_found(lines, self.host, local=self.local)
            if has_own(lines):
                return attrs.evolve(
                    found,
                    detail=f"{found.detail}; {forward} from here is not forwarded: "
                    "the host's own setup wins",
                )
            return attrs.evolve(
                found,
                hint=f"{found.hint} Or set {forward} here: this host is set to forward it.",
            )
        return credentials_found(lines, self.host, local=self.local)

    async def rsync_local(self, budget: float) -> _Found:
        try:
            from .sync._rsync import (
                CVE_WARNING,
                _tool_missing,
                _version_problem,
                parse_rsync_version,
            )
        except ImportError as exc:  # another strategy's module; its API may move
            return _Found("skip", f"not checked: rsync checks unavailable ({exc})")

        path = shutil.which("rsync")
        if path is None:
            missing = _tool_missing(
                "local", "local", "rsync is missing here: not found on PATH.", remote=False
            )
            return _rsync_warn("not found on PATH", missing)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RSYNC_")}
        env["LC_ALL"] = "C"
        with anyio.fail_after(budget):
            done = await anyio.run_process(
                [path, "--version"], check=False, env=env, stdin=subprocess.DEVNULL
            )
        text = (done.stdout + done.stderr).decode("utf-8", "replace")
        if done.returncode != 0:
            first = text.strip().splitlines()[0] if text.strip() else f"exit {done.returncode}"
            broken = f"rsync here ({path}) could not be run: {first}."
            return _rsync_warn(broken, _tool_missing("local", "local", broken, remote=False))
        version = parse_rsync_version(text)
        problem = _version_problem(version, path, "here")
        if problem is not None:
            return _rsync_warn(
                problem, _tool_missing("local", "local", problem, detail=text, remote=False)
            )
        found = f"{path} {_rsync_number(version.version)}".strip()
        if version.before_cve_fixes:
            return _Found(
                "warn",
                f"{found}: older than 3.4.0 (CVE-2024-12086/12087/12088)",
                CVE_WARNING.format(where="here", path=path, version=version.first_line),
            )
        return _Found("ok", found)

    async def sftp(self, budget: float) -> _Found:
        channel = sftp_channel_of(self.executor)
        if channel is None:
            return _Found("skip", "only the fabric backend syncs over SFTP")
        try:
            # Where SFTP's relative paths start: the login's home directory.
            home = await channel.sftp_call(lambda sftp: sftp.normalize("."), timeout=budget)
        except ExecutorError as exc:
            return _Found(
                "warn",
                _last_line(exc),
                exc.message + " Until then, transcripts of sessions there stay there.",
            )
        return _Found("ok", f"SFTP session opens in {home}")

    async def rsync_remote(self, budget: float) -> _Found:
        if self.local:
            return _Found("skip", "same machine as rsync here")
        try:
            from .sync._rsync import RsyncSessionSync
        except ImportError as exc:  # another strategy's module; its API may move
            return _Found("skip", f"not checked: rsync checks unavailable ({exc})")
        sync = RsyncSessionSync(timeout=budget)
        try:
            # The very probe RsyncSessionSync makes before its first sync.
            found = await sync._probe(self.executor)
        except SyncToolMissing as exc:
            return _rsync_warn(None, exc)
        except SyncError as exc:
            return _Found("warn", _last_line(exc), exc.message)
        return _Found("ok", f"{found.rsync} {_rsync_number(found.version.version)}".strip())


# -- what the remote commands print (names and markers, never values) -------

# "P <uname -sm>", "U <user>", "N <node name>"
_WHOAMI = r"""
printf 'P %s\n' "$(uname -sm 2>/dev/null)"
printf 'U %s\n' "$(id -un 2>/dev/null)"
printf 'N %s\n' "$(uname -n 2>/dev/null)"
"""

# $1: the directory. "S ok|missing|notdir|noaccess", "P <physical path>".
_PROJECT = r"""
if [ -d "$1" ]; then
  if cd -- "$1" 2>/dev/null; then printf 'S ok\nP %s\n' "$(pwd -P)"; else echo 'S noaccess'; fi
elif [ -e "$1" ] || [ -L "$1" ]; then
  echo 'S notdir'
else
  echo 'S missing'
fi
"""


def _markers(stdout: bytes) -> dict[str, str]:
    """``"<KEY> <value>"`` lines as a dict (first value of each key)."""
    values: dict[str, str] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(" ")
        values.setdefault(key, value.strip())
    return values


def credentials_found(
    lines: Sequence[tuple[str, str]], host: str, *, local: bool = False
) -> _Found:
    """The credentials step's result from the probe's ``(marker, name)`` lines."""
    config = next((value for key, value in lines if key == "CONFIG"), "~/.claude")
    sources = [str(c) for c in found_credentials(lines)]
    login_only = [v for k, v in lines if k == "LOGIN" and v in CREDENTIAL_VARS]
    keychain = any(key == "KEYCHAIN" for key, _ in lines)
    if sources:
        also = f"; also there: {', '.join(sources[1:])}" if len(sources) > 1 else ""
        return _Found("ok", f"uses {sources[0]}{also}")
    if keychain:
        return _Found(
            "warn",
            "a Claude Code login in the macOS Keychain only",
            f"An SSH session on {host} may not be able to unlock the login keychain. If "
            f"sessions there say they are not logged in, run `claude setup-token` and set "
            f'CLAUDE_CODE_OAUTH_TOKEN in the "env" block of {config}/settings.json on '
            f"{host}, or set ANTHROPIC_API_KEY there.",
        )
    login = (
        "Log in once (run `claude`, then /login)"
        if local
        else (f"Log in once on {host} (ssh {host}, run `claude`, then /login)")
    )
    setup = (
        f"{login}, or put "
        f'ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`) in the "env" '
        f"block of {config}/settings.json there, or pass it with "
        "ClaudeAgentOptions(env={'ANTHROPIC_API_KEY': ...})."
    )
    if login_only:
        names = ", ".join(login_only)
        return _Found(
            "fail",
            f"{names} is set only for login shells on {host} (e.g. in ~/.profile); commands "
            "over SSH, and so the Claude CLI, do not get it",
            "Set it where SSH commands see it (~/.bashrc, ~/.zshenv, fish config), or: " + setup,
        )
    return _Found(
        "fail",
        f"none found: no {', '.join(CREDENTIAL_VARS)} in the environment, no "
        f"{config}/.credentials.json, no such key in {config}/settings.json",
        setup,
    )


# -- versions -----------------------------------------------------------------


def install_command(host: str) -> str:
    """The fix for a missing or old CLI on ``host``."""
    return f"Run `remote-executors install {host}` here: it"


_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def _version_text(text: str) -> str:
    match = _VERSION.search(text)
    return match.group(0) if match else ""


def _version_tuple(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.search(text)
    if match is None:
        return None
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def compare_cli_versions(remote: str, expected: str | None, host: str) -> _Found:
    """The claude_version step: ``remote`` (``claude --version`` output) vs ``expected``."""
    if expected is None or _version_tuple(expected) is None:
        return _Found(
            "skip", "not checked: the installed claude-agent-sdk does not say which CLI it expects"
        )
    want = _version_tuple(expected)
    have = _version_tuple(remote)
    upgrade = (
        f"{install_command(host)} installs {expected}, the CLI this SDK bundles; or "
        f"run `claude update` on {host}."
        if host != "local"
        else f"Upgrade it: run `claude update`; this SDK expects {expected}."
    )
    if have is None:
        shown = remote.strip().splitlines()[0][:80] if remote.strip() else "nothing"
        return _Found("warn", f"cannot read a version from {shown!r}", upgrade)
    text = ".".join(map(str, have))
    assert want is not None
    if have == want:
        return _Found("ok", f"{text}, as the SDK expects")
    if have < want:
        return _Found(
            "warn", f"CLI older than the SDK expects: {text}, the SDK expects {expected}", upgrade
        )
    if have[0] != want[0]:
        return _Found(
            "warn",
            f"{text} is a newer major version than {expected}, which the SDK expects",
            "Upgrade claude-agent-sdk here (pip install -U claude-agent-sdk), or install "
            f"Claude Code {want[0]}.x on {host}.",
        )
    return _Found("ok", f"{text} (newer than {expected}, which the SDK expects)")


def _rsync_number(version: tuple[int, int, int] | None) -> str:
    return ".".join(map(str, version)) if version else ""


def _rsync_warn(problem: str | None, error: ExecutorError) -> _Found:
    """rsync step result: ``problem`` as the detail, the fix from ``error``'s message."""
    message = error.message
    fix_at = message.find(" Install GNU rsync")
    if problem is None:
        problem = message[:fix_at] if fix_at > 0 else "not usable"
    hint = message[fix_at + 1 :] if fix_at > 0 else message
    return _Found("warn", problem.rstrip(". "), hint)


# -- helpers ------------------------------------------------------------------


def _absolute(local: str) -> str:
    return os.path.abspath(os.path.expanduser(local))


def _last_line(error: ExecutorError) -> str:
    """What the machine said (the last line of the detail), else the message's first sentence."""
    lines = [line.strip() for line in error.detail.splitlines() if line.strip()]
    if lines:
        return lines[-1]
    first, dot, _ = error.message.partition(". ")
    return first + ("." if dot else "")


def _platform(uname: str, result: CommandResult) -> _Found:
    if uname:
        return _Found("ok", uname)
    return _unexpected(result, "running uname -sm", status="warn")


def _unexpected(result: CommandResult, doing: str, *, status: Status = "fail") -> _Found:
    err = result.stderr.decode("utf-8", "replace").strip()
    first = err.splitlines()[-1][:200] if err else ""
    return _Found(
        status,
        f"{doing} failed (exit {result.returncode})" + (f": {first}" if first else ""),
        "Check that /bin/sh and the usual POSIX tools (uname, grep, sed) work there.",
    )


async def _collect(process: Process) -> CommandResult:
    """Read a spawned process's output to the end and wait for it."""
    out: list[bytes] = []
    err: list[bytes] = []

    async def pump(stream: ByteReceiveStream | None, sink: list[bytes]) -> None:
        if stream is None:
            return
        with contextlib.suppress(
            anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError
        ):
            while True:
                sink.append(await stream.receive())

    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        if process.stdin is not None:
            await process.stdin.aclose()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pump, process.stdout, out)
        tg.start_soon(pump, process.stderr, err)
    code = await process.wait()
    return CommandResult(code, b"".join(out), b"".join(err))
