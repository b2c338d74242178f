"""The driver as a daemon: one set of devices, shared by client processes.

`aishim serve` runs a Server on a UNIX socket.  A program run with
`aishim run --connect SOCKET` has, in place of the embedded driver, a
RemoteDriver (interposer/remote.py) that sends every driver entry point here
as a frame of the wire protocol (structs/wire.py) and hands the answer back.

    Server      the listening socket, the shared Devices, the sessions
    Session     one client process: a Driver of its own (its fd table, its
                mappings, UserMemory(pid) for its pointers, its trace), on
                the shared devices; lives while the process does
    Connection  one socket of a session, served by a thread: strictly one
                request, then its answer (a client opens one connection per
                thread that is inside the driver at the same time)

Isolation is the embedded driver's: contexts are per open(), so handles and
device addresses of other processes are EINVAL; IPC tokens are the one way
to share memory.  A client is known by the pid the kernel reports for its
socket (SO_PEERCRED), never by what it says.  Its death - the pidfd of the
process becomes readable, or its last connection closes - ends the session:
its mappings are dropped (a dead process maps nothing), its contexts are
destroyed (their VRAM freed, waiters woken), its trace closed.

Nothing a client sends can stop the daemon: a frame that breaks the
protocol (garbage, a bad length, non-zero pads, a frame cut short) closes
that connection with a log line; a pointer into memory that is gone or
unreadable is EFAULT/ESRCH for that call; any other exception is a driver
bug, logged, answered with EIO.

Latency: a wake-up across CPUs costs ~35-60 us on this machine, so each side
spins on a non-blocking recv for a short while (AISHIM_SPIN_US, default 100)
before it sleeps: a small ioctl's round trip stays at a few microseconds
when calls come back to back.
"""

from __future__ import annotations

import array
import errno
import os
import secrets
import select
import socket
import stat
import struct
import threading
import time
import traceback

from pydriver.config import Config
from pydriver.driver import Devices, Driver
from pydriver.log import log
from pydriver.uaccess import UserMemory
from structs import uapi, wire
from structs.enums import WireMsg
from structs.layout import LayoutError

DEFAULT_SPIN_US = 100


def default_socket_path(env=None) -> str:
    """$XDG_RUNTIME_DIR/aishim.sock, else /tmp/aishim-$UID.sock."""
    env = os.environ if env is None else env
    run = env.get("XDG_RUNTIME_DIR")
    if run and os.path.isdir(run):
        return os.path.join(run, "aishim.sock")
    return f"/tmp/aishim-{os.getuid()}.sock"


def spin_seconds(env=None) -> float:
    env = os.environ if env is None else env
    try:
        return max(0.0, float(env.get("AISHIM_SPIN_US", DEFAULT_SPIN_US))) / 1e6
    except ValueError:
        return DEFAULT_SPIN_US / 1e6


class ProtocolError(Exception):
    """A frame that is not what the protocol says: the connection is closed."""


class ServerError(Exception):
    """The daemon cannot start (socket in use, bad path)."""


_HDR = wire.ReqHeader.codec().struct
_ANS = wire.AnsHeader.codec().struct
_IOCTL = wire.IoctlReq.codec().struct
_IOCTL_FIXED = _IOCTL.size
_current = threading.local()          # the client thread of the request being served (traces)
# frame type -> (WireMsg, smallest body, largest body)
_MSG_IOCTL = int(WireMsg.IOCTL)
_SPECS = {int(m): (m, wire.fixed_size(m), wire.fixed_size(m) + wire.MAX_TAIL.get(m, 0)) for m in WireMsg}


def _current_tid() -> int:
    return getattr(_current, "tid", 0)


class _Tracer:
    """The session's recorder, made inert once closed (FINISH, or the end of
    the session): a late call must not write to a closed trace."""

    def __init__(self, inner):
        self._inner = inner
        self._closed = False

    def __getattr__(self, name):
        if self._closed:
            return _noop
        return getattr(self._inner, name)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._inner.close()


def _noop(*args, **kw):
    return 0


# -- sessions ------------------------------------------------------------------

