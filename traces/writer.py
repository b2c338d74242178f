"""Append records to a trace file.

One write() per batch, on an O_APPEND descriptor: a record is either
entirely in the file or not at all, and whatever was written survives the
process being killed (the kernel owns the data once write() returns).

Two paths.  ``write()`` is synchronous: a call's entry record is on disk
before the call runs.  ``submit()`` hands a batch (a call's outputs, the
user buffers it moved, ring traffic) to a writer thread, which hashes,
compresses and writes while the program goes on - hashing and zlib cost
more than simulating a copy, and there is a second core.  Batches keep
their order; an entry written meanwhile may land before an earlier call's
outputs, which the reader expects (records name their call by seq).  The
pending bytes are bounded, so a program producing data faster than it can
be compressed is slowed down, not allowed to eat memory.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
import zlib

from traces import format as tf

COMPRESS_MIN = 512          # smaller payloads are stored as they are
SAMPLE = 64 << 10           # big payloads: compress only if a sample shrinks well
SAMPLE_RATIO = 0.6
MAX_PENDING = 512 << 20     # bytes queued for the writer thread before submit() waits


CHUNK = 8 << 20             # big payloads are hashed and compressed in chunks, in parallel
_pool = None


def _workers():
    """Threads for chunk work: hashlib and zlib release the GIL on big
    buffers, so the chunks of one payload use every core."""
    global _pool
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor
        _pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="aishim-trace")
    return _pool


def _chunks(data) -> list:
    view = memoryview(data)
    return [view[i:i + CHUNK] for i in range(0, len(view), CHUNK)]


def _digest(data) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def blob_id(data) -> int:
    """A payload's identity: BLAKE2 of the payload, or for a big one, of the
    BLAKE2s of its chunks (computed in parallel)."""
    if len(data) <= CHUNK:
        digest = hashlib.blake2b(data, digest_size=8).digest()
    else:
        parts = list(_workers().map(_digest, _chunks(data)))
        digest = hashlib.blake2b(b"".join(parts), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


def compress(raw: bytes) -> tuple[int, bytes]:
    """(codec, body): 1 = zlib; 2 = zlib chunks (u32 count, u32 sizes, streams)."""
    if len(raw) <= CHUNK:
        return 1, zlib.compress(raw, 1)
    parts = list(_workers().map(lambda c: zlib.compress(c, 1), _chunks(raw)))
    head = len(parts).to_bytes(4, "little") + b"".join(len(p).to_bytes(4, "little") for p in parts)
    return 2, head + b"".join(parts)


def decompress(codec: int, body) -> bytes:
    if codec == 1:
        return zlib.decompress(body)
    n = int.from_bytes(body[:4], "little")
    sizes = [int.from_bytes(body[4 + 4 * i:8 + 4 * i], "little") for i in range(n)]
    pos, out = 4 + 4 * n, []
    for size in sizes:
        out.append(zlib.decompress(body[pos:pos + size]))
        pos += size
    if pos != len(body):
        raise zlib.error(f"chunked payload has {len(body) - pos} stray bytes")
    return b"".join(out)


class Blob:
    """A payload still to be hashed and stored, and the record that refers to
    it: make(blob_id) -> encoded record.  release() gives a staging buffer
    back once the payload is written."""

    __slots__ = ("data", "make", "release")

    def __init__(self, data, make, release=None):
        self.data = data
        self.make = make
        self.release = release


class Staging:
    """Reusable buffers for payloads copied at call time and written later.
    Fresh big allocations cost a page fault per page (malloc mmaps them);
    recycled ones do not."""

    def __init__(self, keep: int = 1 << 30):
        self.keep = keep
        self.free: list[bytearray] = []
        self.lock = threading.Lock()

    def copy(self, local_addr: int, n: int):
        import ctypes
        buf = None
        with self.lock:
            for i, b in enumerate(self.free):
                if n <= len(b) <= 2 * n + (1 << 20):
                    buf = self.free.pop(i)
                    break
        if buf is None:
            buf = bytearray(n)
        ctypes.memmove((ctypes.c_char * len(buf)).from_buffer(buf), local_addr, n)
        return memoryview(buf)[:n], lambda: self._give_back(buf)

    def _give_back(self, buf: bytearray) -> None:
        with self.lock:
            if sum(len(b) for b in self.free) + len(buf) <= self.keep:
                self.free.append(buf)


class TraceWriter:
    def __init__(self, path: str, *, pid: int, argv: list[str], fw_version: int, exclusive: bool = True):
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
        self.path = path
        self.fd = os.open(path, flags, 0o644)
        self.lock = threading.Lock()            # blob set, counters
        self._blobs: set[int] = set()
        self.records = 0
        self.calls = 0
        self._codecs = {t: lay.codec() for t, lay in tf.PAYLOADS.items()}
        self._rh = tf.RecordHeader.codec()
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._cv = threading.Condition()
        schema = zlib.compress(tf.schema_bytes(), 6)
        argv_bytes = b"\0".join(a.encode("utf-8", "surrogateescape") for a in argv)
        hdr = tf.FileHeader.codec()
        head = hdr.pack(hdr.make(
            format_version=tf.FORMAT_VERSION, uapi_version=0x10000, fw_version=fw_version, pid=pid,
            t_start_ns=time.time_ns(), schema_hash=tf.schema_hash(), schema_size=len(schema),
            argv_size=len(argv_bytes)))
        self._write(head + schema + argv_bytes)

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
        with self.lock:
            self.records += 1
            if rtype == tf.RecordType.CALL:
                self.calls += 1
        return self._rh.pack(self._rh.make(length=len(payload), type=rtype, crc=tf.crc(rtype, payload))) + payload

    def blob(self, data, out: list) -> int:
        """Id of data; appends its BLOB record to out the first time it is seen."""
        bid = blob_id(data)
        with self.lock:
            if bid in self._blobs:
                return bid
            self._blobs.add(bid)
        raw = data if isinstance(data, bytes) else bytes(data)
        codec, body = 0, raw
        # zlib runs at 100-600 MB/s: for a big payload, first ask a sample
        # whether compressing is worth it (float data often is not).
        worth = len(raw) >= COMPRESS_MIN and (
            len(raw) <= 4 * SAMPLE or len(zlib.compress(raw[:SAMPLE], 1)) < SAMPLE * SAMPLE_RATIO)
        if worth:
            kind, packed = compress(raw)
            if len(packed) < len(raw) * 0.9:
                codec, body = kind, packed
        out.append(self.encode(tf.RecordType.BLOB, body, id=bid, raw_size=len(raw), codec=codec))
        return bid

    def resolve(self, items: list) -> list[bytes]:
        """Encoded records for a batch of records and Blobs."""
        out: list[bytes] = []
        for it in items:
            if isinstance(it, Blob):
                out.append(it.make(self.blob(it.data, out)))
            else:
                out.append(it)
        return out

    def write(self, items: list) -> None:
        """Write a batch now, in the calling thread."""
        if items:
            self._write(b"".join(self.resolve(items)))
            for it in items:
                if isinstance(it, Blob) and it.release is not None:
                    it.release()

    # -- the writer thread ---------------------------------------------------

    def submit(self, items: list) -> None:
        """Write a batch soon, in order with the other submitted batches."""
        if not items:
            return
        size = sum(len(it.data) if isinstance(it, Blob) else len(it) for it in items)
        with self._cv:
            if self._thread is None:
                self._queue = queue.Queue()
                self._thread = threading.Thread(target=self._run, name="aishim-trace-writer", daemon=True)
                self._thread.start()
            while self._pending > MAX_PENDING:
                self._cv.wait()
            self._pending += size
        self._queue.put((items, size))

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                items, size = job
                self.write(items)
                with self._cv:
                    self._pending -= size
                    self._cv.notify_all()
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        if self._queue is not None:
            self._queue.join()

    def close(self) -> None:
        self.flush()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self.fd < 0:
            return
        self._write(self.encode(tf.RecordType.END, records=self.records + 1, calls=self.calls,
                                t_ns=time.monotonic_ns()))
        os.close(self.fd)
        self.fd = -1
