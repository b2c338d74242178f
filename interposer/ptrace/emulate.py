"""Emulation: /dev/aicardN exist for the tracee, served by the Python driver
running in the tracer.

The device fd.  Opening a device node is rewritten, at the seccomp stop,
into ``openat(AT_FDCWD, "/proc/<tracer>/fd/<vram memfd>", O_RDWR | ...)``: the
tracee ends up holding a real fd on the device's VRAM memfd (a new open file
of it, so one per open, with lowest-free-number semantics).  Then:

* ``mmap`` of a buffer object runs natively: the tracer asks the driver for
  the BO's VRAM offset and rewrites the offset argument, so the tracee maps
  the very pages the simulated device reads and writes - zero copy.  The
  address hint is moved into the BO window so the filter can trace the
  matching ``munmap``.
* ``ioctl`` is answered by the tracer: argument copied in and out with
  process_vm_readv/writev, sized by the _IOC encoding (bad pointer -> EFAULT
  in the tracee), the real call skipped, the return value set.
* ``fstat``/``stat``/``statx``/``access`` report a character device, major 240,
  the same inode numbers and times as the preload library.
* The path rewrite needs the new path in the tracee's memory: it is written
  below the stack's red zone (rsp - 128 - n), as PRoot does, and every
  register changed is restored at the syscall exit.

Isolation (the price of a zero-copy fd): ``read``/``write``/``pread`` on a
device fd are not traced and reach the process's own VRAM at the file
offset; mmap, ioctl, ftruncate and fallocate are traced and checked.  One
process cannot reach another's devices: each traced process has a Driver of
its own, as each preloaded process has.

Processes.  A process gets its own Driver (own devices, own VRAM) on its
first open.  Across fork, inherited device fds answer EBADFD in the child
(the preload rule: the child may open the device again for a device of its
own).  Across exec, an fd without O_CLOEXEC keeps its context, like a real
kernel driver's file (the preload library cannot do this: its table dies
with the old image); every BO mapping is gone with the old address space.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import struct
import threading
import time

from interposer.ptrace import paths, seccomp
from interposer.ptrace import syscalls as sc
from interposer.ptrace.frontend import Frontend
from interposer.ptrace.tracer import MASK64, FdEntry, Proc, Thread
from pydriver.config import Config
from pydriver.driver import Driver
from pydriver.errors import DriverError
from pydriver.log import log
from pydriver.uaccess import UserMemory
from structs import ioc, uapi

AICARD_MAJOR = 240                  # preload.h
NODE_INO_BASE = 0xA1CA0000          # preload.c: st_ino of /dev/aicardN
RED_ZONE = 128
MAP_FIXED = 0x10
MAP_FIXED_NOREPLACE = 0x100000
O_ACCMODE_KEEP = os.O_CLOEXEC | os.O_NONBLOCK
WINDOW_ALIGN = 2 << 20

# struct stat of the x86_64 kernel ABI (144 bytes)
_STAT = struct.Struct("<QQQIIIiQqqqQQQQQQ24x")
# struct statx (256 bytes): up to stx_dev_minor, then zeros
_STATX = struct.Struct("<IIQIIIHHQQQQqI4xqI4xqI4xqI4xIIII112x")
STATX_BASIC_STATS = 0x7FF


class Emulator(Frontend):
    mode = seccomp.MODE_EMULATE
    ioctl_type = uapi.IOCTL_TYPE

    def __init__(self, tracer, config: Config, driver_tracer=None):
        super().__init__(tracer)
        self.config = config
        self.node_time = int(time.time())
        self._warned: set = set()
        # driver_tracer(pid, tid) -> a pydriver.tracing.Tracer (a trace
        # Recorder) for the Driver of process pid, or None; tid() names the
        # tracee thread whose call the driver is running (the driver's own
        # threads are the tracer's, not the program's).
        self.driver_tracer = driver_tracer
        self.current = threading.local()

    def more_handlers(self) -> dict:
        return {
            "open": self.sys_open, "creat": self.sys_creat, "openat": self.sys_openat,
            "openat2": self.sys_openat2,
            "stat": self.sys_stat, "lstat": self.sys_stat, "fstat": self.sys_fstat,
            "newfstatat": self.sys_newfstatat, "statx": self.sys_statx,
            "access": self.sys_access, "faccessat": self.sys_faccessat, "faccessat2": self.sys_faccessat,
            "getxattr": self.sys_getxattr, "lgetxattr": self.sys_getxattr,
            "fgetxattr": self.sys_fgetxattr, "getxattrat": self.sys_getxattrat,
            "listxattr": self.sys_listxattr, "llistxattr": self.sys_listxattr,
            "flistxattr": self.sys_flistxattr, "listxattrat": self.sys_listxattrat,
            "ftruncate": self.sys_ftruncate, "fallocate": self.sys_fallocate,
            "ioctl": self.sys_ioctl, "mmap": self.sys_mmap, "munmap": self.sys_munmap,
        }

    # -- per-process driver -----------------------------------------------

    def driver(self, proc: Proc) -> Driver:
        if proc.driver is None:
            rec = self.driver_tracer(proc.tgid, self.tid) if self.driver_tracer is not None else None
            proc.driver = Driver(self.config, mm=UserMemory(proc.tgid), tracer=rec)
        return proc.driver

    def tid(self) -> int:
        """The tracee thread on whose behalf the calling thread runs the driver."""
        return getattr(self.current, "tid", 0)

    def on_behalf(self, th: Thread) -> Driver:
        self.current.tid = th.tid
        return self.driver(th.proc)

    def closed(self, th: Thread, fd: int, entry: FdEntry) -> None:
        if not entry.inherited and th.proc.driver is not None:
            self.on_behalf(th).close(fd)

    def duped(self, th: Thread, old: int, new: int, entry: FdEntry) -> None:
        if not entry.inherited and th.proc.driver is not None:
            self.on_behalf(th).dup(old, new)

    def inherit(self, entry: FdEntry) -> FdEntry:
        return FdEntry(entry.ident, minor=entry.minor, path=entry.path, inherited=True)

    def exec_done(self, th: Thread) -> None:
        proc = th.proc
        if proc.driver is not None:
            self.on_behalf(th).munmap(0, 1 << 57)   # the old address space is gone
        super().exec_done(th)

    def process_gone(self, proc: Proc) -> None:
        if proc.inflight:
            return                                  # again when its last worker returns
        drv, proc.driver = proc.driver, None
        fds, proc.fds = proc.fds, {}
        if drv is None:
            return
        self.current.tid = proc.tgid
        for fd, entry in fds.items():
            if not entry.inherited:
                drv.close(fd)
        shutdown_driver(drv)
        if drv.tracer is not None:
            try:
                drv.tracer.close()
            except Exception as e:                  # never fatal for the tracer
                log.error("closing the recorder of %d: %s", proc.tgid, e)

    # -- open -------------------------------------------------------------

    def sys_open(self, th, regs):
        self._open(th, regs, sc.AT_FDCWD, regs.rdi, sc.s32(regs.rsi))

    def sys_creat(self, th, regs):
        self._open(th, regs, sc.AT_FDCWD, regs.rdi, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)

    def sys_openat(self, th, regs):
        self._open(th, regs, sc.s32(regs.rdi), regs.rsi, sc.s32(regs.rdx))

    def sys_openat2(self, th, regs):
        self._open(th, regs, sc.s32(regs.rdi), regs.rsi, None)

    def _open(self, th: Thread, regs, dirfd: int, path_addr: int, flags: int | None) -> None:
        raw = paths.read_cstring(th.tid, path_addr)
        minor = None if raw is None else paths.device_minor(th.tid, dirfd, raw, self.config.devices)
        if minor is None:
            self.t.resume(th)                       # not ours: the kernel answers
            return
        if flags is None:                           # openat2: flags are in struct open_how
            try:
                flags = int.from_bytes(th.mm.read(regs.rdx, 8), "little")
            except DriverError:
                self.t.skip(th, -errno.EFAULT)
                return
        ev = self.event(th, "open", path=f"/dev/aicard{minor}", minor=minor, flags=flags)
        err = 0
        if flags & os.O_CREAT and flags & os.O_EXCL:
            err = errno.EEXIST
        elif flags & os.O_DIRECTORY:
            err = errno.ENOTDIR
        proc = th.proc
        if not err:
            try:
                dev = self.on_behalf(th).device(minor)
                node = f"/proc/{self.t.pid}/fd/{dev.vram.fd}".encode() + b"\0"
                ident = _ident(dev.vram.fd)
            except DriverError as e:
                err = e.errno
        if not err:
            scratch = (regs.rsp - RED_ZONE - len(node)) & ~15
            try:
                th.mm.write(scratch, node)
            except DriverError:
                log.error("open(/dev/aicard%d) in %d: no writable stack below rsp=%#x", minor, th.tid, regs.rsp)
                err = errno.ENOMEM
        if err:
            self.finish(ev, -err)
            self.t.skip(th, -err)
            return
        saved = (regs.orig_rax, regs.rdi, regs.rsi, regs.rdx, regs.r10)
        regs.orig_rax = sc.NR["openat"]
        regs.rdi = sc.AT_FDCWD & MASK64
        regs.rsi = scratch
        regs.rdx = os.O_RDWR | (flags & O_ACCMODE_KEEP)
        regs.r10 = 0

        def done(th: Thread, regs) -> bool:
            # All of it, the number too: a restarted call must be the caller's.
            regs.orig_rax, regs.rdi, regs.rsi, regs.rdx, regs.r10 = saved
            fd = sc.s64(regs.rax)
            if fd >= 0:
                stale = proc.fds.pop(fd, None)      # closed behind our back
                if stale is not None:
                    self.closed(th, fd, stale)
                r = self.on_behalf(th).open(minor, fd, flags)
                if r < 0:                           # only a driver bug gets here
                    log.error("driver refused open of aicard%d: %s (fd %d left open)", minor,
                              errno.errorcode.get(-r, r), fd)
                    regs.rax = r & MASK64
                    fd = r
                else:
                    proc.fds[fd] = FdEntry(ident, minor=minor, path=f"/dev/aicard{minor}")
            if ev is not None:
                ev.fd = fd
            self.finish(ev, fd)
            return True

        self.t.at_exit(th, done, regs_changed=True)

    # -- stat family ----------------------------------------------------------

    def _target(self, th: Thread, dirfd: int, path_addr: int, flags: int) -> FdEntry | int | None:
        """The device a path (or, with AT_EMPTY_PATH and "", dirfd) names:
        an FdEntry for an fd, a minor for a path, None if not ours."""
        raw = paths.read_cstring(th.tid, path_addr) if path_addr else b""
        if raw == b"":
            return th.proc.fds.get(dirfd) if flags & sc.AT_EMPTY_PATH else None
        if raw is None:
            return None
        return paths.device_minor(th.tid, dirfd, raw, self.config.devices)

    def _answer_stat(self, th: Thread, target, buf: int, statx: bool = False) -> None:
        if target is None:
            self.t.resume(th)
            return
        minor = target.minor if isinstance(target, FdEntry) else target
        data = self.statx_bytes(minor) if statx else self.stat_bytes(minor)
        try:
            th.mm.write(buf, data)
            self.t.skip(th, 0)
        except DriverError:
            self.t.skip(th, -errno.EFAULT)

    def sys_stat(self, th, regs):                       # stat, lstat
        self._answer_stat(th, self._target(th, sc.AT_FDCWD, regs.rdi, 0), regs.rsi)

    def sys_fstat(self, th, regs):
        self._answer_stat(th, th.proc.fds.get(sc.s32(regs.rdi)), regs.rsi)

    def sys_newfstatat(self, th, regs):
        target = self._target(th, sc.s32(regs.rdi), regs.rsi, sc.s32(regs.r10))
        self._answer_stat(th, target, regs.rdx)

    def sys_statx(self, th, regs):
        target = self._target(th, sc.s32(regs.rdi), regs.rsi, sc.s32(regs.rdx))
        self._answer_stat(th, target, regs.r8, statx=True)

    def _access(self, th: Thread, dirfd: int, path_addr: int, mode: int) -> None:
        raw = paths.read_cstring(th.tid, path_addr)
        if raw is None or paths.device_minor(th.tid, dirfd, raw, self.config.devices) is None:
            self.t.resume(th)
            return
        # rw-rw-rw-: readable and writable by everyone, never executable
        self.t.skip(th, -errno.EACCES if mode & os.X_OK else 0)

    def sys_access(self, th, regs):
        self._access(th, sc.AT_FDCWD, regs.rdi, sc.s32(regs.rsi))

    def sys_faccessat(self, th, regs):                  # faccessat, faccessat2
        self._access(th, sc.s32(regs.rdi), regs.rsi, sc.s32(regs.rdx))

    # A device node has no extended attributes: get -> ENODATA, list -> empty.

    def _xattr(self, th: Thread, target, result: int) -> None:
        if target is None:
            self.t.resume(th)
        else:
            self.t.skip(th, result)

    def sys_getxattr(self, th, regs):                   # getxattr, lgetxattr
        self._xattr(th, self._target(th, sc.AT_FDCWD, regs.rdi, 0), -errno.ENODATA)

    def sys_fgetxattr(self, th, regs):
        self._xattr(th, th.proc.fds.get(sc.s32(regs.rdi)), -errno.ENODATA)

    def sys_getxattrat(self, th, regs):
        self._xattr(th, self._target(th, sc.s32(regs.rdi), regs.rsi, sc.s32(regs.rdx)), -errno.ENODATA)

    def sys_listxattr(self, th, regs):                  # listxattr, llistxattr
        self._xattr(th, self._target(th, sc.AT_FDCWD, regs.rdi, 0), 0)

    def sys_flistxattr(self, th, regs):
        self._xattr(th, th.proc.fds.get(sc.s32(regs.rdi)), 0)

    def sys_listxattrat(self, th, regs):
        self._xattr(th, self._target(th, sc.s32(regs.rdi), regs.rsi, sc.s32(regs.rdx)), 0)

    def stat_bytes(self, minor: int) -> bytes:
        t = self.node_time
        return _STAT.pack(os.makedev(0, 6), NODE_INO_BASE + minor, 1, stat_mod.S_IFCHR | 0o666, 0, 0, 0,
                          os.makedev(AICARD_MAJOR, minor), 0, 4096, 0, t, 0, t, 0, t, 0)

    def statx_bytes(self, minor: int) -> bytes:
        t = self.node_time
        return _STATX.pack(STATX_BASIC_STATS, 4096, 0, 1, 0, 0, stat_mod.S_IFCHR | 0o666, 0,
                           NODE_INO_BASE + minor, 0, 0, 0,
                           t, 0, 0, 0, t, 0, t, 0,              # atime, btime, ctime, mtime
                           AICARD_MAJOR, minor, 0, 6)

    # -- calls a character device refuses ---------------------------------------

    def sys_ftruncate(self, th, regs):
        self._refuse(th, sc.s32(regs.rdi), errno.EINVAL)

    def sys_fallocate(self, th, regs):
        self._refuse(th, sc.s32(regs.rdi), errno.ENODEV)

    def _refuse(self, th: Thread, fd: int, err: int) -> None:
        if fd in th.proc.fds:
            self.t.skip(th, -err)
        else:
            self.t.resume(th)

    # -- ioctl ----------------------------------------------------------------

    def sys_ioctl(self, th, regs):
        fd = sc.s32(regs.rdi)
        entry = th.proc.fds.get(fd)
        if entry is None:
            self.t.resume(th)
            return
        req, argp = regs.rsi & 0xFFFFFFFF, regs.rdx
        size, direction = ioc.ioc_size(req), ioc.ioc_dir(req)
        mm = th.mm
        before = None
        if size and (self.t.hook is not None or direction & ioc.WRITE):
            try:
                before = mm.read(argp, size)
            except DriverError:
                pass
        ev = self.event(th, "ioctl", fd=fd, minor=entry.minor, request=req, arg=argp, arg_before=before)
        if entry.inherited:
            self.finish(ev, -errno.EBADFD)
            self.t.skip(th, -errno.EBADFD)
            return
        # The driver sees what the preload library gives it: the argument
        # copied in for _IOC_WRITE (or a fault), zeros otherwise.
        fault = bool(size and direction & ioc.WRITE and before is None)
        buf = bytearray(before) if size and direction & ioc.WRITE and before is not None else bytearray(size)
        drv = self.driver(th.proc)
        tid = th.tid

        def work() -> int:
            self.current.tid = tid
            ret = drv.ioctl(fd, req, buf, fault, argp)
            if ret >= 0 and size and direction & ioc.READ:
                try:
                    mm.write(argp, buf)
                except DriverError:
                    ret = -errno.EFAULT
                if ev is not None:
                    ev.arg_after = bytes(buf)
            return ret

        self.t.serve(th, work, (lambda r: self.finish(ev, r)) if ev is not None else None)

    # -- mmap / munmap ----------------------------------------------------------

    def sys_mmap(self, th, regs):
        fd = sc.s32(regs.r8)
        proc = th.proc
        entry = proc.fds.get(fd)
        if entry is None:
            self.t.resume(th)
            return
        addr, length, prot, flags, offset = regs.rdi, regs.rsi, sc.s32(regs.rdx), sc.s32(regs.r10), regs.r9
        ev = self.event(th, "mmap", fd=fd, minor=entry.minor, addr=addr, length=length, prot=prot,
                        flags=flags, offset=offset)
        if entry.inherited:
            self.finish(ev, -errno.EBADFD)
            self.t.skip(th, -errno.EBADFD)
            return
        drv = self.on_behalf(th)
        r, vram_fd, vram_off = drv.mmap(fd, length, prot, flags, offset)
        if r >= 0 and _ident(vram_fd) != entry.ident:
            r = -errno.EINVAL                       # cannot happen: the fd is that device's memfd
        if r < 0:
            self.finish(ev, r)
            self.t.skip(th, r)
            return
        saved = (regs.rdi, regs.r9)
        regs.r9 = vram_off
        if addr == 0 and not flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            regs.rdi = proc.window_next
            proc.window_next += _align(length, WINDOW_ALIGN) + WINDOW_ALIGN

        def done(th: Thread, regs) -> bool:
            regs.rdi, regs.r9 = saved
            res = sc.s64(regs.rax)
            if not -4096 < res < 0:
                res = regs.rax
                self.current.tid = th.tid
                drv.mapped(fd, res, length, offset)
                if not seccomp.BO_WINDOW_START <= res < seccomp.BO_WINDOW_END and "window" not in self._warned:
                    self._warned.add("window")
                    log.warning("BO mapped at %#x, outside the traced window: its munmap goes unseen", res)
            self.finish(ev, res)
            return True

        self.t.at_exit(th, done, regs_changed=True)

    def sys_munmap(self, th, regs):                     # only inside the BO window
        proc = th.proc
        addr, length = regs.rdi, _align(regs.rsi, 4096)
        if proc.driver is None:
            self.t.resume(th)
            return
        ev = self.event(th, "munmap", addr=addr, length=length)

        def done(th: Thread, regs) -> bool:
            r = sc.s64(regs.rax)
            if r == 0 and proc.driver is not None:
                self.on_behalf(th).munmap(addr, length)
            self.finish(ev, r)
            return False

        self.t.at_exit(th, done)


def shutdown_driver(drv: Driver) -> None:
    """Release a dead process's devices (VRAM memfds and their mappings)."""
    try:
        drv.shutdown()
    except Exception as e:                          # never fatal for the tracer
        log.debug("releasing the devices of a dead process: %s", e)


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _align(n: int, a: int) -> int:
    return (n + a - 1) & ~(a - 1)
