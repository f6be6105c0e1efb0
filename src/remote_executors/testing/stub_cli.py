"""A stand-in for the Claude Code CLI on the remote side, for load tests.

``stub_cli.sh`` (POSIX sh and sed) answers the SDK's control requests and each
user message with an init, an assistant text and a result, appends the turn to
the session's transcript, and otherwise sleeps in ``read``. Many sessions
through it cost the remote almost nothing, so what is measured is the local
side: the executor, the SDK seam, the live follower. Point a session at it
with ``ClaudeAgentOptions(cli_path=...)``::

    path = install_stub_cli(account)        # on an SSHTestBed account
    options = ClaudeAgentOptions(cwd=project, cli_path=str(path))
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .sshd import RemoteAccount

#: The script itself, shipped with the package.
STUB_CLI = Path(__file__).with_name("stub_cli.sh")


def install_stub_cli(account: RemoteAccount, rel: str = ".local/bin/claude-stub") -> Path:
    """Copy the stub into ``account``'s home (owned by it, executable); its path."""
    target = account.home / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STUB_CLI, target)
    target.chmod(0o755)
    if os.getuid() == 0 and account.separate_user:
        for path in [target, *target.relative_to(account.home).parents]:
            os.chown(account.home / path, account.uid, account.gid)
    return target
