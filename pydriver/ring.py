"""Rings in VRAM: a RingHeader (head, tail, size) followed by a data area of
variable-size entries, 8-byte aligned.  Each entry starts with a u16 type and
a u16 entry_size; an entry that would run past the end of the data area is
not split: the producer writes a zero header ("wrap") and starts again at 0.

The same code serves both directions: the driver produces commands and the
firmware consumes them; the firmware produces completions and the driver
consumes them.  Each side finds the header fields through the layout of
*its own* firmware version, as two separately built programs would.  The
producer only ever writes tail (and wraps), the consumer only head, so each
touches just its own u32 rather than rewriting the whole header.
"""

from __future__ import annotations

import struct

from structs import fw

ALIGN = 8
_ENTRY_HEAD = struct.Struct("<HH")        # type, entry_size: the same in every version
_U32 = struct.Struct("<I")


class RingFull(Exception):
    pass


class RingError(Exception):
    """The ring's memory does not make sense (bad magic, offsets out of range)."""


def align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


class Ring:
    def __init__(self, vram_u8, offset: int, total_size: int, version):
        self.mem = vram_u8
        self.base = offset
        self.data = offset + fw.RING_HEADER_SIZE
        self.size = total_size - fw.RING_HEADER_SIZE
        layout = fw.FwStructs(version).RingHeader
        self.hdr = layout.codec()
        self._head = offset + layout.field("head").offset
        self._tail = offset + layout.field("tail").offset
        self._wraps = offset + layout.field("wraps").offset
        self.on_entry = None          # recorder hook: fn(ring_offset, bytes)

    # -- header ------------------------------------------------------------

    def init(self) -> None:
        self.hdr.pack_into(self.mem, self.base, self.hdr.make(size=self.size))

    def header(self):
        """The whole header, checked (for tools and tests; the hot paths
        read single fields)."""
        try:
            h = self.hdr.unpack(self.mem, self.base)
        except ValueError as e:
            raise RingError(f"ring header at VRAM 0x{self.base:x}: {e}") from None
        if h.size != self.size:
            raise RingError(f"ring header at VRAM 0x{self.base:x} is corrupt: size={h.size:#x}")
        self._index(h.head, "head")
        self._index(h.tail, "tail")
        return h

    def _index(self, value: int, what: str) -> int:
        if value >= self.size or value % ALIGN:
            raise RingError(f"ring at VRAM 0x{self.base:x} is corrupt: {what}={value:#x} "
                            f"(data area {self.size:#x})")
        return value

    def _get(self, off: int, what: str) -> int:
        return self._index(_U32.unpack_from(self.mem, off)[0], what)

    def _head_tail(self) -> tuple[int, int]:
        """(head, tail), checked: one test for the usual case, _get for the
        message that says which is corrupt."""
        head, tail = _U32.unpack_from(self.mem, self._head)[0], _U32.unpack_from(self.mem, self._tail)[0]
        if head >= self.size or tail >= self.size or (head | tail) & (ALIGN - 1):
            self._get(self._head, "head"), self._get(self._tail, "tail")
        return head, tail

    # -- producer ----------------------------------------------------------

    def push(self, entry: bytes) -> int:
        """Append entry (whose bytes 2..3 already hold its size); returns its
        offset in the data area.  RingFull if the consumer is too far behind."""
        head, tail = self._head_tail()
        n = align(len(entry))
        free = (head - tail - ALIGN) % self.size
        if tail + n > self.size:            # does not fit before the end: wrap
            if free < (self.size - tail) + n:
                raise RingFull()
            self.mem[self.data + tail:self.data + tail + 4] = bytes(4)
            _U32.pack_into(self.mem, self._wraps, _U32.unpack_from(self.mem, self._wraps)[0] + 1)
            free -= self.size - tail
            tail = 0
        if free < n:
            raise RingFull()
        start = self.data + tail
        self.mem[start:start + n] = entry if n == len(entry) else bytes(entry) + bytes(n - len(entry))
        _U32.pack_into(self.mem, self._tail, (tail + n) % self.size)
        if self.on_entry:
            self.on_entry(tail, bytes(entry))
        return tail

    # -- consumer ----------------------------------------------------------

    def pop_all(self):
        """Yield (offset, entry bytes, None) for every entry between head and
        tail, moving head past each as it is yielded; an entry whose size
        makes no sense yields (offset, None, first bytes) and ends the batch."""
        mem, data, size, head_at = self.mem, self.data, self.size, self._head
        head, tail = self._head_tail()
        while head != tail:
            pos = data + head
            etype, esize = _ENTRY_HEAD.unpack_from(mem, pos)
            if etype == 0 and esize == 0:          # wrap marker
                head = 0
                _U32.pack_into(mem, head_at, 0)
                continue
            avail = (tail - head) % size
            n = align(esize)
            if esize < _ENTRY_HEAD.size or n > avail or head + esize > size:
                # Skip everything: the producer wrote something we cannot size.
                bad = bytes(mem[pos:pos + min(64, size - head)])
                _U32.pack_into(mem, head_at, tail)
                yield head, None, bad
                return
            entry = bytes(mem[pos:pos + esize])
            nxt = (head + n) % size
            _U32.pack_into(mem, head_at, nxt)
            yield head, entry, None
            head = nxt
            if head == tail:
                # Caught up: the producer may have added more meanwhile.
                tail = self._get(self._tail, "tail")
