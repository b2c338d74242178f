"""The daemon's wire protocol, declared once (`aishim serve` <-> interposer/remote.py).

A client process (the preload library's RemoteDriver) talks to the daemon
(pydriver/server.py) over a UNIX stream socket in frames.  Each request gets
exactly one answer, on the same connection, before the next request: a
connection is never shared by two calls in flight, so a client with several
threads inside the driver at once (one blocked in WAIT, another submitting)
uses several connections of the same session.

    frame     header (16 bytes: ReqHeader or AnsHeader) + body (header.length bytes)
    request   ReqHeader + the fixed body of its type + a tail:
                IOCTL  the argument, IoctlReq.size bytes as the caller's
                       ioctl() copied them in (_IOC_SIZE of the request)
                HELLO  the trace path (trace_len bytes, UTF-8) and argv
                       (argv_len bytes, NUL-separated) when recording
    answer    AnsHeader (ret: >= 0 or -errno, as the driver interface) + body:
                HELLO  HelloAns
                IOCTL  the argument after the call (size bytes) when ret >= 0
                MMAP   MmapAns when ret >= 0, and the device's VRAM memfd
                       attached with SCM_RIGHTS (AnsHeader.flags & ANS_FD)
                other  nothing

The first request on a connection must be HELLO: flags 0 starts the session
of the calling process (the daemon learns its pid from SO_PEERCRED, never
from the frame), HELLO_JOIN adds a connection to the session named by the
16-byte id a previous HELLO answered (same process only), HELLO_PROBE asks
for HelloAns and nothing else.  All integers are little-endian; pads must be
zero.  Anything else - a bad magic or version, an unknown type, a length
that does not match the type, non-zero pads, a frame cut short - is a
protocol error: the daemon logs it and closes that connection.

Example, WAIT(queue 1, fence 3, no timeout) on fd 3 as the client sends it
(32-bit little-endian words; 16 + 24 + 40 bytes):

    40000000 05000000 07000000 00000000            ReqHeader: length 0x40, IOCTL, seq 7, tid 0
    03000000 074128c0 cdab3412 fc7f0000            IoctlReq: fd 3, req 0xc0284107 (WAIT),
    00000000 28000000                                argaddr 0x7ffc1234abcd, arg_fault 0, size 40
    01000000 00000000 03000000 00000000 ffffffff   the struct aicard_wait itself
    ffffffff 00000000 00000000 00000000 00000000
"""

from __future__ import annotations

import struct

from construct import Bytes, Const, Int8ul, Int16ul, Int32sl, Int32ul, Int64ul, Pass, Struct, Switch, this

from structs import ioc
from structs.enums import WireMsg
from structs.layout import Layout

MAGIC = b"AISHIMW\0"
VERSION = 1
HEADER_SIZE = 16
SESSION_SIZE = 16            # random id of a session, answered by HELLO
HELLO_JOIN = 1 << 0          # HelloReq.flags: join the session named in HelloReq.session
HELLO_PROBE = 1 << 1         # HelloReq.flags: only ask what the daemon serves
ANS_FD = 1 << 0              # AnsHeader.flags: an fd rides along (SCM_RIGHTS)
MAX_ARG = ioc.MAX_SIZE       # an ioctl argument is at most _IOC_SIZEMASK bytes
MAX_TRACE_PATH = 4096
MAX_ARGV = 64 << 10


ReqHeader = Layout("ReqHeader", Struct(
    "length" / Int32ul,      # bytes of the body that follows
    "type" / Int8ul,         # WireMsg
    "flags" / Const(0, Int8ul),
    "pad" / Const(0, Int16ul),
    "seq" / Int32ul,         # per connection; the answer repeats it
    "tid" / Int32ul,         # calling thread (recorded in traces), 0 if not recording
))

AnsHeader = Layout("AnsHeader", Struct(
    "length" / Int32ul,      # bytes of the body that follows
    "type" / Int8ul,         # the request's WireMsg
    "flags" / Int8ul,        # ANS_FD
    "pad" / Const(0, Int16ul),
    "seq" / Int32ul,         # the request's
    "ret" / Int32sl,         # >= 0, or -errno
))

HelloReq = Layout("HelloReq", Struct(
    "magic" / Const(MAGIC),
    "version" / Int32ul,     # VERSION
    "flags" / Int32ul,       # HELLO_JOIN, HELLO_PROBE
    "session" / Bytes(SESSION_SIZE),   # HELLO_JOIN: the id to join; else zero
    "trace_len" / Int32ul,   # record the session into this path (0: no trace)
    "argv_len" / Int32ul,    # the process's argv, for the trace header
))

