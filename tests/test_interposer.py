"""The preload library: every wrapped libc spelling, on device nodes and on
ordinary files, from a real C program; the exported symbol list; the
entry points of the driver library."""

from __future__ import annotations

import subprocess

import pytest

from conftest import PRELOAD, run
from interposer import build

# Every libc name the preload library must define (one list, checked with nm).
SYMBOLS = """
open open64 openat openat64 __open_2 __open64_2 __openat_2 __openat64_2 creat creat64 fopen fopen64
close __close close_range dup dup2 dup3 fcntl fcntl64 ioctl mmap mmap64 munmap
stat stat64 lstat lstat64 fstat fstat64 fstatat fstatat64 statx
__xstat __xstat64 __lxstat __lxstat64 __fxstat __fxstat64 __fxstatat __fxstatat64
access faccessat euidaccess eaccess realpath
getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr
opendir fdopendir readdir readdir64 rewinddir closedir
""".split()


def _exported(lib) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def test_preload_exports_every_symbol(built):
    assert set(SYMBOLS) <= _exported(PRELOAD)


def test_preload_exports_nothing_else(built):
    """Anything else exported could shadow a symbol of the host program."""
    assert _exported(PRELOAD) - set(SYMBOLS) == set()


def test_preload_links_only_libc(built):
    out = subprocess.run(["ldd", str(PRELOAD)], capture_output=True, text=True, check=True).stdout
    assert "python" not in out


def test_driver_library_exports_every_entry_point(built):
    names = set(build.extern_names()) | {"aicard_drv_boot", "aicard_drv_exit"}
    assert names <= _exported(PRELOAD.parent / build.DRIVER_NAME)


def test_glue_attaches_every_entry_point():
    """An extern "Python" function never attached returns 0 (success) from C,
    so attach() must define every name of the cdef, each with error=-EIO."""
    import errno
    import types

    from interposer import glue

    class RecordingFFI:
        seen: dict = {}

        def def_extern(self, error=0, onerror=None):
            def deco(fn):
                self.seen[fn.__name__] = (error, onerror)
                return fn
            return deco

    ffi = RecordingFFI()
    glue.ATTACHED.clear()
    # No native user-copy functions: this process keeps the ctypes path.
    lib = types.SimpleNamespace(aicard_user_copy=None, aicard_user_write=None)
    glue.attach(ffi, lib)
    assert sorted(ffi.seen) == sorted(build.extern_names())
    assert all(err == -errno.EIO and onerror is not None for err, onerror in ffi.seen.values())


@pytest.mark.parametrize("group", ["open", "stat", "readdir", "fd", "mmap", "errors"])
def test_wrappers(cbuild, group):
    r = run([cbuild("interpose"), group])
    failed = [line for line in r.stdout.splitlines() if not line.startswith("ok ")]
    assert r.returncode == 0 and not failed, r.stdout + r.stderr


def test_without_shim_no_device_exists(cbuild):
    r = run([cbuild("interpose"), "stat"], shim=False)
    assert r.returncode != 0
    assert "FAIL stat:" in r.stdout


def test_handler_exception_is_eio_and_logged(cbuild):
    """A Python exception inside a handler: EIO for the caller, a log line,
    and the process goes on (the next ioctl works)."""
    r = run([cbuild("interpose"), "fd"], env={"AISHIM_INJECT_BUG": "BO_CREATE"})
    assert "FAIL bo create" in r.stdout and "errno EIO" in r.stdout
    assert "driver bug in BO_CREATE (returning EIO)" in r.stderr
    assert "RuntimeError: bug injected" in r.stderr
    assert "ok dup" in r.stdout           # later calls still work


def test_ping_magic_agrees():
    import re
    text = (build.HERE / "preload.h").read_text()
    assert int(re.search(r"AICARD_PING_MAGIC (0x[0-9A-Fa-f]+)", text).group(1), 16) == build.PING_MAGIC


def test_a_driver_that_fails_to_start_refuses_device_access(cbuild):
    """cffi answers 0 ("success") from entry points whose init failed; the
    preload library must turn that into errors, not silent successes."""
    r = run([cbuild("interpose"), "open"], env={"AISHIM_INJECT_BUG": "init"})
    assert "ok open\n" not in r.stdout
    assert "FAIL open: fd=-1 (errno EIO)" in r.stdout
    assert "did not start" in r.stderr