class Session:
    """One client process."""

    def __init__(self, server: "Server", pid: int, trace_path: str | None, argv: list[str]):
        self.server = server
        self.pid = pid
        self.id = secrets.token_bytes(wire.SESSION_SIZE)
        self.pidfd = os.pidfd_open(pid)          # readable when the process is gone
        self.tracer = None
        if trace_path and server.make_tracer is not None:
            self.tracer = _Tracer(server.make_tracer(trace_path, argv, pid, _current_tid))
        self.driver = Driver(server.config, mm=UserMemory(pid), tracer=self.tracer, shared=server.devices)
        self.lock = threading.Lock()
        self.conns = 0
        self.ended = False

    def attach(self) -> bool:
        with self.lock:
            if self.ended:
                return False
            self.conns += 1
            return True

    def detach(self) -> None:
        with self.lock:
            self.conns -= 1
            last = self.conns == 0
        if last:
            self.end("its last connection closed")

    def finish(self) -> None:
        """The process is exiting: its trace is complete now."""
        if self.tracer is not None:
            self.tracer.close()

    def end(self, why: str) -> None:
        """Reclaim everything of the process (idempotent)."""
        with self.lock:
            if self.ended:
                return
            self.ended = True
        self.server.forget(self)
        self.driver.release()
        if self.tracer is not None:
            try:
                self.tracer.close()
            except Exception:
                log.error("closing the trace of process %d:\n%s", self.pid, traceback.format_exc())
        try:
            os.close(self.pidfd)
        except OSError:
            pass
        log.info("client %d: session ended (%s)", self.pid, why)


class _Reaper(threading.Thread):
    """Ends the session of every client process that exits, even one whose
    connections are blocked in the driver (a WAIT) or were inherited by a
    child that lives on."""

    def __init__(self):
        super().__init__(name="aishim-reaper", daemon=True)
        self.epoll = select.epoll()
        self.lock = threading.Lock()
        self.by_fd: dict[int, Session] = {}

    def watch(self, s: Session) -> None:
        with self.lock:
            self.by_fd[s.pidfd] = s
            self.epoll.register(s.pidfd, select.EPOLLIN)

    def forget(self, s: Session) -> None:
        with self.lock:
            if self.by_fd.get(s.pidfd) is s:
                del self.by_fd[s.pidfd]
                try:
                    self.epoll.unregister(s.pidfd)
                except (OSError, ValueError):
                    pass

    def run(self) -> None:
        while True:
            try:
                events = self.epoll.poll()
            except (OSError, ValueError):       # closed at shutdown
                return
            for fd, _ in events:
                self.handle(fd)

    def handle(self, fd: int) -> None:
        """An event for fd: end its session if its process really exited.
        The check matters: between poll() and here the session may have
        ended another way and closed its pidfd, and a new session may have
        got the same fd number - a stale event must not end it."""
        with self.lock:
            s = self.by_fd.get(fd)
            if s is None or not _readable(s.pidfd):
                return
            del self.by_fd[fd]                  # level-triggered: once is enough
            try:
                self.epoll.unregister(fd)
            except (OSError, ValueError):
                pass
        # Not here: ending waits for the devices, which a long kernel of
        # another client may hold.
        threading.Thread(target=s.end, args=("the process exited",), daemon=True).start()


def _readable(fd: int) -> bool:
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(0))


# -- connections -----------------------------------------------------------------

