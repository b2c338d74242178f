"""What the ptrace backend costs, next to the preload library and to native.

    .venv/bin/python benchmarks/ptrace.py            # ~15 s
    .venv/bin/python benchmarks/ptrace.py --quick    # smaller counts, one repetition

One run prints:

* the round trip of one ioctl: a native ioctl (TCGETS on /dev/null, the
  kernel's cheapest), an aicard request the driver does not know (the bare
  trip through the front-end: ENOTTY) and DEV_QUERY clock (a real handler),
  under preload, under ptrace and under ptrace with the tracer and program
  on one CPU (--pin); ratios against preload and against the native ioctl;
* the slowdown of programs making unrelated system calls: N x (open, read,
  close /etc/hostname, getpid) - open and close stop in the tracer, the
  path is rejected in Python - and N x (some arithmetic, getpid,
  clock_gettime, read /dev/zero, write /dev/null) - the seccomp filter lets
  every one through.  Ratio = time under ptrace / native time.

Each figure is the best of --repeat runs (the machine may be shared).
The program is benchmarks/c/ptrace_bench.c, built here with gcc.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRELOAD = ROOT / "build" / "lib" / "libaicard_preload.so"


def build(out: Path) -> Path:
    exe = out / "ptrace_bench"
    subprocess.run(["gcc", "-O2", f"-I{ROOT / 'umd' / 'include'}", str(ROOT / "benchmarks" / "c" / "ptrace_bench.c"),
                    "-o", str(exe)], check=True)
    return exe


def env_for(frontend: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "AISHIM_LOG", "AISHIM_PTRACE_PIN")}
    if frontend == "preload":
        env["LD_PRELOAD"] = str(PRELOAD)
    return env


def command(frontend: str, argv: list[str]) -> list[str]:
    if frontend.startswith("ptrace"):
        pin = ["--pin"] if frontend == "ptrace-pin" else []
        return [sys.executable, "-m", "interposer.ptrace", *pin, "--", *argv]
    return argv


def measure(frontend: str, argv: list[str], repeat: int) -> dict[str, float]:
    """{name: best value in ns} from the program's "name value..." lines."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        r = subprocess.run(command(frontend, argv), env=env_for(frontend), cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
        if r.returncode != 0:
            raise SystemExit(f"{frontend} {' '.join(argv)}: exit {r.returncode}\n{r.stderr}")
        for line in r.stdout.splitlines():
            name, value, *_ = line.split()
            best[name] = min(best.get(name, float("inf")), float(value))
    return best


def fmt_us(ns: float | None) -> str:
    return "-" if ns is None else f"{ns / 1000:.2f} us"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts, one repetition")
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args(argv)
    n_ioctl, n_files, n_compute = (2000, 2000, 20000) if args.quick else (20000, 20000, 100000)
    repeat = args.repeat or (1 if args.quick else 3)
    if not PRELOAD.exists():
        raise SystemExit(f"{PRELOAD} missing: run make first")

    with tempfile.TemporaryDirectory() as tmp:
        exe = str(build(Path(tmp)))
        fronts = ["preload", "ptrace", "ptrace-pin"]
        io = {f: measure(f, [exe, "ioctl", str(n_ioctl)], repeat) for f in ["native", *fronts]}
        native_ioctl = io["native"]["native_tcgets_devnull"]
        print(f"per-ioctl round trip (p50, best of {repeat}, {n_ioctl} calls)")
        print(f"  {'':34}{'preload':>12}{'ptrace':>12}{'ptrace --pin':>14}")
        print(f"  {'native TCGETS on /dev/null':34}{fmt_us(native_ioctl):>12}")
        for name, label in (("device_unknown_ioctl", "unknown aicard request (ENOTTY)"),
                            ("device_query_clock", "DEV_QUERY clock")):
            vals = [io[f].get(name) for f in fronts]
            print(f"  {label:34}" + "".join(f"{fmt_us(v):>12}" for v in vals[:2]) + f"{fmt_us(vals[2]):>14}")
        for name, label in (("device_unknown_ioctl", "bare trip"), ("device_query_clock", "DEV_QUERY")):
            pre, pt, pin = (io[f][name] for f in fronts)
            print(f"  ratio {label:12} ptrace/preload {pt / pre:6.1f}x   ptrace/native {pt / native_ioctl:7.0f}x"
                  f"   --pin/preload {pin / pre:5.1f}x")

        print(f"\nunrelated system calls (total time, best of {repeat})")
        print(f"  {'':42}{'native':>10}{'ptrace':>10}{'ratio':>8}{'--pin':>10}{'ratio':>8}")
        for mode, n, label in (("files", n_files, f"{n_files} x open+read+close+getpid"),
                               ("compute", n_compute, f"{n_compute} x work+getpid+clock+read+write")):
            t = {f: measure(f, [exe, mode, str(n)], repeat)[mode] for f in ("native", "ptrace", "ptrace-pin")}
            print(f"  {label:42}{t['native'] / 1e6:8.1f}ms{t['ptrace'] / 1e6:8.1f}ms"
                  f"{t['ptrace'] / t['native']:7.2f}x{t['ptrace-pin'] / 1e6:8.1f}ms{t['ptrace-pin'] / t['native']:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
