"""RsyncSessionSync: version checks, argv, and real local rsync end to end.

Everything here runs the real rsync: between two local directories
(``LocalExecutor``), or through ``_rsync_relay.py`` (a stand-in remote shell
that runs rsync's server here, as sshd would, and can cut its stream).
Fake ``rsync`` programs are small shell scripts that print a version (and
otherwise hand over to the real one).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from _rsync_faults import RelayExecutor, relay_log
from _sync_scenarios import SCENARIOS
from _sync_scenarios import names as scenario_names
from remote_executors.errors import (
    CommandTimeout,
    SessionConflict,
    SyncDiskFull,
    SyncError,
    SyncToolMissing,
)
from remote_executors.executors.base import CommandResult
from remote_executors.executors.local import LocalExecutor
from remote_executors.sync import RsyncSessionSync, SessionPaths, TailSessionSync
from remote_executors.sync._rsync import (
    _remote_word,
    parse_rsync_version,
    pull_argv,
    push_argv,
    rsh_option,
    staging_dir,
)

REAL_RSYNC = shutil.which("rsync")
pytestmark = [
    pytest.mark.skipif(REAL_RSYNC is None, reason="rsync is not installed"),
    pytest.mark.anyio,
]

SID = "0b6c8f4e-2d7a-4c1e-9f3b-5a8d7e6c4b21"


def jsonl(*records: object) -> bytes:
    return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)


def lines(n: int, tag: str = "t", pad: int = 60) -> bytes:
    return jsonl(*({"n": i, "tag": tag, "text": "x" * pad} for i in range(n)))


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "rx-data"))


@attrs.define
class Sides:
    """A local project dir and a "remote" one (another config dir here)."""

    root: Path
    sid: str | None = SID

    @property
    def config(self) -> Path:
        return self.root / "remote-claude"

    @property
    def remote(self) -> Path:
        return self.config / "projects" / "-home-me-shop"

    @property
    def local(self) -> Path:
        return self.root / "local" / "-Users-me-shop"

    @property
    def paths(self) -> SessionPaths:
        return SessionPaths(self.local, "-home-me-shop", self.sid, str(self.config))

    @property
    def transcript(self) -> str:
        return f"{self.sid}.jsonl"

    def write(self, side: str, rel: str, data: bytes) -> None:
        path = (self.local if side == "local" else self.remote) / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(data)
        path.chmod(0o600)

    def append(self, side: str, rel: str, data: bytes) -> None:
        path = (self.local if side == "local" else self.remote) / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(path, "ab") as f:
            f.write(data)

    def files(self, side: str) -> dict[str, bytes]:
        top = self.local if side == "local" else self.remote
        if not top.is_dir():
            return {}
        return {
            p.relative_to(top).as_posix(): p.read_bytes()
            for p in sorted(top.rglob("*"))
            if p.is_file()
        }


@pytest.fixture
def sides(tmp_path: Path) -> Sides:
    return Sides(tmp_path)


def fake_rsync(path: Path, version_text: str, *, log: Path | None = None) -> str:
    """A program called rsync that prints ``version_text`` and otherwise runs the real one."""
    record = f'printf "%s\\n" "$*" >> "{log}"\n' if log else ""
    quoted = " ".join("'" + line.replace("'", "'\\''") + "'" for line in version_text.splitlines())
    path.write_text(
        "#!/bin/sh\n"
        f"{record}"
        'if [ "$1" = --version ]; then\n'
        f"  printf '%s\\n' {quoted}\n"  # builtins only: PATH may hold nothing else
        "  exit 0\n"
        "fi\n"
        f'exec {REAL_RSYNC} "$@"\n'
    )
    path.chmod(0o755)
    return str(path)


# -- versions -------------------------------------------------------------------

GNU_NEW = """rsync  version 3.2.7  protocol version 31
Copyright (C) 1996-2022 by Andrew Tridgell, Wayne Davison, and others.
Web site: https://rsync.samba.org/"""
GNU_MIN = "rsync  version 3.2.4  protocol version 31"
GNU_OLD = "rsync  version 3.2.3  protocol version 31"
GNU_OLDER = "rsync  version 3.1.3  protocol version 31"
MACOS_OLD = "rsync  version 2.6.9  protocol version 29\nCopyright (C) 1996-2006 by Andrew Tridgell"
OPENRSYNC = "openrsync: protocol version 29\nrsync version 2.6.9 compatible"
PRE = "rsync  version 3.2.4pre1  protocol version 31"
DEV = "rsync  version 3.2.4dev  protocol version 31"
VPREFIX = "rsync  version v3.4.1  protocol version 32"


