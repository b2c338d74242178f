"""copy_from_user / copy_to_user for a driver that lives outside the kernel.

process_vm_readv/writev copy between address spaces at near memcpy speed
and return EFAULT for a bad address instead of faulting, which is exactly the
contract a kernel driver has with user pointers.  The same calls work on our
own pid (the preload path, driver embedded in the process) and on a traced
child (the ptrace path), so the driver never needs to know which it is.

Embedded, the calls go through the driver library's C (use_native): no
ctypes overhead, a big copy cut in two halves on two threads, and a range on
the calling thread's live stack copied with memcpy (interposer/usercopy.h).
Elsewhere (ptrace tracer, daemon) ctypes, with big copies split by
copythreads.py.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import threading

from pydriver import copythreads
from pydriver.errors import DriverError


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_readv = _libc.process_vm_readv
_writev = _libc.process_vm_writev
for _f in (_readv, _writev):
    _f.argtypes = [ctypes.c_int, ctypes.POINTER(_Iovec), ctypes.c_ulong,
                   ctypes.POINTER(_Iovec), ctypes.c_ulong, ctypes.c_ulong]
    _f.restype = ctypes.c_ssize_t

# One call moves at most MAX_RW_COUNT (2 GiB - 1 page) bytes, and takes at
# most IOV_MAX iovecs.
_CHUNK = 1 << 30
_IOV_MAX = 1024
_SMALL = 64 << 10         # check() reads ranges up to this whole


# aicard_user_copy(pid, to_user, local, remote, n) -> bytes or -errno, from
# the embedded driver library (interposer/build.py): the same syscalls as
# below without ctypes' call overhead.  None outside the preload path (ptrace
# tracer, daemon), which use ctypes.
# aicard_user_write(pid, remote, data: bytes, n) the same for a bytes object.
_native = _native_write = None


def use_native(copy, write_bytes) -> None:
    global _native, _native_write
    _native, _native_write = copy, write_bytes


def buffer_address(buf) -> int:
    """Address of a writable buffer (bytearray, numpy array, mmap slice...)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


