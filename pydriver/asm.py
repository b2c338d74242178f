"""Assembler (text -> module image) and disassembler (module -> text) for the aicard ISA.

Syntax (docs/ISA.md, "Assembler"), PTX-flavoured::

    // vecadd(ptr a, ptr b, ptr c, u32 n)
    .entry vecadd
    .param ptr a
    .param u32 n
            s2r         r0, %tid.x
            ld.param.u32 r3, [n]
            setp.ge.u32 p0, r0, r3
      @p0   exit
    loop:   add.u32     r1, r1, 1       // immediates become operand b
            @!p1 bra    loop

Usage: ``python -m pydriver.asm SRC.s -o OUT.aimod`` (assemble), ``python -m pydriver.asm -d
MODULE`` (disassemble).  Errors are AsmError("file:line: message").
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import struct
import sys

from structs.isa import (
    DTYPE_SIZE,
    INSTRUCTION_DTYPE,
    INSTRUCTION_SIZE,
    MAX_PREDS,
    MAX_PRINTF_ARGS,
    MAX_REGS,
    RZ,
    SREG_NAMES,
    AtomOp,
    Cmp,
    DType,
    MathFn,
    MembarScope,
    Opcode,
    Rnd,
    Sreg,
    decode_instructions,
    encode_instruction,
)
from structs.module import (
    MAX_PARAM_SIZE,
    PARAM_KIND_SIZE,
    Function,
    Module,
    ModuleFormatError,
    Param,
    ParamKind,
    build_module,
    parse_module,
)
from pydriver.sim.printf import FormatError, conversions, parse_format


class AsmError(ValueError):
    """An assembly error, formatted "file:line: message"."""

    def __init__(self, path: str, line: int, message: str):
        self.path, self.line, self.msg = path, line, message
        super().__init__(f"{path}:{line}: {message}")


class _Err(Exception):
    """Raised inside a line's parser; the caller adds file and line."""


TYPE_NAMES = {
    "u32": DType.U32, "b32": DType.U32, "s32": DType.S32, "i32": DType.S32, "f32": DType.F32,
    "u64": DType.U64, "b64": DType.U64, "s64": DType.S64, "i64": DType.S64,
    "u8": DType.U8, "b8": DType.U8, "s8": DType.S8, "i8": DType.S8,
    "u16": DType.U16, "b16": DType.U16, "s16": DType.S16, "i16": DType.S16,
    "f16": DType.F16, "pred": DType.PRED,
}
TYPE_TEXT = {DType.U32: "u32", DType.S32: "s32", DType.F32: "f32", DType.U64: "u64",
             DType.S64: "s64", DType.U8: "u8", DType.S8: "s8", DType.U16: "u16",
             DType.S16: "s16", DType.F16: "f16", DType.PRED: "pred"}
PARAM_KINDS = {"u32": ParamKind.U32, "i32": ParamKind.I32, "s32": ParamKind.I32,
               "f32": ParamKind.F32, "u64": ParamKind.U64, "ptr": ParamKind.PTR}
PARAM_KIND_TEXT = {ParamKind.U32: "u32", ParamKind.I32: "i32", ParamKind.F32: "f32",
                   ParamKind.U64: "u64", ParamKind.PTR: "ptr"}
CMP_NAMES = {c.name.lower(): c for c in Cmp}
ATOM_NAMES = {a.name.lower(): a for a in AtomOp}
RND_NAMES = {"rzi": Rnd.RZI, "rni": Rnd.RNI, "rmi": Rnd.RMI, "rpi": Rnd.RPI}
SCOPE_NAMES = {s.name.lower(): s for s in MembarScope}
SREGS = {text: sreg for sreg, text in SREG_NAMES.items()}
MATH_NAMES = {m.name.lower(): m for m in MathFn}
BINOPS = {"add": Opcode.ADD, "sub": Opcode.SUB, "div": Opcode.DIV, "rem": Opcode.REM,
          "min": Opcode.MIN, "max": Opcode.MAX, "and": Opcode.AND, "or": Opcode.OR,
          "xor": Opcode.XOR, "shl": Opcode.SHL, "shr": Opcode.SHR}
UNOPS = {"neg": Opcode.NEG, "abs": Opcode.ABS, "not": Opcode.NOT}
IGNORED_MODS = {"approx", "ftz", "full", "rn", "sat_none"}
W32 = (DType.U32, DType.S32, DType.F32)
W64 = (DType.U64, DType.S64)
INT32 = (DType.U32, DType.S32)
MEM_TYPES = (DType.U8, DType.S8, DType.U16, DType.S16, DType.U32, DType.S32, DType.F32,
             DType.U64, DType.S64, DType.F16)

_REG_RE = re.compile(r"^r(\d+)$|^rz$")
_PRED_RE = re.compile(r"^p(\d+)$")
_LABEL_RE = re.compile(r"^[A-Za-z_$][\w.$]*$")
_MEM_RE = re.compile(r"^\[\s*(?:(r\d+|rz|[A-Za-z_]\w*)\s*)?(?:([+-])?\s*([^\]\s]+))?\s*\]$")


# ============================================================================ parsing helpers

