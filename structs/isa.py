"""The aicard instruction encoding (ISA version 1), declared once with construct.

Every instruction is 16 bytes, little-endian.  ``Instruction`` below is the only place the
layout is written down; ``INSTRUCTION_DTYPE`` (a numpy structured dtype) and
``INSTRUCTION_BITFIELDS`` are *derived* from it by walking the construct tree, and
``decode_instructions()`` uses them to decode a whole code section in one call.  docs/ISA.md
describes the meaning of every field and opcode.

Example (``add.u32 r3, r1, 4``)::

    20 00 00 01 03 01 00 00 00 00 00 00 04 00 00 00
    |  |  |  |  |  |  |  |  |  x0 x1 x2 imm=4
    |  |  |  |  |  |  |  |  guard: not guarded
    |  |  |  |  |  |  |  c
    |  |  |  |  |  |  b (unused: flags.b_imm says b is imm)
    |  |  |  |  |  a = r1
    |  |  |  |  dst = r3
    |  |  |  flags: b_imm
    |  |  mod
    |  type = u32
    opcode = ADD
"""

from __future__ import annotations

import enum

from construct import (
    BitStruct,
    BitsInteger,
    Flag,
    Int8ul,
    Int32ul,
    Struct,
)

ISA_VERSION = 1
INSTRUCTION_SIZE = 16

# Register-file limits of ISA version 1.
MAX_REGS = 64          # r0..r63, 32 bits each; 64-bit values use even-aligned pairs
MAX_PREDS = 8          # p0..p7
RZ = 255               # register number of the zero register: reads 0, writes are dropped
MAX_PRINTF_ARGS = 6    # a, b, c, x0, x1, x2


class Opcode(enum.IntEnum):
    """Byte 0.  Gaps are reserved; an unknown opcode faults as an illegal instruction."""
    NOP = 0x00
    EXIT = 0x01
    BRA = 0x02        # imm: target instruction index inside the function
    BAR = 0x03        # bar.sync; imm: barrier number (only 0 exists)
    MEMBAR = 0x04     # mod: MembarScope
    PRINTF = 0x05     # imm: data-section offset of the format; mod: argc; args a,b,c,x0,x1,x2
    MOV = 0x10
    S2R = 0x11        # mod: Sreg
    LDPARAM = 0x12    # imm: byte offset in the parameter block
    SELP = 0x13       # dst = p[c] ? a : b
    SETP = 0x14       # p[dst] = a <mod: Cmp> b
    CVT = 0x15        # type: destination type, mod: source type, flags.rnd: rounding
    ADD = 0x20
    SUB = 0x21
    MUL = 0x22        # low half of the product
    MAD = 0x23        # a * b + c (fused for f32)
    DIV = 0x24
    REM = 0x25
    MIN = 0x26
    MAX = 0x27
    NEG = 0x28
    ABS = 0x29
    MULWIDE = 0x2A    # 32 x 32 -> 64-bit pair
    MULHI = 0x2B      # high half of the 32 x 32 product
    AND = 0x30
    OR = 0x31
    XOR = 0x32
    NOT = 0x33
    SHL = 0x34
    SHR = 0x35        # logical for unsigned types, arithmetic for signed
    MATH = 0x40       # mod: MathFn, f32 only
    LDG = 0x50        # global memory, address = pair a + sign-extended imm
    STG = 0x51
    LDS = 0x52        # shared memory, address = a (32-bit) + sign-extended imm
    STS = 0x53
    ATOMG = 0x54      # mod: AtomOp; dst = old value
    ATOMS = 0x55


class DType(enum.IntEnum):
    """Byte 1: the data type an instruction works on."""
    U32 = 0
    S32 = 1
    F32 = 2
    U64 = 3
    S64 = 4
    U8 = 5
    S8 = 6
    U16 = 7
    S16 = 8
    F16 = 9
    PRED = 10


DTYPE_SIZE = {DType.U32: 4, DType.S32: 4, DType.F32: 4, DType.U64: 8, DType.S64: 8,
              DType.U8: 1, DType.S8: 1, DType.U16: 2, DType.S16: 2, DType.F16: 2}


class Cmp(enum.IntEnum):
    """SETP comparison (mod).  For f32 every comparison is false when either side is NaN,
    except NE (true, as C's !=) and NAN; NUM is true when neither side is NaN."""
    EQ = 0
    NE = 1
    LT = 2
    LE = 3
    GT = 4
    GE = 5
    NUM = 6
    NAN = 7


