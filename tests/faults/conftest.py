"""Fixtures of the fault suite: a template world built once per worker, copied for each test.

Everything goes through the two CLIs (``python -m engine``, ``python -m harness``), so the suite
holds whatever modules the harness is made of.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults import support as s


def _replay(base: Path) -> Path:
    """One engine run of the tiny case, as the instrumented C would print and write it."""
    replay = base / "replay"
    replay.mkdir()
    run = subprocess.run([sys.executable, "-m", "engine", *s.ARGV, "-floatfile", str(replay / "float.bin"),
                          "-trace_pixel", str(s.PIXEL[0]), str(s.PIXEL[1]), "--mode", "c-parity"],
                         cwd=replay, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    (replay / "stdout.log").write_text(s.DETSIZE_LINE + run.stdout.replace("TRACE_PY", "TRACE_C"))
    return replay


@pytest.fixture(scope="session")
def fault_template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("faultworld")
    replay = _replay(base)
    for name in ("cases", "golden", "results"):
        (base / name).mkdir()
    w = s.World(base, base / "cases", base / "golden", base / "results", replay)
    ok = w.fake_c("template-ok")
    w.write_case(s.case_toml())
    made = w.nbparity("record", s.CASE, "--c-bin", str(ok), "--out", str(w.golden))
    assert made.rc == 0, "nbparity record failed on the fault suite's tiny case:\n" + made.show()
    sha = hashlib.sha256((w.golden / "cases" / s.CASE / "case.json").read_bytes()).hexdigest()
    w.write_case(s.case_toml(recording=s.CASE, sha=sha))
    first = w.nbparity("run", s.CASE, "--recorded", "--no-pictures")
    # The baseline every fault departs from: without it no fault test means anything.
    assert first.rc == 0, "the fault suite's baseline run is not parity:\n" + first.show()
    assert len(s.evidence_dirs(w.results)) == 1 and len(s.ledger_rows(w.results)) == 1, first.show()
    return base


@pytest.fixture
def world(fault_template: Path, tmp_path: Path):
    s.copy_world(fault_template, tmp_path)
    w = s.World(tmp_path, tmp_path / "cases", tmp_path / "golden", tmp_path / "results",
                fault_template / "replay")
    w.before_evidence = s.tree_digest(w.results / s.CASE)
    w.before_rows = s.ledger_rows(w.results)
    yield w
    w.cleanup()
