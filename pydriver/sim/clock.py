"""The device clock: the time base of event timestamps and DEV_QUERY CLOCK.

Device time is in ticks of ``freq`` per second and never goes back.  It is
*not* the host time the simulation takes (a kernel that takes the numpy
executor 50 ms of host time may model 0.3 ms of device work):

* while the device is idle, device time advances with the host's monotonic
  clock (the device waits for the host, as a real one does between
  submissions);
* the firmware brackets every command with ``begin()`` / ``end(cost)``:
  device time is frozen at the command's start while the simulation runs,
  then advances by the command's modelled cost, and idle time restarts from
  there; between commands that were queued back to back (``no_idle()``)
  the firmware's own host time does not count either.

So the elapsed time between two events is the modelled cost of the work
between them plus the time the device sat idle waiting for the host; for
work queued back to back (no idle gap) it is exactly the modelled cost.
"""

from __future__ import annotations

import time


class DeviceClock:
    def __init__(self, freq: int):
        self.freq = freq
        # Host CLOCK_MONOTONIC when device time was 0 (the trace recorder reads
        # _t0).  Device time runs behind host time by the simulation's excess.
        self.boot_ns = self._t0 = time.monotonic_ns()
        self._base_dev = 0                      # device ticks at host time _base_ns
        self._base_ns = self.boot_ns
        self._busy_at = None                    # device time the running command began
        self._last = 0

    def now(self) -> int:
        """Device time now (during a command: the time it began)."""
        if self._busy_at is not None:
            return self._busy_at
        idle = (time.monotonic_ns() - self._base_ns) * self.freq // 1_000_000_000
        self._last = max(self._last, self._base_dev + idle)
        return self._last

    def begin(self) -> int:
        """A command starts; returns its start time."""
        if self._busy_at is None:
            self._busy_at = self.now()
        return self._busy_at

    def end(self, cost: int) -> int:
        """The command that began last ends after cost ticks; returns its end."""
        start = self._busy_at if self._busy_at is not None else self.now()
        self._busy_at = None
        self._last = max(self._last, start + max(0, int(cost)))
        self._base_dev = self._last
        self._base_ns = time.monotonic_ns()
        return self._last

    def no_idle(self) -> None:
        """The device was not idle since the last command ended (the next
        one was already queued): host time since then is not device time."""
        if self._busy_at is None:
            self._base_ns = time.monotonic_ns()

    def run(self, cost: int) -> int:
        """Account for work of cost ticks starting now; returns its end."""
        self.begin()
        return self.end(cost)
