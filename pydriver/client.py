"""A minimal in-process caller of the driver, through the real ioctl path
(Driver.ioctl with argument buffers and user pointers into this process).

Used by `aishim info`, by the benchmarks, and by tests of the driver that
need no interposer.  It is not a runtime: the C library in umd/ is.
"""

from __future__ import annotations

import itertools
import os

from pydriver.driver import Driver
from pydriver.uaccess import buffer_address
from structs import uapi
from structs.enums import QueryType

_fds = itertools.count(1 << 20)   # above any real fd: no collision with the host's


class Client:
    def __init__(self, driver: Driver, minor: int = 0):
        self.driver = driver
        self.fd = next(_fds)
        r = driver.open(minor, self.fd)
        if r < 0:
            raise OSError(-r, os.strerror(-r))
        self.keep = []                 # buffers whose addresses were handed out

    def close(self) -> None:
        self.driver.close(self.fd)

    def call(self, _request: str, **inputs):
        """Issue ioctl _request (e.g. "BO_CREATE"); returns the record after
        the call or raises OSError."""
        name = _request
        io = uapi.BY_NAME[name]
        codec = io.layout.codec()
        buf = bytearray(codec.pack(codec.make(**inputs)))
        r = self.driver.ioctl(self.fd, io.request, buf)
        if r < 0:
            raise OSError(-r, f"{name}: {os.strerror(-r)}")
        return codec.unpack(buf)

    def ptr(self, data) -> int:
        """Address of a buffer that stays alive as long as this client."""
        buf = data if isinstance(data, bytearray) else bytearray(data)
        self.keep.append(buf)
        return buffer_address(buf) if len(buf) else 0

    def query(self, qtype: int, layout):
        out = bytearray(layout.sizeof())
        self.call("DEV_QUERY", type=qtype, size=len(out), pointer=self.ptr(out))
        return layout.codec().unpack(out)

    def device_info(self):
        return self.query(QueryType.DEVICE_INFO, uapi.DeviceInfo)

    def mem_info(self):
        return self.query(QueryType.MEM_INFO, uapi.MemInfo)

    def alloc(self, size: int):
        r = self.call("BO_CREATE", size=size)
        return r.handle, r.gpu_va

    def queue(self) -> int:
        return self.call("QUEUE_CREATE").queue_id

    def htod(self, q: int, va: int, data: bytes, sync: bool = True) -> int:
        return self.call("COPY", queue_id=q, kind=1, dst=va, src=self.ptr(data), size=len(data),
                         flags=uapi.COPY_SYNC if sync else 0).fence

    def dtoh(self, q: int, va: int, size: int) -> bytearray:
        out = bytearray(size)
        self.call("COPY", queue_id=q, kind=2, dst=self.ptr(out), src=va, size=size, flags=uapi.COPY_SYNC)
        return out

    def load_module(self, image: bytes):
        r = self.call("MODULE_LOAD", image=self.ptr(image), size=len(image))
        return r.handle

    def function(self, module: int, name: str):
        return self.call("MODULE_FUNCTION", module=module, name=name.encode().ljust(uapi.NAME_LEN, b"\0"))

    def launch(self, q: int, module: int, function: int, grid, block, params: bytes, shared: int = 0) -> int:
        cmd = uapi.CmdLaunch.codec()
        raw = cmd.pack(cmd.make(type=1, module=module, function=function, grid=tuple(grid), block=tuple(block),
                                shared_size=shared, params_size=len(params), params=self.ptr(params)))
        return self.call("SUBMIT", queue_id=q, cmd_count=1, cmd_stride=uapi.CMD_SIZE, cmds=self.ptr(raw)).fence

    def wait(self, q: int, fence: int, timeout_ns: int = uapi.TIMEOUT_INFINITE):
        return self.call("WAIT", queue_id=q, fence=fence, timeout_ns=timeout_ns)