class Connection:
    def __init__(self, server: "Server", sock: socket.socket, pid: int, uid: int):
        self.server = server
        self.sock = sock
        self.pid = pid
        self.uid = uid
        self.session: Session | None = None
        self.buf = bytearray(wire.HEADER_SIZE + wire.MAX_BODY)
        self.view = memoryview(self.buf)
        self.start = self.end = 0
        self.spin = server.spin
        self.poll = select.poll()
        self.poll.register(sock, select.POLLIN)

    # -- receiving -------------------------------------------------------------

    def _recv(self) -> int:
        """Read what is there into the buffer: spin on poll() a little (a
        wake-up costs far more than a short spin), then sleep in recv."""
        if self.spin:
            poll = self.poll.poll
            deadline = time.perf_counter() + self.spin
            while not poll(0) and time.perf_counter() < deadline:
                pass
        n = self.sock.recv_into(self.view[self.end:])
        if n == 0:
            raise EOFError
        self.end += n
        return n

    def _need(self, n: int, what: str) -> None:
        if self.end - self.start >= n:
            return
        if self.start:                       # keep what is there at the front
            have = self.end - self.start
            self.buf[:have] = self.buf[self.start:self.end]
            self.start, self.end = 0, have
        while self.end - self.start < n:
            try:
                self._recv()
            except EOFError:
                if self.end > self.start:
                    raise ProtocolError(f"connection closed in the middle of {what} "
                                        f"({self.end - self.start} of {n} bytes)") from None
                raise

    def _frame(self):
        """(type, seq, tid, body start, body length) of the next request."""
        if self.end - self.start < wire.HEADER_SIZE:
            self._need(wire.HEADER_SIZE, "a frame header")
        length, mtype, flags, pad, seq, tid = _HDR.unpack_from(self.buf, self.start)
        spec = _SPECS.get(mtype)
        if spec is None or flags or pad:
            raise ProtocolError(f"bad frame header: type {mtype}, flags {flags:#x}, pad {pad:#x}")
        msg, fixed, most = spec
        if not fixed <= length <= most:
            raise ProtocolError(f"{msg.name} frame of {length} bytes (expected {fixed}"
                                f"{'..' + str(most) if most > fixed else ''})")
        end = self.start + wire.HEADER_SIZE + length
        if end > self.end:
            self._need(wire.HEADER_SIZE + length, f"a frame of type {msg.name}")
            end = self.start + wire.HEADER_SIZE + length
        body = self.start + wire.HEADER_SIZE
        if end == self.end:
            self.start = self.end = 0        # the usual case: nothing pipelined
        else:
            self.start = end
        return msg, seq, tid, body, length

    # -- answering ---------------------------------------------------------------

    def _answer(self, msg: int, seq: int, ret: int, body=b"", fd: int | None = None) -> None:
        head = _ANS.pack(len(body), msg, wire.ANS_FD if fd is not None else 0, 0, seq, ret)
        if fd is None:
            self.sock.sendall(head + body, socket.MSG_NOSIGNAL)
        else:
            data = head + bytes(body)
            sent = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))],
                                     socket.MSG_NOSIGNAL)
            if sent < len(data):
                self.sock.sendall(data[sent:], socket.MSG_NOSIGNAL)

    # -- the loop ----------------------------------------------------------------

    def serve(self) -> None:
        try:
            self._hello()
            if self.session is not None:
                self._loop()
        except EOFError:
            pass
        except ProtocolError as e:
            log.warning("client %d: protocol error, connection closed: %s", self.pid, e)
        except OSError as e:               # reset, broken pipe: the client is gone
            log.info("client %d: connection lost: %s", self.pid, e)
        except Exception:
            log.error("client %d: daemon bug, connection closed:\n%s", self.pid, traceback.format_exc())
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            if self.session is not None:
                self.session.detach()

    def _hello(self) -> None:
        msg, seq, _, body, length = self._frame()
        if msg != WireMsg.HELLO:
            raise ProtocolError(f"first frame is {msg.name}, not HELLO")
        try:
            h = wire.HelloReq.codec().unpack(self.buf, body)
        except LayoutError as e:
            raise ProtocolError(f"HELLO: {e}") from None
        fixed = wire.HelloReq.sizeof()
        if h.version != wire.VERSION:
            self._answer(msg, seq, -errno.EPROTONOSUPPORT)
            raise ProtocolError(f"protocol version {h.version}, this daemon speaks {wire.VERSION}")
        if length != fixed + h.trace_len + h.argv_len or h.trace_len > wire.MAX_TRACE_PATH \
                or h.argv_len > wire.MAX_ARGV:
            raise ProtocolError(f"HELLO of {length} bytes with a {h.trace_len}-byte path and "
                                f"{h.argv_len} bytes of argv")
        if h.flags & ~(wire.HELLO_JOIN | wire.HELLO_PROBE):
            raise ProtocolError(f"HELLO flags {h.flags:#x}")
        server = self.server
        if h.flags & wire.HELLO_PROBE:
            self._answer(msg, seq, 0, server.hello_answer(bytes(wire.SESSION_SIZE)))
            return
        if self.uid not in (os.getuid(), 0):
            # The daemon reads and writes its clients' memory and writes
            # their traces where they ask: only for its own user (and root).
            self._answer(msg, seq, -errno.EACCES)
            raise ProtocolError(f"uid {self.uid} may not use the daemon of uid {os.getuid()}")
        if h.flags & wire.HELLO_JOIN:
            s = server.session(bytes(h.session))
            if s is None or s.pid != self.pid or not s.attach():
                self._answer(msg, seq, -errno.ESRCH)
                raise ProtocolError("HELLO_JOIN of a session that is not this process's (or is over)")
        else:
            tail = bytes(self.buf[body + fixed:body + length])
            trace = tail[:h.trace_len].decode("utf-8", "surrogateescape") or None
            argv = [a.decode("utf-8", "surrogateescape") for a in tail[h.trace_len:].split(b"\0") if a]
            try:
                s = server.new_session(self.pid, trace, argv)
            except OSError as e:              # the process is already gone, or the trace cannot be written
                self._answer(msg, seq, -(e.errno or errno.EIO))
                raise ProtocolError(f"cannot start a session: {e}") from None
            s.attach()
        self.session = s
        self._answer(msg, seq, 0, server.hello_answer(s.id))

    def _loop(self) -> None:
        drv = self.session.driver
        local = _current
        buf = self.buf
        recording = self.session.tracer is not None
        while True:
            msg, seq, tid, body, length = self._frame()
            if recording:
                local.tid = tid
            if msg == _MSG_IOCTL:
                fd, req, argaddr, arg_fault, size = _IOCTL.unpack_from(buf, body)
                if length != _IOCTL_FIXED + size:
                    raise ProtocolError(f"IOCTL frame of {length} bytes with a {size}-byte argument")
                arg = bytearray(buf[body + _IOCTL_FIXED:body + length])
                ret = drv.ioctl(fd, req, arg, bool(arg_fault), argaddr)
                self._answer(msg, seq, ret, arg if ret >= 0 else b"")
            else:
                self._other(drv, msg, seq, body)

    def _other(self, drv: Driver, msg: WireMsg, seq: int, body: int) -> None:
        layout = wire.REQUESTS[msg]
        try:
            a = layout.codec().unpack(self.buf, body) if layout is not None else None
        except LayoutError as e:
            raise ProtocolError(f"{msg.name}: {e}") from None
        if msg == WireMsg.OPEN:
            self._answer(msg, seq, drv.open(a.minor, a.fd, a.flags))
        elif msg == WireMsg.CLOSE:
            self._answer(msg, seq, drv.close(a.fd))
        elif msg == WireMsg.DUP:
            self._answer(msg, seq, drv.dup(a.oldfd, a.newfd))
        elif msg == WireMsg.MMAP:
            ret, vfd, voff = drv.mmap(a.fd, a.length, a.prot, a.flags, a.offset)
            dev = self.server.device_of_vram_fd(vfd) if ret >= 0 else None
            if dev is None:
                self._answer(msg, seq, ret if ret < 0 else -errno.EIO)
            else:
                ans = wire.MmapAns.codec()
                self._answer(msg, seq, ret, ans.pack(ans.make(minor=dev.minor, vram_offset=voff)), fd=vfd)
        elif msg == WireMsg.MAPPED:
            self._answer(msg, seq, drv.mapped(a.fd, a.addr, a.length, a.offset))
        elif msg == WireMsg.MUNMAP:
            self._answer(msg, seq, drv.munmap(a.addr, a.length))
        elif msg == WireMsg.FINISH:
            self.session.finish()
            self._answer(msg, seq, 0)
        else:                                # HELLO again
            raise ProtocolError(f"{msg.name} after HELLO")