def _split_statements(line: str) -> list[str]:
    """Strip comments (// and #) and split at ';', both outside string literals."""
    out, cur, i, in_str = [], [], 0, False
    while i < len(line):
        ch = line[i]
        if in_str:
            cur.append(ch)
            if ch == "\\" and i + 1 < len(line):
                cur.append(line[i + 1])
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
            cur.append(ch)
        elif line.startswith("//", i) or ch == "#":
            break
        elif ch == ";":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if in_str:
        raise _Err("unterminated string literal")
    out.append("".join(cur))
    return [s.strip() for s in out if s.strip()]


def _split_operands(text: str) -> list[str]:
    ops, cur, depth, in_str, i = [], [], 0, False, 0
    while i < len(text):
        ch = text[i]
        if in_str:
            cur.append(ch)
            if ch == "\\" and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
            cur.append(ch)
        elif ch == "[":
            depth += 1
            cur.append(ch)
        elif ch == "]":
            depth -= 1
            cur.append(ch)
        elif ch == "," and depth == 0:
            ops.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    last = "".join(cur).strip()
    if last or ops:
        ops.append(last)
    if any(not o for o in ops):
        raise _Err("empty operand")
    return ops


_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", '"': b'"', "'": b"'",
            "0": b"\0", "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v"}


def _parse_string(tok: str) -> bytes:
    if len(tok) < 2 or tok[0] != '"' or tok[-1] != '"':
        raise _Err(f"expected a string literal, got {tok!r}")
    body, out, i = tok[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body):
                raise _Err("dangling backslash in string")
            e = body[i + 1]
            if e == "x":
                m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:])
                if not m:
                    raise _Err("\\x needs hex digits")
                out.append(int(m.group(), 16))
                i += 2 + len(m.group())
                continue
            if e not in _ESCAPES:
                raise _Err(f"unknown escape \\{e}")
            out += _ESCAPES[e]
            i += 2
            continue
        out += ch.encode("utf-8")
        i += 1
    if b"\0" in out:
        raise _Err("a string literal cannot contain NUL")
    return bytes(out)


def _quote(data: bytes) -> str:
    rev = {v: k for k, v in _ESCAPES.items() if k not in ("'", "0")}
    out = []
    for byte in data:
        b = bytes([byte])
        if b in rev:
            out.append("\\" + rev[b])
        elif 32 <= byte < 127:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


def _parse_int(tok: str) -> int:
    try:
        return int(tok.replace("_", ""), 0)
    except ValueError:
        raise _Err(f"expected an integer, got {tok!r}") from None


def _f32_bits(value: float) -> int:
    try:
        return struct.unpack("<I", struct.pack("<f", value))[0]
    except OverflowError:
        raise _Err(f"{value!r} does not fit in an f32") from None


def _parse_imm(tok: str, t: DType) -> int:
    """An immediate as the 32 bits that go into imm, for an operation of type t."""
    if t == DType.F32:
        if re.fullmatch(r"0[fF][0-9a-fA-F]{8}", tok):
            return int(tok[2:], 16)
        try:
            return _f32_bits(float(tok))
        except ValueError:
            raise _Err(f"expected a number, got {tok!r}") from None
    v = _parse_int(tok)
    if t in W64:
        if not -(1 << 31) <= v < (1 << 31):
            raise _Err(f"immediate {tok} does not fit: 64-bit operations take a sign-extended "
                       "32-bit immediate")
    elif not -(1 << 31) <= v < (1 << 32):
        raise _Err(f"immediate {tok} does not fit in 32 bits")
    return v & 0xFFFFFFFF


def _is_reg(tok: str) -> bool:
    return bool(_REG_RE.match(tok))


# ============================================================================ assembler

@dataclasses.dataclass
class _Func:
    name: str
    line: int
    params: list = dataclasses.field(default_factory=list)
    param_end: int = 0
    shared: int = 0
    regs_min: int = 0
    preds_min: int = 0
    max_reg: int = -1
    max_pred: int = -1
    instrs: list = dataclasses.field(default_factory=list)   # (line, fields | raw bytes)
    labels: dict = dataclasses.field(default_factory=dict)


