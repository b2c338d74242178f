"""Queues: ordered command streams whose completion is tracked by fences.

Every command gets the next sequence number of its queue; the queue's fence
value is the number of the last completed command.  A command that fails
(device fault, watchdog) still completes, with a status that WAIT reports
for that fence and every later one: after a fault the queue's results can no
longer be trusted, which is what a runtime needs to hear.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from structs.enums import FenceStatus


@dataclass(eq=False)
class Op:
    """One command on a queue: what the firmware executes."""

    kind: str                 # copy, memset, launch, event_record, event_wait, event_reset, membar
    args: dict
    seqno: int = 0
    status: int = FenceStatus.OK
    error: Any = None         # the exception that failed it, for the log and the trace
    done: bool = False


@dataclass(eq=False)
class Queue:
    queue_id: int
    priority: int = 0
    last_seqno: int = 0       # last fence handed out
    completed: int = 0        # last fence completed
    first_failure: int = 0    # seqno of the first failed command, 0 if none
    failure_status: int = FenceStatus.OK
    pending: deque = field(default_factory=deque)

    def push(self, op: Op) -> int:
        self.last_seqno += 1
        op.seqno = self.last_seqno
        self.pending.append(op)
        return op.seqno

    @property
    def idle(self) -> bool:
        return not self.pending

    def complete(self, op: Op) -> None:
        op.done = True
        self.completed = op.seqno
        if op.status != FenceStatus.OK and not self.first_failure:
            self.first_failure = op.seqno
            self.failure_status = op.status

    def status_of(self, fence: int) -> int:
        if self.first_failure and self.first_failure <= fence:
            return self.failure_status
        return FenceStatus.OK
