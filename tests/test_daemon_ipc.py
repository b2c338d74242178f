"""IPC memory handles and per-process front ends sharing devices, at the
driver level (no interposer, no daemon): two Drivers on one Devices table are
two processes of a daemon; release() is what the daemon does when one dies."""

from __future__ import annotations

import errno
import threading

import pytest

from pydriver.client import Client
from pydriver.config import Config
from pydriver.driver import Devices, Driver
from structs import uapi

TOKEN = uapi.IPC_TOKEN_SIZE


@pytest.fixture
def shared():
    devs = Devices(Config(devices=2, vram_size=64 << 20))
    yield devs
    devs.close()


def proc(shared):
    """A 'process': a Driver of its own on the shared devices."""
    return Driver(shared.config, shared=shared)


def fails(errnum, fn, *args, **kw):
    with pytest.raises(OSError) as e:
        fn(*args, **kw)
    assert e.value.errno == errnum, e.value
    return e.value


def export(c, handle) -> bytes:
    return c.call("IPC_EXPORT", handle=handle).token


def test_processes_share_devices_not_handles(shared):
    a, b = Client(proc(shared)), Client(proc(shared))
    h, va = a.alloc(1 << 20)
    assert b.mem_info().vram_used == 1 << 20          # one device
    assert b.mem_info().ctx_used == 0
    fails(errno.EINVAL, b.call, "BO_DESTROY", handle=h)    # another process's handle
    q = b.queue()
    fails(errno.EINVAL, b.call, "MEMSET", queue_id=q, elem_size=4, dst=va, count=4)   # ... and address
    a.close()
    assert b.mem_info().vram_used == 0


def test_export_import_same_bytes(shared):
    a, b = Client(proc(shared)), Client(proc(shared))
    h, va = a.alloc(8192)
    qa = a.queue()
    a.htod(qa, va, b"\x11" * 8192)
    token = export(a, h)
    assert len(token) == TOKEN and token == export(a, h)       # stable per buffer
    r = b.call("IPC_IMPORT", token=token)
    # Each process numbers its own address windows, so the importer may well
    # see the buffer at the same device address: it is its own address space.
    assert r.size == 8192
    qb = b.queue()
    assert bytes(b.dtoh(qb, r.gpu_va, 8192)) == b"\x11" * 8192
    b.htod(qb, r.gpu_va + 4096, b"\x22" * 4096)
    assert bytes(a.dtoh(qa, va, 8192)) == b"\x11" * 4096 + b"\x22" * 4096
    assert a.mem_info().vram_used == 8192                      # counted once
    assert b.mem_info().ctx_used == 8192


def test_import_outlives_the_exporter(shared):
    pa, pb = proc(shared), proc(shared)
    a, b = Client(pa), Client(pb)
    h, va = a.alloc(4096)
    a.htod(a.queue(), va, b"\x5a" * 4096)
    token = export(a, h)
    r = b.call("IPC_IMPORT", token=token)
    pa.release()                                 # the exporting process dies
    other = Client(proc(shared))
    fails(errno.ENOENT, other.call, "IPC_IMPORT", token=token)     # revoked with the exporter
    q = b.queue()
    assert bytes(b.dtoh(q, r.gpu_va, 4096)) == b"\x5a" * 4096     # the import keeps the memory
    assert b.mem_info().vram_used == 4096
    b.call("BO_DESTROY", handle=r.handle)
    assert b.mem_info().vram_used == 0


def test_freed_token_is_refused_and_unforgeable(shared):
    a, b = Client(proc(shared)), Client(proc(shared))
    h, _ = a.alloc(4096)
    token = export(a, h)
    h2, _ = a.alloc(4096)
    assert export(a, h2) != token                              # one token per buffer
    fails(errno.ENOENT, b.call, "IPC_IMPORT", token=bytes(TOKEN))
    fails(errno.ENOENT, b.call, "IPC_IMPORT", token=token[:-1] + bytes([token[-1] ^ 0x80]))
    fails(errno.ENOENT, Client(proc(shared), 1).call, "IPC_IMPORT", token=token)   # another device
    a.call("BO_DESTROY", handle=h)
    fails(errno.ENOENT, b.call, "IPC_IMPORT", token=token)
    assert b.mem_info().vram_used == 4096                      # only h2


