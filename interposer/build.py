"""Build the two shared libraries of the interposer.

* ``libaicard_preload.so`` - plain C (preload.c), what goes into LD_PRELOAD.
  It links nothing but libc, so a process that never touches a device pays
  for a few symbol lookups and nothing else.
* ``libaicard_driver.so`` - a cffi *embedding* module: the Python driver
  behind ``extern "Python+C"`` entry points.  The preload library dlopen()s it
  on the first device access.

The embedded interpreter must find this project's virtual environment with
no environment variable set (``LD_PRELOAD=... ./app`` must just work), so the
venv's interpreter path and site-packages are fixed here, at build time.

    python -m interposer.build [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = ROOT / "build" / "lib"
PRELOAD_NAME = "libaicard_preload.so"
DRIVER_NAME = "libaicard_driver.so"
MODULE_NAME = "_aicard_driver"

# The one list of driver entry points.  The glue attaches a Python function
# to each name (tests check that the two lists are the same); the preload
# library looks each one up and refuses device access if any is missing.
EXTERN_PYTHON = """
extern "Python+C" int aicard_py_open(int minor, int fd, int flags);
extern "Python+C" int aicard_py_close(int fd);
extern "Python+C" int aicard_py_dup(int oldfd, int newfd);
extern "Python+C" int aicard_py_ioctl(int fd, unsigned long req, void *buf, unsigned size,
                                      int arg_fault, uint64_t argaddr);
extern "Python+C" int aicard_py_mmap(int fd, uint64_t length, int prot, int flags, uint64_t offset,
                                     int *out_fd, uint64_t *out_offset);
extern "Python+C" int aicard_py_mapped(int fd, uint64_t addr, uint64_t length, uint64_t offset);
extern "Python+C" int aicard_py_munmap(uint64_t addr, uint64_t length);
extern "Python+C" int aicard_py_exit(void);
extern "Python+C" int aicard_py_ping(void);
"""

# What aicard_py_ping returns once the Python side is attached.  cffi makes a
# function whose init code failed return 0 - for an ioctl that would be a
# silent "success" - so the preload library checks this before any device
# call and refuses device access if it does not come back.
PING_MAGIC = 0x1CA1C0DE

CDEF = EXTERN_PYTHON + """
int aicard_drv_boot(void);
void aicard_drv_exit(void);
long aicard_user_copy(int pid, int to_user, uint64_t local, uint64_t remote, uint64_t n);
long aicard_user_write(int pid, uint64_t remote, const char *data, uint64_t n);
"""


def extern_names() -> list[str]:
    import re
    return re.findall(r"\b(aicard_py_\w+)\(", EXTERN_PYTHON)


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _venv_paths() -> tuple[str, str]:
    """(interpreter, site-packages) of the environment doing the build."""
    exe = os.path.abspath(sys.executable)
    purelib = sysconfig.get_paths()["purelib"]
    return exe, purelib


DRIVER_C = r"""
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "usercopy.h"

#define AISHIM_PYTHON %(python)s

/* fork() from the host program while we own the interpreter: CPython's rule
 * for a C caller is PyOS_BeforeFork / AfterFork_*, with the GIL held, or
 * locks held by other threads stay locked forever in the child. */
static PyGILState_STATE fork_gil;
static void fork_prepare(void) { fork_gil = PyGILState_Ensure(); PyOS_BeforeFork(); }
static void fork_parent(void) { PyOS_AfterFork_Parent(); PyGILState_Release(fork_gil); }
static pid_t self_pid;
static void fork_child(void) { self_pid = 0; PyOS_AfterFork_Child(); PyGILState_Release(fork_gil); }

/* Called by the preload library before the first entry point.  If the host
 * process is itself Python, its interpreter is used as it is (cffi does the
 * same).  Otherwise start one configured as this project's venv would be:
 * its prefix, its site-packages, no signal handlers (the host owns them),
 * nothing taken from the host's PYTHON* variables, which are meant for
 * whatever Python the host uses, not for us. */