class _Assembler:
    def __init__(self, path: str):
        self.path = path
        self.funcs: list[_Func] = []
        self.data = bytearray()
        self.strings: dict[bytes, int] = {}
        self.f: _Func | None = None

    def err(self, line: int, message: str) -> AsmError:
        return AsmError(self.path, line, message)

    # ------------------------------------------------------------------ operands
    def reg(self, tok: str, wide: bool = False) -> int:
        m = _REG_RE.match(tok)
        if not m:
            raise _Err(f"expected a register, got {tok!r}")
        if m.group(1) is None:
            return RZ
        r = int(m.group(1))
        if r >= MAX_REGS:
            raise _Err(f"register {tok} does not exist (r0..r{MAX_REGS - 1})")
        if wide:
            if r & 1:
                raise _Err(f"64-bit operand {tok} must be an even register (a pair r{r}:r{r + 1})")
            r_hi = r + 1
        else:
            r_hi = r
        self.f.max_reg = max(self.f.max_reg, r_hi)
        return r

    def pred(self, tok: str) -> int:
        m = _PRED_RE.match(tok)
        if not m or int(m.group(1)) >= MAX_PREDS:
            raise _Err(f"expected a predicate p0..p{MAX_PREDS - 1}, got {tok!r}")
        p = int(m.group(1))
        self.f.max_pred = max(self.f.max_pred, p)
        return p

    def reg_or_imm(self, tok: str, t: DType, wide: bool = False) -> dict:
        if _is_reg(tok):
            return dict(b=self.reg(tok, wide))
        return dict(b_imm=True, imm=_parse_imm(tok, t))

    def mem(self, tok: str, shared: bool) -> tuple[int, int]:
        """[rA + off] -> (register, offset).  Global addresses are register pairs."""
        m = _MEM_RE.match(tok)
        if not m:
            raise _Err(f"expected a memory operand [reg+offset], got {tok!r}")
        base, sign, off = m.groups()
        if base is not None and not _is_reg(base):
            raise _Err(f"{base!r} is not a register")
        r = RZ if base is None else self.reg(base, wide=not shared)
        value = 0
        if off is not None:
            if base is not None and sign is None:
                raise _Err(f"expected + or - before the offset in {tok!r}")
            value = _parse_int(off) * (-1 if sign == "-" else 1)
        if not -(1 << 31) <= value < (1 << 31):
            raise _Err(f"offset {value} does not fit in a signed 32-bit immediate")
        return r, value & 0xFFFFFFFF

    # ------------------------------------------------------------------ directives
    def directive(self, line: int, text: str) -> None:
        words = text.split()
        d = words[0]
        if d == ".version":
            if len(words) != 2 or _parse_int(words[1]) != 1:
                raise _Err("only .version 1 is supported")
            return
        if d in (".entry", ".func", ".kernel"):
            if len(words) != 2 or not _LABEL_RE.match(words[1]):
                raise _Err(f"{d} needs a function name")
            if any(f.name == words[1] for f in self.funcs):
                raise _Err(f"function {words[1]!r} is defined twice")
            self.f = _Func(words[1], line)
            self.funcs.append(self.f)
            return
        if self.f is None:
            raise _Err(f"{d} outside a function (start one with .entry NAME)")
        if d == ".param":
            self.param(words)
        elif d == ".shared":
            if len(words) != 2:
                raise _Err(".shared takes a byte count")
            self.f.shared = _parse_int(words[1])
        elif d == ".regs":
            self.f.regs_min = _parse_int(words[1]) if len(words) == 2 else -1
            if not 0 <= self.f.regs_min <= MAX_REGS:
                raise _Err(f".regs takes a count 0..{MAX_REGS}")
        elif d == ".preds":
            self.f.preds_min = _parse_int(words[1]) if len(words) == 2 else -1
            if not 0 <= self.f.preds_min <= MAX_PREDS:
                raise _Err(f".preds takes a count 0..{MAX_PREDS}")
        elif d == ".raw":
            raw = bytes(_parse_int(w) for w in words[1:]) if all(
                re.fullmatch(r"0x[0-9a-fA-F]{1,2}", w) for w in words[1:]) else None
            if raw is None or len(raw) != INSTRUCTION_SIZE:
                raise _Err(f".raw takes {INSTRUCTION_SIZE} bytes written 0xNN")
            self.f.instrs.append((line, raw))
        else:
            raise _Err(f"unknown directive {d}")

    def param(self, words: list[str]) -> None:
        if len(words) not in (3, 5) or (len(words) == 5 and words[3] != "@"):
            raise _Err(".param KIND NAME [@ OFFSET]")
        kind = PARAM_KINDS.get(words[1])
        if kind is None:
            raise _Err(f"unknown parameter kind {words[1]!r} (u32 i32 f32 u64 ptr)")
        name = words[2]
        if not _LABEL_RE.match(name):
            raise _Err(f"bad parameter name {name!r}")
        if any(p.name == name for p in self.f.params):
            raise _Err(f"parameter {name!r} is declared twice")
        size = PARAM_KIND_SIZE[kind]
        if len(words) == 5:
            offset = _parse_int(words[4])
        else:
            offset = (self.f.param_end + size - 1) // size * size   # natural alignment
        if offset % size or offset < 0:
            raise _Err(f"parameter {name!r} at offset {offset} is not aligned to {size}")
        if offset + size > MAX_PARAM_SIZE:
            raise _Err(f"parameters exceed {MAX_PARAM_SIZE} bytes")
        self.f.params.append(Param(name=name, offset=offset, size=size, kind=int(kind)))
        self.f.param_end = max(self.f.param_end, offset + size)

    # ------------------------------------------------------------------ instructions
    def instruction(self, line: int, text: str) -> None:
        if self.f is None:
            raise _Err("instruction outside a function (start one with .entry NAME)")
        guard = {}
        m = re.match(r"@\s*(!?)\s*(p\d+)\s+", text)
        if m:
            guard = dict(guard_pred=self.pred(m.group(2)), guard_negate=bool(m.group(1)))
            text = text[m.end():]
        parts = text.split(None, 1)
        mnemonic = parts[0]
        ops = _split_operands(parts[1]) if len(parts) > 1 else []
        fields = self.encode(mnemonic, ops)
        fields.update(guard)
        self.f.instrs.append((line, fields))

    def expect(self, ops: list[str], n: int | tuple, mnemonic: str) -> None:
        ok = len(ops) in n if isinstance(n, tuple) else len(ops) == n
        if not ok:
            raise _Err(f"{mnemonic} takes {n if isinstance(n, int) else ' or '.join(map(str, n))}"
                       f" operands, got {len(ops)}")

    def encode(self, mnemonic: str, ops: list[str]) -> dict:
        base, *mods = mnemonic.split(".")
        mods = [m for m in mods if m not in IGNORED_MODS]
        types = [TYPE_NAMES[m] for m in mods if m in TYPE_NAMES]
        rest = [m for m in mods if m not in TYPE_NAMES]

        def one_type(allowed, default=None):
            if len(types) != 1:
                if not types and default is not None:
                    return default
                raise _Err(f"{mnemonic}: expected one type suffix")
            if types[0] not in allowed:
                raise _Err(f"{mnemonic}: type .{TYPE_TEXT[types[0]]} is not supported here")
            return types[0]

        def no_rest(allowed=()):
            bad = [m for m in rest if m not in allowed]
            if bad:
                raise _Err(f"{mnemonic}: unknown modifier .{bad[0]}")

        if base in ("nop", "exit", "ret"):
            no_rest()
            self.expect(ops, 0, base)
            return dict(opcode=Opcode.NOP if base == "nop" else Opcode.EXIT)
        if base == "bra":
            no_rest(("uni",))
            self.expect(ops, 1, base)
            if not _LABEL_RE.match(ops[0]):
                raise _Err(f"bra needs a label, got {ops[0]!r}")
            return dict(opcode=Opcode.BRA, label=ops[0])
        if base == "bar":
            no_rest(("sync",))
            self.expect(ops, (0, 1), base)
            if ops and _parse_int(ops[0]) != 0:
                raise _Err("only barrier 0 exists")
            return dict(opcode=Opcode.BAR)
        if base == "membar":
            scope = [SCOPE_NAMES[m] for m in rest if m in SCOPE_NAMES]
            no_rest(tuple(SCOPE_NAMES))
            self.expect(ops, 0, base)
            return dict(opcode=Opcode.MEMBAR, mod=scope[0] if scope else MembarScope.GL)
        if base == "printf":
            return self.printf(ops)
        if base == "mov":
            no_rest()
            t = one_type(W32 + W64)
            self.expect(ops, 2, base)
            if ops[1] in SREGS:
                if t in W64:
                    raise _Err("special registers are 32-bit")
                return dict(opcode=Opcode.S2R, dst=self.reg(ops[0]), mod=SREGS[ops[1]])
            return dict(opcode=Opcode.MOV, type=t, dst=self.reg(ops[0], t in W64),
                        **self.reg_or_imm(ops[1], t, t in W64))
        if base == "s2r":
            no_rest()
            self.expect(ops, 2, base)
            if ops[1] not in SREGS:
                raise _Err(f"unknown special register {ops[1]!r}")
            return dict(opcode=Opcode.S2R, dst=self.reg(ops[0]), mod=SREGS[ops[1]])
        if base == "ld" and "param" in rest:
            no_rest(("param",))
            t = one_type(W32 + W64)
            self.expect(ops, 2, "ld.param")
            return dict(opcode=Opcode.LDPARAM, type=t, dst=self.reg(ops[0], t in W64),
                        imm=self.param_offset(ops[1], DTYPE_SIZE[t]))
        if base in ("ld", "st"):
            space = [m for m in rest if m in ("global", "shared")]
            no_rest(("global", "shared"))
            if len(space) != 1:
                raise _Err(f"{mnemonic}: say .global or .shared")
            shared = space[0] == "shared"
            t = one_type(MEM_TYPES)
            wide = DTYPE_SIZE[t] == 8
            self.expect(ops, 2, base)
            if base == "ld":
                a, imm = self.mem(ops[1], shared)
                return dict(opcode=Opcode.LDS if shared else Opcode.LDG, type=t,
                            dst=self.reg(ops[0], wide), a=a, imm=imm)
            a, imm = self.mem(ops[0], shared)
            return dict(opcode=Opcode.STS if shared else Opcode.STG, type=t, a=a, imm=imm,
                        b=self.reg(ops[1], wide))
        if base in ("atom", "red"):
            space = [m for m in rest if m in ("global", "shared")]
            aop = [ATOM_NAMES[m] for m in rest if m in ATOM_NAMES]
            no_rest(("global", "shared") + tuple(ATOM_NAMES))
            if len(space) != 1 or len(aop) != 1:
                raise _Err(f"{mnemonic}: say .global or .shared and one operation")
            shared = space[0] == "shared"
            t = one_type((DType.U32, DType.S32, DType.F32))
            aop = aop[0]
            if base == "red":
                ops = ["rz"] + ops
            self.expect(ops, 4 if aop == AtomOp.CAS else 3, mnemonic)
            a, imm = self.mem(ops[1], shared)
            out = dict(opcode=Opcode.ATOMS if shared else Opcode.ATOMG, type=t, mod=aop,
                       dst=self.reg(ops[0]), a=a, imm=imm)
            if not _is_reg(ops[2]):
                raise _Err("an atomic's operand must be a register")
            out["b"] = self.reg(ops[2])
            if aop == AtomOp.CAS:
                out["c"] = self.reg(ops[3])
            return out
        if base == "setp":
            cmp = [CMP_NAMES[m] for m in rest if m in CMP_NAMES]
            no_rest(tuple(CMP_NAMES))
            if len(cmp) != 1:
                raise _Err("setp needs one comparison (.eq .ne .lt .le .gt .ge .num .nan)")
            t = one_type(W32 + W64)
            self.expect(ops, 3, base)
            wide = t in W64
            return dict(opcode=Opcode.SETP, type=t, mod=cmp[0], dst=self.pred(ops[0]),
                        a=self.reg(ops[1], wide), **self.reg_or_imm(ops[2], t, wide))
        if base == "selp":
            no_rest()
            t = one_type(W32 + W64)
            self.expect(ops, 4, base)
            wide = t in W64
            return dict(opcode=Opcode.SELP, type=t, dst=self.reg(ops[0], wide),
                        a=self.reg(ops[1], wide), **self.reg_or_imm(ops[2], t, wide),
                        c=self.pred(ops[3]))
        if base == "cvt":
            rnd = [RND_NAMES[m] for m in rest if m in RND_NAMES]
            no_rest(tuple(RND_NAMES) + ("rz",))
            if len(types) != 2:
                raise _Err("cvt needs a destination and a source type: cvt.f32.s32")
            dt, st = types
            if DType.PRED in types:
                raise _Err("cvt does not convert predicates")
            if rnd and st not in (DType.F32, DType.F16):
                raise _Err("a rounding mode needs a float source")
            self.expect(ops, 2, base)
            return dict(opcode=Opcode.CVT, type=dt, mod=st, rnd=rnd[0] if rnd else Rnd.DEFAULT,
                        dst=self.reg(ops[0], DTYPE_SIZE[dt] == 8),
                        a=self.reg(ops[1], DTYPE_SIZE[st] == 8))
        if base in MATH_NAMES:
            no_rest()
            one_type((DType.F32,))
            self.expect(ops, 2, base)
            return dict(opcode=Opcode.MATH, type=DType.F32, mod=MATH_NAMES[base],
                        dst=self.reg(ops[0]), a=self.reg(ops[1]))
        if base in ("mul", "mad"):
            mode = [m for m in rest if m in ("lo", "hi", "wide")]
            no_rest(("lo", "hi", "wide"))
            mode = mode[0] if mode else "lo"
            if base == "mad":
                if mode != "lo":
                    raise _Err("mad supports .lo only")
                t = one_type(W32)
                self.expect(ops, 4, base)
                return dict(opcode=Opcode.MAD, type=t, dst=self.reg(ops[0]), a=self.reg(ops[1]),
                            **self.reg_or_imm(ops[2], t), c=self.reg(ops[3]))
            if mode == "wide":
                t = one_type(INT32)
                self.expect(ops, 3, base)
                return dict(opcode=Opcode.MULWIDE, type=t, dst=self.reg(ops[0], True),
                            a=self.reg(ops[1]), **self.reg_or_imm(ops[2], t))
            if mode == "hi":
                t = one_type(INT32)
                self.expect(ops, 3, base)
                return dict(opcode=Opcode.MULHI, type=t, dst=self.reg(ops[0]),
                            a=self.reg(ops[1]), **self.reg_or_imm(ops[2], t))
            t = one_type(W32 + W64)
            return self.binary(Opcode.MUL, t, ops, base)
        if base in BINOPS:
            no_rest()
            op = BINOPS[base]
            t = one_type(W32 + W64 + (DType.PRED,))
            if t == DType.PRED:
                if op not in (Opcode.AND, Opcode.OR, Opcode.XOR):
                    raise _Err(f"{base} does not work on predicates")
                self.expect(ops, 3, mnemonic)
                return dict(opcode=op, type=t, dst=self.pred(ops[0]), a=self.pred(ops[1]),
                            b=self.pred(ops[2]))
            if op in (Opcode.SHL, Opcode.SHR):
                self.expect(ops, 3, mnemonic)
                wide = t in W64
                if t == DType.F32:
                    raise _Err(f"{base} does not work on f32")
                return dict(opcode=op, type=t, dst=self.reg(ops[0], wide), a=self.reg(ops[1], wide),
                            **self.reg_or_imm(ops[2], DType.U32))
            return self.binary(op, t, ops, mnemonic)
        if base in UNOPS:
            no_rest()
            t = one_type(W32 + W64 + (DType.PRED,))
            self.expect(ops, 2, mnemonic)
            if t == DType.PRED:
                if base != "not":
                    raise _Err(f"{base} does not work on predicates")
                return dict(opcode=Opcode.NOT, type=t, dst=self.pred(ops[0]), a=self.pred(ops[1]))
            wide = t in W64
            return dict(opcode=UNOPS[base], type=t, dst=self.reg(ops[0], wide),
                        a=self.reg(ops[1], wide))
        raise _Err(f"unknown instruction {mnemonic!r}")

    def binary(self, op: Opcode, t: DType, ops: list[str], mnemonic: str) -> dict:
        self.expect(ops, 3, mnemonic)
        wide = t in W64
        return dict(opcode=op, type=t, dst=self.reg(ops[0], wide), a=self.reg(ops[1], wide),
                    **self.reg_or_imm(ops[2], t, wide))

    def param_offset(self, tok: str, size: int) -> int:
        m = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", tok)
        if not m:
            raise _Err(f"ld.param needs [name] or [offset], got {tok!r}")
        inner = m.group(1)
        named = [p for p in self.f.params if p.name == inner]
        if named:
            p = named[0]
            if p.size != size:
                raise _Err(f"parameter {inner!r} is {p.size} bytes, this load reads {size}")
            return p.offset
        if _LABEL_RE.match(inner) and not inner[0].isdigit():
            raise _Err(f"no parameter named {inner!r}")
        off = _parse_int(inner)
        if off < 0 or off % size:
            raise _Err(f"param offset {off} is not aligned to {size}")
        return off

    def printf(self, ops: list[str]) -> dict:
        if not ops:
            raise _Err("printf needs a format string")
        fmt = _parse_string(ops[0])
        try:
            convs = conversions(parse_format(fmt))
        except FormatError as e:
            raise _Err(f"printf: {e}") from None
        args = ops[1:]
        if len(args) > MAX_PRINTF_ARGS:
            raise _Err(f"printf takes at most {MAX_PRINTF_ARGS} arguments")
        if len(convs) != len(args):
            raise _Err(f"printf format has {len(convs)} conversions but {len(args)} arguments")
        regs = [self.reg(a, conv.wide) for a, conv in zip(args, convs)]
        regs += [0] * (MAX_PRINTF_ARGS - len(regs))
        if fmt not in self.strings:
            self.strings[fmt] = len(self.data)
            self.data += fmt + b"\0"
        return dict(opcode=Opcode.PRINTF, mod=len(args), imm=self.strings[fmt],
                    a=regs[0], b=regs[1], c=regs[2], x0=regs[3], x1=regs[4], x2=regs[5])

    # ------------------------------------------------------------------ driver
    def run(self, source: str) -> Module:
        for lineno, raw_line in enumerate(source.splitlines(), 1):
            try:
                for stmt in _split_statements(raw_line):
                    while True:                       # leading labels: "loop: add ..."
                        m = re.match(r"([A-Za-z_$][\w.$]*)\s*:(?!:)", stmt)
                        if not m or stmt.startswith("."):
                            break
                        self.label(m.group(1))
                        stmt = stmt[m.end():].strip()
                    if not stmt:
                        continue
                    if stmt.startswith("."):
                        self.directive(lineno, stmt)
                    else:
                        self.instruction(lineno, stmt)
            except _Err as e:
                raise self.err(lineno, str(e)) from None
        return self.finish()

    def label(self, name: str) -> None:
        if self.f is None:
            raise _Err("label outside a function")
        if name in self.f.labels:
            raise _Err(f"label {name!r} is defined twice")
        self.f.labels[name] = len(self.f.instrs)

    def finish(self) -> Module:
        if not self.funcs:
            raise self.err(1, "no function (start one with .entry NAME)")
        code = bytearray()
        functions = []
        for f in self.funcs:
            if not f.instrs:
                raise self.err(f.line, f"function {f.name!r} has no instructions")
            entry = len(code) // INSTRUCTION_SIZE
            for line, fields in f.instrs:
                if isinstance(fields, bytes):
                    code += fields
                    continue
                fields = dict(fields)
                label = fields.pop("label", None)
                if label is not None:
                    if label not in f.labels:
                        raise self.err(line, f"undefined label {label!r}")
                    if f.labels[label] >= len(f.instrs):
                        raise self.err(line, f"label {label!r} is at the end of the function")
                    fields["imm"] = f.labels[label]
                code += encode_instruction(**fields)
            num_regs = max(f.regs_min, f.max_reg + 1)
            num_regs += num_regs & 1
            if f.shared < 0:
                raise self.err(f.line, f"{f.name}: negative .shared size")
            functions.append(Function(
                name=f.name, entry=entry, num_instrs=len(f.instrs), num_regs=num_regs,
                num_preds=max(f.preds_min, f.max_pred + 1), shared_size=f.shared,
                param_size=f.param_end, params=list(f.params)))
        return Module(functions=functions, code=bytes(code), data=bytes(self.data))


