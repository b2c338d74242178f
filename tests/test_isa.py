"""The instruction encoding (structs/isa.py) and the assembler / disassembler (pydriver/asm.py)."""

from __future__ import annotations

import glob
import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydriver.asm import AsmError, assemble, assemble_file, assemble_module, disassemble, main
from structs.isa import (
    GUARD_ENABLED,
    GUARD_NEGATE,
    INSTRUCTION_BITFIELDS,
    INSTRUCTION_DTYPE,
    INSTRUCTION_SIZE,
    RZ,
    AtomOp,
    Cmp,
    DType,
    Instruction,
    Opcode,
    Rnd,
    Sreg,
    decode_instructions,
    encode_instruction,
)
from structs.module import parse_module

KERNELS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "umd", "kernels", "*.s")))


def roundtrip(fmt, data, obj, size=None):
    """construct's one-line round trip: parse gives obj, build gives data, sizeof gives size."""
    assert fmt.parse(data) == obj
    assert fmt.build(obj) == data
    assert size is None or fmt.sizeof() == size


def flat(container) -> dict:
    """A parsed Instruction as the flat field names decode_instructions() uses."""
    out = {}
    for k, v in container.items():
        if k.startswith("_"):
            continue
        if hasattr(v, "items"):
            for sub, sv in v.items():
                if not sub.startswith("_"):
                    out[f"{k}_{sub}"] = int(sv)
        else:
            out[k] = int(v)
    return out


# ------------------------------------------------------------------------- encoding

def test_instruction_is_16_bytes():
    assert Instruction.sizeof() == INSTRUCTION_SIZE == 16
    assert INSTRUCTION_DTYPE.itemsize == 16


def test_add_example_from_the_docstring():
    raw = bytes.fromhex("20 00 00 01 03 01 00 00 00 00 00 00 04 00 00 00")
    obj = Instruction.parse(raw)
    roundtrip(Instruction, raw, obj, 16)
    assert (obj.opcode, obj.dst, obj.a, obj.flags.b_imm, obj.imm) == (Opcode.ADD, 3, 1, True, 4)
    assert encode_instruction(Opcode.ADD, dst=3, a=1, b_imm=True, imm=4) == raw


def test_guard_and_flags_bits():
    raw = encode_instruction(Opcode.CVT, type=DType.S32, mod=DType.F32, rnd=Rnd.RNI, dst=1,
                             a=2, guard_pred=5, guard_negate=True)
    assert raw[8] == GUARD_ENABLED | GUARD_NEGATE | 5
    assert raw[3] == Rnd.RNI << 1
    ins = Instruction.parse(raw)
    assert (ins.guard.enabled, ins.guard.negate, ins.guard.pred) == (True, True, 5)
    assert ins.flags.rnd == Rnd.RNI


def test_derived_dtype_matches_the_declaration():
    pos = 0
    for member in Instruction.subcons:
        assert INSTRUCTION_DTYPE.fields[member.name][1] == pos, member.name
        assert INSTRUCTION_DTYPE.fields[member.name][0].itemsize == member.sizeof()
        pos += member.sizeof()
    assert INSTRUCTION_BITFIELDS["guard_pred"] == ("guard", 0, 3)
    assert INSTRUCTION_BITFIELDS["guard_enabled"] == ("guard", 7, 1)
    assert INSTRUCTION_BITFIELDS["flags_b_imm"] == ("flags", 0, 1)


@settings(max_examples=300)
@given(st.binary(min_size=16, max_size=16))
def test_any_16_bytes_round_trip_and_fast_decoder_agrees(raw):
    obj = Instruction.parse(raw)
    assert Instruction.build(obj) == raw          # no Const in an instruction: all bytes parse
    fast = {k: int(v[0]) for k, v in decode_instructions(raw).items()}
    slow = flat(obj)
    for k, v in slow.items():
        assert fast[k] == v, k


@given(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=40))
def test_fast_decoder_on_a_whole_section(raws):
    fast = decode_instructions(b"".join(raws))
    for i, raw in enumerate(raws):
        slow = flat(Instruction.parse(raw))
        assert all(int(fast[k][i]) == v for k, v in slow.items())


