"""The ioctl handlers, one per request, and the table that dispatches to them.

A handler gets the context and the decoded argument record (inputs filled,
outputs zero), fills in its outputs and returns >= 0, or raises DriverError.
The dispatcher (driver.py) decodes, calls under the device lock, and encodes
the record back.  Nested user pointers go through ctx.mm (uaccess.py).
"""

from __future__ import annotations

import errno
import secrets
from dataclasses import dataclass
from typing import Callable

from pydriver import hw
from pydriver.bo import MMAP_OFFSET_BASE, BufferObject, Memory
from pydriver.device import PRINT_BUFFER_SIZE
from pydriver.errors import DriverError
from pydriver.event import SLOT_SIZE as EVENT_SLOT
from pydriver.event import Event
from pydriver.log import log
from pydriver.queue import Queue
from pydriver.ranges import align_up
from structs import uapi
from structs.enums import CmdType, CopyKind, EventStatus, FenceStatus, QueryType, TransformerOp
from structs.layout import LayoutError

EINVAL, EFAULT, ENOMEM, ENOENT = errno.EINVAL, errno.EFAULT, errno.ENOMEM, errno.ENOENT
MAX_QUEUES = 64
FENCE_SLOT = 8


# Checks whose message is built from values are written `if not cond: raise`
# instead: an f-string argument is formatted on every call, failing or not,
# and that was a third of WAIT's handler time.
def _require(cond: bool, message: str, err: int = EINVAL) -> None:
    if not cond:
        raise DriverError(err, message)


def _zero(value, what: str) -> None:
    if value != 0:
        raise DriverError(EINVAL, f"{what} must be 0, got {value:#x}")


def _alive(ctx) -> None:
    """After a wait: the context may have been closed meanwhile (another
    thread closed its last fd, or its process died under the daemon)."""
    if ctx.destroyed:
        raise DriverError(errno.ECANCELED, f"context {ctx.id} was closed during the wait")


# -- DEV_QUERY ---------------------------------------------------------------

_CLOCK = int(QueryType.CLOCK)


def _clock_answer(timestamp: int, freq: int) -> bytes:
    c = uapi.Clock.codec()
    return c.pack(c.make(timestamp=timestamp, freq=freq))


def _answer(ctx, qtype: int) -> bytes:
    dev = ctx.device
    if qtype == _CLOCK:                   # the frequent one (timestamps), first
        clock = dev.clock
        return _clock_answer(clock.now(), clock.freq)
    if qtype == QueryType.DEVICE_INFO:
        return uapi.DeviceInfo.codec().pack(dev.info())
    if qtype == QueryType.MEM_INFO:
        c = uapi.MemInfo.codec()
        return c.pack(c.make(vram_size=dev.vram.size, vram_used=dev.bo_bytes, ctx_used=ctx.used,
                             ctx_bo_count=len(ctx.bos)))
    raise DriverError(EINVAL, f"unknown query type {qtype}")


def ioctl_dev_query(ctx, a) -> int:
    answer = _answer(ctx, a.type)
    n = len(answer)
    if a.pointer:
        ctx.mm.write(a.pointer, answer if a.size >= n else answer[:a.size])
    a.size = n
    return 0


# -- buffer objects ----------------------------------------------------------

def ioctl_bo_create(ctx, a) -> int:
    _zero(a.flags, "flags")
    _require(a.size > 0, "size must be > 0")
    dev = ctx.device
    size = align_up(a.size, uapi.PAGE_SIZE)
    if size > dev.vram.size:
        raise DriverError(ENOMEM, f"size {a.size:#x} exceeds VRAM ({dev.vram.size:#x})")
    offset = dev.vram.alloc(size)
    if offset is None:
        raise DriverError(ENOMEM, f"no {size:#x} bytes free in VRAM ({dev.vram.used:#x} of "
                          f"{dev.vram.size:#x} used)")
    bo = BufferObject(ctx.new_handle(), size, offset, memory=Memory(offset, size))
    va = ctx.vm.map(bo)
    if va is None:
        dev.vram.free(offset, size)
        raise DriverError(ENOMEM, "GPU address space of the context is full")
    bo.gpu_va = va
    ctx.bos[bo.handle] = bo
    ctx.bo_by_mmap[bo.mmap_offset] = bo
    ctx.used += size
    dev.bo_bytes += size
    a.handle, a.gpu_va = bo.handle, va
    return 0


