"""Executor benchmarks: ``python -m pydriver.sim.bench [--n N] [--repeat R]``.

Prints the time of the vecadd kernel (umd/kernels/vecadd.s) over N f32 elements next to
numpy's ``a + b`` on the same arrays (best of R runs each), the same with the symbolic
fast paths off, and the cost of launching the empty kernel.  Not a test: timings depend on
the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import struct
import time

import numpy as np

from pydriver.asm import assemble
from pydriver.sim import chunk as chunk_mod
from pydriver.sim.executor import Program, launch
from pydriver.sim.flatmem import FlatMemory
from structs.module import parse_module

KERNELS = os.path.join(os.path.dirname(__file__), "..", "..", "umd", "kernels")


def _program(name: str) -> Program:
    with open(os.path.join(KERNELS, name + ".s")) as f:
        return Program.from_module(parse_module(assemble(f.read(), name + ".s")))


def best(fn, repeat: int) -> float:
    """The shortest of repeat timed calls of fn(), in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pydriver.sim.bench")
    ap.add_argument("--n", type=int, default=16 << 20, help="elements (default 16M)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    n = args.n
    mem = FlatMemory(3 * 4 * n + (1 << 20))
    rng = np.random.default_rng(0)
    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    pa, pb, pc = mem.alloc(4 * n), mem.alloc(4 * n), mem.alloc(4 * n)
    mem.view(pa, n, np.float32)[:] = a
    mem.view(pb, n, np.float32)[:] = b
    vecadd = _program("vecadd")
    params = struct.pack("<QQQI", pa, pb, pc, n)
    grid = (-(-n // 256), 1, 1)

    def run():
        launch(vecadd, 0, grid, (256, 1, 1), params, mem)

    run()                                   # first touch of the output pages
    t_np = best(lambda: a + b, args.repeat)
    t_k = best(run, args.repeat)
    if not np.array_equal(mem.view(pc, n, np.float32), a + b):
        raise SystemExit("vecadd gave a wrong result")
    print(f"vecadd n={n}: kernel {t_k * 1e3:.1f} ms, numpy a+b {t_np * 1e3:.1f} ms, "
          f"ratio {t_k / t_np:.2f}x")
    saved = chunk_mod.USE_FORMS
    chunk_mod.USE_FORMS = False
    try:
        t_g = best(run, max(1, args.repeat // 2))
    finally:
        chunk_mod.USE_FORMS = saved
    print(f"vecadd without the symbolic fast paths (per-thread gather): {t_g * 1e3:.1f} ms, "
          f"ratio {t_g / t_np:.1f}x")
    empty = _program("empty")
    t_e = best(lambda: [launch(empty, 0, (1, 1, 1), (1, 1, 1), b"", mem) for _ in range(1000)],
                args.repeat)
    print(f"empty kernel: {t_e * 1e3:.1f} us per launch")


if __name__ == "__main__":
    main()