def assemble_module(source: str, path: str = "<string>") -> Module:
    return _Assembler(path).run(source)


def assemble(source: str, path: str = "<string>") -> bytes:
    """Assemble source text into a module image."""
    module = assemble_module(source, path)
    try:
        return build_module(module)
    except ModuleFormatError as e:
        raise AsmError(path, 1, f"the module is invalid: {e}") from None


def assemble_file(src_path: str, out_path: str) -> None:
    with open(src_path, encoding="utf-8") as f:
        image = assemble(f.read(), src_path)
    with open(out_path, "wb") as f:
        f.write(image)


# ============================================================================ disassembler

def _r(r: int) -> str:
    return "rz" if r == RZ else f"r{r}"


def _imm_text(imm: int, t: DType) -> str:
    if t == DType.F32:
        value = struct.unpack("<f", struct.pack("<I", imm))[0]
        text = repr(value)
        if value == value and abs(value) != float("inf") and _f32_bits(float(text)) == imm:
            return text
        return f"0f{imm:08X}"
    if imm >= 1 << 31 and t in (DType.S32, DType.U64, DType.S64):
        return str(imm - (1 << 32))
    return str(imm) if imm < 4096 else f"{imm:#x}"


def _mem_text(a: int, imm: int) -> str:
    off = imm - (1 << 32) if imm >= 1 << 31 else imm
    if a == RZ:
        return f"[{off}]"
    if off == 0:
        return f"[{_r(a)}]"
    return f"[{_r(a)}{'+' if off > 0 else '-'}{abs(off)}]"