def destroy_bo(ctx, bo) -> None:
    """Drop bo from ctx.  Its VRAM stays while user space still maps it, and
    until the work the context already submitted is done with it."""
    del ctx.bos[bo.handle]
    del ctx.bo_by_mmap[bo.mmap_offset]
    ctx.vm.unmap(bo)
    ctx.used -= bo.size
    bo.destroyed = True
    dev = ctx.device
    mem = bo.memory
    if mem is not None and mem.exporter is bo:
        # The exporter's handle is gone: nobody may import the buffer any
        # more (imports already made keep the memory).
        dev.ipc.pop(mem.token, None)
        mem.token = mem.exporter = None
    if bo.host_maps:
        dev.orphans.add(bo)
    else:
        dev.free_bo_memory(bo)


def ioctl_bo_destroy(ctx, a) -> int:
    destroy_bo(ctx, ctx.bo(a.handle))
    return 0


def ioctl_bo_mmap_offset(ctx, a) -> int:
    a.offset = ctx.bo(a.handle).mmap_offset
    return 0


# -- queues ------------------------------------------------------------------

def ioctl_queue_create(ctx, a) -> int:
    _zero(a.flags, "flags")
    if a.priority > 3:
        raise DriverError(EINVAL, f"priority {a.priority} is not 0..3")
    _require(len(ctx.queues) < MAX_QUEUES, "too many queues in this context", errno.EBUSY)
    q = Queue(ctx.new_handle(), a.priority, fence_offset=ctx.device.alloc_slot(FENCE_SLOT))
    ctx.queues[q.queue_id] = q
    a.queue_id = q.queue_id
    return 0


def ioctl_queue_destroy(ctx, a) -> int:
    q = ctx.queue(a.queue_id)
    if not q.idle:
        raise DriverError(errno.EBUSY, f"queue {a.queue_id} still has {q.last_seqno - q.completed} commands in flight")
    del ctx.queues[a.queue_id]
    ctx.device.free_slot(q.fence_offset, FENCE_SLOT)
    return 0


# -- SUBMIT ------------------------------------------------------------------

_CMD_LAYOUTS = {
    CmdType.LAUNCH: uapi.CmdLaunch,
    CmdType.EVENT_RECORD: uapi.CmdEvent,
    CmdType.EVENT_WAIT: uapi.CmdEvent,
    CmdType.EVENT_RESET: uapi.CmdEvent,
    CmdType.MEMBAR: uapi.CmdMembar,
    CmdType.NOTIFY: uapi.CmdNotify,
    CmdType.TRANSFORMER: uapi.CmdTransformer,
}


def _decode_cmd(raw: bytes, index: int):
    ctype = int.from_bytes(raw[:4], "little")
    layout = _CMD_LAYOUTS.get(ctype)
    if layout is None:
        raise DriverError(EINVAL, f"command {index}: unknown type {ctype}")
    codec = layout.codec()
    try:
        cmd = codec.unpack(raw)
    except LayoutError as e:
        raise DriverError(EINVAL, f"command {index} ({layout.name}): {e}") from None
    if raw[codec.size:].strip(b"\0"):
        raise DriverError(EINVAL, f"command {index}: bytes past its {codec.size}-byte layout must be zero")
    if ctype != CmdType.TRANSFORMER and cmd.flags:
        raise DriverError(EINVAL, f"command {index}: flags must be 0, got {cmd.flags:#x}")
    return ctype, cmd


# Per transformer op: the dimensions it uses, and its buffers as
# (field, element count from the command, what, optional).
_TRANSFORMER_DIMS = {
    TransformerOp.ENCODE: ("rows", "dim", "keys"),
    TransformerOp.DECODE: ("rows", "dim"),
    TransformerOp.ATTENTION: ("rows", "dim", "keys", "vdim"),
}
_TRANSFORMER_BUFS = {
    TransformerOp.ENCODE: (("dst", lambda c: c.rows * c.dim, "encode destination", False),
                           ("src0", lambda c: c.rows, "tokens", False),
                           ("src1", lambda c: c.keys * c.dim, "embedding table", False),
                           ("src2", lambda c: c.rows * c.dim, "position table", True)),
    TransformerOp.DECODE: (("dst", lambda c: c.rows, "decode destination", False),
                           ("src0", lambda c: c.rows * c.dim, "logits", False)),
    TransformerOp.ATTENTION: (("dst", lambda c: c.rows * c.vdim, "attention output", False),
                              ("src0", lambda c: c.rows * c.dim, "Q", False),
                              ("src1", lambda c: c.keys * c.dim, "K", False),
                              ("src2", lambda c: c.keys * c.vdim, "V", False)),
}


