"""The .aitrace file format, declared once with construct.

    file    = FileHeader, schema (zlib JSON, header.schema_size bytes), Record*
    Record  = RecordHeader (12 bytes) + payload (RecordHeader.length bytes)
    payload = the fixed part of the record type, then a variable tail

Records are appended with one write() each, so a process killed at any
point leaves every earlier record intact; the reader reports an incomplete
last record as truncation.  Every record carries a CRC32 of its type and
payload, so a flipped byte is reported at its offset instead of decoded
into nonsense.  Big payloads (user buffers, mapped-memory snapshots) are
BLOB records, zlib-compressed when that pays and is cheap (traces/writer.py
says when), written once per content (deduplicated by size and CRC, confirmed
by comparing the bytes), and referenced by id.

The header carries the UAPI version, the firmware version, and a hash of the
*schema*: every layout of structs/ plus the record layouts below.  The
schema itself rides along (compressed), so a trace read with different
layouts can say exactly which structs changed.
"""

from __future__ import annotations

import hashlib
import json
import zlib

from construct import Bytes, Const, Int8ul, Int16ul, Int32sl, Int32ul, Int64sl, Int64ul, Struct

from structs import fw, uapi
from structs.layout import Layout

MAGIC = b"AITRACE\0"
# 2: a BLOB's id is its number in the trace (1 had a BLAKE2 of the content)
# and big payloads are stored, not compressed; the reader takes both.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class TraceFormatError(Exception):
    """A trace that cannot be read as such: names the byte offset and record."""

    def __init__(self, message: str, offset: int | None = None, index: int | None = None):
        where = []
        if offset is not None:
            where.append(f"byte offset {offset:#x}")
        if index is not None:
            where.append(f"record {index}")
        super().__init__(f"{message}" + (f" (at {', '.join(where)})" if where else ""))
        self.offset = offset
        self.index = index


FileHeader = Layout("FileHeader", Struct(
    "magic" / Const(MAGIC),
    "format_version" / Int16ul,
    "flags" / Int16ul,
    "uapi_version" / Int32ul,       # major << 16 | minor
    "fw_version" / Int32ul,         # firmware of device 0 when recording began (per device: DEVICE)
    "pid" / Int32ul,                # the recorded process
    "t_start_ns" / Int64ul,         # CLOCK_REALTIME at the start
    "schema_hash" / Bytes(32),      # sha256 of the schema JSON
    "schema_size" / Int32ul,        # bytes of zlib-compressed schema JSON after the header
    "argv_size" / Int32ul,          # bytes of NUL-separated argv after the schema
))

RecordHeader = Layout("RecordHeader", Struct(
    "length" / Int32ul,             # payload bytes
    "type" / Int8ul,                # RecordType
    "flags" / Int8ul,
    "reserved" / Const(0, Int16ul),
    "crc" / Int32ul,                # crc32 of type byte + payload
))
MAX_RECORD = 1 << 30


class RecordType:
    CALL = 1
    USER = 2
    BLOB = 3
    RING = 4
    EXEC = 5
    SNAP = 6
    DEVICE = 7
    END = 8


class CallKind:
    OPEN, CLOSE, DUP, IOCTL, MMAP, MUNMAP = 1, 2, 3, 4, 5, 6
    NAMES = {1: "open", 2: "close", 3: "dup", 4: "ioctl", 5: "mmap", 6: "munmap"}


# Each call is two records: phase 0 at entry (inputs), phase 1 at exit
# (outputs), with the same seq.  The tail is the argument bytes (ioctl) or
# the path (open).
Call = Layout("Call", Struct(
    "seq" / Int64ul,                # one global order across threads
    "t_ns" / Int64ul,               # CLOCK_MONOTONIC
    "pid" / Int32ul,
    "tid" / Int32ul,
    "phase" / Int8ul,               # 0 entry, 1 exit
    "call" / Int8ul,                # CallKind
    "minor" / Int16ul,              # device, 0xffff if unknown
    "fd" / Int32sl,
    "req" / Int32ul,                # ioctl request; open flags; mmap prot
    "ret" / Int64sl,                # exit: >= 0 or -errno
    "a0" / Int64ul,                 # ioctl: arg pointer; dup: new fd; mmap/munmap: length
    "a1" / Int64ul,                 # mmap: offset; munmap/mapped: address
    "a2" / Int64ul,                 # mmap: flags
))

# A user buffer the driver read (dir 0) or wrote (dir 1) during call seq.
User = Layout("User", Struct(
    "seq" / Int64ul,
    "dir" / Int8ul,
    "pad" / Const(b"\0" * 7),
    "addr" / Int64ul,
    "size" / Int64ul,
    "blob" / Int64ul,               # id of the BLOB holding the bytes
))

