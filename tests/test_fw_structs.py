"""Firmware structures: declared once, instantiated per version, and the
fast codec agrees with construct for every struct of every version."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from structs import fw
from structs.layout import diff_fields
from test_layouts import _plain, _values

CASES = [(name, v) for name, decl in sorted(fw.ALL.items()) for v in fw.VERSIONS if decl.exists_in(v)]


@pytest.mark.parametrize("name,version", CASES, ids=[f"{n}-{fw.version_str(v)}" for n, v in CASES])
def test_codec_agrees_with_construct(name, version):
    layout = fw.ALL[name].layout(version)
    codec = layout.codec()

    @settings(max_examples=40, deadline=None)
    @given(_values(layout))
    def check(values):
        raw = codec.pack(codec.record(*[values[n] for n in codec.names]))
        assert raw == layout.build({k: _plain(v) for k, v in values.items()})
        parsed, back = layout.parse(raw), codec.unpack(raw)
        for n in codec.names:
            assert _plain(getattr(back, n)) == _plain(parsed[n]) == _plain(values[n])

    check()


def _changes(name, a, b):
    return {(c.change, c.name) for c in diff_fields(fw.ALL[name].layout(a).fields(),
                                                    fw.ALL[name].layout(b).fields())}


def test_versions_really_differ():
    """Each kind of change the issue names happens somewhere."""
    assert ("added", "prio") in _changes("LaunchCmd", fw.FW_2_0, fw.FW_2_1)
    assert ("resized", "seqno") in _changes("CmdHeader", fw.FW_2_0, fw.FW_2_1)
    assert ("resized", "timestamp_freq") in _changes("InitData", fw.FW_2_0, fw.FW_2_1)
    assert ("moved", "src") in _changes("CopyCmd", fw.FW_2_1, fw.FW_3_0)
    assert ("removed", "flags") in _changes("CmdHeader", fw.FW_2_1, fw.FW_3_0)
    assert ("removed", "max_queues") in _changes("InitData", fw.FW_2_1, fw.FW_3_0)
    assert fw.ids_for(fw.CMD_IDS, fw.FW_2_1)["FENCE_WRITE"] != fw.ids_for(fw.CMD_IDS, fw.FW_3_0)["FENCE_WRITE"]
    sizes = {fw.ALL["LaunchCmd"].layout(v).sizeof() for v in fw.VERSIONS}
    assert len(sizes) > 1


def test_command_ids_are_unique_per_version():
    for v in fw.VERSIONS:
        ids = fw.ids_for(fw.CMD_IDS, v)
        assert len(set(ids.values())) == len(ids)
        assert 0 not in ids.values()            # 0 marks a ring wrap


def test_versions_coexist_without_global_state():
    """Building one version never changes another (m1n1's Ver cannot do this)."""
    a = fw.FwStructs(fw.FW_2_0).CopyCmd.fields()
    fw.FwStructs(fw.FW_3_0).CopyCmd.fields()
    assert fw.FwStructs(fw.FW_2_0).CopyCmd.fields() == a
    assert fw.FwStructs(fw.FW_2_0) is fw.FwStructs(fw.FW_2_0)
    assert fw.FwStructs(fw.FW_2_0).CopyCmd is not fw.FwStructs(fw.FW_3_0).CopyCmd


def test_parse_version():
    assert fw.parse_version("2.1") == (2, 1)
    with pytest.raises(ValueError, match="known: 2.0, 2.1, 3.0"):
        fw.parse_version("2.2")
    with pytest.raises(ValueError):
        fw.parse_version("banana")


def test_every_command_starts_with_the_header():
    for v in fw.VERSIONS:
        head = [f.name for f in fw.FwStructs(v).CmdHeader.fields()]
        for name, layout in fw.FwStructs(v).commands.items():
            assert [f.name for f in layout.fields()][:len(head)] == head, name
