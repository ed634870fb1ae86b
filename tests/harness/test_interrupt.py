"""Ctrl-C and SIGTERM during a live C run: the C's group is killed, nothing is left, 130/143."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.model.paths import REPO_ROOT
from harness.report.evidence import EvidenceDir


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_a_live_run(tmp_path, fake_c, golden_dir, signum, code):
    pidfile = tmp_path / "c.pid"
    fake = fake_c("phi_carryover", "hang", pidfile=str(pidfile))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    results = tmp_path / "res"
    env = {**os.environ, "NB_GOLDEN_DIR": str(golden_dir), "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "--results-dir", str(results), "run",
                             "phi_carryover", "--live", "--c-bin", str(fake)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        c_pid = int(pidfile.read_text())
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == code, err.decode()
    time.sleep(0.2)
    assert not _alive(c_pid)
    assert list(results.glob("*/.tmp-*")) == []
    assert [p.name for p in tmpdir.iterdir()] == []


def test_staging_left_by_a_killed_run_is_swept_by_the_next(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    case_root = tmp_path / "phi_carryover"
    stale = case_root / f".tmp-20260101T000000.000000Z-{dead.pid}-deadbeef"
    stale.mkdir(parents=True)
    (stale / "c_stdout.log").write_text("half")
    mine = case_root / f".tmp-20260101T000000.000000Z-{os.getpid()}-cafef00d"
    mine.mkdir()
    with EvidenceDir(tmp_path, "phi_carryover") as ev:
        assert ev.swept == [stale]
    assert not stale.exists() and mine.exists()  # a live process's staging is its own


def test_sigterm_during_record_leaves_the_recordings_root_as_it_was(tmp_path, fake_c, golden_dir):
    pidfile = tmp_path / "c.pid"
    fake = fake_c("phi_carryover", "hang", pidfile=str(pidfile))
    root = tmp_path / "rec"
    (root / "cases").mkdir(parents=True)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "NB_GOLDEN_DIR": str(golden_dir), "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "record", "phi_carryover", "--out", str(root),
                             "--c-bin", str(fake)], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        c_pid = int(pidfile.read_text())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 143, err.decode()
    time.sleep(0.2)
    assert not _alive(c_pid)
    assert [p.name for p in root.rglob("*")] == ["cases"] and list(tmpdir.iterdir()) == []
