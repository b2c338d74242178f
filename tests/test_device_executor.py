"""The executor's shared-memory fast path (issue 6 performance work): a shared
access whose address is a linear form in tid.x/.y/.z is a strided view or a small
gather per block instead of a per-thread gather.  Every case runs with the
symbolic paths on and off and must agree, including several threads storing to
one address (the last thread in thread order wins) and the exact fault."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pydriver.asm import assemble
from pydriver.sim import chunk as chunk_mod
from pydriver.sim import executor
from pydriver.sim.executor import Program, launch
from pydriver.sim.faults import DeviceFault
from pydriver.sim.flatmem import FlatMemory
from structs.module import parse_module

U32 = np.uint32

# Each thread stores tid_linear at shared word STORE(tx, ty, tz), waits, then loads
# word LOAD(tx, ty, tz) and writes it to out[tid_linear + ntid * ctaid].
TEMPLATE = """
.entry k
.param ptr out
.shared {shared}
        s2r r0, %tid.x
        s2r r1, %tid.y
        s2r r2, %tid.z
        s2r r3, %ntid.x
        s2r r4, %ntid.y
        mad.lo.u32 r5, r2, r4, r1
        mad.lo.u32 r5, r5, r3, r0          // tid_linear
        {store_addr}
        st.shared.u32 [r6+{store_off}], r5
        bar.sync
        {load_addr}
        ld.shared.u32 r8, [r7+{load_off}]
        s2r r9, %ctaid.x
        mul.lo.u32 r10, r3, r4
        s2r r11, %ntid.z
        mul.lo.u32 r10, r10, r11            // threads per block
        mad.lo.u32 r12, r9, r10, r5
        mul.wide.u32 r14, r12, 4
        ld.param.u64 r16, [out]
        add.u64 r14, r16, r14
        st.global.u32 [r14], r8
        exit
"""

CASES = {
    # name: (store address code, store offset, load address code, load offset)
    "rows": ("shl.b32 r6, r5, 2", 0, "shl.b32 r7, r1, 6", 0),             # As[ty][0]
    "cols": ("shl.b32 r6, r5, 2", 0, "shl.b32 r7, r0, 2", 64),            # Bs[1][tx]
    "same": ("shl.b32 r6, r5, 2", 0, "mov.u32 r7, 0", 12),                # broadcast
    "dup_store": ("shl.b32 r6, r0, 2", 0, "shl.b32 r7, r0, 2", 0),        # all of a column
    "one_store": ("mov.u32 r6, 0", 0, "mov.u32 r7, 0", 0),                # every thread, one word
    "mixed": ("shl.b32 r6, r5, 2", 0, "mad.lo.u32 r7, r1, 8, r0\n        shl.b32 r7, r7, 2", 4),
    "z": ("shl.b32 r6, r5, 2", 0, "mad.lo.u32 r7, r2, 12, r0\n        shl.b32 r7, r7, 2", 0),
}


def run(case: str, block, grid: int, forms: bool, monkeypatch, chunk: int | None = None):
    monkeypatch.setattr(chunk_mod, "USE_FORMS", forms)
    if chunk:
        monkeypatch.setattr(executor, "CHUNK_THREADS", chunk)
    sa, so, la, lo = CASES[case]
    src = TEMPLATE.format(shared=4096, store_addr=sa, store_off=so, load_addr=la, load_off=lo)
    prog = Program.from_module(parse_module(assemble(src)))
    threads = block[0] * block[1] * block[2]
    mem = FlatMemory(1 << 20)
    out = mem.alloc(4 * threads * grid)
    launch(prog, 0, (grid, 1, 1), block, struct.pack("<Q", out), mem)
    return mem.view(out, threads * grid, U32).copy()


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("block", [(16, 16, 1), (8, 4, 3), (32, 1, 1), (5, 3, 2)])
def test_shared_form_path_agrees_with_arrays(case, block, monkeypatch):
    want = run(case, block, 3, False, monkeypatch)
    got = run(case, block, 3, True, monkeypatch)
    assert np.array_equal(got, want), (case, block)
    got_small = run(case, block, 3, True, monkeypatch, chunk=block[0] * block[1] * block[2])
    assert np.array_equal(got_small, want), (case, block)


def test_last_thread_wins_a_shared_store(monkeypatch):
    got = run("one_store", (8, 4, 3), 2, True, monkeypatch)
    assert (got == 8 * 4 * 3 - 1).all()
    got = run("dup_store", (8, 4, 3), 1, True, monkeypatch)
    tx = np.arange(96) % 8
    assert np.array_equal(got, tx + 8 * 3 + 8 * 4 * 2)      # ty = 3, tz = 2 stored last


@pytest.mark.parametrize("forms", [True, False])
def test_shared_form_path_faults_at_the_same_address(forms, monkeypatch):
    monkeypatch.setattr(chunk_mod, "USE_FORMS", forms)
    src = """
.entry k
.shared 256
        s2r r0, %tid.x
        shl.b32 r1, r0, 3
        ld.shared.u32 r2, [r1+4]
        exit
"""
    prog = Program.from_module(parse_module(assemble(src)))
    with pytest.raises(DeviceFault) as e:
        launch(prog, 0, (1, 1, 1), (64, 1, 1), b"", FlatMemory(1 << 16))
    assert e.value.kind == "mmu" and e.value.address == 8 * 32 + 4
    src2 = src.replace("[r1+4]", "[r1+2]")
    with pytest.raises(DeviceFault) as e:
        launch(Program.from_module(parse_module(assemble(src2))), 0, (1, 1, 1), (16, 1, 1), b"",
               FlatMemory(1 << 16))
    assert e.value.kind == "misaligned" and e.value.address == 2


def test_matmul_kernel_512_is_exact_against_itself_without_forms(monkeypatch):
    """The tiled matmul (the benchmark's kernel) gives bit-identical results on both
    paths; against numpy it agrees to f32 rounding."""
    import os
    kdir = os.path.join(os.path.dirname(__file__), "..", "umd", "kernels")
    with open(os.path.join(kdir, "matmul.s")) as f:
        prog = Program.from_module(parse_module(assemble(f.read())))
    n = 48
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
    results = []
    for forms in (True, False):
        monkeypatch.setattr(chunk_mod, "USE_FORMS", forms)
        mem = FlatMemory(1 << 20)
        pa, pb, pc = mem.alloc(a.nbytes), mem.alloc(b.nbytes), mem.alloc(a.nbytes)
        mem.view(pa, n * n, np.float32)[:] = a.ravel()
        mem.view(pb, n * n, np.float32)[:] = b.ravel()
        launch(prog, 0, (3, 3, 1), (16, 16, 1), struct.pack("<QQQIII", pa, pb, pc, n, n, n), mem)
        results.append(mem.view(pc, n * n, np.float32).reshape(n, n).copy())
    assert np.array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
