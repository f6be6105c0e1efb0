"""What the "remote" side of the loopback bed costs: CPU by kind of process, and forks.

The bed's sshd and everything under it stand for the remote machine. Its CPU
is split into sshd's own processes (relaying the channels, heartbeats
included) and the account's job processes (bootstrap and supervisor shells,
their watchdogs and relays, followers, the stub CLIs), each process counted
with the children it reaped, so a `sleep` that lived and died inside the
window counts for the shell that waited for it.

Forks are counted exactly with the kernel's process-events connector
(netlink, root only): every fork whose parent is in the remote tree, by the
parent's command name. A fork-per-second loop is what makes an idle session
cost CPU there; the count shows it even where the ticks are too few to read.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

from bench_concurrent_sessions import stat_fields

_NETLINK_CONNECTOR = 11
_CN_IDX_PROC = 1
_CN_VAL_PROC = 1
_PROC_CN_MCAST_LISTEN = 1
_PROC_EVENT_FORK = 0x00000001
_PROC_EVENT_EXIT = 0x80000000
_NLMSG_DONE = 3
_HEADERS = 16 + 20  # nlmsghdr, cn_msg: then struct proc_event


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                children.setdefault(int(stat_fields(name)[1]), []).append(int(name))
            except (OSError, ValueError, IndexError):
                continue
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_usage(root: int) -> dict[int, tuple[str, int]]:
    """pid -> (command name, own + reaped children's CPU ticks) under ``root``."""
    usage = {}
    for pid in descendants(root):
        try:
            rest = stat_fields(str(pid))
        except (OSError, ValueError, IndexError):
            continue
        usage[pid] = (comm(pid), sum(int(v) for v in rest[11:15]))
    return usage


@dataclass
class Split:
    """CPU ticks over a window: sshd's processes and the account's job processes."""

    sshd: int = 0
    jobs: int = 0
    by_command: Counter[str] = field(default_factory=Counter)


def split(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]]) -> Split:
    out = Split()
    for pid, (name, ticks) in after.items():
        start = before.get(pid, (name, 0))[1]
        used = max(0, ticks - start)
        if name.startswith("sshd"):
            out.sshd += used
        else:
            out.jobs += used
        out.by_command[name] += used
    return out


class ForkCounter:
    """Counts forks under ``root`` while running (a thread reads process events)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.forks: Counter[str] = Counter()  # by the parent's command name
        self.lost = False  # the socket overflowed: some events were dropped
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_CONNECTOR)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sock.bind((0, _CN_IDX_PROC))
        self._sock.settimeout(0.2)
        self._members: set[int] = set()
        self._thread = threading.Thread(target=self._read, name="fork-counter", daemon=True)

    def __enter__(self) -> ForkCounter:
        op = struct.pack("I", _PROC_CN_MCAST_LISTEN)
        cn = struct.pack("IIIIHH", _CN_IDX_PROC, _CN_VAL_PROC, 0, 0, len(op), 0) + op
        self._sock.send(struct.pack("IHHII", 16 + len(cn), _NLMSG_DONE, 0, 0, 0) + cn)
        # Subscribed first, listed second: a fork in between is seen either way.
        self._members = descendants(self.root)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def total(self) -> int:
        return sum(self.forks.values())

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:  # ENOBUFS: events dropped while we were slow
                self.lost = True
                continue
            at = 0
            while at + _HEADERS + 16 <= len(data):
                length = struct.unpack_from("I", data, at)[0]
                what = struct.unpack_from("I", data, at + _HEADERS)[0]
                body = at + _HEADERS + 16  # after what, cpu, timestamp
                if what == _PROC_EVENT_FORK:
                    _ppid, parent, child, child_tgid = struct.unpack_from("iiii", data, body)
                    if parent in self._members and child == child_tgid:  # a process, no thread
                        self._members.add(child)
                        self.forks[comm(parent)] += 1
                elif what == _PROC_EVENT_EXIT:
                    pid, tgid = struct.unpack_from("ii", data, body)
                    if pid == tgid:
                        self._members.discard(pid)
                at += max(length, 1) if length else len(data)
