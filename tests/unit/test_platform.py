"""What a binary needs and what a host offers (``_platform``), and ``ls``'s HOST:PATH."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from remote_executors import _sdk_compat
from remote_executors._platform import Platform, binary_platform, mismatch
from remote_executors.cli.ls import split_target


def elf(tmp: Path, machine: int, interpreter: bytes) -> Path:
    """A minimal 64-bit little-endian ELF header with one PT_INTERP entry."""
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5] = 2, 1
    struct.pack_into("<H", header, 18, machine)
    struct.pack_into("<Q", header, 32, 64)  # e_phoff
    struct.pack_into("<HH", header, 54, 56, 1)  # e_phentsize, e_phnum
    entry = bytearray(56)
    struct.pack_into("<I", entry, 0, 3)  # PT_INTERP
    struct.pack_into("<Q", entry, 8, 120)  # p_offset
    struct.pack_into("<Q", entry, 32, len(interpreter) + 1)  # p_filesz
    path = tmp / "bin"
    path.write_bytes(bytes(header) + bytes(entry) + interpreter + b"\0")
    return path


def test_elf_headers_say_cpu_and_c_library(tmp_path: Path) -> None:
    arm = binary_platform(elf(tmp_path, 183, b"/lib/ld-linux-aarch64.so.1"))
    assert (arm.system, arm.machine, arm.libc) == ("Linux", "aarch64", "glibc")
    musl = binary_platform(elf(tmp_path, 62, b"/lib/ld-musl-x86_64.so.1"))
    assert (musl.machine, musl.libc, musl.interpreter) == (
        "x86_64",
        "musl",
        "/lib/ld-musl-x86_64.so.1",
    )
    (tmp_path / "script").write_text("#!/bin/sh\n")
    with pytest.raises(ValueError, match="not an ELF or Mach-O"):
        binary_platform(tmp_path / "script")


def test_the_bundled_cli_is_read() -> None:
    bundled = _sdk_compat.bundled_cli()
    assert bundled is not None
    found = binary_platform(bundled)
    assert found.system in ("Linux", "Darwin") and found.machine in ("x86_64", "aarch64")


def test_mismatches_are_named() -> None:
    glibc = Platform("Linux", "x86_64", "glibc", interpreter="/lib64/ld-linux-x86-64.so.2")
    assert mismatch(glibc, Platform("Linux", "amd64", "glibc"), interpreter_there=True) is None
    assert "aarch64" in str(mismatch(glibc, Platform("Linux", "arm64"), interpreter_there=True))
    assert "Darwin" in str(mismatch(glibc, Platform("Darwin", "x86_64"), interpreter_there=True))
    assert "musl" in str(
        mismatch(glibc, Platform("Linux", "x86_64", "musl"), interpreter_there=False)
    )
    assert "ld-linux" in str(mismatch(glibc, Platform("Linux", "x86_64"), interpreter_there=False))
    assert str(Platform("Linux", "arm64", "glibc")) == "Linux aarch64 glibc"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("box", ("box", "~")),
        ("box:", ("box", "~")),
        ("box:~/code", ("box", "~/code")),
        ("box:/srv/a:b", ("box", "/srv/a:b")),
        ("ssh://local:code", ("ssh://local", "code")),
    ],
)
def test_ls_target(text: str, expected: tuple[str, str]) -> None:
    assert split_target(text) == expected
