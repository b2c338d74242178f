"""The driver's front door: file descriptors in, kernel-style answers out.

Both front-ends (the preload library's glue, and the ptrace tracer) call the
same methods with plain values and buffers.  Every method returns >= 0 or
-errno and never raises: this is the boundary where a driver bug becomes a
log line and EIO instead of a dead host process.

fd semantics follow Linux: an fd refers to an open file (one context);
dup() makes another fd for the same file; the context dies when its last fd
is closed.  A buffer object still mapped by the process outlives both its
handle and its context until it is unmapped, as a GEM object does.

After fork() the child must not touch the parent's devices (their VRAM is a
shared memfd: the child's allocations would land in the parent's buffers).
Device fds inherited by the child answer EBADFD; the child may open the
device again and gets a fresh device of its own.

A Driver is the front end of one process: its fd table, its mappings, its
user memory.  The devices behind it come from a ``Devices`` table: its own
(embedded and ptrace modes), or one the daemon (pydriver/server.py) shares
between the Drivers of all its client processes, so they see the same VRAM,
the same contexts table and the same IPC tokens.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import logging
import mmap as mmap_mod
import os
import threading
import traceback
from dataclasses import dataclass

from pydriver import copythreads, ioctls, tracing
from pydriver.config import Config
from pydriver.context import Context
from pydriver.device import Device
from pydriver.errors import DriverError
from pydriver.log import configure as configure_log
from pydriver.log import log
from pydriver.uaccess import UserMemory
from structs import describe, ioc, uapi
from structs.layout import LayoutError


@dataclass(eq=False)
class File:
    """An open file description of a device node."""

    ctx: Context
    refs: int = 1
    inherited: bool = False       # came through fork(): refused


@dataclass(eq=False)
class Mapping:
    start: int
    end: int
    bo: object
    device: Device
    bo_offset: int = 0            # byte of the BO mapped at start


class Devices:
    """The devices by minor, booted on first use.  An embedded Driver has a
    table of its own; the daemon makes one and gives it to the Driver of
    every client process, which is all it takes for them to share devices."""

    def __init__(self, config: Config):
        self.config = config
        self.lock = threading.Lock()
        self.by_minor: dict[int, Device] = {}
        self._routed: set[int] = set()

    def get(self, minor: int) -> Device:
        with self.lock:
            dev = self.by_minor.get(minor)
            if dev is None:
                try:
                    dev = Device(minor, self.config)
                except ValueError as e:       # e.g. AISHIM_FW names no known firmware
                    log.error("aicard%d does not boot: %s", minor, e)
                    raise DriverError(errno.ENODEV, str(e)) from None
                self.by_minor[minor] = dev
            return dev

    def route_ring(self, dev: Device) -> None:
        """Give every ring entry to the recorder of the context it belongs to
        (each entry names its context, asid, at byte 4): several processes
        record their own traces from one device."""
        with self.lock:
            if dev.minor in self._routed:
                return
            self._routed.add(dev.minor)

        def hook(direction, off, data, dev=dev):
            ctx = dev.contexts.get(int.from_bytes(data[4:8], "little")) if len(data) >= 8 else None
            tr = ctx.tracer if ctx is not None else None
            if tr is not None:
                tr.ring(dev.minor, direction, off, data, dev.clock.now())
        dev.set_ring_hook(hook)

    def close(self) -> None:
        with self.lock:
            for dev in self.by_minor.values():
                dev.close()
            self.by_minor = {}


class Driver:
    def __init__(self, config: Config | None = None, mm: UserMemory | None = None, tracer=None,
                 shared: Devices | None = None):
        """shared: devices owned by someone else (the daemon) and used by
        other Drivers too; None: this Driver boots its own."""
        self.config = config or Config.from_env()
        configure_log(self.config.log_level, self.config.log_file)
        self.tracer = tracer                  # pydriver.tracing.Tracer, or None
        self.mm = mm or UserMemory()
        if tracer is not None:
            self.mm = tracing.TracedUserMemory(self.mm, tracer)
            if hasattr(tracer, "split_copies"):       # the recorder stages big payloads like copies
                tracer.split_copies(copythreads.run)
        self.lock = threading.Lock()          # files, devices, mappings
        self.shared = shared
        self._table = shared if shared is not None else Devices(self.config)
        self.devices: dict[int, Device] = {}  # the devices this process has used
        self.files: dict[int, File] = {}
        self.maps: list[Mapping] = []         # sorted by start
        self.released = False                 # release(): the process is gone
        # Device address windows numbered per process (as in an embedded
        # driver), so a program gets the same addresses run after run.
        self._windows = itertools.count(0) if shared is not None else None
        self._unknown_logged: set = set()
        self._debug = log.isEnabledFor(logging.DEBUG)
        self._dispatch = self._dispatch_table()
        # What the preload glue calls per ioctl (req already 32 bits): with
        # no tracer, straight to the dispatcher.  Fixed for the Driver's life
        # (a forked child's tracer is still a tracer).
        self.ioctl_entry = self._ioctl if tracer is None else self.ioctl
        # A daemon makes a Driver per client and never forks: a hook would
        # keep every one of them alive.
        if shared is None and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_child)

    # -- helpers --------------------------------------------------------

    def device(self, minor: int) -> Device:
        with self.lock:
            dev = self.devices.get(minor)
            if dev is None:
                dev = self._table.get(minor)
                self.devices[minor] = dev
                if self.tracer is not None:
                    self.tracer.device(dev)
                    if self.shared is not None:
                        self.shared.route_ring(dev)
                    else:
                        tr = self.tracer
                        dev.set_ring_hook(lambda d, off, data: tr.ring(minor, d, off, data, dev.clock.now()))
            return dev

    def _minor(self, fd: int) -> int:
        f = self.files.get(fd)
        return f.ctx.device.minor if f is not None else 0xFFFF

    def _traced(self, call: int, fd: int, minor: int, req: int, what: str, fn, *args, **extra) -> int:
        """Run a guarded entry point, reported to the tracer at entry and exit."""
        t = self.tracer
        if t is None:
            return self._guard(what, fn, *args)
        seq = t.enter(call, fd, minor, req, **extra)
        r = self._guard(what, fn, *args)
        extra.pop("path", None)
        t.exit(seq, call, fd, minor, req, r, **extra)
        return r

    def _file(self, fd: int) -> File:
        f = self.files.get(fd)
        if f is None:
            raise DriverError(errno.EBADF, f"fd {fd} is not a device file")
        if f.inherited:
            raise DriverError(errno.EBADFD, f"fd {fd} was inherited across fork(); open the device again")
        return f

    def _guard(self, what: str, fn, *args) -> int:
        try:
            r = fn(*args)
            return 0 if r is None else r
        except DriverError as e:
            log.debug("%s -> %s", what, e)
            return -e.errno
        except Exception:
            log.error("driver bug in %s (returning EIO):\n%s", what, traceback.format_exc())
            return -errno.EIO

    # -- open / close / dup ---------------------------------------------

    def open(self, minor: int, fd: int, flags: int = 0) -> int:
        return self._traced(tracing.OPEN, fd, minor, flags, f"open(aicard{minor})", self._open, minor, fd,
                            path=f"/dev/aicard{minor}")

    def _open(self, minor: int, fd: int) -> int:
        if not 0 <= minor < self.config.devices:
            raise DriverError(errno.ENODEV, f"no device aicard{minor}")
        dev = self.device(minor)
        with dev.lock:
            ctx = Context(dev, self.mm, next(self._windows) if self._windows is not None else None)
            ctx.tracer = self.tracer
            dev.attach(ctx)
        with self.lock:
            if self.released:
                self._destroy_context(ctx)
                raise DriverError(errno.ESRCH, "the process is gone")
            self._drop(fd)
            self.files[fd] = File(ctx)
        log.debug("open(/dev/aicard%d) = %d (context %d)", minor, fd, ctx.id)
        return 0

    def dup(self, oldfd: int, newfd: int) -> int:
        def _dup():
            with self.lock:
                f = self.files.get(oldfd)
                if f is None:
                    raise DriverError(errno.EBADF, f"fd {oldfd} is not a device file")
                self._drop(newfd)
                f.refs += 1
                self.files[newfd] = f
        return self._traced(tracing.DUP, oldfd, self._minor(oldfd), 0, f"dup({oldfd}, {newfd})", _dup,
                            a0=newfd)

    def close(self, fd: int) -> int:
        def _close():
            with self.lock:
                self._drop(fd)
        return self._traced(tracing.CLOSE, fd, self._minor(fd), 0, f"close({fd})", _close)

    def _drop(self, fd: int) -> None:
        """Forget fd; destroy its context with the last reference (lock held)."""
        f = self.files.pop(fd, None)
        if f is None:
            return
        f.refs -= 1
        if f.refs == 0 and not f.inherited:
            self._destroy_context(f.ctx)

    def _destroy_context(self, ctx: Context) -> None:
        dev = ctx.device
        with dev.lock:
            # First the firmware forgets the context (and any of its commands
            # still queued), then nothing can touch its memory any more.
            # Threads waiting in it wake up (detach notifies) and give up.
            ctx.destroyed = True
            dev.detach(ctx)
            for loaded in ctx.modules.values():
                dev.vram.free(loaded.code_offset, loaded.code_size)
            for ev in ctx.events.values():
                dev.free_slot(ev.slot, ioctls.EVENT_SLOT)
            for q in ctx.queues.values():
                dev.free_slot(q.fence_offset, ioctls.FENCE_SLOT)
            for bo in list(ctx.bos.values()):
                ioctls.destroy_bo(ctx, bo)
            ctx.modules.clear()
            ctx.events.clear()
            ctx.queues.clear()
        log.debug("context %d destroyed", ctx.id)

    # -- ioctl ----------------------------------------------------------

    def ioctl(self, fd: int, req: int, buf, arg_fault: bool = False, argaddr: int = 0) -> int:
        req &= 0xFFFFFFFF
        t = self.tracer
        if t is None:
            return self._ioctl(fd, req, buf, arg_fault, argaddr)
        minor = self._minor(fd)
        name = getattr(ioctls.HANDLERS.get(req), "ioctl", None)
        name = name.name if name else ""
        # Host-mapped buffers cross no syscall: snapshot what changed in them
        # before work is submitted (inputs) and after it is waited for (results).
        if self.maps and name in _SUBMITS:
            t.snapshot(tracing.SNAP_SUBMIT, self.maps)
        # a2 = 1: the argument pointer itself could not be read.
        seq = t.enter(tracing.IOCTL, fd, minor, req, None if arg_fault else bytes(buf), a0=argaddr,
                      a2=int(arg_fault))
        r = self._ioctl(fd, req, buf, arg_fault, argaddr)
        if self.maps and name in _SYNCS:
            # Still inside the call: the snapshot belongs to it, whatever
            # other threads record meanwhile.
            t.snapshot(tracing.SNAP_SYNC, self.maps)
        t.exit(seq, tracing.IOCTL, fd, minor, req, r, bytes(buf) if r >= 0 else None, a0=argaddr,
               a2=int(arg_fault))
        return r

    def _ioctl(self, fd: int, req: int, buf, arg_fault: bool, argaddr: int) -> int:
        # The hot path: a couple of microseconds of budget, so one table
        # lookup gives everything (see _dispatch_table) and no helper is
        # called that is not needed (`aishim bench`, AISHIM_PROFILE).
        f = self.files.get(fd)
        if f is None or f.inherited:
            try:
                self._file(fd)
            except DriverError as e:
                return -e.errno
        entry = self._dispatch.get(req)
        if entry is None:
            return self._unknown(fd, req)
        fn, unpack, pack_into, name, io = entry
        if arg_fault:
            log.debug("%s(fd %d): bad argument pointer 0x%x", name, fd, argaddr)
            return -errno.EFAULT
        try:
            rec = unpack(buf)
        except LayoutError as e:
            log.debug("%s(fd %d): %s", name, fd, e)
            return -errno.EINVAL
        if self._debug:
            return self._ioctl_logged(f, fd, fn, rec, buf, pack_into, name, io)
        ctx = f.ctx
        with ctx.device.lock:
            try:
                if ctx.destroyed:             # closed by another thread meanwhile
                    return -errno.EBADF
                ret = fn(ctx, rec)
            except DriverError as e:
                return -e.errno
            except Exception:
                log.error("driver bug in %s (returning EIO):\n%s", name, traceback.format_exc())
                return -errno.EIO
        pack_into(buf, 0, rec)
        return ret

    def _ioctl_logged(self, f: File, fd: int, fn, rec, buf, pack_into, name: str, io) -> int:
        """_ioctl's second half with every call logged decoded (AISHIM_LOG=debug)."""
        before = describe.record(io.layout, rec, exclude=io.pure_outputs)
        ctx = f.ctx
        with ctx.device.lock:
            try:
                if ctx.destroyed:
                    raise DriverError(errno.EBADF, f"fd {fd} was closed")
                ret = fn(ctx, rec)
            except DriverError as e:
                log.debug("%s -> %s", name, e)
                ret = -e.errno
            except Exception:
                log.error("driver bug in %s (returning EIO):\n%s", name, traceback.format_exc())
                ret = -errno.EIO
        if ret >= 0:
            pack_into(buf, 0, rec)
        out = describe.record(io.layout, rec, io.outputs) if ret >= 0 and io.outputs else ""
        log.debug("ioctl(%d, %s, %s) = %s%s", fd, name, before, _ret(ret), f" => {out}" if out else "")
        return ret

    def _dispatch_table(self) -> dict:
        """request -> (handler, unpack, pack_into, name, Ioctl), with the
        AISHIM_INJECT_BUG handler already in place."""
        table = {}
        for req, h in ioctls.HANDLERS.items():
            name = h.ioctl.name
            fn = _injected_bug if name == self.config.inject_bug else h.fn
            table[req] = (fn, h.codec.unpack, h.codec.pack_into, name, h.ioctl)
        return table

    def _unknown(self, fd: int, req: int) -> int:
        key = req
        if key not in self._unknown_logged:
            self._unknown_logged.add(key)
            nr = ioc.ioc_nr(req)
            known = [i for i in uapi.IOCTLS if i.nr == nr and ioc.ioc_type(req) == uapi.IOCTL_TYPE]
            hint = f" (nr {nr:#x} is {known[0].c_macro}, {known[0].request:#010x})" if known else ""
            log.warning("unknown ioctl on fd %d: nr=%d req=%#010x %s%s -> ENOTTY", fd, nr, req,
                        ioc.decode(req), hint)
        return -errno.ENOTTY

    # -- mmap -----------------------------------------------------------

    def mmap(self, fd: int, length: int, prot: int, flags: int, offset: int) -> tuple[int, int, int]:
        """(0, vram fd, vram offset) to map, or (-errno, -1, 0)."""
        out = []

        def _mmap():
            f = self._file(fd)
            ctx = f.ctx
            with ctx.device.lock:
                bo = ctx.bo_by_mmap.get(offset)
                if bo is None:
                    raise DriverError(errno.EINVAL, f"offset {offset:#x} is no buffer of context {ctx.id}")
                if not flags & mmap_mod.MAP_SHARED:
                    raise DriverError(errno.EINVAL, "device memory can only be mapped MAP_SHARED")
                if not 0 < length <= bo.size:
                    raise DriverError(errno.EINVAL, f"length {length:#x} is not 1..{bo.size:#x}")
                out.append((ctx.device.vram.fd, bo.vram_offset))
        r = self._guard(f"mmap(fd {fd}, offset {offset:#x})", _mmap)
        if r < 0 and self.tracer is not None:        # a successful mmap is reported by mapped()
            seq = self.tracer.enter(tracing.MMAP, fd, self._minor(fd), prot, a0=length, a1=offset, a2=flags)
            self.tracer.exit(seq, tracing.MMAP, fd, self._minor(fd), prot, r, a0=length, a1=offset, a2=flags)
        return (r, *out[0]) if r >= 0 else (r, -1, 0)

    def mapped(self, fd: int, addr: int, length: int, offset: int) -> int:
        def _mapped():
            f = self.files.get(fd)
            if f is None:
                return
            dev = f.ctx.device
            with dev.lock:
                bo = f.ctx.bo_by_mmap.get(offset)
                if bo is None:
                    return
                bo.host_maps += 1
            with self.lock:
                if self.released:
                    return
                m = Mapping(addr, addr + length, bo, dev)
                self.maps.insert(bisect.bisect_left([x.start for x in self.maps], addr), m)
            log.debug("mmap(fd %d, BO %d) = 0x%x (+0x%x)", fd, bo.handle, addr, length)
        r = self._guard("mapped", _mapped)
        if self.tracer is not None:
            seq = self.tracer.enter(tracing.MMAP, fd, self._minor(fd), 0, a0=length, a1=offset)
            self.tracer.exit(seq, tracing.MMAP, fd, self._minor(fd), 0, addr, a0=length, a1=offset)
        return r

    def munmap(self, addr: int, length: int) -> int:
        def _munmap():
            end = addr + length
            with self.lock:
                keep, gone = [], []
                for m in self.maps:
                    if m.end <= addr or m.start >= end:
                        keep.append(m)
                        continue
                    pieces = [(s, e) for s, e in ((m.start, addr), (end, m.end)) if e > s]
                    keep.extend(Mapping(s, e, m.bo, m.device, m.bo_offset + (s - m.start)) for s, e in pieces)
                    gone.append((m, len(pieces)))
                self.maps = sorted(keep, key=lambda m: m.start)
            for m, pieces in gone:
                with m.device.lock:
                    m.bo.host_maps += pieces - 1
                    if m.bo.host_maps == 0 and m.bo.destroyed and m.bo in m.device.orphans:
                        m.device.orphans.discard(m.bo)
                        m.device.free_bo_memory(m.bo)
        return self._traced(tracing.MUNMAP, -1, 0xFFFF, 0, "munmap", _munmap, a0=length, a1=addr)

    def release(self) -> None:
        """The process is gone and the devices stay (the daemon): a dead
        process maps nothing and holds no fd, so every mapping it had is
        dropped and every context it had is destroyed, which frees its VRAM.
        Idempotent; calls arriving afterwards find no fd (EBADF)."""
        with self.lock:
            if self.released:
                return
            self.released = True
            maps, self.maps = self.maps, []
            files = list({id(f): f for f in self.files.values()}.values())
            self.files.clear()
        for m in maps:
            with m.device.lock:
                m.bo.host_maps -= 1
                if m.bo.host_maps == 0 and m.bo.destroyed and m.bo in m.device.orphans:
                    m.device.orphans.discard(m.bo)
                    m.device.free_bo_memory(m.bo)
        for f in files:
            if not f.inherited:
                self._guard("release", self._destroy_context, f.ctx)

    def shutdown(self) -> None:
        """The process is gone (ptrace front-end): release its devices."""
        if self.shared is not None:
            self.release()
            return
        with self.lock:
            self.files.clear()
            self.maps = []
            for dev in self.devices.values():
                dev.close()
            self.devices = {}
            self._table = Devices(self.config)

    # -- fork -----------------------------------------------------------

    def _after_fork_child(self) -> None:
        """The devices belong to the parent: forget them, refuse inherited fds."""
        self.lock = threading.Lock()
        for dev in self.devices.values():
            dev.close()
        self.devices = {}
        self._table = Devices(self.config)
        self.maps = []
        for f in self.files.values():
            f.inherited = True
        self.mm = UserMemory()
        if self.tracer is not None:
            # The child's device calls go to a trace file of its own.
            self.tracer = self.tracer.forked()
            self.mm = tracing.TracedUserMemory(self.mm, self.tracer)


_SUBMITS = {"SUBMIT", "COPY", "MEMSET"}
# After these, device results may sit in mapped buffers: kernels run inside
# the SUBMIT that reaches an idle queue; a host function runs after NOTIFY_WAIT.
_SYNCS = {"SUBMIT", "WAIT", "EVENT_WAIT", "NOTIFY_WAIT", "COPY", "MEMSET"}


def _injected_bug(ctx, rec):
    raise RuntimeError("bug injected by AISHIM_INJECT_BUG")


def _ret(r: int) -> str:
    return str(r) if r >= 0 else f"-1 {errno.errorcode.get(-r, -r)}"
