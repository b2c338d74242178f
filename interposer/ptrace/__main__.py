"""python -m interposer.ptrace [options] -- PROG ARGS...

The ptrace backend on its own (``aishim run --ptrace`` calls the same run()):

    python -m interposer.ptrace -- build/umd/bin/vecadd
    python -m interposer.ptrace --passthrough /dev/ptmx --events ev.jsonl -- ./pty_probe

--events FILE writes every recorded device call as one JSON object a line
(bytes as hex) when the run ends: the in-memory recorder's stand-in for a
trace file until traces/ has a format.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m interposer.ptrace",
                                description="run a program under the aicard ptrace backend")
    p.add_argument("--devices", type=int, metavar="N", help="number of devices (default 4)")
    p.add_argument("--fw", metavar="VERSION", help="firmware to boot")
    p.add_argument("-v", "--verbose", action="store_true", help="log every device call")
    p.add_argument("--passthrough", metavar="GLOB", help="record real device nodes matching GLOB")
    p.add_argument("--events", metavar="FILE", help="write the recorded device calls (JSON lines)")
    p.add_argument("--pin", action="store_true",
                   help="run tracer and program on one CPU: cheaper stops, one CPU for the program")
    p.add_argument("--stats", action="store_true", help="print the tracer's counters on stderr at the end")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- PROG ARGS...")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        print("aishim: no program given (python -m interposer.ptrace -- PROG ARGS...)", file=sys.stderr)
        return 2
    from pydriver.config import option_env
    env = option_env(os.environ, devices=args.devices, fw=args.fw, verbose=args.verbose)

    from interposer.ptrace import MemoryRecorder, TracerError, run
    rec = MemoryRecorder() if args.events else None
    stats: dict = {}
    try:
        status = run(cmd, env, hook=rec, passthrough=args.passthrough,
                     pin_cpu=True if args.pin else None, stats=stats)
    except TracerError as e:
        print(f"aishim: {e}", file=sys.stderr)
        return e.status
    finally:
        if args.stats:
            print("aishim: ptrace: " + " ".join(f"{k}={v}" for k, v in stats.items()), file=sys.stderr)
        if rec is not None:
            with open(args.events, "w") as f:
                for ev in rec.events:
                    f.write(json.dumps(_jsonable(ev)) + "\n")
    return status


def _jsonable(ev) -> dict:
    d = dataclasses.asdict(ev)
    for k in ("arg_before", "arg_after"):
        if d[k] is not None:
            d[k] = d[k].hex()
    return d


if __name__ == "__main__":
    sys.exit(main())
