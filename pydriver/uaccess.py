"""copy_from_user / copy_to_user for a driver that lives outside the kernel.

process_vm_readv/writev copy between address spaces at memcpy speed and
return EFAULT for a bad address instead of faulting, which is exactly the
contract a kernel driver has with user pointers.  The same calls work on our
own pid (the preload path, driver embedded in the process) and on a traced
child (the ptrace path), so the driver never needs to know which it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

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

# One call moves at most MAX_RW_COUNT (2 GiB - 1 page) bytes.
_CHUNK = 1 << 30


def buffer_address(buf) -> int:
    """Address of a writable buffer (bytearray, numpy array, mmap slice...)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


class UserMemory:
    """The address space of one user process."""

    def __init__(self, pid: int | None = None):
        self.pid = os.getpid() if pid is None else pid

    def _xfer(self, fn, local: int, remote: int, n: int, what: str) -> None:
        done = 0
        while done < n:
            step = min(n - done, _CHUNK)
            liov = _Iovec(local + done, step)
            riov = _Iovec(remote + done, step)
            got = fn(self.pid, ctypes.byref(liov), 1, ctypes.byref(riov), 1, 0)
            if got != step:
                err = ctypes.get_errno() if got < 0 else errno.EFAULT
                if err in (errno.EFAULT, 0):
                    raise DriverError(errno.EFAULT, f"bad user pointer 0x{remote + done:x} ({what} of {n} bytes)")
                if err == errno.ESRCH:
                    raise DriverError(errno.ESRCH, f"process {self.pid} is gone")
                raise DriverError(err, f"{what} at 0x{remote:x}: {os.strerror(err)}")
            done += step

    def read_into(self, addr: int, local_addr: int, n: int) -> None:
        """Copy n bytes from user address addr to local address local_addr."""
        if n:
            self._xfer(_readv, local_addr, addr, n, "read")

    def write_from(self, addr: int, local_addr: int, n: int) -> None:
        """Copy n bytes from local address local_addr to user address addr."""
        if n:
            self._xfer(_writev, local_addr, addr, n, "write")

    def check(self, addr: int, n: int, write: bool) -> None:
        """EFAULT unless every page of [addr, addr+n) is readable (and, with
        write, writable): what pinning the pages at ioctl time tells a real
        driver.  One byte per page is touched; a write check writes back the
        byte it read, which is harmless for a buffer about to be overwritten."""
        if not n:
            return
        page = 4096
        first, last = addr & ~(page - 1), (addr + n - 1) & ~(page - 1)
        starts = [max(addr, p) for p in range(first, last + page, page)]
        scratch = bytearray(min(len(starts), 1024))
        base = buffer_address(scratch)
        for i in range(0, len(starts), 1024):
            chunk = starts[i:i + 1024]
            local = (_Iovec * len(chunk))(*[_Iovec(base + j, 1) for j in range(len(chunk))])
            remote = (_Iovec * len(chunk))(*[_Iovec(a, 1) for a in chunk])
            for fn in ((_readv, _writev) if write else (_readv,)):
                got = fn(self.pid, local, len(chunk), remote, len(chunk), 0)
                if got != len(chunk):
                    bad = chunk[max(0, got)] if got >= 0 else chunk[0]
                    raise DriverError(errno.EFAULT, f"bad user pointer 0x{bad:x} "
                                      f"({'write' if fn is _writev else 'read'} of {n} bytes at 0x{addr:x})")

    def read(self, addr: int, n: int) -> bytes:
        buf = bytearray(n)
        if n:
            self.read_into(addr, buffer_address(buf), n)
        return bytes(buf)

    def write(self, addr: int, data) -> None:
        n = len(data)
        if n:
            buf = data if isinstance(data, bytearray) else bytearray(data)
            self.write_from(addr, buffer_address(buf), n)
