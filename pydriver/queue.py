"""Queues as the driver tracks them: fences handed out and completed.

Every command gets the next sequence number of its queue (its fence); the
firmware reports completions on the completion ring.  A command that fails
completes with a status that WAIT reports for that fence and every later one:
after a fault the queue's results can no longer be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

from structs.enums import FenceStatus


@dataclass(eq=False)
class Queue:
    queue_id: int
    priority: int = 0
    fence_offset: int = 0     # VRAM slot the firmware writes completed fences to
    last_seqno: int = 0       # last fence handed out
    completed: int = 0        # last fence completed
    first_failure: int = 0    # seqno of the first failed command, 0 if none
    failure_status: int = FenceStatus.OK

    @property
    def idle(self) -> bool:
        return self.completed >= self.last_seqno

    def status_of(self, fence: int) -> int:
        if self.first_failure and self.first_failure <= fence:
            return self.failure_status
        return FenceStatus.OK
