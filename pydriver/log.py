"""The driver's log: 'aishim:' lines on stderr (or AISHIM_LOG_FILE), never on
the host program's stdout.  Configured once per driver instance, on a logger
of our own, without touching the root logger of a Python host."""

from __future__ import annotations

import logging

log = logging.getLogger("aishim")
log.propagate = False

_configured = False


def configure(level: str = "warning", path: str | None = None) -> None:
    global _configured
    if _configured:
        return
    _configured = True
    if path:
        handler: logging.Handler = logging.FileHandler(path)
    else:
        handler = logging.StreamHandler()   # sys.stderr at the time of the call
    handler.setFormatter(logging.Formatter("aishim[%(process)d]: %(message)s"))
    log.addHandler(handler)
    log.setLevel(getattr(logging, level.upper(), logging.WARNING))
