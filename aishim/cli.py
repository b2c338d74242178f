"""aishim - the command line.  The only place that wires every layer together.

    aishim run [--devices N] [--fw V] [-v] [--connect [SOCKET]] -- PROG ARGS...
    aishim serve [--socket PATH] [--devices N] [--fw V] [-v]
    aishim info [--devices N]
    aishim as SRC -o OUT
    aishim dis MODULE
    aishim lib
    aishim structs list | show NAME | diff NAME --fw A --fw B | decode NAME FILE
    aishim record -o FILE [--fw V] [--connect [SOCKET]] -- PROG ARGS...
    aishim show FILE [--json | --format chrome] [--filter NAMES] [--fw V]
    aishim replay FILE [--loose] -- PROG ARGS...
    aishim diff A B
    aishim bench [--quick] [--json] [--only NAMES]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from aishim.errors import AishimError


def _preload_path() -> str:
    from interposer.build import ensure_built
    return str(ensure_built())


def child_env(args, base=None) -> dict:
    """Environment for a program run under the shim."""
    from pydriver.config import option_env
    env = option_env(os.environ if base is None else base, devices=getattr(args, "devices", None),
                     fw=getattr(args, "fw", None), verbose=getattr(args, "verbose", False))
    lib = _preload_path()
    pre = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = lib + (" " + pre if pre else "")
    if getattr(args, "connect", None):
        env["AISHIM_CONNECT"] = args.connect
    return env


def _resolve_program(prog: str) -> str:
    path = prog if "/" in prog else shutil.which(prog)
    if not path or not os.path.exists(path):
        raise AishimError(f"{prog}: no such program")
    if not os.access(path, os.X_OK) or os.path.isdir(path):
        raise AishimError(f"{prog}: not executable")
    return path


def _check_fw(spec: str | None) -> None:
    from structs import fw
    for v in (spec or "").split(","):
        if v.strip():
            try:
                fw.parse_version(v)
            except ValueError as e:
                raise AishimError(str(e)) from None


def _check_connect(args) -> None:
    """--connect: the daemon must be there; its device count is the child's."""
    if not getattr(args, "connect", None):
        return
    if getattr(args, "ptrace", False):
        raise AishimError("--connect works with the preload library, not with --ptrace")
    if getattr(args, "fw", None):
        raise AishimError("--fw: with --connect the daemon's devices run what `aishim serve --fw` booted")
    from interposer.remote import probe
    try:
        info = probe(args.connect)
    except (OSError, ValueError) as e:
        raise AishimError(f"cannot reach the aishim daemon at {args.connect}: {e}") from None
    if getattr(args, "devices", None) is None:
        args.devices = info.devices


def cmd_run(args, extra_env: dict | None = None) -> int:
    if not args.command:
        raise AishimError("run: no program given (aishim run -- PROG ARGS...)")
    _check_fw(getattr(args, "fw", None))
    _check_connect(args)
    if getattr(args, "ptrace", False):
        return run_ptrace(args, extra_env)
    prog = _resolve_program(args.command[0])
    env = child_env(args)
    env.update(extra_env or {})
    sys.stdout.flush()
    sys.stderr.flush()
    # exec, not spawn: the program gets our pid, our signals and its own exit
    # status reaches the caller untouched.
    os.execve(prog, args.command, env)
    return 127  # not reached


def run_ptrace(args, extra_env: dict | None = None, *, recorder=None, passthrough=None) -> int:
    """The program under the ptrace backend (static binaries, raw syscalls)."""
    from interposer.ptrace import TracerError
    from interposer.ptrace import run as ptrace_run
    env = child_env(args)
    env.update(extra_env or {})
    env.pop("AISHIM_RECORD", None)          # under ptrace the tracer records, not the program
    hook = None
    kw = {}
    if passthrough:
        from interposer.ptrace.record import TraceHook
        hook = TraceHook(recorder) if recorder else None
        kw = dict(passthrough=passthrough, hook=hook)
    elif recorder:
        kw = dict(driver_tracer=recorder)
    sys.stdout.flush()
    try:
        return ptrace_run(args.command, env, **kw)
    except TracerError as e:
        print(f"aishim: {e}", file=sys.stderr)
        return e.status
    finally:
        if hook is not None:
            hook.close()


def run_child(args, extra_env: dict | None = None) -> int:
    """Run the program as a child (when aishim has work left after it) and
    return its exit status, 128+N for a death by signal N, as a shell does."""
    import signal
    import subprocess
    prog = _resolve_program(args.command[0])
    env = child_env(args)
    env.update(extra_env or {})
    proc = subprocess.Popen([prog, *args.command[1:]], env=env)
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)   # the child gets the Ctrl-C
    try:
        code = proc.wait()
    finally:
        signal.signal(signal.SIGINT, old)
    return 128 - code if code < 0 else code


def cmd_info(args, out) -> int:
    from aishim.info import device_info_lines
    for line in device_info_lines(args.devices):
        print(line, file=out)
    return 0


def cmd_as(args, out) -> int:
    from pydriver.asm import AsmError, assemble_file
    try:
        assemble_file(args.source, args.output)
    except AsmError as e:
        raise AishimError(str(e)) from None
    return 0


def cmd_dis(args, out) -> int:
    from pydriver.asm import disassemble
    from structs.module import ModuleFormatError, parse_module
    try:
        with open(args.module, "rb") as f:
            module = parse_module(f.read())
    except ModuleFormatError as e:
        raise AishimError(f"{args.module}: {e}") from None
    out.write(disassemble(module))
    return 0


