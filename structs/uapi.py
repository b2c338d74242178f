"""The UAPI ioctl structures, declared once (mirrors umd/include/aicard_uapi.h).

The C header is what the runtime compiles against; these declarations are what
the driver, the recorder and the decoders use.  tests/test_uapi_header.py
compiles a C program that prints every sizeof/offsetof and every request
number from the header and checks them against this file, so the two cannot
drift apart silently.  Field names are the C member names; pads and reserved
fields are ``Const`` zero, so non-zero bytes there are refused (EINVAL).
"""

from __future__ import annotations

from dataclasses import dataclass

from construct import Array, Bytes, Const, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from structs import ioc
from structs.layout import Layout

UAPI_VERSION = (1, 1)   # 1.1: IPC_EXPORT, IPC_IMPORT
IOCTL_TYPE = ord("A")
DEV_PREFIX = "/dev/aicard"
MAX_DEVICES = 16
PAGE_SIZE = 4096
CMD_SIZE = 64
SUBMIT_MAX_CMDS = 4096
TIMEOUT_INFINITE = (1 << 64) - 1
MODULE_MAX_SIZE = 64 << 20
MAX_PARAMS = 32
NAME_LEN = 64
CAP_PRINTF = 1 << 0
CAP_NOTIFY = 1 << 1
CAP_TRANSFORMER = 1 << 2
CAP_FENCE_RESET = 1 << 3
TRANSFORMER_CAUSAL = 1 << 0
TRANSFORMER_MAX_DIM = 65536
TRANSFORMER_MAX_SCORES = 1 << 24
COPY_SYNC = 1 << 0
IPC_TOKEN_SIZE = 32


def _pad32(name: str = "pad"):
    return name / Const(0, Int32ul)


DevQuery = Layout("DevQuery", Struct(
    "type" / Int32ul,       # enums.QueryType
    "size" / Int32ul,       # in: bytes at pointer; out: full answer size
    "pointer" / Int64ul,    # user buffer or 0 (size only)
), c_name="aicard_dev_query")

DeviceInfo = Layout("DeviceInfo", Struct(
    "vendor_id" / Int32ul,
    "device_id" / Int32ul,
    "uapi_version" / Int32ul,
    "fw_version" / Int32ul,          # major << 16 | minor
    "vram_size" / Int64ul,
    "core_count" / Int32ul,
    "warp_size" / Int32ul,
    "max_threads_per_block" / Int32ul,
    "max_shared_per_block" / Int32ul,
    "max_grid_dim" / Array(3, Int32ul),
    "max_block_dim" / Array(3, Int32ul),
    "timestamp_freq" / Int64ul,
    "minor" / Int32ul,
    "caps" / Int32ul,
    "name" / Bytes(32),
), c_name="aicard_device_info")

MemInfo = Layout("MemInfo", Struct(
    "vram_size" / Int64ul,
    "vram_used" / Int64ul,
    "ctx_used" / Int64ul,
    "ctx_bo_count" / Int32ul,
    _pad32(),
), c_name="aicard_mem_info")

Clock = Layout("Clock", Struct(
    "timestamp" / Int64ul,
    "freq" / Int64ul,
), c_name="aicard_clock")

BoCreate = Layout("BoCreate", Struct(
    "size" / Int64ul,
    "flags" / Int32ul,
    "handle" / Int32ul,     # out
    "gpu_va" / Int64ul,     # out
), c_name="aicard_bo_create")

BoDestroy = Layout("BoDestroy", Struct(
    "handle" / Int32ul,
    _pad32(),
), c_name="aicard_bo_destroy")

BoMmapOffset = Layout("BoMmapOffset", Struct(
    "handle" / Int32ul,
    _pad32(),
    "offset" / Int64ul,     # out
), c_name="aicard_bo_mmap_offset")

QueueCreate = Layout("QueueCreate", Struct(
    "flags" / Int32ul,
    "priority" / Int32ul,
    "queue_id" / Int32ul,   # out
    _pad32(),
), c_name="aicard_queue_create")