def test_decoder_rejects_a_partial_instruction():
    with pytest.raises(ValueError):
        decode_instructions(bytes(17))


# ------------------------------------------------------------------------- assembler

def one(text: str, params: str = "") -> dict:
    """Assemble a single instruction; its decoded fields."""
    module = assemble_module(f".entry f\n{params}\n{text}\n")
    return {k: int(v[0]) for k, v in decode_instructions(module.code).items()}


@pytest.mark.parametrize("text, expect", [
    ("add.u32 r3, r1, 4", dict(opcode=Opcode.ADD, type=DType.U32, dst=3, a=1, flags_b_imm=1, imm=4)),
    ("add.s32 r3, r1, -1", dict(opcode=Opcode.ADD, type=DType.S32, imm=0xFFFFFFFF, flags_b_imm=1)),
    ("sub.f32 r0, r1, r2", dict(opcode=Opcode.SUB, type=DType.F32, dst=0, a=1, b=2, flags_b_imm=0)),
    ("mov.f32 r5, 1.0", dict(opcode=Opcode.MOV, type=DType.F32, imm=0x3F800000, flags_b_imm=1)),
    ("mov.f32 r5, 0f40490FDB", dict(imm=0x40490FDB)),
    ("mov.u64 r4, -8", dict(opcode=Opcode.MOV, type=DType.U64, dst=4, imm=0xFFFFFFF8)),
    ("mov.u32 r1, %ctaid.y", dict(opcode=Opcode.S2R, mod=Sreg.CTAID_Y, dst=1)),
    ("s2r r1, %laneid", dict(opcode=Opcode.S2R, mod=Sreg.LANEID)),
    ("setp.lt.s32 p2, r1, r2", dict(opcode=Opcode.SETP, type=DType.S32, mod=Cmp.LT, dst=2)),
    ("selp.u32 r1, r2, 7, p3", dict(opcode=Opcode.SELP, c=3, imm=7, flags_b_imm=1)),
    ("cvt.rni.s32.f32 r1, r2", dict(opcode=Opcode.CVT, type=DType.S32, mod=DType.F32,
                                    flags_rnd=Rnd.RNI)),
    ("cvt.u64.u32 r2, r1", dict(opcode=Opcode.CVT, type=DType.U64, mod=DType.U32, dst=2, a=1)),
    ("mul.wide.u32 r6, r0, 4", dict(opcode=Opcode.MULWIDE, dst=6, imm=4)),
    ("mul.hi.s32 r6, r0, r1", dict(opcode=Opcode.MULHI, type=DType.S32)),
    ("mul.lo.u32 r6, r0, r1", dict(opcode=Opcode.MUL, type=DType.U32)),
    ("mad.lo.u32 r0, r1, 16, r2", dict(opcode=Opcode.MAD, c=2, imm=16, flags_b_imm=1)),
    ("ld.global.f32 r10, [r8+12]", dict(opcode=Opcode.LDG, type=DType.F32, dst=10, a=8, imm=12)),
    ("ld.global.u8 r10, [r8-4]", dict(opcode=Opcode.LDG, type=DType.U8, imm=0xFFFFFFFC)),
    ("st.global.u64 [r8], r2", dict(opcode=Opcode.STG, type=DType.U64, a=8, b=2)),
    ("st.shared.u32 [16], rz", dict(opcode=Opcode.STS, a=RZ, b=RZ, imm=16)),
    ("atom.global.cas.u32 r1, [r4], r2, r3", dict(opcode=Opcode.ATOMG, mod=AtomOp.CAS, c=3)),
    ("red.shared.add.f32 [r1], r2", dict(opcode=Opcode.ATOMS, mod=AtomOp.ADD, dst=RZ)),
    ("@!p3 bra.uni L", dict(opcode=Opcode.BRA, guard_enabled=1, guard_negate=1, guard_pred=3)),
    ("bar.sync 0", dict(opcode=Opcode.BAR)),
    ("membar.cta", dict(opcode=Opcode.MEMBAR, mod=0)),
    ("sqrt.approx.f32 r1, r2", dict(opcode=Opcode.MATH, type=DType.F32)),
    ("and.pred p0, p1, p2", dict(opcode=Opcode.AND, type=DType.PRED, dst=0, a=1, b=2)),
    ("shr.s64 r2, r4, 3", dict(opcode=Opcode.SHR, type=DType.S64, dst=2, a=4, imm=3)),
    ("ld.param.u64 r4, [p]", dict(opcode=Opcode.LDPARAM, type=DType.U64, imm=8)),
])
def test_assembler_encodings(text, expect):
    fields = one(f"L: {text}", ".param u32 x\n.param ptr p")
    for k, v in expect.items():
        assert fields[k] == v, (k, fields[k], v)