__attribute__((visibility("default"))) int aicard_drv_boot(void)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    int ret = 0;
    pthread_mutex_lock(&lock);
    if (!Py_IsInitialized()) {
        PyConfig config;
        PyConfig_InitPythonConfig(&config);
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        config.use_environment = 0;
        config.user_site_directory = 0;
        config.safe_path = 1;
        PyStatus st = PyConfig_SetBytesString(&config, &config.program_name, AISHIM_PYTHON);
        if (!PyStatus_Exception(st))
            st = PyConfig_SetBytesString(&config, &config.executable, AISHIM_PYTHON);
        if (!PyStatus_Exception(st)) {
            char *argv[] = { "aishim-driver", NULL };
            st = PyConfig_SetBytesArgv(&config, 1, argv);
        }
        if (!PyStatus_Exception(st))
            st = Py_InitializeFromConfig(&config);
        PyConfig_Clear(&config);
        if (PyStatus_Exception(st)) {
            fprintf(stderr, "aishim: cannot start Python (%%s): %%s\n",
                    st.func ? st.func : "?", st.err_msg ? st.err_msg : "?");
            ret = -1;
        } else {
            PyEval_SaveThread();   /* release the GIL; cffi takes it per call */
            pthread_atfork(fork_prepare, fork_parent, fork_child);
        }
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

/* copy_from_user / copy_to_user for the embedded driver (pydriver/uaccess.py):
 * process_vm_readv/writev, bytes moved or -errno.  The same syscall through
 * ctypes costs ~2 us of call overhead, more than a small ioctl's whole
 * budget; through this module's lib it is a plain C call (and cffi releases
 * the GIL around it, as ctypes did).
 *
 * A big copy is cut in two halves, the upper one on a thread of its own: the
 * kernel's copy runs at ~0.8x glibc's memcpy on one core (no non-temporal
 * stores) and two halves on two cores at 1.2-1.9x (4-256 MiB, the README's
 * machine).  Python threads cannot do this below ~16 MiB: handing a piece
 * over through the GIL costs ~80 us on that machine, a pthread ~20 us. */
#define SPLIT_MIN (2u << 20)

struct user_copy {
    int pid, to_user;
    uint64_t local, remote, n;
    long got;
};

static long user_copy1(int pid, int to_user, uint64_t local, uint64_t remote, uint64_t n)
{
    if (!self_pid)
        self_pid = getpid();
    return aicard_copy_user(pid, pid == self_pid, (void *)(uintptr_t)local, remote, n, to_user);
}

static void *user_copy_thread(void *arg)
{
    struct user_copy *c = arg;
    c->got = user_copy1(c->pid, c->to_user, c->local, c->remote, c->n);
    return NULL;
}

static long aicard_user_copy(int pid, int to_user, uint64_t local, uint64_t remote, uint64_t n)
{
    static long cores;
    if (!cores)
        cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 2 * SPLIT_MIN || cores < 2)
        return user_copy1(pid, to_user, local, remote, n);
    uint64_t lower = (n / 2 + 4095) & ~(uint64_t)4095;
    struct user_copy upper = { pid, to_user, local + lower, remote + lower, n - lower, 0 };
    pthread_t t;
    if (pthread_create(&t, NULL, user_copy_thread, &upper) != 0)
        return user_copy1(pid, to_user, local, remote, n);
    long got = user_copy1(pid, to_user, local, remote, lower);
    pthread_join(t, NULL);
    /* Like one copy: the bytes done from the start, up to the first bad one. */
    if (got != (long)lower)
        return got;
    if (upper.got != (long)upper.n)
        return upper.got < 0 ? (upper.got == -EFAULT ? (long)lower : upper.got) : (long)lower + upper.got;
    return (long)n;
}

/* The same for a Python bytes object (cffi passes its storage as char *):
 * no address to find first. */
static long aicard_user_write(int pid, uint64_t remote, const char *data, uint64_t n)
{
    return aicard_user_copy(pid, 1, (uintptr_t)data, remote, n);
}

int aicard_py_exit(void);   /* the extern "Python+C" entry, generated below */

/* Process exit (the preload library's destructor): let the driver finish
 * its trace.  Not if the host was Python and has already finalized. */
__attribute__((visibility("default"))) void aicard_drv_exit(void)
{
    if (Py_IsInitialized())
        aicard_py_exit();
}
"""

INIT_CODE = r"""
import sys

def _import_glue():
    try:
        import interposer.glue as glue
    except ImportError:
        # A Python host whose sys.path does not know this project (the
        # embedded interpreter always does): make our environment visible.
        import site
        site.addsitedir(%(site)r)
        if %(root)r not in sys.path:
            sys.path.append(%(root)r)
        import interposer.glue as glue
    return glue

from %(module)s import ffi, lib
_import_glue().attach(ffi, lib)
"""


def build_preload(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    target = out / PRELOAD_NAME
    cc = os.environ.get("CC", "gcc")
    cmd = [cc, "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-fPIC", "-fvisibility=hidden",
           "-shared", "-o", str(target), str(HERE / "preload.c"), "-ldl", "-lpthread"]
    subprocess.run(cmd, check=True)
    return target


def build_driver(out: Path) -> Path:
    import cffi

    out.mkdir(parents=True, exist_ok=True)
    python, purelib = _venv_paths()
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.embedding_init_code(INIT_CODE % {"site": purelib, "root": str(ROOT), "module": MODULE_NAME})
    ffi.set_source(MODULE_NAME, DRIVER_C % {"python": _c_string(python)},
                   extra_compile_args=["-O2", "-g"], libraries=["pthread"], include_dirs=[str(HERE)])
    tmp = ROOT / "build" / "cffi"
    tmp.mkdir(parents=True, exist_ok=True)
    built = ffi.compile(tmpdir=str(tmp), target=DRIVER_NAME, verbose=False)
    target = out / DRIVER_NAME
    os.replace(built, target)
    return target


def sources() -> list[Path]:
    return [HERE / "preload.c", HERE / "preload.h", HERE / "usercopy.h", Path(__file__).resolve()]


def is_stale(out: Path = DEFAULT_OUT) -> bool:
    libs = [out / PRELOAD_NAME, out / DRIVER_NAME]
    if not all(p.exists() for p in libs):
        return True
    newest = max(p.stat().st_mtime for p in sources())
    return any(p.stat().st_mtime < newest for p in libs)


def build(out: Path = DEFAULT_OUT) -> tuple[Path, Path]:
    return build_preload(out), build_driver(out)


def ensure_built(out: Path = DEFAULT_OUT) -> Path:
    """Path of the preload library, building both libraries if needed."""
    if is_stale(out):
        build(out)
    return out / PRELOAD_NAME


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m interposer.build", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    preload, driver = build(args.out)
    print(preload)
    print(driver)
    return 0


if __name__ == "__main__":
    sys.exit(main())
