"""A context: what one open() of a device node owns.

Everything a context holds is named by small integer handles that are never
reused within the context, so a stale handle (double free, use after free)
is always EINVAL instead of silently hitting a newer object.
"""

from __future__ import annotations

import errno
import itertools
from typing import TYPE_CHECKING

from pydriver.errors import DriverError
from pydriver.vm import VM

if TYPE_CHECKING:
    from pydriver.device import Device
    from pydriver.uaccess import UserMemory

MAX_QUEUES = 64

_ids = itertools.count(1)


class Context:
    def __init__(self, device: "Device", mm: "UserMemory", window: int | None = None):
        self.id = next(_ids)
        self.device = device
        self.mm = mm
        self.vm = VM(device.vram, window)
        self.bos: dict = {}
        self.bo_by_mmap: dict = {}
        self.queues: dict = {}
        self.events: dict = {}
        self.modules: dict = {}
        self.used = 0                 # VRAM bytes of live BOs
        self.faulted = None           # the DeviceFault that killed the context, if any
        self.destroyed = False        # closed: waiters give up, late ioctls are refused
        self.tracer = None            # the recorder of the process owning it (ring traffic)
        self._handles = itertools.count(1)

    def new_handle(self) -> int:
        h = next(self._handles)
        if h > 0xFFFFFFFF:
            raise DriverError(errno.ENOSPC, "handle space of this context is exhausted")
        return h

    def _get(self, table: dict, handle: int, what: str):
        try:
            return table[handle]
        except KeyError:
            raise DriverError(errno.EINVAL, f"no {what} with handle {handle} in context {self.id}") from None

    def bo(self, handle: int):
        return self._get(self.bos, handle, "buffer object")

    def queue(self, queue_id: int):
        return self._get(self.queues, queue_id, "queue")

    def event(self, handle: int):
        return self._get(self.events, handle, "event")

    def module(self, handle: int):
        return self._get(self.modules, handle, "module")

    def range(self, va: int, size: int, what: str):
        """The BO holding device range [va, va+size), or EINVAL."""
        bo = self.vm.find(va, size)
        if bo is None:
            raise DriverError(errno.EINVAL, f"{what} [0x{va:x}, +0x{size:x}) is not inside one buffer of context {self.id}")
        return bo

    def vram_offset(self, va: int, size: int, what: str) -> int:
        bo = self.range(va, size, what)
        return bo.vram_offset + (va - bo.gpu_va)
