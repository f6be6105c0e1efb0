"""Sessions through the HTTP API of a real server (uvicorn on loopback), real CLI, scripted model.

Local sessions (the remote path is the browser test's): start, the permission
prompt listed and denied with a message the model then sees, the SSE stream,
a next turn, a resume after the server restarted, an interrupt.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from remote_executors.settings import SettingsStore
from remote_executors.testing.model import ScriptedModel, slow, text, tool_use
from remote_executors.web import WebContext, create_app
from remote_executors.web._run_on import RunOnMemory

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TOKEN = "s" * 43
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Server:
    """``create_app`` served by uvicorn in a thread; ``restart()`` forgets running sessions."""

    def __init__(self, tmp: Path, project: Path) -> None:
        self.tmp, self.project = tmp, project
        self.thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        import uvicorn

        context = WebContext(
            settings=SettingsStore(self.tmp / "config" / "settings.json"),
            roots=[self.project.parent],
            default_cwd=str(self.project),
            run_on=RunOnMemory(self.tmp / "run-on.json"),
        )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(
            create_app(token=TOKEN, context=context),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(60)
            assert not self.thread.is_alive()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "work" / "shop"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def server(
    tmp_path: Path,
    project: Path,
    rx_model: ScriptedModel,
    rx_isolated: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Server]:
    for name, value in {**rx_model.cli_env(), "CLAUDE_CODE_MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REMOTE_EXECUTORS_DATA_DIR", str(tmp_path / "data"))
    running = Server(tmp_path, project)
    yield running
    running.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(headers=AUTH, timeout=120) as c:
        yield c


async def events(client: httpx.AsyncClient, url: str, into: list[tuple[str, Any]]) -> None:
    """Collect SSE events (kind, data) until cancelled."""
    async with client.stream("GET", url) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        kind = None
        async for line in answer.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind is not None:
                into.append((kind, json.loads(line[6:])))


async def wait_for(predicate: Any, seconds: float = 90) -> None:
    with anyio.fail_after(seconds):
        while not predicate():
            await anyio.sleep(0.05)


def texts(entries: list[dict[str, Any]]) -> list[str]:
    out = []
    for entry in entries:
        content = entry.get("message", {}).get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out += [b.get("text", "") for b in content if b.get("type") == "text"]
    return out


async def test_permission_denied_then_next_turn_then_resume_after_restart(
    server: Server, client: httpx.AsyncClient, project: Path, rx_model: ScriptedModel
) -> None:
    rx_model.script(
        tool_use("Bash", {"command": "touch denied-file", "description": "touch"}),
        text("ok, not touching it"),
    )
    started = await client.post(
        f"{server.base}/api/sessions",
        json={"prompt": "touch a file", "cwd": str(project), "executor": "local"},
    )
    assert started.status_code == 201, started.text
    sid = started.json()["session_id"]

    seen: list[tuple[str, Any]] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(events, client, f"{server.base}/api/sessions/{sid}/events", seen)
        prompts: list[dict[str, Any]] = []

        async def listed() -> bool:
            prompts[:] = (await client.get(f"{server.base}/api/sessions/{sid}/permissions")).json()
            return bool(prompts)

        with anyio.fail_after(90):
            while not await listed():
                await anyio.sleep(0.1)
        [prompt] = prompts
        assert prompt["tool"] == "Bash" and prompt["input"]["command"] == "touch denied-file"
        # The state event carried the same prompt to the page.
        await wait_for(lambda: any(k == "state" and d["permissions"] for k, d in seen))
        answer = await client.post(
            f"{server.base}/api/sessions/{sid}/permissions/{prompt['id']}",
            json={"decision": "deny", "message": "not from the web UI test"},
        )
        assert answer.status_code == 200
        again = await client.post(
            f"{server.base}/api/sessions/{sid}/permissions/{prompt['id']}",
            json={"decision": "allow"},
        )
        assert again.status_code == 404  # answered once only
        await wait_for(lambda: any(k == "state" and d["state"] == "idle" for k, d in seen))
        # The transcript landed locally and came through the stream as entries.
        await wait_for(
            lambda: (
                "ok, not touching it" in texts([e for k, d in seen if k == "entries" for e in d])
            )
        )
        tg.cancel_scope.cancel()
    assert not (project / "denied-file").exists()
    [denied] = rx_model.main_requests[-1].tool_results
    assert denied.is_error and "not from the web UI test" in denied.content

    # Next turn on the running client.
    rx_model.script(text("second answer"))
    sent = await client.post(
        f"{server.base}/api/sessions/{sid}/messages", json={"prompt": "and now?"}
    )
    assert sent.status_code == 202, sent.text

    async def has(needle: str) -> bool:
        data = (await client.get(f"{server.base}/api/sessions/{sid}")).json()
        return needle in texts(data["entries"])

    with anyio.fail_after(90):
        while not await has("second answer"):
            await anyio.sleep(0.1)

    # A new server knows nothing running: the next message resumes the session.
    server.restart()
    rx_model.script(text("third answer after restart"))
    sent = await client.post(
        f"{server.base}/api/sessions/{sid}/messages", json={"prompt": "still there?"}
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["session_id"] == sid
    with anyio.fail_after(90):
        while not await has("third answer after restart"):
            await anyio.sleep(0.1)
    assert "second answer" in repr(rx_model.main_requests[-1].messages)

    listed = (await client.get(f"{server.base}/api/sessions", params={"cwd": str(project)})).json()
    assert [s["session_id"] for s in listed["sessions"]] == [sid]
    assert listed["sessions"][0]["executor"] == "local"
    assert listed["run_on"] == "local"


async def test_interrupt_stops_a_slow_turn(
    server: Server, client: httpx.AsyncClient, project: Path, rx_model: ScriptedModel
) -> None:
    rx_model.script(text("quick"), slow("never finished", delay=60))
    started = await client.post(
        f"{server.base}/api/sessions",
        json={"prompt": "one", "cwd": str(project), "executor": "local"},
    )
    assert started.status_code == 201, started.text
    sid = started.json()["session_id"]

    async def state() -> str:
        data = (await client.get(f"{server.base}/api/sessions/{sid}")).json()
        return str((data["run"] or {}).get("state"))

    with anyio.fail_after(90):
        while await state() != "idle":
            await anyio.sleep(0.1)
    assert (await client.post(f"{server.base}/api/sessions/{sid}/interrupt")).status_code == 409
    await client.post(f"{server.base}/api/sessions/{sid}/messages", json={"prompt": "two"})
    await wait_for(lambda: len(rx_model.main_requests) >= 2)
    began = time.monotonic()
    answer = await client.post(f"{server.base}/api/sessions/{sid}/interrupt")
    assert answer.status_code == 200, answer.text
    with anyio.fail_after(30):
        while await state() != "idle":
            await anyio.sleep(0.1)
    assert time.monotonic() - began < 30  # not the model's 60 s


async def test_unreachable_executor_is_a_clear_502_and_its_check_says_why(
    server: Server,
    client: httpx.AsyncClient,
    project: Path,
    tmp_path: Path,
    rx_ssh_config: Any,
) -> None:
    from remote_executors.testing.sshd import SSHFault

    alias = rx_ssh_config.alias_for(SSHFault.CONNECTION_REFUSED)
    store = SettingsStore(tmp_path / "config" / "settings.json")
    store.add(alias, ssh_config=str(rx_ssh_config.path))

    started = await client.post(
        f"{server.base}/api/sessions",
        json={"prompt": "hi", "cwd": str(project), "executor": alias},
    )
    assert started.status_code == 502, started.text
    assert alias in started.json()["error"]
    listed = (await client.get(f"{server.base}/api/sessions", params={"cwd": str(project)})).json()
    assert listed == {"cwd": str(project), "run_on": None, "sessions": []}  # nothing recorded

    steps = []
    async with client.stream("POST", f"{server.base}/api/executors/{alias}/check") as answer:
        assert answer.status_code == 200
        async for line in answer.aiter_lines():
            if line:
                steps.append(json.loads(line))
    connect = steps[0]
    assert connect["step"] == "connect" and connect["status"] == "fail"
    assert connect["hint"]
    assert steps[-1] == {"done": True, "host": alias, "ok": False}
