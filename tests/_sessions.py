"""A session as e2e tests look at it: its transcript on both sides of the bed (both are on
this machine), the texts the model said."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from claude_agent_sdk import AssistantMessage, TextBlock

from remote_executors.paths import project_dir_from_cwd
from remote_executors.testing.plugin import Project
from remote_executors.testing.sshd import RemoteAccount, SSHTestBed


def project_dirs(
    bed: SSHTestBed, account: RemoteAccount, project: Project, config: Path
) -> tuple[Path, Path]:
    """The project's session directory there and here (``config``: the local config dir)."""
    remote = bed.remote_home(account) / ".claude" / "projects"
    remote /= project_dir_from_cwd(os.path.realpath(project.remote))
    local = config / "projects" / project_dir_from_cwd(os.path.realpath(project.local))
    return remote, local


def transcripts(
    bed: SSHTestBed, account: RemoteAccount, project: Project, config: Path, sid: str
) -> tuple[bytes, bytes]:
    """Session ``sid``'s transcript there and here."""
    remote, local = project_dirs(bed, account, project, config)
    return (remote / f"{sid}.jsonl").read_bytes(), (local / f"{sid}.jsonl").read_bytes()


def texts(messages: list[Any]) -> list[str]:
    """The assistant's text blocks, in order."""
    return [
        b.text
        for m in messages
        if isinstance(m, AssistantMessage)
        for b in m.content
        if isinstance(b, TextBlock)
    ]
