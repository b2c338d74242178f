"""Read a trace file: header, schema, and the records in order.

Damage is reported, never decoded: a bad magic, an unknown record type, a
CRC mismatch or a length that makes no sense raise TraceFormatError naming
the byte offset and the record index.  A trace that simply stops (the
recorded process was killed) yields every complete record and then sets
``truncated`` to the offset of the incomplete one.
"""

from __future__ import annotations

import json
import mmap
import os
import zlib
from dataclasses import dataclass

from traces import format as tf
from traces.writer import decompress, same_bytes


@dataclass
class Record:
    index: int
    offset: int          # of the record header in the file
    type: int
    f: object            # the decoded fixed part
    tail: memoryview     # the variable part

    @property
    def type_name(self) -> str:
        return tf.TYPE_NAMES.get(self.type, str(self.type))


class TraceReader:
    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    raise tf.TraceFormatError(f"{path}: empty file, not a trace", 0)
                self._map = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        except OSError as e:
            raise tf.TraceFormatError(f"{path}: {e.strerror}") from None
        self.data = memoryview(self._map)
        self._read_header()
        self.truncated: int | None = None
        self.ended = False
        self.blobs: dict[int, tuple] = {}       # id -> (offset of body, size, raw_size, codec)

    def _read_header(self) -> None:
        hdr = tf.FileHeader.codec()
        if len(self.data) < hdr.size:
            raise tf.TraceFormatError(f"{self.path}: {len(self.data)} bytes, too short for a trace header", 0)
        if bytes(self.data[:8]) != tf.MAGIC:
            raise tf.TraceFormatError(f"{self.path}: bad magic {bytes(self.data[:8])!r}, not an aicard trace", 0)
        h = hdr.unpack(self.data)
        if h.format_version not in tf.READABLE_VERSIONS:
            raise tf.TraceFormatError(f"{self.path}: trace format version {h.format_version}, "
                                      f"this reader knows {', '.join(map(str, tf.READABLE_VERSIONS))}", 8)
        self.header = h
        pos = hdr.size
        end = pos + h.schema_size + h.argv_size
        if end > len(self.data):
            raise tf.TraceFormatError(f"{self.path}: header says {h.schema_size + h.argv_size} bytes of schema "
                                      f"and argv, the file is shorter", pos)
        try:
            self.schema = json.loads(zlib.decompress(self.data[pos:pos + h.schema_size]))
        except (zlib.error, ValueError) as e:
            raise tf.TraceFormatError(f"{self.path}: schema unreadable: {e}", pos) from None
        argv = bytes(self.data[pos + h.schema_size:end])
        self.argv = [a.decode("utf-8", "surrogateescape") for a in argv.split(b"\0")] if argv else []
        self.first_record = end

    # -- schema --------------------------------------------------------------

    @property
    def schema_matches(self) -> bool:
        return self.header.schema_hash == tf.schema_hash()

    def schema_changes(self) -> list[str]:
        return tf.schema_changes(self.schema, tf.schema())

    # -- records ---------------------------------------------------------------

    def records(self):
        """Every record in file order (BLOBs included)."""
        rh = tf.RecordHeader.codec()
        codecs = {t: lay.codec() for t, lay in tf.PAYLOADS.items()}
        data = self.data
        pos, index, n = self.first_record, 0, len(data)
        while pos < n:
            if pos + rh.size > n:
                self.truncated = pos
                return
            try:
                h = rh.unpack(data, pos)
            except ValueError:
                raise tf.TraceFormatError(f"{self.path}: record header is damaged", pos, index) from None
            if h.length > tf.MAX_RECORD:
                raise tf.TraceFormatError(f"{self.path}: record length {h.length} is impossible", pos, index)
            body = pos + rh.size
            if body + h.length > n:
                self.truncated = pos
                return
            payload = data[body:body + h.length]
            if tf.crc(h.type, payload) != h.crc:
                raise tf.TraceFormatError(f"{self.path}: checksum mismatch, the record is damaged", pos, index)
            codec = codecs.get(h.type)
            if codec is None:
                raise tf.TraceFormatError(f"{self.path}: unknown record type {h.type}", pos, index)
            if h.length < codec.size:
                raise tf.TraceFormatError(f"{self.path}: {tf.TYPE_NAMES[h.type]} record of {h.length} bytes, "
                                          f"needs {codec.size}", pos, index)
            try:
                fields = codec.unpack(payload)
            except ValueError as e:
                raise tf.TraceFormatError(f"{self.path}: {tf.TYPE_NAMES[h.type]} record: {e}", pos, index) from None
            tail = payload[codec.size:]
            if h.type == tf.RecordType.BLOB:
                self.blobs[fields.id] = (body + codec.size, len(tail), fields.raw_size, fields.codec)
            elif h.type == tf.RecordType.END:
                self.ended = True
            yield Record(index, pos, h.type, fields, tail)
            pos = body + h.length
            index += 1

    def _where(self, bid: int) -> tuple:
        try:
            off, size, raw_size, codec = self.blobs[bid]
        except KeyError:
            raise tf.TraceFormatError(f"{self.path}: blob {bid:#x} is referenced but missing") from None
        if codec == 0 and size != raw_size:
            raise tf.TraceFormatError(f"{self.path}: blob {bid:#x} is {size} bytes, header says {raw_size}", off)
        return off, size, raw_size, codec

    def blob(self, bid: int) -> bytes:
        off, size, raw_size, codec = self._where(bid)
        body = self.data[off:off + size]
        if codec == 0:
            return bytes(body)
        if codec not in (1, 2):
            raise tf.TraceFormatError(f"{self.path}: blob {bid:#x} has unknown codec {codec}", off)
        try:
            raw = decompress(codec, body)
        except (zlib.error, IndexError, ValueError) as e:
            raise tf.TraceFormatError(f"{self.path}: blob {bid:#x} does not decompress: {e}", off) from None
        if len(raw) != raw_size:
            raise tf.TraceFormatError(f"{self.path}: blob {bid:#x} is {len(raw)} bytes, header says {raw_size}", off)
        return raw

    def blob_equals(self, bid: int, data) -> bool:
        """Does blob bid hold exactly data?  A stored blob is compared where
        it lies in the file, without a copy."""
        off, size, raw_size, codec = self._where(bid)
        if len(data) != raw_size:
            return False
        if codec == 0:
            return same_bytes(self.data[off:off + size], data)
        return same_bytes(self.blob(bid), data)

    def close(self) -> None:
        self.data.release()
        self._map.close()
