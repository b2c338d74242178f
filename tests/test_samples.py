"""The unmodified sample binaries of the reference runtime, run under the real
preload library on the simulated devices, and without it."""

from __future__ import annotations

import pytest

from conftest import UMD_BIN, run

SAMPLES = {
    "vecadd": ([], "Test passed: size 0x10000, dev_num 0"),
    "vecadd-1M-dev2": (["-s", str(1 << 20), "-d", "2"], "Test passed: size 0x100000, dev_num 2"),
    "saxpy": ([], "passed"),
    "memcpy_roundtrip": (["-max", str(64 << 20)], "passed"),
    "multidevice": ([], "passed"),
    "threads": (["-t", "8", "-i", "5"], "passed"),
    "mapped": ([], "passed"),
}


def _binary(name: str):
    return UMD_BIN / name.split("-")[0]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_passes_under_shim(built, name):
    args, expect = SAMPLES[name]
    r = run([_binary(name), *args])
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert expect in r.stdout, r.stdout


@pytest.mark.parametrize("name", sorted({n.split("-")[0] for n in SAMPLES} | {"errors"}))
def test_sample_fails_cleanly_without_shim(built, name):
    r = run([_binary(name)], shim=False)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip() == "no aicard device"


def test_multidevice_uses_every_device(built):
    for n in (1, 2, 4):
        r = run([UMD_BIN / "multidevice"], env={"AISHIM_DEVICES": n})
        assert r.returncode == 0, r.stderr
        assert f"{n} device" in r.stdout, r.stdout


def test_bad_input_from_c(built):
    """Every bad-input case the errors sample tries gets the documented errno
    or runtime error, and the process lives to report all of them."""
    r = run([UMD_BIN / "errors"])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line for line in r.stdout.splitlines() if line and not line.startswith("#")]
    assert len(lines) > 50
    assert not [line for line in lines if "expected" in line or "setup failed" in line]
    expect = {
        "unknown_ioctl": "errno=ENOTTY",
        "ai_malloc_larger_than_vram": "ai=aiErrorOutOfMemory",
        "ai_double_free": "ai=aiErrorInvalidDevicePointer",
    }
    got = dict(line.split(": ", 1) for line in lines if ": " in line)
    for case, answer in expect.items():
        assert got.get(case, "").startswith(answer), (case, got.get(case))
