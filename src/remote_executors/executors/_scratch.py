"""Attachments on this machine: a private scratch directory per process.

``LocalExecutor`` (and any executor whose processes see the local file system)
writes each :class:`~remote_executors.executors.base.Attachment` here and
removes the directory once the process has exited.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Mapping
from signal import Signals

from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from ..errors import InvalidInput
from .base import Attachment

__all__ = ["ScratchProcess", "materialize", "remove_scratch", "unpack_tree"]


def materialize(attachments: Mapping[int, Attachment], host: str) -> tuple[str, dict[int, str]]:
    """Write the attachments into a new 0700 directory: (directory, index -> path)."""
    scratch = tempfile.mkdtemp(prefix="rx-att.")
    try:
        paths: dict[int, str] = {}
        for number, (index, attachment) in enumerate(sorted(attachments.items())):
            path = os.path.join(scratch, f"att{number}")
            if attachment.kind == "tree":
                os.mkdir(path, 0o700)
                unpack_tree(attachment.data, path, host=host)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(attachment.data)
            paths[index] = path
        return scratch, paths
    except BaseException:
        remove_scratch(scratch)
        raise


def unpack_tree(archive: bytes, target: str, *, host: str) -> None:
    """Unpack a tree attachment, refusing members that would land outside ``target``."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, host)
            if hasattr(tarfile, "data_filter"):
                # Python's own "data" filter (3.10.12+, 3.11.4+) as a second guard.
                tar.extractall(target, members=members, filter="data")
            else:  # pragma: no cover - older patch releases
                tar.extractall(target, members=members)  # noqa: S202 (checked)
    except tarfile.TarError as exc:
        raise InvalidInput(
            f"A tree attachment for {host} is not a tar archive: {exc}", host=host
        ) from exc


def _check_member(member: tarfile.TarInfo, host: str) -> None:
    name = member.name
    escapes = name.startswith("/") or ".." in name.split("/")
    if member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        escapes = escapes or member.linkname.startswith("/") or target.split("/")[0] == ".."
    elif not (member.isfile() or member.isdir()):
        escapes = True
    if escapes:
        raise InvalidInput(
            f"Refusing tree attachment member {name!r} for {host}: only relative files, "
            "directories and symlinks that stay inside the tree are allowed.",
            host=host,
        )


def remove_scratch(path: str) -> None:
    """Remove a scratch directory, read-only directories of a tree included."""
    for root, dirs, _ in os.walk(path):
        for name in dirs:  # before os.walk descends into them
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, name), stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)


class ScratchProcess(Process):
    """A local process whose attachments are removed once it has exited."""

    def __init__(self, process: Process, scratch: str) -> None:
        self._process = process
        self._scratch: str | None = scratch

    def _cleanup(self) -> None:
        if self._scratch is not None and self._process.returncode is not None:
            scratch, self._scratch = self._scratch, None
            remove_scratch(scratch)

    async def wait(self) -> int:
        try:
            return await self._process.wait()
        finally:
            self._cleanup()

    async def aclose(self) -> None:
        try:
            await self._process.aclose()
        finally:
            self._cleanup()

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()

    def send_signal(self, signal: Signals) -> None:
        self._process.send_signal(signal)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    @property
    def stdin(self) -> ByteSendStream | None:
        return self._process.stdin

    @property
    def stdout(self) -> ByteReceiveStream | None:
        return self._process.stdout

    @property
    def stderr(self) -> ByteReceiveStream | None:
        return self._process.stderr
