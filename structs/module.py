"""The aicard module (kernel binary) file format, version 1, declared once with construct.

A module is what MODULE_LOAD copies in: a header, a function table, a parameter table, a
string table, the code (16-byte instructions, structs/isa.py) and a data section (printf
format strings).  All integers are little-endian; every offset is from the start of the file.

    +--------------------+ 0
    | ModuleHeader (64)  |
    +--------------------+ func_table_off
    | FunctionEntry (48) | x func_count
    +--------------------+ param_table_off
    | ParamEntry (16)    | x param_count (each function owns a contiguous run)
    +--------------------+ strtab_off
    | NUL-terminated names, referenced by name_off
    +--------------------+ code_off
    | instructions, 16 bytes each; Function.entry / num_instrs count instructions
    +--------------------+ data_off
    | data (printf formats, NUL-terminated, referenced by the PRINTF imm)
    +--------------------+ file_size

Example header (vecadd.s, one function, 4 params)::

    41 49 43 4d 01 00 01 00 40 00 00 00 00 00 00 00   magic "AICM", format 1, isa 1, hdr 64
    40 00 00 00 01 00 00 00 70 00 00 00 04 00 00 00   func table @0x40 x1, params @0x70 x4
    ...

`parse_module` validates everything and raises only `ModuleFormatError` (naming the problem
and the byte offset), whatever bytes it is given.  Opcodes are *not* checked here: an unknown
opcode is an illegal-instruction fault when (and if) it executes.
"""

from __future__ import annotations

import dataclasses
import enum

from construct import (
    Const,
    ConstructError,
    Int8ul,
    Int16ul,
    Int32ul,
    Struct,
)

from structs.isa import INSTRUCTION_SIZE, ISA_VERSION, MAX_PREDS, MAX_REGS

MODULE_MAGIC = b"AICM"
MODULE_FORMAT_VERSION = 1
SUPPORTED_ISA_VERSIONS = (1,)

MAX_PARAM_SIZE = 4096          # bytes of a function's packed parameter block
MAX_PARAMS = 32                # AICARD_MAX_PARAMS in aicard_uapi.h
MAX_NAME_LEN = 63              # AICARD_NAME_LEN (64) minus the NUL
MAX_SHARED_SIZE = 48 * 1024    # static shared memory per block (the device's limit)
MAX_FUNCTIONS = 4096           # bounds MODULE_LOAD of a hostile image to ~1.5 s here

assert ISA_VERSION in SUPPORTED_ISA_VERSIONS


def ZeroPad(n):
    """Reserved bytes that must be zero: a stray non-zero byte fails the parse."""
    return Const(bytes(n))


class ParamKind(enum.IntEnum):
    """enum aicard_param_kind in umd/include/aicard_uapi.h."""
    U32 = 0
    I32 = 1
    F32 = 2
    U64 = 3
    PTR = 4


PARAM_KIND_SIZE = {ParamKind.U32: 4, ParamKind.I32: 4, ParamKind.F32: 4,
                   ParamKind.U64: 8, ParamKind.PTR: 8}


ModuleHeader = Struct(
    "magic" / Const(MODULE_MAGIC),  # 0x00
    "format_version" / Int16ul,     # 0x04: MODULE_FORMAT_VERSION
    "isa_version" / Int16ul,        # 0x06: ISA_VERSION the code was assembled for
    "header_size" / Int32ul,        # 0x08: 64; lets a later format grow the header
    "flags" / Int32ul,              # 0x0c: must be 0
    "func_table_off" / Int32ul,     # 0x10
    "func_count" / Int32ul,         # 0x14
    "param_table_off" / Int32ul,    # 0x18
    "param_count" / Int32ul,        # 0x1c: total over all functions
    "strtab_off" / Int32ul,         # 0x20
    "strtab_size" / Int32ul,        # 0x24
    "code_off" / Int32ul,           # 0x28
    "code_size" / Int32ul,          # 0x2c: bytes, a multiple of 16
    "data_off" / Int32ul,           # 0x30
    "data_size" / Int32ul,          # 0x34
    "file_size" / Int32ul,          # 0x38: must equal the image length
    ZeroPad(4),                     # 0x3c: reserved
)

