"""`aishim show --format chrome`: the Chrome Trace Event format, which
Perfetto's UI (ui.perfetto.dev) and chrome://tracing open.

One track per host thread with its device calls; one track per device queue
with each command from the moment it was written to the ring to the moment
its fence was signalled, in device time mapped onto the host clock."""

from __future__ import annotations

import json

from structs import fw
from traces.calls import TraceInfo, decode_arg, describe_call, read_calls
from traces.show import ring_version

DEVICE_PID_BASE = 1_000_000


def export(reader, out) -> None:
    info = TraceInfo()
    calls = list(read_calls(reader, info))
    t0 = min((c.t_enter for c in calls), default=0)
    events = []
    threads = set()
    for c in calls:
        threads.add((c.pid, c.tid))
        end = c.t_exit if c.ret is not None else c.t_enter
        args = {"seq": c.seq, "call": describe_call(c)}
        rec = decode_arg(c, c.arg_in) if c.ioctl else None
        if rec is not None:
            args.update({k: v if not isinstance(v, (bytes, tuple)) else str(v) for k, v in rec._asdict().items()})
        events.append({"name": c.name, "cat": c.kind_name, "ph": "X", "pid": c.pid, "tid": c.tid,
                       "ts": (c.t_enter - t0) / 1e3, "dur": max(end - c.t_enter, 0) / 1e3, "args": args})
    events += _device_events(calls, info, t0)
    for pid, tid in sorted(threads):
        events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": f"thread {tid}"}})
        events.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": f"process {pid}"}})
    json.dump({"traceEvents": events, "displayTimeUnit": "ms",
               "otherData": {"trace": reader.path, "argv": reader.argv}}, out)
    out.write("\n")


def _device_events(calls, info: TraceInfo, t0: int) -> list:
    """Commands on device queues, from ring traffic: written -> fence signalled."""
    events, started = [], {}
    named = set()
    for c in calls:
        for r in c.ring:
            dev = info.devices.get(r.minor)
            if dev is None:
                continue
            v = ring_version(info, r.minor, None)
            s = fw.FwStructs(v)
            etype = int.from_bytes(r.data[:2], "little")
            names, layouts = (s.cmd_names, s.commands) if r.dir == 0 else (s.comp_names, s.completions)
            name = names.get(etype)
            if name is None or len(r.data) < layouts[name].sizeof():
                continue
            rec = layouts[name].codec().unpack(r.data, check_const=False)
            ts_ns = dev.boot_t_ns + r.ticks * 1_000_000_000 // dev.freq
            key = (r.minor, rec.asid, rec.queue, rec.seqno)
            if r.dir == 0 and name != "FENCE_WRITE":
                started[key] = (name, ts_ns, rec)
            elif r.dir == 1 and key in started:
                cname, start, cmd = started.pop(key)
                pid, tid = DEVICE_PID_BASE + r.minor, rec.asid * 1000 + rec.queue
                if (pid, tid) not in named:
                    named.add((pid, tid))
                    events.append({"name": "process_name", "ph": "M", "pid": pid,
                                   "args": {"name": f"aicard{r.minor} (fw {fw.version_str(v)})"}})
                    events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                                   "args": {"name": f"ctx {rec.asid} queue {rec.queue}"}})
                status = getattr(rec, "status", 0)
                events.append({"name": cname, "cat": "device", "ph": "X", "pid": pid, "tid": tid,
                               "ts": (start - t0) / 1e3, "dur": max(ts_ns - start, 0) / 1e3,
                               "args": {"seqno": rec.seqno, "status": status, "fw": fw.version_str(v),
                                        **{k: val for k, val in cmd._asdict().items()
                                           if isinstance(val, int) and k not in ("type", "entry_size")}}})
    return events
