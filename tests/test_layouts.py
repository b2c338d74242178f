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
