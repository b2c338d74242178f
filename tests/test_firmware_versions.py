"""Every sample runs on every firmware version; devices with different
firmware coexist in one process; a driver/firmware mismatch is caught and
reported with the offending command decoded."""

from __future__ import annotations

import errno

import pytest

from conftest import UMD_BIN, aishim, run
from pydriver.client import Client
from pydriver.config import Config
from pydriver.driver import Driver
from structs import fw

SAMPLES = {
    "vecadd": [], "saxpy": [], "mapped": [], "threads": ["-t", "4", "-i", "2"],
    "memcpy_roundtrip": ["-max", str(1 << 20)],
}
VERSIONS = [fw.version_str(v) for v in fw.VERSIONS]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_sample_on_every_firmware(built, sample, version):
    r = run([UMD_BIN / sample, *SAMPLES[sample]], env={"AISHIM_FW": version})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed" in r.stdout.lower()


def test_devices_with_different_firmware_in_one_process(built):
    r = run([UMD_BIN / "multidevice"], env={"AISHIM_FW": "2.0,2.1,3.0", "AISHIM_DEVICES": 3})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 devices" in r.stdout


def test_query_reports_the_booted_firmware(built):
    r = aishim("info", env={"AISHIM_FW": "2.0,3.0", "AISHIM_DEVICES": 3})
    lines = r.stdout.splitlines()[1:]
    assert ["fw 2.0" in lines[0], "fw 3.0" in lines[1], "fw 3.0" in lines[2]] == [True] * 3


def test_run_fw_option(built):
    r = aishim("run", "--fw", "2.1", "--", "sh", "-c", "echo $AISHIM_FW")
    assert r.stdout.strip() == "2.1"
    r = aishim("run", "--fw", "7.3", "--", "true")
    assert r.returncode == 1 and "unknown firmware version '7.3'" in r.stderr


def test_mismatch_is_a_decoded_firmware_fault(built):
    """The driver assumes 3.0, the device runs 2.0: no silent misbehaviour."""
    r = run([UMD_BIN / "vecadd"], env={"AISHIM_FW": "2.0", "AISHIM_DRIVER_FW": "3.0"})
    assert r.returncode == 1
    assert "aiErrorLaunchFailure" in r.stderr
    assert "firmware fault: bad_command" in r.stderr
    assert "as fw 2.0 reads it: {type=17" in r.stderr            # the firmware's view
    assert "the driver wrote: COPY (fw 3.0 layout)" in r.stderr  # the driver's view
    assert "Test passed" not in r.stdout


def test_mismatch_never_hangs_a_waiter():
    drv = Driver(Config(devices=1, vram_size=64 << 20, fw="2.1", driver_fw="2.0"))
    c = Client(drv)
    q = c.queue()
    _, va = c.alloc(4096)
    with pytest.raises(OSError) as e:
        c.htod(q, va, b"x" * 16)
    assert e.value.errno == errno.ECANCELED
    r = c.wait(q, 1, timeout_ns=0)        # completed, with the fault
    assert r.status != 0


@pytest.mark.parametrize("version", VERSIONS)
def test_ring_wraps_many_times(version):
    """Far more commands than the ring holds: it wraps, nothing is lost."""
    drv = Driver(Config(devices=1, vram_size=64 << 20, fw=version))
    c = Client(drv)
    q = c.queue()
    _, va = c.alloc(4096)
    for i in range(30000):
        fence = c.call("MEMSET", queue_id=q, elem_size=4, dst=va, count=1, value=i).fence
    assert fence == 30000
    assert c.dtoh(q, va, 4) == (29999).to_bytes(4, "little")
    assert drv.devices[0].cmd_ring.header().wraps > 0
