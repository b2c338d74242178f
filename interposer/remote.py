"""RemoteDriver: the driver interface, served by a daemon (`aishim serve`).

With AISHIM_CONNECT=SOCKET the glue creates this instead of an embedded
Driver.  Every entry point (open, close, dup, ioctl, mmap, mapped, munmap)
becomes one request of the wire protocol (structs/wire.py) and returns what
the daemon's Driver for this process answered: >= 0 or -errno, never an
exception.  The preload library cannot tell the difference.

* Connections: a pool.  A call takes an idle connection (or opens one that
  joins this process's session) and gives it back when answered, so a
  thread blocked in WAIT never holds up another thread's SUBMIT.
* Memory: ioctl arguments travel inline; nested user pointers are the
  daemon's business (process_vm_readv/writev on this pid: prctl
  PR_SET_PTRACER lets it, should Yama be on).  mmap answers carry the
  device's VRAM memfd (SCM_RIGHTS), kept per device, and the preload library
  maps it at the BO's offset: the same pages the daemon's device uses.
* fork: the child drops the parent's connections and VRAM fds; device fds
  it inherited answer EBADFD, as with the embedded driver, and its first
  open starts a session of its own.
* The daemon gone (it exited, the socket broke): every later call answers
  EIO (open: ENXIO, no device), logged once; nothing is retried.
"""

from __future__ import annotations

import array
import ctypes
import errno
import logging
import os
import select
import socket
import struct
import threading
import time

from pydriver.log import configure as configure_log
from pydriver.log import log
from pydriver.server import spin_seconds
from structs import wire
from structs.enums import WireMsg

PR_SET_PTRACER = 0x59616D61

_REQ = wire.ReqHeader.codec().struct
_ANS = wire.AnsHeader.codec().struct
_IOCTL = wire.joined(wire.ReqHeader, wire.IoctlReq)
_IOCTL_FIXED = wire.IoctlReq.sizeof()
_HDR = wire.HEADER_SIZE
_MSG_IOCTL = int(WireMsg.IOCTL)


class _Broken(Exception):
    """The connection (or what came over it) is unusable."""


class _Conn:
    """One connection of this process's session."""

    def __init__(self, sock: socket.socket, spin: float):
        self.sock = sock
        self.seq = 0
        self.spin = spin
        self.buf = bytearray(_HDR + wire.MAX_ARG + 64)
        self.view = memoryview(self.buf)
        self.poll = select.poll()
        self.poll.register(sock, select.POLLIN)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv_into(self, at: int) -> int:
        """Read what is there: spin on poll() a little (the daemon answers a
        small call in microseconds, a wake-up costs tens), then sleep."""
        if self.spin:
            poll = self.poll.poll
            deadline = time.perf_counter() + self.spin
            while not poll(0) and time.perf_counter() < deadline:
                pass
        n = self.sock.recv_into(self.view[at:])
        if n == 0:
            raise _Broken("the daemon closed the connection")
        return n

    def call(self, frame: bytes, msg: int, *, want_fd: bool = False):
        """Send one request; (ret, body memoryview, fd or None)."""
        try:
            self.sock.sendall(frame, socket.MSG_NOSIGNAL)
            fds: list[int] = []
            if want_fd:
                have = self._recv_fds(fds)
            else:
                have = self._recv_into(0)
            while have < _HDR:
                have += self._recv_into(have)
            length, mtype, flags, pad, seq, ret = _ANS.unpack_from(self.buf, 0)
            if mtype != msg or seq != self.seq or pad or _HDR + length > len(self.buf):
                raise _Broken(f"unexpected answer (type {mtype}, seq {seq}, {length} bytes)")
            while have < _HDR + length:
                have += self._recv_into(have)
            if have != _HDR + length:
                raise _Broken("more bytes than the answer holds")
            fd = fds[0] if fds else None
            for extra in fds[1:]:
                os.close(extra)
            if bool(flags & wire.ANS_FD) != (fd is not None):
                if fd is not None:
                    os.close(fd)
                raise _Broken("the answer's fd did not come with it")
            return ret, self.view[_HDR:_HDR + length], fd
        except OSError as e:
            raise _Broken(str(e)) from None

    def ioctl(self, frame: bytes, seq: int):
        """call() for an IOCTL, trimmed for the hot path: (ret, body)."""
        try:
            self.sock.sendall(frame, socket.MSG_NOSIGNAL)
            have = self._recv_into(0)
            while have < _HDR:
                have += self._recv_into(have)
            length, mtype, flags, pad, aseq, ret = _ANS.unpack_from(self.buf, 0)
            end = _HDR + length
            if mtype != _MSG_IOCTL or aseq != seq or flags or pad or end > len(self.buf):
                raise _Broken(f"unexpected answer (type {mtype}, seq {aseq}, {length} bytes)")
            while have < end:
                have += self._recv_into(have)
            if have != end:
                raise _Broken("more bytes than the answer holds")
            return ret, self.view[_HDR:end]
        except OSError as e:
            raise _Broken(str(e)) from None

    def _recv_fds(self, fds: list) -> int:
        space = socket.CMSG_SPACE(4 * 4)
        n, anc, _, _ = self.sock.recvmsg_into([self.view], space, socket.MSG_CMSG_CLOEXEC)
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(data[:len(data) - len(data) % a.itemsize])
                fds.extend(a)
        if n == 0:
            raise _Broken("the daemon closed the connection")
        return n


