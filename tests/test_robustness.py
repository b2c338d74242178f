"""Threads, fork and exec, a Python host, and programs that never touch the
device: the shim must be something users can forget is there."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from conftest import BUILD, ROOT, UMD_BIN, run

RUNTIME = ["-L", str(BUILD / "umd" / "lib"), "-laicard", f"-Wl,-rpath,{BUILD / 'umd' / 'lib'}"]
KERNELS = BUILD / "umd" / "kernels"


def test_threads_stress(cbuild):
    """8 threads, shared and separate contexts, alloc/copy/launch/sync/free
    for two seconds: right results, no deadlock, no leak."""
    exe = cbuild("stress", *RUNTIME)
    r = run([exe, "2", "8"], env={"AICARD_KERNELS": KERNELS}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "failures 0 used before 0 after 0" in r.stdout
    launches = int(r.stdout.split("launches ")[1].split()[0])
    assert launches > 16


def test_fork_system_popen_spawn_exec(cbuild):
    r = run([cbuild("forkexec"), UMD_BIN / "vecadd"], timeout=120)
    failed = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert r.returncode == 0 and not failed, r.stdout + r.stderr
    assert r.stdout.count("ok ") == 9


def test_python_host_drives_the_device():
    r = run([sys.executable, ROOT / "tests" / "python_host.py", BUILD / "umd" / "lib" / "libaicard.so", KERNELS])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "python host ok" in r.stdout


@pytest.mark.skipif(not shutil.which("git"), reason="git not installed")
def test_git_behaves_the_same(built, tmp_path):
    def session(where: Path, shim: bool) -> list:
        where.mkdir()
        outs = []
        env = {"GIT_AUTHOR_DATE": "2026-01-01T00:00:00", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00",
               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(where)}
        for cmd in (["git", "init", "-q", "-b", "main"], ["sh", "-c", "echo hello > f && git add f"],
                    ["git", "commit", "-q", "-m", "one"], ["git", "log", "--format=%H %s"],
                    ["git", "status", "--porcelain"], ["git", "cat-file", "-p", "HEAD:f"]):
            r = run(cmd, shim=shim, env=env, cwd=where)
            outs.append((r.returncode, r.stdout, r.stderr))
        return outs
    assert session(tmp_path / "a", False) == session(tmp_path / "b", True)


def test_fuzz_short_seeded_run(built):
    """A short seeded run of the fuzzer (the long one is `make fuzz`)."""
    r = run([sys.executable, ROOT / "tests" / "fuzz_ioctls.py", "--examples", "250", "--seed", "2026"],
            env={"AICARD_KERNELS": KERNELS, "AISHIM_WATCHDOG": "0.2", "AISHIM_LOG": "error"}, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "no crash, invariants held" in r.stdout
    count = int(r.stdout.split("fuzz: ")[1].split()[0])
    assert count > 1000
