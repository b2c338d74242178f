"""The SIMT executor (pydriver/sim): every opcode family against numpy, divergence, barriers,
shared memory, atomics, printf, faults, and garbage programs.  Pure Python: FlatMemory is the
GlobalMemory test double."""

from __future__ import annotations

import math
import os
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pydriver.asm import assemble
from pydriver.sim import chunk as chunk_mod
from pydriver.sim import executor
from pydriver.sim.executor import LaunchStats, Program, launch
from pydriver.sim.faults import DeviceFault, MemoryFault
from pydriver.sim.flatmem import FlatMemory
from structs.isa import DType, Opcode, decode_instructions, encode_instruction
from structs.module import Function, Module, build_module, parse_module

KDIR = os.path.join(os.path.dirname(__file__), "..", "umd", "kernels")
# AISHIM_STRESS=20 runs the property tests with 20 times more examples (a bug hunt, not CI).
STRESS = float(os.environ.get("AISHIM_STRESS", "1"))
U32, I32, F32, U64, I64 = np.uint32, np.int32, np.float32, np.uint64, np.int64


def program(src: str) -> Program:
    return Program.from_module(parse_module(assemble(src, "<test>")))


def kernel(name: str) -> Program:
    with open(os.path.join(KDIR, name + ".s")) as f:
        return program(f.read())


@pytest.fixture(params=[True, False], ids=["forms", "arrays"])
def forms(request, monkeypatch):
    """Run a test with the symbolic (linear form) fast paths on and off."""
    monkeypatch.setattr(chunk_mod, "USE_FORMS", request.param)
    return request.param


@pytest.fixture
def small_chunks(monkeypatch):
    """Tiny chunks, so launches span several chunks and chunks start mid-row."""
    monkeypatch.setattr(executor, "CHUNK_THREADS", 96)


def upload(mem: FlatMemory, arr: np.ndarray) -> int:
    va = mem.alloc(max(arr.nbytes, 1))
    mem.view(va, arr.size, arr.dtype)[:] = arr.ravel()
    return va


# ============================================================================ sample kernels