def _check_transformer(ctx, cmd, index: int) -> dict:
    where = f"command {index} (transformer)"
    try:
        op = TransformerOp(cmd.op)
    except ValueError:
        raise DriverError(EINVAL, f"{where}: unknown op {cmd.op}") from None
    allowed = uapi.TRANSFORMER_CAUSAL if op == TransformerOp.ATTENTION else 0
    if cmd.flags & ~allowed != 0:
        raise DriverError(EINVAL, f"{where}: flags {cmd.flags:#x} not valid for {op.name}")
    used = _TRANSFORMER_DIMS[op]
    for name in ("rows", "dim", "keys", "vdim"):
        v = getattr(cmd, name)
        if name in used:
            if not (1 <= v <= uapi.TRANSFORMER_MAX_DIM):
                raise DriverError(EINVAL, f"{where}: {name} {v} is not 1..{uapi.TRANSFORMER_MAX_DIM}")
        else:
            _zero(v, f"{where}: {name} (unused by {op.name})")
    if op == TransformerOp.ATTENTION:
        if cmd.rows * cmd.keys > uapi.TRANSFORMER_MAX_SCORES:
            raise DriverError(EINVAL, f"{where}: {cmd.rows} x {cmd.keys} scores > {uapi.TRANSFORMER_MAX_SCORES}")
    bufs = _TRANSFORMER_BUFS[op]
    names = {b[0] for b in bufs}
    for name in ("dst", "src0", "src1", "src2"):
        if name not in names:
            _zero(getattr(cmd, name), f"{where}: {name} (unused by {op.name})")
    for name, count, what, optional in bufs:
        va = getattr(cmd, name)
        if optional and va == 0:
            continue
        if va % 4 != 0:
            raise DriverError(EINVAL, f"{where}: {what} at {va:#x} is not 4-byte aligned")
        ctx.range(va, 4 * count(cmd), f"{where}: {what}")
    return dict(op=cmd.op, op_flags=cmd.flags, rows=cmd.rows, dim=cmd.dim, keys=cmd.keys,
                vdim=cmd.vdim, dst=cmd.dst, src0=cmd.src0, src1=cmd.src1, src2=cmd.src2)


def _check_launch(ctx, cmd, index: int) -> dict:
    """Everything the firmware's LAUNCH needs, checked; parameters copied in."""
    loaded = ctx.module(cmd.module)
    fns = loaded.module.functions
    if cmd.function >= len(fns):
        raise DriverError(EINVAL, f"command {index}: module {cmd.module} has no function {cmd.function}")
    fn = fns[cmd.function]
    g, b = cmd.grid, cmd.block
    if min(g) < 1 or min(b) < 1:
        raise DriverError(EINVAL, f"command {index}: grid {g} / block {b} has a zero dimension")
    mg, mb = hw.MAX_GRID, hw.MAX_BLOCK
    if g[0] > mg[0] or g[1] > mg[1] or g[2] > mg[2]:
        raise DriverError(EINVAL, f"command {index}: grid {g} too large")
    if b[0] > mb[0] or b[1] > mb[1] or b[2] > mb[2]:
        raise DriverError(EINVAL, f"command {index}: block {b} too large")
    threads = cmd.block[0] * cmd.block[1] * cmd.block[2]
    if threads > hw.MAX_THREADS_PER_BLOCK:
        raise DriverError(EINVAL, f"command {index}: {threads} threads per block > "
                          f"{hw.MAX_THREADS_PER_BLOCK}")
    if fn.shared_size + cmd.shared_size > hw.MAX_SHARED_PER_BLOCK:
        raise DriverError(EINVAL, f"command {index}: {fn.shared_size + cmd.shared_size} bytes of shared memory > "
                          f"{hw.MAX_SHARED_PER_BLOCK}")
    if cmd.params_size != fn.param_size:
        raise DriverError(EINVAL, f"command {index}: params_size {cmd.params_size} but "
                          f"{fn.name} takes {fn.param_size} bytes")
    params = ctx.mm.read(cmd.params, cmd.params_size) if cmd.params_size else b""
    return dict(prints=loaded.prints, code_offset=loaded.code_offset, code_size=loaded.code_size, function=cmd.function,
                grid_x=g[0], grid_y=g[1], grid_z=g[2], block_x=b[0], block_y=b[1], block_z=b[2],
                shared_size=cmd.shared_size, params_size=cmd.params_size, params=params)