class RemoteDriver:
    tracer = None                 # the daemon records, not this process

    def __init__(self, path: str, *, record: str | None = None, argv: list[str] | None = None,
                 spin: float | None = None):
        """path: the daemon's socket; record: a trace path for the daemon to
        record this process into (argv for its header)."""
        level = os.environ.get("AISHIM_LOG", "warning")
        configure_log(level, os.environ.get("AISHIM_LOG_FILE") or None)
        self.path = path
        self.record = os.path.abspath(record) if record else None
        self.argv = list(argv or [])
        self.spin = spin_seconds() if spin is None else spin
        self.lock = threading.Lock()          # session set-up, fd bookkeeping
        self.session: bytes | None = None
        self.devices = 0
        self.idle: list[_Conn] = []           # list.pop/append: atomic under the GIL
        self.conns: list[_Conn] = []          # every connection, for fork
        self.vram_fds: dict[int, int] = {}    # minor -> the device's VRAM memfd
        self.open_fds: set[int] = set()       # device fds of this process
        self.inherited: set[int] = set()      # device fds that came through fork()
        self.broken: str | None = None
        self._finished = False
        if log.isEnabledFor(logging.DEBUG):       # aishim run -v: every call, decoded
            self.ioctl = self._ioctl_logged
        os.register_at_fork(after_in_child=self._after_fork_child)

    # -- connections -----------------------------------------------------------

    def _connect(self) -> _Conn:
        if self.broken:
            raise _Broken(self.broken)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as e:
            sock.close()
            raise _Broken(f"cannot reach the aishim daemon at {self.path}: {e.strerror}") from None
        conn = _Conn(sock, self.spin)
        with self.lock:
            join = self.session is not None
            tail = b""
            if not join and self.record:
                argv = b"\0".join(a.encode("utf-8", "surrogateescape") for a in self.argv)[:wire.MAX_ARGV]
                path = self.record.encode("utf-8", "surrogateescape")
                tail = path + argv
                trace_len, argv_len = len(path), len(argv)
            else:
                trace_len = argv_len = 0
            hello = wire.HelloReq.codec()
            body = hello.pack(hello.make(version=wire.VERSION, flags=wire.HELLO_JOIN if join else 0,
                                         session=self.session or bytes(wire.SESSION_SIZE),
                                         trace_len=trace_len, argv_len=argv_len)) + tail
            conn.seq = 1
            try:
                ret, ans, _ = conn.call(_REQ.pack(len(body), WireMsg.HELLO, 0, 0, 1, 0) + body, WireMsg.HELLO)
                if ret < 0:
                    raise _Broken(f"the aishim daemon at {self.path} refused this process: "
                                  f"{os.strerror(-ret)}")
                info = wire.HelloAns.codec().unpack(ans)
            except (_Broken, ValueError) as e:
                conn.close()
                raise _Broken(str(e)) from None
            if not join:
                self.session = bytes(info.session)
                self.devices = info.devices
                _allow_ptrace(sock)
            self.conns.append(conn)
        return conn

    def _call(self, msg: int, body: bytes, *, tid: int = 0, want_fd: bool = False):
        """(ret, body, fd) of one request; a broken connection raises _Broken."""
        try:
            conn = self.idle.pop()
        except IndexError:
            conn = self._connect()       # _Broken: the caller decides (open may retry later)
        conn.seq = seq = (conn.seq + 1) & 0xFFFFFFFF
        try:
            ret, ans, fd = conn.call(_REQ.pack(len(body), msg, 0, 0, seq, tid) + body, msg, want_fd=want_fd)
        except _Broken as e:
            self._lost(conn, str(e))
            raise
        ans = bytes(ans)
        self.idle.append(conn)
        return ret, ans, fd

    def _lost(self, conn: _Conn | None, why: str) -> None:
        if conn is not None:
            conn.close()
        if not self.broken:
            self.broken = why
            log.error("the driver daemon is gone (%s): device calls fail with EIO from now on", why)

    def _tid(self) -> int:
        return threading.get_native_id() if self.record else 0

    # -- the driver interface ------------------------------------------------------

    def open(self, minor: int, fd: int, flags: int = 0) -> int:
        c = wire.OpenReq.codec()
        try:
            ret, _, _ = self._call(WireMsg.OPEN, c.pack(c.make(minor=minor, fd=fd, flags=flags)), tid=self._tid())
        except _Broken as e:
            if not self.broken:
                log.error("%s", e)
            return -errno.ENXIO
        if ret >= 0:
            with self.lock:
                self.inherited.discard(fd)
                self.open_fds.add(fd)
        return ret

    def close(self, fd: int) -> int:
        with self.lock:
            if fd in self.inherited:
                self.inherited.discard(fd)
                return 0
            if fd not in self.open_fds:
                return 0
            self.open_fds.discard(fd)
        c = wire.CloseReq.codec()
        return self._simple(WireMsg.CLOSE, c.pack(c.make(fd=fd)))

    def dup(self, oldfd: int, newfd: int) -> int:
        with self.lock:
            if oldfd in self.inherited:
                self.open_fds.discard(newfd)
                self.inherited.add(newfd)
                return 0
        c = wire.DupReq.codec()
        ret = self._simple(WireMsg.DUP, c.pack(c.make(oldfd=oldfd, newfd=newfd)))
        if ret >= 0:
            with self.lock:
                self.inherited.discard(newfd)
                self.open_fds.add(newfd)
        return ret

    def _ioctl_logged(self, fd: int, req: int, buf, arg_fault: bool = False, argaddr: int = 0) -> int:
        before = bytes(buf)
        ret = RemoteDriver.ioctl(self, fd, req, buf, arg_fault, argaddr)
        _log_ioctl(fd, req, before, buf, ret)
        return ret

    def ioctl(self, fd: int, req: int, buf, arg_fault: bool = False, argaddr: int = 0) -> int:
        # The hot path: one frame out, one back, no helper that is not needed.
        if fd in self.inherited:
            return -errno.EBADFD
        n = len(buf)
        try:
            conn = self.idle.pop()
        except IndexError:
            try:
                conn = self._connect()
            except _Broken as e:
                self._lost(None, str(e))
                return -errno.EIO
        conn.seq = seq = (conn.seq + 1) & 0xFFFFFFFF
        frame = _IOCTL.pack(_IOCTL_FIXED + n, _MSG_IOCTL, 0, 0, seq, self._tid() if self.record else 0,
                            fd, req & 0xFFFFFFFF, argaddr & 0xFFFFFFFFFFFFFFFF, 1 if arg_fault else 0, n)
        try:
            ret, ans = conn.ioctl(frame + bytes(buf) if n else frame, seq)
            if ret >= 0 and n:
                if len(ans) != n:
                    raise _Broken(f"IOCTL answer of {len(ans)} bytes for a {n}-byte argument")
                buf[:] = ans
        except _Broken as e:
            self._lost(conn, str(e))
            return -errno.EIO
        self.idle.append(conn)
        return ret

    def mmap(self, fd: int, length: int, prot: int, flags: int, offset: int):
        if fd in self.inherited:
            return -errno.EBADFD, -1, 0
        c = wire.MmapReq.codec()
        try:
            ret, ans, vfd = self._call(WireMsg.MMAP, c.pack(c.make(fd=fd, prot=prot, flags=flags, length=length,
                                                                   offset=offset)),
                                       tid=self._tid(), want_fd=True)
        except _Broken as e:
            self._lost(None, str(e))
            return -errno.EIO, -1, 0
        if ret < 0:
            return ret, -1, 0
        try:
            a = wire.MmapAns.codec().unpack(ans)
        except ValueError:
            if vfd is not None:
                os.close(vfd)
            return -errno.EIO, -1, 0
        with self.lock:
            have = self.vram_fds.get(a.minor)
            if have is None:
                self.vram_fds[a.minor] = have = vfd
            elif vfd is not None:
                os.close(vfd)              # we have this device's memfd already
        return 0, have, a.vram_offset

    def mapped(self, fd: int, addr: int, length: int, offset: int) -> int:
        c = wire.MappedReq.codec()
        return self._simple(WireMsg.MAPPED, c.pack(c.make(fd=fd, addr=addr, length=length, offset=offset)))

    def munmap(self, addr: int, length: int) -> int:
        c = wire.MunmapReq.codec()
        return self._simple(WireMsg.MUNMAP, c.pack(c.make(addr=addr, length=length)))

    def _simple(self, msg: int, body: bytes) -> int:
        if self.broken:
            return -errno.EIO
        try:
            ret, _, _ = self._call(msg, body, tid=self._tid())
        except _Broken as e:
            self._lost(None, str(e))
            return -errno.EIO
        return ret

    def finish(self) -> None:
        """The process exits: the daemon closes its trace now, so the file is
        complete when the program's parent looks at it."""
        if self.record and self.session is not None and not self.broken and not self._finished:
            self._finished = True
            self._simple(WireMsg.FINISH, b"")

    def disconnect(self) -> None:
        """Close every connection: for a Python user of this class (tests,
        tools), whose session then ends as if the process had exited."""
        for conn in self.conns:
            conn.close()
        self.conns = []
        self.idle = []
        self.session = None
        self.broken = "disconnected"

    # -- fork ----------------------------------------------------------------------

    def _after_fork_child(self) -> None:
        """The session is the parent's: forget it; refuse inherited fds."""
        self.lock = threading.Lock()
        for conn in self.conns:
            conn.close()                 # our copy only: the parent's stays open
        self.conns = []
        self.idle = []
        for vfd in self.vram_fds.values():
            try:
                os.close(vfd)
            except OSError:
                pass
        self.vram_fds = {}
        self.inherited |= self.open_fds
        self.open_fds = set()
        self.session = None
        self.broken = None
        self._finished = False


