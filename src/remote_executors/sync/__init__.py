"""Keeping session transcripts in step between a remote machine and the local disk.

The no-loss rules live here as pure, local building blocks: :mod:`._decide`
says what to do with one file, :mod:`._install` writes the local side
atomically and keeps diverged copies, :mod:`._lock` serializes syncs of one
session. The transfer layer and the public ``SessionSync`` come later; nothing
is public yet.
"""

from __future__ import annotations

__all__: list[str] = []
