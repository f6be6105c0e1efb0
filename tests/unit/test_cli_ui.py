"""``remote-executors ui``: a fresh token per run, the warning off loopback, the missing extra."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from _cli import command


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "REMOTE_EXECUTORS_CONFIG_DIR": str(tmp_path / "config"),
        "REMOTE_EXECUTORS_DATA_DIR": str(tmp_path / "data"),
        "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
    }


def _serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [*command(), "ui", "--no-open", *args],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return err


def _get(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    for _ in range(100):
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except urllib.error.URLError:
            import time

            time.sleep(0.05)
    raise AssertionError(f"{url} never answered")


def test_each_run_prints_a_fresh_token_that_the_server_wants(tmp_path: Path) -> None:
    tokens = []
    for _ in range(2):
        process, line = _serve(tmp_path)
        try:
            assert line.startswith("remote-executors UI: http://127.0.0.1:"), line
            url = line.split(": ", 1)[1]
            base, _, token = url.partition("/?token=")
            assert len(token) >= 40
            tokens.append(token)
            assert _get(f"{base}/api/settings/remote-executors") == 401
            bearer = {"Authorization": f"Bearer {token}"}
            assert _get(f"{base}/api/settings/remote-executors", bearer) == 200
        finally:
            err = _stop(process)
        assert "warning" not in err
        assert token not in err  # the token is printed once, on stdout
    assert tokens[0] != tokens[1]


def test_the_browser_gets_no_token_on_its_command_line(tmp_path: Path) -> None:
    log = tmp_path / "browser-argv"
    browser = tmp_path / "browser"
    # A stand-in browser ($BROWSER is what webbrowser runs): keeps its argv and the page.
    browser.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\ncat "${{1#file://}}" > {log}.page\n'
    )
    browser.chmod(0o755)
    env = {**_env(tmp_path), "BROWSER": f"{browser} %s", "DISPLAY": ""}
    process = subprocess.Popen(
        [*command(), "ui"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().split(": ", 1)[1]
        token = url.rsplit("token=", 1)[1]
        for _ in range(200):
            if Path(f"{log}.page").exists() and Path(f"{log}.page").stat().st_size:
                break
            import time

            time.sleep(0.05)
        argv = log.read_text()
        assert token not in argv
        assert argv.startswith("file://") and argv.strip().endswith("/open.html")
        page = Path(argv.strip().removeprefix("file://"))
        assert page.stat().st_mode & 0o777 == 0o600
        assert url.replace("&", "&amp;") in Path(f"{log}.page").read_text()
    finally:
        _stop(process)
    assert not page.exists()  # removed with the server


def test_another_host_warns(tmp_path: Path) -> None:
    process, line = _serve(tmp_path, "--host", "0.0.0.0")
    try:
        # Listening on every address: the URL names this machine, which the Host check allows.
        fqdn = socket.getfqdn()
        assert line.startswith(f"remote-executors UI: http://{fqdn}:"), line
        port = line.rsplit(":", 1)[1].split("/")[0]
        assert _get(f"http://127.0.0.1:{port}/") == 401  # serving (the token still applies)
        token = line.rsplit("token=", 1)[1]
        bearer = {"Authorization": f"Bearer {token}"}
        assert _get(f"http://127.0.0.1:{port}/api/executors", bearer) == 200
        elsewhere = {**bearer, "Host": f"{fqdn}:{port}"}
        assert _get(f"http://127.0.0.1:{port}/api/executors", elsewhere) == 200
        rebound = {**bearer, "Host": f"evil.example:{port}"}
        assert _get(f"http://127.0.0.1:{port}/api/executors", rebound) == 421
    finally:
        err = _stop(process)
    assert "warning: listening on 0.0.0.0" in err


def test_without_the_web_extra_it_says_what_to_install(tmp_path: Path) -> None:
    # uvicorn made unimportable, as in an install without the extra.
    probe = (
        "import sys; sys.modules['uvicorn'] = None; "
        "from remote_executors.cli import main; "
        "sys.argv = ['remote-executors', 'ui', '--no-open']; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "pip install 'remote-executors[web]'" in done.stderr


@pytest.mark.parametrize("root", ["/nonexistent-rx-root"])
def test_a_missing_root_is_a_usage_error(tmp_path: Path, root: str) -> None:
    done = subprocess.run(
        [*command(), "ui", "--no-open", "--root", root],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "does not exist" in done.stderr
