"""What the simulated aicard is: the numbers DEV_QUERY reports, and the
limits the simulated device (pydriver/sim) enforces - one place for both."""

from structs.module import MAX_SHARED_SIZE

VENDOR_ID = 0x1CA1
DEVICE_ID = 0x0001
NAME = b"aicard-sim"
CORE_COUNT = 8
WARP_SIZE = 32
MAX_THREADS_PER_BLOCK = 1024
MAX_SHARED_PER_BLOCK = MAX_SHARED_SIZE   # static + dynamic, bytes
MAX_GRID = (0x7FFFFFFF, 0xFFFF, 0xFFFF)
MAX_BLOCK = (1024, 1024, 64)
TIMESTAMP_FREQ = 1_000_000_000      # 1 tick = 1 ns
