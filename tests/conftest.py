"""Shared fixtures: the built shim, the built runtime and samples, and a helper
to compile the suite's own C programs.  Everything runs for real: real C
binaries, the real preload library, the real driver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
UMD_BIN = BUILD / "umd" / "bin"
UMD_INCLUDE = ROOT / "umd" / "include"
PRELOAD = BUILD / "lib" / "libaicard_preload.so"
TEST_C = Path(__file__).resolve().parent / "c"


@pytest.fixture(scope="session")
def built():
    """Bring the shim, the runtime, the samples and the kernels up to date
    (a no-op under `make test`, which builds first)."""
    subprocess.run(["make", "--no-print-directory", "-s", "all"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return BUILD


@pytest.fixture(scope="session")
def cbuild(tmp_path_factory, built):
    """compile(name, *extra_flags) -> path of tests/c/<name>.c built for this session."""
    out = tmp_path_factory.mktemp("cbin")
    cache = {}

    def compile(name: str, *flags: str) -> Path:
        key = (name, flags)
        if key not in cache:
            exe = out / (name + (f"-{len(cache)}" if flags else ""))
            cmd = ["gcc", "-O1", "-g", "-Wall", "-Werror", "-D_GNU_SOURCE", "-pthread",
                   f"-I{UMD_INCLUDE}", str(TEST_C / f"{name}.c"), "-o", str(exe), *flags]
            subprocess.run(cmd, check=True)
            cache[key] = exe
        return cache[key]

    return compile


def shim_env(**extra) -> dict:
    env = dict(os.environ)
    env["LD_PRELOAD"] = str(PRELOAD)
    env.pop("AISHIM_LOG", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd, *, shim=True, env=None, timeout=120, **kw) -> subprocess.CompletedProcess:
    e = shim_env(**(env or {})) if shim else {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if not shim and env:
        e.update({k: str(v) for k, v in env.items()})
    return subprocess.run([str(c) for c in cmd], env=e, capture_output=True, text=True,
                          timeout=timeout, **kw)


def aishim(*args, **kw) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "aishim.cli", *args], shim=False, **kw)


# -- the driver on its own, no interposer (test_driver.py, test_device_driver.py)

@pytest.fixture
def drv():
    from pydriver.config import Config
    from pydriver.driver import Driver
    return Driver(Config(devices=2, vram_size=64 << 20))


@pytest.fixture
def c(drv):
    from pydriver.client import Client
    client = Client(drv)
    yield client
    client.close()


def err(excinfo) -> int:
    """The errno of a pytest.raises(OSError) result."""
    return excinfo.value.errno
