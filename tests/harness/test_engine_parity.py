"""The real engine against the recorded C (parity tests over shipped cases)."""
from __future__ import annotations

import json

import pytest

from harness.cli import main as cli

pytestmark = pytest.mark.parity


def run(tmp_path, capsys, *args):
    rc = cli.main(["--results-dir", str(tmp_path / "res"), "run", *args, "--recorded", "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_phi_carryover_c_parity(tmp_path, capsys):
    rc, res = run(tmp_path, capsys, "phi_carryover")
    assert rc == 0, (res["failure"], res["first_divergence"], res["image"])


def test_phi_carryover_spec_differs_only_by_the_known_defect(tmp_path, capsys):
    rc, res = run(tmp_path, capsys, "phi_carryover_spec_vs_c", "--trace-only")
    assert rc == 1 and res["label"] == "known C defect phi0-stale-rotation", res["first_divergence"]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["supervisor", "supervisor_brightest_trace", "simple_cubic"])
def test_full_frame_cases(tmp_path, capsys, case):
    rc, res = run(tmp_path, capsys, case)
    assert rc == 0, (res["failure"], res["first_divergence"], res["image"])


@pytest.mark.slow
def test_supervisor_spec_differs_only_by_known_defects(tmp_path, capsys):
    rc, res = run(tmp_path, capsys, "supervisor_spec_vs_c", "--trace-only")
    assert rc == 1 and res["label"] == "known C defect pix0-vector-ignored, phi0-stale-rotation", res["first_divergence"]
