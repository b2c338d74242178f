"""What both front-ends share: keeping each process's device-fd table in
step with close, close_range, dup, dup2, dup3 and fcntl(F_DUPFD*), and
re-checking it after exec (O_CLOEXEC, F_SETFD and close_range(CLOEXEC) are
not traced: exec is when they act, so the table is re-read from /proc then).

A subclass says what a device fd means (``closed``, ``duped``, ``inherit``)
and adds its own handlers.
"""

from __future__ import annotations

from interposer.ptrace import paths
from interposer.ptrace import syscalls as sc
from interposer.ptrace.hooks import SyscallEvent
from interposer.ptrace.tracer import FdEntry, Proc, Thread, Tracer


class Frontend:
    mode = ""
    ioctl_type = ord("A")

    def __init__(self, tracer: Tracer):
        self.t = tracer

    def handlers(self) -> dict:
        h = {
            "close": self.sys_close,
            "close_range": self.sys_close_range,
            "dup": self.sys_dup,
            "dup2": self.sys_dup2,
            "dup3": self.sys_dup2,
            "fcntl": self.sys_fcntl,
        }
        h.update(self.more_handlers())
        return {sc.NR[name]: fn for name, fn in h.items()}

    # -- for subclasses ---------------------------------------------------

    def more_handlers(self) -> dict:
        return {}

    def closed(self, th: Thread, fd: int, entry: FdEntry) -> None:
        """fd no longer refers to the device (closed, replaced, exec)."""

    def duped(self, th: Thread, old: int, new: int, entry: FdEntry) -> None:
        """new now refers to the same open file as old."""

    def inherit(self, entry: FdEntry) -> FdEntry:
        """The entry a forked child gets for an fd of its parent."""
        return entry

    def process_gone(self, proc: Proc) -> None:
        proc.fds.clear()

    def exec_done(self, th: Thread) -> None:
        """After exec: drop every fd that did not survive it."""
        proc = th.proc
        for fd, entry in list(proc.fds.items()):
            if paths.fd_identity(th.tid, fd) != entry.ident:
                del proc.fds[fd]
                self.closed(th, fd, entry)

    def event(self, th: Thread, name: str, **kw) -> SyscallEvent | None:
        """A hook event, or None when nobody listens (no cost then)."""
        if self.t.hook is None:
            return None
        ev = SyscallEvent(th.proc.tgid, th.tid, name, emulated=self.mode == "emulate", **kw)
        self.t.hook_entry(ev)
        return ev

    def finish(self, ev: SyscallEvent | None, result: int) -> None:
        if ev is not None:
            ev.finish(result)
            self.t.hook_exit(ev)

    # -- close ------------------------------------------------------------

    def sys_close(self, th: Thread, regs) -> None:
        fd = sc.s32(regs.rdi)
        entry = th.proc.fds.pop(fd, None)
        if entry is None:
            self.t.resume(th)
            return
        self.closed(th, fd, entry)
        ev = self.event(th, "close", fd=fd, path=entry.path, minor=entry.minor)
        if ev is None:
            self.t.resume(th)
        else:
            self.t.at_exit(th, lambda th, regs: self.finish(ev, sc.s64(regs.rax)))

    def sys_close_range(self, th: Thread, regs) -> None:
        first, last, flags = regs.rdi & 0xFFFFFFFF, regs.rsi & 0xFFFFFFFF, regs.rdx & 0xFFFFFFFF
        if not flags & sc.CLOSE_RANGE_CLOEXEC and first <= last:
            for fd in sorted(fd for fd in th.proc.fds if first <= fd <= last):
                entry = th.proc.fds.pop(fd)
                self.closed(th, fd, entry)
                self.finish(self.event(th, "close", fd=fd, path=entry.path, minor=entry.minor), 0)
        self.t.resume(th)

    # -- dup --------------------------------------------------------------

    def sys_dup(self, th: Thread, regs) -> None:
        self._dup(th, sc.s32(regs.rdi), None)

    def sys_dup2(self, th: Thread, regs) -> None:       # dup2 and dup3
        old, new = sc.s32(regs.rdi), sc.s32(regs.rsi)
        if old == new:
            self.t.resume(th)                           # dup2: no-op; dup3: EINVAL
            return
        self._dup(th, old, new)

    def sys_fcntl(self, th: Thread, regs) -> None:       # only F_DUPFD* reach here
        self._dup(th, sc.s32(regs.rdi), None)

    def _dup(self, th: Thread, old: int, new: int | None) -> None:
        proc = th.proc
        src = proc.fds.get(old)
        if src is None and (new is None or new not in proc.fds):
            self.t.resume(th)
            return
        ev = self.event(th, "dup", fd=old, path=src.path, minor=src.minor) if src is not None else None

        def done(th: Thread, regs) -> bool:
            r = sc.s64(regs.rax)
            if r >= 0:
                replaced = proc.fds.pop(r, None)
                if replaced is not None:
                    self.closed(th, r, replaced)
                if src is not None:
                    proc.fds[r] = src
                    self.duped(th, old, r, src)
            if ev is not None:
                ev.newfd = r if r >= 0 else None
            self.finish(ev, r)
            return False

        self.t.at_exit(th, done)
