"""Device events.  Their state lives in an EventSlot in VRAM, which the
firmware writes (EVENT_WRITE) and the driver reads (EVENT_QUERY/WAIT)."""

from __future__ import annotations

from dataclasses import dataclass

SLOT_SIZE = 16


@dataclass(eq=False)
class Event:
    handle: int
    slot: int                 # VRAM offset of its EventSlot
    fence: int = 0            # fence of the last record
    queue_id: int = 0         # queue of the last record