@pytest.mark.parametrize(
    ("text", "flavor", "version", "supported"),
    [
        (GNU_NEW, "gnu", (3, 2, 7), True),
        (GNU_MIN, "gnu", (3, 2, 4), True),
        (VPREFIX, "gnu", (3, 4, 1), True),
        ("rsync  version 3.10.0  protocol version 33", "gnu", (3, 10, 0), True),
        (GNU_OLD, "gnu", (3, 2, 3), False),
        (GNU_OLDER, "gnu", (3, 1, 3), False),
        (MACOS_OLD, "gnu", (2, 6, 9), False),
        (PRE, "gnu", (3, 2, 4), False),
        (DEV, "gnu", (3, 2, 4), False),
        (OPENRSYNC, "openrsync", None, False),
        ("openrsync 0.5.0", "openrsync", None, False),
        ("", "unknown", None, False),
        ("sh: rsync: not found", "unknown", None, False),
    ],
)
def test_parse_version(text: str, flavor: str, version: Any, supported: bool) -> None:
    parsed = parse_rsync_version(text)
    assert parsed.flavor == flavor
    assert parsed.version == version
    assert parsed.supported is supported
    assert parsed.first_line == (text.splitlines()[0] if text else "")


GNU_FIXED = "rsync  version 3.4.0  protocol version 32"


@pytest.mark.parametrize(
    ("text", "before_fixes"),
    [(GNU_NEW, True), (GNU_MIN, True), (VPREFIX, False), (GNU_FIXED, False), (OPENRSYNC, False)],
)
def test_versions_before_the_2025_cve_fixes(text: str, before_fixes: bool) -> None:
    assert parse_rsync_version(text).before_cve_fixes is before_fixes