_EVENT_CMDS = {CmdType.EVENT_RECORD: "EVENT_WRITE", CmdType.EVENT_WAIT: "EVENT_WAIT",
               CmdType.EVENT_RESET: "EVENT_RESET"}


def ioctl_submit(ctx, a) -> int:
    _zero(a.flags, "flags")
    q = ctx.queue(a.queue_id)
    if not (1 <= a.cmd_count <= uapi.SUBMIT_MAX_CMDS):
        raise DriverError(EINVAL, f"cmd_count {a.cmd_count} is not 1..{uapi.SUBMIT_MAX_CMDS}")
    if not (uapi.CMD_SIZE <= a.cmd_stride <= 4096 and a.cmd_stride % 8 == 0):
        raise DriverError(EINVAL, f"cmd_stride {a.cmd_stride} is not a multiple of 8 in {uapi.CMD_SIZE}..4096")
    raw = ctx.mm.read(a.cmds, a.cmd_count * a.cmd_stride)
    # Decode and check every command before sending any: a submit goes in
    # whole or not at all.
    work = []
    for i in range(a.cmd_count):
        ctype, cmd = _decode_cmd(raw[i * a.cmd_stride:(i + 1) * a.cmd_stride], i)
        if ctype == CmdType.LAUNCH:
            work.append(("LAUNCH", _check_launch(ctx, cmd, i), None))
        elif ctype in _EVENT_CMDS:
            work.append((_EVENT_CMDS[ctype], {}, ctx.event(cmd.event)))
        elif ctype == CmdType.NOTIFY:
            work.append(("NOTIFY", dict(value=cmd.value), None))
        elif ctype == CmdType.TRANSFORMER:
            work.append(("TRANSFORMER", _check_transformer(ctx, cmd, i), None))
        else:
            work.append(("MEMBAR", {}, None))
    dev = ctx.device
    for name, fields, ev in work:
        if name == "LAUNCH":
            params = fields.pop("params")
            extra = ()
            if fields.pop("prints"):
                # The kernel's printf output goes up when it is done.
                extra = [("PRINTF_FLUSH", dict(buffer_offset=dev.print_buffer(ctx),
                                               buffer_size=PRINT_BUFFER_SIZE))]
            if not params:
                # Nothing to hand over: no parameter memory to hold until the kernel is done.
                a.fence = dev.submit(ctx, q, "LAUNCH", extra=extra, params_offset=0,
                                     prio=q.priority, **fields)
                continue
            poff = dev.alloc_params(params)
            try:
                a.fence = dev.submit(ctx, q, "LAUNCH", extra=extra, params_offset=poff,
                                     prio=q.priority, **fields)
            except DriverError:
                dev.params.free(poff, max(len(params), 16))
                raise
            dev.retire_after(ctx, lambda o=poff, n=max(len(params), 16): dev.params.free(o, n), q, a.fence)
        elif ev is not None:
            if name == "EVENT_WRITE":
                slot = dev.event_slot(ev)
                slot.pending += 1
                slot.status = EventStatus.PENDING
                dev.write_event_slot(ev, slot)
                a.fence = dev.submit(ctx, q, name, event_offset=ev.slot, status=EventStatus.SIGNALED,
                                     timestamp=1)
                ev.fence, ev.queue_id = a.fence, q.queue_id
            else:
                a.fence = dev.submit(ctx, q, name, event_offset=ev.slot)
        else:
            a.fence = dev.submit(ctx, q, name, **fields)
    return 0


