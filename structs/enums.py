"""Value -> name maps of the UAPI (aicard_uapi.h enums).  Layouts live in
uapi.py; these are kept apart so decoding never depends on presentation."""

from enum import IntEnum


class QueryType(IntEnum):
    DEVICE_INFO = 0
    MEM_INFO = 1
    CLOCK = 2


class CmdType(IntEnum):
    LAUNCH = 1
    EVENT_RECORD = 2
    EVENT_WAIT = 3
    EVENT_RESET = 4
    MEMBAR = 5
    NOTIFY = 6
    TRANSFORMER = 7


class CopyKind(IntEnum):
    HTOD = 1
    DTOH = 2
    DTOD = 3


class FenceStatus(IntEnum):
    OK = 0
    FAULT = 1
    TIMEOUT = 2


class EventStatus(IntEnum):
    UNSIGNALED = 0
    PENDING = 1
    SIGNALED = 2


class TransformerOp(IntEnum):
    ENCODE = 1
    DECODE = 2
    ATTENTION = 3


class ParamKind(IntEnum):
    U32 = 0
    I32 = 1
    F32 = 2
    U64 = 3
    PTR = 4


class WireMsg(IntEnum):
    """Frame types of the daemon's wire protocol (structs/wire.py); not UAPI."""
    HELLO = 1       # start (or join) the session of this process
    OPEN = 2
    CLOSE = 3
    DUP = 4
    IOCTL = 5
    MMAP = 6        # the answer carries the device's VRAM memfd (SCM_RIGHTS)
    MAPPED = 7
    MUNMAP = 8
    FINISH = 9      # the process is exiting: close its trace now


def name_of(enum_cls, value: int) -> str:
    """The enum name, or the number for a value the header does not define."""
    try:
        return enum_cls(value).name
    except ValueError:
        return str(value)