def test_params_are_packed_with_natural_alignment():
    m = assemble_module(".entry f\n.param u32 a\n.param ptr b\n.param f32 c\n.param i32 d\n"
                        ".param u64 e\nexit\n")
    f = m.functions[0]
    assert [(p.name, p.offset, p.size, p.kind) for p in f.params] == [
        ("a", 0, 4, 0), ("b", 8, 8, 4), ("c", 16, 4, 2), ("d", 20, 4, 1), ("e", 24, 8, 3)]
    assert f.param_size == 32


def test_register_and_predicate_counts():
    m = assemble_module(".entry f\nadd.u64 r6, r2, r4\nsetp.eq.u32 p3, r0, 1\nexit\n"
                        ".entry g\n.regs 10\n.shared 64\nexit\n")
    f, g = m.functions
    assert (f.num_regs, f.num_preds) == (8, 4)
    assert (g.num_regs, g.num_preds, g.shared_size) == (10, 0, 64)


def test_printf_strings_go_to_the_data_section():
    m = assemble_module('.entry f\nprintf "a=%d\\n", r1\nprintf "b"\nprintf "a=%d\\n", r2\nexit\n')
    assert m.data == b"a=%d\n\0b\0"
    imms = decode_instructions(m.code)["imm"].tolist()
    assert imms[:3] == [0, 6, 0]


@pytest.mark.parametrize("src, line, message", [
    ("add.u32 r1, r2, r3\n", 1, "outside a function"),
    (".entry f\nfrob r1\n", 2, "unknown instruction"),
    (".entry f\nexit\n  add.u32 r1, r2\n", 3, "takes 3 operands"),
    (".entry f\nadd.u32 r64, r1, r2\n", 2, "does not exist"),
    (".entry f\n\nadd.u64 r3, r4, r6\n", 3, "even register"),
    (".entry f\nbra nowhere\n", 2, "undefined label"),
    (".entry f\nx: nop\nx: exit\n", 3, "defined twice"),
    (".entry f\nld.param.u32 r1, [q]\n", 2, "no parameter named"),
    (".entry f\n.param u32 n\nld.param.u64 r2, [n]\n", 3, "is 4 bytes"),
    (".entry f\n.param bool b\n", 2, "unknown parameter kind"),
    (".entry f\nadd.u32 r1, r2, 0x100000000\n", 2, "does not fit"),
    (".entry f\nadd.u64 r2, r2, 0x80000000\n", 2, "sign-extended"),
    (".entry f\nmov.f32 r1, banana\n", 2, "expected a number"),
    (".entry f\nld.global.u32 r1, r2\n", 2, "memory operand"),
    (".entry f\nprintf \"%d %d\", r1\n", 2, "2 conversions but 1 arguments"),
    (".entry f\nprintf \"%s\", r2\n", 2, "unsupported conversion"),
    (".entry f\nprintf \"oops\n", 2, "unterminated string"),
    (".entry f\nsetp.u32 p0, r1, r2\n", 2, "one comparison"),
    (".entry f\nsetp.eq.u32 p8, r1, r2\n", 2, "predicate"),
    (".entry f\ncvt.f32 r1, r2\n", 2, "destination and a source type"),
    (".entry f\nld.u32 r1, [r2]\n", 2, ".global or .shared"),
    (".entry f\n.frob 3\n", 2, "unknown directive"),
    (".entry f\n", 1, "has no instructions"),
    (".entry f\nexit\n.entry f\n", 3, "defined twice"),
    (".entry f\nadd.q32 r1, r2, r3\n", 2, "unknown modifier"),
    (".entry f\nbar.sync 1\n", 2, "only barrier 0"),
    (".entry f\n@p0 @p1 exit\n", 2, "unknown instruction"),
])
def test_assembler_errors_name_file_and_line(src, line, message):
    with pytest.raises(AsmError) as info:
        assemble(src, "k.s")
    assert str(info.value).startswith(f"k.s:{line}: "), str(info.value)
    assert message in str(info.value)
    assert info.value.line == line
    assert isinstance(info.value, ValueError)