def ioctl_wait(ctx, a) -> int:
    if a.flags:
        raise DriverError(EINVAL, f"flags must be 0, got {a.flags:#x}")
    q = ctx.queue(a.queue_id)
    fence = a.fence
    if fence > q.last_seqno:
        raise DriverError(EINVAL, f"fence {fence} was never issued on queue {a.queue_id} "
                          f"(last is {q.last_seqno})")
    if q.completed < fence:           # not yet: sleep on the device (an already signalled fence is the hot case)
        done = ctx.device.wait(lambda: q.completed >= fence or ctx.destroyed, a.timeout_ns)
        _alive(ctx)
        if not done:
            a.completed = q.completed
            raise DriverError(errno.ETIMEDOUT, f"fence {fence} of queue {a.queue_id} not done in time")
    a.completed = q.completed
    a.status = q.status_of(fence)
    return 0


# -- copies ------------------------------------------------------------------

def _finish(ctx, q, fence: int, sync: bool) -> None:
    """For a SYNC request: wait for the fence and fail the ioctl if it failed."""
    if not sync:
        return
    ctx.device.wait(lambda: q.completed >= fence or ctx.destroyed, uapi.TIMEOUT_INFINITE)
    _alive(ctx)
    if q.status_of(fence) != FenceStatus.OK:
        raise DriverError(errno.ECANCELED, f"the copy did not complete: {ctx.faulted}")


def ioctl_copy(ctx, a) -> int:
    if a.flags & ~uapi.COPY_SYNC != 0:
        raise DriverError(EINVAL, f"unknown flags {a.flags:#x}")
    q = ctx.queue(a.queue_id)
    if a.kind not in (CopyKind.HTOD, CopyKind.DTOH, CopyKind.DTOD):
        raise DriverError(EINVAL, f"unknown copy kind {a.kind}")
    # On an idle queue the copy runs inside this ioctl, and a bad user
    # pointer comes back from the firmware as this ioctl's EFAULT.  Behind
    # other work it runs later: then the user range must be there now
    # ("pinned"), or the program would only learn of it from a dead context.
    dev = ctx.device
    immediate = q.idle
    if a.size:
        if a.kind == CopyKind.HTOD:
            if not immediate:
                ctx.mm.check(a.src, a.size)
        else:
            ctx.range(a.src, a.size, "copy source")
        if a.kind == CopyKind.DTOH:
            if not immediate:
                ctx.mm.check(a.dst, a.size)
        else:
            ctx.range(a.dst, a.size, "copy destination")
    dev.expect_host_fault = (ctx.id, q.queue_id, q.last_seqno + 1) if immediate else None
    try:
        a.fence = dev.submit(ctx, q, "COPY", kind=a.kind, size=a.size, src=a.src, dst=a.dst)
    finally:
        dev.expect_host_fault = None
        fault, dev.host_fault = dev.host_fault, None
    if fault is not None:
        raise DriverError(EFAULT, f"bad user pointer: {fault.message}")
    _finish(ctx, q, a.fence, bool(a.flags & uapi.COPY_SYNC))
    return 0


def ioctl_memset(ctx, a) -> int:
    if a.flags & ~uapi.COPY_SYNC != 0:
        raise DriverError(EINVAL, f"unknown flags {a.flags:#x}")
    q = ctx.queue(a.queue_id)
    if a.elem_size not in (1, 2, 4):
        raise DriverError(EINVAL, f"elem_size {a.elem_size} is not 1, 2 or 4")
    if a.dst % a.elem_size != 0:
        raise DriverError(EINVAL, f"dst {a.dst:#x} is not aligned to {a.elem_size}")
    if a.count:
        ctx.range(a.dst, a.count * a.elem_size, "memset destination")
    a.fence = ctx.device.submit(ctx, q, "MEMSET", dst=a.dst, count=a.count, value=a.value,
                                elem_size=a.elem_size)
    _finish(ctx, q, a.fence, bool(a.flags & uapi.COPY_SYNC))
    return 0


# -- modules -----------------------------------------------------------------

@dataclass(eq=False)
class LoadedModule:
    handle: int
    module: object            # structs.module.Module: the function table
    code_offset: int          # VRAM copy of the image, which the firmware runs
    code_size: int
    prints: bool = False      # has printf instructions: launches flush the print buffer


def _has_printf(module) -> bool:
    from structs.isa import Opcode
    return Opcode.PRINTF in bytes(module.code[0::16])


