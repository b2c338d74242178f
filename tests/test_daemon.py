"""The driver as a daemon (`aishim serve`), with real client processes.

A daemon runs on a temporary socket; unmodified sample binaries run against
it under the real preload library (AISHIM_CONNECT).  Reclamation is checked
from another client, through DEV_QUERY MEM_INFO: a killed process's memory
must come back.  Clients that break the protocol (garbage, truncated frames,
a disconnect in the middle of a request, memory that cannot be read) must
leave the daemon serving everybody else.

Waiting for the daemon to notice a death is a bounded poll for a condition,
never an assertion about how long it took.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, UMD_BIN, aishim, run, shim_env
from structs import uapi, wire
from structs.enums import QueryType, WireMsg

DEVICES = 2


# -- the daemon ------------------------------------------------------------------

class Daemon:
    def __init__(self, tmp: Path, name: str = "d.sock", *args: str):
        self.path = str(tmp / name)
        self.log = tmp / (name + ".log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AISHIM_") and k != "LD_PRELOAD"}
        env.update(AISHIM_VRAM_MB="256", AISHIM_LOG="info")
        self._log_file = open(self.log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aishim.cli", "serve", "--socket", self.path, "--devices", str(DEVICES), *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log_file, text=True)
        self.ready = readline(self.proc)
        assert "serving" in self.ready, (self.ready, self.log.read_text())

    def env(self, **extra) -> dict:
        return {"AISHIM_CONNECT": self.path, "AISHIM_DEVICES": DEVICES, **extra}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        finally:
            self._log_file.close()


def readline(p: subprocess.Popen, limit: float = 60.0) -> str:
    """A line of p's stdout; fails instead of hanging if none comes."""
    import select
    ready, _, _ = select.select([p.stdout], [], [], limit)
    if not ready:
        p.kill()
        pytest.fail(f"no output from {p.args[0]}")
    return p.stdout.readline()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, built):
    d = Daemon(tmp_path_factory.mktemp("daemon"))
    yield d
    assert d.stop() == 0, d.log.read_text()
    assert not os.path.exists(d.path), "the daemon left its socket file behind"


def client(d: Daemon):
    from interposer.remote import RemoteDriver
    from pydriver.client import Client
    return Client(RemoteDriver(d.path))


def vram_used(d: Daemon, minor: int = 0) -> int:
    """DEV_QUERY MEM_INFO from a client of our own: the device-wide figure."""
    from interposer.remote import RemoteDriver
    from pydriver.client import Client
    c = Client(RemoteDriver(d.path), minor)
    try:
        return c.mem_info().vram_used
    finally:
        c.close()
        c.driver.disconnect()


def wait_for(cond, what: str, limit: float = 60.0):
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def settled(d: Daemon) -> None:
    """Every earlier client is gone and reclaimed: no VRAM in use."""
    wait_for(lambda: vram_used(d, 0) == 0 and vram_used(d, 1) == 0, "the daemon to reclaim earlier clients")


# -- a raw client, for frames no real client would send ----------------------------------

_REQ = wire.ReqHeader.codec().struct
_ANS = wire.AnsHeader.codec().struct


