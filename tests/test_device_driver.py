"""The backend functions added for issue 6, at the driver level (no interposer):
device printf (PRINTF_FLUSH -> PRINTF completions -> PRINTF_READ), the notify
interrupt (CMD_NOTIFY -> NOTIFY_WAIT), FENCE_RESET, the transformer unit
(CMD_TRANSFORMER against numpy), the device clock, and every new request's
bad inputs."""

from __future__ import annotations

import errno
import re
import struct
import threading
import time

import numpy as np
import pytest

from pydriver import device as device_mod
from pydriver.asm import assemble
from pydriver.client import Client
from pydriver.sim.clock import DeviceClock
from structs import enums, fw, uapi
from structs.enums import CmdType, FenceStatus, TransformerOp

from conftest import ROOT, err

HELLO = """
.entry hello
.param u32 n
        s2r             r0, %tid.x
        s2r             r1, %ctaid.x
        ld.param.u32    r2, [n]
        printf          "b%u t%u n=%d\\n", r1, r0, r2
        exit
.entry hello_then_fault
        s2r             r0, %tid.x
        printf          "before %u\\n", r0
        ld.global.u32   r1, [rz+16]
        printf          "never %u\\n", r0
        exit
"""


def submit(c, q, *cmds) -> int:
    raw = b"".join(cmds)
    return c.call("SUBMIT", queue_id=q, cmd_count=len(cmds), cmd_stride=64, cmds=c.ptr(raw)).fence


def notify_cmd(value: int) -> bytes:
    codec = uapi.CmdNotify.codec()
    return codec.pack(codec.make(type=CmdType.NOTIFY, value=value))


def event_cmd(ctype, handle) -> bytes:
    codec = uapi.CmdEvent.codec()
    return codec.pack(codec.make(type=ctype, event=handle))


def transformer_cmd(**fields) -> bytes:
    codec = uapi.CmdTransformer.codec()
    return codec.pack(codec.make(type=CmdType.TRANSFORMER, **fields))


def read_printf(c, size: int = 1 << 16):
    buf = bytearray(size)
    r = c.call("PRINTF_READ", pointer=c.ptr(buf), size=size)
    return bytes(c.keep[-1][:r.size]), r


def test_caps_advertise_every_backend_function(c):
    caps = c.device_info().caps
    for bit in (uapi.CAP_PRINTF, uapi.CAP_NOTIFY, uapi.CAP_TRANSFORMER, uapi.CAP_FENCE_RESET):
        assert caps & bit


# -- printf --------------------------------------------------------------------

def test_printf_reaches_printf_read_in_thread_order(c):
    q = c.queue()
    m = c.load_module(assemble(HELLO))
    fence = c.launch(q, m, c.function(m, "hello").index, (2, 1, 1), (3, 1, 1), struct.pack("<I", 5))
    assert c.wait(q, fence).status == FenceStatus.OK
    text, r = read_printf(c)
    assert text.decode().splitlines() == [f"b{b} t{t} n=5" for b in range(2) for t in range(3)]
    assert r.pending == 0 and r.dropped == 0
    assert read_printf(c)[0] == b""              # taken: nothing left


def test_printf_read_in_small_pieces_keeps_order(c):
    q = c.queue()
    m = c.load_module(assemble(HELLO))
    c.wait(q, c.launch(q, m, 0, (4, 1, 1), (64, 1, 1), struct.pack("<I", 1)))
    out = b""
    while True:
        text, r = read_printf(c, 100)
        out += text
        assert len(text) <= 100
        if not r.pending:
            break
    assert out.decode().splitlines() == [f"b{b} t{t} n=1" for b in range(4) for t in range(64)]


def test_printf_of_a_faulting_kernel_is_delivered_up_to_the_fault(c):
    q = c.queue()
    m = c.load_module(assemble(HELLO))
    fence = c.launch(q, m, c.function(m, "hello_then_fault").index, (1, 1, 1), (2, 1, 1), b"")
    assert c.wait(q, fence).status == FenceStatus.FAULT
    assert read_printf(c)[0] == b"before 0\nbefore 1\n"


