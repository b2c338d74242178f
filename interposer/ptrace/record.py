"""The ptrace front-end's events, into a trace Recorder (traces/recorder.py).

Emulation needs nothing from here: the Driver of each traced process takes
a Recorder itself (``run(..., driver_tracer=...)``) and records exactly what
it records under preload.  Passthrough has no driver: the real device
answered, and what crossed is what the tracer saw - the SyscallEvents of
hooks.py.  ``TraceHook`` turns those into the Recorder's enter/exit calls,
one Recorder per traced process, in the trace format's conventions
(pydriver/tracing.py call kinds; a0..a2 as traces/format.py documents:
ioctl a0 = argument pointer; dup a0 = new fd; mmap a0 = length, a1 = offset,
a2 = flags, req = prot; munmap a0 = length, a1 = address).

    hook = TraceHook(lambda pid, tid: Recorder(out, argv, pid=pid, tid=tid))
    status = run(argv, env, passthrough="/dev/ptmx", hook=hook)
    hook.close()

The factory gets the traced pid and a function naming the tracee thread of
the call being recorded: the Recorder must take both from its caller, not
from os.getpid() / threading.get_native_id(), which are the tracer's.
"""

from __future__ import annotations

from interposer.ptrace.hooks import Hook, SyscallEvent
from pydriver import tracing

NO_MINOR = 0xFFFF

CALLS = {"open": tracing.OPEN, "close": tracing.CLOSE, "dup": tracing.DUP, "ioctl": tracing.IOCTL,
         "mmap": tracing.MMAP, "munmap": tracing.MUNMAP}


class TraceHook(Hook):
    def __init__(self, recorder_for):
        self.recorder_for = recorder_for
        self.recorders: dict[int, object] = {}
        self._tid = 0
        self._seq: dict[int, int] = {}          # id(event) -> seq of its entry

    def _rec(self, pid: int):
        rec = self.recorders.get(pid)
        if rec is None:
            rec = self.recorders[pid] = self.recorder_for(pid, lambda: self._tid)
        return rec

    @staticmethod
    def _fields(ev: SyscallEvent) -> tuple[int, int, int, dict]:
        minor = NO_MINOR if ev.minor is None else ev.minor
        if ev.name == "ioctl":
            return minor, ev.request or 0, ev.fd, {"a0": ev.arg}
        if ev.name == "mmap":
            return minor, ev.prot, ev.fd, {"a0": ev.length, "a1": ev.offset, "a2": ev.flags & 0xFFFFFFFF}
        if ev.name == "munmap":
            return NO_MINOR, 0, -1, {"a0": ev.length, "a1": ev.addr}
        if ev.name == "dup":
            return minor, 0, ev.fd, {"a0": ev.newfd if ev.newfd is not None else 0}
        if ev.name == "open":
            return minor, ev.flags, ev.fd, {}
        return minor, 0, ev.fd, {}

    def on_entry(self, ev: SyscallEvent) -> None:
        call = CALLS.get(ev.name)
        if call is None:
            return
        self._tid = ev.tid
        minor, req, fd, extra = self._fields(ev)
        arg = ev.arg_before if ev.name == "ioctl" else None
        if ev.name == "open":
            extra["path"] = ev.path
        self._seq[id(ev)] = self._rec(ev.pid).enter(call, fd, minor, req, arg, **extra)

    def on_exit(self, ev: SyscallEvent) -> None:
        seq = self._seq.pop(id(ev), None)
        if seq is None:
            return
        self._tid = ev.tid
        minor, req, fd, extra = self._fields(ev)      # (no path at exit)
        ret = -ev.errno if ev.errno else (ev.ret or 0)
        arg = ev.arg_after if ev.name == "ioctl" else None
        self._rec(ev.pid).exit(seq, CALLS[ev.name], fd, minor, req, ret, arg, **extra)

    def close(self) -> None:
        for rec in self.recorders.values():
            rec.close()
        self.recorders.clear()