def test_comments_semicolons_and_labels_on_their_own_line():
    a = assemble(".entry f // kernel\n  mov.u32 r1, 5; // five\nloop:\n"
                 "  add.u32 r1, r1, -1  # count down\n  setp.ne.u32 p0, r1, 0;\n"
                 '  @p0 bra loop\n  printf "#;//\\n"\n  exit\n')
    b = assemble(".entry f\nmov.u32 r1, 5\nloop: add.u32 r1, r1, -1\nsetp.ne.u32 p0, r1, 0\n"
                 '@p0 bra loop\nprintf "#;//\\n"\nexit\n')
    assert a == b


# ------------------------------------------------------------------------- disassembler

@pytest.mark.parametrize("path", KERNELS, ids=os.path.basename)
def test_kernels_disassemble_and_reassemble_identically(path):
    with open(path) as f:
        image = assemble(f.read(), path)
    text = disassemble(image)
    assert assemble(text, "<disassembly>") == image


@settings(max_examples=200)
@given(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=12))
def test_disassembly_of_arbitrary_code_reassembles_to_the_same_bytes(raws):
    from structs.module import Function, Module, build_module
    code = b"".join(raws)
    module = Module(functions=[Function("f", 0, len(raws), 64, 8, 0, 0, [])], code=code,
                    data=b"x=%d\n\0")
    image = build_module(module)
    again = parse_module(assemble(disassemble(image)))
    assert again.code == code


def test_disassembly_names_params_and_labels():
    src = (".entry k\n.param u32 n\n.param ptr p\nld.param.u32 r0, [n]\n"
           "top: add.u32 r0, r0, -1\nsetp.gt.u32 p0, r0, 0\n@p0 bra top\nexit\n")
    text = disassemble(assemble(src))
    assert "ld.param.u32 r0, [n]" in text
    assert "L1:" in text and "@p0 bra L1" in text


def test_assemble_file_and_main(tmp_path, capsys):
    src = tmp_path / "k.s"
    src.write_text(".entry k\nexit\n")
    out = tmp_path / "k.aimod"
    assemble_file(str(src), str(out))
    assert parse_module(out.read_bytes()).functions[0].name == "k"
    assert main([str(src), "-o", str(tmp_path / "m.aimod")]) == 0
    assert main(["-d", str(out)]) == 0
    assert ".entry k" in capsys.readouterr().out
    bad = tmp_path / "bad.s"
    bad.write_text(".entry k\nfrob\n")
    assert main([str(bad)]) == 1
    assert "bad.s:2:" in capsys.readouterr().err


def test_float_immediates_survive_disassembly():
    for value in (0.1, -2.5, 1e-30, 3.4e38):
        src = f".entry f\nmov.f32 r0, {value!r}\nexit\n"
        image = assemble(src)
        bits = struct.unpack("<I", struct.pack("<f", value))[0]
        assert decode_instructions(parse_module(image).code)["imm"][0] == bits
        assert assemble(disassemble(image)) == image


def test_numpy_decoder_reads_big_sections_fast():
    code = b"".join(encode_instruction(Opcode.ADD, dst=i % 64, a=1, imm=i, b_imm=True)
                    for i in range(4096))
    fields = decode_instructions(code)
    assert np.array_equal(fields["imm"], np.arange(4096))