class Raw:
    def __init__(self, d: Daemon | None, sock: socket.socket | None = None, seq: int = 0):
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(d.path)
        self.sock = sock
        self.sock.settimeout(30)
        self.seq = seq

    def frame(self, msg: int, body: bytes = b"") -> bytes:
        self.seq += 1
        return _REQ.pack(len(body), msg, 0, 0, self.seq, 0) + body

    def answer(self):
        head = self._exactly(wire.HEADER_SIZE)
        length, mtype, flags, pad, seq, ret = _ANS.unpack(head)
        assert seq == self.seq
        return ret, self._exactly(length)

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "the daemon closed the connection"
            data += chunk
        return data

    def call(self, msg: int, body: bytes = b""):
        self.sock.sendall(self.frame(msg, body))
        return self.answer()

    def hello(self) -> bytes:
        c = wire.HelloReq.codec()
        ret, body = self.call(WireMsg.HELLO, c.pack(c.make(version=wire.VERSION)))
        assert ret == 0
        return wire.HelloAns.codec().unpack(body).session

    def open(self, fd: int = 7, minor: int = 0) -> int:
        c = wire.OpenReq.codec()
        return self.call(WireMsg.OPEN, c.pack(c.make(minor=minor, fd=fd)))[0]

    def ioctl(self, fd: int, name: str, **fields):
        io = uapi.BY_NAME[name]
        codec = io.layout.codec()
        arg = codec.pack(codec.make(**fields))
        c = wire.IoctlReq.codec()
        ret, out = self.call(WireMsg.IOCTL, c.pack(c.make(fd=fd, req=io.request, size=len(arg))) + arg)
        return ret, (codec.unpack(out) if ret >= 0 else None)

    def closed_by_daemon(self) -> bool:
        """Read (an answer the daemon may send first) until it closes."""
        try:
            while self.sock.recv(4096):
                pass
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()


def alive(d: Daemon) -> None:
    """The daemon still serves: a probe answers and a real client works."""
    from interposer.remote import probe
    assert d.proc.poll() is None, d.log.read_text()
    assert probe(d.path).devices == DEVICES
    c = client(d)
    try:
        h, va = c.alloc(4096)
        assert va
    finally:
        c.close()
        c.driver.disconnect()


# -- samples against the daemon -----------------------------------------------------------

