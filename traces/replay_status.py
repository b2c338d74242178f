"""The replay's verdict, passed from the replaying process (the driver inside
the program) to `aishim replay` through a small JSON file."""

from __future__ import annotations

import json
import os


def write_status(path: str, **status) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(status, f)
    os.replace(tmp, path)


def read_status(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