def cmd_serve(args, out) -> int:
    """The driver as a daemon, in the foreground, until SIGINT/SIGTERM."""
    import signal

    from pydriver.config import Config, option_env
    from pydriver.server import Server, ServerError

    class _Stop(Exception):
        pass

    stopping = []

    def stop(signum, frame):
        if not stopping:                     # the first signal stops; later ones wait for that
            stopping.append(signum)
            raise _Stop()

    _check_fw(args.fw)
    env = option_env(os.environ, devices=args.devices, fw=args.fw, verbose=args.verbose)
    env.setdefault("AISHIM_LOG", "info")
    config = Config.from_env(env)

    def make_tracer(path, argv, pid, tid):
        from traces.recorder import Recorder
        return Recorder(path, argv, pid=pid, tid=tid)

    server = Server(args.socket, config, make_tracer=make_tracer)
    try:
        server.bind()
    except ServerError as e:
        raise AishimError(str(e)) from None
    old = {}
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    try:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            old[s] = signal.signal(s, stop)
        print(f"aishim: serving {config.devices} device(s) on {args.socket} (pid {os.getpid()})", file=out,
              flush=True)
        server.serve_forever(wakeup_fd=wake_r)
    except _Stop:
        pass
    finally:
        stopping.append(0)                   # from here on a signal changes nothing
        server.shutdown()
        for s, h in old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(old_wakeup)
        os.close(wake_r)
        os.close(wake_w)
    return 0


def cmd_lib(args, out) -> int:
    print(_preload_path(), file=out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aishim", description="Run aicard binaries on a simulated device.")
    p.add_argument("--traceback", action="store_true", help="show Python tracebacks on errors")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run a program with the shim preloaded")
    r.add_argument("--devices", type=int, metavar="N", help="number of devices (default 4)")
    r.add_argument("--fw", metavar="VERSION", help="firmware to boot: 2.1, or per device 2.0,3.0")
    r.add_argument("-v", "--verbose", action="store_true", help="log every device call (AISHIM_LOG=debug)")
    r.add_argument("--ptrace", action="store_true",
                   help="emulate the device with the ptrace backend (static binaries, raw syscalls)")
    _add_connect(r)
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- PROG ARGS...")

    sv = sub.add_parser("serve", help="run the driver as a daemon that several processes share")
    sv.add_argument("--socket", default=None, metavar="PATH",
                    help="UNIX socket to listen on (default $XDG_RUNTIME_DIR/aishim.sock, "
                         "else /tmp/aishim-$UID.sock)")
    sv.add_argument("--devices", type=int, metavar="N", help="number of devices (default 4)")
    sv.add_argument("--fw", metavar="VERSION", help="firmware to boot: 2.1, or per device 2.0,3.0")
    sv.add_argument("-v", "--verbose", action="store_true", help="log every device call")

    i = sub.add_parser("info", help="describe the simulated devices")
    i.add_argument("--devices", type=int, metavar="N", help="number of devices (default 4)")

    a = sub.add_parser("as", help="assemble a kernel source file into a module")
    a.add_argument("source")
    a.add_argument("-o", dest="output", required=True)

    d = sub.add_parser("dis", help="disassemble a module")
    d.add_argument("module")

    sub.add_parser("lib", help="print the preload library's path (LD_PRELOAD=$(aishim lib) ./app)")

    from aishim import bench, structs_cmd, trace_cmd
    structs_cmd.add_parser(sub)
    trace_cmd.add_parsers(sub)
    _add_connect(sub.choices["record"])
    bench.add_parser(sub)
    return p


def _add_connect(parser) -> None:
    parser.add_argument("--connect", nargs="?", const="", default=None, metavar="SOCKET",
                        help="use the devices of a daemon (aishim serve) instead of embedding the driver; "
                             "SOCKET defaults to the daemon's default path")


def main(argv=None, out=None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) and args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if getattr(args, "cmd", None) == "replay":
        args.devices = args.fw = None
    if getattr(args, "connect", None) is not None and getattr(args, "ptrace", False):
        print("aishim: --connect works with the preload library, not with --ptrace", file=sys.stderr)
        return 1
    if getattr(args, "connect", None) == "" or (args.cmd == "serve" and not args.socket):
        from pydriver.server import default_socket_path
        if args.cmd == "serve":
            args.socket = default_socket_path()
        else:
            args.connect = default_socket_path()
    try:
        if args.cmd == "run":
            return cmd_run(args)
        if args.cmd in ("record", "show", "replay", "diff"):
            from aishim import trace_cmd
            if args.cmd == "record":
                _check_fw(args.fw)
                return trace_cmd.cmd_record(args, cmd_run, run_ptrace)
            if args.cmd == "replay":
                return trace_cmd.cmd_replay(args, run_child)
            return {"show": trace_cmd.cmd_show, "diff": trace_cmd.cmd_diff}[args.cmd](args, out)
        if args.cmd == "bench":
            from aishim import bench
            return bench.main(args, out)
        if args.cmd == "structs":
            from aishim import structs_cmd
            return structs_cmd.run(args, out)
        return {"info": cmd_info, "as": cmd_as, "dis": cmd_dis, "lib": cmd_lib, "serve": cmd_serve}[args.cmd](args, out)
    except AishimError as e:
        if args.traceback:
            raise
        print(f"aishim: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
