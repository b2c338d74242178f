"""A progress bar on stderr for long traces: only on a terminal, only for
big files, at most five updates a second."""

from __future__ import annotations

import sys
import time

MIN_BYTES = 8 << 20


class Progress:
    def __init__(self, total: int, label: str, stream=None):
        self.stream = stream or sys.stderr
        self.total = max(total, 1)
        self.label = label
        self.enabled = total >= MIN_BYTES and getattr(self.stream, "isatty", lambda: False)()
        self._last = 0.0
        self._shown = False

    def update(self, pos: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        frac = min(1.0, pos / self.total)
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}%")
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            self.stream.write("\r" + " " * 50 + "\r")
            self.stream.flush()
