"""One simulated aicard: its VRAM, its clock, its contexts and the engine that
runs their queues.

Commands run in the thread that submits them, under the device lock, as soon
as their queue reaches them: there is no device thread to schedule, so a run
is deterministic and a command that faults does so inside the ioctl that
submitted it.  A queue only holds commands back when it waits on an event;
whoever signals that event (another queue's record, or the host) runs what
became runnable.  Waiters sleep on the device condition variable.
"""

from __future__ import annotations

import errno
import threading
import time

from pydriver import firmware, hw
from pydriver.errors import DriverError
from pydriver.log import log
from pydriver.queue import Op, Queue
from pydriver.sim.faults import DeviceFault
from pydriver.vram import Vram
from structs import uapi
from structs.enums import EventStatus, FenceStatus



class DeviceClock:
    """Device time in ticks.  Work advances it by its modelled cost; idle
    time advances it with the host's monotonic clock.  Never goes back."""

    def __init__(self, freq: int = hw.TIMESTAMP_FREQ):
        self.freq = freq
        self._t0 = time.monotonic_ns()
        self.busy_until = 0
        self._last = 0

    def now(self) -> int:
        wall = (time.monotonic_ns() - self._t0) * self.freq // 1_000_000_000
        self._last = max(self._last, self.busy_until, wall)
        return self._last

    def run(self, cost: int) -> int:
        """Account for work of cost ticks starting now; returns its end."""
        self.busy_until = self.now() + max(0, int(cost))
        self._last = self.busy_until
        return self.busy_until


class Device:
    def __init__(self, minor: int, config):
        self.minor = minor
        self.config = config
        self.fw_version = (1, 0)
        self.vram = Vram(config.vram_size, f"aicard{minor}-vram")
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.clock = DeviceClock()
        self.contexts: set = set()
        self.orphans: set = set()     # destroyed BOs still mapped by the host

    # -- identity ---------------------------------------------------------

    def info(self):
        codec = uapi.DeviceInfo.codec()
        major, minor = self.fw_version
        return codec.make(
            vendor_id=hw.VENDOR_ID, device_id=hw.DEVICE_ID,
            uapi_version=(uapi.UAPI_VERSION[0] << 16) | uapi.UAPI_VERSION[1],
            fw_version=(major << 16) | minor, vram_size=self.vram.size,
            core_count=hw.CORE_COUNT, warp_size=hw.WARP_SIZE,
            max_threads_per_block=hw.MAX_THREADS_PER_BLOCK,
            max_shared_per_block=hw.MAX_SHARED_PER_BLOCK,
            max_grid_dim=hw.MAX_GRID, max_block_dim=hw.MAX_BLOCK,
            timestamp_freq=self.clock.freq, minor=self.minor, caps=0,
            name=hw.NAME.ljust(32, b"\0"),
        )

    # -- memory -----------------------------------------------------------

    def free_bo_memory(self, bo) -> None:
        self.vram.free(bo.vram_offset, bo.size)

    # -- queues -----------------------------------------------------------

    def submit(self, ctx, queue: Queue, op: Op, *, sync: bool = False) -> int:
        """Queue op and run what can run.  Returns the op's fence.

        On an idle queue the op runs right here, before it gets a fence, so
        a user-pointer error surfaces as this ioctl's errno (EFAULT) rather
        than as a failed fence.  Device faults always complete the fence
        with an error status, as hardware would report them."""
        if ctx.faulted is not None:
            raise DriverError(errno.ECANCELED, f"context {ctx.id} was lost to a device fault: {ctx.faulted}")
        if queue.idle and firmware.runnable(ctx, op):
            self._execute(ctx, op)
            seqno = queue.push(op)
            queue.pending.pop()
            queue.complete(op)
            if op.kind.startswith("event"):
                self.kick(ctx)
            self.cond.notify_all()
            return seqno
        seqno = queue.push(op)
        self.kick(ctx)
        if sync:
            self.cond.wait_for(lambda: op.done)
            if isinstance(op.error, DriverError):
                raise op.error
        return seqno

    def kick(self, ctx) -> None:
        """Run every queued op of ctx that is runnable, until none is."""
        progress = True
        while progress:
            progress = False
            for queue in list(ctx.queues.values()):
                while queue.pending and firmware.runnable(ctx, queue.pending[0]):
                    op = queue.pending.popleft()
                    try:
                        self._execute(ctx, op)
                    except DriverError as e:
                        # Deferred: no ioctl left to return it from.
                        op.status, op.error = FenceStatus.FAULT, e
                        log.warning("aicard%d ctx %d queue %d fence %d failed: %s",
                                    self.minor, ctx.id, queue.queue_id, op.seqno, e)
                    queue.complete(op)
                    progress = True
        self.cond.notify_all()

    def _execute(self, ctx, op: Op) -> None:
        try:
            cost = firmware.execute(self, ctx, op)
        except DeviceFault as fault:
            op.status = FenceStatus.TIMEOUT if fault.kind == "timeout" else FenceStatus.FAULT
            op.error = fault
            ctx.faulted = fault
            log.warning("aicard%d ctx %d: device fault in %s: %s", self.minor, ctx.id,
                        op.args.get("name", op.kind), fault)
            cost = 0
        self.clock.run(cost)

    def wait(self, predicate, timeout_ns: int) -> bool:
        """Sleep on the device until predicate() holds; False on timeout."""
        if predicate():
            return True
        if timeout_ns == 0:
            return False
        timeout = None if timeout_ns >= uapi.TIMEOUT_INFINITE else timeout_ns / 1e9
        return self.cond.wait_for(predicate, timeout)

    # -- events -----------------------------------------------------------

    def signal_event(self, ctx, event) -> None:
        event.status = EventStatus.SIGNALED
        event.timestamp = self.clock.now()
        self.kick(ctx)

    def close(self) -> None:
        self.vram.close()
