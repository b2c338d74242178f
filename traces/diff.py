"""`aishim diff A B`: compare two traces call by call, field by field.

Calls are aligned by their kind and request (difflib), so one inserted call
shows up as an insertion instead of shifting every later comparison; aligned
calls are compared on their normalized inputs, results, outputs and the
user data they moved (see normalize.py).  Exit status 0: equivalent."""

from __future__ import annotations

import difflib

from traces import normalize
from traces.calls import TraceInfo, decode_arg, describe_call, describe_ring, read_calls
from traces.format import CallKind
from traces.show import ring_version


def view(reader, call, info: TraceInfo, ring: bool) -> dict:
    """The normalized form of a call: what must be equal in two equivalent runs."""
    # An mmap returns an address (ASLR): only whether it worked counts.
    mapped_ok = call.kind == CallKind.MMAP and call.ret is not None and call.ret >= 0
    v = {"call": call.name, "ret": "address" if mapped_ok else call.ret}
    if call.kind == CallKind.OPEN:
        v["path"] = call.path
    elif call.kind in (CallKind.MMAP, CallKind.MUNMAP):
        v["length"] = call.a0
    io = call.ioctl
    args = decode_arg(call, call.arg_in) if io else None
    if io and args is not None:
        v["args"] = normalize.inputs(io, args)
        out = decode_arg(call, call.arg_out) if call.arg_out else None
        if out is not None and call.ret is not None and call.ret >= 0:
            v["out"] = normalize.outputs(io, out)
    elif call.kind == CallKind.IOCTL:
        v["arg"] = call.arg_in.hex()
    reads = writes = 0
    for u in call.user:
        data = reader.blob(u.blob)
        key = f"read[{reads}]" if u.dir == 0 else f"wrote[{writes}]"
        v[key] = normalize.user_data(call.name, args, u.dir, data, reads if u.dir == 0 else writes)
        if u.dir == 0:
            reads += 1
        else:
            writes += 1
    for i, s in enumerate(call.snaps_before + call.snaps_after):
        v[f"mapped[{i}]"] = normalize.user_data("", None, 0, reader.blob(s.blob))
    if ring:
        v["ring"] = [describe_ring(r, ring_version(info, r.minor, None)) for r in call.ring]
    return v


def _flatten(d, prefix=""):
    for k, val in d.items():
        key = f"{prefix}{k}"
        if isinstance(val, dict):
            yield from _flatten(val, key + ".")
        elif isinstance(val, list) and val and isinstance(val[0], dict):
            for i, item in enumerate(val):
                yield from _flatten(item, f"{key}[{i}].")
        else:
            yield key, val


def _fmt(v) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 4096:
        return hex(v)
    return repr(v) if isinstance(v, str) else str(v)


def field_diffs(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """(field path, value in a, value in b) for every field that differs."""
    fa, fb = dict(_flatten(a)), dict(_flatten(b))
    keys = dict.fromkeys([*fa, *fb])
    return [(k, fa.get(k, "<none>"), fb.get(k, "<none>")) for k in keys if fa.get(k, "<none>") != fb.get(k, "<none>")]


def diff_traces(ra, rb, out, *, ring: bool = False, limit: int = 20) -> int:
    ia, ib = TraceInfo(), TraceInfo()
    ca, cb = list(read_calls(ra, ia)), list(read_calls(rb, ib))
    keys_a = [(c.kind, c.req if c.kind == CallKind.IOCTL else 0) for c in ca]
    keys_b = [(c.kind, c.req if c.kind == CallKind.IOCTL else 0) for c in cb]
    shown = total = 0

    def emit(line: str) -> None:
        nonlocal shown
        if shown < limit:
            print(line, file=out)
        shown += 1

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, keys_a, keys_b, autojunk=False).get_opcodes():
        if tag == "equal":
            for x, y in zip(ca[i1:i2], cb[j1:j2]):
                diffs = field_diffs(view(ra, x, ia, ring), view(rb, y, ib, ring))
                for key, va, vb in diffs:
                    total += 1
                    emit(f"#{x.seq} / #{y.seq} {x.name}: {key}: {_fmt(va)} != {_fmt(vb)}")
        else:
            for x in ca[i1:i2]:
                total += 1
                emit(f"#{x.seq} only in {ra.path}: {describe_call(x)}")
            for y in cb[j1:j2]:
                total += 1
                emit(f"#{y.seq} only in {rb.path}: {describe_call(y)}")
    if shown > limit:
        print(f"... {shown - limit} more", file=out)
    if total == 0:
        print(f"equivalent: {len(ca)} calls, addresses and timestamps normalized", file=out)
        return 0
    print(f"{total} difference(s) in {len(ca)} vs {len(cb)} calls", file=out)
    return 1
