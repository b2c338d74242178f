"""`aishim info`: ask each simulated device what it is, through the same
ioctl path a program takes (Driver.ioctl with a real argument buffer and
user pointers into this process)."""

from __future__ import annotations

import dataclasses
import os

from pydriver.config import Config
from pydriver.driver import Driver
from pydriver.uaccess import buffer_address
from structs import uapi
from structs.enums import QueryType
from structs.layout import c_string


def query(drv: Driver, fd: int, qtype: int, layout):
    answer = bytearray(layout.sizeof())
    q = uapi.DevQuery.codec()
    arg = bytearray(q.pack(q.make(type=qtype, size=len(answer), pointer=buffer_address(answer))))
    r = drv.ioctl(fd, uapi.BY_NAME["DEV_QUERY"].request, arg)
    if r < 0:
        raise OSError(-r, os.strerror(-r))
    return layout.codec().unpack(answer)


def device_info_lines(ndevices: int | None = None):
    config = Config.from_env()
    if ndevices is not None:
        config = dataclasses.replace(config, devices=ndevices)
    drv = Driver(config)
    yield f"{config.devices} device(s), UAPI {uapi.UAPI_VERSION[0]}.{uapi.UAPI_VERSION[1]}"
    for minor in range(config.devices):
        fd = 1000 + minor          # a private number: no real fd is involved
        drv.open(minor, fd)
        try:
            info = query(drv, fd, QueryType.DEVICE_INFO, uapi.DeviceInfo)
            mem = query(drv, fd, QueryType.MEM_INFO, uapi.MemInfo)
        finally:
            drv.close(fd)
        fw = f"{info.fw_version >> 16}.{info.fw_version & 0xFFFF}"
        yield (f"/dev/aicard{minor}: {c_string(info.name)}  fw {fw}  "
               f"vram {info.vram_size >> 20} MiB ({mem.vram_used >> 20} MiB used)  "
               f"{info.core_count} cores x {info.warp_size} lanes  "
               f"max block {info.max_threads_per_block}  shared {info.max_shared_per_block >> 10} KiB  "
               f"clock {info.timestamp_freq / 1e9:g} GHz")