Blob = Layout("Blob", Struct(
    "id" / Int64ul,                 # 1, 2, ...: unique in the trace (USER and SNAP refer to it)
    "raw_size" / Int64ul,
    "codec" / Int8ul,               # 0 stored, 1 zlib, 2 zlib in chunks (u32 n, n x u32 size, streams)
    "pad" / Const(b"\0" * 7),
))

# A firmware ring entry: a command as written (dir 0) or a completion as
# read (dir 1), during call seq; tail = the entry's bytes.
Ring = Layout("Ring", Struct(
    "seq" / Int64ul,
    "t_ns" / Int64ul,
    "ticks" / Int64ul,              # device clock
    "minor" / Int16ul,
    "dir" / Int8ul,
    "pad" / Const(0, Int8ul),
    "offset" / Int32ul,             # in the ring's data area
))

# A command the firmware executed, in device time: the timeline's source.
Exec = Layout("Exec", Struct(
    "minor" / Int16ul,
    "pad" / Const(0, Int16ul),
    "asid" / Int32ul,
    "queue" / Int32ul,
    "status" / Int32ul,
    "seqno" / Int64ul,
    "start" / Int64ul,              # ticks
    "end" / Int64ul,
    "name" / Bytes(16),
))

# Contents of a host-mapped buffer that changed since the last snapshot,
# taken at a submit (point 0) or a sync (point 1) during call seq.
Snap = Layout("Snap", Struct(
    "seq" / Int64ul,
    "point" / Int8ul,
    "pad" / Const(b"\0" * 3),
    "minor" / Int32ul,
    "handle" / Int32ul,
    "pad2" / Const(0, Int32ul),
    "offset" / Int64ul,             # into the buffer
    "size" / Int64ul,
    "blob" / Int64ul,
))

Device = Layout("Device", Struct(
    "minor" / Int16ul,
    "pad" / Const(0, Int16ul),
    "fw_version" / Int32ul,         # what the device runs
    "drv_version" / Int32ul,        # layouts the driver used
    "pad2" / Const(0, Int32ul),
    "vram_size" / Int64ul,
    "freq" / Int64ul,
    "boot_t_ns" / Int64ul,          # CLOCK_MONOTONIC when device time was 0
))

End = Layout("End", Struct(
    "records" / Int64ul,
    "calls" / Int64ul,
    "t_ns" / Int64ul,
))

PAYLOADS = {RecordType.CALL: Call, RecordType.USER: User, RecordType.BLOB: Blob, RecordType.RING: Ring,
            RecordType.EXEC: Exec, RecordType.SNAP: Snap, RecordType.DEVICE: Device, RecordType.END: End}
TYPE_NAMES = {v: k for k, v in vars(RecordType).items() if isinstance(v, int)}


# -- the schema ----------------------------------------------------------------

def _table(layout: Layout) -> list:
    return [[f.name, f.offset, f.size, f.ctype] for f in layout.fields()]


def schema() -> dict:
    """Every layout this build decodes with, as plain data."""
    out = {"uapi": {lay.name: _table(lay) for lay in uapi.LAYOUTS},
           "ioctls": {io.name: io.request for io in uapi.IOCTLS},
           "trace": {lay.name: _table(lay) for lay in [FileHeader, RecordHeader, *PAYLOADS.values()]},
           "firmware": {}}
    for v in fw.VERSIONS:
        s = fw.FwStructs(v)
        out["firmware"][fw.version_str(v)] = {
            **{name: _table(decl.layout(v)) for name, decl in fw.ALL.items() if decl.exists_in(v)},
            "cmd_ids": s.cmd_ids, "comp_ids": s.comp_ids}
    return out


def schema_bytes(s: dict | None = None) -> bytes:
    return json.dumps(schema() if s is None else s, sort_keys=True, separators=(",", ":")).encode()


def schema_hash(s: dict | None = None) -> bytes:
    return hashlib.sha256(schema_bytes(s)).digest()


def schema_changes(old: dict, new: dict) -> list[str]:
    """Names of the layouts that differ between two schemas ('firmware 2.1 LaunchCmd')."""
    changed = []
    for section in ("uapi", "trace", "ioctls"):
        a, b = old.get(section, {}), new.get(section, {})
        changed += [f"{section} {k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    fa, fb = old.get("firmware", {}), new.get("firmware", {})
    for v in sorted(set(fa) | set(fb)):
        a, b = fa.get(v, {}), fb.get(v, {})
        changed += [f"firmware {v} {k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return changed


def crc(rtype: int, payload) -> int:
    return zlib.crc32(payload, zlib.crc32(bytes([rtype])))
