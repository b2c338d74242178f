"""The module file format (structs/module.py)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from structs.isa import ISA_VERSION
from structs.module import (
    FUNCTION_ENTRY_SIZE,
    FUNCTION_OFFSETS,
    HEADER_OFFSETS,
    HEADER_SIZE,
    MAX_PARAM_SIZE,
    MODULE_FORMAT_VERSION,
    MODULE_MAGIC,
    PARAM_ENTRY_SIZE,
    PARAM_OFFSETS,
    FunctionEntry,
    Function,
    Module,
    ModuleFormatError,
    ModuleHeader,
    Param,
    ParamEntry,
    build_module,
    parse_module,
)


def sample_module() -> Module:
    return Module(
        functions=[
            Function("vecadd", entry=0, num_instrs=3, num_regs=12, num_preds=1, shared_size=0,
                     param_size=28, params=[Param("a", 0, 8, 4), Param("b", 8, 8, 4),
                                            Param("c", 16, 8, 4), Param("n", 24, 4, 0)]),
            Function("empty", entry=3, num_instrs=1, num_regs=0, num_preds=0, shared_size=256,
                     param_size=0, params=[]),
        ],
        code=bytes(range(64)), data=b"hello %d\n\0")


def field_at(image: bytes, base: int, offset: int, fmt: str, value) -> bytes:
    out = bytearray(image)
    struct.pack_into(fmt, out, base + offset, value)
    return bytes(out)


def expect_error(image: bytes, fragment: str, offset: int | None = None):
    with pytest.raises(ModuleFormatError) as info:
        parse_module(image)
    assert fragment in str(info.value), str(info.value)
    if offset is not None:
        assert info.value.offset == offset, (info.value.offset, offset, str(info.value))
        assert f"{offset:#x}" in str(info.value)
    return info.value


def test_layout_sizes_and_offsets():
    assert (HEADER_SIZE, FUNCTION_ENTRY_SIZE, PARAM_ENTRY_SIZE) == (64, 48, 16)
    assert HEADER_OFFSETS["code_off"] == 0x28 and HEADER_OFFSETS["file_size"] == 0x38
    assert FUNCTION_OFFSETS["param_count"] == 0x1C
    assert PARAM_OFFSETS == {"name_off": 0, "offset": 4, "size": 6, "kind": 7}


def test_header_example():
    image = build_module(sample_module())
    hdr = ModuleHeader.parse(image[:64])
    assert image[:4] == MODULE_MAGIC
    assert (hdr.format_version, hdr.isa_version, hdr.header_size) == (MODULE_FORMAT_VERSION,
                                                                     ISA_VERSION, 64)
    assert (hdr.func_table_off, hdr.func_count, hdr.param_count) == (64, 2, 4)
    assert hdr.code_off % 16 == 0 and hdr.file_size == len(image)
    assert ModuleHeader.build(hdr) == image[:64]


def test_entries_round_trip():
    image = build_module(sample_module())
    hdr = ModuleHeader.parse(image)
    raw = image[hdr.func_table_off:hdr.func_table_off + FUNCTION_ENTRY_SIZE]
    assert FunctionEntry.build(FunctionEntry.parse(raw)) == raw
    raw = image[hdr.param_table_off:hdr.param_table_off + PARAM_ENTRY_SIZE]
    assert ParamEntry.build(ParamEntry.parse(raw)) == raw


def test_build_parse_round_trip():
    m = sample_module()
    image = build_module(m)
    assert parse_module(image) == m
    assert build_module(parse_module(image)) == image
    assert parse_module(bytearray(image)) == m
    assert parse_module(memoryview(image)) == m


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=20)


@st.composite
def modules(draw):
    ninstr = draw(st.integers(1, 40))
    code = draw(st.binary(min_size=16 * ninstr, max_size=16 * ninstr))
    fnames = draw(st.lists(names, min_size=0, max_size=5, unique=True))
    functions = []
    for name in fnames:
        entry = draw(st.integers(0, ninstr - 1))
        count = draw(st.integers(1, ninstr - entry))
        pnames = draw(st.lists(names, max_size=8, unique=True))
        params, end = [], 0
        for pn in pnames:
            kind = draw(st.integers(0, 4))
            size = 8 if kind >= 3 else 4
            end = (end + size - 1) // size * size
            params.append(Param(pn, end, size, kind))
            end += size
        functions.append(Function(name, entry, count, draw(st.integers(0, 64)),
                                  draw(st.integers(0, 8)), draw(st.integers(0, 48 * 1024)),
                                  end + draw(st.integers(0, 16)), params))
    return Module(functions=functions, code=code, data=draw(st.binary(max_size=64)))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(modules())
def test_generated_modules_round_trip(m):
    assert parse_module(build_module(m)) == m


# ------------------------------------------------------------------------- validation

def test_truncated_header():
    expect_error(b"AICM", "module header truncated", 0)
    expect_error(b"", "module header truncated", 0)


def test_bad_magic():
    image = build_module(sample_module())
    expect_error(b"XXXX" + image[4:], "bad magic", 0)


@pytest.mark.parametrize("field, value, fragment", [
    ("format_version", 2, "unsupported module format version 2"),
    ("isa_version", 9, "unsupported ISA version 9"),
    ("header_size", 80, "header_size is 80"),
    ("flags", 1, "flags 0x1 must be 0"),
    ("file_size", 12345, "file_size says 12345"),
    ("func_table_off", 8, "function table"),
    ("func_count", 1000, "function table (1000 entries)"),
    ("param_table_off", 0xFFFFFFF0, "parameter table"),
    ("param_count", 1 << 20, "parameter table"),
    ("strtab_off", 0, "string table"),
    ("strtab_size", 0x7FFFFFFF, "string table"),
    ("code_off", 0xFFFFFFFF, "code section"),
    ("code_size", 0x100000, "code section"),
    ("code_size", 16 * 3 + 1, "not a multiple of the instruction size"),
    ("data_off", 1 << 20, "data section"),
    ("data_size", 1 << 20, "data section"),
])
def test_header_field_errors_name_the_field_offset(field, value, fragment):
    image = build_module(sample_module())
    fmt = "<H" if field in ("format_version", "isa_version") else "<I"
    bad = field_at(image, 0, HEADER_OFFSETS[field], fmt, value)
    expect_error(bad, fragment, HEADER_OFFSETS[field])


def test_reserved_header_bytes_must_be_zero():
    image = bytearray(build_module(sample_module()))
    image[0x3E] = 1
    expect_error(bytes(image), "reserved bytes must be zero", 0x3E)


def func_base(image: bytes, i: int) -> int:
    return ModuleHeader.parse(image).func_table_off + i * FUNCTION_ENTRY_SIZE


def param_base(image: bytes, i: int) -> int:
    return ModuleHeader.parse(image).param_table_off + i * PARAM_ENTRY_SIZE


@pytest.mark.parametrize("field, fmt, value, fragment", [
    ("name_off", "<I", 10000, "outside the string table"),
    ("num_instrs", "<I", 0, "has no instructions"),
    ("entry", "<I", 3, "outside the code section"),
    ("num_regs", "<H", 65, "num_regs 65 > 64"),
    ("num_preds", "<H", 9, "num_preds 9 > 8"),
    ("shared_size", "<I", 1 << 20, "shared_size"),
    ("param_size", "<I", MAX_PARAM_SIZE + 4, "param_size 4100 > 4096"),
    ("param_count", "<I", 33, "param_count 33 > 32"),
    ("param_first", "<I", 3, "outside the parameter table"),
    ("param_size", "<I", 20, "exceeds param_size 20"),
])
def test_function_entry_errors(field, fmt, value, fragment):
    image = build_module(sample_module())
    base = func_base(image, 0)
    bad = field_at(image, base, FUNCTION_OFFSETS[field], fmt, value)
    err = expect_error(bad, fragment)
    assert err.offset is not None and err.offset >= base


def test_function_reserved_bytes():
    image = bytearray(build_module(sample_module()))
    base = func_base(bytes(image), 1)
    image[base + 40] = 7
    expect_error(bytes(image), "function entry 1: reserved bytes must be zero", base + 40)


def test_duplicate_function_names():
    m = sample_module()
    m.functions[1].name = "vecadd"
    with pytest.raises(ModuleFormatError, match="duplicate name"):
        build_module(m)


@pytest.mark.parametrize("index, field, fmt, value, fragment", [
    (0, "kind", "<B", 9, "unknown kind 9"),
    (0, "size", "<B", 4, "does not match kind ptr"),
    (0, "offset", "<H", 4, "not aligned to 8"),
    (1, "offset", "<H", 0, "param 'b': overlaps parameter 'a'"),
    (0, "name_off", "<I", 0xFFFF, "outside the string table"),
])
def test_param_entry_errors(index, field, fmt, value, fragment):
    image = build_module(sample_module())
    base = param_base(image, index)
    bad = field_at(image, base, PARAM_OFFSETS[field], fmt, value)
    expect_error(bad, fragment, base + PARAM_OFFSETS[field])


def test_param_reserved_and_duplicate_names():
    image = bytearray(build_module(sample_module()))
    base = param_base(bytes(image), 2)
    image[base + 12] = 1
    expect_error(bytes(image), "param entry 2: reserved bytes must be zero", base + 12)
    m = sample_module()
    m.functions[0].params[1].name = "a"
    with pytest.raises(ModuleFormatError, match="duplicate parameter name"):
        build_module(m)


def test_names_must_be_nul_terminated_ascii_and_short():
    image = build_module(sample_module())
    hdr = ModuleHeader.parse(image)
    strtab = image[hdr.strtab_off:hdr.strtab_off + hdr.strtab_size]
    # Cut the string table just before its last NUL: the last name is unterminated.
    bad = field_at(image, 0, HEADER_OFFSETS["strtab_size"], "<I", hdr.strtab_size - 1)
    expect_error(bad, "not NUL-terminated")
    pos = hdr.strtab_off + strtab.index(b"vecadd")
    bad = bytearray(image)
    bad[pos] = 0xC3
    expect_error(bytes(bad), "not ASCII", pos)
    m = sample_module()
    m.functions[0].name = "x" * 64
    with pytest.raises(ModuleFormatError, match="limit is 63"):
        build_module(m)
    m.functions[0].name = ""
    with pytest.raises(ModuleFormatError, match="empty name"):
        build_module(m)


def test_unknown_opcodes_are_not_a_load_error():
    m = sample_module()
    m.code = b"\xff" * 64
    assert parse_module(build_module(m)).code == b"\xff" * 64


def test_non_bytes_input():
    with pytest.raises(ModuleFormatError):
        parse_module(12)
    with pytest.raises(ModuleFormatError):
        parse_module(None)


# ------------------------------------------------------------------------- never anything else

def check_only_format_errors(image: bytes) -> None:
    try:
        parse_module(image)
    except ModuleFormatError as e:
        assert str(e)
        assert e.offset is None or 0 <= e.offset <= max(len(image), 0xFFFFFFFF + 64)


@settings(max_examples=400)
@given(st.binary(max_size=512))
def test_random_bytes(raw):
    check_only_format_errors(raw)
    check_only_format_errors(MODULE_MAGIC + raw)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(modules(), st.data())
def test_truncated_and_bit_flipped_images(m, data):
    image = build_module(m)
    cut = data.draw(st.integers(0, len(image)))
    check_only_format_errors(image[:cut])
    flips = data.draw(st.lists(st.integers(0, len(image) * 8 - 1), min_size=1, max_size=4))
    bad = bytearray(image)
    for bit in flips:
        bad[bit // 8] ^= 1 << (bit % 8)
    check_only_format_errors(bytes(bad))
    pos = data.draw(st.integers(0, len(image) - 1))
    bad[pos] = data.draw(st.integers(0, 255))
    check_only_format_errors(bytes(bad))


def test_function_count_is_limited():
    image = build_module(sample_module())
    bad = field_at(image, 0, HEADER_OFFSETS["func_count"], "<I", 5000)
    # The table would run past the end of the file too; the count limit is checked after the
    # section bounds, so make the file claim enough room is not needed: either message names
    # the count field.
    expect_error(bad, "", HEADER_OFFSETS["func_count"])
    from structs.module import MAX_FUNCTIONS
    m = Module([Function(f"f{i}", 0, 1, 0, 0, 0, 0, []) for i in range(MAX_FUNCTIONS + 1)],
               bytes(16), b"")
    with pytest.raises(ModuleFormatError, match="limit is 4096"):
        build_module(m)


def test_overlap_between_params_far_apart_in_the_table():
    m = sample_module()
    m.functions[0].params = [Param("a", 0, 8, 4), Param("b", 8, 4, 0), Param("c", 16, 8, 3),
                             Param("d", 4, 4, 1)]
    with pytest.raises(ModuleFormatError, match="param 'd': overlaps parameter 'a'"):
        build_module(m)
