"""The simulated device from C: the sample programs of issue 6 (device printf,
faults, the shipped kernels against CPU references, every backend function,
the device clock), unmodified binaries run under the real preload library."""

from __future__ import annotations

import re

import pytest

from conftest import UMD_BIN, run

KERNEL_SAMPLES = {
    "reduce": [],
    "reduce-odd-1024": ["-n", "77777", "-b", "1024"],
    "reduce-one-block": ["-n", "5", "-b", "8"],
    "matmul": [],
    "matmul-square-64": ["-m", "64", "-n", "64", "-k", "64"],
    "matmul-thin": ["-m", "1", "-n", "33", "-k", "17"],
    "histogram": [],
    "histogram-one-block": ["-n", "4099", "-g", "1"],
    "scan": [],
    "scan-1024": ["-n", "5000", "-b", "1024"],
    "scan-odd-block": ["-n", "999", "-b", "100"],
}


@pytest.mark.parametrize("name", sorted(KERNEL_SAMPLES))
def test_kernel_sample_matches_cpu_reference(built, name):
    r = run([UMD_BIN / name.split("-")[0], *KERNEL_SAMPLES[name]])
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Test passed" in r.stdout, r.stdout


HELLO_OUTPUT = """\
hello: launch 1 (2 x 3 threads)
block 0 thread 0: n=1
block 0 thread 1: n=1
block 0 thread 2: n=1
block 1 thread 0: n=1
block 1 thread 1: n=1
block 1 thread 2: n=1
block 0 half=0.00
block 1 half=0.50
hello: launch 2 on a stream
block 0 thread 0: n=2
block 0 thread 1: n=2
block 0 half=0.00
Test passed
"""


def test_device_printf_reaches_stdout_in_order(built):
    """Device output lands between the program's own lines, in thread order,
    at the synchronization that waits for the kernel; also through a pipe
    (stdout fully buffered)."""
    r = run([UMD_BIN / "hello"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == HELLO_OUTPUT
    assert r.stderr == ""


def test_device_printf_of_many_blocks(built):
    r = run([UMD_BIN / "hello", "-g", "40", "-b", "100"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    first = [f"block {b} thread {t}: n=1" for b in range(40) for t in range(100)]
    assert lines[1:1 + len(first)] == first
    assert lines[1 + len(first):1 + len(first) + 40] == [f"block {b} half={b / 2:.2f}" for b in range(40)]


FAULTS = {
    "oob_load": ("aiErrorLaunchFailure", r"mmu on queue \d+ fence \d+ pc=10 address=0x[0-9a-f]+: "
                 r"LAUNCH: kernel copy_u32: read of 4 bytes at unmapped device address"),
    "oob_store": ("aiErrorLaunchFailure", r"mmu on queue \d+ fence \d+ pc=13 address=0x[0-9a-f]+: "
                  r"LAUNCH: kernel copy_u32: write of 4 bytes"),
    "misaligned": ("aiErrorLaunchFailure", r"misaligned on queue \d+ fence \d+ pc=1 address=0x[0-9a-f]+2: "
                   r"LAUNCH: kernel load_misaligned: 4-byte access"),
    "illegal": ("aiErrorLaunchFailure", r"illegal_instruction on queue \d+ fence \d+ pc=1: "
                r"LAUNCH: kernel illegal: unknown opcode 0xee"),
    "timeout": ("aiErrorLaunchTimeout", r"timeout on queue \d+ fence \d+ pc=\d+: LAUNCH: kernel spin: "),
}


def test_faults_from_c(built, tmp_path):
    """Each fault: the sync reports it, the faulted context refuses more work,
    another context of the device and another device keep working, and the
    driver logs the kernel, pc and address."""
    log = tmp_path / "shim.log"
    r = run([UMD_BIN / "faults"], env={"AISHIM_WATCHDOG": "0.5", "AISHIM_LOG_FILE": log})
    assert r.returncode == 0, r.stdout + r.stderr
    got = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    text = log.read_text()
    for case, (sync, logged) in FAULTS.items():
        assert got[case] == (f"sync={sync} again=aiErrorLaunchFailure copy=aiErrorLaunchFailure "
                             f"same_device=ok other_device=ok destroy=aiSuccess"), case
        assert re.search(r"firmware fault: " + logged, text), (case, text)
    assert r.stdout.rstrip().endswith("Test passed")


BACKEND_CHECKS = ["memset", "memcpy", "memcpy_async", "events", "event_reset", "host_func",
                  "stream_wait_event", "membar", "fence_reset", "encode", "decode", "attention",
                  "attention_causal", "bad_token"]


def test_every_backend_function_from_c(built):
    r = run([UMD_BIN / "backend"])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines == [f"{name}: ok" for name in BACKEND_CHECKS] + ["Test passed"]


def test_event_clock_is_ordered_and_proportional(built):
    r = run([UMD_BIN / "clock", "-n", str(1 << 18)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ordered: ok" in r.stdout
    ratio = float(re.search(r"ratio ([0-9.]+)", r.stdout).group(1))
    assert 3.5 < ratio < 4.5, r.stdout


@pytest.mark.parametrize("name", ["hello", "faults", "reduce", "matmul", "histogram", "scan",
                                  "backend", "clock"])
def test_new_samples_fail_cleanly_without_shim(built, name):
    r = run([UMD_BIN / name], shim=False)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip() == "no aicard device"
