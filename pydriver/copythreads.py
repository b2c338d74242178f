"""Host threads that share a big copy, as a DMA engine's channels would.

One process_vm_readv (or memcpy) runs on one core at about 0.8x the speed of
the host's memcpy: the kernel copy does not use the non-temporal stores
glibc's memcpy uses for big buffers.  Two of them on two halves of a buffer
run at 1.4-1.9x one (measured for 4-256 MiB on the 2-core machine of the
README), and the program's thread is waiting in the ioctl anyway.  The
syscalls release the GIL (ctypes and cffi both drop it around the call), so
plain Python threads are enough.

Pieces are whole pages and at least MIN_PIECE: two threads copying 2 MiB
each already get in each other's way (each piece takes ~1.4x longer than
alone), so a 4 MiB copy gains nothing from being split; 16 MiB gains 1.6x,
64 MiB 2x.  The threads start on the
first big copy - a process that never makes one has none - and do not
survive fork(): the child starts its own if it needs them.
"""

from __future__ import annotations

import os
import queue
import threading

MIN_PIECE = 4 << 20
MAX_CHANNELS = 4

_lock = threading.Lock()
_jobs: queue.SimpleQueue | None = None
_threads = 0


_channels = 0


def channels() -> int:
    """How many pieces a big copy is cut into: the cores this process may
    use when it first asks."""
    global _channels
    if not _channels:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        _channels = max(1, min(MAX_CHANNELS, cores))
    return _channels


def _worker(jobs: queue.SimpleQueue) -> None:
    while True:
        fn, index, offset, size, done = jobs.get()
        try:
            fn(offset, size)
            done.put((index, None))
        except BaseException as e:    # handed back to the caller, which raises it
            done.put((index, e))


def _start(n: int) -> queue.SimpleQueue:
    global _jobs, _threads
    with _lock:
        if _jobs is None:
            _jobs = queue.SimpleQueue()
        while _threads < n:
            threading.Thread(target=_worker, args=(_jobs,), daemon=True,
                             name=f"aishim-copy{_threads}").start()
            _threads += 1
        return _jobs


def _forget_after_fork() -> None:
    global _jobs, _threads
    _jobs, _threads = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def run(fn, n: int) -> None:
    """fn(offset, size) over [0, n): in one call for a small n, else in
    page-aligned pieces, one on this thread and the others on copy threads.
    Returns when every piece is done.  If pieces fail, the error of the
    lowest one is raised (the first bad address, as a single copy reports)."""
    k = min(channels(), n // MIN_PIECE)
    if k < 2:
        fn(0, n)
        return
    step = ((n + k - 1) // k + 4095) & ~4095     # whole pages
    pieces = [(off, min(step, n - off)) for off in range(0, n, step)]
    jobs = _start(len(pieces) - 1)
    done: queue.SimpleQueue = queue.SimpleQueue()
    for i, (off, size) in enumerate(pieces[1:], 1):
        jobs.put((fn, i, off, size, done))
    errors = {}
    try:
        fn(*pieces[0])
    except Exception as e:
        errors[0] = e
    for _ in pieces[1:]:
        i, e = done.get()
        if e is not None:
            errors[i] = e
    if errors:
        raise errors[min(errors)]
