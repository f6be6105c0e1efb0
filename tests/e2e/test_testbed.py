"""The real-sshd test bed, and the facts about ssh on this kind of machine it reproduces.

Each test states a fact the library is built on (see DESIGN.md, "Facts found on
this kind of machine") and proves it against a real sshd, real accounts and
real login shells.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from remote_executors.testing._sshd_fixtures import *  # noqa: F403
from remote_executors.testing._sshd_fixtures import AccountFactory
from remote_executors.testing.sshd import (
    NOISE_STDERR,
    NOISE_STDOUT,
    NON_LOGIN_PATH,
    SHELLS,
    ProcessInfo,
    RemoteAccount,
    SSHClientConfig,
    SSHFault,
    SSHTestBed,
    SSHTestBedError,
)

pytestmark = pytest.mark.e2e

# Something each login shell understands that only that shell answers.
SHELL_PROBES: dict[str, tuple[str, Callable[[str], bool]]] = {
    "sh": ("echo ${BASH_VERSION:-no}-${ZSH_VERSION:-no}", lambda out: out == "no-no"),
    "bash": ("echo $BASH_VERSION", lambda out: out[:1].isdigit()),
    "zsh": ("echo $ZSH_VERSION", lambda out: out[:1].isdigit()),
    "fish": ("echo $FISH_VERSION", lambda out: out[:1].isdigit()),
    "tcsh": ("echo $tcsh", lambda out: out[:1].isdigit()),
}


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def find(bed: SSHTestBed, account: RemoteAccount, args: str) -> ProcessInfo | None:
    return next((p for p in bed.processes(account) if p.args == args), None)


@pytest.fixture
def own_bed() -> Iterator[SSHTestBed]:
    """A bed for tests that stop, restart or kill sshd (the session bed stays up)."""
    with SSHTestBed() as bed:
        yield bed


# ---- the basics --------------------------------------------------------------------


def test_ssh_alias_true_works_with_only_the_config_file(
    rx_ssh_config: SSHClientConfig, rx_account: RemoteAccount
) -> None:
    result = rx_ssh_config.run("true")
    assert (result.returncode, result.stderr) == (0, "")

    who = rx_ssh_config.run("id -un; printenv HOME", check=True).stdout.split()
    assert who == [rx_account.user, str(rx_account.home)]
    assert rx_account.home != Path.home()
    assert rx_account.separate_user is (os.geteuid() == 0)


@pytest.mark.parametrize("rx_account", SHELLS, indirect=True)
def test_each_login_shell_runs_the_command(
    rx_account: RemoteAccount, rx_ssh_config: SSHClientConfig
) -> None:
    assert rx_account.shell_name in SHELLS
    hi = rx_ssh_config.run("echo hi")
    assert (hi.returncode, hi.stdout, hi.stderr) == (0, "hi\n", "")

    probe, expected = SHELL_PROBES[rx_account.shell_name]
    answer = rx_ssh_config.run(probe, check=True).stdout.strip()
    assert expected(answer), f"{rx_account.shell} answered {answer!r} to {probe!r}"


@pytest.mark.parametrize("rx_account", SHELLS, indirect=True)
def test_non_login_path_of_an_ssh_command(
    rx_account: RemoteAccount, rx_ssh_config: SSHClientConfig
) -> None:
    path = rx_ssh_config.run("printenv PATH", check=True).stdout.strip()
    assert path == NON_LOGIN_PATH  # the same for every login shell
    assert str(rx_account.home) not in path


@pytest.mark.parametrize("shell", SHELLS)
def test_noisy_rc_files_print_on_every_ssh_command(
    rx_sshd: SSHTestBed, rx_account_factory: AccountFactory, shell: str, tmp_path: Path
) -> None:
    account = rx_account_factory(shell, noisy=True)
    cfg = rx_sshd.client_config(account, tmp_path)
    result = cfg.run("echo hi")
    assert result.returncode == 0
    if shell == "sh":
        # `sh -c` (dash) reads no rc file at all: nothing can be noisy.
        assert (result.stdout, result.stderr) == ("hi\n", "")
        return
    rcfile = {
        "bash": "~/.bashrc",  # Debian's bash sources it when started by sshd
        "zsh": "~/.zshenv",
        "fish": "~/.config/fish/config.fish",
        "tcsh": "~/.tcshrc",
    }[shell]
    assert result.stdout == f"{NOISE_STDOUT} from {rcfile}\nhi\n"
    assert result.stderr == f"{NOISE_STDERR} from {rcfile}\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_cli_on_the_login_path_only(
    rx_sshd: SSHTestBed, rx_account_factory: AccountFactory, shell: str, tmp_path: Path
) -> None:
    account = rx_account_factory(shell, claude="tools/bin/claude", login_path=["tools/bin"])
    cfg = rx_sshd.client_config(account, tmp_path)
    lookup = "which claude" if shell == "tcsh" else "command -v claude"
    assert cfg.run(lookup).returncode != 0  # "not installed" = not on the non-login PATH

    if shell == "tcsh":
        # tcsh takes -l only as its sole argument: feed the login shell stdin.
        login = cfg.run("exec tcsh -l", input="which claude\n")
        # ...and with no tty it says so on stdout, before any command output.
        assert "Warning: no access to tty" in login.stdout
    else:
        login = cfg.run("exec $SHELL -l -c 'command -v claude'")
    assert login.returncode == 0
    assert login.stdout.splitlines()[-1] == str(account.home / "tools/bin/claude")


# ---- the Claude Code CLI and its settings ------------------------------------------------


def test_cli_is_installed_in_local_bin_off_the_non_login_path(
    rx_ssh_config: SSHClientConfig, rx_account: RemoteAccount
) -> None:
    assert rx_account.claude_path == rx_account.home / ".local/bin/claude"
    missing = rx_ssh_config.run("claude --version")
    assert (missing.returncode, missing.stdout) == (127, "")
    assert missing.stderr == "bash: line 1: claude: command not found\n"

    version = rx_ssh_config.run("~/.local/bin/claude --version", timeout=120)
    assert version.returncode == 0, version.stderr
    assert "(Claude Code)" in version.stdout


def test_cli_can_be_absent_or_elsewhere(
    rx_sshd: SSHTestBed, rx_account_factory: AccountFactory, tmp_path: Path
) -> None:
    absent = rx_account_factory("bash", claude=None)
    assert absent.claude_path is None
    assert not (absent.home / ".local/bin/claude").exists()

    elsewhere = rx_account_factory("bash", label="elsewhere", claude=".claude/local/claude")
    cfg = rx_sshd.client_config(elsewhere, tmp_path)
    version = cfg.run("~/.claude/local/claude --version", timeout=120)
    assert version.returncode == 0, version.stderr
    assert not (elsewhere.home / ".local/bin/claude").exists()


def test_settings_point_the_cli_at_the_stand_in_model(rx_account_factory: AccountFactory) -> None:
    account = rx_account_factory("bash", model_url="http://127.0.0.1:9/model")
    settings_file = account.claude_config_dir / "settings.json"
    assert settings_file == account.home / ".claude/settings.json"
    env = json.loads(settings_file.read_text())["env"]
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9/model"
    assert env["ANTHROPIC_API_KEY"]
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert settings_file.stat().st_uid == account.uid


def test_custom_claude_config_dir_is_exported_by_sshd(
    rx_sshd: SSHTestBed, rx_account_factory: AccountFactory, tmp_path: Path
) -> None:
    account = rx_account_factory("fish", claude_config_dir="cfg/claude", model_url="http://x.test/")
    cfg = rx_sshd.client_config(account, tmp_path)
    seen = cfg.run("printenv CLAUDE_CONFIG_DIR", check=True).stdout.strip()
    assert seen == str(account.home / "cfg/claude") == str(account.claude_config_dir)
    assert (account.claude_config_dir / "settings.json").is_file()


# ---- inspecting the remote side --------------------------------------------------------


def test_run_as_and_remote_home_see_what_ssh_did(
    rx_sshd: SSHTestBed, rx_account: RemoteAccount, rx_ssh_config: SSHClientConfig
) -> None:
    rx_ssh_config.run("mkdir -p work && echo made > work/file", check=True)
    made = rx_sshd.remote_home(rx_account) / "work/file"
    assert made.read_text() == "made\n"
    assert made.stat().st_uid == rx_account.uid

    result = rx_sshd.run_as(rx_account, ["sh", "-c", 'id -un; echo "$HOME"; cat work/file'])
    assert result.stdout.split() == [rx_account.user, str(rx_account.home), "made"]


def test_killing_the_local_ssh_leaves_the_remote_command_running(
    rx_sshd: SSHTestBed, rx_account: RemoteAccount, rx_ssh_config: SSHClientConfig
) -> None:
    # No pty (sshd's default for a command): nothing tells the remote side.
    client = subprocess.Popen(
        rx_ssh_config.ssh_argv("exec sleep 3001"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: find(rx_sshd, rx_account, "sleep 3001") is not None)
        # `ps -u <user>` on the remote shows the account's processes.
        ps = subprocess.run(
            ["ps", "-u", rx_account.user, "-o", "pid=,args="], capture_output=True, text=True
        )
        assert "sleep 3001" in ps.stdout
    finally:
        client.kill()
        client.wait()

    def orphaned() -> bool:
        proc = find(rx_sshd, rx_account, "sleep 3001")
        assert proc is not None, "the remote command died with the ssh client"
        parent = next((p for p in rx_sshd.processes(rx_account) if p.pid == proc.ppid), None)
        return parent is None  # re-parented away from the sshd session, which is gone

    wait_for(orphaned)
    time.sleep(0.5)
    assert find(rx_sshd, rx_account, "sleep 3001") is not None
    assert rx_sshd.kill_account_processes(rx_account)
    assert find(rx_sshd, rx_account, "sleep 3001") is None


# ---- failures, provoked for real ---------------------------------------------------------


@pytest.mark.parametrize("fault", list(SSHFault), ids=lambda f: f.value)
def test_failure_aliases_fail_like_ssh_does(
    rx_ssh_config: SSHClientConfig, fault: SSHFault
) -> None:
    result = rx_ssh_config.run("true", alias=rx_ssh_config.alias_for(fault))
    assert result.returncode == 255
    assert fault.stderr_text in result.stderr, result.stderr


def test_exact_ssh_error_texts(rx_ssh_config: SSHClientConfig) -> None:
    """The full stderr of each failure, with LC_ALL=C (the texts the library maps to errors)."""
    cfg = rx_ssh_config
    port, user = cfg.port, cfg.account.user

    def stderr(fault: SSHFault) -> str:
        return cfg.run("true", alias=cfg.alias_for(fault)).stderr

    assert stderr(SSHFault.WRONG_KEY) == f"{user}@127.0.0.1: Permission denied (publickey).\n"
    assert stderr(SSHFault.UNKNOWN_HOST_KEY) == (
        f"No ED25519 host key is known for [127.0.0.1]:{port} and you have requested strict "
        "checking.\nHost key verification failed.\n"
    )
    changed = stderr(SSHFault.CHANGED_HOST_KEY)
    assert changed.startswith(
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
    )
    assert changed.endswith(
        f"Host key for [127.0.0.1]:{port} has changed and you have requested strict checking.\n"
        "Host key verification failed.\n"
    )
    refused = stderr(SSHFault.CONNECTION_REFUSED)
    assert refused.startswith("ssh: connect to host 127.0.0.1 port ")
    assert refused.endswith(": Connection refused\n")
    assert stderr(SSHFault.UNRESOLVABLE) == (
        "ssh: Could not resolve hostname rx-unresolvable.invalid: Name or service not known\n"
    )


def test_include_and_match_aliases_resolve_like_ssh_box(rx_ssh_config: SSHClientConfig) -> None:
    for alias in (rx_ssh_config.include_alias, rx_ssh_config.match_alias):
        result = rx_ssh_config.run("id -un", alias=alias)
        assert (result.returncode, result.stdout) == (0, f"{rx_ssh_config.account.user}\n")
    text = rx_ssh_config.path.read_text()
    assert f"Host {rx_ssh_config.include_alias}\n    Include " in text
    assert f"Match originalhost {rx_ssh_config.match_alias}\n" in text


# ---- lifecycle and fault injection -----------------------------------------------------------


def test_stop_refuses_restart_serves_and_timings(own_bed: SSHTestBed, tmp_path: Path) -> None:
    started = time.monotonic()
    with SSHTestBed() as fresh:
        startup = time.monotonic() - started
        assert fresh.running and fresh.port != own_bed.port

    account = own_bed.account("bash", label="life")
    cfg = own_bed.client_config(account, tmp_path)
    started = time.monotonic()
    assert cfg.run("true").returncode == 0
    one_ssh = time.monotonic() - started
    print(f"\nbed start-up {startup:.3f}s; one `ssh alias true` {one_ssh:.3f}s")
    assert startup < 5 and one_ssh < 5

    own_bed.stop()
    assert not own_bed.running
    down = cfg.run("true")
    assert down.returncode == 255 and "Connection refused" in down.stderr

    own_bed.restart()
    assert cfg.run("true").returncode == 0
    own_bed.restart(new_host_key=True)
    changed = cfg.run("true")
    assert changed.returncode == 255 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in changed.stderr
    assert own_bed.client_config(account, tmp_path / "new").run("true").returncode == 0


def test_killing_sessions_drops_the_link_and_killing_the_daemon_refuses(
    own_bed: SSHTestBed, tmp_path: Path
) -> None:
    account = own_bed.account("bash", label="faults")
    cfg = own_bed.client_config(account, tmp_path)
    client = subprocess.Popen(
        cfg.ssh_argv("exec sleep 3002"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    wait_for(lambda: find(own_bed, account, "sleep 3002") is not None)
    assert own_bed.kill_sessions()
    _, err = client.communicate(timeout=10)
    assert client.returncode == 255
    assert "closed by remote host" in err, err
    assert find(own_bed, account, "sleep 3002") is not None  # the command outlives the link
    assert own_bed.running  # the listener is untouched
    assert cfg.run("true").returncode == 0

    own_bed.kill_daemon(signal.SIGKILL)
    assert not own_bed.running
    assert "Connection refused" in cfg.run("true").stderr
    own_bed.start()
    assert cfg.run("true").returncode == 0


def test_current_user_mode(tmp_path: Path) -> None:
    """The non-root fallback: one unix user, a separate HOME and ~/.claude per account."""
    with SSHTestBed(mode="current-user") as bed:
        account = bed.account(label="laptop", model_url="http://127.0.0.1:9/")
        assert not account.separate_user
        assert account.user == os.environ.get("USER", account.user)
        cfg = bed.client_config(account, tmp_path)
        home = cfg.run("printenv HOME", check=True).stdout.strip()
        assert home == str(account.home) != str(Path.home())
        assert (account.claude_config_dir / "settings.json").is_file()
        version = cfg.run("~/.local/bin/claude --version", timeout=120)
        assert "(Claude Code)" in version.stdout, version.stderr

        client = subprocess.Popen(cfg.ssh_argv("exec sleep 3003"), stdin=subprocess.DEVNULL)
        try:
            wait_for(lambda: find(bed, account, "sleep 3003") is not None)
        finally:
            client.kill()
            client.wait()
        assert bed.kill_account_processes(account)
        assert find(bed, account, "sleep 3003") is None

        other_shell = "zsh" if not account.shell.endswith("zsh") else "bash"
        with pytest.raises(SSHTestBedError, match="login shell"):
            bed.account(other_shell)


def test_accounts_are_reused_and_relocked_across_beds(rx_sshd: SSHTestBed) -> None:
    first = rx_sshd.account("bash", label="reuse", claude=None)
    with SSHTestBed() as other:
        # The session bed holds rx-reuse: a concurrent bed must take another name.
        second = other.account("bash", label="reuse", claude=None)
        assert second.user != first.user
        assert second.user.startswith("rx-reuse-")  # rx-reuse-2, or later if others run
    again = rx_sshd.account("bash", label="reuse", claude=None)
    assert (again.user, again.uid) == (first.user, first.uid)
