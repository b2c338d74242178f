"""`aishim bench`: measure the hot paths, each against a baseline measured in
the same run, and print the table the README shows (or JSON).

    aishim bench [--quick] [--json] [--only NAME,...]

Programs under benchmarks/c/ are compiled into build/bench/ on the fly;
everything runs under the real preload library.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
BENCH_SRC = ROOT / "benchmarks" / "c"
OUT = BUILD / "bench"


@dataclass
class Row:
    metric: str
    value: str
    baseline: str
    ratio: float | None
    goal: str
    met: bool | None
    extra: dict = field(default_factory=dict)


def _compile(name: str, *, runtime: bool = False) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    exe = OUT / name
    src = BENCH_SRC / f"{name}.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        cmd = ["gcc", "-O2", f"-I{ROOT / 'umd' / 'include'}", str(src), "-o", str(exe)]
        if runtime:
            lib = BUILD / "umd" / "lib"
            cmd += [f"-L{lib}", "-laicard", f"-Wl,-rpath,{lib}"]
        subprocess.run(cmd, check=True)
    return exe


def _env(shim: bool = True, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISHIM_") and k != "LD_PRELOAD"}
    if shim:
        from interposer.build import ensure_built
        env["LD_PRELOAD"] = str(ensure_built())
    env["AICARD_KERNELS"] = str(BUILD / "umd" / "kernels")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run(cmd, shim=True, **extra) -> str:
    r = subprocess.run([str(c) for c in cmd], env=_env(shim, **extra), capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r.stdout


def _wall(cmd, shim=True, reps=3, **extra) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run([str(c) for c in cmd], env=_env(shim, **extra), capture_output=True, timeout=600)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# -- the measurements ------------------------------------------------------------

def bench_ioctl(quick: bool) -> list[Row]:
    exe = _compile("ioctl_rt")
    out = _run([exe, 2000 if quick else 50000])
    res = {line.split()[0]: [int(x) for x in line.split()[1:]] for line in out.splitlines()}
    native = res["native_tcgets_devnull"]
    rows = []
    for key, label in (("device_query_clock", "DEV_QUERY (clock)"),
                       ("device_wait_signalled_fence", "WAIT on a signalled fence")):
        p50, p99, _ = res[key]
        rows.append(Row(f"small ioctl: {label}, p50 / p99", f"{p50 / 1e3:.2f} / {p99 / 1e3:.2f} us",
                        f"native ioctl {native[0] / 1e3:.2f} / {native[1] / 1e3:.2f} us", p50 / native[0],
                        "p50 <= 3 us", p50 <= 3000))
    return rows


def bench_syscalls(quick: bool) -> list[Row]:
    exe = _compile("syscalls")
    n = 20000 if quick else 200000
    best = lambda shim: min(int(_run([exe, n], shim=shim)) for _ in range(3))  # noqa: E731
    without, with_shim = best(False), best(True)
    ratio = with_shim / without
    return [Row("unrelated syscalls (open/read/close + 2 stat, per iteration)",
                f"{with_shim / n:.0f} ns", f"{without / n:.0f} ns without the shim", ratio, "<= 1.05x",
                ratio <= 1.05)]


def bench_copies(quick: bool) -> list[Row]:
    exe = _compile("device", runtime=True)
    out = _run([exe, "copies", 1 << 22 if quick else 256 << 20])
    rows = []
    for line in out.splitlines():
        n, mem, htod, dtoh, dtod = line.split()
        n = int(n)
        mem, htod, dtoh, dtod = float(mem), float(htod), float(dtoh), float(dtod)
        worst = min(htod, dtoh, dtod) / mem
        label = f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"
        rows.append(Row(f"copy {label}: HtoD / DtoH / DtoD", f"{htod:.2f} / {dtoh:.2f} / {dtod:.2f} GB/s",
                        f"memcpy {mem:.2f} GB/s", worst, ">= 0.7x at >= 1 MiB" if n >= 1 << 20 else "-",
                        worst >= 0.7 if n >= 1 << 20 else None))
    return rows


def bench_mapped(quick: bool) -> list[Row]:
    exe = _compile("device", runtime=True)
    size = 1 << 20 if quick else 16 << 20
    log = subprocess.run([str(exe), "mapped", str(size)], env=_env(True, AISHIM_LOG="debug"),
                         capture_output=True, text=True, timeout=600)
    copies = log.stderr.count(", COPY, ")
    t, backing = log.stdout.split(maxsplit=1)
    zero_copy = copies == 0 and "aicard0-vram" in backing
    return [Row(f"mapped {size >> 20} MiB write + kernel read", f"{float(t) * 1e3:.1f} ms, {copies} COPY ioctls",
                f"host pages: {backing.strip()}", None, "no copy on the path", zero_copy)]


def bench_launches(quick: bool) -> list[Row]:
    exe = _compile("device", runtime=True)
    rate = float(_run([exe, "launches", 300 if quick else 5000]).split()[0])
    return [Row("empty kernel launch + sync", f"{rate:,.0f} /s", "-", None, ">= 20k/s", rate >= 20000)]


def bench_vecadd(quick: bool) -> list[Row]:
    import numpy as np

    from pydriver.client import Client
    from pydriver.config import Config
    from pydriver.driver import Driver
    n = (1 << 20) if quick else (16 << 20)
    drv = Driver(Config(devices=1))
    c = Client(drv)
    q = c.queue()
    module = c.load_module((BUILD / "umd" / "kernels" / "vecadd.aimod").read_bytes())
    va, vb, vc = (c.alloc(4 * n)[1] for _ in range(3))
    a, b = np.random.rand(n).astype(np.float32), np.random.rand(n).astype(np.float32)
    c.htod(q, va, a.tobytes())
    c.htod(q, vb, b.tobytes())
    params = struct.pack("<QQQI", va, vb, vc, n)

    def kernel():
        c.wait(q, c.launch(q, module, 0, ((n + 255) // 256, 1, 1), (256, 1, 1), params))

    kernel()
    t_kernel = min(_timed(kernel) for _ in range(3))
    t_numpy = min(_timed(lambda: a + b) for _ in range(3))
    assert np.array_equal(np.frombuffer(c.dtoh(q, vc, 4 * n), dtype=np.float32), a + b)
    ratio = t_kernel / t_numpy
    return [Row(f"vecadd {n >> 20}M f32 (launch + sync)", f"{t_kernel * 1e3:.1f} ms",
                f"numpy a + b {t_numpy * 1e3:.1f} ms", ratio, "<= 4x", ratio <= 4)]


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_startup(quick: bool) -> list[Row]:
    exe = _compile("device", runtime=True)
    reps = 3 if quick else 7
    with_shim = _wall([exe, "startup"], shim=True, reps=reps)
    without = _wall([exe, "startup"], shim=False, reps=reps)
    extra = (with_shim - without) * 1e3
    return [Row("process start-up to the first device answer", f"{with_shim * 1e3:.0f} ms",
                f"same program without the shim {without * 1e3:.0f} ms", with_shim / without,
                "<= +150 ms", extra <= 150, {"extra_ms": extra})]


def bench_record_replay(quick: bool) -> list[Row]:
    vecadd = BUILD / "umd" / "bin" / "vecadd"
    size = hex(1 << 20) if quick else hex(64 << 20)
    reps = 1 if quick else 3
    aishim = [sys.executable, "-m", "aishim.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "v.aitrace"
        t_run = _wall([*aishim, "run", "--", vecadd, "-s", size], shim=False, reps=reps)
        t_rec = _wall([*aishim, "record", "-o", trace, "--", vecadd, "-s", size], shim=False, reps=reps)
        rows = [Row(f"record vecadd {int(size, 16) >> 20} MiB", f"{t_rec:.2f} s", f"run {t_run:.2f} s",
                    t_rec / t_run, "<= 1.3x", t_rec / t_run <= 1.3)]
        t_replay = _wall([*aishim, "replay", trace, "--", vecadd, "-s", size], shim=False, reps=reps)
        rows.append(Row(f"replay vecadd {int(size, 16) >> 20} MiB", f"{t_replay:.2f} s", f"run {t_run:.2f} s",
                        t_replay / t_run, "faster than simulating", t_replay < t_run))
        # The sample as it ships (64 KiB): process start-up and the driver's
        # own work, not bulk data, dominate.
        small_trace = Path(tmp) / "v64k.aitrace"
        subprocess.run([*aishim, "record", "-o", str(small_trace), "--", str(vecadd)], env=_env(False),
                       capture_output=True, check=True)
        t_run = _wall([*aishim, "run", "--", vecadd], shim=False, reps=5)
        t_replay = _wall([*aishim, "replay", small_trace, "--", vecadd], shim=False, reps=5)
        rows.append(Row("replay vecadd (default 64 KiB)", f"{t_replay * 1e3:.0f} ms", f"run {t_run * 1e3:.0f} ms",
                        t_replay / t_run, "faster than simulating", t_replay < t_run))
        # Replay speed on a long trace of small calls.
        rt = _compile("ioctl_rt")
        small = Path(tmp) / "small.aitrace"
        n = str(500 if quick else 5000)
        subprocess.run([*aishim, "record", "-o", str(small), "--", str(rt), n], env=_env(False),
                       capture_output=True, check=True)
        r = subprocess.run([*aishim, "replay", str(small), "--", str(rt), n], env=_env(False),
                           capture_output=True, text=True)
        rate = float(r.stderr.split("(")[-1].split()[0]) if "matched" in r.stderr else 0.0
        rows.append(Row("replay of small calls", f"{rate:,.0f} records/s", "-", None, ">= 100k records/s",
                        rate >= 100_000))
    return rows


def bench_daemon(quick: bool) -> list[Row]:
    from aishim.bench_daemon import bench_daemon as run   # it imports this module: not at the top
    return run(quick)


BENCHES = {
    "ioctl": bench_ioctl, "syscalls": bench_syscalls, "copies": bench_copies, "mapped": bench_mapped,
    "launches": bench_launches, "vecadd": bench_vecadd, "startup": bench_startup,
    "record": bench_record_replay, "daemon": bench_daemon,
}


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{cpu or platform.processor()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(args, out) -> int:
    names = list(BENCHES) if not args.only else [n.strip() for n in args.only.split(",")]
    rows: list[Row] = []
    for name in names:
        if name not in BENCHES:
            from aishim.errors import AishimError
            raise AishimError(f"no benchmark {name!r} (known: {', '.join(BENCHES)})")
        try:
            rows += BENCHES[name](args.quick)
        except Exception as e:  # one broken benchmark must not hide the others
            rows.append(Row(name, f"failed: {e}", "-", None, "-", False))
    if args.json:
        json.dump({"machine": machine(), "quick": args.quick, "rows": [asdict(r) for r in rows]}, out, indent=2)
        out.write("\n")
        return 0
    print(f"machine: {machine()}", file=out)
    print("| metric | value | baseline (same run) | ratio | goal | met |", file=out)
    print("|---|---|---|---|---|---|", file=out)
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[r.met]
        print(f"| {r.metric} | {r.value} | {r.baseline} | {ratio} | {r.goal} | {met} |", file=out)
    return 0


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="measure the hot paths against baselines from the same run")
    b.add_argument("--quick", action="store_true", help="tiny sizes: checks the benchmarks work")
    b.add_argument("--json", action="store_true")
    b.add_argument("--only", metavar="NAMES", help=f"some of: {', '.join(BENCHES)}")
