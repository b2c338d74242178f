"""Device memory: one sparse memfd per device.

The same pages are seen three ways: by the simulated device through a numpy
view of the driver's own mapping, by user space through mmap() of a buffer
object (the preload library maps this memfd at the BO's offset: zero copy),
and by copies, which process_vm_readv/writev straight into the mapping.
Pages are only allocated when touched; freeing a range punches it out, so
memory returns to the host and a new buffer never sees old contents.
"""

from __future__ import annotations

import mmap
import os

from pydriver.ranges import RangeAllocator, align_up
from pydriver.uaccess import buffer_address

PAGE = 4096


class Vram:
    def __init__(self, size: int, name: str):
        self.size = align_up(size, PAGE)
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        os.ftruncate(self.fd, self.size)
        self._map = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        # The bytes as a plain memoryview: rings, slots and the driver's small
        # reads and writes use it (a fraction of a numpy slice assignment).
        # The numpy view (u8) is for kernels and copies, made on first use:
        # numpy costs ~50 ms of start-up a program that only queries never needs.
        self.mv = memoryview(self._map)
        self._u8 = None
        self._closed = False
        self.address = buffer_address(self._map)
        self._alloc = RangeAllocator(0, self.size)

    @property
    def u8(self):
        """The whole VRAM as a numpy uint8 array (None once closed)."""
        if self._u8 is None and not self._closed:
            import numpy as np
            self._u8 = np.frombuffer(self._map, dtype=np.uint8)
        return self._u8

    @property
    def used(self) -> int:
        return self._alloc.used

    def alloc(self, size: int) -> int | None:
        """Offset of a fresh zeroed range of size bytes (page-rounded), or None."""
        return self._alloc.alloc(align_up(size, PAGE), align=PAGE)

    def free(self, offset: int, size: int) -> None:
        size = align_up(size, PAGE)
        self._map.madvise(mmap.MADV_REMOVE, offset, size)
        self._alloc.free(offset, size)

    def close(self) -> None:
        """Drop this process's handles without touching the pages (after fork
        the parent still uses them)."""
        self._u8 = None
        self._closed = True
        self.mv.release()
        try:
            self._map.close()
        except BufferError:
            pass  # a numpy view is still alive somewhere; the mapping dies with it
        os.close(self.fd)
