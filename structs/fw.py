"""Firmware structures: the interface between the driver and the (simulated)
firmware, declared once for every firmware version.

Everything here lives in VRAM: the driver writes the init data and the
commands, the firmware writes completions, fence values and event slots.
Unknown fields are ``unk_<offset in the first version that has them>``.
Each structure is one list of fields; a field says which versions have it
(``since``/``until``) and, when it was widened, its type per version.  From
that one declaration ``FwStructs(version)`` builds the construct ``Struct`` of
a version, its field table and its fast codec - the version is an argument,
never global state, so two devices with different firmware coexist in one
process (m1n1 keeps it in class state and must know it before importing).

History of the interface (what a driver engineer has to know):

    2.0  first release
    2.1  seqno widened u32 -> u64 in every command header; timestamp_freq
         widened u32 -> u64; LaunchCmd gains ``prio``; InitData gains
         ``features``
    3.0  command ids renumbered (FENCE_WRITE 0x17 -> 0x18, ...); CmdHeader
         loses ``flags``; CopyCmd puts ``dst`` before ``src``; InitData loses
         ``max_queues``; LaunchCmd gains ``watchdog_us`` (0x50 bytes)

Every version also has TRANSFORMER (0x13), NOTIFY (0x14), FENCE_RESET (0x15)
and PRINTF_BUFFER (0x16), the NOTIFY completion (0x04) and the PrintfBuffer
header the firmware keeps at the start of a context's print buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from construct import Bytes, Const, Int16ul, Int32ul, Int64ul, Struct

from structs.layout import Layout

Version = tuple[int, int]

FW_2_0: Version = (2, 0)
FW_2_1: Version = (2, 1)
FW_3_0: Version = (3, 0)
VERSIONS: tuple[Version, ...] = (FW_2_0, FW_2_1, FW_3_0)
DEFAULT: Version = FW_3_0

INIT_MAGIC = 0x57464941          # "AIFW"
RING_MAGIC = 0x474E4952          # "RING"
RING_HEADER_SIZE = 0x40
PRINTF_MAGIC = 0x544E5250        # "PRNT"
PRINTF_HEADER_SIZE = 0x20


def parse_version(text: str) -> Version:
    """'2.1' -> (2, 1); ValueError naming the known versions otherwise."""
    try:
        major, minor = (int(x) for x in str(text).strip().split("."))
        v = (major, minor)
    except ValueError:
        v = None
    if v not in VERSIONS:
        raise ValueError(f"unknown firmware version {text!r} (known: {', '.join(map(version_str, VERSIONS))})")
    return v


def version_str(v: Version) -> str:
    return f"{v[0]}.{v[1]}"


def pack_version(v: Version) -> int:
    return (v[0] << 16) | v[1]


def unpack_version(x: int) -> Version:
    return (x >> 16, x & 0xFFFF)


# -- declarations ------------------------------------------------------------

@dataclass(frozen=True)
class F:
    """One field of a firmware structure.

    type:  a construct, or {first_version: construct, ...} for a field whose
           type changed (the entry with the highest version <= v applies).
    since: first version that has the field;  until: first that does not.
    """

    name: str
    type: Any
    since: Version | None = None
    until: Version | None = None
    doc: str = ""

    def applies(self, v: Version) -> bool:
        return (self.since is None or v >= self.since) and (self.until is None or v < self.until)

    def type_for(self, v: Version):
        if not isinstance(self.type, dict):
            return self.type
        chosen = [t for first, t in sorted(self.type.items()) if v >= first]
        if not chosen:
            raise ValueError(f"field {self.name} has no type for firmware {version_str(v)}")
        return chosen[-1]


@dataclass
class FwDecl:
    """A firmware structure declared once; instantiated per version."""

    name: str
    fields: list
    doc: str = ""
    since: Version | None = None
    _layouts: dict = field(default_factory=dict, repr=False)

    def exists_in(self, v: Version) -> bool:
        return self.since is None or v >= self.since

    def layout(self, v: Version) -> Layout:
        try:
            return self._layouts[v]
        except KeyError:
            pass
        if not self.exists_in(v):
            raise KeyError(f"{self.name} does not exist in firmware {version_str(v)}")
        names = []
        subcons = []
        for f in self.fields:
            if f.applies(v):
                if f.name in names:
                    raise ValueError(f"{self.name}: field {f.name} appears twice in {version_str(v)}")
                names.append(f.name)
                subcons.append(f.name / f.type_for(v))
        lay = self._layouts[v] = Layout(self.name, Struct(*subcons), doc=self.doc)
        return lay


def ZeroPad(n: int):
    """Padding that must be zero: a stray byte fails the parse (m1n1's ZPadding)."""
    return Const(bytes(n))


# Command ids.  Renumbered in 3.0 (as AGX firmware renumbers message ids):
# one table, the id of every command per version.
CMD_IDS: dict[str, dict[Version, int]] = {
    "LAUNCH":       {FW_2_0: 0x10},
    "COPY":         {FW_2_0: 0x11},
    "MEMSET":       {FW_2_0: 0x12},
    "FENCE_WRITE":  {FW_2_0: 0x17, FW_3_0: 0x18},
    "EVENT_WRITE":  {FW_2_0: 0x18, FW_3_0: 0x19},
    "EVENT_WAIT":   {FW_2_0: 0x19, FW_3_0: 0x1A},
    "EVENT_RESET":  {FW_2_0: 0x1A, FW_3_0: 0x1B},
    "MEMBAR":       {FW_2_0: 0x1B, FW_3_0: 0x17},
    "PRINTF_FLUSH": {FW_2_0: 0x1C},
    "TRANSFORMER":  {FW_2_0: 0x13},
    "NOTIFY":       {FW_2_0: 0x14},
    "FENCE_RESET":  {FW_2_0: 0x15},
    "PRINTF_BUFFER": {FW_2_0: 0x16},
}

# Completion (event ring) ids: stable so far.
COMP_IDS: dict[str, dict[Version, int]] = {
    "FENCE_SIGNALLED": {FW_2_0: 0x01},
    "FAULT":           {FW_2_0: 0x02},
    "PRINTF":          {FW_2_0: 0x03},
    "NOTIFY":          {FW_2_0: 0x04},
}


def ids_for(table: dict[str, dict[Version, int]], v: Version) -> dict[str, int]:
    out = {}
    for name, per in table.items():
        chosen = [i for first, i in sorted(per.items()) if v >= first]
        if chosen:
            out[name] = chosen[-1]
    return out


# Fault kinds reported in Fault.kind (stable).
FAULT_KINDS = {1: "mmu", 2: "misaligned", 3: "illegal_instruction", 4: "timeout", 5: "bad_launch",
               6: "bad_command", 7: "host_dma"}
FAULT_KIND_IDS = {v: k for k, v in FAULT_KINDS.items()}

# Boot configuration, written by the driver at VRAM offset 0 before the
# firmware starts.  Example (fw 3.0, words): 57464941 00030000 00001000 00000000 ...
InitData = FwDecl("InitData", [
    F("magic", Const(INIT_MAGIC, Int32ul), doc="'AIFW'"),
    F("version", Int32ul, doc="major << 16 | minor the driver was written for"),
    F("cmd_ring_offset", Int64ul, doc="VRAM offset of the command ring"),
    F("cmd_ring_size", Int32ul, doc="bytes, header included"),
    F("evt_ring_size", Int32ul),
    F("evt_ring_offset", Int64ul, doc="VRAM offset of the completion ring"),
    F("timestamp_freq", {FW_2_0: Int32ul, FW_2_1: Int64ul}, doc="widened in 2.1"),
    F("max_queues", Int32ul, until=FW_3_0, doc="removed in 3.0: queues are unlimited"),
    F("features", Int32ul, since=FW_2_1, doc="added in 2.1; bit 0: printf"),
    F("unk_28", Int32ul, doc="0 in every boot so far (offset as of 2.0)"),
], doc="Firmware boot configuration")

RingHeader = FwDecl("RingHeader", [
    F("magic", Const(RING_MAGIC, Int32ul), doc="'RING'"),
    F("head", Int32ul, doc="consumer offset into the data area, bytes"),
    F("tail", Int32ul, doc="producer offset into the data area, bytes"),
    F("size", Int32ul, doc="bytes of the data area"),
    F("wraps", Int32ul, doc="times the producer wrapped; for the trace decoder"),
    F("pad", ZeroPad(RING_HEADER_SIZE - 20), doc="confirmed padding"),
], doc="Header of a ring; entries follow at +0x40")

# Every command starts with these fields (spliced into each declaration).
_CMD_HEADER = [
    F("type", Int16ul, doc="CMD_IDS, renumbered in 3.0"),
    F("entry_size", Int16ul, doc="bytes of the whole entry, for skipping"),
    F("asid", Int32ul, doc="address space (context) the command runs in"),
    F("queue", Int32ul),
    F("seqno", {FW_2_0: Int32ul, FW_2_1: Int64ul}, doc="fence of the command; widened in 2.1"),
    F("flags", Int32ul, until=FW_3_0, doc="always 0; removed in 3.0"),
]

CmdHeader = FwDecl("CmdHeader", list(_CMD_HEADER), doc="Common head of every command")

LaunchCmd = FwDecl("LaunchCmd", _CMD_HEADER + [
    F("code_offset", Int64ul, doc="VRAM offset of the module image"),
    F("code_size", Int32ul),
    F("function", Int32ul, doc="index in the module's function table"),
    F("grid_x", Int32ul), F("grid_y", Int32ul), F("grid_z", Int32ul),
    F("block_x", Int32ul), F("block_y", Int32ul), F("block_z", Int32ul),
    F("shared_size", Int32ul, doc="dynamic shared memory per block"),
    F("params_size", Int32ul),
    F("params_offset", Int64ul, doc="VRAM offset of the parameter block"),
    F("prio", Int32ul, since=FW_2_1, doc="queue priority; added in 2.1"),
    F("watchdog_us", Int32ul, since=FW_3_0, doc="0 = firmware default; added in 3.0"),
], doc="Run a kernel")

CopyCmd = FwDecl("CopyCmd", _CMD_HEADER + [
    F("kind", Int32ul, doc="1 host->device, 2 device->host, 3 device->device"),
    F("unk_18", Int32ul, doc="0 in every trace (offset as of 2.0)"),
    F("size", Int64ul),
    F("src", Int64ul, until=FW_3_0, doc="VRAM offset or host address"),
    F("dst", Int64ul),
    F("src", Int64ul, since=FW_3_0, doc="moved after dst in 3.0"),
], doc="DMA copy; host addresses go through the context's DMA window")

MemsetCmd = FwDecl("MemsetCmd", _CMD_HEADER + [
    F("dst", Int64ul, doc="VRAM offset"),
    F("count", Int64ul, doc="elements"),
    F("value", Int32ul),
    F("elem_size", Int32ul, doc="1, 2 or 4"),
], doc="Fill")

FenceWriteCmd = FwDecl("FenceWriteCmd", _CMD_HEADER + [
    F("fence_offset", Int64ul, doc="VRAM offset of the queue's fence slot"),
    F("value", Int64ul),
], doc="Write a fence value and report it on the completion ring")

EventWriteCmd = FwDecl("EventWriteCmd", _CMD_HEADER + [
    F("event_offset", Int64ul, doc="VRAM offset of an EventSlot"),
    F("status", Int32ul, doc="value to store (2 = signalled)"),
    F("timestamp", Int32ul, doc="1: also store the device clock"),
], doc="Signal an event (with a timestamp)")

EventWaitCmd = FwDecl("EventWaitCmd", _CMD_HEADER + [
    F("event_offset", Int64ul),
], doc="Hold the queue until the event slot says signalled")

EventResetCmd = FwDecl("EventResetCmd", _CMD_HEADER + [
    F("event_offset", Int64ul),
], doc="Set an event slot back to unsignalled")

MembarCmd = FwDecl("MembarCmd", list(_CMD_HEADER), doc="Order earlier memory accesses")

PrintfFlushCmd = FwDecl("PrintfFlushCmd", _CMD_HEADER + [
    F("buffer_offset", Int64ul, doc="VRAM offset of the device printf buffer"),
    F("buffer_size", Int32ul),
    F("unk_20", Int32ul, doc="0 (offset as of 2.0)"),
], doc="Send the printf buffer's contents up the completion ring")

TransformerCmd = FwDecl("TransformerCmd", _CMD_HEADER + [
    F("op", Int32ul, doc="1 encode, 2 decode, 3 attention (UAPI enum aicard_transformer_op)"),
    F("op_flags", Int32ul, doc="bit 0: causal (attention); not 'flags', which 2.x headers have"),
    F("rows", Int32ul), F("dim", Int32ul), F("keys", Int32ul), F("vdim", Int32ul),
    F("dst", Int64ul, doc="device address (the firmware translates it through the MMU)"),
    F("src0", Int64ul), F("src1", Int64ul), F("src2", Int64ul, doc="0 = none (encode)"),
], doc="Run the fixed-function transformer unit on device memory")

NotifyCmd = FwDecl("NotifyCmd", _CMD_HEADER + [
    F("value", Int64ul, doc="returned to the host with the NOTIFY completion"),
], doc="Raise a host interrupt (a NOTIFY completion) when the queue gets here")

FenceResetCmd = FwDecl("FenceResetCmd", _CMD_HEADER + [
    F("fence_offset", Int64ul, doc="VRAM offset of the queue's fence slot"),
    F("value", Int64ul, doc="value to store (0)"),
], doc="Restart a queue's fence numbering: store value, forget the queue's sticky status")

PrintfBufferCmd = FwDecl("PrintfBufferCmd", _CMD_HEADER + [
    F("buffer_offset", Int64ul, doc="VRAM offset of a PrintfBuffer; 0 = none"),
    F("buffer_size", Int32ul, doc="bytes, header included"),
    F("unk_20", Int32ul, doc="0 (offset as of 2.0)"),
], doc="Bind the print buffer of an address space (takes effect when read; queue and seqno are 0)")

COMMANDS = {
    "LAUNCH": LaunchCmd, "COPY": CopyCmd, "MEMSET": MemsetCmd, "FENCE_WRITE": FenceWriteCmd,
    "EVENT_WRITE": EventWriteCmd, "EVENT_WAIT": EventWaitCmd, "EVENT_RESET": EventResetCmd,
    "MEMBAR": MembarCmd, "PRINTF_FLUSH": PrintfFlushCmd, "TRANSFORMER": TransformerCmd,
    "NOTIFY": NotifyCmd, "FENCE_RESET": FenceResetCmd, "PRINTF_BUFFER": PrintfBufferCmd,
}

_COMP_HEADER = [
    F("type", Int16ul, doc="COMP_IDS"),
    F("entry_size", Int16ul, doc="bytes of the whole entry"),
    F("asid", Int32ul),
    F("queue", Int32ul),
    F("unk_c", Int32ul, doc="0"),
    F("seqno", Int64ul),
]

FenceSignalled = FwDecl("FenceSignalled", _COMP_HEADER + [
    F("status", Int32ul, doc="0 ok, 1 fault, 2 timeout"),
    F("unk_1c", Int32ul, doc="0"),
], doc="A FENCE_WRITE executed")

Fault = FwDecl("Fault", _COMP_HEADER + [
    F("kind", Int32ul, doc="FAULT_KINDS"),
    F("pc", Int32ul, doc="instruction index, 0xffffffff if none"),
    F("address", Int64ul, doc="faulting device address, 0 if none"),
    F("command_offset", Int32ul, doc="ring offset of the offending command"),
    F("command_type", Int32ul, doc="type field of the offending command as read"),
    F("message", Bytes(96), doc="NUL-terminated text"),
], doc="A command failed")

PrintfData = FwDecl("PrintfData", _COMP_HEADER + [
    F("length", Int32ul, doc="bytes of text that follow this header"),
    F("unk_1c", Int32ul, doc="0"),
], doc="Device printf output; the text follows, padded to 8 bytes")

NotifyData = FwDecl("NotifyData", _COMP_HEADER + [
    F("value", Int64ul, doc="the NOTIFY command's value"),
], doc="A NOTIFY command executed: the host interrupt")

COMPLETIONS = {"FENCE_SIGNALLED": FenceSignalled, "FAULT": Fault, "PRINTF": PrintfData,
               "NOTIFY": NotifyData}

# The print buffer of an address space: this header, then the text kernels
# printed (bytes [head, tail) not yet sent up).  Written by the firmware only.
PrintfBuffer = FwDecl("PrintfBuffer", [
    F("magic", Const(PRINTF_MAGIC, Int32ul), doc="'PRNT'"),
    F("size", Int32ul, doc="bytes of the text area that follows the header"),
    F("head", Int32ul, doc="first byte not yet flushed"),
    F("tail", Int32ul, doc="end of the text written so far"),
    F("dropped", Int64ul, doc="bytes printed while the buffer was full, since the last flush"),
    F("pad", ZeroPad(PRINTF_HEADER_SIZE - 24), doc="confirmed padding"),
], doc="Header of a device print buffer (32 bytes); text follows")

# Device-memory slots the firmware writes and the driver reads.
EventSlot = FwDecl("EventSlot", [
    F("status", Int32ul, doc="0 unsignalled, 1 pending, 2 signalled"),
    F("pending", Int32ul, doc="records queued and not yet run; the driver counts up, firmware down"),
    F("timestamp", Int64ul, doc="device clock at the signal"),
], doc="One device event (16 bytes)")

FenceSlot = FwDecl("FenceSlot", [
    F("value", Int64ul, doc="last fence value written"),
], doc="A queue's completed fence (8 bytes)")

ALL: dict[str, FwDecl] = {d.name: d for d in (
    InitData, RingHeader, CmdHeader, LaunchCmd, CopyCmd, MemsetCmd, FenceWriteCmd, EventWriteCmd,
    EventWaitCmd, EventResetCmd, MembarCmd, PrintfFlushCmd, TransformerCmd, NotifyCmd,
    FenceResetCmd, PrintfBufferCmd, FenceSignalled, Fault, PrintfData, NotifyData, EventSlot,
    FenceSlot, PrintfBuffer)}


class FwStructs:
    """Every firmware structure of one version (pyelftools' ELFStructs idea)."""

    _cache: dict = {}

    def __new__(cls, version: Version):
        if version not in VERSIONS:
            raise ValueError(f"unknown firmware version {version}")
        try:
            return cls._cache[version]
        except KeyError:
            self = super().__new__(cls)
            self._init(version)
            cls._cache[version] = self
            return self

    def _init(self, version: Version) -> None:
        self.version = version
        for name, decl in ALL.items():
            if decl.exists_in(version):
                setattr(self, name, decl.layout(version))
        self.cmd_ids = ids_for(CMD_IDS, version)
        self.cmd_names = {v: k for k, v in self.cmd_ids.items()}
        self.comp_ids = ids_for(COMP_IDS, version)
        self.comp_names = {v: k for k, v in self.comp_ids.items()}
        self.commands = {name: COMMANDS[name].layout(version) for name in self.cmd_ids}
        self.completions = {name: COMPLETIONS[name].layout(version) for name in self.comp_ids}
        self.cmd_header_size = self.CmdHeader.sizeof()
        self._cmd_encoders: dict = {}
        self._comp_encoders: dict = {}
        self._cmd_decoders: dict = {}

    def command_by_id(self, type_id: int):
        name = self.cmd_names.get(type_id)
        return (name, self.commands[name]) if name else (None, None)

    # What the ring's producers and its consumer use per entry, made once per
    # name or type id: the layouts' lookups cost more than a small entry's
    # packing.  The caches belong to this version's FwStructs.

    def command_encoder(self, name: str) -> tuple:
        """(pack_values, type id, entry size) of command name."""
        return self._encoder(self._cmd_encoders, self.commands, self.cmd_ids, name)

    def completion_encoder(self, name: str) -> tuple:
        """(pack_values, type id, entry size) of completion name."""
        return self._encoder(self._comp_encoders, self.completions, self.comp_ids, name)

    @staticmethod
    def _encoder(cache: dict, layouts: dict, ids: dict, name: str) -> tuple:
        enc = cache.get(name)
        if enc is None:
            layout = layouts[name]
            enc = cache[name] = (layout.codec().pack_values, ids[name], layout.sizeof())
        return enc

    def command_decoder(self, type_id: int) -> tuple | None:
        """(name, entry size, unpack) of command type type_id, None if unknown."""
        dec = self._cmd_decoders.get(type_id)
        if dec is None:
            name, layout = self.command_by_id(type_id)
            if layout is None:
                return None
            dec = self._cmd_decoders[type_id] = (name, layout.sizeof(), layout.codec().unpack)
        return dec
