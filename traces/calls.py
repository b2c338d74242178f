"""Reassemble a trace's records into calls: each call's entry and exit, the
user buffers it moved, the ring entries it produced, and the mapped-memory
snapshots around it.  Shared by show, diff, replay and the timeline."""

from __future__ import annotations

from dataclasses import dataclass, field

from structs import describe, fw, ioc, uapi
from traces import format as tf
from traces.reader import TraceReader

CALL_NAMES = tf.CallKind.NAMES


@dataclass
class UserXfer:
    dir: int             # 0 read from user, 1 written to user
    addr: int
    size: int
    blob: int


@dataclass
class RingEntry:
    minor: int
    dir: int             # 0 command, 1 completion
    offset: int
    ticks: int
    data: bytes


@dataclass
class SnapRec:
    point: int
    minor: int
    handle: int
    offset: int
    size: int
    blob: int


@dataclass
class Call:
    seq: int
    index: int                       # record index of the entry
    kind: int
    pid: int
    tid: int
    fd: int
    minor: int
    req: int
    t_enter: int
    arg_in: bytes = b""
    path: str = ""
    a0: int = 0
    a1: int = 0
    a2: int = 0
    ret: int | None = None           # None: the call never returned (crash)
    t_exit: int = 0
    arg_out: bytes = b""
    user: list = field(default_factory=list)
    ring: list = field(default_factory=list)
    snaps_before: list = field(default_factory=list)
    snaps_after: list = field(default_factory=list)

    @property
    def kind_name(self) -> str:
        return CALL_NAMES.get(self.kind, str(self.kind))

    @property
    def ioctl(self) -> uapi.Ioctl | None:
        return uapi.lookup(self.req) if self.kind == tf.CallKind.IOCTL else None

    @property
    def name(self) -> str:
        """SUBMIT, COPY...: the ioctl name, or the call kind."""
        if self.kind != tf.CallKind.IOCTL:
            return self.kind_name
        io = self.ioctl
        return io.name if io else f"ioctl {ioc.decode(self.req)}"

    @property
    def errno(self) -> int:
        return -self.ret if self.ret is not None and self.ret < 0 else 0


@dataclass
class TraceInfo:
    devices: dict = field(default_factory=dict)     # minor -> DEVICE record fields
    ended: bool = False
    truncated: int | None = None
    execs: list = field(default_factory=list)


def read_calls(reader: TraceReader, info: TraceInfo | None = None, progress=None):
    """Yield Call objects in the order they were *entered* (seq order),
    each once its exit (or the end of the trace) has been seen."""
    info = info if info is not None else TraceInfo()
    open_calls: dict[int, Call] = {}
    pending_snaps: list = []
    last_exited: Call | None = None
    done: list[Call] = []

    def flush(force=False):
        # Calls are yielded in seq order: one that exits early waits for
        # every call that entered before it.
        done.sort(key=lambda c: c.seq)
        while done and (force or not open_calls or done[0].seq < min(open_calls)):
            yield done.pop(0)

    for rec in reader.records():
        if progress and rec.index % 4096 == 0:
            progress(rec.offset)
        t, f = rec.type, rec.f
        if t == tf.RecordType.CALL:
            if f.phase == 0:
                c = Call(f.seq, rec.index, f.call, f.pid, f.tid, f.fd, f.minor, f.req, f.t_ns,
                         a0=f.a0, a1=f.a1, a2=f.a2)
                if f.call == tf.CallKind.OPEN:
                    c.path = bytes(rec.tail).decode("utf-8", "replace")
                else:
                    c.arg_in = bytes(rec.tail)
                c.snaps_before, pending_snaps = pending_snaps, []
                open_calls[f.seq] = c
            else:
                c = open_calls.pop(f.seq, None)
                if c is None:
                    raise tf.TraceFormatError(f"{reader.path}: exit of call {f.seq} that never entered",
                                              rec.offset, rec.index)
                c.ret, c.t_exit, c.arg_out = f.ret, f.t_ns, bytes(rec.tail)
                c.a0, c.a1, c.a2 = f.a0, f.a1, f.a2
                done.append(c)
                last_exited = c
                yield from flush()
        elif t == tf.RecordType.USER:
            target = _owner(open_calls, f.seq, last_exited)
            if target is not None:
                target.user.append(UserXfer(f.dir, f.addr, f.size, f.blob))
        elif t == tf.RecordType.RING:
            target = _owner(open_calls, f.seq, last_exited)
            if target is not None:
                target.ring.append(RingEntry(f.minor, f.dir, f.offset, f.ticks, bytes(rec.tail)))
        elif t == tf.RecordType.SNAP:
            s = SnapRec(f.point, f.minor, f.handle, f.offset, f.size, f.blob)
            # Taken after a sync (point 1): belongs to that call (named by
            # seq; older traces: the call that had just returned); before a
            # submit (point 0): to the next call.
            owner = _owner(open_calls, f.seq, last_exited) if f.point == 1 else None
            if f.point == 1 and (owner or last_exited) is not None:
                (owner or last_exited).snaps_after.append(s)
            else:
                pending_snaps.append(s)
        elif t == tf.RecordType.DEVICE:
            info.devices[f.minor] = f
        elif t == tf.RecordType.EXEC:
            info.execs.append(f)
    # The trace ended with calls still inside: their process died there.
    done.extend(open_calls.values())
    open_calls.clear()
    yield from flush(force=True)
    info.ended = reader.ended
    info.truncated = reader.truncated