@pytest.mark.parametrize("n, block", [(1, 1), (1000, 256), (4096, 128), (777, 64), (70000, 1024)])
def test_vecadd(forms, n, block):
    mem = FlatMemory(3 * 4 * n + (4 << 20))
    rng = np.random.default_rng(n)
    a, b = rng.standard_normal(n).astype(F32), rng.standard_normal(n).astype(F32)
    pa, pb, pc = upload(mem, a), upload(mem, b), mem.alloc(4 * n)
    stats = launch(kernel("vecadd"), 0, (-(-n // block), 1, 1), (block, 1, 1),
                   struct.pack("<QQQI", pa, pb, pc, n), mem)
    assert np.array_equal(mem.view(pc, n, F32), a + b)
    assert stats.bytes_loaded == 8 * n and stats.bytes_stored == 4 * n
    assert stats.thread_instructions > 0 and stats.warp_instructions > 0


def test_vecadd_across_many_small_chunks(forms, small_chunks):
    n = 1000
    mem = FlatMemory(1 << 20)
    a, b = np.arange(n, dtype=F32), np.full(n, 0.5, F32)
    pa, pb, pc = upload(mem, a), upload(mem, b), mem.alloc(4 * n)
    launch(kernel("vecadd"), 0, (32, 1, 1), (32, 1, 1), struct.pack("<QQQI", pa, pb, pc, n), mem)
    assert np.array_equal(mem.view(pc, n, F32), a + b)


def test_saxpy(forms):
    n = 5000
    mem = FlatMemory(1 << 20)
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal(n).astype(F32), rng.standard_normal(n).astype(F32)
    alpha = F32(1.75)
    px, py = upload(mem, x), upload(mem, y)
    launch(kernel("saxpy"), 0, (-(-n // 256), 1, 1), (256, 1, 1),
           struct.pack("<IfQQ", n, alpha, px, py), mem)
    expect = (np.float64(alpha) * x.astype(np.float64) + y).astype(F32)    # one rounding
    assert np.array_equal(mem.view(py, n, F32), expect)


def test_fill_grid_stride(forms):
    n = 10_000
    mem = FlatMemory(1 << 20)
    p = mem.alloc(4 * n + 64)
    launch(kernel("fill"), 0, (3, 1, 1), (100, 1, 1), struct.pack("<QII", p, 0xCAFEF00D, n), mem)
    out = mem.view(p, n + 16, U32)
    assert (out[:n] == 0xCAFEF00D).all() and (out[n:] == 0).all()


def test_empty_kernel_stats():
    mem = FlatMemory(4096)
    stats = launch(kernel("empty"), 0, (3, 2, 1), (40, 1, 1), b"", mem)
    # One instruction; a block of 40 threads is 2 warps.
    assert stats == LaunchStats(warp_instructions=12, thread_instructions=240,
                                bytes_loaded=0, bytes_stored=0)


def test_program_is_reused_across_launches():
    prog = kernel("vecadd")
    mem = FlatMemory(1 << 20)
    for n in (10, 300, 5):
        a = np.arange(n, dtype=F32)
        pa, pc = upload(mem, a), mem.alloc(4 * n)
        launch(prog, 0, (1, 1, 1), (512, 1, 1), struct.pack("<QQQI", pa, pa, pc, n), mem)
        assert np.array_equal(mem.view(pc, n, F32), 2 * a)


# ============================================================================ ALU vs numpy

EDGE_U32 = np.array([0, 1, 2, 3, 7, 31, 32, 33, 0x7FFFFFFF, 0x80000000, 0x80000001,
                     0xFFFFFFFE, 0xFFFFFFFF, 1000, 65536], dtype=U32)
EDGE_F32 = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 3.25, -7.5, 1e-30, 1e30, np.inf, -np.inf, np.nan,
                     123456.0, -2.5, 16777217.0], dtype=F32)


def operands(dtype, n, seed):
    rng = np.random.default_rng(seed)
    if dtype in (F32,):
        edge = EDGE_F32
        rnd = (rng.standard_normal(n) * rng.choice([1, 100, 1e6], n)).astype(F32)
    elif dtype in (U64, I64):
        edge = np.concatenate([EDGE_U32.astype(U64), EDGE_U32.astype(U64) << U64(32),
                               np.array([(1 << 64) - 1, 1 << 63], dtype=U64)]).view(dtype)
        rnd = rng.integers(0, 1 << 64, n, dtype=U64).view(dtype)
    else:
        edge = EDGE_U32.view(dtype)
        rnd = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(U32).view(dtype)
    a = np.concatenate([np.repeat(edge, len(edge)), rnd])[:n]
    b = np.concatenate([np.tile(edge, len(edge)), rng.permutation(rnd)])[:n]
    return a, b, rng.permutation(a)


TEMPLATE = """
.entry k
.param ptr a
.param ptr b
.param ptr c
.param ptr out
.param u32 n
        s2r r0, %tid.x
        s2r r1, %ctaid.x
        s2r r2, %ntid.x
        mad.lo.u32 r0, r1, r2, r0
        ld.param.u32 r3, [n]
        setp.ge.u32 p7, r0, r3
  @p7   exit
        mul.wide.u32 r4, r0, {isize}
        ld.param.u64 r6, [a]
        add.u64 r6, r6, r4
        ld.global.{itype} {A}, [r6]
        ld.param.u64 r6, [b]
        add.u64 r6, r6, r4
        ld.global.{itype} {B}, [r6]
        ld.param.u64 r6, [c]
        add.u64 r6, r6, r4
        ld.global.{itype} {C}, [r6]
{body}
        mul.wide.u32 r4, r0, {osize}
        ld.param.u64 r6, [out]
        add.u64 r6, r6, r4
        st.global.{otype} [r6], {D}
        exit
"""

# How the operation is reached: by every thread in lock-step, by two halves of a divergent
# branch (partial execution on thread subsets), or by two guarded copies (@p / @!p).
MODES = {
    "uniform": "{op}",
    "divergent": """        and.b32 r30, r0, 1
        setp.eq.u32 p6, r30, 0
  @p6   bra even
        {op}
        bra join
even:   {op}
join:   nop""",
    "guarded": """        and.b32 r30, r0, 1
        setp.eq.u32 p6, r30, 0
  @p6   {op}
  @!p6  {op}""",
}

NP = {"u32": U32, "s32": I32, "f32": F32, "u64": U64, "s64": I64}


def run_elementwise(op: str, itype: str, otype: str, ref, mode: str, n: int = 300, seed: int = 0):
    wide_in, wide_out = itype in ("u64", "s64"), otype in ("u64", "s64")
    regs = dict(A="r10", B="r12", C="r14", D="r16") if (wide_in or wide_out) else \
        dict(A="r10", B="r11", C="r12", D="r13")
    text = op.format(**regs)
    body = MODES[mode].format(op=text)
    src = TEMPLATE.format(body=body, itype=itype, otype=otype, isize=8 if wide_in else 4,
                          osize=8 if wide_out else 4, **regs)
    dt_in, dt_out = NP[itype], NP[otype]
    a, b, c = operands(dt_in, n, seed)
    mem = FlatMemory(1 << 20)
    pa, pb, pc = upload(mem, a), upload(mem, b), upload(mem, c)
    pout = mem.alloc(8 * n)
    launch(program(src), 0, (-(-n // 64), 1, 1), (64, 1, 1),
           struct.pack("<QQQQI", pa, pb, pc, pout, n), mem)
    got = mem.view(pout, n, dt_out).copy()
    with np.errstate(all="ignore"):
        expect = np.asarray(ref(a, b, c)).astype(dt_out)
    return got, expect


def same_bits(got, expect):
    if got.dtype == F32:
        both_nan = np.isnan(got) & np.isnan(expect)
        return np.array_equal(got.view(U32)[~both_nan], expect.view(U32)[~both_nan])
    return np.array_equal(got, expect)


def trunc_div(a, b, signed):
    out = []
    for x, y in zip(a.tolist(), b.tolist()):
        if y == 0:
            out.append(-1 if signed else 0xFFFFFFFF)
        elif signed and x == -(1 << 31) and y == -1:
            out.append(-(1 << 31))
        else:
            q = abs(x) // abs(y)
            out.append(-q if (x < 0) != (y < 0) else q)
    return np.array(out, dtype=np.int64).astype(I32 if signed else U32)


def trunc_rem(a, b, signed):
    q = trunc_div(a, b, signed).astype(np.int64)
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    r = np.where(b64 == 0, a64, a64 - q * np.where(b64 == 0, 1, b64))
    return r.astype(I32 if signed else U32)


def shl(a, s, bits):
    s = s.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    dt = a.dtype
    return np.where(s >= bits, dt.type(0), a << (s % bits).astype(dt)).astype(dt)


def shr(a, s, bits):
    s = s.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    dt = a.dtype
    if dt.kind == "i":
        return (a >> np.minimum(s, bits - 1).astype(dt)).astype(dt)
    return np.where(s >= bits, dt.type(0), a >> (s % bits).astype(dt)).astype(dt)


ALU_CASES = [
    # (op text, input type, output type, numpy reference)
    ("add.u32 {D}, {A}, {B}", "u32", "u32", lambda a, b, c: a + b),
    ("add.u32 {D}, {A}, 0xFFFFFFF0", "u32", "u32", lambda a, b, c: a + U32(0xFFFFFFF0)),
    ("add.s32 {D}, {A}, -5", "s32", "s32", lambda a, b, c: a + I32(-5)),
    ("sub.u32 {D}, {A}, {B}", "u32", "u32", lambda a, b, c: a - b),
    ("sub.s32 {D}, {A}, {B}", "s32", "s32", lambda a, b, c: a - b),
    ("mul.lo.u32 {D}, {A}, {B}", "u32", "u32", lambda a, b, c: a * b),
    ("mul.lo.s32 {D}, {A}, -3", "s32", "s32", lambda a, b, c: a * I32(-3)),
    ("mul.hi.u32 {D}, {A}, {B}", "u32", "u32",
     lambda a, b, c: ((a.astype(U64) * b.astype(U64)) >> U64(32)).astype(U32)),
    ("mul.hi.s32 {D}, {A}, {B}", "s32", "s32",
     lambda a, b, c: ((a.astype(I64) * b.astype(I64)) >> 32).astype(I32)),
    ("mad.lo.u32 {D}, {A}, {B}, {C}", "u32", "u32", lambda a, b, c: a * b + c),
    ("mad.lo.s32 {D}, {A}, 7, {C}", "s32", "s32", lambda a, b, c: a * I32(7) + c),
    ("div.u32 {D}, {A}, {B}", "u32", "u32", lambda a, b, c: trunc_div(a, b, False)),
    ("div.s32 {D}, {A}, {B}", "s32", "s32", lambda a, b, c: trunc_div(a, b, True)),
    ("rem.u32 {D}, {A}, {B}", "u32", "u32", lambda a, b, c: trunc_rem(a, b, False)),
    ("rem.s32 {D}, {A}, {B}", "s32", "s32", lambda a, b, c: trunc_rem(a, b, True)),
    ("div.u32 {D}, {A}, 0", "u32", "u32", lambda a, b, c: np.full_like(a, 0xFFFFFFFF)),
    ("rem.u32 {D}, {A}, 0", "u32", "u32", lambda a, b, c: a),
    ("min.u32 {D}, {A}, {B}", "u32", "u32", lambda a, b, c: np.minimum(a, b)),
    ("max.u32 {D}, {A}, {B}", "u32", "u32", lambda a, b, c: np.maximum(a, b)),
    ("min.s32 {D}, {A}, {B}", "s32", "s32", lambda a, b, c: np.minimum(a, b)),
    ("max.s32 {D}, {A}, -1", "s32", "s32", lambda a, b, c: np.maximum(a, I32(-1))),
    ("neg.s32 {D}, {A}", "s32", "s32", lambda a, b, c: -a),
    ("neg.u32 {D}, {A}", "u32", "u32", lambda a, b, c: (0 - a.astype(np.int64)).astype(U32)),
    ("abs.s32 {D}, {A}", "s32", "s32", lambda a, b, c: np.abs(a)),
    ("and.b32 {D}, {A}, {B}", "u32", "u32", lambda a, b, c: a & b),
    ("or.b32 {D}, {A}, {B}", "u32", "u32", lambda a, b, c: a | b),
    ("xor.b32 {D}, {A}, 0x0F0F0F0F", "u32", "u32", lambda a, b, c: a ^ U32(0x0F0F0F0F)),
    ("not.b32 {D}, {A}", "u32", "u32", lambda a, b, c: ~a),
    ("shl.b32 {D}, {A}, {B}", "u32", "u32", lambda a, b, c: shl(a, b, 32)),
    ("shl.b32 {D}, {A}, 5", "u32", "u32", lambda a, b, c: a << U32(5)),
    ("shl.b32 {D}, {A}, 32", "u32", "u32", lambda a, b, c: np.zeros_like(a)),
    ("shr.u32 {D}, {A}, {B}", "u32", "u32", lambda a, b, c: shr(a, b, 32)),
    ("shr.s32 {D}, {A}, {B}", "s32", "s32", lambda a, b, c: shr(a, b.view(U32), 32)),
    ("shr.s32 {D}, {A}, 40", "s32", "s32", lambda a, b, c: a >> I32(31)),
    ("add.f32 {D}, {A}, {B}", "f32", "f32", lambda a, b, c: a + b),
    ("sub.f32 {D}, {A}, 1.5", "f32", "f32", lambda a, b, c: a - F32(1.5)),
    ("mul.f32 {D}, {A}, {B}", "f32", "f32", lambda a, b, c: a * b),
    ("div.f32 {D}, {A}, {B}", "f32", "f32", lambda a, b, c: a / b),
    ("min.f32 {D}, {A}, {B}", "f32", "f32", lambda a, b, c: np.fmin(a, b)),
    ("max.f32 {D}, {A}, {B}", "f32", "f32", lambda a, b, c: np.fmax(a, b)),
    ("neg.f32 {D}, {A}", "f32", "f32", lambda a, b, c: -a),
    ("abs.f32 {D}, {A}", "f32", "f32", lambda a, b, c: np.abs(a)),
    ("mad.f32 {D}, {A}, {B}, {C}", "f32", "f32",
     lambda a, b, c: (a.astype(np.float64) * b + c.astype(np.float64)).astype(F32)),
    ("sqrt.f32 {D}, {A}", "f32", "f32", lambda a, b, c: np.sqrt(a)),
    ("add.u64 {D}, {A}, {B}", "u64", "u64", lambda a, b, c: a + b),
    ("add.u64 {D}, {A}, -16", "u64", "u64", lambda a, b, c: a - U64(16)),
    ("sub.s64 {D}, {A}, {B}", "s64", "s64", lambda a, b, c: a - b),
    ("mul.lo.u64 {D}, {A}, {B}", "u64", "u64", lambda a, b, c: a * b),
    ("min.s64 {D}, {A}, {B}", "s64", "s64", lambda a, b, c: np.minimum(a, b)),
    ("max.u64 {D}, {A}, {B}", "u64", "u64", lambda a, b, c: np.maximum(a, b)),
    ("and.b64 {D}, {A}, {B}", "u64", "u64", lambda a, b, c: a & b),
    ("or.b64 {D}, {A}, {B}", "u64", "u64", lambda a, b, c: a | b),
    ("xor.b64 {D}, {A}, {B}", "u64", "u64", lambda a, b, c: a ^ b),
    ("not.b64 {D}, {A}", "u64", "u64", lambda a, b, c: ~a),
    ("neg.s64 {D}, {A}", "s64", "s64", lambda a, b, c: -a),
    ("shl.b64 {D}, {A}, 33", "u64", "u64", lambda a, b, c: a << U64(33)),
    ("shr.u64 {D}, {A}, 7", "u64", "u64", lambda a, b, c: a >> U64(7)),
    ("shr.s64 {D}, {A}, 63", "s64", "s64", lambda a, b, c: a >> I64(63)),
    ("mov.u64 {D}, -2", "u64", "u64", lambda a, b, c: np.full_like(a, (1 << 64) - 2)),
    ("mov.b32 {D}, {A}", "u32", "u32", lambda a, b, c: a),
]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("op, itype, otype, ref", ALU_CASES, ids=[c[0] for c in ALU_CASES])
def test_alu_against_numpy(forms, mode, op, itype, otype, ref):
    got, expect = run_elementwise(op, itype, otype, ref, mode)
    assert same_bits(got, expect), (got[:20], expect[:20])


MATH_CASES = [
    ("rsqrt.f32", lambda a: 1 / np.sqrt(a)), ("ex2.f32", np.exp2), ("lg2.f32", np.log2),
    ("rcp.f32", lambda a: 1 / a), ("sin.f32", np.sin), ("cos.f32", np.cos),
]


@pytest.mark.parametrize("name, ref", MATH_CASES, ids=[c[0] for c in MATH_CASES])
def test_math_functions(forms, name, ref):
    got, expect = run_elementwise(f"{name} {{D}}, {{A}}", "f32", "f32",
                                  lambda a, b, c: ref(a.astype(np.float64)), "uniform")
    finite = np.isfinite(expect)
    assert np.allclose(got[finite], expect[finite], rtol=2e-6, atol=1e-6)
    assert np.array_equal(np.isnan(got), np.isnan(expect))


def test_mul_wide(forms):
    for t, conv in (("u32", lambda x: x.astype(U64)), ("s32", lambda x: x.astype(I64))):
        got, expect = run_elementwise(f"mul.wide.{t} {{D}}, {{A}}, {{B}}", t,
                                      "u64" if t == "u32" else "s64",
                                      lambda a, b, c: conv(a) * conv(b), "divergent")
        assert np.array_equal(got, expect)


SETP = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
        "gt": np.greater, "ge": np.greater_equal}


SETP_CASES = [(c, t) for t in ("u32", "s32", "f32", "u64", "s64") for c in SETP] + \
    [("num", "f32"), ("nan", "f32")]


@pytest.mark.parametrize("cmp, t", SETP_CASES)
def test_setp_and_selp(forms, cmp, t):
    ref_cmp = SETP.get(cmp) or (lambda a, b: np.isnan(a) | np.isnan(b) if cmp == "nan"
                                else ~(np.isnan(a) | np.isnan(b)))
    op = f"setp.{cmp}.{t} p1, {{A}}, {{B}}\n        mov.u32 r21, 1\n" \
         "        selp.u32 r20, r21, 0, p1\n        cvt.u64.u32 {D}, r20" if t in ("u64", "s64") \
        else f"setp.{cmp}.{t} p1, {{A}}, {{B}}\n        mov.u32 r21, 1\n" \
        "        selp.u32 {D}, r21, 0, p1"
    otype = "u64" if t in ("u64", "s64") else "u32"
    got, expect = run_elementwise(op, t, otype, lambda a, b, c: ref_cmp(a, b), "uniform")
    assert np.array_equal(got, expect)


def test_setp_with_immediate_and_selp_registers(forms):
    got, expect = run_elementwise("setp.lt.s32 p2, {A}, -100\n        selp.s32 {D}, {A}, {B}, p2",
                                  "s32", "s32", lambda a, b, c: np.where(a < -100, a, b),
                                  "divergent")
    assert np.array_equal(got, expect)


def test_predicate_logic(forms):
    op = ("setp.lt.u32 p1, {A}, {B}\n        setp.lt.u32 p2, {B}, {C}\n"
          "        and.pred p3, p1, p2\n        or.pred p4, p1, p2\n        xor.pred p5, p3, p4\n"
          "        not.pred p5, p5\n        mov.u32 r25, 1\n        selp.u32 r20, r25, 0, p3\n"
          "        add.u32 r25, r25, r25\n        selp.u32 r21, r25, 0, p4\n"
          "        add.u32 r25, r25, r25\n        selp.u32 r22, r25, 0, p5\n"
          "        or.b32 r20, r20, r21\n        or.b32 {D}, r20, r22")

    def ref(a, b, c):
        p1, p2 = a < b, b < c
        p3, p4 = p1 & p2, p1 | p2
        return p3 * 1 + p4 * 2 + ~(p3 ^ p4) * 4
    for mode in MODES:
        got, expect = run_elementwise(op, "u32", "u32", ref, mode)
        assert np.array_equal(got, expect), mode


# ----------------------------------------------------------------------------- cvt

def cvt_ref(x: np.ndarray, dst: str, src: str, rnd: str | None):
    """Reference conversion from src values to dst register contents (as the out type)."""
    info = {"u8": (0, 255), "s8": (-128, 127), "u16": (0, 65535), "s16": (-32768, 32767),
            "u32": (0, (1 << 32) - 1), "s32": (-(1 << 31), (1 << 31) - 1),
            "u64": (0, (1 << 64) - 1), "s64": (-(1 << 63), (1 << 63) - 1)}
    out = []
    for v in x.tolist():
        if src in ("f32",):
            if dst == "f32":
                out.append(v)
                continue
            if dst == "f16":
                out.append(float(np.float16(v)))
                continue
            if math.isnan(v):
                out.append(0)
                continue
            r = {"rni": lambda z: round(z) if abs(z) != math.inf else z,
                 "rmi": math.floor, "rpi": math.ceil}.get(rnd, math.trunc)
            try:
                iv = r(v)
            except OverflowError:
                iv = info[dst][0] if v < 0 else info[dst][1]
            lo, hi = info[dst]
            out.append(min(max(iv, lo), hi))
        elif dst == "f32":
            out.append(float(np.float32(v)))
        else:
            bits = {"u8": 8, "s8": 8, "u16": 16, "s16": 16, "u32": 32, "s32": 32, "u64": 64,
                    "s64": 64}[dst]
            iv = int(v) % (1 << bits)
            if dst.startswith("s") and iv >> (bits - 1):
                iv -= 1 << bits
            out.append(iv)
    return out


CVT_CASES = [("s32", "f32", None), ("u32", "f32", None), ("s32", "f32", "rni"),
             ("s32", "f32", "rmi"), ("s32", "f32", "rpi"), ("u8", "f32", None),
             ("s16", "f32", "rni"), ("s64", "f32", None), ("u64", "f32", "rpi"),
             ("f32", "s32", None), ("f32", "u32", None), ("f32", "u64", None),
             ("f32", "s64", None), ("u64", "u32", None), ("s64", "s32", None),
             ("u32", "u64", None), ("s32", "s64", None), ("u8", "u32", None),
             ("s8", "u32", None), ("s16", "s32", None), ("u16", "s32", None),
             ("s32", "u32", None), ("f16", "f32", None)]


@pytest.mark.parametrize("dst, src, rnd", CVT_CASES)
def test_cvt(forms, dst, src, rnd):
    wide_src, wide_dst = src in ("u64", "s64"), dst in ("u64", "s64")
    itype = src if src in NP else "u32"
    otype = {"u8": "u32", "u16": "u32", "s8": "s32", "s16": "s32", "f16": "u32"}.get(dst, dst)
    op = f"cvt{'.' + rnd if rnd else ''}.{dst}.{src} {{D}}, {{A}}"

    def ref(a, b, c):
        vals = cvt_ref(a, dst, src, rnd)
        if dst == "f16":
            return np.array(vals, dtype=np.float16).view(np.uint16).astype(U32)
        if dst in ("u8", "u16", "s8", "s16"):
            return np.array(vals, dtype=np.int64).astype(NP[otype])
        return np.array(vals, dtype=object).astype(NP[otype]) if not dst.startswith("f") \
            else np.array(vals, dtype=F32)
    if wide_src or wide_dst:
        pass
    got, expect = run_elementwise(op, itype, otype, ref, "divergent")
    assert same_bits(got, expect), (op, got[:16], expect[:16])


def test_cvt_f16_round_trip_through_memory(forms):
    n = 64
    vals = np.array([0.0, 1.0, -2.5, 65504.0, 1e-4, 3.14159, np.inf, 70000.0] * 8, dtype=F32)
    src = """
.entry k
.param ptr x
.param ptr h
.param ptr y
        s2r r0, %tid.x
        mul.wide.u32 r2, r0, 4
        mul.wide.u32 r4, r0, 2
        ld.param.u64 r6, [x]
        add.u64 r6, r6, r2
        ld.global.f32 r8, [r6]
        ld.param.u64 r6, [h]
        add.u64 r6, r6, r4
        st.global.f16 [r6], r8
        ld.global.f16 r9, [r6]
        ld.param.u64 r6, [y]
        add.u64 r6, r6, r2
        st.global.f32 [r6], r9
        exit
"""
    mem = FlatMemory(1 << 16)
    px, ph, py = upload(mem, vals), mem.alloc(2 * n), mem.alloc(4 * n)
    launch(program(src), 0, (1, 1, 1), (n, 1, 1), struct.pack("<QQQ", px, ph, py), mem)
    with np.errstate(over="ignore"):                 # 70000 rounds to inf in f16, as intended
        halves = vals.astype(np.float16)
    assert np.array_equal(mem.view(ph, n, np.float16), halves)
    assert np.array_equal(mem.view(py, n, F32), halves.astype(F32))


# ============================================================================ special registers

def test_special_registers_3d(forms, small_chunks):
    grid, block = (3, 2, 2), (4, 3, 2)
    src = """
.entry k
.param ptr out
        s2r r0, %tid.x
        s2r r1, %tid.y
        s2r r2, %tid.z
        s2r r3, %ntid.x
        s2r r4, %ntid.y
        s2r r5, %ntid.z
        s2r r6, %ctaid.x
        s2r r7, %ctaid.y
        s2r r8, %ctaid.z
        s2r r9, %nctaid.x
        s2r r10, %nctaid.y
        s2r r11, %nctaid.z
        s2r r12, %laneid
        s2r r13, %warpid
        // linear global thread id, 16 words per thread
        mad.lo.u32 r20, r8, r10, r7
        mad.lo.u32 r20, r20, r9, r6        // block id
        mad.lo.u32 r21, r2, r4, r1
        mad.lo.u32 r21, r21, r3, r0        // thread id in block
        mul.lo.u32 r22, r3, r4
        mul.lo.u32 r22, r22, r5            // threads per block
        mad.lo.u32 r20, r20, r22, r21
        mul.wide.u32 r24, r20, 64
        ld.param.u64 r26, [out]
        add.u64 r24, r26, r24
        st.global.u32 [r24], r0
        st.global.u32 [r24+4], r1
        st.global.u32 [r24+8], r2
        st.global.u32 [r24+12], r3
        st.global.u32 [r24+16], r4
        st.global.u32 [r24+20], r5
        st.global.u32 [r24+24], r6
        st.global.u32 [r24+28], r7
        st.global.u32 [r24+32], r8
        st.global.u32 [r24+36], r9
        st.global.u32 [r24+40], r10
        st.global.u32 [r24+44], r11
        st.global.u32 [r24+48], r12
        st.global.u32 [r24+52], r13
        exit
"""
    mem = FlatMemory(1 << 16)
    total = 3 * 2 * 2 * 4 * 3 * 2
    out = mem.alloc(64 * total)
    launch(program(src), 0, grid, block, struct.pack("<Q", out), mem)
    got = mem.view(out, 16 * total, U32).reshape(total, 16)
    rows = []
    for cz in range(2):
        for cy in range(2):
            for cx in range(3):
                for tz in range(2):
                    for ty in range(3):
                        for tx in range(4):
                            t = (tz * 3 + ty) * 4 + tx
                            rows.append([tx, ty, tz, 4, 3, 2, cx, cy, cz, 3, 2, 2, t % 32, t // 32])
    assert np.array_equal(got[:, :14], np.array(rows, dtype=U32))


# ============================================================================ divergence

def test_if_else_and_per_thread_loops(forms, small_chunks):
    src = """
.entry k
.param ptr out
        s2r r0, %tid.x
        s2r r1, %ctaid.x
        s2r r2, %ntid.x
        mad.lo.u32 r0, r1, r2, r0        // i
        and.b32 r3, r0, 3
        setp.eq.u32 p0, r3, 0
  @p0   bra zero_mod_4
        setp.eq.u32 p1, r3, 1
  @p1   bra one_mod_4
        mov.u32 r4, 300                  // 2, 3 mod 4
        bra joined
zero_mod_4:
        mov.u32 r4, 100
        bra joined
one_mod_4:
        mov.u32 r4, 200
joined: rem.u32 r5, r0, 7                // a loop of i % 7 iterations
        mov.u32 r6, 0
loop:   setp.eq.u32 p2, r5, 0
  @p2   bra done
        add.u32 r6, r6, r0
        sub.u32 r5, r5, 1
        bra loop
done:   add.u32 r4, r4, r6
        mul.wide.u32 r8, r0, 4
        ld.param.u64 r10, [out]
        add.u64 r8, r10, r8
        st.global.u32 [r8], r4
        exit
"""
    n = 500
    mem = FlatMemory(1 << 16)
    out = mem.alloc(4 * n)
    stats = launch(program(src), 0, (5, 1, 1), (100, 1, 1), struct.pack("<Q", out), mem)
    i = np.arange(n)
    expect = np.choose(i % 4, [100, 200, 300, 300]) + (i % 7) * i
    assert np.array_equal(mem.view(out, n, U32), expect.astype(U32))
    # Diverged paths issue fewer thread-instructions than if every thread ran every path.
    assert stats.thread_instructions < n * 60


def test_exit_inside_divergent_code_and_barrier_after_it(forms):
    """Threads that exit do not hold up bar.sync for the others."""
    src = """
.entry k
.param ptr out
.shared 256
        s2r r0, %tid.x
        and.b32 r1, r0, 1
        setp.eq.u32 p0, r1, 1
  @p0   bra odd
        shl.b32 r2, r0, 2
        st.shared.u32 [r2], r0           // even threads write their slot
        bra sync
odd:    setp.gt.u32 p1, r0, 40
  @p1   exit                             // odd threads above 40 leave
sync:   bar.sync
        xor.b32 r3, r0, 1                // read the neighbour's slot
        shl.b32 r3, r3, 2
        ld.shared.u32 r4, [r3]
        mul.wide.u32 r6, r0, 4
        ld.param.u64 r8, [out]
        add.u64 r6, r8, r6
        st.global.u32 [r6], r4
        exit
"""
    mem = FlatMemory(1 << 16)
    out = mem.alloc(256)
    launch(program(src), 0, (1, 1, 1), (64, 1, 1), struct.pack("<Q", out), mem)
    got = mem.view(out, 64, U32)
    t = np.arange(64)
    even_expect = np.zeros(64, U32)            # even threads read odd slots: never written
    odd_expect = t - 1                          # odd threads read their even neighbour
    alive = (t % 2 == 0) | (t <= 40)
    assert np.array_equal(got[alive & (t % 2 == 1)], odd_expect[alive & (t % 2 == 1)])
    assert np.array_equal(got[t % 2 == 0], even_expect[t % 2 == 0])
    assert (got[~alive] == 0).all()


def test_shared_reverse_with_barrier(forms, small_chunks):
    src = """
.entry reverse
.param ptr data
        s2r r0, %tid.x
        s2r r1, %ctaid.x
        s2r r2, %ntid.x
        mad.lo.u32 r3, r1, r2, r0
        mul.wide.u32 r4, r3, 4
        ld.param.u64 r6, [data]
        add.u64 r6, r6, r4
        ld.global.u32 r8, [r6]
        shl.b32 r9, r0, 2
        st.shared.u32 [r9], r8
        bar.sync
        sub.u32 r10, r2, r0
        sub.u32 r10, r10, 1
        shl.b32 r10, r10, 2
        ld.shared.u32 r11, [r10]
        st.global.u32 [r6], r11
        exit
"""
    src = src.replace(".param ptr data", ".param ptr data\n.shared 64")
    mem = FlatMemory(1 << 16)
    data = np.arange(160, dtype=U32)
    p = upload(mem, data)
    launch(program(src), 0, (10, 1, 1), (16, 1, 1), struct.pack("<Q", p), mem)
    assert np.array_equal(mem.view(p, 160, U32), data.reshape(10, 16)[:, ::-1].ravel())


def test_dynamic_shared_memory(forms):
    src = """
.entry k
.param ptr out
        s2r r0, %tid.x
        shl.b32 r1, r0, 2
        st.shared.u32 [r1], r0
        bar.sync
        ld.shared.u32 r2, [4092]        // the last word of 4 KiB of dynamic shared memory
        mul.wide.u32 r4, r0, 4
        ld.param.u64 r6, [out]
        add.u64 r4, r6, r4
        st.global.u32 [r4], r2
        exit
"""
    mem = FlatMemory(1 << 16)
    out = mem.alloc(4 * 1024)
    launch(program(src), 0, (1, 1, 1), (1024, 1, 1), struct.pack("<Q", out), mem,
           dynamic_shared=4096)
    assert (mem.view(out, 1024, U32) == 1023).all()
    with pytest.raises(DeviceFault) as info:
        launch(program(src), 0, (1, 1, 1), (1024, 1, 1), struct.pack("<Q", out), mem,
               dynamic_shared=4092)
    assert info.value.kind == "mmu" and info.value.address == 4092


# ============================================================================ issue-6 kernels

def test_reduction_with_shared_memory_and_barriers(forms):
    n = 10_000
    mem = FlatMemory(1 << 20)
    x = np.random.default_rng(3).random(n, dtype=F32)
    px, out = upload(mem, x), mem.alloc(4)
    launch(kernel("reduce"), 0, (-(-n // 256), 1, 1), (256, 1, 1), struct.pack("<QQI", px, out, n),
           mem)
    assert math.isclose(float(mem.view(out, 1, F32)[0]), float(x.sum(dtype=np.float64)),
                        rel_tol=1e-5)


@pytest.mark.parametrize("m, n, k", [(16, 16, 16), (37, 29, 41), (1, 50, 3)])
def test_tiled_matmul(forms, m, n, k):
    rng = np.random.default_rng(m * n * k)
    a, b = rng.random((m, k), dtype=F32), rng.random((k, n), dtype=F32)
    mem = FlatMemory(1 << 20)
    pa, pb, pc = upload(mem, a), upload(mem, b), mem.alloc(4 * m * n)
    launch(kernel("matmul"), 0, (-(-n // 16), -(-m // 16), 1), (16, 16, 1),
           struct.pack("<QQQIII", pa, pb, pc, m, n, k), mem)
    assert np.allclose(mem.view(pc, m * n, F32).reshape(m, n), a @ b, rtol=1e-5)


def test_histogram_with_atomics(forms):
    n = 50_000
    data = np.random.default_rng(5).integers(0, 256, n, dtype=np.uint8)
    data[:5000] = 42                                      # a hot bin: heavy contention
    mem = FlatMemory(1 << 20)
    pd, bins = upload(mem, data), mem.alloc(1024)
    launch(kernel("histogram"), 0, (6, 1, 1), (256, 1, 1), struct.pack("<QIxxxxQ", pd, n, bins),
           mem)
    assert np.array_equal(mem.view(bins, 256, U32), np.bincount(data, minlength=256))


@pytest.mark.parametrize("block", [1, 32, 100, 512, 1024])
def test_prefix_sum(forms, block):
    n = 3000
    v = np.random.default_rng(block).integers(0, 1000, n).astype(U32)
    mem = FlatMemory(1 << 20)
    pi, po = upload(mem, v), mem.alloc(4 * n)
    launch(kernel("scan"), 0, (-(-n // block), 1, 1), (block, 1, 1), struct.pack("<QQI", pi, po, n),
           mem)
    expect = np.concatenate([np.cumsum(v[i:i + block]) for i in range(0, n, block)])
    assert np.array_equal(mem.view(po, n, U32), expect.astype(U32))


def test_printf_in_thread_order(forms):
    lines = []
    launch(kernel("hello"), 0, (2, 1, 1), (3, 1, 1), struct.pack("<I", 7), FlatMemory(4096),
           printf=lines.append)
    assert lines == [b"block 0 thread 0: n=7\n", b"block 0 thread 1: n=7\n",
                     b"block 0 thread 2: n=7\n", b"block 1 thread 0: n=7\n",
                     b"block 1 thread 1: n=7\n", b"block 1 thread 2: n=7\n",
                     b"block 0 half=0.00\n", b"block 1 half=0.50\n"]
    # Without a callback printf is a no-op.
    launch(kernel("hello"), 0, (2, 1, 1), (3, 1, 1), struct.pack("<I", 7), FlatMemory(4096))


def test_printf_conversions(forms):
    src = r"""
.entry k
        s2r r0, %tid.x
        mov.u32 r1, -1
        mov.f32 r2, -1.25
        mov.u64 r4, -2
        mov.u32 r6, 65
        printf "%d|%u|%x|%08X|%5.1f|%e\n", r1, r1, r0, r1, r2, r2
        printf "%lld|%llu|%c|%%|%-3d|\n", r4, r4, r6, r0
        printf "%llx %hd %hhu %p %#o\n", r4, r1, r1, r4, r6
        exit
"""
    lines = []
    launch(program(src), 0, (1, 1, 1), (2, 1, 1), b"", FlatMemory(4096), printf=lines.append)
    assert lines == [
        b"-1|4294967295|0|FFFFFFFF| -1.2|-1.250000e+00\n",
        b"-1|4294967295|1|FFFFFFFF| -1.2|-1.250000e+00\n",
        b"-2|18446744073709551614|A|%|0  |\n",
        b"-2|18446744073709551614|A|%|1  |\n",
        b"fffffffffffffffe -1 255 0xfffffffffffffffe 0101\n",
        b"fffffffffffffffe -1 255 0xfffffffffffffffe 0101\n",
    ]


# ============================================================================ atomics

ATOM_REF = {
    "add": lambda old, b, c, f: (old + b) if f else (old + b) & 0xFFFFFFFF,
    "min": lambda old, b, c, f: min(old, b), "max": lambda old, b, c, f: max(old, b),
    "exch": lambda old, b, c, f: b, "cas": lambda old, b, c, f: c if old == b else old,
    "and": lambda old, b, c, f: old & b, "or": lambda old, b, c, f: old | b,
    "xor": lambda old, b, c, f: old ^ b,
}


def atom_kernel(space: str, op: str, t: str) -> str:
    cas = ", r13" if op == "cas" else ""
    load_c = """        ld.param.u64 r16, [cs]
        add.u64 r16, r16, r4
        ld.global.u32 r13, [r16]
""" if op == "cas" else ""
    if space == "global":
        addr = """        ld.param.u64 r18, [mem]
        mul.wide.u32 r20, r10, 4
        add.u64 r18, r18, r20
        atom.global.{op}.{t} r14, [r18], r12{cas}
""".format(op=op, t=t, cas=cas)
        dump = ""
    else:
        addr = """        shl.b32 r20, r10, 2
        atom.shared.{op}.{t} r14, [r20], r12{cas}
        bar.sync
        setp.ge.u32 p1, r0, 16
  @p1   bra skip
        shl.b32 r20, r0, 2
        ld.shared.u32 r21, [r20]
        ld.param.u64 r18, [mem]
        mad.lo.u32 r22, r1, 16, r0
        mul.wide.u32 r24, r22, 4
        add.u64 r18, r18, r24
        st.global.u32 [r18], r21
skip:   nop
""".format(op=op, t=t, cas=cas)
        dump = ""
    return f"""
.entry k
.param ptr idx
.param ptr bs
.param ptr cs
.param ptr mem
.param ptr olds
.shared 64
        s2r r0, %tid.x
        s2r r1, %ctaid.x
        s2r r2, %ntid.x
        mad.lo.u32 r3, r1, r2, r0
        mul.wide.u32 r4, r3, 4
        ld.param.u64 r6, [idx]
        add.u64 r6, r6, r4
        ld.global.u32 r10, [r6]
        ld.param.u64 r8, [bs]
        add.u64 r8, r8, r4
        ld.global.u32 r12, [r8]
{load_c}{addr}{dump}        ld.param.u64 r6, [olds]
        add.u64 r6, r6, r4
        st.global.u32 [r6], r14
        exit
"""


def atom_reference(op, t, idx, b, c, init, blocks_of):
    """Sequential execution in thread order; memory per segment (one per block for shared)."""
    f = t == "f32"
    conv = {"u32": lambda v: int(v), "s32": lambda v: int(np.uint32(v).view(I32)),
            "f32": lambda v: float(np.uint32(v).view(F32))}[t]
    back = {"u32": lambda v: int(v) & 0xFFFFFFFF, "s32": lambda v: int(v) & 0xFFFFFFFF,
            "f32": lambda v: int(np.array(v, F32).view(U32))}[t]
    mems = {}
    olds = []
    for i in range(len(idx)):
        seg = blocks_of(i)
        mem = mems.setdefault(seg, list(init))
        old = mem[idx[i]]
        olds.append(old)
        new = ATOM_REF[op](conv(old), conv(b[i]), conv(c[i]), f)
        if f:
            new = float(np.float32(new))
        mem[idx[i]] = back(new)
    return olds, mems


@pytest.mark.parametrize("space", ["global", "shared"])
@pytest.mark.parametrize("op, t", [("add", "u32"), ("add", "s32"), ("add", "f32"), ("min", "u32"),
                                   ("min", "s32"), ("max", "u32"), ("max", "s32"),
                                   ("exch", "u32"), ("cas", "u32"), ("and", "u32"),
                                   ("or", "u32"), ("xor", "u32")])
def test_atomics_match_a_sequential_reference(forms, space, op, t):
    rng = np.random.default_rng(hash((space, op, t)) % 1000)
    n, block = 256, 64
    idx = rng.integers(0, 8, n).astype(U32)                  # heavy collisions
    if t == "f32":
        b = rng.integers(-8, 8, n).astype(F32).view(U32)     # exact sums: order-independent
    elif op == "cas":
        b = rng.integers(0, 3, n).astype(U32)
    else:
        b = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(U32)
        b[::3] = rng.integers(0, 4, len(b[::3]))
    c = rng.integers(0, 3, n).astype(U32)
    mem = FlatMemory(1 << 20)
    pidx, pb, pc = upload(mem, idx), upload(mem, b), upload(mem, c)
    pmem = mem.alloc(4 * 16 * (n // block))
    polds = mem.alloc(4 * n)
    launch(program(atom_kernel(space, op, t)), 0, (n // block, 1, 1), (block, 1, 1),
           struct.pack("<QQQQQ", pidx, pb, pc, pmem, polds), mem)
    if space == "global":
        olds, mems = atom_reference(op, t, idx, b, c, [0] * 16, lambda i: 0)
        final = mems[0][:16]
    else:
        olds, mems = atom_reference(op, t, idx, b, c, [0] * 16, lambda i: i // block)
        final = sum((mems[k][:16] for k in range(n // block)), [])
    assert mem.view(polds, n, U32).tolist() == olds
    assert mem.view(pmem, len(final), U32).tolist() == final


def test_atomic_add_f32_contention_is_deterministic(forms):
    src = """
.entry k
.param ptr acc
.param ptr olds
        s2r r0, %tid.x
        cvt.f32.u32 r1, r0
        mul.f32 r1, r1, 0.1
        ld.param.u64 r2, [acc]
        atom.global.add.f32 r4, [r2], r1
        mul.wide.u32 r6, r0, 4
        ld.param.u64 r8, [olds]
        add.u64 r6, r8, r6
        st.global.f32 [r6], r4
        exit
"""
    mem = FlatMemory(1 << 16)
    acc, olds = mem.alloc(4), mem.alloc(4 * 1000)
    launch(program(src), 0, (1, 1, 1), (1000, 1, 1), struct.pack("<QQ", acc, olds), mem)
    vals = np.arange(1000, dtype=F32) * F32(0.1)
    assert math.isclose(float(mem.view(acc, 1, F32)[0]), float(vals.astype(np.float64).sum()),
                        rel_tol=1e-6)
    old = mem.view(olds, 1000, F32)
    assert old[0] == 0 and np.all(np.diff(old.astype(np.float64)) >= 0)


def test_store_to_one_address_last_thread_wins(forms):
    src = """
.entry k
.param ptr p
        s2r r0, %tid.x
        ld.param.u64 r2, [p]
        st.global.u32 [r2], r0
        exit
"""
    mem = FlatMemory(4096)
    p = mem.alloc(4)
    launch(program(src), 0, (1, 1, 1), (77, 1, 1), struct.pack("<Q", p), mem)
    assert mem.view(p, 1, U32)[0] == 76


# ============================================================================ memory patterns

PATTERN_SRC = """
.entry k
.param ptr src
.param ptr dst
        s2r r0, %tid.x
        s2r r1, %tid.y
        s2r r2, %ctaid.x
        s2r r3, %ctaid.y
        s2r r4, %ntid.x
        s2r r5, %ntid.y
        s2r r6, %nctaid.x
        {index}                         // r10: element index, 0 <= r10 < 4096
        mul.wide.u32 r12, r10, {size}
        ld.param.u64 r14, [src]
        add.u64 r14, r14, r12
        ld.global.{t} r16, [r14{off}]
        mad.lo.u32 r20, r1, r4, r0
        mad.lo.u32 r21, r3, r6, r2
        mul.lo.u32 r22, r4, r5
        mad.lo.u32 r20, r21, r22, r20   // linear thread id
        mul.wide.u32 r24, r20, 8
        ld.param.u64 r26, [dst]
        add.u64 r24, r26, r24
        st.global.{t} [r24], r16
        exit
"""

INDEX = {
    "linear": "mad.lo.u32 r10, r2, r4, r0",                 # contiguous in x only
    "tid": "mov.u32 r10, r0",                                # repeats per block
    "uniform": "mov.u32 r10, r3",                            # one address per block row
    "strided": "mul.lo.u32 r10, r0, 3",
    "2d": "mad.lo.u32 r10, r1, r4, r0\n        mad.lo.u32 r11, r3, r6, r2\n"
          "        mul.lo.u32 r11, r11, r4\n        mul.lo.u32 r11, r11, r5\n"
          "        add.u32 r10, r10, r11",
    "reversed": "sub.u32 r10, 200, r0".replace("sub.u32 r10, 200, r0",
                                                "mov.u32 r10, 200\n        sub.u32 r10, r10, r0"),
}


@pytest.mark.parametrize("pattern", list(INDEX))
@pytest.mark.parametrize("t, size, off", [("u32", 4, ""), ("u64", 8, "+8"), ("u8", 1, "-1"),
                                          ("f16", 2, "")])
@pytest.mark.parametrize("grid, block", [((3, 2, 1), (8, 4, 1)), ((5, 1, 1), (24, 1, 1))])
def test_access_patterns_agree_with_and_without_forms(monkeypatch, pattern, t, size, off, grid,
                                                      block):
    src = PATTERN_SRC.format(index=INDEX[pattern], size=size, t=t, off=off)
    results = []
    for forms_on, chunk in ((True, 1 << 16), (True, 40), (False, 1 << 16), (False, 40)):
        monkeypatch.setattr(chunk_mod, "USE_FORMS", forms_on)
        monkeypatch.setattr(executor, "CHUNK_THREADS", chunk)
        mem = FlatMemory(1 << 20)
        data = np.random.default_rng(1).integers(0, 256, 8 * 4200, dtype=np.uint8)
        p = upload(mem, data) + 8
        dst = mem.alloc(8 * 1024)
        launch(program(src), 0, grid, block, struct.pack("<QQ", p, dst), mem)
        results.append(mem.view(dst, 1024, U64).copy())
    for r in results[1:]:
        assert np.array_equal(r, results[0])


# ============================================================================ forms vs arrays

_REGS32 = [f"r{i}" for i in range(0, 16)]
_PAIRS = [f"r{i}" for i in range(16, 32, 2)]
_SREG = ["%tid.x", "%tid.y", "%tid.z", "%ctaid.x", "%ctaid.y", "%ctaid.z", "%ntid.x",
         "%nctaid.y", "%laneid"]


@st.composite
def alu_programs(draw):
    """Random straight-line integer programs over r0..r15 and the pairs r16..r30."""
    lines = [f"s2r {r}, {draw(st.sampled_from(_SREG))}" for r in _REGS32[:4]]
    lines += [f"ld.param.u32 {_REGS32[4]}, [x]", f"ld.param.u64 {_PAIRS[0]}, [y]"]
    r32 = st.sampled_from(_REGS32)
    r64 = st.sampled_from(_PAIRS)
    imm = st.one_of(st.integers(-40, 40), st.integers(-(1 << 31), (1 << 32) - 1))
    small = st.integers(-(1 << 31), (1 << 31) - 1)
    for _ in range(draw(st.integers(1, 25))):
        k = draw(st.integers(0, 16))
        d, a, b, c = draw(r32), draw(r32), draw(r32), draw(r32)
        t = draw(st.sampled_from(["u32", "s32"]))
        if k == 0:
            lines.append(f"add.{t} {d}, {a}, {draw(st.one_of(r32, imm.map(str)))}")
        elif k == 1:
            lines.append(f"sub.{t} {d}, {a}, {b}")
        elif k == 2:
            lines.append(f"mul.lo.{t} {d}, {a}, {draw(st.one_of(r32, imm.map(str)))}")
        elif k == 3:
            lines.append(f"mad.lo.{t} {d}, {a}, {draw(st.one_of(r32, imm.map(str)))}, {c}")
        elif k == 4:
            lines.append(f"shl.b32 {d}, {a}, {draw(st.integers(0, 40))}")
        elif k == 5:
            lines.append(f"mul.wide.{t} {draw(r64)}, {a}, {draw(st.one_of(r32, imm.map(str)))}")
        elif k == 6:
            lines.append(f"add.u64 {draw(r64)}, {draw(r64)}, "
                         f"{draw(st.one_of(r64, small.map(str)))}")
        elif k == 7:
            lines.append(f"cvt.{draw(st.sampled_from(['u64.u32', 's64.s32']))} {draw(r64)}, {a}")
        elif k == 8:
            lines.append(f"cvt.u32.u64 {d}, {draw(r64)}")
        elif k == 9:
            cmp = draw(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]))
            lines.append(f"setp.{cmp}.{t} p1, {a}, {draw(st.one_of(r32, imm.map(str)))}")
            lines.append(f"selp.u32 {d}, {b}, {c}, p1")
        elif k == 10:
            lines.append(f"mov.u32 {d}, {draw(imm)}")
        elif k == 11:
            lines.append(f"neg.s32 {d}, {a}")
        elif k == 12:
            lines.append(f"mov.u64 {draw(r64)}, {draw(r64)}")
        elif k == 13:
            lines.append(f"sub.u64 {draw(r64)}, {draw(r64)}, {draw(r64)}")
        elif k == 14:
            lines.append(f"mov.u32 {d}, {a}")
        elif k == 15:
            cmp = draw(st.sampled_from(["lt", "ge", "eq"]))
            lines.append(f"setp.{cmp}.u64 p2, {draw(r64)}, {draw(r64)}")
            lines.append(f"@p2 add.u32 {d}, {a}, 1")
        else:
            lines.append(f"shl.b64 {draw(r64)}, {draw(r64)}, {draw(st.integers(0, 70))}")
    return lines


def run_alu_program(lines, grid, block, params):
    stores = []
    for i, r in enumerate(_REGS32):
        stores.append(f"st.global.u32 [r32+{4 * i}], {r}")
    for i, r in enumerate(_PAIRS):
        stores.append(f"st.global.u64 [r32+{64 + 8 * i}], {r}")
    src = "\n".join([".entry k", ".param u32 x", ".param u64 y", ".param ptr out", ".regs 40"]
                    + lines + [
                        "s2r r34, %tid.x", "s2r r35, %tid.y", "s2r r36, %ntid.x",
                        "mad.lo.u32 r34, r35, r36, r34", "s2r r35, %ctaid.x",
                        "s2r r36, %ctaid.y", "s2r r37, %nctaid.x", "mad.lo.u32 r35, r36, r37, r35",
                        "s2r r36, %ntid.y", "s2r r37, %ntid.x", "mul.lo.u32 r36, r36, r37",
                        "mad.lo.u32 r34, r35, r36, r34", "mul.wide.u32 r32, r34, 128",
                        "ld.param.u64 r38, [out]", "add.u64 r32, r38, r32"] + stores + ["exit"])
    prog = program(src)
    nthreads = math.prod(grid) * math.prod(block)
    mem = FlatMemory(128 * nthreads + 8192)
    out = mem.alloc(128 * nthreads)
    launch(prog, 0, grid, block, params + struct.pack("<Q", out), mem)
    return mem.view(out, 32 * nthreads, U32).copy()


@settings(max_examples=int(60 * STRESS), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(alu_programs(), st.tuples(st.integers(1, 4), st.integers(1, 3), st.just(1)),
       st.tuples(st.integers(1, 9), st.integers(1, 3), st.just(1)),
       st.integers(0, (1 << 32) - 1), st.integers(0, (1 << 64) - 1), st.integers(1, 50))
def test_forms_and_arrays_agree_on_random_programs(lines, grid, block, x, y, chunk):
    params = struct.pack("<IxxxxQ", x, y)
    results = []
    saved = chunk_mod.USE_FORMS, executor.CHUNK_THREADS
    try:
        for forms_on, ct in ((False, 1 << 16), (True, 1 << 16), (True, chunk)):
            chunk_mod.USE_FORMS, executor.CHUNK_THREADS = forms_on, ct
            results.append(run_alu_program(lines, grid, block, params))
    finally:
        chunk_mod.USE_FORMS, executor.CHUNK_THREADS = saved
    assert np.array_equal(results[0], results[1]), "\n".join(lines)
    assert np.array_equal(results[0], results[2]), "\n".join(lines)


# ============================================================================ faults

def fault_of(src_or_prog, *, grid=(1, 1, 1), block=(32, 1, 1), params=b"", mem=None, **kw):
    prog = program(src_or_prog) if isinstance(src_or_prog, str) else src_or_prog
    with pytest.raises(DeviceFault) as info:
        launch(prog, 0, grid, block, params, mem or FlatMemory(1 << 16), **kw)
    return info.value


def test_mmu_fault_on_unmapped_load():
    f = fault_of(".entry k\nnop\nld.global.u32 r0, [rz+64]\nexit\n")
    assert (f.kind, f.pc, f.address) == ("mmu", 1, 64)
    assert isinstance(f, MemoryFault)


def test_mmu_fault_names_the_first_thread_past_the_end(forms):
    mem = FlatMemory(1 << 16)
    n = 2000                         # the buffers hold 1024 floats (4 KiB)
    pa, pb, pc = mem.alloc(4096), mem.alloc(4096), mem.alloc(4096)
    f = fault_of(kernel("vecadd"), grid=(8, 1, 1), block=(256, 1, 1), mem=mem,
                 params=struct.pack("<QQQI", pa, pb, pc, n))
    assert f.kind == "mmu" and f.address == pa + 4096 and f.pc == 10


def test_misaligned_faults(forms):
    f = fault_of(".entry k\n.param ptr p\nld.param.u64 r2, [p]\nld.global.u32 r0, [r2+2]\nexit\n",
                 params=struct.pack("<Q", 0x1_0000_0000))
    assert (f.kind, f.pc, f.address) == ("misaligned", 1, 0x1_0000_0002)
    f = fault_of(".entry k\n.shared 64\nst.shared.u64 [12], rz\nexit\n")
    assert (f.kind, f.address) == ("misaligned", 12)


def test_shared_out_of_bounds():
    f = fault_of(".entry k\n.shared 64\ns2r r0, %tid.x\nshl.b32 r0, r0, 2\n"
                 "st.shared.u32 [r0], r0\nexit\n", block=(32, 1, 1))
    assert (f.kind, f.pc, f.address) == ("mmu", 2, 64)
    f = fault_of(".entry k\nld.shared.u32 r0, [-4]\nexit\n")
    assert (f.kind, f.address) == ("mmu", 0xFFFFFFFC)


def raw_program(code: bytes, num_regs=8, num_preds=2, param_size=0, data=b"") -> Program:
    fn = Function("k", 0, len(code) // 16, num_regs, num_preds, 0, param_size, [])
    return Program.from_module(parse_module(build_module(Module([fn], code, data))))


@pytest.mark.parametrize("code, message", [
    (bytes([0xEE]) + bytes(15), "unknown opcode 0xee"),
    (encode_instruction(Opcode.ADD, dst=9, a=1, b=2), "register r9"),
    (encode_instruction(Opcode.ADD, type=DType.U64, dst=3, a=2, b=4), "not an even register"),
    (encode_instruction(Opcode.ADD, type=DType.F16, dst=1, a=2, b=3), "does not support type"),
    (encode_instruction(Opcode.BRA, imm=5), "outside the function"),
    (encode_instruction(Opcode.SETP, dst=5, a=1, b=2), "predicate p5"),
    (encode_instruction(Opcode.NOP, guard_pred=3), "predicate p3"),
    (encode_instruction(Opcode.S2R, dst=1, mod=99), "unknown special register"),
    (encode_instruction(Opcode.LDPARAM, dst=1, imm=0), "outside the 0-byte parameter block"),
    (encode_instruction(Opcode.ATOMG, mod=77, dst=1, a=2, b=3), "unknown atomic"),
    (encode_instruction(Opcode.PRINTF, imm=100), "not a NUL-terminated string"),
    (encode_instruction(Opcode.BAR, imm=1), "barrier 1"),
    (bytes([0, 0, 0, 0x80]) + bytes(12), "reserved bits"),
    (encode_instruction(Opcode.NOP), "ran past the end"),
])
def test_illegal_instructions(code, message):
    f = fault_of(raw_program(code))
    assert f.kind == "illegal_instruction" and message in f.message and f.pc in (0, 1)


def test_illegal_instruction_faults_only_when_reached():
    code = (encode_instruction(Opcode.EXIT) + bytes([0xEE]) + bytes(15))
    launch(raw_program(code), 0, (1, 1, 1), (4, 1, 1), b"", FlatMemory(4096))


def test_bad_printf_format_is_illegal():
    data = b"%s\0"
    f = fault_of(raw_program(encode_instruction(Opcode.PRINTF, mod=1, a=1, imm=0), data=data),
                 printf=print)
    assert f.kind == "illegal_instruction" and "printf format" in f.message


def test_timeout():
    deadline = time.monotonic() + 0.05
    f = fault_of(".entry k\nloop: add.u32 r0, r0, 1\nbra loop\n", deadline=deadline)
    assert f.kind == "timeout" and f.pc in (0, 1)
    # A divergent infinite loop times out too.
    src = (".entry k\ns2r r0, %tid.x\nsetp.eq.u32 p0, r0, 3\n@p0 bra spin\nexit\n"
           "spin: bra spin\n")
    f = fault_of(src, deadline=time.monotonic() + 0.05)
    assert f.kind == "timeout"
    # A deadline already in the past stops a launch before it starts.
    f = fault_of(kernel("empty"), deadline=time.monotonic() - 1)
    assert f.kind == "timeout"


@pytest.mark.parametrize("kw, message", [
    (dict(grid=(0, 1, 1)), "grid.x is 0"),
    (dict(block=(1, 0, 1)), "block.y is 0"),
    (dict(block=(1025, 1, 1)), "block.x is 1025"),
    (dict(block=(64, 32, 1)), "block of 2048 threads"),
    (dict(block=(1, 1, 65)), "block.z is 65"),
    (dict(grid=(1, 1 << 16, 1)), "grid.y"),
    (dict(grid=(1, 1)), "3 dimensions"),
    (dict(grid="abc"), "three integers"),
    (dict(params=b"\0" * 4), "4 bytes of parameters"),
    (dict(dynamic_shared=-1), "dynamic shared size"),
    (dict(dynamic_shared=48 * 1024 + 1), "limit is 49152"),
    (dict(function_index=3), "no function 3"),
    (dict(params=object()), "not a byte buffer"),
])
def test_bad_launch(kw, message):
    args = dict(grid=(1, 1, 1), block=(1, 1, 1), params=b"\0" * 28, function_index=0)
    args.update(kw)
    with pytest.raises(DeviceFault) as info:
        launch(kernel("vecadd"), args.pop("function_index"), args.pop("grid"), args.pop("block"),
               args.pop("params"), FlatMemory(4096), **args)
    assert info.value.kind == "bad_launch" and message in info.value.message


def test_fault_str_and_kinds():
    f = DeviceFault("mmu", "boom", pc=3, address=0x10)
    assert str(f) == "mmu: boom (pc=3, address=0x10)"
    with pytest.raises(ValueError):
        DeviceFault("oops", "bad kind")
    assert MemoryFault("x", address=1).kind == "mmu"
    assert MemoryFault("misaligned", "y").kind == "misaligned"


# ============================================================================ garbage programs

PLAUSIBLE_OPS = [op for op in Opcode if op not in (Opcode.PRINTF,)] + \
    [Opcode.ADD, Opcode.MAD, Opcode.SETP, Opcode.BRA, Opcode.LDG, Opcode.STG, Opcode.LDS,
     Opcode.STS, Opcode.ATOMG, Opcode.ATOMS, Opcode.S2R, Opcode.LDPARAM, Opcode.MULWIDE]


@st.composite
def garbage(draw):
    """Mostly plausible instructions (valid opcodes, small registers, sane types and guards,
    branch targets inside the function), with some raw random bytes mixed in, so that
    execution gets past the first instruction."""
    n = draw(st.integers(1, 24))
    raws = []
    for _ in range(n):
        if draw(st.integers(0, 9)) == 0:
            raws.append(draw(st.binary(min_size=16, max_size=16)))
            continue
        op = draw(st.sampled_from(PLAUSIBLE_OPS + [Opcode.PRINTF]))
        reg = st.one_of(st.integers(0, 15), st.integers(0, 15), st.just(255), st.integers(0, 70))
        imm = st.one_of(st.integers(0, n + 1), st.integers(0, 64), st.sampled_from([8, -8, 4096]),
                        st.integers(-(1 << 31), (1 << 32) - 1))
        wide = draw(st.integers(0, 3)) == 0
        if wide:
            reg = st.one_of(st.sampled_from([0, 2, 4, 6, 8, 10, 12, 14]), reg)
        raws.append(encode_instruction(
            op, type=draw(st.one_of(st.sampled_from([3, 4] if wide else [0, 1, 2]),
                                    st.integers(0, 10))),
            mod=draw(st.integers(0, 8)), b_imm=draw(st.booleans()),
            rnd=draw(st.sampled_from([0, 0, 0, 1, 2, 3, 4, 6])),
            dst=draw(reg), a=draw(reg), b=draw(reg), c=draw(st.one_of(st.integers(0, 7), reg)),
            guard_pred=draw(st.one_of(st.none(), st.none(), st.integers(0, 3), st.integers(0, 7))),
            guard_negate=draw(st.booleans()),
            x0=draw(reg) if op == Opcode.PRINTF else 0,
            imm=draw(imm)))
    return b"".join(raws)


@settings(max_examples=int(250 * STRESS), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(garbage(), st.one_of(st.integers(16, 64), st.integers(0, 64)),
       st.one_of(st.just(8), st.integers(0, 8)),
       st.integers(0, 256), st.sampled_from([(1, 1, 1), (2, 1, 1), (3, 2, 1)]),
       st.sampled_from([(1, 1, 1), (33, 1, 1), (4, 4, 2)]), st.booleans(), st.integers(0, 2))
def test_garbage_programs_raise_only_device_faults(code, num_regs, num_preds, shared, grid,
                                                   block, forms_on, npages):
    mem = FlatMemory(1 << 16)
    buf = mem.alloc(4096 * max(npages, 1))
    params = struct.pack("<QQI", buf, buf + 64, 5)      # pointers that ld.param can find
    fn = Function("g", 0, len(code) // 16, num_regs, num_preds, shared, len(params), [])
    module = parse_module(build_module(Module([fn], code, b"%d %x\0%lld\0\0")))
    prog = Program.from_module(module)
    saved = chunk_mod.USE_FORMS
    chunk_mod.USE_FORMS = forms_on
    try:
        launch(prog, 0, grid, block, params, mem, deadline=time.monotonic() + 0.2,
               dynamic_shared=64, printf=lambda b: None)
    except DeviceFault:
        pass
    finally:
        chunk_mod.USE_FORMS = saved


# ============================================================================ regressions

def test_a_store_does_not_change_a_register_loaded_from_the_same_memory(forms):
    """Contiguous loads give registers that view device memory; a later store must not
    change them (the executor copies them first)."""
    src = """
.entry k
.param ptr a
.param ptr b
        s2r r0, %tid.x
        mul.wide.u32 r2, r0, 4
        ld.param.u64 r4, [a]
        add.u64 r4, r4, r2
        ld.global.u32 r6, [r4]          // old a[i]
        mov.u32 r7, r6                  // a second register sharing the same array
        add.u32 r8, r6, 1000
        st.global.u32 [r4], r8          // a[i] += 1000
        ld.param.u64 r10, [b]
        add.u64 r10, r10, r2
        st.global.u32 [r10], r7         // b[i] = old a[i]
        exit
"""
    mem = FlatMemory(1 << 16)
    a = np.arange(256, dtype=U32)
    pa, pb = upload(mem, a), mem.alloc(1024)
    launch(program(src), 0, (1, 1, 1), (256, 1, 1), struct.pack("<QQ", pa, pb), mem)
    assert np.array_equal(mem.view(pa, 256, U32), a + 1000)
    assert np.array_equal(mem.view(pb, 256, U32), a)


def test_huge_modules_load_cheaply_and_compile_only_what_runs():
    """Loading decodes the code once; instructions compile when first reached, so many
    functions over the same large code (or garbage never executed) cost nothing."""
    code = encode_instruction(Opcode.EXIT) + bytes([0xEE]) * 16 * 100_000
    functions = [Function(f"f{i}", 0, 100_001, 8, 1, 0, 0, []) for i in range(200)]
    prog = Program.from_module(parse_module(build_module(Module(functions, code, b""))))
    for i in (0, 199):
        launch(prog, i, (1, 1, 1), (1, 1, 1), b"", FlatMemory(4096))
    steps, _ = prog.function_steps(0)
    assert sum(s is not None for s in steps) == 1


# ============================================================================ scheduler vs a scalar model

@st.composite
def control_programs(draw, depth=0, budget=None):
    """Random structured code on r0..r7: ALU ops, if / if-else, loops with per-thread trip
    counts, and early exits.  Returns assembler lines (labels made unique by a counter)."""
    budget = budget if budget is not None else [draw(st.integers(3, 14)), 0]
    lines = []
    for i in range(draw(st.integers(1, 4))):
        budget[1] += 1                               # a unique number for labels
        counter = budget[1]
        if budget[0] <= 0:
            break
        budget[0] -= 1
        kind = draw(st.integers(0, 9 if depth < 2 else 4))
        d, a, b = (f"r{draw(st.integers(0, 7))}" for _ in range(3))
        if kind <= 3:
            op = draw(st.sampled_from(["add.u32", "sub.u32", "mul.lo.u32", "xor.b32", "and.b32",
                                       "shr.u32", "shl.b32", "min.u32", "max.s32"]))
            src = draw(st.one_of(st.sampled_from([f"r{k}" for k in range(8)]),
                                 st.integers(0, 40).map(str)))
            lines.append(f"{op} {d}, {a}, {src}")
        elif kind == 4:
            lines.append(f"setp.eq.u32 p1, {a}, {draw(st.integers(0, 9))}")
            lines.append("@p1 exit")
        elif kind <= 7:
            tag = f"{depth}_{i}_{counter}"
            cmp = draw(st.sampled_from(["lt", "ge", "eq", "ne"]))
            lines.append(f"and.b32 r12, {a}, 7")
            lines.append(f"setp.{cmp}.u32 p0, r12, {draw(st.integers(0, 7))}")
            lines.append(f"@p0 bra else_{tag}")
            lines += draw(control_programs(depth + 1, budget))
            if kind == 7:
                lines.append(f"bra join_{tag}")
                lines.append(f"else_{tag}:")
                lines += draw(control_programs(depth + 1, budget))
                lines.append(f"join_{tag}:")
            else:
                lines.append(f"else_{tag}:")
            lines.append("nop")
        else:
            tag = f"{depth}_{i}_{counter}"
            cnt = f"r{13 + depth}"
            lines.append(f"and.b32 {cnt}, {a}, 3")              # 0..3 iterations per thread
            lines.append(f"top_{tag}:")
            lines.append(f"setp.eq.u32 p{2 + depth}, {cnt}, 0")
            lines.append(f"@p{2 + depth} bra out_{tag}")
            lines += draw(control_programs(depth + 1, budget))
            lines.append(f"sub.u32 {cnt}, {cnt}, 1")
            lines.append(f"bra top_{tag}")
            lines.append(f"out_{tag}:")
            lines.append("nop")
    return lines


def _signed(v: int) -> int:
    return v - (1 << 32) if v >> 31 else v


def scalar_model(module, tid, ctaid, ntid, out_words):
    """Run one thread of the (ALU + control flow) program instruction by instruction."""
    fields = {k: v.tolist() for k, v in decode_instructions(module.code).items()}
    regs = [0] * 64
    preds = [False] * 8
    pc = 0
    mask = 0xFFFFFFFF
    for _ in range(100_000):
        f = {k: v[pc] for k, v in fields.items()}
        op = f["opcode"]
        if f["guard_enabled"] and preds[f["guard_pred"]] == bool(f["guard_negate"]):
            pc += 1
            continue
        bval = f["imm"] if f["flags_b_imm"] else regs[f["b"]]
        a = regs[f["a"]]
        if op == Opcode.EXIT:
            return out_words
        if op == Opcode.BRA:
            pc = f["imm"]
            continue
        if op == Opcode.S2R:
            regs[f["dst"]] = {0: tid, 3: ntid, 6: ctaid}[f["mod"]]
        elif op == Opcode.MOV:
            regs[f["dst"]] = bval
        elif op in (Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.XOR, Opcode.AND, Opcode.SHL,
                    Opcode.SHR, Opcode.MIN, Opcode.MAX, Opcode.MAD):
            r = {Opcode.ADD: lambda: a + bval, Opcode.SUB: lambda: a - bval,
                 Opcode.MUL: lambda: a * bval, Opcode.XOR: lambda: a ^ bval,
                 Opcode.AND: lambda: a & bval,
                 Opcode.SHL: lambda: a << bval if bval < 32 else 0,
                 Opcode.SHR: lambda: a >> bval if bval < 32 else 0,
                 Opcode.MIN: lambda: min(a, bval),
                 Opcode.MAX: lambda: max(_signed(a), _signed(bval)),
                 Opcode.MAD: lambda: a * bval + regs[f["c"]]}[op]()
            regs[f["dst"]] = r & mask
        elif op == Opcode.SETP:
            preds[f["dst"]] = {0: a == bval, 1: a != bval, 2: a < bval, 5: a >= bval}[f["mod"]]
        elif op == Opcode.MULWIDE:
            pass                                # address arithmetic of the epilogue
        elif op == Opcode.STG:
            out_words.append(regs[f["b"]])
        elif op not in (Opcode.NOP, Opcode.LDPARAM):
            raise AssertionError(f"model lacks opcode {op}")
        pc += 1
    raise AssertionError("model ran too long")


@settings(max_examples=int(80 * STRESS), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(control_programs(), st.integers(1, 3), st.integers(1, 70), st.integers(0, 1 << 20))
def test_scheduler_matches_a_scalar_model(lines, nblocks, ntid, seed):
    prologue = ["s2r r8, %tid.x", "s2r r9, %ctaid.x", "s2r r10, %ntid.x",
                "mad.lo.u32 r11, r9, r10, r8"]
    for k in range(8):
        prologue += [f"mul.lo.u32 r{k}, r11, {2 * k + 3}", f"add.u32 r{k}, r{k}, {seed + k * 17}"]
    epilogue = ["mul.wide.u32 r20, r11, 32", "ld.param.u64 r22, [out]", "add.u64 r20, r22, r20"]
    epilogue += [f"st.global.u32 [r20+{4 * k}], r{k}" for k in range(8)] + ["exit"]
    src = "\n".join([".entry k", ".param ptr out", ".regs 24"] + prologue + lines + epilogue)
    module = parse_module(assemble(src))
    nthreads = nblocks * ntid
    mem = FlatMemory(1 << 16)
    out = mem.alloc(32 * nthreads)
    mem.view(out, 8 * nthreads, U32)[:] = 0xDEADBEEF
    launch(Program.from_module(module), 0, (nblocks, 1, 1), (ntid, 1, 1), struct.pack("<Q", out),
           mem, deadline=time.monotonic() + 30)
    got = mem.view(out, 8 * nthreads, U32).reshape(nthreads, 8)
    for t in range(nthreads):
        words = scalar_model(module, t % ntid, t // ntid, ntid, [])
        expect = words if words else [0xDEADBEEF] * 8
        assert got[t].tolist() == expect, (t, "\n".join(lines))
