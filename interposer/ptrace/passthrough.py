"""Passthrough: the real system calls run against a real device node; the
tracer only watches and reports them to the recorder hook (valgrind-mmt's
approach, with ptrace instead of a valgrind tool).

A device is any node whose path matches the glob (``/dev/ptmx``,
``/dev/dri/card*``), lexically or after symlinks.  Reported: open, close,
dup, every ioctl on such an fd (the argument read before the call and, for
requests that write it, after - sized by the _IOC encoding, or for the old
'T' requests by the table in hooks.py), mmap of such an fd and munmap
overlapping such a mapping.  Across fork the child shares the real open
file, so its fds stay devices; across exec, fds without O_CLOEXEC do too.
"""

from __future__ import annotations

import os
import stat

from interposer.ptrace import paths, seccomp
from interposer.ptrace import syscalls as sc
from interposer.ptrace.frontend import Frontend
from interposer.ptrace.hooks import arg_size
from interposer.ptrace.tracer import FdEntry, Thread
from pydriver.errors import DriverError
from structs import ioc


class Passthrough(Frontend):
    mode = seccomp.MODE_PASSTHROUGH

    def __init__(self, tracer, pattern: str):
        super().__init__(tracer)
        self.pattern = pattern

    def more_handlers(self) -> dict:
        return {
            "open": self.sys_open, "creat": self.sys_open, "openat": self.sys_openat,
            "openat2": self.sys_openat,
            "ioctl": self.sys_ioctl, "mmap": self.sys_mmap, "munmap": self.sys_munmap,
        }

    def sys_open(self, th, regs):                       # open, creat
        creat = regs.orig_rax == sc.NR["creat"]
        self._open(th, sc.AT_FDCWD, regs.rdi, os.O_CREAT | os.O_WRONLY | os.O_TRUNC if creat else sc.s32(regs.rsi))

    def sys_openat(self, th, regs):                     # openat, openat2 (flags in open_how: not read)
        self._open(th, sc.s32(regs.rdi), regs.rsi, sc.s32(regs.rdx) if regs.orig_rax == sc.NR["openat"] else 0)

    def _open(self, th: Thread, dirfd: int, path_addr: int, flags: int) -> None:
        raw = paths.read_cstring(th.tid, path_addr)
        path = None if raw is None else paths.glob_match(th.tid, dirfd, raw, self.pattern)
        if path is None:
            self.t.resume(th)
            return
        proc = th.proc
        ev = self.event(th, "open", path=path, flags=flags)

        def done(th: Thread, regs) -> bool:
            fd = sc.s64(regs.rax)
            st = paths.fd_stat(th.tid, fd) if fd >= 0 else None
            if st is not None:
                minor = os.minor(st.st_rdev) if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else None
                proc.fds[fd] = FdEntry((st.st_dev, st.st_ino), minor=minor, path=path)
                if ev is not None:
                    ev.minor = minor
            if ev is not None:
                ev.fd = fd
            self.finish(ev, fd)
            return False

        self.t.at_exit(th, done)

    def sys_ioctl(self, th, regs):
        fd = sc.s32(regs.rdi)
        entry = th.proc.fds.get(fd)
        if entry is None or self.t.hook is None:
            self.t.resume(th)
            return
        req, argp = regs.rsi & 0xFFFFFFFF, regs.rdx
        size, direction = arg_size(req)
        mm = th.mm
        before = None
        if size:
            try:
                before = mm.read(argp, size)
            except DriverError:
                pass
        ev = self.event(th, "ioctl", fd=fd, path=entry.path, minor=entry.minor, request=req, arg=argp,
                        arg_before=before)

        def done(th: Thread, regs) -> bool:
            r = sc.s64(regs.rax)
            if r >= 0 and size and direction & ioc.READ:
                try:
                    ev.arg_after = mm.read(argp, size)
                except DriverError:
                    pass
            self.finish(ev, r)
            return False

        self.t.at_exit(th, done)

    def sys_mmap(self, th, regs):
        fd = sc.s32(regs.r8)
        proc = th.proc
        entry = proc.fds.get(fd)
        if entry is None:
            self.t.resume(th)
            return
        length = regs.rsi
        ev = self.event(th, "mmap", fd=fd, path=entry.path, minor=entry.minor, addr=regs.rdi, length=length,
                        prot=sc.s32(regs.rdx), flags=sc.s32(regs.r10), offset=regs.r9)

        def done(th: Thread, regs) -> bool:
            res = sc.s64(regs.rax)
            if not -4096 < res < 0:
                res = regs.rax
                proc.maps.append((res, res + _pages(length)))
            self.finish(ev, res)
            return False

        self.t.at_exit(th, done)

    def sys_munmap(self, th, regs):
        proc = th.proc
        start, end = regs.rdi, regs.rdi + _pages(regs.rsi)
        if not any(s < end and start < e for s, e in proc.maps):
            self.t.resume(th)
            return
        ev = self.event(th, "munmap", addr=start, length=end - start)

        def done(th: Thread, regs) -> bool:
            r = sc.s64(regs.rax)
            if r == 0:
                keep = []
                for s, e in proc.maps:
                    if e <= start or s >= end:
                        keep.append((s, e))
                    else:
                        keep.extend((a, b) for a, b in ((s, start), (end, e)) if b > a)
                proc.maps = keep
            self.finish(ev, r)
            return False

        self.t.at_exit(th, done)

    def exec_done(self, th: Thread) -> None:
        th.proc.maps = []
        super().exec_done(th)


def _pages(n: int) -> int:
    return (n + 4095) & ~4095
