"""Paths in the tracee: read them, resolve them, recognise a device node.

The rules are the preload library's (``path_minor_at`` in preload.c): a path
names /dev/aicardN (N < devices, no leading zero) after lexical
normalisation ("//", "/./", "/x/../"), relative to the cwd or to a dirfd of
the tracee; symlinks are not followed.  The cheap test comes first: a last
component that does not start with "aicard" is rejected without a look at
the cwd.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fnmatch
import os
import posixpath

from interposer.ptrace.syscalls import AT_FDCWD

PAGE = 4096
PATH_MAX = 4096
DEV_DIR = "/dev"
NODE_NAME = "aicard"          # preload.h: AICARD_NODE_NAME


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_readv = _libc.process_vm_readv
_readv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                   ctypes.c_ulong]
_readv.restype = ctypes.c_ssize_t
# One page of scratch and its two iovecs, made once: the string reader runs
# at every traced open/stat (main thread only), so it allocates nothing.
_buf = ctypes.create_string_buffer(PAGE)
_local = _Iovec(ctypes.addressof(_buf), 0)
_remote = _Iovec(0, 0)
_local_p, _remote_p = ctypes.addressof(_local), ctypes.addressof(_remote)


def read_cstring(tid: int, addr: int, limit: int = PATH_MAX) -> bytes | None:
    """The NUL-terminated string at addr in the tracee, or None if
    unreadable or longer than limit.  Reads up to each page end, so a string
    that ends just before an unmapped page is still read."""
    if not addr:
        return None
    out = b""
    while len(out) < limit:
        n = min(PAGE - (addr % PAGE), limit - len(out))
        _local.iov_len = _remote.iov_len = n
        _remote.iov_base = addr
        got = _readv(tid, _local_p, 1, _remote_p, 1, 0)
        if got <= 0:
            return None
        chunk = ctypes.string_at(_buf, got)
        nul = chunk.find(b"\0")
        if nul >= 0:
            return out + chunk[:nul]
        out += chunk
        addr += got
    return None


def normalize(path: str) -> str:
    """Lexical normalisation of an absolute path, as preload.c does it
    ("/.." stays "/"; no symlink is looked at)."""
    parts: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/" + "/".join(parts)


def absolute(tid: int, dirfd: int, path: str) -> str | None:
    """path made absolute against the tracee's cwd or dirfd (None if that
    cannot be read)."""
    if path.startswith("/"):
        return path
    link = f"/proc/{tid}/cwd" if dirfd == AT_FDCWD else f"/proc/{tid}/fd/{dirfd}"
    try:
        base = os.readlink(link)
    except OSError:
        return None
    return posixpath.join(base, path)


def _resolved(tid: int, dirfd: int, raw: bytes) -> str | None:
    """The absolute, lexically normalized path a tracee syscall names by
    (dirfd, raw path); None if it is not text or its base cannot be read."""
    try:
        path = raw.decode()
    except UnicodeDecodeError:
        return None
    full = absolute(tid, dirfd, path)
    return None if full is None else normalize(full)


def device_minor(tid: int, dirfd: int, raw: bytes, devices: int) -> int | None:
    """Minor of /dev/aicardN named by (dirfd, raw path), else None."""
    base = raw.rsplit(b"/", 1)[-1]
    if not base.startswith(NODE_NAME.encode()):
        return None
    norm = _resolved(tid, dirfd, raw)
    if norm is None:
        return None
    prefix = f"{DEV_DIR}/{NODE_NAME}"
    if not norm.startswith(prefix):
        return None
    digits = norm[len(prefix):]
    if not digits.isdigit() or not digits.isascii() or (digits[0] == "0" and len(digits) > 1):
        return None
    minor = int(digits)
    return minor if minor < devices else None


def glob_match(tid: int, dirfd: int, raw: bytes, pattern: str) -> str | None:
    """For passthrough: the path if it (lexically, or with symlinks
    resolved as the tracer sees them) matches the glob, else None."""
    norm = _resolved(tid, dirfd, raw)
    if norm is None:
        return None
    if fnmatch.fnmatchcase(norm, pattern):
        return norm
    real = os.path.realpath(norm)
    if real != norm and fnmatch.fnmatchcase(real, pattern):
        return norm
    return None


def fd_stat(tid: int, fd: int) -> os.stat_result | None:
    """stat of what the tracee's fd refers to, None if it is closed."""
    try:
        return os.stat(f"/proc/{tid}/fd/{fd}")
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ESRCH, errno.ENOTDIR):
            return None
        raise


def fd_identity(tid: int, fd: int) -> tuple[int, int] | None:
    """(st_dev, st_ino) of what the tracee's fd refers to, None if closed."""
    st = fd_stat(tid, fd)
    return None if st is None else (st.st_dev, st.st_ino)
