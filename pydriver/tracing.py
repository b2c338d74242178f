"""What the driver tells a tracer (a recorder, in traces/recorder.py).

The driver calls these hooks at every crossing of the user/kernel boundary;
it never imports the trace format itself.  Call kinds match traces.format.
"""

from __future__ import annotations

from typing import Protocol

from pydriver.uaccess import UserMemory

OPEN, CLOSE, DUP, IOCTL, MMAP, MUNMAP = 1, 2, 3, 4, 5, 6
SNAP_SUBMIT, SNAP_SYNC = 0, 1


class Tracer(Protocol):
    def enter(self, call: int, fd: int, minor: int, req: int, arg=None, *, a0: int = 0, a1: int = 0,
              a2: int = 0, path: str | None = None) -> int: ...
    def exit(self, seq: int, call: int, fd: int, minor: int, req: int, ret: int, arg=None, *,
             a0: int = 0, a1: int = 0, a2: int = 0) -> None: ...
    def user(self, direction: int, addr: int, data: bytes) -> None: ...
    def user_at(self, direction: int, addr: int, local_addr: int, n: int) -> None: ...
    def ring(self, minor: int, direction: str, offset: int, data: bytes, ticks: int) -> None: ...
    def device(self, dev) -> None: ...
    def snapshot(self, point: int, maps) -> None: ...
    def forked(self) -> "Tracer": ...       # the tracer for a fork()ed child
    def close(self) -> None: ...


class TracedUserMemory(UserMemory):
    """A process's memory whose every transfer is reported to the tracer:
    copy payloads, module images, query answers - each byte the driver
    moved across the boundary."""

    def __init__(self, inner: UserMemory, tracer: Tracer):
        super().__init__(inner.pid)
        self.tracer = tracer

    def read_into(self, addr: int, local_addr: int, n: int) -> None:
        super().read_into(addr, local_addr, n)
        if n:
            self.tracer.user_at(0, addr, local_addr, n)

    def write_from(self, addr: int, local_addr: int, n: int) -> None:
        super().write_from(addr, local_addr, n)
        if n:
            self.tracer.user_at(1, addr, local_addr, n)

    # Every transfer must pass through read_into/write_from above; the base
    # class's fast write of a bytes object would not.
    write = UserMemory._write_via_address
