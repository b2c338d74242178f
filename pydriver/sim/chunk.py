"""One chunk of a launch: a run of whole blocks executed together, and its register file.

Registers are numpy arrays, one per register, *never modified in place* (an instruction binds a
new array to its destination), so `mov` and uniform values cost nothing and arrays can be shared
between registers.  An array has shape (n,) (one value per thread of the chunk) or (1,)
(the same value in every thread: a uniform register, which broadcasts).

Besides arrays, a register may hold a *linear form*: the exact integer value written as
``const + c_tx*tid.x + c_ty*tid.y + c_tz*tid.z + c_cx*ctaid.x + c_cy*ctaid.y + c_cz*ctaid.z``,
a 7-tuple of Python ints.  The register's bits are the form modulo 2**32 (2**64 for a pair).
Address arithmetic (s2r, mad, mul.wide, add.u64, ld.param) stays symbolic, so that

  * a uniform value (a form with no coefficients) costs no array at all;
  * a comparison of a form with a bound can often be decided for the whole chunk from the
    form's range (the `i < n` guard of every elementwise kernel);
  * a load or store whose address is ``base + size * t`` (t = thread index in the chunk) is a
    contiguous slice of device memory: one translate() of the whole range and one memcpy
    instead of a per-thread gather.

Forms are only an acceleration: every consumer that cannot use one materializes the array, and
the executor's tests run programs with forms disabled (USE_FORMS = False) and compare.

Pairs (64-bit values in r2k:r2k+1) have their own slot holding a uint64 array or a form; the two
32-bit halves and the pair are kept coherent lazily (a representation is computed from the
others when first asked for, and writes drop the representations they make stale).
"""

from __future__ import annotations

import numpy as np

U32 = np.uint32
U64 = np.uint64
M32 = (1 << 32) - 1
M64 = (1 << 64) - 1

ZERO6 = (0, 0, 0, 0, 0, 0)
ZERO_FORM = (0, 0, 0, 0, 0, 0, 0)
FALSE1 = np.zeros(1, dtype=bool)
TRUE1 = np.ones(1, dtype=bool)
FALSE1.flags.writeable = False
TRUE1.flags.writeable = False

# Coefficients beyond this magnitude are reduced modulo the register width: congruent forms
# describe the same bits, and this keeps loops that multiply forms from growing huge ints.
_FORM_LIMIT = 1 << 80

USE_FORMS = True   # tests flip this to check the symbolic path against plain arrays


def const_form(value: int) -> tuple:
    return (value, 0, 0, 0, 0, 0, 0)


def form_add(f, g):
    return (f[0] + g[0], f[1] + g[1], f[2] + g[2], f[3] + g[3], f[4] + g[4], f[5] + g[5],
            f[6] + g[6])


def form_sub(f, g):
    return (f[0] - g[0], f[1] - g[1], f[2] - g[2], f[3] - g[3], f[4] - g[4], f[5] - g[5],
            f[6] - g[6])


def form_scale(f, k: int):
    return (f[0] * k, f[1] * k, f[2] * k, f[3] * k, f[4] * k, f[5] * k, f[6] * k)


def form_norm(f, bits: int):
    """Reduce oversized coefficients modulo 2**bits (keeps the form congruent)."""
    if max(f) < _FORM_LIMIT and min(f) > -_FORM_LIMIT:
        return f
    mod, half = 1 << bits, 1 << (bits - 1)
    return tuple(((x + half) % mod) - half for x in f)


def is_const(f) -> bool:
    return f[1:] == ZERO6


