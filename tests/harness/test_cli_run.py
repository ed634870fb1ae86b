"""`nbparity run` end to end, with the torch engine replaced by a replay of the C recording."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from harness.cli import main as cli
from harness.model.paths import REPO_ROOT
from harness.registry.cases import load_case
from tests.harness.conftest import CASES, perturb_line

EVIDENCE_FILES = {"commands.txt", "env.json", "c_stdout.log", "torch_stdout.log", "trace_c.txt", "trace_torch.txt",
                  "diff.json", "diff_summary.md", "image_metrics.json", "result.json", "report.txt"}


def run_json(tmp_path, capsys, *args):
    rc = cli.main(["--results-dir", str(tmp_path / "res"), "run", *args, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def latest(tmp_path, case):
    return tmp_path / "res" / case / "latest"


def test_parity_run_exit_0_and_complete_evidence(tmp_path, capsys, fake_engine, golden_dir):
    calls = fake_engine("phi_carryover")
    rc, res = run_json(tmp_path, capsys, "phi_carryover", "--recorded")
    assert rc == 0 and res["status"] == "parity" and res["exit_code"] == 0
    assert res["first_divergence"] is None and res["image"]["ok"] and res["image"]["max_abs_diff"] == 0
    pin = load_case(CASES / "phi_carryover.toml").references["c-parity"].manifest_sha256
    assert res["reference"]["description"].startswith(f"recording phi_carryover sha256 {pin}")
    ev = latest(tmp_path, "phi_carryover")
    assert EVIDENCE_FILES <= {p.name for p in ev.iterdir()}
    env = json.loads((ev / "env.json").read_text())
    assert {"python", "torch", "numpy", "git", "host"} <= set(env)
    assert env["reference"]["provenance"]["manifest_sha256"] == pin
    diff = json.loads((ev / "diff.json").read_text())
    assert len(diff["rows"]) == res["counts"]["total"] > 50
    commands = (ev / "commands.txt").read_text()
    assert "OMP_NUM_THREADS=1" in commands and "--mode c-parity" in commands
    argv, kwargs = calls[0]
    assert argv[-3:] == ["-trace_pixel", "10", "12"] and kwargs["mode"] == "c-parity"
    assert str(kwargs["dtype"]) == "torch.float64" and kwargs["device"] == "cpu"


def test_engine_gets_absolute_input_paths(tmp_path, capsys, fake_engine, golden_dir):
    calls = fake_engine("supervisor_brightest_trace")
    rc, res = run_json(tmp_path, capsys, "supervisor_brightest_trace", "--recorded", "--trace-only")
    assert rc == 0
    argv = calls[0][0]
    mat = argv[argv.index("-mat") + 1]
    assert mat == str((golden_dir / "inputs" / "A.mat").resolve())


def test_perturbed_engine_value_is_the_first_divergence(tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover", edit=lambda s: perturb_line(s, "TRACE_PY: rot_b_angstroms", 1, 2e-6))
    rc, res = run_json(tmp_path, capsys, "phi_carryover", "--recorded")
    assert rc == 1 and res["status"] == "divergence" and res["label"] == "regression"
    fd = res["first_divergence"]
    assert fd["key"] == "rot_b_angstroms" and fd["worst_component"] == "y" and fd["stage"] == "rotated cell"
    assert fd["abs_diff"] == pytest.approx(2e-6, rel=1e-3) and fd["atol"] == 1e-6
    assert fd["c"][1] != fd["torch"][1]
    assert res["downstream"] == []
    summary = (latest(tmp_path, "phi_carryover") / "diff_summary.md").read_text()
    assert "First divergence: rot_b_angstroms (component y)" in summary
    report = (latest(tmp_path, "phi_carryover") / "report.txt").read_text()
    assert "◀ FIRST" in report and "rot_b_angstroms" in report


def test_below_tolerance_perturbation_is_parity(tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover", edit=lambda s: perturb_line(s, "TRACE_PY: rot_b_angstroms", 1, 5e-7))
    rc, res = run_json(tmp_path, capsys, "phi_carryover", "--recorded")
    assert rc == 0, res["first_divergence"]


def test_missing_engine_key_is_reported_as_one_sided(tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover", edit=lambda s: s.replace("TRACE_PY: F_cell 1\n", ""))
    rc, res = run_json(tmp_path, capsys, "phi_carryover", "--recorded")
    assert rc == 1 and res["first_divergence"]["key"] == "F_cell"
    assert res["first_divergence"]["verdict"] == "C only"


def test_keys_narrow_the_report(tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover", edit=lambda s: perturb_line(s, "TRACE_PY: F_cell", 0, 1.0))
    rc, res = run_json(tmp_path, capsys, "phi_carryover", "--recorded", "--keys", "pix0,rot_b,k_frac")
    assert rc == 0  # F_cell is outside the selection
    labels = [r["label"] for r in res["rows"]]
    assert labels[0] == "pix0_vector_meters" and "rot_b_angstroms" in labels and "hkl_frac.k" in labels
    assert sum(l.startswith("phi[") for l in labels) == 10
    full = json.loads((latest(tmp_path, "phi_carryover") / "diff.json").read_text())
    assert any(r["key"] == "F_cell" and r["verdict"] == "diverged" for r in full["rows"])


def test_unknown_key_word_is_a_usage_error(tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover")
    assert cli.main(["--results-dir", str(tmp_path / "res"), "run", "phi_carryover", "--keys", "bogus"]) == 2
    assert "unknown trace key 'bogus'" in capsys.readouterr().err
    assert not (tmp_path / "res" / "phi_carryover").exists()  # a usage error leaves no evidence


def test_image_divergence_alone_fails(tmp_path, capsys, fake_engine):
    def bump(img):
        img[33, 44] += 1e-3 * img.max()
        return img
    fake_engine("phi_carryover", image_edit=bump)
    rc, res = run_json(tmp_path, capsys, "phi_carryover", "--recorded")
    assert rc == 1 and res["first_divergence"] is None
    assert res["image"]["worst_pixel"] == [33, 44] and res["image"]["n_failed"] == 1


def test_image_only_reference_says_trace_not_compared(tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover__cfixed")
    rc, res = run_json(tmp_path, capsys, "phi_carryover", "--recorded", "--mode", "spec")
    assert rc == 0 and not res["trace_compared"]
    assert "image-only reference (fixed-c): the trace was not compared" in res["trace_note"]
    assert res["image"]["ok"]


def test_image_only_reference_with_trace_only_compares_nothing(tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover__cfixed")
    rc, res = run_json(tmp_path, capsys, "phi_carryover", "--recorded", "--mode", "spec", "--trace-only")
    assert rc == 2 and "nothing to compare" in res["failure"]


def test_spec_mode_against_instrumented_c_is_a_known_defect(tmp_path, capsys, fake_engine):
    from tests.harness.test_labels import spec_like
    fake_engine("phi_carryover", edit=lambda s: spec_like(s.replace("TRACE_PY", "TRACE_C")))
    rc, res = run_json(tmp_path, capsys, "phi_carryover_spec_vs_c", "--recorded", "--trace-only")
    assert rc == 1 and res["label"] == "known C defect phi0-stale-rotation"
    assert all(r["defect"] == "phi0-stale-rotation" for r in res["rows"] if r["verdict"] != "ok")
    rc, res = run_json(tmp_path, capsys, "phi_carryover_spec_vs_c", "--recorded", "--trace-only",
                       "--allow-known-defects")
    assert rc == 0 and res["status"] == "divergence" and res["allowed_defects"] == ["phi0-stale-rotation"]
    # the summary says why a divergence passes: which defect, and what it accounts for
    report = (latest(tmp_path, "phi_carryover_spec_vs_c") / "report.txt").read_text()
    n_bad = sum(r["verdict"] != "ok" for r in res["rows"])
    assert f"known C defect phi0-stale-rotation accounts for {n_bad} divergent trace values" in report
    assert "Verdict: PARITY with known C defect phi0-stale-rotation allowed (exit 0)." in report
    rc, res = run_json(tmp_path, capsys, "phi_carryover_spec_vs_c", "--recorded", "--trace-only")
    assert rc == 1 and res["allowed_defects"] == []


def test_recorded_pixel_mismatch_is_exit_2(tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover")
    rc, res = run_json(tmp_path, capsys, "phi_carryover", "--recorded", "--pixel", "1", "2")
    assert rc == 2 and "use --live for another pixel" in res["failure"]


def test_engine_crash_is_a_runner_failure(tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover", raises=RuntimeError("kernel exploded"))
    rc, res = run_json(tmp_path, capsys, "phi_carryover", "--recorded")
    assert rc == 3 and "RuntimeError: kernel exploded" in res["failure"]
    ev = latest(tmp_path, "phi_carryover")
    assert "kernel exploded" in (ev / "torch_stderr.log").read_text()
    assert (ev / "c_stdout.log").is_file()


def test_engine_not_importable_is_a_runner_failure(tmp_path, capsys, monkeypatch):
    def broken():
        raise ImportError("No module named 'engine.api'")
    monkeypatch.setattr("harness.runners.engine.load_api", broken)
    rc, res = run_json(tmp_path, capsys, "phi_carryover", "--recorded")
    assert rc == 3 and "not importable" in res["failure"]


def test_rich_table_output(tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover", edit=lambda s: perturb_line(s, "TRACE_PY: hkl_frac", 0, 0.5))
    rc = cli.main(["--results-dir", str(tmp_path / "res"), "run", "phi_carryover", "--recorded"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "reference: recording phi_carryover sha256" in out
    assert "◀ FIRST diverged" in out and "Verdict: DIVERGENCE (exit 1)" in out
    # what a person reads: the keys around the first divergence, repeats collapsed into one row
    assert "keys hidden" in out and "--full shows every row" in out and "pix0_vector_meters" not in out
    assert out.index("hkl_frac") < out.index("F_latt")
    assert "evidence: " in out
    ev = latest(tmp_path, "phi_carryover")
    table = (ev / "trace_table.txt").read_text()  # every row, in dataflow order
    assert table.index("pix0_vector_meters") < table.index("hkl_frac") < table.index("I_pixel_final")
    assert len(table.splitlines()) == 2 + len(json.loads((ev / "diff.json").read_text())["rows"])
    capsys.readouterr()
    assert cli.main(["--results-dir", str(tmp_path / "res"), "run", "phi_carryover", "--recorded", "--full"]) == 1
    full = capsys.readouterr().out
    assert full.index("pix0_vector_meters") < full.index("hkl_frac") < full.index("I_pixel_final")
    assert "keys hidden" not in full


def test_collapsed_view_counts_repeats_and_keeps_the_worst(tmp_path, capsys, fake_engine):
    """Repeated rows of one key (sub-pixels, sources, φ steps) are one row: count, divergent share, worst |Δ|."""
    from harness.model.result import RowModel
    from harness.report import console

    def row(label, occ, diff, verdict="ok"):
        return RowModel(label=label, kind="pixel", key="F_latt", stage="lattice", occurrence=occ, phi_tic=None,
                        components=["v"], component=None, c=[1.0], torch=[1.0 + diff], abs_diff=diff,
                        worst_component=None, atol=1e-6, rtol=0.0, verdict=verdict)

    rows = [row("F_latt#0", 0, 0.0), row("F_latt#1", 1, 3e-3, "diverged"), row("F_latt#2", 2, 5e-3, "diverged")]
    groups = console.group_rows(rows, first_label="F_latt#1")
    assert len(groups) == 1 and groups[0].count == 3 and groups[0].n_bad == 2
    assert groups[0].shown.label == "F_latt#1" and groups[0].is_first  # the first divergence is what is shown
    worst = console.group_rows(rows, first_label=None)[0]
    assert worst.shown.label == "F_latt#2"  # without a first divergence: the worst row


def test_supervisor_recording_through_the_cli_with_a_replaying_engine(tmp_path, capsys, fake_engine):
    """The harness's side of the flagship only (its pixel, full-frame image, trace alignment): the
    engine here replays the recording. The real engine on supervisor is tests/parity (slow)."""
    fake_engine("supervisor")
    rc, res = run_json(tmp_path, capsys, "supervisor")
    assert rc == 0 and res["pixel"] == [685, 1039] and res["mode"] == "c-parity"
    assert res["image"]["shape_c"] == [2527, 2463]
    assert res["counts"]["total"] == res["counts"]["ok"] > 100


def test_python_dash_m_harness(tmp_path):
    p = subprocess.run([sys.executable, "-m", "harness", "list"], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and "supervisor" in p.stdout
    p = subprocess.run([sys.executable, "-m", "harness", "run"], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "error" in p.stderr


def test_device_and_dtype_reach_the_engine(tmp_path, capsys, fake_engine):
    calls = fake_engine("phi_carryover")
    rc, res = run_json(tmp_path, capsys, "phi_carryover", "--recorded", "--dtype", "float32")
    assert rc == 0
    assert str(calls[0][1]["dtype"]) == "torch.float32" and calls[0][1]["write_outputs"] is False
    assert "float32" in res["engine"]["description"]
    assert res["reference_choice"] == "recorded reference (--recorded)"