FunctionEntry = Struct(
    "name_off" / Int32ul,           # 0x00: into the string table
    "entry" / Int32ul,              # 0x04: first instruction (index into the code section)
    "num_instrs" / Int32ul,         # 0x08: >= 1
    "num_regs" / Int16ul,           # 0x0c: 32-bit registers per thread, <= 64
    "num_preds" / Int16ul,          # 0x0e: predicate registers, <= 8
    "shared_size" / Int32ul,        # 0x10: static shared memory per block, bytes
    "param_size" / Int32ul,         # 0x14: bytes of the packed parameter block, <= 4096
    "param_first" / Int32ul,        # 0x18: index of its first ParamEntry
    "param_count" / Int32ul,        # 0x1c: <= 32
    ZeroPad(16),                    # 0x20: reserved
)

ParamEntry = Struct(
    "name_off" / Int32ul,           # 0x00: into the string table
    "offset" / Int16ul,             # 0x04: in the parameter block, aligned to size
    "size" / Int8ul,                # 0x06: 4 or 8, as the kind says
    "kind" / Int8ul,                # 0x07: ParamKind
    ZeroPad(8),                     # 0x08: reserved
)

# Compiled codecs derived from the declarations above (construct's .compile(), ~3x faster):
# a module may hold thousands of entries.  Parsing still goes through the declarations.
_FUNCTION_ENTRY_FAST = FunctionEntry.compile()
_PARAM_ENTRY_FAST = ParamEntry.compile()

HEADER_SIZE = ModuleHeader.sizeof()
FUNCTION_ENTRY_SIZE = FunctionEntry.sizeof()
PARAM_ENTRY_SIZE = ParamEntry.sizeof()
_SIZES = {id(ModuleHeader): HEADER_SIZE, id(FunctionEntry): FUNCTION_ENTRY_SIZE,
          id(ParamEntry): PARAM_ENTRY_SIZE}     # construct's sizeof() is slow; ask once
assert (HEADER_SIZE, FUNCTION_ENTRY_SIZE, PARAM_ENTRY_SIZE) == (64, 48, 16)


def _field_offsets(struct) -> dict[str, int]:
    """{field name: byte offset} computed from the declaration (offsets are data)."""
    out, pos = {}, 0
    for member in struct.subcons:
        if member.name:
            out[member.name] = pos
        pos += member.sizeof()
    return out


HEADER_OFFSETS = _field_offsets(ModuleHeader)
FUNCTION_OFFSETS = _field_offsets(FunctionEntry)
PARAM_OFFSETS = _field_offsets(ParamEntry)


class ModuleFormatError(ValueError):
    """A module image is malformed; the message names the problem and the byte offset."""

    def __init__(self, message: str, offset: int | None = None):
        self.offset = offset
        super().__init__(message if offset is None else f"{message} (at byte offset {offset:#x})")


@dataclasses.dataclass
class Param:
    name: str
    offset: int
    size: int
    kind: int


@dataclasses.dataclass
class Function:
    name: str
    entry: int          # instruction index of the first instruction in Module.code
    num_instrs: int
    num_regs: int
    num_preds: int
    shared_size: int
    param_size: int
    params: list[Param]


@dataclasses.dataclass
class Module:
    functions: list[Function]
    code: bytes
    data: bytes
    isa_version: int = ISA_VERSION


def _parse_struct(struct, image: bytes, base: int, what: str, offsets: dict[str, int],
                  fast=None):
    """Parse one struct at `base` (with `fast`, its compiled codec, when given), turning
    construct's errors into ModuleFormatError."""
    size = _SIZES[id(struct)]
    if base + size > len(image):
        raise ModuleFormatError(f"{what} truncated: needs {size} bytes, file has "
                                f"{max(0, len(image) - base)}", base)
    try:
        return (fast or struct).parse(image[base:base + size])
    except ConstructError as e:
        # construct's path names the field; padding fields are nameless ("reserved").
        path = getattr(e, "path", "") or ""
        field = path.split("->")[-1].strip() if "->" in path else ""
        where = base + offsets.get(field, 0)
        label = field or "reserved bytes"
        if field == "magic":
            raise ModuleFormatError(f"bad magic {bytes(image[base:base + 4])!r}, "
                                    f"expected {MODULE_MAGIC!r}", where) from None
        if not field:
            where = base + _first_nonzero_reserved(struct, image[base:base + size])
        raise ModuleFormatError(f"{what}: {label} must be zero" if not field
                                else f"{what}: bad {label}", where) from None


