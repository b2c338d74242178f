"""Atomic read-modify-write on a whole set of threads at once.

Semantics: the threads of one step are serialized in thread order.  Each thread gets the value
its address held just before its own operation (after every lower-numbered thread that hit the
same address), and memory ends up with the result of applying all of them in that order.

Threads are sorted by address (stably, so thread order is kept within an address); each run of
equal addresses is a segment.  add, min, max and exch have closed forms (segmented prefix sums
and prefix maxima); cas, and, or and xor are applied in rounds: round r applies the r-th thread
of every segment at once, so the Python loop runs as many times as the largest number of threads
sharing one address.

f32 add accumulates the prefix sums in float64 and rounds each old value (and the final value)
to f32 once; that is deterministic, and at least as accurate as a sequential f32 serialization,
but not always bit-identical to one.
"""

from __future__ import annotations

import numpy as np

from structs.isa import AtomOp

U32 = np.uint32
U64 = np.uint64


def _segments(idx: np.ndarray):
    order = np.argsort(idx, kind="stable")
    sidx = idx[order]
    start = np.empty(len(sidx), dtype=bool)
    start[0] = True
    np.not_equal(sidx[1:], sidx[:-1], out=start[1:])
    return order, sidx, start


def atomic(mem: np.ndarray, idx: np.ndarray, op: int, signed: bool, is_float: bool,
           b: np.ndarray, c: np.ndarray | None) -> np.ndarray:
    """Apply atomic `op` to mem (a uint32 view of memory) at element indices idx (int64, one per
    thread in thread order) with operands b (and c for CAS), uint32 arrays of len(idx) or 1.
    Returns the old values (uint32, one per thread)."""
    n = len(idx)
    b = np.broadcast_to(b, (n,))
    if c is not None:
        c = np.broadcast_to(c, (n,))
    order, sidx, start = _segments(idx)
    if start.all():                         # every address distinct: one vectorized step
        old = mem[idx]
        mem[idx] = _apply(op, signed, is_float, old, b, c)
        return old
    seg = np.cumsum(start) - 1
    starts = np.flatnonzero(start)
    ends = np.append(starts[1:], n) - 1
    addr = sidx[starts]
    mem0 = mem[addr]                        # value of each address before the step
    bs = b[order]
    if op == AtomOp.ADD and not is_float:
        cs = np.cumsum(bs.astype(U64))
        excl = cs - bs
        excl -= excl[starts][seg]
        old_s = (mem0[seg].astype(U64) + excl).astype(U32)
        total = cs[ends] - (cs[starts] - bs[starts])
        final = (mem0.astype(U64) + total).astype(U32)
    elif op == AtomOp.ADD:
        v = bs.view(np.float32).astype(np.float64)
        cs = np.cumsum(v)
        excl = cs - v
        base = excl[starts]
        excl -= base[seg]
        m0 = mem0.view(np.float32).astype(np.float64)
        old_s = (m0[seg] + excl).astype(np.float32).view(U32)
        final = (m0 + (cs[ends] - base)).astype(np.float32).view(U32)
    elif op in (AtomOp.MIN, AtomOp.MAX):
        key = bs ^ U32(0x80000000) if signed else bs.copy()
        if op == AtomOp.MIN:
            key = ~key                      # a running max of ~v is a running min of v
        keyed = (seg.astype(U64) << U64(32)) | key.astype(U64)
        run = np.maximum.accumulate(keyed)  # earlier segments have smaller keys: no leak
        incl = (run & U64(0xFFFFFFFF)).astype(U32)
        if op == AtomOp.MIN:
            incl = ~incl
        if signed:
            incl ^= U32(0x80000000)
        prev = np.empty_like(incl)          # prefix over the threads *before* each one
        prev[1:] = incl[:-1]
        m0s = mem0[seg]
        old_s = _apply(op, signed, False, m0s, prev, None)
        old_s[start] = m0s[start]
        final = _apply(op, signed, False, mem0, incl[ends], None)
    elif op == AtomOp.EXCH:
        old_s = np.empty(n, dtype=U32)
        old_s[1:] = bs[:-1]
        old_s[start] = mem0
        final = bs[ends]
    else:
        cs_ = None if c is None else c[order]
        rank = np.arange(n) - starts[seg]
        by_rank = np.argsort(rank, kind="stable")
        rank_sorted = rank[by_rank]
        bounds = np.flatnonzero(np.diff(rank_sorted)) + 1
        cur = mem0.copy()
        old_s = np.empty(n, dtype=U32)
        for pos in np.split(by_rank, bounds):
            sg = seg[pos]
            o = cur[sg]
            old_s[pos] = o
            cur[sg] = _apply(op, signed, is_float, o, bs[pos], None if cs_ is None else cs_[pos])
        final = cur
    mem[addr] = final
    old = np.empty(n, dtype=U32)
    old[order] = old_s
    return old


def _apply(op: int, signed: bool, is_float: bool, old: np.ndarray, b: np.ndarray,
           c: np.ndarray | None) -> np.ndarray:
    """The new value of one operation (old and b uint32 arrays of equal length)."""
    if op == AtomOp.ADD:
        if is_float:
            return (old.view(np.float32) + b.view(np.float32)).view(U32)
        return old + b
    if op in (AtomOp.MIN, AtomOp.MAX):
        fn = np.minimum if op == AtomOp.MIN else np.maximum
        if signed:
            return fn(old.view(np.int32), b.view(np.int32)).view(U32)
        return fn(old, b)
    if op == AtomOp.EXCH:
        return np.array(b, dtype=U32, copy=True)
    if op == AtomOp.CAS:
        return np.where(old == b, c, old).astype(U32)
    if op == AtomOp.AND:
        return old & b
    if op == AtomOp.OR:
        return old | b
    if op == AtomOp.XOR:
        return old ^ b
    raise ValueError(f"unknown atomic op {op}")
