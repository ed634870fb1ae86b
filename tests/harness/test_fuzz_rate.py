"""`make bench`'s fuzz throughput row runs the real `nbparity fuzz` and reads its summary."""
from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")

from harness.bench import fuzz_rate  # noqa: E402


def test_quick_row_reads_the_rate_from_a_real_fuzz_run(monkeypatch):
    monkeypatch.setattr(fuzz_rate, "QUICK_EXAMPLES", 3)
    doc = fuzz_rate.measure(quick=True)
    (row,) = doc["rows"]
    assert row["error"] is None, row
    assert row["workers"] == 1 and row["examples"] == 3
    assert row["per_min"] > 0 and row["per_min_wall"] > 0
    lines = fuzz_rate.summary_lines(doc)
    assert "examples/min" in lines[0] and "LocalCluster" in lines[-1]  # the note says where the cluster row is


def test_a_failing_command_is_an_error_row_not_a_rate(monkeypatch):
    monkeypatch.setattr(fuzz_rate, "QUICK_EXAMPLES", 0)  # `fuzz --examples 0` is a usage error (exit 2)
    (row,) = fuzz_rate.measure(quick=True)["rows"]
    assert row["per_min"] is None and row["error"].startswith("exit 2")
