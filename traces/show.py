"""`aishim show`: a trace as text (strace-like, struct fields named, payloads
summarized, the firmware commands of each submission decoded), as JSON, or
as a Chrome/Perfetto timeline."""

from __future__ import annotations

import hashlib
import json
import sys

from structs import describe, fw
from traces import format as tf
from traces.calls import TraceInfo, decode_arg, describe_call, describe_ring, read_calls
from traces.progress import Progress
from traces.reader import TraceReader


def _head(data: bytes, n: int = 16) -> str:
    return " ".join(f"{b:02x}" for b in data[:n]) + (" ..." if len(data) > n else "")


def payload_summary(reader: TraceReader, size: int, blob: int) -> str:
    data = reader.blob(blob)
    digest = hashlib.sha1(data).hexdigest()[:10]
    return f"{size} B sha1 {digest} [{_head(data)}]"


class Filter:
    """--filter NAME[,NAME...] keeps calls whose ioctl or call name matches;
    pid=N keeps one process."""

    def __init__(self, spec: str | None):
        self.names, self.pids = set(), set()
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            if part.startswith("pid="):
                self.pids.add(int(part[4:]))
            else:
                self.names.add(part.upper())

    def __call__(self, call) -> bool:
        if self.pids and call.pid not in self.pids:
            return False
        return not self.names or call.name.upper() in self.names or call.kind_name.upper() in self.names


def warnings(reader: TraceReader, info: TraceInfo | None = None) -> list[str]:
    out = []
    if not reader.schema_matches:
        changes = reader.schema_changes()
        out.append("trace recorded with different struct layouts; changed since: "
                   + (", ".join(changes[:12]) + (" ..." if len(changes) > 12 else "") if changes else "(unknown)")
                   + " - those are decoded with the current layouts")
    if info is not None:
        if info.truncated is not None:
            out.append(f"trace truncated at byte {info.truncated:#x}: the recorded process was killed "
                       f"while writing; every earlier record is intact")
        elif not info.ended:
            out.append("no END record: the recorded process did not exit normally")
    return out


def ring_version(info: TraceInfo, minor: int, override):
    if override:
        return override
    dev = info.devices.get(minor)
    return fw.unpack_version(dev.drv_version) if dev else fw.DEFAULT


def show_text(reader: TraceReader, out, *, flt: Filter, fw_override=None, ring: bool = True) -> None:
    info = TraceInfo()
    t0 = None
    progress = Progress(len(reader.data), "show")
    for call in read_calls(reader, info, progress=progress.update):
        if t0 is None:
            t0 = call.t_enter
        if not flt(call):
            continue
        ms = (call.t_enter - t0) / 1e6
        print(f"#{call.seq:<5} {ms:10.3f}ms [{call.pid}:{call.tid}] {describe_call(call)}", file=out)
        for s in call.snaps_before:
            print(f"        mapped BO {s.handle} +{s.offset:#x}: {payload_summary(reader, s.size, s.blob)} "
                  f"(host writes before submit)", file=out)
        for u in call.user:
            verb = "read from" if u.dir == 0 else "wrote to"
            print(f"        {verb} user {u.addr:#x}: {payload_summary(reader, u.size, u.blob)}", file=out)
        if ring:
            for r in call.ring:
                v = ring_version(info, r.minor, fw_override)
                print(f"        aicard{r.minor} fw{fw.version_str(v)} {describe_ring(r, v)}", file=out)
        for s in call.snaps_after:
            print(f"        mapped BO {s.handle} +{s.offset:#x}: {payload_summary(reader, s.size, s.blob)} "
                  f"(after sync)", file=out)
    progress.done()
    for w in warnings(reader, info):
        print(f"aishim: warning: {w}", file=sys.stderr)


def call_json(reader: TraceReader, info: TraceInfo, call, fw_override=None) -> dict:
    io = call.ioctl
    d = {"seq": call.seq, "record": call.index, "t_ns": call.t_enter, "t_exit_ns": call.t_exit,
         "pid": call.pid, "tid": call.tid, "call": call.kind_name, "name": call.name, "fd": call.fd,
         "minor": call.minor if call.minor != 0xFFFF else None, "ret": call.ret, "errno": call.errno}
    if call.kind == tf.CallKind.OPEN:
        d["path"] = call.path
    if call.kind == tf.CallKind.IOCTL:
        d["request"] = call.req
        if io:
            rec_in = decode_arg(call, call.arg_in)
            d["args"] = {k: _plain(v) for k, v in rec_in._asdict().items()} if rec_in else None
            rec_out = decode_arg(call, call.arg_out) if call.arg_out else None
            d["out"] = {k: _plain(getattr(rec_out, k)) for k in io.outputs} if rec_out else None
        else:
            d["arg_hex"] = call.arg_in.hex()
            d["arg_out_hex"] = call.arg_out.hex()
    if call.kind in (tf.CallKind.MMAP, tf.CallKind.MUNMAP):
        d.update(length=call.a0, offset=call.a1 if call.kind == tf.CallKind.MMAP else None,
                 address=call.ret if call.kind == tf.CallKind.MMAP else call.a1)
    d["user"] = [{"dir": "read" if u.dir == 0 else "write", "addr": u.addr, "size": u.size,
                  "sha1": hashlib.sha1(reader.blob(u.blob)).hexdigest()} for u in call.user]
    d["ring"] = []
    for r in call.ring:
        v = ring_version(info, r.minor, fw_override)
        d["ring"].append({"minor": r.minor, "dir": "cmd" if r.dir == 0 else "evt", "offset": r.offset,
                          "fw": fw.version_str(v), "text": describe_ring(r, v)})
    return d


def _plain(v):
    if isinstance(v, (bytes, bytearray)):
        return describe.value("name", v) if v[:1].isalpha() else v.hex()
    if isinstance(v, tuple):
        return list(v)
    return v


def show_json(reader: TraceReader, out, *, flt: Filter, fw_override=None) -> None:
    info = TraceInfo()
    calls = [call_json(reader, info, c, fw_override) for c in read_calls(reader, info) if flt(c)]
    doc = {"trace": reader.path, "argv": reader.argv, "pid": reader.header.pid,
           "schema_matches": reader.schema_matches,
           "devices": {m: {"fw": fw.version_str(fw.unpack_version(d.fw_version)),
                           "driver_fw": fw.version_str(fw.unpack_version(d.drv_version))}
                       for m, d in info.devices.items()},
           "ended": info.ended, "truncated_at": info.truncated, "warnings": warnings(reader, info),
           "calls": calls}
    json.dump(doc, out, indent=1)
    out.write("\n")
