"""Buffer objects: a range of VRAM, mapped into one context's VM."""

from __future__ import annotations

from dataclasses import dataclass

# mmap offsets handed out by BO_MMAP_OFFSET live above this, so they can
# never be mistaken for a plain file offset of 0.
MMAP_OFFSET_BASE = 1 << 40


@dataclass(eq=False)
class BufferObject:
    handle: int
    size: int                 # page-rounded
    vram_offset: int
    gpu_va: int = 0
    host_maps: int = 0        # live user-space mappings
    destroyed: bool = False   # handle gone; VRAM kept while host_maps > 0

    @property
    def mmap_offset(self) -> int:
        return MMAP_OFFSET_BASE + self.vram_offset
