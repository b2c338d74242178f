"""Driver configuration, read from the environment of the host process.

The CLI (aishim run) sets these for the child; a bare LD_PRELOAD run gets the
defaults.  Every variable is documented in the README.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DEVICES = 4
DEFAULT_VRAM = 4 << 30


def _int(env, name: str, default: int) -> int:
    v = env.get(name, "")
    try:
        return int(v, 0) if v else default
    except ValueError:
        return default


@dataclass
class Config:
    devices: int = DEFAULT_DEVICES
    vram_size: int = DEFAULT_VRAM
    fw: str | None = None            # firmware to boot: "2.1", or per device "2.0,3.0" (last repeats)
    driver_fw: str | None = None     # test hook: layouts the driver assumes (default: what the device runs)
    log_level: str = "warning"
    log_file: str | None = None
    watchdog_s: float = 10.0         # a launch running longer faults with a timeout
    inject_bug: str | None = None    # test hook: this ioctl's handler raises (must become EIO)

    def fw_for(self, minor: int):
        """(firmware the device runs, layouts the driver uses) for a device;
        ValueError for a version nobody declared."""
        from structs import fw
        wanted = [x for x in (self.fw or "").split(",") if x.strip()]
        running = fw.parse_version(wanted[min(minor, len(wanted) - 1)]) if wanted else fw.DEFAULT
        assumed = fw.parse_version(self.driver_fw) if self.driver_fw else running
        return running, assumed

    @classmethod
    def from_env(cls, env=None) -> "Config":
        env = os.environ if env is None else env
        level = env.get("AISHIM_LOG", "warning").lower()
        try:
            watchdog = float(env.get("AISHIM_WATCHDOG", "10"))
        except ValueError:
            watchdog = 10.0
        return cls(
            devices=max(0, min(16, _int(env, "AISHIM_DEVICES", DEFAULT_DEVICES))),
            vram_size=_int(env, "AISHIM_VRAM_MB", DEFAULT_VRAM >> 20) << 20,
            fw=env.get("AISHIM_FW") or None,
            driver_fw=env.get("AISHIM_DRIVER_FW") or None,
            log_level=level,
            log_file=env.get("AISHIM_LOG_FILE") or None,
            watchdog_s=watchdog,
            inject_bug=env.get("AISHIM_INJECT_BUG") or None,
        )


def option_env(base, *, devices: int | None = None, fw: str | None = None, verbose: bool = False) -> dict:
    """A copy of environment base with the AISHIM_* variables that the
    command-line options --devices, --fw and -v stand for (what from_env
    reads back): one place for every front end that starts a driver."""
    env = dict(base)
    if devices is not None:
        env["AISHIM_DEVICES"] = str(devices)
    if fw:
        env["AISHIM_FW"] = fw
    if verbose:
        env["AISHIM_LOG"] = "debug"
    return env
