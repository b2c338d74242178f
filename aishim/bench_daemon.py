"""`aishim bench` rows for the daemon: small ioctls through `aishim serve`.

The same program (benchmarks/c/ioctl_rt.c) runs twice in one go: under the
preload library with the embedded driver, and connected to a daemon started
for the purpose (AISHIM_CONNECT).  The difference is the cost of the trip
over the socket - frames out and back, plus both sides' Python.

    bench_daemon(quick) -> list[Row]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from aishim.bench import ROOT, Row, _compile, _env, _run

GOAL_NS = 15_000

# (ioctl_rt line, label, does the goal apply): DEV_QUERY writes its answer
# into the caller's memory (process_vm_writev across processes), so it is
# shown, not judged.
_ROWS = (
    ("device_unknown_ioctl", "bare round trip (unknown request)", True),
    ("device_wait_signalled_fence", "WAIT on a signalled fence", True),
    ("device_query_clock", "DEV_QUERY (clock, answer written to user memory)", False),
)


def _parse(out: str) -> dict:
    return {line.split()[0]: [int(x) for x in line.split()[1:]] for line in out.splitlines() if line.strip()}


def bench_daemon(quick: bool) -> list[Row]:
    exe = _compile("ioctl_rt")
    n = 2000 if quick else 50000
    local = _parse(_run([exe, n], AISHIM_DEVICES=1))
    with tempfile.TemporaryDirectory() as tmp:
        sock = str(Path(tmp) / "bench.sock")
        daemon = subprocess.Popen([sys.executable, "-m", "aishim.cli", "serve", "--socket", sock, "--devices", "1"],
                                  cwd=ROOT, env=_env(False, AISHIM_LOG="error"), stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        try:
            ready = daemon.stdout.readline()
            if "serving" not in ready:
                raise RuntimeError(f"the daemon did not start: {ready!r}")
            remote = _parse(_run([exe, n], AISHIM_CONNECT=sock, AISHIM_DEVICES=1))
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
    rows = []
    for key, label, judged in _ROWS:
        p50, p99, _ = remote[key]
        l50, l99, _ = local[key]
        rows.append(Row(f"daemon: {label}, p50 / p99", f"{p50 / 1e3:.2f} / {p99 / 1e3:.2f} us",
                        f"in-process {l50 / 1e3:.2f} / {l99 / 1e3:.2f} us", p50 / l50,
                        "p50 <= 15 us" if judged else "-", p50 <= GOAL_NS if judged else None,
                        {"p50_ns": p50, "p99_ns": p99, "in_process_p50_ns": l50, "in_process_p99_ns": l99}))
    return rows
