"""A real OpenSSH server on loopback, with real accounts, for end-to-end tests.

This is the "remote machine" of the test bed. It is shipped in the package so
host applications can test their own ``SSHExecutor`` use against the same
thing our suite uses::

    from remote_executors.testing.sshd import SSHTestBed

    with SSHTestBed() as bed:
        account = bed.account("fish", noisy=True, model_url=model.url)
        cfg = bed.client_config(account)
        executor = SSHExecutor(cfg.alias, ssh_config=cfg.path)
        ...

What is real: the ``sshd`` binary (run with ``-D -e`` on ``127.0.0.1`` and a
free port, with its own generated host key, public keys only), the login
accounts (created with ``useradd`` when we are root, each with its own home,
``~/.claude`` and login shell: sh, bash, zsh, fish or tcsh), the ``ssh`` client
configuration (one ``ssh_config`` file per test: pinned ``known_hosts``,
``StrictHostKeyChecking yes``, ``BatchMode yes``), and the Claude Code CLI (the
binary bundled in the installed ``claude-agent-sdk``, linked into
``~/.local/bin`` of the account, off the non-login ``PATH`` just as the native
installer leaves it).

Two modes
---------
``accounts`` (the default when running as root; what CI uses)
    ``sshd`` runs as root, every :class:`RemoteAccount` is a system user named
    ``rx-<label>`` (``useradd``; reused across runs, recognised by its GECOS
    field) whose home lives in the bed's temporary directory and is wiped each
    time the account is provisioned.

``current-user`` (the fallback when not root, e.g. on a developer laptop)
    ``sshd`` runs as the invoking user and can only log that user in. Each
    account is then a separate client key whose ``authorized_keys`` entry sets
    ``HOME`` (and ``CLAUDE_CONFIG_DIR`` if asked) through ``environment=``, so
    the "remote" still has its own home and ``~/.claude``. Limitations: the
    login shell is the user's own (asking for another one raises), the initial
    working directory of an ssh command is the real home (``$HOME`` is not),
    processes are not separated by uid (``ps -u`` shows the user's own
    processes too; :meth:`SSHTestBed.processes` finds the account's processes
    by an environment marker instead, on Linux only), and ``StrictModes`` is off
    because the bed's ``authorized_keys`` file lives under ``/tmp``.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import importlib.util
import itertools
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import attrs

from .model import DEFAULT_API_KEY

__all__ = [
    "CLAUDE_DEFAULT_PATH",
    "FOLLOWER_MARK",
    "NOISE_STDERR",
    "NOISE_STDOUT",
    "NON_LOGIN_PATH",
    "SHELLS",
    "ProcessInfo",
    "RemoteAccount",
    "SSHClientConfig",
    "SSHFault",
    "SSHTestBed",
    "SSHTestBedError",
    "bundled_claude_binary",
]

#: The login shells the bed knows how to configure (rc files, login PATH).
SHELLS: tuple[str, ...] = ("sh", "bash", "zsh", "fish", "tcsh")

#: Where the native Claude Code installer puts the CLI, relative to the home.
CLAUDE_DEFAULT_PATH = ".local/bin/claude"

#: PATH that Debian's sshd gives a non-login ssh command (compiled in as _PATH_STDPATH).
NON_LOGIN_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"

#: Every line a noisy rc file prints starts with one of these.
NOISE_STDOUT = "rx-testbed noise (stdout)"
NOISE_STDERR = "rx-testbed noise (stderr)"

_GECOS = "remote-executors test bed"
_LOOPBACK = "127.0.0.1"
_UNRESOLVABLE_HOST = "rx-unresolvable.invalid"
_DUMMY_API_KEY = DEFAULT_API_KEY  # what ScriptedModel accepts by default
_ACCOUNT_ENV_MARK = "RX_TESTBED_ACCOUNT"
_LABEL_RE = re.compile(r"^[a-z][a-z0-9_]{0,20}$")
_SSHD_NAMES = frozenset({"sshd", "sshd-session", "sshd-auth"})
_C_ENV = {"LC_ALL": "C", "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}


# sshd's parent. A child subreaper (Linux) adopts whatever sshd's sessions leave
# behind and reaps it. Without it orphans go to PID 1, and a container's PID 1
# (`tail -f /dev/null`, a VM agent, ...) often never reaps: every ended ssh
# connection then leaves a zombie that `kill -0` and `ps` still report.
# It prints sshd's pid, then lives until it has no children left.
_REAPER = r"""
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except Exception:
    pass
pid = os.fork()
if pid == 0:
    for name in ("SIGPIPE", "SIGXFSZ"):  # Python ignores these; exec would keep that
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    os.dup2(2, 1)
    os.execv(sys.argv[1], sys.argv[1:])
sys.stdout.write(f"{pid}\n")
sys.stdout.flush()
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
code = 0
while True:
    try:
        child, status = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    if child == pid:
        code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


class SSHTestBedError(RuntimeError):
    """The test bed could not do what was asked (sshd did not start, bad option, ...)."""


class SSHFault(enum.Enum):
    """A way to make ``ssh`` fail for real, and the text it then prints (with ``LC_ALL=C``).

    Every :class:`SSHClientConfig` has one alias per fault (``cfg.alias_for(fault)``);
    ``ssh`` exits 255 for each of them.
    """

    WRONG_KEY = "wrong-key"
    CHANGED_HOST_KEY = "changed-host-key"
    UNKNOWN_HOST_KEY = "unknown-host-key"
    CONNECTION_REFUSED = "refused"
    UNRESOLVABLE = "unresolvable"

    @property
    def stderr_text(self) -> str:
        """A fragment that ``ssh`` prints on stderr for this fault."""
        return _FAULT_TEXT[self]


