"""Append records to a trace file.

One write() (writev) per batch, on an O_APPEND descriptor: a record is
either entirely in the file or not at all, and whatever was written survives
the process being killed (the kernel owns the data once write() returns).

Two paths.  ``write()`` is synchronous: a call's entry record is on disk
before the call runs.  ``submit()`` hands a batch (a call's outputs, the
user buffers it moved, ring traffic) to a writer thread, which checksums,
compresses and writes while the program goes on.  Batches keep their order;
an entry written meanwhile may land before an earlier call's outputs, which
the reader expects (records name their call by seq).  The pending bytes are
bounded, so a program producing data faster than it can be written is
slowed down, not allowed to eat memory.

Payloads are written once per content.  The dedupe key is the size and the
CRC-32 (which the record's checksum needs anyway: one pass over the bytes,
at 2 GB/s), and a key that matches is confirmed by comparing the bytes with
the earlier payload (read back from the file), so two different payloads
are never taken for one.  A blob's id is its number in the trace.

Compression is adaptive.  zlib (level 1) runs at 100-400 MB/s, much slower
than a program can move data and than storing it (a copy and a CRC: over
1 GB/s on one core), and on the simulator the program's own work needs the
CPU it would take.  So a payload is compressed only if it is small (at most
COMPRESS_MAX), a sample says it pays, and the writer keeps up: the program
is not waiting for it (at exit, or held back by MAX_PENDING) and little else
is queued.  Everything else is stored as it is, checksummed on every core
while the program waits.  A program that moves small buffers gets a
compressed trace; one that moves big ones gets a trace written at memory
speed (and as big as the data).
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
import zlib

from traces import format as tf

COMPRESS_MIN = 512          # smaller payloads are stored as they are
SAMPLE = 64 << 10           # big payloads: compress only if a sample shrinks well
SAMPLE_RATIO = 0.6
SYNC_COMPRESS_MAX = 4 * SAMPLE  # written while the program waits: only this small is compressed
MAX_PENDING = 512 << 20     # bytes queued for the writer thread before submit() waits

COMPRESS_MAX = 1 << 20      # bigger payloads are stored as they are
IDLE_BACKLOG = 4 << 20      # compress only while at most this much waits for the writer
WIDE_MIN = 1 << 20          # while the program waits, payloads this big are checksummed on every core
STAGING_MAP_MIN = 1 << 20   # staging buffers this big are mmaps
COMPARE_STEP = 256 << 10    # byte comparisons go this far at a time (no big temporary copies)
IOV_MAX = 1024
_pool = None


def _workers():
    """Threads for checksums: zlib.crc32 releases the GIL on big buffers, so
    the slices of one payload use every core."""
    global _pool
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor
        _pool = ThreadPoolExecutor(max_workers=_cores(), thread_name_prefix="aishim-trace")
    return _pool


def _cores() -> int:
    return max(2, os.cpu_count() or 2)


def same_bytes(a, b) -> bool:
    """a == b for any two buffers, a slice at a time: no copy of the whole
    (comparing memoryviews directly goes byte by byte, 10x slower)."""
    a, b = memoryview(a), memoryview(b)
    if a.nbytes != b.nbytes:
        return False
    a, b = a.cast("B"), b.cast("B")
    return all(bytes(a[i:i + COMPARE_STEP]) == bytes(b[i:i + COMPARE_STEP])
               for i in range(0, len(a), COMPARE_STEP))


# -- CRC-32 of a concatenation from the CRCs of its parts (zlib's crc32_combine,
#    which Python does not expose): the slices of a payload are checksummed in
#    parallel, and a record's CRC is put together from its parts'.

_POLY = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial (bit-reflected)."""
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


_X2N = [1 << 30]                    # x^(2^k) modulo the polynomial
for _ in range(31):
    _X2N.append(_multmodp(_X2N[-1], _X2N[-1]))
_shift_cache: dict[int, int] = {}


