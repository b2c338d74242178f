"""A context's GPU virtual address space.

Every open file gets its own window of device addresses, placed at a
different base per context, so an address leaked from one context points at
nothing in another (EINVAL/fault instead of silently reading someone else's
buffer).  Buffers are separated by unmapped guard space, so running off the
end of one faults instead of landing in the next, as on real GPUs.
"""

from __future__ import annotations

import bisect
import itertools

from pydriver.ranges import RangeAllocator
from pydriver.sim.faults import MemoryFault

VA_WINDOW = 1 << 40          # 1 TiB of address space per context
VA_FIRST = 1 << 44           # first window; windows never reach 2^48
VA_WINDOWS = ((1 << 48) - VA_FIRST) // VA_WINDOW
VA_ALIGN = 1 << 16
VA_GUARD = 1 << 16

_window_ids = itertools.count(0)


class VM:
    def __init__(self, vram, window: int | None = None):
        """vram: the device's Vram (the executor sees it as vram.u8).
        window: which 1 TiB window of device addresses; default the next
        one of this process (the daemon numbers them per client process, so
        a program gets the same addresses run after run, as embedded)."""
        window = (next(_window_ids) if window is None else window) % VA_WINDOWS
        self.base = VA_FIRST + window * VA_WINDOW
        self._va = RangeAllocator(self.base, VA_WINDOW)
        self._vram = vram
        self._starts: list[int] = []     # sorted gpu_va of mapped BOs
        self._bos: list = []             # parallel to _starts
        self._arrays = None              # numpy copies for vectorized lookups

    def map(self, bo) -> int | None:
        va = self._va.alloc(bo.size, align=VA_ALIGN, guard=VA_GUARD)
        if va is None:
            return None
        i = bisect.bisect_left(self._starts, va)
        self._starts.insert(i, va)
        self._bos.insert(i, bo)
        self._arrays = None
        return va

    def unmap(self, bo) -> None:
        i = bisect.bisect_left(self._starts, bo.gpu_va)
        assert self._bos[i] is bo
        del self._starts[i], self._bos[i]
        self._va.free(bo.gpu_va, bo.size, guard=VA_GUARD)
        self._arrays = None

    def find(self, va: int, size: int = 1):
        """The BO holding all of [va, va+size), or None."""
        i = bisect.bisect_right(self._starts, va) - 1
        if i < 0:
            return None
        bo = self._bos[i]
        if va + max(size, 1) <= bo.gpu_va + bo.size:
            return bo
        return None

    # -- the executor's view (GlobalMemory protocol) ------------------------

    @property
    def vram(self):
        """The whole device memory as a numpy uint8 array."""
        return self._vram.u8

    def translate(self, addr: np.ndarray, size: int, write: bool) -> np.ndarray:
        """VRAM offsets for device addresses; MemoryFault if any is unmapped."""
        import numpy as np      # a kernel is running: numpy is loaded (not at start-up)
        if addr.size == 0:
            return addr.astype(np.int64)
        lo = int(addr.min())
        hi = int(addr.max())
        bo = self.find(lo, hi - lo + size)
        if bo is not None:
            # One buffer holds every access: the common case, one subtraction.
            return addr.astype(np.int64) + (bo.vram_offset - bo.gpu_va)
        return self._translate_slow(addr, size, write)

    def _translate_slow(self, addr: np.ndarray, size: int, write: bool) -> np.ndarray:
        import numpy as np
        if self._arrays is None:
            self._arrays = (
                np.array(self._starts, dtype=np.uint64),
                np.array([b.gpu_va + b.size for b in self._bos], dtype=np.uint64),
                np.array([b.vram_offset - b.gpu_va for b in self._bos], dtype=np.int64),
            )
        starts, ends, delta = self._arrays
        idx = np.searchsorted(starts, addr, side="right").astype(np.int64) - 1
        ok = idx >= 0
        safe = np.where(ok, idx, 0)
        if len(starts):
            ok &= (addr + np.uint64(size)) <= ends[safe]
        else:
            ok[:] = False
        if not ok.all():
            bad = int(addr[np.argmin(ok)])
            kind = "write" if write else "read"
            raise MemoryFault("mmu", f"{kind} of {size} bytes at unmapped device address 0x{bad:x}", address=bad)
        return addr.astype(np.int64) + delta[safe]
