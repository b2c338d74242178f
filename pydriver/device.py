"""One aicard as the driver sees it: VRAM, the rings it shares with the
firmware, and the contexts using it.

The driver talks to the firmware only through memory, as on hardware:

    VRAM 0x0      InitData (driver writes at boot; the firmware reads it)
    kernel area   command ring, completion ring, fence/event slots, module
                  code, kernel parameter blocks
    the rest      buffer objects of the contexts

To run a command the driver encodes it with the layouts of the firmware
version it believes the device runs (structs/fw.py), appends it and a
FENCE_WRITE to the command ring and rings the doorbell; the firmware parses
with *its* version's layouts, runs what it can, and answers on the
completion ring, which the driver drains to complete fences and learn of
faults.  The doorbell runs the firmware in the calling thread, under the
device lock: no device thread, deterministic order, and a fault happens
inside the ioctl that caused it.  Waiters sleep on the device condition.
"""

from __future__ import annotations

import errno
import threading
from collections import deque
from dataclasses import dataclass, field

from pydriver import hw
from pydriver.errors import DriverError
from pydriver.log import log
from pydriver.ranges import RangeAllocator
from pydriver.ring import Ring, RingFull
from pydriver.sim.clock import DeviceClock
from pydriver.sim.firmware import Firmware
from pydriver.vram import Vram
from structs import describe, fw, uapi
from structs.enums import FenceStatus

CMD_RING_SIZE = 1 << 20
EVT_RING_SIZE = 1 << 20
SLOT_HEAP_SIZE = 256 << 10       # fence and event slots
PARAM_HEAP_SIZE = 1 << 20        # kernel parameter blocks of launches in flight


PRINT_BUFFER_SIZE = 1 << 20      # per context, like CUDA's default printf FIFO
HOST_PRINTF_MAX = 8 << 20        # printf text the driver keeps for PRINTF_READ, per context
HOST_NOTIFY_MAX = 1 << 16        # interrupts the driver queues for NOTIFY_WAIT, per context


@dataclass
class Mailbox:
    """What the device sent up for one context and the host has not taken yet."""

    printf: bytearray = field(default_factory=bytearray)
    printf_dropped: int = 0
    notes: deque = field(default_factory=deque)     # CMD_NOTIFY values, oldest first
    notify_count: int = 0
    notify_dropped: int = 0


@dataclass
class FaultInfo:
    kind: str
    queue: int
    seqno: int
    pc: int | None
    address: int
    message: str

    def __str__(self) -> str:
        where = f" pc={self.pc}" if self.pc is not None else ""
        addr = f" address=0x{self.address:x}" if self.address else ""
        return f"{self.kind} on queue {self.queue} fence {self.seqno}{where}{addr}: {self.message}"


@dataclass
class _Retire:
    """Kernel memory to free once the firmware is done with it: when every
    (queue id, fence) in waits has completed."""

    ctx: object
    waits: list
    free: object = field(repr=False)

    def due(self) -> bool:
        for queue_id, seqno in self.waits:
            q = self.ctx.queues.get(queue_id)
            if q is not None and q.completed < seqno:
                return False
        return True