def test_printf_overflow_is_dropped_and_said(c, monkeypatch):
    q = c.queue()
    m = c.load_module(assemble(HELLO))
    # 64 KiB threads x 12 bytes > the 1 MiB print buffer of one launch.
    c.wait(q, c.launch(q, m, 0, (256, 1, 1), (1024, 1, 1), struct.pack("<I", 1)))
    out = b""
    while True:
        text, r = read_printf(c)
        out += text
        if not r.pending:
            break
    assert out.startswith(b"b0 t0 n=1\n")
    lines = out.split(b"\n")
    assert lines[-2].startswith(b"[aicard: ") and lines[-1] == b""     # whole lines, then the note
    assert lines[-2].endswith(b"bytes of device printf output lost: the print buffer was full]")
    assert all(re.fullmatch(rb"b\d+ t\d+ n=1", line) for line in lines[:-2])
    assert len(out) < device_mod.PRINT_BUFFER_SIZE + 200


def test_modules_without_printf_get_no_print_buffer(c):
    c.load_module(assemble(".entry k\n exit\n"))
    dev = c.driver.devices[0]
    assert not dev.print_buffers
    c.load_module(assemble(HELLO))
    assert len(dev.print_buffers) == 1
    c.close()
    assert not dev.print_buffers, "the print buffer outlived its context"


def test_printf_read_bad_inputs(c):
    with pytest.raises(OSError) as e:
        c.call("PRINTF_READ", pointer=0, size=16, flags=1)
    assert err(e) == errno.EINVAL
    # Nothing buffered: a bad pointer is not touched.
    assert c.call("PRINTF_READ", pointer=8, size=16).size == 0
    q = c.queue()
    m = c.load_module(assemble(HELLO))
    c.wait(q, c.launch(q, m, 0, (1, 1, 1), (1, 1, 1), struct.pack("<I", 1)))
    with pytest.raises(OSError) as e:
        c.call("PRINTF_READ", pointer=8, size=16)
    assert err(e) == errno.EFAULT
    assert read_printf(c)[0] == b"b0 t0 n=1\n", "a failed read must not lose the text"
    assert c.driver.ioctl(c.fd, uapi.BY_NAME["PRINTF_READ"].request + (1 << 16), bytearray(64)) \
        == -errno.ENOTTY


# -- notify ----------------------------------------------------------------------

def test_notify_values_arrive_in_order_with_a_count(c):
    q = c.queue()
    submit(c, q, notify_cmd(11), notify_cmd(22))
    submit(c, q, notify_cmd(33))
    got = [c.call("NOTIFY_WAIT", timeout_ns=0) for _ in range(3)]
    assert [g.value for g in got] == [11, 22, 33]
    assert [g.pending for g in got] == [2, 1, 0]
    assert got[-1].count == 3
    with pytest.raises(OSError) as e:
        c.call("NOTIFY_WAIT", timeout_ns=0)
    assert err(e) == errno.ETIMEDOUT


def test_notify_waits_for_earlier_work_and_wakes_a_waiter(c):
    q = c.queue()
    ev = c.call("EVENT_CREATE").handle
    submit(c, q, event_cmd(CmdType.EVENT_WAIT, ev), notify_cmd(7))
    with pytest.raises(OSError) as e:
        c.call("NOTIFY_WAIT", timeout_ns=20_000_000)
    assert err(e) == errno.ETIMEDOUT           # the queue holds it back
    threading.Timer(0.05, lambda: c.call("EVENT_SIGNAL", handle=ev)).start()
    r = c.call("NOTIFY_WAIT", timeout_ns=uapi.TIMEOUT_INFINITE)
    assert r.value == 7


def test_notify_is_per_context(drv):
    a, b = Client(drv), Client(drv)
    submit(a, a.queue(), notify_cmd(1))
    with pytest.raises(OSError) as e:
        b.call("NOTIFY_WAIT", timeout_ns=0)
    assert err(e) == errno.ETIMEDOUT
    assert a.call("NOTIFY_WAIT", timeout_ns=0).value == 1


def test_notify_wait_bad_inputs_and_context_close(drv):
    c = Client(drv)
    with pytest.raises(OSError) as e:
        c.call("NOTIFY_WAIT", flags=2, timeout_ns=0)
    assert err(e) == errno.EINVAL
    q = c.queue()
    bad = bytearray(notify_cmd(1))
    bad[4] = 1                                   # flags
    with pytest.raises(OSError) as e:
        submit(c, q, bytes(bad))
    assert err(e) == errno.EINVAL
    bad = bytearray(notify_cmd(1))
    bad[20] = 1                                  # reserved
    with pytest.raises(OSError) as e:
        submit(c, q, bytes(bad))
    assert err(e) == errno.EINVAL
    # A waiter is woken (not left hanging) when its context goes away.
    result = []

    def waiter():
        buf = bytearray(uapi.NotifyWait.sizeof())
        codec = uapi.NotifyWait.codec()
        buf[:] = codec.pack(codec.make(timeout_ns=uapi.TIMEOUT_INFINITE))
        result.append(drv.ioctl(c.fd, uapi.BY_NAME["NOTIFY_WAIT"].request, buf))
    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)
    c.close()
    t.join(5)
    assert not t.is_alive()
    assert result and result[0] in (-errno.ECANCELED, -errno.EBADF)


