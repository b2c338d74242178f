"""The trace writer on its own: big payloads stored and checksummed in pieces,
dedupe confirmed byte for byte, adaptive compression, damage still found."""

from __future__ import annotations

import os
import random
import zlib

import pytest

from traces import format as tf
from traces import writer as tw
from traces.reader import TraceReader


def _writer(tmp_path, name="t.aitrace"):
    path = str(tmp_path / name)
    return path, tw.TraceWriter(path, pid=1, argv=["test"], fw_version=0)


def _user(w, data, seq=1):
    """A Blob for data, referred to by a USER record of call seq."""
    return tw.Blob(data, lambda bid: w.encode(tf.RecordType.USER, seq=seq, dir=0, addr=0x1000,
                                             size=len(data), blob=bid))


def _read(path):
    """(reader, [(blob id of each USER record)], {blob id: codec}) after
    checking every record's CRC (the reader does, on the way)."""
    r = TraceReader(path)
    users, codecs = [], {}
    for rec in r.records():
        if rec.type == tf.RecordType.USER:
            users.append(rec.f.blob)
        elif rec.type == tf.RecordType.BLOB:
            codecs[rec.f.id] = rec.f.codec
    assert r.ended and r.truncated is None
    return r, users, codecs


def test_crc32_combine_matches_zlib():
    rnd = random.Random(1)
    for _ in range(300):
        a = rnd.randbytes(rnd.randint(0, 3000))
        b = rnd.randbytes(rnd.randint(0, 3000))
        assert tw.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    big = rnd.randbytes(3 * tw.WIDE_MIN + 123)
    assert tw._crc(big, wide=True) == tw._crc(big, wide=False) == zlib.crc32(big)
    assert tw._crc(big[:100], wide=True) == zlib.crc32(big[:100])


@pytest.mark.parametrize("submit", [False, True])
def test_big_payloads_round_trip(tmp_path, submit):
    """Big payloads, written now (checksummed on every core) or by the writer
    thread: stored as they are, every record's CRC right."""
    path, w = _writer(tmp_path)
    datas = [os.urandom(3 * tw.WIDE_MIN + 12345), os.urandom(tw.WIDE_MIN), bytes(5 * tw.WIDE_MIN + 1)]
    for i, d in enumerate(datas):
        (w.submit if submit else w.write)([w.encode(tf.RecordType.CALL, seq=i + 1, phase=1), _user(w, d, i + 1)])
    w.close()
    r, users, codecs = _read(path)
    assert [r.blob(b) for b in users] == datas
    assert all(r.blob_equals(b, d) for b, d in zip(users, datas))
    assert not r.blob_equals(users[0], datas[0][:-1] + b"x")
    assert not r.blob_equals(users[0], datas[0][:-1])
    assert [codecs[b] for b in users[:2]] == [0, 0]


def test_a_payload_is_written_once(tmp_path):
    path, w = _writer(tmp_path)
    big = os.urandom(2 * tw.WIDE_MIN + 7)
    small = b"query answer" * 100
    w.write([_user(w, big), _user(w, small)])
    w.write([_user(w, bytes(big)), _user(w, small), _user(w, big)])   # against the file, and in one batch
    w.submit([_user(w, big, 2), _user(w, small, 2)])
    w.close()
    r, users, codecs = _read(path)
    assert len(codecs) == 2
    assert users == [users[0], users[1], users[0], users[1], users[0], users[0], users[1]]


def test_same_size_and_crc_is_not_enough(tmp_path, monkeypatch):
    """The dedupe key only finds candidates: every one is compared byte for
    byte, in memory (same batch) or read back from the file (compressed or
    not), so different payloads keep their own blobs."""
    monkeypatch.setattr(tw, "_crc", lambda data, wide: 0)
    monkeypatch.setattr(tw.TraceWriter, "_bid", _bid_keeping_crc)
    path, w = _writer(tmp_path)
    a, b = os.urandom(tw.WIDE_MIN + 5), os.urandom(tw.WIDE_MIN + 5)
    ca, cb = b"A" * 4096, b"A" * 4095 + b"B"           # compressible: stored compressed
    w.write([_user(w, a), _user(w, b)])                # same batch
    w.write([_user(w, b), _user(w, a), _user(w, ca)])  # against the file
    w.write([_user(w, cb), _user(w, ca)])              # against a compressed one
    w.close()
    r, users, codecs = _read(path)
    assert [r.blob(u) for u in users] == [a, b, b, a, ca, cb, ca]
    assert len(codecs) == 4 and codecs[users[4]] == 1


def _bid_keeping_crc(self, bufs):
    """TraceWriter._bid with the body's real CRC (the test fakes payload CRCs
    to make every payload of a size collide)."""
    raw_size, codec, _, length = bufs[0]
    bufs[0] = (raw_size, codec, zlib.crc32(bufs[1]), length)
    return _real_bid(self, bufs)


_real_bid = tw.TraceWriter._bid


def test_compression_only_while_the_writer_keeps_up(tmp_path):
    compressible = b"0123456789abcdef" * (64 << 10)              # 1 MiB
    path, w = _writer(tmp_path)
    w.submit([_user(w, compressible)])                            # idle writer, small payload
    w.flush()
    w.submit([_user(w, compressible + b"!" * tw.WIDE_MIN)])       # too big
    w._held = 1                                                   # the program waits
    w.submit([_user(w, compressible[:-1] + b"?")])
    w.flush()
    w._held = 0
    w.write([_user(w, compressible[:-2] + b"!!")])                # written while the program waits
    w.write([_user(w, compressible[:tw.SYNC_COMPRESS_MAX])])      # ... but small
    w.close()
    r, users, codecs = _read(path)
    assert [codecs[u] for u in users] == [1, 0, 0, 0, 1]


def test_damage_inside_a_big_payload_is_found(tmp_path):
    path, w = _writer(tmp_path)
    w.write([_user(w, os.urandom(2 * tw.WIDE_MIN))])
    w.close()
    r = TraceReader(path)
    offsets = [rec.offset for rec in r.records() if rec.type == tf.RecordType.BLOB]
    r.close()
    data = bytearray(open(path, "rb").read())
    data[offsets[0] + 100 + tw.WIDE_MIN] ^= 0x10
    open(path, "wb").write(data)
    with pytest.raises(tf.TraceFormatError, match=f"checksum mismatch.*byte offset {offsets[0]:#x}"):
        list(TraceReader(path).records())


def test_a_format_1_trace_is_still_read(tmp_path):
    path, w = _writer(tmp_path)
    w.write([_user(w, b"abc" * 1000)])
    w.close()
    data = bytearray(open(path, "rb").read())
    data[8:10] = (1).to_bytes(2, "little")
    open(path, "wb").write(data)
    r, users, _ = _read(path)
    assert r.header.format_version == 1 and r.blob(users[0]) == b"abc" * 1000
    data[8:10] = (3).to_bytes(2, "little")
    open(path, "wb").write(data)
    with pytest.raises(tf.TraceFormatError, match="format version 3, this reader knows 1, 2"):
        TraceReader(path)
