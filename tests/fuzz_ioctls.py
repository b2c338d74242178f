"""Fuzz the device through the real preload library, from a Python host.

Run it under LD_PRELOAD (tests/test_fuzz.py and `make fuzz` do):

    LD_PRELOAD=build/lib/libaicard_preload.so python tests/fuzz_ioctls.py --examples 200 --seed 1

Each hypothesis example opens one or two device fds and issues a few dozen
ioctls: requests known and unknown (wrong size, wrong direction, foreign
type, random numbers), argument fields drawn to hit both the valid and the
invalid (handles near the live ones, sizes at the edges, pointers that are
valid, NULL, unmapped, misaligned or running off the end of a buffer,
commands with random types and launches with random geometry).  After every
ioctl: the process is alive and errno is in the documented set (EIO would
be a driver bug).  After every example: the driver's invariants hold (no
overlapping allocations, exact VRAM accounting, sane fences and handles) and
closing every fd brings device memory back to zero.

The driver runs inside this interpreter (the preload library reuses the
host's Python), so the invariants are checked on the live driver objects.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import os
import sys
import time
from collections import Counter

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from structs import ioc, uapi
from structs.enums import CmdType

ALLOWED = {errno.ENOTTY, errno.EFAULT, errno.EINVAL, errno.ENOENT, errno.ENOMEM, errno.ETIMEDOUT,
           errno.EBUSY, errno.ECANCELED, errno.EBADF, errno.EBADFD, errno.ENODEV}
STATS: Counter = Counter()
KERNELS = os.environ.get("AICARD_KERNELS", "build/umd/kernels")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def _guarded(size: int) -> int:
    """size bytes followed by an inaccessible page: a pointer that runs off
    the end faults (EFAULT) instead of scribbling on the fuzzer's own heap,
    which is what the kernel would let it do too."""
    base = _libc.mmap(None, size + 4096, 3, 0x22, -1, 0)
    _libc.mprotect(base + size, 4096, 0)
    return base


# Buffers whose addresses the fuzzer hands out; they stay alive for the run.
BUF_SIZE = 1 << 16
GOOD = [_guarded(BUF_SIZE) for _ in range(4)]
def _ro_address() -> int:
    """A mapped, read-only page: a pointer the driver may read but not write."""
    return _libc.mmap(None, 4096, 1, 0x22, -1, 0)   # PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS


RO_PAGE = _ro_address()
MODULE_IMAGES = []
for name in ("vecadd", "fill", "empty"):
    try:
        with open(os.path.join(KERNELS, f"{name}.aimod"), "rb") as f:
            image = f.read()
        addr = _guarded(len(image))
        ctypes.memmove(addr, image, len(image))
        MODULE_IMAGES.append((addr, len(image)))
    except OSError:
        pass

pointers = st.one_of(
    st.sampled_from(GOOD),
    st.sampled_from(GOOD).map(lambda a: a + BUF_SIZE - 8),        # runs off the end
    st.sampled_from([0, 8, 0xDEAD0000, 0x7FFF_FFFF_F000, 0xFFFF_8000_0000_0000, RO_PAGE, RO_PAGE + 4090]),
    st.integers(0, (1 << 64) - 1),
)
small = st.integers(0, 12)
sizes = st.one_of(st.sampled_from([0, 1, 7, 4096, 4097, 1 << 16, 1 << 20, 1 << 40, (1 << 64) - 1]),
                  st.integers(0, 1 << 22))
timeouts = st.integers(0, 1_000_000)         # at most 1 ms: a fuzzer must not wait forever
u32 = st.integers(0, (1 << 32) - 1)


def field_value(io_name: str, f, live):
    name = f.name
    if f.is_const:
        return st.one_of(st.just(f.const), st.just(tuple([1] * f.count) if f.count > 1 else 1))
    if f.fmt.endswith("s"):
        return st.one_of(st.just(b"vecadd".ljust(f.size, b"\0")), st.binary(min_size=f.size, max_size=f.size))
    if f.count > 1:
        return st.tuples(*[st.one_of(st.integers(0, 4), u32)] * f.count)
    if name in ("pointer", "cmds", "image", "params") or (io_name == "COPY" and name in ("src", "dst")):
        va = st.sampled_from(live["vas"]) if live["vas"] else st.just(0)
        return st.one_of(pointers, va, va.map(lambda v: v + 4096))
    if name in ("dst", "src", "gpu_va"):
        return st.sampled_from(live["vas"]) if live["vas"] else pointers
    if name in ("handle", "module", "queue_id", "event", "index", "function"):
        return st.one_of(st.sampled_from(live["handles"] or [0]), small, u32)
    if name in ("size", "count"):
        return sizes
    if name == "timeout_ns":
        return timeouts
    if name in ("kind", "type", "elem_size", "priority"):
        return st.one_of(st.integers(0, 6), u32)
    bits = 8 * f.size
    return st.one_of(st.just(0), st.integers(0, (1 << bits) - 1))


@st.composite
def an_ioctl(draw, live):
    choice = draw(st.integers(0, 99))
    if choice < 80:
        io = draw(st.sampled_from(uapi.IOCTLS))
        codec = io.layout.codec()
        values = {f.name: draw(field_value(io.name, f, live)) for f in codec.fields}
        if io.name in ("WAIT", "EVENT_WAIT"):
            values["timeout_ns"] = min(values["timeout_ns"], 1_000_000)
        if io.name == "MODULE_LOAD" and MODULE_IMAGES and draw(st.booleans()):
            values["image"], values["size"] = draw(st.sampled_from(MODULE_IMAGES))
        if io.name == "SUBMIT" and draw(st.booleans()):
            values["cmds"], values["cmd_stride"] = draw(commands(live)), 64
            values["cmd_count"] = draw(st.integers(1, 3))
        try:
            arg = bytearray(codec.pack(codec.record(*[values[n] for n in codec.names])))
        except Exception:                    # a value that does not fit its field
            arg = bytearray(draw(st.binary(min_size=codec.size, max_size=codec.size)))
        return io.request, arg
    if choice < 88:                          # a known number with the wrong size or direction
        io = draw(st.sampled_from(uapi.IOCTLS))
        size = draw(st.integers(0, 300))
        req = ioc.IOC(draw(st.integers(0, 3)), uapi.IOCTL_TYPE, io.nr, size)
    elif choice < 94:
        req = ioc.IOC(draw(st.integers(0, 3)), draw(st.integers(0, 255)), draw(st.integers(0, 255)),
                      draw(st.integers(0, 256)))
    else:
        req = draw(u32)
    return req, bytearray(draw(st.binary(min_size=ioc.ioc_size(req), max_size=ioc.ioc_size(req))))


@st.composite
def commands(draw, live):
    """A buffer of 3 commands, mostly launches with small random geometry."""
    buf = GOOD[3]
    raw = bytearray()
    for _ in range(3):
        t = draw(st.sampled_from([1, 1, 1, 2, 3, 4, 5, 0, 99]))
        if t == CmdType.LAUNCH:
            c = uapi.CmdLaunch.codec()
            raw += c.pack(c.make(
                type=1, module=draw(st.one_of(st.sampled_from(live["handles"] or [0]), small)),
                function=draw(st.integers(0, 2)),
                grid=(draw(st.integers(0, 9)), draw(st.integers(0, 2)), 1),
                block=(draw(st.sampled_from([0, 1, 32, 256, 1024, 2048])), 1, 1),
                shared_size=draw(st.sampled_from([0, 16, 1 << 16])),
                params_size=draw(st.sampled_from([0, 4, 12, 28])), params=draw(pointers)))
        else:
            raw += t.to_bytes(4, "little") + bytes(4) + draw(st.integers(0, 12)).to_bytes(4, "little") + bytes(52)
    ctypes.memmove(buf, bytes(raw), len(raw))
    return buf


def check_invariants() -> None:
    """The driver's books, checked on the live objects."""
    from interposer import glue
    drv = glue._driver
    if drv is None:
        return
    for dev in drv.devices.values():
        ranges = []
        bo_total = 0
        for ctx in dev.contexts.values():
            assert ctx.used == sum(bo.size for bo in ctx.bos.values()), "ctx.used out of step"
            vas = sorted((bo.gpu_va, bo.gpu_va + bo.size) for bo in ctx.bos.values())
            assert all(a[1] <= b[0] for a, b in zip(vas, vas[1:])), "overlapping device addresses"
            for q in ctx.queues.values():
                assert 0 <= q.completed <= q.last_seqno, "fence beyond what was issued"
            for bo in ctx.bos.values():
                ranges.append((bo.vram_offset, bo.vram_offset + bo.size))
                bo_total += bo.size
        for bo in dev.orphans:
            ranges.append((bo.vram_offset, bo.vram_offset + bo.size))
            bo_total += bo.size
        assert bo_total == dev.bo_bytes, f"VRAM accounting: BOs {bo_total} != {dev.bo_bytes}"
        ranges.sort()
        assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:])), "overlapping VRAM allocations"
        for start, end in dev.vram._alloc.free_ranges():
            for a, b in ranges:
                assert b <= start or a >= end, "a live buffer lies in free VRAM"
    for fd, f in drv.files.items():
        assert f.refs >= 1, f"fd {fd}: refcount {f.refs}"


