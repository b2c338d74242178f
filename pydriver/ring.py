"""Rings in VRAM: a RingHeader (head, tail, size) followed by a data area of
variable-size entries, 8-byte aligned.  Each entry starts with a u16 type and
a u16 entry_size; an entry that would run past the end of the data area is
not split: the producer writes a zero header ("wrap") and starts again at 0.

The same code serves both directions: the driver produces commands and the
firmware consumes them; the firmware produces completions and the driver
consumes them.  Each side reads and writes the header through the layout of
*its own* firmware version, as two separately built programs would.
"""

from __future__ import annotations

import struct

from structs import fw

ALIGN = 8
_ENTRY_HEAD = struct.Struct("<HH")        # type, entry_size: the same in every version


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
        self.hdr = fw.FwStructs(version).RingHeader.codec()
        self.on_entry = None          # recorder hook: fn(kind, ring_offset, bytes)

    # -- header ------------------------------------------------------------

    def init(self) -> None:
        self.hdr.pack_into(self.mem, self.base, self.hdr.make(size=self.size))

    def header(self):
        try:
            h = self.hdr.unpack(self.mem, self.base)
        except ValueError as e:
            raise RingError(f"ring header at VRAM 0x{self.base:x}: {e}") from None
        if h.size != self.size or h.head >= h.size or h.tail >= h.size or h.head % ALIGN or h.tail % ALIGN:
            raise RingError(f"ring header at VRAM 0x{self.base:x} is corrupt: head={h.head:#x} "
                            f"tail={h.tail:#x} size={h.size:#x}")
        return h

    # -- producer ----------------------------------------------------------

    def push(self, entry: bytes) -> int:
        """Append entry (whose bytes 2..3 already hold its size); returns its
        offset in the data area.  RingFull if the consumer is too far behind."""
        h = self.header()
        n = align(len(entry))
        tail = h.tail
        free = (h.head - tail - ALIGN) % self.size
        if tail + n > self.size:            # does not fit before the end: wrap
            if free < (self.size - tail) + n:
                raise RingFull()
            self.mem[self.data + tail:self.data + tail + 4] = 0
            h.wraps += 1
            free -= self.size - tail
            tail = 0
        if free < n:
            raise RingFull()
        start = self.data + tail
        self.mem[start:start + len(entry)] = memoryview(entry)
        if n > len(entry):
            self.mem[start + len(entry):start + n] = 0
        h.tail = (tail + n) % self.size
        self.hdr.pack_into(self.mem, self.base, h)
        if self.on_entry:
            self.on_entry(tail, bytes(entry))
        return tail

    # -- consumer ----------------------------------------------------------

    def pop_all(self):
        """Yield (offset, entry bytes, None) for every entry between head and
        tail, moving head past each as it is yielded; an entry whose size
        makes no sense yields (offset, None, first bytes) and ends the batch."""
        while True:
            h = self.header()
            if h.head == h.tail:
                return
            pos = self.data + h.head
            etype, esize = _ENTRY_HEAD.unpack_from(self.mem, pos)
            if etype == 0 and esize == 0:          # wrap marker
                h.head = 0
                self.hdr.pack_into(self.mem, self.base, h)
                continue
            avail = (h.tail - h.head) % self.size
            if esize < _ENTRY_HEAD.size or align(esize) > avail or h.head + esize > self.size:
                # Skip everything: the producer wrote something we cannot size.
                offset = h.head
                bad = bytes(self.mem[pos:pos + min(64, self.size - h.head)])
                h.head = h.tail
                self.hdr.pack_into(self.mem, self.base, h)
                yield offset, None, bad
                return
            offset = h.head
            entry = bytes(self.mem[pos:pos + esize])
            h.head = (h.head + align(esize)) % self.size
            self.hdr.pack_into(self.mem, self.base, h)
            yield offset, entry, None
