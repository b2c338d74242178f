"""Recording, showing, replaying and diffing traces of real binaries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import zlib

import pytest

from conftest import UMD_BIN, aishim, shim_env
from traces import format as tf
from traces.reader import TraceReader

SAMPLES = {
    "vecadd": [], "saxpy": [], "memcpy_roundtrip": ["-max", str(1 << 20)], "multidevice": [],
    "threads": ["-t", "4", "-i", "3"], "mapped": [], "errors": [], "hello": [],
    "reduce": [], "matmul": [], "histogram": [], "scan": [], "faults": [],
    # host functions: a helper thread released by NOTIFY_WAIT reads mapped
    # results; replay must return calls no earlier than they returned
    "backend": [], "clock": [],
}


def record(tmp_path, name, *args, prog=None, env=None) -> str:
    out = str(tmp_path / f"{name}.aitrace")
    r = aishim("record", "-o", out, "--", str(prog or UMD_BIN / name), *args, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


@pytest.fixture(scope="module")
def traces(tmp_path_factory, built):
    d = tmp_path_factory.mktemp("traces")
    return {name: record(d, name, *args) for name, args in SAMPLES.items()}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_record_show_replay(traces, name):
    path = traces[name]
    r = aishim("show", path)
    assert r.returncode == 0 and "ioctl(" in r.stdout, r.stderr
    assert "warning" not in r.stderr
    r = aishim("replay", path, "--", str(UMD_BIN / name), *SAMPLES[name])
    assert r.returncode == 0, r.stderr
    assert "replay matched" in r.stderr


def test_show_names_fields_payloads_and_ring(traces):
    out = aishim("show", traces["vecadd"]).stdout
    assert "ioctl(3, BO_CREATE, {size=0x10000, flags=0}) = 0 => {handle=" in out
    assert "read from user" in out and "65536 B sha1" in out
    assert "fw3.0 cmd@" in out and "LAUNCH {asid=" in out and "FENCE_SIGNALLED" in out


def test_show_json_and_filter(traces):
    doc = json.loads(aishim("show", "--json", "--filter", "SUBMIT", traces["vecadd"]).stdout)
    assert [c["name"] for c in doc["calls"]] == ["SUBMIT"]
    c = doc["calls"][0]
    assert c["args"]["cmd_count"] == 1 and c["out"]["fence"] == 3
    assert any("LAUNCH" in r["text"] for r in c["ring"])
    assert doc["ended"] and doc["devices"]["0"]["fw"] == "3.0"


def test_show_with_other_firmware_layouts(traces):
    out = aishim("show", "--fw", "2.0", "--filter", "SUBMIT", traces["vecadd"]).stdout
    assert "fw2.0" in out        # decoded with 2.0's layouts, as asked


def test_recording_twice_is_equivalent(tmp_path, traces):
    again = record(tmp_path, "vecadd")
    r = aishim("diff", traces["vecadd"], again)
    assert r.returncode == 0 and r.stdout.startswith("equivalent"), r.stdout


def test_diff_is_field_level(tmp_path, traces):
    other = record(tmp_path, "vecadd", "-s", "0x20000")
    r = aishim("diff", traces["vecadd"], other)
    assert r.returncode == 1
    assert "BO_CREATE: args.size: 0x10000 != 0x20000" in r.stdout
    assert "SUBMIT: read[0].commands[0].grid: [64, 1, 1] != [128, 1, 1]" in r.stdout


def test_diff_across_firmware_versions(tmp_path, traces):
    other = str(tmp_path / "fw20.aitrace")
    assert aishim("record", "-o", other, "--fw", "2.0", "--", str(UMD_BIN / "vecadd")).returncode == 0
    r = aishim("diff", "--ring", traces["vecadd"], other)
    assert "wrote[0].fw_version: 0x30000 != 0x20000" in r.stdout
    assert "ring" in r.stdout                     # the commands themselves are encoded differently


def test_replay_detects_a_changed_argument(traces):
    r = aishim("replay", traces["vecadd"], "--", str(UMD_BIN / "vecadd"), "-s", "0x20000")
    assert r.returncode == 3
    assert "replay diverged at call #9" in r.stderr
    assert "field size: expected 0x10000, got 0x20000" in r.stderr


def test_replay_detects_changed_data(tmp_path, traces):
    """Same calls, different bytes: the content read from user memory differs."""
    r = aishim("replay", traces["vecadd"], "--", str(UMD_BIN / "vecadd"), "-d", "1")
    assert r.returncode == 3 and "diverged" in r.stderr


def test_replay_of_another_program_diverges_without_hanging(traces):
    t0 = time.monotonic()
    r = aishim("replay", traces["saxpy"], "--", str(UMD_BIN / "vecadd"), timeout=60)
    assert r.returncode == 3 and "diverged" in r.stderr
    assert time.monotonic() - t0 < 30


def test_replay_runs_no_kernel_and_restores_mapped_results(traces):
    r = aishim("replay", traces["mapped"], "--", str(UMD_BIN / "mapped"))
    assert r.returncode == 0, r.stderr
    reader = TraceReader(traces["mapped"])
    kinds = {rec.type for rec in reader.records()}
    assert tf.RecordType.SNAP in kinds


def test_replay_refuses_a_trace_of_the_wrong_schema(tmp_path, traces):
    bad = tmp_path / "schema.aitrace"
    _rewrite_schema(traces["vecadd"], bad)
    r = aishim("show", str(bad))
    assert r.returncode == 0
    assert "different struct layouts" in r.stderr and "uapi BoCreate" in r.stderr
    r = aishim("replay", str(bad), "--", str(UMD_BIN / "vecadd"))
    assert r.returncode == 1 and "recorded with other struct layouts" in r.stderr


def _rewrite_schema(src, dst) -> None:
    """The same trace as if recorded by a build whose BoCreate had another field."""
    data = bytearray(open(src, "rb").read())
    hdr = tf.FileHeader.codec()
    h = hdr.unpack(data)
    start = hdr.size
    schema = json.loads(zlib.decompress(data[start:start + h.schema_size]))
    schema["uapi"]["BoCreate"][1][0] = "flagz"
    blob = zlib.compress(tf.schema_bytes(schema))
    h.schema_hash, old = tf.schema_hash(schema), h.schema_size
    h.schema_size = len(blob)
    open(dst, "wb").write(hdr.pack(h) + blob + data[start + old:])


def test_chrome_timeline(traces):
    doc = json.loads(aishim("show", "--format", "chrome", traces["saxpy"]).stdout)
    ev = doc["traceEvents"]
    launches = [e for e in ev if e.get("cat") == "device" and e["name"] == "LAUNCH"]
    submits = [e for e in ev if e.get("name") == "SUBMIT" and e.get("cat") == "ioctl"]
    assert len(launches) == 1 and len(submits) >= 1
    assert all(e["ph"] in ("X", "M") and e.get("dur", 0) >= 0 for e in ev)
    assert any(e["ph"] == "M" and "aicard0" in e["args"].get("name", "") for e in ev)


def test_multithreaded_trace_has_one_order(traces):
    reader = TraceReader(traces["threads"])
    entries = [rec.f for rec in reader.records() if rec.type == tf.RecordType.CALL and rec.f.phase == 0]
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    assert len({e.tid for e in entries}) >= 4


def test_unknown_ioctl_is_recorded_raw(tmp_path, cbuild):
    path = record(tmp_path, "unknown", "unknown", prog=cbuild("trace_helpers"))
    out = aishim("show", path).stdout
    assert "_IOWR('Z', 0x42, 16)" in out and "01020304" in out and "-1 ENOTTY" in out


def test_forked_child_gets_its_own_trace(tmp_path, cbuild):
    path = record(tmp_path, "fork", "fork", prog=cbuild("trace_helpers"))
    children = [p for p in os.listdir(tmp_path) if p.startswith("fork.aitrace.")]
    assert len(children) == 1
    child_pid = int(children[0].rsplit(".", 1)[1])
    out = aishim("show", str(tmp_path / children[0])).stdout
    assert f"[{child_pid}:" in out and "DEV_QUERY" in out
    assert "DEV_QUERY" in aishim("show", path).stdout


def test_sigkill_leaves_a_readable_trace(tmp_path, cbuild):
    path = str(tmp_path / "killed.aitrace")
    env = shim_env(AISHIM_RECORD=path)
    p = subprocess.Popen([str(cbuild("trace_helpers")), "spin"], env=env, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = aishim("show", path)
    assert r.returncode == 0
    assert r.stdout.count("DEV_QUERY") > 200
    assert "no END record" in r.stderr or "truncated" in r.stderr


def test_bad_traces_give_one_line_with_the_offset(tmp_path, traces):
    data = open(traces["vecadd"], "rb").read()
    first = TraceReader(traces["vecadd"]).first_record
    cases = {
        "magic": b"NOTATRACE" + data[9:],
        "flipped": data[:first + 40] + bytes([data[first + 40] ^ 0xFF]) + data[first + 41:],
        "empty": b"",
        "short": data[:20],
    }
    for name, blob in cases.items():
        p = tmp_path / f"{name}.aitrace"
        p.write_bytes(blob)
        r = aishim("show", str(p))
        assert r.returncode == 1, name
        assert r.stderr.startswith("aishim: ") and r.stderr.count("\n") == 1, (name, r.stderr)
        assert "Traceback" not in r.stderr
    r = aishim("show", str(tmp_path / "flipped.aitrace"))
    assert "checksum mismatch" in r.stderr and f"byte offset {first:#x}" in r.stderr and "record 0" in r.stderr


def test_truncated_trace_shows_what_is_there(tmp_path, traces):
    data = open(traces["vecadd"], "rb").read()
    cut = tmp_path / "cut.aitrace"
    cut.write_bytes(data[:len(data) * 2 // 3])
    r = aishim("show", str(cut))
    assert r.returncode == 0 and "BO_CREATE" in r.stdout
    assert "truncated at byte 0x" in r.stderr


def test_unknown_record_type_is_refused(tmp_path, traces):
    data = open(traces["vecadd"], "rb").read()
    payload = b"\0" * 8
    rh = tf.RecordHeader.codec()
    bogus = rh.pack(rh.make(length=len(payload), type=99, crc=tf.crc(99, payload))) + payload
    first = TraceReader(traces["vecadd"]).first_record
    p = tmp_path / "unknown.aitrace"
    p.write_bytes(data[:first] + bogus + data[first:])
    r = aishim("show", str(p))
    assert r.returncode == 1 and "unknown record type 99" in r.stderr and "record 0" in r.stderr


def test_every_user_pointer_field_is_normalized():
    """A user pointer differs from run to run: diff and replay must know each one."""
    from structs import uapi
    from traces import normalize
    for io in uapi.IOCTLS:
        names = {f.name for f in io.layout.fields() if not f.fmt.endswith("s")}   # not byte arrays
        suspects = names & {"pointer", "cmds", "image", "params"}
        rec = io.layout.codec().make()
        assert suspects <= set(normalize.pointer_fields(io.name, rec)), io.name