_FAULT_TEXT = {
    SSHFault.WRONG_KEY: "Permission denied (",
    SSHFault.CHANGED_HOST_KEY: "REMOTE HOST IDENTIFICATION HAS CHANGED",
    SSHFault.UNKNOWN_HOST_KEY: "Host key verification failed",
    SSHFault.CONNECTION_REFUSED: "Connection refused",
    SSHFault.UNRESOLVABLE: "Could not resolve hostname",
}


@attrs.frozen
class ProcessInfo:
    """One row of the process table."""

    pid: int
    ppid: int
    uid: int
    state: str
    comm: str
    args: str

    @property
    def zombie(self) -> bool:
        """Exited but not yet reaped by its parent."""
        return self.state.startswith("Z")


#: How the bootstrap's shell shows in ps: the fixed remote command line, which
#: the login shell execs.
_BOOTSTRAP_ARGS = '/bin/sh -c eval "$(echo '


def spare_channels(procs: list[ProcessInfo]) -> set[int]:
    """PIDs of spare channels (``warm_spawn``) among ``procs``: a bootstrap still
    waiting for its job header, i.e. the bootstrap's ``/bin/sh`` whose only
    process below is ``head -n 1``. An open executor keeps at most one; it goes
    when the executor closes."""
    spares: set[int] = set()
    for shell in procs:
        if not shell.args.startswith(_BOOTSTRAP_ARGS):
            continue
        below = [p for p in procs if p.ppid == shell.pid]
        waiting = len(below) == 1 and below[0].args == "head -n 1"
        if waiting and not any(p.ppid == below[0].pid for p in procs):
            spares |= {shell.pid, below[0].pid}
    return spares


#: In the argv of the live follower's perl (``follow.pl``'s first line).
FOLLOWER_MARK = "follow the files of every session"


def live_followers(procs: list[ProcessInfo]) -> set[int]:
    """PIDs of live followers' jobs among ``procs``: the bootstrap shell whose
    tree runs ``follow.pl``, and everything below it. An open executor keeps at
    most one; on a warm executor it waits up to ``LINGER_SECONDS`` for the next
    session after the last one ended, and goes when the executor closes."""
    below: dict[int, list[ProcessInfo]] = {}
    for p in procs:
        below.setdefault(p.ppid, []).append(p)
    found: set[int] = set()
    for shell in procs:
        if not shell.args.startswith(_BOOTSTRAP_ARGS) or shell.pid in found:
            continue
        tree, todo = [shell], [shell]
        while todo:
            children = below.get(todo.pop().pid, [])
            tree += children
            todo += children
        if any(FOLLOWER_MARK in p.args for p in tree):
            found |= {p.pid for p in tree}
    return found


@attrs.frozen
class RemoteAccount:
    """A provisioned login account on the bed ("the remote user").

    ``home`` differs from the local user's home; ``claude_config_dir`` is where
    the CLI keeps ``settings.json`` and ``projects/`` for this account.
    ``env`` holds the variables sshd sets for this account's sessions on top
    of the usual ones (only in ``current-user`` mode or with a custom
    ``claude_config_dir``). Provisioning the same label again makes a new
    object; the old one then describes a wiped home.
    """

    label: str
    user: str
    uid: int
    gid: int
    home: Path
    shell: str
    claude_config_dir: Path
    claude_path: Path | None
    identity_file: Path
    separate_user: bool
    env: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def shell_name(self) -> str:
        """The kind of login shell: one of :data:`SHELLS`."""
        return _shell_kind(self.shell)


