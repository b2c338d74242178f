"""The Python side of the preload library: cffi entry points -> Driver.

Runs inside the host process, in the interpreter the driver library started
(or in the host's own, when the host is Python).  Each entry point is
attached with an explicit error value: cffi's default for an exception is 0,
which for an ioctl means "success" - exactly the silent wrong answer a shim
must never give.
"""

from __future__ import annotations

import atexit
import errno
import os
import sys
import threading
import traceback

from pydriver.log import log

_driver = None                 # pydriver.driver.Driver, or a replay/remote one
_driver_lock = threading.Lock()
ATTACHED: list[str] = []


def driver():
    global _driver
    if _driver is None:
        with _driver_lock:
            if _driver is None:
                _driver = _make_driver()
    return _driver


def _make_driver():
    """The simulated device, recorded if AISHIM_RECORD names a trace file;
    or, with AISHIM_REPLAY, a recorded trace answering instead of a device;
    or, with AISHIM_CONNECT, the devices of a daemon (`aishim serve`), which
    also records this process when AISHIM_RECORD is set."""
    atexit.register(finish)
    _start_profile()
    replay = os.environ.get("AISHIM_REPLAY")
    if replay:
        from pydriver.replay import ReplayDriver
        from traces.format import TraceFormatError
        try:
            return ReplayDriver(replay, status_path=os.environ.get("AISHIM_REPLAY_STATUS"),
                                loose=bool(os.environ.get("AISHIM_REPLAY_LOOSE")))
        except TraceFormatError as e:
            # Nothing sensible can answer this program's device calls.
            sys.stderr.write(f"aishim: replay: {e}\n")
            sys.stderr.flush()
            os._exit(3)
    path = os.environ.get("AISHIM_RECORD")
    connect = os.environ.get("AISHIM_CONNECT")
    if connect:
        from interposer.remote import RemoteDriver
        return RemoteDriver(connect, record=path or None, argv=_argv())
    tracer = None
    if path:
        from traces.recorder import Recorder
        tracer = Recorder(path, _argv())
    # A Python host runs its atexit hooks; a C host reaches finish() through
    # the preload library's destructor.  finish() may run twice: it is idempotent.
    from pydriver.driver import Driver
    return Driver(tracer=tracer)


def _argv() -> list[str]:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return [a.decode("utf-8", "surrogateescape") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


_profile = None


def _start_profile() -> None:
    """AISHIM_PROFILE=FILE: cProfile the driver in the thread that made the
    first device call (the program's main thread, usually) and write pstats
    to FILE at exit - `python -m pstats FILE` reads it.  For finding where
    an ioctl's microseconds go; the driver runs ~3x slower while on."""
    global _profile
    out = os.environ.get("AISHIM_PROFILE")
    if not out:
        return
    import cProfile
    _profile = (cProfile.Profile(), out)
    _profile[0].enable()


def _dump_profile() -> None:
    global _profile
    if _profile is None:
        return
    prof, out = _profile
    _profile = None
    prof.disable()
    try:
        prof.dump_stats(out)
    except OSError as e:
        sys.stderr.write(f"aishim: cannot write the profile {out}: {e}\n")


def finish() -> int:
    _dump_profile()
    d = _driver
    if d is not None and d.tracer is not None:
        d.tracer.close()
    if d is not None and hasattr(d, "finish"):
        d.finish()
    return 0


def _on_error(exc_type, exc_value, tb):
    # Reached only if Driver's own guard failed; still never fatal.
    try:
        log.error("exception at the C boundary (returning EIO):\n%s",
                  "".join(traceback.format_exception(exc_type, exc_value, tb)))
    except Exception:
        sys.stderr.write("aishim: exception at the C boundary\n")
    return None


def _bind_ioctl(slot: list):
    d = driver()
    fn = getattr(d, "ioctl_entry", None) or d.ioctl
    slot.append(fn)
    return fn


def attach(ffi, lib) -> None:
    if os.environ.get("AISHIM_INJECT_BUG") == "init":
        raise RuntimeError("driver start-up failure injected by AISHIM_INJECT_BUG=init")

    from pydriver import uaccess
    uaccess.use_native(lib.aicard_user_copy, lib.aicard_user_write)

    def extern(fn):
        ATTACHED.append(fn.__name__)
        return ffi.def_extern(error=-errno.EIO, onerror=_on_error)(fn)

    @extern
    def aicard_py_open(minor, fd, flags):
        return driver().open(minor, fd, flags)

    @extern
    def aicard_py_close(fd):
        return driver().close(fd)

    @extern
    def aicard_py_dup(oldfd, newfd):
        return driver().dup(oldfd, newfd)

    ioctl_fn = []      # the driver's ioctl entry, bound on the first call

    @extern
    def aicard_py_ioctl(fd, req, buf, size, arg_fault, argaddr):
        # The hottest crossing: one closure lookup instead of driver() and
        # the method lookup (preload.c has already cut req to 32 bits).
        fn = ioctl_fn[0] if ioctl_fn else _bind_ioctl(ioctl_fn)
        return fn(fd, req, ffi.buffer(buf, size) if size else bytearray(), arg_fault, argaddr)

    @extern
    def aicard_py_mmap(fd, length, prot, flags, offset, out_fd, out_offset):
        r, vfd, voff = driver().mmap(fd, length, prot, flags, offset)
        out_fd[0] = vfd
        out_offset[0] = voff
        return r

    @extern
    def aicard_py_mapped(fd, addr, length, offset):
        return driver().mapped(fd, addr, length, offset)

    @extern
    def aicard_py_munmap(addr, length):
        return driver().munmap(addr, length)

    @extern
    def aicard_py_exit():
        return finish()

    @extern
    def aicard_py_ping():
        from interposer.build import PING_MAGIC
        return PING_MAGIC

    from interposer.build import extern_names
    missing = set(extern_names()) - set(ATTACHED)
    if missing:
        # Unattached entry points would print to stderr and return 0.
        log.error("driver entry points not attached: %s", ", ".join(sorted(missing)))