class Chunk:
    """Blocks [b0, b0 + nb) of a launch: geometry, register file, predicates, shared memory."""

    def __init__(self, launch, b0: int, nb: int, num_regs: int):
        self.L = launch
        T = launch.threads_per_block
        self.T, self.b0, self.nb = T, b0, nb
        self.n = nb * T
        bx, by, bz = launch.block
        gx, gy, gz = launch.grid
        b1 = b0 + nb - 1
        gxy = gx * gy
        z0, z1 = b0 // gxy, b1 // gxy
        if z0 == z1:
            y0, y1 = (b0 % gxy) // gx, (b1 % gxy) // gx
        else:
            y0, y1 = 0, gy - 1
        if z0 == z1 and y0 == y1:
            x0, x1 = b0 % gx, b1 % gx
        else:
            x0, x1 = 0, gx - 1
        # Range of each basis variable over the chunk (tid.x, tid.y, tid.z, ctaid.x, .y, .z).
        self.lo = (0, 0, 0, x0, y0, z0)
        self.hi = (bx - 1, by - 1, bz - 1, x1, y1, z1)
        # Coordinates of the chunk's first block, and the strides that make a form affine in t.
        self.c0 = (b0 % gx, (b0 // gx) % gy, b0 // gxy)
        self.strides = (1, bx, bx * by, T, T * gx, T * gxy)
        self.vary = tuple(lo != hi for lo, hi in zip(self.lo, self.hi))
        nregs = max(2, num_regs + (num_regs & 1))
        self.v32 = [None] * nregs
        self.f32 = [ZERO_FORM] * nregs      # registers start at 0
        self.v64 = [None] * (nregs // 2)
        self.f64 = [None] * (nregs // 2)
        self.P = [FALSE1] * 8
        self.shared = None
        self.mem_views = False      # some register may be a view of device memory
        self._cache = {}
        self.nwarps = nb * launch.warps_per_block

    def scratch64(self) -> np.ndarray:
        """A float64 work buffer of n elements, reused by every instruction of the chunk
        (never a register value)."""
        buf = self._cache.get("scratch64")
        if buf is None:
            buf = self._cache["scratch64"] = np.empty(self.n, dtype=np.float64)
        return buf

    # ---------------------------------------------------------------- geometry helpers
    def basis(self, i: int, dtype) -> np.ndarray:
        """Basis variable i (0..5: tid.x .. ctaid.z) for every thread, as dtype."""
        key = ("basis", i, dtype)
        arr = self._cache.get(key)
        if arr is None:
            if dtype is not U32:
                arr = self.basis(i, U32).astype(dtype)
            elif i < 3:
                arr = self.L.thread_coord(i, self.n)
            else:
                # Block coordinates: computed per block (nb values), then repeated per thread.
                blk = np.arange(self.b0, self.b0 + self.nb, dtype=np.int64)
                gx, gy, _ = self.L.grid
                coord = blk % gx if i == 3 else (blk // gx) % gy if i == 4 else blk // (gx * gy)
                arr = np.repeat(coord.astype(U32), self.T)
            self._cache[key] = arr
        return arr

    def block_local(self) -> np.ndarray:
        """Index of each thread's block inside the chunk (int64)."""
        arr = self._cache.get("blk")
        if arr is None:
            arr = self._cache["blk"] = np.repeat(np.arange(self.nb, dtype=np.int64), self.T)
        return arr

    def lane(self) -> np.ndarray:
        arr = self._cache.get("lane")
        if arr is None:
            tl = self.L.arange(self.n, np.int64) % self.T
            arr = self._cache["lane"] = (tl % 32).astype(U32)
        return arr

    def warp_in_block(self) -> np.ndarray:
        arr = self._cache.get("warp")
        if arr is None:
            tl = self.L.arange(self.n, np.int64) % self.T
            arr = self._cache["warp"] = (tl // 32).astype(U32)
        return arr

    def warps_of(self, idx: np.ndarray) -> int:
        """Number of distinct warps among the (sorted) thread indices idx."""
        if len(idx) == 0:
            return 0
        wid = self._cache.get("wid")
        if wid is None:
            tl = self.L.arange(self.n, np.int64)
            wid = self._cache["wid"] = (tl // self.T) * self.L.warps_per_block + (tl % self.T) // 32
        w = wid[idx]
        return 1 + int(np.count_nonzero(w[1:] != w[:-1]))

    # ---------------------------------------------------------------- forms
    def frange(self, f):
        """(min, max) of the exact value of form f over the chunk's threads."""
        lo = hi = f[0]
        for c, a, b in zip(f[1:], self.lo, self.hi):
            if c > 0:
                lo += c * a
                hi += c * b
            elif c < 0:
                lo += c * b
                hi += c * a
        return lo, hi

    def affine(self, f):
        """(base, stride) if form f equals base + stride * t for chunk thread index t, else None."""
        s = None
        for c, st, varies in zip(f[1:], self.strides, self.vary):
            if not varies:
                continue
            if s is None:
                if c % st:
                    return None
                s = c // st
            elif c != s * st:
                return None
        c0 = self.c0
        base = f[0] + f[4] * c0[0] + f[5] * c0[1] + f[6] * c0[2]
        return base, (s or 0)

    def materialize(self, f, bits: int) -> np.ndarray:
        dtype = U32 if bits == 32 else U64
        mask = M32 if bits == 32 else M64
        if f[1:] == ZERO6:
            return np.array([f[0] & mask], dtype=dtype)
        aff = self.affine(f)
        if aff is not None:
            base, s = aff
            t = self.L.arange(self.n, dtype)
            out = t * dtype(s & mask)
            out += dtype(base & mask)
            return out
        out = np.full(self.n, f[0] & mask, dtype=dtype)
        for i in range(6):
            c = f[i + 1]
            if c:
                out += self.basis(i, dtype) * dtype(c & mask)
        return out

    # ---------------------------------------------------------------- 32-bit registers
    def form32(self, r: int):
        """A form for register r's 32-bit value if one is cheaply known, else None."""
        f = self.f32[r]
        if f is not None:
            return f
        v = self.v32[r]
        if v is not None:
            if v.shape[0] == 1:
                f = self.f32[r] = const_form(int(v[0]))
                return f
            return None
        k = r >> 1
        f = self.f64[k]
        if f is None:
            w = self.v64[k]
            if w.shape[0] == 1:
                x = int(w[0])
                return const_form(x >> 32 if r & 1 else x & M32)
            return None
        if not r & 1:
            return f                      # the low word is the form modulo 2**32
        lo, hi = self.frange(f)
        if lo >> 32 == hi >> 32:          # the high word is the same in every thread
            return const_form((lo >> 32) & M32)
        return None

    def arr32(self, r: int) -> np.ndarray:
        v = self.v32[r]
        if v is not None:
            return v
        f = self.f32[r]
        if f is not None:
            v = self.v32[r] = self.materialize(f, 32)
            return v
        w = self.arr64(r >> 1)
        v = (w >> U64(32) if r & 1 else w).astype(U32)
        self.v32[r] = v
        return v

    def set32(self, r: int, v, f) -> None:
        """Full-width write of array v and/or form f (at least one) into register r."""
        k = r >> 1
        if self.v64[k] is not None or self.f64[k] is not None:
            o = r ^ 1
            if self.v32[o] is None and self.f32[o] is None:
                fo = self.form32(o)        # keep the other half before the pair goes stale
                if fo is not None:
                    self.f32[o] = fo
                else:
                    self.arr32(o)
            self.v64[k] = None
            self.f64[k] = None
        self.v32[r] = v
        self.f32[r] = f

    def set32_part(self, r: int, ex: np.ndarray, vals: np.ndarray) -> None:
        """Write vals (len(ex) or 1 values) into the threads ex of register r."""
        old = self.arr32(r)
        new = np.full(self.n, old[0], dtype=U32) if old.shape[0] == 1 else old.copy()
        new[ex] = vals
        self.set32(r, new, None)

    # ---------------------------------------------------------------- 64-bit pairs
    def form64(self, r: int):
        k = r >> 1
        f = self.f64[k]
        if f is not None:
            return f
        w = self.v64[k]
        if w is not None:
            return const_form(int(w[0])) if w.shape[0] == 1 else None
        lo = self.form32(r)
        if lo is None:
            return None
        hi = self.form32(r + 1)
        if hi is None:
            return None
        a, b = self.frange(lo)
        if a < 0 or b > M32:
            return None
        f = self.f64[k] = form_norm(form_add(lo, form_scale(hi, 1 << 32)), 64)
        return f

    def arr64(self, r: int) -> np.ndarray:
        k = r >> 1
        w = self.v64[k]
        if w is not None:
            return w
        f = self.f64[k]
        if f is not None:
            w = self.materialize(f, 64)
        else:
            lo = self.arr32(r & ~1)
            hi = self.arr32(r | 1)
            w = lo.astype(U64)
            w |= hi.astype(U64) << U64(32)
        self.v64[k] = w
        return w

    def set64(self, r: int, w, f) -> None:
        k = r >> 1
        self.v64[k] = w
        self.f64[k] = f
        r &= ~1
        self.v32[r] = self.v32[r + 1] = None
        self.f32[r] = self.f32[r + 1] = None

    def set64_part(self, r: int, ex: np.ndarray, vals: np.ndarray) -> None:
        old = self.arr64(r)
        new = np.full(self.n, old[0], dtype=U64) if old.shape[0] == 1 else old.copy()
        new[ex] = vals
        self.set64(r, new, None)

    def unalias(self, vram: np.ndarray) -> None:
        """Copy every register array that is a view of device memory (a contiguous load
        skips the copy), so that a store cannot change a register.  Arrays shared by several
        registers stay shared."""
        copies = {}
        for slots in (self.v32, self.v64):
            for i, arr in enumerate(slots):
                if arr is not None and arr.base is not None and np.may_share_memory(arr, vram):
                    new = copies.get(id(arr))
                    if new is None:
                        new = copies[id(arr)] = arr.copy()
                    slots[i] = new
        self.mem_views = False

    # ---------------------------------------------------------------- predicates
    def setp_part(self, p: int, ex: np.ndarray, vals: np.ndarray) -> None:
        old = self.P[p]
        new = np.full(self.n, old[0], dtype=bool) if old.shape[0] == 1 else old.copy()
        new[ex] = vals
        self.P[p] = new