def ioctl_module_load(ctx, a) -> int:
    # Imported here: a program that never loads a module never pays for them.
    from structs.module import ModuleFormatError, parse_module

    _zero(a.flags, "flags")
    if not (0 < a.size <= uapi.MODULE_MAX_SIZE):
        raise DriverError(EINVAL, f"module size {a.size} is not 1..{uapi.MODULE_MAX_SIZE}")
    image = ctx.mm.read(a.image, a.size)
    try:
        module = parse_module(image)
    except ModuleFormatError as e:
        log.warning("aicard%d ctx %d: module rejected: %s", ctx.device.minor, ctx.id, e)
        raise DriverError(EINVAL, f"bad module image: {e}") from None
    dev = ctx.device
    prints = _has_printf(module)
    if prints:
        dev.print_buffer(ctx)
    off = dev.vram.alloc(len(image))
    if off is None:
        raise DriverError(ENOMEM, f"no VRAM for a {len(image)}-byte module")
    dev.vram.mv[off:off + len(image)] = image
    loaded = LoadedModule(ctx.new_handle(), module, off, len(image), prints)
    ctx.modules[loaded.handle] = loaded
    # Kernels are coming: the simulator loads its executor (and numpy) now
    # rather than inside the first launch a program may be timing.
    dev.firmware.expect_launches()
    a.handle = loaded.handle
    a.function_count = len(module.functions)
    return 0


def unload_module(ctx, loaded) -> None:
    del ctx.modules[loaded.handle]
    dev = ctx.device
    # Launches already submitted still run this code.
    dev.retire_after(ctx, lambda: dev.vram.free(loaded.code_offset, loaded.code_size))


def ioctl_module_unload(ctx, a) -> int:
    unload_module(ctx, ctx.module(a.handle))
    return 0


_PARAM = uapi.ParamInfo.codec()


def ioctl_module_function(ctx, a) -> int:
    fns = ctx.module(a.module).module.functions
    nul = a.name.find(b"\0")
    _require(nul >= 0, "name is not NUL-terminated")
    name = a.name[:nul].decode("utf-8", "replace")
    if name:
        matches = [i for i, f in enumerate(fns) if f.name == name]
        if not matches:
            raise DriverError(ENOENT, f"module {a.module} has no function {name!r}")
        a.index = matches[0]
    else:
        if a.index >= len(fns):
            raise DriverError(EINVAL, f"module {a.module} has no function {a.index}")
    fn = fns[a.index]
    if len(fn.params) > uapi.MAX_PARAMS:
        raise DriverError(EINVAL, f"{fn.name} has more than {uapi.MAX_PARAMS} parameters")
    a.name = fn.name.encode()[:uapi.NAME_LEN - 1].ljust(uapi.NAME_LEN, b"\0")
    a.param_size = fn.param_size
    a.param_count = len(fn.params)
    a.shared_size = fn.shared_size
    a.num_regs = fn.num_regs
    a.params = b"".join(_PARAM.pack(_PARAM.record(p.offset, p.size, p.kind)) for p in fn.params) \
        .ljust(uapi.MAX_PARAMS * 4, b"\0")
    return 0


# -- events ------------------------------------------------------------------

def ioctl_event_create(ctx, a) -> int:
    _zero(a.flags, "flags")
    ev = Event(ctx.new_handle(), ctx.device.alloc_slot(EVENT_SLOT))
    ctx.events[ev.handle] = ev
    a.handle = ev.handle
    return 0


def destroy_event(ctx, ev) -> None:
    del ctx.events[ev.handle]
    dev = ctx.device
    # Commands already submitted may still write or read its slot.
    dev.retire_after(ctx, lambda: dev.free_slot(ev.slot, EVENT_SLOT))


def ioctl_event_destroy(ctx, a) -> int:
    destroy_event(ctx, ctx.event(a.handle))
    return 0


def ioctl_event_query(ctx, a) -> int:
    ev = ctx.event(a.handle)
    slot = ctx.device.event_slot(ev)
    a.status, a.timestamp, a.fence, a.queue_id = slot.status, slot.timestamp, ev.fence, ev.queue_id
    return 0


def ioctl_event_wait(ctx, a) -> int:
    """Wait until the event is signalled: the same condition a queue's
    CMD_EVENT_WAIT waits for (an event never recorded times out)."""
    _zero(a.flags, "flags")
    ev = ctx.event(a.handle)
    dev = ctx.device
    if not dev.wait(lambda: ctx.destroyed or dev.event_slot(ev).status == EventStatus.SIGNALED, a.timeout_ns):
        raise DriverError(errno.ETIMEDOUT, f"event {a.handle} not signalled in time")
    _alive(ctx)
    return 0