async def test_an_rsync_before_the_cve_fixes_is_used_with_a_warning(
    sides: Sides, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rsync = fake_rsync(tmp_path / "rsync", GNU_NEW)
    sides.write("remote", sides.transcript, lines(3))
    with caplog.at_level("WARNING", logger="remote_executors.sync"):
        await RsyncSessionSync(rsync=rsync).pull(LocalExecutor(), sides.paths)
    assert sides.files("local") == {sides.transcript: lines(3)}
    [warning] = [r.getMessage() for r in caplog.records if "CVE-2024-12086" in r.getMessage()]
    assert rsync in warning and "3.4.0" in warning and "TailSessionSync" in warning


def test_the_installed_rsync_is_supported() -> None:
    out = subprocess.run([REAL_RSYNC or "rsync", "--version"], capture_output=True, text=True)
    assert parse_rsync_version(out.stdout).supported, out.stdout.splitlines()[0]


# -- argv -----------------------------------------------------------------------

FORBIDDEN = ("--delete", "--del", "--inplace", "--append", "--update", "--remove-source")


def forbidden(argv: list[str]) -> list[str]:
    """Flags a sync must never give rsync (and short clusters holding -u)."""
    bad = [a for a in argv if a.startswith(FORBIDDEN)]
    bad += [a for a in argv if re.fullmatch(r"-[A-Za-z0-9]+", a) and "u" in a]
    return bad


@pytest.mark.parametrize("sid", [SID, None])
@pytest.mark.parametrize("rsh", [None, ["ssh", "-F", "/x y/cfg", "-oControlPath=/tmp/rx-1/%C"]])
def test_pull_argv(sid: str | None, rsh: list[str] | None) -> None:
    argv = pull_argv(
        "rsync",
        source="box:/home/u/.claude/projects/-home-u-shop/",
        dest="/data/staging/incoming-1/",
        session_id=sid,
        link_dest="../current",
        rsh=rsh,
        remote_rsync="/usr/bin/rsync" if rsh else None,
        host="box",
    )
    assert not forbidden(argv)
    # content, never mtimes, decides what travels
    assert ("--ignore-times" if sid else "--checksum") in argv
    assert not any(a in ("-a", "--archive", "-t", "--times") for a in argv)
    assert "-s" in argv  # names and options travel in the protocol, not on a command line
    assert argv[-3:] == [
        "--",
        "box:/home/u/.claude/projects/-home-u-shop/",
        "/data/staging/incoming-1/",
    ]
    filters = [a for a in argv if a.startswith("--filter=")]
    assert filters[:2] == ["--filter=- .*", "--filter=- *.conflict-*"]
    assert filters[-1] == "--filter=- *"
    if sid:
        assert f"--filter=+ /{sid}.jsonl" in filters and f"--filter=+ /{sid}/***" in filters
    if rsh:
        assert argv[argv.index("-e") + 1] == rsh_option(rsh)
        assert "--rsync-path=/usr/bin/rsync" in argv
    else:
        assert "-e" not in argv


def test_push_argv() -> None:
    argv = push_argv(
        "rsync",
        source="/home/me/.claude/projects/-Users-me-shop/",
        dest="box:/home/u/.claude/projects/-home-u-shop/.rx-push-0123/",
        rsh=["ssh"],
        remote_rsync="/usr/bin/rsync",
        host="box",
    )
    assert not forbidden(argv)
    assert "--ignore-times" in argv
    assert {"--files-from=-", "--from0", "--copy-dest=.."} <= set(argv)
    assert argv[-3] == "--"


def test_rsh_option_round_trips_through_rsync(tmp_path: Path) -> None:
    """rsync splits -e itself (no shell): every word arrives exactly as given."""
    record = tmp_path / "argv.json"
    rsh = tmp_path / "rsh with space.py"
    rsh.write_text(
        f"import json, sys\njson.dump(sys.argv[1:], open({str(record)!r}, 'w'))\nsys.exit(1)\n"
    )
    words = ["a b", "it's", 'q"x', "", "-oControlPath=/tmp/x y/%C", "$HOME", "*", "'"]
    argv = [shutil.which("python3") or "python3", str(rsh), *words]
    subprocess.run(
        [REAL_RSYNC or "rsync", "-e", rsh_option(argv), "box:/x/", str(tmp_path / "d")],
        capture_output=True,
        check=False,
    )
    got = json.loads(record.read_text())
    assert got[: len(words)] == words
    assert got[len(words)] == "box"  # then rsync's own: the machine, the server command


def test_rsh_option_refuses_newlines() -> None:
    with pytest.raises(ValueError):
        rsh_option(["ssh", "a\nb"])


def test_remote_rsync_path_words() -> None:
    assert _remote_word("/usr/bin/rsync", "box") == "/usr/bin/rsync"
    assert _remote_word("/opt/my tools/rsync", "box") == "'/opt/my tools/rsync'"
    with pytest.raises(SyncToolMissing, match="cannot be passed"):
        _remote_word("/opt/it's/rsync", "box")


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        RsyncSessionSync(rsync="--rsh=evil")
    with pytest.raises(ValueError):
        RsyncSessionSync(remote_rsync="bin/rsync")


async def test_every_rsync_run_avoids_forbidden_flags(sides: Sides, tmp_path: Path) -> None:
    log = tmp_path / "rsync-argv.log"
    sync = RsyncSessionSync(rsync=fake_rsync(tmp_path / "rsync", GNU_NEW, log=log))
    sides.write("remote", sides.transcript, lines(10))
    await sync.pull(LocalExecutor(), sides.paths)
    sides.append("local", sides.transcript, lines(1, "local"))
    await sync.push(LocalExecutor(), sides.paths)
    relayed = RelayExecutor(LocalExecutor(), name="box")
    sides.append("local", sides.transcript, lines(1, "again"))
    await sync.push(relayed, sides.paths)
    runs = [line.split(" ") for line in log.read_text().splitlines() if line != "--version"]
    assert len(runs) >= 5  # pull; pull + push; pull + push (plus the servers they start)
    for argv in runs:
        assert not forbidden(argv), argv


# -- tool checks ----------------------------------------------------------------


async def test_local_rsync_missing(sides: Sides, tmp_path: Path) -> None:
    sync = RsyncSessionSync(rsync=str(tmp_path / "no" / "rsync"))
    with pytest.raises(SyncToolMissing) as caught:
        await sync.pull(LocalExecutor(), sides.paths)
    exc = caught.value
    assert exc.side == "local"
    text = str(exc)
    assert "missing here" in text
    assert "apt install rsync" in text and "brew install rsync" in text
    assert "TailSessionSync" in text


@pytest.mark.parametrize(
    ("version", "says"),
    [
        (GNU_OLD, ["too old", GNU_OLD, "3.2.4"]),
        (MACOS_OLD, ["too old", "2.6.9"]),
        (OPENRSYNC, ["openrsync", "openrsync: protocol version 29"]),
        ("something else 1.0", ["did not say which version", "something else 1.0"]),
    ],
)
async def test_local_rsync_unusable(
    sides: Sides, tmp_path: Path, version: str, says: list[str]
) -> None:
    sync = RsyncSessionSync(rsync=fake_rsync(tmp_path / "rsync", version))
    with pytest.raises(SyncToolMissing) as caught:
        await sync.pull(LocalExecutor(), sides.paths)
    assert caught.value.side == "local"
    for words in [*says, "here", "TailSessionSync", "rsync 3.2.4 or newer"]:
        assert words in str(caught.value)
    assert not sides.local.exists()


async def test_tool_checks_are_cached(sides: Sides, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    sync = RsyncSessionSync(rsync=fake_rsync(tmp_path / "rsync", GNU_NEW, log=log))
    relayed = RelayExecutor(LocalExecutor(), name="box", log=tmp_path / "relay.log")
    probes = 0
    real_run = relayed.run

    async def counting_run(argv: Any, **kw: Any) -> CommandResult:
        nonlocal probes
        probes += "rx-rsync-probe" in argv
        return await real_run(argv, **kw)

    relayed.run = counting_run  # type: ignore[method-assign]
    for _ in range(3):
        await sync.pull(relayed, sides.paths)
    assert log.read_text().splitlines().count("--version") == 1
    assert probes == 1


@pytest.mark.parametrize(
    ("remote_rsync", "version", "says"),
    [
        (None, None, ["rsync is missing on box", "command -v rsync", "PATH"]),
        ("/nonexistent/rsync", None, ["could not be run by the login user", "not found"]),
        ("fake", GNU_OLD, ["too old", GNU_OLD]),
        ("fake", OPENRSYNC, ["openrsync"]),
    ],
)
async def test_remote_rsync_unusable(
    sides: Sides, tmp_path: Path, remote_rsync: str | None, version: str | None, says: list[str]
) -> None:
    """The other side's rsync, checked there (here: through a relay with a PATH of its own)."""
    (tmp_path / "remote-bin").mkdir()
    if remote_rsync == "fake":
        remote_rsync = fake_rsync(tmp_path / "remote-bin" / "rsync", version or "")
    prefix = ["/usr/bin/env", f"PATH={tmp_path / 'remote-bin'}"]
    relayed = RelayExecutor(LocalExecutor(), name="box", prefix=prefix)
    sync = RsyncSessionSync(remote_rsync=remote_rsync)
    with pytest.raises(SyncToolMissing) as caught:
        await sync.pull(relayed, sides.paths)
    exc = caught.value
    assert (exc.host, exc.side) == ("box", "box")
    for words in [*says, "on box", "TailSessionSync", "remote_rsync="]:
        assert words in str(exc), str(exc)


async def test_remote_rsync_found_on_the_path_is_the_one_run(sides: Sides, tmp_path: Path) -> None:
    log = tmp_path / "remote-calls.log"
    bin_dir = tmp_path / "remote-bin"
    bin_dir.mkdir()
    fake_rsync(bin_dir / "rsync", GNU_NEW, log=log)
    prefix = ["/usr/bin/env", f"PATH={bin_dir}:/usr/bin:/bin"]
    relayed = RelayExecutor(LocalExecutor(), name="box", prefix=prefix)
    sides.write("remote", sides.transcript, lines(3))
    await RsyncSessionSync().pull(relayed, sides.paths)
    calls = log.read_text().splitlines()
    assert calls[0] == "--version"
    assert any(c.startswith("--server --sender") for c in calls), calls


async def test_remote_rsync_gone_after_the_check(sides: Sides, tmp_path: Path) -> None:
    """The checked rsync disappears: the run says so, and the next sync checks again."""
    bin_dir = tmp_path / "remote-bin"
    bin_dir.mkdir()
    fake = fake_rsync(bin_dir / "rsync", GNU_NEW)
    relayed = RelayExecutor(LocalExecutor(), name="box")
    sync = RsyncSessionSync(remote_rsync=fake)
    sides.write("remote", sides.transcript, lines(3))
    await sync.pull(relayed, sides.paths)
    os.unlink(fake)
    sides.append("remote", sides.transcript, lines(1, "more"))
    with pytest.raises(SyncToolMissing, match="could not be started"):
        await sync.pull(relayed, sides.paths)
    with pytest.raises(SyncToolMissing, match="could not be run by the login user"):
        await sync.pull(relayed, sides.paths)  # checked again, not taken from the cache
    fake_rsync(bin_dir / "rsync", GNU_NEW)
    await sync.pull(relayed, sides.paths)
    assert sides.files("local") == sides.files("remote")


async def test_unsupported_executor(sides: Sides) -> None:
    class Other:
        name = "elsewhere"

    with pytest.raises(SyncToolMissing) as caught:
        await RsyncSessionSync().pull(Other(), sides.paths)  # type: ignore[arg-type]
    text = str(caught.value)
    assert caught.value.host == "elsewhere"
    for words in ["SSHExecutor", "OpenSSH", "LocalExecutor", "TailSessionSync"]:
        assert words in text


async def test_host_rsync_cannot_take(sides: Sides) -> None:
    relayed = RelayExecutor(LocalExecutor(), name="box:22")
    with pytest.raises(SyncError, match="Host alias"):
        await RsyncSessionSync().pull(relayed, sides.paths)


# -- LocalExecutor end to end ----------------------------------------------------


async def test_pull_push_round_trip(sides: Sides) -> None:
    sync, ex = RsyncSessionSync(), LocalExecutor()
    sub = f"{SID}/subagents/agent-1.jsonl"
    tool = f"{SID}/tool-results/toolu_1.txt"
    sides.write("remote", sides.transcript, lines(5))
    sides.write("remote", sub, lines(2, "sub"))
    sides.write("remote", tool, b"\x00\xffbinary")
    report = await sync.pull(ex, sides.paths)
    assert {f.path: f.kind.value for f in report.files} == dict.fromkeys(
        [sides.transcript, sub, tool], "pull"
    )
    assert sides.files("local") == sides.files("remote")
    more = lines(2, "local")
    sides.append("local", sides.transcript, more)
    sides.write("local", f"{SID}/subagents/agent-2.jsonl", lines(1, "new"))
    report = await sync.push(ex, sides.paths)
    assert report.moved == len(more) + len(lines(1, "new"))
    assert sides.files("local") == sides.files("remote")
    assert not list(sides.remote.glob(".rx-push-*")), "the push's temp dir was left behind"
    again = await sync.pull(ex, sides.paths)
    assert {f.kind.value for f in again.files} == {"same"}


async def test_pull_conflict_keeps_both(sides: Sides) -> None:
    common = lines(100)
    sides.write("local", sides.transcript, common + b'{"side":"local"}\n')
    sides.write("remote", sides.transcript, common + b'{"side":"remote!"}\n')
    with pytest.raises(SessionConflict) as caught:
        await RsyncSessionSync().pull(LocalExecutor(), sides.paths)
    [(local, copy)] = caught.value.copies
    assert Path(local).read_bytes() == common + b'{"side":"local"}\n'
    assert Path(copy).read_bytes() == common + b'{"side":"remote!"}\n'
    assert ".conflict-local-" in copy
    assert (sides.remote / sides.transcript).read_bytes() == common + b'{"side":"remote!"}\n'


async def test_push_conflict_overwrites_nothing(sides: Sides) -> None:
    sides.write("local", sides.transcript, lines(3) + b'{"local":1}\n{"local":2}\n')
    sides.write("remote", sides.transcript, lines(3) + b'{"remote":1}\n')
    before = sides.files("remote")
    with pytest.raises(SessionConflict):
        await RsyncSessionSync().push(LocalExecutor(), sides.paths)
    assert sides.files("remote") == before


async def test_push_never_drops_a_remote_partial_line(sides: Sides) -> None:
    """The remote's writer died mid-line; the session went on locally. Replacing the
    remote file with the local copy (what an rsync push does) would drop the partial
    bytes, so the push is refused (a conflict, or an error), and nothing changes."""
    sides.write("local", sides.transcript, lines(3) + b'{"local":"resumed"}\n')
    sides.write("remote", sides.transcript, lines(3) + b'{"remote":"cut sh')
    before = sides.files("remote")
    with pytest.raises(SyncError):
        await RsyncSessionSync().push(LocalExecutor(), sides.paths)
    assert sides.files("remote") == before


async def test_push_creates_a_missing_project_dir_privately(sides: Sides) -> None:
    sides.write("local", sides.transcript, lines(2))
    report = await RsyncSessionSync().push(LocalExecutor(), sides.paths)
    assert [f.kind.value for f in report.files] == ["push"]
    assert (sides.remote / sides.transcript).read_bytes() == lines(2)
    assert stat.S_IMODE(sides.remote.stat().st_mode) == 0o700
    assert stat.S_IMODE((sides.remote / sides.transcript).stat().st_mode) == 0o600


@pytest.mark.parametrize("whole_project", [False, True], ids=["session", "project"])
async def test_staging_holds_exactly_what_the_remote_holds(
    tmp_path: Path, whole_project: bool
) -> None:
    """No --delete: each pull fills a fresh snapshot. For a whole project (--checksum)
    unchanged files are hard links to the previous snapshot; for one session
    (--ignore-times) every file is rebuilt from it."""
    sides = Sides(tmp_path, sid=None if whole_project else SID)
    sync, ex = RsyncSessionSync(), LocalExecutor()
    transcript, sub = f"{SID}.jsonl", f"{SID}/subagents/agent-1.jsonl"
    sides.write("remote", transcript, lines(10))
    sides.write("remote", sub, lines(2, "sub"))
    await sync.pull(ex, sides.paths)
    root = staging_dir(sides.paths, "local")
    current = root / "current"
    held = tmp_path / "held"  # keeps the inode alive, so its number is not reused
    os.link(current / sub, held)
    sides.append("remote", transcript, lines(1, "more"))
    await sync.pull(ex, sides.paths)
    linked = (current / sub).stat().st_ino == held.stat().st_ino
    assert linked is whole_project
    assert (current / sub).read_bytes() == held.read_bytes()

    (sides.remote / sub).unlink()
    report = await sync.pull(ex, sides.paths)
    assert {f.path: f.kind.value for f in report.files} == {
        transcript: "same",
        sub: "push",  # the local side has it, the remote no longer does
    }
    assert not (current / sub).exists()
    sides.write("remote", sub, lines(2, "sub"))
    await sync.pull(ex, sides.paths)
    assert (current / sub).stat().st_ino != held.stat().st_ino  # transferred again
    assert sorted(p.name for p in root.iterdir()) == ["current"]
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(current.stat().st_mode) == 0o700


@pytest.fixture
def big(sides: Sides) -> bytes:
    data = lines(12_000, pad=80)  # about 1.2 MB
    sides.write("remote", sides.transcript, data)
    return data


async def test_cost_follows_new_bytes(sides: Sides, big: bytes, tmp_path: Path) -> None:
    """Through a relay that counts rsync's stream: syncing 1 KB moves about 1 KB
    (plus rsync's block checksums), not the file."""
    log = tmp_path / "relay.log"
    sync = RsyncSessionSync()
    relayed = RelayExecutor(LocalExecutor(), name="box", log=log)
    sides.write("local", sides.transcript, big)  # the first pull's basis: the local copy
    await sync.pull(relayed, sides.paths)
    sides.append("remote", sides.transcript, lines(10, "new", pad=70))
    await sync.pull(relayed, sides.paths)
    sides.append("local", sides.transcript, lines(10, "mine", pad=70))
    await sync.push(relayed, sides.paths)
    assert sides.files("local") == sides.files("remote")
    runs = relay_log(log)
    assert len(runs) == 4  # pull; pull; pull + push
    budget = 64 * 1024
    for run in runs:
        assert run["down"] < budget and run["up"] < budget, (run, len(big))


async def test_cut_mid_transfer_installs_nothing(sides: Sides, big: bytes, tmp_path: Path) -> None:
    sync = RsyncSessionSync()
    cut = RelayExecutor(LocalExecutor(), name="box", cut="half", budget=300_000)
    with pytest.raises(SyncError) as caught:
        await sync.pull(cut, sides.paths)
    assert caught.value.host == "box"
    assert not sides.local.exists()
    root = staging_dir(sides.paths, "box")
    assert sorted(p.name for p in root.iterdir()) == ["current"]  # the (empty) basis only
    assert not list((root / "current").iterdir())
    await sync.pull(RelayExecutor(LocalExecutor(), name="box"), sides.paths)
    assert sides.files("local") == sides.files("remote")


async def test_cut_upload_changes_nothing(sides: Sides, big: bytes) -> None:
    sync = RsyncSessionSync()
    sides.write("local", sides.transcript, big + lines(3000, "mine"))
    before = sides.files("remote")
    cut = RelayExecutor(LocalExecutor(), name="box", cut="half", direction="up", budget=50_000)
    with pytest.raises(SyncError):
        await sync.push(cut, sides.paths)
    assert sides.files("remote") == before
    assert not list(sides.remote.glob(".rx-push-*"))
    await sync.push(RelayExecutor(LocalExecutor(), name="box"), sides.paths)
    assert sides.files("remote") == sides.files("local")


@pytest.mark.parametrize("short", [1, 6])
async def test_cut_just_before_the_end_installs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short: int
) -> None:
    """The link dies about ``short`` bytes before the end of rsync's stream, once every
    file's data has arrived: either rsync reports the run failed and nothing is
    installed, or it completed (its stream's length varies a little with how its
    output was buffered, so the cut may fall after the end) and the pull is right."""
    measured = Sides(tmp_path / "measure")
    measured.write("remote", measured.transcript, lines(50))
    log = tmp_path / "measure.log"
    await RsyncSessionSync().pull(
        RelayExecutor(LocalExecutor(), name="box", log=log), measured.paths
    )
    [run] = relay_log(log)

    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "fresh-data"))
    s = Sides(tmp_path / "cut")
    s.write("remote", s.transcript, lines(50))
    cut = RelayExecutor(LocalExecutor(), name="box", cut="half", budget=run["down"] - short)
    try:
        await RsyncSessionSync().pull(cut, s.paths)
    except SyncError:
        assert not s.local.exists()
        await RsyncSessionSync().pull(RelayExecutor(LocalExecutor(), name="box"), s.paths)
    assert s.files("local") == s.files("remote")


