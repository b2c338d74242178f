"""FlatMemory: a small GlobalMemory for tests and benchmarks of the executor.

It is also a sketch of what a fast `translate` looks like: one check of the whole range
[min, max] against the buffer holding the minimum (the common case: every thread of a launch
touches one buffer) and a vectorized searchsorted over the sorted buffer starts otherwise.
"""

from __future__ import annotations

import numpy as np

from pydriver.sim.faults import MemoryFault

PAGE = 4096


class FlatMemory:
    """Device memory of `size` bytes, with buffers mapped at increasing virtual addresses
    (leaving an unmapped gap between two buffers, so overruns fault)."""

    def __init__(self, size: int, va_base: int = 0x1_0000_0000, gap: int = 1 << 20):
        size = (size + PAGE - 1) // PAGE * PAGE
        self.vram = np.zeros(size, dtype=np.uint8)
        self._next_va = va_base
        self._next_off = 0
        self._gap = gap
        self.starts = np.zeros(0, dtype=np.uint64)
        self.ends = np.zeros(0, dtype=np.uint64)
        self.offs = np.zeros(0, dtype=np.int64)

    def alloc(self, nbytes: int) -> int:
        """Map a new buffer; returns its device address."""
        nbytes = max(PAGE, (nbytes + PAGE - 1) // PAGE * PAGE)
        if self._next_off + nbytes > self.vram.size:
            raise MemoryError("FlatMemory is full")
        va, off = self._next_va, self._next_off
        self.starts = np.append(self.starts, np.uint64(va))
        self.ends = np.append(self.ends, np.uint64(va + nbytes))
        self.offs = np.append(self.offs, np.int64(off))
        self._next_va += nbytes + self._gap
        self._next_off += nbytes
        return va

    def view(self, va: int, count: int, dtype) -> np.ndarray:
        """A numpy view of `count` elements at device address va (host side access)."""
        dtype = np.dtype(dtype)
        off = int(self.translate(np.array([va], dtype=np.uint64), count * dtype.itemsize,
                                 False)[0])
        return self.vram[off:off + count * dtype.itemsize].view(dtype)

    def translate(self, addr: np.ndarray, size: int, write: bool) -> np.ndarray:
        addr = np.asarray(addr, dtype=np.uint64)
        if addr.size == 0:
            return np.zeros(0, dtype=np.int64)
        lo = int(addr.min())
        hi = int(addr.max())
        if self.starts.size == 0:
            raise MemoryFault("mmu", f"address {int(addr[0]):#x} is not mapped (no buffers)",
                              address=int(addr[0]))
        i = int(np.searchsorted(self.starts, np.uint64(lo), side="right")) - 1
        if i >= 0 and hi + size <= int(self.ends[i]):   # one buffer holds the whole range
            return (addr - self.starts[i]).astype(np.int64) + self.offs[i]
        idx = np.searchsorted(self.starts, addr, side="right").astype(np.int64) - 1
        ok = idx >= 0
        safe = np.where(ok, idx, 0)
        rel = addr - self.starts[safe]               # no wrap where ok: addr >= start
        length = self.ends[safe] - self.starts[safe]
        ok &= (rel <= length) & (length - rel >= np.uint64(size))
        if not ok.all():
            bad = int(addr[int(np.argmin(ok))])
            raise MemoryFault("mmu", f"address {bad:#x} (+{size}) is not mapped", address=bad)
        return (addr - self.starts[safe]).astype(np.int64) + self.offs[safe]
