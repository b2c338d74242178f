"""`aishim structs`: look at the declared layouts the way pahole shows C
structs, compare a struct across firmware versions, decode raw bytes.

    aishim structs list [--json]
    aishim structs show NAME [--fw V] [--json]
    aishim structs diff NAME --fw A --fw B [--json]
    aishim structs decode NAME [--fw V] [--offset N] FILE|- [--json]
"""

from __future__ import annotations

import json
import sys

from construct import ConstructError

from aishim.errors import AishimError
from structs import describe, fw, registry
from structs.layout import diff_fields


def _version(text: str | None):
    if text is None:
        return None
    try:
        return fw.parse_version(text)
    except ValueError as e:
        raise AishimError(str(e)) from None


def _layout(name: str, version):
    try:
        return registry.layout(name, version)
    except registry.UnknownStruct as e:
        raise AishimError(e.args[0]) from None


def _vstr(v) -> str | None:
    return fw.version_str(v) if v else None


def cmd_list(args, out) -> int:
    rows = []
    for name in registry.names():
        vs = registry.versions(name)
        sizes = {fw.version_str(v): registry.layout(name, v).sizeof() for v in vs} if vs \
            else {"": registry.layout(name).sizeof()}
        rows.append({"name": name, "kind": registry.kind(name), "sizes": sizes,
                     "c_name": registry.layout(name, vs[-1] if vs else None).c_name})
    if args.json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return 0
    for r in rows:
        sizes = "  ".join(f"{v}:{s:#x}" if v else f"{s:#x}" for v, s in r["sizes"].items())
        extra = f"  (struct {r['c_name']})" if r["c_name"] else ""
        print(f"{r['name']:<16} {r['kind']:<9} {sizes}{extra}", file=out)
    return 0


def cmd_show(args, out) -> int:
    v = _version(args.fw[0] if args.fw else None)
    if registry.kind(args.name) == "firmware" and v is None:
        v = fw.DEFAULT
    lay = _layout(args.name, v)
    docs = registry.field_docs(args.name, v)
    fields = lay.fields()
    if args.json:
        json.dump({"name": lay.name, "firmware": _vstr(v), "size": lay.sizeof(),
                   "fields": [{"name": f.name, "offset": f.offset, "size": f.size, "type": f.ctype,
                               "const": f.const, "doc": docs.get(f.name, "")} for f in fields]},
                  out, indent=2)
        out.write("\n")
        return 0
    where = f"firmware {fw.version_str(v)}, " if v else ""
    print(f"struct {lay.name} {{  /* {where}{lay.sizeof():#x} bytes */", file=out)
    for f in fields:
        note = f"  {docs[f.name]}" if f.name in docs else ""
        print(f"    {f.ctype:<8} {f.name + ';':<18} /* {f.offset:#06x} {f.size:#4x} */{note}", file=out)
    print("};", file=out)
    return 0


def cmd_diff(args, out) -> int:
    if not args.fw or len(args.fw) != 2:
        raise AishimError("diff needs two versions: --fw A --fw B")
    va, vb = _version(args.fw[0]), _version(args.fw[1])
    a, b = _layout(args.name, va), _layout(args.name, vb)
    changes = diff_fields(a.fields(), b.fields())
    if args.json:
        def f2d(f):
            return None if f is None else {"offset": f.offset, "size": f.size, "type": f.ctype}
        json.dump({"name": args.name, "from": _vstr(va), "to": _vstr(vb), "size": [a.sizeof(), b.sizeof()],
                   "changes": [{"change": c.change, "field": c.name, "old": f2d(c.old), "new": f2d(c.new)}
                               for c in changes]}, out, indent=2)
        out.write("\n")
        return 0
    print(f"{args.name}: firmware {fw.version_str(va)} -> {fw.version_str(vb)}, "
          f"size {a.sizeof():#x} -> {b.sizeof():#x}", file=out)
    if not changes:
        print("  no differences", file=out)
    for c in changes:
        if c.change == "added":
            print(f"  + {c.name:<16} {c.new.ctype:<6} at {c.new.offset:#x}", file=out)
        elif c.change == "removed":
            print(f"  - {c.name:<16} {c.old.ctype:<6} was at {c.old.offset:#x}", file=out)
        elif c.change in ("resized", "retyped"):
            print(f"  ~ {c.name:<16} {c.old.ctype} -> {c.new.ctype} ({c.change}), "
                  f"at {c.old.offset:#x} -> {c.new.offset:#x}", file=out)
        else:
            print(f"  {'>' if c.change == 'moved' else ' '} {c.name:<16} {c.change} "
                  f"{c.old.offset:#x} -> {c.new.offset:#x}", file=out)
    if registry.kind(args.name) == "firmware" and args.name.endswith("Cmd"):
        ida, idb = fw.ids_for(fw.CMD_IDS, va), fw.ids_for(fw.CMD_IDS, vb)
        cmd = {d.name: k for k, d in fw.COMMANDS.items()}.get(args.name)
        if cmd and ida.get(cmd) != idb.get(cmd):
            print(f"  # command id {ida.get(cmd):#x} -> {idb.get(cmd):#x}", file=out)
    return 0


def cmd_decode(args, out) -> int:
    v = _version(args.fw[0] if args.fw else None)
    if registry.kind(args.name) == "firmware" and v is None:
        v = fw.DEFAULT
    lay = _layout(args.name, v)
    data = sys.stdin.buffer.read() if args.file == "-" else _read(args.file)
    raw = data[args.offset:args.offset + lay.sizeof()]
    if len(raw) < lay.sizeof():
        raise AishimError(f"{args.file}: {len(data)} bytes, need {lay.sizeof():#x} at offset {args.offset:#x} "
                          f"for {lay.name}")
    try:
        parsed = lay.parse(raw)
    except ConstructError as e:
        raise AishimError(f"{lay.name} at offset {args.offset:#x}: {e}") from None
    fields = lay.fields()
    if args.json:
        json.dump({"name": lay.name, "firmware": _vstr(v), "offset": args.offset,
                   "fields": {f.name: _jsonable(parsed[f.name]) for f in fields}}, out, indent=2)
        out.write("\n")
        return 0
    where = f" (firmware {fw.version_str(v)})" if v else ""
    print(f"{lay.name}{where} @ {args.offset:#x}:", file=out)
    for f in fields:
        print(f"  [{f.offset:3}.{f.size:3}] {f.name} = {describe.value(f.name, _plain(parsed[f.name]))}",
              file=out)
    return 0


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise AishimError(f"{path}: {e.strerror}") from None


def _plain(v):
    return tuple(v) if isinstance(v, list) else v


def _jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def add_parser(sub) -> None:
    s = sub.add_parser("structs", help="inspect the declared layouts (UAPI and firmware)")
    ss = s.add_subparsers(dest="structs_cmd", required=True)
    p = ss.add_parser("list", help="every struct, its kind and size per version")
    p.add_argument("--json", action="store_true")
    for name, helptext in (("show", "fields: offset, size, type (like pahole)"),
                           ("diff", "what changed between two firmware versions"),
                           ("decode", "decode raw bytes")):
        p = ss.add_parser(name, help=helptext)
        p.add_argument("name")
        p.add_argument("--fw", action="append", metavar="VERSION")
        p.add_argument("--json", action="store_true")
        if name == "decode":
            p.add_argument("file", help="file with the bytes, or - for stdin")
            p.add_argument("--offset", type=lambda x: int(x, 0), default=0)


def run(args, out) -> int:
    return {"list": cmd_list, "show": cmd_show, "diff": cmd_diff, "decode": cmd_decode}[args.structs_cmd](args, out)
