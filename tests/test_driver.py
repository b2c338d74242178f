"""The driver on its own: Driver.ioctl with real argument buffers and real
user pointers into this process, no interposer involved."""

from __future__ import annotations

import errno
import threading
import time

import pytest

from pydriver.client import Client
from structs import uapi
from structs.enums import CmdType, EventStatus, FenceStatus, QueryType

from conftest import err


def test_query_size_protocol(c):
    r = c.call("DEV_QUERY", type=QueryType.DEVICE_INFO, size=0, pointer=0)
    assert r.size == uapi.DeviceInfo.sizeof()
    short = bytearray(b"\xee" * 16)
    r = c.call("DEV_QUERY", type=QueryType.DEVICE_INFO, size=8, pointer=c.ptr(short))
    assert r.size == uapi.DeviceInfo.sizeof()
    assert short[8:] == b"\xee" * 8, "wrote past the size the caller gave"
    with pytest.raises(OSError) as e:
        c.call("DEV_QUERY", type=99, size=0, pointer=0)
    assert err(e) == errno.EINVAL


def test_bo_lifecycle_and_accounting(c):
    h, va = c.alloc(10000)
    assert c.mem_info().ctx_used == 12288 and c.mem_info().ctx_bo_count == 1
    c.call("BO_DESTROY", handle=h)
    assert c.mem_info().vram_used == 0
    with pytest.raises(OSError) as e:
        c.call("BO_DESTROY", handle=h)
    assert err(e) == errno.EINVAL
    with pytest.raises(OSError) as e:
        c.call("BO_CREATE", size=0)
    assert err(e) == errno.EINVAL


def test_vram_exhaustion_and_recovery(c):
    with pytest.raises(OSError) as e:
        c.alloc(65 << 20)
    assert err(e) == errno.ENOMEM
    def fill():
        handles = []
        while True:
            try:
                handles.append(c.alloc(4 << 20)[0])
            except OSError as e:
                assert e.errno == errno.ENOMEM
                return handles
    first = fill()
    assert len(first) >= 14          # 64 MiB minus what the firmware keeps
    for h in first:
        c.call("BO_DESTROY", handle=h)
    assert c.mem_info().vram_used == 0
    assert len(fill()) == len(first)


def test_copy_roundtrip_and_memset(c):
    q = c.queue()
    _, a = c.alloc(1 << 16)
    _, b = c.alloc(1 << 16)
    data = bytes(range(256)) * 256
    c.htod(q, a, data)
    c.call("COPY", queue_id=q, kind=3, dst=b, src=a, size=len(data), flags=uapi.COPY_SYNC)
    assert c.dtoh(q, b, len(data)) == data
    c.call("MEMSET", queue_id=q, elem_size=4, dst=b + 8, count=3, value=0xDEADBEEF, flags=uapi.COPY_SYNC)
    out = c.dtoh(q, b, 24)
    assert out[:8] == data[:8] and out[8:20] == bytes.fromhex("efbeadde") * 3 and out[20:] == data[20:24]


def test_new_buffers_are_zero(c):
    q = c.queue()
    h, a = c.alloc(8192)
    c.htod(q, a, b"\xff" * 8192)
    c.call("BO_DESTROY", handle=h)
    _, b = c.alloc(8192)
    assert c.dtoh(q, b, 8192) == bytes(8192)


def test_bad_pointers_and_ranges(c):
    q = c.queue()
    _, a = c.alloc(4096)
    with pytest.raises(OSError) as e:
        c.call("COPY", queue_id=q, kind=1, dst=a, src=8, size=16, flags=uapi.COPY_SYNC)
    assert err(e) == errno.EFAULT
    with pytest.raises(OSError) as e:
        c.call("COPY", queue_id=q, kind=1, dst=a + 4000, src=c.ptr(bytes(200)), size=200)
    assert err(e) == errno.EINVAL           # runs off the end of the buffer
    with pytest.raises(OSError) as e:
        c.call("COPY", queue_id=q, kind=7, dst=a, src=a, size=1)
    assert err(e) == errno.EINVAL
    with pytest.raises(OSError) as e:
        c.call("MEMSET", queue_id=q, elem_size=4, dst=a + 2, count=1)
    assert err(e) == errno.EINVAL
    with pytest.raises(OSError) as e:
        c.call("COPY", queue_id=999, kind=1, dst=a, src=a, size=1)
    assert err(e) == errno.EINVAL


def test_contexts_are_isolated(drv):
    a, b = Client(drv), Client(drv)
    ha, va = a.alloc(4096)
    qb = b.queue()
    with pytest.raises(OSError) as e:
        b.call("COPY", queue_id=qb, kind=2, dst=b.ptr(bytes(16)), src=va, size=16, flags=uapi.COPY_SYNC)
    assert err(e) == errno.EINVAL
    with pytest.raises(OSError) as e:
        b.call("BO_DESTROY", handle=ha)
    assert err(e) == errno.EINVAL
    off = a.call("BO_MMAP_OFFSET", handle=ha).offset
    assert drv.mmap(b.fd, 4096, 3, 1, off)[0] == -errno.EINVAL
    assert drv.mmap(a.fd, 4096, 3, 1, off)[0] == 0