# -- fence reset -------------------------------------------------------------------

def test_fence_reset_restarts_numbering(c):
    q = c.queue()
    _, a = c.alloc(4096)
    for _ in range(3):
        fence = c.htod(q, a, b"abcd")
    assert fence == 3
    c.call("FENCE_RESET", queue_id=q)
    dev = c.driver.devices[0]
    queue = next(iter(dev.contexts.values())).queues[q]
    assert dev.vram.u8[queue.fence_offset:queue.fence_offset + 8].tobytes() == bytes(8)
    assert c.htod(q, a, b"efgh") == 1
    assert c.wait(q, 1).completed == 1
    with pytest.raises(OSError) as e:
        c.wait(q, 2, timeout_ns=0)
    assert err(e) == errno.EINVAL               # fence 2 of the new numbering: not issued


def test_fence_reset_refuses_a_busy_queue_and_bad_input(c):
    q = c.queue()
    ev = c.call("EVENT_CREATE").handle
    submit(c, q, event_cmd(CmdType.EVENT_WAIT, ev))
    with pytest.raises(OSError) as e:
        c.call("FENCE_RESET", queue_id=q)
    assert err(e) == errno.EBUSY
    c.call("EVENT_SIGNAL", handle=ev)
    c.call("FENCE_RESET", queue_id=q)
    for bad in (dict(queue_id=999), dict(queue_id=q, flags=1)):
        with pytest.raises(OSError) as e:
            c.call("FENCE_RESET", **bad)
        assert err(e) == errno.EINVAL


def test_fence_reset_of_a_lost_context_is_ecanceled(c):
    q = c.queue()
    m = c.load_module(assemble(HELLO))
    c.wait(q, c.launch(q, m, c.function(m, "hello_then_fault").index, (1, 1, 1), (1, 1, 1), b""))
    with pytest.raises(OSError) as e:
        c.call("FENCE_RESET", queue_id=q)
    assert err(e) == errno.ECANCELED


def test_fence_reset_does_not_leak_retired_memory(c):
    q = c.queue()
    m = c.load_module(assemble(HELLO))
    for _ in range(5):
        c.wait(q, c.launch(q, m, 0, (1, 1, 1), (1, 1, 1), struct.pack("<I", 1)))
    c.call("EVENT_DESTROY", handle=c.call("EVENT_CREATE").handle)
    c.call("FENCE_RESET", queue_id=q)
    assert not c.driver.devices[0]._retire


# -- the transformer unit ----------------------------------------------------------

@pytest.fixture
def tq(c):
    q = c.queue()

    def put(arr) -> int:
        arr = np.ascontiguousarray(arr)
        _, va = c.alloc(max(arr.nbytes, 1))
        c.htod(q, va, arr.tobytes())
        return va

    def run(*cmds):
        fence = submit(c, q, *cmds)
        return c.wait(q, fence).status

    def get(va, shape, dtype=np.float32):
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(c.dtoh(q, va, n), dtype).reshape(shape)

    return q, put, run, get


def test_transformer_encode_matches_numpy(c, tq):
    q, put, run, get = tq
    rng = np.random.default_rng(0)
    table = rng.standard_normal((50, 8)).astype(np.float32)
    pos = rng.standard_normal((20, 8)).astype(np.float32)
    tokens = rng.integers(0, 50, 20).astype(np.uint32)
    vt, vp, vk = put(table), put(pos), put(tokens)
    _, out = c.alloc(20 * 8 * 4)
    assert run(transformer_cmd(op=TransformerOp.ENCODE, rows=20, dim=8, keys=50, dst=out, src0=vk,
                               src1=vt, src2=vp)) == FenceStatus.OK
    assert np.array_equal(get(out, (20, 8)), table[tokens] + pos)
    assert run(transformer_cmd(op=TransformerOp.ENCODE, rows=20, dim=8, keys=50, dst=out, src0=vk,
                               src1=vt)) == FenceStatus.OK
    assert np.array_equal(get(out, (20, 8)), table[tokens])