def _first_nonzero_reserved(struct, raw: bytes) -> int:
    """Offset inside `raw` of the first non-zero byte of a nameless (padding) field."""
    pos = 0
    for member in struct.subcons:
        size = member.sizeof()
        if not member.name and any(raw[pos:pos + size]):
            return pos + next(i for i, byte in enumerate(raw[pos:pos + size]) if byte)
        pos += size
    return 0


def _check_region(off: int, size: int, file_size: int, what: str, off_field: str,
                  size_field: str) -> None:
    """A section must lie between the header and the end of the file.  The error points at
    the offset field when the start is wrong, else at the size (or count) field."""
    if off < HEADER_SIZE or off > file_size or size > file_size - off:
        bad_start = off < HEADER_SIZE or off > file_size
        raise ModuleFormatError(f"{what} [{off:#x}, {off + size:#x}) is outside the file "
                                f"(header ends at {HEADER_SIZE:#x}, file is {file_size:#x} bytes)",
                                HEADER_OFFSETS[off_field if bad_start else size_field])


def _read_name(strtab: bytes, strtab_off: int, name_off: int, what: str, field_offset: int) -> str:
    if name_off >= len(strtab):
        raise ModuleFormatError(f"{what}: name offset {name_off:#x} is outside the string table "
                                f"({len(strtab):#x} bytes)", field_offset)
    end = strtab.find(b"\0", name_off)
    if end < 0:
        raise ModuleFormatError(f"{what}: name is not NUL-terminated inside the string table",
                                strtab_off + name_off)
    raw = strtab[name_off:end]
    if not raw:
        raise ModuleFormatError(f"{what}: empty name", strtab_off + name_off)
    if len(raw) > MAX_NAME_LEN:
        raise ModuleFormatError(f"{what}: name is {len(raw)} bytes, the limit is {MAX_NAME_LEN}",
                                strtab_off + name_off)
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ModuleFormatError(f"{what}: name is not ASCII", strtab_off + name_off) from None
    if not name.isprintable():
        raise ModuleFormatError(f"{what}: name has control characters", strtab_off + name_off)
    return name


# Per-function fields with an upper bound, checked in this order.
_FUNCTION_LIMITS = (("num_regs", MAX_REGS), ("num_preds", MAX_PREDS), ("shared_size", MAX_SHARED_SIZE),
                    ("param_size", MAX_PARAM_SIZE), ("param_count", MAX_PARAMS))


