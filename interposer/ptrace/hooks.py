"""The recorder's plug: one event per device-relevant system call.

The tracer calls ``hook.on_entry(ev)`` when a traced call on a device starts
(arguments known, ``arg_before`` read) and ``hook.on_exit(ev)`` when it ends
(``ret``, ``errno``, ``arg_after`` filled in) - the same object both times.
Hooks are always called from the tracer's main thread, in the order the
calls complete; a hook that raises is logged and detached, never fatal.

Events exist for the calls a recorder needs (valgrind-mmt's set): ``open``
(path, minor, fd), ``close``, ``dup`` (``fd`` -> ``newfd``), ``ioctl``
(request, argument bytes before and after, sized by :func:`arg_size`),
``mmap`` (addr, length, prot, flags, offset; ``ret`` is the address) and
``munmap``.  In emulation mode the driver answered; in passthrough mode a
real device did.

    rec = MemoryRecorder()
    status = run(["./app"], env, config, hook=rec)
    for ev in rec.events: print(ev)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from structs import ioc

LEGACY_SIZES = ioc.LEGACY_REQUESTS        # kept under its old name for callers


def arg_size(req: int) -> tuple[int, int]:
    """(bytes, direction) the request moves through its pointer argument."""
    return ioc.arg_size(req)


def request_name(req: int) -> str | None:
    legacy = LEGACY_SIZES.get(req & 0xFFFFFFFF)
    return legacy[0] if legacy else None


@dataclass(eq=False)
class SyscallEvent:
    pid: int                      # process (thread group) id
    tid: int                      # thread that made the call
    name: str                     # open, close, dup, ioctl, mmap, munmap
    fd: int = -1
    path: str | None = None       # open: the path as opened (normalised)
    minor: int | None = None      # emulation: which /dev/aicardN
    request: int | None = None    # ioctl
    arg: int = 0                  # ioctl: the argument (pointer or value)
    arg_before: bytes | None = None   # ioctl: argument bytes at entry (None: unreadable or no bytes)
    arg_after: bytes | None = None    # ioctl: argument bytes at exit, when the call wrote them
    newfd: int | None = None      # dup: the new descriptor
    addr: int = 0                 # mmap/munmap
    length: int = 0
    prot: int = 0
    flags: int = 0
    offset: int = 0
    ret: int | None = None        # >= 0, or -1 with errno set
    errno: int = 0
    t_entry: int = field(default_factory=time.monotonic_ns)
    t_exit: int = 0
    emulated: bool = True         # False: a real device answered (passthrough)

    def finish(self, result: int) -> None:
        """Set ret/errno from a raw kernel-style result (>= 0 or -errno)."""
        self.t_exit = time.monotonic_ns()
        failed = -4096 < result < 0 if self.name == "mmap" else result < 0
        if failed:
            self.ret, self.errno = -1, -result
        else:
            self.ret, self.errno = result, 0


class Hook:
    """Base class of recorders: override what you need."""

    def on_entry(self, ev: SyscallEvent) -> None:
        pass

    def on_exit(self, ev: SyscallEvent) -> None:
        pass


class MemoryRecorder(Hook):
    """Keeps every finished event in a list (until traces/ has a format)."""

    def __init__(self):
        self.events: list[SyscallEvent] = []

    def on_exit(self, ev: SyscallEvent) -> None:
        self.events.append(ev)

    def ioctls(self) -> list[SyscallEvent]:
        return [e for e in self.events if e.name == "ioctl"]


class LogHook(Hook):
    """One strace-like line per finished device call (``-v``)."""

    def __init__(self, write):
        self.write = write

    def on_exit(self, ev: SyscallEvent) -> None:
        self.write(describe(ev))


def describe(ev: SyscallEvent) -> str:
    res = f"{ev.ret}" if ev.errno == 0 else f"-1 errno {ev.errno}"
    if ev.name == "open":
        return f"[{ev.tid}] open({ev.path!r}) = {res}"
    if ev.name == "ioctl":
        req = request_name(ev.request) or str(ioc.decode(ev.request))
        b = ev.arg_before.hex() if ev.arg_before is not None else "-"
        a = ev.arg_after.hex() if ev.arg_after is not None else "-"
        return f"[{ev.tid}] ioctl({ev.fd}, {ev.request:#x} {req}, {b}) = {res} => {a}"
    if ev.name == "mmap":
        return (f"[{ev.tid}] mmap({ev.addr:#x}, {ev.length:#x}, {ev.prot}, {ev.flags:#x}, {ev.fd}, "
                f"{ev.offset:#x}) = {ev.ret:#x}" if ev.errno == 0 else f"[{ev.tid}] mmap(...) = {res}")
    if ev.name == "munmap":
        return f"[{ev.tid}] munmap({ev.addr:#x}, {ev.length:#x}) = {res}"
    if ev.name == "dup":
        return f"[{ev.tid}] dup({ev.fd}) = {res}"
    return f"[{ev.tid}] {ev.name}({ev.fd}) = {res}"