def _event_cmd(ctype, handle) -> bytes:
    codec = uapi.CmdEvent.codec()
    return codec.pack(codec.make(type=ctype, event=handle))


def test_wait_times_out_then_completes_when_event_signalled(c):
    q = c.queue()
    ev = c.call("EVENT_CREATE").handle
    c.call("SUBMIT", queue_id=q, cmd_count=1, cmd_stride=64, cmds=c.ptr(_event_cmd(CmdType.EVENT_WAIT, ev)))
    _, a = c.alloc(4096)
    fence = c.htod(q, a, b"x" * 64, sync=False)
    t0 = time.monotonic()
    with pytest.raises(OSError) as e:
        c.wait(q, fence, timeout_ns=100_000_000)
    assert err(e) == errno.ETIMEDOUT
    assert 0.09 <= time.monotonic() - t0 < 2.0
    with pytest.raises(OSError) as e:
        c.wait(q, fence, timeout_ns=0)
    assert err(e) == errno.ETIMEDOUT

    def later():
        time.sleep(0.05)
        c.call("EVENT_SIGNAL", handle=ev)
    threading.Thread(target=later).start()
    r = c.wait(q, fence)
    assert r.completed == fence and r.status == FenceStatus.OK
    assert c.dtoh(q, a, 2) == b"xx"


def test_event_timestamps_are_monotonic(c):
    q = c.queue()
    e1, e2 = c.call("EVENT_CREATE").handle, c.call("EVENT_CREATE").handle
    _, a = c.alloc(1 << 20)
    c.call("SUBMIT", queue_id=q, cmd_count=1, cmd_stride=64, cmds=c.ptr(_event_cmd(CmdType.EVENT_RECORD, e1)))
    c.htod(q, a, bytes(1 << 20), sync=False)
    c.call("SUBMIT", queue_id=q, cmd_count=1, cmd_stride=64, cmds=c.ptr(_event_cmd(CmdType.EVENT_RECORD, e2)))
    c.call("EVENT_WAIT", handle=e2, timeout_ns=uapi.TIMEOUT_INFINITE)
    q1, q2 = c.call("EVENT_QUERY", handle=e1), c.call("EVENT_QUERY", handle=e2)
    assert q1.status == q2.status == EventStatus.SIGNALED
    # 1 MiB at the modelled 16 GB/s is ~65 us of device time.
    assert q2.timestamp - q1.timestamp >= (1 << 20) // 16
    assert q2.fence > q1.fence


def test_wait_for_a_fence_never_issued(c):
    q = c.queue()
    with pytest.raises(OSError) as e:
        c.wait(q, 5, timeout_ns=0)
    assert err(e) == errno.EINVAL


def test_submit_is_validated_before_anything_runs(c):
    q = c.queue()
    ev = c.call("EVENT_CREATE").handle
    cmds = _event_cmd(CmdType.EVENT_RECORD, ev) + _event_cmd(99, ev)
    with pytest.raises(OSError) as e:
        c.call("SUBMIT", queue_id=q, cmd_count=2, cmd_stride=64, cmds=c.ptr(cmds))
    assert err(e) == errno.EINVAL
    assert c.call("EVENT_QUERY", handle=ev).status == EventStatus.UNSIGNALED
    junk = bytearray(_event_cmd(CmdType.EVENT_RECORD, ev))
    junk[40] = 1                                  # a reserved field
    with pytest.raises(OSError) as e:
        c.call("SUBMIT", queue_id=q, cmd_count=1, cmd_stride=64, cmds=c.ptr(junk))
    assert err(e) == errno.EINVAL


def test_malformed_module_is_einval(c):
    for image in (b"\0" * 64, b"AIMD" + b"\xff" * 100):
        with pytest.raises(OSError) as e:
            c.load_module(image)
        assert err(e) == errno.EINVAL


def test_unknown_request_is_enotty(c):
    assert c.driver.ioctl(c.fd, 0xC0104199, bytearray(16)) == -errno.ENOTTY
    # The right number with the wrong size is not the same request.
    assert c.driver.ioctl(c.fd, uapi.BY_NAME["BO_CREATE"].request + (1 << 16), bytearray(64)) == -errno.ENOTTY


def test_last_close_releases_everything(drv):
    a = Client(drv)
    a.alloc(1 << 20)
    other = Client(drv)
    assert other.mem_info().vram_used == 1 << 20
    a.close()
    assert other.mem_info().vram_used == 0


def test_bad_host_pointer_in_a_copy_is_efault_and_the_context_lives(c):
    """Unmapped and read-only destinations: EFAULT for that ioctl only."""
    import ctypes
    import mmap
    q = c.queue()
    _, a = c.alloc(8192)
    libc = ctypes.CDLL(None)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    ro_addr = libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    for dst in (ro_addr, 0xDEAD0000):
        with pytest.raises(OSError) as e:
            c.call("COPY", queue_id=q, kind=2, dst=dst, src=a, size=64, flags=uapi.COPY_SYNC)
        assert err(e) == errno.EFAULT
    with pytest.raises(OSError) as e:
        c.call("COPY", queue_id=q, kind=1, dst=a, src=0xDEAD0000, size=64)
    assert err(e) == errno.EFAULT
    c.htod(q, a, b"still alive")
    assert c.dtoh(q, a, 11) == b"still alive"
