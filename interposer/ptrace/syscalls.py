"""x86_64 system calls the tracer cares about: numbers, argument registers.

Only the calls the seccomp filter can trace are listed; everything else
never stops.  Numbers are from <asm/unistd_64.h> (checked by a test against
the C headers), and arguments are in rdi, rsi, rdx, r10, r8, r9.
"""

from __future__ import annotations

NR = {
    "stat": 4, "fstat": 5, "lstat": 6,
    "open": 2, "close": 3, "creat": 85,
    "mmap": 9, "munmap": 11, "ioctl": 16, "access": 21,
    "dup": 32, "dup2": 33, "fcntl": 72, "ftruncate": 77,
    "openat": 257, "newfstatat": 262, "faccessat": 269, "fallocate": 285,
    "dup3": 292, "statx": 332, "close_range": 436, "openat2": 437,
    "faccessat2": 439,
    "getxattr": 191, "lgetxattr": 192, "fgetxattr": 193,
    "listxattr": 194, "llistxattr": 195, "flistxattr": 196,
    "getxattrat": 464, "listxattrat": 465,      # Linux 6.13
}
NAME = {v: k for k, v in NR.items()}

ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")

F_DUPFD = 0
F_DUPFD_CLOEXEC = 1030
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
CLOSE_RANGE_CLOEXEC = 1 << 2


def args(regs) -> tuple[int, ...]:
    """The six argument registers as unsigned 64-bit values."""
    return (regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9)


def s32(v: int) -> int:
    """An int argument (fd, flags) as the kernel reads it: low 32 bits, signed."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def s64(v: int) -> int:
    """A return register as a signed value (-errno for an error)."""
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v & (1 << 63) else v


def u64(v: int) -> int:
    return v & 0xFFFFFFFFFFFFFFFF
