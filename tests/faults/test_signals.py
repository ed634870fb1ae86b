"""SIGINT, SIGTERM and SIGKILL in the middle of a run (the C is hanging).

An interrupted run exits 130 (SIGINT) or 143 (SIGTERM), takes the C's whole process group
with it and leaves no staging directory; after a SIGKILL, which nothing can catch, the next run
cleans the stale staging up or says it is there.
"""
from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.faults import support as s

pytestmark = pytest.mark.faults


def _start_hanging(world) -> tuple[subprocess.Popen, int]:
    script = world.fake_c("hang", f"sleep {s.HOLD_S} &\nwait\n")   # a child of its own: the group must go
    proc = world.start("run", s.CASE, "--live", "--c-bin", str(script), "--timeout", "60", "--no-pictures")
    try:
        pid = world.pid_of("hang")
    except AssertionError:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the run never reached the C: rc {proc.returncode}\n{out}\n{err}") from None
    time.sleep(0.3)  # inside communicate() with the C
    return proc, pid


def _finish(proc: subprocess.Popen, within: float = s.GRACE_S) -> s.Result:
    t0 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the run did not stop within {within:g} s of the signal\n{out}\n{err}") from None
    return s.Result(proc.returncode, out, err, time.monotonic() - t0)


def _group_gone(pgid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not s.group_alive(pgid):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run(world, sig, code):
    proc, c_pid = _start_hanging(world)
    proc.send_signal(sig)
    res = _finish(proc)
    assert _group_gone(c_pid), "the C's process group outlived the interrupted run"
    s.assert_contract(world, res, code, evidence=False)


def test_sigkill_leaves_staging_that_the_next_run_handles(world):
    proc, c_pid = _start_hanging(world)
    proc.kill()
    proc.communicate()
    s.kill_group(c_pid)  # nothing outlives a SIGKILL'd parent's group on its own; not the harness's to catch
    stale = s.staging_left(world.results)
    res = world.nbparity("run", s.CASE, "--recorded", "--no-pictures")
    assert res.rc == 0, res.show()
    left = [p for p in stale if p.exists()]
    assert not left or any(p.name in res.stderr for p in left), (
        f"stale staging {left} neither cleaned nor reported\n{res.show()}")
    if not left:
        s.assert_contract(world, res, 0, evidence=True, stderr_lines=None)
