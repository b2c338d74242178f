"""Device events: a flag plus the device time at which it was signalled."""

from __future__ import annotations

from dataclasses import dataclass

from structs.enums import EventStatus


@dataclass(eq=False)
class Event:
    handle: int
    status: int = EventStatus.UNSIGNALED
    timestamp: int = 0
    fence: int = 0            # fence of the last record
    queue_id: int = 0         # queue of the last record
    pending_records: int = 0  # records queued but not yet executed
