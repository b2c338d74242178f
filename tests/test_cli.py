"""The aishim command line: each subcommand, and its errors as one line."""

from __future__ import annotations

import os

from conftest import PRELOAD, UMD_BIN, aishim


def test_lib_prints_the_preload_library(built):
    r = aishim("lib")
    assert r.returncode == 0
    assert os.path.samefile(r.stdout.strip(), PRELOAD)


def test_run_passes_devices_and_exit_status(built):
    r = aishim("run", "--devices", "2", "--", str(UMD_BIN / "multidevice"))
    assert r.returncode == 0, r.stderr
    assert "2 device" in r.stdout
    r = aishim("run", "--", "sh", "-c", "exit 7")
    assert r.returncode == 7


def test_run_verbose_logs_decoded_ioctls(built):
    r = aishim("run", "-v", "--", str(UMD_BIN / "vecadd"))
    assert r.returncode == 0
    assert "ioctl(3, BO_CREATE, {size=0x10000, flags=0}) = 0 => {handle=" in r.stderr
    assert "Test passed" in r.stdout and "aishim" not in r.stdout


def test_run_errors_are_one_line(built, tmp_path):
    r = aishim("run", "--", "/nonexistent/prog")
    assert r.returncode == 1 and r.stderr.strip() == "aishim: /nonexistent/prog: no such program"
    script = tmp_path / "notexec"
    script.write_text("echo hi\n")
    r = aishim("run", "--", str(script))
    assert r.returncode == 1 and "not executable" in r.stderr and "Traceback" not in r.stderr
    r = aishim("run")
    assert r.returncode == 1 and "no program given" in r.stderr


def test_info_lists_every_device(built):
    r = aishim("info", "--devices", "3")
    assert r.returncode == 0
    assert [line.split(":")[0] for line in r.stdout.splitlines()[1:]] == [f"/dev/aicard{i}" for i in range(3)]


def test_as_and_dis_round_trip(built, tmp_path):
    src = tmp_path / "k.s"
    src.write_text(".entry k\n.param ptr p\n    ld.param.u64 r0, [p]\n    mov.u32 r2, 7\n    st.global.u32 [r0], r2\n    exit\n")
    out = tmp_path / "k.aimod"
    r = aishim("as", str(src), "-o", str(out))
    assert r.returncode == 0, r.stderr
    r = aishim("dis", str(out))
    assert r.returncode == 0 and "st.global.u32" in r.stdout


def test_as_error_names_file_and_line(built, tmp_path):
    src = tmp_path / "bad.s"
    src.write_text(".entry k\n    frobnicate r0\n    exit\n")
    r = aishim("as", str(src), "-o", str(tmp_path / "bad.aimod"))
    assert r.returncode == 1
    assert r.stderr.startswith("aishim: ") and "bad.s:2:" in r.stderr and "Traceback" not in r.stderr


def test_dis_of_garbage_is_one_line(built, tmp_path):
    junk = tmp_path / "junk.aimod"
    junk.write_bytes(b"\x00" * 100)
    r = aishim("dis", str(junk))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "offset" in r.stderr


def test_structs_list_show_diff_decode(built, tmp_path):
    import json
    r = aishim("structs", "list", "--json")
    names = {row["name"] for row in json.loads(r.stdout)}
    assert {"LaunchCmd", "CopyCmd", "InitData", "Submit", "BoCreate"} <= names
    r = aishim("structs", "show", "CopyCmd", "--fw", "3.0")
    assert r.returncode == 0 and "u64      src;" in r.stdout and "firmware 3.0, 0x34 bytes" in r.stdout
    r = aishim("structs", "diff", "CopyCmd", "--fw", "2.0", "--fw", "3.0")
    assert "> src              moved 0x24 -> 0x2c" in r.stdout and "- flags" in r.stdout
    r = aishim("structs", "diff", "FenceWriteCmd", "--fw", "2.1", "--fw", "3.0", "--json")
    changes = json.loads(r.stdout)["changes"]
    assert {"change": "removed", "field": "flags", "old": {"offset": 20, "size": 4, "type": "u32"},
            "new": None} in changes
    blob = tmp_path / "blob"
    blob.write_bytes((0x10000).to_bytes(8, "little") + bytes(4) + (3).to_bytes(4, "little") + bytes(8))
    r = aishim("structs", "decode", "BoCreate", str(blob))
    assert "[  0.  8] size = 0x10000" in r.stdout and "[ 12.  4] handle = 3" in r.stdout
    r = aishim("structs", "decode", "BoCreate", "--offset", "8", str(blob))
    assert r.returncode == 1 and "need 0x18 at offset 0x8" in r.stderr


def test_structs_errors_are_one_line(built):
    for args in (["show", "Nope"], ["diff", "CopyCmd", "--fw", "2.0"], ["show", "CopyCmd", "--fw", "9.0"]):
        r = aishim("structs", *args)
        assert r.returncode == 1 and r.stderr.startswith("aishim: ") and "Traceback" not in r.stderr