SAMPLES = {
    "vecadd": ([], "Test passed"),
    "saxpy": ([], "saxpy passed"),
    "mapped": ([], "passed"),
    "threads": (["-t", "4", "-i", "3"], "passed"),
    "multidevice": ([], "passed"),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_against_daemon(daemon, name):
    args, expect = SAMPLES[name]
    r = run([UMD_BIN / name, *args], env=daemon.env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert expect in r.stdout


def test_run_connect_cli(daemon):
    """aishim run --connect: the device count comes from the daemon."""
    r = aishim("run", "--connect", daemon.path, "--", str(UMD_BIN / "multidevice"))
    assert r.returncode == 0, r.stderr
    assert f"{DEVICES} device" in r.stdout


def test_run_connect_without_daemon(tmp_path):
    r = aishim("run", "--connect", str(tmp_path / "nobody.sock"), "--", str(UMD_BIN / "vecadd"))
    assert r.returncode == 1
    assert "cannot reach the aishim daemon" in r.stderr


def test_ipc_between_processes(daemon):
    """The producer shares a mapped buffer; the consumer (another process)
    sees its bytes and runs saxpy on them in place; the producer reads the
    result through its own mapping; after the free the handle is refused."""
    r = run([UMD_BIN / "ipc_producer", UMD_BIN / "ipc_consumer"], env=daemon.env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ipc_consumer: read 65536 elements" in r.stdout
    assert "handle refused after the free, as expected" in r.stdout
    assert "ipc_producer passed" in r.stdout


def test_ipc_between_processes_needs_a_shared_device(built):
    """Embedded, each process has devices of its own: the token is refused."""
    r = run([UMD_BIN / "ipc_producer", UMD_BIN / "ipc_consumer"])
    assert r.returncode == 1
    assert "not valid on this device" in r.stderr


@pytest.mark.parametrize("connected", [False, True], ids=["embedded", "daemon"])
def test_ipc_between_contexts(daemon, connected):
    r = run([UMD_BIN / "ipc_producer"], env=daemon.env() if connected else None)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "shared between two contexts" in r.stdout


@pytest.mark.parametrize("connected", [False, True], ids=["embedded", "daemon"])
def test_ipc_ioctls_from_c(daemon, cbuild, connected):
    r = run([cbuild("daemon_client"), "ipc-bad"], env=daemon.env() if connected else None)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout and r.stdout.count("ok ") >= 20
    if not connected:
        assert "vram_used 0" in r.stdout


def test_workers_share_one_device(daemon):
    r = run([UMD_BIN / "workers", "-n", "4", "-i", "3"], env=daemon.env())
    why = f"{r.stdout}\n{r.stderr}\n--- daemon log:\n{daemon.log.read_text()[-4000:]}"
    assert r.returncode == 0, why
    assert "workers passed: 4 processes" in r.stdout, why
    pids = {line.split("(pid ")[1].split(")")[0] for line in r.stdout.splitlines() if line.startswith("worker ")}
    assert len(pids) == 4, why
    log = daemon.log.read_text()
    for pid in pids:            # each worker was a client of this daemon
        assert f"client {pid}: session started" in log, why


def test_fork_under_daemon(daemon, cbuild):
    r = run([cbuild("daemon_client"), "fork"], env=daemon.env())
    assert r.returncode == 0, r.stdout + r.stderr


# -- reclamation ---------------------------------------------------------------------------

def test_killed_client_is_reclaimed(daemon, cbuild):
    """SIGKILL a client holding 16 MiB (half of it mapped, one thread blocked
    in EVENT_WAIT inside the daemon): the daemon frees all of it."""
    settled(daemon)
    size = 16 << 20
    p = subprocess.Popen([str(cbuild("daemon_client")), "hog", str(size)], env=shim_env(**daemon.env()),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = readline(p)
        assert line.startswith("ready"), (line, p.stderr.read() if p.poll() is not None else "")
        assert int(line.split()[1]) >= size
        assert vram_used(daemon) >= size          # seen from another client
    finally:
        p.kill()
        p.wait()
    wait_for(lambda: vram_used(daemon) == 0, "the killed client's VRAM to come back")
    alive(daemon)
    assert f"client {p.pid}: session ended" in daemon.log.read_text()


def test_samples_leave_nothing_behind(daemon):
    """After normal exits too: every sample's memory is reclaimed."""
    for name in ("vecadd", "mapped"):
        assert run([UMD_BIN / name], env=daemon.env()).returncode == 0
    settled(daemon)


# -- misbehaving clients -------------------------------------------------------------------------

def _garbage_cases():
    hello = wire.HelloReq.codec()
    good_hello = _REQ.pack(hello.size, WireMsg.HELLO, 0, 0, 1, 0) + hello.pack(hello.make(version=wire.VERSION))
    return {
        "random bytes": (b"", bytes(range(256)) * 4),
        "http": (b"", b"GET / HTTP/1.0\r\n\r\n"),
        "first frame not HELLO": (b"", _REQ.pack(0, WireMsg.FINISH, 0, 0, 1, 0)),
        "bad magic": (b"", _REQ.pack(hello.size, WireMsg.HELLO, 0, 0, 1, 0) + b"x" * hello.size),
        "bad version": (b"", _REQ.pack(hello.size, WireMsg.HELLO, 0, 0, 1, 0) + hello.pack(hello.make(version=99))),
        "unknown type": (good_hello, _REQ.pack(0, 77, 0, 0, 2, 0)),
        "non-zero pad": (good_hello, _REQ.pack(8, WireMsg.CLOSE, 0, 1, 2, 0) + bytes(8)),
        "huge length": (good_hello, _REQ.pack(0xFFFFFFF0, WireMsg.IOCTL, 0, 0, 2, 0)),
        "length does not match type": (good_hello, _REQ.pack(3, WireMsg.CLOSE, 0, 0, 2, 0) + b"abc"),
        "ioctl size mismatch": (good_hello, _REQ.pack(24 + 4, WireMsg.IOCTL, 0, 0, 2, 0)
                                + wire.IoctlReq.codec().pack(wire.IoctlReq.codec().make(fd=3, size=100)) + bytes(4)),
        "second HELLO": (good_hello, good_hello),
        "truncated header": (good_hello, b"\x10\x00\x00"),
        "truncated body": (good_hello, _REQ.pack(24 + 40, WireMsg.IOCTL, 0, 0, 2, 0) + bytes(30)),
    }


@pytest.mark.parametrize("case", sorted(_garbage_cases()))
def test_garbage_on_the_socket(daemon, case):
    first, junk = _garbage_cases()[case]
    raw = Raw(daemon)
    try:
        if first:
            raw.sock.sendall(first)
            raw.seq = 1
            ret, _ = raw.answer()
            assert ret == 0
        raw.sock.sendall(junk)
        if case.startswith("truncated"):
            raw.sock.shutdown(socket.SHUT_WR)     # the frame is cut short: EOF in the middle
        assert raw.closed_by_daemon()
    finally:
        raw.close()
    alive(daemon)


def test_disconnect_in_the_middle_of_a_request(daemon):
    """The client leaves while the daemon is inside its call (a blocking
    EVENT_WAIT): the daemon finishes, cannot answer, and reclaims."""
    settled(daemon)
    raw = Raw(daemon)
    raw.hello()
    assert raw.open(fd=9) == 0
    ret, bo = raw.ioctl(9, "BO_CREATE", size=1 << 20)
    assert ret == 0
    ret, ev = raw.ioctl(9, "EVENT_CREATE")
    assert ret == 0
    io = uapi.BY_NAME["EVENT_WAIT"]
    arg = io.layout.codec().pack(io.layout.codec().make(handle=ev.handle, timeout_ns=300_000_000))
    c = wire.IoctlReq.codec()
    raw.sock.sendall(raw.frame(WireMsg.IOCTL, c.pack(c.make(fd=9, req=io.request, size=len(arg))) + arg))
    raw.close()                                  # gone before the answer
    wait_for(lambda: vram_used(daemon) == 0, "the departed client's VRAM to come back")
    alive(daemon)


def test_unreadable_client_memory(daemon):
    """Nested pointers the daemon cannot follow: an unmapped address in a
    live client (EFAULT), and a client process that is gone while its
    connection lives on in another process (ESRCH or EBADF, never a crash)."""
    raw = Raw(daemon)
    raw.hello()
    assert raw.open(fd=5) == 0
    ret, _ = raw.ioctl(5, "DEV_QUERY", type=QueryType.CLOCK, size=16, pointer=0x10)
    assert ret == -errno.EFAULT
    raw.close()

    parent, child = socket.socketpair()
    script = f"""
import socket, sys
sys.path.insert(0, {str(ROOT)!r})
from structs import wire
from structs.enums import WireMsg
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect({daemon.path!r})
c = wire.HelloReq.codec()
body = c.pack(c.make(version=wire.VERSION))
s.sendall(wire.ReqHeader.codec().struct.pack(len(body), WireMsg.HELLO, 0, 0, 1, 0) + body)
ans = s.recv(4096)
assert wire.AnsHeader.codec().struct.unpack_from(ans)[5] == 0
socket.send_fds(socket.socket(fileno={child.fileno()}), [b"x"], [s.fileno()])
"""
    r = subprocess.run([sys.executable, "-c", script], pass_fds=[child.fileno()], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    _, fds, _, _ = socket.recv_fds(parent, 1, 1)
    orphan = Raw(None, socket.socket(fileno=fds[0]), seq=1)      # its HELLO was seq 1
    ret = orphan.open(fd=6)
    if ret == 0:
        ret, _ = orphan.ioctl(6, "DEV_QUERY", type=QueryType.CLOCK, size=16, pointer=0x10000)
    assert ret in (-errno.ESRCH, -errno.EBADF, -errno.EFAULT), ret
    orphan.close()
    parent.close()
    child.close()
    alive(daemon)


# -- recording -----------------------------------------------------------------------------------

def test_record_through_the_daemon(daemon, tmp_path):
    """One trace per client process, written by the daemon with the
    client's pid; it shows, and replays without the daemon."""
    out = tmp_path / "v.aitrace"
    r = aishim("record", "--connect", daemon.path, "-o", str(out), "--", str(UMD_BIN / "vecadd"))
    assert r.returncode == 0, r.stderr
    from traces.reader import TraceReader
    reader = TraceReader(str(out))
    shown = aishim("show", str(out))
    assert shown.returncode == 0, shown.stderr
    assert "BO_CREATE" in shown.stdout and "FENCE_SIGNALLED" in shown.stdout
    pid = reader.header.pid
    assert f"[{pid}:" in shown.stdout and str(pid) in daemon.log.read_text()
    rep = aishim("replay", str(out), "--", str(UMD_BIN / "vecadd"))
    assert rep.returncode == 0, rep.stderr
    assert "replay matched" in rep.stderr


def test_record_workers_one_trace_per_process(daemon, tmp_path):
    out = tmp_path / "w.aitrace"
    r = aishim("record", "--connect", daemon.path, "-o", str(out), "--", str(UMD_BIN / "workers"), "-n", "2",
               "-i", "1")
    assert r.returncode == 0, r.stderr
    traces = sorted(tmp_path.glob("w.aitrace*"))
    assert len(traces) == 2
    from traces.reader import TraceReader
    assert len({TraceReader(str(t)).header.pid for t in traces}) == 2


# -- the daemon's own life ------------------------------------------------------------------------------

def test_shutdown_leaves_no_socket_and_clients_get_eio(tmp_path, cbuild, built):
    d = Daemon(tmp_path)
    p = subprocess.Popen([str(cbuild("daemon_client")), "hog", str(1 << 20)], env=shim_env(**d.env()),
                         stdout=subprocess.PIPE, text=True)
    try:
        assert readline(p).startswith("ready")
        assert d.stop() == 0, d.log.read_text()
        assert not os.path.exists(d.path)
        line = readline(p)                  # the blocked waiter comes back with an error
        assert line.startswith("EVENT_WAIT returned -"), line
        assert p.poll() is None             # and the client lives on
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_any_thread_stops_the_daemon(tmp_path, built, sig):
    """A process-directed signal may be delivered to any thread; the main
    thread, blocked waiting for clients, must still wake up and shut down
    (it once slept on, about one SIGTERM in ten).  tgkill() aims the signal
    at a thread that is not the main one, every time."""
    import ctypes
    import platform
    SYS_tgkill = {"x86_64": 234, "aarch64": 131}.get(platform.machine())
    if SYS_tgkill is None:
        pytest.skip(f"tgkill's number on {platform.machine()} is not known here")
    d = Daemon(tmp_path)
    others = [int(t) for t in os.listdir(f"/proc/{d.proc.pid}/task") if int(t) != d.proc.pid]
    assert others, "the daemon has a reaper thread"
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(SYS_tgkill, d.proc.pid, others[0], int(sig)) == 0, ctypes.get_errno()
    try:
        assert d.proc.wait(timeout=30) == 0, d.log.read_text()
    finally:
        d.stop()
    assert not os.path.exists(d.path)


def test_second_daemon_and_stale_socket(tmp_path, built):
    d = Daemon(tmp_path)
    try:
        r = aishim("serve", "--socket", d.path)
        assert r.returncode == 1 and "already serving" in r.stderr
    finally:
        assert d.stop() == 0
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(d.path)                          # a socket file nobody listens on
    stale.close()
    d2 = Daemon(tmp_path)                       # takes its place
    assert d2.stop() == 0
    assert not os.path.exists(d2.path)


def test_serve_refuses_a_path_that_is_not_a_socket(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = aishim("serve", "--socket", str(f))
    assert r.returncode == 1 and "not a socket" in r.stderr
    assert f.read_text() == "x"


def test_peer_pid_comes_from_the_kernel(daemon):
    """The session belongs to the pid SO_PEERCRED reports; a connection of
    another process cannot join it."""
    a = Raw(daemon)
    sid = a.hello()
    b_script = f"""
import socket, sys
sys.path.insert(0, {str(ROOT)!r})
from structs import wire
from structs.enums import WireMsg
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect({daemon.path!r})
c = wire.HelloReq.codec()
body = c.pack(c.make(version=wire.VERSION, flags=wire.HELLO_JOIN, session=bytes.fromhex({sid.hex()!r})))
s.sendall(wire.ReqHeader.codec().struct.pack(len(body), WireMsg.HELLO, 0, 0, 1, 0) + body)
print(wire.AnsHeader.codec().struct.unpack_from(s.recv(4096))[5])
"""
    r = subprocess.run([sys.executable, "-c", b_script], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == str(-errno.ESRCH), r.stderr
    a.close()
    alive(daemon)


def test_wire_frames_roundtrip():
    """The construct declaration of a whole frame and the fast codecs agree."""
    io = uapi.BY_NAME["WAIT"]
    arg = bytes(range(40))
    body = wire.IoctlReq.codec().pack(wire.IoctlReq.codec().make(fd=3, req=io.request, argaddr=0x1234,
                                                                   size=len(arg))) + arg
    frame = _REQ.pack(len(body), WireMsg.IOCTL, 0, 0, 7, 0) + body
    parsed = wire.RequestFrame.parse(frame)
    assert parsed.header.type == WireMsg.IOCTL and parsed.header.seq == 7
    assert parsed.body.fd == 3 and parsed.body.req == io.request and parsed.tail == arg
    assert wire.RequestFrame.build(parsed) == frame
    joined = wire.joined(wire.ReqHeader, wire.IoctlReq)
    assert joined.size == wire.HEADER_SIZE + wire.IoctlReq.sizeof()
    assert joined.pack(*struct.unpack_from("<IBBHII", frame), 3, io.request, 0x1234, 0, 40) == frame[:joined.size]
    for layout in wire.LAYOUTS:
        assert layout.codec().size == layout.sizeof()
    # The example in structs/wire.py's docstring is these very bytes.
    w = uapi.Wait.codec()
    arg = w.pack(w.make(queue_id=1, fence=3, timeout_ns=uapi.TIMEOUT_INFINITE))
    body = wire.IoctlReq.codec().pack(wire.IoctlReq.codec().make(fd=3, req=io.request, argaddr=0x7FFC1234ABCD,
                                                                   size=40)) + arg
    example = " ".join(line.strip().split("  ")[0] for line in wire.__doc__.split("16 + 24 + 40 bytes):")[1]
                       .strip().splitlines())
    assert bytes.fromhex(example.replace(" ", "")) == _REQ.pack(64, WireMsg.IOCTL, 0, 0, 7, 0) + body
    assert wire.HEADER_SIZE == wire.ReqHeader.sizeof() == wire.AnsHeader.sizeof()



def test_random_frames_never_stop_the_daemon(daemon):
    """A seeded storm of frames: well-formed ones with random fields (every
    ioctl of the UAPI, opens, closes, dups, mmaps, unmaps) and malformed
    ones.  The daemon answers or closes the connection, never dies, and
    when the storm's sessions are gone every byte of VRAM is back.  User
    pointers are kept out of this process's memory (0, the first page, or
    non-canonical), so the daemon's copies can only fail."""
    import random

    from structs.layout import LayoutError
    rnd = random.Random(2026)
    bad_ptr = lambda: rnd.choice([0, 8, 0x800, 1 << 63, (1 << 64) - 4096])   # noqa: E731
    stats = {"answered": 0, "closed": 0}
    raw = None
    fds = [5, 6, 7]

    def connect():
        r = Raw(daemon)
        r.hello()
        for fd in fds:
            r.open(fd=fd, minor=rnd.randrange(DEVICES))
        return r

    for _ in range(1500):
        if raw is None:
            raw = connect()
        kind = rnd.random()
        if kind < 0.6:
            io = rnd.choice(uapi.IOCTLS)
            codec = io.layout.codec()
            values = {}
            for f in codec.fields:
                if f.is_const:
                    continue
                if f.fmt.endswith("s"):
                    values[f.name] = bytes(rnd.getrandbits(8) for _ in range(f.size))
                elif f.name in ("pointer", "cmds", "image", "params", "src", "dst"):
                    values[f.name] = bad_ptr()
                elif f.name == "timeout_ns":
                    values[f.name] = rnd.randrange(1_000_000)
                elif f.count > 1:
                    values[f.name] = tuple(rnd.randrange(4) for _ in range(f.count))
                else:
                    values[f.name] = rnd.choice([0, 1, 2, 3, rnd.getrandbits(8 * min(f.size, 4))])
            try:
                arg = codec.pack(codec.make(**values))
            except (LayoutError, Exception):
                arg = bytes(codec.size)
            if rnd.random() < 0.1:                   # a known number with the wrong size
                req = io.request + (rnd.choice([1, -1]) << 16)
                arg = bytes(len(arg) + 1)[:max(0, len(arg) - 1)] if req < io.request else arg + b"\0"
            else:
                req = io.request
            c = wire.IoctlReq.codec()
            body = c.pack(c.make(fd=rnd.choice(fds + [99]), req=req & 0xFFFFFFFF, size=len(arg),
                                 arg_fault=rnd.random() < 0.05)) + arg
            msg = WireMsg.IOCTL
        elif kind < 0.7:
            c = wire.OpenReq.codec()
            msg, body = WireMsg.OPEN, c.pack(c.make(minor=rnd.randrange(6), fd=rnd.choice(fds), flags=2))
        elif kind < 0.75:
            c = wire.CloseReq.codec()
            msg, body = WireMsg.CLOSE, c.pack(c.make(fd=rnd.choice(fds + [99])))
        elif kind < 0.8:
            c = wire.DupReq.codec()
            msg, body = WireMsg.DUP, c.pack(c.make(oldfd=rnd.choice(fds), newfd=rnd.choice(fds + [11])))
        elif kind < 0.85:
            c = wire.MmapReq.codec()
            msg, body = WireMsg.MMAP, c.pack(c.make(fd=rnd.choice(fds), prot=3, flags=rnd.choice([1, 2]),
                                                    length=rnd.choice([0, 4096, 1 << 40]),
                                                    offset=rnd.choice([0, 1 << 40, (1 << 40) + 0x400000])))
        elif kind < 0.9:
            if rnd.random() < 0.5:
                c = wire.MappedReq.codec()
                msg, body = WireMsg.MAPPED, c.pack(c.make(fd=rnd.choice(fds), addr=rnd.getrandbits(47),
                                                          length=4096, offset=1 << 40))
            else:
                c = wire.MunmapReq.codec()
                msg, body = WireMsg.MUNMAP, c.pack(c.make(addr=rnd.getrandbits(47), length=rnd.getrandbits(20)))
        else:                                        # malformed: random header bytes
            raw.sock.sendall(bytes(rnd.getrandbits(8) for _ in range(16)) + bytes(rnd.randrange(64)))
            raw.sock.shutdown(socket.SHUT_WR)
            assert raw.closed_by_daemon()
            raw.close()
            raw = None
            stats["closed"] += 1
            continue
        raw.sock.sendall(raw.frame(msg, body))
        ret, _ = raw.answer()          # (a VRAM fd riding along is dropped by the kernel: plain recv)
        assert ret >= 0 or -ret in errno.errorcode, ret
        stats["answered"] += 1
    if raw is not None:
        raw.close()
    assert stats["answered"] > 1000 and stats["closed"] > 50, stats
    alive(daemon)
    settled(daemon)
