"""The ptrace backend: run a program under a tracer instead of LD_PRELOAD.

For binaries the preload library cannot reach (statically linked, raw
``syscall()``, their own syscall layer), and to record what a program does
with a *real* device node.  Two modes:

* emulation (default): /dev/aicardN exist for the tracee and the Python
  driver runs in the tracer (see emulate.py);
* passthrough (``passthrough="GLOB"``): real calls on real nodes matching
  GLOB, reported to a recorder hook (see passthrough.py).

A seccomp-BPF filter installed before exec makes only device-relevant calls
stop in the tracer (seccomp.py); python-ptrace does the process control and
registers, kernel.py what it lacks.

    from interposer.ptrace import run
    status = run(["./vecadd"], dict(os.environ), Config.from_env())
    status = run(["./app"], env, config, passthrough="/dev/ptmx", hook=MemoryRecorder())

Only interposer/ imports python-ptrace (STYLE.md, module boundaries).
"""

from __future__ import annotations

import os

from interposer.ptrace.hooks import Hook, LogHook, MemoryRecorder, SyscallEvent, arg_size
from interposer.ptrace.tracer import ExecError, TracerError

__all__ = ["run", "Hook", "MemoryRecorder", "LogHook", "SyscallEvent", "arg_size", "TracerError",
           "ExecError", "PRELOAD_NAME"]

PRELOAD_NAME = "libaicard_preload.so"


def run(argv: list[str], env: dict | None = None, config=None, *, hook: Hook | None = None,
        passthrough: str | None = None, pin_cpu: bool | None = None, stats: dict | None = None,
        driver_tracer=None) -> int:
    """Run argv under the tracer until it and every process it starts are
    gone.  Returns the program's exit status (128 + signal for a signal
    death, 128 + SIGINT when the tracer is interrupted; the program is then
    killed).  Raises ExecError (``.status`` 127 not found, 126 not
    executable) with a one-line message when the program cannot start.

    env: the program's environment (default: ours); our preload library is
    taken out of LD_PRELOAD, the tracer emulates instead.  config: the
    driver's Config (default: from env).  pin_cpu: run the tracer and the
    whole program on one CPU - stops ~3x cheaper, but the program sees one
    CPU (default: AISHIM_PTRACE_PIN=1 in env; see tracer.py).  stats: a
    dict to fill with counters (stops, processes, threads).

    Recording.  hook: a Hook (hooks.py) called at entry and exit of every
    device call, both modes.  driver_tracer(pid, tid) (emulation): the
    pydriver.tracing.Tracer - a traces Recorder - for the Driver of traced
    process pid, which then records as it does under preload; tid() is the
    tracee thread of the call being served."""
    from pydriver.config import Config
    from pydriver.log import configure

    from interposer.ptrace.tracer import Tracer

    if not argv:
        raise ExecError("no program given", 127)
    env = dict(os.environ if env is None else env)
    _strip_preload(env)
    config = config or Config.from_env(env)
    configure(config.log_level, config.log_file)
    if pin_cpu is None:
        pin_cpu = env.get("AISHIM_PTRACE_PIN", "0") not in ("", "0")
    if passthrough:
        from interposer.ptrace.passthrough import Passthrough

        def factory(t):
            return Passthrough(t, passthrough)
        if hook is None and config.log_level == "debug":
            from pydriver.log import log
            hook = LogHook(log.debug)
    else:
        from interposer.ptrace.emulate import Emulator

        def factory(t):
            return Emulator(t, config, driver_tracer=driver_tracer)
    tracer = Tracer(argv, env, factory, hook=hook, pin_cpu=pin_cpu)
    try:
        return tracer.run()
    finally:
        if stats is not None:
            stats.update(tracer.counters)


def _strip_preload(env: dict) -> None:
    pre = env.get("LD_PRELOAD")
    if pre is None:
        return
    keep = [p for p in pre.replace(":", " ").split() if os.path.basename(p) != PRELOAD_NAME]
    if keep:
        env["LD_PRELOAD"] = " ".join(keep)
    else:
        del env["LD_PRELOAD"]
