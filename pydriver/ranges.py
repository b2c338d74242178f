"""A first-fit range allocator over [base, base + size), used twice: for
offsets in a device's VRAM and for addresses in a context's GPU VM."""

from __future__ import annotations

import bisect


def align_up(x: int, a: int) -> int:
    return (x + a - 1) // a * a


class RangeAllocator:
    def __init__(self, base: int, size: int):
        self.base, self.size = base, size
        # Free ranges as parallel sorted lists of starts and ends.
        self._starts = [base]
        self._ends = [base + size]
        self.used = 0

    def alloc(self, size: int, align: int = 4096, guard: int = 0) -> int | None:
        """Start of a free range of size bytes (plus guard bytes kept free
        after it, so overruns land in unmapped space), or None."""
        need = size + guard
        for i, (s, e) in enumerate(zip(self._starts, self._ends)):
            start = align_up(s, align)
            if start + need <= e:
                self._take(i, start, start + need)
                self.used += need
                return start
        return None

    def _take(self, i: int, start: int, end: int) -> None:
        s, e = self._starts[i], self._ends[i]
        pieces = [(a, b) for a, b in ((s, start), (end, e)) if b > a]
        self._starts[i:i + 1] = [a for a, _ in pieces]
        self._ends[i:i + 1] = [b for _, b in pieces]

    def free(self, start: int, size: int, guard: int = 0) -> None:
        end = start + size + guard
        i = bisect.bisect_left(self._starts, start)
        if (i < len(self._starts) and self._starts[i] < end) or (i > 0 and self._ends[i - 1] > start):
            raise ValueError(f"double free of [0x{start:x}, 0x{end:x})")
        self.used -= end - start
        # Coalesce with neighbours.
        if i > 0 and self._ends[i - 1] == start:
            i -= 1
            start = self._starts[i]
            del self._starts[i], self._ends[i]
        if i < len(self._starts) and self._starts[i] == end:
            end = self._ends[i]
            del self._starts[i], self._ends[i]
        self._starts.insert(i, start)
        self._ends.insert(i, end)

    def free_ranges(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends))
