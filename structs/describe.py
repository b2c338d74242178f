"""Human-readable renderings of decoded records (strace style).

Kept apart from the layouts: decoding never depends on how it is shown."""

from __future__ import annotations

from structs.layout import Layout, c_string

# Fields that hold addresses or byte counts read best in hex.
_HEX_HINTS = ("va", "addr", "pointer", "ptr", "dst", "src", "size", "offset", "image", "cmds",
              "params", "fence", "timestamp", "timeout")


def _is_hex(name: str) -> bool:
    return any(h in name for h in _HEX_HINTS)


def value(name: str, v) -> str:
    if isinstance(v, (bytes, bytearray)):
        if name == "name" or (v and v.rstrip(b"\0").isascii() and b"\0" in v and v[:1].isalpha()):
            return repr(c_string(v))
        nz = bytes(v).rstrip(b"\0")
        return f"<{len(v)} bytes{'' if nz else ', zero'}>" if len(nz) > 16 or not nz else nz.hex()
    if isinstance(v, tuple):
        return "[" + ", ".join(value(name, x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v)
    if _is_hex(name) and v >= 10:
        return hex(v)
    return str(v)


def record(layout: Layout, rec, only=None, exclude=(), **params) -> str:
    names = only if only is not None else [
        f.name for f in layout.fields(**params) if not f.is_const and f.name not in exclude]
    return "{" + ", ".join(f"{n}={value(n, getattr(rec, n))}" for n in names) + "}"