def test_transformer_decode_matches_numpy(c, tq):
    q, put, run, get = tq
    logits = np.random.default_rng(1).standard_normal((9, 33)).astype(np.float32)
    logits[2, 5] = logits[2, 7] = 10            # a tie: the first one
    logits[3, 8] = np.nan                       # NaN counts as the maximum
    vl = put(logits)
    _, out = c.alloc(4096)
    assert run(transformer_cmd(op=TransformerOp.DECODE, rows=9, dim=33, dst=out, src0=vl)) == FenceStatus.OK
    got = get(out, (9,), np.uint32)
    assert np.array_equal(got, np.argmax(logits, axis=1))
    assert got[2] == 5 and got[3] == 8


@pytest.mark.parametrize("causal", [False, True])
def test_transformer_attention_matches_numpy(c, tq, causal):
    q, put, run, get = tq
    rng = np.random.default_rng(2)
    n, m, d, dv = 13, 17, 16, 5
    Q, K, V = (rng.standard_normal(s).astype(np.float32) for s in ((n, d), (m, d), (m, dv)))
    _, out = c.alloc(n * dv * 4)
    assert run(transformer_cmd(op=TransformerOp.ATTENTION, flags=int(causal), rows=n, dim=d, keys=m,
                               vdim=dv, dst=out, src0=put(Q), src1=put(K), src2=put(V))) == FenceStatus.OK
    s = Q.astype(np.float64) @ K.T.astype(np.float64) / np.sqrt(d)
    if causal:
        s[np.triu_indices(n, 1, m)] = -np.inf
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(get(out, (n, dv)), p @ V, atol=1e-5)


def test_transformer_bad_token_faults_the_context(c, tq):
    q, put, run, get = tq
    vt = put(np.zeros((4, 4), np.float32))
    vk = put(np.array([0, 9, 1], np.uint32))
    _, out = c.alloc(4096)
    assert run(transformer_cmd(op=TransformerOp.ENCODE, rows=3, dim=4, keys=4, dst=out, src0=vk,
                               src1=vt)) == FenceStatus.FAULT
    ctx = next(iter(c.driver.devices[0].contexts.values()))
    assert ctx.faulted.kind == "mmu" and ctx.faulted.address == vt + 9 * 4 * 4
    assert "token 9 (index 1)" in ctx.faulted.message


def test_transformer_bad_inputs_are_einval(c, tq):
    q, put, run, get = tq
    _, buf = c.alloc(4096)
    good = dict(op=TransformerOp.DECODE, rows=4, dim=8, dst=buf, src0=buf)
    assert run(transformer_cmd(**good)) == FenceStatus.OK
    other = Client(c.driver)
    _, foreign = other.alloc(4096)
    bads = [
        dict(good, op=0), dict(good, op=4),
        dict(good, flags=1),                                  # causal is for attention only
        dict(good, rows=0), dict(good, dim=uapi.TRANSFORMER_MAX_DIM + 1),
        dict(good, keys=3), dict(good, src1=buf),             # unused by decode
        dict(good, src0=buf + 2),                             # unaligned
        dict(good, rows=1024),                                # runs off the buffer
        dict(good, src0=foreign),                             # another context's address
        dict(good, dst=0),
        dict(op=TransformerOp.ATTENTION, rows=4096, keys=4097, dim=1, vdim=1, dst=buf, src0=buf,
             src1=buf, src2=buf),                             # too many scores
        dict(op=TransformerOp.ATTENTION, flags=2, rows=1, keys=1, dim=1, vdim=1, dst=buf, src0=buf,
             src1=buf, src2=buf),
    ]
    for bad in bads:
        with pytest.raises(OSError) as e:
            submit(c, q, transformer_cmd(**bad))
        assert err(e) == errno.EINVAL, bad
    raw = bytearray(transformer_cmd(**good))
    raw[28] = 1                                              # pad
    with pytest.raises(OSError) as e:
        submit(c, q, bytes(raw))
    assert err(e) == errno.EINVAL
    other.close()


# -- the device clock ------------------------------------------------------------------

