"""User memory crossing the boundary, from C programs under the real shim.

Big copies are cut into pieces on several threads: every byte must arrive,
and a bad page in any piece is EFAULT for that ioctl only (tests/c/bigcopy.c),
under three front ends with three copy paths: the preload library (the
driver library's C splits the copy over two pthreads), the ptrace tracer and
the daemon (process_vm_* through ctypes, split by pydriver/copythreads.py).

Small arguments on the caller's live stack are copied with memcpy, the rest
with process_vm_* (interposer/usercopy.h): tests/c/argcopy.c tries every kind
of memory a program may hand over.
"""

from __future__ import annotations

import sys

import pytest

from conftest import aishim, run
from test_daemon import Daemon


def _check(r):
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines and all(x.startswith("ok ") for x in lines), (r.stdout, r.stderr)
    assert len(lines) == 9


def test_big_copies_under_the_preload_library(cbuild):
    _check(run([cbuild("bigcopy")]))


def test_big_copies_under_ptrace(cbuild):
    _check(aishim("run", "--ptrace", "--", str(cbuild("bigcopy"))))


def test_big_copies_through_the_daemon(cbuild, tmp_path):
    d = Daemon(tmp_path)
    try:
        _check(run([cbuild("bigcopy")], env=d.env()))
    finally:
        assert d.stop() == 0, d.log.read_text()


@pytest.mark.parametrize("mib", [8, 33])
def test_copythreads_pieces_cover_the_range_once(mib):
    """The Python splitter alone: every byte of [0, n) in exactly one piece,
    pieces page-aligned, and the lowest failing piece's error is raised."""
    from pydriver import copythreads
    n = (mib << 20) + 4097
    seen = []
    copythreads.run(lambda off, size: seen.append((off, size)), n)
    seen.sort()
    assert seen[0][0] == 0 and sum(s for _, s in seen) == n
    assert all(a + s == b for (a, s), (b, _) in zip(seen, seen[1:]))
    assert all(off % 4096 == 0 for off, _ in seen)
    if len(seen) > 1:
        def fail(off, size):
            if off:
                raise OSError(off, "piece")
        with pytest.raises(OSError) as e:
            copythreads.run(fail, n)
        assert e.value.errno == seen[1][0]


def test_no_copy_threads_before_a_big_copy():
    """A process that never copies much has no extra threads (transparency)."""
    r = run([sys.executable, "-c", "import threading, os; os.open('/dev/aicard0', os.O_RDWR); "
             "print(threading.active_count())"])
    assert r.returncode == 0 and r.stdout.strip() == "1", (r.stdout, r.stderr)


def _all_ok(r, n):
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == n and all(x.startswith("ok ") for x in lines), (r.stdout, r.stderr)


def test_arguments_from_every_kind_of_memory(cbuild):
    """Stack (memcpy), heap, other threads' stacks, sigaltstack, a coroutine
    stack (process_vm_*), and bad pointers: right answers or EFAULT."""
    _all_ok(run([cbuild("argcopy")]), 13)


def test_arguments_from_every_kind_of_memory_through_the_daemon(cbuild, tmp_path):
    d = Daemon(tmp_path)
    try:
        _all_ok(run([cbuild("argcopy")], env=d.env()), 13)
    finally:
        assert d.stop() == 0, d.log.read_text()
