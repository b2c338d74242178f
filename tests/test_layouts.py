"""The fast codecs derived from the construct declarations agree with
construct itself, on random values, for every layout."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from structs import uapi
from structs.layout import Layout, LayoutError


def _field_strategy(f):
    if f.is_const:
        return st.just(tuple(f.const) if f.count > 1 else f.const)
    if f.fmt.endswith("s"):
        return st.binary(min_size=f.size, max_size=f.size)
    if f.fmt in "efd":
        elem = st.floats(width=struct.calcsize(f.fmt) * 8, allow_nan=False)
    else:
        bits = struct.calcsize("<" + f.fmt) * 8
        signed = f.fmt.islower()
        elem = st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else st.integers(0, (1 << bits) - 1)
    return st.tuples(*[elem] * f.count) if f.count > 1 else elem


def _values(layout: Layout):
    return st.fixed_dictionaries({f.name: _field_strategy(f) for f in layout.fields()})


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


@pytest.mark.parametrize("layout", uapi.LAYOUTS, ids=lambda l: l.name)
def test_codec_agrees_with_construct(layout):
    codec = layout.codec()

    @settings(max_examples=60, deadline=None)
    @given(_values(layout))
    def check(values):
        rec = codec.record(*[values[n] for n in codec.names])
        raw = codec.pack(rec)
        assert raw == layout.build({k: _plain(v) for k, v in values.items()})
        parsed = layout.parse(raw)
        back = codec.unpack(raw)
        for name in codec.names:
            assert _plain(getattr(back, name)) == _plain(parsed[name]) == _plain(values[name])

    check()


def test_nonzero_pad_is_refused():
    raw = bytearray(uapi.BoDestroy.sizeof())
    raw[4] = 1
    with pytest.raises(LayoutError) as e:
        uapi.BoDestroy.codec().unpack(raw)
    assert e.value.field == "pad"


def test_field_table_is_contiguous():
    for layout in uapi.LAYOUTS:
        off = 0
        for f in layout.fields():
            assert f.offset == off, (layout.name, f.name)
            off += f.size
        assert off == layout.sizeof()


def _all_codecs():
    from structs import fw
    out = [(lay.name, lay.codec()) for lay in uapi.LAYOUTS]
    for v in fw.VERSIONS:
        S = fw.FwStructs(v)
        out += [(f"{name}@{fw.version_str(v)}", getattr(S, name).codec()) for name in fw.ALL if hasattr(S, name)]
    return out


@pytest.mark.parametrize("name,codec", _all_codecs(), ids=lambda x: x if isinstance(x, str) else "")
def test_generated_codec_agrees_with_the_generic_one(name, codec):
    """unpack/pack/pack_into/make/pack_values are generated per field list
    (layout.py, _specialize); the generic methods stay the definition."""
    from structs.layout import Codec
    assert "unpack" in vars(codec), f"{name}: not specialized"
    layout_fields = codec.fields

    @settings(max_examples=40, deadline=None)
    @given(st.fixed_dictionaries({f.name: _field_strategy(f) for f in layout_fields}))
    def check(values):
        raw = Codec.pack_values(codec, values)
        assert codec.pack_values(values) == raw
        assert codec.pack_values({**values, "not_a_field": 1}, ignore_unknown=True) == raw
        rec = codec.unpack(raw)
        assert rec == Codec.unpack(codec, raw)
        assert codec.pack(rec) == Codec.pack(codec, rec) == raw
        buf = bytearray(len(raw) + 3)
        codec.pack_into(buf, 3, rec)
        assert bytes(buf[3:]) == raw
        assert codec.make(**values) == Codec.make(codec, **values)

    check()
    with pytest.raises(LayoutError):
        codec.make(not_a_field=1)
    with pytest.raises(LayoutError):
        codec.pack_values({"not_a_field": 1})
    consts = [f for f in layout_fields if f.is_const]
    if consts:
        bad = bytearray(codec.pack(codec.make()))
        f = consts[0]
        bad[f.offset] ^= 0xFF
        with pytest.raises(LayoutError) as e:
            codec.unpack(bad)
        assert e.value.field == f.name