def run_example(ops, nfds: int) -> None:
    fds = [os.open("/dev/aicard0", os.O_RDWR) for _ in range(nfds)]
    try:
        for i, (req, arg) in enumerate(ops):
            fd = fds[i % nfds]
            try:
                fcntl.ioctl(fd, req, arg, True) if arg else fcntl.ioctl(fd, req, 0)
                STATS["ok"] += 1
            except OSError as e:
                STATS[errno.errorcode.get(e.errno, str(e.errno))] += 1
                if e.errno not in ALLOWED:
                    raise AssertionError(f"ioctl {req:#010x} answered {errno.errorcode.get(e.errno)} "
                                         f"(not a documented errno)") from None
            STATS["ioctls"] += 1
            check_invariants()
    finally:
        for fd in fds:
            os.close(fd)
    check_invariants()
    from interposer import glue
    for dev in glue._driver.devices.values():
        assert dev.bo_bytes == 0, f"VRAM still used after every fd closed: {dev.bo_bytes}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    live = {"handles": list(range(1, 9)), "vas": []}

    # Learn a few real device addresses so fields can point at live buffers.
    fd = os.open("/dev/aicard0", os.O_RDWR)
    codec = uapi.BoCreate.codec()
    for _ in range(2):
        a = bytearray(codec.pack(codec.make(size=1 << 16)))
        fcntl.ioctl(fd, uapi.BY_NAME["BO_CREATE"].request, a, True)
        live["vas"].append(codec.unpack(a).gpu_va)
    os.close(fd)          # freed again: these addresses are now stale, which is a good test too

    @settings(max_examples=args.examples, deadline=None, derandomize=args.seed is None,
              suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(an_ioctl(live), min_size=5, max_size=60), st.integers(1, 2))
    def fuzz(ops, nfds):
        run_example(ops, nfds)

    if args.seed is not None:
        fuzz = seed(args.seed)(fuzz)
    t0 = time.monotonic()
    fuzz()
    dt = time.monotonic() - t0
    print(f"fuzz: {STATS['ioctls']} ioctls in {dt:.1f} s, no crash, invariants held; answers: "
          + ", ".join(f"{k}={v}" for k, v in STATS.most_common() if k != "ioctls"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