QueueDestroy = Layout("QueueDestroy", Struct(
    "queue_id" / Int32ul,
    _pad32(),
), c_name="aicard_queue_destroy")

CmdLaunch = Layout("CmdLaunch", Struct(
    "type" / Int32ul,       # CmdType.LAUNCH
    "flags" / Int32ul,
    "module" / Int32ul,
    "function" / Int32ul,
    "grid" / Array(3, Int32ul),
    "block" / Array(3, Int32ul),
    "shared_size" / Int32ul,
    "params_size" / Int32ul,
    "params" / Int64ul,     # user pointer, read during SUBMIT
    "reserved" / Const(0, Int64ul),
), c_name="aicard_cmd_launch")

CmdEvent = Layout("CmdEvent", Struct(
    "type" / Int32ul,       # CmdType.EVENT_RECORD / _WAIT / _RESET
    "flags" / Int32ul,
    "event" / Int32ul,
    _pad32(),
    "reserved" / Const([0] * 6, Array(6, Int64ul)),
), c_name="aicard_cmd_event")

CmdMembar = Layout("CmdMembar", Struct(
    "type" / Int32ul,       # CmdType.MEMBAR
    "flags" / Int32ul,
    "reserved" / Const([0] * 7, Array(7, Int64ul)),
), c_name="aicard_cmd_membar")

CmdNotify = Layout("CmdNotify", Struct(
    "type" / Int32ul,       # CmdType.NOTIFY
    "flags" / Int32ul,
    "value" / Int64ul,      # handed back by NOTIFY_WAIT
    "reserved" / Const([0] * 6, Array(6, Int64ul)),
), c_name="aicard_cmd_notify")

CmdTransformer = Layout("CmdTransformer", Struct(
    "type" / Int32ul,       # CmdType.TRANSFORMER
    "flags" / Int32ul,      # TRANSFORMER_CAUSAL
    "op" / Int32ul,         # TransformerOp
    "rows" / Int32ul,
    "dim" / Int32ul,
    "keys" / Int32ul,
    "vdim" / Int32ul,
    _pad32(),
    "dst" / Int64ul,        # device addresses
    "src0" / Int64ul,
    "src1" / Int64ul,
    "src2" / Int64ul,
), c_name="aicard_cmd_transformer")

Submit = Layout("Submit", Struct(
    "queue_id" / Int32ul,
    "flags" / Int32ul,
    "cmd_count" / Int32ul,
    "cmd_stride" / Int32ul,
    "cmds" / Int64ul,       # user pointer
    "fence" / Int64ul,      # out
), c_name="aicard_submit")

Wait = Layout("Wait", Struct(
    "queue_id" / Int32ul,
    "flags" / Int32ul,
    "fence" / Int64ul,
    "timeout_ns" / Int64ul,
    "status" / Int32ul,     # out: FenceStatus
    _pad32(),
    "completed" / Int64ul,  # out
), c_name="aicard_wait")

Copy = Layout("Copy", Struct(
    "queue_id" / Int32ul,
    "kind" / Int32ul,       # CopyKind
    "dst" / Int64ul,
    "src" / Int64ul,
    "size" / Int64ul,
    "flags" / Int32ul,      # COPY_SYNC
    _pad32(),
    "fence" / Int64ul,      # out
), c_name="aicard_copy")

Memset = Layout("Memset", Struct(
    "queue_id" / Int32ul,
    "elem_size" / Int32ul,
    "dst" / Int64ul,
    "count" / Int64ul,
    "value" / Int32ul,
    "flags" / Int32ul,
    "fence" / Int64ul,      # out
), c_name="aicard_memset")

ModuleLoad = Layout("ModuleLoad", Struct(
    "image" / Int64ul,      # user pointer
    "size" / Int64ul,
    "flags" / Int32ul,
    "handle" / Int32ul,     # out
    "function_count" / Int32ul,  # out
    _pad32(),
), c_name="aicard_module_load")

