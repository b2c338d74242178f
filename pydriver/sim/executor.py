"""The SIMT executor: runs a kernel of an aicard module on numpy, all threads at once.

Model (docs/ISA.md, "Execution model"):

* A launch is cut into *chunks* of whole blocks (about CHUNK_THREADS threads each); a chunk runs
  to completion before the next starts.  Blocks never wait for each other, so this is a legal
  schedule, and it keeps the register arrays small enough to stay in cache.
* Inside a chunk every register is a numpy array over the chunk's threads (chunk.py).  Each
  thread has its own PC.  The scheduler picks the smallest PC among the runnable threads and
  executes that instruction for exactly the threads that are at it (min-PC scheduling): a
  divergent if/else runs one side, then the other, and the threads meet again at the join;
  a loop with per-thread trip counts runs until its last thread leaves.
* The threads at the smallest PC form a *group* that runs on with one scalar PC until it
  catches up with the other threads, splits at a divergent branch, waits at a barrier or exits,
  so straight-line code inside a branch costs no per-thread PC work per instruction.
* Fast path: while every live thread has the same PC (the common, uniform case) there is no
  per-thread PC array at all, and ALU instructions compute over whole arrays without masks
  (values computed for exited threads are never observed).
* bar.sync: a thread at a barrier stops being runnable.  When no thread of the chunk is
  runnable, every waiting thread is released (then each block's live threads have all arrived).
* A guarded instruction (@p / @!p) executes for the threads whose predicate allows it; the
  others just move on.  A guarded bra is a per-thread conditional branch.

Compilation: Program.from_module() decodes the code section once (the numpy decoder derived from
structs/isa.py); the first time a launch reaches an instruction it is compiled into a step tuple
(kind, guard predicate, negate, function, branch target) kept for every later launch.  An
instruction that cannot execute (unknown opcode, register out of range, branch outside the
function, ...) becomes a step that raises illegal_instruction, so a module with garbage in
unreached code loads and runs.
"""

from __future__ import annotations

import dataclasses
import operator
import time
from typing import Callable, Protocol

import numpy as np

from pydriver.sim import chunk as chunk_mod
from pydriver.sim.atomics import atomic
from pydriver.sim.chunk import (
    FALSE1,
    M32,
    M64,
    TRUE1,
    U32,
    U64,
    ZERO_FORM,
    Chunk,
    const_form,
    form_add,
    form_norm,
    form_scale,
    form_sub,
    is_const,
)
from pydriver.sim.faults import DeviceFault
from pydriver.sim.printf import FormatError, conversions, parse_format, render
from structs.isa import (
    DTYPE_SIZE,
    MAX_PREDS,
    MAX_PRINTF_ARGS,
    RZ,
    AtomOp,
    Cmp,
    DType,
    MathFn,
    Opcode,
    Rnd,
    Sreg,
    decode_instructions,
)
from structs.module import Module

from pydriver.hw import MAX_BLOCK as MAX_BLOCK_DIM  # noqa: E402 - the device's limits, stated once
from pydriver.hw import MAX_GRID as MAX_GRID_DIM  # noqa: E402
from pydriver.hw import MAX_SHARED_PER_BLOCK, MAX_THREADS_PER_BLOCK, WARP_SIZE  # noqa: E402
CHUNK_THREADS = 1 << 16                     # threads per chunk (whole blocks; at least one);
                                            # fastest vecadd here (2 MiB of L2 per core)
DEADLINE_CHECK_STEPS = 64                   # scheduler steps between two watchdog checks

# Step kinds.
K_OP, K_BRA, K_EXIT, K_BAR, K_NOP, K_FAULT = range(6)

# Per-thread PC encoding in divergent mode.
WAITING = 1 << 29      # added to the PC of a thread waiting at bar.sync
EXITED = 1 << 30       # PC of an exited thread
IN_GROUP = EXITED + 1  # placeholder PC of the threads of the running group

I32 = np.int32
F32 = np.float32
I64 = np.int64
RAW = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


class GlobalMemory(Protocol):
    """What the executor needs from a context's GPU virtual address space."""
    vram: np.ndarray    # uint8, the whole device memory

    def translate(self, addr: np.ndarray, size: int, write: bool) -> np.ndarray:
        """addr: uint64 device addresses; returns int64 offsets into vram, or raises
        MemoryFault(address=first bad one) if some [addr, addr + size) is not inside one
        mapped buffer."""


@dataclasses.dataclass
class LaunchStats:
    warp_instructions: int      # instructions issued, counted once per warp with a thread at it
    thread_instructions: int    # instructions issued, counted once per thread at it
    bytes_loaded: int           # global memory (loads and atomics)
    bytes_stored: int           # global memory (stores and atomics)


class _Illegal(Exception):
    """Compile-time: this instruction cannot execute (becomes an illegal_instruction step)."""


# ============================================================================ launch state

def _views(memory, vram) -> dict:
    """The VRAM array checked and seen as u8/u16/u32/u64, made once per
    memory object (a context's VM) rather than per launch: a small kernel's
    launch would otherwise spend more time here than running it.  Kept on
    the memory object, so the views go when the context does."""
    views = getattr(memory, "_executor_views", None)
    if views is not None and views[1] is vram:
        return views
    if not isinstance(vram, np.ndarray) or vram.dtype != np.uint8 or vram.ndim != 1 \
            or not vram.flags.c_contiguous or not vram.flags.writeable:
        raise DeviceFault("bad_launch", "device memory is not a writable, contiguous 1-D "
                          "uint8 array")
    usable = vram.shape[0] - vram.shape[0] % 8
    views = {1: vram, 2: vram[:usable].view(np.uint16), 4: vram[:usable].view(np.uint32),
             8: vram[:usable].view(np.uint64)}
    try:
        memory._executor_views = views
    except AttributeError:          # a memory object that takes no attributes: no cache
        pass
    return views