class Device:
    def __init__(self, minor: int, config):
        self.minor = minor
        self.config = config
        # The firmware the device runs, and the layouts the driver uses to
        # talk to it: the same, unless a test forces a mismatch.
        self.fw_version, self.drv_version = config.fw_for(minor)
        self.S = fw.FwStructs(self.drv_version)
        self.vram = Vram(config.vram_size, f"aicard{minor}-vram")
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.clock = DeviceClock(hw.TIMESTAMP_FREQ)
        self.mailboxes: dict[int, Mailbox] = {}     # asid -> what the device sent up
        self.print_buffers: dict[int, int] = {}     # asid -> VRAM offset of its print buffer
        self.contexts: dict[int, object] = {}     # asid -> Context
        self.orphans: set = set()                 # destroyed BOs still mapped by the host
        self.bo_bytes = 0                         # VRAM held by buffer objects
        self.ipc: dict[bytes, object] = {}        # IPC token -> bo.Memory it exports
        self._retire: list[_Retire] = []
        # A copy expected to run at once: (asid, queue, seqno), and its
        # host-memory fault if it had one (see ioctls.ioctl_copy).
        self.expect_host_fault = None
        self.host_fault = None
        self.on_ring = None                       # recorder hook: fn(direction, offset, bytes)
        self._boot()

    # -- boot ---------------------------------------------------------------

    def _kernel_alloc(self, size: int) -> int:
        off = self.vram.alloc(size)
        if off is None:
            raise DriverError(errno.ENOMEM, f"VRAM too small for the firmware's {size:#x} bytes")
        return off

    def _boot(self) -> None:
        init_off = self._kernel_alloc(uapi.PAGE_SIZE)
        assert init_off == 0, "the firmware looks for its init data at VRAM 0"
        cmd_off = self._kernel_alloc(CMD_RING_SIZE)
        evt_off = self._kernel_alloc(EVT_RING_SIZE)
        slot_off = self._kernel_alloc(SLOT_HEAP_SIZE)
        param_off = self._kernel_alloc(PARAM_HEAP_SIZE)
        self.slots = RangeAllocator(slot_off, SLOT_HEAP_SIZE)
        self.params = RangeAllocator(param_off, PARAM_HEAP_SIZE)
        self.cmd_ring = Ring(self.vram.mv, cmd_off, CMD_RING_SIZE, self.drv_version)
        self.evt_ring = Ring(self.vram.mv, evt_off, EVT_RING_SIZE, self.drv_version)
        self.cmd_ring.init()
        self.evt_ring.init()
        init = self.S.InitData.codec()
        values = dict(version=fw.pack_version(self.drv_version), cmd_ring_offset=cmd_off,
                      cmd_ring_size=CMD_RING_SIZE, evt_ring_offset=evt_off, evt_ring_size=EVT_RING_SIZE,
                      timestamp_freq=self.clock.freq & 0xFFFFFFFF if self.drv_version < fw.FW_2_1
                      else self.clock.freq, max_queues=0xFFFF, features=0)
        init.pack_into(self.vram.mv, init_off, init.make(**{k: v for k, v in values.items() if k in init.names}))
        self.firmware = Firmware(self.vram, self.fw_version, self.clock, watchdog_s=self.config.watchdog_s,
                                 log=log)
        self.firmware.boot(init_off)
        if self.drv_version != self.fw_version:
            log.warning("aicard%d: driver speaks firmware %s to a device running %s", self.minor,
                        fw.version_str(self.drv_version), fw.version_str(self.fw_version))

    def set_ring_hook(self, hook) -> None:
        """hook(direction, ring_offset, entry_bytes), direction 'cmd' or 'evt'."""
        self.on_ring = hook
        self.cmd_ring.on_entry = (lambda off, data: hook("cmd", off, data)) if hook else None

    # -- identity -------------------------------------------------------------

    def info(self):
        codec = uapi.DeviceInfo.codec()
        return codec.make(
            vendor_id=hw.VENDOR_ID, device_id=hw.DEVICE_ID,
            uapi_version=(uapi.UAPI_VERSION[0] << 16) | uapi.UAPI_VERSION[1],
            fw_version=fw.pack_version(self.fw_version), vram_size=self.vram.size,
            core_count=hw.CORE_COUNT, warp_size=hw.WARP_SIZE,
            max_threads_per_block=hw.MAX_THREADS_PER_BLOCK,
            max_shared_per_block=hw.MAX_SHARED_PER_BLOCK,
            max_grid_dim=hw.MAX_GRID, max_block_dim=hw.MAX_BLOCK,
            timestamp_freq=self.clock.freq, minor=self.minor,
            caps=uapi.CAP_PRINTF | uapi.CAP_NOTIFY | uapi.CAP_TRANSFORMER | uapi.CAP_FENCE_RESET,
            name=hw.NAME.ljust(32, b"\0"),
        )

    # -- contexts -------------------------------------------------------------

    def attach(self, ctx) -> None:
        self.contexts[ctx.id] = ctx
        self.firmware.map_asid(ctx.id, ctx.vm, ctx.mm)

    def detach(self, ctx) -> None:
        """The context is gone: the firmware forgets its address space (and
        any of its commands still waiting), so its kernel memory is free."""
        self.firmware.unmap_asid(ctx.id)
        self.contexts.pop(ctx.id, None)
        self.mailboxes.pop(ctx.id, None)
        pbuf = self.print_buffers.pop(ctx.id, None)
        if pbuf is not None:
            self.vram.free(pbuf, PRINT_BUFFER_SIZE)
        keep = []
        for r in self._retire:
            if r.ctx is ctx:
                r.free()
            else:
                keep.append(r)
        self._retire = keep
        self.cond.notify_all()

    # -- kernel memory ----------------------------------------------------------

    def alloc_slot(self, size: int) -> int:
        off = self.slots.alloc(size, align=16)
        if off is None:
            raise DriverError(errno.ENOMEM, "no free fence/event slots on the device")
        self.vram.mv[off:off + size] = bytes(size)
        return off

    def free_slot(self, off: int, size: int) -> None:
        self.slots.free(off, size)

    def alloc_params(self, data: bytes) -> int:
        n = max(len(data), 16)
        off = self.params.alloc(n, align=16)
        if off is None:
            raise DriverError(errno.EBUSY, "too many launches in flight (parameter heap full)")
        self.vram.mv[off:off + len(data)] = data
        return off

    def retire_after(self, ctx, free, queue=None, seqno: int = 0) -> None:
        """Run free() once fence seqno of queue has completed - or, without a
        queue, once everything ctx has submitted so far has completed."""
        if queue is not None:
            waits = [(queue.queue_id, seqno)]
        else:
            waits = [(q.queue_id, q.last_seqno) for q in ctx.queues.values()]
        r = _Retire(ctx, waits, free)
        if r.due():
            free()
        else:
            self._retire.append(r)

    def free_bo_memory(self, bo) -> None:
        """bo is gone (destroyed and unmapped): free its VRAM unless other
        buffer objects (IPC imports) still use the same memory."""
        mem = bo.memory
        if mem is not None:
            mem.users -= 1
            if mem.users > 0:
                return
        self.vram.free(bo.vram_offset, bo.size)
        self.bo_bytes -= bo.size

    # -- commands ---------------------------------------------------------------

    def _encode(self, name: str, **fields) -> bytes:
        """A command in this driver's firmware layout; fields the version
        does not have (prio before 2.1, say) are left out."""
        pack, fields["type"], fields["entry_size"] = self.S.command_encoder(name)
        return pack(fields, ignore_unknown=True)

    def _push(self, entry: bytes) -> None:
        try:
            self.cmd_ring.push(entry)
        except RingFull:
            self.kick()                 # the firmware empties the ring into its queues
            self.cmd_ring.push(entry)

    def submit(self, ctx, queue, name: str, extra=(), **fields) -> int:
        """Send one command (then the commands in extra, (name, fields)
        pairs, under the same fence, and the FENCE_WRITE that reports it)
        to the firmware; returns its fence."""
        if ctx.faulted is not None:
            raise DriverError(errno.ECANCELED, f"context {ctx.id} was lost to a device fault: {ctx.faulted}")
        seqno = queue.last_seqno + 1
        head = dict(asid=ctx.id, queue=queue.queue_id, seqno=seqno)
        self._push(self._encode(name, **head, **fields))
        for xname, xfields in extra:
            self._push(self._encode(xname, **head, **xfields))
        self._push(self._encode("FENCE_WRITE", **head, fence_offset=queue.fence_offset, value=seqno))
        queue.last_seqno = seqno
        self.kick()
        return seqno

    def control(self, ctx, queue, name: str, **fields) -> None:
        """Send a command that takes no fence (the queue must be idle, so the
        firmware runs it before this returns)."""
        if ctx.faulted is not None:
            raise DriverError(errno.ECANCELED, f"context {ctx.id} was lost to a device fault: {ctx.faulted}")
        self._push(self._encode(name, asid=ctx.id, queue=queue.queue_id, seqno=queue.last_seqno, **fields))
        self.kick()

    def kick(self) -> None:
        """Ring the doorbell and take in what the firmware answered."""
        while True:
            finished = self.firmware.doorbell()
            self._drain()
            if finished:
                break
        self.cond.notify_all()

    def _drain(self) -> None:
        for offset, entry, junk in self.evt_ring.pop_all():
            if self.on_ring:
                self.on_ring("evt", offset, entry if entry is not None else junk)
            if entry is None:
                log.error("aicard%d: unreadable completion at ring 0x%x: %s", self.minor, offset, junk.hex())
                continue
            ctype = int.from_bytes(entry[:2], "little")
            name = self.S.comp_names.get(ctype)
            layout = self.S.completions.get(name) if name else None
            if layout is None or len(entry) < layout.sizeof():
                log.error("aicard%d: unknown completion %#x at ring 0x%x", self.minor, ctype, offset)
                continue
            c = layout.codec().unpack(entry, check_const=False)
            ctx = self.contexts.get(c.asid)
            if name == "FENCE_SIGNALLED":
                self._fence_signalled(ctx, c)
            elif name == "FAULT":
                self._fault(ctx, c)
            elif name == "PRINTF" and ctx is not None:
                start = layout.sizeof()
                self._printf(ctx, entry[start:start + c.length])
            elif name == "NOTIFY" and ctx is not None:
                box = self.mailbox(ctx)
                box.notify_count += 1
                if len(box.notes) < HOST_NOTIFY_MAX:
                    box.notes.append(c.value)
                else:
                    box.notify_dropped += 1
        if self._retire:
            self._run_retire()

    def mailbox(self, ctx) -> Mailbox:
        box = self.mailboxes.get(ctx.id)
        if box is None:
            box = self.mailboxes[ctx.id] = Mailbox()
        return box

    def _printf(self, ctx, text: bytes) -> None:
        box = self.mailbox(ctx)
        keep = text[:max(0, HOST_PRINTF_MAX - len(box.printf))]
        box.printf += keep
        box.printf_dropped += len(text) - len(keep)

    def print_buffer(self, ctx) -> int:
        """The context's device print buffer, allocated and bound on first use."""
        off = self.print_buffers.get(ctx.id)
        if off is None:
            off = self.vram.alloc(PRINT_BUFFER_SIZE)
            if off is None:
                raise DriverError(errno.ENOMEM, "no VRAM for the context's print buffer")
            self.print_buffers[ctx.id] = off
            self._push(self._encode("PRINTF_BUFFER", asid=ctx.id, queue=0, seqno=0,
                                    buffer_offset=off, buffer_size=PRINT_BUFFER_SIZE))
            self.kick()
        return off

    def forget_queue(self, ctx, queue_id: int) -> None:
        """An idle queue restarts its fences at 0: kernel memory waiting for
        its old fences (all complete) must not wait for the new ones."""
        for r in self._retire:
            if r.ctx is ctx:
                r.waits = [w for w in r.waits if w[0] != queue_id]
        self._run_retire()

    def _fence_signalled(self, ctx, c) -> None:
        q = ctx.queues.get(c.queue) if ctx else None
        if q is None:
            return
        q.completed = max(q.completed, c.seqno)
        if c.status != FenceStatus.OK and not q.first_failure:
            q.first_failure, q.failure_status = c.seqno, c.status

    def _fault(self, ctx, c) -> None:
        kind = fw.FAULT_KINDS.get(c.kind, f"kind {c.kind}")
        info = FaultInfo(kind, c.queue, c.seqno, None if c.pc == 0xFFFFFFFF else c.pc, c.address,
                         c.message.split(b"\0", 1)[0].decode("utf-8", "replace"))
        if kind == "host_dma" and self.expect_host_fault == (c.asid, c.queue, c.seqno):
            # The copy ran inside the ioctl that submitted it: that ioctl
            # answers EFAULT, as a kernel driver does for a bad user pointer.
            self.host_fault = info
            return
        wrote = self._decode_own(c.command_offset)
        log.warning("aicard%d ctx %s: firmware fault: %s%s", self.minor, c.asid, info,
                    f"\n  the driver wrote: {wrote}" if wrote else "")
        if ctx is None:
            return
        if ctx.faulted is None:
            ctx.faulted = info
        # The firmware runs nothing more of this context.  Complete every
        # fence still in flight with the failure, as a driver does after a
        # GPU reset: nobody may wait forever on work that will never run
        # (after a bad command the firmware cannot even be trusted to).
        status = FenceStatus.TIMEOUT if info.kind == "timeout" else FenceStatus.FAULT
        for q in ctx.queues.values():
            if q.queue_id == c.queue and not q.first_failure:
                q.first_failure, q.failure_status = max(1, min(c.seqno, q.last_seqno)), status
            elif q.completed < q.last_seqno and not q.first_failure:
                q.first_failure, q.failure_status = q.completed + 1, FenceStatus.FAULT
            q.completed = q.last_seqno

    def _decode_own(self, offset: int) -> str:
        """The command at ring offset as this driver encoded it."""
        pos = self.cmd_ring.data + offset
        hdr = bytes(self.vram.mv[pos:pos + 4])
        etype, size = int.from_bytes(hdr[:2], "little"), int.from_bytes(hdr[2:], "little")
        name = self.S.cmd_names.get(etype)
        if not name or size != self.S.commands[name].sizeof():
            return ""
        layout = self.S.commands[name]
        rec = layout.codec().unpack(bytes(self.vram.mv[pos:pos + size]), check_const=False)
        return f"{name} (fw {fw.version_str(self.drv_version)} layout) {describe.record(layout, rec)}"

    def _run_retire(self) -> None:
        keep = []
        for r in self._retire:
            if r.due():
                r.free()
            else:
                keep.append(r)
        self._retire = keep

    # -- waiting ----------------------------------------------------------------

    def wait(self, predicate, timeout_ns: int) -> bool:
        """Sleep on the device until predicate() holds; False on timeout."""
        if predicate():
            return True
        if timeout_ns == 0:
            return False
        timeout = None if timeout_ns >= uapi.TIMEOUT_INFINITE else timeout_ns / 1e9
        return self.cond.wait_for(predicate, timeout)

    # -- events (slots in VRAM) -------------------------------------------------

    def event_slot(self, ev):
        return self.S.EventSlot.codec().unpack(self.vram.mv, ev.slot, check_const=False)

    def write_event_slot(self, ev, slot) -> None:
        self.S.EventSlot.codec().pack_into(self.vram.mv, ev.slot, slot)

    def signal_event(self, ev) -> None:
        """Host-side signal: what the firmware does for EVENT_WRITE."""
        slot = self.event_slot(ev)
        slot.status = 2
        slot.timestamp = self.clock.now()
        self.write_event_slot(ev, slot)
        self.kick()

    def close(self) -> None:
        self.vram.close()