def parse_module(image: bytes) -> Module:
    """Validate and decode a module image.  Raises ModuleFormatError and nothing else."""
    try:
        image = memoryview(image).tobytes()
    except (TypeError, ValueError) as e:
        raise ModuleFormatError(f"module image is not a byte buffer: {e}") from None
    hdr = _parse_struct(ModuleHeader, image, 0, "module header", HEADER_OFFSETS)
    H = HEADER_OFFSETS
    if hdr.format_version != MODULE_FORMAT_VERSION:
        raise ModuleFormatError(f"unsupported module format version {hdr.format_version} "
                                f"(this driver reads {MODULE_FORMAT_VERSION})", H["format_version"])
    if hdr.isa_version not in SUPPORTED_ISA_VERSIONS:
        raise ModuleFormatError(f"unsupported ISA version {hdr.isa_version} "
                                f"(supported: {list(SUPPORTED_ISA_VERSIONS)})", H["isa_version"])
    if hdr.header_size != HEADER_SIZE:
        raise ModuleFormatError(f"header_size is {hdr.header_size}, expected {HEADER_SIZE}",
                                H["header_size"])
    if hdr.flags != 0:
        raise ModuleFormatError(f"flags {hdr.flags:#x} must be 0", H["flags"])
    if hdr.file_size != len(image):
        raise ModuleFormatError(f"file_size says {hdr.file_size} bytes, image has {len(image)}",
                                H["file_size"])
    size = len(image)
    _check_region(hdr.func_table_off, hdr.func_count * FUNCTION_ENTRY_SIZE, size,
                  f"function table ({hdr.func_count} entries)", "func_table_off", "func_count")
    _check_region(hdr.param_table_off, hdr.param_count * PARAM_ENTRY_SIZE, size,
                  f"parameter table ({hdr.param_count} entries)", "param_table_off",
                  "param_count")
    _check_region(hdr.strtab_off, hdr.strtab_size, size, "string table", "strtab_off",
                  "strtab_size")
    _check_region(hdr.code_off, hdr.code_size, size, "code section", "code_off", "code_size")
    _check_region(hdr.data_off, hdr.data_size, size, "data section", "data_off", "data_size")
    if hdr.func_count > MAX_FUNCTIONS:
        raise ModuleFormatError(f"{hdr.func_count} functions, the limit is {MAX_FUNCTIONS}",
                                H["func_count"])
    if hdr.code_size % INSTRUCTION_SIZE:
        raise ModuleFormatError(f"code_size {hdr.code_size} is not a multiple of the "
                                f"instruction size ({INSTRUCTION_SIZE})", H["code_size"])
    strtab = image[hdr.strtab_off:hdr.strtab_off + hdr.strtab_size]
    code_instrs = hdr.code_size // INSTRUCTION_SIZE

    param_entries: dict[int, tuple] = {}     # parsed on first use, each entry once

    def param_entry(i: int) -> tuple:
        if i not in param_entries:
            base = hdr.param_table_off + i * PARAM_ENTRY_SIZE
            param_entries[i] = (base, _parse_struct(ParamEntry, image, base, f"param entry {i}",
                                                    PARAM_OFFSETS, _PARAM_ENTRY_FAST))
        return param_entries[i]

    functions, seen_names = [], {}
    F, P = FUNCTION_OFFSETS, PARAM_OFFSETS
    for i in range(hdr.func_count):
        base = hdr.func_table_off + i * FUNCTION_ENTRY_SIZE
        fe = _parse_struct(FunctionEntry, image, base, f"function entry {i}", F,
                           _FUNCTION_ENTRY_FAST)
        what = f"function {i}"
        name = _read_name(strtab, hdr.strtab_off, fe.name_off, what, base + F["name_off"])
        what = f"function {i} ({name!r})"
        if name in seen_names:
            raise ModuleFormatError(f"{what}: duplicate name (function {seen_names[name]} has it)",
                                    base + F["name_off"])
        seen_names[name] = i
        if fe.num_instrs == 0:
            raise ModuleFormatError(f"{what}: has no instructions", base + F["num_instrs"])
        if fe.entry >= code_instrs or fe.num_instrs > code_instrs - fe.entry:
            raise ModuleFormatError(f"{what}: instructions [{fe.entry}, {fe.entry + fe.num_instrs})"
                                    f" are outside the code section ({code_instrs} instructions)",
                                    base + F["entry"])
        for field, limit in _FUNCTION_LIMITS:
            value = getattr(fe, field)
            if value > limit:
                raise ModuleFormatError(f"{what}: {field} {value} > {limit}", base + F[field])
        if fe.param_first > hdr.param_count or fe.param_count > hdr.param_count - fe.param_first:
            raise ModuleFormatError(f"{what}: params [{fe.param_first}, "
                                    f"{fe.param_first + fe.param_count}) are outside the parameter "
                                    f"table ({hdr.param_count} entries)", base + F["param_first"])
        params, pnames = [], set()
        for j in range(fe.param_first, fe.param_first + fe.param_count):
            pbase, pe = param_entry(j)
            pname = _read_name(strtab, hdr.strtab_off, pe.name_off,
                               f"{what} param {j - fe.param_first}", pbase + P["name_off"])
            offset, psize, kind = pe.offset, pe.size, pe.kind
            if pname in pnames:
                raise ModuleFormatError(f"{what} param {pname!r}: duplicate parameter name",
                                        pbase + P["name_off"])
            pnames.add(pname)
            if kind not in PARAM_KIND_SIZE:
                raise ModuleFormatError(f"{what} param {pname!r}: unknown kind {kind}",
                                        pbase + P["kind"])
            if psize != PARAM_KIND_SIZE[kind]:
                raise ModuleFormatError(f"{what} param {pname!r}: size {psize} does not match "
                                        f"kind {ParamKind(kind).name.lower()}", pbase + P["size"])
            if offset % psize:
                raise ModuleFormatError(f"{what} param {pname!r}: offset {offset} is not "
                                        f"aligned to {psize}", pbase + P["offset"])
            if offset + psize > fe.param_size:
                raise ModuleFormatError(f"{what} param {pname!r}: [{offset}, {offset + psize}) "
                                        f"exceeds param_size {fe.param_size}",
                                        pbase + P["offset"])
            params.append(Param(name=pname, offset=offset, size=psize, kind=kind))
        # Overlaps: neighbours in offset order (each param keeps its table position for the
        # message, which names the later-declared one of the pair).
        order = sorted(range(len(params)), key=lambda k: params[k].offset)
        for x, y in zip(order, order[1:]):
            if params[x].offset + params[x].size > params[y].offset:
                later, earlier = max(x, y), min(x, y)
                pbase, _ = param_entry(fe.param_first + later)
                raise ModuleFormatError(f"{what} param {params[later].name!r}: overlaps "
                                        f"parameter {params[earlier].name!r}",
                                        pbase + P["offset"])
        functions.append(Function(name=name, entry=fe.entry, num_instrs=fe.num_instrs,
                                  num_regs=fe.num_regs, num_preds=fe.num_preds,
                                  shared_size=fe.shared_size, param_size=fe.param_size,
                                  params=params))
    code = image[hdr.code_off:hdr.code_off + hdr.code_size]
    data = image[hdr.data_off:hdr.data_off + hdr.data_size]
    return Module(functions=functions, code=code, data=data, isa_version=hdr.isa_version)


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def build_module(module: Module) -> bytes:
    """Lay a Module out as an image.  The result is parsed back before it is returned, so an
    invalid Module raises ModuleFormatError here rather than at load time."""
    strtab = bytearray()
    str_offsets: dict[str, int] = {}

    def intern(name: str) -> int:
        if name not in str_offsets:
            str_offsets[name] = len(strtab)
            strtab.extend(name.encode("ascii", errors="replace") + b"\0")
        return str_offsets[name]

    all_params: list[Param] = []
    fentries = []
    for f in module.functions:
        fentries.append(dict(name_off=intern(f.name), entry=f.entry, num_instrs=f.num_instrs,
                             num_regs=f.num_regs, num_preds=f.num_preds,
                             shared_size=f.shared_size, param_size=f.param_size,
                             param_first=len(all_params), param_count=len(f.params)))
        all_params.extend(f.params)
    pentries = [dict(name_off=intern(p.name), offset=p.offset, size=p.size, kind=p.kind)
                for p in all_params]

    func_table_off = HEADER_SIZE
    param_table_off = func_table_off + len(fentries) * FUNCTION_ENTRY_SIZE
    strtab_off = param_table_off + len(pentries) * PARAM_ENTRY_SIZE
    code_off = _align(strtab_off + len(strtab), INSTRUCTION_SIZE)
    data_off = code_off + len(module.code)
    file_size = data_off + len(module.data)
    try:
        header = ModuleHeader.build(dict(
            format_version=MODULE_FORMAT_VERSION, isa_version=module.isa_version,
            header_size=HEADER_SIZE, flags=0,
            func_table_off=func_table_off, func_count=len(fentries),
            param_table_off=param_table_off, param_count=len(pentries),
            strtab_off=strtab_off, strtab_size=len(strtab),
            code_off=code_off, code_size=len(module.code),
            data_off=data_off, data_size=len(module.data), file_size=file_size))
        body = b"".join(_FUNCTION_ENTRY_FAST.build(e) for e in fentries)
        body += b"".join(_PARAM_ENTRY_FAST.build(e) for e in pentries)
    except ConstructError as e:
        raise ModuleFormatError(f"cannot encode module: {e}") from None
    image = bytearray(header + body + bytes(strtab))
    image.extend(bytes(code_off - len(image)))
    image.extend(module.code)
    image.extend(module.data)
    parse_module(bytes(image))      # the self-check: what we build must load
    return bytes(image)
