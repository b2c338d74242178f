"""Buffer objects: a range of VRAM, mapped into one context's VM.

The VRAM range itself is a ``Memory``: one per BO_CREATE, shared by every
buffer object that IPC_IMPORT makes of it (in other contexts, possibly of
other processes when a daemon shares the device).  The range is freed when
the last buffer object on it is gone: handle destroyed and no host mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

# mmap offsets handed out by BO_MMAP_OFFSET live above this, so they can
# never be mistaken for a plain file offset of 0.
MMAP_OFFSET_BASE = 1 << 40


@dataclass(eq=False)
class Memory:
    """A VRAM range and who still needs it."""

    vram_offset: int
    size: int
    users: int = 1            # buffer objects on it not yet fully gone
    token: bytes | None = None    # IPC token while exported
    exporter: object = None   # the BO whose destruction revokes the token


@dataclass(eq=False)
class BufferObject:
    handle: int
    size: int                 # page-rounded
    vram_offset: int
    gpu_va: int = 0
    host_maps: int = 0        # live user-space mappings
    destroyed: bool = False   # handle gone; VRAM kept while host_maps > 0
    memory: Memory | None = None  # shared backing (None: this BO alone owns its range)

    @property
    def mmap_offset(self) -> int:
        return MMAP_OFFSET_BASE + self.vram_offset