class UserMemory:
    """The address space of one user process."""

    def __init__(self, pid: int | None = None):
        self.pid = os.getpid() if pid is None else pid
        self._local = threading.local()   # per-thread iovec arrays for page probes

    def _iovs(self):
        """This thread's (local iovec, remote iovec, pointers to both): made
        once, reused, because building ctypes objects dominates small copies."""
        try:
            return self._local.xfer
        except AttributeError:
            liov, riov = _Iovec(), _Iovec()
            x = self._local.xfer = (liov, riov, ctypes.byref(liov), ctypes.byref(riov))
            return x

    def _xfer(self, fn, local: int, remote: int, n: int, what: str) -> None:
        native = _native
        if native is not None and n <= _CHUNK:
            # (which also cuts a big copy in two, on two threads)
            got = native(self.pid, fn is _writev, local, remote, n)
            if got != n:
                self._failed(-got if got < 0 else errno.EFAULT, remote + max(got, 0), n, what)
        elif n >= 2 * copythreads.MIN_PIECE:
            # A big copy: in pieces on several cores (copythreads.py says why).
            copythreads.run(lambda off, size: self._xfer1(fn, local + off, remote + off, size, what), n)
        else:
            self._xfer1(fn, local, remote, n, what)

    def _xfer1(self, fn, local: int, remote: int, n: int, what: str) -> None:
        liov, riov, lp, rp = self._iovs()
        done = 0
        while done < n:
            step = min(n - done, _CHUNK)
            liov.iov_base, liov.iov_len = local + done, step
            riov.iov_base, riov.iov_len = remote + done, step
            got = fn(self.pid, lp, 1, rp, 1, 0)
            if got != step:
                self._failed(ctypes.get_errno() if got < 0 else errno.EFAULT, remote + done, n, what)
            done += step

    def _failed(self, err: int, where: int, n: int, what: str):
        if err in (errno.EFAULT, 0):
            raise DriverError(errno.EFAULT, f"bad user pointer 0x{where:x} ({what} of {n} bytes)")
        if err == errno.ESRCH:
            raise DriverError(errno.ESRCH, f"process {self.pid} is gone")
        raise DriverError(err, f"{what} at 0x{where:x}: {os.strerror(err)}")

    def read_into(self, addr: int, local_addr: int, n: int) -> None:
        """Copy n bytes from user address addr to local address local_addr."""
        if n:
            self._xfer(_readv, local_addr, addr, n, "read")

    def write_from(self, addr: int, local_addr: int, n: int) -> None:
        """Copy n bytes from local address local_addr to user address addr."""
        if n:
            self._xfer(_writev, local_addr, addr, n, "write")

    def check(self, addr: int, n: int, write: bool = False) -> None:
        """EFAULT unless every page of [addr, addr+n) is mapped and readable:
        what pinning the pages at ioctl time tells a real driver.  A small
        range is simply read; a big one is probed one byte per page,
        IOV_MAX pages per syscall.  Nothing is ever written: writing back
        what was read would race with the program's own threads.  (So a
        read-only destination is only found when the copy runs.)"""
        if not n:
            return
        if n <= _SMALL:
            buf = bytearray(n)
            self._xfer(_readv, buffer_address(buf), addr, n, "read")
            return
        self._probe_pages(addr, n)

    def _probe_pages(self, addr: int, n: int) -> None:
        import numpy as np      # only big probes need it; a replay never loads numpy
        iov = getattr(self._local, "iov", None)      # per thread: probes run concurrently
        if iov is None:
            iov = self._local.iov = ((_Iovec * _IOV_MAX)(), (_Iovec * _IOV_MAX)(), bytearray(_IOV_MAX))
            remote, local, scratch = iov
            lv = np.frombuffer(local, dtype=np.uint64).reshape(-1, 2)
            lv[:, 0] = buffer_address(scratch) + np.arange(_IOV_MAX, dtype=np.uint64)
            lv[:, 1] = 1
            np.frombuffer(remote, dtype=np.uint64).reshape(-1, 2)[:, 1] = 1
        remote, local, _ = iov
        rv = np.frombuffer(remote, dtype=np.uint64).reshape(-1, 2)
        first, last = addr >> 12, (addr + n - 1) >> 12
        pages = last - first + 1
        for i in range(0, pages, _IOV_MAX):
            k = min(_IOV_MAX, pages - i)
            starts = np.arange(first + i, first + i + k, dtype=np.uint64) << np.uint64(12)
            starts[0] = max(int(starts[0]), addr)
            rv[:k, 0] = starts
            got = _readv(self.pid, local, k, remote, k, 0)
            if got != k:
                bad = int(starts[max(0, got)]) if got >= 0 else int(starts[0])
                raise DriverError(errno.EFAULT, f"bad user pointer 0x{bad:x} ({n} bytes at 0x{addr:x})")

    def read(self, addr: int, n: int) -> bytes:
        buf = bytearray(n)
        if n:
            self.read_into(addr, buffer_address(buf), n)
        return bytes(buf)

    def write(self, addr: int, data) -> None:
        n = len(data)
        if _native_write is not None and type(data) is bytes and 0 < n <= _CHUNK:
            got = _native_write(self.pid, addr, data, n)
            if got != n:
                self._failed(-got if got < 0 else errno.EFAULT, addr, n, "write")
            return
        self._write_via_address(addr, data)

    def _write_via_address(self, addr: int, data) -> None:
        """write() through write_from(), which a subclass may watch."""
        n = len(data)
        if n:
            if isinstance(data, bytes):
                # The bytes object's own storage: no copy (it is only read).
                self.write_from(addr, ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value, n)
            else:
                buf = data if isinstance(data, bytearray) else bytearray(data)
                self.write_from(addr, buffer_address(buf), n)
