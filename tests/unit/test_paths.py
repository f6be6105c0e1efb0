"""Unit and property tests for remote_executors.paths.

The known examples were produced by the real CLI (2.1.330); the differential
test in tests/e2e re-checks the algorithm against the binary on generated paths.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from remote_executors.errors import InvalidInput
from remote_executors.paths import project_dir_from_cwd, projects_root, validate_session_id

NAME = re.compile(r"[A-Za-z0-9-]+")
MAX_LEN = 200 + 1 + 6  # cut + separator + abs(int32) in base 36 ("zik0zk" at most)

# Any character (astral, combining, controls...) except NUL and lone surrogates
# (those cannot come from a UTF-8 path; they are tested separately).
any_char = st.characters(exclude_characters="\0", exclude_categories=["Cs"])
astral = st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF)
combining = st.characters(min_codepoint=0x300, max_codepoint=0x36F)
component = st.text(
    st.one_of(any_char, astral, combining, st.sampled_from("aZ9 .-_")), min_size=1, max_size=80
).filter(lambda s: "/" not in s and s not in (".", ".."))
# Up to 12 components of up to 80 characters: often far beyond 200 code units.
cwds = st.lists(component, min_size=0, max_size=12).map(lambda parts: "/" + "/".join(parts))


def utf16_units(s: str) -> list[int]:
    raw = s.encode("utf-16-le")
    return [raw[i] | raw[i + 1] << 8 for i in range(0, len(raw), 2)]


def expected_char(unit: int) -> str:
    ch = chr(unit)
    return ch if unit < 128 and ch.isalnum() else "-"


# --- known examples (outputs of the real CLI) -------------------------------------

KNOWN = [
    ("/", "-"),
    ("/tmp/pt/w", "-tmp-pt-w"),
    ("/tmp/pt/d/a\nb\tc\\d:e", "-tmp-pt-d-a-b-c-d-e"),
    ("/tmp/pt/d/ lead", "-tmp-pt-d--lead"),
    ("/tmp/pt/d/dots..", "-tmp-pt-d-dots--"),
    ("/tmp/pt/d/-dash", "-tmp-pt-d--dash"),
    ("/tmp/pt/k/a\U0001f600b", "-tmp-pt-k-a--b"),  # astral: two code units, two dashes
    ("/tmp/pt/k/e\u0301", "-tmp-pt-k-e-"),  # NFD stays NFD: 'e' survives
    ("/tmp/pt/k/\u00e9", "-tmp-pt-k--"),
    # exactly 200: no hash; 201: cut and hashed
    ("/tmp/pt/d/" + "y" * 100 + "/" + "y" * 89, "-tmp-pt-d-" + "y" * 100 + "-" + "y" * 89),
    (
        "/tmp/pt/d/" + "y" * 100 + "/" + "y" * 90,
        "-tmp-pt-d-" + "y" * 100 + "-" + "y" * 89 + "-8imgow",
    ),
    (
        "/tmp/pt/k/" + "x" * 100 + "/" + "y" * 100 + "/z",
        "-tmp-pt-k-" + "x" * 100 + "-" + "y" * 89 + "-ogwc5u",
    ),
    # The astral character straddles the cut at 200.
    ("/tmp/pt/k/" + "q" * 188 + "\U0001f600tail", "-tmp-pt-k-" + "q" * 188 + "---a642f9"),
    (
        "/tmp/pt/k/"
        + "\u4e2d\u6587 \u00e9\u0301.\U0001d400-" * 8
        + "/"
        + "\u4e2d\u6587 \u00e9\u0301.\U0001d400-" * 8
        + "/"
        + "w" * 150
        + "/\U0001f600",
        "-tmp-pt-k-" + "-" * 146 + "w" * 44 + "-e7f52u",
    ),
    # Java hash == INT_MIN: Math.abs leaves it at 2**31, "zik0zk" in base 36.
    (
        "/tmp/pt/m/" + "a" * 200 + "/\u0e6f\u4e19\u4e0a\u4e00\u4e09",
        "-tmp-pt-m-" + "a" * 190 + "-zik0zk",
    ),
]


@pytest.mark.parametrize(("cwd", "name"), KNOWN)
def test_known_examples(cwd: str, name: str) -> None:
    assert project_dir_from_cwd(cwd) == name


# --- properties ---------------------------------------------------------------------


@given(cwds)
@example("/" + "\U0001f600" * 150)
@example("/" + "e\u0301" * 300)
@example("/" + "a" * 199)
@example("/" + "a" * 200)
@example("/" + "a" * 4000)
def test_shape(cwd: str) -> None:
    name = project_dir_from_cwd(cwd)
    assert NAME.fullmatch(name)
    assert len(name) <= MAX_LEN
    assert project_dir_from_cwd(cwd) == name  # deterministic

    units = utf16_units(cwd)
    kept = "".join(expected_char(u) for u in units[:200])
    if len(units) <= 200:
        assert name == kept
    else:
        head, sep, digest = name[:200], name[200], name[201:]
        assert head == kept
        assert sep == "-"
        assert re.fullmatch(r"[0-9a-z]{1,6}", digest)
        assert int(digest, 36) <= 2**31


@given(cwds)
def test_astral_counts_twice(cwd: str) -> None:
    n_astral = sum(ord(c) > 0xFFFF for c in cwd)
    if len(cwd) + n_astral <= 200:
        assert len(project_dir_from_cwd(cwd)) == len(cwd) + n_astral


@given(cwds)
def test_no_unicode_normalisation(cwd: str) -> None:
    # The CLI hashes and sanitises the raw string: NFC and NFD spellings of one
    # path (different directories on Linux) must give the names the CLI gives.
    nfd = unicodedata.normalize("NFD", cwd)
    if nfd != cwd and len(utf16_units(nfd)) <= 200:
        assert project_dir_from_cwd(nfd) == "".join(expected_char(u) for u in utf16_units(nfd))


@given(st.lists(component, min_size=1, max_size=6))
def test_long_paths_keep_a_common_prefix(parts: list[str]) -> None:
    # Everything past the cut only changes the hash, so the CLI's prefix scan
    # (first 200 chars + "-") finds the dir.
    long = "/" + "a" * 250
    a = project_dir_from_cwd(long + "/" + "/".join(parts))
    b = project_dir_from_cwd(long)
    assert a[:201] == b[:201]


@given(cwds)
def test_spelling_variants_that_getcwd_never_reports(cwd: str) -> None:
    name = project_dir_from_cwd(cwd)
    assert project_dir_from_cwd(cwd + "/") == name
    assert project_dir_from_cwd("//" + cwd.replace("/", "/./")) == name


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "relative/dir",
        "./x",
        "~/proj",
        "/a/../b",
        "/a/..",
        "/a\0b",
        "/caf\udce9",  # surrogateescape'd non-UTF-8 byte: the CLI refuses such a cwd
        "C:\\Users\\me",
    ],
)
def test_project_dir_rejects(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        project_dir_from_cwd(bad)
    assert info.value.host == "local"
    assert isinstance(info.value, ValueError)


def test_dotdot_inside_a_name_is_fine() -> None:
    assert project_dir_from_cwd("/a/..b/c..") == "-a---b-c--"


# --- validate_session_id ------------------------------------------------------------

GOOD = "123e4567-e89b-42d3-a456-426614174000"


@given(st.uuids())
def test_validate_session_id_accepts_uuids(u: object) -> None:
    assert validate_session_id(str(u)) == str(u)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        GOOD.upper(),
        "123E4567-e89b-42d3-a456-426614174000",
        "{" + GOOD + "}",
        GOOD.replace("-", ""),
        "urn:uuid:" + GOOD,
        GOOD + "\n",
        "\n" + GOOD,
        GOOD + " ",
        "..",
        "../" + GOOD,
        GOOD[:-1] + "/",
        GOOD[:-1],
        GOOD + "0",
        GOOD.replace("-", "_"),
        "123e4567-e89b-42d3-a456-42661417400g",
        "１２３e4567-e89b-42d3-a456-426614174000",  # fullwidth digits  # noqa: RUF001
        "x" * 10_000,
    ],
)
def test_validate_session_id_rejects(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_session_id(bad)
    assert info.value.host == "local"
    assert len(str(info.value)) < 400  # a huge input is not echoed in full


@given(st.text())
def test_validate_session_id_never_passes_junk(s: str) -> None:
    try:
        assert validate_session_id(s) == s
    except InvalidInput:
        return
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", s)


# --- projects_root --------------------------------------------------------------------


def test_projects_root_reads_local_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    assert projects_root() == "/home/someone/.claude/projects"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/srv/cfg")
    assert projects_root() == "/srv/cfg/projects"


def test_projects_root_for_another_machine_ignores_local_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/local/cfg")
    assert projects_root(home="/home/remote") == "/home/remote/.claude/projects"
    assert projects_root(config_dir="/r/cfg", home="/home/remote") == "/r/cfg/projects"
    assert projects_root(config_dir="/r/cfg") == "/r/cfg/projects"


@pytest.mark.parametrize(
    ("config_dir", "home", "expected"),
    [
        ("/c/", None, "/c/projects"),
        ("//c//d/./", None, "/c/d/projects"),
        ("/c/x/../d", None, "/c/d/projects"),  # lexical, like Node's path.join
        ("/..", None, "/projects"),
        (" /c ", None, None),  # not trimmed: relative, refused
        ("/c ", None, "/c /projects"),
        ("/cfge\u0301", None, "/cfg\u00e9/projects"),  # the CLI NFC-normalises it
        (None, "/home/e\u0301/", "/home/\u00e9/.claude/projects"),
        (None, "/", "/.claude/projects"),
    ],
)
def test_projects_root_normalises_like_the_cli(
    config_dir: str | None, home: str | None, expected: str | None
) -> None:
    if expected is None:
        with pytest.raises(InvalidInput):
            projects_root(config_dir, home)
    else:
        assert projects_root(config_dir, home) == expected


@pytest.mark.parametrize(
    ("config_dir", "home"),
    [
        ("", "/home/u"),  # set but empty: the CLI writes ./projects in every cwd
        ("rel/cfg", "/home/u"),
        ("~/cfg", "/home/u"),
        (None, "home/u"),
        (None, ""),
    ],
)
def test_projects_root_refuses_relative(config_dir: str | None, home: str | None) -> None:
    with pytest.raises(InvalidInput) as info:
        projects_root(config_dir, home)
    assert info.value.host == "local"


def test_projects_root_empty_env_var_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "")
    with pytest.raises(InvalidInput, match="CLAUDE_CONFIG_DIR"):
        projects_root()
