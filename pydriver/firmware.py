"""The simulated firmware: what executes a queued command, and what it costs.

Costs are in device clock ticks (ns) from a simple model, so that event
timestamps move in proportion to the work done: copies at a fixed bandwidth,
kernels by issued warp instructions spread over the compute units.
"""

from __future__ import annotations

import time

import numpy as np

from pydriver import hw
from pydriver.queue import Op
from structs.enums import CopyKind, EventStatus

COPY_OVERHEAD = 500             # ticks per copy/fill
COPY_BYTES_PER_TICK = 16        # 16 GB/s
LAUNCH_OVERHEAD = 2_000         # ticks per launch
EVENT_OVERHEAD = 100


def runnable(ctx, op: Op) -> bool:
    """Only an event wait can hold a queue back."""
    if op.kind == "event_wait":
        return op.args["event"].status == EventStatus.SIGNALED
    return True


def execute(device, ctx, op: Op) -> int:
    return _EXEC[op.kind](device, ctx, op.args)


def _copy(device, ctx, a) -> int:
    kind, dst, src, size = a["kind"], a["dst"], a["src"], a["size"]
    if size:
        vram = device.vram
        if kind == CopyKind.HTOD:
            off = ctx.vram_offset(dst, size, "copy destination")
            ctx.mm.read_into(src, vram.address + off, size)
        elif kind == CopyKind.DTOH:
            off = ctx.vram_offset(src, size, "copy source")
            ctx.mm.write_from(dst, vram.address + off, size)
        else:
            d = ctx.vram_offset(dst, size, "copy destination")
            s = ctx.vram_offset(src, size, "copy source")
            # numpy sees the overlap of the two views and copies through a
            # temporary when needed, so overlapping ranges behave like memmove.
            vram.u8[d:d + size] = vram.u8[s:s + size]
    return COPY_OVERHEAD + size // COPY_BYTES_PER_TICK


_ELEM_TYPES = {1: np.uint8, 2: np.uint16, 4: np.uint32}


def _memset(device, ctx, a) -> int:
    elem, count = a["elem_size"], a["count"]
    nbytes = elem * count
    if nbytes:
        off = ctx.vram_offset(a["dst"], nbytes, "memset destination")
        view = device.vram.u8[off:off + nbytes].view(_ELEM_TYPES[elem])
        view[:] = a["value"] & ((1 << (8 * elem)) - 1)
    return COPY_OVERHEAD + nbytes // COPY_BYTES_PER_TICK


def _launch(device, ctx, a) -> int:
    from pydriver.sim import executor

    deadline = time.monotonic() + device.config.watchdog_s
    stats = executor.launch(
        a["program"], a["function"], a["grid"], a["block"], a["params"], ctx.vm,
        dynamic_shared=a["shared_size"], deadline=deadline)
    return LAUNCH_OVERHEAD + stats.warp_instructions * 4 // hw.CORE_COUNT \
        + (stats.bytes_loaded + stats.bytes_stored) // 256


def _event_record(device, ctx, a) -> int:
    ev = a["event"]
    ev.pending_records -= 1
    if ev.pending_records == 0:
        ev.status = EventStatus.SIGNALED
    ev.timestamp = device.clock.now()
    return EVENT_OVERHEAD


def _event_wait(device, ctx, a) -> int:
    return EVENT_OVERHEAD


def _event_reset(device, ctx, a) -> int:
    ev = a["event"]
    if ev.pending_records == 0:
        ev.status = EventStatus.UNSIGNALED
    return EVENT_OVERHEAD


def _membar(device, ctx, a) -> int:
    # Commands already complete in order; the barrier only costs time.
    return EVENT_OVERHEAD


_EXEC = {
    "copy": _copy,
    "memset": _memset,
    "launch": _launch,
    "event_record": _event_record,
    "event_wait": _event_wait,
    "event_reset": _event_reset,
    "membar": _membar,
}
