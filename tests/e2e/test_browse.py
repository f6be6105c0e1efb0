"""Browsing a host's directories over the real sshd bed: list_dir, complete_path, ls."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import remote_executors as rx
from _cli import CLI, ok
from remote_executors.browse import complete_dirs, complete_path, list_dir
from remote_executors.errors import OutputTooLarge, RemotePathNotFound
from remote_executors.executors.ssh import BACKENDS
from remote_executors.paths import project_dir_from_cwd
from remote_executors.testing.sshd import RemoteAccount, SSHClientConfig, SSHTestBed

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

FIGURES_TITLE = "Browsing a host"


def make_tree(bed: SSHTestBed, account: RemoteAccount, script: str) -> None:
    bed.run_as(account, ["/bin/sh", "-c", script], check=True)


@pytest.fixture
def tree(rx_sshd: SSHTestBed, rx_account: RemoteAccount) -> Path:
    """~/code/{shop,blog,.secret,notes.txt} there, with sessions for shop."""
    home = rx_account.home
    make_tree(
        rx_sshd,
        rx_account,
        "mkdir -p code/shop code/blog code/.secret code/'we ird' && touch code/notes.txt "
        "&& ln -s shop code/shop-link",
    )
    projects = rx_account.claude_config_dir / "projects"
    make_tree(
        rx_sshd, rx_account, f"mkdir -p {projects}/{project_dir_from_cwd(f'{home}/code/shop')}"
    )
    return home / "code"


@pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True)
async def test_lists_home_relative_paths_and_marks_sessions(
    tree: Path, rx_executor: rx.SSHExecutor, record
) -> None:
    for spelling in ("~/code", "code", str(tree)):
        listing = await list_dir(rx_executor, spelling)
        assert listing.path == str(tree) and listing.host == rx_executor.name
        names = {e.name: e for e in listing.entries}
        assert set(names) == {"shop", "blog", "notes.txt", "we ird", "shop-link"}
        assert names["shop"].is_dir and names["shop"].has_sessions
        assert not names["blog"].has_sessions and not names["notes.txt"].is_dir
        assert names["shop-link"].is_dir and not listing.truncated
    hidden = await list_dir(rx_executor, "~/code", hidden=True)
    assert ".secret" in {e.name for e in hidden.entries}
    home = await list_dir(rx_executor, "~")
    assert home.path == str(tree.parent) and "code" in {e.name for e in home.directories}
    shop = await list_dir(rx_executor, "~/code/shop")
    assert shop.has_sessions and shop.entries == ()
    # Warm latency: the connection is up.
    started = time.monotonic()
    for _ in range(5):
        await list_dir(rx_executor, "~/code")
    record("ls warm (s per call)", (time.monotonic() - started) / 5)


@pytest.mark.parametrize("rx_ssh_backend", BACKENDS, indirect=True)
async def test_completion_of_partial_paths(tree: Path, rx_executor: rx.SSHExecutor) -> None:
    completed = await complete_path(rx_executor, "~/code/s")
    assert sorted(completed) == ["~/code/shop-link/", "~/code/shop/"]
    assert await complete_path(rx_executor, "~/code/b") == ["~/code/blog/"]
    assert await complete_path(rx_executor, "~/code/.s") == ["~/code/.secret/"]
    assert await complete_path(rx_executor, "~/code/n") == []  # a file, not a directory
    assert await complete_path(rx_executor, "~/nowhere/x") == []
    assert await complete_path(rx_executor, f"{tree}/bl") == [f"{tree}/blog/"]
    assert "code/" in await complete_path(rx_executor, "co")
    # With marks; dot directories on request; files do not use up the limit.
    marked = await complete_dirs(rx_executor, "~/code/", limit=3)
    assert [(c.path, c.has_sessions) for c in marked] == [
        ("~/code/blog/", False),
        ("~/code/shop/", True),
        ("~/code/shop-link/", False),  # marked by its own path, as list_dir marks
    ]
    with_hidden = await complete_dirs(rx_executor, "~/code/", hidden=True)
    assert "~/code/.secret/" in [c.path for c in with_hidden]
    assert "~/code/notes.txt/" not in [c.path for c in with_hidden]


async def test_missing_path_and_file_are_clear_errors(
    tree: Path, rx_executor: rx.SSHExecutor
) -> None:
    with pytest.raises(RemotePathNotFound, match="does not exist on") as info:
        await list_dir(rx_executor, "~/nowhere")
    assert info.value.host == rx_executor.name and info.value.path.endswith("/nowhere")
    with pytest.raises(RemotePathNotFound, match="is not a directory"):
        await list_dir(rx_executor, "~/code/notes.txt")


async def test_ten_thousand_entries_stay_bounded(
    rx_sshd: SSHTestBed, rx_account: RemoteAccount, rx_executor: rx.SSHExecutor, record
) -> None:
    make_tree(
        rx_sshd,
        rx_account,
        "mkdir -p big && cd big && i=0; while [ $i -lt 10000 ]; do "
        ': > "f$i"; i=$((i+1)); done; mkdir d0 d1',
    )
    started = time.monotonic()
    listing = await list_dir(rx_executor, "~/big", limit=500)
    record("ls of 10k entries, limit 500 (s)", time.monotonic() - started)
    assert len(listing.entries) == 500 and listing.truncated
    started = time.monotonic()
    whole = await list_dir(rx_executor, "~/big", limit=20000)
    record("ls of 10k entries, all (s)", time.monotonic() - started)
    assert len(whole.entries) == 10002 and not whole.truncated
    assert {"d0", "d1"} <= {e.name for e in whole.directories}
    # Whatever the host sends, at most the cap is read.
    with pytest.raises(rx.InvalidInput):
        await list_dir(rx_executor, "~/big", limit=0)


async def test_hostile_names_and_huge_output_are_capped(
    rx_sshd: SSHTestBed, rx_account: RemoteAccount, rx_executor: rx.SSHExecutor
) -> None:
    # A name with a terminal escape and a newline arrives intact (the CLI quotes it).
    make_tree(
        rx_sshd, rx_account, "mkdir -p odd && cd odd && mkdir \"$(printf 'a\\033]0;x\\007\\nb')\""
    )
    listing = await list_dir(rx_executor, "~/odd")
    assert [e.name for e in listing.entries] == ["a\x1b]0;x\x07\nb"]
    # A host that answers with endless output is cut off at the cap, not read into memory.
    make_tree(
        rx_sshd,
        rx_account,
        "mkdir -p many && cd many && i=0; while [ $i -lt 3000 ]; do "
        "mkdir \"$(printf '%0250d' $i)\"; i=$((i+1)); done",
    )
    with pytest.raises(OutputTooLarge):
        from remote_executors import browse

        browse._BYTES_PER_ENTRY, saved = 1, browse._BYTES_PER_ENTRY
        try:
            await list_dir(rx_executor, "~/many", limit=3000)
        finally:
            browse._BYTES_PER_ENTRY = saved


def test_ls_command(tree: Path, rx_ssh_config: SSHClientConfig, tmp_path: Path, rx_model) -> None:
    cli = CLI(tmp_path, rx_model)
    alias = rx_ssh_config.alias
    ok(cli("executors", "add", alias, "--ssh-config", str(rx_ssh_config.path)))
    out = ok(cli("ls", f"{alias}:~/code"))
    assert f"{tree} on {alias}" in out
    assert "  shop/   [sessions]\n" in out and "  blog/\n" in out and "notes.txt" in out
    data = json.loads(ok(cli("ls", f"{alias}:code", "--json", "-a")))
    assert data["path"] == str(tree) and ".secret" in [e["name"] for e in data["entries"]]
    completed = ok(cli("ls", f"{alias}:~/code/sh", "--complete")).split()
    assert sorted(completed) == ["~/code/shop-link/", "~/code/shop/"]
    assert ".secret/" not in ok(cli("ls", f"{alias}:code/", "--complete"))
    assert "code/.secret/\n" in ok(cli("ls", f"{alias}:code/", "--complete", "-a"))
    missing = cli("ls", f"{alias}:~/nowhere")
    assert missing.returncode == 4 and "does not exist on" in missing.stderr


async def test_web_api_browses_a_configured_host(
    tree: Path, rx_ssh_config: SSHClientConfig, tmp_path: Path
) -> None:
    pytest.importorskip("starlette")
    import httpx

    from remote_executors.records import SessionRecords
    from remote_executors.settings import SettingsStore
    from remote_executors.web import WebContext, create_app, lifespan
    from remote_executors.web._run_on import RunOnMemory

    settings = SettingsStore(tmp_path / "config" / "settings.json")
    settings.add(rx_ssh_config.alias, ssh_config=str(rx_ssh_config.path))
    home = tmp_path / "home"
    home.mkdir()
    context = WebContext(
        settings=settings,
        records=SessionRecords(tmp_path / "data"),
        roots=[home],
        default_cwd=str(home),
        run_on=RunOnMemory(tmp_path / "data" / "web" / "run-on.json"),
    )
    token = "t" * 43
    app = create_app(token=token, context=context)
    auth = {"Authorization": f"Bearer {token}"}
    base = f"/api/executors/{rx_ssh_config.alias}/directories"
    async with lifespan(context):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as c:
            listed = (await c.get(base, params={"path": "~/code"}, headers=auth)).json()
            assert listed["path"] == str(tree)
            shop = [e for e in listed["entries"] if e["name"] == "shop"]
            assert shop == [{"name": "shop", "dir": True, "has_sessions": True}]
            done = await c.get(base, params={"path": "~/code/b", "complete": "1"}, headers=auth)
            assert done.json() == {
                "completions": ["~/code/blog/"],
                "entries": [{"path": "~/code/blog/", "has_sessions": False}],
            }
            marked = await c.get(base, params={"path": "~/code/sh", "complete": "1"}, headers=auth)
            assert marked.json()["entries"][0] == {"path": "~/code/shop/", "has_sessions": True}
            missing = await c.get(base, params={"path": "~/nowhere"}, headers=auth)
            assert missing.status_code == 404 and "does not exist on" in missing.json()["error"]
            local = await c.get("/api/executors/local/directories", headers=auth)
            assert local.status_code == 400
            unknown = await c.get("/api/executors/nobox/directories", headers=auth)
            assert unknown.status_code == 404
            assert (await c.get(base)).status_code == 401
