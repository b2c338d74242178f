"""The Linux ``_IOC`` request encoding (asm-generic/ioctl.h).

A request number carries its own direction and argument size, which is what
lets a recorder size an unknown ioctl's argument (valgrind-mmt's approach)
and lets ``aishim show`` print any request as dir/type/nr/size.
"""

from dataclasses import dataclass

NRBITS, TYPEBITS, SIZEBITS, DIRBITS = 8, 8, 14, 2
NRSHIFT = 0
TYPESHIFT = NRSHIFT + NRBITS
SIZESHIFT = TYPESHIFT + TYPEBITS
DIRSHIFT = SIZESHIFT + SIZEBITS

# Direction as seen from user space: WRITE means the caller writes the
# argument and the kernel reads it (copy_from_user), READ the reverse.
NONE, WRITE, READ = 0, 1, 2
MAX_SIZE = (1 << SIZEBITS) - 1


def IOC(direction: int, type_: int, nr: int, size: int) -> int:
    if not 0 <= size <= MAX_SIZE:
        raise ValueError(f"ioctl argument size {size} does not fit in {SIZEBITS} bits")
    return (direction << DIRSHIFT) | (type_ << TYPESHIFT) | (nr << NRSHIFT) | (size << SIZESHIFT)


def IO(type_: int, nr: int) -> int:
    return IOC(NONE, type_, nr, 0)


def IOR(type_: int, nr: int, size: int) -> int:
    return IOC(READ, type_, nr, size)


def IOW(type_: int, nr: int, size: int) -> int:
    return IOC(WRITE, type_, nr, size)


def IOWR(type_: int, nr: int, size: int) -> int:
    return IOC(READ | WRITE, type_, nr, size)


def ioc_dir(req: int) -> int:
    return (req >> DIRSHIFT) & ((1 << DIRBITS) - 1)


def ioc_type(req: int) -> int:
    return (req >> TYPESHIFT) & ((1 << TYPEBITS) - 1)


def ioc_nr(req: int) -> int:
    return (req >> NRSHIFT) & ((1 << NRBITS) - 1)


def ioc_size(req: int) -> int:
    return (req >> SIZESHIFT) & ((1 << SIZEBITS) - 1)


_DIR_NAMES = {NONE: "_IO", WRITE: "_IOW", READ: "_IOR", READ | WRITE: "_IOWR"}


@dataclass(frozen=True)
class IocFields:
    """A request number taken apart, for display of requests nobody declared."""

    direction: int
    type: int
    nr: int
    size: int

    def __str__(self) -> str:
        t = chr(self.type) if 0x20 < self.type < 0x7F else f"0x{self.type:02x}"
        name = _DIR_NAMES[self.direction]
        if self.direction == NONE:
            return f"{name}('{t}', 0x{self.nr:02x})" if len(t) == 1 else f"{name}({t}, 0x{self.nr:02x})"
        quoted = f"'{t}'" if len(t) == 1 else t
        return f"{name}({quoted}, 0x{self.nr:02x}, {self.size})"


def decode(req: int) -> IocFields:
    req &= 0xFFFFFFFF
    return IocFields(ioc_dir(req), ioc_type(req), ioc_nr(req), ioc_size(req))