def _x8n(n: int) -> int:
    """x^(8n) modulo the polynomial: appending n bytes shifts a CRC by this."""
    p = _shift_cache.get(n)
    if p is None:
        p, k, m = 1 << 31, 3, n
        while m:
            if m & 1:
                p = _multmodp(_X2N[k & 31], p)
            m >>= 1
            k += 1
        if len(_shift_cache) < 64:
            _shift_cache[n] = p
    return p


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A + B, from crc32(A), crc32(B) and len(B)."""
    return _multmodp(_x8n(len2), crc1) ^ crc2 if len2 else crc1


# -- payload codecs: 0 stored, 1 zlib, 2 zlib chunks (u32 n, n x u32 size, n
#    streams; format version 1 wrote it for big payloads)

def decompress(codec: int, body) -> bytes:
    """The payload of a codec 1 or 2 body; zlib.error if it is damaged."""
    if codec == 1:
        return zlib.decompress(body)
    if codec != 2:
        raise ValueError(f"unknown codec {codec}")
    n = int.from_bytes(body[:4], "little")
    sizes = [int.from_bytes(body[4 + 4 * i:8 + 4 * i], "little") for i in range(n)]
    pos, out = 4 + 4 * n, []
    for size in sizes:
        out.append(zlib.decompress(body[pos:pos + size]))
        pos += size
    if pos != len(body):
        raise zlib.error(f"chunked payload has {len(body) - pos} stray bytes")
    return b"".join(out)


def _crc(data, wide: bool) -> int:
    """CRC-32 of data.  In one call, which releases the GIL once: a thread
    that takes it back often, while the program's thread runs Python, waits
    up to the switch interval (5 ms) each time.  wide: the program is waiting
    anyway - one slice per core, put together."""
    view = memoryview(data).cast("B")
    k = min(_cores(), len(view) // WIDE_MIN) if wide else 1
    if k < 2:
        return zlib.crc32(view)
    step = -(-len(view) // k)
    slices = [view[i:i + step] for i in range(0, len(view), step)]
    crc = 0
    for piece, c in zip(slices, _workers().map(zlib.crc32, slices)):
        crc = crc32_combine(crc, c, len(piece))
    return crc


def _worth_compressing(data) -> bool:
    """zlib is slow: for a big payload, first ask a sample whether compressing
    pays (float data often does not)."""
    return len(data) >= COMPRESS_MIN and (
        len(data) <= 4 * SAMPLE or len(zlib.compress(data[:SAMPLE], 1)) < SAMPLE * SAMPLE_RATIO)


class Blob:
    """A payload still to be checksummed and stored, and the record that
    refers to it: make(blob_id) -> encoded record.  release() gives a staging
    buffer back once the payload is written."""

    __slots__ = ("data", "make", "release")

    def __init__(self, data, make, release=None):
        self.data = data
        self.make = make
        self.release = release


class Staging:
    """Reusable buffers for payloads copied at call time and written later.
    Fresh big allocations cost a page fault per page; recycled ones do not.
    A big copy may be shared by the driver's copy threads (split, given by
    the driver: pydriver/copythreads.py run(fn, n)), so the faults and the
    memmove run on every core while the program waits in its call: 64 MiB
    into a fresh buffer 26 -> 18 ms, into a recycled one 9.6 -> 5.3 ms (a
    bytearray, zero-filled first, took 40 ms)."""

    def __init__(self, keep: int = 1 << 30):
        self.keep = keep
        self.free: list = []                # bytearrays and mmaps
        self.lock = threading.Lock()
        self.split = lambda fn, n: fn(0, n)

    def copy(self, local_addr: int, n: int):
        import ctypes
        buf = None
        with self.lock:
            for i, b in enumerate(self.free):
                if n <= len(b) <= 2 * n + (1 << 20):
                    buf = self.free.pop(i)
                    break
        if buf is None:
            buf = _mapped(n) if n >= STAGING_MAP_MIN else bytearray(n)
        dst = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        self.split(lambda off, size: ctypes.memmove(dst + off, local_addr + off, size), n)
        return memoryview(buf)[:n], lambda: self._give_back(buf)

    def _give_back(self, buf) -> None:
        with self.lock:
            if sum(len(b) for b in self.free) + len(buf) <= self.keep:
                self.free.append(buf)


def _mapped(n: int):
    import mmap
    return mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


class _Stored:
    """A payload in the trace: its id, dedupe key, and where its bytes are -
    in memory until its batch is written (data), then in the file (codec,
    offset and size of the body)."""

    __slots__ = ("bid", "key", "data", "codec", "offset", "size", "index")

    def __init__(self, bid: int, key: tuple, data, codec: int, size: int):
        self.bid, self.key, self.data, self.codec, self.size = bid, key, data, codec, size
        self.offset = self.index = 0


class TraceWriter:
    def __init__(self, path: str, *, pid: int, argv: list[str], fw_version: int, exclusive: bool = True):
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
        self.path = path
        self.fd = os.open(path, flags, 0o644)
        self._rfd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)   # to compare with earlier payloads
        self.lock = threading.Lock()            # stored payloads, counters
        self._wlock = threading.Lock()          # the file's end: writes and self.size
        self.size = 0                           # bytes written
        self._stored: dict[tuple, list[_Stored]] = {}    # (size, crc32) -> payloads in the file
        self._ids = itertools.count(1)
        self.records = 0
        self.calls = 0
        self._codecs = {t: lay.codec() for t, lay in tf.PAYLOADS.items()}
        self._rh = tf.RecordHeader.codec()
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._pending = 0                       # bytes submitted and not yet written
        self._done = 0                          # ... of which the writer has already stored
        self._held = 0                          # submit() calls waiting for the writer
        self._closing = False
        self._cv = threading.Condition()
        schema = zlib.compress(tf.schema_bytes(), 6)
        argv_bytes = b"\0".join(a.encode("utf-8", "surrogateescape") for a in argv)
        hdr = tf.FileHeader.codec()
        head = hdr.pack(hdr.make(
            format_version=tf.FORMAT_VERSION, uapi_version=0x10000, fw_version=fw_version, pid=pid,
            t_start_ns=time.time_ns(), schema_hash=tf.schema_hash(), schema_size=len(schema),
            argv_size=len(argv_bytes)))
        self._write([head + schema + argv_bytes])

    def _write(self, parts: list) -> int:
        """Write buffers in order, one writev() when they fit in one; the
        file offset of the first."""
        parts = [memoryview(p).cast("B") for p in parts if len(p)]
        with self._wlock:
            start = self.size
            i = 0
            while i < len(parts):
                n = os.writev(self.fd, parts[i:i + IOV_MAX])
                self.size += n
                while n:
                    if n >= len(parts[i]):
                        n -= len(parts[i])
                        i += 1
                    else:
                        parts[i] = parts[i][n:]
                        n = 0
        return start

    def _count(self, rtype: int) -> None:
        with self.lock:
            self.records += 1
            if rtype == tf.RecordType.CALL:
                self.calls += 1

    def encode(self, rtype: int, tail=b"", **fields) -> bytes:
        """One record, ready to be written (alone or in a batch)."""
        codec = self._codecs[rtype]
        payload = codec.pack(codec.make(**fields)) + bytes(tail)
        if len(payload) > tf.MAX_RECORD:
            raise ValueError(f"record of {len(payload)} bytes is too large")
        self._count(rtype)
        return self._rh.pack(self._rh.make(length=len(payload), type=rtype, crc=tf.crc(rtype, payload))) + payload

    # -- payloads ------------------------------------------------------------

    def _program_waits(self) -> bool:
        """The program is waiting for the writer: at exit, or held back by
        MAX_PENDING.  Then nothing is compressed and every core checksums."""
        return self._closing or self._held > 0

    def _keeping_up(self) -> bool:
        return not self._program_waits() and self._pending - self._done <= IDLE_BACKLOG

    def blob(self, data, out: list, new: list, sync: bool = True) -> int:
        """Id of data.  The first time it is seen, appends its BLOB record (as
        buffers to write) to out, and a _Stored to new (this batch's new
        payloads).  sync: the program is waiting for this write (else the
        writer thread is storing a submitted batch)."""
        n = len(data)
        crc = _crc(data, sync or self._program_waits())
        key = (n, crc)
        with self.lock:
            candidates = list(self._stored.get(key, ()))
        for s in candidates + [s for s in new if s.key == key]:
            if self._same(s, data):
                return s.bid
        bufs, codec, size = self._blob_record(n, *self._store(data, crc, sync))
        s = _Stored(bid=self._bid(bufs), key=key, data=data, codec=codec, size=size)
        s.index = len(out) + 1              # the body is bufs[1]
        out.extend(bufs)
        new.append(s)
        return s.bid

    def _store(self, data, crc: int, sync: bool) -> tuple:
        """(codec, body, crc of body): zlib if the payload is small, the writer
        has time for it (see the module's docstring) and a sample says it
        pays; else the payload as it is."""
        n = len(data)
        if sync:
            may = n <= SYNC_COMPRESS_MAX
        else:
            may = n <= COMPRESS_MAX and self._keeping_up()
            self._done += n
        if may and _worth_compressing(data):
            packed = zlib.compress(data, 1)
            if len(packed) < n * 0.9:
                return 1, packed, zlib.crc32(packed)
        return 0, data, crc

    def _blob_record(self, raw_size: int, codec: int, body, body_crc: int) -> tuple[list, int, int]:
        """The buffers of a BLOB record - the record header and fixed part,
        the body - its codec and the size of its body.  The header is filled
        in by _bid()."""
        fixed = self._codecs[tf.RecordType.BLOB].size
        if fixed + len(body) > tf.MAX_RECORD:
            raise ValueError(f"record of {fixed + len(body)} bytes is too large")
        return [(raw_size, codec, body_crc, fixed + len(body)), body], codec, len(body)

    def _bid(self, bufs: list) -> int:
        """A new blob id, and bufs[0] made the BLOB record's header with it."""
        raw_size, codec, body_crc, length = bufs[0]
        bid = next(self._ids)
        fields = self._codecs[tf.RecordType.BLOB]
        head = fields.pack(fields.make(id=bid, raw_size=raw_size, codec=codec))
        crc = crc32_combine(zlib.crc32(head, zlib.crc32(bytes([tf.RecordType.BLOB]))), body_crc,
                            length - len(head))
        self._count(tf.RecordType.BLOB)
        bufs[0] = self._rh.pack(self._rh.make(length=length, type=tf.RecordType.BLOB, crc=crc)) + head
        return bid

    def _same(self, s: _Stored, data) -> bool:
        """Is data the payload s?  Compared byte for byte, with the bytes in
        memory (s is in this batch) or read back from the file."""
        if s.data is not None:
            return same_bytes(s.data, data)
        if s.codec != 0:
            try:
                return same_bytes(decompress(s.codec, os.pread(self._rfd, s.size, s.offset)), data)
            except (zlib.error, ValueError):
                return False
        view = memoryview(data).cast("B")
        buf = bytearray(min(COMPARE_STEP, s.size))
        for i in range(0, s.size, COMPARE_STEP):
            n = min(COMPARE_STEP, s.size - i)
            if n < len(buf):
                buf = bytearray(n)
            if os.preadv(self._rfd, [buf], s.offset + i) != n or buf != view[i:i + n]:
                return False
        return True

    def resolve(self, items: list, new: list, sync: bool = True) -> list:
        """Buffers to write for a batch of records and Blobs."""
        out: list = []
        for it in items:
            if isinstance(it, Blob):
                out.append(it.make(self.blob(it.data, out, new, sync)))
            else:
                out.append(it)
        return out

    def write(self, items: list, sync: bool = True) -> None:
        """Write a batch now, in the calling thread."""
        if not items:
            return
        new: list[_Stored] = []
        out = self.resolve(items, new, sync)
        start = self._write(out)
        if new:
            # Where this batch's new payloads are, for comparing later ones.
            ends = list(itertools.accumulate(len(b) for b in out))
            with self.lock:
                for s in new:
                    s.offset, s.data = start + ends[s.index - 1], None
                    self._stored.setdefault(s.key, []).append(s)
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
            if self._pending > MAX_PENDING:
                self._held += 1
                while self._pending > MAX_PENDING:
                    self._cv.wait()
                self._held -= 1
            self._pending += size
        self._queue.put((items, size))

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                items, size = job
                self.write(items, sync=False)
                with self._cv:
                    self._pending -= size
                    self._done = 0
                    self._cv.notify_all()
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        if self._queue is not None:
            self._queue.join()

    def close(self) -> None:
        self._closing = True            # the program waits from here: store, do not compress
        self.flush()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self.fd < 0:
            return
        self._write([self.encode(tf.RecordType.END, records=self.records + 1, calls=self.calls,
                                 t_ns=time.monotonic_ns())])
        os.close(self.fd)
        os.close(self._rfd)
        self.fd = -1
