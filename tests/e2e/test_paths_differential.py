"""Differential tests: remote_executors.paths against the real Claude Code CLI.

Each case starts the bundled CLI with ``-p hi`` in a real directory, pointed at a
loopback port that refuses connections and with ``CLAUDE_CODE_MAX_RETRIES=0``.
The CLI writes the transcript (prompt, attachments, then an API-error entry)
before it gives up, so no model stand-in is needed and a run takes about 1 s.
Runs go in parallel because almost all of that time is process start-up.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import claude_agent_sdk
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from remote_executors.paths import project_dir_from_cwd, projects_root

pytestmark = pytest.mark.e2e

CLI = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
PARALLEL = 4


@dataclass
class Run:
    """One CLI start: where it runs and with which config locations."""

    cwd: str  # as handed to chdir(); may be a symlink or oddly spelled
    home: str
    config_dir: str | None
    extra_env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def cli() -> Path:
    if not (CLI.is_file() and os.access(CLI, os.X_OK)):
        pytest.fail(f"the bundled Claude Code CLI is missing at {CLI}; reinstall claude-agent-sdk")
    return CLI


@pytest.fixture(scope="module")
def dead_port() -> Iterator[int]:
    # Bound but never listening: connections are refused and nobody else can
    # take the port while the tests run.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # realpath: the CLI names the dir after getcwd(), which resolves symlinks
    # (e.g. macOS /var -> /private/var).
    return Path(os.path.realpath(tmp_path_factory.mktemp("paths")))


def _start(cli: Path, port: int, run: Run, tmp: str) -> None:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": run.home,
        "TMPDIR": tmp,
        "ANTHROPIC_API_KEY": "dummy",
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        **run.extra_env,
    }
    if run.config_dir is not None:
        env["CLAUDE_CONFIG_DIR"] = run.config_dir
    proc = subprocess.run(
        [str(cli), "-p", "hi", "--output-format", "json"],
        cwd=run.cwd,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    # Exit status 1 (API error) is expected; anything else is worth seeing.
    assert proc.returncode in (0, 1), (run, proc.returncode, proc.stdout[-500:], proc.stderr)


def _transcripts(root: Path) -> list[Path]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        found += [Path(dirpath, f) for f in files if f.endswith(".jsonl")]
    return found


def run_all(cli: Path, port: int, runs: list[Run], sandboxes: list[Path]) -> list[Path]:
    """Start the CLI for every run at once; return each run's transcript path.

    ``sandboxes[i]`` must contain run i's HOME and config dir, and nothing of
    any other run, so that the single transcript found there is run i's.
    """
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(
            pool.map(
                lambda r, s: _start(cli, port, r, tempfile.mkdtemp(dir=s)),
                runs,
                sandboxes,
            )
        )
    paths = []
    for run, box in zip(runs, sandboxes, strict=True):
        found = _transcripts(box)
        assert len(found) == 1, (run, found)
        paths.append(found[0])
    return paths


def check_names(cli: Path, port: int, base: Path, cwds: list[str]) -> None:
    """Run the CLI in each cwd and compare the project dir it made with ours."""
    runs, boxes = [], []
    for i, cwd in enumerate(cwds):
        box = base / f"box{i}"
        box.mkdir()
        runs.append(Run(cwd=cwd, home=str(box / "home"), config_dir=str(box / "cfg")))
        boxes.append(box)
    for run, transcript in zip(runs, run_all(cli, port, runs, boxes), strict=True):
        assert run.config_dir is not None
        assert transcript.parent.parent == Path(run.config_dir) / "projects", transcript
        assert transcript.parent.name == project_dir_from_cwd(run.cwd), run.cwd


def _java_hash(s: str) -> int:
    raw = s.encode("utf-16-le")
    h = 0
    for i in range(0, len(raw), 2):
        h = (h * 31 + (raw[i] | raw[i + 1] << 8)) % 2**32
    return h


def _name_with_int_min_hash(prefix: str) -> str:
    """Return a directory name whose path ``prefix + name`` hashes to -2**31."""
    # Five trailing code units make the hash any value we like: solve for the
    # last four in base 31 inside the CJK block, the first one takes the rest.
    base = _java_hash(prefix) * 31**5 % 2**32
    for k in range(64):
        x = (2**31 - base) % 2**32 + k * 2**32
        tail = []
        for _ in range(4):
            unit = 0x4E00 + (x - 0x4E00) % 31
            tail.append(unit)
            x = (x - unit) // 31
        if 0x4E00 <= x <= 0x9FFF:
            return "".join(chr(u) for u in [x, *reversed(tail)])
    raise AssertionError("no solution found")


# --- hand-picked cases ----------------------------------------------------------------


def test_cli_names_edge_cases(cli: Path, dead_port: int, workdir: Path) -> None:
    base = workdir / "edge"
    base.mkdir()
    d = base / "dirs"
    d.mkdir()
    prefix = str(d) + "/"
    n = len(prefix.encode("utf-16-le")) // 2
    if n > 190:
        pytest.fail(f"temporary directory {d} is too long for the edge cases")

    def mk(*parts: str) -> str:
        path = d.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    plain = mk("plain")
    link = str(d / "link")
    Path(link).symlink_to(plain)
    int_min = prefix + "a" * 200 + "/"
    cwds = [
        plain,
        mk("my project.v2 . (copy) ~!@#$%^&"),
        mk("tab\tnewline\nbackslash\\colon:"),
        mk("e\u0301 NFD"),
        mk("\u00e9 NFC"),
        mk("emoji \U0001f600 math \U0001d400"),
        mk("\u4e2d\u6587" * 20 + "\U0001f600" * 10),
        # sanitised length exactly 200 and 201
        mk("y" * (200 - n)),
        mk("z" * (201 - n)),
        # the astral character straddles the cut at 200
        mk("q" * (199 - n) + "\U0001f600tail"),
        mk("x" * 120, "a\u0301" * 60, "\U0001f600" * 50, "end"),
        mk("a" * 200, _name_with_int_min_hash(int_min)),
        # spellings getcwd() never reports
        plain + "/",
        plain.replace("/", "//") + "/./",
    ]
    check_names(cli, dead_port, base, cwds)
    assert project_dir_from_cwd(cwds[-3]).endswith("-zik0zk")

    # A symlinked cwd is resolved, whatever PWD says.
    box = base / "symlink"
    box.mkdir()
    run = Run(cwd=link, home=str(box / "h"), config_dir=str(box / "c"), extra_env={"PWD": link})
    (transcript,) = run_all(cli, dead_port, [run], [box])
    assert transcript.parent.name == project_dir_from_cwd(plain)
    assert transcript.parent.name != project_dir_from_cwd(link)


# --- generated cases ------------------------------------------------------------------

chars = st.one_of(
    st.sampled_from("aZ9 .-_~'\"$&()[]{}#!\t\n\\:;,=+@%"),
    st.characters(min_codepoint=0x80, exclude_categories=["Cs"]),
    st.characters(min_codepoint=0x300, max_codepoint=0x36F),  # combining marks
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF, exclude_categories=["Cs"]),
)


def _valid_name(s: str) -> bool:
    # NAME_MAX is 255 bytes on Linux and macOS.
    return "/" not in s and "\0" not in s and s not in (".", "..") and len(s.encode()) <= 255


component = st.text(chars, min_size=1, max_size=40).filter(_valid_name)
# Short paths, paths just past the cut and paths far past it.
tails = st.tuples(
    st.lists(component, min_size=1, max_size=6),
    st.sampled_from([0, 0, 120, 180, 250]),
).map(lambda t: (["p" * t[1]] if t[1] else []) + t[0])


@settings(
    max_examples=3,
    deadline=None,
    # Shrinking would restart the CLI hundreds of times; the batch is readable as is.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(batch=st.lists(tails, min_size=4, max_size=4))
def test_cli_names_generated(
    cli: Path, dead_port: int, workdir: Path, batch: list[list[str]]
) -> None:
    base = Path(tempfile.mkdtemp(dir=workdir, prefix="gen"))
    cwds = []
    for i, parts in enumerate(batch):
        path = base.joinpath(f"d{i}", *parts)
        path.mkdir(parents=True)
        cwds.append(str(path))
    check_names(cli, dead_port, base, cwds)


# --- where projects/ lives ------------------------------------------------------------


def test_cli_projects_root(cli: Path, dead_port: int, workdir: Path) -> None:
    base = workdir / "roots"
    cwd = base / "cwd"
    cwd.mkdir(parents=True)
    cases: list[tuple[str | None, str]] = []  # (CLAUDE_CONFIG_DIR, HOME)
    boxes = []
    for i, (cfg, home) in enumerate(
        [
            (None, "home"),
            (None, "ho\u0301me/"),  # the CLI NFC-normalises the whole root
            ("x//y/../c\u0301fg/./", "home"),
            ("cfg ", "home"),
        ]
    ):
        box = base / f"box{i}"
        box.mkdir()
        boxes.append(box)
        cases.append((None if cfg is None else f"{box}/{cfg}", f"{box}/{home}"))
    runs = [Run(cwd=str(cwd), home=home, config_dir=cfg) for cfg, home in cases]
    for (cfg, home), transcript in zip(cases, run_all(cli, dead_port, runs, boxes), strict=True):
        assert str(transcript.parent.parent) == projects_root(cfg, home)
        assert transcript.parent.name == project_dir_from_cwd(str(cwd))
    # The NFD home we passed was not used: Linux keeps NFC and NFD names apart.
    assert unicodedata.normalize("NFC", "ho\u0301me") != "ho\u0301me"
    assert not (boxes[1] / "ho\u0301me" / ".claude").exists()
