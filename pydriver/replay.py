"""The replay backend: a driver that answers from a recorded trace.

It takes the place of Driver (same methods, same return convention), checks
that the program makes the same calls with the same inputs - user pointers
and timestamps normalized, but the *contents* of the buffers the driver
reads compared - and answers each with the recorded outputs: the argument
struct, the bytes the driver wrote to user memory (translated to this run's
addresses), the mapped-buffer contents at each sync.  No kernel runs.

Order: calls must come in the recorded order.  A thread whose call is not
the next one waits for the threads that come first (so a multi-threaded
program replays the recorded interleaving); with loose=True calls may come
in any order among the next few, and extra DEV_QUERY calls are answered
from the last recorded one.  The first divergence stops the program with a
report: record index, expected vs actual, the field that differs.
"""

from __future__ import annotations

import bisect
import errno
import os
import sys
import threading
import time
from dataclasses import dataclass, field

from pydriver.errors import DriverError
from pydriver.uaccess import UserMemory, buffer_address
from structs import ioc, uapi
from traces import normalize
from traces.calls import Call, describe_call, read_calls
from traces.format import CallKind
from traces.reader import TraceReader
from traces.replay_status import write_status

WAIT_FOR_TURN_S = 10.0
LOOSE_WINDOW = 64
DIVERGED_EXIT = 3


class Diverged(Exception):
    pass


class _ReplayVram:
    """Memory behind the recorded buffers, so that mmap of them works and
    mapped results can be restored.  A plain memfd: no kernels run during a
    replay, so nothing needs numpy's view of it (and start-up is shorter)."""

    def __init__(self, size: int, name: str):
        import mmap

        from pydriver.ranges import RangeAllocator
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._alloc = RangeAllocator(0, size)

    def alloc(self, size: int):
        return self._alloc.alloc((size + 4095) & ~4095)

    def free(self, offset: int, size: int) -> None:
        self._alloc.free(offset, (size + 4095) & ~4095)

    def write(self, offset: int, data) -> None:
        self.map[offset:offset + len(data)] = data


@dataclass
class _Bo:
    vram_offset: int
    size: int


@dataclass
class _Dev:
    vram: _ReplayVram
    bos: dict = field(default_factory=dict)        # handle -> _Bo
    by_mmap: dict = field(default_factory=dict)    # recorded mmap offset -> handle