def _log_ioctl(fd: int, req: int, before: bytes, after, ret: int) -> None:
    """The call as the embedded driver logs it at debug level (decoded)."""
    from structs import describe, uapi
    io = uapi.lookup(req)
    if io is None:
        log.debug("ioctl(%d, %#010x) = %s", fd, req & 0xFFFFFFFF, _ret(ret))
        return
    codec = io.layout.codec()
    try:
        args = describe.record(io.layout, codec.unpack(before, check_const=False), exclude=io.pure_outputs)
        out = describe.record(io.layout, codec.unpack(bytes(after), check_const=False), io.outputs) \
            if ret >= 0 and io.outputs else ""
    except (ValueError, struct.error):
        args, out = before.hex(), ""
    log.debug("ioctl(%d, %s, %s) = %s%s", fd, io.name, args, _ret(ret), f" => {out}" if out else "")


def _ret(r: int) -> str:
    return str(r) if r >= 0 else f"-1 {errno.errorcode.get(-r, -r)}"


def _allow_ptrace(sock: socket.socket) -> None:
    """Let the daemon (the socket's peer, as the kernel reports it) read and
    write this process's memory where Yama restricts ptrace."""
    try:
        pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PTRACER, ctypes.c_ulong(pid), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    except (OSError, AttributeError):
        pass


def probe(path: str, timeout: float = 5.0):
    """What the daemon at path serves (wire.HelloAns), without a session;
    OSError if nobody answers there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        c = wire.HelloReq.codec()
        body = c.pack(c.make(version=wire.VERSION, flags=wire.HELLO_PROBE))
        sock.sendall(_REQ.pack(len(body), WireMsg.HELLO, 0, 0, 1, 0) + body)
        need = _HDR + wire.HelloAns.sizeof()
        data = b""
        while len(data) < need:
            chunk = sock.recv(need - len(data))
            if not chunk:
                raise ConnectionError(f"{path}: the daemon closed the connection")
            data += chunk
        ret = _ANS.unpack_from(data)[5]
        if ret < 0:
            raise OSError(-ret, os.strerror(-ret))
        return wire.HelloAns.codec().unpack(data, _HDR)
    finally:
        sock.close()