def test_clock_is_frozen_during_a_command_and_advances_by_its_cost():
    clk = DeviceClock(1_000_000_000)
    t0 = clk.begin()
    time.sleep(0.02)                       # the simulation's host time is not device time
    assert clk.now() == t0
    t1 = clk.end(5000)
    assert t1 == t0 + 5000
    time.sleep(0.01)                       # idle: host time is device time
    t2 = clk.now()
    assert t2 >= t1 + 9_000_000
    clk.no_idle()
    assert clk.begin() - t2 < 5_000_000
    clk.end(0)
    assert clk.now() >= t2


def test_kernel_device_time_is_proportional_to_work(c):
    """Back to back behind an event wait: no idle gap between the events."""
    q = c.queue()
    m = c.load_module(assemble((ROOT / "umd" / "kernels" / "vecadd.s").read_text()))
    n = 1 << 18
    _, a = c.alloc(16 * n)
    _, b = c.alloc(16 * n)
    _, d = c.alloc(16 * n)
    gate = c.call("EVENT_CREATE").handle
    ev = [c.call("EVENT_CREATE").handle for _ in range(4)]
    submit(c, q, event_cmd(CmdType.EVENT_WAIT, gate))
    launch = uapi.CmdLaunch.codec()

    def launch_cmd(count):
        params = struct.pack("<QQQI", a, b, d, count)
        return launch.pack(launch.make(type=1, module=m, function=0, grid=(count // 256, 1, 1),
                                       block=(256, 1, 1), params_size=len(params),
                                       params=c.ptr(params)))
    submit(c, q, event_cmd(CmdType.EVENT_RECORD, ev[0]), launch_cmd(n), event_cmd(CmdType.EVENT_RECORD, ev[1]),
           event_cmd(CmdType.EVENT_RECORD, ev[2]), launch_cmd(4 * n), event_cmd(CmdType.EVENT_RECORD, ev[3]))
    c.call("EVENT_SIGNAL", handle=gate)
    c.call("EVENT_WAIT", handle=ev[3], timeout_ns=uapi.TIMEOUT_INFINITE)
    t = [c.call("EVENT_QUERY", handle=e).timestamp for e in ev]
    assert t == sorted(t)
    ratio = (t[3] - t[2]) / (t[1] - t[0])
    assert 3.5 < ratio < 4.5, ratio


# -- layouts ---------------------------------------------------------------------------

def test_new_uapi_enums_and_constants_match_the_header(tmp_path):
    """What tests/test_uapi_header.py checks for the older enums, for the new ones."""
    import subprocess

    from conftest import UMD_INCLUDE
    checks = {f"AICARD_TRANSFORMER_{m.name}": int(m) for m in enums.TransformerOp}
    checks.update({f"AICARD_CMD_{m.name}": int(m) for m in enums.CmdType})
    checks.update(AICARD_CAP_NOTIFY=uapi.CAP_NOTIFY, AICARD_CAP_TRANSFORMER=uapi.CAP_TRANSFORMER,
                  AICARD_CAP_FENCE_RESET=uapi.CAP_FENCE_RESET,
                  AICARD_TRANSFORMER_CAUSAL=uapi.TRANSFORMER_CAUSAL,
                  AICARD_TRANSFORMER_MAX_DIM=uapi.TRANSFORMER_MAX_DIM,
                  AICARD_TRANSFORMER_MAX_SCORES=uapi.TRANSFORMER_MAX_SCORES)
    src = ['#include <stdio.h>', '#include "aicard_uapi.h"', "int main(void) {"]
    src += [f'printf("{k} %llu\\n", (unsigned long long)({k}));' for k in checks]
    src += ["return 0; }"]
    (tmp_path / "c.c").write_text("\n".join(src))
    subprocess.run(["gcc", "-Wall", "-Werror", f"-I{UMD_INCLUDE}", str(tmp_path / "c.c"), "-o",
                    str(tmp_path / "c")], check=True)
    out = subprocess.run([str(tmp_path / "c")], capture_output=True, text=True, check=True).stdout
    got = {k: int(v) for k, v in (line.split() for line in out.splitlines())}
    assert got == checks


def test_new_firmware_structures_exist_in_every_version():
    for v in fw.VERSIONS:
        S = fw.FwStructs(v)
        for name in ("TRANSFORMER", "NOTIFY", "FENCE_RESET", "PRINTF_BUFFER"):
            assert name in S.commands
        assert "NOTIFY" in S.completions
        assert S.PrintfBuffer.sizeof() == fw.PRINTF_HEADER_SIZE
