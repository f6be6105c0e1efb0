"""A small real file system for disk-full and read-only faults (needs root, as the e2e tier has)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def tmpfs(path: Path, size: str, uid: int = 0, gid: int = 0) -> Iterator[None]:
    """Mount a ``size`` tmpfs owned by ``uid:gid`` on ``path`` for the block."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    opts = f"size={size},mode=0700,uid={uid},gid={gid}"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)])
    assert done.returncode == 0, "mounting a tmpfs needs root (the e2e tier runs as root)"
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    """Change a mounted tmpfs's options (``ro``, ``rw``, ``size=...``)."""
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)
