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


# Requests from before the _IOC encoding (type 'T', size field 0): sizes and
# directions of the x86_64 kernel ABI.  The kernel's struct termios (TCGETS)
# is 36 bytes - glibc's user-space struct termios is 60, and tcgetattr()
# converts - struct termio 18, struct winsize 8.  Requests whose argument is
# a plain integer value (TCSBRK, TIOCSCTTY...) move no bytes.
LEGACY_REQUESTS: dict[int, tuple[str, int, int]] = {
    0x5401: ("TCGETS", 36, READ),
    0x5402: ("TCSETS", 36, WRITE),
    0x5403: ("TCSETSW", 36, WRITE),
    0x5404: ("TCSETSF", 36, WRITE),
    0x5405: ("TCGETA", 18, READ),
    0x5406: ("TCSETA", 18, WRITE),
    0x5407: ("TCSETAW", 18, WRITE),
    0x5408: ("TCSETAF", 18, WRITE),
    0x540F: ("TIOCGPGRP", 4, READ),
    0x5410: ("TIOCSPGRP", 4, WRITE),
    0x5411: ("TIOCOUTQ", 4, READ),
    0x5413: ("TIOCGWINSZ", 8, READ),
    0x5414: ("TIOCSWINSZ", 8, WRITE),
    0x5415: ("TIOCMGET", 4, READ),
    0x5416: ("TIOCMBIS", 4, WRITE),
    0x5417: ("TIOCMBIC", 4, WRITE),
    0x5418: ("TIOCMSET", 4, WRITE),
    0x541B: ("FIONREAD", 4, READ),
    0x5420: ("TIOCPKT", 4, WRITE),
    0x5421: ("FIONBIO", 4, WRITE),
    0x5423: ("TIOCSETD", 4, WRITE),
    0x5424: ("TIOCGETD", 4, READ),
    0x5429: ("TIOCGSID", 4, READ),
    0x5452: ("FIOASYNC", 4, WRITE),
}




def arg_size(req: int) -> tuple[int, int]:
    """(bytes, direction) the request moves through its pointer argument:
    the _IOC size and direction, else the legacy table, else (0, NONE)."""
    req &= 0xFFFFFFFF
    legacy = LEGACY_REQUESTS.get(req)
    if legacy is not None:
        return legacy[1], legacy[2]
    return ioc_size(req), ioc_dir(req)


def legacy_name(req: int) -> str | None:
    entry = LEGACY_REQUESTS.get(req & 0xFFFFFFFF)
    return entry[0] if entry else None


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
