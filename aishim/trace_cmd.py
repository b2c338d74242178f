"""`aishim record / show / replay / diff`: the trace commands."""

from __future__ import annotations

import glob
import os
import sys

from aishim.errors import AishimError


def add_parsers(sub) -> None:
    r = sub.add_parser("record", help="run a program under the shim and record every device call")
    r.add_argument("-o", dest="output", required=True, metavar="FILE.aitrace")
    r.add_argument("--fw", metavar="VERSION", help="firmware to boot")
    r.add_argument("--devices", type=int, metavar="N")
    r.add_argument("-v", "--verbose", action="store_true")
    r.add_argument("--ptrace", action="store_true", help="record under the ptrace backend")
    r.add_argument("--passthrough", metavar="GLOB",
                   help="with --ptrace: let a real device matching GLOB answer, and record it")
    r.add_argument("command", nargs="*", help="-- PROG ARGS...")

    s = sub.add_parser("show", help="print a trace (strace-like, JSON, or a Chrome/Perfetto timeline)")
    s.add_argument("trace")
    s.add_argument("--fw", metavar="VERSION", help="decode ring traffic with this firmware's layouts")
    s.add_argument("--json", action="store_true", help="same as --format json")
    s.add_argument("--format", choices=("text", "json", "chrome"), default="text")
    s.add_argument("--filter", metavar="NAMES", help="e.g. SUBMIT,COPY or open,close or pid=1234")
    s.add_argument("--no-ring", action="store_true", help="leave out the firmware ring traffic")

    p = sub.add_parser("replay", help="run a program against a recorded trace instead of the device")
    p.add_argument("trace")
    p.add_argument("--loose", action="store_true",
                   help="tolerate reordering across threads and extra query calls")
    p.add_argument("--force", action="store_true", help="replay even if the struct schema changed")
    p.add_argument("command", nargs="*", help="-- PROG ARGS...")

    d = sub.add_parser("diff", help="compare two traces call by call, field by field")
    d.add_argument("a")
    d.add_argument("b")
    d.add_argument("--ring", action="store_true", help="compare firmware ring traffic too")
    d.add_argument("--max", type=int, default=20, help="differences to print (default 20)")


def _reader(path: str):
    from traces.format import TraceFormatError
    from traces.reader import TraceReader
    try:
        return TraceReader(path)
    except TraceFormatError as e:
        raise AishimError(str(e)) from None


def cmd_record(args, run_program, run_ptrace=None) -> int:
    if not args.command:
        raise AishimError("record: no program given (aishim record -o FILE -- PROG ARGS...)")
    if args.passthrough and not args.ptrace:
        raise AishimError("record: --passthrough needs --ptrace")
    out = os.path.abspath(args.output)
    for stale in [out, *glob.glob(glob.escape(out) + ".[0-9]*")]:
        try:
            os.unlink(stale)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise AishimError(f"{stale}: {e.strerror}") from None
    try:
        with open(out, "wb"):
            pass
        os.unlink(out)
    except OSError as e:
        raise AishimError(f"{args.output}: {e.strerror}") from None
    if args.ptrace:
        from traces.recorder import Recorder
        argv = list(args.command)
        return run_ptrace(args, recorder=lambda pid, tid: Recorder(out, argv, pid=pid, tid=tid),
                          passthrough=args.passthrough)
    return run_program(args, {"AISHIM_RECORD": out})


def cmd_show(args, out) -> int:
    from traces.format import TraceFormatError
    from traces.show import Filter, show_json, show_text
    reader = _reader(args.trace)
    fw_override = None
    if args.fw:
        from structs import fw
        try:
            fw_override = fw.parse_version(args.fw)
        except ValueError as e:
            raise AishimError(str(e)) from None
    fmt = "json" if args.json else args.format
    try:
        if fmt == "chrome":
            from traces.chrome import export
            export(reader, out)
        elif fmt == "json":
            show_json(reader, out, flt=Filter(args.filter), fw_override=fw_override)
        else:
            show_text(reader, out, flt=Filter(args.filter), fw_override=fw_override, ring=not args.no_ring)
    except TraceFormatError as e:
        out.flush()
        raise AishimError(str(e)) from None
    return 0


def cmd_diff(args, out) -> int:
    from traces.diff import diff_traces
    from traces.format import TraceFormatError
    a, b = _reader(args.a), _reader(args.b)
    try:
        return diff_traces(a, b, out, ring=args.ring, limit=args.max)
    except TraceFormatError as e:
        raise AishimError(str(e)) from None


def cmd_replay(args, run_child) -> int:
    from traces.format import TraceFormatError
    from traces.replay_status import read_status
    if not args.command:
        raise AishimError("replay: no program given (aishim replay FILE -- PROG ARGS...)")
    reader = _reader(args.trace)
    try:
        for _ in reader.records():
            pass
    except TraceFormatError as e:
        raise AishimError(str(e)) from None
    if not reader.schema_matches and not args.force:
        changes = ", ".join(reader.schema_changes()[:8])
        raise AishimError(f"{args.trace} was recorded with other struct layouts ({changes}); "
                          f"replaying it would compare different bytes (--force to try anyway)")
    status_path = os.path.abspath(args.trace) + f".replay-{os.getpid()}"
    env = {"AISHIM_REPLAY": os.path.abspath(args.trace), "AISHIM_REPLAY_STATUS": status_path}
    if args.loose:
        env["AISHIM_REPLAY_LOOSE"] = "1"
    code = run_child(args, env)
    status = read_status(status_path)
    try:
        os.unlink(status_path)
    except FileNotFoundError:
        pass
    if status is None:
        print(f"aishim: replay: the program (exit status {code}) never used the device", file=sys.stderr)
        return 3
    if status["state"] == "match":
        print(f"aishim: replay matched: {status['consumed']} of {status['total']} calls "
              f"({status['rate']:.0f} records/s)", file=sys.stderr)
        return code
    print(status["report"], file=sys.stderr)
    return 3