ModuleUnload = Layout("ModuleUnload", Struct(
    "handle" / Int32ul,
    _pad32(),
), c_name="aicard_module_unload")

ParamInfo = Layout("ParamInfo", Struct(
    "offset" / Int16ul,
    "size" / Int8ul,
    "kind" / Int8ul,        # ParamKind
), c_name="aicard_param_info")

ModuleFunction = Layout("ModuleFunction", Struct(
    "module" / Int32ul,
    "index" / Int32ul,
    "name" / Bytes(NAME_LEN),
    "param_size" / Int32ul,
    "param_count" / Int32ul,
    "shared_size" / Int32ul,
    "num_regs" / Int32ul,
    "params" / Bytes(MAX_PARAMS * 4),   # ParamInfo[MAX_PARAMS]
), c_name="aicard_module_function")

EventCreate = Layout("EventCreate", Struct(
    "flags" / Int32ul,
    "handle" / Int32ul,     # out
), c_name="aicard_event_create")

EventDestroy = Layout("EventDestroy", Struct(
    "handle" / Int32ul,
    _pad32(),
), c_name="aicard_event_destroy")

EventQuery = Layout("EventQuery", Struct(
    "handle" / Int32ul,
    "status" / Int32ul,     # out: EventStatus
    "timestamp" / Int64ul,  # out
    "fence" / Int64ul,      # out
    "queue_id" / Int32ul,   # out
    _pad32(),
), c_name="aicard_event_query")

EventWait = Layout("EventWait", Struct(
    "handle" / Int32ul,
    "flags" / Int32ul,
    "timeout_ns" / Int64ul,
), c_name="aicard_event_wait")

EventSignal = Layout("EventSignal", Struct(
    "handle" / Int32ul,
    _pad32(),
), c_name="aicard_event_signal")

PrintfRead = Layout("PrintfRead", Struct(
    "pointer" / Int64ul,    # user buffer
    "size" / Int32ul,       # in: bytes at pointer; out: bytes written
    "flags" / Int32ul,
    "pending" / Int64ul,    # out
    "dropped" / Int64ul,    # out
), c_name="aicard_printf_read")

NotifyWait = Layout("NotifyWait", Struct(
    "flags" / Int32ul,
    "pending" / Int32ul,    # out
    "timeout_ns" / Int64ul,
    "value" / Int64ul,      # out
    "count" / Int64ul,      # out
), c_name="aicard_notify_wait")

FenceReset = Layout("FenceReset", Struct(
    "queue_id" / Int32ul,
    "flags" / Int32ul,
), c_name="aicard_fence_reset")

IpcExport = Layout("IpcExport", Struct(
    "handle" / Int32ul,     # BO of this context
    "flags" / Int32ul,      # must be 0
    "token" / Bytes(IPC_TOKEN_SIZE),    # out: 32 random bytes (secrets), valid on this device only
), c_name="aicard_ipc_export")

IpcImport = Layout("IpcImport", Struct(
    "token" / Bytes(IPC_TOKEN_SIZE),
    "flags" / Int32ul,      # must be 0
    "handle" / Int32ul,     # out
    "gpu_va" / Int64ul,     # out
    "size" / Int64ul,       # out
), c_name="aicard_ipc_import")

LAYOUTS: list[Layout] = [
    DevQuery, DeviceInfo, MemInfo, Clock, BoCreate, BoDestroy, BoMmapOffset,
    QueueCreate, QueueDestroy, CmdLaunch, CmdEvent, CmdMembar, CmdNotify, CmdTransformer,
    Submit, Wait, Copy, Memset, ModuleLoad, ModuleUnload, ParamInfo, ModuleFunction,
    EventCreate, EventDestroy, EventQuery, EventWait, EventSignal, PrintfRead, NotifyWait,
    FenceReset, IpcExport, IpcImport,
]