# -- the server --------------------------------------------------------------------

class Server:
    def __init__(self, path: str, config: Config | None = None, *, make_tracer=None, spin: float | None = None):
        """make_tracer(path, argv, pid, tid) -> a Tracer for a recording
        client (the CLI passes traces.recorder.Recorder); None: no recording."""
        self.path = path
        self.config = config or Config.from_env()
        self.devices = Devices(self.config)
        self.make_tracer = make_tracer
        self.spin = spin_seconds() if spin is None else spin
        self.lock = threading.Lock()
        self.sessions: dict[bytes, Session] = {}
        self.listener: socket.socket | None = None
        self.reaper = _Reaper()
        self._stopping = False

    # -- the socket -------------------------------------------------------------

    def bind(self) -> None:
        path = self.path
        if len(os.fsencode(path)) >= 108:
            raise ServerError(f"{path}: too long for a UNIX socket path (107 bytes at most)")
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None:
            if not stat.S_ISSOCK(st.st_mode):
                raise ServerError(f"{path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)              # stale: nobody listens any more
            else:
                raise ServerError(f"{path}: a daemon is already serving there")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)                # the socket is the owner's only
        try:
            sock.bind(path)
        except OSError as e:
            sock.close()
            raise ServerError(f"{path}: {e.strerror}") from None
        finally:
            os.umask(old)
        sock.listen(128)
        self.listener = sock
        self.reaper.start()

    def serve_forever(self, wakeup_fd: int | None = None) -> None:
        """Accept clients until shutdown() (or an exception, e.g. from a
        signal handler, which the caller turns into shutdown()).

        wakeup_fd: the read end of signal.set_wakeup_fd().  A signal may be
        delivered to any thread of the process (the reaper, a client's); its
        Python handler then only runs once the main thread executes again,
        and a main thread blocked in accept() never would: SIGTERM was lost
        about one time in ten.  Waiting on the listener and this fd together
        wakes the main thread whichever thread the signal reached."""
        assert self.listener is not None, "bind() first"
        poller = None
        if wakeup_fd is not None:
            poller = select.poll()
            poller.register(self.listener.fileno(), select.POLLIN)
            poller.register(wakeup_fd, select.POLLIN)
        while not self._stopping:
            if poller is not None:
                ready = {fd for fd, _ in poller.poll()}
                if wakeup_fd in ready:
                    try:
                        os.read(wakeup_fd, 512)   # the handler runs at the next bytecode
                    except BlockingIOError:
                        pass
                if self.listener is None or self.listener.fileno() not in ready:
                    continue
            try:
                sock, _ = self.listener.accept()
            except OSError as e:
                if self._stopping or self.listener is None:
                    return
                # Out of fds, a connection reset before accept: not fatal.
                log.warning("accept: %s", e)
                time.sleep(0.05)
                continue
            try:
                pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                  struct.calcsize("3i")))
            except OSError:
                sock.close()
                continue
            conn = Connection(self, sock, pid, uid)
            try:
                threading.Thread(target=conn.serve, name=f"aishim-client-{pid}", daemon=True).start()
            except RuntimeError as e:        # no more threads: this client waits for nobody
                log.warning("client %d refused: %s", pid, e)
                sock.close()

    def shutdown(self) -> None:
        """Stop listening, remove the socket file, end every session (their
        contexts destroyed, traces closed), release the devices."""
        self._stopping = True
        if self.listener is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            sessions = list(self.sessions.values())
        for s in sessions:
            s.end("the daemon is shutting down")
        self.reaper.epoll.close()
        self.devices.close()

    # -- sessions -----------------------------------------------------------------

    def new_session(self, pid: int, trace: str | None, argv: list[str]) -> Session:
        s = Session(self, pid, trace, argv)
        with self.lock:
            self.sessions[s.id] = s
        self.reaper.watch(s)
        log.info("client %d: session started%s", pid, f", recording to {trace}" if trace else "")
        return s

    def session(self, sid: bytes) -> Session | None:
        with self.lock:
            return self.sessions.get(sid)

    def forget(self, s: Session) -> None:
        with self.lock:
            self.sessions.pop(s.id, None)
        self.reaper.forget(s)

    def hello_answer(self, sid: bytes) -> bytes:
        c = wire.HelloAns.codec()
        return c.pack(c.make(version=wire.VERSION, devices=self.config.devices, server_pid=os.getpid(),
                             uapi_version=(uapi.UAPI_VERSION[0] << 16) | uapi.UAPI_VERSION[1], session=sid))

    def device_of_vram_fd(self, fd: int):
        with self.devices.lock:
            for dev in self.devices.by_minor.values():
                if dev.vram.fd == fd:
                    return dev
        return None