async def test_timeout_stops_rsync_and_its_children(sides: Sides, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    slow = tmp_path / "rsync"
    slow.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "rsync  version 3.2.7  protocol version 31"; '
        "exit 0; fi\n"
        f"sleep 300 & echo $! > {pid_file}\n"
        "wait\n"
    )
    slow.chmod(0o755)
    sides.write("remote", sides.transcript, lines(2))
    with pytest.raises(CommandTimeout, match="did not finish"):
        await RsyncSessionSync(rsync=str(slow), timeout=1).pull(LocalExecutor(), sides.paths)
    pid = int(pid_file.read_text())
    with anyio.fail_after(5):
        while _alive(pid):
            await anyio.sleep(0.02)
    assert not sides.local.exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


# -- disk full (a real, tiny file system) ----------------------------------------


@contextlib.contextmanager
def tiny_fs(path: Path, size: str = "256k") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_local_disk_full(
    sides: Sides, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tiny_fs(tmp_path / "tiny") as tiny:
        monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tiny))
        sides.write("remote", sides.transcript, lines(6000))  # ~550 KB
        with pytest.raises(SyncDiskFull) as caught:
            await RsyncSessionSync().pull(LocalExecutor(), sides.paths)
        assert caught.value.side == "local"
        assert "No space left on local" in str(caught.value)
        assert not sides.local.exists()


