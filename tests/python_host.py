"""A Python program that drives the device itself, through ctypes on the
runtime library, under the shim: the driver then runs inside this very
interpreter.  It must work, and it must not disturb the host: sys.path,
threads, signal handlers and the root logger stay as they were.

    LD_PRELOAD=... python tests/python_host.py LIBAICARD KERNELS_DIR
"""

import ctypes
import logging
import signal
import struct
import sys
import threading

lib_path, kernels = sys.argv[1], sys.argv[2]
before = (list(sys.path), threading.active_count(), signal.getsignal(signal.SIGINT),
          list(logging.getLogger().handlers))

rt = ctypes.CDLL(lib_path)
count = ctypes.c_int()
assert rt.aiGetDeviceCount(ctypes.byref(count)) == 0 and count.value == 4, count.value
n = 4096
a = (ctypes.c_float * n)(*[float(i) for i in range(n)])
b = (ctypes.c_float * n)(*[2.0 * i for i in range(n)])
c = (ctypes.c_float * n)()
da, db, dc = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
for d in (da, db, dc):
    assert rt.aiMalloc(ctypes.byref(d), ctypes.c_size_t(4 * n)) == 0
assert rt.aiMemcpy(da, a, ctypes.c_size_t(4 * n), 1) == 0
assert rt.aiMemcpy(db, b, ctypes.c_size_t(4 * n), 1) == 0
mod, fn = ctypes.c_void_p(), ctypes.c_void_p()
assert rt.aiModuleLoad(ctypes.byref(mod), f"{kernels}/vecadd.aimod".encode()) == 0
assert rt.aiModuleGetFunction(ctypes.byref(fn), mod, b"vecadd") == 0


class Dim3(ctypes.Structure):
    _fields_ = [("x", ctypes.c_uint), ("y", ctypes.c_uint), ("z", ctypes.c_uint)]


nn = ctypes.c_uint(n)
args = (ctypes.c_void_p * 4)(ctypes.addressof(da), ctypes.addressof(db), ctypes.addressof(dc), ctypes.addressof(nn))
rt.aiLaunchKernel.argtypes = [ctypes.c_void_p, Dim3, Dim3, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
assert rt.aiLaunchKernel(fn, Dim3(n // 256, 1, 1), Dim3(256, 1, 1), args, 0, None) == 0
assert rt.aiDeviceSynchronize() == 0
assert rt.aiMemcpy(c, dc, ctypes.c_size_t(4 * n), 2) == 0
assert all(c[i] == 3.0 * i for i in range(n)), "wrong result"
for d in (da, db, dc):
    assert rt.aiFree(d) == 0

# The driver is in this interpreter...
import interposer.glue  # noqa: E402
assert interposer.glue._driver is not None
# ... and left the host as it was.
after = (list(sys.path), threading.active_count(), signal.getsignal(signal.SIGINT),
         list(logging.getLogger().handlers))
assert after == before, f"host disturbed: {before} -> {after}"
print("python host ok", struct.calcsize("P"))
