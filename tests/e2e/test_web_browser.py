"""The web UI in a real browser: headless Chromium (Debian's) driven by Playwright.

Real parts throughout: ``remote-executors ui`` in its own process (uvicorn),
the loopback sshd account, the real Claude CLI there, the scripted model.
The test clicks through what a user does: add an executor, test it, start a
session on it, answer the permission prompt, see the entries arrive during
the turn, the badge and its tooltip in the list, and the "Run on" choice
remembered after a reload. ``RX_SCREENSHOTS=docs`` writes the screenshots of
each page into docs/images/ (how the docs' pictures are made).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _cli import command
from remote_executors.paths import project_dir_from_cwd
from remote_executors.testing.model import ScriptedModel, text, tool_use
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import SSHClientConfig

pytestmark = [pytest.mark.e2e]

FIGURES_TITLE = "web UI (loopback, headless Chromium)"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
TIMEOUT_MS = 90_000

playwright_api = pytest.importorskip("playwright.sync_api")
if CHROMIUM is None:
    pytest.skip("needs Debian's chromium (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class UI:
    """``remote-executors ui`` in a subprocess; ``url`` carries the token."""

    def __init__(
        self, tmp: Path, model: ScriptedModel, roots: list[Path], extra: tuple[str, ...] = ()
    ) -> None:
        self.config_dir = tmp / "config"
        self.env = {
            **os.environ,
            "REMOTE_EXECUTORS_CONFIG_DIR": str(self.config_dir),
            **model.cli_env(),
        }
        self.port = _free_port()
        argv = [*command(), "ui", "--no-open", "--port", str(self.port), *extra]
        for root in roots:
            argv += ["--root", str(root)]
        self.process = subprocess.Popen(
            argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("remote-executors UI: http://127.0.0.1:"), line
        self.url = line.split(": ", 1)[1].strip()
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"ui did not listen: {self.process.stderr}")

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*command(), *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self) -> str:
        """Ctrl-C: the server stops within seconds, open event streams or not."""
        self.process.send_signal(signal.SIGINT)
        began = time.monotonic()
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        assert time.monotonic() - began < 15, err
        assert self.process.returncode == 0, err
        return err


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def bash(command: str) -> Any:
    return tool_use("Bash", {"command": command, "description": "run it"})


@pytest.fixture
def shot(tmp_path: Path) -> Any:
    """``shot(page, name)``: a screenshot; into docs/images/ with RX_SCREENSHOTS=docs
    (how the docs' pictures are made), else into the test's temp dir."""
    folder = DOCS_IMAGES if os.environ.get("RX_SCREENSHOTS") == "docs" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> None:
        page.screenshot(path=str(folder / f"web-{name}.png"), full_page=True)
        assert (folder / f"web-{name}.png").stat().st_size > 1000

    return take


def test_add_test_run_answer_and_remember(
    tmp_path: Path,
    browser: Any,
    rx_model: ScriptedModel,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    record: Any,
    shot: Any,
) -> None:
    alias = rx_ssh_config.alias
    ui = UI(tmp_path, rx_model, [rx_project.local.parent])
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.set_default_timeout(TIMEOUT_MS)

        # The token in the URL becomes a cookie; the address bar loses it.
        started = time.monotonic()
        page.goto(ui.url)
        record("first page load incl. token redirect (s)", time.monotonic() - started)
        assert "token=" not in page.url

        # Settings: add the executor by its alias.
        page.get_by_role("link", name="Settings").click()
        page.get_by_label("Add an executor (ssh alias)").fill(alias)
        page.get_by_role("button", name="Add", exact=True).click()
        page.wait_for_selector(f'.executor[data-name="{alias}"]')
        # The UI edits the list; the alias's ssh_config (the test bed's own file) is an
        # option, set where options are set: the command line.
        ui.cli("executors", "update", alias, "--ssh-config", str(rx_ssh_config.path))

        # Test connection: each step appears with its status; the summary comes last.
        page.get_by_role("button", name=f"Test connection to {alias}").click()
        summary = page.wait_for_selector(f'.executor[data-name="{alias}"] .summary')
        steps = page.locator(f'.executor[data-name="{alias}"] .step')
        names = [steps.nth(i).get_attribute("data-step") for i in range(steps.count())]
        assert names[:3] == ["connect", "host_key", "auth"], names
        assert "ok" in (summary.get_attribute("class") or ""), page.inner_text(".steps")
        assert page.locator(f'.executor[data-name="{alias}"] .step.ok').count() >= 5
        shot(page, "settings")

        # New session on the executor; the model calls Bash, which needs permission.
        rx_model.script(bash("touch web-allowed && echo allowed-by-web"), text("all done via web"))
        page.goto(f"{ui.base}/?cwd={rx_project.local}")
        page.get_by_label("Run on").select_option(alias)
        page.get_by_label("Prompt").fill("please touch a file")
        shot(page, "new-session")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url("**/sessions/*")
        sid = page.url.rsplit("/", 1)[1]
        uuid.UUID(sid)

        # During the turn: the tool call is on the page while the permission waits.
        card = page.wait_for_selector(".permission")
        assert "Bash" in card.inner_text()
        page.wait_for_selector("#transcript .tool-use")
        assert "all done via web" not in page.inner_text("#transcript")
        shot(page, "permission")
        # Keyboard: the new prompt took the focus; Enter allows.
        assert page.evaluate("document.activeElement.textContent") == "Allow"
        page.keyboard.press("Enter")
        page.wait_for_selector("#transcript .entry.assistant >> text=all done via web")
        page.wait_for_selector("#transcript .tool-result >> text=allowed-by-web")
        page.wait_for_selector('#run-state:text-matches("^idle")')
        shot(page, "session")

        # The transcript reached this machine, and its lines replace the live ones.
        local = (
            Path(os.environ["CLAUDE_CONFIG_DIR"])
            / "projects"
            / project_dir_from_cwd(os.path.realpath(rx_project.local))
            / f"{sid}.jsonl"
        )
        assert local.is_file()

        # Entry-to-browser latency: a line landing in the local copy shows up.
        latencies = []
        for n in range(5):
            entry_id = str(uuid.uuid4())
            line = {
                "type": "assistant",
                "uuid": entry_id,
                "sessionId": sid,
                "message": {"role": "assistant", "content": [{"type": "text", "text": f"x{n}"}]},
            }
            with local.open("a") as handle:
                handle.write(json.dumps(line) + "\n")
                handle.flush()
                written = time.time() * 1000
            node = page.wait_for_selector(f'[data-uuid="{entry_id}"]')
            latencies.append(float(node.get_attribute("data-shown-at") or 0) - written)
        record("entry lands locally -> shown in page, median (ms)", sorted(latencies)[2])
        record("entry lands locally -> shown in page, max (ms)", max(latencies))
        assert sorted(latencies)[2] <= 100, latencies

        # Session list: executor badge with the host tooltip; Run on remembered on reload.
        page.goto(f"{ui.base}/?cwd={rx_project.local}")
        badge = page.locator(f'a[href="/sessions/{sid}"] + .badge')
        assert badge.inner_text() == alias
        tooltip = badge.get_attribute("title") or ""
        assert tooltip.startswith(f"{alias} → {rx_ssh_config.account.user}@127.0.0.1:"), tooltip
        assert tooltip.endswith(f", in {rx_project.remote}"), tooltip
        page.reload()
        assert page.get_by_label("Run on").input_value() == alias
        timing = page.evaluate(
            "(() => { const n = performance.getEntriesByType('navigation')[0];"
            " return n.loadEventEnd - n.startTime; })()"
        )
        record("session list page load, navigation timing (ms)", timing)
        shot(page, "sessions")

        # Every control has a name a screen reader can say.
        unnamed = page.evaluate(
            "[...document.querySelectorAll('input, select, textarea, button')]"
            ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')"
            " && !e.textContent.trim()).map(e => e.outerHTML)"
        )
        assert unnamed == []

        # Usable at 375 px: nothing wider than the screen.
        page.set_viewport_size({"width": 375, "height": 800})
        for path in ("/", "/settings", f"/sessions/{sid}"):
            page.goto(f"{ui.base}{path}?cwd={rx_project.local}" if path == "/" else ui.base + path)
            width = page.evaluate("document.scrollingElement.scrollWidth")
            assert width <= 375, (path, width)
        shot(page, "session-375px")
    finally:
        err = ui.stop()
    assert "Traceback" not in err, err


def test_directory_picker_completes_marks_and_runs_there(
    tmp_path: Path,
    browser: Any,
    rx_model: ScriptedModel,
    rx_sshd: Any,
    rx_account: Any,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
    record: Any,
    shot: Any,
) -> None:
    """Run on a host: the directory field completes paths there (debounced), marks
    the ones with sessions, and the session runs in the one picked; a host that
    cannot answer leaves a plain field that says so."""
    alias = rx_ssh_config.alias
    home = rx_account.home
    beta = f"{home}/work/beta"
    projects = rx_account.claude_config_dir / "projects"
    rx_sshd.run_as(
        rx_account,
        [
            "/bin/sh",
            "-c",
            "mkdir -p work/alpha work/beta work/.cache work/bin && touch work/notes "
            f"&& mkdir -p {projects}/{project_dir_from_cwd(beta)}",
        ],
        check=True,
    )
    broken_config = tmp_path / "broken_ssh_config"
    broken_config.write_text("Host rx-broken\n  ProxyCommand /bin/false\n")
    ui = UI(tmp_path, rx_model, [rx_project.local.parent])
    ui.cli("executors", "add", alias, "--ssh-config", str(rx_ssh_config.path))
    ui.cli("executors", "add", "rx-broken", "--ssh-config", str(broken_config))
    problems: list[str] = []
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
        # A 502 answer is logged by Chromium itself ("Failed to load resource"); the
        # page's own script must log nothing.
        page.on(
            "console",
            lambda m: (
                problems.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource")
                else None
            ),
        )
        requests: list[str] = []
        page.on(
            "request",
            lambda r: requests.append(r.url) if "/directories?" in r.url else None,
        )
        page.clock.install()  # the page's timers run on a clock this test can stop
        page.goto(ui.url)
        page.goto(f"{ui.base}/?cwd={rx_project.local}")
        field = page.get_by_label("Directory on the host")
        assert not field.is_visible()  # Local runs in the project itself
        page.get_by_label("Run on").select_option(alias)

        # Typing: one request per pause, not one per key (the clock stands still
        # while the keys go in, so a loaded machine cannot make pauses of its own).
        page.clock.pause_at(dt.datetime.now() + dt.timedelta(seconds=1))
        field.press_sequentially("~/wo", delay=30)
        page.wait_for_timeout(300)  # real time: no request leaves before the pause ends
        assert requests == []
        page.clock.run_for(250)
        page.get_by_role("option", name="~/work/").wait_for()
        assert len(requests) == 1, requests
        page.clock.resume()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")  # picks; does not submit
        assert field.input_value() == "~/work/"
        assert page.url.startswith(f"{ui.base}/?")

        # Completions of the next level, sessions marked, hidden ones only on request.
        started = time.monotonic()
        field.press_sequentially("b", delay=30)
        page.get_by_role("option", name="~/work/beta/").wait_for()
        record(
            "completion: key -> options shown, 200 ms debounce incl. (s)",
            time.monotonic() - started,
        )
        shot(page, "directory-picker")
        warm = [
            page.evaluate(
                """async (name) => {
                  const token = document.querySelector('meta[name="rx-token"]').content;
                  const began = performance.now();
                  const answer = await fetch(
                    "/api/executors/" + name + "/directories?complete=1&path=~/work/",
                    { headers: { Authorization: "Bearer " + token } });
                  await answer.json();
                  return performance.now() - began;
                }""",
                alias,
            )
            for _ in range(5)
        ]
        record("completion request, warm (executor kept open), median (ms)", sorted(warm)[2])
        names = page.locator("#remote-cwd-options [role=option]").all_inner_texts()
        assert [n.split()[0] for n in names] == ["~/work/beta/", "~/work/bin/"], names
        beta_option = page.locator('[role=option][data-path="~/work/beta/"]')
        assert beta_option.locator(".mark-sessions").count() == 1
        assert page.locator('[data-path="~/work/bin/"] .mark-sessions').count() == 0
        field.fill("work/.")
        page.get_by_role("option", name="work/.cache/").wait_for()
        field.fill("work/")
        page.get_by_role("option", name="work/alpha/").wait_for()
        assert page.locator('[data-path="work/.cache/"]').count() == 0
        page.get_by_label("Show hidden directories").check()
        page.locator('[data-path="work/.cache/"]').wait_for()
        # A path that leads nowhere completes to nothing, quietly.
        field.fill("~/nowhere/x")
        page.wait_for_selector('#remote-cwd-status:text("No directory there")')
        assert page.locator("#remote-cwd-options").is_hidden()

        # Pick beta with the mouse and start a session there.
        field.fill("~/work/be")
        page.locator('[role=option][data-path="~/work/beta/"]').click()
        assert field.input_value() == "~/work/beta/"
        rx_model.script(text("working in the picked directory"))
        page.get_by_label("Prompt").fill("where are you?")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url("**/sessions/*")
        sid = page.url.rsplit("/", 1)[1]
        page.wait_for_selector("#transcript .entry.assistant >> text=working in the picked")
        page.wait_for_selector('#run-state:text-matches("^idle")')

        # It ran there (the CLI says its cwd in each entry), and the transcript is here.
        local = (
            Path(os.environ["CLAUDE_CONFIG_DIR"])
            / "projects"
            / project_dir_from_cwd(os.path.realpath(rx_project.local))
            / f"{sid}.jsonl"
        )
        cwds = {json.loads(line).get("cwd") for line in local.read_text().splitlines()}
        assert beta in cwds, cwds
        page.goto(f"{ui.base}/?cwd={rx_project.local}")
        badge = page.locator(f'a[href="/sessions/{sid}"] + .badge')
        assert (badge.get_attribute("title") or "").endswith(f", in {beta}")

        # After a restart of the server the next turn resumes there too: the picked
        # directory is in the spec the session was recorded with.
        err = ui.stop()
        assert "Traceback" not in err, err
        ui = UI(tmp_path, rx_model, [rx_project.local.parent])
        page.goto(ui.url)
        rx_model.script(text("still in beta"))
        page.goto(f"{ui.base}/sessions/{sid}")
        page.wait_for_selector('#run-state:text-matches("^idle · ran on")')
        page.get_by_label("Your message").fill("and now?")
        page.get_by_role("button", name="Send").click()
        page.wait_for_selector("#transcript .entry.assistant >> text=still in beta")
        page.wait_for_selector('#run-state:text-matches("^idle")')
        lines = local.read_text().splitlines()
        assert json.loads(lines[-1]).get("cwd") == beta, lines[-1]

        # A host that cannot answer: the field stays a plain text field and says so.
        page.goto(f"{ui.base}/?cwd={rx_project.local}")
        page.get_by_label("Run on").select_option("rx-broken")
        field.press_sequentially("~/wo", delay=30)
        status = page.wait_for_selector('#remote-cwd-status:text("No completion from rx-broken")')
        assert "rx-broken" in status.inner_text() and "Type the path" in status.inner_text()
        field.press_sequentially("rk/x", delay=30)
        assert field.input_value() == "~/work/x"
        assert page.locator("#remote-cwd-options").is_hidden()
        assert page.locator("#remote-dir.plain").count() == 1
        # Choosing another executor gives completion its chance again.
        page.get_by_label("Run on").select_option(alias)
        assert page.locator("#remote-dir.plain").count() == 0
    finally:
        err = ui.stop()
    assert problems == []
    assert "Traceback" not in err, err


def test_an_unanswered_permission_prompt_is_denied_and_the_page_says_so(
    tmp_path: Path,
    browser: Any,
    rx_model: ScriptedModel,
    rx_ssh_config: SSHClientConfig,
    rx_project: Project,
) -> None:
    alias = rx_ssh_config.alias
    ui = UI(tmp_path, rx_model, [rx_project.local.parent], ("--permission-timeout", "4"))
    ui.cli("executors", "add", alias, "--ssh-config", str(rx_ssh_config.path))
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(ui.url)
        rx_model.script(bash("touch never-made"), text("carried on after the denial"))
        page.goto(f"{ui.base}/?cwd={rx_project.local}")
        page.get_by_label("Run on").select_option(alias)
        page.get_by_label("Prompt").fill("touch a file")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url("**/sessions/*")

        # The prompt says how long it waits; nobody answers.
        card = page.wait_for_selector(".permission")
        asked = time.monotonic()
        assert "Denied automatically in" in card.inner_text()
        notice = page.wait_for_selector("#notices .notice")
        waited = time.monotonic() - asked
        assert notice.inner_text() == "No answer in the web UI within 4 s: Bash was denied."
        assert page.locator(".permission").count() == 0
        assert 2 <= waited < 30, waited
        # The model heard the denial and the turn went on.
        page.wait_for_selector("#transcript .entry.assistant >> text=carried on after the denial")
        page.wait_for_selector('#run-state:text-matches("^idle")')
        denied = page.inner_text("#transcript .tool-result.error")
        assert "No answer in the web UI within 4 s" in denied, denied
    finally:
        err = ui.stop()
    assert "Traceback" not in err, err