HelloAns = Layout("HelloAns", Struct(
    "magic" / Const(MAGIC),
    "version" / Int32ul,
    "devices" / Int32ul,     # device nodes the daemon serves: /dev/aicard0..N-1
    "server_pid" / Int32ul,
    "uapi_version" / Int32ul,    # major << 16 | minor
    "session" / Bytes(SESSION_SIZE),
))

OpenReq = Layout("OpenReq", Struct(
    "minor" / Int32ul,
    "fd" / Int32sl,          # the client's fd number for the new file
    "flags" / Int32ul,       # open() flags
    "pad" / Const(0, Int32ul),
))

CloseReq = Layout("CloseReq", Struct(
    "fd" / Int32sl,
    "pad" / Const(0, Int32ul),
))

DupReq = Layout("DupReq", Struct(
    "oldfd" / Int32sl,
    "newfd" / Int32sl,
))

IoctlReq = Layout("IoctlReq", Struct(
    "fd" / Int32sl,
    "req" / Int32ul,         # the full request number
    "argaddr" / Int64ul,     # the caller's argument pointer (traces, logs)
    "arg_fault" / Int32ul,   # 1: the argument pointer could not be read
    "size" / Int32ul,        # argument bytes in the tail, _IOC_SIZE(req)
))

MmapReq = Layout("MmapReq", Struct(
    "fd" / Int32sl,
    "prot" / Int32ul,
    "flags" / Int32ul,
    "pad" / Const(0, Int32ul),
    "length" / Int64ul,
    "offset" / Int64ul,      # the BO's mmap offset (BO_MMAP_OFFSET)
))

MmapAns = Layout("MmapAns", Struct(
    "minor" / Int32ul,       # whose VRAM the attached fd is
    "pad" / Const(0, Int32ul),
    "vram_offset" / Int64ul,     # map the attached fd at this offset
))

MappedReq = Layout("MappedReq", Struct(
    "fd" / Int32sl,
    "pad" / Const(0, Int32ul),
    "addr" / Int64ul,
    "length" / Int64ul,
    "offset" / Int64ul,
))

MunmapReq = Layout("MunmapReq", Struct(
    "addr" / Int64ul,
    "length" / Int64ul,
))

LAYOUTS: list[Layout] = [ReqHeader, AnsHeader, HelloReq, HelloAns, OpenReq, CloseReq, DupReq, IoctlReq,
                         MmapReq, MmapAns, MappedReq, MunmapReq]

# The fixed part of each request's body (None: no body).
REQUESTS: dict[WireMsg, Layout | None] = {
    WireMsg.HELLO: HelloReq, WireMsg.OPEN: OpenReq, WireMsg.CLOSE: CloseReq, WireMsg.DUP: DupReq,
    WireMsg.IOCTL: IoctlReq, WireMsg.MMAP: MmapReq, WireMsg.MAPPED: MappedReq, WireMsg.MUNMAP: MunmapReq,
    WireMsg.FINISH: None,
}

# Most tail bytes a request of each type may carry.
MAX_TAIL: dict[WireMsg, int] = {WireMsg.HELLO: MAX_TRACE_PATH + MAX_ARGV, WireMsg.IOCTL: MAX_ARG}


def fixed_size(msg: int) -> int:
    layout = REQUESTS.get(msg)
    return layout.sizeof() if layout is not None else 0


MAX_BODY = max(fixed_size(m) + MAX_TAIL.get(m, 0) for m in REQUESTS)

# A whole request as construct sees it, for decoding and tests (the hot
# paths use the fast codecs of the layouts above).
RequestFrame = Struct(
    "header" / ReqHeader.subcon,
    "body" / Switch(this.header.type, {int(m): lay.subcon for m, lay in REQUESTS.items() if lay is not None},
                    default=Pass),
    "tail" / Bytes(lambda ctx: ctx.header.length - fixed_size(ctx.header.type)),
)


def joined(*layouts: Layout) -> struct.Struct:
    """One struct.Struct for layouts laid end to end (a header and the fixed
    body after it), derived from their fast codecs: one pack, one unpack."""
    return struct.Struct("<" + "".join(lay.codec().struct.format.lstrip("<=") for lay in layouts))
