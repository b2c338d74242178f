"""A binary layout declared once with construct, and what is derived from it.

The construct ``Struct`` is the single source of truth.  From it this module
derives, per parameter set (a firmware version, or nothing for the UAPI):

* the field table (name, offset, size, C-ish type) for printing, diffing and
  checking against the C header;
* a fast codec on ``struct.Struct`` for the hot ioctl and ring paths, because
  interpreting construct costs ~10 us per 32-byte struct and the whole ioctl
  budget is a few microseconds.

Only fixed-size fields are supported by the fast codec (integers, floats,
arrays of them, byte strings, ``Const`` and ``If`` on parameters); a layout
that needs more stays construct-only and says so.
"""

from __future__ import annotations

import keyword
import operator
import struct
from dataclasses import dataclass
from typing import Any, Iterable

import construct
from construct import Container

_FMT_TYPES = {
    "B": "u8", "b": "i8", "H": "u16", "h": "i16", "I": "u32", "i": "i32", "L": "u32", "l": "i32",
    "Q": "u64", "q": "i64", "e": "f16", "f": "f32", "d": "f64",
}


class LayoutError(ValueError):
    """A layout cannot be derived, or bytes do not fit it (e.g. a non-zero pad)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Field:
    """One field of a layout under one parameter set."""

    name: str
    offset: int
    size: int
    fmt: str            # struct format of one element, e.g. "I" or "8s"
    count: int          # >1 for arrays
    const: Any = None   # the required value for Const fields (pads, magics)

    @property
    def ctype(self) -> str:
        if self.fmt.endswith("s"):
            return f"u8[{self.size}]"
        base = _FMT_TYPES[self.fmt]
        return f"{base}[{self.count}]" if self.count > 1 else base

    @property
    def is_const(self) -> bool:
        return self.const is not None


def _fmt_of(sub) -> tuple[str, int] | None:
    """(element struct format, count) of a leaf subcon, or None."""
    while isinstance(sub, (construct.Adapter, construct.Transformed)) and not isinstance(sub, construct.Const):
        sub = sub.subcon
    if isinstance(sub, construct.FormatField):
        fmt = sub.fmtstr
        if fmt[0] not in "<=":
            raise LayoutError(f"field format {fmt!r} is not little-endian")
        return fmt[1:], 1
    if isinstance(sub, construct.Bytes) and isinstance(sub.length, int):
        return f"{sub.length}s", 1
    if isinstance(sub, construct.Array) and isinstance(sub.count, int):
        inner = _fmt_of(sub.subcon)
        if inner is None or inner[1] != 1 or inner[0].endswith("s"):
            return None
        return inner[0], sub.count
    return None


def flatten(subcon, params: dict | None = None) -> list[Field]:
    """The field table of a Struct for one parameter set."""
    ctx = Container(_params=Container(params or {}))
    fields: list[Field] = []
    offset = 0
    for sub in subcon.subcons:
        name = sub.name
        inner = sub.subcon if isinstance(sub, construct.Renamed) else sub
        while isinstance(inner, construct.IfThenElse):
            inner = inner.thensubcon if inner.condfunc(ctx) else inner.elsesubcon
        if inner is construct.Pass:
            continue  # a field this parameter set does not have
        const = None
        if isinstance(inner, construct.Const):
            const = inner.value
            inner = inner.subcon
        fc = _fmt_of(inner)
        if fc is None or name is None:
            raise LayoutError(f"field {name!r} of type {type(inner).__name__} has no fixed-size fast form")
        fmt, count = fc
        size = struct.calcsize("<" + fmt) * count
        fields.append(Field(name, offset, size, fmt, count, const))
        offset += size
    return fields


def _record_class(type_name: str, names: list[str]):
    """A small mutable record with __slots__; __init__ is generated because a
    generic setattr loop costs several times more on the ioctl path."""
    args = ", ".join(names)
    body = "\n".join(f"    self.{n} = {n}" for n in names) or "    pass"
    src = (f"def __init__(self, {args}):\n{body}\n" if names else "def __init__(self):\n    pass\n")
    ns: dict = {}
    exec(src, ns)  # noqa: S102 - code generated from field names only
    cls = type(type_name, (), {
        "__slots__": tuple(names),
        "__init__": ns["__init__"],
        "__repr__": lambda self: f"{type_name}(" + ", ".join(
            f"{n}={getattr(self, n)!r}" for n in names) + ")",
        "__eq__": lambda self, other: type(self) is type(other) and all(
            getattr(self, n) == getattr(other, n) for n in names),
        "_fields": tuple(names),
        "_asdict": lambda self: {n: getattr(self, n) for n in names},
    })
    return cls


class Codec:
    """struct.Struct-based encoder/decoder derived from a layout's field table."""

    def __init__(self, type_name: str, fields: list[Field]):
        self.fields = fields
        self.names = [f.name for f in fields]
        self.struct = struct.Struct("<" + "".join(
            f"{f.count}{f.fmt}" if f.count > 1 else f.fmt for f in fields))
        self.size = self.struct.size
        self.record = _record_class(type_name, self.names)
        getter = operator.attrgetter(*self.names) if self.names else (lambda rec: ())
        self._values = getter if len(self.names) != 1 else (lambda rec, g=getter: (g(rec),))
        self._arrays = [(i, f.count) for i, f in enumerate(fields) if f.count > 1]
        self._consts = []
        flat = 0
        for f in fields:
            if f.is_const:
                want = f.const if f.count > 1 else [f.const]
                self._consts.append((f.name, flat, tuple(want)))
            flat += f.count
        # make(): every field zero (or its Const value) unless given.
        self._index = {f.name: i for i, f in enumerate(fields)}
        self._defaults = tuple(self._default(f) for f in fields)
        # unpack(): where each field's values start in the flat tuple.
        self._slices = []
        pos = 0
        for f in fields:
            self._slices.append((pos, f.count))
            pos += f.count
        if self.names and all(n.isidentifier() and not keyword.iskeyword(n) for n in self.names):
            self._specialize()

    def _specialize(self) -> None:
        """Replace unpack/pack/pack_into/make/pack_values by functions generated for this
        field list: an ioctl decodes and encodes one record each, and the
        generic loops (attrgetter, const scan, __init__ call) cost more than
        the struct calls themselves (WAIT: 810 -> 365 ns for both)."""
        attrs = ", ".join(f"r.{n}" for n in self.names)
        # Arrays are tuples in a record and a run of values in the struct.
        flat_attrs = ", ".join(f"*r.{f.name}" if f.count > 1 else f"r.{f.name}" for f in self.fields)
        flat_args = ", ".join(f"*{f.name}" if f.count > 1 else f.name for f in self.fields)
        grouped = "v" if not self._arrays else ", ".join(
            f"v[{p}:{p + n}]" if n > 1 else f"v[{p}]" for p, n in self._slices)
        defaults = ", ".join(f"{n}=_d{i}" for i, n in enumerate(self.names))
        check = " or ".join(f"v[{pos}:{pos + len(want)}] != {want!r}" if len(want) > 1 else f"v[{pos}] != {want[0]!r}"
                            for _, pos, want in self._consts)
        src = (
            "def unpack(buf, offset=0, *, check_const=True):\n"
            "    v = _unpack_from(buf, offset)\n"
            + (f"    if check_const and ({check}):\n"
               "        _generic_unpack(buf, offset)      # raises, naming the field\n" if check else "")
            + "    r = _new(_R)\n"
            f"    {attrs}, = {grouped}\n"
            "    return r\n"
            "def pack_into(buf, offset, r):\n"
            f"    _pack_into(buf, offset, {flat_attrs})\n"
            "def pack(r):\n"
            f"    return _pack({flat_attrs})\n"
            f"def make(*, {defaults}, **unknown):\n"
            "    if unknown:\n"
            "        _unknown(unknown)\n"
            "    r = _new(_R)\n"
            f"    {attrs}, = {', '.join(self.names)},\n"
            "    return r\n"
            f"def pack_loose({defaults}, **_ignored):\n"
            f"    return _pack({flat_args})\n"
            f"def pack_strict({defaults}):\n"
            f"    return _pack({flat_args})\n"
            "def pack_values(values, *, ignore_unknown=False):\n"
            "    if ignore_unknown:\n"
            "        return pack_loose(**values)\n"
            "    try:\n"
            "        return pack_strict(**values)\n"
            "    except TypeError:                 # an unknown field (or a bad value): say which\n"
            "        return _generic_pack_values(values)\n")
        ns = {"_unpack_from": self.struct.unpack_from, "_pack_into": self.struct.pack_into,
              "_pack": self.struct.pack, "_new": object.__new__, "_R": self.record,
              "_generic_unpack": lambda buf, offset: Codec.unpack(self, buf, offset),
              "_unknown": lambda unknown: Codec.make(self, **unknown),
              "_generic_pack_values": lambda values: Codec.pack_values(self, values),
              **{f"_d{i}": d for i, d in enumerate(self._defaults)}}
        exec(src, ns)  # noqa: S102 - generated from field names (identifiers) only
        self.unpack, self.pack_into, self.pack, self.make = ns["unpack"], ns["pack_into"], ns["pack"], ns["make"]
        self.pack_values = ns["pack_values"]

    @staticmethod
    def _default(f: Field):
        if f.is_const:
            return tuple(f.const) if f.count > 1 else f.const
        if f.fmt.endswith("s"):
            return bytes(f.size)
        zero = 0.0 if f.fmt in "efd" else 0
        return (zero,) * f.count if f.count > 1 else zero

    def _group(self, flat: tuple):
        if not self._arrays:
            return flat
        return [flat[p:p + n] if n > 1 else flat[p] for p, n in self._slices]

    def _flat(self, values: Iterable) -> list:
        if not self._arrays:
            return list(values)
        out = []
        for f, v in zip(self.fields, values):
            if f.count > 1:
                out.extend(v)
            else:
                out.append(v)
        return out

    def unpack(self, buf, offset: int = 0, *, check_const: bool = True):
        flat = self.struct.unpack_from(buf, offset)
        if check_const:
            for name, pos, want in self._consts:
                if flat[pos:pos + len(want)] != want:
                    raise LayoutError(f"{name} must be {want if len(want) > 1 else want[0]}", name)
        return self.record(*self._group(flat))

    def pack(self, rec) -> bytes:
        values = self._values(rec)
        return self.struct.pack(*(self._flat(values) if self._arrays else values))

    def pack_into(self, buf, offset: int, rec) -> None:
        values = self._values(rec)
        self.struct.pack_into(buf, offset, *(self._flat(values) if self._arrays else values))

    def pack_values(self, values: dict, *, ignore_unknown: bool = False) -> bytes:
        """Bytes of a record with the given fields and every other one zero
        (or its Const value), without building a record: the ring encoders'
        path.  ignore_unknown drops fields this layout does not have (a
        field of another firmware version)."""
        vals = list(self._defaults)
        index = self._index
        for k, v in values.items():
            i = index.get(k)
            if i is not None:
                vals[i] = v
            elif not ignore_unknown:
                raise LayoutError(f"unknown field {k!r}")
        return self.struct.pack(*(self._flat(vals) if self._arrays else vals))

    def make(self, **values):
        """A record with every field zero (or its Const value) unless given."""
        vals = list(self._defaults)
        index = self._index
        try:
            for k, v in values.items():
                vals[index[k]] = v
        except KeyError:
            raise LayoutError(f"unknown fields {sorted(set(values) - set(index))}") from None
        return self.record(*vals)


