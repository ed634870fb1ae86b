"""The real hoidn/nanoBragg port against the C recordings (marker ``external``).

It runs only where the port is installed: ``NB_HOIDN_PYTHON`` must be set to a python that can
import ``nanobrag_torch``; the README ("Comparing two implementations") says how to install it.
Otherwise the test is skipped with that reason spelt out.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.model import paths
from harness.model.errors import UsageError
from harness.pipeline import Context, RunOptions
from harness.registry import implementations as impls
from harness.registry.cases import load_case
from harness.service.pair import Pair, run_pair

pytestmark = pytest.mark.external


def _port() -> impls.Implementation:
    hoidn = impls.load_registry()["hoidn"]
    try:
        python = hoidn.argv_prefix()[0]
    except UsageError as e:  # NB_HOIDN_PYTHON unset: the entry's own words say how to set it
        pytest.skip(f"the hoidn port is not configured: {e.message}")
    if not Path(python).is_file():
        pytest.skip(f"the hoidn port is not installed: {python} does not exist "
                    "(set NB_HOIDN_PYTHON to the python of a venv with nanobrag_torch; README: "
                    "'Comparing two implementations')")
    probe = subprocess.run([python, "-c", "import nanobrag_torch"], capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"the hoidn port is not importable by {python}: {probe.stderr.strip().splitlines()[-1:]}")
    return hoidn


def test_hoidn_against_the_c_reaches_a_verdict_with_aligned_keys(tmp_path, golden_dir):
    hoidn = _port()
    ctx = Context(golden_dir=golden_dir, results_dir=tmp_path, cases_dir=paths.cases_dir())
    case = load_case(paths.cases_dir() / "point_pixel.toml")
    result = run_pair(case, Pair(hoidn, impls.BUILTIN["c"]), RunOptions(autotrace=False, pictures=False), ctx)
    assert result.status in ("parity", "divergence"), result.failure
    rows = {r.label: r for r in result.rows}
    assert rows["pix0_vector_meters"].verdict == "ok"
    assert rows["rot_a_angstroms"].note and "hoidn prints m" in rows["rot_a_angstroms"].note
    assert rows["detector_convention"].verdict == "not traced by hoidn"
    assert result.image is not None and result.image["correlation"] > 0.99
    compared = [r for r in result.rows if not r.verdict.startswith("not traced")]
    assert len(compared) >= 30