def disassemble_instruction(ins: dict, data: bytes = b"", params: list | None = None,
                            labels: dict | None = None) -> str:
    """One decoded instruction (a decode_instructions() row as a dict) as assembler text.
    Encodings the assembler would not reproduce exactly come out as a .raw directive: the
    text is assembled again and compared with the original bytes."""
    params, labels = params or [], labels or {}
    try:
        text = _disasm(ins, data, params, labels)
    except (ValueError, KeyError, IndexError, FormatError):
        return _raw(ins)
    asm = _Assembler("<disassembly>")
    asm.f = _Func("f", 0, params=list(params))
    asm.f.labels = {name: index for index, name in labels.items()}
    if ins["opcode"] == Opcode.PRINTF:
        end = data.find(b"\0", ins["imm"])
        asm.strings[data[ins["imm"]:end]] = ins["imm"]
    try:
        asm.instruction(0, text)
        fields = dict(asm.f.instrs[0][1])
        label = fields.pop("label", None)
        if label is not None:
            fields["imm"] = asm.f.labels[label]
        again = encode_instruction(**fields)
    except (_Err, KeyError):
        return _raw(ins)
    return text if again == _raw_bytes(ins) else _raw(ins)


def needs_zero(*values) -> None:
    """Fields an opcode does not use must be zero for the text to describe the encoding."""
    if any(values):
        raise ValueError("an unused field is not zero")


