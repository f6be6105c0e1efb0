"""The web API through an ASGI client: guard, settings, validation; a refusal changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from remote_executors.records import SessionRecords
from remote_executors.settings import SettingsStore
from remote_executors.web import WebContext, create_app, lifespan
from remote_executors.web._run_on import RunOnMemory

pytestmark = pytest.mark.anyio

TOKEN = "t" * 43
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def context(tmp_path: Path) -> WebContext:
    project = tmp_path / "home" / "shop"
    project.mkdir(parents=True)
    return WebContext(
        settings=SettingsStore(tmp_path / "config" / "settings.json"),
        records=SessionRecords(tmp_path / "data"),
        roots=[tmp_path / "home"],
        default_cwd=str(project),
        run_on=RunOnMemory(tmp_path / "data" / "web" / "run-on.json"),
    )


@pytest.fixture
async def client(context: WebContext) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(token=TOKEN, context=context)
    async with lifespan(context):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as c:
            yield c


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (nothing may change on a refused request)."""
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- the guard ------------------------------------------------------------------


async def test_no_token_or_wrong_token_is_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "rx_token=wrong"}):
        answer = await client.get("/api/settings/remote-executors", headers=headers)
        assert answer.status_code == 401, headers
        assert "remote-executors ui" in answer.json()["error"]
    assert (await client.get("/", headers={})).status_code == 401
    assert (await client.get("/?token=wrong")).status_code == 401


async def test_token_in_url_becomes_a_cookie_and_leaves_the_url(client: httpx.AsyncClient) -> None:
    answer = await client.get(f"/settings?token={TOKEN}&x=1")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/settings?x=1"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = await client.get("/settings", headers={"Cookie": f"rx_token={TOKEN}"})
    assert page.status_code == 200
    assert "Remote executors" in page.text
    assert "access-control-allow-origin" not in page.headers
    assert "default-src 'self'" in page.headers["content-security-policy"]


async def test_dns_rebinding_host_is_refused(client: httpx.AsyncClient) -> None:
    answer = await client.get(
        "/api/settings/remote-executors", headers={**AUTH, "Host": "evil.example:8765"}
    )
    assert answer.status_code == 421
    ok = await client.get("/api/settings/remote-executors", headers={**AUTH, "Host": "localhost:1"})
    assert ok.status_code == 200


async def test_writes_need_the_token_in_a_header_not_only_the_cookie(
    client: httpx.AsyncClient, context: WebContext, tmp_path: Path
) -> None:
    before = snapshot(tmp_path)
    forged = await client.put(
        "/api/settings/remote-executors", json=["box"], headers={"Cookie": f"rx_token={TOKEN}"}
    )
    assert forged.status_code == 403
    cross = await client.put(
        "/api/settings/remote-executors",
        json=["box"],
        headers={**AUTH, "Origin": "http://evil.example"},
    )
    assert cross.status_code == 403
    assert snapshot(tmp_path) == before
    same = await client.put(
        "/api/settings/remote-executors",
        json=["box"],
        headers={**AUTH, "Origin": "http://127.0.0.1:8765"},
    )
    assert same.status_code == 200
    assert context.settings.load().hosts == ["box"]


async def test_cors_preflight_gets_no_cors(client: httpx.AsyncClient) -> None:
    answer = await client.options(
        "/api/settings/remote-executors",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "PUT"},
    )
    assert answer.status_code in (401, 403)
    assert not any(h.startswith("access-control-") for h in answer.headers)


# -- settings ---------------------------------------------------------------------


