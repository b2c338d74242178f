"""The simulated firmware: it reads commands from the ring in VRAM with the
layouts of *its own* version, runs them, and reports back on the completion
ring.  It knows the driver only through memory: the init data at VRAM
offset 0, the rings, the fence and event slots, and the address spaces the
driver registered (the MMU and DMA windows a real driver would program).

Scheduling: commands are taken off the ring into per-queue FIFOs at once;
a FIFO stops at an EVENT_WAIT whose event is not signalled, the others go
on.  After a command of a context faults, the firmware runs nothing more of
that context: its later fences complete with the fault status (sticky), as a
GPU does with a context it had to kill.

Beyond kernels and copies: a context's print buffer (bound by PRINTF_BUFFER,
which takes effect when read) collects what its kernels printf; PRINTF_FLUSH
sends it up as PRINTF completions.  NOTIFY answers with a NOTIFY completion
(the host interrupt), FENCE_RESET rewrites a fence slot, and TRANSFORMER runs
the fixed-function unit (embedding lookup, argmax, one attention head) on
device memory.  Every command is timed on the device clock (clock.py): device
time is frozen while it is simulated and then advances by its modelled cost.

A command the firmware cannot make sense of - unknown type, or an entry
whose size is not the size of that type in this firmware version (what a
driver built for another version produces) - is reported as a FAULT of kind
"bad_command", with the entry decoded as this firmware reads it.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from dataclasses import dataclass, field

from pydriver import copythreads, hw
from pydriver.errors import DriverError
from pydriver.ring import Ring, RingError, RingFull
from pydriver.sim.faults import DeviceFault
from structs import describe, fw

COPY_OVERHEAD = 500             # ticks (ns) per copy/fill
COPY_BYTES_PER_TICK = 16        # 16 GB/s
LAUNCH_OVERHEAD = 2_000
SMALL_OVERHEAD = 100
TRANSFORMER_FLOPS_PER_TICK = 32     # the fixed-function unit: 32 GFLOP/s
PRINTF_CHUNK = 4000                 # text bytes per PRINTF completion

EVENT_UNSIGNALED, EVENT_PENDING, EVENT_SIGNALED = 0, 1, 2
FENCE_OK, FENCE_FAULT, FENCE_TIMEOUT = 0, 1, 2


class CommandFault(Exception):
    """A command the firmware refuses or fails outside a kernel."""

    def __init__(self, kind: str, message: str, address: int = 0):
        super().__init__(message)
        self.kind = kind
        self.address = address


@dataclass
class AddressSpace:
    asid: int
    vm: object                  # translate()/find(): the context's page tables
    mm: object                  # UserMemory: the DMA window onto the process
    faulted: bool = False
    printf_offset: int = 0      # VRAM offset of its PrintfBuffer, 0 = none (PRINTF_BUFFER)
    printf_size: int = 0


@dataclass
class FwQueue:
    fifo: deque = field(default_factory=deque)
    status: int = FENCE_OK      # sticky once a command failed


@dataclass
class Pending:
    offset: int                 # ring offset, for fault reports
    name: str
    cmd: object                 # decoded record


_executor_module = None


def _executor():
    """pydriver.sim.executor, imported on the first launch (it brings numpy:
    a program that only copies never pays for it)."""
    global _executor_module
    if _executor_module is None:
        from pydriver.sim import executor
        _executor_module = executor
    return _executor_module


class Firmware:
    def __init__(self, vram, version, clock, *, watchdog_s: float = 10.0, log=None):
        self.vram = vram
        self.version = version
        self.S = fw.FwStructs(version)
        self.clock = clock
        self.watchdog_s = watchdog_s
        self.log = log
        self.spaces: dict[int, AddressSpace] = {}
        self.queues: dict[tuple, FwQueue] = {}
        self._runners: dict = {}            # command name -> its _cmd_ method
        self.cmd_ring: Ring | None = None
        self.evt_ring: Ring | None = None
        self._programs: dict = {}
        self._slot = self.S.EventSlot.codec()
        self._fence_slot = self.S.FenceSlot.codec()
        self._hdr = self.S.CmdHeader.codec()
        self._pbuf = self.S.PrintfBuffer.codec()
        self._ran = 0

    # -- boot and address spaces (what the driver programs) ------------------

    def boot(self, init_offset: int = 0) -> None:
        init = self.S.InitData.codec().unpack(self.vram.mv, init_offset, check_const=False)
        if init.magic != fw.INIT_MAGIC:
            raise RingError(f"no init data at VRAM 0x{init_offset:x} (magic {init.magic:#x})")
        # A driver built for another version gets every command refused
        # (and reported, decoded), instead of having its bytes misread.
        self.driver_version = fw.unpack_version(init.version)
        if self.driver_version != self.version and self.log:
            self.log.warning("firmware %s booted by a driver for %s: refusing its commands",
                             fw.version_str(self.version), fw.version_str(self.driver_version))
        self.cmd_ring = Ring(self.vram.mv, init.cmd_ring_offset, init.cmd_ring_size, self.version)
        self.evt_ring = Ring(self.vram.mv, init.evt_ring_offset, init.evt_ring_size, self.version)

    def map_asid(self, asid: int, vm, mm) -> None:
        self.spaces[asid] = AddressSpace(asid, vm, mm)

    def unmap_asid(self, asid: int) -> None:
        self.spaces.pop(asid, None)
        for key in [k for k in self.queues if k[0] == asid]:
            del self.queues[key]

    def expect_launches(self) -> None:
        """A module was loaded: have the executor ready (it is not loaded at
        boot, so a program that never launches does not pay for it)."""
        _executor()

    # -- the doorbell ---------------------------------------------------------

    def doorbell(self) -> bool:
        """Take new commands off the ring and run whatever can run.
        Returns False if it had to stop because the completion ring is full
        (the driver drains it and rings again)."""
        for offset, entry, junk in self.cmd_ring.pop_all():
            if entry is None:
                self._bad_command(offset, junk, "entry size runs past the data written")
                continue
            self._accept(offset, entry)
        self._ran = 0           # commands run by this doorbell so far
        return self._run_queues()

    def _accept(self, offset: int, entry: bytes) -> None:
        if self.driver_version != self.version:
            self._bad_command(offset, entry, f"the driver speaks firmware "
                                             f"{fw.version_str(self.driver_version)} (init data)")
            return
        etype = entry[0] | entry[1] << 8
        dec = self.S.command_decoder(etype)
        if dec is None:
            self._bad_command(offset, entry, f"unknown command type {etype:#x}")
            return
        name, size, unpack = dec
        if len(entry) != size:
            self._bad_command(offset, entry, f"{name} is {size:#x} bytes in firmware "
                                             f"{fw.version_str(self.version)}, entry is {len(entry):#x}")
            return
        cmd = unpack(entry, check_const=False)
        if cmd.asid not in self.spaces:
            self._bad_command(offset, entry, f"{name} for unknown address space {cmd.asid}")
            return
        if name == "PRINTF_BUFFER":
            # Configuration, not queued work: it takes effect when read, before
            # any launch the driver sends after it.
            self._bind_print_buffer(offset, entry, self.spaces[cmd.asid], cmd)
            return
        key = (cmd.asid, cmd.queue)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = FwQueue()
        q.fifo.append(Pending(offset, name, cmd))

    def _bad_command(self, offset: int, entry: bytes, why: str) -> None:
        """Report an entry we cannot run, decoded the way this firmware reads it."""
        hdr = None
        if len(entry) >= self._hdr.size:
            hdr = self._hdr.unpack(entry, check_const=False)
        decoded = describe.record(self.S.CmdHeader, hdr) if hdr else entry[:32].hex()
        etype = int.from_bytes(entry[:2], "little") if len(entry) >= 2 else 0
        name = self.S.cmd_names.get(etype)
        if name and hdr and len(entry) >= self.S.commands[name].sizeof():
            decoded = describe.record(self.S.commands[name],
                                      self.S.commands[name].codec().unpack(entry, check_const=False))
        message = f"bad command at ring 0x{offset:x}: {why}; as fw {fw.version_str(self.version)} reads it: {decoded}"
        if self.log:
            self.log.warning("firmware: %s", message)
        asid = hdr.asid if hdr else 0
        queue = hdr.queue if hdr else 0
        seqno = hdr.seqno if hdr else 0
        if asid in self.spaces:
            self.spaces[asid].faulted = True
            self.queues.setdefault((asid, queue), FwQueue()).status = FENCE_FAULT
        self._report_fault(asid, queue, seqno, "bad_command", message, pc=None, address=0,
                           cmd_offset=offset, cmd_type=etype)

    def _run_queues(self) -> bool:
        progress = True
        while progress:
            progress = False
            for key, q in list(self.queues.items()):
                while q.fifo:
                    p = q.fifo[0]
                    if p.name == "EVENT_WAIT" and not self._event_signalled(p.cmd.event_offset) \
                            and not self.spaces[key[0]].faulted:
                        break
                    try:
                        self._execute(key, q, p)
                    except RingFull:
                        return False
                    q.fifo.popleft()
                    progress = True
        return True

    # -- execution ------------------------------------------------------------

    def _execute(self, key, q: FwQueue, p: Pending) -> None:
        space = self.spaces[key[0]]
        cmd = p.cmd
        if p.name == "FENCE_WRITE":
            # The completion goes first: if the ring is full we retry the
            # whole command later without having half-done it.
            self._push_completion("FENCE_SIGNALLED", cmd.asid, cmd.queue, cmd.value, status=q.status)
            self._fence_slot.pack_into(self.vram.mv, cmd.fence_offset, self._fence_slot.record(cmd.value))
            return
        if space.faulted and p.name != "PRINTF_FLUSH":
            # The context is dead: skip, its fences report it.  (What its
            # kernels printed before the fault still goes up.)
            return
        started = time.monotonic()
        if self._ran:
            self.clock.no_idle()        # it was queued behind the previous one
        self._ran += 1
        self.clock.begin()
        cost = SMALL_OVERHEAD
        try:
            run = self._runners.get(p.name)
            if run is None:
                run = self._runners[p.name] = getattr(self, "_cmd_" + p.name.lower())
            cost = run(space, cmd)
        except DeviceFault as f:
            if f.kind == "timeout":     # it ran until the watchdog stopped it
                cost = int((time.monotonic() - started) * self.clock.freq)
            message = f.message
            if p.name == "LAUNCH":
                message = f"kernel {self._kernel_name(cmd)}: {message}"
            self._fail(space, q, cmd, p, f.kind, message, f.pc, f.address or 0)
        except CommandFault as f:
            if f.kind == "host_dma":
                # A bad host address fails this copy only: the device is fine,
                # the context too.  The driver decides what the program hears.
                self._report_fault(cmd.asid, cmd.queue, cmd.seqno, f.kind, f"{p.name}: {f}", pc=None,
                                   address=f.address, cmd_offset=p.offset, cmd_type=cmd.type)
            else:
                self._fail(space, q, cmd, p, f.kind, str(f), None, f.address)
        finally:
            # Also on RingFull: the command stays queued and runs again once
            # the driver drained the ring (PRINTF_FLUSH resumes where it was).
            self.clock.end(cost)

    def _fail(self, space, q, cmd, p, kind, message, pc, address) -> None:
        q.status = FENCE_TIMEOUT if kind == "timeout" else FENCE_FAULT
        space.faulted = True
        self._report_fault(cmd.asid, cmd.queue, cmd.seqno, kind, f"{p.name}: {message}", pc=pc,
                           address=address, cmd_offset=p.offset, cmd_type=cmd.type)

    def _dev(self, space, va: int, size: int, what: str) -> int:
        """VRAM offset of device range [va, va+size) through the MMU."""
        bo = space.vm.find(va, size)
        if bo is None:
            raise CommandFault("mmu", f"{what} [0x{va:x}, +0x{size:x}) is not mapped", va)
        return bo.vram_offset + (va - bo.gpu_va)

    def _cmd_copy(self, space, c) -> int:
        if c.size:
            base = self.vram.address
            try:
                if c.kind == 1:
                    space.mm.read_into(c.src, base + self._dev(space, c.dst, c.size, "copy destination"), c.size)
                elif c.kind == 2:
                    space.mm.write_from(c.dst, base + self._dev(space, c.src, c.size, "copy source"), c.size)
                elif c.kind == 3:
                    d = self._dev(space, c.dst, c.size, "copy destination")
                    s = self._dev(space, c.src, c.size, "copy source")
                    u8 = self.vram.u8
                    if abs(d - s) < c.size:
                        # numpy copies through a temporary when the views overlap: memmove.
                        u8[d:d + c.size] = u8[s:s + c.size]
                    else:
                        def piece(off, n):
                            u8[d + off:d + off + n] = u8[s + off:s + off + n]
                        copythreads.run(piece, c.size)
                else:
                    raise CommandFault("bad_command", f"copy kind {c.kind}")
            except DriverError as e:
                raise CommandFault("host_dma", f"host memory: {e}", c.src if c.kind == 1 else c.dst) from None
        return COPY_OVERHEAD + c.size // COPY_BYTES_PER_TICK

    def _cmd_memset(self, space, c) -> int:
        import numpy as np
        types = {1: np.uint8, 2: np.uint16, 4: np.uint32}
        if c.elem_size not in types:
            raise CommandFault("bad_command", f"memset element size {c.elem_size}")
        n = c.count * c.elem_size
        if n:
            off = self._dev(space, c.dst, n, "memset destination")
            if off % c.elem_size:
                raise CommandFault("misaligned", f"memset of {c.elem_size}-byte elements at 0x{c.dst:x}", c.dst)
            self.vram.u8[off:off + n].view(types[c.elem_size])[:] = c.value & ((1 << (8 * c.elem_size)) - 1)
        return COPY_OVERHEAD + n // COPY_BYTES_PER_TICK

    def _program(self, offset: int, size: int):
        # The code is whatever VRAM holds now (the firmware trusts nothing the
        # driver cached): its CRC, straight off the mapping, finds the decoded
        # program.
        key = (offset, size, zlib.crc32(self.vram.mv[offset:offset + size]))
        prog = self._programs.get(key)
        if prog is None:
            from pydriver.sim.executor import Program
            from structs.module import ModuleFormatError, parse_module
            image = bytes(self.vram.mv[offset:offset + size])
            try:
                module = parse_module(image)
            except ModuleFormatError as e:
                raise CommandFault("bad_launch", f"code at VRAM 0x{offset:x}: {e}") from None
            prog = self._programs[key] = (Program.from_module(module), module)
        return prog

    def _kernel_name(self, c) -> str:
        try:
            return self._program(c.code_offset, c.code_size)[1].functions[c.function].name
        except (CommandFault, IndexError):
            return f"#{c.function}"

    def _cmd_launch(self, space, c) -> int:
        executor = _executor()
        program, module = self._program(c.code_offset, c.code_size)
        if c.function >= len(module.functions):
            raise CommandFault("bad_launch", f"function {c.function} not in the module")
        params = bytes(self.vram.mv[c.params_offset:c.params_offset + c.params_size])
        watchdog = getattr(c, "watchdog_us", 0)
        deadline = time.monotonic() + (watchdog / 1e6 if watchdog else self.watchdog_s)
        printed: list[bytes] = []
        try:
            stats = executor.launch(program, c.function, (c.grid_x, c.grid_y, c.grid_z),
                                    (c.block_x, c.block_y, c.block_z), params, space.vm,
                                    dynamic_shared=c.shared_size, deadline=deadline,
                                    printf=printed.append if space.printf_offset else None)
        finally:
            if printed:                 # also what a faulting kernel printed before the fault
                self._print(space, printed)
        return LAUNCH_OVERHEAD + stats.warp_instructions * 4 // hw.CORE_COUNT \
            + (stats.bytes_loaded + stats.bytes_stored) // 256

    # -- device printf ----------------------------------------------------------

    def _bind_print_buffer(self, offset: int, entry: bytes, space, c) -> None:
        if c.buffer_offset == 0:
            space.printf_offset = space.printf_size = 0
            return
        end = c.buffer_offset + c.buffer_size
        if c.buffer_size <= fw.PRINTF_HEADER_SIZE or end > self.vram.size:
            self._bad_command(offset, entry, f"print buffer [0x{c.buffer_offset:x}, "
                                             f"+0x{c.buffer_size:x}) does not fit in VRAM")
            return
        self._pbuf.pack_into(self.vram.mv, c.buffer_offset,
                             self._pbuf.make(size=c.buffer_size - fw.PRINTF_HEADER_SIZE))
        space.printf_offset, space.printf_size = c.buffer_offset, c.buffer_size

    def _print(self, space, pieces: list) -> None:
        """Append a launch's printf output (one piece per thread and printf)
        to the space's print buffer; pieces that do not fit whole are counted
        as dropped (like a full printf FIFO)."""
        h = self._pbuf.unpack(self.vram.mv, space.printf_offset, check_const=False)
        room = max(0, h.size - h.tail)
        n = total = 0
        for piece in pieces:
            if total + len(piece) > room:
                break
            total += len(piece)
            n += 1
        keep = b"".join(pieces[:n])
        start = space.printf_offset + fw.PRINTF_HEADER_SIZE + h.tail
        self.vram.mv[start:start + len(keep)] = keep
        h.tail += len(keep)
        h.dropped += sum(len(p) for p in pieces[n:])
        self._pbuf.pack_into(self.vram.mv, space.printf_offset, h)

    def _cmd_printf_flush(self, space, c) -> int:
        """Send [head, tail) of the print buffer up the completion ring, one
        PRINTF completion per chunk; head moves after each, so a full ring
        (RingFull: retried later) never sends text twice."""
        if not c.buffer_offset:
            return SMALL_OVERHEAD
        if c.buffer_offset != space.printf_offset:
            raise CommandFault("bad_command", f"PRINTF_FLUSH of 0x{c.buffer_offset:x}, but the "
                               f"print buffer of this address space is at 0x{space.printf_offset:x}")
        base = c.buffer_offset
        h = self._pbuf.unpack(self.vram.mv, base, check_const=False)
        sent = 0
        while h.head < h.tail:
            n = min(PRINTF_CHUNK, h.tail - h.head)
            start = base + fw.PRINTF_HEADER_SIZE + h.head
            self._push_printf(c, bytes(self.vram.mv[start:start + n]))
            h.head += n
            sent += n
            self._pbuf.pack_into(self.vram.mv, base, h)
        if h.dropped:
            self._push_printf(c, b"[aicard: %d bytes of device printf output lost: the print "
                                 b"buffer was full]\n" % h.dropped)
            h.dropped = 0
        h.head = h.tail = 0
        self._pbuf.pack_into(self.vram.mv, base, h)
        return SMALL_OVERHEAD + sent // COPY_BYTES_PER_TICK

    def _push_printf(self, c, text: bytes) -> None:
        layout = self.S.completions["PRINTF"]
        codec = layout.codec()
        rec = codec.make(type=self.S.comp_ids["PRINTF"], entry_size=layout.sizeof() + len(text),
                         asid=c.asid, queue=c.queue, seqno=c.seqno, length=len(text))
        self.evt_ring.push(codec.pack(rec) + text)

    # -- interrupts, fences ---------------------------------------------------------

    def _cmd_notify(self, space, c) -> int:
        self._push_completion("NOTIFY", c.asid, c.queue, c.seqno, value=c.value)
        return SMALL_OVERHEAD

    def _cmd_fence_reset(self, space, c) -> int:
        self._fence_slot.pack_into(self.vram.mv, c.fence_offset, self._fence_slot.record(c.value))
        q = self.queues.get((c.asid, c.queue))
        if q is not None:
            q.status = FENCE_OK
        return SMALL_OVERHEAD

    # -- the transformer unit -------------------------------------------------------

    def _array(self, space, va: int, count: int, dtype, what: str):
        import numpy as np
        off = self._dev(space, va, 4 * count, what)
        if off % 4 or va % 4:
            raise CommandFault("misaligned", f"{what} at 0x{va:x} is not 4-byte aligned", va)
        return self.vram.u8[off:off + 4 * count].view(dtype)

    def _cmd_transformer(self, space, c) -> int:
        import numpy as np
        rows, dim, keys, vdim = c.rows, c.dim, c.keys, c.vdim
        if c.op == 1:                                   # ENCODE: embedding lookup
            if not (rows and dim and keys):
                raise CommandFault("bad_command", f"encode of {rows}x{dim} from {keys} rows")
            tokens = self._array(space, c.src0, rows, np.uint32, "tokens").astype(np.int64)
            table = self._array(space, c.src1, keys * dim, np.float32, "embedding table")
            bad = np.flatnonzero(tokens >= keys)
            if bad.size:
                i = int(bad[0])
                tok = int(tokens[i])
                raise CommandFault("mmu", f"token {tok} (index {i}) is outside the {keys}-row "
                                   f"embedding table", c.src1 + 4 * tok * dim)
            out = table.reshape(keys, dim)[tokens]
            if c.src2:
                out += self._array(space, c.src2, rows * dim, np.float32,
                                   "position table").reshape(rows, dim)
            self._array(space, c.dst, rows * dim, np.float32, "encode destination")[:] = out.ravel()
            return COPY_OVERHEAD + 8 * rows * dim // COPY_BYTES_PER_TICK
        if c.op == 2:                                   # DECODE: greedy argmax
            if not (rows and dim):
                raise CommandFault("bad_command", f"decode of {rows}x{dim} logits")
            logits = self._array(space, c.src0, rows * dim, np.float32, "logits")
            best = np.argmax(logits.reshape(rows, dim), axis=1).astype(np.uint32)
            self._array(space, c.dst, rows, np.uint32, "decode destination")[:] = best
            return COPY_OVERHEAD + 4 * rows * dim // COPY_BYTES_PER_TICK
        if c.op == 3:                                   # ATTENTION: one head
            if not (rows and dim and keys and vdim):
                raise CommandFault("bad_command", f"attention of {rows}x{dim} over {keys}x{vdim}")
            q = self._array(space, c.src0, rows * dim, np.float32, "Q").reshape(rows, dim)
            k = self._array(space, c.src1, keys * dim, np.float32, "K").reshape(keys, dim)
            v = self._array(space, c.src2, keys * vdim, np.float32, "V").reshape(keys, vdim)
            with np.errstate(all="ignore"):
                scores = (q @ k.T) * np.float32(1.0 / np.sqrt(dim))
                if c.op_flags & 1:                      # causal: query i sees keys j <= i
                    scores[np.triu_indices(rows, 1, keys)] = -np.inf
                scores -= scores.max(axis=1, keepdims=True)
                np.exp(scores, out=scores)
                scores /= scores.sum(axis=1, keepdims=True)
                out = scores @ v
            self._array(space, c.dst, rows * vdim, np.float32, "attention output")[:] = out.ravel()
            return LAUNCH_OVERHEAD + 2 * rows * keys * (dim + vdim) // TRANSFORMER_FLOPS_PER_TICK
        raise CommandFault("bad_command", f"transformer op {c.op}")

    def _event_signalled(self, offset: int) -> bool:
        return self._slot.unpack(self.vram.mv, offset, check_const=False).status == EVENT_SIGNALED

    def _cmd_event_write(self, space, c) -> int:
        slot = self._slot.unpack(self.vram.mv, c.event_offset, check_const=False)
        slot.pending = max(0, slot.pending - 1)
        if slot.pending == 0:
            slot.status = c.status
        if c.timestamp:
            slot.timestamp = self.clock.now()
        self._slot.pack_into(self.vram.mv, c.event_offset, slot)
        return SMALL_OVERHEAD

    def _cmd_event_wait(self, space, c) -> int:
        return SMALL_OVERHEAD

    def _cmd_event_reset(self, space, c) -> int:
        slot = self._slot.unpack(self.vram.mv, c.event_offset, check_const=False)
        if slot.pending == 0:
            slot.status = EVENT_UNSIGNALED
            self._slot.pack_into(self.vram.mv, c.event_offset, slot)
        return SMALL_OVERHEAD

    def _cmd_membar(self, space, c) -> int:
        return SMALL_OVERHEAD

    # -- completions ------------------------------------------------------------

    def _push_completion(self, name: str, asid: int, queue: int, seqno: int, **fields) -> None:
        pack, fields["type"], fields["entry_size"] = self.S.completion_encoder(name)
        fields["asid"], fields["queue"], fields["seqno"] = asid, queue, seqno
        self.evt_ring.push(pack(fields))

    def _report_fault(self, asid, queue, seqno, kind, message, *, pc, address, cmd_offset, cmd_type) -> None:
        try:
            self._push_completion(
                "FAULT", asid, queue, seqno, kind=fw.FAULT_KIND_IDS.get(kind, 0),
                pc=0xFFFFFFFF if pc is None else pc, address=address or 0, command_offset=cmd_offset,
                command_type=cmd_type, message=message.encode()[:95].ljust(96, b"\0"))
        except RingFull:
            if self.log:
                self.log.error("completion ring full, fault lost: %s", message)
