"""The tracer: start the program, follow every process and thread it makes,
and hand each seccomp stop to the front-end (emulation or passthrough).

One event loop in the main thread owns every ptrace request (the kernel only
accepts them from the tracing thread).  It blocks in ``waitpid(-1, __WALL)``
and dispatches on the status:

    seccomp stop       a traced call is entering: front-end handler by number
    syscall-exit stop  a call the handler asked to see finish (``at_exit``)
    fork/vfork/clone   a new task: a thread of its process, or a new process
    exec               the address space is new; fds without O_CLOEXEC stay
    signal stop        deliver the signal (job-control stops are not honoured)
    exit               forget the thread; the last one takes its process along

A device ioctl of a multi-threaded process may block in the driver (WAIT on
a fence another thread's event releases), so it runs on a worker thread;
the loop then also polls a pipe the workers write to, and SIGCHLD through
``signal.set_wakeup_fd``, instead of blocking in waitpid.  Single-threaded
processes are served inline: nothing else of theirs could release them.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import os
import select
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field

from ptrace import PtraceError

from interposer.ptrace import kernel, seccomp
from interposer.ptrace import syscalls as sc
from interposer.ptrace.hooks import Hook, SyscallEvent
from pydriver.log import log
from pydriver.uaccess import UserMemory

MASK64 = 0xFFFFFFFFFFFFFFFF
SKIPPED = MASK64            # orig_rax = -1: the kernel does not run the call
PR_SET_CHILD_SUBREAPER = 36
SPIN_S = 50e-6


class TracerError(Exception):
    """A one-line error for the user (the CLI prints it)."""

    status = 1


class ExecError(TracerError):
    """The program could not be started: 127 not found, 126 not executable."""

    def __init__(self, message: str, status: int = 126):
        super().__init__(message)
        self.status = status


class _Interrupted(BaseException):
    def __init__(self, signum: int):
        self.signum = signum


@dataclass(eq=False)
class FdEntry:
    """A tracee fd that refers to a device (emulated or real)."""

    ident: tuple[int, int]          # (st_dev, st_ino) of the file it refers to
    minor: int | None = None        # emulation
    path: str | None = None
    inherited: bool = False         # emulation: came through fork(), refused (EBADFD)


@dataclass(eq=False)
class Proc:
    """A traced process (thread group)."""

    tgid: int
    parent: "Proc | None" = None
    threads: set = field(default_factory=set)
    fds: dict = field(default_factory=dict)      # fd -> FdEntry
    driver: object = None                        # emulation: a Driver of its own, on first open
    inflight: int = 0                            # ioctls running on workers
    window_next: int = seccomp.BO_WINDOW_START   # next BO mapping hint
    maps: list = field(default_factory=list)     # passthrough: (start, end) of device mappings
    gone: bool = False


@dataclass(eq=False)
class Thread:
    tid: int
    proc: Proc
    regs: kernel.Regs = field(default_factory=kernel.Regs)
    on_exit: object = None          # fn(thread, regs) -> bool (regs changed), at syscall exit
    fresh: bool = True              # its first stop (SIGSTOP of an auto-attached task) is ours
    stopped: bool = True
    busy: bool = False              # an ioctl of it runs on a worker

    @property
    def mm(self) -> UserMemory:
        return UserMemory(self.tid)


class _Workers:
    """Threads for device calls that may block; results come back to the
    main thread through a deque and a byte on a pipe."""

    def __init__(self):
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.jobs: collections.deque = collections.deque()
        self.done: collections.deque = collections.deque()
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.idle = 0
        self.busy = 0

    def submit(self, key, fn) -> None:
        with self.lock:
            self.busy += 1
            self.jobs.append((key, fn))
            if self.idle:
                self.cond.notify()
            else:
                threading.Thread(target=self._loop, name="aishim-ioctl", daemon=True).start()

    def _loop(self) -> None:
        # Signals are the main thread's business (Ctrl-C, SIGCHLD wake-ups).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                                                  signal.SIGCHLD})
        while True:
            with self.lock:
                while not self.jobs:
                    self.idle += 1
                    self.cond.wait()
                    self.idle -= 1
                key, fn = self.jobs.popleft()
            try:
                result = fn()
            except BaseException:
                log.error("driver bug in a worker (returning EIO):\n%s", traceback.format_exc())
                result = -errno.EIO
            with self.lock:
                self.done.append((key, result))
                self.busy -= 1
            try:
                os.write(self.w, b"!")
            except BlockingIOError:
                pass        # the loop has enough wake-ups pending

    def drain(self) -> None:
        try:
            while os.read(self.r, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class Tracer:
    def __init__(self, argv: list[str], env: dict, frontend_factory, hook: Hook | None = None,
                 pin_cpu: bool = False):
        self.argv = list(argv)
        self.env = dict(env)
        self.hook = hook
        self.pin_cpu = pin_cpu
        self.threads: dict[int, Thread] = {}
        self.procs: dict[int, Proc] = {}
        self.root = 0
        self.root_status: int | None = None
        self.exec_pipe = -1
        self.workers = _Workers()
        self._polling = False
        self._wake_r = self._wake_w = -1
        self.pid = os.getpid()
        self.frontend = frontend_factory(self)
        self.handlers = self.frontend.handlers()
        self.counters = {"stops": 0, "processes": 0, "threads": 0}
        # Unpinned, tracer and tracee wake each other across CPUs (~35 us
        # each way here, a VM); spinning briefly on WNOHANG after a resume
        # saves the tracer's half.  Never when sharing one CPU with it.
        self.spin_s = 0.0 if pin_cpu or len(os.sched_getaffinity(0)) < 2 else SPIN_S

    # ------------------------------------------------------------------
    # start and finish

    def run(self) -> int:
        path = _resolve(self.argv[0], self.env)
        old_handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, _raise_interrupted)
        try:
            try:
                self._start(path)
                self._loop()
            except (KeyboardInterrupt, _Interrupted) as e:
                signum = getattr(e, "signum", signal.SIGINT)
                log.warning("interrupted (%s): killing the traced program", signal.Signals(signum).name)
                self._kill_all()
                return 128 + signum
        finally:
            self._kill_all()
            self._leave_poll_mode()
            for s, h in old_handlers.items():
                signal.signal(s, h)
            for proc in list(self.procs.values()):
                self._proc_gone(proc)
            self.workers.close()
            if self.exec_pipe >= 0:
                os.close(self.exec_pipe)
        st = self.root_status
        if st is None:
            return 0
        return os.waitstatus_to_exitcode(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)

    def _start(self, path: str) -> None:
        program = seccomp.build_filter(self.frontend.mode, self.frontend.ioctl_type)
        if self.pin_cpu:
            _pin_to_current_cpu()   # before fork: the program shares the CPU
        r, w = os.pipe()            # O_CLOEXEC: closed by a successful exec
        pid = os.fork()
        if pid == 0:                # the child: nothing here may return
            try:
                os.close(r)
                kernel.traceme()
                seccomp.install(program)
                os.kill(os.getpid(), signal.SIGSTOP)   # the tracer sets its options now
                os.execve(path, self.argv, self.env)
            except BaseException as e:
                err = getattr(e, "errno", None) or errno.EIO
                try:
                    os.write(w, f"{err}:{getattr(e, 'strerror', None) or e}".encode())
                finally:
                    os._exit(127)
            os._exit(127)
        os.close(w)
        self.exec_pipe = r
        self.root = pid
        _, status = os.waitpid(pid, kernel.WALL)
        if not os.WIFSTOPPED(status):
            self._exec_failed(status)
        kernel.setoptions(pid)
        # Descendants whose parent dies are reparented to us, so we reap
        # them: no zombie left for an init that may not reap.
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        proc = Proc(pid)
        self.procs[pid] = proc
        self.counters["processes"] += 1
        self.counters["threads"] += 1
        th = Thread(pid, proc, fresh=False)
        proc.threads.add(pid)
        self.threads[pid] = th
        self.resume(th)

    def _exec_failed(self, status: int | None) -> None:
        msg = b""
        try:
            msg = os.read(self.exec_pipe, 4096)
        except OSError:
            pass
        err, _, text = msg.decode(errors="replace").partition(":")
        prog = self.argv[0]
        if err.isdigit():
            code = int(err)
            raise ExecError(f"{prog}: cannot execute: {os.strerror(code)}",
                            127 if code == errno.ENOENT else 126)
        raise ExecError(f"{prog}: could not be started under ptrace ({text or status})", 126)

    def _kill_all(self) -> None:
        """SIGKILL every tracee and reap everything: no zombie, no stray.
        A second Ctrl-C meanwhile is absorbed."""
        blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            self._kill_and_reap()
        finally:
            while signal.sigtimedwait(blocked, 0) is not None:
                pass                                # already acted on: drop it
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _kill_and_reap(self) -> None:
        for tgid in list(self.procs):
            try:
                os.kill(tgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for tid in list(self.threads):
            try:
                os.kill(tid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:
            try:
                pid, status = kernel.wait_any()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if os.WIFSTOPPED(status):               # a task we had not met yet
                try:
                    os.kill(pid, signal.SIGKILL)
                    kernel.cont(pid)
                except (ProcessLookupError, PtraceError):
                    pass
                continue
            if pid == self.root and self.root_status is None:
                self.root_status = status
            th = self.threads.pop(pid, None)
            if th is not None:
                th.proc.threads.discard(pid)
        self.threads.clear()

    # ------------------------------------------------------------------
    # the loop

    def _loop(self) -> None:
        while self.threads:
            ev = self._next_event()
            if ev is None:
                break
            pid, status = ev
            self._handle(pid, status)

    def _next_event(self):
        while True:
            if not self.workers.busy and not self.workers.done:
                self._leave_poll_mode()
                try:
                    if self.spin_s:
                        deadline = time.perf_counter() + self.spin_s
                        while time.perf_counter() < deadline:
                            pid, status = kernel.wait_any(nohang=True)
                            if pid:
                                return pid, status
                    return kernel.wait_any()
                except ChildProcessError:
                    return None
            self._enter_poll_mode()
            try:
                pid, status = kernel.wait_any(nohang=True)
            except ChildProcessError:
                pid = 0
                if not self.workers.busy and not self.workers.done:
                    return None
            if pid:
                return pid, status
            if self.workers.done:
                self._completions()
                continue
            p = select.poll()
            p.register(self.workers.r, select.POLLIN)
            p.register(self._wake_r, select.POLLIN)
            p.poll()
            self.workers.drain()
            _drain(self._wake_r)

    def _enter_poll_mode(self) -> None:
        if self._polling:
            return
        if self._wake_r < 0:
            self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda s, f: None)
        self._polling = True

    def _leave_poll_mode(self) -> None:
        if not self._polling:
            return
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(self._old_wakeup)
        self._polling = False
        _drain(self._wake_r)

    def _handle(self, pid: int, status: int) -> None:
        th = self.threads.get(pid)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            if pid == self.root and self.root_status is None:
                self.root_status = status
                if self.exec_pipe >= 0:
                    self._exec_failed(status)
            if th is not None:
                self._thread_gone(th)
            return
        if not os.WIFSTOPPED(status):
            return
        if th is None:
            th = self._adopt(pid)
            if th is None:
                return
        th.stopped = True
        self.counters["stops"] += 1
        stop = status >> 8
        try:
            if stop == kernel.STOP_SECCOMP:
                self._on_seccomp(th)
            elif stop == kernel.STOP_SYSCALL:
                self._on_syscall_exit(th)
            elif stop in kernel.STOP_NEWTASK:
                self._adopt(kernel.geteventmsg(pid), parent=th.proc)
                self.resume(th)
            elif stop == kernel.STOP_EXEC:
                self._on_exec(th)
            elif stop & 0xFF == signal.SIGTRAP and stop >> 8:
                self.resume(th)                     # another event: nothing to do
            else:
                self._on_signal(th, os.WSTOPSIG(status))
        except PtraceError as e:
            if e.errno != errno.ESRCH:              # ESRCH: killed meanwhile, its exit follows
                log.error("ptrace failed on %d: %s", pid, e)
                if th.stopped:                      # never leave it stopped for good
                    try:
                        self.resume(th)
                    except PtraceError:
                        pass

    def _on_signal(self, th: Thread, sig: int) -> None:
        if th.fresh and sig == signal.SIGSTOP:
            th.fresh = False                        # the auto-attach stop of a new task
            self.resume(th)
        elif sig in (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU) \
                and not kernel.is_signal_delivery(th.tid):
            self.resume(th)                         # a group-stop: job control is not honoured
        else:
            th.fresh = False
            self.resume(th, sig)                    # deliver it

    # ------------------------------------------------------------------
    # tasks

    def _adopt(self, tid: int, parent: Proc | None = None) -> Thread | None:
        th = self.threads.get(tid)
        if th is not None:
            return th
        tgid, ppid = _task_ids(tid)
        if tgid is None:
            return None
        proc = self.procs.get(tgid)
        if proc is None:
            parent = parent if parent is not None and parent.tgid != tgid else self.procs.get(ppid)
            proc = Proc(tgid, parent)
            if parent is not None:
                proc.fds = {fd: self.frontend.inherit(e) for fd, e in parent.fds.items()}
            self.procs[tgid] = proc
            self.counters["processes"] += 1
        th = Thread(tid, proc)
        self.counters["threads"] += 1
        proc.threads.add(tid)
        self.threads[tid] = th
        return th

    def _thread_gone(self, th: Thread) -> None:
        self.threads.pop(th.tid, None)
        proc = th.proc
        proc.threads.discard(th.tid)
        if not proc.threads:
            self._proc_gone(proc)

    def _proc_gone(self, proc: Proc) -> None:
        if proc.gone:
            return
        proc.gone = True
        self.procs.pop(proc.tgid, None)
        self.frontend.process_gone(proc)

    def _on_exec(self, th: Thread) -> None:
        former = kernel.geteventmsg(th.tid)
        proc = th.proc
        if former != th.tid and former in self.threads:
            # A non-leader thread exec'd and took the leader's tid.
            old = self.threads.pop(former)
            proc.threads.discard(former)
            old.tid = th.tid
        if th.tid == self.root and self.exec_pipe >= 0:
            os.close(self.exec_pipe)                # started: no exec error any more
            self.exec_pipe = -1
        for tid in list(proc.threads):              # every other thread is gone
            if tid != th.tid:
                proc.threads.discard(tid)
                self.threads.pop(tid, None)
        proc.window_next = seccomp.BO_WINDOW_START
        self.frontend.exec_done(th)
        self.resume(th)

    # ------------------------------------------------------------------
    # system calls

    def _on_seccomp(self, th: Thread) -> None:
        regs = th.regs
        kernel.getregs(th.tid, regs)
        h = self.handlers.get(regs.orig_rax)
        if h is None:
            self.resume(th)
            return
        try:
            h(th, regs)
        except PtraceError:
            raise
        except Exception:
            log.error("tracer bug in %s (returning EIO):\n%s", sc.NAME.get(regs.orig_rax),
                      traceback.format_exc())
            if th.stopped and not th.busy:
                self.skip(th, -errno.EIO)

    def _on_syscall_exit(self, th: Thread) -> None:
        fn, th.on_exit = th.on_exit, None
        if fn is None:
            self.resume(th)
            return
        regs = th.regs
        kernel.getregs(th.tid, regs)
        try:
            changed = fn(th, regs)
        except Exception:
            log.error("tracer bug at a syscall exit:\n%s", traceback.format_exc())
            changed = False
        if changed:
            kernel.setregs(th.tid, regs)
        self.resume(th)

    # -- what a handler does with a stopped thread ---------------------------

    def resume(self, th: Thread, sig: int = 0) -> None:
        th.stopped = False
        kernel.cont(th.tid, sig)

    def skip(self, th: Thread, result: int) -> None:
        """Do not run the call; it returns result (>= 0 or -errno)."""
        regs = th.regs
        regs.orig_rax = SKIPPED
        regs.rax = result & MASK64
        kernel.setregs(th.tid, regs)
        self.resume(th)

    def at_exit(self, th: Thread, fn, regs_changed: bool = False) -> None:
        """Run the call (with the registers as changed), then fn at its exit."""
        if regs_changed:
            kernel.setregs(th.tid, th.regs)
        th.on_exit = fn
        th.stopped = False
        kernel.to_syscall_exit(th.tid)

    def serve(self, th: Thread, work, done=None) -> None:
        """Answer the call with work() (>= 0 or -errno) instead of running it:
        inline, or on a worker when other threads of the process may be
        needed to release it.  done(result) runs in the main thread after."""
        proc = th.proc
        if len(proc.threads) == 1:
            result = work()
            if done is not None:
                done(result)
            self.skip(th, result)
            return
        th.busy = True
        proc.inflight += 1
        self.workers.submit((th, done), work)

    def _completions(self) -> None:
        while self.workers.done:
            (th, done), result = self.workers.done.popleft()
            th.busy = False
            th.proc.inflight -= 1
            if done is not None:
                try:
                    done(result)
                except Exception:
                    log.error("tracer bug after a device call:\n%s", traceback.format_exc())
            if self.threads.get(th.tid) is th:
                try:
                    self.skip(th, result)
                except PtraceError as e:
                    if e.errno != errno.ESRCH:
                        raise
            if th.proc.gone and th.proc.inflight == 0:
                self.frontend.process_gone(th.proc)

    # -- hooks ---------------------------------------------------------------

    def hook_entry(self, ev: SyscallEvent) -> None:
        if self.hook is not None:
            try:
                self.hook.on_entry(ev)
            except Exception:
                self._hook_failed()

    def hook_exit(self, ev: SyscallEvent) -> None:
        if self.hook is not None:
            try:
                self.hook.on_exit(ev)
            except Exception:
                self._hook_failed()

    def _hook_failed(self) -> None:
        log.error("recorder hook failed, detached:\n%s", traceback.format_exc())
        self.hook = None


# ----------------------------------------------------------------------
# helpers

def _raise_interrupted(signum, frame):
    raise _Interrupted(signum)


def _drain(fd: int) -> None:
    if fd < 0:
        return
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _task_ids(tid: int) -> tuple[int | None, int | None]:
    """(tgid, ppid) of a task from /proc, (None, None) if it is gone."""
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            text = f.read()
    except OSError:
        return None, None
    tgid = ppid = None
    for line in text.splitlines():
        if line.startswith(b"Tgid:"):
            tgid = int(line.split()[1])
        elif line.startswith(b"PPid:"):
            ppid = int(line.split()[1])
    return tgid, ppid


def _resolve(prog: str, env: dict) -> str:
    """The file exec would run, or ExecError (127 not found, 126 not executable)."""
    if "/" in prog:
        cands = [prog]
    else:
        cands = [os.path.join(d or ".", prog) for d in env.get("PATH", os.defpath).split(":")]
    found = None
    for c in cands:
        if os.path.exists(c):
            found = found or c
            if os.access(c, os.X_OK) and not os.path.isdir(c):
                return c
    if found is None:
        raise ExecError(f"{prog}: no such program", 127)
    raise ExecError(f"{prog}: not executable", 126)


def _pin_to_current_cpu() -> None:
    """Put the tracer - and, forked after this, the whole traced program - on
    the CPU it runs on.  A stop then costs ~6 us instead of ~20 us (spinning)
    or ~70 us (sleeping): measured here, where every wake-up of a task on
    another CPU is expensive.  The price: the program sees and uses one CPU."""
    try:
        with open("/proc/self/stat", "rb") as f:
            cpu = int(f.read().rsplit(b")", 1)[1].split()[36])
        os.sched_setaffinity(0, {cpu})
    except (OSError, ValueError, IndexError):
        pass
