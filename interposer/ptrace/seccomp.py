"""The seccomp-BPF filter that decides which system calls stop in the tracer.

python-ptrace stops a tracee at every system call (~110 us a stop here).  A
filter installed in the child before exec() answers SECCOMP_RET_TRACE only
for calls that can touch a device, and SECCOMP_RET_ALLOW for all others:
those never leave the kernel.  With PTRACE_O_TRACESECCOMP the tracer sees a
PTRACE_EVENT_SECCOMP stop at the entry of each traced call, and nothing else.

Everything the filter can decide from registers alone, it decides:

* ``mmap`` with MAP_ANONYMOUS (malloc, thread stacks) is allowed;
* ``munmap`` is traced only inside the window where the tracer places
  buffer-object mappings (emulation; passthrough traces every munmap);
* ``fcntl`` is traced only for F_DUPFD / F_DUPFD_CLOEXEC;
* ``ioctl`` (emulation) only for requests of the aicard type ('A'): any other
  request on a device fd is answered by the kernel for the stand-in file,
  which has no ioctls (ENOTTY, what the driver answers too).

Paths cannot be read by BPF, so every open and stat stops; the tracer's fast
path rejects a path whose last component does not start with "aicard".

Foreign ABIs (i386 calls through int 0x80, x32) are allowed untouched: their
numbers mean other calls, and only the x86_64 ABI is emulated.  A device
opened that way is simply not there (ENOENT), never misread.

    prog = build_filter(MODE_EMULATE)
    install(prog)          # in the child: PR_SET_NO_NEW_PRIVS, then the filter
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap as _mmap
import os
import struct

from interposer.ptrace import syscalls as sc

# <linux/filter.h>, <linux/seccomp.h>, <linux/audit.h>
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45
BPF_RET_K = 0x06
BPF_AND_K = 0x54

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_SET_MODE_FILTER = 1
SYS_SECCOMP = 317
PR_SET_NO_NEW_PRIVS = 38
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
OFF_NR, OFF_ARCH = 0, 4


def off_arg(i: int, high: bool = False) -> int:
    return 16 + 8 * i + (4 if high else 0)


# Where the tracer asks the kernel to put buffer-object mappings (a hint
# address, never MAP_FIXED), so that the filter can trace exactly the munmap
# calls that may hit one: [BO_WINDOW_START, BO_WINDOW_END), 16 TiB high in the
# 47-bit user address space, away from the binary, heap, mmap area and stack.
BO_WINDOW_START = 0x6000_0000_0000
BO_WINDOW_END = 0x6100_0000_0000

MODE_EMULATE = "emulate"
MODE_PASSTHROUGH = "passthrough"

# Traced unconditionally (the tracer decides): the open family (the path
# decides) and close/dup (the fd table must follow), in both modes.
ALWAYS = ("open", "openat", "openat2", "creat", "close", "close_range", "dup", "dup2", "dup3")
# Emulation only.  The stat, access and xattr families: a device node must
# look like a character device (ls -l asks for SELinux labels and ACLs and
# calls a node missing when that fails).  ftruncate/fallocate: the device fd is a reopened
# VRAM memfd, which must keep its size (the tracer maps it: a truncate would
# be a SIGBUS there); on a character device they fail anyway.
EMULATE_ONLY = ("stat", "lstat", "fstat", "newfstatat", "statx", "access", "faccessat", "faccessat2",
                "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
                "getxattrat", "listxattrat", "ftruncate", "fallocate")


class Bpf:
    """A tiny BPF assembler with forward labels (jumps are 8-bit, forward)."""

    def __init__(self):
        self.code: list[list] = []      # [op, jt, jf, k]; jt/jf may be label names
        self.labels: dict[str, int] = {}

    def ld(self, offset: int) -> None:
        self.code.append([BPF_LD_W_ABS, 0, 0, offset])

    def and_(self, k: int) -> None:
        self.code.append([BPF_AND_K, 0, 0, k])

    def jeq(self, k: int, jt, jf=0) -> None:
        self.code.append([BPF_JEQ_K, jt, jf, k])

    def jge(self, k: int, jt, jf=0) -> None:
        self.code.append([BPF_JGE_K, jt, jf, k])

    def jset(self, k: int, jt, jf=0) -> None:
        self.code.append([BPF_JSET_K, jt, jf, k])

    def ret(self, k: int) -> None:
        self.code.append([BPF_RET_K, 0, 0, k])

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = bytearray()
        for pc, (op, jt, jf, k) in enumerate(self.code):
            jt, jf = (self._rel(pc, j) for j in (jt, jf))
            out += struct.pack("<HBBI", op, jt, jf, k)
        return bytes(out)

    def _rel(self, pc: int, target) -> int:
        if isinstance(target, int):
            return target
        rel = self.labels[target] - pc - 1
        if not 0 <= rel <= 255:
            raise ValueError(f"BPF jump to {target} out of range ({rel})")
        return rel


def build_filter(mode: str = MODE_EMULATE, ioctl_type: int = ord("A")) -> bytes:
    """The filter program (struct sock_filter[]) as bytes."""
    b = Bpf()
    b.ld(OFF_ARCH)
    b.jeq(AUDIT_ARCH_X86_64, 0, "allow")
    b.ld(OFF_NR)
    b.jge(X32_SYSCALL_BIT, "allow")
    names = ALWAYS + (EMULATE_ONLY if mode == MODE_EMULATE else ())
    for name in names:
        b.jeq(sc.NR[name], "trace")
    b.jeq(sc.NR["mmap"], "mmap")
    b.jeq(sc.NR["fcntl"], "fcntl")
    b.jeq(sc.NR["ioctl"], "ioctl" if mode == MODE_EMULATE else "trace")
    b.jeq(sc.NR["munmap"], "munmap" if mode == MODE_EMULATE else "trace")
    b.ret(SECCOMP_RET_ALLOW)

    b.label("mmap")                     # mmap(addr, len, prot, flags, fd, off)
    b.ld(off_arg(3))
    b.jset(_mmap.MAP_ANONYMOUS, "allow", "trace")

    b.label("fcntl")                    # fcntl(fd, cmd, arg)
    b.ld(off_arg(1))
    b.jeq(sc.F_DUPFD, "trace")
    b.jeq(sc.F_DUPFD_CLOEXEC, "trace", "allow")

    if mode == MODE_EMULATE:
        b.label("ioctl")                # ioctl(fd, request, arg): type byte
        b.ld(off_arg(1))
        b.and_(0xFF00)
        b.jeq(ioctl_type << 8, "trace", "allow")

        b.label("munmap")               # munmap(addr, len): high word of addr
        b.ld(off_arg(0, high=True))
        b.jge(BO_WINDOW_END >> 32, "allow")
        b.jge(BO_WINDOW_START >> 32, "trace", "allow")

    b.label("allow")                    # BPF only jumps forward: the
    b.ret(SECCOMP_RET_ALLOW)            # verdicts come last
    b.label("trace")
    b.ret(SECCOMP_RET_TRACE)
    return b.assemble()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def install(program: bytes) -> None:
    """Install the filter in the calling process (the child, before exec).
    Raises OSError.  PR_SET_NO_NEW_PRIVS is what lets an unprivileged
    process install a filter; it also means exec() of a setuid binary does
    not raise privileges (it could not under ptrace anyway)."""
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(e)}")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    syscall = _libc.syscall
    syscall.restype = ctypes.c_long
    if syscall(ctypes.c_long(SYS_SECCOMP), ctypes.c_long(SECCOMP_SET_MODE_FILTER), ctypes.c_long(0),
               ctypes.byref(prog)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(e)}")