class Sreg(enum.IntEnum):
    """S2R special register (mod)."""
    TID_X = 0
    TID_Y = 1
    TID_Z = 2
    NTID_X = 3
    NTID_Y = 4
    NTID_Z = 5
    CTAID_X = 6
    CTAID_Y = 7
    CTAID_Z = 8
    NCTAID_X = 9
    NCTAID_Y = 10
    NCTAID_Z = 11
    LANEID = 12
    WARPID = 13
    CLOCK = 14


SREG_NAMES = {
    Sreg.TID_X: "%tid.x", Sreg.TID_Y: "%tid.y", Sreg.TID_Z: "%tid.z",
    Sreg.NTID_X: "%ntid.x", Sreg.NTID_Y: "%ntid.y", Sreg.NTID_Z: "%ntid.z",
    Sreg.CTAID_X: "%ctaid.x", Sreg.CTAID_Y: "%ctaid.y", Sreg.CTAID_Z: "%ctaid.z",
    Sreg.NCTAID_X: "%nctaid.x", Sreg.NCTAID_Y: "%nctaid.y", Sreg.NCTAID_Z: "%nctaid.z",
    Sreg.LANEID: "%laneid", Sreg.WARPID: "%warpid", Sreg.CLOCK: "%clock",
}


class MathFn(enum.IntEnum):
    """MATH function (mod)."""
    SQRT = 0
    RSQRT = 1
    EX2 = 2
    LG2 = 3
    RCP = 4
    SIN = 5
    COS = 6


class AtomOp(enum.IntEnum):
    """ATOMG/ATOMS operation (mod)."""
    ADD = 0
    MIN = 1
    MAX = 2
    EXCH = 3
    CAS = 4     # if (*addr == b) *addr = c
    AND = 5
    OR = 6
    XOR = 7


class Rnd(enum.IntEnum):
    """flags.rnd: rounding of a CVT from a float type.  To an integer type, DEFAULT means RZI
    (C's cast); float -> float with RZI..RPI rounds to an integral value (cvt.rni.f32.f32)."""
    DEFAULT = 0
    RZI = 1     # toward zero
    RNI = 2     # to nearest, ties to even
    RMI = 3     # toward -inf
    RPI = 4     # toward +inf


class MembarScope(enum.IntEnum):
    CTA = 0
    GL = 1
    SYS = 2


# Guard byte bits (they are what the BitStruct below declares; kept as names for encoders).
GUARD_ENABLED = 0x80
GUARD_NEGATE = 0x08
GUARD_PRED_MASK = 0x07


Instruction = Struct(
    "opcode" / Int8ul,          # 0: Opcode
    "type" / Int8ul,            # 1: DType (CVT: destination type)
    "mod" / Int8ul,             # 2: Cmp / Sreg / MathFn / AtomOp / MembarScope / CVT source DType / printf argc
    "flags" / BitStruct(        # 3
        "unk_3_4" / BitsInteger(4),   # bits 7..4: reserved, must be 0 (else illegal instruction)
        "rnd" / BitsInteger(3),       # bits 3..1: Rnd, CVT from a float type only
        "b_imm" / Flag,               # bit 0: operand b is imm instead of register b
    ),
    "dst" / Int8ul,             # 4: destination register (SETP: destination predicate)
    "a" / Int8ul,               # 5: source a (memory ops: address register)
    "b" / Int8ul,               # 6: source b (stores: value register)
    "c" / Int8ul,               # 7: source c (SELP: predicate; atom CAS: new value)
    "guard" / BitStruct(        # 8: @p / @!p
        "enabled" / Flag,             # bit 7: the instruction is guarded
        "unk_8_4" / BitsInteger(3),   # bits 6..4: reserved, must be 0
        "negate" / Flag,              # bit 3: @!p
        "pred" / BitsInteger(3),      # bits 2..0: predicate register
    ),
    "x0" / Int8ul,              # 9: printf argument 4 (else 0)
    "x1" / Int8ul,              # 10: printf argument 5 (else 0)
    "x2" / Int8ul,              # 11: printf argument 6 (else 0)
    "imm" / Int32ul,            # 12: immediate / memory offset / branch target / param offset
)
assert Instruction.sizeof() == INSTRUCTION_SIZE


# --------------------------------------------------------------------------------------------
# Derived fast decoder.  Walks the construct declaration: byte-sized integers become numpy
# fields, BitStructs become one unsigned byte field plus (shift, width) for each member.

_NUMPY_INTS = {(1, False): "u1", (2, False): "<u2", (4, False): "<u4", (8, False): "<u8",
               (1, True): "i1", (2, True): "<i2", (4, True): "<i4", (8, True): "<i8"}


