"""junit.xml and gate_summary.md name evidence relative to the results folder (the CI artifact)."""
from __future__ import annotations

from harness.cli.main import main


def test_evidence_paths_in_the_gate_reports_are_relative_to_the_results_folder(tmp_path, golden_dir, capsys):
    results = tmp_path / "results"
    code = main(["gate", "--cases", "conv_xds", "--recorded", "--results-dir", str(results), "--golden-dir",
                 str(golden_dir)])
    capsys.readouterr()
    assert code == 0
    junit = (results / "junit.xml").read_text()
    assert "evidence: conv_xds/" in junit
    for name in ("junit.xml", "gate_summary.md"):
        assert str(tmp_path) not in (results / name).read_text()