class _Launch:
    """Everything one launch shares between its chunks."""

    def __init__(self, memory, params: bytes, grid, block, shared_size: int, printf, deadline):
        self.memory = memory
        vram = memory.vram
        self.vram = vram
        self.views = _views(memory, vram)
        self.vram_size = vram.shape[0]
        self.params = params
        self.grid = grid
        self.block = block
        self.threads_per_block = block[0] * block[1] * block[2]
        self.warps_per_block = -(-self.threads_per_block // WARP_SIZE)
        self.shared_size = shared_size
        self.shared_pitch = max(8, (shared_size + 7) & ~7)
        self.printf = printf
        self.deadline = deadline
        self.use_forms = chunk_mod.USE_FORMS
        self.warp_instructions = 0
        self.thread_instructions = 0
        self.bytes_loaded = 0
        self.bytes_stored = 0
        self._aranges = {}
        self._coords = {}

    def arange(self, n: int, dtype) -> np.ndarray:
        key = (n, dtype)
        a = self._aranges.get(key)
        if a is None:
            a = self._aranges[key] = np.arange(n, dtype=dtype)
            a.flags.writeable = False
        return a

    def thread_coord(self, i: int, n: int) -> np.ndarray:
        """tid.x / .y / .z (i = 0, 1, 2) of chunk thread t, as uint32: the same in every chunk
        of the same size, so cached per launch."""
        key = (i, n)
        a = self._coords.get(key)
        if a is None:
            bx, by, _ = self.block
            tl = self.arange(n, np.int64) % self.threads_per_block
            a = (tl % bx if i == 0 else (tl // bx) % by if i == 1 else tl // (bx * by)).astype(U32)
            a.flags.writeable = False
            self._coords[key] = a
        return a

    # ------------------------------------------------------------------ global memory
    def translate(self, addr: np.ndarray, size: int, write: bool, pc: int,
                  align: int | None = None) -> np.ndarray:
        """Checked device-address -> vram-offset translation (alignment first, then mapping,
        then a sanity check of what the VM returned)."""
        align = size if align is None else align
        if align > 1 and int(np.bitwise_or.reduce(addr)) & (align - 1):
            mis = addr & U64(align - 1)
            if mis.any():
                bad = int(addr[int(np.argmax(mis != 0))])
                raise DeviceFault("misaligned", f"{align}-byte access to {bad:#x} is not aligned",
                                  pc=pc, address=bad)
        try:
            off = self.memory.translate(addr, size, write)
        except DeviceFault as e:
            if e.pc is None:
                e.pc = pc
            raise
        off = np.asarray(off)
        if off.shape != addr.shape or off.dtype.kind not in "iu":
            raise DeviceFault("mmu", "the VM returned a malformed translation", pc=pc,
                              address=int(addr[0]) if addr.size else None)
        off = off.astype(I64, copy=False)
        if off.size and (int(off.min()) < 0 or int(off.max()) > self.vram_size - size):
            raise DeviceFault("mmu", "the VM translated an address outside device memory",
                              pc=pc, address=int(addr[0]))
        return off

    def gather(self, off: np.ndarray, size: int) -> np.ndarray:
        if size == 1:
            return self.vram[off]
        if not int(np.bitwise_or.reduce(off)) & (size - 1):
            return self.views[size][off >> (size.bit_length() - 1)]
        # The VM mapped a buffer at a vram offset not aligned to the access: go byte by byte.
        raw = self.vram[off[:, None] + np.arange(size)]
        return raw.view(RAW[size]).reshape(-1)

    def scatter(self, off: np.ndarray, size: int, vals: np.ndarray) -> None:
        vals = np.broadcast_to(vals, off.shape)
        if size == 1:
            self.vram[off] = vals
        elif not int(np.bitwise_or.reduce(off)) & (size - 1):
            self.views[size][off >> (size.bit_length() - 1)] = vals
        else:
            raw = np.ascontiguousarray(vals, dtype=RAW[size]).view(np.uint8).reshape(-1, size)
            self.vram[off[:, None] + np.arange(size)] = raw

    def slice_range(self, base: int, nbytes: int, write: bool, pc: int) -> int | None:
        """vram offset of the whole range [base, base + nbytes), or None when it is not one
        mapped range (the caller then takes the per-thread path, which finds the exact
        faulting thread)."""
        try:
            off = self.memory.translate(np.array([base], dtype=U64), nbytes, write)
        except DeviceFault:
            return None
        try:
            o = int(off[0])
        except (TypeError, ValueError, IndexError):
            return None
        if o < 0 or o > self.vram_size - nbytes:
            raise DeviceFault("mmu", "the VM translated an address outside device memory",
                              pc=pc, address=base)
        return o


# ============================================================================ compilation

def _g(arr: np.ndarray, ex) -> np.ndarray:
    """The values of threads ex (arr itself when uniform or when ex is None)."""
    return arr if ex is None or arr.shape[0] == 1 else arr[ex]


class _Src:
    """A compiled source operand: a register or an immediate, read as 32 or 64 bits."""
    __slots__ = ("arr", "form", "reg", "const")

    def __init__(self, arr_fn, form_fn, reg=None, const=None):
        self.arr = arr_fn       # chunk -> uint32/uint64 array, (1,) or (n,)
        self.form = form_fn     # chunk -> form or None
        self.reg = reg
        self.const = const      # exact int when the operand is an immediate / rz


def _imm_src(value: int, bits: int) -> _Src:
    mask = M32 if bits == 32 else M64
    arr = np.array([value & mask], dtype=U32 if bits == 32 else U64)
    arr.flags.writeable = False
    form = const_form(value)
    return _Src(lambda ch: arr, lambda ch: form, const=value)


def _has_arr32(ch: Chunk, *srcs: _Src) -> bool:
    """Does some register operand already hold a per-thread array?  Then a linear op also
    computes its result array (one pass, as without forms) so that a loop over an address
    does not rebuild the array from its form on every iteration."""
    for s in srcs:
        if s.reg is not None:
            v = ch.v32[s.reg]
            if v is not None and v.shape[0] > 1:
                return True
    return False


def _has_arr64(ch: Chunk, *srcs: _Src) -> bool:
    for s in srcs:
        if s.reg is not None:
            v = ch.v64[s.reg >> 1]
            if v is not None and v.shape[0] > 1:
                return True
    return False


class _FunctionCompiler:
    def __init__(self, module: Module, findex: int, fields: dict):
        fn = module.functions[findex]
        self.fn = fn
        self.module = module
        self.num_regs = fn.num_regs
        self.num_preds = fn.num_preds
        self.fields = fields

    # ------------------------------------------------------------------ operand checks
    def reg32(self, r: int) -> int:
        if r != RZ and r >= self.num_regs:
            raise _Illegal(f"register r{r} is outside the function's {self.num_regs} registers")
        return r

    def reg64(self, r: int) -> int:
        if r == RZ:
            return r
        if r & 1:
            raise _Illegal(f"64-bit operand r{r} is not an even register")
        if r + 1 >= self.num_regs:
            raise _Illegal(f"register pair r{r}:r{r + 1} is outside the function's "
                           f"{self.num_regs} registers")
        return r

    def pred(self, p: int) -> int:
        if p >= self.num_preds or p >= MAX_PREDS:
            raise _Illegal(f"predicate p{p} is outside the function's {self.num_preds} predicates")
        return p

    def src32(self, r: int, ins: dict, signed_imm: bool = True, use_b_imm: bool = True) -> _Src:
        if use_b_imm and ins["flags_b_imm"]:
            v = ins["imm"]
            if signed_imm and v >= 1 << 31:
                v -= 1 << 32
            return _imm_src(v, 32)
        r = self.reg32(r)
        if r == RZ:
            return _imm_src(0, 32)
        return _Src(lambda ch: ch.arr32(r), lambda ch: ch.form32(r), reg=r)

    def src64(self, r: int, ins: dict, use_b_imm: bool = True) -> _Src:
        if use_b_imm and ins["flags_b_imm"]:
            v = ins["imm"]
            if v >= 1 << 31:
                v -= 1 << 32        # 64-bit immediates are the sign-extended imm32
            return _imm_src(v, 64)
        r = self.reg64(r)
        if r == RZ:
            return _imm_src(0, 64)
        return _Src(lambda ch: ch.arr64(r), lambda ch: ch.form64(r), reg=r)

    # ------------------------------------------------------------------ compile
    def compile_at(self, pc: int):
        """The step of instruction `pc` of the function (compiled when first reached)."""
        i = self.fn.entry + pc
        ins = {k: int(v[i]) for k, v in self.fields.items()}
        try:
            return self.compile_one(pc, ins)
        except _Illegal as e:
            return _fault_step(pc, str(e))

    def compile_one(self, pc: int, ins: dict):
        if ins["flags_unk_3_4"] or ins["guard_unk_8_4"]:
            raise _Illegal("reserved bits are set")
        op = ins["opcode"]
        try:
            op = Opcode(op)
        except ValueError:
            raise _Illegal(f"unknown opcode {op:#04x}") from None
        gpred, gneg = -1, False
        if ins["guard_enabled"]:
            gpred = self.pred(ins["guard_pred"])
            gneg = bool(ins["guard_negate"])
        if op != Opcode.PRINTF and (ins["x0"] or ins["x1"] or ins["x2"]):
            raise _Illegal("x0..x2 are only used by printf")
        builder = _BUILDERS.get(op)
        kind, fn, target = builder(self, pc, ins)
        return (kind, gpred, gneg, fn, target)


def _fault_step(pc: int, message: str):
    def fault(ch, ex, full):
        raise DeviceFault("illegal_instruction", message, pc=pc)
    return (K_FAULT, -1, False, fault, 0)


def _dtype(ins: dict, allowed) -> DType:
    t = ins["type"]
    if t not in allowed:
        name = DType(t).name.lower() if t in DType._value2member_map_ else str(t)
        raise _Illegal(f"type {name} is not valid for {Opcode(ins['opcode']).name.lower()}")
    return DType(t)


def _w32(ch: Chunk, d: int, res: np.ndarray, ex, full: bool) -> None:
    if d == RZ:
        return
    if full:
        ch.set32(d, res, None)
    else:
        ch.set32_part(d, ex, res)


def _w64(ch: Chunk, d: int, res: np.ndarray, ex, full: bool) -> None:
    if d == RZ:
        return
    if full:
        ch.set64(d, res, None)
    else:
        ch.set64_part(d, ex, res)


INT32_TYPES = (DType.U32, DType.S32)
INT64_TYPES = (DType.U64, DType.S64)
W32_TYPES = (DType.U32, DType.S32, DType.F32)
VIEW = {DType.U32: U32, DType.S32: I32, DType.F32: F32, DType.U64: U64, DType.S64: I64}


# ---------------------------------------------------------------------------- numpy kernels

def _udiv(a, b):
    z = b == 0
    return np.where(z, U32(M32), a // np.where(z, U32(1), b)).astype(U32)


def _urem(a, b):
    z = b == 0
    return np.where(z, a, a % np.where(z, U32(1), b)).astype(U32)


def _sdiv_parts(a, b):
    a = a.astype(I64)
    b = b.astype(I64)
    z = b == 0
    bb = np.where(z, 1, b)
    q = np.abs(a) // np.abs(bb)
    q = np.where((a < 0) != (bb < 0), -q, q)
    return a, bb, q, z


def _sdiv(a, b):
    _, _, q, z = _sdiv_parts(a, b)
    return np.where(z, -1, q).astype(I32)        # INT_MIN / -1 wraps to INT_MIN


def _srem(a, b):
    a64, bb, q, z = _sdiv_parts(a, b)
    return np.where(z, a64, a64 - q * bb).astype(I32)


def _umulhi(a, b):
    return ((a.astype(U64) * b.astype(U64)) >> U64(32)).astype(U32)


def _smulhi(a, b):
    return ((a.astype(I64) * b.astype(I64)) >> 32).astype(I32)


def _fmad(a, b, c, scratch=None):
    # The product of two f32 is exact in f64; one rounding of the sum to f32 matches a fused
    # multiply-add except for rare double-rounding cases.  The f64 temporary goes to a
    # reusable scratch buffer: fresh 0.5 MiB temporaries cost page faults on every call.
    n = max(a.shape[0], b.shape[0], c.shape[0])
    if scratch is None or scratch.shape[0] < n:
        return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(F32)
    buf = scratch[:n]
    np.multiply(a, b, out=buf, dtype=np.float64)
    np.add(buf, c, out=buf)
    return buf.astype(F32)


_BIN32 = {
    Opcode.ADD: {DType.U32: np.add, DType.S32: np.add, DType.F32: np.add},
    Opcode.SUB: {DType.U32: np.subtract, DType.S32: np.subtract, DType.F32: np.subtract},
    Opcode.MUL: {DType.U32: np.multiply, DType.S32: np.multiply, DType.F32: np.multiply},
    Opcode.DIV: {DType.U32: _udiv, DType.S32: _sdiv, DType.F32: np.true_divide},
    Opcode.REM: {DType.U32: _urem, DType.S32: _srem},
    Opcode.MIN: {DType.U32: np.minimum, DType.S32: np.minimum, DType.F32: np.fmin},
    Opcode.MAX: {DType.U32: np.maximum, DType.S32: np.maximum, DType.F32: np.fmax},
    Opcode.MULHI: {DType.U32: _umulhi, DType.S32: _smulhi},
    Opcode.AND: {DType.U32: np.bitwise_and, DType.S32: np.bitwise_and},
    Opcode.OR: {DType.U32: np.bitwise_or, DType.S32: np.bitwise_or},
    Opcode.XOR: {DType.U32: np.bitwise_xor, DType.S32: np.bitwise_xor},
}
_BIN64 = {
    Opcode.ADD: np.add, Opcode.SUB: np.subtract, Opcode.MUL: np.multiply,
    Opcode.MIN: np.minimum, Opcode.MAX: np.maximum, Opcode.AND: np.bitwise_and,
    Opcode.OR: np.bitwise_or, Opcode.XOR: np.bitwise_xor,
}


def _lin_bin(op: Opcode, bits: int):
    """Form rule of an integer binary op, or None when the op is not linear."""
    if op == Opcode.ADD:
        return lambda f, g: form_norm(form_add(f, g), bits)
    if op == Opcode.SUB:
        return lambda f, g: form_norm(form_sub(f, g), bits)
    if op == Opcode.MUL:
        def mul(f, g):
            if is_const(g):
                return form_norm(form_scale(f, g[0]), bits)
            if is_const(f):
                return form_norm(form_scale(g, f[0]), bits)
            return None
        return mul
    return None


# ---------------------------------------------------------------------------- builders

def _build_nop(c: _FunctionCompiler, pc: int, ins: dict):
    return K_NOP, None, 0


def _build_membar(c, pc, ins):
    if ins["mod"] > 2:
        raise _Illegal(f"unknown membar scope {ins['mod']}")
    # The simulator executes one chunk's memory operations in program order and chunks one
    # after another, so every access is already visible to every later one.
    return K_NOP, None, 0


def _build_exit(c, pc, ins):
    return K_EXIT, None, 0


def _build_bra(c, pc, ins):
    target = ins["imm"]
    if target >= c.fn.num_instrs:
        raise _Illegal(f"branch target {target} is outside the function "
                       f"({c.fn.num_instrs} instructions)")
    return K_BRA, None, target


def _build_bar(c, pc, ins):
    if ins["imm"] != 0:
        raise _Illegal(f"barrier {ins['imm']} does not exist (only barrier 0)")
    return K_BAR, None, 0


def _build_mov(c, pc, ins):
    t = _dtype(ins, W32_TYPES + INT64_TYPES)
    d = ins["dst"]
    if t in W32_TYPES:
        d = c.reg32(d)
        s = c.src32(ins["b"], ins, signed_imm=t != DType.U32)

        def mov32(ch, ex, full):
            if d == RZ:
                return
            if full:
                if s.reg is not None:
                    v, f = ch.v32[s.reg], ch.f32[s.reg]
                    if v is None and f is None:
                        f = ch.form32(s.reg)
                        if f is None:
                            v = ch.arr32(s.reg)
                    ch.set32(d, v, f)
                else:
                    ch.set32(d, None, s.form(ch))
            else:
                ch.set32_part(d, ex, _g(s.arr(ch), ex))
        return K_OP, mov32, 0
    d = c.reg64(d)
    s = c.src64(ins["b"], ins)

    def mov64(ch, ex, full):
        if d == RZ:
            return
        if full:
            f = s.form(ch)
            ch.set64(d, None if f is not None else s.arr(ch), f)
        else:
            ch.set64_part(d, ex, _g(s.arr(ch), ex))
    return K_OP, mov64, 0


def _build_s2r(c, pc, ins):
    d = c.reg32(ins["dst"])
    try:
        sr = Sreg(ins["mod"])
    except ValueError:
        raise _Illegal(f"unknown special register {ins['mod']}") from None

    def s2r(ch, ex, full):
        if d == RZ:
            return
        L = ch.L
        if sr <= Sreg.TID_Z or Sreg.CTAID_X <= sr <= Sreg.CTAID_Z:
            i = sr if sr <= Sreg.TID_Z else 3 + sr - Sreg.CTAID_X
            if L.use_forms:
                f = [0, 0, 0, 0, 0, 0, 0]
                f[1 + i] = 1
                val, form = None, tuple(f)
            else:
                val, form = ch.basis(i, U32), None
        elif Sreg.NTID_X <= sr <= Sreg.NTID_Z:
            val, form = None, const_form(L.block[sr - Sreg.NTID_X])
        elif Sreg.NCTAID_X <= sr <= Sreg.NCTAID_Z:
            val, form = None, const_form(L.grid[sr - Sreg.NCTAID_X])
        elif sr == Sreg.LANEID:
            val, form = ch.lane(), None
        elif sr == Sreg.WARPID:
            val, form = ch.warp_in_block(), None
        else:
            val, form = None, const_form(L.warp_instructions & M32)
        if form is not None and not L.use_forms:
            val, form = ch.materialize(form, 32), None
        if full:
            ch.set32(d, val, form)
        else:
            ch.set32_part(d, ex, _g(val if val is not None else ch.materialize(form, 32), ex))
    return K_OP, s2r, 0


def _build_ldparam(c, pc, ins):
    t = _dtype(ins, W32_TYPES + INT64_TYPES)
    size = 4 if t in W32_TYPES else 8
    off = ins["imm"]
    if off % size:
        raise _Illegal(f"ld.param offset {off} is not aligned to {size}")
    if off + size > c.fn.param_size:
        raise _Illegal(f"ld.param [{off}, {off + size}) is outside the "
                       f"{c.fn.param_size}-byte parameter block")
    d = c.reg32(ins["dst"]) if size == 4 else c.reg64(ins["dst"])

    def ldparam(ch, ex, full):
        if d == RZ:
            return
        v = int.from_bytes(ch.L.params[off:off + size], "little")
        form = const_form(v)
        if size == 4:
            if full:
                ch.set32(d, None, form)
            else:
                ch.set32_part(d, ex, np.array([v], dtype=U32))
        elif full:
            ch.set64(d, None, form)
        else:
            ch.set64_part(d, ex, np.array([v], dtype=U64))
    return K_OP, ldparam, 0


def _build_binop(c, pc, ins):
    op = Opcode(ins["opcode"])
    t = DType(ins["type"]) if ins["type"] in DType._value2member_map_ else None
    if t in INT64_TYPES and op in _BIN64:
        npfn = _BIN64[op]
        d = c.reg64(ins["dst"])
        sa = c.src64(ins["a"], ins, use_b_imm=False)
        sb = c.src64(ins["b"], ins)
        return _binop(npfn, VIEW[t], d, sa, sb, _lin_bin(op, 64), 64)
    table = _BIN32.get(op, {})
    if t not in table:
        raise _Illegal(f"{op.name.lower()} does not support type "
                       f"{t.name.lower() if t is not None else ins['type']}")
    d = c.reg32(ins["dst"])
    signed = t == DType.S32 or op in (Opcode.ADD, Opcode.SUB)
    sa = c.src32(ins["a"], ins, use_b_imm=False)
    sb = c.src32(ins["b"], ins, signed_imm=signed)
    return _binop(table[t], VIEW[t], d, sa, sb, _lin_bin(op, 32) if t != DType.F32 else None, 32)


def _binop(npfn, vt, d, sa, sb, lin, width):
    """The step function of a binary operation on 32-bit registers or
    64-bit pairs: symbolic (a linear form of the thread index) when both
    sources are, else one numpy call over the live threads."""
    if width == 32:
        has_arr, unit, write = _has_arr32, U32, _w32
        set_full = lambda ch, arr, h: ch.set32(d, arr, h)  # noqa: E731
    else:
        has_arr, unit, write = _has_arr64, U64, _w64
        set_full = lambda ch, arr, h: ch.set64(d, arr, h)  # noqa: E731

    def binop(ch, ex, full):
        if full:
            if lin is not None and ch.L.use_forms:
                f = sa.form(ch)
                if f is not None:
                    g = sb.form(ch)
                    if g is not None:
                        h = lin(f, g)
                        if h is not None:
                            if d != RZ:
                                arr = None
                                if has_arr(ch, sa, sb):
                                    arr = npfn(sa.arr(ch).view(vt), sb.arr(ch).view(vt)).view(unit)
                                set_full(ch, arr, h)
                            return
            res = npfn(sa.arr(ch).view(vt), sb.arr(ch).view(vt))
        else:
            res = npfn(_g(sa.arr(ch), ex).view(vt), _g(sb.arr(ch), ex).view(vt))
        write(ch, d, res.view(unit), ex, full)
    return K_OP, binop, 0


def _build_shift(c, pc, ins):
    op = Opcode(ins["opcode"])
    t = _dtype(ins, INT32_TYPES + INT64_TYPES)
    wide = t in INT64_TYPES
    bits = 64 if wide else 32
    vt = VIEW[t]
    d = c.reg64(ins["dst"]) if wide else c.reg32(ins["dst"])
    sa = c.src64(ins["a"], ins, use_b_imm=False) if wide else c.src32(ins["a"], ins, use_b_imm=False)
    sb = c.src32(ins["b"], ins, signed_imm=False)      # the amount is always 32-bit
    write = _w64 if wide else _w32
    setf = Chunk.set64 if wide else Chunk.set32
    signed = t in (DType.S32, DType.S64)
    shl = op == Opcode.SHL
    udt = U64 if wide else U32

    def shift_arrays(a, s):
        s = s.astype(udt)
        if shl:
            return np.where(s >= bits, vt(0), a << (s & udt(bits - 1)).astype(vt)).astype(vt)
        if signed:
            return (a >> np.minimum(s, udt(bits - 1)).astype(vt)).astype(vt)
        return np.where(s >= bits, vt(0), a >> (s & udt(bits - 1)).astype(vt)).astype(vt)

    def shift(ch, ex, full):
        if full:
            if shl and sb.const is not None and sb.const < bits and ch.L.use_forms:
                f = sa.form(ch)
                if f is not None:
                    if d != RZ:
                        has = _has_arr64(ch, sa) if wide else _has_arr32(ch, sa)
                        arr = shift_arrays(sa.arr(ch).view(vt), sb.arr(ch)).view(udt) if has \
                            else None
                        setf(ch, d, arr, form_norm(form_scale(f, 1 << sb.const), bits))
                    return
            res = shift_arrays(sa.arr(ch).view(vt), sb.arr(ch))
        else:
            res = shift_arrays(_g(sa.arr(ch), ex).view(vt), _g(sb.arr(ch), ex))
        write(ch, d, res.view(udt), ex, full)
    return K_OP, shift, 0


def _build_unary(c, pc, ins):
    op = Opcode(ins["opcode"])
    if op == Opcode.NOT and ins["type"] == DType.PRED:
        return _build_predlogic(c, pc, ins)
    allowed = {Opcode.NEG: W32_TYPES + INT64_TYPES, Opcode.ABS: (DType.S32, DType.F32, DType.S64),
               Opcode.NOT: INT32_TYPES + INT64_TYPES}[op]
    t = _dtype(ins, allowed)
    wide = t in INT64_TYPES
    vt = VIEW[t]
    udt = U64 if wide else U32
    d = c.reg64(ins["dst"]) if wide else c.reg32(ins["dst"])
    sa = c.src64(ins["a"], ins, use_b_imm=False) if wide else c.src32(ins["a"], ins, use_b_imm=False)
    npfn = {Opcode.NEG: np.negative, Opcode.ABS: np.abs, Opcode.NOT: np.invert}[op]
    write = _w64 if wide else _w32
    setf = Chunk.set64 if wide else Chunk.set32
    linear = op == Opcode.NEG and t != DType.F32
    bits = 64 if wide else 32

    def unary(ch, ex, full):
        if full:
            if linear and ch.L.use_forms:
                f = sa.form(ch)
                if f is not None:
                    if d != RZ:
                        setf(ch, d, None, form_norm(form_scale(f, -1), bits))
                    return
            res = npfn(sa.arr(ch).view(vt))
        else:
            res = npfn(_g(sa.arr(ch), ex).view(vt))
        write(ch, d, res.view(udt), ex, full)
    return K_OP, unary, 0


def _build_logic(c, pc, ins):
    if ins["type"] == DType.PRED:
        return _build_predlogic(c, pc, ins)
    return _build_binop(c, pc, ins)


def _build_predlogic(c, pc, ins):
    op = Opcode(ins["opcode"])
    d = c.pred(ins["dst"])
    a = c.pred(ins["a"])
    if ins["flags_b_imm"]:
        raise _Illegal("predicate logic takes no immediate")
    b = c.pred(ins["b"]) if op != Opcode.NOT else None
    npfn = {Opcode.AND: np.logical_and, Opcode.OR: np.logical_or,
            Opcode.XOR: np.logical_xor}.get(op)

    def predlogic(ch, ex, full):
        if full:
            res = np.logical_not(ch.P[a]) if b is None else npfn(ch.P[a], ch.P[b])
            ch.P[d] = res
        else:
            pa = _g(ch.P[a], ex)
            res = np.logical_not(pa) if b is None else npfn(pa, _g(ch.P[b], ex))
            ch.setp_part(d, ex, res)
    return K_OP, predlogic, 0


def _build_mad(c, pc, ins):
    t = _dtype(ins, W32_TYPES)
    vt = VIEW[t]
    d = c.reg32(ins["dst"])
    sa = c.src32(ins["a"], ins, use_b_imm=False)
    sb = c.src32(ins["b"], ins, signed_imm=t == DType.S32)
    sc = c.src32(ins["c"], ins, use_b_imm=False)
    is_float = t == DType.F32

    def compute(a, b, cc, ch=None):
        if is_float:
            return _fmad(a, b, cc, None if ch is None else ch.scratch64())
        return a * b + cc

    def mad(ch, ex, full):
        if full:
            if not is_float and ch.L.use_forms:
                fa, fb, fc = sa.form(ch), sb.form(ch), sc.form(ch)
                if fa is not None and fb is not None and fc is not None:
                    if is_const(fb):
                        prod = form_scale(fa, fb[0])
                    elif is_const(fa):
                        prod = form_scale(fb, fa[0])
                    else:
                        prod = None
                    if prod is not None:
                        if d != RZ:
                            arr = None
                            if _has_arr32(ch, sa, sb, sc):
                                arr = compute(sa.arr(ch).view(vt), sb.arr(ch).view(vt),
                                              sc.arr(ch).view(vt)).view(U32)
                            ch.set32(d, arr, form_norm(form_add(prod, fc), 32))
                        return
            res = compute(sa.arr(ch).view(vt), sb.arr(ch).view(vt), sc.arr(ch).view(vt), ch)
        else:
            res = compute(_g(sa.arr(ch), ex).view(vt), _g(sb.arr(ch), ex).view(vt),
                          _g(sc.arr(ch), ex).view(vt), ch)
        _w32(ch, d, res.view(U32), ex, full)
    return K_OP, mad, 0


def _build_mulwide(c, pc, ins):
    t = _dtype(ins, INT32_TYPES)
    signed = t == DType.S32
    d = c.reg64(ins["dst"])
    sa = c.src32(ins["a"], ins, use_b_imm=False)
    sb = c.src32(ins["b"], ins, signed_imm=signed)
    lo_ok, hi_ok = (-(1 << 31), (1 << 31) - 1) if signed else (0, M32)

    def compute(a, b):
        if signed:
            return (a.view(I32).astype(I64) * b.view(I32).astype(I64)).view(U64)
        return a.astype(U64) * b.astype(U64)

    def mulwide(ch, ex, full):
        if full:
            if ch.L.use_forms:
                fa, fb = sa.form(ch), sb.form(ch)
                if fa is not None and fb is not None and (is_const(fa) or is_const(fb)):
                    ra, rb = ch.frange(fa), ch.frange(fb)
                    # The 32-bit values are the exact forms only when no thread wraps.
                    if lo_ok <= ra[0] and ra[1] <= hi_ok and lo_ok <= rb[0] and rb[1] <= hi_ok:
                        prod = form_scale(fa, fb[0]) if is_const(fb) else form_scale(fb, fa[0])
                        if d != RZ:
                            arr = compute(sa.arr(ch), sb.arr(ch)) if _has_arr32(ch, sa, sb) \
                                else None
                            ch.set64(d, arr, form_norm(prod, 64))
                        return
            res = compute(sa.arr(ch), sb.arr(ch))
        else:
            res = compute(_g(sa.arr(ch), ex), _g(sb.arr(ch), ex))
        _w64(ch, d, res, ex, full)
    return K_OP, mulwide, 0


def _build_setp(c, pc, ins):
    t = _dtype(ins, W32_TYPES + INT64_TYPES)
    try:
        cmp = Cmp(ins["mod"])
    except ValueError:
        raise _Illegal(f"unknown comparison {ins['mod']}") from None
    if cmp in (Cmp.NUM, Cmp.NAN) and t != DType.F32:
        raise _Illegal(f"{cmp.name.lower()} compares floats only")
    d = c.pred(ins["dst"])
    wide = t in INT64_TYPES
    vt = VIEW[t]
    signed = t in (DType.S32, DType.S64)
    if wide:
        sa = c.src64(ins["a"], ins, use_b_imm=False)
        sb = c.src64(ins["b"], ins)
    else:
        sa = c.src32(ins["a"], ins, use_b_imm=False)
        sb = c.src32(ins["b"], ins, signed_imm=signed)
    bits = 64 if wide else 32
    lo_ok, hi_ok = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    is_int = t != DType.F32
    npfn = {Cmp.EQ: np.equal, Cmp.NE: np.not_equal, Cmp.LT: np.less, Cmp.LE: np.less_equal,
            Cmp.GT: np.greater, Cmp.GE: np.greater_equal}.get(cmp)

    def compare(a, b):
        if npfn is not None:
            return npfn(a, b)
        either = np.isnan(a) | np.isnan(b)
        return either if cmp == Cmp.NAN else ~either

    def decide(ch):
        """The comparison's result for the whole chunk, from the operands' forms, or None."""
        fa = sa.form(ch)
        if fa is None:
            return None
        fb = sb.form(ch)
        if fb is None:
            return None
        ra, rb = ch.frange(fa), ch.frange(fb)
        if not (lo_ok <= ra[0] and ra[1] <= hi_ok and lo_ok <= rb[0] and rb[1] <= hi_ok):
            return None
        lo, hi = ch.frange(form_sub(fa, fb))
        if cmp == Cmp.EQ or cmp == Cmp.NE:
            r = True if lo == hi == 0 else False if (lo > 0 or hi < 0) else None
            return r if r is None or cmp == Cmp.EQ else not r
        if cmp == Cmp.LT:
            return True if hi < 0 else False if lo >= 0 else None
        if cmp == Cmp.LE:
            return True if hi <= 0 else False if lo > 0 else None
        if cmp == Cmp.GT:
            return True if lo > 0 else False if hi <= 0 else None
        return True if lo >= 0 else False if hi < 0 else None     # GE

    def setp(ch, ex, full):
        if full:
            if is_int and ch.L.use_forms:
                r = decide(ch)
                if r is not None:
                    ch.P[d] = TRUE1 if r else FALSE1
                    return
            ch.P[d] = compare(sa.arr(ch).view(vt), sb.arr(ch).view(vt))
        else:
            ch.setp_part(d, ex, compare(_g(sa.arr(ch), ex).view(vt), _g(sb.arr(ch), ex).view(vt)))
    return K_OP, setp, 0


def _build_selp(c, pc, ins):
    t = _dtype(ins, W32_TYPES + INT64_TYPES)
    wide = t in INT64_TYPES
    p = c.pred(ins["c"])
    if wide:
        d = c.reg64(ins["dst"])
        sa = c.src64(ins["a"], ins, use_b_imm=False)
        sb = c.src64(ins["b"], ins)
    else:
        d = c.reg32(ins["dst"])
        sa = c.src32(ins["a"], ins, use_b_imm=False)
        sb = c.src32(ins["b"], ins, signed_imm=t == DType.S32)
    write = _w64 if wide else _w32

    def selp(ch, ex, full):
        pv = ch.P[p]
        if full:
            if pv.shape[0] == 1:           # uniform predicate: a plain move, forms and all
                src = sa if pv[0] else sb
                f = src.form(ch) if ch.L.use_forms else None
                if d != RZ:
                    (ch.set64 if wide else ch.set32)(d, None if f is not None else src.arr(ch), f)
                return
            res = np.where(pv, sa.arr(ch), sb.arr(ch))
        else:
            res = np.where(_g(pv, ex), _g(sa.arr(ch), ex), _g(sb.arr(ch), ex))
        write(ch, d, res, ex, full)
    return K_OP, selp, 0


_CVT_TYPES = (DType.U32, DType.S32, DType.F32, DType.U64, DType.S64, DType.U8, DType.S8,
              DType.U16, DType.S16, DType.F16)
_NP_OF = {DType.U32: U32, DType.S32: I32, DType.F32: F32, DType.U64: U64, DType.S64: I64,
          DType.U8: np.uint8, DType.S8: np.int8, DType.U16: np.uint16, DType.S16: np.int16,
          DType.F16: np.float16}
_FLOATS = (DType.F32, DType.F16)


def _read_as(raw: np.ndarray, t: DType) -> np.ndarray:
    """A register's raw bits (uint32, or uint64 for a pair) as a value array of type t."""
    if t in INT64_TYPES:
        return raw.view(_NP_OF[t])
    if t in W32_TYPES:
        return raw.view(_NP_OF[t])
    if t == DType.F16:
        return raw.astype(np.uint16).view(np.float16)
    small = raw.astype(np.uint8 if t in (DType.U8, DType.S8) else np.uint16)
    return small.view(_NP_OF[t])


def _to_reg(val: np.ndarray, t: DType) -> np.ndarray:
    """A value array of type t as register bits: uint32 (small types extended) or uint64."""
    if t in INT64_TYPES:
        return val.astype(_NP_OF[t]).view(U64)
    if t == DType.F16:
        return val.astype(np.float16).view(np.uint16).astype(U32)
    if t in (DType.S8, DType.S16):
        return val.astype(_NP_OF[t]).astype(I32).view(U32)
    return val.astype(_NP_OF[t]).view(U32) if t in W32_TYPES else val.astype(_NP_OF[t]).astype(U32)


def _build_cvt(c, pc, ins):
    dt = _dtype(ins, _CVT_TYPES)
    if ins["mod"] not in _CVT_TYPES:
        raise _Illegal(f"cvt source type {ins['mod']} is not valid")
    st = DType(ins["mod"])
    try:
        rnd = Rnd(ins["flags_rnd"])
    except ValueError:
        raise _Illegal(f"unknown rounding mode {ins['flags_rnd']}") from None
    if ins["flags_b_imm"]:
        raise _Illegal("cvt takes no immediate")
    if rnd != Rnd.DEFAULT and st not in _FLOATS:
        raise _Illegal("a rounding mode needs a float source")
    src_wide, dst_wide = st in INT64_TYPES, dt in INT64_TYPES
    sa = c.src64(ins["a"], ins, use_b_imm=False) if src_wide else c.src32(ins["a"], ins, use_b_imm=False)
    d = c.reg64(ins["dst"]) if dst_wide else c.reg32(ins["dst"])
    write = _w64 if dst_wide else _w32
    rounding = {Rnd.RZI: np.trunc, Rnd.RNI: np.rint, Rnd.RMI: np.floor, Rnd.RPI: np.ceil}.get(rnd)
    if rounding is None and st in _FLOATS and dt not in _FLOATS:
        rounding = np.trunc

    # Forms survive integer conversions that keep the value: same-width reinterpretation,
    # truncation of a pair to its low word, and widening when the range says no thread wraps.
    form_rule = None
    int_like = (DType.U32, DType.S32, DType.U64, DType.S64)
    if st in int_like and dt in int_like:
        if not dst_wide:
            form_rule = "keep"
        else:
            sbits = 64 if src_wide else 32
            signed_src = st in (DType.S32, DType.S64)
            form_rule = ((-(1 << (sbits - 1)), (1 << (sbits - 1)) - 1) if signed_src
                         else (0, (1 << sbits) - 1))

    def convert(raw):
        val = _read_as(raw, st)
        if st in _FLOATS and dt not in _FLOATS:
            info = np.iinfo(_NP_OF[dt])
            lo, hi = float(info.min), float(info.max)
            v = rounding(val.astype(np.float64))
            v = np.where(np.isnan(v), 0.0, np.clip(v, lo, hi))
            out = v.astype(_NP_OF[dt])
            if dt in INT64_TYPES:
                # float(INT64_MAX) rounds up to 2**63, which does not convert: saturate by hand.
                out = np.where(v >= hi, _NP_OF[dt](info.max), out)
            return _to_reg(out, dt)
        if st in _FLOATS and dt in _FLOATS and rounding is not None:
            val = rounding(val.astype(F32))
        return _to_reg(val, dt)

    def cvt(ch, ex, full):
        if full:
            if form_rule is not None and ch.L.use_forms:
                f = sa.form(ch)
                if f is not None:
                    ok = form_rule == "keep"
                    if not ok:
                        lo, hi = ch.frange(f)
                        ok = form_rule[0] <= lo and hi <= form_rule[1]
                    if ok:
                        if d != RZ:
                            (ch.set64 if dst_wide else ch.set32)(d, None, f)
                        return
            res = convert(sa.arr(ch))
        else:
            res = convert(_g(sa.arr(ch), ex))
        write(ch, d, res, ex, full)
    return K_OP, cvt, 0


def _build_math(c, pc, ins):
    _dtype(ins, (DType.F32,))
    try:
        fn = MathFn(ins["mod"])
    except ValueError:
        raise _Illegal(f"unknown math function {ins['mod']}") from None
    d = c.reg32(ins["dst"])
    sa = c.src32(ins["a"], ins, use_b_imm=False)
    npfn = {
        MathFn.SQRT: np.sqrt,
        MathFn.RSQRT: lambda x: (F32(1) / np.sqrt(x)).astype(F32),
        MathFn.EX2: np.exp2,
        MathFn.LG2: np.log2,
        MathFn.RCP: lambda x: (F32(1) / x).astype(F32),
        MathFn.SIN: np.sin,
        MathFn.COS: np.cos,
    }[fn]

    def math(ch, ex, full):
        a = sa.arr(ch) if full else _g(sa.arr(ch), ex)
        _w32(ch, d, npfn(a.view(F32)).astype(F32).view(U32), ex, full)
    return K_OP, math, 0


# ---------------------------------------------------------------------------- memory

_MEM_TYPES = (DType.U8, DType.S8, DType.U16, DType.S16, DType.U32, DType.S32, DType.F32,
              DType.U64, DType.S64, DType.F16)


def _load_conv(raw: np.ndarray, t: DType) -> np.ndarray:
    """Raw memory values -> register bits (uint32, or uint64 for 64-bit types)."""
    if t in (DType.U32, DType.S32, DType.F32, DType.U64, DType.S64):
        return raw
    if t == DType.F16:
        return raw.view(np.float16).astype(F32).view(U32)
    if t in (DType.S8, DType.S16):
        return raw.view(_NP_OF[t]).astype(I32).view(U32)
    return raw.astype(U32)


def _store_conv(bits: np.ndarray, t: DType) -> np.ndarray:
    """Register bits -> the raw memory values a store writes."""
    if t in (DType.U32, DType.S32, DType.F32, DType.U64, DType.S64):
        return bits
    if t == DType.F16:
        return bits.view(F32).astype(np.float16).view(np.uint16)
    return bits.astype(RAW[DTYPE_SIZE[t]])


def _write_loaded(ch: Chunk, d: int, wide: bool, vals: np.ndarray, ex, full: bool) -> None:
    if d == RZ:
        return
    if ex is None or vals.shape[0] == 1:
        if ex is None or full:
            (ch.set64 if wide else ch.set32)(d, vals, None)
        else:
            (ch.set64_part if wide else ch.set32_part)(d, ex, vals)
    elif full:
        # Only exited threads are missing: their registers are never read again.
        new = np.zeros(ch.n, dtype=vals.dtype)
        new[ex] = vals
        (ch.set64 if wide else ch.set32)(d, new, None)
    else:
        (ch.set64_part if wide else ch.set32_part)(d, ex, vals)


def _global_addr(c: _FunctionCompiler, ins: dict):
    """(pair register of the address, signed offset) of a global memory operand."""
    ra = c.reg64(ins["a"])
    imm = ins["imm"]
    if imm >= 1 << 31:
        imm -= 1 << 32
    return ra, imm


def _addr_form(ch: Chunk, ra: int, imm: int):
    f = ZERO_FORM if ra == RZ else ch.form64(ra)
    if f is None:
        return None
    return (f[0] + imm,) + f[1:]


def _addr_array(ch: Chunk, ra: int, imm: int, ex) -> np.ndarray:
    a = np.zeros(1, dtype=U64) if ra == RZ else _g(ch.arr64(ra), ex)
    if imm:
        a = a + U64(imm & M64)
    return a


def _contiguous(ch: Chunk, ra: int, imm: int, size: int):
    """Start of the chunk's accesses if thread t accesses base + size * t (all threads
    executing), else None."""
    f = _addr_form(ch, ra, imm)
    if f is None:
        return None
    aff = ch.affine(f)
    if aff is None or aff[1] != size:
        return None
    base = aff[0]
    if base < 0 or base % size or base + size * ch.n - 1 > M64:
        return None
    return base


def _build_ldg(c, pc, ins):
    t = _dtype(ins, _MEM_TYPES)
    size = DTYPE_SIZE[t]
    wide = size == 8
    d = c.reg64(ins["dst"]) if wide else c.reg32(ins["dst"])
    ra, imm = _global_addr(c, ins)
    raw_t = RAW[size]

    def ldg(ch, ex, full):
        L = ch.L
        m = ch.n if ex is None else len(ex)
        if ex is None and L.use_forms:
            base = _contiguous(ch, ra, imm, size)
            if base is not None:
                o = L.slice_range(base, size * ch.n, False, pc)
                if o is not None:
                    raw = L.vram[o:o + size * ch.n].view(raw_t)
                    vals = _load_conv(raw, t)
                    if vals is raw:
                        # The register is a view of device memory (no copy); the next store
                        # or atomic of this chunk copies it first (Chunk.unalias).
                        ch.mem_views = True
                    L.bytes_loaded += size * ch.n
                    _write_loaded(ch, d, wide, vals, None, True)
                    return
        addr = _addr_array(ch, ra, imm, ex)
        off = L.translate(addr, size, False, pc)
        vals = _load_conv(L.gather(off, size), t)
        L.bytes_loaded += size * m
        _write_loaded(ch, d, wide, vals, ex, full)
    return K_OP, ldg, 0


def _build_stg(c, pc, ins):
    t = _dtype(ins, _MEM_TYPES)
    size = DTYPE_SIZE[t]
    wide = size == 8
    sv = c.src64(ins["b"], ins, use_b_imm=False) if wide else c.src32(ins["b"], ins, use_b_imm=False)
    if ins["flags_b_imm"]:
        raise _Illegal("a store takes its value from a register")
    ra, imm = _global_addr(c, ins)
    raw_t = RAW[size]

    def stg(ch, ex, full):
        L = ch.L
        if ch.mem_views:
            ch.unalias(L.vram)
        if ex is None and L.use_forms:
            base = _contiguous(ch, ra, imm, size)
            if base is not None:
                o = L.slice_range(base, size * ch.n, True, pc)
                if o is not None:
                    L.vram[o:o + size * ch.n].view(raw_t)[:] = _store_conv(sv.arr(ch), t)
                    L.bytes_stored += size * ch.n
                    return
        addr = _addr_array(ch, ra, imm, ex)
        off = L.translate(addr, size, True, pc)
        vals = _store_conv(_g(sv.arr(ch), ex), t)
        if addr.shape[0] == 1:
            vals = vals[-1:]                  # every thread writes one address: the last wins
        L.scatter(off, size, vals)
        L.bytes_stored += size * (ch.n if ex is None else len(ex))
    return K_OP, stg, 0


def _shared_offsets(ch: Chunk, ra: int, imm: int, size: int, ex, pc: int) -> np.ndarray:
    """Byte offsets into the chunk's shared array of each executing thread's access."""
    L = ch.L
    if ra == RZ:
        a = np.array([imm], dtype=I64)
    else:
        a = _g(ch.arr32(ra), ex)
        if imm:
            a = a.astype(I64) + imm
    limit = L.shared_size - size
    # Cheap whole-array checks first (one reduction each); find the culprit only on failure.
    if size > 1 and int(np.bitwise_or.reduce(a)) & (size - 1):
        mis = a & (size - 1)
        bad = int(a[int(np.argmax(mis != 0))]) & M32
        raise DeviceFault("misaligned", f"{size}-byte shared access to {bad:#x} is not "
                          "aligned", pc=pc, address=bad)
    if int(a.max()) > limit or (a.dtype == I64 and int(a.min()) < 0):
        bad = (a < 0) | (a > limit)
        addr = int(a[int(np.argmax(bad))]) & M32
        raise DeviceFault("mmu", f"shared memory access at {addr:#x} is outside the block's "
                          f"{L.shared_size} bytes", pc=pc, address=addr)
    if ch.shared is None:
        ch.shared = np.zeros(ch.nb * L.shared_pitch, dtype=np.uint8)
    if ex is None:
        base = ch._cache.get("shared_base")
        if base is None:
            base = ch._cache["shared_base"] = ch.block_local() * L.shared_pitch
    else:
        base = ch.block_local()[ex] * L.shared_pitch
    return base + a


def _shared_view(ch: Chunk, size: int) -> np.ndarray:
    return ch.shared if size == 1 else ch.shared.view(RAW[size])


def _shared_by_form(ch: Chunk, ra: int, imm: int, size: int):
    """Fast path of a shared access by every thread of the chunk whose address register holds
    a form in tid.x/.y/.z only (matmul's As[ty][k], Bs[k][tx]): (2-D view of the shared words,
    one row per block; word index per block thread, shaped (bz', by', bx') where a coordinate
    the address does not depend on has extent 1).  None when the form is unknown, depends on
    the block, may wrap, is out of bounds or misaligned: the array path then finds the exact
    fault."""
    L = ch.L
    if not L.use_forms:
        return None
    f = ZERO_FORM if ra == RZ else ch.form32(ra)
    if f is None or f[4] or f[5] or f[6]:
        return None
    lo, hi = ch.frange(f)
    if lo < 0 or hi > M32 or lo + imm < 0 or hi + imm > L.shared_size - size:
        return None
    c0, cx, cy, cz = f[0] + imm, f[1], f[2], f[3]
    if (c0 | cx | cy | cz) & (size - 1):
        return None
    bx, by, bz = L.block
    shift = size.bit_length() - 1
    idx = np.full((bz if cz else 1, by if cy else 1, bx if cx else 1), c0 >> shift, dtype=np.intp)
    if cx:
        idx += np.arange(bx, dtype=np.intp) * (cx >> shift)
    if cy:
        idx += (np.arange(by, dtype=np.intp) * (cy >> shift))[:, None]
    if cz:
        idx += (np.arange(bz, dtype=np.intp) * (cz >> shift))[:, None, None]
    if ch.shared is None:
        ch.shared = np.zeros(ch.nb * L.shared_pitch, dtype=np.uint8)
    words = _shared_view(ch, size).reshape(ch.nb, L.shared_pitch // size)
    return words, idx


def _shared_load_form(ch: Chunk, ra: int, imm: int, size: int):
    got = _shared_by_form(ch, ra, imm, size)
    if got is None:
        return None
    words, idx = got
    bx, by, bz = ch.L.block
    flat = idx.reshape(-1)
    step = int(flat[1] - flat[0]) if flat.shape[0] > 1 else 1
    if step > 0 and sum(k > 1 for k in idx.shape) <= 1:
        # One coordinate varies, so the words are an arithmetic progression: a strided
        # view instead of a gather.
        start = int(flat[0])
        vals = words[:, start:start + step * (flat.shape[0] - 1) + 1:step]
    else:
        vals = words[:, flat]
    vals = vals.reshape((ch.nb,) + idx.shape)
    if vals.shape[1:] != (bz, by, bx):
        vals = np.broadcast_to(vals, (ch.nb, bz, by, bx))
    return np.ascontiguousarray(vals).reshape(-1)


def _build_lds(c, pc, ins):
    t = _dtype(ins, _MEM_TYPES)
    size = DTYPE_SIZE[t]
    wide = size == 8
    d = c.reg64(ins["dst"]) if wide else c.reg32(ins["dst"])
    ra = c.reg32(ins["a"])
    imm = ins["imm"] - (1 << 32) if ins["imm"] >= 1 << 31 else ins["imm"]
    shift = size.bit_length() - 1

    def lds(ch, ex, full):
        raw = _shared_load_form(ch, ra, imm, size) if ex is None else None
        if raw is None:
            off = _shared_offsets(ch, ra, imm, size, ex, pc)
            raw = _shared_view(ch, size)[off >> shift]
        _write_loaded(ch, d, wide, _load_conv(raw, t), ex, full)
    return K_OP, lds, 0


def _build_sts(c, pc, ins):
    t = _dtype(ins, _MEM_TYPES)
    size = DTYPE_SIZE[t]
    wide = size == 8
    if ins["flags_b_imm"]:
        raise _Illegal("a store takes its value from a register")
    sv = c.src64(ins["b"], ins, use_b_imm=False) if wide else c.src32(ins["b"], ins, use_b_imm=False)
    ra = c.reg32(ins["a"])
    imm = ins["imm"] - (1 << 32) if ins["imm"] >= 1 << 31 else ins["imm"]
    shift = size.bit_length() - 1

    def sts(ch, ex, full):
        if ex is None:
            got = _shared_by_form(ch, ra, imm, size)
            if got is not None:
                words, idx = got
                vals = np.broadcast_to(_store_conv(sv.arr(ch), t), (ch.n,))
                flat = idx.reshape(-1)
                if flat.shape[0] == ch.T:
                    words[:, flat] = vals.reshape(ch.nb, ch.T)
                else:
                    # Several threads of a block store to one address: the last one wins.
                    bx, by, bz = ch.L.block
                    v = vals.reshape(ch.nb, bz, by, bx)[:, -idx.shape[0]:, -idx.shape[1]:,
                                                         -idx.shape[2]:]
                    words[:, flat] = v.reshape(ch.nb, -1)
                return
        off = _shared_offsets(ch, ra, imm, size, ex, pc)
        vals = np.broadcast_to(_store_conv(_g(sv.arr(ch), ex), t), off.shape)
        _shared_view(ch, size)[off >> shift] = vals
    return K_OP, sts, 0


_ATOM_TYPES = {
    AtomOp.ADD: (DType.U32, DType.S32, DType.F32),
    AtomOp.MIN: INT32_TYPES, AtomOp.MAX: INT32_TYPES, AtomOp.EXCH: INT32_TYPES + (DType.F32,),
    AtomOp.CAS: INT32_TYPES, AtomOp.AND: INT32_TYPES, AtomOp.OR: INT32_TYPES,
    AtomOp.XOR: INT32_TYPES,
}


def _build_atom(c, pc, ins):
    try:
        aop = AtomOp(ins["mod"])
    except ValueError:
        raise _Illegal(f"unknown atomic operation {ins['mod']}") from None
    t = _dtype(ins, _ATOM_TYPES[aop])
    is_global = ins["opcode"] == Opcode.ATOMG
    d = c.reg32(ins["dst"])
    sb = c.src32(ins["b"], ins, signed_imm=t == DType.S32)
    sc = c.src32(ins["c"], ins, use_b_imm=False) if aop == AtomOp.CAS else None
    signed = t == DType.S32
    is_float = t == DType.F32
    if is_global:
        ra, imm = _global_addr(c, ins)
    else:
        ra = c.reg32(ins["a"])
        imm = ins["imm"] - (1 << 32) if ins["imm"] >= 1 << 31 else ins["imm"]

    def atom(ch, ex, full):
        L = ch.L
        if is_global:
            if ch.mem_views:
                ch.unalias(L.vram)
            addr = _addr_array(ch, ra, imm, ex)
            m = ch.n if ex is None else len(ex)
            if addr.shape[0] == 1 and m > 1:
                addr = np.broadcast_to(addr, (m,))
            off = L.translate(np.ascontiguousarray(addr), 4, True, pc)
            if (off & 3).any():
                raise DeviceFault("misaligned", "the VM mapped an atomic's address to an "
                                  "unaligned device offset", pc=pc, address=int(addr[0]))
            mem = L.views[4]
            L.bytes_loaded += 4 * m
            L.bytes_stored += 4 * m
        else:
            off = _shared_offsets(ch, ra, imm, 4, ex, pc)
            m = ch.n if ex is None else len(ex)
            if off.shape[0] != m:
                off = np.broadcast_to(off, (m,))
            mem = ch.shared.view(U32)
        b = _g(sb.arr(ch), ex)
        cc = None if sc is None else _g(sc.arr(ch), ex)
        old = atomic(mem, np.ascontiguousarray(off >> 2), aop, signed, is_float, b, cc)
        _write_loaded(ch, d, False, old, ex, full)
    return K_OP, atom, 0


def _build_printf(c, pc, ins):
    argc = ins["mod"]
    if argc > MAX_PRINTF_ARGS:
        raise _Illegal(f"printf with {argc} arguments (at most {MAX_PRINTF_ARGS})")
    data = c.module.data
    off = ins["imm"]
    end = data.find(b"\0", off) if off < len(data) else -1
    if end < 0:
        raise _Illegal(f"printf format at data offset {off} is not a NUL-terminated string "
                       f"inside the data section ({len(data)} bytes)")
    try:
        parts = parse_format(data[off:end])
    except FormatError as e:
        raise _Illegal(f"printf format: {e}") from None
    convs = conversions(parts)
    if len(convs) != argc:
        raise _Illegal(f"printf format has {len(convs)} conversions but {argc} arguments")
    regs = [ins[k] for k in ("a", "b", "c", "x0", "x1", "x2")][:argc]
    args = []
    for r, conv in zip(regs, convs):
        if conv.wide:
            args.append((c.reg64(r), True))
        else:
            args.append((c.reg32(r), False))

    def printf(ch, ex, full):
        out = ch.L.printf
        if out is None:
            return
        m = ch.n if ex is None else len(ex)
        cols = []
        for r, wide in args:
            if r == RZ:
                cols.append([0] * m)
                continue
            a = _g(ch.arr64(r) if wide else ch.arr32(r), ex)
            cols.append(np.broadcast_to(a, (m,)).tolist())
        for i in range(m):
            out(render(parts, [col[i] for col in cols]))
    return K_OP, printf, 0


_BUILDERS = {
    Opcode.NOP: _build_nop, Opcode.EXIT: _build_exit, Opcode.BRA: _build_bra,
    Opcode.BAR: _build_bar, Opcode.MEMBAR: _build_membar, Opcode.PRINTF: _build_printf,
    Opcode.MOV: _build_mov, Opcode.S2R: _build_s2r, Opcode.LDPARAM: _build_ldparam,
    Opcode.SELP: _build_selp, Opcode.SETP: _build_setp, Opcode.CVT: _build_cvt,
    Opcode.ADD: _build_binop, Opcode.SUB: _build_binop, Opcode.MUL: _build_binop,
    Opcode.MAD: _build_mad, Opcode.DIV: _build_binop, Opcode.REM: _build_binop,
    Opcode.MIN: _build_binop, Opcode.MAX: _build_binop, Opcode.NEG: _build_unary,
    Opcode.ABS: _build_unary, Opcode.MULWIDE: _build_mulwide, Opcode.MULHI: _build_binop,
    Opcode.AND: _build_logic, Opcode.OR: _build_logic, Opcode.XOR: _build_logic,
    Opcode.NOT: _build_unary, Opcode.SHL: _build_shift, Opcode.SHR: _build_shift,
    Opcode.MATH: _build_math,
    Opcode.LDG: _build_ldg, Opcode.STG: _build_stg, Opcode.LDS: _build_lds,
    Opcode.STS: _build_sts, Opcode.ATOMG: _build_atom, Opcode.ATOMS: _build_atom,
}
assert set(_BUILDERS) == set(Opcode)


# ============================================================================ program

class Program:
    """A module decoded once; launch() runs any of its functions.

    The code section is decoded in one go (the numpy decoder derived from structs/isa.py);
    each instruction is compiled into a step the first time a launch reaches it and kept for
    every later launch.  Loading therefore costs time and memory proportional to the code
    size only, however many functions share the code, and unreached garbage costs nothing."""

    def __init__(self, module: Module):
        self.module = module
        self._fields = decode_instructions(module.code)
        self._compilers = [None] * len(module.functions)
        self._steps = [None] * len(module.functions)

    @classmethod
    def from_module(cls, module: Module) -> "Program":
        return cls(module)

    def function_steps(self, findex: int):
        """(step list with None for not yet compiled, compiler) of function findex."""
        steps = self._steps[findex]
        if steps is None:
            self._compilers[findex] = _FunctionCompiler(self.module, findex, self._fields)
            steps = self._steps[findex] = [None] * self.module.functions[findex].num_instrs
        return steps, self._compilers[findex]


def _dims(value, name: str, limits) -> tuple[int, int, int]:
    try:
        dims = tuple(map(int, value))
    except (TypeError, ValueError):
        raise DeviceFault("bad_launch", f"{name} must be three integers, got {value!r}") from None
    if len(dims) == 3 and 1 <= dims[0] <= limits[0] and 1 <= dims[1] <= limits[1] and 1 <= dims[2] <= limits[2]:
        return dims                   # the usual case, without the loop below
    if len(dims) != 3:
        raise DeviceFault("bad_launch", f"{name} must have 3 dimensions, got {len(dims)}")
    for axis, v, limit in zip("xyz", dims, limits):
        if v < 1:
            raise DeviceFault("bad_launch", f"{name}.{axis} is {v}; every dimension must be >= 1")
        if v > limit:
            raise DeviceFault("bad_launch", f"{name}.{axis} is {v}, the limit is {limit}")
    return dims


def launch(program: Program, function_index: int, grid: tuple[int, int, int],
           block: tuple[int, int, int], params: bytes, memory: GlobalMemory, *,
           dynamic_shared: int = 0, deadline: float | None = None,
           printf: Callable[[bytes], None] | None = None) -> LaunchStats:
    """Run function `function_index` of `program` over grid x block threads.
    Raises DeviceFault (and nothing else) for anything the kernel or the launch does wrong."""
    functions = program.module.functions
    try:
        function_index = operator.index(function_index)
    except TypeError:
        function_index = -1
    if not 0 <= function_index < len(functions):
        raise DeviceFault("bad_launch", f"no function {function_index!r} "
                          f"(the module has {len(functions)})")
    fn = functions[function_index]
    grid = _dims(grid, "grid", MAX_GRID_DIM)
    block = _dims(block, "block", MAX_BLOCK_DIM)
    threads = block[0] * block[1] * block[2]
    if threads > MAX_THREADS_PER_BLOCK:
        raise DeviceFault("bad_launch", f"block of {threads} threads, the limit is "
                          f"{MAX_THREADS_PER_BLOCK}")
    try:
        params = bytes(memoryview(params))
    except TypeError:
        raise DeviceFault("bad_launch", "params is not a byte buffer") from None
    if len(params) != fn.param_size:
        raise DeviceFault("bad_launch", f"{fn.name}: {len(params)} bytes of parameters, the "
                          f"function takes {fn.param_size}")
    try:
        dynamic_shared = operator.index(dynamic_shared)
    except TypeError:
        dynamic_shared = -1
    if dynamic_shared < 0:
        raise DeviceFault("bad_launch", "dynamic shared size must be a non-negative integer")
    shared = fn.shared_size + dynamic_shared
    if shared > MAX_SHARED_PER_BLOCK:
        raise DeviceFault("bad_launch", f"{fn.name}: {fn.shared_size} static + {dynamic_shared} "
                          f"dynamic bytes of shared memory, the limit is {MAX_SHARED_PER_BLOCK}")
    L = _Launch(memory, params, grid, block, shared, printf, deadline)
    steps, compiler = program.function_steps(function_index)
    nblocks = grid[0] * grid[1] * grid[2]
    per_chunk = max(1, CHUNK_THREADS // threads)
    with np.errstate(all="ignore"):
        for b0 in range(0, nblocks, per_chunk):
            if deadline is not None and time.monotonic() > deadline:
                raise DeviceFault("timeout", f"{fn.name}: the watchdog expired before block {b0}")
            ch = Chunk(L, b0, min(per_chunk, nblocks - b0), fn.num_regs)
            _run_chunk(L, ch, steps, compiler, fn.name)
    return LaunchStats(warp_instructions=L.warp_instructions,
                       thread_instructions=L.thread_instructions,
                       bytes_loaded=L.bytes_loaded, bytes_stored=L.bytes_stored)


def _run_chunk(L: _Launch, ch: Chunk, steps: list, compiler: _FunctionCompiler,
               name: str) -> None:
    """The min-PC scheduler (module docstring).

    The threads at the smallest PC form the *group*, which runs on like one thread until it
    reaches the smallest PC of the other threads (`others`: they are then merged by the next
    selection), branches divergently, waits at a barrier, or exits.  The other threads keep
    their PCs in `pcs` (the group's entries hold IN_GROUP meanwhile).  When the group is every
    live thread (`pcs is None`: the uniform case) no per-thread PC exists at all, and ALU
    instructions may compute over whole arrays."""
    n = ch.n
    deadline = L.deadline
    P = ch.P
    count = 0
    pc = 0
    ex = None            # the group: None = every thread of the chunk, else sorted indices
    nex = n              # threads in the group
    nlive = n            # live threads of the chunk (group, others, and barrier waiters)
    warps = ch.nwarps    # warps the group spans
    pcs = None           # per-thread PCs of the other threads; None when there are none
    others = EXITED      # smallest PC in pcs (>= WAITING: nothing else is runnable)
    grouped = True
    while True:
        count += 1
        if deadline is not None and count % DEADLINE_CHECK_STEPS == 0 \
                and time.monotonic() > deadline:
            raise DeviceFault("timeout", f"{name}: the watchdog expired", pc=pc)
        if not grouped:
            # ------------------------------------------------------ select the next group
            m = int(pcs.min())
            if m >= WAITING:
                if m >= EXITED:
                    return
                # Nothing is runnable: every live thread waits at a barrier, so every
                # block's barrier is complete.  Release them all.
                pcs[pcs < EXITED] -= WAITING - 1
                continue
            ex = np.flatnonzero(pcs == m)
            nex = len(ex)
            pc = m
            if nex == nlive:                  # reconverged: the uniform fast path again
                pcs = None
                others = EXITED
                if nlive == n:
                    ex = None
                    warps = ch.nwarps
                else:
                    warps = ch.warps_of(ex)
            else:
                pcs[ex] = IN_GROUP
                others = int(pcs.min())
                warps = ch.warps_of(ex)
            grouped = True
        if pc >= others:                      # caught up with other threads: merge them
            pcs[ex] = pc
            grouped = False
            continue
        # ---------------------------------------------------------- run the group
        step = steps[pc] if pc < len(steps) else None
        if step is None:
            if pc >= len(steps):
                raise DeviceFault("illegal_instruction", f"{name}: execution ran past the end "
                                  "of the function", pc=pc)
            step = steps[pc] = compiler.compile_at(pc)
        kind, gp, gneg, fn, target = step
        L.thread_instructions += nex
        L.warp_instructions += warps
        run = ex
        some = False                          # True: only `run` executes, `rest` skips
        if gp >= 0:
            pv = P[gp]
            if pv.shape[0] == 1:
                if bool(pv[0]) == gneg:       # nobody executes
                    pc += 1
                    continue
            else:
                sel = pv if ex is None else pv[ex]
                if gneg:
                    sel = ~sel
                cnt = int(np.count_nonzero(sel))
                if cnt == 0:
                    pc += 1
                    continue
                if cnt < nex:
                    some = True
                    run = np.flatnonzero(sel) if ex is None else ex[sel]
                    rest = np.flatnonzero(~sel) if ex is None else ex[~sel]
        if kind == K_OP:
            fn(ch, run, pcs is None and not some)
            pc += 1
        elif kind == K_NOP:
            pc += 1
        elif kind == K_BRA:
            if not some:
                pc = target                   # the whole group jumps
            else:                             # the group splits
                if pcs is None:
                    pcs = np.full(n, EXITED, dtype=np.int32)
                pcs[rest] = pc + 1
                pcs[run] = target
                grouped = False
        elif kind == K_EXIT:
            if not some:
                nlive -= nex
                if pcs is None:
                    return
                pcs[ex] = EXITED
                grouped = False
            else:
                nlive -= len(run)
                if pcs is not None:
                    pcs[run] = EXITED
                ex = rest
                nex = len(rest)
                warps = ch.warps_of(ex)
                pc += 1
        elif kind == K_BAR:
            if not some and pcs is None:
                pc += 1                       # every live thread is here: the barrier opens
            else:
                if pcs is None:
                    pcs = np.full(n, EXITED, dtype=np.int32)
                if some:
                    pcs[rest] = pc + 1
                pcs[run if run is not None else slice(None)] = pc + WAITING
                grouped = False
        else:
            fn(ch, run, False)                # K_FAULT: raises
