"""What a CLI binary needs to run, and what a machine offers: OS, CPU, C library.

The bundled Claude Code CLI is one native executable per platform. Before it
is copied to another machine, its header says what it was built for (ELF on
Linux: machine and program interpreter; Mach-O on macOS: CPU type), and the
machine says what it is (``uname``, its C library, whether that interpreter
exists there). :func:`mismatch` compares the two.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

import attrs

__all__ = ["Platform", "binary_platform", "mismatch", "normal_machine"]

#: ``uname -m`` spellings of the same CPU.
_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "x64": "x86_64"}
#: ELF ``e_machine`` values.
_ELF_MACHINES = {62: "x86_64", 183: "aarch64", 3: "i686", 40: "armv7l", 243: "riscv64"}
#: Mach-O ``cputype`` values (64-bit).
_MACHO_CPUS = {0x01000007: "x86_64", 0x0100000C: "aarch64"}


def normal_machine(machine: str) -> str:
    """``arm64`` and ``aarch64`` are one CPU; so are ``amd64`` and ``x86_64``."""
    return _MACHINE_ALIASES.get(machine.lower(), machine.lower())


@attrs.frozen
class Platform:
    """An OS (``uname -s``), a CPU (``uname -m``, normalised) and a C library."""

    system: str
    machine: str = attrs.field(converter=normal_machine)
    libc: str = ""
    """``"glibc"``, ``"musl"``, or ``""`` (none needed / not known)."""
    interpreter: str = ""
    """For a binary: the ELF program interpreter it needs (``/lib64/ld-linux-x86-64.so.2``)."""

    def __str__(self) -> str:
        return " ".join(p for p in (self.system, self.machine, self.libc) if p)


def binary_platform(path: str | os.PathLike[str]) -> Platform:
    """The platform the executable at ``path`` was built for (from its header).

    Raises ``ValueError`` when the file is neither ELF nor 64-bit Mach-O.
    """
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] == b"\x7fELF":
            return _elf(f, head)
        if head[:4] in (b"\xcf\xfa\xed\xfe", b"\xfe\xed\xfa\xcf"):
            order = "<" if head[:4] == b"\xcf\xfa\xed\xfe" else ">"
            (cpu,) = struct.unpack_from(order + "I", head, 4)
            return Platform("Darwin", _MACHO_CPUS.get(cpu, f"cpu-{cpu:#x}"))
    raise ValueError(f"{os.fspath(path)} is not an ELF or Mach-O executable")


def _elf(f: BinaryIO, head: bytes) -> Platform:
    is64 = head[4] == 2
    order = "<" if head[5] == 1 else ">"
    (machine,) = struct.unpack_from(order + "H", head, 18)
    if is64:
        phoff, phentsize, phnum = (
            struct.unpack_from(order + "Q", head, 32)[0],
            *struct.unpack_from(order + "HH", head, 54),
        )
    else:
        phoff, phentsize, phnum = (
            struct.unpack_from(order + "I", head, 28)[0],
            *struct.unpack_from(order + "HH", head, 42),
        )
    interpreter = ""
    for index in range(min(phnum, 64)):
        f.seek(phoff + index * phentsize)
        entry = f.read(phentsize)
        (p_type,) = struct.unpack_from(order + "I", entry, 0)
        if p_type != 3:  # PT_INTERP
            continue
        word = "Q" if is64 else "I"
        offset_at, size_at = (8, 32) if is64 else (4, 16)
        (offset,) = struct.unpack_from(order + word, entry, offset_at)
        (size,) = struct.unpack_from(order + word, entry, size_at)
        f.seek(offset)
        interpreter = f.read(min(size, 4096)).split(b"\0")[0].decode("utf-8", "replace")
        break
    libc = "musl" if "musl" in interpreter else ("glibc" if interpreter else "")
    return Platform(
        "Linux", _ELF_MACHINES.get(machine, f"elf-{machine}"), libc, interpreter=interpreter
    )


def mismatch(binary: Platform, host: Platform, *, interpreter_there: bool) -> str | None:
    """Why ``binary`` cannot run on ``host`` (None: it can).

    ``interpreter_there``: the binary's program interpreter exists on the host
    (the one thing a dynamically linked ELF file cannot start without).
    """
    if binary.system != host.system:
        return f"it is built for {binary.system}, and the host runs {host.system}"
    if binary.machine != host.machine:
        return f"it is built for {binary.machine} CPUs, and the host's is {host.machine}"
    if binary.libc and host.libc and binary.libc != host.libc:
        return f"it needs {binary.libc}, and the host's C library is {host.libc}"
    if binary.interpreter and not interpreter_there:
        return f"it needs {binary.interpreter}, which the host does not have"
    return None
