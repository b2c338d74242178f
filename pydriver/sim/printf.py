"""Device printf: parse a C format string once, format one thread's arguments.

Supported: %d %i %u %x %X %o %c %f %F %e %E %g %G %p %% with flags "-+ #0", a width and a
precision (not "*"), and the length modifiers hh h (narrowing) and l ll z j t (the argument
is a 64-bit register pair).  Floating conversions read an f32 register (there are no doubles
on the device).  %s and %n are not supported: a format using them does not assemble, and the
executor faults on it as an illegal instruction.
"""

from __future__ import annotations

import re
import struct

_SPEC = re.compile(rb"%(?P<flags>[-+ #0]*)(?P<width>\d*)(?:\.(?P<prec>\d*))?"
                   rb"(?P<len>hh|h|ll|l|z|j|t)?(?P<conv>[diuxXocfFeEgGp%])")

WIDE_LENGTHS = (b"l", b"ll", b"z", b"j", b"t")


class FormatError(ValueError):
    pass


class Conversion:
    """One %-conversion: how many registers it reads and how to turn them into bytes."""
    __slots__ = ("text", "conv", "wide", "narrow", "alt_octal")

    def __init__(self, flags: bytes, width: bytes, prec: bytes | None, length: bytes | None,
                 conv: bytes):
        self.conv = conv
        self.wide = length in WIDE_LENGTHS or conv == b"p"
        self.narrow = {b"hh": 8, b"h": 16}.get(length or b"", 0)
        pyconv = {b"i": b"d", b"u": b"d", b"p": b"x"}.get(conv, conv)
        if conv == b"o" and b"#" in flags:
            # Python's "#o" writes "0o17"; C's writes "017".  Drop it and let format() add "0".
            flags = flags.replace(b"#", b"")
            self.alt_octal = True
        else:
            self.alt_octal = False
        spec = b"%" + flags + width + (b"." + prec if prec is not None else b"") + pyconv
        if conv == b"p":
            spec = b"0x%" + flags + width + b"x"
        self.text = spec

    def format(self, bits: int) -> bytes:
        """bits: the raw register value (32 or 64 bits, as `wide` says)."""
        conv = self.conv
        if conv in b"fFeEgG":
            value = struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]
            return self.text % value
        width = 64 if self.wide else 32
        if self.narrow:
            width = self.narrow
        bits &= (1 << width) - 1
        if conv in b"di" and bits >> (width - 1):
            bits -= 1 << width
        if conv == b"c":
            return self.text % (bits & 0xFF)
        if self.alt_octal and bits:
            return (self.text % bits).replace(b"%o" % bits, b"0%o" % bits, 1)
        return self.text % bits


def parse_format(fmt: bytes) -> list:
    """Split a format into literal byte strings and Conversion objects.
    Raises FormatError for an unsupported or malformed conversion."""
    parts: list = []
    pos = 0
    while True:
        i = fmt.find(b"%", pos)
        if i < 0:
            if pos < len(fmt):
                parts.append(fmt[pos:])
            return parts
        if i > pos:
            parts.append(fmt[pos:i])
        m = _SPEC.match(fmt, i)
        if m is None:
            raise FormatError(f"unsupported conversion at {fmt[i:i + 6]!r}")
        if m["conv"] == b"%":
            parts.append(b"%")
        else:
            parts.append(Conversion(m["flags"], m["width"], m["prec"], m["len"], m["conv"]))
        pos = m.end()


def conversions(parts: list) -> list:
    return [p for p in parts if isinstance(p, Conversion)]


def render(parts: list, values: list) -> bytes:
    """Format with one raw register value per Conversion, in order."""
    out = []
    it = iter(values)
    for p in parts:
        out.append(p if isinstance(p, bytes) else p.format(next(it)))
    return b"".join(out)