async def test_remote_disk_full(sides: Sides, tmp_path: Path) -> None:
    relayed = RelayExecutor(LocalExecutor(), name="box")
    sides.remote.mkdir(parents=True)
    with tiny_fs(sides.remote):
        sides.write("remote", sides.transcript, lines(10))
        sides.write("local", sides.transcript, lines(10) + lines(6000, "more"))
        before = sides.files("remote")
        with pytest.raises(SyncDiskFull) as caught:
            await RsyncSessionSync().push(relayed, sides.paths)
        assert (caught.value.host, caught.value.side) == ("box", "box")
        assert "No space left on box" in str(caught.value)
        assert sides.files("remote") == before
        assert not list(sides.remote.glob(".rx-push-*"))


# -- the same decisions as TailSessionSync ------------------------------------------

# The scenarios live in tests/_sync_scenarios.py: the SSH run of all three strategies
# (tests/e2e/test_sync_strategies_agree_ssh.py) decides the same ones.


async def _outcome(strategy: Any, root: Path, scenario: str, direction: str) -> dict[str, Any]:
    s = Sides(root)
    names = scenario_names(SID)
    local, remote = SCENARIOS[scenario]
    for rel, data in local.items():
        s.write("local", names[rel], data)
    for rel, data in remote.items():
        s.write("remote", names[rel], data)
    try:
        report = await getattr(strategy, direction)(LocalExecutor(), s.paths)
    except SessionConflict as exc:
        result: Any = (
            "conflict",
            sorted(Path(c).relative_to(s.local).as_posix() for c, _ in exc.copies),
        )
    except SyncError as exc:
        result = ("error", type(exc).__name__)
    else:
        result = [(f.path, f.kind.value, f.moved) for f in report.files]

    def strip_stamp(files: dict[str, bytes]) -> dict[str, bytes]:
        return {
            re.sub(r"\.conflict-local-\d{8}T\d{6}Z", ".conflict", k): v for k, v in files.items()
        }

    return {"result": result, "local": strip_stamp(s.files("local")), "remote": s.files("remote")}


@pytest.mark.parametrize("direction", ["pull", "push"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_same_decisions_as_tail(tmp_path: Path, scenario: str, direction: str) -> None:
    tail = await _outcome(TailSessionSync(), tmp_path / "tail", scenario, direction)
    rsync = await _outcome(RsyncSessionSync(), tmp_path / "rsync", scenario, direction)
    names = scenario_names(SID)
    before = {names[k]: v for k, v in SCENARIOS[scenario][1].items()}
    made_up = [
        rel
        for rel, data in tail["remote"].items()
        if data not in (before.get(rel), tail["local"].get(rel)) and rel.endswith(".jsonl")
    ]
    if rsync != tail and made_up:
        # TailSessionSync appended local bytes after the remote's partial line, making
        # up a line neither side wrote: its known bug push-over-partial-line (see the
        # conformance suite). RsyncSessionSync refuses that push instead
        # (test_push_never_drops_a_remote_partial_line).
        assert rsync["remote"] == before, rsync
        pytest.xfail("TailSessionSync's known bug push-over-partial-line")
    assert rsync == tail