def ioctl_event_signal(ctx, a) -> int:
    ctx.device.signal_event(ctx.event(a.handle))
    return 0


# -- printf, interrupts, fence reset ------------------------------------------

def ioctl_printf_read(ctx, a) -> int:
    _zero(a.flags, "flags")
    box = ctx.device.mailbox(ctx)
    n = min(a.size, len(box.printf))
    if n:
        ctx.mm.write(a.pointer, bytes(box.printf[:n]))
        del box.printf[:n]
    a.size = n
    a.pending = len(box.printf)
    a.dropped, box.printf_dropped = box.printf_dropped, 0
    return 0


def ioctl_notify_wait(ctx, a) -> int:
    _zero(a.flags, "flags")
    dev = ctx.device
    box = dev.mailbox(ctx)
    if not dev.wait(lambda: bool(box.notes) or ctx.id not in dev.contexts, a.timeout_ns):
        raise DriverError(errno.ETIMEDOUT, "no interrupt in time")
    if not box.notes:
        raise DriverError(errno.ECANCELED, f"context {ctx.id} is gone")
    a.value = box.notes.popleft()
    a.pending = min(len(box.notes), 0xFFFFFFFF)
    a.count = box.notify_count
    return 0


def ioctl_fence_reset(ctx, a) -> int:
    _zero(a.flags, "flags")
    q = ctx.queue(a.queue_id)
    if not q.idle:
        raise DriverError(errno.EBUSY, f"queue {a.queue_id} still has {q.last_seqno - q.completed} commands in flight")
    dev = ctx.device
    # No fence of its own: the queue is idle, so the firmware runs it at once.
    dev.control(ctx, q, "FENCE_RESET", fence_offset=q.fence_offset, value=0)
    dev.forget_queue(ctx, q.queue_id)
    q.last_seqno = q.completed = q.first_failure = 0
    q.failure_status = FenceStatus.OK
    return 0


# -- IPC memory handles --------------------------------------------------------

def ioctl_ipc_export(ctx, a) -> int:
    _zero(a.flags, "flags")
    bo = ctx.bo(a.handle)
    mem = bo.memory
    if mem is None:
        raise DriverError(EINVAL, f"buffer object {a.handle} cannot be shared")
    if mem.token is None:
        # 32 bytes from the OS's CSPRNG: a token cannot be guessed, only
        # handed over by the exporter.  Minted per device: the table is.
        dev = ctx.device
        mem.token = secrets.token_bytes(uapi.IPC_TOKEN_SIZE)
        mem.exporter = bo
        dev.ipc[mem.token] = mem
    a.token = mem.token
    return 0


def ioctl_ipc_import(ctx, a) -> int:
    _zero(a.flags, "flags")
    dev = ctx.device
    mem = dev.ipc.get(bytes(a.token))
    if mem is None:
        raise DriverError(ENOENT, f"no buffer is exported with this token on aicard{dev.minor} (never was, "
                          "another device's, or its exporter freed it)")
    if MMAP_OFFSET_BASE + mem.vram_offset in ctx.bo_by_mmap:
        raise DriverError(EINVAL, f"the buffer is already mapped in context {ctx.id}")
    bo = BufferObject(ctx.new_handle(), mem.size, mem.vram_offset, memory=mem)
    va = ctx.vm.map(bo)
    _require(va is not None, "GPU address space of the context is full", ENOMEM)
    bo.gpu_va = va
    mem.users += 1
    ctx.bos[bo.handle] = bo
    ctx.bo_by_mmap[bo.mmap_offset] = bo
    ctx.used += bo.size
    a.handle, a.gpu_va, a.size = bo.handle, va, bo.size
    return 0


# -- the table ---------------------------------------------------------------

@dataclass(frozen=True)
class Handler:
    ioctl: uapi.Ioctl
    fn: Callable
    codec: object


HANDLERS: dict[int, Handler] = {}
for _io in uapi.IOCTLS:
    _fn = globals()["ioctl_" + _io.name.lower()]
    HANDLERS[_io.request] = Handler(_io, _fn, _io.layout.codec())