class Layout:
    """A named binary layout: the construct declaration plus what derives from it.

    ``params`` (e.g. ``fw=(2, 1)``) reach version-conditional fields as
    ``this._params.fw``; every derived artefact is cached per parameter set, so
    two firmware versions coexist in one process without global state.
    """

    def __init__(self, name: str, subcon, *, c_name: str | None = None, doc: str = ""):
        self.name = name
        self.c_name = c_name
        self.subcon = subcon
        self.doc = doc
        self._fields: dict = {}
        self._codecs: dict = {}
        self._sizes: dict = {}
        self._codec0: Codec | None = None      # the codec without params: the hot path

    @staticmethod
    def _key(params: dict) -> tuple:
        return tuple(sorted(params.items()))

    def fields(self, **params) -> list[Field]:
        key = self._key(params)
        try:
            return self._fields[key]
        except KeyError:
            fl = self._fields[key] = flatten(self.subcon, params)
            return fl

    def field(self, name: str, **params) -> Field:
        for f in self.fields(**params):
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r} with {params or 'no params'}")

    def sizeof(self, **params) -> int:
        # Cached: construct computes it by walking the declaration each time.
        key = self._key(params) if params else ()
        try:
            return self._sizes[key]
        except KeyError:
            n = self._sizes[key] = self.subcon.sizeof(**params)
            return n

    def codec(self, **params) -> Codec:
        if not params:
            c = self._codec0
            if c is None:
                c = self._codec0 = self._codecs[()] = Codec(self.name, self.fields())
            return c
        key = self._key(params)
        try:
            return self._codecs[key]
        except KeyError:
            c = self._codecs[key] = Codec(self.name, self.fields(**params))
            return c

    def parse(self, data, **params) -> Container:
        return self.subcon.parse(bytes(data), **params)

    def build(self, obj, **params) -> bytes:
        return self.subcon.build(obj, **params)

    def __repr__(self) -> str:
        return f"<Layout {self.name}>"


