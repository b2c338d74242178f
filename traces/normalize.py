"""What may differ between two runs of the same program, and is not a
difference: user-space addresses (ASLR, heap), timestamps.  Handles, fences
and device addresses are deterministic (the driver allocates them in order)
and are compared.

Used by `aishim diff` and by replay to compare calls field by field."""

from __future__ import annotations

import hashlib

from structs import uapi
from structs.enums import CopyKind, QueryType

# Fields that hold user-space pointers, per request (COPY depends on kind).
_POINTERS = {"DEV_QUERY": ("pointer",), "SUBMIT": ("cmds",), "MODULE_LOAD": ("image",),
             "PRINTF_READ": ("pointer",)}
# Outputs that vary from run to run.
_NOISE = {"EVENT_QUERY": ("timestamp",), "IPC_EXPORT": ("token",)}
# Inputs that vary from run to run (random tokens handed over by another process).
_RANDOM_INPUTS = {"IPC_IMPORT": ("token",)}


def pointer_fields(name: str, rec) -> tuple:
    if name == "COPY":
        # A kind the driver does not know: either side may be a user pointer.
        return {CopyKind.HTOD: ("src",), CopyKind.DTOH: ("dst",), CopyKind.DTOD: ()}.get(rec.kind, ("src", "dst"))
    return _POINTERS.get(name, ())


def inputs(io: uapi.Ioctl, rec) -> dict:
    skip = set(io.pure_outputs) | set(pointer_fields(io.name, rec)) | set(_RANDOM_INPUTS.get(io.name, ()))
    return {f.name: _plain(getattr(rec, f.name)) for f in io.layout.fields()
            if f.name not in skip and not f.is_const}


def outputs(io: uapi.Ioctl, rec) -> dict:
    noise = _NOISE.get(io.name, ())
    return {n: _plain(getattr(rec, n)) for n in io.outputs if n not in noise}


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


_ANSWERS = {QueryType.DEVICE_INFO: uapi.DeviceInfo, QueryType.MEM_INFO: uapi.MemInfo, QueryType.CLOCK: uapi.Clock}
_CMDS = {1: uapi.CmdLaunch, 2: uapi.CmdEvent, 3: uapi.CmdEvent, 4: uapi.CmdEvent, 5: uapi.CmdMembar,
         6: uapi.CmdNotify, 7: uapi.CmdTransformer}


def user_data(name: str, args, direction: int, data: bytes, index: int = 0):
    """A comparable form of a user buffer the driver moved during a call:
    decoded fields where the layout is known (so a diff can name the field),
    a content hash otherwise."""
    if name == "DEV_QUERY" and direction == 1 and args is not None and args.type in _ANSWERS:
        layout = _ANSWERS[args.type]
        full = data.ljust(layout.sizeof(), b"\0")[:layout.sizeof()]
        rec = layout.codec().unpack(full, check_const=False)
        d = {f.name: _plain(getattr(rec, f.name)) for f in layout.fields() if not f.is_const}
        if args.type == QueryType.CLOCK:
            d.pop("timestamp")
        return {"answer": layout.name, **d}
    if name == "SUBMIT" and direction == 0 and index == 0 and args is not None:
        return {"commands": submit_commands(data, args.cmd_stride)}
    return {"size": len(data), "sha1": hashlib.sha1(data).hexdigest()}


def submit_commands(data: bytes, stride: int) -> list:
    """SUBMIT's command array, decoded, without the user pointers inside."""
    out = []
    for i in range(0, len(data) - stride + 1, stride) if stride else ():
        raw = data[i:i + stride]
        layout = _CMDS.get(int.from_bytes(raw[:4], "little"))
        if layout is None or len(raw) < layout.sizeof():
            out.append({"raw": raw.hex()})
            continue
        rec = layout.codec().unpack(raw, check_const=False)
        d = {f.name: _plain(getattr(rec, f.name)) for f in layout.fields() if not f.is_const}
        d.pop("params", None)
        out.append(d)
    return out


def nested_pointers(name: str, args, user_reads: list[bytes]) -> list[int]:
    """User pointers found inside buffers read during the call (SUBMIT's
    launch parameters), in the order the driver followed them."""
    if name != "SUBMIT" or not user_reads or args is None:
        return []
    ptrs = []
    data, stride = user_reads[0], args.cmd_stride
    for i in range(0, len(data) - stride + 1, stride) if stride else ():
        raw = data[i:i + stride]
        if int.from_bytes(raw[:4], "little") == 1 and len(raw) >= uapi.CmdLaunch.sizeof():
            rec = uapi.CmdLaunch.codec().unpack(raw, check_const=False)
            if rec.params_size:
                ptrs.append(rec.params)
    return ptrs
