"""The C header and the construct declarations describe the same bytes.

A C program generated from the construct side prints, from the *header*,
sizeof every struct, offsetof/sizeof every member, every request number and
every enum value; the test compares them with what structs/ derives."""

from __future__ import annotations

import subprocess

from conftest import UMD_INCLUDE
from structs import enums, uapi
from structs.layout import Layout

ENUM_PREFIXES = {
    enums.QueryType: "AICARD_QUERY_", enums.CmdType: "AICARD_CMD_", enums.CopyKind: "AICARD_COPY_",
    enums.FenceStatus: "AICARD_FENCE_", enums.EventStatus: "AICARD_EVENT_", enums.ParamKind: "AICARD_PARAM_",
}
CONSTANTS = {
    "AICARD_UAPI_VERSION_MAJOR": uapi.UAPI_VERSION[0], "AICARD_UAPI_VERSION_MINOR": uapi.UAPI_VERSION[1],
    "AICARD_MAX_DEVICES": uapi.MAX_DEVICES, "AICARD_PAGE_SIZE": uapi.PAGE_SIZE,
    "AICARD_CMD_SIZE": uapi.CMD_SIZE, "AICARD_SUBMIT_MAX_CMDS": uapi.SUBMIT_MAX_CMDS,
    "AICARD_TIMEOUT_INFINITE": uapi.TIMEOUT_INFINITE, "AICARD_MODULE_MAX_SIZE": uapi.MODULE_MAX_SIZE,
    "AICARD_MAX_PARAMS": uapi.MAX_PARAMS, "AICARD_NAME_LEN": uapi.NAME_LEN,
    "AICARD_CAP_PRINTF": uapi.CAP_PRINTF, "AICARD_COPY_SYNC": uapi.COPY_SYNC,
    "AICARD_IOCTL_TYPE": uapi.IOCTL_TYPE,
}


def _program() -> tuple[str, dict]:
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "aicard_uapi.h"', 'int main(void) {']
    expected = {}

    def emit(key: str, c_expr: str, value: int) -> None:
        lines.append(f'    printf("%s %llu\\n", "{key}", (unsigned long long)({c_expr}));')
        expected[key] = value

    for layout in uapi.LAYOUTS:
        s = f"struct {layout.c_name}"
        emit(f"sizeof {layout.c_name}", f"sizeof({s})", layout.sizeof())
        for f in layout.fields():
            emit(f"offsetof {layout.c_name}.{f.name}", f"offsetof({s}, {f.name})", f.offset)
            emit(f"sizeof {layout.c_name}.{f.name}", f"sizeof((({s} *)0)->{f.name})", f.size)
    for io in uapi.IOCTLS:
        emit(io.c_macro, io.c_macro, io.request)
    for enum, prefix in ENUM_PREFIXES.items():
        for member in enum:
            emit(prefix + member.name, prefix + member.name, int(member))
    for name, value in CONSTANTS.items():
        emit(name, name, value)
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n", expected


def test_header_matches_construct(tmp_path):
    src, expected = _program()
    (tmp_path / "layout.c").write_text(src)
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-Wall", "-Werror", "-Wpadded", f"-I{UMD_INCLUDE}", str(tmp_path / "layout.c"),
                    "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    got = {}
    for line in out.splitlines():
        key, value = line.rsplit(" ", 1)
        got[key] = int(value)
    mismatches = {k: (v, got.get(k)) for k, v in expected.items() if got.get(k) != v}
    assert not mismatches, f"header vs construct (construct, header): {mismatches}"


def test_every_header_struct_is_declared():
    """No struct in the header is missing from structs/uapi.py."""
    import re
    text = (UMD_INCLUDE / "aicard_uapi.h").read_text()
    in_header = set(re.findall(r"^struct (aicard_\w+) \{", text, re.M))
    declared = {layout.c_name for layout in uapi.LAYOUTS}
    assert in_header == declared


def test_every_header_ioctl_is_declared():
    import re
    text = (UMD_INCLUDE / "aicard_uapi.h").read_text()
    in_header = set(re.findall(r"^#define (AICARD_IOCTL_\w+)\s+_IO", text, re.M))
    assert in_header == {io.c_macro for io in uapi.IOCTLS}


def test_requests_are_unique_and_encode_their_size():
    from structs import ioc
    reqs = [io.request for io in uapi.IOCTLS]
    assert len(set(reqs)) == len(reqs)
    for io in uapi.IOCTLS:
        assert ioc.ioc_size(io.request) == io.layout.sizeof()
        assert ioc.ioc_type(io.request) == ord("A")
        assert uapi.lookup(io.request) is io


def test_layouts_are_all_fast_codecs():
    for layout in uapi.LAYOUTS:
        assert isinstance(layout, Layout)
        assert layout.codec().size == layout.sizeof()
