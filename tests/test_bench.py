"""A smoke run of `aishim bench --quick`: every benchmark runs and reports a
row.  The numbers themselves are not judged here (no timed assertions)."""

from __future__ import annotations

import json

from conftest import aishim


def test_bench_quick_produces_every_row(built):
    r = aishim("bench", "--quick", "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    metrics = [row["metric"] for row in doc["rows"]]
    failed = [row for row in doc["rows"] if row["value"].startswith("failed")]
    assert not failed, failed
    for expect in ("small ioctl", "unrelated syscalls", "copy 1 MiB", "mapped", "empty kernel launch",
                   "vecadd", "start-up", "record vecadd", "replay of small calls", "daemon: WAIT"):
        assert any(m.startswith(expect) or expect in m for m in metrics), (expect, metrics)
    mapped = next(row for row in doc["rows"] if row["metric"].startswith("mapped"))
    assert mapped["met"] is True          # zero copy is a property, not a speed


def test_bench_table_and_unknown_name(built):
    r = aishim("bench", "--quick", "--only", "launches")
    assert r.returncode == 0 and r.stdout.startswith("machine: ") and "| empty kernel launch + sync |" in r.stdout
    r = aishim("bench", "--only", "nonsense")
    assert r.returncode == 1 and "no benchmark 'nonsense'" in r.stderr
