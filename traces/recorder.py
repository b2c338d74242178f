"""The recorder: the driver's Tracer, writing a trace file.

Each call is recorded at entry (its inputs, written at once, so a crash
inside the call keeps them) and at exit (outputs, the user buffers the
driver read or wrote, the firmware ring traffic, written in one batch).
Sequence numbers are global across threads, in the order calls entered.

File per process: the first process to touch a device claims PATH; any
other (a fork()ed or exec()ed child, a sibling started by a shell) writes
PATH.<pid>.  A process that never touches a device writes nothing.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time

import numpy as np

from traces import format as tf
from traces.writer import Blob, Staging, TraceWriter

PAGE = 4096


class Recorder:
    def __init__(self, path: str, argv: list[str] | None = None, *, pid: int | None = None, tid=None):
        """pid, tid: the recorded process and a function naming the thread of
        the current call - given by the ptrace front-end, whose own ids are
        the tracer's; the preload path records itself."""
        self.path = path
        self.argv = list(sys.argv if argv is None else argv)
        self.pid = pid
        self._tid = tid or threading.get_native_id
        self._writer: TraceWriter | None = None
        self._open_lock = threading.Lock()
        self._seq = itertools.count(1)
        self._seq_lock = threading.Lock()
        self._local = threading.local()
        self._shadows: dict = {}            # (minor, handle) -> bytearray: last snapshot of a mapped BO
        self._staging = Staging()
        self.fw_version = 0

    # -- the file ------------------------------------------------------------

    @property
    def writer(self) -> TraceWriter:
        w = self._writer
        if w is None:
            with self._open_lock:
                if self._writer is None:
                    self._writer = self._claim()
                w = self._writer
        return w

    def _claim(self) -> TraceWriter:
        pid = self.pid or os.getpid()
        kw = dict(pid=pid, argv=self.argv, fw_version=self.fw_version)
        try:
            return TraceWriter(self.path, **kw)
        except FileExistsError:
            return TraceWriter(f"{self.path}.{pid}", exclusive=False, **kw)

    def split_copies(self, run) -> None:
        """run(fn, n): how the driver shares a big copy between threads
        (pydriver/copythreads.py); payload staging uses it too."""
        self._staging.split = run

    def forked(self) -> "Recorder":
        child = Recorder(self.path, self.argv)       # preload path only: the child records itself
        child._staging.split = self._staging.split
        return child

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    # -- calls -----------------------------------------------------------------

    def _batch(self) -> list | None:
        return getattr(self._local, "batch", None)

    def enter(self, call, fd, minor, req, arg=None, *, a0=0, a1=0, a2=0, path=None) -> int:
        w = self.writer
        with self._seq_lock:
            seq = next(self._seq)
            tail = path.encode() if path is not None else (arg or b"")
            # Written under the lock: file order is seq order.
            w.write([w.encode(tf.RecordType.CALL, tail, seq=seq, t_ns=time.monotonic_ns(),
                              pid=self.pid or os.getpid(), tid=self._tid(), phase=0, call=call, minor=minor, fd=fd, req=req,
                              a0=a0, a1=a1, a2=a2)])
        self._local.seq = seq
        self._local.batch = []
        return seq

    def exit(self, seq, call, fd, minor, req, ret, arg=None, *, a0=0, a1=0, a2=0) -> None:
        w = self.writer
        batch = self._batch() or []
        batch.append(w.encode(tf.RecordType.CALL, arg or b"", seq=seq, t_ns=time.monotonic_ns(),
                              pid=self.pid or os.getpid(), tid=self._tid(), phase=1, call=call, minor=minor, fd=fd, req=req,
                              ret=ret, a0=a0, a1=a1, a2=a2))
        self._local.batch = None
        self._local.seq = 0
        w.submit(batch)             # checksummed, maybe compressed, and written by the writer thread

    def _emit(self, records: list) -> None:
        batch = self._batch()
        if batch is None:
            self.writer.write(records)
        else:
            batch.extend(records)

    def user_at(self, direction, addr, local_addr, n) -> None:
        """A user buffer the driver moved, still at local_addr in this process
        (VRAM for a copy): copied now, checksummed and written later."""
        w = self.writer
        seq = getattr(self._local, "seq", 0)
        data, release = self._staging.copy(local_addr, n)
        self._emit([Blob(data, lambda bid: w.encode(tf.RecordType.USER, seq=seq, dir=direction, addr=addr,
                                                     size=n, blob=bid), release)])

    def user(self, direction, addr, data) -> None:
        w = self.writer
        seq = getattr(self._local, "seq", 0)
        self._emit([Blob(bytes(data), lambda bid: w.encode(tf.RecordType.USER, seq=seq, dir=direction, addr=addr,
                                                            size=len(data), blob=bid))])

    def ring(self, minor, direction, offset, data, ticks) -> None:
        w = self.writer
        self._emit([w.encode(tf.RecordType.RING, data, seq=getattr(self._local, "seq", 0), t_ns=time.monotonic_ns(),
                             ticks=ticks, minor=minor, dir=0 if direction == "cmd" else 1, offset=offset)])

    def device(self, dev) -> None:
        from structs import fw
        if not self.fw_version:
            self.fw_version = fw.pack_version(dev.fw_version)
        w = self.writer
        boot_ns = dev.clock._t0
        self._emit([w.encode(tf.RecordType.DEVICE, minor=dev.minor, fw_version=fw.pack_version(dev.fw_version),
                             drv_version=fw.pack_version(dev.drv_version), vram_size=dev.vram.size,
                             freq=dev.clock.freq, boot_t_ns=boot_ns)])

    # -- host-mapped memory ----------------------------------------------------

    def snapshot(self, point, maps) -> None:
        """Record the pages of every host-mapped buffer that changed since the
        last snapshot: a page compare against a shadow copy, not a copy of
        everything every time."""
        w = self.writer
        out: list = []
        seen = set()
        for m in maps:
            bo, dev = m.bo, m.device
            key = (dev.minor, bo.handle)
            if key in seen or dev.vram.u8 is None:
                continue
            seen.add(key)
            shadow = self._shadows.get(key)
            if shadow is None or len(shadow) != bo.size:
                shadow = self._shadows[key] = bytearray(bo.size)     # a new BO reads as zeros
            cur = dev.vram.u8[bo.vram_offset:bo.vram_offset + bo.size]
            old = np.frombuffer(shadow, dtype=np.uint8)
            pages = bo.size // PAGE
            diff = (cur.reshape(pages, PAGE) != old.reshape(pages, PAGE)).any(axis=1)
            if not diff.any():
                continue
            idx = np.flatnonzero(diff)
            # Runs of consecutive changed pages: one record each.
            breaks = np.flatnonzero(np.diff(idx) != 1) + 1
            for run in np.split(idx, breaks):
                lo, hi = int(run[0]) * PAGE, (int(run[-1]) + 1) * PAGE
                data = cur[lo:hi].tobytes()
                shadow[lo:hi] = data
                out.append(Blob(data, lambda bid, lo=lo, hi=hi, seq=getattr(self._local, "seq", 0), m=dev.minor,
                                h=bo.handle: w.encode(tf.RecordType.SNAP, seq=seq, point=point, minor=m, handle=h,
                                                      offset=lo, size=hi - lo, blob=bid)))
        if out:
            if point == 0:
                # Before a submit: must precede that call's entry in the file.
                w.write(out)
            else:
                # After a sync, inside that call: part of its batch, named by its seq.
                self._emit(out)
