"""Append records to a trace file.

One os.write() per batch, on an O_APPEND descriptor: a record is either
entirely in the file or not at all, and whatever was written survives the
process being killed (the kernel owns the data once write() returns).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import zlib

from traces import format as tf

COMPRESS_MIN = 512          # smaller payloads are stored as they are
SAMPLE = 64 << 10           # big payloads: compress only if a sample shrinks well
SAMPLE_RATIO = 0.6


def blob_id(data) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") or 1


class TraceWriter:
    def __init__(self, path: str, *, pid: int, argv: list[str], fw_version: int, exclusive: bool = True):
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
        self.path = path
        self.fd = os.open(path, flags, 0o644)
        self.lock = threading.Lock()
        self._blobs: set[int] = set()
        self.records = 0
        self.calls = 0
        schema = zlib.compress(tf.schema_bytes(), 6)
        argv_bytes = b"\0".join(a.encode("utf-8", "surrogateescape") for a in argv)
        hdr = tf.FileHeader.codec()
        head = hdr.pack(hdr.make(
            format_version=tf.FORMAT_VERSION, uapi_version=0x10000, fw_version=fw_version, pid=pid,
            t_start_ns=time.time_ns(), schema_hash=tf.schema_hash(), schema_size=len(schema),
            argv_size=len(argv_bytes)))
        self._write(head + schema + argv_bytes)
        self._codecs = {t: lay.codec() for t, lay in tf.PAYLOADS.items()}
        self._rh = tf.RecordHeader.codec()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def encode(self, rtype: int, tail=b"", **fields) -> bytes:
        """One record, ready to be written (alone or in a batch)."""
        codec = self._codecs[rtype]
        payload = codec.pack(codec.make(**fields)) + bytes(tail)
        if len(payload) > tf.MAX_RECORD:
            raise ValueError(f"record of {len(payload)} bytes is too large")
        self.records += 1
        if rtype == tf.RecordType.CALL:
            self.calls += 1
        return self._rh.pack(self._rh.make(length=len(payload), type=rtype, crc=tf.crc(rtype, payload))) + payload

    def blob(self, data, out: list) -> int:
        """Id of data; appends its BLOB record to out the first time it is seen."""
        bid = blob_id(data)
        if bid in self._blobs:
            return bid
        self._blobs.add(bid)
        raw = bytes(data)
        codec, body = 0, raw
        # zlib runs at 100-600 MB/s: for a big payload, first ask a sample
        # whether compressing is worth it (float data often is not).
        worth = len(raw) >= COMPRESS_MIN and (
            len(raw) <= 4 * SAMPLE or len(zlib.compress(raw[:SAMPLE], 1)) < SAMPLE * SAMPLE_RATIO)
        if worth:
            packed = zlib.compress(raw, 1)
            if len(packed) < len(raw) * 0.9:
                codec, body = 1, packed
        out.append(self.encode(tf.RecordType.BLOB, body, id=bid, raw_size=len(raw), codec=codec))
        return bid

    def write(self, records: list) -> None:
        if records:
            with self.lock:
                self._write(b"".join(records))

    def close(self) -> None:
        with self.lock:
            if self.fd < 0:
                return
            self._write(self.encode(tf.RecordType.END, records=self.records + 1, calls=self.calls,
                                    t_ns=time.monotonic_ns()))
            os.close(self.fd)
            self.fd = -1