def _owner(open_calls: dict, seq: int, last: Call | None) -> Call | None:
    if seq in open_calls:
        return open_calls[seq]
    if last is not None and last.seq == seq:
        return last
    return None


# -- decoding for display ------------------------------------------------------

def decode_arg(call: Call, raw: bytes):
    io = call.ioctl
    if io is None or len(raw) < io.layout.sizeof():
        return None
    return io.layout.codec().unpack(raw, check_const=False)


def describe_call(call: Call) -> str:
    """One strace-like line."""
    if call.kind == tf.CallKind.OPEN:
        s = f"open({call.path!r}) = {call.fd if call.ret == 0 else _ret(call)}"
    elif call.kind == tf.CallKind.CLOSE:
        s = f"close({call.fd}) = {_ret(call)}"
    elif call.kind == tf.CallKind.DUP:
        s = f"dup({call.fd}) = {_ret(call, call.a0)}"
    elif call.kind == tf.CallKind.MMAP:
        s = f"mmap(fd {call.fd}, length={call.a0:#x}, offset={call.a1:#x}) = " + (
            f"{call.ret:#x}" if call.ret is not None and call.ret >= 0 else _ret(call))
    elif call.kind == tf.CallKind.MUNMAP:
        s = f"munmap({call.a1:#x}, {call.a0:#x}) = {_ret(call)}"
    else:
        io = call.ioctl
        if io is None:
            # A request nobody declared here: its generic _IOC decoding (or its
            # name, for the tty requests from before _IOC), and the raw bytes.
            legacy = ioc.legacy_name(call.req)
            what = f"{legacy} /* {call.req:#06x} */" if legacy else f"{call.req:#010x} /* {ioc.decode(call.req)} */"
            size, direction = ioc.arg_size(call.req)
            shown_in = call.arg_in[:32].hex() if direction & ioc.WRITE or not size else f"<{size} bytes out>"
            s = f"ioctl({call.fd}, {what}, {shown_in or 'NULL'}) = {_ret(call)}"
            if call.ret is not None and call.ret >= 0 and direction & ioc.READ and call.arg_out:
                s += f" => {call.arg_out[:40].hex()}"
        else:
            rec = decode_arg(call, call.arg_in)
            inputs = describe.record(io.layout, rec, exclude=io.pure_outputs) if rec else "<arg unreadable>"
            s = f"ioctl({call.fd}, {io.name}, {inputs}) = {_ret(call)}"
            if call.ret is not None and call.ret >= 0 and io.outputs and call.arg_out:
                out = decode_arg(call, call.arg_out)
                if out is not None:
                    s += f" => {describe.record(io.layout, out, io.outputs)}"
    return s


def _ret(call: Call, value=None) -> str:
    import errno as errno_mod
    if call.ret is None:
        return "? (never returned)"
    if call.ret < 0:
        return f"-1 {errno_mod.errorcode.get(-call.ret, -call.ret)}"
    return str(call.ret if value is None else call.ret)


def describe_ring(entry: RingEntry, version) -> str:
    """A ring entry decoded with the layouts of firmware version."""
    s = fw.FwStructs(version)
    etype = int.from_bytes(entry.data[:2], "little") if len(entry.data) >= 2 else -1
    names, layouts = (s.cmd_names, s.commands) if entry.dir == 0 else (s.comp_names, s.completions)
    name = names.get(etype)
    where = f"{'cmd' if entry.dir == 0 else 'evt'}@{entry.offset:#06x}"
    if name is None or len(entry.data) < layouts[name].sizeof():
        return f"{where} unknown type {etype:#x}: {entry.data[:32].hex()}"
    layout = layouts[name]
    rec = layout.codec().unpack(entry.data, check_const=False)
    skip = ("type", "entry_size", "flags", "unk_c", "unk_18", "unk_1c", "unk_20")
    text = describe.record(layout, rec, [f.name for f in layout.fields() if f.name not in skip])
    return f"{where} {name} {text}"