@attrs.frozen
class SSHClientConfig:
    """An ``ssh_config`` file with a working alias and one alias per :class:`SSHFault`.

    Everything ssh needs is in ``path`` (and the key and known_hosts files it
    names), so ``ssh -F path alias`` / ``SSHExecutor(alias, ssh_config=path)``
    behave like ``ssh box`` with a real ``~/.ssh/config``. ``include_alias``
    takes its settings from an ``Include``d file and ``match_alias`` from a
    ``Match originalhost`` block; both reach the same account as ``alias``.
    """

    path: Path
    alias: str
    account: RemoteAccount
    port: int
    known_hosts: Path
    include_alias: str
    match_alias: str
    fault_aliases: Mapping[SSHFault, str]

    def alias_for(self, fault: SSHFault) -> str:
        """The alias that makes ``ssh`` fail with ``fault``."""
        return self.fault_aliases[fault]

    def ssh_argv(
        self, *command: str, alias: str | None = None, options: Sequence[str] = ()
    ) -> list[str]:
        """``ssh -F <path> [options] -- <alias> [command...]``."""
        return [
            "ssh",
            "-F",
            str(self.path),
            *options,
            "--",
            alias or self.alias,
            *command,
        ]

    def run(
        self,
        command: str | None = None,
        *,
        alias: str | None = None,
        options: Sequence[str] = (),
        input: str | None = None,
        timeout: float = 60.0,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run one ssh command (``LC_ALL=C``) and capture its output as text."""
        argv = self.ssh_argv(
            *([command] if command is not None else []), alias=alias, options=options
        )
        return subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=check,
            env={**os.environ, "LC_ALL": "C"},
            stdin=None if input is not None else subprocess.DEVNULL,
        )


def bundled_claude_binary() -> Path:
    """The Claude Code CLI that ships inside the installed ``claude-agent-sdk`` wheel."""
    # find_spec locates the package without importing it (importing costs seconds).
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or not spec.submodule_search_locations:
        raise SSHTestBedError("claude-agent-sdk is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "_bundled" / "claude"
    if not path.is_file():
        raise SSHTestBedError(
            f"claude-agent-sdk has no bundled CLI at {path}; install a platform wheel of the SDK"
        )
    return path


# --------------------------------------------------------------------------------------
# The bed


class SSHTestBed:
    """A real ``sshd`` on ``127.0.0.1`` plus accounts and client configs to reach it.

    ``start()`` generates host keys and an ``sshd_config`` in a private
    temporary directory, starts ``sshd -D -e -f <config>`` on a free port and
    waits for its banner. ``stop()`` ends the listener (new connections are
    refused; established sessions survive, as with ``systemctl stop ssh``),
    ``restart()`` brings it back on the same port, ``close()`` (and leaving the
    ``with`` block) also ends every session and account process and removes
    the directory (kept if ``RX_TESTBED_KEEP=1``). For fault injection:
    :meth:`kill_daemon`, :meth:`kill_sessions`, :meth:`kill_account_processes`.

    sshd's parent is a small child-subreaper process, so whatever the sessions
    leave behind (orphaned remote commands, exited session processes) is adopted
    and reaped by the bed rather than by PID 1, which in containers often never
    reaps (zombies would look alive to ``kill -0`` and ``ps``).

    ``model_url`` is the default ``ANTHROPIC_BASE_URL`` written into each
    account's ``settings.json``; ``claude_binary`` defaults to the SDK's bundled
    CLI; ``log_level`` is sshd's ``LogLevel`` (default ``DEBUG1``, logged to
    :attr:`log_path`); ``extra_config`` lines are appended to the generated
    ``sshd_config``; ``fast_kex`` leaves the slow sntrup761 key exchange out of
    the server's offer.
    """

    def __init__(
        self,
        *,
        root: Path | None = None,
        mode: Literal["auto", "accounts", "current-user"] = "auto",
        model_url: str | None = None,
        claude_binary: Path | None = None,
        log_level: str | None = None,
        extra_config: Sequence[str] = (),
        ready_timeout: float = 10.0,
        fast_kex: bool = True,
        sftp: bool = True,
    ) -> None:
        if mode == "auto":
            mode = "accounts" if os.geteuid() == 0 else "current-user"
        if mode == "accounts" and os.geteuid() != 0:
            raise SSHTestBedError("mode='accounts' creates system users and needs root")
        self.mode: Literal["accounts", "current-user"] = mode
        self.model_url = model_url
        if log_level is None:
            # A root login skips privilege separation: sshd sets the uid in the
            # session child after stderr became the client's, so with -e its
            # debug lines would reach the ssh client's stderr.
            root_login = mode == "current-user" and os.geteuid() == 0
            log_level = "VERBOSE" if root_login else "DEBUG1"
        self.log_level = log_level
        self.extra_config = tuple(extra_config)
        self.ready_timeout = ready_timeout
        self.fast_kex = fast_kex
        self.sftp = sftp  # False: a server without an SFTP subsystem
        self._claude_binary = claude_binary
        self._claude_target: Path | None = None
        self._root_arg = root
        self._root: Path | None = None
        self._port = 0
        # sshd runs under a small reaper (see _REAPER); _sshd_pid is sshd itself.
        self._reaper: subprocess.Popen[bytes] | None = None
        self._reapers: list[subprocess.Popen[bytes]] = []
        self._sshd_pid: int | None = None
        self._log: IO[bytes] | None = None
        self._sshd = _find_sshd()
        self._sshd_version = _sshd_version(self._sshd)
        self._token = secrets.token_hex(4)
        # A bound socket that never listens: connecting to its port is refused,
        # and nobody else can take the port while we hold it.
        self._closed_port_sock: socket.socket | None = None
        self._accounts: dict[str, RemoteAccount] = {}
        self._users: dict[str, str] = {}  # label -> unix user claimed by this bed
        self._user_locks: dict[str, int] = {}  # unix user -> fd holding its flock
        self._authorized: dict[str, str] = {}  # current-user mode: label -> authorized_keys line
        self._config_counter = itertools.count(1)

    # ---- lifecycle ----------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address sshd listens on."""
        return _LOOPBACK

    @property
    def port(self) -> int:
        """The port sshd listens on (fixed for the bed's life once started)."""
        if not self._port:
            raise SSHTestBedError("the test bed has not been started")
        return self._port

    @property
    def root(self) -> Path:
        """The bed's private directory (keys, sshd_config, log, account homes)."""
        if self._root is None:
            raise SSHTestBedError("the test bed has not been started")
        return self._root

    @property
    def log_path(self) -> Path:
        """sshd's log (``-e``: everything it logs, listener and sessions, lands here)."""
        return self.root / "sshd.log"

    @property
    def pid(self) -> int | None:
        """PID of the sshd listener, or None when it is not running."""
        if self._sshd_pid is not None and not _alive(self._sshd_pid):
            self._sshd_pid = None
        return self._sshd_pid

    @property
    def running(self) -> bool:
        """Whether the sshd listener is running."""
        return self.pid is not None

    def log_text(self) -> str:
        """Everything sshd has logged so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> SSHTestBed:
        """Start sshd (setting up the directory and keys on first use) and wait until ready."""
        if self.running:
            return self
        if self._root is None:
            self._setup()
        if self.mode == "accounts":
            # sshd refuses to start as root without its privilege separation
            # directory, which the package only creates at boot (tmpfiles.d).
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        fresh_port = self._port == 0
        for _attempt in range(5):
            if fresh_port:
                self._port = _free_port()
            self._write_sshd_config()
            self._spawn()
            try:
                self.wait_ready(self.ready_timeout)
                return self
            except SSHTestBedError:
                in_use = "Address already in use" in self.log_text()[-2000:]
                self._terminate()
                if not in_use:
                    raise
                if not fresh_port:
                    time.sleep(0.1)  # restart on a fixed port: wait for it to be free
        raise SSHTestBedError(f"sshd could not bind a port; log tail:\n{self._log_tail()}")

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until sshd accepts TCP connections and sends its ``SSH-`` banner."""
        deadline = time.monotonic() + timeout
        while True:
            if self._reaper is None:
                raise SSHTestBedError("sshd is not running")
            code = self._reaper.poll()
            if code is not None:
                raise SSHTestBedError(
                    f"sshd exited with status {code} before it was ready; "
                    f"log tail:\n{self._log_tail()}"
                )
            if _banner(self.host, self._port, timeout=1.0).startswith(b"SSH-"):
                return
            if time.monotonic() > deadline:
                raise SSHTestBedError(
                    f"sshd not ready after {timeout}s on {self.host}:{self._port}; "
                    f"log tail:\n{self._log_tail()}"
                )
            time.sleep(0.01)

    def stop(self, *, kill_sessions: bool = False) -> None:
        """Stop the listener: afterwards connections to the port are refused.

        Established sessions keep running (like ``systemctl stop ssh``) unless
        ``kill_sessions``.
        """
        sessions = self._session_pids() if kill_sessions else []
        self._terminate()
        _kill_all(sessions, signal.SIGKILL)

    def restart(self, *, new_host_key: bool = False) -> None:
        """Stop and start again on the same port; sessions survive.

        With ``new_host_key`` the server comes back with a freshly generated
        host key, as a reinstalled machine would: every config written before
        then sees a changed host key.
        """
        self.stop()
        if new_host_key:
            for suffix in ("", ".pub"):
                (self.root / "server" / f"ssh_host_ed25519_key{suffix}").unlink()
            _keygen(self.root / "server" / "ssh_host_ed25519_key", "rx-testbed host")
        self.start()

    def kill_daemon(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the sshd listener (a crash, by default); sessions are not touched."""
        pid = self.pid
        if pid is not None:
            _kill_all([pid], sig)
            _wait_gone(pid, 5.0)

    def kill_sessions(self, sig: signal.Signals = signal.SIGKILL) -> list[int]:
        """Signal every per-connection sshd process: each ssh link drops at once.

        The account's own commands are not signalled (they lose their pipes and,
        without a pty, usually keep running). Returns the PIDs signalled.
        """
        pids = self._session_pids()
        _kill_all(pids, sig)
        return pids

    def close(self) -> None:
        """Stop sshd, end every session and account process, remove the directory."""
        with contextlib.suppress(Exception):
            self.stop(kill_sessions=True)
        for account in list(self._accounts.values()):
            with contextlib.suppress(Exception):
                self.kill_account_processes(account)
        for reaper in self._reapers:
            try:
                reaper.wait(2)
            except subprocess.TimeoutExpired:
                reaper.kill()
                reaper.wait()
        self._reapers.clear()
        for fd in self._user_locks.values():
            os.close(fd)
        self._user_locks.clear()
        if self._closed_port_sock is not None:
            self._closed_port_sock.close()
            self._closed_port_sock = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if (
            self._root is not None
            and self._root_arg is None
            and os.environ.get("RX_TESTBED_KEEP") != "1"
        ):
            shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> SSHTestBed:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<SSHTestBed {self.mode} {_LOOPBACK}:{self._port or '?'} {state}>"

    # ---- accounts -----------------------------------------------------------------

    def account(
        self,
        shell: str | None = None,
        *,
        label: str | None = None,
        noisy: bool = False,
        claude: str | None = CLAUDE_DEFAULT_PATH,
        login_path: Sequence[str] = (),
        model_url: str | None = None,
        settings: Mapping[str, object] | None = None,
        claude_config_dir: str | None = None,
        skel: bool = False,
    ) -> RemoteAccount:
        """Provision an account with a fresh, empty home and return it.

        ``shell``: one of :data:`SHELLS` or an absolute path (default: bash as
        root, the user's own shell otherwise). ``label`` names the account
        (default: the shell's name); the unix user is ``rx-<label>``.
        Provisioning a label again kills its processes and wipes its home.

        ``noisy``: rc files that print :data:`NOISE_STDOUT` / :data:`NOISE_STDERR`
        lines on every ssh command: ``~/.bashrc`` (bash sources it for ssh
        commands), ``~/.zshenv``, ``~/.config/fish/config.fish``, ``~/.tcshrc``.
        ``sh -c`` reads no rc file, so for sh only login shells print (``~/.profile``).

        ``claude``: where to link the Claude Code CLI, relative to the home
        (default ``.local/bin/claude``, off the non-login PATH), or None for
        "not installed". ``login_path``: directories (relative to the home)
        that login shells put in front of ``PATH`` (``~/.profile``,
        ``~/.zprofile``, fish ``status is-login``, ``~/.login``).

        ``model_url`` (default: the bed's): the ``ANTHROPIC_BASE_URL`` written
        with a dummy ``ANTHROPIC_API_KEY`` into ``settings.json``; ``settings``
        is merged over the generated settings. ``claude_config_dir`` (relative
        to the home) makes sshd export ``CLAUDE_CONFIG_DIR`` for the account.
        ``skel`` copies ``/etc/skel`` first (Debian's adds ``~/.local/bin`` to the
        login PATH if it exists).
        """
        self.start()
        shell_path = self._resolve_shell(shell)
        kind = _shell_kind(shell_path)
        label = label or kind
        if not _LABEL_RE.match(label):
            raise ValueError(f"account label {label!r} must match {_LABEL_RE.pattern}")
        for rel in [*(login_path or ()), claude or "", claude_config_dir or ""]:
            if rel and (Path(rel).is_absolute() or ".." in Path(rel).parts):
                raise ValueError(f"{rel!r} must be a path relative to the account's home")

        previous = self._accounts.get(label)
        if previous is not None:
            self.kill_account_processes(previous)
        if self.mode == "accounts":
            user = self._claim_user(label)
            home = self.root / "home" / user
            uid, gid = self._ensure_user(user, home, shell_path)
        else:
            me = pwd.getpwuid(os.getuid())
            user, uid, gid = me.pw_name, me.pw_uid, me.pw_gid
            home = self.root / "home" / label
        if home.exists() or home.is_symlink():
            shutil.rmtree(home)
        home.mkdir(mode=0o755, parents=True)
        if skel and Path("/etc/skel").is_dir():
            shutil.copytree("/etc/skel", home, symlinks=True, dirs_exist_ok=True)

        config_dir = home / (claude_config_dir or ".claude")
        env: dict[str, str] = {}
        if self.mode == "current-user":
            env["HOME"] = str(home)
            env[_ACCOUNT_ENV_MARK] = f"{self._token}-{label}"
        if claude_config_dir:
            env["CLAUDE_CONFIG_DIR"] = str(config_dir)

        identity = self.root / "client" / f"id_{label}"
        if not identity.exists():
            _keygen(identity, f"rx-testbed client {label}")
        public_key = _public_key(identity.with_suffix(".pub"))
        options = ",".join(f'environment="{k}={v}"' for k, v in env.items())
        key_line = f"{options} {public_key}".strip() + "\n"
        if self.mode == "accounts":
            ssh_dir = home / ".ssh"
            ssh_dir.mkdir(mode=0o700)
            (ssh_dir / "authorized_keys").write_text(key_line)
            (ssh_dir / "authorized_keys").chmod(0o600)
        else:
            self._authorized[label] = key_line
            keys = self.root / "server" / "authorized_keys"
            keys.write_text("".join(self._authorized.values()))

        self._write_claude_settings(config_dir, model_url or self.model_url, settings)
        claude_path = home / claude if claude else None
        if claude_path is not None:
            claude_path.parent.mkdir(parents=True, exist_ok=True)
            claude_path.symlink_to(self._claude_link_target())
        _write_rc_files(home, kind, noisy=noisy, login_path=login_path)
        if self.mode == "accounts":
            _chown_tree(home, uid, gid)

        account = RemoteAccount(
            label=label,
            user=user,
            uid=uid,
            gid=gid,
            home=home,
            shell=shell_path,
            claude_config_dir=config_dir,
            claude_path=claude_path,
            identity_file=identity,
            separate_user=self.mode == "accounts",
            env=env,
        )
        self._accounts[label] = account
        return account

    def remote_home(self, account: RemoteAccount) -> Path:
        """The account's home directory, as a local path (it is on this machine)."""
        return account.home

    def run_as(
        self,
        account: RemoteAccount,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 60.0,
        check: bool = False,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` locally as the account (its uid, home and env), without ssh.

        For inspecting the "remote" side: its files, its processes, its CLI.
        ``PATH`` is the non-login one an ssh command gets.
        """
        env = {
            "HOME": str(account.home),
            "USER": account.user,
            "LOGNAME": account.user,
            "SHELL": account.shell,
            "PATH": NON_LOGIN_PATH,
            "LC_ALL": "C",
            **account.env,
        }
        separate = account.separate_user
        return subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=check,
            env=env,
            cwd=str(cwd or account.home),
            stdin=None if input is not None else subprocess.DEVNULL,
            user=account.uid if separate else None,
            group=account.gid if separate else None,
            extra_groups=[] if separate else None,
        )

    def processes(self, account: RemoteAccount) -> list[ProcessInfo]:
        """The account's live processes (zombies left out).

        By uid; in current-user mode by an environment marker (Linux ``/proc`` only).
        """
        table = [p for p in _process_table() if not p.zombie]
        if account.separate_user:
            return [p for p in table if p.uid == account.uid]
        mark = f"{_ACCOUNT_ENV_MARK}={account.env.get(_ACCOUNT_ENV_MARK, '')}".encode()
        found = []
        for p in table:
            if p.uid != account.uid or p.pid == os.getpid():
                continue
            try:
                environ = Path(f"/proc/{p.pid}/environ").read_bytes()
            except OSError:
                continue
            if mark in environ.split(b"\0"):
                found.append(p)
        return found

    def connections(self, account: RemoteAccount) -> list[int]:
        """PIDs of the per-connection sshd processes serving the account, one per
        TCP connection.

        A channel's session process is forked from its connection's process and
        carries the same name until it execs the login shell: a child of one is
        not counted.
        """
        sshd = [p for p in self.processes(account) if p.comm.startswith("sshd")]
        sshd = [p for p in sshd if "@notty" in p.args]
        pids = {p.pid for p in sshd}
        return [p.pid for p in sshd if p.ppid not in pids]

    def kill_account_processes(
        self, account: RemoteAccount, sig: signal.Signals = signal.SIGKILL
    ) -> list[int]:
        """Signal every process of the account (leftovers of a test); returns their PIDs."""
        killed: list[int] = []
        for _round in range(50):
            pids = [p.pid for p in self.processes(account)]
            if not pids:
                break
            _kill_all(pids, sig)
            killed.extend(pids)
            if sig != signal.SIGKILL:
                break
            time.sleep(0.02)
        return killed

    # ---- client side --------------------------------------------------------------

    def client_config(
        self,
        account: RemoteAccount,
        directory: Path | None = None,
        *,
        alias: str = "rx-box",
    ) -> SSHClientConfig:
        """Write an ``ssh_config`` (and its known_hosts files) for ``account`` into ``directory``.

        Aliases: ``alias`` works; ``<alias>-include`` and ``<alias>-match`` work
        through ``Include`` and ``Match``; ``<alias>-<fault>`` fails as
        :class:`SSHFault` describes. Default directory: a new one in the bed.
        """
        self.start()
        if alias.startswith("-") or not re.fullmatch(r"[A-Za-z0-9._-]+", alias):
            raise ValueError(f"bad alias {alias!r}")
        if directory is None:
            directory = self.root / "client" / f"config-{next(self._config_counter)}"
        directory.mkdir(parents=True, exist_ok=True)
        pinned = directory / "known_hosts"
        changed = directory / "known_hosts_changed"
        empty = directory / "known_hosts_empty"
        host_pattern = f"[{_LOOPBACK}]:{self.port}"
        pinned.write_text(f"{host_pattern} {self._host_public_key('ssh_host_ed25519_key')}\n")
        changed.write_text(f"{host_pattern} {self._host_public_key('impostor_ed25519_key')}\n")
        empty.write_text("")

        def block(
            *,
            hostname: str = _LOOPBACK,
            port: int | None = None,
            identity: Path = account.identity_file,
            known_hosts: Path = pinned,
        ) -> list[str]:
            return [
                f"    HostName {hostname}",
                f"    Port {port or self.port}",
                f"    User {account.user}",
                f'    IdentityFile "{identity}"',
                "    IdentitiesOnly yes",
                f'    UserKnownHostsFile "{known_hosts}"',
                "    GlobalKnownHostsFile /dev/null",
                "    StrictHostKeyChecking yes",
                "    UpdateHostKeys no",
                "    CheckHostIP no",
                "    BatchMode yes",
                "    ConnectTimeout 10",
                "",
            ]

        faults = {fault: f"{alias}-{fault.value}" for fault in SSHFault}
        include_alias, match_alias = f"{alias}-include", f"{alias}-match"
        included = directory / f"{include_alias}.conf"
        included.write_text(
            "# Included from ssh_config inside `Host "
            + include_alias
            + "`: applies to that host only.\n"
            + "\n".join(block())
        )
        variants = {
            SSHFault.WRONG_KEY: block(identity=self.root / "client" / "id_stranger"),
            SSHFault.CHANGED_HOST_KEY: block(known_hosts=changed),
            SSHFault.UNKNOWN_HOST_KEY: block(known_hosts=empty),
            SSHFault.CONNECTION_REFUSED: block(port=self._closed_port()),
            SSHFault.UNRESOLVABLE: block(hostname=_UNRESOLVABLE_HOST),
        }
        lines = [
            f"# ssh_config written by remote_executors.testing.sshd for {account.user}",
            f"# (bed {_LOOPBACK}:{self.port}, home {account.home}). Use with `ssh -F`.",
            "",
            f"Host {alias}",
            *block(),
            f"Host {include_alias}",
            f'    Include "{included}"',
            "",
        ]
        for fault, fault_lines in variants.items():
            lines += [f"Host {faults[fault]}", *fault_lines]
        lines += [f"Match originalhost {match_alias}", *block()]
        path = directory / "ssh_config"
        path.write_text("\n".join(lines))
        return SSHClientConfig(
            path=path,
            alias=alias,
            account=account,
            port=self.port,
            known_hosts=pinned,
            include_alias=include_alias,
            match_alias=match_alias,
            fault_aliases=faults,
        )

    # ---- internals ----------------------------------------------------------------

    def _setup(self) -> None:
        if self._root_arg is not None:
            root = self._root_arg
            root.mkdir(parents=True, exist_ok=True)
        else:
            root = Path(tempfile.mkdtemp(prefix="rx-sshd-"))
        # Account homes live below: they must be able to traverse it, but not list it.
        root.chmod(0o711)
        (root / "home").mkdir(mode=0o755, exist_ok=True)
        for private in ("server", "client"):
            (root / private).mkdir(mode=0o700, exist_ok=True)
        self._root = root
        (root / "server" / "rx-testbed-reaper.py").write_text(_REAPER)
        _keygen(root / "server" / "ssh_host_ed25519_key", "rx-testbed host")
        _keygen(root / "server" / "impostor_ed25519_key", "rx-testbed impostor host")
        _keygen(root / "client" / "id_stranger", "rx-testbed stranger (never authorized)")
        if self.mode == "current-user":
            (root / "server" / "authorized_keys").write_text("")

    def _write_sshd_config(self) -> None:
        server = self.root / "server"
        accounts = self.mode == "accounts"
        me = pwd.getpwuid(os.getuid()).pw_name
        lines = [
            "# sshd_config written by remote_executors.testing.sshd",
            f"ListenAddress {_LOOPBACK}",
            f"Port {self._port}",
            f"HostKey {server / 'ssh_host_ed25519_key'}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"LogLevel {self.log_level}",
            "UsePAM no",
            "PubkeyAuthentication yes",
            "AuthenticationMethods publickey",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            "PermitEmptyPasswords no",
            # A laptop's own sshd refuses ~/.ssh in /tmp-based homes for the same reason.
            f"StrictModes {'yes' if accounts else 'no'}",
            "AuthorizedKeysFile "
            + (".ssh/authorized_keys" if accounts else str(server / "authorized_keys")),
            "PermitUserEnvironment "
            + ("CLAUDE_CONFIG_DIR" if accounts else f"HOME,CLAUDE_CONFIG_DIR,{_ACCOUNT_ENV_MARK}"),
            f"AllowUsers {'rx-*' if accounts else me}",
            f"PermitRootLogin {'no' if accounts else 'prohibit-password'}",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            "X11Forwarding no",
            # Parallel tests open many connections at once; the default 10:30:100
            # drops unauthenticated ones at random.
            "MaxStartups 64:30:128",
        ]
        if self.sftp:
            lines.append("Subsystem sftp internal-sftp")
        if self.fast_kex:
            # sntrup761x25519 (the default KEX of OpenSSH 9.0-9.8) costs ~130 ms per
            # connection on a slow CI CPU; nothing we test depends on the KEX. The
            # ML-KEM hybrid of 9.9+ is fast and keeps newer clients from warning
            # about a non-post-quantum exchange.
            kex = ["curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256"]
            if self._sshd_version >= (9, 9):
                kex.insert(0, "mlkem768x25519-sha256")
            lines.append(f"KexAlgorithms {','.join(kex)}")
        if self._sshd_version >= (9, 8):
            # Newer sshd penalises a source address after failed logins; our
            # failure tests would then get random refusals on 127.0.0.1.
            lines.append("PerSourcePenalties no")
        lines += list(self.extra_config)
        (server / "sshd_config").write_text("\n".join(lines) + "\n")

    def _spawn(self) -> None:
        if self._log is None:
            self._log = self.log_path.open("ab")
        self._log.write(f"---- rx-testbed: starting sshd on port {self._port}\n".encode())
        self._log.flush()
        env = dict(_C_ENV)
        argv = [self._sshd, "-D", "-e", "-f", str(self.root / "server" / "sshd_config")]
        reaper = subprocess.Popen(
            [sys.executable, "-I", "-S", str(self.root / "server" / "rx-testbed-reaper.py"), *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            start_new_session=True,  # keep terminal signals (Ctrl-C) off the daemon
        )
        self._reaper = reaper
        self._reapers.append(reaper)
        assert reaper.stdout is not None
        line = reaper.stdout.readline()  # the reaper reports sshd's pid first
        reaper.stdout.close()
        self._sshd_pid = int(line) if line.strip() else None

    def _terminate(self) -> None:
        pid = self.pid
        if pid is not None:
            _kill_all([pid], signal.SIGTERM)
            if not _wait_gone(pid, 5.0):
                _kill_all([pid], signal.SIGKILL)
                _wait_gone(pid, 5.0)
        self._sshd_pid = None
        self._reaper = None
        # Reapers whose adopted processes are all gone have exited: collect them.
        self._reapers = [r for r in self._reapers if r.poll() is None]

    def _log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _session_pids(self) -> list[int]:
        # Sessions are sshd's children, or the reaper's once the listener is gone.
        table = _process_table()
        children: dict[int, list[int]] = {}
        for p in table:
            children.setdefault(p.ppid, []).append(p.pid)
        todo = [r.pid for r in self._reapers if r.poll() is None]
        below: set[int] = set()
        while todo:
            pid = todo.pop()
            for child in children.get(pid, []):
                if child not in below:
                    below.add(child)
                    todo.append(child)
        listener = self.pid
        return sorted(
            p.pid
            for p in table
            if p.pid in below and p.comm in _SSHD_NAMES and p.pid != listener and not p.zombie
        )

    def _closed_port(self) -> int:
        if self._closed_port_sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((_LOOPBACK, 0))
            self._closed_port_sock = sock
        port: int = self._closed_port_sock.getsockname()[1]
        return port

    def _host_public_key(self, name: str) -> str:
        return _public_key(self.root / "server" / f"{name}.pub")

    def _resolve_shell(self, shell: str | None) -> str:
        me = pwd.getpwuid(os.getuid())
        if shell is None:
            shell = "bash" if self.mode == "accounts" else me.pw_shell
        if Path(shell).is_absolute():
            path = shell
        elif shell == "sh":
            path = "/bin/sh"
        else:
            found = shutil.which(shell, path="/bin:/usr/bin:/usr/local/bin")
            if found is None:
                raise SSHTestBedError(
                    f"login shell {shell!r} is not installed (on Debian: apt-get install {shell})"
                )
            path = found
        _shell_kind(path)  # raises for shells we cannot configure
        if self.mode == "current-user" and os.path.realpath(path) != os.path.realpath(me.pw_shell):
            raise SSHTestBedError(
                f"not root: the bed can only log in as {me.pw_name}, whose login shell is "
                f"{me.pw_shell}, not {path}; run the tests as root to get per-shell accounts"
            )
        return path

    def _claim_user(self, label: str) -> str:
        base = f"rx-{label}"
        claimed = self._users.get(label)
        if claimed is not None:
            return claimed
        lock_dir = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
        lock_dir = lock_dir / "rx-testbed"
        lock_dir.mkdir(mode=0o700, exist_ok=True)
        # Another bed (another pytest run, an xdist worker) may be using the
        # account: take the first name whose lock is free.
        for suffix in ["", *(f"-{n}" for n in range(2, 10))]:
            user = base + suffix
            fd = os.open(lock_dir / f"{user}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    continue
                raise
            self._user_locks[user] = fd
            self._users[label] = user
            return user
        raise SSHTestBedError(
            f"all accounts {base}, {base}-2 ... {base}-9 are in use by other beds"
        )

    def _ensure_user(self, user: str, home: Path, shell: str) -> tuple[int, int]:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            # "*" rather than useradd's locked "!": with UsePAM no, sshd refuses
            # public-key logins to accounts whose password is locked.
            useradd = ["useradd", "-M", "-U", "-d", str(home), "-s", shell, "-p", "*"]
            _run([*useradd, "-c", _GECOS, user])
            pw = pwd.getpwnam(user)
        else:
            if pw.pw_gecos != _GECOS:
                raise SSHTestBedError(
                    f"user {user} exists but was not created by the test bed "
                    f"(GECOS {pw.pw_gecos!r}); refusing to touch it"
                )
            if pw.pw_dir != str(home) or pw.pw_shell != shell:
                # usermod refuses while the user has processes (e.g. left by a crashed run).
                _kill_all([p.pid for p in _process_table() if p.uid == pw.pw_uid], signal.SIGKILL)
                _run(["usermod", "-d", str(home), "-s", shell, "-p", "*", user])
                pw = pwd.getpwnam(user)
        return pw.pw_uid, pw.pw_gid

    def _write_claude_settings(
        self, config_dir: Path, model_url: str | None, extra: Mapping[str, object] | None
    ) -> None:
        env: dict[str, str] = {
            "ANTHROPIC_API_KEY": _DUMMY_API_KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }
        if model_url:
            env["ANTHROPIC_BASE_URL"] = model_url
        settings: dict[str, object] = {"env": env}
        for key, value in (extra or {}).items():
            if key == "env" and isinstance(value, Mapping):
                env.update({str(k): str(v) for k, v in value.items()})
            else:
                settings[key] = value
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")

    def _claude_link_target(self) -> Path:
        if self._claude_target is not None:
            return self._claude_target
        binary = (self._claude_binary or bundled_claude_binary()).resolve()
        target = binary
        if self.mode == "accounts" and not _world_executable(binary):
            target = _shared_copy(binary)
        self._claude_target = target
        return target


# --------------------------------------------------------------------------------------
# Helpers


_SHELL_KINDS = {"sh": "sh", "dash": "sh", "bash": "bash", "zsh": "zsh", "fish": "fish"}
_SHELL_KINDS.update({"tcsh": "tcsh", "csh": "tcsh"})


def _shell_kind(path: str) -> str:
    for name in (Path(path).name, Path(path).resolve().name):
        if name in _SHELL_KINDS:
            return _SHELL_KINDS[name]
    raise SSHTestBedError(f"unsupported login shell {path}; supported: {', '.join(SHELLS)}")


def _noise(rcfile: str, shell: str) -> list[str]:
    out = f"{NOISE_STDOUT} from {rcfile}"
    err = f"{NOISE_STDERR} from {rcfile}"
    if shell == "tcsh":
        # tcsh's echo cannot write to stderr on its own.
        return [f'echo "{out}"', f"/bin/sh -c 'echo \"{err}\" >&2'"]
    return [f'echo "{out}"', f'echo "{err}" >&2']


def _write_rc_files(home: Path, shell: str, *, noisy: bool, login_path: Sequence[str]) -> None:
    """Noise goes first (before any guard a skel file has); PATH lines go last."""
    dirs = [f"$HOME/{d}" for d in login_path]

    def prepend(rel: str, lines: Iterable[str]) -> None:
        path = home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_text() if path.exists() else ""
        path.write_text("\n".join(lines) + "\n" + old)

    def append(rel: str, lines: Iterable[str]) -> None:
        path = home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write("\n".join(lines) + "\n")

    header = "# written by remote_executors.testing.sshd"
    if shell in ("sh", "bash"):
        if noisy:
            rc = "~/.profile" if shell == "sh" else "~/.bashrc"
            prepend(rc[2:], [header, *_noise(rc, shell)])
        if dirs:
            append(".profile", [header, f'PATH="{":".join(dirs)}:$PATH"', "export PATH"])
    elif shell == "zsh":
        if noisy:
            prepend(".zshenv", [header, *_noise("~/.zshenv", shell)])
        if dirs:
            append(".zprofile", [header, f'export PATH="{":".join(dirs)}:$PATH"'])
    elif shell == "fish":
        if noisy:
            prepend(
                ".config/fish/config.fish", [header, *_noise("~/.config/fish/config.fish", shell)]
            )
        if dirs:
            append(
                ".config/fish/config.fish",
                [header, "if status is-login", f"    set -gx PATH {' '.join(dirs)} $PATH", "end"],
            )
    elif shell == "tcsh":
        if noisy:
            prepend(".tcshrc", [header, *_noise("~/.tcshrc", shell)])
        if dirs:
            append(".login", [header, f'setenv PATH "{":".join(dirs)}:${{PATH}}"'])


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    os.lchown(top, uid, gid)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            os.lchown(Path(dirpath, name), uid, gid)


def _world_executable(path: Path) -> bool:
    """Whether any user can reach and run ``path`` (o+x on every directory, o+rx on it)."""
    mode = path.stat().st_mode
    if mode & (stat.S_IROTH | stat.S_IXOTH) != (stat.S_IROTH | stat.S_IXOTH):
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)


def _shared_copy(binary: Path) -> Path:
    """Put ``binary`` where every account can run it, once per CLI build.

    A hard link costs nothing on the same filesystem; otherwise it is copied
    (about 380 MB) once and reused by later runs.
    """
    st = binary.stat()
    shared = Path("/opt/rx-testbed/claude") / f"{st.st_size}-{st.st_mtime_ns}"
    target = shared / "claude"
    if target.exists():
        return target
    for directory in (Path("/opt/rx-testbed"), Path("/opt/rx-testbed/claude"), shared):
        directory.mkdir(mode=0o755, exist_ok=True)
        directory.chmod(0o755)
    tmp = shared / f".claude-{os.getpid()}"
    try:
        os.link(binary, tmp)
    except OSError:
        shutil.copyfile(binary, tmp)
    tmp.chmod(0o755)
    tmp.replace(target)
    return target


def _find_sshd() -> str:
    search = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", "/sbin", os.environ.get("PATH", "")])
    found = shutil.which("sshd", path=search)
    if found is None:
        raise SSHTestBedError("sshd not found; install OpenSSH's server (Debian: openssh-server)")
    # sshd re-executes itself for every connection and insists on an absolute path.
    return str(Path(found).absolute())


def _sshd_version(sshd: str) -> tuple[int, int]:
    out = subprocess.run([sshd, "-V"], capture_output=True, text=True, env=_C_ENV, check=False)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stdout + out.stderr)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _keygen(path: Path, comment: str) -> None:
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def _public_key(pub: Path) -> str:
    """``type base64`` of an OpenSSH public key file (comment dropped)."""
    return " ".join(pub.read_text().split()[:2])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _banner(host: str, port: int, *, timeout: float) -> bytes:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return sock.recv(64)
    except OSError:
        return b""


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=_C_ENV, check=False)
    if result.returncode != 0:
        raise SSHTestBedError(
            f"{' '.join(argv)} failed with status {result.returncode}: {result.stderr.strip()}"
        )


def _process_table() -> list[ProcessInfo]:
    # comm before args: args may hold spaces, comm rarely does.
    out = subprocess.run(
        ["ps", "-ww", "-A", "-o", "pid=,ppid=,uid=,stat=,comm=,args="],
        capture_output=True,
        text=True,
        errors="replace",
        env=_C_ENV,
        check=True,
    ).stdout
    table = []
    for line in out.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        with contextlib.suppress(ValueError):
            table.append(
                ProcessInfo(
                    pid=int(parts[0]),
                    ppid=int(parts[1]),
                    uid=int(parts[2]),
                    state=parts[3],
                    comm=parts[4],
                    args=parts[5] if len(parts) > 5 else "",
                )
            )
    return table


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _kill_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        if pid in (0, 1, os.getpid()):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
