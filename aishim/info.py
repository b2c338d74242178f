"""`aishim info`: ask each simulated device what it is, through the same
ioctl path a program takes."""

from __future__ import annotations

import dataclasses

from pydriver.client import Client
from pydriver.config import Config
from pydriver.driver import Driver
from structs import uapi
from structs.layout import c_string


def device_info_lines(ndevices: int | None = None):
    config = Config.from_env()
    if ndevices is not None:
        config = dataclasses.replace(config, devices=ndevices)
    drv = Driver(config)
    yield f"{config.devices} device(s), UAPI {uapi.UAPI_VERSION[0]}.{uapi.UAPI_VERSION[1]}"
    for minor in range(config.devices):
        c = Client(drv, minor)
        try:
            info, mem = c.device_info(), c.mem_info()
        finally:
            c.close()
        fw = f"{info.fw_version >> 16}.{info.fw_version & 0xFFFF}"
        yield (f"/dev/aicard{minor}: {c_string(info.name)}  fw {fw}  "
               f"vram {info.vram_size >> 20} MiB ({mem.vram_used >> 20} MiB used)  "
               f"{info.core_count} cores x {info.warp_size} lanes  "
               f"max block {info.max_threads_per_block}  shared {info.max_shared_per_block >> 10} KiB  "
               f"clock {info.timestamp_freq / 1e9:g} GHz")
