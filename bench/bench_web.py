"""The web UI's server: page load time on loopback and memory with 50 sessions listed.

    .venv/bin/python bench/bench_web.py [--sessions N] [--runs N]

Writes N session transcripts (20 turns each, local records for half of them
as if they ran on a host) into a private Claude config and data dir, starts
``remote-executors ui`` against them, then times (median of ``--runs``) the
session list page, ``GET /api/sessions`` and one session's ``GET``, and reads
the server's resident memory (VmRSS, VmHWM) before and after the listings.
No browser: the page time is the server's answer, as a browser on loopback
gets it (the browser test records navigation timing too).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path


def _script() -> list[str]:
    script = Path(sys.executable).with_name("remote-executors")
    return [str(script)] if script.exists() else [sys.executable, "-m", "remote_executors.cli"]


def _memory(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])  # kB
    return out


def _seed(root: Path, project: Path, count: int) -> str:
    from remote_executors.paths import project_dir_from_cwd
    from remote_executors.records import SessionRecord, SessionRecords

    folder = root / "claude" / "projects" / project_dir_from_cwd(str(project))
    folder.mkdir(parents=True)
    records = SessionRecords(root / "data")
    first = ""
    for n in range(count):
        sid = str(uuid.uuid4())
        first = first or sid
        lines, parent = [], None
        for turn in range(20):
            for role, text in (("user", f"question {turn}"), ("assistant", "answer " * 200)):
                entry_id = str(uuid.uuid4())
                lines.append(
                    json.dumps(
                        {
                            "type": role,
                            "uuid": entry_id,
                            "parentUuid": parent,
                            "sessionId": sid,
                            "cwd": str(project),
                            "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(),
                            "message": {"role": role, "content": [{"type": "text", "text": text}]},
                        }
                    )
                )
                parent = entry_id
        (folder / f"{sid}.jsonl").write_text("\n".join(lines) + "\n")
        if n % 2:
            records.put(
                SessionRecord(
                    session_id=sid, executor="box", local_cwd=str(project), remote_cwd="/srv/shop"
                )
            )
    return first


def _get(url: str, token: str) -> tuple[float, int]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as answer:
        size = len(answer.read())
    return time.perf_counter() - start, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project = root / "home" / "shop"
        project.mkdir(parents=True)
        sid = _seed(root, project, args.sessions)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {
            **os.environ,
            "CLAUDE_CONFIG_DIR": str(root / "claude"),
            "REMOTE_EXECUTORS_DATA_DIR": str(root / "data"),
            "REMOTE_EXECUTORS_CONFIG_DIR": str(root / "config"),
        }
        server = subprocess.Popen(
            [*_script(), "ui", "--no-open", "--port", str(port), "--root", str(root / "home")],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            token = server.stdout.readline().strip().rsplit("token=", 1)[1]
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            idle = _memory(server.pid)
            rows = []
            for label, path in (
                ("session list page (/)", f"/?cwd={project}"),
                ("GET /api/sessions", f"/api/sessions?cwd={project}"),
                ("GET /api/sessions/{id} (40 entries)", f"/api/sessions/{sid}"),
                ("settings page", "/settings"),
            ):
                times = [_get(base + path, token) for _ in range(args.runs)]
                rows.append((label, statistics.median(t for t, _ in times), times[0][1]))
            busy = _memory(server.pid)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)
    print(f"web UI server, {args.sessions} sessions (20 turns each), median of {args.runs}")
    for label, seconds, size in rows:
        print(f"  {label:40s} {seconds * 1000:7.1f} ms  {size / 1024:7.1f} KiB")
    print(
        f"  server RSS idle {idle['VmRSS'] / 1024:.1f} MiB; after the listings "
        f"{busy['VmRSS'] / 1024:.1f} MiB (peak {busy['VmHWM'] / 1024:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