async def test_put_replaces_in_order_and_keeps_options(
    client: httpx.AsyncClient, context: WebContext
) -> None:
    context.settings.add("gpu", claude_path="/opt/claude")
    answer = await client.put("/api/settings/remote-executors", json=["box", "gpu"], headers=AUTH)
    assert answer.json() == ["box", "gpu"]
    assert context.settings.load().get("gpu").claude_path == "/opt/claude"  # type: ignore[union-attr]
    answer = await client.put("/api/settings/remote-executors", json=["gpu"], headers=AUTH)
    assert answer.json() == ["gpu"]
    assert (await client.get("/api/settings/remote-executors", headers=AUTH)).json() == ["gpu"]
    mode = context.settings.path.stat().st_mode & 0o777
    assert mode == 0o600


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'["box"', "Malformed JSON"),
        (b'{"box": 1}', "Expected a JSON list"),
        (json.dumps(["ok", "-oProxyCommand=touch /tmp/pwned"]).encode(), "starts with '-'"),
        (json.dumps(["ok", 7]).encode(), "Not a string"),
        (json.dumps(["ok", "ok"]).encode(), "Listed twice"),
        (json.dumps(["bad\nname"]).encode(), "bad\\nname"),
    ],
)
async def test_bad_settings_are_400_with_reasons_and_nothing_written(
    client: httpx.AsyncClient, context: WebContext, tmp_path: Path, body: bytes, needle: str
) -> None:
    context.settings.add("keep")
    before = snapshot(tmp_path)
    answer = await client.put(
        "/api/settings/remote-executors",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert needle in answer.text
    assert snapshot(tmp_path) == before


async def test_body_too_large_is_413(client: httpx.AsyncClient, tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    answer = await client.put(
        "/api/settings/remote-executors", content=b"[" + b" " * (2 << 20) + b"]", headers=AUTH
    )
    assert answer.status_code == 413
    assert snapshot(tmp_path) == before


# -- sessions: refused before anything starts -----------------------------------------


async def test_unknown_executor_and_bad_cwd_are_refused(
    client: httpx.AsyncClient, context: WebContext, tmp_path: Path
) -> None:
    before = snapshot(tmp_path)
    cwd = context.default_cwd
    cases = [
        ({"prompt": "hi", "cwd": cwd, "executor": "nobox"}, 404, "not configured"),
        ({"prompt": "hi", "cwd": cwd, "executor": "-oProxyCommand=x"}, 400, "starts with '-'"),
        ({"prompt": "hi", "cwd": "/etc", "executor": "local"}, 400, "outside the directories"),
        ({"prompt": "hi", "cwd": "relative/dir", "executor": "local"}, 400, "absolute"),
        ({"prompt": "hi", "cwd": cwd + "/../../..", "executor": "local"}, 400, "outside"),
        ({"prompt": "", "cwd": cwd, "executor": "local"}, 400, "'prompt' is required"),
        (["not", "an", "object"], 400, "JSON object"),
        # A directory on the host: only for ssh executors, only a path that stays put.
        ({"prompt": "hi", "cwd": cwd, "executor": "local", "remote_cwd": "/srv"}, 400, "ssh"),
        ({"prompt": "hi", "cwd": cwd, "executor": "box", "remote_cwd": 7}, 400, "string"),
        ({"prompt": "hi", "cwd": cwd, "executor": "box", "remote_cwd": "~bob/x"}, 400, "~user"),
        ({"prompt": "hi", "cwd": cwd, "executor": "box", "remote_cwd": "../x"}, 400, "home"),
        ({"prompt": "hi", "cwd": cwd, "executor": "box", "remote_cwd": "/a\nb"}, 400, "box"),
    ]
    context.settings.add("box")
    before = snapshot(tmp_path)
    for body, status, needle in cases:
        answer = await client.post("/api/sessions", json=body, headers=AUTH)
        assert answer.status_code == status, (body, answer.text)
        assert needle in answer.json()["error"], (body, answer.text)
    assert snapshot(tmp_path) == before


async def test_symlink_out_of_the_roots_is_refused(
    client: httpx.AsyncClient, context: WebContext, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    link = Path(context.default_cwd) / "link"
    link.symlink_to(outside)
    answer = await client.get("/api/sessions", params={"cwd": str(link)}, headers=AUTH)
    assert answer.status_code == 400
    assert "outside" in answer.json()["error"]


async def test_check_of_unknown_or_hostile_names(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/executors/nobox/check", headers=AUTH)).status_code == 404
    hostile = await client.post("/api/executors/-oProxyCommand=x/check", headers=AUTH)
    assert hostile.status_code == 400
    assert "starts with '-'" in hostile.json()["error"]


async def test_bad_session_ids(client: httpx.AsyncClient) -> None:
    for path in ("/api/sessions/..%2F..%2Fetc", "/api/sessions/not-a-uuid/events"):
        answer = await client.get(path, headers=AUTH)
        assert answer.status_code in (400, 404), path
    missing = await client.get("/api/sessions/6f1c1c3e-58a3-4f0e-9a59-0d4d0b1a1d11", headers=AUTH)
    assert missing.status_code == 404
    posted = await client.post(
        "/api/sessions/6f1c1c3e-58a3-4f0e-9a59-0d4d0b1a1d11/interrupt", headers=AUTH
    )
    assert posted.status_code == 409
    answer = await client.post(
        "/api/sessions/6f1c1c3e-58a3-4f0e-9a59-0d4d0b1a1d11/permissions/abc",
        json={"decision": "maybe"},
        headers=AUTH,
    )
    assert answer.status_code == 400


async def test_listing_shows_records_with_badges_host_tooltips_and_marks(
    client: httpx.AsyncClient, context: WebContext, tmp_path: Path
) -> None:
    from remote_executors.executors.ssh._spec import spec_from_options
    from remote_executors.records import SessionRecord

    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host box\n  HostName box.example.org\n  User alice\n  Port 2222\n")
    sid = "6f1c1c3e-58a3-4f0e-9a59-0d4d0b1a1d11"
    context.records.put(
        SessionRecord(
            session_id=sid,
            executor=spec_from_options("box", {"ssh_config": str(ssh_config)}),
            local_cwd=context.default_cwd,
            remote_cwd="/srv/shop",
            sync_error="Session 6f1c… diverged between local and box: nothing was overwritten",
        )
    )
    listed = (await client.get("/api/sessions", headers=AUTH)).json()
    [row] = listed["sessions"]
    assert row["executor"] == "box" and row["host"] == "alice@box.example.org:2222"
    assert row["host_detail"] == "box → alice@box.example.org:2222, in /srv/shop"
    assert row["marks"] == ["conflict"] and row["state"] == "idle"
    page = await client.get("/", headers=AUTH)
    assert 'title="box → alice@box.example.org:2222, in /srv/shop"' in page.text
    assert "mark-conflict" in page.text


async def test_openapi_schema_lists_every_route(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/openapi.json", headers=AUTH)).json()
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/settings/remote-executors",
        "/api/executors/{name}/check",
        "/api/sessions",
        "/api/sessions/{session_id}",
        "/api/sessions/{session_id}/events",
        "/api/sessions/{session_id}/messages",
        "/api/sessions/{session_id}/interrupt",
        "/api/sessions/{session_id}/permissions",
        "/api/sessions/{session_id}/permissions/{prompt_id}",
    } <= set(schema["paths"])


async def test_markup_in_a_transcript_is_text_on_the_page(
    client: httpx.AsyncClient, context: WebContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from remote_executors.paths import project_dir_from_cwd

    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    sid = "0b9d3c5e-1111-4a2b-9c3d-2e4f5a6b7c8d"
    folder = tmp_path / "claude" / "projects" / project_dir_from_cwd(context.default_cwd)
    folder.mkdir(parents=True)
    hostile = '<img src=x onerror="alert(1)">'
    entry = {
        "type": "user",
        "uuid": "6a1f0000-0000-4000-8000-000000000001",
        "parentUuid": None,
        "sessionId": sid,
        "cwd": context.default_cwd,
        "timestamp": "2026-01-01T00:00:00Z",
        "message": {"role": "user", "content": hostile},
    }
    (folder / f"{sid}.jsonl").write_text(json.dumps(entry) + "\n")
    page = await client.get("/", headers=AUTH)
    assert sid in page.text
    assert hostile not in page.text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page.text
    # The API hands it over as data; the page's script inserts it as text.
    data = (await client.get(f"/api/sessions/{sid}", headers=AUTH)).json()
    assert data["entries"][0]["message"]["content"] == hostile
    assert data["cwd"] == context.default_cwd and data["truncated"] is False


async def test_executors_list_local_first_then_the_configured_with_options(
    client: httpx.AsyncClient, context: WebContext
) -> None:
    context.settings.add("box", claude_path="/opt/claude", path_map={"/home/me/code": "/srv"})
    listed = (await client.get("/api/executors", headers=AUTH)).json()
    assert [e["name"] for e in listed] == ["local", "box"]
    assert listed[1]["options"] == {
        "claude_path": "/opt/claude",
        "path_map": {"/home/me/code": "/srv"},
    }


async def test_the_directory_field_is_offered_for_ssh_aliases_only(
    client: httpx.AsyncClient, context: WebContext
) -> None:
    context.settings.add("box")
    context.settings.add("docker://web")
    page = (await client.get("/", headers=AUTH)).text
    assert '<option value="box" data-picks-directory>' in page
    assert '<option value="docker://web">' in page
    assert '<option value="local" selected>' in page
    assert '<div id="remote-dir" hidden>' in page  # Local chosen: nothing to pick
    context.run_on.remember(context.default_cwd, "box")
    page = (await client.get("/", headers=AUTH)).text
    assert '<div id="remote-dir">' in page


def test_a_picked_directory_maps_the_project_and_keeps_the_other_options(
    context: WebContext,
) -> None:
    from remote_executors.executors.ssh._spec import options_from_spec
    from remote_executors.web.api import _executor_in

    context.settings.add("box", claude_path="/opt/claude", path_map={"/srv": "/data"})
    made = _executor_in(context, "box", context.default_cwd, "~/work/shop")
    host, options = options_from_spec(made.spec)
    assert host == "box" and options["claude_path"] == "/opt/claude"
    assert options["path_map"] == {context.default_cwd: "~/work/shop"}