@dataclass(frozen=True)
class Ioctl:
    """One request: its name (the C macro minus AICARD_IOCTL_), nr, direction and layout."""

    name: str
    nr: int
    direction: int
    layout: Layout
    outputs: tuple[str, ...] = ()   # fields the driver writes; the rest are inputs
    inouts: tuple[str, ...] = ()    # outputs that are inputs too (a size in, the size out)

    @property
    def pure_outputs(self) -> tuple[str, ...]:
        """Outputs the caller does not set: to leave out when showing inputs."""
        return tuple(n for n in self.outputs if n not in self.inouts)

    @property
    def request(self) -> int:
        return _REQUESTS[self.name] if self.name in _REQUESTS else \
            ioc.IOC(self.direction, IOCTL_TYPE, self.nr, self.layout.sizeof())

    @property
    def c_macro(self) -> str:
        return f"AICARD_IOCTL_{self.name}"


_RW, _W = ioc.READ | ioc.WRITE, ioc.WRITE

IOCTLS: list[Ioctl] = [
    Ioctl("DEV_QUERY", 0x00, _RW, DevQuery, ("size",), ("size",)),
    Ioctl("BO_CREATE", 0x01, _RW, BoCreate, ("handle", "gpu_va")),
    Ioctl("BO_DESTROY", 0x02, _W, BoDestroy),
    Ioctl("BO_MMAP_OFFSET", 0x03, _RW, BoMmapOffset, ("offset",)),
    Ioctl("QUEUE_CREATE", 0x04, _RW, QueueCreate, ("queue_id",)),
    Ioctl("QUEUE_DESTROY", 0x05, _W, QueueDestroy),
    Ioctl("SUBMIT", 0x06, _RW, Submit, ("fence",)),
    Ioctl("WAIT", 0x07, _RW, Wait, ("status", "completed")),
    Ioctl("COPY", 0x08, _RW, Copy, ("fence",)),
    Ioctl("MEMSET", 0x09, _RW, Memset, ("fence",)),
    Ioctl("MODULE_LOAD", 0x0A, _RW, ModuleLoad, ("handle", "function_count")),
    Ioctl("MODULE_UNLOAD", 0x0B, _W, ModuleUnload),
    # By name: index comes out; by index (name[0] == 0): the name comes out.
    Ioctl("MODULE_FUNCTION", 0x0C, _RW, ModuleFunction,
          ("index", "name", "param_size", "param_count", "shared_size", "num_regs", "params"), ("index", "name")),
    Ioctl("EVENT_CREATE", 0x0D, _RW, EventCreate, ("handle",)),
    Ioctl("EVENT_DESTROY", 0x0E, _W, EventDestroy),
    Ioctl("EVENT_QUERY", 0x0F, _RW, EventQuery, ("status", "timestamp", "fence", "queue_id")),
    Ioctl("EVENT_WAIT", 0x10, _W, EventWait),
    Ioctl("EVENT_SIGNAL", 0x11, _W, EventSignal),
    Ioctl("PRINTF_READ", 0x12, _RW, PrintfRead, ("size", "pending", "dropped"), ("size",)),
    Ioctl("NOTIFY_WAIT", 0x13, _RW, NotifyWait, ("pending", "value", "count")),
    Ioctl("FENCE_RESET", 0x14, _W, FenceReset),
    Ioctl("IPC_EXPORT", 0x15, _RW, IpcExport, ("token",)),
    Ioctl("IPC_IMPORT", 0x16, _RW, IpcImport, ("handle", "gpu_va", "size")),
]

_REQUESTS: dict[str, int] = {}
_REQUESTS.update({i.name: i.request for i in IOCTLS})     # computed once: hot in the dispatcher
BY_REQUEST: dict[int, Ioctl] = {i.request: i for i in IOCTLS}
BY_NAME: dict[str, Ioctl] = {i.name: i for i in IOCTLS}


def lookup(req: int) -> Ioctl | None:
    """The declared ioctl for a full request number (type, nr, dir and size must all match)."""
    return BY_REQUEST.get(req & 0xFFFFFFFF)