def c_string(raw: bytes) -> str:
    """A NUL-terminated C char array as text (bytes past the NUL ignored)."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


@dataclass(frozen=True)
class FieldChange:
    """One difference between two field tables (structs diff)."""

    change: str          # added, removed, moved, resized, retyped
    name: str
    old: Field | None
    new: Field | None


def _stay_in_order(a: list[str], b: list[str]) -> set[str]:
    """Names on a longest common subsequence of a and b: the fields that kept
    their relative order.  The others were moved."""
    n, m = len(a), len(b)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best[i][j] = best[i + 1][j + 1] + 1 if a[i] == b[j] else max(best[i + 1][j], best[i][j + 1])
    keep, i, j = set(), 0, 0
    while i < n and j < m:
        if a[i] == b[j]:
            keep.add(a[i])
            i, j = i + 1, j + 1
        elif best[i + 1][j] >= best[i][j + 1]:
            i += 1
        else:
            j += 1
    return keep


def diff_fields(old: list[Field], new: list[Field]) -> list[FieldChange]:
    """What changed from one field table to another, by field name: added,
    removed, resized, retyped, moved (relative order changed) and shifted
    (same field, new offset only because of the changes before it)."""
    a = {f.name: f for f in old}
    b = {f.name: f for f in new}
    common_old = [f.name for f in old if f.name in b]
    common_new = [f.name for f in new if f.name in a]
    in_order = _stay_in_order(common_old, common_new)
    out = []
    for f in old:
        if f.name not in b:
            out.append(FieldChange("removed", f.name, f, None))
    for f in new:
        g = a.get(f.name)
        if g is None:
            out.append(FieldChange("added", f.name, None, f))
        elif g.size != f.size:
            out.append(FieldChange("resized", f.name, g, f))
        elif g.ctype != f.ctype:
            out.append(FieldChange("retyped", f.name, g, f))
        elif f.name not in in_order:
            out.append(FieldChange("moved", f.name, g, f))
        elif g.offset != f.offset:
            out.append(FieldChange("shifted", f.name, g, f))
    return out