def _raw_bytes(ins: dict) -> bytes:
    raw = bytearray(encode_instruction(
        ins["opcode"], type=ins["type"], mod=ins["mod"], dst=ins["dst"], a=ins["a"],
        b=ins["b"], c=ins["c"], x0=ins["x0"], x1=ins["x1"], x2=ins["x2"], imm=ins["imm"]))
    flags_at = INSTRUCTION_DTYPE.fields["flags"][1]
    guard_at = INSTRUCTION_DTYPE.fields["guard"][1]
    raw[flags_at] = ins["flags"]
    raw[guard_at] = ins["guard"]
    return bytes(raw)


def _raw(ins: dict) -> str:
    return ".raw " + " ".join(f"0x{b:02x}" for b in _raw_bytes(ins))


def _disasm(ins: dict, data: bytes, params: list, labels: dict) -> str:
    if ins["flags_unk_3_4"] or ins["guard_unk_8_4"]:
        raise ValueError("reserved bits")
    op = Opcode(ins["opcode"])
    t = DType(ins["type"])
    tt = TYPE_TEXT[t]
    d, a, b, c, imm = ins["dst"], ins["a"], ins["b"], ins["c"], ins["imm"]
    if op != Opcode.PRINTF and (ins["x0"] or ins["x1"] or ins["x2"]):
        raise ValueError("x fields")
    prefix = ""
    if ins["guard_enabled"]:
        prefix = f"@{'!' if ins['guard_negate'] else ''}p{ins['guard_pred']} "
    elif ins["guard"]:
        raise ValueError("guard bits without enable")

    def bsrc(typ=t):
        return _imm_text(imm, typ) if ins["flags_b_imm"] else _r(b)

    simple = {Opcode.NOP: "nop", Opcode.EXIT: "exit"}
    if op in simple:
        needs_zero(t, ins["mod"], d, a, b, c, imm, ins["flags"])
        text = simple[op]
    elif op == Opcode.BRA:
        needs_zero(t, ins["mod"], d, a, b, c, ins["flags"])
        text = f"bra {labels[imm]}"
    elif op == Opcode.BAR:
        needs_zero(t, ins["mod"], d, a, b, c, imm, ins["flags"])
        text = "bar.sync"
    elif op == Opcode.MEMBAR:
        needs_zero(t, d, a, b, c, imm, ins["flags"])
        text = f"membar.{MembarScope(ins['mod']).name.lower()}"
    elif op == Opcode.PRINTF:
        needs_zero(t, d, ins["flags"])
        end = data.index(b"\0", imm)
        fmt = data[imm:end]
        convs = conversions(parse_format(fmt))
        regs = [a, b, c, ins["x0"], ins["x1"], ins["x2"]]
        argc = ins["mod"]
        if len(convs) != argc or any(regs[argc:]):
            raise ValueError("printf args")
        text = "printf " + ", ".join([_quote(fmt)] + [_r(r) for r in regs[:argc]])
    elif op == Opcode.MOV:
        needs_zero(ins["mod"], a, c, ins["flags_rnd"])
        text = f"mov.{tt} {_r(d)}, {bsrc()}"
    elif op == Opcode.S2R:
        needs_zero(t, a, b, c, imm, ins["flags"])
        text = f"s2r {_r(d)}, {SREG_NAMES[Sreg(ins['mod'])]}"
    elif op == Opcode.LDPARAM:
        needs_zero(ins["mod"], a, b, c, ins["flags"])
        names = [p.name for p in params if p.offset == imm and p.size == DTYPE_SIZE[t]]
        text = f"ld.param.{tt} {_r(d)}, [{names[0] if names else imm}]"
    elif op == Opcode.SELP:
        needs_zero(ins["mod"], ins["flags_rnd"])
        text = f"selp.{tt} {_r(d)}, {_r(a)}, {bsrc()}, p{c}"
    elif op == Opcode.SETP:
        needs_zero(c, ins["flags_rnd"])
        text = f"setp.{Cmp(ins['mod']).name.lower()}.{tt} p{d}, {_r(a)}, {bsrc()}"
    elif op == Opcode.CVT:
        needs_zero(b, c, imm, ins["flags_b_imm"])
        rnd = Rnd(ins["flags_rnd"])
        rtext = "" if rnd == Rnd.DEFAULT else f".{rnd.name.lower()}"
        text = f"cvt{rtext}.{tt}.{TYPE_TEXT[DType(ins['mod'])]} {_r(d)}, {_r(a)}"
    elif op == Opcode.MATH:
        needs_zero(b, c, imm, ins["flags"])
        text = f"{MathFn(ins['mod']).name.lower()}.{tt} {_r(d)}, {_r(a)}"
    elif op in (Opcode.MAD,):
        needs_zero(ins["mod"], ins["flags_rnd"])
        text = f"mad.lo.{tt} {_r(d)}, {_r(a)}, {bsrc()}, {_r(c)}"
    elif op in (Opcode.MULWIDE, Opcode.MULHI):
        needs_zero(ins["mod"], c, ins["flags_rnd"])
        mode = "wide" if op == Opcode.MULWIDE else "hi"
        text = f"mul.{mode}.{tt} {_r(d)}, {_r(a)}, {bsrc()}"
    elif op in (Opcode.NEG, Opcode.ABS, Opcode.NOT):
        needs_zero(ins["mod"], b, c, imm, ins["flags"])
        if t == DType.PRED:
            text = f"not.pred p{d}, p{a}"
        else:
            text = f"{op.name.lower()}.{tt} {_r(d)}, {_r(a)}"
    elif op in (Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.DIV, Opcode.REM, Opcode.MIN,
                Opcode.MAX, Opcode.AND, Opcode.OR, Opcode.XOR, Opcode.SHL, Opcode.SHR):
        needs_zero(ins["mod"], c, ins["flags_rnd"])
        if t == DType.PRED:
            needs_zero(imm, ins["flags_b_imm"])
            text = f"{op.name.lower()}.pred p{d}, p{a}, p{b}"
        else:
            btype = DType.U32 if op in (Opcode.SHL, Opcode.SHR) else t
            text = f"{op.name.lower()}.{tt} {_r(d)}, {_r(a)}, {bsrc(btype)}"
    elif op in (Opcode.LDG, Opcode.LDS):
        needs_zero(ins["mod"], b, c, ins["flags"])
        space = "global" if op == Opcode.LDG else "shared"
        text = f"ld.{space}.{tt} {_r(d)}, {_mem_text(a, imm)}"
    elif op in (Opcode.STG, Opcode.STS):
        needs_zero(ins["mod"], d, c, ins["flags"])
        space = "global" if op == Opcode.STG else "shared"
        text = f"st.{space}.{tt} {_mem_text(a, imm)}, {_r(b)}"
    elif op in (Opcode.ATOMG, Opcode.ATOMS):
        needs_zero(ins["flags"])
        aop = AtomOp(ins["mod"])
        if aop != AtomOp.CAS:
            needs_zero(c)
        space = "global" if op == Opcode.ATOMG else "shared"
        extra = f", {_r(c)}" if aop == AtomOp.CAS else ""
        text = f"atom.{space}.{aop.name.lower()}.{tt} {_r(d)}, {_mem_text(a, imm)}, {_r(b)}{extra}"
    else:
        raise ValueError("unknown")
    return prefix + text