def test_import_bad_inputs(shared):
    a, b = Client(proc(shared)), Client(proc(shared))
    h, _ = a.alloc(4096)
    token = export(a, h)
    fails(errno.EINVAL, a.call, "IPC_IMPORT", token=token)                 # the exporter's context
    fails(errno.EINVAL, b.call, "IPC_IMPORT", token=token, flags=1)
    fails(errno.EINVAL, b.call, "IPC_EXPORT", handle=h)                    # not b's handle
    fails(errno.EINVAL, a.call, "IPC_EXPORT", handle=h, flags=4)
    b.call("IPC_IMPORT", token=token)
    fails(errno.EINVAL, b.call, "IPC_IMPORT", token=token)                 # twice in one context
    for name in ("IPC_EXPORT", "IPC_IMPORT"):
        io = uapi.BY_NAME[name]
        buf = bytearray(io.layout.sizeof())
        assert b.driver.ioctl(b.fd, io.request, buf, arg_fault=True) == -errno.EFAULT
        assert b.driver.ioctl(b.fd, io.request + (1 << 16), bytearray(io.layout.sizeof() + 1)) == -errno.ENOTTY
        assert b.driver.ioctl(b.fd + 1, io.request, buf) == -errno.EBADF


def test_embedded_driver_ipc_across_contexts():
    """One process, one driver, two contexts: the same semantics."""
    d = Driver(Config(devices=1, vram_size=64 << 20))
    a, b = Client(d), Client(d)
    h, va = a.alloc(4096)
    r = b.call("IPC_IMPORT", token=export(a, h))
    a.call("BO_DESTROY", handle=h)
    assert b.mem_info().vram_used == 4096
    b.close()
    assert a.mem_info().vram_used == 0


def test_release_reclaims_mappings_contexts_and_wakes_waiters(shared):
    """What the daemon does for a dead process: mapped BOs, an orphan (freed
    but still mapped) and contexts go; a thread waiting inside gives up."""
    dp = proc(shared)
    a, watcher = Client(dp), Client(proc(shared))
    h1, _ = a.alloc(1 << 20)
    h2, _ = a.alloc(1 << 20)
    for h, addr in ((h1, 0x7000_0000_0000), (h2, 0x7000_1000_0000)):
        off = a.call("BO_MMAP_OFFSET", handle=h).offset
        assert dp.mmap(a.fd, 1 << 20, 3, 1, off)[0] == 0       # MAP_SHARED
        dp.mapped(a.fd, addr, 1 << 20, off)
    a.call("BO_DESTROY", handle=h2)                              # orphan: still mapped
    ev = a.call("EVENT_CREATE").handle
    result = []
    t = threading.Thread(target=lambda: result.append(
        dp.ioctl(a.fd, uapi.BY_NAME["EVENT_WAIT"].request, bytearray(uapi.EventWait.codec().pack(
            uapi.EventWait.codec().make(handle=ev, timeout_ns=uapi.TIMEOUT_INFINITE))))))
    t.start()
    assert watcher.mem_info().vram_used == 2 << 20
    # Release only once the thread is really waiting inside the driver.
    import time
    cond = shared.by_minor[0].cond
    deadline = time.monotonic() + 30
    while not cond._waiters and time.monotonic() < deadline:
        time.sleep(0.01)
    dp.release()
    t.join(timeout=60)
    assert result == [-errno.ECANCELED]
    assert watcher.mem_info().vram_used == 0
    assert dp.ioctl(a.fd, uapi.BY_NAME["BO_CREATE"].request, bytearray(24)) == -errno.EBADF
    assert dp.open(0, 99) == -errno.ESRCH
    assert not shared.by_minor[0].contexts.keys() - {watcher_ctx(watcher)}


def watcher_ctx(c):
    return c.driver.files[c.fd].ctx.id


def test_reaper_ignores_a_stale_event_for_a_reused_fd():
    """Regression: a pidfd event that arrives after its session ended by
    itself names an fd number a new session may hold by now; the reaper
    must end a session only if its own process exited."""
    import os
    import subprocess
    import sys

    from pydriver.server import _Reaper

    class FakeSession:
        def __init__(self, pid):
            self.pidfd = os.pidfd_open(pid)
            self.ended = threading.Event()

        def end(self, why):
            self.ended.set()

    reaper = _Reaper()                         # not started: events are fed by hand
    alive = FakeSession(os.getpid())
    reaper.watch(alive)
    reaper.handle(alive.pidfd)                 # as if a stale event named its fd
    assert not alive.ended.is_set() and alive.pidfd in reaper.by_fd

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = FakeSession(child.pid)
    child.wait()
    reaper.watch(dead)
    reaper.handle(dead.pidfd)
    assert dead.ended.wait(60) and dead.pidfd not in reaper.by_fd
    for s in (alive, dead):
        os.close(s.pidfd)
    reaper.epoll.close()
