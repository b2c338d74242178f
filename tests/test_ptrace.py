"""The ptrace backend (issue 5): real C programs under the real tracer.

Every run goes through ``python -m interposer.ptrace`` in a session of its
own, and afterwards that session must be empty: no stray traced process, no
zombie (``run_traced`` checks it).  Sizes are small: a stop costs tens of us.
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time

import pytest

from conftest import ROOT, UMD_BIN, UMD_INCLUDE, aishim, run
from interposer.ptrace import hooks, seccomp
from interposer.ptrace import syscalls as sc
from structs import ioc, uapi

TRACER = [sys.executable, "-m", "interposer.ptrace"]


def _env(extra=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "AISHIM_LOG")}
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


def assert_session_empty(sid: int, timeout: float = 5.0) -> None:
    """No process is left in the tracer's session (a zombie still counts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(sid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            left = [p for p in os.listdir("/proc") if p.isdigit() and _sid_of(int(p)) == sid]
            pytest.fail(f"processes left behind in session {sid}: {left}")
        time.sleep(0.02)


def _sid_of(pid: int):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def run_traced(argv, *, opts=(), env=None, timeout=60) -> subprocess.CompletedProcess:
    p = subprocess.Popen([*TRACER, *opts, "--", *map(str, argv)], env=_env(env), cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    assert_session_empty(p.pid)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.fixture(scope="session")
def static_umd(built):
    subprocess.run(["make", "--no-print-directory", "-s", "-C", str(ROOT / "umd"),
                    f"BUILD={ROOT / 'build' / 'umd'}", "static"], check=True, stdout=subprocess.DEVNULL)
    return UMD_BIN / "vecadd-static"


# ---------------------------------------------------------------------------
# the filter, decided without running anything

def bpf_run(prog: bytes, nr: int, args=(0,) * 6, arch=seccomp.AUDIT_ARCH_X86_64) -> int:
    """A classic-BPF interpreter for the instructions the filter uses."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *[a & 0xFFFFFFFFFFFFFFFF for a in args])
    insns = [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]
    pc, a = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == seccomp.BPF_LD_W_ABS:
            a = struct.unpack_from("<I", data, k)[0]
        elif code == seccomp.BPF_AND_K:
            a &= k
        elif code == seccomp.BPF_RET_K:
            return k
        else:
            cond = {seccomp.BPF_JEQ_K: a == k, seccomp.BPF_JGE_K: a >= k, seccomp.BPF_JSET_K: bool(a & k)}[code]
            pc += jt if cond else jf
        pc += 1


ALLOW, TRACE = seccomp.SECCOMP_RET_ALLOW, seccomp.SECCOMP_RET_TRACE
MAP_SHARED, MAP_ANON = 0x01, 0x20
TCGETS = 0x5401


@pytest.mark.parametrize("mode, nr, args, verdict", [
    ("emulate", 39, (), ALLOW),                                     # getpid
    ("emulate", 0, (3,), ALLOW),                                    # read
    ("emulate", sc.NR["openat"], (), TRACE),
    ("emulate", sc.NR["close"], (5,), TRACE),
    ("emulate", sc.NR["newfstatat"], (), TRACE),
    ("emulate", sc.NR["mmap"], (0, 4096, 3, MAP_SHARED | MAP_ANON, 2**64 - 1, 0), ALLOW),
    ("emulate", sc.NR["mmap"], (0, 4096, 3, MAP_SHARED, 3, 0), TRACE),
    ("emulate", sc.NR["ioctl"], (3, uapi.BY_NAME["BO_CREATE"].request), TRACE),
    ("emulate", sc.NR["ioctl"], (1, TCGETS), ALLOW),
    ("emulate", sc.NR["munmap"], (seccomp.BO_WINDOW_START + 0x5000, 4096), TRACE),
    ("emulate", sc.NR["munmap"], (0x7F00_0000_0000, 4096), ALLOW),
    ("emulate", sc.NR["munmap"], (seccomp.BO_WINDOW_END, 4096), ALLOW),
    ("emulate", sc.NR["fcntl"], (3, 3), ALLOW),                     # F_GETFL
    ("emulate", sc.NR["fcntl"], (3, sc.F_DUPFD_CLOEXEC, 10), TRACE),
    ("emulate", sc.NR["ftruncate"], (3, 0), TRACE),
    ("emulate", 0x40000000 | 2, (), ALLOW),                         # x32 ABI: not emulated
    ("passthrough", sc.NR["ioctl"], (1, TCGETS), TRACE),
    ("passthrough", sc.NR["munmap"], (0x7F00_0000_0000, 4096), TRACE),
    ("passthrough", sc.NR["newfstatat"], (), ALLOW),
    ("passthrough", sc.NR["openat"], (), TRACE),
])
def test_filter_stops_only_where_it_matters(mode, nr, args, verdict):
    prog = seccomp.build_filter(mode)
    assert bpf_run(prog, nr, tuple(args) + (0,) * (6 - len(args))) == verdict


def test_filter_lets_foreign_abi_through():
    prog = seccomp.build_filter("emulate")
    assert bpf_run(prog, 5, arch=0x40000003) == ALLOW               # i386 open (int 0x80)


def test_syscall_numbers_match_the_c_headers(tmp_path):
    src = tmp_path / "nr.c"
    known = [n for n in sc.NR if n not in ("getxattrat", "listxattrat")]
    src.write_text("#include <stdio.h>\n#include <sys/syscall.h>\nint main(void){\n" +
                   "".join(f'printf("{n} %d\\n", SYS_{n});\n' for n in known) + "return 0;}\n")
    subprocess.run(["gcc", str(src), "-o", str(tmp_path / "nr")], check=True)
    out = subprocess.run([str(tmp_path / "nr")], capture_output=True, text=True, check=True).stdout
    assert {n: int(v) for n, v in (line.split() for line in out.splitlines())} == {n: sc.NR[n] for n in known}


def test_legacy_tty_requests_are_sized_by_the_table():
    assert hooks.arg_size(0x5401) == (36, ioc.READ)          # TCGETS: kernel struct termios
    assert hooks.arg_size(0x5414) == (8, ioc.WRITE)          # TIOCSWINSZ
    req = uapi.BY_NAME["COPY"].request
    assert hooks.arg_size(req) == (ioc.ioc_size(req), ioc.READ | ioc.WRITE)
    assert hooks.arg_size(0x540B) == (0, ioc.NONE)           # TCFLSH: a value, no bytes


# ---------------------------------------------------------------------------
# the samples: the same binaries pass under ptrace as under preload

SAMPLES = {
    "vecadd": [],
    "vecadd-dev2": ["-s", str(1 << 20), "-d", "2"],
    "saxpy": [],
    "memcpy_roundtrip": ["-max", str(1 << 20)],
    "multidevice": [],
    "threads": ["-t", "4", "-i", "3"],
    "mapped": [],
    "errors": [],
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_passes_under_ptrace(built, name):
    r = run_traced([UMD_BIN / name.split("-")[0], *SAMPLES[name]])
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "passed" in r.stdout.lower(), r.stdout


def _runtime_log(text: str) -> list[str]:
    """The runtime's own AICARD_DEBUG lines, host addresses and timings masked,
    fd numbers renamed in order of appearance: the preload library's driver
    holds fds of its own in the process (its VRAM memfds), the tracer's do
    not, so numbers differ while the calls are the same."""
    lines, fds = [], {}

    def fd(m):
        return m.group(1) + fds.setdefault(m.group(2), f"FD{len(fds)}")

    for line in text.splitlines():
        if not line.startswith("[aicard]"):
            continue
        line = re.sub(r"0x[5-7][0-9a-f]{11}\b", "HOSTPTR", line)     # heap, mmap, stack
        line = re.sub(r"\d+\.\d+ ms", "T ms", line)
        line = re.sub(r"timestamp=\d+", "timestamp=T", line)          # the device clock runs
        line = re.sub(r"(fd=|open /dev/aicard\d+ -> )(\d+)", fd, line)
        lines.append(line)
    return lines


@pytest.mark.parametrize("name", ["vecadd", "saxpy", "mapped", "multidevice"])
def test_runtime_sees_the_same_driver_under_both_frontends(built, name):
    """Call for call, the runtime's debug log (every ioctl with its inputs
    and outputs) is the same under preload and under ptrace."""
    pre = run([UMD_BIN / name], env={"AICARD_DEBUG": 1})
    tr = run_traced([UMD_BIN / name], env={"AICARD_DEBUG": 1})
    assert pre.returncode == tr.returncode == 0, tr.stderr
    a, b = _runtime_log(pre.stderr), _runtime_log(tr.stderr)
    assert len(a) > 5 and a == b


def test_static_binary_is_reached_only_by_ptrace(static_umd):
    alone = run([static_umd], shim=False)
    preloaded = run([static_umd])                   # LD_PRELOAD cannot reach it
    assert alone.returncode == preloaded.returncode == 2
    assert preloaded.stderr.strip() == "no aicard device"
    r = run_traced([static_umd])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Test passed" in r.stdout


@pytest.mark.parametrize("flags", [(), ("-static",)], ids=["dynamic", "static"])
def test_raw_syscalls(cbuild, flags):
    """open/stat/ioctl/mmap/dup/fork/threads through syscall(): nodes, bad
    pointers, fd life, fork and exec semantics (see tests/c/ptrace_raw.c)."""
    exe = cbuild("ptrace_raw", *flags)
    r = run_traced([exe])
    assert r.returncode == 0, r.stdout + r.stderr
    fails = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert not fails and r.stdout.count("\nok ") > 30, r.stdout


def test_exec_keeps_a_device_fd_without_cloexec(cbuild):
    r = run_traced([cbuild("ptrace_raw"), "exec-self"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "exec-self: keep 0" in r.stdout


def test_raw_syscalls_fail_cleanly_without_tracer(cbuild):
    for env in ({}, None):                          # alone, and with LD_PRELOAD: unreachable
        r = run([cbuild("ptrace_raw")], shim=env is None)
        assert r.returncode == 2 and r.stderr.strip() == "no aicard device"
    assert not os.path.exists("/dev/aicard0")


def test_unrelated_syscalls_do_not_stop(built, tmp_path):
    """A loop of 20000 x (getpid, clock_gettime, read, write) makes no stop:
    the filter lets them through, so the program runs at native speed."""
    exe = tmp_path / "bench"
    subprocess.run(["gcc", "-O2", f"-I{UMD_INCLUDE}", str(ROOT / "benchmarks" / "c" / "ptrace_bench.c"),
                    "-o", str(exe)], check=True)
    r = run_traced([exe, "compute", "20000"], opts=["--stats"])
    assert r.returncode == 0, r.stderr
    stops = int(re.search(r"stops=(\d+)", r.stderr).group(1))
    assert stops < 100, r.stderr


def test_recorder_hook_sees_every_device_call(built, tmp_path):
    events = tmp_path / "ev.jsonl"
    r = run_traced([UMD_BIN / "mapped"], opts=["--events", events])
    assert r.returncode == 0, r.stderr
    evs = [json.loads(line) for line in events.read_text().splitlines()]
    names = [e["name"] for e in evs]
    assert names[0] == "open" and evs[0]["path"] == "/dev/aicard0"
    assert names.count("mmap") == 3 and names.count("munmap") == 3
    for e in evs:
        if e["name"] == "ioctl":
            assert uapi.lookup(e["request"]) is not None
            size = ioc.ioc_size(e["request"])
            if ioc.ioc_dir(e["request"]) & ioc.WRITE:
                assert len(bytes.fromhex(e["arg_before"])) == size
            if e["ret"] == 0 and ioc.ioc_dir(e["request"]) & ioc.READ:
                assert len(bytes.fromhex(e["arg_after"])) == size
        if e["name"] == "mmap":
            assert seccomp.BO_WINDOW_START <= e["ret"] < seccomp.BO_WINDOW_END


# ---------------------------------------------------------------------------
# passthrough: a real device node (a pseudo-terminal), recorded

def test_passthrough_records_what_the_program_saw(cbuild, tmp_path):
    events = tmp_path / "pty.jsonl"
    r = run_traced([cbuild("pty_probe")], opts=["--passthrough", "/dev/ptmx", "--events", events])
    assert r.returncode == 0, r.stdout + r.stderr
    seen = dict(line.split() for line in r.stdout.splitlines())
    evs = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["name"] for e in evs] == ["open", "ioctl", "ioctl", "ioctl", "ioctl", "ioctl", "close"]
    assert evs[0]["path"] == "/dev/ptmx" and evs[0]["ret"] == evs[-1]["fd"]
    tcgets, getwin, setwin, getwin2, ptn = evs[1:6]
    assert tcgets["request"] == 0x5401 and tcgets["arg_after"] == seen["TCGETS"]
    assert len(bytes.fromhex(tcgets["arg_after"])) == 36            # kernel struct termios
    assert getwin["request"] == 0x5413 and getwin["arg_after"] == seen["TIOCGWINSZ"]
    assert setwin["request"] == 0x5414 and setwin["arg_before"] == seen["TIOCSWINSZ"]
    assert setwin["arg_before"] == struct.pack("<4H", 33, 77, 5, 9).hex()
    assert setwin["arg_after"] is None                              # an input only
    assert getwin2["arg_after"] == seen["TIOCGWINSZ2"] == setwin["arg_before"]
    assert ptn["request"] == 0x80045430 and ptn["arg_after"] == seen["TIOCGPTN"]   # _IOC-sized
    assert all(e["emulated"] is False and e["errno"] == 0 for e in evs)


RECORD_SCRIPT = """
import os, sys
from interposer.ptrace import run
from traces.recorder import Recorder
out, argv = sys.argv[1], sys.argv[2:]
sys.exit(run(argv, dict(os.environ), driver_tracer=lambda pid, tid: Recorder(out, argv)))
"""


def test_emulation_records_through_the_drivers_recorder(static_umd, tmp_path):
    """run(driver_tracer=...) gives each traced process's Driver a trace
    Recorder: a static binary recorded, shown by aishim show."""
    trace = tmp_path / "static.aitrace"
    p = subprocess.Popen([sys.executable, "-c", RECORD_SCRIPT, str(trace), str(static_umd)], env=_env(),
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    out, err = p.communicate(timeout=60)
    assert_session_empty(p.pid)
    assert p.returncode == 0, err
    shown = aishim("show", str(trace))
    assert shown.returncode == 0, shown.stderr
    assert "open('/dev/aicard0') = 3" in shown.stdout and "BO_CREATE" in shown.stdout


def test_trace_hook_speaks_the_recorders_conventions():
    """Passthrough events become Recorder enter/exit calls as the Driver makes
    them (pydriver/tracing.py kinds, a0..a2 per traces/format.py)."""
    from interposer.ptrace.hooks import SyscallEvent
    from interposer.ptrace.record import TraceHook
    from pydriver import tracing

    calls = []

    class FakeRecorder:
        def __init__(self, pid, tid):
            self.pid, self.tid = pid, tid

        def enter(self, call, fd, minor, req, arg=None, **kw):
            calls.append(("enter", self.pid, self.tid(), call, fd, minor, req, arg, kw))
            return len(calls)

        def exit(self, seq, call, fd, minor, req, ret, arg=None, **kw):
            calls.append(("exit", self.pid, self.tid(), seq, call, fd, minor, req, ret, arg, kw))

        def close(self):
            calls.append(("close", self.pid))

    hook = TraceHook(FakeRecorder)
    ioctl = SyscallEvent(10, 11, "ioctl", fd=3, minor=2, request=0x5414, arg=0x7000,
                         arg_before=b"\x21\x00\x4d\x00\x05\x00\x09\x00")
    hook.on_entry(ioctl)
    ioctl.finish(0)
    hook.on_exit(ioctl)
    mmap = SyscallEvent(10, 12, "mmap", fd=3, minor=2, length=8192, prot=3, flags=1, offset=4096)
    hook.on_entry(mmap)
    mmap.finish(-22)
    hook.on_exit(mmap)
    hook.close()
    assert calls[0] == ("enter", 10, 11, tracing.IOCTL, 3, 2, 0x5414, ioctl.arg_before, {"a0": 0x7000})
    assert calls[1] == ("exit", 10, 11, 1, tracing.IOCTL, 3, 2, 0x5414, 0, None, {"a0": 0x7000})
    assert calls[2][:7] == ("enter", 10, 12, tracing.MMAP, 3, 2, 3)
    assert calls[2][8] == {"a0": 8192, "a1": 4096, "a2": 1}
    assert calls[3][8] == -22 and calls[4] == ("close", 10)


# ---------------------------------------------------------------------------
# bad input

@pytest.mark.parametrize("mode, status", [(["segv"], 128 + signal.SIGSEGV), (["abort"], 128 + signal.SIGABRT),
                                          (["exit", "7"], 7)])
def test_tracer_exits_with_the_programs_status(cbuild, mode, status):
    r = run_traced([cbuild("ptrace_bad"), *mode])
    assert r.returncode == status, r.stderr
    assert "Traceback" not in r.stderr


def _start(cbuild, mode):
    p = subprocess.Popen([*TRACER, "--", str(cbuild("ptrace_bad")), mode], env=_env(), cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = p.stdout.readline()
    assert line.startswith("ready"), (line, p.stderr.read() if p.poll() is not None else "")
    return p, [int(x) for x in line.split()[1:]]


def test_program_killed_from_outside(cbuild):
    p, (pid,) = _start(cbuild, "ioctl-loop")
    os.kill(pid, signal.SIGKILL)
    assert p.wait(timeout=10) == 128 + signal.SIGKILL
    assert_session_empty(p.pid)


@pytest.mark.parametrize("mode", ["spin", "ioctl-loop", "fork-spin", "blocked-thread"])
def test_ctrl_c_kills_the_program_cleanly(cbuild, mode):
    p, pids = _start(cbuild, mode)
    time.sleep(0.1)
    p.send_signal(signal.SIGINT)                # to the tracer only
    assert p.wait(timeout=10) == 128 + signal.SIGINT
    err = p.stderr.read()
    assert "Traceback" not in err and "interrupted" in err
    assert_session_empty(p.pid)
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]


@pytest.mark.parametrize("kind, status, message", [
    ("no-x-bit", 126, "not executable"),
    ("directory", 126, "not executable"),
    ("missing", 127, "no such program"),
    ("garbage", 126, "cannot execute: Exec format error"),
])
def test_program_that_cannot_run_is_one_clear_line(tmp_path, kind, status, message):
    target = tmp_path / kind
    if kind == "directory":
        target.mkdir()
    elif kind != "missing":
        target.write_text("not a program\n")
        target.chmod(0o755 if kind == "garbage" else 0o644)
    r = run_traced([target])
    assert r.returncode == status
    assert r.stderr.strip() == f"aishim: {target}: {message}"