def disassemble(image: bytes | Module) -> str:
    """A module (image or parsed) as assembler text that assembles back to the same code."""
    module = image if isinstance(image, Module) else parse_module(image)
    fields = {k: v.tolist() for k, v in decode_instructions(module.code).items()}
    out = [f"// aicard module, ISA version {module.isa_version}"]
    for fn in module.functions:
        rows = [{k: v[fn.entry + i] for k, v in fields.items()} for i in range(fn.num_instrs)]
        targets = sorted({r["imm"] for r in rows if r["opcode"] == Opcode.BRA
                          and r["imm"] < fn.num_instrs})
        labels = {t: f"L{t}" for t in targets}
        out.append("")
        out.append(f".entry {fn.name}")
        end = 0
        for p in fn.params:
            size = PARAM_KIND_SIZE[ParamKind(p.kind)]
            natural = (end + size - 1) // size * size
            at = "" if p.offset == natural else f" @ {p.offset}"
            out.append(f".param {PARAM_KIND_TEXT[ParamKind(p.kind)]} {p.name}{at}")
            end = max(end, p.offset + size)
        if fn.param_size != end:
            out.append(f"// param_size {fn.param_size} (declared params end at {end})")
        if fn.shared_size:
            out.append(f".shared {fn.shared_size}")
        out.append(f".regs {fn.num_regs}")
        out.append(f".preds {fn.num_preds}")
        for i, row in enumerate(rows):
            text = disassemble_instruction(row, module.data, fn.params, labels)
            label = f"{labels[i]}:" if i in labels else ""
            out.append(f"{label:<8}{text}")
    return "\n".join(out) + "\n"


# ============================================================================ command line

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pydriver.asm",
                                 description="aicard assembler / disassembler")
    ap.add_argument("input", help="assembler source (.s), or a module with -d")
    ap.add_argument("-o", "--output", help="module to write (default: INPUT with .aimod)")
    ap.add_argument("-d", "--disassemble", action="store_true", help="disassemble a module")
    ap.add_argument("--traceback", action="store_true", help="show Python tracebacks")
    args = ap.parse_args(argv)
    try:
        if args.disassemble:
            with open(args.input, "rb") as f:
                text = disassemble(f.read())
            if args.output:
                with open(args.output, "w", encoding="utf-8") as f:
                    f.write(text)
            else:
                sys.stdout.write(text)
        else:
            out = args.output or re.sub(r"\.s$", "", args.input) + ".aimod"
            assemble_file(args.input, out)
    except (AsmError, ModuleFormatError, OSError) as e:
        if args.traceback:
            raise
        print(f"aicard-asm: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
