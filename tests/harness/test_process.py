"""The process driver: exit status, timeout, bounded waits, the child's own peak memory."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from harness.runners import process

MIB = 1024 * 1024


def run(argv, tmp_path, timeout_s=60.0, **kw):
    env, _ = process.pinned_env(1)
    return process.run(argv, cwd=tmp_path, env=env, timeout_s=timeout_s, **kw)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_stdout_stderr_and_exit_code(tmp_path):
    done = run(py("import sys, os; print(os.getcwd()); sys.stderr.write('e\\n'); sys.exit(7)"), tmp_path)
    assert done.exit_code == 7 and not done.timed_out
    assert done.stdout_text.strip() == str(tmp_path) and done.stderr_text == "e\n"
    assert done.how_it_ended() == "exited with code 7"


def test_a_signal_death_is_reported_as_the_signal(tmp_path):
    done = run(py("import os; os.kill(os.getpid(), 11)"), tmp_path)
    assert done.exit_code == -11 and done.how_it_ended() == "was killed by signal 11"


def test_a_command_that_cannot_start(tmp_path):
    done = run([str(tmp_path / "no-such-binary")], tmp_path)
    assert done.exit_code == 127 and done.spawn_error
    assert "cannot start" in process.fail("C", done).message


def test_pinned_environment_is_one_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_PROC_BIND", "true")
    monkeypatch.setenv("TRACE_C_TAP5", "1")
    env, pinned = process.pinned_env(3)
    assert pinned == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3", "LC_ALL": "C"}
    assert "OMP_PROC_BIND" not in env and "TRACE_C_TAP5" not in env
    done = process.run(py("import os; print(os.environ['OMP_NUM_THREADS'], 'TRACE_C_TAP5' in os.environ)"),
                       cwd=tmp_path, env=env, timeout_s=60)
    assert done.stdout_text.split() == ["3", "False"]


def test_peak_rss_is_the_childs_own(tmp_path):
    # Make this process big first: rusage inherited from the parent's address space must not count.
    ballast = bytearray(300 * MIB)
    ballast[:: 4096] = b"\1" * (len(ballast) // 4096)
    small = run(["/bin/true"], tmp_path)
    assert small.exit_code == 0 and small.peak_rss_bytes is not None
    assert small.peak_rss_bytes < 64 * MIB, small.peak_rss_bytes / MIB
    big = run(py("b = bytearray(200 * 1024 * 1024)\nb[::4096] = b'\\1' * (len(b) // 4096)"), tmp_path)
    assert big.exit_code == 0
    assert 200 * MIB <= big.peak_rss_bytes <= 280 * MIB, big.peak_rss_bytes / MIB
    del ballast


def test_timeout_kills_the_group_and_reports_no_exit_code(tmp_path):
    pidfile = tmp_path / "grandchild"
    code = ("import subprocess, sys, time\n"
            f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
            "print('started', flush=True); time.sleep(60)")
    t0 = time.monotonic()
    done = run(py(code), tmp_path, timeout_s=2)
    assert time.monotonic() - t0 < 8
    assert done.timed_out and done.exit_code is None and "started" in done.stdout_text
    assert not _alive(int(pidfile.read_text()))  # the grandchild in the group went too


def test_a_grandchild_that_left_the_group_cannot_hold_the_run(tmp_path):
    # It keeps stdout open for 30 s after leaving the process group: the run still ends in time.
    pidfile = tmp_path / "escaped"
    code = ("import subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import os, time; os.setsid(); time.sleep(30)'])\n"
            f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
            "time.sleep(60)")
    t0 = time.monotonic()
    try:
        done = run(py(code), tmp_path, timeout_s=2, drain_s=0.5)
        assert time.monotonic() - t0 < 6
        assert done.timed_out
    finally:
        if pidfile.exists():
            _kill(int(pidfile.read_text()))


def test_an_escaped_stdout_holder_does_not_delay_a_normal_end(tmp_path):
    pidfile = tmp_path / "escaped"
    code = ("import subprocess, sys\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import os, time; os.setsid(); time.sleep(30)'])\n"
            f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
            "print('done')")
    t0 = time.monotonic()
    try:
        done = run(py(code), tmp_path, timeout_s=60, drain_s=0.5)
        assert time.monotonic() - t0 < 6
        assert done.exit_code == 0 and not done.timed_out and "done" in done.stdout_text
    finally:
        if pidfile.exists():
            _kill(int(pidfile.read_text()))


def test_interrupt_kills_the_child_and_removes_the_workdir(tmp_path):
    pidfile = tmp_path / "pid"
    code = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    seen = {}

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.5)
        with pytest.raises(KeyboardInterrupt):
            with process.private_workdir("test") as work:
                seen["work"] = work
                run(py(code), work, timeout_s=60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert not seen["work"].exists()
    assert not _alive(int(pidfile.read_text()))


def _alive(pid: int) -> bool:
    """A zombie counts as gone (this container's init may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def test_the_bench_measures_each_childs_own_peak(tmp_path):
    from harness.bench import measure

    ballast = bytearray(300 * MIB)
    ballast[:: 4096] = b"\1" * (len(ballast) // 4096)
    res = measure.run_measured(["/bin/true"], cwd=tmp_path, env=measure.child_env(1), timeout_s=60)
    assert res.returncode == 0 and res.peak_rss_bytes < 64 * MIB, res.peak_rss_bytes / MIB
    del ballast


_GC_STOP = """
import gc, os, signal, sys, time
from harness.model.errors import Terminated
from harness.runners import process
restore = process.install_sigterm()
fired = []
def callback(phase, info):
    # The stop arrives while Python runs a gc callback (Hypothesis installs one): an exception
    # raised here is printed and dropped by the interpreter.
    if phase == "start" and not fired:
        fired.append(1)
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(200000):
            pass
gc.callbacks.append(callback)
try:
    gc.collect()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sum(range(1000))
    print("went on")
except Terminated:
    print("stopped")
    sys.exit(143)
finally:
    restore()
"""


def test_a_stop_inside_a_gc_callback_is_not_lost(tmp_path):
    """SIGTERM inside a gc callback still stops the run (it was swallowed: the run went on)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    import subprocess  # noqa: PLC0415 - this one test needs a plain child
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _GC_STOP], capture_output=True, text=True, env=env, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (143, "stopped"), done.stderr
    assert time.monotonic() - t0 < 8


def test_install_sigterm_gives_the_previous_handlers_back():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)}
    restore = process.install_sigterm()
    assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    restore()
    assert {s: signal.getsignal(s) for s in before} == before
