"""With the shim loaded, programs that never touch a device behave exactly as
without it, and pay nothing: no driver library, no interpreter, no thread."""

from __future__ import annotations

import shutil
import sys

import pytest

from conftest import run

PROGRAMS = {
    "ls": ["ls", "-la", "/"],
    "ls-dev-null": ["ls", "-l", "/dev/null", "/dev/zero"],
    "shell-pipeline": ["sh", "-c", "seq 1 2000 | sort -r | head -n 5 | tr 0-9 a-j; echo status=$?"],
    "stat": ["stat", "-c", "%n %F %s", "/etc/passwd", "/dev/null"],
    "python": [sys.executable, "-c",
               "import sys, os, json, threading; print(json.dumps(sys.path));"
               "print(threading.active_count()); print(sorted(os.listdir('/etc'))[:5])"],
    "find": ["find", "/etc", "-maxdepth", "1", "-name", "h*"],
    "missing-file": ["cat", "/nonexistent/file"],
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_output_with_and_without_shim(built, name):
    cmd = PROGRAMS[name]
    if not shutil.which(cmd[0]) and not cmd[0].startswith("/"):
        pytest.skip(f"{cmd[0]} not installed")
    without = run(cmd, shim=False)
    with_shim = run(cmd)
    assert (with_shim.returncode, with_shim.stdout, with_shim.stderr) == \
        (without.returncode, without.stdout, without.stderr)


def test_gcc_compiles_the_same(built, tmp_path):
    src = tmp_path / "hello.c"
    src.write_text('#include <stdio.h>\nint main(void){puts("hello");return 0;}\n')
    for shim, name in ((False, "a"), (True, "b")):
        r = run(["gcc", "-O2", str(src), "-o", str(tmp_path / name)], shim=shim)
        assert r.returncode == 0, r.stderr
    assert run([tmp_path / "b"]).stdout == "hello\n"


def test_no_driver_loaded_without_device_use(built):
    """The preload library alone is mapped: libpython and the driver library
    are only loaded by the first device access."""
    maps = run(["cat", "/proc/self/maps"]).stdout
    assert "libaicard_preload.so" in maps
    assert "libaicard_driver" not in maps
    assert "libpython" not in maps
    status = run(["cat", "/proc/self/status"]).stdout
    assert "Threads:\t1\n" in status


def test_python_host_untouched(built):
    code = "import sys; print(sys.path); print(sorted(sys.modules))"
    assert run([sys.executable, "-c", code]).stdout == run([sys.executable, "-c", code], shim=False).stdout


def test_a_query_loads_no_numpy(built):
    """Start-up pays only for what a run uses: opening a device and asking
    it a question must not import numpy (~50 ms; kernels and copies do)."""
    from structs import uapi
    query = next(io for io in uapi.IOCTLS if io.name == "DEV_QUERY")
    code = ("import fcntl, os, sys\n"
            "from structs import uapi\n"
            "fd = os.open('/dev/aicard0', os.O_RDWR)\n"
            "c = uapi.DevQuery.codec()\n"
            "buf = bytearray(c.pack(c.make(type=0, size=0, pointer=0)))\n"
            f"fcntl.ioctl(fd, {query.request}, buf)\n"
            "print(c.unpack(buf).size, 'numpy' in sys.modules)\n")
    r = run([sys.executable, "-c", code])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(uapi.DeviceInfo.sizeof()), "False"], r.stdout
