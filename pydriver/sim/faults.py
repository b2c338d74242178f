"""Device faults: what the simulated device reports when a kernel goes wrong.

The executor raises nothing but DeviceFault (or its subclass MemoryFault) for anything a
kernel can do; the driver turns a fault into AICARD_FENCE_FAULT / _TIMEOUT on the queue.
"""

from __future__ import annotations

FAULT_KINDS = (
    "mmu",                  # address not mapped in the context's VM (or outside shared memory)
    "misaligned",           # access not aligned to its size
    "illegal_instruction",  # unknown opcode, bad register, branch outside the function, ...
    "timeout",              # the watchdog deadline passed
    "bad_launch",           # launch geometry / parameters the device cannot run
)


class DeviceFault(Exception):
    """A fault of the simulated device.  `pc` is the instruction index inside the function
    that faulted (None when no instruction was running); `address` the faulting device
    address for "mmu" / "misaligned"."""

    def __init__(self, kind: str, message: str, *, pc: int | None = None,
                 address: int | None = None):
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        self.kind = kind
        self.message = message
        self.pc = pc
        self.address = address
        super().__init__(kind, message)

    def __str__(self) -> str:
        where = []
        if self.pc is not None:
            where.append(f"pc={self.pc}")
        if self.address is not None:
            where.append(f"address={self.address:#x}")
        suffix = f" ({', '.join(where)})" if where else ""
        return f"{self.kind}: {self.message}{suffix}"


class MemoryFault(DeviceFault):
    """Raised by GlobalMemory.translate for an access outside every mapped buffer.

    Takes DeviceFault's arguments, and for convenience also just a message (kind "mmu"):
    ``MemoryFault("mmu", "unmapped", address=a)`` and ``MemoryFault("unmapped", address=a)``
    are the same fault."""

    def __init__(self, *args: str, pc: int | None = None, address: int | None = None):
        if len(args) == 2:
            kind, message = args
        elif len(args) == 1:
            kind, message = "mmu", args[0]
        else:
            raise TypeError("MemoryFault(kind, message) or MemoryFault(message)")
        super().__init__(kind, message, pc=pc, address=address)