class ReplayDriver:
    def __init__(self, trace: str, *, status_path: str | None = None, loose: bool = False,
                 mm: UserMemory | None = None, vram_size: int = 4 << 30, exit_on_divergence: bool = True):
        self.reader = TraceReader(trace)
        self.calls: list[Call] = list(read_calls(self.reader))
        # A recorded call returned only after the calls other threads had
        # entered by then: replayed, it returns no earlier (happens-before),
        # or a thread waiting in the driver would hurry ahead of the thread
        # that in the recording released it.
        enters = sorted(c.t_enter for c in self.calls)
        for i, c in enumerate(self.calls):
            c.pos = i                          # its place in the replay order
            c.release = len(self.calls) if c.ret is None else bisect.bisect_left(enters, c.t_exit)
        # Mapped-buffer snapshots are memory every thread sees: they are put
        # back in the order the calls carrying them returned in the
        # recording, and a call returns only once those that returned before
        # it have put theirs back.  (A host-function thread leaving
        # NOTIFY_WAIT reads a mapped buffer another thread's SUBMIT filled.)
        carriers = sorted((c for c in self.calls if c.snaps_after and c.ret is not None), key=lambda c: c.t_exit)
        exits = [c.t_exit for c in carriers]
        for c in self.calls:
            c.snaps_needed = bisect.bisect_left(exits, c.t_exit) if c.ret is not None else len(carriers)
        for rank, c in enumerate(carriers):
            c.snap_rank = rank
        self._snaps_done = [False] * len(carriers)
        self._snaps_prefix = 0                 # carriers 0.. this have put their snapshots back
        self.status_path = status_path
        self.loose = loose
        self.mm = mm or UserMemory()
        self.vram_size = vram_size
        self.exit_on_divergence = exit_on_divergence
        self.tracer = None
        self.cond = threading.Condition()
        self.taken = [False] * len(self.calls)
        self.next = 0                         # lowest call the program has not made yet
        self.taken_count = 0
        self.consumed = 0
        self.tids: dict[int, int] = {}        # recorded tid -> this run's tid
        self.mine: dict[int, int] = {}        # this run's tid -> recorded tid
        self.devices: dict[int, _Dev] = {}
        self.fds: dict[int, int] = {}         # this run's fd -> recorded fd
        self.maps: list = []
        self.t0 = time.monotonic()
        self.diverged: str | None = None
        self._last_query: dict[int, Call] = {}

    # -- matching -----------------------------------------------------------

    def _take(self, kind: int, what: str, match) -> Call:
        """Wait for this call's turn and return the recorded call it is."""
        me = threading.get_native_id()
        deadline = time.monotonic() + WAIT_FOR_TURN_S
        with self.cond:
            while True:
                if self.diverged:
                    raise Diverged(self.diverged)
                idx = self._candidate(kind, me, match)
                if idx is not None:
                    break
                if self.next >= len(self.calls):
                    self._diverge(f"the program made a call after the trace ended: {what}")
                nxt = self.calls[self.next]
                # The next call is this thread's own and it made another: a
                # divergence.  Otherwise it is some other thread's turn: wait.
                if self.tids.get(nxt.tid) == me or time.monotonic() > deadline:
                    self._diverge(self._report(self.next, what, "the program made a different call"))
                self.cond.wait(0.05)
            call = self.calls[idx]
            if call.tid not in self.tids and me not in self.mine:
                self.tids[call.tid] = me
                self.mine[me] = call.tid
            self.taken[idx] = True
            self.taken_count += 1
            while self.next < len(self.calls) and self.taken[self.next]:
                self.next += 1
            self.cond.notify_all()
            return call

    def _candidate(self, kind: int, me: int, match) -> int | None:
        limit = min(len(self.calls), self.next + (LOOSE_WINDOW if self.loose else 1))
        for i in range(self.next, limit):
            if self.taken[i]:
                continue
            c = self.calls[i]
            owner = self.tids.get(c.tid)
            if not self.loose and (owner not in (None, me) or (owner is None and me in self.mine)):
                return None                   # another thread's turn: wait for it
            if c.kind == kind and match(c) and (owner in (None, me) or self.loose):
                return i
            if not self.loose:
                return None
        return None

    def _finish_call(self, call: Call) -> None:
        """The call returns: once the calls that in the recording were entered
        before it returned have been entered here too.  Then its mapped-buffer
        snapshots are put back - not earlier: they may hold what the
        program's own threads wrote meanwhile - after those of the calls
        that returned before it."""
        with self.cond:
            self.cond.wait_for(lambda: self.taken_count >= call.release or self.diverged, WAIT_FOR_TURN_S)
        self._restore_snapshots(call)
        with self.cond:
            self.cond.wait_for(lambda: self._snaps_prefix >= call.snaps_needed or self.diverged, WAIT_FOR_TURN_S)
            self.consumed += 1
            self.cond.notify_all()

    def _report(self, index: int, actual: str, why: str, diffs=None) -> str:
        call = self.calls[index] if index < len(self.calls) else None
        lines = [f"aishim: replay diverged at call #{call.seq if call else '?'} (record {call.index if call else '?'}, "
                 f"call {index + 1} of {len(self.calls)}): {why}",
                 f"  expected: {describe_call(call) if call else '(end of trace)'}",
                 f"  actual:   {actual}"]
        for key, want, got in diffs or []:
            lines.append(f"  field {key}: expected {_fmt(want)}, got {_fmt(got)}")
        return "\n".join(lines)

    def _diverge(self, report: str):
        if self.diverged is None:
            self.diverged = report
            self._write_status("diverged", report)
            if self.exit_on_divergence:
                if not self.status_path:          # otherwise `aishim replay` prints it
                    sys.stderr.write(report + "\n")
                    sys.stderr.flush()
                os._exit(DIVERGED_EXIT)
        raise Diverged(report)

    def _write_status(self, state: str, report: str = "") -> None:
        if self.status_path:
            elapsed = max(time.monotonic() - self.t0, 1e-9)
            write_status(self.status_path, state=state, consumed=self.consumed, total=len(self.calls),
                         rate=self.reader_records() / elapsed, report=report)

    def reader_records(self) -> int:
        """Records behind the calls replayed so far (2 per call + payloads)."""
        return sum(2 + 2 * len(c.user) + len(c.ring) + 2 * len(c.snaps_before) + 2 * len(c.snaps_after)
                   for c in self.calls[:self.next])

    def finish(self) -> None:
        """At exit: every recorded call must have been made."""
        if self.diverged:
            return
        # Exit closes every fd and unmaps everything: a trace that ends with
        # closes (the ptrace backend sees those) is matched by exiting.
        # So is a call the recorded process was still inside when it ended.
        rest = [c for i, c in enumerate(self.calls[self.next:], self.next) if not self.taken[i]]
        if rest and all(c.kind in (CallKind.CLOSE, CallKind.MUNMAP) or c.ret is None for c in rest):
            self.next = len(self.calls)
        if self.next < len(self.calls):
            self._write_status("diverged", self._report(self.next, "(the program exited)",
                                                        f"the program ended after {self.consumed} of "
                                                        f"{len(self.calls)} calls"))
            self.diverged = "ended early"
        else:
            self._write_status("match")

    # -- the Driver interface -------------------------------------------------

    def _guard(self, fn, *args) -> int:
        try:
            return fn(*args)
        except Diverged:
            return -errno.EIO
        except DriverError as e:
            return -e.errno

    def open(self, minor: int, fd: int, flags: int = 0) -> int:
        def _open():
            path = f"/dev/aicard{minor}"
            call = self._take(CallKind.OPEN, f"open({path!r})", lambda c: c.path == path)
            if call.ret == 0:
                self.fds[fd] = call.fd
                self.devices.setdefault(minor, _Dev(_ReplayVram(self.vram_size, f"replay-aicard{minor}")))
            self._finish_call(call)
            return call.ret
        return self._guard(_open)

    def close(self, fd: int) -> int:
        def _close():
            rec_fd = self.fds.pop(fd, None)
            call = self._take(CallKind.CLOSE, f"close({fd})", lambda c: c.fd == rec_fd)
            self._finish_call(call)
            return call.ret
        return self._guard(_close)

    def dup(self, oldfd: int, newfd: int) -> int:
        def _dup():
            rec_fd = self.fds.get(oldfd)
            call = self._take(CallKind.DUP, f"dup({oldfd})", lambda c: c.fd == rec_fd)
            if call.ret == 0:
                self.fds[newfd] = call.a0
            self._finish_call(call)
            return call.ret
        return self._guard(_dup)

    def ioctl(self, fd: int, req: int, buf, arg_fault: bool = False, argaddr: int = 0) -> int:
        return self._guard(self._ioctl, fd, req & 0xFFFFFFFF, buf, arg_fault)

    def _ioctl(self, fd: int, req: int, buf, arg_fault: bool) -> int:
        io = uapi.lookup(req)
        rec_fd = self.fds.get(fd)
        actual = b"" if arg_fault else bytes(buf)
        name = io.name if io else str(ioc.decode(req))
        args = io.layout.codec().unpack(actual, check_const=False) if io and len(actual) >= io.layout.sizeof() \
            and not arg_fault else None
        # Only rendered for a divergence report: a replay of small calls
        # spends most of its time here otherwise.
        what = _Lazy(lambda: f"ioctl({fd}, {name}, {_args_text(io, args) if args else actual[:32].hex()})")
        if self.loose and name == "DEV_QUERY" and args is not None:
            match = lambda c: c.req == req and c.fd == rec_fd and self._same_query(c, args)  # noqa: E731
        else:
            match = lambda c: c.req == req and c.fd == rec_fd  # noqa: E731
        try:
            call = self._take(CallKind.IOCTL, what, match)
        except Diverged:
            if self.loose and name == "DEV_QUERY" and args is not None and args.type in self._last_query:
                return self._answer_query(self._last_query[args.type], args, buf)
            raise
        index = call.pos
        if call.ret is None:
            # The recorded process ended while inside this call: so does this one.
            threading.Event().wait()
        # The inputs must be the recorded ones (user pointers aside).
        if io and args is not None:
            rec_args = io.layout.codec().unpack(call.arg_in, check_const=False)
            if actual != call.arg_in:          # the same bytes are the same inputs
                diffs = _dict_diffs(normalize.inputs(io, rec_args), normalize.inputs(io, args))
                if diffs:
                    self._diverge(self._report(index, what, "an argument differs", diffs))
            self._check_user_reads(call, index, io, rec_args, args, what)
            if call.ret >= 0:
                self._replay_user_writes(call, io, rec_args, args)
                self._track(call, io, args)
                out = io.layout.codec().unpack(call.arg_out, check_const=False) if call.arg_out else None
                if out is not None:
                    for n in io.outputs:
                        setattr(args, n, getattr(out, n))
                    io.layout.codec().pack_into(buf, 0, args)
            if name == "DEV_QUERY":
                self._last_query[args.type] = call
        elif bool(call.a2) != bool(arg_fault) or call.arg_in != actual:
            self._diverge(self._report(index, what, "the raw argument differs",
                                       [("arg", call.arg_in.hex(), actual.hex())]))
        elif call.ret >= 0 and call.arg_out and (ioc.ioc_dir(req) & ioc.READ):
            buf[:len(call.arg_out)] = call.arg_out
        self._finish_call(call)
        return call.ret

    def _same_query(self, c: Call, args) -> bool:
        rec = uapi.DevQuery.codec().unpack(c.arg_in, check_const=False)
        return rec.type == args.type

    def _answer_query(self, call: Call, args, buf) -> int:
        io = call.ioctl
        rec_args = io.layout.codec().unpack(call.arg_in, check_const=False)
        self._replay_user_writes(call, io, rec_args, args)
        out = io.layout.codec().unpack(call.arg_out, check_const=False)
        args.size = out.size
        io.layout.codec().pack_into(buf, 0, args)
        return call.ret

    # -- user memory ------------------------------------------------------------

    def _translate(self, io, rec_args, args, nested_rec, nested_cur, addr: int, size: int) -> int | None:
        """This run's address of a recorded user address: the same offset from
        the pointer (argument field, or nested in a buffer) it lies in."""
        pairs = [(getattr(rec_args, n), getattr(args, n)) for n in normalize.pointer_fields(io.name, rec_args)]
        pairs += list(zip(nested_rec, nested_cur))
        best = None
        for rec_ptr, cur_ptr in pairs:
            if rec_ptr <= addr and (best is None or rec_ptr > best[0]):
                best = (rec_ptr, cur_ptr)
        if best is None:
            return None
        return best[1] + (addr - best[0])

    def _check_user_reads(self, call, index, io, rec_args, args, what) -> None:
        reads = [u for u in call.user if u.dir == 0]
        # Only SUBMIT follows pointers nested in what it read; the other
        # recorded payloads are compared with this run's bytes in place
        # (decompressed first if they were stored compressed).
        first = [self.reader.blob(reads[0].blob)] if reads and io.name == "SUBMIT" else []
        nested_rec = normalize.nested_pointers(io.name, rec_args, first)
        cur_first = b""
        for i, u in enumerate(reads):
            nested_cur = normalize.nested_pointers(io.name, args, [cur_first]) if i else []
            addr = self._translate(io, rec_args, args, nested_rec, nested_cur, u.addr, u.size)
            if addr is None:
                continue
            try:
                got = self.mm.read(addr, u.size)
            except DriverError:
                self._diverge(self._report(index, what, f"user buffer at {addr:#x} is not readable "
                                                        f"(recorded {u.size} bytes read there)"))
            if i == 0:
                cur_first = got
            if self.reader.blob_equals(u.blob, got):
                continue                      # the common case: the same bytes
            want = self.reader.blob(u.blob)
            a = normalize.user_data(io.name, rec_args, 0, want, i)
            b = normalize.user_data(io.name, args, 0, got, i)
            if a != b:
                diffs = _dict_diffs(a, b) if isinstance(a, dict) else []
                first = next((k for k in range(min(len(want), len(got))) if want[k] != got[k]), None)
                why = f"the data read from user memory ({u.size} bytes) differs" + (
                    f", first at byte {first}" if first is not None else "")
                self._diverge(self._report(index, what, why, diffs))

    def _replay_user_writes(self, call, io, rec_args, args) -> None:
        for u in call.user:
            if u.dir != 1:
                continue
            addr = self._translate(io, rec_args, args, [], [], u.addr, u.size)
            if addr is not None:
                self.mm.write(addr, self.reader.blob(u.blob))

    # -- buffers, mappings, snapshots --------------------------------------------

    def _track(self, call, io, args) -> None:
        """Keep VRAM for recorded buffers, so mmap of them works."""
        dev = self.devices.get(call.minor)
        if dev is None:
            return
        out = io.layout.codec().unpack(call.arg_out, check_const=False) if call.arg_out else None
        if io.name == "BO_CREATE" and out is not None:
            size = (args.size + 4095) & ~4095
            off = dev.vram.alloc(size)
            if off is None:
                raise DriverError(errno.ENOMEM, "replay VRAM is full")
            dev.bos[out.handle] = _Bo(off, size)
        elif io.name == "IPC_IMPORT" and out is not None:
            # The recorded memory came from another process: this run has
            # VRAM of its own for it (mapped results are restored by SNAPs).
            off = dev.vram.alloc(out.size)
            if off is None:
                raise DriverError(errno.ENOMEM, "replay VRAM is full")
            dev.bos[out.handle] = _Bo(off, out.size)
        elif io.name == "BO_MMAP_OFFSET" and out is not None:
            dev.by_mmap[out.offset] = args.handle
        elif io.name == "BO_DESTROY":
            bo = dev.bos.pop(args.handle, None)
            if bo is not None and not any(m[2] is bo for m in self.maps):
                dev.vram.free(bo.vram_offset, bo.size)

    def _restore_snapshots(self, call) -> None:
        if not call.snaps_after or call.ret is None:
            return
        rank = call.snap_rank
        with self.cond:
            # The snapshots of calls that returned earlier go first.
            self.cond.wait_for(lambda: self._snaps_prefix >= rank or self.diverged, WAIT_FOR_TURN_S)
        for s in call.snaps_after:
            dev = self.devices.get(s.minor)
            bo = dev.bos.get(s.handle) if dev else None
            if bo is not None:
                data = self.reader.blob(s.blob)
                dev.vram.write(bo.vram_offset + s.offset, data)
        with self.cond:
            self._snaps_done[rank] = True
            while self._snaps_prefix < len(self._snaps_done) and self._snaps_done[self._snaps_prefix]:
                self._snaps_prefix += 1
            self.cond.notify_all()

    def mmap(self, fd: int, length: int, prot: int, flags: int, offset: int):
        """A mapping that works is reported by mapped(); one that the recorded
        driver refused is a call of its own here."""
        if fd in self.fds:
            for dev in self.devices.values():
                handle = dev.by_mmap.get(offset)
                if handle is not None and handle in dev.bos and flags & 1 and length <= dev.bos[handle].size:
                    return (0, dev.vram.fd, dev.bos[handle].vram_offset)

        def _refused():
            call = self._take(CallKind.MMAP, f"mmap(fd {fd}, length={length:#x}, offset={offset:#x})",
                              lambda c: c.a0 == length and c.a1 == offset)
            self._finish_call(call)
            return call.ret if call.ret < 0 else -errno.EINVAL
        return (self._guard(_refused), -1, 0)

    def mapped(self, fd: int, addr: int, length: int, offset: int) -> int:
        def _mapped():
            call = self._take(CallKind.MMAP, f"mmap(fd {fd}, length={length:#x})", lambda c: c.a0 == length)
            for dev in self.devices.values():
                handle = dev.by_mmap.get(offset)
                if handle in dev.bos:
                    self.maps.append((addr, addr + length, dev.bos[handle]))
            self._finish_call(call)
            return 0
        return self._guard(_mapped)

    def munmap(self, addr: int, length: int) -> int:
        def _munmap():
            call = self._take(CallKind.MUNMAP, f"munmap({addr:#x}, {length:#x})", lambda c: c.a0 == length)
            self.maps = [m for m in self.maps if not (m[0] < addr + length and addr < m[1])]
            self._finish_call(call)
            return 0
        return self._guard(_munmap)


class _Lazy:
    """Text made only if someone prints it."""

    def __init__(self, make):
        self.make = make

    def __str__(self) -> str:
        return self.make()


def _args_text(io, args) -> str:
    from structs import describe
    return describe.record(io.layout, args, exclude=io.pure_outputs)


def _dict_diffs(a: dict, b: dict) -> list:
    keys = dict.fromkeys([*a, *b])
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def _fmt(v) -> str:
    if isinstance(v, int) and v >= 4096:
        return hex(v)
    return repr(v)