def _unwrap(subcon):
    """Strip Renamed wrappers (what `"name" / X` produces) down to the real construct."""
    while hasattr(subcon, "subcon") and type(subcon).__name__ == "Renamed":
        subcon = subcon.subcon
    return subcon


def _bitstruct_fields(subcon):
    """Members of a BitStruct as {name: (shift, width)}; construct orders bits MSB first."""
    inner = _unwrap(subcon)
    # BitStruct(...) is Transformed(Struct(...)) (construct's Bitwise); find the Struct.
    while not isinstance(inner, Struct):
        inner = inner.subcon
    total = inner.sizeof()           # in bits, inside Bitwise
    fields, pos = {}, 0
    for member in inner.subcons:
        width = member.sizeof()
        fields[member.name] = (total - pos - width, width)
        pos += width
    return fields


def derive_numpy_layout(struct):
    """(numpy dtype, {field_bitname: (byte_field, shift, width)}) from a flat construct Struct
    of little-endian integers and BitStructs."""
    names, formats, offsets, bitfields = [], [], [], {}
    offset = 0
    for member in struct.subcons:
        inner = _unwrap(member)
        size = inner.sizeof()
        kind = type(inner).__name__
        if kind == "FormatField":
            fmt = inner.fmtstr
            signed = fmt[-1].islower()
            if fmt[0] not in "<=" and size > 1:
                raise TypeError(f"{member.name}: only little-endian fields are supported")
            np_fmt = _NUMPY_INTS[(size, signed)]
        elif kind in ("BytesInteger", "BitsInteger"):
            raise TypeError(f"{member.name}: unsupported field type {kind}")
        else:   # a BitStruct: one byte-sized unsigned field, split by bitfields below
            np_fmt = _NUMPY_INTS[(size, False)]
            for sub, (shift, width) in _bitstruct_fields(inner).items():
                bitfields[f"{member.name}_{sub}"] = (member.name, shift, width)
        names.append(member.name)
        formats.append(np_fmt)
        offsets.append(offset)
        offset += size
    import numpy as np
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                      "itemsize": offset})
    return dtype, bitfields


_derived: tuple | None = None


def _numpy_layout() -> tuple:
    """(INSTRUCTION_DTYPE, INSTRUCTION_BITFIELDS), derived on first use: they
    need numpy, and a process whose first device call is a query (the
    start-up the README measures) should not wait ~50 ms for numpy."""
    global _derived
    if _derived is None:
        _derived = derive_numpy_layout(Instruction)
        assert _derived[0].itemsize == INSTRUCTION_SIZE
    return _derived


def __getattr__(name: str):
    if name == "INSTRUCTION_DTYPE":
        return _numpy_layout()[0]
    if name == "INSTRUCTION_BITFIELDS":
        return _numpy_layout()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def decode_instructions(code: bytes) -> dict:
    """Decode a whole code section at once: {field name: array}, one element per instruction.
    Byte fields keep their declared names; BitStruct members are "<field>_<member>"
    (e.g. "guard_pred", "flags_b_imm").  Arrays keep the fields' own widths (uint8 / uint32),
    so decoding a large module costs about 24 bytes per instruction.
    len(code) must be a multiple of INSTRUCTION_SIZE."""
    if len(code) % INSTRUCTION_SIZE:
        raise ValueError(f"code size {len(code)} is not a multiple of {INSTRUCTION_SIZE}")
    import numpy as np
    dtype, bitfields = _numpy_layout()
    raw = np.frombuffer(code, dtype=dtype)
    out = {name: np.ascontiguousarray(raw[name]).astype(dtype[name].newbyteorder("="))
           for name in dtype.names}
    for name, (field, shift, width) in bitfields.items():
        out[name] = (out[field] >> shift) & ((1 << width) - 1)
    return out


def encode_instruction(opcode: int, *, type: int = 0, mod: int = 0, b_imm: bool = False,
                       rnd: int = 0, dst: int = 0, a: int = 0, b: int = 0, c: int = 0,
                       guard_pred: int | None = None, guard_negate: bool = False,
                       x0: int = 0, x1: int = 0, x2: int = 0, imm: int = 0) -> bytes:
    """Build one instruction through the construct declaration (used by the assembler)."""
    return Instruction.build(dict(
        opcode=opcode, type=type, mod=mod,
        flags=dict(unk_3_4=0, rnd=rnd, b_imm=bool(b_imm)),
        dst=dst, a=a, b=b, c=c,
        guard=dict(enabled=guard_pred is not None, unk_8_4=0,
                   negate=bool(guard_negate) and guard_pred is not None,
                   pred=guard_pred or 0),
        x0=x0, x1=x1, x2=x2, imm=imm & 0xFFFFFFFF))
