"""The ptrace backend through the CLI: aishim run/record --ptrace, passthrough."""

from __future__ import annotations

import pytest

from conftest import BUILD, UMD_BIN, aishim

STATIC = UMD_BIN / "vecadd-static"


@pytest.fixture(scope="module")
def static_sample(built):
    import subprocess
    from conftest import ROOT
    subprocess.run(["make", "-s", "-C", str(ROOT / "umd"), f"BUILD={BUILD / 'umd'}", "static"], check=True,
                   stdout=subprocess.DEVNULL)
    return STATIC


def test_run_ptrace_static_binary(static_sample):
    r = aishim("run", "--ptrace", "--", str(static_sample))
    assert r.returncode == 0, r.stderr
    assert "Test passed" in r.stdout


def test_run_ptrace_errors(built, tmp_path):
    r = aishim("run", "--ptrace", "--", "/nonexistent")
    assert r.returncode != 0 and r.stderr.startswith("aishim: ") and "Traceback" not in r.stderr


def test_record_ptrace_then_show_and_replay(static_sample, tmp_path):
    out = tmp_path / "s.aitrace"
    r = aishim("record", "--ptrace", "-o", str(out), "--", str(static_sample))
    assert r.returncode == 0, r.stderr
    show = aishim("show", str(out))
    assert "BO_CREATE" in show.stdout and "LAUNCH" in show.stdout
    pid = int(show.stdout.split("[")[1].split(":")[0])
    assert pid != 0
    # The same program, dynamically linked, replays the trace under the preload path.
    r = aishim("replay", str(out), "--", str(UMD_BIN / "vecadd"))
    assert r.returncode == 0, r.stderr


def test_passthrough_pty_recording(cbuild, tmp_path):
    out = tmp_path / "pty.aitrace"
    r = aishim("record", "--ptrace", "--passthrough", "/dev/ptmx", "-o", str(out), "--", str(cbuild("pty_probe")))
    assert r.returncode == 0, r.stderr
    seen = dict(line.split() for line in r.stdout.splitlines() if len(line.split()) == 2)
    show = aishim("show", str(out)).stdout
    assert f"TCGETS /* 0x5401 */, <36 bytes out>) = 0 => {seen['TCGETS']}" in show
    assert f"TIOCSWINSZ /* 0x5414 */, {seen['TIOCSWINSZ']}) = 0" in show
    assert f"TIOCGWINSZ /* 0x5413 */, <8 bytes out>) = 0 => {seen['TIOCGWINSZ2']}" in show


def test_record_passthrough_needs_ptrace(built, tmp_path):
    r = aishim("record", "--passthrough", "/dev/ptmx", "-o", str(tmp_path / "x"), "--", "true")
    assert r.returncode == 1 and "needs --ptrace" in r.stderr
